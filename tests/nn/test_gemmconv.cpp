// Convolutions as im2col + oneDNN's sgemm (gemmconv.h): LibTorch's convolution for the kernel sizes, strides and
// paddings the chain may hand it, with and without LeakyReLU, on one and two threads, across im2col chunks.
#include "core/encoders/nn/gemmconv.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace nic {
namespace {

namespace F = torch::nn::functional;

struct Case {
    int n, in, out, side, k, stride, padding;
    float slope;
};

TEST(GemmConv, GivesLibTorchsConvolutionForKernelsStridesPaddingsAndChunks) {
    if (!gemmconv::available())
        GTEST_SKIP() << "this build has no oneDNN sgemm (libdnnl-dev): the chain runs oneDNN's convolutions only";
    torch::manual_seed(21);
    AlignedBuffer buffer; // one buffer across cases, as a chain's replica keeps it: it grows and shrinks in use
    // 3 × 3 / 2 / 1 as the encoders', stride 1 with padding, a 5 × 5 kernel with padding 2 on an odd side, 1 × 1, no
    // padding with a window that does not tile the side, and one with 2 · 32² output rows of 9 · 256 values: more than
    // one im2col chunk (kChunkFloats).
    for (const Case c :
         {Case{3, 24, 48, 8, 3, 2, 1, 0.2F}, Case{2, 16, 20, 9, 3, 1, 1, -1.0F}, Case{2, 5, 7, 11, 5, 2, 2, 1.5F},
          Case{1, 8, 24, 7, 1, 1, 0, 0.1F}, Case{2, 12, 16, 10, 3, 2, 0, 0.0F}, Case{2, 256, 64, 64, 3, 2, 1, 0.2F}}) {
        for (const int threads : {1, 2}) {
            const auto x = torch::randn({c.n, c.in, c.side, c.side});
            const auto w = torch::randn({c.out, c.in, c.k, c.k}) / std::sqrt(static_cast<double>(c.in * c.k * c.k));
            const auto b = torch::randn({c.out});
            auto expected = F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).stride(c.stride).padding(c.padding));
            if (c.slope >= 0)
                expected = F::leaky_relu(expected, F::LeakyReLUFuncOptions().negative_slope(c.slope));
            const int o = (c.side + 2 * c.padding - c.k) / c.stride + 1;
            ASSERT_EQ(expected.size(2), o);
            const auto xc = x.permute({0, 2, 3, 1}).contiguous(), hwio = w.permute({2, 3, 1, 0}).contiguous();
            const auto bc = b.contiguous();
            auto y = torch::full({c.n, o, o, c.out}, std::numeric_limits<float>::quiet_NaN()); // every value written
            gemmconv::run(xc.data_ptr<float>(), c.n, c.in, c.side, c.k, c.stride, c.padding, hwio.data_ptr<float>(),
                          bc.data_ptr<float>(), c.out, c.slope, y.data_ptr<float>(), buffer, threads);
            const auto got = y.permute({0, 3, 1, 2});
            const float scale = std::max(1.0F, expected.abs().max().item<float>());
            EXPECT_LE((got - expected).abs().max().item<float>(), 1e-5F * scale)
                << c.in << " -> " << c.out << ", " << c.k << "x" << c.k << "/" << c.stride << "/" << c.padding << " on "
                << c.side << "^2, " << threads << " thread(s)";
        }
    }
}

TEST(GemmConv, Im2colCopiesEachWindowInKernelRowColumnChannelOrderWithZerosOutside) {
    // One 3 × 3 channels-last image of 2 channels, value = 10 · pixel + channel; a 2 × 2 window, stride 2, padding 1:
    // a 2 × 2 output whose windows each hold one real pixel.
    std::vector<float> x(18);
    for (int p = 0; p < 9; ++p)
        for (int ch = 0; ch < 2; ++ch)
            x[static_cast<std::size_t>(p * 2 + ch)] = static_cast<float>(10 * p + ch);
    std::vector<float> col(4 * 8, -1.0F);
    gemmconv::im2col(x.data(), 2, 3, 2, 2, 1, 0, 4, col.data(), 1);
    const std::vector<float> expected = {
        0,  0,  0,  0,  0,  0,  0,  1,  // (0, 0): only (kh, kw) = (1, 1) inside: pixel 0
        0,  0,  0,  0,  10, 11, 20, 21, // (0, 1): pixels 1 and 2 on the second row of the window
        0,  0,  30, 31, 0,  0,  60, 61, // (1, 0): pixels 3 and 6 on the second column
        40, 41, 50, 51, 70, 71, 80, 81};
    EXPECT_EQ(col, expected);
    // Rows from the middle: the last two only.
    std::vector<float> tail(2 * 8, -1.0F);
    gemmconv::im2col(x.data(), 2, 3, 2, 2, 1, 2, 2, tail.data(), 2);
    EXPECT_EQ(tail, std::vector<float>(expected.begin() + 16, expected.end()));
}

} // namespace
} // namespace nic

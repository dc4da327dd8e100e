// 3 × 3 stride-2 convolutions on im2col + oneDNN's sgemm (convgrad.h), called directly. Weight gradients: LibTorch's
// gradient for every thread count, however the output pixels split among the threads and across each thread's im2col
// chunks, and the same bits again for the same thread count. Forward pass and input gradient: the same.
#include "core/encoders/nn/convgrad.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <string>

namespace nic {
namespace {

struct Case {
    int n, in, out, side;
};

/// "<in> -> <out> on <n> × <side>², <threads> thread(s)", for failure messages.
std::string describe(const Case& c, int threads) {
    return std::to_string(c.in) + " -> " + std::to_string(c.out) + " on " + std::to_string(c.n) + " × " +
           std::to_string(c.side) + "², " + std::to_string(threads) + " thread(s)";
}

/// n channels-last images [side, side, c] of an NCHW tensor, and back.
torch::Tensor toNhwc(const torch::Tensor& t) {
    return t.permute({0, 2, 3, 1}).contiguous();
}
torch::Tensor fromNhwc(const torch::Tensor& t) {
    return t.permute({0, 3, 1, 2});
}

/// ∂w from convgrad::weightGradient on `threads` threads as a [out, in, 3, 3] tensor; every value written.
torch::Tensor weightGradient(const Case& c, const torch::Tensor& x, const torch::Tensor& dy, int threads) {
    const auto xc = toNhwc(x), dyc = toNhwc(dy);
    auto dw = torch::full({c.out, 3, 3, c.in}, std::numeric_limits<float>::quiet_NaN());
    convgrad::weightGradient(xc.data_ptr<float>(), c.n, c.in, c.side, dyc.data_ptr<float>(), c.out,
                             dw.data_ptr<float>(), threads);
    return fromNhwc(dw);
}

TEST(ConvGrad, GivesLibTorchsWeightGradientOnEveryThreadCountWithTheSameBitsEachTime) {
    if (!convgrad::available())
        GTEST_SKIP() << "this build has no oneDNN sgemm (libdnnl-dev): training takes LibTorch's weight gradients";
    torch::manual_seed(31);
    // Small maps, which run on one thread (at least 256 output pixels a thread): an odd side whose windows leave the
    // image, one output pixel, 128 pixels. Then 2 · 23² output pixels, which do not divide evenly among 2 or 3
    // threads, on an odd side; and 4 · 32² output rows of 9 · 32 values: several 1 MiB im2col chunks a thread.
    for (const Case c :
         {Case{3, 48, 24, 9}, Case{1, 32, 16, 2}, Case{2, 64, 40, 15}, Case{2, 48, 24, 45}, Case{4, 32, 64, 64}}) {
        const auto o = convgrad::outputSide(c.side);
        const auto x = torch::randn({c.n, c.in, c.side, c.side}).requires_grad_(true);
        const auto w = torch::randn({c.out, c.in, 3, 3}).requires_grad_(true);
        const auto dy = torch::randn({c.n, c.out, o, o});
        torch::nn::functional::conv2d(x, w, torch::nn::functional::Conv2dFuncOptions().stride(2).padding(1))
            .backward(dy);
        const auto expected = w.grad();
        const float scale = std::max(1.0F, expected.abs().max().item<float>());
        for (const int threads : {1, 2, 3}) {
            const std::string what = describe(c, threads);
            const auto got = weightGradient(c, x.detach(), dy, threads);
            EXPECT_LE((got - expected).abs().max().item<float>(), 2e-5F * scale) << what;
            EXPECT_TRUE(torch::equal(weightGradient(c, x.detach(), dy, threads), got)) << what;
        }
    }
}

TEST(ConvGrad, GivesLibTorchsOutputAndInputGradientOnEveryThreadCountWithTheSameBitsEachTime) {
    if (!convgrad::available())
        GTEST_SKIP() << "this build has no oneDNN sgemm (libdnnl-dev): training takes LibTorch's convolutions";
    torch::manual_seed(32);
    // One image of one output pixel; an odd side whose windows leave the image; fewer images than threads (the input
    // gradient's split; the forward pass runs these on one thread: fewer than 64 rows a thread); 16 and 20 images of
    // 9 · 256 values a row on up to three threads, in 1 MiB im2col chunks of 113 rows (several a thread on one and two
    // threads, uneven shares on three).
    for (const Case c :
         {Case{1, 256, 16, 2}, Case{3, 256, 24, 7}, Case{2, 40, 8, 9}, Case{16, 256, 48, 8}, Case{20, 256, 16, 8}}) {
        const auto o = convgrad::outputSide(c.side);
        const auto x = torch::randn({c.n, c.in, c.side, c.side}).requires_grad_(true);
        const auto w = torch::randn({c.out, c.in, 3, 3});
        const auto b = torch::randn({c.out});
        const auto dy = torch::randn({c.n, c.out, o, o});
        const auto expectedY = torch::nn::functional::conv2d(
            x, w, torch::nn::functional::Conv2dFuncOptions().bias(b).stride(2).padding(1));
        expectedY.backward(dy);
        const auto expectedDx = x.grad();
        const float yScale = std::max(1.0F, expectedY.abs().max().item<float>());
        const float dxScale = std::max(1.0F, expectedDx.abs().max().item<float>());
        const auto xc = toNhwc(x.detach()), wc = toNhwc(w), dyc = toNhwc(dy);
        const auto forward = [&](int threads) {
            auto y = torch::full({c.n, o, o, c.out}, std::numeric_limits<float>::quiet_NaN());
            convgrad::forward(xc.data_ptr<float>(), c.n, c.in, c.side, wc.data_ptr<float>(), b.data_ptr<float>(), c.out,
                              y.data_ptr<float>(), threads);
            return y;
        };
        const auto dataGradient = [&](int threads) {
            auto dx = torch::full({c.n, c.side, c.side, c.in}, std::numeric_limits<float>::quiet_NaN());
            convgrad::dataGradient(dyc.data_ptr<float>(), c.n, c.in, c.side, wc.data_ptr<float>(), c.out,
                                   dx.data_ptr<float>(), threads);
            return dx;
        };
        for (const int threads : {1, 2, 3}) {
            const std::string what = describe(c, threads);
            const auto y = forward(threads), dx = dataGradient(threads);
            EXPECT_LE((fromNhwc(y) - expectedY.detach()).abs().max().item<float>(), 2e-5F * yScale) << what;
            EXPECT_LE((fromNhwc(dx) - expectedDx).abs().max().item<float>(), 2e-5F * dxScale) << what;
            EXPECT_TRUE(torch::equal(forward(threads), y)) << what;
            EXPECT_TRUE(torch::equal(dataGradient(threads), dx)) << what;
        }
    }
}

} // namespace
} // namespace nic

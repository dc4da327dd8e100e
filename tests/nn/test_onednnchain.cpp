// Compression's forward pass straight on oneDNN (OneDnnChain): the same values as LibTorch's operators for the
// layouts it picks and the batch sizes it sees, the errors for layers that do not fit, replicas on other threads,
// the first convolution's direct kernel (directconv.h), step timings, and the encoders that run on it. Image-by-image
// runs of the first two convolutions: test_onednnchainfused.cpp.
#include "core/base/error.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/gemmconv.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/onednnchain.h"
#include "core/encoders/nn/torchencoder.h"
#include "nntestsupport.h"
#include "onednnchaintestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

namespace nic {
namespace {

using namespace chaintest;

TEST(OneDnnChain, BatchesArePaddedToAFewSizes) {
    EXPECT_EQ(OneDnnChain::paddedBatch(1), 1);
    EXPECT_EQ(OneDnnChain::paddedBatch(3), 4);
    EXPECT_EQ(OneDnnChain::paddedBatch(8), 8);
    EXPECT_EQ(OneDnnChain::paddedBatch(9), 16);
    EXPECT_EQ(OneDnnChain::paddedBatch(63), 64);
    EXPECT_EQ(OneDnnChain::paddedBatch(64), 64);
    EXPECT_EQ(OneDnnChain::paddedBatch(65), 96);
    EXPECT_EQ(OneDnnChain::paddedBatch(256), 256);
    std::set<int> sizes;
    for (int n = 1; n <= 256; ++n) {
        const int p = OneDnnChain::paddedBatch(n);
        EXPECT_GE(p, n);
        EXPECT_LT(p - n, std::max(8, n / 2)) << n; // at most 7 rows up to 64, then 31
        sizes.insert(p);
    }
    EXPECT_LE(sizes.size(), 24U); // as many plans as run() keeps
}

class OneDnnChainFirstConvolution : public ::testing::TestWithParam<bool> {};

// With the direct first convolution (where the CPU has AVX-512) and with oneDNN's and a reorder.
TEST_P(OneDnnChainFirstConvolution, GivesLibTorchsValuesForEveryBatchSizeItSees) {
    SKIP_WITHOUT_ONEDNN();
    const Reference ref;
    const DirectFirstConvolution direct(GetParam());
    OneDnnChain chain(ref.layers(), 3, 20);
    EXPECT_EQ(chain.outputs(), 6);
    torch::manual_seed(8);
    // Exact and padded sizes, sizes seen before (their plans are reused), and more sizes than run() keeps plans for
    // (the least recently used goes: 5 is built again at the end).
    for (int n : {5, 1,   64, 5, 13,  100, 2,   3,   17,  25,  33,  41,  49,  57, 7,
                  9, 200, 64, 1, 300, 333, 366, 399, 432, 465, 498, 531, 600, 5}) {
        const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
        const auto expected = ref.forward(x);
        torch::Tensor got;
        try {
            got = runChain(chain, x, n % 2 ? std::nanf("") : 0.0F);
        } catch (const Error& e) {
            GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what()
                         << "); encoders fall back to LibTorch here";
        }
        EXPECT_LE((got - expected).abs().max().item<float>(),
                  1e-5F * std::max(1.0F, expected.abs().max().item<float>()))
            << "batch of " << n;
        const auto steps = chain.implementations();
        EXPECT_EQ(std::count_if(steps.begin(), steps.end(), [](const auto& s) { return s.rfind("reorder", 0) != 0; }),
                  6)
            << "one step per layer, besides reorders";
        for (const auto& s : steps)
            EXPECT_NE(s.rfind("ref", 0), 0U) << s; // no reference kernel
    }
}

INSTANTIATE_TEST_SUITE_P(DirectOrOneDnn, OneDnnChainFirstConvolution, ::testing::Bool(),
                         [](const auto& p) { return p.param ? std::string("direct") : std::string("oneDnn"); });

TEST(OneDnnChain, ReplicasOnOtherThreadsGiveTheSameBits) {
    SKIP_WITHOUT_ONEDNN();
    const Reference ref;
    OneDnnChain chain(ref.layers(), 3, 20);
    torch::manual_seed(9);
    const auto x = torch::rand({7, 3, 20, 20}) * 2 - 1;
    const auto expected = runChain(chain, x);
    auto replica = chain.replicate();
    ASSERT_NE(replica, nullptr);
    std::atomic<int> mismatches{0};
    auto work = [&](OneDnnChain* c) {
        for (int r = 0; r < 10; ++r)
            mismatches += torch::equal(runChain(*c, x), expected) ? 0 : 1;
    };
    std::thread a(work, &chain), b(work, replica.get());
    a.join();
    b.join();
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(OneDnnChain, LayersThatDoNotFitAreRefusedNamingTheLayer) {
    const Reference ref;
    auto refusal = [](const std::vector<OneDnnChain::Layer>& layers) {
        return test::errorOf<InvalidArgument>([&] { OneDnnChain chain(layers, 3, 20); });
    };
    auto layers = ref.layers();
    layers[1].weightShape[1] = 16; // expects 16 input channels after a layer with 32
    layers[1].weight.resize(24 * 16 * 9);
    EXPECT_EQ(refusal(layers), "oneDNN chain: convolution 2 does not fit the layer before it");
    layers = ref.layers();
    layers[4].weightShape = {20, 40 * 4 * 4 + 1};
    layers[4].weight.resize(20 * (40 * 4 * 4 + 1));
    EXPECT_EQ(refusal(layers), "oneDNN chain: dense layer 5 does not fit the layer before it");
    layers = ref.layers();
    layers[5].bias.pop_back();
    EXPECT_EQ(refusal(layers), "oneDNN chain: dense layer 6: weight or bias size does not match its shape");
    layers = ref.layers();
    layers.pop_back();
    layers.pop_back();
    EXPECT_EQ(refusal(layers), "oneDNN chain: the last layer must be a dense layer");
}

TEST(DirectConv, FitsOnlyThe3x3Stride2ShapeOnFewChannels) {
    EXPECT_TRUE(directconv::fits({32, 3, 3, 3}, 2, 1, 128));
    EXPECT_TRUE(directconv::fits({128, 3, 3, 3}, 2, 1, 64));
    EXPECT_TRUE(directconv::fits({16, 1, 3, 3}, 2, 1, 2));
    EXPECT_TRUE(directconv::fits({128, 3, 3, 3}, 2, 0, 64)); // 'valid': the published Keras encoders' first layer
    EXPECT_TRUE(directconv::fits({16, 3, 3, 3}, 2, 0, 3));
    EXPECT_TRUE(directconv::fits({16, 3, 3, 3}, 2, 0, 21));   // an odd side without padding
    EXPECT_FALSE(directconv::fits({16, 3, 3, 3}, 2, 0, 2));   // no whole window
    EXPECT_FALSE(directconv::fits({32, 3, 3, 3}, 1, 1, 128)); // stride
    EXPECT_FALSE(directconv::fits({32, 3, 3, 3}, 2, 2, 128)); // padding
    EXPECT_FALSE(directconv::fits({32, 3, 5, 5}, 2, 1, 128)); // kernel
    EXPECT_FALSE(directconv::fits({24, 3, 3, 3}, 2, 1, 128)); // not 16-channel groups
    EXPECT_FALSE(directconv::fits({32, 5, 3, 3}, 2, 1, 128)); // too many input channels
    EXPECT_FALSE(directconv::fits({32, 3, 3, 3}, 2, 1, 21));  // an odd side
    EXPECT_FALSE(directconv::fits({32, 3, 3}, 2, 1, 128));
    EXPECT_EQ(directconv::outSide(128, 1), 64);
    EXPECT_EQ(directconv::outSide(64, 0), 31);
    EXPECT_EQ(directconv::outSide(21, 0), 10);
}

TEST(DirectConv, GivesLibTorchsConvolutionForEveryChannelGroupAndEdge) {
    if (!directconv::available())
        GTEST_SKIP() << "the direct kernel is off here (no AVX-512, or NIC_DIRECT_FIRST_CONV=0): oneDNN's first "
                        "convolution and a reorder run instead";
    torch::manual_seed(11);
    // Channel groups of 64, 32 and 16 (112 = 64 + 32 + 16); output rows shorter than a tile (sides 2 and 6), one tile
    // and single pixels (20), several tiles (64); slopes below 1, none (−1) and above 1; planar and channels-last
    // input; padding 1 and none (on the even sides too, and on odd ones: 3, 7, 21 and 63 give 1, 3, 10 and 31 output
    // pixels a row; 64 → 31 is the published Keras encoders' first layer).
    for (int out : {16, 32, 48, 64, 112, 128})
        for (int in : {1, 2, 3, 4})
            for (int side : {2, 6, 20, 64, 3, 7, 21, 63})
                for (int pad : {1, 0})
                    for (float slope : {0.2F, -1.0F, 1.5F}) {
                        if (side >= 63 && (in != 3 || slope != 0.2F)) // the large sides once per channel count
                            continue;
                        if ((pad == 1 && side % 2 == 1) || (pad == 0 && side < 3))
                            continue; // shapes the kernel does not take (fits())
                        ASSERT_TRUE(directconv::fits({out, in, 3, 3}, 2, pad, side)) << side << ", padding " << pad;
                        const int n = 3, o = directconv::outSide(side, pad);
                        const auto w = torch::randn({out, in, 3, 3}) * 0.3, b = torch::randn({out}) * 0.2;
                        const auto x = torch::rand({n, in, side, side}) * 2 - 1;
                        auto expected = F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).stride(2).padding(pad));
                        ASSERT_EQ(expected.size(2), o);
                        if (slope >= 0)
                            expected = F::leaky_relu(expected, F::LeakyReLUFuncOptions().negative_slope(slope));
                        expected = expected.permute({0, 2, 3, 1}).contiguous(); // channels-last
                        const auto wc = w.contiguous();
                        const auto taps = directconv::tapMajor(
                            std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel()), out, in);
                        const auto planar = x.contiguous(), channelsLast = x.permute({0, 2, 3, 1}).contiguous();
                        for (int threads : {1, 2})
                            for (bool channelsLastInput : {false, true}) {
                                auto got = torch::full({n, o, o, out}, std::nanf(""));
                                directconv::run((channelsLastInput ? channelsLast : planar).data_ptr<float>(), n, in,
                                                side, pad, taps.data(), b.data_ptr<float>(), out, slope,
                                                got.data_ptr<float>(), threads, channelsLastInput);
                                EXPECT_LE((got - expected).abs().max().item<float>(),
                                          1e-5F * std::max(1.0F, expected.abs().max().item<float>()))
                                    << out << " from " << in << " channels at " << side << "², padding " << pad
                                    << ", slope " << slope << ", " << threads << " thread(s), "
                                    << (channelsLastInput ? "channels-last" : "planar") << " input";
                            }
                    }
}

TEST(DirectConv, WideFitsThe3x3Stride2Padding1ShapeIn64ChannelGroups) {
    EXPECT_TRUE(directconv::fitsWide({64, 32, 3, 3}, 2, 1, 64));
    EXPECT_TRUE(directconv::fitsWide({128, 1, 3, 3}, 2, 1, 2));
    EXPECT_TRUE(directconv::fitsWide({512, 1024, 3, 3}, 2, 1, 8));
    EXPECT_FALSE(directconv::fitsWide({64, 32, 3, 3}, 1, 1, 64));   // stride
    EXPECT_FALSE(directconv::fitsWide({64, 32, 3, 3}, 2, 0, 64));   // padding
    EXPECT_FALSE(directconv::fitsWide({64, 32, 1, 1}, 2, 1, 64));   // kernel
    EXPECT_FALSE(directconv::fitsWide({48, 32, 3, 3}, 2, 1, 64));   // not 64-channel groups
    EXPECT_FALSE(directconv::fitsWide({64, 1025, 3, 3}, 2, 1, 64)); // more input channels than its row of zeros
    EXPECT_FALSE(directconv::fitsWide({64, 32, 3, 3}, 2, 1, 21));   // an odd side
    EXPECT_FALSE(directconv::fitsWide({64, 32, 3}, 2, 1, 64));
}

TEST(DirectConv, WideKernelGivesLibTorchsConvolutionForEveryBlockAndEdge) {
    if (!directconv::wideAvailable())
        GTEST_SKIP() << "the wide kernel is off here (no AVX-512, or NIC_DIRECT_WIDE_CONV=0): oneDNN's kernels run "
                        "instead";
    torch::manual_seed(13);
    // Channel groups of 64 (one and two); single pixels (side 2), blocks that cross rows and images (6, 20: 9 and 100
    // pixels an image), many blocks (32); 1 to 64 input channels; slopes below 1, none (−1) and above 1; 1 and 2
    // threads, whose shares end inside an image.
    for (int out : {64, 128})
        for (int in : {1, 5, 32, 64})
            for (int side : {2, 6, 20, 32})
                for (float slope : {0.2F, -1.0F, 1.5F}) {
                    if (side == 32 && (in != 32 || slope != 0.2F)) // the large side once per output width
                        continue;
                    for (int n : {1, 3}) {
                        const auto w = torch::randn({out, in, 3, 3}) * 0.3, b = torch::randn({out}) * 0.2;
                        const auto x = torch::rand({n, in, side, side}) * 2 - 1;
                        auto expected = F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).stride(2).padding(1));
                        if (slope >= 0)
                            expected = F::leaky_relu(expected, F::LeakyReLUFuncOptions().negative_slope(slope));
                        expected = expected.permute({0, 2, 3, 1}).contiguous();
                        const auto wc = w.contiguous();
                        const auto taps = directconv::wideTaps(
                            std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel()), out, in);
                        const auto channelsLast = x.permute({0, 2, 3, 1}).contiguous();
                        for (int threads : {1, 2}) {
                            auto got = torch::full({n, side / 2, side / 2, out}, std::nanf(""));
                            const auto calls = directconv::wideCalls();
                            directconv::runWide(channelsLast.data_ptr<float>(), n, in, side, taps.data(),
                                                b.data_ptr<float>(), out, slope, got.data_ptr<float>(), threads);
                            EXPECT_EQ(directconv::wideCalls(), calls + 1);
                            EXPECT_LE((got - expected).abs().max().item<float>(),
                                      1e-5F * std::max(1.0F, expected.abs().max().item<float>()))
                                << out << " from " << in << " channels at " << side << "², " << n << " image(s), slope "
                                << slope << ", " << threads << " thread(s)";
                        }
                    }
                }
}

// The VAE-type encoder's shape in small: 3 → 32 → 64 channels, both 3 × 3 with stride 2, then a dense layer. The
// second convolution runs on the wide kernel, channels-last in and out (no reorder), with oneDNN's values.
TEST(OneDnnChain, TheWideConvolutionGivesOneDnnsValues) {
    SKIP_WITHOUT_ONEDNN();
    if (!directconv::wideAvailable())
        GTEST_SKIP() << "the wide kernel is off here (no AVX-512, or NIC_DIRECT_WIDE_CONV=0): oneDNN's kernels run "
                        "instead";
    const DirectFirstConvolution directFirst(true); // channels-last from the first layer on: no reorder at all
    const TwoConvolutions net(14, 32, 64, 16, 10);
    const auto viaOneDnn = buildWith<WideConvolutions>(false, net.layers(), 16);
    OneDnnChain wide(net.layers(), 3, 16);
    const auto x = torch::rand({13, 3, 16, 16}) * 2 - 1;
    const auto expected = net.forward(x);
    torch::Tensor a, b;
    const auto calls = directconv::wideCalls();
    std::uint64_t afterWide = 0;
    try {
        a = runChain(wide, x);
        afterWide = directconv::wideCalls();
        b = runChain(*viaOneDnn, x);
    } catch (const Error& e) {
        GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
    }
    EXPECT_GT(afterWide, calls);
    EXPECT_EQ(directconv::wideCalls(), afterWide) << "only the chain built with the wide kernel on runs it";
    const float scale = std::max(1.0F, expected.abs().max().item<float>());
    EXPECT_LE((a - expected).abs().max().item<float>(), 1e-5F * scale);
    EXPECT_LE((a - b).abs().max().item<float>(), 1e-5F * scale);
    const auto steps = wide.implementations(), before = viaOneDnn->implementations();
    ASSERT_GE(steps.size(), 2U);
    EXPECT_EQ(steps.at(1), "direct 3x3/2 convolution, channels-last to channels-last (AVX-512)");
    EXPECT_EQ(std::count(steps.begin(), steps.end(), "reorder to channels-last"), 0);
    EXPECT_EQ(before.size(), steps.size());
    EXPECT_EQ(before.at(1).rfind("direct", 0), std::string::npos) << before.at(1);
    const auto replica = wide.replicate();
    EXPECT_TRUE(runChain(*replica, x).equal(a)) << "a replica shares the wide kernel's weights";
    EXPECT_EQ(replica->implementations(), steps);
}

TEST(OneDnnChain, ConvolutionsOnIm2colAndSgemmGiveOneDnnsValues) {
    SKIP_WITHOUT_ONEDNN();
    if (!gemmconv::available())
        GTEST_SKIP() << "this build has no oneDNN sgemm: every convolution runs on oneDNN's kernels";
    const Reference ref;
    torch::manual_seed(16);
    const std::string gemm = "im2col + sgemm (oneDNN)";
    const auto viaOneDnnChain = buildWith<GemmConvolutions>(OneDnnChain::GemmConvolutions::Never, ref.layers(), 20);
    const auto gemmChain = buildWith<GemmConvolutions>(OneDnnChain::GemmConvolutions::Always, ref.layers(), 20);
    OneDnnChain &viaOneDnn = *viaOneDnnChain, &chain = *gemmChain;
    const auto replica = chain.replicate(); // the mode the chain was built with, whatever the setting is now
    for (const int n : {5, 64}) {
        const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
        torch::Tensor a, b, c;
        const auto calls = gemmconv::calls();
        try {
            b = runChain(viaOneDnn, x);
            a = runChain(chain, x, std::nanf(""));
            c = runChain(*replica, x);
        } catch (const Error& e) {
            GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
        }
        const auto expected = ref.forward(x);
        const float scale = std::max(1.0F, expected.abs().max().item<float>());
        EXPECT_LE((a - expected).abs().max().item<float>(), 1e-5F * scale) << "batch of " << n;
        EXPECT_LE((a - b).abs().max().item<float>(), 1e-5F * scale) << "batch of " << n;
        EXPECT_TRUE(c.equal(a)) << "a replica computes the same bits";
        // The three convolutions after the first (3 × 3 / 1 / 1, 3 × 3 / 2 / 0, 1 × 1), in both chains' runs.
        EXPECT_EQ(gemmconv::calls(), calls + 6) << "batch of " << n;
        const auto steps = chain.implementations(), before = viaOneDnn.implementations();
        EXPECT_EQ(std::count(steps.begin(), steps.end(), gemm), 3) << "batch of " << n;
        EXPECT_EQ(std::count(before.begin(), before.end(), gemm), 0) << "batch of " << n;
        EXPECT_EQ(steps.size(), before.size()) << "the same steps: no reorder is added or dropped";
        EXPECT_EQ(replica->implementations(), steps);
    }
}

TEST(OneDnnChain, MeasuresIm2colAgainstOneDnnOncePerShapeAndBatchSize) {
    SKIP_WITHOUT_ONEDNN();
    if (!gemmconv::available())
        GTEST_SKIP() << "this build has no oneDNN sgemm: every convolution runs on oneDNN's kernels";
    // 16² → 8² → 4²: the second convolution is a candidate (an output of 4 × 4). Channel counts no other test uses, so
    // that no measurement from earlier in the process answers for it.
    const TwoConvolutions net(17, 16, 40, 16, 5);
    const auto x = torch::rand({32, 3, 16, 16}) * 2 - 1, small = x.narrow(0, 0, 8);
    const auto measured = OneDnnChain::GemmConvolutions::Measured;
    const auto firstChain = buildWith<GemmConvolutions>(measured, net.layers(), 16);
    const auto secondChain = buildWith<GemmConvolutions>(measured, net.layers(), 16);
    const auto third = buildWith<GemmConvolutions>(OneDnnChain::GemmConvolutions::Never, net.layers(), 16);
    OneDnnChain &first = *firstChain, &second = *secondChain;
    // Run again in the same process (--gtest_repeat), the shape is known from the first time: no measurement then.
    static int runs = 0;
    const bool fresh = runs++ == 0;
    torch::Tensor a, b, c;
    try {
        // The small batch first: oneDNN's layout of the weights exists before the sgemm path asks for its own.
        auto measurements = OneDnnChain::gemmMeasurements();
        c = runChain(second, small);
        EXPECT_EQ(OneDnnChain::gemmMeasurements(), measurements) << "batches under 32 are not measured";
        a = runChain(first, x);
        if (fresh) {
            EXPECT_EQ(OneDnnChain::gemmMeasurements(), measurements + 1) << "the candidate layer at a batch of 32";
        }
        measurements = OneDnnChain::gemmMeasurements();
        b = runChain(second, x);
        EXPECT_EQ(OneDnnChain::gemmMeasurements(), measurements) << "the same shape and batch: measured before";
    } catch (const Error& e) {
        GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
    }
    const auto chosen = first.stepTimes(32);
    // The candidate's step: after the first convolution, and its reorder where oneDNN computes that one.
    const std::size_t k = first.firstConvolutionIsDirect() ? 1 : 2;
    ASSERT_EQ(chosen.size(), k + 2);
    EXPECT_EQ(second.stepTimes(32).at(k).impl, chosen.at(k).impl) << "both chains take the measured choice";
    EXPECT_NE(second.stepTimes(8).at(k).impl, "im2col + sgemm (oneDNN)") << "oneDNN's below a batch of 32";
    const auto expected = net.forward(x);
    const float scale = std::max(1.0F, expected.abs().max().item<float>());
    EXPECT_LE((a - expected).abs().max().item<float>(), 1e-5F * scale) << chosen.at(k).impl;
    EXPECT_TRUE(b.equal(a));
    EXPECT_LE((c - expected.narrow(0, 0, 8)).abs().max().item<float>(), 1e-5F * scale);
    const auto measurements = OneDnnChain::gemmMeasurements();
    EXPECT_LE((runChain(*third, x) - expected).abs().max().item<float>(), 1e-5F * scale);
    EXPECT_NE(third->stepTimes(32).at(k).impl, "im2col + sgemm (oneDNN)") << "built with the choice off";
    EXPECT_EQ(OneDnnChain::gemmMeasurements(), measurements);
}

TEST(OneDnnChain, TheDirectFirstConvolutionGivesOneDnnsValuesWithoutTheReorder) {
    SKIP_WITHOUT_ONEDNN();
    if (!directconv::available())
        GTEST_SKIP() << "the direct kernel is off here (no AVX-512, or NIC_DIRECT_FIRST_CONV=0): oneDNN's first "
                        "convolution and a reorder run instead";
    const Reference ref;
    auto viaOneDnn = [&] {
        const DirectFirstConvolution off(false);
        return std::make_unique<OneDnnChain>(ref.layers(), 3, 20);
    }();
    OneDnnChain direct(ref.layers(), 3, 20);
    EXPECT_TRUE(direct.firstConvolutionIsDirect());
    EXPECT_FALSE(viaOneDnn->firstConvolutionIsDirect());
    EXPECT_TRUE(direct.replicate()->firstConvolutionIsDirect());
    torch::manual_seed(12);
    const auto x = torch::rand({13, 3, 20, 20}) * 2 - 1;
    torch::Tensor a, b;
    try {
        a = runChain(direct, x);
        b = runChain(*viaOneDnn, x);
    } catch (const Error& e) {
        GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
    }
    EXPECT_LE((a - b).abs().max().item<float>(), 1e-5F * std::max(1.0F, b.abs().max().item<float>()));
    const auto steps = direct.implementations(), before = viaOneDnn->implementations();
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), "direct 3x3/2 convolution to channels-last (AVX-512)");
    // oneDNN's first convolution writes its blocked layout, reordered for the next; the direct one writes
    // channels-last.
    EXPECT_EQ(before.size(), steps.size() + 1);
    EXPECT_EQ(before.at(1), "reorder to channels-last");
    EXPECT_EQ(std::count(steps.begin(), steps.end(), "reorder to channels-last"), 0);
}

TEST(OneDnnChain, TimedStepsCountTheirRunsAndFlops) {
    SKIP_WITHOUT_ONEDNN();
    const Reference ref;
    OneDnnChain chain(ref.layers(), 3, 20);
    const auto x = torch::rand({5, 3, 20, 20});
    try {
        runChain(chain, x); // builds the plan for 8, untimed
        {
            const TimedSteps timed;
            for (int r = 0; r < 3; ++r)
                runChain(chain, x);
        }
        runChain(chain, x); // untimed again
    } catch (const Error& e) {
        GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
    }
    EXPECT_TRUE(chain.stepTimes(5).empty()) << "plans are kept by padded batch size";
    const auto steps = chain.stepTimes(8);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front().what, "convolution 1: 3 -> 32 channels, 20^2 -> 10^2");
    EXPECT_EQ(steps.back().what, "dense layer 6: 20 -> 6");
    // Multiply-adds × 2 of a batch of 8: 20² → 10² (32 from 3, 3 × 3), 10² (24 from 32), 10² → 4² (48 from 24), 4² (40
    // from 48, 1 × 1), 640 → 20, 20 → 6.
    std::vector<double> flops;
    for (const auto& s : steps) {
        EXPECT_EQ(s.runs, 3) << s.impl;
        EXPECT_GT(s.seconds, 0.0) << s.impl;
        if (s.flops > 0)
            flops.push_back(s.flops);
        else
            EXPECT_EQ(s.impl.rfind("reorder", 0), 0U) << s.impl;
    }
    const std::vector<double> expected = {2.0 * 8 * 32 * 100 * 27, 2.0 * 8 * 24 * 100 * 288, 2.0 * 8 * 48 * 16 * 216,
                                          2.0 * 8 * 40 * 16 * 48,  2.0 * 8 * 20 * 640,       2.0 * 8 * 6 * 20};
    EXPECT_EQ(flops, expected);
}

class OneDnnEncoders : public ::testing::TestWithParam<const char*> {};

TEST_P(OneDnnEncoders, RunOnOneDnnWithThePlainModulesEmbeddings) {
    SKIP_WITHOUT_ONEDNN();
    const auto kind = parseEncoderKind(GetParam());
    ASSERT_TRUE(kind);
    ComputeOptions cpu{"cpu", 1};
    auto fast = createEncoder(*kind, 64, 16, 3, 4, cpu);
    cpu.optimiseInference = false;
    auto plain = createEncoder(*kind, 64, 16, 3, 4, cpu);
    ASSERT_TRUE(dynamic_cast<TorchPatchEncoder*>(fast.get())->runsOnOneDnn());
    EXPECT_FALSE(dynamic_cast<TorchPatchEncoder*>(plain.get())->runsOnOneDnn());
    const int n = 9; // padded to 16
    const auto nhwc = test::randomPatches(n, 64, 3);
    std::vector<float> a(static_cast<std::size_t>(n * 16)), b(a.size());
    const auto wideBefore = directconv::wideCalls();
    fast->encode(nhwc.data(), n, a.data());
    plain->encode(nhwc.data(), n, b.data());
    // The VAE-type layout (also the supervised encoders') has a 32 → 64 stride-2 layer: the wide kernel's, where it
    // runs.
    const bool wideLayer = GetParam() != std::string("bigan") && directconv::wideAvailable();
    EXPECT_EQ(directconv::wideCalls() > wideBefore, wideLayer);
    const auto kernels = oneDnnSteps(*fast);
    EXPECT_EQ(std::count(kernels.begin(), kernels.end(),
                         "direct 3x3/2 convolution, channels-last to channels-last (AVX-512)"),
              wideLayer ? 1 : 0);
    EXPECT_TRUE(dynamic_cast<TorchPatchEncoder*>(fast.get())->runsOnOneDnn())
        << "the oneDNN chain fell back to LibTorch on this CPU";
    EXPECT_EQ(oneDnnSteps(*fast).empty(), !dynamic_cast<TorchPatchEncoder*>(fast.get())->runsOnOneDnn());
    EXPECT_TRUE(oneDnnSteps(*plain).empty());
    float scale = 1.0F;
    for (float v : b)
        scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_NEAR(a[i], b[i], 2e-5F * scale) << i;

    // A smaller batch after it: its own padded plan, the same embeddings for the same patches.
    std::vector<float> few(static_cast<std::size_t>(3 * 16));
    fast->encode(nhwc.data(), 3, few.data());
    for (std::size_t i = 0; i < few.size(); ++i)
        EXPECT_NEAR(few[i], b[i], 2e-5F * scale) << i;

    // Switched off, the optimised encoder runs its folded LibTorch modules, with the same embeddings.
    cpu.optimiseInference = true;
    auto modules = [&] {
        const test::OneDnnInferenceOff off;
        return createEncoder(*kind, 64, 16, 3, 4, cpu);
    }();
    EXPECT_FALSE(dynamic_cast<TorchPatchEncoder*>(modules.get())->runsOnOneDnn());
    std::vector<float> c(a.size());
    modules->encode(nhwc.data(), n, c.data());
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_NEAR(a[i], c[i], 2e-5F * scale) << i;
}

INSTANTIATE_TEST_SUITE_P(Kinds, OneDnnEncoders, ::testing::Values("vae", "bigan", "supervised-tissue"),
                         [](const auto& p) {
                             std::string name = p.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

} // namespace
} // namespace nic

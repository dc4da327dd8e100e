// The oneDNN chain's first two convolutions run image by image (OneDnnChain, directconv.h): the same bits as the
// whole batch layer by layer, on the wide kernel and on oneDNN's one-image second convolution, and the chain's input
// converted image by image or for the whole batch (OneDnnChain::InputRows).
#include "core/base/error.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/onednnchain.h"
#include "onednnchaintestsupport.h"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

namespace nic {
namespace {

using namespace chaintest;

TEST(OneDnnChain, TheFirstTwoConvolutionsRunImageByImageWithTheSameBits) {
    SKIP_WITHOUT_ONEDNN();
    if (!directconv::available() || !directconv::wideAvailable())
        GTEST_SKIP() << "the direct kernels are off here (no AVX-512, or switched off): nothing to run image by image";
    // A VAE-shaped start: 3 → 32 → 64 channels, both on the direct kernels, then a dense layer.
    const TwoConvolutions net(18, 32, 64, 20, 7, 0.2F, 0.1F);
    const auto fused = buildWith<FusedFirstConvolutions>(true, net.layers(), 20);
    const auto whole = buildWith<FusedFirstConvolutions>(false, net.layers(), 20);
    const auto replica = fused->replicate();
    for (const int n : {1, 13, 64}) {
        const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
        torch::Tensor a, b, c, d;
        std::uint64_t perRun[2] = {0, 0};
        try {
            auto calls = directconv::wideCalls();
            a = runChain(*fused, x, std::nanf(""));
            perRun[0] = directconv::wideCalls() - calls;
            calls = directconv::wideCalls();
            b = runChain(*whole, x);
            perRun[1] = directconv::wideCalls() - calls;
            c = runChain(*replica, x);
            const int threads = 2; // two images at a time
            auto input = torch::zeros({OneDnnChain::paddedBatch(n), 3, 20, 20});
            input.narrow(0, 0, n).copy_(x);
            d = torch::empty({n, fused->outputs()});
            fused->run(input.data_ptr<float>(), n, d.data_ptr<float>(), threads);
        } catch (const Error& e) {
            GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
        }
        EXPECT_TRUE(a.equal(b)) << "batch of " << n << ": the same kernels on the same values";
        EXPECT_TRUE(c.equal(a)) << "batch of " << n;
        EXPECT_TRUE(d.equal(a)) << "batch of " << n << " on two threads";
        EXPECT_EQ(perRun[0], static_cast<std::uint64_t>(OneDnnChain::paddedBatch(n))) << "one call an image";
        EXPECT_EQ(perRun[1], 1U) << "one call a batch";
        const auto expected = net.forward(x);
        EXPECT_LE((a - expected).abs().max().item<float>(), 1e-5F * std::max(1.0F, expected.abs().max().item<float>()));
    }
    // Timed, the pair's two steps each count one run a batch.
    const auto x = torch::rand({8, 3, 20, 20});
    {
        const TimedSteps timed;
        runChain(*fused, x);
        runChain(*fused, x);
    }
    const auto steps = fused->stepTimes(8);
    ASSERT_EQ(steps.size(), 3U);
    EXPECT_EQ(steps[0].runs, 2);
    EXPECT_EQ(steps[1].runs, 2);
    EXPECT_GT(steps[0].seconds, 0.0);
    EXPECT_GT(steps[1].seconds, 0.0);
}

TEST(OneDnnChain, ASecondConvolutionOnOneDnnRunsImageByImageToo) {
    SKIP_WITHOUT_ONEDNN();
    if (!directconv::available())
        GTEST_SKIP() << "the direct kernel is off here (no AVX-512, or NIC_DIRECT_FIRST_CONV=0): nothing to run image "
                        "by image";
    // The reference chain's second convolution (32 → 24, 3 × 3, stride 1) is on oneDNN: built for one image, it takes
    // each image's first-layer output from the small buffer.
    const Reference ref;
    const auto fused = buildWith<FusedFirstConvolutions>(true, ref.layers(), 20);
    const auto whole = buildWith<FusedFirstConvolutions>(false, ref.layers(), 20);
    torch::manual_seed(19);
    for (const int n : {1, 13, 64}) {
        const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
        torch::Tensor a, b;
        std::uint64_t perRun[2] = {0, 0};
        try {
            auto calls = directconv::calls();
            a = runChain(*fused, x, std::nanf(""));
            perRun[0] = directconv::calls() - calls;
            calls = directconv::calls();
            b = runChain(*whole, x);
            perRun[1] = directconv::calls() - calls;
        } catch (const Error& e) {
            GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what() << ")";
        }
        const auto expected = ref.forward(x);
        const float scale = std::max(1.0F, expected.abs().max().item<float>());
        EXPECT_LE((a - expected).abs().max().item<float>(), 1e-5F * scale) << "batch of " << n;
        EXPECT_LE((a - b).abs().max().item<float>(), 1e-5F * scale) << "batch of " << n;
        EXPECT_EQ(perRun[0], static_cast<std::uint64_t>(OneDnnChain::paddedBatch(n))) << "one call an image";
        EXPECT_EQ(perRun[1], 1U) << "one call a batch";
        EXPECT_EQ(fused->implementations(), whole->implementations());
    }
}

/// OneDnnChain::InputRows over the rows of a float [n, 3, side, side] tensor, recording each call (first, count).
struct RecordedRows {
    torch::Tensor x;
    mutable std::vector<std::pair<int, int>> calls;

    static void fill(const void* context, int first, int count, float* into) {
        const auto& r = *static_cast<const RecordedRows*>(context);
        r.calls.emplace_back(first, count);
        const auto rows = r.x.narrow(0, first, count).contiguous();
        std::memcpy(into, rows.data_ptr<float>(), static_cast<std::size_t>(rows.numel()) * sizeof(float));
    }
    OneDnnChain::InputRows rows() const { return {&RecordedRows::fill, this}; }
};

using InputPerImage = ScopedSwitch<&OneDnnChain::convertInputPerImage>;

TEST(OneDnnChain, ConvertsItsInputImageByImageOrForTheBatchWithTheSameBits) {
    SKIP_WITHOUT_ONEDNN();
    // A VAE-shaped start (two convolutions fused where the direct kernels run, the second on the wide kernel, then a
    // dense layer), fused and not; and the reference chain, whose second convolution (32 → 24, stride 1) runs on
    // oneDNN's kernel for one image when fused.
    const TwoConvolutions net(18, 32, 64, 20, 7, 0.2F, 0.1F);
    const Reference ref;
    const auto fused = buildWith<FusedFirstConvolutions>(true, net.layers(), 20);
    const auto whole = buildWith<FusedFirstConvolutions>(false, net.layers(), 20);
    const auto refFused = buildWith<FusedFirstConvolutions>(true, ref.layers(), 20);
    const bool direct = directconv::available(), wide = directconv::wideAvailable();
    torch::manual_seed(23);
    for (const int threads : {1, 2}) {
        for (const int n : {1, 13, 64}) {
            const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
            for (OneDnnChain* chain : {fused.get(), whole.get(), refFused.get()}) {
                for (const bool perImage : {true, false}) {
                    const InputPerImage scope(perImage);
                    const RecordedRows rows{x, {}};
                    torch::Tensor expected, got = torch::empty({n, chain->outputs()});
                    try {
                        auto input = torch::zeros({OneDnnChain::paddedBatch(n), 3, 20, 20});
                        input.narrow(0, 0, n).copy_(x);
                        expected = torch::empty({n, chain->outputs()});
                        chain->run(input.data_ptr<float>(), n, expected.data_ptr<float>(), threads);
                        chain->run(rows.rows(), n, got.data_ptr<float>(), threads);
                    } catch (const Error& e) {
                        GTEST_SKIP() << "oneDNN has no optimised kernel for this chain on this CPU (" << e.what()
                                     << ")";
                    }
                    const std::string where = "batch of " + std::to_string(n) + ", " + std::to_string(threads) +
                                              " thread(s), " +
                                              (chain == fused.get()   ? "fused"
                                               : chain == whole.get() ? "not fused"
                                                                      : "reference, fused") +
                                              (perImage ? ", image by image on" : ", image by image off");
                    EXPECT_TRUE(got.equal(expected)) << where << ": the same bits as from floats with zero padding";
                    // Every row below n converted once, in order; none of the padded rows.
                    int next = 0;
                    for (const auto& [first, count] : rows.calls) {
                        EXPECT_EQ(first, next) << where;
                        EXPECT_GT(count, 0) << where;
                        next = first + count;
                    }
                    EXPECT_EQ(next, n) << where;
                    // Rounds: as many images as threads on the wide kernel, one on oneDNN's kernel for one image
                    // (which, where oneDNN has no optimised one, leaves the pair unfused: the whole batch at once).
                    const bool wideSecond = chain == fused.get() && wide;
                    const bool maybeFused = chain != whole.get() && perImage && direct;
                    const int perRound = wideSecond ? threads : 1;
                    if (maybeFused && (wideSecond || rows.calls.size() != 1U || n == 1)) {
                        EXPECT_EQ(rows.calls.size(), static_cast<std::size_t>((n + perRound - 1) / perRound)) << where;
                        for (const auto& call : rows.calls)
                            EXPECT_LE(call.second, perRound) << where;
                    } else {
                        EXPECT_EQ(rows.calls.size(), 1U) << where << ": the whole batch at once";
                    }
                }
            }
        }
    }
    // Timed, the conversion is a step of its own ahead of the first convolution, counting the runs of its mode.
    const auto x = torch::rand({8, 3, 20, 20});
    const RecordedRows rows{x, {}};
    auto out = torch::empty({8, fused->outputs()});
    {
        const TimedSteps timed;
        {
            const InputPerImage batchFirst(false);
            fused->run(rows.rows(), 8, out.data_ptr<float>(), 1);
        }
        const InputPerImage perImage(true);
        rows.calls.clear();
        fused->run(rows.rows(), 8, out.data_ptr<float>(), 1);
        fused->run(rows.rows(), 8, out.data_ptr<float>(), 1);
    }
    const bool roundByRound = rows.calls.size() > 2; // one call a run when the batch is converted first
    if (direct && wide) {
        EXPECT_TRUE(roundByRound) << "the pair fused with the wide kernel converts image by image";
    }
    if (!direct) {
        EXPECT_FALSE(roundByRound) << "without the direct kernel nothing runs image by image";
    }
    const auto steps = fused->stepTimes(8);
    const std::size_t own = fused->implementations().size(); // the last run's plan: a batch of 8
    ASSERT_EQ(steps.size(), own + 1);
    EXPECT_EQ(steps[0].what,
              roundByRound ? "input: bytes to floats, image by image" : "input: bytes to floats, the batch");
    EXPECT_EQ(steps[0].runs, roundByRound ? 2 : 3) << "the runs since the mode last changed";
    EXPECT_GT(steps[0].seconds, 0.0);
    EXPECT_EQ(steps[0].flops, 0.0);
    for (std::size_t i = 1; i < steps.size(); ++i) // then the chain's own steps, which implementations() lists alone
        EXPECT_NE(steps[i].what.rfind("input:", 0), 0U) << steps[i].what;
}

} // namespace
} // namespace nic

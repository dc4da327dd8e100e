// Compression's forward pass straight on oneDNN (OneDnnChain): the same values as LibTorch's operators for the
// layouts it picks and the batch sizes it sees, the errors for layers that do not fit, replicas on other threads,
// and the encoders that run on it.
#include "core/base/error.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/onednnchain.h"
#include "core/encoders/nn/torchencoder.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

namespace nic {
namespace {

namespace F = torch::nn::functional;

OneDnnChain::Layer layer(const torch::Tensor& w, const torch::Tensor& b, bool conv, int stride, int padding,
                         float slope) {
    OneDnnChain::Layer l;
    l.conv = conv;
    l.weightShape = w.sizes().vec();
    const auto wc = w.contiguous(), bc = b.contiguous();
    l.weight.assign(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel());
    l.bias.assign(bc.data_ptr<float>(), bc.data_ptr<float>() + bc.numel());
    l.stride = stride;
    l.padding = padding;
    l.leakySlope = slope;
    return l;
}

/// A chain of every kind of step the encoders use: a first convolution on three planar channels (blocked output), a
/// reorder to channels-last, convolutions with and without LeakyReLU, with stride 1 and 2, with and without padding,
/// on channel counts that are and are not multiples of 16, then two dense layers.
struct Reference {
    std::vector<torch::Tensor> w, b;
    Reference() {
        torch::manual_seed(5);
        const std::vector<std::vector<std::int64_t>> shapes = {{32, 3, 3, 3}, {24, 32, 3, 3}, {48, 24, 3, 3}, {40, 48, 1, 1}};
        for (const auto& s : shapes) {
            w.push_back(torch::randn(s) * std::sqrt(2.0 / static_cast<double>(s[1] * s[2] * s[3])));
            b.push_back(torch::randn({s[0]}) * 0.2);
        }
        w.push_back(torch::randn({20, 40 * 4 * 4}) * 0.05);
        b.push_back(torch::randn({20}) * 0.2);
        w.push_back(torch::randn({6, 20}) * 0.2);
        b.push_back(torch::randn({6}) * 0.2);
    }
    std::vector<OneDnnChain::Layer> layers() const {
        return {layer(w[0], b[0], true, 2, 1, 0.2F), layer(w[1], b[1], true, 1, 1, 0.2F),
                layer(w[2], b[2], true, 2, 0, -1.0F), layer(w[3], b[3], true, 1, 0, 0.1F),
                layer(w[4], b[4], false, 1, 0, 0.2F), layer(w[5], b[5], false, 1, 0, -1.0F)};
    }
    /// LibTorch's own operators on NCHW input [n, 3, 20, 20]: 20 → 10 → 10 → 4 → 4.
    torch::Tensor forward(const torch::Tensor& x) const {
        auto lrelu = [](const torch::Tensor& t, double s) { return F::leaky_relu(t, F::LeakyReLUFuncOptions().negative_slope(s)); };
        auto h = lrelu(F::conv2d(x, w[0], F::Conv2dFuncOptions().bias(b[0]).stride(2).padding(1)), 0.2);
        h = lrelu(F::conv2d(h, w[1], F::Conv2dFuncOptions().bias(b[1]).padding(1)), 0.2);
        h = F::conv2d(h, w[2], F::Conv2dFuncOptions().bias(b[2]).stride(2));
        h = lrelu(F::conv2d(h, w[3], F::Conv2dFuncOptions().bias(b[3])), 0.1);
        h = lrelu(F::linear(h.flatten(1), w[4], b[4]), 0.2);
        return F::linear(h, w[5], b[5]);
    }
};

torch::Tensor runChain(OneDnnChain& chain, const torch::Tensor& x) {
    auto out = torch::empty({x.size(0), chain.outputs()});
    const auto planar = x.contiguous();
    chain.run(planar.data_ptr<float>(), static_cast<int>(x.size(0)), out.data_ptr<float>(), 1);
    return out;
}

#define SKIP_WITHOUT_ONEDNN()                                                                                          \
    do {                                                                                                               \
        if (!OneDnnChain::available()) {                                                                               \
            GTEST_SKIP() << "this build has no oneDNN (libdnnl-dev): compression runs through LibTorch";              \
        }                                                                                                              \
    } while (0)

TEST(OneDnnChain, GivesLibTorchsValuesForEveryBatchSizeItSees) {
    SKIP_WITHOUT_ONEDNN();
    const Reference ref;
    OneDnnChain chain(ref.layers(), 3, 20);
    EXPECT_EQ(chain.outputs(), 6);
    torch::manual_seed(8);
    for (int n : {5, 1, 64, 5}) { // a batch size it has seen before reuses its plan
        const auto x = torch::rand({n, 3, 20, 20}) * 2 - 1;
        const auto expected = ref.forward(x);
        const auto got = runChain(chain, x);
        EXPECT_LE((got - expected).abs().max().item<float>(), 1e-5F * std::max(1.0F, expected.abs().max().item<float>()))
            << "batch of " << n;
        const auto steps = chain.implementations(n);
        ASSERT_EQ(steps.size(), 7U) << "six layers and one reorder to channels-last";
        EXPECT_EQ(steps[1], "reorder to channels-last");
        for (const auto& s : steps)
            EXPECT_NE(s.rfind("ref", 0), 0U) << s; // no reference kernel
    }
}

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
    auto layers = ref.layers();
    layers[1].weightShape[1] = 16; // expects 16 input channels after a layer with 32
    layers[1].weight.resize(24 * 16 * 9);
    EXPECT_THROW(
        {
            try {
                OneDnnChain chain(layers, 3, 20);
            } catch (const InvalidArgument& e) {
                EXPECT_STREQ(e.what(), "oneDNN chain: convolution 2 does not fit the layer before it");
                throw;
            }
        },
        InvalidArgument);
    layers = ref.layers();
    layers[4].weightShape = {20, 40 * 4 * 4 + 1};
    layers[4].weight.resize(20 * (40 * 4 * 4 + 1));
    try {
        OneDnnChain chain(layers, 3, 20);
        FAIL() << "a dense layer of the wrong width was accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "oneDNN chain: dense layer 5 does not fit the layer before it");
    }
    layers = ref.layers();
    layers[5].bias.pop_back();
    try {
        OneDnnChain chain(layers, 3, 20);
        FAIL() << "a short bias was accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "oneDNN chain: dense layer 6: weight or bias size does not match its shape");
    }
    layers = ref.layers();
    layers.pop_back();
    layers.pop_back();
    try {
        OneDnnChain chain(layers, 3, 20);
        FAIL() << "a chain without a dense layer was accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "oneDNN chain: the last layer must be a dense layer");
    }
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
    const int n = 9;
    const auto nhwc = test::randomPatches(n, 64, 3);
    std::vector<float> a(static_cast<std::size_t>(n * 16)), b(a.size());
    fast->encode(nhwc.data(), n, a.data());
    plain->encode(nhwc.data(), n, b.data());
    EXPECT_FALSE(oneDnnSteps(*fast).empty());
    EXPECT_TRUE(oneDnnSteps(*plain).empty());
    float scale = 1.0F;
    for (float v : b)
        scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_NEAR(a[i], b[i], 2e-5F * scale) << i;

    // Switched off, the optimised encoder runs its folded LibTorch modules, with the same embeddings.
    useOneDnnInference(false);
    cpu.optimiseInference = true;
    auto modules = createEncoder(*kind, 64, 16, 3, 4, cpu);
    useOneDnnInference(true);
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

// Imported Keras encoders at inference: BatchNorm after an activation (the authors' published encoders: convolution →
// LeakyReLU → BN) folded into the next layer where that is exact, and the chains that fit run on oneDNN (OneDnnChain)
// with the plain modules' embeddings. The published encoders themselves are checked against an independent
// computation in test_encoderfile.cpp.
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/onednnchain.h"
#include "core/encoders/nn/torchencoder.h"
#include "nntestsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace nic {
namespace {

using T = KerasLayer::Type;

KerasLayer conv(int in, int out, int stride, bool same, bool bias = true) {
    KerasLayer l;
    l.type = T::Conv2d;
    l.inChannels = in;
    l.outChannels = out;
    l.kernel = 3;
    l.stride = stride;
    l.samePadding = same;
    l.bias = bias;
    return l;
}

KerasLayer dense(int in, int out, bool bias = true) {
    KerasLayer l;
    l.type = T::Dense;
    l.inChannels = in;
    l.outChannels = out;
    l.bias = bias;
    return l;
}

KerasLayer of(T type, int channels = 0, double alpha = 0.2) {
    KerasLayer l;
    l.type = type;
    l.inChannels = l.outChannels = channels;
    l.alpha = alpha;
    return l;
}

/// A KerasChain of `layers` with random weights and BatchNorm statistics far from the identity (means and variances
/// that a fold which ignored them would get visibly wrong), in eval mode; the same `seed` gives the same tensors.
KerasChain randomChain(const std::vector<KerasLayer>& layers, std::uint64_t seed) {
    torch::manual_seed(seed);
    KerasChain chain(layers);
    torch::NoGradGuard noGrad;
    for (auto& p : chain->parameters())
        p.copy_(torch::randn(p.sizes()) * (p.dim() > 1 ? std::sqrt(2.0 / static_cast<double>(p[0].numel())) : 0.3));
    for (std::size_t i = 0; i < layers.size(); ++i)
        if (layers[i].type == T::BatchNorm) {
            auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(chain->modules[i]);
            bn->running_mean.copy_(torch::randn(bn->running_mean.sizes()) * 0.5);
            bn->running_var.copy_(torch::rand(bn->running_var.sizes()) * 2 + 0.2);
            bn->weight.copy_(torch::rand(bn->weight.sizes()) + 0.5);
        }
    chain->eval();
    return chain;
}

/// The same chain with the same tensors (a fresh copy to fold).
KerasChain copyOf(const KerasChain& from) {
    KerasChain to(from->layers);
    torch::NoGradGuard noGrad;
    auto dst = to->named_parameters(true);
    for (const auto& p : from->named_parameters(true))
        dst[p.key()].copy_(p.value());
    auto dstB = to->named_buffers(true);
    for (const auto& b : from->named_buffers(true))
        dstB[b.key()].copy_(b.value());
    to->eval();
    return to;
}

float largestDifference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<float>();
}

TEST(KerasFolding, BatchNormAfterAnActivationFoldsIntoTheNextLayerWhereThatIsExact) {
    // BN a sits before a 'same' convolution: folding it there would turn the padded zeros into its shift, so it stays.
    // BN b follows its convolution directly (folded into it, as always); c folds into the 'valid' convolution after
    // it, d through the Flatten into the Dense layer (both without a bias of their own, which the fold gives them).
    const std::vector<KerasLayer> layers = {
        conv(3, 16, 2, false),    of(T::LeakyRelu),     of(T::BatchNorm, 16), conv(16, 16, 1, true),
        of(T::BatchNorm, 16),     of(T::LeakyRelu),     of(T::BatchNorm, 16), conv(16, 16, 2, false, false),
        of(T::LeakyRelu, 0, 0.3), of(T::BatchNorm, 16), of(T::Flatten),       dense(7 * 7 * 16, 8, false)};
    KerasChain plain = randomChain(layers, 3);
    KerasChain folded = copyOf(plain);
    EXPECT_EQ(foldBatchNorm(*folded), 3);
    EXPECT_EQ(folded->skip,
              (std::vector<bool>{false, false, false, false, true, false, true, false, false, true, false, false}));
    EXPECT_EQ(foldBatchNorm(*folded), 0); // folding twice folds nothing more

    torch::NoGradGuard noGrad;
    const auto x = torch::rand({4, 3, 32, 32}) * 2 - 1;
    const auto want = plain->forward(x), got = folded->forward(x);
    ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{4, 8}));
    EXPECT_LE(largestDifference(got, want), 2e-5F * std::max(1.0F, want.abs().max().item<float>()));
    EXPECT_GT(want.abs().max().item<float>(), 0.1F);
    // The unfolded BN keeps the chain off oneDNN.
    EXPECT_FALSE(oneDnnLayers(*folded).has_value());
}

EncoderMeta kerasMeta(const std::vector<KerasLayer>& layers, int patchSize, int codeSize) {
    EncoderMeta meta;
    meta.kind = "keras";
    meta.name = "keras:test";
    meta.patchSize = patchSize;
    meta.codeSize = codeSize;
    meta.kerasLayers = layers;
    return meta;
}

/// The embeddings of `n` random patches through `layers` (P = 64) on the optimised path and on the plain module, and
/// whether the optimised one ran on oneDNN.
struct Embeddings {
    std::vector<float> fast, plain;
    bool onOneDnn = false;
    std::vector<std::string> steps;
};

Embeddings embed(const std::vector<KerasLayer>& layers, int codeSize, int n) {
    const EncoderMeta meta = kerasMeta(layers, 64, codeSize);
    const KerasChain chain = randomChain(layers, 7);
    TorchPatchEncoder fast(meta, torch::nn::AnyModule(copyOf(chain)), torch::kCPU, "0", "test", true);
    TorchPatchEncoder plain(meta, torch::nn::AnyModule(copyOf(chain)), torch::kCPU, "0", "test", false);
    const auto nhwc = test::randomPatches(n, 64, 11);
    Embeddings e;
    e.fast.resize(static_cast<std::size_t>(n * codeSize));
    e.plain.resize(e.fast.size());
    fast.encode(nhwc.data(), n, e.fast.data());
    plain.encode(nhwc.data(), n, e.plain.data());
    e.onOneDnn = fast.runsOnOneDnn();
    e.steps = oneDnnSteps(fast);
    return e;
}

void expectClose(const Embeddings& e) {
    float scale = 1.0F;
    for (float v : e.plain)
        scale = std::max(scale, std::fabs(v));
    ASSERT_EQ(e.fast.size(), e.plain.size());
    for (std::size_t i = 0; i < e.fast.size(); ++i)
        EXPECT_NEAR(e.fast[i], e.plain[i], 2e-5F * scale) << i;
}

TEST(KerasInference, ChainsOfThePublishedLayoutRunOnOneDnnWithThePlainModulesEmbeddings) {
    if (!OneDnnChain::available() || !oneDnnInferenceEnabled())
        GTEST_SKIP() << "no oneDNN in this build (libdnnl-dev), or NIC_ONEDNN_INFERENCE=0: compression runs through "
                        "LibTorch";
    // The published encoders' layout at P = 64 (pooled to 32²): 'valid' stride-2 convolutions, each followed by
    // LeakyReLU and BN; one 'same' stride-1 convolution (symmetric padding) after a BN folded into the convolution
    // before it; Flatten, and two Dense layers with a LeakyReLU between.
    const std::vector<KerasLayer> layers = {
        of(T::AvgPool2),          conv(3, 16, 2, false), of(T::LeakyRelu), of(T::BatchNorm, 16),
        conv(16, 32, 2, false),   of(T::BatchNorm, 32),  of(T::LeakyRelu), conv(32, 32, 1, true),
        of(T::LeakyRelu),         of(T::BatchNorm, 32),  of(T::Flatten),   dense(7 * 7 * 32, 16),
        of(T::LeakyRelu, 0, 0.3), dense(16, 8)};
    const Embeddings e = embed(layers, 8, 9); // a batch padded to 16
    ASSERT_TRUE(e.onOneDnn) << "the oneDNN chain fell back to LibTorch on this CPU";
    ASSERT_EQ(e.steps.size(),
              directconv::available() ? 5U : 6U); // three convolutions and two Dense layers, or a reorder too
    EXPECT_EQ(e.steps.front().rfind("direct 3x3/2", 0) == 0, directconv::available()); // padding 0 on the direct kernel
    expectClose(e);
}

TEST(KerasInference, ChainsThatDoNotFitTheChainRunOnTheirModulesWithTheSameEmbeddings) {
    // Asymmetric 'same' padding (stride 2 on an even side), and global pooling: the folded LibTorch modules.
    for (const auto& layers :
         {std::vector<KerasLayer>{of(T::AvgPool2), conv(3, 16, 2, true), of(T::LeakyRelu), of(T::BatchNorm, 16),
                                  conv(16, 16, 2, false), of(T::Flatten), dense(7 * 7 * 16, 8)},
          std::vector<KerasLayer>{conv(3, 16, 2, false), of(T::LeakyRelu), of(T::GlobalAvgPool), dense(16, 8)}}) {
        const Embeddings e = embed(layers, 8, 5);
        EXPECT_FALSE(e.onOneDnn);
        EXPECT_TRUE(e.steps.empty());
        expectClose(e);
    }
}

} // namespace
} // namespace nic

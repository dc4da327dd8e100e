// The optimised inference path: multiply-add counts of the encoders (the benchmarks' limit probe divides
// by them), BatchNorm folding, channels-last input, replicas encoding concurrently, the thread layout
// configureCompute sets, and a whole slide compressed with the optimised encoder (on several inference
// threads) against the plain one: the grids agree within float16 rounding.
#include "core/compression/compressor.h"
#include "core/base/cpuinfo.h"
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/compression/latentgrid.h"
#include "core/encoders/nn/convgrad.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/flopcount.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/torchencoder.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

namespace nic {
namespace {

/// a equals b within 1e-5 of b's largest magnitude (at least 1e-5): float32 rounding of the same products.
bool closeInFloat32(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<float>() <= 1e-5F * std::max(1.0F, b.abs().max().item<float>());
}

EncoderMeta metaOf(const std::string& kind, int p, int c) {
    EncoderMeta m;
    m.kind = kind;
    m.patchSize = p;
    m.codeSize = c;
    return m;
}

TEST(FlopCount, VaeEncoderAt128IsFiveConvolutionsAndTwoDenseLayers) {
    // Worked by hand: 3x3 stride-2 convs 3→32 (64² out), 32→64 (32²), 64→128 (16²), 128→256 (8²),
    // 256→512 (4²); dense 4·4·512 → 512; linear 512 → 128.
    const auto layers = inferenceLayerCosts(metaOf("vae", 128, 128));
    ASSERT_EQ(layers.size(), 7U);
    EXPECT_EQ(layers[0].name, "convs.0.conv");
    EXPECT_EQ(layers[0].macs, 64 * 64 * 32 * 3 * 9);
    for (int i = 1; i < 5; ++i)
        EXPECT_EQ(layers[static_cast<std::size_t>(i)].macs, 18874368) << layers[static_cast<std::size_t>(i)].name;
    EXPECT_EQ(layers[5].name, "dense.fc");
    EXPECT_EQ(layers[5].macs, 8192 * 512);
    EXPECT_EQ(layers[6].name, "code");
    EXPECT_EQ(layers[6].macs, 512 * 128);
    EXPECT_DOUBLE_EQ(inferenceFlopsPerPatch(metaOf("vae", 128, 128)), 2.0 * 83296256.0);
}

TEST(FlopCount, BiganEncoderWorksOnTheHalvedPatch) {
    // 2×2 pooling to 64², then 3→128 (32² out), 128→128 at 16², 8², 4²; linear 4·4·128 → 128.
    const double macs = 1024.0 * 128 * 3 * 9 + 256.0 * 128 * 128 * 9 + 64.0 * 128 * 128 * 9 + 16.0 * 128 * 128 * 9 +
                        2048.0 * 128;
    EXPECT_DOUBLE_EQ(inferenceFlopsPerPatch(metaOf("bigan", 128, 128)), 2.0 * macs);
    const auto layers = inferenceLayerCosts(metaOf("bigan", 128, 128));
    ASSERT_EQ(layers.size(), 5U);
    EXPECT_EQ(layers[1].name, "convs.1.conv");
    EXPECT_EQ(layers[4].name, "code");
}

TEST(FlopCount, TrainingCountsEveryNetworkOfAStepThreeTimes) {
    const double e = inferenceFlopsPerPatch(metaOf("vae", 128, 128));
    // Supervised: E plus a 128 → 256 → 1 head.
    EXPECT_DOUBLE_EQ(trainingFlopsPerPatch(EncoderKind::SupervisedTumor, 128, 128, 2), 3.0 * (e + 2.0 * (128 * 256 + 256)));
    // VAE: E, the log σ² head and a decoder that costs more than E.
    const double vae = trainingFlopsPerPatch(EncoderKind::Vae, 128, 128, 0);
    EXPECT_GT(vae, 3.0 * 2.0 * e);
    EXPECT_DOUBLE_EQ(trainingFlopsPerPatch(EncoderKind::Contrastive, 128, 128, 0),
                     3.0 * (e + 0.5 * 2.0 * (256 * 256 + 256)));
}

/// Gives every BatchNorm of `m` statistics and an affine transform far from the identity, so that
/// folding them changes the weights a lot.
void randomiseBatchNorm(torch::nn::Module& m, std::uint64_t seed) {
    torch::NoGradGuard noGrad;
    torch::manual_seed(seed);
    for (auto& b : m.named_buffers(true)) {
        const std::string& k = b.key();
        if (k.size() >= 12 && k.compare(k.size() - 12, 12, "running_mean") == 0)
            b.value().copy_(torch::randn_like(b.value()) * 0.5);
        else if (k.size() >= 11 && k.compare(k.size() - 11, 11, "running_var") == 0)
            b.value().copy_(torch::rand_like(b.value()) * 2.0 + 0.2);
    }
    for (auto& p : m.named_parameters(true))
        if (p.key().find("bn.") != std::string::npos)
            p.value().copy_(torch::randn_like(p.value()) * 0.5 + (p.key().find("weight") != std::string::npos ? 1.0 : 0.0));
}

/// A copy of `src`'s parameters and buffers in `dst` (same architecture).
void copyModule(torch::nn::Module& dst, torch::nn::Module& src) {
    torch::NoGradGuard noGrad;
    auto p = dst.named_parameters(true);
    for (const auto& q : src.named_parameters(true))
        p[q.key()].copy_(q.value());
    auto b = dst.named_buffers(true);
    for (const auto& q : src.named_buffers(true))
        b[q.key()].copy_(q.value());
}

TEST(FoldBatchNorm, FoldedEncoderGivesTheSameOutputWithoutItsBatchNormLayers) {
    ConvEncoder plain(64, 16), folded(64, 16);
    randomiseBatchNorm(*plain, 3);
    copyModule(*folded, *plain);
    plain->eval();
    folded->eval();
    EXPECT_EQ(foldBatchNorm(*folded), 6); // five conv blocks and the dense block
    EXPECT_EQ(foldBatchNorm(*folded), 0); // already folded
    torch::manual_seed(5);
    auto x = torch::rand({4, 3, 64, 64}) * 2 - 1;
    torch::NoGradGuard noGrad;
    auto a = plain->forward(x), b = folded->forward(x);
    EXPECT_GT(a.abs().max().item<float>(), 0.1F);
    EXPECT_LT((a - b).abs().max().item<float>(), 1e-4F * a.abs().max().item<float>());
    // The weights changed: BN was really folded in, not left as the identity.
    EXPECT_GT((plain->convs[0]->as<ConvBlock>()->conv->weight - folded->convs[0]->as<ConvBlock>()->conv->weight)
                  .abs()
                  .max()
                  .item<float>(),
              0.01F);
}

TEST(FlattenInNhwcOrder, ReorderedEncodersGiveTheSameOutputForEitherInputLayout) {
    ConvEncoder plain(64, 16), reordered(64, 16);
    BiganEncoder plainB(64, 16, true), reorderedB(64, 16, true);
    randomiseBatchNorm(*plain, 4);
    copyModule(*reordered, *plain);
    copyModule(*reorderedB, *plainB);
    for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(plain.get()), static_cast<torch::nn::Module*>(reordered.get()),
                                 static_cast<torch::nn::Module*>(plainB.get()), static_cast<torch::nn::Module*>(reorderedB.get())})
        m->eval();
    EXPECT_EQ(flattenInNhwcOrder(*reordered), 1);
    EXPECT_EQ(flattenInNhwcOrder(*reordered), 0); // already reordered
    EXPECT_EQ(flattenInNhwcOrder(*reorderedB), 1);
    // The columns really moved: (C, H, W) → (H, W, C) changes every column but the first.
    EXPECT_GT((plain->dense->fc->weight - reordered->dense->fc->weight).abs().max().item<float>(), 0.01F);
    torch::manual_seed(6);
    const auto x = torch::rand({4, 3, 64, 64}) * 2 - 1;
    torch::NoGradGuard noGrad;
    for (const auto& in : {x, x.contiguous(torch::MemoryFormat::ChannelsLast)}) {
        const auto a = plain->forward(x), b = reordered->forward(in);
        EXPECT_GT(a.abs().max().item<float>(), 0.1F);
        EXPECT_LT((a - b).abs().max().item<float>(), 1e-4F * a.abs().max().item<float>());
        const auto c = plainB->forward(x), d = reorderedB->forward(in);
        EXPECT_GT(c.abs().max().item<float>(), 0.01F);
        EXPECT_LT((c - d).abs().max().item<float>(), 1e-4F * c.abs().max().item<float>());
    }
}

TEST(ApplyLinear, GivesLinearsOutputAndGradients) {
    // The encoders' dense layers run through applyLinear: on the CPU, when training, as GEMMs in blocks over
    // the threads with their own backward; without gradients through oneDNN's inner product. Same output
    // and the same three gradients as torch::nn::Linear, with and without a bias, for an input that is a
    // strided view (what flattening a channels-last map in (C, H, W) order gives).
    torch::manual_seed(3);
    for (const bool bias : {true, false}) {
        torch::nn::Linear linear(torch::nn::LinearOptions(96, 40).bias(bias));
        torch::nn::Linear reference(torch::nn::LinearOptions(96, 40).bias(bias));
        copyModule(*reference, *linear);
        const auto map = torch::randn({12, 6, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast);
        const auto x = map.flatten(1).detach().requires_grad_(true);
        const auto xRef = x.detach().clone().requires_grad_(true);
        const auto g = torch::randn({12, 40});
        const auto y = applyLinear(linear, x);
        const auto yRef = reference(xRef);
        if (at::hasMKLDNN()) {
            ASSERT_TRUE(y.grad_fn());
            EXPECT_NE(y.grad_fn()->name().find("BlockedLinear"), std::string::npos) << y.grad_fn()->name();
        }
        EXPECT_TRUE(closeInFloat32(y, yRef));
        y.backward(g);
        yRef.backward(g);
        EXPECT_TRUE(closeInFloat32(x.grad(), xRef.grad()));
        EXPECT_TRUE(closeInFloat32(linear->weight.grad(), reference->weight.grad()));
        if (bias) {
            EXPECT_TRUE(closeInFloat32(linear->bias.grad(), reference->bias.grad()));
        }
        // Without gradients: the plain inner product, the same values.
        torch::NoGradGuard noGrad;
        const auto z = applyLinear(linear, x);
        EXPECT_FALSE(z.requires_grad());
        EXPECT_TRUE(closeInFloat32(z, yRef));
        EXPECT_TRUE(closeInFloat32(applyLinear(linear, x.narrow(0, 0, 1)), yRef.narrow(0, 0, 1)));
        // Double precision takes LibTorch's own path and agrees too.
        torch::nn::Linear wide(torch::nn::LinearOptions(96, 40).bias(bias));
        copyModule(*wide, *linear);
        wide->to(torch::kDouble);
        EXPECT_TRUE(closeInFloat32(applyLinear(wide, x.to(torch::kDouble)).to(torch::kFloat), yRef));
    }
}

TEST(ApplyConv, GivesTheLayersOutputAndGradientsWithTheBiasGradientSummedApart) {
    // The encoders' convolutions run through applyConv: when training on the CPU, a layer with a bias
    // computes ∂x and ∂w without it and ∂b as the sum of ∂y. Same output and the same three gradients as
    // the layer's own forward and LibTorch's backward, for stride 2 (the encoders' blocks) and 1 (the
    // up-sampling blocks), channel-first and channels-last maps, and an input that needs no gradient (the
    // first layer's batch).
    struct Case {
        int in, out, stride;
        bool channelsLast, inputGrad;
    };
    for (const Case c : {Case{3, 32, 2, true, false}, Case{8, 16, 2, true, true}, Case{16, 3, 1, false, true},
                         Case{5, 7, 1, true, true}}) {
        SCOPED_TRACE(std::to_string(c.in) + " -> " + std::to_string(c.out) + ", stride " + std::to_string(c.stride) +
                     (c.channelsLast ? ", channels-last" : ", channel-first") +
                     (c.inputGrad ? ", input gradient" : ", no input gradient"));
        torch::manual_seed(11);
        const auto options = torch::nn::Conv2dOptions(c.in, c.out, 3).stride(c.stride).padding(1);
        torch::nn::Conv2d conv(options), reference(options);
        copyModule(*reference, *conv);
        auto values = torch::randn({6, c.in, 20, 20});
        if (c.channelsLast)
            values = values.contiguous(torch::MemoryFormat::ChannelsLast);
        const auto x = values.clone().requires_grad_(c.inputGrad);
        const auto xRef = values.clone().requires_grad_(c.inputGrad);
        const auto directBefore = directconv::calls();
        const auto y = applyConv(conv, x);
        const auto yRef = reference(xRef);
        // The first layer's shape on channels-last input runs on the direct kernel where the CPU has AVX-512.
        const bool direct = c.in == 3 && c.channelsLast && directconv::available();
        EXPECT_EQ(directconv::calls() - directBefore, direct ? 1U : 0U);
        ASSERT_TRUE(y.grad_fn());
        EXPECT_NE(y.grad_fn()->name().find("ConvolutionFunction"), std::string::npos) << y.grad_fn()->name();
        EXPECT_TRUE(closeInFloat32(y, yRef));
        // A gradient with a non-zero mean per channel, so that ∂b is far from zero.
        const auto g = torch::randn(yRef.sizes()) + torch::arange(c.out, torch::kFloat).view({1, -1, 1, 1});
        y.backward(g);
        yRef.backward(g);
        EXPECT_TRUE(closeInFloat32(conv->weight.grad(), reference->weight.grad()));
        EXPECT_TRUE(closeInFloat32(conv->bias.grad(), reference->bias.grad()));
        EXPECT_TRUE(closeInFloat32(conv->bias.grad(), g.sum({0, 2, 3})));
        if (c.inputGrad)
            EXPECT_TRUE(closeInFloat32(x.grad(), xRef.grad()));
        else
            EXPECT_FALSE(x.grad().defined());
    }
}

/// A 3 × 3, stride-2, padding-1 layer in → out, a copy of it run by LibTorch as the reference, and one input of `batch`
/// side² images for each (needing a gradient when `inputGrad`); channels-last maps and weight when `channelsLast`, as
/// the encoders train.
struct Stride2Pair {
    torch::nn::Conv2d conv{nullptr}, reference{nullptr};
    torch::Tensor x, xRef;
};
Stride2Pair stride2Pair(int in, int out, int side, int batch, bool inputGrad, bool channelsLast) {
    const auto options = torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1);
    Stride2Pair p{torch::nn::Conv2d(options), torch::nn::Conv2d(options), {}, {}};
    copyModule(*p.reference, *p.conv);
    auto values = torch::randn({batch, in, side, side});
    if (channelsLast) {
        values = values.contiguous(torch::MemoryFormat::ChannelsLast);
        p.conv->weight.set_data(p.conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    p.x = values.clone().requires_grad_(inputGrad);
    p.xRef = values.clone().requires_grad_(inputGrad);
    return p;
}

/// "<in> -> <out> at <side>², <batch> images[, input gradient], channels-last|channel-first", for failure messages.
std::string describeStride2(int in, int out, int side, int batch, bool inputGrad, bool channelsLast) {
    return std::to_string(in) + " -> " + std::to_string(out) + " at " + std::to_string(side) + "², " +
           std::to_string(batch) + " images" + (inputGrad ? ", input gradient" : "") +
           (channelsLast ? ", channels-last" : ", channel-first");
}

/// A random gradient for an output of yRef's shape, channels-last when the maps are (as BatchNorm's backward gives it).
torch::Tensor outputGradient(const torch::Tensor& yRef, bool channelsLast) {
    auto g = torch::randn(yRef.sizes());
    return channelsLast ? g.contiguous(torch::MemoryFormat::ChannelsLast) : g;
}

TEST(ApplyConv, WideStride2LayersGetTheirWeightGradientFromTheSgemmPath) {
    // Layers with at least 32 input channels, 3 × 3, stride 2, padding 1 (the encoders' blocks after the first) compute ∂w
    // from an im2col copy on oneDNN's sgemm when the maps are channels-last: LibTorch's gradients, on an even side
    // and an odd one (the window leaves the image on the right and at the bottom), with and without ∂x, and over
    // more rows than one im2col chunk holds (16 MiB).
    struct Case {
        int in, out, side, batch;
        bool inputGrad, channelsLast;
    };
    for (const Case c : {Case{128, 48, 16, 4, true, true}, Case{128, 32, 9, 3, false, true},
                         Case{256, 16, 16, 64, true, true}, Case{32, 64, 64, 16, true, true},
                         Case{128, 16, 8, 2, true, false}}) {
        SCOPED_TRACE(describeStride2(c.in, c.out, c.side, c.batch, c.inputGrad, c.channelsLast));
        torch::manual_seed(13);
        auto [conv, reference, x, xRef] = stride2Pair(c.in, c.out, c.side, c.batch, c.inputGrad, c.channelsLast);
        const auto y = applyConv(conv, x);
        const auto yRef = reference(xRef);
        const auto g = outputGradient(yRef, c.channelsLast);
        const auto callsBefore = convgrad::calls();
        y.backward(g);
        yRef.backward(g);
        EXPECT_EQ(convgrad::calls() - callsBefore, convgrad::available() && c.channelsLast ? 1U : 0U);
        EXPECT_TRUE(closeInFloat32(conv->weight.grad(), reference->weight.grad()));
        EXPECT_TRUE(closeInFloat32(conv->bias.grad(), reference->bias.grad()));
        if (c.inputGrad)
            EXPECT_TRUE(closeInFloat32(x.grad(), xRef.grad()));
        else
            EXPECT_FALSE(x.grad().defined());
    }
}

TEST(ApplyConv, SmallMapLayersRunForwardAndInputGradientOnTheSgemmPath) {
    // Layers with at least 256 input channels and at most 4² output pixels an image (the encoders' 256 → 512 layer)
    // compute their output and ∂x on oneDNN's sgemm too when the maps are channels-last: LibTorch's values on an even
    // side and an odd one (the window leaves the image), with and without ∂x. A larger map, and channel-first maps,
    // stay on LibTorch's kernels.
    struct Case {
        int in, out, side, batch;
        bool inputGrad, channelsLast, sgemm;
    };
    for (const Case c : {Case{256, 64, 8, 5, true, true, true}, Case{256, 32, 7, 3, false, true, true},
                         Case{320, 16, 4, 2, true, true, true}, Case{256, 16, 10, 2, true, true, false},
                         Case{256, 16, 8, 2, true, false, false}}) {
        SCOPED_TRACE(describeStride2(c.in, c.out, c.side, c.batch, c.inputGrad, c.channelsLast));
        torch::manual_seed(14);
        auto [conv, reference, x, xRef] = stride2Pair(c.in, c.out, c.side, c.batch, c.inputGrad, c.channelsLast);
        const auto forwardBefore = convgrad::forwardCalls(), dataBefore = convgrad::dataCalls();
        const auto y = applyConv(conv, x);
        const auto yRef = reference(xRef);
        const bool sgemm = c.sgemm && convgrad::available();
        EXPECT_EQ(convgrad::forwardCalls() - forwardBefore, sgemm ? 1U : 0U);
        EXPECT_TRUE(closeInFloat32(y, yRef));
        const auto g = outputGradient(yRef, c.channelsLast);
        y.backward(g);
        yRef.backward(g);
        EXPECT_EQ(convgrad::dataCalls() - dataBefore, sgemm && c.inputGrad ? 1U : 0U);
        EXPECT_TRUE(closeInFloat32(conv->weight.grad(), reference->weight.grad()));
        EXPECT_TRUE(closeInFloat32(conv->bias.grad(), reference->bias.grad()));
        if (c.inputGrad)
            EXPECT_TRUE(closeInFloat32(x.grad(), xRef.grad()));
        else
            EXPECT_FALSE(x.grad().defined());
    }
}

TEST(ApplyConv, IsTheLayersOwnForwardWithoutGradientsOrWithoutABias) {
    torch::manual_seed(12);
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 3).padding(1));
    torch::nn::Conv2d noBias(torch::nn::Conv2dOptions(4, 6, 3).padding(1).bias(false));
    const auto x = torch::randn({2, 4, 9, 9});
    const auto withoutBias = applyConv(noBias, x);
    ASSERT_TRUE(withoutBias.grad_fn());
    EXPECT_EQ(withoutBias.grad_fn()->name().find("ConvolutionFunction"), std::string::npos);
    EXPECT_TRUE(torch::equal(withoutBias, noBias(x)));
    torch::NoGradGuard noGrad;
    const auto y = applyConv(conv, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(torch::equal(y, conv(x)));
}

TEST(ApplyConv, AheadOfATrainingBatchNormTheBiasGradientIsExactlyZero) {
    // A convolution block in training normalises the convolution's output with the batch's own mean, which
    // removes the bias: LibTorch's separate operators give ∂b as a sum that is zero up to rounding, the block
    // gives exactly zero, and the output, ∂x and ∂w are theirs. In evaluation BatchNorm's running mean does not
    // cancel the bias, and ∂b is the sum again.
    torch::manual_seed(13);
    ConvBlock block(6, 10, 2);
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(6, 10, 3).stride(2).padding(1));
    torch::nn::BatchNorm2d bn(10);
    copyModule(*conv, *block->conv);
    const auto values = torch::randn({8, 6, 16, 16}).contiguous(torch::MemoryFormat::ChannelsLast);
    const auto g = torch::randn({8, 10, 8, 8}) + torch::arange(10, torch::kFloat).view({1, -1, 1, 1});
    for (const bool training : {true, false}) {
        SCOPED_TRACE(training ? "training" : "evaluation");
        block->train(training);
        bn->train(training);
        block->zero_grad();
        conv->zero_grad();
        const auto x = values.clone().requires_grad_(true), xRef = values.clone().requires_grad_(true);
        const auto y = block(x);
        const auto yRef = torch::leaky_relu(bn(conv(xRef)), kLeakySlope);
        EXPECT_TRUE(closeInFloat32(y, yRef));
        y.backward(g);
        yRef.backward(g);
        EXPECT_TRUE(closeInFloat32(x.grad(), xRef.grad()));
        EXPECT_TRUE(closeInFloat32(block->conv->weight.grad(), conv->weight.grad()));
        const auto db = block->conv->bias.grad(), dbRef = conv->bias.grad();
        ASSERT_TRUE(db.defined());
        if (training) {
            EXPECT_TRUE(torch::equal(db, torch::zeros({10})));
            // LibTorch's sum is rounding: far below the weight gradient's scale.
            EXPECT_LT(dbRef.abs().max().item<float>(), 1e-4F * conv->weight.grad().abs().max().item<float>());
        } else {
            EXPECT_TRUE(closeInFloat32(db, dbRef));
            EXPECT_GT(db.abs().max().item<float>(), 1.0F);
        }
    }
}

// Training's dense products are cut into blocks of 256 along the output's longer side, one GEMM each,
// spread over the threads (oneDNN's sgemm per block where the build has its header): shapes of several
// blocks along columns (a wide layer) and along rows (a large batch), and one of a single block (run on the
// calling thread, outside a parallel region), a long reduction with a small output, and vectors, give
// Linear's values, and the same bits on one thread as on two.
TEST(ApplyLinear, BlockedProductsMatchLinearAndDoNotDependOnTheThreadCount) {
    if (!at::hasMKLDNN())
        GTEST_SKIP() << "LibTorch without oneDNN: applyLinear is LibTorch's own linear";
    const int threadsBefore = torch::get_num_threads();
    struct Shape {
        int batch, in, out;
    };
    for (const Shape shape : {Shape{12, 600, 520}, Shape{700, 20, 8}, Shape{40, 300, 200}, Shape{8, 8192, 8},
                              Shape{1, 300, 1}, Shape{1, 20, 300}}) {
        SCOPED_TRACE(std::to_string(shape.batch) + " x " + std::to_string(shape.in) + " -> " + std::to_string(shape.out));
        torch::manual_seed(5);
        torch::nn::Linear linear(torch::nn::LinearOptions(shape.in, shape.out));
        torch::nn::Linear reference(torch::nn::LinearOptions(shape.in, shape.out));
        copyModule(*reference, *linear);
        const auto xValues = torch::randn({shape.batch, shape.in});
        const auto g = torch::randn({shape.batch, shape.out});
        std::vector<std::vector<torch::Tensor>> results; // y, ∂x, ∂w, ∂b per thread count
        for (const int threads : {1, 2}) {
            torch::set_num_threads(threads);
            linear->zero_grad(true);
            const auto x = xValues.clone().requires_grad_(true);
            const std::uint64_t blocksBefore = denseBlocksOnOneDnn();
            const auto y = applyLinear(linear, x);
            y.backward(g);
            if (denseProductsOnOneDnn()) { // the three products ran on oneDNN, not on the fallback
                EXPECT_GE(denseBlocksOnOneDnn() - blocksBefore, 3U);
            }
            results.push_back({y.detach(), x.grad(), linear->weight.grad().clone(), linear->bias.grad().clone()});
        }
        torch::set_num_threads(threadsBefore);
        for (std::size_t i = 0; i < results[0].size(); ++i)
            EXPECT_TRUE(torch::equal(results[0][i], results[1][i])) << "result " << i;
        const auto xRef = xValues.clone().requires_grad_(true);
        const auto yRef = reference(xRef);
        yRef.backward(g);
        EXPECT_TRUE(closeInFloat32(results[1][0], yRef));
        EXPECT_TRUE(closeInFloat32(results[1][1], xRef.grad()));
        EXPECT_TRUE(closeInFloat32(results[1][2], reference->weight.grad()));
        EXPECT_TRUE(closeInFloat32(results[1][3], reference->bias.grad()));
    }
}

/// One f16 step at |v| (the spacing of float16 values around v).
float halfUlp(float v) {
    const float a = std::fabs(v);
    if (a < 6.103515625e-05F) // below the smallest normal: subnormal spacing
        return 5.9604645e-08F;
    return std::ldexp(1.0F, std::ilogb(a) - 10);
}

TEST(ModelInput, ChannelsLastAndPlanarBuffersHoldTheSameValuesAsToModelInput) {
    const int n = 3, p = 32;
    const auto nhwc = test::randomPatches(n, p, 4);
    const auto reference = toModelInput(nhwc.data(), n, p, torch::kCPU);
    auto planar = torch::empty({n, 3, p, p});
    auto channelsLast = torch::empty({n, 3, p, p}, torch::TensorOptions().memory_format(torch::MemoryFormat::ChannelsLast));
    toModelInputInto(nhwc.data(), n, p, planar);
    toModelInputInto(nhwc.data(), n, p, channelsLast);
    EXPECT_TRUE(channelsLast.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(planar, reference));
    EXPECT_TRUE(torch::equal(channelsLast, reference)); // same logical values whatever the memory order
    EXPECT_FLOAT_EQ(reference[1][2][3][4].item<float>(),
                    static_cast<float>(nhwc[((1 * p + 3) * p + 4) * 3 + 2]) / 127.5F - 1.0F);
}

TEST(ModelInput, PooledInputIsTheAveragePoolOfTheModelInput) {
    const int n = 3, p = 32;
    auto nhwc = test::randomPatches(n, p, 5);
    nhwc[0] = nhwc[3] = nhwc[p * 3] = nhwc[p * 3 + 3] = 255; // a pixel block at the extremes
    nhwc[1] = nhwc[4] = nhwc[p * 3 + 1] = nhwc[p * 3 + 4] = 0;
    const auto reference = torch::nn::functional::avg_pool2d(toModelInput(nhwc.data(), n, p, torch::kCPU),
                                                             torch::nn::functional::AvgPool2dFuncOptions(2));
    auto pooled = torch::empty({n, 3, p / 2, p / 2}, torch::TensorOptions(torch::kFloat).memory_format(torch::MemoryFormat::ChannelsLast));
    toPooledModelInputInto(nhwc.data(), n, p, pooled);
    EXPECT_LE((pooled - reference).abs().max().item<float>(), 1e-6F);
    EXPECT_FLOAT_EQ(pooled[0][0][0][0].item<float>(), 1.0F);
    EXPECT_FLOAT_EQ(pooled[0][1][0][0].item<float>(), -1.0F);
    // A planar buffer (the oneDNN chain's input) holds the same values; a buffer of another size is refused.
    auto planar = torch::empty({n, 3, p / 2, p / 2});
    toPooledModelInputInto(nhwc.data(), n, p, planar);
    EXPECT_TRUE(torch::equal(planar, pooled.contiguous()));
    auto full = torch::empty({n, 3, p, p});
    EXPECT_THROW(toPooledModelInputInto(nhwc.data(), n, p, full), c10::Error);
    // The optimised BiGAN encoder on the CPU pools while converting; its embeddings are the plain module's.
    ComputeOptions cpu{"cpu", 1};
    auto optimised = createEncoder(EncoderKind::Bigan, p, 8, 3, 1, cpu);
    cpu.optimiseInference = false;
    auto plain = createEncoder(EncoderKind::Bigan, p, 8, 3, 1, cpu);
    auto* te = dynamic_cast<TorchPatchEncoder*>(optimised.get());
    ASSERT_NE(te, nullptr);
    EXPECT_TRUE(te->poolsInputWhileConverting());
    EXPECT_FALSE(dynamic_cast<TorchPatchEncoder*>(plain.get())->poolsInputWhileConverting());
    std::vector<float> a(static_cast<std::size_t>(n * 8)), b(a.size());
    optimised->encode(nhwc.data(), n, a.data());
    plain->encode(nhwc.data(), n, b.data());
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_NEAR(a[i], b[i], 1e-4 * std::max(1.0F, std::fabs(b[i]))) << i;
    // forward() takes full-size model input either way.
    const auto x = toModelInput(nhwc.data(), n, p, torch::kCPU);
    EXPECT_LE((te->forward(x) - dynamic_cast<TorchPatchEncoder*>(plain.get())->forward(x)).abs().max().item<float>(), 1e-4F);
}

TEST(TorchEncoderReplica, EncodesConcurrentlyExactlyLikeTheOriginal) {
    ComputeOptions cpu;
    cpu.device = "cpu";
    cpu.threads = 1;
    auto enc = createEncoder(EncoderKind::Vae, 64, 16, 3, 2, cpu);
    auto replica = enc->replicate();
    ASSERT_NE(replica, nullptr);
    EXPECT_EQ(replica->info().hash, enc->info().hash);
    const int n = 5;
    const auto nhwc = test::randomPatches(n, 64, 9);
    std::vector<float> expected(static_cast<std::size_t>(n * 16));
    enc->encode(nhwc.data(), n, expected.data());
    std::atomic<int> mismatches{0};
    auto run = [&](PatchEncoder* e) {
        std::vector<float> out(expected.size());
        for (int r = 0; r < 20; ++r) {
            e->encode(nhwc.data(), n, out.data());
            mismatches += out != expected ? 1 : 0;
        }
    };
    std::thread a(run, enc.get()), b(run, replica.get());
    a.join();
    b.join();
    EXPECT_EQ(mismatches.load(), 0);
    // The optimised copy runs channels-last on the CPU (oneDNN's own layout).
    auto* t = dynamic_cast<TorchPatchEncoder*>(enc.get());
    ASSERT_NE(t, nullptr);
    ASSERT_TRUE(t->optimised());
    for (const auto& p : t->inferenceModule().parameters()) {
        if (p.dim() == 4) {
            EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
        }
    }
}

TEST(ComputeLayout, LibTorchGetsTheThreadsAndOpenBlasRunsSingleThreaded) {
    const int before = torch::get_num_threads();
    ComputeOptions o;
    o.device = "cpu";
    o.threads = 3;
    EXPECT_EQ(configureCompute(o), "cpu");
    EXPECT_EQ(torch::get_num_threads(), 3);
    // compressSlide leaves the CPUs these threads use to the encoder when it picks its readers
    EXPECT_EQ(createEncoder(EncoderKind::Vae, 64, 8, 3, 1, o)->cpusPerCall(), 3);
    if (openBlasThreads() < 0)
        GTEST_SKIP() << "LibTorch's BLAS here is not OpenBLAS";
    if (std::getenv("OPENBLAS_NUM_THREADS"))
        GTEST_SKIP() << "OPENBLAS_NUM_THREADS is set, which configureCompute leaves as it is";
    EXPECT_EQ(openBlasThreads(), 1); // its workers would busy-wait beside the OpenMP threads
    o.callers = -1;
    EXPECT_THROW(configureCompute(o), InvalidArgument);
    if (std::getenv("OMP_NUM_THREADS")) {
        o.callers = 1;
        o.threads = before;
        configureCompute(o);
        GTEST_SKIP() << "OMP_NUM_THREADS is set, which overrides the automatic thread count";
    }
    // Automatic: the physical cores shared among the callers, at least one thread each.
    o.threads = 0;
    o.callers = 1;
    configureCompute(o);
    EXPECT_EQ(torch::get_num_threads(), physicalCores());
    EXPECT_EQ(openBlasThreads(), 1);
    o.callers = 0; // one caller per physical core (compression's inference threads)
    configureCompute(o);
    EXPECT_EQ(torch::get_num_threads(), 1);
    EXPECT_EQ(openBlasThreads(), 1);
    o.callers = 1;
    o.threads = before;
    configureCompute(o);
}

TEST(CpuInfo, PhysicalCoresAreAtLeastOneAndAtMostTheUsableCpus) {
    EXPECT_GE(physicalCores(), 1);
    EXPECT_LE(physicalCores(), usableCpus());
    EXPECT_LE(usableCpus(), static_cast<int>(std::max(1U, std::thread::hardware_concurrency())));
}

class OptimisedInference : public ::testing::TestWithParam<const char*> {};

TEST_P(OptimisedInference, GridEqualsThePlainPathsWithinFloat16Rounding) {
    test::TempDir dir;
    test::writeSmallSlide(dir / "slide.svs", 21);

    // An encoder file whose BatchNorm layers are far from the identity (as after training).
    const auto kind = parseEncoderKind(GetParam());
    ASSERT_TRUE(kind);
    auto made = createEncoder(*kind, 64, 16, 3, 9);
    auto* torchEnc = dynamic_cast<TorchPatchEncoder*>(made.get());
    ASSERT_NE(torchEnc, nullptr);
    randomiseBatchNorm(torchEnc->module(), 13);
    saveEncoder(*made, dir / "enc.nicenc");

    ComputeOptions optimised, plain;
    optimised.device = plain.device = "cpu";
    plain.optimiseInference = false;
    auto fast = loadEncoder((dir / "enc.nicenc").string(), optimised);
    auto slow = loadEncoder((dir / "enc.nicenc").string(), plain);
    EXPECT_TRUE(dynamic_cast<TorchPatchEncoder*>(fast.get())->optimised());
    EXPECT_FALSE(dynamic_cast<TorchPatchEncoder*>(slow.get())->optimised());
    EXPECT_EQ(fast->info().hash, slow->info().hash); // the file's identity does not change

    CompressOptions o;
    o.batchSize = 16;
    o.augment = 8;
    o.force = true;
    o.inferenceThreads = 2; // the fast path as compression runs it by default on a 2-core machine
    const CompressResult rf = compressSlide(dir / "slide.svs", *fast, dir / "fast.h5", o);
    const CompressResult rs = compressSlide(dir / "slide.svs", *slow, dir / "slow.h5", o);
    ASSERT_GT(rf.encodedCells, 20);
    ASSERT_EQ(rf.encodedCells, rs.encodedCells);
    if (OneDnnChain::available()) { // the fast path runs straight on oneDNN (unless this CPU has no kernel for it)
        std::vector<float> codes(16);
        fast->encode(test::randomPatches(1, 64, 3).data(), 1, codes.data());
        EXPECT_FALSE(oneDnnSteps(*fast).empty()) << "the oneDNN chain fell back to LibTorch on this CPU";
    }

    const LatentGridReader a(dir / "fast.h5"), b(dir / "slow.h5");
    EXPECT_EQ(a.meta().encoderHash, b.meta().encoderHash);
    for (int k = 0; k < 8; ++k) {
        const auto ga = a.gridHwc(k), gb = b.gridHwc(k);
        ASSERT_EQ(ga.size(), gb.size());
        std::size_t nonzero = 0, differ = 0;
        for (std::size_t i = 0; i < ga.size(); ++i) {
            nonzero += gb[i] != 0.0F;
            differ += ga[i] != gb[i];
            // Both are float16 roundings of float32 values a few float32 ulps apart: at most one f16 step.
            ASSERT_LE(std::fabs(ga[i] - gb[i]), halfUlp(std::max(std::fabs(ga[i]), std::fabs(gb[i]))))
                << "variant " << k << " value " << i << ": " << ga[i] << " vs " << gb[i];
        }
        EXPECT_GT(nonzero, ga.size() / 4);
        EXPECT_LT(differ, ga.size() / 20); // one-step differences are rare
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, OptimisedInference, ::testing::Values("vae", "bigan"),
                         [](const auto& p) { return std::string(p.param); });

} // namespace
} // namespace nic

// The fused training-mode BatchNorm → LeakyReLU (→ Dropout2d) (core/encoders/nn/batchnormleaky.h) against the
// separate LibTorch operators it replaces: the same output, running statistics, batch counter, gradients for the
// input, γ and β (to float rounding), the same Dropout2d mask from the same draws; bits that do not depend on the
// number of threads; the separate operators, bit for bit, wherever the fused path does not apply; and the blocks
// the trainers run take the fused path.
#include "core/encoders/nn/batchnormleaky.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/torchencoder.h"
#include "core/slidelearning/nn/slidecnn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace nic {
namespace {

constexpr double kSlope = 0.2;

/// useFusedBatchNorm for one scope.
struct FusedSwitch {
    explicit FusedSwitch(bool on) { useFusedBatchNorm(on); }
    ~FusedSwitch() { useFusedBatchNorm(true); }
};

/// A BatchNorm with non-trivial γ, β and running statistics, and a copy of it.
template <typename Bn>
Bn makeBn(int channels) {
    Bn bn(channels);
    torch::NoGradGuard noGrad;
    bn->weight.copy_(torch::rand({channels}) + 0.5);
    bn->bias.copy_(torch::randn({channels}) * 0.3);
    bn->running_mean.copy_(torch::randn({channels}));
    bn->running_var.copy_(torch::rand({channels}) + 0.5);
    return bn;
}

template <typename Bn>
Bn copyOf(const Bn& from, int channels) {
    Bn bn(channels);
    torch::NoGradGuard noGrad;
    bn->weight.copy_(from->weight);
    bn->bias.copy_(from->bias);
    bn->running_mean.copy_(from->running_mean);
    bn->running_var.copy_(from->running_var);
    bn->num_batches_tracked.copy_(from->num_batches_tracked);
    return bn;
}

/// One call's results: output, gradients for x, γ, β (upstream gradient `g`), running statistics, the counter, and
/// the next value the default generator gives (the draws the call took).
struct Outcome {
    torch::Tensor y, dx, dWeight, dBias, runningMean, runningVar, batches, nextDraw;
};

template <typename Bn, typename Call>
Outcome run(Bn& bn, const torch::Tensor& input, const torch::Tensor& g, std::uint64_t seed, Call call) {
    auto x = input.detach().clone(input.dim() == 4 ? torch::MemoryFormat::Preserve : torch::MemoryFormat::Contiguous)
                 .requires_grad_(true);
    torch::manual_seed(seed);
    Outcome o;
    o.y = call(*bn, x);
    o.nextDraw = torch::rand({4});
    o.y.backward(g);
    o.dx = x.grad();
    o.dWeight = bn->weight.grad().defined() ? bn->weight.grad().clone() : torch::Tensor();
    o.dBias = bn->bias.grad().defined() ? bn->bias.grad().clone() : torch::Tensor();
    o.runningMean = bn->running_mean.clone();
    o.runningVar = bn->running_var.clone();
    o.batches = bn->num_batches_tracked.clone();
    return o;
}

void expectClose(const torch::Tensor& fused, const torch::Tensor& separate, double tolerance, const std::string& what) {
    ASSERT_EQ(fused.sizes(), separate.sizes()) << what;
    const double scale = std::max(1.0, separate.abs().max().item<double>());
    const double diff = (fused - separate).abs().max().item<double>();
    EXPECT_LE(diff, tolerance * scale) << what << ": largest difference " << diff << " (values up to " << scale << ")";
}

void expectSameOutcome(const Outcome& f, const Outcome& s, const std::string& what) {
    expectClose(f.y, s.y, 1e-5, what + ", output");
    expectClose(f.dx, s.dx, 1e-4, what + ", input gradient");
    expectClose(f.dWeight, s.dWeight, 1e-4, what + ", gamma gradient");
    expectClose(f.dBias, s.dBias, 1e-4, what + ", beta gradient");
    expectClose(f.runningMean, s.runningMean, 1e-6, what + ", running mean");
    expectClose(f.runningVar, s.runningVar, 1e-5, what + ", running variance");
    EXPECT_TRUE(torch::equal(f.batches, s.batches)) << what;
    EXPECT_TRUE(torch::equal(f.nextDraw, s.nextDraw)) << what << ": the calls took different draws";
    EXPECT_EQ(f.y.is_contiguous(torch::MemoryFormat::ChannelsLast), s.y.is_contiguous(torch::MemoryFormat::ChannelsLast))
        << what;
}

/// Random values with channel c centred on offset[c] (within ±10) at spread[c] (0.1 to 2.1).
torch::Tensor randomMap(const std::vector<std::int64_t>& sizes) {
    std::vector<std::int64_t> perChannel(sizes.size(), 1);
    perChannel[1] = sizes[1];
    return torch::randn(sizes) * (torch::rand(perChannel) * 2 + 0.1) + torch::randn(perChannel) * 3;
}

TEST(FusedBatchNorm, ChannelsLastMapsGiveWhatTheSeparateOperatorsGive) {
    // 32 channels (whole vectors) and 20 (a rest in every row); one sample; 1 × 1 maps; one channel; with and
    // without Dropout2d.
    for (const auto& sizes : {std::vector<std::int64_t>{6, 32, 9, 7}, {4, 20, 5, 5}, {1, 16, 5, 4}, {6, 16, 1, 1},
                              {5, 1, 3, 3}}) {
        for (const double p : {0.0, 0.3}) {
            torch::manual_seed(1);
            const int channels = static_cast<int>(sizes[1]);
            auto fusedBn = makeBn<torch::nn::BatchNorm2d>(channels);
            auto separateBn = copyOf(fusedBn, channels);
            torch::nn::Dropout2d drop{torch::nn::Dropout2dOptions(p)};
            const auto x = randomMap(sizes).contiguous(torch::MemoryFormat::ChannelsLast);
            const auto g = torch::randn(sizes);
            auto call = [&](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& in) {
                return batchNormLeaky(bn, in, kSlope, drop.get());
            };
            const std::string what = "[" + std::to_string(sizes[0]) + ", " + std::to_string(channels) + ", " +
                                     std::to_string(sizes[2]) + ", " + std::to_string(sizes[3]) + "], dropout " +
                                     std::to_string(p);
            const std::int64_t before = fusedBatchNormCalls();
            const Outcome fused = run(fusedBn, x, g, 7, call);
            EXPECT_EQ(fusedBatchNormCalls(), before + 1) << what << ": the fused path did not run";
            Outcome separate;
            {
                FusedSwitch off(false);
                separate = run(separateBn, x, g, 7, call);
            }
            EXPECT_EQ(fusedBatchNormCalls(), before + 1) << what;
            expectSameOutcome(fused, separate, what);
            if (p > 0) { // whole channels of some samples dropped, the others scaled by 1 / (1 − p)
                const auto zeroed = (fused.y == 0).all(3).all(2);
                if (sizes[0] * sizes[1] >= 64) {
                    EXPECT_GT(zeroed.sum().item<std::int64_t>(), 0) << what;
                }
                EXPECT_TRUE(torch::equal(zeroed, (separate.y == 0).all(3).all(2))) << what;
            }
        }
    }
}

TEST(FusedBatchNorm, DenseBatchesGiveWhatTheSeparateOperatorsGive) {
    // 48 and 7 channels over 33 rows, 2 rows, and 20,000 channels over 8 rows (the sums by blocks of channels).
    for (const auto& [rows, channels] : {std::pair<std::int64_t, std::int64_t>{33, 48}, {33, 7}, {2, 7}, {8, 20000}}) {
        torch::manual_seed(2);
        auto fusedBn = makeBn<torch::nn::BatchNorm1d>(static_cast<int>(channels));
        auto separateBn = copyOf(fusedBn, static_cast<int>(channels));
        const auto x = randomMap({rows, channels});
        const auto g = torch::randn({rows, channels});
        auto call = [](torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& in) { return batchNormLeaky(bn, in, kSlope); };
        const std::int64_t before = fusedBatchNormCalls();
        const Outcome fused = run(fusedBn, x, g, 7, call);
        EXPECT_EQ(fusedBatchNormCalls(), before + 1);
        FusedSwitch off(false);
        expectSameOutcome(fused, run(separateBn, x, g, 7, call),
                          "[" + std::to_string(rows) + ", " + std::to_string(channels) + "]");
    }
}

TEST(FusedBatchNorm, AChannelWithALargeMeanKeepsItsPrecision) {
    // Channel 0 at 1000 ± 0.01 (x itself is known to ±3e-5 there), channel 1 at -300 ± 0.05: against the same
    // arithmetic in double, the fused output and gradients keep float precision, the normalisation and its
    // gradient being taken around the batch mean held in two floats.
    torch::manual_seed(6);
    auto bn = makeBn<torch::nn::BatchNorm2d>(16);
    auto reference = copyOf(bn, 16);
    reference->to(torch::kDouble);
    auto x = randomMap({8, 16, 6, 6});
    {
        torch::NoGradGuard noGrad;
        x.select(1, 0).mul_(0.01).add_(1000);
        x.select(1, 1).mul_(0.05).sub_(300);
    }
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    const auto g = torch::randn({8, 16, 6, 6});
    const Outcome fused = run(bn, x, g, 9, [](torch::nn::BatchNorm2dImpl& b, const torch::Tensor& in) {
        return batchNormLeaky(b, in, kSlope);
    });
    const Outcome exact = run(reference, x.to(torch::kDouble), g.to(torch::kDouble), 9,
                              [](torch::nn::BatchNorm2dImpl& b, const torch::Tensor& in) {
                                  return torch::leaky_relu(b.forward(in), kSlope);
                              });
    expectClose(fused.y.to(torch::kDouble), exact.y, 2e-6, "output");
    expectClose(fused.dx.to(torch::kDouble), exact.dx, 1e-5, "input gradient");
    expectClose(fused.dWeight.to(torch::kDouble), exact.dWeight, 1e-5, "gamma gradient");
    expectClose(fused.dBias.to(torch::kDouble), exact.dBias, 1e-5, "beta gradient");
    expectClose(fused.runningMean.to(torch::kDouble), exact.runningMean, 1e-6, "running mean");
    expectClose(fused.runningVar.to(torch::kDouble), exact.runningVar, 1e-6, "running variance");
}

TEST(FusedBatchNorm, BitsDoNotDependOnTheNumberOfThreads) {
    const int threads = torch::get_num_threads();
    torch::manual_seed(3);
    auto one = makeBn<torch::nn::BatchNorm2d>(64);
    auto two = copyOf(one, 64);
    torch::nn::Dropout2d drop{torch::nn::Dropout2dOptions(0.25)};
    // 40,000 rows: many chunks of the reductions and of the element-wise loops.
    const auto x = torch::randn({16, 64, 50, 50}).contiguous(torch::MemoryFormat::ChannelsLast);
    const auto g = torch::randn({16, 64, 50, 50});
    auto call = [&](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& in) {
        return batchNormLeaky(bn, in, kSlope, drop.get());
    };
    auto three = copyOf(one, 64);
    torch::set_num_threads(1);
    const Outcome a = run(one, x, g, 5, call);
    torch::set_num_threads(2);
    const Outcome b = run(two, x, g, 5, call);
    torch::set_num_threads(3); // an uneven split of the chunks
    const Outcome c = run(three, x, g, 5, call);
    torch::set_num_threads(threads);
    for (const Outcome* o : {&b, &c})
        for (const auto& [u, v, what] : {std::tuple{a.y, o->y, "output"}, {a.dx, o->dx, "input gradient"},
                                         {a.dWeight, o->dWeight, "gamma gradient"}, {a.dBias, o->dBias, "beta gradient"},
                                         {a.runningMean, o->runningMean, "running mean"},
                                         {a.runningVar, o->runningVar, "running variance"}})
            EXPECT_TRUE(torch::equal(u, v)) << what << " differs between one thread and " << (o == &b ? 2 : 3);
}

TEST(FusedBatchNorm, OtherCasesRunTheSeparateOperators) {
    torch::manual_seed(4);
    auto bn = makeBn<torch::nn::BatchNorm2d>(16);
    auto reference = copyOf(bn, 16);
    const auto channelFirst = torch::randn({4, 16, 6, 6});
    const std::int64_t before = fusedBatchNormCalls();
    // A channel-first map and evaluation mode: the separate operators' bits.
    for (const bool training : {true, false}) {
        bn->train(training);
        reference->train(training);
        for (const auto& x : {channelFirst, channelFirst.contiguous(torch::MemoryFormat::ChannelsLast)}) {
            if (training && x.is_contiguous(torch::MemoryFormat::ChannelsLast))
                continue; // the fused case
            const auto y = batchNormLeaky(*bn, x, kSlope);
            const auto expected = torch::leaky_relu(reference->forward(x), kSlope);
            EXPECT_TRUE(torch::equal(y, expected)) << (training ? "training" : "evaluation");
        }
    }
    EXPECT_EQ(fusedBatchNormCalls(), before);
    // One value per channel, and a wrong channel count: BatchNorm's own errors.
    auto dense = makeBn<torch::nn::BatchNorm1d>(8);
    try {
        batchNormLeaky(*dense, torch::randn({1, 8}), kSlope);
        ADD_FAILURE() << "a batch of one was accepted in training";
    } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Expected more than 1 value per channel when training"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(batchNormLeaky(*bn, torch::randn({4, 8, 6, 6}).contiguous(torch::MemoryFormat::ChannelsLast), kSlope),
                 c10::Error);
    EXPECT_EQ(fusedBatchNormCalls(), before);
}

TEST(FusedBatchNorm, TheTrainersBlocksTakeTheFusedPath) {
    torch::manual_seed(5);
    // The VAE-type encoder as the encoder trainer runs it: weights and batch channels-last, training mode.
    ConvEncoder encoder(64, 16);
    keepWeightsChannelsLast(*encoder, torch::kCPU);
    encoder->train();
    std::int64_t before = fusedBatchNormCalls();
    encoder->forward(torch::randn({4, 3, 64, 64}).contiguous(torch::MemoryFormat::ChannelsLast)).sum().backward();
    EXPECT_EQ(fusedBatchNormCalls(), before + 6); // five convolution blocks and the dense block
    // The slide CNN as its trainer runs it on the CPU.
    SlideCnnConfig cfg;
    cfg.inputChannels = 16;
    SlideCnn net(cfg);
    keepWeightsChannelsLast(*net, torch::kCPU);
    net->train();
    before = fusedBatchNormCalls();
    net->forward(torch::randn({4, 16, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast)).sum().backward();
    EXPECT_EQ(fusedBatchNormCalls(), before + cfg.layers + 1); // the blocks and the dense layer
}

TEST(FusedBatchNorm, FrozenParametersAndNoGradientModeBehaveAsTheSeparateOperators) {
    torch::manual_seed(7);
    auto bn = makeBn<torch::nn::BatchNorm2d>(16);
    auto reference = copyOf(bn, 16);
    const auto x = randomMap({4, 16, 6, 6}).contiguous(torch::MemoryFormat::ChannelsLast);
    const auto g = torch::randn({4, 16, 6, 6});
    // γ and β frozen: no gradient for them, the input's gradient as before.
    bn->weight.requires_grad_(false);
    bn->bias.requires_grad_(false);
    reference->weight.requires_grad_(false);
    reference->bias.requires_grad_(false);
    auto call = [](torch::nn::BatchNorm2dImpl& b, const torch::Tensor& in) { return batchNormLeaky(b, in, kSlope); };
    const Outcome fused = run(bn, x, g, 3, call);
    Outcome separate;
    {
        FusedSwitch off(false);
        separate = run(reference, x, g, 3, call);
    }
    EXPECT_FALSE(fused.dWeight.defined());
    EXPECT_FALSE(fused.dBias.defined());
    expectClose(fused.dx, separate.dx, 1e-4, "input gradient, frozen gamma and beta");
    // Training mode without gradients (a forward pass under NoGradGuard): the running statistics still move.
    const std::int64_t before = fusedBatchNormCalls();
    torch::Tensor y, expected;
    {
        torch::NoGradGuard noGrad;
        y = batchNormLeaky(*bn, x, kSlope);
        FusedSwitch off(false);
        expected = batchNormLeaky(*reference, x, kSlope);
    }
    EXPECT_EQ(fusedBatchNormCalls(), before + 1);
    EXPECT_FALSE(y.requires_grad());
    expectClose(y, expected, 1e-5, "output under NoGradGuard");
    expectClose(bn->running_mean, reference->running_mean, 1e-6, "running mean under NoGradGuard");
    expectClose(bn->running_var, reference->running_var, 1e-5, "running variance under NoGradGuard");
    EXPECT_TRUE(torch::equal(bn->num_batches_tracked, reference->num_batches_tracked));
}

TEST(FusedBatchNorm, ASecondDerivativeIsRefusedNotDropped) {
    torch::manual_seed(8);
    auto bn = makeBn<torch::nn::BatchNorm2d>(16);
    auto x = torch::randn({4, 16, 6, 6}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
    const auto y = batchNormLeaky(*bn, x, kSlope);
    try {
        torch::autograd::grad({y.pow(2).sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
        ADD_FAILURE() << "a gradient meant to be differentiated again was computed";
    } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find("the fused BatchNorm -> LeakyReLU has no double backward"), std::string::npos)
            << e.what();
    }
}

/// Every parameter's gradient after one training step's backward through `net` (a fresh copy for each path).
template <typename Net>
std::vector<torch::Tensor> parameterGradients(Net& net, const torch::Tensor& x) {
    torch::manual_seed(21); // the same dropout draws for both paths
    net->train();
    net->zero_grad();
    net->forward(x).pow(2).sum().backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : net->parameters())
        grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return grads;
}

/// Which side of zero every LeakyReLU's input falls on, in order through `net` (the sign of each block's output:
/// LeakyReLU and Dropout2d keep it), in a training step drawn as parameterGradients draws it. With gradients
/// recorded, as there: some layers take another kernel under NoGradGuard (applyLinear), which rounds differently.
std::vector<torch::Tensor> branches(ConvEncoder& net, torch::Tensor x) {
    torch::manual_seed(21);
    net->train();
    std::vector<torch::Tensor> taken;
    for (const auto& block : net->convs->children()) {
        x = block->as<ConvBlockImpl>()->forward(x);
        taken.push_back(x > 0);
    }
    taken.push_back(net->dense->forward(flattenFeatures(x, net->flattenNhwc)) > 0);
    return taken;
}

std::vector<torch::Tensor> branches(SlideCnn& net, torch::Tensor x) {
    torch::manual_seed(21);
    net->train();
    std::vector<torch::Tensor> taken;
    for (auto& block : net->blocks) {
        x = block->forward(x);
        taken.push_back(x > 0);
    }
    taken.push_back(batchNormLeaky(*net->fcBn, net->fc(net->pooled(x)), kSlope) > 0);
    return taken;
}

TEST(FusedBatchNorm, WholeNetworksGetTheSeparateOperatorsGradients) {
    // Every parameter's gradient, fused against separate, through the VAE-type encoder and through the slide CNN with
    // Dropout2d. The biases of layers followed by a BatchNorm have a true gradient of zero and hold rounding noise
    // (about 1e-6): hence a tolerance relative to max(1, the largest value).
    //
    // The networks are piecewise linear: where one of their half a million LeakyReLU inputs lies within float
    // rounding of zero, the two paths (each rounding differently) can take different branches, and the gradients
    // then differ by up to a tenth of the largest one (measured: 7 of 40 random inputs of the encoder, each with
    // exactly one LeakyReLU input on the other side of zero than in double precision, in one path or the other).
    // Those inputs say nothing about the fused operator, so an input is compared only where both paths take the same
    // branch everywhere; a fused forward pass that went wrong would leave no input to compare, and fails.
    auto compare = [](auto makeNet, std::vector<std::int64_t> shape, const std::string& what) {
        int compared = 0;
        for (std::uint64_t seed = 100; seed < 110 && compared < 2; ++seed) {
            torch::manual_seed(seed);
            const auto x = torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast);
            auto fusedNet = makeNet();
            auto separateNet = makeNet();
            auto fusedBranches = branches(fusedNet, x);
            std::vector<torch::Tensor> separateBranches;
            {
                FusedSwitch off(false);
                separateBranches = branches(separateNet, x);
            }
            bool same = true;
            for (std::size_t i = 0; i < fusedBranches.size(); ++i)
                same = same && torch::equal(fusedBranches[i], separateBranches[i]);
            if (!same)
                continue;
            // The walk changed only the running statistics, which training steps do not read.
            const auto fused = parameterGradients(fusedNet, x);
            FusedSwitch off(false);
            const auto separate = parameterGradients(separateNet, x);
            ASSERT_EQ(fused.size(), separate.size());
            const auto names = fusedNet->named_parameters();
            for (std::size_t i = 0; i < fused.size(); ++i)
                expectClose(fused[i], separate[i], 1e-3,
                            what + " (input seed " + std::to_string(seed) + "), " + names[i].key());
            ++compared;
        }
        EXPECT_EQ(compared, 2) << what << ": too few of 10 inputs where both paths take the same LeakyReLU branches";
    };
    compare(
        [] {
            torch::manual_seed(31);
            ConvEncoder e(64, 16);
            keepWeightsChannelsLast(*e, torch::kCPU);
            return e;
        },
        {8, 3, 64, 64}, "VAE-type encoder");
    compare(
        [] {
            torch::manual_seed(32);
            SlideCnnConfig cfg;
            cfg.inputChannels = 16;
            cfg.dropout = 0.3;
            SlideCnn net(cfg);
            keepWeightsChannelsLast(*net, torch::kCPU);
            return net;
        },
        {6, 16, 32, 32}, "slide CNN");
}

} // namespace
} // namespace nic

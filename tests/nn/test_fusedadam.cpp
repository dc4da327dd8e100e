// FusedAdam (core/encoders/nn/fusedadam.h) against LibTorch's own Adam: the same parameters and state to
// float rounding over many steps, for every option the trainers could set; the same serialised state
// (a checkpoint written by one is resumed by the other); gradients cleared, not zeroed.
#include "core/encoders/nn/fusedadam.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <sstream>

namespace {

using nic::FusedAdam;

// A small network with a convolution, a batch norm and a dense layer (parameters of 4 to 1,200 elements).
// The convolution has no bias: before a batch norm a bias has a gradient of pure rounding noise, which
// Adam normalises into full-size steps, so two correct implementations would part ways there.
struct NetImpl : torch::nn::Module {
    NetImpl() {
        conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).bias(false)));
        bn = register_module("bn", torch::nn::BatchNorm2d(8));
        fc = register_module("fc", torch::nn::Linear(8 * 6 * 6, 4));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        return fc(torch::relu(bn(conv(x))).flatten(1));
    }
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(Net);

// `channelsLast`: the convolution's weight stored channels-last, as the trainers keep them.
Net makeNet(torch::Dtype dtype = torch::kFloat, bool channelsLast = false) {
    torch::manual_seed(3);
    Net net;
    net->to(dtype);
    if (channelsLast)
        net->conv->weight.set_data(net->conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
    return net;
}

Net copyOf(const Net& from) {
    Net net = makeNet(from->parameters()[0].scalar_type(), !from->conv->weight.is_contiguous());
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < net->parameters().size(); ++i)
        net->parameters()[i].copy_(from->parameters()[i]);
    return net;
}

// `steps` steps on fixed random batches (the same for every optimiser).
template <typename Opt>
void train(Net& net, Opt& opt, int steps, int firstBatch = 0) {
    for (int s = firstBatch; s < firstBatch + steps; ++s) {
        torch::manual_seed(100 + s);
        const auto dtype = net->parameters()[0].scalar_type();
        const auto x = torch::randn({16, 3, 8, 8}).to(dtype);
        const auto y = torch::randint(0, 4, {16}, torch::kLong);
        opt.zero_grad();
        torch::nn::functional::cross_entropy(net->forward(x), y).backward();
        opt.step();
    }
}

// Largest |a - b| / (|b| + 1e-3) over every parameter.
double worstRelativeDifference(const Net& a, const Net& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a->parameters().size(); ++i) {
        const auto pa = a->parameters()[i].to(torch::kDouble), pb = b->parameters()[i].to(torch::kDouble);
        worst = std::max(worst, ((pa - pb).abs() / (pb.abs() + 1e-3)).max().item<double>());
    }
    return worst;
}

double largestChange(const Net& a, const Net& before) {
    double largest = 0;
    for (std::size_t i = 0; i < a->parameters().size(); ++i)
        largest = std::max(largest, (a->parameters()[i] - before->parameters()[i]).abs().max().item<double>());
    return largest;
}

/// `to` takes the state `from` saved, through a checkpoint archive (as a resumed training run does).
void resumeState(torch::optim::Optimizer& from, torch::optim::Optimizer& to) {
    std::stringstream saved;
    {
        torch::serialize::OutputArchive archive;
        from.save(archive);
        archive.save_to(saved);
    }
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    to.load(archive);
}

struct Case {
    const char* name;
    torch::optim::AdamOptions options;
    torch::Dtype dtype;
    bool channelsLast = false;
    bool fused = true; ///< whether every update takes the fused loop
};

class FusedAdamEqualsAdam : public ::testing::TestWithParam<Case> {};

TEST_P(FusedAdamEqualsAdam, OverFortySteps) {
    const Case& c = GetParam();
    Net reference = makeNet(c.dtype, c.channelsLast);
    ASSERT_EQ(reference->conv->weight.is_contiguous(), !c.channelsLast);
    Net fused = copyOf(reference);
    const Net start = copyOf(reference);
    torch::optim::Adam adam(reference->parameters(), c.options);
    FusedAdam fusedAdam(fused->parameters(), c.options);
    train(reference, adam, 40);
    train(fused, fusedAdam, 40);
    ASSERT_GT(largestChange(reference, start), 1e-3) << "the parameters moved";
    // Forty steps of float rounding (the fused loop rounds where LibTorch's kernels may fuse a multiply-add).
    const double worst = worstRelativeDifference(fused, reference);
    std::printf("[ info ] largest relative difference from Adam after 40 steps: %.3g\n", worst);
    if (c.fused)
        EXPECT_EQ(fusedAdam.referenceUpdates(), 0);
    else
        EXPECT_EQ(fusedAdam.referenceUpdates(), 40 * static_cast<std::int64_t>(fused->parameters().size()));
    EXPECT_LT(worst, c.dtype == torch::kFloat ? 2e-5 : 1e-12);
    // The state is Adam's own, element for element.
    const auto& rs = adam.state();
    const auto& fs = fusedAdam.state();
    ASSERT_EQ(fs.size(), rs.size());
    for (std::size_t i = 0; i < reference->parameters().size(); ++i) {
        const auto& r =
            static_cast<const torch::optim::AdamParamState&>(*rs.at(nic::optimizerStateKey(reference->parameters()[i])));
        const auto& f = static_cast<const torch::optim::AdamParamState&>(*fs.at(nic::optimizerStateKey(fused->parameters()[i])));
        EXPECT_EQ(f.step(), 40);
        // Relative to each moment's largest element (the smallest second moments are 1e-12 and below).
        const auto near = [](const torch::Tensor& a, const torch::Tensor& b) {
            return ((a - b).abs().max() / b.abs().max()).item<double>();
        };
        EXPECT_LT(near(f.exp_avg(), r.exp_avg()), 1e-4);
        EXPECT_LT(near(f.exp_avg_sq(), r.exp_avg_sq()), 1e-4);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Options, FusedAdamEqualsAdam,
    ::testing::Values(Case{"defaults", torch::optim::AdamOptions(1e-3), torch::kFloat},
                      Case{"bigan_betas", torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}), torch::kFloat},
                      Case{"weight_decay", torch::optim::AdamOptions(1e-3).weight_decay(0.01), torch::kFloat},
                      Case{"channels_last_weights", torch::optim::AdamOptions(1e-3), torch::kFloat, true},
                      Case{"amsgrad_reference_path", torch::optim::AdamOptions(1e-3).amsgrad(true), torch::kFloat,
                           false, false},
                      Case{"double_reference_path", torch::optim::AdamOptions(1e-3), torch::kDouble, false, false}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// A checkpoint of FusedAdam's state resumes in LibTorch's Adam and the reverse, to the same result as
// an uninterrupted run.
TEST(FusedAdam, StateSavedByOneResumesInTheOther) {
    Net whole = makeNet();
    Net first = copyOf(whole);
    torch::optim::Adam wholeAdam(whole->parameters(), torch::optim::AdamOptions(1e-3));
    train(whole, wholeAdam, 20);

    FusedAdam firstHalf(first->parameters(), torch::optim::AdamOptions(1e-3));
    train(first, firstHalf, 10);
    torch::optim::Adam secondHalf(first->parameters(), torch::optim::AdamOptions(1e-3));
    resumeState(firstHalf, secondHalf);
    train(first, secondHalf, 10, 10);
    EXPECT_LT(worstRelativeDifference(first, whole), 1e-4);

    // And the other way: Adam's state resumed by FusedAdam.
    Net second = copyOf(makeNet());
    torch::optim::Adam adamFirst(second->parameters(), torch::optim::AdamOptions(1e-3));
    train(second, adamFirst, 10);
    FusedAdam fusedSecond(second->parameters(), torch::optim::AdamOptions(1e-3));
    resumeState(adamFirst, fusedSecond);
    train(second, fusedSecond, 10, 10);
    EXPECT_LT(worstRelativeDifference(second, whole), 1e-4);
}

// A state saved while the convolution weight was in LibTorch's default layout, resumed after the weight became
// channels-last (a checkpoint of an earlier version, resumed by a trainer that keeps weights channels-last): the
// moments take the weight's layout, every update stays in the fused loop, and the run ends where an uninterrupted
// channels-last run does.
TEST(FusedAdam, AStateInAnotherLayoutTakesItsParametersLayout) {
    Net whole = makeNet(torch::kFloat, true);
    Net resumed = makeNet();
    FusedAdam wholeAdam(whole->parameters(), torch::optim::AdamOptions(1e-3));
    train(whole, wholeAdam, 20);

    FusedAdam firstHalf(resumed->parameters(), torch::optim::AdamOptions(1e-3));
    train(resumed, firstHalf, 10);
    nic::clearGradients(firstHalf); // a resumed process starts without gradients (they would keep the old layout)
    {
        torch::NoGradGuard noGrad;
        resumed->conv->weight.set_data(resumed->conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    FusedAdam secondHalf(resumed->parameters(), torch::optim::AdamOptions(1e-3));
    resumeState(firstHalf, secondHalf); // the moments saved keep the layout the weight had
    train(resumed, secondHalf, 10, 10);
    EXPECT_EQ(secondHalf.referenceUpdates(), 0);
    const auto& state = static_cast<const torch::optim::AdamParamState&>(
        *secondHalf.state().at(nic::optimizerStateKey(resumed->conv->weight)));
    EXPECT_TRUE(state.exp_avg().is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(state.exp_avg_sq().is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_LT(worstRelativeDifference(resumed, whole), 1e-4);
}

// clearGradients drops the gradients; a parameter left out of the next backward pass keeps none, and
// the step leaves it and its state alone (as LibTorch's Adam does for a parameter without a gradient).
TEST(FusedAdam, ClearedGradientsAreUndefinedAndUnusedParametersStayPut) {
    Net net = makeNet();
    FusedAdam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
    train(net, opt, 2);
    for (const auto& p : net->parameters())
        ASSERT_TRUE(p.grad().defined());
    nic::clearGradients(opt);
    for (const auto& p : net->parameters())
        EXPECT_FALSE(p.grad().defined());
    // Only the dense layer takes part: a loss on its weight alone.
    const auto convBefore = net->conv->weight.clone();
    net->fc->weight.square().sum().backward();
    EXPECT_FALSE(net->conv->weight.grad().defined());
    opt.step();
    EXPECT_TRUE(torch::equal(net->conv->weight, convBefore));
    const auto& convState = *opt.state().at(nic::optimizerStateKey(net->conv->weight));
    EXPECT_EQ(static_cast<const torch::optim::AdamParamState&>(convState).step(), 2);
    const auto& fcState = *opt.state().at(nic::optimizerStateKey(net->fc->weight));
    EXPECT_EQ(static_cast<const torch::optim::AdamParamState&>(fcState).step(), 3);
}

} // namespace

#pragma once
// What the OneDnnChain tests share (test_onednnchain.cpp, test_onednnchainfused.cpp): chains of known weights with
// LibTorch's own operators beside them, and scoped settings of the chain's process-wide switches.
#include "core/encoders/nn/onednnchain.h"
#include "testsupport.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace nic::chaintest {

namespace F = torch::nn::functional;

inline OneDnnChain::Layer layer(const torch::Tensor& w, const torch::Tensor& b, bool conv, int stride, int padding,
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

/// A chain of every kind of step the encoders use: a first convolution on three planar channels (the direct kernel
/// with AVX-512; otherwise, or switched off, oneDNN's blocked output and a reorder to channels-last), convolutions with
/// and without LeakyReLU, with stride 1 and 2, with and without padding, on channel counts that are and are not
/// multiples of 16, then two dense layers.
struct Reference {
    std::vector<torch::Tensor> w, b;
    Reference() {
        torch::manual_seed(5);
        const std::vector<std::vector<std::int64_t>> shapes = {
            {32, 3, 3, 3}, {24, 32, 3, 3}, {48, 24, 3, 3}, {40, 48, 1, 1}};
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
        return {layer(w[0], b[0], true, 2, 1, 0.2F),  layer(w[1], b[1], true, 1, 1, 0.2F),
                layer(w[2], b[2], true, 2, 0, -1.0F), layer(w[3], b[3], true, 1, 0, 0.1F),
                layer(w[4], b[4], false, 1, 0, 0.2F), layer(w[5], b[5], false, 1, 0, -1.0F)};
    }
    /// LibTorch's own operators on NCHW input [n, 3, 20, 20]: 20 → 10 → 10 → 4 → 4.
    torch::Tensor forward(const torch::Tensor& x) const {
        auto lrelu = [](const torch::Tensor& t, double s) {
            return F::leaky_relu(t, F::LeakyReLUFuncOptions().negative_slope(s));
        };
        auto h = lrelu(F::conv2d(x, w[0], F::Conv2dFuncOptions().bias(b[0]).stride(2).padding(1)), 0.2);
        h = lrelu(F::conv2d(h, w[1], F::Conv2dFuncOptions().bias(b[1]).padding(1)), 0.2);
        h = F::conv2d(h, w[2], F::Conv2dFuncOptions().bias(b[2]).stride(2));
        h = lrelu(F::conv2d(h, w[3], F::Conv2dFuncOptions().bias(b[3])), 0.1);
        h = lrelu(F::linear(h.flatten(1), w[4], b[4]), 0.2);
        return F::linear(h, w[5], b[5]);
    }
};

/// Two 3 × 3, stride-2, padding-1 convolutions with LeakyReLU (3 → c1 → c2 channels over side² inputs), then a dense
/// layer to `outputs`, drawn from `seed`: a VAE-shaped start for the direct kernels, the fusion and the sgemm choice.
struct TwoConvolutions {
    torch::Tensor w1, b1, w2, b2, w3, b3;
    float slope1, slope2;
    TwoConvolutions(std::uint64_t seed, int c1, int c2, int side, int outputs, float s1 = 0.2F, float s2 = 0.2F)
        : slope1(s1), slope2(s2) {
        torch::manual_seed(seed);
        const int o = ((side - 1) / 2) / 2 + 1; // the second convolution's output side
        w1 = torch::randn({c1, 3, 3, 3}) * 0.4;
        b1 = torch::randn({c1}) * 0.2;
        w2 = torch::randn({c2, c1, 3, 3}) * 0.1;
        b2 = torch::randn({c2}) * 0.2;
        w3 = torch::randn({outputs, c2 * o * o}) * 0.05;
        b3 = torch::randn({outputs}) * 0.2;
    }
    std::vector<OneDnnChain::Layer> layers() const {
        return {layer(w1, b1, true, 2, 1, slope1), layer(w2, b2, true, 2, 1, slope2),
                layer(w3, b3, false, 1, 0, -1.0F)};
    }
    /// LibTorch's own operators on NCHW input. The chain flattens the last feature map in its planar order
    /// ([out, C, H, W] weights), as LibTorch does.
    torch::Tensor forward(const torch::Tensor& x) const {
        auto lrelu = [](const torch::Tensor& t, double s) {
            return F::leaky_relu(t, F::LeakyReLUFuncOptions().negative_slope(s));
        };
        auto h = lrelu(F::conv2d(x, w1, F::Conv2dFuncOptions().bias(b1).stride(2).padding(1)), slope1);
        h = lrelu(F::conv2d(h, w2, F::Conv2dFuncOptions().bias(b2).stride(2).padding(1)), slope2);
        return F::linear(h.flatten(1), w3, b3);
    }
};

/// The chain on x, given the padded rows run() computes: here NaN, which must not reach the n rows returned.
inline torch::Tensor runChain(OneDnnChain& chain, const torch::Tensor& x, float padding = 0.0F) {
    const auto n = x.size(0);
    auto input = torch::full({OneDnnChain::paddedBatch(static_cast<int>(n)), x.size(1), x.size(2), x.size(3)}, padding);
    input.narrow(0, 0, n).copy_(x);
    auto out = torch::empty({n, chain.outputs()});
    chain.run(input.data_ptr<float>(), static_cast<int>(n), out.data_ptr<float>(), 1);
    return out;
}

#define SKIP_WITHOUT_ONEDNN()                                                                                          \
    do {                                                                                                               \
        if (!OneDnnChain::available()) {                                                                               \
            GTEST_SKIP() << "this build has no oneDNN (libdnnl-dev): compression runs through LibTorch";               \
        }                                                                                                              \
    } while (0)

using test::ScopedSwitch;
using DirectFirstConvolution = ScopedSwitch<&OneDnnChain::useDirectFirstConvolution>;
using WideConvolutions = ScopedSwitch<&OneDnnChain::useWideConvolutions>;
using FusedFirstConvolutions = ScopedSwitch<&OneDnnChain::fuseFirstConvolutions>;

/// Sets how chains choose between oneDNN and im2col + sgemm (OneDnnChain::useGemmConvolutions) for a scope.
class GemmConvolutions {
public:
    explicit GemmConvolutions(OneDnnChain::GemmConvolutions mode) : before_(OneDnnChain::useGemmConvolutions(mode)) {}
    ~GemmConvolutions() { OneDnnChain::useGemmConvolutions(before_); }
    GemmConvolutions(const GemmConvolutions&) = delete;
    GemmConvolutions& operator=(const GemmConvolutions&) = delete;

private:
    OneDnnChain::GemmConvolutions before_;
};

/// A chain over 3 planar channels of side² built while a process-wide switch's scope object (FusedFirstConvolutions,
/// GemmConvolutions, ...) holds `setting`: the chain keeps what it was built with.
template <class Scope, class Setting>
std::unique_ptr<OneDnnChain> buildWith(Setting setting, const std::vector<OneDnnChain::Layer>& layers, int side) {
    const Scope scope(setting);
    return std::make_unique<OneDnnChain>(layers, 3, side);
}

/// Turns OneDnnChain::timeSteps on for a scope and puts the setting back.
class TimedSteps {
public:
    TimedSteps() : before_(OneDnnChain::timeSteps(true)) {}
    ~TimedSteps() { OneDnnChain::timeSteps(before_); }
    TimedSteps(const TimedSteps&) = delete;
    TimedSteps& operator=(const TimedSteps&) = delete;

private:
    bool before_;
};

} // namespace nic::chaintest

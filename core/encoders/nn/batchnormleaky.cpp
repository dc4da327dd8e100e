#include "core/encoders/nn/batchnormleaky.h"

#include "core/base/envswitch.h"
#include "core/encoders/nn/bnkernels.h"

#include <atomic>
#include <cstdlib>
#include <string>
#include <cmath>
#include <algorithm>
#include <vector>

namespace nic {

namespace {

/// NIC_FUSED_BATCHNORM=0 in the environment starts with the separate operators (to compare, or to rule the fusion out).
std::atomic<bool> gFused{envSwitchOn("NIC_FUSED_BATCHNORM")};
std::atomic<std::int64_t> gFusedCalls{0};

bnkernels::Shape shapeOf(const torch::Tensor& x) {
    bnkernels::Shape s;
    s.channels = x.size(1);
    s.rows = x.numel() / s.channels;
    s.rowsPerSample = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
    return s;
}

/// The per-channel floats both passes normalise with: z = ((x − mean) − meanLow)·scale + beta, scale = γ·invstd,
/// from the batch's mean and invstd in double. Computed the same way in forward and backward, so the backward pass
/// recomputes the forward pass's z exactly.
struct Coefficients {
    torch::Tensor mean, meanLow, scale, beta;
    bnkernels::Affine affine() const {
        return {mean.data_ptr<float>(), meanLow.data_ptr<float>(), scale.data_ptr<float>(), beta.data_ptr<float>()};
    }
};

Coefficients coefficients(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                          const torch::Tensor& invstd) {
    auto high = mean.to(torch::kFloat);
    auto low = (mean - high.to(torch::kDouble)).to(torch::kFloat);
    return {high, low, (weight.to(torch::kDouble) * invstd).to(torch::kFloat).contiguous(), bias.contiguous()};
}

const float* maskData(const torch::Tensor& mask) { return mask.defined() ? mask.data_ptr<float>() : nullptr; }

/// x, γ, β → leaky(BN(x))·mask with the batch's mean and 1/√(σ² + ε) (double) given; gradients for x, γ, β.
class BatchNormLeakyFunction : public torch::autograd::Function<BatchNormLeakyFunction> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                 const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                                 const torch::Tensor& invstd, const c10::optional<torch::Tensor>& dropMask, double slope) {
        // The mask is optional (an undefined Tensor argument would be taken for a variable without a device).
        const torch::Tensor mask = dropMask.value_or(torch::Tensor());
        RECORD_FUNCTION("nic::batch_norm_leaky_relu", std::vector<c10::IValue>({x}));
        const Coefficients k = coefficients(weight, bias, mean, invstd);
        auto y = torch::empty_like(x);
        bnkernels::forward(x.data_ptr<float>(), shapeOf(x), k.affine(), static_cast<float>(slope), maskData(mask),
                           y.data_ptr<float>());
        ctx->save_for_backward({x, weight, bias, mean, invstd, mask});
        ctx->saved_data["slope"] = slope;
        return y;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        RECORD_FUNCTION("nic::batch_norm_leaky_relu_backward", std::vector<c10::IValue>({grads[0]}));
        // The gradients are computed from raw memory: they could not themselves be differentiated.
        TORCH_CHECK(!torch::GradMode::is_enabled(),
                    "the fused BatchNorm -> LeakyReLU has no double backward (run with NIC_FUSED_BATCHNORM=0)");
        const auto saved = ctx->get_saved_variables();
        const torch::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[3], &invstd = saved[4],
                            &mask = saved[5];
        const auto slope = static_cast<float>(ctx->saved_data["slope"].toDouble());
        const torch::Tensor g = x.dim() == 4 ? grads[0].contiguous(torch::MemoryFormat::ChannelsLast) : grads[0].contiguous();
        const bnkernels::Shape s = shapeOf(x);
        const Coefficients k = coefficients(weight, bias, mean, invstd);
        const auto c = static_cast<std::size_t>(s.channels);
        std::vector<double> sumGz(c), sumGzCentred(c);
        bnkernels::backwardSums(g.data_ptr<float>(), x.data_ptr<float>(), s, k.affine(), slope, maskData(mask),
                                sumGz.data(), sumGzCentred.data());
        // dβ = Σ gz, dγ = Σ gz·x̂ with x̂ = (x − mean)·invstd; dx = a·gz + (x − mean)·b + d with a = γ·invstd,
        // b = −γ·invstd·dγ·invstd / M, d = −γ·invstd·dβ / M (BatchNorm's gradient with the batch's statistics).
        const auto gammaD = weight.to(torch::kDouble).contiguous();
        const auto invD = invstd.contiguous();
        const double* gamma = gammaD.data_ptr<double>();
        const double* inv = invD.data_ptr<double>();
        auto dWeight = torch::empty({s.channels}, torch::kDouble), dBias = torch::empty({s.channels}, torch::kDouble);
        auto a = torch::empty({s.channels}, torch::kFloat), b = torch::empty_like(a), d = torch::empty_like(a);
        double *dW = dWeight.data_ptr<double>(), *dB = dBias.data_ptr<double>();
        float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>(), *pd = d.data_ptr<float>();
        const double n = static_cast<double>(s.rows);
        for (std::size_t j = 0; j < c; ++j) {
            dW[j] = sumGzCentred[j] * inv[j];
            dB[j] = sumGz[j];
            pa[j] = static_cast<float>(gamma[j] * inv[j]);
            pb[j] = static_cast<float>(-gamma[j] * inv[j] * dW[j] * inv[j] / n);
            pd[j] = static_cast<float>(-gamma[j] * inv[j] * sumGz[j] / n);
        }
        torch::Tensor dx;
        if (ctx->needs_input_grad(0)) {
            dx = torch::empty_like(x);
            bnkernels::backwardInput(g.data_ptr<float>(), x.data_ptr<float>(), s, k.affine(), slope, maskData(mask),
                                     {pa, pb, pd}, dx.data_ptr<float>());
        }
        return {dx, dWeight.to(torch::kFloat), dBias.to(torch::kFloat), {}, {}, {}, {}};
    }
};

bool cpuFloat(const torch::Tensor& t) { return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat; }

/// `dims`: 4 for BatchNorm2d (a channels-last map), 2 for BatchNorm1d (a [N, C] batch).
template <typename Bn>
bool fusable(const Bn& bn, const torch::Tensor& x, int dims) {
    const auto& o = bn.options;
    if (!gFused.load(std::memory_order_relaxed) || !bn.is_training() || !o.affine() || !o.track_running_stats() ||
        !o.momentum().has_value() || !bn.num_batches_tracked.defined())
        return false;
    if (!cpuFloat(x) || !cpuFloat(bn.weight) || !cpuFloat(bn.bias) || !cpuFloat(bn.running_mean) ||
        !cpuFloat(bn.running_var) || !bn.running_mean.is_contiguous() || !bn.running_var.is_contiguous())
        return false;
    const bool layout = x.dim() == dims && x.is_contiguous(dims == 4 ? torch::MemoryFormat::ChannelsLast
                                                                      : torch::MemoryFormat::Contiguous);
    // A wrong channel count or one value per channel: BatchNorm's own forward says what is wrong.
    return layout && x.size(1) == o.num_features() && x.numel() > x.size(1);
}

/// BatchNorm's training forward as LibTorch's module makes it (num_batches_tracked, the running statistics with
/// the unbiased variance, in double), then the fused function.
template <typename Bn>
torch::Tensor fusedForward(Bn& bn, const torch::Tensor& x, double slope, double dropout) {
    const bnkernels::Shape s = shapeOf(x);
    const auto c = static_cast<std::size_t>(s.channels);
    auto mean = torch::empty({s.channels}, torch::kDouble), var = torch::empty({s.channels}, torch::kDouble);
    bnkernels::channelStats(x.data_ptr<float>(), s, mean.data_ptr<double>(), var.data_ptr<double>());
    torch::Tensor invstd = torch::empty({s.channels}, torch::kDouble), mask;
    {
        torch::NoGradGuard noGrad;
        bn.num_batches_tracked += 1;
        const double momentum = *bn.options.momentum(), eps = bn.options.eps();
        const double unbiased = static_cast<double>(s.rows) / static_cast<double>(s.rows - 1);
        float* rm = bn.running_mean.template data_ptr<float>();
        float* rv = bn.running_var.template data_ptr<float>();
        const double* m = mean.data_ptr<double>();
        const double* v = var.data_ptr<double>();
        double* inv = invstd.data_ptr<double>();
        for (std::size_t j = 0; j < c; ++j) {
            rm[j] = static_cast<float>(momentum * m[j] + (1 - momentum) * static_cast<double>(rm[j]));
            rv[j] = static_cast<float>(momentum * v[j] * unbiased + (1 - momentum) * static_cast<double>(rv[j]));
            inv[j] = 1 / std::sqrt(v[j] + eps);
        }
        if (dropout > 0) // Dropout2d's mask, drawn as at::feature_dropout draws it
            mask = torch::empty({x.size(0), s.channels, 1, 1}, x.options()).bernoulli_(1 - dropout).div_(1 - dropout);
    }
    gFusedCalls.fetch_add(1, std::memory_order_relaxed);
    return BatchNormLeakyFunction::apply(x, bn.weight, bn.bias, mean, invstd,
                                         mask.defined() ? c10::optional<torch::Tensor>(mask) : c10::nullopt, slope);
}

} // namespace

torch::Tensor batchNormLeaky(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x, double slope,
                             torch::nn::Dropout2dImpl* drop) {
    const bool dropping = drop && drop->is_training() && drop->options.p() > 0;
    if (fusable(bn, x, 4) && (!dropping || (drop->options.p() < 1 && !drop->options.inplace())))
        return fusedForward(bn, x, slope, dropping ? drop->options.p() : 0.0);
    auto y = torch::leaky_relu(bn.forward(x), slope);
    return drop ? drop->forward(y) : y;
}

torch::Tensor batchNormLeaky(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x, double slope) {
    if (fusable(bn, x, 2))
        return fusedForward(bn, x, slope, 0.0);
    return torch::leaky_relu(bn.forward(x), slope);
}

void useFusedBatchNorm(bool on) { gFused.store(on, std::memory_order_relaxed); }

std::int64_t fusedBatchNormCalls() { return gFusedCalls.load(std::memory_order_relaxed); }

std::pair<torch::Tensor, torch::Tensor> batchNormAffine(const torch::Tensor& runningMean,
                                                        const torch::Tensor& runningVar, double eps,
                                                        const torch::Tensor& gamma, const torch::Tensor& beta) {
    torch::NoGradGuard noGrad;
    const auto mean = runningMean.to(torch::kDouble);
    auto scale = torch::rsqrt(runningVar.to(torch::kDouble) + eps);
    auto shift = torch::zeros_like(mean);
    if (gamma.defined()) {
        scale = scale * gamma.to(torch::kDouble);
        shift = beta.to(torch::kDouble);
    }
    return {scale, shift - mean * scale};
}

std::pair<torch::Tensor, torch::Tensor> foldedBatchNorm(const torch::Tensor& weight, const torch::Tensor& bias,
                                                        const torch::Tensor& runningMean,
                                                        const torch::Tensor& runningVar, double eps,
                                                        const torch::Tensor& gamma, const torch::Tensor& beta) {
    torch::NoGradGuard noGrad;
    const auto dtype = weight.scalar_type();
    const auto [scale, offset] = batchNormAffine(runningMean, runningVar, eps, gamma, beta);
    std::vector<std::int64_t> view(static_cast<std::size_t>(std::max<std::int64_t>(weight.dim(), 1)), 1);
    view.front() = -1; // one scale per output channel
    const auto w = weight.to(torch::kDouble) * scale.view(view);
    const auto b = bias.defined() ? bias.to(torch::kDouble) : torch::zeros_like(scale);
    return {w.to(dtype), (b * scale + offset).to(dtype)};
}

} // namespace nic

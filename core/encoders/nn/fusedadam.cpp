#include "core/encoders/nn/fusedadam.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

namespace nic {

namespace {

using torch::optim::AdamOptions;
using torch::optim::AdamParamState;

// The constants of one update, in the float precision Adam's element-wise kernels use for float tensors.
struct Coefficients {
    float beta1, oneMinusBeta1, beta2, oneMinusBeta2, sqrtBiasCorrection2, eps, minusStepSize, weightDecay;
};

Coefficients coefficientsFor(const AdamOptions& o, std::int64_t step) {
    const double beta1 = std::get<0>(o.betas());
    const double beta2 = std::get<1>(o.betas());
    const double biasCorrection1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double biasCorrection2 = 1 - std::pow(beta2, static_cast<double>(step));
    return {static_cast<float>(beta1),
            static_cast<float>(1 - beta1),
            static_cast<float>(beta2),
            static_cast<float>(1 - beta2),
            static_cast<float>(std::sqrt(biasCorrection2)),
            static_cast<float>(o.eps()),
            static_cast<float>(-(o.lr() / biasCorrection1)),
            static_cast<float>(o.weight_decay())};
}

// The same operations as Adam::step, element by element and in the same order, on elements [begin, end).
// Compiled for AVX-512, AVX2 and the baseline, chosen when the program loads (the build has no -march):
// vectorised, square root and division are cheap enough for the loop to run at memory speed.
#if defined(__x86_64__) && defined(__GNUC__)
#define NIC_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NIC_VECTOR_CLONES // other architectures: the compiler's baseline vectors
#endif
NIC_VECTOR_CLONES void
updateRange(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, std::int64_t begin,
            std::int64_t end, const Coefficients c) {
    for (std::int64_t i = begin; i < end; ++i) {
        const float grad = g[i] + c.weightDecay * p[i];
        const float mi = m[i] * c.beta1 + c.oneMinusBeta1 * grad;
        const float vi = v[i] * c.beta2 + c.oneMinusBeta2 * grad * grad;
        const float denom = __builtin_sqrtf(vi) / c.sqrtBiasCorrection2 + c.eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] + c.minusStepSize * mi / denom;
    }
}

void fusedUpdate(float* p, const float* g, float* m, float* v, std::int64_t n, const Coefficients& c) {
    at::parallel_for(0, n, 16384, [&](std::int64_t begin, std::int64_t end) { updateRange(p, g, m, v, begin, end, c); });
}

// Adam::step's own arithmetic, for what the fused loop does not cover.
void referenceUpdate(torch::Tensor& p, torch::Tensor grad, AdamParamState& s, const AdamOptions& o) {
    const double beta1 = std::get<0>(o.betas());
    const double beta2 = std::get<1>(o.betas());
    const double biasCorrection1 = 1 - std::pow(beta1, static_cast<double>(s.step()));
    const double biasCorrection2 = 1 - std::pow(beta2, static_cast<double>(s.step()));
    if (o.weight_decay() != 0)
        grad = grad.add(p, o.weight_decay());
    s.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
    s.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    torch::Tensor denom;
    if (o.amsgrad()) {
        torch::max_out(s.max_exp_avg_sq(), s.exp_avg_sq(), s.max_exp_avg_sq());
        denom = (s.max_exp_avg_sq().sqrt() / std::sqrt(biasCorrection2)).add_(o.eps());
    } else {
        denom = (s.exp_avg_sq().sqrt() / std::sqrt(biasCorrection2)).add_(o.eps());
    }
    p.addcdiv_(s.exp_avg(), denom, -(o.lr() / biasCorrection1));
}

// The fused loop walks the four tensors' memory in order, so they must be float32 on the CPU, dense, and
// laid out alike (channels-last convolution weights are: Adam's state copies the parameter's layout,
// and backward hands over gradients in it).
bool fusable(const torch::Tensor& p, const torch::Tensor& g, const AdamParamState& s, const AdamOptions& o) {
    const auto alike = [&](const torch::Tensor& t) {
        return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_non_overlapping_and_dense() &&
               t.sizes() == p.sizes() && t.strides() == p.strides();
    };
    return !o.amsgrad() && alike(p) && alike(g) && alike(s.exp_avg()) && alike(s.exp_avg_sq());
}

/// Adam's moments in the layout of their parameter: a state loaded from a checkpoint written while the parameter
/// had another layout (the trainers keep convolution weights channels-last, and did not before) would otherwise
/// send every later update of that parameter through Adam's own, slower arithmetic. The values are copied as they
/// are.
void matchLayout(AdamParamState& s, const torch::Tensor& p) {
    if (!p.is_non_overlapping_and_dense())
        return;
    const auto relaid = [&](const torch::Tensor& t) {
        return t.defined() && t.sizes() == p.sizes() && t.strides() != p.strides()
                   ? torch::empty_like(p, t.options()).copy_(t)
                   : t;
    };
    s.exp_avg(relaid(s.exp_avg()));
    s.exp_avg_sq(relaid(s.exp_avg_sq()));
    if (s.max_exp_avg_sq().defined())
        s.max_exp_avg_sq(relaid(s.max_exp_avg_sq()));
}

} // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
    RECORD_FUNCTION("nic::FusedAdam::step", std::vector<c10::IValue>()); // a profiler's entry (bench_encoders --layers)
    torch::NoGradGuard noGrad;
    torch::Tensor loss;
    if (closure != nullptr) {
        at::AutoGradMode enableGrad(true);
        loss = closure();
    }
    for (auto& group : param_groups_) {
        const auto& o = static_cast<const AdamOptions&>(group.options());
        for (auto& p : group.params()) {
            if (!p.grad().defined())
                continue;
            const torch::Tensor& grad = p.grad();
            TORCH_CHECK(!grad.is_sparse(), "Adam does not support sparse gradients");
            const auto key = optimizerStateKey(p);
            auto found = state_.find(key);
            if (found == state_.end()) { // as Adam creates it, so that save/load see the same state
                auto s = std::make_unique<AdamParamState>();
                s->step(0);
                s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                if (o.amsgrad())
                    s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                found = state_.emplace(key, std::move(s)).first;
            }
            auto& s = static_cast<AdamParamState&>(*found->second);
            matchLayout(s, p);
            s.step(s.step() + 1);
            if (fusable(p, grad, s, o))
                fusedUpdate(p.data_ptr<float>(), grad.data_ptr<float>(), s.exp_avg().data_ptr<float>(),
                            s.exp_avg_sq().data_ptr<float>(), p.numel(), coefficientsFor(o, s.step()));
            else {
                referenceUpdate(p, grad, s, o);
                ++referenceUpdates_;
            }
        }
    }
    return loss;
}

void clearGradients(torch::optim::Optimizer& optimizer) {
    for (auto& group : optimizer.param_groups())
        for (auto& p : group.params())
            p.mutable_grad() = torch::Tensor();
}

namespace {

template <typename Key> // a template, so that only the branch of this LibTorch's key type is compiled
Key stateKeyOf(const torch::Tensor& p) {
    if constexpr (std::is_same_v<Key, std::string>) {
        std::ostringstream text; // as c10::guts::to_string wrote it
        text << p.unsafeGetTensorImpl();
        return text.str();
    } else {
        return p.unsafeGetTensorImpl();
    }
}

} // namespace

OptimizerStateKey optimizerStateKey(const torch::Tensor& p) { return stateKeyOf<OptimizerStateKey>(p); }

} // namespace nic

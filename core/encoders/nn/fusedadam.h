#pragma once
// Adam as torch::optim::Adam computes it, with each parameter's update made in one pass over its memory.
//
// LibTorch 1.13's Adam::step makes eight element-wise passes per parameter tensor (two for each moment,
// then sqrt, divide, add and addcdiv through a temporary the size of the parameter): about 80 bytes of
// memory traffic per float parameter per step, and a fresh temporary each time. FusedAdam reads the
// parameter, its gradient and both moments once and writes three of them back (28 bytes), spread over
// LibTorch's threads. Options, per-parameter state (AdamParamState), save/load and checkpoints are
// Adam's own; the values equal Adam's to float rounding (tests/nn/test_fusedadam.cpp). Tensors the
// fused loop does not cover (not float32 on the CPU, not dense, gradient or state laid out unlike the
// parameter, amsgrad) take Adam's own arithmetic.
//
// clearGradients() is the other half: it drops the gradients instead of zeroing them (set_to_none), so
// the next backward hands its gradient buffers over instead of adding them into zeros.
#include <torch/optim/adam.h>

#include <type_traits>
#include <utility>

namespace nic {

class FusedAdam final : public torch::optim::Adam {
public:
    using torch::optim::Adam::Adam;
    torch::Tensor step(LossClosure closure = nullptr) override;

    /// Parameter updates so far made with Adam's own arithmetic instead of the fused loop (tests, benchmarks).
    std::int64_t referenceUpdates() const { return referenceUpdates_; }

private:
    std::int64_t referenceUpdates_ = 0;
};

/// Sets the gradient of every parameter of `optimizer` to undefined (PyTorch's zero_grad(set_to_none)).
/// A parameter that then takes no part in a backward pass keeps no gradient and Adam skips it.
void clearGradients(torch::optim::Optimizer& optimizer);

/// The key of parameter p's entry in a LibTorch optimiser's state (Optimizer::state()), as Adam makes it: the
/// address of p's TensorImpl, written out as text before LibTorch 2.x and the pointer itself from then on.
using OptimizerStateKey = std::remove_cvref_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
OptimizerStateKey optimizerStateKey(const torch::Tensor& p);

} // namespace nic

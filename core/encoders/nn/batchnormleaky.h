#pragma once
// BatchNorm → LeakyReLU (→ Dropout2d), the tail of every trained block here (the encoders' ConvBlock, UpBlock and
// DenseBlock, the slide CNN's SeparableBlock). Internal to core_nn and its tests.
//
// In training on the CPU, LibTorch runs these as three to four operators with two to three passes over the map
// each way and keeps their intermediate maps for the backward pass. Fused, the forward pass reads the map twice
// (the batch's statistics, then the output) and the backward pass reads the gradient and the map twice (the
// two sums BatchNorm's gradient needs, then the input's gradient), recomputing the activation's sign; only the
// block's input is kept. Values equal the separate operators' to float rounding; running statistics and
// num_batches_tracked are updated as BatchNorm's forward does, and Dropout2d's mask takes the same draws from
// the same generator, so a run keeps its random stream (tests/nn/test_batchnormleaky.cpp).
//
// The fused path takes float32 CPU maps laid out channels-last ([N, C, H, W]) or [N, C] batches, an affine
// BatchNorm that tracks running statistics with a fixed momentum, in training mode, more than one value per
// channel. Everything else (evaluation, a GPU, channel-first maps) runs the separate operators.
#include "core/encoders/nn/encoders.h"

#include <torch/torch.h>

#include <utility>

namespace nic {

/// leaky_relu(bn(x), slope), then, for a 4-D x and `drop` in training, drop(…).
torch::Tensor batchNormLeaky(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x, double slope,
                             torch::nn::Dropout2dImpl* drop = nullptr);
torch::Tensor batchNormLeaky(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x, double slope);

/// The weight and bias of a layer followed by an evaluating BatchNorm, with the BatchNorm folded in: W·s per output
/// channel and (b − μ)·s + β with s = γ / √(σ² + ε) (γ = 1, β = 0 without affine parameters), computed in double and
/// returned in the weight's type, without autograd. `bias` may be undefined (a layer without one).
std::pair<torch::Tensor, torch::Tensor> foldedBatchNorm(const torch::Tensor& weight, const torch::Tensor& bias,
                                                        const torch::Tensor& runningMean, const torch::Tensor& runningVar,
                                                        double eps, const torch::Tensor& gamma, const torch::Tensor& beta);
/// An evaluating BatchNorm as the per-channel affine map it is, x·s + o with s = γ / √(σ² + ε) and o = β − μ·s (γ = 1,
/// β = 0 without affine parameters), in double, without autograd: what foldedBatchNorm folds into the layer before it,
/// and what a fold into the layer after it needs (a Keras chain's BatchNorm after its activation).
std::pair<torch::Tensor, torch::Tensor> batchNormAffine(const torch::Tensor& runningMean,
                                                        const torch::Tensor& runningVar, double eps,
                                                        const torch::Tensor& gamma, const torch::Tensor& beta);
template <typename Bn>
std::pair<torch::Tensor, torch::Tensor> batchNormAffine(const Bn& bn) {
    const bool affine = bn.options.affine();
    return batchNormAffine(bn.running_mean, bn.running_var, bn.options.eps(), affine ? bn.weight : torch::Tensor(),
                           affine ? bn.bias : torch::Tensor());
}
template <typename Bn>
std::pair<torch::Tensor, torch::Tensor> foldedBatchNorm(const torch::Tensor& weight, const torch::Tensor& bias,
                                                        const Bn& bn) {
    const bool affine = bn.options.affine();
    return foldedBatchNorm(weight, bias, bn.running_mean, bn.running_var, bn.options.eps(),
                           affine ? bn.weight : torch::Tensor(), affine ? bn.bias : torch::Tensor());
}

// useFusedBatchNorm() and fusedBatchNormCalls(), the switch and counter for tests and benchmarks, are in encoders.h.

} // namespace nic

#pragma once
// Arithmetic cost of the encoders, counted from their layers (no LibTorch in this header): the number
// of multiply-adds of every convolution and dense layer at a given patch size, the figure the
// benchmarks divide the machine's measured sgemm rate by to get a throughput limit. Element-wise
// layers (BatchNorm, LeakyReLU, pooling, tanh) are not counted: they are memory-bound and cost
// well under 1 % of the multiply-adds.
#include "core/encoders/nn/encoders.h"
#include "core/encoders/modelmeta.h"

#include <cstdint>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace nic {

/// One convolution or dense layer: its module path and multiply-adds for one patch.
struct LayerCost {
    std::string name;
    std::int64_t macs = 0;
};

/// Per-layer multiply-adds of the inference module of `meta` (what compression runs) for one P×P
/// patch, in forward order. Throws InvalidArgument like buildEncoderModule for a bad shape.
std::vector<LayerCost> inferenceLayerCosts(const EncoderMeta& meta);

/// Per-layer multiply-adds of any module built from convolutions, dense layers and containers that run
/// their children in registration order (the encoders' blocks, the slide CNN's separable blocks) for
/// one side × side input, in forward order. Grouped (depthwise) convolutions count in/groups inputs.
std::vector<LayerCost> moduleLayerCosts(torch::nn::Module& module, std::int64_t side);

/// 2 × the sum of inferenceLayerCosts(meta): floating-point operations per patch in compression.
double inferenceFlopsPerPatch(const EncoderMeta& meta);

/// Floating-point operations per training patch of `kind` (P, C, `classes` for supervised-tissue):
/// 3 × (forward + backward ≈ 2 × forward) the multiply-adds × 2 of every network a training step runs,
/// per patch: VAE E + log σ² head + D; contrastive E + half the pair head (two patches per pair);
/// BiGAN E + G + 4 × D (D sees real and fake pairs in both the D and the G/E update); supervised E + head.
double trainingFlopsPerPatch(EncoderKind kind, int patchSize, int codeSize, int classes);

} // namespace nic

#pragma once
// Training's wide stride-2 convolutions as matrix products over im2col copies, on oneDNN's sgemm: the weight gradients
// of every such layer, and the forward pass and input gradient of those over small maps. Internal to core_nn; used by
// applyConv (modules.cpp). No LibTorch in this header.
//
// Why: oneDNN 2.6 (under LibTorch 1.13) computes a channels-last convolution's weight gradient with its
// jit:avx512_core kernel, well below the machine's limit. With each thread summing its own share of the output
// pixels through an im2col chunk that stays in its cache, one run of bench_encoders --layers (batch 64, two threads)
// put this path at 1.11× LibTorch's speed for 32 → 64, 1.16× for 64 → 128, 1.28× for 128 → 256 and 1.59× for
// 256 → 512. Every stride-2 layer with at least 32 input channels takes it; the first layer (3 channels) does not
// (docs/timings.md, issue 16).
//
// For the 256 → 512 layer (8² → 4² a patch) oneDNN's forward and input-gradient kernels ran at 0.56 and 0.67 of the
// limit in a training step, where the rest of the layers ran at 0.76-0.83: an image gives each kernel only 16 output
// pixels. On sgemm, each thread multiplies its own rows through a 1 MiB im2col chunk (forward) or multiplies and adds
// back its own images (col2im, input gradient). Layers with at least 256 input channels and at most 4² output pixels
// an image take it (smallMap()); over larger maps oneDNN's kernels measured faster (bench_encoders --layers).
#include <cstdint>

namespace nic::convgrad {

/// Whether this build has oneDNN's sgemm.
bool available();

/// The output side of a 3 × 3, stride-2, padding-1 convolution over a side² input: (side − 1) / 2 + 1.
constexpr std::int64_t outputSide(std::int64_t side) {
    return (side - 1) / 2 + 1;
}

/// Whether weightGradient computes this convolution's weight gradient: 3 × 3, stride 2, padding 1, dilation 1,
/// one group, at least 32 input channels (and available()).
bool fits(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding, std::int64_t dilation,
          std::int64_t groups);

/// ∂w [out, 3, 3, in] (a channels-last weight's memory) of a 3 × 3, stride-2, padding-1 convolution from its input x,
/// n channels-last images [side, side, in], and the gradient of its output dy, n channels-last [o, o, out] with
/// o = outputSide(side). Runs on `threads` OpenMP threads of the calling thread, each summing its share of the
/// output pixels through an im2col buffer of its own (1 MiB, kept for the next call); the calling thread keeps the
/// other threads' partial sums of ∂w for the next call too. The same bits for the same input and team size (the
/// threads OpenMP grants).
void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads);

/// Whether forward() and dataGradient() should run a layer that fits(): at least 256 input channels and at most
/// 4 × 4 output pixels an image (a choice by shape, so that a seed gives the same run on this build and CPU).
bool smallMap(std::int64_t in, std::int64_t side);

/// y = conv(x) + bias for n channels-last images x [side, side, in] into n channels-last outputs y [o, o, out] (o as
/// above), w: the weights [out, 3, 3, in] (a channels-last weight's memory). The output rows are shared among
/// `threads` OpenMP threads of the calling thread (at least 64 a thread), each through an im2col buffer of its own.
/// The same bits for the same input and team size.
void forward(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* w, const float* bias,
             std::int64_t out, float* y, int threads);

/// ∂x, n channels-last images [side, side, in], of the same convolution from the gradient of its output dy, n
/// channels-last [o, o, out], and w [out, 3, 3, in]: dy · w by sgemm into an im2col-shaped buffer, whose taps are then
/// added back to the pixels they were read from. Whole images a thread; the same bits for the same input and team
/// size.
void dataGradient(const float* dy, std::int64_t n, std::int64_t in, std::int64_t side, const float* w, std::int64_t out,
                  float* dx, int threads);

/// weightGradient, forward and dataGradient calls so far, process-wide (tests).
std::uint64_t calls();
std::uint64_t forwardCalls();
std::uint64_t dataCalls();

} // namespace nic::convgrad

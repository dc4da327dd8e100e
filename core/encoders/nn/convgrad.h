#pragma once
// Weight gradients of training's wide stride-2 convolutions as one matrix product over an im2col copy of the input,
// on oneDNN's sgemm. Internal to core_nn; used by applyConv's backward (modules.cpp). No LibTorch in this header.
//
// Why: oneDNN 2.6 (under LibTorch 1.13) computes a channels-last convolution's weight gradient with its
// jit:avx512_core kernel, well below the machine's limit. With each thread summing its own share of the output
// pixels through an im2col chunk that stays in its cache, one run of bench_encoders --layers (batch 64, two threads)
// put this path at 1.11× LibTorch's speed for 32 → 64, 1.16× for 64 → 128, 1.28× for 128 → 256 and 1.59× for
// 256 → 512. Every stride-2 layer with at least 32 input channels takes it; the first layer (3 channels) does not
// (docs/timings.md, issue 16).
#include <cstdint>

namespace nic::convgrad {

/// Whether this build has oneDNN's sgemm.
bool available();

/// Whether weightGradient computes this convolution's weight gradient: 3 × 3, stride 2, padding 1, dilation 1,
/// one group, at least 32 input channels (and available()).
bool fits(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding, std::int64_t dilation,
          std::int64_t groups);

/// ∂w [out, 3, 3, in] (a channels-last weight's memory) of a 3 × 3, stride-2, padding-1 convolution from its input x,
/// n channels-last images [side, side, in], and the gradient of its output dy, n channels-last [o, o, out] with
/// o = (side − 1) / 2 + 1. Runs on `threads` OpenMP threads of the calling thread, each summing its share of the
/// output pixels through an im2col buffer of its own (1 MiB, kept for the next call); the calling thread keeps the
/// other threads' partial sums of ∂w for the next call too. The same bits for the same input and thread count.
void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads);

/// weightGradient calls so far, process-wide (tests).
std::uint64_t calls();

} // namespace nic::convgrad

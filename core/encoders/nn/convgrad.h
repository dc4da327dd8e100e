#pragma once
// Weight gradients of training's wide stride-2 convolutions as one matrix product over an im2col copy of the input,
// on oneDNN's sgemm. Internal to core_nn; used by applyConv's backward (modules.cpp). No LibTorch in this header.
//
// Why: oneDNN 2.6 (under LibTorch 1.13) computes a channels-last convolution's weight gradient with its
// jit:avx512_core kernel, well below the machine's limit on the encoders' deeper layers. In a scratch comparison
// (batch 64, two threads) the im2col copy and sgemm took 6.3–6.6 ms for the 256 → 512 layer (oneDNN: 9.2) and
// 6.6 ms for 128 → 256 (8.0), but 7.7 against 8.1 for 64 → 128 and 9.9 against 10.3 for 32 → 64, where the copy is
// large: only layers with at least 128 input channels take this path (docs/timings.md, issue 16).
#include <cstdint>

namespace nic::convgrad {

/// Whether this build has oneDNN's sgemm.
bool available();

/// Whether weightGradient computes this convolution's weight gradient: 3 × 3, stride 2, padding 1, dilation 1,
/// one group, at least 128 input channels (and available()).
bool fits(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding, std::int64_t dilation,
          std::int64_t groups);

/// ∂w [out, 3, 3, in] (a channels-last weight's memory) of a 3 × 3, stride-2, padding-1 convolution from its input x,
/// n channels-last images [side, side, in], and the gradient of its output dy, n channels-last [o, o, out] with
/// o = (side − 1) / 2 + 1. Runs on `threads` OpenMP threads of the calling thread. The im2col copy goes through a
/// buffer of at most 16 MiB per calling thread, kept for the next call.
void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads);

/// weightGradient calls so far, process-wide (tests).
std::uint64_t calls();

} // namespace nic::convgrad

#pragma once
// The first convolution of the encoders computed straight into channels-last output: 3 × 3, stride 2, padding 1 or
// none, over the patch's few channels (3 → 32 at 128² for the VAE-type encoder, 3 → 128 at 64² for BiGAN's and, with
// no padding, the authors' published Keras encoders'), bias and LeakyReLU included. Internal to core_nn; used by
// OneDnnChain (compression, planar input) and by applyConv's training forward (channels-last input).
//
// Why: oneDNN 2.6 has no fast kernel from planar input with three channels to channels-last output (its reference
// kernel runs ~1000× slower), so the chain ran its direct kernel into oneDNN's blocked layout and then reordered the
// 33 MB activation of a batch of 64 to channels-last for the next layer, 2–3 ms per batch on one thread (4 % of the
// VAE-type encoder's forward pass). This kernel writes channels-last itself in about the time oneDNN's blocked
// kernel takes, and the reorder goes (docs/timings.md, issue 16).
//
// AVX-512 only (x86-64, GCC or Clang): available() is false elsewhere, and the chain keeps oneDNN's kernels.
#include <cstdint>
#include <vector>

namespace nic::directconv {

/// Whether this build and CPU run the kernel (x86-64 with AVX-512F), and it is switched on (use()).
bool available();

/// Benchmarks and tests: false makes available() false from now on, so that chains built afterwards and training's
/// first layer take oneDNN's kernels instead. Process-wide; the default is true unless the environment has
/// NIC_DIRECT_FIRST_CONV=0. Returns the setting before.
bool use(bool on);

/// run() calls so far, process-wide (tests).
std::uint64_t calls();

/// Whether the kernel computes a convolution with weights [out, in, k, k], this stride and padding over a side² input:
/// k = 3, stride 2, out a positive multiple of 16, 1 ≤ in ≤ 4, and padding 1 with an even side ≥ 2 or padding 0 with
/// a side ≥ 3.
bool fits(const std::vector<std::int64_t>& weightShape, int stride, int padding, int side);

/// The output side of such a convolution: side / 2 with padding 1, (side − 1) / 2 with none.
int outSide(int side, int padding);

/// The weights [out, in, 3, 3] (LibTorch's order) rearranged as the kernel reads them: [in, 3, 3, out].
std::vector<float> tapMajor(const std::vector<float>& weight, int out, int in);

/// Computes n images: x holds n planar [in, side, side] inputs (channels-last [side, side, in] with
/// channelsLastInput), y receives n channels-last [o, o, out] outputs, o = outSide(side, padding). `taps` from
/// tapMajor, bias [out];
/// slope ≥ 0 applies LeakyReLU with that slope, < 0 nothing. Images are shared among `threads` OpenMP threads (≤ 1:
/// the calling thread alone). The shape must fit (fits()) and available() be true.
void run(const float* x, int n, int in, int side, int padding, const float* taps, const float* bias, int out,
         float slope, float* y, int threads, bool channelsLastInput = false);

// The wide kernel: a 3 × 3, stride-2, padding-1 convolution from channels-last input to channels-last output over many
// input channels, bias and LeakyReLU included, for the chain's layers where oneDNN's brgconv kernel is slow: the
// VAE-type encoder's 32 → 64 layer ran at 0.70 of a thread's share of the limit on brgconv, 0.94 on this kernel
// (docs/timings.md, issue 16). Output pixels of the whole batch, six at a time, × 64 channels in 24 AVX-512
// accumulators; a tap outside the image reads a row of zeros.

/// Whether this build and CPU run the wide kernel (AVX-512F) and it is switched on (useWide()).
bool wideAvailable();

/// Benchmarks and tests: false makes wideAvailable() false from now on (chains built afterwards take oneDNN's
/// kernels). Process-wide; the default is true unless the environment has NIC_DIRECT_WIDE_CONV=0. Returns the
/// setting before.
bool useWide(bool on);

/// runWide() calls so far, process-wide (tests).
std::uint64_t wideCalls();

/// Whether the wide kernel computes a convolution with weights [out, in, k, k], this stride and padding over a side²
/// input: k = 3, stride 2, padding 1, out a positive multiple of 64, 1 ≤ in ≤ 1024 and an even side ≥ 2.
bool fitsWide(const std::vector<std::int64_t>& weightShape, int stride, int padding, int side);

/// The weights [out, in, 3, 3] rearranged as the wide kernel reads them: [3, 3, in, out].
std::vector<float> wideTaps(const std::vector<float>& weight, int out, int in);

/// Computes n images: x holds n channels-last [side, side, in] inputs, y receives n channels-last
/// [side/2, side/2, out] outputs. `taps` from wideTaps, bias [out]; slope ≥ 0 applies LeakyReLU with that slope, < 0
/// nothing. The batch's output pixels are shared among `threads` OpenMP threads (≤ 1: the calling thread alone). The
/// shape must fit (fitsWide()) and wideAvailable() be true.
void runWide(const float* x, int n, int in, int side, const float* taps, const float* bias, int out, float slope,
             float* y, int threads);

} // namespace nic::directconv

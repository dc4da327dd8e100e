#pragma once
// Patches' bytes to the encoders' float input, read in any of the 8 dihedral orders (core/imaging/dihedral.h), so that
// compression at 8 orientations converts each orientation straight from the one copy of the patch instead of
// transforming its bytes first (internal to core_nn; no LibTorch here).
#include <cstdint>

namespace nic::patchinput {

/// Converts `count` patches (uint8 NHWC, count × P × P × 3) into the planar float input [count, 3, S, S] of the
/// encoders, each patch as it is after dihedral transform k:
/// - plain (pooled false): S = P and each value is v / 127.5 − 1 (in float) for its byte v;
/// - pooled (P even): S = P / 2 and each value is the mean of a 2 × 2 block, s / 510 − 1 for the block's byte sum s
///   (the encoders whose first step is a 2 × 2 average pooling).
/// Bit for bit what converting dihedralTransformPatch(patch, k) gives. Reads nothing outside the patches. On a CPU with
/// AVX-512 and S a multiple of 16 it gathers 16 pixels at a time in transform k's order (over the 8 orientations 2.5×
/// faster than transforming the bytes and converting them, 3.7× pooled: docs/timings.md); elsewhere it transforms each
/// patch's bytes into a buffer and converts them one value at a time through a table. Throws InvalidArgument for k
/// outside 0..7 or an odd P pooled.
void toPlanar(const std::uint8_t* nhwc, int count, int patchSize, int k, bool pooled, float* out);

/// The same values in channels-last order ([count, S, S, 3]), one value at a time (the LibTorch modules' input).
void toChannelsLast(const std::uint8_t* nhwc, int count, int patchSize, int k, bool pooled, float* out);

/// Benchmarks and tests: false makes toPlanar take the one-value-at-a-time path on every CPU. Process-wide; the
/// default is true unless the environment has NIC_VECTOR_PATCH_INPUT=0. Returns the setting before.
bool useVectorKernel(bool on);
/// Whether toPlanar's vector kernel runs here (this CPU has AVX-512 and it is switched on).
bool vectorKernelRuns();

} // namespace nic::patchinput

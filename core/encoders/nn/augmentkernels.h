#pragma once
// augment.cpp's CPU kernels shared with augmentcolour.cpp (internal to core_nn; no LibTorch): the noise stream's
// hash and quantile table, the per-image colour passes of heavy(), and what the AVX-512 loops of both files need.
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The AVX-512 loops and their scalar twins must round alike: no multiply-add may be fused in either. Clang
// contracts a·b + c within one expression by default (where the target has FMA); for GCC the functions say so
// one by one (NIC_NO_FMA_CONTRACTION below, NIC_SCALAR_NO_FMA in augmentcolour.cpp).
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace nic::augment {

/// splitmix64's constants: the counter's step γ, then the mixer's two (shift, multiply) rounds and its final shift.
/// hashed() and standardNormalWithTensorOps both use them, so the two streams cannot drift apart.
constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
constexpr int kShift1 = 30, kShift2 = 27, kShift3 = 31;
constexpr std::uint64_t kMultiply1 = 0xBF58476D1CE4E5B9ULL, kMultiply2 = 0x94D049BB133111EBULL;

/// splitmix64's mixer over key + (i + 1)·γ: the i-th 64 random bits of the stream that `key` names.
inline std::uint64_t hashed(std::uint64_t key, std::uint64_t i) {
    std::uint64_t z = key + (i + 1) * kGamma;
    z = (z ^ (z >> kShift1)) * kMultiply1;
    z = (z ^ (z >> kShift2)) * kMultiply2;
    return z ^ (z >> kShift3);
}

/// The standard normal distribution's quantiles at the centres of 2^16 equal slices of probability,
/// Φ⁻¹((i + ½) / 2^16) for i = 0 … 65535 (±4.32 at the ends), computed once in double by bisection on
/// ½·erfc(−z/√2) and stored as float; symmetric, so its mean is exactly 0.
const std::vector<float>& normalQuantiles();

/// One image's colour-step parameters: HED's matrix (m[3·k + c]: input channel k, output c) and offset,
/// the brightness shift, contrast's factor, the noise's σ.
struct ColourParams {
    float m[9], b[3], brightness, contrast, sigma;
};

/// heavy's colour steps for one image (3 planar channels of `plane` values at x, written to y): HED jitter and
/// brightness in one pass, then, after the image's mean, contrast and the noise, whose values are elements
/// [offset, offset + 3·plane) of the stream `key` (standardNormal's). `vector`: the AVX-512 loops (the CPU must have
/// them), finished by their scalar twins; else the scalar twins alone, with the same bits. `noise`: scratch.
void colourImage(const ColourParams& q, const float* x, float* y, std::int64_t plane, std::uint64_t key,
                 std::int64_t offset, bool vector, std::vector<float>& noise);

#if defined(__x86_64__)
// Every lane, for the masked forms of the intrinsics: their unmasked forms pass GCC 12 an undefined vector,
// which -Wmaybe-uninitialized reports (GCC bug 105593).
constexpr __mmask16 kAll = 0xFFFF;

// The vector loop must round as the scalar one does: GCC would otherwise fuse its multiplies and adds into FMAs
// (target("avx512f") allows them). Clang fuses only within a source expression, which intrinsics are not.
#if defined(__clang__)
#define NIC_NO_FMA_CONTRACTION
#else
#define NIC_NO_FMA_CONTRACTION , optimize("fp-contract=off")
#endif

#endif

} // namespace nic::augment

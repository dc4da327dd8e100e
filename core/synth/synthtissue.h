#pragma once
// Procedural H&E texture for the synthetic slide generator (core/synth/synth.h): eosin stroma with wavy
// fibres, hematoxylin nuclei on jittered grids, and a "tumour" texture (crowded, larger, pleomorphic
// nuclei on a paler background) whose mean colour is calibrated to match normal tissue. Everything is a
// pure function of (seed, level-0 pixel coordinates): no global RNG state, so tiles render independently.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace nic::synth {

/// What a pixel shows; decided by the slide layout (core/synth/synth.cpp), coloured by TissueTexture.
enum PixelClass : std::uint8_t { kGlass = 0, kNormal = 1, kTumour = 2 };

/// 32-bit integer finaliser (good avalanche, cheap).
inline std::uint32_t mix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}
/// Hash of a lattice point under a seed.
inline std::uint32_t hash2(std::int64_t x, std::int64_t y, std::uint32_t seed) {
    return mix32(static_cast<std::uint32_t>(x) + mix32(static_cast<std::uint32_t>(y) ^ seed));
}
/// Uniform in [0, 1) from a hash.
inline float unitFloat(std::uint32_t h) { return static_cast<float>(h >> 8) * (1.0f / 16777216.0f); }

inline float smoothstep(float a, float b, float x) {
    float t = (x - a) / (b - a);
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return t * t * (3.0f - 2.0f * t);
}

/// Value noise in [0, 1] with unit lattice spacing (smoothstep-interpolated hashed lattice values).
template <typename Real> inline Real valueNoise(Real x, Real y, std::uint32_t seed) {
    const Real fx0 = std::floor(x), fy0 = std::floor(y);
    const auto ix = static_cast<std::int64_t>(fx0), iy = static_cast<std::int64_t>(fy0);
    Real fx = x - fx0, fy = y - fy0;
    fx = fx * fx * (Real(3) - Real(2) * fx);
    fy = fy * fy * (Real(3) - Real(2) * fy);
    const Real a = unitFloat(hash2(ix, iy, seed)), b = unitFloat(hash2(ix + 1, iy, seed));
    const Real c = unitFloat(hash2(ix, iy + 1, seed)), d = unitFloat(hash2(ix + 1, iy + 1, seed));
    const Real top = a + (b - a) * fx, bottom = c + (d - c) * fx;
    return top + (bottom - top) * fy;
}

/// Colours tissue pixels like an H&E stain (Beer–Lambert mixing of hematoxylin and eosin optical
/// densities). Thread-safe; immutable after construction.
class TissueTexture {
public:
    /// `mpp`: level-0 pixel size in µm (texture scales are physical); `seed`: texture seed. The first
    /// construction in a process runs a calibration (~0.2 s; physical, so it serves every mpp and seed) that
    /// scales the tumour background so that tumour and normal tissue have the same mean RGB.
    /// Throws InvalidArgument for mpp outside [0.05, 10].
    TissueTexture(double mpp, std::uint32_t seed);

    /// Renders level-0 pixels [x0, x0 + w) × [y0, y0 + h). `cls` and `density` hold w*h values, row-major:
    /// the PixelClass and, for tissue, the stain amount in [0, 1] (thin tissue near edges is paler).
    /// Writes RGB to `out` (row stride `outStride` bytes). A pixel's value does not depend on the
    /// region it is rendered with.
    void render(std::int64_t x0, std::int64_t y0, int w, int h, const std::uint8_t* cls, const float* density,
                std::uint8_t* out, std::size_t outStride) const;

    /// Per-channel optical-density scale applied to the tumour background (from the calibration).
    const std::array<float, 3>& tumourScale() const { return tumourScale_; }

    /// Mean RGB of large normal and tumour areas as measured by the calibration (before JPEG).
    const std::array<double, 3>& calibratedNormalMean() const { return normalMean_; }
    const std::array<double, 3>& calibratedTumourMean() const { return tumourMean_; }

private:
    struct Uncalibrated {};
    TissueTexture(double mpp, std::uint32_t seed, Uncalibrated) : mpp_(mpp), seed_(seed) {}
    struct Buffers;
    void shade(std::int64_t x0, std::int64_t y0, int w, int h, const std::uint8_t* cls, const float* density,
               Buffers& buf) const;
    void calibrate();

    double mpp_;
    std::uint32_t seed_;
    std::array<float, 3> tumourScale_{1.0f, 1.0f, 1.0f};
    std::array<double, 3> normalMean_{};
    std::array<double, 3> tumourMean_{};
};

} // namespace nic::synth

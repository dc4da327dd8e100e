// augment.cpp's CPU colour passes and the noise stream's table (augmentkernels.h).
//
// heavy's colour steps on the CPU, per image in two passes instead of ~13 over the batch: (1) HED jitter and
// brightness, (2) after the image's mean, contrast and the noise. The same draws in the same order and the same
// arithmetic as augment.cpp's tensor operations (what a GPU runs) up to float rounding; log and exp are Cephes'
// single-precision polynomials (within a few ulp of libm's). Each pass is an AVX-512 loop with a scalar twin that
// does the same operations in the same order (so gives the same bits): the twin finishes a plane or an image that
// is not a multiple of the vector's width, and runs alone only when a test asks (useVectorLoops(false)); CPUs
// without AVX-512 take the tensor operations (colourSteps). So a seed gives the same batches on every AVX-512 CPU,
// and within 1e-4 of them elsewhere.
#include "core/encoders/nn/augmentkernels.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace nic::augment {

// Bisection on ½·erfc(−z/√2) in double, each half once: the table is symmetric.
const std::vector<float>& normalQuantiles() {
    static const std::vector<float> table = [] {
        constexpr int kSize = 1 << 16;
        std::vector<float> t(kSize);
        for (int i = 0; i < kSize / 2; ++i) {
            const double p = (static_cast<double>(i) + 0.5) / kSize; // < ½: z < 0
            double lo = -10.0, hi = 0.0;
            for (int step = 0; step < 60; ++step) {
                const double mid = 0.5 * (lo + hi);
                (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
            }
            const auto z = static_cast<float>(0.5 * (lo + hi));
            t[static_cast<std::size_t>(i)] = z;
            t[static_cast<std::size_t>(kSize - 1 - i)] = -z;
        }
        return t;
    }();
    return table;
}

namespace {

// Cephes' logf and expf: log(1 + f) = f − z/2 + f·z·P(f) (z = f², f ∈ [√½ − 1, √2 − 1]) plus e·ln 2 in two
// parts; exp(t) = 2ⁿ·(1 + r + r²·Q(r)) with n = ⌊t·log₂e + ½⌋ and r = t − n·ln 2 in two parts.
constexpr float kSqrt2 = 1.41421356F;
constexpr float kLogP[9] = {7.0376836292E-2F,  -1.1514610310E-1F, 1.1676998740E-1F,  -1.2420140846E-1F, 1.4249322787E-1F,
                            -1.6668057665E-1F, 2.0000714765E-1F,  -2.4999993993E-1F, 3.3333331174E-1F};
constexpr float kExpQ[6] = {1.9875691500E-4F, 1.3981999507E-3F, 8.3334519073E-3F,
                            4.1665795894E-2F, 1.6666665459E-1F, 5.0000001201E-1F};
constexpr float kLn2Hi = 0.693359375F, kLn2Lo = -2.12194440E-4F, kLog2e = 1.44269504088896341F;
// Inputs are clamped to [1/255, 1] (as hedJitter clamps od's argument; heavy's warp output is in [0, 1]) and
// exponents to [−87, 0] (exp ≤ 1 is what survives the clamp to [0, 1]; e^−87 ≈ 1.6e-38 is still normal).
constexpr float kMinUnit = 1.0F / 255.0F, kMinExponent = -87.0F;


// The scalar twin's min and max are the AVX-512 instructions' (the second operand when unordered or equal), so that
// the two loops agree bit for bit, signed zeros included.
inline float maxLikeAvx(float a, float b) { return a > b ? a : b; }
inline float minLikeAvx(float a, float b) { return a < b ? a : b; }

#if defined(__clang__) || !defined(__GNUC__) // clang: the file's pragma
#define NIC_SCALAR_NO_FMA
#else
#define NIC_SCALAR_NO_FMA __attribute__((optimize("fp-contract=off")))
#endif

NIC_SCALAR_NO_FMA inline float logUnit(float x) {
    const auto bits = std::bit_cast<std::uint32_t>(x); // positive and normal
    auto e = static_cast<std::int32_t>(bits >> 23) - 127;
    float m = std::bit_cast<float>((bits & 0x7FFFFFU) | 0x3F800000U); // [1, 2)
    if (m > kSqrt2) {
        m = m * 0.5F;
        e = e + 1;
    }
    const float f = m - 1.0F, z = f * f, ef = static_cast<float>(e);
    float p = kLogP[0];
    for (int i = 1; i < 9; ++i)
        p = p * f + kLogP[i];
    float y = p * f * z;
    y = y + kLn2Lo * ef;
    y = y - 0.5F * z;
    return (f + y) + kLn2Hi * ef;
}

NIC_SCALAR_NO_FMA inline float expNonPositive(float t) { // t ∈ [−87, 0]
    const float n = std::floor(t * kLog2e + 0.5F);
    float r = t - n * kLn2Hi;
    r = r - n * kLn2Lo;
    const float z = r * r;
    float q = kExpQ[0];
    for (int i = 1; i < 6; ++i)
        q = q * r + kExpQ[i];
    q = q * z + r + 1.0F;
    return q * std::bit_cast<float>(static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23);
}

/// Pass 1 for pixels [first, count) of one image (planar channels `plane` apart): HED jitter, clamp, brightness,
/// clamp, from x into y.
NIC_SCALAR_NO_FMA void hedAndBrightnessScalar(const ColourParams& q, const float* x, float* y, std::int64_t plane,
                                              std::int64_t first, std::int64_t count) {
    for (std::int64_t i = first; i < count; ++i) {
        float l[3];
        for (int k = 0; k < 3; ++k)
            l[k] = logUnit(minLikeAvx(maxLikeAvx(x[k * plane + i], kMinUnit), 1.0F));
        for (int c = 0; c < 3; ++c) {
            float t = q.m[c] * l[0] + q.m[3 + c] * l[1];
            t = t + q.m[6 + c] * l[2];
            t = minLikeAvx(maxLikeAvx(t - q.b[c], kMinExponent), 0.0F);
            const float v = minLikeAvx(expNonPositive(t), 1.0F); // exp(t ≤ 0) ≥ 0
            y[c * plane + i] = minLikeAvx(maxLikeAvx(v + q.brightness, 0.0F), 1.0F);
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) inline __m512 logUnit16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    __m512i e = _mm512_sub_epi32(_mm512_maskz_srli_epi32(kAll, bits, 23), _mm512_set1_epi32(127));
    __m512 m = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFF)), _mm512_set1_epi32(0x3F800000)));
    const __mmask16 high = _mm512_cmp_ps_mask(m, _mm512_set1_ps(kSqrt2), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, high, m, _mm512_set1_ps(0.5F));
    e = _mm512_mask_add_epi32(e, high, e, _mm512_set1_epi32(1));
    const __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0F)), z = _mm512_mul_ps(f, f);
    const __m512 ef = _mm512_maskz_cvtepi32_ps(kAll, e);
    __m512 p = _mm512_set1_ps(kLogP[0]);
    for (int i = 1; i < 9; ++i)
        p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(kLogP[i]));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, f), z);
    y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_set1_ps(kLn2Lo), ef));
    y = _mm512_sub_ps(y, _mm512_mul_ps(_mm512_set1_ps(0.5F), z));
    return _mm512_add_ps(_mm512_add_ps(f, y), _mm512_mul_ps(_mm512_set1_ps(kLn2Hi), ef));
}

__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) inline __m512 expNonPositive16(__m512 t) {
    const __m512 n = _mm512_maskz_roundscale_ps(
        kAll, _mm512_add_ps(_mm512_mul_ps(t, _mm512_set1_ps(kLog2e)), _mm512_set1_ps(0.5F)),
        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(t, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Hi)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Lo)));
    const __m512 z = _mm512_mul_ps(r, r);
    __m512 q = _mm512_set1_ps(kExpQ[0]);
    for (int i = 1; i < 6; ++i)
        q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(kExpQ[i]));
    q = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(q, z), r), _mm512_set1_ps(1.0F));
    const __m512i scale = _mm512_maskz_slli_epi32(kAll, _mm512_add_epi32(_mm512_maskz_cvttps_epi32(kAll, n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(q, _mm512_castsi512_ps(scale));
}

/// maxLikeAvx and minLikeAvx, 16 at a time.
__attribute__((target("avx512f"))) inline __m512 clamp16(__m512 v, __m512 lo, __m512 hi) {
    return _mm512_mask_min_ps(v, kAll, _mm512_mask_max_ps(v, kAll, v, lo), hi);
}

/// hedAndBrightnessScalar 16 pixels at a time; returns how many pixels it did (a multiple of 16).
__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) std::int64_t hedAndBrightnessAvx512(const ColourParams& q, const float* x,
                                                                                     float* y, std::int64_t plane) {
    const std::int64_t full = plane / 16 * 16;
    const __m512 minUnit = _mm512_set1_ps(kMinUnit), one = _mm512_set1_ps(1.0F), zero = _mm512_setzero_ps();
    const __m512 minExponent = _mm512_set1_ps(kMinExponent), brightness = _mm512_set1_ps(q.brightness);
    for (std::int64_t i = 0; i < full; i += 16) {
        __m512 l[3];
        for (int k = 0; k < 3; ++k)
            l[k] = logUnit16(clamp16(_mm512_loadu_ps(x + k * plane + i), minUnit, one));
        for (int c = 0; c < 3; ++c) {
            __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(q.m[c]), l[0]), _mm512_mul_ps(_mm512_set1_ps(q.m[3 + c]), l[1]));
            t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_set1_ps(q.m[6 + c]), l[2]));
            t = clamp16(_mm512_sub_ps(t, _mm512_set1_ps(q.b[c])), minExponent, zero);
            const __m512 v = _mm512_mask_min_ps(zero, kAll, expNonPositive16(t), one);
            _mm512_storeu_ps(y + c * plane + i, clamp16(_mm512_add_ps(v, brightness), zero, one));
        }
    }
    return full;
}
#else
std::int64_t hedAndBrightnessAvx512(const ColourParams&, const float*, float*, std::int64_t) { return 0; }
#endif

/// The mean of `count` values, summed in 16 lanes of doubles (value i in lane i mod 16, then the lanes in order,
/// then the rest): the same sum from either loop.
float laneMeanScalar(const float* v, std::int64_t count, std::int64_t first = 0, const double* start = nullptr) {
    double lanes[16] = {};
    if (start)
        std::copy_n(start, 16, lanes);
    std::int64_t i = first;
    for (; i + 16 <= count; i += 16)
        for (int l = 0; l < 16; ++l)
            lanes[l] += static_cast<double>(v[i + l]);
    double sum = 0.0;
    for (const double l : lanes)
        sum += l;
    for (; i < count; ++i)
        sum += static_cast<double>(v[i]);
    return static_cast<float>(sum / static_cast<double>(count));
}

/// Elements [offset, offset + count) of the standard normal stream `key` (standardNormal's values).
void normalStream(std::uint64_t key, std::int64_t offset, std::int64_t count, float* out) {
    const float* table = normalQuantiles().data();
    std::int64_t i = offset;
    const std::int64_t end = offset + count;
    while (i < end) {
        const std::uint64_t z = hashed(key, static_cast<std::uint64_t>(i >> 2));
        for (int lane = static_cast<int>(i & 3); lane < 4 && i < end; ++lane, ++i)
            out[i - offset] = table[(z >> (16 * lane)) & 0xFFFFU];
    }
}

/// Pass 2 in place for values [first, count) of one image: contrast about the image's mean, clamp, the noise
/// (`noise` holds the image's values from `first` on), clamp.
NIC_SCALAR_NO_FMA void contrastAndNoiseScalar(const ColourParams& q, float mean, const float* noise, float* y,
                                              std::int64_t first, std::int64_t count) {
    const float keep = mean * (1.0F - q.contrast);
    for (std::int64_t i = first; i < count; ++i) {
        const float v = minLikeAvx(maxLikeAvx(y[i] * q.contrast + keep, 0.0F), 1.0F);
        y[i] = minLikeAvx(maxLikeAvx(v + noise[i - first] * q.sigma, 0.0F), 1.0F);
    }
}

#if defined(__x86_64__)
constexpr __mmask8 kAll8 = 0xFF;

/// laneMeanScalar's 16 lane sums over the first count / 16 · 16 values, into lanes; returns how many it summed.
__attribute__((target("avx512f"))) std::int64_t laneSumsAvx512(const float* v, std::int64_t count, double* lanes) {
    const std::int64_t full = count / 16 * 16;
    __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
    for (std::int64_t i = 0; i < full; i += 16) {
        low = _mm512_add_pd(low, _mm512_maskz_cvtps_pd(kAll8, _mm256_loadu_ps(v + i)));
        high = _mm512_add_pd(high, _mm512_maskz_cvtps_pd(kAll8, _mm256_loadu_ps(v + i + 8)));
    }
    _mm512_storeu_pd(lanes, low);
    _mm512_storeu_pd(lanes + 8, high);
    return full;
}

/// a·b mod 2⁶⁴ in each 64-bit lane, from 32 × 32 → 64-bit products (AVX-512F has no 64-bit multiply).
__attribute__((target("avx512f"))) inline __m512i mul64(__m512i a, std::uint64_t b) {
    const __m512i bLow = _mm512_set1_epi64(static_cast<long long>(b & 0xFFFFFFFFULL));
    const __m512i bHigh = _mm512_set1_epi64(static_cast<long long>(b >> 32));
    const __m512i low = _mm512_maskz_mul_epu32(kAll8, a, bLow);
    const __m512i cross = _mm512_add_epi64(_mm512_maskz_mul_epu32(kAll8, _mm512_maskz_srli_epi64(kAll8, a, 32), bLow),
                                           _mm512_maskz_mul_epu32(kAll8, a, bHigh));
    return _mm512_add_epi64(low, _mm512_maskz_slli_epi64(kAll8, cross, 32));
}

__attribute__((target("avx512f"))) inline __m512i xorShiftRight(__m512i z, unsigned bits) {
    return _mm512_xor_si512(z, _mm512_maskz_srli_epi64(kAll8, z, bits));
}

/// contrastAndNoiseScalar 32 values at a time, with the noise made on the way: eight hashes of the stream (from
/// group firstGroup on) give the 32 values' 16-bit indices in order, gathered from the table. Returns how many
/// values it did (a multiple of 32).
__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) std::int64_t
contrastAndNoiseAvx512(const ColourParams& q, float mean, std::uint64_t key, std::uint64_t firstGroup, float* y,
                       std::int64_t count) {
    const std::int64_t full = count / 32 * 32;
    const float* table = normalQuantiles().data();
    const __m512 factor = _mm512_set1_ps(q.contrast), keep = _mm512_set1_ps(mean * (1.0F - q.contrast));
    const __m512 sigma = _mm512_set1_ps(q.sigma), zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0F);
    // The counter i + 1 of hashed(key, i) for the eight groups, and its step.
    __m512i counter = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(firstGroup + 1)),
                                       _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    const __m512i eight = _mm512_set1_epi64(8), keyV = _mm512_set1_epi64(static_cast<long long>(key));
    for (std::int64_t i = 0; i < full; i += 32) {
        __m512i z = _mm512_add_epi64(keyV, mul64(counter, kGamma));
        z = mul64(xorShiftRight(z, kShift1), kMultiply1);
        z = mul64(xorShiftRight(z, kShift2), kMultiply2);
        z = xorShiftRight(z, kShift3);
        counter = _mm512_add_epi64(counter, eight);
        // Little-endian: the 16-bit fields of the eight hashes, in memory order, are values i … i + 31 in order.
        const __m512i first16 = _mm512_maskz_cvtepu16_epi32(kAll, _mm512_maskz_extracti64x4_epi64(0xF, z, 0));
        const __m512i second16 = _mm512_maskz_cvtepu16_epi32(kAll, _mm512_maskz_extracti64x4_epi64(0xF, z, 1));
        for (int half = 0; half < 2; ++half) {
            const __m512 noise = _mm512_mask_i32gather_ps(zero, kAll, half == 0 ? first16 : second16, table, 4);
            float* at = y + i + 16 * half;
            __m512 v = clamp16(_mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(at), factor), keep), zero, one);
            v = clamp16(_mm512_add_ps(v, _mm512_mul_ps(noise, sigma)), zero, one);
            _mm512_storeu_ps(at, v);
        }
    }
    return full;
}
#else
std::int64_t laneSumsAvx512(const float*, std::int64_t, double*) { return 0; }
std::int64_t contrastAndNoiseAvx512(const ColourParams&, float, std::uint64_t, std::uint64_t, float*, std::int64_t) {
    return 0;
}
#endif

} // namespace

void colourImage(const ColourParams& q, const float* x, float* y, std::int64_t plane, std::uint64_t key,
                 std::int64_t offset, bool vector, std::vector<float>& noise) {
    const std::int64_t perImage = 3 * plane;
    const std::int64_t hedDone = vector ? hedAndBrightnessAvx512(q, x, y, plane) : 0;
    hedAndBrightnessScalar(q, x, y, plane, hedDone, plane);
    double lanes[16];
    const std::int64_t summed = vector ? laneSumsAvx512(y, perImage, lanes) : 0;
    const float mean = laneMeanScalar(y, perImage, summed, vector ? lanes : nullptr);
    // The vector loop starts on a hash's first value: the scalar loop takes the values before it (when the image
    // does not start on one) and those after its last 32.
    noise.resize(static_cast<std::size_t>(perImage));
    const std::int64_t lead = vector ? std::min(perImage, (4 - offset % 4) % 4) : perImage;
    normalStream(key, offset, lead, noise.data());
    contrastAndNoiseScalar(q, mean, noise.data(), y, 0, lead);
    const std::int64_t done =
        lead + (vector ? contrastAndNoiseAvx512(q, mean, key, static_cast<std::uint64_t>((offset + lead) / 4), y + lead,
                                                perImage - lead)
                       : 0);
    normalStream(key, offset + done, perImage - done, noise.data());
    contrastAndNoiseScalar(q, mean, noise.data(), y, done, perImage);
}

} // namespace nic::augment

// Patches' bytes to the encoders' float input in any dihedral order (patchinput.h).
#include "core/encoders/nn/patchinput.h"

#include "core/base/envswitch.h"
#include "core/base/error.h"
#include "core/imaging/dihedral.h"

#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NIC_PATCHINPUT_AVX512 1
#define NIC_AVX512 __attribute__((target("avx512f")))
#endif

namespace nic::patchinput {

namespace {

std::atomic<bool> gVector{envSwitchOn("NIC_VECTOR_PATCH_INPUT")};

/// Where output value (y2, x2) of one patch reads: the byte offset of its source pixel (pooled: of the top-left pixel
/// of its 2 × 2 block) is origin + stepY · y2 + stepX · x2, from dihedralAffine's inverse on the S × S output grid.
struct Walk {
    int side = 0; ///< S
    std::ptrdiff_t rowBytes = 0, origin = 0, stepY = 0, stepX = 0;
};

Walk walkOf(int patchSize, int k, bool pooled) {
    if (patchSize <= 0 || (pooled && patchSize % 2 != 0))
        throw InvalidArgument("patch input: patch size " + std::to_string(patchSize) +
                              (pooled ? " is not a positive even number" : " is not positive"));
    Walk w;
    w.side = pooled ? patchSize / 2 : patchSize;
    const DihedralAffine a = dihedralAffine(k, w.side, w.side); // throws for k outside 0..7
    // Source cell (y, x) of output (y2, x2): y = rr·y2 + cr·x2 + y0, x = rc·y2 + cc·x2 + x0.
    const std::ptrdiff_t y0 = -(std::ptrdiff_t{a.rr} * a.r0 + std::ptrdiff_t{a.cr} * a.c0);
    const std::ptrdiff_t x0 = -(std::ptrdiff_t{a.rc} * a.r0 + std::ptrdiff_t{a.cc} * a.c0);
    const std::ptrdiff_t scale = pooled ? 2 : 1; // pixels per source cell
    w.rowBytes = std::ptrdiff_t{patchSize} * 3;
    w.origin = scale * (y0 * w.rowBytes + x0 * 3);
    w.stepY = scale * (a.rr * w.rowBytes + a.rc * 3);
    w.stepX = scale * (a.cr * w.rowBytes + a.cc * 3);
    return w;
}

/// v / 127.5 − 1 for every byte v, and s / 510 − 1 for every sum s of four bytes (0 … 1020), in float.
struct Tables {
    float plain[256];
    float pooled[1021];
    Tables() {
        for (int v = 0; v < 256; ++v)
            plain[v] = static_cast<float>(v) / 127.5F - 1.0F;
        for (int s = 0; s <= 1020; ++s)
            pooled[s] = static_cast<float>(s) / 510.0F - 1.0F;
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

/// One patch in its own order, one value at a time through the tables (the loops compression ran before the vector
/// kernel): channel c of output i = y · S + x goes to out[c · S² + i] (planar) or out[3 · i + c].
void convertScalar(const std::uint8_t* patch, int patchSize, bool pooled, bool planar, float* __restrict out) {
    const Tables& t = tables();
    const auto P = static_cast<std::size_t>(patchSize);
    if (!pooled) {
        const std::size_t plane = P * P;
        if (!planar) { // channels-last: the bytes' own order
            for (std::size_t i = 0; i < plane * 3; ++i)
                out[i] = t.plain[patch[i]];
            return;
        }
        for (std::size_t i = 0; i < plane; ++i) {
            out[i] = t.plain[patch[3 * i]];
            out[plane + i] = t.plain[patch[3 * i + 1]];
            out[2 * plane + i] = t.plain[patch[3 * i + 2]];
        }
        return;
    }
    const std::size_t half = P / 2, plane = half * half, row = P * 3;
    for (std::size_t y = 0; y < half; ++y) {
        const std::uint8_t* r0 = patch + 2 * y * row;
        const std::uint8_t* r1 = r0 + row;
        for (std::size_t x = 0, i = 0; x < half; ++x, i += 6)
            for (std::size_t c = 0; c < 3; ++c) {
                const float v = t.pooled[r0[i + c] + r0[i + c + 3] + r1[i + c] + r1[i + c + 3]];
                if (planar)
                    out[c * plane + y * half + x] = v;
                else
                    out[(y * half + x) * 3 + c] = v;
            }
    }
}

/// toPlanar / toChannelsLast one value at a time: each patch's bytes transformed first (into a buffer that stays in
/// the core's cache), then converted in their own order.
void convertPatchesScalar(const std::uint8_t* nhwc, int count, int patchSize, int k, bool pooled, bool planar,
                          float* out) {
    const std::size_t patchBytes = static_cast<std::size_t>(patchSize) * static_cast<std::size_t>(patchSize) * 3U;
    const std::size_t values = (pooled ? patchBytes / 4 : patchBytes);
    std::vector<std::uint8_t> transformed(k == 0 ? 0 : patchBytes);
    for (int n = 0; n < count; ++n) {
        const std::uint8_t* patch = nhwc + static_cast<std::size_t>(n) * patchBytes;
        if (k != 0) {
            dihedralTransformPatch(patch, transformed.data(), patchSize, k);
            patch = transformed.data();
        }
        convertScalar(patch, patchSize, pooled, planar, out + static_cast<std::size_t>(n) * values);
    }
}

#ifdef NIC_PATCHINPUT_AVX512

// GCC 12 takes the intrinsics' own _mm512_undefined_* operands (gathers, casts, extracts) for uninitialised values.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// 16 integers (0 … 1020) as floats v · inverse − 1: v / 127.5 − 1 or v / 510 − 1 exactly as the tables have them (the
/// product in double, rounded once to float, equals the float quotient for every such v; PatchInput's tests check all).
NIC_AVX512 inline __m512 scaled(__m512i v, __m512d inverse) {
    const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), inverse));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), inverse));
    const __m512d both = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1);
    return _mm512_sub_ps(_mm512_castpd_ps(both), _mm512_set1_ps(1.0F));
}

/// 16 pixels' bytes, one 32-bit read at each (R, G, B and the next pixel's first byte). The read at the patch's last
/// pixel would pass its end by one byte: where `corner` (a lane, or −1) holds it, that lane is not read and takes
/// `cornerWord` (the last pixel's three bytes) instead.
NIC_AVX512 inline __m512i gather16(const std::uint8_t* base, __m512i lanes, int corner, int cornerWord) {
    if (corner < 0)
        return _mm512_i32gather_epi32(lanes, base, 1);
    return _mm512_mask_i32gather_epi32(_mm512_set1_epi32(cornerWord), static_cast<__mmask16>(~(1U << corner)), lanes,
                                       base, 1);
}

/// toPlanar for one patch, S a multiple of 16: 16 outputs of a row at a time, their source pixels gathered.
NIC_AVX512 void convertVector(const std::uint8_t* patch, const Walk& w, bool pooled, int k, float* out) {
    const int S = w.side;
    const std::size_t plane = static_cast<std::size_t>(S) * static_cast<std::size_t>(S);
    const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int>(w.stepX)));
    const __m512i low = _mm512_set1_epi32(0xFF), evenBytes = _mm512_set1_epi32(0x00FF00FF);
    const __m512d inverse = _mm512_set1_pd(pooled ? 1.0 / 510.0 : 1.0 / 127.5);
    // The output holding the patch's last pixel (pooled: the last block, whose fourth read is that pixel).
    const auto [cornerY, cornerX] = dihedralMap(k, S - 1, S - 1, S, S);
    const std::uint8_t* last = patch + (static_cast<std::ptrdiff_t>(w.rowBytes) * (pooled ? 2 * S : S) - 3);
    const int cornerWord = last[0] | (last[1] << 8) | (last[2] << 16);
    const std::ptrdiff_t down = w.rowBytes;
    for (int y2 = 0; y2 < S; ++y2) {
        const std::uint8_t* row = patch + w.origin + w.stepY * y2;
        for (int x2 = 0; x2 < S; x2 += 16) {
            const std::uint8_t* s = row + w.stepX * x2;
            const int corner = y2 == cornerY && cornerX >= x2 && cornerX < x2 + 16 ? cornerX - x2 : -1;
            __m512i r, g, b;
            if (!pooled) {
                const __m512i v = gather16(s, lanes, corner, cornerWord);
                r = _mm512_and_si512(v, low);
                g = _mm512_and_si512(_mm512_srli_epi32(v, 8), low);
                b = _mm512_and_si512(_mm512_srli_epi32(v, 16), low);
            } else {
                const __m512i v0 = gather16(s, lanes, -1, 0), v1 = gather16(s + 3, lanes, -1, 0),
                              v2 = gather16(s + down, lanes, -1, 0),
                              v3 = gather16(s + down + 3, lanes, corner, cornerWord);
                // R and B sums in the low and high 16 bits of each lane (at most 1020 each), G apart.
                const __m512i rb = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_and_si512(v0, evenBytes), _mm512_and_si512(v1, evenBytes)),
                    _mm512_add_epi32(_mm512_and_si512(v2, evenBytes), _mm512_and_si512(v3, evenBytes)));
                const __m512i g01 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(v0, 8), low),
                                                     _mm512_and_si512(_mm512_srli_epi32(v1, 8), low));
                const __m512i g23 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(v2, 8), low),
                                                     _mm512_and_si512(_mm512_srli_epi32(v3, 8), low));
                r = _mm512_and_si512(rb, _mm512_set1_epi32(0xFFFF));
                g = _mm512_add_epi32(g01, g23);
                b = _mm512_srli_epi32(rb, 16);
            }
            float* o = out + static_cast<std::size_t>(y2) * static_cast<std::size_t>(S) + static_cast<std::size_t>(x2);
            _mm512_storeu_ps(o, scaled(r, inverse));
            _mm512_storeu_ps(o + plane, scaled(g, inverse));
            _mm512_storeu_ps(o + 2 * plane, scaled(b, inverse));
        }
    }
}

#pragma GCC diagnostic pop

bool cpuHasAvx512() {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu;
}

#endif

} // namespace

bool useVectorKernel(bool on) {
    return gVector.exchange(on, std::memory_order_relaxed);
}

bool vectorKernelRuns() {
#ifdef NIC_PATCHINPUT_AVX512
    return gVector.load(std::memory_order_relaxed) && cpuHasAvx512();
#else
    return false;
#endif
}

void toPlanar(const std::uint8_t* nhwc, int count, int patchSize, int k, bool pooled, float* out) {
    const Walk w = walkOf(patchSize, k, pooled); // checks k and the size
#ifdef NIC_PATCHINPUT_AVX512
    if (w.side % 16 == 0 && vectorKernelRuns()) {
        const std::size_t patchBytes = static_cast<std::size_t>(patchSize) * static_cast<std::size_t>(patchSize) * 3U;
        const std::size_t plane = static_cast<std::size_t>(w.side) * static_cast<std::size_t>(w.side);
        for (int n = 0; n < count; ++n)
            convertVector(nhwc + static_cast<std::size_t>(n) * patchBytes, w, pooled, k,
                          out + static_cast<std::size_t>(n) * plane * 3U);
        return;
    }
#endif
    convertPatchesScalar(nhwc, count, patchSize, k, pooled, true, out);
}

void toChannelsLast(const std::uint8_t* nhwc, int count, int patchSize, int k, bool pooled, float* out) {
    walkOf(patchSize, k, pooled); // checks k and the size
    convertPatchesScalar(nhwc, count, patchSize, k, pooled, false, out);
}

} // namespace nic::patchinput

// The direct convolutions (directconv.h): the first layer's, and the wide kernel for later layers.
#include "core/encoders/nn/directconv.h"

#include "core/base/envswitch.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NIC_DIRECTCONV_AVX512 1
#define NIC_AVX512 __attribute__((target("avx512f")))
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nic::directconv {

namespace {
std::atomic<bool> gOn{envSwitchOn("NIC_DIRECT_FIRST_CONV")};
std::atomic<std::uint64_t> gCalls{0};
std::atomic<bool> gWideOn{envSwitchOn("NIC_DIRECT_WIDE_CONV")};
std::atomic<std::uint64_t> gWideCalls{0};
constexpr int kMaxIn = 1024;
} // namespace

bool use(bool on) {
    return gOn.exchange(on, std::memory_order_relaxed);
}

std::uint64_t calls() {
    return gCalls.load(std::memory_order_relaxed);
}

bool fits(const std::vector<std::int64_t>& w, int stride, int padding, int side) {
    return w.size() == 4 && w[2] == 3 && w[3] == 3 && stride == 2 && w[0] > 0 && w[0] % 16 == 0 && w[1] >= 1 &&
           w[1] <= 4 && ((padding == 1 && side >= 2 && side % 2 == 0) || (padding == 0 && side >= 3));
}

int outSide(int side, int padding) {
    return (side + 2 * padding - 3) / 2 + 1;
}

std::vector<float> tapMajor(const std::vector<float>& weight, int out, int in) {
    std::vector<float> taps(weight.size());
    for (int o = 0; o < out; ++o)
        for (int t = 0; t < in * 9; ++t)
            taps[static_cast<std::size_t>(t) * static_cast<std::size_t>(out) + static_cast<std::size_t>(o)] =
                weight[static_cast<std::size_t>(o) * static_cast<std::size_t>(in * 9) + static_cast<std::size_t>(t)];
    return taps;
}

bool useWide(bool on) {
    return gWideOn.exchange(on, std::memory_order_relaxed);
}

std::uint64_t wideCalls() {
    return gWideCalls.load(std::memory_order_relaxed);
}

bool fitsWide(const std::vector<std::int64_t>& w, int stride, int padding, int side) {
    return w.size() == 4 && w[2] == 3 && w[3] == 3 && stride == 2 && padding == 1 && w[0] > 0 && w[0] % 64 == 0 &&
           w[1] >= 1 && w[1] <= kMaxIn && side >= 2 && side % 2 == 0;
}

std::vector<float> wideTaps(const std::vector<float>& weight, int out, int in) {
    std::vector<float> taps(weight.size());
    for (int o = 0; o < out; ++o)
        for (int c = 0; c < in; ++c)
            for (int t = 0; t < 9; ++t)
                taps[(static_cast<std::size_t>(t) * static_cast<std::size_t>(in) + static_cast<std::size_t>(c)) *
                         static_cast<std::size_t>(out) +
                     static_cast<std::size_t>(o)] =
                    weight[(static_cast<std::size_t>(o) * static_cast<std::size_t>(in) + static_cast<std::size_t>(c)) * 9U +
                           static_cast<std::size_t>(t)];
    return taps;
}

#ifdef NIC_DIRECTCONV_AVX512

namespace {

struct Image {
    const float* x; ///< [in, side, side], or [side, side, in] when channelsLastInput
    int in, side;
    int pad, wo; ///< padding (1 or 0) and the output side
    bool channelsLastInput;
    const float* taps; ///< [in, 3, 3, out], offset to the channel group
    const float* bias; ///< offset to the channel group
    int out;           ///< the row stride of taps and y
    float slope;       ///< < 0: no activation
    float* y;          ///< [wo, wo, out], offset to the channel group
};

/// T output pixels (ox0 … ox0 + T − 1 of row oy) × 16·V channels, accumulated in registers over every input
/// channel and tap, in the order bias, then (channel, kh, kw). Left: ox0 = 0 with padding 1, whose first pixel's
/// kw = 0 tap falls on the zero padding. (Rows and columns past the bottom and right cannot occur: with padding 1 the
/// side is even, and with none the output stops at the last whole window.)
template <int V, int T, bool Left>
NIC_AVX512 inline void tile(const Image& im, int oy, int ox0) {
    __m512 acc[T][V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
        const __m512 b = _mm512_loadu_ps(im.bias + 16 * v);
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t)
            acc[t][v] = b;
    }
    const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(im.side) * im.side;
    // Planar: channel c's plane, then rows of `side` values. Channels-last: pixels of `in` values.
    const std::ptrdiff_t column = im.channelsLastInput ? im.in : 1;
    const std::ptrdiff_t rowStride = static_cast<std::ptrdiff_t>(im.side) * column;
    for (int c = 0; c < im.in; ++c) {
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; ++kh) {
            const int row = 2 * oy + kh - im.pad;
            if (row < 0) // the top padding
                continue;
            // Column 2·ox − pad + kw of pixel ox = ox0 + t: xr[(2·t + kw − pad) · column], xr at column 2·ox0.
            const float* xr = im.x + (im.channelsLastInput ? c : c * plane) + row * rowStride + 2 * ox0 * column;
            const float* wr = im.taps + static_cast<std::size_t>((c * 3 + kh) * 3) * static_cast<std::size_t>(im.out);
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; ++kw) {
                __m512 w[V];
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v)
                    w[v] =
                        _mm512_loadu_ps(wr + static_cast<std::size_t>(kw) * static_cast<std::size_t>(im.out) + 16 * v);
#pragma GCC unroll 16
                for (int t = 0; t < T; ++t) {
                    if (Left && t == 0 && kw == 0)
                        continue;
                    const __m512 xv = _mm512_set1_ps(xr[(2 * t + kw - im.pad) * column]);
#pragma GCC unroll 8
                    for (int v = 0; v < V; ++v)
                        acc[t][v] = _mm512_fmadd_ps(xv, w[v], acc[t][v]);
                }
            }
        }
    }
    const int wo = im.wo;
    float* yo = im.y + (static_cast<std::size_t>(oy) * static_cast<std::size_t>(wo) + static_cast<std::size_t>(ox0)) *
                           static_cast<std::size_t>(im.out);
    const __m512 slope = _mm512_set1_ps(im.slope), zero = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) {
            __m512 a = acc[t][v];
            if (im.slope >= 0.0F) // LeakyReLU: a < 0 → slope · a (as oneDNN's eltwise_relu: −0 stays −0)
                a = _mm512_mask_mul_ps(a, _mm512_cmp_ps_mask(a, zero, _CMP_LT_OQ), a, slope);
            _mm512_storeu_ps(yo + static_cast<std::size_t>(t) * static_cast<std::size_t>(im.out) + 16 * v, a);
        }
    }
}

/// One image's channel group of 16·V channels, T pixels at a time along each output row.
template <int V, int T>
NIC_AVX512 void group(const Image& im) {
    const int wo = im.wo;
    for (int oy = 0; oy < wo; ++oy) {
        int ox = 0;
        if (im.pad == 0) {
            // no padding: every tile reads whole windows
        } else if (wo >= T) {
            tile<V, T, true>(im, oy, 0);
            ox = T;
        } else {
            tile<V, 1, true>(im, oy, 0);
            ox = 1;
        }
        for (; ox + T <= wo; ox += T)
            tile<V, T, false>(im, oy, ox);
        for (; ox < wo; ++ox)
            tile<V, 1, false>(im, oy, ox);
    }
}

/// One image: groups of 64 channels (4 × 4 pixels: 16 accumulators), then 32 (2 × 8), then 16 (1 × 8); these tiles
/// ran fastest in a scratch comparison (docs/timings.md).
NIC_AVX512 void image(Image im) {
    const int out = im.out;
    int g = 0;
    auto at = [&](int first) {
        Image part = im;
        part.taps += first;
        part.bias += first;
        part.y += first;
        return part;
    };
    for (; g + 64 <= out; g += 64)
        group<4, 4>(at(g));
    for (; g + 32 <= out; g += 32)
        group<2, 8>(at(g));
    for (; g + 16 <= out; g += 16)
        group<1, 8>(at(g));
}

alignas(64) const float kZeros[kMaxIn] = {};

struct Layer {
    const float* x; ///< [n, side, side, in]
    int in, side;
    const float* taps; ///< [3, 3, in, out]
    const float* bias;
    int out;
    float slope; ///< < 0: no activation
    float* y;    ///< [n, side/2, side/2, out]
};

/// Output pixels q0 … q0 + T − 1 of the batch (image-major, then row, then column) × the 64 channels from oc0,
/// accumulated in registers over the taps and input channels in the order bias, then (kh, kw, channel).
template <int T>
NIC_AVX512 inline void block(const Layer& l, std::int64_t q0, int oc0) {
    constexpr int V = 4;
    const int wo = l.side / 2;
    const std::int64_t perImage = static_cast<std::int64_t>(wo) * wo;
    __m512 acc[T][V];
    int image[T], oy[T], ox[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        const std::int64_t q = q0 + t;
        image[t] = static_cast<int>(q / perImage);
        const int r = static_cast<int>(q % perImage);
        oy[t] = r / wo;
        ox[t] = r % wo;
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
            acc[t][v] = _mm512_loadu_ps(l.bias + oc0 + 16 * v);
    }
    const auto in = static_cast<std::size_t>(l.in), out = static_cast<std::size_t>(l.out);
#pragma GCC unroll 1
    for (int kh = 0; kh < 3; ++kh) {
#pragma GCC unroll 1
        for (int kw = 0; kw < 3; ++kw) {
            const float* px[T];
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) {
                const int iy = 2 * oy[t] - 1 + kh, ix = 2 * ox[t] - 1 + kw;
                px[t] = iy < 0 || ix < 0 || iy >= l.side || ix >= l.side
                            ? kZeros
                            : l.x + ((static_cast<std::size_t>(image[t]) * static_cast<std::size_t>(l.side) +
                                      static_cast<std::size_t>(iy)) *
                                         static_cast<std::size_t>(l.side) +
                                     static_cast<std::size_t>(ix)) *
                                        in;
            }
            const float* w = l.taps + static_cast<std::size_t>(kh * 3 + kw) * in * out + static_cast<std::size_t>(oc0);
#pragma GCC unroll 4
            for (std::size_t c = 0; c < in; ++c) {
                __m512 wv[V];
#pragma GCC unroll 4
                for (int v = 0; v < V; ++v)
                    wv[v] = _mm512_loadu_ps(w + c * out + 16 * static_cast<std::size_t>(v));
#pragma GCC unroll 8
                for (int t = 0; t < T; ++t) {
                    const __m512 xv = _mm512_set1_ps(px[t][c]);
#pragma GCC unroll 4
                    for (int v = 0; v < V; ++v)
                        acc[t][v] = _mm512_fmadd_ps(xv, wv[v], acc[t][v]);
                }
            }
        }
    }
    const __m512 slope = _mm512_set1_ps(l.slope), zero = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
        float* y = l.y + static_cast<std::size_t>(q0 + t) * out + static_cast<std::size_t>(oc0);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
            __m512 a = acc[t][v];
            if (l.slope >= 0.0F) // LeakyReLU: a < 0 → slope · a (as oneDNN's eltwise_relu: −0 stays −0)
                a = _mm512_mask_mul_ps(a, _mm512_cmp_ps_mask(a, zero, _CMP_LT_OQ), a, slope);
            _mm512_storeu_ps(y + 16 * v, a);
        }
    }
}

/// Output pixels [first, last) of the batch, every 64-channel group: six pixels a block (24 accumulators; 4 and 5
/// ran 5-25 % slower in a scratch comparison), the rest one at a time.
NIC_AVX512 void pixels(const Layer& l, std::int64_t first, std::int64_t last) {
    constexpr int kPixels = 6;
    for (int oc0 = 0; oc0 < l.out; oc0 += 64) {
        std::int64_t q = first;
        for (; q + kPixels <= last; q += kPixels)
            block<kPixels>(l, q, oc0);
        for (; q < last; ++q)
            block<1>(l, q, oc0);
    }
}

/// Whether this CPU has AVX-512F (both kernels need it), asked once.
bool cpuHasAvx512() {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu;
}

} // namespace

bool available() {
    return cpuHasAvx512() && gOn.load(std::memory_order_relaxed);
}

void run(const float* x, int n, int in, int side, int padding, const float* taps, const float* bias, int out,
         float slope, float* y, int threads, bool channelsLastInput) {
    gCalls.fetch_add(1, std::memory_order_relaxed);
    const int wo = outSide(side, padding);
    const std::size_t inSize =
        static_cast<std::size_t>(in) * static_cast<std::size_t>(side) * static_cast<std::size_t>(side);
    const std::size_t outSize =
        static_cast<std::size_t>(wo) * static_cast<std::size_t>(wo) * static_cast<std::size_t>(out);
    auto one = [&](int i) {
        image(Image{x + static_cast<std::size_t>(i) * inSize, in, side, padding, wo, channelsLastInput, taps, bias, out,
                    slope, y + static_cast<std::size_t>(i) * outSize});
    };
#ifdef _OPENMP
    if (threads > 1 && n > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int i = 0; i < n; ++i)
            one(i);
        return;
    }
#else
    (void)threads;
#endif
    for (int i = 0; i < n; ++i)
        one(i);
}

bool wideAvailable() {
    return cpuHasAvx512() && gWideOn.load(std::memory_order_relaxed);
}

void runWide(const float* x, int n, int in, int side, const float* taps, const float* bias, int out, float slope,
             float* y, int threads) {
    gWideCalls.fetch_add(1, std::memory_order_relaxed);
    const Layer l{x, in, side, taps, bias, out, slope, y};
    const std::int64_t total = static_cast<std::int64_t>(n) * (side / 2) * (side / 2);
#ifdef _OPENMP
    if (threads > 1 && total > 1) {
        // Contiguous shares, cut at multiples of the block so that only the last share has a remainder.
        const std::int64_t share = ((total + threads - 1) / threads + 5) / 6 * 6;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (int t = 0; t < threads; ++t) {
            const std::int64_t first = std::min(total, share * t);
            pixels(l, first, std::min(total, first + share));
        }
        return;
    }
#else
    (void)threads;
#endif
    pixels(l, 0, total);
}

#else // not x86-64 with GCC or Clang

bool available() {
    return false;
}

void run(const float*, int, int, int, int, const float*, const float*, int, float, float*, int, bool) {}

bool wideAvailable() {
    return false;
}

void runWide(const float*, int, int, int, const float*, const float*, int, float, float*, int) {}

#endif

} // namespace nic::directconv

#include "core/encoders/nn/bnkernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace nic::bnkernels {

namespace {

// Compiled for AVX-512, AVX2 and the baseline, chosen when the program loads (the build has no -march), as
// fusedadam.cpp's loop; the inner loops run over the channels, which are contiguous.
#if defined(__x86_64__) && defined(__GNUC__)
#define NIC_BN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NIC_BN_CLONES
#endif

/// The reductions cut the rows into chunks of about 32 K values (few partial sums, rows in cache), fixed by the
/// shape alone, so the sums do not depend on the number of threads. Where a chunk would hold fewer than 32 rows
/// (a dense layer's thousands of channels over a batch), each task sums every row of a block of channels instead.
constexpr std::int64_t kChunkValues = std::int64_t{1} << 15, kMinChunkRows = 32, kChannelBlock = 64;
/// Rows per task of the element-wise loops.
std::int64_t grainRows(const Shape& s) { return std::max<std::int64_t>(1, (std::int64_t{1} << 14) / s.channels); }

// The normalised value and the gradient reaching it, shared by every loop so that the backward pass recomputes
// exactly the forward pass's values (and signs): the same float operations in the same order.
[[gnu::always_inline]] inline float centred(float x, float mean, float meanLow) { return (x - mean) - meanLow; }
[[gnu::always_inline]] inline float normalised(float xc, float scale, float beta) { return xc * scale + beta; }
/// g·mask (mask nullptr: g), through LeakyReLU at z.
[[gnu::always_inline]] inline float gradientAtZ(float g, const float* mask, std::int64_t k, float z, float slope) {
    const float gz = mask ? g * mask[k] : g;
    return z > 0.0F ? gz : gz * slope;
}

// The sums' loops add rows [r0, r1) of channels [k0, k1) into s1[k] and s2[k].
NIC_BN_CLONES void statsRows(const float* __restrict x, std::int64_t c, std::int64_t r0, std::int64_t r1, std::int64_t k0,
                             std::int64_t k1, const double* __restrict shift, double* __restrict s1,
                             double* __restrict s2) {
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * c;
        for (std::int64_t k = k0; k < k1; ++k) {
            const double d = static_cast<double>(xr[k]) - shift[k];
            s1[k] += d;
            s2[k] += d * d;
        }
    }
}

NIC_BN_CLONES void forwardRows(const float* __restrict x, const Shape& s, std::int64_t r0, std::int64_t r1,
                               const float* __restrict mean, const float* __restrict meanLow,
                               const float* __restrict scale, const float* __restrict beta, float slope,
                               const float* __restrict mask, float* __restrict y) {
    const std::int64_t c = s.channels;
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * c;
        float* yr = y + r * c;
        if (mask) {
            const float* mr = mask + (r / s.rowsPerSample) * c;
            for (std::int64_t k = 0; k < c; ++k) {
                const float z = normalised(centred(xr[k], mean[k], meanLow[k]), scale[k], beta[k]);
                yr[k] = (z > 0.0F ? z : z * slope) * mr[k];
            }
        } else {
            for (std::int64_t k = 0; k < c; ++k) {
                const float z = normalised(centred(xr[k], mean[k], meanLow[k]), scale[k], beta[k]);
                yr[k] = z > 0.0F ? z : z * slope;
            }
        }
    }
}

NIC_BN_CLONES void sumsRows(const float* __restrict g, const float* __restrict x, const Shape& s, std::int64_t r0,
                            std::int64_t r1, std::int64_t k0, std::int64_t k1, const float* __restrict mean,
                            const float* __restrict meanLow, const float* __restrict scale,
                            const float* __restrict beta, float slope, const float* __restrict mask,
                            double* __restrict s1, double* __restrict s2) {
    const std::int64_t c = s.channels;
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * c;
        const float* gr = g + r * c;
        const float* mr = mask ? mask + (r / s.rowsPerSample) * c : nullptr;
        for (std::int64_t k = k0; k < k1; ++k) {
            const float xc = centred(xr[k], mean[k], meanLow[k]);
            const float gz = gradientAtZ(gr[k], mr, k, normalised(xc, scale[k], beta[k]), slope);
            s1[k] += static_cast<double>(gz);
            s2[k] += static_cast<double>(gz) * static_cast<double>(xc);
        }
    }
}

NIC_BN_CLONES void inputRows(const float* __restrict g, const float* __restrict x, const Shape& s, std::int64_t r0,
                             std::int64_t r1, const float* __restrict mean, const float* __restrict meanLow,
                             const float* __restrict scale, const float* __restrict beta, float slope,
                             const float* __restrict mask, const float* __restrict a, const float* __restrict b,
                             const float* __restrict d, float* __restrict dx) {
    const std::int64_t c = s.channels;
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * c;
        const float* gr = g + r * c;
        float* dr = dx + r * c;
        const float* mr = mask ? mask + (r / s.rowsPerSample) * c : nullptr;
        for (std::int64_t k = 0; k < c; ++k) {
            const float xc = centred(xr[k], mean[k], meanLow[k]);
            const float gz = gradientAtZ(gr[k], mr, k, normalised(xc, scale[k], beta[k]), slope);
            dr[k] = gz * a[k] + xc * b[k] + d[k];
        }
    }
}

/// Sums two per-channel quantities over the rows (`rows(r0, r1, k0, k1, s1, s2)` adds rows [r0, r1) of channels
/// [k0, k1) into s1[k], s2[k]): in fixed chunks of rows, whose partial sums are then added in chunk order, or, for
/// wide batches, by blocks of channels over every row in order.
template <typename Rows>
void chunkedSums(const Shape& s, double* out1, double* out2, Rows rows) {
    const std::int64_t c = s.channels;
    std::fill(out1, out1 + c, 0.0);
    std::fill(out2, out2 + c, 0.0);
    const std::int64_t per = kChunkValues / c;
    if (per < kMinChunkRows) {
        at::parallel_for(0, (c + kChannelBlock - 1) / kChannelBlock, 1, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t b = begin; b < end; ++b)
                rows(0, s.rows, b * kChannelBlock, std::min(c, (b + 1) * kChannelBlock), out1, out2);
        });
        return;
    }
    const std::int64_t chunks = (s.rows + per - 1) / per;
    std::vector<double> partial(static_cast<std::size_t>(chunks * c * 2), 0.0);
    at::parallel_for(0, chunks, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t k = begin; k < end; ++k) {
            double* p = partial.data() + k * c * 2;
            rows(k * per, std::min(s.rows, (k + 1) * per), 0, c, p, p + c);
        }
    });
    for (std::int64_t k = 0; k < chunks; ++k) {
        const double* p = partial.data() + k * c * 2;
        for (std::int64_t j = 0; j < c; ++j) {
            out1[j] += p[j];
            out2[j] += p[c + j];
        }
    }
}

} // namespace

void channelStats(const float* x, const Shape& s, double* mean, double* variance) {
    const std::int64_t c = s.channels;
    // Sums of x − (the first row's value): exact for a constant channel, no cancellation for a large mean.
    std::vector<double> shift(x, x + c);
    chunkedSums(s, mean, variance,
                [&](std::int64_t r0, std::int64_t r1, std::int64_t k0, std::int64_t k1, double* s1, double* s2) {
                    statsRows(x, c, r0, r1, k0, k1, shift.data(), s1, s2);
                });
    const auto n = static_cast<double>(s.rows);
    for (std::int64_t k = 0; k < c; ++k) {
        const double m = mean[k] / n;
        mean[k] = shift[static_cast<std::size_t>(k)] + m;
        variance[k] = std::max(variance[k] / n - m * m, 0.0); // a NaN stays NaN, as in LibTorch's statistics
    }
}

void forward(const float* x, const Shape& s, const Affine& f, float slope, const float* mask, float* y) {
    at::parallel_for(0, s.rows, grainRows(s), [&](std::int64_t begin, std::int64_t end) {
        forwardRows(x, s, begin, end, f.mean, f.meanLow, f.scale, f.beta, slope, mask, y);
    });
}

void backwardSums(const float* g, const float* x, const Shape& s, const Affine& f, float slope, const float* mask,
                  double* sumGz, double* sumGzCentred) {
    chunkedSums(s, sumGz, sumGzCentred,
                [&](std::int64_t r0, std::int64_t r1, std::int64_t k0, std::int64_t k1, double* s1, double* s2) {
                    sumsRows(g, x, s, r0, r1, k0, k1, f.mean, f.meanLow, f.scale, f.beta, slope, mask, s1, s2);
                });
}

void backwardInput(const float* g, const float* x, const Shape& s, const Affine& f, float slope, const float* mask,
                   const InputGradient& k, float* dx) {
    at::parallel_for(0, s.rows, grainRows(s), [&](std::int64_t begin, std::int64_t end) {
        inputRows(g, x, s, begin, end, f.mean, f.meanLow, f.scale, f.beta, slope, mask, k.a, k.b, k.d, dx);
    });
}

} // namespace nic::bnkernels

// Training's wide stride-2 convolutions on oneDNN's sgemm: weight gradients, and small maps' forward pass and input
// gradient (convgrad.h).
#include "core/encoders/nn/convgrad.h"

#include "core/base/error.h"
#include "core/encoders/nn/alignedbuffer.h"
#include "core/encoders/nn/gemmconv.h"
#include "core/encoders/nn/ompthreads.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#ifdef NIC_HAVE_DNNL_SGEMM
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nic::convgrad {

namespace {
std::atomic<std::uint64_t> gCalls{0}, gForwardCalls{0}, gDataCalls{0};
} // namespace

std::uint64_t calls() {
    return gCalls.load(std::memory_order_relaxed);
}

std::uint64_t forwardCalls() {
    return gForwardCalls.load(std::memory_order_relaxed);
}

std::uint64_t dataCalls() {
    return gDataCalls.load(std::memory_order_relaxed);
}

#ifdef NIC_HAVE_DNNL_SGEMM

bool available() {
    return true;
}

namespace {

/// Floats of the im2col copy each thread fills and multiplies at once (1 MiB): the copy is still in the thread's L2
/// cache when its sgemm reads it.
constexpr std::int64_t kThreadChunkFloats = std::int64_t{1} << 18;

/// The calling thread's im2col buffer of at least `floats` floats, kept for the next call.
float* threadColumns(std::int64_t floats) {
    thread_local AlignedBuffer buffer;
    return buffer.reserve(static_cast<std::size_t>(floats) * sizeof(float));
}

/// step(first, rows, col) for the output rows [lo, hi) in chunks of im2col rows `width` floats wide, at most
/// kThreadChunkFloats a chunk (at least one row), `col` the calling thread's buffer for one chunk; stops at the first
/// step that does not return dnnl_success and returns its status.
template <class Step>
dnnl_status_t inChunks(std::int64_t lo, std::int64_t hi, std::int64_t width, const Step& step) {
    if (lo >= hi)
        return dnnl_success;
    const std::int64_t chunk = std::clamp<std::int64_t>(kThreadChunkFloats / width, 1, hi - lo);
    float* col = threadColumns(chunk * width);
    for (std::int64_t first = lo; first < hi; first += chunk)
        if (const dnnl_status_t status = step(first, std::min(chunk, hi - first), col); status != dnnl_success)
            return status;
    return dnnl_success;
}

/// The sum over output rows [lo, hi) of ∂w's terms into `acc` [out, width] (zero where the range is empty), on the
/// calling thread alone: im2col chunks, each followed by its sgemm.
dnnl_status_t weightGradientRows(const float* x, std::int64_t in, std::int64_t side, const float* dy, std::int64_t out,
                                 std::int64_t lo, std::int64_t hi, float* acc) {
    const std::int64_t width = 9 * in;
    if (lo >= hi)
        std::fill(acc, acc + out * width, 0.0F);
    return inChunks(lo, hi, width, [&](std::int64_t first, std::int64_t rows, float* col) {
        gemmconv::im2col(x, in, side, 3, 2, 1, first, rows, col, 1);
        // acc [out, width] (+)= dyᵀ [out, rows] · col [rows, width]
        return dnnl_sgemm('T', 'N', out, width, rows, 1.0F, dy + first * out, out, col, width,
                          first == lo ? 0.0F : 1.0F, acc, width);
    });
}

/// part(t, count) for t in [0, count) on a team of up to `wanted` OpenMP threads of the calling thread (count: the
/// team's size), each holding oneDNN's sgemm to itself; returns count. An exception from a part (std::bad_alloc for an
/// im2col buffer) is passed on after the team, not out of it; a failed sgemm throws Error naming `what`.
template <class Part>
int onTeam(int wanted, const char* what, const Part& part) {
    std::atomic<int> status{dnnl_success};
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    auto run = [&](int t, int count) {
        try {
            const dnnl_status_t done = part(t, count);
            if (done != dnnl_success)
                status.store(done);
        } catch (...) {
            if (!failed.exchange(true))
                failure = std::current_exception();
        }
    };
    int used = 1;
#ifdef _OPENMP
    if (wanted > 1) {
#pragma omp parallel num_threads(wanted)
        {
#pragma omp single
            used = omp_get_num_threads(); // the implied barrier: every thread reads it after
            const OmpThreads one(1);      // oneDNN's sgemm on this thread alone, also in a team of one
            run(omp_get_thread_num(), used);
        }
    } else {
        const OmpThreads one(1); // oneDNN's sgemm takes the calling thread's OpenMP threads
        run(0, 1);
    }
#else
    (void)wanted;
    run(0, 1);
#endif
    if (failure)
        std::rethrow_exception(failure);
    if (status.load() != dnnl_success)
        throw Error(std::string(what) + ": oneDNN's sgemm failed (status " + std::to_string(status.load()) + ")");
    return used;
}

/// ∂x's rows [first, first + rows) of the im2col matrix, `col` [rows, 9 · in], added into the channels-last images
/// `dx` [side, side, in] of the batch they belong to: each row's nine taps go back to the input pixels they were read
/// from (col2im), in the order rows, then (kh, kw).
void col2imAdd(const float* col, std::int64_t in, std::int64_t side, std::int64_t first, std::int64_t rows, float* dx) {
    const std::int64_t o = outputSide(side), width = 9 * in;
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t g = first + r, image = g / (o * o), oy = (g / o) % o, ox = g % o;
        const float* src = col + r * width;
        for (std::int64_t kh = 0; kh < 3; ++kh) {
            const std::int64_t iy = 2 * oy + kh - 1;
            for (std::int64_t kw = 0; kw < 3; ++kw, src += in) {
                const std::int64_t ix = 2 * ox + kw - 1;
                if (iy < 0 || iy >= side || ix < 0 || ix >= side)
                    continue;
                float* dst = dx + ((image * side + iy) * side + ix) * in;
                for (std::int64_t c = 0; c < in; ++c)
                    dst[c] += src[c];
            }
        }
    }
}

} // namespace

void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads) {
    gCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = outputSide(side), size = out * 9 * in, total = n * o * o;
    // At least 256 output pixels a thread (a choice by shape, so the same bits for the same thread count): fewer would
    // mostly add partial sums of zeros.
    const int wanted = static_cast<int>(std::clamp<std::int64_t>(total / 256, 1, std::max(1, threads)));
    // Thread t of T sums the rows [total · t / T, total · (t + 1) / T) on its own (thread 0 into dw, the others into
    // partial sums), then dw += the partial sums in thread order: the same bits for the same thread count. Splitting
    // the rows instead of each sgemm keeps every thread's im2col chunk in its own cache.
    thread_local AlignedBuffer partialBuffer;
    float* partials =
        wanted > 1 ? partialBuffer.reserve(static_cast<std::size_t>((wanted - 1) * size) * sizeof(float)) : nullptr;
    const int used = onTeam(wanted, "convolution weight gradient", [&](int t, int count) {
        return weightGradientRows(x, in, side, dy, out, total * t / count, total * (t + 1) / count,
                                  t == 0 ? dw : partials + (t - 1) * size);
    });
    if (used > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(used) schedule(static)
#endif
        for (std::int64_t i = 0; i < size; ++i) {
            float sum = dw[i];
            for (int t = 1; t < used; ++t)
                sum += partials[(t - 1) * size + i];
            dw[i] = sum;
        }
    }
}

void forward(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* w, const float* bias,
             std::int64_t out, float* y, int threads) {
    gForwardCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = outputSide(side), width = 9 * in, total = n * o * o;
    // Each thread computes its own share of the output rows, through im2col chunks that stay in its cache.
    const int wanted = static_cast<int>(std::clamp<std::int64_t>(total / 64, 1, std::max(1, threads)));
    onTeam(wanted, "convolution", [&](int t, int count) {
        return inChunks(total * t / count, total * (t + 1) / count, width,
                        [&](std::int64_t first, std::int64_t rows, float* col) {
                            gemmconv::im2col(x, in, side, 3, 2, 1, first, rows, col, 1);
                            // y [rows, out] = col [rows, width] · wᵀ (w [out, width])
                            float* yr = y + first * out;
                            const dnnl_status_t status =
                                dnnl_sgemm('N', 'T', rows, out, width, 1.0F, col, width, w, width, 0.0F, yr, out);
                            for (std::int64_t r = 0; status == dnnl_success && r < rows; ++r)
                                for (std::int64_t c = 0; c < out; ++c)
                                    yr[r * out + c] += bias[c];
                            return status;
                        });
    });
}

void dataGradient(const float* dy, std::int64_t n, std::int64_t in, std::int64_t side, const float* w, std::int64_t out,
                  float* dx, int threads) {
    gDataCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = outputSide(side), width = 9 * in, perImage = o * o;
    // Whole images a thread, so that no two threads add into the same pixel of ∂x; each image's rows are added in
    // the same order on any thread count.
    const int wanted = static_cast<int>(std::clamp<std::int64_t>(n, 1, std::max(1, threads)));
    onTeam(wanted, "convolution data gradient", [&](int t, int count) {
        const std::int64_t i0 = n * t / count, i1 = n * (t + 1) / count;
        std::fill(dx + i0 * side * side * in, dx + i1 * side * side * in, 0.0F);
        return inChunks(i0 * perImage, i1 * perImage, width, [&](std::int64_t first, std::int64_t rows, float* col) {
            // col [rows, width] = dy [rows, out] · w [out, width]
            const dnnl_status_t status =
                dnnl_sgemm('N', 'N', rows, width, out, 1.0F, dy + first * out, out, w, width, 0.0F, col, width);
            if (status == dnnl_success)
                col2imAdd(col, in, side, first, rows, dx);
            return status;
        });
    });
}

#else

bool available() {
    return false;
}

void weightGradient(const float*, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, float*, int) {}

void forward(const float*, std::int64_t, std::int64_t, std::int64_t, const float*, const float*, std::int64_t, float*,
             int) {}

void dataGradient(const float*, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, float*, int) {}

#endif

bool fits(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding, std::int64_t dilation,
          std::int64_t groups) {
    return available() && in >= 32 && kernel == 3 && stride == 2 && padding == 1 && dilation == 1 && groups == 1;
}

bool smallMap(std::int64_t in, std::int64_t side) {
    const std::int64_t o = outputSide(side);
    return in >= 256 && o * o <= 16;
}

} // namespace nic::convgrad

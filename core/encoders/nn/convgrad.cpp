// Weight gradients of wide stride-2 convolutions on oneDNN's sgemm (convgrad.h).
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
std::atomic<std::uint64_t> gCalls{0};
} // namespace

std::uint64_t calls() {
    return gCalls.load(std::memory_order_relaxed);
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

/// The sum over output rows [lo, hi) of ∂w's terms into `acc` [out, width] (zero where the range is empty), on the
/// calling thread alone: im2col chunks of kThreadChunkFloats, each followed by its sgemm.
dnnl_status_t weightGradientRows(const float* x, std::int64_t in, std::int64_t side, const float* dy, std::int64_t out,
                                 std::int64_t lo, std::int64_t hi, float* acc) {
    const std::int64_t width = 9 * in;
    if (lo >= hi) {
        std::fill(acc, acc + out * width, 0.0F);
        return dnnl_success;
    }
    const std::int64_t chunk = std::clamp<std::int64_t>(kThreadChunkFloats / width, 1, hi - lo);
    float* col = threadColumns(chunk * width);
    for (std::int64_t first = lo; first < hi; first += chunk) {
        const std::int64_t rows = std::min(chunk, hi - first);
        gemmconv::im2col(x, in, side, 3, 2, 1, first, rows, col, 1);
        // acc [out, width] (+)= dyᵀ [out, rows] · col [rows, width]
        const dnnl_status_t status = dnnl_sgemm('T', 'N', out, width, rows, 1.0F, dy + first * out, out, col, width,
                                                first == lo ? 0.0F : 1.0F, acc, width);
        if (status != dnnl_success)
            return status;
    }
    return dnnl_success;
}

} // namespace

void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads) {
    gCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = (side - 1) / 2 + 1, size = out * 9 * in, total = n * o * o;
    // At least 256 output pixels a thread (a choice by shape, so the same bits for the same thread count): fewer would
    // mostly add partial sums of zeros.
    const int wanted = static_cast<int>(std::clamp<std::int64_t>(total / 256, 1, std::max(1, threads)));
    // Thread t of T sums the rows [total · t / T, total · (t + 1) / T) on its own (thread 0 into dw, the others into
    // partial sums), then dw += the partial sums in thread order: the same bits for the same thread count. Splitting
    // the rows instead of each sgemm keeps every thread's im2col chunk in its own cache.
    thread_local AlignedBuffer partialBuffer;
    float* partials =
        wanted > 1 ? partialBuffer.reserve(static_cast<std::size_t>((wanted - 1) * size) * sizeof(float)) : nullptr;
    std::atomic<int> status{dnnl_success};
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    auto part = [&](int t, int count) {
        try {
            const auto done = weightGradientRows(x, in, side, dy, out, total * t / count, total * (t + 1) / count,
                                                 t == 0 ? dw : partials + (t - 1) * size);
            if (done != dnnl_success)
                status.store(done);
        } catch (...) { // std::bad_alloc for the im2col buffer: passed on after the threads, not out of them
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
            part(omp_get_thread_num(), used);
        }
    } else {
        const OmpThreads one(1); // oneDNN's sgemm takes the calling thread's OpenMP threads
        part(0, 1);
    }
#else
    part(0, 1);
#endif
    if (failure)
        std::rethrow_exception(failure);
    if (status.load() != dnnl_success)
        throw Error("convolution weight gradient: oneDNN's sgemm failed (status " + std::to_string(status.load()) +
                    ")");
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

#else

bool available() {
    return false;
}

void weightGradient(const float*, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, float*, int) {}

#endif

bool fits(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding, std::int64_t dilation,
          std::int64_t groups) {
    return available() && in >= 32 && kernel == 3 && stride == 2 && padding == 1 && dilation == 1 && groups == 1;
}

} // namespace nic::convgrad

// Convolutions as im2col + oneDNN's sgemm (gemmconv.h).
#include "core/encoders/nn/gemmconv.h"

#include "core/base/error.h"
#include "core/encoders/nn/ompthreads.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#ifdef NIC_HAVE_DNNL_SGEMM
#include <oneapi/dnnl/dnnl.h>
#endif

namespace nic::gemmconv {

namespace {
std::atomic<std::uint64_t> gCalls{0};

/// fn(r) for every r in [0, rows), shared among `threads` OpenMP threads (≤ 1: the calling thread alone).
template <class Fn>
void forRows(std::int64_t rows, int threads, const Fn& fn) {
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (std::int64_t r = 0; r < rows; ++r)
            fn(r);
        return;
    }
#else
    (void)threads;
#endif
    for (std::int64_t r = 0; r < rows; ++r)
        fn(r);
}
} // namespace

std::uint64_t calls() {
    return gCalls.load(std::memory_order_relaxed);
}

void im2col(const float* x, std::int64_t in, std::int64_t side, int k, int stride, int padding, std::int64_t first,
            std::int64_t rows, float* col, int threads) {
    const std::int64_t o = (side + 2 * padding - k) / stride + 1, width = std::int64_t{k} * k * in;
    const auto bytes = static_cast<std::size_t>(in) * sizeof(float);
    auto row = [&](std::int64_t r) {
        const std::int64_t g = first + r, image = g / (o * o), oy = (g / o) % o, ox = g % o;
        float* dst = col + r * width;
        for (std::int64_t kh = 0; kh < k; ++kh) {
            const std::int64_t iy = stride * oy + kh - padding;
            for (std::int64_t kw = 0; kw < k; ++kw, dst += in) {
                const std::int64_t ix = stride * ox + kw - padding;
                if (iy < 0 || iy >= side || ix < 0 || ix >= side)
                    std::memset(dst, 0, bytes);
                else
                    std::memcpy(dst, x + ((image * side + iy) * side + ix) * in, bytes);
            }
        }
    };
    forRows(rows, threads, row);
}

#ifdef NIC_HAVE_DNNL_SGEMM

bool available() {
    return true;
}

void run(const float* x, int n, int in, int side, int k, int stride, int padding, const float* hwio, const float* bias,
         int out, float slope, float* y, AlignedBuffer& buffer, int threads) {
    gCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = (side + 2 * padding - k) / stride + 1, width = std::int64_t{k} * k * in;
    const std::int64_t total = std::int64_t{n} * o * o;
    if (total <= 0)
        return;
    const std::int64_t chunk = std::max<std::int64_t>(1, std::min(total, kChunkFloats / width));
    float* col = buffer.reserve(static_cast<std::size_t>(chunk * width) * sizeof(float));
    const OmpThreads scope(std::max(1, threads)); // oneDNN's sgemm takes the calling thread's OpenMP threads
    for (std::int64_t first = 0; first < total; first += chunk) {
        const std::int64_t rows = std::min(chunk, total - first);
        im2col(x, in, side, k, stride, padding, first, rows, col, threads);
        // y [rows, out] = col [rows, width] · hwio [width, out]
        const dnnl_status_t status =
            dnnl_sgemm('N', 'N', rows, out, width, 1.0F, col, width, hwio, out, 0.0F, y + first * out, out);
        if (status != dnnl_success)
            throw Error("convolution: oneDNN's sgemm failed (status " + std::to_string(status) + ")");
    }
    // Bias and LeakyReLU in one pass (a < 0 → slope · a, as oneDNN's eltwise_relu post-op).
    forRows(total, threads, [&](std::int64_t r) {
        float* row = y + r * out;
        for (int c = 0; c < out; ++c) {
            const float a = row[c] + bias[c];
            row[c] = slope >= 0.0F && a < 0.0F ? a * slope : a;
        }
    });
}

#else

bool available() {
    return false;
}

void run(const float*, int, int, int, int, int, int, const float*, const float*, int, float, float*, AlignedBuffer&,
         int) {
    throw Error("convolution: this build has no oneDNN sgemm");
}

#endif

} // namespace nic::gemmconv

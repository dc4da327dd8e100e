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

void weightGradient(const float* x, std::int64_t n, std::int64_t in, std::int64_t side, const float* dy,
                    std::int64_t out, float* dw, int threads) {
    gCalls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t o = (side - 1) / 2 + 1, width = 9 * in, total = n * o * o;
    if (total <= 0) { // no images: a gradient of zero, as LibTorch gives
        std::fill(dw, dw + out * width, 0.0F);
        return;
    }
    const std::int64_t chunk = std::max<std::int64_t>(1, std::min(total, gemmconv::kChunkFloats / width));
    thread_local AlignedBuffer buffer;
    float* col = buffer.reserve(static_cast<std::size_t>(chunk * width) * sizeof(float));
    dnnl_status_t status = dnnl_success;
    {
        const OmpThreads scope(std::max(1, threads)); // oneDNN's sgemm takes the calling thread's OpenMP threads
        for (std::int64_t first = 0; first < total && status == dnnl_success; first += chunk) {
            const std::int64_t rows = std::min(chunk, total - first);
            gemmconv::im2col(x, in, side, 3, 2, 1, first, rows, col, threads);
            // ∂w [out, width] (+)= dyᵀ [out, rows] · col [rows, width]
            status = dnnl_sgemm('T', 'N', out, width, rows, 1.0F, dy + first * out, out, col, width,
                                first == 0 ? 0.0F : 1.0F, dw, width);
        }
    }
    if (status != dnnl_success)
        throw Error("convolution weight gradient: oneDNN's sgemm failed (status " + std::to_string(status) + ")");
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

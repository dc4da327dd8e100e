// The measured choice between oneDNN's convolution and im2col + sgemm (gemmchoice.h).
#include "core/encoders/nn/gemmchoice.h"

#include <atomic>

#ifdef NIC_HAVE_DNNL
#include "core/encoders/nn/gemmconv.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <unordered_map>
#endif

namespace nic::gemmchoice {

namespace {
std::atomic<std::uint64_t> gMeasurements{0};
} // namespace

std::uint64_t measurements() {
    return gMeasurements.load(std::memory_order_relaxed);
}

#ifdef NIC_HAVE_DNNL

namespace {
using dnnl::memory;

/// Measured choices between oneDNN and im2col + sgemm, process-wide, by (batch, in, side, k, stride, padding, out,
/// OpenMP threads).
std::mutex gGemmChoicesMutex;
std::map<std::array<int, 8>, bool> gGemmChoices;

std::array<int, 8> choiceKey(const Layer& g, int threads) {
    return {g.n, g.in, g.side, g.k, g.stride, g.padding, g.out, threads};
}

/// Whether im2col + sgemm ran layer `g` faster than oneDNN's convolution `conv` (its weights and bias as given, src and
/// dst channels-last): one warm-up run of each, then three of each alternated, best against best; sgemm must take under
/// 0.95 of oneDNN's time. The input is a fixed ramp of small values: the kernels' time does not depend on them.
bool gemmMeasuredFaster(const dnnl::primitive& conv, const memory& weights, const memory& bias,
                        const memory::desc& srcDesc, const memory::desc& dstDesc, const Layer& g, dnnl::stream& stream,
                        AlignedBuffer& im2col, int threads) {
    AlignedBuffer src, dst;
    float* x = src.reserve(srcDesc.get_size());
    float* y = dst.reserve(dstDesc.get_size());
    const std::size_t values = srcDesc.get_size() / sizeof(float);
    for (std::size_t v = 0; v < values; ++v)
        x[v] = static_cast<float>(v % 97) * 0.01F - 0.48F;
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, memory(srcDesc, stream.get_engine(), x)},
                                            {DNNL_ARG_WEIGHTS, weights},
                                            {DNNL_ARG_BIAS, bias},
                                            {DNNL_ARG_DST, memory(dstDesc, stream.get_engine(), y)}};
    double oneDnnBest = 1e300, gemmBest = 1e300;
    for (int round = 0; round < 4; ++round) {
        auto t0 = std::chrono::steady_clock::now();
        conv.execute(stream, args);
        stream.wait();
        auto t1 = std::chrono::steady_clock::now();
        gemmconv::run(x, g.n, g.in, g.side, g.k, g.stride, g.padding, g.hwio, g.bias, g.out, g.slope, y, im2col,
                      threads);
        const auto t2 = std::chrono::steady_clock::now();
        if (round > 0) { // the first round warms both up
            oneDnnBest = std::min(oneDnnBest, std::chrono::duration<double>(t1 - t0).count());
            gemmBest = std::min(gemmBest, std::chrono::duration<double>(t2 - t1).count());
        }
    }
    gMeasurements.fetch_add(1, std::memory_order_relaxed);
    return gemmBest < 0.95 * oneDnnBest;
}

} // namespace

std::optional<bool> known(const Layer& g, int threads) {
    std::lock_guard lock(gGemmChoicesMutex);
    if (auto it = gGemmChoices.find(choiceKey(g, threads)); it != gGemmChoices.end())
        return it->second;
    return std::nullopt;
}

bool choose(const dnnl::primitive& conv, const memory& weights, const memory& bias, const memory::desc& srcDesc,
            const memory::desc& dstDesc, const Layer& g, dnnl::stream& stream, AlignedBuffer& im2col, int threads) {
    const auto key = choiceKey(g, threads);
    std::lock_guard lock(gGemmChoicesMutex);
    if (auto it = gGemmChoices.find(key); it != gGemmChoices.end())
        return it->second;
    const bool faster = gemmMeasuredFaster(conv, weights, bias, srcDesc, dstDesc, g, stream, im2col, threads);
    gGemmChoices.emplace(key, faster);
    return faster;
}

#endif

} // namespace nic::gemmchoice

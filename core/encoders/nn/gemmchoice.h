#pragma once
// The inference chain's measured choice between oneDNN's convolution and im2col + sgemm (gemmconv.h) for one layer:
// which is faster depends on the CPU, so the chain (onednnchain.cpp) times both once per process, layer shape, batch
// size and thread count, and remembers the answer. Internal to core_nn; no LibTorch in this header.
#include <cstdint>
#include <optional>

#ifdef NIC_HAVE_DNNL
#include "core/encoders/nn/alignedbuffer.h"

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace nic::gemmchoice {

/// Measurements taken so far, process-wide (tests; OneDnnChain::gemmMeasurements).
std::uint64_t measurements();

#ifdef NIC_HAVE_DNNL

/// A convolution as gemmconv::run computes it.
struct Layer {
    int n, in, side, k, stride, padding, out;
    float slope;
    const float* hwio;
    const float* bias;
};

/// The choice measured before for this layer and thread count, if any: true where im2col + sgemm won.
std::optional<bool> known(const Layer& g, int threads);

/// Whether layer `g` runs on im2col + sgemm rather than oneDNN's convolution `conv` (its weights and bias as given,
/// src and dst channels-last): the choice measured before for this shape, batch size and thread count, or else one
/// measured now (one warm-up run of each, then three of each alternated, best against best; sgemm must take under
/// 0.95 of oneDNN's time). Other threads asking for the same shape meanwhile wait for this measurement and take its
/// answer. `im2col` is the caller's buffer for the im2col copy.
bool choose(const dnnl::primitive& conv, const dnnl::memory& weights, const dnnl::memory& bias,
            const dnnl::memory::desc& srcDesc, const dnnl::memory::desc& dstDesc, const Layer& g, dnnl::stream& stream,
            AlignedBuffer& im2col, int threads);

#endif

} // namespace nic::gemmchoice

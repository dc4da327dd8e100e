#pragma once
// Convolutions as one matrix product over an im2col copy of the input, on oneDNN's sgemm: the inference chain's
// forward pass for the layers where that measured faster than oneDNN's own convolution (gemmchoice.h), and the
// im2col copy that training's weight gradients use too (convgrad.cpp). Internal to core_nn; no LibTorch and no oneDNN
// in this header.
//
// Why: on an Intel Xeon (family 6, model 207) VM, oneDNN 2.6's brgconv ran the VAE-type encoder's 256 → 512 layer
// (8² → 4², batch 64, one thread) at 94 GFLOP/s against 151–154 for im2col + sgemm, where on an AMD EPYC VM it was
// the other way round (13.5 against 15.3 ms). Which is faster depends on the CPU, so the chain measures both once per
// process and shape (docs/timings.md, issue 16).
#include "core/encoders/nn/alignedbuffer.h"

#include <cstdint>

namespace nic::gemmconv {

/// The most floats one im2col chunk of run() holds (16 MiB). Training's sgemm paths copy 1 MiB a thread
/// (convgrad.cpp).
inline constexpr std::int64_t kChunkFloats = std::int64_t{4} << 20;

/// Whether this build has oneDNN's sgemm (run() needs it; im2col() does not).
bool available();

/// Rows [first, first + rows) of the im2col matrix of n channels-last images [side, side, in] for a k × k convolution
/// with this stride and zero padding on each side: row (image, oy, ox) holds the k · k · in input values its output
/// pixel reads, in (kh, kw, channel) order, zero where the window leaves the image. On `threads` OpenMP threads.
void im2col(const float* x, std::int64_t in, std::int64_t side, int k, int stride, int padding, std::int64_t first,
            std::int64_t rows, float* col, int threads);

/// y = LeakyReLU(conv(x) + bias) (slope < 0: no activation) for n channels-last images x [side, side, in] into n
/// channels-last outputs y [o, o, out], o = (side + 2 · padding − k) / stride + 1. `hwio`: the weights as
/// [k, k, in, out]. The im2col copy goes through `buffer` in chunks of at most kChunkFloats (one output pixel's row at
/// least); im2col, oneDNN's sgemm and the bias pass run on `threads` OpenMP threads of the calling thread. Throws Error
/// when the sgemm fails or this build has none.
void run(const float* x, int n, int in, int side, int k, int stride, int padding, const float* hwio, const float* bias,
         int out, float slope, float* y, AlignedBuffer& buffer, int threads);

/// run() calls so far, process-wide (tests).
std::uint64_t calls();

} // namespace nic::gemmconv

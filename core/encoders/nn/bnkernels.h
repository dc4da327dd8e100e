#pragma once
// The loops of the fused training-mode BatchNorm → LeakyReLU (→ Dropout2d) (batchnormleaky.h; internal to core_nn,
// no LibTorch). A tensor is `rows` × `channels` floats, row-major: a channels-last [N, C, H, W] map (rows = N·H·W)
// or a [N, C] batch (rows = N). Row r belongs to sample r / rowsPerSample, which picks the row of the optional
// per-sample, per-channel mask [N, C] (Dropout2d's kept-and-scaled factors).
//
// The reductions are deterministic: the rows are cut into fixed chunks whose partial sums (in double) are added in
// chunk order, or, for wide batches (over 1024 channels), each block of channels sums every row in order; either
// way the bits do not depend on the number of threads. The forward and backward loops compute the normalised value
// z = (x − mean)·scale + beta with the same float operations (the file is compiled without FMA contraction), so
// the backward pass sees the signs the forward pass saw.
#include <cstdint>

namespace nic::bnkernels {

struct Shape {
    std::int64_t rows = 0, channels = 0, rowsPerSample = 1;
};

/// Per-channel mean and biased variance over the rows, in double.
void channelStats(const float* x, const Shape& s, double* mean, double* variance);

/// Per-channel coefficients of the normalised value z = ((x − mean) − meanLow)·scale + beta: the batch mean as the
/// float nearest to it plus the float nearest to the rest, so that a channel whose mean is large against its spread
/// keeps its precision (x − mean is exact for x near the mean).
struct Affine {
    const float* mean;
    const float* meanLow;
    const float* scale;
    const float* beta;
};

/// y = a·mask[sample, c] (mask nullptr: a), a = z > 0 ? z : slope·z.
void forward(const float* x, const Shape& s, const Affine& f, float slope, const float* mask, float* y);

/// With gz = g·mask·(z > 0 ? 1 : slope), the gradient reaching z: Σ gz and Σ gz·(x − mean) per channel
/// (x − mean as z takes it).
void backwardSums(const float* g, const float* x, const Shape& s, const Affine& f, float slope, const float* mask,
                  double* sumGz, double* sumGzCentred);

/// dx = gz·a[c] + (x − mean)·b[c] + d[c] (x − mean as z takes it).
struct InputGradient {
    const float* a;
    const float* b;
    const float* d;
};
void backwardInput(const float* g, const float* x, const Shape& s, const Affine& f, float slope, const float* mask,
                   const InputGradient& k, float* dx);

} // namespace nic::bnkernels

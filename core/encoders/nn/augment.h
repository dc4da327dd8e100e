#pragma once
// Heavy data augmentation for contrastive training (paper §2.2, after Tellez et al. [26]): rotation,
// colour (HED) jitter, brightness, contrast, zoom, elastic deformation and additive Gaussian noise.
//
// Every function takes a batch [N, 3, H, W] of float RGB in [0, 1], returns a new tensor of the same
// shape clamped to [0, 1], draws one random parameter set per image from `gen` (so equal seeds give
// equal results, independent of the global generator), and scales its effect with `strength`:
// 0 leaves the image unchanged (up to float rounding), 1 is the "heavy" setting used for contrastive
// pairs; values up to 2 are allowed. Throws InvalidArgument for a bad shape or strength.
//
// They run on the batch's device. The draws always come from the CPU generator `gen` (small tensors, moved to
// the batch), so a seed gives the same draws on a GPU as on the CPU. On the CPU geometric's warp and the noise are
// loops of their own, and so are heavy's colour steps (two passes per image) where the CPU has AVX-512; on a GPU the same arithmetic runs as LibTorch's tensor operations
// (geometricWithTensorOps, heavyWithTensorOps), with the same result up to float rounding.
#include <torch/torch.h>

#include <cstdint>

namespace nic::augment {

/// A CPU generator seeded with `seed`.
at::Generator makeGenerator(std::uint64_t seed);

/// Rotation by a uniform angle in ±180°·min(strength, 1) about the centre, reflection at the borders.
torch::Tensor rotate(const torch::Tensor& x, double strength, at::Generator& gen);
/// Zoom by a factor in [1 − 0.25·strength, 1 + 0.25·strength] about the centre, reflection at the borders.
torch::Tensor zoom(const torch::Tensor& x, double strength, at::Generator& gen);
/// Elastic deformation: a smooth random displacement field (8×8 control grid, bilinear) of standard
/// deviation 2.5 %·strength of the image side.
torch::Tensor elastic(const torch::Tensor& x, double strength, at::Generator& gen);
/// Colour jitter in haematoxylin–eosin–DAB space (Ruifrok & Johnston): each stain's optical density
/// is scaled by 1 + U(±0.2·strength) and shifted by U(±0.05·strength).
torch::Tensor hedJitter(const torch::Tensor& x, double strength, at::Generator& gen);
/// Brightness: adds U(±0.2·strength).
torch::Tensor brightness(const torch::Tensor& x, double strength, at::Generator& gen);
/// Contrast: scales the deviation from the image mean by 1 + U(±0.4·strength).
torch::Tensor contrast(const torch::Tensor& x, double strength, at::Generator& gen);
/// Additive Gaussian noise with σ = U(0, 0.05·strength). The standard normal values come from one 64-bit
/// draw of `gen` (a counter-based hash, computed in parallel, whose 16-bit fields pick the normal distribution's
/// quantiles at 2^16 equal steps of probability, so |z| ≤ 4.32), not from `gen`'s stream value by value.
torch::Tensor gaussianNoise(const torch::Tensor& x, double strength, at::Generator& gen);

/// rotate, zoom and elastic together: the same draws in the same order, applied in one resampling (x at
/// R·S·(p + d(p))) instead of three, so with a third of the interpolation work and blur.
torch::Tensor geometric(const torch::Tensor& x, double strength, at::Generator& gen);

/// For tests and benchmarks: whether geometric's warp and heavy's colour steps on the CPU may take their AVX-512
/// loops (16 pixels at a time; the default where the CPU has them) or must take the scalar twins, which give the
/// same bits. Process-wide. Without AVX-512 heavy's colour steps otherwise run as LibTorch's operators (faster than
/// the scalar loops; the same result up to float rounding), so useVectorLoops(false) changes their bits there.
void useVectorLoops(bool on);
/// Whether this CPU has the AVX-512 loops (else the warp is scalar and the colour steps are LibTorch's operators).
bool hasVectorLoops();

/// geometric computed with LibTorch's tensor operations (interpolate, the sampling grid, grid_sample), as it
/// was before it became one pass per image: the same draws and the same result up to float rounding. What
/// geometric does on a GPU; on the CPU for tests and benchmarks.
torch::Tensor geometricWithTensorOps(const torch::Tensor& x, double strength, at::Generator& gen);

/// All of the above in the order rotate, zoom, elastic (as one resampling, geometric), HED, brightness,
/// contrast, noise.
torch::Tensor heavy(const torch::Tensor& x, double strength, at::Generator& gen);

/// heavy with LibTorch's tensor operations alone, on x's device: what heavy does on a GPU. The same draws,
/// the same noise bit for bit (its 64-bit hash as integer tensors, the same quantile table), and the same
/// result up to float rounding. On the CPU for tests and benchmarks.
torch::Tensor heavyWithTensorOps(const torch::Tensor& x, double strength, at::Generator& gen);

} // namespace nic::augment

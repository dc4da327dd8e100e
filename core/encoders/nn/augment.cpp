#include "core/encoders/nn/augment.h"

#include "core/base/error.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace nic::augment {

namespace F = torch::nn::functional;

namespace {

void check(const torch::Tensor& x, double strength, const char* what) {
    if (x.dim() != 4 || x.size(1) != 3)
        throw InvalidArgument(std::string(what) + ": expected a [N, 3, H, W] batch");
    if (!(strength >= 0.0 && strength <= 2.0))
        throw InvalidArgument(std::string(what) + ": strength must be in [0, 2], got " + std::to_string(strength));
}

/// U(−a, a) per image, shape [N].
torch::Tensor symmetric(std::int64_t n, double a, at::Generator& gen) {
    return (torch::rand({n}, gen, torch::kFloat) * 2.0 - 1.0) * a;
}

/// x sampled at `grid` ([N, H, W, 2], normalised coordinates): bilinear, reflection at the borders.
torch::Tensor sampleGrid(const torch::Tensor& x, const torch::Tensor& grid) {
    return F::grid_sample(x, grid.to(x.dtype()),
                          F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kReflection).align_corners(false))
        .clamp(0.0, 1.0);
}

torch::Tensor sampleAffine(const torch::Tensor& x, const torch::Tensor& theta) {
    return sampleGrid(x, F::affine_grid(theta, x.sizes().vec(), false));
}

/// rotate's draw: an angle in ±π·min(strength, 1) per image.
torch::Tensor drawAngle(std::int64_t n, double strength, at::Generator& gen) {
    return symmetric(n, M_PI * std::min(strength, 1.0), gen);
}

/// zoom's draw: a scale 1 / (1 + U(±0.25·min(strength, 1.5))) per image.
torch::Tensor drawScale(std::int64_t n, double strength, at::Generator& gen) {
    return 1.0 / (1.0 + symmetric(n, 0.25 * std::min(strength, 1.5), gen));
}

/// elastic's draw: a smooth random displacement in normalised coordinates, [N, 2, H, W] (x, y): Gaussian values
/// of standard deviation 2.5 % of the side × strength on an 8 × 8 grid, interpolated bilinearly.
torch::Tensor drawDisplacement(std::int64_t n, std::int64_t h, std::int64_t w, double strength, at::Generator& gen) {
    // Normalised coordinates span 2 units per side, so 2.5 % of the side is 0.05.
    auto coarse = torch::randn({n, 2, 8, 8}, gen, torch::kFloat) * (0.05 * strength);
    return F::interpolate(coarse, F::InterpolateFuncOptions()
                                      .size(std::vector<std::int64_t>{h, w})
                                      .mode(torch::kBilinear)
                                      .align_corners(true));
}

/// The normalised coordinates of `size` pixel centres (align_corners = false, as affine_grid gives them).
torch::Tensor pixelCentres(std::int64_t size) {
    return (torch::arange(size, torch::kFloat) * 2.0 + 1.0) / static_cast<double>(size) - 1.0;
}

/// The sampling grid [N, H, W, 2] that takes each pixel centre p to (p + d(p)) · [[a, b], [−b, a]] (p as a row
/// vector; a, b per image, [N]; d = `displacement`, [N, 2, H, W]). Element-wise: as a batched matmul it ran
/// as N small GEMMs of K = 2, several times slower.
torch::Tensor warpGrid(const torch::Tensor& displacement, const torch::Tensor& a, const torch::Tensor& b) {
    const auto n = displacement.size(0), h = displacement.size(2), w = displacement.size(3);
    const auto px = displacement.select(1, 0) + pixelCentres(w).view({1, 1, w});
    const auto py = displacement.select(1, 1) + pixelCentres(h).view({1, h, 1});
    const auto av = a.view({n, 1, 1}), bv = b.view({n, 1, 1});
    return torch::stack({px * av - py * bv, px * bv + py * av}, 3);
}

} // namespace

at::Generator makeGenerator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

torch::Tensor rotate(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "rotate");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    auto angle = drawAngle(n, strength, gen);
    auto c = torch::cos(angle), s = torch::sin(angle), z = torch::zeros({n});
    auto theta = torch::stack({torch::stack({c, -s, z}, 1), torch::stack({s, c, z}, 1)}, 1);
    return sampleAffine(x, theta.to(x.dtype()));
}

torch::Tensor zoom(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "zoom");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    auto scale = drawScale(n, strength, gen);
    auto z = torch::zeros({n});
    auto theta = torch::stack({torch::stack({scale, z, z}, 1), torch::stack({z, scale, z}, 1)}, 1);
    return sampleAffine(x, theta.to(x.dtype()));
}

torch::Tensor elastic(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "elastic");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    return sampleGrid(x, warpGrid(drawDisplacement(n, x.size(2), x.size(3), strength, gen), torch::ones({n}),
                                  torch::zeros({n})));
}

torch::Tensor hedJitter(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "hedJitter");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    // Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in scikit-image.
    auto rgbFromHed = torch::tensor({0.65f, 0.70f, 0.29f, 0.07f, 0.99f, 0.11f, 0.27f, 0.57f, 0.78f}).view({3, 3});
    rgbFromHed = rgbFromHed / rgbFromHed.norm(2, 1, true);
    auto hedFromRgb = torch::inverse(rgbFromHed);
    const auto h = x.size(2), w = x.size(3);
    auto od = -torch::log(x.to(torch::kFloat).clamp_min(1.0 / 255.0)).reshape({n, 3, h * w}); // [N, 3, HW], planar
    auto alpha = 1.0 + (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.2 * strength);
    auto beta = (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.05 * strength);
    // (od·HED⁻¹·diag(α) + β)·HED per image, as one 3 × 3 matrix and one offset: od·M + b, a single pass, done
    // on the planar channels as Mᵀ·od + bᵀ (no transposing copies of the image).
    auto m = torch::matmul(hedFromRgb.unsqueeze(0) * alpha.view({n, 1, 3}), rgbFromHed); // [N, 3, 3]
    auto b = torch::matmul(beta.view({n, 1, 3}), rgbFromHed);                             // [N, 1, 3]
    auto od2 = torch::baddbmm(b.transpose(1, 2), m.transpose(1, 2), od).view({n, 3, h, w});
    return torch::exp(-od2).clamp(0.0, 1.0).to(x.dtype());
}

torch::Tensor brightness(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "brightness");
    if (strength == 0.0)
        return x.clone();
    return (x + symmetric(x.size(0), 0.2 * strength, gen).view({-1, 1, 1, 1})).clamp(0.0, 1.0);
}

torch::Tensor contrast(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "contrast");
    if (strength == 0.0)
        return x.clone();
    auto mean = x.mean({1, 2, 3}, true);
    auto factor = 1.0 + symmetric(x.size(0), 0.4 * strength, gen).view({-1, 1, 1, 1});
    return ((x - mean) * factor + mean).clamp(0.0, 1.0);
}

torch::Tensor gaussianNoise(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "gaussianNoise");
    if (strength == 0.0)
        return x.clone();
    auto sigma = torch::rand({x.size(0), 1, 1, 1}, gen, torch::kFloat) * (0.05 * strength);
    return (x + torch::randn(x.sizes(), gen, torch::kFloat) * sigma).clamp(0.0, 1.0);
}

torch::Tensor geometric(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "geometric");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    // The draws of rotate, zoom and elastic, in their order.
    auto angle = drawAngle(n, strength, gen);
    auto scale = drawScale(n, strength, gen);
    auto displacement = drawDisplacement(n, x.size(2), x.size(3), strength, gen);
    // rotate samples x at R·p, zoom that at S·p, elastic that at p + d(p): together x at R·S·(p + d(p)).
    // Grid rows are coordinates as row vectors, so they are multiplied by (R·S)ᵀ = scale·[[cos, sin], [−sin, cos]].
    return sampleGrid(x, warpGrid(displacement, torch::cos(angle) * scale, torch::sin(angle) * scale));
}

torch::Tensor heavy(const torch::Tensor& x, double strength, at::Generator& gen) {
    auto y = geometric(x, strength, gen);
    y = hedJitter(y, strength, gen);
    y = brightness(y, strength, gen);
    y = contrast(y, strength, gen);
    return gaussianNoise(y, strength, gen);
}

} // namespace nic::augment

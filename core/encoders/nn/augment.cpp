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

/// elastic's draw: the identity sampling grid of x plus a smooth random displacement, [N, H, W, 2].
torch::Tensor drawDeformedGrid(const torch::Tensor& x, double strength, at::Generator& gen) {
    const auto n = x.size(0), h = x.size(2), w = x.size(3);
    // Normalised coordinates span 2 units per side, so 2.5 % of the side is 0.05.
    auto coarse = torch::randn({n, 2, 8, 8}, gen, torch::kFloat) * (0.05 * strength);
    auto field = F::interpolate(coarse, F::InterpolateFuncOptions()
                                            .size(std::vector<std::int64_t>{h, w})
                                            .mode(torch::kBilinear)
                                            .align_corners(true));
    auto identity = torch::zeros({n, 2, 3});
    identity.select(1, 0).select(1, 0).fill_(1.0);
    identity.select(1, 1).select(1, 1).fill_(1.0);
    return F::affine_grid(identity, x.sizes().vec(), false) + field.permute({0, 2, 3, 1});
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
    return sampleGrid(x, drawDeformedGrid(x, strength, gen));
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
    auto od = -torch::log(x.clamp_min(1.0 / 255.0)).permute({0, 2, 3, 1}).reshape({n, h * w, 3}); // [N, HW, 3]
    auto alpha = 1.0 + (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.2 * strength);
    auto beta = (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.05 * strength);
    // (od·HED⁻¹·diag(α) + β)·HED per image, as one 3 × 3 matrix and one offset: od·M + b, a single pass.
    auto m = torch::matmul(hedFromRgb.unsqueeze(0) * alpha.view({n, 1, 3}), rgbFromHed); // [N, 3, 3]
    auto b = torch::matmul(beta.view({n, 1, 3}), rgbFromHed);                             // [N, 1, 3]
    auto od2 = torch::baddbmm(b, od, m).view({n, h, w, 3});
    return torch::exp(-od2).permute({0, 3, 1, 2}).clamp(0.0, 1.0).contiguous().to(x.dtype());
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
    const auto n = x.size(0), h = x.size(2), w = x.size(3);
    // The draws of rotate, zoom and elastic, in their order.
    auto angle = drawAngle(n, strength, gen);
    auto scale = drawScale(n, strength, gen);
    auto deformed = drawDeformedGrid(x, strength, gen);
    // rotate samples x at R·p, zoom that at S·p, elastic that at p + d(p): together x at R·S·(p + d(p)).
    // Grid rows are coordinates as row vectors, so they are multiplied by (R·S)ᵀ = scale·Rᵀ.
    auto c = torch::cos(angle) * scale, s = torch::sin(angle) * scale;
    auto mt = torch::stack({torch::stack({c, s}, 1), torch::stack({-s, c}, 1)}, 1); // [N, 2, 2] = (R·S)ᵀ
    return sampleGrid(x, torch::matmul(deformed.view({n, h * w, 2}), mt).view({n, h, w, 2}));
}

torch::Tensor heavy(const torch::Tensor& x, double strength, at::Generator& gen) {
    auto y = geometric(x, strength, gen);
    y = hedJitter(y, strength, gen);
    y = brightness(y, strength, gen);
    y = contrast(y, strength, gen);
    return gaussianNoise(y, strength, gen);
}

} // namespace nic::augment

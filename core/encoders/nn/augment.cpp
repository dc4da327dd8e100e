#include "core/encoders/nn/augment.h"

#include "core/base/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <vector>

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
    return F::grid_sample(x, grid.to(x.options()),
                          F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kReflection).align_corners(false))
        .clamp(0.0, 1.0);
}

torch::Tensor sampleAffine(const torch::Tensor& x, const torch::Tensor& theta) {
    return sampleGrid(x, F::affine_grid(theta.to(x.options()), x.sizes().vec(), false));
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
/// The 8 × 8 control values of that field, [N, 2, 8, 8].
torch::Tensor drawCoarseDisplacement(std::int64_t n, double strength, at::Generator& gen) {
    // Normalised coordinates span 2 units per side, so 2.5 % of the side is 0.05.
    return torch::randn({n, 2, 8, 8}, gen, torch::kFloat) * (0.05 * strength);
}
/// The field at every pixel: the control values interpolated bilinearly (align_corners = true).
torch::Tensor upsampleDisplacement(const torch::Tensor& coarse, std::int64_t h, std::int64_t w) {
    return F::interpolate(coarse, F::InterpolateFuncOptions()
                                      .size(std::vector<std::int64_t>{h, w})
                                      .mode(torch::kBilinear)
                                      .align_corners(true));
}
torch::Tensor drawDisplacement(std::int64_t n, std::int64_t h, std::int64_t w, double strength, at::Generator& gen) {
    return upsampleDisplacement(drawCoarseDisplacement(n, strength, gen), h, w);
}

/// geometric's draws (those of rotate, zoom and elastic, in their order) as the warp's per-image a = cos·scale,
/// b = sin·scale and the displacement's control values. rotate samples x at R·p, zoom that at S·p, elastic that
/// at p + d(p): together x at R·S·(p + d(p)); grid rows are coordinates as row vectors, so they are multiplied
/// by (R·S)ᵀ = scale·[[cos, sin], [−sin, cos]].
struct GeometricDraw {
    torch::Tensor a, b, coarse;
};
GeometricDraw drawGeometric(std::int64_t n, double strength, at::Generator& gen) {
    auto angle = drawAngle(n, strength, gen);
    auto scale = drawScale(n, strength, gen);
    auto coarse = drawCoarseDisplacement(n, strength, gen);
    return {torch::cos(angle) * scale, torch::sin(angle) * scale, coarse};
}

/// The normalised coordinates of `size` pixel centres (align_corners = false, as affine_grid gives them).
torch::Tensor pixelCentres(std::int64_t size, torch::Device device) {
    return (torch::arange(size, torch::TensorOptions(torch::kFloat).device(device)) * 2.0 + 1.0) /
               static_cast<double>(size) -
           1.0;
}

/// The sampling grid [N, H, W, 2] that takes each pixel centre p to (p + d(p)) · [[a, b], [−b, a]] (p as a row
/// vector; a, b per image, [N]; d = `displacement`, [N, 2, H, W]). Element-wise: as a batched matmul it ran
/// as N small GEMMs of K = 2, several times slower.
torch::Tensor warpGrid(const torch::Tensor& displacement, const torch::Tensor& a, const torch::Tensor& b) {
    const auto n = displacement.size(0), h = displacement.size(2), w = displacement.size(3);
    const auto dev = displacement.device();
    const auto px = displacement.select(1, 0) + pixelCentres(w, dev).view({1, 1, w});
    const auto py = displacement.select(1, 1) + pixelCentres(h, dev).view({1, h, 1});
    const auto av = a.to(dev).view({n, 1, 1}), bv = b.to(dev).view({n, 1, 1});
    return torch::stack({px * av - py * bv, px * bv + py * av}, 3);
}

/// grid_sample's reflection for align_corners = false: the coordinate (in pixels) mirrored about −0.5 and
/// size − 0.5 until it lies inside, then clipped to [0, size − 1] (as ATen's reflect_coordinates and
/// clip_coordinates do).
inline float reflectIntoImage(float v, std::int64_t size) {
    const float span = static_cast<float>(size);
    v = std::fabs(v + 0.5F);
    if (!(v < 16777216.0F)) // NaN, infinite or beyond float's integers: no defined mirror image; the corner
        return 0.0F;
    if (v > span) { // mirrored at least once (extra is fmod(v, span), without fmod's cost per sample)
        const auto flips = static_cast<std::int64_t>(v / span); // v > 0: truncation is floor (no libm call)
        const float extra = v - static_cast<float>(flips) * span;
        v = (flips % 2 == 0) ? extra : span - extra;
    }
    return std::min(span - 1.0F, std::max(v - 0.5F, 0.0F));
}

/// geometric's warp in one pass per image, without the intermediate tensors of interpolate → warpGrid →
/// grid_sample (a displacement field, a pixel-centre grid, the sampling grid and a clamp, each a full pass
/// over the batch; 20 ms of the 45 ms that making a supervised batch of 64 took). For each output pixel
/// centre p: d(p) bilinear (align_corners = true) from the 8 × 8 field `coarse`, q = (p + d(p)) ·
/// [[a, b], [−b, a]], then x sampled at q bilinearly with reflection at the borders (align_corners = false),
/// clamped to [0, 1]. The same arithmetic as the ATen ops up to float rounding (Augment test
/// FusedWarpEqualsTheTensorOps). x: float [N, C, H, W]; coarse [N, 2, 8, 8]; a, b [N].
torch::Tensor warpBilinearReflect(const torch::Tensor& input, const torch::Tensor& coarseIn, const torch::Tensor& aIn,
                                  const torch::Tensor& bIn) {
    const auto x = input.to(torch::kFloat).contiguous();
    const auto coarse = coarseIn.to(torch::kFloat).contiguous();
    const auto av = aIn.to(torch::kFloat).contiguous(), bv = bIn.to(torch::kFloat).contiguous();
    const std::int64_t n = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
    const std::int64_t ch = coarse.size(2), cw = coarse.size(3);
    auto out = torch::empty_like(x);
    const float* src = x.data_ptr<float>();
    const float* field = coarse.data_ptr<float>();
    const float* as = av.data_ptr<float>();
    const float* bs = bv.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    // Source positions of bilinear upsampling with align_corners = true: index and weight of the upper
    // neighbour, per output row and column (as upsample_bilinear2d computes them).
    struct Tap {
        std::int64_t i0, i1;
        float l0, l1;
    };
    auto taps = [](std::int64_t in, std::int64_t outSize) {
        std::vector<Tap> t(static_cast<std::size_t>(outSize));
        const float scale = outSize > 1 ? static_cast<float>(in - 1) / static_cast<float>(outSize - 1) : 0.0F;
        for (std::int64_t o = 0; o < outSize; ++o) {
            const float real = scale * static_cast<float>(o);
            const auto i0 = std::min(static_cast<std::int64_t>(real), in - 1);
            const float l1 = real - static_cast<float>(i0);
            t[static_cast<std::size_t>(o)] = {i0, i0 < in - 1 ? i0 + 1 : i0, 1.0F - l1, l1};
        }
        return t;
    };
    const auto rowTaps = taps(ch, h), colTaps = taps(cw, w);
    std::vector<float> cx(static_cast<std::size_t>(w)), cy(static_cast<std::size_t>(h));
    for (std::int64_t j = 0; j < w; ++j)
        cx[static_cast<std::size_t>(j)] = (static_cast<float>(j) * 2.0F + 1.0F) / static_cast<float>(w) - 1.0F;
    for (std::int64_t i = 0; i < h; ++i)
        cy[static_cast<std::size_t>(i)] = (static_cast<float>(i) * 2.0F + 1.0F) / static_cast<float>(h) - 1.0F;
    const std::int64_t plane = h * w;
    at::parallel_for(0, n, 1, [&](std::int64_t first, std::int64_t last) {
        // The field interpolated along x for each of its rows: [2][ch][w].
        std::vector<float> alongX(static_cast<std::size_t>(2 * ch * w));
        // The image with its channels interleaved (H, W, C): a sample's four neighbours in all channels are
        // then in two or four cache lines instead of one to two per channel.
        std::vector<float> hwc(static_cast<std::size_t>(channels * plane));
        for (std::int64_t k = first; k < last; ++k) {
            const float* f = field + k * 2 * ch * cw;
            for (std::int64_t c = 0; c < 2 * ch; ++c)
                for (std::int64_t j = 0; j < w; ++j) {
                    const Tap& t = colTaps[static_cast<std::size_t>(j)];
                    alongX[static_cast<std::size_t>(c * w + j)] = t.l0 * f[c * cw + t.i0] + t.l1 * f[c * cw + t.i1];
                }
            const float a = as[k], b = bs[k];
            const float* planar = src + k * channels * plane;
            for (std::int64_t c = 0; c < channels; ++c)
                for (std::int64_t p = 0; p < plane; ++p)
                    hwc[static_cast<std::size_t>(p * channels + c)] = planar[c * plane + p];
            const float* img = hwc.data();
            float* o = dst + k * channels * plane;
            const float halfW = static_cast<float>(w) * 0.5F, halfH = static_cast<float>(h) * 0.5F;
            for (std::int64_t i = 0; i < h; ++i) {
                const Tap& r = rowTaps[static_cast<std::size_t>(i)];
                const float* dx0 = alongX.data() + r.i0 * w;
                const float* dx1 = alongX.data() + r.i1 * w;
                const float* dy0 = alongX.data() + (ch + r.i0) * w;
                const float* dy1 = alongX.data() + (ch + r.i1) * w;
                const float py0 = cy[static_cast<std::size_t>(i)];
                for (std::int64_t j = 0; j < w; ++j) {
                    const float px = r.l0 * dx0[j] + r.l1 * dx1[j] + cx[static_cast<std::size_t>(j)];
                    const float py = r.l0 * dy0[j] + r.l1 * dy1[j] + py0;
                    const float gx = px * a - py * b, gy = px * b + py * a;
                    const float ix = reflectIntoImage((gx + 1.0F) * halfW - 0.5F, w);
                    const float iy = reflectIntoImage((gy + 1.0F) * halfH - 0.5F, h);
                    const auto x0 = static_cast<std::int64_t>(ix), y0 = static_cast<std::int64_t>(iy); // ix, iy >= 0
                    const float wx1 = ix - static_cast<float>(x0), wy1 = iy - static_cast<float>(y0);
                    const float wx0 = 1.0F - wx1, wy0 = 1.0F - wy1;
                    const std::int64_t x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1); // weight 0 when clipped
                    const float* v00 = img + (y0 * w + x0) * channels;
                    const float* v01 = img + (y0 * w + x1) * channels;
                    const float* v10 = img + (y1 * w + x0) * channels;
                    const float* v11 = img + (y1 * w + x1) * channels;
                    for (std::int64_t c = 0; c < channels; ++c) {
                        const float v = wy0 * (wx0 * v00[c] + wx1 * v01[c]) + wy1 * (wx0 * v10[c] + wx1 * v11[c]);
                        o[c * plane + i * w + j] = std::min(1.0F, std::max(v, 0.0F));
                    }
                }
            }
        }
    });
    return out.to(input.dtype());
}

/// Standard normal values of shape `sizes` from one 64-bit draw of `gen`. torch::randn draws every value's
/// uniforms serially from the generator's Mersenne twister (normal_ was a quarter to a third of making a
/// batch, with one CPU busy and the other waiting). Here uniform pairs come from a counter-based hash
/// (splitmix64's mixer over key + (i + 1)·γ), written in parallel, and Box–Muller runs as LibTorch's
/// vectorised log, sqrt, cos and sin: the first half of the values are R·cos θ and the second half R·sin θ of
/// the same pairs, which are independent.
std::uint64_t drawKey(at::Generator& gen) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get<at::CPUGeneratorImpl>()->random64();
}

/// Box–Muller on the uniform pairs u [2, pairs] (u[0] in (0, 1], u[1] in [0, 1), consumed): `n` values, R·cos θ
/// for the first half and R·sin θ of the same pairs for the second, shaped `sizes`.
torch::Tensor boxMuller(torch::Tensor& u, std::int64_t n, at::IntArrayRef sizes) {
    const std::int64_t pairs = u.size(1);
    auto radius = u[0].log_().mul_(-2.0).sqrt_();
    auto theta = u[1].mul_(2.0 * M_PI);
    auto out = torch::empty({2 * pairs}, u.options());
    auto first = out.narrow(0, 0, pairs), second = out.narrow(0, pairs, pairs);
    torch::cos_out(first, theta).mul_(radius);
    torch::sin_out(second, theta).mul_(radius);
    return out.narrow(0, 0, n).view(sizes);
}

torch::Tensor standardNormal(at::IntArrayRef sizes, at::Generator& gen) {
    const std::uint64_t key = drawKey(gen);
    const std::int64_t n = c10::multiply_integers(sizes);
    const std::int64_t pairs = (n + 1) / 2;
    auto u = torch::empty({2, pairs}, torch::kFloat);
    float* u1 = u.data_ptr<float>();
    float* u2 = u1 + pairs;
    at::parallel_for(0, pairs, 1 << 14, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t i = first; i < last; ++i) {
            std::uint64_t z = key + static_cast<std::uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z ^= z >> 31;
            constexpr float kUnit = 1.0F / 16777216.0F; // 2^-24
            u1[i] = static_cast<float>((z >> 40) + 1) * kUnit;          // (0, 1]: log stays finite
            u2[i] = static_cast<float>((z >> 16) & 0xFFFFFFU) * kUnit; // [0, 1)
        }
    });
    return boxMuller(u, n, sizes);
}

/// standardNormal with LibTorch's tensor operations on `device` (a GPU: the loop above needs the CPU): the same
/// key from `gen`, the same hash in 64-bit integer tensors (wrapping products; shifts made logical by a mask),
/// so the same uniforms bit for bit and the same values up to the rounding of log, cos and sin.
torch::Tensor standardNormalWithTensorOps(at::IntArrayRef sizes, at::Generator& gen, torch::Device device) {
    const auto key = static_cast<std::int64_t>(drawKey(gen));
    const std::int64_t n = c10::multiply_integers(sizes);
    const std::int64_t pairs = (n + 1) / 2;
    auto shiftedRight = [](const torch::Tensor& z, int bits) {
        return torch::bitwise_right_shift(z, bits).bitwise_and_((std::int64_t{1} << (64 - bits)) - 1);
    };
    auto mixed = [&](const torch::Tensor& z, int bits, std::uint64_t factor) {
        return z.bitwise_xor(shiftedRight(z, bits)).mul_(static_cast<std::int64_t>(factor));
    };
    auto z = torch::arange(1, pairs + 1, torch::TensorOptions(torch::kLong).device(device))
                 .mul_(static_cast<std::int64_t>(0x9E3779B97F4A7C15ULL))
                 .add_(key);
    z = mixed(z, 30, 0xBF58476D1CE4E5B9ULL);
    z = mixed(z, 27, 0x94D049BB133111EBULL);
    z = z.bitwise_xor(shiftedRight(z, 31));
    constexpr double kUnit = 1.0 / 16777216.0; // 2^-24
    auto u = torch::stack({shiftedRight(z, 40).add_(1).to(torch::kFloat).mul_(kUnit),
                           shiftedRight(z, 16).bitwise_and_(0xFFFFFF).to(torch::kFloat).mul_(kUnit)});
    return boxMuller(u, n, sizes);
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
    return sampleAffine(x, theta);
}

torch::Tensor zoom(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "zoom");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    auto scale = drawScale(n, strength, gen);
    auto z = torch::zeros({n});
    auto theta = torch::stack({torch::stack({scale, z, z}, 1), torch::stack({z, scale, z}, 1)}, 1);
    return sampleAffine(x, theta);
}

torch::Tensor elastic(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "elastic");
    if (strength == 0.0)
        return x.clone();
    const auto n = x.size(0);
    return sampleGrid(x, warpGrid(drawDisplacement(n, x.size(2), x.size(3), strength, gen).to(x.device()),
                                  torch::ones({n}), torch::zeros({n})));
}

namespace {

// The colour steps, written to make few passes over the batch (heavy() runs them on its own intermediate, in
// place): each full-batch pass costs ~1 ms per 64 patches of 128²; the plain formulas made 17 passes, these 13.

/// hedJitter's result, as a new tensor. od = −log x and the result exp(−(Mᵀ·od + bᵀ)) = exp(Mᵀ·log x − bᵀ):
/// the negations fold into the small matrices.
torch::Tensor hedJitterTo(const torch::Tensor& x, double strength, at::Generator& gen) {
    const auto n = x.size(0);
    // Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in scikit-image.
    auto rgbFromHed = torch::tensor({0.65f, 0.70f, 0.29f, 0.07f, 0.99f, 0.11f, 0.27f, 0.57f, 0.78f}).view({3, 3});
    rgbFromHed = rgbFromHed / rgbFromHed.norm(2, 1, true);
    auto hedFromRgb = torch::inverse(rgbFromHed);
    const auto h = x.size(2), w = x.size(3);
    auto logX = x.to(torch::kFloat).clamp_min(1.0 / 255.0).log_().reshape({n, 3, h * w}); // [N, 3, HW], planar
    auto alpha = 1.0 + (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.2 * strength);
    auto beta = (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.05 * strength);
    // (od·HED⁻¹·diag(α) + β)·HED per image, as one 3 × 3 matrix and one offset: od·M + b, a single pass, done
    // on the planar channels as Mᵀ·od + bᵀ (no transposing copies of the image).
    auto m = torch::matmul(hedFromRgb.unsqueeze(0) * alpha.view({n, 1, 3}), rgbFromHed); // [N, 3, 3]
    auto b = torch::matmul(beta.view({n, 1, 3}), rgbFromHed);                             // [N, 1, 3]
    const auto dev = x.device();
    auto y = torch::baddbmm(-b.transpose(1, 2).to(dev), m.transpose(1, 2).to(dev), logX).view({n, 3, h, w});
    return y.exp_().clamp_(0.0, 1.0).to(x.dtype());
}

void brightnessInPlace(torch::Tensor& y, double strength, at::Generator& gen) {
    if (strength == 0.0)
        return;
    y.add_(symmetric(y.size(0), 0.2 * strength, gen).to(y.device()).view({-1, 1, 1, 1})).clamp_(0.0, 1.0);
}

/// (y − m)·f + m as y·f + m·(1 − f): one pass after the mean.
void contrastInPlace(torch::Tensor& y, double strength, at::Generator& gen) {
    if (strength == 0.0)
        return;
    auto mean = y.mean({1, 2, 3}, true);
    auto factor = 1.0 + symmetric(y.size(0), 0.4 * strength, gen).to(y.device()).view({-1, 1, 1, 1});
    y.mul_(factor).add_(mean * (1.0 - factor)).clamp_(0.0, 1.0);
}

/// tensorOps: the noise from standardNormalWithTensorOps (as it is on a GPU in any case).
void gaussianNoiseInPlace(torch::Tensor& y, double strength, at::Generator& gen, bool tensorOps = false) {
    if (strength == 0.0)
        return;
    auto sigma = (torch::rand({y.size(0), 1, 1, 1}, gen, torch::kFloat) * (0.05 * strength)).to(y.device());
    const auto noise = tensorOps || !y.device().is_cpu() ? standardNormalWithTensorOps(y.sizes(), gen, y.device())
                                                         : standardNormal(y.sizes(), gen);
    y.addcmul_(noise.to(y.dtype()), sigma).clamp_(0.0, 1.0);
}

} // namespace

torch::Tensor hedJitter(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "hedJitter");
    if (strength == 0.0)
        return x.clone();
    return hedJitterTo(x, strength, gen);
}

torch::Tensor brightness(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "brightness");
    auto y = x.clone();
    brightnessInPlace(y, strength, gen);
    return y;
}

torch::Tensor contrast(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "contrast");
    auto y = x.clone();
    contrastInPlace(y, strength, gen);
    return y;
}

torch::Tensor gaussianNoise(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "gaussianNoise");
    auto y = x.clone();
    gaussianNoiseInPlace(y, strength, gen);
    return y;
}

torch::Tensor geometric(const torch::Tensor& x, double strength, at::Generator& gen) {
    if (!x.device().is_cpu())
        return geometricWithTensorOps(x, strength, gen);
    check(x, strength, "geometric");
    if (strength == 0.0)
        return x.clone();
    const auto d = drawGeometric(x.size(0), strength, gen);
    return warpBilinearReflect(x, d.coarse, d.a, d.b);
}

torch::Tensor geometricWithTensorOps(const torch::Tensor& x, double strength, at::Generator& gen) {
    check(x, strength, "geometric");
    if (strength == 0.0)
        return x.clone();
    const auto d = drawGeometric(x.size(0), strength, gen);
    return sampleGrid(x, warpGrid(upsampleDisplacement(d.coarse.to(x.device()), x.size(2), x.size(3)), d.a, d.b));
}

namespace {

/// heavy's colour steps after the warp y, in place where they can be.
torch::Tensor colourSteps(torch::Tensor y, double strength, at::Generator& gen, bool tensorOps) {
    y = hedJitterTo(y, strength, gen);
    brightnessInPlace(y, strength, gen);
    contrastInPlace(y, strength, gen);
    gaussianNoiseInPlace(y, strength, gen, tensorOps);
    return y;
}

} // namespace

torch::Tensor heavy(const torch::Tensor& x, double strength, at::Generator& gen) {
    auto y = geometric(x, strength, gen); // checks x and strength; on a GPU, with tensor operations
    return strength == 0.0 ? y : colourSteps(std::move(y), strength, gen, false);
}

torch::Tensor heavyWithTensorOps(const torch::Tensor& x, double strength, at::Generator& gen) {
    auto y = geometricWithTensorOps(x, strength, gen); // checks x and strength
    return strength == 0.0 ? y : colourSteps(std::move(y), strength, gen, true);
}

} // namespace nic::augment

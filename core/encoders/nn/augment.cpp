#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/augmentkernels.h"

#include "core/base/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
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
/// elastic's field for a batch on `device`: drawn on the generator's CPU, interpolated on the device (so only the
/// 8 × 8 control values travel to a GPU).
torch::Tensor drawDisplacement(std::int64_t n, std::int64_t h, std::int64_t w, double strength, at::Generator& gen,
                               torch::Device device) {
    return upsampleDisplacement(drawCoarseDisplacement(n, strength, gen).to(device), h, w);
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

/// One output row of geometric's warp: the displacement field's two interpolated rows for x and for y (weights
/// l0, l1), the pixel centres, the image (H, W, C interleaved), where the row's first output pixel goes in
/// channel 0 of the planar output (planes `plane` apart), and the image's transform.
struct WarpRow {
    const float *dx0, *dx1, *dy0, *dy1, *cx, *img;
    float* out;
    float l0, l1, py0, a, b, halfW, halfH;
    std::int64_t w, h, plane;
};

/// The row's output pixels from `first` on, one at a time.
void warpRowScalar(const WarpRow& r, std::int64_t channels, std::int64_t first) {
    const std::int64_t w = r.w, h = r.h;
    for (std::int64_t j = first; j < w; ++j) {
        const float px = r.l0 * r.dx0[j] + r.l1 * r.dx1[j] + r.cx[j];
        const float py = r.l0 * r.dy0[j] + r.l1 * r.dy1[j] + r.py0;
        const float gx = px * r.a - py * r.b, gy = px * r.b + py * r.a;
        const float ix = reflectIntoImage((gx + 1.0F) * r.halfW - 0.5F, w);
        const float iy = reflectIntoImage((gy + 1.0F) * r.halfH - 0.5F, h);
        const auto x0 = static_cast<std::int64_t>(ix), y0 = static_cast<std::int64_t>(iy); // ix, iy >= 0
        const float wx1 = ix - static_cast<float>(x0), wy1 = iy - static_cast<float>(y0);
        const float wx0 = 1.0F - wx1, wy0 = 1.0F - wy1;
        const std::int64_t x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1); // weight 0 when clipped
        const float* v00 = r.img + (y0 * w + x0) * channels;
        const float* v01 = r.img + (y0 * w + x1) * channels;
        const float* v10 = r.img + (y1 * w + x0) * channels;
        const float* v11 = r.img + (y1 * w + x1) * channels;
        for (std::int64_t c = 0; c < channels; ++c) {
            const float v = wy0 * (wx0 * v00[c] + wx1 * v01[c]) + wy1 * (wx0 * v10[c] + wx1 * v11[c]);
            r.out[c * r.plane + j] = std::min(1.0F, std::max(v, 0.0F));
        }
    }
}

std::atomic<bool> gVectorWarp{true};
std::atomic<bool> gVectorColour{true}; // the colour steps' AVX-512 loop (useVectorLoops)

bool cpuHasAvx512() {
#if defined(__x86_64__)
    static const bool has = __builtin_cpu_supports("avx512f");
    return has;
#else
    return false;
#endif
}

#if defined(__x86_64__)
/// reflectIntoImage for 16 coordinates, with the same operations in the same order (so the same results).
__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) inline __m512 reflectIntoImage16(__m512 v, std::int64_t size) {
    const __m512 span = _mm512_set1_ps(static_cast<float>(size));
    const __m512 zero = _mm512_setzero_ps();
    v = _mm512_abs_ps(_mm512_add_ps(v, _mm512_set1_ps(0.5F)));
    const __mmask16 finite = _mm512_cmp_ps_mask(v, _mm512_set1_ps(16777216.0F), _CMP_LT_OQ); // else the corner, 0
    const __mmask16 mirrored = _mm512_cmp_ps_mask(v, span, _CMP_GT_OQ);
    const __m512i flips = _mm512_maskz_cvttps_epi32(kAll, _mm512_div_ps(v, span));
    const __m512 extra = _mm512_sub_ps(v, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll, flips), span));
    const __mmask16 odd = _mm512_test_epi32_mask(flips, _mm512_set1_epi32(1));
    const __m512 folded = _mm512_mask_sub_ps(extra, odd, span, extra);
    v = _mm512_mask_mov_ps(v, mirrored & finite, folded);
    v = _mm512_mask_max_ps(v, kAll, _mm512_sub_ps(v, _mm512_set1_ps(0.5F)), zero);
    v = _mm512_mask_min_ps(v, kAll, _mm512_sub_ps(span, _mm512_set1_ps(1.0F)), v);
    return _mm512_maskz_mov_ps(finite, v);
}

/// The row's output pixels 16 at a time, for 3 channels: the same arithmetic as warpRowScalar, the four
/// neighbours of each channel gathered. Returns how many pixels it wrote (a multiple of 16).
__attribute__((target("avx512f") NIC_NO_FMA_CONTRACTION)) std::int64_t warpRowAvx512(const WarpRow& r) {
    const std::int64_t w = r.w, h = r.h, full = w / 16 * 16;
    const __m512 l0 = _mm512_set1_ps(r.l0), l1 = _mm512_set1_ps(r.l1), py0 = _mm512_set1_ps(r.py0);
    const __m512 a = _mm512_set1_ps(r.a), b = _mm512_set1_ps(r.b), one = _mm512_set1_ps(1.0F);
    const __m512 halfW = _mm512_set1_ps(r.halfW), halfH = _mm512_set1_ps(r.halfH), half = _mm512_set1_ps(0.5F);
    const __m512i lastX = _mm512_set1_epi32(static_cast<int>(w - 1)), lastY = _mm512_set1_epi32(static_cast<int>(h - 1));
    const __m512i width = _mm512_set1_epi32(static_cast<int>(w)), three = _mm512_set1_epi32(3);
    const __m512i oneI = _mm512_set1_epi32(1);
    for (std::int64_t j = 0; j < full; j += 16) {
        const __m512 px = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(l0, _mm512_loadu_ps(r.dx0 + j)),
                                                      _mm512_mul_ps(l1, _mm512_loadu_ps(r.dx1 + j))),
                                        _mm512_loadu_ps(r.cx + j));
        const __m512 py = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(l0, _mm512_loadu_ps(r.dy0 + j)),
                                                      _mm512_mul_ps(l1, _mm512_loadu_ps(r.dy1 + j))),
                                        py0);
        const __m512 gx = _mm512_sub_ps(_mm512_mul_ps(px, a), _mm512_mul_ps(py, b));
        const __m512 gy = _mm512_add_ps(_mm512_mul_ps(px, b), _mm512_mul_ps(py, a));
        const __m512 ix = reflectIntoImage16(_mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(gx, one), halfW), half), w);
        const __m512 iy = reflectIntoImage16(_mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(gy, one), halfH), half), h);
        const __m512i x0 = _mm512_maskz_cvttps_epi32(kAll, ix), y0 = _mm512_maskz_cvttps_epi32(kAll, iy);
        const __m512 wx1 = _mm512_sub_ps(ix, _mm512_maskz_cvtepi32_ps(kAll, x0)), wy1 = _mm512_sub_ps(iy, _mm512_maskz_cvtepi32_ps(kAll, y0));
        const __m512 wx0 = _mm512_sub_ps(one, wx1), wy0 = _mm512_sub_ps(one, wy1);
        const __m512i x1 = _mm512_maskz_min_epi32(kAll, _mm512_add_epi32(x0, oneI), lastX);
        const __m512i y1 = _mm512_maskz_min_epi32(kAll, _mm512_add_epi32(y0, oneI), lastY);
        const __m512i row0 = _mm512_mullo_epi32(y0, width), row1 = _mm512_mullo_epi32(y1, width);
        const __m512i i00 = _mm512_mullo_epi32(_mm512_add_epi32(row0, x0), three);
        const __m512i i01 = _mm512_mullo_epi32(_mm512_add_epi32(row0, x1), three);
        const __m512i i10 = _mm512_mullo_epi32(_mm512_add_epi32(row1, x0), three);
        const __m512i i11 = _mm512_mullo_epi32(_mm512_add_epi32(row1, x1), three);
        for (int c = 0; c < 3; ++c) {
            const float* base = r.img + c;
            const __m512 v00 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kAll, i00, base, 4), v01 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kAll, i01, base, 4);
            const __m512 v10 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kAll, i10, base, 4), v11 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kAll, i11, base, 4);
            const __m512 top = _mm512_add_ps(_mm512_mul_ps(wx0, v00), _mm512_mul_ps(wx1, v01));
            const __m512 bottom = _mm512_add_ps(_mm512_mul_ps(wx0, v10), _mm512_mul_ps(wx1, v11));
            __m512 v = _mm512_add_ps(_mm512_mul_ps(wy0, top), _mm512_mul_ps(wy1, bottom));
            // max then min with the operands in std::max/std::min's roles, so that NaN goes where it does there.
            v = _mm512_mask_min_ps(v, kAll, _mm512_mask_max_ps(v, kAll, _mm512_setzero_ps(), v), one);
            _mm512_storeu_ps(r.out + c * r.plane + j, v);
        }
    }
    return full;
}
#else
std::int64_t warpRowAvx512(const WarpRow&) { return 0; }
#endif

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
    // The vector loop indexes the interleaved image with 32-bit lanes.
    const bool vectorWarp = channels == 3 && plane * 3 < (std::int64_t{1} << 31) && cpuHasAvx512() &&
                            gVectorWarp.load(std::memory_order_relaxed);
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
                const WarpRow row{dx0, dx1, dy0, dy1, cx.data(), img, o + i * w, r.l0, r.l1, py0, a, b, halfW, halfH, w, h, plane};
                std::int64_t j = 0;
                if (vectorWarp)
                    j = warpRowAvx512(row);
                warpRowScalar(row, channels, j);
            }
        }
    });
    return out.to(input.dtype());
}

std::uint64_t drawKey(at::Generator& gen) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get<at::CPUGeneratorImpl>()->random64();
}

/// normalQuantiles() as a tensor on `device`: the table itself on the CPU; on a GPU a copy made once per device
/// and kept for the process (never freed, so that no GPU memory is released after CUDA has shut down at exit).
torch::Tensor normalQuantilesOn(torch::Device device) {
    const auto& quantiles = normalQuantiles();
    const auto table = torch::from_blob(const_cast<float*>(quantiles.data()),
                                        {static_cast<std::int64_t>(quantiles.size())}, torch::kFloat);
    if (device.is_cpu())
        return table;
    static std::mutex mutex;
    static auto* copies = new std::map<std::string, torch::Tensor>();
    std::lock_guard<std::mutex> lock(mutex);
    auto& copy = (*copies)[device.str()];
    if (!copy.defined())
        copy = table.to(device);
    return copy;
}

/// Standard normal values of shape `sizes` from one 64-bit draw of `gen`. torch::randn draws every value's
/// uniforms serially from the generator's Mersenne twister (normal_ was a quarter to a third of making a
/// batch, with one CPU busy and the other waiting), and Box–Muller's log, sqrt, cos and sin after a
/// counter-based hash still took 14 ms per batch of 64 on one core. Here each 64 bits of the hash (key and
/// counter, computed in parallel) are four 16-bit indices into normalQuantiles(): four values per hash and
/// no transcendental functions. Values k·4 … k·4 + 3 come from the k-th hash.
torch::Tensor standardNormal(at::IntArrayRef sizes, at::Generator& gen) {
    const std::uint64_t key = drawKey(gen);
    const std::int64_t n = c10::multiply_integers(sizes);
    const std::int64_t groups = (n + 3) / 4;
    const float* table = normalQuantiles().data();
    auto out = torch::empty({4 * groups}, torch::kFloat);
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, groups, 1 << 13, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t g = first; g < last; ++g) {
            const std::uint64_t z = hashed(key, static_cast<std::uint64_t>(g));
            float* d = dst + 4 * g;
            d[0] = table[z & 0xFFFFU];
            d[1] = table[(z >> 16) & 0xFFFFU];
            d[2] = table[(z >> 32) & 0xFFFFU];
            d[3] = table[z >> 48];
        }
    });
    return out.narrow(0, 0, n).view(sizes);
}

/// standardNormal with LibTorch's tensor operations on `device` (a GPU: the loop above needs the CPU): the same
/// key from `gen`, the same hash in 64-bit integer tensors (wrapping products; shifts made logical by a mask)
/// and the same table, so the same values bit for bit.
torch::Tensor standardNormalWithTensorOps(at::IntArrayRef sizes, at::Generator& gen, torch::Device device) {
    const auto key = static_cast<std::int64_t>(drawKey(gen));
    const std::int64_t n = c10::multiply_integers(sizes);
    const std::int64_t groups = (n + 3) / 4;
    auto shiftedRight = [](const torch::Tensor& z, int bits) {
        return torch::bitwise_right_shift(z, bits).bitwise_and_((std::int64_t{1} << (64 - bits)) - 1);
    };
    auto mixed = [&](const torch::Tensor& z, int bits, std::uint64_t factor) {
        return z.bitwise_xor(shiftedRight(z, bits)).mul_(static_cast<std::int64_t>(factor));
    };
    auto z = torch::arange(1, groups + 1, torch::TensorOptions(torch::kLong).device(device))
                 .mul_(static_cast<std::int64_t>(kGamma))
                 .add_(key);
    z = mixed(z, kShift1, kMultiply1);
    z = mixed(z, kShift2, kMultiply2);
    z = z.bitwise_xor(shiftedRight(z, kShift3));
    const auto index = torch::stack({z.bitwise_and(0xFFFF), shiftedRight(z, 16).bitwise_and_(0xFFFF),
                                     shiftedRight(z, 32).bitwise_and_(0xFFFF), shiftedRight(z, 48)},
                                    1)
                           .view({-1});
    return normalQuantilesOn(device).index_select(0, index).narrow(0, 0, n).view(sizes);
}

} // namespace

bool hasVectorLoops() { return cpuHasAvx512(); }

void useVectorLoops(bool on) {
    gVectorWarp.store(on);
    gVectorColour.store(on);
}

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
    return sampleGrid(x, warpGrid(drawDisplacement(n, x.size(2), x.size(3), strength, gen, x.device()), torch::ones({n}),
                                  torch::zeros({n})));
}

namespace {

// The colour steps, written to make few passes over the batch (heavy() runs them on its own intermediate, in
// place): each full-batch pass costs ~1 ms per 64 patches of 128²; the plain formulas made 17 passes, these 13.

/// hedJitter's draws for n images as one 3 × 3 matrix and one offset per image, m [N, 3, 3] and b [N, 1, 3]: the
/// jittered image is exp(Σₖ m[k][c]·log xₖ − b[c]) in channel c. With od = −log x that is
/// exp(−((od·HED⁻¹·diag(α) + β)·HED)) (the negations fold into the small matrices).
struct HedDraw {
    torch::Tensor m, b;
};
HedDraw drawHed(std::int64_t n, double strength, at::Generator& gen) {
    // Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in scikit-image.
    auto rgbFromHed = torch::tensor({0.65f, 0.70f, 0.29f, 0.07f, 0.99f, 0.11f, 0.27f, 0.57f, 0.78f}).view({3, 3});
    rgbFromHed = rgbFromHed / rgbFromHed.norm(2, 1, true);
    auto hedFromRgb = torch::inverse(rgbFromHed);
    auto alpha = 1.0 + (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.2 * strength);
    auto beta = (torch::rand({n, 1, 1, 3}, gen, torch::kFloat) * 2.0 - 1.0) * (0.05 * strength);
    return {torch::matmul(hedFromRgb.unsqueeze(0) * alpha.view({n, 1, 3}), rgbFromHed),
            torch::matmul(beta.view({n, 1, 3}), rgbFromHed)};
}

/// hedJitter's result, as a new tensor: on the planar channels as mᵀ·log x − bᵀ (no transposing copies).
torch::Tensor hedJitterTo(const torch::Tensor& x, double strength, at::Generator& gen) {
    const auto n = x.size(0), h = x.size(2), w = x.size(3);
    const HedDraw d = drawHed(n, strength, gen);
    auto logX = x.to(torch::kFloat).clamp_min(1.0 / 255.0).log_().reshape({n, 3, h * w}); // [N, 3, HW], planar
    const auto dev = x.device();
    auto y = torch::baddbmm(-d.b.transpose(1, 2).to(dev), d.m.transpose(1, 2).to(dev), logX).view({n, 3, h, w});
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

/// heavy's colour steps (HED, brightness, contrast, noise) on a contiguous float CPU batch [N, 3, H, W]: the draws of
/// hedJitterTo, brightnessInPlace, contrastInPlace and gaussianNoiseInPlace in their order, then two passes per image.
torch::Tensor colourStepsFused(const torch::Tensor& x, double strength, at::Generator& gen) {
    const std::int64_t n = x.size(0), plane = x.size(2) * x.size(3), perImage = 3 * plane;
    const HedDraw hed = drawHed(n, strength, gen);
    const auto brightness = symmetric(n, 0.2 * strength, gen);
    const auto factor = 1.0 + symmetric(n, 0.4 * strength, gen);
    const auto sigma = torch::rand({n}, gen, torch::kFloat) * (0.05 * strength);
    const std::uint64_t key = drawKey(gen);
    std::vector<ColourParams> params(static_cast<std::size_t>(n));
    {
        const auto m = hed.m.contiguous(), b = hed.b.contiguous();
        const auto br = brightness.contiguous(), f = factor.to(torch::kFloat).contiguous(), s = sigma.contiguous();
        for (std::int64_t k = 0; k < n; ++k) {
            ColourParams& q = params[static_cast<std::size_t>(k)];
            std::copy_n(m.data_ptr<float>() + 9 * k, 9, q.m);
            std::copy_n(b.data_ptr<float>() + 3 * k, 3, q.b);
            q.brightness = br.data_ptr<float>()[k];
            q.contrast = f.data_ptr<float>()[k];
            q.sigma = s.data_ptr<float>()[k];
        }
    }
    auto out = torch::empty_like(x);
    const float* src = x.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    const bool vector = cpuHasAvx512() && gVectorColour.load(std::memory_order_relaxed);
    at::parallel_for(0, n, 1, [&](std::int64_t first, std::int64_t last) {
        std::vector<float> noise;
        for (std::int64_t k = first; k < last; ++k)
            colourImage(params[static_cast<std::size_t>(k)], src + k * perImage, dst + k * perImage, plane, key,
                        k * perImage, vector, noise);
    });
    return out;
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
    // Without AVX-512 LibTorch's vectorised operators beat the scalar loops (heavy took 50–55 ms with the scalar
    // loops against 7–10 ms for the operators' colour steps, per batch of 64 patches of 128²); the scalar loops then
    // run only when a test asks for them (useVectorLoops(false)).
    const bool loops = cpuHasAvx512() || !gVectorColour.load(std::memory_order_relaxed);
    if (!tensorOps && loops && y.device().is_cpu() && y.scalar_type() == torch::kFloat && y.is_contiguous())
        return colourStepsFused(y, strength, gen);
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

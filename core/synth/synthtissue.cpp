#include "core/synth/synthtissue.h"

#include "core/base/error.h"

#include <algorithm>
#include <vector>

namespace nic::synth {

namespace {

// Stain optical densities per unit amount (R, G, B), chosen so that typical amounts give H&E-like
// colours: eosin pink-magenta, hematoxylin blue-purple.
constexpr float kHem[3] = {0.62f, 0.75f, 0.30f};
constexpr float kEos[3] = {0.15f, 0.85f, 0.45f};
// Light through bare glass.
constexpr float kLight[3] = {242.0f, 241.0f, 243.0f};

constexpr float kPi = 3.14159265f;

// Texture scales in µm and amounts; the tumour background is scaled further by the calibration.
constexpr float kStromaEosin = 0.70f;
constexpr float kStromaHem = 0.10f;
constexpr float kTumourEosin = 0.42f;
constexpr float kTumourHem = 0.04f;
constexpr float kNucleusEosin = 0.12f;

struct GridSpec {
    PixelClass cls;
    float cellUm;
    float reachUm; // the farthest a nucleus reaches from its centre
    std::uint32_t salt;
};
constexpr GridSpec kNormalGrid{kNormal, 12.0f, 8.5f, 0x4e4f524dU};
constexpr GridSpec kTumourGrid{kTumour, 9.5f, 8.5f, 0x54554d52U};

// Seeds of the individual noise layers, derived from the texture seed.
struct Seeds {
    std::uint32_t fibreA, fibreB, warp, density, gap, tumourMottle, cluster, grain, nuclei;
    explicit Seeds(std::uint32_t s)
        : fibreA(mix32(s ^ 0x1001U)), fibreB(mix32(s ^ 0x1002U)), warp(mix32(s ^ 0x1003U)),
          density(mix32(s ^ 0x1004U)), gap(mix32(s ^ 0x1005U)), tumourMottle(mix32(s ^ 0x1006U)),
          cluster(mix32(s ^ 0x1007U)), grain(mix32(s ^ 0x1008U)), nuclei(mix32(s ^ 0x1009U)) {}
};

// Collagen: fibre bundles whose direction is constant within a 120-µm cell and varies smoothly from cell
// to cell. Each cell contributes noise stretched 10:1 along its direction; the four nearest cells are
// blended (variance-preserving), and a domain warp makes the fibres wavy.
constexpr float kBundleCellUm = 120.0f;

struct BundleCells {
    std::int64_t ci0 = 0, cj0 = 0;
    int nx = 0, ny = 0;
    std::vector<float> cosT, sinT;
    void build(double x0um, double y0um, double x1um, double y1um, std::uint32_t seed) {
        ci0 = static_cast<std::int64_t>(std::floor(x0um / kBundleCellUm - 0.5)) - 1;
        cj0 = static_cast<std::int64_t>(std::floor(y0um / kBundleCellUm - 0.5)) - 1;
        nx = static_cast<int>(static_cast<std::int64_t>(std::floor(x1um / kBundleCellUm - 0.5)) + 3 - ci0);
        ny = static_cast<int>(static_cast<std::int64_t>(std::floor(y1um / kBundleCellUm - 0.5)) + 3 - cj0);
        cosT.resize(static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny));
        sinT.resize(cosT.size());
        for (int j = 0; j < ny; ++j)
            for (int i = 0; i < nx; ++i) {
                const float t = 3.0f * kPi *
                                valueNoise(static_cast<float>(ci0 + i) * 0.22f, static_cast<float>(cj0 + j) * 0.22f, seed);
                cosT[static_cast<std::size_t>(j * nx + i)] = std::cos(t);
                sinT[static_cast<std::size_t>(j * nx + i)] = std::sin(t);
            }
    }
    std::size_t at(std::int64_t i, std::int64_t j) const {
        return static_cast<std::size_t>((j - cj0) * nx + (i - ci0));
    }
};

// Fibre value in [0, 1] at a point (µm); `dirCos/dirSin` receive the dominant fibre direction.
inline float fibres(float ux, float uy, const BundleCells& cells, const Seeds& s, float* dirCos = nullptr,
                    float* dirSin = nullptr) {
    const float gx = ux / kBundleCellUm - 0.5f, gy = uy / kBundleCellUm - 0.5f;
    const float fx0 = std::floor(gx), fy0 = std::floor(gy);
    const auto ci = static_cast<std::int64_t>(fx0), cj = static_cast<std::int64_t>(fy0);
    float tx = gx - fx0, ty = gy - fy0;
    tx = tx * tx * (3.0f - 2.0f * tx);
    ty = ty * ty * (3.0f - 2.0f * ty);
    const float w[4] = {(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty};
    const float warp = (valueNoise(ux * (1.0f / 14.0f), uy * (1.0f / 14.0f), s.warp) - 0.5f) * 7.0f;
    float sum = 0.0f, norm = 0.0f, best = -1.0f;
    for (int k = 0; k < 4; ++k) {
        const std::size_t c = cells.at(ci + (k & 1), cj + (k >> 1));
        const float co = cells.cosT[c], si = cells.sinT[c];
        const float u = ux * co + uy * si;
        const float v = -ux * si + uy * co + warp;
        sum += w[k] * (valueNoise(u * (1.0f / 24.0f), v * (1.0f / 2.4f), s.fibreA) - 0.5f);
        norm += w[k] * w[k];
        if (w[k] > best && dirCos) {
            best = w[k];
            *dirCos = co;
            *dirSin = si;
        }
    }
    return 0.5f + 1.25f * sum / std::sqrt(norm);
}

inline float regionalDensity(float ux, float uy, const Seeds& s) {
    return 0.82f + 0.36f * valueNoise(ux * (1.0f / 180.0f), uy * (1.0f / 180.0f), s.density);
}

// Eosin and hematoxylin amounts of normal stroma at a point (µm).
inline void stroma(float ux, float uy, const BundleCells& cells, const Seeds& s, float& hem, float& eos) {
    const float f = fibres(ux, uy, cells, s);
    const float fib = smoothstep(0.35f, 0.75f, f);
    const float cleft = 1.0f - smoothstep(0.12f, 0.3f, f);
    const float dens = regionalDensity(ux, uy, s);
    eos = kStromaEosin * dens * (0.55f + 0.6f * fib) * (1.0f - 0.7f * cleft);
    hem = kStromaHem * dens;
}

// Pale cytoplasm of tumour cells with faint membranes where two cells meet (Voronoi edges of the
// tumour nucleus grid: F2 - F1 small).
inline void tumourBackground(float ux, float uy, const Seeds& s, float& hem, float& eos) {
    const float cell = 9.5f; // = kTumourGrid.cellUm
    const auto ci = static_cast<std::int64_t>(std::floor(ux / cell));
    const auto cj = static_cast<std::int64_t>(std::floor(uy / cell));
    float f1 = 1e9f, f2 = 1e9f;
    for (std::int64_t j = cj - 1; j <= cj + 1; ++j)
        for (std::int64_t i = ci - 1; i <= ci + 1; ++i) {
            const std::uint32_t h0 = hash2(i, j, s.nuclei ^ 0x54554d52U);
            const float cx = (static_cast<float>(i) + 0.1f + 0.8f * unitFloat(mix32(h0 + 1U * 0x9E3779B9U))) * cell;
            const float cy = (static_cast<float>(j) + 0.1f + 0.8f * unitFloat(mix32(h0 + 2U * 0x9E3779B9U))) * cell;
            const float d = (ux - cx) * (ux - cx) + (uy - cy) * (uy - cy);
            if (d < f1) {
                f2 = f1;
                f1 = d;
            } else if (d < f2) {
                f2 = d;
            }
        }
    const float membrane = 1.0f - smoothstep(0.0f, 1.4f, std::sqrt(f2) - std::sqrt(f1));
    const float m = valueNoise(ux * (1.0f / 5.0f), uy * (1.0f / 5.0f), s.tumourMottle);
    const float dens = regionalDensity(ux, uy, s);
    eos = kTumourEosin * dens * (0.8f + 0.35f * m + 0.45f * membrane);
    hem = kTumourHem * dens * (0.85f + 0.3f * m);
}

struct Nucleus {
    float cx, cy;     // centre, µm
    float a, b;       // semi-axes, µm
    float cosT, sinT; // orientation
    float hem;
    std::uint32_t seed;
    bool nucleolus = false;
    float nu = 0, nv = 0, nr = 0; // nucleolus centre in nucleus coordinates (µm) and radius
};

// The nucleus of grid cell (i, j), if the cell has one. Pure function of (seed, grid, i, j).
inline bool makeNucleus(std::int64_t i, std::int64_t j, const GridSpec& g, const Seeds& s, const BundleCells& cells,
                        Nucleus& n) {
    const std::uint32_t h0 = hash2(i, j, s.nuclei ^ g.salt);
    auto r = [h0](std::uint32_t k) { return unitFloat(mix32(h0 + k * 0x9E3779B9U)); };
    const float cell = g.cellUm;
    n.cx = (static_cast<float>(i) + 0.1f + 0.8f * r(1)) * cell;
    n.cy = (static_cast<float>(j) + 0.1f + 0.8f * r(2)) * cell;
    n.seed = mix32(h0 ^ 0xABCDU);
    float angle;
    if (g.cls == kNormal) {
        if (r(0) >= 0.55f)
            return false;
        if (r(3) < 0.55f) {
            // Fibroblast: a spindle along the local fibre direction (iso-lines of the fibre field).
            n.a = 3.8f + 2.4f * r(4);
            n.b = 1.3f + 0.5f * r(5);
            float co = 1.0f, si = 0.0f;
            fibres(n.cx, n.cy, cells, s, &co, &si);
            angle = std::atan2(si, co) + (r(6) - 0.5f) * 0.4f;
            n.hem = 0.85f + 0.3f * r(7);
        } else {
            // Lymphocyte-like: small, round, dark.
            n.a = 2.2f + 0.8f * r(4);
            n.b = n.a * (0.85f + 0.15f * r(5));
            angle = r(6) * kPi;
            n.hem = 1.0f + 0.3f * r(7);
        }
    } else {
        // Tumour: crowded in nests (cluster noise), large and pleomorphic, some with a nucleolus.
        const float cluster = valueNoise(n.cx * (1.0f / 45.0f), n.cy * (1.0f / 45.0f), s.cluster);
        const float p = 0.35f + 0.55f * smoothstep(0.25f, 0.6f, cluster);
        if (r(0) >= p)
            return false;
        const float gauss = (r(4) + r(8) + r(9) - 1.5f) * 2.0f;
        n.a = std::clamp(3.3f * std::exp(0.28f * gauss), 2.2f, 6.8f);
        n.b = n.a * (0.6f + 0.4f * r(5));
        angle = r(6) * kPi;
        n.hem = 0.75f + 0.3f * r(7); // large vesicular nuclei: not darker than normal ones
        if (r(10) < 0.45f) {
            n.nucleolus = true;
            n.nu = (r(11) - 0.5f) * 0.6f * n.a;
            n.nv = (r(12) - 0.5f) * 0.6f * n.b;
            n.nr = 0.45f + 0.35f * r(13);
        }
    }
    n.cosT = std::cos(angle);
    n.sinT = std::sin(angle);
    return true;
}

struct CalibrationResult {
    std::array<float, 3> scale;
    std::array<double, 3> normalMean, tumourMean;
};

// Texture statistics are physical (µm), so one calibration sampled at 1 µm/px serves every mpp.
constexpr double kCalibrationMpp = 1.0;

} // namespace

struct TissueTexture::Buffers {
    std::vector<float> bgOD;  // 3 per pixel, already scaled by density
    std::vector<float> nucA;  // nucleus coverage
    std::vector<float> nucOD; // 3 per pixel, already scaled by density
    void reset(std::size_t n) {
        bgOD.assign(3 * n, 0.0f);
        nucA.assign(n, 0.0f);
        nucOD.assign(3 * n, 0.0f);
    }
};

TissueTexture::TissueTexture(double mpp, std::uint32_t seed) : mpp_(mpp), seed_(seed) {
    if (!(mpp >= 0.05 && mpp <= 10.0))
        throw InvalidArgument("synthetic texture: mpp must be in [0.05, 10], got " + std::to_string(mpp));
    static const CalibrationResult calibration = [] {
        TissueTexture t(kCalibrationMpp, 0x5EEDCA1BU, Uncalibrated{});
        t.calibrate();
        return CalibrationResult{t.tumourScale_, t.normalMean_, t.tumourMean_};
    }(); // thread-safe, once per process
    tumourScale_ = calibration.scale;
    normalMean_ = calibration.normalMean;
    tumourMean_ = calibration.tumourMean;
}

void TissueTexture::shade(std::int64_t x0, std::int64_t y0, int w, int h, const std::uint8_t* cls,
                          const float* density, Buffers& buf) const {
    const Seeds s(seed_);
    const std::size_t n = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
    buf.reset(n);
    const float mpp = static_cast<float>(mpp_);
    bool anyNormal = false, anyTumour = false;
    const double x0um = static_cast<double>(x0) * mpp_, y0um = static_cast<double>(y0) * mpp_;
    const double x1um = static_cast<double>(x0 + w) * mpp_, y1um = static_cast<double>(y0 + h) * mpp_;
    BundleCells cells;
    cells.build(x0um - 30.0, y0um - 30.0, x1um + 30.0, y1um + 30.0, s.fibreB);

    for (int py = 0; py < h; ++py) {
        const float uy = (static_cast<float>(y0 + py) + 0.5f) * mpp;
        for (int px = 0; px < w; ++px) {
            const std::size_t i = static_cast<std::size_t>(py) * static_cast<std::size_t>(w) + static_cast<std::size_t>(px);
            if (cls[i] == kGlass)
                continue;
            const float ux = (static_cast<float>(x0 + px) + 0.5f) * mpp;
            float hem, eos;
            float* od = &buf.bgOD[3 * i];
            if (cls[i] == kNormal) {
                anyNormal = true;
                stroma(ux, uy, cells, s, hem, eos);
                for (int c = 0; c < 3; ++c)
                    od[c] = density[i] * (hem * kHem[c] + eos * kEos[c]);
            } else {
                anyTumour = true;
                tumourBackground(ux, uy, s, hem, eos);
                for (int c = 0; c < 3; ++c)
                    od[c] = density[i] * tumourScale_[static_cast<std::size_t>(c)] * (hem * kHem[c] + eos * kEos[c]);
            }
        }
    }

    // Nuclei: every cell whose nucleus can reach the region, in a fixed (row-major) order so that the
    // result of overlaps does not depend on the region.
    for (const GridSpec* g : {&kNormalGrid, &kTumourGrid}) {
        if ((g->cls == kNormal && !anyNormal) || (g->cls == kTumour && !anyTumour))
            continue;
        const auto i0 = static_cast<std::int64_t>(std::floor((x0um - g->reachUm) / g->cellUm));
        const auto i1 = static_cast<std::int64_t>(std::floor((x1um + g->reachUm) / g->cellUm));
        const auto j0 = static_cast<std::int64_t>(std::floor((y0um - g->reachUm) / g->cellUm));
        const auto j1 = static_cast<std::int64_t>(std::floor((y1um + g->reachUm) / g->cellUm));
        for (std::int64_t j = j0; j <= j1; ++j) {
            for (std::int64_t i = i0; i <= i1; ++i) {
                Nucleus nu;
                if (!makeNucleus(i, j, *g, s, cells, nu))
                    continue;
                const float reach = nu.a * 1.15f + mpp;
                const auto bx0 = std::max<std::int64_t>(x0, static_cast<std::int64_t>(std::floor((nu.cx - reach) / mpp)));
                const auto bx1 = std::min<std::int64_t>(x0 + w - 1, static_cast<std::int64_t>(std::ceil((nu.cx + reach) / mpp)));
                const auto by0 = std::max<std::int64_t>(y0, static_cast<std::int64_t>(std::floor((nu.cy - reach) / mpp)));
                const auto by1 = std::min<std::int64_t>(y0 + h - 1, static_cast<std::int64_t>(std::ceil((nu.cy + reach) / mpp)));
                const float edgePx = nu.b / mpp;
                const std::uint32_t shapeSeed = mix32(nu.seed ^ 1U), chromSeed = mix32(nu.seed ^ 2U);
                for (std::int64_t y = by0; y <= by1; ++y) {
                    const float uy = (static_cast<float>(y) + 0.5f) * mpp;
                    for (std::int64_t x = bx0; x <= bx1; ++x) {
                        const std::size_t idx = static_cast<std::size_t>(y - y0) * static_cast<std::size_t>(w) +
                                                static_cast<std::size_t>(x - x0);
                        if (cls[idx] != g->cls)
                            continue;
                        const float ux = (static_cast<float>(x) + 0.5f) * mpp;
                        const float dx = ux - nu.cx, dy = uy - nu.cy;
                        const float u = dx * nu.cosT + dy * nu.sinT;
                        const float v = -dx * nu.sinT + dy * nu.cosT;
                        const float q = (u * u) / (nu.a * nu.a) + (v * v) / (nu.b * nu.b);
                        if (q > 1.44f)
                            continue;
                        const float d = std::sqrt(q) *
                                        (1.0f + 0.16f * (valueNoise(ux * (1.0f / 1.8f), uy * (1.0f / 1.8f), shapeSeed) - 0.5f));
                        const float alpha = std::clamp((1.0f - d) * edgePx + 0.5f, 0.0f, 1.0f);
                        if (alpha <= buf.nucA[idx])
                            continue;
                        float hem = nu.hem * (0.75f + 0.45f * valueNoise(ux * (1.0f / 1.1f), uy * (1.0f / 1.1f), chromSeed));
                        hem *= 1.0f + 0.3f * smoothstep(0.7f, 1.0f, d);
                        if (nu.nucleolus) {
                            const float du = u - nu.nu, dv = v - nu.nv;
                            if (du * du + dv * dv < nu.nr * nu.nr)
                                hem += 0.6f;
                        }
                        buf.nucA[idx] = alpha;
                        for (int c = 0; c < 3; ++c)
                            buf.nucOD[3 * idx + static_cast<std::size_t>(c)] =
                                density[idx] * (hem * kHem[c] + kNucleusEosin * kEos[c]);
                    }
                }
            }
        }
    }
}

void TissueTexture::render(std::int64_t x0, std::int64_t y0, int w, int h, const std::uint8_t* cls,
                           const float* density, std::uint8_t* out, std::size_t outStride) const {
    thread_local Buffers buf;
    shade(x0, y0, w, h, cls, density, buf);
    const Seeds s(seed_);
    for (int py = 0; py < h; ++py) {
        std::uint8_t* o = out + static_cast<std::size_t>(py) * outStride;
        for (int px = 0; px < w; ++px) {
            const std::size_t i = static_cast<std::size_t>(py) * static_cast<std::size_t>(w) + static_cast<std::size_t>(px);
            // Scanner noise, zero mean, so it does not move mean colours.
            const float grain = (unitFloat(hash2(x0 + px, y0 + py, s.grain)) - 0.5f) * 4.0f;
            const float a = buf.nucA[i];
            for (int c = 0; c < 3; ++c) {
                float v;
                if (cls[i] == kGlass) {
                    v = kLight[c] + 0.6f * grain;
                } else {
                    v = kLight[c] * std::exp(-buf.bgOD[3 * i + static_cast<std::size_t>(c)]);
                    if (a > 0.0f)
                        v += a * (kLight[c] * std::exp(-buf.nucOD[3 * i + static_cast<std::size_t>(c)]) - v);
                    v += grain;
                }
                o[3 * px + c] = static_cast<std::uint8_t>(std::clamp(v + 0.5f, 0.0f, 255.0f));
            }
        }
    }
}

void TissueTexture::calibrate() {
    // Render well-separated areas of pure normal and pure tumour texture; pick for each channel the tumour
    // background OD scale that makes the tumour mean equal the normal mean.
    tumourScale_ = {1.0f, 1.0f, 1.0f};
    const int side = std::max(64, static_cast<int>(std::lround(200.0 / mpp_)));
    const int regions = 16;
    const std::size_t n = static_cast<std::size_t>(side) * static_cast<std::size_t>(side);
    std::vector<float> density(n, 1.0f);
    std::array<double, 3> normalSum{};
    std::vector<float> tAlpha, tBg, tNuc; // tumour components over all regions
    tAlpha.reserve(n * regions);
    tBg.reserve(3 * n * regions);
    tNuc.reserve(3 * n * regions);
    Buffers buf;
    for (int r = 0; r < regions; ++r) {
        const std::int64_t x0 = 1000 + static_cast<std::int64_t>(r % 4) * 5 * side;
        const std::int64_t y0 = 1000 + static_cast<std::int64_t>(r / 4) * 5 * side;
        std::vector<std::uint8_t> cls(n, kNormal);
        shade(x0, y0, side, side, cls.data(), density.data(), buf);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 0; c < 3; ++c) {
                const double bg = kLight[c] * std::exp(-static_cast<double>(buf.bgOD[3 * i + c]));
                const double nu = kLight[c] * std::exp(-static_cast<double>(buf.nucOD[3 * i + c]));
                normalSum[c] += bg + buf.nucA[i] * (nu - bg);
            }
        std::fill(cls.begin(), cls.end(), kTumour);
        shade(x0, y0 + 3 * side, side, side, cls.data(), density.data(), buf);
        tAlpha.insert(tAlpha.end(), buf.nucA.begin(), buf.nucA.end());
        tBg.insert(tBg.end(), buf.bgOD.begin(), buf.bgOD.end());
        tNuc.insert(tNuc.end(), buf.nucOD.begin(), buf.nucOD.end());
    }
    const double total = static_cast<double>(n) * regions;
    auto tumourMean = [&](std::size_t c, double k) {
        double sum = 0;
        for (std::size_t i = 0; i < tAlpha.size(); ++i) {
            const double bg = kLight[c] * std::exp(-k * tBg[3 * i + c]);
            const double nu = kLight[c] * std::exp(-static_cast<double>(tNuc[3 * i + c]));
            sum += bg + tAlpha[i] * (nu - bg);
        }
        return sum / total;
    };
    for (std::size_t c = 0; c < 3; ++c) {
        normalMean_[c] = normalSum[c] / total;
        // Newton on k (the mean is smooth, decreasing and convex in k).
        double k = 1.0;
        for (int it = 0; it < 8; ++it) {
            double sum = 0, deriv = 0;
            for (std::size_t i = 0; i < tAlpha.size(); ++i) {
                const double od = tBg[3 * i + c];
                const double bg = kLight[c] * std::exp(-k * od);
                const double nu = kLight[c] * std::exp(-static_cast<double>(tNuc[3 * i + c]));
                sum += bg + tAlpha[i] * (nu - bg);
                deriv -= (1.0 - tAlpha[i]) * od * bg;
            }
            const double f = sum / total - normalMean_[c];
            if (std::abs(f) < 0.01 || deriv >= 0)
                break;
            k = std::clamp(k - f / (deriv / total), 0.0, 4.0);
        }
        tumourScale_[c] = static_cast<float>(k);
        tumourMean_[c] = tumourMean(c, k);
    }
}

} // namespace nic::synth

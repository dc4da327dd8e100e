#include "core/synth/synth.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/synth/synthtissue.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <numbers>
#include <numeric>
#include <random>
#include <thread>

namespace nic {

namespace {

using synth::mix32;
using synth::valueNoise;

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// Deterministic generator for the layout (not for pixels). Own arithmetic, so results do not depend
// on the standard library's distributions.
class Rng {
public:
    explicit Rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next() { return splitmix64(s_++ * 0x2545F4914F6CDD1DULL + 0x632BE59BD9B4E019ULL); }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double uniform(double a, double b) { return a + (b - a) * uniform(); }

private:
    std::uint64_t s_;
};

double smoothstepD(double a, double b, double x) {
    double t = std::clamp((x - a) / (b - a), 0.0, 1.0);
    return t * t * (3.0 - 2.0 * t);
}

// Runs the tiles of one row on worker threads while the caller encodes the previous row; the caller
// joins in with the remaining tiles when it waits. One batch at a time.
class TilePool {
public:
    explicit TilePool(int threads) {
        for (int t = 0; t < threads; ++t)
            workers_.emplace_back([this] { loop(); });
    }
    ~TilePool() {
        {
            std::lock_guard lock(m_);
            stop_ = true;
            next_ = count_;
        }
        cv_.notify_all();
        for (auto& w : workers_)
            w.join();
    }
    TilePool(const TilePool&) = delete;
    TilePool& operator=(const TilePool&) = delete;

    void start(int count, std::function<void(int)> fn) {
        {
            std::lock_guard lock(m_);
            fn_ = std::move(fn);
            count_ = count;
            next_ = 0;
            pending_ = count;
            error_ = nullptr;
        }
        cv_.notify_all();
    }

    // Helps with unclaimed tasks, waits for the rest, rethrows the first task error.
    void wait() {
        for (;;) {
            int i;
            {
                std::lock_guard lock(m_);
                if (next_ >= count_)
                    break;
                i = next_++;
            }
            run(i);
        }
        std::unique_lock lock(m_);
        done_.wait(lock, [this] { return pending_ == 0; });
        if (error_) {
            auto e = error_;
            error_ = nullptr;
            std::rethrow_exception(e);
        }
    }

private:
    void loop() {
        std::unique_lock lock(m_);
        for (;;) {
            cv_.wait(lock, [this] { return stop_ || next_ < count_; });
            if (next_ >= count_)
                return; // stop_
            const int i = next_++;
            lock.unlock();
            run(i);
            lock.lock();
        }
    }
    void run(int i) {
        std::exception_ptr err;
        try {
            fn_(i);
        } catch (...) {
            err = std::current_exception();
        }
        std::lock_guard lock(m_);
        if (err && !error_)
            error_ = err;
        if (--pending_ == 0)
            done_.notify_all();
    }

    std::mutex m_;
    std::condition_variable cv_, done_;
    std::function<void(int)> fn_;
    int count_ = 0, next_ = 0, pending_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
    std::vector<std::thread> workers_;
};

constexpr double kLesionHarmonic = 0.3; // Σ_k kLesionHarmonic / k over k = 2..5 bounds the radius wobble
constexpr double kLesionMaxWobble = 1.4;

} // namespace

// The slide's geometry: a smooth random "tissue field" sampled on a node grid (spacing ~16 µm) and
// interpolated bilinearly, plus a fine perturbation for ragged edges; tissue is field > threshold.
struct SynthSlide::Layout {
    std::int64_t width = 0, height = 0;
    double mpp = 0.5;
    double extent = 0;     // max(width, height): the largest islands scale with the slide
    double nodeStep = 32;  // level-0 px between field nodes
    int octaves = 3;
    std::uint32_t octaveSeed[16] = {};
    std::uint32_t holeSeed = 0, pertSeedA = 0, pertSeedB = 0, warpSeedX = 0, warpSeedY = 0;
    double threshold = 0;
    double pertAmp = 0;    // amplitude of the perturbation (field units)
    double fade = 0;       // the stain ramps up over this many field units inside the edge

    double nodeValue(std::int64_t i, std::int64_t j) const {
        const double x = static_cast<double>(i) * nodeStep, y = static_cast<double>(j) * nodeStep;
        double sx = x / extent, sy = y / extent;
        // Domain warp: organic outlines instead of the blobby look of plain value noise.
        const double wx = valueNoise<double>(sx * 3.0, sy * 3.0, warpSeedX) - 0.5;
        const double wy = valueNoise<double>(sx * 3.0, sy * 3.0, warpSeedY) - 0.5;
        sx += 0.4 * wx;
        sy += 0.4 * wy;
        double v = 0.0, amp = 1.0, freq = 3.0;
        for (int o = 0; o < octaves; ++o) {
            v += amp * (valueNoise<double>(sx * freq, sy * freq, octaveSeed[o]) - 0.5);
            amp *= 0.5;
            freq *= 2.0;
        }
        // Glass along the border: a rounded-rectangle (superellipse) vignette, so islands near the border
        // are rounded rather than cut straight.
        const double ex = std::abs(2.0 * x / static_cast<double>(width) - 1.0);
        const double ey = std::abs(2.0 * y / static_cast<double>(height) - 1.0);
        const double r = std::sqrt(std::sqrt(ex * ex * ex * ex + ey * ey * ey * ey)) + 0.3 * (wx + wy);
        v -= 1.5 * smoothstepD(0.65, 0.95, r);
        const double hole = valueNoise<double>(x * mpp / 220.0, y * mpp / 220.0, holeSeed);
        v -= 3.0 * std::max(0.0, hole - 0.84);
        return v;
    }

    double perturbation(double x, double y) const {
        const double ux = x * mpp, uy = y * mpp;
        return pertAmp * (valueNoise<double>(ux / 9.0, uy / 9.0, pertSeedA) - 0.5 +
                          0.5 * (valueNoise<double>(ux / 3.5, uy / 3.5, pertSeedB) - 0.5));
    }

    // The one formula deciding tissue and stain amount at a level-0 point, given its four nodes.
    // Returns the class (glass or normal) and sets density.
    std::uint8_t classifyPoint(double x, double y, double n00, double n10, double n01, double n11, float& density) const {
        const double gx = x / nodeStep, gy = y / nodeStep;
        const double tx = gx - std::floor(gx), ty = gy - std::floor(gy);
        const double top = n00 + (n10 - n00) * tx, bottom = n01 + (n11 - n01) * tx;
        double d = top + (bottom - top) * ty - threshold;
        // The perturbation stays within ±0.75·pertAmp, so far from the edge it cannot change the result.
        if (d < -pertAmp) {
            density = 0.0f;
            return synth::kGlass;
        }
        if (d <= fade + pertAmp)
            d += perturbation(x, y);
        if (d <= 0.0) {
            density = 0.0f;
            return synth::kGlass;
        }
        density = static_cast<float>(0.35 + 0.65 * smoothstepD(0.0, fade, d));
        return synth::kNormal;
    }
};

namespace {

// Pixel centres x + 0.5 inside `poly` on the row at height y (even-odd rule), as [from, to) ranges
// appended to `spans`. The same crossings decide SynthSlide::isLesion.
void polygonCrossings(const std::vector<Point>& poly, double y, std::vector<double>& xs) {
    xs.clear();
    const std::size_t n = poly.size();
    for (std::size_t k = 0, prev = n - 1; k < n; prev = k++) {
        const Point& p = poly[prev];
        const Point& q = poly[k];
        if ((p.y > y) != (q.y > y))
            xs.push_back(p.x + (y - p.y) * (q.x - p.x) / (q.y - p.y));
    }
    std::sort(xs.begin(), xs.end());
}

// Marks lesion pixels [x0, x0 + w) of the row at level-0 height y (pixel centres x + 0.5).
void markLesionRow(const std::vector<SynthLesion>& lesions, double y, std::int64_t x0, int w, std::uint8_t* flags,
                   std::vector<double>& xs) {
    for (const auto& l : lesions) {
        if (std::abs(y - l.centerY) > l.meanRadius * kLesionMaxWobble + 1.0)
            continue;
        polygonCrossings(l.polygon, y, xs);
        for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
            // inside ⟺ xs[k] <= x + 0.5 < xs[k + 1]
            const auto from = std::max<std::int64_t>(x0, static_cast<std::int64_t>(std::ceil(xs[k] - 0.5)));
            const auto to = std::min<std::int64_t>(x0 + w, static_cast<std::int64_t>(std::ceil(xs[k + 1] - 0.5)));
            for (std::int64_t x = from; x < to; ++x)
                flags[x - x0] = 1;
        }
    }
}

} // namespace

SynthSlide::SynthSlide(const SynthSlideParams& params) : p_(params), layout_(std::make_unique<Layout>()) {
    const auto& p = p_;
    if (p.width < 64 || p.height < 64 || p.width > 2'000'000 || p.height > 2'000'000)
        throw InvalidArgument("synthetic slide size must be between 64 and 2000000 pixels per side, got " +
                              std::to_string(p.width) + "x" + std::to_string(p.height));
    if (!(p.mpp >= 0.05 && p.mpp <= 10.0))
        throw InvalidArgument("mpp must be in [0.05, 10], got " + std::to_string(p.mpp));
    if (p.lesionCount < 0 || p.lesionCount > 1000)
        throw InvalidArgument("lesion count must be in [0, 1000], got " + std::to_string(p.lesionCount));
    if (!(p.lesionMinUm > 0 && p.lesionMaxUm >= p.lesionMinUm))
        throw InvalidArgument("lesion size range must satisfy 0 < min <= max");
    if (p.tissueCoverage != 0.0 && !(p.tissueCoverage >= 0.05 && p.tissueCoverage <= 0.95))
        throw InvalidArgument("tissue coverage must be 0 (random) or in [0.05, 0.95]");

    Rng rng(splitmix64(p.seed ^ 0x5157A7E5ULL));
    Layout& L = *layout_;
    L.width = p.width;
    L.height = p.height;
    L.mpp = p.mpp;
    L.extent = static_cast<double>(std::max(p.width, p.height));
    L.nodeStep = std::max(2.0, std::round(16.0 / p.mpp));
    // Octaves down to a period of ~80 µm; finer detail comes from the perturbation and the texture.
    L.octaves = 2;
    while (L.octaves < 14 && L.extent * p.mpp / (3.0 * std::pow(2.0, L.octaves)) >= 80.0)
        ++L.octaves;
    for (auto& s : L.octaveSeed)
        s = static_cast<std::uint32_t>(rng.next());
    L.holeSeed = static_cast<std::uint32_t>(rng.next());
    L.pertSeedA = static_cast<std::uint32_t>(rng.next());
    L.pertSeedB = static_cast<std::uint32_t>(rng.next());
    L.warpSeedX = static_cast<std::uint32_t>(rng.next());
    L.warpSeedY = static_cast<std::uint32_t>(rng.next());
    const double coverage = p.tissueCoverage > 0 ? p.tissueCoverage : rng.uniform(0.20, 0.40);

    // Threshold = the quantile of the field that gives the wanted coverage; the typical gradient there
    // sets the (physical) width of ragged edges and of the stain ramp.
    const std::int64_t nodesX = static_cast<std::int64_t>(std::ceil(static_cast<double>(p.width) / L.nodeStep)) + 1;
    const std::int64_t nodesY = static_cast<std::int64_t>(std::ceil(static_cast<double>(p.height) / L.nodeStep)) + 1;
    const int samples = 200;
    std::vector<double> values, grads;
    values.reserve(samples * samples);
    grads.reserve(samples * samples);
    for (int b = 0; b < samples; ++b)
        for (int a = 0; a < samples; ++a) {
            const std::int64_t i = (nodesX - 2) * a / (samples - 1), j = (nodesY - 2) * b / (samples - 1);
            const double v = L.nodeValue(i, j);
            values.push_back(v);
            grads.push_back(std::hypot(L.nodeValue(i + 1, j) - v, L.nodeValue(i, j + 1) - v) / L.nodeStep);
        }
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    L.threshold = sorted[sz(static_cast<std::int64_t>((1.0 - coverage) * static_cast<double>(sorted.size() - 1)))];
    std::vector<std::size_t> order(values.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
        const double dx = std::abs(values[x] - L.threshold), dy = std::abs(values[y] - L.threshold);
        return dx != dy ? dx < dy : x < y;
    });
    std::vector<double> edgeGrads;
    for (std::size_t k = 0; k < order.size() / 10; ++k)
        edgeGrads.push_back(grads[order[k]]);
    std::sort(edgeGrads.begin(), edgeGrads.end());
    const double g = edgeGrads.empty() ? 1e-4 : std::max(1e-9, edgeGrads[edgeGrads.size() / 2]);
    L.pertAmp = g * (10.0 / p.mpp); // edges wander by ~±8 µm
    L.fade = g * (25.0 / p.mpp);    // stain reaches full strength ~25 µm inside the edge

    // Lesions: smooth star-shaped polygons centred deep inside tissue.
    const double minSide = static_cast<double>(std::min(p.width, p.height));
    const double maxRadius = std::max(4.0, (0.5 * minSide - 8.0) / kLesionMaxWobble);
    for (int l = 0; l < p.lesionCount; ++l) {
        const double d = std::exp(rng.uniform(std::log(p.lesionMinUm), std::log(p.lesionMaxUm)));
        const double radius = std::min(maxRadius, 0.5 * d / p.mpp);
        const double reach = radius * kLesionMaxWobble + 4.0;
        double bestX = 0.5 * static_cast<double>(p.width), bestY = 0.5 * static_cast<double>(p.height), bestScore = -1e300;
        for (int attempt = 0; attempt < 3000; ++attempt) {
            const double x = rng.uniform(reach, static_cast<double>(p.width) - reach);
            const double y = rng.uniform(reach, static_cast<double>(p.height) - reach);
            const double gx = x / L.nodeStep, gy = y / L.nodeStep;
            const auto i = static_cast<std::int64_t>(gx), j = static_cast<std::int64_t>(gy);
            const double tx = gx - static_cast<double>(i), ty = gy - static_cast<double>(j);
            const double v = (1 - ty) * ((1 - tx) * L.nodeValue(i, j) + tx * L.nodeValue(i + 1, j)) +
                             ty * ((1 - tx) * L.nodeValue(i, j + 1) + tx * L.nodeValue(i + 1, j + 1));
            double score = v - L.threshold;
            for (const auto& other : lesions_) {
                const double dist = std::hypot(x - other.centerX, y - other.centerY);
                if (dist < (radius + other.meanRadius) * kLesionMaxWobble)
                    score -= 10.0; // overlapping lesions are allowed only as a last resort
            }
            if (score > bestScore) {
                bestScore = score;
                bestX = x;
                bestY = y;
            }
            if (score > 2.0 * L.fade && attempt >= 20)
                break;
        }
        SynthLesion lesion;
        lesion.centerX = bestX;
        lesion.centerY = bestY;
        lesion.meanRadius = radius;
        double amp[6], phase[6];
        for (int k = 2; k <= 5; ++k) {
            amp[k] = rng.uniform(0.0, kLesionHarmonic / k);
            phase[k] = rng.uniform(0.0, 2.0 * std::numbers::pi);
        }
        const int n = std::clamp(static_cast<int>(2.0 * std::numbers::pi * radius / 12.0), 48, 720);
        for (int v = 0; v < n; ++v) {
            const double t = 2.0 * std::numbers::pi * v / n;
            double r = 1.0;
            for (int k = 2; k <= 5; ++k)
                r += amp[k] * std::cos(k * t + phase[k]);
            // Rounded to 1/1000 px so that the XML round trip keeps the exact polygon.
            auto q = [](double c) { return std::round(c * 1000.0) / 1000.0; };
            lesion.polygon.push_back({q(bestX + radius * r * std::cos(t)), q(bestY + radius * r * std::sin(t))});
        }
        lesions_.push_back(std::move(lesion));
    }

    texture_ = std::make_unique<synth::TissueTexture>(p.mpp, static_cast<std::uint32_t>(splitmix64(p.seed ^ 0x7E47ULL)));

    // Score on a grid of ~4M points.
    const double step = std::max(1.0, std::sqrt(static_cast<double>(p.width) * static_cast<double>(p.height) / 4e6));
    const Image tissue = mask(step, false);
    const Image lesion = lesions_.empty() ? Image() : mask(step, true);
    const auto count = [](const Image& m) {
        return static_cast<double>(std::count_if(m.pixels.begin(), m.pixels.end(), [](std::uint8_t v) { return v != 0; }));
    };
    const double t = count(tissue);
    tissueFraction_ = t / static_cast<double>(tissue.pixels.size());
    lesionFraction_ = (lesions_.empty() || t == 0) ? 0.0 : count(lesion) / t;
}

SynthSlide::~SynthSlide() = default;
SynthSlide::SynthSlide(SynthSlide&&) noexcept = default;
SynthSlide& SynthSlide::operator=(SynthSlide&&) noexcept = default;

bool SynthSlide::isLesion(double x, double y) const {
    std::vector<double> xs;
    for (const auto& l : lesions_) {
        polygonCrossings(l.polygon, y, xs);
        const auto above = std::count_if(xs.begin(), xs.end(), [x](double c) { return c > x; });
        if (above % 2 == 1)
            return true;
    }
    return false;
}

bool SynthSlide::isTissue(double x, double y) const {
    if (x < 0 || y < 0 || x >= static_cast<double>(p_.width) || y >= static_cast<double>(p_.height))
        return false;
    if (isLesion(x, y))
        return true;
    const Layout& L = *layout_;
    const auto i = static_cast<std::int64_t>(std::floor(x / L.nodeStep));
    const auto j = static_cast<std::int64_t>(std::floor(y / L.nodeStep));
    float density;
    return L.classifyPoint(x, y, L.nodeValue(i, j), L.nodeValue(i + 1, j), L.nodeValue(i, j + 1),
                           L.nodeValue(i + 1, j + 1), density) != synth::kGlass;
}

Image SynthSlide::mask(double downsample, bool lesionOnly) const {
    if (!(downsample >= 1.0))
        throw InvalidArgument("mask downsample must be >= 1, got " + std::to_string(downsample));
    const Layout& L = *layout_;
    const int w = static_cast<int>(std::ceil(static_cast<double>(p_.width) / downsample));
    const int h = static_cast<int>(std::ceil(static_cast<double>(p_.height) / downsample));
    Image out(w, h, 1);
    std::vector<double> xs;
    const std::int64_t nodesX = static_cast<std::int64_t>(std::ceil(static_cast<double>(p_.width) / L.nodeStep)) + 2;
    std::vector<double> rowA(sz(nodesX)), rowB(sz(nodesX));
    std::int64_t cachedRow = -1;
    for (int j = 0; j < h; ++j) {
        const double y = (j + 0.5) * downsample;
        std::uint8_t* o = out.row(j);
        // Lesions: even-odd crossings on this row.
        for (const auto& l : lesions_) {
            if (std::abs(y - l.centerY) > l.meanRadius * kLesionMaxWobble + 1.0)
                continue;
            polygonCrossings(l.polygon, y, xs);
            for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
                // inside ⟺ xs[k] <= (i + 0.5)·d < xs[k + 1]
                int from = std::max(0, static_cast<int>(std::ceil(xs[k] / downsample - 0.5)));
                while (from > 0 && (from - 1 + 0.5) * downsample >= xs[k])
                    --from;
                while (from < w && (from + 0.5) * downsample < xs[k])
                    ++from;
                for (int i = from; i < w && (i + 0.5) * downsample < xs[k + 1]; ++i)
                    o[i] = 255;
            }
        }
        if (lesionOnly)
            continue;
        const auto nj = static_cast<std::int64_t>(std::floor(y / L.nodeStep));
        if (nj != cachedRow) {
            if (nj == cachedRow + 1)
                rowA.swap(rowB);
            for (std::int64_t i = 0; i < nodesX; ++i) {
                if (nj != cachedRow + 1)
                    rowA[sz(i)] = L.nodeValue(i, nj);
                rowB[sz(i)] = L.nodeValue(i, nj + 1);
            }
            cachedRow = nj;
        }
        if (y >= static_cast<double>(p_.height))
            continue;
        for (int i = 0; i < w; ++i) {
            const double x = (i + 0.5) * downsample;
            if (o[i] || x >= static_cast<double>(p_.width))
                continue;
            const auto ni = sz(static_cast<std::int64_t>(std::floor(x / L.nodeStep)));
            float density;
            if (L.classifyPoint(x, y, rowA[ni], rowA[ni + 1], rowB[ni], rowB[ni + 1], density) != synth::kGlass)
                o[i] = 255;
        }
    }
    return out;
}

Image SynthSlide::tissueMask(double downsample) const { return mask(downsample, false); }
Image SynthSlide::lesionMask(double downsample) const { return mask(downsample, true); }

void SynthSlide::classify(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* cls, float* density) const {
    const Layout& L = *layout_;
    const auto ni0 = static_cast<std::int64_t>(std::floor((static_cast<double>(x0) + 0.5) / L.nodeStep));
    const auto ni1 = static_cast<std::int64_t>(std::floor((static_cast<double>(x0 + w) - 0.5) / L.nodeStep)) + 1;
    const auto nj0 = static_cast<std::int64_t>(std::floor((static_cast<double>(y0) + 0.5) / L.nodeStep));
    const auto nj1 = static_cast<std::int64_t>(std::floor((static_cast<double>(y0 + h) - 0.5) / L.nodeStep)) + 1;
    const std::int64_t nw = ni1 - ni0 + 1;
    std::vector<double> nodes(sz(nw * (nj1 - nj0 + 1)));
    for (std::int64_t j = nj0; j <= nj1; ++j)
        for (std::int64_t i = ni0; i <= ni1; ++i)
            nodes[sz((j - nj0) * nw + (i - ni0))] = L.nodeValue(i, j);

    // Lesions that reach this region.
    std::vector<SynthLesion> near;
    for (const auto& l : lesions_) {
        const double r = l.meanRadius * kLesionMaxWobble + 2.0;
        if (l.centerX + r >= static_cast<double>(x0) && l.centerX - r <= static_cast<double>(x0 + w) &&
            l.centerY + r >= static_cast<double>(y0) && l.centerY - r <= static_cast<double>(y0 + h))
            near.push_back(l);
    }
    std::vector<std::uint8_t> lesionRow(sz(w));
    std::vector<double> xs;
    for (int py = 0; py < h; ++py) {
        const double y = static_cast<double>(y0 + py) + 0.5;
        std::fill(lesionRow.begin(), lesionRow.end(), std::uint8_t{0});
        if (!near.empty())
            markLesionRow(near, y, x0, w, lesionRow.data(), xs);
        const auto nj = static_cast<std::int64_t>(std::floor(y / L.nodeStep)) - nj0;
        const double* rowA = nodes.data() + nj * nw;
        const double* rowB = rowA + nw;
        for (int px = 0; px < w; ++px) {
            const std::size_t k = sz(py) * sz(w) + sz(px);
            if (lesionRow[sz(px)]) {
                cls[k] = synth::kTumour;
                density[k] = 1.0f;
                continue;
            }
            const double x = static_cast<double>(x0 + px) + 0.5;
            const auto ni = static_cast<std::int64_t>(std::floor(x / L.nodeStep)) - ni0;
            cls[k] = L.classifyPoint(x, y, rowA[ni], rowA[ni + 1], rowB[ni], rowB[ni + 1], density[k]);
        }
    }
}

void SynthSlide::renderInto(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* out, std::size_t stride) const {
    thread_local std::vector<std::uint8_t> cls;
    thread_local std::vector<float> density;
    cls.resize(sz(w) * sz(h));
    density.resize(sz(w) * sz(h));
    classify(x0, y0, w, h, cls.data(), density.data());
    texture_->render(x0, y0, w, h, cls.data(), density.data(), out, stride);
}

Image SynthSlide::renderRegion(std::int64_t x, std::int64_t y, int w, int h) const {
    if (w <= 0 || h <= 0)
        throw InvalidArgument("renderRegion: empty region");
    Image img(w, h, 3);
    // In tiles, to keep the scratch buffers small; the result does not depend on the split.
    constexpr int kTile = 512;
    for (int ty = 0; ty < h; ty += kTile)
        for (int tx = 0; tx < w; tx += kTile)
            renderInto(x + tx, y + ty, std::min(kTile, w - tx), std::min(kTile, h - ty), img.at(tx, ty),
                       sz(w) * 3);
    return img;
}

AnnotationSet SynthSlide::annotations() const {
    AnnotationSet set;
    AnnotationGroup group;
    group.name = "Tumor";
    group.color = "#d0021b";
    set.groups.push_back(group);
    for (std::size_t i = 0; i < lesions_.size(); ++i) {
        Annotation a;
        a.name = "Annotation " + std::to_string(i);
        a.type = AnnotationType::Polygon;
        a.group = "Tumor";
        a.color = "#d0021b";
        a.coordinates = lesions_[i].polygon;
        set.annotations.push_back(std::move(a));
    }
    return set;
}

namespace {
PyramidTiffOptions tiffOptions(const SynthWriteOptions& o, double mpp, const std::filesystem::path& target = {}) {
    PyramidTiffOptions t;
    t.displayName = target;
    t.tileSize = o.tileSize;
    t.jpegQuality = o.quality;
    t.bigTiff = o.bigTiff;
    t.mpp = mpp;
    t.aperio = true;
    t.aperioSoftware = "NIC Studio synthetic";
    t.thumbnailMaxSide = o.thumbnailMaxSide;
    return t;
}
} // namespace

std::int64_t SynthSlide::writeWorkUnits(const SynthWriteOptions& options) const {
    const auto levels = PyramidTiffWriter::levelSizes(p_.width, p_.height, tiffOptions(options, p_.mpp));
    std::int64_t n = 0;
    for (const auto& l : levels)
        n += (l.height + options.tileSize - 1) / options.tileSize;
    return n;
}

void SynthSlide::write(const std::filesystem::path& path, const SynthWriteOptions& options, JobContext& ctx) const {
    write(path, options, ctx, [&ctx](std::int64_t done, std::int64_t total) { ctx.progress(done, total, "writing slide"); });
}

void SynthSlide::write(const std::filesystem::path& path, const SynthWriteOptions& options, JobContext& ctx,
                       const RowReport& report) const {
    if (options.tileSize < 16 || options.tileSize > 4096 || options.tileSize % 16 != 0)
        throw InvalidArgument("tile size must be a multiple of 16 between 16 and 4096, got " +
                              std::to_string(options.tileSize));
    if (options.threads < 0)
        throw InvalidArgument("thread count must be >= 0");
    const int threads = options.threads > 0 ? options.threads
                                            : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    const int ts = options.tileSize;
    const std::int64_t rows = (p_.height + ts - 1) / ts;
    const int tilesX = static_cast<int>((p_.width + ts - 1) / ts);
    const std::int64_t total = writeWorkUnits(options);

    AtomicFile file(path);
    PyramidTiffWriter writer(file.tempPath(), p_.width, p_.height, tiffOptions(options, p_.mpp, path));
    Image strips[2];
    TilePool pool(threads); // after the strips: destroyed (joined) before them
    auto startRow = [&](std::int64_t r) {
        Image& strip = strips[r % 2];
        const int sh = static_cast<int>(std::min<std::int64_t>(ts, p_.height - r * ts));
        if (strip.height != sh)
            strip = Image(static_cast<int>(p_.width), sh, 3);
        pool.start(tilesX, [this, &strip, r, ts, sh](int t) {
            const std::int64_t x = static_cast<std::int64_t>(t) * ts;
            const int tw = static_cast<int>(std::min<std::int64_t>(ts, p_.width - x));
            renderInto(x, r * ts, tw, sh, strip.at(static_cast<int>(x), 0), sz(p_.width) * 3);
        });
    };
    ctx.throwIfCancelled();
    startRow(0);
    pool.wait();
    for (std::int64_t r = 0; r < rows; ++r) {
        if (r + 1 < rows)
            startRow(r + 1); // rendered while this thread encodes row r
        writer.appendStrip(strips[r % 2]);
        pool.wait();
        if (report)
            report(r + 1, total);
        ctx.throwIfCancelled();
    }
    writer.finish([&](std::int64_t done, std::int64_t) {
        if (report)
            report(rows + done, total);
        ctx.throwIfCancelled();
    });
    file.commit();
}

// ---- cohorts ----

namespace {
void validate(const SynthCohortParams& p) {
    if (p.outDir.empty())
        throw InvalidArgument("output directory is empty");
    if (p.count < 1 || p.count > 1'000'000)
        throw InvalidArgument("slide count must be in [1, 1000000], got " + std::to_string(p.count));
    if (!(p.positiveFraction >= 0.0 && p.positiveFraction <= 1.0))
        throw InvalidArgument("positive fraction must be in [0, 1], got " + std::to_string(p.positiveFraction));
    if (p.minLesions < 1 || p.maxLesions < p.minLesions || p.maxLesions > 1000)
        throw InvalidArgument("lesions per positive slide must satisfy 1 <= min <= max <= 1000");
    if (!(p.lesionMinUm > 0 && p.lesionMaxUm >= p.lesionMinUm))
        throw InvalidArgument("lesion size range must satisfy 0 < min <= max");
}

std::vector<bool> positiveSlides(const SynthCohortParams& p) {
    const int positives = static_cast<int>(std::lround(p.positiveFraction * p.count));
    std::vector<int> order(sz(p.count));
    std::iota(order.begin(), order.end(), 0);
    Rng rng(splitmix64(p.seed ^ 0xC0407ULL));
    for (int i = p.count - 1; i > 0; --i)
        std::swap(order[sz(i)], order[sz(static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(i + 1)))]);
    std::vector<bool> positive(sz(p.count), false);
    for (int k = 0; k < positives; ++k)
        positive[sz(order[sz(k)])] = true;
    return positive;
}

SynthSlideParams slideParams(const SynthCohortParams& p, int index, bool positive) {
    SynthSlideParams s;
    s.width = p.width;
    s.height = p.height;
    s.mpp = p.mpp;
    s.seed = splitmix64(p.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(index) + 1);
    s.lesionMinUm = p.lesionMinUm;
    s.lesionMaxUm = p.lesionMaxUm;
    if (positive) {
        Rng rng(s.seed ^ 0x1E5105ULL);
        s.lesionCount = p.minLesions + static_cast<int>(rng.next() % static_cast<std::uint64_t>(p.maxLesions - p.minLesions + 1));
    }
    return s;
}
} // namespace

SynthDifficulty parseSynthDifficulty(const std::string& text) {
    if (text == "standard")
        return SynthDifficulty::Standard;
    if (text == "hard")
        return SynthDifficulty::Hard;
    throw InvalidArgument("unknown difficulty '" + text + "' (use standard or hard)");
}

const char* toString(SynthDifficulty difficulty) {
    return difficulty == SynthDifficulty::Hard ? "hard" : "standard";
}

void applySynthDifficulty(SynthCohortParams& params, SynthDifficulty difficulty) {
    if (difficulty == SynthDifficulty::Hard) {
        params.minLesions = params.maxLesions = 1;
        params.lesionMinUm = 2 * 64.0; // 2 patches of 128 px at 0.5 µm/px
        params.lesionMaxUm = 4 * 64.0;
    } else {
        const SynthCohortParams defaults;
        params.minLesions = defaults.minLesions;
        params.maxLesions = defaults.maxLesions;
        params.lesionMinUm = defaults.lesionMinUm;
        params.lesionMaxUm = defaults.lesionMaxUm;
    }
}

SynthSlideParams synthCohortSlide(const SynthCohortParams& params, int index) {
    validate(params);
    if (index < 0 || index >= params.count)
        throw InvalidArgument("slide index out of range");
    return slideParams(params, index, positiveSlides(params)[sz(index)]);
}

std::string synthCohortStem(const SynthCohortParams& params, int index) {
    const int digits = std::max(3, static_cast<int>(std::to_string(std::max(0, params.count - 1)).size()));
    char buf[32];
    std::snprintf(buf, sizeof buf, "synth-%0*d", digits, index);
    return buf;
}

std::vector<SynthCohortEntry> generateSynthCohort(const SynthCohortParams& params, JobContext& ctx) {
    validate(params);
    std::error_code ec;
    std::filesystem::create_directories(params.outDir, ec);
    if (ec || !std::filesystem::is_directory(params.outDir))
        throw IoError(params.outDir.string() + ": cannot create directory" + (ec ? ": " + ec.message() : std::string()));
    const auto positive = positiveSlides(params);
    std::vector<SynthCohortEntry> entries;
    std::int64_t done = 0;
    for (int i = 0; i < params.count; ++i) {
        ctx.throwIfCancelled();
        const SynthSlide slide(slideParams(params, i, positive[sz(i)]));
        const std::int64_t units = slide.writeWorkUnits(params.write);
        const std::int64_t total = units * params.count;
        const std::string stem = synthCohortStem(params, i);
        const std::string step = "slide " + std::to_string(i + 1) + "/" + std::to_string(params.count);
        slide.write(params.outDir / (stem + ".svs"), params.write, ctx,
                    [&](std::int64_t d, std::int64_t) { ctx.progress(done + d, total, step); });
        done += units;
        slide.annotations().save(params.outDir / (stem + ".xml"));
        SynthCohortEntry e;
        e.slide = stem + ".svs";
        e.label = slide.isPositive() ? 1 : 0;
        e.score = slide.lesionFraction();
        e.annotations = stem + ".xml";
        char line[160];
        std::snprintf(line, sizeof line, "%s: label %d, %zu lesion(s), tumour fraction of tissue %.4f", e.slide.c_str(),
                      e.label, slide.lesions().size(), e.score);
        ctx.log(line);
        entries.push_back(std::move(e));
    }
    std::string csv = "slide,label,score,annotations\n";
    for (const auto& e : entries) {
        char buf[64];
        std::snprintf(buf, sizeof buf, ",%d,%.6f,", e.label, e.score);
        csv += e.slide + buf + e.annotations + "\n";
    }
    writeFileAtomically(params.outDir / "cohort.csv", csv);
    return entries;
}

AnnotationSet synthAnnotationCrowd(int count, int verticesEach, double side, std::uint64_t seed) {
    if (count < 0 || verticesEach < 3 || !(side > 0.0))
        throw InvalidArgument("synthAnnotationCrowd: count >= 0, verticesEach >= 3 and side > 0 required");
    AnnotationSet s;
    AnnotationGroup tumor;
    tumor.name = "Tumor";
    tumor.color = "#ff0000";
    AnnotationGroup itc;
    itc.name = "itc";
    itc.parent = "Tumor";
    itc.color = "#00ff00";
    AnnotationGroup normal;
    normal.name = "normal";
    normal.color = "#0000ff";
    s.groups = {tumor, itc, normal};
    std::mt19937_64 rng(seed);
    const double scale = std::max(1.0, side / 100000.0);
    const double margin = std::min(200.0 * scale, side / 4);
    std::uniform_real_distribution<double> pos(margin, side - margin);
    std::uniform_real_distribution<double> radius(8.0 * scale, 120.0 * scale);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    s.annotations.reserve(static_cast<std::size_t>(count));
    const char* groups[] = {"Tumor", "itc", "normal"};
    for (int i = 0; i < count; ++i) {
        Annotation a;
        a.name = "Annotation " + std::to_string(i);
        a.type = (i % 50 == 0) ? AnnotationType::Spline : AnnotationType::Polygon;
        a.group = groups[i % 3];
        a.color = "#F4FA58";
        if (i % 1000 == 0)
            a.attributes["Reviewer"] = "r" + std::to_string(i / 1000);
        const double cx = pos(rng), cy = pos(rng), r = radius(rng);
        for (int k = 0; k < verticesEach; ++k) {
            const double t = 2.0 * std::numbers::pi * k / verticesEach;
            const double rk = r * jitter(rng);
            a.coordinates.push_back({cx + rk * std::cos(t), cy + rk * std::sin(t)});
        }
        s.annotations.push_back(std::move(a));
    }
    return s;
}

} // namespace nic

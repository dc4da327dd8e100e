#include "core/slidelearning/cropsampler.h"

#include "core/base/error.h"
#include "core/slidelearning/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace nic {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 1-D squared distance transform of sampled function f (Felzenszwalb & Huttenlocher 2012).
void distance1d(const std::vector<double>& f, std::vector<double>& d, std::vector<int>& v, std::vector<double>& z) {
    const int n = static_cast<int>(f.size());
    v.assign(static_cast<std::size_t>(n), 0);
    z.assign(static_cast<std::size_t>(n) + 1, 0.0);
    d.assign(static_cast<std::size_t>(n), 0.0);
    auto F = [&](int q) { return f[static_cast<std::size_t>(q)]; };
    int k = 0;
    v[0] = 0;
    z[0] = -kInf;
    z[1] = kInf;
    for (int q = 1; q < n; ++q) {
        if (F(q) == kInf)
            continue; // an infinite parabola never forms part of the lower envelope
        if (F(v[static_cast<std::size_t>(k)]) == kInf) {
            v[static_cast<std::size_t>(k)] = q; // replace an infinite first parabola
            continue;
        }
        double s = 0.0;
        for (;;) {
            const int p = v[static_cast<std::size_t>(k)];
            s = ((F(q) + double(q) * q) - (F(p) + double(p) * p)) / (2.0 * (q - p));
            if (s <= z[static_cast<std::size_t>(k)] && k > 0)
                --k;
            else
                break;
        }
        ++k;
        v[static_cast<std::size_t>(k)] = q;
        z[static_cast<std::size_t>(k)] = s;
        z[static_cast<std::size_t>(k) + 1] = kInf;
    }
    k = 0;
    for (int q = 0; q < n; ++q) {
        while (z[static_cast<std::size_t>(k) + 1] < q)
            ++k;
        const int p = v[static_cast<std::size_t>(k)];
        d[static_cast<std::size_t>(q)] = F(p) == kInf ? kInf : double(q - p) * (q - p) + F(p);
    }
}

} // namespace

std::vector<double> squaredDistanceToBackground(const std::vector<std::uint8_t>& tissue, int cols, int rows) {
    if (cols < 0 || rows < 0 || tissue.size() != static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows))
        throw InvalidArgument("distance transform: mask of " + std::to_string(tissue.size()) + " cells for a " +
                              std::to_string(cols) + " x " + std::to_string(rows) + " grid");
    // Pad by one background cell on every side: outside the grid is background.
    const int W = cols + 2;
    const int H = rows + 2;
    std::vector<double> g(static_cast<std::size_t>(W) * static_cast<std::size_t>(H), 0.0);
    for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x)
            if (tissue[static_cast<std::size_t>(y) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(x)])
                g[static_cast<std::size_t>(y + 1) * static_cast<std::size_t>(W) + static_cast<std::size_t>(x + 1)] = kInf;
    std::vector<double> f;
    std::vector<double> d;
    std::vector<int> v;
    std::vector<double> z;
    // Columns, then rows.
    f.resize(static_cast<std::size_t>(H));
    for (int x = 0; x < W; ++x) {
        for (int y = 0; y < H; ++y)
            f[static_cast<std::size_t>(y)] = g[static_cast<std::size_t>(y) * static_cast<std::size_t>(W) + static_cast<std::size_t>(x)];
        distance1d(f, d, v, z);
        for (int y = 0; y < H; ++y)
            g[static_cast<std::size_t>(y) * static_cast<std::size_t>(W) + static_cast<std::size_t>(x)] = d[static_cast<std::size_t>(y)];
    }
    f.resize(static_cast<std::size_t>(W));
    for (int y = 0; y < H; ++y) {
        double* row = g.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(W);
        std::copy(row, row + W, f.begin());
        distance1d(f, d, v, z);
        std::copy(d.begin(), d.end(), row);
    }
    std::vector<double> out(tissue.size());
    for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x)
            out[static_cast<std::size_t>(y) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(x)] =
                g[static_cast<std::size_t>(y + 1) * static_cast<std::size_t>(W) + static_cast<std::size_t>(x + 1)];
    return out;
}

CropSampler::CropSampler(const std::vector<float>& tissueFraction, int cols, int rows, float threshold)
    : cols_(cols), rows_(rows) {
    if (cols <= 0 || rows <= 0)
        throw InvalidArgument("crop sampler: empty grid (" + std::to_string(cols) + " x " + std::to_string(rows) + ")");
    const std::size_t n = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
    if (tissueFraction.size() != n)
        throw InvalidArgument("crop sampler: " + std::to_string(tissueFraction.size()) +
                              " tissue fractions for a " + std::to_string(cols) + " x " + std::to_string(rows) +
                              " grid");
    tissue_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        tissue_[i] = tissueFraction[i] > threshold ? 1 : 0;
        tissueCells_ += tissue_[i];
    }
    if (tissueCells_ > 0) {
        squaredDistance_ = squaredDistanceToBackground(tissue_, cols, rows);
    } else {
        squaredDistance_.assign(n, 1.0);
    }
    double total = 0.0;
    for (double d : squaredDistance_)
        total += d;
    probabilities_.resize(n);
    cumulative_.resize(n);
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        probabilities_[i] = squaredDistance_[i] / total;
        acc += squaredDistance_[i];
        cumulative_[i] = acc / total;
    }
}

GridCell CropSampler::sample(std::mt19937_64& rng) const {
    const double u = uniformUnit(rng);
    // First cell whose cumulative probability exceeds u; zero-probability cells have an equal cumulative
    // value to their predecessor, so upper_bound never lands on them.
    auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    if (it == cumulative_.end()) // u ≥ the rounded total: take the last cell with weight
        it = std::prev(cumulative_.end());
    auto i = static_cast<std::size_t>(it - cumulative_.begin());
    while (probabilities_[i] == 0.0 && i > 0) // only reachable through the rounding guard above
        --i;
    return {static_cast<int>(i % static_cast<std::size_t>(cols_)), static_cast<int>(i / static_cast<std::size_t>(cols_))};
}

std::vector<GridCell> CropSampler::testCentres(int count) const {
    std::vector<GridCell> cells;
    if (tissueCells_ == 0)
        return {GridCell{cols_ / 2, rows_ / 2}};
    std::size_t deepest = 0;
    for (std::size_t i = 0; i < tissue_.size(); ++i) {
        if (!tissue_[i])
            continue;
        if (cells.empty() || squaredDistance_[i] > squaredDistance_[deepest])
            deepest = i;
        cells.push_back({static_cast<int>(i % static_cast<std::size_t>(cols_)),
                         static_cast<int>(i / static_cast<std::size_t>(cols_))});
    }
    if (count <= 0)
        return {};
    if (cells.size() <= static_cast<std::size_t>(count))
        return cells;
    const std::size_t k = static_cast<std::size_t>(count);
    auto dist2 = [](double ax, double ay, double bx, double by) { return (ax - bx) * (ax - bx) + (ay - by) * (ay - by); };
    // Farthest-point initialisation from the most interior tissue cell.
    std::vector<double> cx;
    std::vector<double> cy;
    cx.push_back(static_cast<double>(deepest % static_cast<std::size_t>(cols_)));
    cy.push_back(static_cast<double>(deepest / static_cast<std::size_t>(cols_)));
    std::vector<double> nearest(cells.size(), kInf);
    while (cx.size() < k) {
        std::size_t far = 0;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            nearest[i] = std::min(nearest[i], dist2(cells[i].x, cells[i].y, cx.back(), cy.back()));
            if (nearest[i] > nearest[far])
                far = i;
        }
        cx.push_back(cells[far].x);
        cy.push_back(cells[far].y);
    }
    // Lloyd iterations: centroids of the tissue cells nearest to each centre.
    std::vector<std::size_t> owner(cells.size(), 0);
    for (int iter = 0; iter < 30; ++iter) {
        bool changed = false;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            std::size_t best = 0;
            double bestD = kInf;
            for (std::size_t c = 0; c < k; ++c) {
                const double d = dist2(cells[i].x, cells[i].y, cx[c], cy[c]);
                if (d < bestD) {
                    bestD = d;
                    best = c;
                }
            }
            changed = changed || owner[i] != best || iter == 0;
            owner[i] = best;
        }
        if (!changed)
            break;
        std::vector<double> sx(k, 0.0);
        std::vector<double> sy(k, 0.0);
        std::vector<double> sn(k, 0.0);
        for (std::size_t i = 0; i < cells.size(); ++i) {
            sx[owner[i]] += cells[i].x;
            sy[owner[i]] += cells[i].y;
            sn[owner[i]] += 1.0;
        }
        for (std::size_t c = 0; c < k; ++c)
            if (sn[c] > 0) {
                cx[c] = sx[c] / sn[c];
                cy[c] = sy[c] / sn[c];
            }
    }
    // Snap every centroid to the nearest free tissue cell (a centroid of a concave region may lie on background).
    std::vector<bool> taken(cells.size(), false);
    std::vector<GridCell> out;
    for (std::size_t c = 0; c < k; ++c) {
        std::size_t best = 0;
        double bestD = kInf;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            if (taken[i])
                continue;
            const double d = dist2(cells[i].x, cells[i].y, cx[c], cy[c]);
            if (d < bestD) {
                bestD = d;
                best = i;
            }
        }
        taken[best] = true;
        out.push_back(cells[best]);
    }
    return out;
}

void extractCrop(const float* grid, int channels, int rows, int cols, GridCell centre, int R, float* out) {
    if (R < 1)
        throw InvalidArgument("crop size must be at least 1, got " + std::to_string(R));
    const std::size_t plane = static_cast<std::size_t>(R) * static_cast<std::size_t>(R);
    std::fill(out, out + plane * static_cast<std::size_t>(channels), 0.0f);
    const int x0 = centre.x - R / 2;
    const int y0 = centre.y - R / 2;
    const int xa = std::max(0, x0);
    const int xb = std::min(cols, x0 + R);
    const int ya = std::max(0, y0);
    const int yb = std::min(rows, y0 + R);
    if (xa >= xb || ya >= yb)
        return;
    const auto width = static_cast<std::size_t>(xb - xa);
    for (int c = 0; c < channels; ++c) {
        const float* src = grid + static_cast<std::size_t>(c) * static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
        float* dst = out + static_cast<std::size_t>(c) * plane;
        for (int y = ya; y < yb; ++y)
            std::memcpy(dst + static_cast<std::size_t>(y - y0) * static_cast<std::size_t>(R) + static_cast<std::size_t>(xa - x0),
                        src + static_cast<std::size_t>(y) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(xa),
                        width * sizeof(float));
    }
}

void extractCrop(const std::vector<float>& grid, int channels, int rows, int cols, GridCell centre, int R,
                 std::vector<float>& out) {
    if (channels < 0 || rows < 0 || cols < 0 ||
        grid.size() != static_cast<std::size_t>(channels) * static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols))
        throw InvalidArgument("crop: grid buffer of " + std::to_string(grid.size()) + " floats for [" +
                              std::to_string(channels) + ", " + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    if (R < 1)
        throw InvalidArgument("crop size must be at least 1, got " + std::to_string(R));
    out.resize(static_cast<std::size_t>(channels) * static_cast<std::size_t>(R) * static_cast<std::size_t>(R));
    extractCrop(grid.data(), channels, rows, cols, centre, R, out.data());
}

} // namespace nic

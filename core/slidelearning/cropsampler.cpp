#include "core/slidelearning/cropsampler.h"

#include "core/base/error.h"
#include "core/slidelearning/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
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

void checkCropSize(int R) {
    if (R < 1)
        throw InvalidArgument("crop size must be at least 1, got " + std::to_string(R));
}

namespace {

/// Where the R × R crop centred on `centre` lies: its first column and row x0, y0 (in grid coordinates, possibly
/// outside the grid) and the part inside the grid, columns [xa, xb) and rows [ya, yb). Throws for R < 1.
struct CropWindow {
    int x0, y0, xa, xb, ya, yb;
    CropWindow(GridCell centre, int R, int rows, int cols) : x0(centre.x - R / 2), y0(centre.y - R / 2) {
        checkCropSize(R);
        xa = std::max(0, x0);
        xb = std::min(cols, x0 + R);
        ya = std::max(0, y0);
        yb = std::min(rows, y0 + R);
    }
    /// No grid cell inside the crop.
    bool empty() const { return xa >= xb || ya >= yb; }
    /// The whole crop inside the grid (no zeros to write).
    bool inside(int R) const { return xa == x0 && ya == y0 && xb == x0 + R && yb == y0 + R; }
};

} // namespace

void extractCrop(const float* grid, int channels, int rows, int cols, GridCell centre, int R, float* out) {
    const CropWindow w(centre, R, rows, cols);
    const std::size_t plane = static_cast<std::size_t>(R) * static_cast<std::size_t>(R);
    std::fill(out, out + plane * static_cast<std::size_t>(channels), 0.0f);
    if (w.empty())
        return;
    const auto [x0, y0, xa, xb, ya, yb] = w;
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

namespace {

constexpr int kTile = 16; // channels × columns per tile of the transposing copy

/// One tile row of extractCropChannelsLast: `nc` channels (planes `planeStride` apart) × `nx` columns from `src`
/// (the first column of channel c0), each column's channels written contiguously at dst (columns `C` apart).
void transposeTileScalar(const float* src, std::size_t planeStride, int nc, int nx, float* dst, std::size_t C) {
    float tile[kTile][kTile]; // [channel][column], read row by row, written column by column
    for (int c = 0; c < nc; ++c)
        std::memcpy(tile[c], src + static_cast<std::size_t>(c) * planeStride, static_cast<std::size_t>(nx) * sizeof(float));
    for (int i = 0; i < nx; ++i)
        for (int c = 0; c < nc; ++c)
            dst[static_cast<std::size_t>(i) * C + static_cast<std::size_t>(c)] = tile[c][i];
}

#if defined(__x86_64__)
bool hasAvx512() {
    static const bool has = __builtin_cpu_supports("avx512f");
    return has;
}

/// A full 16 × 16 tile with AVX-512: 16 rows (channels) loaded, transposed in registers (pairs interleaved, then
/// quadruples, then 128-bit lanes twice), 16 columns stored.
__attribute__((target("avx512f"))) void transposeTileAvx512(const float* src, std::size_t planeStride, float* dst,
                                                             std::size_t C) {
    __m512 r[16], t[16];
    for (int c = 0; c < 16; ++c)
        r[c] = _mm512_loadu_ps(src + static_cast<std::size_t>(c) * planeStride);
    for (int c = 0; c < 16; c += 2) { // t[c], t[c+1]: rows c, c+1 interleaved element by element
        t[c] = _mm512_maskz_unpacklo_ps(0xFFFF, r[c], r[c + 1]);
        t[c + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[c], r[c + 1]);
    }
    for (int c = 0; c < 16; c += 4) { // four rows' elements together in each 128-bit lane
        r[c] = _mm512_maskz_shuffle_ps(0xFFFF, t[c], t[c + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[c + 1] = _mm512_maskz_shuffle_ps(0xFFFF, t[c], t[c + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[c + 2] = _mm512_maskz_shuffle_ps(0xFFFF, t[c + 1], t[c + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[c + 3] = _mm512_maskz_shuffle_ps(0xFFFF, t[c + 1], t[c + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int h = 0; h < 16; h += 8) // lanes 0 and 2 of rows c and c+4, then lanes 1 and 3
        for (int c = 0; c < 4; ++c) {
            t[h + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[h + c], r[h + c + 4], 0x88);
            t[h + c + 4] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[h + c], r[h + c + 4], 0xDD);
        }
    for (int c = 0; c < 8; ++c) {
        r[c] = _mm512_maskz_shuffle_f32x4(0xFFFF, t[c], t[c + 8], 0x88);
        r[c + 8] = _mm512_maskz_shuffle_f32x4(0xFFFF, t[c], t[c + 8], 0xDD);
    }
    for (int i = 0; i < 16; ++i)
        _mm512_storeu_ps(dst + static_cast<std::size_t>(i) * C, r[i]);
}
#else
bool hasAvx512() { return false; }
void transposeTileAvx512(const float*, std::size_t, float*, std::size_t) {}
#endif

} // namespace

void extractCropChannelsLast(const float* grid, int channels, int rows, int cols, GridCell centre, int R, float* out,
                             int firstChannel, int endChannel) {
    const CropWindow w(centre, R, rows, cols);
    if (endChannel < 0)
        endChannel = channels;
    if (firstChannel < 0 || firstChannel > endChannel || endChannel > channels)
        throw InvalidArgument("crop: channels [" + std::to_string(firstChannel) + ", " + std::to_string(endChannel) +
                              ") of " + std::to_string(channels));
    const auto C = static_cast<std::size_t>(channels);
    const std::size_t pixels = static_cast<std::size_t>(R) * static_cast<std::size_t>(R);
    if (!w.inside(R)) { // zeros where the crop leaves the grid
        if (firstChannel == 0 && endChannel == channels)
            std::fill(out, out + pixels * C, 0.0f);
        else
            for (std::size_t px = 0; px < pixels; ++px)
                std::fill(out + px * C + static_cast<std::size_t>(firstChannel), out + px * C + static_cast<std::size_t>(endChannel), 0.0f);
    }
    if (w.empty())
        return;
    const auto [x0, y0, xa, xb, ya, yb] = w;
    const std::size_t planeStride = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    const bool vector = hasAvx512();
    // Tile by tile of 16 channels, through the crop's rows: 16 planes read row after row.
    for (int c0 = firstChannel; c0 < endChannel; c0 += kTile) {
        const int nc = std::min(kTile, endChannel - c0);
        for (int y = ya; y < yb; ++y) {
            const float* rowStart = grid + static_cast<std::size_t>(c0) * planeStride +
                                    static_cast<std::size_t>(y) * static_cast<std::size_t>(cols);
            float* outRow = out + static_cast<std::size_t>(y - y0) * static_cast<std::size_t>(R) * C + static_cast<std::size_t>(c0);
            for (int x = xa; x < xb; x += kTile) {
                const int nx = std::min(kTile, xb - x);
                const float* src = rowStart + static_cast<std::size_t>(x);
                float* dst = outRow + static_cast<std::size_t>(x - x0) * C;
                if (vector && nc == kTile && nx == kTile)
                    transposeTileAvx512(src, planeStride, dst, C);
                else
                    transposeTileScalar(src, planeStride, nc, nx, dst, C);
            }
        }
    }
}

void extractCropFromChannelsLast(const float* grid, int channels, int rows, int cols, GridCell centre, int R,
                                 float* out, bool channelsLastOut, int firstRow, int endRow) {
    const CropWindow w(centre, R, rows, cols);
    if (endRow < 0)
        endRow = R;
    if (firstRow < 0 || firstRow > endRow || endRow > R)
        throw InvalidArgument("crop: rows [" + std::to_string(firstRow) + ", " + std::to_string(endRow) + ") of " +
                              std::to_string(R));
    const auto C = static_cast<std::size_t>(channels);
    const auto side = static_cast<std::size_t>(R);
    const std::size_t plane = side * side;
    const auto [x0, y0, xa, xb, ya, yb] = w;
    // Crop columns [0, left) and [right, R) lie outside the grid.
    const auto left = static_cast<std::size_t>(std::clamp(xa - x0, 0, R));
    const auto right = static_cast<std::size_t>(std::clamp(xb - x0, static_cast<int>(left), R));
    const bool vector = hasAvx512();
    for (int r = firstRow; r < endRow; ++r) {
        const int gy = y0 + r;
        const bool blank = w.empty() || gy < ya || gy >= yb;
        const float* src = blank ? nullptr
                                 : grid + (static_cast<std::size_t>(gy) * static_cast<std::size_t>(cols) +
                                           static_cast<std::size_t>(xa)) * C;
        if (channelsLastOut) {
            float* dst = out + static_cast<std::size_t>(r) * side * C;
            if (blank) {
                std::fill(dst, dst + side * C, 0.0f);
                continue;
            }
            std::fill(dst, dst + left * C, 0.0f);
            if (right > left && C > 0) // no grid values at all for 0 channels (src may then be null)
                std::memcpy(dst + left * C, src, (right - left) * C * sizeof(float));
            std::fill(dst + right * C, dst + side * C, 0.0f);
            continue;
        }
        float* dst = out + static_cast<std::size_t>(r) * side; // row r of plane 0
        for (std::size_t c = 0; c < C; ++c) {
            float* row = dst + c * plane;
            std::fill(row, row + (blank ? side : left), 0.0f);
            if (!blank)
                std::fill(row + right, row + side, 0.0f);
        }
        if (blank)
            continue;
        // Tiles of 16 pixels (rows of the transposition, C apart) × 16 channels (written plane by plane).
        for (std::size_t x = left; x < right; x += kTile) {
            const int nx = static_cast<int>(std::min<std::size_t>(kTile, right - x));
            for (std::size_t c0 = 0; c0 < C; c0 += kTile) {
                const int nc = static_cast<int>(std::min<std::size_t>(kTile, C - c0));
                const float* s = src + (x - left) * C + c0;
                float* d = dst + c0 * plane + x;
                if (vector && nc == kTile && nx == kTile)
                    transposeTileAvx512(s, C, d, plane);
                else
                    transposeTileScalar(s, C, nx, nc, d, plane);
            }
        }
    }
}

void extractCrop(const std::vector<float>& grid, int channels, int rows, int cols, GridCell centre, int R,
                 std::vector<float>& out) {
    if (channels < 0 || rows < 0 || cols < 0 ||
        grid.size() != static_cast<std::size_t>(channels) * static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols))
        throw InvalidArgument("crop: grid buffer of " + std::to_string(grid.size()) + " floats for [" +
                              std::to_string(channels) + ", " + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    checkCropSize(R);
    out.resize(static_cast<std::size_t>(channels) * static_cast<std::size_t>(R) * static_cast<std::size_t>(R));
    extractCrop(grid.data(), channels, rows, cols, centre, R, out.data());
}

} // namespace nic

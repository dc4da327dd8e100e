#include "ui/latentview.h"

#include "core/base/error.h"
#include "core/compression/latentgrid.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace nic {

namespace {

// Top eigenvector of the symmetric matrix `m` (n × n) by power iteration.
std::vector<double> topEigenvector(const std::vector<double>& m, int n, double& eigenvalue) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        v[static_cast<std::size_t>(i)] = 1.0 + 0.01 * i; // deterministic, not orthogonal to typical axes
    std::vector<double> w(static_cast<std::size_t>(n));
    eigenvalue = 0.0;
    for (int iter = 0; iter < 300; ++iter) {
        for (int i = 0; i < n; ++i) {
            double s = 0.0;
            for (int j = 0; j < n; ++j)
                s += m[static_cast<std::size_t>(i) * static_cast<std::size_t>(n) + static_cast<std::size_t>(j)] * v[static_cast<std::size_t>(j)];
            w[static_cast<std::size_t>(i)] = s;
        }
        const double norm = std::sqrt(std::inner_product(w.begin(), w.end(), w.begin(), 0.0));
        if (norm < 1e-30) {
            eigenvalue = 0.0;
            return v;
        }
        double diff = 0.0;
        for (int i = 0; i < n; ++i) {
            const double x = w[static_cast<std::size_t>(i)] / norm;
            diff = std::max(diff, std::abs(x - v[static_cast<std::size_t>(i)]));
            v[static_cast<std::size_t>(i)] = x;
        }
        eigenvalue = norm;
        if (diff < 1e-10)
            break;
    }
    return v;
}

} // namespace

LatentRgb latentPcaRgb(const std::vector<float>& hwc, int height, int width, int channels,
                       const std::vector<std::uint8_t>& foreground, double cellSize) {
    const auto cells = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
    const auto c = static_cast<std::size_t>(channels);
    if (height < 0 || width < 0 || channels <= 0 || hwc.size() != cells * c ||
        (!foreground.empty() && foreground.size() != cells))
        throw InvalidArgument("latent view: grid size does not match its shape");
    LatentRgb out;
    out.width = width;
    out.height = height;
    out.cellSize = cellSize;
    out.rgba.assign(cells * 4, 0);

    std::vector<std::size_t> fg;
    for (std::size_t i = 0; i < cells; ++i) {
        bool on = foreground.empty() ? false : foreground[i] != 0;
        if (foreground.empty())
            for (std::size_t k = 0; k < c && !on; ++k)
                on = hwc[i * c + k] != 0.0F;
        if (on)
            fg.push_back(i);
    }
    if (fg.empty())
        return out;

    std::vector<double> mean(c, 0.0);
    for (auto i : fg)
        for (std::size_t k = 0; k < c; ++k)
            mean[k] += hwc[i * c + k];
    for (auto& m : mean)
        m /= static_cast<double>(fg.size());
    std::vector<double> cov(c * c, 0.0);
    std::vector<double> x(c);
    for (auto i : fg) {
        for (std::size_t k = 0; k < c; ++k)
            x[k] = hwc[i * c + k] - mean[k];
        for (std::size_t a = 0; a < c; ++a) {
            const double xa = x[a];
            double* row = cov.data() + a * c;
            for (std::size_t b = a; b < c; ++b)
                row[b] += xa * x[b];
        }
    }
    for (std::size_t a = 0; a < c; ++a)
        for (std::size_t b = a; b < c; ++b) {
            cov[a * c + b] /= static_cast<double>(fg.size());
            cov[b * c + a] = cov[a * c + b];
        }
    double total = 0.0;
    for (std::size_t a = 0; a < c; ++a)
        total += cov[a * c + a];

    const int components = std::min(3, channels);
    std::vector<std::vector<double>> axes;
    for (int p = 0; p < components; ++p) {
        double lambda = 0.0;
        auto v = topEigenvector(cov, channels, lambda);
        // Deterministic sign: the largest-magnitude loading is positive.
        const auto big = std::max_element(v.begin(), v.end(), [](double l, double r) { return std::abs(l) < std::abs(r); });
        if (*big < 0)
            for (auto& e : v)
                e = -e;
        out.explainedVariance.push_back(total > 0 ? lambda / total : 0.0);
        for (std::size_t a = 0; a < c; ++a)
            for (std::size_t b = 0; b < c; ++b)
                cov[a * c + b] -= lambda * v[a] * v[b];
        axes.push_back(std::move(v));
    }

    std::vector<std::vector<double>> proj(static_cast<std::size_t>(components), std::vector<double>(fg.size()));
    for (std::size_t n = 0; n < fg.size(); ++n)
        for (int p = 0; p < components; ++p) {
            double s = 0.0;
            for (std::size_t k = 0; k < c; ++k)
                s += (hwc[fg[n] * c + k] - mean[k]) * axes[static_cast<std::size_t>(p)][k];
            proj[static_cast<std::size_t>(p)][n] = s;
        }
    for (int p = 0; p < components; ++p) {
        auto& v = proj[static_cast<std::size_t>(p)];
        std::vector<double> sorted = v;
        std::sort(sorted.begin(), sorted.end());
        const double lo = sorted[static_cast<std::size_t>(0.01 * static_cast<double>(sorted.size() - 1))];
        const double hi = sorted[static_cast<std::size_t>(0.99 * static_cast<double>(sorted.size() - 1))];
        const double span = hi - lo;
        for (std::size_t n = 0; n < fg.size(); ++n) {
            const double t = span > 1e-12 ? std::clamp((v[n] - lo) / span, 0.0, 1.0) : 0.5;
            out.rgba[fg[n] * 4 + static_cast<std::size_t>(p)] = static_cast<std::uint8_t>(std::lround(t * 255.0));
        }
    }
    for (auto i : fg)
        out.rgba[i * 4 + 3] = 255;
    return out;
}

LatentRgb loadLatentView(const std::filesystem::path& path) {
    const LatentGridReader reader(path);
    const auto& meta = reader.meta();
    std::vector<std::uint8_t> fg;
    for (auto f : reader.cellFlags())
        fg.push_back(f == kCellEncoded ? 1 : 0);
    const double cell = meta.slideMpp > 0 ? meta.stride * meta.targetMpp / meta.slideMpp : meta.stride;
    LatentRgb rgb = latentPcaRgb(reader.gridHwc(0), meta.rows, meta.cols, meta.codeSize, fg, cell);
    rgb.source = path.string();
    return rgb;
}

std::filesystem::path latentGridPathFor(const std::filesystem::path& slidePath) {
    auto p = slidePath;
    return p.replace_extension(".h5");
}

} // namespace nic

#include "ui/heatmapgrid.h"

#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/slide/slide.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <fstream>
#include <limits>

namespace nic {

std::optional<std::pair<float, float>> valueRange(const HeatmapGrid& grid) {
    std::optional<std::pair<float, float>> r;
    for (float v : grid.values) {
        if (!std::isfinite(v))
            continue;
        if (!r)
            r = std::make_pair(v, v);
        else
            r = std::make_pair(std::min(r->first, v), std::max(r->second, v));
    }
    return r;
}

std::vector<float> isoContour(const HeatmapGrid& grid, float level) {
    std::vector<float> out;
    if (grid.empty() || !std::isfinite(level))
        return out;
    const double s = grid.cellSize;
    for (int r = 0; r + 1 < grid.height; ++r)
        for (int c = 0; c + 1 < grid.width; ++c) {
            // Corners: a top-left, b top-right, d bottom-right, e bottom-left (cell centres).
            const float va = grid.at(c, r), vb = grid.at(c + 1, r), vd = grid.at(c + 1, r + 1), ve = grid.at(c, r + 1);
            if (!std::isfinite(va) || !std::isfinite(vb) || !std::isfinite(vd) || !std::isfinite(ve))
                continue;
            const bool ia = va >= level, ib = vb >= level, id = vd >= level, ie = ve >= level;
            if (ia == ib && ib == id && id == ie)
                continue;
            const double x0 = (c + 0.5) * s, y0 = (r + 0.5) * s, x1 = x0 + s, y1 = y0 + s;
            auto t = [level](float p, float q) { return static_cast<double>((level - p) / (q - p)); };
            // Crossing points on the four edges (only used where the edge is crossed).
            const double top[2] = {x0 + t(va, vb) * s, y0};
            const double right[2] = {x1, y0 + t(vb, vd) * s};
            const double bottom[2] = {x0 + t(ve, vd) * s, y1};
            const double left[2] = {x0, y0 + t(va, ve) * s};
            auto seg = [&out](const double* p, const double* q) {
                out.insert(out.end(), {static_cast<float>(p[0]), static_cast<float>(p[1]), static_cast<float>(q[0]),
                                       static_cast<float>(q[1])});
            };
            std::vector<const double*> crossed;
            if (ia != ib)
                crossed.push_back(top);
            if (ib != id)
                crossed.push_back(right);
            if (id != ie)
                crossed.push_back(bottom);
            if (ie != ia)
                crossed.push_back(left);
            if (crossed.size() == 2) {
                seg(crossed[0], crossed[1]);
            } else if (crossed.size() == 4) {
                // Saddle: the centre (mean) decides which pair of opposite corners is connected.
                const bool centre = (va + vb + vd + ve) / 4.0F >= level;
                if (centre == ia) {
                    seg(top, right);
                    seg(bottom, left);
                } else {
                    seg(top, left);
                    seg(right, bottom);
                }
            }
        }
    return out;
}

float percentileValue(const HeatmapGrid& grid, double percent) {
    std::vector<float> v;
    v.reserve(grid.values.size());
    for (float x : grid.values)
        if (std::isfinite(x))
            v.push_back(x);
    if (v.empty())
        return 0.0F;
    const double p = std::clamp(percent, 0.0, 100.0) / 100.0;
    const auto k = static_cast<std::size_t>(std::lround(p * static_cast<double>(v.size() - 1)));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

HeatmapGrid loadLikelihoodMap(const std::filesystem::path& path, double slideWidth, int maxCells) {
    const Slide map(path);
    int level = map.levelCount() - 1;
    for (int i = 0; i < map.levelCount(); ++i)
        if (map.level(i).width <= maxCells && map.level(i).height <= maxCells) {
            level = i;
            break;
        }
    const auto& lv = map.level(level);
    const Image img = map.readRegion(0, 0, level, lv.width, lv.height);
    HeatmapGrid g;
    g.width = img.width;
    g.height = img.height;
    g.values.resize(static_cast<std::size_t>(g.width) * static_cast<std::size_t>(g.height));
    for (int y = 0; y < g.height; ++y)
        for (int x = 0; x < g.width; ++x)
            g.values[static_cast<std::size_t>(y) * static_cast<std::size_t>(g.width) + static_cast<std::size_t>(x)] =
                static_cast<float>(img.at(x, y)[0]) / 255.0F;
    g.cellSize = (slideWidth > 0 ? slideWidth : static_cast<double>(map.width()) ) / static_cast<double>(g.width);
    g.source = path.string();
    return g;
}

HeatmapGrid loadGradCamHeatmap(const std::filesystem::path& path) {
    auto data = std::make_shared<const HeatmapData>(readHeatmapFile(path));
    const HeatmapData& d = *data;
    if (!(d.cellSize > 0) || !std::isfinite(d.cellSize))
        throw IoError(path.string() + ": heatmap has no valid cell_size (" + std::to_string(d.cellSize) + ")");
    HeatmapGrid g;
    g.width = d.cols;
    g.height = d.rows;
    g.values = d.heat;
    g.cellSize = d.cellSize;
    g.source = path.string();
    g.file = data;
    if (d.tissue.size() == g.values.size())
        for (std::size_t i = 0; i < g.values.size(); ++i)
            if (!(d.tissue[i] > 0.0F))
                g.values[i] = std::numeric_limits<float>::quiet_NaN();
    return g;
}

HeatmapGrid loadHeatmapFile(const std::filesystem::path& path, double slideWidth) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot open heatmap: " + std::strerror(errno));
    char magic[8] = {};
    in.read(magic, sizeof magic);
    static const char kHdf5[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    if (in.gcount() == 8 && std::equal(std::begin(magic), std::end(magic), std::begin(kHdf5)))
        return loadGradCamHeatmap(path);
    try {
        return loadLikelihoodMap(path, slideWidth);
    } catch (const Error& e) {
        // Say which two kinds were tried, not only OpenSlide's view of the file as a "slide".
        std::string cause = e.what();
        if (const std::string prefix = path.string() + ": "; cause.rfind(prefix, 0) == 0)
            cause.erase(0, prefix.size());
        throw IoError(path.string() + ": not a heatmap (neither a nic gradcam HDF5 file nor a likelihood TIFF: " + cause + ")");
    }
}

std::optional<std::filesystem::path> findHeatmap(const std::filesystem::path& slide) {
    const auto h5 = slide.parent_path() / (slide.stem().string() + "_heatmap.h5");
    std::error_code ec;
    if (std::filesystem::is_regular_file(h5, ec))
        return h5;
    return findLikelihoodMap(slide);
}

namespace {
std::optional<std::filesystem::path> firstExisting(const std::vector<std::filesystem::path>& candidates) {
    for (const auto& c : candidates) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(c, ec))
            return c;
    }
    return std::nullopt;
}
} // namespace

std::optional<std::filesystem::path> findLikelihoodMap(const std::filesystem::path& slide) {
    const auto base = slide.parent_path() / (slide.stem().string() + "_likelihood_map");
    return firstExisting({base.string() + ".tif", base.string() + ".tiff"});
}

std::optional<std::filesystem::path> findAnnotationXml(const std::filesystem::path& slide) {
    auto p = slide;
    return firstExisting({p.replace_extension(".xml")});
}

} // namespace nic

#include "ui/heatmapgrid.h"

#include "core/slide.h"

#include <algorithm>
#include <cmath>

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

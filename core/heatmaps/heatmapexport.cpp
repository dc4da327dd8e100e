#include "core/heatmaps/heatmapexport.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"
#include "core/imaging/tiffwriter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

namespace nic {

namespace {

std::array<std::uint8_t, 3> jet(double t) {
    t = std::clamp(t, 0.0, 1.0);
    const auto ch = [](double v) { return static_cast<std::uint8_t>(std::lround(255.0 * std::clamp(v, 0.0, 1.0))); };
    return {ch(1.5 - std::abs(4.0 * t - 3.0)), ch(1.5 - std::abs(4.0 * t - 2.0)), ch(1.5 - std::abs(4.0 * t - 1.0))};
}

} // namespace

// Level-0 position → heat cell, for pixel centres of an image of w × h covering level0W × level0H.
Image heatmapOverlay(const HeatmapData& d, const Image& base) {
    Image img = base;
    float maxHeat = 0.0f;
    for (float v : d.heat)
        maxHeat = std::max(maxHeat, v);
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            const double lx = (x + 0.5) * static_cast<double>(d.level0Width) / img.width;
            const double ly = (y + 0.5) * static_cast<double>(d.level0Height) / img.height;
            const int cx = std::min(d.cols - 1, static_cast<int>(lx / d.cellSize));
            const int cy = std::min(d.rows - 1, static_cast<int>(ly / d.cellSize));
            const float h = d.heat[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
            if (!(h > 0.0f) || maxHeat <= 0.0f)
                continue;
            const double t = h / maxHeat;
            const auto c = jet(t);
            const double a = 0.25 + 0.45 * t;
            std::uint8_t* p = img.at(x, y);
            for (int k = 0; k < 3; ++k)
                p[k] = static_cast<std::uint8_t>(std::lround((1 - a) * p[k] + a * c[static_cast<std::size_t>(k)]));
        }
    return img;
}

Image heatmapBaseImage(const HeatmapData& d, const std::filesystem::path& slidePath, int maxSide, JobContext& ctx) {
    const double aspect = static_cast<double>(d.level0Width) / static_cast<double>(std::max<std::int64_t>(1, d.level0Height));
    const int w = aspect >= 1 ? maxSide : std::max(1, static_cast<int>(std::lround(maxSide * aspect)));
    const int h = aspect >= 1 ? std::max(1, static_cast<int>(std::lround(maxSide / aspect))) : maxSide;
    if (!slidePath.empty() && std::filesystem::exists(slidePath)) {
        try {
            const Slide slide(slidePath);
            return resize(slide.thumbnail(maxSide), w, h);
        } catch (const Error& e) {
            ctx.log(std::string("note: no thumbnail (") + e.what() + "); drawing the tissue map instead");
        }
    }
    // No slide at hand: the tissue map, light grey on white.
    Image img(w, h, 3, 255);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const int cx = std::min(d.cols - 1, static_cast<int>((x + 0.5) * d.level0Width / w / d.cellSize));
            const int cy = std::min(d.rows - 1, static_cast<int>((y + 0.5) * d.level0Height / h / d.cellSize));
            const float t = d.tissue[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
            const auto v = static_cast<std::uint8_t>(std::lround(255.0 - 90.0 * std::clamp(t, 0.0f, 1.0f)));
            std::fill(img.at(x, y), img.at(x, y) + 3, v);
        }
    return img;
}

// ASAP likelihood map: 8-bit grey, one pixel per d × d level-0 pixels with d = round(cell size), so
// its size is an integer fraction of level 0 (ASAP overlays it on the slide by that ratio).
void writeLikelihoodMap(const std::filesystem::path& path, const HeatmapData& d, double slideMpp) {
    const auto ds = std::max<std::int64_t>(1, std::llround(d.cellSize));
    const std::int64_t W = (d.level0Width + ds - 1) / ds;
    const std::int64_t H = (d.level0Height + ds - 1) / ds;
    float maxHeat = 0.0f;
    for (float v : d.heat)
        maxHeat = std::max(maxHeat, v);
    PyramidTiffOptions opt;
    opt.channels = 1;
    opt.compression = TiffCompression::Deflate;
    opt.tileSize = 256;
    opt.levelDownsample = 2;
    opt.minLevelSide = 256;
    opt.mpp = slideMpp > 0 ? slideMpp * static_cast<double>(ds) : 0.0;
    opt.description = "NIC Studio Grad-CAM likelihood map; downsample " + std::to_string(ds) + " of " + d.slideFile;
    AtomicFile file(path);
    {
        PyramidTiffWriter writer(file.tempPath(), W, H, opt);
        for (std::int64_t y0 = 0; y0 < H; y0 += opt.tileSize) {
            const auto rows = static_cast<int>(std::min<std::int64_t>(opt.tileSize, H - y0));
            Image strip(static_cast<int>(W), rows, 1, 0);
            for (int y = 0; y < rows; ++y)
                for (std::int64_t x = 0; x < W; ++x) {
                    const int cx = std::min(d.cols - 1, static_cast<int>((static_cast<double>(x) + 0.5) * static_cast<double>(ds) / d.cellSize));
                    const int cy = std::min(d.rows - 1, static_cast<int>((static_cast<double>(y0 + y) + 0.5) * static_cast<double>(ds) / d.cellSize));
                    const float h = d.heat[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
                    *strip.at(static_cast<int>(x), y) =
                        maxHeat > 0 ? static_cast<std::uint8_t>(std::lround(255.0 * std::clamp(h / maxHeat, 0.0f, 1.0f))) : 0;
                }
            writer.appendStrip(strip);
        }
        writer.finish();
    }
    file.commit();
}

} // namespace nic

#include "ui/tilemath.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

namespace nic {

namespace {

std::int64_t ceilDiv(std::int64_t a, std::int64_t b) { return b <= 0 ? 0 : (a + b - 1) / b; }

} // namespace

std::int64_t Pyramid::tilesX(int level) const {
    if (level < 0 || level >= levelCount())
        return 0;
    return ceilDiv(levels[static_cast<std::size_t>(level)].width, tileSize);
}

std::int64_t Pyramid::tilesY(int level) const {
    if (level < 0 || level >= levelCount())
        return 0;
    return ceilDiv(levels[static_cast<std::size_t>(level)].height, tileSize);
}

PointD Viewport::toScreen(PointD p) const {
    return {(p.x - centerX) * zoom + width / 2.0, (p.y - centerY) * zoom + height / 2.0};
}

PointD Viewport::toLevel0(PointD s) const {
    return {(s.x - width / 2.0) / zoom + centerX, (s.y - height / 2.0) / zoom + centerY};
}

RectD Viewport::visibleLevel0() const {
    const PointD tl = toLevel0({0.0, 0.0});
    return {tl.x, tl.y, width / zoom, height / zoom};
}

bool isValidTile(const Pyramid& pyramid, const TileKey& key) {
    return key.level >= 0 && key.level < pyramid.levelCount() && key.x >= 0 && key.y >= 0 &&
           key.x < pyramid.tilesX(key.level) && key.y < pyramid.tilesY(key.level);
}

TileRegion tileRegion(const Pyramid& pyramid, const TileKey& key) {
    const auto& lv = pyramid.levels.at(static_cast<std::size_t>(key.level));
    const std::int64_t t = pyramid.tileSize;
    const std::int64_t lx = key.x * t;
    const std::int64_t ly = key.y * t;
    TileRegion r;
    r.level0X = static_cast<std::int64_t>(std::llround(static_cast<double>(lx) * lv.downsample));
    r.level0Y = static_cast<std::int64_t>(std::llround(static_cast<double>(ly) * lv.downsample));
    r.width = std::max<std::int64_t>(0, std::min(t, lv.width - lx));
    r.height = std::max<std::int64_t>(0, std::min(t, lv.height - ly));
    return r;
}

RectD tileRectLevel0(const Pyramid& pyramid, const TileKey& key) {
    const auto& lv = pyramid.levels.at(static_cast<std::size_t>(key.level));
    const TileRegion r = tileRegion(pyramid, key);
    const double t = pyramid.tileSize;
    return {static_cast<double>(key.x) * t * lv.downsample, static_cast<double>(key.y) * t * lv.downsample,
            static_cast<double>(r.width) * lv.downsample, static_cast<double>(r.height) * lv.downsample};
}

int levelForZoom(const Pyramid& pyramid, double zoom) {
    if (pyramid.levels.empty() || !(zoom > 0.0))
        return 0;
    const double wanted = (1.0 / zoom) * 1.01;
    int best = 0;
    for (int i = 0; i < pyramid.levelCount(); ++i)
        if (pyramid.levels[static_cast<std::size_t>(i)].downsample <= wanted)
            best = i;
    return best;
}

std::vector<TileKey> tilesInRect(const Pyramid& pyramid, int level, const RectD& rect, int marginTiles) {
    std::vector<TileKey> out;
    if (level < 0 || level >= pyramid.levelCount() || rect.empty())
        return out;
    const double ds = pyramid.levels[static_cast<std::size_t>(level)].downsample;
    const double tl0 = pyramid.tileSize * ds; // tile edge in level-0 px
    const std::int64_t nx = pyramid.tilesX(level);
    const std::int64_t ny = pyramid.tilesY(level);
    // Half-open: a rectangle ending exactly on a tile edge does not touch the next tile.
    auto first = [&](double v) { return static_cast<std::int64_t>(std::floor(v / tl0)); };
    auto last = [&](double v) { return static_cast<std::int64_t>(std::ceil(v / tl0)) - 1; };
    const std::int64_t x0 = std::max<std::int64_t>(0, first(rect.x) - marginTiles);
    const std::int64_t y0 = std::max<std::int64_t>(0, first(rect.y) - marginTiles);
    const std::int64_t x1 = std::min<std::int64_t>(nx - 1, last(rect.right()) + marginTiles);
    const std::int64_t y1 = std::min<std::int64_t>(ny - 1, last(rect.bottom()) + marginTiles);
    if (x0 > x1 || y0 > y1)
        return out;
    out.reserve(static_cast<std::size_t>((x1 - x0 + 1) * (y1 - y0 + 1)));
    for (std::int64_t y = y0; y <= y1; ++y)
        for (std::int64_t x = x0; x <= x1; ++x)
            out.push_back({level, x, y});
    const double cx = rect.x + rect.w / 2.0;
    const double cy = rect.y + rect.h / 2.0;
    auto dist2 = [&](const TileKey& k) {
        const double dx = (static_cast<double>(k.x) + 0.5) * tl0 - cx;
        const double dy = (static_cast<double>(k.y) + 0.5) * tl0 - cy;
        return dx * dx + dy * dy;
    };
    std::stable_sort(out.begin(), out.end(), [&](const TileKey& a, const TileKey& b) { return dist2(a) < dist2(b); });
    return out;
}

std::vector<TileKey> visibleTiles(const Pyramid& pyramid, const Viewport& viewport, int level) {
    return tilesInRect(pyramid, level, viewport.visibleLevel0(), 0);
}

std::vector<TileKey> prefetchTiles(const Pyramid& pyramid, const Viewport& viewport, int level) {
    const auto visible = visibleTiles(pyramid, viewport, level);
    std::unordered_set<TileKey, TileKeyHash> seen(visible.begin(), visible.end());
    std::vector<TileKey> out;
    for (const auto& k : tilesInRect(pyramid, level, viewport.visibleLevel0(), 1))
        if (seen.insert(k).second)
            out.push_back(k);
    if (level > 0)
        for (const auto& k : visibleTiles(pyramid, viewport, level - 1))
            out.push_back(k);
    return out;
}

double fitZoom(const Pyramid& pyramid, int widgetWidth, int widgetHeight) {
    if (pyramid.levels.empty() || widgetWidth <= 0 || widgetHeight <= 0)
        return 1.0;
    return std::min(widgetWidth / pyramid.width(), widgetHeight / pyramid.height());
}

Viewport fitViewport(const Pyramid& pyramid, int widgetWidth, int widgetHeight) {
    return {pyramid.width() / 2.0, pyramid.height() / 2.0, fitZoom(pyramid, widgetWidth, widgetHeight), widgetWidth,
            widgetHeight};
}

Viewport zoomAround(const Viewport& viewport, PointD screenAnchor, double newZoom) {
    const PointD anchor0 = viewport.toLevel0(screenAnchor);
    Viewport v = viewport;
    v.zoom = newZoom;
    // Solve toScreen(anchor0) == screenAnchor for the centre.
    v.centerX = anchor0.x - (screenAnchor.x - v.width / 2.0) / newZoom;
    v.centerY = anchor0.y - (screenAnchor.y - v.height / 2.0) / newZoom;
    return v;
}

Viewport viewportForRect(const RectD& r, int widgetWidth, int widgetHeight, double marginFraction) {
    Viewport v;
    v.width = widgetWidth;
    v.height = widgetHeight;
    v.centerX = r.x + r.w / 2.0;
    v.centerY = r.y + r.h / 2.0;
    const double free = std::clamp(1.0 - 2.0 * marginFraction, 0.05, 1.0);
    const double w = std::max(r.w, 1.0);
    const double h = std::max(r.h, 1.0);
    v.zoom = std::min(widgetWidth * free / w, widgetHeight * free / h);
    return v;
}

double magnificationForZoom(double zoom, double mpp) { return 10.0 * zoom / mpp; }

double zoomForMagnification(double magnification, double mpp) { return magnification * mpp / 10.0; }

std::string formatLength(double um) {
    char buf[64];
    if (std::abs(um) >= 1000.0)
        std::snprintf(buf, sizeof buf, "%.4g mm", um / 1000.0);
    else
        std::snprintf(buf, sizeof buf, "%.4g µm", um);
    return buf;
}

ScaleBar chooseScaleBar(double umPerPx, double maxPixels) {
    ScaleBar bar;
    if (!(umPerPx > 0.0) || !(maxPixels > 0.0))
        return bar;
    const double maxUm = umPerPx * maxPixels;
    double p = std::pow(10.0, std::floor(std::log10(maxUm)));
    double best = p;
    for (double m : {1.0, 2.0, 5.0})
        if (m * p <= maxUm * (1.0 + 1e-9))
            best = m * p;
    bar.micrometres = best;
    bar.pixels = best / umPerPx;
    bar.label = formatLength(best);
    return bar;
}

} // namespace nic

#pragma once
// Pure tile maths of the slide viewer: level-0 ↔ level ↔ tile ↔ screen transforms, the set of tiles a
// viewport needs, level choice for a zoom, the prefetch ring, magnification and the scale bar.
// Plain C++ (no Qt, no GL), no state, no IO: every function is thread-safe and unit-tested
// (tests/ui/test_tilemath.cpp). House style #6.
//
// Conventions: "level-0 px" are full-resolution slide pixels; a tile (level, tx, ty) covers the level
// pixels [tx·T, min((tx+1)·T, levelWidth)) × [ty·T, ...), T = Pyramid::tileSize, i.e. the level-0
// rectangle starting at (tx·T·downsample, ty·T·downsample). Screen px are widget (logical) pixels with
// the origin at the top-left; a Viewport maps its centre (level-0) to the middle of the widget and
// shows `zoom` screen px per level-0 px.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nic {

struct PointD {
    double x = 0.0;
    double y = 0.0;
    bool operator==(const PointD&) const = default;
};

/// Axis-aligned rectangle [x, x+w) × [y, y+h).
struct RectD {
    double x = 0.0;
    double y = 0.0;
    double w = 0.0;
    double h = 0.0;
    double right() const { return x + w; }
    double bottom() const { return y + h; }
    bool empty() const { return !(w > 0.0) || !(h > 0.0); }
    bool intersects(const RectD& o) const {
        return x < o.right() && o.x < right() && y < o.bottom() && o.y < bottom();
    }
    bool operator==(const RectD&) const = default;
};

/// One pyramid level as the viewer sees it.
struct LevelGeometry {
    std::int64_t width = 0;
    std::int64_t height = 0;
    double downsample = 1.0; ///< level-0 px per level px
};

/// The pyramid of a slide plus the tile size the viewer cuts it into.
struct Pyramid {
    std::vector<LevelGeometry> levels; ///< finest (level 0) first
    int tileSize = 256;

    int levelCount() const { return static_cast<int>(levels.size()); }
    int coarsestLevel() const { return levelCount() - 1; }
    std::int64_t tilesX(int level) const;
    std::int64_t tilesY(int level) const;
    double width() const { return levels.empty() ? 0.0 : static_cast<double>(levels.front().width); }
    double height() const { return levels.empty() ? 0.0 : static_cast<double>(levels.front().height); }
};

/// A tile of one level. Ordered (level, ty, tx) and hashable so it can key caches.
struct TileKey {
    int level = 0;
    std::int64_t x = 0;
    std::int64_t y = 0;
    bool operator==(const TileKey&) const = default;
    auto operator<=>(const TileKey&) const = default;
};

struct TileKeyHash {
    std::size_t operator()(const TileKey& k) const noexcept {
        std::size_t h = std::hash<std::int64_t>()(k.x);
        h ^= std::hash<std::int64_t>()(k.y) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h ^= std::hash<int>()(k.level) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        return h;
    }
};

/// Integer pixel rectangle inside one level (what Slide::readRegion needs, together with level0X/Y).
struct TileRegion {
    std::int64_t level0X = 0; ///< top-left in level-0 px (readRegion's x)
    std::int64_t level0Y = 0;
    std::int64_t width = 0;   ///< size in level px (readRegion's w, h)
    std::int64_t height = 0;
};

/// What the widget shows: level-0 centre, zoom (screen px per level-0 px) and widget size (screen px).
struct Viewport {
    double centerX = 0.0;
    double centerY = 0.0;
    double zoom = 1.0;
    int width = 0;
    int height = 0;

    PointD toScreen(PointD level0) const;
    PointD toLevel0(PointD screen) const;
    /// The level-0 rectangle covered by the widget.
    RectD visibleLevel0() const;
    bool operator==(const Viewport&) const = default;
};

/// The tile's region as Slide::readRegion arguments (clipped to the level's size).
TileRegion tileRegion(const Pyramid& pyramid, const TileKey& key);
/// The tile's extent in level-0 px (clipped to the level's size).
RectD tileRectLevel0(const Pyramid& pyramid, const TileKey& key);
/// True if the key names an existing tile.
bool isValidTile(const Pyramid& pyramid, const TileKey& key);

/// The level to draw at `zoom`: the coarsest level whose downsample does not exceed 1/zoom (OpenSlide's
/// rule; a 1 % tolerance absorbs downsamples such as 3.9998), level 0 when zoomed in beyond 1:1.
int levelForZoom(const Pyramid& pyramid, double zoom);

/// Tiles of `level` that intersect `level0Rect` grown by `marginTiles` tiles on every side, nearest
/// to the rectangle's centre first (ties in row-major order).
std::vector<TileKey> tilesInRect(const Pyramid& pyramid, int level, const RectD& level0Rect, int marginTiles = 0);

/// Tiles of `level` that the viewport shows, centre first.
std::vector<TileKey> visibleTiles(const Pyramid& pyramid, const Viewport& viewport, int level);

/// Tiles worth loading before they are needed, in priority order: the ring of one tile around the
/// visible ones at `level`, then the visible tiles of the next finer level (level − 1, for zooming in).
/// Never contains a tile of visibleTiles(pyramid, viewport, level).
std::vector<TileKey> prefetchTiles(const Pyramid& pyramid, const Viewport& viewport, int level);

/// Zoom at which the whole slide fits the widget (with no margin).
double fitZoom(const Pyramid& pyramid, int widgetWidth, int widgetHeight);
/// The viewport centred on the slide at fitZoom().
Viewport fitViewport(const Pyramid& pyramid, int widgetWidth, int widgetHeight);

/// The viewport at `newZoom` that keeps the level-0 point under `screenAnchor` where it is.
Viewport zoomAround(const Viewport& viewport, PointD screenAnchor, double newZoom);

/// The viewport showing `level0Rect` as large as possible (centred), with `marginFraction` of the
/// widget left free around it.
Viewport viewportForRect(const RectD& level0Rect, int widgetWidth, int widgetHeight, double marginFraction = 0.1);

/// Objective magnification shown on screen, by the pathology convention 10× ≙ 1 µm per screen pixel
/// (so 40× ≙ 0.25 µm/px): 10 · zoom / mpp.
double magnificationForZoom(double zoom, double mpp);
double zoomForMagnification(double magnification, double mpp);

/// A scale bar whose length is a "nice" value (1, 2 or 5 × 10^k µm) and at most `maxPixels` long.
struct ScaleBar {
    double micrometres = 0.0;
    double pixels = 0.0;
    std::string label; ///< "500 µm", "2 mm"
};
ScaleBar chooseScaleBar(double micrometresPerScreenPixel, double maxPixels);

/// Formats a length in µm as "12.3 µm" / "1.25 mm".
std::string formatLength(double micrometres);

} // namespace nic

// Pure tile maths: transforms, visible tiles, level choice, prefetch, zoom-to-cursor, scale bar.
#include "ui/tilemath.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace nic;

namespace {

// 10000 × 6000 px, downsamples 1, 4, 16 (levels 10000×6000, 2500×1500, 625×375), 256 px tiles.
Pyramid threeLevels() {
    Pyramid p;
    p.levels = {{10000, 6000, 1.0}, {2500, 1500, 4.0}, {625, 375, 16.0}};
    p.tileSize = 256;
    return p;
}

std::set<TileKey> asSet(const std::vector<TileKey>& v) { return {v.begin(), v.end()}; }

} // namespace

TEST(TileMath, TileCountsPerLevel) {
    const auto p = threeLevels();
    EXPECT_EQ(p.tilesX(0), 40); // ceil(10000/256)
    EXPECT_EQ(p.tilesY(0), 24); // ceil(6000/256)
    EXPECT_EQ(p.tilesX(1), 10);
    EXPECT_EQ(p.tilesY(1), 6);
    EXPECT_EQ(p.tilesX(2), 3);
    EXPECT_EQ(p.tilesY(2), 2);
    EXPECT_EQ(p.tilesX(3), 0);
}

TEST(TileMath, TileRegionAndLevel0Rect) {
    const auto p = threeLevels();
    // Interior tile of level 1: level px [512, 768) → level-0 [2048, 3072).
    auto r = tileRegion(p, {1, 2, 3});
    EXPECT_EQ(r.level0X, 2048);
    EXPECT_EQ(r.level0Y, 3072);
    EXPECT_EQ(r.width, 256);
    EXPECT_EQ(r.height, 256);
    EXPECT_EQ(tileRectLevel0(p, {1, 2, 3}), (RectD{2048, 3072, 1024, 1024}));
    // Edge tile of level 2 is clipped: level px x [512, 625), y [256, 375).
    r = tileRegion(p, {2, 2, 1});
    EXPECT_EQ(r.level0X, 8192);
    EXPECT_EQ(r.level0Y, 4096);
    EXPECT_EQ(r.width, 113);
    EXPECT_EQ(r.height, 119);
    EXPECT_EQ(tileRectLevel0(p, {2, 2, 1}), (RectD{8192, 4096, 113 * 16.0, 119 * 16.0}));
    EXPECT_TRUE(isValidTile(p, {2, 2, 1}));
    EXPECT_FALSE(isValidTile(p, {2, 3, 0}));
    EXPECT_FALSE(isValidTile(p, {3, 0, 0}));
    EXPECT_FALSE(isValidTile(p, {0, -1, 0}));
}

TEST(TileMath, ScreenTransformsRoundTrip) {
    const Viewport v{5000, 3000, 0.5, 800, 600};
    EXPECT_EQ(v.toScreen({5000, 3000}), (PointD{400, 300}));
    EXPECT_EQ(v.toScreen({5200, 2800}), (PointD{500, 200}));
    EXPECT_EQ(v.toLevel0({0, 0}), (PointD{4200, 2400}));
    EXPECT_EQ(v.visibleLevel0(), (RectD{4200, 2400, 1600, 1200}));
    for (PointD s : {PointD{0, 0}, PointD{13.5, 599}, PointD{799, 1}}) {
        const PointD back = v.toScreen(v.toLevel0(s));
        EXPECT_NEAR(back.x, s.x, 1e-9);
        EXPECT_NEAR(back.y, s.y, 1e-9);
    }
}

struct LevelCase {
    double zoom;
    int level;
};
class LevelForZoom : public ::testing::TestWithParam<LevelCase> {};
TEST_P(LevelForZoom, PicksCoarsestLevelNotBelowScreenResolution) {
    EXPECT_EQ(levelForZoom(threeLevels(), GetParam().zoom), GetParam().level) << "zoom " << GetParam().zoom;
}
INSTANTIATE_TEST_SUITE_P(Known, LevelForZoom,
                         ::testing::Values(LevelCase{4.0, 0}, LevelCase{1.0, 0}, LevelCase{0.5, 0}, LevelCase{0.26, 0},
                                           LevelCase{0.25, 1}, LevelCase{0.2, 1}, LevelCase{0.0625, 2},
                                           LevelCase{0.065, 1}, LevelCase{0.01, 2}));

TEST(TileMath, LevelForZoomToleratesInexactDownsamples) {
    Pyramid p;
    p.levels = {{40000, 30000, 1.0}, {10000, 7500, 4.0002}};
    EXPECT_EQ(levelForZoom(p, 0.25), 1);
}

TEST(TileMath, VisibleTilesOfKnownViewports) {
    const auto p = threeLevels();
    // Level 0 at 1:1, 512×512 widget centred on (1000, 1000): level-0 [744, 1256)² → tiles 2..4.
    Viewport v{1000, 1000, 1.0, 512, 512};
    auto tiles = visibleTiles(p, v, 0);
    std::set<TileKey> expected;
    for (int y = 2; y <= 4; ++y)
        for (int x = 2; x <= 4; ++x)
            expected.insert({0, x, y});
    EXPECT_EQ(asSet(tiles), expected);
    // Centre first: (3,3) holds the centre point 1000 (768 ≤ 1000 < 1024).
    EXPECT_EQ(tiles.front(), (TileKey{0, 3, 3}));

    // A viewport ending exactly on a tile edge does not touch the next tile (half-open).
    v = {256, 256, 1.0, 512, 512}; // level-0 [0, 512)²
    EXPECT_EQ(asSet(visibleTiles(p, v, 0)), (std::set<TileKey>{{0, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 1, 1}}));

    // The whole slide at level 2 (fit): all 6 tiles; a viewport off the slide: none.
    v = fitViewport(p, 1000, 600);
    EXPECT_EQ(visibleTiles(p, v, 2).size(), 6U);
    v = {-5000, -5000, 1.0, 100, 100};
    EXPECT_TRUE(visibleTiles(p, v, 0).empty());
    // Clipped at the slide edge: centred on the bottom-right corner.
    v = {10000, 6000, 1.0, 512, 512};
    EXPECT_EQ(asSet(visibleTiles(p, v, 0)), (std::set<TileKey>{{0, 38, 22}, {0, 39, 22}, {0, 38, 23}, {0, 39, 23}}));
}

TEST(TileMath, PrefetchIsTheRingAndTheNextFinerLevel) {
    const auto p = threeLevels();
    const Viewport v{5000, 3000, 0.25, 512, 512}; // level 1, level-0 [3976, 6024) × [1976, 4024)
    const int level = levelForZoom(p, v.zoom);
    ASSERT_EQ(level, 1);
    const auto visible = asSet(visibleTiles(p, v, level));
    EXPECT_EQ(visible.size(), 9U); // x 3..5, y 1..3 at 1024 level-0 px per tile
    const auto pre = prefetchTiles(p, v, level);
    std::size_t ring = 0, finer = 0;
    for (const auto& k : pre) {
        EXPECT_EQ(visible.count(k), 0U);
        if (k.level == 1) {
            ++ring;
            EXPECT_TRUE(k.x >= 2 && k.x <= 6 && k.y >= 0 && k.y <= 4);
        } else {
            EXPECT_EQ(k.level, 0);
            ++finer;
        }
    }
    EXPECT_EQ(ring, 25U - 9U);
    EXPECT_EQ(finer, asSet(visibleTiles(p, v, 0)).size());
    // Ring tiles come before the finer level.
    EXPECT_EQ(pre.front().level, 1);
    EXPECT_EQ(pre.back().level, 0);
}

TEST(TileMath, FitZoomAndViewportForRect) {
    const auto p = threeLevels();
    EXPECT_DOUBLE_EQ(fitZoom(p, 1000, 1000), 0.1);  // width-limited
    EXPECT_DOUBLE_EQ(fitZoom(p, 2000, 300), 0.05);  // height-limited
    const Viewport v = viewportForRect({1000, 2000, 400, 100}, 500, 500, 0.1);
    EXPECT_DOUBLE_EQ(v.centerX, 1200);
    EXPECT_DOUBLE_EQ(v.centerY, 2050);
    EXPECT_DOUBLE_EQ(v.zoom, 1.0); // 500·0.8/400
}

TEST(TileMath, ZoomAroundKeepsTheAnchorFixed) {
    const Viewport v{5000, 3000, 0.5, 800, 600};
    for (double z : {0.1, 0.5001, 2.0, 8.0})
        for (PointD s : {PointD{0, 0}, PointD{123.25, 456.5}, PointD{800, 600}}) {
            const PointD before = v.toLevel0(s);
            const Viewport w = zoomAround(v, s, z);
            EXPECT_DOUBLE_EQ(w.zoom, z);
            const PointD after = w.toLevel0(s);
            EXPECT_NEAR(after.x, before.x, 1e-9);
            EXPECT_NEAR(after.y, before.y, 1e-9);
        }
    // Anchored at the centre, the centre stays.
    const Viewport c = zoomAround(v, {400, 300}, 3.0);
    EXPECT_DOUBLE_EQ(c.centerX, 5000);
    EXPECT_DOUBLE_EQ(c.centerY, 3000);
}

TEST(TileMath, Magnification) {
    EXPECT_DOUBLE_EQ(magnificationForZoom(1.0, 0.25), 40.0);
    EXPECT_DOUBLE_EQ(magnificationForZoom(0.5, 0.5), 10.0);
    EXPECT_DOUBLE_EQ(zoomForMagnification(20.0, 0.5), 1.0);
    EXPECT_DOUBLE_EQ(zoomForMagnification(1.0, 0.25), 0.025);
}

TEST(TileMath, ScaleBarPicksNiceLengths) {
    // 0.5 µm per screen px, ≤ 200 px → ≤ 100 µm → 100 µm, 200 px.
    auto b = chooseScaleBar(0.5, 200);
    EXPECT_DOUBLE_EQ(b.micrometres, 100);
    EXPECT_DOUBLE_EQ(b.pixels, 200);
    EXPECT_EQ(b.label, "100 µm");
    b = chooseScaleBar(3.0, 200); // ≤ 600 µm → 500 µm
    EXPECT_DOUBLE_EQ(b.micrometres, 500);
    EXPECT_NEAR(b.pixels, 166.667, 1e-3);
    b = chooseScaleBar(12.0, 200); // ≤ 2400 µm → 2 mm
    EXPECT_EQ(b.label, "2 mm");
    b = chooseScaleBar(0.011, 150); // ≤ 1.65 µm → 1 µm
    EXPECT_EQ(b.label, "1 µm");
    EXPECT_EQ(formatLength(1250), "1.25 mm");
    EXPECT_EQ(formatLength(12.5), "12.5 µm");
}

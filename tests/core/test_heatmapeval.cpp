// Heatmap scores against annotated lesions: pixel AUC, pointing game, mass inside.
#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace nic;

TEST(HeatmapEval, ScoresByHand) {
    // 3 × 2 grid; cell 5 is background and must be ignored even though it is the hottest.
    const std::vector<float> heat{0.9f, 0.2f, 0.5f, 0.1f, 0.0f, 5.0f};
    const std::vector<float> lesion{1.0f, 0.25f, 0.0f, 0.0f, 0.0f, 1.0f};
    const std::vector<float> tissue{1, 1, 1, 1, 1, 0};
    const auto s = scoreHeatmap(heat, lesion, tissue, 3, 2);
    EXPECT_EQ(s.tissueCells, 5);
    EXPECT_EQ(s.lesionCells, 1); // 0.25 < the 0.5 lesion threshold
    EXPECT_TRUE(s.hasLesion);
    // Positive {0.9} against negatives {0.2, 0.5, 0.1, 0.0}: AUC 1.
    EXPECT_DOUBLE_EQ(s.pixelAuc, 1.0);
    EXPECT_TRUE(s.pointingDefined);
    EXPECT_TRUE(s.pointingHit);
    EXPECT_EQ(s.maxX, 0);
    EXPECT_EQ(s.maxY, 0);
    // Mass: (0.9·1 + 0.2·0.25) / (0.9 + 0.2 + 0.5 + 0.1 + 0) = 0.95 / 1.7.
    EXPECT_NEAR(s.massInside, 0.95 / 1.7, 1e-6);
}

TEST(HeatmapEval, PointingMissAndTolerance) {
    // 4 × 1: hottest at x = 3, lesion at x = 1.
    const std::vector<float> heat{0, 0.5f, 0, 1};
    const std::vector<float> lesion{0, 1, 0, 0};
    const std::vector<float> tissue{1, 1, 1, 1};
    EXPECT_FALSE(scoreHeatmap(heat, lesion, tissue, 4, 1).pointingHit);
    HeatmapEvalOptions o;
    o.pointingTolerance = 1;
    EXPECT_FALSE(scoreHeatmap(heat, lesion, tissue, 4, 1, o).pointingHit);
    o.pointingTolerance = 2;
    EXPECT_TRUE(scoreHeatmap(heat, lesion, tissue, 4, 1, o).pointingHit);
    const auto s = scoreHeatmap(heat, lesion, tissue, 4, 1);
    EXPECT_DOUBLE_EQ(s.pixelAuc, 2.0 / 3.0); // 0.5 beats 0 and 0, loses to 1
}

TEST(HeatmapEval, NegativeSlideHasUndefinedScores) {
    const auto s = scoreHeatmap({1, 2, 3, 4}, {0, 0, 0, 0}, {1, 1, 1, 1}, 2, 2);
    EXPECT_FALSE(s.hasLesion);
    EXPECT_TRUE(std::isnan(s.pixelAuc));
    EXPECT_FALSE(s.pointingDefined);
    EXPECT_TRUE(std::isnan(s.massInside));
    EXPECT_THROW(scoreHeatmap({1, 2}, {0, 0, 0}, {1, 1}, 2, 1), InvalidArgument);
    EXPECT_THROW(scoreHeatmap({NAN, 2}, {0, 0}, {1, 1}, 2, 1), InvalidArgument);
}

TEST(HeatmapEval, CohortSummary) {
    std::vector<HeatmapScores> slides(4);
    slides[0].hasLesion = slides[1].hasLesion = slides[2].hasLesion = true;
    slides[0].pixelAuc = 0.9;
    slides[1].pixelAuc = 0.8;
    slides[2].pixelAuc = 0.7;
    slides[3].pixelAuc = NAN;
    for (int i = 0; i < 3; ++i) {
        slides[static_cast<std::size_t>(i)].pointingDefined = true;
        slides[static_cast<std::size_t>(i)].massInside = 0.5;
    }
    slides[3].massInside = NAN;
    slides[0].pointingHit = slides[2].pointingHit = true;
    const auto c = summariseHeatmapScores(slides, 200, 1);
    EXPECT_EQ(c.slides, 4);
    EXPECT_EQ(c.slidesWithLesion, 3);
    EXPECT_EQ(c.pixelAucSlides, 3);
    EXPECT_NEAR(c.meanPixelAuc.estimate, 0.8, 1e-12);
    EXPECT_GE(c.meanPixelAuc.lower, 0.7 - 1e-12);
    EXPECT_LE(c.meanPixelAuc.upper, 0.9 + 1e-12);
    EXPECT_EQ(c.pointingSlides, 3);
    EXPECT_EQ(c.pointingHits, 2);
    EXPECT_DOUBLE_EQ(c.pointingHitRate, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(c.meanMassInside.estimate, 0.5);
}

TEST(HeatmapEval, AnnotationsRasteriseOntoTheGrid) {
    AnnotationSet set;
    Annotation a;
    a.name = "lesion";
    a.type = AnnotationType::Rectangle;
    a.group = "metastases";
    a.coordinates = {{128, 128}, {384, 256}}; // cells (1..2, 1) at 128 px per cell
    set.annotations.push_back(a);
    const auto f = lesionFractionOnGrid(set, {}, 128.0, 4, 3);
    ASSERT_EQ(f.size(), 12U);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 4; ++x)
            EXPECT_FLOAT_EQ(f[static_cast<std::size_t>(y * 4 + x)], (y == 1 && (x == 1 || x == 2)) ? 1.0f : 0.0f)
                << x << "," << y;
}

TEST(HeatmapEval, HeatmapFilesRoundTrip) {
    nic::test::TempDir dir;
    HeatmapData d;
    d.rows = 2;
    d.cols = 3;
    d.heat = {0, 1, 2, 3, 4, 5};
    d.tissue = {1, 1, 0, 1, 0.5f, 1};
    d.cellSize = 256;
    d.level0Width = 700;
    d.level0Height = 500;
    d.slideFile = "a.svs";
    d.model = "run/fold0/model.pt";
    d.task = "classify";
    d.prediction = 0.75;
    writeHeatmapFile(dir / "h.h5", d);
    const auto r = readHeatmapFile(dir / "h.h5");
    EXPECT_EQ(r.heat, d.heat);
    EXPECT_EQ(r.tissue, d.tissue);
    EXPECT_EQ(r.rows, 2);
    EXPECT_EQ(r.cols, 3);
    EXPECT_DOUBLE_EQ(r.cellSize, 256);
    EXPECT_EQ(r.level0Width, 700);
    EXPECT_EQ(r.slideFile, "a.svs");
    EXPECT_DOUBLE_EQ(r.prediction, 0.75);
    EXPECT_THROW(readHeatmapFile(dir / "missing.h5"), IoError);
    d.heat.pop_back();
    EXPECT_THROW(writeHeatmapFile(dir / "bad.h5", d), InvalidArgument);
    EXPECT_FALSE(std::filesystem::exists(dir / "bad.h5"));
}

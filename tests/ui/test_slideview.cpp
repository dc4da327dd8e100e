// SlideView on a synthetic slide under xvfb: the framebuffer shows the expected colours (tissue, glass,
// heatmap, annotation outlines), navigation keeps the point under the cursor, broken slides show
// their cause and the view stays usable, drawing tools add annotations.
#include "ui/slideview.h"

#include "core/annotations/annotation.h"
#include "core/compression/latentgrid.h"
#include "pixelcheck.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/tileloader.h"

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTest>
#include <QWheelEvent>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

using namespace nic;
using nic::test::TestSlideGeometry;
using nic::test::colorNear;
using nic::test::rgb;

namespace {


class SlideViewTest : public ::testing::Test {
protected:
    void SetUp() override {
        slidePath = dir / "synthetic.tif";
        nic::test::writeTestSlide(slidePath, geometry);
        view = std::make_unique<SlideView>();
        view->resize(700, 480);
        view->setAnimationsEnabled(false);
        view->show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(view.get()));
    }
    void TearDown() override { view.reset(); }

    bool openAndWait(const std::filesystem::path& p) {
        QSignalSpy opened(view.get(), &SlideView::slideOpened);
        view->openSlide(QString::fromStdString(p.string()));
        return opened.wait(10000) && waitLoaded();
    }
    bool waitLoaded() {
        return QTest::qWaitFor([&] { return view->isFullyLoaded() && !view->isAnimating(); }, 10000);
    }
    QImage frame() { return view->grabFramebuffer(); }
    PointD screen(double x, double y) const { return view->viewport().toScreen({x, y}); }

    nic::test::TempDir dir;
    TestSlideGeometry geometry;
    std::filesystem::path slidePath;
    std::unique_ptr<SlideView> view;
};

} // namespace

TEST_F(SlideViewTest, FitShowsTissueGlassAndBackground) {
    ASSERT_TRUE(openAndWait(slidePath));
    ASSERT_EQ(view->pyramid().levelCount(), 3);
    const Viewport v = view->viewport();
    EXPECT_DOUBLE_EQ(v.zoom, 480.0 / 1536.0); // height-limited fit
    EXPECT_EQ(levelForZoom(view->pyramid(), v.zoom), 1);
    const QImage img = frame();
    ASSERT_EQ(img.size(), QSize(700, 480));
    EXPECT_TRUE(colorNear(img, screen(768, 640), nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, screen(1664, 1152), nic::test::kBlue));
    EXPECT_TRUE(colorNear(img, screen(1800, 300), nic::test::kGlass));
    // The slide is 640 px wide on screen, centred: x < 30 is the viewer's background.
    EXPECT_TRUE(colorNear(img, {10, 200}, {48, 48, 51}, 2));
    ASSERT_TRUE(view->magnification().has_value());
    EXPECT_NEAR(*view->magnification(), 10 * v.zoom / 0.5, 1e-9);
}

TEST_F(SlideViewTest, ZoomedInDrawsLevel0TilesAtTheRightPlace) {
    ASSERT_TRUE(openAndWait(slidePath));
    view->setViewport({1536, 1024, 2.0, 0, 0}); // the blue square's top-left corner in the middle
    ASSERT_TRUE(waitLoaded());
    const QImage img = frame();
    const PointD c = screen(1536, 1024);
    EXPECT_NEAR(c.x, 350, 1e-9);
    EXPECT_TRUE(colorNear(img, {c.x + 6, c.y + 6}, nic::test::kBlue));
    EXPECT_TRUE(colorNear(img, {c.x - 6, c.y + 6}, nic::test::kGlass));
    EXPECT_TRUE(colorNear(img, {c.x + 6, c.y - 6}, nic::test::kGlass));
    EXPECT_GT(view->statistics().visibleHits, 0U);
}

TEST_F(SlideViewTest, HeatmapPixelsEqualTheColourMap) {
    ASSERT_TRUE(openAndWait(slidePath));
    auto grid = std::make_shared<HeatmapGrid>();
    grid->width = 8;
    grid->height = 6;
    grid->cellSize = 256;
    grid->values.assign(48, 0.0F);
    grid->values[1 * 8 + 2] = 1.0F;  // cell (2, 1): hot
    grid->values[4 * 8 + 5] = 0.5F;  // cell (5, 4)
    grid->values[0] = std::nanf(""); // no data: never drawn
    view->setHeatmap(grid);
    view->setColorMap(ColorMapKind::Jet);
    view->setHeatmapOpacity(1.0);
    view->setHeatmapThreshold(0.25);
    QTest::qWait(20);
    QImage img = frame();
    EXPECT_TRUE(colorNear(img, screen(2.5 * 256, 1.5 * 256), rgb(colorAt(ColorMapKind::Jet, 1.0)), 1));
    EXPECT_TRUE(colorNear(img, screen(5.5 * 256, 4.5 * 256), rgb(colorAt(ColorMapKind::Jet, 0.5)), 1));
    EXPECT_TRUE(colorNear(img, screen(0.5 * 256, 0.5 * 256), nic::test::kGlass)); // NaN
    EXPECT_TRUE(colorNear(img, screen(7.5 * 256, 0.5 * 256), nic::test::kGlass)); // below threshold

    // Opacity and colour map are uniforms/texture swaps: half-transparent viridis over the tissue.
    view->setColorMap(ColorMapKind::Viridis);
    view->setHeatmapOpacity(0.5);
    QTest::qWait(20);
    img = frame();
    const auto c = colorAt(ColorMapKind::Viridis, 1.0);
    const auto& t = nic::test::kTissue;
    auto mix = [](int a, int b) { return static_cast<std::uint8_t>((a + b) / 2); };
    EXPECT_TRUE(colorNear(img, screen(2.5 * 256, 1.5 * 256), {mix(c[0], t[0]), mix(c[1], t[1]), mix(c[2], t[2])}, 2));
    // Raising the threshold above 0.5 hides cell (5, 4).
    view->setHeatmapThreshold(0.75);
    QTest::qWait(20);
    EXPECT_TRUE(colorNear(frame(), screen(5.5 * 256, 4.5 * 256), nic::test::kGlass));
}

TEST_F(SlideViewTest, AnnotationOutlineIsDrawnWhereThePolygonLies) {
    ASSERT_TRUE(openAndWait(slidePath));
    auto set = std::make_shared<AnnotationSet>();
    set->groups.push_back({"tumor", "", "#00ff00", {}, {}, GroupElement::Group});
    Annotation a;
    a.name = "A";
    a.type = AnnotationType::Polygon;
    a.group = "tumor";
    a.color = "#ff0000"; // the group colour wins
    a.coordinates = {{400, 300}, {1000, 300}, {1000, 800}, {400, 800}};
    set->annotations.push_back(a);
    view->setAnnotations(set);
    QTest::qWait(20);
    QImage img = frame();
    EXPECT_TRUE(colorNear(img, screen(700, 300), {0, 255, 0}, 1));  // top edge
    EXPECT_TRUE(colorNear(img, screen(1000, 550), {0, 255, 0}, 1)); // right edge
    // Inside: the tissue tinted green by the translucent fill.
    const QColor inside = img.pixelColor(static_cast<int>(screen(700, 550).x), static_cast<int>(screen(700, 550).y));
    EXPECT_GT(inside.green(), nic::test::kTissue[1] + 20);
    EXPECT_LT(inside.red(), nic::test::kTissue[0]);
    EXPECT_TRUE(colorNear(img, screen(1200, 150), nic::test::kGlass)); // well outside

    view->setGroupVisible(QStringLiteral("tumor"), false);
    QTest::qWait(20);
    img = frame();
    EXPECT_TRUE(colorNear(img, screen(700, 550), nic::test::kTissue));
    EXPECT_FALSE(colorNear(img, screen(700, 300), {0, 255, 0}, 1));
}

namespace {
Annotation circle(const std::string& group, double cx, double cy, double r, int vertices = 21) {
    Annotation a;
    a.name = group;
    a.type = AnnotationType::Polygon;
    a.group = group;
    for (int k = 0; k < vertices; ++k) {
        const double t = 2.0 * M_PI * k / vertices;
        a.coordinates.push_back({cx + r * std::cos(t), cy + r * std::sin(t)});
    }
    return a;
}
} // namespace

TEST_F(SlideViewTest, ThousandsOfAnnotationsAreDrawnAtEverySize) {
    // Crowded sets are drawn in batches with a level of detail by size on screen: under 3 px a point,
    // under 8 px an outline, then outline and fill. Each size must still show where its polygon lies.
    ASSERT_TRUE(openAndWait(slidePath));
    const double zoom = view->viewport().zoom; // 0.3125
    auto set = std::make_shared<AnnotationSet>();
    set->groups.push_back({"tiny", "", "#ff0000", {}, {}, GroupElement::Group});
    set->groups.push_back({"mid", "", "#00ff00", {}, {}, GroupElement::Group});
    set->groups.push_back({"big", "", "#0000ff", {}, {}, GroupElement::Group});
    // 5000 polygons of 2 px on screen over the glass right of the tissue.
    std::vector<PointD> tinyCentres;
    for (int j = 0; j < 50; ++j)
        for (int i = 0; i < 100; ++i) {
            const double x = 1320 + i * 6.5, y = 60 + j * 18.0;
            if (y > 900)
                continue;
            set->annotations.push_back(circle("tiny", x, y, 1.0 / zoom));
            tinyCentres.push_back({x, y});
        }
    ASSERT_GE(tinyCentres.size(), 4500U);
    set->annotations.push_back(circle("mid", 500, 500, 12)); // 7.5 px across: outline only
    set->annotations.push_back(circle("big", 700, 500, 30)); // 19 px: outline and fill
    set->annotations.push_back(circle("big", 740, 500, 30)); // overlapping the one before
    view->setAnnotations(set);
    QTest::qWait(20);
    QImage img = frame();
    for (const std::size_t k : {std::size_t{0}, std::size_t{77}, tinyCentres.size() / 2, tinyCentres.size() - 1})
        EXPECT_TRUE(colorNear(img, screen(tinyCentres[k].x, tinyCentres[k].y), {255, 0, 0}, 1)) << "tiny polygon " << k;
    // On the mid outline (a 1 px line loop: within a pixel of where its ring lies).
    auto nearby = [&](double x, double y, nic::test::Rgb want) {
        for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx)
                if (colorNear(img, {screen(x, y).x + dx, screen(x, y).y + dy}, want, 1))
                    return true;
        return false;
    };
    EXPECT_TRUE(nearby(512, 500, {0, 255, 0}));
    EXPECT_TRUE(nearby(500, 488, {0, 255, 0}));
    EXPECT_TRUE(colorNear(img, screen(500, 500), nic::test::kTissue)); // not filled
    EXPECT_TRUE(colorNear(img, screen(670, 500), {0, 0, 255}, 1));     // on the big outline
    auto pixel = [&](double x, double y) { return img.pixelColor(static_cast<int>(screen(x, y).x), static_cast<int>(screen(x, y).y)); };
    // Inside a big one: tinted blue. Where the two overlap, each fill counts (twice as blue), not an
    // even-odd hole.
    const QColor once = pixel(695, 492), twice = pixel(720, 492);
    EXPECT_GT(once.blue(), nic::test::kTissue[2] + 15);
    EXPECT_LT(once.red(), nic::test::kTissue[0]);
    EXPECT_GT(twice.blue(), once.blue() + 10);
    EXPECT_TRUE(colorNear(img, screen(1300, 1000), nic::test::kGlass)); // between groups: nothing drawn

    view->setGroupVisible(QStringLiteral("tiny"), false);
    QTest::qWait(20);
    img = frame();
    EXPECT_TRUE(colorNear(img, screen(tinyCentres[77].x, tinyCentres[77].y), nic::test::kGlass));
    EXPECT_TRUE(nearby(512, 500, {0, 255, 0}));
}

TEST_F(SlideViewTest, HundredThousandSquaredSlideOpensAndRendersAnyPlace) {
    // 100,000² px at 9 levels (152,881 level-0 tiles): opening reads the pyramid's directories and a
    // thumbnail, never level 0, and any place renders at full detail.
    TestSlideGeometry huge;
    huge.width = huge.height = 100000;
    huge.levels = 9;
    huge.tissueX0 = huge.tissueY0 = 49000;
    huge.tissueX1 = huge.tissueY1 = 51000;
    huge.blueX0 = 90000, huge.blueY0 = 10000, huge.blueX1 = 91000, huge.blueY1 = 11000;
    const auto path = dir / "huge.tif";
    const auto t0 = std::chrono::steady_clock::now();
    nic::test::writeTestSlide(path, huge);
    const double writeS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    QElapsedTimer timer;
    timer.start();
    QSignalSpy opened(view.get(), &SlideView::slideOpened);
    view->openSlide(QString::fromStdString(path.string()));
    ASSERT_TRUE(opened.wait(20000)) << view->errorMessage().toStdString();
    const double openMs = static_cast<double>(timer.nsecsElapsed()) / 1e6;
    ASSERT_TRUE(waitLoaded());
    const double fitMs = static_cast<double>(timer.nsecsElapsed()) / 1e6;
    std::printf("[ 100k² slide ] written in %.1f s (%.0f MB); opened in %.0f ms, fit view at full detail after %.0f ms, "
                "%zu tiles decoded\n",
                writeS, static_cast<double>(std::filesystem::file_size(path)) / 1e6, openMs, fitMs, view->loader()->decodedCount());
    ASSERT_EQ(view->pyramid().levelCount(), 9);
    EXPECT_EQ(view->pyramid().width(), 100000);
    // Only coarse tiles were read for the whole slide in view.
    EXPECT_LT(view->loader()->decodedCount(), 100U);
    QImage img = frame();
    EXPECT_TRUE(colorNear(img, screen(50000, 50000), nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, screen(20000, 80000), nic::test::kGlass));
    // 1:1 at the blue square's corner, then at the tissue: full detail, the right colours on both sides.
    view->setViewport({90000, 10000, 1.0, 0, 0});
    ASSERT_TRUE(waitLoaded());
    img = frame();
    EXPECT_TRUE(colorNear(img, screen(90010, 10010), nic::test::kBlue));
    EXPECT_TRUE(colorNear(img, screen(89990, 9990), nic::test::kGlass));
    view->setViewport({51000, 51000, 2.0, 0, 0});
    ASSERT_TRUE(waitLoaded());
    img = frame();
    EXPECT_TRUE(colorNear(img, screen(50995, 50995), nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, screen(51005, 51005), nic::test::kGlass));
}

TEST_F(SlideViewTest, WheelZoomKeepsThePointUnderTheCursor) {
    ASSERT_TRUE(openAndWait(slidePath));
    view->setAnimationsEnabled(true);
    const QPointF cursor(200, 150);
    const PointD before = view->viewport().toLevel0({cursor.x(), cursor.y()});
    const double zoom0 = view->viewport().zoom;
    QWheelEvent wheel(cursor, view->mapToGlobal(cursor), QPoint(), QPoint(0, 240), Qt::NoButton, Qt::NoModifier,
                      Qt::NoScrollPhase, false);
    QApplication::sendEvent(view.get(), &wheel);
    EXPECT_TRUE(view->isAnimating());
    ASSERT_TRUE(QTest::qWaitFor([&] { return !view->isAnimating(); }, 5000));
    const PointD after = view->viewport().toLevel0({cursor.x(), cursor.y()});
    EXPECT_NEAR(view->viewport().zoom, zoom0 * 1.25 * 1.25, 1e-9);
    EXPECT_NEAR(after.x, before.x, 1e-6);
    EXPECT_NEAR(after.y, before.y, 1e-6);
    ASSERT_TRUE(waitLoaded());
    // And the pixels agree: what is under the cursor is what the slide has at that level-0 point.
    EXPECT_TRUE(colorNear(frame(), {cursor.x(), cursor.y()}, nic::test::testSlideColor(geometry, after.x, after.y)));
}

TEST_F(SlideViewTest, AfterAJumpOnlyTheViewIsDecodedThenTheRingIsPrefetched) {
    // A small window, so the fit view is drawn from level 2 and its prefetch (level 1) holds no level-0 tile.
    view->resize(300, 200);
    ASSERT_TRUE(openAndWait(slidePath));
    ASSERT_EQ(levelForZoom(view->pyramid(), view->viewport().zoom), 2);
    // Let the fit view's own prefetch (requested once it was complete) finish first.
    auto idle = [&] { return view->loader()->pendingCount() + view->loader()->inFlightCount() == 0; };
    ASSERT_TRUE(QTest::qWaitFor(idle, 10000));
    QTest::qWait(300);
    ASSERT_TRUE(QTest::qWaitFor(idle, 10000));
    const std::size_t cachedBefore = view->cachedTileCount();
    const std::uint64_t generation = view->loader()->generation();

    view->setViewport({1024, 768, 1.0, 0, 0});
    const Viewport v = view->viewport();
    const auto visible = visibleTiles(view->pyramid(), v, 0);
    const auto ring = prefetchTiles(view->pyramid(), v, 0);
    ASSERT_GE(visible.size(), 4U);
    ASSERT_GE(ring.size(), 8U);
    // The first request after the jump asks for the view's tiles only: the ring would take the decoders
    // the view needs.
    ASSERT_TRUE(QTest::qWaitFor([&] { return view->loader()->generation() > generation; }, 5000));
    EXPECT_LE(view->loader()->pendingCount() + view->loader()->inFlightCount(), visible.size());
    ASSERT_TRUE(waitLoaded());
    // Once the view is complete, the ring around it follows.
    EXPECT_TRUE(QTest::qWaitFor([&] { return idle() && view->cachedTileCount() >= cachedBefore + visible.size() + ring.size(); }, 10000))
        << view->cachedTileCount() << " tiles cached, expected " << cachedBefore << " + " << visible.size() << " + " << ring.size();
    // Panning by a tile stays fully detailed without a decode: the ring was there.
    const std::uint64_t decoded = view->loader()->decodedCount();
    view->setViewport({1024 + 256, 768, 1.0, 0, 0});
    EXPECT_TRUE(view->isFullyLoaded());
    EXPECT_EQ(view->loader()->decodedCount(), decoded);
}

TEST_F(SlideViewTest, KeyboardPansZoomsAndFits) {
    ASSERT_TRUE(openAndWait(slidePath));
    const Viewport fit = view->viewport();
    QTest::keyClick(view.get(), Qt::Key_Plus);
    EXPECT_NEAR(view->viewport().zoom, fit.zoom * 1.5, 1e-9);
    const double cx = view->viewport().centerX;
    QTest::keyClick(view.get(), Qt::Key_Right);
    EXPECT_NEAR(view->viewport().centerX, cx + 700 * 0.15 / view->viewport().zoom, 1e-6);
    QTest::keyClick(view.get(), Qt::Key_Home);
    EXPECT_EQ(view->viewport(), fit);
}

TEST_F(SlideViewTest, MagnificationPresetsFollowMpp) {
    ASSERT_TRUE(openAndWait(slidePath));
    ASSERT_TRUE(view->mpp().has_value());
    EXPECT_NEAR(*view->mpp(), 0.5, 1e-6);
    EXPECT_TRUE(view->setMagnification(10));
    EXPECT_NEAR(view->viewport().zoom, 0.5, 1e-6);
    EXPECT_NEAR(*view->magnification(), 10, 1e-6);

    geometry.mpp = -1; // no resolution tags
    const auto noMpp = dir / "nompp.tif";
    nic::test::writeTestSlide(noMpp, geometry);
    ASSERT_TRUE(openAndWait(noMpp));
    EXPECT_FALSE(view->mpp().has_value());
    EXPECT_FALSE(view->magnification().has_value());
    EXPECT_FALSE(view->setMagnification(10));
}

TEST_F(SlideViewTest, BrokenSlideShowsTheCauseAndTheViewStaysUsable) {
    const auto broken = dir / "broken.svs";
    std::ofstream(broken) << "this is not a slide";
    QSignalSpy failed(view.get(), &SlideView::slideFailed);
    view->openSlide(QString::fromStdString(broken.string()));
    ASSERT_TRUE(failed.wait(10000));
    const QString message = failed.at(0).at(0).toString();
    EXPECT_TRUE(message.contains(QString::fromStdString(broken.string()))) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("not a file that OpenSlide can recognize"))) << message.toStdString();
    EXPECT_EQ(view->errorMessage(), message);
    EXPECT_FALSE(view->hasSlide());
    QTest::qWait(20);
    // The message is on screen (light red text somewhere over the dark background).
    const QImage img = frame();
    bool reddish = false;
    for (int y = 0; y < img.height() && !reddish; y += 2)
        for (int x = 0; x < img.width() && !reddish; x += 2) {
            const QColor c = img.pixelColor(x, y);
            reddish = c.red() > 150 && c.green() < 150;
        }
    EXPECT_TRUE(reddish);
    // Still usable: a good slide opens in the same view.
    ASSERT_TRUE(openAndWait(slidePath));
    EXPECT_TRUE(view->errorMessage().isEmpty());
    EXPECT_TRUE(colorNear(frame(), screen(768, 640), nic::test::kTissue));
}

TEST_F(SlideViewTest, RealAperioSlideRenders) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    ASSERT_TRUE(openAndWait(nic::test::sharedDataDir() / "slides/CMU-1-Small-Region.svs"));
    EXPECT_EQ(view->pyramid().width(), 2220);
    ASSERT_TRUE(view->mpp().has_value());
    EXPECT_TRUE(view->setMagnification(20));
    ASSERT_TRUE(waitLoaded());
    EXPECT_EQ(view->loader()->failedCount(), 0U);
    EXPECT_GT(view->cachedTileCount(), 0U);
}

TEST_F(SlideViewTest, DrawingToolsAddAnnotations) {
    ASSERT_TRUE(openAndWait(slidePath));
    QSignalSpy added(view.get(), &SlideView::annotationAdded);
    view->setTool(ViewTool::Rectangle);
    QTest::mousePress(view.get(), Qt::LeftButton, {}, QPoint(100, 100));
    QTest::mouseMove(view.get(), QPoint(200, 180));
    QTest::mouseRelease(view.get(), Qt::LeftButton, {}, QPoint(200, 180));
    ASSERT_EQ(added.count(), 1);
    auto set = view->annotations();
    ASSERT_TRUE(set);
    ASSERT_EQ(set->annotations.size(), 1U);
    const auto& r = set->annotations[0];
    EXPECT_EQ(r.type, AnnotationType::Rectangle);
    ASSERT_EQ(r.coordinates.size(), 4U);
    const PointD p0 = view->viewport().toLevel0({100, 100});
    const PointD p1 = view->viewport().toLevel0({200, 180});
    EXPECT_NEAR(r.coordinates[0].x, p0.x, 1e-6);
    EXPECT_NEAR(r.coordinates[2].y, p1.y, 1e-6);

    view->setTool(ViewTool::Dot);
    QTest::mouseClick(view.get(), Qt::LeftButton, {}, QPoint(300, 300));
    EXPECT_EQ(set->annotations.back().type, AnnotationType::Dot);

    QSignalSpy measured(view.get(), &SlideView::measured);
    view->setTool(ViewTool::Measure);
    QTest::mousePress(view.get(), Qt::LeftButton, {}, QPoint(100, 400));
    QTest::mouseMove(view.get(), QPoint(400, 400));
    QTest::mouseRelease(view.get(), Qt::LeftButton, {}, QPoint(400, 400));
    ASSERT_EQ(measured.count(), 1);
    // 300 screen px at zoom 480/1536 = 960 level-0 px = 480 µm at 0.5 µm/px.
    EXPECT_NEAR(measured.at(0).at(0).toDouble(), 480.0, 1e-6);
    EXPECT_TRUE(measured.at(0).at(1).toBool());

    view->setTool(ViewTool::Polygon);
    for (QPoint p : {QPoint(500, 100), QPoint(600, 100), QPoint(600, 200)})
        QTest::mouseClick(view.get(), Qt::LeftButton, {}, p);
    QTest::keyClick(view.get(), Qt::Key_Return);
    EXPECT_EQ(set->annotations.back().type, AnnotationType::Polygon);
    EXPECT_EQ(set->annotations.back().coordinates.size(), 3U);
    EXPECT_EQ(set->annotations.size(), 4U);
    // The set round-trips through ASAP XML.
    const auto xml = dir / "drawn.xml";
    set->save(xml);
    EXPECT_EQ(AnnotationSet::load(xml), *set);
}

TEST_F(SlideViewTest, LatentViewShowsPcaColoursOfACompressedSlide) {
    ASSERT_TRUE(openAndWait(slidePath));
    // A compressed slide of the synthetic slide: 16 × 12 cells of 128 px, C = 8; the tissue cells
    // (left) and the rest (right) have different embeddings, row 0 is background.
    LatentGridMeta meta;
    meta.encoderName = "test";
    meta.encoderHash = "0";
    meta.codeSize = 8;
    meta.patchSize = 128;
    meta.stride = 128;
    meta.targetMpp = 0.5;
    meta.slideMpp = 0.5;
    meta.slideMppSource = "slide";
    meta.readSize = 128;
    meta.level0Width = 2048;
    meta.level0Height = 1536;
    meta.rows = 12;
    meta.cols = 16;
    meta.slideFile = "synthetic.tif";
    meta.dtype = LatentDType::Float32;
    std::vector<float> grid(12 * 16 * 8, 0.0F);
    std::vector<std::uint8_t> flags(12 * 16, kCellBackground);
    for (int r = 1; r < 12; ++r)
        for (int c = 0; c < 16; ++c) {
            flags[static_cast<std::size_t>(r * 16 + c)] = kCellEncoded;
            for (int k = 0; k < 8; ++k)
                grid[static_cast<std::size_t>((r * 16 + c) * 8 + k)] = (c < 8 ? 1.0F : -1.0F) * static_cast<float>(k + 1) + 0.05F * static_cast<float>(r);
        }
    const auto h5 = dir / "synthetic.h5";
    auto writer = LatentGridWriter::create(dir / "synthetic.h5.partial", meta, std::vector<float>(12 * 16, 1.0F), 12);
    writer->writeBand(12, {grid.data()}, flags.data());
    writer->finishAndPublish(h5);

    auto latent = std::make_shared<const LatentRgb>(loadLatentView(h5));
    ASSERT_EQ(latent->width, 16);
    EXPECT_DOUBLE_EQ(latent->cellSize, 128.0);
    view->setLatentView(latent);
    view->setLatentOpacity(1.0);
    QTest::qWait(20);
    const QImage img = frame();
    for (auto [c, r] : {std::pair{2, 5}, std::pair{12, 9}}) {
        const auto* px = latent->rgba.data() + (r * 16 + c) * 4;
        EXPECT_EQ(px[3], 255);
        EXPECT_TRUE(colorNear(img, screen((c + 0.5) * 128, (r + 0.5) * 128), {px[0], px[1], px[2]}, 1)) << c << "," << r;
    }
    EXPECT_GT(std::abs(int(latent->rgba[(5 * 16 + 2) * 4]) - int(latent->rgba[(5 * 16 + 12) * 4])), 200);
    // Background cells are transparent: the slide shows through.
    EXPECT_TRUE(colorNear(img, screen(1800, 64), nic::test::kGlass));
}

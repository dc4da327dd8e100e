// The compare view: two to six synchronised viewers of one slide, each with its own heatmap. Checks that
// panning/zooming any one moves all (without feedback loops), that each framebuffer shows heat where its
// own heatmap is hot and not where the others' are, and that bad input is reported with its cause.
#include "ui/compareview.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/slideview.h"

#include <QApplication>
#include <QLabel>
#include <QSignalSpy>
#include <QTest>
#include <QWheelEvent>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

using namespace nic;
namespace fs = std::filesystem;

namespace {

constexpr int kCols = 16; // the 2048 × 1536 test slide in cells of 128 px
constexpr int kRows = 12;
constexpr double kCell = 128.0;

/// Where heatmap `i` is hottest (cell centres on the test slide's tissue, cells 2..9 × 2..7): a
/// different place for each model.
PointD hotCentreLevel0(int i) {
    static const PointD cells[] = {{3.5, 3.5}, {7.5, 6.5}, {8.5, 2.5}, {5.5, 5.5}, {2.5, 6.5}, {9.5, 4.5}};
    return {cells[i].x * kCell, cells[i].y * kCell};
}

/// Writes `<dir>/model<i>_heatmap.h5` as `nic gradcam` does: a Gaussian blob (σ = 1.3 cells, 1 at its
/// centre) around hotCentreLevel0(i), on the tissue cells only (the others are background).
fs::path writeHeatmap(const fs::path& dir, int i, const std::string& model) {
    HeatmapData d;
    d.rows = kRows;
    d.cols = kCols;
    d.cellSize = kCell;
    d.level0Width = 2048;
    d.level0Height = 1536;
    d.heat.assign(kRows * kCols, 0.0F);
    d.tissue.assign(kRows * kCols, 0.0F);
    const test::TestSlideGeometry g;
    const PointD c = hotCentreLevel0(i);
    for (int y = 0; y < kRows; ++y)
        for (int x = 0; x < kCols; ++x) {
            const double cx = (x + 0.5) * kCell, cy = (y + 0.5) * kCell;
            const bool tissue = cx > g.tissueX0 && cx < g.tissueX1 && cy > g.tissueY0 && cy < g.tissueY1;
            const double d2 = ((cx - c.x) * (cx - c.x) + (cy - c.y) * (cy - c.y)) / (kCell * kCell);
            const auto k = static_cast<std::size_t>(y * kCols + x);
            d.tissue[k] = tissue ? 1.0F : 0.0F;
            d.heat[k] = tissue ? static_cast<float>(std::exp(-d2 / (2.0 * 1.3 * 1.3))) : 0.0F;
        }
    d.slideFile = "slide.tif";
    d.model = (dir / model / "fold0" / "model.pt").string();
    d.task = "classify";
    const fs::path out = dir / ("model" + std::to_string(i) + "_heatmap.h5");
    writeHeatmapFile(out, d);
    return out;
}

std::shared_ptr<AnnotationSet> lesionAnnotation() {
    auto set = std::make_shared<AnnotationSet>();
    Annotation a;
    a.name = "lesion";
    a.type = AnnotationType::Polygon;
    a.color = "#00FF00";
    const PointD c = hotCentreLevel0(1);
    a.coordinates = {{c.x - 300, c.y - 250}, {c.x + 320, c.y - 200}, {c.x + 260, c.y + 280}, {c.x - 280, c.y + 240}};
    set->annotations.push_back(a);
    return set;
}

struct Fixture {
    nic::test::TempDir dir;
    fs::path slide = dir / "slide.tif";
    QStringList heatmaps;
    explicit Fixture(int count) {
        nic::test::writeTestSlide(slide);
        const char* names[] = {"vae", "bigan", "contrastive", "supervised", "mean-rgb", "tissue"};
        for (int i = 0; i < count; ++i)
            heatmaps << QString::fromStdString(writeHeatmap(dir.path(), i, names[i]).string());
    }
};

bool viewportsEqual(const CompareView& cv, QString* why = nullptr) {
    const Viewport a = cv.view(0)->viewport();
    for (int i = 1; i < cv.viewCount(); ++i) {
        const Viewport b = cv.view(i)->viewport();
        if (std::abs(a.centerX - b.centerX) > 1e-6 || std::abs(a.centerY - b.centerY) > 1e-6 ||
            std::abs(a.zoom - b.zoom) > 1e-12) {
            if (why)
                *why = QStringLiteral("view %1: centre (%2, %3) zoom %4 vs view 0: (%5, %6) zoom %7")
                           .arg(i)
                           .arg(b.centerX)
                           .arg(b.centerY)
                           .arg(b.zoom)
                           .arg(a.centerX)
                           .arg(a.centerY)
                           .arg(a.zoom);
            return false;
        }
    }
    return true;
}

/// Red minus blue of the framebuffer pixel over level-0 point `p`, averaged over a 5 × 5 patch.
int redMinusBlue(SlideView* v, const QImage& fb, PointD p) {
    const PointD s = v->viewport().toScreen(p);
    int sum = 0, n = 0;
    for (int dy = -2; dy <= 2; ++dy)
        for (int dx = -2; dx <= 2; ++dx) {
            const int x = static_cast<int>(std::lround(s.x)) + dx;
            const int y = static_cast<int>(std::lround(s.y)) + dy;
            if (!fb.rect().contains(x, y))
                continue;
            const QRgb c = fb.pixel(x, y);
            sum += qRed(c) - qBlue(c);
            ++n;
        }
    return n ? sum / n : 0;
}

} // namespace

TEST(CompareView, GridShapes) {
    EXPECT_EQ(CompareView::gridShape(2), std::make_pair(1, 2));
    EXPECT_EQ(CompareView::gridShape(3), std::make_pair(1, 3));
    EXPECT_EQ(CompareView::gridShape(4), std::make_pair(2, 2));
    EXPECT_EQ(CompareView::gridShape(5), std::make_pair(2, 3));
    EXPECT_EQ(CompareView::gridShape(6), std::make_pair(2, 3));
}

TEST(CompareView, ModelDisplayNames) {
    EXPECT_EQ(modelDisplayName(QStringLiteral("/runs/bigan-run/fold2/model.pt")), QStringLiteral("bigan-run fold 2"));
    EXPECT_EQ(modelDisplayName(QStringLiteral("models/vae_slide.pt")), QStringLiteral("vae_slide"));
    EXPECT_EQ(modelDisplayName(QString()), QString());
}

TEST(CompareView, RefusesTooFewOrTooManyHeatmaps) {
    CompareView cv;
    QString error;
    EXPECT_FALSE(cv.openFiles(QStringLiteral("slide.tif"), {QStringLiteral("a_heatmap.h5")}, {}, &error));
    EXPECT_EQ(error, QStringLiteral("Choose 2 to 6 heatmaps to compare (got 1)"));
    QStringList seven;
    for (int i = 0; i < 7; ++i)
        seven << QStringLiteral("h%1_heatmap.h5").arg(i);
    EXPECT_FALSE(cv.openFiles(QStringLiteral("slide.tif"), seven, {}, &error));
    EXPECT_EQ(error, QStringLiteral("Choose 2 to 6 heatmaps to compare (got 7)"));
    EXPECT_EQ(cv.viewCount(), 0);
}

TEST(CompareView, BadHeatmapFileIsReportedWithItsCause) {
    Fixture f(1);
    const fs::path bogus = f.dir / "notes.txt";
    std::ofstream(bogus) << "not a heatmap";
    const fs::path missing = f.dir / "gone_heatmap.h5";
    EXPECT_EQ(test::errorOf<Error>([&] { loadCompareHeatmap(QString::fromStdString(bogus.string()), 2048); }),
              bogus.string() + ": not a heatmap file (expected <slide>_heatmap.h5 from nic gradcam or an ASAP "
                               "_likelihood_map.tif)");
    const std::string why = test::errorOf<Error>([&] { loadCompareHeatmap(QString::fromStdString(missing.string()), 2048); });
    EXPECT_NE(why.find(missing.string()), std::string::npos) << why;

    CompareView cv;
    QSignalSpy failed(&cv, &CompareView::loadFailed);
    ASSERT_TRUE(cv.openFiles(QString::fromStdString(f.slide.string()),
                             {f.heatmaps.front(), QString::fromStdString(missing.string())}));
    cv.resize(800, 400);
    cv.show();
    ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() > 0; }, 15000));
    EXPECT_TRUE(failed.front().front().toString().contains(QString::fromStdString(missing.string())));
    EXPECT_TRUE(cv.statusLabel()->text().contains(QString::fromStdString(missing.string())));
    // The readable heatmap is still shown, and the view still works.
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv.view(0)->heatmap() != nullptr; }, 5000));
    EXPECT_EQ(cv.view(1)->heatmap(), nullptr);
    // Both views have their slide (opened in the background) before the first one is moved.
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv.view(0)->hasSlide() && cv.view(1)->hasSlide(); }, 15000));
    cv.view(0)->centerOn({500, 500});
    QString unequal;
    EXPECT_TRUE(viewportsEqual(cv, &unequal)) << unequal.toStdString();
}

TEST(CompareView, ThreeViewsStaySynchronisedAndShowTheirOwnHeatmaps) {
    Fixture f(3);
    CompareView cv;
    QSignalSpy ready(&cv, &CompareView::ready);
    ASSERT_TRUE(cv.openFiles(QString::fromStdString(f.slide.string()), f.heatmaps));
    cv.setAnnotations(lesionAnnotation());
    cv.setColorMap(ColorMapKind::Jet);
    cv.setHeatmapOpacity(0.6);
    cv.resize(1200, 460);
    cv.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&cv));
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv.isReady(); }, 20000)) << cv.statusLabel()->text().toStdString();
    EXPECT_EQ(ready.count(), 1);
    ASSERT_EQ(cv.viewCount(), 3);
    // Titles are the models' names (the run folder of <run>/fold0/model.pt).
    EXPECT_EQ(cv.titleLabel(0)->text(), QStringLiteral("vae fold 0"));
    EXPECT_EQ(cv.titleLabel(1)->text(), QStringLiteral("bigan fold 0"));
    EXPECT_EQ(cv.titleLabel(2)->text(), QStringLiteral("contrastive fold 0"));
    // One shared annotation set.
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(cv.view(i)->annotations(), cv.view(0)->annotations());
    ASSERT_NE(cv.view(0)->annotations(), nullptr);

    QString why;
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();

    // Pan one: every view follows, and each emits viewportChanged exactly once (no ping-pong).
    std::vector<std::unique_ptr<QSignalSpy>> spies;
    for (int i = 0; i < 3; ++i)
        spies.push_back(std::make_unique<QSignalSpy>(cv.view(i), &SlideView::viewportChanged));
    cv.view(1)->centerOn({900, 700});
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();
    EXPECT_DOUBLE_EQ(cv.view(2)->viewport().centerX, 900);
    EXPECT_DOUBLE_EQ(cv.view(0)->viewport().centerY, 700);
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(spies[i]->count(), 1) << "view " << i;

    // Zoom another (API), then a third with the mouse wheel: all follow.
    cv.view(2)->zoomBy(1.5, QPointF(100, 80));
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();
    const double zoomBefore = cv.view(1)->viewport().zoom;
    SlideView* v0 = cv.view(0);
    const QPointF at(v0->width() / 3.0, v0->height() / 2.0);
    QWheelEvent wheel(at, v0->mapToGlobal(at), QPoint(), QPoint(0, 120), Qt::NoButton, Qt::NoModifier,
                      Qt::NoScrollPhase, false);
    QApplication::sendEvent(v0, &wheel);
    QTest::qWait(50);
    EXPECT_GT(cv.view(1)->viewport().zoom, zoomBefore);
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();
    // Drag-pan a view with the mouse.
    SlideView* v1 = cv.view(1);
    const double cx = v1->viewport().centerX;
    QTest::mousePress(v1, Qt::LeftButton, Qt::NoModifier, QPoint(200, 200));
    QMouseEvent move(QEvent::MouseMove, QPointF(260, 230), v1->mapToGlobal(QPointF(260, 230)), Qt::NoButton,
                     Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(v1, &move);
    QTest::mouseRelease(v1, Qt::LeftButton, Qt::NoModifier, QPoint(260, 230));
    EXPECT_NE(cv.view(2)->viewport().centerX, cx);
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();

    // Framebuffers: show the whole slide, then each view is "hot" (jet's red end) over its own blob
    // and "cold" (jet's blue end) over the blobs of the other models.
    cv.view(0)->fitToWindow();
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();
    QTest::qWait(100);
    for (int i = 0; i < 3; ++i) {
        SlideView* v = cv.view(i);
        const QImage fb = v->grabFramebuffer();
        ASSERT_FALSE(fb.isNull());
        for (int block = 0; block < 3; ++block) {
            const int rb = redMinusBlue(v, fb, hotCentreLevel0(block));
            if (block == i)
                EXPECT_GT(rb, 40) << "view " << i << " over its own hot spot";
            else
                EXPECT_LT(rb, -40) << "view " << i << " over the hot spot of model " << block;
        }
    }

    const QImage shot = cv.renderToImage();
    EXPECT_EQ(shot.size(), cv.size());
    const fs::path local = f.dir / "compare-view.png";
    EXPECT_TRUE(shot.save(QString::fromStdString(local.string())));
}

TEST(CompareView, SixViewsInTwoRowsFollowALateOpeningView) {
    Fixture f(6);
    CompareView cv;
    ASSERT_TRUE(cv.openFiles(QString::fromStdString(f.slide.string()), f.heatmaps));
    cv.resize(1200, 700);
    cv.show();
    // Move the first view as soon as it has its slide, before the others may have theirs.
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv.view(0)->hasSlide(); }, 20000));
    cv.view(0)->centerOn({300, 400});
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv.isReady(); }, 20000));
    QString why;
    EXPECT_TRUE(viewportsEqual(cv, &why)) << why.toStdString();
    EXPECT_DOUBLE_EQ(cv.view(5)->viewport().centerX, 300);
    EXPECT_EQ(cv.view(3)->mapTo(&cv, QPoint()).y() > cv.view(0)->mapTo(&cv, QPoint()).y(), true); // second row
}

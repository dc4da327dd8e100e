// The viewer as a pathologist uses it: smooth vs cell heatmaps and the iso-contour at the threshold
// (pixels of the framebuffer), focus mode (the slide takes >= 90 % of a 1600 × 1000 window), the info
// box (prediction, model, pixel AUC and pointing game equal to `nic eval-heatmap`), view settings that
// survive a restart (temporary settings file), GeoJSON import/export and heatmap tiles from the window,
// and Help ▸ Keyboard shortcuts.
#include "ui/mainwindow.h"

#include "core/annotations/annotation.h"
#include "core/annotations/geojson.h"
#include "core/heatmaps/heatmapeval.h"
#include "pixelcheck.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/heatmapgrid.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"
#include "ui/workflow.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QSettings>
#include <QSignalSpy>
#include <QSlider>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTest>
#include <QToolBar>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

using namespace nic;
using nic::test::colorNear;
using nic::test::rgb;

namespace {

bool waitFor(const std::function<bool()>& f) { return QTest::qWaitFor(f, 15000); }

// The colour the shader gives value v on a [0, 1] range: entry round(v · 255) of the table.
nic::test::Rgb mapped(ColorMapKind kind, double v) {
    const auto& t = colorTable(kind);
    return rgb(t[static_cast<std::size_t>(std::floor(std::clamp(v, 0.0, 1.0) * 255.0 + 0.5))]);
}

// 8 × 6 cells of 256 px over the 2048 × 1536 synthetic slide; column c holds c / 7 (a ramp left to right).
std::shared_ptr<HeatmapGrid> ramp() {
    auto g = std::make_shared<HeatmapGrid>();
    g->width = 8;
    g->height = 6;
    g->cellSize = 256;
    for (int r = 0; r < 6; ++r)
        for (int c = 0; c < 8; ++c)
            g->values.push_back(static_cast<float>(c) / 7.0F);
    return g;
}

class HeatmapViewTest : public ::testing::Test {
protected:
    void SetUp() override {
        slidePath = dir / "synthetic.tif";
        nic::test::writeTestSlide(slidePath);
        view = std::make_unique<SlideView>();
        view->resize(700, 480);
        view->setAnimationsEnabled(false);
        view->show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(view.get()));
        QSignalSpy opened(view.get(), &SlideView::slideOpened);
        view->openSlide(QString::fromStdString(slidePath.string()));
        ASSERT_TRUE(opened.wait(10000));
        ASSERT_TRUE(waitFor([&] { return view->isFullyLoaded(); }));
    }
    QImage frame() {
        QTest::qWait(20);
        return view->grabFramebuffer();
    }
    PointD screen(double x, double y) const { return view->viewport().toScreen({x, y}); }

    nic::test::TempDir dir;
    std::filesystem::path slidePath;
    std::unique_ptr<SlideView> view;
};

} // namespace

TEST(IsoContour, RampGivesAStraightLineWhereTheValueCrossesTheLevel) {
    const auto g = ramp();
    // 0.5 lies halfway between the centres of columns 3 (3/7) and 4 (4/7): level-0 x = 4 · 256.
    const auto seg = isoContour(*g, 0.5F);
    ASSERT_EQ(seg.size(), 5U * 4U); // one segment per row gap
    for (std::size_t i = 0; i < seg.size(); i += 4) {
        EXPECT_NEAR(seg[i], 1024.0F, 1e-3F);
        EXPECT_NEAR(seg[i + 2], 1024.0F, 1e-3F);
    }
    EXPECT_FLOAT_EQ(std::min(seg[1], seg[3]), 128.0F); // from the first row's centre ...
    EXPECT_TRUE(isoContour(*g, -std::numeric_limits<float>::infinity()).empty());
    EXPECT_TRUE(isoContour(*g, 2.0F).empty()); // nothing reaches it
    // A NaN cell (glass) removes the squares around it: no line along glass.
    auto holed = *g;
    holed.values[2 * 8 + 3] = std::nanf("");
    EXPECT_EQ(isoContour(holed, 0.5F).size(), 3U * 4U);
}

TEST(IsoContour, SaddleIsSplitByTheMean) {
    HeatmapGrid g;
    g.width = g.height = 2;
    g.cellSize = 2;
    g.values = {1.0F, 0.0F, 0.0F, 1.0F}; // diagonal highs: mean 0.5 >= 0.5, the highs connect
    auto seg = isoContour(g, 0.5F);
    ASSERT_EQ(seg.size(), 8U);
    // Segments cut off the low corners: top-right (top edge to right edge) and bottom-left.
    EXPECT_FLOAT_EQ(seg[0], 2.0F);
    EXPECT_FLOAT_EQ(seg[1], 1.0F);
    EXPECT_FLOAT_EQ(seg[2], 3.0F);
    EXPECT_FLOAT_EQ(seg[3], 2.0F);
}

TEST_F(HeatmapViewTest, SmoothInterpolatesBetweenCellCentresAndCellsAreFlat) {
    auto g = ramp();
    g->values[0] = std::nanf(""); // cell (0, 0): glass
    view->setHeatmap(g);
    view->setColorMap(ColorMapKind::Jet);
    view->setHeatmapOpacity(1.0);
    EXPECT_EQ(view->heatmapRendering(), HeatmapRendering::Cells);
    // Sample points (level-0): a quarter into column 2, and just right of the NaN cell in row 0.
    const PointD q = screen(2.25 * 256, 2.5 * 256);
    const PointD nearGlass = screen(1.05 * 256, 0.5 * 256);
    QImage cells = frame();
    EXPECT_TRUE(colorNear(cells, q, mapped(ColorMapKind::Jet, 2.0 / 7.0), 2));
    EXPECT_TRUE(colorNear(cells, screen(0.5 * 256, 0.5 * 256), nic::test::kGlass));

    view->setHeatmapRendering(HeatmapRendering::Smooth);
    QImage smooth = frame();
    // Bilinear between the centres of columns 1 and 2: 1.75 / 7 = 0.25.
    EXPECT_TRUE(colorNear(smooth, q, mapped(ColorMapKind::Jet, 0.25), 4));
    EXPECT_FALSE(colorNear(smooth, q, mapped(ColorMapKind::Jet, 2.0 / 7.0), 4));
    // Glass stays undrawn and does not bleed into its neighbour (which keeps its own value 1/7).
    EXPECT_TRUE(colorNear(smooth, screen(0.5 * 256, 0.5 * 256), nic::test::kGlass));
    EXPECT_TRUE(colorNear(smooth, nearGlass, mapped(ColorMapKind::Jet, 1.0 / 7.0), 4));
    // Along a row the smooth colours change every few pixels; in cell mode only at cell borders.
    auto distinct = [&](const QImage& img) {
        QSet<QRgb> colours;
        const int y = static_cast<int>(screen(0, 3.5 * 256).y);
        for (int x = static_cast<int>(screen(1.6 * 256, 0).x); x < static_cast<int>(screen(5.4 * 256, 0).x); ++x)
            colours.insert(img.pixel(x, y));
        return colours.size();
    };
    EXPECT_EQ(distinct(cells), 5); // columns 1 (part), 2, 3, 4 and 5 (part)
    EXPECT_GT(distinct(smooth), 20);
}

TEST_F(HeatmapViewTest, ContourIsDrawnWhereTheHeatmapCrossesTheThreshold) {
    view->setHeatmap(ramp());
    view->setColorMap(ColorMapKind::Jet);
    view->setHeatmapOpacity(1.0);
    view->setHeatmapThreshold(0.5);
    view->setHeatmapVisible(false); // the outline alone, tissue uncovered
    view->setContourVisible(true);
    const QImage img = frame();
    // The line is the vertical x = 1024 (level-0) from row centre 0.5 to 5.5; at y = 700 it crosses tissue.
    const PointD on = screen(1024, 700);
    int white = 0;
    for (int dx = -1; dx <= 1; ++dx)
        white += colorNear(img, {on.x + dx, on.y}, {255, 255, 255}, 1) ? 1 : 0;
    EXPECT_GE(white, 1) << "no contour pixel near x = " << on.x;
    EXPECT_TRUE(colorNear(img, {on.x - 6, on.y}, nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, {on.x + 6, on.y}, nic::test::kTissue));
    // Below the last row centre (y > 5.5 · 256) there is no line.
    EXPECT_TRUE(colorNear(img, screen(1024, 5.8 * 256), nic::test::kGlass));

    // With the smooth colours on: below the threshold (left) the tissue shows, above it (right) the heat,
    // and the outline lies on the border between them.
    view->setHeatmapVisible(true);
    view->setHeatmapRendering(HeatmapRendering::Smooth);
    const QImage both = frame();
    EXPECT_TRUE(colorNear(both, {on.x - 6, on.y}, nic::test::kTissue));
    EXPECT_FALSE(colorNear(both, {on.x + 6, on.y}, nic::test::kTissue, 20));
    int whiteBoth = 0;
    for (int dx = -1; dx <= 1; ++dx)
        whiteBoth += colorNear(both, {on.x + dx, on.y}, {255, 255, 255}, 1) ? 1 : 0;
    EXPECT_GE(whiteBoth, 1);
    // Moving the threshold moves the line: 0.75 lies between columns 5 and 6 → x = 5.25 · 256 + 128.
    view->setHeatmapThreshold(0.75);
    const auto& seg = view->contourSegments();
    ASSERT_FALSE(seg.empty());
    EXPECT_NEAR(seg[0], (5.5 + 0.25) * 256, 1e-2);
}

namespace {

// A nic gradcam-like heatmap of the synthetic slide (8 × 6 cells of 256 px) and lesion annotations.
HeatmapData gradcamHeatmap() {
    HeatmapData d;
    d.cols = 8;
    d.rows = 6;
    d.cellSize = 256;
    d.level0Width = 2048;
    d.level0Height = 1536;
    d.slideFile = "case.tif";
    d.model = "fold3/slide_cnn.pt";
    d.task = "metastasis";
    d.layer = 2;
    d.output = 1.5;
    d.prediction = 0.8137;
    for (int r = 0; r < 6; ++r)
        for (int c = 0; c < 8; ++c) {
            d.tissue.push_back(c >= 1 && c <= 4 && r >= 1 && r <= 3 ? 1.0F : 0.0F);
            d.heat.push_back(static_cast<float>((c * 7 + r * 3) % 11) / 10.0F);
        }
    return d;
}

AnnotationSet lesions() {
    AnnotationSet s;
    s.groups.push_back({"metastases", "", "#ff0000", {}, {}, GroupElement::Group});
    Annotation a;
    a.name = "Annotation 0";
    a.type = AnnotationType::Polygon;
    a.group = "metastases";
    a.color = "#F4FA58";
    a.coordinates = {{512, 256}, {1024, 256}, {1024, 768}, {512, 768}};
    s.annotations.push_back(a);
    return s;
}

} // namespace

TEST(PathologistView, InfoPanelShowsPredictionModelAndAgreementOfNicEvalHeatmap) {
    nic::test::TempDir dir;
    const auto slide = dir / "case.tif";
    nic::test::writeTestSlide(slide);
    writeHeatmapFile(dir / "case_heatmap.h5", gradcamHeatmap());
    lesions().save(dir / "case.xml");

    // What `nic eval-heatmap` says for this slide.
    std::string out, err;
    const std::string cmd = "'" + nic::test::nicExecutable().string() + "' eval-heatmap --heatmap '" +
                            (dir / "case_heatmap.h5").string() + "' --annotations '" + (dir / "case.xml").string() +
                            "' --json '" + (dir / "eval.json").string() + "'";
    ASSERT_EQ(nic::test::runCommand(cmd, &out, &err), 0) << err;
    const auto eval = nlohmann::json::parse(nic::test::readFile(dir / "eval.json"))["slides"][0];
    char auc[32];
    std::snprintf(auc, sizeof auc, "%.3f", eval["pixel_auc"].get<double>());
    const QString pointing = eval["pointing_hit"].get<bool>() ? QStringLiteral("hit") : QStringLiteral("miss");

    MainWindow w;
    w.resize(1200, 800);
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(waitFor([&] { return tab->agreement().has_value(); }));
    const auto a = *tab->agreement();
    EXPECT_DOUBLE_EQ(a.pixelAuc, eval["pixel_auc"].get<double>());
    EXPECT_EQ(a.pointingHit, eval["pointing_hit"].get<bool>());
    EXPECT_EQ(a.lesionCells, eval["lesion_cells"].get<std::int64_t>());
    const QStringList expected = {QStringLiteral("Prediction 0.814 (metastasis)"),
                                  QStringLiteral("Model fold3/slide_cnn.pt (fold 3), layer 2"),
                                  QStringLiteral("Pixel AUC %1 · pointing game %2").arg(QString::fromLatin1(auc), pointing)};
    EXPECT_EQ(tab->infoLines(), expected) << tab->infoLines().join(QStringLiteral(" | ")).toStdString();
    EXPECT_EQ(tab->view()->infoLines(), expected);

    // The box is drawn at the top left of the view: dark behind light text, over the slide's glass.
    ASSERT_TRUE(waitFor([&] { return tab->view()->isFullyLoaded(); }));
    QTest::qWait(50);
    const QImage img = tab->view()->grabFramebuffer();
    const QColor inBox = img.pixelColor(10, 10);
    EXPECT_LT(inBox.red() + inBox.green() + inBox.blue(), 3 * 110) << "info box missing at (10, 10)";
    int light = 0;
    const QFontMetrics fm(tab->view()->font());
    for (int y = 8; y < 8 + 3 * fm.height() + 10; ++y)
        for (int x = 8; x < 8 + fm.horizontalAdvance(expected[2]); ++x)
            light += qGray(img.pixel(x, y)) > 200 ? 1 : 0;
    EXPECT_GT(light, 100) << "no text in the info box";

    // Without annotations the agreement line goes; prediction and model stay.
    tab->setAnnotations(nullptr);
    EXPECT_EQ(tab->infoLines(), expected.mid(0, 2));
}

TEST(PathologistView, FocusModeGivesTheSlideNinetyPercentOfTheWindow) {
    nic::test::TempDir dir;
    const auto slide = dir / "case.tif";
    nic::test::writeTestSlide(slide);
    MainWindow w;
    Workflow::install(&w);
    w.resize(1600, 1000);
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(waitFor([&] { return tab->view()->hasSlide(); }));
    QTest::qWait(50);
    // The docks' minimum sizes may add a few pixels of height; the share is taken of the actual window.
    ASSERT_EQ(w.width(), 1600);
    ASSERT_GE(w.height(), 1000);
    ASSERT_LE(w.height(), 1040);
    auto share = [&] {
        const QSize v = tab->view()->size();
        return static_cast<double>(v.width()) * v.height() / (static_cast<double>(w.width()) * w.height());
    };
    const double before = share();
    EXPECT_LT(before, 0.75); // docks, toolbars and the side panel take a quarter or more
    QDockWidget* cohort = Workflow::of(&w)->cohortDock();
    ASSERT_TRUE(cohort->isVisible());
    const QPoint inCohort = cohort->mapTo(&w, cohort->rect().center());

    // The key goes where the user's would: to the view, in the active window.
    w.activateWindow();
    ASSERT_TRUE(QTest::qWaitForWindowActive(&w));
    tab->view()->setFocus();
    QTest::keyClick(tab->view(), Qt::Key_F11);
    ASSERT_TRUE(w.focusMode());
    QTest::qWait(100);
    ASSERT_TRUE(waitFor([&] { return tab->view()->isFullyLoaded(); }));
    const double during = share();
    EXPECT_GE(during, 0.90) << "view " << tab->view()->width() << "×" << tab->view()->height();
    EXPECT_FALSE(cohort->isVisible());
    EXPECT_FALSE(tab->isSidePanelVisible());
    for (auto* bar : w.findChildren<QToolBar*>())
        EXPECT_FALSE(bar->isVisible());
    // Where the cohort dock was, the window now shows the view's own pixels.
    const QImage win = w.grab().toImage();
    const QImage viewImg = tab->view()->grabFramebuffer();
    const QPoint inView = tab->view()->mapFrom(&w, inCohort);
    ASSERT_TRUE(viewImg.rect().contains(inView));
    EXPECT_EQ(win.pixelColor(inCohort).rgb(), viewImg.pixelColor(inView).rgb());

    // The same key brings everything back.
    QTest::keyClick(tab->view(), Qt::Key_F11);
    EXPECT_FALSE(w.focusMode());
    QTest::qWait(100);
    EXPECT_TRUE(cohort->isVisible());
    EXPECT_TRUE(tab->isSidePanelVisible());
    EXPECT_NEAR(share(), before, 0.01);
    std::printf("[ figures  ] slide share of a 1600x1000 window: %.1f %% normal, %.1f %% in focus mode\n", 100 * before,
                100 * during);
}

TEST(PathologistView, ViewSettingsSurviveARestart) {
    nic::test::TempDir dir;
    const auto slide = dir / "case.tif";
    nic::test::writeTestSlide(slide);
    // A temporary settings file for this test only.
    const auto configDir = dir / "config";
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, QString::fromStdString(configDir.string()));
    const QString settingsFile = QSettings().fileName();
    EXPECT_TRUE(settingsFile.startsWith(QString::fromStdString(configDir.string()))) << settingsFile.toStdString();
    {
        MainWindow w;
        Workflow::install(&w);
        EXPECT_FALSE(w.restoreLayout()); // nothing saved yet
        w.show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
        SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
        tab->colorMapCombo()->setCurrentIndex(tab->colorMapCombo()->findData(static_cast<int>(ColorMapKind::Jet)));
        tab->opacitySlider()->setValue(35);
        tab->percentileSpin()->setValue(75.0);
        tab->renderingCombo()->setCurrentIndex(1);
        tab->contourCheck()->setChecked(true);
        Workflow::of(&w)->cohortDock()->hide();
        w.close(); // saves the layout
    }
    ASSERT_TRUE(std::filesystem::exists(settingsFile.toStdString()));
    {
        // What is on disk, read through a separate object.
        const QSettings onDisk(settingsFile, QSettings::IniFormat);
        EXPECT_EQ(onDisk.value(QStringLiteral("view/opacity")).toInt(), 35);
        EXPECT_EQ(onDisk.value(QStringLiteral("view/heatmapRendering")).toString(), QStringLiteral("smooth"));
        EXPECT_FALSE(onDisk.value(QStringLiteral("window/state")).toByteArray().isEmpty());
    }
    {
        MainWindow w;
        Workflow::install(&w);
        EXPECT_TRUE(w.restoreLayout());
        w.show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
        EXPECT_FALSE(Workflow::of(&w)->cohortDock()->isVisible());
        EXPECT_TRUE(Workflow::of(&w)->jobsDock()->isVisible());
        SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
        EXPECT_EQ(tab->view()->colorMap(), ColorMapKind::Jet);
        EXPECT_DOUBLE_EQ(tab->view()->heatmapOpacity(), 0.35);
        EXPECT_DOUBLE_EQ(tab->percentileSpin()->value(), 75.0);
        EXPECT_EQ(tab->view()->heatmapRendering(), HeatmapRendering::Smooth);
        EXPECT_TRUE(tab->view()->contourVisible());
    }
    QSettings().clear();
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope,
                       QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation));
}

TEST(PathologistView, GeoJsonImportExportAndHeatmapTilesFromTheWindow) {
    nic::test::TempDir dir;
    const auto slide = dir / "case.tif";
    nic::test::writeTestSlide(slide);
    writeHeatmapFile(dir / "case_heatmap.h5", gradcamHeatmap());
    // QuPath-shaped input with a hole.
    {
        std::ofstream f(dir / "qupath.geojson");
        f << R"({"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":)"
             R"([[[300,300],[1200,300],[1200,1000],[300,1000],[300,300]],[[600,500],[800,500],[800,700],[600,500]]]},)"
             R"("properties":{"objectType":"annotation","name":"T1","classification":{"name":"Tumor","color":[200,0,0]}}}]})";
    }
    MainWindow w;
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy heat(tab, &SlideTab::heatmapLoaded);
    ASSERT_TRUE(heat.count() > 0 || heat.wait(10000));
    ASSERT_TRUE(w.importAnnotations(QString::fromStdString((dir / "qupath.geojson").string())));
    ASSERT_TRUE(waitFor([&] { return tab->view()->annotations() && tab->view()->annotations()->annotations.size() == 2; }));
    EXPECT_EQ(tab->view()->annotations()->groups.at(0).name, "Tumor");

    QSignalSpy exported(&w, &MainWindow::annotationsExported);
    ASSERT_TRUE(w.exportAnnotations(QString::fromStdString((dir / "out.xml").string())));
    ASSERT_TRUE(exported.wait(10000));
    EXPECT_EQ(exported.at(0).at(1).toString(), QString());
    EXPECT_EQ(exported.at(0).at(2).toStringList().size(), 1); // the hole: ASAP draws it filled
    ASSERT_TRUE(w.exportAnnotations(QString::fromStdString((dir / "out.geojson").string())));
    ASSERT_TRUE(exported.wait(10000));
    const auto back = nlohmann::json::parse(nic::test::readFile(dir / "out.geojson"));
    const auto in = nlohmann::json::parse(nic::test::readFile(dir / "qupath.geojson"));
    EXPECT_EQ(back["features"][0]["geometry"], in["features"][0]["geometry"]);

    QSignalSpy tiles(&w, &MainWindow::heatmapExported);
    tab->percentileSpin()->setValue(0.0); // every tissue cell
    ASSERT_TRUE(w.exportHeatmapTiles(QString::fromStdString((dir / "tiles.geojson").string())));
    ASSERT_TRUE(tiles.wait(10000));
    EXPECT_EQ(tiles.at(0).at(1).toString(), QString());
    EXPECT_EQ(tiles.at(0).at(2).toULongLong(), 12U); // 4 × 3 tissue cells
    const auto t = nlohmann::json::parse(nic::test::readFile(dir / "tiles.geojson"));
    EXPECT_EQ(t["properties"]["prediction"], 0.8137);
    EXPECT_EQ(t["features"].size(), 12U);
}

TEST(PathologistView, KeyboardShortcutsAreListed) {
    MainWindow w;
    const QStringList lines = w.shortcutsText().split(QLatin1Char('\n'));
    EXPECT_TRUE(lines.contains(QStringLiteral("F11\tFocus mode (slide only)"))) << w.shortcutsText().toStdString();
    EXPECT_TRUE(lines.contains(QStringLiteral("Ctrl+O\tOpen slide…")));
    EXPECT_TRUE(lines.contains(QStringLiteral("P\tPolygon")));
    EXPECT_TRUE(lines.contains(QStringLiteral("Home\tFit the slide to the view")));
}

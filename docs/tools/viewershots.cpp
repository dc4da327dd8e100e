// viewer.png, viewer-figure.png and compare-view.png: a real slide with a smooth Grad-CAM-like heatmap and
// annotations in the main window and as an exported figure, and three synchronised heatmap viewers.
#include "docshots.h"

#include "core/annotations/annotation.h"
#include "core/heatmaps/heatmapeval.h"
#include "testslide.h"
#include "ui/colormap.h"
#include "ui/compareview.h"
#include "ui/heatmapgrid.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"
#include "ui/viewexport.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QPainter>
#include <QSlider>
#include <QTest>

#include <cmath>
#include <stdexcept>

namespace nic::docs {

namespace {

namespace fs = std::filesystem;

constexpr const char* kSlide = "slides/CMU-1-Small-Region.svs"; // 2220 × 2967 px, under sharedDataDir()
constexpr int kSlideWidth = 2220;
constexpr int kSlideHeight = 2967;

/// On CMU-1-Small-Region: a tumour polygon, a stroma rectangle and a measurement, in two groups.
AnnotationSet slideAnnotations() {
    AnnotationSet set;
    set.groups.push_back({"tumor", "", "#ff3030", {}, {}, GroupElement::Group});
    set.groups.push_back({"stroma", "", "#30a0ff", {}, {}, GroupElement::Group});
    Annotation a;
    a.type = AnnotationType::Polygon;
    a.group = "tumor";
    a.name = "Region of interest";
    for (int i = 0; i < 24; ++i) {
        const double t = i / 24.0 * 2 * M_PI;
        a.coordinates.push_back({1150 + 420 * std::cos(t) + 60 * std::cos(3 * t), 1500 + 520 * std::sin(t)});
    }
    set.annotations.push_back(a);
    a.group = "stroma";
    a.name = "Stroma";
    a.type = AnnotationType::Rectangle;
    a.coordinates = {{200, 2300}, {800, 2300}, {800, 2800}, {200, 2800}};
    set.annotations.push_back(a);
    a.type = AnnotationType::Measurement;
    a.name = "Width";
    a.group = "";
    a.coordinates = {{1500, 400}, {2000, 600}};
    set.annotations.push_back(a);
    return set;
}

/// The smooth "likelihood" of the viewer shots at cell (c, r) of 32 px: a Gaussian around the tumour polygon.
float likelihood(int c, int r) {
    const double dx = (c * 32 - 1150) / 500.0, dy = (r * 32 - 1500) / 600.0;
    return static_cast<float>(std::exp(-(dx * dx + dy * dy) * 1.5));
}

void writeViewer(const QString& out, const fs::path&) {
    MainWindow w;
    w.resize(1280, 800);
    w.show();
    if (!QTest::qWaitForWindowExposed(&w))
        throw std::runtime_error("the main window was not shown");
    SlideTab* tab = w.openSlide(QString::fromStdString((sharedDataDir() / kSlide).string()));
    if (!tab)
        throw std::runtime_error("cannot open " + (sharedDataDir() / kSlide).string());
    waitUntil([&] { return tab->view()->hasSlide(); }, "opening the slide");
    tab->setAnnotations(std::make_shared<AnnotationSet>(slideAnnotations()));
    auto grid = std::make_shared<HeatmapGrid>();
    grid->cellSize = 32;
    grid->width = static_cast<int>(std::ceil(kSlideWidth / 32.0));
    grid->height = static_cast<int>(std::ceil(kSlideHeight / 32.0));
    for (int r = 0; r < grid->height; ++r)
        for (int c = 0; c < grid->width; ++c)
            grid->values.push_back(likelihood(c, r));
    tab->setHeatmap(grid);
    tab->colorMapCombo()->setCurrentIndex(1);
    tab->opacitySlider()->setValue(45);
    tab->percentileSpin()->setValue(80);
    tab->view()->setAnimationsEnabled(false);
    tab->view()->zoomToRect({500, 700, 1400, 1500});
    QTest::qWait(50);
    waitUntil([&] { return tab->view()->isFullyLoaded(); }, "loading the tiles");
    QTest::mouseMove(tab->view(), QPoint(300, 300));
    QTest::qWait(300);
    // QWidget::grab() leaves out what QPainter drew over the GL widget, so paint the view's own
    // framebuffer (tiles + layers + overlay) into the window grab.
    QPixmap shot = w.grab();
    {
        QPainter p(&shot);
        p.drawImage(QRect(tab->view()->mapTo(&w, QPoint(0, 0)), tab->view()->size()), tab->view()->grabFramebuffer());
    }
    savePng(shot.toImage(), out);
}

/// What `nic-studio slide.svs --region 300,500,1800,1700 --width 900 --export-view out.png` writes with a
/// Grad-CAM-format heatmap and the annotations beside the slide.
void writeViewerFigure(const QString& out, const fs::path& scratch) {
    const fs::path slide = scratch / "CMU-1-Small-Region.svs";
    fs::create_symlink(sharedDataDir() / kSlide, slide);
    slideAnnotations().save(scratch / "CMU-1-Small-Region.xml");
    HeatmapData d;
    d.cellSize = 32;
    d.cols = static_cast<int>(std::ceil(kSlideWidth / 32.0));
    d.rows = static_cast<int>(std::ceil(kSlideHeight / 32.0));
    d.level0Width = kSlideWidth;
    d.level0Height = kSlideHeight;
    for (int r = 0; r < d.rows; ++r)
        for (int c = 0; c < d.cols; ++c) {
            const float heat = likelihood(c, r);
            d.heat.push_back(heat);
            d.tissue.push_back(heat > 0.1F ? 1.0F : 0.0F); // cells without tissue are not drawn
        }
    d.slideFile = "CMU-1-Small-Region.svs";
    writeHeatmapFile(scratch / "CMU-1-Small-Region_heatmap.h5", d);
    ViewExportRequest request;
    request.slide = QString::fromStdString(slide.string());
    request.region = RectD{300, 500, 1800, 1700};
    request.width = 900;
    request.output = out;
    if (runViewExport(request) != 0)
        throw std::runtime_error("the view export failed (its cause is above)");
}

/// Three models' heatmaps of one synthetic slide: each a Gaussian blob (σ = 1.3 cells) on the tissue
/// cells around a different centre, with one lesion outline shared by the views.
void writeCompareView(const QString& out, const fs::path& scratch) {
    constexpr int kCols = 16, kRows = 12; // the 2048 × 1536 test slide in cells of 128 px
    constexpr double kCell = 128.0;
    const PointD centres[] = {{3.5 * kCell, 3.5 * kCell}, {7.5 * kCell, 6.5 * kCell}, {8.5 * kCell, 2.5 * kCell}};
    const fs::path slide = scratch / "slide.tif";
    test::writeTestSlide(slide);
    const test::TestSlideGeometry g;
    QStringList heatmaps;
    const char* models[] = {"vae", "bigan", "contrastive"};
    for (int i = 0; i < 3; ++i) {
        HeatmapData d;
        d.rows = kRows;
        d.cols = kCols;
        d.cellSize = kCell;
        d.level0Width = g.width;
        d.level0Height = g.height;
        for (int y = 0; y < kRows; ++y)
            for (int x = 0; x < kCols; ++x) {
                const double cx = (x + 0.5) * kCell, cy = (y + 0.5) * kCell;
                const bool tissue = cx > g.tissueX0 && cx < g.tissueX1 && cy > g.tissueY0 && cy < g.tissueY1;
                const double d2 =
                    ((cx - centres[i].x) * (cx - centres[i].x) + (cy - centres[i].y) * (cy - centres[i].y)) /
                    (kCell * kCell);
                d.tissue.push_back(tissue ? 1.0F : 0.0F);
                d.heat.push_back(tissue ? static_cast<float>(std::exp(-d2 / (2.0 * 1.3 * 1.3))) : 0.0F);
            }
        d.slideFile = "slide.tif";
        d.model = (scratch / models[i] / "fold0" / "model.pt").string(); // the title: "<run> fold 0"
        d.task = "classify";
        const fs::path file = scratch / ("model" + std::to_string(i) + "_heatmap.h5");
        writeHeatmapFile(file, d);
        heatmaps << QString::fromStdString(file.string());
    }
    auto lesion = std::make_shared<AnnotationSet>();
    Annotation a;
    a.name = "lesion";
    a.type = AnnotationType::Polygon;
    a.color = "#00FF00";
    const PointD c = centres[1];
    a.coordinates = {{c.x - 300, c.y - 250}, {c.x + 320, c.y - 200}, {c.x + 260, c.y + 280}, {c.x - 280, c.y + 240}};
    lesion->annotations.push_back(a);

    CompareView cv;
    if (!cv.openFiles(QString::fromStdString(slide.string()), heatmaps))
        throw std::runtime_error("the compare view refused its files");
    cv.setAnnotations(lesion);
    cv.setColorMap(ColorMapKind::Jet);
    cv.setHeatmapOpacity(0.6);
    cv.resize(1200, 460);
    cv.show();
    if (!QTest::qWaitForWindowExposed(&cv))
        throw std::runtime_error("the compare view was not shown");
    waitUntil([&] { return cv.isReady(); }, "loading the compare view");
    cv.view(0)->fitToWindow();
    waitUntil(
        [&] {
            for (int i = 0; i < cv.viewCount(); ++i)
                if (!cv.view(i)->isFullyLoaded())
                    return false;
            return true;
        },
        "loading the compare view's tiles");
    QTest::qWait(100);
    savePng(cv.renderToImage(), out);
}

} // namespace

std::vector<DocShot> viewerShots() {
    return {
        {"viewer.png", "the main window: CMU-1-Small-Region with a heatmap and annotations", true, writeViewer},
        {"viewer-figure.png", "nic-studio --export-view of the same slide, heatmap and annotations", true,
         writeViewerFigure},
        {"compare-view.png", "the compare view: three models' heatmaps of one slide, synchronised", false,
         writeCompareView},
    };
}

} // namespace nic::docs

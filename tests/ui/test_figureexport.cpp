// Figure export (PNG/SVG/PDF rendered offscreen at a chosen size), the `nic-studio --export-view` CLI
// run as a subprocess, and the heatmap layer read from the HDF5 file `nic gradcam` writes.
#include "ui/figureexport.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "pixelcheck.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/heatmapgrid.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QCoreApplication>
#include <QFile>
#include <QImage>
#include <QSignalSpy>
#include <QImageReader>
#include <QLabel>
#include <QPainter>
#include <QTest>
#include <QXmlStreamReader>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

using namespace nic;
using nic::test::TestSlideGeometry;
using nic::test::colorNear;
using nic::test::halfway;
using nic::test::rgb;

namespace {


std::string readFile(const std::filesystem::path& p) {
    QFile f(QString::fromStdString(p.string()));
    return f.open(QIODevice::ReadOnly) ? f.readAll().toStdString() : std::string();
}

// A `nic gradcam` heatmap file over the test slide: 256 px cells, cell (2, 1) hot, cell (6, 0) on glass
// (tissue fraction 0), everything else cold tissue.
HeatmapData gradcamLikeHeatmap() {
    HeatmapData d;
    d.cols = 8;
    d.rows = 6;
    d.cellSize = 256;
    d.level0Width = 2048;
    d.level0Height = 1536;
    d.heat.assign(48, 0.0F);
    d.tissue.assign(48, 1.0F);
    d.heat[1 * 8 + 2] = 1.0F;
    d.heat[4 * 8 + 5] = 0.25F;
    d.tissue[0 * 8 + 6] = 0.0F;
    d.slideFile = "synthetic.tif";
    d.gridFile = "synthetic.h5";
    d.model = "model.pt";
    d.task = "classify";
    return d;
}

class FigureExportTest : public ::testing::Test {
protected:
    void SetUp() override {
        slidePath = dir / "synthetic.tif";
        nic::test::writeTestSlide(slidePath, geometry);
        view = std::make_unique<SlideView>();
        view->resize(640, 480);
        view->setAnimationsEnabled(false);
        view->show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(view.get()));
        QSignalSpy opened(view.get(), &SlideView::slideOpened);
        view->openSlide(QString::fromStdString(slidePath.string()));
        ASSERT_TRUE(opened.wait(10000));
        ASSERT_TRUE(QTest::qWaitFor([&] { return view->isFullyLoaded(); }, 10000));
    }
    void TearDown() override { view.reset(); }

    /// Exports `vp` to `name` through FigureExporter; returns the error ("" on success).
    QString exportFigure(const Viewport& vp, const std::string& name) {
        const QString out = QString::fromStdString((dir / name).string());
        auto* exporter = new FigureExporter(view.get(), vp, out, view.get());
        QSignalSpy done(exporter, &FigureExporter::finished);
        exporter->start(20000);
        if (!done.wait(30000))
            return QStringLiteral("no finished() signal");
        return done.at(0).at(1).toString();
    }

    nic::test::TempDir dir;
    TestSlideGeometry geometry;
    std::filesystem::path slidePath;
    std::unique_ptr<SlideView> view;
};

std::filesystem::path studioExecutable() {
    if (const char* env = std::getenv("NIC_STUDIO"))
        return env;
    // ui_tests lives in <build>/tests, nic-studio in <build>/app/nic-studio.
    return std::filesystem::path(QCoreApplication::applicationDirPath().toStdString()) / ".." / "app" / "nic-studio" / "nic-studio";
}

} // namespace

TEST(FigureExportPure, FormatByExtensionAndRegionSyntax) {
    EXPECT_EQ(figureFormatForPath(QStringLiteral("a/b.PNG")), FigureFormat::Png);
    EXPECT_EQ(figureFormatForPath(QStringLiteral("b.svg")), FigureFormat::Svg);
    EXPECT_EQ(figureFormatForPath(QStringLiteral("b.pdf")), FigureFormat::Pdf);
    EXPECT_FALSE(figureFormatForPath(QStringLiteral("b.jpg")));
    EXPECT_FALSE(figureFormatForPath(QStringLiteral("b")));
    const auto r = parseRegion(QStringLiteral("10, 20,300,400.5"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->x, 10);
    EXPECT_EQ(r->y, 20);
    EXPECT_EQ(r->w, 300);
    EXPECT_EQ(r->h, 400.5);
    for (const char* bad : {"", "1,2,3", "1,2,3,4,5", "a,2,3,4", "1,2,0,4", "1,2,3,-4", "1,2,nan,4"})
        EXPECT_FALSE(parseRegion(QString::fromLatin1(bad))) << bad;
}

TEST_F(FigureExportTest, PngHasTheRequestedSizeAndShowsTissueAtFullDetail) {
    // The whole slide at 1.5× the level-0 width would need level 0 everywhere; only the view's level 1
    // is cached, so the exporter has to wait for the figure's own tiles.
    const Viewport vp = figureViewport(*view, RectD{0, 0, 2048, 1536}, 3072);
    EXPECT_EQ(vp.width, 3072);
    EXPECT_EQ(vp.height, 2304);
    EXPECT_EQ(view->figureLevel(vp), 0);
    EXPECT_FALSE(view->isFigureReady(vp));
    ASSERT_EQ(exportFigure(vp, "figure.png"), QString());
    const QImage img(QString::fromStdString((dir / "figure.png").string()));
    ASSERT_FALSE(img.isNull());
    ASSERT_EQ(img.size(), QSize(3072, 2304));
    const double k = 1.5;
    EXPECT_TRUE(colorNear(img, {768 * k, 640 * k}, nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, {1664 * k, 1152 * k}, nic::test::kBlue));
    EXPECT_TRUE(colorNear(img, {1800 * k, 300 * k}, nic::test::kGlass));
    // Full detail: the tissue edge (level-0 x = 256) is sharp to within a figure pixel or two.
    EXPECT_TRUE(colorNear(img, {256 * k + 2, 640 * k}, nic::test::kTissue));
    EXPECT_TRUE(colorNear(img, {256 * k - 3, 640 * k}, nic::test::kGlass));
    // No temporary file left beside it.
    EXPECT_EQ(test::entriesIn(dir.path()), 2); // the slide and the figure
}

TEST_F(FigureExportTest, PngOfTheCurrentViewScalesItAndCarriesHeatmapAnnotationsLegend) {
    auto grid = std::make_shared<HeatmapGrid>();
    grid->width = 8;
    grid->height = 6;
    grid->cellSize = 256;
    grid->values.assign(48, 0.0F);
    grid->values[1 * 8 + 2] = 1.0F;
    view->setHeatmap(grid);
    view->setColorMap(ColorMapKind::Jet);
    view->setHeatmapOpacity(1.0);
    view->setHeatmapThreshold(0.5);
    auto set = std::make_shared<AnnotationSet>();
    Annotation a;
    a.type = AnnotationType::Rectangle;
    a.color = "#00FF00";
    a.coordinates = {{1024, 256}, {1536, 256}, {1536, 768}, {1024, 768}};
    set->annotations.push_back(a);
    view->setAnnotations(set);
    const Viewport cur = view->viewport();
    const Viewport vp = figureViewport(*view, std::nullopt, 2 * cur.width);
    EXPECT_EQ(vp.height, 2 * cur.height);
    EXPECT_DOUBLE_EQ(vp.zoom, 2 * cur.zoom);
    ASSERT_EQ(exportFigure(vp, "view.png"), QString());
    const QImage img(QString::fromStdString((dir / "view.png").string()));
    ASSERT_EQ(img.size(), QSize(vp.width, vp.height));
    auto at = [&](double x, double y) {
        return vp.toScreen({x, y});
    };
    EXPECT_TRUE(colorNear(img, at(2.5 * 256, 1.5 * 256), rgb(colorAt(ColorMapKind::Jet, 1.0)), 2)); // hot cell
    EXPECT_TRUE(colorNear(img, at(768, 900), nic::test::kTissue));                                   // below threshold
    // The rectangle's outline is green on the figure, at its level-0 edge.
    const PointD edge = at(1280, 768);
    const QColor c = img.pixelColor(static_cast<int>(edge.x), static_cast<int>(edge.y));
    EXPECT_GT(c.green(), 200);
    EXPECT_LT(c.red(), 120);
    // The legend's colour bar (bottom right) shows the colour map's top colour near its right end.
    bool legendFound = false;
    const auto top = colorAt(ColorMapKind::Jet, 1.0);
    for (int y = vp.height - 80; y < vp.height && !legendFound; ++y)
        for (int x = vp.width - 60; x < vp.width && !legendFound; ++x)
            legendFound = colorNear(img, {x + 0.5, y + 0.5}, rgb(top), 6);
    EXPECT_TRUE(legendFound);
}

TEST_F(FigureExportTest, SvgIsValidXmlWithTheRasterEmbeddedAndVectorOverlays) {
    auto set = std::make_shared<AnnotationSet>();
    Annotation a;
    a.type = AnnotationType::Polygon;
    a.coordinates = {{400, 300}, {1000, 320}, {1100, 800}, {600, 900}};
    set->annotations.push_back(a);
    view->setAnnotations(set);
    const Viewport vp = figureViewport(*view, RectD{0, 0, 2048, 1536}, 800);
    ASSERT_EQ(exportFigure(vp, "figure.svg"), QString());
    const QString path = QString::fromStdString((dir / "figure.svg").string());
    QFile f(path);
    ASSERT_TRUE(f.open(QIODevice::ReadOnly));
    const QByteArray data = f.readAll();
    ASSERT_GT(data.size(), 1000);
    QXmlStreamReader xml(data);
    int images = 0, paths = 0;
    while (!xml.atEnd()) {
        xml.readNext();
        if (xml.isStartElement() && xml.name() == QLatin1String("image"))
            ++images;
        if (xml.isStartElement() && xml.name() == QLatin1String("path"))
            ++paths;
    }
    EXPECT_FALSE(xml.hasError()) << xml.errorString().toStdString();
    EXPECT_EQ(images, 1);  // the tile + heatmap raster
    EXPECT_GE(paths, 1);   // the annotation outline stays vector
    // Rendered back through Qt's SVG image plugin (QSvgRenderer), the embedded raster shows the tissue.
    if (!QImageReader::supportedImageFormats().contains("svg"))
        GTEST_SKIP() << "Qt's SVG image plugin is not installed; checked the XML only";
    QImageReader reader(path);
    const QSize size = reader.size(); // Qt reads the mm size at 90 dpi; the figure says 96 (CSS px)
    EXPECT_NEAR(size.width() / static_cast<double>(size.height()), 800.0 / 600.0, 0.01);
    reader.setScaledSize(QSize(800, 600));
    const QImage back = reader.read();
    ASSERT_FALSE(back.isNull()) << reader.errorString().toStdString();
    // Tissue outside the polygon (inside it the translucent fill tints it).
    EXPECT_TRUE(colorNear(back, {320 * 800 / 2048.0, 980 * 800 / 2048.0}, nic::test::kTissue, 6));
}

TEST_F(FigureExportTest, PdfIsACompleteDocument) {
    const Viewport vp = figureViewport(*view, RectD{256, 256, 1024, 768}, 1000);
    ASSERT_EQ(exportFigure(vp, "figure.pdf"), QString());
    const std::string pdf = readFile(dir / "figure.pdf");
    ASSERT_GT(pdf.size(), 1000U);
    EXPECT_EQ(pdf.substr(0, 5), "%PDF-");
    std::string tail = pdf.substr(pdf.size() - 16);
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r'))
        tail.pop_back();
    EXPECT_EQ(tail.substr(tail.size() - 5), "%%EOF");
}

TEST_F(FigureExportTest, BadRegionAndUnknownFormatAreErrorsThatNameTheCause) {
    const std::string outside = nic::test::errorOf<InvalidArgument>([&] { figureViewport(*view, RectD{5000, 0, 100, 100}, 400); });
    EXPECT_NE(outside.find("lies outside the slide (2048 x 1536 px)"), std::string::npos) << outside;
    const Viewport vp = figureViewport(*view, RectD{0, 0, 2048, 1536}, 400);
    const std::string bad = nic::test::errorOf<Error>([&] { writeFigure(*view, vp, QString::fromStdString((dir / "figure.jpg").string())); });
    EXPECT_NE(bad.find("figure.jpg: unknown figure format '.jpg' (use .png, .svg or .pdf)"), std::string::npos) << bad;
    EXPECT_FALSE(std::filesystem::exists(dir / "figure.jpg"));
    const std::string noDir = nic::test::errorOf<Error>([&] { writeFigure(*view, vp, QString::fromStdString((dir / "missing" / "f.png").string())); });
    EXPECT_NE(noDir.find("f.png: cannot write"), std::string::npos) << noDir;
}

TEST_F(FigureExportTest, GradCamHdf5HeatmapIsDrawnHotWhereHotAndNotOnGlass) {
    const auto h5 = dir / "synthetic_heatmap.h5";
    writeHeatmapFile(h5, gradcamLikeHeatmap());
    EXPECT_EQ(findHeatmap(slidePath), h5);
    const HeatmapGrid grid = loadHeatmapFile(h5, 2048);
    ASSERT_EQ(grid.width, 8);
    ASSERT_EQ(grid.height, 6);
    EXPECT_EQ(grid.cellSize, 256);
    EXPECT_EQ(grid.at(2, 1), 1.0F);
    EXPECT_TRUE(std::isnan(grid.at(6, 0))); // tissue fraction 0
    view->setHeatmap(std::make_shared<const HeatmapGrid>(grid));
    view->setColorMap(ColorMapKind::TrafficLight);
    view->setHeatmapOpacity(1.0);
    QTest::qWait(20);
    const QImage img = view->grabFramebuffer();
    auto at = [&](double x, double y) {
        return view->viewport().toScreen({x, y});
    };
    EXPECT_TRUE(colorNear(img, at(2.5 * 256, 1.5 * 256), rgb(colorAt(ColorMapKind::TrafficLight, 1.0)), 1));
    EXPECT_TRUE(colorNear(img, at(5.5 * 256, 4.5 * 256), rgb(colorAt(ColorMapKind::TrafficLight, 0.25)), 1));
    EXPECT_TRUE(colorNear(img, at(6.5 * 256, 0.5 * 256), nic::test::kGlass)); // NaN: not drawn
}

TEST(GradCamHeatmapFile, NotAHeatmapFileIsAnErrorNamingTheFile) {
    nic::test::TempDir dir;
    const auto h5 = dir / "latent.h5";
    {
        HeatmapData d = gradcamLikeHeatmap();
        writeHeatmapFile(h5, d);
    }
    // Truncated: the HDF5 signature stays, the rest is gone.
    std::filesystem::resize_file(h5, 600);
    const std::string e = nic::test::errorOf<Error>([&] { loadHeatmapFile(h5, 2048); });
    EXPECT_NE(e.find("latent.h5"), std::string::npos) << e;
    const auto garbage = dir / "garbage_heatmap.tif";
    std::ofstream(garbage) << "neither HDF5 nor TIFF";
    const std::string g = nic::test::errorOf<Error>([&] { loadHeatmapFile(garbage, 2048); });
    EXPECT_NE(g.find("garbage_heatmap.tif: not a heatmap (neither a nic gradcam HDF5 file nor a likelihood TIFF: "),
              std::string::npos) << g;
    const auto missing = dir / "missing_heatmap.h5";
    const std::string m = nic::test::errorOf<Error>([&] { loadHeatmapFile(missing, 2048); });
    EXPECT_NE(m.find("missing_heatmap.h5: cannot open heatmap"), std::string::npos) << m;
}

TEST(GradCamHeatmapFile, MainWindowFindsItBesideTheSlide) {
    nic::test::TempDir dir;
    const auto slide = dir / "synthetic.tif";
    nic::test::writeTestSlide(slide);
    writeHeatmapFile(dir / "synthetic_heatmap.h5", gradcamLikeHeatmap());
    MainWindow w;
    w.resize(1000, 700);
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy loaded(tab, &SlideTab::heatmapLoaded);
    ASSERT_TRUE(loaded.wait(10000));
    ASSERT_TRUE(tab->view()->heatmap());
    EXPECT_NE(tab->view()->heatmap()->source.find("synthetic_heatmap.h5"), std::string::npos);
    EXPECT_TRUE(tab->heatmapLabel()->text().contains(QStringLiteral("synthetic_heatmap.h5")));
}

TEST(GradCamHeatmapFile, MainWindowExportsTheViewAsAFigure) {
    nic::test::TempDir dir;
    const auto slide = dir / "synthetic.tif";
    nic::test::writeTestSlide(slide);
    MainWindow w;
    w.resize(1000, 700);
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(QTest::qWaitFor([&] { return tab->view()->isFullyLoaded(); }, 10000));
    EXPECT_FALSE(w.exportView(QString::fromStdString((dir / "view.gif").string()), 800));
    QSignalSpy exported(&w, &MainWindow::viewExported);
    const QString out = QString::fromStdString((dir / "view.pdf").string());
    ASSERT_TRUE(w.exportView(out, 1200));
    ASSERT_TRUE(exported.wait(20000));
    EXPECT_EQ(exported.at(0).at(0).toString(), out);
    EXPECT_EQ(exported.at(0).at(1).toString(), QString());
    EXPECT_EQ(readFile(dir / "view.pdf").substr(0, 5), "%PDF-");
}

// ---------------------------------------------------------------- the CLI, as a subprocess

// A 1024 × 768 figure of the whole test slide with gradcamLikeHeatmap() at the default opacity 0.5.
void expectHalfOpaqueGradCamOverTheSlide(const QImage& img) {
    ASSERT_EQ(img.size(), QSize(1024, 768));
    EXPECT_TRUE(colorNear(img, {2.5 * 128, 1.5 * 128}, halfway(colorAt(ColorMapKind::Viridis, 1.0), nic::test::kTissue))); // hot
    EXPECT_TRUE(colorNear(img, {1664 / 2.0, 1152 / 2.0}, halfway(colorAt(ColorMapKind::Viridis, 0.0), nic::test::kBlue)));  // cold
    EXPECT_TRUE(colorNear(img, {6.5 * 128, 0.5 * 128}, nic::test::kGlass)); // tissue 0: no heat drawn
}

class ExportViewCli : public ::testing::Test {
protected:
    void SetUp() override {
        exe = studioExecutable();
        if (!std::filesystem::exists(exe))
            GTEST_SKIP() << "nic-studio not built at " << exe << " (build the nic-studio target, or set NIC_STUDIO)";
        slide = dir / "case.tif";
        nic::test::writeTestSlide(slide);
    }
    int run(const std::string& args, std::string* out = nullptr, std::string* err = nullptr, const std::string& envPrefix = "") {
        // A private runtime directory, so Qt's "XDG_RUNTIME_DIR not set" note (running as root) does not
        // mix with the one-line error being checked.
        std::filesystem::create_directories(dir / "runtime");
        std::filesystem::permissions(dir / "runtime", std::filesystem::perms::owner_all);
        return nic::test::runCommand(envPrefix + "XDG_RUNTIME_DIR='" + (dir / "runtime").string() + "' '" + exe.string() + "' " + args,
                                     out, err);
    }
    nic::test::TempDir dir;
    std::filesystem::path exe;
    std::filesystem::path slide;
};

TEST_F(ExportViewCli, WritesAPngOfTheRegionWithTheHeatmapBesideTheSlide) {
    writeHeatmapFile(dir / "case_heatmap.h5", gradcamLikeHeatmap());
    const auto out = dir / "fig.png";
    std::string stdOut, stdErr;
    const int rc = run("'" + slide.string() + "' --region 0,0,2048,1536 --width 1024 --export-view '" + out.string() + "'",
                       &stdOut, &stdErr);
    ASSERT_EQ(rc, 0) << stdErr;
    const QImage img(QString::fromStdString(out.string()));
    ASSERT_EQ(img.size(), QSize(1024, 768));
    // The heatmap at the default opacity 0.5 over everything but the glass cell (6, 0): the hot cell
    // (2, 1) is half viridis-top, half tissue; cold cells half viridis-bottom.
    expectHalfOpaqueGradCamOverTheSlide(img);
}

TEST_F(ExportViewCli, FitWithAnnotationsWritesSvg) {
    AnnotationSet set;
    Annotation a;
    a.type = AnnotationType::Polygon;
    a.coordinates = {{400, 300}, {1000, 320}, {1100, 800}};
    set.annotations.push_back(a);
    set.save(dir / "other.xml");
    const auto out = dir / "fig.svg";
    std::string err;
    ASSERT_EQ(run("'" + slide.string() + "' --fit --width 600 --annotations '" + (dir / "other.xml").string() +
                  "' --export-view '" + out.string() + "'", nullptr, &err), 0) << err;
    QFile f(QString::fromStdString(out.string()));
    ASSERT_TRUE(f.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&f);
    QString viewBox;
    while (!xml.atEnd()) {
        xml.readNext();
        if (xml.isStartElement() && xml.name() == QLatin1String("svg"))
            viewBox = xml.attributes().value(QLatin1String("viewBox")).toString();
    }
    EXPECT_FALSE(xml.hasError()) << xml.errorString().toStdString();
    EXPECT_EQ(viewBox, QStringLiteral("0 0 600 450"));
}

TEST_F(ExportViewCli, BrokenSlideIsOneLineNamingTheFileAndNoOutput) {
    const auto broken = dir / "broken.tif";
    std::ofstream(broken) << "this is not a TIFF file";
    const auto out = dir / "fig.png";
    std::string err;
    const int rc = run("'" + broken.string() + "' --export-view '" + out.string() + "'", nullptr, &err);
    EXPECT_EQ(rc, 1);
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(err.rfind("nic-studio: error: ", 0), 0U) << err;
    EXPECT_NE(err.find("broken.tif"), std::string::npos) << err;
    EXPECT_FALSE(std::filesystem::exists(out));

    const int missing = run("'" + (dir / "missing.svs").string() + "' --export-view '" + out.string() + "'", nullptr, &err);
    EXPECT_EQ(missing, 1);
    EXPECT_NE(err.find("missing.svs"), std::string::npos) << err;
    EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(ExportViewCli, UsageErrorsExitTwoAndBadRegionExitsOne) {
    std::string err;
    EXPECT_EQ(run("'" + slide.string() + "' --export-view '" + (dir / "fig.jpg").string() + "'", nullptr, &err), 2);
    EXPECT_NE(err.find("fig.jpg: unknown figure format '.jpg'"), std::string::npos) << err;
    EXPECT_EQ(run("'" + slide.string() + "' --region 1,2,3 --export-view '" + (dir / "fig.png").string() + "'", nullptr, &err), 2);
    EXPECT_NE(err.find("--region '1,2,3'"), std::string::npos) << err;
    EXPECT_EQ(run("'" + slide.string() + "' --region 9000,0,100,100 --export-view '" + (dir / "fig.png").string() + "'",
                  nullptr, &err), 1);
    EXPECT_NE(err.find("case.tif: region 9000,0,100,100 lies outside the slide"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(std::filesystem::exists(dir / "fig.png"));
}

TEST_F(ExportViewCli, HelpNamesTheProgram) {
    std::string out;
    ASSERT_EQ(run("--help", &out), 0);
    EXPECT_EQ(out.find("<executable_name>"), std::string::npos) << out;
    EXPECT_NE(out.find("Usage: nic-studio"), std::string::npos) << out;
    EXPECT_NE(out.find("--export-view <OUT>"), std::string::npos) << out;
}

TEST_F(ExportViewCli, WorksWithoutADisplayOnTheOffscreenPlatform) {
    // No X display: Qt's offscreen platform has no OpenGL, so the figure is composed on the CPU from
    // the slide; it must show the same layers as the GL figure.
    writeHeatmapFile(dir / "case_heatmap.h5", gradcamLikeHeatmap());
    const auto out = dir / "fig.png";
    std::string err;
    const int rc = run("'" + slide.string() + "' --region 0,0,2048,1536 --width 1024 --export-view '" + out.string() + "'",
                       nullptr, &err, "env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen ");
    ASSERT_EQ(rc, 0) << err;
    EXPECT_EQ(err, "");
    const QImage img(QString::fromStdString(out.string()));
    ASSERT_EQ(img.size(), QSize(1024, 768));
    expectHalfOpaqueGradCamOverTheSlide(img);
}

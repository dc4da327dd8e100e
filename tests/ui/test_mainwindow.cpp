// MainWindow and SlideTab: tabs, recent files, layers auto-found beside the slide (ASAP convention),
// magnification presets disabled with an explanation, annotations saved back to ASAP XML.
#include "ui/mainwindow.h"

#include "core/annotations/annotation.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/overviewnavigator.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QAction>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QSignalSpy>
#include <QSlider>
#include <QTabWidget>
#include <QTest>
#include <QTreeWidget>

#include <gtest/gtest.h>

#include <fstream>

using namespace nic;

namespace {

AnnotationSet twoGroups() {
    AnnotationSet set;
    set.groups.push_back({"metastases", "", "#ff0000", {}, {}, GroupElement::Group});
    set.groups.push_back({"normal", "", "#00c000", {}, {}, GroupElement::Group});
    Annotation a;
    a.name = "Annotation 0";
    a.type = AnnotationType::Polygon;
    a.group = "metastases";
    a.color = "#F4FA58";
    a.coordinates = {{400, 300}, {1000, 320}, {1100, 800}, {600, 900}, {380, 700}};
    set.annotations.push_back(a);
    a.name = "Annotation 1";
    a.group = "normal";
    a.coordinates = {{1400, 900}, {1900, 900}, {1900, 1400}, {1400, 1400}};
    set.annotations.push_back(a);
    return set;
}

bool waitFor(const std::function<bool()>& f) { return QTest::qWaitFor(f, 10000); }

} // namespace

TEST(MainWindow, OpensSlideWithLayersFoundBesideIt) {
    nic::test::TempDir dir;
    const auto slide = dir / "case1.tif";
    nic::test::writeTestSlide(slide);
    twoGroups().save(dir / "case1.xml");
    // A likelihood map: the synthetic slide's red channel read as probability.
    nic::test::TestSlideGeometry hg;
    hg.width = 512;
    hg.height = 384;
    hg.levels = 1;
    hg.tissueX0 = 64, hg.tissueY0 = 64, hg.tissueX1 = 320, hg.tissueY1 = 256;
    hg.blueX0 = hg.blueY0 = hg.blueX1 = hg.blueY1 = 0;
    nic::test::writeTestSlide(dir / "case1_likelihood_map.tif", hg);

    MainWindow w;
    w.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&w));
    for (auto* a : w.magnificationActions())
        EXPECT_FALSE(a->isEnabled());
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy annotations(tab, &SlideTab::annotationsLoaded);
    QSignalSpy heatmap(tab, &SlideTab::heatmapLoaded);
    ASSERT_TRUE(waitFor([&] { return tab->view()->hasSlide(); }));
    EXPECT_EQ(w.tabs()->count(), 1);
    EXPECT_EQ(w.tabs()->tabText(0), QStringLiteral("case1.tif"));
    EXPECT_EQ(w.recentFiles().value(0), QString::fromStdString(slide.string()));
    for (auto* a : w.magnificationActions())
        EXPECT_TRUE(a->isEnabled());

    ASSERT_TRUE(annotations.count() > 0 || annotations.wait(10000));
    EXPECT_EQ(annotations.at(0).at(0).toInt(), 2);
    ASSERT_TRUE(heatmap.count() > 0 || heatmap.wait(10000));
    const auto grid = tab->view()->heatmap();
    ASSERT_TRUE(grid);
    EXPECT_EQ(grid->width, 512);
    EXPECT_DOUBLE_EQ(grid->cellSize, 2048.0 / 512.0);
    EXPECT_NEAR(grid->at(100, 100), 200.0 / 255.0, 1e-6); // tissue red channel

    // Group list with check boxes; unticking a group hides it in the view.
    QTreeWidget* tree = tab->annotationTree();
    ASSERT_EQ(tree->topLevelItemCount(), 2);
    EXPECT_EQ(tree->topLevelItem(0)->text(0), QStringLiteral("metastases"));
    tree->topLevelItem(1)->setCheckState(0, Qt::Unchecked);
    EXPECT_FALSE(tab->view()->isGroupVisible(QStringLiteral("normal")));
    EXPECT_TRUE(tab->view()->isGroupVisible(QStringLiteral("metastases")));

    // Zoom to an annotation centres on it.
    tab->view()->setAnimationsEnabled(false);
    tab->zoomToAnnotation(1);
    EXPECT_NEAR(tab->view()->viewport().centerX, 1650, 1e-6);
    EXPECT_NEAR(tab->view()->viewport().centerY, 1150, 1e-6);

    // The overview navigator: a click centres the view there.
    OverviewNavigator* nav = tab->navigator();
    const QRectF ir = nav->imageRect();
    ASSERT_FALSE(ir.isEmpty());
    QTest::mouseClick(nav, Qt::LeftButton, {}, QPointF(ir.x() + ir.width() * 0.25, ir.y() + ir.height() * 0.75).toPoint());
    EXPECT_NEAR(tab->view()->viewport().centerX, 2048 * 0.25, 2048.0 / ir.width() + 1);
    EXPECT_NEAR(tab->view()->viewport().centerY, 1536 * 0.75, 1536.0 / ir.height() + 1);

    // Heatmap controls drive the view's uniforms.
    tab->opacitySlider()->setValue(80);
    tab->colorMapCombo()->setCurrentIndex(2);
    EXPECT_EQ(tab->view()->colorMap(), ColorMapKind::TrafficLight);
    tab->percentileSpin()->setValue(50);

    // The status bar follows the cursor (level-0 px and µm).
    QTest::mouseMove(tab->view(), QPoint(tab->view()->width() / 2, tab->view()->height() / 2));
    EXPECT_TRUE(w.cursorLabel()->text().contains(QStringLiteral("µm"))) << w.cursorLabel()->text().toStdString();
    EXPECT_TRUE(w.magnificationLabel()->text().endsWith(QStringLiteral("×")));
}

TEST(MainWindow, PresetsAreDisabledWithAnExplanationWithoutMpp) {
    nic::test::TempDir dir;
    nic::test::TestSlideGeometry g;
    g.mpp = -1;
    const auto slide = dir / "nompp.tif";
    nic::test::writeTestSlide(slide, g);
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(waitFor([&] { return tab->view()->hasSlide(); }));
    for (auto* a : w.magnificationActions()) {
        EXPECT_FALSE(a->isEnabled());
        EXPECT_TRUE(a->toolTip().contains(QStringLiteral("pixel size"))) << a->toolTip().toStdString();
    }
    EXPECT_TRUE(w.magnificationLabel()->text().contains(QStringLiteral("unknown")));
}

TEST(MainWindow, BrokenSlideTabShowsTheErrorAndOthersStillOpen) {
    nic::test::TempDir dir;
    const auto broken = dir / "broken.svs";
    std::ofstream(broken) << "garbage";
    const auto good = dir / "good.tif";
    nic::test::writeTestSlide(good);
    MainWindow w;
    w.show();
    SlideTab* bad = w.openSlide(QString::fromStdString(broken.string()));
    ASSERT_TRUE(waitFor([&] { return !bad->view()->errorMessage().isEmpty(); }));
    EXPECT_TRUE(w.tabs()->tabText(0).contains(QStringLiteral("error")));
    EXPECT_TRUE(bad->view()->errorMessage().contains(QStringLiteral("cannot open slide")));
    SlideTab* ok = w.openSlide(QString::fromStdString(good.string()));
    ASSERT_TRUE(waitFor([&] { return ok->view()->hasSlide(); }));
    EXPECT_EQ(w.tabs()->count(), 2);
    EXPECT_EQ(w.currentTab(), ok);
}

TEST(MainWindow, DrawnAnnotationsAreSavedToAsapXml) {
    nic::test::TempDir dir;
    const auto slide = dir / "draw.tif";
    nic::test::writeTestSlide(slide);
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(waitFor([&] { return tab->view()->hasSlide() && tab->view()->isFullyLoaded(); }));
    QSignalSpy saved(tab, &SlideTab::annotationsSaved);
    tab->view()->setTool(ViewTool::Dot);
    QTest::mouseClick(tab->view(), Qt::LeftButton, {}, QPoint(120, 90));
    ASSERT_TRUE(saved.wait(10000));
    EXPECT_EQ(saved.at(0).at(0).toString(), QString::fromStdString((dir / "draw.xml").string()));
    const auto loaded = AnnotationSet::load(dir / "draw.xml");
    ASSERT_EQ(loaded.annotations.size(), 1U);
    EXPECT_EQ(loaded.annotations[0].type, AnnotationType::Dot);
    EXPECT_EQ(tab->annotationTree()->topLevelItemCount(), 1);
}

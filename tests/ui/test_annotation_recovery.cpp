// Annotation autosave and recovery (issue 19): nic-studio draws and is SIGKILLed with an outline half
// drawn; opening the slide again offers the recovery file and restores every vertex; discard removes it;
// a normal save or closing the tab removes it. The killed process is the real nic-studio program, driven
// by its hidden --input-script option; the restore runs in this process.
#include "core/annotations/annotation.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/annotationrecovery.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTest>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

using namespace nic;

namespace {

bool waitFor(const std::function<bool()>& f, int ms = 10000) { return QTest::qWaitFor(f, ms); }

// "x y" per vertex at full precision, annotations separated by "--".
std::string describe(const std::vector<std::vector<Point>>& shapes) {
    std::ostringstream s;
    for (const auto& shape : shapes) {
        for (const auto& p : shape) {
            char line[96];
            std::snprintf(line, sizeof line, "%.17g %.17g\n", p.x, p.y);
            s << line;
        }
        s << "--\n";
    }
    return s.str();
}

std::vector<std::vector<Point>> shapesOf(const AnnotationSet& set) {
    std::vector<std::vector<Point>> shapes;
    for (const auto& a : set.annotations)
        shapes.push_back(a.coordinates);
    return shapes;
}

SlideTab* openLoaded(MainWindow& w, const std::filesystem::path& slide) {
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    EXPECT_TRUE(waitFor([&] { return tab->view()->hasSlide() && tab->view()->isFullyLoaded(); }));
    return tab;
}

void clickPolygon(SlideView* v, const std::vector<QPoint>& points) {
    v->setTool(ViewTool::Polygon);
    for (const QPoint& p : points) {
        QTest::mouseClick(v, Qt::LeftButton, {}, p);
        QTest::qWait(20); // distinct clicks, never a double-click
    }
}

// Clears the process-wide prompt when a test ends, however it ends.
struct PromptGuard {
    ~PromptGuard() { SlideTab::setRecoveryPrompt({}); }
};

} // namespace

// nic-studio itself draws, with a hidden --input-script (ui/inputscript.h) sending the mouse events a
// hand would: a rectangle (saved to the XML at once) and an outline of seven vertices it never finishes,
// then writes what its view holds to `report`. The test kills it once the recovery file has the outline.
TEST(AnnotationRecovery, KilledWhileDrawingRestoresEveryVertex) {
    nic::test::TempDir dir;
    const auto slide = dir / "case.tif";
    nic::test::writeTestSlide(slide);
    const auto report = dir / "drawn.txt";
    const auto recovery = dir / "case.xml.recovery";
    const auto script = dir / "draw.txt";
    {
        std::ofstream s(script);
        s << "wait-loaded\n"
             "tool rectangle\npress 60 50\nmove 120 90\nmove 180 140\nrelease 180 140\n"
          << "wait-file " << (dir / "case.xml").string() << "\n"
          << "tool polygon\n";
        for (const char* p : {"300 100", "420 110", "470 210", "433 305", "350 333", "280 270", "262 181"})
            s << "click " << p << "\nwait 20\n"; // distinct clicks, never a double-click
        s << "report " << report.string() << "\n";
    }
    QProcess studio;
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), QString::fromStdString((dir / "config").string())); // not the user's settings
    studio.setProcessEnvironment(env);
    studio.setProcessChannelMode(QProcess::ForwardedChannels);
    studio.start(QStringLiteral(NIC_STUDIO_PATH), {QStringLiteral("--input-script"), QString::fromStdString(script.string()),
                                                   QString::fromStdString(slide.string())});
    ASSERT_TRUE(studio.waitForStarted(10000));
    // Killed only once its autosave holds the unfinished outline: two shapes, the second of 7 vertices.
    auto outlineSaved = [&] {
        try {
            const auto set = AnnotationSet::load(recovery);
            return set.annotations.size() == 2 && set.annotations[1].coordinates.size() == 7;
        } catch (const std::exception&) {
            return false;
        }
    };
    ASSERT_TRUE(waitFor([&] { return (std::filesystem::exists(report) && outlineSaved()) || studio.state() == QProcess::NotRunning; },
                        90000));
    ASSERT_EQ(studio.state(), QProcess::Running) << "nic-studio ended before it was killed";
    studio.kill(); // SIGKILL: no destructor, no save, no clean-up
    ASSERT_TRUE(studio.waitForFinished(10000));
    EXPECT_EQ(studio.exitStatus(), QProcess::CrashExit);
    ASSERT_TRUE(std::filesystem::exists(recovery));
    const std::string drawn = nic::test::readFile(report);
    // The rectangle was saved to case.xml; the seven-vertex outline exists only in the recovery file.
    ASSERT_EQ(AnnotationSet::load(dir / "case.xml").annotations.size(), 1U);
    ASSERT_EQ(std::count(drawn.begin(), drawn.end(), '\n'), 4 + 1 + 7 + 1) << drawn;

    PromptGuard guard;
    int offered = -1;
    QString offeredFile;
    SlideTab::setRecoveryPrompt([&](const QString&, const QString& file, int count) {
        offered = count;
        offeredFile = file;
        return true;
    });
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy handled(tab, &SlideTab::recoveryHandled);
    QSignalSpy saved(tab, &SlideTab::annotationsSaved);
    ASSERT_TRUE(handled.count() > 0 || handled.wait(15000));
    EXPECT_TRUE(handled.at(0).at(0).toBool());
    EXPECT_EQ(offered, 2);
    EXPECT_EQ(offeredFile.toStdString(), recovery.string());
    const auto restored = tab->view()->annotations();
    ASSERT_TRUE(restored);
    EXPECT_EQ(describe(shapesOf(*restored)), drawn); // every vertex, bit for bit
    EXPECT_EQ(restored->annotations.back().name, AnnotationRecovery::unfinishedName().toStdString());
    // Restoring saves the set beside the slide, which removes the recovery file.
    ASSERT_TRUE(saved.count() > 0 || saved.wait(10000));
    EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(recovery); }));
    EXPECT_EQ(describe(shapesOf(AnnotationSet::load(dir / "case.xml"))), drawn);
}

TEST(AnnotationRecovery, DiscardRemovesTheFileAndKeepsTheSavedAnnotations) {
    nic::test::TempDir dir;
    const auto slide = dir / "d.tif";
    nic::test::writeTestSlide(slide);
    AnnotationSet saved;
    Annotation a;
    a.name = "kept";
    a.coordinates = {{10, 10}, {200, 10}, {200, 200}};
    saved.annotations.push_back(a);
    saved.save(dir / "d.xml");
    AnnotationSet unsaved = saved;
    a.name = AnnotationRecovery::unfinishedName().toStdString();
    a.coordinates = {{300, 300}, {400, 300}};
    unsaved.annotations.push_back(a);
    unsaved.save(dir / "d.xml.recovery");

    PromptGuard guard;
    int offered = -1;
    SlideTab::setRecoveryPrompt([&](const QString&, const QString&, int count) {
        offered = count;
        return false;
    });
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy handled(tab, &SlideTab::recoveryHandled);
    QSignalSpy loaded(tab, &SlideTab::annotationsLoaded);
    ASSERT_TRUE(handled.count() > 0 || handled.wait(15000));
    EXPECT_FALSE(handled.at(0).at(0).toBool());
    EXPECT_EQ(offered, 2);
    EXPECT_FALSE(std::filesystem::exists(dir / "d.xml.recovery"));
    ASSERT_TRUE(loaded.count() > 0 || loaded.wait(10000));
    ASSERT_TRUE(tab->view()->annotations());
    EXPECT_EQ(*tab->view()->annotations(), saved);
}

TEST(AnnotationRecovery, WrittenSoonAfterEachChangeAndRemovedBySaveOrClose) {
    nic::test::TempDir dir;
    const auto slide = dir / "e.tif";
    nic::test::writeTestSlide(slide);
    const auto recovery = dir / "e.xml.recovery";
    MainWindow w;
    w.show();
    SlideTab* tab = openLoaded(w, slide);
    tab->recovery()->setDelay(200);
    QSignalSpy written(tab->recovery(), &AnnotationRecovery::written);
    clickPolygon(tab->view(), {{100, 100}, {200, 100}, {200, 200}});
    ASSERT_TRUE(written.wait(5000));
    EXPECT_EQ(written.count(), 1) << "debounced: one write for three quick clicks";
    ASSERT_EQ(AnnotationSet::load(recovery).annotations.size(), 1U);
    EXPECT_EQ(AnnotationSet::load(recovery).annotations[0].coordinates.size(), 3U);
    // Finishing the outline saves it to e.xml; with nothing left unsaved the recovery file goes.
    QSignalSpy saved(tab, &SlideTab::annotationsSaved);
    QTest::keyClick(tab->view(), Qt::Key_Return);
    ASSERT_TRUE(saved.wait(10000));
    EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(recovery); }));
    EXPECT_EQ(AnnotationSet::load(dir / "e.xml").annotations.size(), 1U);
    // A new unfinished outline comes back into the recovery file; closing the tab removes it.
    clickPolygon(tab->view(), {{300, 300}, {350, 320}});
    ASSERT_TRUE(waitFor([&] { return std::filesystem::exists(recovery); }));
    Q_EMIT w.tabs()->tabCloseRequested(0);
    EXPECT_TRUE(waitFor([&] { return !std::filesystem::exists(recovery); }));
}

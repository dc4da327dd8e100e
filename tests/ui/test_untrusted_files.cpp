// Files that crash HDF5 1.10.8 (fuzz/regressions) opened in nic-studio (issue 19): found beside a slide or
// chosen in File ▸ Load heatmap… / Load latent grid…, each gives a message naming the file and what
// happened, and the window keeps working (the reading ran in nic-probe, not here).
#include "core/annotations/annotation.h"
#include "core/base/untrustedfileprobe.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QAction>
#include <QApplication>
#include <QFileDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QSignalSpy>
#include <QTest>
#include <QTimer>

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

using namespace nic;

namespace {

bool waitFor(const std::function<bool()>& f, int ms = 20000) { return QTest::qWaitFor(f, ms); }

// The first (by name) kept input on which nic-probe dies of SIGSEGV (fuzz/README.md).
std::filesystem::path regression(const char* harness, const std::string& prefix) {
    std::vector<std::filesystem::path> found;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(NIC_SOURCE_DIR) / "fuzz" / "regressions" / harness))
        if (e.path().filename().string().rfind(prefix, 0) == 0)
            found.push_back(e.path());
    std::sort(found.begin(), found.end());
    EXPECT_FALSE(found.empty()) << "no " << prefix << "* input under fuzz/regressions/" << harness;
    return found.empty() ? std::filesystem::path() : found.front();
}

const char* const kCrashingHeatmap = "crash-sigsegv-heatmap-";
const char* const kCrashingGrid = "crash-sigsegv-grid-";

class UntrustedFilesTest : public ::testing::Test {
protected:
    void SetUp() override {
        UntrustedFileProbe::clearCache();
        UntrustedFileProbe::enable(NIC_PROBE_PATH);
    }
    void TearDown() override {
        UntrustedFileProbe::disable();
        UntrustedFileProbe::clearCache();
    }
};

QAction* fileAction(MainWindow& w, const QString& text) {
    for (QAction* menu : w.menuBar()->actions())
        if (menu->menu() && menu->text() == QStringLiteral("&File"))
            for (QAction* a : menu->menu()->actions())
                if (a->text() == text)
                    return a;
    return nullptr;
}

// Answers the next file dialog with `path`. selectFile() alone is not enough: while the dialog's
// file-name field has focus and its directory is still being listed (a background thread), selectFile()
// neither selects the file nor fills the field, and accept() then does nothing. So the field is set
// directly, and the answer is retried until the dialog has closed.
void answerFileDialog(const std::filesystem::path& path) {
    auto* timer = new QTimer(qApp);
    QObject::connect(timer, &QTimer::timeout, timer, [timer, p = QString::fromStdString(path.string())] {
        auto* d = qobject_cast<QFileDialog*>(QApplication::activeModalWidget());
        if (!d)
            return;
        d->selectFile(p);
        if (auto* name = d->findChild<QLineEdit*>(QStringLiteral("fileNameEdit")))
            name->setText(p);
        static_cast<QDialog*>(d)->accept(); // QFileDialog::accept, through the public QDialog slot
        if (!d->isVisible())
            timer->deleteLater();
    });
    timer->start(50);
}

// The window still works: a dot drawn now becomes an annotation.
void expectStillWorking(SlideTab* tab) {
    tab->view()->setTool(ViewTool::Dot);
    QSignalSpy added(tab->view(), &SlideView::annotationAdded);
    QTest::mouseClick(tab->view(), Qt::LeftButton, {}, QPoint(50, 50));
    EXPECT_EQ(added.count(), 1);
    EXPECT_TRUE(tab->view()->hasSlide());
}

} // namespace

TEST_F(UntrustedFilesTest, CrashingHeatmapAndGridBesideASlideAreMessages) {
    nic::test::TempDir dir;
    const auto slide = dir / "s.tif";
    nic::test::writeTestSlide(slide);
    std::filesystem::copy_file(regression("fuzz_heatmap", kCrashingHeatmap), dir / "s_heatmap.h5");
    std::filesystem::copy_file(regression("fuzz_latent_grid", kCrashingGrid), dir / "s.h5");
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    QSignalSpy failed(tab, &SlideTab::layerFailed);
    ASSERT_TRUE(waitFor([&] { return failed.count() >= 2; }));
    QStringList messages;
    for (const auto& args : failed)
        messages << args.at(0).toString();
    messages.sort();
    EXPECT_EQ(messages.value(0), QString::fromStdString((dir / "s.h5").string()) +
                                     QStringLiteral(": reading the compressed slide crashed (SIGSEGV): the file is "
                                                    "damaged; it was not opened"));
    EXPECT_EQ(messages.value(1), QString::fromStdString((dir / "s_heatmap.h5").string()) +
                                     QStringLiteral(": reading the heatmap crashed (SIGSEGV): the file is damaged; it "
                                                    "was not opened"));
    EXPECT_TRUE(tab->heatmapLabel()->text().startsWith(QStringLiteral("Cannot load heatmap: ")));
    EXPECT_FALSE(tab->view()->heatmap());
    ASSERT_TRUE(waitFor([&] { return tab->view()->isFullyLoaded(); }));
    expectStillWorking(tab);
}

TEST_F(UntrustedFilesTest, CrashingFilesChosenInTheFileMenuAreMessages) {
    nic::test::TempDir dir;
    const auto slide = dir / "m.tif";
    nic::test::writeTestSlide(slide);
    const auto heat = dir / "chosen_heatmap.h5";
    const auto grid = dir / "chosen_grid.h5";
    std::filesystem::copy_file(regression("fuzz_heatmap", kCrashingHeatmap), heat);
    std::filesystem::copy_file(regression("fuzz_latent_grid", kCrashingGrid), grid);
    MainWindow w;
    w.show();
    SlideTab* tab = w.openSlide(QString::fromStdString(slide.string()));
    ASSERT_TRUE(waitFor([&] { return tab->view()->hasSlide() && tab->view()->isFullyLoaded(); }));
    QSignalSpy failed(tab, &SlideTab::layerFailed);

    QAction* loadHeatmap = fileAction(w, QStringLiteral("Load &heatmap…"));
    ASSERT_TRUE(loadHeatmap);
    answerFileDialog(heat);
    loadHeatmap->trigger();
    ASSERT_TRUE(waitFor([&] { return failed.count() >= 1; }));
    EXPECT_EQ(failed.at(0).at(0).toString(),
              QString::fromStdString(heat.string()) +
                  QStringLiteral(": reading the heatmap crashed (SIGSEGV): the file is damaged; it was not opened"));
    EXPECT_EQ(tab->heatmapLabel()->text(), QStringLiteral("Cannot load heatmap: ") + failed.at(0).at(0).toString());

    QAction* loadGrid = fileAction(w, QStringLiteral("Load &latent grid…"));
    ASSERT_TRUE(loadGrid);
    answerFileDialog(grid);
    loadGrid->trigger();
    ASSERT_TRUE(waitFor([&] { return failed.count() >= 2; }));
    EXPECT_EQ(failed.at(1).at(0).toString(),
              QString::fromStdString(grid.string()) +
                  QStringLiteral(": reading the compressed slide crashed (SIGSEGV): the file is damaged; it was not opened"));
    expectStillWorking(tab);
}

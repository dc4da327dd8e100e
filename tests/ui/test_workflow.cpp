// The workflow in the main window: jobs launched from it run the real core stages (compression of a small
// synthetic slide with mean-rgb), progress is monotonic to 100 %, cancelling mid-way leaves nothing under
// the final name, a failing job reports its cause and the window stays usable, closing with a running
// job asks and cancels it cleanly, and results open in the viewer.
#include "ui/workflow.h"

#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "ui/dialogs.h"
#include "core/compression/latentgrid.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/cohortpanel.h"
#include "ui/compareview.h"
#include "ui/jobrunner.h"
#include "ui/jobspanel.h"
#include "ui/mainwindow.h"
#include "ui/plots.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QAction>
#include <QApplication>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QImage>
#include <QLabel>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QTest>
#include <QTimer>

#include <gtest/gtest.h>

#include <fstream>

using namespace nic;
namespace fs = std::filesystem;

namespace {

QString q(const fs::path& p) { return QString::fromStdString(p.string()); }

CompressDialog::Options compressOptions(const fs::path& slide, const fs::path& out) {
    CompressDialog::Options o;
    o.slides = {q(slide)};
    o.encoder = QStringLiteral("mean-rgb");
    o.outputDir = q(out);
    return o;
}

/// Options that keep a 2048 × 1536 slide busy for a while: an 8 px stride (144 × 96 cells of tissue)
/// with all 8 dihedral variants.
CompressDialog::Options slowCompressOptions(const fs::path& slide, const fs::path& out) {
    CompressDialog::Options o = compressOptions(slide, out);
    o.stride = 8;
    o.augment = 8;
    return o;
}

/// Answers the next message box with `button` once it is up (polling, so a slow machine cannot leave
/// it open); records its text.
void answerMessageBox(QMessageBox::StandardButton button, QString* text) {
    auto* timer = new QTimer;
    QObject::connect(timer, &QTimer::timeout, [timer, button, text] {
        auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
        if (!box || !box->isVisible())
            return;
        timer->stop();
        timer->deleteLater();
        if (text)
            *text = box->text();
        box->button(button)->click();
    });
    timer->start(20);
}

bool waitFinished(JobRunner* runner, JobId id, int ms = 60000) {
    return QTest::qWaitFor([&] { return isFinished(runner->info(id).state); }, ms);
}

} // namespace

TEST(Workflow, InstallsDocksAndAnalysisMenu) {
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    ASSERT_NE(wf, nullptr);
    EXPECT_EQ(Workflow::install(&w), wf); // idempotent
    EXPECT_EQ(Workflow::of(&w), wf);
    EXPECT_EQ(wf->jobsDock()->widget(), wf->jobsPanel());
    EXPECT_EQ(wf->cohortDock()->widget(), wf->cohortPanel());
    QStringList texts;
    for (QAction* a : wf->analysisMenu()->actions())
        if (!a->isSeparator())
            texts << a->text();
    EXPECT_TRUE(texts.contains(QStringLiteral("&Compress slides…")));
    EXPECT_TRUE(texts.contains(QStringLiteral("Train &encoder…")));
    EXPECT_TRUE(texts.contains(QStringLiteral("Train &slide model…")));
    EXPECT_TRUE(texts.contains(QStringLiteral("&Grad-CAM…")));
    EXPECT_TRUE(texts.contains(QStringLiteral("Compare &heatmaps…")));
    EXPECT_TRUE(wf->compressAction()->isEnabled());
    EXPECT_TRUE(wf->compareAction()->isEnabled());
#ifdef NIC_WITH_UI_NN
    // ui_nn is linked and main() registered the LibTorch stages (registerTorchJobs()).
    EXPECT_TRUE(neuralJobs().trainEncoder && neuralJobs().trainSlideModel && neuralJobs().gradCam &&
                neuralJobs().loadEncoder);
    EXPECT_EQ(neuralJobsUnavailableReason(), QString());
    EXPECT_TRUE(wf->trainEncoderAction()->isEnabled());
    EXPECT_TRUE(wf->gradCamAction()->isEnabled());
#else
    EXPECT_FALSE(wf->trainEncoderAction()->isEnabled());
    EXPECT_FALSE(wf->trainEncoderAction()->toolTip().isEmpty());
    QString error;
    EXPECT_EQ(wf->startGradCam({}, &error), 0u);
    EXPECT_EQ(error, neuralJobsUnavailableReason());
#endif
}

TEST(Workflow, CompressJobWritesTheGridWithMonotonicProgressAndOpensIt) {
    test::TempDir dir;
    const fs::path slide = dir / "case1.tif";
    test::writeTestSlide(slide);
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    w.show();
    std::vector<int> percents;
    QObject::connect(wf->runner(), &JobRunner::jobProgress, [&](JobId, int percent, double, const QString&) {
        percents.push_back(percent);
    });
    const JobId id = wf->startCompress(compressOptions(slide, dir / "grids"));
    ASSERT_NE(id, 0u);
    ASSERT_TRUE(waitFinished(wf->runner(), id));
    const JobInfo info = wf->runner()->info(id);
    ASSERT_EQ(info.state, JobState::Succeeded) << info.error.toStdString();
    EXPECT_EQ(info.percent, 100);
    ASSERT_FALSE(percents.empty());
    EXPECT_EQ(percents.back(), 100);
    for (std::size_t i = 1; i < percents.size(); ++i)
        EXPECT_LE(percents[i - 1], percents[i]) << "report " << i;
    const fs::path h5 = dir / "grids" / "case1.h5";
    ASSERT_TRUE(fs::is_regular_file(h5));
    EXPECT_EQ(readLatentGridMeta(h5).encoderName, "mean-rgb");
    EXPECT_FALSE(fs::exists(partialPathFor(h5)));
    ASSERT_EQ(info.resultPaths, QStringList{q(h5)});

    // "Open result": the slide opens in a tab with the grid as its latent view.
    QSignalSpy opened(wf, &Workflow::resultOpened);
    EXPECT_TRUE(wf->openResult(q(h5)));
    EXPECT_EQ(opened.count(), 1);
    SlideTab* tab = w.currentTab();
    ASSERT_NE(tab, nullptr);
    EXPECT_EQ(tab->path(), q(fs::absolute(slide)));
    EXPECT_TRUE(QTest::qWaitFor([&] { return tab->view()->latentView() != nullptr; }, 15000));
}

TEST(Workflow, CancellingACompressJobMidWayLeavesNoOutputUnderTheFinalName) {
    test::TempDir dir;
    const fs::path slide = dir / "big.tif";
    test::writeTestSlide(slide);
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    JobRunner* runner = wf->runner();
    QElapsedTimer sinceCancel;
    JobId id = 0;
    // Cancel once encoding is under way (past the tissue pass, which takes the first 10 %).
    QObject::connect(runner, &JobRunner::jobProgress, [&](JobId job, int percent, double, const QString&) {
        if (job == id && percent >= 12 && !sinceCancel.isValid()) {
            sinceCancel.start();
            runner->cancel(job);
        }
    });
    id = wf->startCompress(slowCompressOptions(slide, dir / "grids"));
    ASSERT_NE(id, 0u);
    ASSERT_TRUE(waitFinished(runner, id, 120000));
    const JobInfo info = runner->info(id);
    ASSERT_TRUE(sinceCancel.isValid()) << "the job finished before reaching 12 %: " << info.error.toStdString();
    EXPECT_EQ(info.state, JobState::Cancelled) << info.error.toStdString();
    EXPECT_LT(info.percent, 100);
    std::printf("[ measure  ] compress job cancelled %lld ms after the request, at %d %%\n",
                static_cast<long long>(sinceCancel.elapsed()), info.percent);
    const fs::path h5 = dir / "grids" / "big.h5";
    EXPECT_FALSE(fs::exists(h5));
    // Only the documented resume file may be left, never anything under the final name.
    for (const auto& e : fs::directory_iterator(dir / "grids"))
        EXPECT_EQ(e.path(), partialPathFor(h5)) << e.path();
    // The window is still usable: the same job with a coarse grid now runs to the end (resuming is
    // refused for different parameters, so it starts afresh).
    const JobId again = wf->startCompress(compressOptions(slide, dir / "grids"));
    ASSERT_TRUE(waitFinished(runner, again));
    EXPECT_EQ(runner->info(again).state, JobState::Succeeded) << runner->info(again).error.toStdString();
    EXPECT_TRUE(fs::is_regular_file(h5));
}

TEST(Workflow, AFailingJobReportsItsCauseAndTheWindowStaysUsable) {
    test::TempDir dir;
    const fs::path missing = dir / "missing.svs";
    const fs::path good = dir / "good.tif";
    test::writeTestSlide(good);
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    w.show();
    QSignalSpy finished(wf->runner(), &JobRunner::jobFinished);
    const JobId bad = wf->startCompress(compressOptions(missing, dir / "grids"));
    ASSERT_TRUE(waitFinished(wf->runner(), bad));
    const JobInfo info = wf->runner()->info(bad);
    EXPECT_EQ(info.state, JobState::Failed);
    EXPECT_TRUE(info.error.startsWith(q(missing) + QStringLiteral(": "))) << info.error.toStdString();
    EXPECT_FALSE(fs::exists(dir / "grids" / "missing.h5"));
    // The panel shows it, with the cause.
    wf->jobsPanel()->selectJob(bad);
    EXPECT_TRUE(wf->jobsPanel()->detailsLabel()->text().contains(q(missing))) << wf->jobsPanel()->detailsLabel()->text().toStdString();

    // Still usable: the next job runs, and the viewer opens slides.
    const JobId ok = wf->startCompress(compressOptions(good, dir / "grids"));
    ASSERT_TRUE(waitFinished(wf->runner(), ok));
    EXPECT_EQ(wf->runner()->info(ok).state, JobState::Succeeded) << wf->runner()->info(ok).error.toStdString();
    SlideTab* tab = w.openSlide(q(good));
    EXPECT_TRUE(QTest::qWaitFor([&] { return tab->view()->hasSlide(); }, 10000));
    EXPECT_TRUE(w.isVisible());
}

TEST(Workflow, ClosingWithARunningJobAsksAndCancelsItCleanly) {
    test::TempDir dir;
    const fs::path slide = dir / "big.tif";
    test::writeTestSlide(slide);
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    w.show();
    JobRunner* runner = wf->runner();
    const JobId id = wf->startCompress(slowCompressOptions(slide, dir / "grids"));
    ASSERT_TRUE(QTest::qWaitFor([&] { return runner->info(id).state == JobState::Running; }, 10000));

    QString asked;
    answerMessageBox(QMessageBox::No, &asked);
    EXPECT_FALSE(w.close());
    EXPECT_EQ(asked, QStringLiteral("A job is still queued or running. Cancel it and quit?"));
    EXPECT_TRUE(w.isVisible());
    EXPECT_EQ(runner->info(id).state, JobState::Running);

    answerMessageBox(QMessageBox::Yes, &asked);
    QElapsedTimer t;
    t.start();
    EXPECT_TRUE(w.close());
    std::printf("[ measure  ] close with a running compress job: cancelled and worker joined in %lld ms\n",
                static_cast<long long>(t.elapsed()));
    EXPECT_FALSE(w.isVisible());
    EXPECT_EQ(runner->info(id).state, JobState::Cancelled);
    EXPECT_TRUE(runner->isShutDown());
    EXPECT_FALSE(runner->hasActiveJobs());
    EXPECT_FALSE(fs::exists(dir / "grids" / "big.h5"));
}

TEST(Workflow, CohortDoubleClickOpensTheSlide) {
    test::TempDir dir;
    const fs::path slide = dir / "c1.tif";
    test::writeTestSlide(slide);
    std::ofstream(dir / "cohort.csv") << "slide,label\nc1.tif,1\n";
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    QString error;
    ASSERT_TRUE(wf->cohortPanel()->openCohort(q(dir / "cohort.csv"), &error)) << error.toStdString();
    QTableView* table = wf->cohortPanel()->view();
    Q_EMIT table->doubleClicked(table->model()->index(0, 0));
    ASSERT_EQ(w.tabs()->count(), 1);
    EXPECT_EQ(w.currentTab()->path(), q(fs::absolute(slide)));
    EXPECT_TRUE(QTest::qWaitFor([&] { return w.currentTab()->view()->hasSlide(); }, 10000));
}

TEST(Workflow, CompareViewOpensFromTheWindow) {
    test::TempDir dir;
    const fs::path slide = dir / "s.tif";
    test::writeTestSlide(slide);
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    QString error;
    EXPECT_EQ(wf->openCompare(q(slide), {QStringLiteral("only_one_heatmap.h5")}, {}, &error), nullptr);
    EXPECT_EQ(error, QStringLiteral("Choose 2 to 6 heatmaps to compare (got 1)"));
    CompareView* cv = wf->openCompare(q(slide), {QStringLiteral("a_heatmap.h5"), QStringLiteral("b_heatmap.h5")});
    ASSERT_NE(cv, nullptr);
    EXPECT_TRUE(cv->isWindow());
    EXPECT_EQ(cv->viewCount(), 2);
    EXPECT_EQ(wf->compareViews(), QList<CompareView*>{cv});
    // Missing heatmap files: reported in the view with their cause.
    QSignalSpy failed(cv, &CompareView::loadFailed);
    ASSERT_TRUE(QTest::qWaitFor([&] { return failed.count() > 0; }, 15000));
    EXPECT_TRUE(failed.front().front().toString().contains(QStringLiteral("a_heatmap.h5")));
    cv->close();
    EXPECT_TRUE(QTest::qWaitFor([&] { return wf->compareViews().isEmpty(); }, 5000));
}

#ifdef NIC_WITH_UI_NN
// A slide model trained through the workflow on compressed synthetic slides: the live curves receive
// every epoch while the job runs, and the finished run folder opens as plots.
TEST(Workflow, SlideModelTrainingUpdatesTheLiveCurves) {
    test::TempDir dir;
    const fs::path grids = dir / "grids";
    std::string csv = "slide,label\n";
    MeanRgbEncoder encoder(128);
    for (int i = 0; i < 9; ++i) {
        test::TestSlideGeometry g;
        g.width = 1024;
        g.height = 768;
        g.levels = 2;
        g.tissueX0 = 128 + 64 * (i % 3);
        g.tissueY0 = 128;
        g.tissueX1 = 768;
        g.tissueY1 = 640;
        if (i % 2 == 0) // positives have no blue square
            g.blueX0 = g.blueX1 = g.blueY0 = g.blueY1 = 0;
        else
            g.blueX0 = 768, g.blueY0 = 384, g.blueX1 = 896, g.blueY1 = 512;
        const fs::path slide = dir / ("s" + std::to_string(i) + ".tif");
        test::writeTestSlide(slide, g);
        compressSlide(slide, encoder, compressedPathFor(slide, grids), {});
        csv += "s" + std::to_string(i) + ".tif," + std::to_string(i % 2 == 0 ? 1 : 0) + "\n";
    }
    std::ofstream(dir / "cohort.csv") << csv;
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    w.show();
    TrainSlideModelDialog::Options o;
    o.cohort = q(dir / "cohort.csv");
    o.gridsDir = q(grids);
    o.folds = 3;
    o.epochs = 2;
    o.head = "flatten"; // the paper's dense head, through training and Grad-CAM below
    o.outputDir = q(dir / "run");
    ASSERT_TRUE(TrainSlideModelDialog::Options::validate(o).isEmpty()) << TrainSlideModelDialog::Options::validate(o).toStdString();
    QString error;
    const JobId id = wf->startTrainSlideModel(o, &error);
    ASSERT_NE(id, 0u) << error.toStdString();
    TrainingCurvesPlot* plot = wf->curvesFor(id);
    ASSERT_NE(plot, nullptr);
    int epochsWhileRunning = 0;
    QObject::connect(wf->runner(), &JobRunner::jobProgress, [&](JobId job, int, double, const QString&) {
        if (job == id && wf->runner()->info(id).state == JobState::Running)
            epochsWhileRunning = std::max(epochsWhileRunning, plot->epochCount());
    });
    QElapsedTimer t;
    t.start();
    ASSERT_TRUE(waitFinished(wf->runner(), id, 300000));
    ASSERT_EQ(wf->runner()->info(id).state, JobState::Succeeded) << wf->runner()->info(id).error.toStdString();
    std::printf("[ measure  ] 3-fold x 2-epoch slide model on 9 mean-rgb grids: %lld ms\n",
                static_cast<long long>(t.elapsed()));
    QTest::qWait(50); // the last queued epoch
    EXPECT_GE(epochsWhileRunning, 1) << "no epoch reached the plot before the job ended";
    EXPECT_EQ(plot->epochCount(), 6); // 3 rounds × 2 epochs, one after the other
    EXPECT_TRUE(fs::is_regular_file(dir / "run" / "predictions.csv"));
    EXPECT_EQ(readSlideModelMeta(dir / "run" / "fold0" / "model.pt").config.pooling, GlobalPooling::Flatten);
    EXPECT_TRUE(wf->openResult(q(dir / "run")));

    // Grad-CAM of slide s0 by two of the fold models, then both heatmaps side by side (Fig. 5).
    QStringList heatmaps;
    for (int fold : {0, 1}) {
        GradCamDialog::Options g;
        g.model = q(dir / "run" / ("fold" + std::to_string(fold)) / "model.pt");
        g.slides = {q(grids / "s0.h5")};
        g.outputDir = q(dir / ("cams" + std::to_string(fold)));
        ASSERT_TRUE(GradCamDialog::Options::validate(g).isEmpty()) << GradCamDialog::Options::validate(g).toStdString();
        const JobId cam = wf->startGradCam(g, &error);
        ASSERT_NE(cam, 0u) << error.toStdString();
        ASSERT_TRUE(waitFinished(wf->runner(), cam));
        const JobInfo info = wf->runner()->info(cam);
        ASSERT_EQ(info.state, JobState::Succeeded) << info.error.toStdString();
        ASSERT_EQ(info.resultPaths.size(), 1);
        EXPECT_TRUE(fs::is_regular_file(info.resultPaths.front().toStdString()));
        heatmaps << info.resultPaths.front();
    }
    // "Open result" of a heatmap: its slide (found beside the grid's folder) with the overlay.
    EXPECT_TRUE(wf->openResult(heatmaps.front()));
    ASSERT_NE(w.currentTab(), nullptr);
    EXPECT_EQ(QFileInfo(w.currentTab()->path()).fileName(), QStringLiteral("s0.tif"));
    EXPECT_NE(w.currentTab()->view()->heatmap(), nullptr);
    CompareView* cv = wf->openCompare(q(dir / "s0.tif"), heatmaps);
    ASSERT_NE(cv, nullptr);
    ASSERT_TRUE(QTest::qWaitFor([&] { return cv->isReady(); }, 20000)) << cv->statusLabel()->text().toStdString();
    EXPECT_EQ(cv->titleLabel(0)->text(), QStringLiteral("run fold 0"));
    EXPECT_EQ(cv->titleLabel(1)->text(), QStringLiteral("run fold 1"));
}

// An encoder trained through the workflow from a folder of patches: the file is written and the live
// curves get the epochs.
TEST(Workflow, EncoderTrainingWritesTheEncoderAndItsCurves) {
    test::TempDir dir;
    const fs::path patches = dir / "patches";
    fs::create_directories(patches);
    std::string labels = "file,label\n";
    for (int i = 0; i < 24; ++i) {
        QImage img(128, 128, QImage::Format_RGB32);
        img.fill(i % 2 ? QColor(200, 80, 150) : QColor(240, 235, 240));
        for (int k = 0; k < 40; ++k)
            img.setPixelColor((i * 37 + k * 11) % 128, (i * 13 + k * 29) % 128, QColor(30, 60, 200));
        const std::string name = "p" + std::to_string(i) + ".png";
        ASSERT_TRUE(img.save(q(patches / name)));
        labels += name + "," + std::to_string(i % 2) + "\n";
    }
    std::ofstream(patches / "labels.csv") << labels;
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    TrainEncoderDialog::Options o;
    o.method = QStringLiteral("vae");
    o.patchSource = q(patches);
    o.output = q(dir / "vae.nicenc");
    o.epochs = 2;
    o.codeSize = 16;
    ASSERT_TRUE(TrainEncoderDialog::Options::validate(o).isEmpty()) << TrainEncoderDialog::Options::validate(o).toStdString();
    QString error;
    const JobId id = wf->startTrainEncoder(o, &error);
    ASSERT_NE(id, 0u) << error.toStdString();
    QElapsedTimer t;
    t.start();
    ASSERT_TRUE(waitFinished(wf->runner(), id, 300000));
    ASSERT_EQ(wf->runner()->info(id).state, JobState::Succeeded) << wf->runner()->info(id).error.toStdString();
    std::printf("[ measure  ] 2-epoch VAE (C=16) on 24 patches of 128 px through the workflow: %lld ms\n",
                static_cast<long long>(t.elapsed()));
    EXPECT_TRUE(fs::is_regular_file(dir / "vae.nicenc"));
    QTest::qWait(50);
    ASSERT_NE(wf->curvesFor(id), nullptr);
    EXPECT_GE(wf->curvesFor(id)->epochCount(), 1);
    EXPECT_LE(wf->curvesFor(id)->epochCount(), 2);
    EXPECT_TRUE(wf->openResult(q(dir / "vae.nicenc"))); // shows its curves
    // The encoder compresses a slide through the workflow too.
    const fs::path slide = dir / "slide.tif";
    test::writeTestSlide(slide);
    CompressDialog::Options c = compressOptions(slide, dir / "grids");
    c.encoder = q(dir / "vae.nicenc");
    const JobId comp = wf->startCompress(c, &error);
    ASSERT_NE(comp, 0u) << error.toStdString();
    ASSERT_TRUE(waitFinished(wf->runner(), comp, 120000));
    ASSERT_EQ(wf->runner()->info(comp).state, JobState::Succeeded) << wf->runner()->info(comp).error.toStdString();
    EXPECT_EQ(readLatentGridMeta(dir / "grids" / "slide.h5").codeSize, 16);
}
#endif

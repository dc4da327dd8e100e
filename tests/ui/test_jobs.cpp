// Background jobs: lifecycle, progress, cooperative cancel with atomic outputs, failures with their
// cause, queue order, shutdown, the jobs panel and the close confirmation.
#include "ui/jobrunner.h"
#include "ui/jobspanel.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "demoscenes.h"
#include "testsupport.h"

#include <QApplication>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QTest>
#include <QTimer>
#include <QToolButton>
#include <QTreeWidget>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace nic;
namespace fs = std::filesystem;

namespace {

bool waitUntil(const std::function<bool()>& f, int ms = 10000) {
    return QTest::qWaitFor(f, ms);
}

void sleepMs(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/// A body that loops until `release` is set (checking for cancellation every 2 ms) after reporting
/// `percent` %.
std::function<void(JobContext&)> holdAt(int percent, std::shared_ptr<std::atomic<bool>> release,
                                        std::shared_ptr<std::atomic<bool>> started = nullptr) {
    return [=](JobContext& ctx) {
        if (started)
            *started = true;
        ctx.setMinInterval(std::chrono::milliseconds(0));
        ctx.log("preparing");
        ctx.progress(percent, 100, "epoch 2/5: training");
        while (!*release) {
            ctx.throwIfCancelled();
            sleepMs(2);
        }
        ctx.progress(100, 100, "done");
    };
}

} // namespace

TEST(JobRunner, ProgressIsMonotonicAndEndsAt100) {
    JobRunner runner;
    QList<int> percents;
    QList<JobState> states;
    QStringList logs;
    QObject::connect(&runner, &JobRunner::jobProgress, [&](JobId, int p, double, const QString&) { percents << p; });
    QObject::connect(&runner, &JobRunner::jobStateChanged, [&](JobId, JobState s) { states << s; });
    QObject::connect(&runner, &JobRunner::jobLog, [&](JobId, const QString& l) { logs << l; });
    QSignalSpy finished(&runner, &JobRunner::jobFinished);
    const JobId id = runner.enqueue({"count", [](JobContext& ctx) {
                                         ctx.setMinInterval(std::chrono::milliseconds(1));
                                         ctx.log("start");
                                         for (int i = 0; i <= 60; ++i) {
                                             ctx.progress(i, 60, "item " + std::to_string(i));
                                             ctx.throwIfCancelled();
                                             sleepMs(2);
                                         }
                                         ctx.log("end");
                                     },
                                     {"/tmp/result.h5"}});
    EXPECT_EQ(id, 1U);
    ASSERT_TRUE(waitUntil([&] { return finished.count() == 1; }));
    const JobInfo info = runner.info(id);
    EXPECT_EQ(info.state, JobState::Succeeded);
    EXPECT_EQ(info.percent, 100);
    EXPECT_TRUE(info.error.isEmpty());
    EXPECT_EQ(info.step, "item 60");
    EXPECT_EQ(info.resultPaths, QStringList{"/tmp/result.h5"});
    EXPECT_EQ(info.log, (QStringList{"start", "end"}));
    EXPECT_EQ(logs, (QStringList{"start", "end"}));
    ASSERT_GE(percents.size(), 3); // throttled, but more than the first and the last report
    for (int i = 1; i < percents.size(); ++i)
        EXPECT_LE(percents[i - 1], percents[i]) << "at report " << i;
    EXPECT_EQ(percents.front(), 0);
    EXPECT_EQ(percents.back(), 100);
    EXPECT_EQ(states, (QList<JobState>{JobState::Running, JobState::Succeeded}));
    EXPECT_EQ(finished.at(0).at(0).value<JobId>(), id);
    EXPECT_EQ(finished.at(0).at(1).value<JobState>(), JobState::Succeeded);
    EXPECT_FALSE(runner.hasActiveJobs());
}

TEST(JobRunner, CancelMidwayLeavesNoPartialOutput) {
    test::TempDir dir;
    const fs::path target = dir / "grid.bin";
    JobRunner runner;
    QSignalSpy finished(&runner, &JobRunner::jobFinished);
    int lastPercent = -1;
    QObject::connect(&runner, &JobRunner::jobProgress, [&](JobId, int p, double, const QString&) { lastPercent = p; });
    const JobId id = runner.enqueue({"write", [target](JobContext& ctx) {
                                         ctx.setMinInterval(std::chrono::milliseconds(0));
                                         AtomicFile file(target);
                                         std::ofstream out(file.tempPath(), std::ios::binary);
                                         const std::string chunk(4096, 'x');
                                         for (int i = 0; i < 2000; ++i) {
                                             out << chunk;
                                             ctx.progress(i, 2000, "band " + std::to_string(i));
                                             ctx.throwIfCancelled();
                                             sleepMs(2);
                                         }
                                         out.close();
                                         file.commit();
                                     },
                                     {QString::fromStdString(target.string())}});
    ASSERT_TRUE(waitUntil([&] { return lastPercent >= 3; }));
    EXPECT_EQ(runner.info(id).state, JobState::Running);
    runner.cancel(id);
    ASSERT_TRUE(waitUntil([&] { return finished.count() == 1; }));
    const JobInfo info = runner.info(id);
    EXPECT_EQ(info.state, JobState::Cancelled);
    EXPECT_LT(info.percent, 100);
    EXPECT_TRUE(info.error.isEmpty());
    EXPECT_TRUE(info.log.contains("cancel requested"));
    EXPECT_FALSE(fs::exists(target));
    EXPECT_TRUE(fs::is_empty(dir.path())) << "a temporary file was left behind";
}

TEST(JobRunner, FailuresReportTheCauseAndTheNextJobStillRuns) {
    JobRunner runner;
    QSignalSpy finished(&runner, &JobRunner::jobFinished);
    QList<JobId> started;
    QObject::connect(&runner, &JobRunner::jobStateChanged, [&](JobId id, JobState s) {
        if (s == JobState::Running)
            started << id;
    });
    const JobId io = runner.enqueue({"io", [](JobContext&) { throw IoError("cannot open /data/a.svs: No such file or directory"); }, {}});
    // What c10::Error::what() looks like: the message, then where it was raised and a backtrace.
    const JobId torch = runner.enqueue(
        {"torch", [](JobContext&) {
             throw std::runtime_error("open file failed because of errno 2 on fopen: , file path: /m/model.pt\n"
                                      "Exception raised from RAIIFile at ../caffe2/serialize/file_adapter.cc:21 "
                                      "(most recent call first):\nframe #0: c10::Error::Error(...)");
         },
         {}});
    const JobId weird = runner.enqueue({"weird", [](JobContext&) { throw 42; }, {}});
    const JobId empty = runner.enqueue({"empty", {}, {}});
    const JobId ok = runner.enqueue({"ok", [](JobContext& ctx) { ctx.progress(1, 1, "fine"); }, {"/out/model.pt"}});
    ASSERT_TRUE(waitUntil([&] { return finished.count() == 5; }));
    EXPECT_EQ(runner.info(io).state, JobState::Failed);
    EXPECT_EQ(runner.info(io).error, "cannot open /data/a.svs: No such file or directory");
    EXPECT_EQ(runner.info(torch).state, JobState::Failed);
    EXPECT_EQ(runner.info(torch).error, "open file failed because of errno 2 on fopen: , file path: /m/model.pt");
    ASSERT_EQ(runner.info(torch).log.size(), 1); // the whole text with the backtrace is kept in the log
    EXPECT_TRUE(runner.info(torch).log[0].contains("frame #0"));
    EXPECT_EQ(runner.info(weird).state, JobState::Failed);
    EXPECT_EQ(runner.info(weird).error, "unknown error (an exception that is not a std::exception)");
    EXPECT_EQ(runner.info(empty).state, JobState::Failed);
    EXPECT_EQ(runner.info(empty).error, "the job has nothing to run");
    EXPECT_EQ(runner.info(ok).state, JobState::Succeeded);
    EXPECT_EQ(started, (QList<JobId>{io, torch, weird, ok})); // in submission order, one at a time
    EXPECT_EQ(runner.jobIds(), (QList<JobId>{io, torch, weird, empty, ok}));

    runner.removeFinished();
    EXPECT_TRUE(runner.jobIds().isEmpty());
    const JobId again = runner.enqueue({"again", [](JobContext&) {}, {}});
    ASSERT_TRUE(waitUntil([&] { return runner.info(again).state == JobState::Succeeded; }));
}

TEST(JobRunner, QueuedJobsWaitAndCancellingOneNeverRunsIt) {
    JobRunner runner;
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto firstStarted = std::make_shared<std::atomic<bool>>(false);
    auto secondRan = std::make_shared<std::atomic<bool>>(false);
    const JobId first = runner.enqueue({"first", holdAt(10, release, firstStarted), {}});
    const JobId second = runner.enqueue({"second", [secondRan](JobContext&) { *secondRan = true; }, {}});
    const JobId third = runner.enqueue({"third", [](JobContext&) {}, {}});
    ASSERT_TRUE(waitUntil([&] { return firstStarted->load(); }));
    EXPECT_EQ(runner.info(first).state, JobState::Running);
    EXPECT_EQ(runner.info(second).state, JobState::Queued);
    EXPECT_EQ(runner.activeCount(), 3);
    runner.cancel(second);
    EXPECT_EQ(runner.info(second).state, JobState::Cancelled); // at once, without running
    EXPECT_EQ(runner.activeCount(), 2);
    *release = true;
    ASSERT_TRUE(waitUntil([&] { return runner.info(third).state == JobState::Succeeded; }));
    EXPECT_EQ(runner.info(first).state, JobState::Succeeded);
    EXPECT_FALSE(secondRan->load());
}

TEST(JobRunner, ShutdownCancelsTheRunningJobAndStopsTheThread) {
    auto runner = std::make_unique<JobRunner>();
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto started = std::make_shared<std::atomic<bool>>(false);
    const JobId running = runner->enqueue({"long", holdAt(50, release, started), {}});
    const JobId queued = runner->enqueue({"queued", [](JobContext&) {}, {}});
    ASSERT_TRUE(waitUntil([&] { return started->load(); }));
    QList<JobId> finishedIds;
    QObject::connect(runner.get(), &JobRunner::jobFinished, [&](JobId id, JobState, const QString&) { finishedIds << id; });
    EXPECT_TRUE(runner->shutdown(5000)); // returns without the event loop: the body saw the cancel
    EXPECT_TRUE(runner->isShutDown());
    EXPECT_EQ(runner->info(running).state, JobState::Cancelled);
    EXPECT_EQ(runner->info(queued).state, JobState::Cancelled);
    EXPECT_FALSE(runner->hasActiveJobs());
    EXPECT_EQ(finishedIds.size(), 2);
    const JobId late = runner->enqueue({"late", [](JobContext&) {}, {}});
    EXPECT_EQ(runner->info(late).state, JobState::Failed);
    EXPECT_EQ(runner->info(late).error, "the job runner has shut down");
    QTest::qWait(20); // a stale finished event must be ignored
    EXPECT_EQ(finishedIds.size(), 3);
    EXPECT_TRUE(runner->shutdown()); // idempotent
    runner.reset();
}

TEST(JobRunner, DestroyingARunnerWithARunningJobCancelsIt) {
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto started = std::make_shared<std::atomic<bool>>(false);
    auto sawCancel = std::make_shared<std::atomic<bool>>(false);
    {
        JobRunner runner;
        runner.enqueue({"long", [=](JobContext& ctx) {
                            *started = true;
                            while (!ctx.isCancelled())
                                sleepMs(1);
                            *sawCancel = true;
                            ctx.throwIfCancelled();
                        },
                        {}});
        ASSERT_TRUE(waitUntil([&] { return started->load(); }));
    }
    EXPECT_TRUE(sawCancel->load());
}

TEST(JobRunner, FormatsDurationsAndCauses) {
    EXPECT_EQ(formatDuration(-1), "");
    EXPECT_EQ(formatDuration(0.2), "< 1 s");
    EXPECT_EQ(formatDuration(12.4), "12 s");
    EXPECT_EQ(formatDuration(200), "3 min 20 s");
    EXPECT_EQ(formatDuration(3720), "1 h 02 min");
    EXPECT_EQ(causeFromWhat("plain message"), "plain message");
    EXPECT_EQ(causeFromWhat(""), "unknown error (empty message)");
    EXPECT_EQ(jobStateName(JobState::Cancelled), "cancelled");
}

TEST(JobsPanel, ShowsJobsAndOpensResults) {
    JobRunner runner;
    JobsPanel panel(runner);
    panel.resize(900, 520);
    panel.show();
    QSignalSpy open(&panel, &JobsPanel::openResultRequested);
    // The scene of docs/jobs-panel.png (tests/ui/demoscenes.h).
    const test::DemoJobs jobs =
        test::enqueueDemoJobs(runner, [](const std::function<bool()>& f) { return waitUntil(f); });
    ASSERT_TRUE(jobs.ready);
    const JobId done = jobs.done, failed = jobs.failed, running = jobs.running, queued = jobs.queued;
    QTest::qWait(30);

    QTreeWidget* list = panel.jobList();
    ASSERT_EQ(list->topLevelItemCount(), 4);
    EXPECT_EQ(panel.itemFor(done)->text(JobsPanel::StateColumn), "succeeded");
    EXPECT_EQ(panel.itemFor(failed)->text(JobsPanel::StateColumn), "failed");
    EXPECT_EQ(panel.itemFor(failed)->text(JobsPanel::StepColumn), "cannot read /data/patches.h5: file is truncated");
    EXPECT_EQ(panel.itemFor(running)->text(JobsPanel::StateColumn), "running");
    EXPECT_EQ(panel.itemFor(running)->text(JobsPanel::StepColumn), "round 1/4, epoch 3/5");
    EXPECT_FALSE(panel.itemFor(running)->text(JobsPanel::EtaColumn).isEmpty());
    EXPECT_TRUE(panel.detailsLabel()->text().contains("left<br>round 1/4, epoch 3/5")) << panel.detailsLabel()->text().toStdString();
    EXPECT_EQ(panel.itemFor(queued)->text(JobsPanel::StateColumn), "queued");
    auto* bar = qobject_cast<QProgressBar*>(list->itemWidget(panel.itemFor(running), JobsPanel::ProgressColumn));
    ASSERT_NE(bar, nullptr);
    EXPECT_EQ(bar->value(), 42);
    EXPECT_EQ(panel.selectedJob(), running); // follows the job that started
    EXPECT_TRUE(panel.cancelButton()->isEnabled());
    EXPECT_FALSE(panel.openResultButton()->isEnabled());
    EXPECT_TRUE(panel.logView()->toPlainText().contains("val AUC 0.684"));

    const QImage shot = panel.grab().toImage();
    ASSERT_FALSE(shot.isNull());

    panel.selectJob(failed);
    EXPECT_FALSE(panel.cancelButton()->isEnabled());
    EXPECT_FALSE(panel.openResultButton()->isEnabled());
    EXPECT_TRUE(panel.detailsLabel()->text().contains("file is truncated"));

    panel.selectJob(done);
    EXPECT_TRUE(panel.openResultButton()->isEnabled());
    EXPECT_TRUE(panel.logView()->toPlainText().contains("slide_001.tif: written"));
    panel.openResultButton()->click();
    ASSERT_EQ(open.count(), 1);
    EXPECT_EQ(open.at(0).at(0).toString(), "/results/grids/slide_001.h5");

    panel.selectJob(running);
    panel.cancelButton()->click();
    ASSERT_TRUE(waitUntil([&] { return runner.info(queued).state == JobState::Succeeded; }));
    EXPECT_EQ(runner.info(running).state, JobState::Cancelled);
    EXPECT_EQ(panel.itemFor(running)->text(JobsPanel::StateColumn), "cancelled");

    runner.removeFinished();
    EXPECT_EQ(list->topLevelItemCount(), 0);
    EXPECT_EQ(panel.selectedJob(), 0U);
}

TEST(JobsPanel, ConfirmCloseAsksOnlyWithActiveJobs) {
    JobRunner runner;
    EXPECT_TRUE(confirmCloseWithRunningJobs(nullptr, runner)); // nothing to ask

    auto release = std::make_shared<std::atomic<bool>>(false);
    auto started = std::make_shared<std::atomic<bool>>(false);
    const JobId id = runner.enqueue({"long", holdAt(5, release, started), {}});
    ASSERT_TRUE(waitUntil([&] { return started->load(); }));

    // Answers the message box once it is up (polling, so a slow machine cannot leave it open).
    auto answer = [](QMessageBox::StandardButton button) {
        auto* timer = new QTimer;
        QObject::connect(timer, &QTimer::timeout, [timer, button] {
            auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
            if (!box || !box->isVisible())
                return;
            timer->stop();
            timer->deleteLater();
            EXPECT_EQ(box->text(), "A job is still queued or running. Cancel it and quit?");
            box->button(button)->click();
        });
        timer->start(20);
    };
    answer(QMessageBox::No);
    EXPECT_FALSE(confirmCloseWithRunningJobs(nullptr, runner));
    EXPECT_EQ(runner.info(id).state, JobState::Running);

    answer(QMessageBox::Yes);
    EXPECT_TRUE(confirmCloseWithRunningJobs(nullptr, runner));
    EXPECT_EQ(runner.info(id).state, JobState::Cancelled);
    EXPECT_TRUE(runner.isShutDown());
}

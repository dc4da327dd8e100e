#pragma once
// Scenes that the GUI tests check and docs/tools/nic_docs_screenshots photographs, so the docs show what
// the tests assert: the Jobs dock with one job in each state, and training curves with two plateaus.
// No test framework here (the docs tool links no GoogleTest).
#include "core/base/error.h"
#include "ui/jobrunner.h"
#include "ui/plots.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <thread>

namespace nic::test {

/// The four jobs of the Jobs dock scene. `running` holds at 42 % ("round 1/4, epoch 3/5", an ETA of
/// seconds) until `*release` is set, checking for cancellation.
struct DemoJobs {
    JobId done = 0;    ///< "Compress 3 slides": succeeded, with two result files
    JobId failed = 0;  ///< "Train encoder (bigan)": failed with an IoError
    JobId running = 0; ///< "Train slide model (4 folds)"
    JobId queued = 0;  ///< "Grad-CAM (12 slides)"
    std::shared_ptr<std::atomic<bool>> release = std::make_shared<std::atomic<bool>>(false);
    bool ready = false; ///< every job reached its state within the waits
};

/// Enqueues the scene's jobs on `runner` and waits (with `wait`, e.g. QTest::qWaitFor) until the failed
/// job has ended and the running one shows 42 %.
inline DemoJobs enqueueDemoJobs(JobRunner& runner, const std::function<bool(const std::function<bool()>&)>& wait) {
    DemoJobs j;
    j.done = runner.enqueue({"Compress 3 slides",
                             [](JobContext& ctx) {
                                 ctx.log("slide_001.tif: written (41 × 37 cells, 1 212 patches/s)");
                                 ctx.progress(3, 3, "slide 3/3");
                             },
                             {"/results/grids/slide_001.h5", "/results/grids/slide_002.h5"}});
    j.failed = runner.enqueue({"Train encoder (bigan)",
                               [](JobContext&) { throw IoError("cannot read /data/patches.h5: file is truncated"); },
                               {}});
    if (!wait([&] { return isFinished(runner.info(j.failed).state); }))
        return j;
    j.running = runner.enqueue({"Train slide model (4 folds)",
                                [release = j.release](JobContext& ctx) {
                                    ctx.log("cohort: 48 slides (24 positive), 4 folds, R = 96");
                                    ctx.log("round 1/4, epoch 1/5: loss 0.693, val loss 0.701, val AUC 0.612, lr 0.01");
                                    ctx.log("round 1/4, epoch 2/5: loss 0.597, val loss 0.655, val AUC 0.684, lr 0.01");
                                    // an ETA in seconds rather than "< 1 s"
                                    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
                                    ctx.progress(42, 100, "round 1/4, epoch 3/5");
                                    while (!*release) {
                                        ctx.throwIfCancelled();
                                        std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                    }
                                },
                                {"/results/cv"}});
    j.queued = runner.enqueue({"Grad-CAM (12 slides)", [](JobContext&) {}, {}});
    j.ready = wait([&] { return runner.info(j.running).percent == 42; });
    return j;
}

/// 24 epochs of falling losses and a rising validation AUC; the learning rate drops tenfold at epochs
/// 11 and 19 (the plateau rule).
inline void appendDemoEpochs(TrainingCurvesPlot& plot) {
    double lr = 1e-2;
    for (int e = 1; e <= 24; ++e) {
        if (e == 11 || e == 19)
            lr /= 10.0; // plateau → lr / 10
        const double train = 0.69 * std::exp(-e / 7.0) + 0.08 + 0.01 * std::sin(e);
        const double val = 0.69 * std::exp(-e / 9.0) + 0.16 + 0.02 * std::cos(1.7 * e);
        const double auc = 0.96 - 0.42 * std::exp(-e / 5.0) + 0.01 * std::sin(2.3 * e);
        plot.appendEpoch(e, train, val, auc, lr);
    }
    plot.setMetricName("validation AUC");
}

} // namespace nic::test

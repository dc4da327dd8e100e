// jobs-panel.png and the plots: the Jobs dock with a finished, a failed, a running and a queued job, and
// the result plots (training curves, ROC per fold, predicted vs true, encoder comparison) on fixed data.
// The Jobs dock and the training curves are the GUI tests' scenes (tests/ui/demoscenes.h).
#include "docshots.h"

#include "core/slidelearning/metrics.h"
#include "demoscenes.h"
#include "ui/jobrunner.h"
#include "ui/jobspanel.h"
#include "ui/plots.h"

#include <QTest>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace nic::docs {

namespace {

namespace fs = std::filesystem;

void writeJobsPanel(const QString& out, const fs::path&) {
    JobRunner runner;
    JobsPanel panel(runner);
    panel.resize(900, 520);
    panel.show();
    const test::DemoJobs jobs =
        test::enqueueDemoJobs(runner, [](const std::function<bool()>& f) { return QTest::qWaitFor(f, 20000); });
    if (!jobs.ready)
        throw std::runtime_error("the jobs did not reach their states");
    QTest::qWait(30);
    const QImage shot = panel.grab().toImage();
    *jobs.release = true;
    waitUntil([&] { return isFinished(runner.info(jobs.queued).state); }, "the queued job");
    savePng(shot, out);
}

void writeTrainingPlot(const QString& out, const fs::path&) {
    TrainingCurvesPlot plot;
    plot.resize(900, 560);
    plot.show();
    if (!QTest::qWaitForWindowExposed(&plot))
        throw std::runtime_error("the plot was not shown");
    test::appendDemoEpochs(plot);
    savePng(plot.grab().toImage(), out);
}

void writeRocPlot(const QString& out, const fs::path&) {
    RocPlot plot;
    plot.setTitle("ROC per fold");
    plot.addCurve("fold 1", {0.0, 0.0, 0.5, 0.5, 1.0}, {0.0, 0.5, 0.5, 1.0, 1.0}, 0.875);
    plot.addCurve("fold 2", rocCurve({0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2}, {1, 1, 0, 1, 0, 1, 0, 0}));
    plot.addCurve("fold 3", {0.0, 1.0}, {0.0, 1.0}, std::numeric_limits<double>::quiet_NaN());
    plot.resize(700, 520);
    savePng(plot.grab().toImage(), out);
}

void writeScatterPlot(const QString& out, const fs::path&) {
    ScatterPlot plot;
    QVector<double> truth, predicted;
    for (int i = 0; i < 60; ++i) {
        truth.push_back(i % 4 + 1);
        predicted.push_back(i % 4 + 1 + 0.6 * std::sin(i * 1.3));
    }
    plot.setData(truth, predicted);
    plot.setAxisLabels("true proliferation score", "predicted");
    plot.resize(640, 520);
    savePng(plot.grab().toImage(), out);
}

void writeEncoderChart(const QString& out, const fs::path&) {
    EncoderComparisonChart chart;
    chart.setData({"tumor", "stroma", "fat, other"},
                  {{"VAE", {0.81, 0.77, 0.9}}, {"Contrastive", {0.88, 0.83, 0.93}}, {"BiGAN", {0.9, 0.86}}});
    chart.resize(760, 480);
    savePng(chart.grab().toImage(), out);
}

} // namespace

std::vector<DocShot> panelShots() {
    return {
        {"jobs-panel.png", "the Jobs dock: a finished, a failed, a running and a queued job", false, writeJobsPanel},
        {"training-plot.png", "training curves with two learning-rate drops", false, writeTrainingPlot},
        {"plot-roc.png", "ROC curves per fold with their AUC", false, writeRocPlot, true},
        {"plot-scatter.png", "predicted vs true (regression) with Spearman's rho", false, writeScatterPlot, true},
        {"plot-encoders.png", "encoder comparison: accuracy per class", false, writeEncoderChart, true},
    };
}

} // namespace nic::docs

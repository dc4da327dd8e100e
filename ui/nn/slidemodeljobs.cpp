// Slide-model stages of the workflow (nic train, nic gradcam), mirroring app/nic/nn/cmd_slidemodel.cpp.
#include "ui/nn/neuraljobs.h"

#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/compression/latentgrid.h"
#include "core/heatmaps/nn/gradcamrun.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "ui/plots.h"

#include <algorithm>
#include <filesystem>

namespace nic {

void trainSlideModelJob(const TrainSlideModelDialog::Options& o, JobContext& ctx, const EpochSink& sink) {
    SlideTrainOptions t;
    t.task = parseSlideTask(o.task.toStdString());
    t.folds = o.folds;
    t.cropSize = o.cropSize;
    t.testCrops = o.testCrops;
    t.epochs = o.epochs;
    if (o.head == QLatin1String("auto"))
        t.network.pooling = t.task == SlideTask::Classification ? GlobalPooling::Max : GlobalPooling::Average;
    else
        t.network.pooling = parseGlobalPooling(o.head.toStdString());
    int epochs = 0; // rounds one after the other on one axis
    t.onEpoch = [&sink, &epochs](const SlideEpochRecord& r) {
        if (!sink)
            return;
        sink(EpochPoint::fromRun(r, ++epochs));
    };
    CohortGridOptions g;
    g.regression = t.task == SlideTask::Regression;
    const CohortGrids cohort = resolveCohortGrids(readCohort(o.cohort.toStdString()), o.gridsDir.toStdString(), g);
    LatentGridFileSource source(cohort.grids);
    t.subsets = cohort.subsets;
    const auto r = crossValidate(source, cohort.labels, cohort.folds, t, o.outputDir.toStdString(), ctx);
    const auto& ci = t.task == SlideTask::Classification ? r.auc : r.spearman;
    ctx.log(std::string(t.task == SlideTask::Classification ? "AUC " : "Spearman ") + std::to_string(ci.estimate) +
            " (95% CI " + std::to_string(ci.lower) + "-" + std::to_string(ci.upper) + "), crop " +
            std::to_string(r.cropSize));
    for (const SubsetScore& s : r.subsetScores)
        ctx.log("  on '" + s.name + "' (" + std::to_string(s.slides) + " slides): " + std::to_string(s.value.estimate) +
                " (95% CI " + std::to_string(s.value.lower) + "-" + std::to_string(s.value.upper) + ")");
}

void gradCamJob(const GradCamDialog::Options& o, JobContext& ctx) {
    GradCamRunOptions run;
    run.model = o.model.toStdString();
    run.outDir = o.outputDir.toStdString();
    run.png = o.png;
    run.tiff = o.tiff;
    run.cam.layer = o.layer;
    std::vector<std::filesystem::path> grids;
    for (const auto& s : o.slides)
        grids.emplace_back(s.toStdString());
    const auto results = gradCamSlides(grids, run, ctx, [&ctx](std::size_t, std::size_t, const GradCamSlideResult& r) {
        if (!r.error.empty())
            ctx.log("error: " + r.error);
    });
    if (results.size() == 1 && !results.front().error.empty())
        throw Error(results.front().error);
    if (const std::string failed = gradCamFailureMessage(results); !failed.empty())
        throw Error(failed);
}

} // namespace nic

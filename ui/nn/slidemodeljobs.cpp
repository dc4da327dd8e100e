// Slide-model stages of the workflow (nic train, nic gradcam), mirroring app/nic/nn/cmd_slidemodel.cpp.
#include "ui/nn/neuraljobs.h"

#include "core/cohort.h"
#include "core/error.h"
#include "core/heatmapeval.h"
#include "core/latentgrid.h"
#include "core/nn/gradcam.h"
#include "core/nn/slidetrainer.h"
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
    t.network.pooling = t.task == SlideTask::Classification ? GlobalPooling::Max : GlobalPooling::Average;
    int epochs = 0; // rounds one after the other on one axis
    t.onEpoch = [&sink, &epochs](const SlideEpochRecord& r) {
        if (!sink)
            return;
        EpochPoint p;
        p.epoch = ++epochs;
        p.trainLoss = r.trainLoss;
        p.validationLoss = r.validationLoss;
        p.validationMetric = r.validationMetric;
        p.learningRate = r.learningRate;
        sink(p);
    };
    const Cohort cohort = readCohort(o.cohort.toStdString());
    if (cohort.entries.empty())
        throw InvalidArgument(o.cohort.toStdString() + ": the cohort lists no slides");
    const auto all = [&](auto has) { return std::all_of(cohort.entries.begin(), cohort.entries.end(), has); };
    const bool useScore = t.task == SlideTask::Regression && all([](const CohortEntry& e) { return e.score.has_value(); });
    const bool foldColumn = all([](const CohortEntry& e) { return e.fold.has_value(); });
    std::vector<std::filesystem::path> files;
    std::vector<double> labels;
    std::vector<int> folds;
    std::vector<std::string> missing;
    for (const auto& e : cohort.entries) {
        const auto grid = std::filesystem::path(o.gridsDir.toStdString()) / (e.slide.stem().string() + ".h5");
        if (!std::filesystem::exists(grid)) {
            missing.push_back(grid.string());
            continue;
        }
        files.push_back(grid);
        labels.push_back(useScore ? *e.score : e.labelValue());
        if (foldColumn)
            folds.push_back(*e.fold);
    }
    if (!missing.empty())
        throw Error(std::to_string(missing.size()) + " slide(s) of the cohort have no compressed grid in " +
                    o.gridsDir.toStdString() + " (compress them first), e.g. " + missing.front());
    LatentGridFileSource source(files);
    const auto r = crossValidate(source, labels, folds, t, o.outputDir.toStdString(), ctx);
    const auto& ci = t.task == SlideTask::Classification ? r.auc : r.spearman;
    ctx.log(std::string(t.task == SlideTask::Classification ? "AUC " : "Spearman ") + std::to_string(ci.estimate) +
            " (95% CI " + std::to_string(ci.lower) + "-" + std::to_string(ci.upper) + "), crop " +
            std::to_string(r.cropSize));
}

void gradCamJob(const GradCamDialog::Options& o, JobContext& ctx) {
    const std::filesystem::path model = o.model.toStdString();
    const SlideModelMeta modelMeta = readSlideModelMeta(model);
    GradCamOptions cam;
    cam.layer = o.layer;
    std::filesystem::create_directories(o.outputDir.toStdString());
    for (int i = 0; i < o.slides.size(); ++i) {
        ctx.throwIfCancelled();
        const std::filesystem::path gridPath = o.slides[i].toStdString();
        const LatentGridReader reader(gridPath);
        const auto& meta = reader.meta();
        const SlideGrid grid = readSlideGrid(reader);
        ctx.progress(i, o.slides.size(), "Grad-CAM " + gridPath.stem().string());
        const auto r = gradCam(model, grid, cam, ctx);
        const HeatmapData d = gradCamHeatmapData(r, grid, meta, gridPath, model, toString(modelMeta.task));
        const QString out = heatmapPathFor(o.slides[i], o.outputDir);
        writeHeatmapFile(out.toStdString(), d);
        ctx.log(gridPath.stem().string() + ": prediction " + std::to_string(r.prediction) + " -> " + out.toStdString());
    }
    ctx.progress(o.slides.size(), o.slides.size(), "done");
}

} // namespace nic

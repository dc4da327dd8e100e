#include "core/heatmaps/nn/gradcamrun.h"

#include "core/base/error.h"
#include "core/heatmaps/heatmapexport.h"
#include "core/imaging/imageio.h"
#include "core/compression/latentgrid.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "core/slidelearning/runfolder.h"

namespace nic {

SlideModelChoice modelForSlide(const std::filesystem::path& model, const std::string& slideId,
                               const std::map<std::string, int>& folds) {
    SlideModelChoice c;
    std::error_code ec;
    if (!std::filesystem::is_directory(model, ec)) {
        c.model = model;
        return c;
    }
    const auto it = folds.find(slideId);
    c.listed = it != folds.end();
    c.fold = c.listed ? it->second : 0;
    c.model = runModelPath(model, c.fold);
    return c;
}

std::filesystem::path heatmapPathFor(const std::filesystem::path& grid, const std::filesystem::path& outDir) {
    return outDir / (grid.stem().string() + "_heatmap.h5");
}

namespace {

void explainSlide(GradCamSlideResult& r, const GradCamRunOptions& o, const std::map<std::string, int>& folds,
                  JobContext& job) {
    const LatentGridReader reader(r.grid);
    const LatentGridMeta& meta = reader.meta();
    const std::string id = r.grid.stem().string();
    r.model = modelForSlide(o.model, id, folds);
    if (!r.model.listed)
        job.log("note: " + (o.model / "folds.csv").string() + " does not list " + id + "; round 0's model explains it");
    const SlideGrid grid = readSlideGrid(reader);
    const GradCamResult cam = gradCam(r.model.model, grid, o.cam, job);
    const HeatmapData d = gradCamHeatmapData(cam, grid, meta, r.grid, r.model.model,
                                             toString(readSlideModelMeta(r.model.model).task));
    r.prediction = cam.prediction;
    r.tiled = cam.tiled;
    r.heatmap = heatmapPathFor(r.grid, o.outDir);
    writeHeatmapFile(r.heatmap, d);
    if (o.png) {
        std::filesystem::path slidePath;
        std::error_code ec;
        if (!o.slidesDir.empty())
            slidePath = o.slidesDir / meta.slideFile;
        else if (std::filesystem::exists(r.grid.parent_path() / meta.slideFile, ec))
            slidePath = r.grid.parent_path() / meta.slideFile;
        r.png = o.outDir / (id + "_gradcam.png");
        writePng(r.png, heatmapOverlay(d, heatmapBaseImage(d, slidePath, o.overlaySide, job)));
    }
    if (o.tiff) {
        r.likelihoodMap = o.outDir / (id + "_likelihood_map.tif");
        writeLikelihoodMap(r.likelihoodMap, d, meta.slideMpp);
    }
}

// A model file of a run (RUN/fold<r>/model.pt) explaining slides its round trained or validated on: the
// heatmaps are then not held-out explanations, so say so (the run folder would pick the right model).
void warnAboutSeenSlides(const std::filesystem::path& model, const std::vector<std::filesystem::path>& grids,
                         JobContext& job) {
    const std::string dir = model.parent_path().filename().string();
    const auto run = model.parent_path().parent_path();
    if (dir.rfind("fold", 0) != 0 || !isRunFolder(run))
        return;
    int round = -1;
    try {
        round = std::stoi(dir.substr(4));
    } catch (const std::exception&) {
        return;
    }
    std::map<std::string, int> folds;
    try {
        folds = readRunFolds(run);
    } catch (const Error&) {
        return;
    }
    std::vector<std::string> seen;
    for (const auto& g : grids) {
        const auto it = folds.find(g.stem().string());
        if (it != folds.end() && it->second != round)
            seen.push_back(it->first);
    }
    if (seen.empty())
        return;
    std::string list;
    for (std::size_t i = 0; i < seen.size() && i < 5; ++i)
        list += (i ? ", " : "") + seen[i];
    job.log("warning: " + model.string() + " was trained on " + std::to_string(seen.size()) + " of these slides (" +
            list + (seen.size() > 5 ? ", ..." : "") + "): their heatmaps are not held-out explanations; give the run " +
            "folder " + run.string() + " to explain each slide by the model that held it out");
}

} // namespace

std::vector<GradCamSlideResult> gradCamSlides(
    const std::vector<std::filesystem::path>& grids, const GradCamRunOptions& options, JobContext& job,
    const std::function<void(std::size_t, std::size_t, const GradCamSlideResult&)>& finished) {
    std::error_code ec;
    const bool run = std::filesystem::is_directory(options.model, ec);
    if (!run && !std::filesystem::is_regular_file(options.model, ec))
        throw IoError(options.model.string() + ": no such slide model file or nic train run folder");
    const auto folds = run ? readRunFolds(options.model) : std::map<std::string, int>{};
    if (!run)
        warnAboutSeenSlides(options.model, grids, job);
    std::filesystem::create_directories(options.outDir);
    std::vector<GradCamSlideResult> results;
    const std::size_t n = grids.size();
    for (std::size_t k = 0; k < n; ++k) {
        job.throwIfCancelled();
        GradCamSlideResult r;
        r.grid = grids[k];
        JobContext child(job, static_cast<double>(k) / static_cast<double>(n),
                         static_cast<double>(k + 1) / static_cast<double>(n),
                         (n > 1 ? "slide " + std::to_string(k + 1) + "/" + std::to_string(n) + " " : std::string()) +
                             r.grid.stem().string() + ": ");
        try {
            explainSlide(r, options, folds, child);
            job.log(r.grid.stem().string() + ": prediction " + std::to_string(r.prediction) +
                    (r.tiled ? " (tiled)" : "") + " with " + r.model.model.string());
        } catch (const Cancelled&) {
            throw;
        } catch (const std::exception& e) {
            const std::string what = e.what();
            r.error = what.find(r.grid.filename().string()) != std::string::npos ? what : r.grid.string() + ": " + what;
        }
        job.progress(static_cast<std::int64_t>(k + 1), static_cast<std::int64_t>(n), "Grad-CAM");
        if (finished)
            finished(k, n, r);
        results.push_back(std::move(r));
    }
    return results;
}

std::string gradCamFailureMessage(const std::vector<GradCamSlideResult>& results) {
    std::size_t failed = 0;
    std::string lines;
    for (const auto& r : results)
        if (!r.error.empty()) {
            ++failed;
            lines += "\n  " + r.error;
        }
    if (failed == 0)
        return {};
    return std::to_string(failed) + " of " + std::to_string(results.size()) + " slide(s) failed:" + lines;
}

} // namespace nic

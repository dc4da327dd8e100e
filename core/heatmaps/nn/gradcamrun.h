#pragma once
// Grad-CAM over a list of compressed slides with every output file — the one implementation behind
// `nic gradcam`, nic-studio's Grad-CAM job and the cluster path. No LibTorch in this header.
//
// The model is a slide-model file, or a `nic train` run folder: then each slide is explained by the model
// of the round that held it out (RUN/folds.csv → RUN/fold<r>/model.pt; paper §4.6: a heatmap must come
// from a CNN that never saw the slide). A slide the run does not list (a new slide) is explained by round
// 0's model, and the log says so. Per slide it writes, atomically, into the output folder:
//   <grid stem>_heatmap.h5           the heatmap at grid resolution (writeHeatmapFile)
//   <grid stem>_gradcam.png          the heat over the slide's thumbnail (or its tissue map), unless png = false
//   <grid stem>_likelihood_map.tif   the ASAP likelihood map, unless tiff = false
#include "core/base/jobcontext.h"
#include "core/heatmaps/nn/gradcam.h"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nic {

struct GradCamRunOptions {
    std::filesystem::path model;     ///< slide-model file, or a `nic train` run folder
    std::filesystem::path outDir;    ///< created when missing
    std::filesystem::path slidesDir; ///< folder of the slides for the PNG's thumbnail ("": beside the grid, if there)
    bool png = true;
    int overlaySide = 1024;          ///< longer side of the PNG overlay
    bool tiff = true;
    GradCamOptions cam;
};

/// The model that explains slide `slideId` (a grid's file stem): `model` itself when it is a file; in a run
/// folder, the model of the round listed for the slide in `folds` (readRunFolds), round 0 when not listed.
struct SlideModelChoice {
    std::filesystem::path model;
    int fold = -1;        ///< the round whose model it is; -1 when a model file was given
    bool listed = true;   ///< false: a run folder that does not list the slide
};
SlideModelChoice modelForSlide(const std::filesystem::path& model, const std::string& slideId,
                               const std::map<std::string, int>& folds);

/// One slide's outcome.
struct GradCamSlideResult {
    std::filesystem::path grid;
    SlideModelChoice model;
    std::filesystem::path heatmap;        ///< written files ("" when not written)
    std::filesystem::path png;
    std::filesystem::path likelihoodMap;
    double prediction = 0.0;
    bool tiled = false;
    std::string error;                    ///< set on failure: "<grid>: <cause>"
};

/// `<outDir>/<grid stem>_heatmap.h5`.
std::filesystem::path heatmapPathFor(const std::filesystem::path& grid, const std::filesystem::path& outDir);

/// Runs Grad-CAM on every grid (see the file comment). Each slide runs with a child JobContext covering its
/// share of `job`; `finished` (may be empty) is called after each slide, successful or not. A failing slide
/// is collected in its result (the others go on); cancellation throws Cancelled. Throws before any work
/// when `model` is neither a file nor a run folder (IoError/FormatError naming RUN/folds.csv). A model file
/// of a run (RUN/fold<r>/model.pt) given for slides its round trained on is used, with a warning in the log.
std::vector<GradCamSlideResult> gradCamSlides(
    const std::vector<std::filesystem::path>& grids, const GradCamRunOptions& options, JobContext& job = JobContext::none(),
    const std::function<void(std::size_t position, std::size_t count, const GradCamSlideResult&)>& finished = {});

/// "" when every slide succeeded, else "<failed> of <n> slide(s) failed:" and one "\n  <cause>" line each.
std::string gradCamFailureMessage(const std::vector<GradCamSlideResult>& results);

} // namespace nic

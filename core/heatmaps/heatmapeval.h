#pragma once
// Scores a heatmap at grid resolution against lesion annotations — beyond the paper, which compared
// Grad-CAM maps with annotations by eye. Three scores per slide, all restricted to tissue cells:
//   * pixel AUC: ROC AUC of the heat value of each tissue cell against "the cell is lesion";
//   * pointing game: is the hottest tissue cell inside a lesion (within a tolerance, in cells);
//   * mass inside: Σ heat · lesionFraction / Σ heat over tissue cells (negative heat counts as 0).
// Plus a cohort summary: mean (with bootstrap CI) over the slides where each score is defined.
// Plain C++, pure functions, thread-safe; the annotation overload rasterises with annotationraster.h.
#include "core/annotations/annotation.h"
#include "core/slidelearning/metrics.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace nic {

/// How heat and annotations are compared.
struct HeatmapEvalOptions {
    /// A cell is tissue when its tissue fraction is > this.
    float tissueThreshold = 0.0f;
    /// A cell is lesion (positive for the pixel AUC) when its annotated fraction is >= this.
    float lesionThreshold = 0.5f;
    /// Pointing game: a hit when a cell with lesion fraction > 0 lies within this Chebyshev distance (in
    /// cells) of the hottest tissue cell. 0 = the hottest cell itself must overlap a lesion.
    int pointingTolerance = 0;
};

/// Scores of one heatmap. Undefined scores are NaN (pointingHit then false and pointingDefined false).
struct HeatmapScores {
    std::string name;                 ///< slide name (filled by callers, for reports)
    std::int64_t tissueCells = 0;
    std::int64_t lesionCells = 0;     ///< tissue cells with lesion fraction >= lesionThreshold
    bool hasLesion = false;           ///< any tissue cell with lesion fraction > 0
    double pixelAuc = 0.0;            ///< NaN without lesion or without non-lesion tissue cells
    bool pointingDefined = false;     ///< the slide has a lesion and some tissue
    bool pointingHit = false;
    int maxX = -1;                    ///< hottest tissue cell (column, row); -1 when no tissue
    int maxY = -1;
    double massInside = 0.0;          ///< NaN without lesion or when all heat on tissue is <= 0
    double maxValue = 0.0;
};

/// Scores `heat` (cols · rows values, row-major) against `lesionFraction` and `tissueFraction` of the
/// same grid. Throws InvalidArgument on size mismatches or a NaN heat value on tissue.
HeatmapScores scoreHeatmap(const std::vector<float>& heat, const std::vector<float>& lesionFraction,
                           const std::vector<float>& tissueFraction, int cols, int rows,
                           const HeatmapEvalOptions& options = {});

/// Fraction of every grid cell covered by the area annotations of `groups` (empty = all), for a grid
/// whose cell (c, r) spans level-0 [c·cellSize, (c+1)·cellSize) × [r·cellSize, (r+1)·cellSize).
/// Throws what nic::coverage() throws.
std::vector<float> lesionFractionOnGrid(const AnnotationSet& annotations, const std::vector<std::string>& groups,
                                        double cellSize, int cols, int rows);

/// Cohort summary over per-slide scores.
struct CohortHeatmapScores {
    int slides = 0;
    int slidesWithLesion = 0;
    ConfidenceInterval meanPixelAuc;   ///< over slides with a defined pixel AUC
    int pixelAucSlides = 0;
    double pointingHitRate = 0.0;      ///< hits / slides with pointingDefined (NaN when none)
    int pointingSlides = 0;
    int pointingHits = 0;
    ConfidenceInterval meanMassInside; ///< over slides with a defined mass
    int massSlides = 0;
};

/// Means with percentile-bootstrap CIs over slides (seeded). Undefined entries (NaN) are skipped.
CohortHeatmapScores summariseHeatmapScores(const std::vector<HeatmapScores>& slides, int resamples = 2000,
                                           std::uint64_t seed = 0);

/// A heatmap file ("<slide>_heatmap.h5", written by `nic gradcam`): datasets `heatmap` and `tissue`
/// (float32 [rows, cols]) and root attributes format = "nic-heatmap", format_version = 1, cell_size
/// (level-0 pixels per cell), level0_width/height, slide_file, grid_file, model, task, layer, output,
/// prediction. Readable with h5py alone.
struct HeatmapData {
    int rows = 0;
    int cols = 0;
    std::vector<float> heat;
    std::vector<float> tissue;
    double cellSize = 0.0;
    std::int64_t level0Width = 0;
    std::int64_t level0Height = 0;
    std::string slideFile;
    std::string gridFile;
    std::string model;
    std::string task;
    int layer = 1;
    double output = 0.0;
    double prediction = 0.0;
};
/// Writes atomically (temporary file beside the target, then rename). Throws IoError/InvalidArgument.
void writeHeatmapFile(const std::filesystem::path& path, const HeatmapData& data);
/// Throws IoError naming the file when it is missing or HDF5 cannot read it, FormatError when it is not
/// a heatmap file or is inconsistent.
HeatmapData readHeatmapFile(const std::filesystem::path& path);

} // namespace nic

#pragma once
// Grad-CAM for the slide CNN (paper §3.3, §8.3), over a whole compressed slide, at grid resolution.
// No LibTorch in this header; the tensor-level step is gradCamTensors() in slidecnn.h.
//
// For layer k the heatmap is h = ReLU(Σ_j γ_j f_j), where f_j is feature map j of block k and γ_j the
// spatial mean of ∂y/∂f_j, y being the network's raw output (the logit for classification, so the
// sigmoid's saturation does not flatten the gradients). Block k's map is 2^k (k ≤ 6) times coarser than
// the grid because blocks 1–6 have stride 2, so h is resized bilinearly to the grid's H × W; k = 0 uses
// the input itself (gradient × input), which needs no resizing. The default k = 1 is the paper's
// choice (the highest-resolution convolutional layer).
//
// Whole slide: the network is fully convolutional up to its global pooling, so a grid that is not
// larger than `maxCells` goes through in one pass: γ then comes from the slide-level output itself,
// which is what "where does the model look for this slide" asks. Larger grids are cut into
// overlapping square tiles of `tileSize` cells (overlap `tileOverlap`), each explained on its own
// output and blended with a weight that falls linearly towards the tile border (so seams do not
// show); the result says where each region's own prediction comes from.
//
// Flatten head (the paper's dense head, slidetrainer.h): the network only takes R × R crops (R = the model's
// crop size), so the slide is always tiled with R × R windows at stride R/2, zero-padded where they leave
// the grid (as training and inference crops are), the windows' joint span centred on the grid; a grid that
// fits in one crop gets the one window inference uses (centred), so its map is exactly that crop's Grad-CAM.
// Each window is explained on its own output (γ from that window's logit), and a cell's heat is the average
// of the maps of every window containing it, weighted by a tent that is R/2 at the window's centre and
// 1 at its border. Why a weighted average and not the maximum: with stride R/2 every cell lies in the
// central half of some window, where it is seen with full context on every side, while near a window's
// border the network sees it cut off (and its dense weights were learnt for features anywhere in the crop
// with their context); the tent lets those central views dominate. An average also keeps the map linear
// in the windows' maps, so one window's spurious peak is diluted rather than kept, and neighbouring
// windows join without seams. `maxCells`, `tileSize` and `tileOverlap` do not apply to this head;
// GradCamResult::output is then the mean raw output over the windows.
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/slidelearning/nn/slidetrainer.h"

#include <filesystem>
#include <string>
#include <vector>

namespace nic {

struct GradCamOptions {
    int layer = 1;                  ///< k: 0 (input) … layers
    std::int64_t maxCells = 512 * 512; ///< one pass when rows · cols <= this
    int tileSize = 256;
    int tileOverlap = 64;
    /// Cells whose tissue fraction is <= this get heat 0 (negative: keep every cell).
    float tissueThreshold = 0.0f;
    std::string device = "auto";
};

struct GradCamResult {
    int rows = 0;
    int cols = 0;
    std::vector<float> heatmap;     ///< rows · cols, row-major, >= 0
    double output = 0.0;            ///< raw network output for the whole grid (or the mean over tiles)
    double prediction = 0.0;        ///< probability (classification) or de-standardised value (regression)
    int layer = 1;
    bool tiled = false;
    int tiles = 1;                  ///< tiles, or crop-sized windows for the flatten head
};

/// Grad-CAM of the model in `modelPath` on `grid` (one orientation of a compressed slide). Throws
/// InvalidArgument when the grid's channels differ from the model's or the layer is out of range,
/// IoError/Error when the model cannot be loaded.
GradCamResult gradCam(const std::filesystem::path& modelPath, const SlideGrid& grid, const GradCamOptions& options = {},
                      JobContext& job = JobContext::none());

/// What `nic gradcam` writes as <slide>_heatmap.h5 (writeHeatmapFile) for `cam`, computed on `grid`
/// (variant 0 of the compressed slide `gridFile`, whose metadata is `meta`) with the model `modelFile`
/// of `task`: the heat and tissue per cell, the cell size in level-0 pixels and the provenance.
HeatmapData gradCamHeatmapData(const GradCamResult& cam, const SlideGrid& grid, const LatentGridMeta& meta,
                               const std::filesystem::path& gridFile, const std::filesystem::path& modelFile,
                               const std::string& task);

} // namespace nic

#include "core/heatmaps/nn/gradcam.h"

#include "core/slidelearning/cropsampler.h"
#include "core/base/error.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/slidelearning/nn/slidecnn.h"

#include <algorithm>
#include <cmath>

namespace nic {

GradCamTensors gradCamTensors(SlideCnn& net, const torch::Tensor& x, int layer) {
    torch::AutoGradMode gradOn(true);
    net->eval();
    GradCamTensors t;
    auto input = x.detach().clone();
    if (layer == 0)
        input.requires_grad_(true);
    auto act = net->features(input, layer);
    if (!act.requires_grad()) // every weight frozen: make the activation a leaf we can differentiate to
        act = act.detach().requires_grad_(true);
    const auto y = net->fromFeatures(act, layer);
    const auto g = torch::autograd::grad({y.sum()}, {act})[0];
    t.gamma = g.mean({2, 3}).squeeze(0).detach();
    t.activation = act.detach();
    t.map = (t.gamma.view({1, -1, 1, 1}) * t.activation).sum(1).squeeze(0);
    t.output = y.detach().to(torch::kCPU).to(torch::kDouble).item<double>();
    return t;
}

namespace {

// Grad-CAM of one [C, h, w] window, ReLU'd and resized to h × w.
torch::Tensor camOf(SlideCnn& net, const torch::Tensor& x, int layer, double* output) {
    auto t = gradCamTensors(net, x.unsqueeze(0), layer);
    if (output)
        *output = t.output;
    auto map = torch::relu(t.map).unsqueeze(0).unsqueeze(0);
    if (map.size(2) != x.size(1) || map.size(3) != x.size(2))
        map = torch::nn::functional::interpolate(
            map, torch::nn::functional::InterpolateFuncOptions()
                     .size(std::vector<std::int64_t>{x.size(1), x.size(2)})
                     .mode(torch::kBilinear)
                     .align_corners(false));
    return map.squeeze(0).squeeze(0).to(torch::kCPU).to(torch::kFloat);
}

std::vector<std::int64_t> tileStarts(std::int64_t size, std::int64_t tile, std::int64_t step) {
    std::vector<std::int64_t> s{0};
    while (s.back() + tile < size)
        s.push_back(std::min(s.back() + step, size - tile));
    return s;
}

// Starts of the crop-sized windows along an axis of n cells: stride S, the windows' joint span centred on
// the axis (the zero padding is shared by both ends); n <= R gives one window where inference puts its
// crop (centre n/2, cropsampler.h). The windows cover every cell.
std::vector<std::int64_t> windowStarts(std::int64_t n, std::int64_t R, std::int64_t S) {
    const std::int64_t k = n <= R ? 1 : (n - R + S - 1) / S + 1;
    const std::int64_t span = (k - 1) * S + R;
    std::vector<std::int64_t> s;
    for (std::int64_t i = 0; i < k; ++i)
        s.push_back(n / 2 - span / 2 + i * S);
    return s;
}

// The flatten head: Grad-CAM of every R × R window (zero-padded where it leaves the grid), each cell's heat
// the tent-weighted average of the windows that contain it (see gradcam.h).
torch::Tensor flattenWindows(LoadedSlideModel& model, const SlideGrid& grid, int layer, GradCamResult& r,
                             JobContext& job) {
    const std::int64_t R = model.meta.config.inputSize;
    const std::int64_t S = std::max<std::int64_t>(1, R / 2);
    const auto ys = windowStarts(grid.rows, R, S);
    const auto xs = windowStarts(grid.cols, R, S);
    r.tiles = static_cast<int>(ys.size() * xs.size());
    r.tiled = r.tiles > 1;
    const auto ramp = torch::minimum(torch::arange(R) + 1, R - torch::arange(R)).to(torch::kFloat);
    const auto weight = torch::outer(ramp, ramp);
    auto acc = torch::zeros({grid.rows, grid.cols});
    auto wsum = torch::zeros({grid.rows, grid.cols});
    std::vector<float> crop(static_cast<std::size_t>(grid.channels) * static_cast<std::size_t>(R * R));
    // Every window's activations and gradients are the same sizes: kept for the next window instead of mapped and
    // page-faulted afresh (tensorcache.h; on a thread whose glibc arena predates configureCompute, as a GUI job's,
    // 1.15-1.26 s instead of 2.60-2.62 s for 16 windows at R = 400).
    const TensorCacheScope keepWindowBuffers;
    double outSum = 0.0;
    int done = 0;
    for (auto y0 : ys)
        for (auto x0 : xs) {
            job.throwIfCancelled();
            copyCrop(grid, GridCell{static_cast<int>(x0 + R / 2), static_cast<int>(y0 + R / 2)}, static_cast<int>(R),
                     crop.data(), false);
            double out = 0.0;
            const auto x = torch::from_blob(crop.data(), {grid.channels, R, R}).to(model.device);
            const auto cam = camOf(model.net, x, layer, &out);
            outSum += out;
            const auto ya = std::max<std::int64_t>(0, y0), yb = std::min<std::int64_t>(grid.rows, y0 + R);
            const auto xa = std::max<std::int64_t>(0, x0), xb = std::min<std::int64_t>(grid.cols, x0 + R);
            const auto w = weight.slice(0, ya - y0, yb - y0).slice(1, xa - x0, xb - x0);
            acc.slice(0, ya, yb).slice(1, xa, xb) += cam.slice(0, ya - y0, yb - y0).slice(1, xa - x0, xb - x0) * w;
            wsum.slice(0, ya, yb).slice(1, xa, xb) += w;
            job.progress(++done, r.tiles, "Grad-CAM windows");
        }
    r.output = outSum / r.tiles;
    return acc / wsum;
}

/// The heat map into `r` (cells at or under the tissue threshold set to 0) and the prediction from r.output.
void finish(GradCamResult& r, torch::Tensor heat, const SlideGrid& grid, const GradCamOptions& options,
            const SlideModelMeta& meta) {
    heat = heat.contiguous();
    r.heatmap.assign(heat.data_ptr<float>(), heat.data_ptr<float>() + heat.numel());
    if (options.tissueThreshold >= 0.0f && grid.tissue.size() == r.heatmap.size())
        for (std::size_t i = 0; i < r.heatmap.size(); ++i)
            if (!(grid.tissue[i] > options.tissueThreshold))
                r.heatmap[i] = 0.0f;
    r.prediction = meta.task == SlideTask::Classification ? 1.0 / (1.0 + std::exp(-r.output))
                                                          : r.output * meta.labelScale + meta.labelMean;
}

} // namespace

GradCamResult gradCam(const std::filesystem::path& modelPath, const SlideGrid& grid, const GradCamOptions& options,
                      JobContext& job) {
    auto model = loadSlideModel(modelPath, options.device);
    const auto& cfg = model.meta.config;
    if (grid.channels != cfg.inputChannels)
        throw FormatError(modelPath.string() + " expects grids with " + std::to_string(cfg.inputChannels) +
                          " channels, this one has " + std::to_string(grid.channels));
    checkGridValues(grid, "Grad-CAM", true);
    if (options.layer < 0 || options.layer > cfg.layers)
        throw InvalidArgument("Grad-CAM layer " + std::to_string(options.layer) + " is outside [0, " +
                              std::to_string(cfg.layers) + "]");
    if (options.tileSize < 8 || options.tileOverlap < 0 || options.tileOverlap >= options.tileSize)
        throw InvalidArgument("Grad-CAM tiles: size must be >= 8 and overlap in [0, size)");
    GradCamResult r;
    r.rows = grid.rows;
    r.cols = grid.cols;
    r.layer = options.layer;
    if (cfg.pooling == GlobalPooling::Flatten) { // crops cut from the grid as it is
        finish(r, flattenWindows(model, grid, options.layer, r, job), grid, options, model.meta);
        return r;
    }
    auto* data = const_cast<float*>(grid.data.data());
    // [C, H, W]: a view of the grid, not a copy (a channels-last grid through a permutation, so that its tiles reach
    // the network channels-last, as training's crops do). On a GPU one upload in the grid's own layout. The
    // channel-first copy this once made doubled the memory (512 MiB more at 1,000^2 x 128) and took half of a tiled
    // run's time.
    const auto x = (grid.channelsLast ? torch::from_blob(data, {grid.rows, grid.cols, grid.channels}).permute({2, 0, 1})
                                      : torch::from_blob(data, {grid.channels, grid.rows, grid.cols}))
                       .to(model.device);
    torch::Tensor heat;
    if (std::int64_t{grid.rows} * grid.cols <= options.maxCells) {
        heat = camOf(model.net, x, options.layer, &r.output);
        job.progress(1, 1, "Grad-CAM");
    } else {
        r.tiled = true;
        const std::int64_t T = options.tileSize;
        const std::int64_t step = T - options.tileOverlap;
        const auto ys = tileStarts(grid.rows, T, step);
        const auto xs = tileStarts(grid.cols, T, step);
        r.tiles = static_cast<int>(ys.size() * xs.size());
        auto acc = torch::zeros({grid.rows, grid.cols});
        auto wsum = torch::zeros({grid.rows, grid.cols});
        // Every tile is T x T (or the grid's side where that is smaller): its buffers are kept for the next tile
        // (tensorcache.h). A GUI job's worker thread otherwise page-faulted them afresh: 1.7-3.5 s for 25 tiles at
        // 1,000^2 x 128 against 1.0-1.1 s (docs/timings.md).
        const TensorCacheScope keepTileBuffers;
        double outSum = 0.0;
        int done = 0;
        for (auto y0 : ys)
            for (auto x0 : xs) {
                job.throwIfCancelled();
                const auto h = std::min<std::int64_t>(T, grid.rows - y0);
                const auto w = std::min<std::int64_t>(T, grid.cols - x0);
                double out = 0.0;
                const auto cam = camOf(model.net, x.slice(1, y0, y0 + h).slice(2, x0, x0 + w), options.layer, &out);
                outSum += out;
                // Tent weight: 1 in the middle, falling towards the tile border (never 0).
                const auto wy = torch::minimum(torch::arange(h) + 1, h - torch::arange(h)).to(torch::kFloat);
                const auto wx = torch::minimum(torch::arange(w) + 1, w - torch::arange(w)).to(torch::kFloat);
                const auto weight = torch::outer(wy, wx);
                acc.slice(0, y0, y0 + h).slice(1, x0, x0 + w) += cam * weight;
                wsum.slice(0, y0, y0 + h).slice(1, x0, x0 + w) += weight;
                job.progress(++done, r.tiles, "Grad-CAM tiles");
            }
        heat = acc / wsum;
        r.output = outSum / r.tiles;
    }
    finish(r, heat, grid, options, model.meta);
    return r;
}

HeatmapData gradCamHeatmapData(const GradCamResult& cam, const SlideGrid& grid, const LatentGridMeta& meta,
                               const std::filesystem::path& gridFile, const std::filesystem::path& modelFile,
                               const std::string& task) {
    HeatmapData d;
    d.rows = cam.rows;
    d.cols = cam.cols;
    d.heat = cam.heatmap;
    d.tissue = grid.tissue;
    d.cellSize = meta.stride * meta.targetMpp / meta.slideMpp;
    d.level0Width = meta.level0Width;
    d.level0Height = meta.level0Height;
    d.slideFile = meta.slideFile;
    d.gridFile = std::filesystem::absolute(gridFile).string();
    d.model = std::filesystem::absolute(modelFile).string();
    d.task = task;
    d.layer = cam.layer;
    d.output = cam.output;
    d.prediction = cam.prediction;
    return d;
}

} // namespace nic

// Slide-level model subcommands: `nic train` (k-fold cross-validated slide CNN on compressed slides)
// and `nic gradcam` (heatmaps: HDF5, PNG overlay, ASAP likelihood-map TIFF). Uses only the torch-free
// headers of core/nn, so this file compiles without <torch/torch.h>.
#include "../commands.h"
#include "../progressbar.h"

#include "core/atomicfile.h"
#include "core/cohort.h"
#include "core/error.h"
#include "core/heatmapeval.h"
#include "core/imageio.h"
#include "core/latentgrid.h"
#include "core/nn/gradcam.h"
#include "core/nn/slidetrainer.h"
#include "core/resample.h"
#include "core/slide.h"
#include "core/tiffwriter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

namespace nic::cli {

namespace {

// ---------------------------------------------------------------------------------------------- train

struct TrainOptions {
    std::string cohort;
    std::string grids;
    std::string out;
    std::string task = "classify";
    std::string target = "auto";
    std::string pool = "auto";
    bool ignoreFoldColumn = false;
    bool noShrink = false;
    bool noBalance = false;
    bool quiet = false;
    double cacheGb = 4.0;
    SlideTrainOptions train;
};

void runTrain(TrainOptions& o) {
    o.train.task = parseSlideTask(o.task);
    o.train.shrinkCropToGrids = !o.noShrink;
    o.train.balanceClasses = !o.noBalance;
    if (o.pool == "auto")
        o.train.network.pooling = o.train.task == SlideTask::Classification ? GlobalPooling::Max : GlobalPooling::Average;
    else
        o.train.network.pooling = parseGlobalPooling(o.pool);
    const Cohort cohort = readCohort(o.cohort);
    if (cohort.entries.empty())
        throw InvalidArgument(o.cohort + ": the cohort lists no slides");
    const bool useScore = o.target == "score" || (o.target == "auto" && o.train.task == SlideTask::Regression &&
                                                  std::all_of(cohort.entries.begin(), cohort.entries.end(),
                                                              [](const CohortEntry& e) { return e.score.has_value(); }));
    if (o.target != "auto" && o.target != "label" && o.target != "score")
        throw InvalidArgument("--target must be auto, label or score");
    std::vector<std::filesystem::path> files;
    std::vector<double> labels;
    std::vector<int> folds;
    const bool foldColumn = !o.ignoreFoldColumn && std::all_of(cohort.entries.begin(), cohort.entries.end(),
                                                               [](const CohortEntry& e) { return e.fold.has_value(); });
    std::vector<std::string> missing;
    for (const auto& e : cohort.entries) {
        const auto grid = std::filesystem::path(o.grids) / (e.slide.stem().string() + ".h5");
        if (!std::filesystem::exists(grid)) {
            missing.push_back(grid.string());
            continue;
        }
        files.push_back(grid);
        if (useScore) {
            if (!e.score)
                throw InvalidArgument(o.cohort + ":" + std::to_string(e.line) + ": no score for " + e.slide.string());
            labels.push_back(*e.score);
        } else {
            labels.push_back(e.labelValue());
        }
        if (foldColumn)
            folds.push_back(*e.fold);
    }
    if (!missing.empty()) {
        std::string msg = std::to_string(missing.size()) + " slide(s) of the cohort have no compressed grid in " +
                          o.grids + " (run nic compress first):";
        for (std::size_t i = 0; i < std::min<std::size_t>(missing.size(), 5); ++i)
            msg += "\n  " + missing[i];
        throw Error(msg);
    }
    LatentGridFileSource source(files, static_cast<std::int64_t>(o.cacheGb * (1 << 30)));
    auto ctx = makeTerminalContext(o.quiet);
    const auto r = crossValidate(source, labels, folds, o.train, o.out, *ctx);
    finishProgressLine();
    if (r.predictions.empty()) { // --round: this round is done, others are not yet
        std::printf("round %d finished in %s/fold%d; predictions.csv and metrics.json wait for the other rounds\n",
                    o.train.onlyRound, o.out.c_str(), o.train.onlyRound);
        return;
    }
    std::printf("slides: %zu   folds: %d   crop: %d   encoder: %s\n", labels.size(),
                r.roundMetrics.empty() ? 0 : static_cast<int>(r.roundMetrics.size()), r.cropSize,
                source.encoderName().empty() ? "?" : source.encoderName().c_str());
    const auto show = [](const char* name, const ConfidenceInterval& ci) {
        std::printf("%-9s %.3f  (95%% CI %.3f-%.3f, bootstrap over slides)\n", name, ci.estimate, ci.lower, ci.upper);
    };
    if (o.train.task == SlideTask::Classification) {
        show("AUC", r.auc);
    } else {
        show("Spearman", r.spearman);
        show("Pearson", r.pearson);
    }
    std::printf("per round:");
    for (double m : r.roundMetrics)
        std::printf(" %.3f", m);
    std::printf("\nwrote %s/{predictions.csv,metrics.json,curves.csv,folds.csv,fold*/model.pt,fold*/round.json}\n",
                o.out.c_str());
}

// -------------------------------------------------------------------------------------------- gradcam

struct GradCamCliOptions {
    std::string model;
    std::string out;
    std::vector<std::string> grids;
    std::string slides;
    int overlaySide = 1024;
    bool noPng = false;
    bool noTiff = false;
    bool quiet = false;
    GradCamOptions cam;
};

// Model for a grid: a model file, or in a `nic train` run directory the model of the round that held
// the slide out (paper §4.6: each slide is explained by a CNN that never saw it).
std::filesystem::path modelFor(const std::filesystem::path& model, const std::string& slideId,
                               const std::map<std::string, int>& foldOf) {
    if (!std::filesystem::is_directory(model))
        return model;
    const auto it = foldOf.find(slideId);
    const int fold = it == foldOf.end() ? 0 : it->second;
    return model / ("fold" + std::to_string(fold)) / "model.pt";
}

std::map<std::string, int> readFolds(const std::filesystem::path& run) {
    std::map<std::string, int> out;
    std::ifstream in(run / "folds.csv");
    if (!in)
        throw IoError((run / "folds.csv").string() + ": cannot open (is " + run.string() + " a nic train run?)");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        const auto comma = line.rfind(',');
        if (comma == std::string::npos)
            continue;
        std::string id = line.substr(0, comma);
        if (id.size() >= 2 && id.front() == '"')
            id = id.substr(1, id.size() - 2);
        out[id] = std::stoi(line.substr(comma + 1));
    }
    return out;
}

std::array<std::uint8_t, 3> jet(double t) {
    t = std::clamp(t, 0.0, 1.0);
    const auto ch = [](double v) { return static_cast<std::uint8_t>(std::lround(255.0 * std::clamp(v, 0.0, 1.0))); };
    return {ch(1.5 - std::abs(4.0 * t - 3.0)), ch(1.5 - std::abs(4.0 * t - 2.0)), ch(1.5 - std::abs(4.0 * t - 1.0))};
}

// Level-0 position → heat cell, for pixel centres of an image of w × h covering level0W × level0H.
Image overlay(const HeatmapData& d, const Image& base) {
    Image img = base;
    float maxHeat = 0.0f;
    for (float v : d.heat)
        maxHeat = std::max(maxHeat, v);
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            const double lx = (x + 0.5) * static_cast<double>(d.level0Width) / img.width;
            const double ly = (y + 0.5) * static_cast<double>(d.level0Height) / img.height;
            const int cx = std::min(d.cols - 1, static_cast<int>(lx / d.cellSize));
            const int cy = std::min(d.rows - 1, static_cast<int>(ly / d.cellSize));
            const float h = d.heat[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
            if (!(h > 0.0f) || maxHeat <= 0.0f)
                continue;
            const double t = h / maxHeat;
            const auto c = jet(t);
            const double a = 0.25 + 0.45 * t;
            std::uint8_t* p = img.at(x, y);
            for (int k = 0; k < 3; ++k)
                p[k] = static_cast<std::uint8_t>(std::lround((1 - a) * p[k] + a * c[static_cast<std::size_t>(k)]));
        }
    return img;
}

Image baseImage(const HeatmapData& d, const std::filesystem::path& slidePath, int maxSide, JobContext& ctx) {
    const double aspect = static_cast<double>(d.level0Width) / static_cast<double>(std::max<std::int64_t>(1, d.level0Height));
    const int w = aspect >= 1 ? maxSide : std::max(1, static_cast<int>(std::lround(maxSide * aspect)));
    const int h = aspect >= 1 ? std::max(1, static_cast<int>(std::lround(maxSide / aspect))) : maxSide;
    if (!slidePath.empty() && std::filesystem::exists(slidePath)) {
        try {
            const Slide slide(slidePath);
            return resize(slide.thumbnail(maxSide), w, h);
        } catch (const Error& e) {
            ctx.log(std::string("note: no thumbnail (") + e.what() + "); drawing the tissue map instead");
        }
    }
    // No slide at hand: the tissue map, light grey on white.
    Image img(w, h, 3, 255);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const int cx = std::min(d.cols - 1, static_cast<int>((x + 0.5) * d.level0Width / w / d.cellSize));
            const int cy = std::min(d.rows - 1, static_cast<int>((y + 0.5) * d.level0Height / h / d.cellSize));
            const float t = d.tissue[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
            const auto v = static_cast<std::uint8_t>(std::lround(255.0 - 90.0 * std::clamp(t, 0.0f, 1.0f)));
            std::fill(img.at(x, y), img.at(x, y) + 3, v);
        }
    return img;
}

// ASAP likelihood map: 8-bit grey, one pixel per d × d level-0 pixels with d = round(cell size), so
// its size is an integer fraction of level 0 (ASAP overlays it on the slide by that ratio).
void writeLikelihoodMap(const std::filesystem::path& path, const HeatmapData& d, double slideMpp) {
    const auto ds = std::max<std::int64_t>(1, std::llround(d.cellSize));
    const std::int64_t W = (d.level0Width + ds - 1) / ds;
    const std::int64_t H = (d.level0Height + ds - 1) / ds;
    float maxHeat = 0.0f;
    for (float v : d.heat)
        maxHeat = std::max(maxHeat, v);
    PyramidTiffOptions opt;
    opt.channels = 1;
    opt.compression = TiffCompression::Deflate;
    opt.tileSize = 256;
    opt.levelDownsample = 2;
    opt.minLevelSide = 256;
    opt.mpp = slideMpp > 0 ? slideMpp * static_cast<double>(ds) : 0.0;
    opt.description = "NIC Studio Grad-CAM likelihood map; downsample " + std::to_string(ds) + " of " + d.slideFile;
    AtomicFile file(path);
    {
        PyramidTiffWriter writer(file.tempPath(), W, H, opt);
        for (std::int64_t y0 = 0; y0 < H; y0 += opt.tileSize) {
            const auto rows = static_cast<int>(std::min<std::int64_t>(opt.tileSize, H - y0));
            Image strip(static_cast<int>(W), rows, 1, 0);
            for (int y = 0; y < rows; ++y)
                for (std::int64_t x = 0; x < W; ++x) {
                    const int cx = std::min(d.cols - 1, static_cast<int>((static_cast<double>(x) + 0.5) * static_cast<double>(ds) / d.cellSize));
                    const int cy = std::min(d.rows - 1, static_cast<int>((static_cast<double>(y0 + y) + 0.5) * static_cast<double>(ds) / d.cellSize));
                    const float h = d.heat[static_cast<std::size_t>(cy) * static_cast<std::size_t>(d.cols) + static_cast<std::size_t>(cx)];
                    *strip.at(static_cast<int>(x), y) =
                        maxHeat > 0 ? static_cast<std::uint8_t>(std::lround(255.0 * std::clamp(h / maxHeat, 0.0f, 1.0f))) : 0;
                }
            writer.appendStrip(strip);
        }
        writer.finish();
    }
    file.commit();
}

void runGradCam(GradCamCliOptions& o) {
    std::filesystem::create_directories(o.out);
    const std::filesystem::path model(o.model);
    const auto foldOf = std::filesystem::is_directory(model) ? readFolds(model) : std::map<std::string, int>{};
    auto ctx = makeTerminalContext(o.quiet);
    for (std::size_t i = 0; i < o.grids.size(); ++i) {
        ctx->throwIfCancelled();
        const std::filesystem::path gridPath(o.grids[i]);
        const LatentGridReader reader(gridPath);
        const auto& meta = reader.meta();
        const std::string id = gridPath.stem().string();
        const auto modelPath = modelFor(model, id, foldOf);
        const SlideGrid grid = readSlideGrid(reader);
        const auto cam = gradCam(modelPath, grid, o.cam);
        const HeatmapData d =
            gradCamHeatmapData(cam, grid, meta, gridPath, modelPath, toString(readSlideModelMeta(modelPath).task));
        const auto outDir = std::filesystem::path(o.out);
        writeHeatmapFile(outDir / (id + "_heatmap.h5"), d);
        if (!o.noPng) {
            std::filesystem::path slidePath;
            if (!o.slides.empty())
                slidePath = std::filesystem::path(o.slides) / meta.slideFile;
            else if (std::filesystem::exists(gridPath.parent_path() / meta.slideFile))
                slidePath = gridPath.parent_path() / meta.slideFile;
            writePng(outDir / (id + "_gradcam.png"), overlay(d, baseImage(d, slidePath, o.overlaySide, *ctx)));
        }
        if (!o.noTiff)
            writeLikelihoodMap(outDir / (id + "_likelihood_map.tif"), d, meta.slideMpp);
        ctx->log(id + ": prediction " + std::to_string(cam.prediction) + (cam.tiled ? " (tiled)" : "") + " with " +
                 modelPath.string());
        ctx->progress(static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(o.grids.size()), "Grad-CAM");
    }
    finishProgressLine();
    std::printf("wrote %zu heatmap(s) to %s (<slide>_heatmap.h5%s%s)\n", o.grids.size(), o.out.c_str(),
                o.noPng ? "" : ", <slide>_gradcam.png", o.noTiff ? "" : ", <slide>_likelihood_map.tif");
}

} // namespace

void addSlideModelCommands(CLI::App& root) {
    {
        auto* cmd = root.add_subcommand(
            "train", "Train the slide-level CNN (paper 8.2) on compressed slides with k-fold cross-validation: "
                     "per-fold models, held-out predictions, metrics with bootstrap CIs, training curves. A checkpoint "
                     "is written after every epoch (OUT/fold<r>/checkpoint.pt); an interrupted run continues with --resume");
        auto o = std::make_shared<TrainOptions>();
        auto& t = o->train;
        cmd->add_option("--cohort", o->cohort, "Cohort CSV (columns slide,label[,score][,fold])")->required();
        cmd->add_option("--grids", o->grids, "Folder of compressed slides (<slide name>.h5, from nic compress)")->required();
        cmd->add_option("--out", o->out, "Run folder to write")->required();
        cmd->add_option("--task", o->task, "classify (binary labels, BCE, AUC) or regress (MSE, Spearman)")
            ->capture_default_str();
        cmd->add_option("--target", o->target, "Column to learn: label, score, or auto (score for regress when present)")
            ->capture_default_str();
        cmd->add_option("--folds", t.folds, "k (each round: k-2 train, 1 validation, 1 test partitions)")
            ->capture_default_str()->check(CLI::Range(3, 1000));
        cmd->add_flag("--ignore-fold-column", o->ignoreFoldColumn, "Assign folds even when the cohort has a fold column");
        cmd->add_option("--epochs", t.epochs, "Maximum epochs per round")->capture_default_str()->check(CLI::PositiveNumber);
        cmd->add_option("--steps-per-epoch", t.stepsPerEpoch, "Batches per epoch (0: each training slide ~8 times, at least 20)")
            ->capture_default_str()->check(CLI::NonNegativeNumber);
        cmd->add_option("--batch", t.batchSize, "Crops per batch")->capture_default_str()->check(CLI::Range(2, 4096));
        cmd->add_option("--crop", t.cropSize, "Crop size R in grid cells")->capture_default_str()->check(CLI::PositiveNumber);
        cmd->add_flag("--no-shrink-crop", o->noShrink, "Keep R even when every grid is smaller (pure zero padding)");
        cmd->add_option("--lr", t.learningRate, "Initial learning rate (Adam)")->capture_default_str();
        cmd->add_option("--min-lr", t.minLearningRate, "Learning rate floor; training stops at a plateau there")
            ->capture_default_str();
        cmd->add_option("--patience", t.patience, "Epochs without validation improvement before lr/10")
            ->capture_default_str()->check(CLI::PositiveNumber);
        cmd->add_option("--test-crops", t.testCrops, "T crops per slide and variant at inference")
            ->capture_default_str()->check(CLI::PositiveNumber);
        cmd->add_option("--tissue-threshold", t.tissueThreshold, "A cell is tissue when its tissue fraction is above this")
            ->capture_default_str();
        cmd->add_option("--pool", o->pool, "Global pooling before the dense head: max, avg, or auto (max to classify)")
            ->capture_default_str();
        cmd->add_option("--filters", t.network.filters, "Filters per conv layer")->capture_default_str();
        cmd->add_option("--layers", t.network.layers, "Depthwise-separable conv layers")->capture_default_str();
        cmd->add_option("--dense", t.network.dense, "Units of the dense layer")->capture_default_str();
        cmd->add_option("--dropout", t.network.dropout, "Spatial dropout rate")->capture_default_str();
        cmd->add_option("--l2", t.network.l2, "L2 coefficient")->capture_default_str();
        cmd->add_flag("--no-balance", o->noBalance, "Sample slides uniformly instead of class-balanced");
        cmd->add_option("--seed", t.seed, "Seed (folds, sampling, weights)")->capture_default_str();
        cmd->add_option("--bootstrap", t.bootstrapResamples, "Bootstrap resamples for the CIs")->capture_default_str();
        cmd->add_option("--cache-gb", o->cacheGb, "Memory for cached grids")->capture_default_str();
        cmd->add_option("--device", t.device, "auto, cpu or cuda")->capture_default_str();
        cmd->add_option("--threads", t.threads, "LibTorch intra-op threads (0: LibTorch's default)")->capture_default_str();
        cmd->add_option("--round", t.onlyRound,
                        "Train only round R (0-based; one cluster task per round, see nic submit train); the run's "
                        "predictions and metrics are written once every round is finished")
            ->check(CLI::NonNegativeNumber);
        cmd->add_flag("--resume", t.resume,
                      "Continue an interrupted run in OUT: finished rounds are reused, the running round continues "
                      "from its last epoch, results equal an uninterrupted run's; refused when the parameters differ "
                      "(without --resume an earlier run's checkpoints are discarded)");
        cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
        cmd->callback([o] { runTrain(*o); });
    }
    {
        auto* cmd = root.add_subcommand(
            "gradcam", "Grad-CAM heatmaps (paper 3.3) of compressed slides at grid resolution: <slide>_heatmap.h5, "
                       "a PNG overlay and an ASAP <slide>_likelihood_map.tif");
        auto o = std::make_shared<GradCamCliOptions>();
        cmd->add_option("--model", o->model,
                        "Slide model file, or a nic train run folder (each slide then uses the model that held it out)")
            ->required();
        cmd->add_option("--out", o->out, "Output folder")->required();
        cmd->add_option("GRID", o->grids, "Compressed slides (.h5)")->required();
        cmd->add_option("--layer", o->cam.layer, "Conv layer k (1 = first, the finest; 0 = the input)")->capture_default_str();
        cmd->add_option("--slides", o->slides, "Folder of the original slides, for the overlay's thumbnail");
        cmd->add_option("--max-cells", o->cam.maxCells, "Largest grid (rows x cols) explained in one pass")
            ->capture_default_str();
        cmd->add_option("--tile", o->cam.tileSize, "Tile size for larger grids")->capture_default_str();
        cmd->add_option("--overlap", o->cam.tileOverlap, "Tile overlap")->capture_default_str();
        cmd->add_option("--tissue-threshold", o->cam.tissueThreshold, "Cells with tissue fraction <= this get 0 heat")
            ->capture_default_str();
        cmd->add_option("--overlay-size", o->overlaySide, "Longer side of the PNG overlay")->capture_default_str();
        cmd->add_flag("--no-png", o->noPng, "Skip the PNG overlay");
        cmd->add_flag("--no-tiff", o->noTiff, "Skip the ASAP likelihood map");
        cmd->add_option("--device", o->cam.device, "auto, cpu or cuda")->capture_default_str();
        cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
        cmd->callback([o] { runGradCam(*o); });
    }
}

} // namespace nic::cli

// Slide-level model subcommands: `nic train` (k-fold cross-validated slide CNN on compressed slides),
// `nic gradcam` (heatmaps: HDF5, PNG overlay, ASAP likelihood-map TIFF) and `nic predict` (new slides scored
// by the ensemble of a run's fold models). Uses only the torch-free
// headers of the nn/ halves of core/, so this file compiles without <torch/torch.h>.
#include "../commands.h"
#include "../progressbar.h"

#include "core/base/atomicfile.h"
#include "core/slidelearning/cohort.h"
#include "core/compression/compressor.h"
#include "core/base/error.h"
#include "core/compression/latentgrid.h"
#include "core/heatmaps/nn/gradcamrun.h"
#include "core/slidelearning/nn/slidetrainer.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

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
    CohortGridOptions g;
    g.regression = o.train.task == SlideTask::Regression;
    g.target = parseCohortTarget(o.target);
    g.ignoreFoldColumn = o.ignoreFoldColumn;
    const CohortGrids cohort = resolveCohortGrids(readCohort(o.cohort), o.grids, g);
    const auto& labels = cohort.labels;
    LatentGridFileSource source(cohort.grids, static_cast<std::int64_t>(o.cacheGb * (1 << 30)));
    auto ctx = makeTerminalContext(o.quiet);
    o.train.subsets = cohort.subsets;
    const auto r = crossValidate(source, labels, cohort.folds, o.train, o.out, *ctx);
    finishProgressLine();
    if (r.predictions.empty()) { // --round: this round is done, others are not yet
        std::printf("round %d finished in %s/fold%d; predictions.csv and metrics.json wait for the other rounds\n",
                    o.train.onlyRound, o.out.c_str(), o.train.onlyRound);
        return;
    }
    std::printf("slides: %zu   folds: %d   crop: %d   head: %s   encoder: %s\n", labels.size(),
                r.roundMetrics.empty() ? 0 : static_cast<int>(r.roundMetrics.size()), r.cropSize,
                toString(o.train.network.pooling),
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
    // The cohort's evaluation subsets (columns set/macro): the paper's Test and Macro beside All.
    for (const SubsetScore& s : r.subsetScores) {
        const std::string name = (o.train.task == SlideTask::Classification ? "AUC " : "Spearman ") + s.name;
        if (std::isnan(s.value.estimate))
            std::printf("%-9s n/a    (%zu slides%s)\n", name.c_str(), s.slides,
                        o.train.task == SlideTask::Classification ? ", needs both classes" : ", needs 3");
        else
            std::printf("%-9s %.3f  (95%% CI %.3f-%.3f, %zu slides)\n", name.c_str(), s.value.estimate, s.value.lower,
                        s.value.upper, s.slides);
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

void runGradCam(GradCamCliOptions& o) {
    GradCamRunOptions run;
    run.model = o.model;
    run.outDir = o.out;
    run.slidesDir = o.slides;
    run.png = !o.noPng;
    run.overlaySide = o.overlaySide;
    run.tiff = !o.noTiff;
    run.cam = o.cam;
    const std::vector<std::filesystem::path> grids(o.grids.begin(), o.grids.end());
    auto ctx = makeTerminalContext(o.quiet);
    const auto results = gradCamSlides(grids, run, *ctx, [](std::size_t, std::size_t, const GradCamSlideResult& r) {
        if (!r.error.empty()) {
            finishProgressLine();
            std::fprintf(stderr, "nic: error: %s\n", r.error.c_str());
        }
    });
    finishProgressLine();
    if (const std::string failed = gradCamFailureMessage(results); !failed.empty())
        throw Error(failed);
    std::printf("wrote %zu heatmap(s) to %s (<slide>_heatmap.h5%s%s)\n", o.grids.size(), o.out.c_str(),
                o.noPng ? "" : ", <slide>_gradcam.png", o.noTiff ? "" : ", <slide>_likelihood_map.tif");
}

// -------------------------------------------------------------------------------------------- predict

struct PredictCliOptions {
    std::string run;
    std::vector<std::string> models;
    std::vector<std::string> grids;
    std::string cohort;
    std::string gridsDir;
    std::string out;
    std::string device = "auto";
    double cacheGb = 4.0;
    bool quiet = false;
};

void runPredict(const PredictCliOptions& o) {
    if (o.run.empty() == o.models.empty())
        throw InvalidArgument("predict needs either --run RUN or --model FILE (one or more), not both");
    std::vector<std::filesystem::path> models;
    std::vector<std::string> names;
    if (!o.run.empty()) {
        models = runModelFiles(o.run);
        for (std::size_t r = 0; r < models.size(); ++r)
            names.push_back("fold" + std::to_string(r));
    } else {
        std::map<std::string, int> stems;
        for (const auto& m : o.models)
            ++stems[std::filesystem::path(m).stem().string()];
        for (const auto& m : o.models) {
            models.emplace_back(m);
            const std::string stem = std::filesystem::path(m).stem().string();
            names.push_back(stems[stem] > 1 ? m : stem); // two model.pt of different runs: their paths
        }
    }
    std::vector<std::filesystem::path> grids(o.grids.begin(), o.grids.end());
    if (!o.cohort.empty()) {
        if (o.gridsDir.empty())
            throw InvalidArgument("predict --cohort needs --grids DIR (the folder of its compressed slides)");
        for (const auto& slide : readCohort(o.cohort).slides()) {
            grids.push_back(compressedPathFor(slide, o.gridsDir));
            if (!std::filesystem::exists(grids.back()))
                throw IoError(grids.back().string() + ": no compressed slide for " + slide.string() +
                              " (run nic compress first)");
        }
    } else if (!o.gridsDir.empty()) {
        throw InvalidArgument("--grids DIR goes with --cohort; give compressed slides as arguments otherwise");
    }
    if (grids.empty())
        throw InvalidArgument("predict needs compressed slides (GRID.h5 ... or --cohort CSV --grids DIR)");
    auto ctx = makeTerminalContext(o.quiet);
    const auto p =
        predictEnsembleFiles(models, grids, o.device, *ctx, static_cast<std::int64_t>(o.cacheGb * (1 << 30)));
    finishProgressLine();
    writeFileAtomically(o.out, ensembleCsv(p, names));
    std::printf("wrote %s: %zu slide(s), mean of %zu model(s)\n", o.out.c_str(), p.slides.size(), models.size());
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
        cmd->add_option("--head,--pool", o->pool,
                        "How the last feature map reaches the dense layer: max or avg (global pooling), flatten (the "
                        "paper's dense head on the flattened map of an R x R crop), or auto (max to classify, avg to "
                        "regress); the model stores it")
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
        cmd->add_option("--threads", t.threads, "LibTorch and OpenBLAS threads (0: one per physical core, or OMP_NUM_THREADS when set)")->capture_default_str();
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
        cmd->add_option("--max-cells", o->cam.maxCells,
                        "Largest grid (rows x cols) explained in one pass (max/avg heads; a flatten-head model is "
                        "always explained in R x R windows at stride R/2, tent-weighted)")
            ->capture_default_str();
        cmd->add_option("--tile", o->cam.tileSize, "Tile size for larger grids (max/avg heads)")->capture_default_str();
        cmd->add_option("--overlap", o->cam.tileOverlap, "Tile overlap (max/avg heads)")->capture_default_str();
        cmd->add_option("--tissue-threshold", o->cam.tissueThreshold, "Cells with tissue fraction <= this get 0 heat")
            ->capture_default_str();
        cmd->add_option("--overlay-size", o->overlaySide, "Longer side of the PNG overlay")->capture_default_str();
        cmd->add_flag("--no-png", o->noPng, "Skip the PNG overlay");
        cmd->add_flag("--no-tiff", o->noTiff, "Skip the ASAP likelihood map");
        cmd->add_option("--device", o->cam.device, "auto, cpu or cuda")->capture_default_str();
        cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
        cmd->callback([o] { runGradCam(*o); });
    }
    {
        auto* cmd = root.add_subcommand(
            "predict", "Score new compressed slides with the ensemble of slide models (paper: the mean of the "
                       "cross-validation fold models' predictions, each with its test-time augmentation); writes "
                       "slide,prediction (the mean) and one column per model");
        auto o = std::make_shared<PredictCliOptions>();
        cmd->add_option("--run", o->run, "nic train run folder: its fold models RUN/fold<r>/model.pt");
        cmd->add_option("--model", o->models, "Or: a slide model file (repeat the option for an ensemble)")
            ->allow_extra_args(false);
        cmd->add_option("GRID", o->grids, "Compressed slides (.h5)");
        cmd->add_option("--cohort", o->cohort, "Or also: cohort CSV whose slides to score (with --grids)");
        cmd->add_option("--grids", o->gridsDir, "Folder of the cohort's compressed slides (from nic compress)");
        cmd->add_option("-o,--out", o->out, "CSV to write (atomically)")->required();
        cmd->add_option("--cache-gb", o->cacheGb, "Memory for cached grids")->capture_default_str();
        cmd->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
        cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
        cmd->callback([o] { runPredict(*o); });
    }
}

} // namespace nic::cli

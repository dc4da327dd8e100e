#pragma once
// Slide-level learning on compressed slides (paper §3, §4.4–4.5, §8.2): the slide CNN's configuration,
// the cohort of compressed slides it learns from, k-fold cross-validation with per-fold models, and
// test-time-augmented prediction. No LibTorch in this header (the CLI and GUI include it cheaply); the
// network itself is in slidecnn.h.
//
// Training (one cross-validation round): every step draws a batch of slides (class-balanced for
// classification: each sample is a positive with probability ½), for each a random stored dihedral
// variant and an R × R crop centred ∝ squared distance to background (cropsampler.h); Adam from 1e-2,
// divided by 10 when the validation metric has not improved for `patience` epochs, stopping when it
// would fall below 1e-5 or after `epochs`; the model of the best validation epoch is kept. Validation
// metric: AUC (classification) or Spearman (regression) of the TTA predictions on the validation fold,
// with the validation loss breaking ties and standing in when the metric is undefined.
// Inference (§3.2): T crops spread uniformly over the tissue × every stored variant, predictions
// (probabilities, or de-standardised regression outputs) averaged. When a whole grid fits inside one
// crop, its T crops would only differ by where the zero padding falls, so one centred crop per variant is used.
//
// Determinism: under a fixed seed and thread count, a run reproduces its models, predictions and
// metrics exactly (torch's generator and every sampler are seeded from `seed` and the round).
//
// Checkpoints and resume: after every completed epoch of round r, `outDir/fold<r>/checkpoint.pt` is written
// atomically (network, Adam state, the best model so far, learning rate, plateau counter, best validation
// metric and loss, the round's epoch records, the random state carried to the next epoch: torch's
// generators and the sampler's engine, and the run's identity: every option that decides the
// results, slide ids, labels, fold assignment, stored variant counts, encoder). When the round ends its
// model fold<r>/model.pt and then fold<r>/round.json (test-fold predictions, test metric, epoch records,
// identity) are published, and the checkpoint is deleted; round.json files stay with the run. A run with
// `resume` reuses finished rounds without retraining, continues the running round from its checkpoint,
// and ends with the same models, predictions.csv and metrics.json as an uninterrupted run (curves.csv
// differs only in `seconds`) on the same device and thread count; those two are not part of the identity,
// so a run may be resumed elsewhere, only not bit for bit. The random state is stored rather than reseeded
// per epoch so that checkpointing leaves the results of a seed as they were before it existed. Without `resume` an earlier run's round.json and checkpoint files are removed
// and training starts afresh. Every file appears under its final name only complete (temporary + rename),
// so a run killed at any moment (SIGKILL included) leaves complete files or none.
#include "core/slidelearning/evaluationsets.h"
#include "core/base/jobcontext.h"
#include "core/slidelearning/metrics.h"
#include "core/slidelearning/runfolder.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nic {

enum class SlideTask { Classification, Regression };
const char* toString(SlideTask task);                    ///< "classify" / "regress"
SlideTask parseSlideTask(const std::string& text);       ///< also "classification"/"regression"; InvalidArgument

/// The head: how the last feature map becomes one vector for the dense layer (dense → BN → LeakyReLU).
/// - Flatten is the paper's Keras model (§8.2): the R × R crop's last map (⌈R/2^s⌉² cells × filters, s the
///   strided blocks: 7 × 7 × 128 for R = 400) is flattened into the dense layer, so the network takes
///   exactly R × R inputs (SlideCnnConfig::inputSize) and its dense weights depend on where in the crop a
///   feature lies; Grad-CAM then explains a slide window by window (gradcam.h).
/// - A global pooling makes the network fully convolutional, so it accepts any size and the whole slide at
///   once for Grad-CAM. Max pooling suits "is there a lesion anywhere" (multiple-instance style) and ignores
///   zero padding, but it makes the model a detector of the single strongest cell, which the paper argues
///   against; average pooling suits slide-wide quantities.
enum class GlobalPooling { Max, Average, Flatten };
const char* toString(GlobalPooling pooling);              ///< "max" / "avg" / "flatten"
GlobalPooling parseGlobalPooling(const std::string& text); ///< InvalidArgument

/// Architecture of the slide CNN (§8.2). Stored with every model and compared before loading.
struct SlideCnnConfig {
    int inputChannels = 128;  ///< C of the compressed slides
    int filters = 128;
    int layers = 8;           ///< depthwise-separable conv blocks
    int unstridedLayers = 2;  ///< the last this many blocks have stride 1 (paper: layers 7 and 8)
    int dense = 128;
    double dropout = 0.2;     ///< feature-wise (spatial) dropout after each block
    double l2 = 1e-5;         ///< coefficient of Σ w² over conv and dense weights added to the loss
    GlobalPooling pooling = GlobalPooling::Max;
    /// Flatten head: the crop side R the dense layer is built for (crossValidate sets it to the crop size
    /// actually used, after shrinkCropToGrids); 0 for the pooling heads.
    int inputSize = 0;
    bool operator==(const SlideCnnConfig&) const = default;
};

/// Everything stored with a trained slide model besides its weights.
struct SlideModelMeta {
    SlideCnnConfig config;
    SlideTask task = SlideTask::Classification;
    double labelMean = 0.0;   ///< regression: prediction = output · labelScale + labelMean
    double labelScale = 1.0;
    int cropSize = 400;       ///< R used in training (and at inference)
    float tissueThreshold = 0.0f;
    int testCrops = 10;       ///< T
    std::string encoderName;  ///< of the compressed slides it was trained on ("" when unknown)
    std::string encoderHash;
    int round = -1;           ///< cross-validation round (= test fold), -1 when not from CV
    std::vector<std::string> trainSlides; ///< ids of the training and validation slides
    std::vector<std::string> validationSlides;
    std::uint64_t seed = 0;
    std::string toJson() const;
    /// Throws FormatError naming the problem when the JSON is not a slide-model description.
    static SlideModelMeta fromJson(const std::string& json);
};

/// One orientation of a compressed slide: the grid and the tissue fraction [H, W] in the same orientation.
struct SlideGrid {
    int channels = 0;
    int rows = 0;
    int cols = 0;
    /// [C, H, W] (channel-first), or [H, W, C] when channelsLast: the order compressed-slide files store, from
    /// which the trainer's channels-last crops are row copies instead of transpositions.
    std::vector<float> data;
    std::vector<float> tissue;
    bool channelsLast = false;
};

/// Whether the grid's dimensions are non-negative and its data hold channels × rows × cols values.
bool holdsItsValues(const SlideGrid& grid);
/// Throws InvalidArgument "<what>: a grid of N values is not C x H x W" unless holdsItsValues (and, when
/// `nonEmpty`, at least one row and one column).
void checkGridValues(const SlideGrid& grid, const std::string& what, bool nonEmpty = false);

class LatentGridReader;

/// Variant `variant` of a compressed slide as a SlideGrid, its tissue fractions turned to the variant's
/// orientation; channel-first unless `channelsLast` (the file's own order, read without a transposition).
/// Throws InvalidArgument (no such variant, naming the file) or IoError.
SlideGrid readSlideGrid(const LatentGridReader& reader, int variant = 0, bool channelsLast = false);

/// Where training and inference get grids from. Implementations may load lazily and cache; a source is
/// used by one thread at a time. grid() returns a reference valid until the next call.
class SlideGridSource {
public:
    virtual ~SlideGridSource() = default;
    virtual std::size_t size() const = 0;
    virtual std::string id(std::size_t slide) const = 0;
    virtual int channels() const = 0;
    virtual int variantCount(std::size_t slide) const = 0;
    /// Grid size (rows, cols) of variant 0 (for crop-size decisions without loading data).
    virtual std::pair<int, int> shape(std::size_t slide) const = 0;
    virtual const SlideGrid& grid(std::size_t slide, int variant) = 0;
    /// Encoder identity of the grids ("" when unknown).
    virtual std::string encoderName() const { return {}; }
    virtual std::string encoderHash() const { return {}; }
};

/// Grids held in memory (tests, small cohorts). `variants[i]` lists slide i's orientations.
class InMemoryGridSource final : public SlideGridSource {
public:
    InMemoryGridSource(std::vector<std::string> ids, std::vector<std::vector<SlideGrid>> variants);
    std::size_t size() const override { return ids_.size(); }
    std::string id(std::size_t slide) const override { return ids_.at(slide); }
    int channels() const override;
    int variantCount(std::size_t slide) const override { return static_cast<int>(variants_.at(slide).size()); }
    std::pair<int, int> shape(std::size_t slide) const override;
    const SlideGrid& grid(std::size_t slide, int variant) override;

private:
    std::vector<std::string> ids_;
    std::vector<std::vector<SlideGrid>> variants_;
};

/// Compressed-slide files (latentgrid.h), read on demand and kept in an LRU cache of at most
/// `cacheBytes`, channels-last (SlideGrid::channelsLast). Tissue fractions are transformed to each variant's
/// orientation. The constructor reads
/// every file's metadata and throws IoError (unreadable file) or InvalidArgument (code sizes or
/// encoders differ between files, naming both files).
class LatentGridFileSource final : public SlideGridSource {
public:
    explicit LatentGridFileSource(std::vector<std::filesystem::path> files, std::int64_t cacheBytes = std::int64_t{4} << 30);
    ~LatentGridFileSource() override;
    std::size_t size() const override { return files_.size(); }
    std::string id(std::size_t slide) const override;
    int channels() const override { return channels_; }
    int variantCount(std::size_t slide) const override { return variants_.at(slide); }
    std::pair<int, int> shape(std::size_t slide) const override { return shapes_.at(slide); }
    const SlideGrid& grid(std::size_t slide, int variant) override;
    std::string encoderName() const override { return encoderName_; }
    std::string encoderHash() const override { return encoderHash_; }
    const std::filesystem::path& file(std::size_t slide) const { return files_.at(slide); }

private:
    std::vector<std::filesystem::path> files_;
    std::vector<int> variants_;
    std::vector<std::pair<int, int>> shapes_;
    int channels_ = 0;
    std::string encoderName_;
    std::string encoderHash_;
    std::int64_t cacheBytes_ = 0;
    std::int64_t cachedBytes_ = 0;
    std::uint64_t tick_ = 0;
    struct Entry {
        SlideGrid grid;
        std::uint64_t lastUse = 0;
    };
    std::map<std::pair<std::size_t, int>, Entry> cache_;
};

/// One training epoch of one round: a row of the run's curves.csv (core/slidelearning/runfolder.h).
// Not "EpochRecord": trainer.h has an EpochRecord (encoder training), and two layouts under one name linked into
// one program let std::vector code of one run on the other (an ODR violation that corrupted memory).
using SlideEpochRecord = RunCurvePoint;

/// Options of `nic train` (defaults follow the paper).
struct SlideTrainOptions {
    SlideTask task = SlideTask::Classification;
    int folds = 4;
    int epochs = 50;
    int stepsPerEpoch = 0;     ///< 0: every training slide drawn ~8 times per epoch, at least 20 steps
    int batchSize = 16;
    int cropSize = 400;        ///< R
    /// Shrink R to the smallest multiple of 16 holding every grid of the cohort when all grids are smaller
    /// than R: the extra rows of zero padding carry nothing and cost time quadratically.
    bool shrinkCropToGrids = true;
    double learningRate = 1e-2;
    double minLearningRate = 1e-5;
    int patience = 4;          ///< epochs without validation improvement before lr /= 10
    bool balanceClasses = true;
    int testCrops = 10;        ///< T
    float tissueThreshold = 0.0f;
    SlideCnnConfig network;    ///< inputChannels is taken from the data
    std::uint64_t seed = 0;
    int bootstrapResamples = 2000;
    std::string device = "auto";
    int threads = 0;           ///< LibTorch and OpenBLAS threads; 0: one per physical core (configureCompute)
    /// Continue a run in `outDir` from its round records and checkpoint (see above). Resume state made with
    /// other parameters is refused (InvalidArgument naming the file and the parameter).
    bool resume = false;
    /// ≥ 0: train (or finish) only this round, as one task of a cluster job (nic submit train); other rounds are
    /// only read. predictions.csv, metrics.json and curves.csv are written only when every round is finished
    /// (otherwise the result has no predictions); leftovers of other rounds and of the run folder are not touched.
    int onlyRound = -1;
    /// Subsets of the cohort scored besides "All" in metrics.json (the paper's Test and Macro sets,
    /// core/slidelearning/evaluationsets.h); slide indices in the order of `source`. Reporting only: not part of the run's identity.
    std::vector<EvaluationSubset> subsets;
    /// Called on the training thread after each completed epoch of every round (live curves); may be empty.
    std::function<void(const SlideEpochRecord&)> onEpoch;
};

/// One slide's held-out prediction.
struct SlidePrediction {
    std::string id;
    double label = 0.0;
    double prediction = 0.0;
    int round = 0;             ///< the round (= test fold) whose model predicted it
};


/// The outcome of a cross-validation.
struct CrossValidationResult {
    std::vector<SlidePrediction> predictions; ///< the "All" set: every slide once, by the model that did not see it
    std::vector<SlideEpochRecord> curves;
    RocCurve roc;                              ///< classification
    ConfidenceInterval auc;                    ///< classification
    ConfidenceInterval spearman;               ///< regression
    ConfidenceInterval pearson;                ///< regression
    std::vector<double> roundMetrics;          ///< AUC / Spearman of each round's test fold
    std::vector<SubsetScore> subsetScores;     ///< options.subsets scored on the "All" predictions
    /// What ended each round's training, in round order: "lr-floor" (validation plateau at the minimum learning
    /// rate) or "epoch-cap" ("" for a round reused from a record written before stop reasons were kept). Also in
    /// metrics.json (round_stop_reasons) and each fold<r>/round.json (stop_reason, epochs_run); the log says
    /// the same, and "cancelled" when a round is cancelled.
    std::vector<std::string> roundStopReasons;
    int cropSize = 0;                          ///< R actually used
    std::string metricsJson;                   ///< what metrics.json holds
};

/// Runs k-fold cross-validation (folds.h) on `labels[i]` of slide i of `source` (`foldColumn` empty, or
/// one user fold per slide) and writes into `outDir` (created): fold<r>/model.pt and fold<r>/round.json per
/// round, predictions.csv (slide,label,prediction,round), metrics.json, curves.csv and folds.csv, each
/// atomically, and fold<r>/checkpoint.pt while round r trains. Progress: one unit per training step, step
/// "round r/k, epoch e/E"; cancellable between steps (throws Cancelled, leaving finished rounds and the
/// running round's last checkpoint, from which `options.resume` continues). Throws InvalidArgument for bad
/// options or labels (classification labels must be 0/1 and both classes must occur) or resume state of a
/// run with other parameters, IoError on write failures and unreadable resume state, FormatError for damaged
/// resume state (naming the file).
CrossValidationResult crossValidate(SlideGridSource& source, const std::vector<double>& labels,
                                    const std::vector<int>& foldColumn, const SlideTrainOptions& options,
                                    const std::filesystem::path& outDir, JobContext& job = JobContext::none());

/// Reads the metadata of a slide-model file (no weights built). Throws IoError (missing) / FormatError naming the file.
SlideModelMeta readSlideModelMeta(const std::filesystem::path& path);

/// Predicts slides with a saved model (TTA as in training's inference). Returns one value per slide:
/// a probability (classification) or a de-standardised output (regression).
std::vector<double> predictSlides(const std::filesystem::path& modelPath, SlideGridSource& source,
                                  const std::vector<std::size_t>& slides, const std::string& device = "auto",
                                  JobContext& job = JobContext::none());

/// Predictions of an ensemble of slide models (the paper's: the fold models of a cross-validation).
struct EnsemblePrediction {
    std::vector<std::string> slides;         ///< slide ids, in the order asked for
    std::vector<std::vector<double>> models; ///< [model][slide]: each model's TTA prediction (as predictSlides)
    std::vector<double> mean;                ///< [slide]: the ensemble's prediction, the mean over the models
};

/// The models of a `nic train` run folder, RUN/fold<r>/model.pt for every round r listed in RUN/folds.csv.
/// Throws IoError naming RUN/folds.csv when it is not a run, or the first missing model file (unfinished run).
std::vector<std::filesystem::path> runModelFiles(const std::filesystem::path& run);

/// Predicts `slides` of `source` with every model (TTA, as predictSlides) and averages them. The models must
/// agree on task, input channels and encoder, and match the grids: FormatError naming the model file
/// that differs (from the first model, or from the grids' code size or encoder hash, when both are known).
/// Progress: one unit per model and slide; cancellable between slides. IoError/Error for unreadable models.
EnsemblePrediction predictEnsemble(const std::vector<std::filesystem::path>& models, SlideGridSource& source,
                                   const std::vector<std::size_t>& slides, const std::string& device = "auto",
                                   JobContext& job = JobContext::none());

/// predictEnsemble() of compressed-slide files (ids: file names without extension). Every file is first
/// checked against the first model: FormatError "<grid>: compressed with encoder … (C = …) but <model>
/// was trained on …" for a different code size or encoder hash. IoError naming an unreadable file.
EnsemblePrediction predictEnsembleFiles(const std::vector<std::filesystem::path>& models,
                                        const std::vector<std::filesystem::path>& grids,
                                        const std::string& device = "auto", JobContext& job = JobContext::none(),
                                        std::int64_t cacheBytes = std::int64_t{4} << 30);

/// The ensemble's predictions as CSV: header `slide,prediction,<name of each model>`, one row per slide
/// (9 significant digits). `modelNames` has one entry per model.
std::string ensembleCsv(const EnsemblePrediction& prediction, const std::vector<std::string>& modelNames);

} // namespace nic

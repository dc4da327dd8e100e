#include "core/slidelearning/nn/slidetrainer.h"

#include "core/base/atomicfile.h"
#include "core/slidelearning/cropsampler.h"
#include "core/base/error.h"
#include "core/slidelearning/folds.h"
#include "core/compression/latentgrid.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/fusedadam.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/torchencoder.h"
#include <ATen/Parallel.h>
#include "core/slidelearning/nn/roundcheckpoint.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "core/base/plateau.h"
#include "core/slidelearning/runfolder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <set>
#include <sstream>

namespace nic {

namespace {

using ojson = nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string formatDouble(double v) { return formatRunNumber(v); }

nlohmann::ordered_json numberOrNull(double v) {
    return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json ciJson(const ConfidenceInterval& ci) {
    return {{"value", numberOrNull(ci.estimate)},
            {"ci_low", numberOrNull(ci.lower)},
            {"ci_high", numberOrNull(ci.upper)},
            {"ci_level", ci.level},
            {"bootstrap_resamples", ci.resamples},
            {"bootstrap_valid", ci.validResamples}};
}

} // namespace

// --- training -------------------------------------------------------------------------------------------

namespace {

double metricOf(SlideTask task, const std::vector<double>& pred, const std::vector<double>& truth) {
    return task == SlideTask::Classification ? rocAuc(pred, truth) : spearman(pred, truth);
}

std::string serialise(SlideCnn& net) {
    std::ostringstream os;
    torch::serialize::OutputArchive ar;
    net->save(ar);
    ar.save_to(os);
    return os.str();
}

void deserialise(SlideCnn& net, const std::string& bytes) {
    std::istringstream is(bytes);
    torch::serialize::InputArchive ar;
    ar.load_from(is);
    net->load(ar);
}

/// The convolution weights back in LibTorch's default layout (training keeps them channels-last on the CPU), so
/// that a saved model and the predictions made with it are what they were before training used that layout.
void plainWeights(SlideCnn& net) {
    torch::NoGradGuard noGrad;
    for (auto& p : net->parameters(true))
        if (!p.is_contiguous())
            p.set_data(p.contiguous());
}

} // namespace

// --- cross-validation, in named parts ----------------------------------------------------------------------

namespace {

/// Checks crossValidate()'s inputs; returns the class of each slide (the strata of fold assignment) when
/// classifying, empty otherwise.
std::vector<int> checkInputs(SlideGridSource& source, const std::vector<double>& labels,
                             const std::vector<int>& foldColumn, const SlideTrainOptions& options) {
    const std::size_t n = source.size();
    if (labels.size() != n)
        throw InvalidArgument(std::to_string(labels.size()) + " labels for " + std::to_string(n) + " slides");
    if (!foldColumn.empty() && foldColumn.size() != n)
        throw InvalidArgument(std::to_string(foldColumn.size()) + " fold values for " + std::to_string(n) + " slides");
    if (options.epochs < 1 || options.batchSize < 2 || options.cropSize < 1 || options.testCrops < 1 ||
        options.patience < 1 || !(options.learningRate > 0) || !(options.minLearningRate > 0))
        throw InvalidArgument("training: epochs and test crops must be ≥ 1, batch size ≥ 2, crop size ≥ 1, "
                              "patience ≥ 1 and learning rates > 0");
    std::vector<int> strata;
    if (options.task != SlideTask::Classification) {
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(labels[i]))
                throw InvalidArgument("regression label of slide " + source.id(i) + " is not a finite number");
        return strata;
    }
    int positives = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (labels[i] != 0.0 && labels[i] != 1.0)
            throw InvalidArgument("classification labels must be 0 or 1; slide " + source.id(i) + " has " +
                                  formatDouble(labels[i]));
        positives += labels[i] == 1.0 ? 1 : 0;
        strata.push_back(static_cast<int>(labels[i]));
    }
    if (positives == 0 || positives == static_cast<int>(n))
        throw InvalidArgument("classification needs both classes in the cohort");
    return strata;
}

/// What every part of one cross-validation shares.
struct CvRun {
    CvRun(SlideGridSource& s, const std::vector<double>& l, const SlideTrainOptions& o, const std::filesystem::path& out,
          JobContext& j, torch::Device d)
        : source(s), labels(l), options(o), outDir(out), job(j), device(d) {}

    SlideGridSource& source;
    const std::vector<double>& labels;
    const SlideTrainOptions& options;
    const std::filesystem::path& outDir;
    JobContext& job;
    torch::Device device;
    std::vector<int> foldOf;
    int k = 0;
    int R = 0; ///< crop size
    bool classify = true;
    SlideCnnConfig config;
    ojson identity;
    CrossValidationResult result;
    std::int64_t totalSteps = 0;
    std::int64_t stepsDone = 0;

    std::filesystem::path foldDir(int r) const { return outDir / ("fold" + std::to_string(r)); }
    /// Whether this process trains round r (every round, or the one of SlideTrainOptions::onlyRound).
    bool mine(int r) const { return options.onlyRound < 0 || options.onlyRound == r; }
    std::string roundName(int r) const { return "round " + std::to_string(r + 1) + "/" + std::to_string(k); }
    void writeCurves() const { writeRunCurves(outDir, result.curves); }
    void replay(const std::vector<SlideEpochRecord>& history) {
        for (const auto& rec : history) {
            result.curves.push_back(rec);
            if (options.onEpoch)
                options.onEpoch(rec);
        }
    }
};

/// The crop size R: the option, shrunk to the smallest multiple of 16 holding every grid when asked to.
int cropSizeFor(SlideGridSource& source, const SlideTrainOptions& options) {
    if (!options.shrinkCropToGrids)
        return options.cropSize;
    int largest = 1;
    for (std::size_t i = 0; i < source.size(); ++i)
        largest = std::max({largest, source.shape(i).first, source.shape(i).second});
    return std::min(options.cropSize, (largest + 15) / 16 * 16);
}

/// What an earlier run left: every finished round and checkpoint is checked against this run's parameters
/// before anything is trained, so a mismatch is refused at once. Without resume it is removed.
std::vector<std::optional<FinishedRound>> scanEarlierRun(CvRun& run, const std::vector<FoldRound>& rounds) {
    const int only = run.options.onlyRound;
    if (only >= static_cast<int>(rounds.size()))
        throw InvalidArgument("round " + std::to_string(only) + " does not exist: the run has " +
                              std::to_string(rounds.size()) + " rounds (0-" + std::to_string(rounds.size() - 1) + ")");
    // With onlyRound, other tasks may be writing the other rounds' and the run folder's files right now.
    if (only < 0)
        removeStaleTemporaries(run.outDir);
    std::vector<std::optional<FinishedRound>> finished(rounds.size());
    for (const auto& round : rounds) {
        const int r = round.round;
        const auto dir = run.foldDir(r);
        if (!run.mine(r)) {
            if (std::filesystem::exists(dir / kRoundRecordFile) && std::filesystem::exists(dir / "model.pt"))
                finished[static_cast<std::size_t>(r)] =
                    readRoundRecord(dir / kRoundRecordFile, r, run.identity, run.source, round.test);
            continue;
        }
        removeStaleTemporaries(dir);
        std::error_code ec;
        if (!run.options.resume) {
            for (const char* name : {kRoundRecordFile, kRoundCheckpointFile})
                if (std::filesystem::exists(dir / name)) {
                    run.job.log("note: starting afresh; removing " + (dir / name).string() + " of an earlier run");
                    std::filesystem::remove(dir / name, ec);
                }
            continue;
        }
        if (std::filesystem::exists(dir / kRoundRecordFile)) {
            if (std::filesystem::exists(dir / "model.pt")) {
                finished[static_cast<std::size_t>(r)] =
                    readRoundRecord(dir / kRoundRecordFile, r, run.identity, run.source, round.test);
                readSlideModelMeta(dir / "model.pt"); // a damaged model is an error, not a finished round
                std::filesystem::remove(dir / kRoundCheckpointFile, ec);
                continue;
            }
            run.job.log("note: " + (dir / "model.pt").string() + " is missing; " + run.roundName(r) +
                        " is trained again");
            std::filesystem::remove(dir / kRoundRecordFile, ec);
        }
        if (std::filesystem::exists(dir / kRoundCheckpointFile))
            openRoundCheckpoint(dir / kRoundCheckpointFile, run.device, r, run.identity, run.source);
    }
    return finished;
}

/// Batches per epoch of each round. Auto: each training slide drawn about 8 times per epoch, and at least
/// 20 steps, so that BN's running statistics (momentum 0.1) have settled before each validation.
std::vector<int> stepsPerEpoch(const std::vector<FoldRound>& rounds, const SlideTrainOptions& options) {
    std::vector<int> steps;
    const auto batch = static_cast<std::size_t>(options.batchSize);
    for (const auto& round : rounds)
        steps.push_back(options.stepsPerEpoch > 0
                            ? options.stepsPerEpoch
                            : std::max(20, static_cast<int>((8 * round.train.size() + batch - 1) / batch)));
    return steps;
}

/// The metadata stored with round `round`'s model (regression: the label standardisation of its training set).
SlideModelMeta roundMeta(const CvRun& run, const FoldRound& round) {
    SlideModelMeta meta;
    meta.config = run.config;
    meta.task = run.options.task;
    meta.cropSize = run.R;
    meta.tissueThreshold = run.options.tissueThreshold;
    meta.testCrops = run.options.testCrops;
    meta.encoderName = run.source.encoderName();
    meta.encoderHash = run.source.encoderHash();
    meta.round = round.round;
    meta.seed = run.options.seed;
    for (auto i : round.train)
        meta.trainSlides.push_back(run.source.id(i));
    for (auto i : round.validation)
        meta.validationSlides.push_back(run.source.id(i));
    if (!run.classify) {
        double mean = 0.0;
        for (auto i : round.train)
            mean += run.labels[i];
        mean /= static_cast<double>(round.train.size());
        double var = 0.0;
        for (auto i : round.train)
            var += (run.labels[i] - mean) * (run.labels[i] - mean);
        var /= static_cast<double>(round.train.size());
        meta.labelMean = mean;
        meta.labelScale = var > 0.0 ? std::sqrt(var) : 1.0;
    }
    return meta;
}

/// One round of training: the network, its optimiser and random state, restored from the round's checkpoint
/// when resuming.
class RoundTrainer {
public:
    RoundTrainer(CvRun& run, const FoldRound& round, int steps)
        : run_(run), round_(round), o_(run.options), steps_(steps), meta_(roundMeta(run, round)), net_(run.config),
          opt_(net_->parameters(), torch::optim::AdamOptions(o_.learningRate)),
          rng_(o_.seed * 104729 + static_cast<std::uint64_t>(round.round) * 31 + 1),
          checkpoint_(run.foldDir(round.round) / kRoundCheckpointFile),
          plane_(static_cast<std::size_t>(run.config.inputChannels) * static_cast<std::size_t>(run.R) *
                 static_cast<std::size_t>(run.R)),
          batch_(plane_ * static_cast<std::size_t>(o_.batchSize)), target_(static_cast<std::size_t>(o_.batchSize)) {
        net_->to(run.device);
        // Crops go in channels-last (sampleBatch), and on the CPU the weights too: oneDNN runs the separable
        // blocks' depthwise convolutions several times faster in that layout (docs/timings.md, issue 16).
        keepWeightsChannelsLast(*net_, run.device);
        for (auto i : round.train)
            (run.labels[i] > 0.5 ? pos_ : neg_).push_back(i);
        balance_ = run.classify && o_.balanceClasses && !pos_.empty() && !neg_.empty();
        st_.lr = o_.learningRate;
        bestState_ = serialise(net_);
        if (o_.resume && std::filesystem::exists(checkpoint_)) {
            st_ = restoreRoundCheckpoint(checkpoint_, net_, opt_, bestState_, rng_, run.device, round.round,
                                         run.identity, run.source, o_.epochs);
            keepWeightsChannelsLast(*net_, run.device); // loading replaced them with the file's layout
            run.replay(st_.history);
            run.stepsDone += std::int64_t{steps} * (st_.stopped ? o_.epochs : st_.epoch);
            run.job.log(run.roundName(round.round) + ": resuming from " + checkpoint_.string() + " after epoch " +
                        std::to_string(st_.epoch));
        }
    }

    /// Trains the remaining epochs, then publishes the round: model.pt, then round.json (which marks the round
    /// finished), then removes the checkpoint. Returns the round's test predictions, in the order of round.test.
    std::vector<double> run() {
        try {
            for (int epoch = st_.epoch + 1; !st_.stopped && epoch <= o_.epochs; ++epoch)
                runEpoch(epoch);
        } catch (const Cancelled&) {
            run_.job.log(
                run_.roundName(round_.round) + ": training ended: cancelled during epoch " +
                std::to_string(st_.epoch + 1) +
                (st_.epoch > 0 ? "; resume continues after epoch " + std::to_string(st_.epoch) : std::string()));
            throw;
        }
        const StopReason reason = roundStopReason(st_);
        run_.job.log(run_.roundName(round_.round) + ": training ended: " + toString(reason) + " after " +
                     std::to_string(st_.epoch) + " epochs");
        deserialise(net_, bestState_);
        plainWeights(net_);
        const auto dir = run_.foldDir(round_.round);
        saveSlideModel(net_, meta_, dir / "model.pt");
        const auto testPred = predictSet(round_.test);
        std::vector<double> testTruth;
        std::vector<std::string> testIds;
        for (std::size_t j = 0; j < round_.test.size(); ++j) {
            testTruth.push_back(run_.labels[round_.test[j]]);
            testIds.push_back(run_.source.id(round_.test[j]));
        }
        run_.result.roundMetrics.push_back(metricOf(o_.task, testPred, testTruth));
        run_.result.roundStopReasons.push_back(toString(reason));
        writeRoundRecord(dir / kRoundRecordFile, round_.round, run_.identity, testIds, testPred,
                         run_.result.roundMetrics.back(), st_.history, reason);
        std::error_code ec;
        std::filesystem::remove(checkpoint_, ec);
        return testPred;
    }

private:
    /// Test-time-augmented predictions; each slide's crop centres are planned once per round (validation runs every
    /// epoch, and the k-means of a 300² grid's test centres takes ~20 ms per variant).
    std::vector<double> predictSet(const std::vector<std::size_t>& set) {
        std::vector<double> p;
        for (auto i : set) {
            auto plan = plans_.find(i);
            if (plan == plans_.end())
                plan = plans_.emplace(i, inferencePlan(run_.source, i, run_.R, o_.testCrops, o_.tissueThreshold)).first;
            p.push_back(predictSlide(net_, meta_, run_.source, i, plan->second, run_.device));
        }
        return p;
    }

    const CropSampler& sampler(std::size_t slide, int variant) {
        auto& s = samplers_[{slide, variant}];
        if (!s) {
            const SlideGrid& g = run_.source.grid(slide, variant);
            s = std::make_unique<CropSampler>(g.tissue, g.cols, g.rows, o_.tissueThreshold);
        }
        return *s;
    }

    /// Fills the batch with random crops (class-balanced when asked to) and their targets. Each crop is cut before
    /// the next grid is asked for: a source's grid() reference lasts until its next call.
    void sampleBatch() {
        for (int b = 0; b < o_.batchSize; ++b) {
            std::size_t slide = 0;
            if (balance_) {
                const auto& cls = uniformUnit(rng_) < 0.5 ? pos_ : neg_;
                slide = cls[static_cast<std::size_t>(uniformIndex(rng_, cls.size()))];
            } else {
                slide = round_.train[static_cast<std::size_t>(uniformIndex(rng_, round_.train.size()))];
            }
            const int variant =
                static_cast<int>(uniformIndex(rng_, static_cast<std::uint64_t>(run_.source.variantCount(slide))));
            const GridCell centre = sampler(slide, variant).sample(rng_);
            const SlideGrid& g = run_.source.grid(slide, variant);
            float* crop = batch_.data() + static_cast<std::size_t>(b) * plane_;
            // Spread over LibTorch's threads within the crop (the grid reference must not outlive this iteration, so
            // crops cannot be spread instead); from the files' channels-last grids these are row copies.
            copyCrop(g, centre, run_.R, crop, true);
            target_[static_cast<std::size_t>(b)] =
                run_.classify ? static_cast<float>(run_.labels[slide])
                              : static_cast<float>((run_.labels[slide] - meta_.labelMean) / meta_.labelScale);
        }
    }

    /// The epoch's training steps; returns the mean training loss.
    double trainSteps(int epoch) {
        net_->train();
        double lossSum = 0.0;
        for (int s = 0; s < steps_; ++s) {
            run_.job.throwIfCancelled();
            sampleBatch();
            // The crops are [N, R, R, C] in memory: a channels-last view of the [N, C, R, R] batch. A GPU gets the
            // default layout, that of its weights (channels-last there is untried).
            auto x = torch::from_blob(batch_.data(), {o_.batchSize, run_.R, run_.R, run_.config.inputChannels})
                         .permute({0, 3, 1, 2})
                         .to(run_.device);
            if (!run_.device.is_cpu())
                x = x.contiguous();
            const auto y = torch::from_blob(target_.data(), {o_.batchSize}).to(run_.device);
            const auto out = net_->forward(x);
            auto loss = run_.classify ? torch::binary_cross_entropy_with_logits(out, y) : torch::mse_loss(out, y);
            lossSum += loss.item<double>();
            loss = loss + net_->l2Penalty();
            clearGradients(opt_);
            loss.backward();
            opt_.step();
            ++run_.stepsDone;
            run_.job.progress(run_.stepsDone, run_.totalSteps,
                              run_.roundName(round_.round) + ", epoch " + std::to_string(epoch) + "/" +
                                  std::to_string(o_.epochs));
        }
        return lossSum / steps_;
    }

    /// Validation with test-time augmentation: the metric (AUC or Spearman) and the loss.
    std::pair<double, double> validate() {
        const auto valPred = predictSet(round_.validation);
        std::vector<double> valTruth;
        double valLoss = 0.0;
        for (std::size_t j = 0; j < round_.validation.size(); ++j) {
            const double t = run_.labels[round_.validation[j]];
            valTruth.push_back(t);
            if (run_.classify) {
                const double p = std::clamp(valPred[j], 1e-7, 1.0 - 1e-7);
                valLoss -= t * std::log(p) + (1.0 - t) * std::log(1.0 - p);
            } else {
                const double d = (valPred[j] - t) / meta_.labelScale;
                valLoss += d * d;
            }
        }
        return {metricOf(o_.task, valPred, valTruth), valLoss / static_cast<double>(round_.validation.size())};
    }

    void runEpoch(int epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        SlideEpochRecord rec;
        rec.round = round_.round;
        rec.epoch = epoch;
        rec.learningRate = st_.lr;
        rec.trainLoss = trainSteps(epoch);
        std::tie(rec.validationMetric, rec.validationLoss) = validate();
        const double m = std::isnan(rec.validationMetric) ? -kInf : rec.validationMetric;
        if (m > st_.bestMetric + 1e-12 || (m >= st_.bestMetric - 1e-12 && rec.validationLoss < st_.bestLoss)) {
            st_.bestMetric = std::max(st_.bestMetric, m);
            st_.bestLoss = rec.validationLoss;
            bestState_ = serialise(net_);
            rec.best = true;
        }
        rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::string plateau;
        switch (PlateauSchedule{o_.minLearningRate, o_.patience}.epochEnded(rec.best, st_.lr, st_.sinceBest)) {
        case PlateauStep::Continue: break;
        case PlateauStep::Stop:
            plateau = run_.roundName(round_.round) + ": validation plateau at the minimum learning rate; stopping";
            st_.stopped = true;
            run_.stepsDone += std::int64_t{steps_} * (o_.epochs - epoch);
            break;
        case PlateauStep::Reduced:
            for (auto& group : opt_.param_groups())
                group.options().set_lr(st_.lr);
            break;
        }
        st_.epoch = epoch;
        st_.history.push_back(rec);
        writeRoundCheckpoint(checkpoint_, net_, opt_, bestState_, st_, rng_, run_.device, round_.round, run_.identity);
        run_.result.curves.push_back(rec);
        char line[256];
        std::snprintf(line, sizeof line,
                      "round %d/%d epoch %d: lr %.0e, train loss %.4f, val loss %.4f, val %s %s%s (%.1f s)",
                      round_.round + 1, run_.k, epoch, rec.learningRate, rec.trainLoss, rec.validationLoss,
                      run_.classify ? "AUC" : "Spearman",
                      std::isnan(rec.validationMetric) ? "n/a" : formatDouble(rec.validationMetric).c_str(),
                      rec.best ? " *" : "", rec.seconds);
        run_.job.log(line);
        if (!plateau.empty())
            run_.job.log(plateau);
        if (o_.onEpoch)
            o_.onEpoch(rec);
    }

    CvRun& run_;
    const FoldRound& round_;
    const SlideTrainOptions& o_;
    int steps_;
    SlideModelMeta meta_;
    SlideCnn net_;
    FusedAdam opt_;
    std::mt19937_64 rng_;
    std::filesystem::path checkpoint_;
    std::size_t plane_;
    std::vector<float> batch_;
    std::vector<float> target_;
    std::vector<std::size_t> pos_;
    std::vector<std::size_t> neg_;
    bool balance_ = false;
    RoundState st_;
    std::string bestState_;
    std::map<std::pair<std::size_t, int>, std::unique_ptr<CropSampler>> samplers_;
    std::map<std::size_t, InferencePlan> plans_; ///< test-time crop centres of the round's validation and test slides
};

/// The paper trains and tests on all 8 dihedral variants of every grid (nic compress --augment 8); a cohort
/// compressed with fewer still trains, on the stored ones only, and the log says so.
void warnAboutFewOrientations(const SlideGridSource& source, JobContext& job) {
    std::size_t fewer = 0;
    std::string example;
    for (std::size_t i = 0; i < source.size(); ++i)
        if (source.variantCount(i) < 8 && fewer++ == 0)
            example = source.id(i) + " has " + std::to_string(source.variantCount(i));
    if (fewer > 0)
        job.log("warning: " + std::to_string(fewer) + " of " + std::to_string(source.size()) +
                " compressed slides store fewer than the paper's 8 orientations (" + example +
                "); training and test-time augmentation use only the stored ones (nic compress --augment 8 stores all)");
}

/// predictions.csv (the "All" set: every slide by the model that did not see it) and metrics.json.
void writeRunResults(CvRun& run, const std::vector<double>& roundPred) {
    const std::size_t n = run.source.size();
    CrossValidationResult& result = run.result;
    std::vector<double> pred;
    std::vector<double> truth;
    std::vector<RunPrediction> rows;
    for (std::size_t i = 0; i < n; ++i) {
        SlidePrediction p{run.source.id(i), run.labels[i], roundPred[i], run.foldOf[i]};
        rows.push_back({p.id, p.label, p.prediction, p.round});
        result.predictions.push_back(p);
        pred.push_back(p.prediction);
        truth.push_back(p.label);
    }
    writeRunPredictions(run.outDir, rows);

    const SlideTrainOptions& options = run.options;
    nlohmann::ordered_json j;
    j["task"] = toString(options.task);
    j["slides"] = n;
    j["folds"] = run.k;
    j["crop_size"] = run.R;
    j["head"] = toString(run.config.pooling);
    j["encoder_name"] = run.source.encoderName();
    j["encoder_hash"] = run.source.encoderHash();
    j["seed"] = options.seed;
    auto perRound = nlohmann::ordered_json::array();
    for (double v : result.roundMetrics)
        perRound.push_back(numberOrNull(v));
    j["round_stop_reasons"] = result.roundStopReasons;
    if (run.classify) {
        result.roc = rocCurve(pred, truth);
        result.auc = bootstrapAuc(pred, truth, options.bootstrapResamples, options.seed);
        j["auc"] = ciJson(result.auc);
        auto roc = nlohmann::ordered_json::array();
        for (const auto& p : result.roc.points)
            roc.push_back({{"fpr", p.fpr}, {"tpr", p.tpr}, {"threshold", numberOrNull(p.threshold)}});
        j["roc"] = roc;
        j["positives"] = result.roc.positives;
        j["negatives"] = result.roc.negatives;
        j["round_auc"] = perRound;
    } else {
        result.spearman = bootstrapSpearman(pred, truth, options.bootstrapResamples, options.seed);
        result.pearson = bootstrapPearson(pred, truth, options.bootstrapResamples, options.seed);
        j["spearman"] = ciJson(result.spearman);
        j["pearson"] = ciJson(result.pearson);
        j["round_spearman"] = perRound;
    }
    if (!options.subsets.empty()) {
        result.subsetScores = scoreSubsets(options.subsets, pred, run.classify, options.bootstrapResamples, options.seed);
        auto subsets = nlohmann::ordered_json::array();
        for (const SubsetScore& s : result.subsetScores) {
            nlohmann::ordered_json o{{"name", s.name}, {"slides", s.slides}};
            if (run.classify) {
                o["positives"] = s.positives;
                o["negatives"] = s.negatives;
            }
            o[run.classify ? "auc" : "spearman"] = ciJson(s.value);
            subsets.push_back(o);
        }
        j["subsets"] = subsets;
    }
    result.metricsJson = j.dump(2) + "\n";
    writeFileAtomically(run.outDir / "metrics.json", result.metricsJson);
}

} // namespace

CrossValidationResult crossValidate(SlideGridSource& source, const std::vector<double>& labels,
                                    const std::vector<int>& foldColumn, const SlideTrainOptions& options,
                                    const std::filesystem::path& outDir, JobContext& job) {
    const TensorCacheScope releaseCachedTensors; // first in, last out: after the run's tensors are freed
    const std::vector<int> strata = checkInputs(source, labels, foldColumn, options);
    warnAboutFewOrientations(source, job);
    const std::size_t n = source.size();
    CvRun run(source, labels, options, outDir, job,
              torch::Device(configureCompute(ComputeOptions{options.device, options.threads})));
    run.foldOf = foldColumn.empty() ? assignFolds(n, options.folds, options.seed, strata) : foldsFromColumn(foldColumn);
    run.k = 1 + *std::max_element(run.foldOf.begin(), run.foldOf.end());
    run.R = cropSizeFor(source, options);
    run.classify = options.task == SlideTask::Classification;
    run.config = options.network;
    run.config.inputChannels = source.channels();
    // The flatten head's dense layer follows the crop size actually used (after shrinkCropToGrids).
    run.config.inputSize = run.config.pooling == GlobalPooling::Flatten ? run.R : 0;
    run.result.cropSize = run.R;
    const auto rounds = rotateFolds(run.foldOf, run.k);
    std::filesystem::create_directories(outDir);
    job.log("cross-validation: " + std::to_string(n) + " slides, " + std::to_string(run.k) + " folds, crops " +
            std::to_string(run.R) + "x" + std::to_string(run.R) + "x" + std::to_string(run.config.inputChannels) +
            ", head " + toString(run.config.pooling) + ", device " + run.device.str());
    run.identity = runIdentity(source, labels, run.foldOf, run.k, options, run.config, run.R);
    const auto finished = scanEarlierRun(run, rounds);
    {
        std::vector<std::string> ids;
        for (std::size_t i = 0; i < n; ++i)
            ids.push_back(source.id(i));
        writeRunFolds(outDir, ids, run.foldOf);
    }
    const std::vector<int> stepsOf = stepsPerEpoch(rounds, options);
    for (int steps : stepsOf)
        run.totalSteps += std::int64_t{steps} * options.epochs;

    std::vector<double> roundPred(n, kNaN);
    bool allRounds = true;
    for (const auto& round : rounds) {
        const int r = round.round;
        const int steps = stepsOf[static_cast<std::size_t>(r)];
        if (!run.mine(r) && !finished[static_cast<std::size_t>(r)]) { // another task's round, not finished yet
            allRounds = false;
            run.stepsDone += std::int64_t{steps} * options.epochs;
            continue;
        }
        std::filesystem::create_directories(run.foldDir(r));
        std::vector<double> testPred;
        if (const auto& done = finished[static_cast<std::size_t>(r)]) {
            testPred = done->testPredictions;
            run.result.roundMetrics.push_back(done->metric);
            run.result.roundStopReasons.push_back(done->stopReason);
            run.replay(done->history);
            run.stepsDone += std::int64_t{steps} * options.epochs;
            job.log(run.roundName(r) + ": finished by an earlier run; reusing " + (run.foldDir(r) / "model.pt").string());
            job.progress(run.stepsDone, run.totalSteps, run.roundName(r) + " (earlier run)");
        } else {
            torch::manual_seed(options.seed * 7919 + static_cast<std::uint64_t>(r));
            testPred = RoundTrainer(run, round, steps).run();
        }
        for (std::size_t j = 0; j < round.test.size(); ++j)
            roundPred[round.test[j]] = testPred[j];
        if (options.onlyRound < 0) // one round's task leaves the run's curves to the task that has every round
            run.writeCurves();
    }
    if (!allRounds) {
        job.log(run.roundName(options.onlyRound) + " finished; the run's predictions and metrics wait for the other rounds");
        job.progress(run.totalSteps, run.totalSteps, "done");
        return std::move(run.result);
    }
    if (options.onlyRound >= 0)
        run.writeCurves(); // every round is finished: the run's files, as a whole run writes them
    writeRunResults(run, roundPred);
    job.progress(run.totalSteps, run.totalSteps, "done");
    return std::move(run.result);
}

} // namespace nic

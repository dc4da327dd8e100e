// Training loops of the encoders (supplementary §7): one Session per kind behind a shared epoch loop
// (plateau schedule, best-by-validation encoder, checkpoints, resume, cancellation). The sessions themselves
// are in trainingsessions.cpp.
#include "core/encoders/nn/trainer.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/torchencoder.h"
#include "core/encoders/nn/trainingcheckpoint.h"
#include "core/encoders/nn/trainingsessions.h"
#include "core/base/plateau.h"
#include "core/base/cpuinfo.h"
#include "core/base/prefetcher.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <optional>
#include <random>
#include <tuple>

namespace nic {

using nlohmann::json;
using encodertraining::allIndices;
using encodertraining::augmentStrength;
using encodertraining::Batch;
using encodertraining::makeSession;
using encodertraining::Session;
using encodertraining::StepStats;

double encodertraining::augmentStrength(const TrainOptions& o) {
    return o.augmentStrength >= 0 ? o.augmentStrength
           : o.kind == EncoderKind::Contrastive ? 1.0
           : (o.kind == EncoderKind::SupervisedTumor || o.kind == EncoderKind::SupervisedTissue) ? 0.25
                                                                                                 : 0.0;
}

int encodertraining::sessionOutputs(EncoderKind kind, int classes) {
    return kind == EncoderKind::SupervisedTissue ? classes : 1;
}

// Measured on 2 CPUs (bench_encoders, docs/timings.md): the VAE's and BiGAN's batches (a gather, ~1 % of a step) were up to 10 %
// slower prefetched; the augmented batches of contrastive and supervised training were 6-15 % faster while
// OpenBLAS's threads spun beside the step, and 4-13 % slower once they no longer did: the prefetch thread's
// LibTorch kernels then only compete with the step's for the same CPUs. So Auto prefetches only where a CPU
// is left over.
bool prefetchesBatches(const TrainOptions& o) {
    switch (o.batchThread) {
    case TrainOptions::BatchThread::Prefetch: return true;
    case TrainOptions::BatchThread::Inline: return false;
    case TrainOptions::BatchThread::Auto: break;
    }
    if (augmentStrength(o) <= 0)
        return false;
    // On a GPU the step leaves the CPUs to the prefetch thread.
    return resolveDevice(o.compute.device) == "cuda" || usableCpus() > computeThreads();
}

namespace {

// ------------------------------------------------------------------------------------- checkpoints

json recordToJson(const EpochRecord& r) {
    json j = {{"epoch", r.epoch}, {"lr", r.learningRate}, {"train_loss", r.trainLoss},
              {"validation", std::isfinite(r.validation) ? json(r.validation) : json(nullptr)},
              {"extra", r.extra}, {"extra2", r.extra2}, {"seconds", r.seconds}, {"improved", r.improved},
              {"adjacent_negatives", std::isfinite(r.adjacentNegatives) ? json(r.adjacentNegatives) : json(nullptr)},
              {"other_source_negatives", std::isfinite(r.otherSourceNegatives) ? json(r.otherSourceNegatives) : json(nullptr)},
              {"pair_fallbacks", r.pairFallbacks}, {"pair_no_neighbour", r.pairNoNeighbour}};
    j["steps"] = r.steps;
    j["data_seconds"] = r.dataSeconds;
    j["data_wait_seconds"] = r.dataWaitSeconds;
    j["step_seconds"] = r.stepSeconds;
    j["validation_seconds"] = r.validationSeconds;
    return j;
}

EpochRecord recordFromJson(const nlohmann::ordered_json& j) {
    EpochRecord r;
    r.epoch = j.at("epoch").get<int>();
    r.learningRate = j.at("lr").get<double>();
    r.trainLoss = j.at("train_loss").get<double>();
    r.validation = j.at("validation").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("validation").get<double>();
    r.extra = j.value("extra", 0.0);
    r.extra2 = j.value("extra2", 0.0);
    r.seconds = j.value("seconds", 0.0);
    r.improved = j.value("improved", false);
    const auto share = [&](const char* key) {
        return j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : std::numeric_limits<double>::quiet_NaN();
    };
    r.adjacentNegatives = share("adjacent_negatives");
    r.otherSourceNegatives = share("other_source_negatives");
    r.pairFallbacks = j.value("pair_fallbacks", std::int64_t{0});
    r.pairNoNeighbour = j.value("pair_no_neighbour", std::int64_t{0});
    r.steps = j.value("steps", 0);
    r.dataSeconds = j.value("data_seconds", 0.0);
    r.dataWaitSeconds = j.value("data_wait_seconds", 0.0);
    r.stepSeconds = j.value("step_seconds", 0.0);
    r.validationSeconds = j.value("validation_seconds", 0.0);
    return r;
}

struct LoopState {
    int epoch = 0;          ///< completed epochs
    std::int64_t steps = 0; ///< completed optimisation steps
    double lr = 0.0;
    double best = std::numeric_limits<double>::quiet_NaN();
    int badEpochs = 0;
    bool done = false;                    ///< plateau at the learning-rate floor: no further epochs, even when resumed
    StopReason reason = StopReason::None; ///< the limit reached after the last completed epoch, if any
    std::vector<EpochRecord> history;
};

/// What a checkpoint must match to be resumed (compared in this order; stored at the top level of its state).
nlohmann::ordered_json identity(const TrainOptions& o, int p, int classes) {
    return {{"kind", toString(o.kind)}, {"patch_size", p}, {"code_size", o.codeSize}, {"classes", classes}};
}

/// The checkpoint of the state `st` (its records added; state() is its state record, to stage or save).
struct EpochCheckpoint {
    TrainingCheckpoint file;
    std::string state;
};

EpochCheckpoint epochCheckpoint(const std::filesystem::path& path, Session& s, const LoopState& st,
                                const nlohmann::ordered_json& id) {
    json j(id);
    j["epoch"] = st.epoch;
    j["steps"] = st.steps;
    j["stop_reason"] = toString(st.reason);
    j["lr"] = st.lr;
    j["best"] = std::isfinite(st.best) ? json(st.best) : json(nullptr);
    j["bad_epochs"] = st.badEpochs;
    j["done"] = st.done;
    auto hist = json::array();
    for (const auto& r : st.history)
        hist.push_back(recordToJson(r));
    j["history"] = hist;
    EpochCheckpoint c{TrainingCheckpoint(path), j.dump()};
    c.file.addModule("model", s.networks());
    auto opts = s.optimizers();
    for (std::size_t i = 0; i < opts.size(); ++i)
        c.file.addOptimizer("optimizer" + std::to_string(i), *opts[i]);
    return c;
}

/// The end of an epoch on disk: the checkpoint of `st` and, when `improvedMeta` is given (the epoch improved),
/// the encoder file o.out with that metadata. The checkpoint is serialised and synced on a second thread while
/// this one hashes, serialises and syncs the encoder file: one after the other they took 0.2-0.3 s at the end of
/// an 8-step supervised run, of which the 70 MB checkpoint's fsync alone ~95 ms and the encoder's hash ~30 ms.
/// The encoder file is then renamed into place before the checkpoint, as when they were written in turn, so
/// that a checkpoint never counts an epoch whose best encoder is not in place. Returns the encoder file's
/// description when one was written.
std::optional<EncoderInfo> saveEpoch(const std::filesystem::path& ckpt, Session& s, const LoopState& st,
                                     const nlohmann::ordered_json& id, const TrainOptions& o,
                                     const EncoderMeta* improvedMeta) {
    EpochCheckpoint c = epochCheckpoint(ckpt, s, st, id);
    if (!improvedMeta) {
        c.file.save(c.state);
        return std::nullopt;
    }
    std::future<void> staging = std::async(std::launch::async, [&c] { c.file.stage(c.state); });
    std::optional<StagedEncoderFile> encoder;
    try {
        encoder.emplace(o.out, *improvedMeta, s.encoderModule());
    } catch (...) {
        staging.wait(); // its thread reads the session's tensors; an error there is this one's consequence
        throw;
    }
    staging.get();
    const EncoderInfo info = encoder->publish();
    c.file.publish();
    return info;
}

LoopState readCheckpoint(const std::filesystem::path& path, Session& s, const nlohmann::ordered_json& id,
                         std::int64_t stepsPerEpoch) {
    TrainingCheckpoint checkpoint = TrainingCheckpoint::open(path, c10::nullopt, "nic train-encoder checkpoint");
    const nlohmann::ordered_json& j = checkpoint.state();
    TrainingCheckpoint::checkIdentity(path, j, id);
    checkpoint.readModule("model", s.networks());
    auto opts = s.optimizers();
    for (std::size_t i = 0; i < opts.size(); ++i)
        checkpoint.readOptimizer("optimizer" + std::to_string(i), *opts[i]);
    LoopState st;
    try {
        st.epoch = j.at("epoch").get<int>();
        // Checkpoints from before step budgets: every epoch was a full one.
        st.steps = j.value("steps", static_cast<std::int64_t>(st.epoch) * stepsPerEpoch);
        st.lr = j.at("lr").get<double>();
        st.best = j.at("best").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("best").get<double>();
        st.badEpochs = j.at("bad_epochs").get<int>();
        st.done = j.value("done", false);
        for (const auto& r : j.at("history"))
            st.history.push_back(recordFromJson(r));
    } catch (const nlohmann::json::exception& e) {
        checkpoint.damaged(e.what());
    }
    return st;
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, a, b, c);
    return buf;
}

} // namespace

namespace {

/// The banks one training run uses: the given ones, or (no validation bank, not BiGAN) a 90/10 split of the
/// training bank; with the class count of supervised kinds (checked) and the network's output count.
struct TrainingBanks {
    PatchBank splitTrain, splitVal;
    const PatchBank* train = nullptr;
    const PatchBank* val = nullptr;
    int classes = 0;
    int outputs = 0;
    bool valBySource = false; ///< validation held out as whole sources
};

void resolveBanks(TrainingBanks& b, const TrainOptions& o, const PatchBank& trainBank, const PatchBank& validationBank,
                  int p) {
    b.train = &trainBank;
    b.val = &validationBank;
    if (validationBank.empty() && o.kind != EncoderKind::Bigan) {
        // Contrastive validation pairs need the held-out anchors' neighbours and other slides: hold out
        // whole slides when the bank knows them (a random 10 % would leave almost no neighbour pairs).
        b.valBySource = o.kind == EncoderKind::Contrastive && trainBank.knownSourceCount() >= 3;
        std::tie(b.splitTrain, b.splitVal) = b.valBySource ? trainBank.splitBySource(0.1, o.seed) : trainBank.split(0.1, o.seed);
        b.train = &b.splitTrain;
        b.val = &b.splitVal;
        if (b.val->empty() || b.train->size() < 2)
            throw InvalidArgument("train-encoder: too few patches to hold out a validation set");
    }
    if (!b.val->empty() && b.val->patchSize() != p)
        throw InvalidArgument("train-encoder: training and validation banks have different patch sizes");
    if (o.kind != EncoderKind::SupervisedTumor && o.kind != EncoderKind::SupervisedTissue)
        return;
    b.classes = static_cast<int>(trainBank.classNames().size());
    if (o.kind == EncoderKind::SupervisedTumor && b.classes != 2)
        throw InvalidArgument("supervised-tumor needs a bank with exactly 2 classes (label 1 = tumour), got " +
                              std::to_string(b.classes));
    if (o.kind == EncoderKind::SupervisedTissue && b.classes < 2)
        throw InvalidArgument("supervised-tissue needs a bank with at least 2 classes");
    for (const PatchBank* bank : {b.train, b.val})
        for (std::size_t i = 0; i < bank->size(); ++i)
            if (bank->label(i) < 0 || bank->label(i) >= b.classes)
                throw InvalidArgument("supervised training needs every patch labelled (patch " + std::to_string(i) +
                                      " has label " + std::to_string(bank->label(i)) + ")");
    b.outputs = encodertraining::sessionOutputs(o.kind, b.classes);
}


/// The training steps of epoch `epoch` (its record without validation). Per-epoch seeding makes a resumed
/// run identical to an uninterrupted one.
/// `steps` may be fewer than a full epoch (the step cap): the first `steps` batches of the full epoch.
/// Progress counts `stepsBefore` + this epoch's steps out of `totalSteps` (0: unknown).
EpochRecord trainOneEpoch(Session& s, const TrainOptions& o, const PatchBank& train, int epoch, std::size_t steps,
                          double lr, std::int64_t stepsBefore, std::int64_t totalSteps, JobContext& ctx) {
    const std::uint64_t epochSeed = o.seed * 1000003ULL + static_cast<std::uint64_t>(epoch);
    torch::manual_seed(epochSeed);
    auto gen = augment::makeGenerator(epochSeed ^ 0x5bd1e995ULL);
    std::mt19937_64 rng(epochSeed);
    std::vector<std::size_t> order = allIndices(train);
    std::shuffle(order.begin(), order.end(), rng);
    s.beginEpoch();
    const std::string epochName =
        "epoch " + std::to_string(epoch) + (o.epochs > 0 ? "/" + std::to_string(o.epochs) : std::string());
    double lossSum = 0, extraSum = 0, extra2Sum = 0;
    std::size_t pos = 0;
    // Batch k+1 (its indices, pairs and augmentation) is made on the prefetch thread while batch k trains;
    // the indices and both random streams are drawn there in step order, as they would be inline.
    const auto makeBatch = [&](std::size_t, Batch& batch) {
        torch::NoGradGuard noGrad;
        std::vector<std::size_t> idx;
        for (int b = 0; b < o.batchSize && b < static_cast<int>(order.size()); ++b) {
            if (pos == order.size()) {
                std::shuffle(order.begin(), order.end(), rng);
                pos = 0;
            }
            idx.push_back(order[pos++]);
        }
        s.prepare(idx, gen, rng, batch);
    };
    double dataSeconds = 0.0, dataWaitSeconds = 0.0;
    const auto stepsStart = std::chrono::steady_clock::now();
    {
        const bool prefetch = prefetchesBatches(o);
        Prefetcher<Batch> batches(steps, 2, makeBatch, prefetch);
        for (std::size_t k = 0; k < steps; ++k) {
            const StepStats ss = s.step(batches.next());
            lossSum += ss.loss;
            extraSum += ss.extra;
            extra2Sum += ss.extra2;
            ctx.progress(stepsBefore + static_cast<std::int64_t>(k + 1), totalSteps,
                         epochName + fmt(" loss %.4f", lossSum / static_cast<double>(k + 1)));
            ctx.throwIfCancelled();
        }
        dataSeconds = batches.makeSeconds();
        dataWaitSeconds = prefetch ? batches.waitSeconds() : dataSeconds;
    } // the producer has stopped: the pair statistics below are the epoch's
    EpochRecord rec;
    rec.stepSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - stepsStart).count();
    rec.epoch = epoch;
    rec.learningRate = lr;
    rec.trainLoss = lossSum / static_cast<double>(steps);
    rec.extra = extraSum / static_cast<double>(steps);
    rec.extra2 = extra2Sum / static_cast<double>(steps);
    s.endEpoch(rec);
    rec.steps = static_cast<int>(steps);
    rec.dataSeconds = dataSeconds;
    rec.dataWaitSeconds = dataWaitSeconds;
    return rec;
}

std::string epochLogLine(const TrainOptions& o, const EpochRecord& rec, const std::string& metric, bool hasMetric) {
    std::string line = "epoch " + std::to_string(rec.epoch) + ": " + fmt("loss %.5f", rec.trainLoss);
    if (o.kind == EncoderKind::Bigan)
        line += fmt(", G/E loss %.4f, D accuracy %.3f", rec.extra, rec.extra2);
    else if (o.kind == EncoderKind::Vae)
        line += fmt(", reconstruction %.5f, KL %.2f", rec.extra, rec.extra2);
    else
        line += fmt(", train accuracy %.3f", rec.extra);
    if (std::isfinite(rec.adjacentNegatives))
        line += fmt(", negatives %.3f adjacent / %.3f other slide", rec.adjacentNegatives, rec.otherSourceNegatives) +
                " (" + std::to_string(rec.pairFallbacks) + " fallbacks, " + std::to_string(rec.pairNoNeighbour) +
                " without a neighbour)";
    if (hasMetric)
        line += ", " + metric + fmt(" %.5f", rec.validation);
    return line + fmt(", lr %.0e, %.1f s", rec.learningRate, rec.seconds) +
           fmt(" (steps %.1f s, validation %.1f s;", rec.stepSeconds, rec.validationSeconds) +
           fmt(" batches made in %.1f s, waited for %.1f s)", rec.dataSeconds, rec.dataWaitSeconds) +
           (rec.improved ? " (saved)" : "");
}

/// The options trainEncoder() refuses before anything else (InvalidArgument).
void checkTrainOptions(const TrainOptions& o, const PatchBank& trainBank) {
    if (o.out.empty())
        throw InvalidArgument("train-encoder: no output encoder path");
    if (trainBank.size() < 2)
        throw InvalidArgument("train-encoder: the training bank needs at least 2 patches");
    if (o.batchSize < 2)
        throw InvalidArgument("train-encoder: batch size must be at least 2");
    if (o.epochs < 0 || o.maxSteps < 0 || o.stepsPerEpoch < 0)
        throw InvalidArgument("train-encoder: epochs, total steps and steps per epoch must not be negative");
    if (o.kind == EncoderKind::Bigan && o.epochs == 0 && o.maxSteps == 0)
        throw InvalidArgument("train-encoder: bigan has no validation plateau to stop at; give a step or epoch budget");
}

/// The metadata of the encoder file (its training record is filled in whenever the encoder is saved).
EncoderMeta encoderMetaFor(const TrainOptions& o, int p, int classes) {
    EncoderMeta meta;
    meta.kind = toString(o.kind);
    meta.name = meta.kind;
    meta.patchSize = p;
    meta.codeSize = o.codeSize;
    meta.classes = o.kind == EncoderKind::SupervisedTissue ? classes : (o.kind == EncoderKind::SupervisedTumor ? 2 : 0);
    return meta;
}

/// The limit that ends training, in the order of precedence documented in trainer.h.
StopReason limitReached(const TrainOptions& o, const LoopState& state) {
    if (state.done)
        return StopReason::LearningRateFloor;
    if (o.maxSteps > 0 && state.steps >= o.maxSteps)
        return StopReason::StepCap;
    if (o.epochs > 0 && state.epoch >= o.epochs)
        return StopReason::EpochCap;
    return StopReason::None;
}

/// Whether the validation of epoch `epoch` (in `rec`) beats the best so far (always, without a metric); if so it
/// becomes the best and `meta` gets its training record, for the encoder file saveEpoch() writes.
bool keepIfImproved(const Session& s, const TrainOptions& o, LoopState& st, const EpochRecord& rec, int epoch,
                    EncoderMeta& meta, const std::string& metric, std::size_t trainPatches) {
    const bool hasMetric = o.kind != EncoderKind::Bigan;
    const bool improved = !hasMetric || !std::isfinite(st.best) ||
                          (s.higherIsBetter() ? rec.validation > st.best : rec.validation < st.best);
    if (!improved)
        return false;
    if (hasMetric)
        st.best = rec.validation;
    json training = {{"epoch", epoch}, {"steps", st.steps + rec.steps},  {"metric", metric},
                     {"seed", o.seed}, {"train_patches", trainPatches}, {"learning_rate", st.lr}};
    if (hasMetric)
        training["validation"] = rec.validation;
    meta.trainingJson = training.dump();
    return true;
}

/// The log's last line: what ended training, after how many epochs and steps.
void logTrainingEnd(JobContext& ctx, const LoopState& st) {
    const char* why = st.reason == StopReason::LearningRateFloor ? " (validation plateau at the learning-rate floor)"
                      : st.reason == StopReason::StepCap         ? " (total-steps budget used up)"
                                                                 : " (maximum epochs reached)";
    ctx.log(std::string("training ended: ") + toString(st.reason) + why + " after " + std::to_string(st.epoch) +
            " epochs, " + std::to_string(st.steps) + " steps");
}

} // namespace

TrainResult trainEncoder(const TrainOptions& o, const PatchBank& trainBank, const PatchBank& validationBank,
                         JobContext& ctx) {
    const TensorCacheScope releaseCachedTensors; // first in, last out: after the run's tensors are freed
    checkTrainOptions(o, trainBank);
    const int p = trainBank.patchSize();
    checkEncoderShape(p, o.codeSize);
    const torch::Device dev = toDevice(configureCompute(o.compute));

    TrainingBanks banks;
    resolveBanks(banks, o, trainBank, validationBank, p);
    const PatchBank* train = banks.train;
    const int classes = banks.classes;
    if (banks.valBySource)
        ctx.log("validation: whole slides held out (" + std::to_string(banks.val->knownSourceCount()) + " of " +
                std::to_string(trainBank.knownSourceCount()) + ", " + std::to_string(banks.val->size()) +
                " patches), so that validation pairs keep their neighbours");

    const double lr0 = o.learningRate > 0 ? o.learningRate : defaultLearningRate(o.kind);
    torch::manual_seed(o.seed);
    const std::unique_ptr<Session> s =
        makeSession(o, p, banks.outputs, *banks.train, *banks.val, dev, lr0, augmentStrength(o));
    keepWeightsChannelsLast(s->networks(), dev);

    const nlohmann::ordered_json id = identity(o, p, classes);
    const auto ckpt = o.checkpoint.empty() ? std::filesystem::path(o.out.string() + ".ckpt") : o.checkpoint;
    LoopState st;
    st.lr = lr0;
    const std::size_t steps = o.stepsPerEpoch > 0
                                  ? static_cast<std::size_t>(o.stepsPerEpoch)
                                  : std::max<std::size_t>(1, train->size() / static_cast<std::size_t>(o.batchSize));
    if (o.resume && std::filesystem::exists(ckpt)) {
        st = readCheckpoint(ckpt, *s, id, static_cast<std::int64_t>(steps));
        keepWeightsChannelsLast(s->networks(), dev); // loading replaced them with the file's layout
        ctx.log("resuming from " + ckpt.string() + " after epoch " + std::to_string(st.epoch));
    }
    s->setLearningRate(st.lr);

    EncoderMeta meta = encoderMetaFor(o, p, classes);

    TrainResult result;
    result.metric = s->metricName();
    const bool hasMetric = o.kind != EncoderKind::Bigan;
    std::optional<EncoderInfo> written; // the encoder file this run last published

    std::int64_t totalSteps = o.epochs > 0 ? static_cast<std::int64_t>(steps) * o.epochs : 0;
    if (o.maxSteps > 0)
        totalSteps = totalSteps > 0 ? std::min(totalSteps, o.maxSteps) : o.maxSteps;

    try {
        while ((st.reason = limitReached(o, st)) == StopReason::None) {
            const int epoch = st.epoch + 1;
            const auto t0 = std::chrono::steady_clock::now();
            const std::size_t epochSteps =
                o.maxSteps > 0 ? std::min<std::size_t>(steps, static_cast<std::size_t>(o.maxSteps - st.steps)) : steps;
            EpochRecord rec = trainOneEpoch(*s, o, *train, epoch, epochSteps, st.lr, st.steps, totalSteps, ctx);
            const auto v0 = std::chrono::steady_clock::now();
            rec.validation = hasMetric ? s->validate() : std::numeric_limits<double>::quiet_NaN();
            rec.validationSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - v0).count();
            ctx.throwIfCancelled();

            const bool improved = keepIfImproved(*s, o, st, rec, epoch, meta, result.metric, train->size());
            switch (PlateauSchedule{o.minLearningRate, o.patience}.epochEnded(improved, st.lr, st.badEpochs)) {
            case PlateauStep::Continue: break;
            case PlateauStep::Stop:
                st.done = true;
                result.stoppedByLearningRate = true;
                break;
            case PlateauStep::Reduced:
                s->setLearningRate(st.lr);
                ctx.log("validation plateau: learning rate now " + fmt("%.0e", st.lr));
                break;
            }
            rec.improved = improved;
            rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            st.history.push_back(rec);
            st.epoch = epoch;
            st.steps += rec.steps;
            st.reason = limitReached(o, st);
            const auto w0 = std::chrono::steady_clock::now();
            if (auto info = saveEpoch(ckpt, *s, st, id, o, improved ? &meta : nullptr))
                written = std::move(info);
            result.saveSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
            ctx.log(epochLogLine(o, rec, result.metric, hasMetric));
            if (o.onEpoch)
                o.onEpoch(rec);
        }
    } catch (const Cancelled&) {
        ctx.log("training ended: cancelled during epoch " + std::to_string(st.epoch + 1) + "; " + ckpt.string() +
                " holds epoch " + std::to_string(st.epoch) + " (" + std::to_string(st.steps) + " steps)");
        throw;
    } catch (const c10::Error& e) {
        throw Error(std::string("train-encoder: ") + torchMessage(e));
    }
    result.history = st.history;
    result.epochsRun = st.epoch;
    result.stepsRun = st.steps;
    result.bestValidation = st.best;
    result.stoppedByLearningRate = result.stoppedByLearningRate || st.done;
    result.stopReason = st.reason;
    logTrainingEnd(ctx, st);
    // What this run published, or (a resumed run that did not improve) what an earlier one did.
    result.encoder = written ? *written : readEncoderInfo(o.out);
    return result;
}

std::string trainResultJson(const TrainResult& r) {
    json j = {{"encoder", r.encoder.source},
              {"kind", r.encoder.name},
              {"hash", r.encoder.hash},
              {"metric", r.metric},
              {"best_validation",
               std::isfinite(r.bestValidation) && r.metric != "none" ? json(r.bestValidation) : json(nullptr)},
              {"epochs", r.epochsRun},
              {"steps", r.stepsRun},
              {"stop_reason", toString(r.stopReason)}};
    auto hist = json::array();
    for (const auto& rec : r.history)
        hist.push_back(recordToJson(rec));
    j["history"] = hist;
    return j.dump(2) + "\n";
}

} // namespace nic

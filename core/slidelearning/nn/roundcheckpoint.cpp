#include "core/slidelearning/nn/roundcheckpoint.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace nic {

namespace {

using ojson = nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr const char* kCheckpointFormat = "nic-slide-train-checkpoint";

std::string engineState(const std::mt19937_64& rng) {
    std::ostringstream os;
    os << rng;
    return os.str();
}

// Doubles that must come back bit-identical, including ±inf and NaN (JSON has no such numbers).
ojson exactJson(double v) {
    if (std::isfinite(v))
        return v;
    return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

double exactFromJson(const ojson& j) {
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        if (s == "nan")
            return kNaN;
        if (s == "inf")
            return kInf;
        if (s == "-inf")
            return -kInf;
        throw std::invalid_argument("not a number: " + s);
    }
    return j.get<double>();
}

ojson recordToJson(const SlideEpochRecord& e) {
    ojson j;
    j["epoch"] = e.epoch;
    j["lr"] = exactJson(e.learningRate);
    j["train_loss"] = exactJson(e.trainLoss);
    j["val_loss"] = exactJson(e.validationLoss);
    j["val_metric"] = exactJson(e.validationMetric);
    j["best"] = e.best;
    j["seconds"] = e.seconds;
    return j;
}

SlideEpochRecord recordFromJson(const ojson& j, int round) {
    SlideEpochRecord e;
    e.round = round;
    e.epoch = j.at("epoch").get<int>();
    e.learningRate = exactFromJson(j.at("lr"));
    e.trainLoss = exactFromJson(j.at("train_loss"));
    e.validationLoss = exactFromJson(j.at("val_loss"));
    e.validationMetric = exactFromJson(j.at("val_metric"));
    e.best = j.at("best").get<bool>();
    e.seconds = j.at("seconds").get<double>();
    return e;
}

/// The identity's per-slide entries, named by slide in a refusal.
IdentityItems perSlide(SlideGridSource& source) {
    return {"slide",
            {{"slides", "id"}, {"labels", "label"}, {"slide_folds", "fold"}, {"slide_variants", "number of stored variants"}},
            [&source](std::size_t i) { return source.id(i); }};
}

/// The schedule state stored in a checkpoint's state record (std::exception for a damaged one).
RoundState roundStateFromJson(const ojson& j, int round, std::mt19937_64& rng) {
    RoundState st;
    st.epoch = j.at("epoch").get<int>();
    st.lr = exactFromJson(j.at("lr"));
    st.bestMetric = exactFromJson(j.at("best_metric"));
    st.bestLoss = exactFromJson(j.at("best_loss"));
    st.sinceBest = j.at("since_best").get<int>();
    st.stopped = j.at("stopped").get<bool>();
    for (const auto& e : j.at("history"))
        st.history.push_back(recordFromJson(e, round));
    std::istringstream engine(j.at("sampler_rng").get<std::string>());
    engine >> rng;
    if (!engine)
        throw std::invalid_argument("unreadable sampler_rng");
    return st;
}

} // namespace

StopReason roundStopReason(const RoundState& st) {
    return st.stopped ? StopReason::LearningRateFloor : StopReason::EpochCap;
}

ojson runIdentity(SlideGridSource& source, const std::vector<double>& labels, const std::vector<int>& foldOf, int k,
                  const SlideTrainOptions& o, const SlideCnnConfig& config, int cropSize) {
    ojson j;
    j["task"] = toString(o.task);
    j["folds"] = k;
    j["epochs"] = o.epochs;
    j["steps_per_epoch"] = o.stepsPerEpoch;
    j["batch_size"] = o.batchSize;
    j["crop_size"] = o.cropSize;
    j["shrink_crop_to_grids"] = o.shrinkCropToGrids;
    j["crop_size_used"] = cropSize;
    j["learning_rate"] = o.learningRate;
    j["min_learning_rate"] = o.minLearningRate;
    j["patience"] = o.patience;
    j["balance_classes"] = o.balanceClasses;
    j["test_crops"] = o.testCrops;
    j["tissue_threshold"] = o.tissueThreshold;
    j["input_channels"] = config.inputChannels;
    j["filters"] = config.filters;
    j["layers"] = config.layers;
    j["unstrided_layers"] = config.unstridedLayers;
    j["dense"] = config.dense;
    j["dropout"] = config.dropout;
    j["l2"] = config.l2;
    j["pooling"] = toString(config.pooling);
    j["seed"] = o.seed;
    j["encoder_name"] = source.encoderName();
    j["encoder_hash"] = source.encoderHash();
    auto ids = ojson::array();
    auto variants = ojson::array();
    for (std::size_t i = 0; i < source.size(); ++i) {
        ids.push_back(source.id(i));
        variants.push_back(source.variantCount(i));
    }
    j["slides"] = ids;
    j["labels"] = labels;
    j["slide_folds"] = foldOf;
    j["slide_variants"] = variants;
    return j;
}

void writeRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                          const std::string& bestState, const RoundState& st, const std::mt19937_64& rng,
                          torch::Device device, int round, const ojson& identity) {
    ojson j;
    j["format"] = kCheckpointFormat;
    j["format_version"] = 1;
    j["round"] = round;
    j["epoch"] = st.epoch;
    j["lr"] = exactJson(st.lr);
    j["best_metric"] = exactJson(st.bestMetric);
    j["best_loss"] = exactJson(st.bestLoss);
    j["since_best"] = st.sinceBest;
    j["stopped"] = st.stopped;
    auto history = ojson::array();
    for (const auto& e : st.history)
        history.push_back(recordToJson(e));
    j["history"] = history;
    j["sampler_rng"] = engineState(rng);
    j["identity"] = identity;
    TrainingCheckpoint checkpoint(path);
    checkpoint.addModule("model", *net);
    checkpoint.addOptimizer("optimizer", opt);
    checkpoint.addBytes("best_model", bestState);
    checkpoint.addGenerators(device);
    checkpoint.save(j.dump());
}

TrainingCheckpoint openRoundCheckpoint(const std::filesystem::path& path, torch::Device device, int round,
                                       const ojson& identity, SlideGridSource& source) {
    const std::string src = path.string();
    TrainingCheckpoint checkpoint = TrainingCheckpoint::open(path, device, "nic train checkpoint");
    const ojson& j = checkpoint.state();
    try {
        if (j.value("format", std::string()) != kCheckpointFormat)
            throw FormatError(src + ": not a nic train checkpoint (format is not " + kCheckpointFormat + ")");
        if (j.at("format_version").get<int>() != 1)
            throw FormatError(src + ": unsupported checkpoint format version " + j.at("format_version").dump());
        if (j.at("round").get<int>() != round)
            throw FormatError(src + ": checkpoint of round " + j.at("round").dump() + " where round " +
                          std::to_string(round) + " was expected");
        (void)j.at("identity");
    } catch (const nlohmann::json::exception& e) {
        checkpoint.damaged(e.what());
    }
    const IdentityItems slides = perSlide(source);
    TrainingCheckpoint::checkIdentity(path, j.at("identity"), identity, &slides);
    return checkpoint;
}

RoundState restoreRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                                  std::string& bestState, std::mt19937_64& rng, torch::Device device, int round,
                                  const ojson& identity, SlideGridSource& source, int epochs) {
    TrainingCheckpoint checkpoint = openRoundCheckpoint(path, device, round, identity, source);
    checkpoint.readModule("model", *net);
    checkpoint.readOptimizer("optimizer", opt);
    bestState = checkpoint.readBytes("best_model");
    checkpoint.readGenerators(device);
    RoundState st;
    try {
        st = roundStateFromJson(checkpoint.state(), round, rng);
    } catch (const std::exception& e) {
        checkpoint.damaged(e.what());
    }
    if (st.epoch < 1 || st.epoch > epochs || st.history.size() != static_cast<std::size_t>(st.epoch) || !(st.lr > 0))
        checkpoint.damaged("inconsistent schedule state (epoch " + std::to_string(st.epoch) + ")");
    for (auto& group : opt.param_groups())
        group.options().set_lr(st.lr);
    return st;
}

void writeRoundRecord(const std::filesystem::path& path, int round, const ojson& identity,
                      const std::vector<std::string>& testIds, const std::vector<double>& testPredictions,
                      double metric, const std::vector<SlideEpochRecord>& history, StopReason stopReason) {
    ojson j;
    j["format"] = "nic-slide-train-round";
    j["format_version"] = 1;
    j["round"] = round;
    j["test_metric"] = exactJson(metric);
    j["stop_reason"] = toString(stopReason);
    j["epochs_run"] = history.size();
    auto test = ojson::array();
    for (std::size_t i = 0; i < testIds.size(); ++i)
        test.push_back({{"slide", testIds[i]}, {"prediction", exactJson(testPredictions[i])}});
    j["test"] = test;
    auto curves = ojson::array();
    for (const auto& e : history)
        curves.push_back(recordToJson(e));
    j["curves"] = curves;
    j["identity"] = identity;
    writeFileAtomically(path, j.dump(1) + "\n");
}

FinishedRound readRoundRecord(const std::filesystem::path& path, int round, const ojson& identity,
                              SlideGridSource& source, const std::vector<std::size_t>& testSlides) {
    const std::string src = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(src + ": cannot open round record");
    std::ostringstream text;
    text << in.rdbuf();
    ojson j;
    FinishedRound f;
    try {
        j = ojson::parse(text.str());
        if (j.value("format", std::string()) != "nic-slide-train-round" || j.at("format_version").get<int>() != 1)
            throw FormatError(src + ": not a nic train round record (version 1)");
        if (j.at("round").get<int>() != round)
            throw FormatError(src + ": record of round " + j.at("round").dump() + " where round " +
                          std::to_string(round) + " was expected");
        (void)j.at("identity");
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(src + ": damaged round record: " + e.what());
    }
    const IdentityItems slides = perSlide(source);
    TrainingCheckpoint::checkIdentity(path, j.at("identity"), identity, &slides);
    try {
        f.metric = exactFromJson(j.at("test_metric"));
        const auto& test = j.at("test");
        if (test.size() != testSlides.size())
            throw FormatError(src + ": damaged round record: " + std::to_string(test.size()) + " test predictions for " +
                          std::to_string(testSlides.size()) + " test slides");
        for (std::size_t i = 0; i < testSlides.size(); ++i) {
            if (test[i].at("slide").get<std::string>() != source.id(testSlides[i]))
                throw FormatError(src + ": damaged round record: test slide " + std::to_string(i + 1) + " is " +
                              test[i].at("slide").dump() + ", expected " + source.id(testSlides[i]));
            f.testPredictions.push_back(exactFromJson(test[i].at("prediction")));
        }
        for (const auto& e : j.at("curves"))
            f.history.push_back(recordFromJson(e, round));
        f.stopReason = j.value("stop_reason", std::string());
    } catch (const FormatError&) {
        throw;
    } catch (const std::exception& e) {
        throw FormatError(src + ": damaged round record: " + e.what());
    }
    return f;
}

void removeStaleTemporaries(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        return;
    static const char* const finals[] = {"model.pt",     kRoundCheckpointFile, kRoundRecordFile, "predictions.csv",
                                         "metrics.json", "curves.csv",         "folds.csv"};
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        for (const char* f : finals)
            if (name.rfind(std::string(f) + ".tmp-", 0) == 0)
                std::filesystem::remove(entry.path(), ec);
    }
}

} // namespace nic

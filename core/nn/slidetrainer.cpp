#include "core/nn/slidetrainer.h"

#include "core/atomicfile.h"
#include "core/cropsampler.h"
#include "core/error.h"
#include "core/folds.h"
#include "core/latentgrid.h"
#include "core/nn/encoders.h"
#include "core/nn/slidecnn.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

namespace nic {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string formatDouble(double v) {
    if (std::isnan(v))
        return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

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

std::string csvField(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos)
        return s;
    std::string out = "\"";
    for (char c : s)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

} // namespace

// --- enums and metadata ------------------------------------------------------------------------------

const char* toString(SlideTask task) {
    return task == SlideTask::Classification ? "classify" : "regress";
}

SlideTask parseSlideTask(const std::string& text) {
    if (text == "classify" || text == "classification")
        return SlideTask::Classification;
    if (text == "regress" || text == "regression")
        return SlideTask::Regression;
    throw InvalidArgument("unknown task '" + text + "' (expected classify or regress)");
}

const char* toString(GlobalPooling pooling) {
    return pooling == GlobalPooling::Max ? "max" : "avg";
}

GlobalPooling parseGlobalPooling(const std::string& text) {
    if (text == "max")
        return GlobalPooling::Max;
    if (text == "avg" || text == "average" || text == "mean")
        return GlobalPooling::Average;
    throw InvalidArgument("unknown pooling '" + text + "' (expected max or avg)");
}

std::string SlideModelMeta::toJson() const {
    nlohmann::ordered_json j;
    j["format"] = "nic-slide-model";
    j["format_version"] = 1;
    j["architecture"] = {{"input_channels", config.inputChannels},
                         {"filters", config.filters},
                         {"layers", config.layers},
                         {"unstrided_layers", config.unstridedLayers},
                         {"dense", config.dense},
                         {"dropout", config.dropout},
                         {"l2", config.l2},
                         {"pooling", toString(config.pooling)}};
    j["task"] = toString(task);
    j["label_mean"] = labelMean;
    j["label_scale"] = labelScale;
    j["crop_size"] = cropSize;
    j["tissue_threshold"] = tissueThreshold;
    j["test_crops"] = testCrops;
    j["encoder_name"] = encoderName;
    j["encoder_hash"] = encoderHash;
    j["round"] = round;
    j["train_slides"] = trainSlides;
    j["validation_slides"] = validationSlides;
    j["seed"] = seed;
    return j.dump();
}

SlideModelMeta SlideModelMeta::fromJson(const std::string& text) {
    SlideModelMeta m;
    try {
        const auto j = nlohmann::json::parse(text);
        if (j.value("format", std::string()) != "nic-slide-model")
            throw Error("not a NIC slide model (format is not nic-slide-model)");
        if (j.at("format_version").get<int>() != 1)
            throw Error("unsupported slide model format version " + j.at("format_version").dump());
        const auto& a = j.at("architecture");
        m.config.inputChannels = a.at("input_channels").get<int>();
        m.config.filters = a.at("filters").get<int>();
        m.config.layers = a.at("layers").get<int>();
        m.config.unstridedLayers = a.at("unstrided_layers").get<int>();
        m.config.dense = a.at("dense").get<int>();
        m.config.dropout = a.at("dropout").get<double>();
        m.config.l2 = a.at("l2").get<double>();
        m.config.pooling = parseGlobalPooling(a.at("pooling").get<std::string>());
        m.task = parseSlideTask(j.at("task").get<std::string>());
        m.labelMean = j.at("label_mean").get<double>();
        m.labelScale = j.at("label_scale").get<double>();
        m.cropSize = j.at("crop_size").get<int>();
        m.tissueThreshold = j.at("tissue_threshold").get<float>();
        m.testCrops = j.at("test_crops").get<int>();
        m.encoderName = j.value("encoder_name", std::string());
        m.encoderHash = j.value("encoder_hash", std::string());
        m.round = j.value("round", -1);
        m.trainSlides = j.value("train_slides", std::vector<std::string>{});
        m.validationSlides = j.value("validation_slides", std::vector<std::string>{});
        m.seed = j.value("seed", std::uint64_t{0});
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("malformed slide model description: ") + e.what());
    }
    return m;
}

SlideModelMeta readSlideModelMeta(const std::filesystem::path& path) {
    torch::serialize::InputArchive ar;
    try {
        ar.load_from(path.string());
    } catch (const c10::Error& e) {
        throw IoError(path.string() + ": cannot read slide model: " + e.what_without_backtrace());
    }
    c10::IValue iv;
    if (!ar.try_read("meta/json", iv) || !iv.isString())
        throw Error(path.string() + ": not a NIC slide model (no meta/json record)");
    try {
        return SlideModelMeta::fromJson(iv.toStringRef());
    } catch (const Error& e) {
        throw Error(path.string() + ": " + e.what());
    }
}

// --- grid sources ---------------------------------------------------------------------------------------

InMemoryGridSource::InMemoryGridSource(std::vector<std::string> ids, std::vector<std::vector<SlideGrid>> variants)
    : ids_(std::move(ids)), variants_(std::move(variants)) {
    if (ids_.size() != variants_.size())
        throw InvalidArgument("grid source: " + std::to_string(ids_.size()) + " ids for " +
                              std::to_string(variants_.size()) + " slides");
    for (std::size_t i = 0; i < variants_.size(); ++i) {
        if (variants_[i].empty())
            throw InvalidArgument("grid source: slide " + ids_[i] + " has no grid");
        for (const auto& g : variants_[i])
            if (g.channels != variants_[0][0].channels ||
                g.data.size() != static_cast<std::size_t>(g.channels) * static_cast<std::size_t>(g.rows) *
                                     static_cast<std::size_t>(g.cols) ||
                g.tissue.size() != static_cast<std::size_t>(g.rows) * static_cast<std::size_t>(g.cols))
                throw InvalidArgument("grid source: slide " + ids_[i] + " has an inconsistent grid");
    }
}

int InMemoryGridSource::channels() const {
    return variants_.empty() ? 0 : variants_[0][0].channels;
}

std::pair<int, int> InMemoryGridSource::shape(std::size_t slide) const {
    const auto& g = variants_.at(slide).at(0);
    return {g.rows, g.cols};
}

const SlideGrid& InMemoryGridSource::grid(std::size_t slide, int variant) {
    return variants_.at(slide).at(static_cast<std::size_t>(variant));
}

LatentGridFileSource::LatentGridFileSource(std::vector<std::filesystem::path> files, std::int64_t cacheBytes)
    : files_(std::move(files)), cacheBytes_(cacheBytes) {
    for (std::size_t i = 0; i < files_.size(); ++i) {
        const auto meta = readLatentGridMeta(files_[i]);
        if (i == 0) {
            channels_ = meta.codeSize;
            encoderName_ = meta.encoderName;
            encoderHash_ = meta.encoderHash;
        } else if (meta.codeSize != channels_ || meta.encoderHash != encoderHash_) {
            throw InvalidArgument(files_[i].string() + " was compressed with " + meta.encoderName + " (C = " +
                                  std::to_string(meta.codeSize) + ") but " + files_[0].string() + " with " +
                                  encoderName_ + " (C = " + std::to_string(channels_) +
                                  "); a cohort needs one encoder");
        }
        variants_.push_back(meta.augment);
        shapes_.emplace_back(meta.rows, meta.cols);
    }
}

LatentGridFileSource::~LatentGridFileSource() = default;

std::string LatentGridFileSource::id(std::size_t slide) const {
    return files_.at(slide).stem().string();
}

SlideGrid readSlideGrid(const LatentGridReader& reader, int variant) {
    if (variant < 0 || variant >= reader.variantCount())
        throw InvalidArgument(reader.path().string() + ": no dihedral variant " + std::to_string(variant));
    auto t = reader.grid(variant);
    SlideGrid g;
    g.channels = t.channels;
    g.rows = t.height;
    g.cols = t.width;
    g.data = std::move(t.data);
    const auto tissue0 = reader.tissueFractions();
    const int rows0 = reader.meta().rows;
    const int cols0 = reader.meta().cols;
    g.tissue.assign(static_cast<std::size_t>(g.rows) * static_cast<std::size_t>(g.cols), 0.0f);
    for (int r = 0; r < rows0; ++r)
        for (int c = 0; c < cols0; ++c) {
            const auto [r2, c2] = dihedralMap(variant, r, c, rows0, cols0);
            g.tissue[static_cast<std::size_t>(r2) * static_cast<std::size_t>(g.cols) + static_cast<std::size_t>(c2)] =
                tissue0[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols0) + static_cast<std::size_t>(c)];
        }
    return g;
}

const SlideGrid& LatentGridFileSource::grid(std::size_t slide, int variant) {
    const auto key = std::make_pair(slide, variant);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
        it->second.lastUse = ++tick_;
        return it->second.grid;
    }
    SlideGrid g = readSlideGrid(LatentGridReader(files_.at(slide)), variant);
    const auto bytes = static_cast<std::int64_t>((g.data.size() + g.tissue.size()) * sizeof(float));
    // Evict least recently used entries (never the one being returned) to stay within the budget.
    while (!cache_.empty() && cachedBytes_ + bytes > cacheBytes_) {
        auto oldest = cache_.begin();
        for (auto i = cache_.begin(); i != cache_.end(); ++i)
            if (i->second.lastUse < oldest->second.lastUse)
                oldest = i;
        cachedBytes_ -= static_cast<std::int64_t>((oldest->second.grid.data.size() + oldest->second.grid.tissue.size()) *
                                                  sizeof(float));
        cache_.erase(oldest);
    }
    cachedBytes_ += bytes;
    auto& entry = cache_[key];
    entry.grid = std::move(g);
    entry.lastUse = ++tick_;
    return entry.grid;
}

// --- training -------------------------------------------------------------------------------------------

namespace {

struct RoundContext {
    SlideGridSource& source;
    const std::vector<double>& labels;
    const SlideTrainOptions& options;
    torch::Device device;
    int cropSize;
    std::map<std::pair<std::size_t, int>, std::unique_ptr<CropSampler>> samplers;

    const CropSampler& sampler(std::size_t slide, int variant) {
        auto& s = samplers[{slide, variant}];
        if (!s) {
            const SlideGrid& g = source.grid(slide, variant);
            s = std::make_unique<CropSampler>(g.tissue, g.cols, g.rows, options.tissueThreshold);
        }
        return *s;
    }
};

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

// --- resume state: per-epoch checkpoints of the running round, records of finished rounds ------------------

using ojson = nlohmann::ordered_json;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr const char* kCheckpointFile = "checkpoint.pt";
constexpr const char* kRoundFile = "round.json";
constexpr const char* kResumeHint = " (resume with the same parameters, or start afresh without resuming)";

std::string firstLine(std::string s) {
    const auto nl = s.find('\n');
    if (nl != std::string::npos)
        s.resize(nl);
    return s;
}

// The random state a round carries from one epoch to the next: torch's default generators (dropout; CPU,
// and the GPU's when training there) and the batch sampler's engine. A checkpoint stores all of it, so a
// resumed round draws exactly what the uninterrupted one would have, and a run with checkpoints draws
// exactly what runs did before checkpoints existed (the same models as before for the same seed).
std::vector<std::pair<std::string, at::Generator>> torchGenerators(torch::Device device) {
    std::vector<std::pair<std::string, at::Generator>> out;
    out.emplace_back("rng/cpu", at::globalContext().defaultGenerator(torch::Device(torch::kCPU)));
    if (device.is_cuda())
        out.emplace_back("rng/cuda", at::globalContext().defaultGenerator(device));
    return out;
}

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

/// Schedule state of a round after `epoch` completed epochs.
struct RoundState {
    int epoch = 0;
    double lr = 0.0;
    double bestMetric = -kInf;
    double bestLoss = kInf;
    int sinceBest = 0;
    bool stopped = false; ///< plateau at the minimum learning rate: no further epochs
    std::vector<SlideEpochRecord> history;
};

/// What the final aggregation needs of a finished round (its model is fold<r>/model.pt).
struct FinishedRound {
    std::vector<double> testPredictions; ///< in the order of the round's test slides
    double metric = kNaN;
    std::vector<SlideEpochRecord> history;
};

const char* const kPerSlideKeys[][2] = {
    {"slides", "id"}, {"labels", "label"}, {"slide_folds", "fold"}, {"slide_variants", "number of stored variants"}};

/// Everything that decides a run's results besides the device and thread count. A checkpoint or round
/// record is only resumed by a run with an identical identity.
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

/// Throws InvalidArgument naming `file` and the first parameter in which `stored` differs from `now`.
void checkIdentity(const std::filesystem::path& file, const ojson& stored, const ojson& now, SlideGridSource& source) {
    for (auto it = now.begin(); it != now.end(); ++it) {
        const std::string& key = it.key();
        const ojson& cur = it.value();
        const ojson old = stored.is_object() && stored.contains(key) ? stored.at(key) : ojson();
        if (old == cur)
            continue;
        std::string what;
        const char* element = nullptr;
        for (const auto& kv : kPerSlideKeys)
            if (key == kv[0])
                element = kv[1];
        if (element && old.is_array() && old.size() != cur.size()) {
            what = "the checkpoint has " + std::to_string(old.size()) + " slides, this run " + std::to_string(cur.size());
        } else if (element && old.is_array()) {
            std::size_t i = 0;
            while (i < cur.size() && old[i] == cur[i])
                ++i;
            what = std::string(element) + " of slide " + std::to_string(i + 1) + " (" + source.id(i) + ") is " +
                   old[i].dump() + " in the checkpoint, " + cur[i].dump() + " now";
        } else {
            what = key + " is " + (old.is_null() ? std::string("absent") : old.dump()) + " in the checkpoint, " +
                   cur.dump() + " now";
        }
        throw InvalidArgument(file.string() + ": cannot resume with different parameters: " + what + kResumeHint);
    }
}

void writeRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                          const std::string& bestState, const RoundState& st, const std::mt19937_64& rng,
                          torch::Device device, int round, const ojson& identity) {
    ojson j;
    j["format"] = "nic-slide-train-checkpoint";
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
    try {
        torch::serialize::OutputArchive ar;
        torch::serialize::OutputArchive model;
        net->save(model);
        ar.write("model", model);
        torch::serialize::OutputArchive optimizer;
        opt.save(optimizer);
        ar.write("optimizer", optimizer);
        auto best = torch::empty({static_cast<std::int64_t>(bestState.size())}, torch::kUInt8);
        std::memcpy(best.data_ptr<std::uint8_t>(), bestState.data(), bestState.size());
        ar.write("best_model", best);
        for (auto& [key, gen] : torchGenerators(device)) {
            std::lock_guard<std::mutex> lock(gen.mutex());
            ar.write(key, gen.get_state());
        }
        ar.write("state/json", c10::IValue(j.dump()));
        AtomicFile file(path);
        ar.save_to(file.tempPath().string());
        file.commit();
    } catch (const c10::Error& e) {
        throw IoError(path.string() + ": cannot write checkpoint: " + firstLine(e.what_without_backtrace()));
    }
}

/// Opens a checkpoint into `ar` (tensors on `device`), checks that it belongs to `round` of a run with
/// `identity`, and returns its state. IoError for unreadable or damaged files, InvalidArgument for another run's.
ojson openRoundCheckpoint(const std::filesystem::path& path, torch::serialize::InputArchive& ar, torch::Device device,
                          int round, const ojson& identity, SlideGridSource& source) {
    const std::string src = path.string();
    ojson j;
    try {
        ar.load_from(src, device);
        c10::IValue iv;
        if (!ar.try_read("state/json", iv) || !iv.isString())
            throw IoError(src + ": not a nic train checkpoint (no state/json record)");
        j = ojson::parse(iv.toStringRef());
        if (j.value("format", std::string()) != "nic-slide-train-checkpoint")
            throw IoError(src + ": not a nic train checkpoint (format is not nic-slide-train-checkpoint)");
        if (j.at("format_version").get<int>() != 1)
            throw IoError(src + ": unsupported checkpoint format version " + j.at("format_version").dump());
        if (j.at("round").get<int>() != round)
            throw IoError(src + ": checkpoint of round " + j.at("round").dump() + " where round " +
                          std::to_string(round) + " was expected");
        (void)j.at("identity");
    } catch (const c10::Error& e) {
        throw IoError(src + ": cannot read checkpoint: " + firstLine(e.what_without_backtrace()));
    } catch (const nlohmann::json::exception& e) {
        throw IoError(src + ": damaged checkpoint: " + e.what());
    }
    checkIdentity(path, j.at("identity"), identity, source);
    return j;
}

/// Restores a round's network, optimiser, best model and schedule from its checkpoint.
RoundState restoreRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                                  std::string& bestState, std::mt19937_64& rng, torch::Device device, int round,
                                  const ojson& identity, SlideGridSource& source, int epochs) {
    const std::string src = path.string();
    torch::serialize::InputArchive ar;
    const ojson j = openRoundCheckpoint(path, ar, device, round, identity, source);
    RoundState st;
    try {
        torch::serialize::InputArchive model;
        ar.read("model", model);
        net->load(model);
        torch::serialize::InputArchive optimizer;
        ar.read("optimizer", optimizer);
        opt.load(optimizer);
        torch::Tensor best;
        ar.read("best_model", best);
        best = best.to(torch::kCPU).contiguous();
        if (best.scalar_type() != torch::kUInt8 || best.dim() != 1)
            throw IoError(src + ": damaged checkpoint: best_model is not a byte array");
        bestState.assign(reinterpret_cast<const char*>(best.data_ptr<std::uint8_t>()),
                         static_cast<std::size_t>(best.numel()));
        for (auto& [key, gen] : torchGenerators(device)) {
            torch::Tensor state;
            if (!ar.try_read(key, state))
                throw IoError(src + ": checkpoint has no " + key + " record (made on another device?)");
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(state.to(torch::kCPU));
        }
    } catch (const c10::Error& e) {
        throw IoError(src + ": cannot read checkpoint: " + firstLine(e.what_without_backtrace()));
    }
    try {
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
    } catch (const std::exception& e) {
        throw IoError(src + ": damaged checkpoint: " + e.what());
    }
    if (st.epoch < 1 || st.epoch > epochs || st.history.size() != static_cast<std::size_t>(st.epoch) || !(st.lr > 0))
        throw IoError(src + ": damaged checkpoint: inconsistent schedule state (epoch " + std::to_string(st.epoch) + ")");
    for (auto& group : opt.param_groups())
        group.options().set_lr(st.lr);
    return st;
}

void writeRoundRecord(const std::filesystem::path& path, int round, const ojson& identity,
                      const std::vector<std::string>& testIds, const std::vector<double>& testPredictions,
                      double metric, const std::vector<SlideEpochRecord>& history) {
    ojson j;
    j["format"] = "nic-slide-train-round";
    j["format_version"] = 1;
    j["round"] = round;
    j["test_metric"] = exactJson(metric);
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
            throw IoError(src + ": not a nic train round record (version 1)");
        if (j.at("round").get<int>() != round)
            throw IoError(src + ": record of round " + j.at("round").dump() + " where round " +
                          std::to_string(round) + " was expected");
        (void)j.at("identity");
    } catch (const nlohmann::json::exception& e) {
        throw IoError(src + ": damaged round record: " + e.what());
    }
    checkIdentity(path, j.at("identity"), identity, source);
    try {
        f.metric = exactFromJson(j.at("test_metric"));
        const auto& test = j.at("test");
        if (test.size() != testSlides.size())
            throw IoError(src + ": damaged round record: " + std::to_string(test.size()) + " test predictions for " +
                          std::to_string(testSlides.size()) + " test slides");
        for (std::size_t i = 0; i < testSlides.size(); ++i) {
            if (test[i].at("slide").get<std::string>() != source.id(testSlides[i]))
                throw IoError(src + ": damaged round record: test slide " + std::to_string(i + 1) + " is " +
                              test[i].at("slide").dump() + ", expected " + source.id(testSlides[i]));
            f.testPredictions.push_back(exactFromJson(test[i].at("prediction")));
        }
        for (const auto& e : j.at("curves"))
            f.history.push_back(recordFromJson(e, round));
    } catch (const IoError&) {
        throw;
    } catch (const std::exception& e) {
        throw IoError(src + ": damaged round record: " + e.what());
    }
    return f;
}

/// Removes temporaries (<final name>.tmp-XXXXXXXX) that a killed run left in `dir`: never visible under a
/// final name, but a checkpoint's are megabytes.
void removeStaleTemporaries(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        return;
    static const char* const finals[] = {"model.pt",     kCheckpointFile, kRoundFile, "predictions.csv",
                                         "metrics.json", "curves.csv",    "folds.csv"};
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        for (const char* f : finals)
            if (name.rfind(std::string(f) + ".tmp-", 0) == 0)
                std::filesystem::remove(entry.path(), ec);
    }
}

} // namespace

CrossValidationResult crossValidate(SlideGridSource& source, const std::vector<double>& labels,
                                    const std::vector<int>& foldColumn, const SlideTrainOptions& options,
                                    const std::filesystem::path& outDir, JobContext& job) {
    const std::size_t n = source.size();
    if (labels.size() != n)
        throw InvalidArgument(std::to_string(labels.size()) + " labels for " + std::to_string(n) + " slides");
    if (!foldColumn.empty() && foldColumn.size() != n)
        throw InvalidArgument(std::to_string(foldColumn.size()) + " fold values for " + std::to_string(n) + " slides");
    if (options.epochs < 1 || options.batchSize < 2 || options.cropSize < 1 || options.testCrops < 1 ||
        options.patience < 1 || !(options.learningRate > 0) || !(options.minLearningRate > 0))
        throw InvalidArgument("training: epochs and test crops must be ≥ 1, batch size ≥ 2, crop size ≥ 1, "
                              "patience ≥ 1 and learning rates > 0");
    const bool classify = options.task == SlideTask::Classification;
    std::vector<int> strata;
    if (classify) {
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
    } else {
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(labels[i]))
                throw InvalidArgument("regression label of slide " + source.id(i) + " is not a finite number");
    }
    const std::vector<int> foldOf =
        foldColumn.empty() ? assignFolds(n, options.folds, options.seed, strata) : foldsFromColumn(foldColumn);
    const int k = 1 + *std::max_element(foldOf.begin(), foldOf.end());
    const auto rounds = rotateFolds(foldOf, k);

    int R = options.cropSize;
    if (options.shrinkCropToGrids) {
        int largest = 1;
        for (std::size_t i = 0; i < n; ++i)
            largest = std::max({largest, source.shape(i).first, source.shape(i).second});
        R = std::min(R, (largest + 15) / 16 * 16);
    }
    const torch::Device device(configureCompute(ComputeOptions{options.device, options.threads}));
    std::filesystem::create_directories(outDir);

    CrossValidationResult result;
    result.cropSize = R;
    SlideCnnConfig config = options.network;
    config.inputChannels = source.channels();
    job.log("cross-validation: " + std::to_string(n) + " slides, " + std::to_string(k) + " folds, crops " +
            std::to_string(R) + "x" + std::to_string(R) + "x" + std::to_string(config.inputChannels) + ", device " +
            device.str());
    const ojson identity = runIdentity(source, labels, foldOf, k, options, config, R);
    const auto foldDir = [&](int r) { return outDir / ("fold" + std::to_string(r)); };
    const auto roundName = [&](int r) { return "round " + std::to_string(r + 1) + "/" + std::to_string(k); };

    // What an earlier run left: every finished round and checkpoint is checked against this run's parameters
    // before anything is trained, so a mismatch is refused at once. Without resume it is removed.
    if (options.onlyRound >= static_cast<int>(rounds.size()))
        throw InvalidArgument("round " + std::to_string(options.onlyRound) + " does not exist: the run has " +
                              std::to_string(rounds.size()) + " rounds (0-" + std::to_string(rounds.size() - 1) + ")");
    // With onlyRound, other tasks may be writing the other rounds' and the run folder's files right now.
    const auto mine = [&](int r) { return options.onlyRound < 0 || options.onlyRound == r; };
    if (options.onlyRound < 0)
        removeStaleTemporaries(outDir);
    std::vector<std::optional<FinishedRound>> finished(rounds.size());
    for (const auto& round : rounds) {
        const int r = round.round;
        const auto dir = foldDir(r);
        if (!mine(r)) {
            if (std::filesystem::exists(dir / kRoundFile) && std::filesystem::exists(dir / "model.pt"))
                finished[static_cast<std::size_t>(r)] = readRoundRecord(dir / kRoundFile, r, identity, source, round.test);
            continue;
        }
        removeStaleTemporaries(dir);
        std::error_code ec;
        if (!options.resume) {
            for (const char* name : {kRoundFile, kCheckpointFile})
                if (std::filesystem::exists(dir / name)) {
                    job.log("note: starting afresh; removing " + (dir / name).string() + " of an earlier run");
                    std::filesystem::remove(dir / name, ec);
                }
            continue;
        }
        if (std::filesystem::exists(dir / kRoundFile)) {
            if (std::filesystem::exists(dir / "model.pt")) {
                finished[static_cast<std::size_t>(r)] = readRoundRecord(dir / kRoundFile, r, identity, source, round.test);
                readSlideModelMeta(dir / "model.pt"); // a damaged model is an error, not a finished round
                std::filesystem::remove(dir / kCheckpointFile, ec);
                continue;
            }
            job.log("note: " + (dir / "model.pt").string() + " is missing; " + roundName(r) + " is trained again");
            std::filesystem::remove(dir / kRoundFile, ec);
        }
        if (std::filesystem::exists(dir / kCheckpointFile)) {
            torch::serialize::InputArchive ar;
            openRoundCheckpoint(dir / kCheckpointFile, ar, device, r, identity, source);
        }
    }

    // folds.csv: which partition every slide is in.
    {
        std::string csv = "slide,fold\n";
        for (std::size_t i = 0; i < n; ++i)
            csv += csvField(source.id(i)) + "," + std::to_string(foldOf[i]) + "\n";
        writeFileAtomically(outDir / "folds.csv", csv);
    }

    const auto writeCurves = [&](bool wholeRun = false) {
        if (options.onlyRound >= 0 && !wholeRun)
            return; // the run's curves are written by the run that has every round
        std::string csv = "round,epoch,lr,train_loss,val_loss,val_metric,best,seconds\n";
        for (const auto& e : result.curves)
            csv += std::to_string(e.round) + "," + std::to_string(e.epoch) + "," + formatDouble(e.learningRate) + "," +
                   formatDouble(e.trainLoss) + "," + formatDouble(e.validationLoss) + "," +
                   formatDouble(e.validationMetric) + "," + (e.best ? "1" : "0") + "," + formatDouble(e.seconds) + "\n";
        writeFileAtomically(outDir / "curves.csv", csv);
    };

    RoundContext ctx{source, labels, options, device, R, {}};
    const auto plane = static_cast<std::size_t>(config.inputChannels) * static_cast<std::size_t>(R) *
                       static_cast<std::size_t>(R);
    std::int64_t totalSteps = 0;
    std::vector<int> stepsOf;
    for (const auto& round : rounds) {
        // Auto: each training slide drawn about 8 times per epoch, and at least 20 steps, so that BN's
        // running statistics (momentum 0.1) have settled before each validation.
        const auto batch = static_cast<std::size_t>(options.batchSize);
        const int steps = options.stepsPerEpoch > 0
                              ? options.stepsPerEpoch
                              : std::max(20, static_cast<int>((8 * round.train.size() + batch - 1) / batch));
        stepsOf.push_back(steps);
        totalSteps += std::int64_t{steps} * options.epochs;
    }
    std::int64_t stepsDone = 0;
    std::vector<double> roundPred(n, kNaN);

    bool allRounds = true;
    for (const auto& round : rounds) {
        const int r = round.round;
        const int steps = stepsOf[static_cast<std::size_t>(r)];
        const auto dir = foldDir(r);
        if (!mine(r) && !finished[static_cast<std::size_t>(r)]) {
            allRounds = false;
            stepsDone += std::int64_t{steps} * options.epochs;
            continue;
        }
        std::filesystem::create_directories(dir);

        if (const auto& done = finished[static_cast<std::size_t>(r)]) {
            for (std::size_t j = 0; j < round.test.size(); ++j)
                roundPred[round.test[j]] = done->testPredictions[j];
            result.roundMetrics.push_back(done->metric);
            for (const auto& rec : done->history) {
                result.curves.push_back(rec);
                if (options.onEpoch)
                    options.onEpoch(rec);
            }
            stepsDone += std::int64_t{steps} * options.epochs;
            job.log(roundName(r) + ": finished by an earlier run; reusing " + (dir / "model.pt").string());
            job.progress(stepsDone, totalSteps, roundName(r) + " (earlier run)");
            writeCurves();
            continue;
        }

        torch::manual_seed(options.seed * 7919 + static_cast<std::uint64_t>(r));
        std::mt19937_64 rng(options.seed * 104729 + static_cast<std::uint64_t>(r) * 31 + 1);

        SlideModelMeta meta;
        meta.config = config;
        meta.task = options.task;
        meta.cropSize = R;
        meta.tissueThreshold = options.tissueThreshold;
        meta.testCrops = options.testCrops;
        meta.encoderName = source.encoderName();
        meta.encoderHash = source.encoderHash();
        meta.round = r;
        meta.seed = options.seed;
        for (auto i : round.train)
            meta.trainSlides.push_back(source.id(i));
        for (auto i : round.validation)
            meta.validationSlides.push_back(source.id(i));
        if (!classify) {
            double mean = 0.0;
            for (auto i : round.train)
                mean += labels[i];
            mean /= static_cast<double>(round.train.size());
            double var = 0.0;
            for (auto i : round.train)
                var += (labels[i] - mean) * (labels[i] - mean);
            var /= static_cast<double>(round.train.size());
            meta.labelMean = mean;
            meta.labelScale = var > 0.0 ? std::sqrt(var) : 1.0;
        }

        std::vector<std::size_t> pos;
        std::vector<std::size_t> neg;
        for (auto i : round.train)
            (labels[i] > 0.5 ? pos : neg).push_back(i);
        const bool balance = classify && options.balanceClasses && !pos.empty() && !neg.empty();

        SlideCnn net(config);
        net->to(device);
        torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(options.learningRate));
        RoundState st;
        st.lr = options.learningRate;
        std::string bestState = serialise(net);
        const auto checkpoint = dir / kCheckpointFile;
        if (options.resume && std::filesystem::exists(checkpoint)) {
            st = restoreRoundCheckpoint(checkpoint, net, opt, bestState, rng, device, r, identity, source,
                                        options.epochs);
            for (const auto& rec : st.history) {
                result.curves.push_back(rec);
                if (options.onEpoch)
                    options.onEpoch(rec);
            }
            stepsDone += std::int64_t{steps} * (st.stopped ? options.epochs : st.epoch);
            job.log(roundName(r) + ": resuming from " + checkpoint.string() + " after epoch " + std::to_string(st.epoch));
        }
        std::vector<float> batch(plane * static_cast<std::size_t>(options.batchSize));
        std::vector<float> target(static_cast<std::size_t>(options.batchSize));

        const auto predictSet = [&](const std::vector<std::size_t>& set) {
            std::vector<double> p;
            for (auto i : set) {
                const auto crops = inferenceCrops(source, i, R, options.testCrops, options.tissueThreshold);
                p.push_back(averagePrediction(net, meta, crops, device));
            }
            return p;
        };

        for (int epoch = st.epoch + 1; !st.stopped && epoch <= options.epochs; ++epoch) {
            const auto t0 = std::chrono::steady_clock::now();
            net->train();
            double lossSum = 0.0;
            for (int s = 0; s < steps; ++s) {
                job.throwIfCancelled();
                for (int b = 0; b < options.batchSize; ++b) {
                    std::size_t slide = 0;
                    if (balance) {
                        const auto& cls = uniformUnit(rng) < 0.5 ? pos : neg;
                        slide = cls[static_cast<std::size_t>(uniformIndex(rng, cls.size()))];
                    } else {
                        slide = round.train[static_cast<std::size_t>(uniformIndex(rng, round.train.size()))];
                    }
                    const int variant = static_cast<int>(
                        uniformIndex(rng, static_cast<std::uint64_t>(source.variantCount(slide))));
                    const GridCell centre = ctx.sampler(slide, variant).sample(rng);
                    const SlideGrid& g = source.grid(slide, variant);
                    extractCrop(g.data.data(), g.channels, g.rows, g.cols, centre, R,
                                batch.data() + static_cast<std::size_t>(b) * plane);
                    target[static_cast<std::size_t>(b)] =
                        classify ? static_cast<float>(labels[slide])
                                 : static_cast<float>((labels[slide] - meta.labelMean) / meta.labelScale);
                }
                const auto x = torch::from_blob(batch.data(), {options.batchSize, config.inputChannels, R, R}).to(device);
                const auto y = torch::from_blob(target.data(), {options.batchSize}).to(device);
                const auto out = net->forward(x);
                auto loss = classify ? torch::binary_cross_entropy_with_logits(out, y) : torch::mse_loss(out, y);
                lossSum += loss.item<double>();
                loss = loss + net->l2Penalty();
                opt.zero_grad();
                loss.backward();
                opt.step();
                ++stepsDone;
                job.progress(stepsDone, totalSteps,
                             roundName(r) + ", epoch " + std::to_string(epoch) + "/" + std::to_string(options.epochs));
            }
            // Validation with test-time augmentation.
            const auto valPred = predictSet(round.validation);
            std::vector<double> valTruth;
            double valLoss = 0.0;
            for (std::size_t j = 0; j < round.validation.size(); ++j) {
                const double t = labels[round.validation[j]];
                valTruth.push_back(t);
                if (classify) {
                    const double p = std::clamp(valPred[j], 1e-7, 1.0 - 1e-7);
                    valLoss -= t * std::log(p) + (1.0 - t) * std::log(1.0 - p);
                } else {
                    const double d = (valPred[j] - t) / meta.labelScale;
                    valLoss += d * d;
                }
            }
            valLoss /= static_cast<double>(round.validation.size());
            const double metric = metricOf(options.task, valPred, valTruth);
            const double m = std::isnan(metric) ? -kInf : metric;
            SlideEpochRecord rec;
            rec.round = r;
            rec.epoch = epoch;
            rec.learningRate = st.lr;
            rec.trainLoss = lossSum / steps;
            rec.validationLoss = valLoss;
            rec.validationMetric = metric;
            if (m > st.bestMetric + 1e-12 || (m >= st.bestMetric - 1e-12 && valLoss < st.bestLoss)) {
                st.bestMetric = std::max(st.bestMetric, m);
                st.bestLoss = valLoss;
                bestState = serialise(net);
                rec.best = true;
                st.sinceBest = 0;
            } else {
                ++st.sinceBest;
            }
            rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::string plateau;
            if (st.sinceBest >= options.patience) {
                st.sinceBest = 0;
                if (st.lr / 10.0 < options.minLearningRate * (1.0 - 1e-9)) {
                    plateau = roundName(r) + ": validation plateau at the minimum learning rate; stopping";
                    st.stopped = true;
                    stepsDone += std::int64_t{steps} * (options.epochs - epoch);
                } else {
                    st.lr /= 10.0;
                    for (auto& group : opt.param_groups())
                        group.options().set_lr(st.lr);
                }
            }
            st.epoch = epoch;
            st.history.push_back(rec);
            writeRoundCheckpoint(checkpoint, net, opt, bestState, st, rng, device, r, identity);
            result.curves.push_back(rec);
            char line[256];
            std::snprintf(line, sizeof line,
                          "round %d/%d epoch %d: lr %.0e, train loss %.4f, val loss %.4f, val %s %s%s (%.1f s)", r + 1,
                          k, epoch, rec.learningRate, rec.trainLoss, valLoss, classify ? "AUC" : "Spearman",
                          std::isnan(metric) ? "n/a" : formatDouble(metric).c_str(), rec.best ? " *" : "",
                          rec.seconds);
            job.log(line);
            if (!plateau.empty())
                job.log(plateau);
            if (options.onEpoch)
                options.onEpoch(rec);
        }
        // The round's outputs, each published atomically: the model, then the round record that marks the
        // round finished; only then does its checkpoint go.
        deserialise(net, bestState);
        saveSlideModel(net, meta, dir / "model.pt");
        const auto testPred = predictSet(round.test);
        std::vector<double> testTruth;
        std::vector<std::string> testIds;
        for (std::size_t j = 0; j < round.test.size(); ++j) {
            roundPred[round.test[j]] = testPred[j];
            testTruth.push_back(labels[round.test[j]]);
            testIds.push_back(source.id(round.test[j]));
        }
        result.roundMetrics.push_back(metricOf(options.task, testPred, testTruth));
        writeRoundRecord(dir / kRoundFile, r, identity, testIds, testPred, result.roundMetrics.back(), st.history);
        std::error_code ec;
        std::filesystem::remove(checkpoint, ec);
        writeCurves();
    }

    if (!allRounds) {
        job.log(roundName(options.onlyRound) + " finished; the run's predictions and metrics wait for the other rounds");
        job.progress(totalSteps, totalSteps, "done");
        return result;
    }
    if (options.onlyRound >= 0)
        writeCurves(true); // every round is finished: the run's files, as a whole run writes them

    // The "All" set.
    std::vector<double> pred;
    std::vector<double> truth;
    std::string csv = "slide,label,prediction,round\n";
    for (std::size_t i = 0; i < n; ++i) {
        SlidePrediction p{source.id(i), labels[i], roundPred[i], foldOf[i]};
        csv += csvField(p.id) + "," + formatDouble(p.label) + "," + formatDouble(p.prediction) + "," +
               std::to_string(p.round) + "\n";
        result.predictions.push_back(p);
        pred.push_back(p.prediction);
        truth.push_back(p.label);
    }
    writeFileAtomically(outDir / "predictions.csv", csv);

    nlohmann::ordered_json j;
    j["task"] = toString(options.task);
    j["slides"] = n;
    j["folds"] = k;
    j["crop_size"] = R;
    j["encoder_name"] = source.encoderName();
    j["encoder_hash"] = source.encoderHash();
    j["seed"] = options.seed;
    auto perRound = nlohmann::ordered_json::array();
    for (double v : result.roundMetrics)
        perRound.push_back(numberOrNull(v));
    if (classify) {
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
    result.metricsJson = j.dump(2) + "\n";
    writeFileAtomically(outDir / "metrics.json", result.metricsJson);
    job.progress(totalSteps, totalSteps, "done");
    return result;
}

std::vector<double> predictSlides(const std::filesystem::path& modelPath, SlideGridSource& source,
                                  const std::vector<std::size_t>& slides, const std::string& device, JobContext& job) {
    auto model = loadSlideModel(modelPath, device);
    if (model.meta.config.inputChannels != source.channels())
        throw InvalidArgument(modelPath.string() + " expects grids with " +
                              std::to_string(model.meta.config.inputChannels) + " channels, the slides have " +
                              std::to_string(source.channels()));
    std::vector<double> out;
    for (std::size_t j = 0; j < slides.size(); ++j) {
        job.throwIfCancelled();
        const auto crops = inferenceCrops(source, slides[j], model.meta.cropSize, model.meta.testCrops,
                                          model.meta.tissueThreshold);
        out.push_back(averagePrediction(model.net, model.meta, crops, model.device));
        job.progress(static_cast<std::int64_t>(j + 1), static_cast<std::int64_t>(slides.size()), "predicting");
    }
    return out;
}

} // namespace nic

// Slide-model metadata (the description stored in every fold<r>/model.pt) and the grid sources cross-validation
// reads: what core/slidelearning/nn/slidetrainer.h declares besides the training itself.
#include "core/slidelearning/nn/slidetrainer.h"

#include "core/base/error.h"
#include "core/compression/latentgrid.h"

#include <torch/serialize.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <sstream>

namespace nic {

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
    switch (pooling) {
    case GlobalPooling::Max:
        return "max";
    case GlobalPooling::Average:
        return "avg";
    case GlobalPooling::Flatten:
        return "flatten";
    }
    return "?";
}

GlobalPooling parseGlobalPooling(const std::string& text) {
    if (text == "max")
        return GlobalPooling::Max;
    if (text == "avg" || text == "average" || text == "mean")
        return GlobalPooling::Average;
    if (text == "flatten")
        return GlobalPooling::Flatten;
    throw InvalidArgument("unknown head '" + text + "' (expected max, avg or flatten)");
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
    if (config.pooling == GlobalPooling::Flatten)
        j["architecture"]["input_size"] = config.inputSize;
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
            throw FormatError("not a NIC slide model (format is not nic-slide-model)");
        if (j.at("format_version").get<int>() != 1)
            throw FormatError("unsupported slide model format version " + j.at("format_version").dump());
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
        // Models from before the flatten head have no input_size (their pooling heads take any size).
        m.config.inputSize = a.value("input_size", 0);
        if (m.config.pooling == GlobalPooling::Flatten && m.config.inputSize != m.cropSize)
            throw FormatError("the flatten head is built for " + std::to_string(m.config.inputSize) + "x" +
                              std::to_string(m.config.inputSize) + " crops but the model's crop size is " +
                              std::to_string(m.cropSize));
        m.encoderName = j.value("encoder_name", std::string());
        m.encoderHash = j.value("encoder_hash", std::string());
        m.round = j.value("round", -1);
        m.trainSlides = j.value("train_slides", std::vector<std::string>{});
        m.validationSlides = j.value("validation_slides", std::vector<std::string>{});
        m.seed = j.value("seed", std::uint64_t{0});
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(std::string("malformed slide model description: ") + e.what());
    }
    return m;
}

SlideModelMeta readSlideModelMeta(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw IoError(path.string() + ": no such slide model file");
    torch::serialize::InputArchive ar;
    try {
        ar.load_from(path.string());
    } catch (const c10::Error& e) {
        throw FormatError(path.string() + ": cannot read slide model: " + e.what_without_backtrace());
    }
    c10::IValue iv;
    if (!ar.try_read("meta/json", iv) || !iv.isString())
        throw FormatError(path.string() + ": not a NIC slide model (no meta/json record)");
    try {
        return SlideModelMeta::fromJson(iv.toStringRef());
    } catch (const Error& e) { // InvalidArgument from parseSlideTask/parseGlobalPooling too: a bad field
        throw FormatError(path.string() + ": " + e.what());
    }
}

// --- grid sources ---------------------------------------------------------------------------------------

bool holdsItsValues(const SlideGrid& g) {
    return g.channels >= 0 && g.rows >= 0 && g.cols >= 0 &&
           g.data.size() ==
               static_cast<std::size_t>(g.channels) * static_cast<std::size_t>(g.rows) * static_cast<std::size_t>(g.cols);
}

void checkGridValues(const SlideGrid& g, const std::string& what, bool nonEmpty) {
    if (!holdsItsValues(g) || (nonEmpty && (g.rows < 1 || g.cols < 1)))
        throw InvalidArgument(what + ": a grid of " + std::to_string(g.data.size()) + " values is not " +
                              std::to_string(g.channels) + " x " + std::to_string(g.rows) + " x " + std::to_string(g.cols));
}

InMemoryGridSource::InMemoryGridSource(std::vector<std::string> ids, std::vector<std::vector<SlideGrid>> variants)
    : ids_(std::move(ids)), variants_(std::move(variants)) {
    if (ids_.size() != variants_.size())
        throw InvalidArgument("grid source: " + std::to_string(ids_.size()) + " ids for " +
                              std::to_string(variants_.size()) + " slides");
    for (std::size_t i = 0; i < variants_.size(); ++i) {
        if (variants_[i].empty())
            throw InvalidArgument("grid source: slide " + ids_[i] + " has no grid");
        for (const auto& g : variants_[i])
            if (g.channels != variants_[0][0].channels || !holdsItsValues(g) ||
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
            throw FormatError(files_[i].string() + " was compressed with " + meta.encoderName + " (C = " +
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

SlideGrid readSlideGrid(const LatentGridReader& reader, int variant, bool channelsLast) {
    if (variant < 0 || variant >= reader.variantCount())
        throw InvalidArgument(reader.path().string() + ": no dihedral variant " + std::to_string(variant));
    SlideGrid g;
    if (channelsLast) {
        const auto [rows, cols] = dihedralShape(variant, reader.meta().rows, reader.meta().cols);
        g.channels = reader.meta().codeSize;
        g.rows = rows;
        g.cols = cols;
        g.data = reader.gridHwc(variant);
        g.channelsLast = true;
    } else {
        auto t = reader.grid(variant);
        g.channels = t.channels;
        g.rows = t.height;
        g.cols = t.width;
        g.data = std::move(t.data);
    }
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
    SlideGrid g = readSlideGrid(LatentGridReader(files_.at(slide)), variant, true);
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

} // namespace nic

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
#include <limits>
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

    // folds.csv: which partition every slide is in.
    {
        std::string csv = "slide,fold\n";
        for (std::size_t i = 0; i < n; ++i)
            csv += csvField(source.id(i)) + "," + std::to_string(foldOf[i]) + "\n";
        writeFileAtomically(outDir / "folds.csv", csv);
    }

    const auto writeCurves = [&] {
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

    for (const auto& round : rounds) {
        const int r = round.round;
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
        double lr = options.learningRate;
        double bestMetric = -std::numeric_limits<double>::infinity();
        double bestLoss = std::numeric_limits<double>::infinity();
        std::string bestState = serialise(net);
        int sinceBest = 0;
        const int steps = stepsOf[static_cast<std::size_t>(r)];
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

        for (int epoch = 1; epoch <= options.epochs; ++epoch) {
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
                             "round " + std::to_string(r + 1) + "/" + std::to_string(k) + ", epoch " +
                                 std::to_string(epoch) + "/" + std::to_string(options.epochs));
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
            const double m = std::isnan(metric) ? -std::numeric_limits<double>::infinity() : metric;
            SlideEpochRecord rec;
            rec.round = r;
            rec.epoch = epoch;
            rec.learningRate = lr;
            rec.trainLoss = lossSum / steps;
            rec.validationLoss = valLoss;
            rec.validationMetric = metric;
            if (m > bestMetric + 1e-12 || (m >= bestMetric - 1e-12 && valLoss < bestLoss)) {
                bestMetric = std::max(bestMetric, m);
                bestLoss = valLoss;
                bestState = serialise(net);
                rec.best = true;
                sinceBest = 0;
            } else {
                ++sinceBest;
            }
            rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            result.curves.push_back(rec);
            char line[256];
            std::snprintf(line, sizeof line,
                          "round %d/%d epoch %d: lr %.0e, train loss %.4f, val loss %.4f, val %s %s%s (%.1f s)", r + 1,
                          k, epoch, lr, rec.trainLoss, valLoss, classify ? "AUC" : "Spearman",
                          std::isnan(metric) ? "n/a" : formatDouble(metric).c_str(), rec.best ? " *" : "",
                          rec.seconds);
            job.log(line);
            if (options.onEpoch)
                options.onEpoch(rec);
            if (sinceBest >= options.patience) {
                sinceBest = 0;
                if (lr / 10.0 < options.minLearningRate * (1.0 - 1e-9)) {
                    job.log("round " + std::to_string(r + 1) + ": validation plateau at the minimum learning rate; stopping");
                    stepsDone += std::int64_t{steps} * (options.epochs - epoch);
                    break;
                }
                lr /= 10.0;
                for (auto& group : opt.param_groups())
                    group.options().set_lr(lr);
            }
        }
        deserialise(net, bestState);
        const auto dir = outDir / ("fold" + std::to_string(r));
        std::filesystem::create_directories(dir);
        saveSlideModel(net, meta, dir / "model.pt");
        const auto testPred = predictSet(round.test);
        std::vector<double> testTruth;
        for (std::size_t j = 0; j < round.test.size(); ++j) {
            roundPred[round.test[j]] = testPred[j];
            testTruth.push_back(labels[round.test[j]]);
        }
        result.roundMetrics.push_back(metricOf(options.task, testPred, testTruth));
        writeCurves();
    }

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

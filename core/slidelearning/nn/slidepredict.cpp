// Prediction with saved slide models (slidetrainer.h): one model's test-time-augmented predictions of a
// cohort's slides, and the paper's ensemble of a run's fold models (nic predict), with the checks that
// models and grids come from one encoder.
#include "core/slidelearning/nn/slidetrainer.h"

#include "core/base/csv.h"
#include "core/base/error.h"
#include "core/compression/latentgrid.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "core/slidelearning/runfolder.h"

#include <algorithm>
#include <string>
#include <vector>

namespace nic {

namespace {

/// `slides` of `source` predicted by a loaded model; progress counts `done` + this model's slides of `total`.
std::vector<double> predictWith(LoadedSlideModel& model, const std::filesystem::path& modelPath,
                                SlideGridSource& source, const std::vector<std::size_t>& slides, JobContext& job,
                                std::int64_t done, std::int64_t total) {
    if (model.meta.config.inputChannels != source.channels())
        throw FormatError(modelPath.string() + " expects grids with " +
                          std::to_string(model.meta.config.inputChannels) + " channels, the slides have " +
                          std::to_string(source.channels()));
    std::vector<double> out;
    for (std::size_t j = 0; j < slides.size(); ++j) {
        job.throwIfCancelled();
        // A slide's chunks of crops (up to 256 MiB) and their activations are the same sizes from chunk to chunk
        // but the last: kept for reuse over the slide, not mapped and page-faulted afresh for every chunk. One
        // slide at a time, so that the cache does not collect the last chunks' sizes over a cohort.
        const TensorCacheScope keepChunkBuffers;
        const InferencePlan plan = inferencePlan(source, slides[j], model.meta.cropSize, model.meta.testCrops,
                                                 model.meta.tissueThreshold);
        out.push_back(predictSlide(model.net, model.meta, source, slides[j], plan, model.device));
        job.progress(done + static_cast<std::int64_t>(j + 1), total, "predicting");
    }
    return out;
}

std::string encoderLabel(const std::string& name, const std::string& hash, int channels) {
    return "'" + (name.empty() ? std::string("?") : name) + "' (hash " +
           (hash.empty() ? std::string("unknown") : hash) + ", C = " + std::to_string(channels) + ")";
}

} // namespace

std::vector<double> predictSlides(const std::filesystem::path& modelPath, SlideGridSource& source,
                                  const std::vector<std::size_t>& slides, const std::string& device, JobContext& job) {
    auto model = loadSlideModel(modelPath, device);
    return predictWith(model, modelPath, source, slides, job, 0, static_cast<std::int64_t>(slides.size()));
}

std::vector<std::filesystem::path> runModelFiles(const std::filesystem::path& run) {
    const auto folds = readRunFolds(run);
    int rounds = 0;
    for (const auto& [id, fold] : folds)
        rounds = std::max(rounds, fold + 1);
    if (rounds == 0)
        throw IoError((run / "folds.csv").string() + ": lists no slides");
    std::vector<std::filesystem::path> models;
    for (int r = 0; r < rounds; ++r) {
        models.push_back(runModelPath(run, r));
        if (!std::filesystem::is_regular_file(models.back()))
            throw IoError(models.back().string() + ": no model for round " + std::to_string(r) + " of " +
                          std::to_string(rounds) + " (is the run finished?)");
    }
    return models;
}

EnsemblePrediction predictEnsemble(const std::vector<std::filesystem::path>& models, SlideGridSource& source,
                                   const std::vector<std::size_t>& slides, const std::string& device, JobContext& job) {
    if (models.empty())
        throw InvalidArgument("predict: no slide models given");
    std::vector<SlideModelMeta> metas;
    for (const auto& m : models) {
        metas.push_back(readSlideModelMeta(m));
        const SlideModelMeta& meta = metas.back();
        const SlideModelMeta& first = metas.front();
        if (meta.task != first.task || meta.config.inputChannels != first.config.inputChannels ||
            meta.encoderHash != first.encoderHash)
            throw FormatError(m.string() + ": a " + toString(meta.task) + " model for encoder " +
                              encoderLabel(meta.encoderName, meta.encoderHash, meta.config.inputChannels) + ", but " +
                              models.front().string() + " is a " + toString(first.task) + " model for " +
                              encoderLabel(first.encoderName, first.encoderHash, first.config.inputChannels) +
                              "; an ensemble needs models of one task and encoder");
        if (meta.config.inputChannels != source.channels() ||
            (!meta.encoderHash.empty() && !source.encoderHash().empty() && meta.encoderHash != source.encoderHash()))
            throw FormatError(m.string() + " was trained on grids of encoder " +
                              encoderLabel(meta.encoderName, meta.encoderHash, meta.config.inputChannels) +
                              ", the slides were compressed with " +
                              encoderLabel(source.encoderName(), source.encoderHash(), source.channels()));
    }
    EnsemblePrediction out;
    for (auto i : slides)
        out.slides.push_back(source.id(i));
    out.mean.assign(slides.size(), 0.0);
    const auto total = static_cast<std::int64_t>(models.size() * slides.size());
    for (std::size_t m = 0; m < models.size(); ++m) {
        auto model = loadSlideModel(models[m], device);
        out.models.push_back(
            predictWith(model, models[m], source, slides, job, static_cast<std::int64_t>(m * slides.size()), total));
    }
    for (std::size_t j = 0; j < slides.size(); ++j) {
        double sum = 0.0;
        for (const auto& p : out.models)
            sum += p[j];
        out.mean[j] = sum / static_cast<double>(models.size());
    }
    return out;
}

EnsemblePrediction predictEnsembleFiles(const std::vector<std::filesystem::path>& models,
                                        const std::vector<std::filesystem::path>& grids, const std::string& device,
                                        JobContext& job, std::int64_t cacheBytes) {
    if (models.empty())
        throw InvalidArgument("predict: no slide models given");
    if (grids.empty())
        throw InvalidArgument("predict: no compressed slides given");
    const SlideModelMeta model = readSlideModelMeta(models.front());
    const int c = model.config.inputChannels;
    for (const auto& g : grids) {
        const LatentGridMeta meta = readLatentGridMeta(g);
        if (meta.codeSize != c ||
            (!model.encoderHash.empty() && !meta.encoderHash.empty() && meta.encoderHash != model.encoderHash))
            throw FormatError(g.string() + ": compressed with encoder " +
                              encoderLabel(meta.encoderName, meta.encoderHash, meta.codeSize) + " but " +
                              models.front().string() + " was trained on " +
                              encoderLabel(model.encoderName, model.encoderHash, c) +
                              "; compress the slide with the models' encoder");
    }
    LatentGridFileSource source(grids, cacheBytes);
    std::vector<std::size_t> all(grids.size());
    for (std::size_t i = 0; i < all.size(); ++i)
        all[i] = i;
    return predictEnsemble(models, source, all, device, job);
}

std::string ensembleCsv(const EnsemblePrediction& p, const std::vector<std::string>& modelNames) {
    if (modelNames.size() != p.models.size())
        throw InvalidArgument("ensembleCsv: " + std::to_string(modelNames.size()) + " names for " +
                              std::to_string(p.models.size()) + " models");
    std::vector<std::string> header{"slide", "prediction"};
    header.insert(header.end(), modelNames.begin(), modelNames.end());
    std::string csv = csvRow(header);
    for (std::size_t j = 0; j < p.slides.size(); ++j) {
        std::vector<std::string> row{p.slides[j], formatRunNumber(p.mean[j])};
        for (const auto& m : p.models)
            row.push_back(formatRunNumber(m[j]));
        csv += csvRow(row);
    }
    return csv;
}

} // namespace nic

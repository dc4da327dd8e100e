// Encoder stages of the workflow (nic compress with an encoder file, nic train-encoder).
#include "ui/nn/neuraljobs.h"

#include "core/base/error.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/trainer.h"
#include "core/encoders/trainingbudget.h"
#include "ui/plots.h"

#include <filesystem>

namespace nic {

std::unique_ptr<PatchEncoder> loadEncoderForJob(const std::string& path) {
    ComputeOptions compute;
    compute.callers = 0; // the compression job: one inference thread per physical core
    return loadEncoder(path, compute);
}

void trainEncoderJob(const TrainEncoderDialog::Options& o, JobContext& ctx, const EpochSink& sink) {
    const auto kind = parseEncoderKind(o.method.toStdString());
    if (!kind)
        throw InvalidArgument("unknown encoder kind '" + o.method.toStdString() + "'");
    TrainOptions t;
    t.kind = *kind;
    t.codeSize = o.codeSize;
    t.out = o.output.toStdString();
    t.epochs = o.epochs;
    t.maxSteps = o.steps;
    t.stepsPerEpoch = o.stepsPerEpoch;
    t.learningRate = o.learningRate;
    const bool lossMetric = *kind == EncoderKind::Vae;
    t.onEpoch = [&sink, lossMetric](const EpochRecord& r) {
        if (!sink)
            return;
        EpochPoint p;
        p.epoch = r.epoch;
        p.trainLoss = r.trainLoss;
        (lossMetric ? p.validationLoss : p.validationMetric) = r.validation;
        p.learningRate = r.learningRate;
        sink(p);
    };
    const std::filesystem::path source = o.patchSource.toStdString();
    const PatchBank bank = std::filesystem::is_directory(source) ? patchBankFromFolder(source, 128, ctx)
                                                                 : PatchBank::load(source);
    if (bank.empty())
        throw InvalidArgument(source.string() + ": the patch source holds no patches");
    ctx.log("training " + o.method.toStdString() + " on " + std::to_string(bank.size()) + " patches of " +
            std::to_string(bank.patchSize()) + " px, device " + configureCompute(t.compute) + "; budget: " +
            describeTrainingBudget(TrainingBudget{t.epochs, t.maxSteps, t.stepsPerEpoch}, *kind != EncoderKind::Bigan));
    const TrainResult r = trainEncoder(t, bank, PatchBank(), ctx);
    ctx.log("encoder " + r.encoder.source + " (" + r.encoder.hash.substr(0, 12) + "), " + std::to_string(r.epochsRun) +
            " epochs" + (r.metric != "none" ? ", best " + r.metric + " " + std::to_string(r.bestValidation) : "") +
            "; ended by " + toString(r.stopReason));
}

} // namespace nic

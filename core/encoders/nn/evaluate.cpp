#include "core/encoders/nn/evaluate.h"

#include "core/base/error.h"
#include "core/encoders/nn/modules.h"
#include "core/base/plateau.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

namespace nic {

namespace F = torch::nn::functional;

std::string EvalResult::confusionCsv() const {
    std::ostringstream out;
    out << "true\\predicted";
    for (const auto& n : classNames)
        out << ',' << n;
    out << '\n';
    for (std::size_t t = 0; t < confusion.size(); ++t) {
        out << (t < classNames.size() ? classNames[t] : std::to_string(t));
        for (auto v : confusion[t])
            out << ',' << v;
        out << '\n';
    }
    return out.str();
}

std::optional<EvalSplit> parseEvalSplit(const std::string& text) {
    if (text == "auto")
        return EvalSplit::Auto;
    if (text == "source")
        return EvalSplit::Source;
    if (text == "patch")
        return EvalSplit::Patch;
    return std::nullopt;
}

std::pair<PatchBank, PatchBank> evaluationSplit(const PatchBank& bank, double fraction, std::uint64_t seed, EvalSplit mode,
                                                bool& bySource) {
    bySource = mode == EvalSplit::Source || (mode == EvalSplit::Auto && bank.knownSourceCount() >= 2);
    return bySource ? bank.splitBySource(fraction, seed) : bank.split(fraction, seed);
}

double balancedAccuracy(const std::vector<std::vector<std::int64_t>>& confusion) {
    double sum = 0.0;
    int present = 0;
    for (std::size_t t = 0; t < confusion.size(); ++t) {
        std::int64_t row = 0;
        for (auto v : confusion[t])
            row += v;
        if (row == 0)
            continue;
        sum += t < confusion[t].size() ? static_cast<double>(confusion[t][t]) / static_cast<double>(row) : 0.0;
        ++present;
    }
    return present ? sum / present : std::numeric_limits<double>::quiet_NaN();
}

std::string EvalResult::toJson() const {
    const auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    nlohmann::json j;
    j["classes"] = classNames;
    j["accuracy"] = num(accuracy);
    j["balanced_accuracy"] = num(balancedAccuracy);
    auto recall = nlohmann::json::object();
    for (std::size_t c = 0; c < classNames.size() && c < perClassAccuracy.size(); ++c)
        recall[classNames[c]] = num(perClassAccuracy[c]);
    j["per_class_recall"] = recall;
    j["confusion"] = confusion;
    j["validation_accuracy"] = num(validationAccuracy);
    j["best_epoch"] = bestEpoch;
    j["patches"] = {{"train", trainCount}, {"validation", validationCount}, {"test", testCount}};
    j["validation_split"] = validationBySource ? "source" : "patch";
    return j.dump(2);
}

namespace {

torch::Tensor embedBank(PatchEncoder& encoder, const PatchBank& bank, JobContext& ctx, const std::string& what,
                        std::int64_t& done, std::int64_t total) {
    const int c = encoder.info().codeSize;
    auto out = torch::empty({static_cast<std::int64_t>(bank.size()), c}, torch::kFloat);
    const std::shared_ptr<void> keptBuffers = encoder.keepBuffers(); // batches of one size, as in compression
    constexpr std::size_t kChunk = 64;
    for (std::size_t s = 0; s < bank.size(); s += kChunk) {
        const auto n = std::min(kChunk, bank.size() - s);
        encoder.encode(bank.patch(s), static_cast<int>(n), out.data_ptr<float>() + s * static_cast<std::size_t>(c));
        done += static_cast<std::int64_t>(n);
        ctx.progress(done, total, "embedding " + what);
        ctx.throwIfCancelled();
    }
    return out;
}

torch::Tensor labelsOf(const PatchBank& bank, int classes) {
    std::vector<std::int64_t> v;
    for (std::size_t i = 0; i < bank.size(); ++i) {
        if (bank.label(i) < 0 || bank.label(i) >= classes)
            throw InvalidArgument("eval-encoder: every patch needs a label (patch " + std::to_string(i) + ")");
        v.push_back(bank.label(i));
    }
    return torch::tensor(v, torch::kLong);
}

torch::Tensor predict(ClassifierHead& mlp, const torch::Tensor& x, int outputs) {
    torch::NoGradGuard ng;
    mlp->eval();
    auto logits = mlp->forward(x);
    return outputs == 1 ? (logits.squeeze(1) > 0).to(torch::kLong) : logits.argmax(1);
}

} // namespace

EvalResult evaluateEncoder(PatchEncoder& encoder, const PatchBank& trainBank, const PatchBank& testBank,
                           const EvalOptions& o, JobContext& ctx) {
    const int p = encoder.info().patchSize;
    if (trainBank.patchSize() != p || testBank.patchSize() != p)
        throw InvalidArgument("eval-encoder: the patches must be " + std::to_string(p) + "x" + std::to_string(p) +
                              " for encoder " + encoder.info().name);
    if (trainBank.classNames() != testBank.classNames())
        throw InvalidArgument("eval-encoder: training and test sets have different classes");
    const int classes = static_cast<int>(trainBank.classNames().size());
    if (classes < 2)
        throw InvalidArgument("eval-encoder: need at least 2 classes");
    if (testBank.empty())
        throw InvalidArgument("eval-encoder: empty test set");
    configureCompute(o.compute); // threads; the MLP itself is tiny and runs on the CPU
    bool valBySource = false;
    auto [trainPart, valPart] = evaluationSplit(trainBank, o.validationFraction, o.seed, o.validationSplit, valBySource);
    if (trainPart.size() < 2 || valPart.empty())
        throw InvalidArgument("eval-encoder: too few training patches for a validation split");

    EvalResult r;
    r.classNames = trainBank.classNames();
    r.validationBySource = valBySource;
    r.trainCount = trainPart.size();
    r.validationCount = valPart.size();
    r.testCount = testBank.size();

    std::int64_t done = 0;
    const auto total = static_cast<std::int64_t>(trainBank.size() + testBank.size());
    auto xTrain = embedBank(encoder, trainPart, ctx, "training patches", done, total);
    auto xVal = embedBank(encoder, valPart, ctx, "validation patches", done, total);
    auto xTest = embedBank(encoder, testBank, ctx, "test patches", done, total);
    auto yTrain = labelsOf(trainPart, classes), yVal = labelsOf(valPart, classes), yTest = labelsOf(testBank, classes);

    auto mean = xTrain.mean(0, true);
    auto stdev = xTrain.std(0, true, true).clamp_min(1e-6);
    xTrain = (xTrain - mean) / stdev;
    xVal = (xVal - mean) / stdev;
    xTest = (xTest - mean) / stdev;

    const int outputs = classes == 2 ? 1 : classes;
    torch::manual_seed(o.seed);
    ClassifierHead mlp(encoder.info().codeSize, outputs);
    torch::optim::Adam opt(mlp->parameters(), torch::optim::AdamOptions(o.learningRate));
    double lr = o.learningRate;
    double best = -1.0;
    int bad = 0;
    std::vector<torch::Tensor> bestState;
    auto state = [&] {
        std::vector<torch::Tensor> v;
        for (auto& t : mlp->parameters())
            v.push_back(t);
        for (auto& t : mlp->buffers())
            v.push_back(t);
        return v;
    };
    std::mt19937_64 rng(o.seed);
    const auto n = static_cast<std::size_t>(xTrain.size(0));
    std::vector<std::int64_t> order(n);
    for (std::size_t i = 0; i < n; ++i)
        order[i] = static_cast<std::int64_t>(i);
    for (int epoch = 1; epoch <= o.epochs; ++epoch) {
        std::shuffle(order.begin(), order.end(), rng);
        auto perm = torch::tensor(order, torch::kLong);
        mlp->train();
        for (std::size_t s = 0; s + 2 <= n; s += static_cast<std::size_t>(o.batchSize)) {
            auto idx = perm.slice(0, static_cast<std::int64_t>(s), static_cast<std::int64_t>(std::min(n, s + static_cast<std::size_t>(o.batchSize))));
            if (idx.size(0) < 2)
                break;
            auto logits = mlp->forward(xTrain.index_select(0, idx));
            auto y = yTrain.index_select(0, idx);
            auto loss = outputs == 1 ? F::binary_cross_entropy_with_logits(logits.squeeze(1), y.to(torch::kFloat))
                                     : F::cross_entropy(logits, y);
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
        ctx.throwIfCancelled();
        const double acc = (predict(mlp, xVal, outputs) == yVal).to(torch::kDouble).mean().item<double>();
        const bool improved = acc > best;
        if (improved) {
            best = acc;
            r.bestEpoch = epoch;
            bestState.clear();
            for (auto& t : state())
                bestState.push_back(t.detach().clone());
        }
        const PlateauStep step = PlateauSchedule{o.minLearningRate, o.patience}.epochEnded(improved, lr, bad);
        if (step == PlateauStep::Stop)
            break;
        if (step == PlateauStep::Reduced)
            for (auto& g : opt.param_groups())
                g.options().set_lr(lr);
    }
    {
        torch::NoGradGuard ng;
        auto cur = state();
        for (std::size_t i = 0; i < cur.size(); ++i)
            cur[i].copy_(bestState[i]);
    }
    r.validationAccuracy = best;
    auto pred = predict(mlp, xTest, outputs);
    r.confusion.assign(static_cast<std::size_t>(classes), std::vector<std::int64_t>(static_cast<std::size_t>(classes), 0));
    for (std::int64_t i = 0; i < pred.size(0); ++i)
        ++r.confusion[static_cast<std::size_t>(yTest[i].item<std::int64_t>())][static_cast<std::size_t>(pred[i].item<std::int64_t>())];
    std::int64_t correct = 0;
    for (int c = 0; c < classes; ++c) {
        std::int64_t rowSum = 0;
        for (auto v : r.confusion[static_cast<std::size_t>(c)])
            rowSum += v;
        correct += r.confusion[static_cast<std::size_t>(c)][static_cast<std::size_t>(c)];
        r.perClassAccuracy.push_back(rowSum > 0 ? static_cast<double>(r.confusion[static_cast<std::size_t>(c)][static_cast<std::size_t>(c)]) /
                                                      static_cast<double>(rowSum)
                                                : std::numeric_limits<double>::quiet_NaN());
    }
    r.accuracy = static_cast<double>(correct) / static_cast<double>(pred.size(0));
    r.balancedAccuracy = nic::balancedAccuracy(r.confusion);
    return r;
}

} // namespace nic

// The encoder kinds' training sessions (supplementary §7): VAE, supervised, contrastive and BiGAN, each making
// its step's batch (prepare, on the prefetch thread) and taking one optimisation step on it.
#include "core/encoders/nn/trainingsessions.h"

#include "core/base/error.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/fusedadam.h"
#include "core/encoders/nn/pairsampler.h"
#include "core/encoders/nn/torchencoder.h"

#include <cstring>
#include <limits>
#include <tuple>

namespace nic::encodertraining {

namespace F = torch::nn::functional;

std::vector<std::size_t> allIndices(const PatchBank& b) {
    std::vector<std::size_t> v(b.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = i;
    return v;
}

// On the CPU each of these is one pass over the batch, split over the images. They replaced LibTorch's
// operators, which took three to four passes (the byte-to-float conversion, the division, the transposing
// copy into planes; then 2u and 2u − 1) plus the first convolution's own copy of a planar input into its
// channels-last layout. The values are the operators' to the bit: u / 255 and (u / 255)·2 − 1 in float,
// where ·2 is exact.
torch::Tensor gatherUnit(const PatchBank& bank, const std::vector<std::size_t>& idx, torch::Device device) {
    const auto n = static_cast<std::int64_t>(idx.size());
    const int p = bank.patchSize();
    if (device.is_cpu()) {
        auto out = torch::empty({n, 3, p, p});
        const std::int64_t plane = static_cast<std::int64_t>(p) * p;
        float* dst = out.data_ptr<float>();
        at::parallel_for(0, n, 1, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t k = first; k < last; ++k) {
                const std::uint8_t* src = bank.patch(idx[static_cast<std::size_t>(k)]);
                float* r = dst + k * 3 * plane;
                float* g = r + plane;
                float* b = g + plane;
                for (std::int64_t i = 0; i < plane; ++i) {
                    r[i] = static_cast<float>(src[3 * i]) / 255.0F;
                    g[i] = static_cast<float>(src[3 * i + 1]) / 255.0F;
                    b[i] = static_cast<float>(src[3 * i + 2]) / 255.0F;
                }
            }
        });
        return out;
    }
    // For a GPU the bytes are gathered into pinned memory and copied as bytes (a quarter of the floats) without
    // blocking; the conversion to floats then runs on the GPU too.
    auto u8 = torch::empty({n, p, p, 3}, torch::TensorOptions(torch::kUInt8).pinned_memory(true));
    auto* dst = u8.data_ptr<std::uint8_t>();
    for (std::size_t i = 0; i < idx.size(); ++i)
        std::memcpy(dst + i * bank.patchBytes(), bank.patch(idx[i]), bank.patchBytes());
    u8 = u8.to(device, /*non_blocking=*/true);
    return u8.permute({0, 3, 1, 2}).to(torch::kFloat).div_(255.0).contiguous();
}

torch::Tensor unitToModel(const torch::Tensor& unit) {
    if (!unit.device().is_cpu() || unit.scalar_type() != torch::kFloat || unit.dim() != 4 || !unit.is_contiguous())
        return unit * 2.0 - 1.0;
    const std::int64_t n = unit.size(0), channels = unit.size(1), plane = unit.size(2) * unit.size(3);
    auto out = torch::empty(unit.sizes(), unit.options().memory_format(torch::MemoryFormat::ChannelsLast));
    const float* src = unit.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, n, 1, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) {
            const float* in = src + k * channels * plane;
            float* o = dst + k * channels * plane;
            for (std::int64_t i = 0; i < plane; ++i)
                for (std::int64_t c = 0; c < channels; ++c)
                    o[i * channels + c] = in[c * plane + i] * 2.0F - 1.0F;
        }
    });
    return out;
}

torch::Tensor gatherModelInput(const PatchBank& bank, const std::vector<std::size_t>& idx, torch::Device device) {
    if (!device.is_cpu())
        return unitToModel(gatherUnit(bank, idx, device));
    const auto n = static_cast<std::int64_t>(idx.size());
    const int p = bank.patchSize();
    // The bank's bytes are interleaved, pixel by pixel: the channels-last order itself.
    const auto layout = torch::TensorOptions(torch::kFloat).memory_format(torch::MemoryFormat::ChannelsLast);
    auto out = torch::empty({n, 3, p, p}, layout);
    const auto bytes = static_cast<std::int64_t>(bank.patchBytes());
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, n, 1, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) {
            const std::uint8_t* src = bank.patch(idx[static_cast<std::size_t>(k)]);
            float* o = dst + k * bytes;
            for (std::int64_t i = 0; i < bytes; ++i)
                o[i] = static_cast<float>(src[i]) / 255.0F * 2.0F - 1.0F;
        }
    });
    return out;
}

namespace {

template <typename Fn>
void forChunks(std::size_t n, std::size_t chunk, Fn fn) {
    for (std::size_t s = 0; s < n; s += chunk) {
        std::vector<std::size_t> idx;
        for (std::size_t i = s; i < std::min(n, s + chunk); ++i)
            idx.push_back(i);
        fn(idx);
    }
}

// ------------------------------------------------------------------------------------------------ VAE

class VaeSession final : public Session {
public:
    VaeSession(const TrainOptions& o, int p, const PatchBank& train, const PatchBank& val, torch::Device dev, double lr)
        : train_(train), val_(val), dev_(dev), gamma_(o.vaeGamma), net_(p, o.codeSize),
          opt_(net_->parameters(), torch::optim::AdamOptions(lr)) {
        net_->to(dev_);
    }
    torch::nn::Module& networks() override { return *net_; }
    torch::nn::Module& encoderModule() override { return *net_->encoder; }
    std::vector<torch::optim::Optimizer*> optimizers() override { return {&opt_}; }
    bool higherIsBetter() const override { return false; }
    const char* metricName() const override { return "val_loss"; }

    void prepare(const std::vector<std::size_t>& idx, at::Generator&, std::mt19937_64&, Batch& out) override {
        out.x = gatherModelInput(train_, idx, dev_);
        out.size = idx.size();
    }

    StepStats step(const Batch& batch) override {
        net_->train();
        auto out = net_->forward(batch.x);
        auto losses = VaeImpl::loss(out, batch.x, gamma_);
        clearGradients(opt_);
        losses[0].backward();
        opt_.step();
        return {losses[0].item<double>(), losses[1].item<double>(), losses[2].item<double>()};
    }

    double validate() override {
        torch::NoGradGuard ng;
        net_->eval();
        double sum = 0.0;
        forChunks(val_.size(), 128, [&](const std::vector<std::size_t>& idx) {
            auto x = gatherModelInput(val_, idx, dev_);
            const auto o = net_->forward(x, /*sample=*/false); // deterministic: decode μ
            sum += VaeImpl::loss(o, x, gamma_)[0].item<double>() * static_cast<double>(idx.size());
        });
        return sum / static_cast<double>(std::max<std::size_t>(val_.size(), 1));
    }

private:
    const PatchBank& train_;
    const PatchBank& val_;
    torch::Device dev_;
    double gamma_;
    Vae net_;
    FusedAdam opt_;
};

// ----------------------------------------------------------------------------------------- supervised

class SupervisedSession final : public Session {
public:
    SupervisedSession(const TrainOptions& o, int p, int outputs, const PatchBank& train, const PatchBank& val,
                      torch::Device dev, double lr, double augment)
        : train_(train), val_(val), dev_(dev), outputs_(outputs), augment_(augment), net_(p, o.codeSize, outputs),
          opt_(net_->parameters(), torch::optim::AdamOptions(lr)) {
        net_->to(dev_);
    }
    torch::nn::Module& networks() override { return *net_; }
    torch::nn::Module& encoderModule() override { return *net_->encoder; }
    std::vector<torch::optim::Optimizer*> optimizers() override { return {&opt_}; }
    bool higherIsBetter() const override { return true; }
    const char* metricName() const override { return "val_accuracy"; }

    torch::Tensor labelsOf(const std::vector<std::size_t>& idx, const PatchBank& bank) const {
        std::vector<std::int64_t> labels;
        for (auto i : idx)
            labels.push_back(bank.label(i));
        return torch::tensor(labels, torch::kLong).to(dev_);
    }

    std::pair<torch::Tensor, torch::Tensor> lossAndCorrect(const torch::Tensor& logits, const torch::Tensor& y) {
        if (outputs_ == 1) {
            auto l = logits.squeeze(1);
            return {F::binary_cross_entropy_with_logits(l, y.to(torch::kFloat)), ((l > 0).to(torch::kLong) == y).sum()};
        }
        return {F::cross_entropy(logits, y), (logits.argmax(1) == y).sum()};
    }

    void prepare(const std::vector<std::size_t>& idx, at::Generator& gen, std::mt19937_64&, Batch& out) override {
        auto unit = gatherUnit(train_, idx, dev_);
        if (augment_ > 0)
            unit = augment::heavy(unit, augment_, gen); // on the training device
        out.x = unitToModel(unit);
        out.y = labelsOf(idx, train_);
        out.size = idx.size();
    }

    StepStats step(const Batch& batch) override {
        net_->train();
        auto logits = net_->forward(batch.x);
        auto [loss, correct] = lossAndCorrect(logits, batch.y);
        clearGradients(opt_);
        loss.backward();
        opt_.step();
        return {loss.item<double>(), correct.item<double>() / static_cast<double>(batch.size), 0.0};
    }

    double validate() override {
        torch::NoGradGuard ng;
        net_->eval();
        double correct = 0.0;
        forChunks(val_.size(), 128, [&](const std::vector<std::size_t>& idx) {
            auto logits = net_->forward(gatherModelInput(val_, idx, dev_));
            correct += lossAndCorrect(logits, labelsOf(idx, val_)).second.item<double>();
        });
        return correct / static_cast<double>(std::max<std::size_t>(val_.size(), 1));
    }

private:
    const PatchBank& train_;
    const PatchBank& val_;
    torch::Device dev_;
    int outputs_;
    double augment_;
    Supervised net_;
    FusedAdam opt_;
};

// ---------------------------------------------------------------------------------------- contrastive

class ContrastiveSession final : public Session {
public:
    ContrastiveSession(const TrainOptions& o, int p, const PatchBank& train, const PatchBank& val, torch::Device dev,
                       double lr, double augment)
        : train_(train), val_(val), dev_(dev), augment_(augment), valPairs_(o.validationPairs),
          valSeed_(o.seed * 31 + 17), trainPairs_(train), valSampler_(val), net_(p, o.codeSize),
          opt_(net_->parameters(), torch::optim::AdamOptions(lr)) {
        net_->to(dev_);
    }
    torch::nn::Module& networks() override { return *net_; }
    torch::nn::Module& encoderModule() override { return *net_->encoder; }
    std::vector<torch::optim::Optimizer*> optimizers() override { return {&opt_}; }
    bool higherIsBetter() const override { return true; }
    const char* metricName() const override { return "val_accuracy"; }

    void beginEpoch() override { trainPairs_.resetStats(); }
    /// The realised share of adjacent negatives and the draws that fell back (none silently).
    void endEpoch(EpochRecord& rec) override {
        const PairStats& st = trainPairs_.stats();
        rec.adjacentNegatives = st.adjacentFraction();
        rec.otherSourceNegatives = st.otherSourceFraction();
        rec.pairFallbacks = static_cast<std::int64_t>(st.fallbacks());
        rec.pairNoNeighbour = static_cast<std::int64_t>(st.noNeighbour);
    }

    std::tuple<torch::Tensor, torch::Tensor> views(const PatchBank& bank, const std::vector<std::size_t>& a,
                                                   const std::vector<std::size_t>& b, at::Generator& gen) {
        auto va = augment::heavy(gatherUnit(bank, a, dev_), augment_, gen); // on the training device
        auto vb = augment::heavy(gatherUnit(bank, b, dev_), augment_, gen);
        return {unitToModel(va), unitToModel(vb)};
    }

    void prepare(const std::vector<std::size_t>& idx, at::Generator& gen, std::mt19937_64& rng, Batch& out) override {
        std::vector<std::size_t> a, b;
        std::vector<float> y;
        trainPairs_.sample(idx, rng, a, b, y); // its statistics are read after the epoch's last step
        std::tie(out.x, out.x2) = views(train_, a, b, gen);
        out.y = torch::tensor(y).to(dev_);
        out.size = idx.size();
    }

    StepStats step(const Batch& batch) override {
        net_->train();
        const auto& target = batch.y;
        auto logits = net_->forward(batch.x, batch.x2);
        auto loss = F::binary_cross_entropy_with_logits(logits, target);
        clearGradients(opt_);
        loss.backward();
        opt_.step();
        auto acc = ((logits > 0).to(torch::kFloat) == target).to(torch::kFloat).mean();
        return {loss.item<double>(), acc.item<double>(), 0.0};
    }

    /// Accuracy on the same pairs and views every time (own RNG and generator from a fixed seed).
    double validate() override {
        torch::NoGradGuard ng;
        net_->eval();
        std::mt19937_64 rng(valSeed_);
        auto gen = augment::makeGenerator(valSeed_);
        std::uniform_int_distribution<std::size_t> any(0, val_.size() - 1);
        double correct = 0.0;
        std::size_t total = 0;
        while (total < static_cast<std::size_t>(valPairs_)) {
            const std::size_t n = std::min<std::size_t>(64, static_cast<std::size_t>(valPairs_) - total);
            std::vector<std::size_t> anchors;
            for (std::size_t k = 0; k < n; ++k)
                anchors.push_back(any(rng));
            std::vector<std::size_t> a, b;
            std::vector<float> y;
            valSampler_.sample(anchors, rng, a, b, y);
            auto [va, vb] = views(val_, a, b, gen);
            auto logits = net_->forward(va, vb);
            correct += ((logits > 0).to(torch::kFloat) == torch::tensor(y).to(dev_)).sum().item<double>();
            total += n;
        }
        return correct / static_cast<double>(std::max<std::size_t>(total, 1));
    }

private:
    const PatchBank& train_;
    const PatchBank& val_;
    torch::Device dev_;
    double augment_;
    int valPairs_;
    std::uint64_t valSeed_;
    PairSampler trainPairs_, valSampler_;
    Siamese net_;
    FusedAdam opt_;
};

// -------------------------------------------------------------------------------------------- BiGAN

class BiganSession final : public Session {
public:
    BiganSession(const TrainOptions& o, int p, const PatchBank& train, torch::Device dev, double lr)
        : train_(train), dev_(dev), code_(o.codeSize), net_(p, o.codeSize),
          optD_(net_->discriminator->parameters(), torch::optim::AdamOptions(lr).betas({0.5, 0.999})),
          optGE_(joinParameters(), torch::optim::AdamOptions(lr).betas({0.5, 0.999})) {
        net_->to(dev_);
    }
    torch::nn::Module& networks() override { return *net_; }
    torch::nn::Module& encoderModule() override { return *net_->encoder; }
    std::vector<torch::optim::Optimizer*> optimizers() override { return {&optD_, &optGE_}; }
    bool higherIsBetter() const override { return true; }
    const char* metricName() const override { return "none"; }

    void prepare(const std::vector<std::size_t>& idx, at::Generator&, std::mt19937_64&, Batch& out) override {
        out.x = gatherModelInput(train_, idx, dev_);
        out.x2 = F::avg_pool2d(out.x, F::AvgPool2dFuncOptions(2));
        out.size = idx.size();
    }

    StepStats step(const Batch& batch) override {
        net_->train();
        const auto& x = batch.x;
        const auto& half = batch.x2;
        const auto n = x.size(0);
        auto z = torch::randn({n, code_}).to(dev_);
        // One-sided label smoothing (real target 0.9) keeps D from saturating early.
        const auto on = torch::TensorOptions(torch::kFloat).device(dev_);
        auto real = torch::full({n}, 0.9f, on), fake = torch::zeros({n}, on), one = torch::ones({n}, on);

        auto e = net_->encoder(x);
        auto g = net_->generator(z);
        auto dReal = net_->discriminator(half, e.detach());
        auto dFake = net_->discriminator(g.detach(), z);
        auto lossD = F::binary_cross_entropy_with_logits(dReal, real) + F::binary_cross_entropy_with_logits(dFake, fake);
        clearGradients(optD_);
        lossD.backward();
        optD_.step();
        const double accD =
            (((dReal > 0).to(torch::kFloat).sum() + (dFake <= 0).to(torch::kFloat).sum()) / (2.0 * static_cast<double>(n)))
                .item<double>();

        auto lossGE = F::binary_cross_entropy_with_logits(net_->discriminator(half, e), fake) +
                      F::binary_cross_entropy_with_logits(net_->discriminator(g, z), one);
        clearGradients(optGE_);
        lossGE.backward();
        optGE_.step();
        return {lossD.item<double>(), lossGE.item<double>(), accD};
    }
    double validate() override { return std::numeric_limits<double>::quiet_NaN(); }

private:
    std::vector<torch::Tensor> joinParameters() {
        auto p = net_->encoder->parameters();
        for (auto& t : net_->generator->parameters())
            p.push_back(t);
        return p;
    }
    const PatchBank& train_;
    torch::Device dev_;
    int code_;
    Bigan net_;
    FusedAdam optD_;
    FusedAdam optGE_;
};

} // namespace

std::unique_ptr<Session> makeSession(const TrainOptions& o, int p, int outputs, const PatchBank& train,
                                     const PatchBank& val, torch::Device dev, double lr0, double augment) {
    try {
        switch (o.kind) {
        case EncoderKind::Vae: return std::make_unique<VaeSession>(o, p, train, val, dev, lr0);
        case EncoderKind::Contrastive: return std::make_unique<ContrastiveSession>(o, p, train, val, dev, lr0, augment);
        case EncoderKind::Bigan: return std::make_unique<BiganSession>(o, p, train, dev, lr0);
        case EncoderKind::SupervisedTumor:
        case EncoderKind::SupervisedTissue:
            return std::make_unique<SupervisedSession>(o, p, outputs, train, val, dev, lr0, augment);
        }
    } catch (const c10::Error& e) {
        throw Error(std::string("train-encoder: ") + torchMessage(e));
    }
    throw InvalidArgument("train-encoder: unknown encoder kind");
}

} // namespace nic::encodertraining

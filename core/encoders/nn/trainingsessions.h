#pragma once
// Internal to the encoder trainer (trainer.cpp, trainingsessions.cpp): what differs between the encoder kinds
// behind the shared epoch loop — networks, optimisers, making a step's batch, one step, validation.
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/trainer.h"

#include <torch/torch.h>

#include <memory>
#include <random>
#include <vector>

namespace nic::encodertraining {

/// One step's inputs, made by Session::prepare on the prefetch thread (already on the training device).
struct Batch {
    torch::Tensor x;  ///< model input; contrastive: the anchors' views
    torch::Tensor x2; ///< contrastive: the partners' views; BiGAN: x at half resolution
    torch::Tensor y;  ///< supervised: labels; contrastive: 1 same / 0 different
    std::size_t size = 0;
};

struct StepStats {
    double loss = 0.0;
    double extra = 0.0;  ///< accuracy or G/E loss
    double extra2 = 0.0; ///< BiGAN D accuracy
};

/// What differs between the kinds: networks, optimisers, one training step, validation.
class Session {
public:
    virtual ~Session() = default;
    virtual torch::nn::Module& networks() = 0;
    virtual torch::nn::Module& encoderModule() = 0;
    virtual std::vector<torch::optim::Optimizer*> optimizers() = 0;
    /// The inputs of one step for the bank patches `idx`: everything that reads the bank or draws from `gen`
    /// and `rng` (augmentation, pairs) happens here, in step order, on the prefetch thread.
    virtual void prepare(const std::vector<std::size_t>& idx, at::Generator& gen, std::mt19937_64& rng, Batch& out) = 0;
    /// One optimisation step on a prepared batch (the training thread; only the model's own randomness).
    virtual StepStats step(const Batch& batch) = 0;
    /// NaN when the kind has no validation metric.
    virtual double validate() = 0;
    virtual bool higherIsBetter() const = 0;
    virtual const char* metricName() const = 0;
    /// Called before the first and after the last step of an epoch (per-epoch statistics).
    virtual void beginEpoch() {}
    virtual void endEpoch(EpochRecord&) {}

    void setLearningRate(double lr) {
        for (auto* o : optimizers())
            for (auto& g : o->param_groups())
                g.options().set_lr(lr);
    }
};

/// Bank patches `idx` as a float batch [N, 3, P, P] in [0, 1] on `device`, planar (what the augmentation reads).
torch::Tensor gatherUnit(const PatchBank& bank, const std::vector<std::size_t>& idx, torch::Device device);
/// A [0, 1] batch as the model's input in [−1, 1]: 2u − 1, channels-last on the CPU (the first convolution's own
/// layout, as the weights are kept).
torch::Tensor unitToModel(const torch::Tensor& unit);
/// unitToModel(gatherUnit(bank, idx, device)) without the planar batch between them (the sessions that do not
/// augment): on the CPU one pass from the bank's bytes, which are already in channels-last order.
torch::Tensor gatherModelInput(const PatchBank& bank, const std::vector<std::size_t>& idx, torch::Device device);

/// The augmentation strength of a run: the option, else the kind's default (1.0 contrastive, 0.25 supervised,
/// 0 otherwise).
double augmentStrength(const TrainOptions& o);

/// The logits a session of `kind` outputs for a bank of `classes` classes: one per class for supervised-tissue,
/// else 1 (supervised-tumor's single tumour logit; the other kinds ignore it).
int sessionOutputs(EncoderKind kind, int classes);

/// Every index of the bank, in order.
std::vector<std::size_t> allIndices(const PatchBank& bank);

/// The session of o.kind (supervised kinds: `outputs` logits). c10 errors become nic::Error.
std::unique_ptr<Session> makeSession(const TrainOptions& o, int p, int outputs, const PatchBank& train,
                                     const PatchBank& val, torch::Device dev, double lr0, double augment);

} // namespace nic::encodertraining

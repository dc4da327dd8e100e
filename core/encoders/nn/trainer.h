#pragma once
// Training of the paper's encoders (supplementary §7) on a patch bank (no LibTorch in this header).
//
// Protocol, as in the paper: Adam, mini-batches of 64, learning rate from the paper's start value
// (defaultLearningRate) divided by 10 whenever the validation metric has not improved for `patience`
// epochs, until it would fall below minLearningRate, which ends training; the encoder E of the best
// epoch by validation is kept. BiGAN has no validation metric: fixed learning rate, last epoch kept
// (§7.3); its health is reported per epoch (discriminator accuracy, losses, see EpochRecord).
//
// Budget: an epoch is `stepsPerEpoch` optimisation steps (mini-batches; default one pass over the bank);
// training ends at whichever comes first of (1) the learning-rate floor (plateau kinds), (2) `maxSteps`
// optimisation steps in total (the last epoch is cut short to land exactly on it), (3) `epochs` epochs.
// 0 switches a cap off; BiGAN, which has no floor, needs at least one cap. When two limits are reached by
// the same epoch the first in that order is reported. TrainResult::stopReason says which one ended the
// run; cancellation is logged ("cancelled") and thrown.
//
// Validation metrics: VAE — loss (lower is better); contrastive — same/different accuracy on a fixed
// set of pairs drawn from the validation bank; supervised — classification accuracy.
//
// Files: the best encoder is written (atomically) to `out` whenever validation improves; a checkpoint
// (all networks, optimiser state, schedule, history) is written atomically to `checkpoint` after each
// epoch. Cancellation is checked after every batch and throws nic::Cancelled, leaving both files as
// they were after the last completed epoch. Runs are deterministic for a given seed, thread count and
// device; a resumed run continues exactly as the uninterrupted one would (per-epoch seeding). A resumed
// run may raise the caps (more epochs or steps); after an epoch cut short by the step cap it continues
// with the next full epoch. A run that ended at the learning-rate floor stays ended.
#include "core/encoders/encoder.h"
#include "core/base/jobcontext.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchbank.h"
#include "core/base/plateau.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace nic {

struct EpochRecord;

struct TrainOptions {
    EncoderKind kind = EncoderKind::Vae;
    int codeSize = 128;                 ///< C (P comes from the bank)
    std::filesystem::path out;          ///< encoder file (best epoch)
    std::filesystem::path checkpoint;   ///< default: out + ".ckpt"
    int epochs = 20;                    ///< upper bound (epoch cap); 0: none
    std::int64_t maxSteps = 0;          ///< total optimisation steps over the whole run (step cap); 0: none
    int batchSize = 64;
    int stepsPerEpoch = 0;              ///< 0: one pass over the training bank
    double learningRate = 0.0;          ///< 0: defaultLearningRate(kind)
    double minLearningRate = 1e-5;
    int patience = 2;                   ///< epochs without improvement before lr /= 10
    double augmentStrength = -1.0;      ///< −1: 1.0 for contrastive, 0.25 for supervised, 0 otherwise
    double vaeGamma = 5e-5;             ///< γ of eq. (9)
    int validationPairs = 512;          ///< contrastive validation set size
    std::uint64_t seed = 1;
    bool resume = false;                ///< continue from `checkpoint` when it exists
    /// Where each step's batch (indices, pairs, augmentation) is made; the result is the same either way.
    /// Prefetch: on a second thread while the previous step trains. Inline: on the training thread. Auto:
    /// prefetch when the kind augments (contrastive, supervised, or any with augmentStrength > 0) and either
    /// the step runs on a GPU or the process has a CPU that LibTorch's threads leave free; else inline. With every CPU busy with the step,
    /// the prefetch thread's augmentation competed with it and was 4-13 % slower than inline on 2 CPUs
    /// (bench_encoders, docs/timings.md).
    enum class BatchThread { Auto, Prefetch, Inline };
    BatchThread batchThread = BatchThread::Auto;
    ComputeOptions compute;
    /// Called on the training thread after each completed epoch (live curves); may be empty.
    std::function<void(const EpochRecord&)> onEpoch;
};

struct EpochRecord {
    int epoch = 0;             ///< 1-based
    double learningRate = 0.0;
    double trainLoss = 0.0;    ///< mean over the epoch (BiGAN: discriminator loss)
    double validation = 0.0;   ///< the validation metric (NaN for BiGAN)
    double extra = 0.0;        ///< BiGAN: generator/encoder loss; contrastive/supervised: train accuracy
    double extra2 = 0.0;       ///< BiGAN: discriminator accuracy on real + fake pairs
    double seconds = 0.0;
    bool improved = false;     ///< encoder file rewritten after this epoch
    /// Contrastive only (NaN otherwise): realised shares of the epoch's "different" pairs that were a
    /// 4-neighbour of the anchor and that came from another slide (the paper: 0.75 and 0.25).
    double adjacentNegatives = std::numeric_limits<double>::quiet_NaN();
    double otherSourceNegatives = std::numeric_limits<double>::quiet_NaN();
    std::int64_t pairFallbacks = 0;   ///< contrastive: negatives not drawn as intended (see PairStats)
    std::int64_t pairNoNeighbour = 0; ///< of those: adjacent draws whose anchor had no neighbour in the bank
    int steps = 0;             ///< optimisation steps of this epoch
    double dataSeconds = 0.0;     ///< spent making the epoch's batches (on the prefetch thread, if any)
    double dataWaitSeconds = 0.0; ///< of the training thread's time, spent waiting for a batch
    /// Where `seconds` went: the optimisation steps (waits for batches included) and the validation pass;
    /// the rest is saving the encoder file when the epoch improved.
    double stepSeconds = 0.0;
    double validationSeconds = 0.0;
};

struct TrainResult {
    EncoderInfo encoder;       ///< of the file at options.out
    std::string metric;        ///< "val_loss", "val_accuracy", "none"
    double bestValidation = 0.0;
    int epochsRun = 0;         ///< epochs completed in total (including resumed ones)
    std::int64_t stepsRun = 0; ///< optimisation steps in total (including resumed ones)
    bool stoppedByLearningRate = false;
    StopReason stopReason = StopReason::None; ///< lr-floor, step-cap or epoch-cap
    std::vector<EpochRecord> history;
    double saveSeconds = 0.0; ///< this run's time writing encoder files and checkpoints, all epochs together
};

/// Whether trainEncoder makes the batches of a run with these options on the prefetch thread, on this machine
/// and with the LibTorch threads configured now (TrainOptions::batchThread).
bool prefetchesBatches(const TrainOptions& options);

/// Trains an encoder. `validation` may be empty, in which case 10 % of `train` (stratified, from the
/// seed) is held out; for contrastive training on a bank of ≥ 3 known sources, whole sources are held
/// out instead (PatchBank::splitBySource), so that validation pairs have neighbours and other slides.
/// Supervised kinds need labelled banks (supervised-tumor: exactly 2 classes, label 1 = tumour;
/// supervised-tissue: ≥ 2 classes). Throws InvalidArgument (also for a BiGAN without any cap, negative
/// caps), IoError, Cancelled.
TrainResult trainEncoder(const TrainOptions& options, const PatchBank& train, const PatchBank& validation,
                         JobContext& ctx = JobContext::none());

/// The result as JSON (what `nic train-encoder --result` writes): encoder, kind, metric, best validation,
/// epochs and steps run, stop_reason, and the epoch records.
std::string trainResultJson(const TrainResult& result);

} // namespace nic

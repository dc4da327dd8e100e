#pragma once
// Resume state of a cross-validation run (slidetrainer.h, "Checkpoints and resume"; internal to core_nn,
// includes torch): the run identity, the per-epoch checkpoint of the running round (fold<r>/checkpoint.pt,
// a TrainingCheckpoint) and the record of a finished round (fold<r>/round.json). Every reader checks the
// file against the resuming run's identity and throws naming the file: IoError for unreadable files,
// FormatError for damaged ones, InvalidArgument for another run's.
#include "core/base/plateau.h"
#include "core/encoders/nn/trainingcheckpoint.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "core/slidelearning/nn/slidetrainer.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace nic {

inline constexpr const char* kRoundCheckpointFile = "checkpoint.pt"; ///< in fold<r>/, while round r runs
inline constexpr const char* kRoundRecordFile = "round.json";        ///< in fold<r>/, once round r finished

/// Schedule state of a round after `epoch` completed epochs.
struct RoundState {
    int epoch = 0;
    double lr = 0.0;
    double bestMetric = -std::numeric_limits<double>::infinity();
    double bestLoss = std::numeric_limits<double>::infinity();
    int sinceBest = 0;
    bool stopped = false; ///< plateau at the minimum learning rate: no further epochs
    std::vector<SlideEpochRecord> history;
};

/// What ended a round whose epoch loop is over: the plateau at the floor, else the epoch cap.
StopReason roundStopReason(const RoundState& state);

/// What the final aggregation needs of a finished round (its model is fold<r>/model.pt).
struct FinishedRound {
    std::vector<double> testPredictions; ///< in the order of the round's test slides
    double metric = std::numeric_limits<double>::quiet_NaN();
    std::vector<SlideEpochRecord> history;
    std::string stopReason; ///< "lr-floor" or "epoch-cap"; "" in records from before stop reasons were kept
};

/// Everything that decides a run's results besides the device and thread count. A checkpoint or round
/// record is only resumed by a run with an identical identity.
nlohmann::ordered_json runIdentity(SlideGridSource& source, const std::vector<double>& labels,
                                   const std::vector<int>& foldOf, int folds, const SlideTrainOptions& options,
                                   const SlideCnnConfig& config, int cropSize);

/// Writes round `round`'s checkpoint after an epoch: network, optimiser, the best model so far (serialised
/// bytes), schedule state, torch's generators and the batch sampler's engine. IoError on failure.
void writeRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                          const std::string& bestState, const RoundState& state, const std::mt19937_64& rng,
                          torch::Device device, int round, const nlohmann::ordered_json& identity);

/// Opens a checkpoint (tensors on `device`) and checks that it belongs to `round` of a run with `identity`.
TrainingCheckpoint openRoundCheckpoint(const std::filesystem::path& path, torch::Device device, int round,
                                       const nlohmann::ordered_json& identity, SlideGridSource& source);

/// Restores a round's network, optimiser (at the stored learning rate), best model, random state and
/// schedule from its checkpoint; `epochs` is the run's epoch cap (a state beyond it is damaged).
RoundState restoreRoundCheckpoint(const std::filesystem::path& path, SlideCnn& net, torch::optim::Adam& opt,
                                  std::string& bestState, std::mt19937_64& rng, torch::Device device, int round,
                                  const nlohmann::ordered_json& identity, SlideGridSource& source, int epochs);

/// Publishes round.json of a finished round (atomically).
void writeRoundRecord(const std::filesystem::path& path, int round, const nlohmann::ordered_json& identity,
                      const std::vector<std::string>& testIds, const std::vector<double>& testPredictions,
                      double metric, const std::vector<SlideEpochRecord>& history, StopReason stopReason);

/// Reads round.json of a finished round whose test slides are `testSlides` (indices into `source`).
FinishedRound readRoundRecord(const std::filesystem::path& path, int round, const nlohmann::ordered_json& identity,
                              SlideGridSource& source, const std::vector<std::size_t>& testSlides);

/// Removes temporaries (<final name>.tmp-XXXXXXXX) of a run's files that a killed run left in `dir`: never
/// visible under a final name, but a checkpoint's are megabytes.
void removeStaleTemporaries(const std::filesystem::path& dir);

} // namespace nic

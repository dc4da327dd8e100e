#pragma once
// Training budgets of the encoders as named presets, shared by `nic train-encoder --budget` and the Train
// encoder dialog (torch-free: the caps are plain numbers that TrainOptions takes).
//
// A budget is three caps; 0 switches a cap off, and training ends at the first of: the learning-rate floor
// (1e-5, the plateau-scheduled kinds), `steps` optimisation steps in total, `epochs` epochs of
// `stepsPerEpoch` steps (0: one pass over the bank). Presets:
//   default  20 epochs of one pass (the plateau may end it earlier);
//   paper    supplementary §7: BiGAN 200,000 iterations at its fixed learning rate (§7.3; the text says
//            "epochs", read as mini-batch iterations); VAE, contrastive and the supervised kinds until the
//            learning rate reaches 1e-5 (§7.1, 7.2, 7.5, 7.6), no epoch or step cap. The paper does not state
//            its plateau patience; ours is TrainOptions::patience (2 epochs);
//   demo     90 steps as 3 epochs of 30 (the README demo's budget).
#include <cstdint>
#include <string>
#include <vector>

namespace nic {

struct TrainingBudget {
    int epochs = 20;            ///< epoch cap; 0: none
    std::int64_t steps = 0;     ///< total step cap; 0: none
    int stepsPerEpoch = 0;      ///< 0: one pass over the training bank
    bool operator==(const TrainingBudget&) const = default;
};

/// "default", "paper", "demo".
std::vector<std::string> trainingBudgetPresets();

/// The caps of `preset` for encoder kind `kind` ("vae", "contrastive", "bigan", "supervised-tumor",
/// "supervised-tissue"). InvalidArgument names an unknown preset.
TrainingBudget trainingBudget(const std::string& preset, const std::string& kind);

/// When training ends, in words that follow "Training ends ": e.g. "when the learning rate reaches 1e-5",
/// "after at most 200000 steps", "after at most 90 steps (epochs of 30 steps), or earlier when the
/// learning rate reaches 1e-5".
/// `hasFloor`: whether the kind is plateau-scheduled (all but BiGAN).
std::string describeTrainingBudget(const TrainingBudget& budget, bool hasFloor);

/// The preset whose caps equal `budget` for `kind`, or "" (a custom budget).
std::string matchingTrainingBudget(const TrainingBudget& budget, const std::string& kind);

} // namespace nic

#pragma once
// The paper's learning-rate schedule (supp. §7–8): after `patience` epochs without a better validation
// result the learning rate is divided by 10; at such a plateau where the next rate would fall below the
// floor, training stops. One rule for the encoder trainer, the slide CNN and the eval-encoder probe.
namespace nic {

/// What ended a training run (or one cross-validation round): its word in logs and result files.
enum class StopReason {
    None,              ///< still running (no limit reached yet)
    LearningRateFloor, ///< "lr-floor": a validation plateau at the minimum learning rate
    StepCap,           ///< "step-cap": the total-steps budget is used up
    EpochCap,          ///< "epoch-cap": the maximum number of epochs is reached
    Cancelled,         ///< "cancelled": the user (or job) cancelled it
};

inline const char* toString(StopReason reason) {
    switch (reason) {
    case StopReason::LearningRateFloor:
        return "lr-floor";
    case StopReason::StepCap:
        return "step-cap";
    case StopReason::EpochCap:
        return "epoch-cap";
    case StopReason::Cancelled:
        return "cancelled";
    case StopReason::None:
        break;
    }
    return "";
}

/// What one epoch's validation outcome did to the schedule.
enum class PlateauStep {
    Continue, ///< improved, or not yet `patience` epochs without improvement
    Reduced,  ///< plateau: the learning rate was divided by 10
    Stop,     ///< plateau at the floor: no further epochs
};

/// The rule itself. Its state (the rate and the count of epochs since the last improvement) belongs to
/// the caller, so trainers keep it in their checkpoints as before.
struct PlateauSchedule {
    double minLearningRate = 1e-5;
    int patience = 4;

    /// Applies one epoch: an improvement resets `epochsWithoutImprovement`; otherwise it counts up, and at
    /// `patience` it is reset and the rate is divided by 10 (Reduced), or — when that would go below the
    /// floor — left as it is (Stop).
    PlateauStep epochEnded(bool improved, double& learningRate, int& epochsWithoutImprovement) const {
        if (improved) {
            epochsWithoutImprovement = 0;
            return PlateauStep::Continue;
        }
        if (++epochsWithoutImprovement < patience)
            return PlateauStep::Continue;
        epochsWithoutImprovement = 0;
        if (learningRate / 10.0 < minLearningRate * (1.0 - 1e-9))
            return PlateauStep::Stop;
        learningRate /= 10.0;
        return PlateauStep::Reduced;
    }
};

} // namespace nic

#include "core/encoders/trainingbudget.h"

#include "core/base/error.h"

namespace nic {

std::vector<std::string> trainingBudgetPresets() { return {"default", "paper", "demo"}; }

TrainingBudget trainingBudget(const std::string& preset, const std::string& kind) {
    if (preset == "default")
        return {};
    if (preset == "paper")
        return kind == "bigan" ? TrainingBudget{0, 200000, 0} : TrainingBudget{0, 0, 0};
    if (preset == "demo")
        return {0, 90, 30};
    throw InvalidArgument("unknown budget '" + preset + "' (default, paper or demo)");
}

std::string describeTrainingBudget(const TrainingBudget& b, bool hasFloor) {
    std::vector<std::string> caps;
    if (b.epochs > 0)
        caps.push_back(std::to_string(b.epochs) + (b.epochs == 1 ? " epoch" : " epochs") +
                       (b.stepsPerEpoch > 0 ? " of " + std::to_string(b.stepsPerEpoch) + " steps" : " of one pass"));
    if (b.steps > 0)
        caps.push_back(std::to_string(b.steps) + " steps");
    if (caps.empty())
        return hasFloor ? "when the learning rate reaches 1e-5" : "never (set an epoch or step cap)";
    std::string s = "after at most " + caps[0];
    if (caps.size() > 1)
        s += " or " + caps[1];
    if (caps.size() == 1 && b.steps > 0 && b.stepsPerEpoch > 0)
        s += " (epochs of " + std::to_string(b.stepsPerEpoch) + " steps)";
    if (hasFloor)
        s += ", or earlier when the learning rate reaches 1e-5";
    return s;
}

std::string matchingTrainingBudget(const TrainingBudget& budget, const std::string& kind) {
    for (const auto& p : trainingBudgetPresets())
        if (trainingBudget(p, kind) == budget)
            return p;
    return {};
}

} // namespace nic

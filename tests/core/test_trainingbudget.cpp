// The encoders' training budget presets (core/encoders/trainingbudget.h), shared by `nic train-encoder
// --budget` and the Train encoder dialog: the paper's numbers, the demo's, and how each is described.
#include "core/base/error.h"
#include "core/encoders/trainingbudget.h"

#include <gtest/gtest.h>

namespace nic {
namespace {

TEST(TrainingBudget, PresetsCarryThePapersAndTheDemosNumbers) {
    EXPECT_EQ(trainingBudgetPresets(), (std::vector<std::string>{"default", "paper", "demo"}));
    EXPECT_EQ(trainingBudget("default", "vae"), (TrainingBudget{20, 0, 0}));
    // Supplementary §7.3: BiGAN for 200,000 iterations at a fixed learning rate; the plateau-scheduled kinds
    // until the learning rate reaches 1e-5, with no other cap.
    EXPECT_EQ(trainingBudget("paper", "bigan"), (TrainingBudget{0, 200000, 0}));
    for (const char* kind : {"vae", "contrastive", "supervised-tumor", "supervised-tissue"})
        EXPECT_EQ(trainingBudget("paper", kind), (TrainingBudget{0, 0, 0})) << kind;
    EXPECT_EQ(trainingBudget("demo", "contrastive"), (TrainingBudget{0, 90, 30}));
    try {
        trainingBudget("huge", "vae");
        FAIL() << "an unknown preset was accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "unknown budget 'huge' (default, paper or demo)");
    }
}

TEST(TrainingBudget, DescriptionsSayWhatEndsTraining) {
    EXPECT_EQ(describeTrainingBudget(trainingBudget("default", "vae"), true),
              "after at most 20 epochs of one pass, or earlier when the learning rate reaches 1e-5");
    EXPECT_EQ(describeTrainingBudget(trainingBudget("paper", "vae"), true), "when the learning rate reaches 1e-5");
    EXPECT_EQ(describeTrainingBudget(trainingBudget("paper", "bigan"), false), "after at most 200000 steps");
    EXPECT_EQ(describeTrainingBudget(trainingBudget("demo", "bigan"), false),
              "after at most 90 steps (epochs of 30 steps)");
    EXPECT_EQ(describeTrainingBudget(TrainingBudget{3, 100, 8}, true),
              "after at most 3 epochs of 8 steps or 100 steps, or earlier when the learning rate reaches 1e-5");
    EXPECT_EQ(describeTrainingBudget(TrainingBudget{0, 0, 0}, false), "never (set an epoch or step cap)");
}

TEST(TrainingBudget, CapsAreMatchedBackToTheirPreset) {
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{0, 200000, 0}, "bigan"), "paper");
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{0, 200000, 0}, "vae"), ""); // custom for VAE
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{0, 0, 0}, "vae"), "paper");
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{20, 0, 0}, "bigan"), "default");
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{0, 90, 30}, "supervised-tissue"), "demo");
    EXPECT_EQ(matchingTrainingBudget(TrainingBudget{5, 0, 0}, "vae"), "");
}

} // namespace
} // namespace nic

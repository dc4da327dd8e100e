// NIC's unsupervised path at patch level, through the real `nic`: synth → make-bank (neighbour bank, no labels
// used) → train-encoder --kind contrastive (the paper's pairs of 4-neighbours and other slides) → eval-encoder
// (frozen encoder + MLP on a class-balanced bank, whole slides held out). It asserts what held for every
// training seed tried at its 160 steps, so that a change of float rounding or of the random stream does not decide
// the outcome. At 80 steps (its length until 2026-12-05) it had held for 23 runs (seeds 1-5 or 1-6 after each
// change of augmentation on 2026-12-04) until the fused BatchNorm → LeakyReLU (2026-12-05) changed training's
// rounding: seed 4's probe then read 0.538, under the bound, and seed 1's loss ratio 0.957, 0.013 inside it. At 160
// steps, seeds 1-6 with the fused BatchNorm:
//   - training lowers the contrastive loss: last epoch's mean against the first's 0.696-0.915;
//   - its embeddings carry tissue information a probe can use on held-out slides: probe balanced accuracy,
//     averaged over four held-out splits, 0.761-0.910 (chance 0.5; 0.538-0.847 for the same seeds at 80 steps).
// Printed, not asserted:
//   - the pair task's best held-out accuracy, 0.537-0.840 (chance 0.5): seed 1's stays near chance (0.537 at both
//     lengths; the encoder saved is the best epoch's) while its loss falls and its probe reads 0.761;
//   - Mean-RGB on the same splits (0.651-0.690 in the earlier runs): not a bound, as 8 slides cannot tell the
//     encoders apart reliably.
// Lighter augmentation than the paper's (0.3): at strength 1 the pair task stays at chance within a test's
// budget (0.48-0.51 over 4 seeds). docs/timings.md (2026-12-04 evening to 2026-12-05) has the runs.
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace nic {
namespace {

class UnsupervisedProbe : public ::testing::Test {
protected:
    void nic(const std::string& args) {
        std::string out, err;
        const std::string cmd = test::nicCommand(args);
        ASSERT_EQ(test::runCommand(cmd, &out, &err), 0) << cmd << "\n" << err;
    }
    double balancedAccuracyOf(const std::string& encoder, int seed) {
        const std::string json = "probe-" + std::to_string(seed) + ".json";
        nic("eval-encoder --encoder " + encoder + " --bank " + d("eval.nicbank") + " --epochs 8 --seed " +
            std::to_string(seed) + " --threads 2 --device cpu --quiet --json " + test::shellQuoted(dir / json));
        return nlohmann::json::parse(test::readFile(dir / json)).at("balanced_accuracy").get<double>();
    }
    std::string d(const char* sub) const { return test::shellQuoted(dir / sub); }
    test::TempDir dir;
};

TEST_F(UnsupervisedProbe, ContrastiveEncoderTrainedWithoutLabelsLowersItsLossAndFeedsAHeldOutProbe) {
    // 8 slides of 2048² px, 4 with 1–2 lesions of 300–600 µm.
    nic("synth --out " + d("synth") + " --count 8 --size 2048 --seed 11 --lesion-size 300:600 --lesions 1:2 -q --threads 2");
    const std::string cohort = d("synth/cohort.csv");
    // Training patches: anchors with their 4-neighbours; contrastive training never reads the labels.
    nic("make-bank --cohort " + cohort + " --out " + d("pairs.nicbank") + " --max-per-slide 80 --seed 1 --quiet");
    nic("train-encoder --kind contrastive --bank " + d("pairs.nicbank") + " --out " + d("contrastive.nicenc") +
        " --code-size 32 --steps 160 --steps-per-epoch 20 --batch-size 32 --augment 0.3 --seed 1 --threads 2 --device cpu" +
        " --quiet --result " + d("contrastive.json"));
    const auto result = nlohmann::json::parse(test::readFile(dir / "contrastive.json"));
    const double pairAccuracy = result.at("best_validation").get<double>();
    const auto& history = result.at("history");
    ASSERT_EQ(history.size(), 8U); // 160 steps, 20 per epoch
    const double firstLoss = history.front().at("train_loss").get<double>();
    const double lastLoss = history.back().at("train_loss").get<double>();
    // Evaluation patches: every tissue cell, class-balanced; eval-encoder holds out whole slides, a different
    // set for each seed. Averaging over splits: with 8 slides one split's score moves by ±0.1 with the split.
    nic("make-bank --cohort " + cohort + " --out " + d("eval.nicbank") + " --balance --seed 2 --quiet");
    double meanRgb = 0, contrastive = 0;
    const int splits = 4;
    for (int seed = 1; seed <= splits; ++seed) {
        meanRgb += balancedAccuracyOf("mean-rgb:128", seed) / splits;
        contrastive += balancedAccuracyOf(d("contrastive.nicenc"), seed) / splits;
    }
    std::printf("[ probe ] contrastive training loss %.3f -> %.3f; pair task validation accuracy %.3f (chance 0.5, not "
                "asserted); held-out balanced accuracy over %d splits: contrastive (no labels) %.3f, Mean-RGB %.3f (not "
                "asserted)\n",
                firstLoss, lastLoss, pairAccuracy, splits, contrastive, meanRgb);
    // Bounds beyond the worst runs at 160 steps (0.915 and 0.761); a trainer whose weights do not move keeps every
    // epoch's mean loss near the first's.
    EXPECT_LE(lastLoss, 0.97 * firstLoss);
    EXPECT_GE(contrastive, 0.55);
}

} // namespace
} // namespace nic

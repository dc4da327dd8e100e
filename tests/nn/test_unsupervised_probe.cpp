// NIC's unsupervised path at patch level, through the real `nic`: synth → make-bank (neighbour bank, no labels
// used) → train-encoder --kind contrastive (the paper's pairs of 4-neighbours and other slides) → eval-encoder
// (frozen encoder + MLP on a class-balanced bank, whole slides held out). What it asserts is what held for
// every training seed tried, not only for the fixed one:
//   - the encoder learns its own pair task: over training seeds 1-5 at 80 steps the held-out pair accuracy
//     was 0.775 / 0.795 / 0.816 / 0.582 / 0.627 (chance 0.5; at 40 steps 0.654 / 0.709 / 0.736 / 0.547);
//   - its embeddings carry tissue information a probe can use on held-out slides: probe balanced accuracy,
//     averaged over four held-out splits, 0.931 / 0.640 / 0.723 / 0.759 / 0.701 for those five encoders.
// What it does not assert: that this encoder beats Mean-RGB (0.568 / 0.766 / 0.668 / 0.757 on the same splits,
// mean 0.690). At this scale the mean was higher for four training seeds in five, and higher by the 0.05 that
// the earlier version of this test asserted (on one split, after 40 steps) for two in five: that test passed
// or failed with its seed, and any change of float rounding or of the random stream (augmentation, noise)
// could flip it (docs/timings.md, issue 16). Lighter augmentation than the paper's (0.3): at strength 1 the pair
// task stays at chance within a test's budget (0.48-0.51 over 4 seeds).
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

TEST_F(UnsupervisedProbe, ContrastiveEncoderTrainedWithoutLabelsLearnsItsPairTaskAndFeedsAHeldOutProbe) {
    // 8 slides of 2048² px, 4 with 1–2 lesions of 300–600 µm.
    nic("synth --out " + d("synth") + " --count 8 --size 2048 --seed 11 --lesion-size 300:600 --lesions 1:2 -q --threads 2");
    const std::string cohort = d("synth/cohort.csv");
    // Training patches: anchors with their 4-neighbours; contrastive training never reads the labels.
    nic("make-bank --cohort " + cohort + " --out " + d("pairs.nicbank") + " --max-per-slide 80 --seed 1 --quiet");
    nic("train-encoder --kind contrastive --bank " + d("pairs.nicbank") + " --out " + d("contrastive.nicenc") +
        " --code-size 32 --steps 80 --steps-per-epoch 20 --batch-size 32 --augment 0.3 --seed 1 --threads 2 --device cpu" +
        " --quiet --result " + d("contrastive.json"));
    const double pairAccuracy =
        nlohmann::json::parse(test::readFile(dir / "contrastive.json")).at("best_validation").get<double>();
    // Evaluation patches: every tissue cell, class-balanced; eval-encoder holds out whole slides, a different
    // set for each seed. Averaging over splits: with 8 slides one split's score moves by ±0.1 with the split.
    nic("make-bank --cohort " + cohort + " --out " + d("eval.nicbank") + " --balance --seed 2 --quiet");
    double meanRgb = 0, contrastive = 0;
    const int splits = 4;
    for (int seed = 1; seed <= splits; ++seed) {
        meanRgb += balancedAccuracyOf("mean-rgb:128", seed) / splits;
        contrastive += balancedAccuracyOf(d("contrastive.nicenc"), seed) / splits;
    }
    std::printf("[ probe ] contrastive pair task: validation accuracy %.3f (chance 0.5); held-out balanced accuracy over "
                "%d splits: contrastive (no labels) %.3f, Mean-RGB %.3f (for comparison, not asserted)\n",
                pairAccuracy, splits, contrastive, meanRgb);
    // Margins below the lowest of five training seeds (0.582 and 0.640): above chance, with room for rounding.
    EXPECT_GE(pairAccuracy, 0.55);
    EXPECT_GE(contrastive, 0.6);
}

} // namespace
} // namespace nic

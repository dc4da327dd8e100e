// NIC's unsupervised path at patch level, through the real `nic`: synth → make-bank (neighbour bank, no labels
// used) → train-encoder --kind contrastive (the paper's pairs of 4-neighbours and other slides) → eval-encoder
// (frozen encoder + MLP on a class-balanced bank, whole slides held out). It asserts what held for every
// training seed or pair of seeds tried at its 160 steps, so that a change of float rounding or of the random
// stream does not decide the outcome. One training seed is not enough for that: the same commands give other
// encoders on CPUs whose kernels round differently. Seeds 1-6, four held-out splits each:
//   - training lowers the contrastive loss: last epoch's mean against the first's 0.643-0.915;
//   - probe balanced accuracy (chance 0.5), mean over the splits: 0.761-0.910 on one VM (AVX-512, 2026-12-05),
//     0.530, 0.869, 0.871, 0.687, 0.851, 0.900 on another (AVX-512, other kernels; 2026-12-05, later): seed 1's
//     encoder there fell below one trained for a single step (0.589) while its loss fell to 0.70 of the first
//     epoch's and its pair task reached 0.703. Over seeds 1 and 2 together: 0.788 and 0.700. The test trains
//     both and asserts that mean.
// Printed, not asserted:
//   - the pair task's best held-out accuracy, 0.537-0.850 (chance 0.5);
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
    /// Balanced accuracy averaged over `splits` held-out splits (seeds 1..splits).
    double meanOverSplits(const std::string& encoder) {
        double sum = 0;
        for (int seed = 1; seed <= splits; ++seed)
            sum += balancedAccuracyOf(encoder, seed);
        return sum / splits;
    }
    static constexpr int splits = 4;
    std::string d(const char* sub) const { return test::shellQuoted(dir / sub); }
    test::TempDir dir;
};

TEST_F(UnsupervisedProbe, ContrastiveEncoderTrainedWithoutLabelsLowersItsLossAndFeedsAHeldOutProbe) {
    // 8 slides of 2048² px, 4 with 1–2 lesions of 300–600 µm.
    nic("synth --out " + d("synth") + " --count 8 --size 2048 --seed 11 --lesion-size 300:600 --lesions 1:2 -q --threads 2");
    const std::string cohort = d("synth/cohort.csv");
    // Training patches: anchors with their 4-neighbours; contrastive training never reads the labels.
    nic("make-bank --cohort " + cohort + " --out " + d("pairs.nicbank") + " --max-per-slide 80 --seed 1 --quiet");
    // Evaluation patches: every tissue cell, class-balanced; eval-encoder holds out whole slides, a different
    // set for each seed. Averaging over splits: with 8 slides one split's score moves by ±0.1 with the split.
    nic("make-bank --cohort " + cohort + " --out " + d("eval.nicbank") + " --balance --seed 2 --quiet");
    const double meanRgb = meanOverSplits("mean-rgb:128");
    double contrastive = 0; // over both training seeds and every split
    for (const int trainingSeed : {1, 2}) {
        const std::string name = "contrastive-" + std::to_string(trainingSeed);
        const std::string encoder = test::shellQuoted(dir / (name + ".nicenc"));
        nic("train-encoder --kind contrastive --bank " + d("pairs.nicbank") + " --out " + encoder +
            " --code-size 32 --steps 160 --steps-per-epoch 20 --batch-size 32 --augment 0.3 --seed " +
            std::to_string(trainingSeed) + " --threads 2 --device cpu --quiet --result " +
            test::shellQuoted(dir / (name + ".json")));
        const auto result = nlohmann::json::parse(test::readFile(dir / (name + ".json")));
        const double pairAccuracy = result.at("best_validation").get<double>();
        const auto& history = result.at("history");
        ASSERT_EQ(history.size(), 8U); // 160 steps, 20 per epoch
        const double firstLoss = history.front().at("train_loss").get<double>();
        const double lastLoss = history.back().at("train_loss").get<double>();
        const double probe = meanOverSplits(encoder);
        contrastive += probe / 2;
        std::printf("[ probe ] training seed %d: contrastive loss %.3f -> %.3f; pair task validation accuracy %.3f "
                    "(chance 0.5, not asserted); held-out balanced accuracy over %d splits %.3f\n",
                    trainingSeed, firstLoss, lastLoss, pairAccuracy, splits, probe);
        // Beyond the worst run at 160 steps (0.915); a trainer whose weights do not move keeps every epoch's mean
        // loss near the first's.
        EXPECT_LE(lastLoss, 0.97 * firstLoss) << "training seed " << trainingSeed;
    }
    std::printf("[ probe ] contrastive (no labels) over both training seeds %.3f, Mean-RGB %.3f (not asserted)\n",
                contrastive, meanRgb);
    // Below the worst pair of training seeds measured (0.70) and above an encoder after one step (0.59).
    EXPECT_GE(contrastive, 0.62);
}

} // namespace
} // namespace nic

// NIC's premise at patch level: an encoder trained WITHOUT labels (contrastive, the paper's pairs of
// 4-neighbours and other slides) describes lesion vs normal tissue better than Mean-RGB, which the synthetic
// tissue defeats on purpose (lesions differ in texture and nuclei, not in mean colour). Through the real
// `nic`: synth → make-bank (neighbour bank, no labels used) → train-encoder --kind contrastive → eval-encoder
// (frozen encoder + MLP on a class-balanced bank, test slides held out) for both encoders, fixed seeds.
// Within a test's budget (40 steps) the contrastive encoder learns its own pair task only with lighter
// augmentation than the paper's heavy default: at strength 1 its validation accuracy stayed at chance
// (0.48-0.51 over 4 seeds) and its probe score went 0.64-0.86 against Mean-RGB's 0.77, i.e. the score of an
// almost untrained network, seed by seed; at 0.3 it reached 0.65-0.66 and the probe 0.89-0.98 (2 seeds).
// So the test trains at 0.3 and also asserts that the encoder learned its task.
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
    double balancedAccuracyOf(const std::string& encoder, const char* json) {
        nic("eval-encoder --encoder " + encoder + " --bank " + d("eval.nicbank") + " --epochs 8 --seed 2 --threads 2 " +
            "--device cpu --quiet --json " + d(json));
        return nlohmann::json::parse(test::readFile(dir / json)).at("balanced_accuracy").get<double>();
    }
    std::string d(const char* sub) const { return test::shellQuoted(dir / sub); }
    test::TempDir dir;
};

TEST_F(UnsupervisedProbe, ContrastiveEncoderTrainedWithoutLabelsSeparatesLesionsBetterThanMeanRgb) {
    // 8 slides of 2048² px, 4 with 1–2 lesions of 300–600 µm.
    nic("synth --out " + d("synth") + " --count 8 --size 2048 --seed 11 --lesion-size 300:600 --lesions 1:2 -q --threads 2");
    const std::string cohort = d("synth/cohort.csv");
    // Training patches: anchors with their 4-neighbours; contrastive training never reads the labels.
    nic("make-bank --cohort " + cohort + " --out " + d("pairs.nicbank") + " --max-per-slide 80 --seed 1 --quiet");
    nic("train-encoder --kind contrastive --bank " + d("pairs.nicbank") + " --out " + d("contrastive.nicenc") +
        " --code-size 32 --steps 40 --steps-per-epoch 20 --batch-size 32 --augment 0.3 --seed 1 --threads 2 --device cpu" +
        " --quiet --result " + d("contrastive.json"));
    const double pairAccuracy =
        nlohmann::json::parse(test::readFile(dir / "contrastive.json")).at("best_validation").get<double>();
    // Evaluation patches: every tissue cell, class-balanced; eval-encoder holds out whole slides.
    nic("make-bank --cohort " + cohort + " --out " + d("eval.nicbank") + " --balance --seed 2 --quiet");
    const double meanRgb = balancedAccuracyOf("mean-rgb:128", "mean-rgb.json");
    const double contrastive = balancedAccuracyOf(d("contrastive.nicenc"), "contrastive.json");
    std::printf("[ probe ] contrastive pair task: validation accuracy %.3f (chance 0.5); held-out balanced accuracy: "
                "Mean-RGB %.3f, contrastive (no labels) %.3f\n",
                pairAccuracy, meanRgb, contrastive);
    // It learned its own task (measured 0.65), and the margin stated: at least 0.05 better than Mean-RGB and
    // clearly above chance.
    EXPECT_GE(pairAccuracy, 0.6);
    EXPECT_GE(contrastive, meanRgb + 0.05);
    EXPECT_GE(contrastive, 0.75);
}

} // namespace
} // namespace nic

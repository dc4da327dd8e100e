// The whole NIC pipeline through the real `nic` binary, small and fast: synth → make-bank →
// train-encoder → compress → train → gradcam → eval-heatmap. The scores of a cohort this small mean
// little; what is asserted is that every stage accepts what the previous one wrote and writes what the
// next one and the user rely on. The full-size run with its targets is bench/pipeline.sh.
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>

namespace nic {
namespace {

int countLines(const std::filesystem::path& p) {
    std::ifstream in(p);
    int n = 0;
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            ++n;
    return n;
}

class Pipeline : public ::testing::Test {
protected:
    // Runs `nic ARGS`; on failure the test fails with the command's stderr.
    void nic(const std::string& args) {
        std::string out, err;
        const std::string cmd = test::nicExecutable().string() + " " + args;
        const int rc = test::runCommand(cmd, &out, &err);
        ASSERT_EQ(rc, 0) << cmd << "\n" << err;
    }
    std::string d(const char* sub) const { return (dir / sub).string(); }
    test::TempDir dir;
};

TEST_F(Pipeline, EveryStageReadsWhatThePreviousOneWrote) {
    // 6 slides of 2048² px at 0.5 µm/px: 16 × 16 grids, 3 positive slides with lesions of 300–500 µm.
    nic("synth --out " + d("synth") + " --count 6 --size 2048 --seed 3 --lesion-size 300:500 --lesions 1 -q --threads 1");
    const std::string cohort = d("synth/cohort.csv");
    ASSERT_EQ(countLines(cohort), 7); // header + 6 slides

    nic("make-bank --cohort " + cohort + " --out " + d("bank.nicbank") + " --max-per-slide 24 --quiet");
    nic("train-encoder --kind supervised-tumor --bank " + d("bank.nicbank") + " --out " + d("enc.nicenc") +
        " --code-size 16 --epochs 1 --steps-per-epoch 2 --batch-size 16 --threads 1 --device cpu --quiet");
    ASSERT_TRUE(std::filesystem::exists(dir / "enc.nicenc"));

    nic("compress --cohort " + cohort + " -e " + d("enc.nicenc") + " --out " + d("grids") +
        " --augment 8 -q --device cpu --compute-threads 1");
    for (int i = 0; i < 6; ++i) {
        const auto h5 = dir / "grids" / ("synth-00" + std::to_string(i) + ".h5");
        EXPECT_TRUE(std::filesystem::exists(h5)) << h5;
    }

    nic("train --cohort " + cohort + " --grids " + d("grids") + " --out " + d("run") +
        " --folds 3 --epochs 2 --steps-per-epoch 3 --batch 4 --filters 16 --layers 4 --dense 16 --bootstrap 50"
        " --seed 1 --threads 1 --device cpu -q");
    for (const char* f : {"predictions.csv", "metrics.json", "curves.csv", "folds.csv"})
        EXPECT_TRUE(std::filesystem::exists(dir / "run" / f)) << f;
    EXPECT_EQ(countLines(dir / "run/predictions.csv"), 7); // every slide predicted once, held out
    const auto metrics = nlohmann::json::parse(nic::test::readFile(dir / "run/metrics.json"));
    ASSERT_TRUE(metrics.contains("auc")) << metrics.dump();
    const double auc = metrics["auc"]["value"].get<double>();
    EXPECT_GE(auc, 0.0);
    EXPECT_LE(auc, 1.0);

    nic("gradcam --model " + d("run") + " --out " + d("heatmaps") + " --slides " + d("synth") + " --device cpu -q " +
        d("grids") + "/*.h5");
    for (int i = 0; i < 6; ++i) {
        const std::string stem = "synth-00" + std::to_string(i);
        EXPECT_TRUE(std::filesystem::exists(dir / "heatmaps" / (stem + "_heatmap.h5"))) << stem;
        EXPECT_TRUE(std::filesystem::exists(dir / "heatmaps" / (stem + "_likelihood_map.tif"))) << stem;
        EXPECT_TRUE(std::filesystem::exists(dir / "heatmaps" / (stem + "_gradcam.png"))) << stem;
    }

    nic("eval-heatmap --cohort " + cohort + " --heatmaps " + d("heatmaps") + " --bootstrap 50 --json " +
        d("eval.json") + " > " + d("eval.txt"));
    const auto ev = nlohmann::json::parse(nic::test::readFile(dir / "eval.json"));
    ASSERT_TRUE(ev.contains("cohort")) << ev.dump();
    EXPECT_EQ(ev["cohort"]["pointing_game"]["slides"].get<int>(), 3); // the positive slides
    const double pix = ev["cohort"]["pixel_auc"]["mean"].get<double>();
    EXPECT_GE(pix, 0.0);
    EXPECT_LE(pix, 1.0);
}

TEST_F(Pipeline, TrainRefusesGridsOfAnotherCohortWithAClearMessage) {
    nic("synth --out " + d("synth") + " --count 3 --size 1024 --seed 4 -q --threads 1");
    std::filesystem::create_directory(dir / "empty");
    std::string out, err;
    const int rc = test::runCommand(test::nicExecutable().string() + " train --cohort " + d("synth/cohort.csv") +
                                        " --grids " + d("empty") + " --out " + d("run") + " -q",
                                    &out, &err);
    EXPECT_EQ(rc, 1) << err;
    EXPECT_NE(err.find("synth-000"), std::string::npos) << err; // names the slide whose grid is missing
    EXPECT_FALSE(std::filesystem::exists(dir / "run" / "metrics.json"));
}

} // namespace
} // namespace nic

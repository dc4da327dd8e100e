// metrics.json of a cross-validation reports the cohort's evaluation subsets (the paper's Test and Macro)
// beside All, each scored on the same held-out predictions as predictions.csv.
#include "core/slidelearning/evaluationsets.h"
#include "core/slidelearning/metrics.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

using namespace nic;

TEST(SlideTrainerSubsets, MetricsJsonScoresEachSubsetOnTheHeldOutPredictions) {
    const int n = 8, side = 8, channels = 3;
    std::vector<std::string> ids;
    std::vector<std::vector<SlideGrid>> grids;
    std::vector<double> labels;
    std::mt19937 rng(4);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (int i = 0; i < n; ++i) {
        SlideGrid g;
        g.channels = channels;
        g.rows = g.cols = side;
        g.tissue.assign(static_cast<std::size_t>(side * side), 1.0f);
        for (int k = 0; k < channels * side * side; ++k)
            g.data.push_back(noise(rng) + (i % 2 == 1 && k < side * side ? 2.0f : 0.0f));
        ids.push_back("s" + std::to_string(i));
        grids.push_back({g});
        labels.push_back(i % 2);
    }
    InMemoryGridSource source(ids, grids);
    SlideTrainOptions o;
    o.network.filters = 8;
    o.network.dense = 8;
    o.network.layers = 2;
    o.network.unstridedLayers = 1;
    o.epochs = 1;
    o.stepsPerEpoch = 2;
    o.seed = 2;
    o.bootstrapResamples = 50;
    o.device = "cpu";
    o.threads = 1;
    o.subsets = {EvaluationSubset{"test", {1, 2, 5, 6}, {1, 0, 1, 0}}, EvaluationSubset{"macro", {1, 2, 5, 6}, {1, 0, 0, 0}}};
    test::TempDir dir;
    std::vector<std::string> logs;
    JobContext ctx({}, [&](const std::string& line) { logs.push_back(line); });
    const auto r = crossValidate(source, labels, {}, o, dir.path(), ctx);
    ASSERT_EQ(r.predictions.size(), 8U);
    ASSERT_EQ(r.subsetScores.size(), 2U);
    const auto j = nlohmann::json::parse(test::readFile(dir / "metrics.json"));
    ASSERT_TRUE(j.contains("subsets")) << j.dump(2);
    ASSERT_EQ(j["subsets"].size(), 2U);
    for (std::size_t s = 0; s < 2; ++s) {
        std::vector<double> pred;
        for (std::size_t i : o.subsets[s].slides)
            pred.push_back(r.predictions[i].prediction);
        const double expected = rocAuc(pred, o.subsets[s].labels);
        EXPECT_EQ(j["subsets"][s]["name"], o.subsets[s].name);
        EXPECT_EQ(j["subsets"][s]["slides"], 4);
        EXPECT_DOUBLE_EQ(j["subsets"][s]["auc"]["value"].get<double>(), expected) << j.dump(2);
        EXPECT_DOUBLE_EQ(r.subsetScores[s].value.estimate, expected);
    }
    EXPECT_EQ(j["subsets"][1]["positives"], 1);
    EXPECT_EQ(j["subsets"][1]["negatives"], 3);
    // One stored orientation per grid: the log says training uses fewer than the paper's 8.
    bool warned = false;
    for (const auto& l : logs)
        warned = warned || l.rfind("warning: 8 of 8 compressed slides store fewer than the paper's 8 orientations (s0 has 1)", 0) == 0;
    EXPECT_TRUE(warned);
}

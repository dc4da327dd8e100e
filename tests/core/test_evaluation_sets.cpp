// The paper's evaluation sets (§4.4): "All" is every held-out prediction; the cohort's `set` column names
// subsets such as the official "test" slides, and its `macro` column gives "macro", the test slides with
// only macro-metastases counted as positive.
#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/slidelearning/evaluationsets.h"
#include "core/slidelearning/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace nic;

namespace {

const char* kCohort = "slide,label,set,macro\n"
                      "a.svs,1,train,1\n"
                      "b.svs,0,test,0\n"
                      "c.svs,1,test,1\n"
                      "d.svs,1,test,0\n"
                      "e.svs,0,train,\n"
                      "f.svs,0,test,\n"
                      "g.svs,1,,1\n";

} // namespace

TEST(EvaluationSets, SetColumnNamesSubsetsAndMacroKeepsOnlyMacroPositivesOfTheTestSet) {
    const Cohort c = parseCohort(kCohort, "c.csv", ".");
    const auto subsets = evaluationSubsets(c);
    ASSERT_EQ(subsets.size(), 3U);
    EXPECT_EQ(subsets[0].name, "train");
    EXPECT_EQ(subsets[0].slides, (std::vector<std::size_t>{0, 4}));
    EXPECT_EQ(subsets[0].labels, (std::vector<double>{1, 0}));
    EXPECT_EQ(subsets[1].name, "test");
    EXPECT_EQ(subsets[1].slides, (std::vector<std::size_t>{1, 2, 3, 5}));
    EXPECT_EQ(subsets[1].labels, (std::vector<double>{0, 1, 1, 0}));
    // Macro: the test slides, d (a positive without a macro-metastasis) counted as negative.
    EXPECT_EQ(subsets[2].name, "macro");
    EXPECT_EQ(subsets[2].slides, (std::vector<std::size_t>{1, 2, 3, 5}));
    EXPECT_EQ(subsets[2].labels, (std::vector<double>{0, 1, 0, 0}));
}

TEST(EvaluationSets, WithoutATestSetMacroCoversEverySlideAndPlainCohortsHaveNone) {
    const Cohort c = parseCohort("slide,label,macro\na.svs,1,1\nb.svs,1,0\nc.svs,0,0\n", "c.csv", ".");
    const auto subsets = evaluationSubsets(c);
    ASSERT_EQ(subsets.size(), 1U);
    EXPECT_EQ(subsets[0].slides, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(subsets[0].labels, (std::vector<double>{1, 0, 0}));
    EXPECT_TRUE(evaluationSubsets(parseCohort("slide,label\na.svs,1\nb.svs,0\n", "c.csv", ".")).empty());
}

TEST(EvaluationSets, BadMacroValuesNameTheFileAndLine) {
    try {
        evaluationSubsets(parseCohort("slide,label,macro\na.svs,1,yes\n", "c.csv", "."));
        FAIL() << "no exception";
    } catch (const FormatError& e) {
        EXPECT_STREQ(e.what(), "c.csv:2: macro 'yes' of slide a.svs is not 0 or 1");
    }
    try {
        evaluationSubsets(parseCohort("slide,label,macro\na.svs,1,1\nb.svs,0,1\n", "c.csv", "."));
        FAIL() << "no exception";
    } catch (const FormatError& e) {
        EXPECT_STREQ(e.what(), "c.csv:3: slide b.svs has macro = 1 but label 0 (a macro-metastasis makes the slide positive)");
    }
}

TEST(EvaluationSets, ScoresAreTheMetricOnTheSubsetsPredictions) {
    const Cohort c = parseCohort(kCohort, "c.csv", ".");
    const auto subsets = evaluationSubsets(c);
    //                                   a    b    c    d    e    f    g
    const std::vector<double> pred = {0.9, 0.4, 0.8, 0.3, 0.2, 0.1, 0.7};
    const auto scores = scoreSubsets(subsets, pred, true, 100, 3);
    ASSERT_EQ(scores.size(), 3U);
    EXPECT_EQ(scores[0].name, "train");
    EXPECT_DOUBLE_EQ(scores[0].value.estimate, 1.0);
    // test: positives c (0.8), d (0.3); negatives b (0.4), f (0.1): 3 of 4 pairs ordered.
    EXPECT_EQ(scores[1].positives, 2U);
    EXPECT_EQ(scores[1].negatives, 2U);
    EXPECT_DOUBLE_EQ(scores[1].value.estimate, 0.75);
    EXPECT_DOUBLE_EQ(scores[1].value.estimate, rocAuc({0.4, 0.8, 0.3, 0.1}, {0, 1, 1, 0}));
    // macro: only c is positive and it outranks b, d, f.
    EXPECT_EQ(scores[2].positives, 1U);
    EXPECT_EQ(scores[2].negatives, 3U);
    EXPECT_DOUBLE_EQ(scores[2].value.estimate, 1.0);
    // One class only: undefined, not a number made up.
    const auto one = scoreSubsets({EvaluationSubset{"pos", {0, 2}, {1, 1}}}, pred, true, 100, 3);
    EXPECT_TRUE(std::isnan(one[0].value.estimate));
    EXPECT_THROW(scoreSubsets({EvaluationSubset{"x", {7}, {1}}}, pred, true, 100, 3), InvalidArgument);
}

// ROC AUC, correlations and bootstrap CIs against hand-computed values.
#include "core/base/error.h"
#include "core/slidelearning/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace nic;

TEST(Metrics, AucAndRocPointsByHand) {
    // sklearn.metrics.roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75
    const auto roc = rocCurve({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1});
    EXPECT_DOUBLE_EQ(roc.auc, 0.75);
    ASSERT_EQ(roc.points.size(), 5U);
    const double expected[5][3] = {{0, 0, INFINITY}, {0, 0.5, 0.8}, {0.5, 0.5, 0.4}, {0.5, 1, 0.35}, {1, 1, 0.1}};
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_DOUBLE_EQ(roc.points[i].fpr, expected[i][0]) << i;
        EXPECT_DOUBLE_EQ(roc.points[i].tpr, expected[i][1]) << i;
        EXPECT_EQ(roc.points[i].threshold, expected[i][2]) << i;
    }
    EXPECT_EQ(roc.positives, 2U);
    EXPECT_EQ(roc.negatives, 2U);
}

TEST(Metrics, AucTiesCountHalf) {
    // Pairs (pos, neg): (2 vs 1) 1, (2 vs 2) ½, (3 vs 1) 1, (3 vs 2) 1 → 3.5 / 4.
    EXPECT_DOUBLE_EQ(rocAuc({1, 2, 2, 3}, {0, 0, 1, 1}), 0.875);
    EXPECT_DOUBLE_EQ(rocAuc({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}), 0.5);
    EXPECT_DOUBLE_EQ(rocAuc({3, 2, 1}, {1, 0, 0}), 1.0);
    EXPECT_DOUBLE_EQ(rocAuc({3, 2, 1}, {0, 1, 1}), 0.0);
}

TEST(Metrics, AucMatchesMannWhitneyOnRandomData) {
    std::mt19937_64 rng(7);
    std::vector<double> s(300);
    std::vector<double> l(300);
    for (std::size_t i = 0; i < s.size(); ++i) {
        l[i] = static_cast<double>(rng() % 2);
        s[i] = static_cast<double>(rng() % 20) + l[i] * 3.0; // many ties
    }
    double u = 0.0;
    double np = 0.0;
    double nn = 0.0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (l[i] > 0.5) {
            np += 1;
            for (std::size_t j = 0; j < s.size(); ++j)
                if (l[j] < 0.5)
                    u += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
        } else {
            nn += 1;
        }
    }
    EXPECT_NEAR(rocAuc(s, l), u / (np * nn), 1e-12);
}

TEST(Metrics, UndefinedAndInvalidInputs) {
    EXPECT_TRUE(std::isnan(rocAuc({1, 2, 3}, {1, 1, 1})));
    EXPECT_TRUE(rocCurve({1, 2}, {0, 0}).points.empty());
    EXPECT_THROW(rocAuc({1, 2}, {0}), InvalidArgument);
    EXPECT_THROW(rocAuc({NAN, 2}, {0, 1}), InvalidArgument);
    EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
    EXPECT_TRUE(std::isnan(spearman({1}, {2})));
    EXPECT_THROW(spearman({1, 2}, {1, 2, 3}), InvalidArgument);
}

TEST(Metrics, RanksAndSpearmanByHand) {
    const auto r = averageRanks({5, 6, 7, 8, 7});
    const std::vector<double> expected{1, 2, 3.5, 5, 3.5};
    EXPECT_EQ(r, expected);
    // scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]).correlation == 8 / sqrt(95)
    EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8.0 / std::sqrt(95.0), 1e-12);
    EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 100, 1000, 10000}), 1.0, 1e-12); // monotone, not linear
    EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
}

TEST(Metrics, PearsonByHand) {
    // x = (1,2,3), y = (2,4,7): Sxy = 5, Sxx = 2, Syy = 114/9.
    EXPECT_NEAR(pearson({1, 2, 3}, {2, 4, 7}), 5.0 / std::sqrt(2.0 * 114.0 / 9.0), 1e-12);
    EXPECT_NEAR(pearson({1, 2, 3}, {3, 5, 7}), 1.0, 1e-12);
}

TEST(Metrics, BootstrapIsSeededAndBracketsTheEstimate) {
    std::mt19937_64 rng(3);
    std::vector<double> s(80);
    std::vector<double> l(80);
    for (std::size_t i = 0; i < s.size(); ++i) {
        l[i] = i % 2 ? 1.0 : 0.0;
        s[i] = uniformUnit(rng) + 0.6 * l[i];
    }
    const auto a = bootstrapAuc(s, l, 500, 42);
    const auto b = bootstrapAuc(s, l, 500, 42);
    const auto c = bootstrapAuc(s, l, 500, 43);
    EXPECT_EQ(a.lower, b.lower);
    EXPECT_EQ(a.upper, b.upper);
    EXPECT_NE(a.lower, c.lower);
    EXPECT_DOUBLE_EQ(a.estimate, rocAuc(s, l));
    EXPECT_LT(a.lower, a.estimate);
    EXPECT_GT(a.upper, a.estimate);
    EXPECT_GT(a.lower, 0.5);
    EXPECT_LE(a.upper, 1.0);
    EXPECT_EQ(a.resamples, 500);
    EXPECT_EQ(a.validResamples, 500);
}

TEST(Metrics, BootstrapOfTheMeanMatchesTheNormalApproximation) {
    // For n = 400 draws of U(0,1) the 95% CI of the mean is about ±1.96·sqrt(1/12/400) = ±0.0283.
    std::mt19937_64 rng(11);
    std::vector<double> v(400);
    for (auto& x : v)
        x = uniformUnit(rng);
    const auto ci = bootstrapCi(
        [&](const std::vector<std::size_t>& idx) {
            double s = 0;
            for (auto i : idx)
                s += v[i];
            return s / static_cast<double>(idx.size());
        },
        v.size(), 2000, 5);
    EXPECT_NEAR(ci.upper - ci.lower, 2 * 0.0283, 0.008);
}

TEST(Metrics, BootstrapSkipsUndefinedResamples) {
    // With one positive among 10, about 35% of resamples miss it and have no AUC.
    const auto ci = bootstrapAuc({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 1000, 1);
    EXPECT_LT(ci.validResamples, 1000);
    EXPECT_GT(ci.validResamples, 500);
    EXPECT_DOUBLE_EQ(ci.estimate, 1.0);
    EXPECT_THROW(bootstrapCi([](const auto&) { return 0.0; }, 0), InvalidArgument);
    EXPECT_THROW(bootstrapCi([](const auto&) { return 0.0; }, 3, 10, 0, 1.5), InvalidArgument);
}

TEST(Metrics, UniformIndexIsUnbiasedEnough) {
    std::mt19937_64 rng(1);
    std::vector<int> counts(7, 0);
    for (int i = 0; i < 70000; ++i)
        ++counts[uniformIndex(rng, 7)];
    for (int c : counts)
        EXPECT_NEAR(c, 10000, 400);
}

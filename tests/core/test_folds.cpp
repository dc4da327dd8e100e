// Cross-validation partitions and their rotation (paper §4.4: 2 train / 1 validation / 1 test).
#include "core/base/error.h"
#include "core/slidelearning/folds.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace nic;

TEST(Folds, BalancedAndStratifiedAssignment) {
    std::vector<int> labels(42);
    for (std::size_t i = 0; i < labels.size(); ++i)
        labels[i] = i < 18 ? 1 : 0; // 18 positives, 24 negatives
    const auto folds = assignFolds(labels.size(), 4, 9, labels);
    std::vector<int> size(4, 0);
    std::vector<int> pos(4, 0);
    for (std::size_t i = 0; i < folds.size(); ++i) {
        ASSERT_GE(folds[i], 0);
        ASSERT_LT(folds[i], 4);
        ++size[static_cast<std::size_t>(folds[i])];
        pos[static_cast<std::size_t>(folds[i])] += labels[i];
    }
    EXPECT_LE(*std::max_element(size.begin(), size.end()) - *std::min_element(size.begin(), size.end()), 1);
    EXPECT_LE(*std::max_element(pos.begin(), pos.end()) - *std::min_element(pos.begin(), pos.end()), 1);
    EXPECT_EQ(folds, assignFolds(labels.size(), 4, 9, labels)); // deterministic
    EXPECT_NE(folds, assignFolds(labels.size(), 4, 10, labels));
}

TEST(Folds, RotationTestsEverySlideOnce) {
    const auto folds = assignFolds(20, 4, 1);
    const auto rounds = rotateFolds(folds, 4);
    ASSERT_EQ(rounds.size(), 4U);
    std::vector<int> tested(20, 0);
    std::vector<int> validated(20, 0);
    std::vector<int> trained(20, 0);
    for (const auto& r : rounds) {
        EXPECT_EQ(r.validationFold, (r.round + 1) % 4);
        EXPECT_EQ(r.test.size(), 5U);
        EXPECT_EQ(r.validation.size(), 5U);
        EXPECT_EQ(r.train.size(), 10U); // two partitions
        std::set<std::size_t> all;
        for (auto i : r.test) {
            EXPECT_EQ(folds[i], r.round);
            ++tested[i];
            all.insert(i);
        }
        for (auto i : r.validation) {
            EXPECT_EQ(folds[i], r.validationFold);
            ++validated[i];
            all.insert(i);
        }
        for (auto i : r.train) {
            EXPECT_NE(folds[i], r.round);
            EXPECT_NE(folds[i], r.validationFold);
            ++trained[i];
            all.insert(i);
        }
        EXPECT_EQ(all.size(), 20U); // disjoint and complete
    }
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(tested[static_cast<std::size_t>(i)], 1);
        EXPECT_EQ(validated[static_cast<std::size_t>(i)], 1);
        EXPECT_EQ(trained[static_cast<std::size_t>(i)], 2);
    }
}

TEST(Folds, FoldColumnAndGeneralK) {
    const std::vector<int> column{3, 1, 2, 3, 1, 2, 7};
    const std::vector<int> expected{2, 0, 1, 2, 0, 1, 3};
    EXPECT_EQ(foldsFromColumn(column), expected);
    const auto rounds = rotateFolds(expected, 4);
    EXPECT_EQ(rounds[3].test, (std::vector<std::size_t>{6}));
    EXPECT_EQ(rounds[3].validation, (std::vector<std::size_t>{1, 4}));
    const auto five = rotateFolds(assignFolds(10, 5, 0), 5);
    for (const auto& r : five)
        EXPECT_EQ(r.train.size(), 6U); // k − 2 = 3 partitions of 2
}

TEST(Folds, Errors) {
    EXPECT_THROW(assignFolds(10, 2, 0), InvalidArgument);
    EXPECT_THROW(assignFolds(3, 4, 0), InvalidArgument);
    EXPECT_THROW(assignFolds(10, 4, 0, {1, 2}), InvalidArgument);
    EXPECT_THROW(foldsFromColumn({1, 1, 2}), InvalidArgument);
    EXPECT_THROW(rotateFolds({0, 1, 1}, 3), InvalidArgument); // fold 2 empty
    EXPECT_THROW(rotateFolds({0, 1, 5}, 3), InvalidArgument);
}

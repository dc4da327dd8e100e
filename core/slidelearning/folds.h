#pragma once
// Cross-validation folds for slide-level models (paper §4.4): the cohort is split into k partitions and
// k rounds are run; in round r partition r is the test set, partition (r+1) mod k the validation set and
// the remaining k−2 partitions the training set (k = 4 gives the paper's 2 train / 1 validation / 1 test).
// Every slide is tested exactly once, by a model that never saw it, so the concatenated test sets form
// the "All" evaluation set. Plain C++; pure functions, thread-safe.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nic {

/// The slides (indices into the cohort) of one cross-validation round.
struct FoldRound {
    int round = 0;        ///< 0-based; also the index of the test partition
    int validationFold = 0;
    std::vector<std::size_t> train;
    std::vector<std::size_t> validation;
    std::vector<std::size_t> test;
};

/// Assigns each of n items a partition in [0, k): a seeded shuffle, then round-robin, so partitions
/// differ in size by at most one. When `strata` is non-empty (one class id per item, e.g. the binary
/// label) each stratum is dealt round-robin separately, continuing where the previous one stopped, so
/// every partition gets its share of each class. Deterministic under `seed` (portable, see metrics.h).
/// Throws InvalidArgument when k < 3 (a round needs train, validation and test), k > n, or strata has
/// the wrong size.
std::vector<int> assignFolds(std::size_t n, int k, std::uint64_t seed, const std::vector<int>& strata = {});

/// Partition ids from a user-given fold column (any integers, e.g. 1..4): distinct values in ascending
/// order become 0..k−1. Throws InvalidArgument when fewer than 3 distinct values occur.
std::vector<int> foldsFromColumn(const std::vector<int>& column);

/// The k rounds for partition ids in [0, k) (see the file comment). Throws InvalidArgument when k < 3,
/// an id is outside [0, k), or a partition is empty.
std::vector<FoldRound> rotateFolds(const std::vector<int>& foldOf, int k);

} // namespace nic

#include "core/slidelearning/folds.h"

#include "core/base/error.h"
#include "core/slidelearning/metrics.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>

namespace nic {

std::vector<int> assignFolds(std::size_t n, int k, std::uint64_t seed, const std::vector<int>& strata) {
    if (k < 3)
        throw InvalidArgument("cross-validation needs at least 3 folds (train, validation, test), got " +
                              std::to_string(k));
    if (static_cast<std::size_t>(k) > n)
        throw InvalidArgument("cannot split " + std::to_string(n) + " slides into " + std::to_string(k) + " folds");
    if (!strata.empty() && strata.size() != n)
        throw InvalidArgument("fold assignment: " + std::to_string(strata.size()) + " strata for " +
                              std::to_string(n) + " slides");
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    // Fisher–Yates with the portable index helper (std::shuffle's output depends on the library).
    std::mt19937_64 rng(seed);
    for (std::size_t i = n; i > 1; --i)
        std::swap(order[i - 1], order[static_cast<std::size_t>(uniformIndex(rng, i))]);
    if (!strata.empty())
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return strata[a] < strata[b]; });
    std::vector<int> fold(n);
    for (std::size_t i = 0; i < n; ++i)
        fold[order[i]] = static_cast<int>(i % static_cast<std::size_t>(k));
    return fold;
}

std::vector<int> foldsFromColumn(const std::vector<int>& column) {
    const std::set<int> distinct(column.begin(), column.end());
    if (distinct.size() < 3)
        throw InvalidArgument("the fold column has " + std::to_string(distinct.size()) +
                              " distinct values; cross-validation needs at least 3");
    std::map<int, int> index;
    for (int v : distinct)
        index.emplace(v, static_cast<int>(index.size()));
    std::vector<int> out;
    out.reserve(column.size());
    for (int v : column)
        out.push_back(index.at(v));
    return out;
}

std::vector<FoldRound> rotateFolds(const std::vector<int>& foldOf, int k) {
    if (k < 3)
        throw InvalidArgument("cross-validation needs at least 3 folds (train, validation, test), got " +
                              std::to_string(k));
    std::vector<std::vector<std::size_t>> parts(static_cast<std::size_t>(k));
    for (std::size_t i = 0; i < foldOf.size(); ++i) {
        if (foldOf[i] < 0 || foldOf[i] >= k)
            throw InvalidArgument("fold id " + std::to_string(foldOf[i]) + " of slide " + std::to_string(i) +
                                  " is outside [0, " + std::to_string(k) + ")");
        parts[static_cast<std::size_t>(foldOf[i])].push_back(i);
    }
    for (int f = 0; f < k; ++f)
        if (parts[static_cast<std::size_t>(f)].empty())
            throw InvalidArgument("fold " + std::to_string(f) + " is empty");
    std::vector<FoldRound> rounds;
    for (int r = 0; r < k; ++r) {
        FoldRound round;
        round.round = r;
        round.validationFold = (r + 1) % k;
        round.test = parts[static_cast<std::size_t>(r)];
        round.validation = parts[static_cast<std::size_t>(round.validationFold)];
        for (int f = 0; f < k; ++f)
            if (f != r && f != round.validationFold)
                round.train.insert(round.train.end(), parts[static_cast<std::size_t>(f)].begin(),
                                   parts[static_cast<std::size_t>(f)].end());
        std::sort(round.train.begin(), round.train.end());
        rounds.push_back(std::move(round));
    }
    return rounds;
}

} // namespace nic

#include "core/encoders/nn/pairsampler.h"

#include "core/base/error.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

namespace nic {

double PairStats::adjacentFraction() const {
    return negatives() ? static_cast<double>(adjacent) / static_cast<double>(negatives())
                       : std::numeric_limits<double>::quiet_NaN();
}

double PairStats::otherSourceFraction() const {
    return negatives() ? static_cast<double>(otherSource) / static_cast<double>(negatives())
                       : std::numeric_limits<double>::quiet_NaN();
}

PairSampler::PairSampler(const PatchBank& bank, double adjacentShare) : bank_(bank), adjacentShare_(adjacentShare) {
    if (!(adjacentShare >= 0.0 && adjacentShare <= 1.0))
        throw InvalidArgument("contrastive pairs: the adjacent share must be in [0, 1]");
    const std::size_t n = bank.size();
    std::map<std::tuple<int, int, int>, std::size_t> cells;
    for (std::size_t i = 0; i < n; ++i)
        if (bank.source(i) >= 0 && bank.col(i) >= 0 && bank.row(i) >= 0)
            cells.emplace(std::make_tuple(bank.source(i), bank.col(i), bank.row(i)), i);
    neighbours_.assign(n, {kNone, kNone, kNone, kNone});
    for (std::size_t i = 0; i < n; ++i) {
        const int s = bank.source(i), c = bank.col(i), r = bank.row(i);
        if (s < 0 || c < 0 || r < 0)
            continue;
        const std::pair<int, int> steps[4] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
        std::size_t k = 0;
        for (auto [dc, dr] : steps) {
            auto it = cells.find(std::make_tuple(s, c + dc, r + dr));
            if (it != cells.end())
                neighbours_[i][k++] = it->second;
        }
    }
    // Patches grouped by source key (source + 1, so that unknown sources form group 0).
    std::size_t keys = 1;
    for (std::size_t i = 0; i < n; ++i)
        keys = std::max(keys, static_cast<std::size_t>(std::max(bank.source(i), -1) + 2));
    sourceCount_.assign(keys, 0);
    for (std::size_t i = 0; i < n; ++i)
        ++sourceCount_[static_cast<std::size_t>(std::max(bank.source(i), -1) + 1)];
    sourceBegin_.assign(keys, 0);
    for (std::size_t k = 1; k < keys; ++k)
        sourceBegin_[k] = sourceBegin_[k - 1] + sourceCount_[k - 1];
    bySource_.resize(n);
    std::vector<std::size_t> fill = sourceBegin_;
    for (std::size_t i = 0; i < n; ++i)
        bySource_[fill[static_cast<std::size_t>(std::max(bank.source(i), -1) + 1)]++] = i;
}

std::vector<std::size_t> PairSampler::neighbours(std::size_t i) const {
    std::vector<std::size_t> out;
    for (auto j : neighbours_.at(i))
        if (j != kNone)
            out.push_back(j);
    return out;
}

std::size_t PairSampler::anyOther(std::size_t i, std::mt19937_64& rng) const {
    if (bank_.size() < 2)
        return i;
    // Uniform over the other n − 1 patches.
    std::size_t j = std::uniform_int_distribution<std::size_t>(0, bank_.size() - 2)(rng);
    return j >= i ? j + 1 : j;
}

std::size_t PairSampler::otherSource(std::size_t i, std::mt19937_64& rng) {
    const int s = bank_.source(i);
    const std::size_t key = static_cast<std::size_t>(std::max(s, -1) + 1);
    const std::size_t others = bank_.size() - sourceCount_[key] - (key == 0 ? 0 : sourceCount_[0]);
    if (s < 0 || others == 0) {
        ++stats_.noOtherSource;
        const std::size_t j = anyOther(i, rng);
        ++(bank_.source(j) == s || bank_.source(j) < 0 ? stats_.sameSource : stats_.otherSource);
        return j;
    }
    // Uniform over the patches of known sources other than s: skip group 0 (unknown) and group `key`.
    std::size_t r = std::uniform_int_distribution<std::size_t>(0, others - 1)(rng) + sourceCount_[0];
    if (r >= sourceBegin_[key])
        r += sourceCount_[key];
    ++stats_.otherSource;
    return bySource_[r];
}

void PairSampler::sample(const std::vector<std::size_t>& anchors, std::mt19937_64& rng, std::vector<std::size_t>& a,
                         std::vector<std::size_t>& b, std::vector<float>& y) {
    a.clear();
    b.clear();
    y.clear();
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (std::size_t k = 0; k < anchors.size(); ++k) {
        const std::size_t i = anchors[k];
        a.push_back(i);
        if (k % 2 == 0) {
            b.push_back(i);
            y.push_back(1.0f);
            ++stats_.same;
            continue;
        }
        y.push_back(0.0f);
        if (u(rng) < adjacentShare_) {
            const auto& nb = neighbours_[i];
            const auto count = static_cast<std::size_t>(std::count_if(nb.begin(), nb.end(), [](std::size_t j) { return j != kNone; }));
            if (count > 0) {
                b.push_back(nb[std::uniform_int_distribution<std::size_t>(0, count - 1)(rng)]);
                ++stats_.adjacent;
                continue;
            }
            ++stats_.noNeighbour;
        }
        b.push_back(otherSource(i, rng));
    }
}

} // namespace nic

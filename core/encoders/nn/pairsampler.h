#pragma once
// Pairs for contrastive training (paper §2.2, supplementary §7.2; no LibTorch in this header).
#include "core/encoders/nn/patchbank.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace nic {

/// What a PairSampler drew since the last reset(). A "fallback" is a negative that could not be
/// drawn as intended: no 4-neighbour of the anchor in the bank (it is then drawn from another
/// source), or no other source in the bank (it is then any other patch of the same source).
struct PairStats {
    std::size_t same = 0;               ///< positives: two views of one patch
    std::size_t adjacent = 0;           ///< negatives from a 4-neighbour cell of the anchor's slide
    std::size_t otherSource = 0;        ///< negatives from another slide/folder
    std::size_t sameSource = 0;         ///< negatives from the anchor's source that are not its neighbours
    std::size_t noNeighbour = 0;        ///< adjacent draws that fell back (anchor has no neighbour in the bank)
    std::size_t noOtherSource = 0;      ///< other-source draws that fell back (bank has one source)

    std::size_t negatives() const { return adjacent + otherSource + sameSource; }
    std::size_t fallbacks() const { return noNeighbour + noOtherSource; }
    /// Realised share of negatives that are adjacent (NaN without negatives).
    double adjacentFraction() const;
    double otherSourceFraction() const;
};

/// Draws the pairs of the contrastive task from a bank: for anchors at even positions k the pair is
/// (anchor, anchor) with y = 1 ("same"); at odd positions it is a "different" pair (y = 0) whose second
/// patch is, with probability `adjacentShare` (the paper: 0.75), a 4-neighbour of the anchor's grid cell
/// on the same slide (the bank's patches are grid cells, so with stride ≥ P neighbours do not overlap),
/// and otherwise a patch of another source. Banks from `make-bank --slides/--cohort` keep each sampled
/// cell's in-tissue neighbours (patchBankFromSlides), so misses are rare; every miss is counted in
/// stats(). The bank must outlive the sampler. Not thread-safe.
class PairSampler {
public:
    explicit PairSampler(const PatchBank& bank, double adjacentShare = 0.75);

    /// Fills (a[k], b[k], y[k]) for every anchor, adding what was drawn to stats().
    void sample(const std::vector<std::size_t>& anchors, std::mt19937_64& rng, std::vector<std::size_t>& a,
                std::vector<std::size_t>& b, std::vector<float>& y);

    const PairStats& stats() const { return stats_; }
    void resetStats() { stats_ = {}; }
    /// In-bank 4-neighbours of patch i (same source, cells (c±1, r), (c, r±1)).
    std::vector<std::size_t> neighbours(std::size_t i) const;

private:
    std::size_t otherSource(std::size_t i, std::mt19937_64& rng);
    std::size_t anyOther(std::size_t i, std::mt19937_64& rng) const;

    const PatchBank& bank_;
    double adjacentShare_;
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::vector<std::array<std::size_t, 4>> neighbours_; ///< kNone where absent
    std::vector<std::size_t> bySource_;                  ///< patch indices ordered by source
    std::vector<std::size_t> sourceBegin_, sourceCount_; ///< per source key (source + 1; key 0 = unknown)
    PairStats stats_;
};

} // namespace nic

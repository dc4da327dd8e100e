#include "ui/tilescheduler.h"

#include <utility>

namespace nic {

TileScheduler::TileScheduler(std::size_t cacheBytes, Evictor evictor)
    : cache_(cacheBytes, [ev = std::move(evictor)](const TileKey& key, Handle& handle) {
          if (ev)
              ev(key, handle);
      }) {}

void TileScheduler::reset(const Pyramid& pyramid) {
    cache_.clear();
    pyramid_ = pyramid;
    pinCoarsest_ = false;
    if (!pyramid_.levels.empty()) {
        const int c = pyramid_.coarsestLevel();
        pinCoarsest_ = pyramid_.tilesX(c) * pyramid_.tilesY(c) <= kMaxPinnedTiles;
    }
}

TileRequestPlan TileScheduler::plan(const Viewport& view, const std::optional<Viewport>& figure,
                                    const TileKeySet& waiting) const {
    TileRequestPlan out;
    if (pyramid_.levels.empty())
        return out;
    auto want = [&](const TileKey& k) {
        if (cache_.contains(k) || waiting.count(k) != 0)
            return false;
        out.wanted.push_back(k);
        return true;
    };
    if (figure)
        for (const auto& k : visibleTiles(pyramid_, *figure, figureLevel(*figure)))
            want(k);
    if (view.width <= 0)
        return out;
    const int c = pyramid_.coarsestLevel();
    if (pinCoarsest_)
        for (std::int64_t y = 0; y < pyramid_.tilesY(c); ++y)
            for (std::int64_t x = 0; x < pyramid_.tilesX(c); ++x)
                want({c, x, y});
    const int level = levelForZoom(pyramid_, view.zoom);
    bool viewMissing = false; // a tile of the view is neither resident nor waiting
    for (const auto& k : visibleTiles(pyramid_, view, level))
        viewMissing = want(k) || viewMissing;
    // Prefetching starts only once every tile of the view is decoded: on a small machine, decoding the
    // ring while the view still waits (or while the frames that complete it are drawn) takes the CPU the
    // view needs, and after a jump the view's own tiles are all that matter (measured by bench/viewer).
    out.prefetchHeldBack = viewMissing;
    if (!viewMissing)
        for (const auto& k : prefetchTiles(pyramid_, view, level))
            want(k);
    return out;
}

int TileScheduler::figureLevel(const Viewport& vp) const {
    const std::size_t budget = cache_.capacity() / 2;
    int level = levelForZoom(pyramid_, vp.zoom);
    while (level < pyramid_.coarsestLevel() &&
           visibleTiles(pyramid_, vp, level).size() * static_cast<std::size_t>(pyramid_.tileSize * pyramid_.tileSize) * 4 >
               budget)
        ++level;
    return level;
}

bool TileScheduler::tilesAtHand(const Viewport& vp, int level, const TileKeySet& waiting) const {
    for (const auto& k : visibleTiles(pyramid_, vp, level))
        if (!cache_.contains(k) && waiting.count(k) == 0)
            return false;
    return true;
}

bool TileScheduler::isFullyResident(const Viewport& vp) const {
    if (pyramid_.levels.empty() || vp.width <= 0)
        return false;
    for (const auto& k : visibleTiles(pyramid_, vp, levelForZoom(pyramid_, vp.zoom)))
        if (!cache_.contains(k))
            return false;
    return true;
}

void TileScheduler::insert(const TileKey& key, Handle handle, std::size_t bytes) {
    const bool pinned = pinCoarsest_ && key.level == pyramid_.coarsestLevel();
    cache_.insert(key, handle, bytes, pinned);
}

} // namespace nic

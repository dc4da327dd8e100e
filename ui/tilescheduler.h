#pragma once
// The slide viewer's tile scheduling, with no GL and no widgets: which tiles a viewport (and a pending
// figure) wants and in which order, when the prefetch ring is held back, which level a figure is drawn
// from, and which resident tiles are evicted when the byte-capped cache is full.
//
// Residency: the scheduler keeps the byte-capped LRU of resident tiles, each with an opaque handle that
// the tile layer gives it (a GL texture name). Evicted handles go to the evictor, which frees them. The
// coarsest level is pinned (never evicted) when it has at most kMaxPinnedTiles tiles. Tiles decoded but
// not yet resident ("waiting", e.g. queued for GL upload) are passed in by the caller. Not synchronised:
// use it from one thread (the GUI thread). Unit-tested in tests/ui/test_tilescheduler.cpp.
#include "ui/lrucache.h"
#include "ui/tilemath.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_set>
#include <vector>

namespace nic {

using TileKeySet = std::unordered_set<TileKey, TileKeyHash>;

/// What to ask the tile loader for next (see TileScheduler::plan()).
struct TileRequestPlan {
    std::vector<TileKey> wanted; ///< in priority order; none of them resident or waiting
    bool prefetchHeldBack = false; ///< a tile of the view is missing, so the prefetch ring was left out
};

class TileScheduler {
public:
    using Handle = std::uint32_t;
    using Evictor = std::function<void(const TileKey&, Handle)>;
    /// The coarsest level is kept resident when it has at most this many tiles.
    static constexpr std::int64_t kMaxPinnedTiles = 64;

    /// A cache of `cacheBytes`; `evictor` receives every handle leaving it (eviction, clear, reset).
    explicit TileScheduler(std::size_t cacheBytes, Evictor evictor = {});

    /// Starts over for a new slide: drops every resident tile (through the evictor).
    void reset(const Pyramid& pyramid);
    const Pyramid& pyramid() const { return pyramid_; }
    /// True when the coarsest level's tiles are pinned in the cache.
    bool pinsCoarsest() const { return pinCoarsest_; }

    /// The tiles to request, in priority order: the figure's tiles (at figureLevel()), the pinned coarsest
    /// level (row-major), the view's tiles at the level for its zoom (centre first), then — only when none
    /// of the view's tiles is missing — prefetchTiles(). Resident and `waiting` tiles are left out.
    /// A view of width <= 0 asks for the figure's tiles only.
    TileRequestPlan plan(const Viewport& view, const std::optional<Viewport>& figure, const TileKeySet& waiting) const;
    /// The level a figure of `vp` is drawn from: the level for its zoom, or a coarser one when that level's
    /// tiles would take more than half the cache.
    int figureLevel(const Viewport& vp) const;
    /// True when every tile of `level` inside `vp` is resident or in `waiting`.
    bool tilesAtHand(const Viewport& vp, int level, const TileKeySet& waiting) const;
    /// True when every tile `vp` shows at the level for its zoom is resident.
    bool isFullyResident(const Viewport& vp) const;

    // Residency (the LRU: insert/find make a tile most recent; peek/contains do not).
    /// Makes `key` resident with `handle`, costing `bytes`; evicts least recently used unpinned tiles.
    void insert(const TileKey& key, Handle handle, std::size_t bytes);
    const Handle* find(const TileKey& key) { return cache_.find(key); }
    const Handle* peek(const TileKey& key) const { return cache_.peek(key); }
    bool contains(const TileKey& key) const { return cache_.contains(key); }
    /// Drops every resident tile, pinned ones too (through the evictor).
    void clear() { cache_.clear(); }
    std::size_t size() const { return cache_.size(); }
    std::size_t bytes() const { return cache_.bytes(); }
    std::size_t capacity() const { return cache_.capacity(); }
    void resetStatistics() { cache_.resetStatistics(); }

private:
    Pyramid pyramid_;
    bool pinCoarsest_ = false;
    LruCache<TileKey, Handle, TileKeyHash> cache_;
};

} // namespace nic

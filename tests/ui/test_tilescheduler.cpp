// Tile scheduling without GL: the tiles a viewport wants and their order, the prefetch hold-back, the level
// of a figure, residency and the eviction order of the byte-capped cache with the pinned coarsest level.
#include "ui/tilescheduler.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

using namespace nic;

namespace {

constexpr std::size_t kTileBytes = 256 * 256 * 4;

// 10000 × 6000 px, downsamples 1, 4, 16 (levels 10000×6000, 2500×1500, 625×375), 256 px tiles: the
// coarsest level has 3 × 2 tiles, so it is pinned.
Pyramid threeLevels() {
    Pyramid p;
    p.levels = {{10000, 6000, 1.0}, {2500, 1500, 4.0}, {625, 375, 16.0}};
    p.tileSize = 256;
    return p;
}

// Centre (5000, 3000), 512 × 512 px at zoom 0.25: level 1, level-0 x and y [3976, 6024) × [1976, 4024).
const Viewport kView{5000, 3000, 0.25, 512, 512};

std::set<TileKey> asSet(const std::vector<TileKey>& v) { return {v.begin(), v.end()}; }

std::set<TileKey> grid(int level, std::int64_t x0, std::int64_t x1, std::int64_t y0, std::int64_t y1) {
    std::set<TileKey> out;
    for (std::int64_t y = y0; y <= y1; ++y)
        for (std::int64_t x = x0; x <= x1; ++x)
            out.insert({level, x, y});
    return out;
}

const std::vector<TileKey> kCoarsest = {{2, 0, 0}, {2, 1, 0}, {2, 2, 0}, {2, 0, 1}, {2, 1, 1}, {2, 2, 1}};

} // namespace

TEST(TileScheduler, PinsTheCoarsestLevelOnlyWhenSmall) {
    TileScheduler s(64 * kTileBytes);
    EXPECT_FALSE(s.pinsCoarsest()); // no slide
    s.reset(threeLevels());
    EXPECT_TRUE(s.pinsCoarsest());
    Pyramid big; // one level of 40 × 24 = 960 tiles
    big.levels = {{10000, 6000, 1.0}};
    s.reset(big);
    EXPECT_FALSE(s.pinsCoarsest());
}

TEST(TileScheduler, AViewWantsPinnedTilesThenItsOwnCentreFirstAndHoldsThePrefetchBack) {
    TileScheduler s(64 * kTileBytes);
    s.reset(threeLevels());
    const TileRequestPlan plan = s.plan(kView, std::nullopt, {});
    ASSERT_EQ(plan.wanted.size(), 6U + 9U);
    EXPECT_TRUE(plan.prefetchHeldBack);
    // The pinned coarsest level, row-major.
    EXPECT_EQ(std::vector<TileKey>(plan.wanted.begin(), plan.wanted.begin() + 6), kCoarsest);
    // Then the view's level-1 tiles (1024 level-0 px each): columns 3..5, rows 1..3, the centre's tile first.
    const std::vector<TileKey> view(plan.wanted.begin() + 6, plan.wanted.end());
    EXPECT_EQ(view.front(), (TileKey{1, 4, 2}));
    EXPECT_EQ(asSet(view), grid(1, 3, 5, 1, 3));
}

TEST(TileScheduler, ThePrefetchFollowsOnceEveryTileOfTheViewIsAtHand) {
    TileScheduler s(1024 * kTileBytes);
    s.reset(threeLevels());
    for (const auto& k : kCoarsest)
        s.insert(k, 1, kTileBytes);
    const auto view = grid(1, 3, 5, 1, 3);
    const TileKeySet waiting(view.begin(), view.end()); // decoded, not uploaded yet
    const TileRequestPlan plan = s.plan(kView, std::nullopt, waiting);
    EXPECT_FALSE(plan.prefetchHeldBack);
    // The ring of one tile around the view at level 1 (columns 2..6, rows 0..4, less the view), then the
    // view's tiles of level 0 (256 px: columns 15..23, rows 7..15). Resident and waiting tiles never.
    ASSERT_EQ(plan.wanted.size(), 16U + 81U);
    const std::vector<TileKey> ring(plan.wanted.begin(), plan.wanted.begin() + 16);
    std::set<TileKey> expectedRing = grid(1, 2, 6, 0, 4);
    for (const auto& k : view)
        expectedRing.erase(k);
    EXPECT_EQ(asSet(ring), expectedRing);
    EXPECT_EQ(asSet(std::vector<TileKey>(plan.wanted.begin() + 16, plan.wanted.end())), grid(0, 15, 23, 7, 15));
    EXPECT_TRUE(s.tilesAtHand(kView, 1, waiting));
    EXPECT_FALSE(s.tilesAtHand(kView, 1, {}));
    EXPECT_FALSE(s.isFullyResident(kView)); // waiting is not resident
    for (const auto& k : view)
        s.insert(k, 2, kTileBytes);
    EXPECT_TRUE(s.isFullyResident(kView));
    EXPECT_TRUE(s.tilesAtHand(kView, 1, {}));
}

TEST(TileScheduler, AFigureIsDrawnFromACoarserLevelWhenItsTilesWouldTakeOverHalfTheCache) {
    // 2048 × 2048 px at zoom 1 around the same centre: level 0, 9 × 9 tiles (≈ 21 MB), or 3 × 3 at level 1.
    const Viewport figure{5000, 3000, 1.0, 2048, 2048};
    TileScheduler roomy(64 * 1024 * 1024);
    roomy.reset(threeLevels());
    EXPECT_EQ(roomy.figureLevel(figure), 0);
    TileScheduler small(16 * 1024 * 1024);
    small.reset(threeLevels());
    EXPECT_EQ(small.figureLevel(figure), 1);
    // A view of no size asks for the figure's tiles alone.
    const TileRequestPlan plan = small.plan(Viewport{}, figure, {});
    EXPECT_EQ(asSet(plan.wanted), grid(1, 3, 5, 1, 3));
    EXPECT_FALSE(plan.prefetchHeldBack);
}

TEST(TileScheduler, EvictsTheLeastRecentlyUsedUnpinnedTilesInOrder) {
    std::vector<TileKey> evicted;
    TileScheduler s(4 * kTileBytes, [&](const TileKey& k, TileScheduler::Handle) { evicted.push_back(k); });
    s.reset(threeLevels());
    for (std::uint32_t i = 0; i < 4; ++i)
        s.insert({0, i, 0}, i, kTileBytes);
    EXPECT_TRUE(evicted.empty());
    ASSERT_NE(s.find({0, 0, 0}), nullptr); // used: now the most recent
    EXPECT_EQ(*s.find({0, 0, 0}), 0U);
    ASSERT_NE(s.peek({0, 1, 0}), nullptr); // peeking does not count as a use
    s.insert({0, 4, 0}, 4, kTileBytes);
    s.insert({0, 5, 0}, 5, kTileBytes);
    EXPECT_EQ(evicted, (std::vector<TileKey>{{0, 1, 0}, {0, 2, 0}}));
    EXPECT_TRUE(s.contains({0, 0, 0}));
    EXPECT_EQ(s.size(), 4U);
    EXPECT_EQ(s.bytes(), 4 * kTileBytes);
}

TEST(TileScheduler, NeverEvictsThePinnedCoarsestLevelUntilReset) {
    std::vector<TileKey> evicted;
    TileScheduler s(4 * kTileBytes, [&](const TileKey& k, TileScheduler::Handle) { evicted.push_back(k); });
    s.reset(threeLevels());
    for (const auto& k : kCoarsest)
        s.insert(k, 9, kTileBytes); // 6 tiles in a cache of 4: all stay
    s.insert({0, 0, 0}, 1, kTileBytes);
    s.insert({0, 1, 0}, 2, kTileBytes);
    EXPECT_EQ(evicted, (std::vector<TileKey>{{0, 0, 0}}));
    for (const auto& k : kCoarsest)
        EXPECT_TRUE(s.contains(k));
    EXPECT_EQ(s.bytes(), 7 * kTileBytes); // over the capacity by the pinned tiles only
    evicted.clear();
    s.reset(threeLevels()); // a new slide: every handle goes to the evictor
    EXPECT_EQ(evicted.size(), 7U);
    EXPECT_EQ(s.size(), 0U);
}

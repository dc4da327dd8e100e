// Byte-capped LRU cache: eviction order, byte cap, pinning, evictor calls.
#include "ui/lrucache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using nic::LruCache;

TEST(LruCache, EvictsLeastRecentlyUsedUntilUnderTheByteCap) {
    std::vector<int> evicted;
    LruCache<int, std::string> c(100, [&](const int& k, std::string&) { evicted.push_back(k); });
    c.insert(1, "a", 40);
    c.insert(2, "b", 40);
    EXPECT_EQ(c.bytes(), 80U);
    ASSERT_NE(c.find(1), nullptr); // 1 becomes most recent
    c.insert(3, "c", 40);          // 120 > 100 → evict LRU = 2
    EXPECT_EQ(evicted, (std::vector<int>{2}));
    EXPECT_EQ(c.bytes(), 80U);
    EXPECT_EQ(c.keysByRecency(), (std::vector<int>{3, 1}));
    c.insert(4, "d", 90); // evicts 1 then 3: only the new entry fits
    EXPECT_EQ(evicted, (std::vector<int>{2, 1, 3}));
    EXPECT_EQ(c.keysByRecency(), (std::vector<int>{4}));
    EXPECT_EQ(c.bytes(), 90U);
    EXPECT_EQ(c.evictions(), 3U);
}

TEST(LruCache, AnEntryLargerThanTheCapIsKeptAlone) {
    LruCache<int, int> c(10);
    c.insert(1, 1, 5);
    c.insert(2, 2, 50);
    EXPECT_EQ(c.keysByRecency(), (std::vector<int>{2}));
    EXPECT_EQ(c.bytes(), 50U);
}

TEST(LruCache, PinnedEntriesAreNeverEvicted) {
    std::vector<int> evicted;
    LruCache<int, int> c(100, [&](const int& k, int&) { evicted.push_back(k); });
    c.insert(0, 0, 30, /*pinned=*/true);
    c.insert(1, 1, 30);
    c.insert(2, 2, 30);
    c.insert(3, 3, 30); // 120: evict LRU unpinned = 1
    EXPECT_EQ(evicted, (std::vector<int>{1}));
    c.setCapacity(40); // only the pinned one and... nothing else fits except pinned
    EXPECT_EQ(evicted, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(c.contains(0));
    EXPECT_EQ(c.bytes(), 30U);
    c.clear(); // clear() frees pinned entries too
    EXPECT_EQ(evicted.back(), 0);
    EXPECT_EQ(c.size(), 0U);
    EXPECT_EQ(c.bytes(), 0U);
}

TEST(LruCache, ReplacingAKeyUpdatesItsCostAndCallsTheEvictor) {
    int evictions = 0;
    LruCache<int, int> c(100, [&](const int&, int&) { ++evictions; });
    c.insert(1, 1, 10);
    c.insert(1, 2, 20);
    EXPECT_EQ(evictions, 1);
    EXPECT_EQ(c.bytes(), 20U);
    EXPECT_EQ(*c.peek(1), 2);
    EXPECT_TRUE(c.erase(1));
    EXPECT_FALSE(c.erase(1));
    EXPECT_EQ(c.bytes(), 0U);
}

TEST(LruCache, HitAndMissCounting) {
    LruCache<int, int> c(100);
    c.insert(1, 1, 1);
    EXPECT_NE(c.find(1), nullptr);
    EXPECT_EQ(c.find(2), nullptr);
    EXPECT_NE(c.peek(1), nullptr); // peek counts nothing
    EXPECT_EQ(c.hits(), 1U);
    EXPECT_EQ(c.misses(), 1U);
}

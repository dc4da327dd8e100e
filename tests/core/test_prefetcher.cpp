// Prefetcher: the encoder trainer's one-producer, one-consumer stage. Items arrive in order, made on one thread from
// the same random stream as inline; errors reach the consumer at their item; an early stop (a cancelled job)
// ends the producer; the time spent making items and waiting for them is counted.
#include "core/base/prefetcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace nic {
namespace {

// Each item draws a variable number of values from one stream, as a batch draws pairs and augmentation.
std::vector<std::vector<std::uint64_t>> drawAll(bool threaded, std::size_t count) {
    std::mt19937_64 rng(42);
    Prefetcher<std::vector<std::uint64_t>> p(
        count, 2,
        [&](std::size_t k, std::vector<std::uint64_t>& item) {
            item.assign(1 + k % 5, 0);
            for (auto& v : item)
                v = rng();
        },
        threaded);
    std::vector<std::vector<std::uint64_t>> out;
    for (std::size_t k = 0; k < count; ++k) {
        out.push_back(p.next());
        std::this_thread::yield();
    }
    EXPECT_THROW(p.next(), std::out_of_range);
    return out;
}

TEST(Prefetcher, ThreadedItemsArriveInOrderAndEqualInlineOnes) {
    const auto inlined = drawAll(false, 200);
    const auto threaded = drawAll(true, 200);
    ASSERT_EQ(inlined.size(), 200U);
    EXPECT_EQ(inlined, threaded);
    EXPECT_EQ(inlined[3].size(), 4U);
}

// Waits (up to 10 s) until `made` reaches n.
void waitFor(const std::atomic<std::size_t>& made, std::size_t n) {
    for (int i = 0; i < 1000 && made.load() < n; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

TEST(Prefetcher, ProducerStaysAtMostDepthAhead) {
    std::atomic<std::size_t> made{0};
    Prefetcher<int> p(
        100, 2, [&](std::size_t k, int& item) { item = static_cast<int>(k); ++made; }, true);
    waitFor(made, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(made.load(), 2U); // two ready, none taken: no third
    EXPECT_EQ(p.next(), 0);
    waitFor(made, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(made.load(), 3U);
}

TEST(Prefetcher, AnErrorReachesTheConsumerAtItsItemAndStaysThere) {
    for (const bool threaded : {true, false}) {
        Prefetcher<int> p(
            10, 2,
            [](std::size_t k, int& item) {
                if (k == 3)
                    throw std::runtime_error("bank.nicbank: patch 3 unreadable");
                item = static_cast<int>(k);
            },
            threaded);
        for (int k = 0; k < 3; ++k)
            EXPECT_EQ(p.next(), k) << threaded;
        try {
            p.next();
            ADD_FAILURE() << "no error";
        } catch (const std::runtime_error& e) {
            EXPECT_STREQ(e.what(), "bank.nicbank: patch 3 unreadable");
        }
        if (threaded) {
            EXPECT_THROW(p.next(), std::runtime_error);
        }
    }
}

TEST(Prefetcher, DestroyedEarlyItStopsTheProducer) {
    std::atomic<std::size_t> made{0};
    {
        Prefetcher<int> p(
            1000000, 2,
            [&](std::size_t, int& item) {
                item = 1;
                ++made;
            },
            true);
        EXPECT_EQ(p.next(), 1);
    } // joins: the producer was waiting for room and stops there
    EXPECT_LE(made.load(), 4U);
}

TEST(Prefetcher, TimesTheMakingAndTheWaiting) {
    Prefetcher<int> inlined(3, 2, [](std::size_t k, int& item) { item = static_cast<int>(k); }, false);
    for (int k = 0; k < 3; ++k)
        EXPECT_EQ(inlined.next(), k);
    EXPECT_EQ(inlined.waitSeconds(), 0.0);
    Prefetcher<int> slow(
        2, 2,
        [](std::size_t, int& item) {
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            item = 1;
        },
        true);
    slow.next();
    slow.next();
    EXPECT_GE(slow.makeSeconds(), 0.055);
    EXPECT_GT(slow.waitSeconds(), 0.0); // the consumer asked before the first item was made
}

} // namespace
} // namespace nic

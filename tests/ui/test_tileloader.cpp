// TileLoader: newest request first, stale requests dropped, results delivered on the GUI thread.
#include "ui/tileloader.h"

#include "core/base/error.h"

#include <QCoreApplication>
#include <QTest>
#include <QThread>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

using namespace nic;

namespace {

// Blocks every decode until release() so the test controls what is in flight.
class GatedSource final : public TileSource {
public:
    QImage decode(const TileKey& key) const override {
        {
            std::unique_lock lock(mutex_);
            ++started_;
            cv_.notify_all();
            cv_.wait(lock, [&] { return open_; });
        }
        if (key.level == 9)
            throw SlideError("slide.tif: Bogus marker length");
        QImage img(4, 4, QImage::Format_RGB888);
        img.fill(QColor(static_cast<int>(key.x % 256), static_cast<int>(key.y % 256), key.level));
        return img;
    }
    void release() {
        std::lock_guard lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    bool waitStarted(int n) const {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return started_ >= n; });
    }

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable cv_;
    mutable int started_ = 0;
    bool open_ = false;
};

std::vector<TileKey> row(int level, int n) {
    std::vector<TileKey> v;
    for (int i = 0; i < n; ++i)
        v.push_back({level, i, 0});
    return v;
}

} // namespace

TEST(TileLoader, DropsStaleRequestsAndServesTheNewestBatch) {
    auto source = std::make_shared<GatedSource>();
    TileLoader loader(source, 2);
    std::set<TileKey> delivered;
    std::vector<quint64> generations;
    Qt::HANDLE guiThread = QThread::currentThreadId();
    bool allOnGuiThread = true;
    QObject::connect(&loader, &TileLoader::tileReady, [&](const TileKey& k, const QImage& img, quint64 gen, double) {
        delivered.insert(k);
        generations.push_back(gen);
        allOnGuiThread = allOnGuiThread && QThread::currentThreadId() == guiThread && img.width() == 4;
    });

    const auto first = loader.request(row(0, 100)); // 2 start decoding and block, 98 wait
    ASSERT_TRUE(source->waitStarted(2));
    const auto second = loader.request(row(1, 10)); // replaces the 98 pending ones
    EXPECT_GT(second, first);
    EXPECT_EQ(loader.droppedCount(), 98U);
    EXPECT_EQ(loader.pendingCount(), 10U);
    EXPECT_EQ(loader.inFlightCount(), 2U);
    source->release();
    ASSERT_TRUE(QTest::qWaitFor([&] { return delivered.size() == 12; }, 10000));
    QTest::qWait(50);
    EXPECT_EQ(delivered.size(), 12U);
    // Of the first batch only the two tiles that were in flight were decoded.
    int level0 = 0;
    for (const auto& k : delivered)
        level0 += k.level == 0;
    EXPECT_EQ(level0, 2);
    EXPECT_EQ(loader.decodedCount(), 12U);
    EXPECT_TRUE(allOnGuiThread);
    EXPECT_EQ(std::count(generations.begin(), generations.end(), second), 10);
}

TEST(TileLoader, TilesInFlightAreNotRequestedTwice) {
    auto source = std::make_shared<GatedSource>();
    TileLoader loader(source, 1);
    int count = 0;
    QObject::connect(&loader, &TileLoader::tileReady, [&](const TileKey&, const QImage&, quint64, double) { ++count; });
    loader.request({{0, 0, 0}});
    ASSERT_TRUE(source->waitStarted(1));
    loader.request({{0, 0, 0}, {0, 1, 0}}); // (0,0,0) is in flight: only (0,1,0) is queued
    EXPECT_EQ(loader.pendingCount(), 1U);
    source->release();
    ASSERT_TRUE(QTest::qWaitFor([&] { return count == 2; }, 10000));
    QTest::qWait(50);
    EXPECT_EQ(count, 2);
}

TEST(TileLoader, ReportsTheSourcesErrorMessage) {
    auto source = std::make_shared<GatedSource>();
    source->release();
    TileLoader loader(source, 2);
    QString message;
    QObject::connect(&loader, &TileLoader::tileFailed, [&](const TileKey&, const QString& m) { message = m; });
    loader.request({{9, 0, 0}});
    ASSERT_TRUE(QTest::qWaitFor([&] { return !message.isEmpty(); }, 10000));
    EXPECT_EQ(message.toStdString(), "slide.tif: Bogus marker length");
    EXPECT_EQ(loader.failedCount(), 1U);
}

TEST(TileLoader, DestructionWaitsForWorkersAndDropsPending) {
    auto source = std::make_shared<GatedSource>();
    {
        TileLoader loader(source, 2);
        loader.request(row(0, 50));
        ASSERT_TRUE(source->waitStarted(2));
        source->release(); // the two in flight finish; the rest are dropped by the destructor
    }
    QCoreApplication::processEvents(); // queued deliveries to the dead loader are discarded
    SUCCEED();
}

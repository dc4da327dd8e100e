// The GUI's multithreaded parts under ThreadSanitizer (robustness issue): the tile loader (decoder pool,
// newest-first queue, stale drops, delivery to the GUI thread, destruction with tiles in flight) and the
// job runner (worker thread, progress and log signals, cooperative cancel, shutdown with a running
// job). Named Threads.* so the `tsan` test preset runs them; they also run in the release suite. They
// need a Qt event loop but no display (QCoreApplication).
#include "ui/jobrunner.h"
#include "ui/tileloader.h"

#include "core/base/error.h"
#include "core/slide/slide.h"
#include "testsupport.h"
#include "../ui/testslide.h"

#include <QCoreApplication>
#include <QSignalSpy>
#include <QTest>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

using namespace nic;

namespace {

/// Tiles whose pixels encode their key, decoded with a little work and a sleep so requests overlap.
class PatternSource final : public TileSource {
public:
    QImage decode(const TileKey& key) const override {
        ++calls;
        if (key.x == 13)
            throw SlideError("pattern: tile 13 is unreadable");
        QImage img(64, 64, QImage::Format_RGB888);
        for (int y = 0; y < img.height(); ++y) {
            auto* row = img.scanLine(y);
            for (int x = 0; x < img.width(); ++x) {
                row[3 * x] = static_cast<uchar>(key.level);
                row[3 * x + 1] = static_cast<uchar>(key.x);
                row[3 * x + 2] = static_cast<uchar>(key.y);
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        return img;
    }
    mutable std::atomic<int> calls{0};
};

bool imageEncodes(const QImage& img, const TileKey& k) {
    if (img.width() != 64 || img.height() != 64)
        return false;
    for (int y = 0; y < img.height(); y += 7) {
        const uchar* row = img.constScanLine(y);
        for (int x = 0; x < img.width(); x += 5)
            if (row[3 * x] != k.level || row[3 * x + 1] != k.x || row[3 * x + 2] != k.y)
                return false;
    }
    return true;
}

} // namespace

TEST(Threads, TileLoaderDeliversEveryTileIntactWhileRequestsChangeUnderIt) {
    auto source = std::make_shared<PatternSource>();
    std::size_t delivered = 0, failed = 0, wrong = 0;
    std::set<std::pair<int, int>> seen;
    {
        TileLoader loader(source, 4);
        QObject::connect(&loader, &TileLoader::tileReady, [&](const TileKey& k, const QImage& img, quint64, double) {
            ++delivered;
            if (!imageEncodes(img, k))
                ++wrong;
            seen.insert({static_cast<int>(k.x), static_cast<int>(k.y)});
        });
        QObject::connect(&loader, &TileLoader::tileFailed, [&](const TileKey& k, const QString& message) {
            ++failed;
            EXPECT_EQ(k.x, 13);
            EXPECT_EQ(message, QStringLiteral("pattern: tile 13 is unreadable"));
        });
        // 40 batches in quick succession, each replacing the previous one (as panning does), then a
        // final batch that must be served completely.
        for (int b = 0; b < 40; ++b) {
            std::vector<TileKey> keys;
            for (int i = 0; i < 16; ++i)
                keys.push_back({b % 3, (b + i) % 20, b});
            loader.request(keys);
            QCoreApplication::processEvents();
        }
        std::vector<TileKey> last;
        for (int i = 0; i < 20; ++i)
            last.push_back({1, i, 99});
        loader.request(last);
        ASSERT_TRUE(QTest::qWaitFor([&] { return loader.pendingCount() == 0 && loader.inFlightCount() == 0; }, 20000));
        QCoreApplication::processEvents();
        QTest::qWait(50);
        EXPECT_GT(loader.droppedCount(), 0U); // stale requests were dropped
        EXPECT_EQ(loader.decodedCount() + loader.failedCount(), static_cast<std::uint64_t>(source->calls.load()));
        // More work queued, then the loader destroyed while tiles are in flight.
        std::vector<TileKey> more;
        for (int i = 0; i < 200; ++i)
            more.push_back({2, i % 12, 1000 + i});
        loader.request(more);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(wrong, 0U);
    EXPECT_GE(failed, 1U);
    for (int i = 0; i < 20; ++i) {
        if (i != 13) {
            EXPECT_TRUE(seen.count({i, 99}) != 0) << "tile " << i << " of the last batch never arrived";
        }
    }
    // Nothing is delivered after the loader is gone.
    const std::size_t before = delivered;
    QCoreApplication::processEvents();
    QTest::qWait(20);
    EXPECT_EQ(delivered, before);
}

TEST(Threads, TileLoaderReadsASlideFromFourDecodersAtOnce) {
    nic::test::TempDir dir;
    nic::test::TestSlideGeometry g;
    const auto path = dir / "slide.tif";
    nic::test::writeTestSlide(path, g);
    auto slide = std::make_shared<const Slide>(path);
    Pyramid pyramid;
    for (const auto& lv : slide->levels())
        pyramid.levels.push_back({lv.width, lv.height, lv.downsample});
    pyramid.tileSize = 256;
    auto source = std::make_shared<SlideTileSource>(slide, pyramid);
    std::size_t ok = 0;
    {
        TileLoader loader(source, 4);
        QObject::connect(&loader, &TileLoader::tileReady, [&](const TileKey& k, const QImage& img, quint64, double) {
            const TileRegion r = tileRegion(pyramid, k);
            // The tile's first pixel is the slide's colour there.
            const auto want = nic::test::testSlideColor(g, r.level0X + 0.5 * pyramid.levels[static_cast<std::size_t>(k.level)].downsample,
                                                        r.level0Y + 0.5 * pyramid.levels[static_cast<std::size_t>(k.level)].downsample);
            const uchar* p = img.constScanLine(0);
            if (p[0] == want[0] && p[1] == want[1] && p[2] == want[2])
                ++ok;
        });
        std::vector<TileKey> all;
        for (int level = 0; level < pyramid.levelCount(); ++level)
            for (std::int64_t y = 0; y < pyramid.tilesY(level); ++y)
                for (std::int64_t x = 0; x < pyramid.tilesX(level); ++x)
                    all.push_back({level, x, y});
        loader.request(all);
        ASSERT_TRUE(QTest::qWaitFor([&] { return loader.pendingCount() == 0 && loader.inFlightCount() == 0; }, 30000));
        QTest::qWait(50);
        EXPECT_EQ(ok, all.size());
        EXPECT_EQ(loader.failedCount(), 0U);
    }
}

TEST(Threads, JobRunnerProgressCancelAndShutdownWithARunningJob) {
    std::atomic<int> bodiesStarted{0};
    std::atomic<int> lastStarted{-1};
    std::vector<int> results; // written by bodies on the worker, read here after jobFinished
    std::map<JobId, JobState> finished;
    std::size_t progressSignals = 0, logSignals = 0;
    {
        JobRunner runner;
        QObject::connect(&runner, &JobRunner::jobFinished, [&](JobId id, JobState s, const QString&) { finished[id] = s; });
        QObject::connect(&runner, &JobRunner::jobProgress, [&](JobId, int, double, const QString&) { ++progressSignals; });
        QObject::connect(&runner, &JobRunner::jobLog, [&](JobId, const QString&) { ++logSignals; });
        std::vector<JobId> ids;
        for (int j = 0; j < 6; ++j) {
            Job job;
            job.name = QStringLiteral("job %1").arg(j);
            job.body = [&, j](JobContext& ctx) {
                ++bodiesStarted;
                lastStarted = j;
                const int n = j == 1 ? 25000 : 50; // job 1 runs until it is cancelled (5 s at most)
                for (int i = 0; i < n; ++i) {
                    ctx.throwIfCancelled();
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    ctx.progress(i + 1, n, "work");
                    if (i % 10 == 0)
                        ctx.log("step " + std::to_string(i));
                }
                if (j == 3)
                    throw IoError("job 3 failed on purpose");
                results.push_back(j);
            };
            ids.push_back(runner.enqueue(std::move(job)));
        }
        // Cancel one while queued and one while it runs.
        runner.cancel(ids[4]);
        ASSERT_TRUE(QTest::qWaitFor([&] { return lastStarted.load() == 1; }, 20000));
        runner.cancel(ids[1]);
        ASSERT_TRUE(QTest::qWaitFor([&] { return finished.count(ids[5]) != 0; }, 20000));
        EXPECT_EQ(finished[ids[0]], JobState::Succeeded);
        EXPECT_EQ(finished[ids[1]], JobState::Cancelled);
        EXPECT_EQ(finished[ids[3]], JobState::Failed);
        EXPECT_EQ(finished[ids[4]], JobState::Cancelled);
        EXPECT_EQ(finished[ids[5]], JobState::Succeeded);
        EXPECT_EQ(runner.info(ids[3]).error, QStringLiteral("job 3 failed on purpose"));
        EXPECT_GT(progressSignals, 0U);
        EXPECT_GT(logSignals, 0U);

        // A job that only stops when cancelled, then the runner destroyed while it runs.
        Job endless;
        endless.name = QStringLiteral("endless");
        endless.body = [&](JobContext& ctx) {
            ++bodiesStarted;
            lastStarted = 100;
            for (;;) {
                ctx.throwIfCancelled();
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        };
        const JobId e = runner.enqueue(std::move(endless));
        ASSERT_TRUE(QTest::qWaitFor([&] { return lastStarted.load() == 100; }, 20000));
        EXPECT_EQ(runner.runningJob(), e);
    }
    EXPECT_EQ(bodiesStarted.load(), 6); // 5 of the 6 (one cancelled while queued) + the endless one
    EXPECT_EQ(std::set<int>(results.begin(), results.end()).count(0), 1U);
    EXPECT_EQ(std::set<int>(results.begin(), results.end()).count(5), 1U);
}

int main(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

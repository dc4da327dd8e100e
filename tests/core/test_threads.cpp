// The multithreaded parts of core/, written to run clean under ThreadSanitizer (preset `tsan`, which
// runs only these tests): the compression pipeline (reader threads ‖ inference threads ‖ writer)
// finished, with several inference threads, cancelled from another thread mid-way and from the progress
// sink, then resumed; the synthetic slide
// writer's render pool; JobContext used from many threads at once. Each test also checks its result,
// so it is a plain test in the other presets.
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/compression/latentgrid.h"
#include "core/slide/jpegtiles.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "testsupport.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace nic;

namespace {

class Threads : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir;
        SynthCohortParams p;
        p.outDir = dir_->path();
        p.count = 1;
        p.width = p.height = 2048;
        p.positiveFraction = 1.0;
        p.seed = 21;
        p.write.threads = 3; // the render pool is part of what is tested
        generateSynthCohort(p);
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static std::filesystem::path slide() { return dir_->path() / "synth-000.svs"; }
    static CompressOptions options() {
        CompressOptions o;
        o.readThreads = 3;
        o.batchSize = 8;
        o.queueBatches = 2;
        o.bandRows = 2;
        o.tissue.minCellFraction = 0.0;
        return o;
    }
    test::TempDir work;
    static test::TempDir* dir_;
};
test::TempDir* Threads::dir_ = nullptr;

std::vector<float> gridOf(const std::filesystem::path& p) {
    return LatentGridReader(p).gridHwc(0);
}

} // namespace

TEST_F(Threads, SynthWriterPoolProducesAReadableSlide) {
    SynthSlideParams sp;
    sp.width = sp.height = 2048;
    sp.seed = 3;
    const SynthSlide s(sp);
    SynthWriteOptions w;
    w.threads = 4;
    std::atomic<int> reports{0};
    JobContext ctx;
    s.write(work / "pool.svs", w, ctx, [&](std::int64_t, std::int64_t) { ++reports; });
    EXPECT_GT(reports.load(), 0);
    const Slide opened(work / "pool.svs");
    EXPECT_EQ(opened.width(), 2048);
}

// The direct JPEG tile reader's cache is shared by every thread reading through one handle.
TEST_F(Threads, DirectTileReadersShareTheCacheAndAgree) {
    const Slide s(slide());
    ASSERT_TRUE(s.decodesTilesDirectly(0));
    std::vector<Image> serial;
    for (int i = 0; i < 32; ++i)
        serial.push_back(s.readRegion((i % 8) * 250, (i / 8) * 500, 0, 128, 128));
    const Slide fresh(slide());
    std::vector<Image> parallel(serial.size());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (std::size_t i = static_cast<std::size_t>(t); i < parallel.size(); i += 4)
                parallel[i] = fresh.readRegion(static_cast<std::int64_t>(i % 8) * 250,
                                               static_cast<std::int64_t>(i / 8) * 500, 0, 128, 128);
        });
    for (auto& t : threads)
        t.join();
    for (std::size_t i = 0; i < serial.size(); ++i)
        EXPECT_EQ(serial[i].pixels, parallel[i].pixels) << i;
}

// With room for one decoded tile, tiles leave the cache all the time and their buffers are decoded into again; a
// buffer another thread is still copying from must not be. Every thread's reads equal a reader's that keeps every tile.
TEST_F(Threads, TileBuffersReusedAfterEvictionNeverChangeUnderAReader) {
    const Slide s(slide());
    const auto side = [&](const char* what) {
        return static_cast<std::int64_t>(std::stod(s.property(std::string("openslide.level[0].") + what).value()));
    };
    const std::vector<JpegTileLevelSpec> specs{{s.width(), s.height(), side("tile-width"), side("tile-height")}};
    std::string why;
    const auto tiny = JpegTileReader::open(slide(), specs, why,
                                           static_cast<std::size_t>(side("tile-width") * side("tile-height") * 3));
    const auto roomy = JpegTileReader::open(slide(), specs, why);
    ASSERT_TRUE(tiny && roomy) << why;
    constexpr int kRegions = 24, kSide = 200;
    std::vector<std::vector<std::uint8_t>> expected(kRegions, std::vector<std::uint8_t>(kSide * kSide * 3));
    auto origin = [](int i) { return std::pair<std::int64_t, std::int64_t>{i * 173 % 1800, i * 311 % 1800}; };
    for (int i = 0; i < kRegions; ++i)
        ASSERT_TRUE(roomy->read(0, origin(i).first, origin(i).second, kSide, kSide, expected[i].data()));
    std::atomic<int> wrong{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::vector<std::uint8_t> got(kSide * kSide * 3);
            for (int k = 0; k < 3 * kRegions; ++k) {
                const int i = (k * (2 * t + 1) + t) % kRegions;
                if (!tiny->read(0, origin(i).first, origin(i).second, kSide, kSide, got.data()))
                    ++failed;
                else if (got != expected[static_cast<std::size_t>(i)])
                    ++wrong;
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_GT(tiny->tilesDecoded(), roomy->tilesDecoded()) << "tiles were evicted and decoded again";
}

TEST_F(Threads, PipelinedCompressionEqualsSerial) {
    MeanRgbEncoder enc(64);
    CompressOptions o = options();
    o.augment = 8;
    compressSlide(slide(), enc, work / "pipelined.h5", o);
    o.pipelined = false;
    compressSlide(slide(), enc, work / "serial.h5", o);
    EXPECT_EQ(gridOf(work / "pipelined.h5"), gridOf(work / "serial.h5"));
}

TEST_F(Threads, SeveralInferenceThreadsGiveTheGridOfOne) {
    // Three inference threads on replicas of the encoder finish batches out of order; the writer puts
    // every cell back in its place.
    MeanRgbEncoder enc(64);
    CompressOptions o = options();
    o.augment = 8;
    o.inferenceThreads = 3;
    o.batchSize = 3; // many small batches, so the threads overtake one another
    const CompressResult three = compressSlide(slide(), enc, work / "three.h5", o);
    o.inferenceThreads = 1;
    compressSlide(slide(), enc, work / "one.h5", o);
    ASSERT_GT(three.encodedCells, 100);
    for (int k = 0; k < 8; ++k)
        EXPECT_EQ(LatentGridReader(work / "three.h5").gridHwc(k), LatentGridReader(work / "one.h5").gridHwc(k))
            << "variant " << k;
    o.inferenceThreads = -1;
    try {
        compressSlide(slide(), enc, work / "bad.h5", o);
        FAIL() << "negative inference threads accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "read threads, inference threads, queue depth and band rows must not be negative");
    }
    EXPECT_FALSE(std::filesystem::exists(work / "bad.h5"));
}

TEST_F(Threads, CancelFromAnotherThreadMidwayThenResume) {
    MeanRgbEncoder enc(64);
    const CompressOptions o = options();
    compressSlide(slide(), enc, work / "full.h5", o);

    const auto out = work / "cancelled.h5";
    std::atomic<std::int64_t> done{0};
    JobContext ctx([&](const JobContext::Progress& p) { done.store(p.done); }, {});
    ctx.setMinInterval(std::chrono::milliseconds(0));
    std::thread canceller([&] {
        while (done.load() < 3)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        ctx.cancel();
    });
    bool cancelled = false;
    try {
        compressSlide(slide(), enc, out, o, ctx);
    } catch (const Cancelled&) {
        cancelled = true;
    }
    // A slow canceller may come too late on a fast machine; either way the output must be right.
    if (!cancelled)
        done.store(1 << 30);
    canceller.join();
    if (cancelled) {
        EXPECT_FALSE(std::filesystem::exists(out));
    }
    compressSlide(slide(), enc, out, o);
    EXPECT_EQ(gridOf(out), gridOf(work / "full.h5"));
}

TEST_F(Threads, CancelFromTheProgressSinkStopsEveryStage) {
    MeanRgbEncoder enc(64);
    for (int at : {1, 5}) {
        JobContext ctx([&](const JobContext::Progress& p) {
            if (p.step.rfind("compressing", 0) == 0 && p.done >= at)
                ctx.cancel();
        }, {});
        ctx.setMinInterval(std::chrono::milliseconds(0));
        EXPECT_THROW(compressSlide(slide(), enc, work / "stopped.h5", options(), ctx), Cancelled);
        EXPECT_FALSE(std::filesystem::exists(work / "stopped.h5"));
    }
}

TEST_F(Threads, JobContextFromManyThreads) {
    std::atomic<int> sunk{0};
    std::vector<std::string> lines;
    JobContext ctx([&](const JobContext::Progress&) { ++sunk; }, [&](const std::string& l) { lines.push_back(l); });
    ctx.setMinInterval(std::chrono::milliseconds(0));
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&ctx, t] {
            for (int i = 0; i <= 200; ++i) {
                ctx.progress(i, 200, "step");
                if (i % 50 == 0)
                    ctx.log("thread " + std::to_string(t) + " at " + std::to_string(i));
                if (ctx.isCancelled())
                    return;
            }
        });
    for (auto& th : pool)
        th.join();
    EXPECT_GT(sunk.load(), 0);
    EXPECT_EQ(lines.size(), 20U);
}

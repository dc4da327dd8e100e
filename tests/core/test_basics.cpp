// Small building blocks: JobContext, atomic files, PNG/JPEG IO, resampling.
#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/imaging/imageio.h"
#include "core/slide/resample.h"
#include "testsupport.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace nic;

TEST(JobContext, ProgressIsThrottledButFinalAlwaysArrives) {
    std::vector<std::int64_t> seen;
    JobContext ctx([&](const JobContext::Progress& p) { seen.push_back(p.done); }, {});
    ctx.setMinInterval(std::chrono::hours(1));
    for (int i = 1; i <= 1000; ++i)
        ctx.progress(i, 1000, "work");
    ASSERT_EQ(seen.size(), 2U); // the first report, then the final one
    EXPECT_EQ(seen.front(), 1);
    EXPECT_EQ(seen.back(), 1000);
}

TEST(JobContext, EtaAndRate) {
    JobContext::Progress last;
    JobContext ctx([&](const JobContext::Progress& p) { last = p; }, {});
    ctx.setMinInterval(std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ctx.progress(10, 40, "x");
    EXPECT_GT(last.rate, 0.0);
    EXPECT_GT(last.etaSeconds, 0.0);
    EXPECT_NEAR(last.etaSeconds, 30.0 / last.rate, 1e-9);
}

TEST(JobContext, CancelFromAnotherThread) {
    JobContext ctx;
    EXPECT_NO_THROW(ctx.throwIfCancelled());
    std::thread([&] { ctx.cancel(); }).join();
    EXPECT_TRUE(ctx.isCancelled());
    EXPECT_THROW(ctx.throwIfCancelled(), Cancelled);
}

TEST(AtomicFile, UncommittedLeavesOldContentAndNoTemp) {
    test::TempDir dir;
    const auto target = dir / "out.txt";
    writeFileAtomically(target, "old");
    {
        AtomicFile f(target);
        std::ofstream(f.tempPath()) << "half-written";
        // destroyed without commit: simulated failure
    }
    std::ifstream in(target);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "old");
    EXPECT_EQ(test::entriesIn(dir.path()), 1);
}

TEST(AtomicFile, SyncedFilesStayUnpublishedUntilPublished) {
    test::TempDir dir;
    const auto first = dir / "first.txt", second = dir / "second.txt";
    writeFileAtomically(first, "old");
    {
        AtomicFile a(first), b(second);
        std::ofstream(a.tempPath()) << "new";
        std::ofstream(b.tempPath()) << "also";
        a.sync();
        b.sync();
        EXPECT_EQ(test::readFile(first), "old"); // synced, not yet in place
        EXPECT_FALSE(std::filesystem::exists(second));
        a.publish();
        EXPECT_EQ(test::readFile(first), "new");
        // b is destroyed unpublished (its writer failed after syncing): as if it had never been written.
    }
    EXPECT_FALSE(std::filesystem::exists(second));
    EXPECT_EQ(test::entriesIn(dir.path()), 1);
}

using DirectWrites = test::ScopedSwitch<&WriteBehindFile::useDirectWrites>;

TEST(AtomicFile, WriteBehindKeepsEveryLengthExactlyWrittenDirectlyOrThroughThePageCache) {
    // Direct writes go out in aligned pieces and pad the last one: the file must still end at the last byte written,
    // for lengths on both sides of the alignment and of a piece, in one call or in uneven ones.
    test::TempDir dir;
    const std::size_t a = WriteBehindFile::kDirectAlign, piece = WriteBehindFile::kPiece;
    std::string bytes(3 * piece + 5, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2246822519U) >> 11);
    for (const bool direct : {true, false}) {
        const DirectWrites mode(direct);
        for (const std::size_t length :
             {std::size_t{0}, std::size_t{1}, a - 1, a, a + 1, piece - 1, piece, piece + 1, 3 * piece + 5}) {
            for (const bool oneCall : {true, false}) {
                SCOPED_TRACE(std::to_string(length) + " bytes" + (oneCall ? " in one call" : " in uneven calls") +
                             (direct ? ", direct where the file system takes it" : ", through the page cache"));
                const auto target = dir / ("f" + std::to_string(length) + (oneCall ? "a" : "b") + ".bin");
                AtomicFile file(target);
                WriteBehindFile sink(file);
                if (!direct) {
                    EXPECT_FALSE(sink.direct());
                }
                for (std::size_t at = 0, n = 1; at < length; at += n, n = n * 5 % 700001 + 1) {
                    n = oneCall ? length : std::min(n, length - at);
                    EXPECT_EQ(sink.write(bytes.data() + at, n), n);
                }
                sink.close();
                file.commit();
                EXPECT_EQ(std::filesystem::file_size(target), length);
                EXPECT_TRUE(test::readFile(target) == bytes.substr(0, length));
            }
        }
    }
}

TEST(AtomicFile, WriteBehindGoesOnThroughThePageCacheWhereADirectWriteIsCutShort) {
    // A file size limit cuts the padded last piece of a direct write short (or refuses it): the rest goes through the
    // page cache and the file still ends at its last byte. Past the limit, close() names the file and the cause.
    test::TempDir dir;
    const std::size_t piece = WriteBehindFile::kPiece;
    std::string bytes(2 * piece, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2654435761U) >> 17);
    for (const std::size_t limit : {piece + 2048, piece + 3000}) {
        SCOPED_TRACE("limit " + std::to_string(limit));
        const auto target = dir / ("cut" + std::to_string(limit) + ".bin");
        {
            const test::FileSizeLimit cap(limit);
            AtomicFile file(target);
            WriteBehindFile sink(file);
            sink.write(bytes.data(), piece + 100);
            sink.close();
            file.commit();
        }
        EXPECT_TRUE(test::readFile(target) == bytes.substr(0, piece + 100));
    }
    const auto tooLarge = dir / "too large.bin";
    const test::FileSizeLimit cap(piece + 1000);
    AtomicFile file(tooLarge);
    WriteBehindFile sink(file, "cannot write the test file");
    EXPECT_EQ(sink.write(bytes.data(), bytes.size()), bytes.size());
    EXPECT_EQ(test::errorOf<IoError>([&] { sink.close(); }),
              tooLarge.string() + ": cannot write the test file: File too large");
}

TEST(AtomicFile, WriteBehindDroppedBeforeClosingLeavesNothingAndLetsTheNextFileThrough) {
    // A checkpoint abandoned half-way (an exception in the serialiser, a cancelled job): the writer thread stops
    // without writing what is queued, its pieces go back to the pool, and no temporary file is left. The next file,
    // written with the same pieces, holds every byte.
    test::TempDir dir;
    std::string bytes(7 * WriteBehindFile::kPiece + 333, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2246822519U) >> 9);
    for (int round = 0; round < 3; ++round) {
        {
            AtomicFile file(dir / "dropped.bin");
            WriteBehindFile sink(file);
            if (!sink.direct())
                GTEST_SKIP() << "the temporary folder's file system takes no direct writes: no writer thread to test";
            EXPECT_EQ(sink.write(bytes.data(), bytes.size()), bytes.size());
        }
        EXPECT_EQ(test::entriesIn(dir.path()), 0) << "round " << round;
    }
    const auto target = dir / "kept.bin";
    AtomicFile file(target);
    WriteBehindFile sink(file);
    EXPECT_EQ(sink.write(bytes.data(), bytes.size()), bytes.size());
    sink.close();
    file.commit();
    EXPECT_EQ(test::readFile(target), bytes);
}

TEST(AtomicFile, WriteBehindWritesEveryByteAcrossItsStretches) {
    test::TempDir dir;
    const auto target = dir / "big.bin";
    std::string bytes(2 * WriteBehindFile::kStretch + 12345, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2654435761U) >> 13);
    AtomicFile file(target);
    WriteBehindFile sink(file);
    // Pieces of uneven sizes, as a serialiser hands them over, some across a stretch's end.
    std::size_t at = 0, piece = 1;
    while (at < bytes.size()) {
        const std::size_t n = std::min(piece, bytes.size() - at);
        EXPECT_EQ(sink.write(bytes.data() + at, n), n);
        at += n;
        piece = piece * 7 % 3000001 + 1;
    }
    EXPECT_EQ(sink.error(), "");
    sink.close();
    file.commit();
    EXPECT_EQ(test::readFile(target), bytes);

    // All of it in one call, as LibTorch hands over a tensor's storage: written in pieces of kPiece, every byte kept.
    const auto whole = dir / "whole.bin";
    {
        AtomicFile one(whole);
        WriteBehindFile oneSink(one);
        EXPECT_EQ(oneSink.write(bytes.data(), bytes.size()), bytes.size());
        EXPECT_GT(bytes.size(), 4 * WriteBehindFile::kPiece);
        oneSink.close();
        one.commit();
    }
    EXPECT_EQ(test::readFile(whole), bytes);

    const auto nowhere = dir / "no such folder" / "x.bin";
    AtomicFile missing(nowhere);
    EXPECT_EQ(test::errorOf<IoError>([&] { WriteBehindFile unused(missing, "cannot write the test file"); }),
              nowhere.string() + ": cannot write the test file: No such file or directory");
}

TEST(AtomicFile, UnwritableDirectoryNamesTheFile) {
    const std::filesystem::path target = "/nonexistent-dir/out.png";
    try {
        writeFileAtomically(target, "x");
        FAIL();
    } catch (const IoError& e) {
        EXPECT_EQ(std::string(e.what()), "/nonexistent-dir/out.png: cannot create: No such file or directory");
    }
}

TEST(ImageIO, PngRoundTripRgbAndGray) {
    test::TempDir dir;
    Image rgb(7, 5, 3);
    for (std::size_t i = 0; i < rgb.pixels.size(); ++i)
        rgb.pixels[i] = static_cast<std::uint8_t>(i * 37);
    writePng(dir / "a.png", rgb);
    EXPECT_EQ(readImage(dir / "a.png").pixels, rgb.pixels);
    Image gray(3, 2, 1);
    gray.pixels = {0, 50, 100, 150, 200, 255};
    writePng(dir / "g.png", gray);
    EXPECT_EQ(readImage(dir / "g.png", 1).pixels, gray.pixels);
}

TEST(ImageIO, ClearErrors) {
    test::TempDir dir;
    const auto bad = dir / "bad.png";
    std::ofstream(bad) << "definitely not an image";
    try {
        readImage(bad);
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_EQ(std::string(e.what()), bad.string() + ": unsupported image format (expected PNG or JPEG)");
    }
    // A PNG cut in half.
    Image img(64, 64, 3, 128);
    writePng(dir / "full.png", img);
    auto bytes = encodePng(img);
    std::ofstream(dir / "half.png", std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    EXPECT_THROW(readImage(dir / "half.png"), FormatError);
    EXPECT_THROW(readImage(dir / "missing.png"), IoError);
}

TEST(ImageIO, RealJpegPatch) {
    NIC_REQUIRE_SHARED("patches/nic_example/example_128.jpg");
    const auto img = readImage(test::sharedDataDir() / "patches/nic_example/example_128.jpg");
    EXPECT_EQ(img.width, 128);
    EXPECT_EQ(img.height, 128);
    EXPECT_EQ(img.channels, 3);
}

TEST(Resample, AreaAverageIsExactForIntegerFactors) {
    Image src(4, 2, 1);
    src.pixels = {0, 10, 20, 30, 40, 50, 60, 70};
    const auto dst = resizeArea(src, 2, 1);
    EXPECT_EQ(dst.pixels[0], 25); // mean of 0,10,40,50
    EXPECT_EQ(dst.pixels[1], 45); // mean of 20,30,60,70
}

TEST(Resample, AreaAverageNonIntegerFactorPreservesMean) {
    Image src(9, 9, 3);
    for (std::size_t i = 0; i < src.pixels.size(); ++i)
        src.pixels[i] = static_cast<std::uint8_t>((i * 13) % 256);
    const auto dst = resizeArea(src, 4, 4);
    double a = 0, b = 0;
    for (auto v : src.pixels)
        a += v;
    for (auto v : dst.pixels)
        b += v;
    EXPECT_NEAR(a / static_cast<double>(src.pixels.size()), b / static_cast<double>(dst.pixels.size()), 1.0);
}

TEST(Resample, BilinearConstantStaysConstant) {
    Image src(3, 3, 3, 77);
    const auto dst = resizeBilinear(src, 10, 7);
    for (auto v : dst.pixels)
        EXPECT_EQ(v, 77);
}

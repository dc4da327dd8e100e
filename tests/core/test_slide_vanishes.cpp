// A slide file deleted, replaced (rename over it), truncated or rewritten in place while it is open:
// nic::Slide reads and compressSlide fail with an error that names the file and says it changed since
// it was opened; nothing is read from the other file, nothing crashes, no output is published.
//
// Background (OpenSlide 3.4.1): its TIFF reader opens the file *by name* for every read (no descriptor
// is kept, no mmap), so after a delete every uncached tile fails ("Cannot read raw tile"), and after a
// replace the old tile offsets are read from the new file: a tile that happens to sit at the same
// offset decodes without error and returns the other slide's pixels.
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "slidechange.h"
#include "testsupport.h"

#include <gmock/gmock.h>

#include <chrono>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace nic;
using ::testing::HasSubstr;
using nic::test::errorOf;

namespace {

namespace fs = std::filesystem;

using nic::test::Change;
using nic::test::kAllChanges;
using nic::test::applyChange;
using nic::test::expectedCause;
using nic::test::name;

class SlideVanishes : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir();
        SynthWriteOptions w;
        w.threads = 2;
        w.thumbnailMaxSide = 256;
        SynthSlideParams a;
        a.width = 2400;
        a.height = 1800;
        a.mpp = 0.5;
        a.seed = 11;
        a.tissueCoverage = 0.4;
        SynthSlide(a).write(original(), w);
        // Another slide with the same layout: its tiles sit at nearly the same offsets, the worst case
        // for a replace (old offsets still decode).
        SynthSlideParams b = a;
        b.seed = 12;
        SynthSlide(b).write(other(), w);
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static fs::path original() { return *dir_ / "original.svs"; }
    static fs::path other() { return *dir_ / "other.svs"; }

    /// A private copy of the original slide, last written a minute ago (so that a rewrite in place
    /// changes its modification time even on filesystems with coarse timestamps).
    fs::path freshCopy(const std::string& stem) {
        const fs::path p = out_ / (stem + ".svs");
        fs::copy_file(original(), p, fs::copy_options::overwrite_existing);
        fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::minutes(1));
        return p;
    }

    static CompressOptions opts(bool pipelined) {
        CompressOptions o;
        o.batchSize = 8;
        o.readThreads = 2;
        o.bandRows = 2;
        o.pipelined = pipelined;
        return o;
    }

    test::TempDir out_;
    static inline test::TempDir* dir_ = nullptr;
};

void expectNamedCause(const std::string& msg, const fs::path& path, Change c) {
    EXPECT_THAT(msg, HasSubstr(path.string())) << name(c);
    EXPECT_THAT(msg, HasSubstr("since it was opened")) << name(c);
    EXPECT_THAT(msg, HasSubstr(expectedCause(c))) << name(c);
}

} // namespace

TEST_F(SlideVanishes, ReadsAfterTheFileChangedThrowTheCauseInsteadOfReadingTheOtherFile) {
    for (const Change c : kAllChanges) {
        SCOPED_TRACE(name(c));
        const fs::path p = freshCopy(std::string("slide-") + name(c));
        const Slide slide(p);
        const Image before = slide.readRegion(0, 0, 0, 256, 256);
        const auto sizeBefore = fs::file_size(p);
        applyChange(c, p, other());
        // An uncached tile at the start of the file (where a replacing slide's tile sits at the same
        // offset), one in the middle, and the one already read (in OpenSlide's tile cache).
        for (const auto& [x, y] : {std::pair<int, int>{256, 0}, {1024, 1024}, {0, 0}}) {
            const std::string msg = errorOf<SlideError>([&] { slide.readRegion(x, y, 0, 256, 256); });
            expectNamedCause(msg, p, c);
            if (c == Change::TruncateHalf || c == Change::TruncateToZero) {
                EXPECT_THAT(msg, HasSubstr("size was " + std::to_string(sizeBefore) + " bytes, now " +
                                           std::to_string(fs::file_size(p))));
            }
        }
        EXPECT_THAT(errorOf<SlideError>([&] { slide.thumbnail(64); }), HasSubstr("since it was opened"));
        if (slide.associatedImages().count("thumbnail")) {
            EXPECT_THAT(errorOf<SlideError>([&] { slide.readAssociatedImage("thumbnail"); }),
                        HasSubstr("since it was opened"));
        }
        EXPECT_EQ(before.width, 256);
    }
}

TEST_F(SlideVanishes, AFileMovedBackOrReplacedByAnIdenticalCopyIsReadableAgain) {
    // The check is on the file's identity, not a latch: moving the same file away and back (same inode,
    // size and time) makes the open slide readable again.
    const fs::path p = freshCopy("moved");
    const Slide slide(p);
    const Image a = slide.readRegion(512, 512, 0, 128, 128);
    fs::rename(p, out_ / "elsewhere.svs");
    EXPECT_THAT(errorOf<SlideError>([&] { slide.readRegion(1024, 512, 0, 128, 128); }), HasSubstr("vanished"));
    fs::rename(out_ / "elsewhere.svs", p);
    EXPECT_EQ(slide.readRegion(512, 512, 0, 128, 128).pixels, a.pixels);
    // A copy of the same bytes with the same time put in its place (rsync -t, or a filesystem whose
    // inode numbers are not stable) is the same slide: still readable.
    const fs::path copy = out_ / "copy.svs";
    fs::copy_file(p, copy);
    fs::last_write_time(copy, fs::last_write_time(p));
    fs::rename(copy, p);
    EXPECT_EQ(slide.readRegion(512, 512, 0, 128, 128).pixels, a.pixels);
    EXPECT_NO_THROW(slide.readRegion(1536, 1024, 0, 128, 128));
}

TEST_F(SlideVanishes, CompressionFailsWithTheCauseAndPublishesNothing) {
    MeanRgbEncoder enc(64);
    for (const bool pipelined : {true, false})
        for (const bool skipBad : {false, true})
            for (const Change c : kAllChanges) {
                SCOPED_TRACE(std::string(name(c)) + (pipelined ? " pipelined" : " serial") +
                             (skipBad ? " --skip-bad-regions" : ""));
                const fs::path p = freshCopy(std::string("c-") + name(c));
                const fs::path out = out_ / "out" / (p.stem().string() + ".h5");
                fs::remove(out); // an earlier iteration's failure must not turn this one into a skip
                fs::remove(partialPathFor(out));
                CompressOptions o = opts(pipelined);
                o.skipBadRegions = skipBad; // a changed file is not a bad region: it fails either way
                bool changed = false;
                std::int64_t changedAt = 0, total = 0;
                JobContext ctx(
                    [&](const JobContext::Progress& pr) {
                        if (changed || pr.step.rfind("compressing", 0) != 0 || pr.total <= 0)
                            return;
                        if (pr.done * 10 >= pr.total * 3) { // at 30 %
                            applyChange(c, p, other());
                            changed = true;
                            changedAt = pr.done;
                            total = pr.total;
                        }
                    },
                    {});
                ctx.setMinInterval(std::chrono::milliseconds(0));
                const auto t0 = std::chrono::steady_clock::now();
                const std::string msg = errorOf<SlideError>([&] { compressSlide(p, enc, out, o, ctx); });
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                ASSERT_TRUE(changed);
                EXPECT_LT(changedAt, total);
                expectNamedCause(msg, p, c);
                EXPECT_THAT(msg, ::testing::Not(HasSubstr("unreadable region"))) << "not blamed on a region";
                EXPECT_FALSE(fs::exists(out));
                EXPECT_FALSE(fs::exists(partialPathFor(out))) << "read errors remove the partial file";
                EXPECT_LT(s, 10.0);
            }
}

TEST_F(SlideVanishes, CliExitsOneNamingTheFileWhenTheSlideIsDeletedWhileItRuns) {
    if (!fs::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    // The CLI maps the same SlideError to exit code 1. Deterministic trigger without a hook: the slide
    // is deleted as soon as the partial output exists (the tissue mask is done, encoding has started);
    // --serial --band-rows 1 --batch 1 --patch 16 makes encoding last long enough (thousands of cells).
    const fs::path p = freshCopy("cli");
    const fs::path outDir = out_ / "cli-out";
    const fs::path partial = partialPathFor(outDir / "cli.h5");
    const std::string nic = "'" + test::nicExecutable().string() +
                            "' compress -q -e mean-rgb --patch 16 --band-rows 1 --serial --batch 1 -o '" +
                            outDir.string() + "' '" + p.string() + "'";
    const std::string script = "( " + nic + " & pid=$!; while [ ! -f '" + partial.string() +
                               "' ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done; rm -f '" + p.string() +
                               "'; wait $pid; echo status=$? )";
    std::string o, e;
    ASSERT_EQ(test::runCommand(script, &o, &e), 0) << e;
    if (fs::exists(outDir / "cli.h5"))
        GTEST_SKIP() << "the run finished before the slide could be deleted";
    EXPECT_THAT(o, HasSubstr("status=1")) << e;
    EXPECT_THAT(e, HasSubstr(p.string() + ": slide file vanished since it was opened")) << e;
    EXPECT_FALSE(fs::exists(partial));
}

// Broken-file corpus, in the spirit of OpenSlide's test suite: every kind of file nic reads (slides,
// ASAP XML, compressed slides, heatmaps, cohort CSVs) is written by the project itself, then damaged in
// the ways real files get damaged — truncated at many lengths, bit-flipped at many places, or replaced by
// a file of another kind — and read again. The reader must either succeed (a flipped bit in pixel data
// is not detectable) or throw nic::Error whose message names the file; it must never crash, hang or
// throw anything else. This suite also runs under ASan/UBSan (the asan preset), which turns any
// out-of-bounds read on a damaged file into a failure.
#include "core/annotations/annotation.h"
#include "core/slidelearning/cohort.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace nic {
namespace {

std::vector<char> readBytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeBytes(const std::filesystem::path& p, const std::vector<char>& bytes, std::size_t n) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(n));
}

/// What a reader did with a damaged file.
struct Outcome {
    bool ok = false;
    std::string error; ///< what() of the nic::Error, when it threw one
};

/// Runs `read` on `path`: success, or a nic::Error whose message names the file. Anything else (another
/// exception type, a message without the file) fails the test with `what` as context.
Outcome expectCleanOutcome(const std::function<void(const std::filesystem::path&)>& read,
                           const std::filesystem::path& path, const std::string& what) {
    Outcome o;
    try {
        read(path);
        o.ok = true;
    } catch (const Error& e) {
        o.error = e.what();
        EXPECT_NE(o.error.find(path.filename().string()), std::string::npos)
            << what << ": the message does not name the file: " << o.error;
    } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": not a nic::Error: " << e.what();
    } catch (...) {
        ADD_FAILURE() << what << ": unknown exception";
    }
    return o;
}

/// The damage applied to one intact file; returns how many variants were refused.
struct Corpus {
    std::filesystem::path intact;
    std::function<void(const std::filesystem::path&)> read;
    /// Whether every truncated prefix must be refused, except cuts of at most `tailSlack` bytes off the end
    /// (a JPEG tile's end-of-image marker, an XML document's final newline carry nothing).
    bool everyTruncationRefused = true;
    std::size_t tailSlack = 0;

    int run(const std::filesystem::path& dir, const std::string& ext, int flips, std::uint64_t seed) const {
        const auto bytes = readBytes(intact);
        EXPECT_GT(bytes.size(), 64U);
        int refused = 0;
        // The intact file reads.
        EXPECT_TRUE(expectCleanOutcome(read, intact, "intact " + intact.filename().string()).ok);
        // Truncations: empty, the first bytes (magic), then fractions of the file, and one byte short.
        std::vector<std::size_t> cuts = {0, 1, 4, 8, 16, 64};
        for (double f : {0.1, 0.25, 0.5, 0.75, 0.9, 0.99})
            cuts.push_back(static_cast<std::size_t>(static_cast<double>(bytes.size()) * f));
        cuts.push_back(bytes.size() - 1);
        for (std::size_t n : cuts) {
            const auto p = dir / ("truncated-" + std::to_string(n) + ext);
            writeBytes(p, bytes, n);
            const Outcome o = expectCleanOutcome(read, p, "truncated to " + std::to_string(n) + " bytes");
            if (!o.ok)
                ++refused;
            else if (everyTruncationRefused && bytes.size() - n > tailSlack)
                ADD_FAILURE() << p.filename() << " (truncated to " << n << " of " << bytes.size()
                              << " bytes) was accepted";
            std::filesystem::remove(p);
        }
        // Bit flips at random places (the header region gets its share: a quarter land in the first 1 KiB).
        std::mt19937_64 rng(seed);
        for (int k = 0; k < flips; ++k) {
            auto damaged = bytes;
            const std::size_t limit = (k % 4 == 0) ? std::min<std::size_t>(1024, bytes.size()) : bytes.size();
            const std::size_t at = static_cast<std::size_t>(rng() % limit);
            damaged[at] = static_cast<char>(damaged[at] ^ static_cast<char>(1U << (rng() % 8)));
            const auto p = dir / ("flipped-" + std::to_string(at) + ext);
            writeBytes(p, damaged, damaged.size());
            if (!expectCleanOutcome(read, p, "bit flipped at byte " + std::to_string(at)).ok)
                ++refused;
            std::filesystem::remove(p);
        }
        return refused;
    }
};

/// One small synthetic slide with lesions, its XML, its Mean-RGB compressed grid, a heatmap and a cohort.
class BrokenFiles : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir;
        SynthCohortParams p;
        p.outDir = dir_->path() / "cohort";
        p.count = 1;
        p.width = p.height = 2048;
        p.positiveFraction = 1.0;
        p.minLesions = p.maxLesions = 2;
        p.lesionMinUm = 200;
        p.lesionMaxUm = 300;
        p.seed = 11;
        p.write.threads = 1;
        generateSynthCohort(p);
        MeanRgbEncoder enc(128);
        CompressOptions o;
        compressSlide(slide(), enc, grid(), o);
        HeatmapData h;
        h.rows = 16;
        h.cols = 16;
        h.heat.assign(256, 0.25f);
        h.tissue.assign(256, 1.0f);
        h.cellSize = 128;
        h.level0Width = h.level0Height = 2048;
        h.slideFile = "synth-000.svs";
        h.task = "classification";
        writeHeatmapFile(heatmap(), h);
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static std::filesystem::path slide() { return dir_->path() / "cohort/synth-000.svs"; }
    static std::filesystem::path xml() { return dir_->path() / "cohort/synth-000.xml"; }
    static std::filesystem::path cohort() { return dir_->path() / "cohort/cohort.csv"; }
    static std::filesystem::path grid() { return dir_->path() / "synth-000.h5"; }
    static std::filesystem::path heatmap() { return dir_->path() / "synth-000_heatmap.h5"; }

    test::TempDir work;
    static test::TempDir* dir_;
};
test::TempDir* BrokenFiles::dir_ = nullptr;

/// Opens a slide and decodes every level (coarse levels whole, level 0 in 512² tiles).
void readWholeSlide(const std::filesystem::path& p) {
    const Slide s(p);
    for (int l = 0; l < s.levelCount(); ++l) {
        const auto& lv = s.level(l);
        for (std::int64_t y = 0; y < lv.height; y += 512)
            for (std::int64_t x = 0; x < lv.width; x += 512) {
                const double d = static_cast<double>(s.width()) / static_cast<double>(lv.width);
                s.readRegion(static_cast<std::int64_t>(static_cast<double>(x) * d),
                             static_cast<std::int64_t>(static_cast<double>(y) * d), l,
                             std::min<std::int64_t>(512, lv.width - x), std::min<std::int64_t>(512, lv.height - y));
            }
    }
}

void readWholeGrid(const std::filesystem::path& p) {
    const LatentGridReader r(p);
    (void)r.grid(0);
    (void)r.tissueFractions();
    (void)r.cellFlags();
}

TEST_F(BrokenFiles, Slides) {
    // A JPEG-compressed tile can lose bits without the decoder noticing: flips may be accepted, never crash.
    Corpus c{slide(), readWholeSlide};
    c.tailSlack = 2; // the last tile's JPEG end-of-image marker: libjpeg decodes the tile without it
    const int refused = c.run(work.path(), ".svs", 24, 1);
    EXPECT_GE(refused, 13); // at least every truncation
}

TEST_F(BrokenFiles, AnnotationXml) {
    // A truncated XML document is malformed; flipped bits in numbers or names may still parse.
    Corpus c{xml(), [](const std::filesystem::path& p) { (void)AnnotationSet::load(p); }};
    c.tailSlack = 1; // cutting one byte off "</ASAP_Annotations>\n" leaves a complete document
    const int refused = c.run(work.path(), ".xml", 48, 2);
    EXPECT_GE(refused, 12);
}

TEST_F(BrokenFiles, CompressedSlides) {
    Corpus c{grid(), readWholeGrid};
    const int refused = c.run(work.path(), ".h5", 48, 3);
    EXPECT_GE(refused, 13);
}

TEST_F(BrokenFiles, Heatmaps) {
    Corpus c{heatmap(), [](const std::filesystem::path& p) { (void)readHeatmapFile(p); }};
    const int refused = c.run(work.path(), ".h5", 48, 4);
    EXPECT_GE(refused, 13);
}

TEST_F(BrokenFiles, CohortCsv) {
    // A cohort cut inside its only data row may still be a valid (shorter) CSV; it must never crash.
    Corpus c{cohort(), [](const std::filesystem::path& p) { (void)readCohort(p); }};
    c.everyTruncationRefused = false;
    c.run(work.path(), ".csv", 32, 5);
}

TEST_F(BrokenFiles, EveryReaderRefusesEveryOtherKindOfFile) {
    const std::vector<std::pair<std::string, std::filesystem::path>> files = {
        {"slide", slide()}, {"xml", xml()}, {"grid", grid()}, {"heatmap", heatmap()}, {"cohort", cohort()}};
    const std::vector<std::pair<std::string, std::function<void(const std::filesystem::path&)>>> readers = {
        {"slide", readWholeSlide},
        {"xml", [](const std::filesystem::path& p) { (void)AnnotationSet::load(p); }},
        {"grid", readWholeGrid},
        {"heatmap", [](const std::filesystem::path& p) { (void)readHeatmapFile(p); }},
        {"cohort", [](const std::filesystem::path& p) { (void)readCohort(p); }}};
    for (const auto& [fileKind, file] : files)
        for (const auto& [readerKind, read] : readers) {
            if (fileKind == readerKind)
                continue;
            // Same extension as the reader expects, so no reader can refuse by name alone.
            const std::string ext = readerKind == "slide"    ? ".svs"
                                    : readerKind == "xml"    ? ".xml"
                                    : readerKind == "cohort" ? ".csv"
                                                             : ".h5";
            const auto p = work / (fileKind + "-as-" + readerKind + ext);
            std::filesystem::copy_file(file, p, std::filesystem::copy_options::overwrite_existing);
            const Outcome o = expectCleanOutcome(read, p, fileKind + " read as " + readerKind);
            EXPECT_FALSE(o.ok) << fileKind << " file accepted by the " << readerKind << " reader";
        }
}

} // namespace
} // namespace nic

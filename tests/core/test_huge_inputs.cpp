// Huge inputs (issue 9): an ASAP XML with 210,000 vertices in 10,000 annotations, generated here,
// loads, round-trips byte for byte and rasterises onto a slide-level grid. Times are printed, and
// asserted only against a generous bound (60 s each; a few seconds on a 2-core VM).
// A cohort of tiny synthetic slides goes through `nic compress --shard 0/2` and `--shard 1/2` run as
// two concurrent processes into one folder: every slide's grid exactly once, all valid, nothing else
// left. 48 slides by default (a few seconds); NIC_SHARD_SLIDES=1000 runs the full-size check (see
// scripts/check-shard-collision.sh). A tiny heatmap file that declares 10^12 cells is refused with
// a clear error instead of std::bad_alloc.
#include "core/annotations/annotation.h"
#include "core/annotations/annotationraster.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/synth/synth.h"
#include "testsupport.h"

#include <chrono>
#include <cstdlib>
#include <set>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

using namespace nic;

namespace {

constexpr int kAnnotations = 10000;
constexpr int kVerticesEach = 21;
constexpr double kSlideSide = 100000.0;

/// 10,000 irregular polygons (jittered circles, 8–120 px radius) over a 100k × 100k slide, in three
/// groups (one nested), with non-integer coordinates and a few extra attributes.
AnnotationSet hugeSet() { return synthAnnotationCrowd(kAnnotations, kVerticesEach, kSlideSide); }

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

TEST(HugeInputs, AsapXmlWith210kVerticesLoadsRoundTripsAndRasterises) {
    test::TempDir dir;
    const AnnotationSet original = hugeSet();
    std::size_t vertices = 0;
    for (const auto& a : original.annotations)
        vertices += a.coordinates.size();
    ASSERT_GE(vertices, 200000U);
    ASSERT_GE(original.annotations.size(), 10000U);

    auto t0 = std::chrono::steady_clock::now();
    original.save(dir / "huge.xml");
    const double saveSeconds = secondsSince(t0);
    const std::string bytes = nic::test::readFile(dir / "huge.xml");

    t0 = std::chrono::steady_clock::now();
    const AnnotationSet loaded = AnnotationSet::load(dir / "huge.xml");
    const double loadSeconds = secondsSince(t0);
    EXPECT_TRUE(loaded == original);

    // Byte for byte: saving what was loaded reproduces the file.
    loaded.save(dir / "again.xml");
    EXPECT_TRUE(nic::test::readFile(dir / "again.xml") == bytes);

    // Onto the grid of a 100k × 100k slide with 256 px cells (391 × 391), as eval-heatmap does.
    const int cells = static_cast<int>(std::ceil(kSlideSide / 256.0));
    t0 = std::chrono::steady_clock::now();
    const std::vector<float> frac = coverage(loaded, {"Tumor"}, 0.0, 0.0, 256.0, cells, cells);
    const double rasterSeconds = secondsSince(t0);
    ASSERT_EQ(frac.size(), static_cast<std::size_t>(cells) * static_cast<std::size_t>(cells));
    double covered = 0.0;
    for (float f : frac) {
        ASSERT_GE(f, 0.0f);
        ASSERT_LE(f, 1.0f);
        covered += f;
    }
    // "Tumor" (with the nested "itc") holds two thirds of the 10,000 blobs of mean area ~π·64² px².
    EXPECT_GT(covered * 256.0 * 256.0, 2000 * M_PI * 40.0 * 40.0);

    std::printf("[ huge XML ] %zu vertices, %zu annotations, %.1f MB: save %.2f s, load %.2f s, "
                "coverage on %d×%d cells %.2f s\n",
                vertices, loaded.annotations.size(), static_cast<double>(bytes.size()) / 1e6, saveSeconds, loadSeconds,
                cells, cells, rasterSeconds);
    EXPECT_LT(loadSeconds, 60.0);
    EXPECT_LT(rasterSeconds, 60.0);
}

TEST(HugeInputs, TwoShardProcessesCompressACohortWithoutCollision) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    const char* env = std::getenv("NIC_SHARD_SLIDES");
    const int count = env ? std::atoi(env) : 48;
    ASSERT_GT(count, 1);
    test::TempDir dir;
    SynthCohortParams p;
    p.outDir = dir / "cohort";
    p.count = count;
    p.width = p.height = 256;
    p.positiveFraction = 0.0;
    p.seed = 9;
    p.write.threads = 1;
    p.write.thumbnailMaxSide = 0;
    auto t0 = std::chrono::steady_clock::now();
    const auto entries = generateSynthCohort(p);
    const double synthSeconds = secondsSince(t0);
    ASSERT_EQ(entries.size(), static_cast<std::size_t>(count));

    const auto out = dir / "grids";
    const std::string nic = "'" + test::nicExecutable().string() + "' compress -q -e mean-rgb --patch 64 --read-threads 1 --cohort '" +
                            (p.outDir / "cohort.csv").string() + "' -o '" + out.string() + "' --shard ";
    const std::string both = nic + "0/2 >'" + (dir / "s0.log").string() + "' 2>&1 & a=$!; " + nic + "1/2 >'" +
                             (dir / "s1.log").string() + "' 2>&1 & b=$!; wait $a; ra=$?; wait $b; rb=$?; " +
                             "echo \"shard 0: $ra, shard 1: $rb\"; [ $ra -eq 0 ] && [ $rb -eq 0 ]";
    t0 = std::chrono::steady_clock::now();
    std::string o, e;
    EXPECT_EQ(test::runCommand("sh -c \"" + both + "\"" , &o, &e), 0) << o << e << nic::test::readFile(dir / "s0.log") << nic::test::readFile(dir / "s1.log");
    const double compressSeconds = secondsSince(t0);

    std::set<std::string> expected;
    for (const auto& en : entries)
        expected.insert(std::filesystem::path(en.slide).stem().string() + ".h5");
    std::set<std::string> found;
    for (const auto& f : std::filesystem::directory_iterator(out))
        found.insert(f.path().filename().string());
    EXPECT_TRUE(found == expected) << found.size() << " files for " << expected.size() << " slides";
    for (const auto& en : entries) {
        const auto grid = out / (std::filesystem::path(en.slide).stem().string() + ".h5");
        try {
            const LatentGridReader r(grid);
            EXPECT_EQ(r.meta().slideFile, en.slide);
            EXPECT_EQ(r.grid(0).channels, 3);
        } catch (const std::exception& ex) {
            ADD_FAILURE() << ex.what();
        }
    }
    std::printf("[ shards ] %d slides of 256x256: synth %.1f s, two concurrent `nic compress --shard i/2` %.1f s\n", count,
                synthSeconds, compressSeconds);
}

// Found reviewing the readers while fuzzing them: a 7 KB heatmap file whose attributes and (never written) datasets say
// 1,000,000 x 1,000,000 cells made readHeatmapFile allocate 4 TB per dataset: std::bad_alloc instead of
// the documented IoError (an abort under ASan), or, for sizes that do fit, memory exhausted.
TEST(HugeInputs, HeatmapDeclaringATrillionCellsIsRefused) {
    test::TempDir dir;
    const auto p = dir / "huge_heatmap.h5";
    constexpr std::int64_t side = 1000000;
    {
        Hdf5File f(p, Hdf5File::Mode::Create);
        f.setStringAttribute("format", "nic-heatmap");
        f.setIntAttribute("format_version", 1);
        f.setIntAttribute("rows", side);
        f.setIntAttribute("cols", side);
        f.setDoubleAttribute("cell_size", 16);
        f.setIntAttribute("level0_width", side * 16);
        f.setIntAttribute("level0_height", side * 16);
        for (const char* n : {"slide_file", "grid_file", "model", "task"})
            f.setStringAttribute(n, "x");
        f.setIntAttribute("layer", 1);
        f.setDoubleAttribute("output", 0);
        f.setDoubleAttribute("prediction", 0);
        f.createDataset("heatmap", H5Type::Float32, {side, side});
        f.createDataset("tissue", H5Type::Float32, {side, side});
        f.close();
    }
    ASSERT_LT(std::filesystem::file_size(p), 100000U);
    EXPECT_EQ(test::errorOf<FormatError>([&] { (void)readHeatmapFile(p); }),
              p.string() + ": heatmap of 1000000 x 1000000 cells is out of range (at most 2147483648 cells)");
}

// The same for compressed slides: a finished grid whose attributes and datasets were rewritten to say
// 1,000,000 x 1,000,000 cells (a few KB on disk) made LatentGridReader::grid() allocate terabytes.
TEST(HugeInputs, CompressedSlideDeclaringATrillionCellsIsRefused) {
    test::TempDir dir;
    SynthSlideParams sp;
    sp.width = sp.height = 512;
    SynthWriteOptions w;
    w.threads = 1;
    w.thumbnailMaxSide = 0;
    SynthSlide(sp).write(dir / "s.svs", w);
    MeanRgbEncoder enc(64);
    const auto p = dir / "s.h5";
    compressSlide(dir / "s.svs", enc, p, CompressOptions{});
    constexpr std::int64_t side = 1000000;
    {
        Hdf5File f(p, Hdf5File::Mode::ReadWrite);
        f.setIntAttribute("grid_rows", side);
        f.setIntAttribute("grid_cols", side);
        for (const char* n : {"grid", "tissue_fraction", "cell_flags"})
            f.remove(n);
        f.createDataset("grid", H5Type::Float16, {side, side, 3});
        f.createDataset("tissue_fraction", H5Type::Float32, {side, side});
        f.createDataset("cell_flags", H5Type::UInt8, {side, side});
        f.close();
    }
    const std::string expected =
        p.string() + ": grid of 1000000 x 1000000 cells x 3 channels is out of range (at most 2147483648 cells and "
                     "4294967296 values)";
    EXPECT_EQ(test::errorOf<FormatError>([&] { (void)readLatentGridMeta(p); }), expected);
    EXPECT_EQ(test::errorOf<FormatError>([&] { (void)LatentGridReader(p).grid(0); }), expected);
}

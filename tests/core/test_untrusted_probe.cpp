// Untrusted HDF5 files are read first in nic-probe (issue 19): valid files pass and say what they are,
// refusals carry the reader's own message, a crash or hang in the child becomes a one-line error naming
// the file, outcomes are cached per file version, files this process wrote are trusted, and every
// crashing/hanging input the fuzzers found (fuzz/regressions) gives `nic` exit 1 with one line, quickly.
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/base/untrustedfileprobe.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <zlib.h>

using namespace nic;
using nic::test::errorOf;

namespace {

const std::filesystem::path kProbe = NIC_PROBE_PATH;

LatentGridMeta tinyMeta() {
    LatentGridMeta m;
    m.encoderName = "test";
    m.encoderHash = "abc123";
    m.codeSize = 4;
    m.patchSize = 64;
    m.stride = 64;
    m.targetMpp = 0.5;
    m.slideMpp = 0.5;
    m.slideMppSource = "slide";
    m.readSize = 64;
    m.level0Width = 3 * 64;
    m.level0Height = 2 * 64;
    m.rows = 2;
    m.cols = 3;
    m.slideFile = "slide.svs";
    return m;
}

void writeTinyGrid(const std::filesystem::path& path) {
    const LatentGridMeta m = tinyMeta();
    const std::vector<float> tissue(6, 1.0F);
    auto w = LatentGridWriter::create(path, m, tissue, 2);
    const std::vector<float> values(static_cast<std::size_t>(2 * 3 * m.codeSize), 0.25F);
    const std::vector<std::uint8_t> flags(6, kCellEncoded);
    w->writeBand(2, {values.data()}, flags.data());
    w->finishAndPublish(path);
}

void writeTinyHeatmap(const std::filesystem::path& path) {
    HeatmapData d;
    d.rows = 2;
    d.cols = 2;
    d.heat = {0, 1, 2, 3};
    d.tissue = {1, 1, 1, 1};
    d.cellSize = 64;
    d.level0Width = 128;
    d.level0Height = 128;
    writeHeatmapFile(path, d);
}

// A 16 x 16-cell grid of 32 float16 channels with varied values: its one grid chunk (16 x 16 x 32) is
// 16384 bytes before compression, the largest compressed stream in the file.
void writeVariedGrid(const std::filesystem::path& path) {
    LatentGridMeta m = tinyMeta();
    m.codeSize = 32;
    m.rows = m.cols = 16;
    m.level0Width = m.level0Height = 16 * 64;
    const std::vector<float> tissue(256, 1.0F);
    auto w = LatentGridWriter::create(path, m, tissue, 16);
    std::vector<float> values(256 * 32);
    for (std::size_t i = 0; i < values.size(); ++i)
        values[i] = static_cast<float>((i * 2654435761U) % 1000) / 37.0F;
    const std::vector<std::uint8_t> flags(256, kCellEncoded);
    w->writeBand(16, {values.data()}, flags.data());
    w->finishAndPublish(path);
}

struct ZlibStreamContent {
    std::size_t offset = 0, length = 0;
    std::string inflated;
};

// Every zlib stream in `bytes` that inflates to `inflatedBytes`, in file order.
std::vector<ZlibStreamContent> zlibStreams(const std::string& bytes, std::size_t inflatedBytes) {
    std::vector<ZlibStreamContent> found;
    std::string out(inflatedBytes * 2, '\0');
    for (std::size_t i = 0; i + 2 < bytes.size(); ++i) {
        const auto b0 = static_cast<unsigned char>(bytes[i]), b1 = static_cast<unsigned char>(bytes[i + 1]);
        if (b0 != 0x78 || ((b0 << 8) | b1) % 31 != 0)
            continue;
        z_stream z{};
        if (inflateInit(&z) != Z_OK)
            continue;
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + i));
        z.avail_in = static_cast<uInt>(bytes.size() - i);
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        const int status = inflate(&z, Z_FINISH);
        if (status == Z_STREAM_END && z.total_out == inflatedBytes)
            found.push_back({i, static_cast<std::size_t>(z.total_in), out.substr(0, inflatedBytes)});
        inflateEnd(&z);
    }
    return found;
}

// The longest zlib stream in `bytes` that inflates to `inflatedBytes` (a chunk that compresses worst).
ZlibStreamContent longestZlibStream(const std::string& bytes, std::size_t inflatedBytes) {
    ZlibStreamContent best;
    for (auto& c : zlibStreams(bytes, inflatedBytes))
        if (c.length > best.length)
            best = std::move(c);
    return best;
}

// Replaces the stream at `at` (its tail stays, ignored) with one that inflates to `factor` times its
// size of zeros. Returns false when that stream would not fit.
bool plantDecompressionBomb(std::string& bytes, const ZlibStreamContent& at, std::size_t factor) {
    const std::vector<unsigned char> zeros(factor * at.inflated.size(), 0);
    std::vector<unsigned char> bomb(compressBound(zeros.size()));
    uLongf size = static_cast<uLongf>(bomb.size());
    if (compress2(bomb.data(), &size, zeros.data(), zeros.size(), 9) != Z_OK || size >= at.length)
        return false;
    std::copy(bomb.begin(), bomb.begin() + static_cast<std::ptrdiff_t>(size), bytes.begin() + static_cast<std::ptrdiff_t>(at.offset));
    return true;
}

void writeScript(const std::filesystem::path& path, const std::string& body) {
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
}

// Every test starts and ends with the probe off and nothing cached (the default of core_tests).
class UntrustedFileProbeTest : public ::testing::Test {
protected:
    void SetUp() override { reset(); }
    void TearDown() override { reset(); }
    static void reset() {
        UntrustedFileProbe::disable();
        UntrustedFileProbe::clearCache();
        ::unsetenv("NIC_PROBE_TIMEOUT_S");
    }
    // A tiny heatmap h.h5 and, in place of nic-probe, a shell script `body`, with a 1 s time limit.
    void probeWithScript(const std::string& name, const std::string& body) {
        writeTinyHeatmap(dir / "h.h5");
        UntrustedFileProbe::clearCache();
        writeScript(dir / name, body);
        ::setenv("NIC_PROBE_TIMEOUT_S", "1", 1);
        UntrustedFileProbe::enable(dir / name);
    }
    nic::test::TempDir dir;
};

} // namespace

TEST_F(UntrustedFileProbeTest, ValidFilesPassAndSayWhatTheyAre) {
    writeTinyGrid(dir / "g.h5");
    writeTinyHeatmap(dir / "h.h5");
    UntrustedFileProbe::clearCache(); // forget that this process wrote them: run the real probe
    UntrustedFileProbe::enable(kProbe);
    const auto grid = UntrustedFileProbe::probe(UntrustedKind::LatentGrid, dir / "g.h5");
    EXPECT_TRUE(grid.ok) << grid.message;
    EXPECT_EQ(grid.message, "grid");
    const auto any = UntrustedFileProbe::probe(UntrustedKind::Hdf5, dir / "h.h5");
    EXPECT_TRUE(any.ok) << any.message;
    EXPECT_EQ(any.message, "heatmap");
    // Through the readers, with the probe on: same data as without it.
    EXPECT_EQ(readLatentGridMeta(dir / "g.h5").cols, 3);
    EXPECT_EQ(LatentGridReader(dir / "g.h5").gridHwc(0).size(), 24U);
    EXPECT_EQ(readHeatmapFile(dir / "h.h5").heat, (std::vector<float>{0, 1, 2, 3}));
}

TEST_F(UntrustedFileProbeTest, RefusalsCarryTheReadersOwnMessage) {
    std::ofstream(dir / "junk.h5") << "not hdf5 at all";
    writeTinyGrid(dir / "g.h5");
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(kProbe);
    const std::string junk = (dir / "junk.h5").string();
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readLatentGridMeta(dir / "junk.h5"); }), junk + ": not an HDF5 file");
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readHeatmapFile(dir / "g.h5"); }),
              (dir / "g.h5").string() + ": not a NIC heatmap file (no format = nic-heatmap attribute)");
    // A missing file is the reader's own error, not the probe's.
    EXPECT_EQ(errorOf<IoError>([&] { (void)readLatentGridMeta(dir / "missing.h5"); }),
              (dir / "missing.h5").string() + ": no such file");
}

TEST_F(UntrustedFileProbeTest, ACrashInTheChildIsAOneLineErrorAndTheParentNeverReadsTheFile) {
    writeTinyGrid(dir / "g.h5");
    UntrustedFileProbe::clearCache();
    // A stand-in for a probe that HDF5 crashes: it counts its runs, then dies of SIGSEGV.
    writeScript(dir / "segv-probe", "echo run >> '" + (dir / "runs").string() + "'\nkill -SEGV $$");
    UntrustedFileProbe::enable(dir / "segv-probe");
    const std::string expected =
        (dir / "g.h5").string() + ": reading the compressed slide crashed (SIGSEGV): the file is damaged; it was not opened";
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readLatentGridMeta(dir / "g.h5"); }), expected);
    EXPECT_EQ(errorOf<FormatError>([&] { (void)LatentGridReader(dir / "g.h5"); }), expected);
    EXPECT_EQ(nic::test::readFile(dir / "runs"), "run\n") << "probed once per file version";
    // A new version of the file (other size) is probed again.
    std::ofstream(dir / "g.h5", std::ios::app) << "x";
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readLatentGridMeta(dir / "g.h5"); }), expected);
    EXPECT_EQ(nic::test::readFile(dir / "runs"), "run\nrun\n");
}

// A reader that loops (what damaged files do to HDF5) is stopped after the limit in processor time.
TEST_F(UntrustedFileProbeTest, AComputingChildIsKilledAfterItsProcessorTime) {
    probeWithScript("spin-probe", "while :; do :; done");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readHeatmapFile(dir / "h.h5"); }),
              (dir / "h.h5").string() + ": reading the heatmap did not finish within 1 s of processor time "
                                        "(damaged file?); it was not opened");
    // Processor time never runs ahead of wall time: the child had its full second.
    EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.95);
}

// A reader that waits instead of computing is stopped after 4× the limit without processor time.
TEST_F(UntrustedFileProbeTest, AWaitingChildIsKilledAfterFourTimesTheLimitWithoutComputing) {
    probeWithScript("hang-probe", "exec sleep 60");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readHeatmapFile(dir / "h.h5"); }),
              (dir / "h.h5").string() +
                  ": reading the heatmap did not finish: it waited 4 s without computing (damaged file?); it was not opened");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(seconds, 3.95);
    EXPECT_LT(seconds, 50.0) << "the child was killed, not waited for";
}

// What failed in CI before the limit counted processor time: a valid file whose probe took longer than
// the limit in wall time only because the machine was busy. Here the probe is slow without computing.
TEST_F(UntrustedFileProbeTest, AProbeSlowedByABusyMachineStillPasses) {
    probeWithScript("slow-probe", "sleep 1.5; echo ok heatmap");
    const auto outcome = UntrustedFileProbe::probe(UntrustedKind::Heatmap, dir / "h.h5");
    EXPECT_TRUE(outcome.ok) << outcome.message;
    EXPECT_EQ(outcome.message, "heatmap");
    EXPECT_EQ(readHeatmapFile(dir / "h.h5").heat, (std::vector<float>{0, 1, 2, 3}));
}

TEST_F(UntrustedFileProbeTest, FilesThisProcessWroteAreNotProbed) {
    writeScript(dir / "segv-probe", "kill -SEGV $$");
    UntrustedFileProbe::enable(dir / "segv-probe");
    writeTinyGrid(dir / "g.h5");
    writeTinyHeatmap(dir / "h.h5");
    EXPECT_EQ(readLatentGridMeta(dir / "g.h5").rows, 2);
    EXPECT_EQ(readHeatmapFile(dir / "h.h5").cols, 2);
}

TEST_F(UntrustedFileProbeTest, AMissingProbeProgramIsAClearErrorNotASilentDirectRead) {
    writeTinyGrid(dir / "g.h5");
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(dir / "no-such-probe");
    const std::string e = errorOf<IoError>([&] { (void)readLatentGridMeta(dir / "g.h5"); });
    EXPECT_EQ(e, (dir / "g.h5").string() + ": cannot check the file before reading it: cannot start " +
                     (dir / "no-such-probe").string() + ": No such file or directory");
}

// The probe does not read a grid's values into memory; it decompresses every stored chunk once itself. A
// chunk whose compressed bytes are damaged is refused with the chunk named, and the reader never runs.
TEST_F(UntrustedFileProbeTest, DamagedGridChunkIsRefusedNamingTheChunk) {
    writeVariedGrid(dir / "g.h5");
    std::string bytes = nic::test::readFile(dir / "g.h5");
    const ZlibStreamContent chunk = longestZlibStream(bytes, 16384);
    ASSERT_GT(chunk.length, 1000U) << "the grid's compressed chunk";
    bytes[chunk.offset + chunk.length / 2] = static_cast<char>(bytes[chunk.offset + chunk.length / 2] ^ 0x5A);
    std::ofstream(dir / "g.h5", std::ios::binary | std::ios::trunc) << bytes;
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(kProbe);
    const std::string e = errorOf<FormatError>([&] { (void)LatentGridReader(dir / "g.h5"); });
    const std::string prefix = (dir / "g.h5").string() + ": dataset grid, chunk at [0, 0, 0]: damaged compressed data (zlib: ";
    EXPECT_EQ(e.substr(0, prefix.size()), prefix) << e;
    EXPECT_EQ(e.back(), ')') << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

// A chunk that decompresses to more than its size (a "zip bomb": HDF5 1.10's deflate filter would keep
// doubling its buffer for it) is refused before any reader inflates it.
TEST_F(UntrustedFileProbeTest, ChunkDecompressingToMoreThanItsSizeIsRefused) {
    writeVariedGrid(dir / "g.h5");
    std::string bytes = nic::test::readFile(dir / "g.h5");
    const ZlibStreamContent chunk = longestZlibStream(bytes, 16384);
    ASSERT_GT(chunk.length, 1000U) << "the grid's compressed chunk";
    ASSERT_TRUE(plantDecompressionBomb(bytes, chunk, 4));
    std::ofstream(dir / "g.h5", std::ios::binary | std::ios::trunc) << bytes;
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(kProbe);
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readLatentGridMeta(dir / "g.h5"); }),
              (dir / "g.h5").string() + ": dataset grid, chunk at [0, 0, 0]: decompresses to more than the chunk's 16384 bytes");
}

// A file of 8 dihedral variants: opening it (the viewer reads variant 0) checks variant 0 only; the other
// variants are checked when a reader first asks for one, so a damaged variant 5 opens and shows, and
// training or prediction, which read every variant, get the error naming it.
TEST_F(UntrustedFileProbeTest, OtherVariantsAreCheckedWhenFirstRead) {
    LatentGridMeta m = tinyMeta();
    m.codeSize = 32;
    m.rows = m.cols = 16;
    m.level0Width = m.level0Height = 16 * 64;
    m.augment = 8;
    const std::vector<float> tissue(256, 1.0F);
    auto w = LatentGridWriter::create(dir / "g.h5", m, tissue, 16);
    // Every cell holds the same code, so each variant is one chunk of identical cells: variant 0's code
    // differs from the other seven's, which makes its chunk the one stream unlike the others.
    std::vector<float> first(256 * 32), others(256 * 32);
    for (std::size_t i = 0; i < first.size(); ++i) {
        first[i] = static_cast<float>(i % 32) / 7.0F;
        others[i] = static_cast<float>(31 - i % 32) / 5.0F;
    }
    std::vector<const float*> variants(8, others.data());
    variants[0] = first.data();
    const std::vector<std::uint8_t> flags(256, kCellEncoded);
    w->writeBand(16, variants, flags.data());
    w->finishAndPublish(dir / "g.h5");
    std::string bytes = nic::test::readFile(dir / "g.h5");
    const auto streams = zlibStreams(bytes, 16384);
    ASSERT_EQ(streams.size(), 8U);
    const auto isFirst = [&](const ZlibStreamContent& c) {
        return std::count_if(streams.begin(), streams.end(), [&](const ZlibStreamContent& o) { return o.inflated == c.inflated; }) == 1;
    };
    ASSERT_EQ(std::count_if(streams.begin(), streams.end(), isFirst), 1);
    const ZlibStreamContent& damaged = isFirst(streams[5]) ? streams[4] : streams[5];
    bytes[damaged.offset + damaged.length / 2] = static_cast<char>(bytes[damaged.offset + damaged.length / 2] ^ 0x5A);
    std::ofstream(dir / "g.h5", std::ios::binary | std::ios::trunc) << bytes;
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(kProbe);
    const LatentGridReader reader(dir / "g.h5");
    const auto v0 = reader.gridHwc(0);
    ASSERT_EQ(v0.size(), first.size());
    EXPECT_EQ(v0[33], halfToFloat(floatToHalf(first[33])));
    const std::string e = errorOf<FormatError>([&] { (void)reader.gridHwc(1); });
    const std::string prefix = (dir / "g.h5").string() + ": dataset dihedral/";
    EXPECT_EQ(e.substr(0, prefix.size()), prefix) << e;
    EXPECT_NE(e.find(", chunk at [0, 0, 0]: damaged compressed data (zlib: "), std::string::npos) << e;
    EXPECT_EQ(errorOf<FormatError>([&] { (void)reader.gridHwc(7); }), e) << "checked once per file version";
}

// The same for a heatmap, which the probe then reads in full: without the check, HDF5 inflates the bomb
// and the reader keeps the first chunk's worth without a word.
TEST_F(UntrustedFileProbeTest, HeatmapChunkDecompressingToMoreThanItsSizeIsRefused) {
    HeatmapData d;
    d.rows = d.cols = 32;
    d.cellSize = 64;
    d.level0Width = d.level0Height = 32 * 64;
    for (int i = 0; i < 32 * 32; ++i) {
        d.heat.push_back(static_cast<float>((static_cast<unsigned>(i) * 2654435761U) % 1000) / 999.0F);
        d.tissue.push_back(1.0F);
    }
    writeHeatmapFile(dir / "h.h5", d);
    std::string bytes = nic::test::readFile(dir / "h.h5");
    // Both datasets are one 32 x 32 float chunk; the varied heat compresses far worse than the tissue.
    const ZlibStreamContent chunk = longestZlibStream(bytes, 4096);
    ASSERT_GT(chunk.length, 1000U) << "the heat's compressed chunk";
    ASSERT_TRUE(plantDecompressionBomb(bytes, chunk, 64));
    std::ofstream(dir / "h.h5", std::ios::binary | std::ios::trunc) << bytes;
    UntrustedFileProbe::clearCache();
    UntrustedFileProbe::enable(kProbe);
    EXPECT_EQ(errorOf<FormatError>([&] { (void)readHeatmapFile(dir / "h.h5"); }),
              (dir / "h.h5").string() + ": dataset heatmap, chunk at [0, 0]: decompresses to more than the chunk's 4096 bytes");
}

// Every input that crashed or hung HDF5 1.10.8 under a fuzzer or the bit-flip corpus: the application's
// path (nic info → probe) answers with exit 1 and one line naming the file, within seconds, no crash.
TEST(UntrustedFileRegressions, EveryCrashingOrHangingInputGivesNicExit1WithOneLine) {
    const std::filesystem::path root = std::filesystem::path(NIC_SOURCE_DIR) / "fuzz" / "regressions";
    int count = 0;
    for (const char* harness : {"fuzz_latent_grid", "fuzz_heatmap"}) {
        for (const auto& e : std::filesystem::directory_iterator(root / harness)) {
            if (e.path().extension() != ".h5")
                continue;
            ++count;
            SCOPED_TRACE(e.path().string());
            std::string out, err;
            const auto t0 = std::chrono::steady_clock::now();
            // A 2 s limit, as the fuzzers use: an input that hangs is stopped after 2 s of processor time.
            const int status = nic::test::runCommand("NIC_PROBE_TIMEOUT_S=2 '" + nic::test::nicExecutable().string() + "' info '" +
                                                         e.path().string() + "'",
                                                     &out, &err);
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            EXPECT_EQ(status, 1) << err;
            EXPECT_EQ(err.rfind("nic: error: " + e.path().string() + ": ", 0), 0U) << err;
            EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
            EXPECT_LT(seconds, 60.0) << "stopped, not hung: the wall limit is 60 s";
        }
    }
    EXPECT_GE(count, 10) << "regression inputs under " << root;
}

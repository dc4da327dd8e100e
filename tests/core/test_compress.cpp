// Compression of slides into latent grids: grid shape, tissue-only encoding, Mean-RGB values checked
// against Slide::readRegion, dihedral consistency, serial == pipelined, resume after cancel, skipping,
// sharding, corrupt slides and regions.
#include "core/compression/compressor.h"
#include "core/base/cpuinfo.h"
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/compression/latentgrid.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "testsupport.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/resource.h>

using namespace nic;
using ::testing::HasSubstr;

using nic::test::errorOf;

namespace {

/// Mean colour of a cell's patch computed without PatchGrid: level-0 rectangle from the recorded
/// geometry (x = round(col·S·f)), Slide::readRegion at the recorded level, resizeArea to P when the
/// read size differs, then the Mean-RGB formula.
std::vector<float> referenceMean(const Slide& s, const LatentGridMeta& m, int row, int col) {
    const double f = m.targetMpp / m.slideMpp;
    const auto x = static_cast<std::int64_t>(std::llround(col * m.stride * f));
    const auto y = static_cast<std::int64_t>(std::llround(row * m.stride * f));
    Image im = s.readRegion(x, y, m.level, m.readSize, m.readSize);
    if (m.readSize != m.patchSize)
        im = resizeArea(im, m.patchSize, m.patchSize);
    std::uint64_t sum[3] = {0, 0, 0};
    for (std::size_t i = 0; i < im.pixels.size(); i += 3)
        for (std::size_t c = 0; c < 3; ++c)
            sum[c] += im.pixels[i + c];
    const double n = static_cast<double>(m.patchSize) * m.patchSize * 255.0;
    return {static_cast<float>(static_cast<double>(sum[0]) / n), static_cast<float>(static_cast<double>(sum[1]) / n),
            static_cast<float>(static_cast<double>(sum[2]) / n)};
}

float asStored(float v, LatentDType t) { return t == LatentDType::Float16 ? halfToFloat(floatToHalf(v)) : v; }

/// Raw dataset bytes, for bit-for-bit comparisons.
std::vector<std::uint8_t> rawDataset(const std::filesystem::path& p, const std::string& name) {
    const Hdf5File f(p, Hdf5File::Mode::ReadOnly);
    const auto d = f.openDataset(name);
    std::size_t n = 1;
    for (auto s : d.shape())
        n *= static_cast<std::size_t>(s);
    const H5Type t = d.type();
    const std::size_t elem = t == H5Type::Float16 ? 2 : t == H5Type::UInt8 ? 1 : 4;
    std::vector<std::uint8_t> out(n * elem);
    d.read(std::vector<std::int64_t>(d.shape().size(), 0), d.shape(), t, out.data());
    return out;
}

void expectSameContent(const std::filesystem::path& a, const std::filesystem::path& b, int augment) {
    for (int k = 0; k < augment; ++k)
        EXPECT_EQ(rawDataset(a, LatentGridReader::datasetName(k)), rawDataset(b, LatentGridReader::datasetName(k)))
            << "variant " << k;
    EXPECT_EQ(rawDataset(a, "tissue_fraction"), rawDataset(b, "tissue_fraction"));
    EXPECT_EQ(rawDataset(a, "cell_flags"), rawDataset(b, "cell_flags"));
    const Hdf5File fa(a, Hdf5File::Mode::ReadOnly), fb(b, Hdf5File::Mode::ReadOnly);
    const auto names = fa.attributeNames();
    EXPECT_EQ(names, fb.attributeNames());
    for (const auto& n : names) {
        if (n == "software_version" || n == "format" || n == "dtype" || n == "encoder_name" || n == "encoder_hash" ||
            n == "slide_file" || n == "slide_quickhash" || n == "slide_mpp_source" || n == "dihedral_order")
            EXPECT_EQ(fa.stringAttribute(n), fb.stringAttribute(n)) << n;
        else
            EXPECT_EQ(fa.doubleArrayAttribute(n), fb.doubleArrayAttribute(n)) << n;
    }
}

/// Offsets and byte counts of the level-0 tiles of a classic little-endian TIFF (directory 0).
std::pair<std::vector<std::uint64_t>, std::vector<std::uint64_t>> level0Tiles(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto u16 = [&](std::size_t o) { return static_cast<std::uint32_t>(static_cast<unsigned char>(b[o]) | (static_cast<unsigned char>(b[o + 1]) << 8)); };
    auto u32 = [&](std::size_t o) { return u16(o) | (u16(o + 2) << 16); };
    if (b.size() < 8 || b[0] != 'I' || u16(2) != 42)
        throw std::runtime_error("not a classic little-endian TIFF");
    const std::size_t ifd = u32(4);
    const std::uint32_t n = u16(ifd);
    std::vector<std::uint64_t> offsets, counts;
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::size_t e = ifd + 2 + 12 * i;
        const std::uint32_t tag = u16(e), type = u16(e + 2), count = u32(e + 4), value = u32(e + 8);
        if (tag != 324 && tag != 325)
            continue;
        auto& out = tag == 324 ? offsets : counts;
        const std::size_t size = type == 3 ? 2 : 4;
        const std::size_t base = count * size <= 4 ? e + 8 : value;
        for (std::uint32_t j = 0; j < count; ++j)
            out.push_back(type == 3 ? u16(base + j * 2) : u32(base + j * 4));
    }
    return {offsets, counts};
}

class Compress : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir();
        SynthWriteOptions w;
        w.threads = 2;
        SynthSlideParams a;
        a.width = 2000;
        a.height = 1500;
        a.mpp = 0.5;
        a.seed = 7;
        SynthSlide(a).write(slideA(), w);
        SynthSlideParams b = a;
        b.width = 1100;
        b.height = 900;
        b.seed = 8;
        SynthSlide(b).write(slideB(), w);
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static std::filesystem::path slideA() { return *dir_ / "slide-a.svs"; }
    static std::filesystem::path slideB() { return *dir_ / "slide-b.svs"; }

    static CompressOptions opts() {
        CompressOptions o;
        o.batchSize = 8;
        o.readThreads = 2;
        o.bandRows = 2;
        return o;
    }

    test::TempDir out_;
    static inline test::TempDir* dir_ = nullptr;
};

} // namespace

TEST(ReadThreads, DefaultLeavesTheInferenceThreadsTheirCpus) {
    EXPECT_EQ(defaultReadThreads(2, 2, 1), 1);   // 2-CPU VM, two single-threaded inference threads
    EXPECT_EQ(defaultReadThreads(16, 8, 1), 8);  // 8 physical cores with SMT
    EXPECT_EQ(defaultReadThreads(16, 1, 1), 15); // one thread feeding a GPU
    EXPECT_EQ(defaultReadThreads(8, 2, 2), 4);
    EXPECT_EQ(defaultReadThreads(4, 2, 4), 1);   // oversubscribed by hand: still one reader
    EXPECT_EQ(defaultReadThreads(2, 1, 0), 2);   // mean-rgb: reading is the work
    EXPECT_EQ(defaultReadThreads(0, 1, 0), 1);
    EXPECT_EQ(MeanRgbEncoder(8).cpusPerCall(), 0);
}

TEST_F(Compress, GridShapeIsCeilOfSlideOverStride) {
    // Rounding rule: rows = ceil(H0 / (S·f)), cols = ceil(W0 / (S·f)), f = target mpp / slide mpp; the
    // last row/column hangs over the slide edge (read as white) instead of being dropped.
    const Slide s(slideA());
    struct Case {
        int P, S;
        double mpp;
        int rows, cols;
    };
    for (const Case c : {Case{64, 64, 0.5, 24, 32},   // 1500/64 = 23.4, 2000/64 = 31.25
                         Case{64, 64, 1.0, 12, 16},   // 1500/128 = 11.7, 2000/128 = 15.6
                         Case{100, 125, 0.5, 12, 16}, // 1500/125 = 12 exactly (no extra row), 2000/125 = 16
                         Case{64, 32, 2.0, 12, 16}}) { // S·f = 128
        MeanRgbEncoder enc(c.P);
        CompressOptions o;
        o.stride = c.S;
        o.targetMpp = c.mpp;
        const LatentGridMeta m = plannedMeta(s, enc.info(), o);
        EXPECT_EQ(m.rows, c.rows) << c.P << "/" << c.S << "@" << c.mpp;
        EXPECT_EQ(m.cols, c.cols) << c.P << "/" << c.S << "@" << c.mpp;
        EXPECT_EQ(m.rows, static_cast<int>(std::ceil(1500.0 / (c.S * c.mpp / 0.5))));
        EXPECT_EQ(m.cols, static_cast<int>(std::ceil(2000.0 / (c.S * c.mpp / 0.5))));
    }
}

TEST_F(Compress, TissueCellsAreMeanColoursAndBackgroundIsExactlyZero) {
    const Slide s(slideA());
    for (const double mpp : {0.5, 1.0}) {
        for (const auto dtype : {LatentDType::Float16, LatentDType::Float32}) {
            MeanRgbEncoder enc(64);
            CompressOptions o = opts();
            o.targetMpp = mpp;
            o.dtype = dtype;
            const auto out = out_ / ("a-" + std::to_string(mpp) + toString(dtype) + ".h5");
            const CompressResult r = compressSlide(slideA(), enc, out, o);
            EXPECT_EQ(r.status, CompressStatus::Written);
            EXPECT_FALSE(std::filesystem::exists(partialPathFor(out)));
            const LatentGridReader reader(out);
            const LatentGridMeta& m = reader.meta();
            EXPECT_EQ(m.encoderName, "mean-rgb");
            EXPECT_EQ(m.encoderHash, "builtin");
            EXPECT_EQ(m.slideFile, "slide-a.svs");
            EXPECT_EQ(m.level0Width, 2000);
            EXPECT_EQ(m.readSize, mpp == 0.5 ? 64 : 128);
            const LatentTensor g = reader.grid();
            const auto tissue = reader.tissueFractions();
            const auto flags = reader.cellFlags();
            int encoded = 0, background = 0;
            for (int row = 0; row < m.rows; ++row)
                for (int col = 0; col < m.cols; ++col) {
                    const std::size_t i = static_cast<std::size_t>(row * m.cols + col);
                    const bool isTissue = tissue[i] > 0.0F && tissue[i] >= m.tissueThreshold;
                    ASSERT_EQ(flags[i], isTissue ? kCellEncoded : kCellBackground);
                    if (!isTissue) {
                        ++background;
                        for (int c = 0; c < 3; ++c)
                            ASSERT_EQ(g.at(c, row, col), 0.0F);
                        continue;
                    }
                    ++encoded;
                    const auto ref = referenceMean(s, m, row, col);
                    for (int c = 0; c < 3; ++c)
                        ASSERT_EQ(g.at(c, row, col), asStored(ref[static_cast<std::size_t>(c)], dtype))
                            << "cell " << row << "," << col << " channel " << c;
                }
            EXPECT_GT(encoded, 20);
            EXPECT_GT(background, 20);
            EXPECT_EQ(m.encodedCells, encoded);
            EXPECT_EQ(r.encodedCells, encoded);
            EXPECT_EQ(m.skippedCells, 0);
        }
    }
}

TEST_F(Compress, DihedralVariantsAreTheRotatedIdentityGrid) {
    MeanRgbEncoder enc(64);
    CompressOptions o = opts();
    o.augment = 8;
    o.stride = 48; // overlapping patches and a non-square grid
    const auto out = out_ / "aug.h5";
    compressSlide(slideA(), enc, out, o);
    const LatentGridReader reader(out);
    const LatentGridMeta& m = reader.meta();
    ASSERT_EQ(reader.variantCount(), 8);
    ASSERT_NE(m.rows, m.cols);
    const LatentTensor id = reader.grid(0);
    for (int k = 1; k < 8; ++k) {
        // Mean-RGB is invariant to rotating the patch, so variant k must be the identity grid moved by
        // transform k: np.rot90(np.fliplr(g) if k >= 4 else g, k % 4), written out by hand here.
        const LatentTensor v = reader.grid(k);
        const int H = m.rows, W = m.cols;
        ASSERT_EQ(v.height, (k % 2) ? W : H) << k;
        ASSERT_EQ(v.width, (k % 2) ? H : W) << k;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                int r = y, c = (k >= 4) ? W - 1 - x : x, h = H, w = W;
                for (int t = 0; t < k % 4; ++t) { // rot90 ccw: (r, c) in h×w → (w-1-c, r) in w×h
                    const int r2 = w - 1 - c;
                    c = r;
                    r = r2;
                    std::swap(h, w);
                }
                for (int ch = 0; ch < 3; ++ch)
                    ASSERT_EQ(v.at(ch, r, c), id.at(ch, y, x)) << "k=" << k << " cell " << y << "," << x;
            }
    }
}

/// An encoder that sees a patch's orientation: its code is the red byte of the four corners (top left, top right,
/// bottom left, bottom right) / 255. It keeps PatchEncoder's own encodeTransformed (the bytes transformed, then
/// encoded).
class CornerEncoder final : public PatchEncoder {
public:
    explicit CornerEncoder(int patchSize) {
        info_.name = "corners";
        info_.hash = "builtin";
        info_.patchSize = patchSize;
        info_.codeSize = 4;
    }
    const EncoderInfo& info() const override { return info_; }
    void encode(const std::uint8_t* nhwc, int count, float* out) override {
        const auto p = static_cast<std::size_t>(info_.patchSize);
        for (int n = 0; n < count; ++n) {
            const std::uint8_t* patch = nhwc + static_cast<std::size_t>(n) * p * p * 3;
            const std::size_t corners[4] = {0, p - 1, (p - 1) * p, p * p - 1};
            for (int i = 0; i < 4; ++i)
                out[n * 4 + i] = static_cast<float>(patch[corners[i] * 3]) / 255.0F;
        }
    }
    using PatchEncoder::encode;

private:
    EncoderInfo info_;
};

TEST_F(Compress, EachVariantEncodesThePatchesInItsOrientation) {
    // Variant k holds, at cell (y, x)'s place after transform k, the code of that cell's patch after transform k: the
    // four corners' values, each at the corner its pixel moved to.
    CornerEncoder enc(64);
    CompressOptions o = opts();
    o.augment = 8;
    o.batchSize = 7;
    const auto out = out_ / "corners.h5";
    compressSlide(slideA(), enc, out, o);
    const LatentGridReader reader(out);
    const int H = reader.meta().rows, W = reader.meta().cols, P = 64;
    const LatentTensor id = reader.grid(0);
    const std::pair<int, int> corners[4] = {{0, 0}, {0, P - 1}, {P - 1, 0}, {P - 1, P - 1}};
    // Cells whose four corners all differ, so that a variant in any wrong orientation would show.
    int distinct = 0;
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            bool all = true;
            for (int i = 0; i < 4; ++i)
                for (int j = i + 1; j < 4; ++j)
                    all = all && id.at(i, y, x) != id.at(j, y, x);
            distinct += all ? 1 : 0;
        }
    EXPECT_GT(distinct, 20);
    for (int k = 1; k < 8; ++k) {
        const LatentTensor v = reader.grid(k);
        int moved[4];
        for (int i = 0; i < 4; ++i) {
            const auto to = dihedralMap(k, corners[i].first, corners[i].second, P, P);
            moved[i] = static_cast<int>(std::find(std::begin(corners), std::end(corners), to) - std::begin(corners));
            ASSERT_LT(moved[i], 4);
        }
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                const auto [r, c] = dihedralMap(k, y, x, H, W);
                for (int i = 0; i < 4; ++i)
                    ASSERT_EQ(v.at(moved[i], r, c), id.at(i, y, x)) << dihedralName(k) << ", cell " << y << "," << x;
            }
    }
}

TEST_F(Compress, PipelinedEqualsSerial) {
    MeanRgbEncoder enc(64);
    CompressOptions o = opts();
    o.augment = 8;
    const auto a = out_ / "serial.h5";
    const auto b = out_ / "pipelined.h5";
    o.pipelined = false;
    EXPECT_EQ(compressSlide(slideA(), enc, a, o).readThreads, 0);
    o.pipelined = true;
    o.readThreads = 3;
    o.batchSize = 5;
    EXPECT_EQ(compressSlide(slideA(), enc, b, o).readThreads, 3);
    expectSameContent(a, b, 8);
}

/// Mean-RGB whose keepBuffers() hands out a guard, and whose encode() records whether one was alive (on
/// every instance: replicas share the record), failing on call `failAt` when it is set.
class GuardedEncoder final : public PatchEncoder {
public:
    struct Record {
        std::atomic<int> alive{0}, made{0}, callsWithout{0}, calls{0};
        int failAt = -1;
    };
    GuardedEncoder(int patchSize, std::shared_ptr<Record> record) : inner_(patchSize), record_(std::move(record)) {}
    const EncoderInfo& info() const override { return inner_.info(); }
    void encode(const std::uint8_t* nhwc, int count, float* out) override {
        const int call = record_->calls++;
        record_->callsWithout += record_->alive.load() > 0 ? 0 : 1;
        if (call == record_->failAt)
            throw Error("encoder failed on purpose");
        inner_.encode(nhwc, count, out);
    }
    using PatchEncoder::encode;
    int preferredConcurrency() const override { return 2; }
    std::unique_ptr<PatchEncoder> replicate() override { return std::make_unique<GuardedEncoder>(*this); }
    std::shared_ptr<void> keepBuffers() override {
        ++record_->made;
        ++record_->alive;
        auto record = record_;
        return std::shared_ptr<void>(new int(0), [record](void* p) {
            --record->alive;
            delete static_cast<int*>(p);
        });
    }

private:
    MeanRgbEncoder inner_;
    std::shared_ptr<Record> record_;
};

TEST_F(Compress, TheEncodersBuffersAreKeptOverEveryBatchAndLetGoAfter) {
    for (const bool pipelined : {false, true}) {
        auto record = std::make_shared<GuardedEncoder::Record>();
        GuardedEncoder enc(64, record);
        CompressOptions o = opts();
        o.pipelined = pipelined;
        o.inferenceThreads = 2;
        compressSlide(slideA(), enc, out_ / (pipelined ? "pipelined.h5" : "serial.h5"), o);
        EXPECT_GT(record->calls.load(), 3) << pipelined;
        EXPECT_EQ(record->callsWithout.load(), 0) << pipelined;
        EXPECT_EQ(record->made.load(), 1) << pipelined; // one for the slide, not one per batch or thread
        EXPECT_EQ(record->alive.load(), 0) << pipelined;
    }
    // A run that fails lets it go too.
    auto record = std::make_shared<GuardedEncoder::Record>();
    record->failAt = 2;
    GuardedEncoder enc(64, record);
    EXPECT_THROW(compressSlide(slideA(), enc, out_ / "failed.h5", opts()), Error);
    EXPECT_EQ(record->made.load(), 1);
    EXPECT_EQ(record->alive.load(), 0);
    EXPECT_FALSE(std::filesystem::exists(out_ / "failed.h5"));
}

namespace {

/// Mean-RGB that also spins on its thread's CPU clock for `burnMs` per encode() call, counting the calls of every
/// instance (replicas share the count).
class BurningEncoder final : public PatchEncoder {
public:
    BurningEncoder(int patchSize, double burnMs, std::shared_ptr<std::atomic<int>> calls)
        : inner_(patchSize), burnNs_(static_cast<std::int64_t>(burnMs * 1e6)), calls_(std::move(calls)) {}
    const EncoderInfo& info() const override { return inner_.info(); }
    void encode(const std::uint8_t* nhwc, int count, float* out) override {
        ++*calls_;
        const std::int64_t start = threadCpuNs();
        if (start < 0)
            throw Error("no thread CPU clock"); // fails the run instead of spinning forever
        while (threadCpuNs() < start + burnNs_) {
        }
        inner_.encode(nhwc, count, out);
    }
    using PatchEncoder::encode;
    int preferredConcurrency() const override { return 2; }
    std::unique_ptr<PatchEncoder> replicate() override { return std::make_unique<BurningEncoder>(*this); }

private:
    MeanRgbEncoder inner_;
    std::int64_t burnNs_;
    std::shared_ptr<std::atomic<int>> calls_;
};

double processCpuSeconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace

TEST_F(Compress, APipelinedRunReportsTheCpuTimeOfEachStage) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    BurningEncoder enc(64, 1.0, calls);
    CompressOptions o = opts();
    o.inferenceThreads = 2;
    const double before = processCpuSeconds();
    const CompressResult r = compressSlide(slideA(), enc, out_ / "pipelined.h5", o);
    const double used = processCpuSeconds() - before;
    ASSERT_GT(calls->load(), 3);
    // The inference threads' clocks hold at least every call's 1 ms; the readers decoded every patch, the calling
    // thread wrote every band; and the stages together count no more than the process spent (its total lags the
    // threads' own clocks by up to a scheduler tick per exited thread, hence the margin).
    EXPECT_GE(r.encodeCpuSeconds, calls->load() * 0.001);
    EXPECT_GT(r.readCpuSeconds, 0.0);
    EXPECT_GT(r.writeCpuSeconds, 0.0);
    EXPECT_LE(r.readCpuSeconds + r.encodeCpuSeconds + r.writeCpuSeconds, used * 1.05 + 0.02);

    o.pipelined = false; // one thread does everything: no stages to tell apart
    const CompressResult s = compressSlide(slideA(), enc, out_ / "serial.h5", o);
    EXPECT_EQ(s.readCpuSeconds, 0.0);
    EXPECT_EQ(s.encodeCpuSeconds, 0.0);
    EXPECT_EQ(s.writeCpuSeconds, 0.0);
}

TEST_F(Compress, CancelledRunResumesToTheSameBits) {
    for (const bool pipelined : {true, false}) {
        MeanRgbEncoder enc(64);
        CompressOptions o = opts();
        o.augment = 8;
        o.pipelined = pipelined;
        const auto full = out_ / "full.h5";
        compressSlide(slideA(), enc, full, o);

        const auto out = out_ / "resumed.h5";
        std::int64_t cancelAt = 0;
        JobContext ctx(
            [&](const JobContext::Progress& p) {
                if (p.step.rfind("compressing", 0) == 0 && p.total > 0 && p.done >= p.total / 3)
                    ctx.cancel();
                cancelAt = p.done;
            },
            {});
        ctx.setMinInterval(std::chrono::milliseconds(0));
        EXPECT_THROW(compressSlide(slideA(), enc, out, o, ctx), Cancelled);
        EXPECT_FALSE(std::filesystem::exists(out));
        const auto partial = partialPathFor(out);
        ASSERT_TRUE(std::filesystem::exists(partial));
        int rowsDone = 0;
        {
            const Hdf5File f(partial, Hdf5File::Mode::ReadOnly);
            rowsDone = static_cast<int>(f.intAttribute("rows_done"));
            EXPECT_EQ(f.intAttribute("complete"), 0);
        }
        EXPECT_GT(rowsDone, 0);
        EXPECT_LT(rowsDone, 24);

        const CompressResult r = compressSlide(slideA(), enc, out, o);
        EXPECT_EQ(r.status, CompressStatus::Resumed);
        EXPECT_EQ(r.resumedFromRow, rowsDone);
        EXPECT_FALSE(std::filesystem::exists(partial));
        expectSameContent(full, out, 8);
        std::filesystem::remove(out);
        std::filesystem::remove(full);
    }
}

TEST_F(Compress, PartialWithOtherParametersIsRestarted) {
    MeanRgbEncoder enc(64);
    CompressOptions o = opts();
    const auto out = out_ / "restart.h5";
    JobContext ctx([&](const JobContext::Progress& p) {
        if (p.step.rfind("compressing", 0) == 0 && p.done > 0)
            ctx.cancel();
    }, {});
    ctx.setMinInterval(std::chrono::milliseconds(0));
    EXPECT_THROW(compressSlide(slideA(), enc, out, o, ctx), Cancelled);
    ASSERT_TRUE(std::filesystem::exists(partialPathFor(out)));
    o.dtype = LatentDType::Float32;
    std::vector<std::string> logs;
    JobContext logCtx({}, [&](const std::string& l) { logs.push_back(l); });
    const auto r = compressSlide(slideA(), enc, out, o, logCtx);
    EXPECT_EQ(r.status, CompressStatus::Written);
    std::string all;
    for (const auto& l : logs)
        all += l + "\n";
    EXPECT_THAT(all, HasSubstr("partial output made with other parameters (dtype differs"));
    EXPECT_THAT(all, HasSubstr("starting afresh"));
    EXPECT_EQ(LatentGridReader(out).meta().dtype, LatentDType::Float32);
}

TEST_F(Compress, FinishedOutputIsSkippedUnlessParametersDiffer) {
    MeanRgbEncoder enc(64);
    CompressOptions o = opts();
    const auto out = out_ / "skip.h5";
    EXPECT_EQ(compressSlide(slideB(), enc, out, o).status, CompressStatus::Written);
    const auto mtime = std::filesystem::last_write_time(out);
    std::vector<std::string> logs;
    JobContext ctx({}, [&](const std::string& l) { logs.push_back(l); });
    EXPECT_EQ(compressSlide(slideB(), enc, out, o, ctx).status, CompressStatus::Skipped);
    EXPECT_EQ(std::filesystem::last_write_time(out), mtime);
    EXPECT_THAT(logs.back(), HasSubstr("up to date, skipped"));

    o.force = true;
    EXPECT_EQ(compressSlide(slideB(), enc, out, o).status, CompressStatus::Written);
    o.force = false;
    MeanRgbEncoder other(32); // another patch size: not the same compression
    EXPECT_EQ(compressSlide(slideB(), other, out, o, ctx).status, CompressStatus::Written);
    EXPECT_THAT(logs.back(), HasSubstr("exists but was made with other parameters (patch size differs"));
    EXPECT_EQ(LatentGridReader(out).meta().patchSize, 32);
}

TEST_F(Compress, ShardsPartitionTheList) {
    EXPECT_EQ(parseShard("0/1").count, 1);
    const Shard s = parseShard("2/3");
    EXPECT_EQ(s.index, 2);
    EXPECT_EQ(s.count, 3);
    for (const char* bad : {"3/3", "-1/2", "1", "a/b", "1/0", "1/2x"})
        EXPECT_THROW(parseShard(bad), InvalidArgument) << bad;
    for (int n = 1; n <= 4; ++n)
        for (std::size_t item = 0; item < 11; ++item) {
            int owners = 0;
            for (int i = 0; i < n; ++i)
                owners += Shard{i, n}.contains(item) ? 1 : 0;
            EXPECT_EQ(owners, 1);
        }

    MeanRgbEncoder enc(64);
    const std::vector<std::filesystem::path> slides{slideB(), slideA(), *dir_ / "missing.svs"};
    const auto results = compressSlides(slides, enc, out_.path(), opts(), Shard{1, 2});
    ASSERT_EQ(results.size(), 1U);
    EXPECT_EQ(results[0].slide, slideA());
    EXPECT_TRUE(std::filesystem::exists(out_ / "slide-a.h5"));
    EXPECT_FALSE(std::filesystem::exists(out_ / "slide-b.h5"));

    const auto rest = compressSlides(slides, enc, out_.path(), opts(), Shard{0, 2});
    ASSERT_EQ(rest.size(), 2U);
    EXPECT_TRUE(rest[0].result.has_value());
    EXPECT_FALSE(rest[1].result.has_value());
    EXPECT_THAT(rest[1].error, HasSubstr("missing.svs"));
    EXPECT_TRUE(std::filesystem::exists(out_ / "slide-b.h5"));

    EXPECT_THAT(errorOf<InvalidArgument>([&] {
                    compressSlides({slideA(), *dir_ / "x" / "slide-a.svs"}, enc, out_.path(), opts());
                }),
                HasSubstr("would both write"));
}

TEST_F(Compress, UnknownMppNeedsAnOverride) {
    NIC_REQUIRE_SHARED("slides/synthetic/boxes.tiff");
    const auto boxes = test::sharedDataDir() / "slides/synthetic/boxes.tiff";
    const Slide s(boxes);
    if (s.resolution())
        GTEST_SKIP() << "boxes.tiff has a resolution";
    MeanRgbEncoder enc(16);
    EXPECT_THAT(errorOf<InvalidArgument>([&] { compressSlide(boxes, enc, out_ / "boxes.h5", opts()); }),
                HasSubstr("boxes.tiff"));
    EXPECT_FALSE(std::filesystem::exists(out_ / "boxes.h5"));
}

TEST_F(Compress, CorruptSlideLeavesNoOutput) {
    MeanRgbEncoder enc(64);
    const auto junk = out_ / "junk.svs";
    std::ofstream(junk) << "not a slide at all";
    const auto out = out_ / "o" / "junk.h5";
    EXPECT_THROW(compressSlide(junk, enc, out, opts()), SlideError);
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(partialPathFor(out)));
    for (const char* name : {"broken.svs", "unopenable.tiff", "unreadable.svs"}) {
        const auto p = test::sharedDataDir() / "slides/malformed" / name;
        if (!std::filesystem::exists(p))
            continue;
        CompressOptions o = opts();
        o.slideMpp = 0.5;
        const auto o2 = out_ / (std::string(name) + ".h5");
        EXPECT_THROW(compressSlide(p, enc, o2, o), Error) << name;
        EXPECT_FALSE(std::filesystem::exists(o2)) << name;
        EXPECT_FALSE(std::filesystem::exists(partialPathFor(o2))) << name;
    }
}

TEST_F(Compress, CorruptRegionFailsCleanlyOrIsSkippedAndCounted) {
    // Find an encoded cell, then zero the JPEG tile under it in a copy of the slide.
    MeanRgbEncoder enc(64);
    const auto clean = out_ / "clean.h5";
    compressSlide(slideA(), enc, clean, opts());
    const LatentGridReader cleanReader(clean);
    const auto flags = cleanReader.cellFlags();
    const int cols = cleanReader.meta().cols;
    int target = -1;
    for (std::size_t i = 0; i < flags.size(); ++i)
        if (flags[i] == kCellEncoded && (i % static_cast<std::size_t>(cols)) * 64 % 256 == 0 &&
            (i / static_cast<std::size_t>(cols)) * 64 % 256 == 0) {
            target = static_cast<int>(i);
            break;
        }
    ASSERT_GE(target, 0);
    const int row = target / cols, col = target % cols;
    const auto bad = out_ / "bad.svs";
    std::filesystem::copy_file(slideA(), bad);
    const auto [offsets, counts] = level0Tiles(bad);
    const std::size_t across = (2000 + 255) / 256;
    const std::size_t tile = static_cast<std::size_t>(row * 64 / 256) * across + static_cast<std::size_t>(col * 64 / 256);
    ASSERT_LT(tile, offsets.size());
    {
        std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(offsets[tile]));
        const std::string zeros(counts[tile], '\0');
        f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    }

    for (const bool pipelined : {true, false}) {
        CompressOptions o = opts();
        o.pipelined = pipelined;
        const auto out = out_ / "bad.h5";
        const std::string msg = errorOf<SlideError>([&] { compressSlide(bad, enc, out, o); });
        EXPECT_THAT(msg, HasSubstr("bad.svs"));
        EXPECT_THAT(msg, HasSubstr("unreadable region at cell row "));
        EXPECT_THAT(msg, HasSubstr("level-0 x="));
        EXPECT_FALSE(std::filesystem::exists(out));
        EXPECT_FALSE(std::filesystem::exists(partialPathFor(out)));

        o.skipBadRegions = true;
        std::vector<std::string> logs;
        JobContext ctx({}, [&](const std::string& l) { logs.push_back(l); });
        const CompressResult r = compressSlide(bad, enc, out, o, ctx);
        EXPECT_GE(r.skippedCells, 1);
        const LatentGridReader reader(out);
        EXPECT_EQ(reader.meta().skippedCells, r.skippedCells);
        const auto badFlags = reader.cellFlags();
        EXPECT_EQ(badFlags[static_cast<std::size_t>(target)], kCellUnreadable);
        const LatentTensor g = reader.grid(), ref = cleanReader.grid();
        std::int64_t unreadable = 0;
        for (std::size_t i = 0; i < badFlags.size(); ++i) {
            const int rr = static_cast<int>(i) / cols, cc = static_cast<int>(i) % cols;
            if (badFlags[i] == kCellUnreadable) {
                ++unreadable;
                EXPECT_EQ(flags[i], kCellEncoded);
                for (int c = 0; c < 3; ++c)
                    EXPECT_EQ(g.at(c, rr, cc), 0.0F);
            } else {
                EXPECT_EQ(badFlags[i], flags[i]);
            }
        }
        EXPECT_EQ(unreadable, r.skippedCells);
        EXPECT_FALSE(logs.empty());
        std::filesystem::remove(out);
    }
}

TEST_F(Compress, RealAperioSlide) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const auto path = test::sharedDataDir() / "slides/CMU-1-Small-Region.svs";
    MeanRgbEncoder enc(128);
    CompressOptions o;
    const auto t0 = std::chrono::steady_clock::now();
    const CompressResult r = compressSlide(path, enc, out_ / "cmu.h5", o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const LatentGridReader reader(out_ / "cmu.h5");
    // 2220 × 2967 px at 0.499 µm/px, S = 128 at 0.5 µm/px: f = 1.002, ceil(2220/128.26) × ceil(2967/128.26).
    EXPECT_EQ(reader.meta().cols, 18);
    EXPECT_EQ(reader.meta().rows, 24);
    EXPECT_FALSE(reader.meta().slideQuickHash.empty());
    EXPECT_GT(r.encodedCells, 50);
    std::printf("[ info ] CMU-1-Small-Region: %d x %d grid, %lld tissue cells, %.2f s (%.0f patches/s)\n",
                reader.meta().rows, reader.meta().cols, static_cast<long long>(r.encodedCells), s,
                r.patchesPerSecond);
}

TEST_F(Compress, CliCompressesSkipsShardsAndExitsOneOnFailures) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    const auto nic = "'" + test::nicExecutable().string() + "' compress -q -e mean-rgb --patch 64 ";
    const auto out = out_ / "cli";
    const auto junk = out_ / "junk.svs";
    std::ofstream(junk) << "junk";
    std::string o, e;
    // Shard 0/2 of [A, junk, B] is A and B; shard 1/2 is the junk slide alone.
    const std::string list = "'" + slideA().string() + "' '" + junk.string() + "' '" + slideB().string() + "'";
    EXPECT_EQ(test::runCommand(nic + "-o '" + out.string() + "' --shard 0/2 " + list, &o, &e), 0) << e;
    EXPECT_THAT(o, HasSubstr("[1/2] "));
    EXPECT_THAT(o, HasSubstr("slide-a.h5: written"));
    EXPECT_THAT(o, HasSubstr("slide-b.h5: written"));
    EXPECT_TRUE(std::filesystem::exists(out / "slide-a.h5"));
    EXPECT_NO_THROW(LatentGridReader(out / "slide-b.h5"));

    EXPECT_EQ(test::runCommand(nic + "-o '" + out.string() + "' --shard 1/2 " + list, &o, &e), 1);
    EXPECT_THAT(e, HasSubstr("1 of 1 slide(s) failed:\n  " + junk.string() + ": cannot open slide"));
    EXPECT_FALSE(std::filesystem::exists(out / "junk.h5"));

    EXPECT_EQ(test::runCommand(nic + "-o '" + out.string() + "' " + list, &o, &e), 1);
    EXPECT_THAT(o, HasSubstr("slide-a.h5: skipped"));
    EXPECT_THAT(o, HasSubstr("slide-b.h5: skipped"));

    EXPECT_EQ(test::runCommand(nic + "-o '" + out.string() + "' --shard 2/2 " + list, &o, &e), 2);
    EXPECT_THAT(e, HasSubstr("--shard 2/2: need 0 <= i < n"));
    EXPECT_EQ(test::runCommand(nic + "-o '" + out.string() + "' --augment 3 " + list, &o, &e), 2);

    const auto cohort = out_ / "cohort.csv";
    std::ofstream(cohort) << "slide,label\n" << slideB().string() << ",1\n";
    EXPECT_EQ(test::runCommand(nic + "-o '" + (out_ / "c").string() + "' --cohort '" + cohort.string() + "' --augment 8",
                               &o, &e),
              0)
        << e;
    EXPECT_EQ(LatentGridReader(out_ / "c" / "slide-b.h5").variantCount(), 8);
}

TEST_F(Compress, KilledProcessResumesToTheSameBits) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    const auto nic = "'" + test::nicExecutable().string() +
                     "' compress -q -e mean-rgb --patch 16 --augment 8 --band-rows 1 --serial --batch 4 ";
    const auto fullDir = out_ / "full", killedDir = out_ / "killed";
    std::string o, e;
    ASSERT_EQ(test::runCommand(nic + "-o '" + fullDir.string() + "' '" + slideA().string() + "'", &o, &e), 0) << e;
    const auto partial = partialPathFor(killedDir / "slide-a.h5");
    // Start a run, SIGKILL it once its partial file has existed for a moment, then run again.
    const std::string script = "( " + nic + "-o '" + killedDir.string() + "' '" + slideA().string() + "' & pid=$!; " +
                               "while [ ! -f '" + partial.string() + "' ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done; " +
                               "sleep 0.05; kill -9 $pid 2>/dev/null; wait $pid; echo status=$? )";
    ASSERT_EQ(test::runCommand(script, &o, &e), 0) << e;
    // 128 + SIGKILL. A kill that lands after the output was renamed into place (between the publish and
    // the process's exit) stopped a run that had finished: that counts as not killed.
    const bool published = std::filesystem::exists(killedDir / "slide-a.h5");
    const bool killed = o.find("status=137") != std::string::npos && !published;
    if (killed) {
        EXPECT_TRUE(std::filesystem::exists(partial));
        EXPECT_FALSE(std::filesystem::exists(killedDir / "slide-a.h5"));
    }
    ASSERT_EQ(test::runCommand(nic + "-o '" + killedDir.string() + "' '" + slideA().string() + "'", &o, &e), 0) << e;
    // Either the partial file was consistent and the run resumed it, or HDF5 metadata written after the
    // last flush was damaged by the kill (or the kill came after the last row) and the run started afresh;
    // the output is the same either way.
    if (killed && o.find("slide-a.h5: resumed") == std::string::npos) {
        EXPECT_THAT(e, HasSubstr("starting afresh")) << o;
    }
    EXPECT_FALSE(std::filesystem::exists(partial));
    expectSameContent(fullDir / "slide-a.h5", killedDir / "slide-a.h5", 8);
    if (!killed)
        GTEST_SKIP() << "the run finished before it could be killed (nothing resumed)";
}

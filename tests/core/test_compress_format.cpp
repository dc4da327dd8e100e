// Compressed-slide format: float16 conversion, the HDF5 wrapper, dihedral transforms, the latent grid
// writer/reader (including refused files), and the cohort CSV reader.
#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/compression/latentgrid.h"
#include "core/base/version.h"
#include "testsupport.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <cstring>
#include <fstream>
#include <immintrin.h>
#include <limits>
#include <random>

using namespace nic;
using ::testing::HasSubstr;

using nic::test::errorOf;

namespace {

float bitsToFloat(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

__attribute__((target("f16c"))) std::uint16_t hardwareHalf(float f) {
    const __m128i h = _mm_cvtps_ph(_mm_set1_ps(f), _MM_FROUND_TO_NEAREST_INT);
    return static_cast<std::uint16_t>(_mm_extract_epi16(h, 0));
}

LatentGridMeta smallMeta(int rows, int cols, int C, int augment, LatentDType dtype) {
    LatentGridMeta m;
    m.encoderName = "test";
    m.encoderHash = "abc123";
    m.codeSize = C;
    m.patchSize = 64;
    m.stride = 64;
    m.targetMpp = 0.5;
    m.slideMpp = 0.25;
    m.slideMppSource = "slide";
    m.level = 0;
    m.levelDownsample = 1.0;
    m.readSize = 128;
    m.level0Width = cols * 128 - 10;
    m.level0Height = rows * 128 - 3;
    m.rows = rows;
    m.cols = cols;
    m.slideFile = "slide.svs";
    m.slideQuickHash = "qh";
    m.tissueThreshold = 0.5;
    m.augment = augment;
    m.dtype = dtype;
    return m;
}

/// Writes a complete file whose variant k, cell (r, c), channel ch holds 64k + 8r + c + ch/4 (exact in
/// float16 for grids up to 8 × 8).
void writeSmallGrid(const std::filesystem::path& path, const LatentGridMeta& m, int bandRows) {
    const std::vector<float> tissue(static_cast<std::size_t>(m.rows * m.cols), 1.0F);
    auto w = LatentGridWriter::create(path, m, tissue, bandRows);
    while (w->rowsDone() < m.rows) {
        const int r0 = w->rowsDone();
        const int n = std::min(bandRows, m.rows - r0);
        std::vector<std::vector<float>> data(static_cast<std::size_t>(m.augment));
        std::vector<const float*> ptrs;
        for (int k = 0; k < m.augment; ++k) {
            auto& d = data[static_cast<std::size_t>(k)];
            for (int r = 0; r < n; ++r)
                for (int c = 0; c < m.cols; ++c)
                    for (int ch = 0; ch < m.codeSize; ++ch)
                        d.push_back(static_cast<float>(k * 64 + (r0 + r) * 8 + c) + static_cast<float>(ch) / 4.0F);
            ptrs.push_back(d.data());
        }
        std::vector<std::uint8_t> flags(static_cast<std::size_t>(n * m.cols), kCellEncoded);
        w->writeBand(n, ptrs, flags.data());
    }
    w->finishAndPublish(path);
}

} // namespace

// ---------------------------------------------------------------------------------------------------
// float16

TEST(Float16, ReferenceValues) {
    struct Case {
        float in;
        std::uint16_t bits;
    };
    const Case cases[] = {
        {0.0F, 0x0000},
        {-0.0F, 0x8000},
        {1.0F, 0x3C00},
        {0.1F, 0x2E66},
        {3.9993F, 0x4400},   // rounding carries into the exponent: 4.0, not 2.0 (HDF5's bug)
        {-0.99978F, 0xBC00}, // -1.0, not -0.5
        {65504.0F, 0x7BFF},
        {65519.0F, 0x7BFF},
        {65520.0F, 0x7C00}, // rounds to +inf
        {1e6F, 0x7C00},
        {-1e6F, 0xFC00},
        {2049.0F, 0x6800}, // tie between 2048 and 2050 → even (2048)
        {2051.0F, 0x6802}, // tie between 2050 and 2052 → even (2052)
        {bitsToFloat(0x3F801000U), 0x3C00}, // 1 + 2^-11: tie → 1.0
        {bitsToFloat(0x3F803000U), 0x3C02}, // 1 + 3·2^-11: tie → 1 + 2^-9
        {bitsToFloat(0x3F801001U), 0x3C01}, // just above the tie → up
        {std::ldexp(1.0F, -24), 0x0001},    // smallest subnormal
        {std::ldexp(1.0F, -25), 0x0000},    // half of it: tie → 0
        {std::ldexp(3.0F, -25), 0x0002},    // 1.5 × smallest: tie → even (2)
        {std::ldexp(1.0F, -14), 0x0400},    // smallest normal
        {std::numeric_limits<float>::infinity(), 0x7C00},
    };
    for (const auto& c : cases)
        EXPECT_EQ(floatToHalf(c.in), c.bits) << "input " << c.in;
    const std::uint16_t nan = floatToHalf(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(nan & 0x7C00, 0x7C00);
    EXPECT_NE(nan & 0x03FF, 0);
}

TEST(Float16, RoundTripsEveryHalf) {
    for (std::uint32_t h = 0; h < 0x10000U; ++h) {
        const auto bits = static_cast<std::uint16_t>(h);
        const float f = halfToFloat(bits);
        if (std::isnan(f))
            continue;
        ASSERT_EQ(floatToHalf(f), bits) << std::hex << h;
    }
    EXPECT_EQ(halfToFloat(0x3C00), 1.0F);
    EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0F, -24));
    EXPECT_EQ(halfToFloat(0xFBFF), -65504.0F);
}

TEST(Float16, MatchesF16cHardwareOnRandomFloats) {
    if (!__builtin_cpu_supports("f16c"))
        GTEST_SKIP() << "CPU without F16C";
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::uint32_t> any;
    std::uniform_real_distribution<float> modest(-8.0F, 8.0F);
    for (int i = 0; i < 2'000'000; ++i) {
        const float f = (i % 2) ? bitsToFloat(any(rng)) : modest(rng);
        if (std::isnan(f))
            continue;
        ASSERT_EQ(floatToHalf(f), hardwareHalf(f)) << "input bits " << std::hex << [&] {
            std::uint32_t u;
            std::memcpy(&u, &f, 4);
            return u;
        }();
    }
}

// ---------------------------------------------------------------------------------------------------
// HDF5 wrapper

TEST(Hdf5File, AttributesAndDatasetsRoundTrip) {
    test::TempDir dir;
    const auto path = dir / "a.h5";
    {
        Hdf5File f(path, Hdf5File::Mode::Create);
        f.setStringAttribute("s", "héllo");
        f.setIntAttribute("i", -7);
        f.setDoubleAttribute("d", 0.25);
        f.setIntArrayAttribute("ia", {1, 2, 3});
        f.setIntAttribute("i", 9); // replace in place
        Hdf5Layout layout;
        layout.chunk = {2, 2};
        auto d = f.createDataset("g/x", H5Type::Float32, {3, 4}, layout);
        const float v[4] = {1, 2, 3, 4};
        d.write({1, 1}, {2, 2}, H5Type::Float32, v);
        EXPECT_THAT(errorOf<InvalidArgument>([&] { d.write({2, 2}, {2, 2}, H5Type::Float32, v); }),
                    HasSubstr("outside dataset"));
        auto h = f.createDataset("h", H5Type::Float16, {2});
        EXPECT_THAT(errorOf<InvalidArgument>([&] { h.write({0}, {2}, H5Type::Float32, v); }),
                    HasSubstr("refusing to let HDF5 convert float32 to float16"));
    }
    Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    EXPECT_EQ(f.stringAttribute("s"), "héllo");
    EXPECT_EQ(f.intAttribute("i"), 9);
    EXPECT_EQ(f.doubleAttribute("d"), 0.25);
    EXPECT_EQ(f.doubleAttribute("i"), 9.0);
    EXPECT_EQ(f.intArrayAttribute("ia"), (std::vector<std::int64_t>{1, 2, 3}));
    EXPECT_TRUE(f.exists("g/x"));
    EXPECT_FALSE(f.exists("g/y"));
    EXPECT_FALSE(f.exists("nope/y"));
    const auto d = f.openDataset("g/x");
    EXPECT_EQ(d.type(), H5Type::Float32);
    EXPECT_EQ(d.shape(), (std::vector<std::int64_t>{3, 4}));
    EXPECT_EQ(d.chunkShape(), (std::vector<std::int64_t>{2, 2}));
    std::vector<float> all(12, -1.0F);
    d.read({0, 0}, {3, 4}, H5Type::Float32, all.data());
    EXPECT_EQ(all, (std::vector<float>{0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0})); // unwritten = fill value 0
    EXPECT_THAT(errorOf<FormatError>([&] { (void)f.stringAttribute("missing"); }),
                HasSubstr("missing attribute 'missing'"));
    EXPECT_THAT(errorOf<FormatError>([&] { (void)f.stringAttribute("i"); }), HasSubstr("'i' is not a string"));
    EXPECT_THAT(errorOf<FormatError>([&] { (void)f.openDataset("zz"); }), HasSubstr("no dataset 'zz'"));
}

TEST(Hdf5File, ErrorsNameTheFileAndHdf5sCause) {
    test::TempDir dir;
    const auto junk = dir / "junk.h5";
    std::ofstream(junk) << "this is not HDF5";
    const std::string msg = errorOf<IoError>([&] { Hdf5File f(junk, Hdf5File::Mode::ReadOnly); });
    EXPECT_THAT(msg, HasSubstr(junk.string() + ": cannot open HDF5 file: "));
    EXPECT_THAT(msg, HasSubstr("signature")); // "file signature not found", from the walked stack
    EXPECT_FALSE(Hdf5File::isHdf5(junk));
    EXPECT_THAT(errorOf<IoError>([&] { Hdf5File f(dir / "none.h5", Hdf5File::Mode::ReadOnly); }),
                HasSubstr("none.h5: no such file"));
    EXPECT_THAT(errorOf<IoError>([&] { Hdf5File f(dir / "no/such/dir/x.h5", Hdf5File::Mode::Create); }),
                HasSubstr("x.h5: cannot create HDF5 file: "));
}

// ---------------------------------------------------------------------------------------------------
// dihedral transforms

namespace {
/// numpy semantics, written out independently: rot90 (counter-clockwise) and fliplr of a rows × cols
/// array of ints.
std::vector<std::vector<int>> npRot90(const std::vector<std::vector<int>>& a) {
    const std::size_t R = a.size(), C = a[0].size();
    std::vector<std::vector<int>> out(C, std::vector<int>(R));
    for (std::size_t i = 0; i < C; ++i)
        for (std::size_t j = 0; j < R; ++j)
            out[i][j] = a[j][C - 1 - i];
    return out;
}
std::vector<std::vector<int>> npFliplr(std::vector<std::vector<int>> a) {
    for (auto& row : a)
        std::reverse(row.begin(), row.end());
    return a;
}
} // namespace

TEST(Dihedral, MatchesNumpyRot90AndFliplr) {
    const std::vector<std::vector<int>> a{{0, 1, 2}, {3, 4, 5}};
    // np.rot90(a) == [[2, 5], [1, 4], [0, 3]]
    EXPECT_EQ(npRot90(a), (std::vector<std::vector<int>>{{2, 5}, {1, 4}, {0, 3}}));
    std::set<std::vector<std::vector<int>>> distinct;
    for (int k = 0; k < 8; ++k) {
        auto expected = k >= 4 ? npFliplr(a) : a;
        for (int r = 0; r < k % 4; ++r)
            expected = npRot90(expected);
        const auto [h, w] = dihedralShape(k, 2, 3);
        ASSERT_EQ(static_cast<std::size_t>(h), expected.size()) << k;
        ASSERT_EQ(static_cast<std::size_t>(w), expected[0].size()) << k;
        std::vector<std::vector<int>> got(static_cast<std::size_t>(h), std::vector<int>(static_cast<std::size_t>(w)));
        for (int r = 0; r < 2; ++r)
            for (int c = 0; c < 3; ++c) {
                const auto [r2, c2] = dihedralMap(k, r, c, 2, 3);
                got[static_cast<std::size_t>(r2)][static_cast<std::size_t>(c2)] = a[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
            }
        EXPECT_EQ(got, expected) << "k=" << k << " (" << dihedralName(k) << ")";
        distinct.insert(got);

        Image im(3, 2, 1);
        for (int i = 0; i < 6; ++i)
            im.pixels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
        const Image t = dihedralTransform(im, k);
        ASSERT_EQ(t.height, h);
        ASSERT_EQ(t.width, w);
        for (int r = 0; r < h; ++r)
            for (int c = 0; c < w; ++c)
                EXPECT_EQ(*t.at(c, r), expected[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)]);
    }
    EXPECT_EQ(distinct.size(), 8U);
}

TEST(Dihedral, PatchTransformEqualsImageTransform) {
    const int P = 5;
    Image im(P, P, 3);
    for (std::size_t i = 0; i < im.pixels.size(); ++i)
        im.pixels[i] = static_cast<std::uint8_t>(i * 7);
    std::vector<std::uint8_t> out(im.pixels.size());
    for (int k = 0; k < 8; ++k) {
        dihedralTransformPatch(im.pixels.data(), out.data(), P, k);
        EXPECT_EQ(out, dihedralTransform(im, k).pixels) << k;
    }
    EXPECT_THROW(dihedralShape(8, 1, 1), InvalidArgument);
}

// ---------------------------------------------------------------------------------------------------
// latent grid files

TEST(LatentGrid, WritesAndReadsAllVariantsWithTransformedPlacement) {
    test::TempDir dir;
    for (const auto dtype : {LatentDType::Float16, LatentDType::Float32}) {
        const auto path = dir / (std::string("g-") + toString(dtype) + ".h5");
        const auto meta = smallMeta(5, 3, 2, 8, dtype);
        writeSmallGrid(path, meta, 2);
        const LatentGridReader reader(path);
        EXPECT_EQ(reader.meta().parameterMismatch(meta), "");
        EXPECT_EQ(reader.meta().encodedCells, 15);
        EXPECT_EQ(reader.meta().softwareVersion, std::string(kVersion));
        for (int k = 0; k < 8; ++k) {
            const LatentTensor t = reader.grid(k);
            const auto [h, w] = dihedralShape(k, 5, 3);
            ASSERT_EQ(t.height, h);
            ASSERT_EQ(t.width, w);
            ASSERT_EQ(t.channels, 2);
            for (int r = 0; r < 5; ++r)
                for (int c = 0; c < 3; ++c) {
                    const auto [r2, c2] = dihedralMap(k, r, c, 5, 3);
                    for (int ch = 0; ch < 2; ++ch)
                        EXPECT_EQ(t.at(ch, r2, c2), static_cast<float>(k * 64 + r * 8 + c) + static_cast<float>(ch) / 4.0F)
                            << "k=" << k << " r=" << r << " c=" << c;
                }
        }
        EXPECT_EQ(reader.cellFlags(), std::vector<std::uint8_t>(15, kCellEncoded));
        EXPECT_EQ(reader.tissueFractions(), std::vector<float>(15, 1.0F));
        EXPECT_THROW(reader.grid(8), InvalidArgument);
    }
}

TEST(LatentGrid, ReaderRefusesBrokenFilesWithClearMessages) {
    test::TempDir dir;
    const auto meta = smallMeta(4, 3, 2, 1, LatentDType::Float16);
    auto fresh = [&](const std::string& name) {
        const auto p = dir / name;
        writeSmallGrid(p, meta, 2);
        return p;
    };
    // Bad contents are FormatError; a missing file is IoError (checked at the end).
    auto readErr = [](const std::filesystem::path& p) { return errorOf<FormatError>([&] { LatentGridReader r(p); }); };

    EXPECT_EQ(readErr(fresh("ok.h5")), "<no error>");

    const auto version = fresh("version.h5");
    Hdf5File(version, Hdf5File::Mode::ReadWrite).setIntAttribute("format_version", 99);
    EXPECT_EQ(readErr(version), version.string() + ": unsupported compressed-slide format version 99 (this build reads version 1)");

    const auto shape = fresh("shape.h5");
    {
        Hdf5File f(shape, Hdf5File::Mode::ReadWrite);
        f.remove("grid");
        f.createDataset("grid", H5Type::Float16, {4, 4, 2}).close();
    }
    EXPECT_EQ(readErr(shape), shape.string() + ": dataset 'grid' has shape [4, 4, 2], expected [4, 3, 2] from its attributes");

    const auto type = fresh("type.h5");
    {
        Hdf5File f(type, Hdf5File::Mode::ReadWrite);
        f.remove("grid");
        f.createDataset("grid", H5Type::Int32, {4, 3, 2}).close();
    }
    EXPECT_EQ(readErr(type), type.string() + ": dataset 'grid' has type int32, expected float16");

    const auto missing = fresh("missing.h5");
    {
        Hdf5File f(missing, Hdf5File::Mode::ReadWrite);
        f.remove("cell_flags");
    }
    EXPECT_EQ(readErr(missing), missing.string() + ": no dataset 'cell_flags'");

    const auto other = dir / "other.h5";
    Hdf5File(other, Hdf5File::Mode::Create).setStringAttribute("format", "something-else");
    EXPECT_THAT(readErr(other), HasSubstr("other.h5: not a compressed slide (format 'something-else'"));
    const auto empty = dir / "empty.h5";
    Hdf5File(empty, Hdf5File::Mode::Create).close();
    EXPECT_THAT(readErr(empty), HasSubstr("empty.h5: not a compressed slide (no 'format' attribute"));

    const auto text = dir / "text.h5";
    std::ofstream(text) << "hello";
    EXPECT_EQ(readErr(text), text.string() + ": not an HDF5 file");
    EXPECT_EQ(errorOf<IoError>([&] { LatentGridReader r(dir / "absent.h5"); }),
              (dir / "absent.h5").string() + ": no such file");

    // A partial file is refused by the reader (but resumable by the writer).
    const auto partial = dir / "partial.h5";
    {
        const std::vector<float> tissue(12, 1.0F);
        auto w = LatentGridWriter::create(partial, meta, tissue, 2);
        const std::vector<float> band(2 * 3 * 2, 0.5F);
        const std::vector<std::uint8_t> flags(6, kCellEncoded);
        w->writeBand(2, {band.data()}, flags.data());
        w->close();
    }
    EXPECT_EQ(readErr(partial), partial.string() +
                                    ": incomplete compressed slide (2 of 4 rows written; rerun nic compress to resume it)");
    const std::vector<float> tissue(12, 1.0F);
    auto resumed = LatentGridWriter::resume(partial, meta, tissue, 2);
    EXPECT_EQ(resumed->rowsDone(), 2);
    resumed->close();
    auto otherMeta = meta;
    otherMeta.encoderHash = "zzz";
    EXPECT_THAT(errorOf<FormatError>([&] { LatentGridWriter::resume(partial, otherMeta, tissue, 2); }),
                HasSubstr("partial output made with other parameters (encoder hash differs: 'zzz' vs 'abc123')"));
    EXPECT_THAT(errorOf<FormatError>([&] { LatentGridWriter::resume(partial, meta, std::vector<float>(12, 0.5F), 2); }),
                HasSubstr("different tissue mask"));
}

// ---------------------------------------------------------------------------------------------------
// cohort CSV

TEST(Cohort, ParsesColumnsQuotesAndComments) {
    const std::string text =
        "# a comment\r\n"
        "slide,label,score,fold,annotations\r\n"
        "a.svs,1,0.25,0,a.xml\r\n"
        "\r\n"
        "\"dir, with comma/b.svs\",0,,2,\"say \"\"hi\"\"\"\r\n"
        "/abs/c.tif,tumor,1e-3,,\n";
    const Cohort c = parseCohort(text, "cohort.csv", "/data");
    ASSERT_EQ(c.entries.size(), 3U);
    EXPECT_EQ(c.entries[0].slide, std::filesystem::path("/data/a.svs"));
    EXPECT_EQ(c.entries[0].label, "1");
    EXPECT_EQ(c.entries[0].labelValue(), 1.0);
    EXPECT_EQ(c.entries[0].score, 0.25);
    EXPECT_EQ(c.entries[0].fold, 0);
    EXPECT_EQ(c.entries[0].extra.at("annotations"), "a.xml");
    EXPECT_EQ(c.entries[0].line, 3);
    EXPECT_EQ(c.entries[1].slide, std::filesystem::path("/data/dir, with comma/b.svs"));
    EXPECT_FALSE(c.entries[1].score.has_value());
    EXPECT_EQ(c.entries[1].fold, 2);
    EXPECT_EQ(c.entries[1].extra.at("annotations"), "say \"hi\"");
    EXPECT_EQ(c.entries[1].line, 5);
    EXPECT_EQ(c.entries[2].slide, std::filesystem::path("/abs/c.tif"));
    EXPECT_EQ(c.entries[2].score, 1e-3);
    EXPECT_EQ(errorOf<FormatError>([&] { (void)c.entries[2].labelValue(); }),
              "cohort.csv:6: label 'tumor' of slide c.tif is not a number");
}

TEST(Cohort, MalformedFilesNameFileAndLine) {
    struct Case {
        std::string text;
        std::string error;
    };
    const Case cases[] = {
        {"", "c.csv: empty cohort file"},
        {"slide,score\na,1\n", "c.csv:1: header must name columns 'slide' and 'label' (found: slide,score)"},
        {"slide,label\na,1\nb\n", "c.csv:3: 1 fields, the header has 2"},
        {"slide,label,score\na,1,abc\n", "c.csv:2: score 'abc' is not a number"},
        {"slide,label,fold\na,1,1.5\n", "c.csv:2: fold '1.5' is not an integer >= 0"},
        {"slide,label,fold\na,1,-1\n", "c.csv:2: fold '-1' is not an integer >= 0"},
        {"slide,label\n,1\n", "c.csv:2: empty slide path"},
        {"slide,label\na,\n", "c.csv:2: empty label for slide a"},
        {"slide,label\na,1\na,0\n", "c.csv:3: slide a is listed twice"},
        {"slide,label\n\"a,1\n", "c.csv:2: unterminated quoted field"},
        {"slide,label,slide\na,1,b\n", "c.csv:1: duplicate column 'slide'"},
    };
    for (const auto& c : cases)
        EXPECT_THAT(errorOf<FormatError>([&] { parseCohort(c.text, "c.csv", "."); }), HasSubstr(c.error))
            << c.text;
    test::TempDir dir;
    EXPECT_THAT(errorOf<IoError>([&] { readCohort(dir / "none.csv"); }), HasSubstr("none.csv: cannot read cohort file"));
    std::ofstream(dir / "ok.csv") << "slide,label\nx.svs,1\n";
    const Cohort ok = readCohort(dir / "ok.csv");
    ASSERT_EQ(ok.slides().size(), 1U);
    EXPECT_EQ(ok.slides()[0], dir.path() / "x.svs");
}

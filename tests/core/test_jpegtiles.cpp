// Direct JPEG tile decoding (core/slide/jpegtiles.h): every region it reads must equal OpenSlide's own
// read of the same region bit for bit, on synthetic pyramids and on a real Aperio slide; whatever it cannot
// read goes to OpenSlide with OpenSlide's errors.
#include "core/base/error.h"
#include "core/slide/jpegtiles.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "testsupport.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>

using nic::Slide;
using nic::TileDecoding;
using nic::test::sharedDataDir;

namespace {

std::filesystem::path writeSynth(const std::filesystem::path& dir, std::int64_t w, std::int64_t h, int tile,
                                 std::uint64_t seed) {
    nic::SynthSlideParams p;
    p.width = w;
    p.height = h;
    p.seed = seed;
    p.lesionCount = 1;
    p.tissueCoverage = 0.5;
    nic::SynthWriteOptions o;
    o.tileSize = tile;
    o.threads = 2;
    o.thumbnailMaxSide = 256;
    const auto path = dir / ("s" + std::to_string(seed) + ".svs");
    nic::SynthSlide(p).write(path, o);
    return path;
}

struct Region {
    std::int64_t x, y;
    int level, w, h;
};

std::string describe(const Region& r) {
    return "(" + std::to_string(r.x) + ", " + std::to_string(r.y) + ") level " + std::to_string(r.level) + " " +
           std::to_string(r.w) + "x" + std::to_string(r.h);
}

/// Regions that start on and off tile boundaries, cross tiles, touch and pass every edge of every
/// level, start at negative coordinates, lie wholly outside, and random ones; level-0 coordinates.
std::vector<Region> probeRegions(const Slide& s, int tile) {
    std::vector<Region> out;
    std::mt19937 rng(7);
    for (int l = 0; l < s.levelCount(); ++l) {
        const auto ds = static_cast<std::int64_t>(s.level(l).downsample + 0.5);
        const std::int64_t lw = s.level(l).width, lh = s.level(l).height;
        auto at = [&](std::int64_t lx, std::int64_t ly, int w, int h) { out.push_back({lx * ds, ly * ds, l, w, h}); };
        at(0, 0, 64, 64);
        at(0, 0, tile, tile);
        at(tile - 7, tile - 5, 20, 30);               // across four tiles
        at(3, 1, 3 * tile + 5, 2 * tile + 1);          // many tiles, odd size
        at(lw - 10, lh - 12, 40, 50);                  // past the right and bottom edges
        at(-9, -4, 33, 17);                            // before the left and top edges
        at(lw + 5, 0, 16, 16);                         // wholly outside
        at(0, 0, static_cast<int>(lw), static_cast<int>(lh)); // the whole level
        for (int i = 0; i < 12; ++i) {
            std::uniform_int_distribution<std::int64_t> px(0, std::max<std::int64_t>(0, lw - 1));
            std::uniform_int_distribution<std::int64_t> py(0, std::max<std::int64_t>(0, lh - 1));
            std::uniform_int_distribution<int> side(1, 300);
            at(px(rng), py(rng), side(rng), side(rng));
        }
    }
    return out;
}

void expectSameAsOpenSlide(const std::filesystem::path& path, int tile, int expectDirectLevels) {
    const Slide direct(path, TileDecoding::Direct);
    const Slide reference(path, TileDecoding::OpenSlideOnly);
    int directLevels = 0;
    for (int l = 0; l < direct.levelCount(); ++l) {
        directLevels += direct.decodesTilesDirectly(l) ? 1 : 0;
        EXPECT_FALSE(reference.decodesTilesDirectly(l));
    }
    EXPECT_EQ(directLevels, expectDirectLevels) << path;
    // Region after region of other sizes into one buffer each: the buffer form writes every byte it keeps.
    std::vector<std::uint8_t> directBuffer, referenceBuffer;
    for (const Region& r : probeRegions(direct, tile)) {
        const auto a = direct.readRegion(r.x, r.y, r.level, r.w, r.h);
        const auto b = reference.readRegion(r.x, r.y, r.level, r.w, r.h);
        ASSERT_EQ(a.pixels, b.pixels) << path << " " << describe(r);
        direct.readRegion(r.x, r.y, r.level, r.w, r.h, directBuffer);
        reference.readRegion(r.x, r.y, r.level, r.w, r.h, referenceBuffer);
        ASSERT_EQ(directBuffer, a.pixels) << path << " " << describe(r);
        ASSERT_EQ(referenceBuffer, b.pixels) << path << " " << describe(r);
    }
}

} // namespace

TEST(JpegTiles, SyntheticPyramidReadsBitForBitAsOpenSlide) {
    nic::test::TempDir dir;
    // 2048 / 256: every level whole tiles at level 0; 1500 x 1100 / 240: partial edge tiles everywhere.
    const auto even = writeSynth(dir.path(), 2048, 2048, 256, 1);
    const Slide s(even);
    ASSERT_GE(s.levelCount(), 2);
    expectSameAsOpenSlide(even, 256, s.levelCount());
    const auto odd = writeSynth(dir.path(), 1500, 1100, 240, 2);
    const Slide o(odd);
    expectSameAsOpenSlide(odd, 240, o.levelCount());
}

TEST(JpegTiles, RealAperioSlideReadsBitForBitAsOpenSlide) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    expectSameAsOpenSlide(sharedDataDir() / "slides/CMU-1-Small-Region.svs", 240, 1);
}

TEST(JpegTiles, SmallCacheEvictsAndDecodesAgain) {
    nic::test::TempDir dir;
    const auto path = writeSynth(dir.path(), 1024, 1024, 256, 4);
    const Slide s(path);
    std::vector<nic::JpegTileLevelSpec> specs{{s.width(), s.height(), 256, 256}};
    std::string why;
    // Room for one decoded 256² tile: reading two tiles alternately decodes every time.
    const auto reader = nic::JpegTileReader::open(path, specs, why, 256 * 256 * 3);
    ASSERT_TRUE(reader) << why;
    std::vector<std::uint8_t> a(64 * 64 * 3), b(64 * 64 * 3), again(64 * 64 * 3);
    ASSERT_TRUE(reader->read(0, 0, 0, 64, 64, a.data()));
    ASSERT_TRUE(reader->read(0, 0, 0, 64, 64, again.data()));
    EXPECT_EQ(reader->tilesDecoded(), 1);
    ASSERT_TRUE(reader->read(0, 512, 512, 64, 64, b.data()));
    ASSERT_TRUE(reader->read(0, 0, 0, 64, 64, again.data()));
    EXPECT_EQ(reader->tilesDecoded(), 3);
    EXPECT_EQ(a, again);
    EXPECT_EQ(a, s.readRegion(0, 0, 0, 64, 64).pixels);
    EXPECT_EQ(b, s.readRegion(512, 512, 0, 64, 64).pixels);
    EXPECT_FALSE(reader->read(1, 0, 0, 8, 8, a.data())) << "a level it was not given";
}

// A tile that does not decode is OpenSlide's to report: the same message as without the fast path, and
// the handle is dead afterwards, as OpenSlide's is.
TEST(JpegTiles, DamagedTileGivesOpenSlidesError) {
    NIC_REQUIRE_SHARED("slides/malformed/unreadable.svs");
    const auto p = sharedDataDir() / "slides/malformed/unreadable.svs";
    const Slide s(p);
    EXPECT_TRUE(s.decodesTilesDirectly(0)) << "the damaged tile must reach the fast path for this test to mean anything";
    const std::string err = nic::test::errorOf<nic::SlideError>([&] { (void)s.readRegion(0, 0, 0, 16, 16); });
    EXPECT_EQ(err, p.string() + ": cannot read region at (0, 0) level 0 size 16x16: Bogus marker length");
    EXPECT_THROW((void)s.readRegion(0, 0, 0, 4, 4), nic::SlideError);
}

TEST(JpegTiles, TruncatedTileGivesOpenSlidesError) {
    nic::test::TempDir dir;
    const auto path = writeSynth(dir.path(), 1024, 1024, 256, 5);
    {
        // Zero 64 KiB of level 0's tiles (written first, after the header), the start of some tile among them.
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(4096);
        const std::string zeros(65536, '\0');
        f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    }
    const Slide reference(path, TileDecoding::OpenSlideOnly);
    const std::string expected = nic::test::errorOf<nic::SlideError>([&] { (void)reference.readRegion(0, 0, 0, 1024, 1024); });
    ASSERT_NE(expected, "<no error>") << "zeroed tile bytes must make OpenSlide fail for this test to mean anything";
    const Slide direct(path);
    ASSERT_TRUE(direct.decodesTilesDirectly(0));
    EXPECT_EQ(nic::test::errorOf<nic::SlideError>([&] { (void)direct.readRegion(0, 0, 0, 1024, 1024); }), expected);
}

TEST(JpegTiles, EnvironmentTurnsTheFastPathOff) {
    nic::test::TempDir dir;
    const auto path = writeSynth(dir.path(), 512, 512, 256, 6);
    ::setenv("NIC_TILE_DECODER", "openslide", 1);
    const Slide off(path);
    ::unsetenv("NIC_TILE_DECODER");
    const Slide on(path);
    EXPECT_FALSE(off.decodesTilesDirectly(0));
    EXPECT_TRUE(on.decodesTilesDirectly(0));
    EXPECT_EQ(off.readRegion(100, 100, 0, 200, 200).pixels, on.readRegion(100, 100, 0, 200, 200).pixels);
}

TEST(JpegTiles, LayoutsItDoesNotTakeAreLeftToOpenSlide) {
    nic::test::TempDir dir;
    const auto notTiff = dir / "x.svs";
    { std::ofstream(notTiff) << "not a tiff at all"; }
    std::string why;
    EXPECT_FALSE(nic::JpegTileReader::open(notTiff, {{16, 16, 0, 0}}, why));
    EXPECT_EQ(why, "not a TIFF file libtiff can open");
    const auto path = writeSynth(dir.path(), 512, 512, 256, 7);
    EXPECT_FALSE(nic::JpegTileReader::open(path, {{513, 512, 0, 0}}, why)) << "no directory of that size";
    EXPECT_EQ(why, "no level is a tiled 8-bit RGB JPEG TIFF directory");
    EXPECT_FALSE(nic::JpegTileReader::open(path, {{512, 512, 128, 128}}, why)) << "another tile size";
    EXPECT_TRUE(nic::JpegTileReader::open(path, {{512, 512, 256, 256}}, why)) << why;
}

// Damaged files read the same with and without the fast path: for truncations and bit flips anywhere in
// the file (flipped JPEG data often decodes without complaint), every region of every level gives the
// same pixels or the same error on both handles, read in the same order. Also runs under ASan.
TEST(JpegTiles, DamagedSlidesReadExactlyAsOpenSlideReadsThem) {
    nic::test::TempDir dir;
    const auto intact = writeSynth(dir.path(), 1024, 768, 256, 8);
    std::vector<char> bytes;
    {
        std::ifstream in(intact, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::mt19937_64 rng(3);
    int variants = 0, failedReads = 0;
    for (int k = 0; k < 48; ++k) {
        auto damaged = bytes;
        if (k < 8) {
            damaged.resize(bytes.size() * static_cast<std::size_t>(k + 2) / 10);
        } else {
            const std::size_t at = static_cast<std::size_t>(rng() % bytes.size());
            damaged[at] = static_cast<char>(damaged[at] ^ static_cast<char>(1U << (rng() % 8)));
        }
        const auto path = dir / ("damaged-" + std::to_string(k) + ".svs");
        {
            std::ofstream out(path, std::ios::binary);
            out.write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
        }
        std::unique_ptr<Slide> direct, reference;
        const std::string openDirect = nic::test::errorOf<nic::Error>([&] { direct = std::make_unique<Slide>(path); });
        const std::string openReference = nic::test::errorOf<nic::Error>(
            [&] { reference = std::make_unique<Slide>(path, TileDecoding::OpenSlideOnly); });
        ASSERT_EQ(openDirect, openReference) << path;
        if (!direct)
            continue;
        ++variants;
        for (int l = 0; l < direct->levelCount(); ++l) {
            const auto ds = direct->level(l).downsample;
            for (std::int64_t y = 0; y < direct->level(l).height; y += 200)
                for (std::int64_t x = 0; x < direct->level(l).width; x += 300) {
                    const auto x0 = static_cast<std::int64_t>(static_cast<double>(x) * ds);
                    const auto y0 = static_cast<std::int64_t>(static_cast<double>(y) * ds);
                    nic::Image a, b;
                    const std::string ea = nic::test::errorOf<nic::Error>([&] { a = direct->readRegion(x0, y0, l, 300, 200); });
                    const std::string eb =
                        nic::test::errorOf<nic::Error>([&] { b = reference->readRegion(x0, y0, l, 300, 200); });
                    ASSERT_EQ(ea, eb) << path << " level " << l << " at " << x << ", " << y;
                    ASSERT_EQ(a.pixels, b.pixels) << path << " level " << l << " at " << x << ", " << y;
                    failedReads += ea == "<no error>" ? 0 : 1;
                }
        }
        std::filesystem::remove(path);
    }
    EXPECT_GE(variants, 30) << "most damaged variants still open";
    EXPECT_GT(failedReads, 0) << "some damage must reach a tile for this test to mean anything";
}

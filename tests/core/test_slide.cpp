// Slide: real Aperio slide, broken slides, generic TIFF resolution, region reads.
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/slide/slide.h"
#include "testsupport.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <thread>

using nic::Slide;
using nic::SlideError;
using nic::test::sharedDataDir;

namespace {

std::uint64_t fnv1a(const std::vector<std::uint8_t>& bytes) {
    std::uint64_t h = 1469598103934665603ULL;
    for (auto b : bytes) {
        h ^= b;
        h *= 1099511628211ULL;
    }
    return h;
}

std::string errorOf(const std::filesystem::path& p) {
    return nic::test::errorOf<SlideError>([&] { Slide s(p); });
}

} // namespace

TEST(Slide, RealAperioSlideGeometryAndResolution) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const Slide s(sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    EXPECT_EQ(s.vendor(), "aperio");
    EXPECT_EQ(s.width(), 2220);
    EXPECT_EQ(s.height(), 2967);
    ASSERT_EQ(s.levelCount(), 1);
    EXPECT_DOUBLE_EQ(s.level(0).downsample, 1.0);
    ASSERT_TRUE(s.resolution().has_value());
    EXPECT_NEAR(s.resolution()->mppX, 0.499, 1e-3);
    EXPECT_NEAR(s.resolution()->mppY, 0.499, 1e-3);
    EXPECT_EQ(s.resolution()->source, "openslide.mpp");
    ASSERT_TRUE(s.objectivePower().has_value());
    EXPECT_DOUBLE_EQ(*s.objectivePower(), 20.0);
    EXPECT_EQ(s.associatedImages().count("thumbnail"), 1U);
    EXPECT_EQ(s.associatedImages().count("label"), 1U);
    EXPECT_EQ(s.associatedImages().count("macro"), 1U);
    const auto thumb = s.readAssociatedImage("thumbnail");
    EXPECT_EQ(thumb.width, s.associatedImages().at("thumbnail").first);
    EXPECT_FALSE(s.quickHash().empty());
    EXPECT_THROW(s.readAssociatedImage("nope"), SlideError);
}

// The reference is openslide-tools' own PNG writer (a separate program): our RGB must equal its pixels.
TEST(Slide, RegionMatchesOpenSlideToolsReference) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const auto path = sharedDataDir() / "slides/CMU-1-Small-Region.svs";
    const Slide s(path);
    const auto region = s.readRegion(1000, 1200, 0, 256, 256);
    ASSERT_EQ(region.width, 256);
    ASSERT_EQ(region.height, 256);
    // Checksum of the RGB bytes, recorded from openslide-write-png's output of the same region.
    EXPECT_EQ(fnv1a(region.pixels), 0xdd1f1bcea65d19ccULL) << std::hex << fnv1a(region.pixels);

    if (nic::test::runCommand("command -v openslide-write-png") != 0)
        GTEST_SKIP() << "openslide-write-png (openslide-tools) not installed; checksum compared only";
    nic::test::TempDir tmp;
    const auto ref = tmp / "ref.png";
    ASSERT_EQ(nic::test::runCommand("openslide-write-png '" + path.string() + "' 1000 1200 0 256 256 '" +
                                    ref.string() + "'"),
              0);
    const auto expected = nic::readImage(ref);
    EXPECT_EQ(region.pixels, expected.pixels);
}

TEST(Slide, RegionOutsideSlideIsWhite) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const Slide s(sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    const auto region = s.readRegion(2220 - 8, 2967 - 8, 0, 16, 16);
    EXPECT_EQ(region.at(15, 15)[0], 255);
    EXPECT_EQ(region.at(15, 15)[1], 255);
    EXPECT_EQ(region.at(15, 15)[2], 255);
    EXPECT_THROW(s.readRegion(0, 0, 3, 4, 4), nic::InvalidArgument);
    EXPECT_THROW(s.readRegion(0, 0, 0, 0, 4), nic::InvalidArgument);
}

TEST(Slide, ConcurrentReadsAreIdenticalToSerial) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const Slide s(sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    std::vector<nic::Image> serial;
    for (int i = 0; i < 8; ++i)
        serial.push_back(s.readRegion(i * 200, i * 300, 0, 128, 128));
    std::vector<nic::Image> parallel(8);
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] { parallel[static_cast<std::size_t>(i)] = s.readRegion(i * 200, i * 300, 0, 128, 128); });
    for (auto& t : threads)
        t.join();
    for (std::size_t i = 0; i < 8; ++i)
        EXPECT_EQ(serial[i].pixels, parallel[i].pixels);
}

TEST(Slide, ThumbnailKeepsAspect) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    const Slide s(sharedDataDir() / "slides/CMU-1-Small-Region.svs");
    const auto t = s.thumbnail(300);
    EXPECT_EQ(t.height, 300);
    EXPECT_EQ(t.width, 224); // 2220 / 2967 * 300 = 224.5 -> 224
}

TEST(Slide, GenericTiffResolutionIsNeverInvented) {
    NIC_REQUIRE_SHARED("slides/synthetic/boxes.tiff");
    const Slide s(sharedDataDir() / "slides/synthetic/boxes.tiff");
    EXPECT_EQ(s.vendor(), "generic-tiff");
    EXPECT_EQ(s.width(), 300);
    EXPECT_EQ(s.height(), 250);
    EXPECT_EQ(s.levelCount(), 4);
    EXPECT_FALSE(s.property("openslide.mpp-x").has_value());
    // boxes.tiff carries 28.35 px/cm (72 dpi), an image editor's placeholder: mpp must be unknown,
    // with the reason, never a number made up from it.
    EXPECT_FALSE(s.resolution().has_value());
    EXPECT_EQ(s.resolutionNote(),
              "tiff.XResolution gives 352.8 um/px (72 dpi), not a microscope resolution; treated as unknown");
}

TEST(Slide, SmallSyntheticAperio) {
    NIC_REQUIRE_SHARED("slides/synthetic/small.svs");
    const Slide s(sharedDataDir() / "slides/synthetic/small.svs");
    EXPECT_EQ(s.width(), 16);
    EXPECT_EQ(s.height(), 16);
    ASSERT_TRUE(s.resolution().has_value());
    EXPECT_NEAR(s.resolution()->mppX, 0.499, 1e-3);
}

// Broken inputs: each gives its own message naming the file; nothing crashes.
TEST(SlideErrors, UnrecognisedFile) {
    NIC_REQUIRE_SHARED("slides/malformed/broken.svs");
    const auto p = sharedDataDir() / "slides/malformed/broken.svs";
    EXPECT_EQ(errorOf(p), p.string() + ": cannot open slide: not a file that OpenSlide can recognize "
                                       "(unsupported or corrupt slide format)");
}

TEST(SlideErrors, UnsupportedCompression) {
    NIC_REQUIRE_SHARED("slides/malformed/unopenable.tiff");
    const auto p = sharedDataDir() / "slides/malformed/unopenable.tiff";
    EXPECT_EQ(errorOf(p), p.string() + ": cannot open slide: Unsupported TIFF compression: 52479");
}

TEST(SlideErrors, CorruptTileOnRead) {
    NIC_REQUIRE_SHARED("slides/malformed/unreadable.svs");
    const auto p = sharedDataDir() / "slides/malformed/unreadable.svs";
    const Slide s(p);
    EXPECT_EQ(s.width(), 16);
    try {
        (void)s.readRegion(0, 0, 0, 16, 16);
        FAIL() << "expected a read error";
    } catch (const SlideError& e) {
        EXPECT_EQ(std::string(e.what()),
                  p.string() + ": cannot read region at (0, 0) level 0 size 16x16: Bogus marker length");
    }
    // The handle is dead afterwards: later reads fail too instead of returning garbage.
    EXPECT_THROW((void)s.readRegion(0, 0, 0, 4, 4), SlideError);
}

TEST(SlideErrors, MissingFile) {
    const std::filesystem::path p = "/nonexistent/dir/slide.svs";
    EXPECT_EQ(errorOf(p), p.string() + ": cannot open slide: No such file or directory");
}

TEST(SlideErrors, DirectoryIsNotASlide) {
    nic::test::TempDir dir;
    EXPECT_EQ(errorOf(dir.path()), dir.path().string() + ": cannot open slide: is a directory, not a slide file");
}

TEST(SlideErrors, EmptyAndTruncatedFiles) {
    nic::test::TempDir dir;
    const auto empty = dir / "empty.svs";
    { std::ofstream(empty).flush(); }
    EXPECT_EQ(errorOf(empty), empty.string() + ": cannot open slide: empty file");
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    // The first 4 KiB of a real SVS: the header survives, the directories do not.
    const auto truncated = dir / "truncated.svs";
    std::filesystem::copy_file(sharedDataDir() / "slides/CMU-1-Small-Region.svs", truncated);
    std::filesystem::resize_file(truncated, 4096);
    const std::string err = errorOf(truncated);
    EXPECT_EQ(err.rfind(truncated.string() + ": cannot open slide: ", 0), 0U) << err;
}

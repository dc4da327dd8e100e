// Synthetic cohort generator (core/synth/synth.h) and the pyramidal TIFF writer (core/imaging/tiffwriter.h): files
// open in OpenSlide with the requested geometry and mpp, are byte-identical for a seed, carry ground
// truth (tissue mask, lesions as ASAP XML, cohort.csv), and tumour differs from normal tissue in texture
// but not in mean colour.
#include "testsupport.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "core/imaging/tiffwriter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <set>
#include <cmath>
#include <fstream>
#include <sstream>

using namespace nic;

namespace {

std::vector<std::string> listDir(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

double meanAbsDiff(const Image& a, const Image& b) {
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.height, b.height);
    EXPECT_EQ(a.channels, b.channels);
    double sum = 0;
    for (std::size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i)
        sum += std::abs(static_cast<int>(a.pixels[i]) - static_cast<int>(b.pixels[i]));
    return sum / static_cast<double>(a.pixels.size());
}

SynthWriteOptions fastWrite() {
    SynthWriteOptions w;
    w.threads = 2;
    return w;
}

} // namespace

// One 4096² positive slide shared by the tests that only read it.
class SynthSlideFile : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir();
        SynthSlideParams p;
        p.width = 4096;
        p.height = 4096;
        p.seed = 11;
        p.lesionCount = 2;
        p.lesionMinUm = 600;
        p.lesionMaxUm = 800;
        slide_ = new SynthSlide(p);
        slide_->write(path(), fastWrite());
    }
    static void TearDownTestSuite() {
        delete slide_;
        delete dir_;
        slide_ = nullptr;
        dir_ = nullptr;
    }
    static std::filesystem::path path() { return *dir_ / "positive.svs"; }
    static test::TempDir* dir_;
    static SynthSlide* slide_;
};
test::TempDir* SynthSlideFile::dir_ = nullptr;
SynthSlide* SynthSlideFile::slide_ = nullptr;

TEST_F(SynthSlideFile, OpensAsAperioWithSizeLevelsAndMpp) {
    const Slide s(path());
    EXPECT_EQ(s.vendor(), "aperio");
    EXPECT_EQ(s.width(), 4096);
    EXPECT_EQ(s.height(), 4096);
    ASSERT_EQ(s.levelCount(), 2); // 4096 → 1024, then the smaller side is <= 1024
    EXPECT_EQ(s.level(1).width, 1024);
    EXPECT_EQ(s.level(1).height, 1024);
    EXPECT_DOUBLE_EQ(s.level(1).downsample, 4.0);
    ASSERT_TRUE(s.resolution().has_value());
    EXPECT_NEAR(s.resolution()->mppX, 0.5, 1e-9);
    EXPECT_NEAR(s.resolution()->mppY, 0.5, 1e-9);
    EXPECT_EQ(s.resolution()->source, "openslide.mpp");
    ASSERT_TRUE(s.objectivePower().has_value());
    EXPECT_DOUBLE_EQ(*s.objectivePower(), 20.0);
    EXPECT_EQ(s.property("tiff.ResolutionUnit").value_or(""), "centimeter");
    ASSERT_EQ(s.associatedImages().count("thumbnail"), 1U);
    EXPECT_EQ(s.associatedImages().at("thumbnail").first, 1024);
    EXPECT_FALSE(s.property("tiff.DateTime").has_value()); // no time stamps: byte-identical reruns
}

TEST_F(SynthSlideFile, PixelsMatchTheRendererOnEveryLevel) {
    const Slide s(path());
    const auto& l = slide_->lesions().front();
    // Multiples of 4, so that the level-1 read is aligned with the level-0 blocks it averages.
    const auto x = (static_cast<std::int64_t>(l.centerX) - 300) / 4 * 4, y = (static_cast<std::int64_t>(l.centerY) - 300) / 4 * 4;
    const Image rendered = slide_->renderRegion(x, y, 600, 600);
    const Image level0 = s.readRegion(x, y, 0, 600, 600);
    // JPEG q90 with 4:2:0 chroma on a busy texture: a few units at level 0, more at level 1 where the
    // nuclei are 2-4 px wide.
    EXPECT_LT(meanAbsDiff(level0, rendered), 5.0);
    const Image level1 = s.readRegion(x, y, 1, 150, 150);
    const double aligned = meanAbsDiff(level1, resizeArea(rendered, 150, 150));
    EXPECT_LT(aligned, 8.0);
    // Level 1 is the 4×4 average of level 0 and not shifted: one level-1 pixel off is clearly worse.
    for (const auto& [sx, sy] : {std::pair{4, 0}, std::pair{0, 4}, std::pair{-4, 0}, std::pair{0, -4}})
        EXPECT_GT(meanAbsDiff(level1, resizeArea(slide_->renderRegion(x + sx, y + sy, 600, 600), 150, 150)),
                  1.5 * aligned);
    const Image thumb = s.readAssociatedImage("thumbnail");
    EXPECT_LT(meanAbsDiff(thumb, s.readRegion(0, 0, 1, 1024, 1024)), 2.5);
}

TEST_F(SynthSlideFile, TissueMaskIsWhereStainIsPainted) {
    const Slide s(path());
    const Image level1 = s.readRegion(0, 0, 1, 1024, 1024);
    const Image mask = slide_->tissueMask(4.0);
    ASSERT_EQ(mask.width, 1024);
    ASSERT_EQ(mask.height, 1024);
    // Compare away from edges (3×3 neighbourhood uniform in the mask): glass is near white and grey,
    // tissue is clearly stained.
    int agree = 0, total = 0, tissue = 0;
    for (int y = 1; y < 1023; ++y)
        for (int x = 1; x < 1023; ++x) {
            const std::uint8_t m = mask.at(x, y)[0];
            bool uniform = true;
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx)
                    uniform = uniform && mask.at(x + dx, y + dy)[0] == m;
            if (!uniform)
                continue;
            const std::uint8_t* p = level1.at(x, y);
            const int mn = std::min({p[0], p[1], p[2]}), mx = std::max({p[0], p[1], p[2]});
            const bool looksStained = mn < 215 || mx - mn > 20;
            ++total;
            tissue += m != 0;
            agree += looksStained == (m != 0);
        }
    EXPECT_GT(static_cast<double>(agree) / total, 0.99);
    const double fraction = static_cast<double>(tissue) / total;
    EXPECT_GT(fraction, 0.2);
    EXPECT_LT(fraction, 0.7);
    EXPECT_NEAR(slide_->tissueFraction(), static_cast<double>(std::count(mask.pixels.begin(), mask.pixels.end(), 255)) /
                                              static_cast<double>(mask.pixels.size()),
                0.01);
    // Point queries agree with the mask.
    for (int k = 0; k < 200; ++k) {
        const int x = (k * 97) % 1024, y = (k * 61 + 13) % 1024;
        EXPECT_EQ(slide_->isTissue((x + 0.5) * 4.0, (y + 0.5) * 4.0), mask.at(x, y)[0] != 0) << x << "," << y;
    }
}

// The property that makes the cohort useful for comparing encoders: inside lesions the mean colour is
// the same as in normal tissue, while the texture (dark nuclear pixels, local contrast) differs clearly.
TEST_F(SynthSlideFile, LesionsDifferInTextureNotInMeanColour) {
    const Slide s(path());
    const double d = 8.0;
    const Image tissue = slide_->tissueMask(d);
    const Image lesion = slide_->lesionMask(d);
    const int P = 128, cells = static_cast<int>(P / d), margin = 4; // patch + 32 px margin in mask cells
    struct Stats {
        std::array<double, 3> sum{};
        double dark = 0;
        std::int64_t pixels = 0;
        int patches = 0;
    } stats[2];
    for (int cy = margin; cy + cells + margin <= tissue.height; cy += cells)
        for (int cx = margin; cx + cells + margin <= tissue.width; cx += cells) {
            bool allLesion = true, allNormal = true;
            for (int y = cy - margin; y < cy + cells + margin; ++y)
                for (int x = cx - margin; x < cx + cells + margin; ++x) {
                    const bool t = tissue.at(x, y)[0] != 0, l = lesion.at(x, y)[0] != 0;
                    allLesion = allLesion && l;
                    allNormal = allNormal && t && !l;
                }
            if (!allLesion && !allNormal)
                continue;
            Stats& st = stats[allLesion ? 1 : 0];
            const Image patch = s.readRegion(static_cast<std::int64_t>(cx * d), static_cast<std::int64_t>(cy * d), 0, P, P);
            for (int y = 0; y < P; ++y)
                for (int x = 0; x < P; ++x) {
                    const std::uint8_t* p = patch.at(x, y);
                    for (int c = 0; c < 3; ++c)
                        st.sum[static_cast<std::size_t>(c)] += p[c];
                    st.dark += p[0] < 170; // hematoxylin (nuclei) absorbs red; eosin hardly does
                    ++st.pixels;
                }
            ++st.patches;
        }
    ASSERT_GE(stats[0].patches, 20);
    ASSERT_GE(stats[1].patches, 20);
    for (int c = 0; c < 3; ++c) {
        const double normal = stats[0].sum[static_cast<std::size_t>(c)] / static_cast<double>(stats[0].pixels);
        const double tumour = stats[1].sum[static_cast<std::size_t>(c)] / static_cast<double>(stats[1].pixels);
        EXPECT_LT(std::abs(normal - tumour), 8.0) << "channel " << c << ": normal " << normal << ", tumour " << tumour;
    }
    const double darkNormal = stats[0].dark / static_cast<double>(stats[0].pixels);
    const double darkTumour = stats[1].dark / static_cast<double>(stats[1].pixels);
    EXPECT_GT(darkTumour, 1.8 * darkNormal) << "nuclear pixel fraction: normal " << darkNormal << ", tumour " << darkTumour;
    EXPECT_GT(darkTumour - darkNormal, 0.08);
}

TEST_F(SynthSlideFile, AnnotationsAreTheLesionPolygons) {
    const auto xml = *dir_ / "positive.xml";
    slide_->annotations().save(xml);
    const AnnotationSet set = AnnotationSet::load(xml);
    ASSERT_EQ(set.groups.size(), 1U);
    EXPECT_EQ(set.groups[0].name, "Tumor");
    ASSERT_EQ(set.annotations.size(), slide_->lesions().size());
    for (std::size_t i = 0; i < set.annotations.size(); ++i) {
        const auto& a = set.annotations[i];
        const auto& l = slide_->lesions()[i];
        EXPECT_EQ(a.type, AnnotationType::Polygon);
        EXPECT_EQ(a.group, "Tumor");
        ASSERT_EQ(a.coordinates.size(), l.polygon.size());
        for (std::size_t k = 0; k < a.coordinates.size(); ++k) {
            EXPECT_NEAR(a.coordinates[k].x, l.polygon[k].x, 1e-3);
            EXPECT_NEAR(a.coordinates[k].y, l.polygon[k].y, 1e-3);
        }
        EXPECT_TRUE(slide_->isLesion(l.centerX, l.centerY));
        EXPECT_TRUE(slide_->isTissue(l.centerX, l.centerY));
    }
    EXPECT_GT(slide_->lesionFraction(), 0.0);
    EXPECT_LT(slide_->lesionFraction(), 1.0);
}

TEST(Synth, RenderingIsAPureFunctionOfCoordinates) {
    SynthSlideParams p;
    p.width = 2048;
    p.height = 2048;
    p.seed = 5;
    p.lesionCount = 1;
    p.lesionMinUm = p.lesionMaxUm = 500;
    const SynthSlide s(p);
    const auto& l = s.lesions().front();
    const auto x = static_cast<std::int64_t>(l.centerX) - 200, y = static_cast<std::int64_t>(l.centerY) - 150;
    const Image big = s.renderRegion(x, y, 400, 300);
    const Image part = s.renderRegion(x + 123, y + 77, 101, 59);
    for (int j = 0; j < part.height; ++j)
        for (int i = 0; i < part.width; ++i)
            for (int c = 0; c < 3; ++c)
                ASSERT_EQ(part.at(i, j)[c], big.at(i + 123, j + 77)[c]) << i << "," << j;
    // Another instance with the same parameters renders the same pixels.
    EXPECT_EQ(SynthSlide(p).renderRegion(x, y, 400, 300).pixels, big.pixels);
}

TEST(Synth, SameSeedSameBytesDifferentSeedDifferentBytes) {
    test::TempDir dir;
    SynthSlideParams p;
    p.width = 1600;
    p.height = 1200;
    p.seed = 42;
    p.lesionCount = 1;
    SynthWriteOptions one = fastWrite(), two = fastWrite();
    one.threads = 1;
    two.threads = 3;
    SynthSlide(p).write(dir / "a.svs", one);
    SynthSlide(p).write(dir / "b.svs", two); // the thread count does not change the bytes
    p.seed = 43;
    SynthSlide(p).write(dir / "c.svs", one);
    const std::string a = nic::test::readFile(dir / "a.svs"), b = nic::test::readFile(dir / "b.svs"), c = nic::test::readFile(dir / "c.svs");
    ASSERT_GT(a.size(), 10000U);
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a == c);
    EXPECT_EQ(listDir(dir.path()), (std::vector<std::string>{"a.svs", "b.svs", "c.svs"}));
}

TEST(Synth, MppQuarterMicronAndNonSquareGeometry) {
    test::TempDir dir;
    SynthSlideParams p;
    p.width = 3000;
    p.height = 2000;
    p.mpp = 0.25;
    p.seed = 3;
    SynthSlide(p).write(dir / "s.svs", fastWrite());
    const Slide s(dir / "s.svs");
    EXPECT_EQ(s.width(), 3000);
    EXPECT_EQ(s.height(), 2000);
    ASSERT_EQ(s.levelCount(), 2);
    EXPECT_EQ(s.level(1).width, 750);
    EXPECT_EQ(s.level(1).height, 500);
    ASSERT_TRUE(s.resolution().has_value());
    EXPECT_NEAR(s.resolution()->mppX, 0.25, 1e-9);
    EXPECT_DOUBLE_EQ(s.objectivePower().value_or(0), 40.0);
    // The thumbnail is at most a quarter of level 0.
    EXPECT_EQ(s.associatedImages().at("thumbnail"), std::make_pair(std::int64_t{750}, std::int64_t{500}));
}

TEST(Synth, CancellationLeavesNoFile) {
    test::TempDir dir;
    SynthSlideParams p;
    p.width = 2048;
    p.height = 2048;
    JobContext* self = nullptr;
    int reports = 0;
    JobContext ctx([&](const JobContext::Progress&) {
        if (++reports == 2)
            self->cancel();
    }, {});
    ctx.setMinInterval(std::chrono::milliseconds(0));
    self = &ctx;
    EXPECT_THROW(SynthSlide(p).write(dir / "c.svs", fastWrite(), ctx), Cancelled);
    EXPECT_EQ(reports, 2);
    EXPECT_TRUE(listDir(dir.path()).empty());
}

TEST(Synth, ProgressCountsEveryRowOfTiles) {
    test::TempDir dir;
    SynthSlideParams p;
    p.width = 1100;
    p.height = 1300; // 6 rows of level 0, then 2 rows of level 1 (325 px)
    const SynthSlide s(p);
    std::vector<std::int64_t> done;
    std::int64_t total = 0;
    JobContext ctx([&](const JobContext::Progress& pr) {
        done.push_back(pr.done);
        total = pr.total;
    }, {});
    ctx.setMinInterval(std::chrono::milliseconds(0));
    s.write(dir / "p.svs", fastWrite(), ctx);
    EXPECT_EQ(total, s.writeWorkUnits(fastWrite()));
    EXPECT_EQ(total, 8);
    ASSERT_FALSE(done.empty());
    EXPECT_EQ(done.back(), total);
}

TEST(Synth, InvalidParametersThrow) {
    SynthSlideParams p;
    p.width = 10;
    EXPECT_THROW(SynthSlide{p}, InvalidArgument);
    p = {};
    p.mpp = 0;
    EXPECT_THROW(SynthSlide{p}, InvalidArgument);
    p = {};
    p.lesionMinUm = 500;
    p.lesionMaxUm = 100;
    EXPECT_THROW(SynthSlide{p}, InvalidArgument);
    p = {};
    p.width = p.height = 512;
    SynthWriteOptions w;
    w.tileSize = 100;
    test::TempDir dir;
    EXPECT_THROW(SynthSlide(p).write(dir / "x.svs", w), InvalidArgument);
    EXPECT_TRUE(listDir(dir.path()).empty());
    SynthCohortParams c;
    c.outDir = dir.path();
    c.positiveFraction = 1.5;
    EXPECT_THROW(generateSynthCohort(c), InvalidArgument);
    EXPECT_THROW(parseBigTiffMode("maybe"), InvalidArgument);
}

TEST(SynthCohort, WritesSlidesXmlAndCsv) {
    test::TempDir dir;
    SynthCohortParams c;
    c.outDir = dir / "cohort";
    c.count = 4;
    c.width = 1536;
    c.height = 1280;
    c.seed = 9;
    c.positiveFraction = 0.5;
    c.minLesions = 1;
    c.maxLesions = 2;
    c.lesionMinUm = 150;
    c.lesionMaxUm = 300;
    c.write = fastWrite();
    std::vector<std::string> logs;
    JobContext ctx({}, [&](const std::string& line) { logs.push_back(line); });
    const auto entries = generateSynthCohort(c, ctx);
    ASSERT_EQ(entries.size(), 4U);
    EXPECT_EQ(logs.size(), 4U);
    EXPECT_EQ(listDir(c.outDir), (std::vector<std::string>{"cohort.csv", "synth-000.svs", "synth-000.xml",
                                                           "synth-001.svs", "synth-001.xml", "synth-002.svs",
                                                           "synth-002.xml", "synth-003.svs", "synth-003.xml"}));
    std::string expected = "slide,label,score,annotations\n";
    int positives = 0;
    for (int i = 0; i < 4; ++i) {
        const auto& e = entries[static_cast<std::size_t>(i)];
        EXPECT_EQ(e.slide, synthCohortStem(c, i) + ".svs");
        EXPECT_EQ(e.annotations, synthCohortStem(c, i) + ".xml");
        const SynthSlideParams sp = synthCohortSlide(c, i);
        EXPECT_EQ(e.label, sp.lesionCount > 0 ? 1 : 0);
        positives += e.label;
        const AnnotationSet set = AnnotationSet::load(c.outDir / e.annotations);
        if (e.label) {
            EXPECT_GE(set.annotations.size(), 1U);
            EXPECT_LE(set.annotations.size(), 2U);
            EXPECT_GT(e.score, 0.0);
        } else {
            EXPECT_TRUE(set.annotations.empty());
            EXPECT_EQ(e.score, 0.0);
        }
        const Slide s(c.outDir / e.slide);
        EXPECT_EQ(s.width(), 1536);
        EXPECT_EQ(s.height(), 1280);
        char buf[64];
        std::snprintf(buf, sizeof buf, ",%d,%.6f,", e.label, e.score);
        expected += e.slide + buf + e.annotations + "\n";
    }
    EXPECT_EQ(positives, 2);
    EXPECT_EQ(nic::test::readFile(c.outDir / "cohort.csv"), expected);
}

TEST(SynthCohort, SlideParametersAreDeterministicAndDistinct) {
    SynthCohortParams c;
    c.outDir = "unused";
    c.count = 20;
    c.seed = 1;
    c.positiveFraction = 0.25;
    int positives = 0;
    std::set<std::uint64_t> seeds;
    for (int i = 0; i < c.count; ++i) {
        const auto a = synthCohortSlide(c, i), b = synthCohortSlide(c, i);
        EXPECT_EQ(a.seed, b.seed);
        EXPECT_EQ(a.lesionCount, b.lesionCount);
        positives += a.lesionCount > 0;
        seeds.insert(a.seed);
    }
    EXPECT_EQ(positives, 5);
    EXPECT_EQ(seeds.size(), 20U);
    c.count = 1000;
    EXPECT_EQ(synthCohortStem(c, 7), "synth-007");
    c.count = 1001;
    EXPECT_EQ(synthCohortStem(c, 7), "synth-0007");
}

// ---- PyramidTiffWriter on its own ----

namespace {
// A smooth gray/RGB test pattern.
Image pattern(int w, int h, int channels, int y0 = 0) {
    Image img(w, h, channels);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < channels; ++c)
                img.at(x, y)[c] = static_cast<std::uint8_t>((x / 7 + (y + y0) / 5 + c * 60) % 256);
    return img;
}

void writePattern(const std::filesystem::path& path, int w, int h, const PyramidTiffOptions& o) {
    PyramidTiffWriter writer(path, w, h, o);
    for (int y = 0; y < h; y += o.tileSize) {
        const int sh = std::min(o.tileSize, h - y);
        writer.appendStrip(pattern(w, sh, o.channels, y));
    }
    writer.finish();
}
} // namespace

TEST(PyramidTiffWriter, LevelSizesDownsampleUntilSmall) {
    PyramidTiffOptions o;
    const auto l = PyramidTiffWriter::levelSizes(100000, 80000, o);
    ASSERT_EQ(l.size(), 5U);
    EXPECT_EQ(l[1].width, 25000);
    EXPECT_EQ(l[4].width, 391);
    EXPECT_EQ(l[4].height, 313);
    EXPECT_EQ(PyramidTiffWriter::levelSizes(1000, 5000, o).size(), 1U);
    EXPECT_TRUE(PyramidTiffWriter::needsBigTiff(40000, 40000, o));
    EXPECT_FALSE(PyramidTiffWriter::needsBigTiff(20000, 20000, o));
}

TEST(PyramidTiffWriter, LosslessGrayPyramidIsExactBoxAverages) {
    test::TempDir dir;
    PyramidTiffOptions o;
    o.channels = 1;
    o.compression = TiffCompression::Deflate;
    o.tileSize = 64;
    o.minLevelSide = 40;
    o.mpp = 1.0;
    const int w = 1001, h = 703;
    writePattern(dir / "g.tif", w, h, o);
    const Slide s(dir / "g.tif");
    EXPECT_EQ(s.vendor(), "generic-tiff");
    ASSERT_EQ(s.levelCount(), 4); // 1001x703, 251x176, 63x44, 16x11
    EXPECT_EQ(s.level(3).width, 16);
    EXPECT_EQ(s.level(3).height, 11);
    EXPECT_FALSE(s.resolution().has_value() && s.resolution()->source == "openslide.mpp");
    const Image full = pattern(w, h, 1);
    const Image level0 = s.readRegion(0, 0, 0, w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            ASSERT_EQ(level0.at(x, y)[0], full.at(x, y)[0]) << x << "," << y;
    // Level 1 pixel (x, y) is the rounded mean of the 4×4 block (partial at the right/bottom edges).
    const Image level1 = s.readRegion(0, 0, 1, 251, 176);
    for (int y = 0; y < 176; ++y)
        for (int x = 0; x < 251; ++x) {
            int sum = 0, n = 0;
            for (int j = 4 * y; j < std::min(h, 4 * y + 4); ++j)
                for (int i = 4 * x; i < std::min(w, 4 * x + 4); ++i) {
                    sum += full.at(i, j)[0];
                    ++n;
                }
            ASSERT_EQ(level1.at(x, y)[0], (sum + n / 2) / n) << x << "," << y;
        }
}

TEST(PyramidTiffWriter, SpoolingAndBigTiffDoNotChangePixels) {
    test::TempDir dir;
    PyramidTiffOptions o;
    o.tileSize = 128;
    o.minLevelSide = 100;
    o.mpp = 0.5;
    o.aperio = true;
    o.thumbnailMaxSide = 200;
    writePattern(dir / "mem.svs", 1500, 900, o);
    o.spoolThresholdBytes = 0; // every lower level through a temporary file
    writePattern(dir / "spool.svs", 1500, 900, o);
    EXPECT_TRUE(nic::test::readFile(dir / "mem.svs") == nic::test::readFile(dir / "spool.svs"));
    o.bigTiff = BigTiffMode::Always;
    writePattern(dir / "big.svs", 1500, 900, o);
    const std::string big = nic::test::readFile(dir / "big.svs");
    ASSERT_GT(big.size(), 4U);
    EXPECT_EQ(big.substr(0, 4), std::string("II\x2B\x00", 4)); // BigTIFF magic
    EXPECT_EQ(listDir(dir.path()), (std::vector<std::string>{"big.svs", "mem.svs", "spool.svs"}));
    const Slide a(dir / "mem.svs"), b(dir / "big.svs");
    EXPECT_EQ(b.vendor(), "aperio");
    ASSERT_EQ(a.levelCount(), b.levelCount());
    EXPECT_EQ(a.levelCount(), 3); // 1500x900, 375x225, 94x57
    for (int l = 0; l < a.levelCount(); ++l) {
        const auto& L = a.level(l);
        EXPECT_EQ(a.readRegion(0, 0, l, L.width, L.height).pixels, b.readRegion(0, 0, l, L.width, L.height).pixels);
    }
    EXPECT_EQ(a.associatedImages().at("thumbnail"), std::make_pair(std::int64_t{200}, std::int64_t{120}));
}

TEST(PyramidTiffWriter, WrongStripsAndIncompleteFinishThrow) {
    test::TempDir dir;
    PyramidTiffOptions o;
    o.tileSize = 64;
    PyramidTiffWriter w(dir / "x.tif", 100, 100, o);
    EXPECT_THROW(w.appendStrip(pattern(99, 64, 3)), InvalidArgument);
    EXPECT_THROW(w.appendStrip(pattern(100, 32, 3)), InvalidArgument);
    w.appendStrip(pattern(100, 64, 3));
    EXPECT_THROW(w.finish(), InvalidArgument);
    EXPECT_THROW(w.appendStrip(pattern(100, 64, 3)), InvalidArgument); // only 36 rows remain
    w.appendStrip(pattern(100, 36, 3));
    w.finish();
    EXPECT_THROW(PyramidTiffWriter(dir / "missing-dir" / "x.tif", 100, 100, o), IoError);
    try {
        SynthSlideParams p;
        p.width = p.height = 256;
        SynthSlide(p).write(dir / "missing-dir" / "s.svs", fastWrite());
        ADD_FAILURE() << "no exception";
    } catch (const IoError& e) {
        // Names the file the user asked for (not the temporary one) and libtiff's cause.
        EXPECT_EQ(std::string(e.what()).rfind((dir / "missing-dir" / "s.svs").string() + ": cannot create TIFF file: ", 0), 0U)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
    }
    o.tileSize = 100;
    EXPECT_THROW(PyramidTiffWriter(dir / "y.tif", 100, 100, o), InvalidArgument);
}

TEST(SynthCli, WritesACohort) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    test::TempDir dir;
    std::string out, err;
    const std::string cmd = test::nicExecutable().string() + " synth --out '" + (dir / "c").string() +
                            "' --count 2 --size 1024x768 --seed 4 --positive-fraction 1 --lesion-size 100:200 --quiet";
    ASSERT_EQ(test::runCommand(cmd, &out, &err), 0) << err;
    EXPECT_NE(out.find("wrote 2 slides (2 positive, 0 negative)"), std::string::npos) << out;
    EXPECT_TRUE(std::filesystem::exists(dir / "c" / "cohort.csv"));
    EXPECT_EQ(test::runCommand(test::nicExecutable().string() + " synth --out '" + (dir / "d").string() +
                                   "' --size 12x", &out, &err),
              2);
    EXPECT_NE(err.find("--size"), std::string::npos) << err;
}

// The hard setting: every positive slide has one lesion 2–4 patches (128–256 µm at 0.5 µm/px) across,
// so the slide CNN must find a few cells; the standard setting keeps the generator's defaults.
TEST(SynthCohort, HardDifficultyGivesOneSmallLesionPerPositiveSlide) {
    SynthCohortParams c;
    c.outDir = "unused";
    c.count = 12;
    c.width = c.height = 8192;
    applySynthDifficulty(c, parseSynthDifficulty("hard"));
    EXPECT_EQ(c.minLesions, 1);
    EXPECT_EQ(c.maxLesions, 1);
    EXPECT_DOUBLE_EQ(c.lesionMinUm, 128.0);
    EXPECT_DOUBLE_EQ(c.lesionMaxUm, 256.0);
    int positives = 0;
    for (int i = 0; i < c.count; ++i) {
        const SynthSlideParams sp = synthCohortSlide(c, i);
        if (sp.lesionCount == 0)
            continue;
        ++positives;
        EXPECT_EQ(sp.lesionCount, 1);
        const SynthSlide slide(sp);
        ASSERT_EQ(slide.lesions().size(), 1U);
        const double diameterUm = 2.0 * slide.lesions().front().meanRadius * sp.mpp;
        EXPECT_GE(diameterUm, 128.0 - 1e-9) << "slide " << i;
        EXPECT_LE(diameterUm, 256.0 + 1e-9) << "slide " << i;
    }
    EXPECT_EQ(positives, 6);

    applySynthDifficulty(c, SynthDifficulty::Standard);
    const SynthCohortParams defaults;
    EXPECT_EQ(c.minLesions, defaults.minLesions);
    EXPECT_EQ(c.maxLesions, defaults.maxLesions);
    EXPECT_EQ(c.lesionMinUm, defaults.lesionMinUm);
    EXPECT_EQ(c.lesionMaxUm, defaults.lesionMaxUm);
    EXPECT_STREQ(toString(SynthDifficulty::Hard), "hard");
    try {
        parseSynthDifficulty("easy");
        FAIL() << "no exception";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "unknown difficulty 'easy' (use standard or hard)");
    }
}

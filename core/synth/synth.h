#pragma once
// Synthetic H&E-like whole-slide images with known ground truth (tissue mask, tumour lesions), written
// as Aperio-style pyramidal TIFFs that OpenSlide opens with a known mpp. Used by tests and to exercise
// the pipeline at any scale (4k² to 100k² pixels) without real data.
//
// A slide is a pure function of its parameters: the layout (tissue field, lesion polygons) is fixed at
// construction from the seed, and every pixel is computed from (seed, level-0 coordinates) with hashed
// noise, so regions render independently and in parallel, and the same seed gives identical files.
#include "core/annotations/annotation.h"
#include "core/imaging/image.h"
#include "core/base/jobcontext.h"
#include "core/imaging/tiffwriter.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nic {

namespace synth {
class TissueTexture;
}

/// What one synthetic slide looks like.
struct SynthSlideParams {
    std::int64_t width = 4096;  ///< level-0 pixels, 64..2,000,000 per side
    std::int64_t height = 4096;
    double mpp = 0.5;           ///< µm per level-0 pixel, 0.05..10
    std::uint64_t seed = 1;
    int lesionCount = 0;        ///< tumour lesions; 0 makes a negative slide
    double lesionMinUm = 200.0; ///< lesion diameter range in µm (log-uniform); clamped to fit the slide
    double lesionMaxUm = 1000.0;
    /// Fraction of the slide area covered by tissue (before lesions are added); 0 picks one in
    /// [0.20, 0.40] from the seed.
    double tissueCoverage = 0.0;
};

/// One tumour lesion: a smooth star-shaped polygon in level-0 pixel coordinates (pixel (x, y) covers
/// [x, x+1) × [y, y+1); a pixel belongs to the lesion when its centre is inside the polygon).
struct SynthLesion {
    double centerX = 0.0, centerY = 0.0;
    double meanRadius = 0.0; ///< level-0 pixels
    std::vector<Point> polygon;
};

/// How SynthSlide::write encodes the slide.
struct SynthWriteOptions {
    int tileSize = 256;
    int quality = 90;
    BigTiffMode bigTiff = BigTiffMode::Auto;
    int threads = 0;             ///< render threads; 0 = std::thread::hardware_concurrency()
    int thumbnailMaxSide = 1024; ///< 0: no thumbnail directory
};

/// One synthetic slide. Construction builds the layout and measures the score on ~4M grid points (no
/// pixels: ~0.1 s for 4k², ~2 s for 100k², plus a one-off ~0.3 s texture calibration per process);
/// everything else is const and thread-safe.
class SynthSlide {
public:
    /// Throws InvalidArgument for out-of-range parameters.
    explicit SynthSlide(const SynthSlideParams& params);
    ~SynthSlide();
    SynthSlide(SynthSlide&&) noexcept;
    SynthSlide& operator=(SynthSlide&&) noexcept;
    SynthSlide(const SynthSlide&) = delete;
    SynthSlide& operator=(const SynthSlide&) = delete;

    const SynthSlideParams& params() const { return p_; }
    std::int64_t width() const { return p_.width; }
    std::int64_t height() const { return p_.height; }
    double mpp() const { return p_.mpp; }
    const std::vector<SynthLesion>& lesions() const { return lesions_; }
    bool isPositive() const { return !lesions_.empty(); }

    /// Ground truth at a level-0 point (continuous coordinates; the centre of pixel (x, y) is
    /// (x + 0.5, y + 0.5)). Tissue is exactly the set of pixels painted with stain; lesions are tissue.
    bool isTissue(double x, double y) const;
    bool isLesion(double x, double y) const;

    /// Ground-truth masks at `downsample` (>= 1): ceil(W / d) × ceil(H / d), 1 channel, 255 where the
    /// point ((i + 0.5)·d, (j + 0.5)·d) is tissue (resp. lesion), else 0. Throws InvalidArgument for d < 1.
    Image tissueMask(double downsample) const;
    Image lesionMask(double downsample) const;

    /// Fraction of the slide area that is tissue, and lesion area / tissue area (the cohort's score),
    /// measured on a grid of about 4 million points (deterministic).
    double tissueFraction() const { return tissueFraction_; }
    double lesionFraction() const { return lesionFraction_; }

    /// The lesions as ASAP annotations: group "Tumor" and one Polygon per lesion (level-0 pixels).
    AnnotationSet annotations() const;

    /// Renders a level-0 region as RGB. Pure: equals the same pixels of any other region.
    Image renderRegion(std::int64_t x, std::int64_t y, int w, int h) const;

    /// Writes the slide as a pyramidal Aperio-style TIFF (see PyramidTiffWriter) atomically: rendered one
    /// row of tiles at a time on a thread pool, encoded in order, with bounded memory. Reports progress per
    /// row of tiles and checks for cancellation between rows; on cancel or error nothing is left at `path`.
    /// Throws IoError, InvalidArgument, Cancelled.
    void write(const std::filesystem::path& path, const SynthWriteOptions& options,
               JobContext& ctx = JobContext::none()) const;

    /// Like write(), but progress (tile rows of level 0, then of the lower levels) goes to `report`
    /// instead of ctx.progress(); ctx is still checked for cancellation.
    using RowReport = std::function<void(std::int64_t done, std::int64_t total)>;
    void write(const std::filesystem::path& path, const SynthWriteOptions& options, JobContext& ctx,
               const RowReport& report) const;

    /// Number of progress units (tile rows) write() reports for these options.
    std::int64_t writeWorkUnits(const SynthWriteOptions& options) const;

private:
    struct Layout;
    /// Fills class and density per pixel of a region (the layout part of rendering).
    void classify(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* cls, float* density) const;
    void renderInto(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* out, std::size_t stride) const;
    Image mask(double downsample, bool lesionOnly) const;

    SynthSlideParams p_;
    std::unique_ptr<Layout> layout_;
    std::unique_ptr<synth::TissueTexture> texture_;
    std::vector<SynthLesion> lesions_;
    double tissueFraction_ = 0.0;
    double lesionFraction_ = 0.0;
};

/// A cohort of synthetic slides (see generateSynthCohort).
struct SynthCohortParams {
    std::filesystem::path outDir;
    int count = 10;
    std::int64_t width = 4096;
    std::int64_t height = 4096;
    double mpp = 0.5;
    std::uint64_t seed = 1;
    double positiveFraction = 0.5; ///< round(count × fraction) slides get lesions, chosen from the seed
    int minLesions = 1;            ///< lesions per positive slide (uniform in [min, max])
    int maxLesions = 3;
    double lesionMinUm = 200.0;    ///< lesion diameter range, µm
    double lesionMaxUm = 1000.0;
    SynthWriteOptions write;
};

/// Named lesion settings of a cohort. Standard: 1–3 lesions of 200–1000 µm per positive slide (3–16
/// patches of 64 µm across), easy for any learned encoder. Hard: one lesion of 128–256 µm (2–4 patches
/// across) per positive slide, so that a positive slide differs from a negative one in a handful of grid
/// cells and the slide CNN needs the encoder to make those few cells stand out.
enum class SynthDifficulty { Standard, Hard };
SynthDifficulty parseSynthDifficulty(const std::string& text); ///< "standard" / "hard"; InvalidArgument otherwise
const char* toString(SynthDifficulty difficulty);
/// Sets minLesions, maxLesions, lesionMinUm and lesionMaxUm of `params` to the difficulty's values.
void applySynthDifficulty(SynthCohortParams& params, SynthDifficulty difficulty);

/// One row of cohort.csv. Paths are relative to the cohort directory.
struct SynthCohortEntry {
    std::string slide;       ///< "synth-000.svs"
    int label = 0;           ///< 1: has lesions
    double score = 0.0;      ///< lesion area / tissue area
    std::string annotations; ///< "synth-000.xml" (ASAP XML; no annotations on negative slides)
};

/// The parameters of slide `index` of a cohort (derived seed, lesions or not). Pure.
SynthSlideParams synthCohortSlide(const SynthCohortParams& params, int index);
/// The file stem of slide `index` ("synth-007"); zero-padded to at least 3 digits.
std::string synthCohortStem(const SynthCohortParams& params, int index);

/// Writes `count` slides (<stem>.svs), their lesion XMLs (<stem>.xml) and cohort.csv (columns slide,
/// label, score, annotations) into outDir (created if needed), each file atomically; cohort.csv last.
/// Progress covers all slides; cancellation stops between rows of tiles. Throws InvalidArgument,
/// IoError, Cancelled.
std::vector<SynthCohortEntry> generateSynthCohort(const SynthCohortParams& params, JobContext& ctx = JobContext::none());

/// A crowd of annotations for stress tests and benchmarks of readers, writers and the viewer: `count`
/// irregular closed polygons (jittered circles of `verticesEach` vertices, radius 8–120 px times
/// max(1, side / 100000)) at uniform places over a side × side slide, in three groups "Tumor" (#ff0000),
/// "itc" (#00ff00, nested in Tumor) and "normal" (#0000ff) taken in turn; every 50th is a Spline, every
/// 1000th carries a "Reviewer" attribute; coordinates are not integers. Pure (same seed, same set).
AnnotationSet synthAnnotationCrowd(int count, int verticesEach, double side, std::uint64_t seed = 17);

} // namespace nic

#pragma once
// The uniform patch grid of the paper's Eq. 1: a slide of M × N pixels at the analysis resolution is
// cut into P × P patches taken every S pixels, giving a ⌈M/S⌉ × ⌈N/S⌉ grid of cells.
//
// Geometry (all in level-0 pixels; f = targetMpp / slideMpp = level-0 px per target px):
//   * cols = ⌈W0 / (S·f)⌉, rows = ⌈H0 / (S·f)⌉ — the grid covers the whole slide; the last column/row
//     may hang over the right/bottom edge (computed with a 1e-9 relative slack, so a slide that is an
//     exact multiple of S·f gets no extra, empty column because of floating-point noise).
//   * cell (col, row) has the level-0 rectangle x = round(col·S·f), y = round(row·S·f),
//     width = height = round(P·f) (round = half away from zero). With P > S neighbouring cells overlap,
//     with P < S there are gaps; P = S tiles the slide.
//   * pixels are read from the level whose downsample is the largest one ≤ f·(1 + levelTolerance)
//     (default 1%, so a 0.499 µm/px level serves a 0.5 µm/px target). A patch reads
//     n = round(P·f / levelDownsample) level pixels square at (x, y) and resamples n → P
//     (area average when shrinking, bilinear when enlarging; nothing when n == P).
#include "core/imaging/image.h"
#include "core/slide/slide.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace nic {

/// Patch size, stride (both in pixels at the target resolution) and the target resolution.
struct GridSpec {
    int patchSize = 128;   ///< P
    int stride = 128;      ///< S
    double mpp = 0.5;      ///< target µm per pixel
};

/// An axis-aligned rectangle in level-0 pixels.
struct Level0Rect {
    std::int64_t x = 0;
    std::int64_t y = 0;
    std::int64_t width = 0;
    std::int64_t height = 0;
};

/// Index of the pyramid level to read for a wanted downsample (level-0 px per output px): the level
/// with the largest downsample ≤ downsample·(1 + tolerance), or 0 when every level is coarser.
/// `levels` must be level 0 first (as Slide::levels()); throws InvalidArgument when empty.
int levelAtOrFinerThan(const std::vector<LevelInfo>& levels, double downsample, double tolerance = 0.01);

/// Resolves a slide's level-0 µm/px: `override` when given (must be > 0), else the mean of the slide's
/// mpp-x/mpp-y. Throws InvalidArgument naming the file and asking for an explicit mpp (e.g. --mpp)
/// when neither is known. `purpose` completes the message ("tissue detection", "the patch grid").
double resolveSlideMpp(const Slide& slide, std::optional<double> override, const char* purpose);

/// A uniform grid of patches over one slide (see the file comment for the exact geometry).
/// A value type; immutable after construction except for the attached tissue fractions.
/// All const members are thread-safe (readPatch only reads the slide, which allows concurrent reads).
class PatchGrid {
public:
    /// Grid over `slide` with its level pyramid; the slide's mpp comes from `slideMppOverride` or its
    /// metadata. Throws InvalidArgument when the mpp is unknown (message asks for an explicit mpp), or
    /// for a non-positive patch size, stride or mpp.
    explicit PatchGrid(const Slide& slide, const GridSpec& spec = {},
                       std::optional<double> slideMppOverride = std::nullopt,
                       double levelTolerance = 0.01);
    /// Grid from level sizes (level 0 first) and the level-0 mpp, without a slide (tests, planning).
    PatchGrid(std::vector<LevelInfo> levels, double slideMpp, const GridSpec& spec = {},
              double levelTolerance = 0.01);

    const GridSpec& spec() const { return spec_; }
    int patchSize() const { return spec_.patchSize; }
    int stride() const { return spec_.stride; }
    double targetMpp() const { return spec_.mpp; }
    double slideMpp() const { return slideMpp_; }
    /// f = targetMpp / slideMpp: level-0 pixels per target pixel.
    double factor() const { return factor_; }

    std::int64_t level0Width() const { return levels_.front().width; }
    std::int64_t level0Height() const { return levels_.front().height; }
    int cols() const { return cols_; }
    int rows() const { return rows_; }
    std::int64_t cellCount() const { return std::int64_t{cols_} * rows_; }

    /// The pyramid level patches are read from, its downsample, and the level pixels read per patch side.
    int level() const { return level_; }
    double levelDownsample() const { return levels_[static_cast<std::size_t>(level_)].downsample; }
    std::int64_t readSize() const { return readSize_; }
    /// True when readSize() != patchSize(), i.e. patches are resampled after reading.
    bool resamples() const { return readSize_ != spec_.patchSize; }

    /// Level-0 rectangle of a cell. Throws InvalidArgument for an index outside the grid.
    Level0Rect cellRect(int col, int row) const;

    /// Reads the P × P RGB patch of a cell (pixels beyond the slide edge are white). `slide` must be
    /// the slide the grid was made for (same level-0 size), else InvalidArgument. Throws SlideError
    /// on a read failure.
    Image readPatch(const Slide& slide, int col, int row) const;
    /// The same patch into `rgb` (P × P × 3 bytes), resized to fit: a buffer reused for patch after patch is neither
    /// reallocated nor cleared (Slide::readRegion's buffer form), except where the grid reads at another size and
    /// resamples (readSize() ≠ P), where it is replaced. On an exception its contents are unspecified.
    void readPatch(const Slide& slide, int col, int row, std::vector<std::uint8_t>& rgb) const;

    /// Per-cell tissue fraction in [0, 1], row-major (index row·cols + col); see
    /// tissueFractionPerCell() in core/slide/tissue.h. Throws InvalidArgument when the size is not cellCount().
    void setTissueFractions(std::vector<float> fractions);
    bool hasTissueFractions() const { return !tissue_.empty(); }
    const std::vector<float>& tissueFractions() const { return tissue_; }
    /// Tissue fraction of one cell; throws InvalidArgument when none are attached or out of range.
    float tissueFraction(int col, int row) const;
    /// Number of cells whose tissue fraction is ≥ minFraction (0 when none are attached).
    std::int64_t tissueCellCount(double minFraction) const;

private:
    void checkCell(int col, int row) const;
    /// Throws InvalidArgument when `slide` is not the slide the grid was made for.
    void checkSlide(const Slide& slide) const;
    std::vector<LevelInfo> levels_;
    GridSpec spec_;
    double slideMpp_ = 0.0;
    double factor_ = 1.0;
    int cols_ = 0;
    int rows_ = 0;
    int level_ = 0;
    std::int64_t readSize_ = 0;
    std::vector<float> tissue_;
};

} // namespace nic

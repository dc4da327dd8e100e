#pragma once
// Tissue / background segmentation of a whole-slide image at low resolution, after CLAM's recipe
// (median-blurred HSV saturation, threshold, morphological closing, area filters), plus a colour
// test that keeps pen marks and ink out of the mask.
//
// The rule, on an RGB image at the working resolution (≈ 8 µm/px):
//   1. S = HSV saturation 255·(max−min)/max, V = max(R, G, B), H = hue in degrees.
//   2. S' = median(S) over a k×k window (k ≈ medianUm / mpp, odd). Candidate tissue: S' > T, with
//      T = saturationThreshold, or with `otsu` Otsu's threshold of S' (but never below
//      saturationThreshold, so an all-glass image is not split in two).
//   3. Colour test (when excludePen): a pixel is "stain-coloured" when S > T, V ≥ darkValue and H lies
//      in the H&E window [hueMin, hueMax] (pinks to purples); it is "non-stain" when V < darkValue, or
//      S > T and H lies outside the window (green/blue/black ink, red pen). A candidate stays tissue
//      only when its k×k window holds more stain-coloured than non-stain pixels.
//   4. Closing with a square of side ≈ closeUm; removal of 8-connected objects smaller than
//      minObjectUm2; filling of holes smaller than maxHoleUm2. Objects touching the image border are
//      kept whatever their size (their true extent is unknown); background touching it is never a hole.
// Areas and lengths are in µm / µm² so that results do not depend on the working resolution.
#include "core/imaging/image.h"
#include "core/base/jobcontext.h"
#include "core/slide/patchgrid.h"
#include "core/slide/slide.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace nic {

/// Parameters of tissue detection. Defaults and the reasons for them are in the comments.
struct TissueOptions {
    /// Working resolution in µm/px. 8 µm/px is CLAM's segmentation scale (its default seg level is
    /// the 32–64× downsample of a 0.25 µm/px scan) and makes a 50k × 50k slide a ~3k × 3k mask.
    double targetMpp = 8.0;
    /// Fixed threshold T on the median-blurred saturation (0–255); tissue is S' > T. CLAM uses 8;
    /// 20 keeps near-white glass with a colour cast (S' ≈ 5–15 after JPEG) out, and pale H&E stroma
    /// still has S' ≈ 30–60 at 8 µm/px.
    int saturationThreshold = 20;
    /// Use Otsu's threshold of S' instead (floored at saturationThreshold).
    bool otsu = false;
    /// Median window side in µm: 56 µm = 7 px at 8 µm/px (CLAM's mthresh = 7).
    double medianUm = 56.0;
    /// Closing square side in µm: 32 µm ≈ 4–5 px at 8 µm/px (CLAM's close = 4).
    double closeUm = 32.0;
    /// Objects smaller than this (µm²) are dropped: 40 000 µm² = a 200 × 200 µm speck, about ten
    /// 64 × 64 µm NIC patches — dust and debris go, needle-biopsy fragments (≥ 0.5 mm wide) stay.
    /// (CLAM's a_t = 100 reference patches ≈ 1.6 mm² drops whole biopsy fragments, too aggressive here.)
    double minObjectUm2 = 40000.0;
    /// Holes smaller than this (µm²) are filled: 20 000 µm² ≈ 140 × 140 µm — fat vacuoles, small
    /// vessels and tears inside tissue; large lumina and gaps between fragments stay background.
    double maxHoleUm2 = 20000.0;
    /// Apply the colour test of step 3 (pen marks, ink, dark debris).
    bool excludePen = true;
    /// H&E hue window in degrees (hueMin > hueMax wraps through 0°). Hematoxylin is blue-purple
    /// (≈ 260–300°), eosin pink-magenta (≈ 300–340°); green/blue pens are 60–240°, red pen mostly 340–360°.
    /// 345° (not 340°) leaves room for redder eosin and pink synthetic stains; the histolab red-pen tile
    /// still scores 0.17 with it (0.12 with 340°), far below minCellFraction.
    double hueMin = 250.0;
    double hueMax = 345.0;
    /// V = max(R, G, B) below this is ink/dark debris, not stain (dense H&E stays above ~100 at 8 µm/px).
    int darkValue = 80;
    /// A grid cell (or a tile) counts as tissue when its tissue fraction is ≥ this.
    double minCellFraction = 0.5;
};

/// A binary tissue mask covering a whole slide (or image) at the working resolution.
struct TissueMask {
    Image mask;                   ///< 1 channel, 0 = background, 255 = tissue
    double downsample = 1.0;      ///< nominal level-0 px per mask px (targetMpp / slideMpp, ≥ 1)
    double mpp = 0.0;             ///< µm per mask px
    std::int64_t level0Width = 0; ///< the slide's level-0 size; mask pixel (i, j) covers level-0
    std::int64_t level0Height = 0;///< [i·W0/w, (i+1)·W0/w) × [j·H0/h, (j+1)·H0/h) exactly
    int level = 0;                ///< pyramid level read
    int threshold = 0;            ///< the saturation threshold actually used (fixed or Otsu)

    /// Fraction of mask pixels that are tissue.
    double fraction() const;
    /// Tissue fraction of a level-0 rectangle (area-weighted; parts outside the slide count as background).
    double fractionIn(double x, double y, double width, double height) const;
    /// Tissue coverage on a w × h grid spanning the slide: each pixel holds round(255 · fraction).
    Image coverage(int width, int height) const;
    /// Binary mask on a w × h grid spanning the slide: 255 where coverage ≥ 50 %.
    Image resampled(int width, int height) const;
};

/// Detects tissue on a slide: reads the level at or finer than options.targetMpp (1% tolerance) in
/// bands and area-resamples it to targetMpp (or keeps level 0 when the slide is coarser than that).
/// The level-0 mpp comes from `mppOverride` or the slide; when neither is known it throws
/// InvalidArgument asking for an explicit mpp (--mpp). Throws SlideError on read failures,
/// InvalidArgument for bad options, Cancelled via `job`. Reports progress per band.
TissueMask detectTissue(const Slide& slide, const TissueOptions& options = {},
                        std::optional<double> mppOverride = std::nullopt, JobContext& job = JobContext::none());

/// The same rule on an in-memory RGB image at `mpp` µm/px. An image finer than options.targetMpp is
/// area-resampled to it first; the returned 0/255 mask has the input's size either way (nearest).
/// Throws InvalidArgument for a non-RGB or empty image, a non-positive mpp or bad options.
Image detectTissueInImage(const Image& rgb, double mpp, const TissueOptions& options = {});

/// The segmentation itself on an RGB image already at the working resolution `mpp` (steps 1–4).
/// `usedThreshold`, when given, receives T. Exposed for tests and tools.
Image segmentTissue(const Image& rgb, double mpp, const TissueOptions& options, int* usedThreshold = nullptr);

/// Per-cell tissue fraction of a patch grid (row-major, index row·cols + col): the area-weighted share
/// of each cell's level-0 rectangle covered by tissue. Throws InvalidArgument when the mask and the
/// grid describe different level-0 sizes.
std::vector<float> tissueFractionPerCell(const TissueMask& mask, const PatchGrid& grid);

} // namespace nic

#pragma once
// Where the slide-level CNN looks at a compressed slide (paper §3.2). Training crops of R × R cells are
// centred on cells drawn with probability proportional to the squared Euclidean distance to the nearest
// background cell, normalised to sum to one, so dense tissue is seen more often and background never
// is the centre. Test crops are T centres spread uniformly over the tissue. Plain C++; a sampler is
// immutable after construction and its const members are thread-safe (the caller owns the generator).
//
// Geometry: cells are indexed (x, y) = (column, row), row-major (index = y · cols + x). Cells outside
// the grid count as background, so a tissue cell on the grid edge is at distance 1, like one that
// touches background inside the slide. A crop of size R centred on (cx, cy) covers columns
// [cx − ⌊R/2⌋, cx − ⌊R/2⌋ + R) and the same for rows; what lies outside the grid is zero (the value
// of background in a compressed slide), so grids smaller than R are zero-padded.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace nic {

/// A cell of the grid: x = column, y = row.
struct GridCell {
    int x = 0;
    int y = 0;
    bool operator==(const GridCell&) const = default;
};

/// Exact Euclidean distance (in cells) from every cell to the nearest background cell, where a cell is
/// background when `tissue[i] == 0` and everything outside the grid is background (Felzenszwalb &
/// Huttenlocher's separable transform, O(cells)). Returns squared distances, row-major; 0 on background.
/// Throws InvalidArgument when tissue.size() != cols · rows or a dimension is negative.
std::vector<double> squaredDistanceToBackground(const std::vector<std::uint8_t>& tissue, int cols, int rows);

/// Samples crop centres on one compressed slide (see the file comment).
class CropSampler {
public:
    /// `tissueFraction`: per cell, row-major, cols · rows values; a cell is tissue when its fraction is
    /// > `threshold`. A slide without any tissue cell falls back to uniform sampling over all cells
    /// (hasTissue() is false then, so callers can warn). Throws InvalidArgument on a size mismatch or
    /// an empty grid.
    CropSampler(const std::vector<float>& tissueFraction, int cols, int rows, float threshold = 0.0f);

    int cols() const { return cols_; }
    int rows() const { return rows_; }
    bool hasTissue() const { return tissueCells_ > 0; }
    std::int64_t tissueCells() const { return tissueCells_; }
    /// Sampling probability of every cell (row-major, sums to 1; 0 on background when hasTissue()).
    const std::vector<double>& probabilities() const { return probabilities_; }

    /// One training-crop centre drawn from probabilities().
    GridCell sample(std::mt19937_64& rng) const;

    /// `count` test-crop centres spread uniformly over the tissue: Lloyd's k-means on the coordinates of
    /// the tissue cells (initialised by farthest-point sampling from the most interior cell), each
    /// centre then moved to the nearest tissue cell not already taken. Deterministic. Returns every
    /// tissue cell when there are no more than `count`; the centre cell of the grid when there is no tissue.
    std::vector<GridCell> testCentres(int count) const;

private:
    int cols_ = 0;
    int rows_ = 0;
    std::int64_t tissueCells_ = 0;
    std::vector<std::uint8_t> tissue_;
    std::vector<double> probabilities_;
    std::vector<double> cumulative_;
    std::vector<double> squaredDistance_;
};

/// Throws InvalidArgument unless R (a crop's side) is at least 1: every crop function's first check.
void checkCropSize(int R);

/// Copies the R × R crop of a channel-first grid [channels, rows, cols] centred on `centre` into `out`
/// ([channels, R, R], resized), with zeros outside the grid. Throws InvalidArgument for R < 1 or a grid
/// buffer of the wrong size.
void extractCrop(const std::vector<float>& grid, int channels, int rows, int cols, GridCell centre, int R,
                 std::vector<float>& out);
/// Pointer form: `out` must hold channels · R · R floats.
void extractCrop(const float* grid, int channels, int rows, int cols, GridCell centre, int R, float* out);
/// The same crop channels-last: `out` ([R, R, channels], channels · R · R floats) holds value (c, y, x) of the
/// channel-first crop at (y · R + x) · channels + c. A transposing copy in tiles of 16 channels × 16 columns, so that
/// the slide CNN's trainer can feed oneDNN the layout its depthwise convolutions run fastest in. With a channel
/// range [firstChannel, endChannel) only those channels of `out` are written (so that threads can share a crop);
/// a range starting at a multiple of 16 keeps the tiles whole. Throws InvalidArgument for R < 1 or a bad range.
void extractCropChannelsLast(const float* grid, int channels, int rows, int cols, GridCell centre, int R, float* out,
                             int firstChannel = 0, int endChannel = -1);

/// The same crops from a channels-last grid [rows, cols, channels], the order compressed-slide files store. With
/// `channelsLastOut` the crop is written [R, R, channels] by plain row copies (what the slide CNN's trainer feeds
/// oneDNN); otherwise [channels, R, R], transposed in tiles of 16 pixels × 16 channels. Only crop rows
/// [firstRow, endRow) are written when a range is given (so that threads can share a crop). Throws InvalidArgument
/// for R < 1 or a bad row range.
void extractCropFromChannelsLast(const float* grid, int channels, int rows, int cols, GridCell centre, int R,
                                 float* out, bool channelsLastOut, int firstRow = 0, int endRow = -1);

} // namespace nic

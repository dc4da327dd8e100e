#pragma once
// The heatmap layer's data: a regular grid of float values over the slide. Core-independent on purpose
// (a plain struct), so it can be filled from an ASAP likelihood TIFF, an HDF5 grid or a test.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nic {

struct HeatmapData;

/// width × height cells, row-major; cell (c, r) covers level-0 [c·cellSize, (c+1)·cellSize) ×
/// [r·cellSize, ...). Non-finite values mean "no data" and are never drawn.
struct HeatmapGrid {
    int width = 0;
    int height = 0;
    std::vector<float> values;
    double cellSize = 1.0; ///< level-0 px per cell
    std::string source;    ///< file it came from (for the UI), may be empty
    /// Everything a `nic gradcam` file records (raw heat, tissue fractions, prediction, model, task);
    /// null for other kinds (likelihood maps, tests).
    std::shared_ptr<const HeatmapData> file;

    bool empty() const { return width <= 0 || height <= 0 || values.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height); }
    float at(int c, int r) const { return values[static_cast<std::size_t>(r) * static_cast<std::size_t>(width) + static_cast<std::size_t>(c)]; }
};

/// Smallest and largest finite value, or nullopt when there is none.
std::optional<std::pair<float, float>> valueRange(const HeatmapGrid& grid);

/// The value below which `percent` % of the finite values lie (nearest rank; 0 → minimum, 100 → maximum).
/// Returns 0 for a grid without finite values.
float percentileValue(const HeatmapGrid& grid, double percent);

/// The iso-line of `grid` at `level` by marching squares over the cell centres (cell (c, r) sampled at
/// level-0 ((c + ½)·cellSize, (r + ½)·cellSize), crossings placed by linear interpolation along the
/// square's edges, so the line follows the bilinear (smooth) rendering). Returns line segments as
/// x0, y0, x1, y1 in level-0 pixels, 4 floats each. Squares with a non-finite corner are skipped (no
/// line along glass); saddles are split by the square's mean. Empty when `level` is not finite.
std::vector<float> isoContour(const HeatmapGrid& grid, float level);

/// Reads an ASAP likelihood map (`<slide>_likelihood_map.tif`, a pyramidal TIFF whose level 0 spans the
/// slide) through OpenSlide: the first level at most `maxCells` wide is read and its first channel scaled
/// to [0, 1]. `slideWidth` (level-0 px of the slide) sets the cell size. Throws SlideError (file + cause).
HeatmapGrid loadLikelihoodMap(const std::filesystem::path& path, double slideWidth, int maxCells = 4096);

/// Reads a `nic gradcam` heatmap file (`<slide>_heatmap.h5`, format in core/heatmaps/heatmapeval.h): the
/// `heatmap` dataset with the file's cell size; cells whose `tissue` fraction is 0 (glass, never looked
/// at) hold NaN and are not drawn. Throws IoError naming the file and the cause.
HeatmapGrid loadGradCamHeatmap(const std::filesystem::path& path);

/// Either kind by content: an HDF5 file (signature) is read as a `nic gradcam` heatmap, anything else
/// as an ASAP likelihood TIFF (`slideWidth` as for loadLikelihoodMap). Throws with the file and cause.
HeatmapGrid loadHeatmapFile(const std::filesystem::path& path, double slideWidth);

/// The heatmap beside the slide: `<stem>_heatmap.h5` (what `nic gradcam` writes), else the ASAP
/// likelihood map; nullopt when neither exists.
std::optional<std::filesystem::path> findHeatmap(const std::filesystem::path& slidePath);

/// `<dir>/<stem>_likelihood_map.tif` (or .tiff) beside the slide, if it exists.
std::optional<std::filesystem::path> findLikelihoodMap(const std::filesystem::path& slidePath);
/// `<dir>/<stem>.xml` beside the slide (ASAP's convention), if it exists.
std::optional<std::filesystem::path> findAnnotationXml(const std::filesystem::path& slidePath);

} // namespace nic

#pragma once
// The latent view: a compressed slide (core/compression/latentgrid.h) made visible by colouring every grid cell
// with the first three principal components of its embedding (PC1 → red, PC2 → green, PC3 → blue).
// Plain C++ apart from the loader, which reads through LatentGridReader (the only HDF5 wrapper).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace nic {

/// An RGBA image at grid resolution (one pixel per cell) over the slide; alpha 0 = background cell.
struct LatentRgb {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> rgba; ///< row-major, 4 bytes per cell
    double cellSize = 1.0;          ///< level-0 px per cell
    std::string source;
    std::vector<double> explainedVariance; ///< fraction of the variance of PC1..PC3 (as many as computed)
};

/// PCA colouring of an [H, W, C] row-major grid. Cells whose `foreground` entry is 0 (or, when
/// `foreground` is empty, whose embedding is all zeros: the background of a compressed slide) are
/// transparent and excluded from the PCA. Each component is mapped to [0, 255] between its 1st and 99th
/// percentile over the foreground cells. Principal axes are found by power iteration with deflation on
/// the C × C covariance matrix; their sign is chosen so that the largest-magnitude loading is positive
/// (deterministic colours). Throws InvalidArgument if sizes disagree.
LatentRgb latentPcaRgb(const std::vector<float>& hwc, int height, int width, int channels,
                       const std::vector<std::uint8_t>& foreground, double cellSize);

/// Reads a compressed slide (variant 0) and colours it with latentPcaRgb(); the cell size is
/// stride · targetMpp / slideMpp level-0 px. Throws IoError (file + cause) from the reader.
LatentRgb loadLatentView(const std::filesystem::path& path);

/// `<dir>/<stem>.h5` beside the slide, if it exists.
std::filesystem::path latentGridPathFor(const std::filesystem::path& slidePath);

} // namespace nic

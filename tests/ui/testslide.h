#pragma once
// Synthetic slides for the GUI tests: a small pyramidal tiled TIFF written with libtiff that OpenSlide
// opens as generic-tiff. Content (level-0 px): white glass, a pink "tissue" rectangle and a blue square;
// every level is rendered from the same geometry, so colours are exact at every level.
#include <array>
#include <cstdint>
#include <filesystem>

namespace nic::test {

inline constexpr std::array<std::uint8_t, 3> kGlass{255, 255, 255};
inline constexpr std::array<std::uint8_t, 3> kTissue{200, 80, 150};
inline constexpr std::array<std::uint8_t, 3> kBlue{30, 60, 200};

struct TestSlideGeometry {
    int width = 2048;
    int height = 1536;
    int levels = 3;          ///< downsamples 1, 2, 4, ...
    double mpp = 0.5;        ///< written as XResolution in pixels/cm; <= 0 writes no resolution
    // Tissue [x0, x1) × [y0, y1) and blue square, level-0 px.
    int tissueX0 = 256, tissueY0 = 256, tissueX1 = 1280, tissueY1 = 1024;
    int blueX0 = 1536, blueY0 = 1024, blueX1 = 1792, blueY1 = 1280;
};

/// Colour of level-0 pixel (x, y) in the synthetic slide.
std::array<std::uint8_t, 3> testSlideColor(const TestSlideGeometry& g, double x, double y);

/// Writes the synthetic slide as a tiled, deflate-compressed, pyramidal TIFF. Throws std::runtime_error.
void writeTestSlide(const std::filesystem::path& path, const TestSlideGeometry& g = {});

} // namespace nic::test

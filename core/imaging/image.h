#pragma once
// Plain 8-bit raster used across core/ (RGB patches, masks). No Qt, no torch.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nic {

/// An 8-bit image with 1 (mask/gray) or 3 (RGB) interleaved channels, row-major, no padding.
/// A value type: copies are deep.
struct Image {
    int width = 0;
    int height = 0;
    int channels = 3;
    std::vector<std::uint8_t> pixels;

    Image() = default;
    Image(int w, int h, int c, std::uint8_t fill = 0)
        : width(w), height(h), channels(c),
          pixels(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * static_cast<std::size_t>(c), fill) {}

    bool empty() const { return width <= 0 || height <= 0; }
    std::size_t index(int x, int y) const {
        return (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
               static_cast<std::size_t>(channels);
    }
    std::uint8_t* at(int x, int y) { return pixels.data() + index(x, y); }
    const std::uint8_t* at(int x, int y) const { return pixels.data() + index(x, y); }
    std::uint8_t* row(int y) { return at(0, y); }
    const std::uint8_t* row(int y) const { return at(0, y); }
};

} // namespace nic

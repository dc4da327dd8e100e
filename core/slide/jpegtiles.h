#pragma once
// Reading the levels of a tiled, JPEG-compressed TIFF pyramid (OpenSlide's "aperio" and "generic-tiff"
// vendors, and every slide the synthetic generator writes) without OpenSlide's cairo compositing.
//
// OpenSlide 3.4 paints every tile into the region with cairo's SATURATE operator, which pixman has no
// fast path for: on this project's machines that compositing is about two thirds of a region read, more
// than decoding the JPEG tiles. For regions at whole-pixel level coordinates the result is only the
// tiles' decoded pixels cut to the region (alpha 255 inside the level, nothing outside it), so this
// reader decodes the same tiles with the same libjpeg settings and copies them, and Slide::readRegion
// uses it there. It is a fast path, never a second opinion: whatever it cannot read exactly as OpenSlide
// would (another layout, a fractional offset, a tile that does not decode) it declines, and OpenSlide
// reads it, with OpenSlide's errors.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace nic {

/// One level as OpenSlide reports it, to be matched against the file's TIFF directories.
struct JpegTileLevelSpec {
    std::int64_t width = 0;
    std::int64_t height = 0;
    std::int64_t tileWidth = 0;  ///< openslide.level[N].tile-width, 0 when unknown
    std::int64_t tileHeight = 0; ///< openslide.level[N].tile-height, 0 when unknown
};

class JpegTileReader {
public:
    /// Reads the TIFF directories of `path` and matches each level to a tiled, 8-bit, 3-sample,
    /// JPEG-compressed directory of the same size (and tile size, where given). Returns nullptr, with
    /// the reason in `why`, when no level matches; levels that do not match are left to OpenSlide.
    /// `cacheBytes` bounds the decoded tiles kept for neighbouring reads.
    static std::unique_ptr<JpegTileReader> open(const std::filesystem::path& path,
                                                const std::vector<JpegTileLevelSpec>& levels, std::string& why,
                                                std::size_t cacheBytes = std::size_t{32} << 20);
    ~JpegTileReader();
    JpegTileReader(const JpegTileReader&) = delete;
    JpegTileReader& operator=(const JpegTileReader&) = delete;

    /// Whether `level` is read by this reader.
    bool hasLevel(int level) const;

    /// Writes the w × h region whose top-left pixel is (x, y) in `level`'s own coordinates as RGB
    /// (w × h × 3 bytes, row-major), white outside the level. Returns false, having written an
    /// unspecified part of `rgb`, when it cannot: the level is not read here, or a tile is missing,
    /// unreadable or does not decode to its tile size. Thread-safe.
    bool read(int level, std::int64_t x, std::int64_t y, int w, int h, std::uint8_t* rgb) const;

    /// Number of tiles decoded so far (cache misses), for tests and benchmarks.
    std::int64_t tilesDecoded() const;

private:
    struct Impl;
    explicit JpegTileReader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace nic

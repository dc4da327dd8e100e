#pragma once
// Streaming writer of pyramidal, tiled TIFF files (Aperio-compatible layout on request). This is the
// only code in the project that calls libtiff for writing (house style #2).
#include "core/imaging/image.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nic {

enum class TiffCompression { Jpeg, Deflate, Lzw, None };

/// Classic TIFF ("w") or BigTIFF ("w8"). Auto chooses BigTIFF when the uncompressed pyramid could pass
/// 3 GiB, so a classic file never risks the 4 GiB limit.
enum class BigTiffMode { Auto, Always, Never };

/// Parses "auto", "yes"/"always"/"on", "no"/"never"/"off". Throws InvalidArgument.
BigTiffMode parseBigTiffMode(const std::string& text);

struct PyramidTiffOptions {
    int channels = 3;       ///< 3 (RGB) or 1 (gray)
    int tileSize = 256;     ///< multiple of 16, 16..4096
    TiffCompression compression = TiffCompression::Jpeg;
    int jpegQuality = 90;   ///< 1..100; RGB is stored as YCbCr 4:2:0 (JPEGCOLORMODE_RGB)
    int levelDownsample = 4; ///< 2 or 4; each level is the previous one box-averaged by this factor
    int minLevelSide = 1024; ///< no further level once the smaller side of the last one is <= this
    BigTiffMode bigTiff = BigTiffMode::Auto;
    /// Level-0 pixel size in µm; > 0 writes X/YResolution in pixels per centimetre on every level
    /// (scaled by the level's downsample).
    double mpp = 0.0;
    /// Aperio layout: level-0 ImageDescription "Aperio Image Library <aperioSoftware>\r\nWxH [...]|AppMag =
    /// ..|MPP = .." (needs mpp > 0) so OpenSlide reports vendor "aperio" with openslide.mpp-x/y.
    bool aperio = false;
    std::string aperioSoftware = "NIC Studio";
    double appMag = 0.0; ///< objective power for AppMag; <= 0 means 10 / mpp
    /// Level-0 ImageDescription when not aperio (empty: none).
    std::string description;
    /// > 0: a stripped thumbnail directory (directory 1, as Aperio does, so OpenSlide lists an
    /// associated image "thumbnail") whose longer side is at most this many pixels and at most a
    /// quarter (1 / levelDownsample) of level 0's.
    int thumbnailMaxSide = 0;
    /// Lower levels larger than this many bytes are spooled to an unlinked temporary file in the
    /// output's directory instead of memory while level 0 is written.
    std::int64_t spoolThresholdBytes = std::int64_t{64} << 20;
    /// The file name used in error messages; empty: the path written. Set it to the final name when
    /// writing to an AtomicFile's temporary path.
    std::filesystem::path displayName;
};

/// Size of one pyramid level.
struct PyramidLevelSize {
    std::int64_t width = 0;
    std::int64_t height = 0;
};

/// Writes a pyramidal tiled TIFF in one pass over level 0, with bounded memory.
///
/// Level 0 arrives as horizontal strips of `tileSize` rows (appendStrip) and is encoded into directory 0
/// at once; every lower level is box-averaged incrementally from those strips and kept in per-level row
/// stores (memory, or an unlinked temporary file beside the output for big levels). finish() then writes
/// the thumbnail and the lower levels as successive directories, largest first, and closes the file.
/// Memory is about two level-0 strips plus one strip per level and the small levels, whatever the
/// image size. Output bytes depend only on the pixels and the options (no time stamps).
///
/// Errors throw IoError naming the file and libtiff's message, InvalidArgument for bad options or a
/// strip of the wrong size. After an error or without finish() the file is incomplete: write to an
/// AtomicFile's tempPath() so it never becomes visible. Not thread-safe; one thread drives a writer.
class PyramidTiffWriter {
public:
    /// Creates (truncates) `path`. Throws InvalidArgument (bad size/options) or IoError.
    PyramidTiffWriter(const std::filesystem::path& path, std::int64_t width, std::int64_t height,
                      const PyramidTiffOptions& options);
    ~PyramidTiffWriter();
    PyramidTiffWriter(const PyramidTiffWriter&) = delete;
    PyramidTiffWriter& operator=(const PyramidTiffWriter&) = delete;

    /// The level sizes a writer with these arguments produces (level 0 first). Pure.
    static std::vector<PyramidLevelSize> levelSizes(std::int64_t width, std::int64_t height,
                                                    const PyramidTiffOptions& options);
    /// Whether Auto would pick BigTIFF for this size (pure).
    static bool needsBigTiff(std::int64_t width, std::int64_t height, const PyramidTiffOptions& options);

    const std::vector<PyramidLevelSize>& levels() const { return levels_; }
    bool isBigTiff() const { return bigTiff_; }
    /// Number of level-0 rows appended so far.
    std::int64_t rowsWritten() const { return rowsWritten_; }
    /// Number of tile rows finish() writes (for progress reporting).
    std::int64_t finishTileRows() const;

    /// Appends the next strip of level 0: strip.width == width, channels as configured, and
    /// strip.height == tileSize except for the last strip (the remaining rows).
    void appendStrip(const Image& strip);

    /// Called by finish() after each tile row of a lower level with (done, total) tile rows; it may throw
    /// (e.g. nic::Cancelled) to abort.
    using RowCallback = std::function<void(std::int64_t done, std::int64_t total)>;
    /// Writes the thumbnail and lower levels and closes the file. All level-0 rows must have been
    /// appended (throws InvalidArgument otherwise).
    void finish(const RowCallback& onRow = {});

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::vector<PyramidLevelSize> levels_;
    bool bigTiff_ = false;
    std::int64_t rowsWritten_ = 0;
};

} // namespace nic

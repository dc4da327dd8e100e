#pragma once
// A whole-slide image opened with OpenSlide. This is the only code in the project that calls
// openslide_* (house style #2).
#include "core/base/error.h"
#include "core/imaging/image.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

typedef struct _openslide openslide_t;

namespace nic {

class JpegTileReader;

/// How Slide::readRegion decodes tiles. Direct: tiled JPEG TIFF pyramids (OpenSlide's "aperio" and
/// "generic-tiff") at whole-pixel level coordinates are decoded by JpegTileReader, bit for bit as OpenSlide
/// reads them but without its compositing; everything else goes to OpenSlide. OpenSlideOnly: every read
/// goes to OpenSlide. The environment variable NIC_TILE_DECODER=openslide makes Direct act as OpenSlideOnly.
enum class TileDecoding { Direct, OpenSlideOnly };

/// Size of one pyramid level in pixels.
struct LevelInfo {
    std::int64_t width = 0;
    std::int64_t height = 0;
    double downsample = 1.0; ///< relative to level 0
};

/// Physical pixel size at level 0, with where it came from.
struct Resolution {
    double mppX = 0.0;
    double mppY = 0.0;
    std::string source; ///< "openslide.mpp" or "tiff.XResolution" (when known)
};

/// The slide file is no longer the file that was opened: deleted or moved away, replaced by another
/// file (rename over it), truncated, or rewritten in place. what() names the file and what changed.
class SlideChangedError : public SlideError {
public:
    using SlideError::SlideError;
};

/// A slide file as stat saw it: device, inode, size and modification time.
struct SlideFileIdentity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t mtimeNs = 0; ///< modification time, ns since the epoch
};

/// An open slide. Construction opens the file and throws SlideError (naming the file and
/// OpenSlide's cause) when it cannot be opened. Reads are thread-safe (OpenSlide allows concurrent
/// reads on one handle); after a read error the handle is dead, like OpenSlide's, and every later
/// read throws the first error again. Move-only.
///
/// The file must stay as it was while it is open. OpenSlide (3.4) reopens the file *by name* for every
/// TIFF read, so a deleted file fails every uncached tile with a cryptic libtiff/libjpeg error, and a
/// file replaced by another one is read at the old offsets: tiles that happen to line up decode without
/// error and return the other file's pixels. So every read checks, before and after calling OpenSlide,
/// that the file at path() still exists with the size and modification time it had when it was opened
/// (SlideFileIdentity; the inode only tells "replaced" from "changed" in the message) and otherwise
/// throws SlideChangedError ("<path>: slide file vanished / was replaced by another file / changed
/// since it was opened (...)"); a file moved back is readable again. Not detected: a rewrite that
/// keeps the size and the modification time, changes to the data files of multi-file formats (MIRAX,
/// VMS; only path() is checked), and changes an NFS client's attribute cache does not show yet.
class Slide {
public:
    explicit Slide(const std::filesystem::path& path, TileDecoding decoding = TileDecoding::Direct);
    ~Slide();
    Slide(Slide&&) noexcept;
    Slide& operator=(Slide&&) noexcept;
    Slide(const Slide&) = delete;
    Slide& operator=(const Slide&) = delete;

    const std::filesystem::path& path() const { return path_; }
    /// OpenSlide's vendor name ("aperio", "generic-tiff", ...).
    const std::string& vendor() const { return vendor_; }

    int levelCount() const { return static_cast<int>(levels_.size()); }
    const LevelInfo& level(int index) const;
    std::int64_t width() const { return levels_.front().width; }
    std::int64_t height() const { return levels_.front().height; }
    const std::vector<LevelInfo>& levels() const { return levels_; }

    /// Level-0 resolution: openslide.mpp-x/y, else tiff.XResolution/YResolution with
    /// tiff.ResolutionUnit (centimeter or inch) when plausible (≤ kMaxPlausibleMpp), else std::nullopt ("mpp unknown"). Never invented.
    const std::optional<Resolution>& resolution() const { return resolution_; }
    /// Why the resolution is unknown when the file has resolution tags that were rejected (empty otherwise).
    const std::string& resolutionNote() const { return resolutionNote_; }
    /// Resolutions coarser than this (µm/px) are treated as placeholders (72/96 dpi), not measurements.
    static constexpr double kMaxPlausibleMpp = 100.0;
    /// Objective power from openslide.objective-power, if any.
    std::optional<double> objectivePower() const;

    /// All OpenSlide properties (name → value), sorted by name.
    const std::map<std::string, std::string>& properties() const { return properties_; }
    std::optional<std::string> property(const std::string& name) const;

    /// Names of associated images ("thumbnail", "label", "macro", ...) with their sizes.
    const std::map<std::string, std::pair<std::int64_t, std::int64_t>>& associatedImages() const {
        return associated_;
    }
    /// Reads an associated image as RGB composited on white. Throws SlideError for an unknown name.
    Image readAssociatedImage(const std::string& name) const;

    /// Reads a region as RGB; (x, y) are level-0 coordinates of the top-left corner, (w, h) the size in
    /// pixels of `level`. Transparent pixels (outside the scanned area) are composited on white.
    /// Throws SlideError (file + OpenSlide's cause) or InvalidArgument for a bad level/size.
    Image readRegion(std::int64_t x, std::int64_t y, int level, std::int64_t w, std::int64_t h) const;
    /// The same region into `rgb` (w × h × 3 bytes, row-major), resized to fit: a buffer reused for region after
    /// region of one size is neither reallocated nor cleared. On an exception its contents are unspecified.
    void readRegion(std::int64_t x, std::int64_t y, int level, std::int64_t w, std::int64_t h,
                    std::vector<std::uint8_t>& rgb) const;

    /// Whether readRegion decodes `level`'s tiles itself (see TileDecoding) rather than through OpenSlide.
    bool decodesTilesDirectly(int level) const;

    /// The level whose downsample is the largest not exceeding `downsample` (OpenSlide's rule).
    int bestLevelForDownsample(double downsample) const;

    /// A thumbnail whose longer side is at most `maxSide` px, read from the best level and resampled
    /// with area averaging.
    Image thumbnail(int maxSide) const;

    /// openslide.quickhash-1 when the format provides it, else an empty string.
    std::string quickHash() const;

    /// The file's identity when it was opened.
    const SlideFileIdentity& fileIdentity() const { return identity_; }
    /// Throws SlideChangedError (file + what changed) when the file at path() is no longer the file
    /// that was opened (see the class comment). Every read calls it; cheap (one stat).
    void checkUnchanged() const;
    /// Throws SlideChangedError when this slide, opened later from the same path, is not the same file
    /// as `original` (e.g. a handle reopened after a read error must not read a replacing file).
    void checkSameFileAs(const Slide& original) const;

private:
    void throwIfError(const char* what) const;
    std::filesystem::path path_;
    SlideFileIdentity identity_;
    std::unique_ptr<openslide_t, void (*)(openslide_t*)> osr_;
    std::string vendor_;
    std::vector<LevelInfo> levels_;
    std::optional<Resolution> resolution_;
    std::string resolutionNote_;
    std::map<std::string, std::string> properties_;
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> associated_;
    std::unique_ptr<JpegTileReader> tiles_; ///< null: OpenSlide reads every region
};

} // namespace nic

#include "core/slide/slide.h"

#include "core/base/error.h"
#include "core/slide/jpegtiles.h"
#include "core/slide/resample.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <openslide.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nic {

namespace {

void closeSlide(openslide_t* osr) {
    if (osr)
        openslide_close(osr);
}

std::optional<double> parseDouble(const std::optional<std::string>& opt) {
    if (!opt)
        return std::nullopt;
    const std::string& s = *opt;
    if (s.empty())
        return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || end == s.c_str())
        return std::nullopt;
    return v;
}

// Un-premultiplies OpenSlide's ARGB and composites it on white, writing RGB.
void argbToRgbOnWhite(const std::uint32_t* argb, std::size_t count, std::uint8_t* rgb) {
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t p = argb[i];
        const std::uint32_t a = p >> 24;
        std::uint32_t r = (p >> 16) & 0xFF;
        std::uint32_t g = (p >> 8) & 0xFF;
        std::uint32_t b = p & 0xFF;
        if (a != 255) {
            // Premultiplied colour plus white behind the transparent part.
            r = std::min<std::uint32_t>(255, r + (255 - a));
            g = std::min<std::uint32_t>(255, g + (255 - a));
            b = std::min<std::uint32_t>(255, b + (255 - a));
        }
        rgb[i * 3 + 0] = static_cast<std::uint8_t>(r);
        rgb[i * 3 + 1] = static_cast<std::uint8_t>(g);
        rgb[i * 3 + 2] = static_cast<std::uint8_t>(b);
    }
}

// Explains why a path could not be opened when OpenSlide returned NULL without a message.
std::string diagnoseUnopenable(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return std::strerror(errno);
    if (S_ISDIR(st.st_mode))
        return "is a directory, not a slide file";
    if (!S_ISREG(st.st_mode))
        return "not a regular file";
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return std::strerror(errno);
    ::close(fd);
    if (st.st_size == 0)
        return "empty file";
    return "not a file that OpenSlide can recognize (unsupported or corrupt slide format)";
}

// The identity of the file at `path` (0), or the errno of stat.
int statIdentity(const std::filesystem::path& path, SlideFileIdentity& out) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return errno;
    out.device = static_cast<std::uint64_t>(st.st_dev);
    out.inode = static_cast<std::uint64_t>(st.st_ino);
    out.size = static_cast<std::int64_t>(st.st_size);
    out.mtimeNs = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

// Whether `now` is still the file that was opened as `was`: same size and modification time. The inode
// only names the cause: some network filesystems (CIFS with noserverino, some FUSE mounts) do not keep
// inode numbers stable, and a copy that kept the size and time (rsync -t of the same file) has the same
// bytes, so OpenSlide reading it at the old offsets is harmless.
bool sameFile(const SlideFileIdentity& was, const SlideFileIdentity& now) {
    return was.size == now.size && was.mtimeNs == now.mtimeNs;
}

// "<path>: slide file ... since it was opened (...)" for a file whose identity went from `was` to `now`.
std::string changedMessage(const std::filesystem::path& path, const SlideFileIdentity& was, const SlideFileIdentity& now) {
    const std::string sizes = "size was " + std::to_string(was.size) + " bytes, now " + std::to_string(now.size);
    std::string what;
    if (was.device != now.device || was.inode != now.inode)
        what = "was replaced by another file since it was opened (" + sizes + ")";
    else if (was.size != now.size)
        what = "changed since it was opened (" + sizes + ": truncated or rewritten)";
    else
        what = "was modified in place since it was opened (same size, new modification time)";
    return path.string() + ": slide file " + what + "; open it again to read the current file";
}

std::string vanishedMessage(const std::filesystem::path& path, int err) {
    if (err == ENOENT || err == ENOTDIR)
        return path.string() + ": slide file vanished since it was opened (deleted or moved away)";
    return path.string() + ": slide file is no longer accessible since it was opened (" + std::strerror(err) + ")";
}

} // namespace

Slide::Slide(const std::filesystem::path& path, TileDecoding decoding) : path_(path), osr_(nullptr, closeSlide) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw SlideError(path.string() + ": cannot open slide: " + std::strerror(ENOENT));
    if (std::filesystem::is_directory(path, ec))
        throw SlideError(path.string() + ": cannot open slide: is a directory, not a slide file");
    // Identity first: a file that changes while OpenSlide reads its header is caught at the end.
    if (const int err = statIdentity(path, identity_))
        throw SlideError(path.string() + ": cannot open slide: " + std::strerror(err));
    const char* vendor = openslide_detect_vendor(path.c_str());
    osr_.reset(openslide_open(path.c_str()));
    if (!osr_)
        throw SlideError(path.string() + ": cannot open slide: " + diagnoseUnopenable(path));
    throwIfError("cannot open slide");
    vendor_ = vendor ? vendor : "unknown";

    const int count = openslide_get_level_count(osr_.get());
    throwIfError("cannot read pyramid levels");
    if (count < 1)
        throw SlideError(path.string() + ": cannot open slide: no pyramid levels");
    for (int i = 0; i < count; ++i) {
        LevelInfo info;
        openslide_get_level_dimensions(osr_.get(), i, &info.width, &info.height);
        info.downsample = openslide_get_level_downsample(osr_.get(), i);
        throwIfError("cannot read pyramid levels");
        if (info.width <= 0 || info.height <= 0)
            throw SlideError(path.string() + ": cannot open slide: level " + std::to_string(i) + " has no pixels");
        levels_.push_back(info);
    }

    if (const char* const* names = openslide_get_property_names(osr_.get())) {
        for (; *names; ++names) {
            const char* value = openslide_get_property_value(osr_.get(), *names);
            properties_[*names] = value ? value : "";
        }
    }
    throwIfError("cannot read properties");

    if (const char* const* names = openslide_get_associated_image_names(osr_.get())) {
        for (; *names; ++names) {
            std::int64_t w = 0, h = 0;
            openslide_get_associated_image_dimensions(osr_.get(), *names, &w, &h);
            associated_[*names] = {w, h};
        }
    }
    throwIfError("cannot read associated images");

    // Resolution: OpenSlide's own mpp first, then the TIFF resolution tags. Never invented.
    const auto mppX = parseDouble(property("openslide.mpp-x"));
    const auto mppY = parseDouble(property("openslide.mpp-y"));
    if (mppX && mppY && *mppX > 0 && *mppY > 0) {
        resolution_ = Resolution{*mppX, *mppY, "openslide.mpp"};
    } else {
        const auto xres = parseDouble(property("tiff.XResolution"));
        const auto yres = parseDouble(property("tiff.YResolution"));
        const auto unit = property("tiff.ResolutionUnit");
        if (xres && yres && *xres > 0 && *yres > 0 && unit) {
            double micronsPerUnit = 0;
            if (*unit == "centimeter")
                micronsPerUnit = 10000.0;
            else if (*unit == "inch")
                micronsPerUnit = 25400.0;
            // "none" (or anything else): the tags carry no physical unit, so mpp stays unknown.
            // A resolution of 1 unit per inch or cm is libtiff's placeholder, not a measurement.
            if (micronsPerUnit > 0) {
                const Resolution r{micronsPerUnit / *xres, micronsPerUnit / *yres, "tiff.XResolution"};
                // Image editors write 72 or 96 dpi (≈ 353 or 265 µm/px) when they know nothing; no
                // microscope scans at > 100 µm/px, so such a value is a placeholder, not a measurement.
                if (r.mppX <= kMaxPlausibleMpp && r.mppY <= kMaxPlausibleMpp) {
                    resolution_ = r;
                } else {
                    char buf[160];
                    std::snprintf(buf, sizeof buf,
                                  "tiff.XResolution gives %.4g um/px (%.4g dpi), not a microscope resolution; "
                                  "treated as unknown",
                                  r.mppX, 25400.0 / r.mppX);
                    resolutionNote_ = buf;
                }
            } else {
                resolutionNote_ = "tiff.ResolutionUnit is '" + *unit + "', which has no physical unit";
            }
        }
    }
    if (const char* env = std::getenv("NIC_TILE_DECODER"); env && std::string(env) == "openslide")
        decoding = TileDecoding::OpenSlideOnly;
    if (decoding == TileDecoding::Direct && (vendor_ == "aperio" || vendor_ == "generic-tiff")) {
        std::vector<JpegTileLevelSpec> specs;
        for (int i = 0; i < levelCount(); ++i) {
            const auto tile = [&](const char* what) {
                const auto v = parseDouble(property("openslide.level[" + std::to_string(i) + "]." + what));
                return v && *v > 0 ? static_cast<std::int64_t>(*v) : std::int64_t{0};
            };
            specs.push_back({levels_[static_cast<std::size_t>(i)].width, levels_[static_cast<std::size_t>(i)].height,
                             tile("tile-width"), tile("tile-height")});
        }
        std::string why; // a layout this reader does not take is OpenSlide's to read; nothing to report
        tiles_ = JpegTileReader::open(path, specs, why);
    }
    checkUnchanged();
}

Slide::~Slide() = default;
Slide::Slide(Slide&&) noexcept = default;
Slide& Slide::operator=(Slide&&) noexcept = default;

void Slide::throwIfError(const char* what) const {
    if (const char* err = openslide_get_error(osr_.get()))
        throw SlideError(path_.string() + ": " + what + ": " + err);
}

void Slide::checkUnchanged() const {
    SlideFileIdentity now;
    if (const int err = statIdentity(path_, now))
        throw SlideChangedError(vanishedMessage(path_, err));
    if (!sameFile(identity_, now))
        throw SlideChangedError(changedMessage(path_, identity_, now));
}

void Slide::checkSameFileAs(const Slide& original) const {
    if (!sameFile(original.identity_, identity_))
        throw SlideChangedError(changedMessage(path_, original.identity_, identity_));
}

const LevelInfo& Slide::level(int index) const {
    if (index < 0 || index >= levelCount())
        throw InvalidArgument(path_.string() + ": level " + std::to_string(index) + " does not exist (slide has " +
                              std::to_string(levelCount()) + " levels)");
    return levels_[static_cast<std::size_t>(index)];
}

std::optional<std::string> Slide::property(const std::string& name) const {
    const auto it = properties_.find(name);
    if (it == properties_.end())
        return std::nullopt;
    return it->second;
}

std::optional<double> Slide::objectivePower() const {
    return parseDouble(property("openslide.objective-power"));
}

std::string Slide::quickHash() const { return property("openslide.quickhash-1").value_or(""); }

Image Slide::readAssociatedImage(const std::string& name) const {
    const auto it = associated_.find(name);
    if (it == associated_.end())
        throw SlideError(path_.string() + ": no associated image named '" + name + "'");
    const auto [w, h] = it->second;
    std::vector<std::uint32_t> buf(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
    checkUnchanged();
    openslide_read_associated_image(osr_.get(), name.c_str(), buf.data());
    checkUnchanged(); // changed during the read: pixels or error may come from the other file
    throwIfError(("cannot read associated image '" + name + "'").c_str());
    Image out(static_cast<int>(w), static_cast<int>(h), 3);
    argbToRgbOnWhite(buf.data(), buf.size(), out.pixels.data());
    return out;
}

Image Slide::readRegion(std::int64_t x, std::int64_t y, int lvl, std::int64_t w, std::int64_t h) const {
    Image out;
    readRegion(x, y, lvl, w, h, out.pixels);
    out.width = static_cast<int>(w);
    out.height = static_cast<int>(h);
    out.channels = 3;
    return out;
}

void Slide::readRegion(std::int64_t x, std::int64_t y, int lvl, std::int64_t w, std::int64_t h,
                       std::vector<std::uint8_t>& rgb) const {
    level(lvl); // validates the index
    if (w <= 0 || h <= 0)
        throw InvalidArgument(path_.string() + ": region size must be positive, got " + std::to_string(w) + "x" +
                              std::to_string(h));
    if (w * h > (std::int64_t{1} << 28))
        throw InvalidArgument(path_.string() + ": region " + std::to_string(w) + "x" + std::to_string(h) +
                              " is too large for one read; read it in tiles");
    if (decodesTilesDirectly(lvl) && !openslide_get_error(osr_.get())) {
        // OpenSlide paints the level at (x, y) / downsample; at whole-pixel coordinates that is a plain
        // copy of the decoded tiles, which the tile reader makes (and at fractional ones a resampling).
        const double ds = levels_[static_cast<std::size_t>(lvl)].downsample;
        const double lx = static_cast<double>(x) / ds, ly = static_cast<double>(y) / ds;
        // OpenSlide also cuts regions into 4096-pixel chunks at level-0 offsets truncated to integers,
        // which stay whole-pixel in the level only when the downsample is an integer.
        const bool chunksAligned = ds == std::floor(ds) || (w <= 4096 && h <= 4096);
        if (lx == std::floor(lx) && ly == std::floor(ly) && std::fabs(lx) < 0x1p52 && std::fabs(ly) < 0x1p52 &&
            chunksAligned) {
            rgb.resize(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3U);
            checkUnchanged();
            const bool read = tiles_->read(lvl, static_cast<std::int64_t>(lx), static_cast<std::int64_t>(ly),
                                           static_cast<int>(w), static_cast<int>(h), rgb.data());
            checkUnchanged();
            if (read)
                return;
            // A tile the reader declines (missing, damaged): OpenSlide reads the region and reports.
        }
    }
    std::vector<std::uint32_t> buf(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
    // OpenSlide reopens the file by name for every tile it reads, so a replaced file would be read at
    // the old offsets (see the class comment): check the identity before, and after (a change during
    // the read may have mixed in the other file's bytes, and explains OpenSlide's error better).
    checkUnchanged();
    openslide_read_region(osr_.get(), buf.data(), x, y, lvl, w, h);
    checkUnchanged();
    if (const char* err = openslide_get_error(osr_.get()))
        throw SlideError(path_.string() + ": cannot read region at (" + std::to_string(x) + ", " + std::to_string(y) +
                         ") level " + std::to_string(lvl) + " size " + std::to_string(w) + "x" + std::to_string(h) +
                         ": " + err);
    rgb.resize(buf.size() * 3U);
    argbToRgbOnWhite(buf.data(), buf.size(), rgb.data());
}

bool Slide::decodesTilesDirectly(int lvl) const { return tiles_ && tiles_->hasLevel(lvl); }

int Slide::bestLevelForDownsample(double downsample) const {
    // Same rule as openslide_get_best_level_for_downsample, computed from our cached levels so it
    // needs no call into OpenSlide.
    if (downsample < levels_.front().downsample)
        return 0;
    for (int i = 1; i < levelCount(); ++i)
        if (downsample < levels_[static_cast<std::size_t>(i)].downsample)
            return i - 1;
    return levelCount() - 1;
}

Image Slide::thumbnail(int maxSide) const {
    if (maxSide <= 0)
        throw InvalidArgument("thumbnail size must be positive");
    const double longer = static_cast<double>(std::max(width(), height()));
    const double ds = std::max(1.0, longer / maxSide);
    const int tw = std::max(1, static_cast<int>(std::lround(static_cast<double>(width()) / ds)));
    const int th = std::max(1, static_cast<int>(std::lround(static_cast<double>(height()) / ds)));
    const int lvl = bestLevelForDownsample(ds);
    const LevelInfo& li = levels_[static_cast<std::size_t>(lvl)];
    // Stream the level in bands of whole output rows, so even a single-level gigapixel slide never
    // needs one huge buffer. Band edges are rounded to level rows (sub-pixel error at most).
    const double sy = static_cast<double>(li.height) / th;
    const int rowsPerBand = std::max(1, static_cast<int>((std::int64_t{1} << 24) / std::max<std::int64_t>(1, li.width) / std::max(1.0, sy)));
    Image out(tw, th, 3);
    for (int r0 = 0; r0 < th; r0 += rowsPerBand) {
        const int r1 = std::min(th, r0 + rowsPerBand);
        const auto ly0 = static_cast<std::int64_t>(std::floor(r0 * sy));
        const auto ly1 = std::min<std::int64_t>(li.height, std::max<std::int64_t>(ly0 + 1, static_cast<std::int64_t>(std::ceil(r1 * sy))));
        const auto y0 = static_cast<std::int64_t>(std::llround(static_cast<double>(ly0) * li.downsample));
        Image band = readRegion(0, y0, lvl, li.width, ly1 - ly0);
        Image small = resize(band, tw, r1 - r0);
        std::memcpy(out.row(r0), small.pixels.data(), small.pixels.size());
    }
    return out;
}

} // namespace nic

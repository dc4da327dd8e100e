#include "core/imaging/tiffwriter.h"

#include "core/base/error.h"
#include "core/slide/resample.h"

#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace nic {

BigTiffMode parseBigTiffMode(const std::string& text) {
    std::string t = text;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (t == "auto")
        return BigTiffMode::Auto;
    if (t == "yes" || t == "always" || t == "on" || t == "true")
        return BigTiffMode::Always;
    if (t == "no" || t == "never" || t == "off" || t == "false")
        return BigTiffMode::Never;
    throw InvalidArgument("--bigtiff: expected auto, yes or no, got '" + text + "'");
}

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

// Rows of one pyramid level, appended in order and read back by finish(). Big levels live in an
// unlinked temporary file (nothing is left behind on a crash), small ones in memory.
class RowStore {
public:
    RowStore(std::int64_t width, int channels, std::int64_t height, bool spool,
             const std::filesystem::path& dir)
        : rowBytes_(width * channels) {
        if (!spool) {
            mem_.reserve(sz(rowBytes_ * height));
            return;
        }
        const std::string d = dir.empty() ? std::string(".") : dir.string();
#ifdef O_TMPFILE
        fd_ = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
        if (fd_ < 0) {
            std::string tmpl = d + "/.nic-spool-XXXXXX";
            fd_ = ::mkstemp(tmpl.data());
            if (fd_ < 0)
                throw IoError(d + ": cannot create a temporary spool file: " + std::strerror(errno));
            ::unlink(tmpl.c_str());
        }
    }
    ~RowStore() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    RowStore(const RowStore&) = delete;
    RowStore& operator=(const RowStore&) = delete;

    std::int64_t rows() const { return rows_; }

    void append(const std::uint8_t* data, std::int64_t n) {
        const std::int64_t bytes = n * rowBytes_;
        if (fd_ < 0) {
            mem_.insert(mem_.end(), data, data + bytes);
        } else {
            std::int64_t done = 0;
            while (done < bytes) {
                const ssize_t w = ::pwrite(fd_, data + done, sz(bytes - done), static_cast<off_t>(rows_ * rowBytes_ + done));
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    throw IoError(std::string("cannot write the pyramid spool file: ") + std::strerror(errno));
                }
                done += w;
            }
        }
        rows_ += n;
    }

    void read(std::int64_t row, std::int64_t n, std::uint8_t* out) const {
        const std::int64_t bytes = n * rowBytes_;
        if (fd_ < 0) {
            std::memcpy(out, mem_.data() + row * rowBytes_, sz(bytes));
            return;
        }
        std::int64_t done = 0;
        while (done < bytes) {
            const ssize_t r = ::pread(fd_, out + done, sz(bytes - done), static_cast<off_t>(row * rowBytes_ + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                throw IoError(std::string("cannot read the pyramid spool file: ") +
                              (r < 0 ? std::strerror(errno) : "unexpected end of file"));
            done += r;
        }
    }

private:
    std::int64_t rowBytes_;
    std::int64_t rows_ = 0;
    std::vector<std::uint8_t> mem_;
    int fd_ = -1;
};

// Box-averages the rows of its parent (level 0 or another builder) by an integer factor as they arrive.
// The last column/row groups may be partial; they average what exists.
struct Builder {
    int parent = -1; // -1: level 0
    int factor = 4;
    std::int64_t parentWidth = 0, parentHeight = 0;
    std::int64_t width = 0, height = 0;
    std::vector<std::uint32_t> sums;
    std::vector<std::uint8_t> row;
    int rowsInGroup = 0;
    std::int64_t parentRowsSeen = 0;
    std::unique_ptr<RowStore> store;
    std::vector<int> children;
};

std::string formatNumber(double v) {
    char buf[64];
    if (std::fabs(v - std::round(v)) < 1e-9)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

} // namespace

struct PyramidTiffWriter::Impl {
    std::filesystem::path path;
    PyramidTiffOptions opt;
    TIFF* tif = nullptr;
    std::string lastError;
    std::vector<PyramidLevelSize> levels;
    std::vector<Builder> builders; // builders[l - 1] makes level l; an optional last one the thumbnail
    int thumbBuilder = -1;         // index into builders of the dedicated thumbnail builder, or -1
    std::vector<std::uint8_t> tile;

    ~Impl() {
        if (tif)
            TIFFClose(tif);
    }

    [[noreturn]] void fail(const std::string& what) {
        std::string msg = (opt.displayName.empty() ? path : opt.displayName).string() + ": " + what;
        if (!lastError.empty())
            msg += ": " + lastError;
        throw IoError(msg);
    }

    static int onError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
        auto* self = static_cast<Impl*>(user);
        char buf[1024];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        self->lastError = (module && *module) ? std::string(module) + ": " + buf : std::string(buf);
        return 1; // handled: do not call libtiff's global handler
    }
    static int onWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

    template <typename... Args> void set(ttag_t tag, Args... args) {
        if (TIFFSetField(tif, tag, args...) != 1)
            fail("cannot set TIFF tag " + std::to_string(tag));
    }

    std::string compressionText() const {
        switch (opt.compression) {
        case TiffCompression::Jpeg:
            return std::string("JPEG/") + (opt.channels == 3 ? "RGB" : "Gray") + " Q=" + std::to_string(opt.jpegQuality);
        case TiffCompression::Deflate:
            return "Deflate";
        case TiffCompression::Lzw:
            return "LZW";
        case TiffCompression::None:
            return "Raw";
        }
        return {};
    }

    std::string aperioHead() const {
        const auto& l0 = levels.front();
        return "Aperio Image Library " + opt.aperioSoftware + "\r\n" + std::to_string(l0.width) + "x" +
               std::to_string(l0.height);
    }
    std::string aperioTail() const {
        const double mag = opt.appMag > 0 ? opt.appMag : 10.0 / opt.mpp;
        char mpp[64];
        std::snprintf(mpp, sizeof mpp, "%.4f", opt.mpp);
        return "|AppMag = " + formatNumber(mag) + "|MPP = " + mpp;
    }

    // Sets the tags of a new directory (the current one until TIFFWriteDirectory).
    void setupDirectory(std::int64_t w, std::int64_t h, bool tiled, bool reduced, const std::string& description) {
        if (reduced)
            set(TIFFTAG_SUBFILETYPE, static_cast<std::uint32_t>(FILETYPE_REDUCEDIMAGE));
        set(TIFFTAG_IMAGEWIDTH, static_cast<std::uint32_t>(w));
        set(TIFFTAG_IMAGELENGTH, static_cast<std::uint32_t>(h));
        set(TIFFTAG_BITSPERSAMPLE, 8);
        set(TIFFTAG_SAMPLESPERPIXEL, opt.channels);
        set(TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        switch (opt.compression) {
        case TiffCompression::Jpeg:
            set(TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
            if (opt.channels == 3) {
                set(TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
                set(TIFFTAG_YCBCRSUBSAMPLING, 2, 2);
                set(TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
            } else {
                set(TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
            }
            set(TIFFTAG_JPEGQUALITY, opt.jpegQuality);
            break;
        case TiffCompression::Deflate:
        case TiffCompression::Lzw:
            set(TIFFTAG_COMPRESSION, opt.compression == TiffCompression::Deflate ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_LZW);
            set(TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
            set(TIFFTAG_PHOTOMETRIC, opt.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
            break;
        case TiffCompression::None:
            set(TIFFTAG_COMPRESSION, COMPRESSION_NONE);
            set(TIFFTAG_PHOTOMETRIC, opt.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
            break;
        }
        if (tiled) {
            set(TIFFTAG_TILEWIDTH, static_cast<std::uint32_t>(opt.tileSize));
            set(TIFFTAG_TILELENGTH, static_cast<std::uint32_t>(opt.tileSize));
        } else {
            set(TIFFTAG_ROWSPERSTRIP, static_cast<std::uint32_t>(h));
        }
        if (!description.empty())
            set(TIFFTAG_IMAGEDESCRIPTION, description.c_str());
        if (opt.mpp > 0) {
            const double ds = static_cast<double>(levels.front().width) / static_cast<double>(w);
            const double ppcm = 10000.0 / (opt.mpp * ds);
            set(TIFFTAG_XRESOLUTION, ppcm);
            set(TIFFTAG_YRESOLUTION, 10000.0 / (opt.mpp * static_cast<double>(levels.front().height) / static_cast<double>(h)));
            set(TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
        }
    }

    void writeDirectory() {
        if (TIFFWriteDirectory(tif) != 1)
            fail("cannot write TIFF directory");
    }

    // Encodes the tiles of one strip (rows [y0, y0 + strip height) of a level of width `w`).
    void writeTileRow(const std::uint8_t* strip, std::int64_t w, std::int64_t stripRows, std::int64_t y0) {
        const int ts = opt.tileSize;
        const int c = opt.channels;
        const std::size_t tileRowBytes = sz(ts) * sz(c);
        tile.resize(tileRowBytes * sz(ts));
        for (std::int64_t x0 = 0; x0 < w; x0 += ts) {
            const std::int64_t cw = std::min<std::int64_t>(ts, w - x0);
            for (int ty = 0; ty < ts; ++ty) {
                // Padding replicates the last row/column: it compresses well and is never displayed.
                const std::int64_t sy = std::min<std::int64_t>(ty, stripRows - 1);
                const std::uint8_t* src = strip + sz((sy * w + x0) * c);
                std::uint8_t* dst = tile.data() + sz(ty) * tileRowBytes;
                std::memcpy(dst, src, sz(cw * c));
                for (std::int64_t tx = cw; tx < ts; ++tx)
                    std::memcpy(dst + tx * c, src + (cw - 1) * c, sz(c));
            }
            const ttile_t index = TIFFComputeTile(tif, static_cast<std::uint32_t>(x0), static_cast<std::uint32_t>(y0), 0, 0);
            if (TIFFWriteEncodedTile(tif, index, tile.data(), static_cast<tmsize_t>(tile.size())) < 0)
                fail("cannot write tile at (" + std::to_string(x0) + ", " + std::to_string(y0) + ")");
        }
    }

    void feed(int b, const std::uint8_t* rows, std::int64_t n) {
        Builder& bl = builders[sz(b)];
        const int c = opt.channels;
        const int f = bl.factor;
        for (std::int64_t r = 0; r < n; ++r) {
            const std::uint8_t* src = rows + sz(r * bl.parentWidth * c);
            std::uint32_t* sum = bl.sums.data();
            for (std::int64_t ox = 0; ox < bl.width; ++ox) {
                const std::int64_t xEnd = std::min<std::int64_t>(bl.parentWidth, (ox + 1) * f);
                for (std::int64_t x = ox * f; x < xEnd; ++x)
                    for (int ch = 0; ch < c; ++ch)
                        sum[ch] += src[x * c + ch];
                sum += c;
            }
            ++bl.rowsInGroup;
            ++bl.parentRowsSeen;
            if (bl.rowsInGroup == f || bl.parentRowsSeen == bl.parentHeight)
                emit(b);
        }
    }

    void emit(int b) {
        Builder& bl = builders[sz(b)];
        const int c = opt.channels;
        for (std::int64_t ox = 0; ox < bl.width; ++ox) {
            const std::int64_t cx = std::min<std::int64_t>(bl.factor, bl.parentWidth - ox * bl.factor);
            const std::uint32_t n = static_cast<std::uint32_t>(cx * bl.rowsInGroup);
            for (int ch = 0; ch < c; ++ch) {
                std::uint32_t& s = bl.sums[sz(ox * c + ch)];
                bl.row[sz(ox * c + ch)] = static_cast<std::uint8_t>((s + n / 2) / n);
                s = 0;
            }
        }
        bl.rowsInGroup = 0;
        bl.store->append(bl.row.data(), 1);
        for (int child : bl.children)
            feed(child, bl.row.data(), 1);
    }

    Image readAll(const Builder& bl) const {
        Image img(static_cast<int>(bl.width), static_cast<int>(bl.height), opt.channels);
        bl.store->read(0, bl.height, img.pixels.data());
        return img;
    }

    void writeThumbnail() {
        const auto& l0 = levels.front();
        const double scale = static_cast<double>(opt.thumbnailMaxSide) / static_cast<double>(std::max(l0.width, l0.height));
        Image src;
        if (thumbBuilder >= 0) {
            src = readAll(builders[sz(thumbBuilder)]);
        } else {
            // The smallest stored level whose longer side still reaches the thumbnail size.
            int pick = 0;
            for (std::size_t l = 1; l < levels.size(); ++l)
                if (std::max(levels[l].width, levels[l].height) >= opt.thumbnailMaxSide)
                    pick = static_cast<int>(l) - 1;
            src = readAll(builders[sz(pick)]);
        }
        int tw = src.width, th = src.height;
        if (scale < 1.0) {
            tw = std::max(1, static_cast<int>(std::lround(static_cast<double>(l0.width) * scale)));
            th = std::max(1, static_cast<int>(std::lround(static_cast<double>(l0.height) * scale)));
            tw = std::min(tw, src.width);
            th = std::min(th, src.height);
        }
        const Image thumb = (tw == src.width && th == src.height) ? src : resizeArea(src, tw, th);
        std::string desc;
        if (opt.aperio)
            desc = aperioHead() + " -> " + std::to_string(tw) + "x" + std::to_string(th) + " - " + aperioTail();
        setupDirectory(tw, th, false, false, desc);
        for (int y = 0; y < th; ++y)
            if (TIFFWriteScanline(tif, const_cast<std::uint8_t*>(thumb.row(y)), static_cast<std::uint32_t>(y), 0) != 1)
                fail("cannot write the thumbnail");
        writeDirectory();
    }
};

std::vector<PyramidLevelSize> PyramidTiffWriter::levelSizes(std::int64_t width, std::int64_t height,
                                                            const PyramidTiffOptions& options) {
    std::vector<PyramidLevelSize> out{{width, height}};
    const std::int64_t f = std::max(2, options.levelDownsample);
    while (std::min(out.back().width, out.back().height) > options.minLevelSide) {
        const auto& p = out.back();
        out.push_back({(p.width + f - 1) / f, (p.height + f - 1) / f});
    }
    return out;
}

bool PyramidTiffWriter::needsBigTiff(std::int64_t width, std::int64_t height, const PyramidTiffOptions& options) {
    double bytes = 0;
    for (const auto& l : levelSizes(width, height, options))
        bytes += static_cast<double>(l.width) * static_cast<double>(l.height) * options.channels;
    if (options.thumbnailMaxSide > 0)
        bytes += static_cast<double>(options.thumbnailMaxSide) * options.thumbnailMaxSide * options.channels;
    return bytes > 3.0 * 1024 * 1024 * 1024;
}

PyramidTiffWriter::PyramidTiffWriter(const std::filesystem::path& path, std::int64_t width, std::int64_t height,
                                     const PyramidTiffOptions& options)
    : impl_(std::make_unique<Impl>()) {
    const auto& o = options;
    if (width <= 0 || height <= 0 || width > 0xFFFFFFF0LL || height > 0xFFFFFFF0LL ||
        width > std::numeric_limits<int>::max() / 4)
        throw InvalidArgument("PyramidTiffWriter: image size " + std::to_string(width) + "x" + std::to_string(height) +
                              " is out of range");
    if (o.channels != 1 && o.channels != 3)
        throw InvalidArgument("PyramidTiffWriter: channels must be 1 or 3");
    if (o.tileSize < 16 || o.tileSize > 4096 || o.tileSize % 16 != 0)
        throw InvalidArgument("tile size must be a multiple of 16 between 16 and 4096, got " + std::to_string(o.tileSize));
    if (o.jpegQuality < 1 || o.jpegQuality > 100)
        throw InvalidArgument("JPEG quality must be in 1..100, got " + std::to_string(o.jpegQuality));
    if (o.levelDownsample != 2 && o.levelDownsample != 4)
        throw InvalidArgument("PyramidTiffWriter: level downsample must be 2 or 4");
    if (o.minLevelSide < 1)
        throw InvalidArgument("PyramidTiffWriter: minLevelSide must be positive");
    if (o.aperio && !(o.mpp > 0))
        throw InvalidArgument("PyramidTiffWriter: the Aperio layout needs mpp > 0");
    if (o.thumbnailMaxSide < 0)
        throw InvalidArgument("PyramidTiffWriter: thumbnailMaxSide must be >= 0");

    Impl& im = *impl_;
    im.path = path;
    im.opt = o;
    im.levels = levels_ = levelSizes(width, height, o);
    bigTiff_ = o.bigTiff == BigTiffMode::Always || (o.bigTiff == BigTiffMode::Auto && needsBigTiff(width, height, o));

    const auto dir = path.parent_path();
    for (std::size_t l = 1; l < levels_.size(); ++l) {
        Builder b;
        b.parent = static_cast<int>(l) - 2;
        b.factor = o.levelDownsample;
        b.parentWidth = levels_[l - 1].width;
        b.parentHeight = levels_[l - 1].height;
        b.width = levels_[l].width;
        b.height = levels_[l].height;
        const std::int64_t bytes = b.width * b.height * o.channels;
        b.store = std::make_unique<RowStore>(b.width, o.channels, b.height, bytes > o.spoolThresholdBytes, dir);
        im.builders.push_back(std::move(b));
    }
    // The thumbnail is never larger than a quarter of level 0 (Aperio's are much smaller than the image).
    im.opt.thumbnailMaxSide = static_cast<int>(
        std::min<std::int64_t>(o.thumbnailMaxSide, (std::max(width, height) + o.levelDownsample - 1) / o.levelDownsample));
    if (im.opt.thumbnailMaxSide > 0 &&
        (levels_.size() < 2 || std::max(levels_[1].width, levels_[1].height) < im.opt.thumbnailMaxSide)) {
        // No stored level is big enough: average level 0 directly (it is small in this case).
        Builder b;
        b.parent = -1;
        b.factor = static_cast<int>(std::max<std::int64_t>(
            1, (std::max(width, height) + im.opt.thumbnailMaxSide - 1) / im.opt.thumbnailMaxSide));
        b.parentWidth = width;
        b.parentHeight = height;
        b.width = (width + b.factor - 1) / b.factor;
        b.height = (height + b.factor - 1) / b.factor;
        b.store = std::make_unique<RowStore>(b.width, o.channels, b.height, false, dir);
        im.thumbBuilder = static_cast<int>(im.builders.size());
        im.builders.push_back(std::move(b));
    }
    for (std::size_t i = 0; i < im.builders.size(); ++i) {
        Builder& b = im.builders[i];
        b.sums.assign(sz(b.width * o.channels), 0);
        b.row.assign(sz(b.width * o.channels), 0);
        if (b.parent >= 0)
            im.builders[sz(b.parent)].children.push_back(static_cast<int>(i));
    }

    TIFFOpenOptions* oo = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(oo, &Impl::onError, &im);
    TIFFOpenOptionsSetWarningHandlerExtR(oo, &Impl::onWarning, &im);
    im.tif = TIFFOpenExt(path.c_str(), bigTiff_ ? "w8" : "w", oo);
    TIFFOpenOptionsFree(oo);
    if (!im.tif)
        im.fail("cannot create TIFF file");

    std::string desc = o.description;
    if (o.aperio) {
        const std::string ts = std::to_string(o.tileSize);
        desc = im.aperioHead() + " [0,0 " + std::to_string(width) + "x" + std::to_string(height) + "] (" + ts + "x" +
               ts + ") " + im.compressionText() + im.aperioTail();
    }
    im.setupDirectory(width, height, true, false, desc);
}

PyramidTiffWriter::~PyramidTiffWriter() = default;

std::int64_t PyramidTiffWriter::finishTileRows() const {
    std::int64_t n = 0;
    for (std::size_t l = 1; l < levels_.size(); ++l)
        n += (levels_[l].height + impl_->opt.tileSize - 1) / impl_->opt.tileSize;
    return n;
}

void PyramidTiffWriter::appendStrip(const Image& strip) {
    Impl& im = *impl_;
    if (!im.tif)
        throw InvalidArgument("PyramidTiffWriter: appendStrip after finish");
    const auto& l0 = levels_.front();
    const std::int64_t expected = std::min<std::int64_t>(im.opt.tileSize, l0.height - rowsWritten_);
    if (strip.width != l0.width || strip.channels != im.opt.channels || strip.height != expected)
        throw InvalidArgument("PyramidTiffWriter: expected a strip of " + std::to_string(l0.width) + "x" +
                              std::to_string(expected) + "x" + std::to_string(im.opt.channels) + ", got " +
                              std::to_string(strip.width) + "x" + std::to_string(strip.height) + "x" +
                              std::to_string(strip.channels));
    im.writeTileRow(strip.pixels.data(), l0.width, strip.height, rowsWritten_);
    for (std::size_t b = 0; b < im.builders.size(); ++b)
        if (im.builders[b].parent == -1)
            im.feed(static_cast<int>(b), strip.pixels.data(), strip.height);
    rowsWritten_ += strip.height;
}

void PyramidTiffWriter::finish(const RowCallback& onRow) {
    Impl& im = *impl_;
    if (!im.tif)
        throw InvalidArgument("PyramidTiffWriter: finish called twice");
    if (rowsWritten_ != levels_.front().height)
        throw InvalidArgument("PyramidTiffWriter: finish after " + std::to_string(rowsWritten_) + " of " +
                              std::to_string(levels_.front().height) + " rows");
    im.writeDirectory();
    if (im.opt.thumbnailMaxSide > 0)
        im.writeThumbnail();

    const int ts = im.opt.tileSize;
    const int c = im.opt.channels;
    const std::int64_t total = finishTileRows();
    std::int64_t done = 0;
    std::vector<std::uint8_t> strip;
    for (std::size_t l = 1; l < levels_.size(); ++l) {
        const Builder& b = im.builders[l - 1];
        if (b.store->rows() != b.height)
            im.fail("internal error: level " + std::to_string(l) + " has " + std::to_string(b.store->rows()) +
                    " rows instead of " + std::to_string(b.height));
        std::string desc;
        if (im.opt.aperio)
            desc = im.aperioHead() + " [0,0 " + std::to_string(levels_[0].width) + "x" + std::to_string(levels_[0].height) +
                   "] (" + std::to_string(ts) + "x" + std::to_string(ts) + ") -> " + std::to_string(b.width) + "x" +
                   std::to_string(b.height) + " " + im.compressionText();
        im.setupDirectory(b.width, b.height, true, true, desc);
        for (std::int64_t y0 = 0; y0 < b.height; y0 += ts) {
            const std::int64_t rows = std::min<std::int64_t>(ts, b.height - y0);
            strip.resize(sz(rows * b.width * c));
            b.store->read(y0, rows, strip.data());
            im.writeTileRow(strip.data(), b.width, rows, y0);
            ++done;
            if (onRow)
                onRow(done, total);
        }
        im.writeDirectory();
    }
    TIFFClose(im.tif);
    im.tif = nullptr;
    im.builders.clear(); // releases the spool files
}

} // namespace nic

#include "core/slide/jpegtiles.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <list>
#include <mutex>
#include <unistd.h>
#include <unordered_map>

#include <jpeglib.h>
#include <tiffio.h>

namespace nic {

namespace {

/// Tiles larger than this, or encoded in more bytes than this, are left to OpenSlide.
constexpr std::int64_t kMaxTileSide = 8192;
constexpr std::uint64_t kMaxTileBytes = std::uint64_t{64} << 20;

struct Level {
    bool usable = false;
    std::int64_t width = 0, height = 0;
    std::int64_t tileWidth = 0, tileHeight = 0;
    std::int64_t across = 0, down = 0;
    bool rgbJpeg = false; ///< Photometric RGB: the JPEG data are RGB, not YCbCr
    std::vector<std::uint64_t> offsets, byteCounts;
    std::vector<unsigned char> tables; ///< JPEGTables, empty when the tiles carry their own
};

struct TiffCloser {
    void operator()(TIFF* t) const {
        if (t)
            TIFFClose(t);
    }
};

int quietTiffMessage(TIFF*, void*, const char*, const char*, va_list) {
    return 1; // handled: libtiff prints nothing; a file we cannot use is simply left to OpenSlide
}

/// The directory's layout when it is one this reader decodes exactly as OpenSlide does.
bool readDirectory(TIFF* tif, Level& out) {
    if (!TIFFIsTiled(tif))
        return false;
    std::uint32_t w = 0, h = 0, tw = 0, th = 0;
    std::uint16_t compression = 0, bits = 0, samples = 0, planar = PLANARCONFIG_CONTIG, photometric = 0;
    if (TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) != 1 || TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h) != 1 ||
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) != 1 || TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) != 1 ||
        TIFFGetField(tif, TIFFTAG_COMPRESSION, &compression) != 1 ||
        TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric) != 1)
        return false;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    if (compression != COMPRESSION_JPEG || bits != 8 || samples != 3 || planar != PLANARCONFIG_CONTIG ||
        (photometric != PHOTOMETRIC_YCBCR && photometric != PHOTOMETRIC_RGB))
        return false;
    if (w == 0 || h == 0 || tw == 0 || th == 0 || tw > kMaxTileSide || th > kMaxTileSide)
        return false;
    out.width = w;
    out.height = h;
    out.tileWidth = tw;
    out.tileHeight = th;
    out.across = (out.width + tw - 1) / tw;
    out.down = (out.height + th - 1) / th;
    const auto tiles = static_cast<std::uint64_t>(out.across) * static_cast<std::uint64_t>(out.down);
    if (TIFFNumberOfTiles(tif) != tiles)
        return false;
    std::uint64_t* offsets = nullptr;
    std::uint64_t* counts = nullptr;
    if (TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &offsets) != 1 || TIFFGetField(tif, TIFFTAG_TILEBYTECOUNTS, &counts) != 1 ||
        !offsets || !counts)
        return false;
    out.offsets.assign(offsets, offsets + tiles);
    out.byteCounts.assign(counts, counts + tiles);
    std::uint32_t tableBytes = 0;
    void* tables = nullptr;
    if (TIFFGetField(tif, TIFFTAG_JPEGTABLES, &tableBytes, &tables) == 1 && tables && tableBytes > 0) {
        const auto* p = static_cast<const unsigned char*>(tables);
        out.tables.assign(p, p + tableBytes);
    }
    out.rgbJpeg = photometric == PHOTOMETRIC_RGB;
    out.usable = true;
    return true;
}

struct JpegError {
    jpeg_error_mgr mgr;
    std::jmp_buf jump;
};

[[noreturn]] void jpegFail(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1); }

/// Decodes one tile into tileWidth × tileHeight RGB bytes as OpenSlide 3.4 does (libjpeg's defaults,
/// RGB output; the abbreviated tables first when the directory has JPEGTables). False on any error,
/// including a decoded size other than the tile size.
bool decodeTile(const Level& level, const std::vector<unsigned char>& data, std::vector<std::uint8_t>& rgb) {
    jpeg_decompress_struct cinfo;
    JpegError err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpegFail;
    err.mgr.output_message = [](j_common_ptr) {};
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    if (!level.tables.empty()) {
        jpeg_mem_src(&cinfo, level.tables.data(), static_cast<unsigned long>(level.tables.size()));
        if (jpeg_read_header(&cinfo, FALSE) != JPEG_HEADER_TABLES_ONLY) {
            jpeg_destroy_decompress(&cinfo);
            return false;
        }
    }
    jpeg_mem_src(&cinfo, data.data(), static_cast<unsigned long>(data.size()));
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK || cinfo.num_components != 3 ||
        static_cast<std::int64_t>(cinfo.image_width) != level.tileWidth ||
        static_cast<std::int64_t>(cinfo.image_height) != level.tileHeight) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    cinfo.jpeg_color_space = level.rgbJpeg ? JCS_RGB : JCS_YCbCr; // from Photometric, as OpenSlide does
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const auto stride = static_cast<std::size_t>(level.tileWidth) * 3U;
    rgb.resize(stride * static_cast<std::size_t>(level.tileHeight));
    // Several rows a call (up to an iMCU row, 16 with 2 × 2 chroma subsampling) instead of one: 16 times fewer passes
    // through libjpeg's output machinery per tile (about 5 % less CPU per patch in bench_slideread).
    constexpr int kRows = 16;
    JSAMPROW rows[kRows];
    while (cinfo.output_scanline < cinfo.output_height) {
        const auto first = cinfo.output_scanline;
        const auto count = std::min<JDIMENSION>(kRows, cinfo.output_height - first);
        for (JDIMENSION i = 0; i < count; ++i)
            rows[i] = rgb.data() + (first + i) * stride;
        if (jpeg_read_scanlines(&cinfo, rows, count) == 0) { // data ended early (libjpeg would pad with grey)
            jpeg_destroy_decompress(&cinfo);
            return false;
        }
    }
    const bool warned = err.mgr.num_warnings > 0; // e.g. premature end of data: OpenSlide's decode fails too
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return !warned;
}

} // namespace

struct JpegTileReader::Impl {
    int fd = -1;
    std::vector<Level> levels;
    std::size_t cacheBytes = 0;

    using Tile = std::shared_ptr<const std::vector<std::uint8_t>>;
    struct Key {
        int level;
        std::int64_t index;
        bool operator==(const Key& o) const { return level == o.level && index == o.index; }
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const {
            return std::hash<std::int64_t>()(k.index * 64 + k.level);
        }
    };
    mutable std::mutex mutex;
    mutable std::list<std::pair<Key, Tile>> lru; ///< most recently used first
    mutable std::unordered_map<Key, std::list<std::pair<Key, Tile>>::iterator, KeyHash> index;
    mutable std::size_t cached = 0;
    mutable std::int64_t decoded = 0;
    /// Buffers of tiles that nobody holds any more (out of the cache, no reader copying from them), for the next
    /// decodes: a tile decoded into one of the same size is neither allocated nor cleared first (clearing fresh
    /// buffers, with their page faults, was 15 % of a patch's read in bench_compress's profile, tiles and patches). A tile's last
    /// owner hands its buffer back through the tile's deleter, so a buffer is reused only after every read of it.
    mutable std::mutex spareMutex; ///< taken alone, or inside `mutex` (an eviction), never the other way round
    mutable std::vector<std::unique_ptr<std::vector<std::uint8_t>>> spares;
    static constexpr std::size_t kMaxSpares = 4;

    ~Impl() {
        index.clear();
        lru.clear(); // the tiles' deleters use spareMutex and spares: still alive here
        if (fd >= 0)
            ::close(fd);
    }

    struct Recycle {
        const Impl* impl;
        void operator()(std::vector<std::uint8_t>* buffer) const {
            std::unique_ptr<std::vector<std::uint8_t>> owned(buffer);
            std::lock_guard lock(impl->spareMutex);
            if (impl->spares.size() < kMaxSpares)
                impl->spares.push_back(std::move(owned));
        }
    };

    Tile lookup(const Key& k) const {
        std::lock_guard lock(mutex);
        auto it = index.find(k);
        if (it == index.end())
            return nullptr;
        lru.splice(lru.begin(), lru, it->second);
        return it->second->second;
    }

    void insert(const Key& k, Tile tile) const {
        std::lock_guard lock(mutex);
        ++decoded;
        if (index.count(k))
            return; // another thread decoded it meanwhile
        cached += tile->size();
        lru.emplace_front(k, std::move(tile));
        index[k] = lru.begin();
        while (cached > cacheBytes && lru.size() > 1) {
            cached -= lru.back().second->size();
            index.erase(lru.back().first);
            lru.pop_back();
        }
    }

    /// A buffer for the next decoded tile: a spare when there is one.
    std::unique_ptr<std::vector<std::uint8_t>> buffer() const {
        {
            std::lock_guard lock(spareMutex);
            if (!spares.empty()) {
                auto spare = std::move(spares.back());
                spares.pop_back();
                return spare;
            }
        }
        return std::make_unique<std::vector<std::uint8_t>>();
    }

    /// The decoded tile, from the cache or the file; nullptr when it cannot be read.
    Tile tile(int levelIndex, std::int64_t tx, std::int64_t ty) const {
        const Level& level = levels[static_cast<std::size_t>(levelIndex)];
        const std::int64_t i = ty * level.across + tx;
        const Key key{levelIndex, i};
        if (Tile t = lookup(key))
            return t;
        const std::uint64_t count = level.byteCounts[static_cast<std::size_t>(i)];
        const std::uint64_t offset = level.offsets[static_cast<std::size_t>(i)];
        if (count == 0 || count > kMaxTileBytes || offset > static_cast<std::uint64_t>(INT64_MAX) - count)
            return nullptr; // a missing tile (OpenSlide's business) or a hostile size
        std::vector<unsigned char> data(static_cast<std::size_t>(count));
        std::size_t got = 0;
        while (got < data.size()) {
            const ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(offset + got));
            if (n <= 0)
                return nullptr; // truncated file or I/O error
            got += static_cast<std::size_t>(n);
        }
        auto rgb = buffer();
        if (!decodeTile(level, data, *rgb))
            return nullptr;
        Tile decodedTile(rgb.release(), Recycle{this});
        insert(key, decodedTile);
        return decodedTile;
    }
};

JpegTileReader::JpegTileReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JpegTileReader::~JpegTileReader() = default;

std::unique_ptr<JpegTileReader> JpegTileReader::open(const std::filesystem::path& path,
                                                     const std::vector<JpegTileLevelSpec>& specs, std::string& why,
                                                     std::size_t cacheBytes) {
    TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options, quietTiffMessage, nullptr);
    TIFFOpenOptionsSetWarningHandlerExtR(options, quietTiffMessage, nullptr);
    std::unique_ptr<TIFF, TiffCloser> tif(TIFFOpenExt(path.c_str(), "r", options));
    TIFFOpenOptionsFree(options);
    if (!tif) {
        why = "not a TIFF file libtiff can open";
        return nullptr;
    }
    std::vector<Level> directories;
    constexpr int kMaxDirectories = 64;
    for (int d = 0; d < kMaxDirectories; ++d) {
        Level level;
        if (readDirectory(tif.get(), level))
            directories.push_back(std::move(level));
        if (!TIFFReadDirectory(tif.get()))
            break;
    }
    auto impl = std::make_unique<Impl>();
    impl->cacheBytes = cacheBytes;
    impl->levels.resize(specs.size());
    int matched = 0;
    for (std::size_t l = 0; l < specs.size(); ++l) {
        const JpegTileLevelSpec& s = specs[l];
        const Level* match = nullptr;
        int candidates = 0;
        for (const Level& d : directories)
            if (d.width == s.width && d.height == s.height && (s.tileWidth <= 0 || d.tileWidth == s.tileWidth) &&
                (s.tileHeight <= 0 || d.tileHeight == s.tileHeight)) {
                match = &d;
                ++candidates;
            }
        if (candidates == 1) { // two directories of one size: which one OpenSlide reads is not ours to guess
            impl->levels[l] = *match;
            ++matched;
        }
    }
    // OpenSlide paints an Aperio tile of zero bytes from the level above it, and the tiles under it in
    // every smaller level the same way, instead of decoding them: from the first level with such a tile,
    // or one this reader does not know the tiles of, every level is OpenSlide's.
    for (std::size_t l = 0; l < impl->levels.size(); ++l) {
        const auto& counts = impl->levels[l].byteCounts;
        const bool holes = std::find(counts.begin(), counts.end(), std::uint64_t{0}) != counts.end();
        if (holes || !impl->levels[l].usable) {
            for (std::size_t k = l; k < impl->levels.size(); ++k)
                if (impl->levels[k].usable) {
                    impl->levels[k].usable = false;
                    --matched;
                }
            break;
        }
    }
    if (matched == 0) {
        why = "no level is a tiled 8-bit RGB JPEG TIFF directory";
        return nullptr;
    }
    impl->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (impl->fd < 0) {
        why = std::string("cannot open: ") + std::strerror(errno);
        return nullptr;
    }
    return std::unique_ptr<JpegTileReader>(new JpegTileReader(std::move(impl)));
}

bool JpegTileReader::hasLevel(int level) const {
    return level >= 0 && static_cast<std::size_t>(level) < impl_->levels.size() &&
           impl_->levels[static_cast<std::size_t>(level)].usable;
}

std::int64_t JpegTileReader::tilesDecoded() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->decoded;
}

bool JpegTileReader::read(int levelIndex, std::int64_t x, std::int64_t y, int w, int h, std::uint8_t* rgb) const {
    if (!hasLevel(levelIndex) || w <= 0 || h <= 0)
        return false;
    const Level& level = impl_->levels[static_cast<std::size_t>(levelIndex)];
    const auto stride = static_cast<std::size_t>(w) * 3U;
    // The part of the region inside the level; the rest is white (transparent in OpenSlide).
    const std::int64_t x0 = std::max<std::int64_t>(x, 0), y0 = std::max<std::int64_t>(y, 0);
    const std::int64_t x1 = std::min<std::int64_t>(x + w, level.width), y1 = std::min<std::int64_t>(y + h, level.height);
    if (x0 >= x1 || y0 >= y1) {
        std::memset(rgb, 255, stride * static_cast<std::size_t>(h));
        return true;
    }
    if (x0 > x || y0 > y || x1 < x + w || y1 < y + h)
        std::memset(rgb, 255, stride * static_cast<std::size_t>(h));
    for (std::int64_t ty = y0 / level.tileHeight; ty * level.tileHeight < y1; ++ty)
        for (std::int64_t tx = x0 / level.tileWidth; tx * level.tileWidth < x1; ++tx) {
            const auto tile = impl_->tile(levelIndex, tx, ty);
            if (!tile)
                return false;
            // The tile's overlap with the region, in level coordinates.
            const std::int64_t ox0 = std::max(x0, tx * level.tileWidth), ox1 = std::min(x1, (tx + 1) * level.tileWidth);
            const std::int64_t oy0 = std::max(y0, ty * level.tileHeight), oy1 = std::min(y1, (ty + 1) * level.tileHeight);
            const auto bytes = static_cast<std::size_t>(ox1 - ox0) * 3U;
            for (std::int64_t py = oy0; py < oy1; ++py) {
                const std::uint8_t* src = tile->data() + (static_cast<std::size_t>(py - ty * level.tileHeight) *
                                                              static_cast<std::size_t>(level.tileWidth) +
                                                          static_cast<std::size_t>(ox0 - tx * level.tileWidth)) *
                                                             3U;
                std::memcpy(rgb + static_cast<std::size_t>(py - y) * stride + static_cast<std::size_t>(ox0 - x) * 3U, src,
                            bytes);
            }
        }
    return true;
}

} // namespace nic

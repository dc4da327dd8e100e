// Fuzzes the direct JPEG tile reader (core/slide/jpegtiles.h), the fast path Slide::readRegion takes on
// tiled JPEG TIFF levels: our own code reads the file's TIFF directories, tile offsets and byte counts and
// feeds the tiles to libjpeg. The input is a small header, then the file:
//   byte 0        number of levels, 1 + (byte % 3)
//   8 per level   width, height, tile width, tile height as OpenSlide would report them (uint16, little
//                 endian; a tile side of 0 means unknown)
//   the rest      the TIFF file, written to a scratch file
// Contract: open() returns a reader or nullptr with a reason; read() returns true or false, never crashes
// or hangs, and whatever it reports as read is white outside the level. NIC_FUZZ_VERBOSE=1 prints which
// levels an input opened and which reads failed (to check that seeds reach the decoder).
// Only the reader is fuzzed here: OpenSlide, which opens the slide first in the applications, is not.
#include "core/slide/jpegtiles.h"
#include "fuzz/fuzzsupport.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

std::uint16_t u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

/// NIC_FUZZ_VERBOSE is set (read once).
bool verbose() {
    static const bool on = std::getenv("NIC_FUZZ_VERBOSE") != nullptr;
    return on;
}

/// Reads the w × h region at (x, y) of `level` and checks that a successful read left every pixel outside
/// the level white.
void readAndCheck(const nic::JpegTileReader& reader, int level, const nic::JpegTileLevelSpec& spec, std::int64_t x,
                  std::int64_t y, int w, int h) {
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3U, 7);
    if (!reader.read(level, x, y, w, h, rgb.data())) {
        if (verbose())
            std::fprintf(stderr, "read of level %d at %lld,%lld failed\n", level, static_cast<long long>(x),
                         static_cast<long long>(y));
        return;
    }
    for (int j = 0; j < h; ++j)
        for (int i = 0; i < w; ++i) {
            const std::int64_t px = x + i, py = y + j;
            if (px >= 0 && py >= 0 && px < spec.width && py < spec.height)
                continue;
            const std::uint8_t* p = rgb.data() + (static_cast<std::size_t>(j) * static_cast<std::size_t>(w) +
                                                  static_cast<std::size_t>(i)) * 3U;
            if (p[0] != 255 || p[1] != 255 || p[2] != 255)
                nic::fuzz::fail("a pixel outside the level is not white",
                                "level " + std::to_string(level) + " pixel " + std::to_string(px) + "," +
                                    std::to_string(py));
        }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1)
        return 0;
    const int levels = 1 + data[0] % 3;
    const std::size_t header = 1 + 8 * static_cast<std::size_t>(levels);
    if (size < header)
        return 0;
    std::vector<nic::JpegTileLevelSpec> specs;
    for (int l = 0; l < levels; ++l) {
        const std::uint8_t* p = data + 1 + 8 * l;
        specs.push_back({u16(p), u16(p + 2), u16(p + 4), u16(p + 6)});
    }
    const auto& path = nic::fuzz::writeScratchFile(data + header, size - header, ".svs");
    std::string why;
    const auto reader = nic::JpegTileReader::open(path, specs, why, std::size_t{4} << 20);
    if (!reader) {
        if (verbose())
            std::fprintf(stderr, "declined: %s\n", why.c_str());
        if (why.empty())
            nic::fuzz::fail("open() declined without a reason", path.string());
        return 0;
    }
    if (verbose())
        std::fprintf(stderr, "opened; levels read here: %d %d %d\n", reader->hasLevel(0) ? 1 : 0,
                     reader->hasLevel(1) ? 1 : 0, reader->hasLevel(2) ? 1 : 0);
    if (reader->hasLevel(-1) || reader->hasLevel(levels))
        nic::fuzz::fail("hasLevel() is true for a level that does not exist", std::to_string(levels));
    std::vector<std::uint8_t> one(3);
    if (reader->read(levels, 0, 0, 1, 1, one.data()))
        nic::fuzz::fail("read() of a level that does not exist succeeded", std::to_string(levels));
    for (int l = 0; l < levels; ++l) {
        if (!reader->hasLevel(l))
            continue;
        const auto& s = specs[static_cast<std::size_t>(l)];
        const int w = static_cast<int>(std::min<std::int64_t>(s.width, 300));
        const int h = static_cast<int>(std::min<std::int64_t>(s.height, 300));
        readAndCheck(*reader, l, s, 0, 0, w, h);                       // the top-left corner
        readAndCheck(*reader, l, s, s.width - 40, s.height - 40, 80, 80); // across the bottom-right edge
        readAndCheck(*reader, l, s, -20, -20, 40, 40);                 // before the level
        readAndCheck(*reader, l, s, s.width + 5, 0, 16, 16);           // beside it: all white
    }
    return 0;
}

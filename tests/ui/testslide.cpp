#include "testslide.h"

#include <tiffio.h>
#include <zlib.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace nic::test {

std::array<std::uint8_t, 3> testSlideColor(const TestSlideGeometry& g, double x, double y) {
    if (x >= g.blueX0 && x < g.blueX1 && y >= g.blueY0 && y < g.blueY1)
        return kBlue;
    if (x >= g.tissueX0 && x < g.tissueX1 && y >= g.tissueY0 && y < g.tissueY1)
        return kTissue;
    return kGlass;
}

void writeTestSlide(const std::filesystem::path& path, const TestSlideGeometry& g) {
    std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "w"), TIFFClose);
    if (!tif)
        throw std::runtime_error("cannot create " + path.string());
    constexpr int kTile = 256;
    for (int level = 0; level < g.levels; ++level) {
        const int ds = 1 << level;
        const int w = g.width / ds;
        const int h = g.height / ds;
        TIFF* t = tif.get();
        if (level > 0)
            TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        TIFFSetField(t, TIFFTAG_TILEWIDTH, kTile);
        TIFFSetField(t, TIFFTAG_TILELENGTH, kTile);
        if (g.mpp > 0) {
            TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
            TIFFSetField(t, TIFFTAG_XRESOLUTION, static_cast<float>(10000.0 / (g.mpp * ds)));
            TIFFSetField(t, TIFFTAG_YRESOLUTION, static_cast<float>(10000.0 / (g.mpp * ds)));
        }
        std::vector<std::uint8_t> tile(kTile * kTile * 3);
        // Tiles of glass only (most of a huge slide) are one deflate stream, compressed once and
        // written raw: a 100k × 100k slide then takes seconds, not the minutes of compressing each.
        std::vector<std::uint8_t> glassTile(kTile * kTile * 3);
        for (std::size_t i = 0; i < glassTile.size(); i += 3)
            std::copy(kGlass.begin(), kGlass.end(), glassTile.begin() + static_cast<std::ptrdiff_t>(i));
        uLongf glassBytes = compressBound(static_cast<uLong>(glassTile.size()));
        std::vector<std::uint8_t> glassDeflated(glassBytes);
        if (compress2(glassDeflated.data(), &glassBytes, glassTile.data(), static_cast<uLong>(glassTile.size()), 6) != Z_OK)
            throw std::runtime_error("cannot compress a glass tile for " + path.string());
        auto onlyGlass = [&](int tx, int ty) {
            const double x0 = static_cast<double>(tx) * ds, x1 = static_cast<double>(tx + kTile) * ds;
            const double y0 = static_cast<double>(ty) * ds, y1 = static_cast<double>(ty + kTile) * ds;
            auto disjoint = [&](int rx0, int ry0, int rx1, int ry1) { return x1 <= rx0 || x0 >= rx1 || y1 <= ry0 || y0 >= ry1; };
            return disjoint(g.tissueX0, g.tissueY0, g.tissueX1, g.tissueY1) && disjoint(g.blueX0, g.blueY0, g.blueX1, g.blueY1);
        };
        for (int ty = 0; ty < h; ty += kTile)
            for (int tx = 0; tx < w; tx += kTile) {
                if (onlyGlass(tx, ty)) {
                    if (TIFFWriteRawTile(t, TIFFComputeTile(t, static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, 0),
                                         glassDeflated.data(), static_cast<tmsize_t>(glassBytes)) < 0)
                        throw std::runtime_error("cannot write a tile to " + path.string());
                    continue;
                }
                for (int y = 0; y < kTile; ++y)
                    for (int x = 0; x < kTile; ++x) {
                        const auto c = testSlideColor(g, (tx + x + 0.5) * ds, (ty + y + 0.5) * ds);
                        std::copy(c.begin(), c.end(), tile.begin() + (y * kTile + x) * 3);
                    }
                if (TIFFWriteTile(t, tile.data(), static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, 0) < 0)
                    throw std::runtime_error("cannot write a tile to " + path.string());
            }
        if (!TIFFWriteDirectory(t))
            throw std::runtime_error("cannot write a directory to " + path.string());
    }
}

} // namespace nic::test

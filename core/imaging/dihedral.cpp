#include "core/imaging/dihedral.h"

#include "core/base/error.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace nic {

void checkDihedralIndex(int k) {
    if (k < 0 || k > 7)
        throw InvalidArgument("dihedral transform index " + std::to_string(k) + " is not in 0..7");
}

DihedralAffine dihedralAffine(int k, int rows, int cols) {
    const auto o = dihedralMap(k, 0, 0, rows, cols);
    // dihedralMap is affine, so differences from the origin give the coefficients; use a 2×2 array
    // when the input is a single row/column so that the differences are defined.
    const int rr2 = std::max(rows, 2), cc2 = std::max(cols, 2);
    const auto o2 = dihedralMap(k, 0, 0, rr2, cc2);
    const auto dr = dihedralMap(k, 1, 0, rr2, cc2);
    const auto dc = dihedralMap(k, 0, 1, rr2, cc2);
    return {o.first, dr.first - o2.first, dc.first - o2.first, o.second, dr.second - o2.second, dc.second - o2.second};
}

std::pair<int, int> dihedralShape(int k, int rows, int cols) {
    checkDihedralIndex(k);
    return (k % 4) % 2 == 1 ? std::pair{cols, rows} : std::pair{rows, cols};
}

std::pair<int, int> dihedralMap(int k, int row, int col, int rows, int cols) {
    checkDihedralIndex(k);
    int r = row, c = col, nr = rows, nc = cols;
    if (k >= 4)
        c = nc - 1 - c; // np.fliplr
    for (int i = 0; i < k % 4; ++i) {
        // np.rot90 (counter-clockwise): out[i, j] = in[j, nc-1-i], so in (r, c) → out (nc-1-c, r).
        const int r2 = nc - 1 - c;
        c = r;
        r = r2;
        std::swap(nr, nc);
    }
    return {r, c};
}

const char* dihedralName(int k) {
    static const char* names[8] = {"identity", "rot90",        "rot180",        "rot270",
                                   "mirror",   "mirror+rot90", "mirror+rot180", "mirror+rot270"};
    checkDihedralIndex(k);
    return names[k];
}

Image dihedralTransform(const Image& image, int k) {
    const auto [h2, w2] = dihedralShape(k, image.height, image.width);
    Image out(w2, h2, image.channels);
    if (image.empty())
        return out;
    const DihedralAffine a = dihedralAffine(k, image.height, image.width);
    const auto ch = static_cast<std::size_t>(image.channels);
    for (int y = 0; y < image.height; ++y)
        for (int x = 0; x < image.width; ++x) {
            const int y2 = a.r0 + a.rr * y + a.rc * x;
            const int x2 = a.c0 + a.cr * y + a.cc * x;
            std::memcpy(out.at(x2, y2), image.at(x, y), ch);
        }
    return out;
}

void dihedralTransformPatch(const std::uint8_t* in, std::uint8_t* out, int patchSize, int k) {
    const DihedralAffine a = dihedralAffine(k, patchSize, patchSize);
    const auto p = static_cast<std::size_t>(patchSize);
    for (int y = 0; y < patchSize; ++y) {
        const std::uint8_t* src = in + static_cast<std::size_t>(y) * p * 3U;
        for (int x = 0; x < patchSize; ++x, src += 3) {
            const auto y2 = static_cast<std::size_t>(a.r0 + a.rr * y + a.rc * x);
            const auto x2 = static_cast<std::size_t>(a.c0 + a.cr * y + a.cc * x);
            std::uint8_t* dst = out + (y2 * p + x2) * 3U;
            dst[0] = src[0];
            dst[1] = src[1];
            dst[2] = src[2];
        }
    }
}

void dihedralTransformPatches(const std::uint8_t* in, std::uint8_t* out, int count, int patchSize, int k) {
    checkDihedralIndex(k);
    const std::size_t patchBytes = static_cast<std::size_t>(patchSize) * static_cast<std::size_t>(patchSize) * 3U;
    if (k == 0) {
        if (count > 0)
            std::memcpy(out, in, patchBytes * static_cast<std::size_t>(count));
        return;
    }
    for (int n = 0; n < count; ++n)
        dihedralTransformPatch(in + static_cast<std::size_t>(n) * patchBytes,
                               out + static_cast<std::size_t>(n) * patchBytes, patchSize, k);
}

} // namespace nic

#pragma once
// The 8 dihedral transforms (paper §3.2): of patches before encoding, and of latent grids (cell positions).
// Variant k = r + 4·m (k = 0..7): m = 1 first mirrors left-right (columns reversed), then the array is
// rotated r × 90° counter-clockwise, exactly numpy's np.rot90(np.fliplr(x) if m else x, r) on an
// array indexed [row, col, ...]. k = 0 is the identity; odd r swaps the array's height and width.
#include "core/imaging/image.h"

#include <cstdint>
#include <utility>

namespace nic {

/// Throws InvalidArgument unless 0 ≤ k ≤ 7.
void checkDihedralIndex(int k);

/// Shape (rows, cols) of a rows × cols array after transform k.
std::pair<int, int> dihedralShape(int k, int rows, int cols);
/// Where element (row, col) of a rows × cols array lands after transform k, as (row', col').
std::pair<int, int> dihedralMap(int k, int row, int col, int rows, int cols);

/// Transform k of a rows × cols array as an affine map of (row, col): row' = r0 + rr·row + rc·col,
/// col' = c0 + cr·row + cc·col. The 2 × 2 part is a signed permutation matrix, so its inverse is its transpose:
/// row = rr·(row' − r0) + cr·(col' − c0), col = rc·(row' − r0) + cc·(col' − c0).
struct DihedralAffine {
    int r0, rr, rc, c0, cr, cc;
};
DihedralAffine dihedralAffine(int k, int rows, int cols);

/// Transform k of an image (any channel count).
Image dihedralTransform(const Image& image, int k);
/// Transform k of a square P × P × 3 uint8 patch, `in` → `out` (distinct buffers).
void dihedralTransformPatch(const std::uint8_t* in, std::uint8_t* out, int patchSize, int k);
/// Transform k of `count` consecutive P × P × 3 patches, `in` → `out` (distinct buffers; k = 0 copies them).
void dihedralTransformPatches(const std::uint8_t* in, std::uint8_t* out, int count, int patchSize, int k);
/// Human-readable name of transform k ("identity", "rot90", ..., "mirror+rot270").
const char* dihedralName(int k);

} // namespace nic

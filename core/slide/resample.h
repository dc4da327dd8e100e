#pragma once
// Image resampling used by slides, tissue detection and patch extraction.
#include "core/imaging/image.h"

namespace nic {

/// Area-average (box filter) resampling of a 1- or 3-channel image to (w, h); each output pixel is
/// the exact area-weighted mean of the input pixels it covers. Use for downsampling.
Image resizeArea(const Image& src, int w, int h);

/// Bilinear resampling (pixel centres aligned); use for upsampling or factors close to 1.
Image resizeBilinear(const Image& src, int w, int h);

/// Chooses resizeArea when shrinking in both directions, resizeBilinear otherwise.
Image resize(const Image& src, int w, int h);

} // namespace nic

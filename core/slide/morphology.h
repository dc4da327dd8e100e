#pragma once
// Small raster operations behind tissue detection: median blur, Otsu's threshold, binary closing,
// connected components, removal of small objects and filling of small holes.
//
// All functions are pure (no state, no I/O) and thread-safe. Binary masks are 1-channel nic::Image
// with 0 = background and any non-zero value = foreground; masks returned are strictly 0/255.
// Functions throw InvalidArgument for empty inputs, wrong channel counts or bad kernel sizes.
#include "core/imaging/image.h"

#include <array>
#include <cstdint>
#include <vector>

namespace nic {

/// Median filter with a ksize × ksize square window, per channel (1 or 3 channels), borders
/// replicated (like OpenCV's medianBlur). `ksize` must be odd and ≥ 1; 1 returns a copy.
/// Cost is O(ksize) per pixel (Huang's sliding histogram).
Image medianBlur(const Image& src, int ksize);

/// Histogram of a 1-channel image.
std::array<std::uint64_t, 256> histogram(const Image& gray);

/// Otsu's threshold: the t in [0, 255] maximising the between-class variance of the classes
/// {v ≤ t} and {v > t}, so foreground is `value > t` (OpenCV's THRESH_BINARY convention). When several
/// t tie (an empty range between two modes), the middle of the tied range is returned. A constant
/// (or empty) histogram returns its single value (or 0).
int otsuThreshold(const std::array<std::uint64_t, 256>& hist);

/// `value > threshold` → 255, else 0 (1-channel input).
Image thresholdAbove(const Image& gray, int threshold);

/// Binary dilation / erosion with a ksize × ksize square (ksize odd ≥ 1, centred). Pixels outside the
/// image count as background for dilation and as foreground for erosion, so neither operation
/// creates or erodes anything at the image border by itself.
Image dilate(const Image& mask, int ksize);
Image erode(const Image& mask, int ksize);
/// Closing = dilate then erode with a ksize × ksize square: bridges gaps and fills notches narrower
/// than ksize. The image is treated as embedded in background (exact closing), so an object near the
/// border is not extended to it.
Image binaryClose(const Image& mask, int ksize);

/// Connected components of the foreground of a binary mask.
struct Components {
    int count = 0;                        ///< number of components; labels are 1..count
    std::vector<std::int32_t> labels;     ///< per pixel, row-major; 0 = not in any component
    std::vector<std::int64_t> areas;      ///< pixels per component, index = label (areas[0] unused)
    std::vector<bool> touchesBorder;      ///< whether the component touches the image edge, index = label
};
/// Labels the non-zero pixels with 4- or 8-connectivity (`connectivity` 4 or 8).
Components connectedComponents(const Image& mask, int connectivity = 8);

/// Removes foreground components (8-connected) with fewer than `minArea` pixels. Components that touch
/// the image border are kept whatever their size when `keepBorderObjects` is true: their true extent
/// lies partly outside the image and is unknown.
Image removeSmallObjects(const Image& mask, std::int64_t minArea, bool keepBorderObjects = true);

/// Fills holes (background components, 4-connected, not touching the border) with fewer than
/// `maxArea` pixels. Background touching the border is never a hole.
Image fillSmallHoles(const Image& mask, std::int64_t maxArea);

/// Fraction of non-zero pixels of a 1-channel image (0 for an empty image).
double foregroundFraction(const Image& mask);

} // namespace nic

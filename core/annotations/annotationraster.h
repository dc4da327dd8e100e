#pragma once
// Rasterisation of ASAP annotations (annotation.h) into masks and per-cell coverage fractions, e.g.
// to label the patch grid of a slide with its Camelyon tumour outlines.
//
// Which annotations take part: those whose type is an area (Polygon, Spline, Rectangle) and whose
// group is selected. An empty `groups` list selects every area annotation, grouped or not; otherwise
// an annotation takes part if its group is one of `groups` or nested (at any depth) inside one of
// them. Names that no annotation uses simply select nothing.
//
// Geometry: a Polygon is its vertex ring (closed implicitly); a Spline is taken as its control
// polygon; a Rectangle is its vertex ring, or the axis-aligned box spanned by two opposite corners
// when it has exactly two vertices. Rings with fewer than 3 vertices cover nothing. Within one
// annotation the even-odd rule applies (a self-overlapping ring has holes); across annotations the
// union is taken. A sample point at (sx, sy) in level-0 pixels is inside when the horizontal line
// through it crosses the ring an odd number of times to its left, using half-open edges, so two
// annotations sharing an edge never both cover, nor both miss, the samples on it.
//
// Both functions are pure (thread-safe on a shared const AnnotationSet) and run a scanline fill over
// sorted edge lists: the cost grows with rows × edges crossing a row plus the covered span count, not
// with pixels × vertices.
#include "core/annotations/annotation.h"
#include "core/imaging/image.h"

#include <string>
#include <vector>

namespace nic {

/// Renders the selected annotations into a 1-channel mask of width × height pixels: 255 = inside,
/// 0 = outside. Pixel (i, j) samples its centre, the level-0 point
/// (originX + (i + 0.5) · downsample, originY + (j + 0.5) · downsample).
/// Throws InvalidArgument if downsample is not a positive finite number, width or height is negative,
/// an origin is not finite, or a selected annotation has a non-finite coordinate.
Image rasterize(const AnnotationSet& set, const std::vector<std::string>& groups, double originX, double originY,
                double downsample, int width, int height);

/// Fraction of each cell of a regular grid covered by the selected annotations, row-major
/// (index = row · cols + col), each value in [0, 1]. Cell (c, r) spans level-0
/// [originX + c · cellSize, originX + (c + 1) · cellSize) × [originY + r · cellSize, ...) and is
/// estimated from samplesPerAxis × samplesPerAxis samples at the centres of an even sub-grid, so
/// the result is a multiple of 1 / samplesPerAxis² (exact for shapes aligned to the sub-grid).
/// Throws InvalidArgument if cellSize is not positive and finite, cols/rows are negative,
/// samplesPerAxis is outside [1, 256], an origin is not finite, or a selected annotation has a
/// non-finite coordinate.
std::vector<float> coverage(const AnnotationSet& set, const std::vector<std::string>& groups, double originX,
                            double originY, double cellSize, int cols, int rows, int samplesPerAxis = 8);

} // namespace nic

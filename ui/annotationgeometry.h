#pragma once
// Geometry of annotations shared by the view's annotation layer and figure export (plain functions).
#include "ui/tilemath.h"

#include <vector>

namespace nic {

struct Annotation;
struct Point;

/// Polygons, splines and rectangles are areas (filled and outlined); the rest are lines and dots.
bool isAreaAnnotation(const Annotation& a);
/// The vertex ring of an annotation (a two-corner Rectangle becomes its four corners).
std::vector<Point> annotationRing(const Annotation& a);
/// The bounding box of `points` (empty for none).
RectD pointBounds(const std::vector<Point>& points);

} // namespace nic

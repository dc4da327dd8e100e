#include "ui/annotationgeometry.h"

#include "core/annotations/annotation.h"

#include <algorithm>

namespace nic {

bool isAreaAnnotation(const Annotation& a) {
    return a.type == AnnotationType::Polygon || a.type == AnnotationType::Spline || a.type == AnnotationType::Rectangle;
}

std::vector<Point> annotationRing(const Annotation& a) {
    if (a.type == AnnotationType::Rectangle && a.coordinates.size() == 2) {
        const auto& p = a.coordinates[0];
        const auto& q = a.coordinates[1];
        return {p, {q.x, p.y}, q, {p.x, q.y}};
    }
    return a.coordinates;
}

RectD pointBounds(const std::vector<Point>& points) {
    if (points.empty())
        return {};
    double x0 = points[0].x, x1 = x0, y0 = points[0].y, y1 = y0;
    for (const auto& q : points) {
        x0 = std::min(x0, q.x);
        x1 = std::max(x1, q.x);
        y0 = std::min(y0, q.y);
        y1 = std::max(y1, q.y);
    }
    return {x0, y0, x1 - x0, y1 - y0};
}

} // namespace nic

#pragma once
// Helpers shared by the GUI tests: a pixel's colour within a tolerance (with a readable failure), the
// 50 % blend a half-opaque layer gives, and the annotations of the docs screenshots.
#include "core/annotations/annotation.h"
#include "ui/colormap.h"
#include "ui/tilemath.h"

#include <QColor>
#include <QImage>

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>

namespace nic::test {

using Rgb = std::array<std::uint8_t, 3>;

/// The pixel at `at` (image coordinates, floored) is `want` within ± `tol` per channel.
inline testing::AssertionResult colorNear(const QImage& img, PointD at, Rgb want, int tol = 3) {
    const int x = static_cast<int>(std::floor(at.x));
    const int y = static_cast<int>(std::floor(at.y));
    if (x < 0 || y < 0 || x >= img.width() || y >= img.height())
        return testing::AssertionFailure() << "(" << x << ", " << y << ") is outside the " << img.width() << "×"
                                           << img.height() << " image";
    const QColor c = img.pixelColor(x, y);
    if (std::abs(c.red() - want[0]) <= tol && std::abs(c.green() - want[1]) <= tol && std::abs(c.blue() - want[2]) <= tol)
        return testing::AssertionSuccess();
    return testing::AssertionFailure() << "pixel (" << x << ", " << y << ") is (" << c.red() << ", " << c.green() << ", "
                                       << c.blue() << "), expected (" << int(want[0]) << ", " << int(want[1]) << ", "
                                       << int(want[2]) << ") ± " << tol;
}

inline Rgb rgb(Rgb8 c) { return {c[0], c[1], c[2]}; }

/// `top` drawn at opacity 0.5 over `under` (integer halves, as an 8-bit framebuffer rounds them down).
inline Rgb halfway(Rgb8 top, Rgb under) {
    return {static_cast<std::uint8_t>((top[0] + under[0]) / 2), static_cast<std::uint8_t>((top[1] + under[1]) / 2),
            static_cast<std::uint8_t>((top[2] + under[2]) / 2)};
}

/// The annotations of the docs screenshots on CMU-1-Small-Region.svs: a tumour polygon, a stroma
/// rectangle and a measurement, in two groups.
inline AnnotationSet screenshotAnnotations() {
    AnnotationSet set;
    set.groups.push_back({"tumor", "", "#ff3030", {}, {}, GroupElement::Group});
    set.groups.push_back({"stroma", "", "#30a0ff", {}, {}, GroupElement::Group});
    Annotation a;
    a.type = AnnotationType::Polygon;
    a.group = "tumor";
    a.name = "Region of interest";
    for (int i = 0; i < 24; ++i) {
        const double t = i / 24.0 * 2 * M_PI;
        a.coordinates.push_back({1150 + 420 * std::cos(t) + 60 * std::cos(3 * t), 1500 + 520 * std::sin(t)});
    }
    set.annotations.push_back(a);
    a.group = "stroma";
    a.name = "Stroma";
    a.type = AnnotationType::Rectangle;
    a.coordinates = {{200, 2300}, {800, 2300}, {800, 2800}, {200, 2800}};
    set.annotations.push_back(a);
    a.type = AnnotationType::Measurement;
    a.name = "Width";
    a.group = "";
    a.coordinates = {{1500, 400}, {2000, 600}};
    set.annotations.push_back(a);
    return set;
}

} // namespace nic::test

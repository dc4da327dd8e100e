#pragma once
// Helpers shared by the GUI tests: a pixel's colour within a tolerance (with a readable failure) and the
// 50 % blend a half-opaque layer gives.
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

} // namespace nic::test

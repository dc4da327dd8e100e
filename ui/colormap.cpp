#include "ui/colormap.h"

#include <algorithm>
#include <cmath>

namespace nic {

namespace {

// Piecewise-linear table through evenly spaced anchors.
ColorTable fromAnchors(const std::vector<Rgb8>& anchors) {
    ColorTable t{};
    const double segments = static_cast<double>(anchors.size() - 1);
    for (int i = 0; i < 256; ++i) {
        const double pos = i / 255.0 * segments;
        const auto a = std::min(static_cast<std::size_t>(pos), anchors.size() - 2);
        const double f = pos - static_cast<double>(a);
        for (int c = 0; c < 3; ++c) {
            const double v = anchors[a][static_cast<std::size_t>(c)] * (1.0 - f) + anchors[a + 1][static_cast<std::size_t>(c)] * f;
            t[static_cast<std::size_t>(i)][static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(std::lround(v));
        }
    }
    return t;
}

ColorTable makeViridis() {
    // matplotlib's viridis at t = 0, 0.1, ..., 1.
    return fromAnchors({{0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x4a, 0x89}, {0x31, 0x68, 0x8e},
                        {0x26, 0x82, 0x8e}, {0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6d, 0xcd, 0x59},
                        {0xb4, 0xde, 0x2c}, {0xd8, 0xe2, 0x19}, {0xfd, 0xe7, 0x25}});
}

ColorTable makeJet() {
    ColorTable t{};
    for (int i = 0; i < 256; ++i) {
        const double x = i / 255.0;
        auto ch = [&](double off) { return std::clamp(1.5 - std::abs(4.0 * x - off), 0.0, 1.0); };
        t[static_cast<std::size_t>(i)] = {static_cast<std::uint8_t>(std::lround(ch(3.0) * 255.0)),
                                          static_cast<std::uint8_t>(std::lround(ch(2.0) * 255.0)),
                                          static_cast<std::uint8_t>(std::lround(ch(1.0) * 255.0))};
    }
    return t;
}

ColorTable makeTrafficLight() { return fromAnchors({{0, 176, 80}, {255, 210, 0}, {220, 20, 20}}); }

} // namespace

std::vector<ColorMapKind> colorMapKinds() { return {ColorMapKind::Viridis, ColorMapKind::Jet, ColorMapKind::TrafficLight}; }

std::string colorMapName(ColorMapKind kind) {
    switch (kind) {
    case ColorMapKind::Viridis: return "viridis";
    case ColorMapKind::Jet: return "jet";
    case ColorMapKind::TrafficLight: return "traffic-light";
    }
    return "viridis";
}

const ColorTable& colorTable(ColorMapKind kind) {
    static const ColorTable viridis = makeViridis();
    static const ColorTable jet = makeJet();
    static const ColorTable traffic = makeTrafficLight();
    switch (kind) {
    case ColorMapKind::Jet: return jet;
    case ColorMapKind::TrafficLight: return traffic;
    case ColorMapKind::Viridis: break;
    }
    return viridis;
}

Rgb8 colorAt(ColorMapKind kind, double t) {
    const double c = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
    return colorTable(kind)[static_cast<std::size_t>(std::lround(c * 255.0))];
}

} // namespace nic

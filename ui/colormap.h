#pragma once
// Colour maps for the heatmap layer, as 256-entry RGB tables uploaded to a 1-D texture. Plain C++.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace nic {

enum class ColorMapKind { Viridis, Jet, TrafficLight };

using Rgb8 = std::array<std::uint8_t, 3>;
using ColorTable = std::array<Rgb8, 256>;

/// All kinds, in menu order.
std::vector<ColorMapKind> colorMapKinds();
/// "viridis", "jet", "traffic-light".
std::string colorMapName(ColorMapKind kind);
/// The 256-entry table: entry 0 is the lowest value, entry 255 the highest.
const ColorTable& colorTable(ColorMapKind kind);
/// The table entry for t in [0, 1] (clamped): index round(t·255), as the shader samples it.
Rgb8 colorAt(ColorMapKind kind, double t);

} // namespace nic

#pragma once
// QPainter overlays shared by the live view and figure export, so a figure looks like the screen: the
// scale bar and the heatmap's colour legend. `s` scales sizes and fonts (1 = screen).
#include "ui/colormap.h"

#include <utility>

class QPainter;
class QRectF;

namespace nic {

/// Sets the painter's font to 12 px × `s` (at least 6 px).
void setPixelFont(QPainter& p, double s);

/// Scale bar at the bottom left of `area` for `micrometresPerPixel` (or level-0 px when the pixel size
/// is unknown).
void paintScaleBar(QPainter& p, const QRectF& area, double micrometresPerPixel, bool mppKnown, double s);

/// The heatmap's colour legend (colour map, value range, threshold mark) at the bottom right of `area`.
void paintHeatmapLegend(QPainter& p, const QRectF& area, ColorMapKind kind, std::pair<float, float> range,
                        double threshold, double s);

} // namespace nic

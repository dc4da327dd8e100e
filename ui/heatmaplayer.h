#pragma once
// The slide view's heatmap layer: a HeatmapGrid drawn through a colour map (values below the threshold
// left out, cells flat or smoothed), optionally with its iso-contour at the threshold, blended over the
// tiles. Holds the value and colour-map textures, created lazily in draw(). GUI thread only.
#include "ui/colormap.h"
#include "ui/heatmapgrid.h"
#include "ui/layergl.h"

#include <memory>
#include <utility>
#include <vector>

namespace nic {

/// How the heatmap is drawn: each grid cell a flat square, or interpolated bilinearly between cell centres.
enum class HeatmapRendering { Cells, Smooth };

class HeatmapLayer {
public:
    /// Replaces the grid (may be null); the colour map then spans its finite value range.
    void setGrid(std::shared_ptr<const HeatmapGrid> grid);
    const std::shared_ptr<const HeatmapGrid>& grid() const { return grid_; }
    /// The value range the colour map spans (the grid's finite range; 0..1 without one).
    std::pair<float, float> range() const { return range_; }
    void setVisible(bool on);
    bool isVisible() const { return visible_; }
    /// Clamped to [0, 1].
    void setOpacity(double opacity);
    double opacity() const { return opacity_; }
    /// Values below `value` are not drawn.
    void setThreshold(double value);
    double threshold() const { return threshold_; }
    void setColorMap(ColorMapKind kind);
    ColorMapKind colorMap() const { return colorMap_; }
    void setRendering(HeatmapRendering mode);
    HeatmapRendering rendering() const { return rendering_; }
    /// The iso-line at the threshold, drawn as a 1 px outline in contourColor() also while the colours are hidden.
    void setContourVisible(bool on);
    bool contourVisible() const { return contourVisible_; }
    static QColor contourColor() { return QColor(255, 255, 255); }
    /// The contour's segments in level-0 px (x0, y0, x1, y1 each), recomputed when grid or threshold change.
    const std::vector<float>& contourSegments();

    /// Uploads what changed, then draws the heatmap (and the contour) blended over the frame.
    void draw(const LayerGl& g);
    /// A new GL context: the textures are made again at the next draw.
    void glCreated() { valuesDirty_ = cmapDirty_ = true; }
    /// Deletes the textures through `gl` (the context current), or only forgets them when `gl` is null.
    void releaseGl(QOpenGLFunctions_3_3_Core* gl);

private:
    void uploadValues(QOpenGLFunctions_3_3_Core* f, const LayerGl& g);
    void uploadColorMap(QOpenGLFunctions_3_3_Core* f);
    void drawContour(const LayerGl& g);

    std::shared_ptr<const HeatmapGrid> grid_;
    std::pair<float, float> range_{0.0F, 1.0F};
    bool visible_ = true;
    double opacity_ = 0.5;
    double threshold_ = -1e30;
    ColorMapKind colorMap_ = ColorMapKind::Viridis;
    HeatmapRendering rendering_ = HeatmapRendering::Cells;
    bool contourVisible_ = false;
    bool contourDirty_ = true;
    std::vector<float> contour_;
    GLuint valuesTex_ = 0;
    GLuint cmapTex_ = 0;
    bool valuesDirty_ = false;
    bool cmapDirty_ = true;
};

} // namespace nic

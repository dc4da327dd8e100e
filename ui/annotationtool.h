#pragma once
// The slide view's drawing tools: mouse and key handling that draws new annotations (dots, polygons,
// rectangles, measurements) into an AnnotationLayer's set, and the dashed outline of the shape being
// drawn. The view forwards its events (positions already in level-0 px) and repaints on changed().
// GUI thread only.
#include "core/annotations/annotation.h"
#include "ui/tilemath.h"

#include <QObject>
#include <QString>

#include <optional>
#include <vector>

class QPainter;

namespace nic {

class AnnotationLayer;

/// Drawing tools. Navigate pans with the left button; the others draw with it (pan with the right).
enum class ViewTool { Navigate, Polygon, Rectangle, Dot, Measure };

class AnnotationTool : public QObject {
    Q_OBJECT
public:
    /// Draws into `layer`'s set (created when there is none); `layer` must outlive the tool.
    explicit AnnotationTool(AnnotationLayer& layer, QObject* parent = nullptr);

    /// Switches tools, abandoning a shape in progress.
    void setTool(ViewTool tool);
    ViewTool tool() const { return tool_; }
    /// Group new annotations are put in ("" = none; ignored when the set declares groups but not this one).
    void setGroup(const QString& group) { group_ = group; }
    /// Level-0 vertices of the polygon being drawn; empty when none.
    std::vector<Point> polygonInProgress() const;

    /// The left button went down at `p` with a drawing tool: a dot is added, a polygon gains a vertex, a
    /// rectangle or measurement starts.
    void press(PointD p);
    /// The cursor moved to `p` (rubber band of the shape in progress).
    void hover(PointD p);
    /// The left button went up at `p`: ends a rectangle or measurement being dragged. False if none was.
    bool release(PointD p, double zoom, std::optional<double> mpp);
    /// Ends the shape in progress: shapes under 2 screen px (at `zoom`) and polygons of fewer than 3
    /// distinct vertices are dropped; a measurement also emits measured() (µm when `mpp` is known).
    void finish(double zoom, std::optional<double> mpp);
    /// Abandons the shape in progress (Escape).
    void cancel();
    /// Drops the polygon's last vertex (Backspace). False when there was none.
    bool removeLastVertex();

    /// The dashed outline of the shape in progress (with the length of a measurement) for viewport `vp`.
    void paint(QPainter& p, const Viewport& vp, std::optional<double> mpp) const;

Q_SIGNALS:
    /// The tool added annotation `index` to the layer's set.
    void annotationAdded(int index);
    /// The polygon being drawn gained or lost a vertex, or was finished or abandoned.
    void drawingChanged();
    /// A measurement was made (µm when mpp is known, else level-0 px).
    void measured(double length, bool micrometres);
    /// Something the view shows changed: repaint.
    void changed();

private:
    void addAnnotation(AnnotationType type, std::vector<Point> coords);

    AnnotationLayer& layer_;
    ViewTool tool_ = ViewTool::Navigate;
    QString group_;
    std::vector<PointD> drawing_; // level-0 vertices of the shape being drawn
    bool dragging_ = false;
    PointD hover_;
};

} // namespace nic

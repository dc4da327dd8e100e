#include "ui/annotationtool.h"

#include "ui/annotationlayer.h"

#include <QPainter>
#include <QPolygonF>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

namespace nic {

AnnotationTool::AnnotationTool(AnnotationLayer& layer, QObject* parent) : QObject(parent), layer_(layer) {}

void AnnotationTool::setTool(ViewTool tool) {
    const bool hadPolygon = tool_ == ViewTool::Polygon && !drawing_.empty();
    tool_ = tool;
    drawing_.clear();
    dragging_ = false;
    Q_EMIT changed();
    if (hadPolygon)
        Q_EMIT drawingChanged();
}

std::vector<Point> AnnotationTool::polygonInProgress() const {
    std::vector<Point> pts;
    if (tool_ != ViewTool::Polygon)
        return pts;
    for (const auto& p : drawing_)
        pts.push_back({p.x, p.y});
    return pts;
}

void AnnotationTool::press(PointD p) {
    switch (tool_) {
    case ViewTool::Dot: addAnnotation(AnnotationType::Dot, {{p.x, p.y}}); break;
    case ViewTool::Polygon:
        drawing_.push_back(p);
        hover_ = p;
        Q_EMIT drawingChanged();
        break;
    case ViewTool::Rectangle:
    case ViewTool::Measure:
        drawing_ = {p, p};
        dragging_ = true;
        break;
    case ViewTool::Navigate: break;
    }
    Q_EMIT changed();
}

void AnnotationTool::hover(PointD p) {
    hover_ = p;
    if (dragging_ && drawing_.size() == 2) {
        drawing_[1] = p;
        Q_EMIT changed();
    } else if (tool_ == ViewTool::Polygon && !drawing_.empty()) {
        Q_EMIT changed();
    }
}

bool AnnotationTool::release(PointD p, double zoom, std::optional<double> mpp) {
    if (!dragging_)
        return false;
    dragging_ = false;
    drawing_[1] = p;
    finish(zoom, mpp);
    return true;
}

void AnnotationTool::cancel() {
    drawing_.clear();
    dragging_ = false;
    Q_EMIT changed();
    Q_EMIT drawingChanged();
}

bool AnnotationTool::removeLastVertex() {
    if (drawing_.empty() || tool_ != ViewTool::Polygon)
        return false;
    drawing_.pop_back();
    Q_EMIT changed();
    Q_EMIT drawingChanged();
    return true;
}

void AnnotationTool::finish(double zoom, std::optional<double> mpp) {
    std::vector<Point> pts;
    for (const auto& p : drawing_)
        pts.push_back({p.x, p.y});
    drawing_.clear();
    Q_EMIT changed();
    if (tool_ == ViewTool::Polygon)
        Q_EMIT drawingChanged();
    if (tool_ == ViewTool::Polygon) {
        // Drop repeated vertices (a double-click adds the last one twice).
        std::vector<Point> clean;
        for (const auto& p : pts)
            if (clean.empty() || std::hypot(p.x - clean.back().x, p.y - clean.back().y) * zoom > 1.0)
                clean.push_back(p);
        if (clean.size() >= 3)
            addAnnotation(AnnotationType::Polygon, std::move(clean));
    } else if (tool_ == ViewTool::Rectangle && pts.size() == 2) {
        const double x0 = std::min(pts[0].x, pts[1].x), x1 = std::max(pts[0].x, pts[1].x);
        const double y0 = std::min(pts[0].y, pts[1].y), y1 = std::max(pts[0].y, pts[1].y);
        if ((x1 - x0) * zoom >= 2 && (y1 - y0) * zoom >= 2)
            addAnnotation(AnnotationType::Rectangle, {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}});
    } else if (tool_ == ViewTool::Measure && pts.size() == 2) {
        const double len0 = std::hypot(pts[1].x - pts[0].x, pts[1].y - pts[0].y);
        if (len0 * zoom >= 2) {
            addAnnotation(AnnotationType::Measurement, pts);
            Q_EMIT measured(mpp ? len0 * *mpp : len0, mpp.has_value());
        }
    }
}

void AnnotationTool::addAnnotation(AnnotationType type, std::vector<Point> coords) {
    if (!layer_.annotations())
        layer_.setAnnotations(std::make_shared<AnnotationSet>());
    AnnotationSet& set = *layer_.annotations();
    Annotation a;
    a.type = type;
    a.name = "Annotation " + std::to_string(set.annotations.size());
    a.group = group_.toStdString();
    if (!a.group.empty() && !set.findGroup(a.group)) {
        if (!set.groups.empty())
            a.group.clear(); // only declared groups are valid in a file that declares groups
    }
    const QColor c = layer_.colorOf(a);
    a.color = c.name(QColor::HexRgb).toUpper().toStdString();
    a.coordinates = std::move(coords);
    set.annotations.push_back(std::move(a));
    const int index = static_cast<int>(set.annotations.size()) - 1;
    Q_EMIT changed();
    Q_EMIT annotationAdded(index);
}

void AnnotationTool::paint(QPainter& p, const Viewport& vp, std::optional<double> mpp) const {
    if (drawing_.empty())
        return;
    QPen pen(QColor(0, 255, 255), 2, Qt::DashLine);
    p.setPen(pen);
    QPolygonF poly;
    for (const auto& q : drawing_) {
        const PointD s = vp.toScreen(q);
        poly << QPointF(s.x, s.y);
    }
    if (tool_ == ViewTool::Polygon) {
        const PointD h = vp.toScreen(hover_);
        poly << QPointF(h.x, h.y);
        p.drawPolyline(poly);
    } else if (tool_ == ViewTool::Rectangle && poly.size() == 2) {
        p.drawRect(QRectF(poly[0], poly[1]).normalized());
    } else if (tool_ == ViewTool::Measure && poly.size() == 2) {
        p.drawLine(poly[0], poly[1]);
        const double dx = drawing_[1].x - drawing_[0].x;
        const double dy = drawing_[1].y - drawing_[0].y;
        const double len0 = std::hypot(dx, dy);
        const QString text = mpp ? QString::fromStdString(formatLength(len0 * *mpp)) : QStringLiteral("%1 px").arg(len0, 0, 'f', 1);
        p.setPen(Qt::white);
        p.fillRect(QRectF(poly[1] + QPointF(8, -18), QSizeF(90, 18)), QColor(0, 0, 0, 160));
        p.drawText(QRectF(poly[1] + QPointF(10, -18), QSizeF(88, 18)), Qt::AlignVCenter, text);
    }
}

} // namespace nic

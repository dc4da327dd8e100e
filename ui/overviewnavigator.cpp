#include "ui/overviewnavigator.h"

#include <QMouseEvent>
#include <QPainter>

#include <algorithm>

namespace nic {

OverviewNavigator::OverviewNavigator(QWidget* parent) : QWidget(parent) {
    setMinimumSize(120, 90);
    setCursor(Qt::PointingHandCursor);
    setToolTip(tr("Overview: click or drag to move the view"));
}

void OverviewNavigator::setSlide(const QImage& thumbnail, double w, double h) {
    thumbnail_ = thumbnail;
    slideW_ = w;
    slideH_ = h;
    update();
}

void OverviewNavigator::setViewRect(const RectD& r) {
    view_ = r;
    update();
}

QRectF OverviewNavigator::imageRect() const {
    if (slideW_ <= 0 || slideH_ <= 0)
        return {};
    const double s = std::min((width() - 4) / slideW_, (height() - 4) / slideH_);
    const double w = slideW_ * s;
    const double h = slideH_ * s;
    return {(width() - w) / 2.0, (height() - h) / 2.0, w, h};
}

void OverviewNavigator::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().window());
    const QRectF ir = imageRect();
    if (ir.isEmpty())
        return;
    p.setRenderHint(QPainter::SmoothPixmapTransform);
    if (!thumbnail_.isNull())
        p.drawImage(ir, thumbnail_);
    const double s = ir.width() / slideW_;
    QRectF vr(ir.x() + view_.x * s, ir.y() + view_.y * s, view_.w * s, view_.h * s);
    p.setClipRect(ir.adjusted(-1, -1, 1, 1));
    p.setPen(QPen(QColor(230, 30, 30), 2));
    p.drawRect(vr.intersected(ir.adjusted(-1, -1, 1, 1)));
}

void OverviewNavigator::request(QPointF pos) {
    const QRectF ir = imageRect();
    if (ir.isEmpty())
        return;
    const double x = std::clamp((pos.x() - ir.x()) / ir.width(), 0.0, 1.0) * slideW_;
    const double y = std::clamp((pos.y() - ir.y()) / ir.height(), 0.0, 1.0) * slideH_;
    Q_EMIT centerRequested({x, y});
}

void OverviewNavigator::mousePressEvent(QMouseEvent* e) {
    if (e->button() == Qt::LeftButton)
        request(e->position());
}

void OverviewNavigator::mouseMoveEvent(QMouseEvent* e) {
    if (e->buttons() & Qt::LeftButton)
        request(e->position());
}

} // namespace nic

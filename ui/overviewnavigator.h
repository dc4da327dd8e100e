#pragma once
// The overview navigator: the slide's thumbnail with the current viewport as a rectangle. Clicking or
// dragging asks the view to centre on that place (centerRequested).
#include "ui/tilemath.h"

#include <QImage>
#include <QWidget>

namespace nic {

class OverviewNavigator : public QWidget {
    Q_OBJECT
public:
    explicit OverviewNavigator(QWidget* parent = nullptr);
    /// `slideWidth`/`slideHeight` are level-0 px; the thumbnail spans them.
    void setSlide(const QImage& thumbnail, double slideWidth, double slideHeight);
    void setViewRect(const RectD& level0);
    QSize sizeHint() const override { return {240, 180}; }
    /// Where the thumbnail is drawn inside the widget.
    QRectF imageRect() const;

Q_SIGNALS:
    void centerRequested(nic::PointD level0);

protected:
    void paintEvent(QPaintEvent* e) override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseMoveEvent(QMouseEvent* e) override;

private:
    void request(QPointF pos);
    QImage thumbnail_;
    double slideW_ = 0;
    double slideH_ = 0;
    RectD view_;
};

} // namespace nic

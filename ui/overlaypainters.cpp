#include "ui/overlaypainters.h"

#include "ui/tilemath.h"

#include <QLinearGradient>
#include <QPainter>

#include <algorithm>
#include <cmath>

namespace nic {

void setPixelFont(QPainter& p, double s) {
    QFont f = p.font();
    f.setPixelSize(std::max(6, static_cast<int>(std::lround(12.0 * s))));
    p.setFont(f);
}

void paintScaleBar(QPainter& p, const QRectF& area, double umPerPx, bool mppKnown, double s) {
    p.save();
    setPixelFont(p, s);
    const ScaleBar bar = chooseScaleBar(umPerPx, std::min(200.0 * s, area.width() * 0.3));
    const QString label = mppKnown ? QString::fromStdString(bar.label) : QStringLiteral("%1 px").arg(bar.micrometres);
    const double x = area.left() + 16 * s;
    const double y = area.bottom() - 20 * s;
    p.fillRect(QRectF(x - 6 * s, y - 22 * s, bar.pixels + 12 * s, 30 * s), QColor(0, 0, 0, 140));
    p.fillRect(QRectF(x, y, bar.pixels, 4 * s), Qt::white);
    p.setPen(Qt::white);
    p.drawText(QRectF(x, y - 20 * s, bar.pixels + 60 * s, 18 * s), Qt::AlignLeft | Qt::AlignVCenter, label);
    p.restore();
}

void paintHeatmapLegend(QPainter& p, const QRectF& area, ColorMapKind kind, std::pair<float, float> range,
                        double threshold, double s) {
    p.save();
    setPixelFont(p, s);
    const double w = 180 * s;
    const QRectF box(area.right() - w - 16 * s, area.bottom() - 64 * s, w, 52 * s);
    p.fillRect(box, QColor(0, 0, 0, 150));
    const QRectF bar = box.adjusted(8 * s, 20 * s, -8 * s, -16 * s);
    // A gradient through every table entry: vector in SVG and PDF, exact colours in PNG.
    QLinearGradient gradient(bar.topLeft(), bar.topRight());
    const auto& table = colorTable(kind);
    for (int i = 0; i < 256; i += 5) {
        const auto& c = table[static_cast<std::size_t>(i)];
        gradient.setColorAt(i / 255.0, QColor(c[0], c[1], c[2]));
    }
    const auto& last = table[255];
    gradient.setColorAt(1.0, QColor(last[0], last[1], last[2]));
    p.fillRect(bar, gradient);
    p.setPen(Qt::white);
    const QString name = QString::fromStdString(colorMapName(kind));
    p.drawText(box.adjusted(8 * s, 2 * s, -8 * s, 0), Qt::AlignTop | Qt::AlignLeft,
               threshold > range.first ? QStringLiteral("heatmap (%1), ≥ %2").arg(name).arg(threshold, 0, 'g', 3)
                                       : QStringLiteral("heatmap (%1)").arg(name));
    p.drawText(box.adjusted(8 * s, 0, -8 * s, -2 * s), Qt::AlignBottom | Qt::AlignLeft, QString::number(range.first, 'g', 3));
    p.drawText(box.adjusted(8 * s, 0, -8 * s, -2 * s), Qt::AlignBottom | Qt::AlignRight, QString::number(range.second, 'g', 3));
    const double span = static_cast<double>(range.second) - static_cast<double>(range.first);
    if (span > 0 && threshold > range.first) {
        const double t = std::clamp((threshold - range.first) / span, 0.0, 1.0);
        const double tx = bar.left() + t * bar.width();
        p.fillRect(QRectF(bar.left(), bar.top(), tx - bar.left(), bar.height()), QColor(0, 0, 0, 160));
        p.drawLine(QPointF(tx, bar.top() - 2 * s), QPointF(tx, bar.bottom() + 2 * s));
    }
    p.restore();
}

} // namespace nic

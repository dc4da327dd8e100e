#include "ui/figureexport.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/slide/slide.h"
#include "ui/overlaypainters.h"
#include "ui/qtimage.h"
#include "ui/slideview.h"

#include <QFileInfo>
#include <QPageSize>
#include <QPainter>
#include <QPainterPath>
#include <QPdfWriter>
#include <QRegularExpression>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QTimer>

#include <algorithm>
#include <cmath>

namespace nic {

namespace {

QString lengthText(double level0Length, const std::optional<double>& mpp) {
    return mpp ? QString::fromStdString(formatLength(level0Length * *mpp)) : QStringLiteral("%1 px").arg(level0Length, 0, 'f', 1);
}

// Overlay sizes grow with the figure, so a 4000 px figure does not get a postage-stamp legend.
double overlayScale(const Viewport& vp) { return std::clamp(std::min(vp.width / 1000.0, vp.height / 700.0), 1.0, 8.0); }

} // namespace

std::optional<FigureFormat> figureFormatForPath(const QString& path) {
    const QString ext = QFileInfo(path).suffix().toLower();
    if (ext == QLatin1String("png"))
        return FigureFormat::Png;
    if (ext == QLatin1String("svg"))
        return FigureFormat::Svg;
    if (ext == QLatin1String("pdf"))
        return FigureFormat::Pdf;
    return std::nullopt;
}

std::optional<RectD> parseRegion(const QString& text) {
    const QStringList parts = text.split(QLatin1Char(','));
    if (parts.size() != 4)
        return std::nullopt;
    double v[4];
    for (int i = 0; i < 4; ++i) {
        bool ok = false;
        v[i] = parts[i].trimmed().toDouble(&ok);
        if (!ok || !std::isfinite(v[i]))
            return std::nullopt;
    }
    if (v[2] <= 0 || v[3] <= 0)
        return std::nullopt;
    return RectD{v[0], v[1], v[2], v[3]};
}

Viewport figureViewport(const SlideView& view, const std::optional<RectD>& region, int widthPx) {
    Viewport v;
    if (region) {
        const RectD& r = *region;
        const double W = view.pyramid().width();
        const double H = view.pyramid().height();
        if (r.w <= 0 || r.h <= 0 || r.right() <= 0 || r.bottom() <= 0 || r.x >= W || r.y >= H)
            throw InvalidArgument(QStringLiteral("region %1,%2,%3,%4 lies outside the slide (%5 x %6 px)")
                                      .arg(r.x).arg(r.y).arg(r.w).arg(r.h).arg(W).arg(H)
                                      .toStdString());
        v.width = widthPx > 0 ? widthPx : static_cast<int>(std::min(4096.0, std::ceil(r.w)));
        v.height = std::max(1, static_cast<int>(std::lround(v.width * r.h / r.w)));
        v.zoom = v.width / r.w;
        v.centerX = r.x + r.w / 2.0;
        v.centerY = r.y + r.h / 2.0;
        return v;
    }
    const Viewport& cur = view.viewport();
    if (cur.width <= 0 || cur.height <= 0)
        throw InvalidArgument("the view has no size yet");
    v = cur;
    v.width = widthPx > 0 ? widthPx : cur.width;
    const double k = static_cast<double>(v.width) / cur.width;
    v.height = std::max(1, static_cast<int>(std::lround(cur.height * k)));
    v.zoom = cur.zoom * k;
    return v;
}

void paintAnnotations(QPainter& p, const SlideView& view, const Viewport& vp, double s) {
    const auto set = view.annotations();
    if (!set || !view.annotationsVisible())
        return;
    p.save();
    p.setRenderHint(QPainter::Antialiasing);
    setPixelFont(p, s);
    const RectD visible = vp.visibleLevel0();
    const auto mpp = view.mpp();
    auto toScreen = [&](const Point& q) {
        const PointD sp = vp.toScreen({q.x, q.y});
        return QPointF(sp.x, sp.y);
    };
    const auto& list = set->annotations;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const Annotation& a = list[i];
        if (a.coordinates.empty() || !view.isGroupVisible(QString::fromStdString(a.group)))
            continue;
        const auto ring = isAreaAnnotation(a) ? annotationRing(a) : a.coordinates;
        const RectD box = pointBounds(ring);
        const double x0 = box.x, y0 = box.y, x1 = box.right(), y1 = box.bottom();
        const double pad = 20.0 * s / vp.zoom;
        if (!RectD{x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad}.intersects(visible))
            continue;
        const QColor color = view.annotationColor(a);
        const bool selected = static_cast<int>(i) == view.selectedAnnotation();
        QPolygonF poly;
        for (const auto& q : ring)
            poly << toScreen(q);
        if (isAreaAnnotation(a) && poly.size() >= 3) {
            QPainterPath path;
            path.setFillRule(Qt::OddEvenFill);
            path.addPolygon(poly);
            path.closeSubpath();
            QColor fill = color;
            fill.setAlphaF(selected ? 0.35F : 0.18F);
            p.fillPath(path, fill);
            p.strokePath(path, QPen(color, (selected ? 4.0 : 2.0) * s, Qt::SolidLine, Qt::SquareCap, Qt::MiterJoin));
        } else if (a.type == AnnotationType::Measurement || poly.size() == 2) {
            p.setPen(QPen(color, (selected ? 3.0 : 2.0) * s, Qt::SolidLine, Qt::SquareCap));
            p.drawPolyline(poly);
            if (a.type == AnnotationType::Measurement && a.coordinates.size() == 2) {
                const double len0 = std::hypot(a.coordinates[1].x - a.coordinates[0].x, a.coordinates[1].y - a.coordinates[0].y);
                const QString text = lengthText(len0, mpp);
                const QPointF at = poly[1];
                QRectF label(at.x() + 6 * s, at.y() - 22 * s, p.fontMetrics().horizontalAdvance(text) + 8 * s, 18 * s);
                if (label.right() > vp.width) // keep the label on the figure
                    label.moveRight(at.x() - 6 * s);
                if (label.top() < 0)
                    label.moveTop(at.y() + 6 * s);
                p.fillRect(label, QColor(0, 0, 0, 160));
                p.setPen(Qt::white);
                p.drawText(label, Qt::AlignCenter, text);
            }
        } else {
            const double r = (selected ? 6.0 : 4.0) * s;
            for (const QPointF& q : poly)
                p.fillRect(QRectF(q.x() - r, q.y() - r, 2 * r, 2 * r), color);
        }
    }
    p.restore();
}

QImage renderLayersWithoutGl(const SlideView& view, const Viewport& vp) {
    const auto slide = view.slide();
    if (!slide)
        throw Error("no slide is open");
    QImage out(vp.width, vp.height, QImage::Format_RGB32);
    out.fill(Qt::white);
    QPainter p(&out);
    auto screenRect = [&](double x0, double y0, double x1, double y1) {
        const PointD a = vp.toScreen({x0, y0});
        const PointD b = vp.toScreen({x1, y1});
        return QRectF(QPointF(a.x, a.y), QPointF(b.x, b.y));
    };
    const Pyramid& pyr = view.pyramid();
    const int level = view.figureLevel(vp);
    const double ds = pyr.levels[static_cast<std::size_t>(level)].downsample;
    const RectD vis = vp.visibleLevel0();
    const double x0 = std::max(0.0, std::floor(vis.x / ds) * ds);
    const double y0 = std::max(0.0, std::floor(vis.y / ds) * ds);
    const double x1 = std::min(pyr.width(), vis.right());
    const double y1 = std::min(pyr.height(), vis.bottom());
    if (x1 > x0 && y1 > y0) {
        const auto w = static_cast<std::int64_t>(std::ceil((x1 - x0) / ds));
        const auto h = static_cast<std::int64_t>(std::ceil((y1 - y0) / ds));
        const QImage region = toQImage(slide->readRegion(static_cast<std::int64_t>(x0), static_cast<std::int64_t>(y0), level, w, h));
        p.setRenderHint(QPainter::SmoothPixmapTransform);
        p.drawImage(screenRect(x0, y0, x0 + static_cast<double>(w) * ds, y0 + static_cast<double>(h) * ds), region);
        p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    }
    if (const auto latent = view.latentLayer(); latent && latent->width > 0 && latent->height > 0) {
        const QImage cells(latent->rgba.data(), latent->width, latent->height, latent->width * 4, QImage::Format_RGBA8888);
        p.setOpacity(view.latentOpacity());
        p.drawImage(screenRect(0, 0, latent->width * latent->cellSize, latent->height * latent->cellSize), cells);
        p.setOpacity(1.0);
    }
    if (const auto grid = view.heatmap(); grid && !grid->empty() && view.heatmapVisible()) {
        // As heatmap.frag: no data and values below the threshold stay transparent; colour index round(t·255).
        const auto [lo, hi] = view.heatmapRange();
        const double span = std::max(static_cast<double>(hi) - lo, 1e-12);
        QImage cells(grid->width, grid->height, QImage::Format_ARGB32);
        for (int r = 0; r < grid->height; ++r)
            for (int c = 0; c < grid->width; ++c) {
                const float v = grid->at(c, r);
                if (!std::isfinite(v) || v < view.heatmapThreshold()) {
                    cells.setPixel(c, r, 0);
                    continue;
                }
                const auto col = colorAt(view.colorMap(), (v - lo) / span);
                cells.setPixel(c, r, qRgba(col[0], col[1], col[2], 255));
            }
        p.setOpacity(view.heatmapOpacity());
        p.drawImage(screenRect(0, 0, grid->width * grid->cellSize, grid->height * grid->cellSize), cells);
        p.setOpacity(1.0);
    }
    p.end();
    return out;
}

void writeFigure(SlideView& view, const Viewport& vp, const QString& path) {
    const auto fail = [&](const QString& cause) { return IoError((path + QStringLiteral(": ") + cause).toStdString()); };
    const auto format = figureFormatForPath(path);
    if (!format)
        throw InvalidArgument((path + QStringLiteral(": unknown figure format '.%1' (use .png, .svg or .pdf)")
                                          .arg(QFileInfo(path).suffix()))
                                  .toStdString());
    QImage raster;
    try {
        raster = view.ensureGl() ? view.renderLayers(vp) : renderLayersWithoutGl(view, vp);
    } catch (const std::exception& e) {
        throw fail(QString::fromUtf8(e.what()));
    }
    const double s = overlayScale(vp);
    const QRectF area(0, 0, vp.width, vp.height);
    const auto overlay = [&](QPainter& p) {
        p.setRenderHint(QPainter::Antialiasing);
        paintAnnotations(p, view, vp, s);
        if (view.heatmap() && view.heatmapVisible())
            paintHeatmapLegend(p, area, view.colorMap(), view.heatmapRange(), view.heatmapThreshold(), s);
        const auto mpp = view.mpp();
        paintScaleBar(p, area, (mpp ? *mpp : 1.0) / vp.zoom, mpp.has_value(), s);
    };
    const QString title = QFileInfo(view.slidePath()).fileName();
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        throw fail(QStringLiteral("cannot write: ") + file.errorString());
    switch (*format) {
    case FigureFormat::Png: {
        QPainter p(&raster);
        overlay(p);
        p.end();
        if (!raster.save(&file, "PNG"))
            throw fail(QStringLiteral("cannot encode PNG: ") + file.errorString());
        break;
    }
    case FigureFormat::Svg: {
        QSvgGenerator svg;
        svg.setOutputDevice(&file);
        svg.setSize(QSize(vp.width, vp.height));
        svg.setViewBox(QRect(0, 0, vp.width, vp.height));
        svg.setResolution(96); // the size is written in mm: 96 dpi makes it vp.width CSS px wide
        svg.setTitle(title);
        svg.setDescription(QStringLiteral("NIC Studio figure of %1").arg(title));
        QPainter p;
        if (!p.begin(&svg))
            throw fail(QStringLiteral("cannot start the SVG"));
        p.drawImage(QRectF(area), raster);
        overlay(p);
        p.end();
        break;
    }
    case FigureFormat::Pdf: {
        QPdfWriter pdf(&file);
        pdf.setCreator(QStringLiteral("NIC Studio"));
        pdf.setTitle(title);
        pdf.setResolution(96);
        pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
        // One page the size of the figure at 96 dpi (1 px = 0.75 pt).
        pdf.setPageSize(QPageSize(QSizeF(vp.width * 0.75, vp.height * 0.75), QPageSize::Point, title, QPageSize::ExactMatch));
        QPainter p;
        if (!p.begin(&pdf))
            throw fail(QStringLiteral("cannot start the PDF"));
        const double k = std::min(pdf.width() / static_cast<double>(vp.width), pdf.height() / static_cast<double>(vp.height));
        p.scale(k, k);
        p.drawImage(QRectF(area), raster);
        overlay(p);
        p.end();
        break;
    }
    }
    if (!file.commit())
        throw fail(QStringLiteral("cannot write: ") + file.errorString());
}

// ---------------------------------------------------------------- FigureExporter

FigureExporter::FigureExporter(SlideView* view, const Viewport& vp, const QString& path, QObject* parent)
    : QObject(parent), view_(view), vp_(vp), path_(path) {
    timeout_ = new QTimer(this);
    timeout_->setSingleShot(true);
}

FigureExporter::~FigureExporter() {
    if (view_ && !done_)
        view_->setFigureRequest(std::nullopt);
}

void FigureExporter::start(int timeoutMs) {
    if (!view_) {
        QTimer::singleShot(0, this, [this] { finish(QStringLiteral("no view to export")); });
        return;
    }
    // Without OpenGL the figure is read from the slide directly; there are no tiles to wait for.
    withoutGl_ = !view_->ensureGl();
    if (!withoutGl_)
        view_->setFigureRequest(vp_);
    connect(view_, &SlideView::tileArrived, this, &FigureExporter::check);
    connect(view_, &SlideView::slideFailed, this, [this](const QString& message) { finish(message); });
    connect(view_, &QObject::destroyed, this, [this] { finish(QStringLiteral("the view was closed before the figure was written")); });
    connect(timeout_, &QTimer::timeout, this, [this, timeoutMs] {
        finish(QStringLiteral("%1: timed out after %2 s waiting for the slide's tiles").arg(path_).arg(timeoutMs / 1000));
    });
    timeout_->start(timeoutMs);
    QTimer::singleShot(0, this, &FigureExporter::check);
}

void FigureExporter::check() {
    if (done_)
        return;
    SlideView* view = view_.data();
    if (view == nullptr) {
        finish(QStringLiteral("the view was closed before the figure was written"));
        return;
    }
    if (const QString error = view->errorMessage(); !error.isEmpty()) {
        finish(error);
        return;
    }
    if (withoutGl_ ? !view->hasSlide() : !view->isFigureReady(vp_))
        return;
    try {
        writeFigure(*view, vp_, path_);
        finish(QString());
    } catch (const std::exception& e) {
        finish(QString::fromUtf8(e.what()));
    }
}

void FigureExporter::finish(const QString& error) {
    if (done_)
        return;
    done_ = true;
    timeout_->stop();
    if (view_)
        view_->setFigureRequest(std::nullopt);
    Q_EMIT finished(path_, error);
    if (autoDelete_)
        deleteLater();
}

} // namespace nic

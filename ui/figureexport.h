#pragma once
// Figure export: a view of a slide with its layers as PNG, SVG or PDF.
//
// Composition (the same for every format): SlideView::renderLayers() draws tiles, latent view and
// heatmap offscreen into a framebuffer object at the figure's own size (not a screen grab); on top of
// that raster, QPainter paints the annotations, the heatmap's colour legend and the scale bar. For PNG
// the painter targets the image; for SVG (QSvgGenerator) and PDF (QPdfWriter) the raster is embedded as
// an image and the annotations, legend and scale bar stay vector graphics. The live view's overlay uses
// the same legend and scale-bar painters, so a figure looks like the screen.
//
// Without OpenGL (the offscreen platform) the raster is composed on the CPU from the slide instead.
// Outputs are written atomically (QSaveFile: a temporary file beside the target, then rename).
//
// Dependencies run one way: figure export uses SlideView; the view never includes this header (the
// overlay painters and annotation geometry both use live in overlaypainters.h and annotationgeometry.h).
#include "ui/annotationgeometry.h"
#include "ui/colormap.h"
#include "ui/overlaypainters.h"
#include "ui/tilemath.h"

#include <QObject>
#include <QPointer>
#include <QString>

#include <optional>
#include <utility>
#include <vector>

class QPainter;
class QRectF;
class QTimer;

namespace nic {

class SlideView;
enum class FigureFormat { Png, Svg, Pdf };

/// The format for `path`'s extension (.png, .svg, .pdf; case-insensitive), or nullopt.
std::optional<FigureFormat> figureFormatForPath(const QString& path);

/// Parses "x,y,w,h" (level-0 px, w and h > 0). Returns nullopt when malformed.
std::optional<RectD> parseRegion(const QString& text);

/// The viewport of a figure `widthPx` wide: of `region` (level-0 px) when given, else of the view's
/// current viewport (same centre, same field of view). widthPx <= 0 keeps the view's width (or the
/// region's width at level 0, capped at 4096 px). The height follows from the aspect ratio.
/// Throws InvalidArgument when the region lies outside the slide or is empty.
Viewport figureViewport(const SlideView& view, const std::optional<RectD>& region, int widthPx);

/// The view's visible annotations as QPainter paths (outlines, translucent fills, dots, measurements
/// with their lengths) for viewport `vp`, in the view's colours; `s` scales line widths.
void paintAnnotations(QPainter& p, const SlideView& view, const Viewport& vp, double s);

/// The layers (tiles, latent view, heatmap) of `vp` composed with QPainter from the slide read at
/// view.figureLevel(vp): what writeFigure uses where there is no OpenGL (QT_QPA_PLATFORM=offscreen).
/// Reads the slide synchronously. Throws nic::Error (SlideError with the file and cause).
QImage renderLayersWithoutGl(const SlideView& view, const Viewport& vp);

/// Composes the figure of `vp` (size vp.width × vp.height) and writes it to `path` in the format of its
/// extension, atomically. Tiles not yet loaded are drawn from coarser levels; FigureExporter waits for
/// them first. Throws nic::Error whose message names `path` and the cause.
void writeFigure(SlideView& view, const Viewport& vp, const QString& path);

/// Waits (without blocking the event loop) until every tile a figure needs is loaded, then writes it
/// with writeFigure() and emits finished() once, with "" or the error. Deletes itself afterwards when
/// `autoDelete` (the default). A view that goes away or fails ends it with an error.
class FigureExporter : public QObject {
    Q_OBJECT
public:
    FigureExporter(SlideView* view, const Viewport& vp, const QString& path, QObject* parent = nullptr);
    ~FigureExporter() override;
    /// Starts waiting; gives up with an error after `timeoutMs`.
    void start(int timeoutMs = 120000);
    void setAutoDelete(bool on) { autoDelete_ = on; }

Q_SIGNALS:
    void finished(const QString& path, const QString& error);

private:
    void check();
    void finish(const QString& error);
    QPointer<SlideView> view_;
    Viewport vp_;
    QString path_;
    QTimer* timeout_ = nullptr;
    bool done_ = false;
    bool autoDelete_ = true;
    bool withoutGl_ = false;
};

} // namespace nic

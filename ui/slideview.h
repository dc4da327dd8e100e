#pragma once
// The OpenGL slide viewer widget: opening, navigation and the frame; it composes the parts that do the
// rest: a TileScheduler (which tiles to request, the byte-capped resident set and what to evict), one
// renderer per layer (TileLayer, LatentLayer, HeatmapLayer, AnnotationLayer) and the drawing tools
// (AnnotationTool).
//
// Threads: openSlide() opens the slide on QtConcurrent's pool (the UI never waits for IO); tiles are
// decoded by a TileLoader (worker pool) and arrive as QImages; textures are created only on the GUI
// thread, in paintGL() or a figure render, and kept in a byte-capped LRU (QSettings "viewer/tileCacheMiB",
// default 512). Drawing order per frame: the slide thumbnail (always there), every cached tile from the
// coarsest level down to the level of the current zoom (coarse tiles show until finer ones arrive),
// the heatmap, the annotations, then a QPainter overlay (scale bar, legend, tool feedback).
// Errors (a slide that cannot be opened or read) are shown in the view with their real cause and
// reported by slideFailed(); the widget stays usable.
#include "core/annotations/annotation.h"
#include "ui/annotationlayer.h"
#include "ui/annotationtool.h"
#include "ui/colormap.h"
#include "ui/heatmaplayer.h"
#include "ui/latentlayer.h"
#include "ui/layergl.h"
#include "ui/tilemath.h"
#include "ui/tilelayer.h"
#include "ui/tilescheduler.h"

#include <QElapsedTimer>
#include <QImage>
#include <QOpenGLFunctions_3_3_Core>
#include <QOpenGLShaderProgram>
#include <QOpenGLWidget>
#include <QPointF>
#include <QString>
#include <QStringList>

#include <memory>
#include <optional>
#include <vector>

class QPainter;
class QVariantAnimation;
class QTimer;

namespace nic {

class Slide;
class TileLoader;

/// Figures the view measures about itself (for the status bar, tests and benchmarks).
struct ViewStatistics {
    std::vector<double> frameMs;     ///< CPU time of recent paintGL calls (last 2000)
    std::vector<double> cachedFrameMs; ///< ... of those frames in which every visible tile was cached
    std::vector<double> decodeMs;    ///< decode time of recent tiles (last 2000)
    std::vector<double> uploadMs;    ///< GUI-thread texture upload time of recent tiles (last 2000)
    std::uint64_t visibleLookups = 0; ///< target-level visible tile lookups in paintGL
    std::uint64_t visibleHits = 0;    ///< ... of which were cached
    double lastFullDetailMs = -1.0;   ///< time from the last viewport jump to all visible tiles cached
};

class SlideView : public QOpenGLWidget, protected QOpenGLFunctions_3_3_Core {
    Q_OBJECT
public:
    explicit SlideView(QWidget* parent = nullptr);
    ~SlideView() override;

    /// Starts opening `path` in the background; slideOpened() or slideFailed() follows.
    void openSlide(const QString& path);
    bool hasSlide() const { return slide_ != nullptr; }
    bool isOpening() const { return opening_; }
    QString slidePath() const { return path_; }
    /// The last open/read error ("" if none).
    QString errorMessage() const { return error_; }
    std::shared_ptr<const Slide> slide() const { return slide_; }
    const Pyramid& pyramid() const { return tiles_.pyramid(); }
    QImage thumbnail() const { return tileLayer_.thumbnail(); }
    /// Level-0 µm per pixel, if the slide knows it.
    std::optional<double> mpp() const;

    // Navigation. Zoom is screen px per level-0 px.
    const Viewport& viewport() const { return vp_; }
    void setViewport(const Viewport& vp);
    void centerOn(PointD level0);
    void fitToWindow();
    /// Zooms by `factor` keeping the level-0 point under `screenAnchor` fixed; animated unless disabled.
    void zoomBy(double factor, QPointF screenAnchor);
    /// Sets the zoom for an objective magnification (needs mpp; returns false without it).
    bool setMagnification(double magnification);
    /// Current magnification (10× ≙ 1 µm per screen px), or nullopt when mpp is unknown.
    std::optional<double> magnification() const;
    void zoomToRect(const RectD& level0Rect);
    void setAnimationsEnabled(bool on) { animate_ = on; }
    bool isAnimating() const;
    double minZoom() const;
    double maxZoom() const;

    /// True when every tile of the current level that the viewport shows is cached as a texture.
    bool isFullyLoaded() const;
    std::size_t cachedTileCount() const { return tiles_.size(); }
    std::size_t cachedBytes() const { return tiles_.bytes(); }
    const ViewStatistics& statistics() const { return stats_; }
    void resetStatistics();
    /// With this on, paintGL ends with glFinish so frame times include rasterisation (benchmarks only).
    void setFinishFrames(bool on) { finishFrames_ = on; }
    TileLoader* loader() const { return loader_.get(); }

    // Heatmap layer.
    void setHeatmap(std::shared_ptr<const HeatmapGrid> grid);
    std::shared_ptr<const HeatmapGrid> heatmap() const { return heatmapLayer_.grid(); }
    void setHeatmapVisible(bool on);
    void setHeatmapOpacity(double opacity);
    /// Values below `value` are not drawn.
    void setHeatmapThreshold(double value);
    void setColorMap(ColorMapKind kind);
    ColorMapKind colorMap() const { return heatmapLayer_.colorMap(); }
    /// The value range the colour map spans (the grid's finite range).
    std::pair<float, float> heatmapRange() const { return heatmapLayer_.range(); }
    void setHeatmapRendering(HeatmapRendering mode);
    HeatmapRendering heatmapRendering() const { return heatmapLayer_.rendering(); }
    /// Draws the heatmap's iso-line at the threshold (isoContour() of heatmapgrid.h) as a 1 px outline in
    /// contourColor(), also while the heatmap's colours are hidden; nothing while the threshold is -inf.
    void setContourVisible(bool on);
    bool contourVisible() const { return heatmapLayer_.contourVisible(); }
    QColor contourColor() const { return HeatmapLayer::contourColor(); }
    /// The contour's segments in level-0 px (x0, y0, x1, y1 each), recomputed when grid or threshold change.
    const std::vector<float>& contourSegments() { return heatmapLayer_.contourSegments(); }
    /// Lines shown in the info box at the top left of the view (prediction, model, agreement); empty = no box.
    void setInfoLines(const QStringList& lines);
    QStringList infoLines() const { return infoLines_; }

    // Latent view layer (PCA colours of a compressed slide), drawn under the heatmap.
    void setLatentView(std::shared_ptr<const LatentRgb> latent);
    std::shared_ptr<const LatentRgb> latentView() const { return latentLayer_.latent(); }
    void setLatentVisible(bool on);
    void setLatentOpacity(double opacity);

    // Annotation layer. The view draws the set and, with a drawing tool, appends to it.
    void setAnnotations(std::shared_ptr<AnnotationSet> set);
    std::shared_ptr<AnnotationSet> annotations() const { return annotationLayer_.annotations(); }
    void setAnnotationsVisible(bool on);
    void setGroupVisible(const QString& group, bool on);
    bool isGroupVisible(const QString& group) const { return annotationLayer_.isGroupVisible(group); }
    void setSelectedAnnotation(int index);
    /// The colour an annotation is drawn in: its group's colour, else its own, else ASAP's yellow.
    QColor annotationColor(const Annotation& a) const { return annotationLayer_.colorOf(a); }
    void setTool(ViewTool tool);
    ViewTool tool() const { return drawingTool_->tool(); }
    /// Level-0 vertices of the polygon being drawn (not yet an annotation); empty when none.
    std::vector<Point> polygonInProgress() const { return drawingTool_->polygonInProgress(); }
    /// Group new annotations are put in ("" = none).
    void setDrawingGroup(const QString& group) { drawingTool_->setGroup(group); }

    /// Renders the current view (tiles + layers + overlay) into an image of the widget's size.
    QImage renderToImage();

    // Figures (see figureexport.h). A figure viewport has its own size (the image size) and zoom.
    /// Also requests the tiles a figure of `vp` needs, until cleared with nullopt.
    void setFigureRequest(std::optional<Viewport> vp);
    /// The level a figure of `vp` is drawn from: the level for its zoom, or a coarser one when that
    /// level's tiles would take more than half the tile cache.
    int figureLevel(const Viewport& vp) const;
    /// True when every tile of figureLevel(vp) inside `vp` is cached or waiting for upload.
    bool isFigureReady(const Viewport& vp) const;
    /// Renders tiles, latent view and heatmap of `vp` (no annotations, no overlay) offscreen into a
    /// framebuffer object of vp.width × vp.height and returns it. Works on a hidden widget (the GL
    /// context is created on demand). Throws nic::Error naming the cause when GL is unavailable or the
    /// size exceeds the GL limits.
    QImage renderLayers(const Viewport& vp);
    /// Creates the GL context if there is none yet (also on a hidden widget). False when this platform
    /// has no OpenGL (QT_QPA_PLATFORM=offscreen without a display): figures are then composed on the
    /// CPU (figureexport.h).
    bool ensureGl();
    std::shared_ptr<const LatentRgb> latentLayer() const { return latentLayer_.isVisible() ? latentLayer_.latent() : nullptr; }
    double latentOpacity() const { return latentLayer_.opacity(); }
    bool heatmapVisible() const { return heatmapLayer_.isVisible(); }
    double heatmapOpacity() const { return heatmapLayer_.opacity(); }
    double heatmapThreshold() const { return heatmapLayer_.threshold(); }
    bool annotationsVisible() const { return annotationLayer_.isVisible(); }
    int selectedAnnotation() const { return annotationLayer_.selected(); }

Q_SIGNALS:
    void slideOpened();
    void slideFailed(const QString& message);
    void viewportChanged();
    /// The cursor moved over the view; `level0` is its slide position, `inside` whether it is on the slide.
    void cursorMoved(QPointF level0, bool inside);
    void fullyLoaded();
    /// A decoded tile arrived (it is uploaded in the next paint or figure render).
    void tileArrived();
    /// A drawing tool added annotation `index` to annotations().
    void annotationAdded(int index);
    /// The polygon being drawn gained or lost a vertex, or was finished or abandoned.
    void drawingChanged();
    /// A measurement was made (µm when mpp is known, else level-0 px).
    void measured(double length, bool micrometres);

protected:
    void initializeGL() override;
    void resizeGL(int w, int h) override;
    void paintGL() override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void mouseReleaseEvent(QMouseEvent* e) override;
    void mouseDoubleClickEvent(QMouseEvent* e) override;
    void wheelEvent(QWheelEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;
    void leaveEvent(QEvent* e) override;

private:
    struct OpenResult;
    void onOpened(const OpenResult& r);
    void onTileReady(const TileKey& key, const QImage& image, double decodeMs);
    void scheduleRequests();
    void updateRequests();
    void viewportMoved(bool jump);
    void clampViewport();
    void releaseGl();
    /// True when every tile of `level` inside `vp` is cached or waiting for upload.
    bool tilesAtHand(const Viewport& vp, int level) const;
    /// Tiles decoded and queued for upload.
    TileKeySet waitingTiles() const;
    /// Draws tiles (coarse ones first where `level` is incomplete), latent view, heatmap and, when
    /// `annotationsToo`, annotations for vp_. Returns whether every visible tile of `level` was cached.
    bool drawScene(int level, bool annotationsToo, bool recordStatistics);
    void paintInfo(QPainter& p);
    /// The GL objects and viewport the layers draw with (the context must be current).
    LayerGl layerGl();
    void paintOverlay(QPainter& p);
    PointD toLevel0(QPointF screen) const { return vp_.toLevel0({screen.x(), screen.y()}); }

    // Slide and tiles.
    QString path_;
    QString error_;
    bool opening_ = false;
    quint64 openSerial_ = 0;
    std::shared_ptr<const Slide> slide_;
    std::unique_ptr<TileLoader> loader_;
    TileScheduler tiles_; // what to request, resident textures (GL names) and what to evict
    TileLayer tileLayer_{tiles_}; // decoded tiles waiting for upload, the thumbnail, drawing the tiles
    QTimer* requestTimer_ = nullptr;
    QTimer* arrivalTimer_ = nullptr; // coalesces repaints while tiles stream in

    // View state.
    Viewport vp_;
    bool fitPending_ = false;
    bool animate_ = true;
    QVariantAnimation* zoomAnim_ = nullptr;
    double animStartZoom_ = 1.0;
    double animTargetZoom_ = 1.0;
    QPointF animAnchor_;
    PointD animAnchor0_;
    bool dragging_ = false;
    QPointF lastMouse_;
    QElapsedTimer jumpTimer_;
    bool awaitingFullDetail_ = false;
    bool wasFullyLoaded_ = false;
    bool slideChanged_ = false;     // the file changed since it was opened: no more tile requests
    bool prefetchHeldBack_ = false; // updateRequests left the prefetch out: the view was still incomplete
    ViewStatistics stats_;
    bool finishFrames_ = false;
    std::optional<Viewport> figureRequest_;

    // GL objects (valid between initializeGL and releaseGl).
    bool glReady_ = false;
    bool glUnavailable_ = false; // ensureGl() found no OpenGL
    QOpenGLShaderProgram tileProg_;
    QOpenGLShaderProgram heatProg_;
    QOpenGLShaderProgram solidProg_;
    GLuint vao_ = 0;
    GLuint quadVbo_ = 0;
    GLuint dynVbo_ = 0;
    GLuint nearestSampler_ = 0;

    // Layers.
    HeatmapLayer heatmapLayer_;
    QStringList infoLines_;
    LatentLayer latentLayer_;
    AnnotationLayer annotationLayer_;

    AnnotationTool* drawingTool_ = nullptr; // the drawing tools' state and mouse handling
};

} // namespace nic

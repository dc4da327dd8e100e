#include "ui/slideview.h"

#include "core/base/error.h"
#include "core/slide/slide.h"
#include "ui/overlaypainters.h"
#include "ui/qtimage.h"
#include "ui/tileloader.h"

#include <QFutureWatcher>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLFramebufferObject>
#include <QPainter>
#include <QSettings>
#include <QTimer>
#include <QVariantAnimation>
#include <QWheelEvent>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>
#include <cmath>

namespace nic {

namespace {

constexpr std::size_t kStatWindow = 2000;

std::size_t cacheBytesFromSettings() {
    const QSettings settings;
    const qlonglong mib = settings.value(QStringLiteral("viewer/tileCacheMiB"), 512).toLongLong();
    return static_cast<std::size_t>(std::clamp<qlonglong>(mib, 16, 64 * 1024)) * 1024 * 1024;
}

void pushStat(std::vector<double>& v, double x) {
    if (v.size() >= kStatWindow)
        v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(kStatWindow / 2));
    v.push_back(x);
}

} // namespace

struct SlideView::OpenResult {
    quint64 serial = 0;
    std::shared_ptr<const Slide> slide;
    QImage thumbnail;
    QString error;
};

SlideView::SlideView(QWidget* parent)
    : QOpenGLWidget(parent), tiles_(cacheBytesFromSettings(), [this](const TileKey&, GLuint tex) {
          // Evictions happen in paintGL or with the context made current (releaseGl).
          if (glReady_ && context())
              glDeleteTextures(1, &tex);
      }) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setMinimumSize(200, 150);
    requestTimer_ = new QTimer(this);
    requestTimer_->setSingleShot(true);
    requestTimer_->setInterval(0);
    connect(requestTimer_, &QTimer::timeout, this, &SlideView::updateRequests);
    arrivalTimer_ = new QTimer(this);
    arrivalTimer_->setSingleShot(true);
    arrivalTimer_->setInterval(30);
    connect(arrivalTimer_, &QTimer::timeout, this, [this] { update(); });
    drawingTool_ = new AnnotationTool(annotationLayer_, this);
    connect(drawingTool_, &AnnotationTool::changed, this, [this] { update(); });
    connect(drawingTool_, &AnnotationTool::annotationAdded, this, &SlideView::annotationAdded);
    connect(drawingTool_, &AnnotationTool::drawingChanged, this, &SlideView::drawingChanged);
    connect(drawingTool_, &AnnotationTool::measured, this, &SlideView::measured);
    zoomAnim_ = new QVariantAnimation(this);
    zoomAnim_->setStartValue(0.0);
    zoomAnim_->setEndValue(1.0);
    zoomAnim_->setDuration(160);
    zoomAnim_->setEasingCurve(QEasingCurve::OutCubic);
    connect(zoomAnim_, &QVariantAnimation::valueChanged, this, [this](const QVariant& v) {
        const double t = v.toDouble();
        const double z = animStartZoom_ * std::pow(animTargetZoom_ / animStartZoom_, t);
        vp_.zoom = z;
        vp_.centerX = animAnchor0_.x - (animAnchor_.x() - vp_.width / 2.0) / z;
        vp_.centerY = animAnchor0_.y - (animAnchor_.y() - vp_.height / 2.0) / z;
        viewportMoved(false);
    });
}

SlideView::~SlideView() {
    loader_.reset(); // waits for in-flight decodes
    releaseGl();
}

void SlideView::releaseGl() {
    if (!glReady_)
        return;
    const bool current = context() && context()->isValid();
    if (current)
        makeCurrent();
    tiles_.clear();
    if (current) {
        if (quadVbo_)
            glDeleteBuffers(1, &quadVbo_);
        if (dynVbo_)
            glDeleteBuffers(1, &dynVbo_);
        if (vao_)
            glDeleteVertexArrays(1, &vao_);
        if (nearestSampler_)
            glDeleteSamplers(1, &nearestSampler_);
    }
    nearestSampler_ = 0;
    heatmapLayer_.releaseGl(current ? this : nullptr);
    latentLayer_.releaseGl(current ? this : nullptr);
    tileLayer_.releaseGl(current ? this : nullptr);
    quadVbo_ = dynVbo_ = vao_ = 0;
    glReady_ = false;
    if (current)
        doneCurrent();
}

// ---------------------------------------------------------------- opening

void SlideView::openSlide(const QString& path) {
    loader_.reset();
    if (glReady_) {
        makeCurrent();
        tiles_.reset({});
        doneCurrent();
    } else {
        tiles_.reset({});
    }
    tileLayer_.reset();
    slide_.reset();
    path_ = path;
    error_.clear();
    slideChanged_ = false;
    opening_ = true;
    const quint64 serial = ++openSerial_;
    auto* watcher = new QFutureWatcher<OpenResult>(this);
    connect(watcher, &QFutureWatcher<OpenResult>::finished, this, [this, watcher] {
        const OpenResult r = watcher->result();
        watcher->deleteLater();
        if (r.serial == openSerial_)
            onOpened(r);
    });
    watcher->setFuture(QtConcurrent::run([serial, p = path.toStdString()] {
        OpenResult r;
        r.serial = serial;
        try {
            auto slide = std::make_shared<Slide>(std::filesystem::path(p));
            r.thumbnail = toQImage(slide->thumbnail(1024));
            r.slide = std::move(slide);
        } catch (const std::exception& e) {
            r.error = QString::fromUtf8(e.what());
        } catch (...) {
            r.error = QStringLiteral("%1: unknown error while opening").arg(QString::fromStdString(p));
        }
        return r;
    }));
    update();
}

void SlideView::onOpened(const OpenResult& r) {
    opening_ = false;
    if (!r.error.isEmpty() || !r.slide) {
        error_ = r.error.isEmpty() ? QStringLiteral("cannot open %1").arg(path_) : r.error;
        update();
        Q_EMIT slideFailed(error_);
        return;
    }
    slide_ = r.slide;
    tileLayer_.setThumbnail(r.thumbnail);
    Pyramid pyramid;
    for (const auto& lv : slide_->levels())
        pyramid.levels.push_back({lv.width, lv.height, lv.downsample});
    pyramid.tileSize = 256;
    tiles_.reset(pyramid); // empty already (openSlide)
    loader_ = std::make_unique<TileLoader>(std::make_shared<SlideTileSource>(slide_, tiles_.pyramid()));
    connect(loader_.get(), &TileLoader::tileReady, this,
            [this](const TileKey& k, const QImage& img, quint64, double ms) { onTileReady(k, img, ms); });
    connect(loader_.get(), &TileLoader::tileFailed, this, [this](const TileKey&, const QString& msg) {
        // A slide file that changed since it was opened (deleted, replaced, truncated) will fail every
        // further read: stop asking; what is cached stays on screen with the error.
        if (!slideChanged_ && slide_) {
            try {
                slide_->checkUnchanged();
            } catch (const SlideChangedError&) {
                slideChanged_ = true;
                loader_->cancelPending();
            } catch (const std::exception&) {
            }
        }
        if (error_.isEmpty()) {
            error_ = msg;
            Q_EMIT slideFailed(msg);
        }
        update();
    });
    if (width() > 0 && height() > 0)
        vp_ = fitViewport(tiles_.pyramid(), width(), height());
    else
        fitPending_ = true;
    Q_EMIT slideOpened();
    viewportMoved(true);
}

std::optional<double> SlideView::mpp() const {
    if (slide_ && slide_->resolution())
        return slide_->resolution()->mppX;
    return std::nullopt;
}

// ---------------------------------------------------------------- tiles

void SlideView::onTileReady(const TileKey& key, const QImage& image, double decodeMs) {
    pushStat(stats_.decodeMs, decodeMs);
    tileLayer_.queue(key, image);
    // While tiles stream in, repaint at most every 30 ms instead of once per tile: on a small machine a
    // frame per arrival takes the CPU the decoders need. The tile that completes the view paints at once.
    if (vp_.width > 0 && slide_ && tilesAtHand(vp_, levelForZoom(tiles_.pyramid(), vp_.zoom))) {
        arrivalTimer_->stop();
        update();
        // The view's tiles are all here: now the prefetch ring and the next level (held back until
        // then, see updateRequests).
        if (prefetchHeldBack_)
            scheduleRequests();
    } else if (!arrivalTimer_->isActive()) {
        arrivalTimer_->start();
    }
    Q_EMIT tileArrived();
}

void SlideView::scheduleRequests() {
    if (!requestTimer_->isActive())
        requestTimer_->start();
}

void SlideView::updateRequests() {
    if (!loader_ || slideChanged_)
        return;
    // Tiles resident or still waiting for upload are not requested again.
    TileRequestPlan plan = tiles_.plan(vp_, figureRequest_, waitingTiles());
    if (vp_.width > 0)
        prefetchHeldBack_ = plan.prefetchHeldBack;
    loader_->request(plan.wanted);
}

TileKeySet SlideView::waitingTiles() const { return tileLayer_.waiting(); }

bool SlideView::isFullyLoaded() const { return slide_ && tiles_.isFullyResident(vp_); }

void SlideView::resetStatistics() {
    stats_ = {};
    tiles_.resetStatistics();
}

// ---------------------------------------------------------------- GL

void SlideView::initializeGL() {
    initializeOpenGLFunctions();
    connect(context(), &QOpenGLContext::aboutToBeDestroyed, this, &SlideView::releaseGl, Qt::DirectConnection);
    auto build = [](QOpenGLShaderProgram& p, const char* vert, const char* frag) {
        if (!p.addShaderFromSourceFile(QOpenGLShader::Vertex, QString::fromLatin1(vert)) ||
            !p.addShaderFromSourceFile(QOpenGLShader::Fragment, QString::fromLatin1(frag)) || !p.link())
            qWarning("nic-studio: shader %s/%s failed: %s", vert, frag, qPrintable(p.log()));
    };
    build(tileProg_, ":/shaders/quad.vert", ":/shaders/tile.frag");
    build(heatProg_, ":/shaders/quad.vert", ":/shaders/heatmap.frag");
    build(solidProg_, ":/shaders/solid.vert", ":/shaders/solid.frag");
    glGenVertexArrays(1, &vao_);
    glBindVertexArray(vao_);
    const float quad[] = {0, 0, 1, 0, 0, 1, 1, 1};
    glGenBuffers(1, &quadVbo_);
    glBindBuffer(GL_ARRAY_BUFFER, quadVbo_);
    glBufferData(GL_ARRAY_BUFFER, sizeof quad, quad, GL_STATIC_DRAW);
    glGenBuffers(1, &dynVbo_);
    glBindVertexArray(0);
    glGenSamplers(1, &nearestSampler_);
    glSamplerParameteri(nearestSampler_, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glSamplerParameteri(nearestSampler_, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glSamplerParameteri(nearestSampler_, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glSamplerParameteri(nearestSampler_, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glReady_ = true;
    tileLayer_.glCreated();
    heatmapLayer_.glCreated();
    latentLayer_.glCreated();
}

void SlideView::resizeGL(int w, int h) {
    vp_.width = w;
    vp_.height = h;
    if (fitPending_ && slide_) {
        vp_ = fitViewport(tiles_.pyramid(), w, h);
        fitPending_ = false;
    }
    viewportMoved(false);
}

bool SlideView::drawScene(int level, bool annotationsToo, bool recordStatistics) {
    glBindVertexArray(vao_);
    glBindBuffer(GL_ARRAY_BUFFER, quadVbo_);
    glEnableVertexAttribArray(0);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    const LayerGl g = layerGl();
    const TileLayer::DrawResult drawn = tileLayer_.draw(g, level, recordStatistics);
    if (recordStatistics) {
        stats_.visibleLookups += drawn.lookups;
        stats_.visibleHits += drawn.hits;
    }
    const bool complete = drawn.complete;

    latentLayer_.draw(g);
    heatmapLayer_.draw(g);
    if (annotationsToo)
        annotationLayer_.draw(g);
    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    glUseProgram(0);
    return complete;
}

void SlideView::paintGL() {
    QElapsedTimer frame;
    frame.start();
    // Raw GL inside begin/endNativePainting, so QPainter's engine resynchronises its own GL state
    // before the overlay is painted on top.
    QPainter painter(this);
    painter.beginNativePainting();
    glClearColor(0.19F, 0.19F, 0.20F, 1.0F);
    // The stencil is cleared in drawAnnotations, only when a fill needs it: a full-screen clear costs
    // about as much as drawing the tiles with a software rasteriser.
    glClear(GL_COLOR_BUFFER_BIT);
    glDisable(GL_DEPTH_TEST);
    glDisable(GL_CULL_FACE);
    glDisable(GL_BLEND);
    glDisable(GL_STENCIL_TEST);
    glDisable(GL_SCISSOR_TEST);

    bool complete = false;
    if (slide_) {
        tileLayer_.uploadPending(layerGl(), false, [this](double ms) { pushStat(stats_.uploadMs, ms); });
        if (tileLayer_.hasPending())
            QTimer::singleShot(0, this, [this] { update(); });
        complete = drawScene(levelForZoom(tiles_.pyramid(), vp_.zoom), true, true);
        if (complete && !wasFullyLoaded_) {
            if (awaitingFullDetail_) {
                stats_.lastFullDetailMs = static_cast<double>(jumpTimer_.nsecsElapsed()) / 1e6;
                awaitingFullDetail_ = false;
            }
            QTimer::singleShot(0, this, [this] { Q_EMIT fullyLoaded(); });
        }
        wasFullyLoaded_ = complete;
    }
    painter.endNativePainting();
    paintOverlay(painter);
    painter.end();
    if (finishFrames_)
        glFinish();
    const double ms = static_cast<double>(frame.nsecsElapsed()) / 1e6;
    pushStat(stats_.frameMs, ms);
    if (complete)
        pushStat(stats_.cachedFrameMs, ms);
}

// ---------------------------------------------------------------- figures

void SlideView::setFigureRequest(std::optional<Viewport> vp) {
    figureRequest_ = vp;
    scheduleRequests();
}

int SlideView::figureLevel(const Viewport& vp) const { return tiles_.figureLevel(vp); }

bool SlideView::tilesAtHand(const Viewport& vp, int level) const { return tiles_.tilesAtHand(vp, level, waitingTiles()); }

bool SlideView::isFigureReady(const Viewport& vp) const {
    return slide_ && vp.width > 0 && vp.height > 0 && tilesAtHand(vp, figureLevel(vp));
}

bool SlideView::ensureGl() {
    if (!glReady_ && !glUnavailable_) {
        grabFramebuffer(); // creates the context and runs initializeGL, also on a hidden widget
        glUnavailable_ = !glReady_;
    }
    return glReady_ && context() && context()->isValid();
}

QImage SlideView::renderLayers(const Viewport& vp) {
    if (!slide_)
        throw Error("no slide is open");
    if (vp.width <= 0 || vp.height <= 0)
        throw InvalidArgument("empty figure size " + std::to_string(vp.width) + " x " + std::to_string(vp.height));
    if (!ensureGl())
        throw Error("OpenGL is not available (no GL context could be created on this display)");
    makeCurrent();
    GLint maxSize = 0;
    glGetIntegerv(GL_MAX_RENDERBUFFER_SIZE, &maxSize);
    GLint maxTex = 0;
    glGetIntegerv(GL_MAX_TEXTURE_SIZE, &maxTex);
    maxSize = std::min(maxSize, maxTex);
    if (vp.width > maxSize || vp.height > maxSize) {
        doneCurrent();
        throw InvalidArgument("a figure of " + std::to_string(vp.width) + " x " + std::to_string(vp.height) +
                              " px exceeds this OpenGL's limit of " + std::to_string(maxSize) + " px per side");
    }
    tileLayer_.uploadPending(layerGl(), true, [this](double ms) { pushStat(stats_.uploadMs, ms); });
    QImage image;
    {
        QOpenGLFramebufferObjectFormat format;
        format.setAttachment(QOpenGLFramebufferObject::CombinedDepthStencil);
        QOpenGLFramebufferObject fbo(vp.width, vp.height, format);
        if (!fbo.isValid()) {
            doneCurrent();
            throw Error("cannot create an offscreen framebuffer of " + std::to_string(vp.width) + " x " +
                        std::to_string(vp.height) + " px");
        }
        fbo.bind();
        glViewport(0, 0, vp.width, vp.height);
        glClearColor(1.0F, 1.0F, 1.0F, 1.0F); // figures: glass-white outside the slide
        glClear(GL_COLOR_BUFFER_BIT | GL_STENCIL_BUFFER_BIT);
        glDisable(GL_DEPTH_TEST);
        glDisable(GL_CULL_FACE);
        glDisable(GL_BLEND);
        glDisable(GL_STENCIL_TEST);
        glDisable(GL_SCISSOR_TEST);
        const Viewport saved = vp_;
        vp_ = vp;
        drawScene(figureLevel(vp), false, false);
        vp_ = saved;
        glFinish();
        image = fbo.toImage().convertToFormat(QImage::Format_RGB32);
        fbo.release();
    }
    doneCurrent();
    return image;
}

// ---------------------------------------------------------------- heatmap and latent layers

void SlideView::setHeatmap(std::shared_ptr<const HeatmapGrid> grid) {
    heatmapLayer_.setGrid(std::move(grid));
    update();
}

void SlideView::setHeatmapRendering(HeatmapRendering mode) {
    heatmapLayer_.setRendering(mode);
    update();
}

void SlideView::setContourVisible(bool on) {
    heatmapLayer_.setContourVisible(on);
    update();
}

void SlideView::setHeatmapVisible(bool on) {
    heatmapLayer_.setVisible(on);
    update();
}

void SlideView::setHeatmapOpacity(double opacity) {
    heatmapLayer_.setOpacity(opacity);
    update();
}

void SlideView::setHeatmapThreshold(double value) {
    heatmapLayer_.setThreshold(value);
    update();
}

void SlideView::setColorMap(ColorMapKind kind) {
    heatmapLayer_.setColorMap(kind);
    update();
}

void SlideView::setInfoLines(const QStringList& lines) {
    infoLines_ = lines;
    update();
}

void SlideView::setLatentView(std::shared_ptr<const LatentRgb> latent) {
    latentLayer_.setLatent(std::move(latent));
    update();
}

void SlideView::setLatentVisible(bool on) {
    latentLayer_.setVisible(on);
    update();
}

void SlideView::setLatentOpacity(double opacity) {
    latentLayer_.setOpacity(opacity);
    update();
}

// ---------------------------------------------------------------- annotations (annotationlayer.h)

void SlideView::setAnnotations(std::shared_ptr<AnnotationSet> set) {
    annotationLayer_.setAnnotations(std::move(set));
    update();
}

void SlideView::setAnnotationsVisible(bool on) {
    annotationLayer_.setVisible(on);
    update();
}

void SlideView::setGroupVisible(const QString& group, bool on) {
    annotationLayer_.setGroupVisible(group, on);
    update();
}

void SlideView::setSelectedAnnotation(int index) {
    annotationLayer_.setSelected(index);
    update();
}

LayerGl SlideView::layerGl() {
    LayerGl g;
    g.gl = this;
    g.tileProgram = &tileProg_;
    g.heatProgram = &heatProg_;
    g.solidProgram = &solidProg_;
    g.quadVbo = quadVbo_;
    g.dynVbo = dynVbo_;
    g.nearestSampler = nearestSampler_;
    g.vp = vp_;
    return g;
}

// ---------------------------------------------------------------- overlay (QPainter)

void SlideView::paintInfo(QPainter& p) {
    if (infoLines_.isEmpty())
        return;
    const QFontMetrics fm = p.fontMetrics();
    int w = 0;
    for (const auto& line : infoLines_)
        w = std::max(w, fm.horizontalAdvance(line));
    const int lineH = fm.height();
    const QRect box(8, 8, w + 16, lineH * static_cast<int>(infoLines_.size()) + 10);
    p.save();
    p.setRenderHint(QPainter::Antialiasing, false);
    p.fillRect(box, QColor(0, 0, 0, 170));
    p.setPen(QColor(235, 235, 235));
    for (int i = 0; i < infoLines_.size(); ++i)
        p.drawText(QRect(box.x() + 8, box.y() + 5 + i * lineH, w + 4, lineH), Qt::AlignLeft | Qt::AlignVCenter, infoLines_[i]);
    p.restore();
}

void SlideView::paintOverlay(QPainter& p) {
    p.setRenderHint(QPainter::Antialiasing);
    if (!slide_) {
        p.setPen(error_.isEmpty() ? QColor(220, 220, 220) : QColor(255, 140, 120));
        QString text = opening_ ? tr("Opening %1 …").arg(path_)
                                : (error_.isEmpty() ? tr("Open a slide (File ▸ Open, drag and drop, or command line)")
                                                    : tr("Cannot open the slide:\n%1").arg(error_));
        p.drawText(rect().adjusted(20, 20, -20, -20), Qt::AlignCenter | Qt::TextWordWrap, text);
        return;
    }
    if (!error_.isEmpty()) {
        p.setPen(QColor(255, 140, 120));
        p.drawText(rect().adjusted(10, 10, -10, -10), Qt::AlignTop | Qt::AlignHCenter | Qt::TextWordWrap, error_);
    }
    // Scale bar (bottom left) and heatmap legend (bottom right): the painters figures use too.
    const auto slideMpp = mpp();
    paintScaleBar(p, QRectF(rect()), (slideMpp ? *slideMpp : 1.0) / vp_.zoom, slideMpp.has_value(), 1.0);
    if (heatmap() && heatmapVisible())
        paintHeatmapLegend(p, QRectF(rect()), colorMap(), heatmapRange(), heatmapThreshold(), 1.0);
    paintInfo(p);
    // Shape being drawn.
    drawingTool_->paint(p, vp_, mpp());
    // Lengths of saved measurements.
    if (const auto& set = annotationLayer_.annotations(); set && annotationLayer_.isVisible()) {
        const auto m = mpp();
        p.setPen(Qt::white);
        for (const auto& a : set->annotations) {
            if (a.type != AnnotationType::Measurement || a.coordinates.size() != 2 ||
                !annotationLayer_.isGroupVisible(QString::fromStdString(a.group)))
                continue;
            const double len0 = std::hypot(a.coordinates[1].x - a.coordinates[0].x, a.coordinates[1].y - a.coordinates[0].y);
            const PointD s = vp_.toScreen({a.coordinates[1].x, a.coordinates[1].y});
            if (s.x < -100 || s.y < -100 || s.x > width() + 100 || s.y > height() + 100)
                continue;
            const QString text = m ? QString::fromStdString(formatLength(len0 * *m)) : QStringLiteral("%1 px").arg(len0, 0, 'f', 1);
            const QRectF box(s.x + 6, s.y - 22, p.fontMetrics().horizontalAdvance(text) + 8, 18);
            p.fillRect(box, QColor(0, 0, 0, 160));
            p.drawText(box, Qt::AlignCenter, text);
        }
    }
}

QImage SlideView::renderToImage() { return grabFramebuffer(); }

// ---------------------------------------------------------------- navigation

double SlideView::minZoom() const { return slide_ ? fitZoom(tiles_.pyramid(), std::max(vp_.width, 1), std::max(vp_.height, 1)) / 4.0 : 1e-6; }

double SlideView::maxZoom() const { return 16.0; }

void SlideView::setViewport(const Viewport& vp) {
    zoomAnim_->stop();
    const int w = vp_.width;
    const int h = vp_.height;
    vp_ = vp;
    vp_.width = w;
    vp_.height = h;
    vp_.zoom = std::clamp(vp_.zoom, minZoom(), maxZoom());
    viewportMoved(true);
}

void SlideView::centerOn(PointD p) {
    zoomAnim_->stop();
    vp_.centerX = p.x;
    vp_.centerY = p.y;
    viewportMoved(true);
}

void SlideView::fitToWindow() {
    if (!slide_)
        return;
    zoomAnim_->stop();
    vp_ = fitViewport(tiles_.pyramid(), vp_.width, vp_.height);
    viewportMoved(true);
}

void SlideView::zoomToRect(const RectD& r) {
    if (!slide_)
        return;
    zoomAnim_->stop();
    Viewport v = viewportForRect(r, vp_.width, vp_.height, 0.15);
    v.zoom = std::clamp(v.zoom, minZoom(), std::min(maxZoom(), 4.0));
    vp_ = v;
    viewportMoved(true);
}

bool SlideView::isAnimating() const { return zoomAnim_->state() == QAbstractAnimation::Running; }

void SlideView::zoomBy(double factor, QPointF anchor) {
    if (!slide_ || vp_.width <= 0)
        return;
    const double base = isAnimating() ? animTargetZoom_ : vp_.zoom;
    const double target = std::clamp(base * factor, minZoom(), maxZoom());
    if (!animate_) {
        vp_ = zoomAround(vp_, {anchor.x(), anchor.y()}, target);
        viewportMoved(false);
        return;
    }
    zoomAnim_->stop();
    animStartZoom_ = vp_.zoom;
    animTargetZoom_ = target;
    animAnchor_ = anchor;
    animAnchor0_ = toLevel0(anchor);
    zoomAnim_->start();
}

std::optional<double> SlideView::magnification() const {
    if (const auto m = mpp())
        return magnificationForZoom(vp_.zoom, *m);
    return std::nullopt;
}

bool SlideView::setMagnification(double magnification) {
    const auto m = mpp();
    if (!m)
        return false;
    const double target = zoomForMagnification(magnification, *m);
    if (animate_) {
        zoomBy(target / vp_.zoom, QPointF(vp_.width / 2.0, vp_.height / 2.0));
    } else {
        vp_.zoom = std::clamp(target, minZoom(), maxZoom());
        viewportMoved(true);
    }
    return true;
}

void SlideView::clampViewport() {
    if (!slide_)
        return;
    vp_.centerX = std::clamp(vp_.centerX, 0.0, tiles_.pyramid().width());
    vp_.centerY = std::clamp(vp_.centerY, 0.0, tiles_.pyramid().height());
}

void SlideView::viewportMoved(bool jump) {
    clampViewport();
    if (jump && slide_) {
        jumpTimer_.start();
        awaitingFullDetail_ = true;
        wasFullyLoaded_ = false;
    }
    scheduleRequests();
    update();
    Q_EMIT viewportChanged();
}

void SlideView::mousePressEvent(QMouseEvent* e) {
    lastMouse_ = e->position();
    const bool drawButton = e->button() == Qt::LeftButton && drawingTool_->tool() != ViewTool::Navigate && slide_;
    if (!drawButton) {
        dragging_ = e->button() == Qt::LeftButton || e->button() == Qt::RightButton || e->button() == Qt::MiddleButton;
        if (dragging_)
            setCursor(Qt::ClosedHandCursor);
        return;
    }
    drawingTool_->press(toLevel0(e->position()));
}

void SlideView::mouseMoveEvent(QMouseEvent* e) {
    const QPointF pos = e->position();
    if (dragging_) {
        const QPointF d = pos - lastMouse_;
        vp_.centerX -= d.x() / vp_.zoom;
        vp_.centerY -= d.y() / vp_.zoom;
        viewportMoved(false);
    }
    lastMouse_ = pos;
    const PointD p = toLevel0(pos);
    drawingTool_->hover(p);
    if (slide_)
        Q_EMIT cursorMoved(QPointF(p.x, p.y), p.x >= 0 && p.y >= 0 && p.x < tiles_.pyramid().width() && p.y < tiles_.pyramid().height());
}

void SlideView::mouseReleaseEvent(QMouseEvent* e) {
    if (dragging_) {
        dragging_ = false;
        unsetCursor();
        return;
    }
    if (e->button() == Qt::LeftButton)
        drawingTool_->release(toLevel0(e->position()), vp_.zoom, mpp());
}

void SlideView::mouseDoubleClickEvent(QMouseEvent* e) {
    if (drawingTool_->tool() == ViewTool::Polygon) {
        // The double-click's first press already added a vertex at this place.
        drawingTool_->finish(vp_.zoom, mpp());
        return;
    }
    if (drawingTool_->tool() == ViewTool::Navigate && e->button() == Qt::LeftButton)
        zoomBy(2.0, e->position());
}

void SlideView::wheelEvent(QWheelEvent* e) {
    const double steps = e->angleDelta().y() / 120.0;
    if (steps != 0.0)
        zoomBy(std::pow(1.25, steps), e->position());
    e->accept();
}

void SlideView::keyPressEvent(QKeyEvent* e) {
    const double panX = vp_.width * 0.15 / vp_.zoom;
    const double panY = vp_.height * 0.15 / vp_.zoom;
    const QPointF centre(vp_.width / 2.0, vp_.height / 2.0);
    switch (e->key()) {
    case Qt::Key_Left: vp_.centerX -= panX; viewportMoved(false); break;
    case Qt::Key_Right: vp_.centerX += panX; viewportMoved(false); break;
    case Qt::Key_Up: vp_.centerY -= panY; viewportMoved(false); break;
    case Qt::Key_Down: vp_.centerY += panY; viewportMoved(false); break;
    case Qt::Key_Plus:
    case Qt::Key_Equal: zoomBy(1.5, centre); break;
    case Qt::Key_Minus: zoomBy(1 / 1.5, centre); break;
    case Qt::Key_Home: fitToWindow(); break;
    case Qt::Key_Return:
    case Qt::Key_Enter: drawingTool_->finish(vp_.zoom, mpp()); break;
    case Qt::Key_Escape: drawingTool_->cancel(); break;
    case Qt::Key_Backspace: drawingTool_->removeLastVertex(); break;
    default: QOpenGLWidget::keyPressEvent(e); return;
    }
}

void SlideView::leaveEvent(QEvent* e) {
    QOpenGLWidget::leaveEvent(e);
}

// ---------------------------------------------------------------- drawing tools (annotationtool.h)

void SlideView::setTool(ViewTool tool) {
    setCursor(tool == ViewTool::Navigate ? Qt::ArrowCursor : Qt::CrossCursor);
    drawingTool_->setTool(tool);
}

} // namespace nic

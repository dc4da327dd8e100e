#include "ui/slideview.h"

#include "core/error.h"
#include "core/slide.h"
#include "ui/figureexport.h"
#include "ui/qtimage.h"
#include "ui/tileloader.h"

#include <QFutureWatcher>
#include <QKeyEvent>
#include <QLinearGradient>
#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLFramebufferObject>
#include <QPainter>
#include <QPainterPath>
#include <QSettings>
#include <QTimer>
#include <QVariantAnimation>
#include <QWheelEvent>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>
#include <cmath>
#include <unordered_map>

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

// Thick line segments as triangles (screen px), `width` px wide.
void appendSegment(std::vector<float>& out, PointD a, PointD b, double width) {
    const double dx = b.x - a.x;
    const double dy = b.y - a.y;
    const double len = std::hypot(dx, dy);
    if (len < 1e-9)
        return;
    const double nx = -dy / len * width / 2.0;
    const double ny = dx / len * width / 2.0;
    // Extend by half the width along the segment so corners close.
    const double ex = dx / len * width / 2.0;
    const double ey = dy / len * width / 2.0;
    const float p[4][2] = {{static_cast<float>(a.x - ex + nx), static_cast<float>(a.y - ey + ny)},
                           {static_cast<float>(a.x - ex - nx), static_cast<float>(a.y - ey - ny)},
                           {static_cast<float>(b.x + ex + nx), static_cast<float>(b.y + ey + ny)},
                           {static_cast<float>(b.x + ex - nx), static_cast<float>(b.y + ey - ny)}};
    for (int i : {0, 1, 2, 2, 1, 3}) {
        out.push_back(p[i][0]);
        out.push_back(p[i][1]);
    }
}

} // namespace

struct SlideView::OpenResult {
    quint64 serial = 0;
    std::shared_ptr<const Slide> slide;
    QImage thumbnail;
    QString error;
};

SlideView::SlideView(QWidget* parent)
    : QOpenGLWidget(parent), textures_(cacheBytesFromSettings(), [this](const TileKey&, GLuint& tex) {
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
    textures_.clear();
    if (current) {
        for (GLuint* t : {&thumbTex_, &heatTex_, &cmapTex_, &latentTex_})
            if (*t)
                glDeleteTextures(1, t);
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
    thumbTex_ = heatTex_ = cmapTex_ = latentTex_ = quadVbo_ = dynVbo_ = vao_ = 0;
    glReady_ = false;
    if (current)
        doneCurrent();
}

// ---------------------------------------------------------------- opening

void SlideView::openSlide(const QString& path) {
    loader_.reset();
    if (glReady_) {
        makeCurrent();
        textures_.clear();
        doneCurrent();
    } else {
        textures_.clear();
    }
    pendingUploads_.clear();
    slide_.reset();
    pyramid_ = {};
    thumbnail_ = {};
    thumbDirty_ = true;
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
    thumbnail_ = r.thumbnail;
    thumbDirty_ = true;
    pyramid_ = {};
    for (const auto& lv : slide_->levels())
        pyramid_.levels.push_back({lv.width, lv.height, lv.downsample});
    pyramid_.tileSize = 256;
    const int c = pyramid_.coarsestLevel();
    pinCoarsest_ = pyramid_.tilesX(c) * pyramid_.tilesY(c) <= 64;
    loader_ = std::make_unique<TileLoader>(std::make_shared<SlideTileSource>(slide_, pyramid_));
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
        vp_ = fitViewport(pyramid_, width(), height());
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
    pendingUploads_.emplace_back(key, image);
    // While tiles stream in, repaint at most every 30 ms instead of once per tile: on a small machine a
    // frame per arrival takes the CPU the decoders need. The tile that completes the view paints at once.
    if (vp_.width > 0 && slide_ && tilesAtHand(vp_, levelForZoom(pyramid_, vp_.zoom))) {
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
    // Tiles cached or still waiting for upload are not requested again.
    std::unordered_set<TileKey, TileKeyHash> waiting;
    for (const auto& p : pendingUploads_)
        waiting.insert(p.first);
    std::vector<TileKey> wanted;
    auto want = [&](const TileKey& k) {
        if (textures_.contains(k) || waiting.count(k) != 0)
            return false;
        wanted.push_back(k);
        return true;
    };
    if (figureRequest_)
        for (const auto& k : visibleTiles(pyramid_, *figureRequest_, figureLevel(*figureRequest_)))
            want(k);
    if (vp_.width <= 0) {
        loader_->request(wanted);
        return;
    }
    const int c = pyramid_.coarsestLevel();
    if (pinCoarsest_)
        for (std::int64_t y = 0; y < pyramid_.tilesY(c); ++y)
            for (std::int64_t x = 0; x < pyramid_.tilesX(c); ++x)
                want({c, x, y});
    const int level = levelForZoom(pyramid_, vp_.zoom);
    bool viewMissing = false; // a tile of the view is neither cached nor waiting for upload
    for (const auto& k : visibleTiles(pyramid_, vp_, level))
        viewMissing = want(k) || viewMissing;
    // Prefetching starts only once every tile of the view is decoded: on a small machine, decoding the
    // ring while the view still waits (or while the frames that complete it are drawn) takes the CPU the
    // view needs, and after a jump the view's own tiles are all that matter (measured by bench/viewer).
    prefetchHeldBack_ = viewMissing;
    if (!prefetchHeldBack_)
        for (const auto& k : prefetchTiles(pyramid_, vp_, level))
            want(k);
    loader_->request(wanted);
}

bool SlideView::isFullyLoaded() const {
    if (!slide_ || vp_.width <= 0)
        return false;
    const int level = levelForZoom(pyramid_, vp_.zoom);
    for (const auto& k : visibleTiles(pyramid_, vp_, level))
        if (!textures_.contains(k))
            return false;
    return true;
}

void SlideView::resetStatistics() {
    stats_ = {};
    textures_.resetStatistics();
}

void SlideView::setSampling2D(GLint filter) {
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, filter);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, filter);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
}

GLuint SlideView::uploadRgbTexture(const QImage& src) {
    // RGBX with 4-byte pixels: Mesa stores RGBA8 textures as they come, while 3-byte RGB takes a slow
    // per-pixel conversion path in the driver (measured with bench/viewer). QImage's conversion is SIMD.
    const QImage img = src.format() == QImage::Format_RGB888 ? src : src.convertToFormat(QImage::Format_RGB888);
    GLuint tex = 0;
    glGenTextures(1, &tex);
    glBindTexture(GL_TEXTURE_2D, tex);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    glPixelStorei(GL_UNPACK_ROW_LENGTH, static_cast<GLint>(img.bytesPerLine() / 3));
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB8, img.width(), img.height(), 0, GL_RGB, GL_UNSIGNED_BYTE, img.constBits());
    glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
    setSampling2D(GL_LINEAR);
    return tex;
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
    thumbDirty_ = true;
    heatDirty_ = true;
    cmapDirty_ = true;
    latentDirty_ = true;
}

void SlideView::resizeGL(int w, int h) {
    vp_.width = w;
    vp_.height = h;
    if (fitPending_ && slide_) {
        vp_ = fitViewport(pyramid_, w, h);
        fitPending_ = false;
    }
    viewportMoved(false);
}

void SlideView::drawTexturedRect(GLuint tex, const RectD& r) {
    const PointD a = vp_.toScreen({r.x, r.y});
    const PointD b = vp_.toScreen({r.right(), r.bottom()});
    const double w = vp_.width;
    const double h = vp_.height;
    tileProg_.setUniformValue("u_rect", static_cast<float>(a.x / w * 2 - 1), static_cast<float>(1 - a.y / h * 2),
                              static_cast<float>(b.x / w * 2 - 1), static_cast<float>(1 - b.y / h * 2));
    glBindTexture(GL_TEXTURE_2D, tex);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
}

void SlideView::uploadPending(bool all) {
    // Within a time budget per frame, so a burst of arriving tiles never stalls a frame; the rest
    // follow in the next frames.
    QElapsedTimer uploadTimer;
    uploadTimer.start();
    // Tiles the view shows now go first (after a jump, prefetched tiles of the old place that are still
    // waiting would otherwise delay full detail by several frames), and they are never held back by the
    // budget (≈ 0.2 ms each): the frame that can complete the view does.
    std::size_t shownPending = 0;
    if (!all && !pendingUploads_.empty() && vp_.width > 0) {
        const auto shown = visibleTiles(pyramid_, vp_, levelForZoom(pyramid_, vp_.zoom));
        const std::unordered_set<TileKey, TileKeyHash> shownSet(shown.begin(), shown.end());
        const auto firstOther = std::stable_partition(pendingUploads_.begin(), pendingUploads_.end(),
                                                      [&](const auto& p) { return shownSet.count(p.first) != 0; });
        shownPending = static_cast<std::size_t>(firstOther - pendingUploads_.begin());
    }
    int uploads = 0;
    while (!pendingUploads_.empty() &&
           (all || uploads == 0 || static_cast<std::size_t>(uploads) < shownPending || uploadTimer.nsecsElapsed() < 6'000'000)) {
        auto [key, img] = std::move(pendingUploads_.front());
        pendingUploads_.pop_front();
        if (!isValidTile(pyramid_, key) || textures_.contains(key))
            continue;
        const qint64 t0 = uploadTimer.nsecsElapsed();
        const GLuint tex = uploadRgbTexture(img);
        pushStat(stats_.uploadMs, static_cast<double>(uploadTimer.nsecsElapsed() - t0) / 1e6);
        const bool pinned = pinCoarsest_ && key.level == pyramid_.coarsestLevel();
        textures_.insert(key, tex, static_cast<std::size_t>(img.width()) * static_cast<std::size_t>(img.height()) * 4, pinned);
        ++uploads;
    }
    if (thumbDirty_ && !thumbnail_.isNull()) {
        if (thumbTex_)
            glDeleteTextures(1, &thumbTex_);
        thumbTex_ = uploadRgbTexture(thumbnail_);
        thumbDirty_ = false;
    }
}

bool SlideView::drawScene(int level, bool annotationsToo, bool recordStatistics) {
    glBindVertexArray(vao_);
    glBindBuffer(GL_ARRAY_BUFFER, quadVbo_);
    glEnableVertexAttribArray(0);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    tileProg_.bind();
    tileProg_.setUniformValue("u_tex", 0);
    tileProg_.setUniformValue("u_opacity", 1.0F);
    tileProg_.setUniformValue("u_uv", 0.0F, 0.0F, 1.0F, 1.0F);
    glActiveTexture(GL_TEXTURE0);

    const auto visible = visibleTiles(pyramid_, vp_, level);
    bool complete = true;
    for (const auto& k : visible) {
        if (recordStatistics) {
            ++stats_.visibleLookups;
            if (textures_.find(k))
                ++stats_.visibleHits;
            else
                complete = false;
        } else if (!textures_.peek(k)) {
            complete = false;
        }
    }
    if (!complete) {
        // Coarse first: the thumbnail, then cached tiles of every coarser level.
        if (thumbTex_)
            drawTexturedRect(thumbTex_, {0, 0, pyramid_.width(), pyramid_.height()});
        for (int l = pyramid_.coarsestLevel(); l > level; --l)
            for (const auto& k : visibleTiles(pyramid_, vp_, l))
                if (const GLuint* tex = textures_.peek(k))
                    drawTexturedRect(*tex, tileRectLevel0(pyramid_, k));
    }
    // At 1:1 (one texel per screen pixel) nearest sampling looks the same as bilinear and is much
    // cheaper for a software rasteriser.
    const double texelsPerPixel = vp_.zoom * pyramid_.levels[static_cast<std::size_t>(level)].downsample;
    const bool oneToOne = std::abs(texelsPerPixel - 1.0) < 1e-3;
    if (oneToOne)
        glBindSampler(0, nearestSampler_);
    for (const auto& k : visible)
        if (const GLuint* tex = textures_.peek(k))
            drawTexturedRect(*tex, tileRectLevel0(pyramid_, k));
    if (oneToOne)
        glBindSampler(0, 0);
    tileProg_.release();

    drawLatent();
    drawHeatmap();
    if (annotationsToo)
        drawAnnotations();
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
        uploadPending(false);
        if (!pendingUploads_.empty())
            QTimer::singleShot(0, this, [this] { update(); });
        complete = drawScene(levelForZoom(pyramid_, vp_.zoom), true, true);
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

int SlideView::figureLevel(const Viewport& vp) const {
    const std::size_t budget = textures_.capacity() / 2;
    int level = levelForZoom(pyramid_, vp.zoom);
    while (level < pyramid_.coarsestLevel() &&
           visibleTiles(pyramid_, vp, level).size() * static_cast<std::size_t>(pyramid_.tileSize * pyramid_.tileSize) * 4 >
               budget)
        ++level;
    return level;
}

bool SlideView::tilesAtHand(const Viewport& vp, int level) const {
    std::unordered_set<TileKey, TileKeyHash> waiting;
    for (const auto& p : pendingUploads_)
        waiting.insert(p.first);
    for (const auto& k : visibleTiles(pyramid_, vp, level))
        if (!textures_.contains(k) && waiting.count(k) == 0)
            return false;
    return true;
}

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
    uploadPending(true);
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

// ---------------------------------------------------------------- heatmap

void SlideView::setHeatmap(std::shared_ptr<const HeatmapGrid> grid) {
    heatmap_ = std::move(grid);
    heatRange_ = {0.0F, 1.0F};
    if (heatmap_)
        if (auto r = valueRange(*heatmap_))
            heatRange_ = *r;
    heatDirty_ = true;
    contourDirty_ = true;
    update();
}

void SlideView::setHeatmapRendering(HeatmapRendering mode) {
    heatRendering_ = mode;
    update();
}

void SlideView::setContourVisible(bool on) {
    contourVisible_ = on;
    update();
}

const std::vector<float>& SlideView::contourSegments() {
    if (contourDirty_) {
        contour_ = heatmap_ ? isoContour(*heatmap_, static_cast<float>(heatThreshold_)) : std::vector<float>{};
        contourDirty_ = false;
    }
    return contour_;
}

void SlideView::setInfoLines(const QStringList& lines) {
    infoLines_ = lines;
    update();
}

void SlideView::setHeatmapVisible(bool on) {
    heatVisible_ = on;
    update();
}

void SlideView::setHeatmapOpacity(double opacity) {
    heatOpacity_ = std::clamp(opacity, 0.0, 1.0);
    update();
}

void SlideView::setHeatmapThreshold(double value) {
    if (value != heatThreshold_)
        contourDirty_ = true;
    heatThreshold_ = value;
    update();
}

void SlideView::setColorMap(ColorMapKind kind) {
    colorMap_ = kind;
    cmapDirty_ = true;
    update();
}

void SlideView::uploadHeatmap() {
    if (heatTex_) {
        glDeleteTextures(1, &heatTex_);
        heatTex_ = 0;
    }
    heatDirty_ = false;
    if (!heatmap_ || heatmap_->empty())
        return;
    glGenTextures(1, &heatTex_);
    glBindTexture(GL_TEXTURE_2D, heatTex_);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_R32F, heatmap_->width, heatmap_->height, 0, GL_RED, GL_FLOAT,
                 heatmap_->values.data());
    // Nearest: a grid cell is one value, drawn as a crisp square (as ASAP does).
    setSampling2D(GL_NEAREST);
}

void SlideView::uploadColorMap() {
    if (!cmapTex_)
        glGenTextures(1, &cmapTex_);
    glBindTexture(GL_TEXTURE_1D, cmapTex_);
    const auto& table = colorTable(colorMap_);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexImage1D(GL_TEXTURE_1D, 0, GL_RGB8, 256, 0, GL_RGB, GL_UNSIGNED_BYTE, table.data());
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    cmapDirty_ = false;
}

void SlideView::drawHeatmap() {
    if (heatDirty_)
        uploadHeatmap();
    if (cmapDirty_)
        uploadColorMap();
    if (!heatVisible_ || !heatTex_ || !heatmap_) {
        if (contourVisible_)
            drawContour(); // the outline alone: heat compared with annotation outlines, tissue uncovered
        return;
    }
    const RectD r{0, 0, heatmap_->width * heatmap_->cellSize, heatmap_->height * heatmap_->cellSize};
    const PointD a = vp_.toScreen({r.x, r.y});
    const PointD b = vp_.toScreen({r.right(), r.bottom()});
    const double w = vp_.width;
    const double h = vp_.height;
    glEnable(GL_BLEND);
    glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    heatProg_.bind();
    heatProg_.setUniformValue("u_rect", static_cast<float>(a.x / w * 2 - 1), static_cast<float>(1 - a.y / h * 2),
                              static_cast<float>(b.x / w * 2 - 1), static_cast<float>(1 - b.y / h * 2));
    heatProg_.setUniformValue("u_uv", 0.0F, 0.0F, 1.0F, 1.0F);
    heatProg_.setUniformValue("u_values", 0);
    heatProg_.setUniformValue("u_colormap", 1);
    heatProg_.setUniformValue("u_min", heatRange_.first);
    heatProg_.setUniformValue("u_max", heatRange_.second);
    heatProg_.setUniformValue("u_threshold", static_cast<float>(heatThreshold_));
    heatProg_.setUniformValue("u_opacity", static_cast<float>(heatOpacity_));
    heatProg_.setUniformValue("u_smooth", heatRendering_ == HeatmapRendering::Smooth ? 1 : 0);
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, heatTex_);
    glActiveTexture(GL_TEXTURE1);
    glBindTexture(GL_TEXTURE_1D, cmapTex_);
    glBindBuffer(GL_ARRAY_BUFFER, quadVbo_);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glActiveTexture(GL_TEXTURE0);
    heatProg_.release();
    glDisable(GL_BLEND);
    if (contourVisible_)
        drawContour();
}

void SlideView::drawContour() {
    const auto& seg = contourSegments();
    if (seg.empty())
        return;
    // Only segments near the viewport; transformed to widget pixels for the flat-geometry shader.
    const RectD view = vp_.visibleLevel0();
    const double pad = heatmap_ ? heatmap_->cellSize : 0.0;
    std::vector<float> xy;
    xy.reserve(seg.size());
    for (std::size_t i = 0; i + 3 < seg.size(); i += 4) {
        const double minX = std::min(seg[i], seg[i + 2]), maxX = std::max(seg[i], seg[i + 2]);
        const double minY = std::min(seg[i + 1], seg[i + 3]), maxY = std::max(seg[i + 1], seg[i + 3]);
        if (maxX < view.x - pad || minX > view.right() + pad || maxY < view.y - pad || minY > view.bottom() + pad)
            continue;
        const PointD a = vp_.toScreen({seg[i], seg[i + 1]});
        const PointD b = vp_.toScreen({seg[i + 2], seg[i + 3]});
        xy.insert(xy.end(), {static_cast<float>(a.x), static_cast<float>(a.y), static_cast<float>(b.x), static_cast<float>(b.y)});
    }
    solidProg_.bind();
    solidProg_.setUniformValue("u_size", static_cast<float>(vp_.width), static_cast<float>(vp_.height));
    drawSolid(xy, GL_LINES, contourColor());
    solidProg_.release();
}

// ---------------------------------------------------------------- latent view

void SlideView::setLatentView(std::shared_ptr<const LatentRgb> latent) {
    latent_ = std::move(latent);
    latentDirty_ = true;
    update();
}

void SlideView::setLatentVisible(bool on) {
    latentVisible_ = on;
    update();
}

void SlideView::setLatentOpacity(double opacity) {
    latentOpacity_ = std::clamp(opacity, 0.0, 1.0);
    update();
}

void SlideView::drawLatent() {
    if (latentDirty_) {
        if (latentTex_)
            glDeleteTextures(1, &latentTex_);
        latentTex_ = 0;
        latentDirty_ = false;
        if (latent_ && latent_->width > 0 && latent_->height > 0) {
            glGenTextures(1, &latentTex_);
            glBindTexture(GL_TEXTURE_2D, latentTex_);
            glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
            glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, latent_->width, latent_->height, 0, GL_RGBA, GL_UNSIGNED_BYTE,
                         latent_->rgba.data());
            setSampling2D(GL_NEAREST);
        }
    }
    if (!latentVisible_ || !latentTex_ || !latent_)
        return;
    glEnable(GL_BLEND);
    glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    tileProg_.bind();
    tileProg_.setUniformValue("u_opacity", static_cast<float>(latentOpacity_));
    glBindBuffer(GL_ARRAY_BUFFER, quadVbo_);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    glActiveTexture(GL_TEXTURE0);
    drawTexturedRect(latentTex_, {0, 0, latent_->width * latent_->cellSize, latent_->height * latent_->cellSize});
    tileProg_.setUniformValue("u_opacity", 1.0F);
    tileProg_.release();
    glDisable(GL_BLEND);
}

// ---------------------------------------------------------------- annotations

void SlideView::setAnnotations(std::shared_ptr<AnnotationSet> set) {
    annotations_ = std::move(set);
    annoCache_ = {};
    selected_ = -1;
    update();
}

void SlideView::setAnnotationsVisible(bool on) {
    annotationsVisible_ = on;
    update();
}

void SlideView::setGroupVisible(const QString& group, bool on) {
    if (on)
        hiddenGroups_.remove(group);
    else
        hiddenGroups_.insert(group);
    update();
}

void SlideView::setSelectedAnnotation(int index) {
    selected_ = index;
    update();
}

QColor SlideView::annotationColor(const Annotation& a) const {
    if (annotations_ && !a.group.empty())
        if (const auto* g = annotations_->findGroup(a.group))
            if (QColor c(QString::fromStdString(g->color)); c.isValid())
                return c;
    if (QColor c(QString::fromStdString(a.color)); c.isValid())
        return c;
    return QColor(0xF4, 0xFA, 0x58);
}

void SlideView::drawSolid(const std::vector<float>& xy, GLenum mode, const QColor& color) {
    if (xy.empty())
        return;
    glBindBuffer(GL_ARRAY_BUFFER, dynVbo_);
    glBufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(xy.size() * sizeof(float)), xy.data(), GL_STREAM_DRAW);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    solidProg_.setUniformValue("u_color", static_cast<float>(color.redF()), static_cast<float>(color.greenF()),
                               static_cast<float>(color.blueF()), static_cast<float>(color.alphaF()));
    glDrawArrays(mode, 0, static_cast<GLsizei>(xy.size() / 2));
}

void SlideView::refreshAnnotationCache() {
    AnnotationDrawCache& c = annoCache_;
    const auto& list = annotations_->annotations;
    std::size_t vertices = 0;
    for (const auto& a : list)
        vertices += a.coordinates.size();
    if (c.set == annotations_.get() && c.count == list.size() && c.groups == annotations_->groups.size() && c.vertices == vertices)
        return;
    c = {};
    c.set = annotations_.get();
    c.count = list.size();
    c.groups = annotations_->groups.size();
    c.vertices = vertices;
    c.items.reserve(list.size());
    c.points.reserve(vertices * 2);
    std::unordered_map<QRgb, int> colorIndex;
    std::unordered_map<std::string, int> groupIndex;
    for (const auto& a : list) {
        AnnotationDrawCache::Item item;
        const auto ring = isAreaAnnotation(a) ? annotationRing(a) : a.coordinates;
        item.box = pointBounds(ring);
        item.first = static_cast<std::uint32_t>(c.points.size() / 2);
        item.size = static_cast<std::uint32_t>(ring.size());
        for (const auto& q : ring) {
            c.points.push_back(q.x);
            c.points.push_back(q.y);
        }
        item.area = isAreaAnnotation(a) && ring.size() >= 3;
        const QColor color = annotationColor(a);
        const auto [ci, newColor] = colorIndex.emplace(color.rgba(), static_cast<int>(c.colors.size()));
        if (newColor)
            c.colors.push_back(color);
        item.color = ci->second;
        if (!a.group.empty()) {
            const auto [gi, newGroup] = groupIndex.emplace(a.group, static_cast<int>(c.groupNames.size()));
            if (newGroup)
                c.groupNames.push_back(QString::fromStdString(a.group));
            item.group = gi->second;
        }
        c.items.push_back(item);
    }
}

namespace {

/// One frame's annotation geometry: every vertex in one buffer (uploaded once: re-filling a buffer that
/// queued draws still read makes Mesa's software rasteriser render everything queued so far, so one
/// upload per draw would cost a full flush each), and the draws over it.
struct AnnotationDrawList {
    enum class Kind { Plain, StencilFans, StencilCover, LineLoops, Points };
    struct Command {
        Kind kind = Kind::Plain;
        GLenum mode = GL_TRIANGLES;
        GLint first = 0;
        GLsizei count = 0;
        std::vector<GLint> firsts; ///< StencilFans: one triangle fan each; LineLoops: one loop each
        std::vector<GLsizei> counts;
        QColor color;
    };
    std::vector<float> vertices;
    std::vector<Command> commands;

    GLint vertexCount() const { return static_cast<GLint>(vertices.size() / 2); }
    /// Appends `xy` (x, y pairs) as one draw.
    void add(Kind kind, GLenum mode, const std::vector<float>& xy, const QColor& color) {
        if (xy.empty())
            return;
        Command c;
        c.kind = kind;
        c.mode = mode;
        c.first = vertexCount();
        c.count = static_cast<GLsizei>(xy.size() / 2);
        c.color = color;
        vertices.insert(vertices.end(), xy.begin(), xy.end());
        commands.push_back(std::move(c));
    }
    /// Appends several polygons as one multi-draw: triangle fans into the stencil, or line loops.
    void addFans(const std::vector<float>& xy, const std::vector<GLint>& firsts, const std::vector<GLsizei>& counts,
                 Kind kind = Kind::StencilFans, const QColor& color = {}) {
        if (firsts.empty())
            return;
        Command c;
        c.kind = kind;
        c.mode = kind == Kind::LineLoops ? GL_LINE_LOOP : GL_TRIANGLE_FAN;
        c.color = color;
        const GLint base = vertexCount();
        c.firsts.reserve(firsts.size());
        for (const GLint f : firsts)
            c.firsts.push_back(base + f);
        c.counts = counts;
        vertices.insert(vertices.end(), xy.begin(), xy.end());
        commands.push_back(std::move(c));
    }
};

void pushQuad(std::vector<float>& out, double x0, double y0, double x1, double y1) {
    const float q[] = {static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x1), static_cast<float>(y0),
                       static_cast<float>(x0), static_cast<float>(y1), static_cast<float>(x0), static_cast<float>(y1),
                       static_cast<float>(x1), static_cast<float>(y0), static_cast<float>(x1), static_cast<float>(y1)};
    out.insert(out.end(), std::begin(q), std::end(q));
}

} // namespace

void SlideView::drawAnnotations() {
    if (!annotations_ || !annotationsVisible_ || annotations_->annotations.empty())
        return;
    // Tens of thousands of annotations (hundreds of thousands of vertices) must not cost a draw call
    // each: area annotations are batched per colour — fills through the stencil in batches whose
    // bounding boxes do not overlap (so each polygon's even-odd parity stays its own), outlines in one
    // draw per colour (1 px line loops for those under 24 px: a core context has no wide lines), vertices closer than a pixel (2 px for
    // small ones) merged, annotations under 8 px not filled and those under 3 px drawn as a 3 px point.
    // The selected annotation and non-area ones (dots, measurements) are drawn one by one on top. All
    // geometry goes to the GPU in one upload.
    refreshAnnotationCache();
    const AnnotationDrawCache& cache = annoCache_;
    const RectD view = vp_.visibleLevel0();
    const double pad = 10.0 / vp_.zoom;
    std::vector<char> groupHidden(cache.groupNames.size());
    for (std::size_t g = 0; g < cache.groupNames.size(); ++g)
        groupHidden[g] = hiddenGroups_.contains(cache.groupNames[g]) ? 1 : 0;
    auto screenRing = [&](const AnnotationDrawCache::Item& item, double minStep, std::vector<PointD>& out) {
        out.clear();
        for (std::uint32_t k = 0; k < item.size; ++k) {
            const PointD p = vp_.toScreen({cache.points[2 * (item.first + k)], cache.points[2 * (item.first + k) + 1]});
            if (out.empty() || std::abs(p.x - out.back().x) + std::abs(p.y - out.back().y) >= minStep)
                out.push_back(p);
        }
    };

    using Kind = AnnotationDrawList::Kind;
    AnnotationDrawList list;
    constexpr int kCell = 16; // fill batches track the screen cells their boxes cover
    const int cellsX = std::max(1, static_cast<int>(std::ceil(vp_.width / kCell)));
    const int cellsY = std::max(1, static_cast<int>(std::ceil(vp_.height / kCell)));
    struct Batch {
        std::vector<float> fan, cover, outline, squares, loops;
        std::vector<GLint> first, loopFirst;
        std::vector<GLsizei> count, loopCount;
        std::vector<std::uint8_t> cells;
    };
    std::vector<Batch> batches(cache.colors.size());
    auto flushFills = [&](std::size_t c) {
        Batch& b = batches[c];
        if (b.first.empty())
            return;
        list.addFans(b.fan, b.first, b.count);
        QColor fill = cache.colors[c];
        fill.setAlphaF(0.18F);
        list.add(Kind::StencilCover, GL_TRIANGLES, b.cover, fill);
        b.fan.clear();
        b.cover.clear();
        b.first.clear();
        b.count.clear();
        std::fill(b.cells.begin(), b.cells.end(), 0);
    };

    std::vector<std::size_t> direct;
    std::vector<PointD> s;
    for (std::size_t i = 0; i < cache.items.size(); ++i) {
        const auto& item = cache.items[i];
        if (item.size == 0 || (item.group >= 0 && groupHidden[static_cast<std::size_t>(item.group)]))
            continue;
        const RectD& box = item.box;
        if (!RectD{box.x - pad, box.y - pad, box.w + 2 * pad, box.h + 2 * pad}.intersects(view))
            continue;
        if (!item.area || static_cast<int>(i) == selected_) {
            direct.push_back(i);
            continue;
        }
        Batch& b = batches[static_cast<std::size_t>(item.color)];
        const PointD a0 = vp_.toScreen({box.x, box.y});
        const PointD a1 = vp_.toScreen({box.right(), box.bottom()});
        if (std::max(a1.x - a0.x, a1.y - a0.y) < 3.0) {
            b.squares.push_back(static_cast<float>((a0.x + a1.x) / 2));
            b.squares.push_back(static_cast<float>((a0.y + a1.y) / 2));
            continue;
        }
        // Small ones (most of a crowded view) are outlined by 1 px line loops over vertices ≥ 2 px apart:
        // a fraction of the vertices of triangle-built segments, which only big outlines need for their
        // joins.
        const bool small = std::max(a1.x - a0.x, a1.y - a0.y) < 24.0;
        screenRing(item, small ? 2.0 : 1.0, s);
        // Below 8 px the 2 px outline covers most of the inside: no fill (it would cost stencil passes).
        if (s.size() >= 3 && std::min(a1.x - a0.x, a1.y - a0.y) >= 8.0) {
            if (b.cells.empty())
                b.cells.assign(static_cast<std::size_t>(cellsX) * static_cast<std::size_t>(cellsY), 0);
            const int cx0 = std::clamp(static_cast<int>(std::floor(a0.x / kCell)), 0, cellsX - 1);
            const int cx1 = std::clamp(static_cast<int>(std::floor(a1.x / kCell)), 0, cellsX - 1);
            const int cy0 = std::clamp(static_cast<int>(std::floor(a0.y / kCell)), 0, cellsY - 1);
            const int cy1 = std::clamp(static_cast<int>(std::floor(a1.y / kCell)), 0, cellsY - 1);
            bool overlaps = false;
            for (int y = cy0; y <= cy1 && !overlaps; ++y)
                for (int x = cx0; x <= cx1 && !overlaps; ++x)
                    overlaps = b.cells[static_cast<std::size_t>(y * cellsX + x)] != 0;
            if (overlaps)
                flushFills(static_cast<std::size_t>(item.color));
            for (int y = cy0; y <= cy1; ++y)
                std::fill_n(b.cells.begin() + y * cellsX + cx0, cx1 - cx0 + 1, std::uint8_t{1});
            b.first.push_back(static_cast<GLint>(b.fan.size() / 2));
            b.count.push_back(static_cast<GLsizei>(s.size()));
            for (const auto& p : s) {
                b.fan.push_back(static_cast<float>(p.x));
                b.fan.push_back(static_cast<float>(p.y));
            }
            pushQuad(b.cover, a0.x, a0.y, a1.x, a1.y);
        }
        if (small && s.size() >= 2) {
            b.loopFirst.push_back(static_cast<GLint>(b.loops.size() / 2));
            b.loopCount.push_back(static_cast<GLsizei>(s.size()));
            for (const auto& p : s) {
                b.loops.push_back(static_cast<float>(p.x));
                b.loops.push_back(static_cast<float>(p.y));
            }
        } else {
            for (std::size_t k = 0; k < s.size(); ++k)
                if (s.size() > 2 || k + 1 < s.size())
                    appendSegment(b.outline, s[k], s[(k + 1) % s.size()], 2.0);
        }
    }
    for (std::size_t c = 0; c < batches.size(); ++c)
        flushFills(c);
    for (std::size_t c = 0; c < batches.size(); ++c) {
        list.add(Kind::Plain, GL_TRIANGLES, batches[c].outline, cache.colors[c]);
        list.addFans(batches[c].loops, batches[c].loopFirst, batches[c].loopCount, Kind::LineLoops, cache.colors[c]);
        list.add(Kind::Points, GL_POINTS, batches[c].squares, cache.colors[c]);
    }

    // One by one: non-area annotations and the selected one (thicker, stronger fill), on top.
    std::vector<float> xy;
    for (const std::size_t i : direct) {
        const Annotation& a = annotations_->annotations[i];
        const auto& item = cache.items[i];
        const QColor color = cache.colors[static_cast<std::size_t>(item.color)];
        const bool selected = static_cast<int>(i) == selected_;
        screenRing(item, 0.0, s);
        xy.clear();
        if (item.area) {
            for (const auto& p : s) {
                xy.push_back(static_cast<float>(p.x));
                xy.push_back(static_cast<float>(p.y));
            }
            list.addFans(xy, {0}, {static_cast<GLsizei>(s.size())});
            const PointD a0 = vp_.toScreen({item.box.x, item.box.y});
            const PointD a1 = vp_.toScreen({item.box.right(), item.box.bottom()});
            xy.clear();
            pushQuad(xy, a0.x, a0.y, a1.x, a1.y);
            QColor fill = color;
            fill.setAlphaF(selected ? 0.35F : 0.18F);
            list.add(Kind::StencilCover, GL_TRIANGLES, xy, fill);
            xy.clear();
            for (std::size_t k = 0; k < s.size(); ++k)
                appendSegment(xy, s[k], s[(k + 1) % s.size()], selected ? 4.0 : 2.0);
        } else if (a.type == AnnotationType::Measurement || s.size() == 2) {
            for (std::size_t k = 0; k + 1 < s.size(); ++k)
                appendSegment(xy, s[k], s[k + 1], selected ? 3.0 : 2.0);
        } else {
            // Dots and point sets: small squares.
            const double r = selected ? 6.0 : 4.0;
            for (const auto& p : s)
                pushQuad(xy, p.x - r, p.y - r, p.x + r, p.y + r);
        }
        list.add(Kind::Plain, GL_TRIANGLES, xy, color);
    }
    if (list.commands.empty())
        return;

    solidProg_.bind();
    solidProg_.setUniformValue("u_size", static_cast<float>(vp_.width), static_cast<float>(vp_.height));
    glEnable(GL_BLEND);
    glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    glBindBuffer(GL_ARRAY_BUFFER, dynVbo_);
    glBufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(list.vertices.size() * sizeof(float)), list.vertices.data(),
                 GL_STREAM_DRAW);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    bool stencilCleared = false;
    for (const auto& c : list.commands) {
        switch (c.kind) {
        case Kind::StencilFans:
            // Even-odd fill through the stencil: the fans invert it, then quads over the bounding boxes
            // are coloured where it ended up odd (and reset it).
            if (!stencilCleared) {
                glClearStencil(0);
                glClear(GL_STENCIL_BUFFER_BIT);
                stencilCleared = true;
            }
            glEnable(GL_STENCIL_TEST);
            glColorMask(GL_FALSE, GL_FALSE, GL_FALSE, GL_FALSE);
            glStencilFunc(GL_ALWAYS, 0, 0xFF);
            glStencilOp(GL_KEEP, GL_KEEP, GL_INVERT);
            glMultiDrawArrays(GL_TRIANGLE_FAN, c.firsts.data(), c.counts.data(), static_cast<GLsizei>(c.firsts.size()));
            glColorMask(GL_TRUE, GL_TRUE, GL_TRUE, GL_TRUE);
            break;
        case Kind::LineLoops:
            solidProg_.setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            glMultiDrawArrays(GL_LINE_LOOP, c.firsts.data(), c.counts.data(), static_cast<GLsizei>(c.firsts.size()));
            break;
        case Kind::Points:
            solidProg_.setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            glPointSize(3.0F);
            glDrawArrays(GL_POINTS, c.first, c.count);
            glPointSize(1.0F);
            break;
        case Kind::StencilCover:
        case Kind::Plain:
            if (c.kind == Kind::StencilCover) {
                glEnable(GL_STENCIL_TEST);
                glStencilFunc(GL_NOTEQUAL, 0, 0xFF);
                glStencilOp(GL_ZERO, GL_ZERO, GL_ZERO);
            }
            solidProg_.setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            glDrawArrays(c.mode, c.first, c.count);
            glDisable(GL_STENCIL_TEST);
            break;
        }
    }
    glDisable(GL_BLEND);
    solidProg_.release();
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
    if (heatmap_ && heatVisible_)
        paintHeatmapLegend(p, QRectF(rect()), colorMap_, heatRange_, heatThreshold_, 1.0);
    paintInfo(p);
    // Shape being drawn.
    if (!drawing_.empty()) {
        QPen pen(QColor(0, 255, 255), 2, Qt::DashLine);
        p.setPen(pen);
        QPolygonF poly;
        for (const auto& q : drawing_) {
            const PointD s = vp_.toScreen(q);
            poly << QPointF(s.x, s.y);
        }
        if (tool_ == ViewTool::Polygon) {
            const PointD h = vp_.toScreen(hover0_);
            poly << QPointF(h.x, h.y);
            p.drawPolyline(poly);
        } else if (tool_ == ViewTool::Rectangle && poly.size() == 2) {
            p.drawRect(QRectF(poly[0], poly[1]).normalized());
        } else if (tool_ == ViewTool::Measure && poly.size() == 2) {
            p.drawLine(poly[0], poly[1]);
            const double dx = drawing_[1].x - drawing_[0].x;
            const double dy = drawing_[1].y - drawing_[0].y;
            const double len0 = std::hypot(dx, dy);
            const auto m = mpp();
            const QString text = m ? QString::fromStdString(formatLength(len0 * *m)) : QStringLiteral("%1 px").arg(len0, 0, 'f', 1);
            p.setPen(Qt::white);
            p.fillRect(QRectF(poly[1] + QPointF(8, -18), QSizeF(90, 18)), QColor(0, 0, 0, 160));
            p.drawText(QRectF(poly[1] + QPointF(10, -18), QSizeF(88, 18)), Qt::AlignVCenter, text);
        }
    }
    // Lengths of saved measurements.
    if (annotations_ && annotationsVisible_) {
        const auto m = mpp();
        p.setPen(Qt::white);
        for (const auto& a : annotations_->annotations) {
            if (a.type != AnnotationType::Measurement || a.coordinates.size() != 2 ||
                hiddenGroups_.contains(QString::fromStdString(a.group)))
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

double SlideView::minZoom() const { return slide_ ? fitZoom(pyramid_, std::max(vp_.width, 1), std::max(vp_.height, 1)) / 4.0 : 1e-6; }

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
    vp_ = fitViewport(pyramid_, vp_.width, vp_.height);
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
    vp_.centerX = std::clamp(vp_.centerX, 0.0, pyramid_.width());
    vp_.centerY = std::clamp(vp_.centerY, 0.0, pyramid_.height());
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
    const bool drawButton = e->button() == Qt::LeftButton && tool_ != ViewTool::Navigate && slide_;
    if (!drawButton) {
        dragging_ = e->button() == Qt::LeftButton || e->button() == Qt::RightButton || e->button() == Qt::MiddleButton;
        if (dragging_)
            setCursor(Qt::ClosedHandCursor);
        return;
    }
    const PointD p = toLevel0(e->position());
    switch (tool_) {
    case ViewTool::Dot: addAnnotation(AnnotationType::Dot, {{p.x, p.y}}); break;
    case ViewTool::Polygon:
        drawing_.push_back(p);
        hover0_ = p;
        Q_EMIT drawingChanged();
        break;
    case ViewTool::Rectangle:
    case ViewTool::Measure:
        drawing_ = {p, p};
        drawDragging_ = true;
        break;
    case ViewTool::Navigate: break;
    }
    update();
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
    hover0_ = p;
    if (drawDragging_ && drawing_.size() == 2) {
        drawing_[1] = p;
        update();
    } else if (tool_ == ViewTool::Polygon && !drawing_.empty()) {
        update();
    }
    if (slide_)
        Q_EMIT cursorMoved(QPointF(p.x, p.y), p.x >= 0 && p.y >= 0 && p.x < pyramid_.width() && p.y < pyramid_.height());
}

void SlideView::mouseReleaseEvent(QMouseEvent* e) {
    if (dragging_) {
        dragging_ = false;
        unsetCursor();
        return;
    }
    if (drawDragging_ && e->button() == Qt::LeftButton) {
        drawDragging_ = false;
        drawing_[1] = toLevel0(e->position());
        finishDrawing();
    }
}

void SlideView::mouseDoubleClickEvent(QMouseEvent* e) {
    if (tool_ == ViewTool::Polygon) {
        // The double-click's first press already added a vertex at this place.
        finishDrawing();
        return;
    }
    if (tool_ == ViewTool::Navigate && e->button() == Qt::LeftButton)
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
    case Qt::Key_Enter: finishDrawing(); break;
    case Qt::Key_Escape:
        drawing_.clear();
        drawDragging_ = false;
        update();
        Q_EMIT drawingChanged();
        break;
    case Qt::Key_Backspace:
        if (!drawing_.empty() && tool_ == ViewTool::Polygon) {
            drawing_.pop_back();
            update();
            Q_EMIT drawingChanged();
        }
        break;
    default: QOpenGLWidget::keyPressEvent(e); return;
    }
}

void SlideView::leaveEvent(QEvent* e) {
    QOpenGLWidget::leaveEvent(e);
}

// ---------------------------------------------------------------- drawing tools

void SlideView::setTool(ViewTool tool) {
    const bool hadPolygon = tool_ == ViewTool::Polygon && !drawing_.empty();
    tool_ = tool;
    drawing_.clear();
    drawDragging_ = false;
    setCursor(tool == ViewTool::Navigate ? Qt::ArrowCursor : Qt::CrossCursor);
    update();
    if (hadPolygon)
        Q_EMIT drawingChanged();
}

std::vector<Point> SlideView::polygonInProgress() const {
    std::vector<Point> pts;
    if (tool_ != ViewTool::Polygon)
        return pts;
    for (const auto& p : drawing_)
        pts.push_back({p.x, p.y});
    return pts;
}

void SlideView::finishDrawing() {
    std::vector<Point> pts;
    for (const auto& p : drawing_)
        pts.push_back({p.x, p.y});
    drawing_.clear();
    update();
    if (tool_ == ViewTool::Polygon)
        Q_EMIT drawingChanged();
    if (tool_ == ViewTool::Polygon) {
        // Drop repeated vertices (a double-click adds the last one twice).
        std::vector<Point> clean;
        for (const auto& p : pts)
            if (clean.empty() || std::hypot(p.x - clean.back().x, p.y - clean.back().y) * vp_.zoom > 1.0)
                clean.push_back(p);
        if (clean.size() >= 3)
            addAnnotation(AnnotationType::Polygon, std::move(clean));
    } else if (tool_ == ViewTool::Rectangle && pts.size() == 2) {
        const double x0 = std::min(pts[0].x, pts[1].x), x1 = std::max(pts[0].x, pts[1].x);
        const double y0 = std::min(pts[0].y, pts[1].y), y1 = std::max(pts[0].y, pts[1].y);
        if ((x1 - x0) * vp_.zoom >= 2 && (y1 - y0) * vp_.zoom >= 2)
            addAnnotation(AnnotationType::Rectangle, {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}});
    } else if (tool_ == ViewTool::Measure && pts.size() == 2) {
        const double len0 = std::hypot(pts[1].x - pts[0].x, pts[1].y - pts[0].y);
        if (len0 * vp_.zoom >= 2) {
            addAnnotation(AnnotationType::Measurement, pts);
            const auto m = mpp();
            Q_EMIT measured(m ? len0 * *m : len0, m.has_value());
        }
    }
}

void SlideView::addAnnotation(AnnotationType type, std::vector<Point> coords) {
    if (!annotations_)
        annotations_ = std::make_shared<AnnotationSet>();
    Annotation a;
    a.type = type;
    a.name = "Annotation " + std::to_string(annotations_->annotations.size());
    a.group = drawingGroup_.toStdString();
    if (!a.group.empty() && !annotations_->findGroup(a.group)) {
        if (!annotations_->groups.empty())
            a.group.clear(); // only declared groups are valid in a file that declares groups
    }
    const QColor c = annotationColor(a);
    a.color = c.name(QColor::HexRgb).toUpper().toStdString();
    a.coordinates = std::move(coords);
    annotations_->annotations.push_back(std::move(a));
    const int index = static_cast<int>(annotations_->annotations.size()) - 1;
    update();
    Q_EMIT annotationAdded(index);
}

} // namespace nic

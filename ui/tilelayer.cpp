#include "ui/tilelayer.h"

#include <QElapsedTimer>
#include <QOpenGLShaderProgram>

#include <algorithm>
#include <cmath>

namespace nic {

void TileLayer::reset() {
    pending_.clear();
    thumbnail_ = {};
    thumbDirty_ = true;
}

void TileLayer::setThumbnail(const QImage& thumbnail) {
    thumbnail_ = thumbnail;
    thumbDirty_ = true;
}

TileKeySet TileLayer::waiting() const {
    TileKeySet out;
    for (const auto& p : pending_)
        out.insert(p.first);
    return out;
}

void TileLayer::uploadPending(const LayerGl& g, bool all, const std::function<void(double)>& uploadMs) {
    QOpenGLFunctions_3_3_Core* const f = g.gl;
    // Within a time budget per frame, so a burst of arriving tiles never stalls a frame; the rest
    // follow in the next frames.
    QElapsedTimer uploadTimer;
    uploadTimer.start();
    // Tiles the view shows now go first (after a jump, prefetched tiles of the old place that are still
    // waiting would otherwise delay full detail by several frames), and they are never held back by the
    // budget (≈ 0.2 ms each): the frame that can complete the view does.
    std::size_t shownPending = 0;
    if (!all && !pending_.empty() && g.vp.width > 0) {
        const auto shown = visibleTiles(tiles_.pyramid(), g.vp, levelForZoom(tiles_.pyramid(), g.vp.zoom));
        const std::unordered_set<TileKey, TileKeyHash> shownSet(shown.begin(), shown.end());
        const auto firstOther = std::stable_partition(pending_.begin(), pending_.end(),
                                                      [&](const auto& p) { return shownSet.count(p.first) != 0; });
        shownPending = static_cast<std::size_t>(firstOther - pending_.begin());
    }
    int uploads = 0;
    while (!pending_.empty() &&
           (all || uploads == 0 || static_cast<std::size_t>(uploads) < shownPending || uploadTimer.nsecsElapsed() < 6'000'000)) {
        auto [key, img] = std::move(pending_.front());
        pending_.pop_front();
        if (!isValidTile(tiles_.pyramid(), key) || tiles_.contains(key))
            continue;
        const qint64 t0 = uploadTimer.nsecsElapsed();
        const GLuint tex = g.uploadRgbTexture(img);
        if (uploadMs)
            uploadMs(static_cast<double>(uploadTimer.nsecsElapsed() - t0) / 1e6);
        tiles_.insert(key, tex, static_cast<std::size_t>(img.width()) * static_cast<std::size_t>(img.height()) * 4);
        ++uploads;
    }
    if (thumbDirty_ && !thumbnail_.isNull()) {
        if (thumbTex_)
            f->glDeleteTextures(1, &thumbTex_);
        thumbTex_ = g.uploadRgbTexture(thumbnail_);
        thumbDirty_ = false;
    }
}

TileLayer::DrawResult TileLayer::draw(const LayerGl& g, int level, bool touch) {
    QOpenGLFunctions_3_3_Core* const f = g.gl;
    DrawResult r;
    g.tileProgram->bind();
    g.tileProgram->setUniformValue("u_tex", 0);
    g.tileProgram->setUniformValue("u_opacity", 1.0F);
    g.tileProgram->setUniformValue("u_uv", 0.0F, 0.0F, 1.0F, 1.0F);
    f->glActiveTexture(GL_TEXTURE0);

    const auto visible = visibleTiles(tiles_.pyramid(), g.vp, level);
    bool& complete = r.complete;
    for (const auto& k : visible) {
        if (touch) {
            ++r.lookups;
            if (tiles_.find(k))
                ++r.hits;
            else
                complete = false;
        } else if (!tiles_.peek(k)) {
            complete = false;
        }
    }
    if (!complete) {
        // Coarse first: the thumbnail, then cached tiles of every coarser level.
        if (thumbTex_)
            g.drawTexturedRect(thumbTex_, {0, 0, tiles_.pyramid().width(), tiles_.pyramid().height()});
        for (int l = tiles_.pyramid().coarsestLevel(); l > level; --l)
            for (const auto& k : visibleTiles(tiles_.pyramid(), g.vp, l))
                if (const GLuint* tex = tiles_.peek(k))
                    g.drawTexturedRect(*tex, tileRectLevel0(tiles_.pyramid(), k));
    }
    // At 1:1 (one texel per screen pixel) nearest sampling looks the same as bilinear and is much
    // cheaper for a software rasteriser.
    const double texelsPerPixel = g.vp.zoom * tiles_.pyramid().levels[static_cast<std::size_t>(level)].downsample;
    const bool oneToOne = std::abs(texelsPerPixel - 1.0) < 1e-3;
    if (oneToOne)
        f->glBindSampler(0, g.nearestSampler);
    for (const auto& k : visible)
        if (const GLuint* tex = tiles_.peek(k))
            g.drawTexturedRect(*tex, tileRectLevel0(tiles_.pyramid(), k));
    if (oneToOne)
        f->glBindSampler(0, 0);
    g.tileProgram->release();
    return r;
}

void TileLayer::releaseGl(QOpenGLFunctions_3_3_Core* gl) {
    if (gl && thumbTex_)
        gl->glDeleteTextures(1, &thumbTex_);
    thumbTex_ = 0;
}

} // namespace nic

#include "ui/heatmaplayer.h"

#include <QOpenGLShaderProgram>

#include <algorithm>

namespace nic {

void HeatmapLayer::setGrid(std::shared_ptr<const HeatmapGrid> grid) {
    grid_ = std::move(grid);
    range_ = {0.0F, 1.0F};
    if (grid_)
        if (auto r = valueRange(*grid_))
            range_ = *r;
    valuesDirty_ = true;
    contourDirty_ = true;
}

void HeatmapLayer::setRendering(HeatmapRendering mode) {
    rendering_ = mode;
}

void HeatmapLayer::setContourVisible(bool on) {
    contourVisible_ = on;
}

const std::vector<float>& HeatmapLayer::contourSegments() {
    if (contourDirty_) {
        contour_ = grid_ ? isoContour(*grid_, static_cast<float>(threshold_)) : std::vector<float>{};
        contourDirty_ = false;
    }
    return contour_;
}

void HeatmapLayer::setVisible(bool on) {
    visible_ = on;
}

void HeatmapLayer::setOpacity(double opacity) {
    opacity_ = std::clamp(opacity, 0.0, 1.0);
}

void HeatmapLayer::setThreshold(double value) {
    if (value != threshold_)
        contourDirty_ = true;
    threshold_ = value;
}

void HeatmapLayer::setColorMap(ColorMapKind kind) {
    colorMap_ = kind;
    cmapDirty_ = true;
}

void HeatmapLayer::uploadValues(QOpenGLFunctions_3_3_Core* f, const LayerGl& g) {
    if (valuesTex_) {
        f->glDeleteTextures(1, &valuesTex_);
        valuesTex_ = 0;
    }
    valuesDirty_ = false;
    if (!grid_ || grid_->empty())
        return;
    valuesTex_ = g.uploadCellTexture(GL_R32F, grid_->width, grid_->height, GL_RED, GL_FLOAT, grid_->values.data());
}

void HeatmapLayer::uploadColorMap(QOpenGLFunctions_3_3_Core* f) {
    if (!cmapTex_)
        f->glGenTextures(1, &cmapTex_);
    f->glBindTexture(GL_TEXTURE_1D, cmapTex_);
    const auto& table = colorTable(colorMap_);
    f->glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    f->glTexImage1D(GL_TEXTURE_1D, 0, GL_RGB8, 256, 0, GL_RGB, GL_UNSIGNED_BYTE, table.data());
    f->glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    f->glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    f->glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    f->glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    cmapDirty_ = false;
}

void HeatmapLayer::draw(const LayerGl& g) {
    QOpenGLFunctions_3_3_Core* const f = g.gl;
    if (valuesDirty_)
        uploadValues(f, g);
    if (cmapDirty_)
        uploadColorMap(f);
    if (!visible_ || !valuesTex_ || !grid_) {
        if (contourVisible_)
            drawContour(g); // the outline alone: heat compared with annotation outlines, tissue uncovered
        return;
    }
    const RectD r{0, 0, grid_->width * grid_->cellSize, grid_->height * grid_->cellSize};
    const PointD a = g.vp.toScreen({r.x, r.y});
    const PointD b = g.vp.toScreen({r.right(), r.bottom()});
    const double w = g.vp.width;
    const double h = g.vp.height;
    f->glEnable(GL_BLEND);
    f->glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    g.heatProgram->bind();
    g.heatProgram->setUniformValue("u_rect", static_cast<float>(a.x / w * 2 - 1), static_cast<float>(1 - a.y / h * 2),
                              static_cast<float>(b.x / w * 2 - 1), static_cast<float>(1 - b.y / h * 2));
    g.heatProgram->setUniformValue("u_uv", 0.0F, 0.0F, 1.0F, 1.0F);
    g.heatProgram->setUniformValue("u_values", 0);
    g.heatProgram->setUniformValue("u_colormap", 1);
    g.heatProgram->setUniformValue("u_min", range_.first);
    g.heatProgram->setUniformValue("u_max", range_.second);
    g.heatProgram->setUniformValue("u_threshold", static_cast<float>(threshold_));
    g.heatProgram->setUniformValue("u_opacity", static_cast<float>(opacity_));
    g.heatProgram->setUniformValue("u_smooth", rendering_ == HeatmapRendering::Smooth ? 1 : 0);
    f->glActiveTexture(GL_TEXTURE0);
    f->glBindTexture(GL_TEXTURE_2D, valuesTex_);
    f->glActiveTexture(GL_TEXTURE1);
    f->glBindTexture(GL_TEXTURE_1D, cmapTex_);
    f->glBindBuffer(GL_ARRAY_BUFFER, g.quadVbo);
    f->glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    f->glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    f->glActiveTexture(GL_TEXTURE0);
    g.heatProgram->release();
    f->glDisable(GL_BLEND);
    if (contourVisible_)
        drawContour(g);
}

void HeatmapLayer::drawContour(const LayerGl& g) {
    const auto& seg = contourSegments();
    if (seg.empty())
        return;
    // Only segments near the viewport; transformed to widget pixels for the flat-geometry shader.
    const RectD view = g.vp.visibleLevel0();
    const double pad = grid_ ? grid_->cellSize : 0.0;
    std::vector<float> xy;
    xy.reserve(seg.size());
    for (std::size_t i = 0; i + 3 < seg.size(); i += 4) {
        const double minX = std::min(seg[i], seg[i + 2]), maxX = std::max(seg[i], seg[i + 2]);
        const double minY = std::min(seg[i + 1], seg[i + 3]), maxY = std::max(seg[i + 1], seg[i + 3]);
        if (maxX < view.x - pad || minX > view.right() + pad || maxY < view.y - pad || minY > view.bottom() + pad)
            continue;
        const PointD a = g.vp.toScreen({seg[i], seg[i + 1]});
        const PointD b = g.vp.toScreen({seg[i + 2], seg[i + 3]});
        xy.insert(xy.end(), {static_cast<float>(a.x), static_cast<float>(a.y), static_cast<float>(b.x), static_cast<float>(b.y)});
    }
    g.solidProgram->bind();
    g.solidProgram->setUniformValue("u_size", static_cast<float>(g.vp.width), static_cast<float>(g.vp.height));
    g.drawSolid(xy, GL_LINES, contourColor());
    g.solidProgram->release();
}

void HeatmapLayer::releaseGl(QOpenGLFunctions_3_3_Core* gl) {
    for (GLuint* t : {&valuesTex_, &cmapTex_}) {
        if (gl && *t)
            gl->glDeleteTextures(1, t);
        *t = 0;
    }
}

} // namespace nic

#include "ui/latentlayer.h"

#include <QOpenGLShaderProgram>

#include <algorithm>

namespace nic {

void LatentLayer::setLatent(std::shared_ptr<const LatentRgb> latent) {
    latent_ = std::move(latent);
    dirty_ = true;
}

void LatentLayer::setVisible(bool on) {
    visible_ = on;
}

void LatentLayer::setOpacity(double opacity) {
    opacity_ = std::clamp(opacity, 0.0, 1.0);
}

void LatentLayer::draw(const LayerGl& g) {
    QOpenGLFunctions_3_3_Core* const f = g.gl;
    if (dirty_) {
        if (tex_)
            f->glDeleteTextures(1, &tex_);
        tex_ = 0;
        dirty_ = false;
        if (latent_ && latent_->width > 0 && latent_->height > 0) {
            tex_ = g.uploadCellTexture(GL_RGBA8, latent_->width, latent_->height, GL_RGBA, GL_UNSIGNED_BYTE,
                                       latent_->rgba.data());
        }
    }
    if (!visible_ || !tex_ || !latent_)
        return;
    f->glEnable(GL_BLEND);
    f->glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    g.tileProgram->bind();
    g.tileProgram->setUniformValue("u_opacity", static_cast<float>(opacity_));
    f->glBindBuffer(GL_ARRAY_BUFFER, g.quadVbo);
    f->glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    f->glActiveTexture(GL_TEXTURE0);
    g.drawTexturedRect(tex_, {0, 0, latent_->width * latent_->cellSize, latent_->height * latent_->cellSize});
    g.tileProgram->setUniformValue("u_opacity", 1.0F);
    g.tileProgram->release();
    f->glDisable(GL_BLEND);
}

void LatentLayer::releaseGl(QOpenGLFunctions_3_3_Core* gl) {
    if (gl && tex_)
        gl->glDeleteTextures(1, &tex_);
    tex_ = 0;
}

} // namespace nic

#pragma once
// The slide view's latent layer: the PCA colours of a compressed slide (LatentRgb, one RGBA texel per grid
// cell, drawn with nearest sampling over the cells' level-0 extent), under the heatmap. Holds its texture,
// created lazily in draw(). GUI thread only.
#include "ui/latentview.h"
#include "ui/layergl.h"

#include <memory>

namespace nic {

class LatentLayer {
public:
    void setLatent(std::shared_ptr<const LatentRgb> latent);
    const std::shared_ptr<const LatentRgb>& latent() const { return latent_; }
    void setVisible(bool on);
    bool isVisible() const { return visible_; }
    /// Clamped to [0, 1].
    void setOpacity(double opacity);
    double opacity() const { return opacity_; }
    /// Uploads the texture if the latent changed, then draws it blended over the frame.
    void draw(const LayerGl& g);
    /// A new GL context: the texture is made again at the next draw.
    void glCreated() { dirty_ = true; }
    /// Deletes the texture through `gl` (the context current), or only forgets it when `gl` is null.
    void releaseGl(QOpenGLFunctions_3_3_Core* gl);

private:
    std::shared_ptr<const LatentRgb> latent_;
    bool visible_ = true;
    double opacity_ = 0.7;
    GLuint tex_ = 0;
    bool dirty_ = false;
};

} // namespace nic

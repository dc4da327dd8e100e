#pragma once
// What the view's layer renderers (tile, latent, heatmap and annotation layers) share to draw a frame:
// the GL functions of the current context, the shader programs and buffers the view created in
// initializeGL(), and the viewport being drawn (the widget's, or a figure's). Valid only while the
// context is current; used on the GUI thread only.
#include "ui/tilemath.h"

#include <QColor>
#include <QOpenGLFunctions_3_3_Core>

#include <vector>

class QImage;
class QOpenGLShaderProgram;

namespace nic {

struct LayerGl {
    QOpenGLFunctions_3_3_Core* gl = nullptr;
    QOpenGLShaderProgram* tileProgram = nullptr;  ///< textured quad (u_rect, u_uv, u_tex, u_opacity)
    QOpenGLShaderProgram* heatProgram = nullptr;  ///< heatmap values through a colour map
    QOpenGLShaderProgram* solidProgram = nullptr; ///< flat geometry in widget px (u_size, u_color)
    GLuint quadVbo = 0;        ///< the unit quad (triangle strip)
    GLuint dynVbo = 0;         ///< a stream buffer for per-frame geometry
    GLuint nearestSampler = 0; ///< nearest filtering, clamp to edge
    Viewport vp;

    /// Draws the bound texture program's quad over the level-0 rectangle `r` with texture `tex`.
    void drawTexturedRect(GLuint tex, const RectD& r) const;
    /// Filtering and clamp-to-edge for the bound 2-D texture.
    void setSampling2D(GLint filter) const;
    /// A new 2-D texture of a grid, one texel per cell (`width` × `height` of `format`/`type` at `data`,
    /// rows 4-byte aligned), sampled nearest so each cell is a crisp square (as ASAP draws heatmaps).
    GLuint uploadCellTexture(GLint internalFormat, int width, int height, GLenum format, GLenum type,
                             const void* data) const;
    /// A new RGB8 texture of `image` (bilinear, clamp to edge).
    GLuint uploadRgbTexture(const QImage& image) const;
    /// Draws `xy` (widget px pairs) in `mode` and `color` with the bound solid program.
    void drawSolid(const std::vector<float>& xy, GLenum mode, const QColor& color) const;
};

} // namespace nic

#include "ui/layergl.h"

#include <QImage>
#include <QOpenGLShaderProgram>

namespace nic {

void LayerGl::drawTexturedRect(GLuint tex, const RectD& r) const {
    const PointD a = vp.toScreen({r.x, r.y});
    const PointD b = vp.toScreen({r.right(), r.bottom()});
    const double w = vp.width;
    const double h = vp.height;
    tileProgram->setUniformValue("u_rect", static_cast<float>(a.x / w * 2 - 1), static_cast<float>(1 - a.y / h * 2),
                                 static_cast<float>(b.x / w * 2 - 1), static_cast<float>(1 - b.y / h * 2));
    gl->glBindTexture(GL_TEXTURE_2D, tex);
    gl->glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
}

void LayerGl::setSampling2D(GLint filter) const {
    gl->glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, filter);
    gl->glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, filter);
    gl->glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    gl->glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
}

GLuint LayerGl::uploadCellTexture(GLint internalFormat, int width, int height, GLenum format, GLenum type,
                                  const void* data) const {
    GLuint tex = 0;
    gl->glGenTextures(1, &tex);
    gl->glBindTexture(GL_TEXTURE_2D, tex);
    gl->glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    gl->glTexImage2D(GL_TEXTURE_2D, 0, internalFormat, width, height, 0, format, type, data);
    setSampling2D(GL_NEAREST);
    return tex;
}

GLuint LayerGl::uploadRgbTexture(const QImage& src) const {
    // RGBX with 4-byte pixels: Mesa stores RGBA8 textures as they come, while 3-byte RGB takes a slow
    // per-pixel conversion path in the driver (measured with bench/viewer). QImage's conversion is SIMD.
    const QImage img = src.format() == QImage::Format_RGB888 ? src : src.convertToFormat(QImage::Format_RGB888);
    GLuint tex = 0;
    gl->glGenTextures(1, &tex);
    gl->glBindTexture(GL_TEXTURE_2D, tex);
    gl->glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    gl->glPixelStorei(GL_UNPACK_ROW_LENGTH, static_cast<GLint>(img.bytesPerLine() / 3));
    gl->glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB8, img.width(), img.height(), 0, GL_RGB, GL_UNSIGNED_BYTE, img.constBits());
    gl->glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
    setSampling2D(GL_LINEAR);
    return tex;
}

void LayerGl::drawSolid(const std::vector<float>& xy, GLenum mode, const QColor& color) const {
    if (xy.empty())
        return;
    gl->glBindBuffer(GL_ARRAY_BUFFER, dynVbo);
    gl->glBufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(xy.size() * sizeof(float)), xy.data(), GL_STREAM_DRAW);
    gl->glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    solidProgram->setUniformValue("u_color", static_cast<float>(color.redF()), static_cast<float>(color.greenF()),
                                  static_cast<float>(color.blueF()), static_cast<float>(color.alphaF()));
    gl->glDrawArrays(mode, 0, static_cast<GLsizei>(xy.size() / 2));
}

} // namespace nic

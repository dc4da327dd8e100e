#pragma once
// The OpenGL context every nic-studio view needs: 3.3 core profile (Mesa's llvmpipe gives 4.5 under
// xvfb) with a stencil buffer for annotation fills. Call before the QApplication exists (QOpenGLWidget
// takes the default format).
#include <QSurfaceFormat>

namespace nic {

inline void setDefaultGlFormat() {
    QSurfaceFormat format;
    format.setVersion(3, 3);
    format.setProfile(QSurfaceFormat::CoreProfile);
    format.setStencilBufferSize(8); // annotation fills use the stencil
    QSurfaceFormat::setDefaultFormat(format);
}

} // namespace nic

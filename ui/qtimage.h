#pragma once
// Conversions between core's nic::Image and QImage (deep copies).
#include "core/imaging/image.h"

#include <QImage>

namespace nic {

/// An RGB888 (3 channels) or Grayscale8 (1 channel) copy of `image`.
QImage toQImage(const Image& image);

} // namespace nic

#include "ui/qtimage.h"

#include <cstring>

namespace nic {

QImage toQImage(const Image& image) {
    if (image.empty())
        return {};
    const auto format = image.channels == 1 ? QImage::Format_Grayscale8 : QImage::Format_RGB888;
    QImage out(image.width, image.height, format);
    const auto rowBytes = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.channels);
    for (int y = 0; y < image.height; ++y)
        std::memcpy(out.scanLine(y), image.row(y), rowBytes);
    return out;
}

} // namespace nic

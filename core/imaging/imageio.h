#pragma once
// PNG/JPEG reading and writing for patches, masks and figures (libpng, libjpeg). The only code in
// core/ that calls libpng/libjpeg. Functions throw IoError (cannot read or write) or FormatError (not a
// readable PNG/JPEG) naming the file and the cause.
#include "core/imaging/image.h"

#include <filesystem>

namespace nic {

/// Reads a PNG or JPEG (chosen by content, not extension). Gray and palette images are expanded;
/// alpha is composited on white. `channels` = 3 (RGB) or 1 (luma).
Image readImage(const std::filesystem::path& path, int channels = 3);

/// Writes a PNG (1 or 3 channels) atomically.
void writePng(const std::filesystem::path& path, const Image& image);

/// Encodes a PNG into memory.
std::string encodePng(const Image& image);

} // namespace nic

#include "core/imaging/imageio.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <png.h>
#include <string>
#include <jpeglib.h>

namespace nic {

namespace {

std::string slurp(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw IoError(path.string() + ": is a directory, not an image");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot open: " + std::strerror(errno));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Image toChannels(Image rgb, int channels) {
    if (channels == 3)
        return rgb;
    Image gray(rgb.width, rgb.height, 1);
    for (std::size_t i = 0, n = gray.pixels.size(); i < n; ++i) {
        const auto* p = rgb.pixels.data() + i * 3;
        gray.pixels[i] = static_cast<std::uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    }
    return gray;
}

struct PngReadState {
    const std::string* data;
    std::size_t offset;
};

Image decodePng(const std::string& bytes, const std::filesystem::path& path) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()))
        throw FormatError(path.string() + ": not a readable PNG: " + img.message);
    img.format = PNG_FORMAT_RGB;
    Image out(static_cast<int>(img.width), static_cast<int>(img.height), 3);
    png_color white{255, 255, 255};
    if (!png_image_finish_read(&img, &white, out.pixels.data(), 0, nullptr)) {
        std::string msg = img.message;
        png_image_free(&img);
        throw FormatError(path.string() + ": corrupt PNG: " + msg);
    }
    return out;
}

struct JpegErr {
    jpeg_error_mgr mgr;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpegErrorExit(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

Image decodeJpeg(const std::string& bytes, const std::filesystem::path& path) {
    jpeg_decompress_struct cinfo;
    JpegErr err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpegErrorExit;
    err.mgr.output_message = [](j_common_ptr) {};
    Image out;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        throw FormatError(path.string() + ": corrupt JPEG: " + err.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    out = Image(static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height), 3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out.row(static_cast<int>(cinfo.output_scanline));
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return out;
}

} // namespace

Image readImage(const std::filesystem::path& path, int channels) {
    if (channels != 1 && channels != 3)
        throw InvalidArgument("readImage: channels must be 1 or 3");
    const std::string bytes = slurp(path);
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8) == 0)
        return toChannels(decodePng(bytes, path), channels);
    if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
        static_cast<unsigned char>(bytes[1]) == 0xD8)
        return toChannels(decodeJpeg(bytes, path), channels);
    if (bytes.empty())
        throw FormatError(path.string() + ": empty file, not an image");
    throw FormatError(path.string() + ": unsupported image format (expected PNG or JPEG)");
}

std::string encodePng(const Image& image) {
    if (image.empty() || (image.channels != 1 && image.channels != 3))
        throw InvalidArgument("encodePng: image must be non-empty with 1 or 3 channels");
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = static_cast<png_uint_32>(image.width);
    img.height = static_cast<png_uint_32>(image.height);
    img.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&img, nullptr, &size, 0, image.pixels.data(), 0, nullptr))
        throw IoError(std::string("PNG encoding failed: ") + img.message);
    std::string out(size, '\0');
    if (!png_image_write_to_memory(&img, out.data(), &size, 0, image.pixels.data(), 0, nullptr))
        throw IoError(std::string("PNG encoding failed: ") + img.message);
    out.resize(size);
    return out;
}

void writePng(const std::filesystem::path& path, const Image& image) {
    writeFileAtomically(path, encodePng(image));
}

} // namespace nic

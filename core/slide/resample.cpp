#include "core/slide/resample.h"

#include "core/base/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace nic {

namespace {
// For one axis: the list of (source index, weight) contributions of each output index.
struct Span {
    int first = 0;
    std::vector<double> weights;
};

std::vector<Span> areaSpans(int srcSize, int dstSize) {
    std::vector<Span> spans(static_cast<std::size_t>(dstSize));
    const double scale = static_cast<double>(srcSize) / dstSize;
    for (int i = 0; i < dstSize; ++i) {
        const double a = i * scale;
        const double b = std::min<double>((i + 1) * scale, srcSize);
        const int first = static_cast<int>(std::floor(a));
        const int last = std::min(srcSize - 1, static_cast<int>(std::ceil(b)) - 1);
        Span& s = spans[static_cast<std::size_t>(i)];
        s.first = first;
        for (int k = first; k <= last; ++k) {
            const double lo = std::max<double>(a, k);
            const double hi = std::min<double>(b, k + 1);
            s.weights.push_back(std::max(0.0, hi - lo) / (b - a));
        }
    }
    return spans;
}
} // namespace

Image resizeArea(const Image& src, int w, int h) {
    if (w <= 0 || h <= 0 || src.empty())
        throw InvalidArgument("resizeArea: empty source or target size");
    if (w == src.width && h == src.height)
        return src;
    const auto xs = areaSpans(src.width, w);
    const auto ys = areaSpans(src.height, h);
    const int c = src.channels;
    // Horizontal pass into a double buffer, then vertical.
    std::vector<double> tmp(static_cast<std::size_t>(w) * static_cast<std::size_t>(src.height) * static_cast<std::size_t>(c));
    for (int y = 0; y < src.height; ++y) {
        const std::uint8_t* row = src.row(y);
        double* out = tmp.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(w) * static_cast<std::size_t>(c);
        for (int x = 0; x < w; ++x) {
            const Span& s = xs[static_cast<std::size_t>(x)];
            for (int ch = 0; ch < c; ++ch) {
                double acc = 0;
                for (std::size_t k = 0; k < s.weights.size(); ++k)
                    acc += s.weights[k] * row[(static_cast<std::size_t>(s.first) + k) * static_cast<std::size_t>(c) + static_cast<std::size_t>(ch)];
                out[static_cast<std::size_t>(x) * static_cast<std::size_t>(c) + static_cast<std::size_t>(ch)] = acc;
            }
        }
    }
    Image dst(w, h, c);
    const std::size_t rowLen = static_cast<std::size_t>(w) * static_cast<std::size_t>(c);
    for (int y = 0; y < h; ++y) {
        const Span& s = ys[static_cast<std::size_t>(y)];
        std::uint8_t* out = dst.row(y);
        for (std::size_t i = 0; i < rowLen; ++i) {
            double acc = 0;
            for (std::size_t k = 0; k < s.weights.size(); ++k)
                acc += s.weights[k] * tmp[(static_cast<std::size_t>(s.first) + k) * rowLen + i];
            out[i] = static_cast<std::uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
        }
    }
    return dst;
}

Image resizeBilinear(const Image& src, int w, int h) {
    if (w <= 0 || h <= 0 || src.empty())
        throw InvalidArgument("resizeBilinear: empty source or target size");
    if (w == src.width && h == src.height)
        return src;
    Image dst(w, h, src.channels);
    const double sx = static_cast<double>(src.width) / w;
    const double sy = static_cast<double>(src.height) / h;
    const int c = src.channels;
    for (int y = 0; y < h; ++y) {
        const double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, static_cast<double>(src.height - 1));
        const int y0 = static_cast<int>(fy);
        const int y1 = std::min(y0 + 1, src.height - 1);
        const double ty = fy - y0;
        for (int x = 0; x < w; ++x) {
            const double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, static_cast<double>(src.width - 1));
            const int x0 = static_cast<int>(fx);
            const int x1 = std::min(x0 + 1, src.width - 1);
            const double tx = fx - x0;
            for (int ch = 0; ch < c; ++ch) {
                const double v = (1 - ty) * ((1 - tx) * src.at(x0, y0)[ch] + tx * src.at(x1, y0)[ch]) +
                                 ty * ((1 - tx) * src.at(x0, y1)[ch] + tx * src.at(x1, y1)[ch]);
                dst.at(x, y)[ch] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
            }
        }
    }
    return dst;
}

Image resize(const Image& src, int w, int h) {
    if (w <= src.width && h <= src.height)
        return resizeArea(src, w, h);
    return resizeBilinear(src, w, h);
}

} // namespace nic

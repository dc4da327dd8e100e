#include "core/slide/morphology.h"

#include "core/base/error.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace nic {

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

void requireMask(const Image& mask, const char* what) {
    if (mask.empty() || mask.channels != 1)
        throw InvalidArgument(std::string(what) + ": expected a non-empty 1-channel image");
}

void requireOddKernel(int ksize, const char* what) {
    if (ksize < 1 || ksize % 2 == 0)
        throw InvalidArgument(std::string(what) + ": kernel size must be odd and >= 1, got " + std::to_string(ksize));
}

// One separable pass of a binary max (dilate) or min (erode) over a square window; `outside` is the
// value assumed beyond the image edge.
Image minMaxPass(const Image& src, int radius, bool horizontal, bool isMax, std::uint8_t outside) {
    Image dst(src.width, src.height, 1);
    const int n = horizontal ? src.width : src.height;
    const int lines = horizontal ? src.height : src.width;
    std::vector<std::uint8_t> line(sz(n));
    for (int l = 0; l < lines; ++l) {
        for (int i = 0; i < n; ++i)
            line[sz(i)] = (horizontal ? *src.at(i, l) : *src.at(l, i)) ? 255 : 0;
        for (int i = 0; i < n; ++i) {
            std::uint8_t v = isMax ? 0 : 255;
            for (int k = i - radius; k <= i + radius; ++k) {
                const std::uint8_t s = (k < 0 || k >= n) ? outside : line[sz(k)];
                v = isMax ? std::max(v, s) : std::min(v, s);
            }
            (horizontal ? *dst.at(i, l) : *dst.at(l, i)) = v;
        }
    }
    return dst;
}

} // namespace

Image medianBlur(const Image& src, int ksize) {
    if (src.empty() || (src.channels != 1 && src.channels != 3))
        throw InvalidArgument("medianBlur: expected a non-empty 1- or 3-channel image");
    requireOddKernel(ksize, "medianBlur");
    if (ksize == 1)
        return src;
    const int r = ksize / 2;
    const int c = src.channels;
    const int half = (ksize * ksize) / 2; // 0-based rank of the median in an odd-sized window
    Image dst(src.width, src.height, c);
    auto clampX = [&](int x) { return std::clamp(x, 0, src.width - 1); };
    auto clampY = [&](int y) { return std::clamp(y, 0, src.height - 1); };
    for (int ch = 0; ch < c; ++ch) {
        for (int y = 0; y < src.height; ++y) {
            // Huang: a 256-bin histogram of the window slides along the row; the median m and the
            // count of values below it are updated incrementally.
            std::array<int, 256> hist{};
            for (int dy = -r; dy <= r; ++dy)
                for (int dx = -r; dx <= r; ++dx)
                    ++hist[src.at(clampX(dx), clampY(y + dy))[ch]];
            int m = 0;
            int below = 0;
            while (below + hist[sz(m)] <= half)
                below += hist[sz(m++)];
            dst.at(0, y)[ch] = static_cast<std::uint8_t>(m);
            for (int x = 1; x < src.width; ++x) {
                const int xOut = clampX(x - r - 1);
                const int xIn = clampX(x + r);
                for (int dy = -r; dy <= r; ++dy) {
                    const int yy = clampY(y + dy);
                    const int vOut = src.at(xOut, yy)[ch];
                    const int vIn = src.at(xIn, yy)[ch];
                    --hist[sz(vOut)];
                    if (vOut < m)
                        --below;
                    ++hist[sz(vIn)];
                    if (vIn < m)
                        ++below;
                }
                while (below > half)
                    below -= hist[sz(--m)];
                while (below + hist[sz(m)] <= half)
                    below += hist[sz(m++)];
                dst.at(x, y)[ch] = static_cast<std::uint8_t>(m);
            }
        }
    }
    return dst;
}

std::array<std::uint64_t, 256> histogram(const Image& gray) {
    requireMask(gray, "histogram");
    std::array<std::uint64_t, 256> h{};
    for (std::uint8_t v : gray.pixels)
        ++h[v];
    return h;
}

int otsuThreshold(const std::array<std::uint64_t, 256>& hist) {
    double total = 0;
    double sumAll = 0;
    for (int v = 0; v < 256; ++v) {
        total += static_cast<double>(hist[sz(v)]);
        sumAll += v * static_cast<double>(hist[sz(v)]);
    }
    if (total == 0)
        return 0;
    double w0 = 0;
    double sum0 = 0;
    double best = -1;
    int bestLo = 0;
    int bestHi = 0;
    for (int t = 0; t < 255; ++t) {
        w0 += static_cast<double>(hist[sz(t)]);
        sum0 += t * static_cast<double>(hist[sz(t)]);
        const double w1 = total - w0;
        if (w0 == 0 || w1 == 0)
            continue;
        const double mu0 = sum0 / w0;
        const double mu1 = (sumAll - sum0) / w1;
        const double between = w0 * w1 * (mu0 - mu1) * (mu0 - mu1);
        // Relative tolerance so that an empty gap between two modes counts as one tie.
        if (between > best * (1 + 1e-12)) {
            best = between;
            bestLo = bestHi = t;
        } else if (between >= best * (1 - 1e-12)) {
            bestHi = t;
        }
    }
    if (best < 0) { // a single value
        for (int v = 0; v < 256; ++v)
            if (hist[sz(v)])
                return v;
    }
    return (bestLo + bestHi) / 2;
}

Image thresholdAbove(const Image& gray, int threshold) {
    requireMask(gray, "thresholdAbove");
    Image out(gray.width, gray.height, 1);
    for (std::size_t i = 0; i < gray.pixels.size(); ++i)
        out.pixels[i] = gray.pixels[i] > threshold ? 255 : 0;
    return out;
}

Image dilate(const Image& mask, int ksize) {
    requireMask(mask, "dilate");
    requireOddKernel(ksize, "dilate");
    const int r = ksize / 2;
    return minMaxPass(minMaxPass(mask, r, true, true, 0), r, false, true, 0);
}

Image erode(const Image& mask, int ksize) {
    requireMask(mask, "erode");
    requireOddKernel(ksize, "erode");
    const int r = ksize / 2;
    return minMaxPass(minMaxPass(mask, r, true, false, 255), r, false, false, 255);
}

Image binaryClose(const Image& mask, int ksize) {
    requireMask(mask, "binaryClose");
    requireOddKernel(ksize, "binaryClose");
    // Close inside a background margin of ksize/2 px so that the erosion sees exactly what the dilation
    // produced beyond the edge: objects near the border are not stretched out to it.
    const int r = ksize / 2;
    Image padded(mask.width + 2 * r, mask.height + 2 * r, 1, 0);
    for (int y = 0; y < mask.height; ++y)
        for (int x = 0; x < mask.width; ++x)
            *padded.at(x + r, y + r) = *mask.at(x, y) ? 255 : 0;
    const Image closed = erode(dilate(padded, ksize), ksize);
    Image out(mask.width, mask.height, 1);
    for (int y = 0; y < mask.height; ++y)
        std::memcpy(out.row(y), closed.at(r, y + r), static_cast<std::size_t>(mask.width));
    return out;
}

Components connectedComponents(const Image& mask, int connectivity) {
    requireMask(mask, "connectedComponents");
    if (connectivity != 4 && connectivity != 8)
        throw InvalidArgument("connectedComponents: connectivity must be 4 or 8");
    const int w = mask.width;
    const int h = mask.height;
    Components cc;
    cc.labels.assign(sz(std::int64_t{w} * h), 0);
    cc.areas.push_back(0);
    cc.touchesBorder.push_back(false);
    std::vector<std::int64_t> stack;
    for (std::int64_t start = 0; start < std::int64_t{w} * h; ++start) {
        if (!mask.pixels[sz(start)] || cc.labels[sz(start)])
            continue;
        const std::int32_t label = ++cc.count;
        std::int64_t area = 0;
        bool border = false;
        cc.labels[sz(start)] = label;
        stack.push_back(start);
        while (!stack.empty()) {
            const std::int64_t p = stack.back();
            stack.pop_back();
            ++area;
            const int x = static_cast<int>(p % w);
            const int y = static_cast<int>(p / w);
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1)
                border = true;
            for (int dy = -1; dy <= 1; ++dy) {
                for (int dx = -1; dx <= 1; ++dx) {
                    if ((dx == 0 && dy == 0) || (connectivity == 4 && dx != 0 && dy != 0))
                        continue;
                    const int nx = x + dx;
                    const int ny = y + dy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                        continue;
                    const std::int64_t q = std::int64_t{ny} * w + nx;
                    if (mask.pixels[sz(q)] && !cc.labels[sz(q)]) {
                        cc.labels[sz(q)] = label;
                        stack.push_back(q);
                    }
                }
            }
        }
        cc.areas.push_back(area);
        cc.touchesBorder.push_back(border);
    }
    return cc;
}

Image removeSmallObjects(const Image& mask, std::int64_t minArea, bool keepBorderObjects) {
    const Components cc = connectedComponents(mask, 8);
    Image out(mask.width, mask.height, 1);
    for (std::size_t i = 0; i < cc.labels.size(); ++i) {
        const std::int32_t l = cc.labels[i];
        if (l && (cc.areas[sz(l)] >= minArea || (keepBorderObjects && cc.touchesBorder[sz(l)])))
            out.pixels[i] = 255;
    }
    return out;
}

Image fillSmallHoles(const Image& mask, std::int64_t maxArea) {
    requireMask(mask, "fillSmallHoles");
    Image background(mask.width, mask.height, 1);
    for (std::size_t i = 0; i < mask.pixels.size(); ++i)
        background.pixels[i] = mask.pixels[i] ? 0 : 255;
    // Foreground is 8-connected, so the background is taken 4-connected (the complementary rule):
    // a diagonal gap in an 8-connected outline does not let a hole leak out.
    const Components cc = connectedComponents(background, 4);
    Image out(mask.width, mask.height, 1);
    for (std::size_t i = 0; i < cc.labels.size(); ++i) {
        const std::int32_t l = cc.labels[i];
        const bool filledHole = l && !cc.touchesBorder[sz(l)] && cc.areas[sz(l)] < maxArea;
        out.pixels[i] = (!l || filledHole) ? 255 : 0;
    }
    return out;
}

double foregroundFraction(const Image& mask) {
    if (mask.empty())
        return 0.0;
    requireMask(mask, "foregroundFraction");
    std::size_t n = 0;
    for (std::uint8_t v : mask.pixels)
        n += v ? 1 : 0;
    return static_cast<double>(n) / static_cast<double>(mask.pixels.size());
}

} // namespace nic

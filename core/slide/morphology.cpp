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

namespace {

// The components of the pixels whose (mask != 0) equals `foreground`, found over horizontal runs rather
// than pixels: union-find on runs, so the memory is O(number of runs), not the 4 bytes per pixel of
// connectedComponents' labels (a 6250² tissue mask: 156 MB of labels and a flood-fill stack that can grow
// to hundreds of MB). The components are the same sets as connectedComponents' for the same connectivity.
struct RunComponents {
    struct Run {
        int y, x0, x1; ///< [x0, x1) on row y
    };
    std::vector<Run> runs;
    std::vector<std::int32_t> root;       ///< per run: its component's representative run
    std::vector<std::int64_t> area;       ///< per representative run: the component's pixels
    std::vector<std::uint8_t> border;     ///< per representative run: whether the component touches the edge
};

RunComponents runComponents(const Image& mask, bool foreground, int connectivity) {
    const int w = mask.width;
    const int h = mask.height;
    RunComponents rc;
    std::vector<std::size_t> rowStart(sz(std::int64_t{h} + 1), 0);
    for (int y = 0; y < h; ++y) {
        rowStart[sz(y)] = rc.runs.size();
        const std::uint8_t* row = mask.pixels.data() + sz(std::int64_t{y} * w);
        for (int x = 0; x < w;) {
            if ((row[x] != 0) != foreground) {
                ++x;
                continue;
            }
            const int x0 = x;
            while (x < w && (row[x] != 0) == foreground)
                ++x;
            rc.runs.push_back({y, x0, x});
        }
    }
    rowStart[sz(h)] = rc.runs.size();
    std::vector<std::int32_t>& parent = rc.root;
    parent.resize(rc.runs.size());
    for (std::size_t i = 0; i < parent.size(); ++i)
        parent[i] = static_cast<std::int32_t>(i);
    const auto find = [&parent](std::int32_t a) {
        while (parent[sz(a)] != a) {
            parent[sz(a)] = parent[sz(parent[sz(a)])];
            a = parent[sz(a)];
        }
        return a;
    };
    // Runs on consecutive rows touch when their columns overlap (4-connectivity) or overlap or meet
    // diagonally (8-connectivity: one column of slack on each side).
    const int slack = connectivity == 8 ? 1 : 0;
    for (int y = 1; y < h; ++y) {
        std::size_t i = rowStart[sz(y - 1)];
        std::size_t j = rowStart[sz(y)];
        const std::size_t ie = rowStart[sz(y)];
        const std::size_t je = rowStart[sz(y) + 1];
        while (i < ie && j < je) {
            const auto& a = rc.runs[i];
            const auto& b = rc.runs[j];
            if (a.x0 < b.x1 + slack && b.x0 < a.x1 + slack) {
                const std::int32_t ra = find(static_cast<std::int32_t>(i));
                const std::int32_t rb = find(static_cast<std::int32_t>(j));
                if (ra != rb)
                    parent[sz(std::max(ra, rb))] = std::min(ra, rb);
            }
            if (a.x1 < b.x1)
                ++i;
            else
                ++j;
        }
    }
    rc.area.assign(rc.runs.size(), 0);
    rc.border.assign(rc.runs.size(), 0);
    for (std::size_t r = 0; r < rc.runs.size(); ++r) {
        const std::int32_t top = find(static_cast<std::int32_t>(r));
        parent[r] = top;
        const auto& run = rc.runs[r];
        rc.area[sz(top)] += run.x1 - run.x0;
        if (run.y == 0 || run.y == h - 1 || run.x0 == 0 || run.x1 == w)
            rc.border[sz(top)] = 1;
    }
    return rc;
}

void paintRun(Image& out, const RunComponents::Run& run, std::uint8_t value) {
    std::memset(out.pixels.data() + sz(std::int64_t{run.y} * out.width + run.x0), value, sz(run.x1 - run.x0));
}

} // namespace

Image removeSmallObjects(const Image& mask, std::int64_t minArea, bool keepBorderObjects) {
    requireMask(mask, "removeSmallObjects");
    const RunComponents rc = runComponents(mask, /*foreground=*/true, 8);
    Image out(mask.width, mask.height, 1);
    for (std::size_t r = 0; r < rc.runs.size(); ++r) {
        const auto top = sz(rc.root[r]);
        if (rc.area[top] >= minArea || (keepBorderObjects && rc.border[top]))
            paintRun(out, rc.runs[r], 255);
    }
    return out;
}

Image fillSmallHoles(const Image& mask, std::int64_t maxArea) {
    requireMask(mask, "fillSmallHoles");
    // Foreground is 8-connected, so the background is taken 4-connected (the complementary rule):
    // a diagonal gap in an 8-connected outline does not let a hole leak out.
    const RunComponents rc = runComponents(mask, /*foreground=*/false, 4);
    Image out(mask.width, mask.height, 1);
    std::memset(out.pixels.data(), 255, out.pixels.size());
    for (std::size_t r = 0; r < rc.runs.size(); ++r) {
        const auto top = sz(rc.root[r]);
        const bool filledHole = !rc.border[top] && rc.area[top] < maxArea;
        if (!filledHole)
            paintRun(out, rc.runs[r], 0);
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

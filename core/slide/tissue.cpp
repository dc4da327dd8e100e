#include "core/slide/tissue.h"

#include "core/base/error.h"
#include "core/slide/morphology.h"
#include "core/slide/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

namespace nic {

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

std::string fmt(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

void requirePositive(double v, const char* name) {
    if (!(v > 0) || !std::isfinite(v))
        throw InvalidArgument(std::string("tissue detection: ") + name + " must be a positive number, got " + fmt(v));
}

void validate(const TissueOptions& o) {
    requirePositive(o.targetMpp, "target mpp");
    requirePositive(o.medianUm, "median window (µm)");
    requirePositive(o.closeUm, "closing size (µm)");
    if (o.saturationThreshold < 0 || o.saturationThreshold > 254)
        throw InvalidArgument("tissue detection: saturation threshold must be in [0, 254], got " +
                              std::to_string(o.saturationThreshold));
    if (!(o.minObjectUm2 >= 0) || !(o.maxHoleUm2 >= 0))
        throw InvalidArgument("tissue detection: object and hole areas must be >= 0");
    if (!(o.hueMin >= 0 && o.hueMin <= 360 && o.hueMax >= 0 && o.hueMax <= 360))
        throw InvalidArgument("tissue detection: hue window must lie in [0, 360] degrees");
    if (o.darkValue < 0 || o.darkValue > 255)
        throw InvalidArgument("tissue detection: dark value must be in [0, 255], got " + std::to_string(o.darkValue));
    if (!(o.minCellFraction >= 0 && o.minCellFraction <= 1))
        throw InvalidArgument("tissue detection: minimum cell fraction must be in [0, 1], got " + fmt(o.minCellFraction));
}

// A physical length → an odd kernel side in pixels (≥ 1).
int oddKernel(double um, double mpp) {
    const double px = std::min(um / mpp, 1001.0);
    int k = std::max(1, static_cast<int>(std::lround(px)));
    if (k % 2 == 0)
        ++k;
    return k;
}

std::int64_t areaPx(double um2, double mpp) {
    return static_cast<std::int64_t>(std::llround(std::min(um2 / (mpp * mpp), 1e15)));
}

bool hueInWindow(double h, double lo, double hi) {
    return lo <= hi ? (h >= lo && h <= hi) : (h >= lo || h <= hi);
}

// Clears the pixels of `mask` where the sum of `balance` (stain − ink: −1, 0 or +1 per pixel) over the
// k × k window centred at the pixel (clipped to the image) is ≤ 0, i.e. where ink-coloured pixels are at
// least as many as stain-coloured ones. Column sums over the window's rows are updated row by row, so the
// memory is O(w) (two full-size int32 window-sum images before: 312 MB for a 6250² mask).
void clearWhereInkOutweighs(const std::vector<std::int8_t>& balance, int w, int h, int k, Image& mask) {
    const int r = k / 2;
    std::vector<std::int32_t> column(sz(w), 0); // sums over rows [top, bottom) of the current window
    std::vector<std::int32_t> prefix(sz(std::int64_t{w} + 1), 0);
    int top = 0;
    int bottom = 0;
    for (int y = 0; y < h; ++y) {
        for (const int end = std::min(h, y + r + 1); bottom < end; ++bottom)
            for (int x = 0; x < w; ++x)
                column[sz(x)] += balance[sz(std::int64_t{bottom} * w + x)];
        for (const int begin = std::max(0, y - r); top < begin; ++top)
            for (int x = 0; x < w; ++x)
                column[sz(x)] -= balance[sz(std::int64_t{top} * w + x)];
        for (int x = 0; x < w; ++x)
            prefix[sz(x) + 1] = prefix[sz(x)] + column[sz(x)];
        std::uint8_t* row = mask.row(y);
        for (int x = 0; x < w; ++x) {
            const int x0 = std::max(0, x - r);
            const int x1 = std::min(w, x + r + 1);
            if (prefix[sz(x1)] - prefix[sz(x0)] <= 0)
                row[x] = 0;
        }
    }
}

// Area-weighted overlaps of the interval [a, b) with the unit cells [i, i+1), i in [0, n).
struct Overlap {
    int first = 0;
    std::vector<double> weights;
};
Overlap overlaps(double a, double b, int n) {
    Overlap o;
    const double lo = std::max(0.0, a);
    const double hi = std::min(static_cast<double>(n), b);
    if (hi <= lo)
        return o;
    o.first = static_cast<int>(std::floor(lo));
    const int last = std::min(n - 1, static_cast<int>(std::ceil(hi)) - 1);
    for (int i = o.first; i <= last; ++i)
        o.weights.push_back(std::max(0.0, std::min(hi, i + 1.0) - std::max(lo, static_cast<double>(i))));
    return o;
}

Image nearestResize(const Image& src, int w, int h) {
    if (src.width == w && src.height == h)
        return src;
    Image dst(w, h, src.channels);
    for (int y = 0; y < h; ++y) {
        const int sy = std::min(src.height - 1, static_cast<int>((y + 0.5) * src.height / h));
        for (int x = 0; x < w; ++x) {
            const int sx = std::min(src.width - 1, static_cast<int>((x + 0.5) * src.width / w));
            std::memcpy(dst.at(x, y), src.at(sx, sy), static_cast<std::size_t>(src.channels));
        }
    }
    return dst;
}

} // namespace

Image segmentTissue(const Image& rgb, double mpp, const TissueOptions& o, int* usedThreshold) {
    validate(o);
    requirePositive(mpp, "image mpp");
    if (rgb.empty() || rgb.channels != 3)
        throw InvalidArgument("tissue detection: expected a non-empty RGB image");
    const int w = rgb.width;
    const int h = rgb.height;
    const std::size_t n = sz(std::int64_t{w} * h);

    // 1. HSV (OpenCV's 8-bit convention for S and V; H in degrees). Of V and H only what step 3 asks is
    // kept, one byte per pixel: bit 0 "dark" (V < darkValue), bit 1 "hue in the stain window".
    constexpr std::uint8_t kDark = 1, kStainHue = 2;
    Image mask;
    {
        Image sat(w, h, 1);
        std::vector<std::uint8_t> flags(o.excludePen ? n : 0);
        for (std::size_t i = 0; i < n; ++i) {
            const int r = rgb.pixels[3 * i];
            const int g = rgb.pixels[3 * i + 1];
            const int b = rgb.pixels[3 * i + 2];
            const int mx = std::max({r, g, b});
            const int mn = std::min({r, g, b});
            const int d = mx - mn;
            sat.pixels[i] = static_cast<std::uint8_t>(mx ? (255 * d + mx / 2) / mx : 0);
            if (!o.excludePen)
                continue;
            float hh = 0;
            if (d > 0) {
                if (mx == r)
                    hh = 60.0f * static_cast<float>(g - b) / static_cast<float>(d);
                else if (mx == g)
                    hh = 60.0f * (2.0f + static_cast<float>(b - r) / static_cast<float>(d));
                else
                    hh = 60.0f * (4.0f + static_cast<float>(r - g) / static_cast<float>(d));
                if (hh < 0)
                    hh += 360.0f;
            }
            flags[i] = static_cast<std::uint8_t>((mx < o.darkValue ? kDark : 0) |
                                                 (hueInWindow(hh, o.hueMin, o.hueMax) ? kStainHue : 0));
        }

        // 2. Median-blurred saturation and its threshold.
        const int k = oddKernel(o.medianUm, mpp);
        int t = o.saturationThreshold;
        {
            const Image satMed = medianBlur(sat, k);
            if (o.otsu)
                t = std::max(t, otsuThreshold(histogram(satMed)));
            mask = thresholdAbove(satMed, t);
        }
        if (usedThreshold)
            *usedThreshold = t;

        // 3. Colour test: within each median window, stain-coloured pixels must outnumber ink-coloured ones.
        if (o.excludePen) {
            std::vector<std::int8_t> balance(n);
            for (std::size_t i = 0; i < n; ++i) {
                const bool dark = flags[i] & kDark;
                const bool coloured = sat.pixels[i] > t;
                const bool inWindow = flags[i] & kStainHue;
                const bool ink = dark || (coloured && !inWindow);
                const bool stain = !dark && coloured && inWindow;
                balance[i] = static_cast<std::int8_t>(static_cast<int>(stain) - static_cast<int>(ink));
            }
            flags = {};
            sat = Image();
            clearWhereInkOutweighs(balance, w, h, k, mask);
        }
    }

    // 4. Morphology and area filters.
    mask = binaryClose(mask, oddKernel(o.closeUm, mpp));
    mask = removeSmallObjects(mask, areaPx(o.minObjectUm2, mpp), /*keepBorderObjects=*/true);
    mask = fillSmallHoles(mask, areaPx(o.maxHoleUm2, mpp));
    return mask;
}

Image detectTissueInImage(const Image& rgb, double mpp, const TissueOptions& o) {
    validate(o);
    requirePositive(mpp, "image mpp");
    if (rgb.empty() || rgb.channels != 3)
        throw InvalidArgument("tissue detection: expected a non-empty RGB image");
    if (mpp >= o.targetMpp)
        return segmentTissue(rgb, mpp, o);
    const double ds = o.targetMpp / mpp;
    const int w = std::max(1, static_cast<int>(std::lround(rgb.width / ds)));
    const int h = std::max(1, static_cast<int>(std::lround(rgb.height / ds)));
    const Image small = resizeArea(rgb, w, h);
    const double workMpp = mpp * static_cast<double>(rgb.width) / w;
    return nearestResize(segmentTissue(small, workMpp, o), rgb.width, rgb.height);
}

TissueMask detectTissue(const Slide& slide, const TissueOptions& o, std::optional<double> mppOverride, JobContext& job) {
    validate(o);
    const double slideMpp = resolveSlideMpp(slide, mppOverride, "tissue detection");
    const double ds = std::max(1.0, o.targetMpp / slideMpp);
    const int level = levelAtOrFinerThan(slide.levels(), ds);
    const LevelInfo& li = slide.level(level);
    const auto maskW = std::max<std::int64_t>(1, std::llround(static_cast<double>(slide.width()) / ds));
    const auto maskH = std::max<std::int64_t>(1, std::llround(static_cast<double>(slide.height()) / ds));
    if (maskW * maskH > (std::int64_t{1} << 30))
        throw InvalidArgument(slide.path().string() + ": a " + std::to_string(maskW) + " x " + std::to_string(maskH) +
                              " tissue mask is too large; use a coarser --target-mpp");

    // Stream the level in bands of whole mask rows so even a single-level gigapixel slide needs no
    // huge buffer; band edges are rounded to level rows (sub-pixel error at mask resolution).
    const double sy = static_cast<double>(li.height) / static_cast<double>(maskH);
    const int rowsPerBand = static_cast<int>(std::max<std::int64_t>(
        1, static_cast<std::int64_t>((std::int64_t{1} << 24) / std::max<std::int64_t>(1, li.width) / std::max(1.0, sy))));
    Image rgb(static_cast<int>(maskW), static_cast<int>(maskH), 3);
    for (int r0 = 0; r0 < rgb.height; r0 += rowsPerBand) {
        job.throwIfCancelled();
        job.progress(r0, rgb.height, "reading level " + std::to_string(level));
        const int r1 = std::min(rgb.height, r0 + rowsPerBand);
        const auto ly0 = std::min<std::int64_t>(li.height - 1, static_cast<std::int64_t>(std::floor(r0 * sy)));
        const auto ly1 = std::min<std::int64_t>(li.height, std::max<std::int64_t>(ly0 + 1, static_cast<std::int64_t>(std::ceil(r1 * sy))));
        const auto y0 = static_cast<std::int64_t>(std::llround(static_cast<double>(ly0) * li.downsample));
        const Image band = slide.readRegion(0, y0, level, li.width, ly1 - ly0);
        const Image small = resize(band, rgb.width, r1 - r0);
        std::memcpy(rgb.row(r0), small.pixels.data(), small.pixels.size());
    }
    job.progress(rgb.height, rgb.height, "reading level " + std::to_string(level));
    job.throwIfCancelled();

    TissueMask out;
    out.downsample = ds;
    out.mpp = slideMpp * static_cast<double>(slide.width()) / static_cast<double>(maskW);
    out.level0Width = slide.width();
    out.level0Height = slide.height();
    out.level = level;
    out.mask = segmentTissue(rgb, out.mpp, o, &out.threshold);
    return out;
}

double TissueMask::fraction() const { return foregroundFraction(mask); }

double TissueMask::fractionIn(double x, double y, double width, double height) const {
    if (mask.empty() || level0Width <= 0 || level0Height <= 0 || !(width > 0) || !(height > 0))
        return 0.0;
    const double sx = static_cast<double>(level0Width) / mask.width;
    const double sy = static_cast<double>(level0Height) / mask.height;
    const Overlap ox = overlaps(x / sx, (x + width) / sx, mask.width);
    const Overlap oy = overlaps(y / sy, (y + height) / sy, mask.height);
    double sum = 0;
    for (std::size_t j = 0; j < oy.weights.size(); ++j) {
        const std::uint8_t* row = mask.row(oy.first + static_cast<int>(j));
        double rowSum = 0;
        for (std::size_t i = 0; i < ox.weights.size(); ++i)
            if (row[sz(ox.first) + i])
                rowSum += ox.weights[i];
        sum += rowSum * oy.weights[j];
    }
    return std::clamp(sum / ((width / sx) * (height / sy)), 0.0, 1.0);
}

Image TissueMask::coverage(int width, int height) const {
    if (width <= 0 || height <= 0)
        throw InvalidArgument("tissue mask: output size must be positive");
    Image out(width, height, 1);
    const double cw = static_cast<double>(level0Width) / width;
    const double ch = static_cast<double>(level0Height) / height;
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            *out.at(x, y) = static_cast<std::uint8_t>(std::lround(255.0 * fractionIn(x * cw, y * ch, cw, ch)));
    return out;
}

Image TissueMask::resampled(int width, int height) const {
    Image out = coverage(width, height);
    for (auto& v : out.pixels)
        v = v >= 128 ? 255 : 0;
    return out;
}

std::vector<float> tissueFractionPerCell(const TissueMask& mask, const PatchGrid& grid) {
    if (mask.level0Width != grid.level0Width() || mask.level0Height != grid.level0Height())
        throw InvalidArgument("tissue mask (" + std::to_string(mask.level0Width) + " x " + std::to_string(mask.level0Height) +
                              ") and patch grid (" + std::to_string(grid.level0Width()) + " x " +
                              std::to_string(grid.level0Height()) + ") describe different slides");
    std::vector<float> out(sz(grid.cellCount()));
    for (int r = 0; r < grid.rows(); ++r)
        for (int c = 0; c < grid.cols(); ++c) {
            const Level0Rect rect = grid.cellRect(c, r);
            out[sz(std::int64_t{r} * grid.cols() + c)] = static_cast<float>(mask.fractionIn(
                static_cast<double>(rect.x), static_cast<double>(rect.y), static_cast<double>(rect.width),
                static_cast<double>(rect.height)));
        }
    return out;
}

} // namespace nic

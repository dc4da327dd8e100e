#include "core/slide/patchgrid.h"

#include "core/base/error.h"
#include "core/slide/resample.h"

#include <cmath>
#include <sstream>
#include <string>

namespace nic {

namespace {

std::string fmt(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

void validateSpec(const GridSpec& spec, double slideMpp, double tolerance) {
    if (spec.patchSize <= 0)
        throw InvalidArgument("patch size must be positive, got " + std::to_string(spec.patchSize));
    if (spec.stride <= 0)
        throw InvalidArgument("stride must be positive, got " + std::to_string(spec.stride));
    if (!(spec.mpp > 0) || !std::isfinite(spec.mpp))
        throw InvalidArgument("target mpp must be a positive number, got " + fmt(spec.mpp));
    if (!(slideMpp > 0) || !std::isfinite(slideMpp))
        throw InvalidArgument("slide mpp must be a positive number, got " + fmt(slideMpp));
    if (!(tolerance >= 0) || tolerance >= 1)
        throw InvalidArgument("level tolerance must be in [0, 1), got " + fmt(tolerance));
}

// ⌈x⌉ with a tiny relative slack so that floating-point noise just above an integer does not add a cell.
int ceilWithSlack(double x) {
    return static_cast<int>(std::ceil(x * (1 - 1e-9)));
}

} // namespace

int levelAtOrFinerThan(const std::vector<LevelInfo>& levels, double downsample, double tolerance) {
    if (levels.empty())
        throw InvalidArgument("levelAtOrFinerThan: no levels");
    const double limit = downsample * (1 + tolerance);
    int best = 0;
    for (std::size_t i = 0; i < levels.size(); ++i)
        if (levels[i].downsample <= limit && levels[i].downsample > levels[static_cast<std::size_t>(best)].downsample)
            best = static_cast<int>(i);
    return best;
}

double resolveSlideMpp(const Slide& slide, std::optional<double> override, const char* purpose) {
    if (override) {
        if (!(*override > 0) || !std::isfinite(*override))
            throw InvalidArgument("mpp override must be a positive number, got " + fmt(*override));
        return *override;
    }
    const auto& res = slide.resolution();
    if (!res || !(res->mppX > 0) || !(res->mppY > 0))
        throw InvalidArgument(slide.path().string() + ": the slide's resolution (µm per pixel) is unknown, so " +
                              purpose + " cannot be sized; pass the level-0 mpp explicitly (--mpp)");
    return 0.5 * (res->mppX + res->mppY);
}

PatchGrid::PatchGrid(const Slide& slide, const GridSpec& spec, std::optional<double> slideMppOverride,
                     double levelTolerance)
    : PatchGrid(slide.levels(), resolveSlideMpp(slide, slideMppOverride, "the patch grid"), spec, levelTolerance) {}

PatchGrid::PatchGrid(std::vector<LevelInfo> levels, double slideMpp, const GridSpec& spec, double levelTolerance)
    : levels_(std::move(levels)), spec_(spec), slideMpp_(slideMpp) {
    if (levels_.empty() || levels_.front().width <= 0 || levels_.front().height <= 0)
        throw InvalidArgument("patch grid: the slide has no (or an empty) level 0");
    validateSpec(spec_, slideMpp_, levelTolerance);
    factor_ = spec_.mpp / slideMpp_;
    const double step = spec_.stride * factor_;
    const double c = static_cast<double>(level0Width()) / step;
    const double r = static_cast<double>(level0Height()) / step;
    if (c > 1e9 || r > 1e9 || (c * r) > 4e9)
        throw InvalidArgument("patch grid: " + fmt(c) + " x " + fmt(r) + " cells is too many; check the stride and mpp");
    cols_ = std::max(1, ceilWithSlack(c));
    rows_ = std::max(1, ceilWithSlack(r));
    level_ = levelAtOrFinerThan(levels_, factor_, levelTolerance);
    readSize_ = std::max<std::int64_t>(1, std::llround(spec_.patchSize * factor_ / levelDownsample()));
}

void PatchGrid::checkCell(int col, int row) const {
    if (col < 0 || row < 0 || col >= cols_ || row >= rows_)
        throw InvalidArgument("patch grid: cell (" + std::to_string(col) + ", " + std::to_string(row) +
                              ") is outside the " + std::to_string(cols_) + " x " + std::to_string(rows_) + " grid");
}

Level0Rect PatchGrid::cellRect(int col, int row) const {
    checkCell(col, row);
    const double step = spec_.stride * factor_;
    const std::int64_t side = std::max<std::int64_t>(1, std::llround(spec_.patchSize * factor_));
    return Level0Rect{std::llround(col * step), std::llround(row * step), side, side};
}

void PatchGrid::checkSlide(const Slide& slide) const {
    if (slide.width() != level0Width() || slide.height() != level0Height() || slide.levelCount() <= level_)
        throw InvalidArgument(slide.path().string() + ": this patch grid was made for a " + std::to_string(level0Width()) +
                              " x " + std::to_string(level0Height()) + " slide, not this one");
}

Image PatchGrid::readPatch(const Slide& slide, int col, int row) const {
    checkSlide(slide);
    const Level0Rect r = cellRect(col, row);
    Image region = slide.readRegion(r.x, r.y, level_, readSize_, readSize_);
    if (readSize_ == spec_.patchSize)
        return region;
    return resize(region, spec_.patchSize, spec_.patchSize);
}

void PatchGrid::readPatch(const Slide& slide, int col, int row, std::vector<std::uint8_t>& rgb) const {
    if (readSize_ != spec_.patchSize) { // read at another size and resampled: no buffer of the patch's size to reuse
        rgb = readPatch(slide, col, row).pixels;
        return;
    }
    checkSlide(slide);
    const Level0Rect r = cellRect(col, row);
    slide.readRegion(r.x, r.y, level_, readSize_, readSize_, rgb);
}

void PatchGrid::setTissueFractions(std::vector<float> fractions) {
    if (static_cast<std::int64_t>(fractions.size()) != cellCount())
        throw InvalidArgument("patch grid: " + std::to_string(fractions.size()) + " tissue fractions for " +
                              std::to_string(cellCount()) + " cells");
    tissue_ = std::move(fractions);
}

float PatchGrid::tissueFraction(int col, int row) const {
    checkCell(col, row);
    if (tissue_.empty())
        throw InvalidArgument("patch grid: no tissue fractions attached (run tissue detection first)");
    return tissue_[static_cast<std::size_t>(row) * static_cast<std::size_t>(cols_) + static_cast<std::size_t>(col)];
}

std::int64_t PatchGrid::tissueCellCount(double minFraction) const {
    std::int64_t n = 0;
    for (float f : tissue_)
        n += f >= minFraction ? 1 : 0;
    return n;
}

} // namespace nic

#include "core/heatmaps/heatmapeval.h"

#include "core/annotations/annotationraster.h"
#include "core/base/atomicfile.h"
#include "core/base/hdf5file.h"
#include "core/base/error.h"
#include "core/base/untrustedfileprobe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace nic {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

ConfidenceInterval meanWithCi(const std::vector<double>& values, int resamples, std::uint64_t seed) {
    if (values.empty()) {
        ConfidenceInterval ci;
        ci.estimate = ci.lower = ci.upper = kNaN;
        return ci;
    }
    return bootstrapCi(
        [&](const std::vector<std::size_t>& idx) {
            double s = 0.0;
            for (auto i : idx)
                s += values[i];
            return s / static_cast<double>(idx.size());
        },
        values.size(), resamples, seed);
}

} // namespace

HeatmapScores scoreHeatmap(const std::vector<float>& heat, const std::vector<float>& lesionFraction,
                           const std::vector<float>& tissueFraction, int cols, int rows,
                           const HeatmapEvalOptions& options) {
    if (cols < 0 || rows < 0)
        throw InvalidArgument("heatmap evaluation: negative grid size");
    const std::size_t n = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
    if (heat.size() != n || lesionFraction.size() != n || tissueFraction.size() != n)
        throw InvalidArgument("heatmap evaluation: a " + std::to_string(cols) + " x " + std::to_string(rows) +
                              " grid needs " + std::to_string(n) + " values, got heat " + std::to_string(heat.size()) +
                              ", lesion " + std::to_string(lesionFraction.size()) + ", tissue " +
                              std::to_string(tissueFraction.size()));
    HeatmapScores s;
    std::vector<double> scores;
    std::vector<double> labels;
    double massAll = 0.0;
    double massIn = 0.0;
    std::size_t best = n;
    for (std::size_t i = 0; i < n; ++i) {
        if (!(tissueFraction[i] > options.tissueThreshold))
            continue;
        const float h = heat[i];
        if (std::isnan(h))
            throw InvalidArgument("heatmap evaluation: heat value at cell " + std::to_string(i) + " is NaN");
        ++s.tissueCells;
        const float l = lesionFraction[i];
        if (l > 0.0f)
            s.hasLesion = true;
        const bool lesion = l >= options.lesionThreshold && l > 0.0f;
        s.lesionCells += lesion ? 1 : 0;
        scores.push_back(h);
        labels.push_back(lesion ? 1.0 : 0.0);
        const double pos = std::max(0.0, static_cast<double>(h));
        massAll += pos;
        massIn += pos * std::clamp(static_cast<double>(l), 0.0, 1.0);
        if (best == n || h > heat[best])
            best = i;
    }
    s.pixelAuc = rocAuc(scores, labels);
    if (best < n) {
        s.maxX = static_cast<int>(best % static_cast<std::size_t>(cols));
        s.maxY = static_cast<int>(best / static_cast<std::size_t>(cols));
        s.maxValue = heat[best];
    }
    s.pointingDefined = s.hasLesion && best < n;
    if (s.pointingDefined) {
        const int t = std::max(0, options.pointingTolerance);
        for (int y = std::max(0, s.maxY - t); y <= std::min(rows - 1, s.maxY + t) && !s.pointingHit; ++y)
            for (int x = std::max(0, s.maxX - t); x <= std::min(cols - 1, s.maxX + t); ++x)
                if (lesionFraction[static_cast<std::size_t>(y) * static_cast<std::size_t>(cols) +
                                   static_cast<std::size_t>(x)] > 0.0f) {
                    s.pointingHit = true;
                    break;
                }
    }
    s.massInside = (s.hasLesion && massAll > 0.0) ? massIn / massAll : kNaN;
    return s;
}

std::vector<float> lesionFractionOnGrid(const AnnotationSet& annotations, const std::vector<std::string>& groups,
                                        double cellSize, int cols, int rows) {
    return coverage(annotations, groups, 0.0, 0.0, cellSize, cols, rows);
}

CohortHeatmapScores summariseHeatmapScores(const std::vector<HeatmapScores>& slides, int resamples,
                                           std::uint64_t seed) {
    CohortHeatmapScores c;
    c.slides = static_cast<int>(slides.size());
    std::vector<double> aucs;
    std::vector<double> masses;
    for (const auto& s : slides) {
        c.slidesWithLesion += s.hasLesion ? 1 : 0;
        if (!std::isnan(s.pixelAuc))
            aucs.push_back(s.pixelAuc);
        if (!std::isnan(s.massInside))
            masses.push_back(s.massInside);
        if (s.pointingDefined) {
            ++c.pointingSlides;
            c.pointingHits += s.pointingHit ? 1 : 0;
        }
    }
    c.pixelAucSlides = static_cast<int>(aucs.size());
    c.massSlides = static_cast<int>(masses.size());
    c.meanPixelAuc = meanWithCi(aucs, resamples, seed);
    c.meanMassInside = meanWithCi(masses, resamples, seed + 1);
    c.pointingHitRate = c.pointingSlides > 0 ? static_cast<double>(c.pointingHits) / c.pointingSlides : kNaN;
    return c;
}

void writeHeatmapFile(const std::filesystem::path& path, const HeatmapData& d) {
    const auto n = static_cast<std::size_t>(d.rows) * static_cast<std::size_t>(d.cols);
    if (d.rows <= 0 || d.cols <= 0 || d.heat.size() != n || d.tissue.size() != n)
        throw InvalidArgument(path.string() + ": heatmap of " + std::to_string(d.heat.size()) + " values for a " +
                              std::to_string(d.cols) + " x " + std::to_string(d.rows) + " grid");
    AtomicFile file(path);
    {
        Hdf5File h5(file.tempPath(), Hdf5File::Mode::Create);
        h5.setStringAttribute("format", "nic-heatmap");
        h5.setIntAttribute("format_version", 1);
        h5.setIntAttribute("rows", d.rows);
        h5.setIntAttribute("cols", d.cols);
        h5.setDoubleAttribute("cell_size", d.cellSize);
        h5.setIntAttribute("level0_width", d.level0Width);
        h5.setIntAttribute("level0_height", d.level0Height);
        h5.setStringAttribute("slide_file", d.slideFile);
        h5.setStringAttribute("grid_file", d.gridFile);
        h5.setStringAttribute("model", d.model);
        h5.setStringAttribute("task", d.task);
        h5.setIntAttribute("layer", d.layer);
        h5.setDoubleAttribute("output", d.output);
        h5.setDoubleAttribute("prediction", d.prediction);
        const std::vector<std::int64_t> shape{d.rows, d.cols};
        Hdf5Layout layout;
        layout.chunk = {std::min<std::int64_t>(d.rows, 256), std::min<std::int64_t>(d.cols, 256)};
        auto heat = h5.createDataset("heatmap", H5Type::Float32, shape, layout);
        heat.write({0, 0}, shape, H5Type::Float32, d.heat.data());
        heat.close();
        auto tissue = h5.createDataset("tissue", H5Type::Float32, shape, layout);
        tissue.write({0, 0}, shape, H5Type::Float32, d.tissue.data());
        tissue.close();
        h5.close();
    }
    file.commit();
    UntrustedFileProbe::trust(path);
}

HeatmapData readHeatmapFile(const std::filesystem::path& path) {
    UntrustedFileProbe::check(UntrustedKind::Heatmap, path);
    if (std::filesystem::exists(path) && !Hdf5File::isHdf5(path))
        throw FormatError(path.string() + ": not an HDF5 file (expected a NIC heatmap file)");
    const Hdf5File h5(path, Hdf5File::Mode::ReadOnly);
    if (!h5.hasAttribute("format") || h5.stringAttribute("format") != "nic-heatmap")
        throw FormatError(path.string() + ": not a NIC heatmap file (no format = nic-heatmap attribute)");
    if (h5.intAttribute("format_version") != 1)
        throw FormatError(path.string() + ": unsupported heatmap format version " +
                          std::to_string(h5.intAttribute("format_version")));
    HeatmapData d;
    d.rows = static_cast<int>(h5.intAttribute("rows"));
    d.cols = static_cast<int>(h5.intAttribute("cols"));
    d.cellSize = h5.doubleAttribute("cell_size");
    d.level0Width = h5.intAttribute("level0_width");
    d.level0Height = h5.intAttribute("level0_height");
    d.slideFile = h5.stringAttribute("slide_file");
    d.gridFile = h5.stringAttribute("grid_file");
    d.model = h5.stringAttribute("model");
    d.task = h5.stringAttribute("task");
    d.layer = static_cast<int>(h5.intAttribute("layer"));
    d.output = h5.doubleAttribute("output");
    d.prediction = h5.doubleAttribute("prediction");
    // A few KB of HDF5 can declare a never-written (or compressed) dataset of 10^12 cells: refuse sizes
    // no heatmap reaches (a 2-Mpx-wide slide at 16 px cells has 1.6·10^10 / 256 ≈ 6·10^7 cells) before
    // allocating, instead of failing with std::bad_alloc or exhausting memory.
    constexpr std::int64_t kMaxHeatmapCells = std::int64_t{1} << 31;
    if (d.rows < 0 || d.cols < 0 || (d.cols > 0 && d.rows > kMaxHeatmapCells / d.cols))
        throw FormatError(path.string() + ": heatmap of " + std::to_string(d.rows) + " x " + std::to_string(d.cols) +
                          " cells is out of range (at most " + std::to_string(kMaxHeatmapCells) + " cells)");
    const std::vector<std::int64_t> shape{d.rows, d.cols};
    for (const char* name : {"heatmap", "tissue"}) {
        const auto ds = h5.openDataset(name);
        if (ds.shape() != shape)
            throw FormatError(path.string() + ": dataset '" + name + "' does not have the " + std::to_string(d.rows) +
                              " x " + std::to_string(d.cols) + " shape of the attributes");
        auto& out = std::string(name) == "heatmap" ? d.heat : d.tissue;
        out.resize(static_cast<std::size_t>(d.rows) * static_cast<std::size_t>(d.cols));
        ds.read({0, 0}, shape, H5Type::Float32, out.data());
    }
    return d;
}

} // namespace nic

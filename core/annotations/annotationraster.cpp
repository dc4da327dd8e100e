#include "core/annotations/annotationraster.h"

#include "core/base/error.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>

namespace nic {

namespace {

// All geometry below is in "sample space": u = (x - originX) / step, v = (y - originY) / step, so
// sample (i, j) sits at (i + 0.5, j + 0.5).
struct Edge {
    double uTop, vTop;  // endpoint with the smaller v
    double dudv;        // du per unit v
    int ring;           // edges of one ring combine by even-odd; rings combine by union
    int firstRow, lastRow;
};

struct Span {
    int begin, end;  // samples [begin, end) of one row
};

bool isArea(AnnotationType type) {
    return type == AnnotationType::Polygon || type == AnnotationType::Spline || type == AnnotationType::Rectangle;
}

std::string number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

bool selected(const AnnotationSet& set, const Annotation& annotation, const std::vector<std::string>& groups) {
    if (!isArea(annotation.type))
        return false;
    if (groups.empty())
        return true;
    return std::any_of(groups.begin(), groups.end(),
                       [&](const std::string& g) { return set.isInGroup(annotation.group, g); });
}

// Clamps a real sample index into [lo, hi] before the integer conversion (no UB on huge values).
int clampedIndex(double value, int lo, int hi) {
    if (!(value > lo))
        return lo;
    if (value >= hi)
        return hi;
    return static_cast<int>(value);
}

// Builds the edge table of the selected rings for a width × height sample grid.
std::vector<Edge> buildEdges(const AnnotationSet& set, const std::vector<std::string>& groups, double originX,
                             double originY, double step, int height, const char* caller) {
    std::vector<Edge> edges;
    int ring = 0;
    std::vector<Point> pts;
    for (const Annotation& annotation : set.annotations) {
        if (!selected(set, annotation, groups))
            continue;
        for (const Point& p : annotation.coordinates)
            if (!std::isfinite(p.x) || !std::isfinite(p.y))
                throw InvalidArgument(std::string(caller) + ": annotation '" + annotation.name +
                                      "' has a non-finite coordinate");
        pts.clear();
        const auto& c = annotation.coordinates;
        if (annotation.type == AnnotationType::Rectangle && c.size() == 2)
            pts = {c[0], {c[1].x, c[0].y}, c[1], {c[0].x, c[1].y}};
        else
            pts = c;
        if (pts.size() < 3)
            continue;
        for (Point& p : pts)
            p = {(p.x - originX) / step, (p.y - originY) / step};
        for (std::size_t k = 0; k < pts.size(); ++k) {
            const Point& a = pts[k];
            const Point& b = pts[(k + 1) % pts.size()];
            if (a.y == b.y)
                continue;  // horizontal edges never cross a sample row's centre line in a countable way
            const Point& top = a.y < b.y ? a : b;
            const Point& bottom = a.y < b.y ? b : a;
            // Rows j with top.y <= j + 0.5 < bottom.y.
            const int first = clampedIndex(std::ceil(top.y - 0.5), 0, height);
            const int endRow = clampedIndex(std::ceil(bottom.y - 0.5), 0, height);
            if (first >= endRow)
                continue;
            edges.push_back({top.x, top.y, (bottom.x - top.x) / (bottom.y - top.y), ring, first, endRow - 1});
        }
        ++ring;
    }
    std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.firstRow < b.firstRow; });
    return edges;
}

// Scanline fill: calls onRow(row, spans) with the sorted, disjoint covered spans of every row that has
// any, for rows in [0, height) and samples in [0, width).
template <typename OnRow>
void scan(const std::vector<Edge>& edges, int width, OnRow&& onRow) {
    std::vector<const Edge*> active;
    struct Crossing {
        int ring;
        double u;
    };
    std::vector<Crossing> crossings;
    std::vector<Span> spans;
    std::size_t next = 0;
    int row = edges.empty() ? 0 : edges.front().firstRow;
    while (next < edges.size() || !active.empty()) {
        if (active.empty() && next < edges.size())
            row = std::max(row, edges[next].firstRow);  // skip empty rows
        while (next < edges.size() && edges[next].firstRow <= row)
            active.push_back(&edges[next++]);

        const double v = row + 0.5;
        crossings.clear();
        for (const Edge* e : active)
            crossings.push_back({e->ring, e->uTop + (v - e->vTop) * e->dudv});
        std::sort(crossings.begin(), crossings.end(), [](const Crossing& a, const Crossing& b) {
            return a.ring != b.ring ? a.ring < b.ring : a.u < b.u;
        });
        spans.clear();
        for (std::size_t k = 0; k + 1 < crossings.size();) {
            if (crossings[k].ring != crossings[k + 1].ring) {
                ++k;  // unpaired crossing (cannot happen for closed rings; be safe)
                continue;
            }
            // Samples i with uA <= i + 0.5 < uB.
            const int begin = clampedIndex(std::ceil(crossings[k].u - 0.5), 0, width);
            const int end = clampedIndex(std::ceil(crossings[k + 1].u - 0.5), 0, width);
            if (begin < end)
                spans.push_back({begin, end});
            k += 2;
        }
        if (!spans.empty()) {
            std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
            std::size_t merged = 0;
            for (std::size_t k = 1; k < spans.size(); ++k) {
                if (spans[k].begin <= spans[merged].end)
                    spans[merged].end = std::max(spans[merged].end, spans[k].end);
                else
                    spans[++merged] = spans[k];
            }
            spans.resize(merged + 1);
            onRow(row, spans);
        }

        active.erase(std::remove_if(active.begin(), active.end(), [row](const Edge* e) { return e->lastRow <= row; }),
                     active.end());
        ++row;
    }
}

void checkOrigin(double originX, double originY, const char* caller) {
    if (!std::isfinite(originX) || !std::isfinite(originY))
        throw InvalidArgument(std::string(caller) + ": origin must be finite (got " + number(originX) + ", " +
                              number(originY) + ")");
}

} // namespace

Image rasterize(const AnnotationSet& set, const std::vector<std::string>& groups, double originX, double originY,
                double downsample, int width, int height) {
    static constexpr const char* kCaller = "rasterize";
    checkOrigin(originX, originY, kCaller);
    if (!(downsample > 0.0) || !std::isfinite(downsample))
        throw InvalidArgument(std::string(kCaller) + ": downsample must be a positive finite number (got " +
                              number(downsample) + ")");
    if (width < 0 || height < 0)
        throw InvalidArgument(std::string(kCaller) + ": mask size must not be negative (got " + std::to_string(width) +
                              "x" + std::to_string(height) + ")");

    Image mask(width, height, 1, 0);
    if (mask.empty())
        return mask;
    const auto edges = buildEdges(set, groups, originX, originY, downsample, height, kCaller);
    scan(edges, width, [&](int row, const std::vector<Span>& spans) {
        std::uint8_t* line = mask.row(row);
        for (const Span& s : spans)
            std::memset(line + s.begin, 255, static_cast<std::size_t>(s.end - s.begin));
    });
    return mask;
}

std::vector<float> coverage(const AnnotationSet& set, const std::vector<std::string>& groups, double originX,
                            double originY, double cellSize, int cols, int rows, int samplesPerAxis) {
    static constexpr const char* kCaller = "coverage";
    checkOrigin(originX, originY, kCaller);
    if (!(cellSize > 0.0) || !std::isfinite(cellSize))
        throw InvalidArgument(std::string(kCaller) + ": cell size must be a positive finite number (got " +
                              number(cellSize) + ")");
    if (cols < 0 || rows < 0)
        throw InvalidArgument(std::string(kCaller) + ": grid size must not be negative (got " + std::to_string(cols) +
                              "x" + std::to_string(rows) + ")");
    if (samplesPerAxis < 1 || samplesPerAxis > 256)
        throw InvalidArgument(std::string(kCaller) + ": samplesPerAxis must be in [1, 256] (got " +
                              std::to_string(samplesPerAxis) + ")");
    const int s = samplesPerAxis;
    if (cols > INT_MAX / s || rows > INT_MAX / s)
        throw InvalidArgument(std::string(kCaller) + ": grid of " + std::to_string(cols) + "x" + std::to_string(rows) +
                              " cells with " + std::to_string(s) + " samples per axis is too large");

    const std::size_t cellCount = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
    std::vector<std::uint32_t> counts(cellCount, 0);
    if (cellCount > 0) {
        const auto edges = buildEdges(set, groups, originX, originY, cellSize / s, rows * s, kCaller);
        scan(edges, cols * s, [&](int row, const std::vector<Span>& spans) {
            std::uint32_t* cells = counts.data() + static_cast<std::size_t>(row / s) * static_cast<std::size_t>(cols);
            for (const Span& span : spans) {
                const int firstCell = span.begin / s;
                const int lastCell = (span.end - 1) / s;
                if (firstCell == lastCell) {
                    cells[firstCell] += static_cast<std::uint32_t>(span.end - span.begin);
                    continue;
                }
                cells[firstCell] += static_cast<std::uint32_t>((firstCell + 1) * s - span.begin);
                for (int c = firstCell + 1; c < lastCell; ++c)
                    cells[c] += static_cast<std::uint32_t>(s);
                cells[lastCell] += static_cast<std::uint32_t>(span.end - lastCell * s);
            }
        });
    }
    std::vector<float> result(cellCount);
    const double perCell = static_cast<double>(s) * static_cast<double>(s);
    for (std::size_t i = 0; i < cellCount; ++i)
        result[i] = static_cast<float>(counts[i] / perCell);
    return result;
}

} // namespace nic

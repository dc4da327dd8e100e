#include "ui/annotationlayer.h"

#include "core/annotations/annotation.h"
#include "ui/annotationgeometry.h"

#include <QOpenGLShaderProgram>

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

namespace nic {

void AnnotationLayer::setAnnotations(std::shared_ptr<AnnotationSet> set) {
    set_ = std::move(set);
    cache_ = {};
    selected_ = -1;
}

void AnnotationLayer::setVisible(bool on) {
    visible_ = on;
}

void AnnotationLayer::setGroupVisible(const QString& group, bool on) {
    if (on)
        hiddenGroups_.remove(group);
    else
        hiddenGroups_.insert(group);
}

void AnnotationLayer::setSelected(int index) {
    selected_ = index;
}

QColor AnnotationLayer::colorOf(const Annotation& a) const {
    if (set_ && !a.group.empty())
        if (const auto* g = set_->findGroup(a.group))
            if (QColor c(QString::fromStdString(g->color)); c.isValid())
                return c;
    if (QColor c(QString::fromStdString(a.color)); c.isValid())
        return c;
    return QColor(0xF4, 0xFA, 0x58);
}

void AnnotationLayer::refreshAnnotationCache() {
    DrawCache& c = cache_;
    const auto& list = set_->annotations;
    std::size_t vertices = 0;
    for (const auto& a : list)
        vertices += a.coordinates.size();
    if (c.set == set_.get() && c.count == list.size() && c.groups == set_->groups.size() && c.vertices == vertices)
        return;
    c = {};
    c.set = set_.get();
    c.count = list.size();
    c.groups = set_->groups.size();
    c.vertices = vertices;
    c.items.reserve(list.size());
    c.points.reserve(vertices * 2);
    std::unordered_map<QRgb, int> colorIndex;
    std::unordered_map<std::string, int> groupIndex;
    for (const auto& a : list) {
        DrawCache::Item item;
        const auto ring = isAreaAnnotation(a) ? annotationRing(a) : a.coordinates;
        item.box = pointBounds(ring);
        item.first = static_cast<std::uint32_t>(c.points.size() / 2);
        item.size = static_cast<std::uint32_t>(ring.size());
        for (const auto& q : ring) {
            c.points.push_back(q.x);
            c.points.push_back(q.y);
        }
        item.area = isAreaAnnotation(a) && ring.size() >= 3;
        const QColor color = colorOf(a);
        const auto [ci, newColor] = colorIndex.emplace(color.rgba(), static_cast<int>(c.colors.size()));
        if (newColor)
            c.colors.push_back(color);
        item.color = ci->second;
        if (!a.group.empty()) {
            const auto [gi, newGroup] = groupIndex.emplace(a.group, static_cast<int>(c.groupNames.size()));
            if (newGroup)
                c.groupNames.push_back(QString::fromStdString(a.group));
            item.group = gi->second;
        }
        c.items.push_back(item);
    }
}

namespace {

// Thick line segments as triangles (screen px), `width` px wide.
void appendSegment(std::vector<float>& out, PointD a, PointD b, double width) {
    const double dx = b.x - a.x;
    const double dy = b.y - a.y;
    const double len = std::hypot(dx, dy);
    if (len < 1e-9)
        return;
    const double nx = -dy / len * width / 2.0;
    const double ny = dx / len * width / 2.0;
    // Extend by half the width along the segment so corners close.
    const double ex = dx / len * width / 2.0;
    const double ey = dy / len * width / 2.0;
    const float p[4][2] = {{static_cast<float>(a.x - ex + nx), static_cast<float>(a.y - ey + ny)},
                           {static_cast<float>(a.x - ex - nx), static_cast<float>(a.y - ey - ny)},
                           {static_cast<float>(b.x + ex + nx), static_cast<float>(b.y + ey + ny)},
                           {static_cast<float>(b.x + ex - nx), static_cast<float>(b.y + ey - ny)}};
    for (int i : {0, 1, 2, 2, 1, 3}) {
        out.push_back(p[i][0]);
        out.push_back(p[i][1]);
    }
}

/// One frame's annotation geometry: every vertex in one buffer (uploaded once: re-filling a buffer that
/// queued draws still read makes Mesa's software rasteriser render everything queued so far, so one
/// upload per draw would cost a full flush each), and the draws over it.
struct AnnotationDrawList {
    enum class Kind { Plain, StencilFans, StencilCover, LineLoops, Points };
    struct Command {
        Kind kind = Kind::Plain;
        GLenum mode = GL_TRIANGLES;
        GLint first = 0;
        GLsizei count = 0;
        std::vector<GLint> firsts; ///< StencilFans: one triangle fan each; LineLoops: one loop each
        std::vector<GLsizei> counts;
        QColor color;
    };
    std::vector<float> vertices;
    std::vector<Command> commands;

    GLint vertexCount() const { return static_cast<GLint>(vertices.size() / 2); }
    /// Appends `xy` (x, y pairs) as one draw.
    void add(Kind kind, GLenum mode, const std::vector<float>& xy, const QColor& color) {
        if (xy.empty())
            return;
        Command c;
        c.kind = kind;
        c.mode = mode;
        c.first = vertexCount();
        c.count = static_cast<GLsizei>(xy.size() / 2);
        c.color = color;
        vertices.insert(vertices.end(), xy.begin(), xy.end());
        commands.push_back(std::move(c));
    }
    /// Appends several polygons as one multi-draw: triangle fans into the stencil, or line loops.
    void addFans(const std::vector<float>& xy, const std::vector<GLint>& firsts, const std::vector<GLsizei>& counts,
                 Kind kind = Kind::StencilFans, const QColor& color = {}) {
        if (firsts.empty())
            return;
        Command c;
        c.kind = kind;
        c.mode = kind == Kind::LineLoops ? GL_LINE_LOOP : GL_TRIANGLE_FAN;
        c.color = color;
        const GLint base = vertexCount();
        c.firsts.reserve(firsts.size());
        for (const GLint f : firsts)
            c.firsts.push_back(base + f);
        c.counts = counts;
        vertices.insert(vertices.end(), xy.begin(), xy.end());
        commands.push_back(std::move(c));
    }
};

void pushQuad(std::vector<float>& out, double x0, double y0, double x1, double y1) {
    const float q[] = {static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x1), static_cast<float>(y0),
                       static_cast<float>(x0), static_cast<float>(y1), static_cast<float>(x0), static_cast<float>(y1),
                       static_cast<float>(x1), static_cast<float>(y0), static_cast<float>(x1), static_cast<float>(y1)};
    out.insert(out.end(), std::begin(q), std::end(q));
}

} // namespace

void AnnotationLayer::draw(const LayerGl& g) {
    QOpenGLFunctions_3_3_Core* const f = g.gl;
    const Viewport& vp = g.vp;
    if (!set_ || !visible_ || set_->annotations.empty())
        return;
    // Tens of thousands of annotations (hundreds of thousands of vertices) must not cost a draw call
    // each: area annotations are batched per colour — fills through the stencil in batches whose
    // bounding boxes do not overlap (so each polygon's even-odd parity stays its own), outlines in one
    // draw per colour (1 px line loops for those under 24 px: a core context has no wide lines), vertices closer than a pixel (2 px for
    // small ones) merged, annotations under 8 px not filled and those under 3 px drawn as a 3 px point.
    // The selected annotation and non-area ones (dots, measurements) are drawn one by one on top. All
    // geometry goes to the GPU in one upload.
    refreshAnnotationCache();
    const DrawCache& cache = cache_;
    const RectD view = vp.visibleLevel0();
    const double pad = 10.0 / vp.zoom;
    std::vector<char> groupHidden(cache.groupNames.size());
    for (std::size_t gi = 0; gi < cache.groupNames.size(); ++gi)
        groupHidden[gi] = hiddenGroups_.contains(cache.groupNames[gi]) ? 1 : 0;
    auto screenRing = [&](const DrawCache::Item& item, double minStep, std::vector<PointD>& out) {
        out.clear();
        for (std::uint32_t k = 0; k < item.size; ++k) {
            const PointD p = vp.toScreen({cache.points[2 * (item.first + k)], cache.points[2 * (item.first + k) + 1]});
            if (out.empty() || std::abs(p.x - out.back().x) + std::abs(p.y - out.back().y) >= minStep)
                out.push_back(p);
        }
    };

    using Kind = AnnotationDrawList::Kind;
    AnnotationDrawList list;
    constexpr int kCell = 16; // fill batches track the screen cells their boxes cover
    const int cellsX = std::max(1, static_cast<int>(std::ceil(vp.width / kCell)));
    const int cellsY = std::max(1, static_cast<int>(std::ceil(vp.height / kCell)));
    struct Batch {
        std::vector<float> fan, cover, outline, squares, loops;
        std::vector<GLint> first, loopFirst;
        std::vector<GLsizei> count, loopCount;
        std::vector<std::uint8_t> cells;
    };
    std::vector<Batch> batches(cache.colors.size());
    auto flushFills = [&](std::size_t c) {
        Batch& b = batches[c];
        if (b.first.empty())
            return;
        list.addFans(b.fan, b.first, b.count);
        QColor fill = cache.colors[c];
        fill.setAlphaF(0.18F);
        list.add(Kind::StencilCover, GL_TRIANGLES, b.cover, fill);
        b.fan.clear();
        b.cover.clear();
        b.first.clear();
        b.count.clear();
        std::fill(b.cells.begin(), b.cells.end(), 0);
    };

    std::vector<std::size_t> direct;
    std::vector<PointD> s;
    for (std::size_t i = 0; i < cache.items.size(); ++i) {
        const auto& item = cache.items[i];
        if (item.size == 0 || (item.group >= 0 && groupHidden[static_cast<std::size_t>(item.group)]))
            continue;
        const RectD& box = item.box;
        if (!RectD{box.x - pad, box.y - pad, box.w + 2 * pad, box.h + 2 * pad}.intersects(view))
            continue;
        if (!item.area || static_cast<int>(i) == selected_) {
            direct.push_back(i);
            continue;
        }
        Batch& b = batches[static_cast<std::size_t>(item.color)];
        const PointD a0 = vp.toScreen({box.x, box.y});
        const PointD a1 = vp.toScreen({box.right(), box.bottom()});
        if (std::max(a1.x - a0.x, a1.y - a0.y) < 3.0) {
            b.squares.push_back(static_cast<float>((a0.x + a1.x) / 2));
            b.squares.push_back(static_cast<float>((a0.y + a1.y) / 2));
            continue;
        }
        // Small ones (most of a crowded view) are outlined by 1 px line loops over vertices ≥ 2 px apart:
        // a fraction of the vertices of triangle-built segments, which only big outlines need for their
        // joins.
        const bool small = std::max(a1.x - a0.x, a1.y - a0.y) < 24.0;
        screenRing(item, small ? 2.0 : 1.0, s);
        // Below 8 px the 2 px outline covers most of the inside: no fill (it would cost stencil passes).
        if (s.size() >= 3 && std::min(a1.x - a0.x, a1.y - a0.y) >= 8.0) {
            if (b.cells.empty())
                b.cells.assign(static_cast<std::size_t>(cellsX) * static_cast<std::size_t>(cellsY), 0);
            const int cx0 = std::clamp(static_cast<int>(std::floor(a0.x / kCell)), 0, cellsX - 1);
            const int cx1 = std::clamp(static_cast<int>(std::floor(a1.x / kCell)), 0, cellsX - 1);
            const int cy0 = std::clamp(static_cast<int>(std::floor(a0.y / kCell)), 0, cellsY - 1);
            const int cy1 = std::clamp(static_cast<int>(std::floor(a1.y / kCell)), 0, cellsY - 1);
            bool overlaps = false;
            for (int y = cy0; y <= cy1 && !overlaps; ++y)
                for (int x = cx0; x <= cx1 && !overlaps; ++x)
                    overlaps = b.cells[static_cast<std::size_t>(y * cellsX + x)] != 0;
            if (overlaps)
                flushFills(static_cast<std::size_t>(item.color));
            for (int y = cy0; y <= cy1; ++y)
                std::fill_n(b.cells.begin() + y * cellsX + cx0, cx1 - cx0 + 1, std::uint8_t{1});
            b.first.push_back(static_cast<GLint>(b.fan.size() / 2));
            b.count.push_back(static_cast<GLsizei>(s.size()));
            for (const auto& p : s) {
                b.fan.push_back(static_cast<float>(p.x));
                b.fan.push_back(static_cast<float>(p.y));
            }
            pushQuad(b.cover, a0.x, a0.y, a1.x, a1.y);
        }
        if (small && s.size() >= 2) {
            b.loopFirst.push_back(static_cast<GLint>(b.loops.size() / 2));
            b.loopCount.push_back(static_cast<GLsizei>(s.size()));
            for (const auto& p : s) {
                b.loops.push_back(static_cast<float>(p.x));
                b.loops.push_back(static_cast<float>(p.y));
            }
        } else {
            for (std::size_t k = 0; k < s.size(); ++k)
                if (s.size() > 2 || k + 1 < s.size())
                    appendSegment(b.outline, s[k], s[(k + 1) % s.size()], 2.0);
        }
    }
    for (std::size_t c = 0; c < batches.size(); ++c)
        flushFills(c);
    for (std::size_t c = 0; c < batches.size(); ++c) {
        list.add(Kind::Plain, GL_TRIANGLES, batches[c].outline, cache.colors[c]);
        list.addFans(batches[c].loops, batches[c].loopFirst, batches[c].loopCount, Kind::LineLoops, cache.colors[c]);
        list.add(Kind::Points, GL_POINTS, batches[c].squares, cache.colors[c]);
    }

    // One by one: non-area annotations and the selected one (thicker, stronger fill), on top.
    std::vector<float> xy;
    for (const std::size_t i : direct) {
        const Annotation& a = set_->annotations[i];
        const auto& item = cache.items[i];
        const QColor color = cache.colors[static_cast<std::size_t>(item.color)];
        const bool selected = static_cast<int>(i) == selected_;
        screenRing(item, 0.0, s);
        xy.clear();
        if (item.area) {
            for (const auto& p : s) {
                xy.push_back(static_cast<float>(p.x));
                xy.push_back(static_cast<float>(p.y));
            }
            list.addFans(xy, {0}, {static_cast<GLsizei>(s.size())});
            const PointD a0 = vp.toScreen({item.box.x, item.box.y});
            const PointD a1 = vp.toScreen({item.box.right(), item.box.bottom()});
            xy.clear();
            pushQuad(xy, a0.x, a0.y, a1.x, a1.y);
            QColor fill = color;
            fill.setAlphaF(selected ? 0.35F : 0.18F);
            list.add(Kind::StencilCover, GL_TRIANGLES, xy, fill);
            xy.clear();
            for (std::size_t k = 0; k < s.size(); ++k)
                appendSegment(xy, s[k], s[(k + 1) % s.size()], selected ? 4.0 : 2.0);
        } else if (a.type == AnnotationType::Measurement || s.size() == 2) {
            for (std::size_t k = 0; k + 1 < s.size(); ++k)
                appendSegment(xy, s[k], s[k + 1], selected ? 3.0 : 2.0);
        } else {
            // Dots and point sets: small squares.
            const double r = selected ? 6.0 : 4.0;
            for (const auto& p : s)
                pushQuad(xy, p.x - r, p.y - r, p.x + r, p.y + r);
        }
        list.add(Kind::Plain, GL_TRIANGLES, xy, color);
    }
    if (list.commands.empty())
        return;

    g.solidProgram->bind();
    g.solidProgram->setUniformValue("u_size", static_cast<float>(vp.width), static_cast<float>(vp.height));
    f->glEnable(GL_BLEND);
    f->glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ZERO, GL_ONE);
    f->glBindBuffer(GL_ARRAY_BUFFER, g.dynVbo);
    f->glBufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(list.vertices.size() * sizeof(float)), list.vertices.data(),
                 GL_STREAM_DRAW);
    f->glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
    bool stencilCleared = false;
    for (const auto& c : list.commands) {
        switch (c.kind) {
        case Kind::StencilFans:
            // Even-odd fill through the stencil: the fans invert it, then quads over the bounding boxes
            // are coloured where it ended up odd (and reset it).
            if (!stencilCleared) {
                f->glClearStencil(0);
                f->glClear(GL_STENCIL_BUFFER_BIT);
                stencilCleared = true;
            }
            f->glEnable(GL_STENCIL_TEST);
            f->glColorMask(GL_FALSE, GL_FALSE, GL_FALSE, GL_FALSE);
            f->glStencilFunc(GL_ALWAYS, 0, 0xFF);
            f->glStencilOp(GL_KEEP, GL_KEEP, GL_INVERT);
            f->glMultiDrawArrays(GL_TRIANGLE_FAN, c.firsts.data(), c.counts.data(), static_cast<GLsizei>(c.firsts.size()));
            f->glColorMask(GL_TRUE, GL_TRUE, GL_TRUE, GL_TRUE);
            break;
        case Kind::LineLoops:
            g.solidProgram->setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            f->glMultiDrawArrays(GL_LINE_LOOP, c.firsts.data(), c.counts.data(), static_cast<GLsizei>(c.firsts.size()));
            break;
        case Kind::Points:
            g.solidProgram->setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            f->glPointSize(3.0F);
            f->glDrawArrays(GL_POINTS, c.first, c.count);
            f->glPointSize(1.0F);
            break;
        case Kind::StencilCover:
        case Kind::Plain:
            if (c.kind == Kind::StencilCover) {
                f->glEnable(GL_STENCIL_TEST);
                f->glStencilFunc(GL_NOTEQUAL, 0, 0xFF);
                f->glStencilOp(GL_ZERO, GL_ZERO, GL_ZERO);
            }
            g.solidProgram->setUniformValue("u_color", static_cast<float>(c.color.redF()), static_cast<float>(c.color.greenF()),
                                       static_cast<float>(c.color.blueF()), static_cast<float>(c.color.alphaF()));
            f->glDrawArrays(c.mode, c.first, c.count);
            f->glDisable(GL_STENCIL_TEST);
            break;
        }
    }
    f->glDisable(GL_BLEND);
    g.solidProgram->release();
}

} // namespace nic

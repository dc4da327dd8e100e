#pragma once
// The slide view's annotation layer: draws an AnnotationSet with GL (batched per colour: stencil fills,
// outlines, points; the selected annotation and non-area ones on top) for a LayerGl's viewport, and keeps
// the layer's state (the set, visibility per layer and group, the selection). The set is shared with the
// view's owner and its drawing tool, which append to it. GUI thread only.
#include "ui/layergl.h"

#include <QColor>
#include <QSet>
#include <QString>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace nic {

struct Annotation;
struct AnnotationSet;

class AnnotationLayer {
public:
    /// Replaces the set (may be null); clears the selection.
    void setAnnotations(std::shared_ptr<AnnotationSet> set);
    const std::shared_ptr<AnnotationSet>& annotations() const { return set_; }
    void setVisible(bool on);
    bool isVisible() const { return visible_; }
    void setGroupVisible(const QString& group, bool on);
    bool isGroupVisible(const QString& group) const { return !hiddenGroups_.contains(group); }
    void setSelected(int index);
    int selected() const { return selected_; }
    /// The colour an annotation is drawn in: its group's colour, else its own, else ASAP's yellow.
    QColor colorOf(const Annotation& a) const;
    /// Draws the visible annotations into the current framebuffer (blending; clears the stencil if a fill
    /// needs it). Needs g's solid program and stream buffer.
    void draw(const LayerGl& g);

private:
    void refreshAnnotationCache();

    std::shared_ptr<AnnotationSet> set_;
    bool visible_ = true;
    QSet<QString> hiddenGroups_;
    int selected_ = -1;
    /// What draw() needs of each annotation, computed once per set (and again when the set grows or its
    /// vertex count changes): ring in level-0 coordinates, bounds, colour and group indices.
    struct DrawCache {
        const AnnotationSet* set = nullptr;
        std::size_t count = 0, groups = 0, vertices = 0;
        struct Item {
            RectD box;
            std::uint32_t first = 0, size = 0; ///< into points (x, y pairs)
            int color = 0;                     ///< into colors
            int group = -1;                    ///< into groupNames; -1: none
            bool area = false;                 ///< filled polygon (≥ 3 vertices)
        };
        std::vector<Item> items;
        std::vector<double> points;
        std::vector<QColor> colors;
        std::vector<QString> groupNames;
    };
    DrawCache cache_;
};

} // namespace nic

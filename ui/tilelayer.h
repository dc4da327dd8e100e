#pragma once
// The slide view's tile layer: uploads decoded tiles as GL textures into the TileScheduler's resident set
// (shown tiles first, within a per-frame time budget) and draws the tiles of a level, with the thumbnail
// and coarser cached tiles underneath where that level is incomplete. Owns the queue of decoded tiles
// waiting for upload and the thumbnail texture; the scheduler (owned by the view) owns the tile textures.
// GUI thread only.
#include "ui/layergl.h"
#include "ui/tilescheduler.h"

#include <QImage>

#include <cstdint>
#include <deque>
#include <functional>
#include <utility>

namespace nic {

class TileLayer {
public:
    explicit TileLayer(TileScheduler& tiles) : tiles_(tiles) {}

    /// A new slide: forgets waiting tiles and the thumbnail.
    void reset();
    /// The whole-slide image drawn under incomplete levels.
    void setThumbnail(const QImage& thumbnail);
    const QImage& thumbnail() const { return thumbnail_; }
    /// Queues a decoded tile for upload.
    void queue(const TileKey& key, const QImage& image) { pending_.emplace_back(key, image); }
    bool hasPending() const { return !pending_.empty(); }
    /// Tiles decoded and queued for upload.
    TileKeySet waiting() const;
    /// Uploads queued tiles: all of them, or (all = false) those g.vp shows first and the rest within
    /// ~6 ms; then the thumbnail if it changed. `uploadMs` (optional) gets each tile's upload time.
    void uploadPending(const LayerGl& g, bool all, const std::function<void(double)>& uploadMs = {});

    struct DrawResult {
        bool complete = true;    ///< every tile of the level inside g.vp was resident
        std::uint64_t lookups = 0; ///< tiles looked up with `touch`
        std::uint64_t hits = 0;
    };
    /// Draws the tiles of `level` inside g.vp (coarse ones first when some are missing). With `touch` the
    /// lookups count as uses in the LRU and are counted in the result.
    DrawResult draw(const LayerGl& g, int level, bool touch);

    /// A new GL context: the thumbnail texture is made again at the next upload.
    void glCreated() { thumbDirty_ = true; }
    /// Deletes the thumbnail texture through `gl` (the context current), or only forgets it when `gl` is null.
    void releaseGl(QOpenGLFunctions_3_3_Core* gl);

private:
    TileScheduler& tiles_;
    std::deque<std::pair<TileKey, QImage>> pending_;
    QImage thumbnail_;
    GLuint thumbTex_ = 0;
    bool thumbDirty_ = false;
};

} // namespace nic

#pragma once
// Background tile decoding for the slide viewer (house style #5/#6).
//
// TileSource decodes one tile (thread-safe, may throw nic::Error). TileLoader runs a source on its own
// QThreadPool: request() replaces everything still pending with a new batch (the newest request is
// served first; pending tiles from older batches that are not in the new one are dropped and counted),
// tiles already being decoded are not requested twice, and each decoded tile is delivered on the
// loader's thread (the GUI thread) by the tileReady signal as a QImage (RGB888), never as a pixmap or
// texture (workers queue results under the loader's lock and wake it with one queued call per batch). Destruction drops everything pending and waits for the tiles in flight (at most one per
// worker), so no worker outlives the loader.
#include "ui/tilemath.h"

#include <QImage>
#include <QObject>
#include <QString>
#include <QThreadPool>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace nic {

class Slide;

/// Produces tile images. decode() is called concurrently from worker threads.
class TileSource {
public:
    virtual ~TileSource() = default;
    /// The tile as an RGB888 image. Throws nic::Error (e.g. SlideError) with a user-facing message.
    virtual QImage decode(const TileKey& key) const = 0;
};

/// Tiles read from a nic::Slide (OpenSlide allows concurrent reads on one handle).
class SlideTileSource final : public TileSource {
public:
    SlideTileSource(std::shared_ptr<const Slide> slide, Pyramid pyramid);
    QImage decode(const TileKey& key) const override;
    const Pyramid& pyramid() const { return pyramid_; }

private:
    std::shared_ptr<const Slide> slide_;
    Pyramid pyramid_;
};

class TileLoader final : public QObject {
    Q_OBJECT
public:
    /// `threads` ≤ 0 picks QThread::idealThreadCount() clamped to [2, 8].
    explicit TileLoader(std::shared_ptr<const TileSource> source, int threads = 0, QObject* parent = nullptr);
    ~TileLoader() override;

    /// Replaces the pending queue by `keys` (highest priority first) minus the tiles in flight.
    /// Returns the batch's generation (increasing from 1).
    std::uint64_t request(const std::vector<TileKey>& keys);
    /// Drops everything pending (tiles in flight are still delivered).
    void cancelPending();

    std::uint64_t generation() const;
    std::size_t pendingCount() const;
    std::size_t inFlightCount() const;
    /// Totals since construction: tiles decoded, tiles dropped before decoding, decode failures.
    std::uint64_t decodedCount() const;
    std::uint64_t droppedCount() const;
    std::uint64_t failedCount() const;
    int threadCount() const { return pool_.maxThreadCount(); }

Q_SIGNALS:
    /// A decoded tile; `generation` is the batch it was requested in, `decodeMs` the decode time.
    void tileReady(nic::TileKey key, QImage image, quint64 generation, double decodeMs);
    /// Decoding failed; `message` is the source's error (e.g. the SlideError text).
    void tileFailed(nic::TileKey key, QString message);

private:
    /// Delivers the finished tiles on the loader's thread (queued by the first worker to finish one).
    Q_INVOKABLE void deliverFinished();

    struct Request {
        TileKey key;
        std::uint64_t generation;
    };
    struct Finished {
        TileKey key;
        QImage image;
        std::uint64_t generation = 0;
        double decodeMs = 0.0;
        QString error; ///< empty: decoded
    };
    struct Shared {
        mutable std::mutex mutex;
        std::deque<Request> pending;
        std::unordered_set<TileKey, TileKeyHash> inFlight;
        // Results travel to the loader's thread through this queue (under `mutex`), so the hand-off is
        // ordered by our own lock, not only by Qt's event queue (which ThreadSanitizer cannot see into).
        std::vector<Finished> finished;
        std::uint64_t generation = 0;
        int activeWorkers = 0;
        bool stopping = false;
        std::uint64_t decoded = 0;
        std::uint64_t dropped = 0;
        std::uint64_t failed = 0;
    };
    void workerLoop();

    std::shared_ptr<const TileSource> source_;
    std::shared_ptr<Shared> shared_;
    QThreadPool pool_;
};

} // namespace nic

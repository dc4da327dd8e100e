#include "ui/tileloader.h"

#include "core/base/error.h"
#include "core/slide/slide.h"

#include <QElapsedTimer>
#include <QMetaObject>
#include <QThread>

#include <algorithm>
#include <cstring>

namespace nic {

SlideTileSource::SlideTileSource(std::shared_ptr<const Slide> slide, Pyramid pyramid)
    : slide_(std::move(slide)), pyramid_(std::move(pyramid)) {}

QImage SlideTileSource::decode(const TileKey& key) const {
    const TileRegion r = tileRegion(pyramid_, key);
    const Image img = slide_->readRegion(r.level0X, r.level0Y, key.level, r.width, r.height);
    QImage out(img.width, img.height, QImage::Format_RGB888);
    const auto rowBytes = static_cast<std::size_t>(img.width) * 3;
    for (int y = 0; y < img.height; ++y)
        std::memcpy(out.scanLine(y), img.row(y), rowBytes);
    return out;
}

TileLoader::TileLoader(std::shared_ptr<const TileSource> source, int threads, QObject* parent)
    : QObject(parent), source_(std::move(source)), shared_(std::make_shared<Shared>()) {
    if (threads <= 0)
        threads = std::clamp(QThread::idealThreadCount(), 2, 8);
    pool_.setMaxThreadCount(threads);
}

TileLoader::~TileLoader() {
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
        shared_->pending.clear();
    }
    pool_.waitForDone();
    // Every worker touched the shared state last under the lock: taking it once more orders their
    // writes before its destruction for ThreadSanitizer too (waitForDone's own ordering is inside Qt).
    std::lock_guard lock(shared_->mutex);
    shared_->finished.clear();
}

std::uint64_t TileLoader::request(const std::vector<TileKey>& keys) {
    std::uint64_t gen = 0;
    int toStart = 0;
    {
        std::lock_guard lock(shared_->mutex);
        gen = ++shared_->generation;
        std::unordered_set<TileKey, TileKeyHash> wanted(keys.begin(), keys.end());
        for (const auto& r : shared_->pending)
            if (!wanted.count(r.key))
                ++shared_->dropped;
        shared_->pending.clear();
        std::unordered_set<TileKey, TileKeyHash> queued;
        for (const auto& k : keys)
            if (!shared_->inFlight.count(k) && queued.insert(k).second)
                shared_->pending.push_back({k, gen});
        const int wantWorkers = static_cast<int>(std::min<std::size_t>(shared_->pending.size(), static_cast<std::size_t>(pool_.maxThreadCount())));
        toStart = std::max(0, wantWorkers - shared_->activeWorkers);
        shared_->activeWorkers += toStart;
    }
    for (int i = 0; i < toStart; ++i)
        pool_.start([this] { workerLoop(); });
    return gen;
}

void TileLoader::cancelPending() {
    std::lock_guard lock(shared_->mutex);
    shared_->dropped += shared_->pending.size();
    shared_->pending.clear();
}

void TileLoader::workerLoop() {
    for (;;) {
        Request req;
        {
            std::lock_guard lock(shared_->mutex);
            if (shared_->stopping || shared_->pending.empty()) {
                --shared_->activeWorkers;
                return;
            }
            req = shared_->pending.front();
            shared_->pending.pop_front();
            shared_->inFlight.insert(req.key);
        }
        QElapsedTimer timer;
        timer.start();
        QImage image;
        QString error;
        try {
            image = source_->decode(req.key);
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        } catch (...) {
            error = QStringLiteral("unknown error while decoding a tile");
        }
        const double ms = static_cast<double>(timer.nsecsElapsed()) / 1e6;
        bool wake = false;
        {
            std::lock_guard lock(shared_->mutex);
            shared_->inFlight.erase(req.key);
            if (error.isEmpty())
                ++shared_->decoded;
            else
                ++shared_->failed;
            wake = shared_->finished.empty();
            shared_->finished.push_back({req.key, std::move(image), req.generation, ms, std::move(error)});
        }
        // One queued call per batch of results, delivered through the loader's event loop (GUI thread).
        // The loader's destructor waits for this worker, so `this` is alive here; a call still queued
        // when it dies is discarded by Qt.
        if (wake)
            QMetaObject::invokeMethod(this, "deliverFinished", Qt::QueuedConnection);
    }
}

void TileLoader::deliverFinished() {
    std::vector<Finished> batch;
    {
        std::lock_guard lock(shared_->mutex);
        batch.swap(shared_->finished);
    }
    for (auto& f : batch) {
        if (f.error.isEmpty())
            Q_EMIT tileReady(f.key, f.image, f.generation, f.decodeMs);
        else
            Q_EMIT tileFailed(f.key, f.error);
    }
}

std::uint64_t TileLoader::generation() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->generation;
}
std::size_t TileLoader::pendingCount() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->pending.size();
}
std::size_t TileLoader::inFlightCount() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->inFlight.size();
}
std::uint64_t TileLoader::decodedCount() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->decoded;
}
std::uint64_t TileLoader::droppedCount() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->dropped;
}
std::uint64_t TileLoader::failedCount() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->failed;
}

} // namespace nic

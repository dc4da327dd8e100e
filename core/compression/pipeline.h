#pragma once
// The compression pipeline's stages, internal to compressor.cpp: the bounded queue between threads, the patch and
// result items and the pool of patch buffers they travel in, the batch encoder (every dihedral variant), and the band
// assembler that writes complete grid rows in order.

#include "core/compression/compressor.h"
#include "core/compression/latentgrid.h"
#include "core/slide/patchgrid.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace nic::pipeline {

/// A bounded multi-producer multi-consumer queue. close(): no more pushes, pops drain what is left.
/// abort(): drop everything and wake every waiter.
template <class T>
class BoundedQueue {
public:
    explicit BoundedQueue(std::size_t capacity) : capacity_(std::max<std::size_t>(1, capacity)) {}

    bool push(T value) {
        std::unique_lock lock(mutex_);
        notFull_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
        if (closed_)
            return false;
        items_.push_back(std::move(value));
        notEmpty_.notify_one();
        return true;
    }
    /// Blocks until an item is available (returns it) or the queue is closed and empty (nullopt).
    std::optional<T> pop() {
        std::unique_lock lock(mutex_);
        notEmpty_.wait(lock, [&] { return closed_ || !items_.empty(); });
        return takeLocked();
    }
    /// Like pop(), but gives up after `timeout` (nullopt; check closedAndEmpty()).
    std::optional<T> popFor(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        notEmpty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
        return takeLocked();
    }
    std::optional<T> tryPop() {
        std::lock_guard lock(mutex_);
        return takeLocked();
    }
    void close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        notEmpty_.notify_all();
        notFull_.notify_all();
    }
    void abort() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        items_.clear();
        notEmpty_.notify_all();
        notFull_.notify_all();
    }
    bool closedAndEmpty() const {
        std::lock_guard lock(mutex_);
        return closed_ && items_.empty();
    }

private:
    std::optional<T> takeLocked() {
        if (items_.empty())
            return std::nullopt;
        T v = std::move(items_.front());
        items_.pop_front();
        notFull_.notify_one();
        return v;
    }
    mutable std::mutex mutex_;
    std::condition_variable notEmpty_, notFull_;
    std::deque<T> items_;
    std::size_t capacity_;
    bool closed_ = false;
};

struct Cell {
    int row = 0;
    int col = 0;
};

struct PatchItem {
    std::int64_t seq = 0;
    bool bad = false;
    std::vector<std::uint8_t> pixels; ///< P × P × 3, empty when bad
};

struct ResultBatch {
    std::vector<std::int64_t> seqs;
    std::vector<std::uint8_t> bad;
    std::vector<float> codes; ///< per item: augment × C floats (zeros for bad items)
};

/// Patch buffers that batches have finished with, handed back from the inference threads to the readers: a patch read
/// into one is neither allocated nor cleared first (bench_compress's profile put that clearing and its page faults at
/// 5 % of a patch's read). No bound is needed: the buffers in use are bounded by the patches in flight.
class PixelBufferPool {
public:
    std::vector<std::uint8_t> take() {
        std::lock_guard lock(mutex_);
        if (free_.empty())
            return {};
        std::vector<std::uint8_t> buffer = std::move(free_.back());
        free_.pop_back();
        return buffer;
    }
    void giveBack(std::vector<PatchItem>& items) {
        std::lock_guard lock(mutex_);
        for (PatchItem& item : items)
            if (item.pixels.capacity() > 0)
                free_.push_back(std::move(item.pixels));
    }

private:
    std::mutex mutex_;
    std::vector<std::vector<std::uint8_t>> free_;
};

/// Encodes a batch of patches for every dihedral variant.
class VariantEncoder {
public:
    VariantEncoder(PatchEncoder& encoder, int augment) : encoder_(encoder), augment_(augment) {}

    ResultBatch encode(std::vector<PatchItem>& items) {
        const int P = encoder_.info().patchSize;
        const auto C = static_cast<std::size_t>(encoder_.info().codeSize);
        const std::size_t patchBytes = static_cast<std::size_t>(P) * static_cast<std::size_t>(P) * 3U;
        const auto A = static_cast<std::size_t>(augment_);
        ResultBatch r;
        r.seqs.reserve(items.size());
        r.bad.reserve(items.size());
        std::vector<std::size_t> good;
        for (std::size_t i = 0; i < items.size(); ++i) {
            r.seqs.push_back(items[i].seq);
            r.bad.push_back(items[i].bad ? 1 : 0);
            if (!items[i].bad)
                good.push_back(i);
        }
        r.codes.assign(items.size() * A * C, 0.0F);
        if (good.empty())
            return r;
        nhwc_.resize(good.size() * patchBytes);
        out_.resize(good.size() * C);
        for (std::size_t g = 0; g < good.size(); ++g)
            std::memcpy(nhwc_.data() + g * patchBytes, items[good[g]].pixels.data(), patchBytes);
        for (std::size_t k = 0; k < A; ++k) {
            // Every orientation from the one copy: LibTorch encoders on the CPU read the bytes in transform k's order
            // while converting them; others transform them first (PatchEncoder::encodeTransformed).
            encoder_.encodeTransformed(nhwc_.data(), static_cast<int>(good.size()), static_cast<int>(k), out_.data());
            for (std::size_t g = 0; g < good.size(); ++g)
                std::memcpy(r.codes.data() + (good[g] * A + k) * C, out_.data() + g * C, C * sizeof(float));
        }
        return r;
    }

private:
    PatchEncoder& encoder_;
    int augment_;
    std::vector<std::uint8_t> nhwc_;
    std::vector<float> out_;
};

inline std::string cellLocation(const PatchGrid& grid, const Cell& cell) {
    const Level0Rect r = grid.cellRect(cell.col, cell.row);
    return "cell row " + std::to_string(cell.row) + ", col " + std::to_string(cell.col) + " (level-0 x=" +
           std::to_string(r.x) + ", y=" + std::to_string(r.y) + ", " + std::to_string(r.width) + "x" +
           std::to_string(r.height) + " px, read at level " + std::to_string(grid.level()) + ")";
}

/// Collects encoded cells and writes complete bands in order. Lives on the calling thread (the only
/// one that touches HDF5).
class BandAssembler {
public:
    BandAssembler(LatentGridWriter& writer, const std::vector<Cell>& cells, const std::vector<std::int64_t>& rowStart,
                  int codeSize, int augment)
        : writer_(writer), cells_(cells), rowStart_(rowStart), C_(static_cast<std::size_t>(codeSize)),
          A_(static_cast<std::size_t>(augment)) {}

    void add(const ResultBatch& batch) {
        for (std::size_t i = 0; i < batch.seqs.size(); ++i) {
            Entry e;
            e.bad = batch.bad[i] != 0;
            if (!e.bad)
                e.codes.assign(batch.codes.begin() + static_cast<std::ptrdiff_t>(i * A_ * C_),
                               batch.codes.begin() + static_cast<std::ptrdiff_t>((i + 1) * A_ * C_));
            pending_.emplace(batch.seqs[i], std::move(e));
        }
    }

    /// Writes every band whose cells have all arrived. Returns the number of bands written.
    int writeReadyBands() {
        int written = 0;
        const LatentGridMeta& m = writer_.meta();
        while (writer_.rowsDone() < m.rows) {
            const int r0 = writer_.rowsDone();
            const int count = std::min(writer_.bandRows(), m.rows - r0);
            const std::int64_t s0 = rowStart_[static_cast<std::size_t>(r0)];
            const std::int64_t s1 = rowStart_[static_cast<std::size_t>(r0 + count)];
            for (std::int64_t s = s0; s < s1; ++s)
                if (!pending_.count(s))
                    return written;
            const auto cols = static_cast<std::size_t>(m.cols);
            const std::size_t cellsInBand = static_cast<std::size_t>(count) * cols;
            bands_.resize(A_);
            std::vector<const float*> ptrs;
            for (auto& b : bands_) {
                b.assign(cellsInBand * C_, 0.0F);
                ptrs.push_back(b.data());
            }
            flags_.assign(cellsInBand, kCellBackground);
            for (std::int64_t s = s0; s < s1; ++s) {
                auto it = pending_.find(s);
                if (it == pending_.end())
                    throw Error("internal error: band assembled with a missing cell");
                const Cell& cell = cells_[static_cast<std::size_t>(s)];
                const std::size_t idx = static_cast<std::size_t>(cell.row - r0) * cols + static_cast<std::size_t>(cell.col);
                flags_[idx] = it->second.bad ? kCellUnreadable : kCellEncoded;
                if (!it->second.bad)
                    for (std::size_t k = 0; k < A_; ++k)
                        std::memcpy(bands_[k].data() + idx * C_, it->second.codes.data() + k * C_, C_ * sizeof(float));
                pending_.erase(it);
            }
            writer_.writeBand(count, ptrs, flags_.data());
            ++written;
        }
        return written;
    }

private:
    struct Entry {
        bool bad = false;
        std::vector<float> codes;
    };
    LatentGridWriter& writer_;
    const std::vector<Cell>& cells_;
    const std::vector<std::int64_t>& rowStart_;
    std::size_t C_, A_;
    std::unordered_map<std::int64_t, Entry> pending_;
    std::vector<std::vector<float>> bands_;
    std::vector<std::uint8_t> flags_;
};

} // namespace nic::pipeline

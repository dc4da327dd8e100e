#pragma once
// Prefetcher: one producer thread that makes the items 0 … count−1 of a sequence at most `depth` ahead of
// the one consumer, which takes them in order with next(). The encoder trainer uses it to prepare the next
// batch (indices, pairs, augmentation) while the current one is in the model. Items are made strictly in order
// on one thread, so whatever random streams make() draws from advance exactly as they would inline: a
// prefetched run is identical to an inline one. An exception thrown by make() reaches the consumer at the item
// it was making; destroying the prefetcher early (a cancelled job) stops the producer after the item it is
// making.
//
// Threaded = false makes each item inside next(), on the consumer's thread (the same sequence, no overlap):
// the reference the benchmarks measure prefetching against.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace nic {

template <typename T>
class Prefetcher {
public:
    /// make(k, item) fills item k (default-constructed); onStart runs first on the producer thread
    /// (thread-local settings), not at all when not threaded.
    Prefetcher(std::size_t count, std::size_t depth, std::function<void(std::size_t, T&)> make, bool threaded = true,
               std::function<void()> onStart = {})
        : count_(count), depth_(std::max<std::size_t>(depth, 1)), make_(std::move(make)), threaded_(threaded) {
        if (threaded_ && count_ > 0)
            worker_ = std::thread([this, start = std::move(onStart)] { produce(start); });
    }
    Prefetcher(const Prefetcher&) = delete;
    Prefetcher& operator=(const Prefetcher&) = delete;
    ~Prefetcher() {
        {
            std::lock_guard<std::mutex> lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        if (worker_.joinable())
            worker_.join();
    }

    /// The next item in order. Rethrows what make() threw for it; throws std::out_of_range past the end.
    T next() {
        if (taken_ >= count_)
            throw std::out_of_range("Prefetcher: all items taken");
        if (!threaded_) {
            T item{};
            const auto t0 = Clock::now();
            make_(taken_++, item);
            makeSeconds_ += seconds(t0);
            return item;
        }
        std::unique_lock<std::mutex> lk(m_);
        const auto t0 = Clock::now();
        cv_.wait(lk, [&] { return !ready_.empty() || error_; });
        waitSeconds_ += seconds(t0);
        if (ready_.empty())
            std::rethrow_exception(error_);
        T item = std::move(ready_.front());
        ready_.pop_front();
        ++taken_;
        lk.unlock();
        cv_.notify_all();
        return item;
    }

    /// Seconds the consumer waited in next() for an item not yet made (0 when not threaded).
    double waitSeconds() const {
        std::lock_guard<std::mutex> lk(m_);
        return waitSeconds_;
    }
    /// Seconds spent in make() so far, on whichever thread made the items.
    double makeSeconds() const {
        std::lock_guard<std::mutex> lk(m_);
        return makeSeconds_;
    }

private:
    using Clock = std::chrono::steady_clock;
    static double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

    void produce(const std::function<void()>& onStart) {
        try {
            if (onStart)
                onStart();
            for (std::size_t k = 0; k < count_; ++k) {
                {
                    std::unique_lock<std::mutex> lk(m_);
                    cv_.wait(lk, [&] { return stop_ || ready_.size() < depth_; });
                    if (stop_)
                        return;
                }
                T item{};
                const auto t0 = Clock::now();
                make_(k, item);
                const double s = seconds(t0);
                {
                    std::lock_guard<std::mutex> lk(m_);
                    makeSeconds_ += s;
                    ready_.push_back(std::move(item));
                }
                cv_.notify_all();
            }
        } catch (...) {
            {
                std::lock_guard<std::mutex> lk(m_);
                error_ = std::current_exception();
            }
            cv_.notify_all();
        }
    }

    const std::size_t count_;
    const std::size_t depth_;
    std::function<void(std::size_t, T&)> make_;
    const bool threaded_;
    std::size_t taken_ = 0; ///< consumer side only
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<T> ready_;
    std::exception_ptr error_;
    bool stop_ = false;
    double waitSeconds_ = 0.0;
    double makeSeconds_ = 0.0;
    std::thread worker_; ///< last: started after every other member exists
};

} // namespace nic

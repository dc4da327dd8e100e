#pragma once
// Progress / cancel / log context passed to every long operation in core/ (house style #4).
// core/ knows nothing of Qt: the CLI adapts it to a progress bar, the GUI to queued signals.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace nic {

/// Thread-safe progress reporting and cooperative cancellation.
/// Producers call progress()/log() from any thread; sinks are invoked on the calling thread,
/// serialised by an internal mutex, and progress is throttled (at most every `minInterval`, plus the
/// first and the final call). cancel() may be called from any thread; long loops call
/// throwIfCancelled() at safe points (after a batch, a row, a tile), which throws nic::Cancelled.
class JobContext {
public:
    struct Progress {
        std::int64_t done = 0;
        std::int64_t total = 0;  ///< 0 when unknown
        std::string step;        ///< what is being done now ("reading tiles", "epoch 3/10", ...)
        double elapsedSeconds = 0.0;
        double etaSeconds = -1.0; ///< -1 when unknown
        double rate = 0.0;        ///< units per second since start
    };
    using ProgressSink = std::function<void(const Progress&)>;
    using LogSink = std::function<void(const std::string&)>;

    JobContext() : start_(Clock::now()) {}
    JobContext(ProgressSink progress, LogSink log)
        : progressSink_(std::move(progress)), logSink_(std::move(log)), start_(Clock::now()) {}

    /// Minimum time between two forwarded progress reports (default 100 ms).
    void setMinInterval(std::chrono::milliseconds ms) { minInterval_ = ms; }

    /// Reports `done` of `total` units for step `step`. Throttled; a report with done == total always passes.
    void progress(std::int64_t done, std::int64_t total, const std::string& step = {});
    /// Sends one line to the log sink (not throttled).
    void log(const std::string& line);

    void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
    bool isCancelled() const { return cancelled_.load(std::memory_order_relaxed); }
    /// Throws nic::Cancelled if cancel() was called.
    void throwIfCancelled() const;

    /// A context that reports nothing and is never cancelled (for callers that do not care).
    static JobContext& none();

private:
    using Clock = std::chrono::steady_clock;
    ProgressSink progressSink_;
    LogSink logSink_;
    std::atomic<bool> cancelled_{false};
    std::mutex mutex_;
    Clock::time_point start_;
    Clock::time_point lastReport_{};
    bool reported_ = false;
    std::chrono::milliseconds minInterval_{100};
};

} // namespace nic

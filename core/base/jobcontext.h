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
        /// Share of the whole job done, 0…1 (done/total mapped through the current phase, see setPhase());
        /// -1 when total is unknown.
        double fraction = -1.0;
    };
    using ProgressSink = std::function<void(const Progress&)>;
    using LogSink = std::function<void(const std::string&)>;

    JobContext() : start_(Clock::now()) {}
    JobContext(ProgressSink progress, LogSink log)
        : progressSink_(std::move(progress)), logSink_(std::move(log)), start_(Clock::now()) {}
    /// A child context for a sub-task that covers the share [begin, end] (0 ≤ begin ≤ end ≤ 1) of `parent`'s
    /// job: each report of the child reaches the parent as that share of the parent's job (never going
    /// backwards), with its step prefixed by `stepPrefix`; log lines go to the parent's log as they are;
    /// cancelling the parent cancels the child at once (isCancelled() asks the parent too), and cancelling
    /// the child cancels only the child. The child must not outlive the parent. Front-ends thus weight the
    /// parts of a job without reading its progress text.
    JobContext(JobContext& parent, double begin, double end, std::string stepPrefix = {});
    JobContext(const JobContext&) = delete;
    JobContext& operator=(const JobContext&) = delete;

    /// Minimum time between two forwarded progress reports (default 100 ms).
    void setMinInterval(std::chrono::milliseconds ms) { minInterval_ = ms; }

    /// Reports `done` of `total` units for step `step`. Throttled; a report with done == total always passes.
    void progress(std::int64_t done, std::int64_t total, const std::string& step = {});
    /// Declares that the following progress() reports cover the share [begin, end] of this context's whole
    /// job (Progress::fraction = begin + (end - begin) · done/total). A stage whose phases differ in cost
    /// says so here (compression: tissue detection 0–0.1, encoding 0.1–1). Default [0, 1].
    void setPhase(double begin, double end);
    /// Sends one line to the log sink (not throttled).
    void log(const std::string& line);

    void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
    bool isCancelled() const {
        return cancelled_.load(std::memory_order_relaxed) || (parent_ != nullptr && parent_->isCancelled());
    }
    /// Throws nic::Cancelled if cancel() was called.
    void throwIfCancelled() const;

    /// A context that reports nothing and is never cancelled (for callers that do not care).
    static JobContext& none();

private:
    using Clock = std::chrono::steady_clock;
    /// A child's report: `share` of this job done (before this context's phase), `inner` the child's own
    /// counts, `step` its prefixed step. Throttled like progress(); never counts as a final report.
    void forward(double share, const Progress& inner, const std::string& step);
    ProgressSink progressSink_;
    LogSink logSink_;
    std::atomic<bool> cancelled_{false};
    std::mutex mutex_;
    Clock::time_point start_;
    Clock::time_point lastReport_{};
    bool reported_ = false;
    std::chrono::milliseconds minInterval_{100};
    double phaseBegin_ = 0.0;
    double phaseEnd_ = 1.0;
    const JobContext* parent_ = nullptr;
    double forwarded_ = 0.0; ///< the largest share forwarded to the parent (a child's reports never go back)
};

} // namespace nic

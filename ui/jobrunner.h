#pragma once
// Runs background jobs one after another on a worker QObject moved to a QThread (house style #5) and
// adapts each job's JobContext to queued Qt signals (house style #4).
#include "ui/job.h"

#include <QList>
#include <QObject>
#include <QThread>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace nic {

class JobWorker;

/// A FIFO queue of jobs with one worker thread. Lives on (and is used from) the GUI thread; every
/// signal is emitted there. Bodies run on the worker thread, one at a time, in submission order.
///
/// Failure model: whatever a body throws is caught on the worker (nic::Cancelled → Cancelled;
/// nic::Error, c10::Error or any std::exception → Failed with its message as the cause, a backtrace
/// cut off; anything else → Failed with "unknown error"); the runner then starts the next job.
/// Cancellation is cooperative: cancel() sets the job's JobContext flag and the body throws at its
/// next throwIfCancelled(). shutdown() (also run by the destructor) cancels everything, then
/// requestInterruption() → quit() → wait() on the thread; it never terminates a thread.
class JobRunner : public QObject {
    Q_OBJECT
public:
    static constexpr int maxLogLines = 5000; ///< per job; older lines are dropped

    explicit JobRunner(QObject* parent = nullptr);
    /// Calls shutdown() and waits without a time limit for the running body to return.
    ~JobRunner() override;

    /// Queues `job` and returns its id (ids start at 1 and are never reused). A job with no body, or
    /// one submitted after shutdown(), finishes at once as Failed with the reason as its error.
    JobId enqueue(Job job);

    /// A copy of the job's current state; a JobInfo with id 0 for an unknown id.
    JobInfo info(JobId id) const;
    bool contains(JobId id) const { return jobs_.count(id) != 0; }
    /// All known jobs in submission order.
    QList<JobId> jobIds() const;
    /// A job that runs elsewhere (a Slurm submission the GUI follows, ui/clusterjobs.h): listed, logged and
    /// cancelled like the others but never queued or run on the worker; its owner reports on the GUI thread
    /// through reportExternal()/logExternal() and ends it with settleExternal(). It starts Running, does not
    /// count in activeCount() (closing the window does not stop a cluster job), and cancel() only emits
    /// externalCancelRequested() (the owner stops it and settles it).
    JobId addExternal(const QString& name, const QStringList& resultPaths);
    bool isExternal(JobId id) const { return external_.count(id) != 0; }
    void reportExternal(JobId id, int percent, const QString& step);
    void logExternal(JobId id, const QString& line) { onLog(id, line); }
    void settleExternal(JobId id, JobState state, const QString& error = {});

    /// The job running now, if any.
    std::optional<JobId> runningJob() const { return running_; }
    /// Queued plus running jobs.
    int activeCount() const;
    bool hasActiveJobs() const { return activeCount() > 0; }
    bool isShutDown() const { return shutDown_; }

public Q_SLOTS:
    /// Queued job → Cancelled at once; running job → its context is cancelled and it becomes Cancelled
    /// when the body stops (or Succeeded if it returns without checking). Finished/unknown: no-op.
    void cancel(nic::JobId id);
    /// Cancels every queued and the running job.
    void cancelAll();
    /// Forgets finished jobs (jobRemoved for each).
    void removeFinished();
    /// Cancels everything and stops the worker thread: requestInterruption → quit → wait(timeoutMs,
    /// −1 = no limit). Returns false if the thread is still running when the time is up (a body that
    /// ignores cancellation); the destructor then waits for it. Idempotent.
    bool shutdown(int timeoutMs = -1);

Q_SIGNALS:
    void jobAdded(nic::JobId id);
    void jobStateChanged(nic::JobId id, nic::JobState state);
    /// percent 0..100 or −1 (unknown total); etaSeconds −1 when unknown; step as reported by the body.
    void jobProgress(nic::JobId id, int percent, double etaSeconds, const QString& step);
    void jobLog(nic::JobId id, const QString& line);
    /// After jobStateChanged to a finished state; `error` is the cause for Failed, else empty.
    void jobFinished(nic::JobId id, nic::JobState state, const QString& error);
    void jobRemoved(nic::JobId id);
    /// cancel() was called on a running external job.
    void externalCancelRequested(nic::JobId id);
    /// The queue ran dry (no job queued or running).
    void idle();

private:
    /// Written by the worker before it signals; read by the runner after the signal or after wait().
    struct Outcome {
        JobState state = JobState::Cancelled; ///< stays so when the body never started (shutdown)
        QString error;
    };
    struct Entry {
        JobInfo info;
        std::function<void(JobContext&)> body;
        std::shared_ptr<JobContext> context; ///< set while running (shared with the worker)
        std::shared_ptr<Outcome> outcome;
    };
    /// What crosses between the GUI thread and the worker, under one std::mutex (defined in the .cpp):
    /// jobs to start one way, progress/log/finished events the other. Posting only wakes the other
    /// side with a queued call; the data itself is ordered by our lock, which ThreadSanitizer sees
    /// (Qt's event queue locks inside uninstrumented libQt6Core).
    struct Mailbox;
    friend class JobWorker;
    /// Handles the events the worker posted, in order (queued by the worker's first post of a batch).
    Q_INVOKABLE void deliverMail();
    void startNext();
    void onProgress(JobId id, const JobContext::Progress& p);
    void onLog(JobId id, const QString& line);
    void onWorkerFinished(JobId id);
    void finish(JobId id, JobState state, const QString& error);
    void setState(Entry& e, JobState state);

    std::map<JobId, Entry> jobs_;
    QList<JobId> order_;
    std::deque<JobId> queue_;
    std::optional<JobId> running_;
    std::set<JobId> external_;
    JobId nextId_ = 1;
    bool shutDown_ = false;
    QThread thread_;
    JobWorker* worker_ = nullptr; ///< lives on thread_; deleted by the thread's finished signal
    std::shared_ptr<Mailbox> mail_;
};

} // namespace nic

#pragma once
// A background job as the GUI sees it: a named body that runs core/ code against a JobContext on the
// JobRunner's worker thread, the result files it produces, and the state it ends in.
#include "core/base/jobcontext.h"

#include <QMetaType>
#include <QString>
#include <QStringList>

#include <functional>

namespace nic {

using JobId = quint64;

/// Life cycle: Queued → Running → one of Succeeded / Failed / Cancelled (a queued job can go straight
/// to Cancelled, a job that cannot start straight to Failed). Finished states are terminal.
enum class JobState { Queued, Running, Succeeded, Failed, Cancelled };

/// "queued", "running", "succeeded", "failed", "cancelled".
QString jobStateName(JobState state);
/// True for Succeeded, Failed and Cancelled.
inline bool isFinished(JobState state) {
    return state == JobState::Succeeded || state == JobState::Failed || state == JobState::Cancelled;
}

/// What a caller submits to JobRunner::enqueue().
struct Job {
    QString name; ///< shown in the jobs panel ("Compress 12 slides", ...)
    /// Runs on the runner's worker thread (never the GUI thread). Report with ctx.progress()/log(),
    /// call ctx.throwIfCancelled() at safe points; throw to fail (what() is shown as the cause).
    /// It must not touch widgets; to update one, post with QMetaObject::invokeMethod(widget, functor,
    /// Qt::QueuedConnection). Whatever it captures is released when the job finishes.
    std::function<void(JobContext&)> body;
    QStringList resultPaths; ///< files/folders the job produces; offered by "Open result" on success
};

/// A snapshot of one job (copied out of the runner; never shared with the worker).
struct JobInfo {
    JobId id = 0;                 ///< 0: no such job
    QString name;
    JobState state = JobState::Queued;
    int percent = -1;             ///< 0..100, -1 while unknown (busy)
    double etaSeconds = -1.0;     ///< -1 while unknown
    double elapsedSeconds = 0.0;
    QString step;                 ///< the step text of the latest progress report
    QString error;                ///< Failed: the original cause (no backtrace)
    QStringList resultPaths;
    QStringList log;              ///< log lines, oldest first (capped at JobRunner::maxLogLines)
};

/// The user-facing cause in an exception message: c10::Error appends "\nException raised from …" and
/// a backtrace, which is cut off (the runner keeps the whole text in the job's log).
QString causeFromWhat(const char* what);

/// "< 1 s", "12 s", "3 min 20 s", "1 h 02 min"; "" for a negative (unknown) value.
QString formatDuration(double seconds);

} // namespace nic

Q_DECLARE_METATYPE(nic::JobState)

#include "ui/jobrunner.h"

#include "core/error.h"

#include <QDeadlineTimer>
#include <QMetaObject>

#include <algorithm>
#include <cmath>
#include <exception>

namespace nic {

QString jobStateName(JobState state) {
    switch (state) {
    case JobState::Queued: return QStringLiteral("queued");
    case JobState::Running: return QStringLiteral("running");
    case JobState::Succeeded: return QStringLiteral("succeeded");
    case JobState::Failed: return QStringLiteral("failed");
    case JobState::Cancelled: return QStringLiteral("cancelled");
    }
    return QStringLiteral("unknown");
}

QString causeFromWhat(const char* what) {
    QString text = QString::fromUtf8(what ? what : "");
    // c10::Error::what() = message + "\nException raised from <fn> at <file> (most recent call first):" + frames.
    const auto cut = text.indexOf(QLatin1String("\nException raised from "));
    if (cut >= 0)
        text.truncate(cut);
    text = text.trimmed();
    return text.isEmpty() ? QStringLiteral("unknown error (empty message)") : text;
}

QString formatDuration(double seconds) {
    if (!(seconds >= 0.0) || !std::isfinite(seconds))
        return {};
    if (seconds < 0.5)
        return QStringLiteral("< 1 s");
    const auto s = static_cast<long long>(std::llround(seconds));
    if (s < 60)
        return QStringLiteral("%1 s").arg(s);
    if (s < 3600)
        return QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60, 2, 10, QLatin1Char('0'));
}

/// Runs one body at a time on the runner's thread. Nothing escapes run(): the outcome is recorded and
/// signalled (house style #3).
class JobWorker : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;

    void run(JobId id, JobContext& ctx, const std::function<void(JobContext&)>& body, JobState& state,
             QString& error) {
        try {
            if (QThread::currentThread()->isInterruptionRequested())
                ctx.cancel();
            ctx.throwIfCancelled();
            body(ctx);
            state = JobState::Succeeded;
        } catch (const Cancelled&) {
            state = JobState::Cancelled;
        } catch (const Error& e) {
            fail(ctx, e.what(), state, error);
        } catch (const std::exception& e) { // c10::Error, std::bad_alloc, filesystem errors, ...
            fail(ctx, e.what(), state, error);
        } catch (...) {
            state = JobState::Failed;
            error = QStringLiteral("unknown error (an exception that is not a std::exception)");
            logQuietly(ctx, error.toStdString());
        }
        Q_EMIT finished(id);
    }

Q_SIGNALS:
    void finished(nic::JobId id);

private:
    static void fail(JobContext& ctx, const char* what, JobState& state, QString& error) {
        state = JobState::Failed;
        error = causeFromWhat(what);
        const std::string full = what ? what : "";
        if (QString::fromStdString(full).trimmed() != error) // keep the backtrace for bug reports
            logQuietly(ctx, full);
    }
    static void logQuietly(JobContext& ctx, const std::string& line) {
        try {
            ctx.log(line);
        } catch (...) {
        }
    }
};

JobRunner::JobRunner(QObject* parent) : QObject(parent) {
    thread_.setObjectName(QStringLiteral("nic-jobs"));
    worker_ = new JobWorker; // no parent: it is moved to thread_
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    connect(worker_, &JobWorker::finished, this, &JobRunner::onWorkerFinished, Qt::QueuedConnection);
    thread_.start();
}

JobRunner::~JobRunner() {
    shutdown(-1);
}

JobId JobRunner::enqueue(Job job) {
    const JobId id = nextId_++;
    Entry e;
    e.info.id = id;
    e.info.name = job.name.isEmpty() ? QStringLiteral("Job %1").arg(id) : job.name;
    e.info.resultPaths = job.resultPaths;
    e.body = std::move(job.body);
    jobs_.emplace(id, std::move(e));
    order_.append(id);
    Q_EMIT jobAdded(id);
    if (shutDown_) {
        finish(id, JobState::Failed, QStringLiteral("the job runner has shut down"));
        return id;
    }
    if (!jobs_.at(id).body) {
        finish(id, JobState::Failed, QStringLiteral("the job has nothing to run"));
        return id;
    }
    queue_.push_back(id);
    startNext();
    return id;
}

JobInfo JobRunner::info(JobId id) const {
    const auto it = jobs_.find(id);
    return it == jobs_.end() ? JobInfo{} : it->second.info;
}

QList<JobId> JobRunner::jobIds() const {
    return order_;
}

int JobRunner::activeCount() const {
    return static_cast<int>(queue_.size()) + (running_ ? 1 : 0);
}

void JobRunner::setState(Entry& e, JobState state) {
    e.info.state = state;
    Q_EMIT jobStateChanged(e.info.id, state);
}

void JobRunner::startNext() {
    if (running_ || shutDown_)
        return;
    if (queue_.empty()) {
        Q_EMIT idle();
        return;
    }
    const JobId id = queue_.front();
    queue_.pop_front();
    Entry& e = jobs_.at(id);
    // The sinks run on the worker thread; they only post to this object (dropped if it is gone).
    e.context = std::make_shared<JobContext>(
        [this, id](const JobContext::Progress& p) {
            QMetaObject::invokeMethod(this, [this, id, p] { onProgress(id, p); }, Qt::QueuedConnection);
        },
        [this, id](const std::string& line) {
            const QString text = QString::fromStdString(line);
            QMetaObject::invokeMethod(this, [this, id, text] { onLog(id, text); }, Qt::QueuedConnection);
        });
    e.outcome = std::make_shared<Outcome>();
    running_ = id;
    e.info.percent = 0;
    setState(e, JobState::Running);
    QMetaObject::invokeMethod(
        worker_,
        [worker = worker_, id, ctx = e.context, body = e.body, outcome = e.outcome] {
            worker->run(id, *ctx, body, outcome->state, outcome->error);
        },
        Qt::QueuedConnection);
}

void JobRunner::onProgress(JobId id, const JobContext::Progress& p) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.info.state != JobState::Running)
        return;
    JobInfo& info = it->second.info;
    int percent = -1;
    if (p.total > 0) {
        const double fraction = static_cast<double>(std::clamp<std::int64_t>(p.done, 0, p.total)) / static_cast<double>(p.total);
        percent = static_cast<int>(std::floor(fraction * 100.0));
    }
    info.percent = percent;
    info.etaSeconds = p.etaSeconds;
    info.elapsedSeconds = p.elapsedSeconds;
    if (!p.step.empty())
        info.step = QString::fromStdString(p.step);
    Q_EMIT jobProgress(id, percent, p.etaSeconds, info.step);
}

void JobRunner::onLog(JobId id, const QString& line) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end())
        return;
    QStringList& log = it->second.info.log;
    log.append(line);
    if (log.size() > maxLogLines)
        log.remove(0, log.size() - maxLogLines);
    Q_EMIT jobLog(id, line);
}

void JobRunner::onWorkerFinished(JobId id) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.info.state != JobState::Running)
        return; // already settled by shutdown()
    const Outcome outcome = *it->second.outcome;
    running_.reset();
    it->second.context.reset();
    if (outcome.state == JobState::Succeeded && it->second.info.percent != 100) {
        it->second.info.percent = 100;
        it->second.info.etaSeconds = 0.0;
        Q_EMIT jobProgress(id, 100, 0.0, it->second.info.step);
    }
    finish(id, outcome.state, outcome.error);
    startNext();
}

void JobRunner::finish(JobId id, JobState state, const QString& error) {
    Entry& e = jobs_.at(id);
    e.info.error = error;
    if (state != JobState::Succeeded)
        e.info.etaSeconds = -1.0;
    e.body = nullptr; // release what the body captured
    setState(e, state);
    Q_EMIT jobFinished(id, state, error);
}

void JobRunner::cancel(JobId id) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end())
        return;
    if (it->second.info.state == JobState::Queued) {
        queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
        finish(id, JobState::Cancelled, {});
        if (!running_ && queue_.empty())
            Q_EMIT idle();
    } else if (it->second.info.state == JobState::Running && it->second.context) {
        it->second.context->cancel();
        onLog(id, QStringLiteral("cancel requested"));
    }
}

void JobRunner::cancelAll() {
    const std::deque<JobId> queued = queue_;
    for (const JobId id : queued)
        cancel(id);
    if (running_)
        cancel(*running_);
}

void JobRunner::removeFinished() {
    for (auto it = order_.begin(); it != order_.end();) {
        const JobId id = *it;
        if (isFinished(jobs_.at(id).info.state)) {
            jobs_.erase(id);
            it = order_.erase(it);
            Q_EMIT jobRemoved(id);
        } else {
            ++it;
        }
    }
}

bool JobRunner::shutdown(int timeoutMs) {
    if (!shutDown_) {
        cancelAll();
        shutDown_ = true;
    }
    if (thread_.isRunning()) {
        thread_.requestInterruption();
        thread_.quit();
        const bool stopped = timeoutMs < 0 ? thread_.wait() : thread_.wait(QDeadlineTimer(timeoutMs));
        if (!stopped)
            return false;
    }
    // The worker's finished event for the last job may still be queued here; settle it now.
    if (running_) {
        const JobId id = *running_;
        running_.reset();
        Entry& e = jobs_.at(id);
        const Outcome outcome = e.outcome ? *e.outcome : Outcome{JobState::Cancelled, {}};
        e.context.reset();
        finish(id, outcome.state, outcome.error);
    }
    return true;
}

} // namespace nic

#include "jobrunner.moc"

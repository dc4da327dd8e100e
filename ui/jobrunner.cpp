#include "ui/jobrunner.h"

#include "core/base/error.h"

#include <QDeadlineTimer>
#include <QMetaObject>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <vector>

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

struct JobRunner::Mailbox {
    struct Start {
        JobId id = 0;
        std::shared_ptr<JobContext> context;
        std::function<void(JobContext&)> body;
        std::shared_ptr<Outcome> outcome;
    };
    struct Event {
        enum class Kind { Progress, Log, Finished } kind = Kind::Log;
        JobId id = 0;
        JobContext::Progress progress;
        QString text;
    };
    std::mutex mutex;
    std::deque<Start> starts;  ///< GUI → worker
    std::vector<Event> events; ///< worker → GUI

    /// Queues an event for the runner; the first of a batch wakes it.
    void post(JobRunner* runner, Event e) {
        bool wake = false;
        {
            std::lock_guard lock(mutex);
            wake = events.empty();
            events.push_back(std::move(e));
        }
        if (wake)
            QMetaObject::invokeMethod(runner, "deliverMail", Qt::QueuedConnection);
    }
};

/// Runs one body at a time on the runner's thread. Nothing escapes runNext(): the outcome is recorded
/// and posted (house style #3).
class JobWorker : public QObject {
    Q_OBJECT
public:
    JobWorker(JobRunner* runner, std::shared_ptr<JobRunner::Mailbox> mail) : runner_(runner), mail_(std::move(mail)) {}
    /// Runs on the worker thread when it finishes (deleteLater). The runner takes the mailbox lock
    /// before stopping the thread, so taking it here orders the runner's earlier uses of this object
    /// (queued calls) before its destruction, also for ThreadSanitizer.
    ~JobWorker() override { std::lock_guard lock(mail_->mutex); }

    /// Takes the next job the runner queued in the mailbox and runs it.
    Q_INVOKABLE void runNext() {
        JobRunner::Mailbox::Start start;
        {
            std::lock_guard lock(mail_->mutex);
            if (mail_->starts.empty())
                return;
            start = std::move(mail_->starts.front());
            mail_->starts.pop_front();
        }
        JobContext& ctx = *start.context;
        JobState& state = start.outcome->state;
        QString& error = start.outcome->error;
        try {
            if (QThread::currentThread()->isInterruptionRequested())
                ctx.cancel();
            ctx.throwIfCancelled();
            start.body(ctx);
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
        start.body = nullptr; // what the body captured is released on this thread, before the runner hears
        JobRunner::Mailbox::Event done;
        done.kind = JobRunner::Mailbox::Event::Kind::Finished;
        done.id = start.id;
        mail_->post(runner_, std::move(done));
    }

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

    JobRunner* runner_;
    std::shared_ptr<JobRunner::Mailbox> mail_;
};

JobRunner::JobRunner(QObject* parent) : QObject(parent) {
    thread_.setObjectName(QStringLiteral("nic-jobs"));
    mail_ = std::make_shared<Mailbox>();
    worker_ = new JobWorker(this, mail_); // no parent: it is moved to thread_
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
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

JobId JobRunner::addExternal(const QString& name, const QStringList& resultPaths) {
    const JobId id = nextId_++;
    Entry e;
    e.info.id = id;
    e.info.name = name;
    e.info.resultPaths = resultPaths;
    e.info.percent = -1;
    jobs_.emplace(id, std::move(e));
    order_.append(id);
    external_.insert(id);
    Q_EMIT jobAdded(id);
    setState(jobs_.at(id), JobState::Running);
    return id;
}

void JobRunner::reportExternal(JobId id, int percent, const QString& step) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || !external_.count(id) || it->second.info.state != JobState::Running)
        return;
    it->second.info.percent = percent;
    it->second.info.step = step;
    Q_EMIT jobProgress(id, percent, -1.0, step);
}

void JobRunner::settleExternal(JobId id, JobState state, const QString& error) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || !external_.count(id) || isFinished(it->second.info.state) || !isFinished(state))
        return;
    if (state == JobState::Succeeded && it->second.info.percent != 100) {
        it->second.info.percent = 100;
        Q_EMIT jobProgress(id, 100, 0.0, it->second.info.step);
    }
    finish(id, state, error);
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
    // The sinks run on the worker thread; they only post to the mailbox (the runner outlives the
    // worker thread: its destructor waits for it).
    Mailbox* mail = mail_.get();
    e.context = std::make_shared<JobContext>(
        [this, mail, id](const JobContext::Progress& p) {
            Mailbox::Event ev;
            ev.kind = Mailbox::Event::Kind::Progress;
            ev.id = id;
            ev.progress = p;
            mail->post(this, std::move(ev));
        },
        [this, mail, id](const std::string& line) {
            Mailbox::Event ev;
            ev.kind = Mailbox::Event::Kind::Log;
            ev.id = id;
            ev.text = QString::fromStdString(line);
            mail->post(this, std::move(ev));
        });
    e.outcome = std::make_shared<Outcome>();
    running_ = id;
    e.info.percent = 0;
    setState(e, JobState::Running);
    {
        std::lock_guard lock(mail_->mutex);
        mail_->starts.push_back({id, e.context, e.body, e.outcome});
    }
    QMetaObject::invokeMethod(worker_, "runNext", Qt::QueuedConnection);
}

void JobRunner::deliverMail() {
    std::vector<Mailbox::Event> events;
    {
        std::lock_guard lock(mail_->mutex);
        events.swap(mail_->events);
    }
    for (const auto& ev : events) {
        switch (ev.kind) {
        case Mailbox::Event::Kind::Progress: onProgress(ev.id, ev.progress); break;
        case Mailbox::Event::Kind::Log: onLog(ev.id, ev.text); break;
        case Mailbox::Event::Kind::Finished: onWorkerFinished(ev.id); break;
        }
    }
}

void JobRunner::onProgress(JobId id, const JobContext::Progress& p) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.info.state != JobState::Running)
        return;
    JobInfo& info = it->second.info;
    // The job's own share done (JobContext: done/total mapped through phases and child contexts).
    const int percent = p.fraction >= 0.0 ? static_cast<int>(std::floor(std::clamp(p.fraction, 0.0, 1.0) * 100.0)) : -1;
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
    } else if (it->second.info.state == JobState::Running && external_.count(id)) {
        onLog(id, QStringLiteral("cancel requested"));
        Q_EMIT externalCancelRequested(id);
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
            external_.erase(id);
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
        { std::lock_guard lock(mail_->mutex); } // see ~JobWorker
        thread_.requestInterruption();
        thread_.quit();
        const bool stopped = timeoutMs < 0 ? thread_.wait() : thread_.wait(QDeadlineTimer(timeoutMs));
        if (!stopped)
            return false;
    }
    // Events the worker posted may still wait in the mailbox (their wake-up call is queued): handle
    // them now, in order; the last job's finished event settles it. A job whose body never started
    // keeps the Cancelled outcome.
    deliverMail();
    if (running_) {
        const JobId id = *running_;
        running_.reset();
        Entry& e = jobs_.at(id);
        Outcome outcome{JobState::Cancelled, {}};
        {
            std::lock_guard lock(mail_->mutex); // orders the worker's writes to the outcome before this read
            if (e.outcome)
                outcome = *e.outcome;
            mail_->starts.clear();
        }
        e.context.reset();
        finish(id, outcome.state, outcome.error);
    }
    return true;
}

} // namespace nic

#include "jobrunner.moc"

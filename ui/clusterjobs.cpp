#include "ui/clusterjobs.h"

#include "core/base/companionprogram.h"
#include "core/base/error.h"
#include "core/cluster/slurm.h"
#include "ui/jobrunner.h"

#include <QFileInfo>
#include <QMetaObject>
#include <QTimer>

#include <algorithm>
#include <cstring>
#include <exception>

namespace nic {

namespace {

QString nounOf(SubmitCommand c) {
    switch (c) {
    case SubmitCommand::Compress: return QStringLiteral("slide");
    case SubmitCommand::GradCam: return QStringLiteral("grid");
    case SubmitCommand::Train: return QStringLiteral("round");
    }
    return QStringLiteral("item");
}

// The cause in nic's stderr: its last line without the "nic: error: " prefix.
QString causeOf(const std::string& err, int exitCode) {
    const QStringList lines = QString::fromStdString(err).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        QString line = it->trimmed();
        if (line.isEmpty() || line.startsWith(QLatin1String("Run 'nic --help'")))
            continue;
        for (const char* prefix : {"nic: usage error: ", "nic: error: ", "nic: "})
            if (line.startsWith(QLatin1String(prefix))) {
                line = line.mid(static_cast<int>(std::strlen(prefix)));
                break;
            }
        return line;
    }
    return QStringLiteral("nic submit exited with status %1").arg(exitCode);
}

} // namespace

ClusterJobs::ClusterJobs(JobRunner* runner, QObject* parent) : QObject(parent), runner_(runner) {
    pool_.setMaxThreadCount(2);
    bool ok = false;
    const int ms = qEnvironmentVariableIntValue("NIC_SLURM_POLL_MS", &ok);
    if (ok && ms > 0)
        pollMs_ = ms;
    connect(runner_, &JobRunner::externalCancelRequested, this, [this](JobId id) { cancel(id); });
    connect(runner_, &JobRunner::jobRemoved, this, [this](JobId id) { stop(id); });
}

ClusterJobs::~ClusterJobs() {
    pool_.waitForDone();
}

QString ClusterJobs::nicProgram() {
    // Installed: bin/nic beside bin/nic-studio. Build tree: app/nic/nic beside app/nic-studio/ (or tests/).
    const QFileInfo nic(QString::fromStdString(findCompanionProgram("nic", "NIC_PROGRAM").string()));
    return nic.isFile() && nic.isExecutable() ? nic.absoluteFilePath() : QString();
}

void ClusterJobs::setPollInterval(int ms) {
    pollMs_ = std::max(50, ms);
    for (auto& [id, f] : followed_)
        if (f.timer)
            f.timer->setInterval(pollMs_);
}

JobId ClusterJobs::submit(const Submission& s, QString* error) {
    const QString nic = nicProgram();
    if (nic.isEmpty()) {
        if (error)
            *error = tr("Cannot submit to Slurm: the nic program is not installed beside nic-studio (set NIC_PROGRAM "
                        "to its path).");
        return 0;
    }
    std::vector<std::string> argv{nic.toStdString(), "submit", toString(s.command)};
    const auto option = [&argv](const char* name, const std::string& value) {
        if (!value.empty())
            argv.push_back(std::string(name) + "=" + value);
    };
    option("--partition", s.slurm.partition);
    option("--time", s.slurm.time);
    option("--cpus", s.slurm.cpusPerTask > 0 ? std::to_string(s.slurm.cpusPerTask) : std::string());
    option("--mem", s.slurm.memory);
    option("--account", s.slurm.account);
    for (const auto& a : s.slurm.extraArgs)
        option("--sbatch-arg", a);
    for (const QString& a : s.arguments)
        argv.push_back(a.toStdString());

    const JobId id = runner_->addExternal(s.name + tr(" (Slurm)"), s.resultPaths);
    QString shown;
    for (const auto& a : argv)
        shown += QString::fromStdString(shellQuote(a)) + QLatin1Char(' ');
    runner_->logExternal(id, shown.trimmed());
    runner_->reportExternal(id, -1, tr("submitting"));
    Followed f;
    f.folder = s.outputDir;
    f.noun = nounOf(s.command);
    followed_.emplace(id, std::move(f));
    pool_.start([this, id, argv] {
        ProcessOutput out;
        QString failure;
        try {
            out = runProgram(argv);
            if (out.exitCode != 0)
                failure = causeOf(out.err, out.exitCode);
        } catch (const std::exception& e) {
            failure = QString::fromUtf8(e.what());
        }
        QMetaObject::invokeMethod(this, [this, id, out, failure] {
            const auto it = followed_.find(id);
            if (it == followed_.end())
                return;
            for (const QString& line : QString::fromStdString(out.out).split(QLatin1Char('\n'), Qt::SkipEmptyParts))
                runner_->logExternal(id, line);
            if (!failure.isEmpty()) {
                for (const QString& line : QString::fromStdString(out.err).split(QLatin1Char('\n'), Qt::SkipEmptyParts))
                    runner_->logExternal(id, line);
                followed_.erase(it);
                runner_->settleExternal(id, JobState::Failed, failure);
                return;
            }
            startFollowing(id);
            if (it->second.cancelling) // cancelled while sbatch ran: stop what was just submitted
                cancel(id);
        }, Qt::QueuedConnection);
    });
    return id;
}

void ClusterJobs::startFollowing(JobId id) {
    auto& f = followed_.at(id);
    f.timer = new QTimer(this);
    f.timer->setInterval(pollMs_);
    connect(f.timer, &QTimer::timeout, this, [this, id] { poll(id); });
    f.timer->start();
    poll(id);
}

void ClusterJobs::poll(JobId id) {
    const auto it = followed_.find(id);
    if (it == followed_.end() || it->second.polling)
        return;
    it->second.polling = true;
    pool_.start([this, id, folder = it->second.folder.toStdString()] {
        SubmitStatus status;
        QString error;
        try {
            status = SubmitFolder(folder).status();
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        }
        QMetaObject::invokeMethod(this, [this, id, status, error] { onStatus(id, status, error); }, Qt::QueuedConnection);
    });
}

void ClusterJobs::onStatus(JobId id, const SubmitStatus& status, const QString& error) {
    const auto it = followed_.find(id);
    if (it == followed_.end())
        return;
    Followed& f = it->second;
    f.polling = false;
    if (!error.isEmpty()) {
        runner_->reportExternal(id, -1, tr("cannot read the submission: %1").arg(error));
        return;
    }
    std::vector<ItemStatus> all = status.items;
    if (status.merge)
        all.push_back(*status.merge);
    int done = 0, failed = 0, running = 0, queued = 0;
    bool concluded = true; // nothing queued or running, and Slurm (or the task's exit file) knows every task ended
    QStringList failures;
    for (const ItemStatus& s : all) {
        const ItemState before = f.lastStates.count(s.item.key) ? f.lastStates[s.item.key] : ItemState::Missing;
        if (s.state != before || (!f.lastStates.count(s.item.key) && s.state != ItemState::Missing)) {
            QString line = QStringLiteral("%1: %2").arg(QString::fromStdString(s.item.key), QString::fromUtf8(toString(s.state)));
            if (!s.error.empty())
                line += QStringLiteral(": ") + QString::fromStdString(s.error);
            runner_->logExternal(id, line);
        }
        f.lastStates[s.item.key] = s.state;
        if (s.state == ItemState::Done) {
            ++done;
            continue;
        }
        if (s.live()) {
            concluded = false;
            (s.jobState == "RUNNING" ? running : queued) += 1;
        } else if (s.state == ItemState::Failed) {
            ++failed;
            failures << QStringLiteral("%1: %2").arg(QString::fromStdString(s.item.key), QString::fromStdString(s.error));
        } else if (s.jobState.empty()) {
            concluded = false; // Slurm does not say yet (e.g. sacct without accounting, squeue not yet listing)
        } else {
            failures << QStringLiteral("%1: %2 (%3)").arg(QString::fromStdString(s.item.key),
                                                          QString::fromUtf8(toString(s.state)),
                                                          QString::fromStdString(s.jobState));
        }
    }
    const int total = static_cast<int>(all.size());
    QString step = tr("%1 of %2 %3s done").arg(done).arg(total).arg(f.noun);
    if (running > 0)
        step += tr(", %1 running").arg(running);
    if (queued > 0)
        step += tr(", %1 queued").arg(queued);
    if (failed > 0)
        step += tr(", %1 failed").arg(failed);
    runner_->reportExternal(id, total > 0 ? done * 100 / total : -1, step);

    if (total > 0 && status.complete()) {
        stop(id);
        runner_->settleExternal(id, JobState::Succeeded);
    } else if (f.cancelling && running + queued == 0) {
        stop(id);
        runner_->settleExternal(id, JobState::Cancelled);
    } else if (total > 0 && concluded) {
        const int notDone = total - done;
        QString why = tr("%1 of %2 %3s not done: %4").arg(notDone).arg(total).arg(f.noun).arg(failures.mid(0, 3).join(QStringLiteral("; ")));
        if (failures.size() > 3)
            why += tr("; …");
        why += tr(" (nic submit %1 --missing-only with the same options resubmits them)")
                   .arg(QString::fromUtf8(toString(status.command)));
        stop(id);
        runner_->settleExternal(id, JobState::Failed, why);
    }
}

void ClusterJobs::cancel(JobId id) {
    const auto it = followed_.find(id);
    if (it == followed_.end())
        return;
    it->second.cancelling = true;
    if (!it->second.timer)
        return; // still submitting: cancelled when sbatch has answered
    const std::string folder = it->second.folder.toStdString();
    pool_.start([this, id, folder] {
        QString result;
        try {
            const SubmitFolder f(folder);
            std::vector<std::string> argv{"scancel"};
            if (f.exists())
                for (const auto& job : f.jobs())
                    argv.push_back(job.id);
            if (argv.size() > 1) {
                const ProcessOutput out = runProgram(argv);
                result = out.exitCode == 0 ? QStringLiteral("scancel %1 job(s)").arg(argv.size() - 1)
                                           : QStringLiteral("scancel: %1").arg(QString::fromStdString(out.err).trimmed());
            }
        } catch (const std::exception& e) {
            result = QString::fromUtf8(e.what());
        }
        QMetaObject::invokeMethod(this, [this, id, result] {
            if (!result.isEmpty() && followed_.count(id))
                runner_->logExternal(id, result);
            poll(id);
        }, Qt::QueuedConnection);
    });
}

void ClusterJobs::stop(JobId id) {
    const auto it = followed_.find(id);
    if (it == followed_.end())
        return;
    if (it->second.timer)
        it->second.timer->deleteLater();
    followed_.erase(it);
}

} // namespace nic

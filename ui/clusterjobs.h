#pragma once
// Jobs run on a Slurm cluster from nic-studio: the dialogs' "Run on: Slurm cluster" ends here.
//
// A submission runs `nic submit <command> …` (the very batch scripts, array tasks and output-folder record
// of the CLI, docs/cluster.md), on a pool thread. The Jobs dock lists it as an external job of the
// JobRunner and follows it by reading the output folder's status every few seconds, also on a pool
// thread (core/cluster/submitfolder.h: done / partial / failed / missing per slide, grid or round, with squeue and
// sacct's states): the progress bar counts finished items, the step says how many are running, queued and
// failed, and the log gets one line per item that changes state. The job succeeds when every item (and, for
// training, the merge) is done — "Open result" then opens the outputs as for a local job — and fails, naming
// the failed items and their errors, once nothing is queued or running and items are not done (`nic submit
// … --missing-only` resubmits them). Cancel runs scancel on the submission's jobs. Following lasts while the
// window is open; closing it leaves the cluster jobs running and `nic status DIR` reports on them.
#include "core/cluster/submitfolder.h"
#include "ui/dialogs.h"
#include "ui/job.h"

#include <QObject>
#include <QThreadPool>

#include <map>

class QTimer;

namespace nic {

class JobRunner;

class ClusterJobs : public QObject {
    Q_OBJECT
public:
    explicit ClusterJobs(JobRunner* runner, QObject* parent = nullptr);
    /// Waits for a submission or status read still running on the pool (squeue can take a moment).
    ~ClusterJobs() override;

    struct Submission {
        SubmitCommand command = SubmitCommand::Compress;
        QStringList arguments;   ///< the local command's own options (what follows `nic submit <command>`)
        QString outputDir;       ///< the command's --out: where the submission is recorded and followed
        QString name;            ///< the Jobs dock's name
        QStringList resultPaths; ///< offered by "Open result" on success
        SlurmOptions slurm;
    };
    /// Starts the submission and returns the job id in the JobRunner (0 with `error` when there is no nic
    /// program to submit with).
    JobId submit(const Submission& submission, QString* error = nullptr);

    /// nic beside nic-studio (installed) or in the build tree; NIC_PROGRAM overrides. "" when not found.
    static QString nicProgram();
    /// How often a followed submission is read (ms); default 5000, NIC_SLURM_POLL_MS overrides.
    void setPollInterval(int ms);
    int pollInterval() const { return pollMs_; }

private:
    struct Followed {
        QString folder;
        QString noun;           ///< "slide", "grid", "round"
        std::map<std::string, ItemState> lastStates;
        bool polling = false;   ///< a status read is on the pool
        bool cancelling = false;
        QTimer* timer = nullptr;
    };
    void startFollowing(JobId id);
    void poll(JobId id);
    void onStatus(JobId id, const SubmitStatus& status, const QString& error);
    void cancel(JobId id);
    void stop(JobId id);

    JobRunner* runner_;
    QThreadPool pool_;
    std::map<JobId, Followed> followed_;
    int pollMs_ = 5000;
};

} // namespace nic

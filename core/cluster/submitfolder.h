#pragma once
// The record a cluster submission keeps in its output folder: `<out>/.nic-submit/` (docs/cluster.md).
// No database: `nic status` reads this record, the outputs themselves and, when present, squeue/sacct.
//
//   run.json            what was submitted (command, item kind, the output names that mean "done")
//   items.tsv           every item ever submitted into this folder: "<key>\t<input>" (slide, grid or round)
//   jobs.tsv            one line per sbatch job: "<job id>\t<batch>\t<tasks>\t<role: tasks|merge>"
//   batch-<k>/          one submission: items.tsv (what its tasks process: item i goes to task i % tasks),
//                       job.sh (the script given to sbatch), logs/ (Slurm's output per task),
//                       task-<t>.exit (the exit status a task wrote when it ended on its own)
//   items/<key>.failed  the error of the item's last failed attempt (removed when an attempt starts)
//
// An item is done when its outputs exist (they are published atomically by the command), partial when a
// resumable leftover exists (`.partial.h5`, a training checkpoint), failed when its last attempt recorded an
// error, missing otherwise. Not thread-safe; one submitting process per folder at a time.
#include "core/cluster/slurm.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// What a submission runs per item.
enum class SubmitCommand { Compress, GradCam, Train };
const char* toString(SubmitCommand command);
/// "compress", "gradcam", "train"; throws InvalidArgument otherwise.
SubmitCommand parseSubmitCommand(const std::string& text);

/// One unit of work: a slide (compress), a grid (gradcam) or a cross-validation round (train).
struct SubmitItem {
    std::string key;   ///< output stem (slide/grid file stem) or round number
    std::string input; ///< the slide or grid path (absolute); the round number for train
};

enum class ItemState { Done, Partial, Failed, Missing };
const char* toString(ItemState state);

/// One item's state with the Slurm task that last had it.
struct ItemStatus {
    SubmitItem item;
    ItemState state = ItemState::Missing;
    std::string error;    ///< Failed: the error its task recorded
    std::string task;     ///< "<job>_<task>" that last had the item; empty when never submitted here
    std::string jobState; ///< Slurm's state of that task (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...),
                          ///< "ENDED" when Slurm no longer lists it and it did not record an exit, "" unknown
    /// True while the task is queued or running (the item must not be submitted again).
    bool live() const { return isLiveSlurmState(jobState); }
};

/// A folder's status: every item, plus (train) the merge step.
struct SubmitStatus {
    std::filesystem::path folder;
    SubmitCommand command = SubmitCommand::Compress;
    std::vector<ItemStatus> items;
    std::optional<ItemStatus> merge; ///< train: the run's metrics.json / predictions.csv (key "merge")
    bool complete() const;
    int count(ItemState state) const;
    std::string toJson() const;
};

/// One line of jobs.tsv.
struct SubmittedJob {
    std::string id;
    int batch = 0;
    int tasks = 0;      ///< array tasks; 0 for a plain job
    std::string role;   ///< "tasks" or "merge"
};

/// Reads and updates `<folder>/.nic-submit`. Construction touches nothing on disk.
class SubmitFolder {
public:
    explicit SubmitFolder(std::filesystem::path folder);

    const std::filesystem::path& folder() const { return folder_; }
    std::filesystem::path stateDir() const { return folder_ / ".nic-submit"; }
    std::filesystem::path batchDir(int batch) const;
    /// True when a submission was recorded here.
    bool exists() const;

    /// The recorded command (run.json). Throws IoError naming the file when it is absent, FormatError when
    /// it is damaged.
    SubmitCommand command() const;
    /// Output suffixes that make a gradcam item done ("_heatmap.h5", ...); empty for other commands.
    std::vector<std::string> doneSuffixes() const;
    std::vector<SubmitItem> items() const;
    std::vector<SubmittedJob> jobs() const;
    /// The items a batch's tasks process, in task order (item i → task i % tasks).
    std::vector<SubmitItem> batchItems(int batch) const;

    /// Claims the next free batch-<k> folder (creating .nic-submit as needed) and writes its items.tsv and
    /// logs/. Throws IoError naming the folder when it cannot be created.
    int createBatch(const std::vector<SubmitItem>& items);
    /// Removes a batch folder that was never submitted (and .nic-submit when nothing else is in it).
    void discardBatch(int batch) const;
    /// Records a submitted job and the items (merged into items.tsv) and run.json, each written atomically.
    void recordSubmission(SubmitCommand command, const std::vector<std::string>& doneSuffixes,
                          const std::vector<SubmitItem>& items, const std::vector<SubmittedJob>& newJobs) const;

    /// The state of `items` (those recorded here when empty) from the folder's files and `slurm`.
    /// `command`/`suffixes` say what outputs mean done when nothing was recorded yet.
    SubmitStatus status(const SlurmQuery& slurm, std::vector<SubmitItem> items = {},
                        std::optional<SubmitCommand> command = {}, std::vector<std::string> suffixes = {}) const;
    /// Asks squeue/sacct about this folder's jobs and returns status(...) of the recorded items.
    SubmitStatus status() const;

private:
    std::filesystem::path folder_;
};

/// Reads "<key>\t<input>" lines. Throws IoError naming the file when it cannot be read, FormatError when a
/// line is malformed.
std::vector<SubmitItem> readSubmitItems(const std::filesystem::path& file);
/// The same lines, as text.
std::string formatSubmitItems(const std::vector<SubmitItem>& items);

} // namespace nic

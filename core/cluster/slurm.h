#pragma once
// Slurm from C++: batch-script generation and the client commands (sbatch, squeue, sacct, scancel) run as
// child processes through pipes (docs/cluster.md). No Slurm library is linked; a machine without Slurm
// gets a clear error naming the missing command. Parsing of their output is pure and unit-tested.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace nic {

/// Resources and sbatch options of a submission (each empty/0 field is left to the cluster's defaults).
struct SlurmOptions {
    std::string partition;               ///< --partition
    std::string time;                    ///< --time, e.g. "2:00:00"
    int cpusPerTask = 0;                 ///< --cpus-per-task
    std::string memory;                  ///< --mem, e.g. "8G"
    std::string account;                 ///< --account
    std::vector<std::string> extraArgs;  ///< more sbatch arguments, each one word ("--qos=long")
    bool operator==(const SlurmOptions&) const = default;
};

/// One batch job: an array of `tasks` tasks (indices 0..tasks-1) or, with tasks == 0, a single job.
struct SlurmJobScript {
    std::string jobName;
    int tasks = 0;
    int parallel = 0;                    ///< at most this many tasks at once (the array's %N); 0 = no limit
    std::string dependency;              ///< e.g. "afterok:123"; empty = none
    std::filesystem::path output;        ///< --output pattern (stdout and stderr), e.g. DIR/task-%a.out
    std::string body;                    ///< bash run by each task (after `set -u`)
};

/// The complete script: `#!/bin/bash`, one `#SBATCH` line per setting, then the body.
std::string renderSlurmScript(const SlurmJobScript& job, const SlurmOptions& options);

/// `text` quoted for bash (single quotes; embedded quotes escaped).
std::string shellQuote(const std::string& text);

/// The full path of `program` found on PATH, or an empty path.
std::filesystem::path findOnPath(const std::string& program);

/// What a finished child process left.
struct ProcessOutput {
    int exitCode = 0;        ///< the exit status, or 128 + signal
    std::string out;
    std::string err;
};

/// Runs argv[0] (looked up on PATH) with `argv`, stdin from /dev/null, and waits for it. Throws Error
/// "<program> not found on PATH" when it is absent and Error naming the program when it cannot start.
ProcessOutput runProgram(const std::vector<std::string>& argv);

/// Submits `script` with `sbatch --parsable` and returns the job id. Throws Error
/// "sbatch not found on PATH (...)" without Slurm, and "sbatch refused <script>: <sbatch's message>".
std::string submitSlurmScript(const std::filesystem::path& script);

/// State of each array task or job, keyed "<job>_<task>" for array tasks and "<job>" for plain jobs.
/// Pending array tasks not yet split by Slurm are expanded from "<job>_[0-3%2]".
using SlurmStates = std::map<std::string, std::string>;

/// Parses `squeue -h -r -o "%i %T"` output.
SlurmStates parseSqueue(const std::string& text);
/// Parses `sacct -n -P -X -o JobID,State` output ("CANCELLED by 0" → "CANCELLED").
SlurmStates parseSacct(const std::string& text);

/// What Slurm said about a set of jobs.
struct SlurmQuery {
    SlurmStates states;
    bool squeueAnswered = false; ///< squeue ran and succeeded: a task it does not list is not queued or running
};

/// Asks sacct (ended tasks, where accounting is on) and squeue (live tasks; its view wins) about `jobIds`.
/// Commands that are absent or fail contribute nothing (status then works from files alone).
SlurmQuery querySlurmStates(const std::vector<std::string>& jobIds);

/// True for the states of a task that has not ended (PENDING, RUNNING, CONFIGURING, ...).
bool isLiveSlurmState(const std::string& state);

} // namespace nic

// nic submit compress|gradcam|train — the local commands as Slurm jobs (docs/cluster.md). Each array task
// runs the ordinary resumable command on its share of the items; `.nic-submit/` in the output folder keeps
// what `nic status` and `--missing-only` need. The command's own parser checks its options here, on submit.
#include "commands.h"

#include "core/base/atomicfile.h"
#include "core/slidelearning/cohort.h"
#include "core/compression/compressor.h"
#include "core/base/error.h"
#include "core/cluster/slurm.h"
#include "core/cluster/submitfolder.h"

#include <algorithm>
#include <functional>
#include <utility>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace nic::cli {

namespace {

struct SubmitOptions {
    SlurmOptions slurm;
    int arraySize = 0;
    int parallel = 0;
    bool dryRun = false;
    bool missingOnly = false;
    std::string nic;
};

// The local command's parser, run on `args` without running the command: the same options and checks.
struct LocalCommand {
    std::unique_ptr<CLI::App> app = std::make_unique<CLI::App>();
    CLI::App* cmd = nullptr;
    std::function<void()> command; ///< the command's own callback: it owns the variables the options write to
};

// CLI11 has no getter for a subcommand's callback; this reaches the protected member to set it aside.
struct CallbackAccess : CLI::App {
    static std::function<void()>& of(CLI::App& app) { return app.*(&CallbackAccess::final_callback_); }
};

LocalCommand parseLocal(const std::string& name, std::vector<std::string> args) {
    LocalCommand l;
    if (name == "compress")
        addCompressCommand(*l.app);
#ifdef NIC_WITH_TORCH
    else
        addSlideModelCommands(*l.app);
#endif
    l.cmd = l.app->get_subcommand(name);
    l.command = std::exchange(CallbackAccess::of(*l.cmd), std::function<void()>{});
    args.insert(args.begin(), name);
    std::reverse(args.begin(), args.end());
    try {
        l.app->parse(args);
    } catch (const CLI::ParseError& e) {
        throw InvalidArgument("nic " + name + ": " + e.what());
    }
    return l;
}

// The parsed options as words for the task's command line (--name=value, flags as --flag=true/false), less
// the ones the submission sets itself.
std::string passThrough(const CLI::App& cmd, const std::set<std::string>& drop) {
    std::string words;
    for (const CLI::Option* o : cmd.get_options()) {
        if (!o->nonpositional() || o->count() == 0 || drop.count(o->get_name()) || o->get_name() == "--help")
            continue;
        if (o->get_expected_min() == 0)
            words += " " + shellQuote(o->get_name() + "=" + o->results().back());
        else
            for (const auto& r : o->results())
                words += " " + shellQuote(o->get_name() + "=" + r);
    }
    return words;
}

std::string selfPath() {
    std::error_code ec;
    const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("nic") : p.string();
}

std::filesystem::path absolute(const std::string& p) { return std::filesystem::absolute(p).lexically_normal(); }

// What one submission runs.
struct Plan {
    SubmitCommand command = SubmitCommand::Compress;
    std::filesystem::path out;
    std::vector<SubmitItem> items;        ///< every item named on the command line
    std::vector<std::string> doneSuffixes;
    std::string itemCommand;              ///< bash: the command for one item ("$input" is the item's input)
    std::string mergeCommand;             ///< train: the merge job's command
    std::string noun;                     ///< "slide", "grid", "round"
};

std::string header(const std::string& nic, const std::filesystem::path& out, int batch) {
    std::error_code ec;
    const auto cwd = std::filesystem::current_path(ec);
    return "# written by nic submit; `nic status " + shellQuote(out.string()) + "` follows it\n" +
           "cd " + shellQuote(cwd.string()) + " || exit 1\n" + "NIC=" + shellQuote(nic) + "\n" +
           "STATE=" + shellQuote((out / ".nic-submit").string()) + "\n" + "BATCH=\"$STATE/batch-" +
           std::to_string(batch) + "\"\n" + "mkdir -p \"$STATE/items\"\n";
}

// Runs one item's command; on failure keeps its error in items/<key>.failed (last line of its stderr).
std::string runItem(const std::string& command) {
    return "  failed=\"$STATE/items/$key.failed\"\n"
           "  err=\"$STATE/items/$key.err.${SLURM_JOB_ID:-0}\"\n"
           "  rm -f \"$failed\"\n"
           "  echo \"nic submit: $key on $(hostname -s)\"\n"
           "  " + command + " 2> \"$err\"\n"
           "  rc=$?\n"
           "  cat \"$err\" >&2\n"
           "  if [ $rc -ne 0 ]; then\n"
           "    status=1\n"
           "    msg=$(sed -e 's/^ *//' -e 's/^nic: \\(usage \\)\\{0,1\\}error: //' \"$err\" |\n"
           "          grep -v -e '^nic [a-z-]*: ' -e '^[0-9]* of [0-9]* slide(s) failed:$' -e '^$' | tail -n 1)\n"
           "    [ -n \"$msg\" ] || msg=\"exited with status $rc\"\n"
           "    printf '%s\\n' \"$msg\" > \"$failed.tmp\" && mv -f \"$failed.tmp\" \"$failed\"\n"
           "  fi\n"
           "  rm -f \"$err\"\n";
}

std::string arrayBody(const Plan& p, const std::string& nic, int batch, int tasks) {
    return header(nic, p.out, batch) + "OUT=" + shellQuote(p.out.string()) + "\n" +
           "TASKS=" + std::to_string(tasks) + "\n" + "task=${SLURM_ARRAY_TASK_ID:-0}\n" +
           "mapfile -t ITEMS < \"$BATCH/items.tsv\"\n" + "status=0\n" +
           "for ((i = task; i < ${#ITEMS[@]}; i += TASKS)); do\n" + "  key=${ITEMS[i]%%$'\\t'*}\n" +
           "  input=${ITEMS[i]#*$'\\t'}\n" + runItem(p.itemCommand) + "done\n" +
           "echo $status > \"$BATCH/task-$task.exit.tmp\" && mv -f \"$BATCH/task-$task.exit.tmp\" \"$BATCH/task-$task.exit\"\n" +
           "exit $status\n";
}

std::string mergeBody(const Plan& p, const std::string& nic, int batch) {
    return header(nic, p.out, batch) + "OUT=" + shellQuote(p.out.string()) + "\n" + "status=0\n" + "key=merge\n" +
           runItem(p.mergeCommand) +
           "echo $status > \"$BATCH/merge.exit.tmp\" && mv -f \"$BATCH/merge.exit.tmp\" \"$BATCH/merge.exit\"\n" +
           "exit $status\n";
}

std::vector<std::string> jobIdsOf(const SubmitFolder& folder) {
    std::vector<std::string> ids;
    if (folder.exists())
        for (const auto& j : folder.jobs())
            ids.push_back(j.id);
    return ids;
}

int nextBatchNumber(const SubmitFolder& folder) {
    int k = 1;
    while (std::filesystem::exists(folder.batchDir(k)))
        ++k;
    return k;
}

void submit(const Plan& plan, const SubmitOptions& o) {
    const std::string nic = o.nic.empty() ? selfPath() : o.nic;
    if (!o.dryRun && findOnPath("sbatch").empty())
        throw Error("sbatch not found on PATH: submitting needs the Slurm client commands on this machine "
                    "(--dry-run prints the script instead)");
    if (std::filesystem::exists(plan.out) && !std::filesystem::is_directory(plan.out))
        throw IoError(plan.out.string() + ": cannot use as output folder: it is a file");
    SubmitFolder folder(plan.out);

    // What to run: everything, or (--missing-only) what is neither done nor queued/running.
    std::vector<SubmitItem> todo = plan.items;
    bool needMerge = plan.command == SubmitCommand::Train;
    if (o.missingOnly) {
        const SlurmQuery slurm = o.dryRun ? SlurmQuery{} : querySlurmStates(jobIdsOf(folder));
        const SubmitStatus st = folder.status(slurm, plan.items, plan.command, plan.doneSuffixes);
        todo.clear();
        int live = 0;
        for (const auto& s : st.items) {
            if (s.state == ItemState::Done)
                continue;
            if (s.live())
                ++live;
            else
                todo.push_back(s.item);
        }
        if (st.merge)
            needMerge = st.merge->state != ItemState::Done && !st.merge->live();
        if (todo.empty() && !needMerge) {
            std::printf("nothing to submit: %d of %zu %s(s) done%s\n", st.count(ItemState::Done), st.items.size(),
                        plan.noun.c_str(),
                        live > 0 ? (", " + std::to_string(live) + " queued or running").c_str() : "");
            return;
        }
    }
    const int tasks = plan.command == SubmitCommand::Train
                          ? static_cast<int>(todo.size())
                          : std::min(static_cast<int>(todo.size()), o.arraySize > 0 ? o.arraySize : 1000);

    const auto renderArray = [&](int batch) {
        SlurmJobScript job;
        job.jobName = std::string("nic-") + toString(plan.command);
        job.tasks = tasks;
        job.parallel = o.parallel;
        job.output = folder.batchDir(batch) / "logs" / "task-%a.out";
        job.body = arrayBody(plan, nic, batch, tasks);
        return renderSlurmScript(job, o.slurm);
    };
    const auto renderMerge = [&](int batch, const std::string& after) {
        SlurmJobScript job;
        job.jobName = "nic-train-merge";
        job.dependency = after.empty() ? std::string() : "afterok:" + after;
        job.output = folder.batchDir(batch) / "logs" / "merge.out";
        job.body = mergeBody(plan, nic, batch);
        return renderSlurmScript(job, o.slurm);
    };

    if (o.dryRun) {
        const int batch = nextBatchNumber(folder);
        if (!todo.empty())
            std::fputs(renderArray(batch).c_str(), stdout);
        if (needMerge) {
            if (!todo.empty())
                std::printf("\n# then, once every task above succeeded (its job id in place of ARRAY_JOB):\n");
            std::fputs(renderMerge(batch, todo.empty() ? "" : "ARRAY_JOB").c_str(), stdout);
        }
        return;
    }

    // Nothing is left half-written: a refused submission removes its batch folder and what it created.
    const bool createdOut = !std::filesystem::exists(plan.out);
    std::error_code ec;
    std::filesystem::create_directories(plan.out, ec);
    if (ec)
        throw IoError(plan.out.string() + ": cannot create output folder: " + ec.message());
    if (::access(plan.out.c_str(), W_OK) != 0)
        throw IoError(plan.out.string() + ": output folder is not writable");
    int batch = 0;
    std::vector<SubmittedJob> jobs;
    try {
        batch = folder.createBatch(todo);
        const auto dir = folder.batchDir(batch);
        std::string arrayId;
        if (!todo.empty()) {
            writeFileAtomically(dir / "job.sh", renderArray(batch));
            arrayId = submitSlurmScript(dir / "job.sh");
            jobs.push_back({arrayId, batch, tasks, "tasks"});
        }
        if (needMerge) {
            writeFileAtomically(dir / "merge.sh", renderMerge(batch, arrayId));
            try {
                jobs.push_back({submitSlurmScript(dir / "merge.sh"), batch, 0, "merge"});
            } catch (const Error&) {
                if (!arrayId.empty() && !findOnPath("scancel").empty())
                    runProgram({"scancel", arrayId});
                throw;
            }
        }
        folder.recordSubmission(plan.command, plan.doneSuffixes, plan.items, jobs);
    } catch (...) {
        if (batch > 0 && jobs.size() < (todo.empty() ? 0U : 1U) + (needMerge ? 1U : 0U))
            folder.discardBatch(batch);
        if (createdOut)
            std::filesystem::remove(plan.out, ec); // only when still empty
        throw;
    }
    for (const auto& j : jobs)
        if (j.role == "tasks")
            std::printf("submitted job %s: %d array task(s) over %zu %s(s) into %s\n", j.id.c_str(), j.tasks,
                        todo.size(), plan.noun.c_str(), plan.out.c_str());
        else
            std::printf("submitted job %s: merges the rounds into %s when they succeed\n", j.id.c_str(),
                        plan.out.c_str());
    std::printf("follow it with: nic status %s\n", shellQuote(plan.out.string()).c_str());
}

void addKeyed(Plan& plan, const std::filesystem::path& input) {
    const std::string key = input.stem().string();
    for (const auto& i : plan.items)
        if (i.key == key) {
            if (i.input == input.string())
                return;
            throw InvalidArgument(i.input + " and " + input.string() + " would both write " + key +
                                  " outputs (submit them into different --out folders)");
        }
    plan.items.push_back({key, input.string()});
}

Plan compressPlan(const std::vector<std::string>& args) {
    const auto local = parseLocal("compress", args);
    Plan p;
    p.command = SubmitCommand::Compress;
    p.noun = "slide";
    p.out = absolute(local.cmd->get_option("--out")->as<std::string>());
    for (const auto& s : local.cmd->get_option("SLIDE")->results())
        addKeyed(p, absolute(s));
    if (local.cmd->get_option("--cohort")->count() > 0)
        for (const auto& s : readCohort(local.cmd->get_option("--cohort")->as<std::string>()).slides())
            addKeyed(p, std::filesystem::absolute(s).lexically_normal());
    if (p.items.empty())
        throw InvalidArgument("no slides given (pass SLIDE... or --cohort CSV)");
    if (local.cmd->get_option("--shard")->count() > 0)
        throw InvalidArgument("--shard: nic submit shards the slides over the array tasks itself");
    p.itemCommand = "\"$NIC\" compress \"$input\" --quiet --out=\"$OUT\"" +
                    passThrough(*local.cmd, {"--out", "--cohort", "--quiet"});
    return p;
}

#ifdef NIC_WITH_TORCH
Plan gradcamPlan(const std::vector<std::string>& args) {
    const auto local = parseLocal("gradcam", args);
    Plan p;
    p.command = SubmitCommand::GradCam;
    p.noun = "grid";
    p.out = absolute(local.cmd->get_option("--out")->as<std::string>());
    for (const auto& g : local.cmd->get_option("GRID")->results())
        addKeyed(p, absolute(g));
    p.doneSuffixes = {"_heatmap.h5"};
    if (!local.cmd->get_option("--no-png")->as<bool>())
        p.doneSuffixes.push_back("_gradcam.png");
    if (!local.cmd->get_option("--no-tiff")->as<bool>())
        p.doneSuffixes.push_back("_likelihood_map.tif");
    p.itemCommand = "\"$NIC\" gradcam \"$input\" --quiet --out=\"$OUT\"" +
                    passThrough(*local.cmd, {"--out", "--quiet"});
    return p;
}

Plan trainPlan(const std::vector<std::string>& args) {
    const auto local = parseLocal("train", args);
    Plan p;
    p.command = SubmitCommand::Train;
    p.noun = "round";
    p.out = absolute(local.cmd->get_option("--out")->as<std::string>());
    if (local.cmd->get_option("--round")->count() > 0)
        throw InvalidArgument("--round: nic submit train runs one array task per round itself");
    const int folds = local.cmd->get_option("--folds")->as<int>();
    for (int r = 0; r < folds; ++r)
        p.items.push_back({std::to_string(r), std::to_string(r)});
    const std::string common = " --resume --quiet --out=\"$OUT\"" + passThrough(*local.cmd, {"--out", "--quiet", "--resume"});
    p.itemCommand = "\"$NIC\" train --round=\"$input\"" + common;
    p.mergeCommand = "\"$NIC\" train" + common;
    return p;
}
#endif

void addSubmitVariant(CLI::App* parent, const std::string& name, const std::string& description,
                      Plan (*plan)(const std::vector<std::string>&)) {
    auto* cmd = parent->add_subcommand(name, description);
    auto o = std::make_shared<SubmitOptions>();
    cmd->add_option("--partition", o->slurm.partition, "Slurm partition (default: the cluster's)");
    cmd->add_option("--time", o->slurm.time, "Time limit per task, e.g. 4:00:00 (default: the partition's)");
    cmd->add_option("--cpus", o->slurm.cpusPerTask, "CPUs per task")->check(CLI::PositiveNumber);
    cmd->add_option("--mem", o->slurm.memory, "Memory per task, e.g. 8G");
    cmd->add_option("--account", o->slurm.account, "Account to charge");
    cmd->add_option("--sbatch-arg", o->slurm.extraArgs, "Another sbatch argument, one word (repeatable), e.g. --qos=long")
        ->allow_extra_args(false);
    if (name != "train") {
        cmd->add_option("--array-size", o->arraySize, "Array tasks; items are dealt round-robin (default: one per item, "
                                                      "at most 1000)")
            ->check(CLI::PositiveNumber);
        cmd->add_option("--parallel", o->parallel, "At most this many tasks at once (the array's %N throttle)")
            ->check(CLI::PositiveNumber);
    } else {
        cmd->add_option("--parallel", o->parallel, "At most this many rounds at once")->check(CLI::PositiveNumber);
    }
    cmd->add_flag("--missing-only", o->missingOnly,
                  "Submit only what `nic status` finds missing, partial or failed (and not queued or running)");
    cmd->add_flag("--dry-run", o->dryRun, "Print the batch script(s) instead of submitting");
    cmd->add_option("--nic", o->nic, "Path of nic on the compute nodes (default: this nic)");
    cmd->allow_extras();
    cmd->footer("Every other option is " + name + "'s own (nic " + name + " --help) and is checked here.");
    cmd->callback([cmd, o, plan] { submit(plan(cmd->remaining()), *o); });
}

} // namespace

void addSubmitCommand(CLI::App& root) {
    auto* submit = root.add_subcommand("submit", "Run compress, gradcam or train as Slurm jobs (array tasks over the "
                                                 "slides, grids or rounds); nic status follows them");
    submit->require_subcommand(1);
    addSubmitVariant(submit, "compress", "nic compress as a Slurm array job over the slides", compressPlan);
#ifdef NIC_WITH_TORCH
    addSubmitVariant(submit, "gradcam", "nic gradcam as a Slurm array job over the grids", gradcamPlan);
    addSubmitVariant(submit, "train", "nic train's cross-validation: one array task per round, then a merge job",
                     trainPlan);
#endif
}

} // namespace nic::cli

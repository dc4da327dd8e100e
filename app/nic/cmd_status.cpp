// nic status FOLDER — what a `nic submit` has reached, per slide, grid or round: done, partial, failed (with
// the error), missing, and the Slurm state of the task that had it. Reads the folder's .nic-submit record and
// outputs, and squeue/sacct when present. Exit status 0 only when everything is done.
#include "commands.h"

#include "core/base/error.h"
#include "core/cluster/submitfolder.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

namespace nic::cli {

namespace {

struct StatusOptions {
    std::string folder;
    bool json = false;
};

void printLine(const ItemStatus& s, std::size_t width) {
    std::string line = "  " + s.item.key + std::string(width - s.item.key.size() + 2, ' ') + toString(s.state);
    if (!s.task.empty())
        line += std::string(9 - std::string(toString(s.state)).size(), ' ') + "task " + s.task +
                (s.jobState.empty() ? "" : " " + s.jobState);
    if (!s.error.empty())
        line += ": " + s.error;
    std::printf("%s\n", line.c_str());
}

void run(const StatusOptions& o) {
    const SubmitFolder folder(o.folder);
    if (!std::filesystem::is_directory(o.folder))
        throw IoError(o.folder + ": no such folder");
    const SubmitStatus st = folder.status();
    if (o.json) {
        std::fputs(st.toJson().c_str(), stdout);
    } else {
        const char* noun = st.command == SubmitCommand::Compress ? "slide"
                           : st.command == SubmitCommand::GradCam ? "grid"
                                                                   : "round";
        std::printf("%s: %s, %zu %s(s): %d done, %d partial, %d failed, %d missing%s\n", o.folder.c_str(),
                    toString(st.command), st.items.size(), noun, st.count(ItemState::Done),
                    st.count(ItemState::Partial), st.count(ItemState::Failed), st.count(ItemState::Missing),
                    st.merge ? (std::string(", merge ") + toString(st.merge->state)).c_str() : "");
        std::size_t width = 5;
        for (const auto& s : st.items)
            width = std::max(width, s.item.key.size());
        for (const auto& s : st.items)
            printLine(s, width);
        if (st.merge)
            printLine(*st.merge, width);
    }
    std::fflush(stdout);
    if (!st.complete())
        throw ExitStatus{3};
}

} // namespace

void addStatusCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand("status", "Progress of a nic submit: per slide, grid or round done, partial, "
                                              "failed (with the error) or missing; exit status 0 only when complete, "
                                              "3 while not");
    auto o = std::make_shared<StatusOptions>();
    cmd->add_option("FOLDER", o->folder, "The --out folder of nic submit (compress/gradcam output, train run)")
        ->required();
    cmd->add_flag("--json", o->json, "Machine-readable output");
    cmd->callback([o] { run(*o); });
}

} // namespace nic::cli

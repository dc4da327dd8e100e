#include "core/cluster/slurm.h"

#include "core/base/error.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace nic {

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos)
        return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (!trim(line).empty())
            out.push_back(trim(line));
    return out;
}

// "12_[0-3,5%2]" → 12_0 .. 12_3, 12_5 (pending array tasks that Slurm has not split yet).
void addJobKey(SlurmStates& states, const std::string& id, const std::string& state) {
    const auto open = id.find("_[");
    if (open == std::string::npos || id.back() != ']') {
        states[id] = state;
        return;
    }
    const std::string job = id.substr(0, open);
    std::string ranges = id.substr(open + 2, id.size() - open - 3);
    ranges = ranges.substr(0, ranges.find('%'));
    std::istringstream in(ranges);
    std::string part;
    while (std::getline(in, part, ',')) {
        const auto dash = part.find('-');
        try {
            const int first = std::stoi(part.substr(0, dash));
            const int last = dash == std::string::npos ? first : std::stoi(part.substr(dash + 1));
            for (int t = first; t <= last; ++t)
                states[job + "_" + std::to_string(t)] = state;
        } catch (const std::exception&) {
            states[id] = state; // not a range we know: keep it as Slurm wrote it
        }
    }
}

// The first line of sbatch's stderr that says what is wrong, without the "sbatch: error: " prefix.
std::string sbatchCause(const std::string& err) {
    for (const auto& line : lines(err)) {
        std::string l = line;
        for (const char* prefix : {"sbatch: error: ", "sbatch: "})
            if (l.rfind(prefix, 0) == 0)
                l = l.substr(std::strlen(prefix));
        if (l.rfind("Batch job submission failed", 0) == 0 && lines(err).size() > 1)
            continue; // the generic summary; the line before it names the cause
        return l;
    }
    return "no message";
}

} // namespace

std::string shellQuote(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                                "@%+=:,./_-") == std::string::npos)
        return text;
    std::string out = "'";
    for (char c : text)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string renderSlurmScript(const SlurmJobScript& job, const SlurmOptions& options) {
    std::string s = "#!/bin/bash\n";
    const auto line = [&](const std::string& arg) { s += "#SBATCH " + arg + "\n"; };
    line("--job-name=" + shellQuote(job.jobName));
    if (job.tasks > 0)
        line("--array=0-" + std::to_string(job.tasks - 1) +
             (job.parallel > 0 ? "%" + std::to_string(job.parallel) : std::string()));
    line("--output=" + shellQuote(job.output.string()));
    if (!job.dependency.empty())
        line("--dependency=" + job.dependency);
    if (!options.partition.empty())
        line("--partition=" + shellQuote(options.partition));
    if (!options.time.empty())
        line("--time=" + shellQuote(options.time));
    if (options.cpusPerTask > 0)
        line("--cpus-per-task=" + std::to_string(options.cpusPerTask));
    if (!options.memory.empty())
        line("--mem=" + shellQuote(options.memory));
    if (!options.account.empty())
        line("--account=" + shellQuote(options.account));
    for (const auto& a : options.extraArgs)
        line(a);
    s += "set -u\n";
    s += job.body;
    if (!s.empty() && s.back() != '\n')
        s += '\n';
    return s;
}

std::filesystem::path findOnPath(const std::string& program) {
    if (program.find('/') != std::string::npos)
        return ::access(program.c_str(), X_OK) == 0 ? std::filesystem::path(program) : std::filesystem::path();
    const char* path = std::getenv("PATH");
    std::istringstream in(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(in, dir, ':')) {
        const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
        if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate))
            return candidate;
    }
    return {};
}

ProcessOutput runProgram(const std::vector<std::string>& argv) {
    if (argv.empty())
        throw Error("runProgram: no program given");
    const auto exe = findOnPath(argv[0]);
    if (exe.empty())
        throw Error(argv[0] + " not found on PATH");
    int outPipe[2], errPipe[2];
    if (::pipe2(outPipe, O_CLOEXEC) != 0)
        throw Error(argv[0] + ": cannot create a pipe: " + std::strerror(errno));
    if (::pipe2(errPipe, O_CLOEXEC) != 0) {
        const int e = errno;
        ::close(outPipe[0]);
        ::close(outPipe[1]);
        throw Error(argv[0] + ": cannot create a pipe: " + std::strerror(e));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(outPipe[1]);
    ::close(errPipe[1]);
    if (rc != 0) {
        ::close(outPipe[0]);
        ::close(errPipe[0]);
        throw Error(exe.string() + ": cannot start: " + std::strerror(rc));
    }
    ProcessOutput result;
    pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open = 2;
    char buf[4096];
    while (open > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0)
            ::close(f.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

std::string submitSlurmScript(const std::filesystem::path& script) {
    if (findOnPath("sbatch").empty())
        throw Error("sbatch not found on PATH: submitting needs the Slurm client commands on this machine "
                    "(--dry-run prints the script instead)");
    const auto r = runProgram({"sbatch", "--parsable", script.string()});
    if (r.exitCode != 0)
        throw Error("sbatch refused " + script.string() + ": " + sbatchCause(r.err));
    // --parsable prints "<job id>[;<cluster>]".
    const std::string id = trim(r.out.substr(0, r.out.find(';')));
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
        throw Error("sbatch accepted " + script.string() + " but printed no job id (output: '" + trim(r.out) + "')");
    return id;
}

SlurmStates parseSqueue(const std::string& text) {
    SlurmStates states;
    for (const auto& line : lines(text)) {
        const auto sp = line.find(' ');
        if (sp == std::string::npos)
            continue;
        addJobKey(states, line.substr(0, sp), trim(line.substr(sp + 1)));
    }
    return states;
}

SlurmStates parseSacct(const std::string& text) {
    SlurmStates states;
    for (const auto& line : lines(text)) {
        const auto bar = line.find('|');
        if (bar == std::string::npos)
            continue;
        std::string state = trim(line.substr(bar + 1));
        state = state.substr(0, state.find_first_of(" |")); // "CANCELLED by 0" → "CANCELLED"
        addJobKey(states, line.substr(0, bar), state);
    }
    return states;
}

SlurmQuery querySlurmStates(const std::vector<std::string>& jobIds) {
    SlurmQuery query;
    SlurmStates& states = query.states;
    if (jobIds.empty())
        return query;
    std::string list;
    for (const auto& id : jobIds)
        list += (list.empty() ? "" : ",") + id;
    const auto ask = [](const std::vector<std::string>& argv, bool* answered = nullptr) -> std::string {
        if (findOnPath(argv[0]).empty())
            return {};
        try {
            const auto r = runProgram(argv);
            if (answered)
                *answered = r.exitCode == 0;
            return r.exitCode == 0 ? r.out : std::string();
        } catch (const Error&) {
            return {};
        }
    };
    // sacct first, squeue last: the live view wins where both know a task.
    for (const auto& [key, state] : parseSacct(ask({"sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", list})))
        states[key] = state;
    // squeue without -j: with -j it fails outright as soon as one of the jobs has left its memory.
    for (const auto& [key, state] : parseSqueue(ask({"squeue", "-h", "-r", "-o", "%i %T"}, &query.squeueAnswered))) {
        const std::string job = key.substr(0, key.find('_'));
        if (std::find(jobIds.begin(), jobIds.end(), job) != jobIds.end())
            states[key] = state;
    }
    return query;
}

bool isLiveSlurmState(const std::string& state) {
    static const char* const live[] = {"PENDING",    "RUNNING",   "CONFIGURING", "COMPLETING", "REQUEUED",
                                       "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT",
                                       "SIGNALING", "STOPPED",   "RESV_DEL_HOLD"};
    for (const char* s : live)
        if (state == s)
            return true;
    return false;
}

} // namespace nic

#include "core/base/untrustedfileprobe.h"

#include "core/base/companionprogram.h"
#include "core/base/error.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <tuple>
#include <unistd.h>

extern char** environ;

namespace nic {

namespace fs = std::filesystem;

namespace {

struct Stamp {
    std::string path;
    std::uintmax_t size = 0;
    std::int64_t mtime = 0;
    auto tie() const { return std::tie(path, size, mtime); }
    bool operator<(const Stamp& o) const { return tie() < o.tie(); }
};

struct State {
    std::mutex mutex;
    bool enabled = false;
    bool resolved = false;
    fs::path executable;
    std::map<std::pair<Stamp, UntrustedKind>, ProbeOutcome> cache;
    std::map<Stamp, bool> trusted;
};

State& state() {
    static State s;
    return s;
}

std::optional<Stamp> stampOf(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return std::nullopt;
    Stamp s;
    s.path = fs::weakly_canonical(fs::absolute(path, ec), ec).string();
    if (ec)
        s.path = path.string();
    s.size = fs::file_size(path, ec);
    if (ec)
        return std::nullopt;
    const auto t = fs::last_write_time(path, ec);
    if (ec)
        return std::nullopt;
    s.mtime = static_cast<std::int64_t>(t.time_since_epoch().count());
    return s;
}

// Installed: beside nic/nic-studio or in libexec; build tree: app/nic-probe/ beside app/nic/.
fs::path findExecutable() { return findCompanionProgram("nic-probe", "NIC_PROBE"); }

const char* whatIs(UntrustedKind kind) {
    switch (kind) {
    case UntrustedKind::LatentGrid:
    case UntrustedKind::LatentGridVariants:
        return "compressed slide";
    case UntrustedKind::Heatmap:
        return "heatmap";
    case UntrustedKind::Hdf5:
        return "HDF5 file";
    }
    return "file";
}

std::string signalName(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL, out of memory?";
    default:
        return "signal " + std::to_string(sig);
    }
}

std::string trimLine(std::string s) {
    if (const auto nl = s.find('\n'); nl != std::string::npos)
        s.resize(nl);
    while (!s.empty() && (s.back() == '\r' || s.back() == ' '))
        s.pop_back();
    return s;
}

// The processor time (user + system) that process `pid` has used so far, from /proc/<pid>/stat; nothing
// when it cannot be read (no /proc): the wall limit alone then applies.
std::optional<double> processorSeconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line))
        return std::nullopt;
    const auto close = line.rfind(')'); // the command name may hold spaces and parentheses
    if (close == std::string::npos)
        return std::nullopt;
    std::istringstream fields(line.substr(close + 1));
    std::string field;
    long long utime = 0, stime = 0;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14)
            utime = std::atoll(field.c_str());
        if (i == 15)
            stime = std::atoll(field.c_str());
    }
    if (!fields)
        return std::nullopt;
    static const long ticks = ::sysconf(_SC_CLK_TCK);
    return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

// When a probe has run out of time. A reader that loops (what damaged files do to HDF5) is stopped after
// `limit` of processor time; one that waits instead of computing, after kIdleFactor × `limit` of wall time
// in which its processor time did not grow; and any, after kWallFactor × `limit` of wall time. Counting
// processor time keeps a valid file from being refused because the machine is busy (CI runs the tests in
// parallel, under sanitizers): a runnable child keeps getting time slices, so it is never idle that long.
constexpr int kIdleFactor = 4;
constexpr int kWallFactor = 30;

class ProbeClock {
public:
    using Clock = std::chrono::steady_clock;
    ProbeClock(pid_t pid, std::chrono::milliseconds limit)
        : pid_(pid), limit_(limit), start_(Clock::now()), lastProgress_(start_) {}

    // "" while there is time left; otherwise how the time ran out, to follow "did not finish".
    std::string expired() {
        const auto now = Clock::now();
        if (const auto cpu = processorSeconds(pid_)) {
            if (*cpu * 1000.0 >= static_cast<double>(limit_.count()))
                return " within " + seconds(limit_) + " s of processor time";
            if (*cpu > lastCpu_) {
                lastCpu_ = *cpu;
                lastProgress_ = now;
            }
        }
        if (now - lastProgress_ >= kIdleFactor * limit_)
            return ": it waited " + seconds(kIdleFactor * limit_) + " s without computing";
        if (now - start_ >= kWallFactor * limit_)
            return " within " + seconds(kWallFactor * limit_) + " s";
        return {};
    }
private:
    static std::string seconds(std::chrono::milliseconds d) {
        return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
    }
    pid_t pid_;
    std::chrono::milliseconds limit_;
    Clock::time_point start_;
    Clock::time_point lastProgress_;
    double lastCpu_ = 0.0;
};

struct ProbeEnd {
    std::string out;    // the first 4 KiB of the child's stdout
    int status = 0;     // waitpid's status
    std::string timeUp; // non-empty: the child was killed; how its time ran out, to follow "did not finish"
};

// Collects the child's stdout until it closes it, then its exit status; kills it when its time is up.
ProbeEnd waitForProbe(pid_t pid, int fd, std::chrono::milliseconds limit) {
    ProbeClock clock(pid, limit);
    ProbeEnd end;
    for (;;) {
        if (end.timeUp = clock.expired(); !end.timeUp.empty())
            break;
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 20); // then look at the clocks again
        if (r <= 0)
            continue; // time-out or EINTR: look at the clocks
        char buf[512];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (end.out.size() < 4096)
            end.out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    for (;;) {
        if (!end.timeUp.empty())
            ::kill(pid, SIGKILL);
        const pid_t w = ::waitpid(pid, &end.status, end.timeUp.empty() ? WNOHANG : 0);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            end.status = 0;
            break;
        }
        if (w == 0) {
            end.timeUp = clock.expired();
            if (end.timeUp.empty())
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    return end;
}

// Starts `exe kind path` with its stdout on `stdoutFd`; returns 0 or posix_spawn's error.
int spawnProbe(const std::string& exe, UntrustedKind kind, const std::string& path, int stdoutFd, pid_t& pid) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, stdoutFd, 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Threads of the caller may block signals, and ignored signals stay ignored across exec: reset both.
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGXFSZ, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGALRM})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string exeArg = exe;
    std::string kindArg = probeKindName(kind);
    std::string pathArg = path;
    std::array<char*, 4> argv{exeArg.data(), kindArg.data(), pathArg.data(), nullptr};
    const int rc = ::posix_spawn(&pid, exeArg.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

// Runs `exe kind path` with stdout on a pipe, kills it when its time is up and turns its end into an outcome.
ProbeOutcome runProbe(const fs::path& exe, UntrustedKind kind, const fs::path& path, std::chrono::milliseconds limit) {
    const std::string name = path.string();
    if (exe.empty())
        return {false, name + ": cannot check the file before reading it: the nic-probe program was not found "
                              "(beside this program or in libexec/nic-studio; set NIC_PROBE)"};
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return {false, name + ": cannot check the file before reading it: pipe: " + std::strerror(errno)};
    pid_t pid = -1;
    const int rc = spawnProbe(exe.string(), kind, name, fds[1], pid);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        return {false, name + ": cannot check the file before reading it: cannot start " + exe.string() + ": " +
                           std::strerror(rc)};
    }
    const ProbeEnd end = waitForProbe(pid, fds[0], limit);
    const std::string what = whatIs(kind);
    if (!end.timeUp.empty())
        return {false, name + ": reading the " + what + " did not finish" + end.timeUp + " (damaged file?); it was not opened",
                true};
    const int status = end.status;
    if (WIFSIGNALED(status))
        return {false,
                name + ": reading the " + what + " crashed (" + signalName(WTERMSIG(status)) +
                    "): the file is damaged; it was not opened",
                true};
    const std::string line = trimLine(end.out);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && line.rfind("ok ", 0) == 0)
        return {true, line.substr(3)};
    // nic-probe: exit 1 when the reader could not read the file (IoError), 3 when it refused its contents.
    if (WIFEXITED(status) && (WEXITSTATUS(status) == 1 || WEXITSTATUS(status) == 3) && !line.empty())
        return {false, line, WEXITSTATUS(status) == 3};
    return {false, name + ": checking the " + what + " failed (nic-probe exit status " +
                       std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")"};
}

} // namespace

const char* probeKindName(UntrustedKind kind) {
    switch (kind) {
    case UntrustedKind::LatentGrid:
        return "grid";
    case UntrustedKind::LatentGridVariants:
        return "grid-variants";
    case UntrustedKind::Heatmap:
        return "heatmap";
    case UntrustedKind::Hdf5:
        return "hdf5";
    }
    return "hdf5";
}

std::optional<UntrustedKind> probeKindFromName(const std::string& name) {
    for (auto k : {UntrustedKind::LatentGrid, UntrustedKind::LatentGridVariants, UntrustedKind::Heatmap, UntrustedKind::Hdf5})
        if (name == probeKindName(k))
            return k;
    return std::nullopt;
}

void UntrustedFileProbe::enable(const fs::path& probeExecutable) {
    State& s = state();
    const std::lock_guard lock(s.mutex);
    s.enabled = true;
    s.executable = probeExecutable;
    s.resolved = !probeExecutable.empty();
}

void UntrustedFileProbe::disable() {
    State& s = state();
    const std::lock_guard lock(s.mutex);
    s.enabled = false;
}

bool UntrustedFileProbe::enabled() {
    State& s = state();
    const std::lock_guard lock(s.mutex);
    return s.enabled;
}

fs::path UntrustedFileProbe::executable() {
    State& s = state();
    const std::lock_guard lock(s.mutex);
    if (!s.resolved) {
        s.executable = findExecutable();
        s.resolved = true;
    }
    return s.executable;
}

std::chrono::milliseconds UntrustedFileProbe::timeLimitFor(std::uintmax_t fileBytes) {
    double base = 5.0;
    if (const char* env = std::getenv("NIC_PROBE_TIMEOUT_S"); env && *env) {
        char* end = nullptr;
        const double v = std::strtod(env, &end);
        if (end != env && v > 0.0 && v < 86400.0)
            base = v;
    }
    // Compressed grids decompress to tens of times their size (a 6 MB file of a 100k² slide took 7 s to
    // read on a loaded 2-core machine), so large files get a generous limit; hanging inputs are small.
    const double perByte = 4.0 / (1024.0 * 1024.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>((base + static_cast<double>(fileBytes) * perByte) * 1000.0));
}

ProbeOutcome UntrustedFileProbe::probe(UntrustedKind kind, const fs::path& path) {
    const auto stamp = stampOf(path);
    if (!stamp)
        return runProbe(executable(), kind, path, timeLimitFor(0)); // the probe words "no such file"
    State& s = state();
    {
        const std::lock_guard lock(s.mutex);
        if (s.trusted.count(*stamp))
            return {true, kind == UntrustedKind::Hdf5 ? std::string() : probeKindName(kind)};
        if (auto it = s.cache.find({*stamp, kind}); it != s.cache.end())
            return it->second;
        // A file probed as "any HDF5" already says what it is, or that it crashes.
        if (auto it = s.cache.find({*stamp, UntrustedKind::Hdf5}); it != s.cache.end()) {
            if (!it->second.ok || it->second.message == probeKindName(kind))
                return it->second;
        }
    }
    // Two threads may probe the same file at once; both get the same outcome, and nothing is held meanwhile.
    ProbeOutcome outcome = runProbe(executable(), kind, path, timeLimitFor(stamp->size));
    const bool startFailure = !outcome.ok && outcome.message.find(": cannot check the file before reading it:") !=
                                                 std::string::npos;
    if (!startFailure) {
        const std::lock_guard lock(s.mutex);
        s.cache[{*stamp, kind}] = outcome;
        if (outcome.ok && kind == UntrustedKind::Hdf5)
            if (const auto k = probeKindFromName(outcome.message))
                s.cache[{*stamp, *k}] = outcome;
    }
    return outcome;
}

void UntrustedFileProbe::check(UntrustedKind kind, const fs::path& path) {
    if (!enabled())
        return;
    std::error_code ec;
    if (!fs::exists(path, ec))
        return; // the reader itself says "no such file"
    const ProbeOutcome outcome = probe(kind, path);
    if (!outcome.ok && outcome.damaged)
        throw FormatError(outcome.message);
    if (!outcome.ok)
        throw IoError(outcome.message);
}

void UntrustedFileProbe::trust(const fs::path& path) {
    const auto stamp = stampOf(path);
    if (!stamp)
        return;
    State& s = state();
    const std::lock_guard lock(s.mutex);
    s.trusted[*stamp] = true;
}

void UntrustedFileProbe::clearCache() {
    State& s = state();
    const std::lock_guard lock(s.mutex);
    s.cache.clear();
    s.trusted.clear();
}

} // namespace nic

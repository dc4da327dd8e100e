#include "progressbar.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace nic::cli {

namespace {
bool g_lineOpen = false;

std::string formatDuration(double s) {
    if (s < 0 || !std::isfinite(s))
        return "--:--";
    const long t = std::lround(s);
    char buf[32];
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
    return buf;
}
} // namespace

void finishProgressLine() {
    if (g_lineOpen) {
        std::fputc('\n', stderr);
        g_lineOpen = false;
    }
}

std::unique_ptr<JobContext> makeTerminalContext(bool quiet) {
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    JobContext::ProgressSink progress;
    if (!quiet) {
        progress = [tty](const JobContext::Progress& p) {
            const double frac = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0.0;
            if (tty) {
                const int width = 30;
                const int filled = static_cast<int>(frac * width);
                std::string bar(static_cast<std::size_t>(filled), '#');
                bar.resize(width, '.');
                std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %lld/%lld %.1f/s ETA %s", p.step.c_str(), bar.c_str(),
                             frac * 100.0, static_cast<long long>(p.done), static_cast<long long>(p.total), p.rate,
                             formatDuration(p.etaSeconds).c_str());
                g_lineOpen = true;
                if (p.total > 0 && p.done >= p.total)
                    finishProgressLine();
            } else {
                std::fprintf(stderr, "%s: %lld/%lld (%.0f%%) %.1f/s ETA %s\n", p.step.c_str(),
                             static_cast<long long>(p.done), static_cast<long long>(p.total), frac * 100.0, p.rate,
                             formatDuration(p.etaSeconds).c_str());
            }
            std::fflush(stderr);
        };
    }
    auto log = [](const std::string& line) {
        finishProgressLine();
        std::fprintf(stderr, "%s\n", line.c_str());
    };
    auto ctx = std::make_unique<JobContext>(std::move(progress), std::move(log));
    ctx->setMinInterval(std::chrono::milliseconds(tty ? 100 : 2000));
    return ctx;
}

} // namespace nic::cli

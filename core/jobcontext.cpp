#include "core/jobcontext.h"

#include "core/error.h"

namespace nic {

void JobContext::progress(std::int64_t done, std::int64_t total, const std::string& step) {
    if (!progressSink_)
        return;
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    const bool final = total > 0 && done >= total;
    if (reported_ && !final && now - lastReport_ < minInterval_)
        return;
    reported_ = true;
    lastReport_ = now;
    Progress p;
    p.done = done;
    p.total = total;
    p.step = step;
    p.elapsedSeconds = std::chrono::duration<double>(now - start_).count();
    if (p.elapsedSeconds > 0.0 && done > 0) {
        p.rate = static_cast<double>(done) / p.elapsedSeconds;
        if (total > 0)
            p.etaSeconds = static_cast<double>(total - done) / p.rate;
    }
    progressSink_(p);
}

void JobContext::log(const std::string& line) {
    if (!logSink_)
        return;
    std::lock_guard lock(mutex_);
    logSink_(line);
}

void JobContext::throwIfCancelled() const {
    if (isCancelled())
        throw Cancelled();
}

JobContext& JobContext::none() {
    static JobContext ctx;
    return ctx;
}

} // namespace nic

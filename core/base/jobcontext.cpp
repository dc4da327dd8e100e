#include "core/base/jobcontext.h"

#include "core/base/error.h"

#include <algorithm>
#include <cmath>

namespace nic {

JobContext::JobContext(JobContext& parent, double begin, double end, std::string stepPrefix)
    : start_(Clock::now()), minInterval_(0), parent_(&parent) {
    begin = std::clamp(begin, 0.0, 1.0);
    end = std::clamp(end, begin, 1.0);
    progressSink_ = [this, &parent, begin, end, prefix = std::move(stepPrefix)](const Progress& p) {
        if (p.fraction < 0.0)
            return;
        forwarded_ = std::max(forwarded_, begin + (end - begin) * std::clamp(p.fraction, 0.0, 1.0));
        parent.forward(forwarded_, p, prefix + p.step);
    };
    logSink_ = [&parent](const std::string& line) { parent.log(line); };
}

void JobContext::setPhase(double begin, double end) {
    std::lock_guard lock(mutex_);
    phaseBegin_ = std::clamp(begin, 0.0, 1.0);
    phaseEnd_ = std::clamp(end, phaseBegin_, 1.0);
}

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
    if (total > 0)
        p.fraction = phaseBegin_ + (phaseEnd_ - phaseBegin_) *
                                       std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    if (p.elapsedSeconds > 0.0 && done > 0) {
        p.rate = static_cast<double>(done) / p.elapsedSeconds;
        if (total > 0)
            p.etaSeconds = static_cast<double>(total - done) / p.rate;
    }
    progressSink_(p);
}

void JobContext::forward(double share, const Progress& inner, const std::string& step) {
    if (!progressSink_)
        return;
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (reported_ && now - lastReport_ < minInterval_)
        return;
    reported_ = true;
    lastReport_ = now;
    Progress p = inner; // the sub-task's own counts and rate (patches, epochs, ...)
    p.step = step;
    p.fraction = phaseBegin_ + (phaseEnd_ - phaseBegin_) * std::clamp(share, 0.0, 1.0);
    p.elapsedSeconds = std::chrono::duration<double>(now - start_).count();
    p.etaSeconds = p.fraction > 0.0 ? p.elapsedSeconds * (1.0 - p.fraction) / p.fraction : -1.0;
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

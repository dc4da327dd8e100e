#pragma once
// Adapts a core JobContext to the terminal: a redrawn progress bar with rate and ETA when stderr is a
// terminal, plain throttled lines otherwise (logs, Slurm output files).
#include "core/base/jobcontext.h"

#include <memory>

namespace nic::cli {

/// Creates a JobContext whose progress goes to stderr. `quiet` suppresses progress (not log lines).
std::unique_ptr<JobContext> makeTerminalContext(bool quiet = false);

/// Ends the current progress bar line (call before printing results).
void finishProgressLine();

} // namespace nic::cli

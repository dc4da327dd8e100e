#pragma once
// What the machine's processors are, for choosing thread counts.

#include <cstdint>
#include <string>

namespace nic {

/// CPUs this process may run on (its affinity mask; std::thread::hardware_concurrency() where that
/// cannot be read), at least 1.
int usableCpus();

/// Physical cores among usableCpus(): SMT siblings (hyper-threads) of one core count once, read from
/// /sys/devices/system/cpu/cpu<N>/topology; usableCpus() where the topology cannot be read.
int physicalCores();

/// OpenBLAS's thread count, or −1 when no OpenBLAS is loaded in the process (looked up at run time:
/// Debian switches LibTorch's BLAS through alternatives).
int openBlasThreads();
/// Sets OpenBLAS's thread count; does nothing when no OpenBLAS is loaded.
void setOpenBlasThreads(int threads);
/// The CPU kernels OpenBLAS chose ("Haswell", "Cooperlake", ...: OPENBLAS_CORETYPE forces them), or an
/// empty string when no OpenBLAS is loaded.
std::string openBlasCoreName();

/// CPU time the calling thread has used so far, in nanoseconds (CLOCK_THREAD_CPUTIME_ID), or −1 where the
/// system has no such clock.
std::int64_t threadCpuNs();

} // namespace nic

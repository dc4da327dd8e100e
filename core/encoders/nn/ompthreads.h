#pragma once
// OmpThreads: sets the calling thread's OpenMP thread count (which oneDNN's kernels and sgemm take) for a scope and
// puts it back. Internal to core_nn, whose sources are compiled with OpenMP; a no-op without it.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nic {

class OmpThreads {
public:
    /// threads ≤ 0: leave the count as it is.
    explicit OmpThreads(int threads) {
#ifdef _OPENMP
        before_ = omp_get_max_threads();
        if (threads > 0 && threads != before_)
            omp_set_num_threads(threads);
#else
        (void)threads;
#endif
    }
    ~OmpThreads() {
#ifdef _OPENMP
        if (omp_get_max_threads() != before_)
            omp_set_num_threads(before_);
#endif
    }
    OmpThreads(const OmpThreads&) = delete;
    OmpThreads& operator=(const OmpThreads&) = delete;

private:
    int before_ = 1;
};

} // namespace nic

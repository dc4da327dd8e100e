#include "core/base/cpuinfo.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include <dlfcn.h>
#include <sched.h>
#include <time.h>

namespace nic {

int usableCpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    const auto n = static_cast<int>(std::thread::hardware_concurrency());
    return n > 0 ? n : 1;
}

int physicalCores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0)
        return usableCpus();
    std::set<std::pair<long, long>> cores; // (package, core id)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
        std::ifstream package(dir + "physical_package_id"), core(dir + "core_id");
        long p = -1, c = -1;
        if (!(package >> p) || !(core >> c))
            return usableCpus();
        cores.emplace(p, c);
    }
    return cores.empty() ? usableCpus() : static_cast<int>(cores.size());
}

int openBlasThreads() {
    using Fn = int (*)();
    auto* fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    return fn ? fn() : -1;
}

std::string openBlasCoreName() {
    using Fn = char* (*)();
    auto* fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    const char* name = fn ? fn() : nullptr;
    return name ? name : "";
}

void setOpenBlasThreads(int threads) {
    using Fn = void (*)(int);
    if (auto* fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
        fn(threads);
}

std::int64_t threadCpuNs() {
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return -1;
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

} // namespace nic

#pragma once
// The limit probe shared by bench_encoders and bench_compress: the machine's sgemm rate through the
// same LibTorch/BLAS the encoders use, measured in the same run, turned into a patches/s limit for
// an encoder's FLOPs per patch; and the CPU (user/system) time of a timed section. Prints figures;
// the ratios achieved/limit are what to track (absolute rates vary ~3x between machines).
#include <cstdint>
#include <string>

namespace nic {
class PatchEncoder;
}

namespace nic::bench {

struct SgemmRate {
    double gflops = 0;      ///< best round of the better layout (the limit)
    double minGflops = 0, maxGflops = 0;
    /// GFLOP per CPU second (user + system, all threads) over the repetitions: the rate per core-second
    /// actually used, which other processes on a shared machine disturb much less than wall time.
    double gflopsPerCpuSecond = 0;
    int n = 0;              ///< n x n x n float matmul
    int torchThreads = 0;   ///< LibTorch intra-op threads during the probe
    int blasThreads = -1;   ///< OpenBLAS threads (-1: not OpenBLAS)
    std::string device = "cpu"; ///< where the matmul ran: "cpu" or "cuda" (configureCompute's name)
    std::string layout;         ///< which way of running gave `gflops` (the better of the two below)
    double oneCallerGflops = 0; ///< CPU: one matmul at a time, OpenBLAS on every CPU
    double perCoreGflops = 0;   ///< CPU: one single-threaded matmul per physical core at once
};

/// The machine's GEMM limit: the best round's GFLOP/s of n×n by n×n float matmuls (torch::mm, 2n³ FLOPs each),
/// `reps` timed rounds after one warm-up, on fresh threads, in two layouts (one caller with OpenBLAS on
/// every CPU; one single-threaded caller per physical core, all at once), the better one counting. The
/// thread settings are restored afterwards. On "cuda" the matrices live on the GPU, one caller, each
/// run timed to its completion (gflopsPerCpuSecond is then 0).
SgemmRate probeSgemm(int n = 2048, int reps = 5, const std::string& device = "cpu");

/// "sgemm 2048^3 on cpu through LibTorch 123.4 GFLOP/s (layout; best of 5 rounds; min-max; both layouts;
/// per CPU second)".
std::string describeRate(const SgemmRate& rate);

/// One-line description of the thread setup: LibTorch intra/inter-op, OpenBLAS, OMP_* variables.
std::string threadLayout();

/// Wall, user and system seconds of this process (all threads) between construction and stop().
class CpuClock {
public:
    CpuClock();
    void stop();
    double wall() const { return wall_; }
    double user() const { return user_; }
    double sys() const { return sys_; }
    /// System time as a share of user time (the target: <= 0.10).
    double sysPerUser() const { return user_ > 0 ? sys_ / user_ : 0.0; }
    /// CPU seconds (user + system) per wall second: how many cores the section kept busy.
    double coresBusy() const { return wall_ > 0 ? (user_ + sys_) / wall_ : 0.0; }

private:
    double wall0_ = 0, user0_ = 0, sys0_ = 0;
    double wall_ = 0, user_ = 0, sys_ = 0;
};

/// Prints "  <label>: X GFLOP/patch, limit L patches/s, achieved A patches/s, ratio A/L" and, when
/// `cpuSecondsPerPatch` > 0, the same ratio per CPU second: (FLOPs per CPU second achieved) /
/// (sgemm's FLOPs per CPU second), the efficiency of the cycles the section got.
void printLimit(const std::string& label, double flopsPerPatch, const SgemmRate& rate, double achieved,
                double cpuSecondsPerPatch = 0, const std::string& unit = "patch");

/// Where the forward pass's time goes: runs the inference module of `encoder` (a LibTorch encoder with
/// the VAE-type or BiGAN architecture; others are skipped) block by block on `count` patches, best of 3,
/// and prints per block ms per patch, GFLOP/s against the sgemm rate and the share of the total.
void printLayerTimes(PatchEncoder& encoder, const std::uint8_t* nhwc, int count, const SgemmRate& rate);

} // namespace nic::bench

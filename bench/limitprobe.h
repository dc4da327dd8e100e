#pragma once
// The limit probe shared by bench_encoders, bench_compress and bench_slidecnn: the machine's GEMM rate
// (OpenBLAS's sgemm or oneDNN's, the faster) through the LibTorch the encoders use, measured in the same run, turned into a patches/s limit for
// an encoder's FLOPs per patch; and the CPU (user/system) time of a timed section. Prints figures;
// the ratios achieved/limit are what to track (absolute rates vary ~3x between machines).
#include <cstdint>
#include <string>

namespace nic {
class PatchEncoder;
class PatchBank;
struct TrainOptions;
}

namespace nic::bench {

struct SgemmRate {
    double gflops = 0;      ///< best round of the better layout (the limit)
    double minGflops = 0, maxGflops = 0;
    /// GFLOP per CPU second (user + system, all threads) over the repetitions: the rate per core-second
    /// actually used, which other processes on a shared machine disturb much less than wall time.
    double gflopsPerCpuSecond = 0;
    int n = 0;              ///< n x n x n float matmul (the sgemm ways)
    int torchThreads = 0;   ///< LibTorch intra-op threads during the probe
    int blasThreads = -1;   ///< OpenBLAS threads (-1: not OpenBLAS)
    std::string device = "cpu"; ///< where the matmul ran: "cpu" or "cuda" (configureCompute's name)
    std::string layout;         ///< which way of running gave `gflops` (the best of the four below)
    std::string kernel;         ///< which GEMM gave `gflops`: "OpenBLAS sgemm" or "oneDNN 3x3 convolution"
    double oneCallerGflops = 0; ///< CPU: one OpenBLAS matmul at a time on every CPU
    double perCoreGflops = 0;   ///< CPU: one single-threaded OpenBLAS matmul per physical core at once
    double convOneCallerGflops = 0; ///< CPU: oneDNN's dense 3x3 convolution, one caller on every CPU
    double convPerCoreGflops = 0;   ///< CPU: the same, one single-threaded caller per physical core at once
    bool bestIsConv = false, bestPerCore = false; ///< the way that gave `gflops` (probeAgain repeats it)
};

/// The machine's limit: the best round's GFLOP/s of dense float arithmetic, `reps` timed rounds after one
/// warm-up (several callers on threads of their own, one on the calling thread), four ways: OpenBLAS's sgemm (torch::mm, n×n by n×n, 2n³ FLOPs) and a dense
/// 3×3 convolution in oneDNN (channels-last [8, 256, 32, 32] by 256 filters; oneDNN has its own kernels,
/// AVX-512 where the CPU has it, whatever kernels OPENBLAS_CORETYPE makes OpenBLAS use), each by
/// one caller on every CPU and by one single-threaded caller per physical core at once. The best counts.
/// Thread settings are restored afterwards. On "cuda" the matrices live on the GPU, one matmul caller,
/// each run timed to its completion (gflopsPerCpuSecond is then 0).
SgemmRate probeSgemm(int n = 2048, int reps = 5, const std::string& device = "cpu");

/// The best of `reps` rounds (after a warm-up) of the way that gave `rate` its limit, now: the machine's limit at
/// this moment, to set beside a section timed next to it. A 2-core VM's speed drifted by up to a fifth between runs
/// seconds apart, the probe's and the pipeline's alike (docs/timings.md), so a ratio to a probe taken beside the run
/// tells the code's share of the machine from the machine's drift. Five rounds of 9.7 GFLOP (0.15-0.2 s at the 2-core
/// VM's 330-345 GFLOP/s); on "cuda", the matmul probe again.
double probeAgain(const SgemmRate& rate, int reps = 5);
/// "123.4 GFLOP/s on cpu through LibTorch (kernel, layout; best of 5 rounds; min-max; all four ways;
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
    /// Minor page faults (first touches of memory the process got from the kernel) during the section:
    /// where the system time goes when a section keeps giving memory back and taking it again.
    long minorFaults() const { return faults_; }

private:
    double wall0_ = 0, user0_ = 0, sys0_ = 0;
    double wall_ = 0, user_ = 0, sys_ = 0;
    long faults0_ = 0, faults_ = 0;
};

/// Prints "  <label>: X GFLOP/patch, limit L patches/s, achieved A patches/s, ratio A/L" and, when
/// `cpuSecondsPerPatch` > 0, the same ratio per CPU second: (FLOPs per CPU second achieved) /
/// (the probe's FLOPs per CPU second), the efficiency of the cycles the section got.
void printLimit(const std::string& label, double flopsPerPatch, const SgemmRate& rate, double achieved,
                double cpuSecondsPerPatch = 0, const std::string& unit = "patch");

/// Where the forward pass's time goes: runs the inference module of `encoder` (a LibTorch encoder with
/// the VAE-type or BiGAN architecture; others are skipped) block by block on `count` patches, best of 3,
/// and prints per block ms per patch, GFLOP/s against the limit and the share of the total.
void printLayerTimes(PatchEncoder& encoder, const std::uint8_t* nhwc, int count, const SgemmRate& rate);

/// Where a training step's time goes, for o.kind on `bank` (batch o.batchSize, on the CPU): the seconds to
/// make one batch (its augmentation included) and one step on it (best of 3 after 2 warm-up steps), then
/// 3 steps under LibTorch's profiler, their operators' own time grouped as convolution forward and
/// backward, batch norm, dense GEMMs, activations, copies and the rest (optimiser, losses, element-wise),
/// per step and as shares, against the step's ratio to the limit.
void printTrainingStepProfile(const TrainOptions& o, const PatchBank& bank, double flopsPerStep, const SgemmRate& rate);

/// Making an augmented batch (augment::heavy, strength 1) of `count` patches of `bank`, best of 5 after a
/// warm-up: on the CPU in its one-pass loops, on the CPU with tensor operations, and, when `device` is not
/// "cpu", on the device from the bytes (what training does there) against the CPU path plus copying its floats
/// over (what it did before). Prints milliseconds per batch and the device's speed-up.
void printAugmentationTimes(const PatchBank& bank, int count, const std::string& device);

} // namespace nic::bench

#pragma once
// Inference of a feed-forward chain (convolutions, then dense layers, each with an optional LeakyReLU) straight
// on oneDNN, the library LibTorch runs its CPU convolutions on. Internal to core_nn; no LibTorch and no oneDNN in
// this header.
//
// Why: through LibTorch 1.13 every convolution of an encoder's forward pass reorders its weights into oneDNN's
// layout again on every call and runs LeakyReLU as a second pass over the activation, and its channels-last first
// layer (three input channels) runs far below the machine's limit. Here the weights are reordered once, LeakyReLU
// is each layer's own post-op, and the first convolution reads planar input and writes channels-last (with AVX-512
// through its own kernel, directconv.h; elsewhere oneDNN's blocked layout and a reorder) (docs/timings.md, issue 16).
//
// A chain is built once per encoder (weights reordered lazily, shared by its replicas); run() builds and keeps
// the primitives for each padded batch size it sees. run() is used by one thread at a time per replica.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nic {

class OneDnnChain {
public:
    /// One layer. A convolution: weight [out, in, k, k] (row-major, LibTorch's own order), bias [out],
    /// stride and zero padding on each side. A dense layer: weight [out, in] with in in the (C, H, W) order of
    /// a planar flatten when it follows a convolution; bias [out]. leakySlope ≥ 0 applies LeakyReLU with that
    /// slope to the layer's output; < 0 applies nothing.
    struct Layer {
        bool conv = true;
        std::vector<std::int64_t> weightShape;
        std::vector<float> weight;
        std::vector<float> bias;
        int stride = 1;
        int padding = 0;
        float leakySlope = -1.0F;
    };

    /// Whether this build has oneDNN (otherwise the constructor throws Error).
    static bool available();

    /// A chain over input [n, channels, side, side] (planar NCHW float). Each layer's weights are kept in oneDNN's
    /// layout once a run has reordered them, and the layer's own copy is dropped. Throws InvalidArgument when the
    /// layers do not fit together (the message names the layer), Error when oneDNN is missing.
    OneDnnChain(std::vector<Layer> layers, int channels, int side);
    ~OneDnnChain();
    OneDnnChain(const OneDnnChain&) = delete;
    OneDnnChain& operator=(const OneDnnChain&) = delete;

    /// Another chain over the same layers and reordered weights, with its own primitives and buffers, for
    /// another thread.
    std::unique_ptr<OneDnnChain> replicate() const;

    /// Outputs per input (the last layer's out).
    int outputs() const;

    /// The batch size run() computes for n inputs: n rounded up to a power of two up to 8, to a multiple of 8 up
    /// to 64, then to a multiple of 32: at most 7 rows more up to 64 patches, 31 above. Compression's batches take
    /// whatever patches are ready, so any n up to the batch size comes; primitives are built for these few sizes only.
    static int paddedBatch(int n);

    /// Runs `n` inputs into out (n · outputs() values), on `threads` OpenMP threads (0: as they are) of the calling
    /// thread, whose OpenMP setting is put back afterwards. `nchw` holds paddedBatch(n) planar NCHW float inputs of
    /// channels · side² values: the rows past n are computed and dropped, and do not change the first n (finite values,
    /// zeros or an earlier batch's, keep them as cheap as the rest). The first call for a padded size builds its
    /// primitives. Throws Error when oneDNN has no optimised kernel for a layer at this size, or fails (the caller
    /// falls back to LibTorch).
    void run(const float* nchw, int n, float* out, int threads);

    /// Inputs that are not floats yet: fill(context, first, count, into) writes inputs first … first + count − 1 as
    /// planar NCHW floats (channels · side² values each) into `into`, and must not throw.
    struct InputRows {
        void (*fill)(const void* context, int first, int count, float* into) = nullptr;
        const void* context = nullptr;
    };
    /// run() on inputs `rows` makes: called for the first n only (the padded rows are zeros). Where the first two
    /// convolutions run image by image (fuseFirstConvolutions) it is called for the images of each round just before
    /// the first convolution reads them, so that they are read from the core's cache (convertInputPerImage); otherwise
    /// once, for the whole batch, into a buffer of the chain's own.
    void run(const InputRows& rows, int n, float* out, int threads);

    /// oneDNN's implementation of each step of the last run's plan ("jit:avx512_core", a reorder, ...).
    std::vector<std::string> implementations() const;

    /// One step of a plan, for benchmarks: what it computes ("convolution 2: 32 -> 64 channels, 64^2 -> 32^2", "reorder
    /// to channels-last"), its implementation, its multiply-adds × 2 per run, and, while step timing is on (timeSteps),
    /// the wall-clock seconds its runs took and how many runs were timed.
    struct StepTime {
        std::string what;
        std::string impl;
        double flops = 0.0;
        double seconds = 0.0;
        std::int64_t runs = 0;
    };
    /// The steps of the plan for padded batch size `batch` (paddedBatch); empty when no run has used it. Like run(),
    /// from the thread that runs this replica (or once it no longer runs): the timings are not synchronised. When timed
    /// runs converted their input (run(InputRows)), a first entry "input: bytes to floats, image by image" (or "...,
    /// the batch") with no FLOPs times that conversion, over the runs since the mode last changed; implementations()
    /// lists the chain's own steps only.
    std::vector<StepTime> stepTimes(int batch) const;

    /// Benchmarks: true makes every chain's run() wait for each step and add its time to the step (stepTimes), which
    /// costs a little. Process-wide; off by default. Returns the setting before.
    static bool timeSteps(bool on);

    /// Benchmarks and tests: false makes chains built from now on run their first convolution on oneDNN's kernel and
    /// a reorder instead of the direct kernel (directconv.h), and training's first layer too (directconv::use, which
    /// this calls). Process-wide; the default is true unless the environment has NIC_DIRECT_FIRST_CONV=0. Either gives
    /// the same values up to float rounding. Returns the setting before.
    static bool useDirectFirstConvolution(bool on);
    /// Benchmarks and tests: false makes chains built from now on run every convolution after the first on oneDNN's
    /// kernels, instead of the wide direct kernel where it is used (directconv::useWide, which this calls).
    /// Process-wide; the default is true unless the environment has NIC_DIRECT_WIDE_CONV=0. Either gives the same
    /// values up to float rounding. Returns the setting before.
    static bool useWideConvolutions(bool on);
    /// How chains built from now on (and their replicas) run the convolutions after the first that oneDNN and
    /// im2col + sgemm (gemmconv.h) both compute: Never on oneDNN; Measured (the default) on whichever ran faster, each
    /// candidate layer timed once per process, shape, thread count and batch size of at least 32 (4 runs of each,
    /// alternated; sgemm must take under 0.95 of oneDNN's time; the candidates are layers with outputs of at most 4 ×
    /// 4, where oneDNN's brgconv measured slowest); Always on im2col + sgemm for every convolution after the first that
    /// the wide kernel does not take (tests). NIC_GEMM_CONV=0 in the environment starts it at Never, =1 at Always.
    /// Either gives the same values up to float rounding. Returns the setting before.
    enum class GemmConvolutions { Never, Measured, Always };
    static GemmConvolutions useGemmConvolutions(GemmConvolutions mode);
    /// Benchmarks and tests: false makes chains built from now on run their first two convolutions one after the other
    /// over the whole batch, instead of image by image where the first runs on the direct kernel and the second on the
    /// wide kernel or on oneDNN's kernel built for one image (the first's output then stays in the core's cache for the
    /// second). Process-wide; the default is true unless the environment has NIC_FUSE_FIRST_CONVS=0. Either gives the
    /// same bits with the wide kernel, the same values up to float rounding with oneDNN's. Returns the setting before.
    static bool fuseFirstConvolutions(bool on);
    /// Benchmarks and tests: false makes run(InputRows) convert the whole batch before the first convolution even where
    /// the first two run image by image. Process-wide, read at each run; the default is true unless the environment
    /// has NIC_CHAIN_INPUT_PER_IMAGE=0. Either gives the same bits. Returns the setting before.
    static bool convertInputPerImage(bool on);
    /// Measurements of oneDNN against im2col + sgemm made so far, process-wide (tests).
    static std::uint64_t gemmMeasurements();
    /// Whether this chain's first convolution runs on the direct kernel.
    bool firstConvolutionIsDirect() const;

private:
    struct Shared;
    struct Plans;
    explicit OneDnnChain(std::shared_ptr<Shared> shared);
    struct Plan;
    Plan buildPlan(int n) const;
    void runPlan(const float* nchw, const InputRows* rows, int n, float* out, int threads);
    void runFusedFirst(Plan& plan, const float* input, const InputRows* rows, int n, float* out, int padded,
                       int threads, bool timed);
    std::shared_ptr<Shared> shared_;
    std::unique_ptr<Plans> plans_;
};

} // namespace nic

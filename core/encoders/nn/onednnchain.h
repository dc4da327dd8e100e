#pragma once
// Inference of a feed-forward chain (convolutions, then dense layers, each with an optional LeakyReLU) straight
// on oneDNN, the library LibTorch runs its CPU convolutions on. Internal to core_nn; no LibTorch and no oneDNN in
// this header.
//
// Why: through LibTorch 1.13 every convolution of an encoder's forward pass reorders its weights into oneDNN's
// layout again on every call, runs LeakyReLU as a second pass over the activation, and keeps activations
// channels-last, where the first layer (three input channels) and the last one run well below the machine's
// limit. Here the weights are reordered once, LeakyReLU is the convolution's own post-op, and activations stay
// in oneDNN's 16-channel blocked layout from the first convolution to the first dense layer (docs/timings.md).
//
// A chain is built once per encoder (weights reordered lazily, shared by its replicas); run() builds and keeps
// the primitives for each batch size it sees. run() is used by one thread at a time per replica.
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

    /// A chain over input [n, channels, side, side] (planar NCHW float). Throws InvalidArgument when the layers
    /// do not fit together (the message names the layer), Error when oneDNN is missing.
    OneDnnChain(std::vector<Layer> layers, int channels, int side);
    ~OneDnnChain();
    OneDnnChain(const OneDnnChain&) = delete;
    OneDnnChain& operator=(const OneDnnChain&) = delete;

    /// Another chain over the same layers and reordered weights, with its own primitives and buffers, for
    /// another thread.
    std::unique_ptr<OneDnnChain> replicate() const;

    /// Outputs per input (the last layer's out).
    int outputs() const;

    /// Runs `n` inputs (planar NCHW float, n · channels · side² values) into out (n · outputs()), on `threads`
    /// OpenMP threads of the calling thread. The first call for a batch size builds its primitives. Throws
    /// Error when oneDNN has no optimised kernel for a layer at this size (the caller falls back to LibTorch).
    void run(const float* nchw, int n, float* out, int threads);

    /// oneDNN's implementation of each primitive of batch size n's plan ("jit:avx512_core", ...), after run().
    std::vector<std::string> implementations(int n) const;

private:
    struct Shared;
    struct Plans;
    explicit OneDnnChain(std::shared_ptr<Shared> shared);
    struct Plan;
    Plan buildPlan(int n) const;
    std::shared_ptr<Shared> shared_;
    std::unique_ptr<Plans> plans_;
};

} // namespace nic

#pragma once
// The LibTorch side of encoder files (internal to core_nn, its tests and benchmarks; includes torch).
#include "core/base/atomicfile.h"
#include "core/encoders/encoder.h"
#include "core/encoders/modelmeta.h"
#include "core/encoders/nn/modules.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace nic {

// EncoderMeta, encoderMetaToJson and encoderMetaFromJson: core/encoders/modelmeta.h (torch-free).

/// Builds the (untrained) embedding module for `meta`: NCHW float input in [−1, 1] → [N, C].
torch::nn::AnyModule buildEncoderModule(const EncoderMeta& meta);

/// Resolves a device name from configureCompute() to a torch::Device.
torch::Device toDevice(const std::string& name);

/// On the CPU, keeps `networks`' 4-D weights channels-last (so every convolution's output and gradient is
/// too): oneDNN's native layout, where a channel-first weight makes it reorder each layer's activations into
/// its blocked layout and back, forward and backward, in buffers it allocates anew every step
/// (bench_encoders, 8-step runs: VAE training 0.40-0.43 of the limit against 0.34-0.37, BiGAN 0.50-0.55
/// against 0.40-0.48). The same values up to float rounding; an optimiser holds the same parameter objects,
/// so it follows. Loading a state (torch::load, Module::load) puts the file's layout back: call it again.
void keepWeightsChannelsLast(torch::nn::Module& networks, torch::Device device);

/// uint8 NHWC → float NCHW in [−1, 1] on `device`.
torch::Tensor toModelInput(const std::uint8_t* nhwc, int count, int patchSize, torch::Device device);

/// The same as toModelInput on the CPU, written into `into` (a float [count, 3, P, P] tensor,
/// contiguous in NCHW or in channels-last layout) in one pass, without allocating; each patch as it is after
/// dihedral transform k (patchinput.h: bit for bit the input of the transformed bytes).
void toModelInputInto(const std::uint8_t* nhwc, int count, int patchSize, torch::Tensor& into, int k = 0);

/// The 2×2 average pooling of toModelInput (the BiGAN encoder's first step) computed while converting the
/// bytes, into `into`: a float [count, 3, P/2, P/2] tensor, contiguous in NCHW or in channels-last layout. Equal to
/// avg_pool2d(toModelInput(...), 2) up to float rounding, without the full-size float input. k as for toModelInputInto.
void toPooledModelInputInto(const std::uint8_t* nhwc, int count, int patchSize, torch::Tensor& into, int k = 0);

/// FNV-1a 64-bit content hash of the metadata JSON and of every parameter and buffer (names, shapes
/// and bytes in registration order), as 16 hex digits.
std::string contentHash(const std::string& metaJson, torch::nn::Module& module);

/// A PatchEncoder over a LibTorch module. encode() runs in eval mode under InferenceMode on the calling
/// thread, in chunks of at most 256 patches. With `optimise` (the default) encode() and forward() run a
/// copy of `module`, made here, with BatchNorm folded into the convolutions (foldBatchNorm) and, on the
/// CPU, its convolution weights and encode()'s input in channels-last layout (oneDNN's native one, so
/// no reorder per layer): the same embeddings up to float rounding, faster. On the CPU with oneDNN in the build,
/// encode() runs the folded VAE-type and BiGAN encoders straight on oneDNN (OneDnnChain: weights reordered
/// once, LeakyReLU fused, blocked activations; useOneDnnInference) and falls back to the folded module when
/// oneDNN has no optimised kernel for them (runsOnOneDnn() then turns false). module() stays the plain
/// module (for saving); changing it later does not reach the copy. replicate() shares the modules and
/// keeps its own input buffer, so replicas encode concurrently (compressSlide's inference threads).
class TorchPatchEncoder final : public PatchEncoder {
public:
    TorchPatchEncoder(EncoderMeta meta, torch::nn::AnyModule module, torch::Device device, std::string hash,
                      std::string source, bool optimise = true);
    const EncoderInfo& info() const override { return info_; }
    void encode(const std::uint8_t* nhwc, int count, float* out) override;
    using PatchEncoder::encode;
    /// On the CPU the input conversion reads the bytes in transform k's order (no transformed copy); on a GPU the
    /// default (the bytes transformed on the CPU, then sent).
    void encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out) override;
    /// On the CPU: the physical cores divided by LibTorch's intra-op threads (at least 1); on a GPU: 1.
    int preferredConcurrency() const override;
    /// LibTorch's intra-op threads on the CPU; 1 on a GPU (the thread that feeds it).
    int cpusPerCall() const override;
    std::unique_ptr<PatchEncoder> replicate() override;
    /// On the CPU, a TensorCacheScope; on a GPU, nullptr (its caching allocator keeps device memory).
    std::shared_ptr<void> keepBuffers() override;

    /// Embeds model-ready input (NCHW, [−1, 1]) in eval mode without gradients.
    torch::Tensor forward(const torch::Tensor& input);
    const EncoderMeta& meta() const { return meta_; }
    torch::nn::Module& module() { return *module_.ptr(); }
    torch::Device device() const { return device_; }
    /// Whether encode() runs the BatchNorm-folded copy.
    bool optimised() const { return optimised_; }
    /// The module encode() runs (the folded copy, or module()).
    torch::nn::Module& inferenceModule() { return *inference_.ptr(); }
    /// Whether encode() pools the input 2×2 while converting it (toPooledModelInputInto) and
    /// inferenceModule() skips its own pooling: the optimised BiGAN encoder on the CPU.
    bool poolsInputWhileConverting() const { return pooledInput_; }
    /// Whether encode() runs on oneDNN directly (OneDnnChain) rather than through inferenceModule().
    bool runsOnOneDnn() const { return chain_ != nullptr; }
    /// Whether that chain takes the patch pooled 2 × 2 while its bytes are converted (a leading 2 × 2 average pooling).
    bool chainTakesPooledInput() const { return chain_ != nullptr && chainPooled_; }
    /// oneDNN's kernels of the last batch encode() ran on oneDNN, one per step (benchmarks).
    std::vector<std::string> oneDnnKernels() const;
    /// OneDnnChain::stepTimes of this replica's chain; empty without one.
    std::vector<OneDnnChain::StepTime> oneDnnStepTimes(int batch) const;

private:
    /// encode() of the patches after dihedral transform k, in chunks.
    void encodeChunks(const std::uint8_t* nhwc, int count, int k, float* out);
    /// A chunk on chain_; false (and chain_ dropped) when oneDNN refuses it.
    bool encodeOnOneDnn(const std::uint8_t* chunk, int n, int k, float* out);
    EncoderMeta meta_;
    torch::nn::AnyModule module_;
    torch::nn::AnyModule inference_; ///< the folded copy, or module_ itself
    torch::Device device_;
    EncoderInfo info_;
    bool optimised_ = false;
    bool channelsLast_ = false; ///< encode() feeds inference_ channels-last input
    bool pooledInput_ = false;  ///< encode() feeds inference_ the 2×2-pooled input (poolsInputWhileConverting)
    torch::Tensor input_; ///< reused model input of the last chunk size (no allocation per batch)
    std::shared_ptr<OneDnnChain> chain_; ///< encode()'s oneDNN chain (per replica); null: inference_ runs
    bool chainPooled_ = false;           ///< chain_ takes the 2×2-pooled patch
};

/// Writes an encoder file atomically: `module`'s state under "encoder", the metadata and the hash.
/// `module` must have the architecture buildEncoderModule(meta) builds. Returns the file's description.
/// The same as StagedEncoderFile(path, meta, module).publish().
EncoderInfo writeEncoderFile(const std::filesystem::path& path, const EncoderMeta& meta, torch::nn::Module& module);

/// writeEncoderFile() in two halves: the constructor writes and syncs the file under a temporary name beside
/// `path` (IoError naming `path` on failure); publish() renames it into place and returns its description.
/// Destroyed unpublished, it removes the temporary file and leaves `path` as it was. The trainer stages the
/// encoder file while the checkpoint is written on another thread, then publishes the two in order.
class StagedEncoderFile {
public:
    StagedEncoderFile(const std::filesystem::path& path, const EncoderMeta& meta, torch::nn::Module& module);
    EncoderInfo publish();

private:
    std::unique_ptr<AtomicFile> file_;
    EncoderInfo info_;
};

/// Reads an encoder file (metadata check, shape check, hash check). Throws IoError (missing) / FormatError.
/// `optimise`: see TorchPatchEncoder.
std::unique_ptr<TorchPatchEncoder> readEncoderFile(const std::filesystem::path& path, torch::Device device,
                                                   bool optimise = true);

/// Message of a c10::Error without the backtrace.
std::string torchMessage(const c10::Error& e);

} // namespace nic

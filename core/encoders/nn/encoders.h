#pragma once
// Encoder factory and files (no LibTorch in this header, so the CLI, the GUI and compression can use
// it without paying for torch/torch.h).
//
// Encoder files ("*.nicenc") are LibTorch archives holding the encoder E's weights under "encoder/…",
// the architecture as JSON under "meta/json" and a content hash. Loading builds the module from the
// JSON, loads the weights and then checks every tensor's shape against the architecture (torch::load
// itself does not), and recomputes the hash.
//
// Input scaling (every encoder loaded here): uint8 RGB v → v / 127.5 − 1, i.e. [0, 255] → [−1, 1],
// the scaling the NIC authors use; the BiGAN encoders (ours and the imported ones) then average-pool
// the P×P patch 2×2 themselves. Mean-RGB ("mean-rgb") is the exception: it returns means in [0, 1].
#include "core/encoders/encoder.h"
#include "core/encoders/modelmeta.h"
#include "core/encoders/nn/onednnchain.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// The trainable encoders of the paper (supplementary §7). Mean-RGB (§7.4) needs no training.
enum class EncoderKind { Vae, Contrastive, Bigan, SupervisedTumor, SupervisedTissue };
const char* toString(EncoderKind kind);
/// "vae", "contrastive", "bigan", "supervised-tumor", "supervised-tissue"; nullopt otherwise.
std::optional<EncoderKind> parseEncoderKind(const std::string& text);
/// The paper's starting learning rate for a kind (1e-3 VAE, 2e-4 BiGAN, 1e-2 the others).
double defaultLearningRate(EncoderKind kind);

/// Where and how LibTorch runs. device: "auto" (CUDA when torch::cuda::is_available(), else CPU),
/// "cpu" or "cuda". threads > 0 calls torch::set_num_threads (process-wide); 0 leaves it alone.
struct ComputeOptions {
    std::string device = "auto";
    /// LibTorch intra-op threads (OpenBLAS runs single-threaded unless OPENBLAS_NUM_THREADS is set);
    /// 0 = automatic: the physical cores divided by `callers`, at least 1 (or OMP_NUM_THREADS when set).
    int threads = 0;
    /// Threads that will call LibTorch at once, for the automatic thread count: 1 for training; 0 = one per
    /// physical core, the layout compression's inference threads measured best with (docs/timings.md).
    int callers = 1;
    /// Encoders from loadEncoder/createEncoder run with BatchNorm folded into their convolutions (the
    /// same embeddings up to float rounding, faster); false runs the modules as trained.
    bool optimiseInference = true;
};
/// Applies the thread counts of `options` (LibTorch and, consistently, OpenBLAS) and returns the device to
/// use ("cpu" or "cuda"). Throws InvalidArgument
/// for an unknown device or "cuda" without CUDA. The first call also tells glibc malloc (process-wide)
/// to use one arena and keep blocks up to 1 GiB in its heap rather than mmap/munmap them per tensor,
/// which removes most of LibTorch's system time on the CPU (see docs/timings.md).
std::string configureCompute(const ComputeOptions& options);
/// Intra-op threads LibTorch uses now.
int computeThreads();

/// Tests and benchmarks: false makes training run BatchNorm → LeakyReLU (→ Dropout2d) as LibTorch's separate
/// operators instead of the fused function (batchnormleaky.h) everywhere. Process-wide; the default is true unless
/// the environment has NIC_FUSED_BATCHNORM=0.
void useFusedBatchNorm(bool on);
/// Calls that took the fused BatchNorm → LeakyReLU path so far, process-wide (tests, benchmarks).
std::int64_t fusedBatchNormCalls();

/// Tests and benchmarks: false makes encoders built from now on run compression's forward pass through their
/// BatchNorm-folded LibTorch modules instead of straight on oneDNN (OneDnnChain). Process-wide; the default is
/// true unless the environment has NIC_ONEDNN_INFERENCE=0. Builds without oneDNN always use LibTorch.
void useOneDnnInference(bool on);
bool oneDnnInferenceEnabled();
/// oneDNN's kernel for each step of `encoder`'s last batch when it runs straight on oneDNN; empty when it runs
/// through LibTorch (or is not a LibTorch encoder). For benchmarks and tests.
std::vector<std::string> oneDnnSteps(const PatchEncoder& encoder);
/// The steps of `encoder`'s oneDNN chain for padded batch size `batch` with their FLOPs and, while
/// OneDnnChain::timeSteps is on, their times (OneDnnChain::stepTimes); empty when it runs through LibTorch. Benchmarks.
std::vector<OneDnnChain::StepTime> oneDnnStepTimes(const PatchEncoder& encoder, int batch);
/// The side of the square input `encoder`'s oneDNN chain takes: P, or P / 2 where the chain takes the patch pooled 2 ×
/// 2 while its bytes are converted; 0 when it runs through LibTorch (or is not a LibTorch encoder). Benchmarks.
int oneDnnInputSide(const PatchEncoder& encoder);
/// The architecture of a LibTorch encoder (its file's metadata, an imported Keras encoder's layers included); nullopt
/// for other encoders. For benchmarks, which count its multiply-adds (flopcount.h).
std::optional<EncoderMeta> encoderMeta(const PatchEncoder& encoder);

/// The device that ComputeOptions::device names: "auto" resolved to "cuda" or "cpu". Throws InvalidArgument
/// for "cuda" without a CUDA device and for unknown names (configureCompute returns this).
std::string resolveDevice(const std::string& device);

/// Returns an encoder by built-in name ("mean-rgb", P = 128, or "mean-rgb:P") or by encoder file. Throws IoError when
/// the file is missing, FormatError naming the file when it is not a readable encoder file or its
/// architecture, weights and hash disagree.
/// The returned object is used by one thread at a time (see PatchEncoder).
std::unique_ptr<PatchEncoder> loadEncoder(const std::string& nameOrPath, const ComputeOptions& options = {});

/// Reads only the description of an encoder file (no weights are built). Throws like loadEncoder.
EncoderInfo readEncoderInfo(const std::filesystem::path& path);

/// A freshly initialised (untrained) encoder of `kind` with weights drawn from `seed`; `classes` is
/// used by supervised-tissue only. For benchmarks and tests.
std::unique_ptr<PatchEncoder> createEncoder(EncoderKind kind, int patchSize, int codeSize, int classes,
                                            std::uint64_t seed, const ComputeOptions& options = {});

/// Saves an encoder obtained from loadEncoder/createEncoder (not mean-rgb) to `path`, atomically.
/// Returns the saved description (its hash is the content hash of the file written).
EncoderInfo saveEncoder(PatchEncoder& encoder, const std::filesystem::path& path);

/// Imports one of the NIC authors' Keras 2 / HDF5 encoders (e.g. encoder_bigan.h5): reads model_config
/// and model_weights, rebuilds the layer chain (conv, LeakyReLU, BN, flatten, dense, global average
/// pooling; 'valid' and TF 'same' padding) and saves it as an encoder file at `out`. The authors feed
/// 128×128 patches at 0.5 µm/px, average-pooled 2×2 when the model's input is 64×64; the import adds
/// that pooling. Throws IoError when `h5` is missing, FormatError naming the file and the unsupported or
/// inconsistent item.
EncoderInfo importKerasEncoder(const std::filesystem::path& h5, const std::filesystem::path& out);

} // namespace nic

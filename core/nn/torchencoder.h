#pragma once
// The LibTorch side of encoder files (internal to core_nn, its tests and benchmarks; includes torch).
#include "core/encoder.h"
#include "core/modelmeta.h"
#include "core/nn/modules.h"

#include <filesystem>
#include <string>
#include <vector>

namespace nic {

// EncoderMeta, encoderMetaToJson and encoderMetaFromJson: core/modelmeta.h (torch-free).

/// Builds the (untrained) embedding module for `meta`: NCHW float input in [−1, 1] → [N, C].
torch::nn::AnyModule buildEncoderModule(const EncoderMeta& meta);

/// Resolves a device name from configureCompute() to a torch::Device.
torch::Device toDevice(const std::string& name);

/// uint8 NHWC → float NCHW in [−1, 1] on `device`.
torch::Tensor toModelInput(const std::uint8_t* nhwc, int count, int patchSize, torch::Device device);

/// FNV-1a 64-bit content hash of the metadata JSON and of every parameter and buffer (names, shapes
/// and bytes in registration order), as 16 hex digits.
std::string contentHash(const std::string& metaJson, torch::nn::Module& module);

/// A PatchEncoder over a LibTorch module. encode() runs in eval mode under NoGradGuard on the calling
/// thread, in chunks of at most 256 patches.
class TorchPatchEncoder final : public PatchEncoder {
public:
    TorchPatchEncoder(EncoderMeta meta, torch::nn::AnyModule module, torch::Device device, std::string hash,
                      std::string source);
    const EncoderInfo& info() const override { return info_; }
    void encode(const std::uint8_t* nhwc, int count, float* out) override;
    using PatchEncoder::encode;

    /// Embeds model-ready input (NCHW, [−1, 1]) in eval mode without gradients.
    torch::Tensor forward(const torch::Tensor& input);
    const EncoderMeta& meta() const { return meta_; }
    torch::nn::Module& module() { return *module_.ptr(); }
    torch::Device device() const { return device_; }

private:
    EncoderMeta meta_;
    torch::nn::AnyModule module_;
    torch::Device device_;
    EncoderInfo info_;
};

/// Writes an encoder file atomically: `module`'s state under "encoder", the metadata and the hash.
/// `module` must have the architecture buildEncoderModule(meta) builds. Returns the file's description.
EncoderInfo writeEncoderFile(const std::filesystem::path& path, const EncoderMeta& meta, torch::nn::Module& module);

/// Reads an encoder file (metadata check, shape check, hash check). Throws IoError / Error.
std::unique_ptr<TorchPatchEncoder> readEncoderFile(const std::filesystem::path& path, torch::Device device);

/// Message of a c10::Error without the backtrace.
std::string torchMessage(const c10::Error& e);

} // namespace nic

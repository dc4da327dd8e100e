#pragma once
// The patch encoder interface (paper: E maps a P×P×3 patch to a C-vector). Compression and evaluation
// talk to encoders only through this header, which includes no LibTorch, so the non-neural parts of
// core/ (and their tests, including the sanitizer build) never load LibTorch.
#include "core/imaging/image.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace nic {

/// What an encoder is; recorded in every compressed file so a grid names the encoder that made it.
struct EncoderInfo {
    std::string name;        ///< "mean-rgb", "vae", "bigan", "contrastive", "supervised-tumor", ...
    std::string hash;        ///< content hash of the weights + architecture ("builtin" for mean-rgb)
    int patchSize = 128;     ///< P: input patch side in pixels
    int codeSize = 3;        ///< C: embedding length
    double mpp = 0.5;        ///< resolution the encoder was trained at (µm/px)
    std::string source;      ///< file it was loaded from, or "builtin"
};

/// Maps batches of RGB patches to embeddings. Implementations must be safe to call from one thread
/// at a time per instance; a compression pipeline with several inference threads gives each its own
/// instance (replicate()). Throws nic::Error on failure.
class PatchEncoder {
public:
    virtual ~PatchEncoder() = default;
    virtual const EncoderInfo& info() const = 0;
    /// Encodes `count` patches given as contiguous uint8 NHWC data (count × P × P × 3) into
    /// `out` (count × C floats, row-major). P and C are info().patchSize / info().codeSize.
    virtual void encode(const std::uint8_t* nhwc, int count, float* out) = 0;
    /// Encodes the patches as they are after dihedral transform k (0..7, core/imaging/dihedral.h): what encode() gives
    /// for dihedralTransformPatch of each. Compression at 8 orientations calls it for every k on one copy of a batch.
    /// This default transforms the bytes into a buffer the instance keeps and calls encode(); an encoder that can read
    /// the patches in the transformed order while converting them overrides it (a wrapper should forward it). Throws
    /// InvalidArgument for k outside 0..7.
    virtual void encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out);

    /// How many threads calling encode() at once (each on its own instance) use the machine best: for a
    /// LibTorch encoder on the CPU, the CPUs divided by its intra-op threads; 1 where one caller already
    /// fills the device. compressSlide runs this many inference threads unless told otherwise.
    virtual int preferredConcurrency() const { return 1; }
    /// CPU threads one encode() call keeps busy, or 0 for an encoder that costs less than reading its
    /// patches (Mean-RGB). compressSlide's default reader count is the CPUs these calls leave free (at
    /// least one), or every CPU for 0.
    virtual int cpusPerCall() const { return 0; }
    /// A second instance with the same weights and results that may run encode() concurrently with this
    /// one (it shares the weights, not the scratch buffers), or nullptr when the encoder cannot be
    /// replicated. The replica must not outlive this instance.
    virtual std::unique_ptr<PatchEncoder> replicate() { return nullptr; }
    /// While the returned object lives, the large buffers encode() frees are kept for the next calls instead of
    /// going back to the system; nullptr where there is nothing to keep. compressSlide holds one over a slide's
    /// encoding. A LibTorch encoder on the CPU returns a TensorCacheScope (tensorcache.h; process-wide: every
    /// thread's large LibTorch CPU blocks are kept while it lives): without it, each batch's activations could be
    /// mapped and page-faulted afresh.
    virtual std::shared_ptr<void> keepBuffers() { return nullptr; }

    /// Convenience: encodes images of size P×P (throws InvalidArgument on a wrong size).
    std::vector<float> encode(const std::vector<Image>& patches);

private:
    std::vector<std::uint8_t> transformed_; ///< encodeTransformed's buffer (the default's)
};

/// The instances several threads encode with at once: `encoder` itself, then up to count − 1 replicas
/// sharing its weights (fewer where it cannot be replicated). count ≤ 0 means encoder.preferredConcurrency().
/// Owns the replicas; must not outlive `encoder`.
class EncoderInstances {
public:
    EncoderInstances(PatchEncoder& encoder, int count);
    int size() const { return static_cast<int>(all_.size()); }
    PatchEncoder& operator[](int i) const { return *all_[static_cast<std::size_t>(i)]; }

private:
    std::vector<std::unique_ptr<PatchEncoder>> replicas_;
    std::vector<PatchEncoder*> all_;
};

/// The Mean-RGB baseline (paper §7.4): e_c = mean over the patch of channel c, in [0, 255] units
/// divided by 255 (so values are in [0, 1]). Needs no weights.
class MeanRgbEncoder final : public PatchEncoder {
public:
    explicit MeanRgbEncoder(int patchSize = 128);
    const EncoderInfo& info() const override { return info_; }
    void encode(const std::uint8_t* nhwc, int count, float* out) override;
    using PatchEncoder::encode;
    /// The same as encode(): a patch's channel means (integer sums) do not depend on its orientation.
    void encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out) override;
    /// Reading, not this arithmetic, bounds Mean-RGB compression: one inference thread by default.
    std::unique_ptr<PatchEncoder> replicate() override { return std::make_unique<MeanRgbEncoder>(*this); }

private:
    EncoderInfo info_;
};

} // namespace nic

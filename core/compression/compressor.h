#pragma once
// Neural image compression of whole slides (paper Eq. 1): slide → tissue-only latent grid in an HDF5
// file (core/compression/latentgrid.h, docs/compressed-slide-format.md).
//
// Pipeline (pipelined mode): `readThreads` reader threads sharing one Slide handle take tissue
// cells in row-major order and read/decode/resample their patches into a bounded queue; inference
// threads (the encoder's preferredConcurrency(), each with its own replica of the encoder) batch them,
// apply the dihedral transforms and call the encoder; the calling thread is the only one that touches
// HDF5: it collects results, puts them back in cell order and streams complete bands of grid rows to
// the file. Memory is bounded by the queue sizes and one band of rows, whatever the slide size.
//
// Robustness: output goes to `<name>.partial.h5` beside the target, with `rows_done` flushed after each
// band; a later run with the same parameters and encoder resumes from it; completion renames it to
// `<name>.h5`. A finished output with the same parameters and encoder hash is skipped. A read error
// fails the slide (message with the cell and level-0 rectangle; the partial file is removed), or with
// skipBadRegions leaves the cell empty, flags it and counts it. A slide file that changed since it was
// opened (deleted, replaced, truncated: SlideChangedError) always fails the slide, also with
// skipBadRegions, and a replacing file is never read.
#include "core/encoders/encoder.h"
#include "core/base/jobcontext.h"
#include "core/compression/latentgrid.h"
#include "core/slide/tissue.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// Parameters of a compression run. P comes from the encoder (info().patchSize).
struct CompressOptions {
    int stride = 0;                     ///< S in target pixels; 0 = P
    double targetMpp = 0.0;             ///< µm/px of the patches; 0 = the encoder's mpp
    std::optional<double> slideMpp;     ///< level-0 µm/px override (for slides whose mpp is unknown)
    /// Tissue detection; tissue.minCellFraction is the threshold: a cell is encoded when its tissue
    /// fraction is ≥ the threshold and > 0 (so 0 means "any tissue").
    TissueOptions tissue;
    int augment = 1;                    ///< 1, or 8 for all dihedral variants (paper §3.2; the default of `nic compress` and the GUI)
    LatentDType dtype = LatentDType::Float16;
    /// Patches per encoder call. 64: the VAE-architecture encoder's 8192 → 512 dense layer streams its 16 MiB
    /// of weights once per call, and 64 ran 5–10 % faster than 32 for ~100 MiB more at 20 000² (the same
    /// peak at 100 000²); 128 and 256 cost more memory for little or nothing (docs/timings.md).
    int batchSize = 64;
    int readThreads = 0;                ///< 0 = defaultReadThreads(CPUs, inference threads, encoder)
    /// Threads calling the encoder at once, each on its own replica (PatchEncoder::replicate); 0 = the
    /// encoder's preferredConcurrency(). Fewer run when the encoder cannot be replicated.
    int inferenceThreads = 0;
    int queueBatches = 2;               ///< read-ahead, in batches
    int bandRows = 0;                   ///< grid rows per written band (= resume granularity); 0 = auto
    bool skipBadRegions = false;        ///< unreadable regions → empty cells instead of a failure
    bool resume = true;                 ///< continue a matching partial output
    bool force = false;                 ///< recompute even when a matching finished output exists
    bool pipelined = true;              ///< false: read → encode → write serially on the calling thread
};

/// The reader threads a pipelined run takes when CompressOptions::readThreads is 0: the CPUs that
/// `inferenceThreads` encode() calls of `cpusPerCall` threads each leave free, at least 1; all `cpus`
/// when cpusPerCall is 0 (an encoder cheaper than reading, where reading is the work). More readers than
/// that only take CPU time from the encoder: one reader decodes several thousand patches/s.
int defaultReadThreads(int cpus, int inferenceThreads, int cpusPerCall);

enum class CompressStatus { Written, Resumed, Skipped };
const char* toString(CompressStatus status);

/// What compressSlide did.
struct CompressResult {
    std::filesystem::path output;
    CompressStatus status = CompressStatus::Written;
    int rows = 0;
    int cols = 0;
    std::int64_t tissueCells = 0;   ///< cells at or above the tissue threshold
    std::int64_t encodedCells = 0;  ///< encoded in this run (less than tissueCells when resumed)
    std::int64_t skippedCells = 0;  ///< unreadable cells left empty (whole file)
    int resumedFromRow = 0;
    double seconds = 0.0;           ///< whole call (slide opening, tissue detection, encoding, publishing)
    double encodeSeconds = 0.0;     ///< the read → encode → write phase alone
    double patchesPerSecond = 0.0;  ///< encodedCells · augment / encodeSeconds
    int readThreads = 0;            ///< reader threads of the pipelined run (0: serial, or nothing encoded)
    /// Where the pipelined run's CPU time went, from each thread's CPU clock (zeros in a serial run): its reader
    /// threads (reading and decoding patches), its inference threads (encode(); not the worker threads of an
    /// encoder's own thread pool, which a LibTorch encoder with more than one compute thread has) and the calling
    /// thread while it assembled and wrote the bands.
    double readCpuSeconds = 0.0;
    double encodeCpuSeconds = 0.0;
    double writeCpuSeconds = 0.0;
};

/// Output path for a slide: `<outDir>/<slide file stem>.h5`.
std::filesystem::path compressedPathFor(const std::filesystem::path& slide, const std::filesystem::path& outDir);
/// Partial path beside an output: `<dir>/<stem>.partial.h5`.
std::filesystem::path partialPathFor(const std::filesystem::path& output);

/// The grid metadata a run with these inputs would record (no tissue detection, no file access
/// beyond the slide's header). Throws like PatchGrid (unknown mpp → InvalidArgument naming the file).
LatentGridMeta plannedMeta(const Slide& slide, const EncoderInfo& encoder, const CompressOptions& options);

/// Compresses one slide into `output` (see the file comment). `encoder` itself is used from one thread
/// at a time; further inference threads use its replicas. Throws SlideError (unopenable slide or unreadable region, with its location), InvalidArgument
/// (bad options, unknown mpp), IoError (output), Cancelled (the partial file is kept for resuming).
/// On any error but Cancelled no output or partial file is left behind.
CompressResult compressSlide(const std::filesystem::path& slidePath, PatchEncoder& encoder,
                             const std::filesystem::path& output, const CompressOptions& options,
                             JobContext& job = JobContext::none());

/// `--shard i/n`: 0 ≤ i < n. Parses "i/n"; throws InvalidArgument.
struct Shard {
    int index = 0;
    int count = 1;
    /// True when item `position` of a list belongs to this shard (position % count == index).
    bool contains(std::size_t position) const {
        return position % static_cast<std::size_t>(count) == static_cast<std::size_t>(index);
    }
};
Shard parseShard(const std::string& text);

/// One slide's outcome in a batch.
struct BatchItemResult {
    std::filesystem::path slide;
    std::filesystem::path output;         ///< compressedPathFor(slide, outDir)
    std::optional<CompressResult> result; ///< set on success
    std::string error;                    ///< set on failure: "<slide>: <cause>" (the cause names the file)
};

/// What compressSlides() reports while it runs (on the calling thread); every member may be empty.
struct CompressEvents {
    /// Before slide `position` (0-based, of `count` in this shard) starts.
    std::function<void(std::size_t position, std::size_t count, const std::filesystem::path& slide)> started;
    /// After it finished, successfully or not (`item.error` set).
    std::function<void(std::size_t position, std::size_t count, const BatchItemResult& item)> finished;
};

/// Throws InvalidArgument "slides A and B would both write OUT (...)" when two different slides of the
/// list have the same output file in `outDir`.
void checkDistinctOutputs(const std::vector<std::filesystem::path>& slides, const std::filesystem::path& outDir);

/// Compresses the slides of `shard` (every count-th slide of `slides`, from index) into `outDir` (created
/// when missing), one after the other — the one cohort-level compression of core/, used by `nic compress`,
/// nic-studio's Compress job and the cluster path. Checks the outputs first (checkDistinctOutputs). Each
/// slide runs with a child JobContext covering its share of `job` (step "slide k/n <name>: ..."), so a
/// front-end shows batch progress without reading step texts, and cancelling `job` stops the running slide
/// at its next batch of patches. A failing slide is reported through `events.finished` and collected
/// (the front-end shows it), and the others continue; cancellation stops the batch (throws Cancelled, the running slide's
/// partial file is kept for resuming).
std::vector<BatchItemResult> compressSlides(const std::vector<std::filesystem::path>& slides, PatchEncoder& encoder,
                                            const std::filesystem::path& outDir, const CompressOptions& options,
                                            const Shard& shard = {}, JobContext& job = JobContext::none(),
                                            const CompressEvents& events = {});

/// "" when every item succeeded, otherwise "<failed> of <items> slide(s) failed:" followed by one
/// "\n  <slide>: <cause>" line per failure.
std::string batchFailureMessage(const std::vector<BatchItemResult>& items);

} // namespace nic

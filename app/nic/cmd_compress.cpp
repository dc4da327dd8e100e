// nic compress — slides into latent grids (paper Eq. 1), one HDF5 file per slide
// (docs/compressed-slide-format.md). Resumable, skips finished outputs, shards a list over a cluster.
#include "commands.h"
#include "progressbar.h"

#include "core/slidelearning/cohort.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"

#ifdef NIC_WITH_TORCH
#include "core/encoders/nn/encoders.h"
#endif

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nic::cli {

namespace {

struct Options {
    std::vector<std::string> slides;
    std::string cohort;
    std::string encoder;
    std::string out;
    std::optional<int> patch;
    std::optional<int> stride;
    std::optional<double> targetMpp;
    std::optional<double> mpp;
    double minTissue = TissueOptions{}.minCellFraction;
    int augment = 8; // the paper stores every dihedral variant
    std::string dtype = "float16";
    int batch = CompressOptions{}.batchSize;
    int readThreads = 0;
    int inferenceThreads = 0;
    int bandRows = 0;
    bool skipBadRegions = false;
    bool resume = true;
    bool force = false;
    bool serial = false;
    std::string shard;
    bool quiet = false;
#ifdef NIC_WITH_TORCH
    std::string device = "auto";
    int computeThreads = 0;
#endif
};

std::unique_ptr<PatchEncoder> makeEncoder(const Options& o) {
    if (o.encoder == "mean-rgb")
        return std::make_unique<MeanRgbEncoder>(o.patch.value_or(128));
#ifdef NIC_WITH_TORCH
    ComputeOptions compute;
    compute.device = o.device;
    compute.threads = o.computeThreads;
    compute.callers = o.inferenceThreads; // 0: one inference thread per physical core, 1 LibTorch thread each
    auto enc = loadEncoder(o.encoder, compute);
    if (o.patch && *o.patch != enc->info().patchSize)
        throw InvalidArgument("--patch " + std::to_string(*o.patch) + ": encoder " + o.encoder + " takes " +
                              std::to_string(enc->info().patchSize) + " px patches");
    return enc;
#else
    throw InvalidArgument("--encoder " + o.encoder +
                          ": this build has no LibTorch, so only the built-in 'mean-rgb' encoder is available");
#endif
}

void run(const Options& o) {
    std::vector<std::filesystem::path> slides(o.slides.begin(), o.slides.end());
    if (!o.cohort.empty())
        for (auto& s : readCohort(o.cohort).slides())
            slides.push_back(std::move(s));
    if (slides.empty())
        throw InvalidArgument("no slides given (pass SLIDE... or --cohort CSV)");
    const Shard shard = o.shard.empty() ? Shard{} : parseShard(o.shard);

    CompressOptions c;
    c.stride = o.stride.value_or(0);
    c.targetMpp = o.targetMpp.value_or(0.0);
    c.slideMpp = o.mpp;
    c.tissue.minCellFraction = o.minTissue;
    c.augment = o.augment;
    c.dtype = parseLatentDType(o.dtype);
    c.batchSize = o.batch;
    c.readThreads = o.readThreads;
    c.inferenceThreads = o.inferenceThreads;
    c.bandRows = o.bandRows;
    c.skipBadRegions = o.skipBadRegions;
    c.resume = o.resume;
    c.force = o.force;
    c.pipelined = !o.serial;

    auto encoder = makeEncoder(o);
    const EncoderInfo& info = encoder->info();
    std::size_t mine = 0;
    for (std::size_t i = 0; i < slides.size(); ++i)
        mine += shard.contains(i) ? 1 : 0;
    std::fprintf(stderr, "nic compress: %zu slide(s)%s, encoder %s (%s), P=%d, C=%d\n", mine,
                 o.shard.empty() ? "" : (" (shard " + o.shard + " of " + std::to_string(slides.size()) + ")").c_str(),
                 info.name.c_str(), info.hash.substr(0, 12).c_str(), info.patchSize, info.codeSize);

    CompressEvents events;
    // The split counts the inference threads themselves, not an encoder's own worker threads: shown only where the
    // encoder has none (one compute thread per inference thread, the default on the CPU).
    const bool splitCpu = encoder->cpusPerCall() <= 1;
    events.finished = [splitCpu](std::size_t k, std::size_t n, const BatchItemResult& item) {
        finishProgressLine();
        if (!item.result) {
            std::fprintf(stderr, "nic: error: %s\n", item.error.c_str());
            return;
        }
        const CompressResult& r = *item.result;
        std::printf("[%zu/%zu] %s -> %s: %s, %d x %d grid, %lld tissue cells", k + 1, n, item.slide.c_str(),
                    item.output.c_str(), toString(r.status), r.rows, r.cols, static_cast<long long>(r.tissueCells));
        if (r.status != CompressStatus::Skipped)
            std::printf(", %lld encoded in %.1f s (%.1f patches/s)", static_cast<long long>(r.encodedCells), r.seconds,
                        r.patchesPerSecond);
        if (r.skippedCells > 0)
            std::printf(", %lld unreadable cells left empty", static_cast<long long>(r.skippedCells));
        if (const double cpu = r.readCpuSeconds + r.encodeCpuSeconds + r.writeCpuSeconds;
            splitCpu && r.encodedCells > 0 && cpu > 0)
            std::printf("; CPU time: reading %.0f %%, encoding %.0f %%, writing %.0f %%", 100.0 * r.readCpuSeconds / cpu,
                        100.0 * r.encodeCpuSeconds / cpu, 100.0 * r.writeCpuSeconds / cpu);
        std::printf("\n");
        std::fflush(stdout);
    };
    auto job = makeTerminalContext(o.quiet);
    const auto items = compressSlides(slides, *encoder, o.out, c, shard, *job, events);
    finishProgressLine();
    if (const std::string failed = batchFailureMessage(items); !failed.empty())
        throw Error(failed);
}

} // namespace

void addCompressCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "compress", "Compress slides into latent grids (one HDF5 file per slide in --out): tissue cells encoded, "
                    "background exactly 0; resumable, skips finished outputs, --shard i/n for clusters");
    auto o = std::make_shared<Options>();
    cmd->add_option("SLIDE", o->slides, "Slide files (any format OpenSlide reads)");
    cmd->add_option("--cohort", o->cohort, "Cohort CSV (columns slide,label[,score][,fold]...) listing the slides")
        ->check(CLI::ExistingFile);
    cmd->add_option("-e,--encoder", o->encoder,
                    "Encoder: a saved encoder file, or the built-in 'mean-rgb'"
#ifndef NIC_WITH_TORCH
                    " (this build has no LibTorch: mean-rgb only)"
#endif
                    )
        ->required();
    cmd->add_option("-o,--out", o->out, "Output folder (one <slide name>.h5 per slide)")->required();
    cmd->add_option("--patch", o->patch, "Patch size P in px (mean-rgb only; default 128; other encoders fix P)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--stride", o->stride, "Stride S in px at the target resolution (default P)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--target-mpp", o->targetMpp, "Patch resolution in um/px (default: the encoder's, 0.5)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--mpp", o->mpp, "Level-0 um/px of the slides (overrides their metadata; needed when it is unknown)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--min-tissue", o->minTissue,
                    "Encode a cell when its tissue fraction is >= this (and > 0); other cells stay 0")
        ->default_val(o->minTissue)
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--augment", o->augment,
                    "8 (the paper, 3.2): store the grids of all 8 rotations/mirrorings of the slide, which training "
                    "and prediction use as augmentation; 1: the slide as it is (8x less compute and disk)")
        ->default_val(8)
        ->check(CLI::IsMember({1, 8}));
    cmd->add_option("--dtype", o->dtype, "Grid element type")->default_val("float16")->check(
        CLI::IsMember({"float16", "float32"}));
    cmd->add_option("--batch", o->batch, "Patches per encoder call")->default_val(CompressOptions{}.batchSize)->check(CLI::PositiveNumber);
    cmd->add_option("--read-threads", o->readThreads, "Patch reading threads (0 = the CPUs the inference threads leave free, at least 1; every CPU for mean-rgb)")
        ->default_val(0)
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--inference-threads", o->inferenceThreads,
                    "Threads calling the encoder at once, sharing its weights (0 = one per physical core divided by "
                    "--compute-threads; 1 on a GPU)")
        ->default_val(0)
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--band-rows", o->bandRows, "Grid rows written per band (resume granularity; 0 = auto)")
        ->default_val(0)
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--skip-bad-regions", o->skipBadRegions,
                  "Leave cells whose region cannot be read empty (flagged and counted) instead of failing the slide");
    cmd->add_flag("--resume,!--no-resume", o->resume,
                  "Continue a matching <name>.partial.h5 left by an interrupted run (default) / start afresh");
    cmd->add_flag("--force", o->force, "Recompute outputs that are already complete with the same parameters");
    cmd->add_option("--shard", o->shard, "Process slides i, i+n, i+2n, ... of the list (0 <= i < n), e.g. "
                                         "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT");
    cmd->add_flag("--serial", o->serial, "Read, encode and write on one thread (for comparison)");
    cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
#ifdef NIC_WITH_TORCH
    cmd->add_option("--device", o->device, "auto, cpu or cuda")->default_val("auto");
    cmd->add_option("--compute-threads", o->computeThreads, "LibTorch intra-op threads per inference thread (0 = the physical cores divided by the inference threads)")
        ->default_val(0)
        ->check(CLI::NonNegativeNumber);
#endif
    cmd->callback([o] { run(*o); });
}

} // namespace nic::cli

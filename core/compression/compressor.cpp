#include "core/compression/compressor.h"

#include "core/compression/pipeline.h"

#include "core/base/cpuinfo.h"
#include "core/base/error.h"
#include "core/slide/patchgrid.h"
#include "core/slide/slide.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace nic {

int defaultReadThreads(int cpus, int inferenceThreads, int cpusPerCall) {
    cpus = std::max(1, cpus);
    if (cpusPerCall <= 0)
        return cpus;
    return std::max(1, cpus - std::max(0, inferenceThreads) * cpusPerCall);
}

const char* toString(CompressStatus status) {
    switch (status) {
    case CompressStatus::Written: return "written";
    case CompressStatus::Resumed: return "resumed";
    case CompressStatus::Skipped: return "skipped";
    }
    return "?";
}

std::filesystem::path compressedPathFor(const std::filesystem::path& slide, const std::filesystem::path& outDir) {
    return outDir / (slide.stem().string() + ".h5");
}

std::filesystem::path partialPathFor(const std::filesystem::path& output) {
    auto p = output;
    p.replace_filename(output.stem().string() + ".partial.h5");
    return p;
}

namespace {

using pipeline::BandAssembler;
using pipeline::BoundedQueue;
using pipeline::Cell;
using pipeline::cellLocation;
using pipeline::PatchItem;
using pipeline::PixelBufferPool;
using pipeline::ResultBatch;
using pipeline::VariantEncoder;

void validate(const CompressOptions& o, const EncoderInfo& info) {
    if (o.augment != 1 && o.augment != 8)
        throw InvalidArgument("--augment must be 1 or 8, not " + std::to_string(o.augment));
    if (o.batchSize < 1)
        throw InvalidArgument("batch size must be at least 1");
    if (o.stride < 0)
        throw InvalidArgument("stride must be positive");
    if (o.targetMpp < 0)
        throw InvalidArgument("target mpp must be positive");
    if (o.readThreads < 0 || o.inferenceThreads < 0 || o.queueBatches < 1 || o.bandRows < 0)
        throw InvalidArgument("read threads, inference threads, queue depth and band rows must not be negative");
    if (o.tissue.minCellFraction < 0 || o.tissue.minCellFraction > 1)
        throw InvalidArgument("tissue threshold must be in [0, 1]");
    if (info.patchSize <= 0 || info.codeSize <= 0)
        throw InvalidArgument("encoder " + info.name + " reports a non-positive patch or code size");
}

GridSpec gridSpecFor(const EncoderInfo& info, const CompressOptions& o) {
    GridSpec spec;
    spec.patchSize = info.patchSize;
    spec.stride = o.stride > 0 ? o.stride : info.patchSize;
    spec.mpp = o.targetMpp > 0 ? o.targetMpp : info.mpp;
    return spec;
}

LatentGridMeta metaFor(const Slide& slide, const PatchGrid& grid, const EncoderInfo& info, const CompressOptions& o) {
    LatentGridMeta m;
    m.encoderName = info.name;
    m.encoderHash = info.hash;
    m.codeSize = info.codeSize;
    m.patchSize = grid.patchSize();
    m.stride = grid.stride();
    m.targetMpp = grid.targetMpp();
    m.slideMpp = grid.slideMpp();
    m.slideMppSource = o.slideMpp ? "override" : "slide";
    m.level = grid.level();
    m.levelDownsample = grid.levelDownsample();
    m.readSize = grid.readSize();
    m.level0Width = grid.level0Width();
    m.level0Height = grid.level0Height();
    m.rows = grid.rows();
    m.cols = grid.cols();
    m.slideFile = slide.path().filename().string();
    m.slideQuickHash = slide.quickHash();
    m.tissueThreshold = o.tissue.minCellFraction;
    m.augment = o.augment;
    m.dtype = o.dtype;
    return m;
}

bool isTissue(float fraction, double threshold) { return fraction > 0.0F && fraction >= threshold; }

/// Adds the calling thread's CPU time since construction to `total` when it goes out of scope (nothing where the
/// system has no thread clock).
class ThreadCpuTally {
public:
    explicit ThreadCpuTally(std::atomic<std::int64_t>& total) : total_(total), start_(threadCpuNs()) {}
    ThreadCpuTally(const ThreadCpuTally&) = delete;
    ThreadCpuTally& operator=(const ThreadCpuTally&) = delete;
    ~ThreadCpuTally() {
        if (start_ >= 0)
            total_ += threadCpuNs() - start_;
    }

private:
    std::atomic<std::int64_t>& total_;
    std::int64_t start_;
};

/// Runs the encoding of cells[first..] and streams bands to `writer`. Throws on error or cancel; the
/// writer then holds every band that was complete.
class Run {
public:
    Run(const std::filesystem::path& slidePath, const Slide& slide, const PatchGrid& grid, PatchEncoder& encoder,
        LatentGridWriter& writer, const CompressOptions& options, JobContext& job)
        : slidePath_(slidePath), slide_(slide), grid_(grid), encoder_(encoder), writer_(writer), options_(options),
          job_(job) {
        const LatentGridMeta& m = writer.meta();
        rowStart_.assign(static_cast<std::size_t>(m.rows) + 1, 0);
        const auto& fractions = grid.tissueFractions();
        for (int r = 0; r < m.rows; ++r) {
            rowStart_[static_cast<std::size_t>(r)] = static_cast<std::int64_t>(cells_.size());
            if (r < writer.rowsDone())
                continue;
            for (int c = 0; c < m.cols; ++c)
                if (isTissue(fractions[static_cast<std::size_t>(r) * static_cast<std::size_t>(m.cols) +
                                       static_cast<std::size_t>(c)],
                             m.tissueThreshold))
                    cells_.push_back({r, c});
        }
        rowStart_[static_cast<std::size_t>(m.rows)] = static_cast<std::int64_t>(cells_.size());
        step_ = "compressing " + slidePath.filename().string();
    }

    std::int64_t cellCount() const { return static_cast<std::int64_t>(cells_.size()); }

    /// The CPU seconds of the pipelined run's readers, inference threads and writing thread (zeros before one ran).
    void stageCpu(CompressResult& r) const {
        r.readCpuSeconds = static_cast<double>(readCpuNs_.load()) * 1e-9;
        r.encodeCpuSeconds = static_cast<double>(encodeCpuNs_.load()) * 1e-9;
        r.writeCpuSeconds = static_cast<double>(writeCpuNs_.load()) * 1e-9;
    }

    void runSerial() {
        BandAssembler assembler(writer_, cells_, rowStart_, writer_.meta().codeSize, writer_.meta().augment);
        VariantEncoder venc(encoder_, writer_.meta().augment);
        std::vector<PatchItem> batch;
        PixelBufferPool pixelBuffers;
        std::int64_t done = 0;
        auto flush = [&] {
            if (batch.empty())
                return;
            assembler.add(venc.encode(batch));
            done += static_cast<std::int64_t>(batch.size());
            pixelBuffers.giveBack(batch);
            batch.clear();
            assembler.writeReadyBands();
            job_.progress(done, cellCount(), step_);
            job_.throwIfCancelled();
        };
        for (std::int64_t s = 0; s < cellCount(); ++s) {
            batch.push_back(readItem(s, pixelBuffers.take()));
            // Flush at band ends too, so rows_done advances in step with the pipelined mode.
            const Cell& cell = cells_[static_cast<std::size_t>(s)];
            const bool lastOfRow = s + 1 == cellCount() || cells_[static_cast<std::size_t>(s + 1)].row != cell.row;
            if (static_cast<int>(batch.size()) >= options_.batchSize || lastOfRow)
                flush();
        }
        flush();
        assembler.writeReadyBands();
        if (cellCount() == 0)
            job_.progress(0, 0, step_);
    }

    /// Returns the reader threads it ran.
    int runPipelined() {
        const auto batchSize = static_cast<std::size_t>(options_.batchSize);
        BoundedQueue<PatchItem> patches(batchSize * static_cast<std::size_t>(options_.queueBatches));
        PixelBufferPool pixelBuffers;
        // One encoder instance per inference thread: this run's encoder, then replicas sharing its weights.
        const EncoderInstances encoders(encoder_, options_.inferenceThreads);
        const int inferenceThreads = encoders.size();
        const int threads = options_.readThreads > 0
                                ? options_.readThreads
                                : defaultReadThreads(usableCpus(), inferenceThreads, encoder_.cpusPerCall());
        BoundedQueue<ResultBatch> results(static_cast<std::size_t>(options_.queueBatches + inferenceThreads));
        windowCells_ = static_cast<std::int64_t>(batchSize) * (options_.queueBatches + 3 + inferenceThreads) + threads;
        updateClaimLimit();

        auto abortAll = [&] {
            aborted_.store(true);
            patches.abort();
            results.abort();
            std::lock_guard lock(claimMutex_);
            claimCv_.notify_all();
        };

        std::atomic<int> activeReaders{threads};
        std::atomic<int> activeEncoders{inferenceThreads};
        std::vector<std::thread> workers;
        auto joinAll = [&] {
            for (auto& t : workers)
                if (t.joinable())
                    t.join();
        };
        try {
            for (int t = 0; t < threads; ++t)
                workers.emplace_back([&] {
                    const ThreadCpuTally tally(readCpuNs_);
                    try {
                        for (;;) {
                            const std::int64_t s = claim();
                            if (s < 0)
                                break;
                            PatchItem item = readItem(s, pixelBuffers.take());
                            if (!patches.push(std::move(item)))
                                break;
                        }
                    } catch (...) {
                        setError(std::current_exception());
                        abortAll();
                    }
                    if (--activeReaders == 0)
                        patches.close();
                });
            for (int k = 0; k < inferenceThreads; ++k)
                workers.emplace_back([&, encoder = &encoders[k]] {
                    const ThreadCpuTally tally(encodeCpuNs_);
                    try {
                        VariantEncoder venc(*encoder, writer_.meta().augment);
                        std::vector<PatchItem> batch;
                        while (auto first = patches.pop()) {
                            batch.clear();
                            batch.push_back(std::move(*first));
                            // Take what is ready, never wait for a full batch (a band may need fewer cells).
                            while (batch.size() < batchSize) {
                                auto more = patches.tryPop();
                                if (!more)
                                    break;
                                batch.push_back(std::move(*more));
                            }
                            if (aborted_.load())
                                break;
                            ResultBatch encoded = venc.encode(batch);
                            pixelBuffers.giveBack(batch);
                            if (!results.push(std::move(encoded)))
                                break;
                        }
                    } catch (...) {
                        setError(std::current_exception());
                        abortAll();
                    }
                    if (--activeEncoders == 0)
                        results.close();
                });

            const ThreadCpuTally tally(writeCpuNs_);
            BandAssembler assembler(writer_, cells_, rowStart_, writer_.meta().codeSize, writer_.meta().augment);
            std::int64_t done = 0;
            if (assembler.writeReadyBands() > 0)
                updateClaimLimit();
            while (writer_.rowsDone() < writer_.meta().rows) {
                if (job_.isCancelled())
                    throw Cancelled();
                rethrowError();
                auto batch = results.popFor(std::chrono::milliseconds(50));
                if (!batch) {
                    if (results.closedAndEmpty()) {
                        rethrowError();
                        if (aborted_.load() || writer_.rowsDone() < writer_.meta().rows)
                            throw Error(slidePath_.string() + ": compression pipeline stopped early");
                    }
                    continue;
                }
                assembler.add(*batch);
                done += static_cast<std::int64_t>(batch->seqs.size());
                if (assembler.writeReadyBands() > 0)
                    updateClaimLimit();
                job_.progress(done, cellCount(), step_);
            }
            abortAll(); // nothing left to do; wakes anything still waiting
            joinAll();
            rethrowError();
            return threads;
        } catch (...) {
            abortAll();
            joinAll();
            // A worker's error explains an early stop better than what the writer saw.
            rethrowError();
            throw;
        }
    }

private:
    /// Reads a cell's patch. All readers share one Slide handle (one OpenSlide tile cache, so a tile
    /// is decoded once however the cells are spread over threads). A read error kills that handle for
    /// every thread (OpenSlide's rule), so after any error the shared handle is replaced and the cell is
    /// read again on a private, fresh handle: only a cell that fails there too is unreadable (a failure
    /// caused by another thread's bad region is not blamed on this cell).
    /// A slide file that changed since it was opened (deleted, replaced, truncated, rewritten) is not a
    /// bad region: SlideChangedError fails the slide, with skipBadRegions too, and a reopened handle
    /// must be the same file (never read a file that replaced the slide).
    /// `buffer`, when not empty, is a patch buffer to read into (PixelBufferPool).
    PatchItem readItem(std::int64_t s, std::vector<std::uint8_t> buffer = {}) {
        const Cell& cell = cells_[static_cast<std::size_t>(s)];
        PatchItem item;
        item.seq = s;
        item.pixels = std::move(buffer);
        auto [slide, generation] = currentSlide();
        try {
            grid_.readPatch(*slide, cell.col, cell.row, item.pixels);
            return item;
        } catch (const SlideChangedError&) {
            throw;
        } catch (const SlideError&) {
            replaceSlide(generation);
        }
        try {
            const Slide fresh = reopenSlide();
            grid_.readPatch(fresh, cell.col, cell.row, item.pixels);
            return item;
        } catch (const SlideChangedError&) {
            throw;
        } catch (const SlideError& e) {
            slide_.checkUnchanged(); // a failure caused by the file changing is that, not a bad region
            const std::string where = cellLocation(grid_, cell);
            if (!options_.skipBadRegions)
                throw SlideError(std::string(e.what()) + " [unreadable region at " + where + "]");
            job_.log("warning: " + std::string(e.what()) + " [unreadable region at " + where + "; cell left empty]");
            item.bad = true;
            item.pixels.clear();
            return item;
        }
    }

    std::pair<std::shared_ptr<const Slide>, int> currentSlide() {
        std::lock_guard lock(slideMutex_);
        if (!slideHandle_)
            slideHandle_ = std::shared_ptr<const Slide>(&slide_, [](const Slide*) {}); // the caller's handle
        return {slideHandle_, slideGeneration_};
    }
    void replaceSlide(int generation) {
        std::lock_guard lock(slideMutex_);
        if (generation != slideGeneration_)
            return; // another thread already replaced it
        slideHandle_ = std::make_shared<const Slide>(reopenSlide());
        ++slideGeneration_;
    }
    /// A new handle on the slide file, which must still be the file that was opened (throws
    /// SlideChangedError naming what changed, also when the file cannot be opened any more because it
    /// changed).
    Slide reopenSlide() const {
        try {
            Slide fresh(slidePath_);
            fresh.checkSameFileAs(slide_);
            return fresh;
        } catch (const SlideChangedError&) {
            throw;
        } catch (const SlideError&) {
            slide_.checkUnchanged();
            throw;
        }
    }

    std::int64_t claim() {
        std::unique_lock lock(claimMutex_);
        claimCv_.wait(lock, [&] { return aborted_.load() || next_ >= cellCount() || next_ < claimLimit_; });
        if (aborted_.load() || next_ >= cellCount())
            return -1;
        return next_++;
    }

    /// Readers may run ahead of the last written band by two bands or a few batches, whichever is more:
    /// bounds memory, and never blocks a band from completing.
    void updateClaimLimit() {
        const LatentGridMeta& m = writer_.meta();
        const int r = writer_.rowsDone();
        const int ahead = std::min(m.rows, r + 2 * writer_.bandRows());
        const std::int64_t limit = std::max(rowStart_[static_cast<std::size_t>(ahead)],
                                            rowStart_[static_cast<std::size_t>(r)] + windowCells_);
        std::lock_guard lock(claimMutex_);
        claimLimit_ = limit;
        claimCv_.notify_all();
    }

    void setError(std::exception_ptr e) {
        std::lock_guard lock(errorMutex_);
        if (!error_)
            error_ = std::move(e);
    }
    void rethrowError() {
        std::exception_ptr e;
        {
            std::lock_guard lock(errorMutex_);
            e = error_;
        }
        if (e)
            std::rethrow_exception(e);
    }

    const std::filesystem::path& slidePath_;
    const Slide& slide_;
    const PatchGrid& grid_;
    PatchEncoder& encoder_;
    LatentGridWriter& writer_;
    const CompressOptions& options_;
    JobContext& job_;
    std::string step_;
    std::vector<Cell> cells_;
    std::vector<std::int64_t> rowStart_;

    std::mutex slideMutex_;
    std::shared_ptr<const Slide> slideHandle_;
    int slideGeneration_ = 0;
    std::mutex claimMutex_;
    std::condition_variable claimCv_;
    std::int64_t next_ = 0;
    std::int64_t claimLimit_ = 0;
    std::atomic<std::int64_t> readCpuNs_{0}, encodeCpuNs_{0}, writeCpuNs_{0}; ///< the pipelined run's stages
    std::int64_t windowCells_ = 0;
    std::atomic<bool> aborted_{false};
    std::mutex errorMutex_;
    std::exception_ptr error_;
};

int autoBandRows(const LatentGridMeta&) { return 16; }

} // namespace

LatentGridMeta plannedMeta(const Slide& slide, const EncoderInfo& encoder, const CompressOptions& options) {
    validate(options, encoder);
    const PatchGrid grid(slide, gridSpecFor(encoder, options), options.slideMpp);
    return metaFor(slide, grid, encoder, options);
}

// The share of a slide's progress (JobContext::Progress::fraction) taken by tissue detection; encoding
// takes the rest (on real slides tissue detection reads one coarse level: a few percent of the time).
constexpr double kTissueShare = 0.1;

namespace {

/// Whether the existing `output` was made with the parameters of `meta`: then `result` says it was skipped.
/// Otherwise (other parameters, or unreadable) logs why it is recomputed.
bool existingIsUpToDate(const std::filesystem::path& output, const LatentGridMeta& meta, CompressResult& result,
                        JobContext& job) {
    try {
        const LatentGridReader existing(output);
        const std::string why = meta.parameterMismatch(existing.meta());
        if (why.empty()) {
            job.log(output.string() + ": up to date, skipped");
            result.status = CompressStatus::Skipped;
            result.skippedCells = existing.meta().skippedCells;
            result.tissueCells = existing.meta().encodedCells + existing.meta().skippedCells;
            return true;
        }
        job.log(output.string() + ": exists but was made with other parameters (" + why + "); recomputing");
    } catch (const Error& e) {
        job.log(std::string(e.what()) + "; recomputing");
    }
    return false;
}

} // namespace

CompressResult compressSlide(const std::filesystem::path& slidePath, PatchEncoder& encoder,
                             const std::filesystem::path& output, const CompressOptions& options, JobContext& job) {
    const auto start = std::chrono::steady_clock::now();
    const EncoderInfo& info = encoder.info();
    validate(options, info);
    const Slide slide(slidePath);
    PatchGrid grid(slide, gridSpecFor(info, options), options.slideMpp);
    const LatentGridMeta meta = metaFor(slide, grid, info, options);

    CompressResult result;
    result.output = output;
    result.rows = meta.rows;
    result.cols = meta.cols;
    auto finishTiming = [&] {
        result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (result.encodeSeconds > 0)
            result.patchesPerSecond =
                static_cast<double>(result.encodedCells) * static_cast<double>(meta.augment) / result.encodeSeconds;
    };

    if (!options.force && std::filesystem::exists(output) && existingIsUpToDate(output, meta, result, job)) {
        finishTiming();
        return result;
    }

    struct PhaseReset {
        JobContext& job;
        ~PhaseReset() { job.setPhase(0.0, 1.0); }
    } phaseReset{job};
    job.setPhase(0.0, kTissueShare);
    const TissueMask mask = detectTissue(slide, options.tissue, options.slideMpp, job);
    job.setPhase(kTissueShare, 1.0);
    grid.setTissueFractions(tissueFractionPerCell(mask, grid));
    for (float f : grid.tissueFractions())
        result.tissueCells += isTissue(f, meta.tissueThreshold) ? 1 : 0;
    job.throwIfCancelled();

    const int bandRows = options.bandRows > 0 ? options.bandRows : autoBandRows(meta);
    const auto partial = partialPathFor(output);
    if (!output.parent_path().empty())
        std::filesystem::create_directories(output.parent_path());
    std::unique_ptr<LatentGridWriter> writer;
    if (options.resume && std::filesystem::exists(partial)) {
        try {
            writer = LatentGridWriter::resume(partial, meta, grid.tissueFractions(), bandRows);
            result.status = CompressStatus::Resumed;
            result.resumedFromRow = writer->rowsDone();
            job.log(partial.string() + ": resuming at grid row " + std::to_string(writer->rowsDone()) + " of " +
                    std::to_string(meta.rows));
        } catch (const Error& e) {
            job.log(std::string(e.what()) + "; starting afresh");
        }
    }
    // A partial file left by a killed process is consistent only up to its last flush: HDF5 metadata
    // written after it may be damaged. If writing into a resumed file fails, start afresh once.
    for (int attempt = 0;; ++attempt) {
        const bool resumed = writer && attempt == 0 && result.status == CompressStatus::Resumed;
        // A damaged partial file fails as IoError (HDF5) or FormatError (what it holds): start afresh
        // when it was resumed here, else (false) the caller rethrows.
        const auto startAfresh = [&](const Error& e) {
            // Remove the partial file only when it is ours: a failed create (e.g. "unable to lock file"
            // because another process is writing it) must not delete someone else's work.
            const bool ours = writer != nullptr;
            if (writer) {
                writer.reset();
                std::error_code ec;
                std::filesystem::remove(partial, ec);
            }
            if (!resumed || !ours)
                return false;
            job.log(partial.string() + ": damaged partial file (" + e.what() + "); starting afresh");
            result.status = CompressStatus::Written;
            result.resumedFromRow = 0;
            return true;
        };
        try {
            if (!writer)
                writer = LatentGridWriter::create(partial, meta, grid.tissueFractions(), bandRows);
            // Declared before the run, so that it ends after the run's own buffers are freed.
            const std::shared_ptr<void> keptBuffers = encoder.keepBuffers();
            Run run(slidePath, slide, grid, encoder, *writer, options, job);
            const auto encodeStart = std::chrono::steady_clock::now();
            if (options.pipelined)
                result.readThreads = run.runPipelined();
            else
                run.runSerial();
            result.encodeSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - encodeStart).count();
            result.encodedCells = run.cellCount();
            run.stageCpu(result);
            result.skippedCells = writer->skippedCells();
            writer->finishAndPublish(output);
            writer.reset();
            break;
        } catch (const Cancelled&) {
            if (writer)
                writer->close(); // keep the partial file: the next run resumes it
            throw;
        } catch (const IoError& e) {
            if (!startAfresh(e))
                throw;
        } catch (const FormatError& e) {
            if (!startAfresh(e))
                throw;
        } catch (...) {
            if (writer) {
                writer.reset();
                std::error_code ec;
                std::filesystem::remove(partial, ec);
            }
            throw;
        }
    }
    finishTiming();
    return result;
}

} // namespace nic

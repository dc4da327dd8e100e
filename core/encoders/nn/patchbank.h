#pragma once
// Patch banks: the training and evaluation sets of the encoders, decoded once and stored as one file
// so that training never re-decodes slides or images (no LibTorch in this header).
#include "core/imaging/image.h"
#include "core/base/jobcontext.h"
#include "core/slide/patchgrid.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace nic {

/// P×P RGB patches (uint8, NHWC, contiguous) with a label and an origin per patch.
/// label: index into classNames, or −1 when unlabelled. origin: index into sources (the slide or
/// folder the patch came from) and the grid cell (col, row) on that slide, or −1 when unknown; the
/// contrastive pair sampler uses it to find adjacent locations. A value type; not thread-safe.
///
/// File layout (".nicbank", little-endian): "NICBANK1", uint64 header length, JSON header
/// {patch_size, count, class_names, sources}, then int32 label[count], source[count], col[count],
/// row[count], then count·P·P·3 bytes of pixels.
class PatchBank {
public:
    PatchBank() = default;
    explicit PatchBank(int patchSize);

    int patchSize() const { return patchSize_; }
    std::size_t size() const { return labels_.size(); }
    bool empty() const { return labels_.empty(); }
    std::size_t patchBytes() const { return static_cast<std::size_t>(patchSize_) * static_cast<std::size_t>(patchSize_) * 3U; }
    const std::uint8_t* patch(std::size_t i) const { return pixels_.data() + i * patchBytes(); }
    const std::uint8_t* data() const { return pixels_.data(); }
    int label(std::size_t i) const { return labels_[i]; }
    int source(std::size_t i) const { return sources_[i]; }
    int col(std::size_t i) const { return cols_[i]; }
    int row(std::size_t i) const { return rows_[i]; }
    Image image(std::size_t i) const;

    const std::vector<std::string>& classNames() const { return classNames_; }
    const std::vector<std::string>& sourceNames() const { return sourceNames_; }
    /// Index of a class name, added when new.
    int classIndex(const std::string& name);
    /// Index of a source name, added when new.
    int sourceIndex(const std::string& name);
    void setClassNames(std::vector<std::string> names) { classNames_ = std::move(names); }

    /// Appends a patch (must be P×P RGB; throws InvalidArgument otherwise).
    void add(const Image& patch, int label, int source = -1, int col = -1, int row = -1);
    void add(const std::uint8_t* nhwc, int label, int source = -1, int col = -1, int row = -1);

    /// The patches at `indices`, in that order, with the same class and source names.
    PatchBank subset(const std::vector<std::size_t>& indices) const;
    /// Random split into (rest, part) where part has round(fraction · size) patches, drawn by `seed`
    /// within each label so class proportions are kept.
    std::pair<PatchBank, PatchBank> split(double fraction, std::uint64_t seed) const;
    /// Split into (rest, part) by source: every source (slide or folder) lands wholly on one side, so
    /// no source is in both. Sources are taken in a seeded order and moved to `part` while that brings
    /// part's count of every class closer to round(fraction · count) (stratified as far as whole sources
    /// allow); both sides get at least one source. Throws InvalidArgument when a patch has no source or
    /// the bank has fewer than 2 sources.
    std::pair<PatchBank, PatchBank> splitBySource(double fraction, std::uint64_t seed) const;
    /// Number of distinct sources used by the patches; 0 when any patch has no source.
    std::size_t knownSourceCount() const;
    /// Patches per label (index = label; unlabelled patches are not counted).
    std::vector<std::size_t> labelCounts() const;
    /// Class-balanced copy: every class keeps as many patches as the smallest class has, drawn by `seed`
    /// within each class (the larger classes are undersampled); patches keep their label, source and
    /// cell and their order in the bank. Throws InvalidArgument naming the class when a class has no
    /// patch, or when a patch is unlabelled.
    PatchBank balanced(std::uint64_t seed) const;

    /// Writes the bank atomically. Throws IoError.
    void save(const std::filesystem::path& path) const;
    /// Reads a bank written by save(). Throws IoError (missing, unreadable) or FormatError naming the file
    /// (not a bank, damaged header, truncated).
    static PatchBank load(const std::filesystem::path& path);

private:
    int patchSize_ = 0;
    std::vector<std::string> classNames_;
    std::vector<std::string> sourceNames_;
    std::vector<std::uint8_t> pixels_;
    std::vector<std::int32_t> labels_, sources_, cols_, rows_;
};

/// Builds a bank from a folder of PNG/JPEG images and its labels.csv ("file,label" with a header;
/// file relative to the folder; label a class name or number; classes are numbered in sorted order
/// of their names, numerically when all are integers). Images that are not P×P are resized (area
/// average when shrinking). Throws IoError / FormatError naming the file and line.
PatchBank patchBankFromFolder(const std::filesystem::path& folder, int patchSize, JobContext& ctx = JobContext::none(),
                              const std::filesystem::path& labelsCsv = {});

/// One slide for patchBankFromSlides, with its ASAP annotation XML (empty: none, e.g. a negative slide).
struct SlideBankSource {
    std::filesystem::path slide;
    std::filesystem::path annotations;
};

/// How patches are taken from slides: the tissue cells of the patch grid (core/slide/patchgrid.h,
/// core/slide/tissue.h), labelled from annotation coverage when `labelled`.
struct SlideBankOptions {
    GridSpec grid;                       ///< P, S and the target µm/px (default 128, 128, 0.5)
    std::optional<double> slideMpp;      ///< override for slides without resolution metadata
    double minTissue = 0.5;              ///< minimum tissue fraction of a cell
    bool labelled = true;                ///< classes "normal" (0) and "tumor" (1)
    std::vector<std::string> groups;     ///< annotation groups that mark tumour (empty: every area annotation)
    double tumorCoverage = 0.5;          ///< coverage ≥ this → tumour; 0 → normal; in between → skipped
    int maxPerSlide = 0;                 ///< 0: every eligible cell; else at most that many per slide
    bool keepNeighbours = true;          ///< with maxPerSlide: random anchor cells plus their eligible 4-neighbours
    std::uint64_t seed = 1;              ///< for the subset
};

/// Which of a slide's eligible cells (col, row) patchBankFromSlides keeps when at most `maxCells` may be
/// kept (all when maxCells ≤ 0 or there are no more): anchors in an order drawn from `rng`, each with
/// its eligible 4-neighbours, skipping cells with no eligible neighbour as anchors and never leaving
/// a kept cell without a kept neighbour when another choice exists. Result sorted by (row, col).
std::vector<std::pair<int, int>> sampleCellsWithNeighbours(const std::vector<std::pair<int, int>>& cells, int maxCells,
                                                           std::mt19937_64& rng);

/// Builds a bank from slides: detects tissue, keeps grid cells with enough tissue, labels them from
/// the annotations (cells of slides without annotations are "normal"), reads the patches and records
/// each patch's slide and grid cell (for the contrastive pair sampler). With maxPerSlide and
/// keepNeighbours, the subset of a slide is built from random anchor cells, each taken with its
/// eligible 4-neighbours, until maxPerSlide cells are kept; every kept cell then has a kept neighbour
/// when the slide allows it (the paper's adjacent negatives, core/encoders/nn/pairsampler.h). Without
/// keepNeighbours it is a plain random subset. Logs per slide how many cells were kept. Progress per
/// patch; cancellable.
/// Throws SlideError, AnnotationError, InvalidArgument, IoError, Cancelled.
PatchBank patchBankFromSlides(const std::vector<SlideBankSource>& slides, const SlideBankOptions& options,
                              JobContext& ctx = JobContext::none());

} // namespace nic

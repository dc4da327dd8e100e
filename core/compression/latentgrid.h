#pragma once
// The compressed-slide file (docs/compressed-slide-format.md): an HDF5 file holding the latent grid
// ω' ∈ R^{H × W × C} of one slide (paper Eq. 1), its dihedral variants, the tissue fraction and a
// status flag per cell, and attributes naming the encoder, the grid geometry and the slide.
// LatentGridWriter streams bands of grid rows (memory independent of slide size) into a partial file
// that can be resumed; LatentGridReader validates a finished file and returns a grid as float [C, H, W].
// All HDF5 work goes through core/base/hdf5file.h; neither class is thread-safe (use one thread).
#include "core/imaging/dihedral.h" // the dihedral variants of patches and grids

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace nic {

/// Current version of the file layout (attribute `format_version`). Readers refuse other versions.
inline constexpr int kLatentGridFormatVersion = 1;
/// Value of the attribute `format`.
inline constexpr const char* kLatentGridFormatName = "nic-latent-grid";

/// Element type of the stored grids.
enum class LatentDType { Float16, Float32 };
const char* toString(LatentDType type);
/// Parses "float16"/"f16"/"half" or "float32"/"f32"/"float". Throws InvalidArgument.
LatentDType parseLatentDType(const std::string& text);

/// Values of the per-cell `cell_flags` dataset.
enum CellFlag : std::uint8_t {
    kCellBackground = 0, ///< not encoded (tissue fraction below the threshold); grid is exactly 0
    kCellEncoded = 1,    ///< encoded
    kCellUnreadable = 2, ///< tissue, but the slide region could not be read (--skip-bad-regions); grid is 0
};

/// Everything recorded about a compressed slide (attributes of the root group).
struct LatentGridMeta {
    // encoder
    std::string encoderName;
    std::string encoderHash;
    int codeSize = 0;   ///< C
    // grid geometry
    int patchSize = 0;  ///< P (target-resolution pixels)
    int stride = 0;     ///< S (target-resolution pixels)
    double targetMpp = 0.0;
    double slideMpp = 0.0;       ///< level-0 µm/px used
    std::string slideMppSource;  ///< "slide" (from the file's metadata) or "override" (--mpp)
    int level = 0;               ///< pyramid level read
    double levelDownsample = 1.0;
    std::int64_t readSize = 0;   ///< level pixels read per patch side (resampled to P when != P)
    std::int64_t level0Width = 0;
    std::int64_t level0Height = 0;
    int rows = 0;                ///< H = ceil(level0Height / (S·f))
    int cols = 0;                ///< W = ceil(level0Width / (S·f))
    // slide
    std::string slideFile;       ///< file name (no directory)
    std::string slideQuickHash;  ///< openslide.quickhash-1 ("" when the format has none)
    // processing
    double tissueThreshold = 0.5;
    int augment = 1;             ///< 1 (identity only) or 8 (all dihedral variants)
    LatentDType dtype = LatentDType::Float16;
    std::int64_t skippedCells = 0; ///< tissue cells left empty because their region was unreadable
    std::int64_t encodedCells = 0;
    // written by the writer
    std::string softwareVersion;
    int formatVersion = kLatentGridFormatVersion;

    /// Empty when `other` was made with the same parameters (encoder identity, geometry, slide,
    /// threshold, augmentation, dtype), else a description of the first difference
    /// ("encoder hash differs: abc vs def"). Counters and software version are not compared.
    std::string parameterMismatch(const LatentGridMeta& other) const;
};

/// Reads the metadata of a compressed-slide file (finished or partial). Throws IoError naming the file
/// when it is missing or HDF5 cannot read it, FormatError naming the file when it is not HDF5, not a
/// compressed slide, of another format version, or inconsistent.
LatentGridMeta readLatentGridMeta(const std::filesystem::path& path);

/// A float grid in channel-planar layout [C, H, W] (what a CNN takes).
struct LatentTensor {
    int channels = 0;
    int height = 0;
    int width = 0;
    std::vector<float> data; ///< index (c·H + y)·W + x
    float at(int c, int y, int x) const {
        return data[(static_cast<std::size_t>(c) * static_cast<std::size_t>(height) + static_cast<std::size_t>(y)) *
                        static_cast<std::size_t>(width) +
                    static_cast<std::size_t>(x)];
    }
};

/// Streams a latent grid into an HDF5 file in bands of rows. The file is a *partial* file until
/// finish(): the attribute `rows_done` (updated and flushed after each band) says how many grid rows
/// are final, so a killed run can resume from it. Throws IoError naming the file on HDF5 failures.
class LatentGridWriter {
public:
    /// Creates (truncates) `path` with all datasets, the attributes of `meta` and the tissue fractions
    /// (rows × cols, row-major). `bandRows` (> 0) is the number of grid rows per written band; it also
    /// sets the chunk height.
    static std::unique_ptr<LatentGridWriter> create(const std::filesystem::path& path, const LatentGridMeta& meta,
                                                    const std::vector<float>& tissueFractions, int bandRows);
    /// Reopens a partial file for appending. Throws IoError when the file cannot be opened, FormatError
    /// when it is not a partial compressed slide, is already complete, or its parameters, tissue
    /// fractions or band height differ from `meta`/`tissueFractions` (the message says which); callers
    /// then start afresh.
    static std::unique_ptr<LatentGridWriter> resume(const std::filesystem::path& path, const LatentGridMeta& meta,
                                                    const std::vector<float>& tissueFractions, int bandRows);
    ~LatentGridWriter();
    LatentGridWriter(const LatentGridWriter&) = delete;
    LatentGridWriter& operator=(const LatentGridWriter&) = delete;

    const std::filesystem::path& path() const;
    const LatentGridMeta& meta() const;
    int rowsDone() const;
    int bandRows() const;
    /// Number of unreadable cells already written (carried over when resuming).
    std::int64_t skippedCells() const;
    std::int64_t encodedCells() const;

    /// Writes grid rows [rowsDone(), rowsDone() + count). `variants[k]` holds, for variant k (0 ≤ k <
    /// augment), count × cols × C floats in *identity* cell order: element ((r·cols + c)·C + ch) is the
    /// encoding of transform k of cell (rowsDone() + r, c)'s patch; the writer places it at the
    /// transformed position. `flags` holds count × cols CellFlag values. Flushes, then advances rows_done.
    void writeBand(int count, const std::vector<const float*>& variants, const std::uint8_t* flags);

    /// Marks the file complete (all rows written), closes it and renames it to `target` (fsync + rename,
    /// atomic on one filesystem). Throws InvalidArgument when rows are missing, IoError on failure.
    void finishAndPublish(const std::filesystem::path& target);
    /// Closes the file without finishing (the partial file stays resumable).
    void close();

private:
    struct Impl;
    explicit LatentGridWriter(std::unique_ptr<Impl> impl);
    /// Writes the attributes and creates the datasets of a new file (create()'s work after the file exists).
    static void initialise(Impl& impl, const std::vector<float>& tissueFractions);
    std::unique_ptr<Impl> impl_;
};

/// Reads a finished compressed-slide file. The constructor validates it (format name and version,
/// completeness, dataset presence, shapes and types against the attributes) and throws FormatError
/// (IoError when missing or unreadable) with a message naming the file and the problem. Datasets are read on demand.
class LatentGridReader {
public:
    explicit LatentGridReader(const std::filesystem::path& path);
    ~LatentGridReader();
    LatentGridReader(LatentGridReader&&) noexcept;
    LatentGridReader& operator=(LatentGridReader&&) noexcept;

    const std::filesystem::path& path() const;
    const LatentGridMeta& meta() const;
    int variantCount() const { return meta().augment; }

    /// Variant k (0 = identity) as float [C, H_k, W_k]; float16 files are converted exactly.
    LatentTensor grid(int variant = 0) const;
    /// Variant k in the stored layout [H_k, W_k, C], row-major.
    std::vector<float> gridHwc(int variant = 0) const;
    /// Tissue fraction per cell, [H, W] row-major.
    std::vector<float> tissueFractions() const;
    /// CellFlag per cell, [H, W] row-major.
    std::vector<std::uint8_t> cellFlags() const;

    /// HDF5 dataset name of variant k: "grid" for 0, "dihedral/<k>" otherwise.
    static std::string datasetName(int variant);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace nic

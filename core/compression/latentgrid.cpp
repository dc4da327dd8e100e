#include "core/compression/latentgrid.h"

#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/base/untrustedfileprobe.h"
#include "core/base/version.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

namespace nic {

const char* toString(LatentDType type) { return type == LatentDType::Float16 ? "float16" : "float32"; }

LatentDType parseLatentDType(const std::string& text) {
    if (text == "float16" || text == "f16" || text == "half")
        return LatentDType::Float16;
    if (text == "float32" || text == "f32" || text == "float")
        return LatentDType::Float32;
    throw InvalidArgument("unknown grid dtype '" + text + "' (use float16 or float32)");
}

// ---------------------------------------------------------------------------------------------------
// metadata

std::string LatentGridMeta::parameterMismatch(const LatentGridMeta& o) const {
    auto str = [](const std::string& what, const std::string& a, const std::string& b) {
        return a == b ? std::string() : what + " differs: '" + a + "' vs '" + b + "'";
    };
    auto num = [](const std::string& what, double a, double b) {
        return a == b ? std::string() : what + " differs: " + std::to_string(a) + " vs " + std::to_string(b);
    };
    for (const std::string& m :
         {str("encoder name", encoderName, o.encoderName), str("encoder hash", encoderHash, o.encoderHash),
          num("code size", codeSize, o.codeSize), num("patch size", patchSize, o.patchSize),
          num("stride", stride, o.stride), num("target mpp", targetMpp, o.targetMpp),
          num("slide mpp", slideMpp, o.slideMpp), num("level", level, o.level),
          num("read size", static_cast<double>(readSize), static_cast<double>(o.readSize)),
          num("level-0 width", static_cast<double>(level0Width), static_cast<double>(o.level0Width)),
          num("level-0 height", static_cast<double>(level0Height), static_cast<double>(o.level0Height)),
          num("grid rows", rows, o.rows), num("grid cols", cols, o.cols),
          str("slide file", slideFile, o.slideFile), str("slide quickhash", slideQuickHash, o.slideQuickHash),
          num("tissue threshold", tissueThreshold, o.tissueThreshold), num("augment", augment, o.augment),
          str("dtype", toString(dtype), toString(o.dtype))})
        if (!m.empty())
            return m;
    return {};
}

namespace {

void writeMeta(Hdf5Object& root, const LatentGridMeta& m) {
    root.setStringAttribute("format", kLatentGridFormatName);
    root.setIntAttribute("format_version", m.formatVersion);
    root.setStringAttribute("software_version", m.softwareVersion);
    root.setStringAttribute("encoder_name", m.encoderName);
    root.setStringAttribute("encoder_hash", m.encoderHash);
    root.setIntAttribute("code_size", m.codeSize);
    root.setIntAttribute("patch_size", m.patchSize);
    root.setIntAttribute("stride", m.stride);
    root.setDoubleAttribute("target_mpp", m.targetMpp);
    root.setDoubleAttribute("slide_mpp", m.slideMpp);
    root.setStringAttribute("slide_mpp_source", m.slideMppSource);
    root.setIntAttribute("level", m.level);
    root.setDoubleAttribute("level_downsample", m.levelDownsample);
    root.setIntAttribute("read_size", m.readSize);
    root.setIntAttribute("level0_width", m.level0Width);
    root.setIntAttribute("level0_height", m.level0Height);
    root.setIntAttribute("grid_rows", m.rows);
    root.setIntAttribute("grid_cols", m.cols);
    root.setStringAttribute("slide_file", m.slideFile);
    root.setStringAttribute("slide_quickhash", m.slideQuickHash);
    root.setDoubleAttribute("tissue_threshold", m.tissueThreshold);
    root.setIntAttribute("augment", m.augment);
    root.setStringAttribute("dtype", toString(m.dtype));
    root.setStringAttribute("dihedral_order",
                            "k = r + 4*m: m=1 mirrors left-right first, then rotate r*90 deg counter-clockwise "
                            "(numpy: np.rot90(np.fliplr(x) if m else x, r))");
    root.setIntAttribute("skipped_cells", m.skippedCells);
    root.setIntAttribute("encoded_cells", m.encodedCells);
}

LatentGridMeta readMeta(const Hdf5File& f) {
    const std::string file = f.path().string();
    if (!f.hasAttribute("format"))
        throw FormatError(file + ": not a compressed slide (no 'format' attribute; expected '" +
                          std::string(kLatentGridFormatName) + "')");
    const std::string format = f.stringAttribute("format");
    if (format != kLatentGridFormatName)
        throw FormatError(file + ": not a compressed slide (format '" + format + "', expected '" +
                          std::string(kLatentGridFormatName) + "')");
    LatentGridMeta m;
    m.formatVersion = static_cast<int>(f.intAttribute("format_version"));
    if (m.formatVersion != kLatentGridFormatVersion)
        throw FormatError(file + ": unsupported compressed-slide format version " + std::to_string(m.formatVersion) +
                          " (this build reads version " + std::to_string(kLatentGridFormatVersion) + ")");
    m.softwareVersion = f.stringAttribute("software_version");
    m.encoderName = f.stringAttribute("encoder_name");
    m.encoderHash = f.stringAttribute("encoder_hash");
    m.codeSize = static_cast<int>(f.intAttribute("code_size"));
    m.patchSize = static_cast<int>(f.intAttribute("patch_size"));
    m.stride = static_cast<int>(f.intAttribute("stride"));
    m.targetMpp = f.doubleAttribute("target_mpp");
    m.slideMpp = f.doubleAttribute("slide_mpp");
    m.slideMppSource = f.stringAttribute("slide_mpp_source");
    m.level = static_cast<int>(f.intAttribute("level"));
    m.levelDownsample = f.doubleAttribute("level_downsample");
    m.readSize = f.intAttribute("read_size");
    m.level0Width = f.intAttribute("level0_width");
    m.level0Height = f.intAttribute("level0_height");
    m.rows = static_cast<int>(f.intAttribute("grid_rows"));
    m.cols = static_cast<int>(f.intAttribute("grid_cols"));
    m.slideFile = f.stringAttribute("slide_file");
    m.slideQuickHash = f.stringAttribute("slide_quickhash");
    m.tissueThreshold = f.doubleAttribute("tissue_threshold");
    m.augment = static_cast<int>(f.intAttribute("augment"));
    const std::string dtype = f.stringAttribute("dtype");
    if (dtype != "float16" && dtype != "float32")
        throw FormatError(file + ": unknown grid dtype '" + dtype + "'");
    m.dtype = parseLatentDType(dtype);
    m.skippedCells = f.intAttribute("skipped_cells");
    m.encodedCells = f.intAttribute("encoded_cells");
    if (m.rows < 0 || m.cols < 0 || m.codeSize <= 0 || (m.augment != 1 && m.augment != 8))
        throw FormatError(file + ": inconsistent attributes (grid " + std::to_string(m.rows) + " x " +
                          std::to_string(m.cols) + ", code size " + std::to_string(m.codeSize) + ", augment " +
                          std::to_string(m.augment) + ")");
    // A few KB of HDF5 can declare never-written datasets of any size: refuse grids no slide produces
    // (a 2-Mpx-wide slide at 16 px stride has 1.6·10^10 cells) before a reader allocates them, and keep
    // rows × cols × code size within int64.
    constexpr std::int64_t kMaxCells = std::int64_t{1} << 31;
    constexpr std::int64_t kMaxValues = std::int64_t{1} << 32;
    const std::int64_t cells = std::int64_t{m.rows} * m.cols;
    if (cells > kMaxCells || (cells > 0 && m.codeSize > kMaxValues / cells))
        throw FormatError(file + ": grid of " + std::to_string(m.rows) + " x " + std::to_string(m.cols) + " cells x " +
                          std::to_string(m.codeSize) + " channels is out of range (at most " +
                          std::to_string(kMaxCells) + " cells and " + std::to_string(kMaxValues) + " values)");
    return m;
}

/// Checks a dataset's type and shape against what the attributes promise; FormatError naming the file.
void expectDataset(const Hdf5Dataset& d, H5Type type, const std::vector<std::int64_t>& shape) {
    if (d.type() != type)
        throw FormatError(d.filePath().string() + ": dataset '" + d.objectName() + "' has type " + toString(d.type()) +
                          ", expected " + toString(type));
    if (d.shape() != shape)
        throw FormatError(d.filePath().string() + ": dataset '" + d.objectName() + "' has shape " +
                          shapeToString(d.shape()) + ", expected " + shapeToString(shape) + " from its attributes");
}

H5Type storedType(LatentDType t) { return t == LatentDType::Float16 ? H5Type::Float16 : H5Type::Float32; }

std::vector<std::int64_t> variantShape(const LatentGridMeta& m, int k) {
    const auto [h, w] = dihedralShape(k, m.rows, m.cols);
    return {h, w, m.codeSize};
}

/// Chunk shape [bandRows, chunkCols, C] (transposed for variants that swap axes), about 64 KiB.
std::vector<std::int64_t> chunkShape(const LatentGridMeta& m, int k, int bandRows) {
    const std::int64_t elem = m.dtype == LatentDType::Float16 ? 2 : 4;
    const std::int64_t along = std::clamp<std::int64_t>((64 * 1024) / (std::int64_t{bandRows} * m.codeSize * elem),
                                                        8, 1024);
    if ((k % 4) % 2 == 1)
        return {along, bandRows, m.codeSize};
    return {bandRows, along, m.codeSize};
}

void fsyncPath(const std::filesystem::path& p, bool directory) {
    const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) {
        if (directory)
            return; // best effort
        throw IoError(p.string() + ": cannot open for sync: " + std::strerror(errno));
    }
    const int r = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (r != 0 && !directory)
        throw IoError(p.string() + ": cannot write: " + std::strerror(err));
}

} // namespace

LatentGridMeta readLatentGridMeta(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path))
        throw IoError(path.string() + ": no such file");
    UntrustedFileProbe::check(UntrustedKind::LatentGrid, path);
    if (!Hdf5File::isHdf5(path))
        throw FormatError(path.string() + ": not an HDF5 file");
    const Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    return readMeta(f);
}

// ---------------------------------------------------------------------------------------------------
// writer

struct LatentGridWriter::Impl {
    std::filesystem::path path;
    LatentGridMeta meta;
    int bandRows = 0;
    int rowsDone = 0;
    std::optional<Hdf5File> file;
    std::vector<Hdf5Dataset> grids;
    Hdf5Dataset flags;
    std::vector<float> block;
    std::vector<std::uint16_t> half;

    std::size_t cacheBytes(int k) const {
        // Holds one band of chunks (plus slack), so the reversed bands of 180° variants and the
        // partially covered edge chunks are merged in memory, not read back from disk.
        const auto c = chunkShape(meta, k, bandRows);
        const std::int64_t elem = meta.dtype == LatentDType::Float16 ? 2 : 4;
        const auto [h, w] = dihedralShape(k, meta.rows, meta.cols);
        const std::int64_t across = (k % 4) % 2 == 1 ? (h + c[0] - 1) / c[0] : (w + c[1] - 1) / c[1];
        return static_cast<std::size_t>((across + 1) * 2 * c[0] * c[1] * c[2] * elem);
    }

    void openDatasets() {
        grids.clear();
        for (int k = 0; k < meta.augment; ++k) {
            grids.push_back(file->openDataset(LatentGridReader::datasetName(k), cacheBytes(k)));
            expectDataset(grids.back(), storedType(meta.dtype), variantShape(meta, k));
        }
        flags = file->openDataset("cell_flags");
        expectDataset(flags, H5Type::UInt8, {meta.rows, meta.cols});
    }
};

LatentGridWriter::LatentGridWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LatentGridWriter::~LatentGridWriter() {
    try {
        close();
    } catch (...) { // NOLINT: destructors must not throw; close() reports errors when called explicitly
    }
}

std::unique_ptr<LatentGridWriter> LatentGridWriter::create(const std::filesystem::path& path,
                                                           const LatentGridMeta& meta,
                                                           const std::vector<float>& tissueFractions, int bandRows) {
    if (bandRows <= 0)
        throw InvalidArgument("latent grid: band rows must be positive");
    if (meta.augment != 1 && meta.augment != 8)
        throw InvalidArgument("latent grid: augment must be 1 or 8");
    if (tissueFractions.size() != static_cast<std::size_t>(meta.rows) * static_cast<std::size_t>(meta.cols))
        throw InvalidArgument("latent grid: tissue fractions do not match the grid size");
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->meta = meta;
    impl->meta.softwareVersion = kVersion;
    impl->meta.formatVersion = kLatentGridFormatVersion;
    impl->meta.skippedCells = 0;
    impl->meta.encodedCells = 0;
    impl->bandRows = bandRows;
    impl->file.emplace(path, Hdf5File::Mode::Create);
    // From here the file is ours (created and truncated): if filling it in fails (disk full, a file-size
    // limit), remove it, so nothing half-written is left for a later run to mistake for a partial file.
    try {
        initialise(*impl, tissueFractions);
    } catch (...) {
        impl.reset();
        std::error_code ec;
        std::filesystem::remove(path, ec);
        throw;
    }
    return std::unique_ptr<LatentGridWriter>(new LatentGridWriter(std::move(impl)));
}

void LatentGridWriter::initialise(Impl& impl, const std::vector<float>& tissueFractions) {
    const LatentGridMeta& meta = impl.meta;
    const int bandRows = impl.bandRows;
    Hdf5File& f = *impl.file;
    writeMeta(f, impl.meta);
    f.setIntAttribute("band_rows", bandRows);
    f.setIntAttribute("rows_done", 0);
    f.setIntAttribute("complete", 0);
    for (int k = 0; k < meta.augment; ++k) {
        Hdf5Layout layout;
        layout.chunk = chunkShape(impl.meta, k, bandRows);
        layout.chunkCacheBytes = impl.cacheBytes(k);
        auto d = f.createDataset(LatentGridReader::datasetName(k), storedType(meta.dtype), variantShape(meta, k),
                                 layout);
        d.setIntAttribute("dihedral_index", k);
        d.setStringAttribute("transform", dihedralName(k));
    }
    Hdf5Layout small;
    small.chunk = {std::min(std::max(meta.rows, 1), 256), std::min(std::max(meta.cols, 1), 256)};
    auto tissue = f.createDataset("tissue_fraction", H5Type::Float32, {meta.rows, meta.cols}, small);
    if (!tissueFractions.empty())
        tissue.write({0, 0}, {meta.rows, meta.cols}, H5Type::Float32, tissueFractions.data());
    tissue.close();
    f.createDataset("cell_flags", H5Type::UInt8, {meta.rows, meta.cols}, small).close();
    impl.openDatasets();
    f.flush();
}

std::unique_ptr<LatentGridWriter> LatentGridWriter::resume(const std::filesystem::path& path,
                                                           const LatentGridMeta& meta,
                                                           const std::vector<float>& tissueFractions, int bandRows) {
    if (!Hdf5File::isHdf5(path))
        throw FormatError(path.string() + ": not an HDF5 file");
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->file.emplace(path, Hdf5File::Mode::ReadWrite);
    Hdf5File& f = *impl->file;
    impl->meta = readMeta(f);
    if (const auto why = meta.parameterMismatch(impl->meta); !why.empty())
        throw FormatError(path.string() + ": partial output made with other parameters (" + why + ")");
    if (f.intAttribute("complete") != 0)
        throw FormatError(path.string() + ": already complete");
    impl->bandRows = static_cast<int>(f.intAttribute("band_rows"));
    if (impl->bandRows != bandRows)
        throw FormatError(path.string() + ": partial output written in bands of " + std::to_string(impl->bandRows) +
                          " rows, not " + std::to_string(bandRows));
    impl->rowsDone = static_cast<int>(f.intAttribute("rows_done"));
    if (impl->rowsDone < 0 || impl->rowsDone > impl->meta.rows)
        throw FormatError(path.string() + ": invalid rows_done " + std::to_string(impl->rowsDone));
    const auto tissue = f.openDataset("tissue_fraction");
    expectDataset(tissue, H5Type::Float32, {impl->meta.rows, impl->meta.cols});
    std::vector<float> stored(tissueFractions.size());
    if (!stored.empty())
        tissue.read({0, 0}, {impl->meta.rows, impl->meta.cols}, H5Type::Float32, stored.data());
    if (stored.size() != tissueFractions.size() ||
        std::memcmp(stored.data(), tissueFractions.data(), stored.size() * sizeof(float)) != 0)
        throw FormatError(path.string() + ": partial output has a different tissue mask");
    impl->openDatasets();
    // The writer's own software version is what finishes the file.
    impl->meta.softwareVersion = kVersion;
    f.setStringAttribute("software_version", kVersion);
    return std::unique_ptr<LatentGridWriter>(new LatentGridWriter(std::move(impl)));
}

const std::filesystem::path& LatentGridWriter::path() const { return impl_->path; }
const LatentGridMeta& LatentGridWriter::meta() const { return impl_->meta; }
int LatentGridWriter::rowsDone() const { return impl_->rowsDone; }
int LatentGridWriter::bandRows() const { return impl_->bandRows; }
std::int64_t LatentGridWriter::skippedCells() const { return impl_->meta.skippedCells; }
std::int64_t LatentGridWriter::encodedCells() const { return impl_->meta.encodedCells; }

void LatentGridWriter::writeBand(int count, const std::vector<const float*>& variants, const std::uint8_t* flags) {
    Impl& d = *impl_;
    if (!d.file)
        throw InvalidArgument(d.path.string() + ": writer is closed");
    const LatentGridMeta& m = d.meta;
    if (count <= 0 || d.rowsDone + count > m.rows)
        throw InvalidArgument(d.path.string() + ": band of " + std::to_string(count) + " rows at row " +
                              std::to_string(d.rowsDone) + " does not fit a grid of " + std::to_string(m.rows) +
                              " rows");
    if (static_cast<int>(variants.size()) != m.augment)
        throw InvalidArgument(d.path.string() + ": " + std::to_string(variants.size()) + " variants given, " +
                              std::to_string(m.augment) + " expected");
    const int r0 = d.rowsDone;
    const auto C = static_cast<std::size_t>(m.codeSize);
    const auto cols = static_cast<std::size_t>(m.cols);
    const std::size_t n = static_cast<std::size_t>(count) * cols * C;
    if (m.cols > 0) {
        for (int k = 0; k < m.augment; ++k) {
            // The band's rectangle after transform k, from two opposite corners.
            const auto a = dihedralMap(k, r0, 0, m.rows, m.cols);
            const auto b = dihedralMap(k, r0 + count - 1, m.cols - 1, m.rows, m.cols);
            const int rowMin = std::min(a.first, b.first), rowMax = std::max(a.first, b.first);
            const int colMin = std::min(a.second, b.second), colMax = std::max(a.second, b.second);
            const auto rectCols = static_cast<std::size_t>(colMax - colMin + 1);
            d.block.resize(n);
            const float* src = variants[static_cast<std::size_t>(k)];
            for (int r = 0; r < count; ++r)
                for (int c = 0; c < m.cols; ++c) {
                    const auto [r2, c2] = dihedralMap(k, r0 + r, c, m.rows, m.cols);
                    const std::size_t dst =
                        (static_cast<std::size_t>(r2 - rowMin) * rectCols + static_cast<std::size_t>(c2 - colMin)) * C;
                    std::memcpy(d.block.data() + dst,
                                src + (static_cast<std::size_t>(r) * cols + static_cast<std::size_t>(c)) * C,
                                C * sizeof(float));
                }
            const std::vector<std::int64_t> offset{rowMin, colMin, 0};
            const std::vector<std::int64_t> extent{rowMax - rowMin + 1, colMax - colMin + 1, m.codeSize};
            if (m.dtype == LatentDType::Float16) {
                d.half.resize(n);
                floatsToHalves(d.block.data(), d.half.data(), n);
                d.grids[static_cast<std::size_t>(k)].write(offset, extent, H5Type::Float16, d.half.data());
            } else {
                d.grids[static_cast<std::size_t>(k)].write(offset, extent, H5Type::Float32, d.block.data());
            }
        }
        d.flags.write({r0, 0}, {count, m.cols}, H5Type::UInt8, flags);
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(count) * cols; ++i) {
        d.meta.encodedCells += flags[i] == kCellEncoded ? 1 : 0;
        d.meta.skippedCells += flags[i] == kCellUnreadable ? 1 : 0;
    }
    // Data first, then the counters that declare it final: a crash between the two flushes only
    // loses this band.
    d.file->flush();
    d.rowsDone += count;
    d.file->setIntAttribute("skipped_cells", d.meta.skippedCells);
    d.file->setIntAttribute("encoded_cells", d.meta.encodedCells);
    d.file->setIntAttribute("rows_done", d.rowsDone);
    d.file->flush();
}

void LatentGridWriter::finishAndPublish(const std::filesystem::path& target) {
    Impl& d = *impl_;
    if (!d.file)
        throw InvalidArgument(d.path.string() + ": writer is closed");
    if (d.rowsDone != d.meta.rows)
        throw InvalidArgument(d.path.string() + ": cannot finish: " + std::to_string(d.rowsDone) + " of " +
                              std::to_string(d.meta.rows) + " rows written");
    d.file->setIntAttribute("complete", 1);
    d.grids.clear();
    d.flags.close();
    Hdf5File f = std::move(*d.file);
    d.file.reset();
    f.close();
    fsyncPath(d.path, false);
    if (::rename(d.path.c_str(), target.c_str()) != 0)
        throw IoError(target.string() + ": cannot rename " + d.path.string() + " into place: " + std::strerror(errno));
    fsyncPath(target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path(), true);
    UntrustedFileProbe::trust(target);
}

void LatentGridWriter::close() {
    Impl& d = *impl_;
    if (!d.file)
        return;
    d.grids.clear();
    d.flags.close();
    Hdf5File f = std::move(*d.file);
    d.file.reset();
    f.close();
}

// ---------------------------------------------------------------------------------------------------
// reader

struct LatentGridReader::Impl {
    std::filesystem::path path;
    std::optional<Hdf5File> file;
    LatentGridMeta meta;
};

std::string LatentGridReader::datasetName(int variant) {
    checkDihedralIndex(variant);
    return variant == 0 ? std::string("grid") : "dihedral/" + std::to_string(variant);
}

LatentGridReader::LatentGridReader(const std::filesystem::path& path) : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    if (!std::filesystem::exists(path))
        throw IoError(path.string() + ": no such file");
    UntrustedFileProbe::check(UntrustedKind::LatentGrid, path);
    if (!Hdf5File::isHdf5(path))
        throw FormatError(path.string() + ": not an HDF5 file");
    impl_->file.emplace(path, Hdf5File::Mode::ReadOnly);
    const Hdf5File& f = *impl_->file;
    impl_->meta = readMeta(f);
    const LatentGridMeta& m = impl_->meta;
    if (f.intAttribute("complete") != 1)
        throw FormatError(path.string() + ": incomplete compressed slide (" +
                          std::to_string(f.intAttribute("rows_done")) + " of " + std::to_string(m.rows) +
                          " rows written; rerun nic compress to resume it)");
    for (int k = 0; k < m.augment; ++k)
        expectDataset(f.openDataset(datasetName(k)), storedType(m.dtype), variantShape(m, k));
    expectDataset(f.openDataset("tissue_fraction"), H5Type::Float32, {m.rows, m.cols});
    expectDataset(f.openDataset("cell_flags"), H5Type::UInt8, {m.rows, m.cols});
}

LatentGridReader::~LatentGridReader() = default;
LatentGridReader::LatentGridReader(LatentGridReader&&) noexcept = default;
LatentGridReader& LatentGridReader::operator=(LatentGridReader&&) noexcept = default;

const std::filesystem::path& LatentGridReader::path() const { return impl_->path; }
const LatentGridMeta& LatentGridReader::meta() const { return impl_->meta; }

std::vector<float> LatentGridReader::gridHwc(int variant) const {
    const LatentGridMeta& m = impl_->meta;
    if (variant < 0 || variant >= m.augment)
        throw InvalidArgument(impl_->path.string() + ": no dihedral variant " + std::to_string(variant) + " (file has " +
                              std::to_string(m.augment) + ")");
    if (variant > 0) // the constructor's probe checked variant 0 only (core/base/untrustedfileprobe.h)
        UntrustedFileProbe::check(UntrustedKind::LatentGridVariants, impl_->path);
    const auto d = impl_->file->openDataset(datasetName(variant));
    const auto shape = variantShape(m, variant);
    const auto n = static_cast<std::size_t>(shape[0] * shape[1] * shape[2]);
    std::vector<float> out(n);
    if (n == 0)
        return out;
    if (m.dtype == LatentDType::Float16) {
        std::vector<std::uint16_t> half(n);
        d.read({0, 0, 0}, shape, H5Type::Float16, half.data());
        halvesToFloats(half.data(), out.data(), n);
    } else {
        d.read({0, 0, 0}, shape, H5Type::Float32, out.data());
    }
    return out;
}

LatentTensor LatentGridReader::grid(int variant) const {
    const std::vector<float> hwc = gridHwc(variant);
    const auto shape = variantShape(impl_->meta, variant);
    LatentTensor t;
    t.height = static_cast<int>(shape[0]);
    t.width = static_cast<int>(shape[1]);
    t.channels = static_cast<int>(shape[2]);
    const auto H = static_cast<std::size_t>(t.height), W = static_cast<std::size_t>(t.width),
               C = static_cast<std::size_t>(t.channels);
    t.data.resize(hwc.size());
    for (std::size_t y = 0; y < H; ++y)
        for (std::size_t x = 0; x < W; ++x)
            for (std::size_t c = 0; c < C; ++c)
                t.data[(c * H + y) * W + x] = hwc[(y * W + x) * C + c];
    return t;
}

std::vector<float> LatentGridReader::tissueFractions() const {
    const LatentGridMeta& m = impl_->meta;
    std::vector<float> out(static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols));
    if (!out.empty())
        impl_->file->openDataset("tissue_fraction").read({0, 0}, {m.rows, m.cols}, H5Type::Float32, out.data());
    return out;
}

std::vector<std::uint8_t> LatentGridReader::cellFlags() const {
    const LatentGridMeta& m = impl_->meta;
    std::vector<std::uint8_t> out(static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols));
    if (!out.empty())
        impl_->file->openDataset("cell_flags").read({0, 0}, {m.rows, m.cols}, H5Type::UInt8, out.data());
    return out;
}

} // namespace nic

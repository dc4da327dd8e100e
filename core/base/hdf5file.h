#pragma once
// The only code in core/ that calls the HDF5 C API (house style #2). RAII handles, errors turned into
// nic::IoError carrying HDF5's own innermost cause (found with H5Ewalk2) and the file name, and the
// "HDF5-DIAG" stderr dumps silenced on every thread that uses this wrapper. No HDF5 header leaks out.
//
// Float16: HDF5 1.10 has no half type and its own float32 → half conversion is wrong (it rounds ties
// away from zero and halves values whose rounding carries into the exponent; h5py issue #819). So this
// wrapper never lets HDF5 convert to float16: callers convert with floatToHalf() (round to nearest,
// ties to even, bit-identical to numpy's astype(float16)) and write/read raw half bits.
//
// Thread-safety: Debian's HDF5 is thread-safe but serialised by one global lock. Objects of these
// classes must not be shared between threads without external locking; keep all HDF5 work on one thread.
#include "core/base/error.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace nic {

/// IEEE binary16 bits of `value`, rounded to nearest with ties to even (numpy's float16 rules:
/// overflow → ±inf, NaN stays NaN, underflow → subnormal or ±0).
std::uint16_t floatToHalf(float value);
/// The float32 value of IEEE binary16 bits (exact).
float halfToFloat(std::uint16_t bits);
/// Array forms of the two conversions.
void floatsToHalves(const float* in, std::uint16_t* out, std::size_t n);
void halvesToFloats(const std::uint16_t* in, float* out, std::size_t n);

/// Element types this wrapper reads and writes. Float16 is IEEE binary16 (h5py reads it as float16).
enum class H5Type { Float16, Float32, Float64, Int32, Int64, UInt8, String, Other };
/// "float16", "float32", ... ("other" for a type this wrapper does not handle).
const char* toString(H5Type type);

/// "[2, 3, 4]": a dataset shape for messages.
std::string shapeToString(const std::vector<std::int64_t>& shape);

/// An owned HDF5 identifier, closed with the right H5?close when destroyed. Move-only.
class Hdf5Handle {
public:
    Hdf5Handle() = default;
    explicit Hdf5Handle(std::int64_t id) : id_(id) {}
    ~Hdf5Handle();
    Hdf5Handle(Hdf5Handle&& other) noexcept : id_(other.release()) {}
    Hdf5Handle& operator=(Hdf5Handle&& other) noexcept;
    Hdf5Handle(const Hdf5Handle&) = delete;
    Hdf5Handle& operator=(const Hdf5Handle&) = delete;

    std::int64_t id() const { return id_; }
    bool valid() const { return id_ >= 0; }
    std::int64_t release() {
        const auto id = id_;
        id_ = -1;
        return id;
    }
    /// Closes now; returns false when HDF5 reported an error (e.g. a failed flush on a file).
    bool close();

private:
    std::int64_t id_ = -1;
};

/// Something that carries attributes: the file's root group or a dataset. Attribute writers replace an
/// existing attribute of the same name. Readers throw FormatError naming the file, the object and the
/// attribute when it is missing or has an incompatible type (IoError when HDF5 fails to read it).
class Hdf5Object {
public:
    bool hasAttribute(const std::string& name) const;
    std::vector<std::string> attributeNames() const;

    void setStringAttribute(const std::string& name, const std::string& value);
    void setIntAttribute(const std::string& name, std::int64_t value);
    void setDoubleAttribute(const std::string& name, double value);
    void setIntArrayAttribute(const std::string& name, const std::vector<std::int64_t>& values);
    void setDoubleArrayAttribute(const std::string& name, const std::vector<double>& values);

    /// Fixed-length or variable-length string attributes.
    std::string stringAttribute(const std::string& name) const;
    /// Any integer attribute with one element.
    std::int64_t intAttribute(const std::string& name) const;
    /// Any integer or float attribute with one element.
    double doubleAttribute(const std::string& name) const;
    std::vector<std::int64_t> intArrayAttribute(const std::string& name) const;
    std::vector<double> doubleArrayAttribute(const std::string& name) const;

    /// File the object lives in (for messages).
    const std::filesystem::path& filePath() const { return file_; }
    /// HDF5 path of the object ("/" for the root group).
    const std::string& objectName() const { return name_; }
    std::int64_t id() const { return handle_.id(); }

protected:
    Hdf5Object() = default;
    Hdf5Object(Hdf5Handle handle, std::filesystem::path file, std::string name)
        : handle_(std::move(handle)), file_(std::move(file)), name_(std::move(name)) {}
    [[noreturn]] void fail(const std::string& what) const;
    std::string where() const;

    Hdf5Handle handle_;
    std::filesystem::path file_;
    std::string name_;
};

/// An n-dimensional dataset. Reads and writes take a hyperslab (offset, count per dimension) and a
/// memory buffer of `memType` elements, row-major. Writing Float32 memory into a Float16 dataset is
/// refused (InvalidArgument): convert with floatsToHalves() and write Float16.
class Hdf5Dataset : public Hdf5Object {
public:
    Hdf5Dataset() = default;
    H5Type type() const { return type_; }
    const std::vector<std::int64_t>& shape() const { return shape_; }
    /// Chunk shape, empty for a contiguous dataset.
    std::vector<std::int64_t> chunkShape() const;

    void write(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count, H5Type memType,
               const void* data);
    void read(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count, H5Type memType,
              void* out) const;
    /// Checks the stored data without reading it into memory (nic-probe's check of an untrusted file,
    /// core/base/untrustedfileprobe.h). Only for a chunked dataset whose filters are at most shuffle then
    /// deflate (this project's layout; returns false, checking nothing, for any other layout or filter):
    /// walks the chunk index, checks that each stored chunk lies inside the file, reads it raw and
    /// decompresses it with zlib into one chunk's bytes, and reads the first stored chunk through HDF5's
    /// own filter pipeline. A chunk that does not decompress to exactly one chunk (damaged, or
    /// decompressing to more than its size, or lying outside the file) throws FormatError naming the file,
    /// dataset and chunk; HDF5 failing to read it, IoError. The values
    /// are neither converted nor kept, so this costs about a decompression of the dataset.
    bool verifyStoredChunks() const;
    /// Closes the dataset now (also done by the destructor).
    void close() { handle_.close(); }

private:
    friend class Hdf5File;
    Hdf5Dataset(Hdf5Handle handle, std::filesystem::path file, std::string name);
    void select(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count,
                Hdf5Handle& fileSpace, Hdf5Handle& memSpace) const;
    H5Type type_ = H5Type::Other;
    std::vector<std::int64_t> shape_;
};

/// How a dataset is stored: chunking and filters (shuffle before deflate, as h5py does).
struct Hdf5Layout {
    std::vector<std::int64_t> chunk; ///< empty: contiguous (no filters possible)
    int deflateLevel = 4;            ///< 0 = no compression
    bool shuffle = true;
    std::size_t chunkCacheBytes = 0; ///< per-dataset raw chunk cache; 0 = HDF5's default (1 MiB)
};

/// An open HDF5 file. Constructors throw IoError ("<file>: cannot open HDF5 file: <HDF5's cause>").
/// The root group's attributes are reached through the Hdf5Object base.
class Hdf5File : public Hdf5Object {
public:
    enum class Mode {
        ReadOnly,
        ReadWrite,
        Create, ///< create, truncating an existing file
    };
    Hdf5File(const std::filesystem::path& path, Mode mode);
    ~Hdf5File();
    Hdf5File(Hdf5File&&) noexcept = default;
    Hdf5File& operator=(Hdf5File&&) noexcept = default;

    const std::filesystem::path& path() const { return file_; }
    /// True when `name` (an HDF5 path like "grid" or "dihedral/3") names an existing link.
    bool exists(const std::string& name) const;
    /// Creates a dataset (and missing parent groups). Throws IoError naming the file and dataset.
    Hdf5Dataset createDataset(const std::string& name, H5Type type, const std::vector<std::int64_t>& shape,
                              const Hdf5Layout& layout = {});
    /// Opens an existing dataset; IoError "<file>: no dataset '<name>'" when absent.
    Hdf5Dataset openDataset(const std::string& name, std::size_t chunkCacheBytes = 0) const;
    /// Removes the link `name` (a dataset or group); its space is not reclaimed. IoError when absent.
    void remove(const std::string& name);
    /// Writes all buffered data and metadata to disk (H5Fflush, then the OS keeps it).
    void flush();
    /// Closes the file, reporting errors (the destructor closes silently). Datasets opened from it
    /// must be closed first or the file stays open until they are.
    void close();

    /// True when `path` is a readable file with the HDF5 signature (H5Fis_hdf5; never throws).
    static bool isHdf5(const std::filesystem::path& path);
};

} // namespace nic

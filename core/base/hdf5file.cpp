#include "core/base/hdf5file.h"
#include "core/base/hdf5internal.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace nic {

using hdf5detail::hdf5Cause;
using hdf5detail::silenceThisThread;

static_assert(std::is_same_v<hid_t, std::int64_t>, "hid_t is int64_t in HDF5 >= 1.10");

// ---------------------------------------------------------------------------------------------------
// float16

std::uint16_t floatToHalf(float value) {
    // numpy's npy_floatbits_to_halfbits, so results are bit-identical to numpy.astype(float16).
    std::uint32_t f;
    std::memcpy(&f, &value, sizeof f);
    const auto hSgn = static_cast<std::uint16_t>((f & 0x80000000U) >> 16);
    std::uint32_t fExp = f & 0x7f800000U;
    std::uint32_t fSig;

    if (fExp >= 0x47800000U) { // overflow, inf or NaN
        if (fExp == 0x7f800000U) {
            fSig = f & 0x007fffffU;
            if (fSig != 0) {
                auto ret = static_cast<std::uint16_t>(0x7c00U + (fSig >> 13));
                if (ret == 0x7c00U) // keep it a NaN
                    ++ret;
                return static_cast<std::uint16_t>(hSgn + ret);
            }
        }
        return static_cast<std::uint16_t>(hSgn + 0x7c00U);
    }
    if (fExp <= 0x38000000U) { // subnormal half or signed zero
        if (fExp < 0x33000000U)
            return hSgn;
        fExp >>= 23;
        fSig = 0x00800000U + (f & 0x007fffffU);
        fSig >>= (113U - fExp);
        // Round to nearest even: the shift may have dropped up to 11 bits, which f & 0x7ff still holds.
        if (((fSig & 0x00003fffU) != 0x00001000U) || (f & 0x000007ffU))
            fSig += 0x00001000U;
        // A carry into the exponent gives the smallest normal, which is correct.
        return static_cast<std::uint16_t>(hSgn + static_cast<std::uint16_t>(fSig >> 13));
    }
    const auto hExp = static_cast<std::uint16_t>((fExp - 0x38000000U) >> 13);
    fSig = f & 0x007fffffU;
    if ((fSig & 0x00003fffU) != 0x00001000U)
        fSig += 0x00001000U;
    // A carry out of the significand increments the exponent (3.9993 → 4.0, up to +inf): correct.
    const auto hSig = static_cast<std::uint16_t>(fSig >> 13);
    return static_cast<std::uint16_t>(hSgn + static_cast<std::uint16_t>(hExp + hSig));
}

float halfToFloat(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000U) << 16;
    std::uint32_t exp = (h >> 10) & 0x1fU;
    std::uint32_t sig = h & 0x3ffU;
    std::uint32_t f;
    if (exp == 0) {
        if (sig == 0) {
            f = sign;
        } else { // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((sig & 0x400U) == 0) {
                sig <<= 1;
                --exp;
            }
            sig &= 0x3ffU;
            f = sign | (exp << 23) | (sig << 13);
        }
    } else if (exp == 0x1fU) {
        f = sign | 0x7f800000U | (sig << 13);
    } else {
        f = sign | ((exp + 127 - 15) << 23) | (sig << 13);
    }
    float out;
    std::memcpy(&out, &f, sizeof out);
    return out;
}

void floatsToHalves(const float* in, std::uint16_t* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        out[i] = floatToHalf(in[i]);
}

void halvesToFloats(const std::uint16_t* in, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        out[i] = halfToFloat(in[i]);
}

const char* toString(H5Type type) {
    switch (type) {
    case H5Type::Float16: return "float16";
    case H5Type::Float32: return "float32";
    case H5Type::Float64: return "float64";
    case H5Type::Int32: return "int32";
    case H5Type::Int64: return "int64";
    case H5Type::UInt8: return "uint8";
    case H5Type::String: return "string";
    case H5Type::Other: break;
    }
    return "other";
}

// ---------------------------------------------------------------------------------------------------
// errors and handles

namespace {

herr_t collectError(unsigned /*n*/, const H5E_error2_t* err, void* data) {
    auto* out = static_cast<std::vector<std::string>*>(data);
    if (err && err->desc && *err->desc)
        out->emplace_back(err->desc);
    return 0;
}


[[noreturn]] void throwIo(const std::filesystem::path& file, const std::string& what) {
    throw IoError(file.string() + ": " + what + ": " + hdf5Cause());
}

hid_t halfType() {
    // IEEE binary16, little-endian; the call order matters (set_fields before precision/size).
    static const hid_t type = [] {
        silenceThisThread();
        hid_t t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_precision(t, 16);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
        H5Tlock(t);
        return t;
    }();
    return type;
}

hid_t memTypeOf(H5Type type) {
    switch (type) {
    case H5Type::Float16: return halfType();
    case H5Type::Float32: return H5T_NATIVE_FLOAT;
    case H5Type::Float64: return H5T_NATIVE_DOUBLE;
    case H5Type::Int32: return H5T_NATIVE_INT32;
    case H5Type::Int64: return H5T_NATIVE_INT64;
    case H5Type::UInt8: return H5T_NATIVE_UINT8;
    case H5Type::String:
    case H5Type::Other: break;
    }
    throw InvalidArgument(std::string("HDF5: no memory type for ") + toString(type));
}

hid_t fileTypeOf(H5Type type) {
    switch (type) {
    case H5Type::Float16: return halfType();
    case H5Type::Float32: return H5T_IEEE_F32LE;
    case H5Type::Float64: return H5T_IEEE_F64LE;
    case H5Type::Int32: return H5T_STD_I32LE;
    case H5Type::Int64: return H5T_STD_I64LE;
    case H5Type::UInt8: return H5T_STD_U8LE;
    case H5Type::String:
    case H5Type::Other: break;
    }
    throw InvalidArgument(std::string("HDF5: cannot create a dataset of type ") + toString(type));
}

H5Type classify(hid_t type) {
    const H5T_class_t cls = H5Tget_class(type);
    const std::size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT) {
        if (size == 2)
            return H5Type::Float16;
        if (size == 4)
            return H5Type::Float32;
        if (size == 8)
            return H5Type::Float64;
    } else if (cls == H5T_INTEGER) {
        const bool isSigned = H5Tget_sign(type) == H5T_SGN_2;
        if (!isSigned && size == 1)
            return H5Type::UInt8;
        if (isSigned && size == 4)
            return H5Type::Int32;
        if (isSigned && size == 8)
            return H5Type::Int64;
    } else if (cls == H5T_STRING) {
        return H5Type::String;
    }
    return H5Type::Other;
}

std::vector<hsize_t> toHsize(const std::vector<std::int64_t>& v) {
    std::vector<hsize_t> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        out[i] = static_cast<hsize_t>(v[i]);
    return out;
}

} // namespace

namespace hdf5detail {

// HDF5 prints its error stack to stderr from every failing call unless silenced, per thread.
void silenceThisThread() {
    // HDF5's own exit handler closes every file still open; for a file whose write failed (disk full, a
    // file-size limit) that close crashes inside HDF5 1.10 (H5F__close_cb). Every file we write is closed
    // explicitly before it is renamed into place, so a file still open at exit is a failed one anyway.
    static const bool noAtExit = [] { return H5dont_atexit() >= 0; }();
    (void)noAtExit;
    thread_local bool silenced = false;
    if (!silenced) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        silenced = true;
    }
}

/// The innermost message of the current thread's error stack (the actual cause, e.g. "file
/// signature not found", "unable to lock file, errno = 11 ..."), or "unknown HDF5 error".
std::string hdf5Cause() {
    std::vector<std::string> messages;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collectError, &messages);
    H5Eclear2(H5E_DEFAULT);
    if (messages.empty())
        return "unknown HDF5 error";
    std::string cause = messages.back();
    // A failed read or write of the file driver carries the system's message in a long report
    // ("... errno = 28, error message = 'No space left on device', buf = ..."): keep just that.
    const auto em = cause.find("error message = '");
    if (em != std::string::npos) {
        const auto start = em + 17;
        const auto end = cause.find('\'', start);
        if (end != std::string::npos)
            cause = cause.substr(start, end - start);
    }
    if (messages.size() > 1 && messages.front() != cause)
        cause = messages.front() + ": " + cause;
    return cause;
}

} // namespace hdf5detail

std::string shapeToString(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

Hdf5Handle::~Hdf5Handle() { close(); }

Hdf5Handle& Hdf5Handle::operator=(Hdf5Handle&& other) noexcept {
    if (this != &other) {
        close();
        id_ = other.release();
    }
    return *this;
}

bool Hdf5Handle::close() {
    if (id_ < 0)
        return true;
    silenceThisThread();
    const hid_t id = release();
    herr_t r = -1;
    switch (H5Iget_type(id)) {
    case H5I_FILE: r = H5Fclose(id); break;
    case H5I_GROUP: r = H5Gclose(id); break;
    case H5I_DATASET: r = H5Dclose(id); break;
    case H5I_DATASPACE: r = H5Sclose(id); break;
    case H5I_DATATYPE: r = H5Tclose(id); break;
    case H5I_ATTR: r = H5Aclose(id); break;
    case H5I_GENPROP_LST: r = H5Pclose(id); break;
    default: r = H5Idec_ref(id) < 0 ? -1 : 0; break;
    }
    if (r < 0)
        H5Eclear2(H5E_DEFAULT);
    return r >= 0;
}

// ---------------------------------------------------------------------------------------------------
// attributes

std::string Hdf5Object::where() const {
    return name_ == "/" ? std::string() : " (" + name_ + ")";
}

void Hdf5Object::fail(const std::string& what) const { throwIo(file_, what + where()); }

bool Hdf5Object::hasAttribute(const std::string& name) const {
    silenceThisThread();
    const htri_t r = H5Aexists(id(), name.c_str());
    if (r < 0)
        fail("cannot look up attribute '" + name + "'");
    return r > 0;
}

std::vector<std::string> Hdf5Object::attributeNames() const {
    silenceThisThread();
    H5O_info_t info;
    if (H5Oget_info2(id(), &info, H5O_INFO_NUM_ATTRS) < 0)
        fail("cannot list attributes");
    std::vector<std::string> names;
    for (hsize_t i = 0; i < info.num_attrs; ++i) {
        const ssize_t len = H5Aget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
        if (len < 0)
            fail("cannot list attributes");
        std::string s(static_cast<std::size_t>(len) + 1, '\0');
        H5Aget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), s.size(), H5P_DEFAULT);
        s.resize(static_cast<std::size_t>(len));
        names.push_back(std::move(s));
    }
    return names;
}

namespace {

/// Creates (replacing) attribute `name` on `obj` with file type `fileType` and dataspace `space`.
Hdf5Handle createAttribute(hid_t obj, const std::string& name, hid_t fileType, hid_t space) {
    if (H5Aexists(obj, name.c_str()) > 0)
        H5Adelete(obj, name.c_str());
    return Hdf5Handle(H5Acreate2(obj, name.c_str(), fileType, space, H5P_DEFAULT, H5P_DEFAULT));
}

} // namespace

void Hdf5Object::setStringAttribute(const std::string& name, const std::string& value) {
    silenceThisThread();
    // Variable-length UTF-8, what h5py writes for str (it reads back as str).
    Hdf5Handle type(H5Tcopy(H5T_C_S1));
    H5Tset_size(type.id(), H5T_VARIABLE);
    H5Tset_cset(type.id(), H5T_CSET_UTF8);
    Hdf5Handle space(H5Screate(H5S_SCALAR));
    Hdf5Handle attr = createAttribute(id(), name, type.id(), space.id());
    const char* ptr = value.c_str();
    if (!attr.valid() || H5Awrite(attr.id(), type.id(), &ptr) < 0)
        fail("cannot write attribute '" + name + "'");
}

void Hdf5Object::setIntAttribute(const std::string& name, std::int64_t value) {
    setIntArrayAttribute(name, {value});
}

void Hdf5Object::setDoubleAttribute(const std::string& name, double value) {
    setDoubleArrayAttribute(name, {value});
}

void Hdf5Object::setIntArrayAttribute(const std::string& name, const std::vector<std::int64_t>& values) {
    silenceThisThread();
    // An existing scalar/1-element attribute of the same type is updated in place (rows_done is
    // rewritten after every flushed band; delete + create would grow the object header).
    if (values.size() == 1 && H5Aexists(id(), name.c_str()) > 0) {
        Hdf5Handle attr(H5Aopen(id(), name.c_str(), H5P_DEFAULT));
        Hdf5Handle type(H5Aget_type(attr.id()));
        Hdf5Handle space(H5Aget_space(attr.id()));
        if (classify(type.id()) == H5Type::Int64 && H5Sget_simple_extent_npoints(space.id()) == 1) {
            if (H5Awrite(attr.id(), H5T_NATIVE_INT64, values.data()) < 0)
                fail("cannot write attribute '" + name + "'");
            return;
        }
    }
    const hsize_t n = values.size();
    Hdf5Handle space(values.size() == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
    Hdf5Handle attr = createAttribute(id(), name, H5T_STD_I64LE, space.id());
    if (!attr.valid() || H5Awrite(attr.id(), H5T_NATIVE_INT64, values.data()) < 0)
        fail("cannot write attribute '" + name + "'");
}

void Hdf5Object::setDoubleArrayAttribute(const std::string& name, const std::vector<double>& values) {
    silenceThisThread();
    const hsize_t n = values.size();
    Hdf5Handle space(values.size() == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
    Hdf5Handle attr = createAttribute(id(), name, H5T_IEEE_F64LE, space.id());
    if (!attr.valid() || H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, values.data()) < 0)
        fail("cannot write attribute '" + name + "'");
}

namespace {

struct OpenAttr {
    Hdf5Handle attr, type, space;
    H5Type kind = H5Type::Other;
    hssize_t count = 0;
};

} // namespace

static OpenAttr openAttribute(const Hdf5Object& obj, const std::string& name) {
    silenceThisThread();
    if (!obj.hasAttribute(name))
        throw FormatError(obj.filePath().string() + ": missing attribute '" + name + "'" +
                          (obj.objectName() == "/" ? std::string() : " on " + obj.objectName()));
    OpenAttr a;
    a.attr = Hdf5Handle(H5Aopen(obj.id(), name.c_str(), H5P_DEFAULT));
    if (!a.attr.valid())
        throwIo(obj.filePath(), "cannot open attribute '" + name + "'");
    a.type = Hdf5Handle(H5Aget_type(a.attr.id()));
    a.space = Hdf5Handle(H5Aget_space(a.attr.id()));
    a.kind = classify(a.type.id());
    a.count = H5Sget_simple_extent_npoints(a.space.id());
    return a;
}

std::string Hdf5Object::stringAttribute(const std::string& name) const {
    OpenAttr a = openAttribute(*this, name);
    if (a.kind != H5Type::String || a.count != 1)
        throw FormatError(file_.string() + ": attribute '" + name + "' is not a string");
    if (H5Tis_variable_str(a.type.id()) > 0) {
        Hdf5Handle mem(H5Tcopy(H5T_C_S1));
        H5Tset_size(mem.id(), H5T_VARIABLE);
        H5Tset_cset(mem.id(), H5Tget_cset(a.type.id()));
        char* ptr = nullptr;
        if (H5Aread(a.attr.id(), mem.id(), &ptr) < 0)
            fail("cannot read attribute '" + name + "'");
        std::string s = ptr ? ptr : "";
        H5free_memory(ptr);
        return s;
    }
    const std::size_t size = H5Tget_size(a.type.id());
    std::string s(size, '\0');
    if (H5Aread(a.attr.id(), a.type.id(), s.data()) < 0)
        fail("cannot read attribute '" + name + "'");
    s.resize(std::strlen(s.c_str()));
    return s;
}

std::vector<std::int64_t> Hdf5Object::intArrayAttribute(const std::string& name) const {
    OpenAttr a = openAttribute(*this, name);
    if (H5Tget_class(a.type.id()) != H5T_INTEGER)
        throw FormatError(file_.string() + ": attribute '" + name + "' is not an integer");
    std::vector<std::int64_t> v(static_cast<std::size_t>(a.count));
    if (!v.empty() && H5Aread(a.attr.id(), H5T_NATIVE_INT64, v.data()) < 0)
        fail("cannot read attribute '" + name + "'");
    return v;
}

std::vector<double> Hdf5Object::doubleArrayAttribute(const std::string& name) const {
    OpenAttr a = openAttribute(*this, name);
    const H5T_class_t cls = H5Tget_class(a.type.id());
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        throw FormatError(file_.string() + ": attribute '" + name + "' is not a number");
    std::vector<double> v(static_cast<std::size_t>(a.count));
    if (!v.empty() && H5Aread(a.attr.id(), H5T_NATIVE_DOUBLE, v.data()) < 0)
        fail("cannot read attribute '" + name + "'");
    return v;
}

std::int64_t Hdf5Object::intAttribute(const std::string& name) const {
    const auto v = intArrayAttribute(name);
    if (v.size() != 1)
        throw FormatError(file_.string() + ": attribute '" + name + "' has " + std::to_string(v.size()) +
                          " values, expected 1");
    return v.front();
}

double Hdf5Object::doubleAttribute(const std::string& name) const {
    const auto v = doubleArrayAttribute(name);
    if (v.size() != 1)
        throw FormatError(file_.string() + ": attribute '" + name + "' has " + std::to_string(v.size()) +
                          " values, expected 1");
    return v.front();
}

// ---------------------------------------------------------------------------------------------------
// datasets

Hdf5Dataset::Hdf5Dataset(Hdf5Handle handle, std::filesystem::path file, std::string name)
    : Hdf5Object(std::move(handle), std::move(file), std::move(name)) {
    Hdf5Handle type(H5Dget_type(id()));
    Hdf5Handle space(H5Dget_space(id()));
    if (!type.valid() || !space.valid())
        fail("cannot inspect dataset");
    type_ = classify(type.id());
    const int rank = H5Sget_simple_extent_ndims(space.id());
    if (rank < 0)
        fail("cannot inspect dataset");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
    for (auto d : dims)
        shape_.push_back(static_cast<std::int64_t>(d));
}

std::vector<std::int64_t> Hdf5Dataset::chunkShape() const {
    silenceThisThread();
    Hdf5Handle dcpl(H5Dget_create_plist(id()));
    if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED)
        return {};
    std::vector<hsize_t> dims(shape_.size());
    H5Pget_chunk(dcpl.id(), static_cast<int>(dims.size()), dims.data());
    std::vector<std::int64_t> out;
    for (auto d : dims)
        out.push_back(static_cast<std::int64_t>(d));
    return out;
}

void Hdf5Dataset::select(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count,
                         Hdf5Handle& fileSpace, Hdf5Handle& memSpace) const {
    if (offset.size() != shape_.size() || count.size() != shape_.size())
        throw InvalidArgument(file_.string() + ": hyperslab rank does not match dataset " + name_ + " " +
                              shapeToString(shape_));
    for (std::size_t i = 0; i < shape_.size(); ++i)
        if (offset[i] < 0 || count[i] < 0 || offset[i] + count[i] > shape_[i])
            throw InvalidArgument(file_.string() + ": hyperslab offset " + shapeToString(offset) + " count " +
                                  shapeToString(count) + " outside dataset " + name_ + " " + shapeToString(shape_));
    const auto off = toHsize(offset);
    const auto cnt = toHsize(count);
    fileSpace = Hdf5Handle(H5Dget_space(id()));
    if (!fileSpace.valid() ||
        H5Sselect_hyperslab(fileSpace.id(), H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr) < 0)
        fail("cannot select a hyperslab");
    memSpace = Hdf5Handle(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr));
    if (!memSpace.valid())
        fail("cannot create a memory dataspace");
}

void Hdf5Dataset::write(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count,
                        H5Type memType, const void* data) {
    silenceThisThread();
    if (type_ == H5Type::Float16 && memType != H5Type::Float16)
        throw InvalidArgument(file_.string() + ": refusing to let HDF5 convert " + toString(memType) +
                              " to float16 in " + name_ + " (convert with floatsToHalves first)");
    Hdf5Handle fileSpace, memSpace;
    select(offset, count, fileSpace, memSpace);
    if (H5Dwrite(id(), memTypeOf(memType), memSpace.id(), fileSpace.id(), H5P_DEFAULT, data) < 0)
        fail("cannot write dataset");
}

void Hdf5Dataset::read(const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count,
                       H5Type memType, void* out) const {
    silenceThisThread();
    Hdf5Handle fileSpace, memSpace;
    select(offset, count, fileSpace, memSpace);
    if (H5Dread(id(), memTypeOf(memType), memSpace.id(), fileSpace.id(), H5P_DEFAULT, out) < 0)
        fail("cannot read dataset");
}

// ---------------------------------------------------------------------------------------------------
// files

Hdf5File::Hdf5File(const std::filesystem::path& path, Mode mode) {
    silenceThisThread();
    file_ = path;
    name_ = "/";
    hid_t id = -1;
    if (mode == Mode::Create) {
        // The 1.8+ file format: its superblock and object headers carry checksums, so a flipped bit in a
        // file's metadata is refused by HDF5 ("incorrect metadata checksum") before it is parsed. Parsing
        // a damaged header of the 1.0 format overruns a buffer inside HDF5 1.10 (found by the broken-file
        // corpus under ASan: H5Aexists → H5O__msg_iterate_real → strdup). h5py and HDF5 ≥ 1.8 read it.
        const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl >= 0)
            H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
        id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
        if (fapl >= 0)
            H5Pclose(fapl);
        if (id < 0)
            throwIo(path, "cannot create HDF5 file");
    } else {
        if (!std::filesystem::exists(path))
            throw IoError(path.string() + ": no such file");
        id = H5Fopen(path.c_str(), mode == Mode::ReadOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
        if (id < 0)
            throwIo(path, "cannot open HDF5 file");
    }
    handle_ = Hdf5Handle(id);
}

Hdf5File::~Hdf5File() = default;

bool Hdf5File::exists(const std::string& name) const {
    silenceThisThread();
    // H5Lexists needs every parent to exist, so test the path one component at a time.
    std::string prefix;
    std::size_t start = 0;
    while (start <= name.size()) {
        const std::size_t slash = name.find('/', start);
        const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (!part.empty()) {
            prefix += (prefix.empty() ? "" : "/") + part;
            const htri_t r = H5Lexists(id(), prefix.c_str(), H5P_DEFAULT);
            if (r <= 0) {
                H5Eclear2(H5E_DEFAULT);
                return false;
            }
        }
        if (slash == std::string::npos)
            break;
        start = slash + 1;
    }
    return !prefix.empty();
}

Hdf5Dataset Hdf5File::createDataset(const std::string& name, H5Type type, const std::vector<std::int64_t>& shape,
                                    const Hdf5Layout& layout) {
    silenceThisThread();
    const auto dims = toHsize(shape);
    Hdf5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
    Hdf5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    Hdf5Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
    Hdf5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_create_intermediate_group(lcpl.id(), 1);
    if (!layout.chunk.empty()) {
        if (layout.chunk.size() != shape.size())
            throw InvalidArgument(file_.string() + ": chunk rank does not match dataset " + name);
        auto chunk = toHsize(layout.chunk);
        for (std::size_t i = 0; i < chunk.size(); ++i)
            chunk[i] = std::max<hsize_t>(1, std::min(chunk[i], dims[i] == 0 ? hsize_t{1} : dims[i]));
        H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
        if (layout.shuffle)
            H5Pset_shuffle(dcpl.id());
        if (layout.deflateLevel > 0)
            H5Pset_deflate(dcpl.id(), static_cast<unsigned>(layout.deflateLevel));
        if (layout.chunkCacheBytes > 0)
            H5Pset_chunk_cache(dapl.id(), 12421, layout.chunkCacheBytes, 1.0);
    }
    // Background cells must read back as exactly 0 even where no chunk was ever written.
    if (type != H5Type::String && type != H5Type::Other) {
        const double zero[1] = {0.0};
        std::uint16_t zeroHalf = 0;
        if (type == H5Type::Float16)
            H5Pset_fill_value(dcpl.id(), halfType(), &zeroHalf);
        else
            H5Pset_fill_value(dcpl.id(), H5T_NATIVE_DOUBLE, zero);
    }
    hid_t id = H5Dcreate2(handle_.id(), name.c_str(), fileTypeOf(type), space.id(), lcpl.id(), dcpl.id(), dapl.id());
    if (id < 0)
        throwIo(file_, "cannot create dataset '" + name + "' " + shapeToString(shape));
    return Hdf5Dataset(Hdf5Handle(id), file_, name);
}

Hdf5Dataset Hdf5File::openDataset(const std::string& name, std::size_t chunkCacheBytes) const {
    silenceThisThread();
    if (!exists(name))
        throw FormatError(file_.string() + ": no dataset '" + name + "'");
    Hdf5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
    if (chunkCacheBytes > 0)
        H5Pset_chunk_cache(dapl.id(), 12421, chunkCacheBytes, 1.0);
    hid_t id = H5Dopen2(handle_.id(), name.c_str(), dapl.id());
    if (id < 0)
        throwIo(file_, "cannot open dataset '" + name + "'");
    return Hdf5Dataset(Hdf5Handle(id), file_, name);
}

void Hdf5File::remove(const std::string& name) {
    silenceThisThread();
    if (H5Ldelete(handle_.id(), name.c_str(), H5P_DEFAULT) < 0)
        throwIo(file_, "cannot remove '" + name + "'");
}

void Hdf5File::flush() {
    silenceThisThread();
    if (H5Fflush(handle_.id(), H5F_SCOPE_LOCAL) < 0)
        throwIo(file_, "cannot flush HDF5 file");
}

void Hdf5File::close() {
    silenceThisThread();
    if (!handle_.valid())
        return;
    const hid_t id = handle_.release();
    if (H5Fclose(id) < 0)
        throwIo(file_, "cannot close HDF5 file");
}

bool Hdf5File::isHdf5(const std::filesystem::path& path) {
    silenceThisThread();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return false;
    const htri_t r = H5Fis_hdf5(path.c_str());
    H5Eclear2(H5E_DEFAULT);
    return r > 0;
}

} // namespace nic

// Hdf5Dataset::verifyStoredChunks (hdf5file.h): the untrusted-file probe's check of every stored chunk of a
// shuffle+deflate dataset, decompressed once with zlib into exactly one chunk's bytes.
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/base/hdf5internal.h"

#include <hdf5.h>
#include <zlib.h>

#include <algorithm>

namespace nic {

using hdf5detail::hdf5Cause;
using hdf5detail::silenceThisThread;

namespace {

// As HDF5's deflate filter inflates, but into exactly one chunk (`out`, sized to it): more output is
// refused instead of growing a buffer without bound. `where()` names the chunk in the errors.
template <typename Where>
void inflateIntoOneChunk(std::vector<unsigned char>& raw, std::vector<unsigned char>& out, const Where& where) {
    z_stream z{};
    if (inflateInit(&z) != Z_OK)
        throw IoError(where() + "cannot start zlib");
    z.next_in = raw.data();
    z.avail_in = static_cast<uInt>(raw.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    const int status = inflate(&z, Z_FINISH);
    const auto produced = static_cast<std::size_t>(z.total_out);
    inflateEnd(&z);
    if (status != Z_STREAM_END) {
        if (z.avail_out == 0 && status == Z_BUF_ERROR)
            throw FormatError(where() + "decompresses to more than the chunk's " + std::to_string(out.size()) + " bytes");
        throw FormatError(where() + "damaged compressed data (zlib: " +
                          (z.msg ? std::string(z.msg) : "stream ends early") + ")");
    }
    if (produced != out.size())
        throw FormatError(where() + "decompresses to " + std::to_string(produced) + " bytes, not the chunk's " +
                          std::to_string(out.size()));
}

} // namespace

bool Hdf5Dataset::verifyStoredChunks() const {
    silenceThisThread();
    Hdf5Handle dcpl(H5Dget_create_plist(id()));
    if (!dcpl.valid())
        fail("cannot inspect dataset");
    if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED)
        return false;
    const std::size_t rank = shape_.size();
    std::vector<hsize_t> chunk(rank);
    if (rank == 0 || H5Pget_chunk(dcpl.id(), static_cast<int>(rank), chunk.data()) != static_cast<int>(rank))
        return false;
    Hdf5Handle type(H5Dget_type(id()));
    const std::size_t elemSize = type.valid() ? H5Tget_size(type.id()) : 0;
    if (elemSize == 0)
        fail("cannot inspect dataset");
    // The pipeline: at most shuffle (of this type's element size), then deflate.
    bool shuffle = false, deflate = false;
    const int nfilters = H5Pget_nfilters(dcpl.id());
    if (nfilters < 0)
        fail("cannot inspect dataset");
    for (int i = 0; i < nfilters; ++i) {
        unsigned flags = 0, config = 0;
        std::size_t nvalues = 4;
        unsigned values[4] = {0, 0, 0, 0};
        const H5Z_filter_t f = H5Pget_filter2(dcpl.id(), static_cast<unsigned>(i), &flags, &nvalues, values, 0,
                                              nullptr, &config);
        if (f == H5Z_FILTER_SHUFFLE && i == 0 && !deflate && nvalues >= 1 && values[0] == elemSize)
            shuffle = true;
        else if (f == H5Z_FILTER_DEFLATE && !deflate)
            deflate = true;
        else
            return false;
    }
    std::size_t chunkBytes = elemSize;
    std::vector<std::int64_t> grid(rank);
    std::int64_t chunkCount = 1;
    for (std::size_t d = 0; d < rank; ++d) {
        if (chunk[d] == 0)
            fail("cannot inspect dataset");
        chunkBytes *= static_cast<std::size_t>(chunk[d]);
        grid[d] = (shape_[d] + static_cast<std::int64_t>(chunk[d]) - 1) / static_cast<std::int64_t>(chunk[d]);
        chunkCount *= grid[d];
    }
    if (chunkCount == 0)
        return true;
    hsize_t fileSize = 0;
    {
        Hdf5Handle fileId(H5Iget_file_id(id()));
        if (!fileId.valid() || H5Fget_filesize(fileId.id(), &fileSize) < 0)
            fail("cannot inspect dataset");
    }
    std::vector<unsigned char> raw, out(chunkBytes);
    std::vector<hsize_t> offset(rank);
    std::vector<std::int64_t> index(rank, 0);
    bool pipelineRead = false;
    for (std::int64_t n = 0; n < chunkCount; ++n) {
        for (std::size_t d = 0; d < rank; ++d)
            offset[d] = static_cast<hsize_t>(index[d]) * chunk[d];
        const auto chunkName = [&] {
            std::vector<std::int64_t> o(offset.begin(), offset.end());
            return file_.string() + ": dataset " + name_ + ", chunk at " + shapeToString(o) + ": ";
        };
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(id(), offset.data(), &mask, &addr, &size) < 0)
            throw IoError(chunkName() + "cannot read the chunk index: " + hdf5Cause());
        if (addr != HADDR_UNDEF) { // unallocated chunks read as the fill value
            // Bit i of the mask: filter i was skipped for this chunk. Unshuffling keeps the size and
            // touches nothing outside the chunk, so only deflate needs a look at the data.
            const bool compressed = deflate && (mask & (1U << (shuffle ? 1 : 0))) == 0;
            // zlib's worst case for incompressible data is a few bytes per 16 KiB block.
            const std::size_t limit = compressed ? chunkBytes + chunkBytes / 1000 + 64 : chunkBytes;
            if (size == 0 || size > limit || (!compressed && size != chunkBytes) || addr > fileSize ||
                size > fileSize - addr)
                throw FormatError(chunkName() + "stored size " + std::to_string(size) + " at " + std::to_string(addr) +
                              " does not fit the chunk (" + std::to_string(chunkBytes) + " bytes) or the file (" +
                              std::to_string(fileSize) + " bytes)");
            raw.resize(static_cast<std::size_t>(size));
            std::uint32_t rawMask = 0;
            if (H5Dread_chunk(id(), H5P_DEFAULT, offset.data(), &rawMask, raw.data()) < 0)
                throw IoError(chunkName() + "cannot read the chunk: " + hdf5Cause());
            if (compressed)
                inflateIntoOneChunk(raw, out, chunkName);
            if (!pipelineRead) {
                // Once through HDF5's own read and filter pipeline, as the readers will go.
                std::vector<std::int64_t> o(rank), c(rank);
                for (std::size_t d = 0; d < rank; ++d) {
                    o[d] = static_cast<std::int64_t>(offset[d]);
                    c[d] = std::min<std::int64_t>(static_cast<std::int64_t>(chunk[d]), shape_[d] - o[d]);
                }
                Hdf5Handle memType(H5Tcopy(type.id()));
                Hdf5Handle fileSpace, memSpace;
                select(o, c, fileSpace, memSpace);
                if (!memType.valid() || H5Dread(id(), memType.id(), memSpace.id(), fileSpace.id(), H5P_DEFAULT, out.data()) < 0)
                    throw IoError(chunkName() + "cannot read the chunk: " + hdf5Cause());
                pipelineRead = true;
            }
        }
        for (std::size_t d = rank; d-- > 0;) { // next chunk, last dimension fastest
            if (++index[d] < grid[d])
                break;
            index[d] = 0;
        }
    }
    return true;
}

} // namespace nic

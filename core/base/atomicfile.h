#pragma once
// Atomic publication of output files (house style #7): write to a temporary name beside the
// target, then rename() over it. A crash or cancel leaves the old file or nothing, never half a file.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace nic {

/// Owns a temporary path beside `target`. Write to tempPath(), then call commit() to rename it
/// over the target (or sync() and later publish(), so that several files can be synced at once and then
/// published in a chosen order). If the object is destroyed without being published (error, cancel), the
/// temporary file is removed. Not thread-safe; one writer per object.
class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path target);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    const std::filesystem::path& tempPath() const { return temp_; }
    const std::filesystem::path& target() const { return target_; }
    /// fsyncs the temporary file and renames it over the target. Throws IoError naming the target.
    void commit();
    /// commit()'s first half: fsyncs the temporary file, which stays unpublished. Throws IoError naming the target.
    void sync();
    /// commit()'s second half: renames the temporary file over the target (syncing it first if sync() was not
    /// called). Throws IoError naming the target.
    void publish();

private:
    std::filesystem::path target_;
    std::filesystem::path temp_;
    bool synced_ = false;
    bool committed_ = false;
};

/// Writes an AtomicFile's temporary file front to back. On a local disk file system (ext4, XFS, Btrfs, F2FS) that takes
/// O_DIRECT, the bytes go around the page cache: gathered into a buffer of kPiece bytes (aligned, kept for the next
/// file) and written from it a piece at a time; the last piece is padded to kDirectAlign and the file cut back to its
/// length on close(). Otherwise (or with useDirectWrites(false)) they go through the page cache, and every completed
/// stretch of kStretch bytes is handed to the kernel's write-back as it goes (sync_file_range), so that the
/// AtomicFile's sync() then waits for the last stretch instead of the whole file: the disk writes while the caller is
/// still producing bytes. Write errors neither throw from write() nor shorten what it reports: LibTorch's archive
/// writer calls it from inside its zip library, and a short write there ends in std::terminate (its writer's destructor
/// throws again while the first error unwinds). write() keeps the first error's errno, drops everything after it and
/// reports every byte written; close() then throws IoError "<target>: <what>: <cause>".
///
/// Direct writes wait for the device, so they run on a writer thread of the file's own: write() hands each full piece
/// over and goes on filling the next (at most kPiecesInFlight pieces a file), and the serialiser's CPU time and the
/// disk's overlap, as the page cache's write-back made them overlap before. Where that thread cannot be started, the
/// pieces are written on the calling thread.
class WriteBehindFile {
public:
    static constexpr std::uint64_t kStretch = 8ULL << 20;
    /// The most one write() call takes. LibTorch hands a tensor's whole storage over in one call (tens of MB for an
    /// encoder's weights or Adam's state); on the Linux VM measured here such calls cost far more kernel CPU time than
    /// the same bytes in pieces of 1 MiB: a 71 MB training checkpoint took 52-591 ms of its serialising thread's time
    /// in whole-storage calls and 48-66 ms in pieces (docs/timings.md).
    static constexpr std::size_t kPiece = std::size_t{1} << 20;
    /// Direct writes' alignment of the buffer, of each write's size and of the file offset.
    static constexpr std::size_t kDirectAlign = 4096;
    /// Pieces a directly written file holds at once: the one being filled and those its writer thread has yet to write.
    static constexpr std::size_t kPiecesInFlight = 3;

    /// Whether WriteBehindFiles created from now on write around the page cache where the file system takes it;
    /// returns the setting before. On unless NIC_DIRECT_WRITES=0. Why: filling new page-cache pages is what cost the
    /// VM measured here its time (a 94 MB write took 23 ms into recycled pages and 0.5-1.0 s of kernel CPU into pages
    /// of memory it had not touched lately); written directly, the same bytes took 60 ms and 6 ms of CPU, and other
    /// files (slides) keep their place in the page cache (docs/timings.md).
    static bool useDirectWrites(bool on);

    /// Creates (truncates) `file`'s temporary file. IoError "<target>: <what>: <cause>" ("cannot write checkpoint").
    explicit WriteBehindFile(const AtomicFile& file, std::string what = "cannot write");
    ~WriteBehindFile();
    WriteBehindFile(const WriteBehindFile&) = delete;
    WriteBehindFile& operator=(const WriteBehindFile&) = delete;

    /// Appends `n` bytes and returns n, even after an error (see above); never throws. Allocates nothing but, for a
    /// directly written file, its first kPiecesInFlight pieces from the process-wide pool (new ones when it has none).
    std::size_t write(const void* data, std::size_t n) noexcept;
    /// "" while every write succeeded, else "<target>: <what>: <cause>" for the first that failed.
    std::string error() const;
    /// Writes what is gathered and closes the file; throws IoError with error() if a write failed, or if closing fails.
    /// Call it before the AtomicFile's sync() or commit(): up to kPiece bytes wait in the buffer until then.
    void close();
    /// Whether this file is being written around the page cache (see the class comment).
    bool direct() const { return direct_; }

private:
    std::string failure(int err) const;
    /// Writes [p, p + n) through the page cache; false (errno_ set) on a failure.
    bool writeBuffered(const char* p, std::size_t n) noexcept;
    /// Writes the first `n` bytes of `piece` (n a multiple of kDirectAlign but for the last); where the file system
    /// refuses a direct write, goes on through the page cache. False (errno_ set) on a failure.
    bool writePiece(char* piece, std::size_t n) noexcept;
    /// Writes the gathered bytes, on the writer thread where there is one, and gives gathered_ a piece to fill next
    /// (nullptr when `last`). False after a failure.
    bool passGathered(bool last) noexcept;

    struct Writer; ///< the writer thread and its queue of full pieces (atomicfile.cpp)
    std::filesystem::path target_;
    std::string what_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
    std::uint64_t handedOver_ = 0; ///< bytes already given to write-back
    std::atomic<int> errno_{0};    ///< the first failed write's (set on the writer thread too)
    std::atomic<bool> direct_{false};
    char* gathered_ = nullptr; ///< kPiece bytes aligned to kDirectAlign (process-wide pool), kept after a fallback
    std::size_t gatheredBytes_ = 0;
    std::uint64_t accepted_ = 0; ///< bytes taken by write(): the file's length
    std::unique_ptr<Writer> writer_;
};

/// Writes `bytes` to `target` atomically. Throws IoError naming the file and the cause.
void writeFileAtomically(const std::filesystem::path& target, const std::string& bytes);

} // namespace nic

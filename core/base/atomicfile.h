#pragma once
// Atomic publication of output files (house style #7): write to a temporary name beside the
// target, then rename() over it. A crash or cancel leaves the old file or nothing, never half a file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
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

/// Writes an AtomicFile's temporary file front to back, handing every completed stretch of kStretch bytes to the
/// kernel's write-back as it goes (Linux: sync_file_range), so that the AtomicFile's sync() then waits for the
/// last stretch instead of the whole file: the disk writes while the caller is still producing bytes. Write
/// errors neither throw from write() nor shorten what it reports: LibTorch's archive writer calls it from inside
/// its zip library, and a short write there ends in std::terminate (its writer's destructor throws again while
/// the first error unwinds). write() keeps the first error's errno, drops everything after it and reports every
/// byte written; close() then throws IoError "<target>: <what>: <cause>".
class WriteBehindFile {
public:
    static constexpr std::uint64_t kStretch = 8ULL << 20;
    /// The most one write() call takes. LibTorch hands a tensor's whole storage over in one call (tens of MB for an
    /// encoder's weights or Adam's state); on the Linux VM measured here such calls cost far more kernel CPU time than
    /// the same bytes in pieces of 1 MiB: a 71 MB training checkpoint took 52-591 ms of its serialising thread's time
    /// in whole-storage calls and 48-66 ms in pieces (docs/timings.md).
    static constexpr std::size_t kPiece = std::size_t{1} << 20;

    /// Creates (truncates) `file`'s temporary file. IoError "<target>: <what>: <cause>" ("cannot write checkpoint").
    explicit WriteBehindFile(const AtomicFile& file, std::string what = "cannot write");
    ~WriteBehindFile();
    WriteBehindFile(const WriteBehindFile&) = delete;
    WriteBehindFile& operator=(const WriteBehindFile&) = delete;

    /// Appends `n` bytes and returns n, even after an error (see above); allocates nothing and never throws.
    std::size_t write(const void* data, std::size_t n) noexcept;
    /// "" while every write succeeded, else "<target>: <what>: <cause>" for the first that failed.
    std::string error() const;
    /// Closes the file; throws IoError with error() if a write failed, or if closing fails.
    void close();

private:
    std::string failure(int err) const;

    std::filesystem::path target_;
    std::string what_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
    std::uint64_t handedOver_ = 0; ///< bytes already given to write-back
    int errno_ = 0;                ///< the first failed write's

};

/// Writes `bytes` to `target` atomically. Throws IoError naming the file and the cause.
void writeFileAtomically(const std::filesystem::path& target, const std::string& bytes);

} // namespace nic

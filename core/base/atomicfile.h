#pragma once
// Atomic publication of output files (house style #7): write to a temporary name beside the
// target, then rename() over it. A crash or cancel leaves the old file or nothing, never half a file.
#include <filesystem>

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

/// Writes `bytes` to `target` atomically. Throws IoError naming the file and the cause.
void writeFileAtomically(const std::filesystem::path& target, const std::string& bytes);

} // namespace nic

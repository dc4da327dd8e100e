#pragma once
// Helpers shared by the test suite: where the shared real data lives, and scratch directories.
#include <cstdint>
#include <filesystem>
#include <string>

#include <sys/resource.h>

#include <gtest/gtest.h>

namespace nic::test {

/// `../shared/data` relative to the repository (absent on some machines).
std::filesystem::path sharedDataDir();

/// Skips the current test with a clear message when `relative` does not exist under sharedDataDir().
/// Usage: NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
#define NIC_REQUIRE_SHARED(relative)                                                                                   \
    do {                                                                                                               \
        if (!std::filesystem::exists(::nic::test::sharedDataDir() / (relative)))                                       \
            GTEST_SKIP() << "shared test data absent: " << (::nic::test::sharedDataDir() / (relative))                 \
                         << " (tests that use real data skip without it)";                                             \
    } while (0)

/// A fresh, empty directory removed with its contents at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Sets one of the project's process-wide switches of an optimised path (a `bool set(bool on)` that returns the
/// setting before, e.g. WriteBehindFile::useDirectWrites) for a scope, and puts the setting back.
template <bool (*Set)(bool)>
class ScopedSwitch {
public:
    explicit ScopedSwitch(bool on) : before_(Set(on)) {}
    ~ScopedSwitch() { Set(before_); }
    ScopedSwitch(const ScopedSwitch&) = delete;
    ScopedSwitch& operator=(const ScopedSwitch&) = delete;

private:
    bool before_;
};

/// While alive, no file this process writes may grow past `bytes` (RLIMIT_FSIZE, with SIGXFSZ ignored): a write
/// beyond it fails with EFBIG ("File too large"), as a write to a full disk fails, part of the way through a file.
class FileSizeLimit {
public:
    explicit FileSizeLimit(std::uint64_t bytes);
    ~FileSizeLimit();
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;

private:
    rlimit old_{};
    void (*oldHandler_)(int) = nullptr;
};

/// Runs `f` and returns the what() of the exception of type E it throws, or "<no error>".
template <class E, class F>
std::string errorOf(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "<no error>";
}

/// Path of the built `nic` executable.
std::filesystem::path nicExecutable();
/// `'<nic>' args`: a shell command line running the built `nic` (for runCommand()).
std::string nicCommand(const std::string& args);
/// `path` in single quotes, for a shell command line.
std::string shellQuoted(const std::filesystem::path& path);

/// Runs a shell command, returns its exit status; stdout and stderr are captured into the strings.
int runCommand(const std::string& command, std::string* out = nullptr, std::string* err = nullptr);

/// The whole file as bytes ("" when it cannot be read).
std::string readFile(const std::filesystem::path& path);

/// How many entries folder `dir` holds (no temporary file left beside an output: the outputs alone).
int entriesIn(const std::filesystem::path& dir);

} // namespace nic::test

#pragma once
// The ways a slide file can change under a program that has it open, for the tests of nic::Slide,
// compressSlide and the viewer (tests/core and tests/ui test_slide_vanishes.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace nic::test {

enum class Change { Delete, Replace, TruncateHalf, TruncateToZero, OverwriteInPlace };

inline const char* name(Change c) {
    switch (c) {
    case Change::Delete: return "delete";
    case Change::Replace: return "replace";
    case Change::TruncateHalf: return "truncate-half";
    case Change::TruncateToZero: return "truncate-0";
    case Change::OverwriteInPlace: return "overwrite-in-place";
    }
    return "?";
}

inline constexpr Change kAllChanges[] = {Change::Delete, Change::Replace, Change::TruncateHalf,
                                         Change::TruncateToZero, Change::OverwriteInPlace};

/// What the error must say for each change (besides the file name and "since it was opened").
inline const char* expectedCause(Change c) {
    switch (c) {
    case Change::Delete: return "vanished";
    case Change::Replace: return "replaced by another file";
    case Change::TruncateHalf:
    case Change::TruncateToZero: return "changed";
    case Change::OverwriteInPlace: return "modified in place";
    }
    return "?";
}

/// Applies `c` to `path`; `other` is the intact slide a replace puts in its place.
inline void applyChange(Change c, const std::filesystem::path& path, const std::filesystem::path& other) {
    switch (c) {
    case Change::Delete:
        ASSERT_TRUE(std::filesystem::remove(path));
        break;
    case Change::Replace: {
        // Atomic replace, as a rescan or `mv new old` does: a new inode under the old name.
        const std::filesystem::path tmp = path.string() + ".new";
        std::filesystem::copy_file(other, tmp, std::filesystem::copy_options::overwrite_existing);
        std::filesystem::rename(tmp, path);
        break;
    }
    case Change::TruncateHalf:
        ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(std::filesystem::file_size(path) / 2)), 0);
        break;
    case Change::TruncateToZero:
        ASSERT_EQ(::truncate(path.c_str(), 0), 0);
        break;
    case Change::OverwriteInPlace: {
        // Same inode, same size, other bytes from the middle on.
        const auto size = std::filesystem::file_size(path);
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        const std::string junk(size - size / 2, '\xA5');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
        ASSERT_TRUE(f.good());
        break;
    }
    }
}

} // namespace nic::test

#pragma once
// Helpers shared by the fuzz harnesses.
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace nic::fuzz {

/// Writes `size` bytes to a scratch file private to this process (under $TMPDIR, in /dev/shm when it
/// exists) and returns its path; the same path is reused by every call. For readers that take a path.
const std::filesystem::path& writeScratchFile(const std::uint8_t* data, std::size_t size, const char* extension);

/// Turns off HDF5 file locking (the scratch file is private to the process). Call once per process,
/// before the first HDF5 call (core/hdf5file.cpp silences HDF5's error printing itself).
void quietHdf5();

} // namespace nic::fuzz

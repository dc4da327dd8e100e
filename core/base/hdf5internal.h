#pragma once
// Internal to core/base's HDF5 access (hdf5file.cpp, hdf5chunks.cpp): the per-thread error silencing and
// the error-stack cause every HDF5 failure message ends with. Not for other callers: use hdf5file.h.
#include <string>

namespace nic::hdf5detail {

/// HDF5 prints its error stack to stderr from every failing call unless silenced, per thread; also
/// switches off HDF5's exit handler once (see hdf5file.cpp).
void silenceThisThread();

/// The innermost message of the current thread's error stack (the actual cause), or "unknown HDF5 error";
/// clears the stack.
std::string hdf5Cause();

} // namespace nic::hdf5detail

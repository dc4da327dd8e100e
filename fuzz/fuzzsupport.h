#pragma once
// Helpers shared by the fuzz harnesses.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace nic {
struct EncoderMeta;
}

namespace nic::fuzz {

/// Writes `size` bytes to a scratch file private to this process (under $TMPDIR, in /dev/shm when it
/// exists) and returns its path; the same path is reused by every call. For readers that take a path.
const std::filesystem::path& writeScratchFile(const std::uint8_t* data, std::size_t size, const char* extension);

/// Turns off HDF5 file locking (the scratch file is private to the process). Call once per process,
/// before the first HDF5 call (core/base/hdf5file.cpp silences HDF5's error printing itself).
void quietHdf5();

/// Turns on the untrusted-file probe as the applications do, with the nic-probe built beside the
/// harnesses (NIC_PROBE_PATH) and a 2 s time limit per file (NIC_PROBE_TIMEOUT_S, unless set), well
/// under libFuzzer's -timeout.
void enableProbe();

/// Reports a harness's finding (`what`: the broken property, `detail`: the input or the cause) on
/// stderr and aborts, so libFuzzer records the input.
[[noreturn]] void fail(const char* what, const std::string& detail);

/// `meta` → encoderMetaToJson → encoderMetaFromJson (as file `source`); fail()s when either step refuses
/// what the other produced. Returns the description read back.
EncoderMeta encoderMetaRoundTrip(const EncoderMeta& meta, const char* source);

} // namespace nic::fuzz

#include "fuzz/fuzzsupport.h"

#include "core/base/error.h"
#include "core/encoders/modelmeta.h"
#include "core/base/untrustedfileprobe.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace nic::fuzz {

const std::filesystem::path& writeScratchFile(const std::uint8_t* data, std::size_t size, const char* extension) {
    static const std::filesystem::path path = [extension] {
        std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                        : std::filesystem::temp_directory_path();
        return dir / ("nic-fuzz-" + std::to_string(::getpid()) + extension);
    }();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out)
        throw std::runtime_error("cannot write the fuzz scratch file " + path.string());
    static const bool cleanup = [] {
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove(path, ec);
        });
        return true;
    }();
    (void)cleanup;
    return path;
}

void quietHdf5() {
    ::setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
}

void enableProbe() {
    ::setenv("NIC_PROBE_TIMEOUT_S", "2", 0);
    UntrustedFileProbe::enable(NIC_PROBE_PATH);
}

void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "%s: %s\n", what, detail.c_str());
    std::abort();
}

EncoderMeta encoderMetaRoundTrip(const EncoderMeta& meta, const char* source) {
    std::string json;
    try {
        json = encoderMetaToJson(meta);
    } catch (const std::exception& e) {
        fail("a parsed description does not serialise", e.what());
    }
    try {
        return encoderMetaFromJson(json, source);
    } catch (const Error& e) {
        fail("a serialised description does not parse back", std::string(e.what()) + "\n" + json);
    }
}

} // namespace nic::fuzz

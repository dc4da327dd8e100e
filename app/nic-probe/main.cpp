// nic-probe KIND FILE — reads and validates an untrusted file with the core readers, in a process of its
// own (core/base/untrustedfileprobe.h starts it). Torch- and Qt-free on purpose: it starts in milliseconds and
// a crash inside a decoder (HDF5 1.10.8 crashes or loops on some damaged files) ends only this process.
// KIND: grid (compressed slide), heatmap (nic gradcam HDF5), hdf5 (either; the probe decides).
// Prints one line on stdout: "ok grid" / "ok heatmap" (exit 0), or the reader's error: exit 3 when it refused the
// contents (FormatError), 1 when it could not read the file.
// Exit 2: usage. Core dumps are off; address space is capped so a file declaring huge sizes fails
// with an error instead of pushing the machine into swap.
#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/base/untrustedfileprobe.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define NIC_PROBE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NIC_PROBE_UNDER_ASAN 1
#endif
#endif

namespace {

void limitResources() {
    rlimit core{0, 0};
    setrlimit(RLIMIT_CORE, &core);
#ifndef NIC_PROBE_UNDER_ASAN
    // ASan reserves terabytes of address space, so the cap applies to plain builds only.
    constexpr rlim_t kAddressSpace = rlim_t{8} << 30;
    rlimit as{kAddressSpace, kAddressSpace};
    setrlimit(RLIMIT_AS, &as);
#endif
}

std::string validateGrid(const std::filesystem::path& path) {
    (void)nic::readLatentGridMeta(path);
    const nic::LatentGridReader reader(path);
    for (int k = 0; k < reader.variantCount(); ++k)
        (void)reader.gridHwc(k);
    (void)reader.tissueFractions();
    (void)reader.cellFlags();
    return "grid";
}

std::string validateHeatmap(const std::filesystem::path& path) {
    (void)nic::readHeatmapFile(path);
    return "heatmap";
}

std::string validateHdf5(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path))
        throw nic::IoError(path.string() + ": no such file");
    if (!nic::Hdf5File::isHdf5(path))
        throw nic::FormatError(path.string() + ": not an HDF5 file");
    bool heatmap = false;
    {
        const nic::Hdf5File f(path, nic::Hdf5File::Mode::ReadOnly);
        heatmap = f.hasAttribute("format") && f.stringAttribute("format") == "nic-heatmap";
    }
    return heatmap ? validateHeatmap(path) : validateGrid(path);
}

} // namespace

int main(int argc, char** argv) {
    limitResources();
    const auto kind = argc == 3 ? nic::probeKindFromName(argv[1]) : std::nullopt;
    if (!kind) {
        std::fprintf(stderr, "usage: nic-probe grid|heatmap|hdf5 FILE\n");
        return 2;
    }
    const std::filesystem::path path(argv[2]);
    try {
        std::string what;
        switch (*kind) {
        case nic::UntrustedKind::LatentGrid:
            what = validateGrid(path);
            break;
        case nic::UntrustedKind::Heatmap:
            what = validateHeatmap(path);
            break;
        case nic::UntrustedKind::Hdf5:
            what = validateHdf5(path);
            break;
        }
        std::printf("ok %s\n", what.c_str());
        return 0;
    } catch (const nic::FormatError& e) {
        std::printf("%s\n", e.what());
        return 3; // the contents were refused
    } catch (const nic::Error& e) {
        std::printf("%s\n", e.what());
    } catch (const std::exception& e) {
        std::printf("%s: cannot read the file: %s\n", path.c_str(), e.what());
    }
    return 1;
}

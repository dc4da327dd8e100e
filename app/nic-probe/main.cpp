// nic-probe [--read-all] KIND FILE — reads and validates an untrusted file with the core readers, in a
// process of its own (core/base/untrustedfileprobe.h starts it). Torch- and Qt-free on purpose: it starts in
// milliseconds and a crash inside a decoder (HDF5 1.10.8 crashes or loops on some damaged files) ends only
// this process.
// KIND: grid (compressed slide: metadata, variant 0, tissue and flags), grid-variants (its other dihedral
// variants), heatmap (nic gradcam HDF5), hdf5 (either; the probe decides).
// A compressed slide is checked as the readers will meet it, without reading its grids into memory:
// metadata, every dataset's type and shape, the chunk index, and every stored chunk of the variants
// checked decompressed once (Hdf5Dataset::verifyStoredChunks); tissue fractions and cell flags are
// checked the same way, then read. A grid stored in another layout than ours is read in full. A heatmap's chunks are
// checked, then it is read in full (it is small). --read-all reads every grid in full through HDF5 as
// well (the slower check; for comparing the two, e.g. fuzz/probe_corpus.py --check-accepted).
// Prints one line on stdout: "ok grid" / "ok heatmap" (exit 0), or the reader's error: exit 3 when it refused
// the contents (FormatError), 1 when it could not read the file.
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

bool readAll = false;

// HDF5 1.10's deflate filter inflates a chunk into a buffer it doubles without bound, and a reader then
// silently keeps the first chunk's worth: a chunk that decompresses to gigabytes would exhaust memory
// in the reading process. verifyStoredChunks() refuses such chunks before anything reads them.
bool verifyChunks(const nic::Hdf5File& file, const std::string& dataset) {
    return file.exists(dataset) && file.openDataset(dataset).verifyStoredChunks();
}

// `variants`: false checks what every reader reads first (metadata, variant 0, tissue, flags), true the
// other dihedral variants (UntrustedKind::LatentGridVariants).
std::string validateGrid(const std::filesystem::path& path, bool variants) {
    (void)nic::readLatentGridMeta(path);
    const nic::LatentGridReader reader(path); // format, version, completeness, dataset types and shapes
    const nic::Hdf5File file(path, nic::Hdf5File::Mode::ReadOnly);
    for (int k = variants ? 1 : 0; k < (variants ? reader.variantCount() : 1); ++k)
        if (!verifyChunks(file, nic::LatentGridReader::datasetName(k)) || readAll)
            (void)reader.gridHwc(k);
    if (variants)
        return "grid";
    (void)verifyChunks(file, "tissue_fraction");
    (void)verifyChunks(file, "cell_flags");
    (void)reader.tissueFractions();
    (void)reader.cellFlags();
    return "grid";
}

std::string validateHeatmap(const std::filesystem::path& path) {
    if (std::filesystem::exists(path) && nic::Hdf5File::isHdf5(path)) {
        const nic::Hdf5File file(path, nic::Hdf5File::Mode::ReadOnly);
        for (const char* dataset : {"heatmap", "tissue"})
            (void)verifyChunks(file, dataset);
    }
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
    return heatmap ? validateHeatmap(path) : validateGrid(path, false);
}

} // namespace

int main(int argc, char** argv) {
    limitResources();
    int first = 1;
    if (argc > 1 && std::string(argv[1]) == "--read-all") {
        readAll = true;
        first = 2;
    }
    const auto kind = argc == first + 2 ? nic::probeKindFromName(argv[first]) : std::nullopt;
    if (!kind) {
        std::fprintf(stderr, "usage: nic-probe [--read-all] grid|grid-variants|heatmap|hdf5 FILE\n");
        return 2;
    }
    const std::filesystem::path path(argv[first + 1]);
    try {
        std::string what;
        switch (*kind) {
        case nic::UntrustedKind::LatentGrid:
            what = validateGrid(path, false);
            break;
        case nic::UntrustedKind::LatentGridVariants:
            what = validateGrid(path, true);
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

// Fuzzes the heatmap reader (readHeatmapFile) on a scratch file, on the application's path (nic-probe
// first, core/base/untrustedfileprobe.h): it either returns a consistent heatmap or throws nic::Error; a crash
// or hang of this process fails the run, wherever it happens.
#include "core/base/error.h"
#include "core/base/untrustedfileprobe.h"
#include "core/heatmaps/heatmapeval.h"
#include "fuzz/fuzzsupport.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    nic::fuzz::quietHdf5();
    nic::fuzz::enableProbe();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& path = nic::fuzz::writeScratchFile(data, size, ".h5");
    nic::UntrustedFileProbe::clearCache(); // one scratch path, a new file each time
    try {
        const nic::HeatmapData h = nic::readHeatmapFile(path);
        const auto cells = static_cast<std::size_t>(h.rows) * static_cast<std::size_t>(h.cols);
        if (h.rows < 0 || h.cols < 0 || h.heat.size() != cells || h.tissue.size() != cells)
            std::abort();
    } catch (const nic::Error&) {
    }
    return 0;
}

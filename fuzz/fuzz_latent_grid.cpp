// Fuzzes the compressed-slide reader (LatentGridReader and readLatentGridMeta) on a scratch file: it
// either reads every dataset or throws nic::Error.
#include "core/error.h"
#include "core/latentgrid.h"
#include "fuzz/fuzzsupport.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    nic::fuzz::quietHdf5();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& path = nic::fuzz::writeScratchFile(data, size, ".h5");
    try {
        (void)nic::readLatentGridMeta(path);
    } catch (const nic::Error&) {
    }
    try {
        const nic::LatentGridReader r(path);
        for (int k = 0; k < r.variantCount(); ++k)
            (void)r.grid(k);
        (void)r.tissueFractions();
        (void)r.cellFlags();
    } catch (const nic::Error&) {
    }
    return 0;
}

// Fuzzes the compressed-slide reader (LatentGridReader and readLatentGridMeta) on a scratch file, on the
// application's path: nic-probe reads the file first in a child (core/base/untrustedfileprobe.h), so a crash or
// hang inside HDF5 must come back as nic::Error; then this process reads every dataset or throws
// nic::Error. A crash or hang of this process fails the run, wherever it happens.
#include "core/base/error.h"
#include "core/base/untrustedfileprobe.h"
#include "core/compression/latentgrid.h"
#include "fuzz/fuzzsupport.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    nic::fuzz::quietHdf5();
    nic::fuzz::enableProbe();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& path = nic::fuzz::writeScratchFile(data, size, ".h5");
    nic::UntrustedFileProbe::clearCache(); // one scratch path, a new file each time
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

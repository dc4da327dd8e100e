// probe_cost — what reading an untrusted compressed slide in nic-probe first costs (issue 19).
// Usage: probe_cost [--side PX] [--cell PX] [--channels C] [--augment 1|8] [--probe PATH]
// Writes the latent grid of a SIDE² slide (default 100000², 128-px cells → 782² cells, 128 float16
// channels), then times, in one run: opening it in this process as the viewer does (LatentGridReader,
// variant 0, tissue fractions, cell flags) and probing it in a child process (nic-probe validates the
// metadata and the chunk index and decompresses every stored chunk of what the open reads; with
// --augment 8, also the probe of variants 1-7 that training runs before reading them), the probe that
// reads every variant in full through HDF5 instead (`nic-probe --read-all`, the probe before the chunk
// check), plus the probe of a 2 × 3-cell grid (the cost of starting the child).
// Prints seconds and the ratios probe / open. Not a test: figures only.
#include "core/compression/latentgrid.h"
#include "core/base/untrustedfileprobe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <class F>
double medianOf3(F&& f) {
    std::vector<double> t;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        f();
        t.push_back(seconds(t0));
    }
    std::sort(t.begin(), t.end());
    return t[1];
}

void writeGrid(const std::filesystem::path& path, int rows, int cols, int channels, int augment) {
    nic::LatentGridMeta m;
    m.encoderName = "bench";
    m.encoderHash = "0";
    m.codeSize = channels;
    m.patchSize = 128;
    m.stride = 128;
    m.targetMpp = 0.5;
    m.slideMpp = 0.5;
    m.slideMppSource = "slide";
    m.readSize = 128;
    m.level0Width = std::int64_t{cols} * 128;
    m.level0Height = std::int64_t{rows} * 128;
    m.rows = rows;
    m.cols = cols;
    m.slideFile = "bench.svs";
    m.augment = augment;
    const std::vector<float> tissue(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols), 1.0F);
    constexpr int kBand = 16;
    auto w = nic::LatentGridWriter::create(path, m, tissue, kBand);
    std::vector<float> band(static_cast<std::size_t>(kBand) * static_cast<std::size_t>(cols) * static_cast<std::size_t>(channels));
    const std::vector<std::uint8_t> flags(static_cast<std::size_t>(kBand) * static_cast<std::size_t>(cols), nic::kCellEncoded);
    while (w->rowsDone() < rows) {
        const int n = std::min(kBand, rows - w->rowsDone());
        for (std::size_t i = 0; i < band.size(); ++i) // smooth values, like real embeddings compress
            band[i] = std::sin(static_cast<float>(i % 977) * 0.01F + static_cast<float>(w->rowsDone()) * 0.1F);
        std::vector<const float*> variants(static_cast<std::size_t>(augment), band.data());
        w->writeBand(n, variants, flags.data());
    }
    w->finishAndPublish(path);
}

} // namespace

int main(int argc, char** argv) {
    long long side = 100000;
    int cell = 128, channels = 128, augment = 1;
    std::filesystem::path probe;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--side")
            side = std::atoll(argv[i + 1]);
        else if (a == "--cell")
            cell = std::atoi(argv[i + 1]);
        else if (a == "--channels")
            channels = std::atoi(argv[i + 1]);
        else if (a == "--augment")
            augment = std::atoi(argv[i + 1]);
        else if (a == "--probe")
            probe = argv[i + 1];
    }
    nic::UntrustedFileProbe::enable(probe);
    if (nic::UntrustedFileProbe::executable().empty()) {
        std::fprintf(stderr, "probe_cost: nic-probe not found (pass --probe PATH or set NIC_PROBE)\n");
        return 1;
    }
    const auto dir = std::filesystem::temp_directory_path() / ("probe_cost-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const int cells = static_cast<int>((side + cell - 1) / cell);
    const auto big = dir / "big.h5";
    const auto tiny = dir / "tiny.h5";
    auto t0 = Clock::now();
    writeGrid(big, cells, cells, channels, augment);
    writeGrid(tiny, 2, 3, 4, 1);
    std::printf("grid of a %lld² slide: %d x %d cells x %d channels, augment %d, float16: %.1f MB on disk (written in %.1f s)\n",
                side, cells, cells, channels, augment, static_cast<double>(std::filesystem::file_size(big)) / 1e6, seconds(t0));

    nic::UntrustedFileProbe::disable(); // the in-process open reads directly
    const double open = medianOf3([&] {
        const nic::LatentGridReader r(big);
        (void)r.grid(0);
        (void)r.tissueFractions();
        (void)r.cellFlags();
    });
    nic::UntrustedFileProbe::enable(probe);
    auto probeOnce = [&](nic::UntrustedKind kind) {
        nic::UntrustedFileProbe::clearCache();
        const auto o = nic::UntrustedFileProbe::probe(kind, big);
        if (!o.ok)
            std::fprintf(stderr, "probe failed: %s\n", o.message.c_str());
    };
    const double probeBig = medianOf3([&] { probeOnce(nic::UntrustedKind::LatentGrid); });
    const double probeVariants =
        augment > 1 ? medianOf3([&] { probeOnce(nic::UntrustedKind::LatentGridVariants); }) : 0.0;
    // The probe before the chunk check: every variant read in full through HDF5.
    const std::string exe = "'" + nic::UntrustedFileProbe::executable().string() + "' --read-all ";
    const std::string readAllCommand = exe + "grid '" + big.string() + "' > /dev/null && " + exe + "grid-variants '" +
                                       big.string() + "' > /dev/null";
    const double probeReadAll = medianOf3([&] {
        if (std::system(readAllCommand.c_str()) != 0)
            std::fprintf(stderr, "nic-probe --read-all failed\n");
    });
    const double cached = medianOf3([&] { (void)nic::UntrustedFileProbe::probe(nic::UntrustedKind::LatentGrid, big); });
    const double probeTiny = medianOf3([&] {
        nic::UntrustedFileProbe::clearCache();
        (void)nic::UntrustedFileProbe::probe(nic::UntrustedKind::LatentGrid, tiny);
    });
    std::printf("open in process (reader + variant 0 + tissue + flags):               %.3f s\n", open);
    std::printf("probe before the open (metadata, chunk index, variant 0's chunks decompressed, tissue, flags): "
                "%.3f s  (%.2f x the open)\n",
                probeBig, probeBig / open);
    if (augment > 1)
        std::printf("probe before reading variants 1-%d (their chunks decompressed):         %.3f s  (%.2f x the open)\n",
                    augment - 1, probeVariants, probeVariants / open);
    std::printf("probe reading every variant in full instead (nic-probe --read-all):    %.3f s  (%.2f x the open)\n",
                probeReadAll, probeReadAll / open);
    std::printf("probe of a 2 x 3-cell grid (child start-up):                          %.3f s\n", probeTiny);
    std::printf("second probe of the same file (cached):                               %.6f s\n", cached);
    std::filesystem::remove_all(dir);
    return 0;
}

#pragma once
// What bench_compress and bench_slideread share: the synthetic slide both read (written once per size and
// reused from the same folder) and the process's CPU time.
#include "core/synth/synth.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/resource.h>

namespace nic::bench {

/// The folder both benchmarks keep their slides in unless told otherwise.
inline std::filesystem::path defaultSlideDir() { return std::filesystem::temp_directory_path() / "nic-bench-compress"; }

/// The JPEG quality of the benchmarks' slide unless told otherwise (--quality): the synthetic generator's default.
/// Scanners write less: Aperio's default is 70 (the real CMU-1-Small-Region.svs says Q=30), and the decoder's cost
/// per pixel falls with the quality, since fewer coefficients are left to decode.
constexpr int kDefaultQuality = SynthWriteOptions{}.quality;

/// A --quality argument: the JPEG quality 1..100 it names, or 0 when it is not one (the caller prints its usage).
inline int qualityArg(const std::string& text) {
    char* end = nullptr;
    const long q = std::strtol(text.c_str(), &end, 10);
    return end != text.c_str() && *end == '\0' && q >= 1 && q <= 100 ? static_cast<int>(q) : 0;
}

/// `dir`/synth-<size>.svs (synth-<size>-q<quality>.svs at another JPEG quality than the generator's default): a
/// size × size synthetic slide at 0.5 µm/px with two lesions (seed 11), written on every CPU when it is not there yet
/// (its time and size go to stderr).
inline std::filesystem::path ensureSlide(const std::filesystem::path& dir, std::int64_t size,
                                         int quality = kDefaultQuality) {
    const std::string suffix = quality == kDefaultQuality ? "" : "-q" + std::to_string(quality);
    const auto path = dir / ("synth-" + std::to_string(size) + suffix + ".svs");
    if (std::filesystem::exists(path))
        return path;
    SynthSlideParams p;
    p.width = size;
    p.height = size;
    p.mpp = 0.5;
    p.seed = 11;
    p.lesionCount = 2;
    SynthWriteOptions w;
    w.threads = 0;
    w.quality = quality;
    const auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "writing %s ...\n", path.c_str());
    SynthSlide(p).write(path, w);
    std::fprintf(stderr, "  %.1f s, %.1f MB\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 static_cast<double>(std::filesystem::file_size(path)) / 1e6);
    return path;
}

/// CPU seconds used by this process so far (all threads): contention-proof cost figures.
inline double cpuSeconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace nic::bench

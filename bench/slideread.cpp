// bench_slideread — what reading patches costs, through OpenSlide and through the direct JPEG tile
// decoder (core/slide/jpegtiles.h), measured in one run. Prints figures and ratios; asserts nothing.
//
//   bench_slideread [--size 20000] [--threads 0] [--rounds 2] [--quality 90] [--dir DIR]
//
// 1. Writes (or reuses, in DIR) a synthetic size × size slide at 0.5 µm/px (the one bench_compress uses), with JPEG
//    tiles of the given quality (the generator's 90 unless told; Aperio scanners write 70 by default).
// 2. Finds its tissue patches as compressSlide does (128² patches at 0.5 µm/px).
// 3. Reads every tissue patch, on `threads` threads (0: one per CPU), from a freshly opened slide (cold
//    caches) with each decoder in turn, `rounds` times in the order OpenSlide, direct, direct, OpenSlide, ...
//    and prints patches/s, CPU µs per patch and ns per pixel of each, and direct ÷ OpenSlide; checks that
//    both read the same pixels (a checksum over all patches).
// 4. Runs compressSlide with the Mean-RGB encoder (reading-bound) both ways and prints patches/s of each.
#include "bench/benchslide.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/slide/patchgrid.h"
#include "core/slide/slide.h"
#include "core/slide/tissue.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace nic;
using Clock = std::chrono::steady_clock;

namespace {

struct Reading {
    double seconds = 0, cpu = 0;
    std::uint64_t checksum = 0;
};

Reading readAll(const std::filesystem::path& path, TileDecoding decoding, const std::vector<std::pair<int, int>>& cells,
                const GridSpec& spec, int threads) {
    const Slide slide(path, decoding);
    const PatchGrid grid(slide, spec);
    std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads), 0);
    const double cpu0 = bench::cpuSeconds();
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            // Consecutive runs of cells per thread, as the compression readers claim them.
            const std::size_t n = cells.size();
            const std::size_t begin = n * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
            const std::size_t end = n * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
            std::uint64_t sum = 0;
            for (std::size_t i = begin; i < end; ++i) {
                const Image im = grid.readPatch(slide, cells[i].first, cells[i].second);
                for (std::size_t k = 0; k < im.pixels.size(); k += 61)
                    sum = sum * 1099511628211ULL + im.pixels[k] + i;
            }
            sums[static_cast<std::size_t>(t)] = sum;
        });
    for (auto& th : pool)
        th.join();
    Reading r;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.cpu = bench::cpuSeconds() - cpu0;
    for (auto s : sums)
        r.checksum = r.checksum * 31 + s;
    return r;
}

} // namespace

int main(int argc, char** argv) {
    std::int64_t size = 20000;
    int threads = 0, rounds = 2, quality = bench::kDefaultQuality;
    std::filesystem::path dir = bench::defaultSlideDir();
    bool unknown = false;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", k.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (k == "--size")
            size = std::stoll(next());
        else if (k == "--threads")
            threads = std::stoi(next());
        else if (k == "--rounds")
            rounds = std::stoi(next());
        else if (k == "--dir")
            dir = next();
        else if (k == "--quality")
            quality = bench::qualityArg(next());
        else
            unknown = true;
        if (unknown || quality == 0) {
            std::fprintf(stderr,
                         "usage: bench_slideread [--size N] [--threads N] [--rounds N] [--quality Q] [--dir DIR]\n");
            return 2;
        }
    }
    if (threads <= 0)
        threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    std::filesystem::create_directories(dir);
    const auto path = bench::ensureSlide(dir, size, quality);
    const GridSpec spec{128, 128, 0.5};
    std::vector<std::pair<int, int>> cells;
    {
        const Slide slide(path);
        PatchGrid grid(slide, spec);
        grid.setTissueFractions(tissueFractionPerCell(detectTissue(slide), grid));
        for (int r = 0; r < grid.rows(); ++r)
            for (int c = 0; c < grid.cols(); ++c)
                if (grid.tissueFraction(c, r) >= TissueOptions{}.minCellFraction)
                    cells.emplace_back(c, r);
        std::printf("bench_slideread: %s, %lld x %lld, vendor %s, %d levels, %zu tissue patches of 128^2 read at "
                    "level %d (read size %lld), %d threads\n",
                    path.filename().c_str(), static_cast<long long>(slide.width()), static_cast<long long>(slide.height()),
                    slide.vendor().c_str(), slide.levelCount(), cells.size(), grid.level(),
                    static_cast<long long>(grid.readSize()), threads);
        std::printf("direct decoding of that level: %s\n", slide.decodesTilesDirectly(grid.level()) ? "yes" : "no");
        // Whole tiles are decoded: the tiles under the tissue patches, against the patches' own pixels.
        const auto tw = slide.property("openslide.level[" + std::to_string(grid.level()) + "].tile-width");
        const auto th = slide.property("openslide.level[" + std::to_string(grid.level()) + "].tile-height");
        if (tw && th && std::stoll(*tw) > 0 && std::stoll(*th) > 0 && grid.level() == 0 && grid.readSize() == 128) {
            const long long w = std::stoll(*tw), h = std::stoll(*th);
            std::set<std::pair<long long, long long>> tiles;
            for (const auto& [c, r] : cells) {
                const Level0Rect rect = grid.cellRect(c, r);
                for (long long y = rect.y / h; y <= (rect.y + 127) / h; ++y)
                    for (long long x = rect.x / w; x <= (rect.x + 127) / w; ++x)
                        tiles.emplace(x, y);
            }
            std::printf("tiles of %lld x %lld under those patches: %zu, %.2f decoded pixels per patch pixel\n", w, h,
                        tiles.size(),
                        static_cast<double>(tiles.size()) * static_cast<double>(w * h) /
                            (static_cast<double>(cells.size()) * 128.0 * 128.0));
        }
    }
    const double pixels = static_cast<double>(cells.size()) * 128.0 * 128.0;
    double os = 0, osCpu = 0, di = 0, diCpu = 0;
    std::uint64_t osSum = 0, diSum = 0;
    for (int round = 0; round < rounds; ++round)
        for (int k = 0; k < 2; ++k) {
            const bool direct = (round + k) % 2 == 1;
            const Reading r =
                readAll(path, direct ? TileDecoding::Direct : TileDecoding::OpenSlideOnly, cells, spec, threads);
            std::printf("  round %d %-9s %8.1f patches/s  %7.1f CPU us/patch  %5.2f CPU ns/pixel\n", round + 1,
                        direct ? "direct" : "OpenSlide", static_cast<double>(cells.size()) / r.seconds,
                        r.cpu / static_cast<double>(cells.size()) * 1e6, r.cpu / pixels * 1e9);
            (direct ? di : os) += r.seconds;
            (direct ? diCpu : osCpu) += r.cpu;
            (direct ? diSum : osSum) = r.checksum;
        }
    std::printf("reading, OpenSlide: %.1f patches/s, %.1f CPU us/patch\n", static_cast<double>(cells.size()) * rounds / os,
                osCpu / static_cast<double>(cells.size()) / rounds * 1e6);
    std::printf("reading, direct:    %.1f patches/s, %.1f CPU us/patch\n", static_cast<double>(cells.size()) * rounds / di,
                diCpu / static_cast<double>(cells.size()) / rounds * 1e6);
    std::printf("direct / OpenSlide: %.2f x the patches/s, %.2f x the CPU time per patch; same pixels: %s\n", os / di,
                diCpu / osCpu, osSum == diSum ? "yes" : "NO");

    // The end-to-end effect where reading is the bound: Mean-RGB compression of the whole slide.
    MeanRgbEncoder enc(128);
    for (const bool direct : {false, true}) {
        if (direct)
            ::unsetenv("NIC_TILE_DECODER");
        else
            ::setenv("NIC_TILE_DECODER", "openslide", 1);
        const auto out = dir / "slideread-out.h5";
        std::filesystem::remove(out);
        CompressOptions o;
        const auto t0 = Clock::now();
        const CompressResult r = compressSlide(path, enc, out, o);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        std::printf("compressSlide, mean-rgb, %-9s: %.1f patches/s in the encoding phase (whole call %.1f s, %lld "
                    "patches)\n",
                    direct ? "direct" : "OpenSlide", r.patchesPerSecond, s, static_cast<long long>(r.encodedCells));
        std::filesystem::remove(out);
    }
    ::unsetenv("NIC_TILE_DECODER");
    return osSum == diSum ? 0 : 1;
}

// synth_rss — time and peak memory of writing one synthetic slide (core/synth/synth.h).
// Usage: synth_rss WxH [--mpp M] [--seed S] [--lesions N] [--lesion-size MIN:MAX] [--threads T]
//                      [--out FILE.svs] [--png FILE.png] [--png-side N] [--keep]
// Prints wall time, Mpx/s, file size and peak RSS (getrusage). Not a test: figures only.
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/resource.h>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s WxH [--mpp M] [--seed S] [--lesions N] [--lesion-size MIN:MAX] "
                             "[--threads T] [--out FILE.svs] [--png FILE.png] [--png-side N] [--keep]\n", argv[0]);
        return 2;
    }
    nic::SynthSlideParams p;
    nic::SynthWriteOptions w;
    std::string size = argv[1];
    const auto x = size.find('x');
    p.width = std::stoll(size.substr(0, x));
    p.height = x == std::string::npos ? p.width : std::stoll(size.substr(x + 1));
    std::filesystem::path out = std::filesystem::temp_directory_path() / "synth_rss.svs";
    std::string png;
    int pngSide = 800;
    bool keep = false;
    p.lesionCount = 2;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--mpp") p.mpp = std::stod(next());
        else if (a == "--seed") p.seed = std::stoull(next());
        else if (a == "--lesions") p.lesionCount = std::stoi(next());
        else if (a == "--lesion-size") {
            const std::string r = next();
            const auto c = r.find(':');
            p.lesionMinUm = std::stod(r.substr(0, c));
            p.lesionMaxUm = c == std::string::npos ? p.lesionMinUm : std::stod(r.substr(c + 1));
        } else if (a == "--threads") w.threads = std::stoi(next());
        else if (a == "--out") out = next();
        else if (a == "--png") png = next();
        else if (a == "--png-side") pngSide = std::stoi(next());
        else if (a == "--keep") keep = true;
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
    }
    try {
        const auto t0 = std::chrono::steady_clock::now();
        const nic::SynthSlide slide(p);
        const auto t1 = std::chrono::steady_clock::now();
        slide.write(out, w);
        const auto t2 = std::chrono::steady_clock::now();
        const double layout = std::chrono::duration<double>(t1 - t0).count();
        const double write = std::chrono::duration<double>(t2 - t1).count();
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::printf("size %lldx%lld mpp %.3g: layout %.2f s, write %.2f s (%.1f Mpx/s), file %.1f MB, peak RSS %.0f MB\n",
                    static_cast<long long>(p.width), static_cast<long long>(p.height), p.mpp, layout, write,
                    static_cast<double>(p.width) * static_cast<double>(p.height) / write / 1e6,
                    static_cast<double>(std::filesystem::file_size(out)) / 1e6, static_cast<double>(ru.ru_maxrss) / 1024.0);
        std::printf("tissue fraction %.3f, lesions %zu, lesion fraction of tissue %.4f\n", slide.tissueFraction(),
                    slide.lesions().size(), slide.lesionFraction());
        if (!png.empty()) {
            const nic::Slide s(out);
            nic::writePng(png, s.thumbnail(pngSide));
        }
        if (!keep)
            std::filesystem::remove(out);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "synth_rss: %s\n", e.what());
        return 1;
    }
    return 0;
}

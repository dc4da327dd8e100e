// longuse — one nic-studio main window through a long working day (issue 19): opens and closes slides
// with a heatmap and annotations beside each, pans and zooms each one on a scripted path, and prints the
// resident memory (RSS) over time. Run under `xvfb-run -a`. Figures only, never a test (house style #11).
//
// Usage: longuse [--slides N] [--minutes M] [--distinct K] [--side PX] [--seed S]
//   N slides are opened one after another (default 200) within M minutes (default 10), cycling over K
//   distinct synthetic slides (default 8) of PX² pixels (default 8192), written once to
//   <temp>/nic-bench/longuse/ with `<stem>_heatmap.h5` (read through nic-probe, as in nic-studio) and
//   `<stem>.xml` (40 polygons of 24 vertices) beside each.
// Prints RSS after the first slide, then every 10 slides, and at the end the growth since the first slide.
// Each line also shows where the memory is: resident memory by kind of mapping (/proc/self/smaps: the
// main heap, other anonymous memory such as other threads' malloc arenas, and files), glibc's count of
// bytes in use and free inside malloc (mallinfo2, all arenas; free bytes need not be resident), the
// tile cache of the slide just closed and the QObjects left under the window. --no-trim: MainWindow
// does not hand freed memory back after closing a tab (malloc_trim; it does by default), to compare.
// --after-job: first sets glibc's malloc as it is in nic-studio after any LibTorch job has run (one
// arena, mmap only above 1 GiB, trim only above 256 MiB free: keepActivationsInHeap() in
// core/encoders/nn/encoderfile.cpp; this benchmark runs no job itself).
#include "ui/glformat.h"
#include "core/annotations/annotation.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/synth/synth.h"
#include "core/base/untrustedfileprobe.h"
#include "ui/mainwindow.h"
#include "ui/slidetab.h"
#include "ui/slideview.h"

#include <QApplication>
#include <QPointer>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QSurfaceFormat>
#include <QTabWidget>
#include <QTest>

#include <malloc.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double rssMb() {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:") {
            double kb = 0;
            in >> kb;
            return kb / 1024.0;
        }
        std::getline(in, key);
    }
    return 0.0;
}

// Resident memory by kind of mapping (/proc/self/smaps): the main heap, other anonymous memory (the
// arenas of other threads, thread stacks, what the GL driver maps itself) and files (libraries, fonts).
struct Resident {
    double heapMb = 0, anonMb = 0, fileMb = 0;
};

Resident resident() {
    std::ifstream in("/proc/self/smaps");
    Resident r;
    std::string line;
    double* current = nullptr;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        const std::string first = line.substr(0, line.find(' '));
        if (first.find('-') != std::string::npos && first.back() != ':') { // a mapping's header line
            // "start-end perms offset dev inode   [path]"
            std::istringstream fields(line);
            std::string range, perms, offset, dev, inode, path;
            fields >> range >> perms >> offset >> dev >> inode;
            std::getline(fields, path);
            path.erase(0, path.find_first_not_of(' '));
            if (path == "[heap]")
                current = &r.heapMb;
            else if (path.empty() || path[0] == '[')
                current = &r.anonMb;
            else
                current = &r.fileMb;
        } else if (current && line.rfind("Rss:", 0) == 0) {
            *current += std::stod(line.substr(4)) / 1024.0;
        }
    }
    return r;
}

struct Heap {
    double inUseMb = 0, freeMb = 0;
};

Heap heap() {
    const struct mallinfo2 m = ::mallinfo2();
    constexpr double kMb = 1024.0 * 1024.0;
    return {static_cast<double>(m.uordblks + m.hblkhd) / kMb, static_cast<double>(m.fordblks) / kMb};
}

std::filesystem::path prepareSlide(const std::filesystem::path& dir, int index, std::int64_t side, std::uint64_t seed) {
    const auto slide = dir / ("longuse-" + std::to_string(side) + "-" + std::to_string(index) + ".svs");
    if (!std::filesystem::exists(slide)) {
        nic::SynthSlideParams p;
        p.width = p.height = side;
        p.seed = seed + static_cast<std::uint64_t>(index);
        p.lesionCount = 2;
        nic::SynthSlide(p).write(slide, nic::SynthWriteOptions{});
    }
    auto heat = slide;
    heat.replace_filename(slide.stem().string() + "_heatmap.h5");
    if (!std::filesystem::exists(heat)) {
        nic::HeatmapData d;
        d.cellSize = 64;
        d.rows = d.cols = static_cast<int>((side + 63) / 64);
        d.level0Width = d.level0Height = side;
        d.slideFile = slide.filename().string();
        for (int r = 0; r < d.rows; ++r)
            for (int c = 0; c < d.cols; ++c) {
                d.heat.push_back(static_cast<float>(0.5 + 0.5 * std::sin(r * 0.1 + c * 0.07 + index)));
                d.tissue.push_back(1.0F);
            }
        nic::writeHeatmapFile(heat, d);
    }
    auto xml = slide;
    xml.replace_extension(".xml");
    if (!std::filesystem::exists(xml))
        nic::synthAnnotationCrowd(40, 24, static_cast<double>(side), seed + static_cast<std::uint64_t>(index)).save(xml);
    return slide;
}

} // namespace

int main(int argc, char** argv) {
    nic::setDefaultGlFormat(); // before QApplication
    QStandardPaths::setTestModeEnabled(true); // default settings, not the user's
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("nic-bench"));
    QApplication::setApplicationName(QStringLiteral("longuse"));

    int slides = 200, distinct = 8;
    double minutes = 10.0;
    std::int64_t side = 8192;
    std::uint64_t seed = 1;
    bool trim = true, afterJob = false;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--no-trim")
            trim = false;
        if (std::string(argv[i]) == "--after-job")
            afterJob = true;
    }
    if (afterJob) { // the same three settings as core/encoders/nn/encoderfile.cpp
        ::mallopt(M_ARENA_MAX, 1);
        ::mallopt(M_MMAP_THRESHOLD, 1 << 30);
        ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    nic::MainWindow::setTrimHeapOnClose(trim);
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--no-trim" || a == "--after-job") {
            --i;
            continue;
        }
        if (a == "--slides") slides = std::stoi(argv[i + 1]);
        else if (a == "--minutes") minutes = std::stod(argv[i + 1]);
        else if (a == "--distinct") distinct = std::stoi(argv[i + 1]);
        else if (a == "--side") side = std::stoll(argv[i + 1]);
        else if (a == "--seed") seed = std::stoull(argv[i + 1]);
    }
    const auto dir = std::filesystem::temp_directory_path() / "nic-bench" / "longuse";
    std::filesystem::create_directories(dir);
    std::vector<std::filesystem::path> paths;
    try {
        for (int k = 0; k < distinct; ++k)
            paths.push_back(prepareSlide(dir, k, side, seed));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "longuse: error: %s\n", e.what());
        return 1;
    }
    nic::UntrustedFileProbe::enable(); // as nic-studio does; every heatmap is read by nic-probe first
    nic::UntrustedFileProbe::clearCache();

    nic::MainWindow w;
    w.show();
    if (!QTest::qWaitForWindowExposed(&w)) {
        std::fprintf(stderr, "longuse: error: the window was never exposed (run under xvfb-run -a)\n");
        return 1;
    }
    std::printf("%d slides (%d distinct, %lld² px, heatmap + 40 annotations each) in %.1f min%s%s; RSS at start %.0f MB\n",
                slides, distinct, static_cast<long long>(side), minutes, trim ? "" : ", no trim after closing",
                afterJob ? ", malloc set as after a LibTorch job" : "", rssMb());
    std::mt19937_64 rng(seed);
    const auto t0 = Clock::now();
    const double perSlide = minutes * 60.0 / slides;
    double firstRss = 0.0, maxRss = 0.0;
    int moves = 0, failures = 0;
    for (int i = 0; i < slides; ++i) {
        const auto slideStart = Clock::now();
        nic::SlideTab* tab = w.openSlide(QString::fromStdString(paths[static_cast<std::size_t>(i % distinct)].string()));
        QSignalSpy heat(tab, &nic::SlideTab::heatmapLoaded);
        QSignalSpy ann(tab, &nic::SlideTab::annotationsLoaded);
        QSignalSpy failed(tab, &nic::SlideTab::layerFailed);
        nic::SlideView* v = tab->view();
        v->setAnimationsEnabled(false);
        if (!QTest::qWaitFor([&] { return v->hasSlide() && heat.count() > 0 && ann.count() > 0; }, 30000) || failed.count() > 0)
            ++failures;
        // Pan and zoom on a scripted random path until this slide's share of the time is used.
        std::uniform_real_distribution<double> pos(0.0, static_cast<double>(side));
        std::uniform_real_distribution<double> span(256.0, static_cast<double>(side));
        while (std::chrono::duration<double>(Clock::now() - slideStart).count() < perSlide) {
            const double s = span(rng);
            v->zoomToRect({pos(rng) - s / 2, pos(rng) - s / 2, s, s * 0.75});
            (void)QTest::qWaitFor([&] { return v->isFullyLoaded(); }, 2000);
            ++moves;
        }
        const double cacheMb = static_cast<double>(v->cachedBytes()) / (1024.0 * 1024.0);
        const std::size_t textures = v->cachedTileCount();
        const QPointer<nic::SlideTab> closing(tab);
        Q_EMIT w.tabs()->tabCloseRequested(w.tabs()->indexOf(tab));
        (void)QTest::qWaitFor([&] { return closing.isNull(); }, 10000); // deleteLater runs
        QTest::qWait(700); // MainWindow's heap trim 0.3 s after the tab is gone
        const double rss = rssMb();
        maxRss = std::max(maxRss, rss);
        if (i == 0)
            firstRss = rss;
        if (i == 0 || (i + 1) % 10 == 0 || i + 1 == slides) {
            const Heap h = heap();
            const Resident r = resident();
            std::printf("t=%6.1f s  slides closed %3d  RSS %7.1f MB (main heap %5.1f, other anonymous %5.1f, files %5.1f)  "
                        "malloc: in use %5.1f MB, free %5.1f MB  closed tab's tile cache %5.1f MB (%zu textures)  "
                        "QObjects under the window %d\n",
                        std::chrono::duration<double>(Clock::now() - t0).count(), i + 1, rss, r.heapMb, r.anonMb,
                        r.fileMb, h.inUseMb, h.freeMb, cacheMb, textures,
                        static_cast<int>(w.findChildren<QObject*>().size()));
        }
        std::fflush(stdout);
    }
    const double last = rssMb();
    if (!trim) { // what one malloc_trim would give back now
        ::malloc_trim(0);
        std::printf("after one malloc_trim(0) at the end: RSS %.1f MB (%+.1f MB)\n", rssMb(), rssMb() - last);
    }
    std::printf("RSS after the first slide %.1f MB, at the end %.1f MB (%+.1f MB), highest %.1f MB; %d pans/zooms, "
                "%d slides whose layers failed or did not load\n",
                firstRss, last, last - firstRss, maxRss, moves, failures);
    return 0;
}

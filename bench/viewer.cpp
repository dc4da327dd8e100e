// viewer — frame times of nic-studio's SlideView along a scripted path over a large slide (figures only,
// never a test: house style #11). Run under `xvfb-run -a`.
//
// Usage: viewer [SLIDE] [--size N] [--view WxH] [--seed S] [--annotations-only]
//        (NIC_BENCH_VERBOSE=1: one line per jump)
//   SLIDE     a slide to use; without it a synthetic N × N slide (default 50000, core/synth/synth.h) is written
//             once to <temp>/nic-bench/ and reused by later runs.
//
// Prints, with the load average before and after (the reference machine has 2 cores shared with builds):
//   (a) frame times with every visible tile cached (panning inside the prefetched ring at 1:1),
//   (b) frame times over the whole scripted path (jumps, pans and animated zooms across levels, paced
//       at 60 Hz so tiles arrive while frames are drawn),
//   time from a viewport jump to full detail, and the visible-tile cache hit rate;
//   (c) paint times with a huge annotation set (10,000 polygons, 210,000 vertices, as in the robustness
//       tests) over the slide, from the whole slide in view down to 1:1 (--annotations-only: just this).
// "paint" is the CPU time of paintGL ending with glFinish (Mesa llvmpipe rasterises on the CPU, so it
// includes the drawing); "frame" is the wall time from requesting a frame to Qt having composed it into
// the window (frameSwapped).
#include "ui/glformat.h"
#include "core/annotations/annotation.h"
#include "core/synth/synth.h"
#include "ui/slideview.h"
#include "ui/tileloader.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QSurfaceFormat>
#include <QTest>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(std::lround(p / 100.0 * static_cast<double>(v.size() - 1)))];
}

void print(const char* what, const std::vector<double>& v) {
    std::printf("  %-44s n=%5zu  p50 %7.2f  p95 %7.2f  p99 %7.2f  max %7.2f ms\n", what, v.size(), percentile(v, 50),
                percentile(v, 95), percentile(v, 99), v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()));
}

std::string loadAverage() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

std::filesystem::path syntheticSlide(std::int64_t side, std::uint64_t seed) {
    const auto dir = std::filesystem::temp_directory_path() / "nic-bench";
    std::filesystem::create_directories(dir);
    const auto path = dir / ("viewer-synth-" + std::to_string(side) + "x" + std::to_string(side) + "-s" + std::to_string(seed) + ".svs");
    if (std::filesystem::exists(path)) {
        std::printf("slide: %s (cached)\n", path.string().c_str());
        return path;
    }
    std::printf("slide: writing %s (once; later runs reuse it) ...\n", path.string().c_str());
    std::fflush(stdout);
    nic::SynthSlideParams p;
    p.width = p.height = side;
    p.seed = seed;
    p.lesionCount = 2;
    const auto t0 = std::chrono::steady_clock::now();
    nic::SynthSlide(p).write(path, nic::SynthWriteOptions{});
    std::printf("slide: written in %.0f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return path;
}

} // namespace

int main(int argc, char** argv) {
    nic::setDefaultGlFormat(); // before QApplication
    QStandardPaths::setTestModeEnabled(true); // default settings (512 MiB tile cache), not the user's
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("nic-bench"));
    QApplication::setApplicationName(QStringLiteral("viewer"));

    std::string slideArg;
    std::int64_t side = 50000;
    std::uint64_t seed = 1;
    int viewW = 1024, viewH = 768;
    bool annotationsOnly = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--size") side = std::stoll(next());
        else if (a == "--annotations-only") annotationsOnly = true;
        else if (a == "--seed") seed = std::stoull(next());
        else if (a == "--view") {
            const std::string v = next();
            const auto x = v.find('x');
            viewW = std::stoi(v.substr(0, x));
            viewH = std::stoi(v.substr(x + 1));
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "usage: viewer [SLIDE] [--size N] [--view WxH] [--seed S] [--annotations-only]\n");
            return 2;
        } else slideArg = a;
    }
    std::printf("load average at start: %s\n", loadAverage().c_str());
    std::filesystem::path slidePath;
    try {
        slidePath = slideArg.empty() ? syntheticSlide(side, seed) : std::filesystem::path(slideArg);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "viewer: error: %s\n", e.what());
        return 1;
    }

    nic::SlideView view;
    view.resize(viewW, viewH);
    view.show();
    if (!QTest::qWaitForWindowExposed(&view)) {
        std::fprintf(stderr, "viewer: error: the window was never exposed (run under xvfb-run -a)\n");
        return 1;
    }
    QSignalSpy opened(&view, &nic::SlideView::slideOpened);
    QSignalSpy failed(&view, &nic::SlideView::slideFailed);
    QElapsedTimer t;
    t.start();
    view.openSlide(QString::fromStdString(slidePath.string()));
    if (!QTest::qWaitFor([&] { return opened.count() > 0 || failed.count() > 0; }, 60000) || failed.count() > 0) {
        std::fprintf(stderr, "viewer: error: %s\n", qPrintable(view.errorMessage()));
        return 1;
    }
    const double openMs = static_cast<double>(t.nsecsElapsed()) / 1e6;
    if (!QTest::qWaitFor([&] { return view.isFullyLoaded(); }, 60000))
        std::printf("note: the fit view was not fully loaded after 60 s\n");
    const auto& pyr = view.pyramid();
    std::printf("slide %.0f x %.0f px, %d levels; view %d x %d; opened in %.0f ms (background), fit view loaded after %.0f ms; "
                "%d decode threads\n",
                pyr.width(), pyr.height(), pyr.levelCount(), viewW, viewH, openMs, static_cast<double>(t.nsecsElapsed()) / 1e6,
                view.loader()->threadCount());
    view.setFinishFrames(true);
    view.setAnimationsEnabled(false);

    std::mt19937 rng(static_cast<std::uint32_t>(seed));
    std::uniform_real_distribution<double> fx(0.1 * pyr.width(), 0.9 * pyr.width());
    std::uniform_real_distribution<double> fy(0.1 * pyr.height(), 0.9 * pyr.height());

    // (c) A huge annotation set: paint time at zooms from the whole slide to 1:1, tiles cached first.
    auto annotationSection = [&] {
        const auto set = std::make_shared<nic::AnnotationSet>(nic::synthAnnotationCrowd(10000, 21, std::min(pyr.width(), pyr.height())));
        std::size_t vertices = 0;
        for (const auto& a : set->annotations)
            vertices += a.coordinates.size();
        QElapsedTimer setTimer;
        setTimer.start();
        view.setAnnotations(set);
        const double setMs = static_cast<double>(setTimer.nsecsElapsed()) / 1e6;
        std::printf("(c) %zu annotations, %zu vertices over the slide: setAnnotations %.1f ms\n", set->annotations.size(), vertices, setMs);
        std::vector<double> all, allBare;
        const double fit = nic::fitZoom(pyr, viewW, viewH);
        for (const double zoom : {fit, 0.01, 0.03, 0.1, 0.3, 1.0}) {
            std::vector<double> paints, bare; // with the annotations shown / hidden, same views
            for (int place = 0; place < 3; ++place) {
                view.setViewport({zoom == fit ? pyr.width() / 2 : fx(rng), zoom == fit ? pyr.height() / 2 : fy(rng), zoom, 0, 0});
                if (!QTest::qWaitFor([&] { return view.isFullyLoaded(); }, 30000))
                    std::printf("note: not fully loaded after 30 s\n");
                QTest::qWait(300); // prefetch
                for (const bool shown : {true, false, true, false}) {
                    view.setAnnotationsVisible(shown);
                    view.resetStatistics();
                    for (int i = 0; i < 6; ++i) {
                        nic::Viewport v = view.viewport();
                        v.centerX += (i % 2 ? 2.0 : -2.0) / v.zoom;
                        view.setViewport(v);
                        QSignalSpy swapped(&view, &QOpenGLWidget::frameSwapped);
                        view.update();
                        swapped.wait(5000);
                    }
                    const auto& f = view.statistics().frameMs;
                    (shown ? paints : bare).insert((shown ? paints : bare).end(), f.begin(), f.end());
                }
            }
            view.setAnnotationsVisible(true);
            char what[80];
            std::snprintf(what, sizeof what, "(c) paint, zoom %.4g, annotations shown", zoom);
            print(what, paints);
            std::snprintf(what, sizeof what, "(c) paint, zoom %.4g, annotations hidden", zoom);
            print(what, bare);
            all.insert(all.end(), paints.begin(), paints.end());
            allBare.insert(allBare.end(), bare.begin(), bare.end());
        }
        print("(c) paint, all zooms, annotations hidden", allBare);
        print("(c) paint, all zooms, annotations shown", all);
        view.setAnnotations(nullptr);
        return all;
    };
    if (annotationsOnly) {
        const auto all = annotationSection();
        std::printf("load average at end: %s\n", loadAverage().c_str());
        return 0;
    }
    const double zooms[] = {1.0, 0.5, 0.25, 1.0, 0.125, 2.0};

    // Jumps: a new place at a zoom across levels; time until every visible tile is a texture, taken
    // in the paint that first finds them all (statistics().lastFullDetailMs).
    std::vector<double> jumps;
    std::vector<std::vector<double>> jumpsByZoom(6);
    const bool verbose = std::getenv("NIC_BENCH_VERBOSE") != nullptr;
    for (int i = 0; i < 18; ++i) {
        QElapsedTimer polled;
        polled.start();
        double atHandMs = -1.0; // when the last visible tile had been decoded (before its upload and paint)
        const auto arrivals = QObject::connect(&view, &nic::SlideView::tileArrived, &view, [&] {
            if (atHandMs < 0 && view.isFigureReady(view.viewport()))
                atHandMs = static_cast<double>(polled.nsecsElapsed()) / 1e6;
        });
        view.resetStatistics();
        view.setViewport({fx(rng), fy(rng), zooms[i % 6], 0, 0});
        if (!QTest::qWaitFor([&] { return view.isFullyLoaded() && view.statistics().lastFullDetailMs >= 0; }, 20000)) {
            std::printf("  jump %d: not fully loaded after 20 s\n", i);
            continue;
        }
        if (verbose)
            std::printf("  jump %2d zoom %-5g: full detail %.0f ms (polled %.0f ms); visible tiles decoded after %.0f ms; "
                        "%zu tiles decoded, %zu uploaded, %zu frames painted (%.0f ms) meanwhile\n",
                        i, zooms[i % 6], view.statistics().lastFullDetailMs, static_cast<double>(polled.elapsed()), atHandMs,
                        view.statistics().decodeMs.size(), view.statistics().uploadMs.size(), view.statistics().frameMs.size(),
                        std::accumulate(view.statistics().frameMs.begin(), view.statistics().frameMs.end(), 0.0));
        QObject::disconnect(arrivals);
        jumps.push_back(view.statistics().lastFullDetailMs);
        jumpsByZoom[static_cast<std::size_t>(i % 6)].push_back(view.statistics().lastFullDetailMs);
    }

    // One frame: request it and wait until Qt has composed it into the window (frameSwapped).
    auto drawFrame = [&view]() -> double {
        QSignalSpy swapped(&view, &QOpenGLWidget::frameSwapped);
        QElapsedTimer f;
        f.start();
        view.update();
        swapped.wait(2000);
        return static_cast<double>(f.nsecsElapsed()) / 1e6;
    };

    // (a) All visible tiles cached: at 1:1, let the prefetch ring arrive, then pan inside it.
    std::vector<double> cachedWall;
    std::vector<double> cachedPaint;
    for (int round = 0; round < 3; ++round) {
        view.setViewport({fx(rng), fy(rng), 1.0, 0, 0});
        if (!QTest::qWaitFor([&] { return view.isFullyLoaded(); }, 20000))
            std::printf("note: pan round %d: not fully loaded after 20 s\n", round);
        QTest::qWait(1500); // prefetch ring
        view.resetStatistics();
        for (int i = 0; i < 200; ++i) {
            nic::Viewport v = view.viewport();
            v.centerX += (i % 100 < 50 ? 3.0 : -3.0);
            v.centerY += (i < 100 ? 1.0 : -1.0);
            view.setViewport(v);
            const double ms = drawFrame();
            if (view.isFullyLoaded())
                cachedWall.push_back(ms);
        }
        const auto& s = view.statistics().cachedFrameMs;
        cachedPaint.insert(cachedPaint.end(), s.begin(), s.end());
    }

    // (b) The scripted path, paced at 60 Hz: pans at 1:1, then animated wheel-like zooms out to the
    // whole slide and back in elsewhere, with pans between; tiles arrive while it runs.
    view.resetStatistics();
    view.setAnimationsEnabled(true);
    std::vector<double> pathWall;
    auto frame = [&] {
        const double ms = drawFrame();
        pathWall.push_back(ms);
        QTest::qWait(std::max(1, 16 - static_cast<int>(ms)));
    };
    for (int leg = 0; leg < 4; ++leg) {
        view.setAnimationsEnabled(false);
        view.setViewport({fx(rng), fy(rng), 1.0, 0, 0});
        view.setAnimationsEnabled(true);
        for (int i = 0; i < 60; ++i) { // pan 12 px per frame
            nic::Viewport v = view.viewport();
            v.centerX += 12.0 / v.zoom;
            view.setViewport(v);
            frame();
        }
        for (int i = 0; i < 12; ++i) { // zoom out step by step towards the whole slide
            view.zoomBy(1 / 1.6, QPointF(viewW * 0.3, viewH * 0.6));
            for (int k = 0; k < 6; ++k)
                frame();
        }
        for (int i = 0; i < 12; ++i) { // and back in at another place
            view.zoomBy(1.6, QPointF(viewW * 0.7, viewH * 0.4));
            for (int k = 0; k < 6; ++k)
                frame();
        }
    }
    const auto stats = view.statistics();

    std::printf("results (paint = paintGL + glFinish CPU time; frame = request to frameSwapped, wall time):\n");
    print("(a) paint, all visible tiles cached", cachedPaint);
    print("(a) frame, all visible tiles cached", cachedWall);
    print("(b) paint, whole path", stats.frameMs);
    print("(b) paint, whole path, frames fully cached", stats.cachedFrameMs);
    print("(b) frame, whole path", pathWall);
    print("jump -> full detail", jumps);
    for (std::size_t z = 0; z < 6; ++z) {
        if (z == 3)
            continue; // the same zoom as z = 0
        auto all = jumpsByZoom[z];
        if (z == 0)
            all.insert(all.end(), jumpsByZoom[3].begin(), jumpsByZoom[3].end());
        const int level = nic::levelForZoom(pyr, zooms[z]);
        std::printf("    at zoom %-5g (level %d, %3zu visible tiles): max %7.1f ms over %zu jumps\n", zooms[z], level,
                    nic::visibleTiles(pyr, {pyr.width() / 2, pyr.height() / 2, zooms[z], viewW, viewH}, level).size(),
                    all.empty() ? 0.0 : *std::max_element(all.begin(), all.end()), all.size());
    }
    print("tile decode (worker thread)", stats.decodeMs);
    print("tile texture upload (GUI thread)", stats.uploadMs);
    const double hitRate = stats.visibleLookups ? 100.0 * static_cast<double>(stats.visibleHits) / static_cast<double>(stats.visibleLookups) : 0.0;
    std::printf("  visible-tile cache hit rate on the path: %.1f %% (%llu of %llu lookups); %zu textures cached (%.0f MiB); "
                "%llu stale requests dropped\n",
                hitRate, static_cast<unsigned long long>(stats.visibleHits), static_cast<unsigned long long>(stats.visibleLookups),
                view.cachedTileCount(), static_cast<double>(view.cachedBytes()) / 1048576.0,
                static_cast<unsigned long long>(view.loader()->droppedCount()));
    view.setAnimationsEnabled(false);
    annotationSection();
    std::printf("targets: (a) paint p95 <= 16 ms: %s; jump -> full detail p95 <= 500 ms: %s\n",
                percentile(cachedPaint, 95) <= 16.0 ? "met" : "MISSED", percentile(jumps, 95) <= 500.0 ? "met" : "MISSED");
    std::printf("load average at end: %s\n", loadAverage().c_str());
    return 0;
}

// Viewer figures (not a test of speed: nothing is asserted on time, house style #11). Runs only with
// NIC_VIEWER_FIGURES=1: writes a 16384² synthetic slide, then jumps, pans and zooms, and prints frame-time
// percentiles, time from a jump to full detail, tile decode times and the cache hit rate.
#include "testslide.h"
#include "testsupport.h"
#include "ui/slideview.h"
#include "ui/tileloader.h"

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTest>
#include <QWheelEvent>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>

using namespace nic;

namespace {
double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1))];
}
void print(const char* what, const std::vector<double>& v) {
    std::printf("  %-34s n=%4zu  p50 %7.2f  p95 %7.2f  p99 %7.2f  max %7.2f ms\n", what, v.size(), percentile(v, 50),
                percentile(v, 95), percentile(v, 99), v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()));
}
} // namespace

TEST(ViewerFigures, JumpPanZoom) {
    if (!std::getenv("NIC_VIEWER_FIGURES"))
        GTEST_SKIP() << "set NIC_VIEWER_FIGURES=1 to print the viewer's figures";
    nic::test::TempDir dir;
    nic::test::TestSlideGeometry g;
    g.width = g.height = 16384;
    g.levels = 7;
    g.tissueX0 = 2000, g.tissueY0 = 3000, g.tissueX1 = 12000, g.tissueY1 = 11000;
    g.blueX0 = 9000, g.blueY0 = 9000, g.blueX1 = 14000, g.blueY1 = 15000;
    QElapsedTimer t;
    t.start();
    const auto path = dir / "big.tif";
    nic::test::writeTestSlide(path, g);
    std::printf("viewer figures: synthetic slide %d × %d, %d levels, written in %.1f s\n", g.width, g.height, g.levels,
                static_cast<double>(t.elapsed()) / 1000.0);

    SlideView view;
    view.resize(1024, 768);
    view.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&view));
    QSignalSpy opened(&view, &SlideView::slideOpened);
    t.restart();
    view.openSlide(QString::fromStdString(path.string()));
    ASSERT_TRUE(opened.wait(20000));
    const double openMs = static_cast<double>(t.nsecsElapsed()) / 1e6;
    ASSERT_TRUE(QTest::qWaitFor([&] { return view.isFullyLoaded(); }, 20000));
    std::printf("  open (background) %.1f ms, fit view fully loaded %.1f ms after open started; %d loader threads\n", openMs,
                static_cast<double>(t.nsecsElapsed()) / 1e6, view.loader()->threadCount());
    view.setFinishFrames(true);
    view.setAnimationsEnabled(false);

    // Jumps to random places at 1:1 (level 0): time until every visible tile is a texture.
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> pos(1000, 15000);
    std::vector<double> jumps;
    for (int i = 0; i < 15; ++i) {
        QElapsedTimer j;
        j.start();
        view.setViewport({pos(rng), pos(rng), 1.0, 0, 0});
        ASSERT_TRUE(QTest::qWaitFor([&] { return view.isFullyLoaded(); }, 20000));
        jumps.push_back(static_cast<double>(j.nsecsElapsed()) / 1e6);
    }
    print("jump → full detail (level 0)", jumps);

    // Panning over cached tiles: let the prefetch ring arrive, then pan 4 px per frame inside it.
    QTest::qWait(500);
    view.resetStatistics();
    for (int i = 0; i < 300; ++i) {
        Viewport v = view.viewport();
        v.centerX += (i < 150 ? 4.0 : -4.0);
        view.setViewport(v);
        view.repaint();
    }
    QCoreApplication::processEvents();
    const auto& s = view.statistics();
    print("pan frame (cached, glFinish)", s.frameMs);
    std::printf("  visible-tile cache hit rate while panning: %.1f %%\n",
                s.visibleLookups ? 100.0 * static_cast<double>(s.visibleHits) / static_cast<double>(s.visibleLookups) : 0.0);

    // Zooming out and in through the levels with the wheel, animated as a user sees it.
    view.setAnimationsEnabled(true);
    view.resetStatistics();
    QElapsedTimer z;
    z.start();
    for (int i = 0; i < 24; ++i) {
        const QPointF cursor(512 + 100 * std::sin(i), 384);
        QWheelEvent wheel(cursor, view.mapToGlobal(cursor), QPoint(), QPoint(0, i < 12 ? -120 : 120), Qt::NoButton,
                          Qt::NoModifier, Qt::NoScrollPhase, false);
        QApplication::sendEvent(&view, &wheel);
        QTest::qWait(60);
    }
    ASSERT_TRUE(QTest::qWaitFor([&] { return !view.isAnimating() && view.isFullyLoaded(); }, 20000));
    print("zoom path frame (animated)", view.statistics().frameMs);
    print("tile decode (worker)", view.statistics().decodeMs);
    std::printf("  zoom path: %.0f ms for 24 wheel steps; textures cached %zu (%.1f MiB); loader dropped %llu stale requests\n",
                static_cast<double>(z.elapsed()), view.cachedTileCount(), static_cast<double>(view.cachedBytes()) / 1048576.0,
                static_cast<unsigned long long>(view.loader()->droppedCount()));
}

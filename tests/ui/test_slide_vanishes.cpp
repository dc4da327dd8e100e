// The viewer's slide file deleted, replaced (rename over it), truncated or rewritten in place while it is
// open: tiles that still have to be decoded fail with an error that names the file and says it changed
// since it was opened (nic::SlideChangedError from Slide::readRegion), slideFailed is emitted once, the
// message is in errorMessage(), nothing crashes, and the view stays usable: an intact slide opens and
// renders, and opening the replaced path again shows the new file.
#include "ui/slideview.h"

#include "pixelcheck.h"
#include "testslide.h"
#include "slidechange.h"
#include "testsupport.h"
#include "ui/tileloader.h"

#include <QSignalSpy>
#include <QTest>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace nic;
using nic::test::colorNear;
using nic::test::TestSlideGeometry;

namespace {

namespace fs = std::filesystem;

using nic::test::Change;
using nic::test::applyChange;
using nic::test::expectedCause;
using nic::test::name;

class SlideVanishesView : public ::testing::Test {
protected:
    void SetUp() override {
        intactPath = dir / "intact.tif";
        nic::test::writeTestSlide(intactPath, geometry);
        // The replacing file: same size, the blue square moved to the top-left corner.
        otherGeometry.blueX0 = 0;
        otherGeometry.blueY0 = 0;
        otherGeometry.blueX1 = 256;
        otherGeometry.blueY1 = 256;
        otherPath = dir / "other.tif";
        nic::test::writeTestSlide(otherPath, otherGeometry);
        view = std::make_unique<SlideView>();
        // A small window: the fit view comes from level 2 and its prefetch (level 1) holds no level-0
        // tile, so zooming in afterwards needs new reads from the file.
        view->resize(300, 200);
        view->setAnimationsEnabled(false);
        view->show();
        ASSERT_TRUE(QTest::qWaitForWindowExposed(view.get()));
    }
    void TearDown() override { view.reset(); }

    /// A copy of the intact slide, last written a minute ago (a rewrite in place then changes its
    /// modification time even with coarse filesystem timestamps).
    fs::path freshCopy(const std::string& stem) {
        const fs::path p = dir / (stem + ".tif");
        fs::copy_file(intactPath, p, fs::copy_options::overwrite_existing);
        fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::minutes(1));
        return p;
    }
    bool openAndWait(const fs::path& p) {
        QSignalSpy opened(view.get(), &SlideView::slideOpened);
        view->openSlide(QString::fromStdString(p.string()));
        return opened.wait(10000) && waitLoaded();
    }
    bool waitLoaded() {
        return QTest::qWaitFor([&] { return view->isFullyLoaded() && !view->isAnimating(); }, 10000);
    }
    bool waitIdle() {
        return QTest::qWaitFor(
            [&] { return view->loader()->pendingCount() + view->loader()->inFlightCount() == 0; }, 10000);
    }
    QImage frame() { return view->grabFramebuffer(); }
    PointD screen(double x, double y) const { return view->viewport().toScreen({x, y}); }

    nic::test::TempDir dir;
    TestSlideGeometry geometry, otherGeometry;
    fs::path intactPath, otherPath;
    std::unique_ptr<SlideView> view;
};

} // namespace

TEST_F(SlideVanishesView, ChangedFileShowsTheCauseOnceAndTheViewStaysUsable) {
    for (const Change c : nic::test::kAllChanges) {
        SCOPED_TRACE(name(c));
        const fs::path p = freshCopy(std::string("open-") + name(c));
        ASSERT_TRUE(openAndWait(p));
        ASSERT_TRUE(waitIdle()); // the prefetch is done: what follows is read after the change
        EXPECT_TRUE(view->errorMessage().isEmpty());
        EXPECT_EQ(view->loader()->failedCount(), 0U);

        QSignalSpy failed(view.get(), &SlideView::slideFailed);
        applyChange(c, p, otherPath);
        // Jump to level 0 around the blue square: tiles no cache holds.
        view->setViewport({1536, 1024, 2.0, 0, 0});
        ASSERT_TRUE(failed.wait(10000));
        const QString message = failed.at(0).at(0).toString();
        EXPECT_TRUE(message.contains(QString::fromStdString(p.string()))) << message.toStdString();
        EXPECT_TRUE(message.contains(QStringLiteral("since it was opened"))) << message.toStdString();
        EXPECT_TRUE(message.contains(QString::fromUtf8(expectedCause(c)))) << message.toStdString();
        EXPECT_EQ(view->errorMessage(), message);
        EXPECT_GT(view->loader()->failedCount(), 0U);

        // Still usable: panning elsewhere reports nothing new and asks for no more tiles (every read of
        // a changed file would fail); no crash.
        ASSERT_TRUE(waitIdle());
        const std::uint64_t generation = view->loader()->generation();
        const std::uint64_t attempts = view->loader()->decodedCount() + view->loader()->failedCount();
        view->setViewport({512, 512, 2.0, 0, 0});
        EXPECT_TRUE(waitIdle());
        QTest::qWait(20);
        EXPECT_EQ(failed.count(), 1);
        EXPECT_EQ(view->loader()->generation(), generation);
        EXPECT_EQ(view->loader()->decodedCount() + view->loader()->failedCount(), attempts);
        EXPECT_EQ(view->errorMessage(), message);

        // An intact slide opens and renders in the same view.
        ASSERT_TRUE(openAndWait(intactPath));
        EXPECT_TRUE(view->errorMessage().isEmpty());
        view->setViewport({1536, 1024, 2.0, 0, 0});
        ASSERT_TRUE(waitLoaded());
        const PointD corner = screen(1536, 1024);
        EXPECT_TRUE(colorNear(frame(), {corner.x + 6, corner.y + 6}, nic::test::kBlue));
        EXPECT_EQ(failed.count(), 1);
    }
}

TEST_F(SlideVanishesView, OpeningAReplacedSlideAgainShowsTheNewFile) {
    const fs::path p = freshCopy("reopened");
    ASSERT_TRUE(openAndWait(p));
    ASSERT_TRUE(waitIdle());
    QSignalSpy failed(view.get(), &SlideView::slideFailed);
    applyChange(Change::Replace, p, otherPath);
    view->setViewport({128, 128, 2.0, 0, 0});
    ASSERT_TRUE(failed.wait(10000));
    EXPECT_TRUE(view->errorMessage().contains(QStringLiteral("replaced by another file"))) << view->errorMessage().toStdString();
    // Opening the path again reads the new file: its blue square is at the top-left corner.
    ASSERT_TRUE(openAndWait(p));
    EXPECT_TRUE(view->errorMessage().isEmpty());
    view->setViewport({256, 128, 1.0, 0, 0});
    ASSERT_TRUE(waitLoaded());
    const QImage img = frame();
    EXPECT_TRUE(colorNear(img, screen(200, 128), nic::test::kBlue));
    EXPECT_TRUE(colorNear(img, screen(320, 128), nic::test::kGlass));
}

// ui_tests entry point: GoogleTest inside a QApplication (ctest runs this once under xvfb-run).
#include "ui/glformat.h"
#include <QApplication>
#include <QSettings>
#include <QSurfaceFormat>
#include <QStandardPaths>

#include <gtest/gtest.h>

#ifdef NIC_WITH_UI_NN
#include "ui/nn/neuraljobs.h"
#endif
namespace {
// Every test starts from default settings: view settings (colour map, threshold, ...) that one test
// changes are remembered by the application and would otherwise leak into the next test.
class FreshSettings : public ::testing::EmptyTestEventListener {
    void OnTestStart(const ::testing::TestInfo&) override { QSettings().clear(); }
};
} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    nic::setDefaultGlFormat(); // before QApplication
    QStandardPaths::setTestModeEnabled(true);  // QSettings/recent files never touch the user's config
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("nic-tests"));
    QApplication::setApplicationName(QStringLiteral("ui_tests"));
#ifdef NIC_WITH_UI_NN
    nic::registerTorchJobs();
#endif
    ::testing::UnitTest::GetInstance()->listeners().Append(new FreshSettings);
    return RUN_ALL_TESTS();
}

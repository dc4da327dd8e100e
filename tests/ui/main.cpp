// ui_tests entry point: GoogleTest inside a QApplication (ctest runs this once under xvfb-run).
#include "ui/glformat.h"
#include <QApplication>
#include <QSettings>
#include <QSurfaceFormat>
#include <QStandardPaths>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#ifdef NIC_WITH_UI_NN
#include "ui/nn/neuraljobs.h"
#endif
namespace {
// Every test starts from default settings: view settings (colour map, threshold, ...) that one test
// changes are remembered by the application and would otherwise leak into the next test.
class FreshSettings : public ::testing::EmptyTestEventListener {
    void OnTestStart(const ::testing::TestInfo&) override { QSettings().clear(); }
};

// A test that runs past NIC_UI_TEST_LIMIT_S seconds (default 240) ends the run with its name on stderr, so
// a hung GUI test (a modal dialog nobody answers) is named in the log instead of only ctest's time-out.
class Watchdog : public ::testing::EmptyTestEventListener {
public:
    explicit Watchdog(int limitSeconds) : limit_(limitSeconds) {
        std::thread([this] { watch(); }).detach();
    }
    void OnTestStart(const ::testing::TestInfo& info) override {
        std::lock_guard<std::mutex> lock(mutex_);
        name_ = std::string(info.test_suite_name()) + "." + info.name();
        started_ = std::chrono::steady_clock::now();
        running_ = true;
    }
    void OnTestEnd(const ::testing::TestInfo&) override {
        std::lock_guard<std::mutex> lock(mutex_);
        running_ = false;
    }

private:
    void watch() {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            std::lock_guard<std::mutex> lock(mutex_);
            if (running_ && std::chrono::steady_clock::now() - started_ > std::chrono::seconds(limit_)) {
                std::fprintf(stderr, "ui_tests: %s still running after %d s (NIC_UI_TEST_LIMIT_S); stopping the run\n",
                             name_.c_str(), limit_);
                std::fflush(stdout);
                std::fflush(stderr);
                std::_Exit(1);
            }
        }
    }
    const int limit_;
    std::mutex mutex_;
    std::string name_;
    std::chrono::steady_clock::time_point started_;
    bool running_ = false;
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
    const char* limit = std::getenv("NIC_UI_TEST_LIMIT_S");
    ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(limit && std::atoi(limit) > 0 ? std::atoi(limit) : 240));
    return RUN_ALL_TESTS();
}

// ui_tests entry point: GoogleTest inside a QApplication (ctest runs this once under xvfb-run).
#include "ui/glformat.h"
#include <QApplication>
#include <QSettings>
#include <QSurfaceFormat>
#include <QStandardPaths>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
// The watching thread owns its state with the listener, so it never touches a listener that gtest has
// already deleted at exit.
class Watchdog : public ::testing::EmptyTestEventListener {
public:
    explicit Watchdog(int limitSeconds) : state_(std::make_shared<State>()) {
        std::thread([state = state_, limitSeconds] { watch(*state, limitSeconds); }).detach();
    }
    void OnTestStart(const ::testing::TestInfo& info) override {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->name = std::string(info.test_suite_name()) + "." + info.name();
        state_->started = std::chrono::steady_clock::now();
        state_->running = true;
    }
    void OnTestEnd(const ::testing::TestInfo&) override {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->running = false;
    }

private:
    struct State {
        std::mutex mutex;
        std::string name;
        std::chrono::steady_clock::time_point started;
        bool running = false;
    };
    static void watch(State& state, int limitSeconds) {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            std::lock_guard<std::mutex> lock(state.mutex);
            if (state.running && std::chrono::steady_clock::now() - state.started > std::chrono::seconds(limitSeconds)) {
                std::fprintf(stderr, "ui_tests: %s still running after %d s (NIC_UI_TEST_LIMIT_S); stopping the run\n",
                             state.name.c_str(), limitSeconds);
                std::fflush(stdout);
                std::fflush(stderr);
                std::_Exit(1);
            }
        }
    }
    std::shared_ptr<State> state_;
};

int watchdogLimitSeconds() {
    const char* env = std::getenv("NIC_UI_TEST_LIMIT_S");
    const int seconds = env ? std::atoi(env) : 0;
    return seconds > 0 ? seconds : 240;
}
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
    ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(watchdogLimitSeconds()));
    return RUN_ALL_TESTS();
}

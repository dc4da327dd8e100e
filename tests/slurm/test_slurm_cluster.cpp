// nic submit / nic status against a real Slurm (ctest label `slurm`): scripts/run-tests.sh starts a
// single-node cluster with scripts/slurm-local.sh and exports SLURM_CONF. Without a reachable Slurm every
// test skips with a message saying how to start one.
#include "testsupport.h"

#include "core/slidelearning/cohort.h"
#include "core/compression/latentgrid.h"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

using nic::test::nicExecutable;
using nic::test::runCommand;
using nic::test::TempDir;
namespace fs = std::filesystem;

namespace {


// True when sinfo answers and shows an idle node.
bool slurmReachable() {
    std::string out;
    return runCommand("sinfo -h -o %T", &out) == 0 && out.find("idle") != std::string::npos;
}

#define NIC_REQUIRE_SLURM()                                                                                  \
    do {                                                                                                     \
        if (!slurmReachable())                                                                               \
            GTEST_SKIP() << "no Slurm cluster reachable (sinfo shows no idle node); start one with "          \
                            "scripts/slurm-local.sh start DIR and export SLURM_CONF=DIR/slurm.conf";         \
    } while (0)

nlohmann::json status(const fs::path& out, int* exitCode = nullptr) {
    std::string o, e;
    const int rc = runCommand(nic::test::nicCommand("status --json " + nic::test::shellQuoted(out)), &o, &e);
    if (exitCode)
        *exitCode = rc;
    if (rc != 0 && rc != 3)
        ADD_FAILURE() << "nic status failed (" << rc << "): " << e;
    return rc == 0 || rc == 3 ? nlohmann::json::parse(o) : nlohmann::json{};
}

bool anyLive(const nlohmann::json& st) {
    static const std::set<std::string> live = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED"};
    for (const auto& i : st["items"])
        if (live.count(i["job_state"].get<std::string>()))
            return true;
    return st.contains("merge") && live.count(st["merge"]["job_state"].get<std::string>()) > 0;
}

// Waits until no task of the folder is queued or running; returns the final status.
nlohmann::json waitForJobs(const fs::path& out, int* exitCode, int seconds = 240) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    nlohmann::json st;
    while (std::chrono::steady_clock::now() < end) {
        st = status(out, exitCode);
        if (!st.is_null() && !anyLive(st))
            return st;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ADD_FAILURE() << "jobs of " << out << " still running after " << seconds << " s: " << st.dump();
    return st;
}

std::string submit(const std::string& args) {
    std::string o, e;
    EXPECT_EQ(runCommand(nic::test::nicCommand("submit " + args), &o, &e), 0) << e;
    return o;
}

std::string jobIdOf(const std::string& submitOutput) {
    const auto p = submitOutput.find("submitted job ");
    if (p == std::string::npos)
        return {};
    return submitOutput.substr(p + 14, submitOutput.find(':', p) - p - 14);
}

// Same grid, tissue fractions, flags and parameters.
void expectSameGrid(const fs::path& a, const fs::path& b) {
    const nic::LatentGridReader ra(a), rb(b);
    EXPECT_EQ(ra.meta().parameterMismatch(rb.meta()), "") << a << " vs " << b;
    EXPECT_EQ(ra.meta().rows, rb.meta().rows);
    EXPECT_EQ(ra.meta().cols, rb.meta().cols);
    EXPECT_EQ(ra.grid().data, rb.grid().data) << a << " vs " << b;
    EXPECT_EQ(ra.tissueFractions(), rb.tissueFractions()) << a;
    EXPECT_EQ(ra.cellFlags(), rb.cellFlags()) << a;
}

std::vector<std::string> filesIn(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file())
            names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

class SlurmCluster : public ::testing::Test {
protected:
    TempDir tmp_;
    fs::path cohortCsv() const { return tmp_ / "cohort" / "cohort.csv"; }
    void makeCohort(int count, const std::string& size) {
        std::string o, e;
        ASSERT_EQ(runCommand(nic::test::nicCommand("synth -q --out " + nic::test::shellQuoted(tmp_ / "cohort") + " --count " + std::to_string(count) +
                                    " --size " + size + " --seed 7"),
                             &o, &e),
                  0)
            << e;
    }
    void compressLocally(const fs::path& out, const std::string& extra = "") {
        std::string o, e;
        ASSERT_EQ(runCommand(nic::test::nicCommand("compress -q -e mean-rgb --cohort " + nic::test::shellQuoted(cohortCsv()) + " --out " + nic::test::shellQuoted(out) + extra), &o, &e), 0)
            << e;
    }
};

} // namespace

// A 3-task array over 12 synthetic slides: every grid exists exactly once and equals a local nic compress.
TEST_F(SlurmCluster, ArrayCompressEqualsLocalCompress) {
    NIC_REQUIRE_SLURM();
    makeCohort(12, "1024");
    const auto slides = nic::readCohort(cohortCsv()).slides();
    ASSERT_EQ(slides.size(), 12U);
    compressLocally(tmp_ / "local");
    const fs::path out = tmp_ / "cluster";
    const std::string submitted =
        submit("compress --array-size 3 --cohort " + nic::test::shellQuoted(cohortCsv()) + " -e mean-rgb -o " + nic::test::shellQuoted(out));
    EXPECT_NE(submitted.find(": 3 array task(s) over 12 slide(s) into " + out.string()), std::string::npos) << submitted;
    int rc = -1;
    const auto st = waitForJobs(out, &rc);
    EXPECT_EQ(rc, 0) << st.dump(1);
    EXPECT_EQ(st["complete"], true);
    EXPECT_EQ(st["counts"]["done"], 12);
    std::set<std::string> tasks;
    for (const auto& i : st["items"]) {
        EXPECT_EQ(i["state"], "done");
        EXPECT_EQ(i["job_state"], "COMPLETED") << i.dump();
        tasks.insert(i["task"].get<std::string>());
    }
    EXPECT_EQ(tasks.size(), 3U);
    // Exactly one file per slide, no leftovers.
    std::vector<std::string> expected;
    for (const auto& s : slides)
        expected.push_back(s.stem().string() + ".h5");
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(filesIn(out), expected);
    for (const auto& s : slides)
        expectSameGrid(out / (s.stem().string() + ".h5"), tmp_ / "local" / (s.stem().string() + ".h5"));
}

// scancel mid-slide: status says partial (or missing), --missing-only submits exactly that slide, and the
// finished grid equals an uninterrupted compression.
TEST_F(SlurmCluster, CancelledTaskIsResubmittedAndCompletesIdentically) {
    NIC_REQUIRE_SLURM();
    makeCohort(3, "4096x2048");
    const auto slides = nic::readCohort(cohortCsv()).slides();
    const fs::path out = tmp_ / "cluster";
    // Overlapping cells (stride P/4), one band per grid row, a single reader and 8 variants: a slide takes
    // seconds, long enough to be cancelled in the middle.
    const std::string opts = " -e mean-rgb --stride 32 --band-rows 1 --read-threads 1 --augment 8";
    const std::string args = "--cohort " + nic::test::shellQuoted(cohortCsv()) + " -o " + nic::test::shellQuoted(out) + opts;
    const std::string job = jobIdOf(submit("compress --array-size 3 " + args));
    ASSERT_FALSE(job.empty());
    const auto victim = slides[1].stem().string(); // task 1
    const auto partial = out / (victim + ".partial.h5");
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(partial) && !fs::exists(out / (victim + ".h5")) && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(fs::exists(partial)) << "task 1 never started writing " << partial;
    ASSERT_EQ(runCommand("scancel " + job + "_1"), 0);
    int rc = -1;
    auto st = waitForJobs(out, &rc);
    EXPECT_EQ(rc, 3) << "an incomplete folder must not exit 0: " << st.dump(1);
    EXPECT_EQ(st["complete"], false);
    for (const auto& i : st["items"]) {
        if (i["key"] == victim) {
            EXPECT_TRUE(i["state"] == "partial" || i["state"] == "missing") << i.dump();
            EXPECT_EQ(i["task"], job + "_1");
            EXPECT_NE(i["job_state"], "COMPLETED") << i.dump();
        } else {
            EXPECT_EQ(i["state"], "done") << i.dump();
        }
    }
    // Resubmit what is missing: exactly the cancelled slide.
    const std::string again = submit("compress --missing-only " + args);
    EXPECT_NE(again.find(": 1 array task(s) over 1 slide(s)"), std::string::npos) << again;
    st = waitForJobs(out, &rc);
    EXPECT_EQ(rc, 0) << st.dump(1);
    EXPECT_EQ(st["counts"]["done"], 3);
    // Nothing left to do now.
    EXPECT_NE(submit("compress --missing-only " + args).find("nothing to submit: 3 of 3 slide(s) done"), std::string::npos);
    compressLocally(tmp_ / "local", " --stride 32 --augment 8");
    for (const auto& s : slides)
        expectSameGrid(out / (s.stem().string() + ".h5"), tmp_ / "local" / (s.stem().string() + ".h5"));
    for (int v = 1; v < 8; ++v)
        EXPECT_EQ(nic::LatentGridReader(out / (victim + ".h5")).grid(v).data,
                  nic::LatentGridReader(tmp_ / "local" / (victim + ".h5")).grid(v).data)
            << "variant " << v;
}

// A slide that fails inside its task: status reports it failed with the command's own error.
TEST_F(SlurmCluster, FailedSlideIsReportedWithItsError) {
    NIC_REQUIRE_SLURM();
    makeCohort(2, "1024");
    const auto slides = nic::readCohort(cohortCsv()).slides();
    const fs::path broken = tmp_ / "broken.tiff";
    { std::ofstream(broken) << "not a slide"; }
    const fs::path out = tmp_ / "cluster";
    submit("compress " + nic::test::shellQuoted(slides[0]) + " " + nic::test::shellQuoted(broken) + " " + nic::test::shellQuoted(slides[1]) + " -e mean-rgb -o " + nic::test::shellQuoted(out));
    int rc = -1;
    const auto st = waitForJobs(out, &rc);
    EXPECT_EQ(rc, 3);
    EXPECT_EQ(st["counts"]["done"], 2);
    EXPECT_EQ(st["counts"]["failed"], 1);
    const auto& b = st["items"][1];
    EXPECT_EQ(b["key"], "broken");
    EXPECT_EQ(b["state"], "failed");
    EXPECT_EQ(b["job_state"], "FAILED");
    EXPECT_EQ(b["error"], broken.string() + ": cannot open slide: not a file that OpenSlide can recognize (unsupported or corrupt slide format)") << b.dump();
}

// A partition the cluster does not have: sbatch's own cause, and nothing is left behind.
TEST_F(SlurmCluster, UnknownPartitionIsAClearErrorAndLeavesNothing) {
    NIC_REQUIRE_SLURM();
    makeCohort(1, "1024");
    const fs::path out = tmp_ / "cluster";
    std::string o, e;
    EXPECT_EQ(runCommand(nic::test::nicCommand("submit compress --partition nosuch --cohort " + nic::test::shellQuoted(cohortCsv()) + " -e mean-rgb -o " +
                                nic::test::shellQuoted(out)),
                         &o, &e),
              1);
    EXPECT_EQ(e, "nic: error: sbatch refused " + (out / ".nic-submit/batch-1/job.sh").string() +
                     ": invalid partition specified: nosuch\n");
    EXPECT_FALSE(fs::exists(out)) << "the refused submission left " << out;
    // An existing folder keeps what it had, and nothing of the refused submission.
    fs::create_directories(out);
    EXPECT_EQ(runCommand(nic::test::nicCommand("submit compress --partition nosuch --cohort " + nic::test::shellQuoted(cohortCsv()) + " -e mean-rgb -o " +
                                nic::test::shellQuoted(out)),
                         &o, &e),
              1);
    EXPECT_TRUE(fs::is_directory(out));
    EXPECT_TRUE(fs::is_empty(out));
}

#ifdef NIC_WITH_TORCH
// Cross-validation as one array task per round plus an afterok merge job: the same metrics and predictions as
// a local nic train with the same seed; then Grad-CAM as an array job gives the same overlays as locally.
TEST_F(SlurmCluster, TrainRoundsAsArrayPlusMergeAndGradCamArrayEqualLocalRuns) {
    NIC_REQUIRE_SLURM();
    makeCohort(6, "1024");
    compressLocally(tmp_ / "grids", " --augment 8");
    const std::string trainArgs = "--cohort " + nic::test::shellQuoted(cohortCsv()) + " --grids " + nic::test::shellQuoted(tmp_ / "grids") +
                                  " --folds 3 --epochs 6 --steps-per-epoch 4 --batch 8 --patience 3 --min-lr 1e-4"
                                  " --filters 8 --layers 3 --dense 8 --bootstrap 50 --seed 1 --threads 1 --device cpu";
    std::string o, e;
    ASSERT_EQ(runCommand(nic::test::nicCommand("train -q " + trainArgs + " --out " + nic::test::shellQuoted(tmp_ / "local")), &o, &e), 0) << e;
    const fs::path run = tmp_ / "cluster";
    const std::string submitted = submit("train " + trainArgs + " --out " + nic::test::shellQuoted(run));
    EXPECT_NE(submitted.find(": 3 array task(s) over 3 round(s) into " + run.string()), std::string::npos) << submitted;
    EXPECT_NE(submitted.find(": merges the rounds into " + run.string() + " when they succeed"), std::string::npos)
        << submitted;
    int rc = -1;
    const auto st = waitForJobs(run, &rc, 600);
    EXPECT_EQ(rc, 0) << st.dump(1);
    ASSERT_TRUE(st.contains("merge"));
    EXPECT_EQ(st["merge"]["state"], "done");
    EXPECT_EQ(st["merge"]["job_state"], "COMPLETED");
    EXPECT_EQ(st["counts"]["done"], 3);
    EXPECT_EQ(nic::test::readFile(run / "predictions.csv"), nic::test::readFile(tmp_ / "local" / "predictions.csv"));
    EXPECT_EQ(nic::test::readFile(run / "metrics.json"), nic::test::readFile(tmp_ / "local" / "metrics.json"));
    EXPECT_FALSE(nic::test::readFile(run / "metrics.json").empty());

    // Grad-CAM of every grid with the run's models as a 2-task array: the same overlays as a local nic gradcam.
    std::string grids;
    for (const auto& s : nic::readCohort(cohortCsv()).slides())
        grids += " " + nic::test::shellQuoted(tmp_ / "grids" / (s.stem().string() + ".h5"));
    ASSERT_EQ(runCommand(nic::test::nicCommand("gradcam -q --no-tiff --model " + nic::test::shellQuoted(run) + " --out " + nic::test::shellQuoted(tmp_ / "heat-local") + grids), &o, &e), 0)
        << e;
    const fs::path heat = tmp_ / "heat";
    EXPECT_NE(submit("gradcam --array-size 2 --no-tiff --model " + nic::test::shellQuoted(run) + " --out " + nic::test::shellQuoted(heat) + grids)
                  .find(": 2 array task(s) over 6 grid(s)"),
              std::string::npos);
    const auto cam = waitForJobs(heat, &rc);
    EXPECT_EQ(rc, 0) << cam.dump(1);
    EXPECT_EQ(cam["counts"]["done"], 6);
    EXPECT_EQ(filesIn(heat), filesIn(tmp_ / "heat-local"));
    for (const auto& s : nic::readCohort(cohortCsv()).slides()) {
        const auto png = s.stem().string() + "_gradcam.png";
        EXPECT_EQ(nic::test::readFile(heat / png), nic::test::readFile(tmp_ / "heat-local" / png)) << png;
    }
}
#endif

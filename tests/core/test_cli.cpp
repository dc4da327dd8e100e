// The nic CLI as users call it: exit codes (0 ok / 1 runtime / 2 usage), one-line errors naming the file.
#include "testsupport.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

using nic::test::nicExecutable;
using nic::test::runCommand;
using nic::test::sharedDataDir;

namespace {
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }
} // namespace

TEST(Cli, VersionAndHelp) {
    std::string out, err;
    EXPECT_EQ(runCommand(nic::test::nicCommand("--version"), &out, &err), 0);
    EXPECT_EQ(out.rfind("nic ", 0), 0U) << out;
    for (const char* cmd : {"info", "tissue", "synth", "compress"}) {
        EXPECT_EQ(runCommand(nic::test::nicCommand(std::string(cmd) + " --help"), &out, &err), 0) << cmd;
        EXPECT_NE(out.find("Usage"), std::string::npos) << cmd << ": " << out;
    }
    EXPECT_EQ(runCommand(nic::test::nicCommand("--help"), &out, &err), 0);
    EXPECT_NE(out.find("synth"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWith2) {
    std::string out, err;
    EXPECT_EQ(runCommand(nic::test::nicCommand(""), &out, &err), 2);
    EXPECT_EQ(runCommand(nic::test::nicCommand("frobnicate"), &out, &err), 2);
    EXPECT_EQ(runCommand(nic::test::nicCommand("info"), &out, &err), 2);
    EXPECT_NE(err.find("nic: usage error:"), std::string::npos) << err;
    EXPECT_EQ(runCommand(nic::test::nicCommand("info --no-such-flag x"), &out, &err), 2);
}

TEST(Cli, RuntimeErrorIsOneLineNamingTheFile) {
    std::string out, err;
    EXPECT_EQ(runCommand(nic::test::nicCommand("info /no/such/slide.svs"), &out, &err), 1);
    EXPECT_EQ(err, "nic: error: /no/such/slide.svs: cannot open slide: No such file or directory\n");
    NIC_REQUIRE_SHARED("slides/malformed/unopenable.tiff");
    const auto p = sharedDataDir() / "slides/malformed/unopenable.tiff";
    EXPECT_EQ(runCommand(nic::test::nicCommand("info '" + p.string() + "'"), &out, &err), 1);
    EXPECT_EQ(err, "nic: error: " + p.string() + ": cannot open slide: Unsupported TIFF compression: 52479\n");
    EXPECT_EQ(lines(err), 1);
}

TEST(Cli, MalformedFileContentsAreRuntimeErrorsNotUsageErrors) {
    // Exit code 2 means a usage error only: a cohort CSV that cannot be used is a bad file (exit 1),
    // reported with its name and line.
    nic::test::TempDir dir;
    std::ofstream(dir / "bad.csv") << "slide,label\na.svs,1\na.svs,0\n";
    std::string out, err;
    EXPECT_EQ(runCommand(nic::test::nicCommand("compress -q -e mean-rgb -o '" + (dir / "out").string() + "' --cohort '" +
                                (dir / "bad.csv").string() + "'"),
                         &out, &err),
              1);
    EXPECT_EQ(err, "nic: error: " + (dir / "bad.csv").string() + ":3: slide a.svs is listed twice\n");
    EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}

TEST(Cli, InfoJsonOnRealSlide) {
    NIC_REQUIRE_SHARED("slides/CMU-1-Small-Region.svs");
    std::string out, err;
    const auto p = sharedDataDir() / "slides/CMU-1-Small-Region.svs";
    ASSERT_EQ(runCommand(nic::test::nicCommand("info --json '" + p.string() + "'"), &out, &err), 0) << err;
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["width"], 2220);
    EXPECT_EQ(j["height"], 2967);
    EXPECT_EQ(j["vendor"], "aperio");
    EXPECT_NEAR(j["mpp_x"].get<double>(), 0.499, 1e-3);
    EXPECT_EQ(j["levels"].size(), 1U);
    EXPECT_EQ(j["levels"][0]["downsample"], 1.0);
    EXPECT_TRUE(j["associated_images"].contains("label"));
    EXPECT_TRUE(j["associated_images"].contains("macro"));
    EXPECT_TRUE(j["associated_images"].contains("thumbnail"));
}

TEST(Cli, InfoTextSaysMppUnknown) {
    NIC_REQUIRE_SHARED("slides/synthetic/boxes.tiff");
    std::string out, err;
    const auto p = sharedDataDir() / "slides/synthetic/boxes.tiff";
    ASSERT_EQ(runCommand(nic::test::nicCommand("info '" + p.string() + "'"), &out, &err), 0) << err;
    EXPECT_NE(out.find("mpp:         unknown"), std::string::npos) << out;
    EXPECT_NE(out.find("levels:      4"), std::string::npos) << out;
    ASSERT_EQ(runCommand(nic::test::nicCommand("info --json '" + p.string() + "'"), &out, &err), 0) << err;
    const auto j = nlohmann::json::parse(out);
    EXPECT_TRUE(j["mpp_x"].is_null());
    EXPECT_EQ(j["mpp_source"], "unknown");
}

// A full disk or a file-size limit (here `ulimit -f`, in 512-byte blocks): the command fails with one
// clear message naming the output and the system's cause, exit status 1, no crash, and nothing is left
// behind — neither under the final name nor as a temporary or partial file.
TEST(Cli, WritingPastAFileSizeLimitFailsCleanlyAndLeavesNothing) {
    nic::test::TempDir dir;
    std::string out, err;
    ASSERT_EQ(runCommand(nic::test::nicCommand("synth --out '" + (dir / "cohort").string() + "' --count 1 --size 2048 -q"), &out, &err), 0)
        << err;
    const auto slide = dir / "cohort" / "synth-000.svs";

    // compress: the slide is read fine, the HDF5 output cannot grow past 10 KiB.
    const int rc = runCommand("ulimit -f 20; " + nic::test::nicCommand("compress -e mean-rgb --augment 8 --dtype float32 -q --out '" +
                                                      (dir / "grids").string() + "' '" + slide.string() + "'"),
                              &out, &err);
    EXPECT_EQ(rc, 1) << err; // not 128 + SIGXFSZ or SIGSEGV
    EXPECT_NE(err.find("synth-000"), std::string::npos) << err;
    EXPECT_NE(err.find("File too large"), std::string::npos) << err;
    for (const auto& e : std::filesystem::directory_iterator(dir / "grids"))
        ADD_FAILURE() << "left behind: " << e.path().filename() << "\n" << err;

    // synth: the TIFF writer hits the limit.
    const int rc2 = runCommand("ulimit -f 20; " + nic::test::nicCommand("synth -q --count 1 --size 2048 --out '" +
                                                       (dir / "more").string() + "'"),
                               &out, &err);
    EXPECT_EQ(rc2, 1) << err;
    EXPECT_NE(err.find("synth-000"), std::string::npos) << err;
    if (std::filesystem::exists(dir / "more"))
        for (const auto& e : std::filesystem::directory_iterator(dir / "more"))
            ADD_FAILURE() << "left behind: " << e.path().filename();
}

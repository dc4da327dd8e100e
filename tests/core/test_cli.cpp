// The nic CLI as users call it: exit codes (0 ok / 1 runtime / 2 usage), one-line errors naming the file.
#include "testsupport.h"

#include "core/base/hdf5file.h"
#include "core/compression/latentgrid.h"

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

namespace {

/// A finished 2 x 3 compressed slide with C = 4 (what `nic compress` writes, minus the slide).
void writeTinyGrid(const std::filesystem::path& path) {
    nic::LatentGridMeta m;
    m.encoderName = "test";
    m.encoderHash = "abc123";
    m.codeSize = 4;
    m.patchSize = m.stride = m.readSize = 64;
    m.targetMpp = m.slideMpp = 0.5;
    m.slideMppSource = "slide";
    m.level0Width = 3 * 64;
    m.level0Height = 2 * 64;
    m.rows = 2;
    m.cols = 3;
    m.slideFile = "slide.svs";
    const std::vector<float> tissue(6, 1.0F);
    auto w = nic::LatentGridWriter::create(path, m, tissue, 2);
    const std::vector<float> values(static_cast<std::size_t>(2 * 3 * m.codeSize), 0.25F);
    const std::vector<std::uint8_t> flags(6, nic::kCellEncoded);
    w->writeBand(2, {values.data()}, flags.data());
    w->finishAndPublish(path);
}

} // namespace

TEST(Cli, AGridOfTheWrongShapeIsABadFileNamedFirstNotAUsageError) {
    nic::test::TempDir dir;
    const auto grid = dir / "g.h5";
    writeTinyGrid(grid);
    std::string out, err;
    ASSERT_EQ(runCommand(nic::test::nicCommand("info " + nic::test::shellQuoted(grid)), &out, &err), 0) << err;
    EXPECT_NE(out.find("compressed slide"), std::string::npos) << out;
    {
        // The attributes still say 2 x 3 cells; the data is 4 x 4.
        nic::Hdf5File f(grid, nic::Hdf5File::Mode::ReadWrite);
        f.remove("grid");
        f.createDataset("grid", nic::H5Type::Float16, {4, 4, 4}).close();
    }
    EXPECT_EQ(runCommand(nic::test::nicCommand("info " + nic::test::shellQuoted(grid)), &out, &err), 1);
    EXPECT_EQ(err, "nic: error: " + grid.string() +
                       ": dataset 'grid' has shape [4, 4, 4], expected [2, 3, 4] from its attributes\n");
    // An HDF5 file that is no compressed slide.
    nic::Hdf5File(dir / "other.h5", nic::Hdf5File::Mode::Create).setStringAttribute("format", "something-else");
    EXPECT_EQ(runCommand(nic::test::nicCommand("info " + nic::test::shellQuoted(dir / "other.h5")), &out, &err), 1);
    EXPECT_EQ(
        err.rfind("nic: error: " + (dir / "other.h5").string() + ": not a compressed slide (format 'something-else'",
                  0),
        0U)
        << err;
}

TEST(Cli, AMalformedCohortIsABadFileNamedFirstNotAUsageError) {
    // `nic compress --cohort` reads the cohort before any slide: each malformed file is exit 1 with
    // "<file>:<line>: <cause>", and nothing is written.
    nic::test::TempDir dir;
    const auto csv = dir / "c.csv";
    struct Case {
        std::string text, error;
    };
    const std::vector<Case> cases = {
        {"slide,label\na.svs,1\nb.svs\n", ":3: 1 fields, the header has 2"},
        {"slide,score\na.svs,1\n", ":1: header must name columns 'slide' and 'label' (found: slide,score)"},
        {"slide,label\n\"a.svs,1\n", ":2: unterminated quoted field"},
        {"slide,label,fold\na.svs,1,-2\n", ":2: fold '-2' is not an integer >= 0"},
        {"", ": empty cohort file (expected a header row with columns slide,label)"},
    };
    for (const auto& c : cases) {
        std::ofstream(csv, std::ios::trunc) << c.text;
        std::string out, err;
        EXPECT_EQ(runCommand(nic::test::nicCommand("compress -q -e mean-rgb -o " + nic::test::shellQuoted(dir / "out") +
                                                   " --cohort " + nic::test::shellQuoted(csv)),
                             &out, &err),
                  1)
            << c.text;
        EXPECT_EQ(err, "nic: error: " + csv.string() + c.error + "\n") << c.text;
    }
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

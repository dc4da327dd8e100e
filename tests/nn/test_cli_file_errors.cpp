// Bad file contents through the nic CLI (issue 14, item 6): exit code 1, never the usage code 2, and one
// line "nic: error: <file>: <cause>" that names the file first.
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchbank.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

using namespace nic;

namespace {

/// Runs `nic args`; returns the exit status, stderr in `err`.
int runNic(const std::string& args, std::string& err) {
    std::string out;
    return test::runCommand(test::nicCommand(args), &out, &err);
}

/// `err` starts with "nic: error: <file>: <cause>".
void expectBadFile(const std::string& err, const std::filesystem::path& file, const std::string& cause) {
    const std::string prefix = "nic: error: " + file.string() + ": " + cause;
    EXPECT_EQ(err.rfind(prefix, 0), 0U) << "expected a line starting with '" << prefix << "', got: " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

/// Keeps the first `bytes` bytes of `path`.
void truncateTo(const std::filesystem::path& path, std::uintmax_t bytes) {
    std::filesystem::resize_file(path, bytes);
}

} // namespace

TEST(CliFileErrors, MalformedCohortOfNicTrainIsExit1NamingTheFileAndLine) {
    // The example: a label that is not a number used to say only "line N: ...". The grids need
    // only exist for the cohort to be resolved; nothing is trained.
    test::TempDir dir;
    std::filesystem::create_directory(dir / "grids");
    for (const char* s : {"a", "b", "c", "d"})
        std::ofstream(dir / "grids" / (std::string(s) + ".h5")) << "";
    const auto csv = dir / "cohort.csv";
    const std::string train = "train --cohort " + test::shellQuoted(csv) + " --grids " +
                              test::shellQuoted(dir / "grids") + " --task classify --out " +
                              test::shellQuoted(dir / "run") + " --device cpu";
    std::string err;

    std::ofstream(csv, std::ios::trunc) << "slide,label\na.svs,1\nb.svs,tumor\nc.svs,0\n";
    EXPECT_EQ(runNic(train, err), 1) << err;
    expectBadFile(err, csv.string() + ":3", "label 'tumor' of slide b.svs is not a number");

    std::ofstream(csv, std::ios::trunc) << "slide,label\na.svs,1\nb.svs,2\n";
    EXPECT_EQ(runNic(train, err), 1) << err;
    expectBadFile(err, csv.string() + ":3", "label '2' of slide b.svs is not 0 or 1 (classification;");

    std::ofstream(csv, std::ios::trunc) << "slide,label\na.svs,1\nb.svs,1\nc.svs,1\n";
    EXPECT_EQ(runNic(train, err), 1) << err;
    expectBadFile(err, csv, "every slide has label 1; classification needs both classes");

    std::ofstream(csv, std::ios::trunc) << "slide,label,fold\na.svs,1,0\nb.svs,0,1\nc.svs,1,0\nd.svs,0,1\n";
    EXPECT_EQ(runNic(train, err), 1) << err;
    expectBadFile(err, csv, "the fold column has 2 distinct value(s); cross-validation needs at least 3");
    EXPECT_FALSE(std::filesystem::exists(dir / "run"));

    // A missing file is a runtime error too; only a bad option is a usage error.
    EXPECT_EQ(runNic("train --cohort " + test::shellQuoted(dir / "none.csv") + " --grids " +
                      test::shellQuoted(dir / "grids") + " --task classify --out " + test::shellQuoted(dir / "run"),
                  err),
              1);
    expectBadFile(err, dir / "none.csv", "cannot read cohort file");
    EXPECT_EQ(runNic(train + " --target both", err), 2) << err;
}

TEST(CliFileErrors, DamagedPatchBankIsExit1NamingTheFile) {
    test::TempDir dir;
    const auto bank = dir / "b.nicbank";
    test::makeTwoClassBank(8, 32, 1).save(bank);
    const auto eval = [&](const std::filesystem::path& b) {
        return "eval-encoder --encoder mean-rgb:32 --bank " + test::shellQuoted(b) + " --device cpu --quiet";
    };
    std::string err;
    truncateTo(bank, std::filesystem::file_size(bank) - 100);
    EXPECT_EQ(runNic(eval(bank), err), 1) << err;
    expectBadFile(err, bank, "patch bank is truncated");

    std::ofstream(dir / "x.nicbank") << "hello world, not a bank";
    EXPECT_EQ(runNic(eval(dir / "x.nicbank"), err), 1) << err;
    expectBadFile(err, dir / "x.nicbank", "not a patch bank (bad signature)");

    // A header that promises more patches than the file holds is refused before allocating for them.
    test::makeTwoClassBank(2, 32, 1).save(bank);
    std::string bytes = test::readFile(bank);
    const auto at = bytes.find("\"count\":2");
    ASSERT_NE(at, std::string::npos);
    bytes.replace(at, 9, "\"count\":9");
    std::ofstream(bank, std::ios::binary | std::ios::trunc) << bytes;
    EXPECT_EQ(runNic(eval(bank), err), 1) << err;
    expectBadFile(err, bank, "patch bank is truncated");

    PatchBank(32).save(dir / "empty.nicbank");
    EXPECT_EQ(runNic(eval(dir / "empty.nicbank"), err), 1) << err;
    expectBadFile(err, dir / "empty.nicbank", "the patch bank holds no patches");
}

TEST(CliFileErrors, DamagedEncoderFileIsExit1NamingTheFile) {
    test::TempDir dir;
    const auto enc = dir / "e.nicenc";
    auto encoder = createEncoder(EncoderKind::Vae, 32, 8, 0, 7, ComputeOptions{"cpu", 1});
    saveEncoder(*encoder, enc);
    std::string err;
    ASSERT_EQ(runNic("encoder-info " + test::shellQuoted(enc), err), 0) << err;

    truncateTo(enc, std::filesystem::file_size(enc) / 2);
    EXPECT_EQ(runNic("encoder-info " + test::shellQuoted(enc), err), 1) << err;
    expectBadFile(err, enc, "cannot read encoder file: ");

    std::ofstream(dir / "junk.nicenc") << "not a torch archive";
    EXPECT_EQ(runNic("embed --encoder " + test::shellQuoted(dir / "junk.nicenc") + " x.png", err), 1) << err;
    expectBadFile(err, dir / "junk.nicenc", "cannot read encoder file: ");

    // A Keras import of something that is not a Keras model.
    std::ofstream(dir / "k.h5") << "not hdf5";
    EXPECT_EQ(
        runNic("import-keras " + test::shellQuoted(dir / "k.h5") + " --out " + test::shellQuoted(dir / "k.nicenc"), err),
        1)
        << err;
    expectBadFile(err, dir / "k.h5", "not an HDF5 file (expected a Keras 2 model saved as .h5)");
    EXPECT_FALSE(std::filesystem::exists(dir / "k.nicenc"));
}

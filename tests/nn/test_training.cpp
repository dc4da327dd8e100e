// Patch banks and eval-encoder.
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/evaluate.h"
#include "core/encoders/nn/patchbank.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

namespace nic {
namespace {

// ------------------------------------------------------------------------------------ patch banks

TEST(PatchBank, SavesAndLoadsExactly) {
    const PatchBank bank = test::makeTwoClassBank(10, 32, 1);
    test::TempDir dir;
    bank.save(dir / "b.nicbank");
    const PatchBank back = PatchBank::load(dir / "b.nicbank");
    ASSERT_EQ(back.size(), 10U);
    EXPECT_EQ(back.patchSize(), 32);
    EXPECT_EQ(back.classNames(), bank.classNames());
    EXPECT_EQ(back.sourceNames(), bank.sourceNames());
    EXPECT_EQ(std::memcmp(back.data(), bank.data(), 10 * bank.patchBytes()), 0);
    for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(back.label(i), bank.label(i));
        EXPECT_EQ(back.col(i), bank.col(i));
        EXPECT_EQ(back.row(i), bank.row(i));
    }
}

TEST(PatchBank, TruncatedAndForeignFilesAreErrors) {
    const PatchBank bank = test::makeTwoClassBank(4, 32, 1);
    test::TempDir dir;
    bank.save(dir / "b.nicbank");
    std::filesystem::resize_file(dir / "b.nicbank", std::filesystem::file_size(dir / "b.nicbank") - 100);
    try {
        PatchBank::load(dir / "b.nicbank");
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_EQ(std::string(e.what()), (dir / "b.nicbank").string() + ": patch bank is truncated");
    }
    std::ofstream(dir / "x.nicbank") << "hello world, not a bank";
    EXPECT_EQ(test::errorOf<FormatError>([&] { PatchBank::load(dir / "x.nicbank"); }),
              (dir / "x.nicbank").string() + ": not a patch bank (bad signature)");
    EXPECT_THROW(PatchBank::load(dir / "missing.nicbank"), IoError);
}

TEST(PatchBank, SplitKeepsClassProportions) {
    const PatchBank bank = test::makeTwoClassBank(40, 32, 1);
    auto [rest, part] = bank.split(0.25, 9);
    EXPECT_EQ(part.size(), 10U);
    EXPECT_EQ(rest.size(), 30U);
    EXPECT_EQ(part.labelCounts(), (std::vector<std::size_t>{5, 5}));
    auto [rest2, part2] = bank.split(0.25, 9);
    EXPECT_EQ(std::memcmp(part.data(), part2.data(), part.size() * part.patchBytes()), 0);
}

TEST(PatchBank, FromFolderWithLabelsCsvResizesImages) {
    test::TempDir dir;
    std::filesystem::create_directory(dir / "a");
    writePng(dir / "a/one.png", Image(64, 64, 3, 200));
    writePng(dir / "two.png", Image(32, 32, 3, 50));
    std::ofstream(dir / "labels.csv") << "file,label\r\na/one.png,tumor\r\ntwo.png,normal\r\n";
    const PatchBank bank = patchBankFromFolder(dir.path(), 32);
    ASSERT_EQ(bank.size(), 2U);
    EXPECT_EQ(bank.classNames(), (std::vector<std::string>{"normal", "tumor"}));
    EXPECT_EQ(bank.label(0), 1);
    EXPECT_EQ(bank.label(1), 0);
    EXPECT_EQ(bank.patch(0)[0], 200);
    EXPECT_THROW(patchBankFromFolder(dir / "a", 32), IoError); // no labels.csv there
}

// The training loop itself is tested in test_trainer.cpp.

// ------------------------------------------------------------------------------------- evaluation

TEST(EvalEncoder, MeanRgbSeparatesColourClasses) {
    const PatchBank train = test::makeTwoClassBank(80, 32, 11);
    const PatchBank testBank = test::makeTwoClassBank(40, 32, 12);
    MeanRgbEncoder enc(32);
    EvalOptions o;
    o.epochs = 10;
    o.compute.threads = 1;
    const EvalResult r = evaluateEncoder(enc, train, testBank, o);
    EXPECT_GE(r.accuracy, 0.9);
    EXPECT_EQ(r.testCount, 40U);
    ASSERT_EQ(r.confusion.size(), 2U);
    EXPECT_EQ(r.confusion[0][0] + r.confusion[0][1] + r.confusion[1][0] + r.confusion[1][1], 40);
    ASSERT_EQ(r.perClassAccuracy.size(), 2U);
    EXPECT_EQ(r.confusionCsv().substr(0, r.confusionCsv().find('\n')), "true\\predicted,normal,tumor");
    // Balanced accuracy beside accuracy: the mean recall of the two classes, also in the JSON.
    EXPECT_DOUBLE_EQ(r.balancedAccuracy, (r.perClassAccuracy[0] + r.perClassAccuracy[1]) / 2);
    const auto j = nlohmann::json::parse(r.toJson());
    EXPECT_DOUBLE_EQ(j.at("balanced_accuracy").get<double>(), r.balancedAccuracy);
    EXPECT_DOUBLE_EQ(j.at("accuracy").get<double>(), r.accuracy);
    EXPECT_EQ(j.at("validation_split"), "patch"); // the bank has one source
}

TEST(EvalEncoder, RejectsMismatchedPatchSizes) {
    MeanRgbEncoder enc(64);
    const PatchBank b = test::makeTwoClassBank(8, 32, 1);
    EXPECT_THROW(evaluateEncoder(enc, b, b), InvalidArgument);
}

} // namespace
} // namespace nic

// Job option dialogs: validation with exact reasons (shown inline, OK disabled), options round trip,
// values remembered in QSettings.
#include "ui/dialogs.h"

#include "testsupport.h"

#include <QComboBox>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace nic;
namespace fs = std::filesystem;

namespace {

QString qpath(const fs::path& p) {
    return QString::fromStdString(p.string());
}

fs::path touch(const fs::path& p, const std::string& content = "x") {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p;
}

void clearDialogSettings() {
    QSettings().remove("dialogs");
}

/// Sets `options` and checks the inline message and the OK button, then the static validate().
template <class Dialog>
void expectReason(Dialog& dialog, const typename Dialog::Options& options, const QString& reason) {
    dialog.setOptions(options);
    EXPECT_EQ(Dialog::Options::validate(options), reason);
    EXPECT_EQ(dialog.validationError(), reason);
    EXPECT_EQ(dialog.errorLabel()->text(), reason);
    EXPECT_EQ(dialog.okButton()->isEnabled(), reason.isEmpty());
}

} // namespace

class Dialogs : public ::testing::Test {
protected:
    void SetUp() override { clearDialogSettings(); }
    void TearDown() override { clearDialogSettings(); }
    test::TempDir dir;
};

TEST_F(Dialogs, CompressValidatesEveryInput) {
    const QString slide = qpath(touch(dir / "slides/a.tif"));
    const QString encoderFile = qpath(touch(dir / "enc/vae.pt"));
    CompressDialog d;
    CompressDialog::Options o;
    o.slides = {slide};
    o.outputDir = qpath(dir / "grids"); // does not exist yet: it can be created
    expectReason(d, o, "");
    EXPECT_EQ(d.options(), o);

    auto bad = o;
    bad.slides = {};
    expectReason(d, bad, "Add at least one slide.");
    bad.slides = {slide, qpath(dir / "slides/missing.svs")};
    expectReason(d, bad, "Slide not found: " + qpath(dir / "slides/missing.svs"));
    bad = o;
    bad.encoder = "";
    expectReason(d, bad, "Choose an encoder.");
    bad.encoder = qpath(dir / "enc/nope.pt");
    expectReason(d, bad, "Encoder file not found: " + qpath(dir / "enc/nope.pt"));
    bad.encoder = encoderFile;
    expectReason(d, bad, "");
    bad = o;
    bad.patchSize = 0;
    bad.stride = 0;
    expectReason(d, bad, "Patch size P must be positive, not 0.");
    bad = o;
    bad.stride = 0;
    expectReason(d, bad, "Stride S must be positive, not 0.");
    bad.stride = 200;
    expectReason(d, bad, "Stride S (200) must not exceed the patch size P (128): the grid would skip tissue.");
    bad.stride = 64; // overlapping patches are fine
    expectReason(d, bad, "");
    bad = o;
    bad.targetMpp = 100;
    expectReason(d, bad, "Resolution 100 µm/px is beyond any slide level (at most 64).");
    EXPECT_EQ(CompressDialog::Options::validate([&] { auto x = o; x.targetMpp = -1; return x; }()),
              "Resolution must be positive µm/px, or 0 for the encoder's.");
    EXPECT_EQ(CompressDialog::Options::validate([&] { auto x = o; x.augment = 4; return x; }()),
              "Augmentation must be 1 (none) or 8 (all dihedral variants), not 4.");
    bad = o;
    bad.outputDir = "";
    expectReason(d, bad, "Choose an output folder.");
    bad.outputDir = slide;
    expectReason(d, bad, "Output folder is a file: " + slide);
    bad.outputDir = slide + "/sub";
    expectReason(d, bad, "Output folder cannot be created: " + slide + "/sub");
}

TEST_F(Dialogs, CompressRemembersAcceptedValuesButNotSlides) {
    const QString slide = qpath(touch(dir / "a.svs"));
    {
        CompressDialog d;
        CompressDialog::Options o;
        o.slides = {slide};
        o.patchSize = 64;
        o.stride = 32;
        o.targetMpp = 1.0;
        o.augment = 1;
        o.outputDir = qpath(dir.path());
        d.setOptions(o);
        d.accept();
        EXPECT_EQ(d.result(), QDialog::Accepted);
    }
    CompressDialog again;
    const auto o = again.options();
    EXPECT_TRUE(o.slides.isEmpty());
    EXPECT_EQ(o.patchSize, 64);
    EXPECT_EQ(o.stride, 32);
    EXPECT_EQ(o.targetMpp, 1.0);
    EXPECT_EQ(o.augment, 1);
    EXPECT_EQ(o.outputDir, qpath(dir.path()));
    EXPECT_EQ(again.errorLabel()->text(), "Add at least one slide.");
    EXPECT_FALSE(again.okButton()->isEnabled());
}

TEST_F(Dialogs, InvalidInputIsNotAcceptedNorRemembered) {
    CompressDialog d;
    CompressDialog::Options o;
    o.outputDir = qpath(dir.path());
    o.patchSize = 96;
    d.setOptions(o);
    d.accept();
    EXPECT_NE(d.result(), QDialog::Accepted);
    EXPECT_FALSE(QSettings().contains("dialogs/compress/patchSize"));
}

TEST_F(Dialogs, TrainEncoderValidatesEveryInput) {
    const QString bank = qpath(touch(dir / "patches.h5"));
    TrainEncoderDialog d;
    TrainEncoderDialog::Options o;
    o.method = "contrastive";
    o.patchSource = bank;
    o.output = qpath(dir / "contrastive.pt");
    expectReason(d, o, "");
    EXPECT_EQ(d.options(), o);

    auto bad = o;
    bad.patchSource = "";
    expectReason(d, bad, "Choose a patch source.");
    bad.patchSource = qpath(dir / "nope.h5");
    expectReason(d, bad, "Patch source not found: " + qpath(dir / "nope.h5"));
    bad = o;
    bad.output = "";
    expectReason(d, bad, "Choose where to save the encoder.");
    bad.output = qpath(dir.path());
    expectReason(d, bad, "Encoder output is a folder: " + qpath(dir.path()));
    bad.output = qpath(dir / "missing/enc.pt");
    expectReason(d, bad, "Folder does not exist: " + qpath(dir / "missing"));
    bad = o;
    bad.method = "bigan";
    bad.epochs = 0;
    bad.steps = 0;
    expectReason(d, bad, "BiGAN trains at a fixed learning rate: set an epoch or step cap.");
    bad.method = "vae"; // the other methods end at the learning-rate floor without any cap
    expectReason(d, bad, "");
    bad = o;
    bad.learningRate = 2.0;
    expectReason(d, bad, "Learning rate must be in (0, 1], or 0 for the method's default.");
    bad = o;
    bad.codeSize = 0;
    expectReason(d, bad, "Code size C must be between 1 and 4096, not 0.");
    EXPECT_EQ(TrainEncoderDialog::Options::validate([&] { auto x = o; x.method = "pca"; return x; }()),
              "Unknown method 'pca' (one of vae, contrastive, bigan, supervised-tumor, supervised-tissue).");

    d.setOptions(o);
    d.accept();
    TrainEncoderDialog again;
    EXPECT_EQ(again.options(), o);
}

// The Budget field fills the caps from core's presets for the chosen method, says when training ends, and
// becomes "custom" when a cap is edited; the caps travel in Options and are remembered.
TEST_F(Dialogs, TrainEncoderBudgetPresetsFillTheCaps) {
    TrainEncoderDialog d;
    auto* budget = d.findChild<QComboBox*>("budget");
    auto* note = d.findChild<QLabel*>("budgetNote");
    ASSERT_NE(budget, nullptr);
    ASSERT_NE(note, nullptr);
    EXPECT_EQ(d.budgetPreset(), "default");
    EXPECT_EQ(budget->currentData().toString(), "default");
    EXPECT_EQ(note->text(), "Training ends after at most 20 epochs of one pass, or earlier when the learning rate "
                            "reaches 1e-5.");

    TrainEncoderDialog::Options o = d.options();
    o.method = "bigan";
    d.setOptions(o);
    const auto choose = [&](const QString& preset) {
        budget->setCurrentIndex(budget->findData(preset));
        Q_EMIT budget->activated(budget->currentIndex());
    };
    choose("paper");
    EXPECT_EQ(d.options().epochs, 0);
    EXPECT_EQ(d.options().steps, 200000);
    EXPECT_EQ(d.options().stepsPerEpoch, 0);
    EXPECT_EQ(note->text(), "Training ends after at most 200000 steps.");
    // The paper's budget for the plateau-scheduled methods is the learning-rate floor alone.
    o = d.options();
    o.method = "contrastive";
    d.setOptions(o); // the caps as given: BiGAN's paper caps are a custom budget for contrastive
    EXPECT_EQ(d.budgetPreset(), "custom");
    choose("paper");
    EXPECT_EQ(d.options().steps, 0);
    EXPECT_EQ(d.options().epochs, 0);
    EXPECT_EQ(note->text(), "Training ends when the learning rate reaches 1e-5.");
    choose("demo");
    EXPECT_EQ(d.options().steps, 90);
    EXPECT_EQ(d.options().stepsPerEpoch, 30);
    EXPECT_EQ(note->text(), "Training ends after at most 90 steps (epochs of 30 steps), or earlier when the "
                            "learning rate reaches 1e-5.");
    // Editing a cap makes the budget custom; changing the method then keeps the caps.
    auto* steps = d.findChild<QSpinBox*>("steps");
    ASSERT_NE(steps, nullptr);
    EXPECT_EQ(steps->value(), 90);
    steps->setValue(1000);
    EXPECT_EQ(budget->currentData().toString(), "custom");
    EXPECT_EQ(d.options().steps, 1000);

    const QString bank = qpath(touch(dir / "patches.h5"));
    o = d.options();
    o.patchSource = bank;
    o.output = qpath(dir / "enc.pt");
    d.setOptions(o);
    d.accept();
    TrainEncoderDialog again;
    EXPECT_EQ(again.options(), o);
    EXPECT_EQ(again.budgetPreset(), "custom");
}

TEST_F(Dialogs, TrainSlideModelValidatesEveryInput) {
    const fs::path cohort = touch(dir / "cohort.csv", "slide,label\na.tif,0\nb.tif,1\nc.tif,0\nd.tif,1\n");
    const fs::path broken = touch(dir / "broken.csv", "slide,label\na.tif,0,7\n");
    fs::create_directories(dir / "grids");
    TrainSlideModelDialog d;
    TrainSlideModelDialog::Options o;
    o.cohort = qpath(cohort);
    o.gridsDir = qpath(dir / "grids");
    o.outputDir = qpath(dir / "cv");
    o.folds = 4;
    expectReason(d, o, "");
    EXPECT_EQ(d.options(), o);

    auto bad = o;
    bad.cohort = "";
    expectReason(d, bad, "Choose a cohort CSV.");
    bad.cohort = qpath(dir / "none.csv");
    expectReason(d, bad, "Cohort file not found: " + qpath(dir / "none.csv"));
    bad.cohort = qpath(broken);
    const QString reason = TrainSlideModelDialog::Options::validate(bad);
    EXPECT_TRUE(reason.startsWith("Cohort: " + qpath(broken) + ":2: ")) << reason.toStdString();
    expectReason(d, bad, reason);
    bad = o;
    bad.gridsDir = "";
    expectReason(d, bad, "Choose the folder of compressed slides.");
    bad.gridsDir = qpath(dir / "nogrids");
    expectReason(d, bad, "Folder of compressed slides not found: " + qpath(dir / "nogrids"));
    bad = o;
    bad.folds = 2;
    expectReason(d, bad, "Cross-validation needs at least 3 folds (train, validation, test), not 2.");
    bad.folds = 5;
    expectReason(d, bad, "5 folds need at least 5 slides; the cohort has 4.");
    bad = o;
    bad.cropSize = 0;
    expectReason(d, bad, "Crop size R must be at least 1, not 0.");
    bad = o;
    bad.testCrops = 0;
    expectReason(d, bad, "Test crops T must be at least 1, not 0.");
    bad = o;
    bad.epochs = 0;
    expectReason(d, bad, "Epochs must be at least 1, not 0.");
    bad = o;
    bad.task = "regression";
    expectReason(d, bad, "");
    EXPECT_EQ(TrainSlideModelDialog::Options::validate([&] { auto x = o; x.task = "survival"; return x; }()),
              "Task must be classification or regression, not 'survival'.");
    // The head combo box: auto by default, each head round-trips, an unknown one is named.
    EXPECT_EQ(d.options().head, "auto");
    for (const char* head : {"max", "avg", "flatten", "auto"}) {
        bad = o;
        bad.head = head;
        expectReason(d, bad, "");
        EXPECT_EQ(d.options(), bad) << head;
    }
    EXPECT_EQ(TrainSlideModelDialog::Options::validate([&] { auto x = o; x.head = "mean"; return x; }()),
              "Head must be auto, max, avg or flatten, not 'mean'.");
    QComboBox* headBox = nullptr;
    for (auto* c : d.findChildren<QComboBox*>())
        if (c->findData(QStringLiteral("flatten")) >= 0)
            headBox = c;
    ASSERT_NE(headBox, nullptr);
    EXPECT_EQ(headBox->count(), 4);
    bad = o;
    bad.head = "flatten";
    d.setOptions(bad);
    EXPECT_EQ(headBox->currentText(), QStringLiteral("flatten + dense (paper, R × R input)"));
}

TEST_F(Dialogs, GradCamValidatesEveryInput) {
    const QString model = qpath(touch(dir / "fold0/model.pt"));
    const QString grid = qpath(touch(dir / "grids/a.h5"));
    const QString notGrid = qpath(touch(dir / "grids/a.tif"));
    GradCamDialog d;
    GradCamDialog::Options o;
    o.model = model;
    o.slides = {grid};
    o.outputDir = qpath(dir / "heatmaps");
    expectReason(d, o, "");
    EXPECT_EQ(d.options(), o);

    auto bad = o;
    bad.model = "";
    expectReason(d, bad, "Choose a model file or a training run folder.");
    bad.model = qpath(dir / "m.pt");
    expectReason(d, bad, "Model file not found: " + qpath(dir / "m.pt"));
    bad = o;
    bad.slides = {};
    expectReason(d, bad, "Add at least one compressed slide.");
    bad.slides = {qpath(dir / "grids/b.h5")};
    expectReason(d, bad, "Compressed slide not found: " + qpath(dir / "grids/b.h5"));
    bad.slides = {notGrid};
    expectReason(d, bad, "Not a compressed slide (.h5): " + notGrid);
    bad = o;
    bad.layer = -1;
    expectReason(d, bad, "Layer k must be 0 (input) or more, not -1.");

    d.setOptions(o);
    d.accept();
    GradCamDialog again;
    EXPECT_EQ(again.options().model, model);
    EXPECT_TRUE(again.options().slides.isEmpty());
    EXPECT_EQ(again.options().outputDir, o.outputDir);
}

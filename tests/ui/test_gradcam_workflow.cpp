// Grad-CAM from the Analysis menu on a cross-validation run does what `nic gradcam` does: each slide is
// explained by the model of the round that held it out (never by a model that trained on it), and the
// files are the CLI's: the same heatmap data in the HDF5 file, plus the PNG overlay and the ASAP TIFF.
#ifdef NIC_WITH_UI_NN

#include "core/heatmaps/heatmapeval.h"
#include "core/slidelearning/runfolder.h"
#include "testsupport.h"
#include "ui/dialogs.h"
#include "ui/jobrunner.h"
#include "ui/mainwindow.h"
#include "ui/workflow.h"

#include <QAction>
#include <QApplication>
#include <QTest>
#include <QTimer>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <set>

using namespace nic;
namespace fs = std::filesystem;

namespace {

void nicOk(const std::string& args) {
    std::string out, err;
    const std::string cmd = test::nicExecutable().string() + " " + args;
    ASSERT_EQ(test::runCommand(cmd, &out, &err), 0) << cmd << "\n" << err;
}

QString q(const fs::path& p) { return QString::fromStdString(p.string()); }

} // namespace

TEST(GradCamWorkflow, AnalysisMenuExplainsEachSlideWithItsHeldOutFoldModelLikeTheCli) {
    test::TempDir dir;
    const auto d = [&](const std::string& name) { return (dir / name).string(); };
    // 8 slides, 4 with lesions; mean-RGB grids; a 4-fold cross-validation of a small CNN.
    nicOk("synth --out " + d("synth") + " --count 8 --size 1024 --seed 7 --lesion-size 200:300 --lesions 1 -q --threads 1");
    nicOk("compress --cohort " + d("synth/cohort.csv") + " -e mean-rgb --out " + d("grids") + " -q");
    nicOk("train --cohort " + d("synth/cohort.csv") + " --grids " + d("grids") + " --out " + d("run") +
          " --folds 4 --epochs 1 --steps-per-epoch 2 --batch 4 --filters 8 --layers 4 --dense 8 --bootstrap 20"
          " --seed 1 --device cpu -q");
    std::vector<fs::path> grids;
    std::string gridArgs;
    for (int i = 0; i < 8; ++i) {
        grids.push_back(dir / "grids" / ("synth-00" + std::to_string(i) + ".h5"));
        gridArgs += " " + grids.back().string();
    }
    nicOk("gradcam --model " + d("run") + " --out " + d("cli") + " --device cpu -q" + gridArgs);

    MainWindow window;
    Workflow* wf = Workflow::install(&window);
    ASSERT_TRUE(wf->gradCamAction()->isEnabled());
    // The menu action opens the dialog (modal); fill it in as a user would and press OK.
    bool filled = false;
    QTimer timer;
    QObject::connect(&timer, &QTimer::timeout, [&] {
        auto* dialog = qobject_cast<GradCamDialog*>(QApplication::activeModalWidget());
        if (!dialog || filled)
            return;
        GradCamDialog::Options o;
        o.model = q(dir / "run"); // the run folder, not one of its models
        for (const auto& g : grids)
            o.slides << q(g);
        o.outputDir = q(dir / "gui");
        dialog->setOptions(o);
        EXPECT_EQ(dialog->validationError(), QString());
        filled = true;
        dialog->accept();
    });
    timer.start(20);
    wf->gradCamAction()->trigger(); // returns when the dialog closes
    timer.stop();
    ASSERT_TRUE(filled);
    const auto jobs = wf->runner()->jobIds();
    ASSERT_EQ(jobs.size(), 1);
    const JobId id = jobs.front();
    ASSERT_TRUE(QTest::qWaitFor([&] { return isFinished(wf->runner()->info(id).state); }, 300000));
    ASSERT_EQ(wf->runner()->info(id).state, JobState::Succeeded) << wf->runner()->info(id).error.toStdString();

    const auto folds = readRunFolds(dir / "run");
    std::set<int> foldsUsed;
    for (const auto& g : grids) {
        const std::string stem = g.stem().string();
        SCOPED_TRACE(stem);
        ASSERT_TRUE(folds.count(stem));
        const HeatmapData gui = readHeatmapFile(dir / "gui" / (stem + "_heatmap.h5"));
        const HeatmapData cli = readHeatmapFile(dir / "cli" / (stem + "_heatmap.h5"));
        // The model of the round that held this slide out.
        EXPECT_EQ(fs::path(gui.model), fs::absolute(runModelPath(dir / "run", folds.at(stem))));
        foldsUsed.insert(folds.at(stem));
        // The CLI's heatmap, bit for bit.
        EXPECT_EQ(gui.model, cli.model);
        EXPECT_EQ(gui.gridFile, cli.gridFile);
        ASSERT_EQ(gui.rows, cli.rows);
        ASSERT_EQ(gui.cols, cli.cols);
        ASSERT_EQ(gui.heat.size(), cli.heat.size());
        EXPECT_EQ(std::memcmp(gui.heat.data(), cli.heat.data(), gui.heat.size() * sizeof(float)), 0);
        EXPECT_EQ(std::memcmp(gui.tissue.data(), cli.tissue.data(), gui.tissue.size() * sizeof(float)), 0);
        EXPECT_EQ(gui.prediction, cli.prediction);
        EXPECT_EQ(gui.layer, cli.layer);
        // And the other outputs.
        EXPECT_TRUE(fs::is_regular_file(dir / "gui" / (stem + "_gradcam.png")));
        EXPECT_TRUE(fs::is_regular_file(dir / "gui" / (stem + "_likelihood_map.tif")));
        EXPECT_EQ(test::readFile(dir / "gui" / (stem + "_gradcam.png")), test::readFile(dir / "cli" / (stem + "_gradcam.png")));
        EXPECT_EQ(test::readFile(dir / "gui" / (stem + "_likelihood_map.tif")),
                  test::readFile(dir / "cli" / (stem + "_likelihood_map.tif")));
    }
    EXPECT_EQ(foldsUsed.size(), 4u); // every round's model explained its own test slides
}

TEST(GradCamWorkflow, DialogAcceptsARunFolderAndRefusesOtherFolders) {
    test::TempDir dir;
    fs::create_directories(dir / "notarun");
    fs::create_directories(dir / "run");
    writeRunFolds(dir / "run", {"a"}, {0});
    std::ofstream(dir / "a.h5") << "x";
    GradCamDialog dialog;
    GradCamDialog::Options o;
    o.slides = {q(dir / "a.h5")};
    o.outputDir = q(dir / "out");
    o.model = q(dir / "notarun");
    dialog.setOptions(o);
    EXPECT_EQ(dialog.validationError(), QStringLiteral("Not a training run folder (no folds.csv): ") + q(dir / "notarun"));
    o.model = q(dir / "run");
    dialog.setOptions(o);
    EXPECT_EQ(dialog.validationError(), QString());
    o.model = q(dir / "missing.pt");
    dialog.setOptions(o);
    EXPECT_EQ(dialog.validationError(), QStringLiteral("Model file not found: ") + q(dir / "missing.pt"));
}

#endif // NIC_WITH_UI_NN

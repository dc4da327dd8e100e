// "Run on: Slurm cluster" in nic-studio: with sbatch on PATH the Compress dialog offers it; a submission
// runs `nic submit compress` and the Jobs dock follows it through the output folder to the end, when
// "Open result" opens the grids like a local job's; a slide that fails makes the job fail naming it; a bad
// option is refused with nic's own message. The Slurm client commands are stand-ins written by the test
// (sbatch runs each array task's script in the background, squeue lists the tasks still running), so the
// test needs no cluster; the real single-node Slurm is exercised by the `slurm` tests of `nic submit`.
#include "core/compression/compressor.h"
#include "core/compression/latentgrid.h"
#include "testslide.h"
#include "testsupport.h"
#include "ui/clusterjobs.h"
#include "ui/dialogs.h"
#include "ui/jobrunner.h"
#include "ui/jobspanel.h"
#include "ui/mainwindow.h"
#include "ui/workflow.h"

#include <QComboBox>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QTest>

#include <gtest/gtest.h>

#include <fstream>

using namespace nic;
namespace fs = std::filesystem;

namespace {

QString q(const fs::path& p) { return QString::fromStdString(p.string()); }

void writeExecutable(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
}

// Stand-ins for sbatch, squeue and scancel, keeping their state in $FAKE_SLURM_DIR.
class FakeSlurm {
public:
    FakeSlurm() : oldPath_(qgetenv("PATH")) {
        const fs::path bin = dir_ / "bin";
        fs::create_directories(bin);
        fs::create_directories(dir_ / "state");
        writeExecutable(bin / "sbatch", R"(#!/bin/bash
state="$FAKE_SLURM_DIR"; script="${@: -1}"
id=$(cat "$state/next" 2>/dev/null || echo 100); echo $((id + 1)) > "$state/next"
hi=$(sed -n 's/^#SBATCH --array=0-\([0-9]*\).*/\1/p' "$script")
if [ -z "$hi" ]; then tasks=""; touch "$state/$id.running"; else
  tasks=$(seq 0 "$hi"); for t in $tasks; do touch "$state/${id}_$t.running"; done; fi
(
  if [ -z "$tasks" ]; then SLURM_JOB_ID=$id bash "$script"; rm -f "$state/$id.running"; else
    for t in $tasks; do
      [ -f "$state/$id.cancelled" ] || SLURM_JOB_ID=$id SLURM_ARRAY_TASK_ID=$t bash "$script"
      rm -f "$state/${id}_$t.running"
    done
  fi
) < /dev/null > /dev/null 2>&1 &
echo "$id"
)");
        writeExecutable(bin / "squeue", R"(#!/bin/bash
for f in "$FAKE_SLURM_DIR"/*.running; do [ -e "$f" ] && { b=$(basename "$f" .running); echo "$b RUNNING"; }; done
exit 0
)");
        writeExecutable(bin / "scancel", R"(#!/bin/bash
for id in "$@"; do touch "$FAKE_SLURM_DIR/$id.cancelled"; done
)");
        qputenv("FAKE_SLURM_DIR", QByteArray::fromStdString((dir_ / "state").string()));
        qputenv("PATH", QByteArray::fromStdString(bin.string()) + ":" + oldPath_);
        qputenv("NIC_PROGRAM", QByteArray::fromStdString(test::nicExecutable().string()));
    }
    ~FakeSlurm() {
        qputenv("PATH", oldPath_);
        qunsetenv("FAKE_SLURM_DIR");
        qunsetenv("NIC_PROGRAM");
    }

private:
    test::TempDir dir_;
    QByteArray oldPath_;
};

bool waitFinished(JobRunner* runner, JobId id, int ms = 120000) {
    return QTest::qWaitFor([&] { return isFinished(runner->info(id).state); }, ms);
}

CompressDialog::Options clusterCompress(const QStringList& slides, const fs::path& out) {
    CompressDialog::Options o;
    o.slides = slides;
    o.encoder = QStringLiteral("mean-rgb");
    o.outputDir = q(out);
    o.augment = 1;
    o.runOn.cluster = true;
    o.runOn.slurm.partition = "cpu";
    o.runOn.slurm.time = "0:30:00";
    return o;
}

} // namespace

TEST(ClusterJobs, CompressDialogOffersSlurmOnlyWhenSbatchIsOnPath) {
    QSettings().remove(QStringLiteral("dialogs/compress"));
    {
        const QByteArray path = qgetenv("PATH");
        qputenv("PATH", "/nonexistent");
        CompressDialog d;
        EXPECT_EQ(d.runOnCombo(), nullptr);
        EXPECT_FALSE(d.options().runOn.cluster);
        qputenv("PATH", path);
    }
    FakeSlurm slurm;
    test::TempDir dir;
    test::writeTestSlide(dir / "a.tif");
    CompressDialog d;
    ASSERT_NE(d.runOnCombo(), nullptr);
    EXPECT_EQ(d.runOnCombo()->currentText(), QStringLiteral("this computer"));
    auto o = d.options();
    o.slides = {q(dir / "a.tif")};
    o.outputDir = q(dir / "grids");
    o.runOn.cluster = true;
    o.runOn.slurm.time = "four hours";
    d.setOptions(o);
    EXPECT_EQ(d.options().runOn.cluster, true);
    EXPECT_EQ(d.errorLabel()->text(),
              QStringLiteral("Time limit 'four hours' is not in Slurm's format (minutes, H:MM:SS or D-HH:MM:SS)."));
    EXPECT_FALSE(d.okButton()->isEnabled());
    o.runOn.slurm.time = "1-12:00:00";
    o.runOn.slurm.memory = "8G";
    o.runOn.slurm.partition = "gpu";
    d.setOptions(o);
    EXPECT_EQ(d.errorLabel()->text(), QString());
    EXPECT_EQ(d.options().runOn, o.runOn);
    EXPECT_EQ(d.runOnCombo()->currentText(), QStringLiteral("Slurm cluster (nic submit)"));
    o.runOn.slurm.memory = "lots";
    EXPECT_EQ(RunOn::validate(o.runOn), QStringLiteral("Memory 'lots' is not in Slurm's format (a number with K, M, G or T, e.g. 8G)."));
}

TEST(ClusterJobs, ASubmissionIsFollowedToTheEndAndItsGridsEqualALocalRun) {
    FakeSlurm slurm;
    test::TempDir dir;
    QStringList slides;
    for (int i = 0; i < 3; ++i) {
        const fs::path s = dir / ("case" + std::to_string(i) + ".tif");
        test::writeTestSlide(s);
        slides << q(s);
    }
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    wf->clusterJobs()->setPollInterval(100);
    w.show();
    QString error;
    const JobId id = wf->startCompress(clusterCompress(slides, dir / "grids"), &error);
    ASSERT_NE(id, 0u) << error.toStdString();
    EXPECT_TRUE(wf->runner()->isExternal(id));
    EXPECT_EQ(wf->runner()->info(id).name, QStringLiteral("Compress 3 slides (Slurm)"));
    ASSERT_TRUE(waitFinished(wf->runner(), id));
    const JobInfo info = wf->runner()->info(id);
    ASSERT_EQ(info.state, JobState::Succeeded) << info.error.toStdString() << "\n" << info.log.join('\n').toStdString();
    EXPECT_EQ(info.percent, 100);
    EXPECT_EQ(info.step, QStringLiteral("3 of 3 slides done"));
    const QString log = info.log.join(QLatin1Char('\n'));
    EXPECT_TRUE(log.contains(QStringLiteral("--partition=cpu"))) << log.toStdString();
    EXPECT_TRUE(log.contains(QStringLiteral("submitted job 100: 3 array task(s) over 3 slide(s)"))) << log.toStdString();
    EXPECT_TRUE(log.contains(QStringLiteral("case2: done"))) << log.toStdString();
    ASSERT_EQ(info.resultPaths.size(), 3);
    // The same grid as this computer's compression of the slide.
    CompressOptions c;
    c.augment = 1;
    MeanRgbEncoder enc(128);
    compressSlide(slides[0].toStdString(), enc, dir / "local" / "case0.h5", c);
    const LatentGridReader a(dir / "local" / "case0.h5"), b(dir / "grids" / "case0.h5");
    EXPECT_EQ(a.gridHwc(0), b.gridHwc(0));
    EXPECT_EQ(a.tissueFractions(), b.tissueFractions());
    EXPECT_EQ(b.variantCount(), 1);
    // "Open result" opens the grid as for a local job.
    EXPECT_TRUE(wf->openResult(info.resultPaths.front()));
}

TEST(ClusterJobs, AFailedSlideFailsTheJobNamingItAndABadOptionIsNicsOwnMessage) {
    FakeSlurm slurm;
    test::TempDir dir;
    const fs::path good = dir / "good.tif";
    test::writeTestSlide(good);
    const fs::path bad = dir / "bad.tif";
    std::ofstream(bad) << "not a slide";
    MainWindow w;
    Workflow* wf = Workflow::install(&w);
    wf->clusterJobs()->setPollInterval(100);
    const JobId id = wf->startCompress(clusterCompress({q(good), q(bad)}, dir / "grids"));
    ASSERT_NE(id, 0u);
    ASSERT_TRUE(waitFinished(wf->runner(), id));
    JobInfo info = wf->runner()->info(id);
    ASSERT_EQ(info.state, JobState::Failed) << info.log.join('\n').toStdString();
    EXPECT_TRUE(info.error.startsWith(QStringLiteral("1 of 2 slides not done: bad: "))) << info.error.toStdString();
    EXPECT_TRUE(info.error.contains(QStringLiteral("--missing-only"))) << info.error.toStdString();
    EXPECT_TRUE(fs::exists(dir / "grids" / "good.h5"));

    auto o = clusterCompress({q(good)}, dir / "grids2");
    o.runOn.slurm.partition = "";
    o.stride = 0; // nic's own check refuses it at submission
    const JobId refused = wf->startCompress(o);
    ASSERT_TRUE(waitFinished(wf->runner(), refused));
    info = wf->runner()->info(refused);
    EXPECT_EQ(info.state, JobState::Failed);
    EXPECT_TRUE(info.error.contains(QStringLiteral("--stride"))) << info.error.toStdString();
    EXPECT_FALSE(fs::exists(dir / "grids2" / ".nic-submit"));
}

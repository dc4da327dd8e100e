// The one CSV module (RFC 4180) and the run-folder files of `nic train`, and JobContext's child contexts:
// what both front-ends read, written and read back in one place.
#include "core/slidelearning/cohort.h"
#include "core/base/csv.h"
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/base/plateau.h"
#include "core/slidelearning/runfolder.h"
#include "testsupport.h"

#include <gmock/gmock.h>

#include <cmath>
#include <fstream>

using namespace nic;
using ::testing::HasSubstr;

TEST(Csv, QuotesCommasNewlinesCrlfCommentsAndBlankLines) {
    const std::string text = "# a comment\r\nslide,note\r\n\r\n\"a, b\",\"say \"\"hi\"\"\"\n"
                             "  c  ,\"two\nlines\"\n\"#not a comment\",x\n";
    const CsvTable t = parseCsvTable(text, "t.csv");
    EXPECT_EQ(t.header, (std::vector<std::string>{"slide", "note"}));
    EXPECT_EQ(t.headerLine, 2);
    ASSERT_EQ(t.rows.size(), 3U);
    EXPECT_EQ(t.rows[0].fields, (std::vector<std::string>{"a, b", "say \"hi\""}));
    EXPECT_EQ(t.rows[0].line, 4);
    EXPECT_EQ(t.rows[1].fields, (std::vector<std::string>{"c", "two\nlines"}));
    EXPECT_EQ(t.rows[1].line, 5);
    EXPECT_EQ(t.rows[2].fields[0], "#not a comment");
    EXPECT_EQ(t.rows[2].line, 7);
}

TEST(Csv, WrittenFieldsReadBackUnchanged) {
    const std::vector<std::string> awkward{"plain", "a,b", "say \"hi\"", "two\nlines", " padded ", "#hash", "", "cr\r"};
    const std::string text = csvRow({"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"}) + csvRow(awkward);
    const CsvTable t = parseCsvTable(text, "w.csv");
    ASSERT_EQ(t.rows.size(), 1U);
    EXPECT_EQ(t.rows[0].fields, awkward);
    EXPECT_EQ(csvField("plain"), "plain");
    EXPECT_EQ(csvField("a,b"), "\"a,b\"");
    EXPECT_EQ(csvField("say \"hi\""), "\"say \"\"hi\"\"\"");
}

TEST(Csv, MalformedTablesNameFileAndLine) {
    EXPECT_EQ(test::errorOf<FormatError>([] { parseCsvTable("", "e.csv"); }), "e.csv: empty file (expected a header row)");
    EXPECT_EQ(test::errorOf<FormatError>([] { parseCsvTable("a,b\n1\n", "e.csv"); }), "e.csv:2: 1 fields, the header has 2");
    EXPECT_EQ(test::errorOf<FormatError>([] { parseCsvTable("a,a\n", "e.csv"); }), "e.csv:1: duplicate column 'a'");
    EXPECT_EQ(test::errorOf<FormatError>([] { parseCsvTable("a\n\"x\n", "e.csv"); }), "e.csv:2: unterminated quoted field");
    const CsvTable t = parseCsvTable("a,b\n1,x\n", "e.csv");
    EXPECT_EQ(test::errorOf<FormatError>([&] { (void)t.requireColumn("c"); }), "e.csv:1: no column 'c' (found: a,b)");
    EXPECT_EQ(t.number(t.rows[0], 0), 1.0);
    EXPECT_EQ(test::errorOf<FormatError>([&] { (void)t.number(t.rows[0], 1); }), "e.csv:2: b 'x' is not a number");
    test::TempDir dir;
    EXPECT_THAT(test::errorOf<IoError>([&] { readCsvTable(dir / "none.csv"); }), HasSubstr("none.csv: cannot read"));
}

TEST(RunFolder, FilesRoundTripWithNaNAsEmptyField) {
    test::TempDir dir;
    EXPECT_FALSE(isRunFolder(dir.path()));
    writeRunFolds(dir.path(), {"a", "b,c", "d"}, {0, 1, 2});
    EXPECT_TRUE(isRunFolder(dir.path()));
    const auto folds = readRunFolds(dir.path());
    EXPECT_EQ(folds, (std::map<std::string, int>{{"a", 0}, {"b,c", 1}, {"d", 2}}));
    EXPECT_EQ(runModelPath(dir.path(), 2), dir.path() / "fold2" / "model.pt");

    const double nan = std::nan("");
    writeRunCurves(dir.path(), {{0, 1, 0.01, 0.7, 0.6, 0.75, true, 1.5}, {1, 1, 0.001, 0.5, 0.4, nan, false, 2.25}});
    EXPECT_EQ(test::readFile(dir / "curves.csv"), "round,epoch,lr,train_loss,val_loss,val_metric,best,seconds\n"
                                                   "0,1,0.01,0.7,0.6,0.75,1,1.5\n1,1,0.001,0.5,0.4,,0,2.25\n");
    const auto curves = readRunCurves(dir.path());
    ASSERT_EQ(curves.size(), 2U);
    EXPECT_EQ(curves[0].validationMetric, 0.75);
    EXPECT_TRUE(curves[0].best);
    EXPECT_TRUE(std::isnan(curves[1].validationMetric));
    EXPECT_EQ(curves[1].seconds, 2.25);

    writeRunPredictions(dir.path(), {{"x", 1.0, 0.123456789012, 3}, {"y \"q\"", 0.0, 0.5, 0}});
    const auto preds = readRunPredictions(dir.path());
    ASSERT_EQ(preds.size(), 2U);
    EXPECT_EQ(preds[0].prediction, 0.123456789); // 9 significant digits
    EXPECT_EQ(preds[1].slide, "y \"q\"");
    EXPECT_EQ(preds[0].round, 3);

    EXPECT_THAT(test::errorOf<IoError>([&] { readRunTask(dir.path()); }), HasSubstr("metrics.json: cannot read"));
    std::ofstream(dir / "metrics.json") << R"({"task": "regress"})";
    EXPECT_EQ(readRunTask(dir.path()), "regress");
    std::ofstream(dir / "metrics.json") << R"({"task": 3})";
    EXPECT_THAT(test::errorOf<FormatError>([&] { readRunTask(dir.path()); }),
                HasSubstr("metrics.json: \"task\" must be \"classify\" or \"regress\""));
    std::ofstream(dir / "folds.csv") << "slide,fold\na,0\na,1\n";
    EXPECT_EQ(test::errorOf<FormatError>([&] { readRunFolds(dir.path()); }),
              (dir / "folds.csv").string() + ":3: slide a is listed twice");
    test::TempDir empty;
    EXPECT_THAT(test::errorOf<IoError>([&] { readRunFolds(empty.path()); }),
                HasSubstr("folds.csv: not found (is " + empty.path().string() + " a nic train run folder?)"));
}

TEST(CohortGrids, ResolvesGridsLabelsAndFoldsAndNamesWhatIsMissing) {
    test::TempDir dir;
    std::filesystem::create_directories(dir / "grids");
    std::ofstream(dir / "grids" / "a.h5") << "x";
    std::ofstream(dir / "grids" / "b.h5") << "x";
    std::ofstream(dir / "grids" / "c.h5") << "x";
    const Cohort c =
        parseCohort("slide,label,score,fold\na.svs,1,0.5,0\nb.tif,0,,1\nc.svs,0,,2\n", dir / "c.csv", dir.path());
    const CohortGrids g = resolveCohortGrids(c, dir / "grids");
    EXPECT_EQ(g.grids, (std::vector<std::filesystem::path>{dir / "grids" / "a.h5", dir / "grids" / "b.h5",
                                                           dir / "grids" / "c.h5"}));
    EXPECT_EQ(g.labels, (std::vector<double>{1.0, 0.0, 0.0}));
    EXPECT_EQ(g.folds, (std::vector<int>{0, 1, 2}));
    EXPECT_FALSE(g.usesScore);
    CohortGridOptions o;
    o.ignoreFoldColumn = true;
    EXPECT_TRUE(resolveCohortGrids(c, dir / "grids", o).folds.empty());
    o.target = CohortTarget::Score;
    EXPECT_EQ(test::errorOf<FormatError>([&] { resolveCohortGrids(c, dir / "grids", o); }),
              (dir / "c.csv").string() + ":3: no score for " + (dir / "b.tif").string());
    const Cohort words = parseCohort("slide,label\na.svs,tumor\n", dir / "w.csv", dir.path());
    EXPECT_EQ(test::errorOf<FormatError>([&] { resolveCohortGrids(words, dir / "grids"); }),
              (dir / "w.csv").string() + ":2: label 'tumor' of slide a.svs is not a number");
    const Cohort three = parseCohort("slide,label\na.svs,2\n", dir / "t.csv", dir.path());
    EXPECT_EQ(test::errorOf<FormatError>([&] { resolveCohortGrids(three, dir / "grids"); }),
              (dir / "t.csv").string() +
                  ":2: label '2' of slide a.svs is not 0 or 1 (classification; use --task regress for continuous labels)");
    CohortGridOptions regress;
    regress.regression = true;
    EXPECT_EQ(resolveCohortGrids(three, dir / "grids", regress).labels, std::vector<double>{2.0});
    const Cohort more = parseCohort("slide,label\na.svs,1\nz.svs,0\n", dir / "m.csv", dir.path());
    EXPECT_EQ(test::errorOf<Error>([&] { resolveCohortGrids(more, dir / "grids"); }),
              "1 slide(s) of the cohort have no compressed grid in " + (dir / "grids").string() +
                  " (run nic compress first):\n  " + (dir / "grids" / "z.h5").string());
    // What cross-validation cannot use is a bad cohort file too: fewer than 3 folds, a single class.
    const Cohort twoFolds = parseCohort("slide,label,fold\na.svs,1,0\nb.tif,0,1\nc.svs,0,1\n", dir / "f.csv", dir.path());
    EXPECT_EQ(test::errorOf<FormatError>([&] { resolveCohortGrids(twoFolds, dir / "grids"); }),
              (dir / "f.csv").string() +
                  ": the fold column has 2 distinct value(s); cross-validation needs at least 3 (or use "
                  "--ignore-fold-column)");
    CohortGridOptions ignoreFolds;
    ignoreFolds.ignoreFoldColumn = true;
    EXPECT_EQ(resolveCohortGrids(twoFolds, dir / "grids", ignoreFolds).labels.size(), 3U);
    const Cohort oneClass = parseCohort("slide,label\na.svs,0\nb.tif,0\n", dir / "o.csv", dir.path());
    EXPECT_EQ(test::errorOf<FormatError>([&] { resolveCohortGrids(oneClass, dir / "grids"); }),
              (dir / "o.csv").string() + ": every slide has label 0; classification needs both classes");
    EXPECT_EQ(resolveCohortGrids(oneClass, dir / "grids", regress).labels, (std::vector<double>{0.0, 0.0}));
    EXPECT_THROW(parseCohortTarget("both"), InvalidArgument);
}

TEST(JobContext, ChildReportsItsShareOfTheParentAndSeesTheParentsCancel) {
    std::vector<JobContext::Progress> seen;
    std::vector<std::string> log;
    JobContext parent([&](const JobContext::Progress& p) { seen.push_back(p); },
                      [&](const std::string& l) { log.push_back(l); });
    parent.setMinInterval(std::chrono::milliseconds(0));
    {
        JobContext child(parent, 0.5, 1.0, "slide 2/2 b: ");
        child.setPhase(0.0, 0.1); // a cheap first phase
        child.progress(50, 100, "tissue");
        child.setPhase(0.1, 1.0);
        child.progress(0, 400, "encoding");
        child.progress(200, 400, "encoding");
        child.log("note");
        EXPECT_FALSE(child.isCancelled());
        parent.cancel();
        EXPECT_TRUE(child.isCancelled());
        EXPECT_THROW(child.throwIfCancelled(), Cancelled);
    }
    ASSERT_EQ(seen.size(), 3U);
    EXPECT_DOUBLE_EQ(seen[0].fraction, 0.5 + 0.5 * 0.05);
    EXPECT_DOUBLE_EQ(seen[1].fraction, 0.5 + 0.5 * 0.1);
    EXPECT_DOUBLE_EQ(seen[2].fraction, 0.5 + 0.5 * 0.55);
    EXPECT_EQ(seen[2].step, "slide 2/2 b: encoding");
    EXPECT_EQ(seen[2].done, 200); // the child's own counts
    EXPECT_EQ(seen[2].total, 400);
    EXPECT_EQ(log, (std::vector<std::string>{"note"}));

    // A child's share never goes back, and cancelling a child leaves its parent running.
    JobContext other([&](const JobContext::Progress& p) { seen.push_back(p); }, {});
    other.setMinInterval(std::chrono::milliseconds(0));
    JobContext child(other, 0.0, 1.0);
    child.progress(3, 4);
    child.progress(1, 4);
    EXPECT_DOUBLE_EQ(seen.back().fraction, 0.75);
    child.cancel();
    EXPECT_FALSE(other.isCancelled());
}

TEST(PlateauSchedule, DividesByTenAfterPatienceAndStopsAtTheFloor) {
    const PlateauSchedule schedule{1e-3, 2};
    double lr = 1e-2;
    int since = 0;
    EXPECT_EQ(schedule.epochEnded(false, lr, since), PlateauStep::Continue);
    EXPECT_EQ(since, 1);
    EXPECT_EQ(schedule.epochEnded(true, lr, since), PlateauStep::Continue); // an improvement resets the count
    EXPECT_EQ(since, 0);
    EXPECT_EQ(schedule.epochEnded(false, lr, since), PlateauStep::Continue);
    EXPECT_EQ(schedule.epochEnded(false, lr, since), PlateauStep::Reduced);
    EXPECT_DOUBLE_EQ(lr, 1e-3);
    EXPECT_EQ(since, 0);
    EXPECT_EQ(schedule.epochEnded(false, lr, since), PlateauStep::Continue);
    EXPECT_EQ(schedule.epochEnded(false, lr, since), PlateauStep::Stop); // 1e-4 would be below the floor
    EXPECT_DOUBLE_EQ(lr, 1e-3);
}

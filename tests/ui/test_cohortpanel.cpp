// Cohort panel: loading a cohort CSV, compression status, predictions, filter, sorting, double-click.
#include "ui/cohortpanel.h"

#include "testsupport.h"

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QTest>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace nic;
namespace fs = std::filesystem;

namespace {

QString qpath(const fs::path& p) {
    return QString::fromStdString(p.string());
}

fs::path write(const fs::path& p, const std::string& content) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p;
}

QString cell(const CohortPanel& panel, int row, int column) {
    return panel.proxy()->index(row, column).data().toString();
}

} // namespace

class CohortPanelTest : public ::testing::Test {
protected:
    void SetUp() override {
        csv = write(dir / "cohort.csv", "slide,label,score,fold\n"
                                        "slides/b_002.tif,1,2.5,1\n"
                                        "slides/a_001.tif,0,1,0\n"
                                        "slides/c_003.svs,1,3,2\n"
                                        "slides/d_004.tif,0,,0\n");
        write(dir / "grids/a_001.h5", "h5");
        write(dir / "grids/b_002.partial.h5", "partial");
    }
    test::TempDir dir;
    fs::path csv;
};

TEST_F(CohortPanelTest, ListsSlidesWithLabelsFoldsAndCompressionStatus) {
    CohortPanel panel;
    QSignalSpy loaded(&panel, &CohortPanel::cohortLoaded);
    QString error;
    ASSERT_TRUE(panel.openCohort(qpath(csv), &error)) << error.toStdString();
    EXPECT_EQ(loaded.count(), 1);
    ASSERT_EQ(panel.proxy()->rowCount(), 4);
    // Sorted by slide name.
    EXPECT_EQ(cell(panel, 0, CohortModel::SlideColumn), "a_001.tif");
    EXPECT_EQ(cell(panel, 0, CohortModel::LabelColumn), "0");
    EXPECT_EQ(cell(panel, 0, CohortModel::FoldColumn), "0");
    EXPECT_EQ(cell(panel, 1, CohortModel::ScoreColumn), "2.5");
    EXPECT_EQ(cell(panel, 3, CohortModel::ScoreColumn), "");
    EXPECT_EQ(cell(panel, 0, CohortModel::CompressedColumn), ""); // no grids folder yet
    EXPECT_EQ(panel.slideAt(0), qpath(dir / "slides/a_001.tif"));
    EXPECT_EQ(panel.statusLabel()->text(), "4 slides, 4 shown");

    panel.setGridsDir(qpath(dir / "grids"));
    EXPECT_EQ(cell(panel, 0, CohortModel::CompressedColumn), "yes");
    EXPECT_EQ(cell(panel, 1, CohortModel::CompressedColumn), "partial");
    EXPECT_EQ(cell(panel, 2, CohortModel::CompressedColumn), "no");
    EXPECT_EQ(panel.statusLabel()->text(), "4 slides, 4 shown, 1 compressed");

    write(dir / "grids/c_003.h5", "h5"); // compressed meanwhile
    panel.model()->refreshCompression();
    EXPECT_EQ(cell(panel, 2, CohortModel::CompressedColumn), "yes");
}

TEST_F(CohortPanelTest, PredictionsMatchByStemAndSortNumerically) {
    CohortPanel panel;
    ASSERT_TRUE(panel.openCohort(qpath(csv)));
    const fs::path preds = write(dir / "cv/predictions.csv", "slide,label,prediction,round\n"
                                                             "a_001,0,0.12,0\n"
                                                             "b_002.tif,1,0.93,1\n"
                                                             "c_003,1,0.4,2\n");
    QString error;
    int matched = 0;
    ASSERT_TRUE(panel.model()->loadPredictions(qpath(preds), &error, &matched)) << error.toStdString();
    EXPECT_EQ(matched, 3);
    EXPECT_EQ(cell(panel, 0, CohortModel::PredictionColumn), "0.12");
    EXPECT_EQ(cell(panel, 3, CohortModel::PredictionColumn), "");

    panel.view()->sortByColumn(CohortModel::PredictionColumn, Qt::DescendingOrder);
    EXPECT_EQ(cell(panel, 0, CohortModel::SlideColumn), "b_002.tif");
    EXPECT_EQ(cell(panel, 1, CohortModel::SlideColumn), "c_003.svs");
    EXPECT_EQ(cell(panel, 2, CohortModel::SlideColumn), "a_001.tif");
    EXPECT_EQ(cell(panel, 3, CohortModel::SlideColumn), "d_004.tif"); // no prediction sorts last
    panel.view()->sortByColumn(CohortModel::ScoreColumn, Qt::AscendingOrder);
    EXPECT_EQ(cell(panel, 0, CohortModel::SlideColumn), "d_004.tif");
    EXPECT_EQ(cell(panel, 1, CohortModel::SlideColumn), "a_001.tif"); // 1 < 2.5 < 3 as numbers
    EXPECT_EQ(cell(panel, 3, CohortModel::SlideColumn), "c_003.svs");

    const fs::path bad = write(dir / "bad.csv", "slide,score\na_001,1\n");
    EXPECT_FALSE(panel.loadPredictions(qpath(bad), &error));
    EXPECT_EQ(error, qpath(bad) + ": needs the columns 'slide' and 'prediction'");
    EXPECT_EQ(panel.statusLabel()->text(), error);
    const fs::path notNumber = write(dir / "nan.csv", "slide,prediction\na_001,high\n");
    EXPECT_FALSE(panel.loadPredictions(qpath(notNumber), &error));
    EXPECT_EQ(error, qpath(notNumber) + ":2: prediction 'high' is not a number");
}

TEST_F(CohortPanelTest, FilterBoxNarrowsTheRows) {
    CohortPanel panel;
    ASSERT_TRUE(panel.openCohort(qpath(csv)));
    panel.setGridsDir(qpath(dir / "grids"));
    panel.filterEdit()->setText("PARTIAL");
    ASSERT_EQ(panel.proxy()->rowCount(), 1);
    EXPECT_EQ(cell(panel, 0, CohortModel::SlideColumn), "b_002.tif");
    EXPECT_EQ(panel.statusLabel()->text(), "4 slides, 1 shown, 1 compressed");
    panel.setFilterText(".svs");
    EXPECT_EQ(panel.filterEdit()->text(), ".svs");
    ASSERT_EQ(panel.proxy()->rowCount(), 1);
    EXPECT_EQ(cell(panel, 0, CohortModel::SlideColumn), "c_003.svs");
    panel.filterEdit()->clear();
    EXPECT_EQ(panel.proxy()->rowCount(), 4);
}

TEST_F(CohortPanelTest, DoubleClickOpensTheSlide) {
    CohortPanel panel;
    panel.resize(700, 400);
    panel.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&panel));
    ASSERT_TRUE(panel.openCohort(qpath(csv)));
    QSignalSpy open(&panel, &CohortPanel::openSlide);
    const QRect rect = panel.view()->visualRect(panel.proxy()->index(2, CohortModel::LabelColumn));
    QTest::mouseClick(panel.view()->viewport(), Qt::LeftButton, {}, rect.center());
    QTest::mouseDClick(panel.view()->viewport(), Qt::LeftButton, {}, rect.center());
    ASSERT_EQ(open.count(), 1);
    EXPECT_EQ(open.at(0).at(0).toString(), qpath(dir / "slides/c_003.svs"));
}

TEST_F(CohortPanelTest, BrokenCohortShowsTheParserMessageAndKeepsTheTable) {
    CohortPanel panel;
    ASSERT_TRUE(panel.openCohort(qpath(csv)));
    const fs::path broken = write(dir / "broken.csv", "slide,label\na.tif,0\na.tif,1\n");
    QString error;
    EXPECT_FALSE(panel.openCohort(qpath(broken), &error));
    EXPECT_TRUE(error.startsWith(qpath(broken) + ":3: ")) << error.toStdString();
    EXPECT_TRUE(error.contains("listed twice")) << error.toStdString();
    EXPECT_EQ(panel.statusLabel()->text(), error);
    EXPECT_EQ(panel.proxy()->rowCount(), 4);
    EXPECT_EQ(panel.model()->cohortFile(), qpath(csv));

    EXPECT_FALSE(panel.openCohort(qpath(dir / "missing.csv"), &error));
    EXPECT_TRUE(error.contains("cannot read cohort file")) << error.toStdString();
}

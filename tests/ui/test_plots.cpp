// QCustomPlot figures: data, labels, and exports (PNG, PDF, SVG, CSV) that are valid files.
#include "ui/plots.h"

#include "core/slidelearning/metrics.h"
#include "demoscenes.h"
#include "testsupport.h"

#include <QFile>
#include <QImage>
#include <QTest>
#include <QXmlStreamReader>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

using namespace nic;
namespace fs = std::filesystem;

namespace {

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

QString qpath(const fs::path& p) {
    return QString::fromStdString(p.string());
}

/// Checks the three figure exports of `plot` and returns the PNG's image.
void expectValidFigureExports(PlotWidget& plot, const test::TempDir& dir, const std::string& stem) {
    QString error;
    const QString png = qpath(dir / (stem + ".png"));
    ASSERT_TRUE(plot.exportPng(png, &error, QSize(640, 400))) << error.toStdString();
    const QByteArray pngBytes = readAll(png);
    ASSERT_GE(pngBytes.size(), 1000);
    EXPECT_TRUE(pngBytes.startsWith(QByteArray("\x89PNG\r\n\x1a\n", 8)));
    const QImage image(png);
    EXPECT_EQ(image.size(), QSize(640, 400));
    // Not blank: the plot drew something besides the white background.
    int nonWhite = 0;
    for (int y = 0; y < image.height(); y += 4)
        for (int x = 0; x < image.width(); x += 4)
            nonWhite += image.pixelColor(x, y) != QColor(Qt::white);
    EXPECT_GT(nonWhite, 200);

    const QString pdf = qpath(dir / (stem + ".pdf"));
    ASSERT_TRUE(plot.exportPdf(pdf, &error, QSize(640, 400))) << error.toStdString();
    const QByteArray pdfBytes = readAll(pdf);
    EXPECT_TRUE(pdfBytes.startsWith("%PDF-"));
    EXPECT_TRUE(pdfBytes.trimmed().endsWith("%%EOF"));
    EXPECT_GT(pdfBytes.size(), 1000);
    // The page is the figure's size in points.
    EXPECT_TRUE(pdfBytes.contains("/MediaBox [0 0 640.000000 400.000000]")) << pdfBytes.left(600).toStdString();

    const QString svg = qpath(dir / (stem + ".svg"));
    ASSERT_TRUE(plot.exportSvg(svg, &error, QSize(640, 400))) << error.toStdString();
    QFile svgFile(svg);
    ASSERT_TRUE(svgFile.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&svgFile);
    QString root;
    int elements = 0;
    while (!xml.atEnd()) {
        if (xml.readNext() == QXmlStreamReader::StartElement) {
            if (root.isEmpty())
                root = xml.name().toString();
            ++elements;
        }
    }
    EXPECT_FALSE(xml.hasError()) << xml.errorString().toStdString();
    EXPECT_EQ(root, "svg");
    EXPECT_GT(elements, 20);

    if (const char* keep = std::getenv("NIC_KEEP_EXPORTS_DIR")) { // for looking at them
        for (const char* ext : {".png", ".pdf", ".svg"})
            fs::copy_file(dir / (stem + ext), fs::path(keep) / (stem + ext), fs::copy_options::overwrite_existing);
    }
    // Nothing but the three files (no temporaries left by QSaveFile).
    EXPECT_GE(test::entriesIn(dir.path()), 3);
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

} // namespace

TEST(TrainingCurvesPlot, AppendsEpochsLiveAndExports) {
    test::TempDir dir;
    TrainingCurvesPlot plot;
    plot.resize(900, 560);
    plot.show();
    ASSERT_TRUE(QTest::qWaitForWindowExposed(&plot));
    EXPECT_EQ(plot.csv(), "epoch,train_loss,validation_loss,validation_metric,learning_rate\n");
    test::appendDemoEpochs(plot); // the curves of docs/training-plot.png
    EXPECT_EQ(plot.epochCount(), 24);
    expectValidFigureExports(plot, dir, "curves");

    plot.clear();
    plot.appendEpoch(1, 0.69, 0.7, 0.61, 0.01);
    plot.appendEpoch(2, 0.5, kNaN, kNaN, 0.001);
    QString error;
    const QString csv = qpath(dir / "curves.csv");
    ASSERT_TRUE(plot.exportCsv(csv, &error)) << error.toStdString();
    EXPECT_EQ(QString::fromUtf8(readAll(csv)), "epoch,train_loss,validation_loss,validation_metric,learning_rate\n"
                                               "1,0.69,0.7,0.61,0.01\n"
                                               "2,0.5,,,0.001\n");
}

TEST(TrainingCurvesPlot, AppendEpochCanBePostedFromAnotherThread) {
    TrainingCurvesPlot plot;
    std::thread worker([&plot] {
        for (int e = 1; e <= 3; ++e)
            QMetaObject::invokeMethod(&plot, [&plot, e] { plot.appendEpoch(e, 1.0 / e, 1.2 / e, 0.5 + 0.1 * e, 1e-3); },
                                      Qt::QueuedConnection);
    });
    worker.join();
    ASSERT_TRUE(QTest::qWaitFor([&] { return plot.epochCount() == 3; }, 5000));
    EXPECT_EQ(plot.epochs()[2].epoch, 3);
}

TEST(RocPlot, LegendCarriesTheAucOfEachFold) {
    test::TempDir dir;
    RocPlot plot;
    plot.setTitle("ROC per fold");
    plot.addCurve("fold 1", {0.0, 0.0, 0.5, 0.5, 1.0}, {0.0, 0.5, 0.5, 1.0, 1.0}, 0.875);
    const RocCurve roc = rocCurve({0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2}, {1, 1, 0, 1, 0, 1, 0, 0});
    plot.addCurve("fold 2", roc);
    plot.addCurve("fold 3", {0.0, 1.0}, {0.0, 1.0}, kNaN);
    EXPECT_EQ(plot.curveCount(), 3);
    EXPECT_EQ(plot.legendLabels(),
              (QStringList{"fold 1 (AUC 0.875)", QString("fold 2 (AUC %1)").arg(roc.auc, 0, 'f', 3), "fold 3 (AUC n/a)"}));
    expectValidFigureExports(plot, dir, "roc");
    QString error;
    ASSERT_TRUE(plot.exportTo(qpath(dir / "roc.CSV"), &error)) << error.toStdString();
    const QStringList lines = QString::fromUtf8(readAll(qpath(dir / "roc.CSV"))).split('\n', Qt::SkipEmptyParts);
    ASSERT_EQ(lines.size(), 1 + 5 + static_cast<int>(roc.points.size()) + 2);
    EXPECT_EQ(lines[0], "curve,auc,fpr,tpr");
    EXPECT_EQ(lines[1], "fold 1,0.875,0,0");
    EXPECT_EQ(lines[4], "fold 1,0.875,0.5,1");
    EXPECT_EQ(lines.back(), "fold 3,,1,1");
}

TEST(ScatterPlot, TitleGivesSpearman) {
    test::TempDir dir;
    ScatterPlot plot;
    plot.setData({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}, {"a", "b", "c, d", "e", "f"});
    EXPECT_NEAR(plot.spearman(), 0.8, 1e-12);
    EXPECT_EQ(plot.title(), "Predicted vs true — Spearman ρ = 0.800 (n = 5)");
    expectValidFigureExports(plot, dir, "scatter");
    QString error;
    ASSERT_TRUE(plot.exportCsv(qpath(dir / "s.csv"), &error));
    EXPECT_EQ(QString::fromUtf8(readAll(qpath(dir / "s.csv"))),
              "slide,true,predicted\na,1,2\nb,2,1\n\"c, d\",3,4\ne,4,3\nf,5,5\n");

    plot.setData({1, 2, 3}, {4, 4, 4});
    EXPECT_TRUE(std::isnan(plot.spearman()));
    EXPECT_EQ(plot.title(), "Predicted vs true — Spearman ρ n/a (n = 3)");
    plot.setData({}, {});
    EXPECT_EQ(plot.pointCount(), 0);

    std::vector<double> truth;
    std::vector<double> predicted;
    for (int i = 0; i < 60; ++i) {
        truth.push_back(i % 4 + 1);
        predicted.push_back(i % 4 + 1 + 0.6 * std::sin(i * 1.3));
    }
    plot.setData(QVector<double>(truth.begin(), truth.end()), QVector<double>(predicted.begin(), predicted.end()));
    plot.setAxisLabels("true proliferation score", "predicted");
    EXPECT_EQ(plot.pointCount(), 60);
    EXPECT_EQ(plot.title(), QString("Predicted vs true — Spearman ρ = %1 (n = 60)").arg(plot.spearman(), 0, 'f', 3));
}

TEST(EncoderComparisonChart, PlotsGroupedBarsPerClass) {
    test::TempDir dir;
    EncoderComparisonChart chart;
    chart.setData({"tumor", "stroma", "fat, other"},
                  {{"VAE", {0.81, 0.77, 0.9}}, {"Contrastive", {0.88, 0.83, 0.93}}, {"BiGAN", {0.9, 0.86}}});
    EXPECT_EQ(chart.encoderCount(), 3);
    EXPECT_EQ(chart.classes(), (QStringList{"tumor", "stroma", "fat, other"}));
    expectValidFigureExports(chart, dir, "bars");
    EXPECT_EQ(chart.csv(), "encoder,tumor,stroma,\"fat, other\"\n"
                           "VAE,0.81,0.77,0.9\n"
                           "Contrastive,0.88,0.83,0.93\n"
                           "BiGAN,0.9,0.86,\n");
}

TEST(PlotExport, FailuresNameTheFileAndLeaveNothing) {
    test::TempDir dir;
    ScatterPlot plot;
    plot.setData({1, 2}, {1, 2});
    QString error;
    const QString missing = qpath(dir / "no-such-folder" / "plot.png");
    EXPECT_FALSE(plot.exportPng(missing, &error));
    EXPECT_TRUE(error.startsWith("cannot write " + missing + ": ")) << error.toStdString();
    EXPECT_FALSE(plot.exportPdf(qpath(dir / "no-such-folder" / "plot.pdf"), &error));
    EXPECT_FALSE(plot.exportSvg(qpath(dir / "no-such-folder" / "plot.svg"), &error));
    EXPECT_FALSE(plot.exportCsv(qpath(dir / "no-such-folder" / "plot.csv"), &error));
    EXPECT_FALSE(plot.exportTo(qpath(dir / "plot.jpg"), &error));
    EXPECT_EQ(error, "unsupported export format 'jpg' (use .png, .pdf, .svg or .csv)");
    EXPECT_TRUE(fs::is_empty(dir.path()));

    // An existing export is replaced whole.
    const QString csv = qpath(dir / "data.csv");
    ASSERT_TRUE(plot.exportCsv(csv, &error));
    plot.setData({1, 2, 3}, {3, 2, 1});
    ASSERT_TRUE(plot.exportCsv(csv, &error));
    EXPECT_EQ(QString::fromUtf8(readAll(csv)), "slide,true,predicted\n1,1,3\n2,2,2\n3,3,1\n");
}

TEST(PlotExport, CsvQuotingAndNumbers) {
    EXPECT_EQ(csvField("plain"), "plain");
    EXPECT_EQ(csvField("a,b"), "\"a,b\"");
    EXPECT_EQ(csvField("say \"hi\""), "\"say \"\"hi\"\"\"");
    EXPECT_EQ(csvNumber(0.1), "0.1");
    EXPECT_EQ(csvNumber(1e-5), "1e-05");
    EXPECT_EQ(csvNumber(kNaN), "");
    EXPECT_EQ(csvNumber(0.1 + 0.2).toDouble(), 0.1 + 0.2); // round-trips
}

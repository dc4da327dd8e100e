// `nic predict`: new compressed slides scored by the ensemble of slide models (the mean of the fold models'
// TTA predictions), the checks of models against grids with their messages, run folders, the CSV and the CLI.
#include "core/base/error.h"
#include "core/compression/latentgrid.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "core/slidelearning/runfolder.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

namespace nic {
namespace {

constexpr int kChannels = 4;

SlideModelMeta modelMeta(int channels, const std::string& encoderHash) {
    SlideModelMeta meta;
    meta.config.inputChannels = channels;
    meta.config.filters = 8;
    meta.config.dense = 8;
    meta.config.layers = 3;
    meta.config.unstridedLayers = 1;
    meta.cropSize = 16;
    meta.testCrops = 3;
    meta.encoderName = "test";
    meta.encoderHash = encoderHash;
    return meta;
}

/// An untrained model with weights from `seed` (models of different seeds predict differently).
void writeModel(const std::filesystem::path& path, std::uint64_t seed, int channels = kChannels,
                const std::string& encoderHash = "abc123") {
    torch::manual_seed(seed);
    const SlideModelMeta meta = modelMeta(channels, encoderHash);
    SlideCnn net(meta.config);
    net->eval();
    std::filesystem::create_directories(path.parent_path());
    saveSlideModel(net, meta, path);
}

LatentGridMeta gridMeta(int rows, int cols, int channels, const std::string& hash) {
    LatentGridMeta m;
    m.encoderName = "test";
    m.encoderHash = hash;
    m.codeSize = channels;
    m.patchSize = 64;
    m.stride = 64;
    m.targetMpp = 0.5;
    m.slideMpp = 0.5;
    m.slideMppSource = "slide";
    m.readSize = 64;
    m.level0Width = cols * 64;
    m.level0Height = rows * 64;
    m.rows = rows;
    m.cols = cols;
    m.slideFile = "slide.svs";
    m.augment = 1;
    m.dtype = LatentDType::Float32;
    return m;
}

/// A compressed slide of random codes (seeded), every cell tissue.
void writeGrid(const std::filesystem::path& path, std::uint64_t seed, int channels = kChannels,
               const std::string& hash = "abc123", int rows = 20, int cols = 24) {
    const LatentGridMeta m = gridMeta(rows, cols, channels, hash);
    auto w = LatentGridWriter::create(path, m, std::vector<float>(static_cast<std::size_t>(rows * cols), 1.0F), rows);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0F, 1.0F);
    std::vector<float> values(static_cast<std::size_t>(rows * cols * channels));
    for (auto& v : values)
        v = n(rng);
    const std::vector<std::uint8_t> flags(static_cast<std::size_t>(rows * cols), kCellEncoded);
    w->writeBand(rows, {values.data()}, flags.data());
    w->finishAndPublish(path);
}

/// [H, W, C] → [C, H, W].
std::vector<float> toChannelFirst(const SlideGrid& g) {
    std::vector<float> out(g.data.size());
    for (int y = 0; y < g.rows; ++y)
        for (int x = 0; x < g.cols; ++x)
            for (int c = 0; c < g.channels; ++c)
                out[static_cast<std::size_t>((c * g.rows + y) * g.cols + x)] =
                    g.data[static_cast<std::size_t>((y * g.cols + x) * g.channels + c)];
    return out;
}

TEST(SlideGridFiles, AreReadChannelsLastInEveryOrientationWithTheChannelFirstValues) {
    test::TempDir dir;
    const auto path = dir / "eight.h5";
    const int rows = 5, cols = 7, channels = 3;
    LatentGridMeta m = gridMeta(rows, cols, channels, "abc123");
    m.augment = 8;
    auto w = LatentGridWriter::create(path, m, std::vector<float>(static_cast<std::size_t>(rows * cols), 0.5F), rows);
    std::vector<std::vector<float>> values(8, std::vector<float>(static_cast<std::size_t>(rows * cols * channels)));
    for (std::size_t k = 0; k < values.size(); ++k)
        for (std::size_t i = 0; i < values[k].size(); ++i)
            values[k][i] = static_cast<float>(1000 * k + i);
    std::vector<const float*> pointers;
    for (const auto& v : values)
        pointers.push_back(v.data());
    const std::vector<std::uint8_t> flags(static_cast<std::size_t>(rows * cols), kCellEncoded);
    w->writeBand(rows, pointers, flags.data());
    w->finishAndPublish(path);

    const LatentGridReader reader(path);
    LatentGridFileSource source({path});
    for (int k = 0; k < 8; ++k) {
        const SlideGrid first = readSlideGrid(reader, k);
        const SlideGrid last = readSlideGrid(reader, k, true);
        EXPECT_FALSE(first.channelsLast);
        ASSERT_TRUE(last.channelsLast);
        EXPECT_EQ(std::make_pair(last.rows, last.cols), dihedralShape(k, rows, cols)) << k;
        EXPECT_EQ(std::make_tuple(last.rows, last.cols, last.channels), std::make_tuple(first.rows, first.cols, first.channels));
        EXPECT_EQ(toChannelFirst(last), first.data) << "variant " << k;
        int misplaced = 0; // each written code where variant k's transform puts its cell
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) {
                const auto [r2, c2] = dihedralMap(k, r, c, rows, cols);
                for (int ch = 0; ch < channels; ++ch)
                    misplaced += last.data[static_cast<std::size_t>((r2 * last.cols + c2) * channels + ch)] !=
                                 values[static_cast<std::size_t>(k)][static_cast<std::size_t>((r * cols + c) * channels + ch)];
            }
        EXPECT_EQ(misplaced, 0) << "variant " << k;
        EXPECT_EQ(last.tissue, first.tissue) << "variant " << k;
        // The file source keeps the files' order.
        const SlideGrid& cached = source.grid(0, k);
        EXPECT_TRUE(cached.channelsLast);
        EXPECT_EQ(cached.data, last.data) << "variant " << k;
    }
}

class Predict : public ::testing::Test {
protected:
    void SetUp() override {
        torch::set_num_threads(1);
        for (int i = 0; i < 3; ++i) {
            grids.push_back(dir / ("slide-" + std::to_string(i) + ".h5"));
            writeGrid(grids.back(), 100 + static_cast<std::uint64_t>(i));
        }
        writeModel(dir / "run" / "fold0" / "model.pt", 1);
        writeModel(dir / "run" / "fold1" / "model.pt", 2);
        writeRunFolds(dir / "run", {"a", "b", "c", "d"}, {0, 1, 0, 1});
        models = {dir / "run" / "fold0" / "model.pt", dir / "run" / "fold1" / "model.pt"};
    }
    test::TempDir dir;
    std::vector<std::filesystem::path> grids;
    std::vector<std::filesystem::path> models;
};

TEST_F(Predict, TheEnsembleIsTheMeanOfTheSingleModelsPredictions) {
    LatentGridFileSource source(grids);
    const std::vector<std::size_t> all{0, 1, 2};
    const auto a = predictSlides(models[0], source, all, "cpu");
    const auto b = predictSlides(models[1], source, all, "cpu");
    // predictSlides holds the tensor cache only while it predicts: no scope is left alive and nothing kept.
    EXPECT_EQ(tensorCacheStats().scopes, 0);
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U);
    const auto e = predictEnsembleFiles(models, grids, "cpu");
    ASSERT_EQ(e.slides, (std::vector<std::string>{"slide-0", "slide-1", "slide-2"}));
    ASSERT_EQ(e.models.size(), 2U);
    EXPECT_EQ(e.models[0], a);
    EXPECT_EQ(e.models[1], b);
    for (std::size_t j = 0; j < 3; ++j) {
        EXPECT_NE(a[j], b[j]) << j; // two different models, so the mean is not either one
        EXPECT_DOUBLE_EQ(e.mean[j], (a[j] + b[j]) / 2.0) << j;
        EXPECT_GT(e.mean[j], 0.0);
        EXPECT_LT(e.mean[j], 1.0); // probabilities
    }
    // The run folder's models, in round order.
    EXPECT_EQ(runModelFiles(dir / "run"), models);
    // The CSV: slide, the mean, one column per model.
    const std::string csv = ensembleCsv(e, {"fold0", "fold1"});
    EXPECT_EQ(csv.substr(0, csv.find('\n') + 1), "slide,prediction,fold0,fold1\n");
    EXPECT_NE(csv.find("\nslide-1," + formatRunNumber(e.mean[1]) + "," + formatRunNumber(a[1]) + "," +
                       formatRunNumber(b[1]) + "\n"),
              std::string::npos)
        << csv;
}

TEST_F(Predict, AGridOfAnotherEncoderOrCodeSizeIsRefusedNamingTheFile) {
    const auto other = dir / "other-encoder.h5";
    writeGrid(other, 7, kChannels, "fff999");
    EXPECT_EQ(test::errorOf<FormatError>([&] {
                  predictEnsembleFiles(models, {grids[0], other}, "cpu");
              }),
              other.string() + ": compressed with encoder 'test' (hash fff999, C = 4) but " + models[0].string() +
                  " was trained on 'test' (hash abc123, C = 4); compress the slide with the models' encoder");
    const auto narrow = dir / "narrow.h5";
    writeGrid(narrow, 8, 3);
    EXPECT_EQ(test::errorOf<FormatError>([&] { predictEnsembleFiles(models, {narrow}, "cpu"); }),
              narrow.string() + ": compressed with encoder 'test' (hash abc123, C = 3) but " + models[0].string() +
                  " was trained on 'test' (hash abc123, C = 4); compress the slide with the models' encoder");
    // Models that disagree with each other.
    const auto foreign = dir / "foreign.pt";
    writeModel(foreign, 3, kChannels, "fff999");
    EXPECT_EQ(test::errorOf<FormatError>([&] {
                  predictEnsembleFiles({models[0], foreign}, grids, "cpu");
              }),
              foreign.string() + ": a classify model for encoder 'test' (hash fff999, C = 4), but " +
                  models[0].string() +
                  " is a classify model for 'test' (hash abc123, C = 4); an ensemble needs models of one task and "
                  "encoder");
    // An unfinished run.
    std::filesystem::remove(models[1]);
    EXPECT_EQ(test::errorOf<IoError>([&] { runModelFiles(dir / "run"); }),
              models[1].string() + ": no model for round 1 of 2 (is the run finished?)");
}

TEST_F(Predict, CliWritesTheEnsembleCsvAtomicallyAndNamesAMismatchedGrid) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    const auto out = dir / "predictions.csv";
    std::string stdoutText, err;
    const std::string files =
        test::shellQuoted(grids[0]) + " " + test::shellQuoted(grids[1]) + " " + test::shellQuoted(grids[2]);
    ASSERT_EQ(test::runCommand(test::nicCommand("predict --run " + test::shellQuoted(dir / "run") + " " + files +
                                                " -o " + test::shellQuoted(out) + " --device cpu -q"),
                               &stdoutText, &err),
              0)
        << err;
    const auto expected = predictEnsembleFiles(models, grids, "cpu");
    EXPECT_EQ(test::readFile(out), ensembleCsv(expected, {"fold0", "fold1"}));
    EXPECT_EQ(stdoutText, "wrote " + out.string() + ": 3 slide(s), mean of 2 model(s)\n");

    // --model files: columns named after the files.
    ASSERT_EQ(test::runCommand(test::nicCommand("predict --model " + test::shellQuoted(models[0]) + " --model " +
                                                test::shellQuoted(dir / "run" / "fold1" / "model.pt") + " " + files +
                                                " -o " + test::shellQuoted(dir / "m.csv") + " --device cpu -q"),
                               &stdoutText, &err),
              0)
        << err;
    const std::string csv = test::readFile(dir / "m.csv");
    const std::string runCsv = ensembleCsv(expected, {"fold0", "fold1"});
    // Both files are called model.pt, so the columns carry the paths as given.
    EXPECT_EQ(csv.substr(0, csv.find('\n')), "slide,prediction," + models[0].string() + "," + models[1].string());
    EXPECT_EQ(csv.substr(csv.find('\n')), runCsv.substr(runCsv.find('\n')));

    // --cohort: the cohort's slides, found in --grids; a slide without a grid is named.
    std::ofstream(dir / "cohort.csv") << "slide,label\nslides/slide-2.svs,1\nslides/slide-0.svs,0\n";
    ASSERT_EQ(test::runCommand(test::nicCommand("predict --run " + test::shellQuoted(dir / "run") + " --cohort " +
                                                test::shellQuoted(dir / "cohort.csv") + " --grids " +
                                                test::shellQuoted(dir.path()) + " -o " +
                                                test::shellQuoted(dir / "c.csv") + " --device cpu -q"),
                               &stdoutText, &err),
              0)
        << err;
    const std::string cohortCsv = test::readFile(dir / "c.csv");
    EXPECT_EQ(cohortCsv.substr(0, cohortCsv.find('\n')), "slide,prediction,fold0,fold1");
    EXPECT_EQ(cohortCsv.substr(cohortCsv.find('\n') + 1, 8), "slide-2,"); // cohort order
    EXPECT_NE(cohortCsv.find("\nslide-0," + formatRunNumber(expected.mean[0]) + ","), std::string::npos) << cohortCsv;
    std::ofstream(dir / "cohort2.csv") << "slide,label\nslides/slide-9.svs,1\n";
    EXPECT_EQ(test::runCommand(test::nicCommand("predict --run " + test::shellQuoted(dir / "run") + " --cohort " +
                                                test::shellQuoted(dir / "cohort2.csv") + " --grids " +
                                                test::shellQuoted(dir.path()) + " -o " +
                                                test::shellQuoted(dir / "c2.csv") + " -q"),
                               &stdoutText, &err),
              1);
    EXPECT_EQ(err, "nic: error: " + (dir / "slide-9.h5").string() + ": no compressed slide for " +
                       (dir / "slides" / "slide-9.svs").string() + " (run nic compress first)\n");
    EXPECT_FALSE(std::filesystem::exists(dir / "c2.csv"));

    // A grid of another encoder: exit 1, one line naming it, and the earlier output untouched.
    const auto other = dir / "other.h5";
    writeGrid(other, 9, kChannels, "fff999");
    const std::string before = test::readFile(out);
    EXPECT_EQ(test::runCommand(test::nicCommand("predict --run " + test::shellQuoted(dir / "run") + " " +
                                                test::shellQuoted(other) + " -o " + test::shellQuoted(out) + " -q"),
                               &stdoutText, &err),
              1);
    EXPECT_EQ(err, "nic: error: " + other.string() + ": compressed with encoder 'test' (hash fff999, C = 4) but " +
                       models[0].string() +
                       " was trained on 'test' (hash abc123, C = 4); compress the slide with the models' encoder\n");
    EXPECT_EQ(test::readFile(out), before);
}

} // namespace
} // namespace nic

// Class-balanced banks, source-level evaluation splits, balanced accuracy, and the contrastive pairs of
// the paper (75 % adjacent negatives, 25 % from other slides) on banks built with --max-per-slide.
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/base/jobcontext.h"
#include "core/encoders/nn/evaluate.h"
#include "core/encoders/nn/pairsampler.h"
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/trainer.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>

namespace nic {
namespace {

/// A bank whose every patch is unique: pixel 0 holds the patch number (3 bytes), so a kept patch can
/// be traced to its original. `perClass[c]` patches of class c; source = number % sources; cell = (number, 2·number).
PatchBank numberedBank(const std::vector<int>& perClass, int sources, int p = 8) {
    PatchBank bank(p);
    std::vector<std::string> names;
    for (std::size_t c = 0; c < perClass.size(); ++c)
        names.push_back("class" + std::to_string(c));
    bank.setClassNames(names);
    for (int s = 0; s < sources; ++s)
        bank.sourceIndex("slide" + std::to_string(s));
    int number = 0;
    for (std::size_t c = 0; c < perClass.size(); ++c)
        for (int k = 0; k < perClass[c]; ++k, ++number) {
            Image im(p, p, 3);
            im.pixels[0] = static_cast<std::uint8_t>(number & 0xff);
            im.pixels[1] = static_cast<std::uint8_t>((number >> 8) & 0xff);
            im.pixels[2] = static_cast<std::uint8_t>(c);
            bank.add(im, static_cast<int>(c), number % sources, number, 2 * number);
        }
    return bank;
}

int numberOf(const PatchBank& bank, std::size_t i) { return bank.patch(i)[0] | (bank.patch(i)[1] << 8); }

std::vector<int> numbers(const PatchBank& bank) {
    std::vector<int> v;
    for (std::size_t i = 0; i < bank.size(); ++i)
        v.push_back(numberOf(bank, i));
    return v;
}

// ---------------------------------------------------------------------------------------- balance

TEST(BalancedBank, EqualCountsPerClassWithLabelsSourcesAndCellsKept) {
    const PatchBank bank = numberedBank({30, 7, 12}, 5);
    const PatchBank b = bank.balanced(3);
    EXPECT_EQ(b.labelCounts(), (std::vector<std::size_t>{7, 7, 7}));
    EXPECT_EQ(b.classNames(), bank.classNames());
    EXPECT_EQ(b.sourceNames(), bank.sourceNames());
    std::set<int> seen;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const int n = numberOf(b, i);
        EXPECT_TRUE(seen.insert(n).second) << "patch " << n << " kept twice";
        // The original patch n: class from its pixel, source n % 5, cell (n, 2n).
        EXPECT_EQ(b.label(i), b.patch(i)[2]);
        EXPECT_EQ(b.source(i), n % 5);
        EXPECT_EQ(b.col(i), n);
        EXPECT_EQ(b.row(i), 2 * n);
        if (i > 0) {
            EXPECT_LT(numberOf(b, i - 1), n) << "bank order kept";
        }
    }
    // The smallest class is kept whole.
    for (int n = 30; n < 37; ++n)
        EXPECT_TRUE(seen.count(n)) << n;
}

TEST(BalancedBank, DeterministicBySeed) {
    const PatchBank bank = numberedBank({40, 10}, 3);
    EXPECT_EQ(numbers(bank.balanced(5)), numbers(bank.balanced(5)));
    EXPECT_NE(numbers(bank.balanced(5)), numbers(bank.balanced(6)));
}

TEST(BalancedBank, EmptyClassAndUnlabelledPatchesAreNamedErrors) {
    const PatchBank bank = numberedBank({4, 0, 3}, 1);
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { (void)bank.balanced(1); }),
              "cannot balance the bank: class 'class1' has no patches");
    PatchBank unlabelled(8);
    unlabelled.add(Image(8, 8, 3), -1);
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { (void)unlabelled.balanced(1); }),
              "cannot balance the bank: it has no classes (unlabelled patches)");
}

TEST(BalancedBank, MakeBankBalanceFlagWritesEqualCountsAndSaysWhatItKept) {
    test::TempDir dir;
    numberedBank({9, 4}, 2).save(dir / "in.nicbank");
    // make-bank reads slides or images; build a folder from the bank to go through the CLI.
    std::filesystem::create_directories(dir / "img");
    std::string csv = "file,label\n";
    const PatchBank in = PatchBank::load(dir / "in.nicbank");
    for (std::size_t i = 0; i < in.size(); ++i) {
        const std::string name = "p" + std::to_string(i) + ".png";
        writePng(dir / "img" / name, in.image(i));
        csv += name + "," + in.classNames()[static_cast<std::size_t>(in.label(i))] + "\n";
    }
    {
        std::ofstream f(dir / "img/labels.csv");
        f << csv;
    }
    std::string out, err;
    ASSERT_EQ(test::runCommand(test::nicCommand("make-bank --images " + test::shellQuoted(dir / "img") + " --patch-size 8 --balance --seed 2 --quiet --out " +
                                                test::shellQuoted(dir / "b.nicbank")),
                               &out, &err),
              0)
        << err;
    EXPECT_NE(err.find("balanced: kept 4 of 9 class0, 4 of 4 class1"), std::string::npos) << err;
    EXPECT_NE(out.find("8 patches of 8x8; class0: 4, class1: 4"), std::string::npos) << out;
    EXPECT_EQ(PatchBank::load(dir / "b.nicbank").labelCounts(), (std::vector<std::size_t>{4, 4}));
}

// ---------------------------------------------------------------------------- splits and accuracy

TEST(SourceSplit, NoSourceOnBothSidesAndEveryClassHeldOut) {
    // 10 slides: slides 0-5 only class 0, slides 6-9 both classes.
    PatchBank bank(8);
    bank.setClassNames({"normal", "tumor"});
    for (int s = 0; s < 10; ++s) {
        const int src = bank.sourceIndex("slide" + std::to_string(s));
        for (int k = 0; k < 20; ++k)
            bank.add(Image(8, 8, 3), s >= 6 && k % 2 ? 1 : 0, src, k, 0);
    }
    for (std::uint64_t seed : {1, 2, 3, 4}) {
        const auto [rest, part] = bank.splitBySource(0.3, seed);
        std::set<int> a, b;
        for (std::size_t i = 0; i < rest.size(); ++i)
            a.insert(rest.source(i));
        for (std::size_t i = 0; i < part.size(); ++i)
            b.insert(part.source(i));
        for (int s : b)
            EXPECT_FALSE(a.count(s)) << "source " << s << " on both sides, seed " << seed;
        EXPECT_EQ(rest.size() + part.size(), bank.size());
        EXPECT_EQ(part.size(), 60U) << "3 of 10 slides, seed " << seed; // 30 % of 200 patches, whole slides of 20
        const auto counts = part.labelCounts();
        ASSERT_EQ(counts.size(), 2U);
        EXPECT_GT(counts[1], 0U) << "tumour held out, seed " << seed;
    }
    EXPECT_EQ(numbers(bank.splitBySource(0.3, 9).second).size(), bank.splitBySource(0.3, 9).second.size());
}

TEST(SourceSplit, AutoFallsBackToPatchesForOneSourceAndSourceModeSaysWhy) {
    const PatchBank one = test::makeTwoClassBank(20, 8, 1);
    bool bySource = true;
    const auto [rest, part] = evaluationSplit(one, 0.25, 1, EvalSplit::Auto, bySource);
    EXPECT_FALSE(bySource);
    EXPECT_EQ(part.size(), 6U); // round(0.25 · 10) = 3 of each class
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { evaluationSplit(one, 0.25, 1, EvalSplit::Source, bySource); }),
              "cannot split the bank by source: all its patches come from one source");
    const PatchBank many = numberedBank({10, 10}, 4);
    (void)evaluationSplit(many, 0.25, 1, EvalSplit::Auto, bySource);
    EXPECT_TRUE(bySource);
    EXPECT_FALSE(parseEvalSplit("slide").has_value());
}

TEST(BalancedAccuracy, KnownValuesOnHandMadeConfusions) {
    // Recalls 0.8 and 0.9.
    EXPECT_DOUBLE_EQ(balancedAccuracy({{8, 2}, {1, 9}}), 0.85);
    // 95 of class 0 all right, 5 of class 1 all wrong: accuracy 0.95, balanced 0.5.
    EXPECT_DOUBLE_EQ(balancedAccuracy({{95, 0}, {5, 0}}), 0.5);
    // A class absent from the test set does not count: (1 + 0.5) / 2.
    EXPECT_DOUBLE_EQ(balancedAccuracy({{5, 0, 0}, {0, 0, 0}, {1, 1, 2}}), 0.75);
    EXPECT_TRUE(std::isnan(balancedAccuracy({{0, 0}, {0, 0}})));
}

// ------------------------------------------------------------------------------- contrastive pairs

TEST(CellSampling, EveryKeptCellHasAKeptNeighbourAndTheCapHolds) {
    std::vector<std::pair<int, int>> cells;
    for (int r = 0; r < 12; ++r)
        for (int c = 0; c < 12; ++c)
            if ((c - 6) * (c - 6) + (r - 6) * (r - 6) < 30) // a round piece of tissue
                cells.emplace_back(c, r);
    cells.emplace_back(20, 20); // an isolated cell
    for (int cap : {2, 3, 24, 25}) {
        std::mt19937_64 rng(4);
        const auto kept = sampleCellsWithNeighbours(cells, cap, rng);
        ASSERT_EQ(kept.size(), static_cast<std::size_t>(cap));
        const std::set<std::pair<int, int>> set(kept.begin(), kept.end());
        EXPECT_EQ(set.size(), kept.size());
        for (auto [c, r] : kept) {
            EXPECT_NE(std::make_pair(c, r), std::make_pair(20, 20)) << "isolated cell kept";
            EXPECT_TRUE(set.count({c + 1, r}) || set.count({c - 1, r}) || set.count({c, r + 1}) || set.count({c, r - 1}))
                << "cap " << cap << ": (" << c << ", " << r << ") has no kept neighbour";
        }
        std::mt19937_64 again(4);
        EXPECT_EQ(sampleCellsWithNeighbours(cells, cap, again), kept) << "deterministic by seed";
    }
    std::mt19937_64 rng(1);
    EXPECT_EQ(sampleCellsWithNeighbours(cells, 0, rng).size(), cells.size());
}

/// Draws pairs the way training does (an epoch = the bank in a shuffled order, batches of 16).
PairStats drawEpochs(const PatchBank& bank, int epochs, std::uint64_t seed) {
    PairSampler sampler(bank);
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> order(bank.size()), a, b;
    std::vector<float> y;
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    for (int e = 0; e < epochs; ++e) {
        std::shuffle(order.begin(), order.end(), rng);
        for (std::size_t s = 0; s < order.size(); s += 16) {
            const std::vector<std::size_t> batch(order.begin() + static_cast<std::ptrdiff_t>(s),
                                                 order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + 16)));
            sampler.sample(batch, rng, a, b, y);
            for (std::size_t k = 0; k < a.size(); ++k) {
                if (y[k] == 1.0f) {
                    EXPECT_EQ(a[k], b[k]);
                } else {
                    EXPECT_NE(a[k], b[k]);
                }
            }
        }
    }
    return sampler.stats();
}

TEST(PairSampler, NegativesAreAdjacentOrFromOtherSlidesAndMissesAreCounted) {
    // Two slides with full 6 × 6 grids: every cell has a neighbour, and there is another slide.
    PatchBank bank(8);
    for (int s = 0; s < 2; ++s) {
        const int src = bank.sourceIndex("s" + std::to_string(s));
        for (int r = 0; r < 6; ++r)
            for (int c = 0; c < 6; ++c)
                bank.add(Image(8, 8, 3), -1, src, c, r);
    }
    PairSampler sampler(bank);
    EXPECT_EQ(sampler.neighbours(0), (std::vector<std::size_t>{1, 6})); // cell (0,0): (1,0) and (0,1)
    const PairStats st = drawEpochs(bank, 40, 5);
    EXPECT_EQ(st.fallbacks(), 0U);
    EXPECT_EQ(st.sameSource, 0U);
    EXPECT_NEAR(st.adjacentFraction(), 0.75, 0.03);
    EXPECT_NEAR(st.otherSourceFraction(), 0.25, 0.03);
    EXPECT_EQ(st.same, st.negatives());

    // One slide, scattered cells: no neighbour and no other slide; each miss is counted.
    PatchBank lone(8);
    const int src = lone.sourceIndex("only");
    for (int k = 0; k < 32; ++k)
        lone.add(Image(8, 8, 3), -1, src, 2 * k, 0);
    const PairStats miss = drawEpochs(lone, 10, 5);
    EXPECT_EQ(miss.adjacent, 0U);
    EXPECT_EQ(miss.otherSource, 0U);
    EXPECT_EQ(miss.sameSource, miss.negatives());
    EXPECT_GT(miss.noNeighbour, 0U);
    EXPECT_EQ(miss.noOtherSource, miss.negatives()); // every negative ended up a same-slide fallback
}

class CohortPairs : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir;
        std::string err;
        ASSERT_EQ(test::runCommand(test::nicCommand("synth --out " + test::shellQuoted(*dir_ / "synth") +
                                                    " --count 4 --size 2048 --seed 5 --lesion-size 300:500 --lesions 1 -q --threads 1"),
                                   nullptr, &err),
                  0)
            << err;
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    PatchBank makeBank(const std::string& extra, std::string* log = nullptr) {
        std::string out, err;
        const auto path = *dir_ / "bank.nicbank";
        EXPECT_EQ(test::runCommand(test::nicCommand("make-bank --cohort " + test::shellQuoted(*dir_ / "synth/cohort.csv") +
                                                    " --max-per-slide 24 --quiet --out " + test::shellQuoted(path) +
                                                    " " + extra),
                                   &out, &err),
                  0)
            << err;
        if (log)
            *log = err;
        return PatchBank::load(path);
    }
    static test::TempDir* dir_;
};
test::TempDir* CohortPairs::dir_ = nullptr;

TEST_F(CohortPairs, BankFromMaxPerSlideGivesThePapersNegatives) {
    std::string log;
    const PatchBank bank = makeBank("--unlabelled", &log);
    ASSERT_EQ(bank.size(), 4U * 24U) << log;
    EXPECT_NE(log.find("kept 96 of "), std::string::npos) << log;
    EXPECT_NE(log.find("(random anchors with their 4-neighbours); 0 without a kept 4-neighbour"), std::string::npos) << log;
    const PairStats st = drawEpochs(bank, 20, 11);
    EXPECT_GE(st.negatives(), 900U);
    EXPECT_GE(st.adjacentFraction(), 0.70) << st.noNeighbour << " adjacent draws without a neighbour";
    EXPECT_NEAR(st.otherSourceFraction(), 0.25, 0.04);
    EXPECT_EQ(st.noNeighbour, 0U);
    EXPECT_EQ(st.noOtherSource, 0U);
    // Every negative is adjacent or from another slide: none falls back to a random same-slide patch.
    EXPECT_EQ(st.adjacent + st.otherSource, st.negatives());
}

TEST_F(CohortPairs, PlainRandomSubsetLosesAdjacentNegativesAndSaysSo) {
    // The old behaviour (--no-neighbours) is what the paper's 75 % collapses to: the sampler counts the misses.
    const PatchBank bank = makeBank("--unlabelled --no-neighbours");
    ASSERT_EQ(bank.size(), 4U * 24U);
    const PairStats st = drawEpochs(bank, 20, 11);
    EXPECT_LT(st.adjacentFraction(), 0.70);
    EXPECT_GT(st.noNeighbour, 0U);
    EXPECT_EQ(st.adjacent + st.noNeighbour + st.otherSource, st.negatives() + st.noNeighbour);
}

TEST_F(CohortPairs, ContrastiveTrainingLogsTheRealisedAdjacentShare) {
    const PatchBank bank = makeBank("--unlabelled --patch-size 32 --stride 32 --target-mpp 2");
    test::TempDir out;
    TrainOptions o;
    o.kind = EncoderKind::Contrastive;
    o.codeSize = 8;
    o.out = out / "c.nicenc";
    o.batchSize = 16;
    o.stepsPerEpoch = 6;
    o.epochs = 1;
    o.validationPairs = 32;
    o.compute.threads = 1;
    o.compute.device = "cpu";
    std::vector<std::string> lines;
    JobContext ctx({}, [&](const std::string& l) { lines.push_back(l); });
    const TrainResult r = trainEncoder(o, bank, bank, ctx);
    ASSERT_EQ(r.history.size(), 1U);
    const EpochRecord& rec = r.history[0];
    ASSERT_TRUE(std::isfinite(rec.adjacentNegatives));
    EXPECT_GE(rec.adjacentNegatives, 0.5); // 48 negatives: 0.75 expected
    EXPECT_NEAR(rec.adjacentNegatives + rec.otherSourceNegatives, 1.0, 1e-9);
    EXPECT_EQ(rec.pairFallbacks, 0);
    // The epoch's line (the last line says what ended training).
    const auto epochLine = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("epoch 1:", 0) == 0; });
    ASSERT_NE(epochLine, lines.end());
    EXPECT_NE(epochLine->find(" adjacent / "), std::string::npos) << *epochLine;
    EXPECT_NE(epochLine->find("(0 fallbacks, 0 without a neighbour)"), std::string::npos) << *epochLine;
    EXPECT_EQ(lines.back().rfind("training ended: epoch-cap", 0), 0U) << lines.back();

    // Without a validation bank, whole slides are held out (a random 10 % would leave few neighbour pairs).
    lines.clear();
    o.out = out / "c2.nicenc";
    const TrainResult r2 = trainEncoder(o, bank, PatchBank(), ctx);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.front(), "validation: whole slides held out (1 of 4, 24 patches), so that validation pairs keep their neighbours");
    EXPECT_EQ(r2.history.at(0).pairFallbacks, 0);
}

TEST_F(CohortPairs, EvalEncoderSplitsBySlideAndReportsBalancedAccuracy) {
    const PatchBank bank = makeBank("--min-tissue 0.3");
    ASSERT_EQ(bank.knownSourceCount(), 4U);
    const std::string bankArg = " --bank " + test::shellQuoted(*dir_ / "bank.nicbank");
    const auto json = *dir_ / "eval.json";
    std::string out, err;
    ASSERT_EQ(test::runCommand(test::nicCommand("eval-encoder --encoder mean-rgb:128 --epochs 3 --threads 1 --quiet" + bankArg +
                                                " --json " + test::shellQuoted(json)),
                               &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("test split: by source ("), std::string::npos) << out;
    EXPECT_NE(out.find("; none on both sides); validation split: by source"), std::string::npos) << out;
    const auto j = nlohmann::json::parse(test::readFile(json));
    std::vector<std::vector<std::int64_t>> confusion = j.at("confusion");
    EXPECT_DOUBLE_EQ(j.at("balanced_accuracy").get<double>(), balancedAccuracy(confusion));
    char line[64];
    std::snprintf(line, sizeof line, "test balanced accuracy: %.4f\n", j.at("balanced_accuracy").get<double>());
    EXPECT_NE(out.find(line), std::string::npos) << out;
    EXPECT_EQ(j.at("validation_split"), "source");
    EXPECT_EQ(j.at("encoder").at("name"), "mean-rgb");

    // The patch-level split is still there when asked for; a wrong mode is a usage error naming it.
    ASSERT_EQ(test::runCommand(test::nicCommand("eval-encoder --encoder mean-rgb:128 --epochs 2 --threads 1 --quiet --split patch" +
                                                bankArg),
                               &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("test split: by patch (a source can be on both sides); validation split: by patch"), std::string::npos)
        << out;
    EXPECT_NE(test::runCommand(test::nicCommand("eval-encoder --encoder mean-rgb:128 --split slide" + bankArg), &out, &err), 0);
    EXPECT_NE(err.find("--split must be auto, source or patch, not 'slide'"), std::string::npos) << err;
}

} // namespace
} // namespace nic

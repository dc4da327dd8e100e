// Training budgets and stop reasons: the encoder trainer's total-steps cap, epoch cap and learning-rate
// floor (which one ends a run, in the result, the log, the checkpoint and --result JSON), `train-encoder
// --budget` presets against explicit options, and the slide CNN's per-round stop reasons.
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/encoders/nn/encoders.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "core/encoders/nn/trainer.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <random>

namespace nic {
namespace {

class Budget : public ::testing::Test {
protected:
    TrainOptions options(EncoderKind kind, const std::string& name) const {
        TrainOptions o;
        o.kind = kind;
        o.codeSize = 8;
        o.out = dir / (name + ".nicenc");
        o.batchSize = 16;
        o.stepsPerEpoch = 4;
        o.epochs = 0;
        o.learningRate = 1e-3;
        o.seed = 7;
        o.compute.threads = 1;
        o.compute.device = "cpu";
        return o;
    }
    JobContext logTo(std::vector<std::string>& lines) {
        return JobContext([](const JobContext::Progress&) {}, [&lines](const std::string& l) { lines.push_back(l); });
    }
    static bool hasLine(const std::vector<std::string>& lines, const std::string& text) {
        for (const auto& l : lines)
            if (l.find(text) != std::string::npos)
                return true;
        return false;
    }
    test::TempDir dir;
    PatchBank bank = test::makeTwoClassBank(64, 32, 3);
    PatchBank val = test::makeTwoClassBank(16, 32, 4);
};

TEST_F(Budget, StepCapEndsTrainingOnTheExactStepAndSaysSo) {
    auto o = options(EncoderKind::SupervisedTumor, "steps");
    o.maxSteps = 10; // 4 + 4 + 2
    std::vector<std::string> log;
    auto ctx = logTo(log);
    const TrainResult r = trainEncoder(o, bank, val, ctx);
    ASSERT_EQ(r.history.size(), 3U);
    EXPECT_EQ(r.history[0].steps, 4);
    EXPECT_EQ(r.history[1].steps, 4);
    EXPECT_EQ(r.history[2].steps, 2); // the last epoch is cut short
    EXPECT_EQ(r.stepsRun, 10);
    EXPECT_EQ(r.epochsRun, 3);
    EXPECT_EQ(r.stopReason, StopReason::StepCap);
    EXPECT_FALSE(r.stoppedByLearningRate);
    EXPECT_TRUE(hasLine(log, "training ended: step-cap (total-steps budget used up) after 3 epochs, 10 steps"))
        << log.back();

    // The same epochs as a run capped by epochs (per-epoch seeding): the step cap only truncates.
    auto e = options(EncoderKind::SupervisedTumor, "epochs");
    e.epochs = 2;
    e.maxSteps = 0;
    const TrainResult re = trainEncoder(e, bank, val);
    EXPECT_EQ(re.stopReason, StopReason::EpochCap);
    EXPECT_EQ(re.stepsRun, 8);
    ASSERT_EQ(re.history.size(), 2U);
    EXPECT_EQ(re.history[1].trainLoss, r.history[1].trainLoss);

    const auto j = nlohmann::json::parse(trainResultJson(r));
    EXPECT_EQ(j.at("stop_reason"), "step-cap");
    EXPECT_EQ(j.at("steps"), 10);
    EXPECT_EQ(j.at("epochs"), 3);
    EXPECT_EQ(j.at("history").size(), 3U);
    EXPECT_EQ(j.at("history")[2].at("steps"), 2);
}

TEST_F(Budget, WhenBothCapsAreReachedTogetherTheStepCapIsReported) {
    auto o = options(EncoderKind::SupervisedTumor, "both");
    o.epochs = 2;
    o.maxSteps = 8;
    EXPECT_EQ(trainEncoder(o, bank, val).stopReason, StopReason::StepCap);
    o.maxSteps = 9; // the epoch cap comes first
    o.out = dir / "both2.nicenc";
    const auto r = trainEncoder(o, bank, val);
    EXPECT_EQ(r.stopReason, StopReason::EpochCap);
    EXPECT_EQ(r.stepsRun, 8);
}

TEST_F(Budget, ThePlateauScheduleEndsTrainingAtTheFloorWithoutAnyCap) {
    // Start at the floor with patience 1: the first epoch that does not improve validation accuracy ends the
    // run. No epoch or step cap: only the floor can end it.
    auto o = options(EncoderKind::SupervisedTumor, "floor");
    o.learningRate = 1e-3;
    o.minLearningRate = 1e-3;
    o.patience = 1;
    std::vector<std::string> log;
    auto ctx = logTo(log);
    const TrainResult r = trainEncoder(o, bank, val, ctx);
    EXPECT_EQ(r.stopReason, StopReason::LearningRateFloor);
    EXPECT_TRUE(r.stoppedByLearningRate);
    ASSERT_GE(r.history.size(), 2U);
    EXPECT_FALSE(r.history.back().improved);
    EXPECT_TRUE(hasLine(log, "training ended: lr-floor (validation plateau at the learning-rate floor)"));

    // Resuming a run that ended at the floor trains nothing more, even with a cap far away.
    o.resume = true;
    o.maxSteps = 1000;
    const TrainResult again = trainEncoder(o, bank, val);
    EXPECT_EQ(again.history.size(), r.history.size());
    EXPECT_EQ(again.stopReason, StopReason::LearningRateFloor);
}

TEST_F(Budget, AResumedRunMayRaiseTheStepCap) {
    auto a = options(EncoderKind::SupervisedTumor, "a");
    a.maxSteps = 8;
    const auto ra = trainEncoder(a, bank, val);

    auto b = options(EncoderKind::SupervisedTumor, "b");
    b.maxSteps = 4;
    EXPECT_EQ(trainEncoder(b, bank, val).stepsRun, 4);
    b.maxSteps = 8;
    b.resume = true;
    const auto rb = trainEncoder(b, bank, val);
    EXPECT_EQ(rb.stepsRun, 8);
    EXPECT_EQ(rb.stopReason, StopReason::StepCap);
    EXPECT_EQ(ra.encoder.hash, rb.encoder.hash);
}

TEST_F(Budget, BiganNeedsACapAndCancellationIsLogged) {
    auto o = options(EncoderKind::Bigan, "bigan");
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { trainEncoder(o, bank, val); }),
              "train-encoder: bigan has no validation plateau to stop at; give a step or epoch budget");
    o.maxSteps = 3;
    o.stepsPerEpoch = 2;
    const auto r = trainEncoder(o, bank, val);
    EXPECT_EQ(r.stepsRun, 3);
    EXPECT_EQ(r.stopReason, StopReason::StepCap);

    auto c = options(EncoderKind::SupervisedTumor, "cancel");
    c.maxSteps = 20;
    std::vector<std::string> log;
    JobContext* self = nullptr;
    int reports = 0;
    JobContext ctx(
        [&](const JobContext::Progress&) {
            if (++reports == 6) // second batch of epoch 2
                self->cancel();
        },
        [&log](const std::string& l) { log.push_back(l); });
    self = &ctx;
    ctx.setMinInterval(std::chrono::milliseconds(0));
    EXPECT_THROW(trainEncoder(c, bank, val, ctx), Cancelled);
    ASSERT_FALSE(log.empty());
    EXPECT_EQ(log.back(), "training ended: cancelled during epoch 2; " + (dir / "cancel.nicenc.ckpt").string() +
                              " holds epoch 1 (4 steps)");
}

// --- the CLI's presets ------------------------------------------------------------------------------------

TEST_F(Budget, CliPresetsAndExplicitOptions) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    bank.save(dir / "bank.nicbank");
    const std::string common = "train-encoder --kind supervised-tumor --bank " +
                               test::shellQuoted(dir / "bank.nicbank") +
                               " --code-size 8 --batch-size 8 --patience 50 --threads 1 --device cpu --quiet --seed 3";
    // (patience 50: no plateau can end these short runs before their caps)
    std::string out, err;
    // demo: 90 steps; an explicit --steps-per-epoch 4 overrides the preset's 30 → 22 full epochs + 2 steps.
    ASSERT_EQ(test::runCommand(test::nicCommand(common + " --budget demo --steps-per-epoch 4 --out " +
                                                test::shellQuoted(dir / "demo.nicenc") + " --result " +
                                                test::shellQuoted(dir / "demo.json")),
                               &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("epochs: 23\nsteps: 90\nstopped: step-cap\n"), std::string::npos) << out;
    const auto j = nlohmann::json::parse(test::readFile(dir / "demo.json"));
    EXPECT_EQ(j.at("stop_reason"), "step-cap");
    EXPECT_EQ(j.at("steps"), 90);
    EXPECT_EQ(j.at("history").back().at("steps"), 2);
    // An explicit --epochs caps the preset's budget too.
    ASSERT_EQ(test::runCommand(
                  test::nicCommand(common + " --budget demo --epochs 1 --out " + test::shellQuoted(dir / "one.nicenc")),
                  &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("epochs: 1\nsteps: 30\nstopped: epoch-cap\n"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(test::nicCommand(common + " --budget huge --out " + test::shellQuoted(dir / "x.nicenc")),
                               &out, &err),
              2);
    EXPECT_NE(err.find("nic: usage error: unknown budget 'huge' (default, paper or demo)"), std::string::npos) << err;
}

// --- the slide CNN, per round -----------------------------------------------------------------------------

TEST(SlideBudget, EveryRoundRecordsWhatEndedIt) {
    // 8 small synthetic grids (positives carry a brighter block in channel 1).
    std::vector<std::string> ids;
    std::vector<std::vector<SlideGrid>> grids;
    std::vector<double> labels;
    std::mt19937_64 rng(11);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    for (int i = 0; i < 8; ++i) {
        SlideGrid g;
        g.channels = 3;
        g.rows = g.cols = 12;
        g.tissue.assign(144, 1.0f);
        for (int k = 0; k < 3 * 144; ++k)
            g.data.push_back(noise(rng) + ((i % 2 == 1 && k >= 144 && k < 144 + 30) ? 2.0f : 0.0f));
        ids.push_back("s" + std::to_string(i));
        grids.push_back({g});
        labels.push_back(i % 2);
    }
    InMemoryGridSource source(ids, grids);
    SlideTrainOptions o;
    o.network.filters = 8;
    o.network.dense = 8;
    o.network.layers = 3;
    o.network.unstridedLayers = 1;
    o.stepsPerEpoch = 1;
    o.batchSize = 4;
    o.bootstrapResamples = 20;
    o.device = "cpu";
    o.threads = 1;
    o.seed = 2;
    o.epochs = 6;
    o.learningRate = 1e-3;
    o.minLearningRate = 1e-3; // at the floor from the start: the first plateau ends the round
    o.patience = 1;
    test::TempDir dir;
    std::vector<std::string> log;
    JobContext ctx([](const JobContext::Progress&) {}, [&log](const std::string& l) { log.push_back(l); });
    const auto r = crossValidate(source, labels, {0, 0, 1, 1, 2, 2, 3, 3}, o, dir.path(), ctx);
    ASSERT_EQ(r.roundStopReasons.size(), 4U);
    const auto metrics = nlohmann::json::parse(test::readFile(dir / "metrics.json"));
    int floors = 0;
    for (int round = 0; round < 4; ++round) {
        const auto rec = nlohmann::json::parse(test::readFile(dir / ("fold" + std::to_string(round)) / "round.json"));
        const std::string reason = rec.at("stop_reason");
        EXPECT_EQ(reason, r.roundStopReasons[static_cast<std::size_t>(round)]);
        EXPECT_EQ(metrics.at("round_stop_reasons")[static_cast<std::size_t>(round)], reason);
        const int epochs = rec.at("epochs_run");
        if (reason == "lr-floor") {
            ++floors;
            EXPECT_LT(epochs, 6) << round;
        } else {
            EXPECT_EQ(reason, "epoch-cap") << round;
            EXPECT_EQ(epochs, 6) << round;
        }
        bool logged = false;
        for (const auto& l : log)
            logged = logged || l == "round " + std::to_string(round + 1) + "/4: training ended: " + reason + " after " +
                                        std::to_string(epochs) + " epochs";
        EXPECT_TRUE(logged) << round;
    }
    EXPECT_GE(floors, 1); // with patience 1 at the floor, at least one round stops before the cap

    // A cancelled round says so in the log (and where a resumed run continues).
    test::TempDir cancelled;
    std::vector<std::string> cancelLog;
    JobContext* self = nullptr;
    int reports = 0;
    JobContext cancelCtx(
        [&](const JobContext::Progress&) {
            if (++reports == 2) // the one step of round 1's second epoch
                self->cancel();
        },
        [&cancelLog](const std::string& l) { cancelLog.push_back(l); });
    self = &cancelCtx;
    cancelCtx.setMinInterval(std::chrono::milliseconds(0));
    EXPECT_THROW(crossValidate(source, labels, {0, 0, 1, 1, 2, 2, 3, 3}, o, cancelled.path(), cancelCtx), Cancelled);
    ASSERT_FALSE(cancelLog.empty());
    EXPECT_EQ(cancelLog.back(), "round 1/4: training ended: cancelled during epoch 3; resume continues after epoch 2");

    // A resumed run reuses the finished rounds with their reasons: the same metrics.json.
    o.resume = true;
    const auto again = crossValidate(source, labels, {0, 0, 1, 1, 2, 2, 3, 3}, o, dir.path());
    EXPECT_EQ(again.roundStopReasons, r.roundStopReasons);
    EXPECT_EQ(again.metricsJson, r.metricsJson);
}

} // namespace
} // namespace nic

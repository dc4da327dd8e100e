// Checkpoints and resume of the slide-level cross-validation (crossValidate, `nic train --resume`): a run
// cancelled or SIGKILLed at any moment leaves only complete files under final names and continues to the
// same models, predictions and metrics as an uninterrupted run; resume state made with other parameters,
// or damaged, is refused with a message naming the file.
#include "core/base/error.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace nic;

namespace {

int countLines(const std::string& text) {
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// curves.csv without its last column (seconds, the one timing field).
std::string curvesWithoutSeconds(const std::filesystem::path& p) {
    std::istringstream in(nic::test::readFile(p));
    std::string out;
    for (std::string line; std::getline(in, line);)
        out += line.substr(0, line.rfind(',')) + "\n";
    return out;
}

// 8 slides of 12 × 12 cells with 3 channels: a disc of tissue, positives with a bright 3 × 3 lesion;
// variant 1 is the transpose.
struct Cohort {
    std::vector<std::string> ids;
    std::vector<std::vector<SlideGrid>> grids;
    std::vector<double> labels;
};

Cohort makeCohort() {
    constexpr int side = 12;
    constexpr int channels = 3;
    Cohort s;
    std::mt19937_64 rng(7);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    for (int i = 0; i < 8; ++i) {
        const bool positive = i % 2 == 1;
        SlideGrid g;
        g.channels = channels;
        g.rows = g.cols = side;
        g.data.assign(static_cast<std::size_t>(channels * side * side), 0.0f);
        g.tissue.assign(static_cast<std::size_t>(side * side), 0.0f);
        const int l = 3 + static_cast<int>(rng() % 6);
        for (int y = 0; y < side; ++y)
            for (int x = 0; x < side; ++x) {
                if (std::hypot(x - side / 2.0 + 0.5, y - side / 2.0 + 0.5) > side / 2.0 - 1)
                    continue;
                const auto cell = static_cast<std::size_t>(y * side + x);
                g.tissue[cell] = 1.0f;
                for (int c = 0; c < channels; ++c)
                    g.data[static_cast<std::size_t>(c * side * side) + cell] =
                        noise(rng) + (positive && c == 1 && std::abs(x - l) <= 1 && std::abs(y - l - 1) <= 1 ? 2.5f : 0.0f);
            }
        SlideGrid t = g;
        for (int c = 0; c < channels; ++c)
            for (int y = 0; y < side; ++y)
                for (int x = 0; x < side; ++x)
                    t.data[static_cast<std::size_t>((c * side + x) * side + y)] =
                        g.data[static_cast<std::size_t>((c * side + y) * side + x)];
        s.ids.push_back("s" + std::to_string(i));
        s.grids.push_back({g, t});
        s.labels.push_back(positive ? 1.0 : 0.0);
    }
    return s;
}

SlideTrainOptions smallOptions() {
    SlideTrainOptions o;
    o.network.filters = 8;
    o.network.dense = 8;
    o.network.layers = 3;
    o.network.unstridedLayers = 1;
    o.epochs = 4;
    o.stepsPerEpoch = 3;
    o.batchSize = 4;
    o.patience = 1; // the learning rate drops and rounds stop early: the schedule state is resumed too
    o.minLearningRate = 1e-3;
    o.seed = 9;
    o.bootstrapResamples = 50;
    o.device = "cpu";
    o.threads = 1;
    return o;
}

class TrainResume : public ::testing::Test {
protected:
    // Runs crossValidate and cancels it at the `at`-th progress report whose step starts with `step`.
    void runCancelled(const std::filesystem::path& out, SlideTrainOptions o, const std::string& step, int at) {
        int seen = 0;
        JobContext* self = nullptr;
        JobContext ctx(
            [&](const JobContext::Progress& p) {
                if (p.step.rfind(step, 0) == 0 && ++seen == at)
                    self->cancel();
            },
            [](const std::string&) {});
        self = &ctx;
        ctx.setMinInterval(std::chrono::milliseconds(0));
        EXPECT_THROW(crossValidate(source, cohort.labels, {}, o, out, ctx), Cancelled);
        EXPECT_EQ(seen, at);
    }

    Cohort cohort = makeCohort();
    InMemoryGridSource source{cohort.ids, cohort.grids};
    test::TempDir dir;
};

TEST_F(TrainResume, CancelledRunResumesToTheUninterruptedResult) {
    const SlideTrainOptions o = smallOptions();
    const auto full = dir / "full";
    const auto t0 = std::chrono::steady_clock::now();
    const auto ra = crossValidate(source, cohort.labels, {}, o, full);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ info ] uninterrupted run: %zu epochs in %.2f s\n", ra.curves.size(), seconds);

    // Cancelled after the second step of round 2's second epoch: round 1 finished, round 2 checkpointed.
    const auto cut = dir / "cut";
    runCancelled(cut, o, "round 2/4, epoch 2/", 2);
    EXPECT_TRUE(std::filesystem::exists(cut / "fold0/model.pt"));
    EXPECT_TRUE(std::filesystem::exists(cut / "fold0/round.json"));
    EXPECT_FALSE(std::filesystem::exists(cut / "fold0/checkpoint.pt")); // gone once the round is published
    EXPECT_TRUE(std::filesystem::exists(cut / "fold1/checkpoint.pt"));
    EXPECT_FALSE(std::filesystem::exists(cut / "fold1/model.pt"));
    EXPECT_FALSE(std::filesystem::exists(cut / "predictions.csv"));
    EXPECT_FALSE(std::filesystem::exists(cut / "metrics.json"));
    for (const auto& e : std::filesystem::recursive_directory_iterator(cut))
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();

    SlideTrainOptions resumed = o;
    resumed.resume = true;
    std::size_t epochsReported = 0;
    resumed.onEpoch = [&](const SlideEpochRecord&) { ++epochsReported; };
    std::vector<std::string> logs;
    JobContext ctx([](const JobContext::Progress&) {}, [&](const std::string& line) { logs.push_back(line); });
    const auto rb = crossValidate(source, cohort.labels, {}, resumed, cut, ctx);
    const auto logged = [&](const std::string& text) {
        return std::any_of(logs.begin(), logs.end(), [&](const std::string& l) { return l == text; });
    };
    EXPECT_TRUE(logged("round 1/4: finished by an earlier run; reusing " + (cut / "fold0/model.pt").string()));
    EXPECT_TRUE(logged("round 2/4: resuming from " + (cut / "fold1/checkpoint.pt").string() + " after epoch 1"));
    EXPECT_EQ(epochsReported, ra.curves.size()); // the live curves are replayed whole

    EXPECT_EQ(ra.metricsJson, rb.metricsJson);
    ASSERT_EQ(ra.predictions.size(), rb.predictions.size());
    for (std::size_t i = 0; i < ra.predictions.size(); ++i)
        EXPECT_EQ(ra.predictions[i].prediction, rb.predictions[i].prediction) << i;
    ASSERT_EQ(ra.curves.size(), rb.curves.size());
    for (std::size_t i = 0; i < ra.curves.size(); ++i) {
        EXPECT_EQ(ra.curves[i].trainLoss, rb.curves[i].trainLoss) << i;
        EXPECT_EQ(ra.curves[i].learningRate, rb.curves[i].learningRate) << i;
        EXPECT_EQ(ra.curves[i].best, rb.curves[i].best) << i;
    }
    for (const char* f : {"predictions.csv", "metrics.json", "folds.csv", "fold0/model.pt", "fold1/model.pt",
                          "fold2/model.pt", "fold3/model.pt"})
        EXPECT_EQ(nic::test::readFile(full / f), nic::test::readFile(cut / f)) << f;
    EXPECT_EQ(curvesWithoutSeconds(full / "curves.csv"), curvesWithoutSeconds(cut / "curves.csv"));
    for (int r = 0; r < 4; ++r)
        EXPECT_FALSE(std::filesystem::exists(cut / ("fold" + std::to_string(r)) / "checkpoint.pt")) << r;

    // Resuming a finished run trains nothing and republishes the same results.
    int steps = 0;
    JobContext counting([&](const JobContext::Progress& p) { steps += p.step.find("epoch") != std::string::npos; },
                        [](const std::string&) {});
    counting.setMinInterval(std::chrono::milliseconds(0));
    resumed.onEpoch = nullptr;
    EXPECT_EQ(crossValidate(source, cohort.labels, {}, resumed, cut, counting).metricsJson, ra.metricsJson);
    EXPECT_EQ(steps, 0);
}

TEST_F(TrainResume, RefusesResumeStateOfOtherParametersAndDamagedFiles) {
    SlideTrainOptions o = smallOptions();
    o.resume = true;
    // Round 1 checkpointed after its first epoch.
    runCancelled(dir.path(), o, "round 1/4, epoch 2/", 1);
    const auto ckpt = dir / "fold0/checkpoint.pt";
    ASSERT_TRUE(std::filesystem::exists(ckpt));
    const std::string hint = " (resume with the same parameters, or start afresh without resuming)";

    SlideTrainOptions other = o;
    other.patience = 2;
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { crossValidate(source, cohort.labels, {}, other, dir.path()); }),
              ckpt.string() + ": cannot resume with different parameters: patience is 1 in the checkpoint, 2 now" + hint);
    other = o;
    other.network.pooling = GlobalPooling::Average;
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { crossValidate(source, cohort.labels, {}, other, dir.path()); }),
              ckpt.string() + ": cannot resume with different parameters: pooling is \"max\" in the checkpoint, "
                              "\"avg\" now" + hint);
    auto labels = cohort.labels;
    std::swap(labels[2], labels[3]); // same classes, other slides
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { crossValidate(source, labels, {}, o, dir.path()); }),
              ckpt.string() + ": cannot resume with different parameters: label of slide 3 (s2) is 0.0 in the "
                              "checkpoint, 1.0 now" + hint);
    EXPECT_TRUE(std::filesystem::exists(ckpt)); // a refusal changes nothing

    // Damaged checkpoints: an error naming the file, never a crash (unreadable by LibTorch: IoError; readable
    // but not a checkpoint, or a damaged record: FormatError).
    const std::string good = nic::test::readFile(ckpt);
    for (const std::string& bad : {good.substr(0, good.size() / 2), std::string("not a checkpoint\n"), std::string()}) {
        std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << bad;
        const auto e = test::errorOf<IoError>([&] { crossValidate(source, cohort.labels, {}, o, dir.path()); });
        EXPECT_EQ(e.rfind(ckpt.string() + ": cannot read checkpoint: ", 0), 0U) << e;
    }
    // A slide model under the checkpoint's name is readable, but not a checkpoint.
    const auto model = dir / "model-only.pt";
    SlideModelMeta meta;
    meta.config.inputChannels = 3;
    SlideCnn net(meta.config);
    saveSlideModel(net, meta, model);
    std::filesystem::copy_file(model, ckpt, std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(test::errorOf<FormatError>([&] { crossValidate(source, cohort.labels, {}, o, dir.path()); }),
              ckpt.string() + ": not a nic train checkpoint (no state/json record)");

    // A finished round's record is checked the same way.
    std::filesystem::remove(ckpt);
    runCancelled(dir.path(), o, "round 2/4, epoch 2/", 1);
    const auto record = dir / "fold0/round.json";
    ASSERT_TRUE(std::filesystem::exists(record));
    other = o;
    other.learningRate = 0.02;
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { crossValidate(source, cohort.labels, {}, other, dir.path()); }),
              record.string() + ": cannot resume with different parameters: learning_rate is 0.01 in the checkpoint, "
                                "0.02 now" + hint);
    std::ofstream(record, std::ios::trunc) << "{\"format\": \"nic-slide-train-round\", \"format_";
    const auto e = test::errorOf<FormatError>([&] { crossValidate(source, cohort.labels, {}, o, dir.path()); });
    EXPECT_EQ(e.rfind(record.string() + ": damaged round record: ", 0), 0U) << e;

    // Without resume, what an earlier run left is removed and training starts afresh.
    std::vector<std::string> logs;
    JobContext ctx([](const JobContext::Progress&) {}, [&](const std::string& line) { logs.push_back(line); });
    SlideTrainOptions fresh = o;
    fresh.resume = false;
    fresh.epochs = 1;
    EXPECT_NO_THROW(crossValidate(source, cohort.labels, {}, fresh, dir.path(), ctx));
    EXPECT_NE(std::find(logs.begin(), logs.end(),
                        "note: starting afresh; removing " + record.string() + " of an earlier run"),
              logs.end());
}

// ------------------------------------------------------------------------- SIGKILL through the real binary

// Starts `nic ARGS` with stdout and stderr going to `log`; returns its pid.
pid_t spawnNic(const std::vector<std::string>& args, const std::filesystem::path& log) {
    std::vector<std::string> argv{test::nicExecutable().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv)
        cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const std::string logPath = log.string();
    const pid_t pid = ::fork();
    if (pid == 0) { // only async-signal-safe calls until exec
        const int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    return pid;
}

// Every file present under a final name is complete. `deep` also opens the model and checkpoint files
// (not while the run is writing them: that would slow it down, and rename() keeps them whole anyway).
void expectOnlyCompleteFiles(const std::filesystem::path& run, int slides, int folds, bool deep) {
    const auto text = [&](const char* name) -> std::optional<std::string> {
        if (!std::filesystem::exists(run / name))
            return std::nullopt;
        return nic::test::readFile(run / name);
    };
    if (const auto t = text("folds.csv")) {
        EXPECT_EQ(countLines(*t), slides + 1) << *t;
    }
    if (const auto t = text("predictions.csv")) {
        EXPECT_EQ(countLines(*t), slides + 1) << *t;
    }
    if (const auto t = text("curves.csv")) {
        EXPECT_EQ(t->rfind("round,epoch,lr,train_loss,val_loss,val_metric,best,seconds\n", 0), 0U) << *t;
        EXPECT_EQ(t->back(), '\n');
    }
    if (const auto t = text("metrics.json")) {
        EXPECT_TRUE(nlohmann::json::accept(*t)) << *t;
    }
    for (int r = 0; r < folds; ++r) {
        const auto fold = run / ("fold" + std::to_string(r));
        if (std::filesystem::exists(fold / "round.json")) {
            EXPECT_TRUE(nlohmann::json::accept(nic::test::readFile(fold / "round.json"))) << fold;
        }
        if (!deep)
            continue;
        if (std::filesystem::exists(fold / "model.pt")) {
            EXPECT_NO_THROW(loadSlideModel(fold / "model.pt", "cpu")) << fold;
        }
        if (std::filesystem::exists(fold / "checkpoint.pt")) {
            torch::serialize::InputArchive ar;
            EXPECT_NO_THROW(ar.load_from((fold / "checkpoint.pt").string())) << fold;
        }
    }
}

TEST(TrainResumeCli, KilledRunsResumeToTheUninterruptedOutputs) {
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    test::TempDir dir;
    const std::string nic = "'" + test::nicExecutable().string() + "' ";
    std::string out, err;
    ASSERT_EQ(test::runCommand(nic + "synth --out '" + (dir / "synth").string() +
                                   "' --count 6 --size 1024 --seed 3 -q --threads 1",
                               &out, &err),
              0)
        << err;
    ASSERT_EQ(test::runCommand(nic + "compress --cohort '" + (dir / "synth/cohort.csv").string() + "' -e mean-rgb --out '" +
                                   (dir / "grids").string() + "' -q --augment 8 --serial",
                               &out, &err),
              0)
        << err;
    // 3 rounds × up to 12 epochs of 8 batches; patience 3 makes the learning rate drop and rounds stop early.
    const auto trainArgs = [&](const std::filesystem::path& run) {
        return std::vector<std::string>{"train", "--cohort", (dir / "synth/cohort.csv").string(), "--grids",
                                        (dir / "grids").string(), "--out", run.string(), "--folds", "3", "--epochs",
                                        "12", "--steps-per-epoch", "8", "--batch", "16", "--patience", "3",
                                        "--min-lr", "1e-4", "--filters", "8", "--layers", "3", "--dense", "8",
                                        "--bootstrap", "50", "--seed", "1", "--threads", "1", "--device", "cpu", "-q",
                                        "--resume"};
    };
    const auto finals = std::vector<std::string>{"predictions.csv", "metrics.json", "folds.csv",
                                                 "fold0/model.pt",  "fold1/model.pt", "fold2/model.pt"};

    // The uninterrupted run, timed from the moment training starts (folds.csv appears) to the end.
    using Clock = std::chrono::steady_clock;
    const auto full = dir / "full";
    const auto t0 = Clock::now();
    const pid_t ref = spawnNic(trainArgs(full), dir / "full.log");
    ASSERT_GT(ref, 0);
    double started = -1.0;
    int status = 0;
    while (::waitpid(ref, &status, WNOHANG) == 0) {
        if (started < 0 && std::filesystem::exists(full / "folds.csv"))
            started = std::chrono::duration<double>(Clock::now() - t0).count();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double total = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << nic::test::readFile(dir / "full.log");
    ASSERT_GE(started, 0.0);
    const double training = total - started;
    std::printf("[ info ] nic train: %.2f s in all, %.2f s from folds.csv to exit\n", total, training);

    int killedWithState = 0;
    for (std::uint64_t seed : {1U, 2U, 3U, 4U}) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        std::mt19937_64 rng(seed);
        const double delay = std::uniform_real_distribution<double>(0.0, training)(rng);
        const auto run = dir / ("killed" + std::to_string(seed));
        const auto t1 = Clock::now();
        const pid_t pid = spawnNic(trainArgs(run), dir / "killed.log");
        ASSERT_GT(pid, 0);
        std::optional<Clock::time_point> killAt;
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            if (!killAt && std::filesystem::exists(run / "folds.csv"))
                killAt = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
            if (killAt && Clock::now() >= *killAt) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                break;
            }
            expectOnlyCompleteFiles(run, 6, 3, false);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        // A kill landing after the last output was published stopped a finished run: not a killed one.
        const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        bool hadState = false;
        for (int r = 0; r < 3; ++r)
            for (const char* f : {"checkpoint.pt", "round.json"})
                hadState = hadState || std::filesystem::exists(run / ("fold" + std::to_string(r)) / f);
        std::printf("[ info ] seed %llu: %s after %.2f s of training (%.2f s in all)%s\n",
                    static_cast<unsigned long long>(seed), killed ? "killed" : "finished", delay,
                    std::chrono::duration<double>(Clock::now() - t1).count(), hadState ? ", resume state left" : "");
        expectOnlyCompleteFiles(run, 6, 3, true);
        killedWithState += killed && hadState ? 1 : 0;

        std::string line = nic;
        for (const auto& a : trainArgs(run))
            line += "'" + a + "' ";
        ASSERT_EQ(test::runCommand(line, &out, &err), 0) << err;
        if (killed && hadState) {
            EXPECT_TRUE(err.find("resuming from") != std::string::npos ||
                        err.find("finished by an earlier run") != std::string::npos)
                << err;
        }
        for (const auto& f : finals)
            EXPECT_EQ(nic::test::readFile(full / f), nic::test::readFile(run / f)) << f;
        EXPECT_EQ(curvesWithoutSeconds(full / "curves.csv"), curvesWithoutSeconds(run / "curves.csv"));
        for (const auto& e : std::filesystem::recursive_directory_iterator(run)) {
            EXPECT_NE(e.path().filename().string(), "checkpoint.pt") << e.path();
            EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
        }
    }

    // Resuming with other parameters is refused (a usage error, as in train-encoder) with the file and the
    // parameter named; nothing changes.
    auto args = trainArgs(dir / "killed1");
    *(std::find(args.begin(), args.end(), "--patience") + 1) = "5";
    std::string line = nic;
    for (const auto& a : args)
        line += "'" + a + "' ";
    EXPECT_EQ(test::runCommand(line, &out, &err), 2);
    const std::string message = "nic: usage error: " + (dir / "killed1/fold0/round.json").string() +
                                ": cannot resume with different parameters: patience is 3 in the checkpoint, 5 now "
                                "(resume with the same parameters, or start afresh without resuming)\n";
    EXPECT_EQ(err.substr(err.size() - std::min(err.size(), message.size())), message) << err;
    EXPECT_EQ(nic::test::readFile(full / "metrics.json"), nic::test::readFile(dir / "killed1/metrics.json"));
    if (killedWithState == 0)
        GTEST_SKIP() << "no kill landed while training (each run finished or was killed before its first epoch)";
}

} // namespace

// Encoder training loop: loss goes down, files and checkpoints, determinism, resume, cancellation.
#include "core/base/cpuinfo.h"
#include "core/base/error.h"
#include "core/base/jobcontext.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/trainer.h"
#include "core/encoders/nn/trainingsessions.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace nic {
namespace {

class Training : public ::testing::Test {
protected:
    void SetUp() override {
        // One thread: the suite runs beside other jobs, and results then do not depend on the machine.
        compute.threads = 1;
        compute.device = "cpu";
    }
    TrainOptions options(EncoderKind kind, const std::string& name) const {
        TrainOptions o;
        o.kind = kind;
        o.codeSize = 8;
        o.out = dir / (name + ".nicenc");
        o.batchSize = 16;
        o.stepsPerEpoch = 4;
        o.epochs = 3;
        o.learningRate = 1e-3;
        o.seed = 7;
        o.compute = compute;
        return o;
    }
    test::TempDir dir;
    ComputeOptions compute;
    PatchBank bank = test::makeTwoClassBank(64, 32, 3);
    PatchBank val = test::makeTwoClassBank(16, 32, 4);
};

TEST_F(Training, SupervisedTumorLowersItsLossAndSavesTheBestEncoder) {
    const TrainResult r = trainEncoder(options(EncoderKind::SupervisedTumor, "sup"), bank, val);
    ASSERT_EQ(r.history.size(), 3U);
    EXPECT_LT(r.history.back().trainLoss, r.history.front().trainLoss);
    EXPECT_EQ(r.metric, "val_accuracy");
    EXPECT_GE(r.bestValidation, 0.5);
    auto enc = loadEncoder((dir / "sup.nicenc").string(), compute);
    EXPECT_EQ(enc->info().hash, r.encoder.hash);
    EXPECT_EQ(enc->info().codeSize, 8);
    EXPECT_EQ(enc->info().patchSize, 32);
    EXPECT_TRUE(std::filesystem::exists(dir / "sup.nicenc.ckpt"));
}

TEST_F(Training, VaeLowersItsLoss) {
    auto o = options(EncoderKind::Vae, "vae");
    const TrainResult r = trainEncoder(o, bank, val);
    ASSERT_EQ(r.history.size(), 3U);
    EXPECT_LT(r.history.back().trainLoss, r.history.front().trainLoss);
    EXPECT_EQ(r.metric, "val_loss");
    EXPECT_EQ(loadEncoder((dir / "vae.nicenc").string(), compute)->info().name, "vae");
}

TEST_F(Training, ContrastiveBiganAndTissueRunAndSave) {
    for (auto kind : {EncoderKind::Contrastive, EncoderKind::Bigan, EncoderKind::SupervisedTissue}) {
        auto o = options(kind, toString(kind));
        o.epochs = 1;
        o.stepsPerEpoch = 2;
        o.validationPairs = 32;
        const TrainResult r = trainEncoder(o, bank, val);
        ASSERT_EQ(r.history.size(), 1U) << toString(kind);
        EXPECT_TRUE(std::isfinite(r.history[0].trainLoss)) << toString(kind);
        auto enc = loadEncoder(o.out.string(), compute);
        EXPECT_EQ(enc->info().name, toString(kind));
        if (kind == EncoderKind::Bigan) {
            EXPECT_EQ(r.metric, "none");
            EXPECT_GE(r.history[0].extra2, 0.0); // discriminator accuracy
            EXPECT_LE(r.history[0].extra2, 1.0);
        }
    }
}

TEST_F(Training, SameSeedGivesTheSameEncoderAndResumeMatchesAnUninterruptedRun) {
    auto a = options(EncoderKind::SupervisedTumor, "a");
    a.epochs = 2;
    a.stepsPerEpoch = 2;
    const auto ra = trainEncoder(a, bank, val);

    auto b = a;
    b.out = dir / "b.nicenc";
    b.epochs = 1;
    trainEncoder(b, bank, val);
    b.epochs = 2;
    b.resume = true;
    const auto rb = trainEncoder(b, bank, val);
    EXPECT_EQ(rb.epochsRun, 2);
    EXPECT_EQ(rb.history.size(), 2U);
    EXPECT_EQ(ra.encoder.hash, rb.encoder.hash);
    EXPECT_EQ(ra.history.back().trainLoss, rb.history.back().trainLoss);
}

// Batches may be made on the prefetch thread; drawing them there must not change a single number: the
// indices, the pairs and the augmentation draw from their streams in step order either way.
// Auto prefetches only the augmenting kinds' batches, and only where a CPU is left beside LibTorch's threads.
TEST_F(Training, AutoPrefetchesAugmentedBatchesOnlyWithACpuToSpare) {
    TrainOptions o;
    o.kind = EncoderKind::Contrastive;
    o.compute.device = "cpu"; // on a GPU, Auto prefetches whenever the kind augments
    o.batchThread = TrainOptions::BatchThread::Prefetch;
    EXPECT_TRUE(prefetchesBatches(o));
    o.batchThread = TrainOptions::BatchThread::Inline;
    EXPECT_FALSE(prefetchesBatches(o));
    o.batchThread = TrainOptions::BatchThread::Auto;
    const int before = computeThreads();
    ComputeOptions c;
    c.device = "cpu";
    c.threads = std::max(1, usableCpus() - 1);
    configureCompute(c);
    EXPECT_EQ(prefetchesBatches(o), usableCpus() > 1);
    c.threads = usableCpus();
    configureCompute(c);
    EXPECT_FALSE(prefetchesBatches(o)); // every CPU runs the step
    o.kind = EncoderKind::Vae;          // no augmentation: nothing worth a thread
    c.threads = std::max(1, usableCpus() - 1);
    configureCompute(c);
    EXPECT_FALSE(prefetchesBatches(o));
    o.augmentStrength = 0.5;
    EXPECT_EQ(prefetchesBatches(o), usableCpus() > 1);
    c.threads = before;
    configureCompute(c);
}

TEST_F(Training, PrefetchedBatchesTrainExactlyAsInlineOnes) {
    for (auto kind : {EncoderKind::Contrastive, EncoderKind::SupervisedTumor, EncoderKind::Bigan, EncoderKind::Vae}) {
        const std::string name = toString(kind);
        auto inlined = options(kind, name + "-inline");
        inlined.epochs = 2;
        inlined.stepsPerEpoch = 3;
        inlined.batchThread = TrainOptions::BatchThread::Inline;
        inlined.augmentStrength = 0.5;
        auto prefetched = inlined;
        prefetched.out = dir / (name + "-prefetched.nicenc");
        prefetched.batchThread = TrainOptions::BatchThread::Prefetch; // whatever Auto would pick here
        const TrainResult a = trainEncoder(inlined, bank, val);
        const TrainResult b = trainEncoder(prefetched, bank, val);
        EXPECT_EQ(a.encoder.hash, b.encoder.hash) << name;
        ASSERT_EQ(a.history.size(), b.history.size()) << name;
        for (std::size_t e = 0; e < a.history.size(); ++e) {
            EXPECT_EQ(a.history[e].trainLoss, b.history[e].trainLoss) << name << " epoch " << e + 1;
            EXPECT_EQ(a.history[e].extra, b.history[e].extra) << name << " epoch " << e + 1;
            EXPECT_GT(b.history[e].dataSeconds, 0.0) << name;
        }
    }
}

// Each epoch's record says where its seconds went (steps, validation; the rest is saving), in the result's JSON
// and through a resume, which reads the earlier epochs' records back from the checkpoint.
TEST_F(Training, EpochRecordsSayWhereTheirTimeWent) {
    auto o = options(EncoderKind::Contrastive, "timed");
    o.epochs = 1;
    o.stepsPerEpoch = 2;
    const TrainResult first = trainEncoder(o, bank, val);
    ASSERT_EQ(first.history.size(), 1U);
    const EpochRecord& r = first.history[0];
    EXPECT_GT(r.stepSeconds, 0.0);
    EXPECT_GT(r.validationSeconds, 0.0); // contrastive validates on its pairs
    EXPECT_LE(r.stepSeconds + r.validationSeconds, r.seconds);
    EXPECT_GE(r.stepSeconds, r.dataWaitSeconds); // waiting for batches is part of the steps' time
    const auto json = nlohmann::json::parse(trainResultJson(first));
    EXPECT_EQ(json.at("history").at(0).at("step_seconds").get<double>(), r.stepSeconds);
    EXPECT_EQ(json.at("history").at(0).at("validation_seconds").get<double>(), r.validationSeconds);
    o.epochs = 2;
    o.resume = true;
    const TrainResult resumed = trainEncoder(o, bank, val);
    ASSERT_EQ(resumed.history.size(), 2U);
    EXPECT_DOUBLE_EQ(resumed.history[0].stepSeconds, r.stepSeconds);
    EXPECT_DOUBLE_EQ(resumed.history[0].validationSeconds, r.validationSeconds);
    EXPECT_GT(resumed.history[1].stepSeconds, 0.0);
}

TEST_F(Training, CancelStopsWithinABatchAndKeepsTheLastCheckpoint) {
    auto o = options(EncoderKind::SupervisedTumor, "c");
    o.epochs = 3;
    o.stepsPerEpoch = 3;
    int reports = 0;
    JobContext* self = nullptr;
    JobContext ctx([&](const JobContext::Progress&) {
                       if (++reports == 5) // second batch of epoch 2
                           self->cancel();
                   },
                   [](const std::string&) {});
    self = &ctx;
    ctx.setMinInterval(std::chrono::milliseconds(0));
    EXPECT_THROW(trainEncoder(o, bank, val, ctx), Cancelled);
    EXPECT_EQ(reports, 5); // no batch ran after the cancel
    ASSERT_TRUE(std::filesystem::exists(dir / "c.nicenc"));
    ASSERT_TRUE(std::filesystem::exists(dir / "c.nicenc.ckpt"));
    EXPECT_NO_THROW(loadEncoder((dir / "c.nicenc").string(), compute));
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path(); // no half files

    o.resume = true;
    const auto r = trainEncoder(o, bank, val);
    EXPECT_EQ(r.epochsRun, 3);
    EXPECT_EQ(r.history.front().epoch, 1);
    EXPECT_EQ(r.history.size(), 3U);
}

TEST_F(Training, ResumeRefusesTheCheckpointOfAnotherEncoderOrAForeignFile) {
    auto o = options(EncoderKind::SupervisedTumor, "r");
    o.epochs = 1;
    o.stepsPerEpoch = 1;
    trainEncoder(o, bank, val);
    const auto ckpt = dir / "r.nicenc.ckpt";
    ASSERT_TRUE(std::filesystem::exists(ckpt));
    const std::string before = test::readFile(ckpt);
    o.epochs = 2;
    o.resume = true;
    auto other = o;
    other.codeSize = 16;
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] { trainEncoder(other, bank, val); }),
              ckpt.string() + ": cannot resume with different parameters: code_size is 8 in the checkpoint, 16 now "
                              "(resume with the same parameters, or start afresh without resuming)");
    EXPECT_EQ(test::readFile(ckpt), before); // a refusal changes nothing

    // An encoder file under the checkpoint's name is a LibTorch archive, but not a checkpoint.
    std::filesystem::copy_file(dir / "r.nicenc", ckpt, std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(test::errorOf<FormatError>([&] { trainEncoder(o, bank, val); }),
              ckpt.string() + ": not a nic train-encoder checkpoint (no state/json record)");
    std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << before.substr(0, before.size() / 2);
    const std::string e = test::errorOf<IoError>([&] { trainEncoder(o, bank, val); });
    EXPECT_EQ(e.rfind(ckpt.string() + ": cannot read checkpoint: ", 0), 0U) << e;

    // The intact checkpoint resumes.
    std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << before;
    EXPECT_EQ(trainEncoder(o, bank, val).epochsRun, 2);
}

TEST_F(Training, AnEpochPublishesItsEncoderFileAndCheckpointTogetherOrNeither) {
    // Both written: the result describes the file in place (without reading it back).
    auto o = options(EncoderKind::SupervisedTumor, "both");
    o.epochs = 1;
    o.stepsPerEpoch = 1;
    const TrainResult r = trainEncoder(o, bank, val);
    const EncoderInfo onDisk = readEncoderInfo(o.out);
    EXPECT_EQ(r.encoder.source, o.out.string());
    EXPECT_EQ(r.encoder.hash, onDisk.hash);
    EXPECT_EQ(r.encoder.name, onDisk.name);
    EXPECT_EQ(r.encoder.codeSize, onDisk.codeSize);
    EXPECT_TRUE(std::filesystem::exists(dir / "both.nicenc.ckpt"));
    EXPECT_GT(r.saveSeconds, 0.0); // the benchmark splits a run's rest with it

    // The checkpoint cannot be written: the encoder file, written beside it, is not published either.
    auto noCheckpoint = options(EncoderKind::SupervisedTumor, "nockpt");
    noCheckpoint.epochs = 1;
    noCheckpoint.stepsPerEpoch = 1;
    noCheckpoint.checkpoint = dir / "no such folder" / "x.ckpt";
    const std::string e = test::errorOf<IoError>([&] { trainEncoder(noCheckpoint, bank, val); });
    EXPECT_EQ(e.rfind(noCheckpoint.checkpoint.string() + ": cannot write checkpoint: ", 0), 0U) << e;
    EXPECT_FALSE(std::filesystem::exists(noCheckpoint.out));

    // The encoder file cannot be written: the checkpoint, written beside it, is not published either.
    auto noEncoder = options(EncoderKind::SupervisedTumor, "noenc");
    noEncoder.epochs = 1;
    noEncoder.stepsPerEpoch = 1;
    noEncoder.out = dir / "no such folder" / "y.nicenc";
    noEncoder.checkpoint = dir / "y.ckpt";
    const std::string f = test::errorOf<IoError>([&] { trainEncoder(noEncoder, bank, val); });
    EXPECT_EQ(f.rfind(noEncoder.out.string() + ": cannot write encoder file: ", 0), 0U) << f;
    EXPECT_FALSE(std::filesystem::exists(noEncoder.checkpoint));

    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path(); // no half files
}

TEST_F(Training, BatchesHoldTheBanksPatchesScaledBitForBit) {
    // The sessions' batches, made in one pass each: the values LibTorch's operators give (bytes / 255 as planes;
    // then 2u − 1), bit for bit; the model's input channels-last, as its first convolution reads it.
    const std::vector<std::size_t> idx = {3, 0, 5, 5, 63};
    const int p = bank.patchSize();
    auto bytes = torch::empty({static_cast<std::int64_t>(idx.size()), p, p, 3}, torch::kUInt8);
    for (std::size_t i = 0; i < idx.size(); ++i)
        std::memcpy(bytes.data_ptr<std::uint8_t>() + i * bank.patchBytes(), bank.patch(idx[i]), bank.patchBytes());
    const auto unit = bytes.permute({0, 3, 1, 2}).to(torch::kFloat).div_(255.0).contiguous();
    const auto model = unit * 2.0 - 1.0;

    const auto gathered = encodertraining::gatherUnit(bank, idx, torch::kCPU);
    EXPECT_TRUE(gathered.is_contiguous());
    EXPECT_TRUE(torch::equal(gathered, unit));
    const auto scaled = encodertraining::unitToModel(unit);
    EXPECT_TRUE(scaled.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(scaled, model));
    const auto direct = encodertraining::gatherModelInput(bank, idx, torch::kCPU);
    EXPECT_TRUE(direct.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(direct, model));
    EXPECT_EQ(direct.min().item<float>(), model.min().item<float>());
    // A batch that is not a contiguous float map (a view) takes the operators.
    const auto view = unit.narrow(2, 1, 8);
    EXPECT_TRUE(torch::equal(encodertraining::unitToModel(view), view * 2.0 - 1.0));
}

TEST_F(Training, RejectsUnusableInput) {
    auto o = options(EncoderKind::SupervisedTumor, "x");
    PatchBank unlabelled(32);
    for (std::size_t i = 0; i < 8; ++i)
        unlabelled.add(bank.patch(i), -1);
    EXPECT_THROW(trainEncoder(o, unlabelled, PatchBank()), InvalidArgument);
    o.out.clear();
    EXPECT_THROW(trainEncoder(o, bank, val), InvalidArgument);
    auto p = options(EncoderKind::Vae, "y");
    PatchBank odd(48);
    odd.add(Image(48, 48, 3), -1);
    odd.add(Image(48, 48, 3), -1);
    EXPECT_THROW(trainEncoder(p, odd, PatchBank()), InvalidArgument);
}

} // namespace
} // namespace nic

// The training checkpoint both trainers share: what it stores comes back exactly, the identity check names
// the file and the first difference, and every damaged or foreign file is an error naming the file.
#include "core/base/error.h"
#include "core/encoders/nn/fusedadam.h"
#include "core/encoders/nn/trainingcheckpoint.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace nic {
namespace {

using ojson = nlohmann::ordered_json;

struct Net : torch::nn::Module {
    Net() { fc = register_module("fc", torch::nn::Linear(4, 2)); }
    torch::nn::Linear fc{nullptr};
};

/// Whether two networks hold the same parameters.
bool sameParameters(const Net& a, const Net& b) {
    const auto pa = a.parameters(), pb = b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i)
        if (!torch::equal(pa[i], pb[i]))
            return false;
    return pa.size() == pb.size();
}

/// Whether two Adam optimisers of networks `a` and `b` hold the same state (step counts and moments).
bool sameAdamState(torch::optim::Adam& oa, const Net& a, torch::optim::Adam& ob, const Net& b) {
    const auto pa = a.parameters(), pb = b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) {
        const auto& sa = static_cast<torch::optim::AdamParamState&>(*oa.state().at(optimizerStateKey(pa[i])));
        const auto& sb = static_cast<torch::optim::AdamParamState&>(*ob.state().at(optimizerStateKey(pb[i])));
        if (sa.step() != sb.step() || !torch::equal(sa.exp_avg(), sb.exp_avg()) ||
            !torch::equal(sa.exp_avg_sq(), sb.exp_avg_sq()))
            return false;
    }
    return true;
}

/// `steps` Adam steps on `net`, so that the optimiser has state (moments, step counts) to store.
void train(Net& net, torch::optim::Adam& opt, int steps) {
    for (int i = 0; i < steps; ++i) {
        opt.zero_grad();
        net.fc->forward(torch::ones({2, 4}) * (i + 1)).pow(2).sum().backward();
        opt.step();
    }
}

TEST(TrainingCheckpoint, StoresNetworksOptimisersBytesGeneratorsAndStateExactly) {
    test::TempDir dir;
    const auto path = dir / "run.ckpt";
    torch::manual_seed(3);
    Net net;
    torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(1e-2));
    train(net, opt, 3);
    const std::string bytes("best\0model\xff", 11);

    TrainingCheckpoint out(path);
    out.addModule("model", net);
    out.addOptimizer("optimizer0", opt);
    out.addBytes("best_model", bytes);
    out.addGenerators(torch::kCPU);
    out.save(R"({"epoch": 2, "lr": 0.01, "a": [1, 2]})");
    const torch::Tensor nextDraw = torch::rand({5}); // what the generator gives after the checkpoint

    // Another network, optimiser and generator state: reading brings back the stored ones.
    torch::manual_seed(99);
    Net other;
    torch::optim::Adam otherOpt(other.parameters(), torch::optim::AdamOptions(1e-2));
    train(other, otherOpt, 2);
    ASSERT_FALSE(sameParameters(other, net));
    ASSERT_FALSE(sameAdamState(otherOpt, other, opt, net));

    TrainingCheckpoint in = TrainingCheckpoint::open(path, torch::Device(torch::kCPU), "test checkpoint");
    EXPECT_EQ(in.path(), path);
    EXPECT_EQ(in.state().dump(), R"({"epoch":2,"lr":0.01,"a":[1,2]})"); // keys in file order
    in.readModule("model", other);
    in.readOptimizer("optimizer0", otherOpt);
    EXPECT_TRUE(sameParameters(other, net));
    EXPECT_TRUE(sameAdamState(otherOpt, other, opt, net));
    EXPECT_EQ(in.readBytes("best_model"), bytes);
    in.readGenerators(torch::kCPU);
    EXPECT_TRUE(torch::equal(torch::rand({5}), nextDraw));

    // Published atomically: only the final name is left.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        EXPECT_EQ(e.path().filename().string(), "run.ckpt");
        ++files;
    }
    EXPECT_EQ(files, 1);
}

TEST(TrainingCheckpoint, DamagedAndForeignFilesAreErrorsNamingTheFile) {
    test::TempDir dir;
    const auto path = dir / "x.ckpt";
    const auto openIt = [&] { TrainingCheckpoint::open(path, c10::nullopt, "test checkpoint"); };
    const std::string cannotRead = path.string() + ": cannot read checkpoint: ";

    // Missing, empty, text, truncated: LibTorch's cause, first line only.
    for (const std::string& content : {std::string("<missing>"), std::string(), std::string("not a checkpoint\n")}) {
        std::filesystem::remove(path);
        if (content != "<missing>")
            std::ofstream(path, std::ios::binary) << content;
        const std::string e = test::errorOf<IoError>(openIt);
        EXPECT_EQ(e.rfind(cannotRead, 0), 0U) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
    TrainingCheckpoint good(path);
    Net net;
    good.addModule("model", net);
    good.addBytes("bytes", "abc");
    good.save("{}");
    const std::string whole = test::readFile(path);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << whole.substr(0, whole.size() / 2);
    EXPECT_EQ(test::errorOf<IoError>(openIt).rfind(cannotRead, 0), 0U);

    // A LibTorch archive without a state record (a saved model, say).
    torch::serialize::OutputArchive plain;
    net.save(plain);
    plain.save_to(path.string());
    EXPECT_EQ(test::errorOf<FormatError>(openIt), path.string() + ": not a test checkpoint (no state/json record)");

    // A state record that is not JSON.
    TrainingCheckpoint notJson(path);
    notJson.save("{\"epoch\": ");
    EXPECT_EQ(test::errorOf<FormatError>(openIt).rfind(path.string() + ": damaged checkpoint: ", 0), 0U);

    // Records that are missing or of the wrong kind.
    TrainingCheckpoint written(path);
    written.addModule("model", net);
    written.addBytes("bytes", "abc");
    written.save("{}");
    TrainingCheckpoint in = TrainingCheckpoint::open(path, c10::nullopt, "test checkpoint");
    EXPECT_EQ(in.readBytes("bytes"), "abc");
    EXPECT_EQ(test::errorOf<IoError>([&] { in.readModule("optimizer0", net); }).rfind(cannotRead, 0), 0U);
    EXPECT_EQ(test::errorOf<IoError>([&] { in.readBytes("model"); }).rfind(cannotRead, 0), 0U);
    EXPECT_EQ(test::errorOf<FormatError>([&] { in.readGenerators(torch::kCPU); }),
              path.string() + ": checkpoint has no rng/cpu record (made on another device?)");
    EXPECT_EQ(test::errorOf<FormatError>([&] { in.damaged("epoch 7 of 3"); }),
              path.string() + ": damaged checkpoint: epoch 7 of 3");

    // A folder that does not exist: nothing is written, the error names the checkpoint.
    const auto nowhere = dir / "no such folder" / "y.ckpt";
    const std::string e = test::errorOf<IoError>([&] { TrainingCheckpoint(nowhere).save("{}"); });
    EXPECT_EQ(e.rfind(nowhere.string() + ": cannot write checkpoint: ", 0), 0U) << e;
    EXPECT_FALSE(std::filesystem::exists(nowhere.parent_path()));
}

TEST(TrainingCheckpoint, AStagedCheckpointChangesNothingUntilPublished) {
    test::TempDir dir;
    const auto path = dir / "s.ckpt";
    TrainingCheckpoint(path).save("{\"epoch\": 1}");
    const std::string before = test::readFile(path);
    {
        TrainingCheckpoint staged(path);
        staged.addBytes("bytes", "abc");
        staged.stage("{\"epoch\": 2}");
        EXPECT_EQ(test::readFile(path), before);
        // destroyed unpublished: the temporary file goes with it
    }
    EXPECT_EQ(test::readFile(path), before);
    TrainingCheckpoint staged(path);
    staged.addBytes("bytes", "abc");
    staged.stage("{\"epoch\": 2}");
    staged.publish();
    TrainingCheckpoint in = TrainingCheckpoint::open(path, c10::nullopt, "test checkpoint");
    EXPECT_EQ(in.state().at("epoch"), 2);
    EXPECT_EQ(in.readBytes("bytes"), "abc");
    EXPECT_EQ(test::errorOf<Error>([&] { staged.publish(); }),
              path.string() + ": cannot publish checkpoint: nothing was staged");
    EXPECT_EQ(test::entriesIn(dir.path()), 1);
}

TEST(TrainingCheckpoint, AWriteThatFailsPartWayIsAnErrorNamingItsCause) {
    // The disk fills part of the way through the archive (here: a file size limit of 1 MiB under 2 MiB of
    // weights). LibTorch's writer must not see a short write (it then ends the process); the error names the
    // checkpoint and the cause, and the previous checkpoint stays as it was.
    test::TempDir dir;
    const auto path = dir / "f.ckpt";
    TrainingCheckpoint(path).save("{\"epoch\": 1}");
    const std::string before = test::readFile(path);
    torch::nn::Linear big(512, 1024);
    std::string e;
    {
        const test::FileSizeLimit limit(1 << 20);
        TrainingCheckpoint c(path);
        c.addModule("model", *big);
        e = test::errorOf<IoError>([&] { c.save("{\"epoch\": 2}"); });
    }
    EXPECT_EQ(e, path.string() + ": cannot write checkpoint: File too large");
    EXPECT_EQ(test::readFile(path), before);
    EXPECT_EQ(test::entriesIn(dir.path()), 1);
}

TEST(TrainingCheckpoint, ABytesRecordMustBeABytesTensor) {
    test::TempDir dir;
    const auto path = dir / "t.ckpt";
    torch::serialize::OutputArchive ar;
    ar.write("best_model", torch::ones({3}));
    ar.write("state/json", c10::IValue(std::string("{}")));
    ar.save_to(path.string());
    TrainingCheckpoint in = TrainingCheckpoint::open(path, c10::nullopt, "test checkpoint");
    EXPECT_EQ(test::errorOf<FormatError>([&] { in.readBytes("best_model"); }),
              path.string() + ": damaged checkpoint: best_model is not a byte array");
}

TEST(TrainingCheckpoint, IdentityCheckNamesTheFileAndTheFirstDifference) {
    const std::filesystem::path file = "run/fold0/checkpoint.pt";
    const std::string hint = " (resume with the same parameters, or start afresh without resuming)";
    const ojson stored = {{"kind", "vae"}, {"code_size", 8}, {"slides", {"a", "b", "c"}}, {"labels", {0, 1, 0}},
                          {"only_stored", true}};
    const auto refusal = [&](const ojson& now, const IdentityItems* items = nullptr) {
        return test::errorOf<InvalidArgument>([&] { TrainingCheckpoint::checkIdentity(file, stored, now, items); });
    };
    // The same values (numbers of any JSON type), keys only the checkpoint has: accepted.
    EXPECT_EQ(refusal({{"code_size", 8u}, {"kind", "vae"}}), "<no error>");
    // The first differing key in the order of the current identity.
    EXPECT_EQ(refusal({{"kind", "bigan"}, {"code_size", 16}}),
              file.string() + ": cannot resume with different parameters: kind is \"vae\" in the checkpoint, "
                              "\"bigan\" now" + hint);
    EXPECT_EQ(refusal({{"code_size", 16}, {"kind", "bigan"}}),
              file.string() + ": cannot resume with different parameters: code_size is 8 in the checkpoint, 16 now" +
                  hint);
    EXPECT_EQ(refusal({{"patch_size", 64}}),
              file.string() + ": cannot resume with different parameters: patch_size is absent in the checkpoint, 64 now" +
                  hint);
    // Per-item entries are named by the item; without `items` the arrays are dumped.
    const std::vector<std::string> ids = {"a", "b", "c", "d"};
    const IdentityItems slides{"slide", {{"slides", "id"}, {"labels", "label"}}, [&](std::size_t i) { return ids[i]; }};
    EXPECT_EQ(refusal({{"labels", {0, 1, 1}}}, &slides),
              file.string() + ": cannot resume with different parameters: label of slide 3 (c) is 0 in the "
                              "checkpoint, 1 now" + hint);
    EXPECT_EQ(refusal({{"slides", ids}}, &slides),
              file.string() + ": cannot resume with different parameters: the checkpoint has 3 slides, this run 4" + hint);
    EXPECT_EQ(refusal({{"labels", {0, 1, 1}}}),
              file.string() + ": cannot resume with different parameters: labels is [0,1,0] in the checkpoint, [0,1,1] "
                              "now" + hint);
}

} // namespace
} // namespace nic

// Where LibTorch runs (issue 16 item 5): `--device auto` takes CUDA when LibTorch has it and falls back to
// the CPU otherwise; `cuda` without CUDA and unknown names are usage errors with exact messages, in core
// and through `nic` (compress, train-encoder, train, gradcam all take --device). On a machine with CUDA the
// CPU-only assertions are skipped and the CUDA path is exercised instead.
#include "core/base/error.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/torchencoder.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace nic {
namespace {

std::string refusal(const std::string& device) {
    try {
        configureCompute(ComputeOptions{device, 0});
    } catch (const InvalidArgument& e) {
        return e.what();
    }
    return {};
}

TEST(ComputeDevice, AutoTakesCudaWhenPresentElseTheCpu) {
    const bool cuda = torch::cuda::is_available();
    EXPECT_EQ(configureCompute(ComputeOptions{"auto", 0}), cuda ? "cuda" : "cpu");
    EXPECT_EQ(configureCompute(ComputeOptions{"cpu", 0}), "cpu");
    EXPECT_EQ(refusal("gpu"), "unknown device 'gpu' (use auto, cpu or cuda)");
    if (cuda)
        EXPECT_EQ(configureCompute(ComputeOptions{"cuda", 0}), "cuda");
    else
        EXPECT_EQ(refusal("cuda"), "device 'cuda' requested but this LibTorch build or machine has no CUDA device");
}

// An encoder created for "auto" runs where auto points, and its embeddings equal the CPU encoder's of the
// same seed (on a CPU-only machine both are the CPU; with CUDA, within float tolerance).
TEST(ComputeDevice, EncodersRunOnTheResolvedDevice) {
    ComputeOptions autoDev{"auto", 1};
    ComputeOptions cpu{"cpu", 1};
    auto a = createEncoder(EncoderKind::Vae, 32, 8, 3, 1, autoDev);
    auto c = createEncoder(EncoderKind::Vae, 32, 8, 3, 1, cpu);
    auto* ta = dynamic_cast<TorchPatchEncoder*>(a.get());
    ASSERT_NE(ta, nullptr);
    EXPECT_EQ(ta->device().is_cuda(), torch::cuda::is_available());
    std::vector<std::uint8_t> patches(2 * 32 * 32 * 3);
    for (std::size_t i = 0; i < patches.size(); ++i)
        patches[i] = static_cast<std::uint8_t>((i * 37) % 251);
    std::vector<float> ea(2 * 8), ec(2 * 8);
    a->encode(patches.data(), 2, ea.data());
    c->encode(patches.data(), 2, ec.data());
    for (std::size_t i = 0; i < ea.size(); ++i)
        EXPECT_NEAR(ea[i], ec[i], 1e-4) << i;
}

// Training on a GPU augments its batches there (heavy on a GPU tensor runs as tensor operations), from the
// same CPU generator, so a seed gives the CPU's augmented batch up to float rounding.
TEST(ComputeDevice, AugmentationOnTheGpuGivesWhatTheCpuGives) {
    if (!torch::cuda::is_available())
        GTEST_SKIP() << "no CUDA device: augmentation on a GPU cannot run here";
    torch::manual_seed(5);
    const auto x = (0.6 * torch::rand({8, 3, 64, 64}) + 0.2).contiguous();
    auto g1 = augment::makeGenerator(29), g2 = augment::makeGenerator(29);
    const auto onGpu = augment::heavy(x.to(torch::kCUDA), 1.0, g1);
    EXPECT_TRUE(onGpu.is_cuda());
    const auto onCpu = augment::heavy(x, 1.0, g2);
    EXPECT_LT((onGpu.cpu() - onCpu).abs().max().item<double>(), 1e-4);
    EXPECT_TRUE(torch::equal(torch::rand({4}, g1), torch::rand({4}, g2)));
}

TEST(ComputeDevice, TheCliRefusesCudaWithoutItAsAUsageError) {
    if (torch::cuda::is_available())
        GTEST_SKIP() << "this machine has CUDA: the refusal cannot happen here";
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    test::TempDir dir;
    std::string out, err;
    EXPECT_EQ(test::runCommand(test::nicCommand("train-encoder --kind vae --images " + test::shellQuoted(dir.path()) +
                                                " --out " + test::shellQuoted(dir / "e.nicenc") + " --device cuda --quiet"),
                               &out, &err),
              2);
    EXPECT_NE(err.find("device 'cuda' requested but this LibTorch build or machine has no CUDA device"),
              std::string::npos)
        << err;
    EXPECT_FALSE(std::filesystem::exists(dir / "e.nicenc"));
    EXPECT_EQ(test::runCommand(test::nicCommand("train-encoder --kind vae --images " + test::shellQuoted(dir.path()) +
                                                " --out " + test::shellQuoted(dir / "e.nicenc") + " --device tpu --quiet"),
                               &out, &err),
              2);
    EXPECT_NE(err.find("unknown device 'tpu' (use auto, cpu or cuda)"), std::string::npos) << err;
}

} // namespace
} // namespace nic

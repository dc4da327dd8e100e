// Shapes of the encoder networks and the augmentation functions (the only test file that includes
// LibTorch; the others use the torch-free API of the nn/ halves of core/).
#include "core/base/error.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/torchencoder.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <functional>

namespace nic {
namespace {

// Small P and C keep these fast; the architecture is the same for the paper's 128/128.
constexpr int kP = 64;
constexpr int kC = 16;

torch::Tensor batch(int n, int p = kP) { return torch::rand({n, 3, p, p}) * 2 - 1; }

TEST(Modules, ConvEncoderMapsPatchesToCodes) {
    torch::manual_seed(1);
    ConvEncoder e(kP, kC);
    auto x = batch(3);
    EXPECT_EQ(e(x).sizes(), (std::vector<std::int64_t>{3, kC}));
    EXPECT_EQ(e->features(x).sizes(), (std::vector<std::int64_t>{3, 512}));
    ConvEncoder paper(128, 128);
    EXPECT_EQ(paper(batch(2, 128)).sizes(), (std::vector<std::int64_t>{2, 128}));
}

TEST(Modules, VaeReconstructsAtInputSize) {
    Vae vae(kP, kC);
    auto x = batch(2);
    auto out = vae->forward(x);
    EXPECT_EQ(out.reconstruction.sizes(), x.sizes());
    EXPECT_EQ(out.mu.sizes(), (std::vector<std::int64_t>{2, kC}));
    EXPECT_EQ(out.logVar.sizes(), (std::vector<std::int64_t>{2, kC}));
    EXPECT_LE(out.reconstruction.abs().max().item<float>(), 1.0f); // tanh
    auto losses = VaeImpl::loss(out, x);
    ASSERT_EQ(losses.size(), 3U);
    EXPECT_GT(losses[0].item<float>(), 0.0f);
}

TEST(Modules, SiameseAndSupervisedGiveLogits) {
    Siamese s(kP, kC);
    EXPECT_EQ(s->forward(batch(4), batch(4)).sizes(), (std::vector<std::int64_t>{4}));
    Supervised tumor(kP, kC, 1);
    EXPECT_EQ(tumor(batch(2)).sizes(), (std::vector<std::int64_t>{2, 1}));
    Supervised tissue(kP, kC, 9);
    EXPECT_EQ(tissue(batch(2)).sizes(), (std::vector<std::int64_t>{2, 9}));
}

TEST(Modules, BiganNetworksWorkAtHalfResolution) {
    Bigan g(kP, kC);
    auto x = batch(2);
    auto e = g->encoder(x);
    EXPECT_EQ(e.sizes(), (std::vector<std::int64_t>{2, kC}));
    auto fake = g->generator(torch::randn({2, kC}));
    EXPECT_EQ(fake.sizes(), (std::vector<std::int64_t>{2, 3, kP / 2, kP / 2}));
    EXPECT_EQ(g->discriminator(fake, e).sizes(), (std::vector<std::int64_t>{2}));
    Bigan paper(128, 128);
    EXPECT_EQ(paper->generator(torch::randn({2, 128})).sizes(), (std::vector<std::int64_t>{2, 3, 64, 64}));
}

TEST(Modules, RejectsPatchSizesThatAreNotMultiplesOf32) {
    EXPECT_THROW(ConvEncoder(100, 8), InvalidArgument);
    EXPECT_THROW(BiganEncoder(64, 0, true), InvalidArgument);
}

TEST(Modules, KerasChainSamePaddingIsAsymmetric) {
    // TF 'same' with stride 2 on an even size pads one pixel at the bottom/right only: with a kernel
    // that picks its top-left tap, output (0, 0) is input (0, 0), not the padding.
    KerasLayer conv;
    conv.type = KerasLayer::Type::Conv2d;
    conv.inChannels = 1;
    conv.outChannels = 1;
    conv.kernel = 3;
    conv.stride = 2;
    conv.samePadding = true;
    conv.bias = false;
    KerasChain chain(std::vector<KerasLayer>{conv});
    auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(chain->modules[0].get());
    ASSERT_NE(c, nullptr);
    {
        torch::NoGradGuard ng;
        c->weight.zero_();
        c->weight[0][0][0][0] = 1.0f;
    }
    auto x = torch::arange(16, torch::kFloat).view({1, 1, 4, 4}) + 1;
    auto y = chain->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<std::int64_t>{1, 1, 2, 2}));
    EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 1.0f);
    EXPECT_FLOAT_EQ(y[0][0][1][1].item<float>(), 11.0f);
}

TEST(EncoderFile, WeightsThatDisagreeWithTheMetadataAreRefused) {
    // torch::load would happily load C = 8 weights into a C = 16 module; the file reader must not.
    EncoderMeta meta;
    meta.kind = "vae";
    meta.name = "vae";
    meta.patchSize = 32;
    meta.codeSize = 16;
    ConvEncoder small(32, 8);
    test::TempDir dir;
    writeEncoderFile(dir / "bad.nicenc", meta, *small);
    try {
        readEncoderFile(dir / "bad.nicenc", torch::kCPU);
        FAIL() << "no exception";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tensor 'code.weight' has shape [8, 512] but the architecture in the "
                                             "metadata needs [16, 512]"),
                  std::string::npos)
            << e.what();
    }
}

// ---------------------------------------------------------------------------------- augmentation

using AugmentFn = std::function<torch::Tensor(const torch::Tensor&, double, at::Generator&)>;
struct AugmentCase {
    const char* name;
    AugmentFn fn;
};

class Augment : public ::testing::TestWithParam<AugmentCase> {
protected:
    static torch::Tensor images() {
        torch::manual_seed(7);
        // Smooth structure plus texture, like a patch: a gradient with blobs.
        auto g = torch::linspace(0, 1, 48).view({1, 1, 1, 48}).expand({4, 3, 48, 48});
        return (0.5 * g + 0.4 * torch::rand({4, 3, 48, 48})).clamp(0, 1).contiguous();
    }
};

TEST_P(Augment, KeepsShapeAndRange) {
    auto x = images();
    for (double s : {0.25, 1.0, 2.0}) {
        auto gen = augment::makeGenerator(3);
        auto y = GetParam().fn(x, s, gen);
        EXPECT_EQ(y.sizes(), x.sizes()) << GetParam().name;
        EXPECT_GE(y.min().item<float>(), 0.0f);
        EXPECT_LE(y.max().item<float>(), 1.0f);
        EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    }
}

TEST_P(Augment, IsDeterministicUnderASeed) {
    auto x = images();
    auto g1 = augment::makeGenerator(42), g2 = augment::makeGenerator(42), g3 = augment::makeGenerator(43);
    auto a = GetParam().fn(x, 1.0, g1);
    auto b = GetParam().fn(x, 1.0, g2);
    auto c = GetParam().fn(x, 1.0, g3);
    EXPECT_TRUE(torch::equal(a, b)) << GetParam().name;
    EXPECT_FALSE(torch::equal(a, c)) << GetParam().name;
}

TEST_P(Augment, StrengthScalesTheEffect) {
    auto x = images();
    auto diff = [&](double s) {
        auto gen = augment::makeGenerator(5);
        return (GetParam().fn(x, s, gen) - x).abs().mean().item<double>();
    };
    EXPECT_EQ(diff(0.0), 0.0) << GetParam().name;
    const double weak = diff(0.2), strong = diff(1.0);
    EXPECT_GT(weak, 0.0) << GetParam().name;
    EXPECT_GT(strong, weak) << GetParam().name;
}

TEST_P(Augment, RejectsBadInput) {
    auto gen = augment::makeGenerator(1);
    EXPECT_THROW(GetParam().fn(torch::rand({3, 8, 8}), 1.0, gen), InvalidArgument);
    EXPECT_THROW(GetParam().fn(images(), -0.1, gen), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(All, Augment,
                         ::testing::Values(AugmentCase{"rotate", augment::rotate}, AugmentCase{"zoom", augment::zoom},
                                           AugmentCase{"elastic", augment::elastic},
                                           AugmentCase{"hedJitter", augment::hedJitter},
                                           AugmentCase{"brightness", augment::brightness},
                                           AugmentCase{"contrast", augment::contrast},
                                           AugmentCase{"gaussianNoise", augment::gaussianNoise},
                                           AugmentCase{"heavy", augment::heavy}),
                         [](const auto& p) { return std::string(p.param.name); });

} // namespace
} // namespace nic

// Shapes of the encoder networks and the augmentation functions (the only test file that includes
// LibTorch; the others use the torch-free API of the nn/ halves of core/).
#include "core/base/error.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/torchencoder.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <functional>
#include <limits>

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
                                           AugmentCase{"geometric", augment::geometric},
                                           AugmentCase{"heavy", augment::heavy}),
                         [](const auto& p) { return std::string(p.param.name); });

// heavy() warps once (geometric) where rotate, zoom and elastic each resampled: the same transforms from the same
// draws. On a smooth image, where bilinear resampling is nearly exact, one warp equals the three in turn away
// from the borders (reflection differs there); the random state after both is the same, so the colour steps that
// follow draw the same numbers.
TEST(Augment, GeometricIsRotateZoomElasticInOneResampling) {
    const auto ramp = torch::linspace(0, 1, 64);
    auto x = torch::stack({ramp.view({64, 1}).expand({64, 64}), ramp.view({1, 64}).expand({64, 64}),
                           0.5 * (ramp.view({64, 1}) + ramp.view({1, 64}))},
                          0)
                 .unsqueeze(0)
                 .expand({6, 3, 64, 64})
                 .contiguous();
    auto g1 = augment::makeGenerator(11), g2 = augment::makeGenerator(11);
    const double strength = 0.4; // small angles and zooms keep the centre's samples away from the borders
    auto fused = augment::geometric(x, strength, g1);
    auto stepwise = augment::elastic(augment::zoom(augment::rotate(x, strength, g2), strength, g2), strength, g2);
    auto centre = [](const torch::Tensor& t) { return t.slice(2, 20, 44).slice(3, 20, 44); };
    const double worst = (centre(fused) - centre(stepwise)).abs().max().item<double>();
    EXPECT_LT(worst, 0.02);
    EXPECT_GT((centre(fused) - centre(x)).abs().max().item<double>(), 0.05); // it did warp
    EXPECT_TRUE(torch::equal(torch::rand({4}, g1), torch::rand({4}, g2)));
}

// geometric warps each image in one pass of its own (coordinates, reflection and bilinear sampling per pixel);
// it must equal the same warp through LibTorch's operators (interpolate, the grid, grid_sample) up to float
// rounding, on a textured batch, at strengths where samples reach and are mirrored at the borders, on a
// non-square image, and leave the generator in the same state.
TEST(Augment, FusedWarpEqualsTheTensorOps) {
    torch::manual_seed(3);
    for (auto sizes : {std::vector<std::int64_t>{6, 3, 64, 64}, std::vector<std::int64_t>{3, 3, 40, 72}}) {
        const auto x = (0.5 * torch::rand(sizes) + 0.5 * torch::linspace(0, 1, sizes[3]).view({1, 1, 1, -1})).clamp(0, 1);
        for (double strength : {0.3, 1.0, 2.0}) {
            auto g1 = augment::makeGenerator(17), g2 = augment::makeGenerator(17);
            const auto fused = augment::geometric(x, strength, g1);
            const auto ops = augment::geometricWithTensorOps(x, strength, g2);
            ASSERT_EQ(fused.sizes(), x.sizes());
            EXPECT_LT((fused - ops).abs().max().item<double>(), 1e-4) << strength << " " << sizes[2] << "x" << sizes[3];
            EXPECT_GT((fused - x).abs().mean().item<double>(), 0.01); // it did warp
            EXPECT_TRUE(torch::equal(torch::rand({4}, g1), torch::rand({4}, g2)));
        }
    }
}

// What heavy does on a GPU (tensor operations throughout; the noise's 64-bit hash as integer tensors) gives what it
// does on the CPU (one-pass loops for the warp and the noise) from the same draws, up to float rounding, and leaves
// the generator in the same state. Both run on the CPU here; the noise alone (σ up to 0.1) would differ by far more
// than the bound if the hashes or the quantile tables disagreed.
TEST(Augment, TensorOperationsGiveWhatTheLoopsGive) {
    torch::manual_seed(4);
    const auto x = (0.6 * torch::rand({4, 3, 48, 48}) + 0.2).contiguous();
    for (double strength : {0.5, 1.0, 2.0}) {
        auto g1 = augment::makeGenerator(23), g2 = augment::makeGenerator(23);
        const auto loops = augment::heavy(x, strength, g1);
        const auto ops = augment::heavyWithTensorOps(x, strength, g2);
        ASSERT_EQ(ops.sizes(), x.sizes());
        EXPECT_LT((loops - ops).abs().max().item<double>(), 1e-4) << strength;
        EXPECT_GT((loops - x).abs().mean().item<double>(), 0.01); // it did augment
        EXPECT_TRUE(torch::equal(torch::rand({4}, g1), torch::rand({4}, g2)));
    }
}

/// `augmentation` of x from generators seeded with `seed`, with the AVX-512 loops allowed and then with the scalar
/// twins alone (the switch restored however the second call ends).
std::pair<torch::Tensor, torch::Tensor> vectorAndScalar(torch::Tensor (*augmentation)(const torch::Tensor&, double,
                                                                                      at::Generator&),
                                                        const torch::Tensor& x, double strength, std::uint64_t seed) {
    auto g1 = augment::makeGenerator(seed), g2 = augment::makeGenerator(seed);
    auto vector = augmentation(x, strength, g1);
    augment::useVectorLoops(false);
    struct Restore {
        ~Restore() { augment::useVectorLoops(true); }
    } restore;
    return {std::move(vector), augmentation(x, strength, g2)};
}

// The warp's AVX-512 loop (16 pixels at a time, where the CPU has it) gives the scalar loop's bits exactly: the
// same operations in the same order, none fused into multiply-adds. Rows of 64 are all vector; rows of 72 end in
// 8 scalar pixels. A NaN pixel becomes 1 in both (clamped as std::min(1, std::max(v, 0)) does).
TEST(Augment, TheVectorWarpGivesTheScalarWarpsBits) {
    torch::manual_seed(8);
    for (auto sizes : {std::vector<std::int64_t>{5, 3, 64, 64}, std::vector<std::int64_t>{3, 3, 40, 72}}) {
        auto x = torch::rand(sizes);
        x[0][1][5][7] = std::numeric_limits<float>::quiet_NaN();
        for (double strength : {0.3, 1.0, 2.0}) {
            const auto [vector, scalar] = vectorAndScalar(augment::geometric, x, strength, 41);
            EXPECT_TRUE(torch::equal(vector.nan_to_num(-7.0), scalar.nan_to_num(-7.0))) << strength << " " << sizes[3];
            EXPECT_FALSE(torch::isnan(vector).any().item<bool>());
        }
    }
}

// heavy's colour steps on the CPU (HED jitter and brightness in one pass, contrast and noise in another, with
// Cephes' log and exp) take AVX-512 loops where the CPU has them, finished by scalar twins: the scalar twins alone
// give the same bits. 64² images are all vector; 37 × 41 leaves a scalar rest of each plane (13 pixels) and image
// (7 values in the last pass), and images 1–3 start inside a noise hash's four values (scalar first values). Black
// and white columns exercise log's clamp at 1/255.
TEST(Augment, TheVectorColourStepsGiveTheScalarBits) {
    if (!augment::hasVectorLoops())
        GTEST_SKIP() << "this CPU has no AVX-512: heavy's colour steps run as LibTorch's operators, with no vector loop "
                        "to compare";
    torch::manual_seed(9);
    for (auto sizes : {std::vector<std::int64_t>{4, 3, 64, 64}, std::vector<std::int64_t>{5, 3, 37, 41}}) {
        auto x = torch::rand(sizes);
        x.select(3, 3).fill_(0.0F);
        x.select(3, 4).fill_(1.0F);
        for (double strength : {0.3, 1.0, 2.0}) {
            const auto [vector, scalar] = vectorAndScalar(augment::heavy, x, strength, 43);
            EXPECT_TRUE(torch::equal(vector, scalar)) << strength << " " << sizes[3];
            EXPECT_GE(vector.min().item<float>(), 0.0F);
            EXPECT_LE(vector.max().item<float>(), 1.0F);
        }
    }
}

// The noise is Gaussian, independent from pixel to pixel and image to image, with the per-image σ ≤ 0.05 ×
// strength: on a mid-grey batch (no clamping) each image's residual has mean ≈ 0, kurtosis ≈ 3 and no correlation
// between neighbouring values, and two images' residuals differ.
TEST(Augment, GaussianNoiseIsGaussianAndIndependent) {
    const auto x = torch::full({8, 3, 64, 64}, 0.5F);
    auto gen = augment::makeGenerator(31);
    const auto r = (augment::gaussianNoise(x, 1.0, gen) - x).view({8, -1}).to(torch::kDouble);
    for (int i = 0; i < 8; ++i) {
        const auto v = r[i];
        const double sd = v.std().item<double>();
        ASSERT_GT(sd, 0.0);
        EXPECT_LE(sd, 0.05 * 1.02);
        const auto z = (v - v.mean()) / sd;
        EXPECT_LT(std::fabs(v.mean().item<double>()) / sd, 0.05) << i;
        EXPECT_NEAR(z.pow(4).mean().item<double>(), 3.0, 0.15) << i;
        EXPECT_LT(z.abs().max().item<double>(), 4.5) << i; // the quantile table ends at ±4.32
        const double lag1 = (z.slice(0, 1) * z.slice(0, 0, -1)).mean().item<double>();
        EXPECT_LT(std::fabs(lag1), 0.05) << i;
    }
    // Images k and k + 4 (and, above, neighbouring values, four of which share a hash) must be independent too.
    for (int i = 0; i < 4; ++i) {
        const auto a = (r[i] - r[i].mean()) / r[i].std(), b = (r[i + 4] - r[i + 4].mean()) / r[i + 4].std();
        EXPECT_LT(std::fabs((a * b).mean().item<double>()), 0.05) << i;
        EXPECT_LT(std::fabs((a.pow(2) * b.pow(2)).mean().item<double>() - 1.0), 0.1) << i; // independent, not only uncorrelated
    }
}

// The HED jitter, written out as its definition: optical density to stain space, each stain scaled by α and
// shifted by β, back to RGB. hedJitter computes it as one 3 × 3 matrix per image; the result must be the same.
TEST(Augment, HedJitterScalesAndShiftsEachStainsOpticalDensity) {
    auto x = torch::rand({5, 3, 16, 16}) * 0.9 + 0.05;
    const double strength = 1.0;
    auto g1 = augment::makeGenerator(21), g2 = augment::makeGenerator(21);
    auto y = augment::hedJitter(x, strength, g1);

    auto rgbFromHed = torch::tensor({0.65f, 0.70f, 0.29f, 0.07f, 0.99f, 0.11f, 0.27f, 0.57f, 0.78f}).view({3, 3});
    rgbFromHed = rgbFromHed / rgbFromHed.norm(2, 1, true);
    auto od = -torch::log(x.clamp_min(1.0 / 255.0)).permute({0, 2, 3, 1});
    auto hed = torch::matmul(od, torch::inverse(rgbFromHed));
    auto alpha = 1.0 + (torch::rand({5, 1, 1, 3}, g2, torch::kFloat) * 2.0 - 1.0) * (0.2 * strength);
    auto beta = (torch::rand({5, 1, 1, 3}, g2, torch::kFloat) * 2.0 - 1.0) * (0.05 * strength);
    auto expected = torch::exp(-torch::matmul(hed * alpha + beta, rgbFromHed)).permute({0, 3, 1, 2}).clamp(0.0, 1.0);
    EXPECT_LT((y - expected).abs().max().item<double>(), 1e-5);
    EXPECT_GT((y - x).abs().max().item<double>(), 0.01);
}

} // namespace
} // namespace nic

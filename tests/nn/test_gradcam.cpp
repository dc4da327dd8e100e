// Grad-CAM (§3.3, §8.3): gradient coefficients against finite differences, whole-slide and tiled maps.
#include "core/error.h"
#include "core/nn/gradcam.h"
#include "core/nn/slidecnn.h"
#include "testsupport.h"

#include <gtest/gtest.h>

using namespace nic;

namespace {

SlideCnnConfig tiny(GlobalPooling pooling) {
    SlideCnnConfig c;
    c.inputChannels = 3;
    c.filters = 5;
    c.layers = 4;
    c.unstridedLayers = 2;
    c.dense = 6;
    c.pooling = pooling;
    return c;
}

} // namespace

class GradCamFiniteDifference : public ::testing::TestWithParam<std::tuple<GlobalPooling, int>> {};

TEST_P(GradCamFiniteDifference, GammaIsTheSpatialMeanOfTheGradient) {
    const auto [pooling, layer] = GetParam();
    torch::manual_seed(11);
    SlideCnn net(tiny(pooling));
    net->to(torch::kDouble);
    net->eval();
    // Non-trivial BN statistics so the check is not about identity layers.
    for (auto& b : net->named_buffers())
        if (b.key().find("running_var") != std::string::npos)
            b.value().uniform_(0.5, 2.0);
    const auto x = torch::randn({1, 3, 13, 11}, torch::kDouble);
    const auto t = gradCamTensors(net, x, layer);
    const auto act = t.activation;
    const auto F = act.size(1);
    const double area = static_cast<double>(act.size(2) * act.size(3));
    torch::NoGradGuard g;
    const double eps = 1e-6;
    // dy/dε of act + ε·(channel j all ones) = Σ_p ∂y/∂act_j(p) = γ_j · h · w.
    for (std::int64_t j = 0; j < F; ++j) {
        auto plus = act.clone();
        auto minus = act.clone();
        plus[0][j] += eps;
        minus[0][j] -= eps;
        const double fd = (net->fromFeatures(plus, layer).item<double>() - net->fromFeatures(minus, layer).item<double>()) /
                          (2 * eps * area);
        EXPECT_NEAR(t.gamma[j].item<double>(), fd, 1e-6 + 1e-4 * std::abs(fd)) << "channel " << j;
    }
    // The map is Σ_j γ_j act_j and the output is the network's.
    EXPECT_TRUE(torch::allclose(t.map, (t.gamma.view({-1, 1, 1}) * act[0]).sum(0)));
    EXPECT_NEAR(t.output, net->forward(x).item<double>(), 1e-12);
    // Per-cell check of the gradient itself at one location, through the same finite difference.
    auto gradFull = [&] {
        torch::AutoGradMode on(true);
        auto a = act.clone().requires_grad_(true);
        return torch::autograd::grad({net->fromFeatures(a, layer).sum()}, {a})[0];
    }();
    EXPECT_NEAR(gradFull.mean({2, 3})[0][0].item<double>(), t.gamma[0].item<double>(), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Pooling, GradCamFiniteDifference,
                         ::testing::Combine(::testing::Values(GlobalPooling::Max, GlobalPooling::Average),
                                            ::testing::Values(0, 1, 3)));

TEST(GradCam, WholeSlideAndTiledMapsAtGridResolution) {
    test::TempDir dir;
    torch::manual_seed(12);
    SlideModelMeta meta;
    meta.config = tiny(GlobalPooling::Max);
    SlideCnn net(meta.config);
    net->eval();
    saveSlideModel(net, meta, dir / "m.pt");
    SlideGrid grid;
    grid.channels = 3;
    grid.rows = 37;
    grid.cols = 23;
    grid.data.resize(3 * 37 * 23);
    grid.tissue.assign(37 * 23, 1.0f);
    grid.tissue[0] = 0.0f; // background cell gets no heat
    auto values = torch::randn({3, 37, 23});
    std::copy(values.data_ptr<float>(), values.data_ptr<float>() + values.numel(), grid.data.begin());
    GradCamOptions o;
    o.device = "cpu";
    const auto whole = gradCam(dir / "m.pt", grid, o);
    EXPECT_FALSE(whole.tiled);
    ASSERT_EQ(whole.heatmap.size(), 37U * 23U);
    EXPECT_EQ(whole.heatmap[0], 0.0f);
    for (float v : whole.heatmap)
        EXPECT_GE(v, 0.0f);
    {
        torch::NoGradGuard g;
        EXPECT_NEAR(whole.output, net->forward(values.unsqueeze(0)).item<double>(), 1e-4);
    }
    o.maxCells = 100;
    o.tileSize = 16;
    o.tileOverlap = 4;
    const auto tiled = gradCam(dir / "m.pt", grid, o);
    EXPECT_TRUE(tiled.tiled);
    EXPECT_EQ(tiled.tiles, 3 * 2); // rows 0,12,21 × cols 0,7
    ASSERT_EQ(tiled.heatmap.size(), 37U * 23U);
    for (float v : tiled.heatmap)
        EXPECT_TRUE(std::isfinite(v) && v >= 0.0f);
    // One tile as big as the grid is the whole-slide pass.
    o.tileSize = 64;
    o.tileOverlap = 0;
    const auto one = gradCam(dir / "m.pt", grid, o);
    EXPECT_EQ(one.tiles, 1);
    for (std::size_t i = 0; i < one.heatmap.size(); ++i)
        EXPECT_NEAR(one.heatmap[i], whole.heatmap[i], 1e-5);
    o.layer = 9;
    EXPECT_THROW(gradCam(dir / "m.pt", grid, o), InvalidArgument);
    grid.channels = 4;
    EXPECT_THROW(gradCam(dir / "m.pt", grid, GradCamOptions{}), InvalidArgument);
}

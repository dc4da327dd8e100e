// Grad-CAM (§3.3, §8.3): gradient coefficients against finite differences, whole-slide and tiled maps.
#include "core/base/error.h"
#include "core/heatmaps/nn/gradcam.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <algorithm>

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
    EXPECT_THROW(gradCam(dir / "m.pt", grid, GradCamOptions{}), FormatError); // the model file and the grid disagree
}

// ------------------------------------------------------------------ the flatten head: crop-sized windows

namespace {

SlideCnnConfig tinyFlatten(int R) {
    auto c = tiny(GlobalPooling::Flatten);
    c.inputSize = R;
    return c;
}

SlideGrid randomGrid(int channels, int rows, int cols) {
    SlideGrid g;
    g.channels = channels;
    g.rows = rows;
    g.cols = cols;
    const auto v = torch::randn({channels, rows, cols});
    g.data.assign(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    g.tissue.assign(static_cast<std::size_t>(rows * cols), 1.0f);
    return g;
}

// Trained-looking BN statistics: with the defaults (variance 1) an untrained network's activations fade to
// ~1e-6 across its blocks, and maps that small could not tell a wrong window from the right one.
void amplify(SlideCnn& net) {
    for (auto& b : net->named_buffers())
        if (b.key().find("running_var") != std::string::npos)
            b.value().uniform_(0.002, 0.01);
}

// The Grad-CAM map of one R × R window (ReLU'd, resized to R × R), as gradcam.h defines it.
torch::Tensor windowCam(SlideCnn& net, const torch::Tensor& window, int layer, double* output) {
    const auto t = gradCamTensors(net, window.unsqueeze(0), layer);
    *output = t.output;
    auto map = torch::relu(t.map).unsqueeze(0).unsqueeze(0);
    map = torch::nn::functional::interpolate(
        map, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<std::int64_t>{window.size(1), window.size(2)})
                 .mode(torch::kBilinear)
                 .align_corners(false));
    return map[0][0];
}

// A flatten-head model for 16 × 16 crops (random weights, amplified), saved to `file`.
SlideCnn saveFlattenModel(const std::filesystem::path& file, std::uint64_t seed) {
    torch::manual_seed(seed);
    SlideModelMeta meta;
    meta.config = tinyFlatten(16);
    meta.cropSize = 16;
    SlideCnn net(meta.config);
    amplify(net);
    net->eval();
    saveSlideModel(net, meta, file);
    return net;
}

} // namespace

TEST(GradCam, FlattenHeadSlideOfOneCropIsTheSingleWindowMap) {
    test::TempDir dir;
    SlideCnn net = saveFlattenModel(dir / "m.pt", 21);
    const SlideGrid grid = randomGrid(3, 16, 16);
    GradCamOptions o;
    o.device = "cpu";
    o.tissueThreshold = -1.0f;
    o.maxCells = 1; // pooling-head settings do not apply to this head
    for (int layer : {0, 1, 3}) {
        o.layer = layer;
        const auto cam = gradCam(dir / "m.pt", grid, o);
        EXPECT_FALSE(cam.tiled);
        EXPECT_EQ(cam.tiles, 1);
        double out = 0.0;
        const auto x = torch::from_blob(const_cast<float*>(grid.data.data()), {3, 16, 16}).clone();
        const auto expected = windowCam(net, x, layer, &out).contiguous();
        ASSERT_EQ(cam.heatmap.size(), 256U);
        const float scale = expected.max().item<float>();
        EXPECT_GT(scale, 1e-3f) << "layer " << layer; // a map that can tell a wrong window apart
        for (std::size_t i = 0; i < 256; ++i)
            EXPECT_NEAR(cam.heatmap[i], expected.data_ptr<float>()[i], 1e-6f * scale) << "layer " << layer << " cell " << i;
        EXPECT_NEAR(cam.output, out, 1e-6);
        torch::NoGradGuard g;
        EXPECT_NEAR(cam.output, net->forward(x.unsqueeze(0)).item<double>(), 1e-5);
    }
    // A grid smaller than the crop gets the one window inference uses: centred, zero-padded.
    const SlideGrid small = randomGrid(3, 11, 13);
    o.layer = 1;
    const auto cam = gradCam(dir / "m.pt", small, o);
    EXPECT_EQ(cam.tiles, 1);
    InMemoryGridSource source({"s"}, std::vector<std::vector<SlideGrid>>{std::vector<SlideGrid>{small}});
    const auto crop = inferenceCrops(source, 0, 16, 10, 0.0f);
    ASSERT_EQ(crop.size(0), 1);
    double out = 0.0;
    const auto full = windowCam(net, crop[0], 1, &out);
    // Centre x = 13/2 = 6, y = 11/2 = 5, R/2 = 8: the grid starts at row 3, column 2 of the window.
    const auto expected = full.slice(0, 3, 14).slice(1, 2, 15).contiguous();
    const float scale = expected.max().item<float>();
    EXPECT_GT(scale, 1e-3f);
    for (std::size_t i = 0; i < cam.heatmap.size(); ++i)
        EXPECT_NEAR(cam.heatmap[i], expected.data_ptr<float>()[i], 1e-6f * scale) << i;
    EXPECT_NEAR(cam.output, out, 1e-6);
}

TEST(GradCam, FlattenHeadBlendsHalfOverlappingWindowsWithATent) {
    test::TempDir dir;
    SlideCnn net = saveFlattenModel(dir / "m.pt", 22);
    // 24 rows = R + R/2: two windows down (rows 0–15 and 8–23), one across.
    const SlideGrid grid = randomGrid(3, 24, 16);
    GradCamOptions o;
    o.device = "cpu";
    o.tissueThreshold = -1.0f;
    const auto cam = gradCam(dir / "m.pt", grid, o);
    EXPECT_TRUE(cam.tiled);
    EXPECT_EQ(cam.tiles, 2);
    const auto x = torch::from_blob(const_cast<float*>(grid.data.data()), {3, 24, 16}).clone();
    double outA = 0.0;
    double outB = 0.0;
    const auto a = windowCam(net, x.slice(1, 0, 16), 1, &outA);
    const auto b = windowCam(net, x.slice(1, 8, 24), 1, &outB);
    const auto tent = [](int i) { return static_cast<float>(std::min(i + 1, 16 - i)); }; // 1 … 8 8 … 1
    const float scale = std::max(a.max().item<float>(), b.max().item<float>());
    EXPECT_GT(scale, 1e-3f);
    for (int y = 0; y < 24; ++y)
        for (int xx = 0; xx < 16; ++xx) {
            float num = 0.0f;
            float den = 0.0f;
            if (y < 16) {
                num += a[y][xx].item<float>() * tent(y) * tent(xx);
                den += tent(y) * tent(xx);
            }
            if (y >= 8) {
                num += b[y - 8][xx].item<float>() * tent(y - 8) * tent(xx);
                den += tent(y - 8) * tent(xx);
            }
            const float expected = num / den;
            EXPECT_NEAR(cam.heatmap[static_cast<std::size_t>(y * 16 + xx)], expected, 1e-5f * scale)
                << "cell (" << y << ", " << xx << ")";
        }
    EXPECT_NEAR(cam.output, (outA + outB) / 2, 1e-6);
    // The same grid stored [H, W, C] (as the file source keeps grids): the same windows, the same map.
    const auto camLast = gradCam(dir / "m.pt", test::channelsLastCopy(grid), o);
    EXPECT_EQ(camLast.heatmap, cam.heatmap);
    EXPECT_EQ(camLast.output, cam.output);
    // Larger grids: windows at stride R/2 whose span covers the grid (70 rows: 8 windows; 50 columns: 6).
    const auto big = gradCam(dir / "m.pt", randomGrid(3, 70, 50), o);
    EXPECT_EQ(big.tiles, 8 * 6);
    ASSERT_EQ(big.heatmap.size(), 70U * 50U);
    for (float v : big.heatmap)
        EXPECT_TRUE(std::isfinite(v) && v >= 0.0f);
}

// ------------------------------------------------------------------ pooling heads: a grid stored [H, W, C]

// Compressed-slide files keep grids [H, W, C]. The pooling heads read such a grid through a view (no channel-first
// copy of the whole grid), so the network gets channels-last tiles; the maps and outputs are the channel-first
// grid's, whole and tiled.
TEST(GradCam, PoolingHeadsReadAChannelsLastGridAsTheChannelFirstOne) {
    test::TempDir dir;
    for (const GlobalPooling pooling : {GlobalPooling::Max, GlobalPooling::Average}) {
        torch::manual_seed(21);
        SlideModelMeta meta;
        meta.config = tiny(pooling);
        SlideCnn net(meta.config);
        amplify(net);
        net->eval();
        const auto file = dir / ("m" + std::to_string(static_cast<int>(pooling)) + ".pt");
        saveSlideModel(net, meta, file);
        const SlideGrid first = randomGrid(3, 37, 23);
        const SlideGrid last = test::channelsLastCopy(first);
        GradCamOptions whole;
        whole.device = "cpu";
        GradCamOptions tiles = whole;
        tiles.maxCells = 100;
        tiles.tileSize = 16;
        tiles.tileOverlap = 4;
        for (const bool tiled : {false, true}) {
            const GradCamOptions& o = tiled ? tiles : whole;
            const auto a = gradCam(file, first, o);
            const auto b = gradCam(file, last, o);
            EXPECT_EQ(b.tiles, a.tiles);
            EXPECT_EQ(a.tiled, tiled);
            EXPECT_NEAR(b.output, a.output, 1e-5 * std::max(1.0, std::abs(a.output)));
            const float scale = *std::max_element(a.heatmap.begin(), a.heatmap.end());
            EXPECT_GT(scale, 1e-3f) << "a map this faint could not tell a wrong cell from the right one";
            ASSERT_EQ(b.heatmap.size(), a.heatmap.size());
            for (std::size_t i = 0; i < a.heatmap.size(); ++i)
                EXPECT_NEAR(b.heatmap[i], a.heatmap[i], 1e-5f * scale) << "cell " << i << ", tiled " << a.tiled;
        }
    }
}

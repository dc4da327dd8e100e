// Latent view: PCA colouring of an [H, W, C] grid; background cells transparent.
#include "ui/latentview.h"

#include "core/base/error.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace nic;

TEST(LatentView, ClustersGetDistinctColoursAndBackgroundIsTransparent) {
    // 4 × 6 grid, C = 8: left half one embedding, right half another, row 0 background (zeros).
    const int h = 4, w = 6, c = 8;
    std::vector<float> grid(static_cast<std::size_t>(h * w * c), 0.0F);
    for (int y = 1; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < c; ++k)
                grid[static_cast<std::size_t>((y * w + x) * c + k)] =
                    (x < 3 ? 1.0F : -1.0F) * (k % 2 ? 2.0F : 0.5F) + 0.01F * static_cast<float>(y * k);
    const LatentRgb rgb = latentPcaRgb(grid, h, w, c, {}, 128.0);
    ASSERT_EQ(rgb.width, w);
    ASSERT_EQ(rgb.height, h);
    EXPECT_DOUBLE_EQ(rgb.cellSize, 128.0);
    auto px = [&](int x, int y, int ch) { return static_cast<int>(rgb.rgba[static_cast<std::size_t>((y * w + x) * 4 + ch)]); };
    for (int x = 0; x < w; ++x)
        EXPECT_EQ(px(x, 0, 3), 0) << "background cell " << x; // transparent
    EXPECT_EQ(px(0, 1, 3), 255);
    // PC1 separates the clusters: red is at opposite ends of the range.
    EXPECT_GT(std::abs(px(0, 2, 0) - px(5, 2, 0)), 200);
    ASSERT_FALSE(rgb.explainedVariance.empty());
    EXPECT_GT(rgb.explainedVariance[0], 0.95); // one dominant direction
}

TEST(LatentView, ForegroundMaskAndShapeErrors) {
    std::vector<float> grid(2 * 2 * 3, 1.0F);
    const LatentRgb rgb = latentPcaRgb(grid, 2, 2, 3, {1, 0, 0, 1}, 1.0);
    EXPECT_EQ(rgb.rgba[3], 255);
    EXPECT_EQ(rgb.rgba[7], 0);
    EXPECT_THROW(latentPcaRgb(grid, 3, 2, 3, {}, 1.0), InvalidArgument);
}

// Crop-centre sampling ∝ squared distance to background (paper §3.2), test centres, zero-padded crops.
#include "core/slidelearning/cropsampler.h"
#include "core/base/error.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

using namespace nic;

namespace {

// A disc of tissue plus a rectangle touching the right edge, on a 30 × 20 grid.
std::vector<float> blobTissue(int cols, int rows) {
    std::vector<float> t(static_cast<std::size_t>(cols * rows), 0.0f);
    for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x) {
            const bool disc = (x - 9) * (x - 9) + (y - 10) * (y - 10) <= 36;
            const bool rect = x >= 22 && y >= 3 && y < 12;
            t[static_cast<std::size_t>(y * cols + x)] = disc || rect ? 0.8f : 0.0f;
        }
    return t;
}

} // namespace

TEST(CropSampler, DistanceTransformMatchesBruteForce) {
    const int cols = 30;
    const int rows = 20;
    const auto frac = blobTissue(cols, rows);
    std::vector<std::uint8_t> mask(frac.size());
    for (std::size_t i = 0; i < frac.size(); ++i)
        mask[i] = frac[i] > 0 ? 1 : 0;
    const auto d2 = squaredDistanceToBackground(mask, cols, rows);
    for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x) {
            double best = 1e300;
            // Background cells inside the grid and the ring just outside it.
            for (int by = -1; by <= rows; ++by)
                for (int bx = -1; bx <= cols; ++bx) {
                    const bool outside = bx < 0 || by < 0 || bx >= cols || by >= rows;
                    if (outside || !mask[static_cast<std::size_t>(by * cols + bx)])
                        best = std::min(best, double((bx - x) * (bx - x) + (by - y) * (by - y)));
                }
            ASSERT_DOUBLE_EQ(d2[static_cast<std::size_t>(y * cols + x)], best) << x << "," << y;
        }
}

TEST(CropSampler, ProbabilitiesAreNormalisedSquaredDistances) {
    // One row of 5 tissue cells: distances to background (outside counts) 1, 2, 3, 2, 1.
    CropSampler s({1, 1, 1, 1, 1}, 5, 1);
    // Rows: the grid has one row, so every cell is at distance 1 vertically: d² = min(horizontal², 1) = 1.
    for (double p : s.probabilities())
        EXPECT_DOUBLE_EQ(p, 0.2);
    // A 5 × 5 block: interior distances 1 (rim), 2 (ring), 3 (centre) → d² = 1, 4, 9.
    CropSampler b(std::vector<float>(25, 1.0f), 5, 5);
    const double total = 16 * 1 + 8 * 4 + 9;
    EXPECT_DOUBLE_EQ(b.probabilities()[0], 1 / total);
    EXPECT_DOUBLE_EQ(b.probabilities()[6], 4 / total);
    EXPECT_DOUBLE_EQ(b.probabilities()[12], 9 / total);
}

TEST(CropSampler, CentresNeverOnBackgroundAndFollowTheWeights) {
    const int cols = 30;
    const int rows = 20;
    const auto frac = blobTissue(cols, rows);
    CropSampler s(frac, cols, rows, 0.5f);
    ASSERT_TRUE(s.hasTissue());
    std::mt19937_64 rng(123);
    const int draws = 200000;
    std::vector<int> counts(frac.size(), 0);
    for (int i = 0; i < draws; ++i) {
        const auto c = s.sample(rng);
        ASSERT_GE(c.x, 0);
        ASSERT_LT(c.x, cols);
        ASSERT_GE(c.y, 0);
        ASSERT_LT(c.y, rows);
        const auto idx = static_cast<std::size_t>(c.y * cols + c.x);
        ASSERT_GT(frac[idx], 0.5f) << "centre on background at " << c.x << "," << c.y;
        ++counts[idx];
    }
    // Each cell count is Binomial(draws, p): within 5 standard deviations, and a Pearson χ² test overall.
    double chi2 = 0.0;
    int dof = -1;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        const double p = s.probabilities()[i];
        if (p == 0.0) {
            EXPECT_EQ(counts[i], 0);
            continue;
        }
        const double e = p * draws;
        EXPECT_NEAR(counts[i], e, 5.0 * std::sqrt(e * (1 - p)) + 1.0) << i;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        ++dof;
    }
    // χ² with ~150 degrees of freedom: mean dof, sd sqrt(2 dof); 6 sd is far beyond chance.
    EXPECT_LT(chi2, dof + 6.0 * std::sqrt(2.0 * dof));
}

TEST(CropSampler, TestCentresAreOnTissueDistinctAndSpread) {
    const int cols = 40;
    const int rows = 40;
    std::vector<float> t(static_cast<std::size_t>(cols * rows), 1.0f);
    CropSampler full(t, cols, rows);
    const auto four = full.testCentres(4);
    ASSERT_EQ(four.size(), 4U);
    // k-means on a square converges to the four quadrant centres (19.5 ± 10).
    std::set<std::pair<int, int>> quadrants;
    for (const auto& c : four) {
        EXPECT_NEAR(std::abs(c.x - 19.5), 10.0, 1.5);
        EXPECT_NEAR(std::abs(c.y - 19.5), 10.0, 1.5);
        quadrants.insert({c.x < 20, c.y < 20});
    }
    EXPECT_EQ(quadrants.size(), 4U);

    const auto frac = blobTissue(30, 20);
    CropSampler s(frac, 30, 20, 0.5f);
    const auto ten = s.testCentres(10);
    ASSERT_EQ(ten.size(), 10U);
    std::set<std::pair<int, int>> distinct;
    int inRect = 0;
    for (const auto& c : ten) {
        EXPECT_GT(frac[static_cast<std::size_t>(c.y * 30 + c.x)], 0.5f);
        distinct.insert({c.x, c.y});
        inRect += c.x >= 22 ? 1 : 0;
    }
    EXPECT_EQ(distinct.size(), 10U);
    EXPECT_GE(inRect, 2); // both tissue pieces get centres (areas 113 and 72 cells)
    EXPECT_EQ(ten, s.testCentres(10)); // deterministic

    CropSampler tiny({0, 1, 1, 0}, 2, 2);
    EXPECT_EQ(tiny.testCentres(10).size(), 2U);
}

TEST(CropSampler, NoTissueFallsBackToUniform) {
    CropSampler s(std::vector<float>(12, 0.0f), 4, 3);
    EXPECT_FALSE(s.hasTissue());
    for (double p : s.probabilities())
        EXPECT_DOUBLE_EQ(p, 1.0 / 12);
    EXPECT_EQ(s.testCentres(10), (std::vector<GridCell>{{2, 1}}));
    EXPECT_THROW(CropSampler({1, 1}, 3, 1), InvalidArgument);
    EXPECT_THROW(CropSampler({}, 0, 0), InvalidArgument);
}

// The slide CNN's trainer cuts its crops channels-last (tiles of 16 channels × 16 columns): every value where the
// channel-first crop has it, zeros outside the grid included, for channel counts and widths that are and are not
// multiples of the tile, and crops hanging over every border.
TEST(CropSampler, ChannelsLastCropsHoldTheChannelFirstCropsValues) {
    for (const int channels : {1, 16, 20, 33}) {
        const int rows = 29, cols = 37;
        std::vector<float> grid(static_cast<std::size_t>(channels * rows * cols));
        for (std::size_t i = 0; i < grid.size(); ++i)
            grid[i] = static_cast<float>(i + 1);
        for (const GridCell centre : {GridCell{18, 14}, GridCell{0, 0}, GridCell{36, 28}, GridCell{3, 27}, GridCell{90, 5}})
            for (const int R : {1, 16, 24, 40}) {
                std::vector<float> first;
                extractCrop(grid, channels, rows, cols, centre, R, first);
                std::vector<float> last(first.size(), -1.0f);
                extractCropChannelsLast(grid.data(), channels, rows, cols, centre, R, last.data());
                int mismatches = 0;
                for (int c = 0; c < channels; ++c)
                    for (int y = 0; y < R; ++y)
                        for (int x = 0; x < R; ++x)
                            mismatches += last[static_cast<std::size_t>((y * R + x) * channels + c)] !=
                                          first[static_cast<std::size_t>((c * R + y) * R + x)];
                EXPECT_EQ(mismatches, 0) << channels << " channels, R " << R << ", centre " << centre.x << "," << centre.y;
                // In channel ranges (as the trainer's threads cut it): the same crop, each range writing only its own.
                std::vector<float> parts(first.size(), -1.0f);
                for (int c = 0; c < channels; c += 16)
                    extractCropChannelsLast(grid.data(), channels, rows, cols, centre, R, parts.data(), c,
                                            std::min(c + 16, channels));
                EXPECT_EQ(parts, last) << channels << " channels in ranges, R " << R;
            }
    }
    std::vector<float> grid(2 * 3 * 3, 1.0f), crop(2 * 4 * 4, -1.0f);
    extractCropChannelsLast(grid.data(), 2, 3, 3, {1, 1}, 4, crop.data(), 1, 2); // channel 1 only
    for (std::size_t px = 0; px < 16; ++px)
        EXPECT_EQ(crop[2 * px], -1.0f) << px; // channel 0 untouched
    EXPECT_THROW(extractCropChannelsLast(grid.data(), 2, 3, 3, {1, 1}, 4, crop.data(), 1, 3), InvalidArgument);
    std::vector<float> out(4);
    EXPECT_THROW(extractCropChannelsLast(out.data(), 1, 2, 2, {0, 0}, 0, out.data()), InvalidArgument);
}

TEST(CropSampler, CropsOfChannelsLastGridsHoldTheChannelFirstGridsCrops) {
    // The grid as compressed-slide files store it ([rows, cols, channels]) must give, in both output layouts, the
    // very values the channel-first grid gives: the trainer reads files' grids this way.
    for (const int channels : {1, 3, 16, 20, 33}) {
        const int rows = 29, cols = 37;
        std::vector<float> first(static_cast<std::size_t>(channels * rows * cols)), last(first.size());
        for (int c = 0; c < channels; ++c)
            for (int y = 0; y < rows; ++y)
                for (int x = 0; x < cols; ++x) {
                    const float v = static_cast<float>(1 + c + 100 * (y * cols + x)); // never 0: padding shows
                    first[static_cast<std::size_t>((c * rows + y) * cols + x)] = v;
                    last[static_cast<std::size_t>((y * cols + x) * channels + c)] = v;
                }
        for (const GridCell centre : {GridCell{18, 14}, GridCell{0, 0}, GridCell{36, 28}, GridCell{3, 27},
                                      GridCell{90, 5}, GridCell{-40, -40}})
            for (const int R : {1, 5, 16, 24, 40, 70}) {
                const std::string what = std::to_string(channels) + " channels, R " + std::to_string(R) + ", centre " +
                                         std::to_string(centre.x) + "," + std::to_string(centre.y);
                const std::size_t n = static_cast<std::size_t>(channels) * static_cast<std::size_t>(R * R);
                std::vector<float> wantFirst, wantLast(n);
                extractCrop(first, channels, rows, cols, centre, R, wantFirst);
                extractCropChannelsLast(first.data(), channels, rows, cols, centre, R, wantLast.data());
                std::vector<float> gotLast(n, -1.0f), gotFirst(n, -1.0f);
                extractCropFromChannelsLast(last.data(), channels, rows, cols, centre, R, gotLast.data(), true);
                extractCropFromChannelsLast(last.data(), channels, rows, cols, centre, R, gotFirst.data(), false);
                EXPECT_EQ(gotLast, wantLast) << what;
                EXPECT_EQ(gotFirst, wantFirst) << what;
                // In row ranges (as the trainer's threads cut it): the same crops, each range writing only its rows.
                for (const bool channelsLastOut : {true, false}) {
                    std::vector<float> parts(n, -1.0f);
                    for (int r = 0; r < R; r += 7) {
                        extractCropFromChannelsLast(last.data(), channels, rows, cols, centre, R, parts.data(),
                                                    channelsLastOut, r, std::min(r + 7, R));
                        const std::size_t row = channelsLastOut ? static_cast<std::size_t>(R * channels)
                                                                : static_cast<std::size_t>(R);
                        // The next row is not written yet (in both layouts its first value is still -1).
                        if (r + 7 < R) {
                            EXPECT_EQ(parts[static_cast<std::size_t>(r + 7) * row], -1.0f) << what << " row " << r + 7;
                        }
                    }
                    EXPECT_EQ(parts, channelsLastOut ? wantLast : wantFirst) << what << " in row ranges";
                }
            }
    }
    std::vector<float> grid(2 * 3 * 3, 1.0f), crop(2 * 4 * 4, -1.0f);
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] {
                  extractCropFromChannelsLast(grid.data(), 2, 3, 3, {1, 1}, 4, crop.data(), true, 2, 5);
              }),
              "crop: rows [2, 5) of 4");
    EXPECT_EQ(test::errorOf<InvalidArgument>([&] {
                  extractCropFromChannelsLast(grid.data(), 2, 3, 3, {1, 1}, 0, crop.data(), false);
              }),
              "crop size must be at least 1, got 0");
    for (float v : crop)
        EXPECT_EQ(v, -1.0f); // nothing written by a refused call
}

TEST(CropSampler, CropsAreZeroPaddedOutsideTheGrid) {
    // 2 channels of a 3 × 4 grid (rows × cols), value = 100·c + 10·y + x + 1.
    std::vector<float> grid(2 * 3 * 4);
    for (int c = 0; c < 2; ++c)
        for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 4; ++x)
                grid[static_cast<std::size_t>((c * 3 + y) * 4 + x)] = float(100 * c + 10 * y + x + 1);
    std::vector<float> out;
    extractCrop(grid, 2, 3, 4, {1, 1}, 6, out); // window x, y ∈ [-2, 4)
    ASSERT_EQ(out.size(), 2U * 36U);
    for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 6; ++j)
            for (int i = 0; i < 6; ++i) {
                const int x = i - 2;
                const int y = j - 2;
                const float want = (x >= 0 && x < 4 && y >= 0 && y < 3) ? float(100 * c + 10 * y + x + 1) : 0.0f;
                EXPECT_EQ(out[static_cast<std::size_t>((c * 6 + j) * 6 + i)], want) << c << " " << i << " " << j;
            }
    extractCrop(grid, 2, 3, 4, {40, 40}, 2, out);
    for (float v : out)
        EXPECT_EQ(v, 0.0f);
    EXPECT_THROW(extractCrop(grid, 2, 3, 5, {0, 0}, 2, out), InvalidArgument);
    EXPECT_THROW(extractCrop(grid, 2, 3, 4, {0, 0}, 0, out), InvalidArgument);
}

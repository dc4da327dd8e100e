// The caching CPU allocator behind LibTorch's tensors (core/encoders/nn/tensorcache.h).
#include "core/compression/compressor.h"
#include "core/compression/latentgrid.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/trainer.h"
#include "core/heatmaps/nn/gradcam.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace nic {
namespace {

bool cacheInstalled() {
    ComputeOptions o;
    o.device = "cpu";
    o.threads = 1;
    configureCompute(o); // installs it
    return tensorCacheStats().installed;
}

constexpr std::int64_t kFloats4MiB = (4 << 20) / 4;

TEST(TensorCache, AFreedLargeBlockServesTheNextTensorOfItsSize) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    const TensorCacheScope scope;
    const TensorCacheStats before = tensorCacheStats();
    const void* first = nullptr;
    {
        auto t = torch::full({kFloats4MiB}, 3.0F);
        first = t.data_ptr();
    }
    EXPECT_GE(tensorCacheStats().cachedBytes, std::size_t{4} << 20);
    auto again = torch::ones({kFloats4MiB});
    EXPECT_EQ(again.data_ptr(), first);
    EXPECT_EQ(again.sum().item<double>(), static_cast<double>(kFloats4MiB)); // filled anew, not the old 3s
    const TensorCacheStats after = tensorCacheStats();
    EXPECT_EQ(after.hits, before.hits + 1);
    EXPECT_EQ(after.misses, before.misses + 1);
    EXPECT_EQ(after.cachedBytes, 0U);
    // Small tensors bypass it.
    { auto small = torch::ones({256}); }
    EXPECT_EQ(tensorCacheStats().hits, after.hits);
    EXPECT_EQ(tensorCacheStats().misses, after.misses);
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U);
}

TEST(TensorCache, KeepsNoMoreThanItsLimitAndReleaseEmptiesIt) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    const TensorCacheScope scope;
    const std::size_t previous = setTensorCacheLimit(std::size_t{9} << 20); // room for two 4 MiB blocks
    {
        auto a = torch::empty({kFloats4MiB}), b = torch::empty({kFloats4MiB}), c = torch::empty({kFloats4MiB});
    }
    const std::size_t block = (std::size_t{4} << 20) + 4096; // the tensor, its header, rounded to a page
    EXPECT_EQ(tensorCacheStats().cachedBytes, 2 * block);
    releaseTensorCache();
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U);
    setTensorCacheLimit(0); // nothing is kept
    { auto a = torch::empty({kFloats4MiB}); }
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U);
    setTensorCacheLimit(previous);
}

TEST(TensorCache, OutsideAScopeFreedBlocksAreNotKept) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    ASSERT_EQ(tensorCacheStats().scopes, 0);
    { auto a = torch::empty({kFloats4MiB}); }
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U); // malloc's behaviour
    {
        const TensorCacheScope outer;
        {
            const TensorCacheScope inner;
            { auto a = torch::empty({kFloats4MiB}); }
        }
        EXPECT_GT(tensorCacheStats().cachedBytes, 0U); // the outer scope still keeps it
    }
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U); // released with the last scope
}

TEST(TensorCache, TrainingGivesTheSameEncoderWithAndWithoutItAndEndsWithItEmpty) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    test::TempDir dir;
    const PatchBank bank = test::makeTwoClassBank(32, 64, 3), val = test::makeTwoClassBank(8, 64, 4);
    auto options = [&](const std::string& name) {
        TrainOptions o;
        o.kind = EncoderKind::Vae;
        o.codeSize = 8;
        o.out = dir / (name + ".nicenc");
        o.batchSize = 16; // 64² patches: the first activation is 2 MiB, so the cache takes part
        o.stepsPerEpoch = 3;
        o.epochs = 2;
        o.seed = 5;
        o.compute.device = "cpu";
        o.compute.threads = 1;
        return o;
    };
    const std::size_t previous = setTensorCacheLimit(0);
    const TrainResult plain = trainEncoder(options("plain"), bank, val);
    setTensorCacheLimit(previous);
    const std::uint64_t hits = tensorCacheStats().hits;
    const TrainResult cached = trainEncoder(options("cached"), bank, val);
    EXPECT_GT(tensorCacheStats().hits, hits + 10); // every step after the first reuses its blocks
    EXPECT_EQ(cached.encoder.hash, plain.encoder.hash);
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U); // released when the run ended
}

TEST(TensorCache, CompressionReusesItsBatchesBlocksForTheSameGridAndEndsWithItEmpty) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    test::TempDir dir;
    test::writeSmallSlide(dir / "slide.svs", 23);
    // VAE-type, 64² patches, batches of 16: the first activation is 2 MiB, so the cache takes part. Through the
    // encoder's LibTorch modules (imported Keras encoders, builds without oneDNN): the oneDNN chain that runs the
    // paper's encoders by default keeps its own two activation buffers and allocates no tensors per batch.
    ComputeOptions cpu;
    cpu.device = "cpu";
    cpu.threads = 1;
    auto encoder = [&] {
        const test::OneDnnInferenceOff modules;
        return createEncoder(EncoderKind::Vae, 64, 16, 3, 9, cpu);
    }();
    CompressOptions o;
    o.batchSize = 16;
    o.pipelined = false; // the same batches in both runs, so the same bits
    o.force = true;
    const std::size_t previous = setTensorCacheLimit(0); // keeps nothing: malloc's behaviour
    const CompressResult plain = compressSlide(dir / "slide.svs", *encoder, dir / "plain.h5", o);
    setTensorCacheLimit(previous);
    const std::uint64_t hits = tensorCacheStats().hits;
    const CompressResult cached = compressSlide(dir / "slide.svs", *encoder, dir / "cached.h5", o);
    ASSERT_GT(cached.encodedCells, 4 * o.batchSize);
    EXPECT_GT(tensorCacheStats().hits, hits + 3); // the batches after the first reuse their blocks
    EXPECT_EQ(tensorCacheStats().scopes, 0);
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U); // released when the slide was done
    const LatentGridReader a(dir / "plain.h5"), b(dir / "cached.h5");
    EXPECT_EQ(plain.encodedCells, cached.encodedCells);
    EXPECT_EQ(a.gridHwc(0), b.gridHwc(0));
}

TEST(TensorCache, TiledGradCamReusesItsTilesBlocksAndEndsWithItEmpty) {
    if (!cacheInstalled())
        GTEST_SKIP() << "the tensor cache is not installed here (AddressSanitizer build or NIC_TENSOR_CACHE_MB=0)";
    test::TempDir dir;
    torch::manual_seed(5);
    SlideModelMeta meta; // a max-pooling head: tiles of 128 x 128 x 32 are 2 MiB, so the cache takes part
    meta.config.inputChannels = 32;
    meta.config.filters = 8;
    meta.config.layers = 3;
    meta.config.unstridedLayers = 1;
    meta.config.dense = 8;
    SlideCnn net(meta.config);
    net->eval();
    saveSlideModel(net, meta, dir / "m.pt");
    SlideGrid grid;
    grid.channels = 32;
    grid.rows = grid.cols = 300;
    grid.channelsLast = true;
    const auto values = torch::randn({300, 300, 32});
    grid.data.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
    grid.tissue.assign(300 * 300, 1.0f);
    GradCamOptions o;
    o.device = "cpu";
    o.maxCells = 100 * 100;
    o.tileSize = 128;
    o.tileOverlap = 32;
    const std::size_t previous = setTensorCacheLimit(0); // keeps nothing: malloc's behaviour
    const GradCamResult plain = gradCam(dir / "m.pt", grid, o);
    setTensorCacheLimit(previous);
    const std::uint64_t hits = tensorCacheStats().hits;
    const GradCamResult cached = gradCam(dir / "m.pt", grid, o);
    ASSERT_EQ(cached.tiles, 9); // rows and columns at 0, 96, 172
    EXPECT_GE(tensorCacheStats().hits, hits + 8); // every tile after the first reuses the first one's blocks
    EXPECT_EQ(tensorCacheStats().scopes, 0);
    EXPECT_EQ(tensorCacheStats().cachedBytes, 0U); // released when Grad-CAM returned
    EXPECT_EQ(cached.heatmap, plain.heatmap);
    EXPECT_EQ(cached.output, plain.output);
}

} // namespace
} // namespace nic

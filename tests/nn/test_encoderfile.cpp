// Encoder factory, encoder files (save → load, architecture checks, hashes), the Keras import checked
// against an independent computation, and `nic embed` / `nic import-keras`.
#include "core/base/error.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/encoders.h"
#include "core/imaging/imageio.h"
#include "testsupport.h"

#include <hdf5.h>

#include "nntestsupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace nic {
namespace {

struct KindCase {
    EncoderKind kind;
};

class EveryEncoder : public ::testing::TestWithParam<EncoderKind> {};

TEST_P(EveryEncoder, EncodesToCodeSizeAndSurvivesSaveLoadBitIdentically) {
    const int p = 64, c = 12;
    auto enc = createEncoder(GetParam(), p, c, 4, 11);
    EXPECT_EQ(enc->info().patchSize, p);
    EXPECT_EQ(enc->info().codeSize, c);
    EXPECT_EQ(enc->info().name, toString(GetParam()));
    const auto patches = test::randomPatches(5, p, 3);
    std::vector<float> a(5 * c), b(5 * c);
    enc->encode(patches.data(), 5, a.data());
    for (float v : a)
        EXPECT_TRUE(std::isfinite(v));

    test::TempDir dir;
    const auto file = dir / "enc.nicenc";
    const EncoderInfo saved = saveEncoder(*enc, file);
    EXPECT_EQ(saved.hash.size(), 16U);
    EXPECT_EQ(saved.hash, enc->info().hash);
    auto loaded = loadEncoder(file.string());
    EXPECT_EQ(loaded->info().hash, saved.hash);
    EXPECT_EQ(loaded->info().codeSize, c);
    loaded->encode(patches.data(), 5, b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    EXPECT_EQ(readEncoderInfo(file).hash, saved.hash);
}

INSTANTIATE_TEST_SUITE_P(All, EveryEncoder,
                         ::testing::Values(EncoderKind::Vae, EncoderKind::Contrastive, EncoderKind::Bigan,
                                           EncoderKind::SupervisedTumor, EncoderKind::SupervisedTissue),
                         [](const auto& p) {
                             std::string n = toString(p.param);
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

TEST(EncoderFactory, MeanRgbIsBuiltIn) {
    auto enc = loadEncoder("mean-rgb");
    EXPECT_EQ(enc->info().name, "mean-rgb");
    EXPECT_EQ(enc->info().hash, "builtin");
    EXPECT_EQ(enc->info().codeSize, 3);
    EXPECT_EQ(readEncoderInfo("mean-rgb").name, "mean-rgb");
}

TEST(EncoderFactory, DifferentWeightsGiveDifferentHashes) {
    auto a = createEncoder(EncoderKind::Vae, 32, 8, 0, 1);
    auto b = createEncoder(EncoderKind::Vae, 32, 8, 0, 2);
    auto a2 = createEncoder(EncoderKind::Vae, 32, 8, 0, 1);
    EXPECT_NE(a->info().hash, b->info().hash);
    EXPECT_EQ(a->info().hash, a2->info().hash);
}

TEST(EncoderFactory, AFileThatCannotBeWrittenToTheEndIsAnErrorAndLeavesNothing) {
    // Part of the way through the file (a 1 MiB file size limit under the VAE encoder's 6 MB), as on a full disk.
    test::TempDir dir;
    ComputeOptions cpu;
    cpu.device = "cpu";
    auto enc = createEncoder(EncoderKind::Vae, 32, 8, 0, 1, cpu);
    const auto path = dir / "e.nicenc";
    std::string e;
    {
        const test::FileSizeLimit limit(1 << 20);
        e = test::errorOf<IoError>([&] { saveEncoder(*enc, path); });
    }
    EXPECT_EQ(e, path.string() + ": cannot write encoder file: File too large");
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
    saveEncoder(*enc, path); // without the limit
    EXPECT_EQ(readEncoderInfo(path).hash, enc->info().hash);
}

TEST(EncoderFactory, MissingFileIsAnIoError) {
    try {
        loadEncoder("/nonexistent/enc.nicenc");
        FAIL() << "no exception";
    } catch (const IoError& e) {
        EXPECT_STREQ(e.what(), "/nonexistent/enc.nicenc: no such encoder file");
    }
}

TEST(EncoderFactory, NotAnEncoderFileIsRejected) {
    test::TempDir dir;
    std::ofstream(dir / "junk.nicenc") << "not a torch archive";
    const std::string e = test::errorOf<FormatError>([&] { loadEncoder((dir / "junk.nicenc").string()); });
    EXPECT_EQ(e.rfind((dir / "junk.nicenc").string() + ": cannot read encoder file: ", 0), 0U) << e;
}

TEST(EncoderFactory, UnknownDeviceIsAUsageError) {
    ComputeOptions c;
    c.device = "tpu";
    EXPECT_THROW(configureCompute(c), InvalidArgument);
}

TEST(EncoderFactory, ThreadCountIsApplied) {
    ComputeOptions c;
    c.threads = 1;
    configureCompute(c);
    EXPECT_EQ(computeThreads(), 1);
}

// ------------------------------------------------------------------------- Keras import (real data)

/// Independent reading of a float dataset with the HDF5 C API.
std::vector<float> readH5(hid_t file, const std::string& path, std::vector<hsize_t>* dims = nullptr) {
    hid_t ds = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (ds < 0)
        throw std::runtime_error("missing " + path);
    hid_t sp = H5Dget_space(ds);
    const int rank = H5Sget_simple_extent_ndims(sp);
    std::vector<hsize_t> d(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(sp, d.data(), nullptr);
    std::size_t n = 1;
    for (auto x : d)
        n *= x;
    std::vector<float> v(n);
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Sclose(sp);
    H5Dclose(ds);
    if (dims)
        *dims = d;
    return v;
}

/// The authors' pipeline written out as plain loops: x/127.5 − 1, 2×2 average pooling to 64×64,
/// then 4 × (conv 3×3 stride 2 'valid' → LeakyReLU 0.2 → BN eps 1e-3), flatten (H, W, C), dense.
std::vector<double> referenceForward(const Image& im, const std::string& h5, const std::vector<std::string>& convs,
                                     const std::vector<std::string>& bns, const std::string& dense) {
    hid_t f = H5Fopen(h5.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    int side = 64, ch = 3;
    std::vector<double> x(static_cast<std::size_t>(side * side * ch));
    for (int y = 0; y < side; ++y)
        for (int xx = 0; xx < side; ++xx)
            for (int c = 0; c < 3; ++c) {
                double s = 0;
                for (int dy = 0; dy < 2; ++dy)
                    for (int dx = 0; dx < 2; ++dx)
                        s += im.at(2 * xx + dx, 2 * y + dy)[c] / 127.5 - 1.0;
                x[static_cast<std::size_t>((y * side + xx) * 3 + c)] = s / 4.0;
            }
    for (std::size_t l = 0; l < convs.size(); ++l) {
        std::vector<hsize_t> kd;
        const auto k = readH5(f, convs[l] + "/kernel:0", &kd);
        const auto b = readH5(f, convs[l] + "/bias:0");
        const int out = static_cast<int>(kd[3]);
        const int os = (side - 3) / 2 + 1;
        std::vector<double> y(static_cast<std::size_t>(os * os * out));
        for (int oy = 0; oy < os; ++oy)
            for (int ox = 0; ox < os; ++ox)
                for (int o = 0; o < out; ++o) {
                    double s = b[static_cast<std::size_t>(o)];
                    for (int ky = 0; ky < 3; ++ky)
                        for (int kx = 0; kx < 3; ++kx)
                            for (int i = 0; i < ch; ++i)
                                s += x[static_cast<std::size_t>(((2 * oy + ky) * side + (2 * ox + kx)) * ch + i)] *
                                     k[static_cast<std::size_t>(((ky * 3 + kx) * ch + i) * out + o)];
                    s = s > 0 ? s : 0.2 * s;
                    y[static_cast<std::size_t>((oy * os + ox) * out + o)] = s;
                }
        const auto gamma = readH5(f, bns[l] + "/gamma:0"), beta = readH5(f, bns[l] + "/beta:0");
        const auto mean = readH5(f, bns[l] + "/moving_mean:0"), var = readH5(f, bns[l] + "/moving_variance:0");
        for (std::size_t i = 0; i < y.size(); ++i) {
            const auto o = i % static_cast<std::size_t>(out);
            y[i] = (y[i] - mean[o]) / std::sqrt(var[o] + 1e-3) * gamma[o] + beta[o];
        }
        x = std::move(y);
        side = os;
        ch = out;
    }
    std::vector<hsize_t> wd;
    const auto w = readH5(f, dense + "/kernel:0", &wd);
    const auto b = readH5(f, dense + "/bias:0");
    std::vector<double> e(wd[1]);
    for (std::size_t j = 0; j < wd[1]; ++j) {
        double s = b[j];
        for (std::size_t i = 0; i < wd[0]; ++i)
            s += x[i] * w[i * wd[1] + j];
        e[j] = s;
    }
    H5Fclose(f);
    return e;
}

struct KerasCase {
    const char* file;
    std::vector<std::string> convs, bns;
    std::string dense;
};

class KerasImport : public ::testing::TestWithParam<KerasCase> {};

TEST_P(KerasImport, MatchesAnIndependentComputationOnARealPatch) {
    NIC_REQUIRE_SHARED(std::string("models/nic_encoders/") + GetParam().file);
    NIC_REQUIRE_SHARED("patches/nic_example/example_128.jpg");
    const auto h5 = test::sharedDataDir() / "models/nic_encoders" / GetParam().file;
    const Image patch = readImage(test::sharedDataDir() / "patches/nic_example/example_128.jpg");
    ASSERT_EQ(patch.width, 128);

    test::TempDir dir;
    const EncoderInfo info = importKerasEncoder(h5, dir / "imported.nicenc");
    EXPECT_EQ(info.patchSize, 128);
    EXPECT_EQ(info.codeSize, 128);
    auto enc = loadEncoder((dir / "imported.nicenc").string());
    EXPECT_EQ(enc->info().hash, info.hash);
    const auto got = enc->encode(std::vector<Image>{patch});
    // Its BatchNorms (after each LeakyReLU) fold into the next layer, and the whole encoder runs on oneDNN.
    if (OneDnnChain::available() && oneDnnInferenceEnabled()) {
        // Four convolutions and the Dense layer, and a reorder where oneDNN computes the first convolution.
        EXPECT_EQ(oneDnnSteps(*enc).size(), directconv::available() ? 5U : 6U)
            << "the published encoder ran its LibTorch modules";
    }

    const auto want = referenceForward(patch, h5.string(), GetParam().convs, GetParam().bns, GetParam().dense);
    ASSERT_EQ(got.size(), want.size());
    double maxErr = 0, maxAbs = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        maxErr = std::max(maxErr, std::abs(got[i] - want[i]));
        maxAbs = std::max(maxAbs, std::abs(want[i]));
    }
    EXPECT_LT(maxErr, 1e-4) << "largest |embedding| " << maxAbs;
    EXPECT_GT(maxAbs, 1e-2); // not trivially zero
}

std::vector<std::string> numbered(const std::string& pattern, int from) {
    std::vector<std::string> v;
    for (int i = from; i < from + 4; ++i) {
        std::string s = pattern;
        for (std::size_t pos; (pos = s.find("#")) != std::string::npos;)
            s.replace(pos, 1, std::to_string(i));
        v.push_back(s);
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(
    Published, KerasImport,
    ::testing::Values(KerasCase{"encoder_bigan.h5", numbered("/model_weights/sequential_3/conv2d_#", 10),
                                numbered("/model_weights/sequential_3/batch_normalization_#", 10),
                                "/model_weights/sequential_3/dense_6"},
                      KerasCase{"encoder_multitask-4.h5", numbered("/model_weights/conv2d_#/conv2d_#", 1),
                                numbered("/model_weights/batch_normalization_#/batch_normalization_#", 1),
                                "/model_weights/encoded/encoded"}),
    [](const auto& p) { return std::string(p.param.file[8] == 'b' ? "bigan" : "multitask4"); });

TEST(KerasImportMeanRgb, IsTheMeanOfTheScaledInput) {
    NIC_REQUIRE_SHARED("models/nic_encoders/encoder_mean-rgb.h5");
    NIC_REQUIRE_SHARED("patches/nic_example/example_128.jpg");
    const Image patch = readImage(test::sharedDataDir() / "patches/nic_example/example_128.jpg");
    test::TempDir dir;
    const auto info = importKerasEncoder(test::sharedDataDir() / "models/nic_encoders/encoder_mean-rgb.h5", dir / "m.nicenc");
    EXPECT_EQ(info.codeSize, 3);
    const auto got = loadEncoder((dir / "m.nicenc").string())->encode(std::vector<Image>{patch});
    for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (int y = 0; y < 128; ++y)
            for (int x = 0; x < 128; ++x)
                s += patch.at(x, y)[c] / 127.5 - 1.0;
        EXPECT_NEAR(got[static_cast<std::size_t>(c)], s / (128.0 * 128.0), 1e-5);
    }
}

TEST(KerasImportErrors, NonKerasFileIsRejected) {
    test::TempDir dir;
    std::ofstream(dir / "x.h5") << "plain text";
    EXPECT_THROW(importKerasEncoder(dir / "x.h5", dir / "o.nicenc"), Error);
    EXPECT_FALSE(std::filesystem::exists(dir / "o.nicenc"));
}

// ------------------------------------------------------------------------------------------- CLI

TEST(NeuralCli, ImportThenEmbedPrintsOneRowPerImage) {
    NIC_REQUIRE_SHARED("models/nic_encoders/encoder_bigan.h5");
    NIC_REQUIRE_SHARED("patches/camelyon16_kulinseth/labels.csv");
    if (!std::filesystem::exists(test::nicExecutable()))
        GTEST_SKIP() << "nic executable not built";
    test::TempDir dir;
    const std::string nic = test::nicExecutable().string();
    std::string out, err;
    ASSERT_EQ(test::runCommand(nic + " import-keras '" +
                                   (test::sharedDataDir() / "models/nic_encoders/encoder_bigan.h5").string() + "' --out '" +
                                   (dir / "bigan.nicenc").string() + "'",
                               &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("hash: "), std::string::npos);
    const auto a = test::sharedDataDir() / "patches/nic_example/example_128.jpg";
    const auto b = test::sharedDataDir() / "patches/camelyon16_kulinseth/0/Tumor_001_1_0_4096_2048.png"; // 256 px: resized
    ASSERT_EQ(test::runCommand(nic + " embed --encoder '" + (dir / "bigan.nicenc").string() + "' '" + a.string() + "' '" +
                                   b.string() + "'",
                               &out, &err),
              0)
        << err;
    std::istringstream lines(out);
    std::string header, row1, row2, extra;
    std::getline(lines, header);
    std::getline(lines, row1);
    std::getline(lines, row2);
    EXPECT_FALSE(std::getline(lines, extra));
    EXPECT_EQ(std::count(header.begin(), header.end(), ','), 128);
    EXPECT_EQ(std::count(row1.begin(), row1.end(), ','), 128);
    EXPECT_EQ(row2.rfind(b.string(), 0), 0U);
    EXPECT_EQ(test::runCommand(nic + " embed --encoder /nonexistent.nicenc '" + a.string() + "'", &out, &err), 1);
    EXPECT_NE(err.find("nic: error: /nonexistent.nicenc: no such encoder file"), std::string::npos) << err;
}

} // namespace
} // namespace nic

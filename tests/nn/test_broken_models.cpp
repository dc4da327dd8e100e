// Broken-file corpus for encoder files (robustness issue): an encoder file of ours truncated at many
// lengths and bit-flipped at many places either loads bit-identically (a flip in bytes the archive does not
// use) or is refused with a nic::Error naming the file — never a crash, never a foreign exception type,
// never an encoder that silently computes something else.
#include "core/base/error.h"
#include "core/encoders/nn/encoders.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

namespace nic {
namespace {

void writeBytes(const std::filesystem::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace

TEST(BrokenModels, DamagedEncoderFilesAreRefusedNamingTheFileOrLoadUnchanged) {
    test::TempDir dir;
    const int p = 32, c = 8;
    auto enc = createEncoder(EncoderKind::Vae, p, c, 0, 5);
    const auto good = dir / "good.nicenc";
    const EncoderInfo saved = saveEncoder(*enc, good);
    const std::string bytes = nic::test::readFile(good);
    ASSERT_GT(bytes.size(), 1000U);
    std::vector<std::uint8_t> patch(static_cast<std::size_t>(p * p * 3));
    for (std::size_t i = 0; i < patch.size(); ++i)
        patch[i] = static_cast<std::uint8_t>((i * 37) & 0xFF);
    std::vector<float> want(c), got(c);
    enc->encode(patch.data(), 1, want.data());

    std::vector<std::string> variants;
    std::vector<std::string> names;
    for (const double f : {0.0, 0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99}) {
        variants.push_back(bytes.substr(0, static_cast<std::size_t>(f * static_cast<double>(bytes.size()))));
        names.push_back("cut at " + std::to_string(variants.back().size()));
    }
    std::mt19937_64 rng(9);
    for (int i = 0; i < 48; ++i) {
        std::string v = bytes;
        const std::size_t at = i < 8 ? static_cast<std::size_t>(i) * 7 : rng() % v.size(); // header bytes too
        v[at] = static_cast<char>(v[at] ^ (1 << (i % 8)));
        variants.push_back(std::move(v));
        names.push_back("bit flip at " + std::to_string(at));
    }
    int refused = 0, unchanged = 0;
    for (std::size_t k = 0; k < variants.size(); ++k) {
        SCOPED_TRACE(names[k]);
        const auto path = dir / ("damaged-" + std::to_string(k) + ".nicenc");
        writeBytes(path, variants[k]);
        try {
            auto loaded = loadEncoder(path.string());
            loaded->encode(patch.data(), 1, got.data());
            EXPECT_EQ(loaded->info().hash, saved.hash);
            EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
                << "a damaged file loaded as an encoder that computes something else";
            ++unchanged;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
            ++refused;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not a nic::Error: " << e.what();
        }
    }
    std::printf("[ broken encoder files ] %zu variants of a %zu-byte file: %d refused, %d loaded unchanged\n",
                variants.size(), bytes.size(), refused, unchanged);
    EXPECT_GE(refused, 11); // every truncation
}

} // namespace nic

// Patches' bytes to the encoders' input in the 8 dihedral orders (patchinput.h), and encoders' encodeTransformed:
// every orientation, plain and pooled, vector kernel and table, against the transformed bytes converted by the
// formula; nothing read outside the patches (guard pages); encoders give for a transform what they give for the
// transformed bytes, bit for bit.
#include "core/base/error.h"
#include "core/encoders/encoder.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchinput.h"
#include "core/encoders/nn/torchencoder.h"
#include "core/imaging/dihedral.h"
#include "nntestsupport.h"
#include "testsupport.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace nic {
namespace {

/// For its scope, toPlanar's vector kernel is on or off; the setting before is put back.
using VectorKernel = test::ScopedSwitch<&patchinput::useVectorKernel>;

/// The reference: each patch's bytes transformed (dihedralTransformPatch), then converted value by value by the formula
/// (v / 127.5 − 1; pooled: the 2 × 2 block's byte sum s as s / 510 − 1), into planar [n, 3, S, S].
std::vector<float> reference(const std::vector<std::uint8_t>& nhwc, int n, int p, int k, bool pooled) {
    const std::size_t bytes = static_cast<std::size_t>(p) * p * 3;
    const int s = pooled ? p / 2 : p;
    std::vector<float> out(static_cast<std::size_t>(n) * 3 * s * s);
    std::vector<std::uint8_t> t(bytes);
    for (int i = 0; i < n; ++i) {
        dihedralTransformPatch(nhwc.data() + i * bytes, t.data(), p, k);
        auto at = [&](int y, int x, int c) {
            return static_cast<int>(t[(static_cast<std::size_t>(y) * p + x) * 3 + c]);
        };
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < s; ++y)
                for (int x = 0; x < s; ++x) {
                    const float v = pooled ? static_cast<float>(at(2 * y, 2 * x, c) + at(2 * y, 2 * x + 1, c) +
                                                                at(2 * y + 1, 2 * x, c) + at(2 * y + 1, 2 * x + 1, c)) /
                                                 510.0F
                                           : static_cast<float>(at(y, x, c)) / 127.5F;
                    out[((static_cast<std::size_t>(i) * 3 + c) * s + y) * s + x] = v - 1.0F;
                }
    }
    return out;
}

/// Planar [n, 3, S, S] → channels-last [n, S, S, 3].
std::vector<float> toChannelsLastOrder(const std::vector<float>& planar, int n, int s) {
    std::vector<float> out(planar.size());
    const std::size_t plane = static_cast<std::size_t>(s) * s;
    for (int i = 0; i < n; ++i)
        for (std::size_t j = 0; j < plane; ++j)
            for (int c = 0; c < 3; ++c)
                out[(i * plane + j) * 3 + c] = planar[(static_cast<std::size_t>(i) * 3 + c) * plane + j];
    return out;
}

/// Patches of random bytes, then one whose bytes run through every value 0 … 255 and one whose 2 × 2 blocks sum to
/// every value 0 … 1020 in each channel (the whole range of both conversions), then an all-255 one.
std::vector<std::uint8_t> testPatches(int random, int p, std::uint64_t seed) {
    auto v = test::randomPatches(random, p, seed);
    const std::size_t bytes = static_cast<std::size_t>(p) * p * 3;
    std::vector<std::uint8_t> ramp(bytes), sums(bytes), white(bytes, 255);
    for (std::size_t i = 0; i < bytes; ++i)
        ramp[i] = static_cast<std::uint8_t>((i * 7) & 0xFF);
    int s = 0;
    for (int y = 0; y + 1 < p; y += 2)
        for (int x = 0; x + 1 < p; x += 2)
            for (int c = 0; c < 3; ++c, s = (s + 1) % 1021) {
                const int part[4] = {std::min(s, 255), std::clamp(s - 255, 0, 255), std::clamp(s - 510, 0, 255),
                                     std::clamp(s - 765, 0, 255)};
                sums[(static_cast<std::size_t>(y) * p + x) * 3 + c] = static_cast<std::uint8_t>(part[0]);
                sums[(static_cast<std::size_t>(y) * p + x + 1) * 3 + c] = static_cast<std::uint8_t>(part[1]);
                sums[(static_cast<std::size_t>(y + 1) * p + x) * 3 + c] = static_cast<std::uint8_t>(part[2]);
                sums[(static_cast<std::size_t>(y + 1) * p + x + 1) * 3 + c] = static_cast<std::uint8_t>(part[3]);
            }
    for (const auto* extra : {&ramp, &sums, &white})
        v.insert(v.end(), extra->begin(), extra->end());
    return v;
}

TEST(PatchInput, EveryOrientationIsTheTransformedBytesConvertedBitForBit) {
    // 128 and 64: the vector kernel's sides (multiples of 16), plain and pooled; 24: the table (24 and 12); 2: one
    // pooled value.
    for (const int p : {128, 64, 24, 2})
        for (const bool vector : {true, false}) {
            const VectorKernel scope(vector);
            const int n = 2 + 3;
            const auto nhwc = testPatches(2, p, static_cast<std::uint64_t>(p));
            for (const bool pooled : {false, true}) {
                const int s = pooled ? p / 2 : p;
                for (int k = 0; k < 8; ++k) {
                    const auto expected = reference(nhwc, n, p, k, pooled);
                    std::vector<float> planar(expected.size(), -7.0F), last(expected.size(), -7.0F);
                    patchinput::toPlanar(nhwc.data(), n, p, k, pooled, planar.data());
                    patchinput::toChannelsLast(nhwc.data(), n, p, k, pooled, last.data());
                    const std::string where = "P " + std::to_string(p) + (pooled ? " pooled" : " plain") + ", " +
                                              dihedralName(k) + (vector ? ", vector kernel" : ", table");
                    ASSERT_EQ(planar, expected) << where;
                    ASSERT_EQ(last, toChannelsLastOrder(expected, n, s)) << where;
                }
            }
        }
    if (!patchinput::vectorKernelRuns())
        GTEST_SKIP() << "the table path passed; this CPU has no AVX-512, so the vector kernel was not tested";
}

TEST(PatchInput, RefusesTransformsOutside0To7AndOddPooledSides) {
    const auto nhwc = test::randomPatches(1, 4, 1);
    std::vector<float> out(48);
    EXPECT_THROW(patchinput::toPlanar(nhwc.data(), 1, 4, 8, false, out.data()), InvalidArgument);
    EXPECT_THROW(patchinput::toChannelsLast(nhwc.data(), 1, 4, -1, true, out.data()), InvalidArgument);
    const auto odd = test::randomPatches(1, 3, 1);
    EXPECT_THROW(patchinput::toPlanar(odd.data(), 1, 3, 0, true, out.data()), InvalidArgument);
}

/// `pages` readable pages between two that are not: a read past either end of them ends the process.
class GuardedPages {
public:
    explicit GuardedPages(std::size_t pages) : page_(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))), pages_(pages) {
        base_ = ::mmap(nullptr, (pages + 2) * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base_ == MAP_FAILED)
            throw Error("mmap failed");
        if (::mprotect(base_, page_, PROT_NONE) != 0 || ::mprotect(data() + pages * page_, page_, PROT_NONE) != 0)
            throw Error("mprotect failed");
    }
    ~GuardedPages() { ::munmap(base_, (pages_ + 2) * page_); }
    GuardedPages(const GuardedPages&) = delete;
    GuardedPages& operator=(const GuardedPages&) = delete;
    std::uint8_t* data() const { return static_cast<std::uint8_t*>(base_) + page_; }
    std::size_t bytes() const { return pages_ * page_; }

private:
    std::size_t page_, pages_;
    void* base_ = nullptr;
};

TEST(PatchInput, ReadsNothingOutsideThePatches) {
    // The vector kernel reads four bytes at a pixel; at a patch's last pixel that would be one byte past its end. A
    // 64² patch is 12 288 bytes (three 4 KiB pages), a 128² patch twelve: laid between two unreadable pages, a read
    // outside them ends this test binary.
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    int ran = 0;
    for (const int p : {64, 128}) {
        const std::size_t bytes = static_cast<std::size_t>(p) * p * 3 * 2; // two patches
        if (bytes % page != 0)
            continue; // pages that do not tile the patches (checked below that some size ran)
        ++ran;
        GuardedPages guarded(bytes / page);
        const auto nhwc = test::randomPatches(2, p, 11);
        std::memcpy(guarded.data(), nhwc.data(), bytes);
        for (const bool vector : {true, false}) {
            const VectorKernel scope(vector);
            for (const bool pooled : {false, true}) {
                for (int k = 0; k < 8; ++k) {
                    const auto expected = reference(nhwc, 2, p, k, pooled);
                    std::vector<float> out(expected.size());
                    patchinput::toPlanar(guarded.data(), 2, p, k, pooled, out.data());
                    ASSERT_EQ(out, expected) << p << (pooled ? " pooled, " : " plain, ") << dihedralName(k);
                }
            }
        }
    }
    if (ran == 0)
        GTEST_SKIP() << "pages of " << page << " bytes tile none of the patch sizes";
}

/// Encodes `patches` after transform k both ways: encodeTransformed, and encode of the transformed bytes.
void expectTransformedEncodingsEqual(PatchEncoder& encoder, const std::vector<std::uint8_t>& patches, int n,
                                     const std::string& what) {
    const int p = encoder.info().patchSize, c = encoder.info().codeSize;
    std::vector<std::uint8_t> transformed(patches.size());
    for (int k = 0; k < 8; ++k) {
        dihedralTransformPatches(patches.data(), transformed.data(), n, p, k);
        std::vector<float> direct(static_cast<std::size_t>(n) * c, -9.0F), viaBytes(direct.size(), 9.0F);
        encoder.encodeTransformed(patches.data(), n, k, direct.data());
        encoder.encode(transformed.data(), n, viaBytes.data());
        ASSERT_EQ(direct, viaBytes) << what << ", " << dihedralName(k);
    }
    std::vector<float> out(static_cast<std::size_t>(n) * c);
    EXPECT_THROW(encoder.encodeTransformed(patches.data(), n, 8, out.data()), InvalidArgument) << what;
}

TEST(PatchInput, EncodersGiveForATransformWhatTheyGiveForTheTransformedBytes) {
    const int n = 5;
    MeanRgbEncoder meanRgb(32);
    expectTransformedEncodingsEqual(meanRgb, test::randomPatches(n, 32, 4), n, "mean-rgb");
    for (const bool optimise : {true, false})
        for (const auto kind : {EncoderKind::Vae, EncoderKind::Bigan}) {
            ComputeOptions cpu{"cpu", 1};
            cpu.optimiseInference = optimise;
            auto encoder = createEncoder(kind, 64, 16, 3, 5, cpu);
            const std::string what = std::string(kind == EncoderKind::Vae ? "vae" : "bigan") +
                                     (optimise ? ", optimised" : ", plain modules");
            expectTransformedEncodingsEqual(*encoder, test::randomPatches(n, 64, 6), n, what);
            // The optimised encoders convert for the oneDNN chain (planar input) where this build has oneDNN, the
            // plain modules for LibTorch.
            if (optimise && OneDnnChain::available()) {
                EXPECT_TRUE(dynamic_cast<TorchPatchEncoder&>(*encoder).runsOnOneDnn()) << what;
            }
        }
}

} // namespace
} // namespace nic

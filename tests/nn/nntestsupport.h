#pragma once
// Synthetic patch banks and slides for the encoder tests, grids for the slide-CNN tests (torch-free).
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchbank.h"
#include "core/slidelearning/nn/slidetrainer.h"
#include "core/synth/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <vector>

namespace nic::test {

/// A 1600 × 1200 synthetic slide at 0.5 µm/px written to `path` on one thread (the compression tests' slide).
inline void writeSmallSlide(const std::filesystem::path& path, std::uint64_t seed) {
    SynthSlideParams sp;
    sp.width = 1600;
    sp.height = 1200;
    sp.mpp = 0.5;
    sp.seed = seed;
    SynthWriteOptions w;
    w.threads = 1;
    SynthSlide(sp).write(path, w);
}

/// The same [C, H, W] grid stored [H, W, C], as LatentGridFileSource reads compressed-slide files.
inline SlideGrid channelsLastCopy(const SlideGrid& g) {
    SlideGrid t = g;
    for (int c = 0; c < g.channels; ++c)
        for (int y = 0; y < g.rows; ++y)
            for (int x = 0; x < g.cols; ++x)
                t.data[static_cast<std::size_t>((y * g.cols + x) * g.channels + c)] =
                    g.data[static_cast<std::size_t>((c * g.rows + y) * g.cols + x)];
    t.channelsLast = true;
    return t;
}

/// For its scope, encoders built run their LibTorch modules instead of the oneDNN chain (useOneDnnInference);
/// the setting before is put back at the end, however the scope ends.
class OneDnnInferenceOff {
public:
    OneDnnInferenceOff() : before_(oneDnnInferenceEnabled()) { useOneDnnInference(false); }
    ~OneDnnInferenceOff() { useOneDnnInference(before_); }
    OneDnnInferenceOff(const OneDnnInferenceOff&) = delete;
    OneDnnInferenceOff& operator=(const OneDnnInferenceOff&) = delete;

private:
    bool before_;
};

/// `n` P×P RGB patches (NHWC bytes) of uniformly random bytes, deterministic in `seed`.
inline std::vector<std::uint8_t> randomPatches(int n, int p, std::uint64_t seed) {
    std::vector<std::uint8_t> v(static_cast<std::size_t>(n) * static_cast<std::size_t>(p * p * 3));
    std::mt19937_64 rng(seed);
    for (auto& b : v)
        b = static_cast<std::uint8_t>(rng() & 0xFF);
    return v;
}

/// `n` P×P patches on an 8-wide grid of one "slide", alternating two classes that differ in texture
/// and colour: "normal" (0) is pale pink stroma with faint noise, "tumor" (1) is pink with many dark
/// purple nuclei. Deterministic in `seed`.
inline PatchBank makeTwoClassBank(int n, int p, std::uint64_t seed) {
    PatchBank bank(p);
    bank.setClassNames({"normal", "tumor"});
    const int source = bank.sourceIndex("synthetic");
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int k = 0; k < n; ++k) {
        const int label = k % 2;
        Image im(p, p, 3);
        for (int y = 0; y < p; ++y)
            for (int x = 0; x < p; ++x) {
                auto* px = im.at(x, y);
                const double noise = (u(rng) - 0.5) * 30.0;
                px[0] = static_cast<std::uint8_t>(std::clamp(230.0 + noise, 0.0, 255.0));
                px[1] = static_cast<std::uint8_t>(std::clamp(180.0 + noise, 0.0, 255.0));
                px[2] = static_cast<std::uint8_t>(std::clamp(205.0 + noise, 0.0, 255.0));
            }
        const int nuclei = label == 1 ? 10 + static_cast<int>(u(rng) * 6) : static_cast<int>(u(rng) * 2);
        for (int c = 0; c < nuclei; ++c) {
            const double cx = u(rng) * p, cy = u(rng) * p, r = 2.0 + u(rng) * p / 12.0;
            for (int y = 0; y < p; ++y)
                for (int x = 0; x < p; ++x)
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r) {
                        auto* px = im.at(x, y);
                        px[0] = 90;
                        px[1] = 50;
                        px[2] = 140;
                    }
        }
        bank.add(im, label, source, k % 8, k / 8);
    }
    return bank;
}

} // namespace nic::test

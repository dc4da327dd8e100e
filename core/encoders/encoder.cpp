#include "core/encoders/encoder.h"

#include "core/base/error.h"
#include "core/imaging/dihedral.h"

#include <cstring>

namespace nic {

std::vector<float> PatchEncoder::encode(const std::vector<Image>& patches) {
    const int p = info().patchSize;
    const std::size_t patchBytes = static_cast<std::size_t>(p) * static_cast<std::size_t>(p) * 3U;
    std::vector<std::uint8_t> batch(patchBytes * patches.size());
    for (std::size_t i = 0; i < patches.size(); ++i) {
        const Image& im = patches[i];
        if (im.width != p || im.height != p || im.channels != 3)
            throw InvalidArgument("encoder " + info().name + " expects " + std::to_string(p) + "x" +
                                  std::to_string(p) + " RGB patches, got " + std::to_string(im.width) + "x" +
                                  std::to_string(im.height) + "x" + std::to_string(im.channels));
        std::memcpy(batch.data() + i * patchBytes, im.pixels.data(), patchBytes);
    }
    std::vector<float> out(patches.size() * static_cast<std::size_t>(info().codeSize));
    encode(batch.data(), static_cast<int>(patches.size()), out.data());
    return out;
}

MeanRgbEncoder::MeanRgbEncoder(int patchSize) {
    if (patchSize <= 0)
        throw InvalidArgument("mean-rgb: patch size must be positive");
    info_.name = "mean-rgb";
    info_.hash = "builtin";
    info_.patchSize = patchSize;
    info_.codeSize = 3;
    info_.mpp = 0.5;
    info_.source = "builtin";
}

void PatchEncoder::encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out) {
    checkDihedralIndex(k);
    if (k == 0 || count <= 0) {
        encode(nhwc, count, out);
        return;
    }
    const int p = info().patchSize;
    const std::size_t patchBytes = static_cast<std::size_t>(p) * static_cast<std::size_t>(p) * 3U;
    // The instance's own buffer (one thread at a time per instance), kept for the next calls; a local copy while it is
    // in use, so that an encode() that calls encodeTransformed again cannot overwrite what it reads.
    std::vector<std::uint8_t> transformed = std::move(transformed_);
    transformed.resize(patchBytes * static_cast<std::size_t>(count));
    dihedralTransformPatches(nhwc, transformed.data(), count, p, k);
    encode(transformed.data(), count, out);
    transformed_ = std::move(transformed);
}

void MeanRgbEncoder::encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out) {
    checkDihedralIndex(k);
    encode(nhwc, count, out);
}

void MeanRgbEncoder::encode(const std::uint8_t* nhwc, int count, float* out) {
    const std::size_t pixels = static_cast<std::size_t>(info_.patchSize) * static_cast<std::size_t>(info_.patchSize);
    for (int n = 0; n < count; ++n) {
        const std::uint8_t* p = nhwc + static_cast<std::size_t>(n) * pixels * 3U;
        std::uint64_t sum[3] = {0, 0, 0};
        for (std::size_t i = 0; i < pixels; ++i) {
            sum[0] += p[i * 3 + 0];
            sum[1] += p[i * 3 + 1];
            sum[2] += p[i * 3 + 2];
        }
        for (int c = 0; c < 3; ++c)
            out[static_cast<std::size_t>(n) * 3U + static_cast<std::size_t>(c)] =
                static_cast<float>(static_cast<double>(sum[c]) / (static_cast<double>(pixels) * 255.0));
    }
}

EncoderInstances::EncoderInstances(PatchEncoder& encoder, int count) : all_{&encoder} {
    if (count <= 0)
        count = encoder.preferredConcurrency();
    while (size() < count) {
        auto r = encoder.replicate();
        if (!r)
            break;
        all_.push_back(r.get());
        replicas_.push_back(std::move(r));
    }
}

} // namespace nic

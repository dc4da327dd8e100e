// Fuzzes the encoder files' architecture JSON ("meta/json": encoderMetaFromJson, core/encoders/modelmeta.h), the
// description every encoder is built from. Contract checked: parsing either succeeds or throws nic::Error;
// a parsed description is within the documented limits, serialises (encoderMetaToJson) and parses back
// equal.
#include "core/base/error.h"
#include "core/encoders/modelmeta.h"
#include "fuzz/fuzzsupport.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

bool same(const nic::EncoderMeta& a, const nic::EncoderMeta& b) {
    return a.kind == b.kind && a.name == b.name && a.patchSize == b.patchSize && a.codeSize == b.codeSize &&
           a.classes == b.classes && a.mpp == b.mpp && a.inputScaling == b.inputScaling &&
           a.kerasLayers == b.kerasLayers && a.trainingJson == b.trainingJson;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nic::modellimits;
    using nic::fuzz::fail;
    const std::string text(reinterpret_cast<const char*>(data), size);
    nic::EncoderMeta meta;
    try {
        meta = nic::encoderMetaFromJson(text, "fuzz.nicenc");
    } catch (const nic::Error&) {
        return 0;
    }
    if (meta.patchSize < 1 || meta.patchSize > kMaxPatchSize || meta.codeSize < 1 || meta.codeSize > kMaxChannels ||
        meta.classes < 0 || meta.classes > kMaxClasses || meta.kerasLayers.size() > static_cast<std::size_t>(kMaxLayers))
        fail("accepted a description outside the limits", text);
    if (!same(nic::fuzz::encoderMetaRoundTrip(meta, "fuzz-roundtrip.nicenc"), meta))
        fail("round trip changed the description", text);
    return 0;
}

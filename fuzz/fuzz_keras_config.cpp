// Fuzzes the Keras importer's parsing of the `model_config` attribute (parseKerasModelConfig,
// core/encoders/modelmeta.h): the layer chain, channels, sizes and weight groups importKerasEncoder builds from.
// Contract checked: parsing either succeeds or throws nic::Error; an accepted model is within the
// documented limits, its chain is consistent (each layer's input is the previous layer's output), and
// the encoder description made from it (as the importer does) survives encoderMetaToJson/FromJson.
#include "core/base/error.h"
#include "core/encoders/modelmeta.h"
#include "fuzz/fuzzsupport.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nic::modellimits;
    using nic::fuzz::fail;
    const std::string text(reinterpret_cast<const char*>(data), size);
    nic::KerasModelConfig model;
    try {
        model = nic::parseKerasModelConfig(text, "fuzz.h5");
    } catch (const nic::Error&) {
        return 0;
    }
    if (model.inputSide < 1 || model.inputSide > kMaxPatchSize || model.patchSize < 1 ||
        model.patchSize > kMaxPatchSize || model.codeSize < 1 || model.codeSize > kMaxChannels || model.layers.empty() ||
        model.layers.size() > static_cast<std::size_t>(kMaxLayers) + 1)
        fail("accepted a model outside the limits", text);
    int channels = 3;
    for (const auto& e : model.layers) {
        const auto& l = e.layer;
        if (l.type == nic::KerasLayer::Type::AvgPool2)
            continue;
        if (l.inChannels != (l.type == nic::KerasLayer::Type::Flatten ? l.inChannels : channels))
            fail("inconsistent chain at layer", l.name);
        if (l.type == nic::KerasLayer::Type::Conv2d &&
            (l.kernel < 1 || l.kernel > kMaxKernel || l.stride < 1 || l.stride > kMaxStride))
            fail("accepted a kernel or stride outside the limits", l.name);
        channels = l.outChannels;
    }
    if (channels != model.codeSize)
        fail("code size is not the last layer's output", text);

    nic::EncoderMeta meta;
    meta.kind = "keras";
    meta.name = "keras:fuzz";
    meta.patchSize = model.patchSize;
    meta.codeSize = model.codeSize;
    for (const auto& e : model.layers)
        meta.kerasLayers.push_back(e.layer);
    if (!(nic::fuzz::encoderMetaRoundTrip(meta, "fuzz-import.nicenc").kerasLayers == meta.kerasLayers))
        fail("the imported description changed on the way through encoder metadata", text);
    return 0;
}

// Import of the NIC authors' Keras 2 (TF1) HDF5 encoders, read through core/base/hdf5file.h.
#include "core/base/error.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/torchencoder.h"

#include "core/base/hdf5file.h"
#include "core/encoders/modelmeta.h"
#include <nlohmann/json.hpp>

namespace nic {

using nlohmann::json;

namespace {

torch::Tensor readFloatDataset(const Hdf5File& file, const std::string& path, const std::string& source) {
    auto ds = file.openDataset(path);
    // A weight no layer within modellimits can use is refused before allocating for it.
    long double values = 1;
    for (auto d : ds.shape())
        values *= static_cast<long double>(d);
    if (ds.shape().size() > 4 || values > static_cast<long double>(modellimits::kMaxLayerWeights))
        throw FormatError(source + ": weight " + path + " is larger than any supported layer's");
    auto t = torch::empty(ds.shape(), torch::kFloat);
    ds.read(std::vector<std::int64_t>(ds.shape().size(), 0), ds.shape(), H5Type::Float32, t.data_ptr<float>());
    return t;
}

} // namespace

EncoderInfo importKerasEncoder(const std::filesystem::path& h5, const std::filesystem::path& out) {
    const std::string source = h5.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(h5, ec))
        throw IoError(source + ": no such file");
    if (!Hdf5File::isHdf5(h5))
        throw FormatError(source + ": not an HDF5 file (expected a Keras 2 model saved as .h5)");
    const Hdf5File file(h5, Hdf5File::Mode::ReadOnly);
    if (!file.hasAttribute("model_config"))
        throw FormatError(source + ": not a Keras 2 model file (no model_config attribute)");
    // The configuration (layers, channels, sizes, weight groups) is parsed and range-checked torch-free.
    const KerasModelConfig model = parseKerasModelConfig(file.stringAttribute("model_config"), source);
    const std::string kerasVersion = file.hasAttribute("keras_version") ? file.stringAttribute("keras_version") : "unknown";

    // Keras 2 stores layer L's variable v under /model_weights/L/L/v:0, and the layers of a nested
    // Sequential S under /model_weights/S/L/v:0.
    auto weight = [&](const std::string& group, const std::string& layer, const std::string& var) {
        const std::string path = "/model_weights/" + group + "/" + layer + "/" + var + ":0";
        if (!file.exists(path))
            throw FormatError(source + ": layer '" + layer + "' has no weight '" + var + "' (expected " + path + ")");
        return readFloatDataset(file, path, source);
    };

    EncoderMeta meta;
    meta.kind = "keras";
    meta.name = "keras:" + h5.stem().string();
    meta.mpp = 0.5;
    meta.patchSize = model.patchSize;
    std::vector<KerasLayer> layers;
    std::vector<std::pair<std::size_t, std::vector<torch::Tensor>>> weights; // layer index → tensors
    for (const auto& entry : model.layers) {
        const KerasLayer& l = entry.layer;
        const std::string& group = entry.group;
        const int channels = l.inChannels;
        if (l.type == KerasLayer::Type::Conv2d) {
            auto kernel = weight(group, l.name, "kernel"); // [kh, kw, in, out]
            if (kernel.dim() != 4 || kernel.size(2) != channels || kernel.size(3) != l.outChannels)
                throw FormatError(source + ": layer '" + l.name + "': kernel shape does not match the config");
            std::vector<torch::Tensor> ws{kernel.permute({3, 2, 0, 1}).contiguous()};
            if (l.bias)
                ws.push_back(weight(group, l.name, "bias"));
            weights.emplace_back(layers.size(), ws);
        } else if (l.type == KerasLayer::Type::BatchNorm) {
            auto ones = torch::ones({channels});
            std::vector<torch::Tensor> ws{entry.scale ? weight(group, l.name, "gamma") : ones,
                                          entry.center ? weight(group, l.name, "beta") : torch::zeros({channels}),
                                          weight(group, l.name, "moving_mean"), weight(group, l.name, "moving_variance")};
            weights.emplace_back(layers.size(), ws);
        } else if (l.type == KerasLayer::Type::Dense) {
            auto kernel = weight(group, l.name, "kernel"); // [in, out]
            if (kernel.dim() != 2 || kernel.size(0) != channels || kernel.size(1) != l.outChannels)
                throw FormatError(source + ": layer '" + l.name + "': kernel shape " + c10::str(kernel.sizes()) +
                                  " does not match its input of " + std::to_string(channels) + " features");
            std::vector<torch::Tensor> ws{kernel.t().contiguous()};
            if (l.bias)
                ws.push_back(weight(group, l.name, "bias"));
            weights.emplace_back(layers.size(), ws);
        }
        layers.push_back(l);
    }
    meta.codeSize = model.codeSize;
    meta.kerasLayers = layers;
    json training;
    training["imported_from"] = h5.filename().string();
    training["keras_version"] = kerasVersion;
    training["input_side"] = model.inputSide;
    meta.trainingJson = training.dump();

    KerasChain chain(layers);
    {
        torch::NoGradGuard noGrad;
        for (const auto& [index, ws] : weights) {
            auto& mod = *chain->modules.at(index);
            std::vector<torch::Tensor> targets;
            for (const auto& p : mod.named_parameters(false))
                targets.push_back(p.value());
            if (layers[index].type == KerasLayer::Type::BatchNorm) {
                auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(&mod);
                targets = {bn->weight, bn->bias, bn->running_mean, bn->running_var};
            }
            if (targets.size() != ws.size())
                throw FormatError(source + ": layer '" + layers[index].name + "': unexpected number of weights");
            for (std::size_t i = 0; i < ws.size(); ++i) {
                if (targets[i].sizes() != ws[i].sizes())
                    throw FormatError(source + ": layer '" + layers[index].name + "': weight shape " +
                                      c10::str(ws[i].sizes()) + " where " + c10::str(targets[i].sizes()) +
                                      " is needed");
                targets[i].copy_(ws[i]);
            }
        }
    }
    chain->eval();
    return writeEncoderFile(out, meta, *chain);
}

} // namespace nic

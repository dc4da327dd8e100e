// Import of the NIC authors' Keras 2 (TF1) HDF5 encoders, read through core/hdf5file.h.
#include "core/error.h"
#include "core/nn/encoders.h"
#include "core/nn/torchencoder.h"

#include "core/hdf5file.h"
#include <nlohmann/json.hpp>


namespace nic {

using nlohmann::json;

namespace {

torch::Tensor readFloatDataset(const Hdf5File& file, const std::string& path) {
    auto ds = file.openDataset(path);
    auto t = torch::empty(ds.shape(), torch::kFloat);
    ds.read(std::vector<std::int64_t>(ds.shape().size(), 0), ds.shape(), H5Type::Float32, t.data_ptr<float>());
    return t;
}

struct ParsedModel {
    int inputSide = 0;
    int inputChannels = 3;
    std::vector<std::pair<json, std::string>> layers; ///< (layer JSON, weight group under model_weights)
};

void collectLayers(const json& layers, const std::string& group, ParsedModel& model, const std::string& source) {
    for (const auto& l : layers) {
        const std::string cls = l.at("class_name").get<std::string>();
        const json& cfg = l.at("config");
        if (cls == "Sequential" || cls == "Model") {
            const std::string name = l.contains("name") ? l["name"].get<std::string>() : cfg.value("name", "");
            const json& inner = cfg.is_array() ? cfg : cfg.at("layers");
            collectLayers(inner, name, model, source);
            continue;
        }
        if (cls == "InputLayer") {
            const auto& shape = cfg.at("batch_input_shape");
            if (shape.size() != 4 || shape[1].is_null() || shape[1] != shape[2])
                throw Error(source + ": only square image inputs are supported");
            model.inputSide = shape[1].get<int>();
            model.inputChannels = shape[3].get<int>();
            continue;
        }
        const std::string name = cfg.value("name", l.value("name", ""));
        model.layers.emplace_back(l, group.empty() ? name : group);
    }
}

} // namespace

EncoderInfo importKerasEncoder(const std::filesystem::path& h5, const std::filesystem::path& out) {
    const std::string source = h5.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(h5, ec))
        throw IoError(source + ": no such file");
    const Hdf5File file(h5, Hdf5File::Mode::ReadOnly);
    json config;
    try {
        config = json::parse(file.stringAttribute("model_config"));
    } catch (const json::exception& e) {
        throw Error(source + ": model_config is not valid JSON: " + e.what());
    }
    const std::string kerasVersion = file.hasAttribute("keras_version") ? file.stringAttribute("keras_version") : "unknown";

    ParsedModel model;
    try {
        const std::string top = config.at("class_name").get<std::string>();
        if (top != "Model" && top != "Sequential")
            throw Error(source + ": unsupported model class '" + top + "'");
        const json& cfg = config.at("config");
        collectLayers(cfg.is_array() ? cfg : cfg.at("layers"), "", model, source);
        if (top == "Sequential" && model.inputSide == 0 && !model.layers.empty()) {
            const auto& first = model.layers.front().first.at("config");
            if (first.contains("batch_input_shape")) {
                model.inputSide = first["batch_input_shape"][1].get<int>();
                model.inputChannels = first["batch_input_shape"][3].get<int>();
            }
        }
    } catch (const json::exception& e) {
        throw Error(source + ": unexpected model_config layout: " + e.what());
    }
    if (model.inputSide <= 0 || model.inputChannels != 3)
        throw Error(source + ": the model input must be a square RGB image");

    // Keras 2 stores layer L's variable v under /model_weights/L/L/v:0, and the layers of a nested
    // Sequential S under /model_weights/S/L/v:0.
    auto weight = [&](const std::string& group, const std::string& layer, const std::string& var) {
        const std::string path = "/model_weights/" + group + "/" + layer + "/" + var + ":0";
        if (!file.exists(path))
            throw Error(source + ": layer '" + layer + "' has no weight '" + var + "' (expected " + path + ")");
        return readFloatDataset(file, path);
    };

    // The authors run their 64×64-input encoders on 128×128 patches average-pooled 2×2
    // (add_downsample_to_encoder in their featurize_wsi.py).
    EncoderMeta meta;
    meta.kind = "keras";
    meta.name = "keras:" + h5.stem().string();
    meta.mpp = 0.5;
    std::vector<KerasLayer> layers;
    int side = model.inputSide;
    if (model.inputSide == 64) {
        layers.push_back(KerasLayer{KerasLayer::Type::AvgPool2, "input_downsample"});
        meta.patchSize = 128;
    } else {
        meta.patchSize = model.inputSide;
    }
    int channels = 3;
    bool flat = false;
    std::vector<std::pair<std::size_t, std::vector<torch::Tensor>>> weights; // layer index → tensors
    for (const auto& [lj, group] : model.layers) {
        const std::string cls = lj.at("class_name").get<std::string>();
        const json& c = lj.at("config");
        KerasLayer l;
        l.name = c.value("name", "");
        auto requireLinear = [&] {
            if (c.value("activation", "linear") != "linear")
                throw Error(source + ": layer '" + l.name + "' has activation '" + c.value("activation", "") +
                            "' (only linear is supported)");
        };
        if (cls == "Conv2D") {
            requireLinear();
            const auto k = c.at("kernel_size");
            const auto s = c.at("strides");
            if (k[0] != k[1] || s[0] != s[1])
                throw Error(source + ": layer '" + l.name + "': only square kernels and strides are supported");
            if (c.value("data_format", "channels_last") != "channels_last")
                throw Error(source + ": layer '" + l.name + "': only channels_last is supported");
            if (c.contains("dilation_rate") && c["dilation_rate"][0] != 1)
                throw Error(source + ": layer '" + l.name + "': dilated convolutions are not supported");
            l.type = KerasLayer::Type::Conv2d;
            l.kernel = k[0].get<int>();
            l.stride = s[0].get<int>();
            const std::string pad = c.value("padding", "valid");
            if (pad != "valid" && pad != "same")
                throw Error(source + ": layer '" + l.name + "': unsupported padding '" + pad + "'");
            l.samePadding = pad == "same";
            l.bias = c.value("use_bias", true);
            l.inChannels = channels;
            l.outChannels = c.at("filters").get<int>();
            auto kernel = weight(group, l.name, "kernel"); // [kh, kw, in, out]
            if (kernel.dim() != 4 || kernel.size(2) != channels || kernel.size(3) != l.outChannels)
                throw Error(source + ": layer '" + l.name + "': kernel shape does not match the config");
            std::vector<torch::Tensor> ws{kernel.permute({3, 2, 0, 1}).contiguous()};
            if (l.bias)
                ws.push_back(weight(group, l.name, "bias"));
            weights.emplace_back(layers.size(), ws);
            side = l.samePadding ? (side + l.stride - 1) / l.stride : (side - l.kernel) / l.stride + 1;
            channels = l.outChannels;
        } else if (cls == "LeakyReLU") {
            l.type = KerasLayer::Type::LeakyRelu;
            l.alpha = c.value("alpha", 0.3);
            l.inChannels = l.outChannels = channels;
        } else if (cls == "BatchNormalization") {
            if (flat)
                throw Error(source + ": layer '" + l.name + "': batch normalisation after flatten is not supported");
            const int axis = c.value("axis", -1);
            if (axis != -1 && axis != 3)
                throw Error(source + ": layer '" + l.name + "': only channel-axis batch normalisation is supported");
            l.type = KerasLayer::Type::BatchNorm;
            l.epsilon = c.value("epsilon", 1e-3);
            l.momentum = c.value("momentum", 0.99);
            l.inChannels = l.outChannels = channels;
            const bool scale = c.value("scale", true), center = c.value("center", true);
            auto ones = torch::ones({channels});
            std::vector<torch::Tensor> ws{scale ? weight(group, l.name, "gamma") : ones,
                                          center ? weight(group, l.name, "beta") : torch::zeros({channels}),
                                          weight(group, l.name, "moving_mean"), weight(group, l.name, "moving_variance")};
            weights.emplace_back(layers.size(), ws);
        } else if (cls == "Flatten") {
            l.type = KerasLayer::Type::Flatten;
            channels = channels * side * side;
            side = 1;
            flat = true;
            l.inChannels = l.outChannels = channels;
        } else if (cls == "GlobalAveragePooling2D") {
            l.type = KerasLayer::Type::GlobalAvgPool;
            side = 1;
            flat = true;
            l.inChannels = l.outChannels = channels;
        } else if (cls == "Dense") {
            requireLinear();
            if (!flat)
                throw Error(source + ": layer '" + l.name + "': dense layer on a spatial input is not supported");
            l.type = KerasLayer::Type::Dense;
            l.bias = c.value("use_bias", true);
            l.inChannels = channels;
            l.outChannels = c.at("units").get<int>();
            auto kernel = weight(group, l.name, "kernel"); // [in, out]
            if (kernel.dim() != 2 || kernel.size(0) != channels || kernel.size(1) != l.outChannels)
                throw Error(source + ": layer '" + l.name + "': kernel shape " + c10::str(kernel.sizes()) +
                            " does not match its input of " + std::to_string(channels) + " features");
            std::vector<torch::Tensor> ws{kernel.t().contiguous()};
            if (l.bias)
                ws.push_back(weight(group, l.name, "bias"));
            weights.emplace_back(layers.size(), ws);
            channels = l.outChannels;
        } else {
            throw Error(source + ": unsupported Keras layer '" + l.name + "' of class " + cls);
        }
        layers.push_back(l);
    }
    if (!flat)
        throw Error(source + ": the model does not end in a vector (no flatten or global pooling)");
    meta.codeSize = channels;
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
                throw Error(source + ": layer '" + layers[index].name + "': unexpected number of weights");
            for (std::size_t i = 0; i < ws.size(); ++i) {
                if (targets[i].sizes() != ws[i].sizes())
                    throw Error(source + ": layer '" + layers[index].name + "': weight shape " +
                                c10::str(ws[i].sizes()) + " where " + c10::str(targets[i].sizes()) + " is needed");
                targets[i].copy_(ws[i]);
            }
        }
    }
    chain->eval();
    return writeEncoderFile(out, meta, *chain);
}

} // namespace nic

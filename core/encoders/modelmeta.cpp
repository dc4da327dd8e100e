// Torch-free parsing of encoder metadata and Keras model_config (see modelmeta.h).
#include "core/encoders/modelmeta.h"

#include "core/base/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>

namespace nic {

using nlohmann::json;
using namespace modellimits;

namespace {

/// A JSON number as an int; nullopt when it is a number that is not an integer in int's range (the
/// conversion nlohmann would do is then undefined or truncating). A non-number throws json::type_error
/// as get<int>() does.
std::optional<int> exactInt(const json& v) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(INT_MAX))
            return std::nullopt;
        return static_cast<int>(u);
    }
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i < INT_MIN || i > INT_MAX)
            return std::nullopt;
        return static_cast<int>(i);
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!(d >= INT_MIN && d <= INT_MAX) || d != std::floor(d))
            return std::nullopt;
        return static_cast<int>(d);
    }
    return v.get<int>(); // throws type_error
}

std::string range(long long lo, long long hi) { return " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")"; }

/// `v` as an int in [lo, hi]; otherwise Error "<where>: <field> <value> is out of range (lo..hi)".
int intIn(const json& v, long long lo, long long hi, const std::string& where, const std::string& field) {
    const auto i = exactInt(v);
    if (!i)
        throw FormatError(where + ": " + field + " " + v.dump() + " is not a 32-bit integer");
    if (*i < lo || *i > hi)
        throw FormatError(where + ": " + field + " " + v.dump() + range(lo, hi));
    return *i;
}

/// A double that must be finite (JSON cannot store NaN or infinity, so a metadata value that is not would
/// not survive a save).
double finite(double v, const std::string& where, const std::string& field) {
    if (!std::isfinite(v))
        throw FormatError(where + ": " + field + " is not a finite number");
    return v;
}

/// Deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count). nlohmann
/// parses iteratively but copies, compares and dumps values recursively, so a text like [[[[…]]]] nested
/// tens of thousands deep overflows the stack: such texts are refused before parsing.
int jsonNesting(const std::string& text) {
    int depth = 0, deepest = 0;
    bool inString = false, escaped = false;
    for (const char ch : text) {
        if (inString) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                inString = false;
        } else if (ch == '"') {
            inString = true;
        } else if (ch == '[' || ch == '{') {
            deepest = std::max(deepest, ++depth);
        } else if (ch == ']' || ch == '}') {
            --depth;
        }
    }
    return deepest;
}

void checkNesting(const std::string& text, const std::string& where) {
    if (jsonNesting(text) > kMaxJsonNesting)
        throw FormatError(where + " nests arrays or objects more than " + std::to_string(kMaxJsonNesting) + " levels deep");
}

void checkCount(long long v, long long lo, long long hi, const std::string& where, const std::string& field) {
    if (v < lo || v > hi)
        throw FormatError(where + ": " + field + " " + std::to_string(v) + range(lo, hi));
}

} // namespace

const char* toString(KerasLayer::Type type) {
    switch (type) {
    case KerasLayer::Type::AvgPool2: return "avgpool2";
    case KerasLayer::Type::Conv2d: return "conv2d";
    case KerasLayer::Type::LeakyRelu: return "leakyrelu";
    case KerasLayer::Type::BatchNorm: return "batchnorm";
    case KerasLayer::Type::Flatten: return "flatten";
    case KerasLayer::Type::Dense: return "dense";
    case KerasLayer::Type::GlobalAvgPool: return "globalavgpool";
    }
    return "?";
}

bool parseKerasLayerType(const std::string& text, KerasLayer::Type& type) {
    for (auto t : {KerasLayer::Type::AvgPool2, KerasLayer::Type::Conv2d, KerasLayer::Type::LeakyRelu,
                   KerasLayer::Type::BatchNorm, KerasLayer::Type::Flatten, KerasLayer::Type::Dense,
                   KerasLayer::Type::GlobalAvgPool})
        if (text == toString(t)) {
            type = t;
            return true;
        }
    return false;
}

// ---------------------------------------------------------------------------------------- encoder meta

std::string encoderMetaToJson(const EncoderMeta& m) {
    json j;
    j["format"] = "nic-encoder";
    j["version"] = 1;
    j["kind"] = m.kind;
    j["name"] = m.name;
    j["patch_size"] = m.patchSize;
    j["code_size"] = m.codeSize;
    j["classes"] = m.classes;
    j["mpp"] = m.mpp;
    j["input_scaling"] = m.inputScaling;
    if (m.kind == "keras") {
        auto layers = json::array();
        for (const auto& l : m.kerasLayers) {
            json jl;
            jl["type"] = toString(l.type);
            jl["name"] = l.name;
            jl["in"] = l.inChannels;
            jl["out"] = l.outChannels;
            jl["kernel"] = l.kernel;
            jl["stride"] = l.stride;
            jl["same_padding"] = l.samePadding;
            jl["bias"] = l.bias;
            jl["alpha"] = l.alpha;
            jl["epsilon"] = l.epsilon;
            jl["momentum"] = l.momentum;
            layers.push_back(jl);
        }
        j["keras_layers"] = layers;
    }
    j["training"] = json::parse(m.trainingJson.empty() ? std::string("{}") : m.trainingJson);
    return j.dump();
}

namespace {

/// Ranges of one stored Keras layer (what KerasChain allocates from).
void checkKerasLayer(const KerasLayer& l, std::size_t index, const std::string& source) {
    const std::string where = source + ": keras_layers[" + std::to_string(index) + "]";
    switch (l.type) {
    case KerasLayer::Type::AvgPool2:
        return;
    case KerasLayer::Type::Conv2d:
        checkCount(l.inChannels, 1, kMaxChannels, where, "in");
        checkCount(l.outChannels, 1, kMaxChannels, where, "out");
        checkCount(l.kernel, 1, kMaxKernel, where, "kernel");
        checkCount(l.stride, 1, kMaxStride, where, "stride");
        checkCount(static_cast<long long>(l.kernel) * l.kernel * l.inChannels * l.outChannels, 1, kMaxLayerWeights,
                   where, "weight count (kernel² × in × out)");
        return;
    case KerasLayer::Type::BatchNorm:
        checkCount(l.inChannels, 1, kMaxChannels, where, "in");
        checkCount(l.outChannels, l.inChannels, l.inChannels, where, "out");
        finite(l.epsilon, where, "epsilon");
        finite(l.momentum, where, "momentum");
        return;
    case KerasLayer::Type::Dense:
        checkCount(l.inChannels, 1, kMaxFeatures, where, "in");
        checkCount(l.outChannels, 1, kMaxChannels, where, "out");
        checkCount(static_cast<long long>(l.inChannels) * l.outChannels, 1, kMaxLayerWeights, where,
                   "weight count (in × out)");
        return;
    case KerasLayer::Type::LeakyRelu:
        finite(l.alpha, where, "alpha");
        [[fallthrough]];
    case KerasLayer::Type::Flatten:
    case KerasLayer::Type::GlobalAvgPool:
        checkCount(l.inChannels, 1, kMaxFeatures, where, "in");
        checkCount(l.outChannels, 1, kMaxFeatures, where, "out");
        return;
    }
}

} // namespace

EncoderMeta encoderMetaFromJson(const std::string& text, const std::string& source) {
    EncoderMeta m;
    checkNesting(text, source + ": malformed encoder metadata: the JSON");
    try {
        const json j = json::parse(text);
        if (j.value("format", "") != "nic-encoder")
            throw FormatError(source + ": not a NIC encoder file (metadata format is not 'nic-encoder')");
        const json version = j.value("version", json(0));
        if (version != 1)
            throw FormatError(source + ": unsupported encoder file version " + version.dump());
        m.kind = j.at("kind").get<std::string>();
        m.name = j.value("name", m.kind);
        m.patchSize = intIn(j.at("patch_size"), INT_MIN, INT_MAX, source, "patch_size");
        m.codeSize = intIn(j.at("code_size"), INT_MIN, INT_MAX, source, "code_size");
        m.classes = j.contains("classes") ? intIn(j["classes"], INT_MIN, INT_MAX, source, "classes") : 0;
        m.mpp = finite(j.value("mpp", 0.5), source, "mpp");
        m.inputScaling = j.value("input_scaling", "");
        if (m.inputScaling != "uint8/127.5-1")
            throw FormatError(source + ": unsupported input scaling '" + m.inputScaling + "'");
        if (j.contains("training"))
            m.trainingJson = j["training"].dump();
        if (m.kind == "keras") {
            const json& layers = j.at("keras_layers");
            if (!layers.is_array())
                throw FormatError(source + ": keras_layers is not a list");
            checkCount(static_cast<long long>(layers.size()), 1, kMaxLayers, source, "number of keras_layers");
            for (const auto& jl : layers) {
                KerasLayer l;
                if (!parseKerasLayerType(jl.at("type").get<std::string>(), l.type))
                    throw FormatError(source + ": unknown layer type '" + jl.at("type").get<std::string>() + "'");
                l.name = jl.value("name", "");
                const std::string where = source + ": keras_layers[" + std::to_string(m.kerasLayers.size()) + "]";
                l.inChannels = intIn(jl.at("in"), INT_MIN, INT_MAX, where, "in");
                l.outChannels = intIn(jl.at("out"), INT_MIN, INT_MAX, where, "out");
                l.kernel = intIn(jl.at("kernel"), INT_MIN, INT_MAX, where, "kernel");
                l.stride = intIn(jl.at("stride"), INT_MIN, INT_MAX, where, "stride");
                l.samePadding = jl.at("same_padding").get<bool>();
                l.bias = jl.at("bias").get<bool>();
                l.alpha = finite(jl.at("alpha").get<double>(), where, "alpha");
                l.epsilon = finite(jl.at("epsilon").get<double>(), where, "epsilon");
                l.momentum = finite(jl.at("momentum").get<double>(), where, "momentum");
                checkKerasLayer(l, m.kerasLayers.size(), source);
                m.kerasLayers.push_back(l);
            }
            if (m.patchSize <= 0 || m.codeSize <= 0)
                throw FormatError(source + ": invalid patch or code size in the metadata");
        } else if (m.kind == "supervised-tissue" && m.classes < 2) {
            throw FormatError(source + ": supervised-tissue encoder without a class count");
        }
    } catch (const json::exception& e) {
        throw FormatError(source + ": malformed encoder metadata: " + e.what());
    }
    if (m.kind != "keras" && m.kind != "vae" && m.kind != "contrastive" && m.kind != "bigan" &&
        m.kind != "supervised-tumor" && m.kind != "supervised-tissue") // the kinds of parseEncoderKind (core/encoders/nn)
        throw FormatError(source + ": unknown encoder kind '" + m.kind + "'");
    // Sizes of the network built from this description.
    checkCount(m.patchSize, 1, kMaxPatchSize, source, "patch_size");
    checkCount(m.codeSize, 1, kMaxChannels, source, "code_size");
    checkCount(m.classes, 0, kMaxClasses, source, "classes");
    return m;
}

// ----------------------------------------------------------------------------------- Keras model_config

namespace {

struct ParsedModel {
    int inputSide = 0;
    int inputChannels = 3;
    std::vector<std::pair<const json*, std::string>> layers; ///< (layer JSON, weight group under model_weights)
};

/// The input of a batch_input_shape [null, side, side, channels].
void readInputShape(const json& shape, ParsedModel& model, const std::string& source) {
    if (!shape.is_array() || shape.size() != 4 || shape[1].is_null() || shape[1] != shape[2])
        throw FormatError(source + ": only square image inputs are supported");
    model.inputSide = intIn(shape[1], 1, kMaxPatchSize, source, "input side in batch_input_shape");
    model.inputChannels = intIn(shape[3], 1, kMaxChannels, source, "input channels in batch_input_shape");
}

void collectLayers(const json& layers, const std::string& group, ParsedModel& model, const std::string& source,
                   int depth) {
    if (depth > kMaxNesting)
        throw FormatError(source + ": model_config nests more than " + std::to_string(kMaxNesting) + " models");
    if (!layers.is_array())
        throw FormatError(source + ": unexpected model_config layout: the layers are not a list");
    for (const auto& l : layers) {
        const std::string cls = l.at("class_name").get<std::string>();
        const json& cfg = l.at("config");
        if (cls == "Sequential" || cls == "Model") {
            const std::string name = l.contains("name") ? l["name"].get<std::string>() : cfg.value("name", "");
            const json& inner = cfg.is_array() ? cfg : cfg.at("layers");
            collectLayers(inner, name, model, source, depth + 1);
            continue;
        }
        if (cls == "InputLayer") {
            readInputShape(cfg.at("batch_input_shape"), model, source);
            continue;
        }
        if (model.layers.size() >= static_cast<std::size_t>(kMaxLayers))
            throw FormatError(source + ": model_config has more than " + std::to_string(kMaxLayers) + " layers");
        const std::string name = cfg.value("name", l.value("name", ""));
        model.layers.emplace_back(&l, group.empty() ? name : group);
    }
}

/// A Keras [a, b] pair that must be square (a == b); returns a.
const json& squarePair(const json& c, const char* key, const std::string& where) {
    const json& v = c.at(key);
    if (!v.is_array() || v.size() != 2)
        throw FormatError(where + ": " + key + " is not a list of two integers");
    return v[0];
}

/// The output shape of the layers read so far: spatial side and channels, or a vector (`flat`: side 1).
struct FlowShape {
    long long side = 0;
    long long channels = 3;
    bool flat = false;
};

/// Refuses a layer with a non-linear activation (the importer has separate activation layers only).
void requireLinear(const json& c, const KerasLayer& l, const std::string& source) {
    if (c.value("activation", "linear") != "linear")
        throw FormatError(source + ": layer '" + l.name + "' has activation '" + c.value("activation", "") +
                    "' (only linear is supported)");
}

/// A Conv2D layer's configuration `c` into `l`, checked against the shape it is applied to.
void readConv2d(const json& c, KerasLayer& l, FlowShape& shape, const std::string& source, const std::string& where) {
    requireLinear(c, l, source);
    const json& k = squarePair(c, "kernel_size", where);
    const json& s = squarePair(c, "strides", where);
    if (c["kernel_size"][0] != c["kernel_size"][1] || c["strides"][0] != c["strides"][1])
        throw FormatError(source + ": layer '" + l.name + "': only square kernels and strides are supported");
    if (c.value("data_format", "channels_last") != "channels_last")
        throw FormatError(source + ": layer '" + l.name + "': only channels_last is supported");
    if (c.contains("dilation_rate")) {
        const json& d = c["dilation_rate"];
        if (!d.is_array() || d.empty() || d[0] != 1)
            throw FormatError(source + ": layer '" + l.name + "': dilated convolutions are not supported");
    }
    l.type = KerasLayer::Type::Conv2d;
    l.kernel = intIn(k, 1, kMaxKernel, where, "kernel_size");
    l.stride = intIn(s, 1, kMaxStride, where, "strides");
    const std::string pad = c.value("padding", "valid");
    if (pad != "valid" && pad != "same")
        throw FormatError(source + ": layer '" + l.name + "': unsupported padding '" + pad + "'");
    l.samePadding = pad == "same";
    l.bias = c.value("use_bias", true);
    l.inChannels = static_cast<int>(shape.channels);
    if (shape.flat)
        throw FormatError(where + ": convolution after flatten is not supported");
    l.outChannels = intIn(c.at("filters"), 1, kMaxChannels, where, "filters");
    checkCount(static_cast<long long>(l.kernel) * l.kernel * l.inChannels * l.outChannels, 1,
               kMaxLayerWeights, where, "weight count (kernel² × in × filters)");
    if (!l.samePadding && l.kernel > shape.side)
        throw FormatError(where + ": kernel_size " + std::to_string(l.kernel) +
                    " is larger than its input of side " + std::to_string(shape.side));
    shape.side = l.samePadding ? (shape.side + l.stride - 1) / l.stride : (shape.side - l.kernel) / l.stride + 1;
    shape.channels = l.outChannels;
}

/// A BatchNormalization layer's configuration `c` into `entry` (channel axis only, before any flatten).
void readBatchNorm(const json& c, KerasConfigLayer& entry, const FlowShape& shape, const std::string& source,
                   const std::string& where) {
    KerasLayer& l = entry.layer;
    if (shape.flat)
        throw FormatError(source + ": layer '" + l.name + "': batch normalisation after flatten is not supported");
    const int axis = c.contains("axis") ? intIn(c["axis"], INT_MIN, INT_MAX, where, "axis") : -1;
    if (axis != -1 && axis != 3)
        throw FormatError(source + ": layer '" + l.name + "': only channel-axis batch normalisation is supported");
    l.type = KerasLayer::Type::BatchNorm;
    l.epsilon = finite(c.value("epsilon", 1e-3), where, "epsilon");
    l.momentum = finite(c.value("momentum", 0.99), where, "momentum");
    l.inChannels = l.outChannels = static_cast<int>(shape.channels);
    entry.scale = c.value("scale", true);
    entry.center = c.value("center", true);
}

/// A Dense layer's configuration `c` into `l` (on a vector only).
void readDense(const json& c, KerasLayer& l, FlowShape& shape, const std::string& source, const std::string& where) {
    requireLinear(c, l, source);
    if (!shape.flat)
        throw FormatError(source + ": layer '" + l.name + "': dense layer on a spatial input is not supported");
    l.type = KerasLayer::Type::Dense;
    l.bias = c.value("use_bias", true);
    l.inChannels = static_cast<int>(shape.channels);
    l.outChannels = intIn(c.at("units"), 1, kMaxChannels, where, "units");
    checkCount(static_cast<long long>(l.inChannels) * l.outChannels, 1, kMaxLayerWeights, where,
               "weight count (in × units)");
    shape.channels = l.outChannels;
}

/// One layer of the model (its JSON `lj`, in group `group`), applied to `shape`. json::exception for a
/// malformed layout, Error for what the importer does not support.
KerasConfigLayer readLayer(const json& lj, const std::string& group, FlowShape& shape, const std::string& source) {
    const std::string cls = lj.at("class_name").get<std::string>();
    const json& c = lj.at("config");
    KerasConfigLayer entry;
    entry.group = group;
    KerasLayer& l = entry.layer;
    l.name = c.value("name", "");
    const std::string where = source + ": layer '" + l.name + "'";
    if (cls == "Conv2D") {
        readConv2d(c, l, shape, source, where);
    } else if (cls == "LeakyReLU") {
        l.type = KerasLayer::Type::LeakyRelu;
        l.alpha = finite(c.value("alpha", 0.3), where, "alpha");
        l.inChannels = l.outChannels = static_cast<int>(shape.channels);
    } else if (cls == "BatchNormalization") {
        readBatchNorm(c, entry, shape, source, where);
    } else if (cls == "Flatten") {
        l.type = KerasLayer::Type::Flatten;
        shape.channels = shape.channels * shape.side * shape.side; // ≤ 65536 × 4096² before the check: no overflow
        checkCount(shape.channels, 1, kMaxFeatures, where, "flattened feature count");
        shape.side = 1;
        shape.flat = true;
        l.inChannels = l.outChannels = static_cast<int>(shape.channels);
    } else if (cls == "GlobalAveragePooling2D") {
        l.type = KerasLayer::Type::GlobalAvgPool;
        shape.side = 1;
        shape.flat = true;
        l.inChannels = l.outChannels = static_cast<int>(shape.channels);
    } else if (cls == "Dense") {
        readDense(c, l, shape, source, where);
    } else {
        throw FormatError(source + ": unsupported Keras layer '" + l.name + "' of class " + cls);
    }
    return entry;
}

} // namespace

KerasModelConfig parseKerasModelConfig(const std::string& text, const std::string& source) {
    checkNesting(text, source + ": model_config");
    json config;
    try {
        config = json::parse(text);
    } catch (const json::exception& e) {
        throw FormatError(source + ": model_config is not valid JSON: " + e.what());
    }

    ParsedModel model;
    try {
        const std::string top = config.at("class_name").get<std::string>();
        if (top != "Model" && top != "Sequential")
            throw FormatError(source + ": unsupported model class '" + top + "'");
        const json& cfg = config.at("config");
        collectLayers(cfg.is_array() ? cfg : cfg.at("layers"), "", model, source, 0);
        if (top == "Sequential" && model.inputSide == 0 && !model.layers.empty()) {
            const auto& first = model.layers.front().first->at("config");
            if (first.contains("batch_input_shape"))
                readInputShape(first["batch_input_shape"], model, source);
        }
    } catch (const json::exception& e) {
        throw FormatError(source + ": unexpected model_config layout: " + e.what());
    }
    if (model.inputSide <= 0 || model.inputChannels != 3)
        throw FormatError(source + ": the model input must be a square RGB image");

    // The authors run their 64×64-input encoders on 128×128 patches average-pooled 2×2
    // (add_downsample_to_encoder in their featurize_wsi.py).
    KerasModelConfig out;
    out.inputSide = model.inputSide;
    if (model.inputSide == 64) {
        out.layers.push_back(KerasConfigLayer{KerasLayer{KerasLayer::Type::AvgPool2, "input_downsample"}, ""});
        out.patchSize = 128;
    } else {
        out.patchSize = model.inputSide;
    }
    FlowShape shape;
    shape.side = model.inputSide;
    try {
        for (const auto& [layerJson, group] : model.layers)
            out.layers.push_back(readLayer(*layerJson, group, shape, source));
    } catch (const json::exception& e) {
        throw FormatError(source + ": unexpected model_config layout: " + e.what());
    }
    if (!shape.flat)
        throw FormatError(source + ": the model does not end in a vector (no flatten or global pooling)");
    out.codeSize = static_cast<int>(shape.channels);
    checkCount(out.codeSize, 1, kMaxChannels, source, "code size (features of the last layer)");
    return out;
}

} // namespace nic

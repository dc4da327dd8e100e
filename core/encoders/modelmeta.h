#pragma once
// Torch-free parsing of model descriptions that come from files: the architecture JSON of encoder files
// ("meta/json") and the `model_config` attribute of the NIC authors' Keras 2 HDF5 encoders. The LibTorch
// code (core/encoders/nn/) builds modules from what these return; the fuzz harnesses call them directly.
//
// Every value that later sizes an allocation or a network (patch size, channels, kernel, stride,
// filters, units, layer count, …) is range-checked here, so a hostile file is refused with a FormatError
// naming the file and the field before anything is built.
#include <string>
#include <vector>

namespace nic {

/// Limits on values read from model files (far above the paper's models: P = 128, C ≤ 512).
namespace modellimits {
constexpr int kMaxPatchSize = 4096;                 ///< P, and the Keras input side
constexpr int kMaxChannels = 65536;                 ///< conv filters, dense units, code size
constexpr long long kMaxFeatures = 1LL << 24;       ///< a flattened feature vector
constexpr long long kMaxLayerWeights = 1LL << 28;   ///< weights of one conv or dense layer (1 GiB of float)
constexpr int kMaxKernel = 64;
constexpr int kMaxStride = 64;
constexpr int kMaxLayers = 1024;
constexpr int kMaxNesting = 16;                     ///< nested Sequential/Model levels in model_config
constexpr int kMaxClasses = 1024;
constexpr int kMaxJsonNesting = 100;                ///< arrays/objects inside each other in a JSON text
} // namespace modellimits

/// One layer of an imported Keras encoder (a linear chain of these).
struct KerasLayer {
    enum class Type { AvgPool2, Conv2d, LeakyRelu, BatchNorm, Flatten, Dense, GlobalAvgPool };
    Type type = Type::Conv2d;
    std::string name;
    int inChannels = 0, outChannels = 0; ///< conv: channels; dense: features
    int kernel = 3, stride = 1;
    bool samePadding = false; ///< TF 'same' (asymmetric for even sizes: the extra row/column goes bottom/right)
    bool bias = true;
    double alpha = 0.3;      ///< LeakyReLU slope
    double epsilon = 1e-3;   ///< BN
    double momentum = 0.99;  ///< BN, Keras convention (weight of the old running value)
    bool operator==(const KerasLayer&) const = default;
};
const char* toString(KerasLayer::Type type);
bool parseKerasLayerType(const std::string& text, KerasLayer::Type& type);

/// Architecture of a saved encoder; stored as JSON ("meta/json") in the encoder file.
struct EncoderMeta {
    std::string kind;        ///< "vae", "contrastive", "bigan", "supervised-tumor", "supervised-tissue", "keras"
    std::string name;        ///< display name (kind, or "keras:<file stem>")
    int patchSize = 128;     ///< P
    int codeSize = 128;      ///< C
    int classes = 0;         ///< supervised-tissue: K (informational for the others)
    double mpp = 0.5;
    std::string inputScaling = "uint8/127.5-1"; ///< the only scaling implemented
    std::vector<KerasLayer> kerasLayers;       ///< kind "keras" only
    std::string trainingJson = "{}";           ///< free-form record of how it was trained / imported
};

std::string encoderMetaToJson(const EncoderMeta& meta);
/// Parses and validates; `source` names the file in error messages. Throws FormatError.
EncoderMeta encoderMetaFromJson(const std::string& json, const std::string& source);

/// One layer of a parsed Keras model_config, in chain order.
struct KerasConfigLayer {
    KerasLayer layer;      ///< with in/out channels worked out along the chain
    std::string group;     ///< its weights: /model_weights/<group>/<layer.name>/<var>:0 ("" for added layers)
    bool scale = true;     ///< BatchNorm: has gamma
    bool center = true;    ///< BatchNorm: has beta
};

/// What importKerasEncoder needs from `model_config`.
struct KerasModelConfig {
    int inputSide = 0;     ///< of the Keras model (64 or 128 for the authors' encoders)
    int patchSize = 0;     ///< P of the imported encoder (128 when the model takes 64×64 after 2×2 pooling)
    int codeSize = 0;      ///< C: features out of the last layer
    std::vector<KerasConfigLayer> layers; ///< including the added 2×2 input pooling when inputSide is 64
};

/// Parses the text of a Keras 2 `model_config` attribute (a Model or Sequential of conv, LeakyReLU, BN,
/// flatten, dense and global average pooling layers). Pure: reads no weights. `source` names the file in
/// error messages. Throws FormatError.
KerasModelConfig parseKerasModelConfig(const std::string& text, const std::string& source);

} // namespace nic

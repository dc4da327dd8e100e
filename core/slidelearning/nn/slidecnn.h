#pragma once
// The slide-level CNN of the paper's §8.2, in LibTorch. Internal to core_nn and its tests (it includes
// torch/torch.h); everything else goes through slidetrainer.h and gradcam.h.
//
// Block k (1-based): depthwise 3×3 conv (stride 2, or 1 for the last `unstridedLayers` blocks, padding
// 1, no bias) → pointwise 1×1 conv to `filters` (no bias; BN follows) → BN → LeakyReLU(0.2) →
// Dropout2d(dropout). Then the head (slidetrainer.h, GlobalPooling): a global max or average pooling, or
// the paper's flatten of the last R × R crop's map; dense `dense` → BN → LeakyReLU(0.2), and one linear
// output unit: a logit for classification (the sigmoid lives in the loss, which is equivalent and
// numerically safer), the standardised value for regression.
// L2 regularisation is the explicit penalty l2 · Σ w² over conv and dense weights (Keras'
// kernel_regularizer semantics), returned by l2Penalty().
#include "core/slidelearning/cropsampler.h"
#include "core/slidelearning/nn/slidetrainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <vector>

namespace nic {

/// One depthwise-separable block.
struct SeparableBlockImpl : torch::nn::Module {
    SeparableBlockImpl(int in, int out, int stride, double dropout);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Conv2d depthwise{nullptr};
    torch::nn::Conv2d pointwise{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    torch::nn::Dropout2d drop{nullptr};
};
TORCH_MODULE(SeparableBlock);

struct SlideCnnImpl : torch::nn::Module {
    explicit SlideCnnImpl(const SlideCnnConfig& config);

    /// [N, C, H, W] → [N] (logit or standardised value). Any H, W ≥ 1 with a pooling head; the flatten
    /// head takes H = W = config.inputSize only (InvalidArgument otherwise).
    torch::Tensor forward(const torch::Tensor& x);
    /// Output of block k (1-based; k = 0 returns x itself): [N, filters, ⌈H/2^s⌉, ⌈W/2^s⌉].
    torch::Tensor features(const torch::Tensor& x, int k);
    /// The rest of the network from the output of block k: forward(x) == fromFeatures(features(x, k), k).
    /// Flatten head: `act` must be block k's map of an inputSize crop (InvalidArgument otherwise).
    torch::Tensor fromFeatures(const torch::Tensor& act, int k);
    /// The head's global pooling of the last block's map: [N, filters] (max or average), or [N, filters · side²]
    /// (flatten).
    torch::Tensor pooled(const torch::Tensor& h) const;
    /// l2 · Σ w² over conv and dense weights (a scalar to add to the loss).
    torch::Tensor l2Penalty();
    /// Stride of block k (1-based).
    int strideOf(int k) const;
    /// Flatten head: side of block k's map for an inputSize crop (⌈R/2^s⌉, s strided blocks up to k); 0 otherwise.
    int sideAfter(int k) const;
    /// sideAfter(layers): the map the dense layer flattens.
    int finalSide() const;

    SlideCnnConfig config;
    std::vector<SeparableBlock> blocks;
    torch::nn::Linear fc{nullptr};
    torch::nn::BatchNorm1d fcBn{nullptr};
    torch::nn::Linear out{nullptr};
};
TORCH_MODULE(SlideCnn);

/// Saves weights and `meta` (as JSON under "meta/json") to `path` atomically. Throws IoError.
void saveSlideModel(SlideCnn& net, const SlideModelMeta& meta, const std::filesystem::path& path);

/// A loaded model in eval mode on `device`.
struct LoadedSlideModel {
    SlideCnn net{nullptr};
    SlideModelMeta meta;
    torch::Device device{torch::kCPU};
};
/// Loads a model saved by saveSlideModel: builds the network from the stored architecture, loads the
/// weights and checks every parameter and buffer shape against it (torch::load does not). Throws
/// IoError (missing file) or FormatError (not a slide model, damaged, shape mismatch) naming the file.
LoadedSlideModel loadSlideModel(const std::filesystem::path& path, const std::string& device = "auto");

/// Copies the R × R crop of `grid` (either layout) centred on `centre` into `out`: [R, R, C] when `channelsLastOut`,
/// else [C, R, R]; zeros outside the grid. Spread over LibTorch's intra-op threads, except a channel-first grid's
/// channel-first crop (plane copies, one thread). Throws InvalidArgument when the grid's data do not hold
/// channels × rows × cols values.
void copyCrop(const SlideGrid& grid, GridCell centre, int R, float* out, bool channelsLastOut);

/// Where one slide's test-time crops lie: (variant, centre) for T centres spread over the tissue of every stored
/// variant (CropSampler::testCentres; one centred crop per variant when the grid fits in R). Deterministic, so a
/// trainer computes it once per validation slide.
struct InferencePlan {
    int cropSize = 0;
    std::vector<std::pair<int, GridCell>> crops;
};
InferencePlan inferencePlan(SlideGridSource& source, std::size_t slide, int cropSize, int testCrops,
                            float tissueThreshold);

/// Crops [first, last) of a plan as a batch [last − first, C, R, R], channels-last in memory when `channelsLast`
/// (the same values).
torch::Tensor planCrops(SlideGridSource& source, std::size_t slide, const InferencePlan& plan, std::size_t first,
                        std::size_t last, bool channelsLast = false);

/// Crops of one slide for inference: every crop of inferencePlan as one batch [n, C, R, R].
torch::Tensor inferenceCrops(SlideGridSource& source, std::size_t slide, int cropSize, int testCrops,
                             float tissueThreshold);

/// How many crops of C × R × R floats one inference batch holds: 16, fewer where 16 would pass 256 MiB (a slide's
/// 10 centres × 8 variants of 400² × 128 crops are 6.5 GB together; one is 82 MB).
int inferenceChunk(int channels, int cropSize);

/// Runs the network on a batch of crops (eval mode, no grad, in chunks of `chunk`) and averages:
/// sigmoid probabilities (classification) or de-standardised outputs (regression). Returns the mean
/// and, if `each` is given, every crop's value.
double averagePrediction(SlideCnn& net, const SlideModelMeta& meta, const torch::Tensor& crops,
                         const torch::Device& device, std::vector<double>* each = nullptr, int chunk = 16);

/// The same average over a plan's crops, made `chunk` (0: inferenceChunk) crops at a time, so that memory holds one
/// chunk's crops rather than the slide's. On the CPU the crops are channels-last (row copies from channels-last grids;
/// the network's evaluation ran 1.3-1.6x faster on them than on channel-first crops), so the result equals
/// averagePrediction(net, meta, all crops, device, each, that chunk) to float rounding; on a GPU, exactly.
double predictSlide(SlideCnn& net, const SlideModelMeta& meta, SlideGridSource& source, std::size_t slide,
                    const InferencePlan& plan, const torch::Device& device, std::vector<double>* each = nullptr,
                    int chunk = 0);

} // namespace nic

namespace nic {

/// The pieces of one Grad-CAM pass (see gradcam.h): block k's activation [1, F, h, w], the gradient
/// coefficients γ [F] (spatial mean of ∂y/∂act), the map Σ_j γ_j act_j before the ReLU [h, w], and the
/// raw output y. x is [1, C, H, W]; needs grad mode (it enables it locally) and works in eval mode.
struct GradCamTensors {
    torch::Tensor activation;
    torch::Tensor gamma;
    torch::Tensor map;
    double output = 0.0;
};
GradCamTensors gradCamTensors(SlideCnn& net, const torch::Tensor& x, int layer);

} // namespace nic

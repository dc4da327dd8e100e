#pragma once
// LibTorch modules of the paper's encoders (supplementary §7). Internal to core_nn and its tests:
// everything else talks to encoders through core/encoders/encoder.h (PatchEncoder) and core/encoders/nn/encoders.h.
//
// Conventions shared by every module here:
//  - images are NCHW float tensors scaled from uint8 as x / 127.5 − 1 (so in [−1, 1]), the scaling the
//    NIC authors use (ImageNormalizerMinusOneToOne); generators end in tanh for the same range;
//  - P (patch side) must be a positive multiple of 32 and C (code length) positive;
//  - "LRA" is LeakyReLU with slope 0.2 (the slope of the authors' published Keras encoders);
//  - classifier-type heads return logits (the sigmoid / softmax lives in the loss), which is
//    numerically safer and equivalent to the paper's sigmoid / softmax output units.
#include "core/encoders/modelmeta.h"
#include "core/encoders/nn/onednnchain.h"

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nic {

inline constexpr double kLeakySlope = 0.2;

/// Throws InvalidArgument unless P is a positive multiple of 32 and C is positive.
void checkEncoderShape(int patchSize, int codeSize);

/// `linear`(x) for x [N, K], on the CPU in float32: without gradients through oneDNN's inner product; when
/// gradients are recorded, forward and both gradients as GEMMs split in fixed blocks over every LibTorch
/// thread (OpenBLAS single-threaded per block). Elsewhere LibTorch's own linear, whose GEMMs would run on
/// OpenBLAS's one thread beside idle OpenMP threads (configureCompute). `bench_encoders --layers` prints
/// the share of a step the dense layers take. Same parameters, same values within float32 rounding.
torch::Tensor applyLinear(torch::nn::Linear& linear, const torch::Tensor& x);

/// Whether training's dense products run on oneDNN's sgemm (the build found its header), and how many of
/// their blocks it has computed in this process (the rest fell back to LibTorch's BLAS): for the tests.
bool denseProductsOnOneDnn();
std::uint64_t denseBlocksOnOneDnn();

/// `conv`(x). When gradients are recorded on the CPU in float32 and the layer has a bias (zero padding), its
/// backward computes ∂x and ∂w through LibTorch's convolution backward without the bias and ∂b as the sum
/// of ∂y over batch and pixels: oneDNN's weight-gradient kernel with the bias in it ran several times
/// slower on the encoders' first layer. Elsewhere the layer's own forward. Same values within float32
/// rounding; the encoders' convolution, up-sampling and output layers call it.
/// `batchNormNext`: the output goes straight into a BatchNorm in training mode, which normalises it with the
/// batch's own mean and so removes any per-channel constant, the bias included. ∂b is then exactly zero and is
/// given as zero instead of a sum of ∂y that is zero up to rounding (2-5 ms of a training step; Adam scales
/// that rounding noise up to steps of the learning rate's order, which moved the bias without changing any
/// output while BatchNorm's running mean trailed it).
torch::Tensor applyConv(torch::nn::Conv2d& conv, const torch::Tensor& x, bool batchNormNext = false);

/// Conv 3×3 (stride s, padding 1) → BN → LRA. bnFolded (set by foldBatchNorm): BN is in conv's weights.
struct ConvBlockImpl : torch::nn::Module {
    ConvBlockImpl(int in, int out, int stride);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    bool bnFolded = false;
};
TORCH_MODULE(ConvBlock);

/// Nearest-neighbour ×2 upsampling → conv 3×3 → BN → LRA (the "resize-convolution" of [43]).
struct UpBlockImpl : torch::nn::Module {
    UpBlockImpl(int in, int out);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    bool bnFolded = false;
};
TORCH_MODULE(UpBlock);

/// Dense → BN → LRA.
struct DenseBlockImpl : torch::nn::Module {
    DenseBlockImpl(int in, int out);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Linear fc{nullptr};
    torch::nn::BatchNorm1d bn{nullptr};
    bool bnFolded = false;
};
TORCH_MODULE(DenseBlock);

/// A feature map h [N, C, H, W] flattened to [N, C·H·W]: in (C, H, W) order, or in (H, W, C) order when `nhwc`
/// (then a view, not a copy, when h is channels-last). The encoders' forward() use it.
torch::Tensor flattenFeatures(const torch::Tensor& h, bool nhwc);

/// E of the VAE (§7.1), shared by the contrastive and supervised encoders: 5 stride-2 conv blocks
/// (32, 64, 128, 256, 512 filters) → dense 512 block → linear C. features() returns the 512-vector,
/// forward() the C-vector (μ for the VAE).
struct ConvEncoderImpl : torch::nn::Module {
    ConvEncoderImpl(int patchSize, int codeSize);
    torch::Tensor features(const torch::Tensor& x);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Sequential convs{nullptr};
    DenseBlock dense{nullptr};
    torch::nn::Linear code{nullptr};
    int patchSize;
    int codeSize;
    bool flattenNhwc = false; ///< set by flattenInNhwcOrder: dense's columns are in (H, W, C) order
};
TORCH_MODULE(ConvEncoder);

/// D of the VAE: dense (P/32)²·512 block → reshape → 5 up blocks (256, 128, 64, 32, 16) → conv 3, tanh.
struct VaeDecoderImpl : torch::nn::Module {
    VaeDecoderImpl(int patchSize, int codeSize);
    torch::Tensor forward(const torch::Tensor& z);
    DenseBlock dense{nullptr};
    torch::nn::Sequential ups{nullptr};
    torch::nn::Conv2d out{nullptr};
    int side;
};
TORCH_MODULE(VaeDecoder);

/// The whole VAE: E (with an extra linear log σ² head on E's 512 features) and D.
struct VaeImpl : torch::nn::Module {
    VaeImpl(int patchSize, int codeSize);
    struct Output {
        torch::Tensor reconstruction, mu, logVar;
    };
    /// Training pass: samples e = μ + σ ⊙ n (n from the global generator) and decodes it; sample = false
    /// decodes μ itself and draws nothing (validation).
    Output forward(const torch::Tensor& x, bool sample = true);
    /// Loss of eq. (9): mean squared error per pixel + γ · KL, with KL summed over the code and
    /// averaged over the batch. Returns {total, reconstruction, kl}.
    static std::vector<torch::Tensor> loss(const Output& out, const torch::Tensor& x, double gamma = 5e-5);
    ConvEncoder encoder{nullptr};
    torch::nn::Linear logVar{nullptr};
    VaeDecoder decoder{nullptr};
};
TORCH_MODULE(Vae);

/// MLP head of §7.2, §7.5, §7.6 and §8.1: dense 256 block → linear `outputs` (logits).
struct ClassifierHeadImpl : torch::nn::Module {
    ClassifierHeadImpl(int in, int outputs);
    torch::Tensor forward(const torch::Tensor& x);
    DenseBlock hidden{nullptr};
    torch::nn::Linear out{nullptr};
};
TORCH_MODULE(ClassifierHead);

/// Siamese network S of §7.2: shared E on both views, concatenation, head with one logit
/// ("same location" probability after a sigmoid).
struct SiameseImpl : torch::nn::Module {
    SiameseImpl(int patchSize, int codeSize);
    torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b);
    ConvEncoder encoder{nullptr};
    ClassifierHead head{nullptr};
};
TORCH_MODULE(Siamese);

/// Supervised baselines (§7.5: classes = 1 logit for tumour vs not; §7.6: classes = K logits).
struct SupervisedImpl : torch::nn::Module {
    SupervisedImpl(int patchSize, int codeSize, int outputs);
    torch::Tensor forward(const torch::Tensor& x);
    ConvEncoder encoder{nullptr};
    ClassifierHead head{nullptr};
};
TORCH_MODULE(Supervised);

/// E of the BiGAN (§7.3): 2×2 average pooling of the P×P input, 4 stride-2 conv blocks of 128
/// filters, linear C. imageBranch() without the pooling is D's image branch.
struct BiganEncoderImpl : torch::nn::Module {
    BiganEncoderImpl(int patchSize, int codeSize, bool downsampleInput);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Sequential convs{nullptr};
    torch::nn::Linear code{nullptr};
    bool downsampleInput;
    bool flattenNhwc = false; ///< set by flattenInNhwcOrder: code's columns are in (H, W, C) order
};
TORCH_MODULE(BiganEncoder);

/// G of the BiGAN: dense (P/32)²·64 block → reshape → 4 up blocks of 128 → conv 3, tanh; output (P/2)².
struct BiganGeneratorImpl : torch::nn::Module {
    BiganGeneratorImpl(int patchSize, int codeSize);
    torch::Tensor forward(const torch::Tensor& z);
    DenseBlock dense{nullptr};
    torch::nn::Sequential ups{nullptr};
    torch::nn::Conv2d out{nullptr};
    int side;
};
TORCH_MODULE(BiganGenerator);

/// D of the BiGAN: image branch (E's architecture, own weights, on (P/2)² images) ⊕ latent →
/// 2 × (dense 1024, LRA, dropout 0.5) → one logit.
struct BiganDiscriminatorImpl : torch::nn::Module {
    BiganDiscriminatorImpl(int patchSize, int codeSize);
    torch::Tensor forward(const torch::Tensor& halfImage, const torch::Tensor& z);
    BiganEncoder image{nullptr};
    torch::nn::Sequential joint{nullptr};
};
TORCH_MODULE(BiganDiscriminator);

/// The three BiGAN networks together (for checkpoints).
struct BiganImpl : torch::nn::Module {
    BiganImpl(int patchSize, int codeSize);
    BiganEncoder encoder{nullptr};
    BiganGenerator generator{nullptr};
    BiganDiscriminator discriminator{nullptr};
};
TORCH_MODULE(Bigan);

// KerasLayer (one layer of an imported Keras encoder): core/encoders/modelmeta.h (torch-free).

/// A chain of Keras layers on NCHW input. Flatten permutes to NHWC first, so Dense weights keep the
/// Keras (channels-last) feature order. Conv/Dense/BN parameters are registered as "<index>_<type>".
struct KerasChainImpl : torch::nn::Module {
    explicit KerasChainImpl(std::vector<KerasLayer> layers);
    torch::Tensor forward(torch::Tensor x);
    std::vector<KerasLayer> layers;
    std::vector<std::shared_ptr<torch::nn::Module>> modules; ///< per layer, null for parameter-free ones
    std::vector<bool> skip; ///< per layer: a BatchNorm folded into the convolution before it
};
TORCH_MODULE(KerasChain);

/// Inference only: folds every BatchNorm that directly follows a convolution or dense layer (ConvBlock,
/// UpBlock, DenseBlock, and Conv2d → BatchNorm in a KerasChain) into that layer's weights and bias, using
/// BN's running statistics (eval-mode BN), and makes the block skip BN: forward() in eval mode gives
/// the same result up to float rounding with one pass less over each activation. In a KerasChain a BatchNorm
/// after an activation (the authors' published encoders: convolution → LeakyReLU → BN) folds into the input side
/// of the next layer instead, where that is exact: a 'valid' convolution, or a Dense after a Flatten. Afterwards the
/// module must be neither trained nor saved (its BN tensors no longer describe it). Returns the number of BN layers
/// folded; folding twice folds nothing more.
int foldBatchNorm(torch::nn::Module& module);

/// Inference only, for channels-last input: reorders the columns of the dense layer that follows the last
/// convolution (ConvEncoder's dense block, BiganEncoder's code layer) from the (C, H, W) order of a planar
/// flatten to (H, W, C), and makes forward() flatten the feature map in that order. For a channels-last
/// feature map that flatten is a view instead of a transposing copy (bench_encoders: the dense block of
/// the VAE-type encoder 2.3x faster). Same result up to float rounding; like foldBatchNorm the module must
/// then be neither trained nor saved. Returns the number of layers reordered; a second call reorders none.
int flattenInNhwcOrder(torch::nn::Module& module);

/// Inference only: the layers of a BatchNorm-folded ConvEncoder, BiganEncoder (foldBatchNorm, before
/// flattenInNhwcOrder) or KerasChain (foldBatchNorm) for a OneDnnChain over its planar input, and whether that input
/// is the 2×2-pooled patch (the BiGAN encoder's own pooling or a KerasChain's leading AvgPool2, which the chain leaves
/// to its caller). A KerasChain fits when it is convolutions, then a Flatten and Dense layers, each weight layer
/// followed by at most a LeakyReLU and folded BatchNorms, its convolutions square with 'valid' padding or 'same' at
/// stride 1 and an odd kernel (symmetric there); its Dense weights are reordered from Keras' (H, W, C) flatten to the
/// chain's (C, H, W). nullopt for other modules, for modules that are not folded or are already reordered, and for
/// Keras chains that do not fit (a BatchNorm left unfolded, global pooling, asymmetric 'same' padding).
struct OneDnnLayers {
    std::vector<OneDnnChain::Layer> layers;
    bool pooledInput = false;
};
std::optional<OneDnnLayers> oneDnnLayers(torch::nn::Module& folded);

} // namespace nic

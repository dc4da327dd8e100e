// Inference-only transforms of the encoders' modules (modules.h): BatchNorm folded into the layers beside it, the dense
// layer after the last convolution reordered for a channels-last flatten, and the folded layers listed for a
// OneDnnChain (compression's forward pass straight on oneDNN). The modules themselves and their training are in
// modules.cpp.
#include "core/base/error.h"
#include "core/encoders/nn/batchnormleaky.h"
#include "core/encoders/nn/modules.h"

#include <cmath>

namespace nic {

namespace {

/// Folds a KerasChain's remaining BatchNorms (those after an activation, as in the authors' published encoders:
/// convolution → LeakyReLU → BN) into the input side of the next weight layer, in place: eval-mode BN is y = a·x + s
/// per channel (a = γ / √(σ² + ε), s = β − μ·a), so that layer's weights w become w·a over each input channel and its
/// bias gains Σ w·s. Exact up to float rounding where nothing but a Flatten lies between and the next layer is a
/// Dense or a convolution that pads nothing ('valid': under 'same' a padded zero would have to become s). Returns
/// the number folded.
int foldBatchNormForward(KerasChainImpl& k) {
    torch::NoGradGuard noGrad;
    int folded = 0;
    for (std::size_t i = 0; i < k.layers.size(); ++i) {
        if (k.layers[i].type != KerasLayer::Type::BatchNorm || k.skip[i])
            continue;
        std::size_t j = i + 1;
        const bool flatten = j < k.layers.size() && k.layers[j].type == KerasLayer::Type::Flatten;
        if (flatten)
            ++j;
        if (j >= k.layers.size())
            continue;
        const auto& next = k.layers[j];
        auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(k.modules[i]);
        const std::int64_t c = bn->running_mean.numel();
        const auto [scaleD, offsetD] = batchNormAffine(*bn);
        const auto a = scaleD.to(bn->running_mean.scalar_type()), shift = offsetD.to(bn->running_mean.scalar_type());
        torch::Tensor* weight = nullptr;
        torch::Tensor* bias = nullptr;
        torch::Tensor scale, offset; // a and s broadcast over the next layer's weight
        if (!flatten && next.type == KerasLayer::Type::Conv2d && !next.samePadding && next.inChannels == c) {
            auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(k.modules[j]);
            weight = &conv->weight;
            bias = &conv->bias;
            scale = a.view({1, c, 1, 1});
            offset = shift.view({1, c, 1, 1});
        } else if (flatten && next.type == KerasLayer::Type::Dense && next.inChannels % c == 0) {
            // Flatten runs in (H, W, C) order: input feature f is channel f mod C.
            auto dense = std::dynamic_pointer_cast<torch::nn::LinearImpl>(k.modules[j]);
            weight = &dense->weight;
            bias = &dense->bias;
            scale = a.repeat({next.inChannels / c}).view({1, -1});
            offset = shift.repeat({next.inChannels / c}).view({1, -1});
        } else {
            continue;
        }
        const auto w = weight->detach().contiguous();
        const auto gained = (w * offset).flatten(1).sum(1);
        if (bias->defined())
            bias->add_(gained);
        else
            *bias = gained.to(weight->device()); // the layer's forward() reads this member
        weight->copy_(w * scale);
        k.skip[i] = true;
        ++folded;
    }
    return folded;
}

/// Folds eval-mode BN (y = (x − μ) / √(σ² + ε) · γ + β) into the layer before it, in place (foldedBatchNorm).
template <typename Bn>
void foldInto(torch::Tensor& weight, torch::Tensor& bias, Bn& bn) {
    torch::NoGradGuard noGrad;
    auto [w, b] = foldedBatchNorm(weight, bias, bn);
    weight.copy_(w);
    if (bias.defined())
        bias.copy_(b);
    else
        bias = b.to(weight.device()); // the layer's forward() reads this member
}

/// The filters of the last convolution block of `convs`.
std::int64_t lastFilters(torch::nn::Sequential convs) {
    return convs[convs->size() - 1]->as<ConvBlockImpl>()->conv->options.out_channels();
}

/// weight [out, C·H·W] with columns in (C, H, W) order reordered to (H, W, C), for `channels` = C.
void reorderColumnsToNhwc(torch::Tensor& weight, std::int64_t channels) {
    const auto out = weight.size(0), cols = weight.size(1);
    const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(cols / channels))));
    if (side * side * channels != cols)
        throw InvalidArgument("flattenInNhwcOrder: " + std::to_string(cols) + " columns are not a square map of " +
                              std::to_string(channels) + " channels");
    weight.set_data(weight.view({out, channels, side, side}).permute({0, 2, 3, 1}).reshape({out, cols}).contiguous());
}

/// weight [out, H·W·C] with columns in the (H, W, C) order of a channels-last flatten (a Keras Flatten) reordered to
/// (C, H, W), for `channels` = C: reorderColumnsToNhwc's inverse, as a new tensor.
torch::Tensor columnsInNchwOrder(const torch::Tensor& weight, std::int64_t channels) {
    const auto out = weight.size(0), cols = weight.size(1);
    return weight.view({out, cols / channels, channels}).permute({0, 2, 1}).reshape({out, cols});
}

} // namespace

int foldBatchNorm(torch::nn::Module& module) {
    int folded = 0;
    for (const auto& m : module.modules(/*include_self=*/true)) {
        if (auto* c = dynamic_cast<ConvBlockImpl*>(m.get()); c && !c->bnFolded) {
            foldInto(c->conv->weight, c->conv->bias, *c->bn);
            c->bnFolded = true;
            ++folded;
        } else if (auto* u = dynamic_cast<UpBlockImpl*>(m.get()); u && !u->bnFolded) {
            foldInto(u->conv->weight, u->conv->bias, *u->bn);
            u->bnFolded = true;
            ++folded;
        } else if (auto* d = dynamic_cast<DenseBlockImpl*>(m.get()); d && !d->bnFolded) {
            foldInto(d->fc->weight, d->fc->bias, *d->bn);
            d->bnFolded = true;
            ++folded;
        } else if (auto* k = dynamic_cast<KerasChainImpl*>(m.get())) {
            for (std::size_t i = 0; i + 1 < k->layers.size(); ++i)
                if (k->layers[i].type == KerasLayer::Type::Conv2d &&
                    k->layers[i + 1].type == KerasLayer::Type::BatchNorm && !k->skip[i + 1]) {
                    auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(k->modules[i]);
                    auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(k->modules[i + 1]);
                    foldInto(conv->weight, conv->bias, *bn);
                    k->skip[i + 1] = true;
                    ++folded;
                }
            folded += foldBatchNormForward(*k);
        }
    }
    return folded;
}

int flattenInNhwcOrder(torch::nn::Module& module) {
    torch::NoGradGuard noGrad;
    int reordered = 0;
    for (const auto& m : module.modules(/*include_self=*/true)) {
        if (auto* e = dynamic_cast<ConvEncoderImpl*>(m.get()); e && !e->flattenNhwc) {
            reorderColumnsToNhwc(e->dense->fc->weight, lastFilters(e->convs));
            e->flattenNhwc = true;
            ++reordered;
        } else if (auto* b = dynamic_cast<BiganEncoderImpl*>(m.get()); b && !b->flattenNhwc) {
            reorderColumnsToNhwc(b->code->weight, lastFilters(b->convs));
            b->flattenNhwc = true;
            ++reordered;
        }
    }
    return reordered;
}

namespace {

std::vector<float> valuesOf(const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

OneDnnChain::Layer layerOf(const torch::Tensor& weight, const torch::Tensor& bias, bool conv, int stride, int padding,
                           float slope) {
    OneDnnChain::Layer l;
    l.conv = conv;
    l.weightShape = weight.sizes().vec();
    l.weight = valuesOf(weight);
    l.bias = bias.defined() ? valuesOf(bias) : std::vector<float>(static_cast<std::size_t>(weight.size(0)), 0.0F);
    l.stride = stride;
    l.padding = padding;
    l.leakySlope = slope;
    return l;
}

/// The folded conv blocks of `convs`, or false when one is not a folded 3×3 ConvBlock with zero padding.
bool convLayersOf(torch::nn::Sequential& convs, std::vector<OneDnnChain::Layer>& out) {
    for (const auto& m : *convs) {
        auto* b = m.ptr()->as<ConvBlockImpl>();
        if (!b || !b->bnFolded)
            return false;
        const auto& o = b->conv->options;
        if (!c10::holds_alternative<torch::ExpandingArray<2>>(o.padding()) ||
            !c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) ||
            (*o.stride())[0] != (*o.stride())[1] || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1 ||
            o.groups() != 1)
            return false;
        const auto pad = c10::get<torch::ExpandingArray<2>>(o.padding());
        if ((*pad)[0] != (*pad)[1])
            return false;
        out.push_back(layerOf(b->conv->weight, b->conv->bias, true, static_cast<int>((*o.stride())[0]),
                              static_cast<int>((*pad)[0]), static_cast<float>(kLeakySlope)));
    }
    return true;
}

/// The layers of a folded KerasChain for a OneDnnChain (oneDnnLayers), or false when it does not fit.
bool kerasLayersOf(KerasChainImpl& k, OneDnnLayers& out) {
    using T = KerasLayer::Type;
    bool flattened = false;
    int lastFilters = 0; // the last convolution's output channels
    for (std::size_t i = 0; i < k.layers.size(); ++i) {
        const KerasLayer& l = k.layers[i];
        switch (l.type) {
        case T::AvgPool2:
            if (i != 0)
                return false;
            out.pooledInput = true;
            break;
        case T::BatchNorm:
            if (!k.skip[i])
                return false;
            break;
        case T::Conv2d: {
            if (flattened || (l.samePadding && (l.stride != 1 || l.kernel % 2 == 0)))
                return false;
            auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(k.modules[i]);
            out.layers.push_back(
                layerOf(conv->weight, conv->bias, true, l.stride, l.samePadding ? l.kernel / 2 : 0, -1.0F));
            lastFilters = l.outChannels;
            break;
        }
        case T::LeakyRelu:
            if (out.layers.empty() || out.layers.back().leakySlope >= 0.0F || !(l.alpha >= 0.0))
                return false;
            out.layers.back().leakySlope = static_cast<float>(l.alpha);
            break;
        case T::Flatten:
            if (flattened || lastFilters == 0)
                return false;
            flattened = true;
            break;
        case T::Dense: {
            if (!flattened)
                return false;
            auto dense = std::dynamic_pointer_cast<torch::nn::LinearImpl>(k.modules[i]);
            torch::Tensor w = dense->weight;
            if (!out.layers.back().conv) {
                // nothing to reorder after another dense layer
            } else if (l.inChannels % lastFilters == 0) { // Keras flattens (H, W, C); the chain reads (C, H, W)
                w = columnsInNchwOrder(w, lastFilters);
            } else {
                return false;
            }
            out.layers.push_back(layerOf(w, dense->bias, false, 1, 0, -1.0F));
            break;
        }
        case T::GlobalAvgPool:
            return false;
        }
    }
    return flattened && !out.layers.empty() && !out.layers.back().conv;
}

} // namespace

std::optional<OneDnnLayers> oneDnnLayers(torch::nn::Module& folded) {
    torch::NoGradGuard noGrad;
    OneDnnLayers result;
    if (auto* e = dynamic_cast<ConvEncoderImpl*>(&folded)) {
        if (e->flattenNhwc || !e->dense->bnFolded || !convLayersOf(e->convs, result.layers))
            return std::nullopt;
        result.layers.push_back(
            layerOf(e->dense->fc->weight, e->dense->fc->bias, false, 1, 0, static_cast<float>(kLeakySlope)));
        result.layers.push_back(layerOf(e->code->weight, e->code->bias, false, 1, 0, -1.0F));
        return result;
    }
    if (auto* b = dynamic_cast<BiganEncoderImpl*>(&folded)) {
        if (b->flattenNhwc || !convLayersOf(b->convs, result.layers))
            return std::nullopt;
        result.layers.push_back(layerOf(b->code->weight, b->code->bias, false, 1, 0, -1.0F));
        result.pooledInput = b->downsampleInput;
        return result;
    }
    if (auto* k = dynamic_cast<KerasChainImpl*>(&folded)) {
        if (!kerasLayersOf(*k, result))
            return std::nullopt;
        return result;
    }
    return std::nullopt;
}

} // namespace nic

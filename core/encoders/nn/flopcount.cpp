// Multiply-adds of the encoders' convolution and dense layers, walked from the modules themselves so
// that the count follows any change to the architectures in modules.cpp.
#include "core/encoders/nn/flopcount.h"

#include "core/encoders/nn/modules.h"
#include "core/encoders/nn/torchencoder.h"

namespace nic {

namespace {

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

/// Walks `m` in forward order with the current spatial side, appending each conv/dense layer's cost.
class CostWalker {
public:
    std::vector<LayerCost> layers;

    /// Returns the side after `m`.
    std::int64_t walk(torch::nn::Module& m, const std::string& path, std::int64_t side) {
        if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(&m))
            return conv(*c, path, side);
        if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(&m)) {
            add(path, l->options.in_features() * l->options.out_features());
            return side;
        }
        if (auto* u = dynamic_cast<UpBlockImpl*>(&m))
            return walk(*u->conv, join(path, "conv"), side * 2);
        if (auto* e = dynamic_cast<BiganEncoderImpl*>(&m)) {
            side = walk(*e->convs, join(path, "convs"), e->downsampleInput ? side / 2 : side);
            return walk(*e->code, join(path, "code"), side);
        }
        if (auto* d = dynamic_cast<VaeDecoderImpl*>(&m)) {
            walk(*d->dense, join(path, "dense"), side);
            return walk(*d->out, join(path, "out"), walk(*d->ups, join(path, "ups"), d->side));
        }
        if (auto* g = dynamic_cast<BiganGeneratorImpl*>(&m)) {
            walk(*g->dense, join(path, "dense"), side);
            return walk(*g->out, join(path, "out"), walk(*g->ups, join(path, "ups"), g->side));
        }
        if (auto* k = dynamic_cast<KerasChainImpl*>(&m))
            return keras(*k, path, side);
        // Containers and blocks run their children in registration order (Sequential, ConvBlock,
        // DenseBlock, ConvEncoder, ClassifierHead); element-wise layers have no children.
        for (const auto& child : m.named_children())
            side = walk(*child.value(), join(path, child.key()), side);
        return side;
    }

private:
    void add(const std::string& name, std::int64_t macs) { layers.push_back({name, macs}); }

    std::int64_t conv(torch::nn::Conv2dImpl& c, const std::string& path, std::int64_t side) {
        const auto& o = c.options;
        const std::int64_t k = o.kernel_size()->at(0), s = o.stride()->at(0);
        // Unqualified: argument-dependent lookup finds c10::get_if (LibTorch 1.x, c10::variant) or
        // std::get_if (2.x, std::variant).
        const auto* pad = get_if<torch::ExpandingArray<2>>(&o.padding());
        const std::int64_t p = pad ? (*pad)->at(0) : 0;
        const std::int64_t out = (side + 2 * p - k) / s + 1;
        add(path, out * out * o.out_channels() * (o.in_channels() / o.groups()) * k * k);
        return out;
    }

    std::int64_t keras(KerasChainImpl& chain, const std::string& path, std::int64_t side) {
        for (std::size_t i = 0; i < chain.layers.size(); ++i) {
            const auto& l = chain.layers[i];
            const std::string name = join(path, std::to_string(i) + "_" + toString(l.type));
            switch (l.type) {
            case KerasLayer::Type::AvgPool2: side /= 2; break;
            case KerasLayer::Type::Conv2d: {
                const std::int64_t out = l.samePadding ? (side + l.stride - 1) / l.stride : (side - l.kernel) / l.stride + 1;
                add(name, out * out * l.outChannels * l.inChannels * l.kernel * l.kernel);
                side = out;
                break;
            }
            case KerasLayer::Type::Dense: add(name, std::int64_t{l.inChannels} * l.outChannels); break;
            default: break;
            }
        }
        return side;
    }
};

std::int64_t sumMacs(const std::vector<LayerCost>& layers) {
    std::int64_t s = 0;
    for (const auto& l : layers)
        s += l.macs;
    return s;
}

std::int64_t macsOf(torch::nn::Module& m, std::int64_t side) {
    CostWalker w;
    w.walk(m, "", side);
    return sumMacs(w.layers);
}

} // namespace

std::vector<LayerCost> moduleLayerCosts(torch::nn::Module& module, std::int64_t side) {
    CostWalker w;
    w.walk(module, "", side);
    return w.layers;
}

std::vector<LayerCost> inferenceLayerCosts(const EncoderMeta& meta) {
    auto module = buildEncoderModule(meta);
    CostWalker w;
    w.walk(*module.ptr(), "", meta.patchSize);
    return w.layers;
}

double inferenceFlopsPerPatch(const EncoderMeta& meta) { return 2.0 * static_cast<double>(sumMacs(inferenceLayerCosts(meta))); }

double trainingFlopsPerPatch(EncoderKind kind, int p, int c, int classes) {
    double macs = 0;
    switch (kind) {
    case EncoderKind::Vae: macs = static_cast<double>(macsOf(*Vae(p, c), p)); break;
    case EncoderKind::Contrastive: {
        Siamese s(p, c);
        macs = static_cast<double>(macsOf(*s->encoder, p)) + 0.5 * static_cast<double>(macsOf(*s->head, p));
        break;
    }
    case EncoderKind::Bigan: {
        Bigan b(p, c);
        macs = static_cast<double>(macsOf(*b->encoder, p) + macsOf(*b->generator, p) +
                                   4 * macsOf(*b->discriminator, p / 2));
        break;
    }
    case EncoderKind::SupervisedTumor:
    case EncoderKind::SupervisedTissue:
        macs = static_cast<double>(macsOf(*Supervised(p, c, kind == EncoderKind::SupervisedTumor ? 1 : classes), p));
        break;
    }
    return 3.0 * 2.0 * macs;
}

} // namespace nic

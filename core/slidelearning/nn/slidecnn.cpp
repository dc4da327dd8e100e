#include "core/slidelearning/nn/slidecnn.h"

#include "core/base/atomicfile.h"
#include "core/slidelearning/cropsampler.h"
#include "core/base/error.h"
#include "core/encoders/nn/batchnormleaky.h"
#include "core/encoders/nn/encoders.h"

#include <algorithm>
#include <map>

namespace nic {

namespace {
constexpr double kSlope = 0.2; // LRA slope, as the encoders (modules.h)
} // namespace

SeparableBlockImpl::SeparableBlockImpl(int in, int out, int stride, double dropout) {
    depthwise = register_module(
        "depthwise",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, in, 3).stride(stride).padding(1).groups(in).bias(false)));
    pointwise = register_module("pointwise", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(false)));
    bn = register_module("bn", torch::nn::BatchNorm2d(out));
    drop = register_module("drop", torch::nn::Dropout2d(torch::nn::Dropout2dOptions(dropout)));
}

torch::Tensor SeparableBlockImpl::forward(const torch::Tensor& x) {
    const auto h = depthwise(x);
    if (!is_training() && h.device().is_cpu() && bn->options.track_running_stats() && bn->running_mean.defined()) {
        // Evaluation on the CPU: BatchNorm's running statistics folded into the 1 × 1 convolution's weights and a
        // bias (for this call: the weights keep training), and LeakyReLU in place, so the block's map is written
        // once instead of three times.
        const auto [weight, bias] = foldedBatchNorm(pointwise->weight, torch::Tensor(), *bn);
        auto y = torch::conv2d(h, weight, bias);
        return torch::leaky_relu_(y, kSlope);
    }
    return batchNormLeaky(*bn, pointwise(h), kSlope, drop.get());
}

SlideCnnImpl::SlideCnnImpl(const SlideCnnConfig& cfg) : config(cfg) {
    if (cfg.inputChannels < 1 || cfg.filters < 1 || cfg.layers < 1 || cfg.dense < 1 || cfg.unstridedLayers < 0 ||
        cfg.unstridedLayers > cfg.layers || cfg.dropout < 0.0 || cfg.dropout >= 1.0 || cfg.l2 < 0.0)
        throw InvalidArgument("slide CNN: invalid architecture (channels " + std::to_string(cfg.inputChannels) +
                              ", filters " + std::to_string(cfg.filters) + ", layers " + std::to_string(cfg.layers) +
                              ", dense " + std::to_string(cfg.dense) + ")");
    if (cfg.pooling == GlobalPooling::Flatten && cfg.inputSize < 1)
        throw InvalidArgument("slide CNN: the flatten head needs the crop size it is built for (input size " +
                              std::to_string(cfg.inputSize) + ")");
    for (int k = 1; k <= cfg.layers; ++k) {
        const int in = k == 1 ? cfg.inputChannels : cfg.filters;
        blocks.push_back(register_module("block" + std::to_string(k),
                                         SeparableBlock(in, cfg.filters, strideOf(k), cfg.dropout)));
    }
    const int side = finalSide();
    const std::int64_t flat = cfg.pooling == GlobalPooling::Flatten ? std::int64_t{cfg.filters} * side * side : cfg.filters;
    fc = register_module("fc", torch::nn::Linear(flat, cfg.dense));
    fcBn = register_module("fc_bn", torch::nn::BatchNorm1d(cfg.dense));
    out = register_module("out", torch::nn::Linear(cfg.dense, 1));
}

int SlideCnnImpl::strideOf(int k) const {
    return k > config.layers - config.unstridedLayers ? 1 : 2;
}

int SlideCnnImpl::sideAfter(int k) const {
    if (config.pooling != GlobalPooling::Flatten)
        return 0;
    int side = config.inputSize;
    for (int i = 1; i <= k; ++i)
        if (strideOf(i) == 2)
            side = (side + 1) / 2; // 3 × 3, padding 1, stride 2: ⌈n/2⌉
    return side;
}

int SlideCnnImpl::finalSide() const {
    return sideAfter(config.layers);
}

torch::Tensor SlideCnnImpl::features(const torch::Tensor& x, int k) {
    if (k < 0 || k > config.layers)
        throw InvalidArgument("slide CNN: layer " + std::to_string(k) + " is outside [0, " +
                              std::to_string(config.layers) + "]");
    auto h = x;
    for (int i = 0; i < k; ++i)
        h = blocks[static_cast<std::size_t>(i)]->forward(h);
    return h;
}

torch::Tensor SlideCnnImpl::fromFeatures(const torch::Tensor& act, int k) {
    if (config.pooling == GlobalPooling::Flatten) {
        const int side = sideAfter(k);
        if (act.dim() != 4 || act.size(2) != side || act.size(3) != side) {
            const std::string crop = std::to_string(config.inputSize) + "x" + std::to_string(config.inputSize);
            const std::string got = act.dim() == 4 ? std::to_string(act.size(2)) + "x" + std::to_string(act.size(3))
                                                   : c10::str(act.sizes());
            throw InvalidArgument("slide CNN: the flatten head takes " + crop + " crops" +
                                  (k == 0 ? ", not " + got
                                          : "; block " + std::to_string(k) + "'s map is " + got + ", not " +
                                                std::to_string(side) + "x" + std::to_string(side)));
        }
    }
    auto h = act;
    for (int i = k; i < config.layers; ++i)
        h = blocks[static_cast<std::size_t>(i)]->forward(h);
    h = batchNormLeaky(*fcBn, fc(pooled(h)), kSlope);
    return out(h).squeeze(1);
}

torch::Tensor SlideCnnImpl::pooled(const torch::Tensor& h) const {
    switch (config.pooling) {
    case GlobalPooling::Max:
        return h.amax({2, 3});
    case GlobalPooling::Average:
        return h.mean({2, 3});
    case GlobalPooling::Flatten:
        break;
    }
    return h.flatten(1);
}

torch::Tensor SlideCnnImpl::forward(const torch::Tensor& x) {
    return fromFeatures(x, 0);
}

torch::Tensor SlideCnnImpl::l2Penalty() {
    auto sum = torch::zeros({}, parameters().front().options());
    for (const auto& p : named_parameters())
        if (p.key().find("weight") != std::string::npos && p.key().find("bn") == std::string::npos)
            sum = sum + p.value().pow(2).sum();
    return sum * config.l2;
}

void saveSlideModel(SlideCnn& net, const SlideModelMeta& meta, const std::filesystem::path& path) {
    AtomicFile file(path);
    // Not save_to(file name): LibTorch 1.13 ends the process when a write fails part of the way (a full disk).
    WriteBehindFile sink(file, "cannot write slide model");
    try {
        torch::serialize::OutputArchive ar;
        net->save(ar);
        ar.write("meta/json", c10::IValue(meta.toJson()));
        ar.save_to([&sink](const void* data, std::size_t n) { return sink.write(data, n); });
    } catch (const c10::Error& e) {
        throw IoError(path.string() + ": cannot write slide model: " + e.what_without_backtrace());
    }
    sink.close();
    file.commit();
}

LoadedSlideModel loadSlideModel(const std::filesystem::path& path, const std::string& device) {
    if (!std::filesystem::is_regular_file(path))
        throw IoError(path.string() + ": no such slide model file");
    LoadedSlideModel m;
    m.meta = readSlideModelMeta(path);
    m.device = torch::Device(configureCompute(ComputeOptions{device, 0}));
    try {
        m.net = SlideCnn(m.meta.config);
    } catch (const InvalidArgument& e) { // the stored architecture is not one a slide CNN can have
        throw FormatError(path.string() + ": " + e.what());
    }
    std::map<std::string, std::vector<std::int64_t>> expected;
    for (const auto& p : m.net->named_parameters())
        expected[p.key()] = p.value().sizes().vec();
    for (const auto& b : m.net->named_buffers())
        expected[b.key()] = b.value().sizes().vec();
    try {
        torch::serialize::InputArchive ar;
        ar.load_from(path.string());
        m.net->load(ar);
    } catch (const c10::Error& e) {
        throw FormatError(path.string() + ": cannot load slide model: " + e.what_without_backtrace());
    }
    auto check = [&](const std::string& name, const torch::Tensor& t) {
        const auto it = expected.find(name);
        if (it == expected.end() || it->second != t.sizes().vec())
            throw FormatError(path.string() + ": slide model tensor '" + name + "' has shape " + c10::str(t.sizes()) +
                              ", which does not match the stored architecture");
    };
    for (const auto& p : m.net->named_parameters())
        check(p.key(), p.value());
    for (const auto& b : m.net->named_buffers())
        check(b.key(), b.value());
    m.net->to(m.device);
    m.net->eval();
    return m;
}

void copyCrop(const SlideGrid& g, GridCell centre, int R, float* out, bool channelsLastOut) {
    checkGridValues(g, "crop");
    checkCropSize(R); // before the threads: an empty range would run nothing, and so check nothing
    if (g.channelsLast) { // the crop's rows over the threads: row copies (or transposed rows)
        at::parallel_for(0, R, 8, [&](std::int64_t first, std::int64_t last) {
            extractCropFromChannelsLast(g.data.data(), g.channels, g.rows, g.cols, centre, R, out, channelsLastOut,
                                        static_cast<int>(first), static_cast<int>(last));
        });
    } else if (channelsLastOut) { // tiles of 16 channels over the threads
        at::parallel_for(0, (g.channels + 15) / 16, 1, [&](std::int64_t first, std::int64_t last) {
            extractCropChannelsLast(g.data.data(), g.channels, g.rows, g.cols, centre, R, out, static_cast<int>(first * 16),
                                    static_cast<int>(std::min<std::int64_t>(last * 16, g.channels)));
        });
    } else {
        extractCrop(g.data.data(), g.channels, g.rows, g.cols, centre, R, out);
    }
}

InferencePlan inferencePlan(SlideGridSource& source, std::size_t slide, int cropSize, int testCrops,
                            float tissueThreshold) {
    checkCropSize(cropSize);
    InferencePlan plan;
    plan.cropSize = cropSize;
    const int variants = source.variantCount(slide);
    for (int v = 0; v < variants; ++v) {
        const SlideGrid& g = source.grid(slide, v);
        if (g.rows <= cropSize && g.cols <= cropSize) {
            plan.crops.emplace_back(v, GridCell{g.cols / 2, g.rows / 2});
            continue;
        }
        const CropSampler sampler(g.tissue, g.cols, g.rows, tissueThreshold);
        for (const auto& c : sampler.testCentres(testCrops))
            plan.crops.emplace_back(v, c);
    }
    return plan;
}

torch::Tensor planCrops(SlideGridSource& source, std::size_t slide, const InferencePlan& plan, std::size_t first,
                        std::size_t last, bool channelsLast) {
    last = std::min(last, plan.crops.size());
    first = std::min(first, last);
    const auto R = static_cast<std::int64_t>(plan.cropSize);
    const std::int64_t C = source.channels(), n = static_cast<std::int64_t>(last - first);
    auto crops = channelsLast ? torch::empty({n, R, R, C}) : torch::empty({n, C, R, R});
    float* dst = crops.data_ptr<float>();
    const auto per = static_cast<std::size_t>(C) * static_cast<std::size_t>(R * R);
    for (std::size_t i = first; i < last; ++i) {
        const SlideGrid& g = source.grid(slide, plan.crops[i].first); // cached by the source between calls
        copyCrop(g, plan.crops[i].second, plan.cropSize, dst + (i - first) * per, channelsLast);
    }
    return channelsLast ? crops.permute({0, 3, 1, 2}) : crops;
}

torch::Tensor inferenceCrops(SlideGridSource& source, std::size_t slide, int cropSize, int testCrops,
                             float tissueThreshold) {
    const InferencePlan plan = inferencePlan(source, slide, cropSize, testCrops, tissueThreshold);
    return planCrops(source, slide, plan, 0, plan.crops.size());
}

int inferenceChunk(int channels, int cropSize) {
    const double bytes = 4.0 * std::max(1, channels) * static_cast<double>(cropSize) * static_cast<double>(cropSize);
    return static_cast<int>(std::clamp(static_cast<double>(std::int64_t{256} << 20) / bytes, 1.0, 16.0));
}

namespace {

/// Sigmoid probabilities (classification) or de-standardised outputs (regression) of a batch of crops, appended.
void appendPredictions(SlideCnn& net, const SlideModelMeta& meta, const torch::Tensor& crops,
                       const torch::Device& device, std::vector<double>& values) {
    auto out = net->forward(crops.to(device)).to(torch::kCPU).to(torch::kDouble);
    out = meta.task == SlideTask::Classification ? torch::sigmoid(out) : out * meta.labelScale + meta.labelMean;
    const double* p = out.contiguous().data_ptr<double>();
    values.insert(values.end(), p, p + out.numel());
}

double meanOf(const std::vector<double>& values, std::vector<double>* each) {
    double sum = 0.0;
    for (double v : values)
        sum += v;
    if (each)
        *each = values;
    return sum / static_cast<double>(values.size());
}

} // namespace

double predictSlide(SlideCnn& net, const SlideModelMeta& meta, SlideGridSource& source, std::size_t slide,
                    const InferencePlan& plan, const torch::Device& device, std::vector<double>* each, int chunk) {
    torch::NoGradGuard noGrad;
    net->eval();
    if (plan.crops.empty())
        throw InvalidArgument("no crops to predict");
    const auto step = static_cast<std::size_t>(chunk > 0 ? chunk : inferenceChunk(source.channels(), plan.cropSize));
    std::vector<double> values;
    for (std::size_t s = 0; s < plan.crops.size(); s += step)
        appendPredictions(net, meta, planCrops(source, slide, plan, s, s + step, device.is_cpu()), device, values);
    return meanOf(values, each);
}

double averagePrediction(SlideCnn& net, const SlideModelMeta& meta, const torch::Tensor& crops,
                         const torch::Device& device, std::vector<double>* each, int chunk) {
    torch::NoGradGuard noGrad;
    net->eval();
    const auto n = crops.size(0);
    if (n == 0)
        throw InvalidArgument("no crops to predict");
    std::vector<double> values;
    for (std::int64_t s = 0; s < n; s += chunk)
        appendPredictions(net, meta, crops.slice(0, s, std::min<std::int64_t>(n, s + chunk)), device, values);
    return meanOf(values, each);
}

} // namespace nic

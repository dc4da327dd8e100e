// OneDnnChain: an encoder's inference straight on oneDNN (onednnchain.h).
#include "core/encoders/nn/onednnchain.h"

#include "core/base/envswitch.h"
#include "core/base/error.h"
#include "core/encoders/nn/alignedbuffer.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/gemmchoice.h"
#include "core/encoders/nn/gemmconv.h"
#include "core/encoders/nn/ompthreads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#ifdef NIC_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nic {

namespace {

std::string layerName(std::size_t index, bool conv) {
    return std::string(conv ? "convolution" : "dense layer") + " " + std::to_string(index + 1);
}

std::int64_t product(const std::vector<std::int64_t>& shape) {
    std::int64_t p = 1;
    for (auto d : shape)
        p *= d;
    return p;
}

/// Throws InvalidArgument naming the first layer that does not fit the one before it.
void checkLayers(const std::vector<OneDnnChain::Layer>& layers, int channels, int side) {
    if (layers.empty())
        throw InvalidArgument("oneDNN chain: no layers");
    std::int64_t c = channels, s = side;
    bool flat = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto& l = layers[i];
        const auto& w = l.weightShape;
        const std::string name = layerName(i, l.conv);
        if (w.empty() || static_cast<std::int64_t>(l.weight.size()) != product(w) ||
            l.bias.size() != static_cast<std::size_t>(w[0]))
            throw InvalidArgument("oneDNN chain: " + name + ": weight or bias size does not match its shape");
        if (l.conv) {
            if (flat || w.size() != 4 || w[1] != c || w[2] != w[3] || l.stride < 1 || l.padding < 0)
                throw InvalidArgument("oneDNN chain: " + name + " does not fit the layer before it");
            if (s + 2 * l.padding < w[2])
                throw InvalidArgument("oneDNN chain: " + name + " leaves no output pixels");
            s = (s + 2 * l.padding - w[2]) / l.stride + 1;
            c = w[0];
        } else {
            if (w.size() != 2 || w[1] != (flat ? c : c * s * s))
                throw InvalidArgument("oneDNN chain: " + name + " does not fit the layer before it");
            c = w[0];
            flat = true;
        }
    }
    if (!flat)
        throw InvalidArgument("oneDNN chain: the last layer must be a dense layer");
}

OneDnnChain::GemmConvolutions gemmModeFromEnvironment() {
    const char* v = std::getenv("NIC_GEMM_CONV");
    if (v && std::string(v) == "0")
        return OneDnnChain::GemmConvolutions::Never;
    if (v && std::string(v) == "1")
        return OneDnnChain::GemmConvolutions::Always;
    return OneDnnChain::GemmConvolutions::Measured;
}

std::atomic<OneDnnChain::GemmConvolutions> gGemmMode{gemmModeFromEnvironment()};
std::atomic<bool> gFuseFirst{envSwitchOn("NIC_FUSE_FIRST_CONVS")};
std::atomic<bool> gInputPerImage{envSwitchOn("NIC_CHAIN_INPUT_PER_IMAGE")};

} // namespace

OneDnnChain::GemmConvolutions OneDnnChain::useGemmConvolutions(GemmConvolutions mode) {
    return gGemmMode.exchange(mode, std::memory_order_relaxed);
}

bool OneDnnChain::fuseFirstConvolutions(bool on) {
    return gFuseFirst.exchange(on, std::memory_order_relaxed);
}

bool OneDnnChain::convertInputPerImage(bool on) {
    return gInputPerImage.exchange(on, std::memory_order_relaxed);
}

std::uint64_t OneDnnChain::gemmMeasurements() {
    return gemmchoice::measurements();
}

bool OneDnnChain::useDirectFirstConvolution(bool on) {
    return directconv::use(on);
}

bool OneDnnChain::useWideConvolutions(bool on) {
    return directconv::useWide(on);
}

#ifdef NIC_HAVE_DNNL

namespace {
using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

std::atomic<bool> gTimeSteps{false};

} // namespace

struct OneDnnChain::Shared {
    std::vector<Layer> layers;
    int channels = 0, side = 0;
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    std::mutex mutex;
    /// Per layer: the weights reordered into each layout a plan asked for.
    std::vector<std::vector<std::pair<memory::desc, memory>>> weights;
    std::vector<memory> biases;
    /// The first convolution on the direct kernel (directconv.h): its weights as that kernel reads them.
    bool direct = false;
    std::vector<float> directTaps;
    /// Per layer: its weights as the wide kernel reads them (directconv.h), empty where oneDNN computes the layer.
    std::vector<std::vector<float>> wideTaps;
    /// How plans choose between oneDNN and im2col + sgemm (useGemmConvolutions when the chain was built).
    GemmConvolutions gemmMode = GemmConvolutions::Measured;
    bool fuseFirst = true; ///< fuseFirstConvolutions when the chain was built

    /// Layer i's weights in `want`, reordered on first use (thread-safe): from the layer's own copy (`given` describes
    /// it), which is then dropped, or from a layout reordered before for another batch size.
    memory weightsIn(std::size_t i, const memory::desc& want, const memory::desc& given) {
        std::lock_guard lock(mutex);
        for (auto& [desc, mem] : weights[i])
            if (desc == want)
                return mem;
        auto& l = layers[i];
        memory from = weights[i].empty() ? memory(given, engine, l.weight.data()) : weights[i].front().second;
        memory mem(want, engine);
        dnnl::stream s(engine);
        dnnl::reorder(from, mem).execute(s, from, mem);
        s.wait();
        weights[i].emplace_back(want, mem);
        std::vector<float>().swap(l.weight); // the reordered copy holds the values from now on
        return mem;
    }

    /// Forgets layer i's weights in `layout` where another layout still holds them.
    void dropWeights(std::size_t i, const memory::desc& layout) {
        std::lock_guard lock(mutex);
        auto& held = weights[i];
        const auto it = std::find_if(held.begin(), held.end(), [&](const auto& w) { return w.first == layout; });
        if (it != held.end() && held.size() > 1)
            held.erase(it);
    }

    /// Where convolution i (after the first, channels-last from `src` to `dst`, its oneDNN primitive `conv` built
    /// with `weights`) runs on im2col + sgemm for a batch of n under gemmMode: its weights as [k, k, in, out]; nothing
    /// where it stays on oneDNN.
    std::optional<memory> gemmWeights(std::size_t i, const dnnl::primitive& conv, const memory::desc& weights,
                                      const memory::desc& given, const memory::desc& src, const memory::desc& dst,
                                      int n, Plans& plans);

    /// Builds the second layer's oneDNN convolution for one channels-last image (its primitive and
    /// arguments) when oneDNN has an optimised kernel for it; false otherwise. The second layer's input is the direct
    /// first convolution's channels-last output.
    bool perImageSecond(dnnl::primitive& primitive, std::unordered_map<int, memory>& args);
};

struct OneDnnChain::Plan {
    struct Step {
        dnnl::primitive primitive;
        std::unordered_map<int, memory> args;
        int src = -1, dst = -1; ///< ping-pong buffer of the source and destination; −1 the input / the output
        std::string what;       ///< StepTime::what
        std::string impl;
        bool direct = false;   ///< the first convolution on directconv::run instead of `primitive`
        bool fuseNext = false; ///< direct, and run image by image together with the next step (runFusedFirst)
        /// The second step of a fused pair on oneDNN: its primitive and arguments for one image.
        dnnl::primitive perImage;
        std::unordered_map<int, memory> perImageArgs;
        std::size_t dstBytes = 0; ///< the output's size for the whole batch
        int wide = -1;            ///< ≥ 0: this layer on directconv::runWide instead of `primitive`
        int wideSide = 0;         ///< its input's side
        int gemm = -1;            ///< ≥ 0: this layer on gemmconv::run (im2col + sgemm) instead of `primitive`
        int gemmSide = 0;         ///< its input's side
        memory gemmWeights;       ///< its weights as [k, k, in, out]
        double flops = 0.0;       ///< multiply-adds × 2
        double seconds = 0.0;
        std::int64_t runs = 0; ///< runs timed (timeSteps)
    };
    std::vector<Step> steps;
    /// The input conversion of run(InputRows), timed (timeSteps) apart from the first convolution.
    double inputSeconds = 0.0;
    std::int64_t inputRuns = 0;
    bool inputPerImage = false; ///< the timed conversions ran image by image

    /// Adds a timed conversion, dropping those of the other mode.
    void timeInput(bool perImage, double seconds) {
        if (perImage != inputPerImage) {
            inputSeconds = 0.0;
            inputRuns = 0;
            inputPerImage = perImage;
        }
        inputSeconds += seconds;
        ++inputRuns;
    }
    std::size_t bufferBytes[2] = {0, 0};
    std::uint64_t lastRun = 0; ///< Plans::runs when it last ran (the least recently used goes first)

    /// Runs the first two convolutions image by image (runFusedFirst) where the first is on the direct kernel and the
    /// second on the wide one or on an optimised oneDNN kernel for one image (Shared::perImageSecond): the first's
    /// output then needs no buffer for the whole batch.
    void fuseFirstTwo(Shared& sh) {
        if (steps.size() <= 2 || !steps[0].direct || steps[1].gemm >= 0 || !sh.layers[1].conv ||
            (steps[1].wide < 0 && !sh.perImageSecond(steps[1].perImage, steps[1].perImageArgs)))
            return;
        steps[0].fuseNext = true;
        bufferBytes[0] = bufferBytes[1] = 0;
        for (std::size_t k = 1; k < steps.size(); ++k)
            if (steps[k].dst >= 0)
                bufferBytes[steps[k].dst] = std::max(bufferBytes[steps[k].dst], steps[k].dstBytes);
    }
};

struct OneDnnChain::Plans {
    dnnl::stream stream;
    std::map<int, Plan> byBatch; ///< by padded batch size
    std::uint64_t runs = 0;
    // Activations of several MiB (a buffer of 33 MB after a VAE-type first layer at a batch of 64) on 2 MiB pages where
    // the kernel gives them (alignedbuffer.h): fewer page faults on first touch (a 20 000² compression: 60 k → 37 k)
    // and TLB misses while the convolutions stream through them. The cost: up to 2 MiB more per buffer, and the kernel
    // may compact memory to find the pages.
    AlignedBuffer buffers[2]{AlignedBuffer(true), AlignedBuffer(true)};
    AlignedBuffer output{true}; ///< the padded batch's output, when the caller's holds fewer rows
    AlignedBuffer im2col{true}; ///< the im2col copy of the layers on gemmconv::run
    AlignedBuffer fused;        ///< the first convolution's output for a few images, when fused with the second
    /// run(InputRows)'s inputs: the whole batch's, or one round's images where they are converted image by image.
    AlignedBuffer input{true};
    int lastBatch = 0; ///< the padded batch size of the last run
};

bool OneDnnChain::available() {
    return true;
}

std::optional<memory> OneDnnChain::Shared::gemmWeights(std::size_t i, const dnnl::primitive& conv,
                                                       const memory::desc& weightsDesc, const memory::desc& given,
                                                       const memory::desc& src, const memory::desc& dst, int n,
                                                       Plans& plans) {
    const Layer& l = layers[i];
    const auto out = l.weightShape[0], in = l.weightShape[1], k = l.weightShape[2];
    const memory::dims srcDims = src.dims(), dstDims = dst.dims();
    const auto inSide = srcDims.at(2), o = dstDims.at(2);
    // Candidates: outputs of at most 4 × 4 at batches of 32 and more, where oneDNN's brgconv measured slowest
    // (gemmconv.h); every convolution after the first under Always.
    if (!gemmconv::available() || gemmMode == GemmConvolutions::Never ||
        (gemmMode == GemmConvolutions::Measured && (n < 32 || o > 4)))
        return std::nullopt;
    gemmchoice::Layer g{n,
                        static_cast<int>(in),
                        static_cast<int>(inSide),
                        static_cast<int>(k),
                        l.stride,
                        l.padding,
                        static_cast<int>(out),
                        l.leakySlope,
                        nullptr,
                        l.bias.data()};
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
#else
    const int threads = 1;
#endif
    if (gemmMode == GemmConvolutions::Measured) {
        if (const auto known = gemmchoice::known(g, threads); known && !*known)
            return std::nullopt; // oneDNN won before: no copy of the weights for sgemm
    }
    const memory::desc hwioDesc({out, in, k, k}, Dt::f32, Tag::hwio);
    const memory hwio = weightsIn(i, hwioDesc, given);
    g.hwio = static_cast<const float*>(hwio.get_data_handle());
    if (gemmMode == GemmConvolutions::Always || gemmchoice::choose(conv, weightsIn(i, weightsDesc, given), biases[i],
                                                                   src, dst, g, plans.stream, plans.im2col, threads))
        return hwio;
    dropWeights(i, hwioDesc); // oneDNN won: the copy for sgemm goes
    return std::nullopt;
}

OneDnnChain::OneDnnChain(std::vector<Layer> layers, int channels, int side) {
    checkLayers(layers, channels, side);
    try {
        shared_ = std::make_shared<Shared>();
        shared_->layers = std::move(layers);
        shared_->channels = channels;
        shared_->side = side;
        shared_->weights.resize(shared_->layers.size());
        Layer& first = shared_->layers.front();
        if (directconv::available() && directconv::fits(first.weightShape, first.stride, first.padding, side)) {
            shared_->direct = true;
            shared_->directTaps = directconv::tapMajor(first.weight, static_cast<int>(first.weightShape[0]), channels);
            std::vector<float>().swap(first.weight);
        }
        shared_->wideTaps.resize(shared_->layers.size());
        shared_->gemmMode = gGemmMode.load(std::memory_order_relaxed);
        shared_->fuseFirst = gFuseFirst.load(std::memory_order_relaxed);
        int s = side;
        for (std::size_t i = 0; i < shared_->layers.size(); ++i) {
            Layer& l = shared_->layers[i];
            if (!l.conv)
                break;
            // Where oneDNN's brgconv was slow: few input channels (the VAE-type encoder's 32 → 64 layer, 0.70 of a
            // thread's share of the limit on brgconv, 0.94 here). On its 64 → 128 layer the two were equal, on the
            // wider ones and BiGAN's 128 → 128 layers brgconv was as fast or faster (docs/timings.md).
            const bool wide = i > 0 && directconv::wideAvailable() && l.weightShape[1] <= 32 &&
                              directconv::fitsWide(l.weightShape, l.stride, l.padding, s);
            if (wide) {
                shared_->wideTaps[i] = directconv::wideTaps(l.weight, static_cast<int>(l.weightShape[0]),
                                                            static_cast<int>(l.weightShape[1]));
                std::vector<float>().swap(l.weight);
            }
            s = static_cast<int>((s + 2 * l.padding - l.weightShape[2]) / l.stride + 1);
        }
        for (auto& l : shared_->layers) {
            const memory::desc bd({static_cast<memory::dim>(l.bias.size())}, Dt::f32, Tag::x);
            shared_->biases.emplace_back(bd, shared_->engine, l.bias.data());
        }
        plans_ = std::make_unique<Plans>();
        plans_->stream = dnnl::stream(shared_->engine);
    } catch (const dnnl::error& e) {
        throw Error(std::string("oneDNN inference: cannot set up the chain: ") + e.what());
    }
}

OneDnnChain::OneDnnChain(std::shared_ptr<Shared> shared)
    : shared_(std::move(shared)), plans_(std::make_unique<Plans>()) {
    try {
        plans_->stream = dnnl::stream(shared_->engine);
    } catch (const dnnl::error& e) {
        throw Error(std::string("oneDNN inference: cannot set up a replica: ") + e.what());
    }
}

OneDnnChain::~OneDnnChain() = default;

std::unique_ptr<OneDnnChain> OneDnnChain::replicate() const {
    return std::unique_ptr<OneDnnChain>(new OneDnnChain(shared_));
}

int OneDnnChain::outputs() const {
    return static_cast<int>(shared_->layers.back().weightShape[0]);
}

namespace {

dnnl::primitive_attr leakyAttr(float slope) {
    dnnl::primitive_attr attr;
    if (slope >= 0) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0F, dnnl::algorithm::eltwise_relu, slope, 0.0F);
        attr.set_post_ops(ops);
    }
    return attr;
}

} // namespace

int OneDnnChain::paddedBatch(int n) {
    if (n <= 8) { // 1, 2, 4, 8
        int p = 1;
        while (p < n)
            p *= 2;
        return p;
    }
    const int step = n <= 64 ? 8 : 32;
    return (n + step - 1) / step * step;
}

namespace {

/// Inputs first … first + count − 1 of `rows` into `into` (perInput floats each): made by rows.fill below n, zeros
/// from n on (the padded rows).
void convertRows(const OneDnnChain::InputRows& rows, int first, int count, int n, std::size_t perInput, float* into) {
    const int real = std::clamp(n - first, 0, count);
    if (real > 0)
        rows.fill(rows.context, first, real, into);
    std::fill(into + static_cast<std::size_t>(real) * perInput, into + static_cast<std::size_t>(count) * perInput,
              0.0F);
}

} // namespace

void OneDnnChain::run(const float* nchw, int n, float* out, int threads) {
    runPlan(nchw, nullptr, n, out, threads);
}

void OneDnnChain::run(const InputRows& rows, int n, float* out, int threads) {
    runPlan(nullptr, &rows, n, out, threads);
}

void OneDnnChain::runPlan(const float* nchw, const InputRows* rows, int n, float* out, int threads) {
    if (n <= 0)
        return;
    const OmpThreads scope(threads);
    const int padded = paddedBatch(n);
    auto it = plans_->byBatch.find(padded);
    if (it == plans_->byBatch.end()) {
        if (plans_->byBatch.size() >= 24) { // every padded size up to 256 fits: 4 + 7 + 6
            plans_->byBatch.erase(
                std::min_element(plans_->byBatch.begin(), plans_->byBatch.end(),
                                 [](const auto& a, const auto& b) { return a.second.lastRun < b.second.lastRun; }));
        }
        it = plans_->byBatch.emplace(padded, buildPlan(padded)).first;
    }
    it->second.lastRun = ++plans_->runs;
    plans_->lastBatch = padded;
    Plan& plan = it->second;
    const bool timed = gTimeSteps.load(std::memory_order_relaxed);
#ifdef _OPENMP
    const int ompThreads = omp_get_max_threads();
#else
    const int ompThreads = 1;
#endif
    try {
        float* buf[2] = {plans_->buffers[0].reserve(plan.bufferBytes[0]),
                         plans_->buffers[1].reserve(plan.bufferBytes[1])};
        const std::size_t outputRow = static_cast<std::size_t>(outputs());
        float* result = padded == n ? out : plans_->output.reserve(static_cast<std::size_t>(padded) * outputRow * 4U);
        const bool perImage = rows && plan.steps.front().fuseNext && gInputPerImage.load(std::memory_order_relaxed);
        if (rows && !perImage) { // the whole batch first
            const auto t0 = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
            const std::size_t perInput = static_cast<std::size_t>(shared_->channels) * shared_->side * shared_->side;
            float* in = plans_->input.reserve(static_cast<std::size_t>(padded) * perInput * sizeof(float));
            convertRows(*rows, 0, padded, n, perInput, in);
            nchw = in;
            if (timed)
                plan.timeInput(false, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        for (std::size_t k = 0; k < plan.steps.size(); ++k) {
            auto& step = plan.steps[k];
            const auto t0 = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
            const float* src = step.src < 0 ? nchw : buf[step.src];
            float* dst = step.dst < 0 ? result : buf[step.dst];
            if (step.fuseNext) {
                const int next = plan.steps[k + 1].dst;
                runFusedFirst(plan, src, perImage ? rows : nullptr, n, next < 0 ? result : buf[next], padded,
                              ompThreads, timed);
                ++k;
                continue;
            }
            if (step.direct) {
                const Layer& l = shared_->layers.front();
                directconv::run(src, padded, shared_->channels, shared_->side, l.padding, shared_->directTaps.data(),
                                l.bias.data(), static_cast<int>(l.weightShape[0]), l.leakySlope, dst, ompThreads);
            } else if (step.wide >= 0) {
                const Layer& l = shared_->layers[static_cast<std::size_t>(step.wide)];
                directconv::runWide(src, padded, static_cast<int>(l.weightShape[1]), step.wideSide,
                                    shared_->wideTaps[static_cast<std::size_t>(step.wide)].data(), l.bias.data(),
                                    static_cast<int>(l.weightShape[0]), l.leakySlope, dst, ompThreads);
            } else if (step.gemm >= 0) {
                const Layer& l = shared_->layers[static_cast<std::size_t>(step.gemm)];
                gemmconv::run(src, padded, static_cast<int>(l.weightShape[1]), step.gemmSide,
                              static_cast<int>(l.weightShape[2]), l.stride, l.padding,
                              static_cast<const float*>(step.gemmWeights.get_data_handle()), l.bias.data(),
                              static_cast<int>(l.weightShape[0]), l.leakySlope, dst, plans_->im2col, ompThreads);
            } else {
                step.args.at(DNNL_ARG_SRC).set_data_handle(const_cast<float*>(src));
                step.args.at(DNNL_ARG_DST).set_data_handle(dst);
                step.primitive.execute(plans_->stream, step.args);
            }
            if (timed) {
                plans_->stream.wait();
                step.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                ++step.runs;
            }
        }
        plans_->stream.wait();
        if (result != out)
            std::copy(result, result + static_cast<std::size_t>(n) * outputRow, out);
    } catch (const dnnl::error& e) {
        throw Error(std::string("oneDNN inference: ") + e.what());
    } catch (const std::bad_alloc&) {
        throw Error("oneDNN inference: out of memory for a batch of " + std::to_string(n));
    }
}

std::vector<std::string> OneDnnChain::implementations() const {
    std::vector<std::string> out;
    if (auto it = plans_->byBatch.find(plans_->lastBatch); it != plans_->byBatch.end())
        for (const auto& step : it->second.steps)
            out.push_back(step.impl);
    return out;
}

std::vector<OneDnnChain::StepTime> OneDnnChain::stepTimes(int batch) const {
    std::vector<StepTime> out;
    if (auto it = plans_->byBatch.find(batch); it != plans_->byBatch.end()) {
        const Plan& plan = it->second;
        if (plan.inputRuns > 0)
            out.push_back(
                {plan.inputPerImage ? "input: bytes to floats, image by image" : "input: bytes to floats, the batch",
                 "the caller's conversion", 0.0, plan.inputSeconds, plan.inputRuns});
        for (const auto& step : plan.steps)
            out.push_back({step.what, step.impl, step.flops, step.seconds, step.runs});
    }
    return out;
}

bool OneDnnChain::firstConvolutionIsDirect() const {
    return shared_->direct;
}

namespace {

/// Where a plan's step reads and writes: −1 the caller's input / output, 0 or 1 a ping-pong buffer.
int otherBuffer(int buffer) {
    return buffer == 0 ? 1 : 0;
}

} // namespace

bool OneDnnChain::Shared::perImageSecond(dnnl::primitive& primitive, std::unordered_map<int, memory>& args) {
    const Layer& l = layers[1];
    const memory::dim in = l.weightShape[1], out = l.weightShape[0], k = l.weightShape[2];
    const memory::dim s = directconv::outSide(side, layers[0].padding), o = (s + 2 * l.padding - k) / l.stride + 1;
    const memory::desc src({1, in, s, s}, Dt::f32, Tag::nhwc), dst({1, out, o, o}, Dt::f32, Tag::nhwc);
    const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                            src, memory::desc({out, in, k, k}, Dt::f32, Tag::any), biases[1].get_desc(),
                                            dst, {l.stride, l.stride}, {l.padding, l.padding}, {l.padding, l.padding});
    const dnnl::convolution_forward::primitive_desc pd(d, leakyAttr(l.leakySlope), engine);
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
        return false;
    primitive = dnnl::convolution_forward(pd);
    const memory::desc given({out, in, k, k}, Dt::f32, Tag::oihw);
    args = {{DNNL_ARG_SRC, memory(src, engine, nullptr)},
            {DNNL_ARG_DST, memory(pd.dst_desc(), engine, nullptr)},
            {DNNL_ARG_WEIGHTS, weightsIn(1, pd.weights_desc(), given)},
            {DNNL_ARG_BIAS, biases[1]}};
    return true;
}

/// Layouts (docs/timings.md, issue 16): the first convolution reads the planar input; with few input channels (the
/// patch's three) oneDNN's direct kernel writes its blocked layout (16 channels a block with AVX-512) several times
/// faster than its kernels that read planar input and write channels-last (a reference kernel, ~1000× slower). Every
/// later convolution runs channels-last (oneDNN's brgconv kernels, which were as fast as the blocked ones on the
/// VAE-type encoder and faster on the BiGAN's 128 → 128 layers), after one reorder. With AVX-512 the first convolution
/// runs on the direct kernel instead (directconv.h), which writes channels-last itself: no reorder. Dense layers take
/// the last feature map as it is: their weights are given as [out, C, H, W] (the planar flatten's column order) and
/// reordered once into whatever matches it.
OneDnnChain::Plan OneDnnChain::buildPlan(int n) const {
    Shared& sh = *shared_;
    Plan plan;
    memory::desc cur({n, sh.channels, sh.side, sh.side}, Dt::f32, Tag::nchw);
    int curBuffer = -1; // the input
    memory::dim c = sh.channels, s = sh.side;
    auto add = [&](Plan::Step step, const memory::desc& dst, bool toOutput) {
        step.src = curBuffer;
        step.dst = toOutput ? -1 : otherBuffer(curBuffer);
        step.args.emplace(DNNL_ARG_SRC, memory(cur, sh.engine, nullptr));
        step.args.emplace(DNNL_ARG_DST, memory(dst, sh.engine, nullptr));
        step.dstBytes = dst.get_size();
        if (step.dst >= 0)
            plan.bufferBytes[step.dst] = std::max(plan.bufferBytes[step.dst], dst.get_size());
        curBuffer = step.dst;
        cur = dst;
        plan.steps.push_back(std::move(step));
    };
    try {
        for (std::size_t i = 0; i < sh.layers.size(); ++i) {
            const Layer& l = sh.layers[i];
            const bool last = i + 1 == sh.layers.size();
            const memory::dim out = l.weightShape[0];
            Plan::Step step;
            memory::desc given, weights, dst;
            if (l.conv) {
                const memory::dim k = l.weightShape[2], stride = l.stride, pad = l.padding;
                const memory::dim o = (s + 2 * pad - k) / stride + 1;
                step.flops = 2.0 * static_cast<double>(n * out * o * o * c * k * k);
                step.what = layerName(i, true) + ": " + std::to_string(c) + " -> " + std::to_string(out) +
                            " channels, " + std::to_string(s) + "^2 -> " + std::to_string(o) + "^2";
                if (i == 0 && sh.direct) { // straight into channels-last (directconv.h)
                    step.direct = true;
                    step.impl = "direct 3x3/2 convolution to channels-last (AVX-512)";
                    add(std::move(step), memory::desc({n, out, o, o}, Dt::f32, Tag::nhwc), last);
                    s = o;
                    c = out;
                    continue;
                }
                const bool planarIn = i == 0;
                if (!planarIn && cur != memory::desc({n, c, s, s}, Dt::f32, Tag::nhwc)) {
                    Plan::Step r;
                    const memory::desc nhwc({n, c, s, s}, Dt::f32, Tag::nhwc);
                    r.primitive = dnnl::reorder(dnnl::reorder::primitive_desc(sh.engine, cur, sh.engine, nhwc));
                    r.impl = "reorder to channels-last";
                    r.what = "reorder to channels-last";
                    add(std::move(r), nhwc, false);
                }
                if (!sh.wideTaps[i].empty()) { // channels-last to channels-last on the wide kernel (directconv.h)
                    step.wide = static_cast<int>(i);
                    step.wideSide = static_cast<int>(s);
                    step.impl = "direct 3x3/2 convolution, channels-last to channels-last (AVX-512)";
                    add(std::move(step), memory::desc({n, out, o, o}, Dt::f32, Tag::nhwc), last);
                    s = o;
                    c = out;
                    continue;
                }
                // oneDNN's own choice for the first (its blocked layout for the instruction set: 16 channels with
                // AVX-512, 8 with AVX2); channels-last for the rest.
                const Tag dstTag = planarIn ? Tag::any : Tag::nhwc;
                given = memory::desc({out, c, k, k}, Dt::f32, Tag::oihw);
                dst = memory::desc({n, out, o, o}, Dt::f32, dstTag);
                const dnnl::convolution_forward::desc d(
                    dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, cur,
                    memory::desc({out, c, k, k}, Dt::f32, Tag::any), sh.biases[i].get_desc(), dst, {stride, stride},
                    {pad, pad}, {pad, pad});
                const dnnl::convolution_forward::primitive_desc pd(d, leakyAttr(l.leakySlope), sh.engine);
                step.primitive = dnnl::convolution_forward(pd);
                step.impl = pd.impl_info_str();
                weights = pd.weights_desc();
                dst = pd.dst_desc();
                if (!planarIn) {
                    if (auto hwio = sh.gemmWeights(i, step.primitive, weights, given, cur, dst, n, *plans_)) {
                        step.primitive = {};
                        step.gemm = static_cast<int>(i);
                        step.gemmSide = static_cast<int>(s);
                        step.gemmWeights = *hwio;
                        step.impl = "im2col + sgemm (oneDNN)";
                        add(std::move(step), dst, last);
                        s = o;
                        c = out;
                        continue;
                    }
                }
                s = o;
            } else {
                const bool afterConv = cur.dims().size() == 4;
                step.flops = 2.0 * static_cast<double>(n * product(l.weightShape));
                step.what =
                    layerName(i, false) + ": " + std::to_string(l.weightShape[1]) + " -> " + std::to_string(out);
                given = afterConv ? memory::desc({out, c, s, s}, Dt::f32, Tag::oihw)
                                  : memory::desc({out, c}, Dt::f32, Tag::oi);
                dst = memory::desc({n, out}, Dt::f32, Tag::nc);
                const auto any = afterConv ? memory::desc({out, c, s, s}, Dt::f32, Tag::any)
                                           : memory::desc({out, c}, Dt::f32, Tag::any);
                const dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, cur, any,
                                                          sh.biases[i].get_desc(), dst);
                const dnnl::inner_product_forward::primitive_desc pd(d, leakyAttr(l.leakySlope), sh.engine);
                step.primitive = dnnl::inner_product_forward(pd);
                step.impl = pd.impl_info_str();
                weights = pd.weights_desc();
            }
            if (step.impl.rfind("ref", 0) == 0) // reference kernels are many times slower than LibTorch's path
                throw Error("oneDNN has no optimised kernel for " + layerName(i, l.conv) + " at a batch of " +
                            std::to_string(n) + " (" + step.impl + ")");
            step.args.emplace(DNNL_ARG_WEIGHTS, sh.weightsIn(i, weights, given));
            step.args.emplace(DNNL_ARG_BIAS, sh.biases[i]);
            add(std::move(step), dst, last);
            c = out;
        }
    } catch (const dnnl::error& e) {
        throw Error(std::string("oneDNN inference: cannot set up the chain for a batch of ") + std::to_string(n) +
                    ": " + e.what());
    }
    if (sh.fuseFirst)
        plan.fuseFirstTwo(sh);
    return plan;
}

/// The first convolution (direct kernel) and the second (the wide kernel, as many images at a time as OpenMP threads;
/// or oneDNN's primitive for one image) through a small buffer: the first's output (512 KiB an image for the VAE-type
/// and BiGAN encoders) is read by the second while it is still in the core's cache, where over the whole batch 33 MB
/// went to memory and back. In a scratch comparison on one thread the VAE-type's two layers took 19.1–19.3 ms a batch
/// of 64 this way against 22.6–23.1 ms, and BiGAN's second alone 27.7 against 31.3 ms (docs/timings.md).
void OneDnnChain::runFusedFirst(Plan& plan, const float* input, const InputRows* rows, int n, float* out, int padded,
                                int threads, bool timed) {
    Plan::Step &first = plan.steps[0], &second = plan.steps[1];
    const bool wide = second.wide >= 0;
    const Layer& l0 = shared_->layers.front();
    const Layer& l1 = shared_->layers[1];
    const int side = shared_->side, mid = directconv::outSide(side, l0.padding),
              in1 = static_cast<int>(l1.weightShape[1]);
    const int out0 = static_cast<int>(l0.weightShape[0]), out1 = static_cast<int>(l1.weightShape[0]);
    const int o1 = (mid + 2 * l1.padding - static_cast<int>(l1.weightShape[2])) / l1.stride + 1;
    // oneDNN's primitive is built for one image; the wide kernel takes as many as there are threads.
    const int chunk = wide ? std::max(1, threads) : 1;
    const std::size_t inPerImage = static_cast<std::size_t>(shared_->channels) * side * side;
    const std::size_t midPerImage = static_cast<std::size_t>(mid) * mid * out0;
    const std::size_t outPerImage = static_cast<std::size_t>(o1) * o1 * out1;
    float* scratch = plans_->fused.reserve(static_cast<std::size_t>(chunk) * midPerImage * sizeof(float));
    // rows: each round's images converted into a buffer that stays in the core's cache (VAE-type: 192 KiB an image,
    // where the whole batch's 12 MiB went to memory and back); its padded rows are zeros.
    float* converted =
        rows ? plans_->input.reserve(static_cast<std::size_t>(chunk) * inPerImage * sizeof(float)) : nullptr;
    if (!wide)
        second.perImageArgs.at(DNNL_ARG_SRC).set_data_handle(scratch);
    using Clock = std::chrono::steady_clock;
    double inputSeconds = 0.0;
    for (int i = 0; i < padded; i += chunk) {
        const int k = std::min(chunk, padded - i);
        float* y = out + static_cast<std::size_t>(i) * outPerImage;
        const auto tIn = timed ? Clock::now() : Clock::time_point{};
        const float* x = converted;
        if (!rows) {
            x = input + static_cast<std::size_t>(i) * inPerImage;
        } else {
            convertRows(*rows, i, k, n, inPerImage, converted);
        }
        const auto t0 = timed ? Clock::now() : Clock::time_point{};
        if (timed)
            inputSeconds += std::chrono::duration<double>(t0 - tIn).count();
        directconv::run(x, k, shared_->channels, side, l0.padding, shared_->directTaps.data(), l0.bias.data(), out0,
                        l0.leakySlope, scratch, threads);
        const auto t1 = timed ? Clock::now() : Clock::time_point{};
        if (wide) {
            directconv::runWide(scratch, k, in1, second.wideSide, shared_->wideTaps[1].data(), l1.bias.data(), out1,
                                l1.leakySlope, y, threads);
        } else {
            second.perImageArgs.at(DNNL_ARG_DST).set_data_handle(y);
            second.perImage.execute(plans_->stream, second.perImageArgs);
            plans_->stream.wait(); // the next image overwrites the scratch
        }
        if (timed) {
            first.seconds += std::chrono::duration<double>(t1 - t0).count();
            second.seconds += std::chrono::duration<double>(Clock::now() - t1).count();
        }
    }
    if (timed) {
        ++first.runs;
        ++second.runs;
        if (rows)
            plan.timeInput(true, inputSeconds);
    }
}

bool OneDnnChain::timeSteps(bool on) {
    return gTimeSteps.exchange(on, std::memory_order_relaxed);
}

#else // no oneDNN in this build

struct OneDnnChain::Shared {};
struct OneDnnChain::Plan {};
struct OneDnnChain::Plans {};

bool OneDnnChain::available() {
    return false;
}
OneDnnChain::OneDnnChain(std::vector<Layer> layers, int channels, int side) {
    checkLayers(layers, channels, side);
    throw Error("oneDNN inference: this build has no oneDNN");
}
OneDnnChain::OneDnnChain(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
OneDnnChain::~OneDnnChain() = default;
std::unique_ptr<OneDnnChain> OneDnnChain::replicate() const {
    return nullptr;
}
int OneDnnChain::outputs() const {
    return 0;
}
int OneDnnChain::paddedBatch(int n) {
    return n;
}
void OneDnnChain::run(const float*, int, float*, int) {
    throw Error("oneDNN inference: this build has no oneDNN");
}
void OneDnnChain::run(const InputRows&, int, float*, int) {
    throw Error("oneDNN inference: this build has no oneDNN");
}
std::vector<std::string> OneDnnChain::implementations() const {
    return {};
}
std::vector<OneDnnChain::StepTime> OneDnnChain::stepTimes(int) const {
    return {};
}
bool OneDnnChain::firstConvolutionIsDirect() const {
    return false;
}
bool OneDnnChain::timeSteps(bool) {
    return false;
}
OneDnnChain::Plan OneDnnChain::buildPlan(int) const {
    return {};
}

#endif

} // namespace nic

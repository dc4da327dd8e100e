#include "bench/limitprobe.h"

#include "core/base/cpuinfo.h"
#include "core/encoders/nn/flopcount.h"
#include "core/encoders/nn/fusedadam.h"
#include "core/encoders/nn/augment.h"
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/trainer.h"
#include "core/encoders/nn/torchencoder.h"
#include "core/encoders/nn/trainingsessions.h"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace nic::bench {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void cpuTimes(double& user, double& sys, long* minorFaults = nullptr) {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    user = static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec) / 1e6;
    sys = static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6;
    if (minorFaults)
        *minorFaults = u.ru_minflt;
}

} // namespace

std::string threadLayout() {
    auto env = [](const char* k) {
        const char* v = std::getenv(k);
        return std::string(k) + "=" + (v ? v : "(unset)");
    };
    return "LibTorch " + std::to_string(torch::get_num_threads()) + " intra-op / " +
           std::to_string(torch::get_num_interop_threads()) + " inter-op threads, OpenBLAS " +
           std::to_string(openBlasThreads()) + " threads (" + openBlasCoreName() + " kernels), " + env("OMP_NUM_THREADS") + ", " + env("OMP_WAIT_POLICY") +
           ", " + env("OPENBLAS_NUM_THREADS") + ", " + env("OPENBLAS_CORETYPE") + ", " + std::to_string(std::thread::hardware_concurrency()) + " CPUs";
}

namespace {

/// The product a probe round times: n×n by n×n through OpenBLAS (torch::mm), or a dense 3×3 convolution
/// (a channels-last [8, 256, 32, 32] input, 256 filters, padding 1: 9.66 GFLOP) that LibTorch runs in
/// oneDNN with its own kernels: AVX-512 where the CPU has it, whatever kernels OpenBLAS was told to use (on
/// a Zen 5 VM whose environment set OPENBLAS_CORETYPE=Haswell, AVX2 only, the convolution ran at twice
/// sgemm's rate). A 1×1 convolution of
/// n channels, the same GEMM as the matmul, ran at half that in oneDNN 2.6, so it is not the probe.
enum class Gemm { OpenBlas, OneDnnConv };

double flopsPerCall(Gemm gemm, int n) {
    if (gemm == Gemm::OpenBlas)
        return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    return 2.0 * 8 * 32 * 32 * 256 * 256 * 9;
}

/// `callers` threads, each with `threadsEach` LibTorch threads, timing `reps` products at once after
/// one warm-up each; returns the GFLOP/s of every round (all callers' FLOPs / the round's wall time),
/// sorted, and adds the CPU seconds and FLOPs used.
std::vector<double> timeRounds(Gemm gemm, int n, int reps, int callers, int threadsEach, const torch::Device& dev,
                               bool gpu, double& cpuSeconds, double& flopsDone) {
    std::vector<torch::Tensor> a(callers), b(callers), c(callers);
    const auto opts = torch::TensorOptions().device(dev);
    torch::manual_seed(1);
    for (int k = 0; k < callers; ++k) {
        if (gemm == Gemm::OpenBlas) {
            a[k] = torch::randn({n, n}, opts);
            b[k] = torch::randn({n, n}, opts);
            c[k] = torch::empty({n, n}, opts);
        } else {
            a[k] = torch::randn({8, 256, 32, 32}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
            b[k] = torch::randn({256, 256, 3, 3}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
        }
    }
    // A GPU runs kernels asynchronously: reading one element back waits for the product to finish.
    auto one = [&](int k) {
        c10::InferenceMode guard;
        if (gemm == Gemm::OpenBlas)
            torch::mm_out(c[k], a[k], b[k]);
        else
            c[k] = torch::conv2d(a[k], b[k], {}, 1, 1);
        if (gpu)
            (void)c[k].flatten()[0].item<float>();
    };
    // One caller runs on this thread, whose OpenMP team persists between rounds as a training thread's
    // does (a fresh thread per round builds its team anew: oneDNN then ran at 0.55 of this rate); several
    // run on threads of their own, one LibTorch thread each.
    auto round = [&] {
        if (callers == 1) {
            one(0);
            return;
        }
        std::vector<std::thread> ts;
        for (int k = 0; k < callers; ++k)
            ts.emplace_back([&, k] {
                torch::set_num_threads(threadsEach); // this thread's OpenMP team for oneDNN
                one(k);
            });
        for (auto& t : ts)
            t.join();
    };
    round(); // warm-up: thread pools, page faults, kernel selection
    const double flops = flopsPerCall(gemm, n) * callers;
    std::vector<double> rates;
    double u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    cpuTimes(u0, s0);
    for (int i = 0; i < reps; ++i) {
        const double t0 = now();
        round();
        rates.push_back(flops / (now() - t0) / 1e9);
    }
    cpuTimes(u1, s1);
    cpuSeconds += u1 - u0 + s1 - s0;
    flopsDone += flops * reps;
    std::sort(rates.begin(), rates.end());
    return rates;
}

/// The rounds of one way to use every core on the CPU: one caller with every CPU's thread, or one single-threaded
/// caller per physical core at once (timeRounds); LibTorch's and OpenBLAS's thread counts are put back afterwards.
std::vector<double> timeWay(Gemm gemm, bool perCore, int n, int reps, const torch::Device& dev, double& cpuSeconds,
                            double& flopsDone) {
    const int savedBlas = openBlasThreads();
    const int savedTorch = torch::get_num_threads();
    const int each = perCore ? 1 : usableCpus();
    setOpenBlasThreads(each);
    torch::set_num_threads(each);
    auto rates = timeRounds(gemm, n, reps, perCore ? physicalCores() : 1, each, dev, false, cpuSeconds, flopsDone);
    if (savedBlas > 0)
        setOpenBlasThreads(savedBlas);
    torch::set_num_threads(savedTorch);
    return rates;
}

} // namespace

SgemmRate probeSgemm(int n, int reps, const std::string& device) {
    SgemmRate r;
    r.n = n;
    r.device = device;
    const bool gpu = device == "cuda";
    const torch::Device dev = toDevice(device);
    r.torchThreads = torch::get_num_threads();
    r.blasThreads = gpu ? -1 : openBlasThreads();
    if (gpu) {
        double cpu = 0, flops = 0;
        const auto rates = timeRounds(Gemm::OpenBlas, n, reps, 1, r.torchThreads, dev, gpu, cpu, flops);
        r.gflops = rates.back();
        r.minGflops = rates.front();
        r.maxGflops = rates.back();
        r.layout = "one caller";
        r.kernel = "matmul";
        return r;
    }
    // The machine's limit is the best of its ways to run dense float arithmetic on every core: OpenBLAS's
    // sgemm and oneDNN's 3x3 convolution, each by one caller using every CPU and by one single-threaded caller per
    // physical core at once (the layout of compression's inference threads). Whatever the pipeline uses
    // is measured against the best of the four.
    struct Way {
        Gemm gemm;
        bool perCore;
        std::vector<double> rates;
        double cpu = 0, flops = 0;
    };
    std::vector<Way> ways{{Gemm::OpenBlas, false, {}}, {Gemm::OpenBlas, true, {}}, {Gemm::OneDnnConv, false, {}},
                          {Gemm::OneDnnConv, true, {}}};
    for (Way& w : ways)
        w.rates = timeWay(w.gemm, w.perCore, n, reps, dev, w.cpu, w.flops);
    // Best round, not median: other work on the machine only ever slows a round down, and a limit is
    // what the machine can do (single rounds here varied from 93 to 175 GFLOP/s on an idle 2-core VM).
    r.oneCallerGflops = ways[0].rates.back();
    r.perCoreGflops = ways[1].rates.back();
    r.convOneCallerGflops = ways[2].rates.back();
    r.convPerCoreGflops = ways[3].rates.back();
    const Way* best = &ways[0];
    for (const Way& w : ways)
        if (w.rates.back() > best->rates.back())
            best = &w;
    r.layout = best->perCore ? "one single-threaded caller per physical core" : "one caller on every CPU";
    r.kernel = best->gemm == Gemm::OpenBlas ? "OpenBLAS sgemm" : "oneDNN 3x3 convolution";
    r.gflops = best->rates.back();
    r.minGflops = best->rates.front();
    r.maxGflops = best->rates.back();
    r.gflopsPerCpuSecond = best->flops / std::max(1e-9, best->cpu) / 1e9;
    r.bestIsConv = best->gemm == Gemm::OneDnnConv;
    r.bestPerCore = best->perCore;
    return r;
}

double probeAgain(const SgemmRate& rate, int reps) {
    const bool gpu = rate.device == "cuda";
    const torch::Device dev = toDevice(rate.device);
    double cpu = 0, flops = 0;
    if (gpu)
        return timeRounds(Gemm::OpenBlas, rate.n, reps, 1, torch::get_num_threads(), dev, gpu, cpu, flops).back();
    return timeWay(rate.bestIsConv ? Gemm::OneDnnConv : Gemm::OpenBlas, rate.bestPerCore, rate.n, reps, dev, cpu, flops)
        .back();
}

std::string describeRate(const SgemmRate& r) {
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.1f GFLOP/s on %s through LibTorch (%s, %s; best of 5 rounds; %.1f-%.1f",
                  r.gflops, r.device.c_str(), r.kernel.c_str(), r.layout.c_str(), r.minGflops, r.maxGflops);
    std::string s = buf;
    if (r.oneCallerGflops > 0) {
        std::snprintf(buf, sizeof buf,
                      "; OpenBLAS sgemm %d^3 (%s kernels): one caller %.1f, one per core %.1f; "
                      "oneDNN 3x3 convolution: one caller %.1f, one per core %.1f",
                      r.n, openBlasCoreName().c_str(), r.oneCallerGflops, r.perCoreGflops, r.convOneCallerGflops,
                      r.convPerCoreGflops);
        s += buf;
    }
    if (r.gflopsPerCpuSecond > 0) {
        std::snprintf(buf, sizeof buf, "; %.1f per CPU second", r.gflopsPerCpuSecond);
        s += buf;
    }
    return s + ")";
}

CpuClock::CpuClock() {
    wall0_ = now();
    cpuTimes(user0_, sys0_, &faults0_);
}

void CpuClock::stop() {
    double u = 0, s = 0;
    long f = 0;
    cpuTimes(u, s, &f);
    wall_ = now() - wall0_;
    user_ = u - user0_;
    sys_ = s - sys0_;
    faults_ = f - faults0_;
}

void printLimit(const std::string& label, double flopsPerPatch, const SgemmRate& rate, double achieved,
                double cpuSecondsPerPatch, const std::string& unit) {
    const double limit = rate.gflops * 1e9 / flopsPerPatch;
    const std::string units = unit == "patch" ? "patches" : unit + "s";
    std::printf("  %-28s %7.4f GFLOP/%s  limit %8.1f %s/s  achieved %8.1f  ratio %.3f", label.c_str(),
                flopsPerPatch / 1e9, unit.c_str(), limit, units.c_str(), achieved, achieved / limit);
    if (cpuSecondsPerPatch > 0 && rate.gflopsPerCpuSecond > 0)
        std::printf("  per CPU second %.3f", flopsPerPatch / cpuSecondsPerPatch / 1e9 / rate.gflopsPerCpuSecond);
    std::printf("\n");
}

void printLayerTimes(PatchEncoder& encoder, const std::uint8_t* nhwc, int count, const SgemmRate& rate) {
    auto* te = dynamic_cast<TorchPatchEncoder*>(&encoder);
    if (!te)
        return;
    using Step = std::pair<std::string, std::function<torch::Tensor(const torch::Tensor&)>>;
    std::vector<Step> steps;
    torch::nn::Module& m = te->inferenceModule();
    if (auto* e = dynamic_cast<ConvEncoderImpl*>(&m)) {
        int i = 0;
        for (auto& block : *e->convs)
            steps.emplace_back("convs." + std::to_string(i++), [&block](const torch::Tensor& x) { return block.forward(x); });
        steps.emplace_back("dense", [e](const torch::Tensor& x) { return e->dense(flattenFeatures(x, e->flattenNhwc)); });
        steps.emplace_back("code", [e](const torch::Tensor& x) { return applyLinear(e->code, x); });
    } else if (auto* b = dynamic_cast<BiganEncoderImpl*>(&m)) {
        if (b->downsampleInput)
            steps.emplace_back("pool", [](const torch::Tensor& x) {
                return torch::nn::functional::avg_pool2d(x, torch::nn::functional::AvgPool2dFuncOptions(2));
            });
        int i = 0;
        for (auto& block : *b->convs)
            steps.emplace_back("convs." + std::to_string(i++), [&block](const torch::Tensor& x) { return block.forward(x); });
        steps.emplace_back("code", [b](const torch::Tensor& x) { return applyLinear(b->code, flattenFeatures(x, b->flattenNhwc)); });
    } else {
        return;
    }
    const auto costs = inferenceLayerCosts(te->meta());
    std::vector<double> ms(steps.size(), 1e30);
    std::thread([&] {
        c10::InferenceMode guard;
        auto input = toModelInput(nhwc, count, te->meta().patchSize, torch::kCPU);
        if (te->optimised() && te->device().is_cpu()) // what encode() feeds the optimised copy
            input = input.contiguous(torch::MemoryFormat::ChannelsLast);
        if (te->poolsInputWhileConverting()) // encode() pools while converting the bytes: not a step here
            input = torch::nn::functional::avg_pool2d(input, torch::nn::functional::AvgPool2dFuncOptions(2));
        for (int rep = 0; rep < 3; ++rep) {
            auto x = input;
            for (std::size_t i = 0; i < steps.size(); ++i) {
                const double t0 = now();
                x = steps[i].second(x);
                ms[i] = std::min(ms[i], (now() - t0) * 1000.0 / count);
            }
        }
    }).join();
    double total = 0;
    for (double v : ms)
        total += v;
    std::printf("    where the forward time goes (%d patches, best of 3, block by block):\n", count);
    for (std::size_t i = 0; i < steps.size(); ++i) {
        double macs = 0;
        for (const auto& c : costs)
            if (c.name == steps[i].first || c.name.rfind(steps[i].first + ".", 0) == 0)
                macs += static_cast<double>(c.macs);
        const double gflops = 2.0 * macs / (ms[i] / 1000.0) / 1e9;
        std::printf("      %-10s %7.3f ms/patch %5.1f %%", steps[i].first.c_str(), ms[i], 100.0 * ms[i] / total);
        if (macs > 0)
            std::printf("  %7.1f GFLOP/s = %.2f x the limit", gflops, gflops / rate.gflops);
        std::printf("\n");
    }
}

namespace {

/// The group an operator's own time is counted in.
const char* opGroup(const std::string& name) {
    const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
    if (has("convolution_backward"))
        return "convolution backward";
    if (has("convolution"))
        return "convolution forward";
    if (has("batch_norm"))
        return "batch norm (forward and backward; fused: with the activation)";
    if (name == "aten::mm" || name == "aten::addmm" || name == "aten::bmm" || name == "aten::baddbmm" ||
        has("mkldnn_linear") || has("dense_block"))
        return "dense layers (GEMM blocks, summed over threads)";
    if (has("leaky_relu") || has("tanh") || has("sigmoid") || has("threshold"))
        return "activations (forward and backward)";
    if (has("upsample") || has("pool"))
        return "up- and down-sampling";
    if (has("copy") || has("contiguous") || has("cat") || has("clone") || has("empty") || has("zero") || has("fill"))
        return "copies, allocation, zeroing";
    if (has("FusedAdam"))
        return "optimiser (fused Adam)";
    return "the rest (losses, element-wise)";
}

/// One convolution layer of a step, told apart by its weight and input shapes: the own time of every operator
/// under its aten::convolution (forward) and aten::convolution_backward calls, or the encoders' nic::convolution and
/// nic::convolution_backward (modules.cpp), whose LibTorch calls inside count for it. Layers of the same weight and
/// input shapes are one entry (the profiler records no stride): `outputs` then holds their output shapes.
struct ConvLayerTime {
    std::vector<std::int64_t> weight, input;       ///< [Co, Ci, kh, kw], [N, Ci, H, W]
    std::vector<std::vector<std::int64_t>> outputs; ///< [N, Co, Ho, Wo] of each layer seen
    double forwardUs = 0, backwardUs = 0;
    int forwardCalls = 0;
};

struct StepProfile {
    std::map<std::string, double> self;  ///< own microseconds per operator name
    std::vector<ConvLayerTime> conv;     ///< in order of first appearance
};

/// Own (exclusive) microseconds per operator name over every thread's events, and per convolution layer
/// (needs the profiler's input shapes).
StepProfile profileOf(const torch::autograd::profiler::thread_event_lists& lists) {
    using torch::autograd::profiler::EventKind;
    using torch::autograd::profiler::LegacyEvent;
    StepProfile out;
    const auto layerOf = [&](const std::vector<std::int64_t>& weight, const std::vector<std::int64_t>& input) {
        for (std::size_t i = 0; i < out.conv.size(); ++i)
            if (out.conv[i].weight == weight && out.conv[i].input == input)
                return static_cast<int>(i);
        out.conv.push_back({weight, input, {}, 0, 0, 0});
        return static_cast<int>(out.conv.size()) - 1;
    };
    for (const auto& events : lists) {
        struct Open {
            const LegacyEvent* push;
            double children;
            int layer;    ///< convolution layer this operator runs for, or -1
            bool backward;
        };
        std::vector<Open> stack;
        for (const auto& e : events) {
            if (e.kind() == EventKind::PushRange) {
                Open open{&e, 0.0, -1, false};
                if (!stack.empty()) {
                    open.layer = stack.back().layer;
                    open.backward = stack.back().backward;
                }
                const std::string name = e.name();
                const auto shapes = e.shapes();
                // LibTorch's convolution operators, or the encoders' own (modules.cpp: the same inputs), whose
                // LibTorch calls inside then count for the same layer.
                const bool forward = name == "aten::convolution" || name == "nic::convolution";
                const bool backward = name == "aten::convolution_backward" || name == "nic::convolution_backward";
                if (open.layer < 0 && forward && shapes.size() >= 2 && shapes[1].size() == 4) {
                    open.layer = layerOf(shapes[1], shapes[0]);
                    ++out.conv[static_cast<std::size_t>(open.layer)].forwardCalls;
                } else if (open.layer < 0 && backward && shapes.size() >= 3 && shapes[2].size() == 4) {
                    open.layer = layerOf(shapes[2], shapes[1]);
                    open.backward = true;
                    auto& outputs = out.conv[static_cast<std::size_t>(open.layer)].outputs;
                    if (std::find(outputs.begin(), outputs.end(), shapes[0]) == outputs.end())
                        outputs.push_back(shapes[0]);
                }
                stack.push_back(open);
            } else if (e.kind() == EventKind::PopRange && !stack.empty()) {
                const Open open = stack.back();
                stack.pop_back();
                const double us = open.push->cpuElapsedUs(e);
                out.self[open.push->name()] += us - open.children;
                if (open.layer >= 0)
                    (open.backward ? out.conv[static_cast<std::size_t>(open.layer)].backwardUs
                                   : out.conv[static_cast<std::size_t>(open.layer)].forwardUs) += us - open.children;
                if (!stack.empty())
                    stack.back().children += us;
            }
        }
    }
    return out;
}

/// Per convolution layer of `profile` (over `steps` steps): forward and backward time per step, forward
/// against the limit, and backward ÷ forward time (2 when both gradients run at the forward's speed, 1 when
/// only the weight gradient is needed: a layer whose input is the batch).
void printConvLayers(const StepProfile& profile, int steps, double stepUs, const SgemmRate& rate) {
    std::printf("    convolutions layer by layer (own time of every operator under each layer's calls, per step):\n");
    for (const auto& l : profile.conv) {
        const auto dims = [](const std::vector<std::int64_t>& v) {
            std::string t;
            for (std::size_t i = 1; i < v.size(); ++i)
                t += (i > 1 ? "x" : "") + std::to_string(v[i]);
            return t;
        };
        std::string outputs;
        for (const auto& o : l.outputs)
            outputs += (outputs.empty() ? "" : " or ") + dims(o);
        std::printf("      %-16s -> %-16s forward %6.1f ms %4.1f %%", dims(l.input).c_str(),
                    outputs.empty() ? "?" : outputs.c_str(), l.forwardUs / 1000.0 / steps,
                    100.0 * l.forwardUs / steps / stepUs);
        if (l.outputs.size() == 1 && l.outputs[0].size() == 4 && l.forwardUs > 0) {
            const auto& o = l.outputs[0];
            const double macs = static_cast<double>(o[0] * o[1] * o[2] * o[3]) *
                                static_cast<double>(l.weight[1] * l.weight[2] * l.weight[3]);
            const double gflops = 2.0 * macs * l.forwardCalls / steps / (l.forwardUs / steps / 1e6) / 1e9;
            std::printf(" = %.2f x the limit", gflops / rate.gflops);
        }
        std::printf("   backward %6.1f ms %4.1f %%", l.backwardUs / 1000.0 / steps, 100.0 * l.backwardUs / steps / stepUs);
        if (l.forwardUs > 0)
            std::printf(" = %.2f x forward's time", l.backwardUs / l.forwardUs);
        std::printf("\n");
    }
}

/// The operators that take most of making one batch (augmentation for the contrastive and supervised kinds),
/// by own time over three batches under the profiler.
void printBatchMaking(encodertraining::Session& session, const std::vector<std::size_t>& idx, std::uint64_t seed) {
    auto gen = augment::makeGenerator(seed + 1);
    std::mt19937_64 rng(seed + 1);
    const int batches = 3;
    torch::autograd::profiler::enableProfilerLegacy(
        torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
    const double t0 = now();
    for (int rep = 0; rep < batches; ++rep) {
        torch::NoGradGuard noGrad;
        encodertraining::Batch b;
        session.prepare(idx, gen, rng, b);
    }
    const double seconds = (now() - t0) / batches;
    const auto profile = profileOf(torch::autograd::profiler::disableProfilerLegacy());
    double total = 0;
    std::vector<std::pair<double, std::string>> sorted;
    for (const auto& [name, us] : profile.self) {
        sorted.emplace_back(us, name);
        total += us;
    }
    std::sort(sorted.rbegin(), sorted.rend());
    std::printf("    making a batch: %.1f ms with the profiler on; operators' own time, the largest first:\n",
                seconds * 1000);
    const std::size_t shown = std::min<std::size_t>(sorted.size(), 8);
    double rest = total;
    for (std::size_t i = 0; i < shown; ++i) {
        std::printf("      %-44s %7.2f ms per batch  %5.1f %%\n", sorted[i].second.c_str(), sorted[i].first / 1000.0 / batches,
                    100.0 * sorted[i].first / std::max(total, 1e-9));
        rest -= sorted[i].first;
    }
    if (sorted.size() > shown)
        std::printf("      %-44s %7.2f ms per batch  %5.1f %%\n", "(the other operators)", rest / 1000.0 / batches,
                    100.0 * rest / std::max(total, 1e-9));
}

/// The optimiser update alone, on copies of `net`'s parameters with random gradients: LibTorch's Adam
/// against FusedAdam, best of 5 steps each after 2 warm-up steps, alternating, with the memory traffic
/// each implies (bytes per float parameter: Adam's eight passes about 80, the fused loop 28).
void printOptimiserComparison(torch::nn::Module& net) {
    std::vector<torch::Tensor> forAdam, forFused;
    std::int64_t count = 0;
    for (const auto& p : net.parameters()) {
        forAdam.push_back(p.detach().clone().requires_grad_());
        forFused.push_back(p.detach().clone().requires_grad_());
        forAdam.back().mutable_grad() = torch::randn_like(p);
        forFused.back().mutable_grad() = forAdam.back().grad().clone();
        count += p.numel();
    }
    torch::optim::Adam adam(forAdam, torch::optim::AdamOptions(1e-4));
    FusedAdam fused(forFused, torch::optim::AdamOptions(1e-4));
    constexpr int warmUp = 2, timed = 5;
    double adamSeconds = 1e30, fusedSeconds = 1e30;
    for (int rep = 0; rep < warmUp + timed; ++rep) {
        double t0 = now();
        adam.step();
        if (rep >= warmUp)
            adamSeconds = std::min(adamSeconds, now() - t0);
        t0 = now();
        fused.step();
        if (rep >= warmUp)
            fusedSeconds = std::min(fusedSeconds, now() - t0);
    }
    const double n = static_cast<double>(count);
    std::printf("    optimiser update over %.2f M parameters (best of 5): LibTorch's Adam %.1f ms (~%.1f GB/s), fused "
                "%.1f ms (%.1f GB/s): %.2f x Adam's time\n",
                n / 1e6, adamSeconds * 1000, n * 80 / adamSeconds / 1e9, fusedSeconds * 1000,
                n * 28 / fusedSeconds / 1e9, fusedSeconds / adamSeconds);
    if (fused.referenceUpdates() > 0)
        std::printf("      (%lld of the fused optimiser's %lld parameter updates took Adam's own arithmetic)\n",
                    static_cast<long long>(fused.referenceUpdates()), static_cast<long long>((warmUp + timed) * forFused.size()));
}

} // namespace

void printTrainingStepProfile(const TrainOptions& o, const PatchBank& bank, double flopsPerStep, const SgemmRate& rate) {
    namespace et = encodertraining;
    const TensorCacheScope cacheScope;
    const int outputs = et::sessionOutputs(o.kind, static_cast<int>(bank.classNames().size()));
    torch::manual_seed(o.seed);
    const auto session = et::makeSession(o, bank.patchSize(), outputs, bank, bank, torch::kCPU, 1e-4, et::augmentStrength(o));
    keepWeightsChannelsLast(session->networks(), torch::kCPU);
    std::vector<std::size_t> idx;
    for (int i = 0; i < o.batchSize && i < static_cast<int>(bank.size()); ++i)
        idx.push_back(static_cast<std::size_t>(i));
    auto gen = augment::makeGenerator(o.seed);
    std::mt19937_64 rng(o.seed);
    double makeSeconds = 1e30, stepSeconds = 1e30;
    et::Batch batch;
    for (int rep = 0; rep < 3; ++rep) {
        const double t0 = now();
        torch::NoGradGuard noGrad;
        et::Batch b;
        session->prepare(idx, gen, rng, b);
        makeSeconds = std::min(makeSeconds, now() - t0);
        batch = b;
    }
    for (int rep = 0; rep < 5; ++rep) {
        const double t0 = now();
        session->step(batch);
        if (rep >= 2)
            stepSeconds = std::min(stepSeconds, now() - t0);
    }
    const int profiled = 3;
    torch::autograd::profiler::enableProfilerLegacy(
        torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true));
    const double p0 = now();
    for (int rep = 0; rep < profiled; ++rep)
        session->step(batch);
    const double profiledSeconds = (now() - p0) / profiled;
    const auto profile = profileOf(torch::autograd::profiler::disableProfilerLegacy());

    std::map<std::string, double> groups;
    double total = 0;
    for (const auto& [name, us] : profile.self) {
        groups[opGroup(name)] += us;
        total += us;
    }
    const double gflops = flopsPerStep / stepSeconds / 1e9;
    std::printf("    where a training step's time goes (batch %d, best of 3 after 2 warm-up steps): one step %.0f ms = "
                "%.1f GFLOP/s = %.3f x the limit; making its batch %.0f ms (CPU work beside the step, on the "
                "training thread or the prefetch thread)\n",
                o.batchSize, stepSeconds * 1000, gflops, gflops / rate.gflops, makeSeconds * 1000);
    std::vector<std::pair<double, std::string>> sorted;
    for (const auto& [name, us] : groups)
        sorted.emplace_back(us, name);
    std::sort(sorted.rbegin(), sorted.rend());
    std::printf("    operators' own time over %d profiled steps (%.0f ms per step with the profiler on):\n", profiled,
                profiledSeconds * 1000);
    for (const auto& [us, name] : sorted)
        std::printf("      %-44s %7.1f ms per step  %5.1f %%\n", name.c_str(), us / 1000.0 / profiled, 100.0 * us / total);
    std::vector<std::pair<double, std::string>> rest;
    for (const auto& [name, us] : profile.self)
        if (std::string(opGroup(name)).rfind("the rest", 0) == 0)
            rest.emplace_back(us, name);
    std::sort(rest.rbegin(), rest.rend());
    if (!rest.empty()) {
        std::printf("      the rest's largest:");
        for (std::size_t i = 0; i < rest.size() && i < 5; ++i)
            std::printf("%s %s %.1f ms", i ? "," : "", rest[i].second.c_str(), rest[i].first / 1000.0 / profiled);
        std::printf("\n");
    }
    printConvLayers(profile, profiled, total / profiled, rate);
    printOptimiserComparison(session->networks());
    printBatchMaking(*session, idx, o.seed);
}

namespace {

/// The best of 5 timed calls of `fn` after one warm-up, in milliseconds; `sync` (if any) runs before each clock read.
double bestMilliseconds(const std::function<void()>& fn, const std::function<void()>& sync = {}) {
    fn();
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        if (sync)
            sync();
        const double t0 = now();
        fn();
        if (sync)
            sync();
        best = std::min(best, now() - t0);
    }
    return 1000.0 * best;
}

} // namespace

void printAugmentationTimes(const PatchBank& bank, int count, const std::string& device) {
    torch::NoGradGuard noGrad;
    count = std::min(count, static_cast<int>(bank.size()));
    const int p = bank.patchSize();
    const auto bytes = torch::from_blob(const_cast<std::uint8_t*>(bank.data()), {count, p, p, 3}, torch::kUInt8);
    const auto unit = bytes.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0).contiguous();
    auto gen = augment::makeGenerator(7);
    const double loops = bestMilliseconds([&] { (void)augment::heavy(unit, 1.0, gen); });
    const double warp = bestMilliseconds([&] { (void)augment::geometric(unit, 1.0, gen); });
    augment::useVectorLoops(false);
    const double scalar = bestMilliseconds([&] { (void)augment::heavy(unit, 1.0, gen); });
    augment::useVectorLoops(true);
    const double ops = bestMilliseconds([&] { (void)augment::heavyWithTensorOps(unit, 1.0, gen); });
    std::printf("augmenting a batch of %d (heavy): CPU loops %.1f ms (the warp %.1f, the colour steps %.1f; scalar loops "
                "alone %.1f), CPU tensor operations %.1f ms",
                count, loops, warp, loops - warp, scalar, ops);
    if (device != "cpu") {
        const torch::Device dev = toDevice(device);
        const auto sync = [] { torch::cuda::synchronize(); };
        const double before = bestMilliseconds([&] { (void)augment::heavy(unit, 1.0, gen).to(dev); }, sync);
        const double on = bestMilliseconds(
            [&] {
                (void)augment::heavy(bytes.to(dev).permute({0, 3, 1, 2}).to(torch::kFloat).div_(255.0).contiguous(), 1.0,
                                     gen);
            },
            sync);
        std::printf("; on %s from the bytes %.2f ms against CPU loops and a copy %.1f ms: %.1f x faster", device.c_str(),
                    on, before, before / on);
    }
    std::printf("\n");
    std::fflush(stdout);
}

} // namespace nic::bench

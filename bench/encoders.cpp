// bench_encoders — forward throughput (patches/s, batch 64) and training throughput of every encoder on
// this machine, with the LibTorch thread count, against the limit probe (bench/limitprobe.h): the
// sgemm rate measured in the same run divided by each encoder's FLOPs per patch (core/encoders/nn/flopcount.h)
// gives a limit in patches/s; the ratio achieved / limit is the figure to track. Also the system-time
// share of each timed section. Training is timed four times, with each step's batch made on the prefetch
// thread (the trainers' default) and made inline, in the order prefetched, inline, inline, prefetched, and
// prints both ratios to the limit, their quotient and how long making the batches took. Prints figures; asserts nothing
// (house style #11).
//
// Usage: bench_encoders [--threads N] [--patch-size P] [--code-size C] [--forward-batches K]
//                       [--train-steps S] [--only KIND] [--layers] [--plain] [--separate-bn]
// --train-steps 0 measures the forward pass only (default 8: the first step of a run builds oneDNN's
// primitives and allocates every block afresh, so a short run understates the steady state). Each
// training line also says how many large tensor allocations the tensor cache served
// (core/encoders/nn/tensorcache.h; NIC_TENSOR_CACHE_MB=0 runs without it). --plain: encoders run as trained (no
// BatchNorm folding), to measure what the optimisation gives.
// --layers also compares the weight gradients of 3x3 stride-2 layers through LibTorch and through im2col + oneDNN's
// sgemm (core/encoders/nn/convgrad.h), which training takes for the layers with at least 32 input channels; the
// forward pass and input gradient of such layers through LibTorch and through sgemm, which training takes for small
// maps (convgrad::smallMap); and the first convolution's forward through LibTorch and through the direct kernel
// (core/encoders/nn/directconv.h).
// --separate-bn: training runs BatchNorm and LeakyReLU as LibTorch's separate operators instead of the
// fused function (core/encoders/nn/batchnormleaky.h), to measure what the fusion gives.
#include "core/encoders/encoder.h"
#include "bench/limitprobe.h"
#include "core/encoders/nn/convgrad.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/flopcount.h"
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

nic::PatchBank randomBank(int n, int p, std::uint64_t seed) {
    nic::PatchBank bank(p);
    bank.setClassNames({"normal", "tumor"});
    const int src = bank.sourceIndex("random");
    std::mt19937_64 rng(seed);
    nic::Image im(p, p, 3);
    for (int i = 0; i < n; ++i) {
        for (auto& b : im.pixels)
            b = static_cast<std::uint8_t>(rng() & 0xFF);
        bank.add(im, i % 2, src, i % 16, i / 16);
    }
    return bank;
}

/// Weight gradients of the encoders' 3 × 3, stride-2 layers (batch 64, channels-last, LibTorch's threads) through
/// LibTorch (oneDNN's kernel) and through im2col + oneDNN's sgemm (convgrad.h), alternated 5 times, best of each:
/// what the choice of convgrad::fits rests on (the first layer's three input channels included).
void compareWeightGradients() {
    if (!nic::convgrad::available())
        return;
    struct Shape {
        int in, out, side;
    };
    std::printf("weight gradients of 3x3 stride-2 layers, batch 64 (best of 5 alternated): LibTorch (oneDNN) vs "
                "im2col + sgemm\n");
    for (const Shape sh :
         {Shape{32, 64, 64}, Shape{64, 128, 32}, Shape{128, 256, 16}, Shape{256, 512, 8}, Shape{128, 128, 32},
          Shape{128, 128, 16}, Shape{128, 128, 8}, Shape{3, 32, 128}, Shape{3, 128, 64}}) {
        torch::NoGradGuard noGrad;
        const auto cl = torch::MemoryFormat::ChannelsLast;
        const auto x = torch::randn({64, sh.in, sh.side, sh.side}).contiguous(cl);
        const auto w = torch::randn({sh.out, sh.in, 3, 3}).contiguous(cl);
        const auto dy = torch::randn({64, sh.out, sh.side / 2, sh.side / 2}).contiguous(cl);
        auto dw = torch::empty_like(w);
        double torchBest = 1e9, sgemmBest = 1e9;
        for (int r = 0; r < 6; ++r) { // the first round warms both up
            auto t0 = std::chrono::steady_clock::now();
            auto grads = at::convolution_backward(dy, x, w, c10::nullopt, {2, 2}, {1, 1}, {1, 1}, false, {0, 0}, 1,
                                                  {false, true, false});
            const double a = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t0 = std::chrono::steady_clock::now();
            nic::convgrad::weightGradient(x.data_ptr<float>(), 64, sh.in, sh.side, dy.data_ptr<float>(), sh.out,
                                          dw.data_ptr<float>(), nic::computeThreads());
            const double b = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0) {
                torchBest = std::min(torchBest, a);
                sgemmBest = std::min(sgemmBest, b);
            }
        }
        std::printf("  %3d -> %3d, %3d^2 -> %2d^2: %6.2f ms vs %6.2f ms = %.2f x  (%s)\n", sh.in, sh.out, sh.side,
                    sh.side / 2, torchBest * 1e3, sgemmBest * 1e3, torchBest / sgemmBest,
                    nic::convgrad::fits(sh.in, 3, 2, 1, 1, 1) ? "sgemm here" : "LibTorch here");
    }
}

/// Training's forward pass and ∂x of 3 × 3 stride-2 layers through LibTorch (oneDNN) and through convgrad's sgemm
/// paths (batch 64, channels-last, best of 5 alternated): what convgrad::smallMap rests on.
void compareSmallMapConvolutions() {
    if (!nic::convgrad::available())
        return;
    std::printf("forward pass and input gradient of 3x3 stride-2 layers in training, batch 64 (best of 5 alternated): "
                "LibTorch (oneDNN) vs sgemm\n");
    struct Shape {
        int in, out, side;
    };
    for (const Shape sh : {Shape{64, 128, 32}, Shape{128, 256, 16}, Shape{128, 128, 8}, Shape{128, 256, 8},
                           Shape{256, 512, 16}, Shape{256, 512, 8}, Shape{256, 512, 4}, Shape{512, 512, 8}}) {
        torch::NoGradGuard noGrad;
        const auto cl = torch::MemoryFormat::ChannelsLast;
        const int o = sh.side / 2;
        const auto x = torch::randn({64, sh.in, sh.side, sh.side}).contiguous(cl);
        const auto w = torch::randn({sh.out, sh.in, 3, 3}).contiguous(cl), b = torch::randn({sh.out});
        const auto dy = torch::randn({64, sh.out, o, o}).contiguous(cl);
        double best[4] = {1e9, 1e9, 1e9, 1e9};
        for (int r = 0; r < 6; ++r) { // the first round warms every path up
            double t[4];
            auto t0 = std::chrono::steady_clock::now();
            const auto ref = at::convolution(x, w, b, {2, 2}, {1, 1}, {1, 1}, false, {0, 0}, 1);
            t[0] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t0 = std::chrono::steady_clock::now(); // as training runs it: the output's allocation included
            auto y = torch::empty({64, sh.out, o, o}, torch::TensorOptions().memory_format(cl));
            nic::convgrad::forward(x.data_ptr<float>(), 64, sh.in, sh.side, w.data_ptr<float>(), b.data_ptr<float>(),
                                   sh.out, y.data_ptr<float>(), nic::computeThreads());
            t[1] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t0 = std::chrono::steady_clock::now();
            const auto grads = at::convolution_backward(dy, x, w, c10::nullopt, {2, 2}, {1, 1}, {1, 1}, false, {0, 0},
                                                        1, {true, false, false});
            t[2] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t0 = std::chrono::steady_clock::now();
            auto dx = torch::empty_like(x);
            nic::convgrad::dataGradient(dy.data_ptr<float>(), 64, sh.in, sh.side, w.data_ptr<float>(), sh.out,
                                        dx.data_ptr<float>(), nic::computeThreads());
            t[3] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0)
                for (int k = 0; k < 4; ++k)
                    best[k] = std::min(best[k], t[k]);
        }
        std::printf(
            "  %3d -> %3d, %2d^2 -> %d^2: forward %6.2f vs %6.2f ms = %.2f x, input gradient %6.2f vs %6.2f ms = "
            "%.2f x  (%s here)\n",
            sh.in, sh.out, sh.side, o, best[0] * 1e3, best[1] * 1e3, best[0] / best[1], best[2] * 1e3, best[3] * 1e3,
            best[2] / best[3], nic::convgrad::smallMap(sh.in, sh.side) ? "sgemm" : "LibTorch");
    }
}

/// The encoders' first convolution as training runs it (batch 64, channels-last input and output, no activation)
/// through LibTorch (oneDNN) and through the direct kernel (directconv.h), alternated 5 times, best of each.
void compareFirstConvolutions() {
    if (!nic::directconv::available())
        return;
    std::printf("first convolution in training, batch 64, channels-last (best of 5 alternated): LibTorch (oneDNN) vs "
                "the direct kernel\n");
    for (const auto& [out, side] : {std::pair{32, 128}, std::pair{128, 64}}) {
        torch::NoGradGuard noGrad;
        const auto cl = torch::MemoryFormat::ChannelsLast;
        const auto x = torch::randn({64, 3, side, side}).contiguous(cl);
        const auto w = torch::randn({out, 3, 3, 3}).contiguous(cl), b = torch::randn({out});
        double torchBest = 1e9, directBest = 1e9;
        for (int r = 0; r < 6; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            const auto ref = at::convolution(x, w, b, {2, 2}, {1, 1}, {1, 1}, false, {0, 0}, 1);
            const double a = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t0 = std::chrono::steady_clock::now(); // as training runs it: the output and the weights' copy included
            auto y = torch::empty({64, out, side / 2, side / 2}, torch::TensorOptions().memory_format(cl));
            const auto wc = w.contiguous();
            const auto taps = nic::directconv::tapMajor(
                std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel()), out, 3);
            nic::directconv::run(x.data_ptr<float>(), 64, 3, side, 1, taps.data(), b.data_ptr<float>(), out, -1.0F,
                                 y.data_ptr<float>(), nic::computeThreads(), true);
            const double d = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0) {
                torchBest = std::min(torchBest, a);
                directBest = std::min(directBest, d);
            }
        }
        std::printf("    3 -> %3d, %3d^2 -> %2d^2: %6.2f ms vs %6.2f ms = %.2f x\n", out, side, side / 2,
                    torchBest * 1e3, directBest * 1e3, torchBest / directBest);
    }
}

} // namespace

int main(int argc, char** argv) {
    int threads = 0, p = 128, c = 128, forwardBatches = 3, trainSteps = 8;
    std::string only, deviceName = "cpu";
    bool layers = false, plain = false, separateBn = false;
    for (int i = 1; i < argc; ++i) {
        auto next = [&] { return i + 1 < argc ? argv[++i] : (std::fprintf(stderr, "missing value\n"), std::exit(2), ""); };
        if (!std::strcmp(argv[i], "--threads"))
            threads = std::atoi(next());
        else if (!std::strcmp(argv[i], "--patch-size"))
            p = std::atoi(next());
        else if (!std::strcmp(argv[i], "--code-size"))
            c = std::atoi(next());
        else if (!std::strcmp(argv[i], "--forward-batches"))
            forwardBatches = std::atoi(next());
        else if (!std::strcmp(argv[i], "--train-steps"))
            trainSteps = std::atoi(next());
        else if (!std::strcmp(argv[i], "--only"))
            only = next();
        else if (!std::strcmp(argv[i], "--layers"))
            layers = true;
        else if (!std::strcmp(argv[i], "--plain"))
            plain = true;
        else if (!std::strcmp(argv[i], "--separate-bn"))
            separateBn = true;
        else if (!std::strcmp(argv[i], "--device"))
            deviceName = next();
        else {
            std::fprintf(stderr, "usage: bench_encoders [--threads N] [--patch-size P] [--code-size C] "
                                 "[--forward-batches K] [--train-steps S] [--only KIND] [--layers] [--plain] "
                                 "[--separate-bn] [--device cpu|cuda|auto]\n");
            return 2;
        }
    }
    try {
        nic::ComputeOptions compute;
        compute.threads = threads;
        compute.optimiseInference = !plain;
        compute.device = deviceName;
        const std::string device = nic::configureCompute(compute);
        std::printf("device %s, %d LibTorch threads, P = %d, C = %d, batch 64\n", device.c_str(), nic::computeThreads(), p, c);
        std::printf("threads: %s\n", nic::bench::threadLayout().c_str());
        nic::useFusedBatchNorm(!separateBn);
        std::printf("training's BatchNorm -> LeakyReLU: %s\n",
                    separateBn ? "LibTorch's separate operators (--separate-bn)" : "fused (batchnormleaky.h)");
        const nic::bench::SgemmRate rate = nic::bench::probeSgemm(2048, 5, device);
        std::printf("limit probe: %s; %d LibTorch, %d OpenBLAS threads\n", nic::bench::describeRate(rate).c_str(),
                    rate.torchThreads, rate.blasThreads);
        const int batch = 64;
        const nic::PatchBank bank = randomBank(batch * 2, p, 1);
        const nic::PatchBank val = randomBank(16, p, 2);
        if (trainSteps > 0)
            nic::bench::printAugmentationTimes(bank, batch, device);
        if (trainSteps > 0 && layers && device == "cpu") {
            compareWeightGradients();
            compareSmallMapConvolutions();
            compareFirstConvolutions();
        }
        const auto tmp = std::filesystem::temp_directory_path() / ("bench-encoders-" + std::to_string(::getpid()));
        std::filesystem::create_directories(tmp);

        std::vector<std::string> names = {"mean-rgb", "vae", "contrastive", "bigan", "supervised-tumor", "supervised-tissue"};
        for (const auto& name : names) {
            if (!only.empty() && only != name)
                continue;
            std::unique_ptr<nic::PatchEncoder> enc;
            const auto kind = nic::parseEncoderKind(name);
            if (kind)
                enc = nic::createEncoder(*kind, p, c, 9, 1, compute);
            else
                enc = std::make_unique<nic::MeanRgbEncoder>(p);
            std::vector<float> out(static_cast<std::size_t>(batch) * static_cast<std::size_t>(enc->info().codeSize));
            // On a thread of its own, as compressSlide's inference stage calls the encoder.
            double fwd = 0;
            nic::bench::CpuClock fwdClock;
            std::thread([&] {
                enc->encode(bank.data(), batch, out.data()); // warm-up
                fwdClock = nic::bench::CpuClock();
                for (int k = 0; k < forwardBatches; ++k)
                    enc->encode(bank.data(), batch, out.data());
                fwdClock.stop();
                fwd = forwardBatches * batch / fwdClock.wall();
            }).join();
            std::printf("%s\n", name.c_str());
            if (!kind) {
                std::printf("  forward %.1f patches/s (no multiply-adds to count)\n", fwd);
                continue;
            }
            nic::EncoderMeta meta;
            meta.kind = name;
            meta.patchSize = p;
            meta.codeSize = c;
            nic::bench::printLimit("forward (compression)", nic::inferenceFlopsPerPatch(meta), rate, fwd,
                                   (fwdClock.user() + fwdClock.sys()) / (forwardBatches * batch));
            std::printf("    sys/user %.3f, %.2f cores busy, %.2f ms per patch, %.1f page faults per patch\n",
                        fwdClock.sysPerUser(), fwdClock.coresBusy(), 1000.0 / fwd,
                        static_cast<double>(fwdClock.minorFaults()) / (forwardBatches * batch));
            if (layers) {
                nic::bench::printLayerTimes(*enc, bank.data(), batch, rate);
                const auto costs = nic::inferenceLayerCosts(meta);
                double total = 0;
                for (const auto& l : costs)
                    total += static_cast<double>(l.macs);
                for (const auto& l : costs)
                    std::printf("    %-24s %8.2f M multiply-adds  %5.1f %%\n", l.name.c_str(),
                                static_cast<double>(l.macs) / 1e6, 100.0 * static_cast<double>(l.macs) / total);
            }

            if (trainSteps <= 0)
                continue;
            nic::TrainOptions o;
            o.kind = *kind;
            o.codeSize = c;
            o.out = tmp / (name + ".nicenc");
            o.epochs = 1;
            o.stepsPerEpoch = trainSteps;
            o.validationPairs = 16;
            o.compute = compute;
            // A one-step run first, so that allocation warm-up is not counted.
            auto warm = o;
            warm.stepsPerEpoch = 1;
            nic::trainEncoder(warm, bank, val);
            const double perPatch = nic::trainingFlopsPerPatch(*kind, p, c, 9);
            const int patchesPerStep = batch * (name == "contrastive" ? 2 : 1); // contrastive: 64 pairs
            if (layers)
                nic::bench::printTrainingStepProfile(o, bank, perPatch * patchesPerStep, rate);
            // Batches made on the prefetch thread and inline on the training thread, the same steps,
            // in the order prefetched, inline, inline, prefetched so that drift over the minutes cancels out.
            // Each run also between two short probes (probeAgain; the probe after one run is the probe before the
            // next): the machine's limit beside the run. The ratios to those take out the VM's drift between the
            // run-start probe and the run.
            double seconds[2] = {0.0, 0.0}, stepSeconds[2] = {0.0, 0.0};
            double limitSeconds[2] = {0.0, 0.0};
            const double runFlops = perPatch * trainSteps * patchesPerStep;
            double probeBefore = nic::bench::probeAgain(rate);
            for (const bool prefetch : {true, false, false, true}) {
                o.batchThread =
                    prefetch ? nic::TrainOptions::BatchThread::Prefetch : nic::TrainOptions::BatchThread::Inline;
                const nic::TensorCacheStats cache0 = nic::tensorCacheStats();
                nic::bench::CpuClock trainClock;
                const nic::TrainResult r = nic::trainEncoder(o, bank, val);
                trainClock.stop();
                const double probeAfter = nic::bench::probeAgain(rate);
                const double beside = std::max(probeBefore, probeAfter);
                probeBefore = probeAfter;
                const double s = trainClock.wall();
                seconds[prefetch ? 0 : 1] += s;
                const double train = trainSteps * patchesPerStep / s;
                nic::bench::printLimit(prefetch ? "training, prefetched" : "training, batches inline", perPatch, rate,
                                       train, (trainClock.user() + trainClock.sys()) / (train * s));
                const nic::EpochRecord last = r.history.empty() ? nic::EpochRecord{} : r.history.back();
                const double made = last.dataSeconds, waited = last.dataWaitSeconds;
                stepSeconds[prefetch ? 0 : 1] += last.stepSeconds;
                const double rest = s - last.stepSeconds - last.validationSeconds;
                std::printf("    the run's %.2f s: steps %.2f s (%.3f x the limit), validation %.2f s, the rest %.2f s "
                            "(writing the encoder file and checkpoint %.2f s, set-up and the rest %.2f s)\n",
                            s, last.stepSeconds,
                            last.stepSeconds > 0 ? trainSteps * patchesPerStep / last.stepSeconds * perPatch / 1e9 / rate.gflops
                                                 : 0.0,
                            last.validationSeconds, rest, r.saveSeconds, rest - r.saveSeconds);
                std::printf("    sys/user %.3f, %.2f cores busy, %.2f s per step, %.0f page faults per step; batches "
                            "made in %.2f s (%.0f %% of the run), training thread waited %.2f s for them\n",
                            trainClock.sysPerUser(), trainClock.coresBusy(), s / trainSteps,
                            static_cast<double>(trainClock.minorFaults()) / trainSteps, made, 100.0 * made / s, waited);
                const nic::TensorCacheStats cache1 = nic::tensorCacheStats();
                const auto hits = cache1.hits - cache0.hits, misses = cache1.misses - cache0.misses;
                std::printf("    tensor cache %s: %llu of %llu allocations of 1 MiB or more reused a freed block\n",
                            cache1.installed ? "on" : "off", static_cast<unsigned long long>(hits),
                            static_cast<unsigned long long>(hits + misses));
                const double limitS = runFlops / (beside * 1e9);
                limitSeconds[prefetch ? 0 : 1] += limitS;
                std::printf("    probe beside the run (best of 5 rounds before and after): %.1f GFLOP/s = %.2f x the "
                            "run-start limit; ratio to it %.3f, steps alone %.3f\n",
                            beside, beside / rate.gflops, limitS / s,
                            last.stepSeconds > 0 ? limitS / last.stepSeconds : 0.0);
            }
            const double patches = 2.0 * trainSteps * patchesPerStep;
            const double limit = rate.gflops * 1e9 / perPatch;
            auto automatic = o;
            automatic.batchThread = nic::TrainOptions::BatchThread::Auto;
            std::printf("  training (3x forward FLOPs): ratio to the limit %.3f prefetched, %.3f inline "
                        "(the default here: %s); prefetched / inline speed %.3f\n",
                        patches / seconds[0] / limit, patches / seconds[1] / limit,
                        nic::prefetchesBatches(automatic) ? "prefetched" : "inline", seconds[1] / seconds[0]);
            std::printf("  training steps alone (what a long epoch approaches; no validation, saving or set-up): "
                        "ratio to the limit %.3f prefetched, %.3f inline\n",
                        patches / stepSeconds[0] / limit, patches / stepSeconds[1] / limit);
            std::printf(
                "  the same against the probes beside each run (the machine's drift taken out): whole runs %.3f "
                "prefetched, %.3f inline; steps alone %.3f prefetched, %.3f inline\n",
                limitSeconds[0] / seconds[0], limitSeconds[1] / seconds[1], limitSeconds[0] / stepSeconds[0],
                limitSeconds[1] / stepSeconds[1]);
            std::fflush(stdout);
        }
        std::filesystem::remove_all(tmp);
        std::printf("(training figures include one validation pass and a checkpoint write per run)\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_encoders: %s\n", e.what());
        return 1;
    }
    return 0;
}

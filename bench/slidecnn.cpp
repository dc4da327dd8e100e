// bench_slidecnn — the slide-level CNN's training against the machine's limit (issue 16). Prints figures;
// asserts nothing.
//
//   bench_slidecnn [--slides 24] [--grid 64] [--channels 128] [--crop 64] [--batch 16] [--steps 20]
//                  [--epochs 2] [--threads 0] [--pooling max|avg|flatten] [--device cpu|cuda|auto]
//                  [--channel-first] [--separate-bn] [--channel-first-grids]
// (Step 2 runs the network and its crops channels-last on the CPU, as crossValidate's trainer does there and as
// oneDNN prefers; --channel-first runs them in LibTorch's default layout, as the trainer did before. --separate-bn
// runs BatchNorm, LeakyReLU and Dropout2d as separate operators instead of core/encoders/nn/batchnormleaky.h;
// without it, step 2 also times the separate operators in the same run and prints fused / separate.)
//
// 1. The limit probe (bench/limitprobe.h) and the network's multiply-adds per crop counted from its layers
//    (core/encoders/nn/flopcount.h): a training step costs 3 × the forward FLOPs (forward, backward ≈ 2 ×
//    forward), so limit crops/s = sgemm rate / (3 × forward FLOPs per crop).
// 2. Training steps alone: the network, loss, L2 penalty, backward and fused Adam (gradients cleared, not zeroed)
//    of crossValidate's step on random crops of the cohort's shape, for --steps steps after two warm-up steps;
//    achieved crops/s and its ratio to the limit, system-time share, then the forward time block by block.
// 3. The trainer's crops: one batch of channels-last crops copied from the cohort's grids held channel-first and
//    channels-last (the order compressed-slide files store and LatentGridFileSource keeps), and the ratio.
// 4. A real crossValidate (3 folds, --epochs epochs, --steps steps per epoch) on a random in-memory cohort
//    of --slides grids, channels-last unless --channel-first-grids: seconds per epoch from the run's own curves,
//    the share of an epoch its training steps take (the rest: crop sampling, validation with test-time
//    augmentation, checkpoints), and the epoch's training FLOPs against the limit.
#include "bench/limitprobe.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/flopcount.h"
#include "core/encoders/nn/fusedadam.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/slidelearning/nn/slidecnn.h"
#include "core/slidelearning/nn/slidetrainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace nic;

namespace {

struct Args {
    int slides = 24, grid = 64, channels = 128, crop = 64, batch = 16, steps = 20, epochs = 2, threads = 0;
    std::string pooling = "max";
    std::string device = "cpu";
    bool channelsLast = true; // on the CPU; --channel-first turns it off
    bool separateBn = false;  // --separate-bn: BatchNorm, LeakyReLU and Dropout2d as separate operators
    bool channelFirstGrids = false; // --channel-first-grids: the cohort's grids [C, H, W] instead of the files' [H, W, C]
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// Random grids, channels-last as LatentGridFileSource reads them from compressed-slide files unless
/// `channelFirst` (the same values in the other layout).
InMemoryGridSource randomCohort(const Args& a, std::vector<double>& labels, bool channelFirst) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::vector<std::string> ids;
    std::vector<std::vector<SlideGrid>> variants;
    for (int s = 0; s < a.slides; ++s) {
        SlideGrid g;
        g.channels = a.channels;
        g.rows = g.cols = a.grid;
        g.data.resize(static_cast<std::size_t>(a.channels) * static_cast<std::size_t>(a.grid * a.grid));
        for (auto& v : g.data)
            v = normal(rng);
        g.tissue.assign(static_cast<std::size_t>(a.grid * a.grid), 1.0F);
        if (!channelFirst) { // the values of [C, H, W] stored [H, W, C]
            const auto hwc = torch::from_blob(g.data.data(), {a.channels, a.grid, a.grid}).permute({1, 2, 0}).contiguous();
            std::memcpy(g.data.data(), hwc.data_ptr<float>(), g.data.size() * sizeof(float));
            g.channelsLast = true;
        }
        ids.push_back("slide-" + std::to_string(s));
        variants.push_back({std::move(g)});
        labels.push_back(s % 2);
    }
    return InMemoryGridSource(std::move(ids), std::move(variants));
}

/// Forward time of each block on `x` (best of 3), against the sgemm rate.
void printBlockTimes(SlideCnn& net, const torch::Tensor& x, const std::vector<LayerCost>& costs,
                     const bench::SgemmRate& rate) {
    torch::NoGradGuard noGrad;
    net->eval();
    std::printf("    where the forward time goes (%lld crops, best of 3, block by block):\n",
                static_cast<long long>(x.size(0)));
    torch::Tensor h = x;
    double total = 0;
    std::vector<std::pair<std::string, double>> times;
    std::vector<double> macs;
    for (std::size_t k = 0; k < net->blocks.size(); ++k) {
        double best = 1e30;
        torch::Tensor out;
        for (int r = 0; r < 3; ++r) {
            const double t0 = now();
            out = net->blocks[k]->forward(h);
            best = std::min(best, now() - t0);
        }
        h = out;
        const std::string name = "block" + std::to_string(k + 1);
        double m = 0;
        for (const auto& c : costs)
            if (c.name.rfind(name + ".", 0) == 0)
                m += static_cast<double>(c.macs);
        times.emplace_back(name, best);
        macs.push_back(m);
        total += best;
    }
    for (std::size_t k = 0; k < times.size(); ++k) {
        const double gflops = 2.0 * macs[k] * static_cast<double>(x.size(0)) / times[k].second / 1e9;
        std::printf("      %-8s %8.3f ms/crop %6.1f %%   %7.1f GFLOP/s = %.2f x the limit\n", times[k].first.c_str(),
                    times[k].second * 1e3 / static_cast<double>(x.size(0)), 100.0 * times[k].second / total, gflops,
                    gflops / rate.gflops);
    }
}

/// What the trainer's crops cost per batch: copyCrop of --batch random crops (channels-last, as the trainer feeds
/// them) from the same cohort held channel-first and channels-last; best of 5 rounds of 10 batches each.
void printCropCopies(const Args& a) {
    std::vector<double> labels;
    InMemoryGridSource first = randomCohort(a, labels, true);
    InMemoryGridSource last = randomCohort(a, labels, false);
    std::vector<float> batch(static_cast<std::size_t>(a.batch) * static_cast<std::size_t>(a.crop) *
                             static_cast<std::size_t>(a.crop) * static_cast<std::size_t>(a.channels));
    const std::size_t plane = batch.size() / static_cast<std::size_t>(a.batch);
    double seconds[2] = {1e30, 1e30};
    for (int round = 0; round < 5; ++round)
        for (int k = 0; k < 2; ++k) {
            InMemoryGridSource& source = k == 0 ? first : last;
            std::mt19937 rng(static_cast<unsigned>(round));
            const double t0 = now();
            for (int b = 0; b < 10 * a.batch; ++b) {
                const auto slide = static_cast<std::size_t>(rng() % static_cast<unsigned>(a.slides));
                const GridCell centre{static_cast<int>(rng() % static_cast<unsigned>(a.grid)),
                                      static_cast<int>(rng() % static_cast<unsigned>(a.grid))};
                copyCrop(source.grid(slide, 0), centre, a.crop, batch.data() + static_cast<std::size_t>(b % a.batch) * plane,
                         true);
            }
            seconds[k] = std::min(seconds[k], (now() - t0) / 10);
        }
    std::printf("crops for one batch (%d channels-last crops, best of 5): from [C, H, W] grids %.2f ms, from [H, W, C] "
                "grids %.2f ms; %.2f x faster\n",
                a.batch, seconds[0] * 1e3, seconds[1] * 1e3, seconds[0] / seconds[1]);
}

} // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        const std::string k = argv[i];
        if (k == "--slides")
            a.slides = std::stoi(next());
        else if (k == "--grid")
            a.grid = std::stoi(next());
        else if (k == "--channels")
            a.channels = std::stoi(next());
        else if (k == "--crop")
            a.crop = std::stoi(next());
        else if (k == "--batch")
            a.batch = std::stoi(next());
        else if (k == "--steps")
            a.steps = std::stoi(next());
        else if (k == "--epochs")
            a.epochs = std::stoi(next());
        else if (k == "--threads")
            a.threads = std::stoi(next());
        else if (k == "--pooling")
            a.pooling = next();
        else if (k == "--device")
            a.device = next();
        else if (k == "--channel-first")
            a.channelsLast = false;
        else if (k == "--separate-bn")
            a.separateBn = true;
        else if (k == "--channel-first-grids")
            a.channelFirstGrids = true;
        else {
            std::fprintf(stderr, "usage: bench_slidecnn [--slides N] [--grid N] [--channels C] [--crop R] [--batch B] "
                                 "[--steps S] [--epochs E] [--threads N] [--pooling max|avg|flatten] [--device D] "
                                 "[--channel-first] [--separate-bn] [--channel-first-grids]\n");
            return 2;
        }
    }
    ComputeOptions compute;
    compute.device = a.device;
    compute.threads = a.threads;
    const std::string device = configureCompute(compute);
    const torch::Device dev = device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    std::printf("bench_slidecnn: %d slides of %d x %d x %d, crop %d, batch %d, device %s\n", a.slides, a.grid, a.grid,
                a.channels, a.crop, a.batch, device.c_str());
    std::printf("threads: %s\n", bench::threadLayout().c_str());
    useFusedBatchNorm(!a.separateBn);
    std::printf("BatchNorm -> LeakyReLU -> Dropout2d in training: %s\n",
                a.separateBn ? "LibTorch's separate operators (--separate-bn)" : "fused (batchnormleaky.h)");

    SlideCnnConfig cfg;
    cfg.inputChannels = a.channels;
    cfg.pooling = a.pooling == "avg" ? GlobalPooling::Average : a.pooling == "flatten" ? GlobalPooling::Flatten
                                                                                       : GlobalPooling::Max;
    cfg.inputSize = cfg.pooling == GlobalPooling::Flatten ? a.crop : 0;
    torch::manual_seed(3);
    SlideCnn net(cfg);
    net->to(dev);
    const auto costs = moduleLayerCosts(*net, a.crop);
    double macs = 0;
    for (const auto& c : costs)
        macs += static_cast<double>(c.macs);
    const double forwardFlops = 2.0 * macs, trainFlops = 3.0 * forwardFlops;

    const bench::SgemmRate rate = bench::probeSgemm(2048, 5, device);
    std::printf("limit probe: %s\n", bench::describeRate(rate).c_str());
    configureCompute(compute); // the probe changes OpenBLAS's threads while it runs; back to the layout

    // Training steps alone.
    FusedAdam opt(net->parameters(), torch::optim::AdamOptions(1e-3)); // the trainer's optimiser and gradient clearing
    auto x = torch::randn({a.batch, a.channels, a.crop, a.crop}).to(dev);
    if (a.channelsLast && dev.is_cpu()) {
        x = x.contiguous(torch::MemoryFormat::ChannelsLast);
        for (auto& p : net->parameters())
            if (p.dim() == 4)
                p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    const auto y = (torch::rand({a.batch}) > 0.5).to(torch::kFloat).to(dev);
    auto step = [&] {
        net->train();
        auto loss = torch::binary_cross_entropy_with_logits(net->forward(x), y) + net->l2Penalty();
        clearGradients(opt);
        loss.backward();
        opt.step();
        if (dev.is_cuda())
            (void)loss.item<float>();
    };
    // The trainer keeps freed activations for the next step while a run lasts (tensorcache.h); so do these steps
    // (the scope ends before the cross-validation, which starts with an empty cache as `nic train` does).
    std::optional<TensorCacheScope> cacheScope;
    cacheScope.emplace();
    // --steps steps after a warm-up step, timed.
    auto timedSteps = [&] {
        step();
        bench::CpuClock c;
        for (int s = 0; s < a.steps; ++s)
            step();
        c.stop();
        return c;
    };
    step();
    const bench::CpuClock clock = timedSteps();
    const double stepSeconds = clock.wall() / a.steps;
    const double cropsPerSecond = a.batch / stepSeconds;
    bench::printLimit("training steps", trainFlops, rate, cropsPerSecond,
                      (clock.user() + clock.sys()) / (a.steps * static_cast<double>(a.batch)), "crop");
    std::printf("    %.3f s per step of %d crops; sys/user %.3f, %.2f cores busy, %.0f page faults per step\n", stepSeconds,
                a.batch, clock.sysPerUser(), clock.coresBusy(), static_cast<double>(clock.minorFaults()) / a.steps);
    if (dev.is_cpu() && !a.separateBn) {
        // What the fused BatchNorm → LeakyReLU → Dropout2d gives, in this run: the same steps with the separate
        // operators, then fused once more (the machine's speed drifts; the two fused timings bracket it).
        auto secondsPerStep = [&](bool fused) {
            useFusedBatchNorm(fused);
            return timedSteps().wall() / a.steps;
        };
        const double separate = secondsPerStep(false), fusedAgain = secondsPerStep(true);
        const double limitCrops = rate.gflops * 1e9 / trainFlops;
        std::printf("    with BatchNorm -> LeakyReLU -> Dropout2d as separate operators: %.3f s per step, ratio %.3f; "
                    "fused / separate speed %.2f (fused %.3f s before, %.3f s after)\n",
                    separate, a.batch / separate / limitCrops, separate / ((stepSeconds + fusedAgain) / 2), stepSeconds,
                    fusedAgain);
    }
    printBlockTimes(net, x, costs, rate);

    cacheScope.reset();
    printCropCopies(a);

    // A real cross-validation on a random cohort: epoch seconds from its curves.
    std::vector<double> labels;
    InMemoryGridSource source = randomCohort(a, labels, a.channelFirstGrids);
    std::printf("crossValidate's grids: %s\n", a.channelFirstGrids ? "[C, H, W] (--channel-first-grids)"
                                                                     : "[H, W, C], as compressed-slide files give them");
    SlideTrainOptions o;
    o.folds = 3;
    o.epochs = a.epochs;
    o.stepsPerEpoch = a.steps;
    o.batchSize = a.batch;
    o.cropSize = a.crop;
    o.network = cfg;
    o.device = device;
    o.threads = a.threads;
    o.bootstrapResamples = 10;
    o.patience = 1000;
    const auto dir = std::filesystem::temp_directory_path() / ("nic-bench-slidecnn-" + std::to_string(::getpid()));
    const TensorCacheStats cache0 = tensorCacheStats();
    bench::CpuClock cvClock;
    const CrossValidationResult cv = crossValidate(source, labels, {}, o, dir);
    cvClock.stop();
    const TensorCacheStats cache1 = tensorCacheStats();
    const double whole = cvClock.wall();
    std::filesystem::remove_all(dir);
    double epochSeconds = 0;
    for (const auto& c : cv.curves)
        epochSeconds += c.seconds;
    epochSeconds /= static_cast<double>(std::max<std::size_t>(1, cv.curves.size()));
    const double stepShare = a.steps * stepSeconds / epochSeconds;
    std::printf("crossValidate: %zu epochs in %.1f s (3 rounds), %.2f s per epoch of %d steps; training steps %.0f %% "
                "of an epoch (the rest: crop sampling, validation with test-time augmentation, checkpoints)\n",
                cv.curves.size(), whole, epochSeconds, a.steps, 100.0 * stepShare);
    bench::printLimit("epoch (training FLOPs only)", trainFlops, rate, a.steps * a.batch / epochSeconds, 0, "crop");
    std::printf("    crossValidate: sys/user %.3f, %.2f cores busy, %.0f page faults per step; tensor cache %s, limit %.0f MiB, "
                "%llu of %llu large allocations reused\n",
                cvClock.sysPerUser(), cvClock.coresBusy(),
                static_cast<double>(cvClock.minorFaults()) / std::max<double>(1.0, static_cast<double>(cv.curves.size()) * a.steps),
                cache1.installed ? "on" : "off", static_cast<double>(cache1.limitBytes) / (1 << 20),
                static_cast<unsigned long long>(cache1.hits - cache0.hits),
                static_cast<unsigned long long>(cache1.hits - cache0.hits + cache1.misses - cache0.misses));
    return 0;
}

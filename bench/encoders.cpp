// bench_encoders — forward throughput (patches/s, batch 64) and training throughput of every encoder on
// this machine, with the LibTorch thread count. Prints figures; asserts nothing (house style #11).
//
// Usage: bench_encoders [--threads N] [--patch-size P] [--code-size C] [--forward-batches K]
//                       [--train-steps S] [--only KIND]
#include "core/encoder.h"
#include "core/nn/encoders.h"
#include "core/nn/patchbank.h"
#include "core/nn/trainer.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

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

} // namespace

int main(int argc, char** argv) {
    int threads = 0, p = 128, c = 128, forwardBatches = 3, trainSteps = 3;
    std::string only;
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
        else {
            std::fprintf(stderr, "usage: bench_encoders [--threads N] [--patch-size P] [--code-size C] "
                                 "[--forward-batches K] [--train-steps S] [--only KIND]\n");
            return 2;
        }
    }
    try {
        nic::ComputeOptions compute;
        compute.threads = threads;
        const std::string device = nic::configureCompute(compute);
        std::printf("device %s, %d LibTorch threads, P = %d, C = %d, batch 64\n", device.c_str(), nic::computeThreads(), p, c);
        std::printf("%-18s %16s %16s %14s\n", "encoder", "forward patch/s", "train patch/s", "train s/step");
        const int batch = 64;
        const nic::PatchBank bank = randomBank(batch * 2, p, 1);
        const nic::PatchBank val = randomBank(16, p, 2);
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
            enc->encode(bank.data(), batch, out.data()); // warm-up
            const auto t0 = Clock::now();
            for (int k = 0; k < forwardBatches; ++k)
                enc->encode(bank.data(), batch, out.data());
            const double fwd = forwardBatches * batch / seconds(t0);

            double train = 0.0, perStep = 0.0;
            if (kind) {
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
                const auto t1 = Clock::now();
                nic::trainEncoder(o, bank, val);
                const double s = seconds(t1);
                perStep = s / trainSteps;
                // Contrastive steps see 64 pairs (128 patches); the others 64 patches.
                train = trainSteps * batch * (name == "contrastive" ? 2 : 1) / s;
            }
            if (kind)
                std::printf("%-18s %16.1f %16.1f %14.2f\n", name.c_str(), fwd, train, perStep);
            else
                std::printf("%-18s %16.1f %16s %14s\n", name.c_str(), fwd, "-", "-");
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

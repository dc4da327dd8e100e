// bench_compress — throughput and memory of `nic compress` on synthetic slides. Prints figures (ratios
// measured in one run); asserts nothing.
//
//   bench_compress [--size 30000] [--rss-size 100000] [--encoder projection|mean-rgb|<nn kind>]
//                  [--work 8] [--batch 64] [--compare-batch N] [--read-threads 0] [--compute-threads 0]
//                  [--inference-threads 0]
//                  [--plain] [--dir DIR] [--quality 90] [--augment 1|8]
//                  [--device cpu|cuda|auto] [--rss-only]
// (--device: where a LibTorch encoder and the limit probe's matmul run; default cpu.)
//
// 1. Writes (or reuses, in DIR) a synthetic size × size slide at 0.5 µm/px, with JPEG tiles of the given quality
//    (the generator's 90 unless told; Aperio scanners write 70 by default, and decoding costs less per pixel there).
// 2. Encoder forward throughput: the first tissue patches of the slide, read once into batches, then
//    encoder.encode() on those same batches for ≥ 10 s (no reading, no writing). When a LibTorch encoder runs
//    its forward pass straight on oneDNN (OneDnnChain, the default on the CPU), also the same encoder through its
//    LibTorch modules (NIC_ONEDNN_INFERENCE=0) and the chain with oneDNN's first convolution instead of the direct
//    kernel, alternated with it, and the ratios; then the chain's steps timed one by one (printed with the limit).
// 3. compressSlide pipelined (readers ‖ encoder ‖ HDF5 writer) and serial (read → encode → write on one
//    thread), both on the whole slide; throughput of the encoding phase and of the whole call.
//    --compare-batch N: also pipelined runs at batch N alternated with --batch (3 each), and the ratio.
//    --augment 8 (the default of `nic compress`; 1 here unless told) encodes each cell in all 8 orientations: the
//    patches/s and CPU figures then count patch encodings (cells × 8), each cell being read once.
//    The pipelined run's CPU time by stage (reader threads, inference threads, the writing thread; each thread's CPU
//    clock) per patch, and the inference threads' against the forward pass alone.
// 4. Ratios pipeline / forward (target ≥ 0.95: reading and writing hidden behind compute) and
//    pipeline / serial, with the bound that CPU time sets on the first when the forward pass alone keeps
//    every CPU busy: the encoder's share of the pipeline's CPU time (reading and writing take the rest).
// 5. With LibTorch and a neural encoder, the limit probe (bench/limitprobe.h): the sgemm rate measured
//    in this run / the encoder's FLOPs per patch = limit patches/s; forward-only and pipelined
//    throughput as ratios of it, and the system-time share of both timed sections.
// 6. Peak RSS (VmHWM) of a fresh process compressing the size² slide and an rss-size² slide
//    (target ≤ 1.0 GiB at 100k²); the child re-executes this binary so its RSS is its own.
//    --rss-only runs just this step (for --size and --rss-size).
//
// Encoders: "projection" (default) is a bench-only stand-in for a neural encoder: 2×2 average pooling
// then a dense 12288 → 128 projection computed `--work` times (default 8: ~12.6 M multiply-adds per
// patch), single-threaded — compute-bound like the paper's encoders, though still lighter than a CNN. "mean-rgb" shows
// the read-bound case. With LibTorch, "bigan", "vae", "contrastive", ... use untrained encoders of the paper's
// architectures (createEncoder), and a path (with a '/', or an existing file) an encoder file: one trained with
// `nic train-encoder`, or one of the authors' published Keras encoders after `nic import-keras`.
#include "bench/benchslide.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/imaging/dihedral.h"
#include "core/slide/patchgrid.h"
#include "core/slide/slide.h"
#include "core/slide/tissue.h"
#include "core/synth/synth.h"

#ifdef NIC_WITH_TORCH
#include "bench/limitprobe.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/flopcount.h"
#include "core/encoders/nn/patchinput.h"
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace nic;
using Clock = std::chrono::steady_clock;

namespace {

/// Compute-bound stand-in for a neural encoder (see the file comment).
class ProjectionEncoder final : public PatchEncoder {
public:
    explicit ProjectionEncoder(int patchSize, int work, int codeSize = 128) : work_(std::max(1, work)) {
        info_.name = "bench-projection";
        info_.hash = "bench-projection-v1-work" + std::to_string(work_);
        info_.patchSize = patchSize;
        info_.codeSize = codeSize;
        info_.mpp = 0.5;
        info_.source = "builtin";
        const int half = patchSize / 2;
        inputs_ = static_cast<std::size_t>(half) * static_cast<std::size_t>(half) * 3U;
        weights_.resize(inputs_ * static_cast<std::size_t>(codeSize));
        std::mt19937 rng(1);
        std::normal_distribution<float> n(0.0F, 1.0F / 128.0F);
        for (auto& w : weights_)
            w = n(rng);
    }
    const EncoderInfo& info() const override { return info_; }
    void encode(const std::uint8_t* nhwc, int count, float* out) override {
        const int P = info_.patchSize, h = P / 2;
        const auto C = static_cast<std::size_t>(info_.codeSize);
        x_.resize(inputs_);
        for (int n = 0; n < count; ++n) {
            const std::uint8_t* p = nhwc + static_cast<std::size_t>(n) * static_cast<std::size_t>(P * P * 3);
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < h; ++x)
                    for (int c = 0; c < 3; ++c) {
                        auto at = [&](int yy, int xx) {
                            return static_cast<float>(p[(static_cast<std::size_t>(yy) * static_cast<std::size_t>(P) +
                                                         static_cast<std::size_t>(xx)) * 3U + static_cast<std::size_t>(c)]);
                        };
                        x_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(h) + static_cast<std::size_t>(x)) * 3U +
                           static_cast<std::size_t>(c)] =
                            (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) /
                                510.0F - 1.0F;
                    }
            for (std::size_t o = 0; o < C * static_cast<std::size_t>(work_); ++o) {
                const float* w = weights_.data() + (o % C) * inputs_;
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (std::size_t i = 0; i + 8 <= inputs_; i += 8)
                    for (std::size_t j = 0; j < 8; ++j)
                        acc[j] += w[i + j] * x_[i + j];
                float s = 0;
                for (float a : acc)
                    s += a;
                out[static_cast<std::size_t>(n) * C + o % C] = s;
            }
        }
    }

private:
    EncoderInfo info_;
    int work_ = 1;
    std::size_t inputs_ = 0;
    std::vector<float> weights_;
    std::vector<float> x_;
};

int gComputeThreads = 0;   // --compute-threads: LibTorch threads per inference thread (0 = the pipeline's default)
int gInferenceThreads = 0; // --inference-threads: threads calling the encoder at once (0 = the pipeline's default)
bool gPlainInference = false; // --plain: encoders run as trained (no BatchNorm folding)
std::string gDevice = "cpu";  // --device: where a LibTorch encoder runs (cpu, cuda, auto)

/// Whether --encoder names an encoder file rather than a built-in encoder or kind.
bool isEncoderFile(const std::string& name) {
    std::error_code ec;
    return name.find('/') != std::string::npos || std::filesystem::is_regular_file(name, ec);
}

/// What --encoder is called in file names: its stem for an encoder file.
std::string encoderLabel(const std::string& name) {
    return isEncoderFile(name) ? std::filesystem::path(name).stem().string() : name;
}

std::unique_ptr<PatchEncoder> makeEncoder(const std::string& name, int work) {
    if (name == "projection")
        return std::make_unique<ProjectionEncoder>(128, work);
    if (name == "mean-rgb")
        return std::make_unique<MeanRgbEncoder>(128);
#ifdef NIC_WITH_TORCH
    ComputeOptions compute;
    compute.threads = gComputeThreads;
    compute.callers = gInferenceThreads; // as `nic compress` does
    compute.optimiseInference = !gPlainInference;
    compute.device = gDevice;
    if (auto kind = parseEncoderKind(name))
        return createEncoder(*kind, 128, 128, 2, 1, compute);
    if (isEncoderFile(name)) // a saved or imported encoder (nic import-keras of the authors' published ones)
        return loadEncoder(name, compute);
#endif
    std::fprintf(stderr, "unknown encoder %s\n", name.c_str());
    std::exit(2);
}

double sysSeconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6;
}

long peakRssKiB() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0)
            return std::atol(line.c_str() + 6);
    return -1;
}

struct Args {
    std::int64_t size = 30000;
    std::int64_t rssSize = 100000;
    int quality = bench::kDefaultQuality; ///< --quality: the slides' JPEG quality
    std::string encoder = "projection";
    int compareBatch = 0; ///< --compare-batch: pipelined runs at this batch size alternated with --batch
    int batch = nic::CompressOptions{}.batchSize; // what nic compress uses
    int work = 8;
    int readThreads = 0;
    int augment = 1; ///< --augment: orientations encoded per cell (CompressOptions::augment)
    std::filesystem::path dir = bench::defaultSlideDir();
    bool rssOnly = false;
};

CompressOptions compressOptions(const Args& a, bool pipelined) {
    CompressOptions o;
    o.batchSize = a.batch;
    o.readThreads = a.readThreads;
    o.augment = a.augment;
    o.inferenceThreads = gInferenceThreads;
    o.pipelined = pipelined;
    o.force = true;
    o.resume = false;
    return o;
}

/// Child mode: compress one slide, print "RESULT patches encodeSeconds seconds peakKiB" and the CPU µs per patch of
/// the reading, encoding and writing stages (CompressResult's stage clocks) after it.
int childCompress(const Args& a, const std::filesystem::path& slide) {
    auto enc = makeEncoder(a.encoder, a.work);
    const auto out = a.dir / (slide.stem().string() + "-" + encoderLabel(a.encoder) + ".h5");
    const CompressResult r = compressSlide(slide, *enc, out, compressOptions(a, true));
    const double perPatch = r.encodedCells > 0 ? 1e6 / static_cast<double>(r.encodedCells) : 0.0;
    std::printf("RESULT %lld %.3f %.3f %ld %.1f %.1f %.1f\n", static_cast<long long>(r.encodedCells), r.encodeSeconds,
                r.seconds, peakRssKiB(), r.readCpuSeconds * perPatch, r.encodeCpuSeconds * perPatch,
                r.writeCpuSeconds * perPatch);
    return 0;
}

struct ChildResult {
    long long patches = 0; ///< tissue cells encoded
    int augment = 1;       ///< orientations encoded per cell
    double encodeSeconds = 0, seconds = 0;
    long peakKiB = 0;
};

/// "N patches[ x 8 orientations], R patches/s, whole call S s": R counts patch encodings, as the pipelined figures do.
std::string childSummary(const ChildResult& r) {
    char text[160];
    std::snprintf(text, sizeof text, "%lld patches%s, %.1f patches/s, whole call %.1f s", r.patches,
                  r.augment > 1 ? (" x " + std::to_string(r.augment) + " orientations").c_str() : "",
                  r.encodeSeconds > 0 ? static_cast<double>(r.patches) * r.augment / r.encodeSeconds : 0.0, r.seconds);
    return text;
}

ChildResult runChild(const Args& a, const std::filesystem::path& slide) {
    std::string cmd = "'" + std::filesystem::read_symlink("/proc/self/exe").string() + "' --child '" + slide.string() +
                      "' --encoder '" + a.encoder + "' --work " + std::to_string(a.work) + " --compute-threads " +
                      std::to_string(gComputeThreads) + " --inference-threads " + std::to_string(gInferenceThreads) +
                      (gPlainInference ? " --plain" : "") + " --device " + gDevice + " --batch " +
                      std::to_string(a.batch) + " --augment " + std::to_string(a.augment) + " --read-threads " +
                      std::to_string(a.readThreads) + " --dir '" + a.dir.string() + "'";
    ChildResult r;
    r.augment = a.augment;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p)
        return r;
    char line[512];
    while (std::fgets(line, sizeof line, p))
        if (std::strncmp(line, "RESULT ", 7) == 0)
            std::sscanf(line + 7, "%lld %lf %lf %ld", &r.patches, &r.encodeSeconds, &r.seconds, &r.peakKiB);
    ::pclose(p);
    return r;
}

#ifdef NIC_WITH_TORCH
/// The architecture whose multiply-adds the limit probe's figures count: a kind's, or an encoder file's (an imported
/// Keras encoder's layers included); nullopt for the built-in stand-ins, which have no limit.
std::optional<EncoderMeta> probedMeta(const std::string& name, PatchEncoder& enc) {
    if (auto kind = parseEncoderKind(name)) {
        EncoderMeta meta;
        meta.kind = toString(*kind);
        meta.patchSize = enc.info().patchSize;
        meta.codeSize = enc.info().codeSize;
        return meta;
    }
    return encoderMeta(enc);
}
#endif

struct ForwardRate {
    double perSecond = 0, cpuMs = 0, sysShare = 0, seconds = 0;
    int threads = 1;
};

/// encoder.encode() on the same `nb` batches over and over for `seconds`, on the pipeline's inference threads.
ForwardRate timeForward(PatchEncoder& enc, const std::vector<std::uint8_t>& batches, int nb, int batch,
                        double seconds) {
    const std::size_t patchBytes =
        static_cast<std::size_t>(enc.info().patchSize) * static_cast<std::size_t>(enc.info().patchSize) * 3U;
    // The same inference threads as the pipeline: the encoder and its replicas, each on a thread of
    // its own, as compressSlide's inference stage calls them (with Debian's LibTorch the same encode()
    // costs about 1.6x the CPU time when called from the main thread: 7.6 vs 4.7 ms per BiGAN patch).
    const std::shared_ptr<void> keptBuffers = enc.keepBuffers(); // as compressSlide holds it
    const EncoderInstances encoders(enc, gInferenceThreads);
    std::atomic<long long> patchesDone{0};
    std::atomic<int> warm{0};
    std::atomic<bool> stop{false};
    auto work = [&](PatchEncoder* e, std::size_t first) {
        std::vector<float> out(static_cast<std::size_t>(batch * e->info().codeSize));
        for (int b = 0; b < std::min(nb, 2); ++b) // warm-up: first calls allocate and start the thread pool
            e->encode(batches.data() + static_cast<std::size_t>(b * batch) * patchBytes, batch, out.data());
        ++warm;
        while (warm.load() < encoders.size())
            std::this_thread::yield();
        for (std::size_t b = first; !stop.load(); b = (b + 1) % static_cast<std::size_t>(nb)) {
            e->encode(batches.data() + b * static_cast<std::size_t>(batch) * patchBytes, batch, out.data());
            patchesDone += batch;
        }
    };
    std::vector<std::thread> threads;
    for (int k = 0; k < encoders.size(); ++k)
        threads.emplace_back(work, &encoders[k], static_cast<std::size_t>(k * nb / encoders.size()));
    while (warm.load() < encoders.size())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double sys0 = sysSeconds(), cpu0 = bench::cpuSeconds();
    const long long done0 = patchesDone.load();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const long long done = patchesDone.load() - done0;
    ForwardRate r;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpuEnd = bench::cpuSeconds(), sysEnd = sysSeconds();
    stop = true;
    for (auto& t : threads)
        t.join();
    r.perSecond = static_cast<double>(done) / r.seconds;
    const double sysD = sysEnd - sys0;
    r.sysShare = sysD / std::max(1e-9, cpuEnd - cpu0 - sysD); // system / user time
    r.cpuMs = (cpuEnd - cpu0) * 1000.0 / static_cast<double>(std::max(1LL, done));
    r.threads = encoders.size();
    return r;
}

#ifdef NIC_WITH_TORCH
/// The steps of the chain of the first inference thread, timed over a forward run (printStepTimes).
std::vector<OneDnnChain::StepTime> gChainSteps;

/// When `enc` runs its forward pass straight on oneDNN (OneDnnChain), the same encoder through its BatchNorm-folded
/// LibTorch modules (what compression ran before) and, when its first convolution runs on the direct kernel, the same
/// chain with oneDNN's first convolution and a reorder instead, and, when later layers run on the wide direct kernel,
/// the same chain with oneDNN's kernels for them, likewise for layers on im2col + sgemm, and when the first two run
/// image by image, the same chain running each over the whole batch, and the chain converting the whole batch's input
/// before its first convolution instead of image by image (OneDnnChain::convertInputPerImage); alternated in rounds of
/// 3 s so that the VM's slow spells hit all of them: prints oneDNN's kernels, the rates and their ratios. Then one more
/// run of `enc` with its steps timed (gChainSteps).
void compareForwardPaths(PatchEncoder& enc, const Args& a, const std::vector<std::uint8_t>& batches, int nb) {
    const auto steps = oneDnnSteps(enc);
    if (steps.empty())
        return;
    std::string kernels;
    for (const auto& k : steps)
        kernels += (kernels.empty() ? "" : ", ") + k;
    std::printf("  oneDNN chain's steps:  %s\n", kernels.c_str());
    const bool before = oneDnnInferenceEnabled();
    useOneDnnInference(false);
    auto modules = makeEncoder(a.encoder, a.work);
    useOneDnnInference(before);
    std::unique_ptr<PatchEncoder> oneDnnFirst, oneDnnWide, oneDnnGemm, unfused;
    if (steps.front().rfind("direct", 0) == 0) {
        const bool direct = OneDnnChain::useDirectFirstConvolution(false);
        oneDnnFirst = makeEncoder(a.encoder, a.work);
        OneDnnChain::useDirectFirstConvolution(direct);
    }
    if (std::any_of(steps.begin() + 1, steps.end(), [](const std::string& s) { return s.rfind("direct", 0) == 0; })) {
        const bool wide = OneDnnChain::useWideConvolutions(false);
        oneDnnWide = makeEncoder(a.encoder, a.work);
        OneDnnChain::useWideConvolutions(wide);
    }
    if (std::any_of(steps.begin(), steps.end(), [](const std::string& s) { return s.rfind("im2col", 0) == 0; })) {
        const auto mode = OneDnnChain::useGemmConvolutions(OneDnnChain::GemmConvolutions::Never);
        oneDnnGemm = makeEncoder(a.encoder, a.work);
        OneDnnChain::useGemmConvolutions(mode);
    }
    if (steps.size() > 1 && steps[0].rfind("direct", 0) == 0) {
        const bool fuse = OneDnnChain::fuseFirstConvolutions(false);
        unfused = makeEncoder(a.encoder, a.work);
        OneDnnChain::fuseFirstConvolutions(fuse);
    }
    std::vector<double> chain, torchPath, viaOneDnn, viaBrgconv, viaOneDnnConv, wholeBatch, inputFirst;
    for (int round = 0; round < 3; ++round) {
        chain.push_back(timeForward(enc, batches, nb, a.batch, 3.0).perSecond);
        if (oneDnnFirst)
            viaOneDnn.push_back(timeForward(*oneDnnFirst, batches, nb, a.batch, 3.0).perSecond);
        if (oneDnnWide)
            viaBrgconv.push_back(timeForward(*oneDnnWide, batches, nb, a.batch, 3.0).perSecond);
        if (oneDnnGemm)
            viaOneDnnConv.push_back(timeForward(*oneDnnGemm, batches, nb, a.batch, 3.0).perSecond);
        if (unfused) {
            wholeBatch.push_back(timeForward(*unfused, batches, nb, a.batch, 3.0).perSecond);
            const bool perImage = OneDnnChain::convertInputPerImage(false);
            inputFirst.push_back(timeForward(enc, batches, nb, a.batch, 3.0).perSecond);
            OneDnnChain::convertInputPerImage(perImage);
        }
        torchPath.push_back(timeForward(*modules, batches, nb, a.batch, 3.0).perSecond);
    }
    auto list = [](const std::vector<double>& v) {
        std::string t;
        for (double x : v)
            t += (t.empty() ? "" : " ") + std::to_string(static_cast<long long>(x + 0.5));
        return t;
    };
    auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    std::printf("encoder forward, oneDNN chain vs LibTorch modules (3 alternated rounds of 3 s, patches/s): %s vs %s; "
                "best over best %.3f\n",
                list(chain).c_str(), list(torchPath).c_str(), best(chain) / best(torchPath));
    if (oneDnnFirst)
        std::printf("encoder forward, the chain's direct first convolution vs oneDNN's and a reorder (the same rounds, "
                    "patches/s): %s vs %s; best over best %.3f\n",
                    list(chain).c_str(), list(viaOneDnn).c_str(), best(chain) / best(viaOneDnn));
    if (oneDnnWide)
        std::printf("encoder forward, the chain's wide direct convolutions vs oneDNN's kernels for those layers (the same "
                    "rounds, patches/s): %s vs %s; best over best %.3f\n",
                    list(chain).c_str(), list(viaBrgconv).c_str(), best(chain) / best(viaBrgconv));
    if (oneDnnGemm)
        std::printf("encoder forward, the chain's im2col + sgemm convolutions (measured faster here) vs oneDNN's kernels "
                    "for those layers (the same rounds, patches/s): %s vs %s; best over best %.3f\n",
                    list(chain).c_str(), list(viaOneDnnConv).c_str(), best(chain) / best(viaOneDnnConv));
    if (unfused)
        std::printf("encoder forward, the chain's first two convolutions image by image vs each over the whole batch (the "
                    "same rounds, patches/s): %s vs %s; best over best %.3f\n",
                    list(chain).c_str(), list(wholeBatch).c_str(), best(chain) / best(wholeBatch));
    if (unfused)
        std::printf(
            "encoder forward, the chain's input converted image by image, just before the first convolution reads "
            "it, vs the whole batch converted first (the same rounds, patches/s): %s vs %s; best over best %.3f\n",
            list(chain).c_str(), list(inputFirst).c_str(), best(chain) / best(inputFirst));
    const bool timed = OneDnnChain::timeSteps(true);
    timeForward(enc, batches, nb, a.batch, 3.0);
    OneDnnChain::timeSteps(timed);
    gChainSteps = oneDnnStepTimes(enc, OneDnnChain::paddedBatch(a.batch));
}

/// At 8 orientations, for an encoder on the oneDNN chain: its input conversion alone over the 8 orientations (one
/// thread, one batch, best of 5 for each orientation): straight from the patch's bytes (patchinput::toPlanar, as
/// compression runs), the bytes transformed first and then converted (what compression ran before), and the straight
/// conversion one value at a time instead of its AVX-512 gathers; in CPU µs a patch and against the forward pass's.
void compareOrientationInput(PatchEncoder& enc, const std::vector<std::uint8_t>& batches, int batch,
                             double forwardCpuMs) {
    const int p = enc.info().patchSize, side = oneDnnInputSide(enc);
    if (side == 0)
        return;
    const bool pooled = side != p;
    const std::size_t patchBytes = static_cast<std::size_t>(p) * static_cast<std::size_t>(p) * 3U;
    std::vector<std::uint8_t> transformed(patchBytes * static_cast<std::size_t>(batch));
    std::vector<float> out(patchBytes * static_cast<std::size_t>(batch));
    auto time = [&](auto&& convert) {
        double total = 0;
        for (int k = 0; k < 8; ++k) {
            double best = 1e9;
            for (int round = 0; round < 5; ++round) {
                const double t0 = bench::cpuSeconds();
                convert(k);
                best = std::min(best, bench::cpuSeconds() - t0);
            }
            total += best;
        }
        return total / 8.0 / batch * 1e6; // µs a patch, averaged over the orientations
    };
    auto straight = [&](int k) { patchinput::toPlanar(batches.data(), batch, p, k, pooled, out.data()); };
    auto viaBytes = [&](int k) {
        dihedralTransformPatches(batches.data(), transformed.data(), batch, p, k);
        patchinput::toPlanar(transformed.data(), batch, p, 0, pooled, out.data());
    };
    const double a = time(straight), b = time(viaBytes);
    double c = 0;
    if (patchinput::vectorKernelRuns()) {
        patchinput::useVectorKernel(false);
        c = time(straight);
        patchinput::useVectorKernel(true);
    }
    const double forwardUs = forwardCpuMs * 1000.0;
    std::printf(
        "input conversion over the 8 orientations (one thread, batch %d, best of 5 each; CPU us/patch): straight "
        "from the bytes %.1f (%.3f of the forward pass), the bytes transformed first %.1f (%.3f): %.2fx",
        batch, a, a / forwardUs, b, b / forwardUs, b / a);
    if (c > 0)
        std::printf("; without the AVX-512 gathers %.1f (%.3f): %.2fx", c, c / forwardUs, c / a);
    std::printf("\n");
}

/// Where the chain's forward time goes, step by step, against the share of the limit one inference thread has.
void printStepTimes(const bench::SgemmRate& rate, int inferenceThreads, int batch) {
    double total = 0;
    for (const auto& s : gChainSteps)
        total += s.seconds;
    if (gChainSteps.empty() || total <= 0 || gChainSteps.front().runs == 0)
        return;
    const double share = rate.gflops / std::max(1, inferenceThreads);
    std::printf("  where the chain's forward time goes (the first inference thread's replica, %lld batches of %d timed "
                "step by step while %d thread(s) ran; its share of the limit %.1f GFLOP/s):\n",
                static_cast<long long>(gChainSteps.front().runs), batch, inferenceThreads, share);
    for (const auto& s : gChainSteps) {
        const double ms = s.seconds * 1e3 / static_cast<double>(s.runs);
        const double gflops = s.flops / 1e9 / (s.seconds / static_cast<double>(s.runs));
        std::printf("    %-52s %7.2f ms/batch %5.1f %%", s.what.c_str(), ms, 100.0 * s.seconds / total);
        if (s.flops > 0)
            std::printf("  %6.1f GFLOP/s = %.2f x its share", gflops, gflops / share);
        std::printf("  (%s)\n", s.impl.c_str());
    }
}
#endif

} // namespace

static int benchMain(int argc, char** argv) {
    Args a;
    std::filesystem::path child;
    bool unknown = false;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (k == "--size")
            a.size = std::stoll(next());
        else if (k == "--rss-size")
            a.rssSize = std::stoll(next());
        else if (k == "--encoder")
            a.encoder = next();
        else if (k == "--work")
            a.work = std::stoi(next());
        else if (k == "--batch")
            a.batch = std::stoi(next());
        else if (k == "--read-threads")
            a.readThreads = std::stoi(next());
        else if (k == "--compute-threads")
            gComputeThreads = std::stoi(next());
        else if (k == "--inference-threads")
            gInferenceThreads = std::stoi(next());
        else if (k == "--plain")
            gPlainInference = true;
        else if (k == "--device")
            gDevice = next();
        else if (k == "--dir")
            a.dir = next();
        else if (k == "--rss-only")
            a.rssOnly = true;
        else if (k == "--augment")
            a.augment = std::stoi(next());
        else if (k == "--compare-batch")
            a.compareBatch = std::stoi(next());
        else if (k == "--quality")
            a.quality = bench::qualityArg(next());
        else if (k == "--child")
            child = next();
        else
            unknown = true;
        if (unknown || a.quality == 0 || (a.augment != 1 && a.augment != 8)) {
            std::fprintf(stderr,
                         "usage: bench_compress [--size N] [--rss-size N|0] [--encoder E] [--work N] [--batch N] "
                         "[--compare-batch N] [--quality Q] [--augment 1|8] "
                         "[--read-threads N] [--compute-threads N] [--inference-threads N] [--plain] [--device "
                         "cpu|cuda|auto] [--dir DIR] [--rss-only]\n");
            return 2;
        }
    }
    std::filesystem::create_directories(a.dir);
    if (!child.empty())
        return childCompress(a, child);

    if (a.rssOnly) {
        for (const std::int64_t size : {a.size, a.rssSize})
            if (size > 0) {
                const ChildResult r = runChild(a, bench::ensureSlide(a.dir, size, a.quality));
                std::printf("peak RSS, %lld^2 slide, encoder %s: %.1f MiB (%s)\n", static_cast<long long>(size),
                            a.encoder.c_str(), static_cast<double>(r.peakKiB) / 1024.0, childSummary(r).c_str());
            }
        return 0;
    }
    const auto slidePath = bench::ensureSlide(a.dir, a.size, a.quality);
    auto enc = makeEncoder(a.encoder, a.work);
    std::printf("bench_compress: %lld x %lld synthetic slide (JPEG quality %d), encoder %s (P=%d, C=%d), batch %d, %u CPUs\n",
                static_cast<long long>(a.size), static_cast<long long>(a.size), a.quality, a.encoder.c_str(),
                enc->info().patchSize, enc->info().codeSize, a.batch, std::thread::hardware_concurrency());

#ifdef NIC_WITH_TORCH
    // The limit is probed before the measurements and again after them, and the better probe counts: this VM's speed
    // drifts by up to a third over minutes (one run's later probe read 249 GFLOP/s against 340-359 in the runs around
    // it, and put the forward pass at 1.16 x the limit); the best seen is the machine's limit.
    const std::optional<EncoderMeta> meta = probedMeta(a.encoder, *enc);
    const bool probed = meta.has_value();
    const bench::SgemmRate before =
        probed ? bench::probeSgemm(2048, 5, configureCompute(ComputeOptions{gDevice, gComputeThreads, gInferenceThreads}))
               : bench::SgemmRate{};
#endif

    // Encoder alone on real batches of this slide.
    std::vector<std::uint8_t> batches;
    int nb = 0;
    {
        const Slide slide(slidePath);
        PatchGrid grid(slide, GridSpec{enc->info().patchSize, enc->info().patchSize, enc->info().mpp});
        grid.setTissueFractions(tissueFractionPerCell(detectTissue(slide), grid));
        const int wanted = a.batch * 16;
        int n = 0;
        for (int r = 0; r < grid.rows() && n < wanted; ++r)
            for (int c = 0; c < grid.cols() && n < wanted; ++c)
                if (grid.tissueFraction(c, r) >= TissueOptions{}.minCellFraction) {
                    const Image im = grid.readPatch(slide, c, r);
                    batches.insert(batches.end(), im.pixels.begin(), im.pixels.end());
                    ++n;
                }
        nb = n / a.batch;
    }
    const ForwardRate fw = timeForward(*enc, batches, nb, a.batch, 10.0);
    const double forward = fw.perSecond, forwardCpuMs = fw.cpuMs, forwardSys = fw.sysShare;
    std::printf("encoder forward only:   %10.1f patches/s (%d batches of %d, %.1f s, %d inference thread(s); %.3f "
                "CPU ms/patch)\n",
                forward, nb, a.batch, fw.seconds, fw.threads, forwardCpuMs);
#ifdef NIC_WITH_TORCH
    compareForwardPaths(*enc, a, batches, nb);
    if (a.augment > 1)
        compareOrientationInput(*enc, batches, a.batch, forwardCpuMs);
#endif

    const auto out = a.dir / "bench-out.h5";
    double cpu0 = bench::cpuSeconds(), sys0 = sysSeconds();
    const CompressResult pip = compressSlide(slidePath, *enc, out, compressOptions(a, true));
    // CPU figures per patch encoding: each cell's `augment` orientations are encoded apart (read once).
    const double encodings = static_cast<double>(std::max<std::int64_t>(1, pip.encodedCells)) * a.augment;
    const double pipCpuMs = (bench::cpuSeconds() - cpu0) * 1000.0 / encodings;
    const double pipSysD = sysSeconds() - sys0;
    const double pipSys = pipSysD / std::max(1e-9, bench::cpuSeconds() - cpu0 - pipSysD); // system / user time
    std::printf("pipelined compress:     %10.1f patches/s (%lld patches%s, encode phase %.1f s, whole call %.1f s = "
                "%.1f patches/s; %d reader thread(s))\n",
                pip.patchesPerSecond, static_cast<long long>(pip.encodedCells),
                a.augment > 1 ? (" x " + std::to_string(a.augment) + " orientations").c_str() : "", pip.encodeSeconds,
                pip.seconds, encodings / pip.seconds, pip.readThreads);
    if (a.compareBatch > 0) {
        // Pipelined runs at both batch sizes, alternated so that the VM's slow spells hit both.
        Args other = a;
        other.batch = a.compareBatch;
        std::vector<double> mine, theirs;
        for (int round = 0; round < 3; ++round) {
            mine.push_back(compressSlide(slidePath, *enc, out, compressOptions(a, true)).patchesPerSecond);
            theirs.push_back(compressSlide(slidePath, *enc, out, compressOptions(other, true)).patchesPerSecond);
        }
        std::printf("pipelined compress, batch %d vs %d (3 alternated runs, patches/s): %.0f %.0f %.0f vs %.0f %.0f %.0f; "
                    "best over best %.3f\n",
                    a.batch, other.batch, mine[0], mine[1], mine[2], theirs[0], theirs[1], theirs[2],
                    *std::max_element(mine.begin(), mine.end()) / *std::max_element(theirs.begin(), theirs.end()));
    }
    cpu0 = bench::cpuSeconds();
    const CompressResult ser = compressSlide(slidePath, *enc, out, compressOptions(a, false));
    const double serCpuMs = (bench::cpuSeconds() - cpu0) * 1000.0 /
                            (static_cast<double>(std::max<std::int64_t>(1, ser.encodedCells)) * a.augment);
    std::printf("serial compress:        %10.1f patches/s (encode phase %.1f s, whole call %.1f s)\n",
                ser.patchesPerSecond, ser.encodeSeconds, ser.seconds);
    std::printf("CPU per patch (whole call incl. tissue detection): pipelined %.3f ms, serial %.3f ms, encoder %.3f ms "
                "-> reading+writing %.3f ms\n",
                pipCpuMs, serCpuMs, forwardCpuMs, serCpuMs - forwardCpuMs);
    {
        // The pipelined run by stage, from each thread's CPU clock (CompressResult): what reading takes from the
        // encoder, and what the encoder costs beside it against the forward pass alone.
        const double perPatch = 1000.0 / encodings;
        const double readMs = pip.readCpuSeconds * perPatch, encodeMs = pip.encodeCpuSeconds * perPatch,
                     writeMs = pip.writeCpuSeconds * perPatch;
        const bool workers = enc->cpusPerCall() > 1; // their CPU time is not in the inference threads' clocks
        std::printf("pipelined CPU by stage:  reading %.3f ms/patch (%d reader thread(s)), encoding %.3f ms/patch "
                    "(%s%.3f x the forward pass alone), assembling and writing %.3f ms/patch, the rest %.3f ms/patch "
                    "(slide opening, tissue detection, set-up, finishing the file%s)\n",
                    readMs, pip.readThreads, encodeMs, workers ? "the inference threads alone: " : "",
                    encodeMs / std::max(forwardCpuMs, 1e-9), writeMs, pipCpuMs - readMs - encodeMs - writeMs,
                    workers ? ", and the encoder's own worker threads" : "");
    }
    // When the forward pass alone keeps every CPU busy, the pipeline reaches at most the encoder's share of its
    // own CPU time: reading, decoding, tissue detection and writing take the rest from the encoder.
    const double encoderShare = std::min(1.0, forwardCpuMs / std::max(pipCpuMs, 1e-9));
    std::printf("ratio pipeline/forward: %10.3f   (target >= 0.95; the encoder's share of the pipeline's CPU time: "
                "%.3f, the most it can reach when both keep every CPU busy)\n",
                pip.patchesPerSecond / forward, encoderShare);
    std::printf("ratio pipeline/serial:  %10.3f\n", pip.patchesPerSecond / ser.patchesPerSecond);
    std::printf("system / user time:     forward only %.3f, pipelined compress %.3f (target <= 0.10)\n",
                forwardSys, pipSys);
#ifdef NIC_WITH_TORCH
    if (probed) {
        const bench::SgemmRate after = bench::probeSgemm(2048, 5, configureCompute(ComputeOptions{gDevice, gComputeThreads, gInferenceThreads}));
        const bench::SgemmRate& rate = after.gflops > before.gflops ? after : before;
        std::printf("limit probe (the better of one before the measurements, %.1f GFLOP/s, and one after, %.1f): %s; %s\n",
                    before.gflops, after.gflops, bench::describeRate(rate).c_str(), bench::threadLayout().c_str());
        const double flops = inferenceFlopsPerPatch(*meta);
        bench::printLimit("encoder forward only", flops, rate, forward, forwardCpuMs / 1000.0);
        printStepTimes(rate, fw.threads, a.batch);
        bench::printLimit("pipelined compress", flops, rate, pip.patchesPerSecond, pipCpuMs / 1000.0);
        std::printf("  (target: pipelined >= 0.75 x limit)\n");
    }
#endif
    std::printf("output size:            %10.1f MB\n", static_cast<double>(std::filesystem::file_size(out)) / 1e6);
    std::filesystem::remove(out);

    for (const std::int64_t size : {a.size, a.rssSize}) {
        if (size <= 0)
            continue;
        const auto path = bench::ensureSlide(a.dir, size, a.quality);
        const ChildResult r = runChild(a, path);
        std::printf("peak RSS, %lldk^2 slide:  %8.1f MiB (fresh process; %s)%s\n", static_cast<long long>(size / 1000),
                    static_cast<double>(r.peakKiB) / 1024.0, childSummary(r).c_str(),
                    size >= 100000 ? "   (target <= 1024 MiB)" : "");
    }
    return 0;
}

int main(int argc, char** argv) {
    try {
        return benchMain(argc, argv);
    } catch (const std::exception& e) { // an encoder file that cannot be read, a slide that cannot be written, ...
        std::fprintf(stderr, "bench_compress: %s\n", e.what());
        return 1;
    }
}

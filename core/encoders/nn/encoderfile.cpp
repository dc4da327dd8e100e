// Encoder files, the encoder factory and TorchPatchEncoder.
#include "core/base/atomicfile.h"
#include "core/base/cpuinfo.h"
#include "core/base/envswitch.h"
#include "core/base/error.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchinput.h"
#include "core/encoders/nn/tensorcache.h"
#include "core/encoders/nn/torchencoder.h"
#include "core/imaging/dihedral.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <malloc.h>
#include <mutex>

namespace nic {

using nlohmann::json;

const char* toString(EncoderKind kind) {
    switch (kind) {
    case EncoderKind::Vae: return "vae";
    case EncoderKind::Contrastive: return "contrastive";
    case EncoderKind::Bigan: return "bigan";
    case EncoderKind::SupervisedTumor: return "supervised-tumor";
    case EncoderKind::SupervisedTissue: return "supervised-tissue";
    }
    return "?";
}

std::optional<EncoderKind> parseEncoderKind(const std::string& text) {
    for (auto k : {EncoderKind::Vae, EncoderKind::Contrastive, EncoderKind::Bigan, EncoderKind::SupervisedTumor,
                   EncoderKind::SupervisedTissue})
        if (text == toString(k))
            return k;
    return std::nullopt;
}

double defaultLearningRate(EncoderKind kind) {
    switch (kind) {
    case EncoderKind::Vae: return 1e-3;
    case EncoderKind::Bigan: return 2e-4;
    default: return 1e-2;
    }
}

namespace {

/// LibTorch's CPU allocator is plain malloc. With glibc's defaults every activation above the dynamic
/// mmap threshold (at most 32 MiB; a VAE batch's first activation is 16-33 MiB) is mmap'ed and unmapped
/// again per layer, freed heap tops are trimmed, and a worker thread's arena (64 MiB heaps) maps what
/// does not fit: each batch page-faults its activations in afresh. bench_encoders measured system time
/// at 0.17-0.48 of user time. One arena that keeps such blocks (mmap only above 1 GiB, trim only above
/// 256 MiB free) brought it to 0.02-0.07 and the forward pass from ~0.50 to ~0.66 of the sgemm limit,
/// for ~80 MiB more peak RSS. Set once, before the inference and training threads start. Training steps'
/// blocks still came and went with the heap's top (page faults every step): the tensor cache
/// (tensorcache.h, installed next) keeps those. Arenas made before this call stay, and threads started later
/// may be given one of them: compression and prediction hold the tensor cache for that reason.
void keepActivationsInHeap() {
    static std::once_flag once;
    std::call_once(once, [] {
        ::mallopt(M_ARENA_MAX, 1);
        ::mallopt(M_MMAP_THRESHOLD, 1 << 30);
        ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
    });
}

/// OpenBLAS runs single-threaded, unless OPENBLAS_NUM_THREADS says otherwise. LibTorch sends only dense
/// layers to OpenBLAS (convolutions go to oneDNN on the OpenMP threads). OpenBLAS's own worker threads
/// busy-wait in sched_yield for up to 2^28 cycles after each call, so with two of them on a 2-core machine
/// they spun through the next convolutions beside the OpenMP threads: bench_encoders measured system time
/// at 0.1-0.2 of user time in training and every kind's training 12-27 % faster with OpenBLAS on one
/// thread (docs/timings.md). A dense layer then runs on one core, which costs less than the spinning did.
void setBlasSingleThreaded() {
    if (const char* env = std::getenv("OPENBLAS_NUM_THREADS"); env && std::atoi(env) > 0)
        return;
    setOpenBlasThreads(1);
}

int automaticThreads(int callers) {
    if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0)
        return std::atoi(env);
    const int cores = physicalCores();
    return std::max(1, callers > 0 ? cores / callers : 1);
}

} // namespace

std::string configureCompute(const ComputeOptions& options) {
    if (options.threads < 0)
        throw InvalidArgument("thread count must be >= 0, got " + std::to_string(options.threads));
    if (options.callers < 0)
        throw InvalidArgument("caller count must be >= 0, got " + std::to_string(options.callers));
    keepActivationsInHeap();
    installTensorCache();
    // One layout for every thread that calls LibTorch: `threads` intra-op (OpenMP) threads each, and no
    // OpenBLAS threads of its own (setBlasSingleThreaded), so nothing spins beside the OpenMP threads.
    const int threads = options.threads > 0 ? options.threads : automaticThreads(options.callers);
    if (torch::get_num_threads() != threads)
        torch::set_num_threads(threads);
    setBlasSingleThreaded();
    const std::string device = resolveDevice(options.device);
    // Patches come in few shapes, so on a GPU cuDNN times its algorithms for each shape once and keeps the
    // fastest. Its choice may be a non-deterministic algorithm; NIC_CUDNN_BENCHMARK=0 keeps cuDNN's heuristic.
    if (device == "cuda") {
        at::globalContext().setBenchmarkCuDNN(envSwitchOn("NIC_CUDNN_BENCHMARK"));
    }
    return device;
}

std::string resolveDevice(const std::string& device) {
    if (device == "auto")
        return torch::cuda::is_available() ? "cuda" : "cpu";
    if (device == "cpu")
        return "cpu";
    if (device == "cuda") {
        if (!torch::cuda::is_available())
            throw InvalidArgument("device 'cuda' requested but this LibTorch build or machine has no CUDA device");
        return "cuda";
    }
    throw InvalidArgument("unknown device '" + device + "' (use auto, cpu or cuda)");
}

int computeThreads() { return torch::get_num_threads(); }

namespace {
std::atomic<bool> gOneDnnInference{envSwitchOn("NIC_ONEDNN_INFERENCE")};
} // namespace

void useOneDnnInference(bool on) { gOneDnnInference.store(on, std::memory_order_relaxed); }
bool oneDnnInferenceEnabled() { return gOneDnnInference.load(std::memory_order_relaxed); }

std::vector<std::string> oneDnnSteps(const PatchEncoder& encoder) {
    const auto* e = dynamic_cast<const TorchPatchEncoder*>(&encoder);
    return e ? e->oneDnnKernels() : std::vector<std::string>{};
}

int oneDnnInputSide(const PatchEncoder& encoder) {
    const auto* e = dynamic_cast<const TorchPatchEncoder*>(&encoder);
    if (!e || !e->runsOnOneDnn())
        return 0;
    return e->chainTakesPooledInput() ? e->meta().patchSize / 2 : e->meta().patchSize;
}

std::vector<OneDnnChain::StepTime> oneDnnStepTimes(const PatchEncoder& encoder, int batch) {
    const auto* e = dynamic_cast<const TorchPatchEncoder*>(&encoder);
    return e ? e->oneDnnStepTimes(batch) : std::vector<OneDnnChain::StepTime>{};
}

std::optional<EncoderMeta> encoderMeta(const PatchEncoder& encoder) {
    const auto* e = dynamic_cast<const TorchPatchEncoder*>(&encoder);
    return e ? std::optional<EncoderMeta>(e->meta()) : std::nullopt;
}

torch::Device toDevice(const std::string& name) { return name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU); }

void keepWeightsChannelsLast(torch::nn::Module& networks, torch::Device device) {
    if (!device.is_cpu())
        return;
    torch::NoGradGuard noGrad;
    for (auto& p : networks.parameters(true))
        if (p.dim() == 4 && !p.is_contiguous(torch::MemoryFormat::ChannelsLast))
            p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

std::string torchMessage(const c10::Error& e) { return e.what_without_backtrace(); }

// Metadata (encoderMetaToJson / encoderMetaFromJson): core/encoders/modelmeta.cpp.

torch::nn::AnyModule buildEncoderModule(const EncoderMeta& m) {
    if (m.kind == "keras")
        return torch::nn::AnyModule(KerasChain(m.kerasLayers));
    checkEncoderShape(m.patchSize, m.codeSize);
    if (m.kind == "bigan")
        return torch::nn::AnyModule(BiganEncoder(m.patchSize, m.codeSize, true));
    return torch::nn::AnyModule(ConvEncoder(m.patchSize, m.codeSize));
}

torch::Tensor toModelInput(const std::uint8_t* nhwc, int count, int patchSize, torch::Device device) {
    auto u8 = torch::from_blob(const_cast<std::uint8_t*>(nhwc), {count, patchSize, patchSize, 3}, torch::kUInt8);
    // For a GPU the bytes travel (a quarter of the floats) and are converted there, off the calling CPU.
    return u8.to(device).permute({0, 3, 1, 2}).to(torch::kFloat).div_(127.5).sub_(1.0).contiguous();
}

namespace {

/// toModelInputInto and toPooledModelInputInto: `into` must be a float [count, 3, S, S] tensor, planar or
/// channels-last.
void checkModelInput(const torch::Tensor& into, int count, int side, const char* who) {
    TORCH_CHECK(into.scalar_type() == torch::kFloat && into.dim() == 4 && into.size(0) == count && into.size(1) == 3 &&
                    into.size(2) == side && into.size(3) == side &&
                    (into.is_contiguous() || into.is_contiguous(torch::MemoryFormat::ChannelsLast)),
                who, ": a contiguous or channels-last float [count, 3, ", side, ", ", side, "] tensor is needed");
}

void toInputInto(const std::uint8_t* nhwc, int count, int patchSize, torch::Tensor& into, int k, bool pooled) {
    // The same arithmetic as toModelInput (v / 127.5 − 1 in float), so both give identical inputs; pooled: the mean of
    // four such values as s / 510 − 1 for their byte sum s (avg_pool2d of toModelInput up to float rounding).
    if (into.is_contiguous())
        patchinput::toPlanar(nhwc, count, patchSize, k, pooled, into.data_ptr<float>());
    else // memory order N, H, W, C
        patchinput::toChannelsLast(nhwc, count, patchSize, k, pooled, into.data_ptr<float>());
}

} // namespace

void toModelInputInto(const std::uint8_t* nhwc, int count, int patchSize, torch::Tensor& into, int k) {
    checkModelInput(into, count, patchSize, "toModelInputInto");
    toInputInto(nhwc, count, patchSize, into, k, false);
}

void toPooledModelInputInto(const std::uint8_t* nhwc, int count, int patchSize, torch::Tensor& into, int k) {
    checkModelInput(into, count, patchSize / 2, "toPooledModelInputInto");
    toInputInto(nhwc, count, patchSize, into, k, true);
}

namespace {

struct Fnv64 {
    std::uint64_t h = 1469598103934665603ULL;
    void add(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        for (std::size_t i = 0; i < n; ++i) {
            h ^= p[i];
            h *= 1099511628211ULL;
        }
    }
    void add(const std::string& s) { add(s.data(), s.size()); }
    std::string hex() const {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
        return buf;
    }
};

void hashTensor(Fnv64& f, const std::string& name, const torch::Tensor& t) {
    f.add(name);
    auto c = t.detach().to(torch::kCPU).to(torch::kFloat).contiguous();
    for (auto s : c.sizes()) {
        const std::int64_t v = s;
        f.add(&v, sizeof v);
    }
    f.add(c.data_ptr(), static_cast<std::size_t>(c.numel()) * sizeof(float));
}

EncoderInfo makeInfo(const EncoderMeta& m, const std::string& hash, const std::string& source) {
    EncoderInfo info;
    info.name = m.name.empty() ? m.kind : m.name;
    info.hash = hash;
    info.patchSize = m.patchSize;
    info.codeSize = m.codeSize;
    info.mpp = m.mpp;
    info.source = source;
    return info;
}

std::string readMetaJson(torch::serialize::InputArchive& ar, const std::string& source) {
    c10::IValue iv;
    if (!ar.try_read("meta/json", iv) || !iv.isString())
        throw FormatError(source + ": not a NIC encoder file (no meta/json record)");
    return iv.toStringRef();
}

void loadArchive(torch::serialize::InputArchive& ar, const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw IoError(path.string() + ": no such encoder file");
    try {
        ar.load_from(path.string());
    } catch (const c10::Error& e) {
        throw FormatError(path.string() + ": cannot read encoder file: " + torchMessage(e));
    }
}

} // namespace

std::string contentHash(const std::string& metaJson, torch::nn::Module& module) {
    Fnv64 f;
    f.add(metaJson);
    for (const auto& p : module.named_parameters(true))
        hashTensor(f, p.key(), p.value());
    for (const auto& b : module.named_buffers(true))
        hashTensor(f, b.key(), b.value());
    return f.hex();
}

// ------------------------------------------------------------------------------------ TorchPatchEncoder

TorchPatchEncoder::TorchPatchEncoder(EncoderMeta meta, torch::nn::AnyModule module, torch::Device device,
                                     std::string hash, std::string source, bool optimise)
    : meta_(std::move(meta)), module_(std::move(module)), device_(device), optimised_(optimise) {
    module_.ptr()->to(device_);
    module_.ptr()->eval();
    info_ = makeInfo(meta_, hash, source);
    inference_ = module_;
    if (optimise) {
        // A copy of the same architecture with the same tensors, then BN folded into it.
        inference_ = buildEncoderModule(meta_);
        torch::NoGradGuard noGrad;
        auto dst = inference_.ptr()->named_parameters(true), src = module_.ptr()->named_parameters(true);
        for (const auto& p : src)
            dst[p.key()].copy_(p.value());
        auto dstB = inference_.ptr()->named_buffers(true), srcB = module_.ptr()->named_buffers(true);
        for (const auto& b : srcB)
            dstB[b.key()].copy_(b.value());
        // Folded on the device: a fold gives a layer without a bias a new one, which is not a registered parameter
        // and would stay where it was made when the module moves.
        inference_.ptr()->to(device_);
        foldBatchNorm(*inference_.ptr());
        inference_.ptr()->eval();
        channelsLast_ = device_.is_cpu();
        keepWeightsChannelsLast(*inference_.ptr(), device_); // encode() then feeds it channels-last input
        if (channelsLast_ && oneDnnInferenceEnabled() && OneDnnChain::available())
            if (auto layers = oneDnnLayers(*inference_.ptr())) { // before flattenInNhwcOrder: planar column order
                try {
                    chain_ = std::make_shared<OneDnnChain>(std::move(layers->layers), 3,
                                                           layers->pooledInput ? meta_.patchSize / 2 : meta_.patchSize);
                    chainPooled_ = layers->pooledInput;
                    if (chain_->outputs() != meta_.codeSize)
                        chain_.reset();
                } catch (const Error&) {
                    chain_.reset(); // oneDNN refused it: the folded module runs
                }
            }
        if (channelsLast_)
            flattenInNhwcOrder(*inference_.ptr()); // the last feature map's flatten is then a view
        // BiGAN's E starts with a 2×2 average pooling: encode() does it while converting the bytes, which
        // saves a pass over a full-size float input (the pooling alone took ~10 % of E's forward time).
        if (auto b = std::dynamic_pointer_cast<BiganEncoderImpl>(inference_.ptr()); channelsLast_ && b && b->downsampleInput) {
            b->downsampleInput = false;
            pooledInput_ = true;
        }
    }
}

int TorchPatchEncoder::preferredConcurrency() const {
    if (!device_.is_cpu())
        return 1;
    return std::max(1, physicalCores() / std::max(1, computeThreads()));
}

int TorchPatchEncoder::cpusPerCall() const { return device_.is_cpu() ? std::max(1, computeThreads()) : 1; }

std::unique_ptr<PatchEncoder> TorchPatchEncoder::replicate() {
    // Same modules (AnyModule copies share them), same flags; only input_ is per instance.
    auto copy = std::unique_ptr<TorchPatchEncoder>(new TorchPatchEncoder(*this));
    copy->input_ = torch::Tensor();
    if (chain_) { // the same reordered weights, its own primitives and buffers
        try {
            copy->chain_ = chain_->replicate();
        } catch (const Error&) {
            copy->chain_.reset(); // this replica runs the folded module
        }
    }
    return copy;
}

std::shared_ptr<void> TorchPatchEncoder::keepBuffers() {
    if (!device_.is_cpu())
        return nullptr;
    return std::make_shared<TensorCacheScope>();
}

torch::Tensor TorchPatchEncoder::forward(const torch::Tensor& input) {
    torch::NoGradGuard noGrad;
    inference_.ptr()->eval();
    if (pooledInput_)
        return inference_.forward(torch::nn::functional::avg_pool2d(input.to(device_),
                                                                    torch::nn::functional::AvgPool2dFuncOptions(2)));
    return inference_.forward(input.to(device_));
}

std::vector<std::string> TorchPatchEncoder::oneDnnKernels() const {
    return chain_ ? chain_->implementations() : std::vector<std::string>{};
}

std::vector<OneDnnChain::StepTime> TorchPatchEncoder::oneDnnStepTimes(int batch) const {
    return chain_ ? chain_->stepTimes(batch) : std::vector<OneDnnChain::StepTime>{};
}

namespace {

/// The patches one chain run converts (OneDnnChain::InputRows): bytes to planar floats in transform k. fill() must not
/// throw: what the conversion throws (std::bad_alloc, an argument it refuses) is kept, the rows are left as they are,
/// and encodeOnOneDnn rethrows it once the run is over, so that it is not taken for oneDNN refusing the chain.
struct PatchRows {
    const std::uint8_t* nhwc;
    int patchSize;
    int k;
    bool pooled;
    mutable std::exception_ptr error;

    static void fill(const void* context, int first, int count, float* into) {
        const auto& r = *static_cast<const PatchRows*>(context);
        if (r.error)
            return;
        const std::size_t patchBytes =
            static_cast<std::size_t>(r.patchSize) * static_cast<std::size_t>(r.patchSize) * 3U;
        try {
            patchinput::toPlanar(r.nhwc + static_cast<std::size_t>(first) * patchBytes, count, r.patchSize, r.k,
                                 r.pooled, into);
        } catch (...) {
            r.error = std::current_exception();
        }
    }
};

} // namespace

bool TorchPatchEncoder::encodeOnOneDnn(const std::uint8_t* chunk, int n, int k, float* out) {
    // The chain converts the bytes itself, image by image where its first convolutions run so (onednnchain.h).
    const PatchRows rows{chunk, meta_.patchSize, k, chainPooled_, nullptr};
    try {
        chain_->run(OneDnnChain::InputRows{&PatchRows::fill, &rows}, n, out, std::max(1, computeThreads()));
    } catch (const Error&) {
        if (rows.error) // the conversion failed, not the chain
            std::rethrow_exception(rows.error);
        // No optimised oneDNN kernel for this encoder here (or oneDNN refused it): the folded module runs from
        // now on, with the same embeddings up to float rounding.
        chain_.reset();
        return false;
    }
    if (rows.error)
        std::rethrow_exception(rows.error);
    return true;
}

void TorchPatchEncoder::encode(const std::uint8_t* nhwc, int count, float* out) {
    encodeChunks(nhwc, count, 0, out);
}

void TorchPatchEncoder::encodeTransformed(const std::uint8_t* nhwc, int count, int k, float* out) {
    if (!device_.is_cpu()) {
        PatchEncoder::encodeTransformed(nhwc, count, k, out);
        return;
    }
    checkDihedralIndex(k);
    encodeChunks(nhwc, count, k, out);
}

void TorchPatchEncoder::encodeChunks(const std::uint8_t* nhwc, int count, int k, float* out) {
    if (count < 0)
        throw InvalidArgument("encode: negative patch count");
    if (k != 0 && !device_.is_cpu()) // toModelInput has no orientation: encodeTransformed transforms the bytes first
        throw Error("encoder " + info_.name + ": an orientation's input is converted on the CPU only");
    c10::InferenceMode inference; // thread-local, like NoGradGuard, and cheaper
    if (inference_.ptr()->is_training()) // only a read in the usual case: replicas share the module
        inference_.ptr()->eval();
    const int p = meta_.patchSize;
    const std::size_t patchBytes = static_cast<std::size_t>(p) * static_cast<std::size_t>(p) * 3U;
    constexpr int kChunk = 256;
    try {
        for (int start = 0; start < count; start += kChunk) {
            const int n = std::min(kChunk, count - start);
            const std::uint8_t* chunk = nhwc + static_cast<std::size_t>(start) * patchBytes;
            float* chunkOut = out + static_cast<std::size_t>(start) * static_cast<std::size_t>(meta_.codeSize);
            if (chain_ && encodeOnOneDnn(chunk, n, k, chunkOut))
                continue;
            torch::Tensor x;
            if (device_.is_cpu()) {
                const int side = pooledInput_ ? p / 2 : p;
                if (!input_.defined() || input_.size(0) != n)
                    input_ = torch::empty({n, 3, side, side},
                                          torch::TensorOptions(torch::kFloat)
                                              .memory_format(channelsLast_ ? torch::MemoryFormat::ChannelsLast
                                                                           : torch::MemoryFormat::Contiguous));
                if (pooledInput_)
                    toPooledModelInputInto(chunk, n, p, input_, k);
                else
                    toModelInputInto(chunk, n, p, input_, k);
                x = input_;
            } else {
                x = toModelInput(chunk, n, p, device_); // k is 0 here (checked above)
            }
            auto e = inference_.forward(x).to(torch::kCPU).to(torch::kFloat).contiguous();
            if (e.dim() != 2 || e.size(0) != n || e.size(1) != meta_.codeSize)
                throw Error("encoder " + info_.name + " produced an output of the wrong shape");
            std::memcpy(chunkOut, e.data_ptr<float>(), static_cast<std::size_t>(e.numel()) * sizeof(float));
        }
    } catch (const c10::Error& e) {
        throw Error("encoder " + info_.name + ": " + torchMessage(e));
    }
}

// ---------------------------------------------------------------------------------------- files

EncoderInfo writeEncoderFile(const std::filesystem::path& path, const EncoderMeta& meta, torch::nn::Module& module) {
    return StagedEncoderFile(path, meta, module).publish();
}

StagedEncoderFile::StagedEncoderFile(const std::filesystem::path& path, const EncoderMeta& meta,
                                     torch::nn::Module& module) {
    const std::string metaJson = encoderMetaToJson(meta);
    const std::string hash = contentHash(metaJson, module);
    auto file = std::make_unique<AtomicFile>(path);
    WriteBehindFile sink(*file, "cannot write encoder file"); // the disk writes while LibTorch serialises
    try {
        torch::serialize::OutputArchive ar;
        torch::serialize::OutputArchive enc;
        module.save(enc);
        ar.write("encoder", enc);
        ar.write("meta/json", c10::IValue(metaJson));
        ar.write("meta/hash", c10::IValue(hash));
        ar.save_to([&sink](const void* data, std::size_t n) { return sink.write(data, n); });
    } catch (const c10::Error& e) {
        throw IoError(path.string() + ": cannot write encoder file: " + torchMessage(e));
    }
    sink.close();
    file->sync();
    file_ = std::move(file);
    info_ = makeInfo(meta, hash, path.string());
}

EncoderInfo StagedEncoderFile::publish() {
    if (!file_)
        throw Error(info_.source + ": cannot publish encoder file: it was already published");
    file_->publish();
    file_.reset();
    return info_;
}

std::unique_ptr<TorchPatchEncoder> readEncoderFile(const std::filesystem::path& path, torch::Device device,
                                                   bool optimise) {
    const std::string source = path.string();
    torch::serialize::InputArchive ar;
    loadArchive(ar, path);
    const EncoderMeta meta = encoderMetaFromJson(readMetaJson(ar, source), source);
    torch::nn::AnyModule module;
    try {
        module = buildEncoderModule(meta);
    } catch (const InvalidArgument& e) { // an architecture the metadata describes but no encoder has
        throw FormatError(source + ": " + e.what());
    }
    auto& mod = *module.ptr();
    // torch::load replaces tensors whatever their shape, so remember what the architecture expects.
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected;
    for (const auto& p : mod.named_parameters(true))
        expected.emplace_back(p.key(), p.value().sizes().vec());
    for (const auto& b : mod.named_buffers(true))
        expected.emplace_back(b.key(), b.value().sizes().vec());
    try {
        torch::serialize::InputArchive enc;
        if (!ar.try_read("encoder", enc))
            throw FormatError(source + ": encoder file has no weights (no 'encoder' record)");
        mod.load(enc);
    } catch (const c10::Error& e) {
        throw FormatError(source + ": weights do not match the architecture in the metadata: " + torchMessage(e));
    }
    std::size_t i = 0;
    auto check = [&](const std::string& name, const torch::Tensor& t) {
        const auto& want = expected.at(i++);
        if (want.first != name || want.second != t.sizes().vec())
            throw FormatError(source + ": tensor '" + name + "' has shape " + c10::str(t.sizes()) +
                              " but the architecture in the metadata needs " + c10::str(c10::IntArrayRef(want.second)));
    };
    for (const auto& p : mod.named_parameters(true))
        check(p.key(), p.value());
    for (const auto& b : mod.named_buffers(true))
        check(b.key(), b.value());
    const std::string metaJson = encoderMetaToJson(meta);
    const std::string hash = contentHash(metaJson, mod);
    c10::IValue stored;
    if (ar.try_read("meta/hash", stored) && stored.isString() && stored.toStringRef() != hash)
        throw FormatError(source + ": content hash mismatch (file says " + stored.toStringRef() + ", weights give " +
                          hash + "); the file is damaged");
    return std::make_unique<TorchPatchEncoder>(meta, std::move(module), device, hash, source, optimise);
}

// -------------------------------------------------------------------------------------- factory

std::unique_ptr<PatchEncoder> loadEncoder(const std::string& nameOrPath, const ComputeOptions& options) {
    if (nameOrPath == "mean-rgb")
        return std::make_unique<MeanRgbEncoder>(128);
    if (nameOrPath.rfind("mean-rgb:", 0) == 0) {
        const std::string size = nameOrPath.substr(9);
        if (size.empty() || size.size() > 5 || size.find_first_not_of("0123456789") != std::string::npos)
            throw InvalidArgument("'" + nameOrPath + "': expected mean-rgb:P with P the patch size in pixels");
        return std::make_unique<MeanRgbEncoder>(std::stoi(size));
    }
    const std::string device = configureCompute(options);
    return readEncoderFile(nameOrPath, toDevice(device), options.optimiseInference);
}

EncoderInfo readEncoderInfo(const std::filesystem::path& path) {
    if (path == "mean-rgb")
        return MeanRgbEncoder(128).info();
    const std::string source = path.string();
    torch::serialize::InputArchive ar;
    loadArchive(ar, path);
    const EncoderMeta meta = encoderMetaFromJson(readMetaJson(ar, source), source);
    c10::IValue stored;
    std::string hash = "unknown";
    if (ar.try_read("meta/hash", stored) && stored.isString())
        hash = stored.toStringRef();
    return makeInfo(meta, hash, source);
}

std::unique_ptr<PatchEncoder> createEncoder(EncoderKind kind, int patchSize, int codeSize, int classes,
                                            std::uint64_t seed, const ComputeOptions& options) {
    const std::string device = configureCompute(options);
    EncoderMeta meta;
    meta.kind = toString(kind);
    meta.name = meta.kind;
    meta.patchSize = patchSize;
    meta.codeSize = codeSize;
    meta.classes = kind == EncoderKind::SupervisedTissue ? classes : (kind == EncoderKind::SupervisedTumor ? 2 : 0);
    torch::manual_seed(seed);
    auto module = buildEncoderModule(meta);
    const std::string hash = contentHash(encoderMetaToJson(meta), *module.ptr());
    return std::make_unique<TorchPatchEncoder>(meta, std::move(module), toDevice(device), hash, "untrained",
                                               options.optimiseInference);
}

EncoderInfo saveEncoder(PatchEncoder& encoder, const std::filesystem::path& path) {
    auto* t = dynamic_cast<TorchPatchEncoder*>(&encoder);
    if (!t)
        throw InvalidArgument("encoder '" + encoder.info().name + "' has no weights to save");
    return writeEncoderFile(path, t->meta(), t->module());
}

} // namespace nic

#include "core/encoders/nn/modules.h"

#include "core/base/error.h"
#include "core/encoders/nn/batchnormleaky.h"
#include "core/encoders/nn/convgrad.h"
#include "core/encoders/nn/directconv.h"
#include "core/encoders/nn/ompthreads.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <omp.h>
#ifdef NIC_HAVE_DNNL_SGEMM
#include <oneapi/dnnl/dnnl.h>
#endif

#include <atomic>
#include <cmath>

namespace nic {

namespace F = torch::nn::functional;

namespace {
/// In place on a fresh layer output (the folded inference path): no allocation for the activation.
torch::Tensor lraInPlace(torch::Tensor x) {
    return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(kLeakySlope).inplace(true));
}

/// x·wᵀ (+ b) by oneDNN's inner product: x [M, K] and w [N, K] dense float32 CPU tensors.
torch::Tensor innerProduct(const torch::Tensor& x, const torch::Tensor& w, const c10::optional<torch::Tensor>& b) {
    return torch::mkldnn_linear(x.contiguous().to_mkldnn(), w.contiguous(), b).to_dense();
}

/// Input and weight are float32 CPU tensors in LibTorch's strided layout (not oneDNN's opaque one): what
/// applyLinear's and applyConv's own paths take.
bool denseFloatOnCpu(const torch::Tensor& x, const torch::Tensor& w) {
    return x.device().is_cpu() && w.device().is_cpu() && x.scalar_type() == torch::kFloat &&
           w.scalar_type() == torch::kFloat && !x.is_mkldnn();
}

std::atomic<std::uint64_t> oneDnnBlocks{0};

/// out = a·b for one block of parallelMatmul, on the calling thread alone. With oneDNN's header at build time
/// (NIC_HAVE_DNNL_SGEMM) through oneDNN's sgemm, the library LibTorch runs its convolutions on: its kernels
/// use the widest vectors the CPU has, where OpenBLAS may be held to narrower ones (OPENBLAS_CORETYPE), and
/// on the encoders' 8192 → 512 layer at batch 64 it ran ∂x and ∂w 2-3 × faster. Otherwise, or for an
/// operand that is neither row-major nor a transposed row-major matrix, LibTorch's BLAS.
void blockProduct(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
    RECORD_FUNCTION("nic::dense_block", std::vector<c10::IValue>()); // for LibTorch's profiler (bench_encoders --layers)
#ifdef NIC_HAVE_DNNL_SGEMM
    // Row-major (trans 'N', leading dimension stride(0)) or a transposed view of one ('T', stride(1)).
    const auto layout = [](const torch::Tensor& m, char& trans, std::int64_t& ld) {
        if (m.stride(1) == 1 && m.stride(0) >= std::max<std::int64_t>(1, m.size(1))) {
            trans = 'N';
            ld = m.stride(0);
            return true;
        }
        if (m.stride(0) == 1 && m.stride(1) >= std::max<std::int64_t>(1, m.size(0))) {
            trans = 'T';
            ld = m.stride(1);
            return true;
        }
        return false;
    };
    char ta = 'N', tb = 'N', tc = 'N';
    std::int64_t lda = 0, ldb = 0, ldc = 0;
    if (layout(a, ta, lda) && layout(b, tb, ldb) && layout(out, tc, ldc) && tc == 'N') {
        // One thread, whether or not this runs inside a parallel region (oneDNN takes every OpenMP thread
        // outside one), so that the values do not depend on the thread count.
        const float* pa = a.data_ptr<float>();
        const float* pb = b.data_ptr<float>();
        float* pc = out.data_ptr<float>();
        dnnl_status_t status = dnnl_success;
        {
            const OmpThreads scope(omp_in_parallel() != 0 ? 0 : 1); // inside a parallel region: as it is
            status = dnnl_sgemm(ta, tb, out.size(0), out.size(1), a.size(1), 1.0F, pa, lda, pb, ldb, 0.0F, pc, ldc);
        }
        if (status == dnnl_success) {
            oneDnnBlocks.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
#endif
    at::mm_out(out, a, b);
}

/// a·b for float32 CPU matrices a [M, K] and b [K, N] (either may be a transposed view) on every LibTorch
/// thread: the output's longer side in blocks of 256, one single-threaded GEMM per block (blockProduct).
/// The blocks do not depend on the thread count, nor then do the values. Training's dense products take
/// this path: the inner product needs its weight as [N, K] and ∂x = ∂y·w would have to copy w transposed
/// each step (16 MB for the encoders' 8192 → 512 layer, 5 ms on one thread), and OpenBLAS on both threads
/// this way ran the three products of that layer in 11 ms against 26 for oneDNN's inner product with the
/// copies (batch 64, outside a step).
torch::Tensor parallelMatmul(const torch::Tensor& aIn, const torch::Tensor& bIn) {
    // The worker threads do not share this thread's grad mode: hand them tensors autograd does not track.
    const auto a = aIn.detach(), b = bIn.detach();
    auto out = torch::empty({a.size(0), b.size(1)}, a.options());
    const bool byColumns = b.size(1) >= a.size(0);
    const std::int64_t extent = byColumns ? b.size(1) : a.size(0);
    constexpr std::int64_t block = 256;
    at::parallel_for(0, (extent + block - 1) / block, 1, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t i = first; i < last; ++i) {
            const std::int64_t start = i * block, length = std::min(block, extent - start);
            auto part = byColumns ? out.narrow(1, start, length) : out.narrow(0, start, length);
            blockProduct(part, byColumns ? a : a.narrow(0, start, length), byColumns ? b.narrow(1, start, length) : b);
        }
    });
    return out;
}

/// x·wᵀ for training's forward pass, computed as (w·xᵀ)ᵀ: oneDNN's sgemm ran the encoders' 8192 → 512
/// layer at batch 64 in 3.1-3.5 ms that way against 5.0-5.4 for x·wᵀ in blocks of wᵀ's columns.
torch::Tensor forwardProduct(const torch::Tensor& x, const torch::Tensor& w) {
    return parallelMatmul(w, x.contiguous().t()).t().contiguous();
}

/// ∂x, ∂w (and ∂b when `bias`) of y = x·wᵀ (+ b) for ∂y = grads[0], with x and w saved: ∂x = ∂y·w and
/// ∂w = ∂yᵀ·x.
torch::autograd::variable_list linearGradients(torch::autograd::AutogradContext* ctx,
                                               const torch::autograd::variable_list& grads, bool bias) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto dy = grads[0].contiguous();
    torch::autograd::variable_list out(bias ? 3 : 2);
    if (ctx->needs_input_grad(0))
        out[0] = parallelMatmul(dy, w);
    if (ctx->needs_input_grad(1))
        out[1] = parallelMatmul(dy.t(), x);
    if (bias && ctx->needs_input_grad(2))
        out[2] = dy.sum(0);
    return out;
}

/// y = x·wᵀ + b for training, forward and backward on every thread. (An autograd Function's inputs must all
/// be defined tensors, hence a second one without the bias.)
class BlockedLinearFunction : public torch::autograd::Function<BlockedLinearFunction> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                                 const torch::Tensor& b) {
        ctx->save_for_backward({x, w});
        return forwardProduct(x, w).add_(b);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        return linearGradients(ctx, grads, true);
    }
};

/// y = x·wᵀ for training, forward and backward on every thread.
class BlockedLinearNoBiasFunction : public torch::autograd::Function<BlockedLinearNoBiasFunction> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
        ctx->save_for_backward({x, w});
        return forwardProduct(x, w);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        return linearGradients(ctx, grads, false);
    }
};

/// Whether training's sgemm paths (convgrad.h) take this convolution of x by w: a layer that convgrad::fits, x
/// channels-last float32 on the CPU (as the encoders train). `smallMap`: the forward and ∂x paths' further rule too.
bool onSgemm(const torch::Tensor& x, const torch::Tensor& w, const std::vector<std::int64_t>& stride,
             const std::vector<std::int64_t>& padding, const std::vector<std::int64_t>& dilation, std::int64_t groups,
             bool smallMap) {
    return x.dim() == 4 && w.dim() == 4 && x.size(2) == x.size(3) && w.size(2) == w.size(3) && x.size(1) == w.size(1) &&
           stride.size() == 2 && stride[0] == stride[1] && padding.size() == 2 && padding[0] == padding[1] &&
           dilation.size() == 2 && dilation[0] == dilation[1] &&
           convgrad::fits(x.size(1), w.size(2), stride[0], padding[0], dilation[0], groups) &&
           (!smallMap || convgrad::smallMap(x.size(1), x.size(2))) && x.scalar_type() == torch::kFloat &&
           w.scalar_type() == torch::kFloat && x.is_cpu() && w.is_cpu() &&
           x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

/// Whether ∂y is as the sgemm paths read it: channels-last float32 on the CPU.
bool gradientOnSgemm(const torch::Tensor& dy) {
    return dy.dim() == 4 && dy.scalar_type() == torch::kFloat && dy.is_cpu() &&
           dy.is_contiguous(at::MemoryFormat::ChannelsLast);
}

torch::Tensor emptyChannelsLast(at::IntArrayRef sizes) {
    return torch::empty(sizes, torch::TensorOptions(torch::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
}

/// ∂w of a convolution on oneDNN's sgemm over an im2col copy (convgrad.h) where that path fits the layer and the
/// input and ∂y are channels-last float32 on the CPU (as the encoders train); undefined otherwise.
torch::Tensor weightGradientOnSgemm(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& w,
                                    const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                                    const std::vector<std::int64_t>& dilation, std::int64_t groups) {
    if (!onSgemm(x, w, stride, padding, dilation, groups, false) || !gradientOnSgemm(dy))
        return {};
    auto dw = emptyChannelsLast(w.sizes());
    convgrad::weightGradient(x.data_ptr<float>(), x.size(0), x.size(1), x.size(2), dy.data_ptr<float>(), w.size(0),
                             dw.data_ptr<float>(), torch::get_num_threads());
    return dw;
}

/// ∂x of a small-map convolution on oneDNN's sgemm (convgrad::dataGradient) where that path takes it; undefined
/// otherwise.
torch::Tensor dataGradientOnSgemm(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& w,
                                  const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                                  const std::vector<std::int64_t>& dilation, std::int64_t groups) {
    if (!onSgemm(x, w, stride, padding, dilation, groups, true) || !gradientOnSgemm(dy))
        return {};
    const auto wc = w.detach().contiguous(at::MemoryFormat::ChannelsLast); // [out, 3, 3, in] in memory
    auto dx = emptyChannelsLast(x.sizes());
    convgrad::dataGradient(dy.data_ptr<float>(), x.size(0), x.size(1), x.size(2), wc.data_ptr<float>(), w.size(0),
                           dx.data_ptr<float>(), torch::get_num_threads());
    return dx;
}

/// A small-map convolution's output on oneDNN's sgemm (convgrad::forward) where that path takes it; undefined
/// otherwise.
torch::Tensor convolutionOnSgemm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                 const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                                 const std::vector<std::int64_t>& dilation, std::int64_t groups) {
    if (!onSgemm(x, w, stride, padding, dilation, groups, true) || b.dim() != 1 || b.size(0) != w.size(0) ||
        b.scalar_type() != torch::kFloat || !b.is_cpu())
        return {};
    const auto wc = w.detach().contiguous(at::MemoryFormat::ChannelsLast), bc = b.detach().contiguous();
    const std::int64_t o = convgrad::outputSide(x.size(2));
    auto y = emptyChannelsLast({x.size(0), w.size(0), o, o});
    convgrad::forward(x.data_ptr<float>(), x.size(0), x.size(1), x.size(2), wc.data_ptr<float>(), bc.data_ptr<float>(),
                      w.size(0), y.data_ptr<float>(), torch::get_num_threads());
    return y;
}

/// The convolution on the direct kernel (directconv.h: 3 × 3, stride 2, padding 1 or none from a few channels, the
/// encoders' first layer) where it fits and the input is channels-last float32 on the CPU (as the encoders train);
/// undefined otherwise.
torch::Tensor directConvolution(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                                const std::vector<std::int64_t>& dilation, std::int64_t groups) {
    if (!directconv::available() || x.dim() != 4 || x.size(2) != x.size(3) || stride.size() != 2 ||
        stride[0] != stride[1] || padding.size() != 2 || padding[0] != padding[1] ||
        dilation != std::vector<std::int64_t>{1, 1} || groups != 1 ||
        !directconv::fits(w.sizes().vec(), static_cast<int>(stride[0]), static_cast<int>(padding[0]),
                          static_cast<int>(x.size(2))) ||
        x.size(1) != w.size(1) || b.dim() != 1 || b.size(0) != w.size(0) || x.scalar_type() != torch::kFloat ||
        w.scalar_type() != torch::kFloat || b.scalar_type() != torch::kFloat || !x.is_cpu() || !w.is_cpu() ||
        !b.is_cpu() || !x.is_contiguous(at::MemoryFormat::ChannelsLast))
        return {}; // LibTorch's own convolution, with its own errors for shapes that do not fit
    const auto wc = w.detach().contiguous(), bc = b.detach().contiguous();
    const int out = static_cast<int>(w.size(0)), in = static_cast<int>(w.size(1)), side = static_cast<int>(x.size(2));
    const auto taps =
        directconv::tapMajor(std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel()), out, in);
    const int pad = static_cast<int>(padding[0]), o = directconv::outSide(side, pad);
    auto y = emptyChannelsLast({x.size(0), out, o, o});
    directconv::run(x.data_ptr<float>(), static_cast<int>(x.size(0)), in, side, pad, taps.data(), bc.data_ptr<float>(),
                    out, -1.0F, y.data_ptr<float>(), torch::get_num_threads(), true);
    return y;
}

/// conv(x) with its bias, for training: the forward is LibTorch's convolution unless a path below takes it; the
/// backward asks convolution_backward for ∂x and ∂w only and sums ∂y over the batch and the pixels for ∂b. oneDNN 2.6
/// computes ∂b inside its weight-gradient kernel, which made that kernel several times slower on the
/// encoders' first layer (3 → 32 channels, 128² → 64², batch 64, channels-last: 8.2 ms against 2.8 ms
/// without ∂b, plus 0.8 ms for the sum) and 13 % slower on the second. `biasCancelled`: ∂b is exactly zero
/// (applyConv's batchNormNext) and is not summed. ∂w of the stride-2 layers after the first comes from oneDNN's
/// sgemm over an im2col copy instead (weightGradientOnSgemm), and so do the forward pass and ∂x of those over small
/// maps (convolutionOnSgemm, dataGradientOnSgemm; convgrad.h); the first layer's forward comes from the direct kernel
/// (directConvolution), which ran 1.3–1.4× faster than oneDNN's channels-last kernel on three input channels, its
/// output's allocation included (bench_encoders --layers).
class ConvolutionFunction : public torch::autograd::Function<ConvolutionFunction> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                                 const torch::Tensor& b, std::vector<std::int64_t> stride,
                                 std::vector<std::int64_t> padding, std::vector<std::int64_t> dilation,
                                 std::int64_t groups, bool biasCancelled) {
        // Named for LibTorch's profiler with aten::convolution's inputs, so that bench_encoders --layers counts the
        // layer's time whichever path below runs it.
        RECORD_FUNCTION("nic::convolution", std::vector<c10::IValue>({x, w}));
        ctx->save_for_backward({x, w});
        ctx->saved_data["stride"] = stride;
        ctx->saved_data["padding"] = padding;
        ctx->saved_data["dilation"] = dilation;
        ctx->saved_data["groups"] = groups;
        ctx->saved_data["bias_cancelled"] = biasCancelled;
        if (auto y = directConvolution(x, w, b, stride, padding, dilation, groups); y.defined())
            return y;
        if (auto y = convolutionOnSgemm(x, w, b, stride, padding, dilation, groups); y.defined())
            return y;
        return at::convolution(x, w, b, stride, padding, dilation, false, {0, 0}, groups);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto& dy = grads[0];
        torch::autograd::variable_list out(8);
        if (!dy.defined())
            return out;
        RECORD_FUNCTION("nic::convolution_backward", std::vector<c10::IValue>({dy, saved[0], saved[1]}));
        const auto stride = ctx->saved_data["stride"].toIntVector();
        const auto padding = ctx->saved_data["padding"].toIntVector();
        const auto dilation = ctx->saved_data["dilation"].toIntVector();
        const auto groups = ctx->saved_data["groups"].toInt();
        if (ctx->needs_input_grad(1))
            out[1] = weightGradientOnSgemm(dy, saved[0], saved[1], stride, padding, dilation, groups);
        if (ctx->needs_input_grad(0))
            out[0] = dataGradientOnSgemm(dy, saved[0], saved[1], stride, padding, dilation, groups);
        const bool dxHere = ctx->needs_input_grad(0) && !out[0].defined();
        const bool dwHere = ctx->needs_input_grad(1) && !out[1].defined();
        if (dxHere || dwHere) {
            auto [dx, dw, unused] = at::convolution_backward(dy, saved[0], saved[1], c10::nullopt, stride, padding,
                                                             dilation, false, {0, 0}, groups, {dxHere, dwHere, false});
            if (dxHere)
                out[0] = dx;
            if (dwHere)
                out[1] = dw;
        }
        if (ctx->needs_input_grad(2))
            out[2] = ctx->saved_data["bias_cancelled"].toBool() ? torch::zeros({saved[1].size(0)}, dy.options())
                                                                 : dy.sum({0, 2, 3});
        return out;
    }
};

} // namespace

bool denseProductsOnOneDnn() {
#ifdef NIC_HAVE_DNNL_SGEMM
    return true;
#else
    return false;
#endif
}

std::uint64_t denseBlocksOnOneDnn() { return oneDnnBlocks.load(std::memory_order_relaxed); }

torch::Tensor applyConv(torch::nn::Conv2d& conv, const torch::Tensor& x, bool batchNormNext) {
    const auto& o = conv->options;
    const auto& w = conv->weight;
    const auto& b = conv->bias;
    // Unqualified: argument-dependent lookup finds c10::get_if (LibTorch 1.x) or std::get_if (2.x).
    const auto* padding = get_if<torch::ExpandingArray<2>>(&o.padding());
    if (!padding || !get_if<torch::enumtype::kZeros>(&o.padding_mode()) || !b.defined() || !b.requires_grad() ||
        !torch::GradMode::is_enabled() || x.dim() != 4 || !denseFloatOnCpu(x, w))
        return conv(x);
    const auto vec = [](const torch::ExpandingArray<2>& a) { return std::vector<std::int64_t>(a->begin(), a->end()); };
    return ConvolutionFunction::apply(x, w, b, vec(o.stride()), vec(*padding), vec(o.dilation()), o.groups(),
                                      batchNormNext);
}

void checkEncoderShape(int patchSize, int codeSize) {
    if (patchSize <= 0 || patchSize % 32 != 0)
        throw InvalidArgument("patch size must be a positive multiple of 32, got " + std::to_string(patchSize));
    if (codeSize <= 0)
        throw InvalidArgument("code size must be positive, got " + std::to_string(codeSize));
}

ConvBlockImpl::ConvBlockImpl(int in, int out, int stride) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(out));
}
torch::Tensor ConvBlockImpl::forward(const torch::Tensor& x) {
    return bnFolded ? lraInPlace(conv(x)) : batchNormLeaky(*bn, applyConv(conv, x, bn->is_training()), kLeakySlope);
}

UpBlockImpl::UpBlockImpl(int in, int out) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(out));
}
torch::Tensor UpBlockImpl::forward(const torch::Tensor& x) {
    auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                    .mode(torch::kNearest));
    return bnFolded ? lraInPlace(conv(up)) : batchNormLeaky(*bn, applyConv(conv, up, bn->is_training()), kLeakySlope);
}

DenseBlockImpl::DenseBlockImpl(int in, int out) {
    fc = register_module("fc", torch::nn::Linear(in, out));
    bn = register_module("bn", torch::nn::BatchNorm1d(out));
}
torch::Tensor DenseBlockImpl::forward(const torch::Tensor& x) {
    return bnFolded ? lraInPlace(applyLinear(fc, x)) : batchNormLeaky(*bn, applyLinear(fc, x), kLeakySlope);
}

torch::Tensor applyLinear(torch::nn::Linear& linear, const torch::Tensor& x) {
    const auto& w = linear->weight;
    const auto& b = linear->bias;
    if (!at::hasMKLDNN() || x.dim() != 2 || !denseFloatOnCpu(x, w) || x.size(0) == 0)
        return linear(x);
    if (torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad())))
        return b.defined() ? BlockedLinearFunction::apply(x, w, b) : BlockedLinearNoBiasFunction::apply(x, w);
    return innerProduct(x, w, b.defined() ? c10::optional<torch::Tensor>(b) : c10::nullopt);
}

ConvEncoderImpl::ConvEncoderImpl(int patchSize_, int codeSize_) : patchSize(patchSize_), codeSize(codeSize_) {
    checkEncoderShape(patchSize, codeSize);
    torch::nn::Sequential seq;
    const int filters[5] = {32, 64, 128, 256, 512};
    int in = 3;
    for (int f : filters) {
        seq->push_back(ConvBlock(in, f, 2));
        in = f;
    }
    convs = register_module("convs", seq);
    const int side = patchSize / 32;
    dense = register_module("dense", DenseBlock(side * side * 512, 512));
    code = register_module("code", torch::nn::Linear(512, codeSize));
}
torch::Tensor flattenFeatures(const torch::Tensor& h, bool nhwc) {
    return nhwc ? h.permute({0, 2, 3, 1}).flatten(1) : h.flatten(1);
}

torch::Tensor ConvEncoderImpl::features(const torch::Tensor& x) {
    return dense(flattenFeatures(convs->forward(x), flattenNhwc));
}
torch::Tensor ConvEncoderImpl::forward(const torch::Tensor& x) { return applyLinear(code, features(x)); }

VaeDecoderImpl::VaeDecoderImpl(int patchSize, int codeSize) : side(patchSize / 32) {
    checkEncoderShape(patchSize, codeSize);
    dense = register_module("dense", DenseBlock(codeSize, side * side * 512));
    torch::nn::Sequential seq;
    const int filters[5] = {256, 128, 64, 32, 16};
    int in = 512;
    for (int f : filters) {
        seq->push_back(UpBlock(in, f));
        in = f;
    }
    ups = register_module("ups", seq);
    out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 3, 3).padding(1)));
}
torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& z) {
    auto h = dense(z).view({-1, 512, side, side});
    return torch::tanh(applyConv(out, ups->forward(h)));
}

VaeImpl::VaeImpl(int patchSize, int codeSize) {
    encoder = register_module("encoder", ConvEncoder(patchSize, codeSize));
    logVar = register_module("logvar", torch::nn::Linear(512, codeSize));
    decoder = register_module("decoder", VaeDecoder(patchSize, codeSize));
}
VaeImpl::Output VaeImpl::forward(const torch::Tensor& x, bool sample) {
    auto f = encoder->features(x);
    Output o;
    o.mu = applyLinear(encoder->code, f);
    o.logVar = applyLinear(logVar, f);
    o.reconstruction = decoder(sample ? o.mu + torch::exp(0.5 * o.logVar) * torch::randn_like(o.mu) : o.mu);
    return o;
}
std::vector<torch::Tensor> VaeImpl::loss(const Output& out, const torch::Tensor& x, double gamma) {
    auto rec = F::mse_loss(out.reconstruction, x);
    auto kl = (-0.5 * (1 + out.logVar - out.mu.pow(2) - out.logVar.exp()).sum(1)).mean();
    return {rec + gamma * kl, rec, kl};
}

ClassifierHeadImpl::ClassifierHeadImpl(int in, int outputs) {
    hidden = register_module("hidden", DenseBlock(in, 256));
    out = register_module("out", torch::nn::Linear(256, outputs));
}
torch::Tensor ClassifierHeadImpl::forward(const torch::Tensor& x) { return applyLinear(out, hidden(x)); }

SiameseImpl::SiameseImpl(int patchSize, int codeSize) {
    encoder = register_module("encoder", ConvEncoder(patchSize, codeSize));
    head = register_module("head", ClassifierHead(2 * codeSize, 1));
}
torch::Tensor SiameseImpl::forward(const torch::Tensor& a, const torch::Tensor& b) {
    // One pass over both views, so BN statistics see the whole pair batch.
    auto e = encoder(torch::cat({a, b}, 0));
    auto halves = e.chunk(2, 0);
    return head(torch::cat({halves[0], halves[1]}, 1)).squeeze(1);
}

SupervisedImpl::SupervisedImpl(int patchSize, int codeSize, int outputs) {
    if (outputs < 1)
        throw InvalidArgument("supervised encoder needs at least one output");
    encoder = register_module("encoder", ConvEncoder(patchSize, codeSize));
    head = register_module("head", ClassifierHead(codeSize, outputs));
}
torch::Tensor SupervisedImpl::forward(const torch::Tensor& x) { return head(encoder(x)); }

BiganEncoderImpl::BiganEncoderImpl(int patchSize, int codeSize, bool downsample) : downsampleInput(downsample) {
    checkEncoderShape(patchSize, codeSize);
    torch::nn::Sequential seq;
    int in = 3;
    for (int i = 0; i < 4; ++i) {
        seq->push_back(ConvBlock(in, 128, 2));
        in = 128;
    }
    convs = register_module("convs", seq);
    const int side = patchSize / 32;
    code = register_module("code", torch::nn::Linear(side * side * 128, codeSize));
}
torch::Tensor BiganEncoderImpl::forward(const torch::Tensor& x) {
    auto h = downsampleInput ? F::avg_pool2d(x, F::AvgPool2dFuncOptions(2)) : x;
    return applyLinear(code, flattenFeatures(convs->forward(h), flattenNhwc));
}

BiganGeneratorImpl::BiganGeneratorImpl(int patchSize, int codeSize) : side(patchSize / 32) {
    checkEncoderShape(patchSize, codeSize);
    dense = register_module("dense", DenseBlock(codeSize, side * side * 64));
    torch::nn::Sequential seq;
    int in = 64;
    for (int i = 0; i < 4; ++i) {
        seq->push_back(UpBlock(in, 128));
        in = 128;
    }
    ups = register_module("ups", seq);
    out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(128, 3, 3).padding(1)));
}
torch::Tensor BiganGeneratorImpl::forward(const torch::Tensor& z) {
    return torch::tanh(applyConv(out, ups->forward(dense(z).view({-1, 64, side, side}))));
}

BiganDiscriminatorImpl::BiganDiscriminatorImpl(int patchSize, int codeSize) {
    image = register_module("image", BiganEncoder(patchSize, codeSize, false));
    torch::nn::Sequential seq(torch::nn::Linear(2 * codeSize, 1024),
                              torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(kLeakySlope)),
                              torch::nn::Dropout(0.5), torch::nn::Linear(1024, 1024),
                              torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(kLeakySlope)),
                              torch::nn::Dropout(0.5), torch::nn::Linear(1024, 1));
    joint = register_module("joint", seq);
}
torch::Tensor BiganDiscriminatorImpl::forward(const torch::Tensor& halfImage, const torch::Tensor& z) {
    return joint->forward(torch::cat({image(halfImage), z}, 1)).squeeze(1);
}

BiganImpl::BiganImpl(int patchSize, int codeSize) {
    encoder = register_module("encoder", BiganEncoder(patchSize, codeSize, true));
    generator = register_module("generator", BiganGenerator(patchSize, codeSize));
    discriminator = register_module("discriminator", BiganDiscriminator(patchSize, codeSize));
}

KerasChainImpl::KerasChainImpl(std::vector<KerasLayer> layers_) : layers(std::move(layers_)) {
    modules.resize(layers.size());
    skip.assign(layers.size(), false);
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto& l = layers[i];
        const std::string key = std::to_string(i) + "_" + toString(l.type);
        switch (l.type) {
        case KerasLayer::Type::Conv2d:
            modules[i] = register_module(
                key, torch::nn::Conv2d(torch::nn::Conv2dOptions(l.inChannels, l.outChannels, l.kernel)
                                           .stride(l.stride)
                                           .bias(l.bias)));
            break;
        case KerasLayer::Type::Dense:
            modules[i] = register_module(key, torch::nn::Linear(torch::nn::LinearOptions(l.inChannels, l.outChannels)
                                                                    .bias(l.bias)));
            break;
        case KerasLayer::Type::BatchNorm:
            modules[i] = register_module(key, torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(l.outChannels)
                                                                         .eps(l.epsilon)
                                                                         .momentum(1.0 - l.momentum)));
            break;
        default:
            break;
        }
    }
}

torch::Tensor KerasChainImpl::forward(torch::Tensor x) {
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto& l = layers[i];
        if (skip[i])
            continue;
        switch (l.type) {
        case KerasLayer::Type::AvgPool2:
            x = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2));
            break;
        case KerasLayer::Type::Conv2d: {
            if (l.samePadding) {
                // TensorFlow 'same': total padding k − s (or more when the size is not a multiple of s),
                // with the odd pixel at the bottom/right.
                auto pads = [&](std::int64_t in) {
                    const std::int64_t outSize = (in + l.stride - 1) / l.stride;
                    const std::int64_t total = std::max<std::int64_t>((outSize - 1) * l.stride + l.kernel - in, 0);
                    return std::pair<std::int64_t, std::int64_t>{total / 2, total - total / 2};
                };
                auto [top, bottom] = pads(x.size(2));
                auto [left, right] = pads(x.size(3));
                x = F::pad(x, F::PadFuncOptions({left, right, top, bottom}));
            }
            x = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(modules[i])->forward(x);
            break;
        }
        case KerasLayer::Type::LeakyRelu:
            x = F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(l.alpha));
            break;
        case KerasLayer::Type::BatchNorm:
            x = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(modules[i])->forward(x);
            break;
        case KerasLayer::Type::Flatten:
            x = x.dim() == 4 ? x.permute({0, 2, 3, 1}).flatten(1) : x.flatten(1);
            break;
        case KerasLayer::Type::Dense: {
            torch::nn::Linear linear(std::dynamic_pointer_cast<torch::nn::LinearImpl>(modules[i]));
            x = applyLinear(linear, x);
            break;
        }
        case KerasLayer::Type::GlobalAvgPool:
            x = x.mean({2, 3});
            break;
        }
    }
    return x;
}

} // namespace nic

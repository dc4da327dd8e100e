#pragma once
// A caching CPU allocator for LibTorch's tensors.
//
// LibTorch allocates every CPU tensor with malloc and frees it when the last reference goes. A training
// step allocates the same activations, gradients and optimiser temporaries every step, many of them far
// above glibc's largest mmap threshold (32 MiB; a VAE batch of 64 at 128² has 33-134 MiB activations):
// glibc maps each one and unmaps it again, and the kernel page-faults and zeroes it afresh every step.
// bench_encoders counted two million page faults in a one-minute VAE training run, with system time at
// 0.1-0.5 of user time. This allocator keeps freed blocks of 1 MiB and more, by size, and hands them
// back to the next allocation of the same size, up to a byte limit; everything smaller goes to malloc.
// It keeps blocks only while a TensorCacheScope is alive: a training run (trainEncoder, crossValidate), a
// slide's compression (PatchEncoder::keepBuffers, held by compressSlide; +37 MiB peak RSS at 100 000²), a
// slide's predictions (predictSlides, nic predict), Grad-CAM's windows and tiles and an encoder's
// evaluation (embedBank). Outside one it frees at once, like malloc. Compression once ran outside
// one, relying on configureCompute's single heap (encoderfile.cpp); but threads that allocated before that
// call (a slide synthesised or read first in the same process, the GUI's own threads) leave arenas of
// 64 MiB heaps that later inference threads are given, and there each batch's activations were mapped
// and page-faulted afresh: system time 0.12-0.29 of user time in bench_compress after it wrote its slide.
//
// It is installed process-wide by configureCompute (CPU tensors made before that are freed by their own
// deleters, as before). Not installed in AddressSanitizer builds (a cache would hide use-after-free of
// tensor memory from it) or when NIC_TENSOR_CACHE_MB=0.
#include <cstddef>
#include <cstdint>

namespace nic {

struct TensorCacheStats {
    bool installed = false;
    std::uint64_t hits = 0;        ///< large allocations served from the cache
    std::uint64_t misses = 0;      ///< large allocations that went to malloc
    std::size_t cachedBytes = 0;   ///< freed blocks held now
    std::size_t limitBytes = 0;    ///< most bytes it keeps
    int scopes = 0;                ///< live TensorCacheScopes
};

/// Makes the caching allocator LibTorch's CPU allocator (once; later calls only report). The limit is
/// NIC_TENSOR_CACHE_MB when set, else 1/8 of the machine's memory, at most 4 GiB. Returns whether it
/// is installed.
bool installTensorCache();

/// Returns every cached block to the system (the last TensorCacheScope does, so that a long-lived process
/// such as the GUI does not keep the peak of its last training run). Blocks in use are not touched.
void releaseTensorCache();

TensorCacheStats tensorCacheStats();

/// While one is alive, freed blocks are kept for reuse; when the last one goes, the cache is released.
/// Declared first in a training function, it ends after the run's own tensors are gone, also when the
/// run throws. Several may be alive at once (concurrent jobs in one process).
class TensorCacheScope {
public:
    TensorCacheScope();
    TensorCacheScope(const TensorCacheScope&) = delete;
    TensorCacheScope& operator=(const TensorCacheScope&) = delete;
    ~TensorCacheScope();
};

/// Testing: sets the byte limit (blocks beyond it are freed at once); returns the previous one.
std::size_t setTensorCacheLimit(std::size_t bytes);

} // namespace nic

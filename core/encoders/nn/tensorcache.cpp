#include "core/encoders/nn/tensorcache.h"

#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <unistd.h>

namespace nic {

namespace {

constexpr std::size_t kHeader = 64;            // the block's size sits in front; keeps c10's 64-byte alignment
constexpr std::size_t kSmallest = 1U << 20;    // smaller blocks go to malloc and back
constexpr std::size_t kPage = 4096;            // large sizes are rounded to pages, so equal tensors share a bucket

std::size_t roundUp(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::size_t defaultLimit() {
    if (const char* env = std::getenv("NIC_TENSOR_CACHE_MB"); env && *env) {
        char* end = nullptr;
        const unsigned long long mb = std::strtoull(env, &end, 10);
        if (end && *end == '\0')
            return static_cast<std::size_t>(std::min<unsigned long long>(mb, 1ULL << 30)) << 20;
    }
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    const std::size_t physical = pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page)
                                                       : std::size_t{8} << 30;
    return std::min(physical / 8, std::size_t{4} << 30);
}

/// Never destroyed: tensors may be freed during static destruction.
struct Cache {
    std::mutex mutex;
    std::unordered_map<std::size_t, std::vector<void*>> free; ///< block size (header included) → blocks
    std::size_t cachedBytes = 0;
    std::size_t limit = 0;
    std::uint64_t hits = 0, misses = 0;
    int scopes = 0; ///< live TensorCacheScopes: freed blocks are kept only while there is one
    bool installed = false;
};

Cache& cache() {
    static Cache* c = new Cache;
    return *c;
}

void* allocateBlock(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() - kHeader - kPage)
        return nullptr;
    std::size_t total = n + kHeader;
    total = total >= kSmallest ? roundUp(total, kPage) : roundUp(total, kHeader);
    if (total >= kSmallest) {
        Cache& c = cache();
        std::lock_guard lock(c.mutex);
        auto it = c.free.find(total);
        if (it != c.free.end() && !it->second.empty()) {
            void* base = it->second.back();
            it->second.pop_back();
            c.cachedBytes -= total;
            ++c.hits;
            return static_cast<char*>(base) + kHeader;
        }
        ++c.misses;
    }
    void* base = nullptr;
    if (::posix_memalign(&base, kHeader, total) != 0)
        return nullptr;
    *static_cast<std::size_t*>(base) = total;
    return static_cast<char*>(base) + kHeader;
}

void releaseBlock(void* p) {
    if (!p)
        return;
    void* base = static_cast<char*>(p) - kHeader;
    const std::size_t total = *static_cast<const std::size_t*>(base);
    if (total >= kSmallest) {
        Cache& c = cache();
        std::lock_guard lock(c.mutex);
        if (c.scopes > 0 && c.cachedBytes + total <= c.limit) {
            c.free[total].push_back(base);
            c.cachedBytes += total;
            return;
        }
    }
    std::free(base);
}

// LibTorch 2.3 made Allocator::allocate non-const and added a pure copy_data; 1.13 (Debian 12) has neither.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define NIC_ALLOCATE_CONST
#define NIC_ALLOCATOR_COPY_DATA 1
#else
#define NIC_ALLOCATE_CONST const
#endif

class CachingCpuAllocator final : public c10::Allocator {
public:
    c10::DataPtr allocate(std::size_t n) NIC_ALLOCATE_CONST override {
        const c10::Device cpu(c10::DeviceType::CPU);
        if (n == 0)
            return {nullptr, nullptr, &releaseBlock, cpu};
        void* p = allocateBlock(n);
        TORCH_CHECK(p, "cannot allocate ", n, " bytes of CPU memory (out of memory)");
        return {p, p, &releaseBlock, cpu};
    }
    c10::DeleterFnPtr raw_deleter() const override { return &releaseBlock; }
#if defined(NIC_ALLOCATOR_COPY_DATA)
    void copy_data(void* dest, const void* src, std::size_t count) const override {
        default_copy_data(dest, src, count);
    }
#endif
};

} // namespace

#if defined(__SANITIZE_ADDRESS__)
#define NIC_TENSOR_CACHE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) // clang
#define NIC_TENSOR_CACHE_UNDER_ASAN 1
#endif
#endif

bool installTensorCache() {
#if defined(NIC_TENSOR_CACHE_UNDER_ASAN)
    return false;
#else
    static const bool installed = [] {
        Cache& c = cache();
        {
            std::lock_guard lock(c.mutex);
            c.limit = defaultLimit();
            if (c.limit == 0)
                return false;
            c.installed = true;
        }
        static CachingCpuAllocator* allocator = new CachingCpuAllocator;
        c10::SetCPUAllocator(allocator, /*priority=*/1);
        return true;
    }();
    return installed;
#endif
}

void releaseTensorCache() {
    Cache& c = cache();
    std::unordered_map<std::size_t, std::vector<void*>> blocks;
    {
        std::lock_guard lock(c.mutex);
        blocks.swap(c.free);
        c.cachedBytes = 0;
    }
    for (auto& [size, list] : blocks)
        for (void* base : list)
            std::free(base);
}

TensorCacheScope::TensorCacheScope() {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    ++c.scopes;
}

TensorCacheScope::~TensorCacheScope() {
    Cache& c = cache();
    {
        std::lock_guard lock(c.mutex);
        if (--c.scopes > 0)
            return; // another run still uses the blocks
    }
    releaseTensorCache();
}

TensorCacheStats tensorCacheStats() {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    TensorCacheStats s;
    s.installed = c.installed;
    s.hits = c.hits;
    s.misses = c.misses;
    s.cachedBytes = c.cachedBytes;
    s.limitBytes = c.limit;
    s.scopes = c.scopes;
    return s;
}

std::size_t setTensorCacheLimit(std::size_t bytes) {
    Cache& c = cache();
    std::size_t previous = 0;
    {
        std::lock_guard lock(c.mutex);
        previous = c.limit;
        c.limit = bytes;
        if (c.cachedBytes <= bytes)
            return previous;
    }
    releaseTensorCache();
    return previous;
}

} // namespace nic

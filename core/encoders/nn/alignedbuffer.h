#pragma once
// AlignedBuffer: a float buffer on 64-byte boundaries that grows on demand and is kept for the next call (the inference
// chain's activations, the im2col copy of the weight gradients). Internal to core_nn.
#include "core/base/envswitch.h"

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <sys/mman.h>

namespace nic {

class AlignedBuffer {
public:
    /// hugePages: buffers of 4 MiB and more are 2 MiB aligned and advised MADV_HUGEPAGE, unless the environment has
    /// NIC_HUGE_PAGES=0 (transparent huge pages in "madvise" mode, Debian's default, give them only with the advice).
    explicit AlignedBuffer(bool hugePages = false) : hugePages_(hugePages) {}

    /// At least `bytes` bytes; the old contents are not kept when it grows. Throws std::bad_alloc.
    float* reserve(std::size_t bytes) {
        if (bytes > bytes_) {
            constexpr std::size_t kHuge = std::size_t{2} << 20;
            const bool huge = hugePages_ && bytes >= 2 * kHuge && hugePagesAllowed();
            const std::size_t align = huge ? kHuge : 64;
            const std::size_t rounded = (bytes + align - 1) / align * align;
            data_.reset(static_cast<float*>(std::aligned_alloc(align, rounded)));
            if (!data_) {
                bytes_ = 0;
                throw std::bad_alloc();
            }
#ifdef MADV_HUGEPAGE
            if (huge)
                ::madvise(data_.get(), rounded, MADV_HUGEPAGE); // advice only: without it, ordinary pages
#endif
            bytes_ = rounded;
        }
        return data_.get();
    }

private:
    static bool hugePagesAllowed() {
        static const bool allowed = envSwitchOn("NIC_HUGE_PAGES");
        return allowed;
    }
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float, Free> data_;
    std::size_t bytes_ = 0;
    bool hugePages_;
};

} // namespace nic

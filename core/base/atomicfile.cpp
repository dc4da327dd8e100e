#include "core/base/atomicfile.h"

#include "core/base/envswitch.h"
#include "core/base/error.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>
#ifdef __linux__
#include <sys/vfs.h>
#endif
#include <utility>

namespace nic {

namespace {
#ifdef O_DIRECT
constexpr int kDirectFlag = O_DIRECT;
#else
constexpr int kDirectFlag = 0;
#endif

std::atomic<bool> gDirectWrites{envSwitchOn("NIC_DIRECT_WRITES")};

/// Direct writes' buffers, kept for the next file: memory this process has touched before, which on the VM measured
/// here costs far less than new memory (docs/timings.md). At most eight are kept (two files written at once, as at the
/// end of a training epoch, hold up to kPiecesInFlight each), in an array that needs no allocation and no destructor
/// (pieces given back while the process exits stay reachable).
std::mutex gPiecesMutex;
char* gPieces[8] = {};
std::size_t gPieceCount = 0;

char* takePiece() noexcept {
    {
        std::lock_guard lock(gPiecesMutex);
        if (gPieceCount > 0)
            return gPieces[--gPieceCount];
    }
    return static_cast<char*>(std::aligned_alloc(WriteBehindFile::kDirectAlign, WriteBehindFile::kPiece));
}

void givePiece(char* piece) noexcept {
    if (piece == nullptr)
        return;
    {
        std::lock_guard lock(gPiecesMutex);
        if (gPieceCount < std::size(gPieces)) {
            gPieces[gPieceCount++] = piece;
            return;
        }
    }
    std::free(piece);
}

/// Whether the file behind `fd` is on a local disk file system that takes direct writes as such. Elsewhere (network
/// file systems, where each direct write would wait for the server; tmpfs, where the page cache is the file) the
/// page cache stays.
bool directWritesSuit(int fd) {
#ifdef __linux__
    struct statfs fs {};
    if (::fstatfs(fd, &fs) != 0)
        return false;
    switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53UL:     // ext2, ext3, ext4
    case 0x58465342UL: // XFS
    case 0x9123683EUL: // Btrfs
    case 0xF2F52010UL: // F2FS
        return true;
    default:
        return false;
    }
#else
    (void)fd;
    return false;
#endif
}

std::string randomSuffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<unsigned long>(::getpid())};
    static const char* hex = "0123456789abcdef";
    std::string s(8, '0');
    for (auto& c : s)
        c = hex[rng() & 15U];
    return s;
}
} // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    temp_ = target_;
    temp_ += ".tmp-" + randomSuffix();
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(temp_, ec);
    }
}

void AtomicFile::commit() {
    sync();
    publish();
}

void AtomicFile::sync() {
    int fd = ::open(temp_.c_str(), O_RDONLY);
    if (fd < 0)
        throw IoError(target_.string() + ": cannot publish output: temporary file " + temp_.string() + " is missing (" +
                      std::strerror(errno) + ")");
    const int syncResult = ::fsync(fd);
    const int syncErrno = errno;
    ::close(fd);
    if (syncResult != 0)
        throw IoError(target_.string() + ": cannot write: " + std::strerror(syncErrno));
    synced_ = true;
}

void AtomicFile::publish() {
    if (!synced_)
        sync();
    if (::rename(temp_.c_str(), target_.c_str()) != 0)
        throw IoError(target_.string() + ": cannot rename temporary file into place: " + std::strerror(errno));
    committed_ = true;
}

/// The writer thread of a directly written file and its queue: full pieces go in at the back (write(), close()), are
/// written from the front, and come back as free pieces to fill.
struct WriteBehindFile::Writer {
    struct Full {
        char* piece;
        std::size_t bytes;
    };
    std::mutex mutex;
    std::condition_variable changed; ///< a piece queued or freed, or stop
    Full queue[kPiecesInFlight] = {};
    std::size_t front = 0, queued = 0;
    char* free[kPiecesInFlight] = {};
    std::size_t freeCount = 0;
    std::size_t taken = 0; ///< pieces this file took from the pool
    bool stop = false;     ///< no more pieces will come
    bool abandon = false;  ///< the file is being dropped: write nothing more
    std::thread thread;

    void run(WriteBehindFile& file) {
        std::unique_lock lock(mutex);
        for (;;) {
            changed.wait(lock, [&] { return queued > 0 || stop; });
            if (queued == 0)
                return;
            const Full full = queue[front];
            const bool skip = abandon; // read under the lock: finish() sets it from the file's thread
            lock.unlock();
            if (!skip && file.errno_.load() == 0)
                file.writePiece(full.piece, full.bytes);
            lock.lock();
            front = (front + 1) % kPiecesInFlight;
            --queued;
            free[freeCount++] = full.piece;
            changed.notify_all();
        }
    }
    /// Queues a full piece, waiting while the queue is full.
    void pass(char* piece, std::size_t bytes) {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return queued < kPiecesInFlight; });
        queue[(front + queued) % kPiecesInFlight] = {piece, bytes};
        ++queued;
        changed.notify_all();
    }
    /// A piece to fill: a free one, a new one from the pool (outside the lock) while this file holds fewer than
    /// kPiecesInFlight, or the next the writer frees. nullptr only where the pool has none and nothing is in flight,
    /// which cannot happen right after pass() (its piece is queued or already free).
    char* next() {
        {
            std::unique_lock lock(mutex);
            if (freeCount > 0)
                return free[--freeCount];
            if (taken >= kPiecesInFlight) {
                changed.wait(lock, [&] { return freeCount > 0 || queued == 0; });
                return freeCount > 0 ? free[--freeCount] : nullptr;
            }
            ++taken;
        }
        if (char* piece = takePiece())
            return piece;
        std::unique_lock lock(mutex);
        --taken;
        changed.wait(lock, [&] { return freeCount > 0 || queued == 0; });
        return freeCount > 0 ? free[--freeCount] : nullptr;
    }
    /// Stops the thread after the queued pieces (written, unless `drop`) and gives every piece back to the pool.
    void finish(bool drop) {
        {
            std::lock_guard lock(mutex);
            stop = true;
            abandon = abandon || drop;
        }
        changed.notify_all();
        if (thread.joinable())
            thread.join();
        while (freeCount > 0)
            givePiece(free[--freeCount]);
    }
};

WriteBehindFile::WriteBehindFile(const AtomicFile& file, std::string what)
    : target_(file.target()), what_(std::move(what)) {
    fd_ = ::open(file.tempPath().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
        throw IoError(failure(errno));
    // A file system without direct IO refuses the flag here (EINVAL), or its first write (writePiece).
    if (kDirectFlag != 0 && gDirectWrites.load(std::memory_order_relaxed) && directWritesSuit(fd_)) {
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags >= 0 && ::fcntl(fd_, F_SETFL, flags | kDirectFlag) == 0) {
            gathered_ = takePiece();
            direct_ = gathered_ != nullptr;
            if (!direct_)
                ::fcntl(fd_, F_SETFL, flags);
        }
    }
    if (direct_) {
        try {
            writer_ = std::make_unique<Writer>();
            writer_->taken = 1; // gathered_
            writer_->thread = std::thread([this] { writer_->run(*this); });
        } catch (const std::exception&) { // no thread (std::system_error) or no memory: written on this thread
            writer_.reset();
        }
    }
}

bool WriteBehindFile::useDirectWrites(bool on) {
    return gDirectWrites.exchange(on, std::memory_order_relaxed);
}

std::string WriteBehindFile::failure(int err) const {
    return target_.string() + ": " + what_ + ": " + std::strerror(err);
}

WriteBehindFile::~WriteBehindFile() {
    if (writer_)
        writer_->finish(true);
    if (fd_ >= 0)
        ::close(fd_);
    givePiece(gathered_);
}

std::size_t WriteBehindFile::write(const void* data, std::size_t n) noexcept {
    if (errno_ != 0 || fd_ < 0)
        return n;
    const auto* p = static_cast<const char*>(data);
    accepted_ += n;
    if (gathered_ == nullptr) {
        writeBuffered(p, n);
        return n;
    }
    for (std::size_t done = 0; done < n;) {
        const std::size_t take = std::min(n - done, kPiece - gatheredBytes_);
        std::memcpy(gathered_ + gatheredBytes_, p + done, take);
        gatheredBytes_ += take;
        done += take;
        if (gatheredBytes_ == kPiece && !passGathered(false))
            break;
    }
    return n;
}

bool WriteBehindFile::passGathered(bool last) noexcept {
    const std::size_t n = std::exchange(gatheredBytes_, 0);
    if (!writer_) {
        const bool ok = n == 0 || writePiece(gathered_, n);
        return ok && errno_.load() == 0;
    }
    if (n > 0)
        writer_->pass(std::exchange(gathered_, nullptr), n);
    if (!last && gathered_ == nullptr) {
        gathered_ = writer_->next();
        if (gathered_ == nullptr) { // no memory for a piece, and none in flight to wait for
            int none = 0;
            errno_.compare_exchange_strong(none, ENOMEM); // a writer's error, if any, stays the first
            return false;
        }
    }
    return errno_.load() == 0;
}

bool WriteBehindFile::writePiece(char* piece, std::size_t n) noexcept {
    std::size_t done = 0;
    if (direct_) {
        // The last piece is padded to kDirectAlign; close() cuts the file back to its length.
        const std::size_t padded = (n + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
        std::memset(piece + n, 0, padded - n);
        while (done < padded) {
            const ssize_t k = ::write(fd_, piece + done, padded - done);
            if (k < 0 && errno == EINTR)
                continue;
            if ((k < 0 && errno != EINVAL) || k == 0) { // 0: nothing taken, which would repeat for ever
                errno_ = k < 0 ? errno : EIO;
                return false;
            }
            if (k > 0) {
                done += static_cast<std::size_t>(k);
                written_ += static_cast<std::uint64_t>(k);
                if (done % kDirectAlign == 0)
                    continue;
            }
            // Refused (EINVAL: no direct IO here after all) or cut short off the alignment: the rest through the page
            // cache, from where this write ended.
            const int flags = ::fcntl(fd_, F_GETFL);
            if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~kDirectFlag) != 0) {
                errno_ = errno;
                return false;
            }
            direct_ = false;
            break;
        }
    }
    return done >= n || writeBuffered(piece + done, n - done);
}

bool WriteBehindFile::writeBuffered(const char* p, std::size_t n) noexcept {
    std::size_t done = 0;
    while (done < n) {
        // At most kPiece a call: see kPiece.
        const ssize_t k = ::write(fd_, p + done, std::min<std::size_t>(n - done, kPiece));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) { // 0: nothing taken, which would repeat for ever
            errno_ = k < 0 ? errno : EIO;
            return false;
        }
        done += static_cast<std::size_t>(k);
        written_ += static_cast<std::uint64_t>(k);
#ifdef __linux__
        // Only a hint: where the file system does not take it, sync() writes everything as before.
        if (written_ - handedOver_ >= kStretch) {
            ::sync_file_range(fd_, static_cast<off_t>(handedOver_), static_cast<off_t>(written_ - handedOver_),
                              SYNC_FILE_RANGE_WRITE);
            handedOver_ = written_;
        }
#endif
    }
    return true;
}

std::string WriteBehindFile::error() const {
    return errno_ != 0 ? failure(errno_) : std::string();
}

void WriteBehindFile::close() {
    if (fd_ >= 0 && errno_ == 0 && gatheredBytes_ > 0)
        passGathered(true);
    if (writer_) {
        writer_->finish(false); // every queued piece written; the pieces back in the pool
        writer_.reset();
    }
    // The last direct piece's padding goes.
    if (fd_ >= 0 && errno_ == 0 && written_ > accepted_ && ::ftruncate(fd_, static_cast<off_t>(accepted_)) != 0)
        errno_ = errno;
    givePiece(std::exchange(gathered_, nullptr));
    const int fd = fd_;
    fd_ = -1;
    const bool closed = fd < 0 || ::close(fd) == 0;
    const int closeErrno = errno;
    if (errno_ != 0)
        throw IoError(failure(errno_));
    if (!closed)
        throw IoError(failure(closeErrno));
}

void writeFileAtomically(const std::filesystem::path& target, const std::string& bytes) {
    AtomicFile file(target);
    int fd = ::open(file.tempPath().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        throw IoError(target.string() + ": cannot create: " + std::strerror(errno));
    std::size_t written = 0;
    while (written < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            const int err = errno;
            ::close(fd);
            throw IoError(target.string() + ": cannot write: " + std::strerror(err));
        }
        written += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0)
        throw IoError(target.string() + ": cannot write: " + std::strerror(errno));
    file.commit();
}

} // namespace nic

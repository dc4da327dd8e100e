#include "core/base/atomicfile.h"

#include "core/base/error.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <unistd.h>
#include <utility>

namespace nic {

namespace {
std::string randomSuffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                            static_cast<unsigned long>(::getpid())};
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
        throw IoError(target_.string() + ": cannot publish output: temporary file " + temp_.string() +
                      " is missing (" + std::strerror(errno) + ")");
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

WriteBehindFile::WriteBehindFile(const AtomicFile& file, std::string what)
    : target_(file.target()), what_(std::move(what)) {
    fd_ = ::open(file.tempPath().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
        throw IoError(failure(errno));
}

std::string WriteBehindFile::failure(int err) const {
    return target_.string() + ": " + what_ + ": " + std::strerror(err);
}

WriteBehindFile::~WriteBehindFile() {
    if (fd_ >= 0)
        ::close(fd_);
}

std::size_t WriteBehindFile::write(const void* data, std::size_t n) noexcept {
    if (errno_ != 0 || fd_ < 0)
        return n;
    const auto* p = static_cast<const char*>(data);
    std::size_t done = 0;
    while (done < n) {
        // At most kPiece a call: see kPiece.
        const ssize_t k = ::write(fd_, p + done, std::min<std::size_t>(n - done, kPiece));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) { // 0: nothing taken, which would repeat for ever
            errno_ = k < 0 ? errno : EIO;
            return n;
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
    return n;
}

std::string WriteBehindFile::error() const { return errno_ != 0 ? failure(errno_) : std::string(); }

void WriteBehindFile::close() {
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

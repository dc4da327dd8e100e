#include "core/base/atomicfile.h"

#include "core/base/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <unistd.h>

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

#include "testsupport.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <csignal>
#include <random>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace nic::test {

std::filesystem::path sharedDataDir() {
    if (const char* env = std::getenv("NIC_SHARED_DATA"))
        return env;
    return NIC_SHARED_DATA_DIR;
}

FileSizeLimit::FileSizeLimit(std::uint64_t bytes) {
    oldHandler_ = std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lower = old_;
    lower.rlim_cur = static_cast<rlim_t>(bytes);
    if (setrlimit(RLIMIT_FSIZE, &lower) != 0)
        ADD_FAILURE() << "cannot lower the file size limit";
}

FileSizeLimit::~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, oldHandler_);
}

TempDir::TempDir() {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int i = 0; i < 100; ++i) {
        auto candidate = base / ("nic-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        if (std::filesystem::create_directory(candidate)) {
            path_ = candidate;
            return;
        }
    }
    throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::filesystem::path nicExecutable() { return NIC_CLI_PATH; }

std::string nicCommand(const std::string& args) { return shellQuoted(nicExecutable()) + " " + args; }

std::string shellQuoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

int entriesIn(const std::filesystem::path& dir) {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
        ++n;
    return n;
}

std::string readFile(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int runCommand(const std::string& command, std::string* out, std::string* err) {
    TempDir dir;
    const auto o = dir / "stdout";
    const auto e = dir / "stderr";
    const std::string full = command + " >'" + o.string() + "' 2>'" + e.string() + "' </dev/null";
    const int status = std::system(full.c_str());
    if (out)
        *out = readFile(o);
    if (err)
        *err = readFile(e);
    if (status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace nic::test

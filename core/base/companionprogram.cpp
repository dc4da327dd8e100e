#include "core/base/companionprogram.h"

#include <cstdlib>
#include <unistd.h>

namespace nic {

std::filesystem::path findCompanionProgram(const std::string& name, const char* envVar) {
    namespace fs = std::filesystem;
    if (const char* env = envVar ? std::getenv(envVar) : nullptr; env && *env)
        return fs::path(env);
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec)
        return {};
    const fs::path dir = self.parent_path();
    for (const fs::path& candidate : {dir / name, dir.parent_path() / "libexec" / "nic-studio" / name,
                                      dir.parent_path() / name / name, dir.parent_path() / "app" / name / name})
        if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    return {};
}

} // namespace nic

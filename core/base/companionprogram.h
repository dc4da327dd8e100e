#pragma once
// Finding the project's other programs (nic, nic-probe) from the one running.
#include <filesystem>
#include <string>

namespace nic {

/// The program `name` that ships with this one: the path in the environment variable `envVar` when it is
/// set and not empty (returned as given, unchecked); else the first executable of, relative to the folder
/// of the running program: `name` beside it (installed bin/), `../libexec/nic-studio/name`, and the build
/// tree's `../name/name` and `../app/name/name` (app/<target>/ beside app/nic/, or tests/ beside app/).
/// Empty when none is found.
std::filesystem::path findCompanionProgram(const std::string& name, const char* envVar);

} // namespace nic

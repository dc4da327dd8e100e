#pragma once
// Switches read from the environment that turn an optimised path off.

#include <cstdlib>
#include <cstring>

namespace nic {

/// False only when the environment variable `name` is "0": the NIC_* switches of optimised paths (NIC_HUGE_PAGES,
/// NIC_DIRECT_FIRST_CONV, ...) are on unless set to 0.
inline bool envSwitchOn(const char* name) {
    const char* value = std::getenv(name);
    return value == nullptr || std::strcmp(value, "0") != 0;
}

} // namespace nic

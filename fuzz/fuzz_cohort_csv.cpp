// Fuzzes the cohort CSV reader (parseCohort): it either succeeds or throws nic::Error, and every entry
// it returns has a slide and a label.
#include "core/slidelearning/cohort.h"
#include "core/base/error.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const nic::Cohort c = nic::parseCohort(text, "fuzz.csv", "base");
        for (const auto& e : c.entries) {
            if (e.slide.empty() || e.label.empty())
                std::abort();
            try {
                (void)e.labelValue();
            } catch (const nic::Error&) {
            }
        }
        (void)c.slides();
    } catch (const nic::Error&) {
    }
    return 0;
}

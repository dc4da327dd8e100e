// Fuzzes the ASAP XML reader (AnnotationSet::parse). Contract checked: parse either succeeds or throws
// nic::Error; a parsed set serialises (toXml) and parses back to an equal set.
#include "core/annotations/annotation.h"
#include "core/base/error.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string xml(reinterpret_cast<const char*>(data), size);
    nic::AnnotationSet set;
    try {
        set = nic::AnnotationSet::parse(xml, "fuzz.xml");
    } catch (const nic::Error&) {
        return 0;
    }
    std::string again;
    try {
        again = set.toXml();
    } catch (const nic::Error& e) {
        std::fprintf(stderr, "parsed set does not serialise: %s\n", e.what());
        std::abort();
    }
    try {
        if (!(nic::AnnotationSet::parse(again, "fuzz-roundtrip.xml") == set)) {
            std::fprintf(stderr, "round trip changed the set\n");
            std::abort();
        }
    } catch (const nic::Error& e) {
        std::fprintf(stderr, "serialised set does not parse back: %s\n", e.what());
        std::abort();
    }
    return 0;
}

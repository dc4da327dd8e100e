#pragma once
// ASAP annotation XML (the Camelyon16/17 format): data model, lossless reading and writing,
// rasterisation. The only code in the project that parses or writes ASAP XML.
#include "core/image.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// A vertex in level-0 pixel coordinates.
struct Point {
    double x = 0.0;
    double y = 0.0;
    bool operator==(const Point&) const = default;
};

/// ASAP annotation types (the `Type` attribute).
enum class AnnotationType { None, Dot, Polygon, Spline, PointSet, Measurement, Rectangle };

/// Returns the ASAP spelling ("Polygon", ...).
const char* toString(AnnotationType type);

/// One <Annotation>. `attributes` keeps every XML attribute other than Name/Type/PartOfGroup/Color
/// verbatim (lossless round trip); coordinates keep their Order-sorted sequence.
struct Annotation {
    std::string name;
    AnnotationType type = AnnotationType::Polygon;
    std::string group;  ///< PartOfGroup ("None" in files means no group; stored as-is)
    std::string color;  ///< "#RRGGBB" as in the file
    std::vector<Point> coordinates;
    std::map<std::string, std::string> attributes;
    bool operator==(const Annotation&) const = default;
};

/// One <Group> / <AnnotationGroup>. `parent` is PartOfGroup ("None" for top level).
struct AnnotationGroup {
    std::string name;
    std::string parent;
    std::string color;
    std::map<std::string, std::string> attributes;          ///< other XML attributes, verbatim
    std::vector<std::pair<std::string, std::string>> extra; ///< child <Attributes> content, if any
    bool operator==(const AnnotationGroup&) const = default;
};

/// All annotations and groups of one ASAP XML file.
class AnnotationSet {
public:
    std::vector<Annotation> annotations;
    std::vector<AnnotationGroup> groups;

    /// Loads an ASAP XML file. Throws AnnotationError naming the file and the cause (with the line
    /// number for malformed XML; naming both the annotation and the group for an unknown group).
    static AnnotationSet load(const std::filesystem::path& path);
    /// Parses XML from memory (`sourceName` is used in error messages).
    static AnnotationSet parse(const std::string& xml, const std::string& sourceName);
    /// Writes ASAP XML atomically. Throws IoError.
    void save(const std::filesystem::path& path) const;
    std::string toXml() const;

    bool operator==(const AnnotationSet&) const = default;
};

} // namespace nic

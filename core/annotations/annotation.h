#pragma once
// ASAP annotation XML (the Camelyon16/17 format): data model and lossless reading and writing.
// The only code in the project that parses or writes ASAP XML (rasterisation: annotationraster.h).
//
// File layout (as written by ASAP's XmlRepository):
//   <ASAP_Annotations>
//     <Annotations>
//       <Annotation Name=".." Type="Polygon" PartOfGroup="metastases" Color="#F4FA58">
//         <Coordinates> <Coordinate Order="0" X="12711.3" Y="88778.1" /> ... </Coordinates>
//       </Annotation>
//     </Annotations>
//     <AnnotationGroups>
//       <Group Name="metastases" PartOfGroup="None" Color="#ff0000"> <Attributes /> </Group>
//     </AnnotationGroups>
//   </ASAP_Annotations>
//
// What "lossless" means here: save() → load() gives a model equal (operator==) to the one saved, and
// load() keeps everything the model can hold: every annotation and group in document order, all
// types, nesting, colours, unknown XML attributes of <Annotation> and <Group>, the entries of a
// group's <Attributes>, and which group element name was used. A file written by ASAP itself is
// reproduced byte for byte by toXml(). Not kept: XML comments, whitespace, attribute order, unknown
// elements (ignored on load), extra attributes of <Coordinate>, and the original spelling of numbers
// (they are written in the shortest form that reads back to the same double).
#include <filesystem>
#include <map>
#include <string>
#include <utility>
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

/// Returns the ASAP spelling ("None", "Dot", "Polygon", "Spline", "PointSet", "Measurement", "Rectangle").
const char* toString(AnnotationType type);

/// Parses the ASAP spelling (exact, case-sensitive). Returns false (and leaves `type` alone) if unknown.
bool parseAnnotationType(const std::string& text, AnnotationType& type);

/// One <Annotation>.
struct Annotation {
    std::string name;
    AnnotationType type = AnnotationType::Polygon;
    /// PartOfGroup. Empty = no group (files spell this "None"; an absent attribute reads as empty too).
    std::string group;
    std::string color;  ///< Color, verbatim (ASAP writes "#RRGGBB")
    /// Vertices sorted by their Order attribute (stable: equal Orders keep document order). Saving
    /// writes Order = 0, 1, 2, ... in this sequence.
    std::vector<Point> coordinates;
    /// Every XML attribute of <Annotation> other than Name, Type, PartOfGroup and Color, verbatim.
    std::map<std::string, std::string> attributes;
    bool operator==(const Annotation&) const = default;
};

/// The element name a group was read from. ASAP writes <Group> inside <AnnotationGroups>; some tools
/// write <AnnotationGroup>. Saving reproduces the name per group (always inside <AnnotationGroups>).
enum class GroupElement { Group, AnnotationGroup };

/// One <Group> / <AnnotationGroup>.
struct AnnotationGroup {
    std::string name;
    /// PartOfGroup: the name of the enclosing group. Empty = top level (files spell this "None").
    std::string parent;
    std::string color;  ///< Color, verbatim
    /// Every XML attribute of the group element other than Name, PartOfGroup and Color, verbatim.
    std::map<std::string, std::string> attributes;
    /// The content of the child <Attributes> element (ASAP's group attributes): one (key, value) per
    /// XML attribute of each <Attribute> child, in document order. Saved as one <Attribute key="value" />
    /// per entry, which is what ASAP writes.
    std::vector<std::pair<std::string, std::string>> properties;
    GroupElement element = GroupElement::Group;
    bool operator==(const AnnotationGroup&) const = default;
};

/// All annotations and groups of one ASAP XML file. A plain value type; not synchronised (share
/// const instances freely across threads, mutate from one thread).
///
/// Group references (checked by load/parse, and by save/toXml so that a saved file always loads):
///  - An annotation's group is "unknown" only when the set declares at least one group and the
///    annotation names a group that is not declared. A file with no declared groups may use free-form
///    group names (converters often omit <AnnotationGroups>); ASAP itself is stricter. All Camelyon17
///    files declare the groups they use ("metastases", "normal", "Tumor").
///  - A group's parent must always be a declared group, group names must be unique, and nesting must
///    not form a cycle.
class AnnotationSet {
public:
    std::vector<Annotation> annotations;
    std::vector<AnnotationGroup> groups;

    /// Loads an ASAP XML file. Throws IoError "<path>: cannot open: <cause>" when the file cannot be
    /// read, and AnnotationError "<path>:<line>: <cause>" when its content is malformed or
    /// inconsistent (see parse()).
    static AnnotationSet load(const std::filesystem::path& path);

    /// Parses ASAP XML from memory; `sourceName` is the file name used in error messages. Throws
    /// AnnotationError with one of these messages (<line> is 1-based):
    ///   "<src>:<line>: malformed XML: <pugixml's description>"
    ///   "<src>:<line>: not an ASAP annotation file: root element is <X>, expected <ASAP_Annotations>"
    ///   "<src>:<line>: annotation '<name>' names unknown group '<group>'"
    ///   "<src>:<line>: group '<name>' names unknown parent group '<parent>'"
    ///   "<src>:<line>: duplicate group '<name>'"
    ///   "<src>:<line>: group '<name>' is nested in itself"
    ///   "<src>:<line>: annotation '<name>' has unknown type '<type>'"
    ///   "<src>:<line>: annotation '<name>': invalid coordinate <Attr>=\"<value>\""   (Attr: Order, X or Y;
    ///       also for a missing attribute, with an empty value, and for infinities/NaN)
    /// Numbers are read locale-independently; a decimal comma ("12711,3", as pugixml writes under
    /// some locales) is accepted when the value has no '.'.
    static AnnotationSet parse(const std::string& xml, const std::string& sourceName);

    /// Writes toXml() atomically (temporary file + rename). Throws IoError if writing fails, and
    /// AnnotationError, before anything is written, if the set would not load back as it is:
    ///   "<path>: <cause>" with a <cause> of the group rules above (as in parse()), or one of
    ///   "annotation '<name>': attribute name '<key>' is reserved or not a valid XML name"
    ///   "group '<name>': attribute name '<key>' is reserved or not a valid XML name"
    ///   "annotation '<name>': coordinate <index> is not finite"
    ///   "annotation '<name>': group name 'None' is reserved (an empty group means no group)"
    ///   "group '<name>': group name 'None' is reserved (an empty parent means top level)"
    /// (reserved keys: Name, Type, PartOfGroup, Color on annotations; Name, PartOfGroup, Color on groups).
    void save(const std::filesystem::path& path) const;

    /// Serialises in ASAP's layout: `<?xml version="1.0"?>`, tab indentation, attributes Name, Type,
    /// PartOfGroup, Color first, then the extra ones; every group gets an <Attributes> child. Throws
    /// AnnotationError "annotation set: <cause>" for the causes listed under save().
    std::string toXml() const;

    /// The declared group called `name`, or nullptr.
    const AnnotationGroup* findGroup(const std::string& name) const;

    /// True if `groupName` is `ancestor` or nested (at any depth) inside it. Safe on cyclic input.
    bool isInGroup(const std::string& groupName, const std::string& ancestor) const;

    bool operator==(const AnnotationSet&) const = default;
};

} // namespace nic

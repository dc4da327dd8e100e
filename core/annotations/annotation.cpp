#include "core/annotations/annotation.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"

#include <pugixml.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace nic {

namespace {

constexpr std::array<std::pair<AnnotationType, const char*>, 7> kTypeNames{{
    {AnnotationType::None, "None"},
    {AnnotationType::Dot, "Dot"},
    {AnnotationType::Polygon, "Polygon"},
    {AnnotationType::Spline, "Spline"},
    {AnnotationType::PointSet, "PointSet"},
    {AnnotationType::Measurement, "Measurement"},
    {AnnotationType::Rectangle, "Rectangle"},
}};

constexpr const char* kNoGroup = "None";

// Maps pugixml byte offsets to 1-based line numbers.
class LineIndex {
public:
    explicit LineIndex(std::string_view text) {
        for (std::size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n')
                newlines_.push_back(i);
    }
    int lineAt(std::ptrdiff_t offset) const {
        if (offset < 0)
            return 0;
        const auto it = std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<std::size_t>(offset));
        return static_cast<int>(it - newlines_.begin()) + 1;
    }

private:
    std::vector<std::size_t> newlines_;
};

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

// Locale-independent, exact (std::from_chars). Accepts a leading '+' and a single decimal comma in a
// value without '.', as pugixml's printf-based writer produces under a comma locale.
bool parseCoordinate(std::string_view text, double& out) {
    std::string_view s = trimmed(text);
    if (!s.empty() && s.front() == '+')
        s.remove_prefix(1);
    std::string commaFixed;
    if (const auto comma = s.find(','); comma != std::string_view::npos) {
        if (s.find('.') != std::string_view::npos || s.find(',', comma + 1) != std::string_view::npos)
            return false;
        commaFixed.assign(s);
        commaFixed[comma] = '.';
        s = commaFixed;
    }
    if (s.empty())
        return false;
    double value = 0.0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value))
        return false;
    out = value;
    return true;
}

bool parseOrder(std::string_view text, long long& out) {
    std::string_view s = trimmed(text);
    if (!s.empty() && s.front() == '+')
        s.remove_prefix(1);
    if (s.empty())
        return false;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

// Shortest text that reads back to exactly `value`. Fixed notation in the range where it is what
// ASAP and people write (no "1e+05" for 100000); scientific outside it, where fixed would be long.
std::string formatCoordinate(double value) {
    std::array<char, 64> buf{};
    const double magnitude = std::fabs(value);
    const auto format =
        (magnitude == 0.0 || (magnitude >= 1e-5 && magnitude < 1e16)) ? std::chars_format::fixed : std::chars_format::scientific;
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value, format);
    if (ec != std::errc())
        throw std::logic_error("formatCoordinate: buffer too small");
    return std::string(buf.data(), end);
}

// Group name as stored in the model: "None" and absent both mean "no group".
std::string groupRef(const pugi::xml_attribute& attr) {
    const std::string value = attr.value();
    return value == kNoGroup ? std::string() : value;
}

bool isNameStart(unsigned char c) {
    return std::isalpha(c) != 0 || c == '_' || c == ':' || c >= 0x80;
}

bool isXmlName(const std::string& name) {
    if (name.empty() || !isNameStart(static_cast<unsigned char>(name.front())))
        return false;
    return std::all_of(name.begin() + 1, name.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return isNameStart(c) || std::isdigit(c) != 0 || c == '-' || c == '.';
    });
}

// "<src>:<line>: " when the line is known, "<src>: " otherwise.
std::string prefix(const std::string& source, int line) {
    return line > 0 ? source + ":" + std::to_string(line) + ": " : source + ": ";
}

int lineOf(const std::vector<int>* lines, std::size_t index) {
    return lines != nullptr && index < lines->size() ? (*lines)[index] : 0;
}

// The group rules documented in annotation.h. `annotationLines`/`groupLines` (optional) give the line
// of each element for messages.
void checkGroupReferences(const AnnotationSet& set, const std::string& source, const std::vector<int>* annotationLines,
                          const std::vector<int>* groupLines) {
    std::unordered_map<std::string, std::size_t> byName;
    for (std::size_t i = 0; i < set.groups.size(); ++i) {
        const auto& group = set.groups[i];
        if (!byName.emplace(group.name, i).second)
            throw AnnotationError(prefix(source, lineOf(groupLines, i)) + "duplicate group '" + group.name + "'");
    }
    for (std::size_t i = 0; i < set.groups.size(); ++i) {
        const auto& group = set.groups[i];
        if (group.parent.empty())
            continue;
        if (!byName.contains(group.parent))
            throw AnnotationError(prefix(source, lineOf(groupLines, i)) + "group '" + group.name +
                                  "' names unknown parent group '" + group.parent + "'");
        // Walk up at most groups.size() steps: any longer chain must revisit a group.
        std::string current = group.parent;
        for (std::size_t step = 0; step < set.groups.size() && !current.empty(); ++step) {
            if (current == group.name)
                throw AnnotationError(prefix(source, lineOf(groupLines, i)) + "group '" + group.name +
                                      "' is nested in itself");
            const auto it = byName.find(current);
            current = it == byName.end() ? std::string() : set.groups[it->second].parent;
        }
    }
    if (set.groups.empty())
        return;  // no declarations: group names are free-form
    for (std::size_t i = 0; i < set.annotations.size(); ++i) {
        const auto& annotation = set.annotations[i];
        if (!annotation.group.empty() && !byName.contains(annotation.group))
            throw AnnotationError(prefix(source, lineOf(annotationLines, i)) + "annotation '" + annotation.name +
                                  "' names unknown group '" + annotation.group + "'");
    }
}

// Attribute keys of `entries` ((key, value) pairs) must be XML names and not in `reserved`.
template <typename Entries, std::size_t N>
void checkKeys(const std::string& source, const std::string& owner, const Entries& entries,
               const std::array<std::string_view, N>& reserved) {
    for (const auto& [key, value] : entries)
        if (std::find(reserved.begin(), reserved.end(), key) != reserved.end() || !isXmlName(key))
            throw AnnotationError(prefix(source, 0) + owner + ": attribute name '" + key +
                                  "' is reserved or not a valid XML name");
}

// What save/toXml additionally need so that the written file parses back to the same model.
void checkWritable(const AnnotationSet& set, const std::string& source) {
    static constexpr std::array<std::string_view, 4> kAnnotationReserved{"Name", "Type", "PartOfGroup", "Color"};
    static constexpr std::array<std::string_view, 3> kGroupReserved{"Name", "PartOfGroup", "Color"};
    for (const auto& annotation : set.annotations) {
        const std::string owner = "annotation '" + annotation.name + "'";
        if (annotation.group == kNoGroup)
            throw AnnotationError(prefix(source, 0) + owner +
                                  ": group name 'None' is reserved (an empty group means no group)");
        checkKeys(source, owner, annotation.attributes, kAnnotationReserved);
        for (std::size_t k = 0; k < annotation.coordinates.size(); ++k) {
            const auto& p = annotation.coordinates[k];
            if (!std::isfinite(p.x) || !std::isfinite(p.y))
                throw AnnotationError(prefix(source, 0) + owner + ": coordinate " + std::to_string(k) +
                                      " is not finite");
        }
    }
    for (const auto& group : set.groups) {
        const std::string owner = "group '" + group.name + "'";
        if (group.parent == kNoGroup)
            throw AnnotationError(prefix(source, 0) + owner +
                                  ": group name 'None' is reserved (an empty parent means top level)");
        checkKeys(source, owner, group.attributes, kGroupReserved);
        checkKeys(source, owner, group.properties, std::array<std::string_view, 0>{});
    }
    checkGroupReferences(set, source, nullptr, nullptr);
}

class Parser {
public:
    Parser(std::string_view xml, const std::string& source) : xml_(xml), source_(source), lines_(xml) {}

    AnnotationSet run() {
        pugi::xml_document doc;
        const pugi::xml_parse_result result =
            doc.load_buffer(xml_.data(), xml_.size(), pugi::parse_default, pugi::encoding_auto);
        if (!result)
            throw AnnotationError(prefix(source_, lines_.lineAt(result.offset)) + "malformed XML: " +
                                  result.description());
        const pugi::xml_node root = doc.document_element();
        if (std::strcmp(root.name(), "ASAP_Annotations") != 0)
            throw AnnotationError(at(root) + "not an ASAP annotation file: root element is <" + root.name() +
                                  ">, expected <ASAP_Annotations>");

        for (const pugi::xml_node child : root.children()) {
            const std::string_view name = child.name();
            if (name == "Annotations") {
                for (const pugi::xml_node node : child.children("Annotation"))
                    readAnnotation(node);
            } else if (name == "AnnotationGroups") {
                for (const pugi::xml_node node : child.children()) {
                    const std::string_view element = node.name();
                    if (element == "Group")
                        readGroup(node, GroupElement::Group);
                    else if (element == "AnnotationGroup")
                        readGroup(node, GroupElement::AnnotationGroup);
                }
            } else if (name == "AnnotationGroup") {
                readGroup(child, GroupElement::AnnotationGroup);
            }
        }
        checkGroupReferences(set_, source_, &annotationLines_, &groupLines_);
        return std::move(set_);
    }

private:
    std::string at(const pugi::xml_node& node) const { return prefix(source_, lines_.lineAt(node.offset_debug())); }

    void readAnnotation(const pugi::xml_node& node) {
        Annotation annotation;
        annotation.name = node.attribute("Name").value();
        const std::string typeText = node.attribute("Type").value();
        if (!parseAnnotationType(typeText, annotation.type))
            throw AnnotationError(at(node) + "annotation '" + annotation.name + "' has unknown type '" + typeText + "'");
        annotation.group = groupRef(node.attribute("PartOfGroup"));
        annotation.color = node.attribute("Color").value();
        for (const pugi::xml_attribute attr : node.attributes()) {
            const std::string_view key = attr.name();
            if (key != "Name" && key != "Type" && key != "PartOfGroup" && key != "Color")
                annotation.attributes.emplace(attr.name(), attr.value());
        }

        struct Ordered {
            long long order;
            Point point;
        };
        std::vector<Ordered> vertices;
        for (const pugi::xml_node coordinates : node.children("Coordinates")) {
            for (const pugi::xml_node c : coordinates.children("Coordinate")) {
                Ordered v{};
                const auto invalid = [&](const char* attrName) {
                    return AnnotationError(at(c) + "annotation '" + annotation.name + "': invalid coordinate " +
                                           attrName + "=\"" + c.attribute(attrName).value() + "\"");
                };
                if (!parseOrder(c.attribute("Order").value(), v.order))
                    throw invalid("Order");
                if (!parseCoordinate(c.attribute("X").value(), v.point.x))
                    throw invalid("X");
                if (!parseCoordinate(c.attribute("Y").value(), v.point.y))
                    throw invalid("Y");
                vertices.push_back(v);
            }
        }
        std::stable_sort(vertices.begin(), vertices.end(),
                         [](const Ordered& a, const Ordered& b) { return a.order < b.order; });
        annotation.coordinates.reserve(vertices.size());
        for (const auto& v : vertices)
            annotation.coordinates.push_back(v.point);

        set_.annotations.push_back(std::move(annotation));
        annotationLines_.push_back(lines_.lineAt(node.offset_debug()));
    }

    void readGroup(const pugi::xml_node& node, GroupElement element) {
        AnnotationGroup group;
        group.name = node.attribute("Name").value();
        group.parent = groupRef(node.attribute("PartOfGroup"));
        group.color = node.attribute("Color").value();
        group.element = element;
        for (const pugi::xml_attribute attr : node.attributes()) {
            const std::string_view key = attr.name();
            if (key != "Name" && key != "PartOfGroup" && key != "Color")
                group.attributes.emplace(attr.name(), attr.value());
        }
        for (const pugi::xml_node attributes : node.children("Attributes"))
            for (const pugi::xml_node entry : attributes.children("Attribute"))
                for (const pugi::xml_attribute attr : entry.attributes())
                    group.properties.emplace_back(attr.name(), attr.value());
        set_.groups.push_back(std::move(group));
        groupLines_.push_back(lines_.lineAt(node.offset_debug()));
    }

    std::string_view xml_;
    const std::string& source_;
    LineIndex lines_;
    AnnotationSet set_;
    std::vector<int> annotationLines_;
    std::vector<int> groupLines_;
};

std::string serialise(const AnnotationSet& set, const std::string& source) {
    checkWritable(set, source);

    pugi::xml_document doc;
    pugi::xml_node root = doc.append_child("ASAP_Annotations");
    pugi::xml_node annotations = root.append_child("Annotations");
    for (const auto& annotation : set.annotations) {
        pugi::xml_node node = annotations.append_child("Annotation");
        node.append_attribute("Name").set_value(annotation.name.c_str());
        node.append_attribute("Type").set_value(toString(annotation.type));
        node.append_attribute("PartOfGroup").set_value(annotation.group.empty() ? kNoGroup : annotation.group.c_str());
        node.append_attribute("Color").set_value(annotation.color.c_str());
        for (const auto& [key, value] : annotation.attributes)
            node.append_attribute(key.c_str()).set_value(value.c_str());
        pugi::xml_node coordinates = node.append_child("Coordinates");
        for (std::size_t i = 0; i < annotation.coordinates.size(); ++i) {
            const Point& p = annotation.coordinates[i];
            pugi::xml_node c = coordinates.append_child("Coordinate");
            c.append_attribute("Order").set_value(std::to_string(i).c_str());
            c.append_attribute("X").set_value(formatCoordinate(p.x).c_str());
            c.append_attribute("Y").set_value(formatCoordinate(p.y).c_str());
        }
    }
    pugi::xml_node groups = root.append_child("AnnotationGroups");
    for (const auto& group : set.groups) {
        pugi::xml_node node =
            groups.append_child(group.element == GroupElement::AnnotationGroup ? "AnnotationGroup" : "Group");
        node.append_attribute("Name").set_value(group.name.c_str());
        node.append_attribute("PartOfGroup").set_value(group.parent.empty() ? kNoGroup : group.parent.c_str());
        node.append_attribute("Color").set_value(group.color.c_str());
        for (const auto& [key, value] : group.attributes)
            node.append_attribute(key.c_str()).set_value(value.c_str());
        pugi::xml_node attributes = node.append_child("Attributes");
        for (const auto& [key, value] : group.properties)
            attributes.append_child("Attribute").append_attribute(key.c_str()).set_value(value.c_str());
    }

    std::ostringstream out;
    doc.save(out, "\t", pugi::format_default, pugi::encoding_utf8);
    return out.str();
}

} // namespace

const char* toString(AnnotationType type) {
    for (const auto& [value, name] : kTypeNames)
        if (value == type)
            return name;
    return "None";
}

bool parseAnnotationType(const std::string& text, AnnotationType& type) {
    for (const auto& [value, name] : kTypeNames) {
        if (text == name) {
            type = value;
            return true;
        }
    }
    return false;
}

AnnotationSet AnnotationSet::load(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw IoError(path.string() + ": cannot open: is a directory, not an annotation file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot open: " + std::strerror(errno));
    std::string xml;
    std::array<char, 1 << 16> chunk{};
    while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0)
        xml.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    if (in.bad())
        throw IoError(path.string() + ": cannot read: " + std::strerror(errno));
    return parse(xml, path.string());
}

AnnotationSet AnnotationSet::parse(const std::string& xml, const std::string& sourceName) {
    return Parser(xml, sourceName).run();
}

void AnnotationSet::save(const std::filesystem::path& path) const {
    writeFileAtomically(path, serialise(*this, path.string()));
}

std::string AnnotationSet::toXml() const {
    return serialise(*this, "annotation set");
}

const AnnotationGroup* AnnotationSet::findGroup(const std::string& name) const {
    const auto it = std::find_if(groups.begin(), groups.end(), [&](const AnnotationGroup& g) { return g.name == name; });
    return it == groups.end() ? nullptr : &*it;
}

bool AnnotationSet::isInGroup(const std::string& groupName, const std::string& ancestor) const {
    std::string current = groupName;
    // groups.size() + 1 steps reach every ancestor of an acyclic chain; the bound stops cycles.
    for (std::size_t step = 0; step <= groups.size() && !current.empty(); ++step) {
        if (current == ancestor)
            return true;
        const AnnotationGroup* group = findGroup(current);
        if (group == nullptr)
            return false;
        current = group->parent;
    }
    return false;
}

} // namespace nic

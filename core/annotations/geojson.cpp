#include "core/annotations/geojson.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace nic {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Attribute keys (of ASAP <Annotation>) that carry GeoJSON structure through the ASAP model.
const std::string kFeature = "GeoJsonFeature";
const std::string kPart = "GeoJsonPart";
const std::string kRing = "GeoJsonRing";
const std::string kGeometry = "GeoJsonGeometry";
const std::string kId = "GeoJsonId";
const std::string kObjectType = "GeoJsonObjectType";
const std::string kProperties = "GeoJsonProperties";
const std::string kDefaultColor = "#F4FA58"; // ASAP's annotation yellow

bool isGeoJsonKey(const std::string& key) { return key.rfind("GeoJson", 0) == 0; }

// Whether an annotation of this type and vertex count is written as a LineString without help.
bool exportsAsLineString(AnnotationType type, std::size_t count) {
    if (type == AnnotationType::Dot || type == AnnotationType::PointSet)
        return false;
    return (type == AnnotationType::Measurement && count >= 2) || count == 2;
}

std::string typeName(const json& j) {
    switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "the string " + j.dump();
    case json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "the number " + j.dump();
    default: return "an invalid value";
    }
}

// Reads one GeoJSON document, naming every problem by file and JSON path.
class Reader {
public:
    explicit Reader(std::string source) : src_(std::move(source)) {}

    [[noreturn]] void fail(const std::string& path, const std::string& cause) const {
        throw AnnotationError(src_ + ": " + path + ": " + cause);
    }

    AnnotationImport read(const json& root) {
        const json* features = nullptr;
        json single = json::array();
        std::string base;
        if (root.is_array()) {
            features = &root;
        } else if (root.is_object()) {
            const std::string type = stringMember(root, "type", "type", true);
            if (type == "FeatureCollection") {
                if (!root.contains("features"))
                    fail("top level", "a FeatureCollection needs a \"features\" array");
                features = &root.at("features");
                if (!features->is_array())
                    fail("features", "expected an array, got " + typeName(*features));
                base = "features";
                if (auto it = root.find("asapGroups"); it != root.end())
                    readGroups(*it);
            } else if (type == "Feature") {
                single.push_back(root);
                features = &single;
            } else {
                fail("type", "expected \"FeatureCollection\" or \"Feature\", got \"" + type + "\"");
            }
        } else {
            fail("top level", "expected a FeatureCollection, a Feature or an array of Features, got " + typeName(root));
        }
        for (std::size_t i = 0; i < features->size(); ++i) {
            const std::string path = features == &single ? std::string("$") : base + "[" + std::to_string(i) + "]";
            readFeature((*features)[i], path, i);
        }
        // The group rules of the ASAP model (nesting, unknown groups, reserved names) hold for what was read.
        try {
            (void)out_.set.toXml();
        } catch (const AnnotationError& e) {
            std::string cause = e.what();
            const std::string prefix = "annotation set: ";
            if (cause.rfind(prefix, 0) == 0)
                cause.erase(0, prefix.size());
            throw AnnotationError(src_ + ": " + cause);
        }
        return std::move(out_);
    }

private:
    std::string stringMember(const json& obj, const char* key, const std::string& path, bool required) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) {
            if (required)
                fail(path, "missing");
            return {};
        }
        if (!it->is_string())
            fail(path, "expected a string, got " + typeName(*it));
        return it->get<std::string>();
    }

    static std::string hexColor(int r, int g, int b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r & 0xff, g & 0xff, b & 0xff);
        return buf;
    }

    // [r, g, b] (0–255) or a packed (A)RGB int → "#rrggbb".
    std::string readColor(const json& c, const std::string& path) const {
        if (c.is_number_integer()) {
            const auto v = static_cast<std::uint32_t>(c.get<std::int64_t>());
            return hexColor(static_cast<int>((v >> 16) & 0xffU), static_cast<int>((v >> 8) & 0xffU), static_cast<int>(v & 0xffU));
        }
        if (!c.is_array() || c.size() < 3 || c.size() > 4)
            fail(path, "expected a colour [r, g, b], got " + typeName(c));
        int rgb[3];
        for (std::size_t k = 0; k < 3; ++k) {
            if (!c[k].is_number_integer() || c[k].get<std::int64_t>() < 0 || c[k].get<std::int64_t>() > 255)
                fail(path + "[" + std::to_string(k) + "]", "expected an integer from 0 to 255, got " + typeName(c[k]));
            rgb[k] = static_cast<int>(c[k].get<std::int64_t>());
        }
        return hexColor(rgb[0], rgb[1], rgb[2]);
    }

    void readGroups(const json& groups) {
        if (!groups.is_array())
            fail("asapGroups", "expected an array, got " + typeName(groups));
        for (std::size_t i = 0; i < groups.size(); ++i) {
            const std::string path = "asapGroups[" + std::to_string(i) + "]";
            const json& g = groups[i];
            if (!g.is_object())
                fail(path, "expected an object, got " + typeName(g));
            AnnotationGroup group;
            group.name = stringMember(g, "name", path + ".name", true);
            group.parent = stringMember(g, "parent", path + ".parent", false);
            group.color = stringMember(g, "color", path + ".color", false);
            const std::string element = stringMember(g, "element", path + ".element", false);
            if (element == "AnnotationGroup")
                group.element = GroupElement::AnnotationGroup;
            else if (!element.empty() && element != "Group")
                fail(path + ".element", "expected \"Group\" or \"AnnotationGroup\", got \"" + element + "\"");
            if (auto it = g.find("attributes"); it != g.end()) {
                if (!it->is_object())
                    fail(path + ".attributes", "expected an object, got " + typeName(*it));
                for (const auto& [k, v] : it->items()) {
                    if (!v.is_string())
                        fail(path + ".attributes." + k, "expected a string, got " + typeName(v));
                    group.attributes[k] = v.get<std::string>();
                }
            }
            if (auto it = g.find("properties"); it != g.end()) {
                if (!it->is_array())
                    fail(path + ".properties", "expected an array of [key, value] pairs, got " + typeName(*it));
                for (std::size_t k = 0; k < it->size(); ++k) {
                    const json& pair = (*it)[k];
                    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
                        fail(path + ".properties[" + std::to_string(k) + "]", "expected a [key, value] pair of strings, got " +
                                                                                typeName(pair));
                    group.properties.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
                }
            }
            out_.set.groups.push_back(std::move(group));
        }
    }

    Point readPosition(const json& p, const std::string& path, bool& droppedZ) const {
        if (!p.is_array() || p.size() < 2)
            fail(path, "expected a position [x, y], got " + typeName(p));
        for (std::size_t k = 0; k < p.size(); ++k)
            if (!p[k].is_number())
                fail(path + "[" + std::to_string(k) + "]", "expected a number, got " + typeName(p[k]));
        if (p.size() > 2)
            droppedZ = true;
        return {p[0].get<double>(), p[1].get<double>()};
    }

    std::vector<Point> readPositions(const json& a, const std::string& path, bool& droppedZ) const {
        if (!a.is_array())
            fail(path, "expected an array of positions, got " + typeName(a));
        std::vector<Point> pts;
        pts.reserve(a.size());
        for (std::size_t k = 0; k < a.size(); ++k)
            pts.push_back(readPosition(a[k], path + "[" + std::to_string(k) + "]", droppedZ));
        return pts;
    }

    // A linear ring: at least 3 positions; the closing position (equal to the first) is dropped.
    std::vector<Point> readRing(const json& a, const std::string& path, bool& droppedZ) const {
        auto pts = readPositions(a, path, droppedZ);
        if (pts.size() >= 2 && pts.front() == pts.back())
            pts.pop_back();
        if (pts.size() < 3)
            fail(path, "a polygon ring needs at least 3 distinct positions, got " + std::to_string(pts.size()));
        return pts;
    }

    const json& member(const json& obj, const char* key, const std::string& path) const {
        auto it = obj.find(key);
        if (it == obj.end())
            fail(path, std::string("missing \"") + key + "\"");
        return *it;
    }

    void readFeature(const json& f, const std::string& path, std::size_t index) {
        if (!f.is_object())
            fail(path, "expected a Feature object, got " + typeName(f));
        const std::string type = stringMember(f, "type", path + ".type", true);
        if (type != "Feature")
            fail(path + ".type", "expected \"Feature\", got \"" + type + "\"");
        std::optional<AnnotationType> asapType;
        const Annotation proto = readFeatureProperties(f, path, asapType);
        readFeatureGeometry(f, path, index, proto, asapType);
    }

    /// A Feature's properties (name, classification, colours, ASAP details, the rest kept as attributes) as the
    /// annotation every part of its geometry starts from; the classification's group is added when new.
    Annotation readFeatureProperties(const json& f, const std::string& path, std::optional<AnnotationType>& asapType) {
        Annotation proto;
        json props = json::object();
        if (auto it = f.find("properties"); it != f.end() && !it->is_null()) {
            if (!it->is_object())
                fail(path + ".properties", "expected an object, got " + typeName(*it));
            props = *it;
        }
        const std::string pp = path + ".properties";
        proto.name = stringMember(props, "name", pp + ".name", false);
        std::string classColor;
        if (auto it = props.find("classification"); it != props.end() && !it->is_null()) {
            if (!it->is_object())
                fail(pp + ".classification", "expected an object, got " + typeName(*it));
            proto.group = stringMember(*it, "name", pp + ".classification.name", true);
            if (auto c = it->find("color"); c != it->end())
                classColor = readColor(*c, pp + ".classification.color");
            else if (auto c2 = it->find("colorRGB"); c2 != it->end())
                classColor = readColor(*c2, pp + ".classification.colorRGB");
        }
        std::string ownColor;
        if (auto c = props.find("color"); c != props.end() && !c->is_null())
            ownColor = readColor(*c, pp + ".color");
        std::optional<std::string> asapColor;
        if (auto a = props.find("asap"); a != props.end()) {
            if (!a->is_object())
                fail(pp + ".asap", "expected an object, got " + typeName(*a));
            if (const std::string t = stringMember(*a, "type", pp + ".asap.type", false); !t.empty()) {
                AnnotationType parsed{};
                if (!parseAnnotationType(t, parsed))
                    fail(pp + ".asap.type", "unknown ASAP annotation type \"" + t + "\"");
                asapType = parsed;
            }
            if (a->contains("color"))
                asapColor = stringMember(*a, "color", pp + ".asap.color", false);
            if (auto at = a->find("attributes"); at != a->end()) {
                if (!at->is_object())
                    fail(pp + ".asap.attributes", "expected an object, got " + typeName(*at));
                for (const auto& [k, v] : at->items()) {
                    if (!v.is_string())
                        fail(pp + ".asap.attributes." + k, "expected a string, got " + typeName(v));
                    proto.attributes[k] = v.get<std::string>();
                }
            }
        }
        proto.color = asapColor ? *asapColor : !ownColor.empty() ? ownColor : !classColor.empty() ? classColor : kDefaultColor;
        if (const std::string ot = stringMember(props, "objectType", pp + ".objectType", false); !ot.empty() && ot != "annotation")
            proto.attributes[kObjectType] = ot;
        if (auto it = f.find("id"); it != f.end() && !it->is_null())
            proto.attributes[kId] = it->dump();
        json rest = json::object();
        for (const auto& [k, v] : props.items())
            if (k != "name" && k != "classification" && k != "color" && k != "objectType" && k != "asap")
                rest[k] = v;
        if (!rest.empty())
            proto.attributes[kProperties] = rest.dump();

        if (!proto.group.empty() && !out_.set.findGroup(proto.group)) {
            AnnotationGroup g;
            g.name = proto.group;
            g.color = classColor.empty() ? std::string("#ff0000") : classColor;
            out_.set.groups.push_back(std::move(g));
        }
        return proto;
    }

    /// A Feature's geometry as one annotation per ring / part (copies of `proto`), with the warnings for what
    /// ASAP cannot show.
    void readFeatureGeometry(const json& f, const std::string& path, std::size_t index, const Annotation& proto,
                             const std::optional<AnnotationType>& asapType) {
        const json& geom = member(f, "geometry", path);
        const std::string gp = path + ".geometry";
        bool droppedZ = false;
        auto add = [&](AnnotationType t, std::vector<Point> pts, int part, int ring, const std::string& geometry, bool multi) {
            Annotation a = proto;
            a.type = asapType ? *asapType : t;
            a.coordinates = std::move(pts);
            if (multi) {
                a.attributes[kFeature] = std::to_string(index);
                a.attributes[kPart] = std::to_string(part);
                a.attributes[kRing] = std::to_string(ring);
            }
            if (!geometry.empty())
                a.attributes[kGeometry] = geometry;
            out_.set.annotations.push_back(std::move(a));
        };
        // An open line: 2 points are an ASAP Measurement; longer lines have no ASAP type.
        auto lineType = [&](const std::vector<Point>& pts, const std::string& where) {
            if (pts.size() == 2 || asapType)
                return AnnotationType::Measurement;
            out_.warnings.push_back(where + ": a LineString of " + std::to_string(pts.size()) +
                                    " points: ASAP has no open lines and shows it as a closed Polygon "
                                    "(it is written back to GeoJSON as a LineString)");
            return AnnotationType::Polygon;
        };
        if (geom.is_null()) {
            add(AnnotationType::None, {}, 0, 0, "", false);
            return;
        }
        if (!geom.is_object())
            fail(gp, "expected a geometry object or null, got " + typeName(geom));
        const std::string gt = stringMember(geom, "type", gp + ".type", true);
        const json& coords = gt == "GeometryCollection" ? geom : member(geom, "coordinates", gp);
        const std::string cp = gp + ".coordinates";
        if (gt == "Point") {
            add(AnnotationType::Dot, {readPosition(coords, cp, droppedZ)}, 0, 0, "", false);
        } else if (gt == "MultiPoint") {
            add(AnnotationType::PointSet, readPositions(coords, cp, droppedZ), 0, 0, "", false);
        } else if (gt == "LineString") {
            auto pts = readPositions(coords, cp, droppedZ);
            if (pts.size() < 2)
                fail(cp, "a LineString needs at least 2 positions, got " + std::to_string(pts.size()));
            const auto t = asapType ? *asapType : lineType(pts, path);
            const bool implied = exportsAsLineString(t, pts.size());
            add(t, std::move(pts), 0, 0, implied ? "" : "LineString", false);
        } else if (gt == "MultiLineString") {
            if (!coords.is_array())
                fail(cp, "expected an array of lines, got " + typeName(coords));
            for (std::size_t k = 0; k < coords.size(); ++k) {
                const std::string lp = cp + "[" + std::to_string(k) + "]";
                auto pts = readPositions(coords[k], lp, droppedZ);
                if (pts.size() < 2)
                    fail(lp, "a line needs at least 2 positions, got " + std::to_string(pts.size()));
                const auto t = lineType(pts, path + " line " + std::to_string(k));
                add(t, std::move(pts), static_cast<int>(k), 0, "MultiLineString", true);
            }
        } else if (gt == "Polygon" || gt == "MultiPolygon") {
            const bool multiPolygon = gt == "MultiPolygon";
            if (!coords.is_array())
                fail(cp, std::string("expected an array of ") + (multiPolygon ? "polygons" : "rings") + ", got " + typeName(coords));
            const std::size_t parts = multiPolygon ? coords.size() : 1;
            std::size_t holes = 0;
            std::size_t rings = 0;
            for (std::size_t p = 0; p < parts; ++p) {
                const json& poly = multiPolygon ? coords[p] : coords;
                const std::string pp2 = multiPolygon ? cp + "[" + std::to_string(p) + "]" : cp;
                if (!poly.is_array() || poly.empty())
                    fail(pp2, "expected a non-empty array of rings, got " + typeName(poly));
                rings += poly.size();
                holes += poly.size() - 1;
            }
            const bool multi = rings > 1;
            for (std::size_t p = 0; p < parts; ++p) {
                const json& poly = multiPolygon ? coords[p] : coords;
                const std::string pp2 = multiPolygon ? cp + "[" + std::to_string(p) + "]" : cp;
                for (std::size_t r = 0; r < poly.size(); ++r)
                    add(AnnotationType::Polygon, readRing(poly[r], pp2 + "[" + std::to_string(r) + "]", droppedZ),
                        static_cast<int>(p), static_cast<int>(r), multiPolygon ? "MultiPolygon" : "", multi);
            }
            if (holes > 0)
                out_.warnings.push_back(path + ": " + std::to_string(holes) +
                                        " hole(s): ASAP has no holes; each is kept as a separate Polygon "
                                        "(attribute GeoJsonRing > 0) that ASAP draws filled");
        } else {
            fail(gp + ".type", "unsupported geometry type \"" + gt + "\"");
        }
        if (droppedZ)
            out_.warnings.push_back(path + ": z coordinates dropped (ASAP and the viewer are 2-D)");
    }

    std::string src_;
    AnnotationImport out_;
};

bool parseHex(const std::string& c, int rgb[3]) {
    if (c.size() != 7 || c[0] != '#')
        return false;
    for (std::size_t k = 1; k < 7; ++k)
        if (std::isxdigit(static_cast<unsigned char>(c[k])) == 0)
            return false;
    for (int k = 0; k < 3; ++k)
        rgb[k] = std::stoi(c.substr(static_cast<std::size_t>(1 + 2 * k), 2), nullptr, 16);
    return true;
}

ojson colorArray(const std::string& c) {
    int rgb[3];
    if (!parseHex(c, rgb))
        return nullptr;
    return ojson::array({rgb[0], rgb[1], rgb[2]});
}

ojson position(const Point& p) { return ojson::array({p.x, p.y}); }

ojson positions(const std::vector<Point>& pts) {
    ojson a = ojson::array();
    for (const auto& p : pts)
        a.push_back(position(p));
    return a;
}

ojson ring(const std::vector<Point>& pts) {
    ojson a = positions(pts);
    if (!pts.empty())
        a.push_back(position(pts.front()));
    return a;
}

int intAttribute(const Annotation& a, const std::string& key) {
    auto it = a.attributes.find(key);
    if (it == a.attributes.end())
        return 0;
    try {
        return std::stoi(it->second);
    } catch (const std::exception&) {
        return 0;
    }
}

std::string attribute(const Annotation& a, const std::string& key) {
    auto it = a.attributes.find(key);
    return it == a.attributes.end() ? std::string() : it->second;
}

// The geometry of a single-annotation feature.
ojson singleGeometry(const Annotation& a, std::vector<std::string>* warnings) {
    const auto& c = a.coordinates;
    const std::string forced = attribute(a, kGeometry);
    auto warn = [&](const std::string& w) {
        if (warnings)
            warnings->push_back(w);
    };
    if (c.empty()) {
        warn("annotation '" + a.name + "' has no coordinates: written with a null geometry, which QuPath skips");
        return nullptr;
    }
    if (forced == "LineString" && c.size() >= 2)
        return {{"type", "LineString"}, {"coordinates", positions(c)}};
    switch (a.type) {
    case AnnotationType::Dot:
        if (c.size() == 1)
            return {{"type", "Point"}, {"coordinates", position(c[0])}};
        return {{"type", "MultiPoint"}, {"coordinates", positions(c)}};
    case AnnotationType::PointSet: return {{"type", "MultiPoint"}, {"coordinates", positions(c)}};
    case AnnotationType::Measurement:
        if (c.size() >= 2)
            return {{"type", "LineString"}, {"coordinates", positions(c)}};
        break;
    default: break;
    }
    if (c.size() >= 3) {
        if (a.type == AnnotationType::Spline)
            warn("annotation '" + a.name + "': Spline written as a Polygon through its control points (QuPath has no splines)");
        return {{"type", "Polygon"}, {"coordinates", ojson::array({ring(c)})}};
    }
    if (c.size() == 2)
        return {{"type", "LineString"}, {"coordinates", positions(c)}};
    return {{"type", "Point"}, {"coordinates", position(c[0])}};
}

ojson featureProperties(const Annotation& a, const AnnotationSet& set) {
    ojson props = ojson::object();
    const std::string objectType = attribute(a, kObjectType);
    props["objectType"] = objectType.empty() ? std::string("annotation") : objectType;
    if (!a.name.empty())
        props["name"] = a.name;
    if (!a.group.empty()) {
        ojson cls = {{"name", a.group}};
        if (const auto* g = set.findGroup(a.group))
            if (auto col = colorArray(g->color); !col.is_null())
                cls["color"] = col;
        props["classification"] = cls;
    }
    if (auto col = colorArray(a.color); !col.is_null())
        props["color"] = col;
    if (const std::string rest = attribute(a, kProperties); !rest.empty()) {
        try {
            const auto extra = ojson::parse(rest);
            if (extra.is_object())
                for (const auto& [k, v] : extra.items())
                    if (!props.contains(k))
                        props[k] = v;
        } catch (const ojson::exception&) {
            props["GeoJsonProperties"] = rest; // not JSON (edited by hand): kept verbatim
        }
    }
    ojson asap = {{"type", toString(a.type)}, {"color", a.color}};
    ojson attrs = ojson::object();
    for (const auto& [k, v] : a.attributes)
        if (!isGeoJsonKey(k))
            attrs[k] = v;
    if (!attrs.empty())
        asap["attributes"] = attrs;
    props["asap"] = asap;
    return props;
}

ojson featureOf(const std::vector<const Annotation*>& parts, const AnnotationSet& set, std::vector<std::string>* warnings) {
    const Annotation& first = *parts.front();
    ojson f = {{"type", "Feature"}};
    if (const std::string id = attribute(first, kId); !id.empty()) {
        try {
            f["id"] = ojson::parse(id);
        } catch (const ojson::exception&) {
            f["id"] = id;
        }
    }
    if (parts.size() == 1 && attribute(first, kFeature).empty()) {
        f["geometry"] = singleGeometry(first, warnings);
    } else {
        const std::string geometry = attribute(first, kGeometry);
        if (geometry == "MultiLineString") {
            ojson lines = ojson::array();
            for (const auto* a : parts)
                lines.push_back(positions(a->coordinates));
            f["geometry"] = {{"type", "MultiLineString"}, {"coordinates", lines}};
        } else {
            // Polygon rings / MultiPolygon parts, in (part, ring) order.
            std::map<int, std::map<int, const Annotation*>> byPart;
            for (const auto* a : parts)
                byPart[intAttribute(*a, kPart)][intAttribute(*a, kRing)] = a;
            ojson polys = ojson::array();
            for (const auto& [p, rings] : byPart) {
                ojson poly = ojson::array();
                for (const auto& [r, a] : rings)
                    poly.push_back(ring(a->coordinates));
                polys.push_back(poly);
            }
            if (geometry == "MultiPolygon" || polys.size() > 1)
                f["geometry"] = {{"type", "MultiPolygon"}, {"coordinates", polys}};
            else
                f["geometry"] = {{"type", "Polygon"}, {"coordinates", polys[0]}};
        }
    }
    f["properties"] = featureProperties(first, set);
    return f;
}

} // namespace

AnnotationImport parseGeoJson(const std::string& text, const std::string& sourceName) {
    json root;
    try {
        root = json::parse(text);
    } catch (const json::parse_error& e) {
        std::string what = e.what();
        if (auto pos = what.find("] "); pos != std::string::npos)
            what.erase(0, pos + 2);
        throw AnnotationError(sourceName + ": malformed JSON: " + what);
    }
    return Reader(sourceName).read(root);
}

AnnotationImport loadGeoJson(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot open: " + (std::filesystem::exists(path) ? "permission denied or not a file"
                                                                                       : "no such file"));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        throw IoError(path.string() + ": cannot read");
    return parseGeoJson(ss.str(), path.string());
}

std::string toGeoJson(const AnnotationSet& set, std::vector<std::string>* warnings) {
    (void)set.toXml(); // the same consistency rules as ASAP XML (throws "annotation set: <cause>")
    std::string out = "{\"type\":\"FeatureCollection\",";
    if (!set.groups.empty()) {
        ojson groups = ojson::array();
        for (const auto& g : set.groups) {
            ojson j = {{"name", g.name}};
            if (!g.parent.empty()) {
                j["parent"] = g.parent;
                if (warnings)
                    warnings->push_back("group '" + g.name + "' is nested in '" + g.parent +
                                        "': QuPath classifications are flat (the nesting is kept in asapGroups, "
                                        "which QuPath ignores)");
            }
            j["color"] = g.color;
            if (g.element == GroupElement::AnnotationGroup)
                j["element"] = "AnnotationGroup";
            if (!g.attributes.empty())
                j["attributes"] = g.attributes;
            if (!g.properties.empty()) {
                ojson props = ojson::array();
                for (const auto& [k, v] : g.properties)
                    props.push_back(ojson::array({k, v}));
                j["properties"] = props;
            }
            groups.push_back(j);
        }
        out += "\"asapGroups\":" + groups.dump() + ",";
    }
    out += "\"features\":[";
    // Annotations of one GeoJSON feature (same GeoJsonFeature value) are written together, at the place
    // of the first one.
    std::map<std::string, std::vector<const Annotation*>> multi;
    for (const auto& a : set.annotations)
        if (const std::string f = attribute(a, kFeature); !f.empty())
            multi[f].push_back(&a);
    std::set<std::string> written;
    bool firstFeature = true;
    for (const auto& a : set.annotations) {
        std::vector<const Annotation*> parts{&a};
        if (const std::string f = attribute(a, kFeature); !f.empty()) {
            if (!written.insert(f).second)
                continue;
            parts = multi[f];
        }
        out += firstFeature ? "\n" : ",\n";
        firstFeature = false;
        out += featureOf(parts, set, warnings).dump();
    }
    out += "\n]}\n";
    return out;
}

std::vector<std::string> saveGeoJson(const AnnotationSet& set, const std::filesystem::path& path) {
    std::vector<std::string> warnings;
    std::string text;
    try {
        text = toGeoJson(set, &warnings);
    } catch (const AnnotationError& e) {
        std::string cause = e.what();
        const std::string prefix = "annotation set: ";
        if (cause.rfind(prefix, 0) == 0)
            cause.erase(0, prefix.size());
        throw AnnotationError(path.string() + ": " + cause);
    }
    writeFileAtomically(path, text);
    return warnings;
}

std::optional<AnnotationFormat> annotationFormatForPath(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".xml")
        return AnnotationFormat::AsapXml;
    if (ext == ".geojson" || ext == ".json")
        return AnnotationFormat::GeoJson;
    return std::nullopt;
}

namespace {
AnnotationFormat formatOrThrow(const std::filesystem::path& path) {
    const auto f = annotationFormatForPath(path);
    if (!f)
        throw InvalidArgument(path.string() + ": unknown annotation format '" + path.extension().string() +
                              "' (use .xml for ASAP or .geojson/.json for GeoJSON)");
    return *f;
}
} // namespace

AnnotationImport loadAnnotationFile(const std::filesystem::path& path) {
    if (formatOrThrow(path) == AnnotationFormat::GeoJson)
        return loadGeoJson(path);
    return {AnnotationSet::load(path), {}};
}

std::vector<std::string> saveAnnotationFile(const AnnotationSet& set, const std::filesystem::path& path) {
    if (formatOrThrow(path) == AnnotationFormat::GeoJson)
        return saveGeoJson(set, path);
    std::vector<std::string> warnings;
    std::set<std::string> reported;
    for (const auto& a : set.annotations) {
        const std::string f = attribute(a, kFeature);
        if (f.empty() || !reported.insert(f).second)
            continue;
        warnings.push_back("annotation '" + a.name + "' (GeoJSON feature " + f +
                           ") has several parts or holes: ASAP shows each as a separate filled polygon "
                           "(the GeoJson* attributes rebuild it when converted back to GeoJSON)");
    }
    set.save(path);
    return warnings;
}

std::string heatmapTilesToGeoJson(const HeatmapData& h, const HeatmapTileOptions& options, std::size_t* tiles) {
    const std::size_t n = static_cast<std::size_t>(h.rows) * static_cast<std::size_t>(h.cols);
    if (h.rows < 0 || h.cols < 0 || h.heat.size() != n || (!h.tissue.empty() && h.tissue.size() != n) || !(h.cellSize > 0))
        throw InvalidArgument("heatmap tiles: inconsistent heatmap (" + std::to_string(h.cols) + " x " +
                              std::to_string(h.rows) + " cells, " + std::to_string(h.heat.size()) + " values)");
    ojson meta = {{"source", "nic heatmap"},
                  {"slide_file", h.slideFile},
                  {"model", h.model},
                  {"task", h.task},
                  {"layer", h.layer},
                  {"prediction", std::isfinite(h.prediction) ? ojson(h.prediction) : ojson(nullptr)},
                  {"output", std::isfinite(h.output) ? ojson(h.output) : ojson(nullptr)},
                  {"cell_size", h.cellSize},
                  {"grid", {h.cols, h.rows}},
                  {"measurement", options.measurement},
                  {"threshold", std::isfinite(options.threshold) ? ojson(options.threshold) : ojson(nullptr)}};
    std::string out = "{\"type\":\"FeatureCollection\",\"properties\":" + meta.dump() + ",\"features\":[";
    std::size_t count = 0;
    const double s = h.cellSize;
    for (int r = 0; r < h.rows; ++r)
        for (int c = 0; c < h.cols; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * static_cast<std::size_t>(h.cols) + static_cast<std::size_t>(c);
            const float v = h.heat[i];
            if (!std::isfinite(v) || (!h.tissue.empty() && !(h.tissue[i] > 0.0f)) || static_cast<double>(v) < options.threshold)
                continue;
            const double x0 = c * s, y0 = r * s, x1 = (c + 1) * s, y1 = (r + 1) * s;
            ojson f = {{"type", "Feature"},
                       {"geometry",
                        {{"type", "Polygon"},
                         {"coordinates", ojson::array({ojson::array({ojson::array({x0, y0}), ojson::array({x1, y0}),
                                                                     ojson::array({x1, y1}), ojson::array({x0, y1}),
                                                                     ojson::array({x0, y0})})})}}},
                       {"properties",
                        {{"objectType", "tile"},
                         {"name", "cell " + std::to_string(c) + "," + std::to_string(r)},
                         {"measurements", {{options.measurement, static_cast<double>(v)}}}}}};
            out += count == 0 ? "\n" : ",\n";
            out += f.dump();
            ++count;
        }
    out += "\n]}\n";
    if (tiles)
        *tiles = count;
    return out;
}

std::size_t saveHeatmapTiles(const HeatmapData& heatmap, const std::filesystem::path& path, const HeatmapTileOptions& options) {
    std::size_t count = 0;
    std::string text;
    try {
        text = heatmapTilesToGeoJson(heatmap, options, &count);
    } catch (const InvalidArgument& e) {
        throw InvalidArgument(path.string() + ": " + e.what());
    }
    writeFileAtomically(path, text);
    return count;
}

} // namespace nic

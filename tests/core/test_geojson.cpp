// GeoJSON (QuPath) annotations: ASAP XML → GeoJSON → ASAP XML on every real Camelyon17 file, QuPath-shaped
// input (holes, MultiPolygons, classifications) imported with the geometry intact, broken input with exact
// messages naming file and JSON path, heatmap tiles, and the `nic convert-annotations`/`export-heatmap` CLI.
#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/annotations/geojson.h"
#include "core/heatmaps/heatmapeval.h"
#include "testsupport.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

using nic::AnnotationError;
using nic::AnnotationSet;
using nic::AnnotationType;
using nic::Point;
using nic::test::runCommand;
using nic::test::sharedDataDir;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<std::string> camelyonFiles() {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(sharedDataDir() / "annotations/camelyon17", ec))
        if (e.path().extension() == ".xml")
            files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    if (files.empty())
        files.emplace_back(); // one case that skips
    return files;
}

std::string caseName(const testing::TestParamInfo<std::string>& info) {
    std::string n = info.param.empty() ? "shared_data_absent" : info.param.substr(0, info.param.size() - 4);
    for (char& c : n)
        if (std::isalnum(static_cast<unsigned char>(c)) == 0)
            c = '_';
    return n;
}

class CamelyonGeoJson : public testing::TestWithParam<std::string> {};

std::string importError(const std::string& text) {
    return nic::test::errorOf<AnnotationError>([&] { nic::parseGeoJson(text, "in.geojson"); });
}

// A FeatureCollection as QuPath 0.4 exports it: ids, objectType, classification with colour (and the
// older colorRGB), isLocked, measurements; a polygon with two holes, a MultiPolygon (one part with a
// hole), a line, a point, points, a detection.
const char* kQuPath = R"({
  "type": "FeatureCollection",
  "features": [
    {"type": "Feature", "id": "6f1c2d9e-0000-4000-8000-000000000001",
     "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [1000.5, 0], [1000.5, 800.25], [0, 800.25], [0, 0]],
        [[100, 100], [200, 100], [200, 200], [100, 100]],
        [[500, 500], [600, 500], [600, 650.125], [500, 500]]]},
     "properties": {"objectType": "annotation", "name": "Tumour region", "isLocked": true,
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                    "measurements": {"Area µm^2": 1234.5}}},
    {"type": "Feature", "id": "6f1c2d9e-0000-4000-8000-000000000002",
     "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[2000, 2000], [2100, 2000], [2100, 2100], [2000, 2100], [2000, 2000]]],
        [[[3000, 3000], [3400, 3000], [3400, 3400], [3000, 3000]],
         [[3100, 3050], [3200, 3050], [3200, 3150], [3100, 3050]]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "colorRGB": -16744448}}},
    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[10, 20], [30.75, 40]]},
     "properties": {"objectType": "annotation", "name": "ruler"}},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [55.5, 66.5]},
     "properties": {"objectType": "annotation", "name": "mitosis", "color": [0, 255, 0],
                    "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
    {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4], [5, 6]]},
     "properties": {"objectType": "annotation", "name": "points"}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[7, 7], [9, 7], [9, 9], [7, 7]]]},
     "properties": {"objectType": "detection"}}
  ]
})";

} // namespace

TEST_P(CamelyonGeoJson, AsapToGeoJsonToAsapIsIdentical) {
    NIC_REQUIRE_SHARED("annotations/camelyon17");
    ASSERT_FALSE(GetParam().empty());
    const fs::path xml = sharedDataDir() / "annotations/camelyon17" / GetParam();
    const AnnotationSet set = AnnotationSet::load(xml);
    ASSERT_FALSE(set.annotations.empty());

    nic::test::TempDir dir;
    const auto warnings = nic::saveAnnotationFile(set, dir / "a.geojson");
    // Camelyon17 has no splines, nested groups or empty annotations: nothing to report.
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    const auto back = nic::loadAnnotationFile(dir / "a.geojson");
    EXPECT_TRUE(back.warnings.empty());
    // Coordinates (exact doubles), groups, names, types, colours and attributes all equal.
    EXPECT_EQ(back.set, set);
    EXPECT_TRUE(nic::saveAnnotationFile(back.set, dir / "b.xml").empty());
    EXPECT_EQ(nic::test::readFile(dir / "b.xml"), nic::test::readFile(xml)); // ASAP's own bytes

    // QuPath's view of it: one Polygon feature per annotation, closed rings, classification = group.
    const json j = json::parse(nic::test::readFile(dir / "a.geojson"));
    ASSERT_EQ(j["features"].size(), set.annotations.size());
    for (std::size_t i = 0; i < set.annotations.size(); ++i) {
        const auto& a = set.annotations[i];
        const json& f = j["features"][i];
        if (a.coordinates.size() < 3)
            continue;
        EXPECT_EQ(f["geometry"]["type"], "Polygon");
        const json& ring = f["geometry"]["coordinates"][0];
        ASSERT_EQ(ring.size(), a.coordinates.size() + 1);
        EXPECT_EQ(ring.front(), ring.back());
        EXPECT_EQ(ring[0][0].get<double>(), a.coordinates[0].x);
        EXPECT_EQ(f["properties"]["name"], a.name);
        EXPECT_EQ(f["properties"]["objectType"], "annotation");
        if (!a.group.empty()) {
            EXPECT_EQ(f["properties"]["classification"]["name"], a.group);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Camelyon17, CamelyonGeoJson, testing::ValuesIn(camelyonFiles()), caseName);

TEST(GeoJson, AllFiftyCamelyonFilesArePresent) {
    NIC_REQUIRE_SHARED("annotations/camelyon17");
    EXPECT_EQ(camelyonFiles().size(), 50U);
}

TEST(GeoJson, QuPathShapeImportsWithGeometryIntact) {
    const auto imp = nic::parseGeoJson(kQuPath, "qupath.geojson");
    const auto& s = imp.set;
    // 3 rings + 3 rings + line + point + points + detection.
    ASSERT_EQ(s.annotations.size(), 10U);
    const auto& outer = s.annotations[0];
    EXPECT_EQ(outer.name, "Tumour region");
    EXPECT_EQ(outer.group, "Tumor");
    EXPECT_EQ(outer.type, AnnotationType::Polygon);
    EXPECT_EQ(outer.coordinates, (std::vector<Point>{{0, 0}, {1000.5, 0}, {1000.5, 800.25}, {0, 800.25}}));
    EXPECT_EQ(outer.attributes.at("GeoJsonRing"), "0");
    EXPECT_EQ(s.annotations[1].attributes.at("GeoJsonRing"), "1");
    EXPECT_EQ(s.annotations[2].coordinates, (std::vector<Point>{{500, 500}, {600, 500}, {600, 650.125}}));
    EXPECT_EQ(outer.attributes.at("GeoJsonId"), "\"6f1c2d9e-0000-4000-8000-000000000001\"");
    const json props = json::parse(outer.attributes.at("GeoJsonProperties"));
    EXPECT_EQ(props["isLocked"], true);
    EXPECT_EQ(props["measurements"]["Area µm^2"], 1234.5);
    // Classifications become groups with their colours (colorRGB -16744448 = 0xFF008000).
    ASSERT_EQ(s.groups.size(), 2U);
    EXPECT_EQ(s.groups[0].name, "Tumor");
    EXPECT_EQ(s.groups[0].color, "#c80000");
    EXPECT_EQ(s.groups[1].name, "Stroma");
    EXPECT_EQ(s.groups[1].color, "#008000");
    EXPECT_EQ(s.annotations[3].attributes.at("GeoJsonGeometry"), "MultiPolygon");
    EXPECT_EQ(s.annotations[5].attributes.at("GeoJsonPart"), "1");
    EXPECT_EQ(s.annotations[5].attributes.at("GeoJsonRing"), "1");
    EXPECT_EQ(s.annotations[6].type, AnnotationType::Measurement);
    EXPECT_EQ(s.annotations[6].coordinates, (std::vector<Point>{{10, 20}, {30.75, 40}}));
    EXPECT_EQ(s.annotations[7].type, AnnotationType::Dot);
    EXPECT_EQ(s.annotations[7].color, "#00ff00");
    EXPECT_EQ(s.annotations[8].type, AnnotationType::PointSet);
    EXPECT_EQ(s.annotations[9].attributes.at("GeoJsonObjectType"), "detection");
    // The holes are reported (ASAP draws them filled), nothing else.
    ASSERT_EQ(imp.warnings.size(), 2U);
    EXPECT_EQ(imp.warnings[0], "features[0]: 2 hole(s): ASAP has no holes; each is kept as a separate Polygon "
                               "(attribute GeoJsonRing > 0) that ASAP draws filled");
    EXPECT_EQ(imp.warnings[1].rfind("features[1]: 1 hole(s)", 0), 0U) << imp.warnings[1];

    // Written again (also through ASAP XML), every geometry, id, classification and property is back.
    nic::test::TempDir dir;
    const auto xmlWarnings = nic::saveAnnotationFile(s, dir / "q.xml");
    EXPECT_EQ(xmlWarnings.size(), 2U); // the two holed/multi-part features
    const auto viaXml = nic::loadAnnotationFile(dir / "q.xml").set;
    EXPECT_EQ(viaXml, s);
    const json in = json::parse(kQuPath);
    const json out = json::parse(nic::toGeoJson(viaXml));
    ASSERT_EQ(out["features"].size(), in["features"].size());
    for (std::size_t i = 0; i < in["features"].size(); ++i) {
        const json& a = in["features"][i];
        const json& b = out["features"][i];
        EXPECT_EQ(b["geometry"], a["geometry"]) << "feature " << i;
        EXPECT_EQ(b.value("id", json()), a.value("id", json())) << "feature " << i;
        for (const auto& [k, v] : a["properties"].items()) {
            if (k != "classification") {
                EXPECT_EQ(b["properties"][k], v) << "feature " << i << " property " << k;
            }
        }
        if (a["properties"].contains("classification")) {
            EXPECT_EQ(b["properties"]["classification"]["name"], a["properties"]["classification"]["name"]);
        }
    }
    EXPECT_EQ(out["features"][1]["properties"]["classification"]["color"], json::array({0, 128, 0}));
}

TEST(GeoJson, BareFeatureAndArrayOfFeatures) {
    const auto one = nic::parseGeoJson(R"({"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":null})", "f");
    ASSERT_EQ(one.set.annotations.size(), 1U);
    EXPECT_EQ(one.set.annotations[0].coordinates, (std::vector<Point>{{1, 2}}));
    const auto arr = nic::parseGeoJson(R"([{"type":"Feature","geometry":{"type":"Point","coordinates":[3,4,5]}}])", "a");
    ASSERT_EQ(arr.set.annotations.size(), 1U);
    ASSERT_EQ(arr.warnings.size(), 1U);
    EXPECT_EQ(arr.warnings[0], "[0]: z coordinates dropped (ASAP and the viewer are 2-D)");
}

TEST(GeoJson, WhatQuPathCannotShowIsReported) {
    AnnotationSet s;
    nic::AnnotationGroup parent{"lesion", "", "#ff0000", {}, {}, nic::GroupElement::Group};
    nic::AnnotationGroup child{"itc", "lesion", "#00ff00", {}, {}, nic::GroupElement::AnnotationGroup};
    s.groups = {parent, child};
    nic::Annotation spline{"s1", AnnotationType::Spline, "itc", "#F4FA58", {{0, 0}, {5, 0}, {5, 5}}, {{"Extra", "1"}}};
    nic::Annotation empty{"e", AnnotationType::Polygon, "", "#F4FA58", {}, {}};
    s.annotations = {spline, empty};
    std::vector<std::string> w;
    const std::string text = nic::toGeoJson(s, &w);
    ASSERT_EQ(w.size(), 3U);
    EXPECT_EQ(w[0], "group 'itc' is nested in 'lesion': QuPath classifications are flat (the nesting is kept in "
                    "asapGroups, which QuPath ignores)");
    EXPECT_EQ(w[1], "annotation 's1': Spline written as a Polygon through its control points (QuPath has no splines)");
    EXPECT_EQ(w[2], "annotation 'e' has no coordinates: written with a null geometry, which QuPath skips");
    EXPECT_EQ(nic::parseGeoJson(text, "x").set, s); // and still nothing lost for nic/ASAP
}

TEST(GeoJson, MalformedInputNamesFileAndJsonPath) {
    const std::string f = R"({"type":"FeatureCollection","features":[)";
    const std::string ok = R"({"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{}},)";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"type":"FeatureCollection","features":[)",
         "in.geojson: malformed JSON: parse error at line 1, column 41: syntax error while parsing value - unexpected "
         "end of input; expected '[', '{', or a literal"},
        {R"("hello")", "in.geojson: top level: expected a FeatureCollection, a Feature or an array of Features, got the "
                       "string \"hello\""},
        {R"({"type":"Polygon","coordinates":[]})", "in.geojson: type: expected \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
        {R"({"type":"FeatureCollection"})", "in.geojson: top level: a FeatureCollection needs a \"features\" array"},
        {R"({"type":"FeatureCollection","features":{}})", "in.geojson: features: expected an array, got an object"},
        {f + ok + ok + ok + R"({"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],"x",[0,0]]]}}]})",
         "in.geojson: features[3].geometry.coordinates[0][2]: expected a position [x, y], got the string \"x\""},
        {f + R"({"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,null],[0,0]]]}}]})",
         "in.geojson: features[0].geometry.coordinates[0][2][1]: expected a number, got null"},
        {f + R"({"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}}]})",
         "in.geojson: features[0].geometry.coordinates[0]: a polygon ring needs at least 3 distinct positions, got 2"},
        {f + ok + R"({"type":"Feature","geometry":{"type":"Circle","coordinates":[0,0]}}]})",
         "in.geojson: features[1].geometry.type: unsupported geometry type \"Circle\""},
        {f + R"({"type":"Feature"}]})", "in.geojson: features[0]: missing \"geometry\""},
        {f + R"({"type":"Feat","geometry":null}]})", "in.geojson: features[0].type: expected \"Feature\", got \"Feat\""},
        {f + R"({"type":"Feature","geometry":null,"properties":{"classification":{"name":"T","color":[1,2,300]}}}]})",
         "in.geojson: features[0].properties.classification.color[2]: expected an integer from 0 to 255, got the number 300"},
        {f + R"({"type":"Feature","geometry":null,"properties":{"name":7}}]})",
         "in.geojson: features[0].properties.name: expected a string, got the number 7"},
        {f + R"({"type":"Feature","geometry":{"type":"MultiPolygon","coordinates":[[]]}}]})",
         "in.geojson: features[0].geometry.coordinates[0]: expected a non-empty array of rings, got an array"},
        {R"({"type":"FeatureCollection","asapGroups":[{"name":"a","parent":"b"}],"features":[]})",
         "in.geojson: group 'a' names unknown parent group 'b'"},
    };
    for (const auto& [text, expected] : cases)
        EXPECT_EQ(importError(text), expected) << text;
}

TEST(GeoJson, FormatByExtension) {
    EXPECT_EQ(nic::annotationFormatForPath("a.XML"), nic::AnnotationFormat::AsapXml);
    EXPECT_EQ(nic::annotationFormatForPath("a.geojson"), nic::AnnotationFormat::GeoJson);
    EXPECT_EQ(nic::annotationFormatForPath("a.json"), nic::AnnotationFormat::GeoJson);
    EXPECT_FALSE(nic::annotationFormatForPath("a.txt"));
    EXPECT_EQ(nic::test::errorOf<nic::InvalidArgument>([] { nic::loadAnnotationFile("x.txt"); }),
              "x.txt: unknown annotation format '.txt' (use .xml for ASAP or .geojson/.json for GeoJSON)");
    EXPECT_EQ(nic::test::errorOf<nic::IoError>([] { nic::loadAnnotationFile("/no/such/file.geojson"); }),
              "/no/such/file.geojson: cannot open: no such file");
}

namespace {
nic::HeatmapData smallHeatmap() {
    nic::HeatmapData d;
    d.cols = 3;
    d.rows = 2;
    d.heat = {0.1f, 0.9f, 0.5f, 0.7f, 0.95f, 0.2f};
    d.tissue = {1.0f, 1.0f, 0.0f, 0.5f, 1.0f, 1.0f};
    d.cellSize = 256.0;
    d.level0Width = 768;
    d.level0Height = 512;
    d.slideFile = "slide.tif";
    d.model = "fold2/model.pt";
    d.task = "metastasis";
    d.prediction = 0.875;
    return d;
}
} // namespace

TEST(GeoJson, HeatmapTilesForQuPath) {
    std::size_t n = 0;
    const json j = json::parse(nic::heatmapTilesToGeoJson(smallHeatmap(), {0.5, "gradcam"}, &n));
    // Tissue cells with heat >= 0.5: (1,0) 0.9, (0,1) 0.7, (1,1) 0.95; (2,0) is glass.
    ASSERT_EQ(n, 3U);
    ASSERT_EQ(j["features"].size(), 3U);
    EXPECT_EQ(j["properties"]["prediction"], 0.875);
    EXPECT_EQ(j["properties"]["model"], "fold2/model.pt");
    EXPECT_EQ(j["properties"]["threshold"], 0.5);
    const json& t = j["features"][0];
    EXPECT_EQ(t["properties"]["objectType"], "tile");
    EXPECT_FLOAT_EQ(t["properties"]["measurements"]["gradcam"].get<float>(), 0.9f);
    EXPECT_EQ(t["geometry"]["coordinates"][0],
              json::parse("[[256.0,0.0],[512.0,0.0],[512.0,256.0],[256.0,256.0],[256.0,0.0]]"));
    EXPECT_EQ(j["features"][2]["geometry"]["coordinates"][0][2], json::parse("[512.0,512.0]"));
    // Without a threshold every tissue cell is a tile; the tiles import as annotations (detections).
    EXPECT_EQ(nic::parseGeoJson(nic::heatmapTilesToGeoJson(smallHeatmap(), {}, &n), "t").set.annotations.size(), 5U);
    EXPECT_EQ(n, 5U);
}

// ---- CLI ---------------------------------------------------------------------------------------------

namespace {
} // namespace

TEST(GeoJsonCli, ConvertAnnotationsRoundTripsRealFile) {
    NIC_REQUIRE_SHARED("annotations/camelyon17/patient_010_node_4.xml");
    const auto xml = sharedDataDir() / "annotations/camelyon17/patient_010_node_4.xml";
    nic::test::TempDir dir;
    std::string out, err;
    ASSERT_EQ(runCommand(nic::test::nicCommand("convert-annotations '" + xml.string() + "' '" + (dir / "a.geojson").string() + "'"), &out, &err), 0) << err;
    EXPECT_EQ(err, "");
    EXPECT_EQ(out, (dir / "a.geojson").string() + ": 66 annotation(s), 2 group(s) written\n");
    ASSERT_EQ(runCommand(nic::test::nicCommand("convert-annotations '" + (dir / "a.geojson").string() + "' '" + (dir / "b.xml").string() + "'"), &out, &err), 0) << err;
    EXPECT_EQ(nic::test::readFile(dir / "b.xml"), nic::test::readFile(xml));
}

TEST(GeoJsonCli, WarningsErrorsAndHeatmapExport) {
    nic::test::TempDir dir;
    { std::ofstream(dir / "q.geojson") << kQuPath; }
    std::string out, err;
    ASSERT_EQ(runCommand(nic::test::nicCommand("convert-annotations '" + (dir / "q.geojson").string() + "' '" + (dir / "q.xml").string() + "'"), &out, &err), 0) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 4) << err; // 2 holes on import, 2 multi-part notes on export
    EXPECT_EQ(err.rfind("nic: warning: features[0]: 2 hole(s)", 0), 0U) << err;

    { std::ofstream(dir / "bad.geojson") << R"({"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":["a",1]}}]})"; }
    EXPECT_EQ(runCommand(nic::test::nicCommand("convert-annotations '" + (dir / "bad.geojson").string() + "' '" + (dir / "o.xml").string() + "'"), &out, &err), 1);
    EXPECT_EQ(err, "nic: error: " + (dir / "bad.geojson").string() +
                       ": features[0].geometry.coordinates[0]: expected a number, got the string \"a\"\n");
    EXPECT_FALSE(fs::exists(dir / "o.xml"));
    EXPECT_EQ(runCommand(nic::test::nicCommand("convert-annotations '" + (dir / "q.geojson").string() + "' '" + (dir / "o.txt").string() + "'"), &out, &err), 2);
    EXPECT_EQ(err, "nic: usage error: " + (dir / "o.txt").string() +
                       ": unknown annotation format '.txt' (use .xml for ASAP or .geojson/.json for GeoJSON)\n");

    nic::writeHeatmapFile(dir / "s_heatmap.h5", smallHeatmap());
    ASSERT_EQ(runCommand(nic::test::nicCommand("export-heatmap '" + (dir / "s_heatmap.h5").string() + "' '" + (dir / "t.geojson").string() +
                                "' --threshold 0.5"), &out, &err), 0) << err;
    EXPECT_EQ(out, (dir / "t.geojson").string() + ": 3 tile(s) of 256 px, prediction 0.8750\n");
    const json j = json::parse(nic::test::readFile(dir / "t.geojson"));
    EXPECT_EQ(j["features"].size(), 3U);
    EXPECT_EQ(j["properties"]["prediction"], 0.875);
}

// ASAP annotation XML: lossless round trips (all real Camelyon17 files, a hand-written file with every
// feature, exact doubles), broken input with exact messages, and rasterisation/coverage geometry.
#include "core/annotations/annotation.h"
#include "core/annotations/annotationraster.h"
#include "core/base/error.h"
#include "testsupport.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <sstream>

using nic::Annotation;
using nic::AnnotationError;
using nic::AnnotationGroup;
using nic::AnnotationSet;
using nic::AnnotationType;
using nic::GroupElement;
using nic::Image;
using nic::Point;
using nic::test::sharedDataDir;
namespace fs = std::filesystem;

namespace {

// The what() of the AnnotationError thrown by parse(), or "<no error>".
std::string parseError(const std::string& xml, const std::string& source = "test.xml") {
    return nic::test::errorOf<AnnotationError>([&] { AnnotationSet::parse(xml, source); });
}

std::string wrap(const std::string& annotations, const std::string& groups) {
    return "<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n\t<Annotations>\n" + annotations +
           "\t</Annotations>\n\t<AnnotationGroups>\n" + groups + "\t</AnnotationGroups>\n</ASAP_Annotations>\n";
}

Annotation polygon(std::string name, std::string group, std::vector<Point> points,
                   AnnotationType type = AnnotationType::Polygon) {
    Annotation a;
    a.name = std::move(name);
    a.type = type;
    a.group = std::move(group);
    a.color = "#F4FA58";
    a.coordinates = std::move(points);
    return a;
}

AnnotationGroup group(std::string name, std::string parent = {}) {
    AnnotationGroup g;
    g.name = std::move(name);
    g.parent = std::move(parent);
    g.color = "#ff0000";
    return g;
}

std::vector<Point> square(double x0, double y0, double x1, double y1) { return {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}; }

double shoelace(const std::vector<Point>& p) {
    double twice = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) {
        const Point& a = p[i];
        const Point& b = p[(i + 1) % p.size()];
        twice += a.x * b.y - b.x * a.y;
    }
    return std::fabs(twice) / 2.0;
}

std::size_t coveredPixels(const Image& mask) {
    return static_cast<std::size_t>(std::count(mask.pixels.begin(), mask.pixels.end(), std::uint8_t{255}));
}

// Even-odd point-in-polygon, the slow reference for the scanline fill.
bool insideEvenOdd(const std::vector<Point>& p, double x, double y) {
    bool inside = false;
    for (std::size_t i = 0, j = p.size() - 1; i < p.size(); j = i++) {
        if ((p[i].y > y) != (p[j].y > y) && x < (p[j].x - p[i].x) * (y - p[i].y) / (p[j].y - p[i].y) + p[i].x)
            inside = !inside;
    }
    return inside;
}

// ---- real files ------------------------------------------------------------------------------------

std::vector<std::string> realAnnotationFiles() {
    std::vector<std::string> files;
    for (const char* dir : {"annotations/camelyon17", "annotations/camelyon17_tumor_group"}) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(sharedDataDir() / dir, ec))
            if (entry.path().extension() == ".xml")
                files.push_back((fs::path(dir) / entry.path().filename()).string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty())
        files.emplace_back();  // one placeholder case that skips, so the suite is never empty
    return files;
}

std::string caseName(const testing::TestParamInfo<std::string>& info) {
    std::string name = info.param.empty() ? "shared_data_absent" : info.param;
    name = name.substr(name.find('/') + 1);  // drop "annotations/"
    if (name.size() > 4 && name.ends_with(".xml"))
        name.resize(name.size() - 4);
    for (char& c : name)
        if (std::isalnum(static_cast<unsigned char>(c)) == 0)
            c = '_';
    return name;
}

class RealAnnotationFile : public testing::TestWithParam<std::string> {};

} // namespace

TEST(Annotation, RealDataSetIsComplete) {
    NIC_REQUIRE_SHARED("annotations/camelyon17");
    const auto files = realAnnotationFiles();
    const auto count = [&](const std::string& dir) {
        return std::count_if(files.begin(), files.end(), [&](const std::string& f) { return f.starts_with(dir + "/"); });
    };
    EXPECT_EQ(count("annotations/camelyon17"), 50);
    EXPECT_EQ(count("annotations/camelyon17_tumor_group"), 1);
}

TEST_P(RealAnnotationFile, LoadsAndRoundTripsExactly) {
    NIC_REQUIRE_SHARED("annotations/camelyon17");
    ASSERT_FALSE(GetParam().empty());
    const fs::path path = sharedDataDir() / GetParam();
    const AnnotationSet set = AnnotationSet::load(path);

    ASSERT_FALSE(set.annotations.empty());
    ASSERT_FALSE(set.groups.empty());
    for (const Annotation& a : set.annotations) {
        EXPECT_FALSE(a.coordinates.empty()) << a.name;
        EXPECT_TRUE(a.group.empty() || set.findGroup(a.group) != nullptr) << a.name;
    }

    // Through memory, and through a file on disk.
    EXPECT_EQ(AnnotationSet::parse(set.toXml(), "memory"), set);
    nic::test::TempDir dir;
    set.save(dir / "copy.xml");
    EXPECT_EQ(AnnotationSet::load(dir / "copy.xml"), set);

    // These files were written by ASAP; the writer reproduces them byte for byte.
    EXPECT_EQ(set.toXml(), nic::test::readFile(path));
}

INSTANTIATE_TEST_SUITE_P(Camelyon17, RealAnnotationFile, testing::ValuesIn(realAnnotationFiles()), caseName);

TEST(Annotation, RealFileContent) {
    NIC_REQUIRE_SHARED("annotations/camelyon17");
    const auto dir = sharedDataDir() / "annotations";
    const AnnotationSet small = AnnotationSet::load(dir / "camelyon17/patient_004_node_4.xml");
    ASSERT_EQ(small.annotations.size(), 3U);
    std::size_t vertices = 0;
    for (const auto& a : small.annotations)
        vertices += a.coordinates.size();
    EXPECT_EQ(vertices, 35U);
    const Annotation& first = small.annotations.front();
    EXPECT_EQ(first.name, "Annotation 0");
    EXPECT_EQ(first.type, AnnotationType::Polygon);
    EXPECT_EQ(first.group, "metastases");
    EXPECT_EQ(first.color, "#F4FA58");
    EXPECT_TRUE(first.attributes.empty());
    EXPECT_EQ(first.coordinates.front(), (Point{12711.3, 88778.1}));
    ASSERT_EQ(small.groups.size(), 1U);
    EXPECT_EQ(small.groups[0].name, "metastases");
    EXPECT_EQ(small.groups[0].parent, "");
    EXPECT_EQ(small.groups[0].color, "#ff0000");
    EXPECT_EQ(small.groups[0].element, GroupElement::Group);
    EXPECT_TRUE(small.groups[0].properties.empty());

    // The later release of the same slide: group "Tumor", float-rounded coordinates.
    const AnnotationSet later = AnnotationSet::load(dir / "camelyon17_tumor_group/patient_004_node_4.xml");
    ASSERT_EQ(later.annotations.size(), 3U);
    EXPECT_EQ(later.annotations[0].group, "Tumor");
    EXPECT_EQ(later.annotations[0].coordinates.front(), (Point{12711.2998, 88778.1016}));

    // Type="None" annotations with PartOfGroup="None" occur in the real data.
    const AnnotationSet withNone = AnnotationSet::load(dir / "camelyon17/patient_015_node_2.xml");
    const auto none = std::find_if(withNone.annotations.begin(), withNone.annotations.end(),
                                   [](const Annotation& a) { return a.type == AnnotationType::None; });
    ASSERT_NE(none, withNone.annotations.end());
    EXPECT_EQ(none->group, "");
    EXPECT_EQ(none->coordinates.size(), 2U);

    // Two declared groups.
    const AnnotationSet twoGroups = AnnotationSet::load(dir / "camelyon17/patient_010_node_4.xml");
    ASSERT_EQ(twoGroups.groups.size(), 2U);
    EXPECT_EQ(twoGroups.groups[1].name, "normal");
}

TEST(Annotation, RealFileRasterAreaMatchesPolygonArea) {
    NIC_REQUIRE_SHARED("annotations/camelyon17/patient_004_node_4.xml");
    const AnnotationSet set = AnnotationSet::load(sharedDataDir() / "annotations/camelyon17/patient_004_node_4.xml");
    double area = 0.0;
    double minX = 1e300, minY = 1e300, maxX = -1e300, maxY = -1e300;
    for (const auto& a : set.annotations) {
        area += shoelace(a.coordinates);
        for (const Point& p : a.coordinates) {
            minX = std::min(minX, p.x), minY = std::min(minY, p.y);
            maxX = std::max(maxX, p.x), maxY = std::max(maxY, p.y);
        }
    }
    for (const double ds : {1.0, 2.0, 4.0}) {
        const int w = static_cast<int>(std::ceil((maxX - minX) / ds)) + 2;
        const int h = static_cast<int>(std::ceil((maxY - minY) / ds)) + 2;
        const Image mask = nic::rasterize(set, {"metastases"}, minX - ds, minY - ds, ds, w, h);
        EXPECT_NEAR(static_cast<double>(coveredPixels(mask)) * ds * ds, area, 0.02 * area) << "downsample " << ds;
        EXPECT_EQ(coveredPixels(nic::rasterize(set, {"normal"}, minX - ds, minY - ds, ds, w, h)), 0U);
    }
}

// ---- hand-written file with every feature ------------------------------------------------------------

namespace {

const char* const kEverything = R"(<?xml version="1.0"?>
<ASAP_Annotations>
	<Annotations>
		<Annotation Name="dot" Type="Dot" PartOfGroup="cells" Color="#112233" Author="jd" Confidence="0.9">
			<Coordinates>
				<Coordinate Order="0" X="10.5" Y="20.25" />
			</Coordinates>
		</Annotation>
		<Annotation Name="tumour &amp; &quot;more&quot; &lt;1&gt;" Type="Polygon" PartOfGroup="tumor" Color="#F4FA58">
			<Coordinates>
				<Coordinate Order="2" X="100" Y="100" />
				<Coordinate Order="0" X="0" Y="0" />
				<Coordinate Order="3" X="-0.125" Y="1e2" />
				<Coordinate Order="1" X="100,5" Y="+0" />
			</Coordinates>
		</Annotation>
		<Annotation Name="spline" Type="Spline" PartOfGroup="tumor-core" Color="#00ff00">
			<Coordinates>
				<Coordinate Order="10" X="3" Y="3" />
				<Coordinate Order="5" X="2" Y="2" />
				<Coordinate Order="5" X="2.5" Y="2.5" />
				<Coordinate Order="-1" X="1" Y="1" />
			</Coordinates>
		</Annotation>
		<Annotation Name="points" Type="PointSet" PartOfGroup="None" Color="#000000">
			<Coordinates>
				<Coordinate Order="0" X="1" Y="2" />
				<Coordinate Order="1" X="3" Y="4" />
				<Coordinate Order="2" X="5" Y="6" />
			</Coordinates>
		</Annotation>
		<Annotation Name="ruler" Type="Measurement" PartOfGroup="None" Color="#000000">
			<Coordinates>
				<Coordinate Order="1" X="7" Y="8" />
				<Coordinate Order="0" X="5" Y="6" />
			</Coordinates>
		</Annotation>
		<Annotation Name="box" Type="Rectangle" PartOfGroup="exclusion" Color="#000000">
			<Coordinates>
				<Coordinate Order="0" X="0" Y="0" />
				<Coordinate Order="1" X="10" Y="0" />
				<Coordinate Order="2" X="10" Y="10" />
				<Coordinate Order="3" X="0" Y="10" />
			</Coordinates>
		</Annotation>
		<Annotation Name="line" Type="None" PartOfGroup="None" Color="#000000">
			<Coordinates>
				<Coordinate Order="0" X="1" Y="1" />
				<Coordinate Order="1" X="2" Y="2" />
			</Coordinates>
		</Annotation>
		<Annotation Name="empty" Type="Polygon" Color="#abcdef" />
	</Annotations>
	<AnnotationGroups>
		<Group Name="tumor" PartOfGroup="None" Color="#ff0000">
			<Attributes>
				<Attribute grade="3" />
				<Attribute stage="pN1" note="a&#10;b" />
			</Attributes>
		</Group>
		<AnnotationGroup Name="tumor-core" PartOfGroup="tumor" Color="#aa0000" Visible="false">
			<Attributes />
		</AnnotationGroup>
		<Group Name="cells" PartOfGroup="tumor-core" Color="#0000ff" />
		<Group Name="exclusion" PartOfGroup="None" Color="#888888">
			<Attributes />
		</Group>
	</AnnotationGroups>
	<AnnotationGroup Name="loose" PartOfGroup="None" Color="#123456" />
</ASAP_Annotations>
)";

} // namespace

TEST(Annotation, HandWrittenFileReadsEveryFeature) {
    const AnnotationSet set = AnnotationSet::parse(kEverything, "everything.xml");
    ASSERT_EQ(set.annotations.size(), 8U);
    const auto& a = set.annotations;

    EXPECT_EQ(a[0].type, AnnotationType::Dot);
    EXPECT_EQ(a[0].group, "cells");
    EXPECT_EQ(a[0].color, "#112233");
    EXPECT_EQ(a[0].attributes, (std::map<std::string, std::string>{{"Author", "jd"}, {"Confidence", "0.9"}}));
    EXPECT_EQ(a[0].coordinates, (std::vector<Point>{{10.5, 20.25}}));

    EXPECT_EQ(a[1].name, "tumour & \"more\" <1>");
    EXPECT_EQ(a[1].type, AnnotationType::Polygon);
    // Sorted by Order; decimal comma, exponent and '+' sign read as numbers.
    EXPECT_EQ(a[1].coordinates, (std::vector<Point>{{0, 0}, {100.5, 0}, {100, 100}, {-0.125, 100}}));

    EXPECT_EQ(a[2].type, AnnotationType::Spline);
    // Negative and sparse Orders sort; equal Orders keep document order.
    EXPECT_EQ(a[2].coordinates, (std::vector<Point>{{1, 1}, {2, 2}, {2.5, 2.5}, {3, 3}}));

    EXPECT_EQ(a[3].type, AnnotationType::PointSet);
    EXPECT_EQ(a[3].group, "");
    EXPECT_EQ(a[4].type, AnnotationType::Measurement);
    EXPECT_EQ(a[4].coordinates, (std::vector<Point>{{5, 6}, {7, 8}}));
    EXPECT_EQ(a[5].type, AnnotationType::Rectangle);
    EXPECT_EQ(a[6].type, AnnotationType::None);
    EXPECT_EQ(a[7].name, "empty");
    EXPECT_EQ(a[7].group, "");  // no PartOfGroup attribute
    EXPECT_TRUE(a[7].coordinates.empty());

    ASSERT_EQ(set.groups.size(), 5U);
    const auto& g = set.groups;
    EXPECT_EQ(g[0].name, "tumor");
    EXPECT_EQ(g[0].parent, "");
    EXPECT_EQ(g[0].element, GroupElement::Group);
    EXPECT_EQ(g[0].properties, (std::vector<std::pair<std::string, std::string>>{
                                   {"grade", "3"}, {"stage", "pN1"}, {"note", "a\nb"}}));
    EXPECT_EQ(g[1].name, "tumor-core");
    EXPECT_EQ(g[1].parent, "tumor");
    EXPECT_EQ(g[1].element, GroupElement::AnnotationGroup);
    EXPECT_EQ(g[1].attributes, (std::map<std::string, std::string>{{"Visible", "false"}}));
    EXPECT_EQ(g[2].name, "cells");
    EXPECT_EQ(g[2].parent, "tumor-core");
    EXPECT_EQ(g[4].name, "loose");  // <AnnotationGroup> directly under the root
    EXPECT_EQ(g[4].element, GroupElement::AnnotationGroup);

    EXPECT_TRUE(set.isInGroup("cells", "tumor"));
    EXPECT_TRUE(set.isInGroup("cells", "tumor-core"));
    EXPECT_TRUE(set.isInGroup("tumor", "tumor"));
    EXPECT_FALSE(set.isInGroup("tumor", "cells"));
    EXPECT_FALSE(set.isInGroup("exclusion", "tumor"));
    EXPECT_FALSE(set.isInGroup("", "tumor"));
    ASSERT_NE(set.findGroup("exclusion"), nullptr);
    EXPECT_EQ(set.findGroup("exclusion")->color, "#888888");
    EXPECT_EQ(set.findGroup("nope"), nullptr);
}

TEST(Annotation, HandWrittenFileRoundTrips) {
    const AnnotationSet set = AnnotationSet::parse(kEverything, "everything.xml");
    const std::string xml = set.toXml();
    const AnnotationSet again = AnnotationSet::parse(xml, "saved.xml");
    EXPECT_EQ(again, set);
    EXPECT_EQ(again.toXml(), xml);  // the writer's output is a fixed point

    // The group element variant is kept per group; everything goes inside <AnnotationGroups>.
    EXPECT_NE(xml.find("\t\t<AnnotationGroup Name=\"tumor-core\" PartOfGroup=\"tumor\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("\t\t<AnnotationGroup Name=\"loose\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("\t\t<Group Name=\"cells\" PartOfGroup=\"tumor-core\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("<Attribute grade=\"3\" />"), std::string::npos) << xml;
    // Order is rewritten 0..n-1 in sorted sequence; "None" stands for no group.
    EXPECT_NE(xml.find("<Coordinate Order=\"1\" X=\"100.5\" Y=\"0\" />"), std::string::npos) << xml;
    EXPECT_NE(xml.find("Name=\"empty\" Type=\"Polygon\" PartOfGroup=\"None\""), std::string::npos) << xml;

    nic::test::TempDir dir;
    set.save(dir / "everything.xml");
    EXPECT_EQ(AnnotationSet::load(dir / "everything.xml"), set);
}

TEST(Annotation, ModelRoundTripsDoublesExactly) {
    std::mt19937_64 rng(20240611);
    std::uniform_real_distribution<double> coord(-2e5, 2e5);
    AnnotationSet set;
    set.groups.push_back(group("g"));
    Annotation a = polygon("numbers", "g", {});
    // Pixel-like values, and arbitrary finite bit patterns (all magnitudes, subnormals).
    for (int i = 0; i < 2000; ++i) {
        double any = 0.0;
        do {
            const std::uint64_t bits = rng();
            std::memcpy(&any, &bits, sizeof any);
        } while (!std::isfinite(any));
        a.coordinates.push_back({coord(rng), any});
    }
    for (const double v : {0.0, -0.0, 0.1, 1.0 / 3.0, 100000.0, 1e15, 1e16, 1e-5, 9.999e-6, 5e-324, 1.7976931348623157e308,
                           -2.2250738585072014e-308, 12711.3, 88778.1})
        a.coordinates.push_back({v, -v});
    set.annotations.push_back(a);

    const std::string xml = set.toXml();
    const AnnotationSet back = AnnotationSet::parse(xml, "numbers.xml");
    ASSERT_EQ(back.annotations.size(), 1U);
    ASSERT_EQ(back.annotations[0].coordinates.size(), a.coordinates.size());
    for (std::size_t i = 0; i < a.coordinates.size(); ++i) {
        // Bit-exact, not merely ==.
        EXPECT_EQ(std::memcmp(&back.annotations[0].coordinates[i], &a.coordinates[i], sizeof(Point)), 0)
            << i << ": " << a.coordinates[i].x << ", " << a.coordinates[i].y;
    }
    EXPECT_EQ(back, set);
    EXPECT_NE(xml.find("X=\"100000\" Y=\"-100000\""), std::string::npos);  // no "1e+05"
    EXPECT_NE(xml.find("X=\"0.1\" Y=\"-0.1\""), std::string::npos);
}

TEST(Annotation, FilesWithoutDeclaredGroupsUseFreeFormGroupNames) {
    const std::string xml = "<ASAP_Annotations><Annotations>"
                            "<Annotation Name=\"a\" Type=\"Polygon\" PartOfGroup=\"metastases\" Color=\"#F4FA58\" />"
                            "</Annotations></ASAP_Annotations>";
    const AnnotationSet set = AnnotationSet::parse(xml, "nogroups.xml");
    ASSERT_EQ(set.annotations.size(), 1U);
    EXPECT_EQ(set.annotations[0].group, "metastases");
    EXPECT_TRUE(set.groups.empty());
    EXPECT_EQ(AnnotationSet::parse(set.toXml(), "saved.xml"), set);
}

// ---- broken input: exact messages -----------------------------------------------------------------------

TEST(Annotation, MalformedXmlNamesFileAndLine) {
    // Line 5 closes <Annotation> with </Annotations>.
    const std::string mismatched = "<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n\t<Annotations>\n"
                                   "\t\t<Annotation Name=\"A\" Type=\"Polygon\">\n\t\t</Annotations>\n"
                                   "</ASAP_Annotations>\n";
    EXPECT_EQ(parseError(mismatched), "test.xml:5: malformed XML: Start-end tags mismatch");

    const std::string badAttribute = "<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n\t<Annotations>\n"
                                     "\t\t<Annotation Name=\"A Type=\"Polygon\">\n";
    EXPECT_EQ(parseError(badAttribute), "test.xml:4: malformed XML: Error parsing element attribute");

    const std::string truncated = "<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n\t<Annotations>\n\t\t<Annota";
    EXPECT_EQ(parseError(truncated), "test.xml:4: malformed XML: Error parsing start element tag");

    EXPECT_EQ(parseError(""), "test.xml:1: malformed XML: No document element found");

    // Through load(): the message names the path.
    nic::test::TempDir dir;
    std::ofstream(dir / "broken.xml") << mismatched;
    try {
        AnnotationSet::load(dir / "broken.xml");
        FAIL() << "no error";
    } catch (const AnnotationError& e) {
        EXPECT_EQ(std::string(e.what()), (dir / "broken.xml").string() + ":5: malformed XML: Start-end tags mismatch");
    }
}

TEST(Annotation, UnknownGroupNamesAnnotationAndGroup) {
    const std::string xml = wrap(
        "\t\t<Annotation Name=\"Annotation 0\" Type=\"Polygon\" PartOfGroup=\"metastases\" Color=\"#F4FA58\" />\n"
        "\t\t<Annotation Name=\"Annotation 1\" Type=\"Polygon\" PartOfGroup=\"tumour\" Color=\"#F4FA58\" />\n",
        "\t\t<Group Name=\"metastases\" PartOfGroup=\"None\" Color=\"#ff0000\" />\n");
    EXPECT_EQ(parseError(xml), "test.xml:5: annotation 'Annotation 1' names unknown group 'tumour'");
}

TEST(Annotation, InconsistentGroupsAreErrors) {
    const std::string ann = "\t\t<Annotation Name=\"a\" Type=\"Polygon\" PartOfGroup=\"None\" Color=\"#000000\" />\n";
    EXPECT_EQ(parseError(wrap(ann, "\t\t<Group Name=\"child\" PartOfGroup=\"ghost\" Color=\"#ff0000\" />\n")),
              "test.xml:7: group 'child' names unknown parent group 'ghost'");
    EXPECT_EQ(parseError(wrap(ann, "\t\t<Group Name=\"g\" PartOfGroup=\"None\" Color=\"#ff0000\" />\n"
                                   "\t\t<AnnotationGroup Name=\"g\" PartOfGroup=\"None\" Color=\"#00ff00\" />\n")),
              "test.xml:8: duplicate group 'g'");
    EXPECT_EQ(parseError(wrap(ann, "\t\t<Group Name=\"a\" PartOfGroup=\"b\" Color=\"#ff0000\" />\n"
                                   "\t\t<Group Name=\"b\" PartOfGroup=\"a\" Color=\"#ff0000\" />\n")),
              "test.xml:7: group 'a' is nested in itself");
    EXPECT_EQ(parseError(wrap(ann, "\t\t<Group Name=\"self\" PartOfGroup=\"self\" Color=\"#ff0000\" />\n")),
              "test.xml:7: group 'self' is nested in itself");
}

TEST(Annotation, BadAnnotationContentIsAnError) {
    EXPECT_EQ(parseError(wrap("\t\t<Annotation Name=\"a\" Type=\"Circle\" PartOfGroup=\"None\" Color=\"#000000\" />\n", "")),
              "test.xml:4: annotation 'a' has unknown type 'Circle'");
    EXPECT_EQ(parseError(wrap("\t\t<Annotation Name=\"a\" PartOfGroup=\"None\" Color=\"#000000\" />\n", "")),
              "test.xml:4: annotation 'a' has unknown type ''");
    const auto withCoordinate = [](const std::string& coordinate) {
        return wrap("\t\t<Annotation Name=\"a\" Type=\"Polygon\" PartOfGroup=\"None\" Color=\"#000000\">\n"
                    "\t\t\t<Coordinates>\n\t\t\t\t<Coordinate Order=\"0\" X=\"1\" Y=\"2\" />\n\t\t\t\t" +
                        coordinate + "\n\t\t\t</Coordinates>\n\t\t</Annotation>\n",
                    "");
    };
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1\" X=\"12.5abc\" Y=\"2\" />")),
              "test.xml:7: annotation 'a': invalid coordinate X=\"12.5abc\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1\" X=\"1\" Y=\"1,2,3\" />")),
              "test.xml:7: annotation 'a': invalid coordinate Y=\"1,2,3\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1\" X=\"nan\" Y=\"1\" />")),
              "test.xml:7: annotation 'a': invalid coordinate X=\"nan\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1\" X=\"1e999\" Y=\"1\" />")),
              "test.xml:7: annotation 'a': invalid coordinate X=\"1e999\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate X=\"1\" Y=\"1\" />")),
              "test.xml:7: annotation 'a': invalid coordinate Order=\"\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1.5\" X=\"1\" Y=\"1\" />")),
              "test.xml:7: annotation 'a': invalid coordinate Order=\"1.5\"");
    EXPECT_EQ(parseError(withCoordinate("<Coordinate Order=\"1\" X=\"1\" />")),
              "test.xml:7: annotation 'a': invalid coordinate Y=\"\"");
}

TEST(Annotation, WrongRootElementIsAnError) {
    EXPECT_EQ(parseError("<?xml version=\"1.0\"?>\n<Annotations>\n</Annotations>\n"),
              "test.xml:2: not an ASAP annotation file: root element is <Annotations>, expected <ASAP_Annotations>");
}

TEST(Annotation, MissingFileIsAnIoErrorNamingTheFile) {
    nic::test::TempDir dir;
    const fs::path missing = dir / "absent.xml";
    try {
        AnnotationSet::load(missing);
        FAIL() << "no error";
    } catch (const nic::IoError& e) {
        EXPECT_EQ(std::string(e.what()), missing.string() + ": cannot open: No such file or directory");
    }
    try {
        AnnotationSet::load(dir.path());
        FAIL() << "no error";
    } catch (const nic::IoError& e) {
        EXPECT_EQ(std::string(e.what()), dir.path().string() + ": cannot open: is a directory, not an annotation file");
    }
}

TEST(Annotation, SaveRefusesSetsThatWouldNotLoadBack) {
    nic::test::TempDir dir;
    const fs::path target = dir / "out.xml";
    const auto saveError = [&](const AnnotationSet& set) -> std::string {
        try {
            set.save(target);
        } catch (const AnnotationError& e) {
            return e.what();
        }
        return "<no error>";
    };
    AnnotationSet set;
    set.groups.push_back(group("metastases"));
    set.annotations.push_back(polygon("Annotation 7", "tumour", square(0, 0, 1, 1)));
    EXPECT_EQ(saveError(set), target.string() + ": annotation 'Annotation 7' names unknown group 'tumour'");
    EXPECT_FALSE(fs::exists(target));
    EXPECT_THROW(set.toXml(), AnnotationError);

    set.annotations[0].group = "metastases";
    set.annotations[0].attributes["Name"] = "clash";
    EXPECT_EQ(saveError(set),
              target.string() + ": annotation 'Annotation 7': attribute name 'Name' is reserved or not a valid XML name");
    set.annotations[0].attributes.clear();
    set.annotations[0].attributes["bad name"] = "x";
    EXPECT_EQ(saveError(set), target.string() +
                                  ": annotation 'Annotation 7': attribute name 'bad name' is reserved or not a valid XML name");
    set.annotations[0].attributes.clear();
    set.annotations[0].coordinates[2].x = std::nan("");
    EXPECT_EQ(saveError(set), target.string() + ": annotation 'Annotation 7': coordinate 2 is not finite");
    set.annotations[0].coordinates[2].x = 1.0;
    EXPECT_EQ(saveError(set), "<no error>");
    EXPECT_EQ(AnnotationSet::load(target), set);
}

TEST(Annotation, TypeNamesRoundTrip) {
    for (const auto type : {AnnotationType::None, AnnotationType::Dot, AnnotationType::Polygon, AnnotationType::Spline,
                            AnnotationType::PointSet, AnnotationType::Measurement, AnnotationType::Rectangle}) {
        AnnotationType parsed = AnnotationType::Dot;
        ASSERT_TRUE(nic::parseAnnotationType(nic::toString(type), parsed)) << nic::toString(type);
        EXPECT_EQ(parsed, type);
    }
    AnnotationType unchanged = AnnotationType::Spline;
    EXPECT_FALSE(nic::parseAnnotationType("polygon", unchanged));
    EXPECT_EQ(unchanged, AnnotationType::Spline);
}

// ---- rasterisation ----------------------------------------------------------------------------------------

namespace {

std::vector<Point> regularPolygon(double cx, double cy, double r, int n) {
    std::vector<Point> p;
    for (int i = 0; i < n; ++i) {
        const double t = 2.0 * std::numbers::pi * i / n;
        p.push_back({cx + r * std::cos(t), cy + r * std::sin(t)});
    }
    return p;
}

AnnotationSet single(const Annotation& a) {
    AnnotationSet set;
    set.annotations.push_back(a);
    return set;
}

} // namespace

TEST(AnnotationRaster, CircleAreaMatchesAnalyticAreaAtSeveralDownsamples) {
    const double cx = 1234.5, cy = 2345.25, r = 500.0;
    const auto set = single(polygon("circle", "", regularPolygon(cx, cy, r, 360)));
    const double exact = 0.5 * 360 * r * r * std::sin(2.0 * std::numbers::pi / 360);
    for (const double ds : {1.0, 2.0, 3.0, 4.0, 8.0, 16.0}) {
        const int size = static_cast<int>(std::ceil(1200.0 / ds));
        const Image mask = nic::rasterize(set, {}, cx - 600.0, cy - 600.0, ds, size, size);
        ASSERT_EQ(mask.channels, 1);
        ASSERT_EQ(mask.width, size);
        const double area = static_cast<double>(coveredPixels(mask)) * ds * ds;
        EXPECT_NEAR(area, exact, 0.01 * exact) << "downsample " << ds;
        // Only 0 and 255.
        EXPECT_EQ(coveredPixels(mask) + static_cast<std::size_t>(std::count(mask.pixels.begin(), mask.pixels.end(), 0)),
                  mask.pixels.size());
    }
}

TEST(AnnotationRaster, TriangleAreaMatchesAnalyticArea) {
    const std::vector<Point> tri{{100, 100}, {900, 150}, {400, 800}};
    const auto set = single(polygon("triangle", "", tri));
    const double exact = shoelace(tri);
    for (const double ds : {1.0, 2.5, 4.0, 7.0}) {
        const int size = static_cast<int>(std::ceil(1000.0 / ds));
        const Image mask = nic::rasterize(set, {}, 0.0, 0.0, ds, size, size);
        EXPECT_NEAR(static_cast<double>(coveredPixels(mask)) * ds * ds, exact, 0.01 * exact) << "downsample " << ds;
    }
}

TEST(AnnotationRaster, MatchesPointInPolygonReference) {
    // Self-intersecting random rings (even-odd holes) overlapping each other (union), a window that
    // clips them, a fractional downsample and origin.
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> coord(-50.0, 400.0);
    AnnotationSet set;
    std::vector<std::vector<Point>> rings;
    for (int k = 0; k < 3; ++k) {
        std::vector<Point> ring;
        for (int i = 0; i < 25; ++i)
            ring.push_back({coord(rng), coord(rng)});
        rings.push_back(ring);
        set.annotations.push_back(polygon("r" + std::to_string(k), "", ring));
    }
    const double ox = -13.3, oy = 7.9, ds = 1.7;
    const int w = 200, h = 150;
    const Image mask = nic::rasterize(set, {}, ox, oy, ds, w, h);
    int mismatches = 0;
    std::size_t covered = 0;
    for (int j = 0; j < h; ++j) {
        for (int i = 0; i < w; ++i) {
            const double x = ox + (i + 0.5) * ds, y = oy + (j + 0.5) * ds;
            const bool expected = std::any_of(rings.begin(), rings.end(),
                                              [&](const std::vector<Point>& r) { return insideEvenOdd(r, x, y); });
            covered += expected ? 1 : 0;
            if ((*mask.at(i, j) == 255) != expected)
                ++mismatches;
        }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_GT(covered, static_cast<std::size_t>(w * h / 10));  // the test is not vacuous
    EXPECT_LT(covered, static_cast<std::size_t>(w * h));
}

TEST(AnnotationRaster, GroupSelectionFollowsNesting) {
    AnnotationSet set;
    set.groups = {group("A"), group("B", "A"), group("C")};
    set.annotations = {polygon("a", "A", square(0, 0, 10, 10)), polygon("b", "B", square(20, 0, 30, 10)),
                       polygon("c", "C", square(40, 0, 50, 10)), polygon("u", "", square(60, 0, 70, 10))};
    Annotation dot = polygon("dot", "A", square(0, 20, 10, 30), AnnotationType::Dot);
    Annotation pointSet = polygon("ps", "A", square(20, 20, 30, 30), AnnotationType::PointSet);
    set.annotations.push_back(dot);
    set.annotations.push_back(pointSet);
    const auto area = [&](const std::vector<std::string>& groups) {
        return coveredPixels(nic::rasterize(set, groups, 0, 0, 1, 80, 40));
    };
    EXPECT_EQ(area({}), 400U);  // every area annotation, grouped or not; Dot/PointSet never
    EXPECT_EQ(area({"A"}), 200U);
    EXPECT_EQ(area({"B"}), 100U);
    EXPECT_EQ(area({"C"}), 100U);
    EXPECT_EQ(area({"B", "C"}), 200U);
    EXPECT_EQ(area({"nope"}), 0U);
}

TEST(AnnotationRaster, SplineRectangleAndDegenerateShapes) {
    AnnotationSet set;
    set.annotations = {polygon("spline", "", square(0, 0, 10, 10), AnnotationType::Spline),
                       polygon("rect4", "", square(20, 0, 30, 10), AnnotationType::Rectangle),
                       polygon("rect2", "", {{40, 10}, {50, 0}}, AnnotationType::Rectangle),
                       polygon("line", "", {{0, 20}, {50, 30}}),
                       polygon("measure", "", square(0, 20, 50, 30), AnnotationType::Measurement),
                       polygon("none", "", square(0, 20, 50, 30), AnnotationType::None)};
    const Image mask = nic::rasterize(set, {}, 0, 0, 1, 60, 40);
    EXPECT_EQ(coveredPixels(mask), 300U);
    EXPECT_EQ(*mask.at(45, 5), 255);
    EXPECT_EQ(*mask.at(25, 25), 0);
}

TEST(AnnotationRaster, AdjacentAnnotationsLeaveNoGapAndWindowClips) {
    AnnotationSet set;
    set.annotations = {polygon("left", "", square(0, 0, 7.3, 20)), polygon("right", "", square(7.3, 0, 20, 20))};
    EXPECT_EQ(coveredPixels(nic::rasterize(set, {}, 0, 0, 1, 20, 20)), 400U);
    // Window partly outside the shapes, shapes partly outside the window.
    const Image clipped = nic::rasterize(set, {}, 10, -5, 1, 30, 10);
    EXPECT_EQ(coveredPixels(clipped), 10U * 5U);
    EXPECT_TRUE(nic::rasterize(set, {}, 0, 0, 1, 0, 0).empty());
}

TEST(AnnotationRaster, InvalidArguments) {
    const auto set = single(polygon("s", "", square(0, 0, 1, 1)));
    EXPECT_THROW(nic::rasterize(set, {}, 0, 0, 0.0, 10, 10), nic::InvalidArgument);
    EXPECT_THROW(nic::rasterize(set, {}, 0, 0, -1.0, 10, 10), nic::InvalidArgument);
    EXPECT_THROW(nic::rasterize(set, {}, 0, 0, std::nan(""), 10, 10), nic::InvalidArgument);
    EXPECT_THROW(nic::rasterize(set, {}, 0, 0, 1.0, -1, 10), nic::InvalidArgument);
    EXPECT_THROW(nic::rasterize(set, {}, INFINITY, 0, 1.0, 1, 1), nic::InvalidArgument);
    EXPECT_THROW(nic::coverage(set, {}, 0, 0, 0.0, 1, 1), nic::InvalidArgument);
    EXPECT_THROW(nic::coverage(set, {}, 0, 0, 1.0, 1, 1, 0), nic::InvalidArgument);
    EXPECT_THROW(nic::coverage(set, {}, 0, 0, 1.0, 1, -1), nic::InvalidArgument);
    auto bad = set;
    bad.annotations[0].coordinates[1].y = INFINITY;
    try {
        nic::rasterize(bad, {}, 0, 0, 1.0, 1, 1);
        FAIL() << "no error";
    } catch (const nic::InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "rasterize: annotation 's' has a non-finite coordinate");
    }
}

// ---- coverage -----------------------------------------------------------------------------------------------

TEST(AnnotationCoverage, CellAlignedRectangleIsExactlyZeroOrOne) {
    const auto set = single(polygon("r", "", square(256, 512, 768, 1024)));
    const int cols = 5, rows = 6;
    const auto cov = nic::coverage(set, {}, 0, 0, 256, cols, rows);
    ASSERT_EQ(cov.size(), static_cast<std::size_t>(cols * rows));
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const bool inside = c >= 1 && c <= 2 && r >= 2 && r <= 3;
            EXPECT_EQ(cov[static_cast<std::size_t>(r * cols + c)], inside ? 1.0f : 0.0f) << c << "," << r;
        }
}

TEST(AnnotationCoverage, HalfCellsAreOneHalf) {
    // x from 128 to 640 covers cell 0 and cell 2 by half, cell 1 fully; y covers row 1 by half.
    const auto set = single(polygon("r", "", square(128, 0, 640, 384)));
    const auto cov = nic::coverage(set, {}, 0, 0, 256, 3, 2, 8);
    EXPECT_EQ(cov, (std::vector<float>{0.5f, 1.0f, 0.5f, 0.25f, 0.5f, 0.25f}));
    // The same with a shifted origin and another sample count.
    const auto shifted = nic::coverage(set, {}, 128.0, 0, 256, 2, 1, 4);
    EXPECT_EQ(shifted, (std::vector<float>{1.0f, 1.0f}));
}

TEST(AnnotationCoverage, EqualsBlockAverageOfTheMask) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> coord(0.0, 640.0);
    AnnotationSet set;
    for (int k = 0; k < 2; ++k) {
        std::vector<Point> ring;
        for (int i = 0; i < 12; ++i)
            ring.push_back({coord(rng), coord(rng)});
        set.annotations.push_back(polygon("r" + std::to_string(k), "", ring));
    }
    const int s = 8, cols = 10, rows = 10;
    const double cell = 64.0;
    const auto cov = nic::coverage(set, {}, 0, 0, cell, cols, rows, s);
    const Image fine = nic::rasterize(set, {}, 0, 0, cell / s, cols * s, rows * s);
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            int count = 0;
            for (int j = 0; j < s; ++j)
                for (int i = 0; i < s; ++i)
                    count += *fine.at(c * s + i, r * s + j) == 255 ? 1 : 0;
            EXPECT_EQ(cov[static_cast<std::size_t>(r * cols + c)], static_cast<float>(count) / (s * s)) << c << "," << r;
        }
}

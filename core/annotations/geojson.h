#pragma once
// GeoJSON annotations as QuPath writes and reads them, and heatmaps as GeoJSON tiles for QuPath's
// measurement maps. The only code in the project that parses or writes GeoJSON (ASAP XML: annotation.h).
//
// QuPath's shape: a FeatureCollection (or a bare Feature, or a JSON array of Features) of Features with
// `geometry` (Point, MultiPoint, LineString, MultiLineString, Polygon with holes, MultiPolygon or null)
// and `properties`: `objectType` ("annotation", "detection", ...), `name`, `classification` {name,
// color [r,g,b] or colorRGB (packed int)}, `color` [r,g,b], `isLocked`, `measurements`, anything else.
//
// Mapping onto AnnotationSet (ASAP's model, which has no holes, no multi-part shapes and no properties):
//  - classification name → group (declared with the classification colour when new); `color` → colour;
//  - Point → Dot, MultiPoint → PointSet, LineString of 2 points → Measurement, Polygon → Polygon;
//  - every ring of a Polygon/MultiPolygon and every part of a Multi* geometry becomes one annotation;
//    annotations of one feature carry the attributes GeoJsonFeature (feature number), GeoJsonPart,
//    GeoJsonRing (0 = outer ring, ≥ 1 = hole) and GeoJsonGeometry, so writing GeoJSON again rebuilds
//    the holes and multi-parts exactly. ASAP itself draws a hole as one more filled polygon: reported.
//  - the feature id, objectType (other than "annotation") and remaining properties (isLocked,
//    measurements, ...) are kept as the attributes GeoJsonId, GeoJsonObjectType and GeoJsonProperties
//    (JSON text), which ASAP XML keeps too.
// Writing GeoJSON from an ASAP set keeps what QuPath cannot show in members QuPath ignores: per feature
// `properties.asap` {type, color, attributes} and, per file, `asapGroups` (names, nesting, colours,
// attributes). So ASAP XML → GeoJSON → ASAP XML gives back an equal AnnotationSet (operator==).
// What cannot be carried is never dropped silently: it is listed in the returned warnings.
#include "core/annotations/annotation.h"

#include <cstddef>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace nic {

struct HeatmapData;

/// Annotations read from a file, with what could not be represented exactly (one line each, naming
/// the feature by its JSON path, e.g. "features[3]: ...").
struct AnnotationImport {
    AnnotationSet set;
    std::vector<std::string> warnings;
};

/// Parses GeoJSON; `sourceName` names the file in errors. Throws AnnotationError
/// "<src>: <json path>: <cause>" (path like `features[3].geometry.coordinates[0][2]`; "$" is a bare Feature
/// at the top, "[i]" the i-th Feature of a top-level array; "top level" the document itself),
/// and "<src>: malformed JSON: <parser's description with line and column>".
AnnotationImport parseGeoJson(const std::string& text, const std::string& sourceName);

/// Reads a GeoJSON file. Throws IoError "<path>: cannot open: <cause>" and what parseGeoJson() throws.
AnnotationImport loadGeoJson(const std::filesystem::path& path);

/// Serialises `set` as a FeatureCollection (one feature per line). Appends to `warnings` what QuPath
/// will not show as ASAP did (splines, nested groups, annotations without coordinates). Throws
/// AnnotationError "annotation set: <cause>" when the set is inconsistent (as AnnotationSet::toXml()).
std::string toGeoJson(const AnnotationSet& set, std::vector<std::string>* warnings = nullptr);

/// Writes toGeoJson() atomically. Returns the warnings. Throws IoError / AnnotationError "<path>: ...".
std::vector<std::string> saveGeoJson(const AnnotationSet& set, const std::filesystem::path& path);

/// Annotation file formats, chosen by extension: .xml → ASAP XML; .geojson or .json → GeoJSON.
enum class AnnotationFormat { AsapXml, GeoJson };
std::optional<AnnotationFormat> annotationFormatForPath(const std::filesystem::path& path);

/// Loads either format by extension. Throws InvalidArgument "<path>: unknown annotation format '.ext'
/// (use .xml for ASAP or .geojson/.json for GeoJSON)" and what the format's reader throws.
AnnotationImport loadAnnotationFile(const std::filesystem::path& path);

/// Saves either format by extension, atomically. Returns the warnings: for GeoJSON those of
/// toGeoJson(); for ASAP XML one per multi-part or holed GeoJSON feature (ASAP shows each part and hole
/// as a separate filled polygon). Throws as loadAnnotationFile() and the writers.
std::vector<std::string> saveAnnotationFile(const AnnotationSet& set, const std::filesystem::path& path);

/// Heatmap → GeoJSON tiles: one square Polygon per grid cell on tissue (tissue fraction > 0) whose heat
/// is finite and >= `threshold`, objectType "tile", the heat as measurement `measurement`, so QuPath's
/// Measure ▸ Show measurement maps colours it. The FeatureCollection carries the slide prediction, model,
/// task, layer, cell size and threshold in a top-level `properties` member (which QuPath ignores).
struct HeatmapTileOptions {
    double threshold = -std::numeric_limits<double>::infinity();
    std::string measurement = "heat";
};
/// Returns the GeoJSON text; `tiles` (optional) receives the number of squares written.
std::string heatmapTilesToGeoJson(const HeatmapData& heatmap, const HeatmapTileOptions& options = {},
                                  std::size_t* tiles = nullptr);
/// Writes heatmapTilesToGeoJson() atomically; returns the number of tiles. Throws IoError naming the file.
std::size_t saveHeatmapTiles(const HeatmapData& heatmap, const std::filesystem::path& path,
                             const HeatmapTileOptions& options = {});

} // namespace nic

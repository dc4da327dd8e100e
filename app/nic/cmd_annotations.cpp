// nic convert-annotations — ASAP XML ↔ GeoJSON (QuPath), by extension; nic export-heatmap — a heatmap
// as GeoJSON tiles for QuPath's measurement maps. What a format cannot hold is printed as a warning.
#include "commands.h"

#include "core/base/error.h"
#include "core/annotations/geojson.h"
#include "core/heatmaps/heatmapeval.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>

namespace nic::cli {

namespace {

void printWarnings(const std::vector<std::string>& warnings) {
    for (const auto& w : warnings)
        std::fprintf(stderr, "nic: warning: %s\n", w.c_str());
}

} // namespace

void addAnnotationCommands(CLI::App& root) {
    {
        auto* cmd = root.add_subcommand(
            "convert-annotations",
            "Convert annotations between ASAP XML (.xml) and GeoJSON as QuPath reads and writes it (.geojson, .json), "
            "by extension; what the target format cannot hold is reported as a warning");
        auto in = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        cmd->add_option("IN", *in, "Annotation file to read (.xml, .geojson or .json)")->required();
        cmd->add_option("OUT", *out, "Annotation file to write, atomically (.xml, .geojson or .json)")->required();
        cmd->callback([in, out] {
            if (!annotationFormatForPath(*out))
                throw InvalidArgument(*out + ": unknown annotation format '" + std::filesystem::path(*out).extension().string() +
                                      "' (use .xml for ASAP or .geojson/.json for GeoJSON)");
            const auto imported = loadAnnotationFile(*in);
            printWarnings(imported.warnings);
            printWarnings(saveAnnotationFile(imported.set, *out));
            std::printf("%s: %zu annotation(s), %zu group(s) written\n", out->c_str(), imported.set.annotations.size(),
                        imported.set.groups.size());
        });
    }
    {
        auto* cmd = root.add_subcommand(
            "export-heatmap",
            "Write a heatmap (nic gradcam HDF5) as GeoJSON tiles for QuPath: one square per tissue cell at or above "
            "the threshold, the heat as a measurement (Measure > Show measurement maps colours it); the slide "
            "prediction and model are in the collection's properties");
        struct Options {
            std::string heatmap;
            std::string out;
            double threshold = -std::numeric_limits<double>::infinity();
            std::string measurement = "heat";
        };
        auto o = std::make_shared<Options>();
        cmd->add_option("HEATMAP", o->heatmap, "Heatmap file from nic gradcam (<slide>_heatmap.h5)")->required();
        cmd->add_option("OUT", o->out, "GeoJSON file to write (.geojson or .json)")->required();
        cmd->add_option("--threshold", o->threshold, "Only cells with heat at least this (default: every tissue cell)");
        cmd->add_option("--measurement", o->measurement, "Measurement name in QuPath")->capture_default_str();
        cmd->callback([o] {
            if (annotationFormatForPath(o->out) != AnnotationFormat::GeoJson)
                throw InvalidArgument(o->out + ": export-heatmap writes GeoJSON; use a .geojson or .json file name");
            if (std::isnan(o->threshold))
                throw InvalidArgument("--threshold: not a number");
            const auto data = readHeatmapFile(o->heatmap);
            HeatmapTileOptions options;
            options.threshold = o->threshold;
            options.measurement = o->measurement;
            const std::size_t tiles = saveHeatmapTiles(data, o->out, options);
            std::printf("%s: %zu tile(s) of %g px, prediction %.4f\n", o->out.c_str(), tiles, data.cellSize, data.prediction);
        });
    }
}

} // namespace nic::cli

// Writes the generated seed corpora of the fuzz harnesses: fuzz_make_seeds <out-dir> creates
// <out-dir>/<harness>/ with files made by the project's own writers (synthetic cohort and its XML,
// compressed grids in both dtypes with and without the 8 dihedral variants, a heatmap) plus a few
// hand-written inputs that reach the less common branches. scripts/run-fuzzers.sh adds the real ASAP
// files of ../shared/data when present.
#include "core/annotation.h"
#include "core/compressor.h"
#include "core/encoder.h"
#include "core/heatmapeval.h"
#include "core/synth.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

void writeText(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

nic::AnnotationSet richAnnotationSet() {
    nic::AnnotationSet s;
    nic::AnnotationGroup top;
    top.name = "metastases";
    top.color = "#ff0000";
    top.properties = {{"Key", "value"}};
    nic::AnnotationGroup child;
    child.name = "itc";
    child.parent = "metastases";
    child.color = "#00ff00";
    child.element = nic::GroupElement::AnnotationGroup;
    child.attributes["Extra"] = "1";
    s.groups = {top, child};
    const nic::AnnotationType types[] = {nic::AnnotationType::Polygon, nic::AnnotationType::Dot,
                                         nic::AnnotationType::Spline, nic::AnnotationType::PointSet,
                                         nic::AnnotationType::Measurement, nic::AnnotationType::Rectangle,
                                         nic::AnnotationType::None};
    int i = 0;
    for (auto t : types) {
        nic::Annotation a;
        a.name = "Annotation " + std::to_string(i);
        a.type = t;
        a.group = (i % 2) ? "itc" : "metastases";
        a.color = "#F4FA58";
        a.coordinates = {{10.5 + i, 20.25}, {100.0, 20.0 + i}, {100.0, 1e5}, {1.0 / 3.0, 7.0}};
        if (i == 3)
            a.attributes["Comment"] = "a & b <c>";
        s.annotations.push_back(a);
        ++i;
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_make_seeds <out-dir>\n");
        return 2;
    }
    try {
        const fs::path out = argv[1];
        const fs::path work = out / "work";
        for (const char* h : {"fuzz_annotation_xml", "fuzz_cohort_csv", "fuzz_latent_grid", "fuzz_heatmap"})
            fs::create_directories(out / h);

        // A tiny synthetic cohort: two slides with lesions (XML), one without.
        nic::SynthCohortParams p;
        p.outDir = work;
        p.count = 3;
        p.width = p.height = 1024;
        p.positiveFraction = 0.67;
        p.minLesions = 1;
        p.maxLesions = 3;
        p.lesionMinUm = 100;
        p.lesionMaxUm = 200;
        p.seed = 5;
        p.write.threads = 1;
        const auto entries = nic::generateSynthCohort(p);
        for (const auto& e : entries)
            if (!e.annotations.empty() && fs::exists(work / e.annotations))
                fs::copy_file(work / e.annotations, out / "fuzz_annotation_xml" / e.annotations,
                              fs::copy_options::overwrite_existing);
        fs::copy_file(work / "cohort.csv", out / "fuzz_cohort_csv/synth-cohort.csv", fs::copy_options::overwrite_existing);
        writeText(out / "fuzz_annotation_xml/rich.xml", richAnnotationSet().toXml());
        writeText(out / "fuzz_cohort_csv/quoted.csv",
                  "# a comment\r\nslide,label,score,fold,site\r\n\"a,b.svs\",1,0.5,0,\"x \"\"y\"\"\"\r\n\r\n"
                  "c.svs,tumor,,2,z\r\n/abs/d.svs,0,1e-3,1,\r\n");

        // Compressed grids: float16 identity only, float32 with the 8 dihedral variants.
        nic::MeanRgbEncoder enc(128);
        nic::CompressOptions o;
        o.readThreads = 1;
        nic::compressSlide(work / entries[0].slide, enc, out / "fuzz_latent_grid/f16.h5", o);
        o.augment = 8;
        o.dtype = nic::LatentDType::Float32;
        nic::compressSlide(work / entries[0].slide, enc, out / "fuzz_latent_grid/f32-aug8.h5", o);

        nic::HeatmapData h;
        h.rows = 4;
        h.cols = 5;
        h.heat.assign(20, 0.25f);
        h.heat[7] = 0.9f;
        h.tissue.assign(20, 1.0f);
        h.cellSize = 256;
        h.level0Width = 1280;
        h.level0Height = 1024;
        h.slideFile = "synth-000.svs";
        h.gridFile = "synth-000.h5";
        h.model = "model.pt";
        h.task = "classification";
        nic::writeHeatmapFile(out / "fuzz_heatmap/heatmap.h5", h);

        fs::remove_all(work);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}

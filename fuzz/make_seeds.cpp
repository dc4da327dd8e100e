// Writes the generated seed corpora of the fuzz harnesses: fuzz_make_seeds <out-dir> creates
// <out-dir>/<harness>/ with files made by the project's own writers (synthetic cohort and its XML,
// compressed grids in both dtypes with and without the 8 dihedral variants, a heatmap) plus a few
// hand-written inputs that reach the less common branches, our own encoder metadata for every encoder
// kind, and — given the shared data folder as a second argument — the model_config attribute of every
// Keras HDF5 encoder there (read at seed time, never copied into the repository). scripts/run-fuzzers.sh
// adds the real ASAP files of ../shared/data when present.
#include "core/annotations/annotation.h"
#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/hdf5file.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/encoders/modelmeta.h"
#include "core/slide/slide.h"
#include "core/synth/synth.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>

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

nic::KerasLayer kl(nic::KerasLayer::Type type, const char* name, int in, int out, int kernel = 3, int stride = 1) {
    nic::KerasLayer l;
    l.type = type;
    l.name = name;
    l.inChannels = in;
    l.outChannels = out;
    l.kernel = kernel;
    l.stride = stride;
    return l;
}

/// Our own encoder metadata, one per kind (what saveEncoder / importKerasEncoder write).
void writeEncoderMetaSeeds(const fs::path& dir) {
    for (const char* kind : {"vae", "contrastive", "bigan", "supervised-tumor", "supervised-tissue"}) {
        nic::EncoderMeta m;
        m.kind = m.name = kind;
        m.classes = m.kind == "supervised-tissue" ? 5 : (m.kind == "supervised-tumor" ? 2 : 0);
        m.trainingJson = R"({"epochs":3,"learning_rate":0.001,"seed":7,"patches":"bank.h5"})";
        writeText(dir / (std::string("ours-") + kind + ".json"), nic::encoderMetaToJson(m));
    }
    using T = nic::KerasLayer::Type;
    nic::EncoderMeta k;
    k.kind = "keras";
    k.name = "keras:encoder_bigan";
    k.patchSize = 128;
    k.codeSize = 128;
    k.kerasLayers = {kl(T::AvgPool2, "input_downsample", 0, 0), kl(T::Conv2d, "conv2d_10", 3, 128, 3, 2),
                     kl(T::LeakyRelu, "leaky_re_lu_12", 128, 128), kl(T::BatchNorm, "batch_normalization_10", 128, 128),
                     kl(T::Conv2d, "conv2d_11", 128, 256, 3, 2), kl(T::Flatten, "flatten_1", 57600, 57600),
                     kl(T::Dense, "dense_1", 57600, 128)};
    k.kerasLayers[1].samePadding = true;
    k.kerasLayers[2].alpha = 0.2;
    k.kerasLayers[3].momentum = 0.8;
    k.trainingJson = R"({"imported_from":"encoder_bigan.h5","keras_version":"2.2.4","input_side":64})";
    writeText(dir / "ours-keras.json", nic::encoderMetaToJson(k));
    nic::EncoderMeta g = k;
    g.name = "keras:encoder_mean-rgb";
    g.codeSize = 3;
    g.kerasLayers = {kl(T::GlobalAvgPool, "global_average_pooling2d_1", 3, 3)};
    writeText(dir / "ours-keras-mean-rgb.json", nic::encoderMetaToJson(g));
}

/// Hand-made model_config texts for the branches the authors' files do not use.
void writeKerasConfigSeeds(const fs::path& dir) {
    writeText(dir / "sequential.json",
              R"({"class_name": "Sequential", "config": [{"class_name": "Conv2D", "config": {"name": "c1", )"
              R"("batch_input_shape": [null, 32, 32, 3], "filters": 8, "kernel_size": [3, 3], "strides": [1, 1], )"
              R"("padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", )"
              R"("use_bias": false}}, {"class_name": "BatchNormalization", "config": {"name": "b1", "axis": 3, )"
              R"("scale": false, "center": false}}, {"class_name": "LeakyReLU", "config": {"name": "l1", "alpha": 0.1}}, )"
              R"({"class_name": "GlobalAveragePooling2D", "config": {"name": "g"}}, {"class_name": "Dense", )"
              R"("config": {"name": "d", "units": 4, "activation": "linear"}}]})");
    writeText(dir / "nested-model.json",
              R"({"class_name": "Model", "config": {"name": "m", "layers": [{"name": "in", "class_name": "InputLayer", )"
              R"("config": {"batch_input_shape": [null, 64, 64, 3]}}, {"name": "inner", "class_name": "Model", "config": )"
              R"({"name": "inner", "layers": [{"class_name": "Conv2D", "config": {"name": "c", "filters": 4, )"
              R"("kernel_size": [5, 5], "strides": [2, 2]}}, {"class_name": "Flatten", "config": {"name": "f"}}]}}, )"
              R"({"name": "d", "class_name": "Dense", "config": {"name": "d", "units": 2}}]}})");
}

/// The model_config attribute of every Keras HDF5 file under `shared` (the NIC authors' encoders), and
/// the encoder metadata an import of each writes.
void writeSharedKerasSeeds(const fs::path& shared, const fs::path& configDir, const fs::path& metaDir) {
    if (!fs::is_directory(shared)) {
        std::printf("fuzz_make_seeds: %s not found: no Keras seeds from the shared data\n", shared.string().c_str());
        return;
    }
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(shared)) {
        if (!e.is_regular_file() || e.path().extension() != ".h5")
            continue;
        try {
            const nic::Hdf5File f(e.path(), nic::Hdf5File::Mode::ReadOnly);
            if (!f.hasAttribute("model_config"))
                continue;
            const std::string config = f.stringAttribute("model_config");
            const std::string stem = e.path().stem().string();
            writeText(configDir / ("shared-" + stem + ".json"), config);
            const auto model = nic::parseKerasModelConfig(config, e.path().string());
            nic::EncoderMeta m;
            m.kind = "keras";
            m.name = "keras:" + stem;
            m.patchSize = model.patchSize;
            m.codeSize = model.codeSize;
            for (const auto& l : model.layers)
                m.kerasLayers.push_back(l.layer);
            writeText(metaDir / ("shared-" + stem + ".json"), nic::encoderMetaToJson(m));
            ++n;
        } catch (const std::exception& ex) {
            std::printf("fuzz_make_seeds: skipping %s: %s\n", e.path().string().c_str(), ex.what());
        }
    }
    std::printf("fuzz_make_seeds: %d Keras model_config seeds from %s\n", n, shared.string().c_str());
}

/// fuzz_jpeg_tiles' input: the level header (levels of `slide` as OpenSlide reports them, tile sides unknown
/// when `knownTiles` is false) followed by the file's bytes.
void writeJpegTilesSeed(const fs::path& slidePath, const fs::path& out, bool knownTiles, int tileSide) {
    const nic::Slide slide(slidePath);
    const int levels = std::min(slide.levelCount(), 3);
    std::string bytes(1, static_cast<char>(levels - 1));
    const auto put16 = [&](std::int64_t v) {
        bytes.push_back(static_cast<char>(v & 0xFF));
        bytes.push_back(static_cast<char>((v >> 8) & 0xFF));
    };
    for (int l = 0; l < levels; ++l) {
        put16(slide.level(l).width);
        put16(slide.level(l).height);
        put16(knownTiles ? tileSide : 0);
        put16(knownTiles ? tileSide : 0);
    }
    std::ifstream in(slidePath, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    writeText(out, bytes);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: fuzz_make_seeds <out-dir> [<shared-data-dir>]\n");
        return 2;
    }
    try {
        const fs::path out = argv[1];
        const fs::path work = out / "work";
        for (const char* h : {"fuzz_annotation_xml", "fuzz_cohort_csv", "fuzz_latent_grid", "fuzz_heatmap",
                              "fuzz_encoder_meta", "fuzz_keras_config", "fuzz_jpeg_tiles"})
            fs::create_directories(out / h);
        writeEncoderMetaSeeds(out / "fuzz_encoder_meta");
        writeKerasConfigSeeds(out / "fuzz_keras_config");
        if (argc == 3)
            writeSharedKerasSeeds(argv[2], out / "fuzz_keras_config", out / "fuzz_encoder_meta");
        else
            std::printf("fuzz_make_seeds: no shared data folder given: no Keras seeds from the shared data\n");

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

        // Small tiled JPEG TIFFs from the synthetic slide writer (2 and 38 KB: low quality, no thumbnail; edge
        // tiles cut by the level size; the larger one has a second level, as the writer stops at 1024 px),
        // with and without tile sides in the header.
        for (const auto& [side, tile, quality] : {std::tuple{1100, 128, 5}, std::tuple{150, 64, 10}}) {
            nic::SynthSlideParams sp;
            sp.width = side;
            sp.height = side - 30; // edge tiles cut in both directions
            sp.seed = 3;
            sp.tissueCoverage = 0.5;
            nic::SynthWriteOptions wo;
            wo.tileSize = tile;
            wo.quality = quality;
            wo.threads = 1;
            wo.thumbnailMaxSide = 0;
            const fs::path slide = work / ("tiles-" + std::to_string(side) + ".svs");
            nic::SynthSlide(sp).write(slide, wo);
            for (const bool known : {true, false})
                writeJpegTilesSeed(slide, out / "fuzz_jpeg_tiles" / (slide.stem().string() + (known ? "-tiles" : "") + ".bin"),
                                   known, tile);
        }

        fs::remove_all(work);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}

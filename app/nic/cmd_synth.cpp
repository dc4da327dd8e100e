// nic synth --out DIR — a cohort of synthetic H&E-like slides with tumour lesions, ground-truth ASAP XML
// and cohort.csv, for tests and for exercising the pipeline at any scale.
#include "commands.h"
#include "progressbar.h"

#include "core/base/error.h"
#include "core/synth/synth.h"

#include <cctype>
#include <cstdio>
#include <string>

namespace nic::cli {

namespace {

struct SynthOptions {
    std::string out;
    int count = 10;
    std::string size = "4096x4096";
    std::uint64_t seed = 1;
    double mpp = 0.5;
    double positiveFraction = 0.5;
    std::string difficulty = "standard";
    std::string lesionSize; // empty: the difficulty's
    std::string lesions;
    int tileSize = 256;
    int quality = 90;
    std::string bigTiff = "auto";
    int threads = 0;
    int thumbnail = 1024;
    bool quiet = false;
};

std::int64_t parseCount(const std::string& text, const std::string& what) {
    std::size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || v <= 0)
        throw InvalidArgument(what + ": expected a positive integer, got '" + text + "'");
    return v;
}

// "4096x3072" or "4096" (square).
std::pair<std::int64_t, std::int64_t> parseSize(const std::string& text) {
    const auto x = text.find_first_of("xX");
    if (x == std::string::npos) {
        const auto s = parseCount(text, "--size");
        return {s, s};
    }
    return {parseCount(text.substr(0, x), "--size"), parseCount(text.substr(x + 1), "--size")};
}

// A length with an optional unit, in µm: um/µm (default), mm, px (level-0 pixels) or patches (one
// 128-px patch at the 0.5 µm/px analysis resolution = 64 µm).
double parseLength(const std::string& text, double mpp) {
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    std::string unit = text.substr(used);
    if (used == 0 || !(v > 0))
        throw InvalidArgument("--lesion-size: expected a positive length such as 500, 500um, 2mm, 1024px or 8patches, "
                              "got '" + text + "'");
    if (unit.empty() || unit == "um" || unit == "\xC2\xB5m")
        return v;
    if (unit == "mm")
        return v * 1000.0;
    if (unit == "px")
        return v * mpp;
    if (unit == "p" || unit == "patch" || unit == "patches")
        return v * 64.0;
    throw InvalidArgument("--lesion-size: unknown unit '" + unit + "' (use um, mm, px or patches)");
}

template <typename T, typename F> std::pair<T, T> parseRange(const std::string& text, F parse) {
    const auto colon = text.find(':');
    if (colon == std::string::npos) {
        const T v = parse(text);
        return {v, v};
    }
    return {parse(text.substr(0, colon)), parse(text.substr(colon + 1))};
}

void runSynth(const SynthOptions& o) {
    SynthCohortParams p;
    p.outDir = o.out;
    p.count = o.count;
    std::tie(p.width, p.height) = parseSize(o.size);
    p.seed = o.seed;
    p.mpp = o.mpp;
    if (!(o.mpp >= 0.05 && o.mpp <= 10.0))
        throw InvalidArgument("--mpp must be in [0.05, 10], got " + std::to_string(o.mpp));
    p.positiveFraction = o.positiveFraction;
    applySynthDifficulty(p, parseSynthDifficulty(o.difficulty));
    if (!o.lesionSize.empty()) {
        std::tie(p.lesionMinUm, p.lesionMaxUm) =
            parseRange<double>(o.lesionSize, [&](const std::string& s) { return parseLength(s, o.mpp); });
        if (p.lesionMaxUm < p.lesionMinUm)
            throw InvalidArgument("--lesion-size: MIN must not exceed MAX");
    }
    if (!o.lesions.empty()) {
        const auto lesions =
            parseRange<std::int64_t>(o.lesions, [](const std::string& s) { return parseCount(s, "--lesions"); });
        p.minLesions = static_cast<int>(lesions.first);
        p.maxLesions = static_cast<int>(lesions.second);
    }
    p.write.tileSize = o.tileSize;
    p.write.quality = o.quality;
    p.write.bigTiff = parseBigTiffMode(o.bigTiff);
    p.write.threads = o.threads;
    p.write.thumbnailMaxSide = o.thumbnail;

    auto ctx = makeTerminalContext(o.quiet);
    const auto entries = generateSynthCohort(p, *ctx);
    finishProgressLine();
    int positives = 0;
    for (const auto& e : entries)
        positives += e.label;
    std::printf("wrote %zu slides (%d positive, %zu negative), %lldx%lld px at %g um/px, to %s\n", entries.size(),
                positives, entries.size() - static_cast<std::size_t>(positives), static_cast<long long>(p.width),
                static_cast<long long>(p.height), p.mpp, (p.outDir / "cohort.csv").c_str());
}

} // namespace

void addSynthCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "synth", "Generate a cohort of synthetic H&E-like slides (pyramidal Aperio-style TIFF, JPEG) with tumour "
                 "lesions, their ASAP XML annotations and cohort.csv (slide,label,score,annotations). The same seed "
                 "gives identical files.");
    auto o = std::make_shared<SynthOptions>();
    cmd->add_option("--out", o->out, "Output directory (created if needed)")->required();
    cmd->add_option("--count", o->count, "Number of slides")->capture_default_str()->check(CLI::Range(1, 1000000));
    cmd->add_option("--size", o->size, "Level-0 size WxH in pixels (or N for NxN), e.g. 4096x4096 or 100000x80000")
        ->capture_default_str();
    cmd->add_option("--seed", o->seed, "Random seed; the whole cohort is a function of it")->capture_default_str();
    cmd->add_option("--mpp", o->mpp, "Level-0 pixel size in um (AppMag = 10/mpp)")->capture_default_str();
    cmd->add_option("--positive-fraction", o->positiveFraction,
                    "Fraction of slides with tumour lesions (label 1); the rest have none")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--difficulty", o->difficulty,
                    "Lesion preset: standard (1-3 lesions of 200-1000 um per positive slide) or hard (one lesion of "
                    "128-256 um, 2-4 patches across); --lesion-size and --lesions override it")
        ->capture_default_str()
        ->check(CLI::IsMember({"standard", "hard"}));
    cmd->add_option("--lesion-size", o->lesionSize,
                    "Lesion diameter range MIN:MAX (or one value), in um unless suffixed mm, px (level-0 pixels) or "
                    "patches (128 px at 0.5 um/px = 64 um), e.g. 4patches:40patches [difficulty's]");
    cmd->add_option("--lesions", o->lesions, "Lesions per positive slide, MIN:MAX (or one value) [difficulty's]");
    cmd->add_option("--tile-size", o->tileSize, "TIFF tile size in pixels (multiple of 16)")->capture_default_str();
    cmd->add_option("--quality", o->quality, "JPEG quality")->capture_default_str()->check(CLI::Range(1, 100));
    cmd->add_option("--bigtiff", o->bigTiff, "BigTIFF: auto (when the file could pass 4 GB), yes or no")
        ->capture_default_str();
    cmd->add_option("--threads", o->threads, "Render threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--thumbnail", o->thumbnail, "Longer side of the thumbnail directory (0 = none)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
    cmd->callback([o] { runSynth(*o); });
}

} // namespace nic::cli

// nic eval-heatmap — scores heatmaps (from nic gradcam) against ASAP lesion annotations: pixel-level
// ROC AUC on tissue cells, pointing game, fraction of heat inside lesions; per slide and over a cohort.
#include "commands.h"

#include "core/annotations/annotation.h"
#include "core/base/atomicfile.h"
#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <memory>

namespace nic::cli {

namespace {

struct Options {
    std::vector<std::string> heatmaps;
    std::vector<std::string> annotations;
    std::string cohort;
    std::string heatmapDir;
    std::vector<std::string> groups;
    std::string json;
    HeatmapEvalOptions eval;
    int bootstrap = 2000;
    std::uint64_t seed = 0;
};

nlohmann::ordered_json num(double v) {
    return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

std::string fmt(double v) {
    if (!std::isfinite(v))
        return "  n/a";
    char b[32];
    std::snprintf(b, sizeof b, "%5.3f", v);
    return b;
}

void run(const Options& o) {
    std::vector<std::filesystem::path> heat;
    std::vector<std::filesystem::path> xml; // empty path: no annotations (negative slide)
    if (!o.cohort.empty()) {
        if (!o.heatmaps.empty() || !o.annotations.empty())
            throw InvalidArgument("give either --cohort (with --heatmaps) or --heatmap/--annotations, not both");
        if (o.heatmapDir.empty())
            throw InvalidArgument("--cohort needs --heatmaps DIR (the --out folder of nic gradcam)");
        const auto cohort = readCohort(o.cohort);
        const auto base = std::filesystem::path(o.cohort).parent_path();
        for (const auto& e : cohort.entries) {
            const auto h = std::filesystem::path(o.heatmapDir) / (e.slide.stem().string() + "_heatmap.h5");
            if (!std::filesystem::exists(h))
                throw IoError(h.string() + ": no heatmap for " + e.slide.string() + " (run nic gradcam on its grid)");
            heat.push_back(h);
            std::filesystem::path a;
            if (auto it = e.extra.find("annotations"); it != e.extra.end() && !it->second.empty())
                a = std::filesystem::path(it->second).is_absolute() ? std::filesystem::path(it->second) : base / it->second;
            else if (auto beside = std::filesystem::path(e.slide).replace_extension(".xml"); std::filesystem::exists(beside))
                a = beside;
            xml.push_back(a);
        }
    } else {
        if (o.heatmaps.empty())
            throw InvalidArgument("give --heatmap H.h5 --annotations A.xml (repeatable) or --cohort");
        if (o.annotations.size() != o.heatmaps.size())
            throw InvalidArgument(std::to_string(o.heatmaps.size()) + " heatmap(s) but " +
                                  std::to_string(o.annotations.size()) +
                                  " annotation file(s); give one per heatmap ('' for a slide without lesions)");
        for (std::size_t i = 0; i < o.heatmaps.size(); ++i) {
            heat.emplace_back(o.heatmaps[i]);
            xml.emplace_back(o.annotations[i]);
        }
    }
    std::vector<HeatmapScores> scores;
    for (std::size_t i = 0; i < heat.size(); ++i) {
        const auto d = readHeatmapFile(heat[i]);
        std::vector<float> lesion(d.heat.size(), 0.0f);
        if (!xml[i].empty() && std::filesystem::exists(xml[i]))
            lesion = lesionFractionOnGrid(AnnotationSet::load(xml[i]), o.groups, d.cellSize, d.cols, d.rows);
        else if (!xml[i].empty())
            throw IoError(xml[i].string() + ": annotation file not found");
        HeatmapScores s;
        try {
            s = scoreHeatmap(d.heat, lesion, d.tissue, d.cols, d.rows, o.eval);
        } catch (const InvalidArgument& e) { // what the file holds (a NaN heat on tissue), not an option
            throw FormatError(heat[i].string() + ": " + e.what());
        }
        s.name = heat[i].stem().string();
        if (s.name.size() > 8 && s.name.ends_with("_heatmap"))
            s.name.resize(s.name.size() - 8);
        scores.push_back(s);
    }
    const auto c = summariseHeatmapScores(scores, o.bootstrap, o.seed);

    std::printf("%-28s %8s %8s %9s %8s %6s\n", "slide", "lesion", "pix AUC", "pointing", "mass in", "cells");
    for (const auto& s : scores)
        std::printf("%-28s %8lld %8s %9s %8s %6lld\n", s.name.c_str(), static_cast<long long>(s.lesionCells),
                    fmt(s.pixelAuc).c_str(), s.pointingDefined ? (s.pointingHit ? "hit" : "miss") : "-",
                    fmt(s.massInside).c_str(), static_cast<long long>(s.tissueCells));
    std::printf("\n%d slide(s), %d with lesions\n", c.slides, c.slidesWithLesion);
    std::printf("pixel AUC (mean over %d): %s  [95%% CI %s-%s]\n", c.pixelAucSlides, fmt(c.meanPixelAuc.estimate).c_str(),
                fmt(c.meanPixelAuc.lower).c_str(), fmt(c.meanPixelAuc.upper).c_str());
    std::printf("pointing game:            %d/%d = %s\n", c.pointingHits, c.pointingSlides, fmt(c.pointingHitRate).c_str());
    std::printf("mass inside lesions:      %s  [95%% CI %s-%s]\n", fmt(c.meanMassInside.estimate).c_str(),
                fmt(c.meanMassInside.lower).c_str(), fmt(c.meanMassInside.upper).c_str());

    if (!o.json.empty()) {
        nlohmann::ordered_json j;
        auto slides = nlohmann::ordered_json::array();
        for (const auto& s : scores)
            slides.push_back({{"slide", s.name},
                              {"tissue_cells", s.tissueCells},
                              {"lesion_cells", s.lesionCells},
                              {"has_lesion", s.hasLesion},
                              {"pixel_auc", num(s.pixelAuc)},
                              {"pointing_hit", s.pointingDefined ? nlohmann::ordered_json(s.pointingHit) : nullptr},
                              {"max_cell", {s.maxX, s.maxY}},
                              {"mass_inside", num(s.massInside)}});
        j["slides"] = slides;
        j["cohort"] = {{"slides", c.slides},
                       {"slides_with_lesion", c.slidesWithLesion},
                       {"pixel_auc", {{"mean", num(c.meanPixelAuc.estimate)},
                                      {"ci_low", num(c.meanPixelAuc.lower)},
                                      {"ci_high", num(c.meanPixelAuc.upper)},
                                      {"slides", c.pixelAucSlides}}},
                       {"pointing_game", {{"hits", c.pointingHits}, {"slides", c.pointingSlides}, {"rate", num(c.pointingHitRate)}}},
                       {"mass_inside", {{"mean", num(c.meanMassInside.estimate)},
                                        {"ci_low", num(c.meanMassInside.lower)},
                                        {"ci_high", num(c.meanMassInside.upper)},
                                        {"slides", c.massSlides}}}};
        j["options"] = {{"tissue_threshold", o.eval.tissueThreshold},
                        {"lesion_threshold", o.eval.lesionThreshold},
                        {"pointing_tolerance", o.eval.pointingTolerance},
                        {"groups", o.groups}};
        writeFileAtomically(o.json, j.dump(2) + "\n");
    }
}

} // namespace

void addEvalHeatmapCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "eval-heatmap", "Score heatmaps against lesion annotations: pixel AUC on tissue cells, pointing game, "
                        "heat mass inside lesions (per slide and over the cohort)");
    auto o = std::make_shared<Options>();
    cmd->add_option("--heatmap", o->heatmaps, "Heatmap file from nic gradcam (<slide>_heatmap.h5); repeatable");
    cmd->add_option("--annotations", o->annotations, "ASAP XML per --heatmap, in the same order ('' = no lesions)");
    cmd->add_option("--cohort", o->cohort, "Cohort CSV (annotations column, or <slide>.xml beside each slide)");
    cmd->add_option("--heatmaps", o->heatmapDir, "Folder of heatmaps for --cohort");
    cmd->add_option("--groups", o->groups, "Annotation groups that are lesions (default: all area annotations)");
    cmd->add_option("--tissue-threshold", o->eval.tissueThreshold, "Tissue cells: tissue fraction above this")
        ->capture_default_str();
    cmd->add_option("--lesion-threshold", o->eval.lesionThreshold, "Lesion cells: annotated fraction at least this")
        ->capture_default_str();
    cmd->add_option("--tolerance", o->eval.pointingTolerance, "Pointing game tolerance in cells")->capture_default_str();
    cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the cohort CIs")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Bootstrap seed")->capture_default_str();
    cmd->add_option("--json", o->json, "Also write the scores as JSON to this file");
    cmd->callback([o] { run(*o); });
}

} // namespace nic::cli

// nic tissue SLIDE — tissue/background mask at low resolution, its tissue fraction and, with a patch
// grid, the number of grid cells that hold tissue.
#include "commands.h"
#include "progressbar.h"

#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/slide/patchgrid.h"
#include "core/slide/slide.h"
#include "core/slide/tissue.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

namespace nic::cli {

namespace {

struct Options {
    std::string slide;
    std::string out;
    std::optional<double> mpp;
    TissueOptions tissue;
    bool noPenFilter = false;
    std::string grid;
    std::optional<int> patch;
    std::optional<int> stride;
    std::optional<double> patchMpp;
    bool json = false;
    bool quiet = false;
};

// "P,S" or "P,S,MPP" → GridSpec (defaults where a part is absent).
GridSpec parseGrid(const std::string& text) {
    GridSpec spec;
    std::istringstream in(text);
    std::string part;
    std::vector<std::string> parts;
    while (std::getline(in, part, ','))
        parts.push_back(part);
    const auto bad = [&] {
        return InvalidArgument("--grid: expected P,S or P,S,MPP (e.g. 128,128,0.5), got '" + text + "'");
    };
    if (parts.size() < 2 || parts.size() > 3)
        throw bad();
    try {
        std::size_t used = 0;
        spec.patchSize = std::stoi(parts[0], &used);
        if (used != parts[0].size())
            throw bad();
        spec.stride = std::stoi(parts[1], &used);
        if (used != parts[1].size())
            throw bad();
        if (parts.size() == 3) {
            spec.mpp = std::stod(parts[2], &used);
            if (used != parts[2].size())
                throw bad();
        }
    } catch (const std::logic_error&) { // std::invalid_argument / std::out_of_range from stoi/stod
        throw bad();
    }
    return spec;
}

void run(const Options& o) {
    TissueOptions topts = o.tissue;
    topts.excludePen = !o.noPenFilter;

    const bool wantGrid = !o.grid.empty() || o.patch || o.stride || o.patchMpp;
    GridSpec spec;
    if (!o.grid.empty())
        spec = parseGrid(o.grid);
    if (o.patch)
        spec.patchSize = *o.patch;
    if (o.stride)
        spec.stride = *o.stride;
    if (o.patchMpp)
        spec.mpp = *o.patchMpp;

    const Slide slide(o.slide);
    auto job = makeTerminalContext(o.quiet);
    const TissueMask mask = detectTissue(slide, topts, o.mpp, *job);
    finishProgressLine();

    std::optional<PatchGrid> grid;
    if (wantGrid) {
        grid.emplace(slide, spec, o.mpp);
        grid->setTissueFractions(tissueFractionPerCell(mask, *grid));
    }
    if (!o.out.empty())
        writePng(o.out, mask.mask);

    if (o.json) {
        nlohmann::ordered_json j;
        j["slide"] = o.slide;
        j["tissue_fraction"] = mask.fraction();
        j["mask"] = {{"width", mask.mask.width},
                     {"height", mask.mask.height},
                     {"mpp", mask.mpp},
                     {"downsample", mask.downsample},
                     {"level", mask.level},
                     {"saturation_threshold", mask.threshold},
                     {"otsu", topts.otsu},
                     {"pen_filter", topts.excludePen}};
        j["out"] = o.out.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.out);
        if (grid) {
            j["grid"] = {{"patch", grid->patchSize()},
                         {"stride", grid->stride()},
                         {"mpp", grid->targetMpp()},
                         {"cols", grid->cols()},
                         {"rows", grid->rows()},
                         {"level", grid->level()},
                         {"read_size", grid->readSize()},
                         {"min_tissue", topts.minCellFraction},
                         {"tissue_cells", grid->tissueCellCount(topts.minCellFraction)}};
        }
        std::cout << j.dump(2) << '\n';
        return;
    }
    std::printf("slide:        %s\n", o.slide.c_str());
    std::printf("mask:         %d x %d px at %.4g um/px (level %d), saturation threshold %d (%s)%s\n", mask.mask.width,
                mask.mask.height, mask.mpp, mask.level, mask.threshold, topts.otsu ? "Otsu" : "fixed",
                topts.excludePen ? "" : ", pen filter off");
    std::printf("tissue:       %.2f%% of the slide\n", 100.0 * mask.fraction());
    if (grid) {
        std::printf("grid:         P=%d S=%d at %.4g um/px: %d x %d cells, level %d, %s\n", grid->patchSize(),
                    grid->stride(), grid->targetMpp(), grid->cols(), grid->rows(), grid->level(),
                    grid->resamples() ? ("read " + std::to_string(grid->readSize()) + " px and resampled").c_str()
                                      : "no resampling");
        std::printf("tissue cells: %lld of %lld (tissue fraction >= %.3g)\n",
                    static_cast<long long>(grid->tissueCellCount(topts.minCellFraction)),
                    static_cast<long long>(grid->cellCount()), topts.minCellFraction);
    }
    if (!o.out.empty())
        std::printf("written:      %s\n", o.out.c_str());
}

} // namespace

void addTissueCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "tissue", "Detect tissue on a slide at low resolution: writes a 0/255 mask PNG and prints the tissue fraction "
                  "(and, with a patch grid, how many grid cells hold tissue)");
    auto o = std::make_shared<Options>();
    const TissueOptions d;
    cmd->add_option("SLIDE", o->slide, "Slide file (any format OpenSlide reads)")->required();
    cmd->add_option("-o,--out", o->out, "Write the mask here as PNG (1 px = --target-mpp um)");
    cmd->add_option("--mpp", o->mpp, "Level-0 um/px of the slide (overrides its metadata; needed when it has none)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--target-mpp", o->tissue.targetMpp, "Working resolution in um/px")
        ->default_val(d.targetMpp)
        ->check(CLI::PositiveNumber);
    cmd->add_option("--threshold", o->tissue.saturationThreshold,
                    "Saturation threshold (0-255) on the median-blurred HSV saturation; tissue is S > T "
                    "(with --otsu: the lowest threshold allowed)")
        ->default_val(d.saturationThreshold)
        ->check(CLI::Range(0, 254));
    cmd->add_flag("--otsu", o->tissue.otsu, "Use Otsu's threshold of the saturation (needs glass and tissue in view)");
    cmd->add_flag("--no-pen-filter", o->noPenFilter,
                  "Keep pen marks and ink (skip the H&E hue window and dark-pixel test)");
    cmd->add_option("--min-object", o->tissue.minObjectUm2, "Drop tissue objects smaller than this (um^2)")
        ->default_val(d.minObjectUm2)
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-hole", o->tissue.maxHoleUm2, "Fill holes in tissue smaller than this (um^2)")
        ->default_val(d.maxHoleUm2)
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--grid", o->grid, "Patch grid P,S[,MPP] (default 128,128,0.5) to count tissue cells");
    cmd->add_option("--patch", o->patch, "Patch size P in px (implies a grid)")->check(CLI::PositiveNumber);
    cmd->add_option("--stride", o->stride, "Stride S in px (implies a grid)")->check(CLI::PositiveNumber);
    cmd->add_option("--patch-mpp", o->patchMpp, "Grid resolution in um/px (implies a grid)")->check(CLI::PositiveNumber);
    cmd->add_option("--min-tissue", o->tissue.minCellFraction, "A grid cell holds tissue when its tissue fraction is >= this")
        ->default_val(d.minCellFraction)
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_flag("--json", o->json, "Print machine-readable JSON");
    cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
    cmd->callback([o] { run(*o); });
}

} // namespace nic::cli

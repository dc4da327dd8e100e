// nic info FILE — what a slide is: size, levels, resolution, vendor, associated images; or, for an HDF5
// file, what compressed slide or heatmap it holds (read through nic-probe first, core/base/untrustedfileprobe.h).
#include "commands.h"

#include "core/base/error.h"
#include "core/base/hdf5file.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/compression/latentgrid.h"
#include "core/slide/slide.h"
#include "core/base/untrustedfileprobe.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

namespace nic::cli {

namespace {

// A compressed slide or a heatmap. The probe says which one it is (and whether it is safe to open here)
// without this process parsing any of the file's HDF5 structure first.
void printHdf5Info(const std::string& path, bool json) {
    UntrustedFileProbe::check(UntrustedKind::Hdf5, path);
    const ProbeOutcome kind = UntrustedFileProbe::probe(UntrustedKind::Hdf5, path);
    nlohmann::ordered_json j;
    j["path"] = path;
    if (kind.message == "heatmap") {
        const HeatmapData h = readHeatmapFile(path);
        j["kind"] = "heatmap";
        j["rows"] = h.rows;
        j["cols"] = h.cols;
        j["cell_size"] = h.cellSize;
        j["level0_width"] = h.level0Width;
        j["level0_height"] = h.level0Height;
        j["slide_file"] = h.slideFile;
        j["model"] = h.model;
    } else {
        const LatentGridMeta m = readLatentGridMeta(path);
        j["kind"] = "compressed slide";
        j["rows"] = m.rows;
        j["cols"] = m.cols;
        j["code_size"] = m.codeSize;
        j["encoder"] = m.encoderName;
        j["patch_size"] = m.patchSize;
        j["stride"] = m.stride;
        j["level0_width"] = m.level0Width;
        j["level0_height"] = m.level0Height;
        j["slide_file"] = m.slideFile;
        j["augment"] = m.augment;
    }
    if (json) {
        std::cout << j.dump(2) << '\n';
        return;
    }
    for (const auto& [k, v] : j.items())
        std::printf("%-14s %s\n", (k + ":").c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
}

void printInfo(const std::string& path, bool json, bool properties) {
    if (Hdf5File::isHdf5(path)) {
        printHdf5Info(path, json);
        return;
    }
    const Slide slide(path);
    const auto& res = slide.resolution();
    if (json) {
        nlohmann::ordered_json j;
        j["path"] = path;
        j["vendor"] = slide.vendor();
        j["width"] = slide.width();
        j["height"] = slide.height();
        if (res) {
            j["mpp_x"] = res->mppX;
            j["mpp_y"] = res->mppY;
            j["mpp_source"] = res->source;
        } else {
            j["mpp_x"] = nullptr;
            j["mpp_y"] = nullptr;
            j["mpp_source"] = "unknown";
            if (!slide.resolutionNote().empty())
                j["mpp_note"] = slide.resolutionNote();
        }
        if (auto power = slide.objectivePower())
            j["objective_power"] = *power;
        else
            j["objective_power"] = nullptr;
        auto levels = nlohmann::ordered_json::array();
        for (const auto& l : slide.levels())
            levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
        j["levels"] = levels;
        auto assoc = nlohmann::ordered_json::object();
        for (const auto& [name, size] : slide.associatedImages())
            assoc[name] = {{"width", size.first}, {"height", size.second}};
        j["associated_images"] = assoc;
        j["quickhash"] = slide.quickHash();
        if (properties)
            j["properties"] = slide.properties();
        std::cout << j.dump(2) << '\n';
        return;
    }
    std::printf("file:        %s\n", path.c_str());
    std::printf("vendor:      %s\n", slide.vendor().c_str());
    std::printf("size:        %lld x %lld px\n", static_cast<long long>(slide.width()),
                static_cast<long long>(slide.height()));
    if (res)
        std::printf("mpp:         %.6g x %.6g um/px (from %s)\n", res->mppX, res->mppY, res->source.c_str());
    else
    {
        std::printf("mpp:         unknown (pass --mpp to commands that need a physical resolution)\n");
        if (!slide.resolutionNote().empty())
            std::printf("             %s\n", slide.resolutionNote().c_str());
    }
    if (auto power = slide.objectivePower())
        std::printf("objective:   %gx\n", *power);
    std::printf("levels:      %d\n", slide.levelCount());
    for (int i = 0; i < slide.levelCount(); ++i) {
        const auto& l = slide.level(i);
        std::printf("  level %d:   %lld x %lld px, downsample %.4g\n", i, static_cast<long long>(l.width),
                    static_cast<long long>(l.height), l.downsample);
    }
    if (slide.associatedImages().empty()) {
        std::printf("associated:  none\n");
    } else {
        std::printf("associated:  %zu\n", slide.associatedImages().size());
        for (const auto& [name, size] : slide.associatedImages())
            std::printf("  %-10s %lld x %lld px\n", (name + ":").c_str(), static_cast<long long>(size.first),
                        static_cast<long long>(size.second));
    }
    if (!slide.quickHash().empty())
        std::printf("quickhash:   %s\n", slide.quickHash().c_str());
    if (properties) {
        std::printf("properties:\n");
        for (const auto& [k, v] : slide.properties())
            std::printf("  %s = %s\n", k.c_str(), v.c_str());
    }
}

} // namespace

void addInfoCommand(CLI::App& root) {
    auto* cmd = root.add_subcommand("info", "Describe a slide (size, pyramid levels, resolution (mpp), vendor, "
                                            "associated images) or a compressed slide / heatmap (.h5)");
    struct Options {
        std::string slide;
        bool json = false;
        bool properties = false;
    };
    auto opts = std::make_shared<Options>();
    cmd->add_option("SLIDE", opts->slide, "Slide file (any format OpenSlide reads), or an HDF5 compressed slide or heatmap")->required();
    cmd->add_flag("--json", opts->json, "Print machine-readable JSON");
    cmd->add_flag("--properties", opts->properties, "Also list every OpenSlide property");
    cmd->callback([opts] { printInfo(opts->slide, opts->json, opts->properties); });
}

} // namespace nic::cli

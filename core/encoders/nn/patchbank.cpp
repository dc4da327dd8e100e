#include "core/encoders/nn/patchbank.h"

#include "core/annotations/annotationraster.h"
#include "core/base/atomicfile.h"
#include "core/base/csv.h"
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/slide/resample.h"
#include "core/slide/slide.h"
#include "core/slide/tissue.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

namespace nic {

namespace {
constexpr char kMagic[8] = {'N', 'I', 'C', 'B', 'A', 'N', 'K', '1'};
constexpr int kMaxBankPatchSize = 4096; // far above the paper's 128; keeps patchBytes() in range
}

PatchBank::PatchBank(int patchSize) : patchSize_(patchSize) {
    if (patchSize <= 0)
        throw InvalidArgument("patch bank: patch size must be positive");
}

Image PatchBank::image(std::size_t i) const {
    Image im(patchSize_, patchSize_, 3);
    std::memcpy(im.pixels.data(), patch(i), patchBytes());
    return im;
}

int PatchBank::classIndex(const std::string& name) {
    auto it = std::find(classNames_.begin(), classNames_.end(), name);
    if (it != classNames_.end())
        return static_cast<int>(it - classNames_.begin());
    classNames_.push_back(name);
    return static_cast<int>(classNames_.size() - 1);
}

int PatchBank::sourceIndex(const std::string& name) {
    auto it = std::find(sourceNames_.begin(), sourceNames_.end(), name);
    if (it != sourceNames_.end())
        return static_cast<int>(it - sourceNames_.begin());
    sourceNames_.push_back(name);
    return static_cast<int>(sourceNames_.size() - 1);
}

void PatchBank::add(const Image& patch, int label, int source, int col, int row) {
    if (patch.width != patchSize_ || patch.height != patchSize_ || patch.channels != 3)
        throw InvalidArgument("patch bank holds " + std::to_string(patchSize_) + "x" + std::to_string(patchSize_) +
                              " RGB patches, got " + std::to_string(patch.width) + "x" + std::to_string(patch.height) +
                              "x" + std::to_string(patch.channels));
    add(patch.pixels.data(), label, source, col, row);
}

void PatchBank::add(const std::uint8_t* nhwc, int label, int source, int col, int row) {
    if (patchSize_ <= 0)
        throw InvalidArgument("patch bank has no patch size");
    pixels_.insert(pixels_.end(), nhwc, nhwc + patchBytes());
    labels_.push_back(label);
    sources_.push_back(source);
    cols_.push_back(col);
    rows_.push_back(row);
}

PatchBank PatchBank::subset(const std::vector<std::size_t>& indices) const {
    PatchBank out(patchSize_);
    out.classNames_ = classNames_;
    out.sourceNames_ = sourceNames_;
    out.pixels_.reserve(indices.size() * patchBytes());
    for (auto i : indices) {
        if (i >= size())
            throw InvalidArgument("patch bank subset: index out of range");
        out.add(patch(i), labels_[i], sources_[i], cols_[i], rows_[i]);
    }
    return out;
}

std::pair<PatchBank, PatchBank> PatchBank::split(double fraction, std::uint64_t seed) const {
    if (!(fraction >= 0.0 && fraction <= 1.0))
        throw InvalidArgument("split fraction must be in [0, 1]");
    std::map<int, std::vector<std::size_t>> byLabel;
    for (std::size_t i = 0; i < size(); ++i)
        byLabel[labels_[i]].push_back(i);
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> rest, part;
    for (auto& [label, idx] : byLabel) {
        std::shuffle(idx.begin(), idx.end(), rng);
        const auto n = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(idx.size())));
        part.insert(part.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n));
        rest.insert(rest.end(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end());
    }
    std::sort(rest.begin(), rest.end());
    std::sort(part.begin(), part.end());
    return {subset(rest), subset(part)};
}

std::size_t PatchBank::knownSourceCount() const {
    std::set<int> seen;
    for (auto s : sources_) {
        if (s < 0)
            return 0;
        seen.insert(s);
    }
    return seen.size();
}

std::pair<PatchBank, PatchBank> PatchBank::splitBySource(double fraction, std::uint64_t seed) const {
    if (!(fraction >= 0.0 && fraction <= 1.0))
        throw InvalidArgument("split fraction must be in [0, 1]");
    std::map<int, std::vector<std::size_t>> bySource;
    int maxLabel = -1;
    for (std::size_t i = 0; i < size(); ++i) {
        if (sources_[i] < 0)
            throw InvalidArgument("cannot split the bank by source: patch " + std::to_string(i) + " has no source");
        bySource[sources_[i]].push_back(i);
        maxLabel = std::max(maxLabel, labels_[i]);
    }
    if (bySource.size() < 2)
        throw InvalidArgument("cannot split the bank by source: all its patches come from one source");
    // Class counts per source; bucket 0 holds unlabelled patches.
    const auto buckets = static_cast<std::size_t>(maxLabel + 2);
    std::vector<double> target(buckets, 0.0);
    std::map<int, std::vector<double>> counts;
    for (const auto& [src, idx] : bySource) {
        auto& c = counts[src];
        c.assign(buckets, 0.0);
        for (auto i : idx)
            c[static_cast<std::size_t>(labels_[i] + 1)] += 1.0;
        for (std::size_t b = 0; b < buckets; ++b)
            target[b] += fraction * c[b];
    }
    std::vector<int> order;
    for (const auto& kv : bySource)
        order.push_back(kv.first);
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<double> part(buckets, 0.0);
    const auto distance = [&](const std::vector<double>& v, const std::vector<double>* plus) {
        double d = 0.0;
        for (std::size_t b = 0; b < buckets; ++b)
            d += std::abs(v[b] + (plus ? (*plus)[b] : 0.0) - target[b]);
        return d;
    };
    std::set<int> inPart;
    for (int src : order)
        if (distance(part, &counts[src]) < distance(part, nullptr)) {
            inPart.insert(src);
            for (std::size_t b = 0; b < buckets; ++b)
                part[b] += counts[src][b];
        }
    if (inPart.empty())
        inPart.insert(order.front());
    if (inPart.size() == order.size())
        inPart.erase(order.back());
    std::vector<std::size_t> rest, held;
    for (std::size_t i = 0; i < size(); ++i)
        (inPart.count(sources_[i]) ? held : rest).push_back(i);
    return {subset(rest), subset(held)};
}

PatchBank PatchBank::balanced(std::uint64_t seed) const {
    if (classNames_.empty())
        throw InvalidArgument("cannot balance the bank: it has no classes (unlabelled patches)");
    std::vector<std::vector<std::size_t>> byLabel(classNames_.size());
    for (std::size_t i = 0; i < size(); ++i) {
        if (labels_[i] < 0 || static_cast<std::size_t>(labels_[i]) >= classNames_.size())
            throw InvalidArgument("cannot balance the bank: patch " + std::to_string(i) + " is unlabelled");
        byLabel[static_cast<std::size_t>(labels_[i])].push_back(i);
    }
    std::size_t keep = size();
    for (std::size_t c = 0; c < byLabel.size(); ++c) {
        if (byLabel[c].empty())
            throw InvalidArgument("cannot balance the bank: class '" + classNames_[c] + "' has no patches");
        keep = std::min(keep, byLabel[c].size());
    }
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> kept;
    for (auto& idx : byLabel) {
        std::shuffle(idx.begin(), idx.end(), rng);
        kept.insert(kept.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(keep));
    }
    std::sort(kept.begin(), kept.end());
    return subset(kept);
}

std::vector<std::size_t> PatchBank::labelCounts() const {
    std::vector<std::size_t> counts(classNames_.size(), 0);
    for (auto l : labels_)
        if (l >= 0) {
            if (static_cast<std::size_t>(l) >= counts.size())
                counts.resize(static_cast<std::size_t>(l) + 1, 0);
            ++counts[static_cast<std::size_t>(l)];
        }
    return counts;
}

void PatchBank::save(const std::filesystem::path& path) const {
    nlohmann::json h;
    h["patch_size"] = patchSize_;
    h["count"] = size();
    h["class_names"] = classNames_;
    h["sources"] = sourceNames_;
    const std::string header = h.dump();
    AtomicFile file(path);
    {
        std::ofstream out(file.tempPath(), std::ios::binary);
        if (!out)
            throw IoError(path.string() + ": cannot create patch bank file");
        const std::uint64_t len = header.size();
        out.write(kMagic, sizeof kMagic);
        out.write(reinterpret_cast<const char*>(&len), sizeof len);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        for (const auto* v : {&labels_, &sources_, &cols_, &rows_})
            out.write(reinterpret_cast<const char*>(v->data()), static_cast<std::streamsize>(v->size() * sizeof(std::int32_t)));
        out.write(reinterpret_cast<const char*>(pixels_.data()), static_cast<std::streamsize>(pixels_.size()));
        out.flush();
        if (!out)
            throw IoError(path.string() + ": write failed (disk full?)");
    }
    file.commit();
}

PatchBank PatchBank::load(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot open patch bank (missing or unreadable)");
    std::error_code ec;
    const std::uintmax_t fileSize = std::filesystem::file_size(path, ec);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    if (!in || std::memcmp(magic, kMagic, sizeof kMagic) != 0)
        throw FormatError(path.string() + ": not a patch bank (bad signature)");
    std::uint64_t len = 0;
    in.read(reinterpret_cast<char*>(&len), sizeof len);
    if (!in || len > (1U << 26))
        throw FormatError(path.string() + ": patch bank header is damaged");
    std::string header(len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(len));
    PatchBank bank;
    std::size_t count = 0;
    try {
        const auto h = nlohmann::json::parse(header);
        bank.patchSize_ = h.at("patch_size").get<int>();
        count = h.at("count").get<std::size_t>();
        bank.classNames_ = h.at("class_names").get<std::vector<std::string>>();
        bank.sourceNames_ = h.at("sources").get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(path.string() + ": patch bank header is damaged: " + e.what());
    }
    if (bank.patchSize_ <= 0 || bank.patchSize_ > kMaxBankPatchSize)
        throw FormatError(path.string() + ": patch bank header is damaged: bad patch size");
    // A count the file cannot hold is refused before anything is allocated for it.
    const std::uintmax_t perPatch = 4 * sizeof(std::int32_t) + bank.patchBytes();
    if (!ec && count > (fileSize - std::min<std::uintmax_t>(fileSize, 16 + len)) / perPatch)
        throw FormatError(path.string() + ": patch bank is truncated");
    for (auto* v : {&bank.labels_, &bank.sources_, &bank.cols_, &bank.rows_}) {
        v->resize(count);
        in.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(count * sizeof(std::int32_t)));
    }
    bank.pixels_.resize(count * bank.patchBytes());
    in.read(reinterpret_cast<char*>(bank.pixels_.data()), static_cast<std::streamsize>(bank.pixels_.size()));
    if (!in)
        throw FormatError(path.string() + ": patch bank is truncated");
    return bank;
}

PatchBank patchBankFromFolder(const std::filesystem::path& folder, int patchSize, JobContext& ctx,
                              const std::filesystem::path& labelsCsv) {
    const auto csvPath = labelsCsv.empty() ? folder / "labels.csv" : labelsCsv;
    std::ifstream in(csvPath, std::ios::binary);
    if (!in)
        throw IoError(csvPath.string() + ": cannot open labels file (expected 'file,label' lines)");
    std::ostringstream text;
    text << in.rdbuf();
    std::vector<std::pair<std::string, std::string>> rows;
    for (auto& r : parseCsv(text.str(), csvPath.string())) {
        if (r.fields.size() < 2)
            throw FormatError(csvPath.string() + ":" + std::to_string(r.line) + ": expected 'file,label'");
        // An unquoted file name may hold commas: the label is the last field.
        std::string label = std::move(r.fields.back());
        r.fields.pop_back();
        std::string file;
        for (const auto& f : r.fields)
            file += (file.empty() ? "" : ",") + f;
        if (rows.empty() && r.line == 1 && file == "file" && label == "label")
            continue;
        rows.emplace_back(std::move(file), std::move(label));
    }
    if (rows.empty())
        throw FormatError(csvPath.string() + ": no labelled images");
    std::set<std::string> names;
    for (const auto& r : rows)
        names.insert(r.second);
    std::vector<std::string> classes(names.begin(), names.end());
    const bool numeric = std::all_of(classes.begin(), classes.end(), [](const std::string& s) {
        return !s.empty() && s.size() < 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    });
    if (numeric)
        std::sort(classes.begin(), classes.end(), [](const std::string& a, const std::string& b) { return std::stol(a) < std::stol(b); });

    PatchBank bank(patchSize);
    bank.setClassNames(classes);
    const int source = bank.sourceIndex(folder.string());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        ctx.throwIfCancelled();
        Image im = readImage(folder / rows[i].first, 3);
        if (im.width != patchSize || im.height != patchSize)
            im = resize(im, patchSize, patchSize);
        const int label = static_cast<int>(std::find(classes.begin(), classes.end(), rows[i].second) - classes.begin());
        bank.add(im, label, source);
        ctx.progress(static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(rows.size()), "reading patches");
    }
    return bank;
}

std::vector<std::pair<int, int>> sampleCellsWithNeighbours(const std::vector<std::pair<int, int>>& cells, int maxCells,
                                                           std::mt19937_64& rng) {
    std::vector<std::pair<int, int>> out;
    const auto byRowCol = [](const std::pair<int, int>& a, const std::pair<int, int>& b) {
        return std::tie(a.second, a.first) < std::tie(b.second, b.first);
    };
    if (maxCells <= 0 || cells.size() <= static_cast<std::size_t>(maxCells)) {
        out = cells;
        std::sort(out.begin(), out.end(), byRowCol);
        return out;
    }
    const std::set<std::pair<int, int>> eligible(cells.begin(), cells.end());
    std::set<std::pair<int, int>> taken;
    const auto neighboursOf = [&](const std::pair<int, int>& c) {
        std::vector<std::pair<int, int>> nb;
        for (auto [dc, dr] : {std::pair{1, 0}, std::pair{-1, 0}, std::pair{0, 1}, std::pair{0, -1}}) {
            const std::pair<int, int> n{c.first + dc, c.second + dr};
            if (eligible.count(n))
                nb.push_back(n);
        }
        return nb;
    };
    std::vector<std::pair<int, int>> order = cells;
    std::shuffle(order.begin(), order.end(), rng);
    auto remaining = static_cast<std::size_t>(maxCells);
    for (const auto& c : order) {
        if (remaining == 0)
            break;
        if (taken.count(c))
            continue;
        const auto nb = neighboursOf(c);
        if (nb.empty())
            continue; // an isolated cell cannot give an adjacent pair
        const bool touchesKept = std::any_of(nb.begin(), nb.end(), [&](const auto& n) { return taken.count(n) > 0; });
        std::vector<std::pair<int, int>> group{c};
        for (const auto& n : nb)
            if (!taken.count(n))
                group.push_back(n);
        if (remaining == 1 && !touchesKept)
            continue; // alone it would have no kept neighbour; a later cell may touch a kept one
        for (std::size_t k = 0; k < group.size() && remaining > 0; ++k, --remaining) {
            taken.insert(group[k]);
            out.push_back(group[k]);
        }
    }
    // Only isolated cells (or none that fits) are left: fill up with them.
    for (const auto& c : order) {
        if (remaining == 0)
            break;
        if (taken.insert(c).second) {
            out.push_back(c);
            --remaining;
        }
    }
    std::sort(out.begin(), out.end(), byRowCol);
    return out;
}

PatchBank patchBankFromSlides(const std::vector<SlideBankSource>& slides, const SlideBankOptions& o, JobContext& ctx) {
    PatchBank bank(o.grid.patchSize);
    if (o.labelled)
        bank.setClassNames({"normal", "tumor"});
    struct Cell {
        int col, row, label;
    };
    std::vector<std::vector<Cell>> perSlide(slides.size());
    std::size_t total = 0, eligibleTotal = 0, alone = 0;
    std::mt19937_64 rng(o.seed);
    for (std::size_t s = 0; s < slides.size(); ++s) {
        ctx.throwIfCancelled();
        const Slide slide(slides[s].slide.string());
        const PatchGrid grid(slide, o.grid, o.slideMpp);
        const TissueMask mask = detectTissue(slide, TissueOptions{}, o.slideMpp);
        const auto tissue = tissueFractionPerCell(mask, grid);
        std::vector<float> cover;
        if (o.labelled && !slides[s].annotations.empty()) {
            const auto set = AnnotationSet::load(slides[s].annotations);
            cover = coverage(set, o.groups, 0.0, 0.0, static_cast<double>(o.grid.stride) * grid.factor(), grid.cols(),
                             grid.rows());
        }
        auto& cells = perSlide[s];
        for (int r = 0; r < grid.rows(); ++r)
            for (int c = 0; c < grid.cols(); ++c) {
                const auto i = static_cast<std::size_t>(r) * static_cast<std::size_t>(grid.cols()) + static_cast<std::size_t>(c);
                if (tissue[i] < o.minTissue)
                    continue;
                int label = -1;
                if (o.labelled) {
                    const float cv = cover.empty() ? 0.0f : cover[i];
                    if (cv >= o.tumorCoverage)
                        label = 1;
                    else if (cv <= 0.0f)
                        label = 0;
                    else
                        continue;
                }
                cells.push_back({c, r, label});
            }
        eligibleTotal += cells.size();
        if (o.keepNeighbours && o.maxPerSlide > 0 && cells.size() > static_cast<std::size_t>(o.maxPerSlide)) {
            std::map<std::pair<int, int>, int> labelOf;
            std::vector<std::pair<int, int>> at;
            for (const auto& cell : cells) {
                labelOf[{cell.col, cell.row}] = cell.label;
                at.emplace_back(cell.col, cell.row);
            }
            cells.clear();
            for (const auto& [c, r] : sampleCellsWithNeighbours(at, o.maxPerSlide, rng))
                cells.push_back({c, r, labelOf.at({c, r})});
        } else if (o.maxPerSlide > 0 && cells.size() > static_cast<std::size_t>(o.maxPerSlide)) {
            std::shuffle(cells.begin(), cells.end(), rng);
            cells.resize(static_cast<std::size_t>(o.maxPerSlide));
            std::sort(cells.begin(), cells.end(), [](const Cell& a, const Cell& b) { return std::tie(a.row, a.col) < std::tie(b.row, b.col); });
        }
        total += cells.size();
        std::set<std::pair<int, int>> kept;
        for (const auto& cell : cells)
            kept.insert({cell.col, cell.row});
        for (const auto& cell : cells)
            if (!kept.count({cell.col + 1, cell.row}) && !kept.count({cell.col - 1, cell.row}) &&
                !kept.count({cell.col, cell.row + 1}) && !kept.count({cell.col, cell.row - 1}))
                ++alone;
    }
    ctx.log("kept " + std::to_string(total) + " of " + std::to_string(eligibleTotal) + " eligible cells from " +
            std::to_string(slides.size()) + " slides" +
            (o.maxPerSlide > 0 && o.keepNeighbours ? " (random anchors with their 4-neighbours)" : "") + "; " +
            std::to_string(alone) + " without a kept 4-neighbour");
    std::size_t done = 0;
    for (std::size_t s = 0; s < slides.size(); ++s) {
        const Slide slide(slides[s].slide.string());
        const PatchGrid grid(slide, o.grid, o.slideMpp);
        const int source = bank.sourceIndex(slides[s].slide.string());
        for (const auto& cell : perSlide[s]) {
            ctx.throwIfCancelled();
            bank.add(grid.readPatch(slide, cell.col, cell.row), cell.label, source, cell.col, cell.row);
            ctx.progress(static_cast<std::int64_t>(++done), static_cast<std::int64_t>(total), "reading patches");
        }
    }
    return bank;
}

} // namespace nic

#include "core/slidelearning/cohort.h"

#include "core/compression/compressor.h"
#include "core/base/csv.h"
#include "core/base/error.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace nic {

namespace {

bool parseDouble(const std::string& s, double& out) {
    const auto v = parseCsvNumber(s);
    if (v)
        out = *v;
    return v.has_value();
}

} // namespace

double CohortEntry::labelValue() const {
    double v = 0;
    if (!parseDouble(label, v))
        throw FormatError((file.empty() ? std::string() : file + ":") + std::to_string(line) + ": label '" + label +
                          "' of slide " + slide.filename().string() + " is not a number");
    return v;
}

std::vector<std::filesystem::path> Cohort::slides() const {
    std::vector<std::filesystem::path> out;
    out.reserve(entries.size());
    for (const auto& e : entries)
        out.push_back(e.slide);
    return out;
}

Cohort parseCohort(const std::string& text, const std::filesystem::path& file, const std::filesystem::path& baseDir) {
    const std::string name = file.string();
    Cohort cohort;
    cohort.file = file;
    const auto records = parseCsv(text, name);
    std::size_t i = 0;
    if (i == records.size())
        throw FormatError(name + ": empty cohort file (expected a header row with columns slide,label)");
    const CsvRecord& header = records[i++];
    cohort.columns = header.fields;
    int slideCol = -1, labelCol = -1, scoreCol = -1, foldCol = -1;
    std::set<std::string> seen;
    for (std::size_t c = 0; c < header.fields.size(); ++c) {
        const std::string& h = header.fields[c];
        if (!seen.insert(h).second)
            throw FormatError(name + ":" + std::to_string(header.line) + ": duplicate column '" + h + "'");
        const int ci = static_cast<int>(c);
        if (h == "slide")
            slideCol = ci;
        else if (h == "label")
            labelCol = ci;
        else if (h == "score")
            scoreCol = ci;
        else if (h == "fold")
            foldCol = ci;
    }
    if (slideCol < 0 || labelCol < 0)
        throw FormatError(name + ":" + std::to_string(header.line) + ": header must name columns 'slide' and " +
                              "'label' (found: " + [&] {
                                  std::string s;
                                  for (const auto& h : header.fields)
                                      s += (s.empty() ? "" : ",") + h;
                                  return s;
                              }() + ")");
    std::set<std::filesystem::path> slides;
    for (; i < records.size(); ++i) {
        const CsvRecord& r = records[i];
        const std::string where = name + ":" + std::to_string(r.line) + ": ";
        if (r.fields.size() != header.fields.size())
            throw FormatError(where + std::to_string(r.fields.size()) + " fields, the header has " +
                                  std::to_string(header.fields.size()));
        CohortEntry e;
        e.line = r.line;
        e.file = name;
        const std::string& slide = r.fields[static_cast<std::size_t>(slideCol)];
        if (slide.empty())
            throw FormatError(where + "empty slide path");
        std::filesystem::path p(slide);
        e.slide = p.is_absolute() ? p : (baseDir / p).lexically_normal();
        if (!slides.insert(e.slide).second)
            throw FormatError(where + "slide " + slide + " is listed twice");
        e.label = r.fields[static_cast<std::size_t>(labelCol)];
        if (e.label.empty())
            throw FormatError(where + "empty label for slide " + slide);
        if (scoreCol >= 0 && !r.fields[static_cast<std::size_t>(scoreCol)].empty()) {
            double v = 0;
            if (!parseDouble(r.fields[static_cast<std::size_t>(scoreCol)], v))
                throw FormatError(where + "score '" + r.fields[static_cast<std::size_t>(scoreCol)] +
                                      "' is not a number");
            e.score = v;
        }
        if (foldCol >= 0 && !r.fields[static_cast<std::size_t>(foldCol)].empty()) {
            double v = 0;
            const std::string& f = r.fields[static_cast<std::size_t>(foldCol)];
            if (!parseDouble(f, v) || v < 0 || v != std::floor(v) || v > 1e6)
                throw FormatError(where + "fold '" + f + "' is not an integer >= 0");
            e.fold = static_cast<int>(v);
        }
        for (std::size_t c = 0; c < header.fields.size(); ++c) {
            const int ci = static_cast<int>(c);
            if (ci != slideCol && ci != labelCol && ci != scoreCol && ci != foldCol)
                e.extra[header.fields[c]] = r.fields[c];
        }
        cohort.entries.push_back(std::move(e));
    }
    return cohort;
}

CohortTarget parseCohortTarget(const std::string& text) {
    if (text == "auto")
        return CohortTarget::Auto;
    if (text == "label")
        return CohortTarget::Label;
    if (text == "score")
        return CohortTarget::Score;
    throw InvalidArgument("--target must be auto, label or score (got '" + text + "')");
}

CohortGrids resolveCohortGrids(const Cohort& cohort, const std::filesystem::path& gridsDir,
                               const CohortGridOptions& options) {
    if (cohort.entries.empty())
        throw FormatError(cohort.file.string() + ": the cohort lists no slides");
    const auto all = [&](auto has) { return std::all_of(cohort.entries.begin(), cohort.entries.end(), has); };
    CohortGrids out;
    out.usesScore = options.target == CohortTarget::Score ||
                    (options.target == CohortTarget::Auto && options.regression &&
                     all([](const CohortEntry& e) { return e.score.has_value(); }));
    const bool foldColumn = !options.ignoreFoldColumn && all([](const CohortEntry& e) { return e.fold.has_value(); });
    std::vector<std::string> missing;
    for (const auto& e : cohort.entries) {
        const auto grid = compressedPathFor(e.slide, gridsDir);
        std::error_code ec;
        if (!std::filesystem::exists(grid, ec)) {
            missing.push_back(grid.string());
            continue;
        }
        out.grids.push_back(grid);
        if (out.usesScore) {
            if (!e.score)
                throw FormatError(cohort.file.string() + ":" + std::to_string(e.line) + ": no score for " +
                                  e.slide.string());
            out.labels.push_back(*e.score);
        } else {
            out.labels.push_back(e.labelValue());
            if (!options.regression && out.labels.back() != 0.0 && out.labels.back() != 1.0)
                throw FormatError(cohort.file.string() + ":" + std::to_string(e.line) + ": label '" + e.label +
                                  "' of slide " + e.slide.filename().string() +
                                  " is not 0 or 1 (classification; use --task regress for continuous labels)");
        }
        if (foldColumn)
            out.folds.push_back(*e.fold);
    }
    if (!missing.empty()) {
        std::string msg = std::to_string(missing.size()) + " slide(s) of the cohort have no compressed grid in " +
                          gridsDir.string() + " (run nic compress first):";
        for (std::size_t i = 0; i < std::min<std::size_t>(missing.size(), 5); ++i)
            msg += "\n  " + missing[i];
        throw Error(msg);
    }
    // What cross-validation would refuse about these values is worded here, where the file is known.
    if (foldColumn) {
        const std::set<int> distinct(out.folds.begin(), out.folds.end());
        if (distinct.size() < 3)
            throw FormatError(cohort.file.string() + ": the fold column has " + std::to_string(distinct.size()) +
                              " distinct value(s); cross-validation needs at least 3 (or use --ignore-fold-column)");
    }
    if (!options.regression && !out.usesScore &&
        std::adjacent_find(out.labels.begin(), out.labels.end(), std::not_equal_to<>()) == out.labels.end())
        throw FormatError(cohort.file.string() + ": every slide has label " +
                          (out.labels.front() == 1.0 ? std::string("1") : std::string("0")) +
                          "; classification needs both classes");
    out.subsets = evaluationSubsets(cohort);
    return out;
}

Cohort readCohort(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot read cohort file: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parseCohort(ss.str(), path, path.parent_path());
}

} // namespace nic

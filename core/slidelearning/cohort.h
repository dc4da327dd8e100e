#pragma once
// A cohort: the CSV that lists slides with their slide-level labels (DESIGN.md "Files users keep").
//
// Format: a header row, then one row per slide. Columns `slide` and `label` are required; `score`
// (a number) and `fold` (an integer ≥ 0) are optional; any other column is kept as text in `extra`.
// Fields may be quoted ("a,b", "" for a quote), CRLF line ends are fine, blank lines and lines
// starting with '#' are ignored. Relative slide paths are resolved against the CSV's directory.
#include "core/slidelearning/evaluationsets.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nic {

/// One row of a cohort CSV.
struct CohortEntry {
    std::filesystem::path slide;   ///< resolved (absolute, or relative to the working directory)
    std::string label;             ///< as written ("0", "1", "tumor", "0.73", ...)
    std::optional<double> score;
    std::optional<int> fold;
    std::map<std::string, std::string> extra; ///< other columns by header name
    int line = 0;                  ///< 1-based line number in the file (for messages)
    std::string file;              ///< the cohort file, as named in messages

    /// The label as a number; throws FormatError "<file>:<line>: label 'x' of slide s is not a number".
    double labelValue() const;
};

/// A parsed cohort file.
struct Cohort {
    std::filesystem::path file;
    std::vector<std::string> columns;
    std::vector<CohortEntry> entries;

    std::vector<std::filesystem::path> slides() const;
};

/// Reads a cohort CSV. Throws IoError when the file cannot be read and FormatError with
/// "<file>:<line>: <cause>" for malformed content (missing column, wrong field count, bad number,
/// empty slide or label, unterminated quote, duplicate slide).
Cohort readCohort(const std::filesystem::path& path);

/// Which column a slide model learns: `label`, `score`, or Auto (score when regressing and every row
/// has one, else label).
enum class CohortTarget { Auto, Label, Score };
/// "auto", "label" or "score"; throws InvalidArgument.
CohortTarget parseCohortTarget(const std::string& text);

/// How resolveCohortGrids() reads a cohort.
struct CohortGridOptions {
    bool regression = false;          ///< the task (Auto target: score when regressing and every row has one)
    CohortTarget target = CohortTarget::Auto;
    bool ignoreFoldColumn = false;    ///< assign folds afresh even when every row has a fold
};

/// A cohort resolved to its compressed slides: what training, cross-validation and the cluster path take.
struct CohortGrids {
    std::vector<std::filesystem::path> grids; ///< compressedPathFor(slide, gridsDir), in cohort order
    std::vector<double> labels;               ///< the learned value per slide
    std::vector<int> folds;                   ///< the cohort's fold column, or empty (folds assigned by the trainer)
    bool usesScore = false;                   ///< labels come from the score column
    std::vector<EvaluationSubset> subsets;    ///< from the `set` and `macro` columns (core/slidelearning/evaluationsets.h)
};

/// Resolves `cohort` against the folder of its compressed slides (`nic compress --out gridsDir`). Throws
/// FormatError naming the cohort file (and line) for an empty cohort, a label that is not a number or a
/// missing score, a classification label other than 0 or 1, a classification cohort of one class, a fold
/// column with fewer than 3 distinct values, and
/// Error "N slide(s) of the cohort have no compressed grid in DIR (run nic compress first):" listing up
/// to 5 of them when grids are missing.
CohortGrids resolveCohortGrids(const Cohort& cohort, const std::filesystem::path& gridsDir,
                               const CohortGridOptions& options = {});

/// Parses cohort CSV text; `file` names it in messages and `baseDir` resolves relative slide paths.
Cohort parseCohort(const std::string& text, const std::filesystem::path& file, const std::filesystem::path& baseDir);

} // namespace nic

#pragma once
// A cohort: the CSV that lists slides with their slide-level labels (DESIGN.md "Files users keep").
//
// Format: a header row, then one row per slide. Columns `slide` and `label` are required; `score`
// (a number) and `fold` (an integer ≥ 0) are optional; any other column is kept as text in `extra`.
// Fields may be quoted ("a,b", "" for a quote), CRLF line ends are fine, blank lines and lines
// starting with '#' are ignored. Relative slide paths are resolved against the CSV's directory.
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

    /// The label as a number; throws InvalidArgument naming the line when it is not one.
    double labelValue() const;
};

/// A parsed cohort file.
struct Cohort {
    std::filesystem::path file;
    std::vector<std::string> columns;
    std::vector<CohortEntry> entries;

    std::vector<std::filesystem::path> slides() const;
};

/// Reads a cohort CSV. Throws IoError when the file cannot be read and InvalidArgument with
/// "<file>:<line>: <cause>" for malformed content (missing column, wrong field count, bad number,
/// empty slide or label, unterminated quote, duplicate slide).
Cohort readCohort(const std::filesystem::path& path);

/// Parses cohort CSV text; `file` names it in messages and `baseDir` resolves relative slide paths.
Cohort parseCohort(const std::string& text, const std::filesystem::path& file, const std::filesystem::path& baseDir);

} // namespace nic

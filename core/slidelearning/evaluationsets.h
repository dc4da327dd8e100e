#pragma once
// Evaluation subsets of a cohort (paper §4.4, Table 2): besides "All" (every slide, each predicted by the
// cross-validation model that did not see it), a run is scored on named subsets that the cohort CSV marks:
//
//   column `set`   — each distinct non-empty value names the subset of the slides carrying it; the paper's
//                    "Test" set is the rows with set = test (for Camelyon16: the official test slides).
//   column `macro` — 0/1 on classification cohorts; adds the subset "macro": the slides of set "test" when
//                    the cohort has one, else every slide, with label 1 only where macro is 1 (the paper's
//                    "Macro": positives are only slides with a macro-metastasis, a lesion larger than 2 mm).
//                    A slide whose label is 0 must not have macro = 1.
//
// Subsets only change what is reported (metrics.json, the CLI's summary); training never sees them.
#include "core/slidelearning/metrics.h"

#include <cstddef>
#include <string>
#include <vector>

namespace nic {

struct Cohort;

struct EvaluationSubset {
    std::string name;                 ///< the `set` value ("test"), or "macro"
    std::vector<std::size_t> slides;  ///< indices into the cohort's rows (= the run's slide order)
    std::vector<double> labels;       ///< the label scored for each of those slides
};

/// The subsets the cohort's `set` and `macro` columns define, in order of first appearance ("macro" last).
/// Throws FormatError "<file>:<line>: …" for a macro value other than 0/1 or macro = 1 on a slide labelled 0.
std::vector<EvaluationSubset> evaluationSubsets(const Cohort& cohort);

/// One subset's score on held-out predictions.
struct SubsetScore {
    std::string name;
    std::size_t slides = 0;
    std::size_t positives = 0;        ///< classification
    std::size_t negatives = 0;
    ConfidenceInterval value;         ///< AUC (classification) or Spearman (regression), bootstrap CI; NaN when undefined
};

/// Scores every subset on `predictions` (one per cohort row, in cohort order): AUC with a bootstrap CI for
/// classification (NaN when a subset lacks a class), Spearman for regression (NaN under 3 slides).
std::vector<SubsetScore> scoreSubsets(const std::vector<EvaluationSubset>& subsets, const std::vector<double>& predictions,
                                      bool classification, int resamples, std::uint64_t seed);

} // namespace nic

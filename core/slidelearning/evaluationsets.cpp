#include "core/slidelearning/evaluationsets.h"

#include "core/slidelearning/cohort.h"
#include "core/base/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace nic {

std::vector<EvaluationSubset> evaluationSubsets(const Cohort& cohort) {
    std::vector<EvaluationSubset> out;
    const auto where = [&](const CohortEntry& e) { return cohort.file.string() + ":" + std::to_string(e.line) + ": "; };
    bool hasMacro = false;
    for (std::size_t i = 0; i < cohort.entries.size(); ++i) {
        const CohortEntry& e = cohort.entries[i];
        if (const auto it = e.extra.find("set"); it != e.extra.end() && !it->second.empty()) {
            auto subset = std::find_if(out.begin(), out.end(), [&](const EvaluationSubset& s) { return s.name == it->second; });
            if (subset == out.end())
                subset = out.insert(out.end(), EvaluationSubset{it->second, {}, {}});
            subset->slides.push_back(i);
            subset->labels.push_back(e.labelValue());
        }
        hasMacro = hasMacro || e.extra.count("macro") != 0;
    }
    if (!hasMacro)
        return out;
    const auto test = std::find_if(out.begin(), out.end(), [](const EvaluationSubset& s) { return s.name == "test"; });
    const bool onlyTest = test != out.end();
    EvaluationSubset macro{"macro", {}, {}};
    for (std::size_t i = 0; i < cohort.entries.size(); ++i) {
        const CohortEntry& e = cohort.entries[i];
        const auto set = e.extra.find("set");
        if (onlyTest && (set == e.extra.end() || set->second != "test"))
            continue;
        const auto m = e.extra.find("macro");
        const std::string value = m == e.extra.end() ? std::string() : m->second;
        if (value != "" && value != "0" && value != "1")
            throw FormatError(where(e) + "macro '" + value + "' of slide " + e.slide.filename().string() +
                              " is not 0 or 1");
        if (value == "1" && e.labelValue() == 0.0)
            throw FormatError(where(e) + "slide " + e.slide.filename().string() +
                              " has macro = 1 but label 0 (a macro-metastasis makes the slide positive)");
        macro.slides.push_back(i);
        macro.labels.push_back(value == "1" ? 1.0 : 0.0);
    }
    out.push_back(std::move(macro));
    return out;
}

std::vector<SubsetScore> scoreSubsets(const std::vector<EvaluationSubset>& subsets, const std::vector<double>& predictions,
                                      bool classification, int resamples, std::uint64_t seed) {
    std::vector<SubsetScore> out;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const EvaluationSubset& s : subsets) {
        SubsetScore score;
        score.name = s.name;
        score.slides = s.slides.size();
        std::vector<double> pred;
        for (std::size_t i : s.slides) {
            if (i >= predictions.size())
                throw InvalidArgument("evaluation subset '" + s.name + "' names slide " + std::to_string(i) + " of " +
                                      std::to_string(predictions.size()));
            pred.push_back(predictions[i]);
        }
        for (double l : s.labels)
            (l != 0.0 ? score.positives : score.negatives) += classification ? 1 : 0;
        const bool defined = classification ? (score.positives > 0 && score.negatives > 0) : pred.size() >= 3;
        if (!defined) {
            score.value = {nan, nan, nan, 0.95, resamples, 0};
        } else if (classification) {
            score.value = bootstrapAuc(pred, s.labels, resamples, seed);
        } else {
            score.value = bootstrapSpearman(pred, s.labels, resamples, seed);
        }
        out.push_back(std::move(score));
    }
    return out;
}

} // namespace nic

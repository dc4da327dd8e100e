#pragma once
// Evaluation metrics for slide-level predictions and heatmaps: ROC AUC with the ROC curve, Pearson and
// Spearman correlation, and percentile-bootstrap 95% confidence intervals that are reproducible under a
// seed. Plain C++ (no torch); all functions are pure and thread-safe.
//
// Conventions: a label is positive when it is > 0.5 (so 0/1 labels and 0/1 floats both work). Metrics
// that are undefined for the input (AUC with only one class, a correlation of a constant vector) return
// NaN rather than throwing, because they happen legitimately (a negative slide has no lesion pixels; a
// small validation fold can hold one class); callers report them as "undefined". Inputs that are wrong
// (sizes differ, a NaN score) throw InvalidArgument.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace nic {

/// One operating point of a ROC curve: predicting positive for every score >= threshold.
struct RocPoint {
    double fpr = 0.0;
    double tpr = 0.0;
    double threshold = 0.0; ///< +inf for the (0, 0) point
};

/// A ROC curve through (0,0) … (1,1) with one point per distinct score (ties form one diagonal step),
/// and the area under it (trapezoidal, which equals the Mann–Whitney U / (n₊·n₋) with ties counted ½).
struct RocCurve {
    double auc = 0.0; ///< NaN when there are no positives or no negatives
    std::vector<RocPoint> points;
    std::size_t positives = 0;
    std::size_t negatives = 0;
};

/// ROC curve of `scores` against `labels` (positive when > 0.5). Throws InvalidArgument when the sizes
/// differ or a score is NaN. With one class only, auc is NaN and points is empty.
RocCurve rocCurve(const std::vector<double>& scores, const std::vector<double>& labels);

/// The area under the ROC curve alone, O(n log n) (same conventions as rocCurve()).
double rocAuc(const std::vector<double>& scores, const std::vector<double>& labels);

/// 1-based ranks with ties given their average rank (the "fractional ranking" Spearman uses).
std::vector<double> averageRanks(const std::vector<double>& values);

/// Pearson's r. NaN when fewer than 2 values or either vector is constant. Throws InvalidArgument when
/// the sizes differ or a value is NaN.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

/// Spearman's ρ: Pearson's r of the average ranks (so ties are handled exactly). Same conventions as pearson().
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// A point estimate with a two-sided percentile-bootstrap confidence interval.
struct ConfidenceInterval {
    double estimate = 0.0;
    double lower = 0.0;
    double upper = 0.0;
    double level = 0.95;
    int resamples = 0;      ///< bootstrap resamples requested
    int validResamples = 0; ///< resamples where the statistic was defined (not NaN)
};

/// A statistic of the n items selected by `indices` (indices may repeat: a bootstrap resample).
using ResampledStatistic = std::function<double(const std::vector<std::size_t>& indices)>;

/// Percentile bootstrap: draws `resamples` resamples of size n with replacement (std::mt19937_64 seeded
/// with `seed`, so results are identical across runs), evaluates `statistic` on each, and returns the
/// (1−level)/2 and (1+level)/2 quantiles (linear interpolation) of the defined values; the estimate is
/// the statistic on the identity sample. Resamples where the statistic is NaN (e.g. one class only) are
/// skipped; if fewer than half are defined, lower and upper are NaN. Throws InvalidArgument for n == 0,
/// resamples < 1 or a level outside (0, 1).
ConfidenceInterval bootstrapCi(const ResampledStatistic& statistic, std::size_t n, int resamples = 2000,
                               std::uint64_t seed = 0, double level = 0.95);

/// Bootstrap CI of rocAuc (resampling slides, i.e. pairs of score and label).
ConfidenceInterval bootstrapAuc(const std::vector<double>& scores, const std::vector<double>& labels,
                                int resamples = 2000, std::uint64_t seed = 0, double level = 0.95);
/// Bootstrap CI of spearman / pearson (resampling pairs).
ConfidenceInterval bootstrapSpearman(const std::vector<double>& x, const std::vector<double>& y, int resamples = 2000,
                                     std::uint64_t seed = 0, double level = 0.95);
ConfidenceInterval bootstrapPearson(const std::vector<double>& x, const std::vector<double>& y, int resamples = 2000,
                                    std::uint64_t seed = 0, double level = 0.95);

/// Uniform integer in [0, n) from a 64-bit generator (e.g. std::mt19937_64), by rejection (no modulo
/// bias). Used instead of std::uniform_int_distribution, whose output differs between standard
/// libraries, so that seeded results are the same everywhere. n must be > 0.
template <class Rng>
std::uint64_t uniformIndex(Rng& rng, std::uint64_t n) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x = rng();
    while (x >= limit)
        x = rng();
    return x % n;
}

/// Uniform double in [0, 1) with 53 random bits (portable, see uniformIndex()).
template <class Rng>
double uniformUnit(Rng& rng) {
    return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

} // namespace nic

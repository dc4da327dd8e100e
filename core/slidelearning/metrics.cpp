#include "core/slidelearning/metrics.h"

#include "core/base/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

namespace nic {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void checkPair(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
    if (a.size() != b.size())
        throw InvalidArgument(std::string(what) + ": " + std::to_string(a.size()) + " scores but " +
                              std::to_string(b.size()) + " labels/values");
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::isnan(a[i]) || std::isnan(b[i]))
            throw InvalidArgument(std::string(what) + ": value " + std::to_string(i) + " is NaN");
}

// Linear-interpolation quantile (Hyndman & Fan type 7, numpy's default) of sorted values.
double quantileSorted(const std::vector<double>& sorted, double q) {
    const double pos = q * static_cast<double>(sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, sorted.size() - 1);
    const double frac = pos - static_cast<double>(lo);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

template <class Fn>
ConfidenceInterval pairBootstrap(const std::vector<double>& x, const std::vector<double>& y, int resamples,
                                 std::uint64_t seed, double level, Fn fn, const char* what) {
    checkPair(x, y, what);
    std::vector<double> xs;
    std::vector<double> ys;
    return bootstrapCi(
        [&](const std::vector<std::size_t>& idx) {
            xs.resize(idx.size());
            ys.resize(idx.size());
            for (std::size_t i = 0; i < idx.size(); ++i) {
                xs[i] = x[idx[i]];
                ys[i] = y[idx[i]];
            }
            return fn(xs, ys);
        },
        x.size(), resamples, seed, level);
}

} // namespace

RocCurve rocCurve(const std::vector<double>& scores, const std::vector<double>& labels) {
    checkPair(scores, labels, "ROC");
    RocCurve roc;
    for (double l : labels)
        (l > 0.5 ? roc.positives : roc.negatives) += 1;
    if (roc.positives == 0 || roc.negatives == 0) {
        roc.auc = kNaN;
        return roc;
    }
    std::vector<std::size_t> order(scores.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
    const double P = static_cast<double>(roc.positives);
    const double N = static_cast<double>(roc.negatives);
    roc.points.push_back({0.0, 0.0, std::numeric_limits<double>::infinity()});
    double tp = 0.0;
    double fp = 0.0;
    double area = 0.0;
    for (std::size_t i = 0; i < order.size();) {
        const double s = scores[order[i]];
        double dtp = 0.0;
        double dfp = 0.0;
        for (; i < order.size() && scores[order[i]] == s; ++i)
            (labels[order[i]] > 0.5 ? dtp : dfp) += 1.0;
        // Trapezoid under the step from (fp, tp) to (fp + dfp, tp + dtp): ties count one half.
        area += dfp * (tp + 0.5 * dtp);
        tp += dtp;
        fp += dfp;
        roc.points.push_back({fp / N, tp / P, s});
    }
    roc.auc = area / (P * N);
    return roc;
}

double rocAuc(const std::vector<double>& scores, const std::vector<double>& labels) {
    return rocCurve(scores, labels).auc;
}

std::vector<double> averageRanks(const std::vector<double>& values) {
    std::vector<std::size_t> order(values.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
    std::vector<double> ranks(values.size());
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]])
            ++j;
        // Positions i..j (0-based) share the mean of the 1-based ranks i+1..j+1.
        const double rank = 0.5 * static_cast<double>(i + j) + 1.0;
        for (std::size_t k = i; k <= j; ++k)
            ranks[order[k]] = rank;
        i = j + 1;
    }
    return ranks;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
    checkPair(x, y, "Pearson");
    const std::size_t n = x.size();
    if (n < 2)
        return kNaN;
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
    double sxy = 0.0;
    double sxx = 0.0;
    double syy = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double dx = x[i] - mx;
        const double dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx <= 0.0 || syy <= 0.0)
        return kNaN;
    return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
    checkPair(x, y, "Spearman");
    return pearson(averageRanks(x), averageRanks(y));
}

ConfidenceInterval bootstrapCi(const ResampledStatistic& statistic, std::size_t n, int resamples, std::uint64_t seed,
                               double level) {
    if (n == 0)
        throw InvalidArgument("bootstrap: no samples");
    if (resamples < 1)
        throw InvalidArgument("bootstrap: the number of resamples must be at least 1");
    if (!(level > 0.0 && level < 1.0))
        throw InvalidArgument("bootstrap: the confidence level must be in (0, 1)");
    ConfidenceInterval ci;
    ci.level = level;
    ci.resamples = resamples;
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    ci.estimate = statistic(idx);
    std::mt19937_64 rng(seed);
    std::vector<double> values;
    values.reserve(static_cast<std::size_t>(resamples));
    for (int r = 0; r < resamples; ++r) {
        for (auto& i : idx)
            i = static_cast<std::size_t>(uniformIndex(rng, n));
        const double v = statistic(idx);
        if (!std::isnan(v))
            values.push_back(v);
    }
    ci.validResamples = static_cast<int>(values.size());
    if (values.empty() || 2 * values.size() < static_cast<std::size_t>(resamples)) {
        ci.lower = ci.upper = kNaN;
        return ci;
    }
    std::sort(values.begin(), values.end());
    ci.lower = quantileSorted(values, (1.0 - level) / 2.0);
    ci.upper = quantileSorted(values, (1.0 + level) / 2.0);
    return ci;
}

ConfidenceInterval bootstrapAuc(const std::vector<double>& scores, const std::vector<double>& labels, int resamples,
                                std::uint64_t seed, double level) {
    return pairBootstrap(scores, labels, resamples, seed, level, rocAuc, "ROC");
}

ConfidenceInterval bootstrapSpearman(const std::vector<double>& x, const std::vector<double>& y, int resamples,
                                     std::uint64_t seed, double level) {
    return pairBootstrap(x, y, resamples, seed, level, spearman, "Spearman");
}

ConfidenceInterval bootstrapPearson(const std::vector<double>& x, const std::vector<double>& y, int resamples,
                                    std::uint64_t seed, double level) {
    return pairBootstrap(x, y, resamples, seed, level, pearson, "Pearson");
}

} // namespace nic

#include "core/slidelearning/runfolder.h"

#include "core/base/atomicfile.h"
#include "core/base/csv.h"
#include "core/base/error.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace nic {

namespace {

constexpr const char* kFolds = "folds.csv";
constexpr const char* kCurves = "curves.csv";
constexpr const char* kPredictions = "predictions.csv";
constexpr const char* kMetrics = "metrics.json";

/// A number field that may be empty (NaN).
double optionalNumber(const CsvTable& t, const CsvRecord& r, int col) {
    if (r.fields[static_cast<std::size_t>(col)].empty())
        return std::numeric_limits<double>::quiet_NaN();
    return t.number(r, col);
}

CsvTable readRunTable(const std::filesystem::path& run, const char* name) {
    const auto path = run / name;
    if (!std::filesystem::exists(path))
        throw IoError(path.string() + ": not found (is " + run.string() + " a nic train run folder?)");
    return readCsvTable(path);
}

} // namespace

std::string formatRunNumber(double v) {
    if (std::isnan(v))
        return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

bool isRunFolder(const std::filesystem::path& dir) {
    std::error_code ec;
    return std::filesystem::is_directory(dir, ec) && std::filesystem::is_regular_file(dir / kFolds, ec);
}

std::filesystem::path runModelPath(const std::filesystem::path& run, int round) {
    return run / ("fold" + std::to_string(round)) / "model.pt";
}

void writeRunFolds(const std::filesystem::path& run, const std::vector<std::string>& ids, const std::vector<int>& folds) {
    if (ids.size() != folds.size())
        throw InvalidArgument("writeRunFolds: " + std::to_string(ids.size()) + " ids for " +
                              std::to_string(folds.size()) + " folds");
    std::string csv = "slide,fold\n";
    for (std::size_t i = 0; i < ids.size(); ++i)
        csv += csvRow({ids[i], std::to_string(folds[i])});
    writeFileAtomically(run / kFolds, csv);
}

std::map<std::string, int> readRunFolds(const std::filesystem::path& run) {
    const CsvTable t = readRunTable(run, kFolds);
    const int slide = t.requireColumn("slide");
    const int fold = t.requireColumn("fold");
    std::map<std::string, int> out;
    for (const auto& r : t.rows) {
        const int f = t.integer(r, fold);
        if (f < 0)
            throw FormatError(t.file + ":" + std::to_string(r.line) + ": fold " + std::to_string(f) + " is negative");
        if (!out.emplace(r.fields[static_cast<std::size_t>(slide)], f).second)
            throw FormatError(t.file + ":" + std::to_string(r.line) + ": slide " +
                              r.fields[static_cast<std::size_t>(slide)] + " is listed twice");
    }
    return out;
}

void writeRunCurves(const std::filesystem::path& run, const std::vector<RunCurvePoint>& curves) {
    std::string csv = "round,epoch,lr,train_loss,val_loss,val_metric,best,seconds\n";
    for (const auto& e : curves)
        csv += csvRow({std::to_string(e.round), std::to_string(e.epoch), formatRunNumber(e.learningRate),
                       formatRunNumber(e.trainLoss), formatRunNumber(e.validationLoss),
                       formatRunNumber(e.validationMetric), e.best ? "1" : "0", formatRunNumber(e.seconds)});
    writeFileAtomically(run / kCurves, csv);
}

std::vector<RunCurvePoint> readRunCurves(const std::filesystem::path& run) {
    const CsvTable t = readRunTable(run, kCurves);
    const int round = t.requireColumn("round"), epoch = t.requireColumn("epoch"), lr = t.requireColumn("lr"),
              train = t.requireColumn("train_loss"), val = t.requireColumn("val_loss"),
              metric = t.requireColumn("val_metric"), best = t.column("best"), seconds = t.column("seconds");
    std::vector<RunCurvePoint> out;
    for (const auto& r : t.rows) {
        RunCurvePoint p;
        p.round = t.integer(r, round);
        p.epoch = t.integer(r, epoch);
        p.learningRate = optionalNumber(t, r, lr);
        p.trainLoss = optionalNumber(t, r, train);
        p.validationLoss = optionalNumber(t, r, val);
        p.validationMetric = optionalNumber(t, r, metric);
        p.best = best >= 0 && r.fields[static_cast<std::size_t>(best)] == "1";
        p.seconds = seconds >= 0 ? optionalNumber(t, r, seconds) : 0.0;
        out.push_back(p);
    }
    return out;
}

void writeRunPredictions(const std::filesystem::path& run, const std::vector<RunPrediction>& predictions) {
    std::string csv = "slide,label,prediction,round\n";
    for (const auto& p : predictions)
        csv += csvRow({p.slide, formatRunNumber(p.label), formatRunNumber(p.prediction), std::to_string(p.round)});
    writeFileAtomically(run / kPredictions, csv);
}

std::vector<RunPrediction> readRunPredictions(const std::filesystem::path& run) {
    const CsvTable t = readRunTable(run, kPredictions);
    const int slide = t.requireColumn("slide"), label = t.requireColumn("label"),
              prediction = t.requireColumn("prediction"), round = t.column("round");
    std::vector<RunPrediction> out;
    for (const auto& r : t.rows) {
        RunPrediction p;
        p.slide = r.fields[static_cast<std::size_t>(slide)];
        p.label = t.number(r, label);
        p.prediction = optionalNumber(t, r, prediction);
        p.round = round >= 0 ? t.integer(r, round) : 0;
        out.push_back(std::move(p));
    }
    return out;
}

std::string readRunTask(const std::filesystem::path& run) {
    const auto path = run / kMetrics;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError(path.string() + ": cannot read (is " + run.string() + " a finished nic train run?)");
    std::ostringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw FormatError(path.string() + ": not a JSON object");
    const auto it = j.find("task");
    if (it == j.end() || !it->is_string() || (*it != "classify" && *it != "regress"))
        throw FormatError(path.string() + ": \"task\" must be \"classify\" or \"regress\"");
    return it->get<std::string>();
}

} // namespace nic

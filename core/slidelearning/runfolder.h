#pragma once
// The run folder of a cross-validated slide model (`nic train --out RUN`), read and written in one place:
//
//   RUN/folds.csv        slide,fold                      which partition (= round whose model held it out)
//   RUN/curves.csv       round,epoch,lr,train_loss,val_loss,val_metric,best,seconds
//   RUN/predictions.csv  slide,label,prediction,round     the "All" set, every slide by the model that did not see it
//   RUN/metrics.json     task, AUC / Spearman with bootstrap CIs, per-round metrics (written by the trainer)
//   RUN/fold<r>/model.pt the model of round r
//
// Numbers are written with 9 significant digits; an undefined value (NaN) is an empty field. Readers throw
// IoError when a file cannot be read and FormatError "<file>:<line>: <cause>" for malformed contents.
// No LibTorch here: the GUI's plots and the cohort panel read run folders without it.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace nic {

/// One training epoch of one round (a row of curves.csv).
struct RunCurvePoint {
    int round = 0;
    int epoch = 0;                 ///< 1-based
    double learningRate = 0.0;
    double trainLoss = 0.0;
    double validationLoss = 0.0;
    double validationMetric = 0.0; ///< AUC or Spearman; NaN when undefined
    bool best = false;
    double seconds = 0.0;
};

/// One held-out prediction (a row of predictions.csv).
struct RunPrediction {
    std::string slide;
    double label = 0.0;
    double prediction = 0.0;
    int round = 0;
};

/// A number as the run files write it: "%.9g", "" for NaN.
std::string formatRunNumber(double v);

/// True when `dir` is a directory holding folds.csv (a `nic train` run).
bool isRunFolder(const std::filesystem::path& dir);
/// `RUN/fold<r>/model.pt`.
std::filesystem::path runModelPath(const std::filesystem::path& run, int round);

/// Writes RUN/folds.csv atomically; ids and folds have the same length.
void writeRunFolds(const std::filesystem::path& run, const std::vector<std::string>& ids, const std::vector<int>& folds);
/// Slide id → fold from RUN/folds.csv. IoError naming the file (and "is RUN a nic train run?") when absent.
std::map<std::string, int> readRunFolds(const std::filesystem::path& run);

void writeRunCurves(const std::filesystem::path& run, const std::vector<RunCurvePoint>& curves);
std::vector<RunCurvePoint> readRunCurves(const std::filesystem::path& run);

void writeRunPredictions(const std::filesystem::path& run, const std::vector<RunPrediction>& predictions);
std::vector<RunPrediction> readRunPredictions(const std::filesystem::path& run);

/// The task recorded in RUN/metrics.json ("classify" or "regress"). Throws IoError/FormatError naming the file.
std::string readRunTask(const std::filesystem::path& run);

} // namespace nic

#pragma once
// Patch-level evaluation of an encoder (paper §4.3 / supplementary §8.1; no LibTorch in this header):
// the encoder is frozen, every patch is embedded once, and an MLP (dense 256, BN, leaky ReLU, then one
// sigmoid unit for 2 classes or a K-way softmax) is trained on the embeddings with Adam (batch 64,
// learning rate 1e-2 divided by 10 on a validation-accuracy plateau down to 1e-5); the MLP of the best
// validation epoch is scored on the test set. Embeddings are standardised with the training set's
// per-dimension mean and deviation first, so encoders with very different output scales (Mean-RGB in
// [0, 1], learned codes) are compared on equal terms.
#include "core/encoders/encoder.h"
#include "core/base/jobcontext.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/patchbank.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace nic {

/// How a labelled bank is split into training and held-out parts.
enum class EvalSplit {
    Auto,   ///< by source when every patch knows its source and there are ≥ 2 sources, else by patch
    Source, ///< whole sources (slides/folders) on one side only (PatchBank::splitBySource)
    Patch,  ///< random patches, stratified by class (PatchBank::split); one slide can be on both sides
};
/// "auto", "source" or "patch"; nullopt otherwise.
std::optional<EvalSplit> parseEvalSplit(const std::string& text);

/// Splits `bank` into (rest, held out ≈ fraction) as `mode` says; `bySource` tells which split was used.
/// Throws InvalidArgument (EvalSplit::Source on a bank without ≥ 2 known sources, bad fraction).
std::pair<PatchBank, PatchBank> evaluationSplit(const PatchBank& bank, double fraction, std::uint64_t seed, EvalSplit mode,
                                                bool& bySource);

/// Mean recall over the true classes that occur (rows of `confusion` [true][predicted] with a count);
/// NaN when there is none.
double balancedAccuracy(const std::vector<std::vector<std::int64_t>>& confusion);

struct EvalOptions {
    int epochs = 30;                ///< upper bound
    int batchSize = 64;
    double learningRate = 1e-2;
    double minLearningRate = 1e-5;
    int patience = 3;
    double validationFraction = 0.2; ///< of the training bank, stratified
    EvalSplit validationSplit = EvalSplit::Auto; ///< how the validation part is taken from the training bank
    std::uint64_t seed = 1;
    ComputeOptions compute;
};

struct EvalResult {
    std::vector<std::string> classNames;
    double accuracy = 0.0;                         ///< on the test set
    double balancedAccuracy = 0.0;                 ///< mean recall over the classes in the test set
    std::vector<double> perClassAccuracy;          ///< recall per true class (NaN when absent)
    std::vector<std::vector<std::int64_t>> confusion; ///< [true][predicted] counts on the test set
    double validationAccuracy = 0.0;               ///< best epoch
    int bestEpoch = 0;
    std::size_t trainCount = 0, validationCount = 0, testCount = 0;
    bool validationBySource = false;               ///< validation split by source (else by patch)

    /// The result as a JSON object (accuracy, balanced_accuracy, per-class recall, confusion, counts).
    std::string toJson() const;

    /// The confusion matrix as CSV: header "true\\predicted,<names>", one row per true class.
    std::string confusionCsv() const;
};

/// Evaluates `encoder` (frozen) on labelled banks. The banks' patch size must equal the encoder's, and
/// both must use the same class names. Throws InvalidArgument, Cancelled.
EvalResult evaluateEncoder(PatchEncoder& encoder, const PatchBank& train, const PatchBank& test,
                           const EvalOptions& options = {}, JobContext& ctx = JobContext::none());

} // namespace nic

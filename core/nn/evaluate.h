#pragma once
// Patch-level evaluation of an encoder (paper §4.3 / supplementary §8.1; no LibTorch in this header):
// the encoder is frozen, every patch is embedded once, and an MLP (dense 256, BN, leaky ReLU, then one
// sigmoid unit for 2 classes or a K-way softmax) is trained on the embeddings with Adam (batch 64,
// learning rate 1e-2 divided by 10 on a validation-accuracy plateau down to 1e-5); the MLP of the best
// validation epoch is scored on the test set. Embeddings are standardised with the training set's
// per-dimension mean and deviation first, so encoders with very different output scales (Mean-RGB in
// [0, 1], learned codes) are compared on equal terms.
#include "core/encoder.h"
#include "core/jobcontext.h"
#include "core/nn/encoders.h"
#include "core/nn/patchbank.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nic {

struct EvalOptions {
    int epochs = 30;                ///< upper bound
    int batchSize = 64;
    double learningRate = 1e-2;
    double minLearningRate = 1e-5;
    int patience = 3;
    double validationFraction = 0.2; ///< of the training bank, stratified
    std::uint64_t seed = 1;
    ComputeOptions compute;
};

struct EvalResult {
    std::vector<std::string> classNames;
    double accuracy = 0.0;                         ///< on the test set
    std::vector<double> perClassAccuracy;          ///< recall per true class (NaN when absent)
    std::vector<std::vector<std::int64_t>> confusion; ///< [true][predicted] counts on the test set
    double validationAccuracy = 0.0;               ///< best epoch
    int bestEpoch = 0;
    std::size_t trainCount = 0, validationCount = 0, testCount = 0;

    /// The confusion matrix as CSV: header "true\\predicted,<names>", one row per true class.
    std::string confusionCsv() const;
};

/// Evaluates `encoder` (frozen) on labelled banks. The banks' patch size must equal the encoder's, and
/// both must use the same class names. Throws InvalidArgument, Cancelled.
EvalResult evaluateEncoder(PatchEncoder& encoder, const PatchBank& train, const PatchBank& test,
                           const EvalOptions& options = {}, JobContext& ctx = JobContext::none());

} // namespace nic

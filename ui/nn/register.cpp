#include "ui/nn/neuraljobs.h"

#include "core/encoder.h"

namespace nic {

bool registerTorchJobs() {
    NeuralJobs jobs;
    jobs.loadEncoder = loadEncoderForJob;
    jobs.trainEncoder = trainEncoderJob;
    jobs.trainSlideModel = trainSlideModelJob;
    jobs.gradCam = gradCamJob;
    registerNeuralJobs(std::move(jobs));
    return true;
}

namespace {
// ui_nn is an object library, so this file is always linked into nic-studio and runs at start-up.
[[maybe_unused]] const bool kRegistered = registerTorchJobs();
} // namespace

} // namespace nic

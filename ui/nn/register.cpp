#include "ui/nn/neuraljobs.h"

#include "core/encoders/encoder.h"

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

} // namespace nic

#pragma once
// ui_nn: the workflow's job bodies that need LibTorch (ui/workflow.h, NeuralJobs). They call the LibTorch
// stages of core/ as the `nic` CLI does (app/nic/nn/) and include only their torch-free headers; the library
// links core_nn. Built only with NIC_WITH_TORCH.
#include "ui/workflow.h"

#include <memory>
#include <string>

namespace nic {

class PatchEncoder;

/// `nic compress --encoder FILE`: the encoder file, on the device LibTorch picks.
std::unique_ptr<PatchEncoder> loadEncoderForJob(const std::string& path);
/// `nic train-encoder`: patch bank file, or a folder of patches with labels.csv (read at P = 128).
void trainEncoderJob(const TrainEncoderDialog::Options& o, JobContext& ctx, const EpochSink& sink);
/// `nic train`: cohort CSV + compressed slides → cross-validated run folder.
void trainSlideModelJob(const TrainSlideModelDialog::Options& o, JobContext& ctx, const EpochSink& sink);
/// `nic gradcam`: one `<grid stem>_heatmap.h5` per compressed slide in the output folder.
void gradCamJob(const GradCamDialog::Options& o, JobContext& ctx);

/// Registers the bodies above with registerNeuralJobs(). main() of nic-studio (and of the GUI tests) calls it
/// once, before any workflow is installed; calling it again is harmless. Returns true.
bool registerTorchJobs();

} // namespace nic

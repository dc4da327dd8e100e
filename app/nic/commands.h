#pragma once
// Subcommands of the `nic` CLI. Each add*Command registers its options on `root` and sets a callback
// that runs the command; the callback throws nic::Error (exit 1) or nic::InvalidArgument (exit 2).
#include <CLI/CLI.hpp>

namespace nic::cli {

void addInfoCommand(CLI::App& root);
void addTissueCommand(CLI::App& root);
void addSynthCommand(CLI::App& root);
void addCompressCommand(CLI::App& root);
void addEvalHeatmapCommand(CLI::App& root);
/// Cluster commands (cmd_submit.cpp, cmd_status.cpp): submit compress/gradcam/train to Slurm, follow them.
void addSubmitCommand(CLI::App& root);
void addStatusCommand(CLI::App& root);

/// Thrown by a command that has reported its result and only needs a particular exit status (nic status: 3
/// while incomplete); main() returns `code` without printing anything.
struct ExitStatus {
    int code = 0;
};
/// convert-annotations (ASAP XML <-> GeoJSON) and export-heatmap (GeoJSON tiles for QuPath).
void addAnnotationCommands(CLI::App& root);

#ifdef NIC_WITH_TORCH
/// Subcommands that need LibTorch (app/nic/nn/): train-encoder, embed, import-keras, eval-encoder, ...
void addNeuralCommands(CLI::App& root);
/// Slide-level CNN subcommands (app/nic/nn/): train, gradcam.
void addSlideModelCommands(CLI::App& root);
#endif

} // namespace nic::cli

#pragma once
// Subcommands of the `nic` CLI. Each add*Command registers its options on `root` and sets a callback
// that runs the command; the callback throws nic::Error (exit 1) or nic::InvalidArgument (exit 2).
#include <CLI/CLI.hpp>

namespace nic::cli {

void addInfoCommand(CLI::App& root);
void addTissueCommand(CLI::App& root);
void addSynthCommand(CLI::App& root);

} // namespace nic::cli

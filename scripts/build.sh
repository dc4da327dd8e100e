#!/usr/bin/env bash
# Configures and builds one CMake preset (default: release). Usage: scripts/build.sh [PRESET] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-release}"
shift || true
jobs="${NIC_BUILD_JOBS:-$(nproc)}"
# The presets compile through ccache. Hash paths relative to the checkout, so a second clone or worktree
# (CI's clean clone, a branch checked out elsewhere) reuses the objects of the first instead of compiling
# everything again (a cold release build is ~25-40 min on 2 cores).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
# The LibTorch TUs of core_nn compile with a precompiled header (<torch/torch.h>); ccache caches those only
# with this sloppiness (the PCH is included with -include, so no -fpch-preprocess is needed).
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
cmake --preset "$preset" >/dev/null
if [ $# -gt 0 ]; then
  cmake --build --preset "$preset" -j "$jobs" --target "$@"
else
  cmake --build --preset "$preset" -j "$jobs"
fi

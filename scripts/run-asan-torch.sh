#!/usr/bin/env bash
# On demand (not part of scripts/run-tests.sh, too slow for it: see docs/sanitizers.md): builds the
# LibTorch half (core_nn, `nic` with its neural commands, nn_tests) with ASan + UBSan (preset
# `asan-torch`, Debian's LibTorch itself stays uninstrumented) and runs the `torch`-labelled tests.
#   NIC_BUILD_JOBS  build parallelism (default: nproc)
#   NIC_TEST_JOBS   ctest parallelism (default: nproc)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/build.sh" asan-torch nn_tests nic
ctest --preset asan-torch -j "${NIC_TEST_JOBS:-$(nproc)}"

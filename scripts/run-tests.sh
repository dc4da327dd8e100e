#!/usr/bin/env bash
# Quick start (2): installs the Debian packages, builds NIC Studio and runs the whole test suite:
# the release build's ctest, then the core tests (no LibTorch, no GUI) under ASan + UBSan.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" release
ctest --preset release -j "$(nproc)"
if [ "${NIC_SKIP_ASAN:-0}" != "1" ]; then
  "$root/scripts/build.sh" asan core_tests nic
  ctest --preset asan -j "$(nproc)"
fi

#!/usr/bin/env bash
# Quick start (2): installs the Debian packages, builds NIC Studio and runs the whole test suite:
# the release build's ctest, then the core tests (no LibTorch, no GUI) under ASan + UBSan, the threaded
# core tests under TSan, and the libFuzzer harnesses for a bounded time (scripts/run-fuzzers.sh).
# NIC_SKIP_ASAN=1, NIC_SKIP_TSAN=1, NIC_SKIP_FUZZ=1 leave a stage out.
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
if [ "${NIC_SKIP_TSAN:-0}" != "1" ]; then
  "$root/scripts/build.sh" tsan core_tests nic ui_thread_tests
  ctest --preset tsan -j "$(nproc)"
fi
if [ "${NIC_SKIP_FUZZ:-0}" != "1" ]; then
  NIC_FUZZ_SECONDS="${NIC_FUZZ_SECONDS:-35}" "$root/scripts/run-fuzzers.sh"
fi
# nic submit / nic status against a real single-node Slurm on this machine (the release ctest above skipped
# them: no cluster was running). NIC_SKIP_SLURM=1 leaves this stage out. Needs root (the daemons run as root).
if [ "${NIC_SKIP_SLURM:-0}" != "1" ]; then
  slurm_dir="$(mktemp -d)"
  trap '"$root/scripts/slurm-local.sh" stop "$slurm_dir"; rm -rf "$slurm_dir"' EXIT
  slurm_env="$("$root/scripts/slurm-local.sh" start "$slurm_dir")"
  eval "$slurm_env"
  ctest --preset release -L slurm
fi

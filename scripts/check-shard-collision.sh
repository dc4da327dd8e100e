#!/usr/bin/env bash
# Full-size shard collision check (issue 9): 1,000 tiny (256×256) synthetic slides compressed by two
# concurrent `nic compress --shard 0/2` / `--shard 1/2` processes into one folder; every slide's grid
# must appear exactly once and read back valid. CI runs the same test with 48 slides (ctest); this runs
# it at full size with the core_tests of an existing build.
#   usage: scripts/check-shard-collision.sh [build-dir (default build/release)] [slides (default 1000)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build/release}"
NIC_SHARD_SLIDES="${2:-1000}" "$build/tests/core_tests" --gtest_filter='HugeInputs.TwoShardProcessesCompressACohortWithoutCollision'

#!/usr/bin/env bash
# The tests from a fresh clone: installs what this machine lacks (a C linker, the software
# Vulkan driver; see .ci/ensure-system.sh), then runs `cargo test`. With CI=true a missing
# GPU adapter fails the GPU tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "scripts/test.sh: cargo is missing; install Rust (rustup) first" >&2; exit 1; }
source .ci/ensure-system.sh
cargo test "$@" 2>&1

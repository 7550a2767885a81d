#!/usr/bin/env bash
# The tests from a fresh clone: installs the software Vulkan driver if this machine has no
# Vulkan driver (see .ci/ensure-vulkan.sh), then runs `cargo test`. With CI=true a missing
# GPU adapter fails the GPU tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "scripts/test.sh: cargo is missing; install Rust (rustup) first" >&2; exit 1; }
source .ci/ensure-vulkan.sh
cargo test "$@" 2>&1

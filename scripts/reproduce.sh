#!/usr/bin/env bash
# The main job from a fresh clone: installs what this machine lacks (a C linker, the software
# Vulkan driver; see .ci/ensure-system.sh), then runs the reproduction sweep, by default the
# quick preset on the shipped Fashion-MNIST sample. Arguments go to `taming reproduce`
# (e.g. `--preset paper --data DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "scripts/reproduce.sh: cargo is missing; install Rust (rustup) first" >&2; exit 1; }
source .ci/ensure-system.sh
exec cargo run --release -- reproduce "$@"

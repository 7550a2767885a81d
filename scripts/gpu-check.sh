#!/usr/bin/env bash
# One prepared check for a lent GPU machine, which has no network and no Rust toolchain: the
# binaries are built here and carried along.
#
#   scripts/gpu-check.sh --prepare [--profile release|dev] [--no-loaders]
#       (here) builds `taming` and the kernel bench, copies them into .gpu-check/bin, downloads
#       the Vulkan loader packages into .gpu-check/gl (unless --no-loaders), prints their sizes.
#   scripts/gpu-check.sh [--dry-run] [--out DIR]
#       (there) prints the adapter, runs `taming selftest` (every kernel and every convolution
#       and product algorithm against the CPU references, the f16 convolutions too), the kernel
#       bench at ResNet-18 shapes at batch 512 (its convolutions and step again with
#       --precision f16) and `taming bench-train` of the paper preset in f32 and f16; each step
#       under a time limit, all within 8 minutes. --dry-run does the same at tiny sizes (seconds on lavapipe; CI
#       runs it). Logs go to DIR (default: $OUT if set, else gpu-check-out).
#
# On the device tool: carry [".gpu-check"] and run `bash scripts/gpu-check.sh` (README: "Running
# on a real GPU").
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.gpu-check
prepare=false dry_run=false profile=release loaders=true out="${OUT:-gpu-check-out}"
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=true ;;
    --dry-run) dry_run=true ;;
    --no-loaders) loaders=false ;;
    --profile) profile="${2:?--profile needs release or dev}"; shift ;;
    --out) out="${2:?--out needs a folder}"; shift ;;
    --dir) dir="${2:?--dir needs a folder}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if $prepare; then
  case "$profile" in
    release) build=(--release); sub=release ;;
    dev) build=(); sub=debug ;;
    *) echo "gpu-check: --profile must be release or dev, not $profile" >&2; exit 2 ;;
  esac
  mkdir -p "$dir/bin"
  cargo build "${build[@]}" --bin taming 2>&1
  # The bench's executable is named by a hash; cargo's JSON messages say which.
  bench="$(cargo test "${build[@]}" --bench kernels --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*/kernels-[^"]*"' | tail -1 | cut -d'"' -f4)"
  test -x "$bench" || { echo "gpu-check: the kernel bench did not build" >&2; exit 1; }
  cp "target/$sub/taming" "$dir/bin/taming.tmp" && mv "$dir/bin/taming.tmp" "$dir/bin/taming"
  cp "$bench" "$dir/bin/kernels.tmp" && mv "$dir/bin/kernels.tmp" "$dir/bin/kernels"
  if $loaders; then
    # The lent machine has the NVIDIA driver but may lack the Vulkan loader (the device tool's
    # README); x86-64 packages whatever this machine is.
    mkdir -p "$dir/gl" /tmp/gpu-check-apt/partial
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-check-apt)
    apt-get "${o[@]}" update -qq
    (cd "$dir/gl" && apt-get "${o[@]}" download -qq libvulkan1)
  fi
  du -ah "$dir" | sort -k2
  total=$(du -sm "$dir" | cut -f1)
  echo "gpu-check: prepared $dir (${total} MiB; the device tool carries at most 64 MiB)"
  # A dev build keeps its debug information: fine for the dry run here, too large to carry.
  if [ "$profile" = release ] && [ "$total" -ge 60 ]; then
    echo "gpu-check: $dir is too large to carry" >&2; exit 1
  fi
  exit 0
fi

bin="$dir/bin"
for b in taming kernels; do
  test -x "$bin/$b" || { echo "gpu-check: $bin/$b is missing; run scripts/gpu-check.sh --prepare here first" >&2; exit 1; }
done
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && ls "$dir"/gl/*.deb >/dev/null 2>&1; then
  for f in "$dir"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES="$nvidia_icd"; fi
mkdir -p "$out"

failed=()
# step NAME LIMIT_S COMMAND...: runs one step under its limit, logs it, and goes on if it fails.
step() {
  local name="$1" limit="$2"; shift 2
  echo; echo "== $name (at most ${limit} s): $*"
  local start=$SECONDS rc=0
  # With pipefail the pipeline's status is the step's (tee succeeds); 124: over its limit.
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log" || rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

echo "gpu-check $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/nvidia-smi.log"
fi
if $dry_run; then
  step selftest 120 "$bin/taming" selftest --shapes resnet18 --batch 1
  step bench 180 "$bin/kernels" --quick --no-cpu --batch 2 --only peak,conv,ops,step
  step bench-f16 120 "$bin/kernels" --quick --no-cpu --batch 2 --only conv,step --precision f16
  step bench-train 120 "$bin/taming" bench-train --model small-cnn --batch 8 --crop 0.4 \
    --steps 1 --images 64 --json "$out/bench_train.json"
  step bench-train-f16 120 "$bin/taming" bench-train --model small-cnn --batch 8 --crop 0.4 \
    --steps 1 --images 64 --no-learnt --precision f16 --json "$out/bench_train_f16.json"
else
  step selftest 80 "$bin/taming" selftest --shapes resnet18 --batch 16
  step bench 180 "$bin/kernels" --no-cpu --batch 512 --only peak,conv,ops,step
  step bench-f16 60 "$bin/kernels" --no-cpu --batch 512 --only conv,step --precision f16
  step bench-train 110 "$bin/taming" bench-train --preset paper --steps 5 --images 4096 \
    --json "$out/bench_train.json"
  step bench-train-f16 50 "$bin/taming" bench-train --preset paper --steps 3 --images 4096 \
    --crop 0.2 --no-learnt --precision f16 --json "$out/bench_train_f16.json"
fi
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu-check: failed: ${failed[*]}"
  exit 1
fi
echo "gpu-check: every step passed; logs in $out"

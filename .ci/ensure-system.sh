#!/usr/bin/env bash
# Sourced by scripts/reproduce.sh, scripts/test.sh and .ci/run: installs what a fresh Debian or
# Ubuntu machine with only Rust lacks, saying so first: the C linker Rust links with (gcc and
# libc6-dev, when there is no `cc`), and, when this machine has no Vulkan driver (no ICD file,
# or no Vulkan loader), Mesa's software driver lavapipe with .ci/install-vulkan.sh. Both through
# apt-get, as root or through sudo. A machine with a GPU driver's Vulkan ICD (NVIDIA's, for
# example) is left as it is.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "Run '$*' as root, then try again." >&2
    exit 1
  fi
}
if ! command -v cc >/dev/null; then
  echo "No C linker (cc) found, which Rust links with: installing gcc and libc6-dev with apt-get." >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
vulkan_present() {
  # Any ICD file in either folder (ls fails when one of them is missing, so count what it lists).
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | grep -q . &&
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}
if ! vulkan_present; then
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  echo "No Vulkan driver found: installing Mesa's software Vulkan device (Debian packages" \
    "mesa-vulkan-drivers and libvulkan1, from bookworm-backports where available) with apt-get." >&2
  as_root bash "$here/install-vulkan.sh"
fi

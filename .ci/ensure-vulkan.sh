#!/usr/bin/env bash
# Sourced by scripts/reproduce.sh, scripts/test.sh and .ci/run: when this machine has no
# Vulkan driver (no ICD file, or no Vulkan loader), says so and installs Mesa's software
# driver, lavapipe, with .ci/install-vulkan.sh (apt-get; through sudo when not root). A machine
# with a GPU driver's Vulkan ICD (NVIDIA's, for example) is left as it is.
vulkan_present() {
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1 &&
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}
if ! vulkan_present; then
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  echo "No Vulkan driver found: installing Mesa's software Vulkan device (Debian packages" \
    "mesa-vulkan-drivers and libvulkan1, from bookworm-backports where available) with apt-get." >&2
  if [ "$(id -u)" = 0 ]; then
    bash "$here/install-vulkan.sh"
  elif command -v sudo >/dev/null; then
    sudo bash "$here/install-vulkan.sh"
  else
    echo "Run 'bash $here/install-vulkan.sh' as root, or install a Vulkan driver, then try again." >&2
    exit 1
  fi
fi

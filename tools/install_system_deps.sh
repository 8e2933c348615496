#!/usr/bin/env bash
# System packages: EGL/Mesa for headless pyrender, chromium for the browser tests of the demo, a one-node
# Slurm (slurm-wlm + munge) for the Slurm test of preprocess, iproute2 (`ip netns`) for the multi-host test.
# Installs only what is missing; needs root (or sudo) the first time.
set -euo pipefail
need=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 chromium slurm-wlm munge iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"

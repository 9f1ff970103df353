#!/usr/bin/env bash
# Installs every Debian 12 package stagewise needs to build, test and run (as root, or via sudo).
# Idempotent: a second run only checks what is present.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config
      openmpi-bin libopenmpi-dev
      libhdf5-dev hdf5-tools
      libboost-program-options-dev
      libdnnl-dev libopenblas-dev libopenblas-openmp-dev
      libgtest-dev googletest
      zlib1g-dev libxxhash-dev nlohmann-json3-dev
      dataset-fashion-mnist
      slurmctld slurmd slurm-client munge
      python3-torch python3-h5py python3-numpy python3-matplotlib)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup: all ${#PKGS[@]} packages present"

#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler (nvcc, ptxas, headers) and the SASS readers (cuobjdump, nvdisasm)
# from PyPI into .toolchain/ at the project root, unless an nvcc is already reachable the way build.rs looks
# for one (NVCC, CUDA_HOME/CUDA_PATH, PATH). Idempotent: a second run finds the stamp file and does nothing.
#
# Why these versions: our GPU machines run driver 580 (CUDA 13.0). PTX from a newer nvcc carries a PTX ISA
# version that driver refuses to JIT, so the compiler is pinned to 13.0; the nvcc wheel's own dependencies are
# unpinned and would pull newer parts, so all five are pinned. cuobjdump/nvdisasm are not in the 13.0 set on
# PyPI; 13.2.51 reads 13.0 cubins.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.toolchain"
stamp="$dest/.installed-13.0.88"
force="${1:-}"

if [ "$force" != "--force" ]; then
  if [ -f "$stamp" ]; then
    echo "install-toolchain: pinned toolchain already in $dest"; exit 0
  fi
  if [ -n "${NVCC:-}" ] && [ -x "${NVCC}" ]; then echo "install-toolchain: using NVCC=$NVCC"; exit 0; fi
  for home in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
    if [ -n "$home" ] && [ -x "$home/bin/nvcc" ]; then echo "install-toolchain: using $home/bin/nvcc"; exit 0; fi
  done
  if command -v nvcc >/dev/null 2>&1; then echo "install-toolchain: using $(command -v nvcc)"; exit 0; fi
fi

echo "install-toolchain: installing pinned CUDA 13.0 compiler into $dest (about 300 MB)"
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$dest/site" \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
# A second --target install into the same folder would skip the existing nvidia/ tree, so the SASS readers
# get their own folder.
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$dest/sass" \
  --no-deps nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51
bin="$dest/site/nvidia/cu13/bin"
chmod +x "$bin"/* "$dest/sass/nvidia/cu13/bin"/* 2>/dev/null || true
"$dest/sass/nvidia/cu13/bin/cuobjdump" --version | tail -n 1
"$bin/nvcc" --version | tail -n 2
touch "$stamp"
echo "install-toolchain: done; nvcc at $bin/nvcc"

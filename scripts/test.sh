#!/usr/bin/env bash
# The test command: installs the pinned CUDA 13.0 compiler if no nvcc is found, then runs every test, with the
# kernels compiled for every target and also run on the SIMT emulator. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-toolchain.sh
cargo test --features emulator "$@"
# cargo hides what passing tests print, so say here whether the GPU halves of the property tests ran.
probe=$(cargo test -q --features emulator --test gather_scatter single_row -- --nocapture 2>&1 || true)
if printf '%s\n' "$probe" | grep -q "skipped on CUDA"; then
  echo "NOTE: no CUDA device on this machine: the GPU-vs-CPU property tests ran on the SIMT emulator only;"
  echo "      their CUDA half was SKIPPED (SLR_REQUIRE_GPU=1 turns that into a failure)."
else
  echo "CUDA device present: the GPU-vs-CPU property tests ran on it too."
fi

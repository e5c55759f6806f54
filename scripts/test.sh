#!/usr/bin/env bash
# The test command: installs the pinned CUDA 13.0 compiler if no nvcc is found, then runs every test, with the
# kernels compiled for every target and also run on the SIMT emulator. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-toolchain.sh
# The emulator's own self-test first (the machinery every emulated test relies on: fault, overrun and deadlock
# reports, collectives, atomics), with the CUDA headers of the pinned toolchain or of the nvcc on the PATH.
inc=.toolchain/site/nvidia/cu13/include
if [ ! -f "$inc/cuda_fp16.h" ] && command -v nvcc >/dev/null; then inc="$(dirname "$(command -v nvcc)")/../include"; fi
if [ ! -f "$inc/cuda_fp16.h" ]; then
  echo "NOTE: no CUDA headers found: the emulator self-test (cuda/emu/selftest) did not run."
elif ! command -v "${CXX:-g++}" >/dev/null; then
  echo "NOTE: no ${CXX:-g++} (the self-test's compiler; set CXX): the emulator self-test did not run."
else
  SLR_CUDA_INCLUDE="$inc" bash cuda/emu/selftest/run.sh
fi
cargo test --features emulator "$@"
# cargo hides what passing tests print, so say here whether the GPU halves of the property tests ran.
probe=$(cargo test -q --features emulator --test gather_scatter single_row -- --nocapture 2>&1 || true)
if printf '%s\n' "$probe" | grep -q "skipped on CUDA"; then
  echo "NOTE: no CUDA device on this machine: the GPU-vs-CPU property tests ran on the SIMT emulator only;"
  echo "      their CUDA half was SKIPPED (SLR_REQUIRE_GPU=1 turns that into a failure)."
else
  echo "CUDA device present: the GPU-vs-CPU property tests ran on it too."
fi

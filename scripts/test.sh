#!/usr/bin/env bash
# The test command: installs the pinned CUDA 13.0 compiler if no nvcc is found, then runs every test, with the
# kernels compiled for every target and also run on the SIMT emulator. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-toolchain.sh
cargo test --features emulator "$@"

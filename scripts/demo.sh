#!/usr/bin/env bash
# The demo command: installs the pinned CUDA 13.0 compiler if no nvcc is found (so the kernels are built for a
# GPU when one is present), then runs one sparse fine-tuning step on a 4096x4096 bf16 weight with a 5% mask.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-toolchain.sh
cargo run --release --example demo

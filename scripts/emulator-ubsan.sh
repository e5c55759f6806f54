#!/usr/bin/env bash
# Runs the test suite with the emulated kernels and the emulator's runtime built under GCC's UndefinedBehavior
# sanitizer: shifts by 32 or more, signed overflow, out-of-range float-to-int conversions, misaligned or null
# accesses and the like, which x86 and the GPU resolve differently (a kernel relying on one of them would pass here
# and differ on the device, or the reverse). Any report aborts the test binary that hit it, naming the source line.
# Not part of CI (it rebuilds everything in its own target directory: ~25 minutes on 2 cores); run it after changing
# a kernel's integer or conversion arithmetic. Extra arguments go to `cargo test` (e.g. `--test topk`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-toolchain.sh
export CARGO_TARGET_DIR="${SLR_UBSAN_TARGET:-target/ubsan}"
export CXXFLAGS="-fsanitize=undefined,float-cast-overflow -fno-sanitize=vptr -fno-sanitize-recover=all"
export RUSTFLAGS="-C link-arg=-lubsan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# --lib --tests: the doctests link without RUSTFLAGS and so without the sanitizer's runtime.
cargo test --release --features emulator --lib --tests "$@"

#!/usr/bin/env bash
# Checks that the crate compiles with the rust-version Cargo.toml declares: the library, tests and benches with and
# without the emulator feature, and the doc examples (run, as `cargo test --doc` runs them). An installed toolchain
# is used as is; otherwise rustup installs it. Without rustup the check is skipped (said, exit 0); when rustup
# cannot install the toolchain it is skipped too, unless SLR_REQUIRE_MSRV=1 (CI) makes that a failure; a toolchain
# that fails to compile the crate always fails the check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
msrv="$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)"
if [ -z "$msrv" ]; then
    echo "check-msrv: no rust-version in Cargo.toml" >&2
    exit 1
fi
if ! command -v rustup >/dev/null 2>&1; then
    echo "check-msrv: rustup not found; rust-version $msrv not checked"
    exit 0
fi
if ! rustup run "$msrv" rustc -V >/dev/null 2>&1; then
    if ! rustup toolchain install "$msrv" --profile minimal; then
        if [ "${SLR_REQUIRE_MSRV:-0}" = "1" ]; then
            echo "check-msrv: could not install Rust $msrv (SLR_REQUIRE_MSRV=1)" >&2
            exit 1
        fi
        echo "check-msrv: could not install Rust $msrv (offline?); rust-version not checked"
        exit 0
    fi
fi
# Its own target folder: the MSRV's artifacts would otherwise replace the main build's. `rustup run` picks the
# toolchain's own cargo whatever cargo is first on PATH.
export CARGO_TARGET_DIR="$root/target/msrv"
rustup run "$msrv" cargo check --all-targets
rustup run "$msrv" cargo check --all-targets --features emulator
rustup run "$msrv" cargo test --doc --features emulator
echo "check-msrv: compiles with Rust $msrv ($(rustup run "$msrv" rustc -V))"

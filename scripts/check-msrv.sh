#!/usr/bin/env bash
# Checks that the crate (library, tests, benches, with and without the emulator feature) compiles with the
# rust-version Cargo.toml declares. Best effort about the toolchain: without rustup, or when the toolchain cannot
# be installed (no network), it says so and exits 0; a toolchain that installs but fails to compile the crate
# fails the check.
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
if ! rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
    echo "check-msrv: could not install Rust $msrv (offline?); rust-version not checked"
    exit 0
fi
# Its own target folder: the MSRV's artifacts would otherwise replace the main build's.
export CARGO_TARGET_DIR="$root/target/msrv"
cargo "+$msrv" check --all-targets
cargo "+$msrv" check --all-targets --features emulator
echo "check-msrv: compiles with Rust $msrv"

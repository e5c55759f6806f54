#!/usr/bin/env bash
# Checks that a crate depending on sparse-lowrank builds on a machine without nvcc: a copy of this repository
# without .toolchain/, a tiny dependent crate, and an environment where no nvcc can be found. The build must
# succeed with a warning, and the dependent's GPU call must return Error::KernelsNotBuilt or NoCudaDriver.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sparse-lowrank"
(cd "$root" && git ls-files -z | xargs -0 -I{} cp --parents {} "$work/sparse-lowrank/")
mkdir -p "$work/dependent/src"
cat > "$work/dependent/Cargo.toml" <<TOML
[package]
name = "dependent"
version = "0.0.0"
edition = "2021"
[dependencies]
sparse-lowrank = { path = "../sparse-lowrank" }
TOML
cat > "$work/dependent/src/main.rs" <<'RS'
fn main() {
    match sparse_lowrank::Gpu::new(0) {
        Err(sparse_lowrank::Error::KernelsNotBuilt) | Err(sparse_lowrank::Error::NoCudaDriver) => println!("ok: typed error"),
        Err(e) => { println!("unexpected error: {e}"); std::process::exit(1) }
        Ok(_) => { println!("unexpected: a GPU handle without kernels"); std::process::exit(1) }
    }
    assert!(!sparse_lowrank::kernels::built());
}
RS
# No nvcc anywhere: a PATH with only cargo's and the system's basic folders, and no CUDA variables.
clean_path="$(dirname "$(command -v cargo)"):/usr/bin:/bin"
cd "$work/dependent"
env -u NVCC -u CUDA_HOME -u CUDA_PATH PATH="$clean_path" CARGO_TARGET_DIR="$root/target/dependent-check" \
  cargo run -q 2>&1 | tee "$work/log"
grep -q "ok: typed error" "$work/log"
echo "dependent crate builds without nvcc: ok"

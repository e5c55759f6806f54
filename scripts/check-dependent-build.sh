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

# A crate that also uses candle's CUDA support: candle-core 0.11 asks cudarc for `dynamic-linking` and
# `cuda-version-from-build-system`, and Cargo unifies those with our `fallback-dynamic-loading` and `cuda-13000`, so
# cudarc is then linked to the CUDA libraries instead of loading them, and its run-time probes (`is_culib_present`,
# `culib`) do not exist. Until 2026-11-29 we called them, and such a crate failed to compile. The dependency below
# asks cudarc for what candle does (without candle itself, whose kernels would need nvcc); `cargo check` only,
# since linking needs the CUDA libraries this machine does not have.
mkdir -p "$work/with-candle-features/src"
cat > "$work/with-candle-features/Cargo.toml" <<TOML
[package]
name = "with-candle-features"
version = "0.0.0"
edition = "2021"
[dependencies]
sparse-lowrank = { path = "../sparse-lowrank" }
cudarc = { version = "0.19.8", default-features = false, features = ["std", "cublas", "cublaslt", "curand", "driver", "nvrtc", "f16", "cuda-version-from-build-system", "dynamic-linking"] }
TOML
cat > "$work/with-candle-features/src/main.rs" <<'RS'
fn main() {
    let _ = sparse_lowrank::Gpu::new(0);
}
RS
cd "$work/with-candle-features"
env -u NVCC -u CUDA_HOME -u CUDA_PATH PATH="$clean_path" CARGO_TARGET_DIR="$root/target/dependent-check-linked" \
  cargo check -q 2>&1 | tee "$work/log-linked"
echo "dependent crate with cudarc linked (candle's features) compiles: ok"

# A crate that also uses burn's CUDA backend (CubeCL): cudarc 0.19 loaded at run time like ours, with
# `cuda-version-from-build-system`, `fallback-latest` and `nccl` (CubeCL's workspace Cargo.toml, 2026-08).
mkdir -p "$work/with-cubecl-features/src"
sed -e 's/with-candle-features/with-cubecl-features/' \
  -e 's/^cudarc = .*/cudarc = { version = "0.19.6", default-features = false, features = ["std", "driver", "nvrtc", "nccl", "fallback-dynamic-loading", "cuda-version-from-build-system", "fallback-latest"] }/' \
  "$work/with-candle-features/Cargo.toml" > "$work/with-cubecl-features/Cargo.toml"
cp "$work/with-candle-features/src/main.rs" "$work/with-cubecl-features/src/main.rs"
cd "$work/with-cubecl-features"
env -u NVCC -u CUDA_HOME -u CUDA_PATH PATH="$clean_path" CARGO_TARGET_DIR="$root/target/dependent-check-cubecl" \
  cargo check -q 2>&1 | tee "$work/log-cubecl"
echo "dependent crate with CubeCL's cudarc features compiles: ok"

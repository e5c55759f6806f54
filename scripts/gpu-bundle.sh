#!/usr/bin/env bash
# Builds, on a CPU machine, everything a lent GPU machine needs to validate the kernels (it has no Rust toolchain
# and no network): release test executables, the benchmark executable and the demo, stripped, with the check script, the
# PyTorch baseline script and the summary script, in target/gpu-bundle/ (the executables xz-compressed into
# bin.tar.xz, a few MB; kept under 60 MB).
# Then runs the bundle's CPU part once (tests on the emulator) to be sure it starts.
#
#   bash scripts/gpu-bundle.sh            # build the bundle
#   device run: bash target/gpu-bundle/gpu-check.sh   (carry: ["target/gpu-bundle"])
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-toolchain.sh
out=target/gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin"
# The commit stamps are taken before the build (a commit made while it runs must not relabel the bundle) and
# compared after it.
commit_before=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty_before=$(git status --porcelain | head -n 20 || true)

# Executables cargo reports as test or bench artifacts.
list_executables() {
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        print(m["executable"], ("bench-" if kind == "bench" else "test-") + m["target"]["name"])
'
}
cargo test --release --features emulator --no-run --message-format=json 2>/dev/null | list_executables > target/gpu-bundle.list
cargo bench --features emulator --no-run --message-format=json 2>/dev/null | list_executables >> target/gpu-bundle.list
cargo build --release --example demo 2>/dev/null
echo "target/release/examples/demo demo" >> target/gpu-bundle.list
while read -r exe name; do
  cp "$exe" "$out/bin/$name"
  # --strip-debug, not a full strip: the emulator's race checker finds the kernels' __shared__ arrays through the
  # symbol table (about 1 MB per executable before compression).
  strip --strip-debug "$out/bin/$name"
done < target/gpu-bundle.list
cp scripts/gpu-check.sh scripts/baselines.py scripts/gesvdr_baseline.py scripts/gpu_summary.py "$out/"
echo "$commit_before" > "$out/COMMIT"
printf '%s' "$dirty_before" > "$out/DIRTY"
if [ "$(git rev-parse HEAD 2>/dev/null || echo unknown)" != "$commit_before" ]; then
  echo "HEAD moved during the build (was $commit_before): rebuild the bundle" >&2; exit 1
fi
# Every executable the check names must be there (a missing one was skipped there without a word).
for name in test-topk test-rsvd test-sddmm test-spmm test-host_calls test-topk_size_limit bench-kernels demo; do
  [ -x "$out/bin/$name" ] || { echo "the bundle lacks $name" >&2; exit 1; }
done

ls -la "$out/bin"
# The GPU machine's glibc may be older than this one's: show the newest symbol version the executables need.
newest=$(for f in "$out"/bin/*; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
echo "newest glibc symbol needed: ${newest:-none}"

# CPU part: the test executables start and pass here (GPU tests skip visibly; the emulator runs). Their threads need
# more stack than the default 2 MiB: the emulator's static shared arrays are ~2 MB of thread-local storage, taken
# out of every thread's stack (docs/emulator.md; .cargo/config.toml sets this for cargo test, gpu-check.sh on the
# GPU machine).
export RUST_MIN_STACK="${RUST_MIN_STACK:-16777216}"
SLR_DEMO_ROWS=512 SLR_DEMO_COLS=512 "$out/bin/demo" | tail -n 3
for t in "$out"/bin/test-*; do
  if ! SLR_SOURCE_DIR="$root" "$t" -q > "target/gpu-bundle-cpu-$(basename "$t").log" 2>&1; then
    echo "CPU run of $(basename "$t") failed: see target/gpu-bundle-cpu-$(basename "$t").log" >&2; exit 1
  fi
  echo "CPU run ok: $(basename "$t") ($(grep -o 'test result: [^.]*' "target/gpu-bundle-cpu-$(basename "$t").log" | head -n 1))"
done
"$out/bin/bench-kernels" --bench 2>&1 | grep -i "skipped" || true

# The executables share most of their bytes (the kernels' fatbins, the emulator's host kernels): one xz stream
# with a 64 MiB window stores them in a few MB. gpu-check.sh unpacks bin.tar.xz with python3 (tarfile), or
# bin.tar.gz with tar where that fails.
python3 - "$out" <<'PY'
import io, lzma, os, shutil, sys, tarfile
out = sys.argv[1]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    t.add(os.path.join(out, "bin"), arcname="bin")
with open(os.path.join(out, "bin.tar.xz"), "wb") as f:
    f.write(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
# A gzip copy too, for a machine whose python3 lacks lzma and that has no xz (gzip is everywhere), but only while
# the bundle stays within the 60 MB a device run may carry: gzip's 32 KB window cannot share bytes between the
# executables, and the copy grew from ~22 MB to 66 MB by 2026-11-27 (more kernels, more planted-fault variants),
# against 5.7 MB of xz. python3 normally has lzma; gpu-check.sh tries tar with xz next.
gz = os.path.join(out, "bin.tar.gz")
with tarfile.open(gz, "w:gz", compresslevel=9) as t:
    t.add(os.path.join(out, "bin"), arcname="bin")
shutil.rmtree(os.path.join(out, "bin"))
total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
if total > 60 * 1024 * 1024:
    os.remove(gz)
    print(f"bin.tar.gz left out: the bundle would be {total / 2**20:.0f} MiB (the xz copy alone is enough where python3 has lzma or tar has xz)")
PY
echo "bundle: $(du -sh "$out" | cut -f1) in $out"
size_kb=$(du -sk "$out" | cut -f1)
if [ "$size_kb" -gt 61440 ]; then echo "bundle is over 60 MB" >&2; exit 1; fi

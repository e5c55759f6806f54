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
  strip "$out/bin/$name"
done < target/gpu-bundle.list
cp scripts/gpu-check.sh scripts/baselines.py scripts/gesvdr_baseline.py scripts/gpu_summary.py "$out/"
git rev-parse HEAD > "$out/COMMIT" 2>/dev/null || echo unknown > "$out/COMMIT"
git status --porcelain | head -n 20 > "$out/DIRTY" || true

ls -la "$out/bin"
# The GPU machine's glibc may be older than this one's: show the newest symbol version the executables need.
newest=$(for f in "$out"/bin/*; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
echo "newest glibc symbol needed: ${newest:-none}"

# CPU part: the test executables start and pass here (GPU tests skip visibly; the emulator runs).
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
# A gzip copy too (~22 MB), for a machine whose python3 lacks lzma and that has no xz: gzip is everywhere.
with tarfile.open(os.path.join(out, "bin.tar.gz"), "w:gz", compresslevel=9) as t:
    t.add(os.path.join(out, "bin"), arcname="bin")
shutil.rmtree(os.path.join(out, "bin"))
PY
echo "bundle: $(du -sh "$out" | cut -f1) in $out"
size_kb=$(du -sk "$out" | cut -f1)
if [ "$size_kb" -gt 61440 ]; then echo "bundle is over 60 MB" >&2; exit 1; fi

#!/usr/bin/env bash
# Runs on a lent GPU machine, from the repository root, out of the bundle that scripts/gpu-bundle.sh built:
#   bash target/gpu-bundle/gpu-check.sh
# Every step is bounded by its own limit and by the run's deadline (SLR_CHECK_BUDGET seconds from the start, 540 by
# default: give the device run timeout_s 570), so the table is printed and every file is written even when a step
# hangs. The whole took 7.2 minutes on an H200 (a5e77c2). Order: tests, benchmarks (one process per group, so a
# crash or a hang in one group loses only that group) and baselines, then the sanitizers with the time left.
# Logs and results go to $OUT (at most 8 files come back); status.txt says each step's result and seconds; a
# short table is printed last.
# A short focused run (the session's device time left after a full one): SLR_CHECK_TESTS="rsvd topk" (test
# executables, without the test- prefix; default all), SLR_CHECK_BENCH="rsvd:60 topk:40" (bench groups with their
# limits; default all), SLR_CHECK_BASELINES=0 (no PyTorch/cuSOLVER baselines; SLR_CHECK_BASELINES_ONLY="topk,spmm" limits
# the PyTorch ones to those groups, and runs cuSOLVER's gesvdr only when it names rsvd), SLR_CHECK_SANITIZE=rsvd (only
# the rSVD sanitizer steps; 0: none), SLR_CHECK_RSVD_RACECHECK=0 (not the three rSVD racecheck steps that
# otherwise run first: device_cholesky_small_, device_cholesky_wide_racecheck_, the_eigensolver_matches_faer).
set -uo pipefail
B="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-/tmp/slr-gpu-out}"
mkdir -p "$OUT"
export SLR_SOURCE_DIR="$PWD"
# The test executables carry the emulator, whose kernels' static shared arrays are thread-local: ~2 MB of static
# TLS, carved out of every thread's stack (.cargo/config.toml sets the same for cargo test).
export RUST_MIN_STACK="${RUST_MIN_STACK:-16777216}"
status="$OUT/status.txt"
# The executables travel compressed (scripts/gpu-bundle.sh): xz through python3's tarfile, else through tar with
# xz, else the gzip copy (when the bundle has room for it) through tar; unpacked next to this script.
if [ ! -d "$B/bin" ]; then
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$B/bin.tar.xz" "$B" 2>/dev/null \
    || { rm -rf "$B/bin"; tar -xJf "$B/bin.tar.xz" -C "$B" 2>/dev/null; } \
    || { rm -rf "$B/bin"; tar -xzf "$B/bin.tar.gz" -C "$B"; } \
    || echo "could not unpack the executables (bin.tar.xz, bin.tar.gz)"
  chmod +x "$B"/bin/* 2>/dev/null
fi
: > "$status"
note() { echo "$*" | tee -a "$status"; }
t0=$(date +%s)
budget=${SLR_CHECK_BUDGET:-540}
# A budget that is not a number would end the script at the arithmetic below, before any step: the default then.
if ! [[ "$budget" =~ ^[0-9]+$ ]]; then note "SLR_CHECK_BUDGET=$budget is not a number of seconds: 540"; budget=540; fi
deadline=$((t0 + budget))
# cap LIMIT: LIMIT, or the seconds left before the deadline less 15 (kept for the table, and for the 5 s between a
# timeout's TERM and its KILL) when that is smaller.
cap() { local left=$((deadline - $(date +%s) - 15)); [ "$left" -lt "$1" ] && echo "$left" || echo "$1"; }
# bounded LIMIT CMD...: runs CMD under `timeout` with the capped limit; returns 125 without running it when under
# 5 s are left. STEP_S is set to the seconds it took.
bounded() {
  local limit; limit=$(cap "$1"); shift
  if [ "$limit" -lt 5 ]; then STEP_S=0; return 125; fi
  local s0=$(date +%s)
  # KILL 5 s after TERM: a step that ignores TERM (stuck in the driver, a sanitizer waiting on its target) would
  # otherwise run past its limit and the deadline, and the device run's own limit would take the summary with it.
  timeout -k 5 "$limit" "$@"
  local rc=$?
  STEP_S=$(( $(date +%s) - s0 ))
  return $rc
}
verdict() { case $1 in 0) echo PASS;; 125) echo "NOT RUN (out of time)";; 124) echo "TIMED OUT (rc=124)";; 137) echo "KILLED 5 s after its time-out (rc=137)";; *) echo "FAIL (rc=$1)";; esac; }

# 1. The machine, the driver, the commit.
{
  date -u
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  echo "bundle commit: $(cat "$B/COMMIT")"
  [ -s "$B/DIRTY" ] && { echo "uncommitted changes when built:"; cat "$B/DIRTY"; }
  command -v nvcc && nvcc --version | tail -n 2
} 2>&1 | tee "$OUT/machine.txt"
# CUDA's libraries (cuBLAS for later ops) from the toolkit install; say which copy is found.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas\.so' | head -n 4 | tee -a "$OUT/machine.txt"

# 2. Every test executable, with skips turned into failures (SLR_REQUIRE_GPU=1), on the CUDA device only
# (SLR_DEVICES=cuda): the emulator's schedules run in every CI test run already, and on the GPU machine's host they
# were slow (test-rsvd 43 s in the sixth run, and past its 90 s limit in the seventh, inside the bf16/f16 test that
# then passed on the CUDA device alone in 4 s under memcheck).
tests_log="$OUT/tests.log"
: > "$tests_log"
for t in "$B"/bin/test-*; do
  name=$(basename "$t")
  if [ -n "${SLR_CHECK_TESTS:-}" ] && ! [[ " $SLR_CHECK_TESTS " == *" ${name#test-} "* ]]; then continue; fi
  echo "=== $name" >> "$tests_log"
  SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 90 "$t" --test-threads=8 >> "$tests_log" 2>&1
  rc=$?
  [ "$name" = test-topk ] && topk_rc=$rc
  note "tests $name: $(verdict $rc) (${STEP_S} s)"
done

# Top-k once more with programmatic dependent launch off (the bracket paths' ordinary launches, SLR_PDL=off): both
# orderings of its kernel chain are then checked against the CPU on the GPU.
rc=0
if [ -z "${SLR_CHECK_TESTS:-}" ] || [[ " $SLR_CHECK_TESTS " == *" topk "* ]]; then
  echo "=== test-topk with SLR_PDL=off" >> "$tests_log"
  SLR_PDL=off SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 60 "$B/bin/test-topk" --test-threads=8 >> "$tests_log" 2>&1
  rc=$?
  note "tests test-topk (SLR_PDL=off): $(verdict $rc) (${STEP_S} s)"
fi
# If top-k failed with dependent launches and passed without them, the benchmarks run without them (their
# "without programmatic dependent launch" lines are then skipped): the timings of a broken path mean nothing.
if [ "${topk_rc:-0}" -ne 0 ] && [ $rc -eq 0 ]; then
  export SLR_PDL=off
  note "top-k failed only with programmatic dependent launch: benchmarks run with SLR_PDL=off"
fi

# 2b. The README's demo (one sparse fine-tuning step on a 4096x4096 bf16 weight), on the GPU.
if [ -z "${SLR_CHECK_TESTS:-}" ]; then
  bounded 60 "$B/bin/demo" > "$OUT/demo.log" 2>&1
  rc=$?
  note "demo: $(verdict $rc) (${STEP_S} s) $(grep -E 'running on|agreement' "$OUT/demo.log" | tr '\n' ' ')"
  cat "$OUT/demo.log" >> "$tests_log"
  rm -f "$OUT/demo.log"
fi

# 3. Benchmarks (quick mode, CUDA events), one process per group, and the PyTorch baselines for the same shapes.
rm -f "$OUT/results.jsonl"
: > "$OUT/bench.log"
for spec in ${SLR_CHECK_BENCH:-spmm:70 topk:80 rsvd:60 sddmm:50 gather_scatter:20 csr_transpose:20 mask_to_csr:20 tile_mma:15}; do
  group=${spec%%:*}; limit=${spec#*:}
  [[ "$spec" == *:* && "$limit" =~ ^[0-9]+$ ]] || { note "bench spec '$spec' has no :seconds: 60 s"; limit=60; }
  echo "=== bench $group" >> "$OUT/bench.log"
  SLR_BENCH_ONLY=$group SLR_BENCH_QUICK=1 SLR_BENCH_JSON="$OUT/results.jsonl" bounded "$limit" "$B/bin/bench-kernels" --bench >> "$OUT/bench.log" 2>&1
  rc=$?
  note "bench $group: $(verdict $rc) (${STEP_S} s)"
done
if [ "${SLR_CHECK_BASELINES:-1}" != 0 ]; then
  PYTHONUNBUFFERED=1 bounded 75 python3 "$B/baselines.py" --json "$OUT/results.jsonl" ${SLR_CHECK_BASELINES_ONLY:+--only "$(echo "$SLR_CHECK_BASELINES_ONLY" | tr ' ' ',')"} > "$OUT/baselines.log" 2>&1
  note "baselines: $(verdict $?) (${STEP_S} s)"
  # cuSOLVER's randomized SVD through ctypes, in its own process (a wrong binding cannot lose the rest); only when
  # the rSVD baselines are asked for.
  if [ -z "${SLR_CHECK_BASELINES_ONLY:-}" ] || [[ ",$(echo "$SLR_CHECK_BASELINES_ONLY" | tr ' ' ','),"  == *",rsvd,"* ]]; then
    PYTHONUNBUFFERED=1 bounded 60 python3 "$B/gesvdr_baseline.py" --json "$OUT/results.jsonl" >> "$OUT/baselines.log" 2>&1
    note "gesvdr baseline: $(verdict $?) (${STEP_S} s)"
  fi
fi

# 4. compute-sanitizer on the GPU property tests (CUDA device only, small sizes are the tests' own).
san_log="$OUT/sanitizer.log"
: > "$san_log"
if [ "${SLR_CHECK_SANITIZE:-1}" = 0 ]; then
  note "compute-sanitizer: skipped (SLR_CHECK_SANITIZE=0)"
elif command -v compute-sanitizer >/dev/null; then
  # First (short, and it did not get its turn at the end in the sixth run):
  # rSVD's Cholesky/inverse kernels share memory between threads: racecheck on the `device_cholesky_small_` tests
  # only (the packed kernel at l <= 40, the tiled kernel at every M up to l = 160; the packed kernel at l = 138 did
  # not finish in 140 s on an H200; the rest of test-rsvd is cuBLAS, which memcheck covers).
  # (SLR_CHECK_RSVD_RACECHECK=0 skips this step and the two below it.)
  if [ -x "$B/bin/test-rsvd" ] && [ "${SLR_CHECK_RSVD_RACECHECK:-1}" != 0 ]; then
    echo "=== racecheck rsvd device_cholesky_small_" >> "$san_log"
    SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 60 compute-sanitizer --tool racecheck --error-exitcode 99 \
      "$B/bin/test-rsvd" --test-threads=1 device_cholesky_small_ >> "$san_log" 2>&1
    rc=$?
    note "compute-sanitizer racecheck rsvd (device_cholesky_small_): $(verdict $rc) (${STEP_S} s)"
    # The wide tiled kernel (l <= 288, sm_90; since 2026-11-28): one sweep at M = 9, whose two helper rounds the
    # tests above never reach (they stop at M = 5).
    echo "=== racecheck rsvd device_cholesky_wide_racecheck_" >> "$san_log"
    SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 60 compute-sanitizer --tool racecheck --error-exitcode 99 \
      "$B/bin/test-rsvd" --test-threads=1 device_cholesky_wide_racecheck_ >> "$san_log" 2>&1
    rc=$?
    note "compute-sanitizer racecheck rsvd (device_cholesky_wide_racecheck_): $(verdict $rc) (${STEP_S} s)"
    # Our eigensolver (five kernels since 2026-11-28; the one-block version passed in the eleventh run): its matrix,
    # factors, reflectors and reductions live in shared memory between barriers and warp syncs. Its faer test (l = 1
    # to 160, twelve matrices) under racecheck; a timeout says only that it did not finish.
    echo "=== racecheck rsvd the_eigensolver_matches_faer" >> "$san_log"
    SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 90 compute-sanitizer --tool racecheck --error-exitcode 99 \
      "$B/bin/test-rsvd" --test-threads=1 the_eigensolver_matches_faer >> "$san_log" 2>&1
    rc=$?
    note "compute-sanitizer racecheck rsvd (the_eigensolver_matches_faer): $(verdict $rc) (${STEP_S} s)"
  fi
  # memcheck on every GPU property test; racecheck on the kernels that share memory between threads.
  specs="memcheck:gather_scatter memcheck:mask_to_csr memcheck:spmm memcheck:tile_mma memcheck:sddmm memcheck:csr_transpose memcheck:topk memcheck:rsvd racecheck:gather_scatter racecheck:mask_to_csr racecheck:spmm racecheck:sddmm racecheck:csr_transpose racecheck:topk"
  [ "${SLR_CHECK_SANITIZE:-1}" = rsvd ] && specs="memcheck:rsvd"
  # SLR_CHECK_SANITIZE_SPECS="memcheck:topk racecheck:topk ...": these steps, in this order, instead.
  [ -n "${SLR_CHECK_SANITIZE_SPECS:-}" ] && specs="$SLR_CHECK_SANITIZE_SPECS"
  for spec in $specs; do
    tool=${spec%%:*}; name=${spec#*:}
    [ -x "$B/bin/test-$name" ] || continue
    echo "=== $tool $name" >> "$san_log"
    # racecheck of topk: 17 of its 18 tests took ~95 s on an H200 (5f7e50a) and the f32 random-sizes test did not
    # finish in the remaining 5 s; that one is skipped under racecheck (its f16 and bf16 twins run the same kernels
    # on the same shapes), the rest finish well inside 40 s. The alignment test of the bracket passes (60 selections
    # over 270 k keys, 2026-11-27) is skipped there too: the same streaming kernels run under racecheck in
    # large_matrices_take_the_sample_bracket_and_match_cpu_exactly, and memcheck keeps it (its ragged edges).
    limit=40; skip=(); [ "$spec" = racecheck:topk ] && { limit=110; skip=(--skip topk_f32_matches_cpu_exactly --skip the_bracket_passes_read_misaligned); }
    SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded $limit compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$B/bin/test-$name" --test-threads=1 "${skip[@]}" >> "$san_log" 2>&1
    rc=$?
    note "compute-sanitizer $tool $name: $(verdict $rc) (${STEP_S} s)"
    # compute-sanitizer under programmatic dependent launch is untried: a top-k failure is rerun without it, so a
    # tool limitation is told apart from a kernel fault (not after a timeout: the rerun would time out too).
    if [ "$name" = topk ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 125 ] && [ "${SLR_PDL:-}" != off ]; then
      echo "=== $tool $name with SLR_PDL=off" >> "$san_log"
      SLR_PDL=off SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded $limit compute-sanitizer --tool "$tool" --error-exitcode 99 \
        "$B/bin/test-$name" --test-threads=1 "${skip[@]}" >> "$san_log" 2>&1
      note "compute-sanitizer $tool $name (SLR_PDL=off): $(verdict $?) (${STEP_S} s)"
    fi
  done
else
  note "compute-sanitizer: NOT FOUND"
fi

# 4b. Top-k at the issue's size limit, 2^31 - 1 keys (4 GB of bf16, then 8 GB of f32; ignored in ordinary test
# runs, which cannot hold it): every output held to the selection's defining properties in linear passes
# (tests/topk_size_limit.rs). After the sanitizers, with the time left (it has never run on a GPU: its time is not
# known), bounded at 120 s. SLR_CHECK_SIZE_LIMIT=0 skips it; each reason it does not run is noted.
if [ "${SLR_CHECK_SIZE_LIMIT:-1}" = 0 ]; then
  note "tests test-topk_size_limit (2^31 - 1 keys): skipped (SLR_CHECK_SIZE_LIMIT=0)"
elif [ -n "${SLR_CHECK_TESTS:-}" ] && ! [[ " $SLR_CHECK_TESTS " == *" topk "* ]]; then
  note "tests test-topk_size_limit (2^31 - 1 keys): skipped (SLR_CHECK_TESTS does not name topk)"
elif [ ! -x "$B/bin/test-topk_size_limit" ]; then
  note "tests test-topk_size_limit (2^31 - 1 keys): NOT IN THE BUNDLE"
else
  echo "=== test-topk_size_limit --ignored (2^31 - 1 keys)" >> "$tests_log"
  SLR_DEVICES=cuda SLR_REQUIRE_GPU=1 bounded 120 "$B/bin/test-topk_size_limit" --ignored --nocapture size_limit >> "$tests_log" 2>&1
  note "tests test-topk_size_limit (2^31 - 1 keys, --ignored): $(verdict $?) (${STEP_S} s)"
fi

# rSVD's and top-k's time per step (SLR_RSVD_PROFILE / SLR_TOPK_PROFILE, set by the bench for one extra call per
# case); the full lines are in bench.log.
grep -E 'rsvd profile|topk profile' "$OUT/bench.log" | cut -c1-300

# 5. The table, last.
python3 "$B/gpu_summary.py" "$OUT/results.jsonl" | tee "$OUT/summary.txt"
echo
note "total: $(( $(date +%s) - t0 )) s"
cat "$status"

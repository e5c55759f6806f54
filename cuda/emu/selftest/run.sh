#!/usr/bin/env bash
# Builds the SIMT emulator self-test with g++ (the same flags the emulated build uses for kernels)
# and runs it three times: with the x86-64 fiber switch, with the ucontext fallback, and with the x86-64 switch
# under the shared-memory race checker (kernels built with -fsanitize=thread, SLR_EMU_RACECHECK).
# Usage: bash cuda/emu/selftest/run.sh [-v]
#   -v                  print every launch error message
#   SLR_CUDA_INCLUDE    CUDA include dir (default: <repo>/.toolchain/site/nvidia/cu13/include)
#   SLR_EMU_OPT         optimisation flag for kernels and runtime (default -O1, as the emulated build)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CUDA_DIR="$(cd "$HERE/../.." && pwd)"                     # .../cuda  (so "emu/cuda_emu.h" resolves)
INC="${SLR_CUDA_INCLUDE:-$CUDA_DIR/../.toolchain/site/nvidia/cu13/include}"
CXX="${CXX:-g++}"
if [ ! -f "$INC/cuda_fp16.h" ]; then
  echo "FAIL  CUDA headers not found in $INC (set SLR_CUDA_INCLUDE)"; exit 1
fi
BUILD="$(mktemp -d "${TMPDIR:-/tmp}/slr_emu_selftest.XXXXXX")"
[ -n "${SLR_KEEP_BUILD:-}" ] || trap 'rm -rf "$BUILD"' EXIT
OPT="${SLR_EMU_OPT:--O1}"
CU_FLAGS=(-std=c++17 -x c++ -DSLR_EMULATE -I"$CUDA_DIR" -I"$INC" "$OPT" -fPIC -Wall -Wextra -Werror)
RT_FLAGS=(-std=c++17 -I"$CUDA_DIR" -I"$INC" "$OPT" -fPIC -Wall -Wextra -Werror)

status=0
for variant in asm ucontext racecheck; do
  extra=()
  cu_extra=()
  [ "$variant" = ucontext ] && extra=(-DSLR_EMU_USE_UCONTEXT)
  # The race checker: kernels instrumented by g++'s -fsanitize=thread, whose hooks the runtime provides.
  [ "$variant" = racecheck ] && extra=(-DSLR_EMU_RACECHECK) && cu_extra=(-fsanitize=thread --param=tsan-instrument-func-entry-exit=0)
  OUT="$BUILD/$variant"; mkdir -p "$OUT"
  echo "== building ($variant context switch) in $OUT"
  pids=()
  "$CXX" "${RT_FLAGS[@]}" "${extra[@]}" -c "$CUDA_DIR/emu/runtime.cpp" -o "$OUT/runtime.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -c "$HERE/reduce.cu" -o "$OUT/reduce.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -DFAULT_MISSING_SYNC -c "$HERE/reduce.cu" -o "$OUT/reduce_missing_sync.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -c "$HERE/warp.cu" -o "$OUT/warp.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -DFAULT_WRONG_LANE -c "$HERE/warp.cu" -o "$OUT/warp_wrong_lane.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -c "$HERE/misc.cu" -o "$OUT/misc.o" & pids+=($!)
  "$CXX" "${CU_FLAGS[@]}" "${extra[@]}" "${cu_extra[@]}" -c "$HERE/race.cu" -o "$OUT/race.o" & pids+=($!)
  "$CXX" -std=c++17 -O1 -Wall -Wextra -Werror "${extra[@]}" -I"$CUDA_DIR" -I"$INC" -c "$HERE/main.cpp" -o "$OUT/main.o" & pids+=($!)
  for p in "${pids[@]}"; do wait "$p"; done
  ar rcs "$OUT/libslr_emu_selftest.a" "$OUT"/runtime.o "$OUT"/reduce.o "$OUT"/reduce_missing_sync.o \
    "$OUT"/warp.o "$OUT"/warp_wrong_lane.o "$OUT"/misc.o "$OUT"/race.o
  "$CXX" "$OUT/main.o" -L"$OUT" -lslr_emu_selftest -lstdc++ -lm -lpthread -ldl -o "$OUT/selftest"
  echo "== running ($variant)"
  if ! timeout 120 "$OUT/selftest" "$@"; then status=1; fi
done
if [ $status -eq 0 ]; then echo "ALL PASS"; else echo "SOME TESTS FAILED"; fi
exit $status

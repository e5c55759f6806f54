// Shared CUDA helpers for every kernel file: dtype conversion to/from f32, and the switch that lets the same
// source compile for the GPU (nvcc) or for the host under the SIMT emulator (g++ -DSLR_EMULATE, cuda/emu/).
//
// Conventions (docs/design.md): kernels are templates over the element type with f32 accumulation; each is
// instantiated by `extern "C" __global__` wrappers named `<op>_<dtype>` so the Rust side picks by type; each
// wrapper is followed by SLR_EMU_EXPORT(name) so the emulator can launch it. Inline PTX lives only in named
// helpers with a host version: the tensor-core mma helpers are in cuda/mma.cuh.
#pragma once

#ifdef SLR_EMULATE
#include "emu/cuda_emu.h"
#else
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define SLR_EMU_EXPORT(kernel)
#define SLR_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) type name[]
#endif

namespace slr {

// Element <-> f32. Conversions to narrow types round to nearest even, once.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Programmatic dependent launch (src/device/mod.rs `launch_after_previous`; sm_90 only). A kernel launched that
// way may start while the previous kernel of the stream is still running: every thread must call
// wait_for_previous_grid() before it reads anything an earlier stream operation wrote, before it writes anything
// global, and before it exits (so that its grid's completion implies the previous one's: the chain stays
// ordered). Before the wait it may only read inputs that were complete before the previous kernel started (the
// op's arguments) and use its own shared memory. allow_next_grid() lets the next such launch be scheduled once
// every block of this grid has called it or exited; it orders nothing (the next kernel's wait does). Both are
// no-ops below sm_90, and on the emulator, where kernels run one after another.
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// An optimization barrier on a value (nothing is emitted): the compiler may not assume it equals what was assigned,
// so that nothing computed from it is hoisted above this point (ptxas had moved a wide kernel's loop-invariant
// load and store addresses above a loop and kept them live, and spilled, through a register-tight sweep). Pass an
// integer the addresses depend on, not the pointer: a pointer through the barrier loses its address space (generic
// LD/ST instead of LDG/STG). A no-op on the emulator, which compiles no inline PTX.
template <typename T>
__device__ __forceinline__ void opaque(T& x) {
#ifndef SLR_EMULATE
    if constexpr (sizeof(T) == 8) {
        asm volatile("" : "+l"(x));
    } else {
        asm volatile("" : "+r"(x));
    }
#endif
}

// Index of the CSR row that holds entry `e`: the largest r in [lo, hi] with row_offsets[r] <= e. Requires a
// validated CSR (offsets non-decreasing, row_offsets[rows] = nnz > e) and row_offsets[lo] <= e. About
// log2(hi - lo + 1) dependent loads of a small array that stays in L1/L2.
__device__ __forceinline__ unsigned csr_row_of_entry(const unsigned* __restrict__ row_offsets, unsigned lo,
                                                     unsigned hi, unsigned e) {
    while (lo < hi) {
        unsigned mid = lo + (hi - lo + 1) / 2;
        if (row_offsets[mid] <= e) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// The same over all rows [0, rows).
__device__ __forceinline__ unsigned csr_row_of_entry(const unsigned* __restrict__ row_offsets, unsigned rows,
                                                     unsigned e) {
    return csr_row_of_entry(row_offsets, 0u, rows - 1, e);
}

// csr_row_of_entry by a whole warp (all 32 lanes, the same lo, hi and e; every lane gets the row): a 32-way
// search, lane i probing row lo + i * n / 32 of the n = hi - lo + 1 left. The offsets are non-decreasing, so the
// lanes whose probe is <= e are a prefix (lane 0's is row lo, <= e by the precondition): the row lies between the
// last such probe and the next one. About log32(n) dependent rounds of loads instead of log2(n) (11008 rows: 3
// instead of 14). Same result as csr_row_of_entry.
__device__ __forceinline__ unsigned csr_row_of_entry_warp(const unsigned* __restrict__ row_offsets, unsigned lo,
                                                          unsigned hi, unsigned e) {
    const unsigned long long lane = threadIdx.x % 32;
    while (lo < hi) {
        const unsigned long long n = (unsigned long long)(hi - lo) + 1;
        const unsigned probe = lo + (unsigned)(lane * n / 32);
        // | 1: lane 0 is below by the precondition; never let a broken one leave no lane (and no progress).
        const unsigned below = __ballot_sync(0xffffffffu, row_offsets[probe] <= e) | 1u;
        const unsigned long long last = 31 - __clz(below);
        if (last < 31) hi = lo + (unsigned)((last + 1) * n / 32) - 1;
        lo += (unsigned)(last * n / 32);
    }
    return lo;
}

// Sum of v over the 32 lanes of a full warp, every lane receiving it; a fixed xor butterfly, so the order of the
// additions (and a float result's rounding) is the same every run.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Inclusive prefix sum of v over the lanes of a full warp (lane l gets v[0] + ... + v[l]), by log2(32) shuffles
// up; an integer sum, so exact and order-free.
__device__ __forceinline__ unsigned warp_inclusive_scan(unsigned v) {
    const unsigned lane = threadIdx.x % 32;
    for (unsigned d = 1; d < 32; d <<= 1) {
        const unsigned up = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += up;
    }
    return v;
}

// Any bitwise function of three words in one instruction (PTX lop3; the compiler does not always find it): bit i
// of kLut is the result for the input bits (a, b, c) = (i >> 2 & 1, i >> 1 & 1, i & 1), i.e. the function applied
// to a = 0xF0, b = 0xCC, c = 0xAA.
template <unsigned kLut>
__device__ __forceinline__ unsigned lop3(unsigned a, unsigned b, unsigned c) {
    static_assert(kLut < 256, "an 8-bit truth table");
#ifdef SLR_EMULATE
    unsigned r = 0;
    for (unsigned i = 0; i < 8; ++i) {
        if (kLut >> i & 1) r |= (i & 4 ? a : ~a) & (i & 2 ? b : ~b) & (i & 1 ? c : ~c);
    }
    return r;
#else
    unsigned r;
    asm("lop3.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(a), "r"(b), "r"(c), "n"(kLut));
    return r;
#endif
}

// A whole vector (uint4, float4, uint2, ...) at p, which must be aligned to the vector's size: loaded or stored by
// the plain access on the device (the same instruction as *p). Under the emulator the address's alignment is
// checked first: the GPU faults on a misaligned vector access, x86 does not, and g++ copies a 16-byte vector by
// 4-byte moves, so a misaligned plain access would pass there unnoticed.
template <typename V> __device__ __forceinline__ V load_vec(const V* p) {
#ifdef SLR_EMULATE
    ::slr_emu::detail::check_aligned(p, "misaligned address in a vector load (slr::load_vec; the GPU faults)");
#endif
    return *p;
}
template <typename V> __device__ __forceinline__ void store_vec(V* p, const V& v) {
#ifdef SLR_EMULATE
    ::slr_emu::detail::check_aligned(p, "misaligned address in a vector store (slr::store_vec; the GPU faults)");
#endif
    *p = v;
}

}  // namespace slr

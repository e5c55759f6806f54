// cuda_emu.h - lets CUDA kernel sources (.cu) compile with g++ and run on the CPU ("SIMT emulator").
//
// Included by cuda/common.cuh when SLR_EMULATE is defined.  Everything a kernel can name lives here:
// qualifiers, built-in index variables, __syncthreads and friends, warp primitives, atomics,
// intrinsics, and the SLR_EMU_EXPORT macro that turns a kernel into a C-ABI launch entry
// (see emu_abi.h).  The scheduler, fibers, guard-page allocator and fault handling are in
// runtime.cpp, which must be compiled and linked once next to the kernel objects.
//
// Execution model (details in README.md):
//  * A launch runs on the calling OS thread.  Blocks run one after another; every thread of a block
//    is a fiber (own stack, cooperative switching).  A fiber runs until it reaches a scheduling point
//    - __syncthreads*, a warp collective (__shfl*_sync, __ballot_sync, __syncwarp, ...),
//    __nanosleep, or its exit - and the scheduler then picks the next runnable fiber (round-robin or
//    seeded random, chosen per launch).
//  * Several launches may run at the same time on different OS threads; all emulator state is
//    per OS thread.
//
// This header is ODR-safe: it only has macros, inline functions, templates and declarations, so any
// number of .cu files including it can be linked together.
#ifndef SLR_EMU_CUDA_EMU_H
#define SLR_EMU_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h needs C++17 (compile the .cu files with g++ -std=c++17 -x c++)"
#endif

// Standard headers first: some qualifier macros defined below (e.g. __noinline__) would otherwise
// collide with attribute spellings inside the C++ standard library headers.
#include <math.h>    // global-namespace fmaf, sqrtf, isnan, ... as CUDA provides them
#include <stdlib.h>  // global abs(int) etc.
#include <assert.h>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

// CUDA's own host headers: __half / __nv_bfloat16 (host conversions round to nearest even, exactly
// as on the device), float4 / uint4 / dim3 ... with device alignment, make_float4 ...
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <vector_types.h>
#include <vector_functions.h>

#include "emu_abi.h"

#ifdef __CUDACC__
#error "cuda_emu.h is for host compilers only (g++ -DSLR_EMULATE), not nvcc"
#endif

#define SLR_EMU_VERSION 1

// ---------------------------------------------------------------------------------------------
// Qualifiers.  Execution-space qualifiers carry no meaning on the CPU: everything is host code.
// ---------------------------------------------------------------------------------------------
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
// Empty on purpose: libstdc++/glibc headers spell attributes as __attribute__((__noinline__)), which
// stays valid ("__attribute__(())") with an empty macro but breaks with any non-empty one.
#undef __noinline__
#define __noinline__
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __maxnreg__
#define __maxnreg__(n)
#undef __align__
#define __align__(n) __attribute__((aligned(n)))
#undef __grid_constant__
#define __grid_constant__
// __constant__ variables become C++17 inline variables: one copy even when a header that defines one
// is included by several .cu files linked into the same library (nvcc keeps one per module).
#undef __constant__
#define __constant__ inline
#undef __managed__
#define __managed__
// Static shared memory: one copy per block.  All threads of a block are fibers of one OS thread and
// blocks of a launch run one after another on it, so a function-local `static thread_local` is
// exactly "one instance per running block, seen by all its threads".  thread_local (not just static)
// because several launches run concurrently on different OS threads.
// NOTE: the contents are NOT reset between blocks or launches (as on a GPU, where they are
// undefined); the very first use on an OS thread sees zeros.
#undef __shared__
#define __shared__ static thread_local

// Dynamic shared memory.  Kernels write `SLR_DYNAMIC_SMEM(float, buf);` inside the kernel (or device
// function) body instead of `extern __shared__ float buf[];`.  Here it is a pointer to the
// launch's per-OS-thread buffer of cfg->dynamic_smem_bytes bytes: 16-byte aligned, its end abuts a
// PROT_NONE guard page (overruns fault and are reported), and it is refilled at the start of every
// block with the launch's fill byte (runtime.cpp slr_emu_uninit_fill: 0xA5, 0xFF or 0x7F by schedule) so that
// reading before writing gives garbage, not zeros.
#undef SLR_DYNAMIC_SMEM
#define SLR_DYNAMIC_SMEM(type, name) \
  type* const name = reinterpret_cast<type*>(::slr_emu::detail::tl_dyn_smem)

#ifndef SLR_EMU_EXPORT_VISIBILITY
#define SLR_EMU_EXPORT_VISIBILITY __attribute__((visibility("default")))
#endif

// ---------------------------------------------------------------------------------------------
// Interface to the runtime (runtime.cpp).  Not for kernel code.
// ---------------------------------------------------------------------------------------------
namespace slr_emu {
namespace detail {

// Built-in index registers of the fiber that is currently running on this OS thread.  The scheduler
// rewrites tid before switching to a fiber and bid/bdim/gdim before each block.  A fiber never
// migrates between OS threads, so a value read by a fiber stays its own.
struct Regs {
  uint3 tid;
  uint3 bid;
  uint3 bdim;
  uint3 gdim;
};
extern __thread Regs tl_regs;
// Dynamic shared memory of the block running on this OS thread (nullptr outside a launch).
extern __thread unsigned char* tl_dyn_smem;

// Warp collective operation codes (runtime.cpp has the names used in messages).
enum WarpOp : int {
  OP_SHFL_IDX = 1,
  OP_SHFL_UP,
  OP_SHFL_DOWN,
  OP_SHFL_XOR,
  OP_BALLOT,
  OP_ANY,
  OP_ALL,
  OP_UNI,
  OP_SYNCWARP,
  OP_MATCH_ANY,
  OP_MATCH_ALL,
  OP_RED_ADD,
  OP_RED_MIN_U,
  OP_RED_MAX_U,
  OP_RED_MIN_S,
  OP_RED_MAX_S,
  OP_RED_AND,
  OP_RED_OR,
  OP_RED_XOR,
  OP_COUNT_
};

// Barrier flavours for block_barrier().
enum BarrierKind : int { BAR_SYNC = 0, BAR_COUNT = 1, BAR_AND = 2, BAR_OR = 3 };

struct WarpResult {
  unsigned long long bits;  // the lane's result (shuffled value, ballot bits, ...)
  int valid;                // 0: a shuffle read a lane outside the mask -> caller returns poison
  int pred;                 // __match_all_sync's predicate
};

// __syncthreads*: blocks the calling fiber until every non-exited thread of the block arrived.
int block_barrier(int kind, int pred);
// Warp collective: blocks the calling fiber until every lane named in mask arrived at the same
// collective; reports divergence / exited lanes / deadlock as launch errors.
WarpResult warp_op(int op, unsigned mask, unsigned long long in, int arg, int width, int size);
unsigned active_mask();
void yield_now();
[[noreturn]] void assert_fail(const char* expr, const char* file, unsigned line, const char* func);
[[noreturn]] void trap(const char* what);
long long clock_ns();

typedef void (*Thunk)(void*);
// param_kinds: one SLR_EMU_ARG_* per parameter (arg_kind below); the launch is refused unless cfg's nargs and
// arg_kinds match them.
int run_grid(const char* kernel, const slr_emu_launch* cfg, unsigned nparams, const unsigned char* param_kinds,
             void** args, Thunk thunk, void* ctx, char* err, size_t err_len);

template <class To, class From>
inline To bit_cast(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast size mismatch");
  To t;
  std::memcpy(static_cast<void*>(&t), static_cast<const void*>(&f), sizeof(To));
  return t;
}

}  // namespace detail
}  // namespace slr_emu

// ---------------------------------------------------------------------------------------------
// Built-in variables.  Read-only views of the running fiber's registers.
// ---------------------------------------------------------------------------------------------
#define threadIdx (static_cast<const ::uint3&>(::slr_emu::detail::tl_regs.tid))
#define blockIdx (static_cast<const ::uint3&>(::slr_emu::detail::tl_regs.bid))
#define blockDim (static_cast<const ::uint3&>(::slr_emu::detail::tl_regs.bdim))
#define gridDim (static_cast<const ::uint3&>(::slr_emu::detail::tl_regs.gdim))
static constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------
// Block barriers.  Real barriers over the fibers of the block.  Threads that have exited do not hold
// a barrier up (sm_70+ behaviour).  __syncthreads_count/and/or reduce the predicate over the
// threads that take part; mixing flavours at the same barrier is reported as an error.
// ---------------------------------------------------------------------------------------------
inline void __syncthreads() { (void)::slr_emu::detail::block_barrier(::slr_emu::detail::BAR_SYNC, 0); }
inline int __syncthreads_count(int pred) {
  return ::slr_emu::detail::block_barrier(::slr_emu::detail::BAR_COUNT, pred);
}
inline int __syncthreads_and(int pred) {
  return ::slr_emu::detail::block_barrier(::slr_emu::detail::BAR_AND, pred);
}
inline int __syncthreads_or(int pred) {
  return ::slr_emu::detail::block_barrier(::slr_emu::detail::BAR_OR, pred);
}

// Memory fences: fibers switch only at scheduling points and the whole launch runs on one OS thread,
// so every write is visible to every later read; fences have nothing to do.
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
// A spin-wait that sleeps gives other threads of the block a chance to run (it is a scheduling point).
inline void __nanosleep(unsigned) { ::slr_emu::detail::yield_now(); }

// ---------------------------------------------------------------------------------------------
// Warp primitives.  A warp is 32 consecutive linear thread ids (x + y*bx + z*bx*by).  Every call is
// a warp collective: the calling lane blocks until each lane named in `mask` has arrived at a
// collective with the same mask, then all of them get their results at once (real lane exchange).
// Lanes of a divergent warp may sync on disjoint or nested sub-masks one after another, as on sm_70+.
// Reported as launch errors instead of hanging:
//   * the caller's own lane is not in mask;
//   * mask names lanes that have exited or do not exist (partial last warp of a block);
//   * lanes with the same mask arrive at different collectives (e.g. __ballot_sync vs __shfl_sync)
//     or shuffle values of different sizes ("warp divergence");
//   * a shuffle width that is not a power of two in [1, 32];
//   * nothing can run any more (e.g. some lanes wait in a shuffle for lanes that wait at
//     __syncthreads): "deadlock", naming the block, the waiting lanes and where the others are.
// A shuffle whose source lane is not in mask is undefined on the GPU; here it returns poison: a NaN
// for floating-point types (float, double, __half, __nv_bfloat16 and their pairs), 0xA5 bytes for
// integer types.  Shuffle index arithmetic (width segments, clamping of up/down, xor into later
// segments returning the own value) follows the PTX shfl.sync definition.
// ---------------------------------------------------------------------------------------------
namespace slr_emu {
namespace detail {

template <class T>
inline T poison_value() {
  unsigned char b[sizeof(T)];
  std::memset(b, 0xA5, sizeof(T));
  T v;
  std::memcpy(static_cast<void*>(&v), b, sizeof(T));
  return v;
}
template <>
inline float poison_value<float>() { return bit_cast<float>(0x7FE5A5A5u); }
template <>
inline double poison_value<double>() { return bit_cast<double>(0x7FFDA5A5A5A5A5A5ull); }
template <>
inline __half poison_value<__half>() { return __ushort_as_half(static_cast<unsigned short>(0x7EA5)); }
template <>
inline __nv_bfloat16 poison_value<__nv_bfloat16>() {
  return __ushort_as_bfloat16(static_cast<unsigned short>(0x7FE5));
}
template <>
inline __half2 poison_value<__half2>() { return __halves2half2(poison_value<__half>(), poison_value<__half>()); }
template <>
inline __nv_bfloat162 poison_value<__nv_bfloat162>() {
  return __halves2bfloat162(poison_value<__nv_bfloat16>(), poison_value<__nv_bfloat16>());
}

template <class T>
inline unsigned long long to_bits(const T& v) {
  static_assert(sizeof(T) <= 8, "warp primitives move at most 8 bytes per lane");
  // (__half2 / __nv_bfloat162 are not formally trivially copyable, but are plain bit containers.)
  unsigned long long b = 0;
  std::memcpy(&b, static_cast<const void*>(&v), sizeof(T));
  return b;
}
template <class T>
inline T from_bits(unsigned long long b) {
  T v;
  std::memcpy(static_cast<void*>(&v), &b, sizeof(T));
  return v;
}

template <class T>
inline T shfl(int op, unsigned mask, T var, int arg, int width) {
  WarpResult r = warp_op(op, mask, to_bits(var), arg, width, static_cast<int>(sizeof(T)));
  return r.valid ? from_bits<T>(r.bits) : poison_value<T>();
}

}  // namespace detail
}  // namespace slr_emu

// The overload set is the one CUDA declares, so overload resolution matches the device build.
#define SLR_EMU_SHFL_OVERLOADS_(T)                                                                   \
  inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {                   \
    return ::slr_emu::detail::shfl<T>(::slr_emu::detail::OP_SHFL_IDX, mask, var, srcLane, width);    \
  }                                                                                                  \
  inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {         \
    return ::slr_emu::detail::shfl<T>(::slr_emu::detail::OP_SHFL_UP, mask, var, static_cast<int>(delta), \
                                      width);                                                        \
  }                                                                                                  \
  inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {       \
    return ::slr_emu::detail::shfl<T>(::slr_emu::detail::OP_SHFL_DOWN, mask, var,                     \
                                      static_cast<int>(delta), width);                               \
  }                                                                                                  \
  inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {              \
    return ::slr_emu::detail::shfl<T>(::slr_emu::detail::OP_SHFL_XOR, mask, var, laneMask, width);   \
  }
SLR_EMU_SHFL_OVERLOADS_(int)
SLR_EMU_SHFL_OVERLOADS_(unsigned int)
SLR_EMU_SHFL_OVERLOADS_(long)
SLR_EMU_SHFL_OVERLOADS_(unsigned long)
SLR_EMU_SHFL_OVERLOADS_(long long)
SLR_EMU_SHFL_OVERLOADS_(unsigned long long)
SLR_EMU_SHFL_OVERLOADS_(float)
SLR_EMU_SHFL_OVERLOADS_(double)
SLR_EMU_SHFL_OVERLOADS_(__half)
SLR_EMU_SHFL_OVERLOADS_(__half2)
SLR_EMU_SHFL_OVERLOADS_(__nv_bfloat16)
SLR_EMU_SHFL_OVERLOADS_(__nv_bfloat162)
#undef SLR_EMU_SHFL_OVERLOADS_

inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(
      ::slr_emu::detail::warp_op(::slr_emu::detail::OP_BALLOT, mask, pred != 0, 0, 32, 4).bits);
}
inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(::slr_emu::detail::warp_op(::slr_emu::detail::OP_ANY, mask, pred != 0, 0, 32, 4).bits);
}
inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(::slr_emu::detail::warp_op(::slr_emu::detail::OP_ALL, mask, pred != 0, 0, 32, 4).bits);
}
inline int __uni_sync(unsigned mask, int pred) {
  return static_cast<int>(::slr_emu::detail::warp_op(::slr_emu::detail::OP_UNI, mask, pred != 0, 0, 32, 4).bits);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)::slr_emu::detail::warp_op(::slr_emu::detail::OP_SYNCWARP, mask, 0, 0, 32, 0);
}
// Lanes of the caller's warp that exist and have not exited.  (The emulator cannot know which lanes
// a GPU would currently have converged, so this is an upper bound of the real answer.)
inline unsigned __activemask() { return ::slr_emu::detail::active_mask(); }

#define SLR_EMU_MATCH_OVERLOADS_(T)                                                                  \
  inline unsigned __match_any_sync(unsigned mask, T value) {                                       \
    return static_cast<unsigned>(::slr_emu::detail::warp_op(::slr_emu::detail::OP_MATCH_ANY, mask,   \
                                                            ::slr_emu::detail::to_bits(value), 0, 32, \
                                                            static_cast<int>(sizeof(T)))             \
                                     .bits);                                                         \
  }                                                                                                  \
  inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {                             \
    ::slr_emu::detail::WarpResult r = ::slr_emu::detail::warp_op(                                    \
        ::slr_emu::detail::OP_MATCH_ALL, mask, ::slr_emu::detail::to_bits(value), 0, 32,             \
        static_cast<int>(sizeof(T)));                                                                \
    *pred = r.pred;                                                                                  \
    return static_cast<unsigned>(r.bits);                                                            \
  }
SLR_EMU_MATCH_OVERLOADS_(int)
SLR_EMU_MATCH_OVERLOADS_(unsigned int)
SLR_EMU_MATCH_OVERLOADS_(long)
SLR_EMU_MATCH_OVERLOADS_(unsigned long)
SLR_EMU_MATCH_OVERLOADS_(long long)
SLR_EMU_MATCH_OVERLOADS_(unsigned long long)
SLR_EMU_MATCH_OVERLOADS_(float)
SLR_EMU_MATCH_OVERLOADS_(double)
#undef SLR_EMU_MATCH_OVERLOADS_

// sm_80 warp reductions.
#define SLR_EMU_REDUCE_(NAME, T, OP)                                                                 \
  inline T NAME(unsigned mask, T value) {                                                          \
    return static_cast<T>(static_cast<unsigned>(::slr_emu::detail::warp_op(                          \
        OP, mask, static_cast<unsigned>(value), 0, 32, 4).bits));                                    \
  }
SLR_EMU_REDUCE_(__reduce_add_sync, unsigned, ::slr_emu::detail::OP_RED_ADD)
SLR_EMU_REDUCE_(__reduce_add_sync, int, ::slr_emu::detail::OP_RED_ADD)
SLR_EMU_REDUCE_(__reduce_min_sync, unsigned, ::slr_emu::detail::OP_RED_MIN_U)
SLR_EMU_REDUCE_(__reduce_min_sync, int, ::slr_emu::detail::OP_RED_MIN_S)
SLR_EMU_REDUCE_(__reduce_max_sync, unsigned, ::slr_emu::detail::OP_RED_MAX_U)
SLR_EMU_REDUCE_(__reduce_max_sync, int, ::slr_emu::detail::OP_RED_MAX_S)
SLR_EMU_REDUCE_(__reduce_and_sync, unsigned, ::slr_emu::detail::OP_RED_AND)
SLR_EMU_REDUCE_(__reduce_or_sync, unsigned, ::slr_emu::detail::OP_RED_OR)
SLR_EMU_REDUCE_(__reduce_xor_sync, unsigned, ::slr_emu::detail::OP_RED_XOR)
#undef SLR_EMU_REDUCE_

// ---------------------------------------------------------------------------------------------
// Atomics.  Every fiber of a launch runs on one OS thread and never switches inside these
// functions, so a plain read-modify-write is atomic with respect to the whole launch.  (Distinct
// launches on distinct OS threads must not share buffers they modify, as with separate streams.)
// The overload set follows CUDA's (e.g. no atomicAdd(long long*)), so emulated code that compiles
// also compiles with nvcc.
// ---------------------------------------------------------------------------------------------
// Under the race checker (SLR_EMU_RACECHECK, kernels compiled with -fsanitize=thread) an atomic's load and store are
// not instrumented one by one: the pair is reported as one atomic access, which conflicts with plain accesses of
// other threads but not with their atomics.
#ifdef SLR_EMU_RACECHECK
#define SLR_EMU_ATOMIC_ATTR_ __attribute__((noinline, no_sanitize_thread))
#define SLR_EMU_ATOMIC_NOTE_(address)                                                                 \
  ::slr_emu::detail::race_access(address, sizeof(*(address)), 2, __builtin_return_address(0))
#else
#define SLR_EMU_ATOMIC_ATTR_
#define SLR_EMU_ATOMIC_NOTE_(address) (void)0
#endif
namespace slr_emu {
namespace detail {
#ifdef SLR_EMU_RACECHECK
void race_access(const void* p, size_t n, int kind, const void* pc);
#endif
// The loads and stores are bit copies: __half2's and __nv_bfloat162's copy constructor and assignment are functions
// of their own, which (instrumented, and not inlined into an uninstrumented function) would record a plain access.
template <class T, class F>
SLR_EMU_ATOMIC_ATTR_ inline T atomic_rmw(T* address, F f) {
  SLR_EMU_ATOMIC_NOTE_(address);
  T old;
  __builtin_memcpy(static_cast<void*>(&old), static_cast<const void*>(address), sizeof(T));
  const T val = f(old);
  __builtin_memcpy(static_cast<void*>(address), static_cast<const void*>(&val), sizeof(T));
  return old;
}
template <class T>
SLR_EMU_ATOMIC_ATTR_ inline T atomic_cas(T* address, T compare, T val) {
  SLR_EMU_ATOMIC_NOTE_(address);
  T old;
  __builtin_memcpy(static_cast<void*>(&old), static_cast<const void*>(address), sizeof(T));
  if (old == compare) __builtin_memcpy(static_cast<void*>(address), static_cast<const void*>(&val), sizeof(T));
  return old;
}
}  // namespace detail
}  // namespace slr_emu
#undef SLR_EMU_ATOMIC_ATTR_
#undef SLR_EMU_ATOMIC_NOTE_

#define SLR_EMU_ATOMIC_(NAME, T, EXPR)                                                              \
  inline T NAME(T* address, T val) {                                                              \
    return ::slr_emu::detail::atomic_rmw(address, [val](T old) -> T { (void)old; return (EXPR); });            \
  }
// Integer add/sub wrap modulo 2^n (computed unsigned to avoid C++ signed-overflow UB).
SLR_EMU_ATOMIC_(atomicAdd, int, static_cast<int>(static_cast<unsigned>(old) + static_cast<unsigned>(val)))
SLR_EMU_ATOMIC_(atomicAdd, unsigned int, old + val)
SLR_EMU_ATOMIC_(atomicAdd, unsigned long long, old + val)
SLR_EMU_ATOMIC_(atomicAdd, float, old + val)
SLR_EMU_ATOMIC_(atomicAdd, double, old + val)
SLR_EMU_ATOMIC_(atomicAdd, __half, __hadd(old, val))
SLR_EMU_ATOMIC_(atomicAdd, __half2, __hadd2(old, val))
SLR_EMU_ATOMIC_(atomicAdd, __nv_bfloat16, __hadd(old, val))
SLR_EMU_ATOMIC_(atomicAdd, __nv_bfloat162, __hadd2(old, val))
SLR_EMU_ATOMIC_(atomicSub, int, static_cast<int>(static_cast<unsigned>(old) - static_cast<unsigned>(val)))
SLR_EMU_ATOMIC_(atomicSub, unsigned int, old - val)
SLR_EMU_ATOMIC_(atomicExch, int, val)
SLR_EMU_ATOMIC_(atomicExch, unsigned int, val)
SLR_EMU_ATOMIC_(atomicExch, unsigned long long, val)
SLR_EMU_ATOMIC_(atomicExch, float, val)
SLR_EMU_ATOMIC_(atomicMin, int, val < old ? val : old)
SLR_EMU_ATOMIC_(atomicMin, unsigned int, val < old ? val : old)
SLR_EMU_ATOMIC_(atomicMin, long long, val < old ? val : old)
SLR_EMU_ATOMIC_(atomicMin, unsigned long long, val < old ? val : old)
SLR_EMU_ATOMIC_(atomicMax, int, val > old ? val : old)
SLR_EMU_ATOMIC_(atomicMax, unsigned int, val > old ? val : old)
SLR_EMU_ATOMIC_(atomicMax, long long, val > old ? val : old)
SLR_EMU_ATOMIC_(atomicMax, unsigned long long, val > old ? val : old)
SLR_EMU_ATOMIC_(atomicAnd, int, old & val)
SLR_EMU_ATOMIC_(atomicAnd, unsigned int, old & val)
SLR_EMU_ATOMIC_(atomicAnd, unsigned long long, old & val)
SLR_EMU_ATOMIC_(atomicOr, int, old | val)
SLR_EMU_ATOMIC_(atomicOr, unsigned int, old | val)
SLR_EMU_ATOMIC_(atomicOr, unsigned long long, old | val)
SLR_EMU_ATOMIC_(atomicXor, int, old ^ val)
SLR_EMU_ATOMIC_(atomicXor, unsigned int, old ^ val)
SLR_EMU_ATOMIC_(atomicXor, unsigned long long, old ^ val)
// atomicInc: ((old >= val) ? 0 : (old+1));  atomicDec: (((old == 0) || (old > val)) ? val : (old-1))
SLR_EMU_ATOMIC_(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
SLR_EMU_ATOMIC_(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef SLR_EMU_ATOMIC_

#define SLR_EMU_ATOMIC_CAS_(T)                                                                      \
  inline T atomicCAS(T* address, T compare, T val) {                                              \
    return ::slr_emu::detail::atomic_cas(address, compare, val);                                    \
  }
SLR_EMU_ATOMIC_CAS_(int)
SLR_EMU_ATOMIC_CAS_(unsigned int)
SLR_EMU_ATOMIC_CAS_(unsigned long long)
SLR_EMU_ATOMIC_CAS_(unsigned short)
#undef SLR_EMU_ATOMIC_CAS_

// Scoped variants (sm_60+): same as the plain ones here.
#define SLR_EMU_ATOMIC_SCOPED_(NAME)                                                                \
  template <class T, class... A>                                                                    \
  inline auto NAME##_block(T* address, A... a)->decltype(NAME(address, a...)) {                     \
    return NAME(address, a...);                                                                     \
  }                                                                                                 \
  template <class T, class... A>                                                                    \
  inline auto NAME##_system(T* address, A... a)->decltype(NAME(address, a...)) {                    \
    return NAME(address, a...);                                                                     \
  }
SLR_EMU_ATOMIC_SCOPED_(atomicAdd)
SLR_EMU_ATOMIC_SCOPED_(atomicSub)
SLR_EMU_ATOMIC_SCOPED_(atomicExch)
SLR_EMU_ATOMIC_SCOPED_(atomicMin)
SLR_EMU_ATOMIC_SCOPED_(atomicMax)
SLR_EMU_ATOMIC_SCOPED_(atomicAnd)
SLR_EMU_ATOMIC_SCOPED_(atomicOr)
SLR_EMU_ATOMIC_SCOPED_(atomicXor)
SLR_EMU_ATOMIC_SCOPED_(atomicInc)
SLR_EMU_ATOMIC_SCOPED_(atomicDec)
SLR_EMU_ATOMIC_SCOPED_(atomicCAS)
#undef SLR_EMU_ATOMIC_SCOPED_

// ---------------------------------------------------------------------------------------------
// Memory access intrinsics: cache hints mean nothing on the CPU. Each checks its address's alignment to
// the type's, as the GPU does (a misaligned vector access faults there): x86 has no such fault, and g++
// copies a 16-byte vector type as four 4-byte moves, so without the check a misaligned uint4 load would
// pass here and fault on the device. (Plain dereferences of vector pointers are not checked: kernels use these or
// slr::load_vec / slr::store_vec of cuda/common.cuh, which check the same way.)
// ---------------------------------------------------------------------------------------------
namespace slr_emu {
namespace detail {
template <class T> inline void check_aligned(const volatile T* p, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) trap(what);
}
}  // namespace detail
}  // namespace slr_emu
#define SLR_EMU_ALIGNED_(p, op) \
  ::slr_emu::detail::check_aligned(p, "misaligned address in " op " (not a multiple of the type's alignment: the GPU faults)")
template <class T> inline T __ldg(const T* p) { SLR_EMU_ALIGNED_(p, "__ldg"); return *p; }
template <class T> inline T __ldca(const T* p) { SLR_EMU_ALIGNED_(p, "__ldca"); return *p; }
template <class T> inline T __ldcg(const T* p) { SLR_EMU_ALIGNED_(p, "__ldcg"); return *p; }
template <class T> inline T __ldcs(const T* p) { SLR_EMU_ALIGNED_(p, "__ldcs"); return *p; }
template <class T> inline T __ldlu(const T* p) { SLR_EMU_ALIGNED_(p, "__ldlu"); return *p; }
template <class T> inline T __ldcv(const T* p) { SLR_EMU_ALIGNED_(p, "__ldcv"); return *p; }
template <class T> inline void __stwb(T* p, T v) { SLR_EMU_ALIGNED_(p, "__stwb"); *p = v; }
template <class T> inline void __stcg(T* p, T v) { SLR_EMU_ALIGNED_(p, "__stcg"); *p = v; }
template <class T> inline void __stcs(T* p, T v) { SLR_EMU_ALIGNED_(p, "__stcs"); *p = v; }
template <class T> inline void __stwt(T* p, T v) { SLR_EMU_ALIGNED_(p, "__stwt"); *p = v; }
#undef SLR_EMU_ALIGNED_

// ---------------------------------------------------------------------------------------------
// Integer intrinsics (bit-exact with the device definitions).
// ---------------------------------------------------------------------------------------------
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) | __brev(static_cast<unsigned>(x >> 32));
}
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) {
  return static_cast<long long>((static_cast<__int128>(a) * b) >> 64);
}
// 24-bit multiplies: the low 24 bits of each operand (sign-extended for __mul24), low 32 bits of product.
inline int __mul24(int a, int b) {
  long long sa = static_cast<long long>(static_cast<unsigned>(a) & 0xFFFFFFu);
  long long sb = static_cast<long long>(static_cast<unsigned>(b) & 0xFFFFFFu);
  if (sa & 0x800000) sa -= 0x1000000;
  if (sb & 0x800000) sb -= 0x1000000;
  return static_cast<int>(static_cast<unsigned>(static_cast<unsigned long long>(sa * sb)));
}
inline unsigned int __umul24(unsigned int a, unsigned int b) { return (a & 0xFFFFFFu) * (b & 0xFFFFFFu); }
inline unsigned int __sad(int x, int y, unsigned int z) {
  return (x > y ? static_cast<unsigned>(x) - static_cast<unsigned>(y) : static_cast<unsigned>(y) - static_cast<unsigned>(x)) + z;
}
inline unsigned int __usad(unsigned int x, unsigned int y, unsigned int z) { return (x > y ? x - y : y - x) + z; }
// Byte i of the result is byte (s >> 4i) & 7 of the 8-byte value {y:x}.
// Bit 3 of each selector nibble is ignored, as by nvcc (it masks the selector with 0x7777 before PTX's prmt, whose
// sign-replicate mode that bit would select).
inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
  unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * i)) & 7u))) & 0xFFu) << (8 * i);
  return r;
}
inline unsigned int __funnelshift_l(unsigned int lo, unsigned int hi, unsigned int shift) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift & 31u)) >> 32);
}
inline unsigned int __funnelshift_lc(unsigned int lo, unsigned int hi, unsigned int shift) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift > 32u ? 32u : shift)) >> 32);
}
inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi, unsigned int shift) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift & 31u));
}
inline unsigned int __funnelshift_rc(unsigned int lo, unsigned int hi, unsigned int shift) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift > 32u ? 32u : shift));
}
inline long long clock64() { return ::slr_emu::detail::clock_ns(); }

// ---------------------------------------------------------------------------------------------
// Reinterpretation and conversions.  Float-to-integer conversions saturate and map NaN to 0, as the
// device's cvt instructions do.
// ---------------------------------------------------------------------------------------------
inline unsigned int __float_as_uint(float x) { return ::slr_emu::detail::bit_cast<unsigned>(x); }
inline int __float_as_int(float x) { return ::slr_emu::detail::bit_cast<int>(x); }
inline float __uint_as_float(unsigned int x) { return ::slr_emu::detail::bit_cast<float>(x); }
inline float __int_as_float(int x) { return ::slr_emu::detail::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return ::slr_emu::detail::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return ::slr_emu::detail::bit_cast<double>(x); }
inline int __double2hiint(double x) { return static_cast<int>(::slr_emu::detail::bit_cast<unsigned long long>(x) >> 32); }
inline int __double2loint(double x) { return static_cast<int>(::slr_emu::detail::bit_cast<unsigned long long>(x)); }
inline double __hiloint2double(int hi, int lo) {
  return ::slr_emu::detail::bit_cast<double>((static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32) |
                                             static_cast<unsigned>(lo));
}

namespace slr_emu {
namespace detail {
template <class I, class F>
inline I sat_cvt(F r) {  // r already rounded to an integral value
  if (r != r) return 0;
  if (r <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (r >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(r);
}
}  // namespace detail
}  // namespace slr_emu
#define SLR_EMU_F2I_(NAME, I, F, ROUND) \
  inline I NAME(F x) { return ::slr_emu::detail::sat_cvt<I, F>(ROUND(x)); }
SLR_EMU_F2I_(__float2int_rn, int, float, nearbyintf)
SLR_EMU_F2I_(__float2int_rz, int, float, truncf)
SLR_EMU_F2I_(__float2int_rd, int, float, floorf)
SLR_EMU_F2I_(__float2int_ru, int, float, ceilf)
SLR_EMU_F2I_(__float2uint_rn, unsigned int, float, nearbyintf)
SLR_EMU_F2I_(__float2uint_rz, unsigned int, float, truncf)
SLR_EMU_F2I_(__float2uint_rd, unsigned int, float, floorf)
SLR_EMU_F2I_(__float2uint_ru, unsigned int, float, ceilf)
SLR_EMU_F2I_(__float2ll_rn, long long, float, nearbyintf)
SLR_EMU_F2I_(__float2ll_rz, long long, float, truncf)
SLR_EMU_F2I_(__float2ull_rn, unsigned long long, float, nearbyintf)
SLR_EMU_F2I_(__float2ull_rz, unsigned long long, float, truncf)
SLR_EMU_F2I_(__double2int_rn, int, double, nearbyint)
SLR_EMU_F2I_(__double2int_rz, int, double, trunc)
SLR_EMU_F2I_(__double2uint_rn, unsigned int, double, nearbyint)
SLR_EMU_F2I_(__double2uint_rz, unsigned int, double, trunc)
SLR_EMU_F2I_(__double2ll_rn, long long, double, nearbyint)
SLR_EMU_F2I_(__double2ll_rz, long long, double, trunc)
SLR_EMU_F2I_(__double2ull_rn, unsigned long long, double, nearbyint)
SLR_EMU_F2I_(__double2ull_rz, unsigned long long, double, trunc)
#undef SLR_EMU_F2I_
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned int x) { return static_cast<float>(x); }
inline float __ll2float_rn(long long x) { return static_cast<float>(x); }
inline float __ull2float_rn(unsigned long long x) { return static_cast<float>(x); }
inline double __int2double_rn(int x) { return static_cast<double>(x); }
inline double __uint2double_rn(unsigned int x) { return static_cast<double>(x); }
inline double __ll2double_rn(long long x) { return static_cast<double>(x); }
inline double __ull2double_rn(unsigned long long x) { return static_cast<double>(x); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }

// ---------------------------------------------------------------------------------------------
// Floating-point intrinsics.  The _rn forms are IEEE operations with one rounding (as on the device).
// The fast approximate forms (__expf, __fdividef, rsqrtf, ...) are computed at full precision here,
// so they can differ from the device in the last bits.  NOTE: g++ on baseline x86-64 never fuses
// a*b+c, whereas nvcc does by default; use fmaf/__fmaf_rn where bit-exact results matter.
// __expf, __logf, __sinf, __cosf, __tanf, __powf, __exp10f, __log2f, __log10f and __sincosf are
// declared by glibc's <math.h> but not exported by libm; runtime.cpp defines them.
// ---------------------------------------------------------------------------------------------
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frsqrt_rn(float a) { return 1.0f / std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float rcbrtf(float a) { return 1.0f / std::cbrt(a); }
inline float __saturatef(float a) { return a != a ? 0.0f : (a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a)); }

// ---------------------------------------------------------------------------------------------
// Half / bfloat16 functions that cuda_fp16.h / cuda_bf16.h declare for the device only.  Declared as
// constrained templates so that a host definition appearing in a newer CUDA header (a better, non-
// template match) wins instead of clashing.  Results are rounded once from double / float.
// ---------------------------------------------------------------------------------------------
namespace slr_emu {
namespace detail {
template <class H>
using if_half = typename std::enable_if<std::is_same<H, __half>::value || std::is_same<H, __nv_bfloat16>::value, H>::type;
template <class H2>
using if_half2 = typename std::enable_if<std::is_same<H2, __half2>::value || std::is_same<H2, __nv_bfloat162>::value, H2>::type;
inline float h2f(__half h) { return __half2float(h); }
inline float h2f(__nv_bfloat16 h) { return __bfloat162float(h); }
template <class H> inline H f2h(float f);
template <> inline __half f2h<__half>(float f) { return __float2half_rn(f); }
template <> inline __nv_bfloat16 f2h<__nv_bfloat16>(float f) { return __float2bfloat16_rn(f); }
template <class H> inline H d2h(double d);
template <> inline __half d2h<__half>(double d) { return __double2half(d); }
template <> inline __nv_bfloat16 d2h<__nv_bfloat16>(double d) { return __double2bfloat16(d); }
}  // namespace detail
}  // namespace slr_emu

template <class H>
inline ::slr_emu::detail::if_half<H> __hfma(H a, H b, H c) {
  using namespace ::slr_emu::detail;
  return d2h<H>(std::fma(static_cast<double>(h2f(a)), static_cast<double>(h2f(b)), static_cast<double>(h2f(c))));
}
template <class H2>
inline ::slr_emu::detail::if_half2<H2> __hfma2(H2 a, H2 b, H2 c) {
  H2 r;
  r.x = __hfma(a.x, b.x, c.x);
  r.y = __hfma(a.y, b.y, c.y);
  return r;
}
#define SLR_EMU_HMATH_(NAME, EXPR)                                                                  \
  template <class H>                                                                                \
  inline ::slr_emu::detail::if_half<H> NAME(H h) {                                                  \
    const float x = ::slr_emu::detail::h2f(h);                                                      \
    return ::slr_emu::detail::f2h<H>(EXPR);                                                         \
  }
SLR_EMU_HMATH_(hsqrt, std::sqrt(x))
SLR_EMU_HMATH_(hrsqrt, 1.0f / std::sqrt(x))
SLR_EMU_HMATH_(hrcp, 1.0f / x)
SLR_EMU_HMATH_(hexp, std::exp(x))
SLR_EMU_HMATH_(hexp2, std::exp2(x))
SLR_EMU_HMATH_(hlog, std::log(x))
SLR_EMU_HMATH_(hlog2, std::log2(x))
SLR_EMU_HMATH_(hsin, std::sin(x))
SLR_EMU_HMATH_(hcos, std::cos(x))
SLR_EMU_HMATH_(hceil, std::ceil(x))
SLR_EMU_HMATH_(hfloor, std::floor(x))
SLR_EMU_HMATH_(htrunc, std::trunc(x))
SLR_EMU_HMATH_(hrint, std::nearbyint(x))
#undef SLR_EMU_HMATH_

// ---------------------------------------------------------------------------------------------
// min / max as CUDA declares them in the global namespace (math_functions.hpp), including the
// mixed signed/unsigned forms, which convert both operands to the unsigned type.  Non-template
// overloads, so they are preferred to std::min/std::max after a `using namespace std`.
// ---------------------------------------------------------------------------------------------
#define SLR_EMU_MINMAX_(R, A, B)                                                                    \
  inline R min(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
  inline R max(A a, B b) { return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); }
SLR_EMU_MINMAX_(int, int, int)
SLR_EMU_MINMAX_(unsigned int, unsigned int, unsigned int)
SLR_EMU_MINMAX_(unsigned int, int, unsigned int)
SLR_EMU_MINMAX_(unsigned int, unsigned int, int)
SLR_EMU_MINMAX_(long, long, long)
SLR_EMU_MINMAX_(unsigned long, unsigned long, unsigned long)
SLR_EMU_MINMAX_(unsigned long, long, unsigned long)
SLR_EMU_MINMAX_(unsigned long, unsigned long, long)
SLR_EMU_MINMAX_(long long, long long, long long)
SLR_EMU_MINMAX_(unsigned long long, unsigned long long, unsigned long long)
SLR_EMU_MINMAX_(unsigned long long, long long, unsigned long long)
SLR_EMU_MINMAX_(unsigned long long, unsigned long long, long long)
#undef SLR_EMU_MINMAX_
// Floating-point min/max follow fminf/fmaxf (a NaN operand yields the other operand), as on the device.
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(static_cast<double>(a), b); }
inline double max(float a, double b) { return fmax(static_cast<double>(a), b); }
inline double min(double a, float b) { return fmin(a, static_cast<double>(b)); }
inline double max(double a, float b) { return fmax(a, static_cast<double>(b)); }
inline unsigned int umin(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int umax(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long llmin(long long a, long long b) { return a < b ? a : b; }
inline long long llmax(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Traps and assertions: reported as launch errors naming the kernel, block and thread.
// ---------------------------------------------------------------------------------------------
inline void __trap() { ::slr_emu::detail::trap("__trap() called"); }
inline void __brkpt() { ::slr_emu::detail::trap("__brkpt() called"); }
// assert(): a failing assertion ends the launch with an error (the device aborts the kernel, too).
// Like the device's, it is compiled out under NDEBUG.  (Re-including <assert.h> after this header
// would restore glibc's assert, which aborts the process.)
#undef assert
#ifdef NDEBUG
#define assert(e) (static_cast<void>(0))
#else
#define assert(e) \
  (static_cast<bool>(e) ? static_cast<void>(0) : ::slr_emu::detail::assert_fail(#e, __FILE__, __LINE__, __func__))
#endif

// ---------------------------------------------------------------------------------------------
// Launch glue.  SLR_EMU_EXPORT(kernel) defines
//   extern "C" int slr_emu__<kernel>(const slr_emu_launch*, void** args, char* err, size_t err_len)
// which reads the kernel's parameters from args (cuLaunchKernel's kernelParams layout: args[i]
// points at the value of parameter i, typed as that parameter) and runs the grid.  The parameter
// types come from template deduction on the kernel's function type, so no per-kernel code exists.
// The argument of SLR_EMU_EXPORT is macro-expanded before use.
// ---------------------------------------------------------------------------------------------
namespace slr_emu {
namespace detail {

template <class T>
inline T load_arg(const void* p) {
  // Kernel parameters are bit-copied, as the CUDA driver does (types like __half2 are not formally
  // trivially copyable but are plain bit containers).
  alignas(T) unsigned char buf[sizeof(T)];
  std::memcpy(buf, p, sizeof(T));
  return *std::launder(reinterpret_cast<T*>(buf));
}

// A kernel parameter's SLR_EMU_ARG_* kind (emu_abi.h), which the caller's must equal.
template <class T>
constexpr unsigned char arg_kind() {
  return std::is_pointer<T>::value                                                     ? SLR_EMU_ARG_PTR
         : std::is_same<T, float>::value                                               ? SLR_EMU_ARG_F32
         : std::is_integral<T>::value && !std::is_same<T, bool>::value && sizeof(T) == 4 ? SLR_EMU_ARG_B32
         : std::is_integral<T>::value && !std::is_same<T, bool>::value && sizeof(T) == 8 ? SLR_EMU_ARG_B64
                                                                                       : SLR_EMU_ARG_OTHER;
}

template <class... P>
struct KernelCall {
  void (*kernel)(P...);
  void** args;
};

template <class... P, std::size_t... I>
inline void call_kernel(void (*k)(P...), void** args, std::index_sequence<I...>) {
  (void)args;
  k(load_arg<P>(args[I])...);
}

// Runs on every fiber: the body of one CUDA thread.
template <class... P>
void kernel_thunk(void* ctx) {
  KernelCall<P...>* kc = static_cast<KernelCall<P...>*>(ctx);
  call_kernel(kc->kernel, kc->args, std::index_sequence_for<P...>{});
}

}  // namespace detail

template <class... P>
inline int launch(const char* name, void (*kernel)(P...), const slr_emu_launch* cfg, void** args, char* err,
                  size_t err_len) {
  detail::KernelCall<P...> kc{kernel, args};
  static constexpr unsigned char kinds[sizeof...(P) + 1] = {detail::arg_kind<P>()..., SLR_EMU_ARG_OTHER};
  return detail::run_grid(name, cfg, static_cast<unsigned>(sizeof...(P)), kinds, args, &detail::kernel_thunk<P...>,
                          &kc, err, err_len);
}

}  // namespace slr_emu

#define SLR_EMU_EXPORT(kernel) SLR_EMU_EXPORT_IMPL_(kernel)
#define SLR_EMU_EXPORT_IMPL_(kernel)                                                                  \
  extern "C" SLR_EMU_EXPORT_VISIBILITY int slr_emu__##kernel(const slr_emu_launch* cfg, void** args,  \
                                                             char* err, size_t err_len) {           \
    return ::slr_emu::launch(#kernel, &kernel, cfg, args, err, err_len);                             \
  }

#endif  // SLR_EMU_CUDA_EMU_H

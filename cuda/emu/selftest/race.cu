// Shared-memory races for the race checker (SLR_EMU_RACECHECK: kernels built with -fsanitize=thread). Each kernel
// takes a `mode`; the modes main.cpp expects to be reported are races on a GPU, the others are ordered. Without
// the race checker all of them run and only the values differ.
#include "slr_switch.cuh"

// Every thread writes s[t], then reads a neighbour's slot:
//   0: __syncthreads() between, read s[t ^ 1]                       ordered
//   1: nothing between, read s[t ^ 1]                               race
//   2: __syncwarp() between, read s[t ^ 1] (same warp)              ordered
//   3: a __shfl_xor_sync between, read s[t ^ 1]                     race: a shuffle does not order memory
//   4: __syncwarp() between, read s[(t + 32) % 64] (the other warp) race: __syncwarp orders its own warp only
//   5: __syncwarp(0x0000ffff) by lanes 0-15, 0xffff0000 by 16-31, read s[t ^ 16]   race: different masks
//   6: the same masks, read s[t ^ 1] (within each half)            ordered
extern "C" __global__ void race_neighbor(int* out, int mode) {
  __shared__ int slots[64];
  const unsigned t = threadIdx.x;
  slots[t] = static_cast<int>(t) * 3 + 1;
  int extra = 0;
  if (mode == 0) __syncthreads();
  if (mode == 2 || mode == 4) __syncwarp();
  if (mode == 3) extra = __shfl_xor_sync(0xffffffffu, static_cast<int>(t), 1) - static_cast<int>(t ^ 1u);
  if (mode == 5 || mode == 6) __syncwarp((t & 16u) ? 0xffff0000u : 0x0000ffffu);
  const unsigned j = mode == 4 ? (t + 32u) % 64u : mode == 5 ? t ^ 16u : t ^ 1u;
  out[blockIdx.x * blockDim.x + t] = slots[j] + extra;
}
SLR_EMU_EXPORT(race_neighbor)

// A shared counter that every thread increments atomically, then:
//   0: __syncthreads(), every thread reads it          ordered (atomics among themselves never race)
//   1: every thread reads it with no barrier           race: a plain read against other threads' atomics
//   2: thread 7 overwrites it with a plain store      race: a plain write against other threads' atomics
extern "C" __global__ void race_atomic_counter(unsigned* out, int mode) {
  __shared__ unsigned counter;
  const unsigned t = threadIdx.x;
  if (t == 0) counter = 0;
  __syncthreads();
  atomicAdd(&counter, 1u);
  if (mode == 0) __syncthreads();
  if (mode == 2 && t == 7) counter = 5u;
  out[blockIdx.x * blockDim.x + t] = mode == 2 ? 0u : counter;
}
SLR_EMU_EXPORT(race_atomic_counter)

// Write after read: after a barrier every thread reads its right neighbour's slot, then overwrites its own.
//   0: a __syncthreads() between the read and the write   ordered
//   1: none                                                race: thread t + 1 overwrites what thread t reads
extern "C" __global__ void race_shift(int* out, int mode) {
  SLR_DYNAMIC_SMEM(int, buf);
  const unsigned t = threadIdx.x, n = blockDim.x;
  buf[t] = static_cast<int>(t + blockIdx.x);
  __syncthreads();
  const int right = buf[(t + 1u) % n];
  if (mode == 0) __syncthreads();
  buf[t] = right;
  __syncthreads();
  out[blockIdx.x * n + t] = buf[t];
}
SLR_EMU_EXPORT(race_shift)

// A __shared__ array of a type with a constructor (__half) is, in the emulator, a static thread_local behind a guard
// variable that the first thread sets and every other thread reads: not shared memory, never reported.
extern "C" __global__ void race_half_array(float* out) {
  __shared__ __half halves[64];
  const unsigned t = threadIdx.x;
  halves[t] = __float2half(static_cast<float>(t));
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = __half2float(halves[63u - t]);
}
SLR_EMU_EXPORT(race_half_array)

// A chain of __syncwarps: lane 0 writes, lanes 0-1 sync, lanes 1-2 sync, lane 2 reads.
//   0: as said                                  ordered (transitively, through lane 1)
//   1: without the second __syncwarp            race
extern "C" __global__ void race_chain(int* out, int mode) {
  __shared__ int cell;
  const unsigned t = threadIdx.x;
  if (t >= 3) return;
  if (t == 0) cell = 42 + static_cast<int>(blockIdx.x);
  if (t < 2) __syncwarp(0x3u);
  if (t >= 1 && mode == 0) __syncwarp(0x6u);
  if (t == 2) out[blockIdx.x] = cell;
}
SLR_EMU_EXPORT(race_chain)

// Every thread adds (1, 1) to a __half2 in shared memory with atomicAdd between two barriers: atomics among
// themselves never race (its copy constructor, a function of its own, must not count as a plain access).
extern "C" __global__ void race_half2_atomics(float* out) {
  __shared__ __half2 acc;
  const unsigned t = threadIdx.x;
  if (t == 0) acc = __floats2half2_rn(0.0f, 0.0f);
  __syncthreads();
  atomicAdd(&acc, __floats2half2_rn(1.0f, 1.0f));
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = __low2float(acc) + __high2float(acc);
}
SLR_EMU_EXPORT(race_half2_atomics)

// Error detection, memory, dtypes, geometry, atomics and intrinsics for the emulator self-test.
#include "slr_switch.cuh"

// ---- (e) faults -------------------------------------------------------------------------------
// Bug on purpose: reads in[i + 1], one element past the end for i == n - 1.
extern "C" __global__ void oob_read(const float* __restrict__ in, unsigned n, float* __restrict__ out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i] + in[i + 1];
}
SLR_EMU_EXPORT(oob_read)

// Bug on purpose: thread n stores one element past the end (inside the 16-byte rounding when n * 4 is not a
// multiple of 16, so no fault), and thread n + 1 one element before the start when `before` is set.
extern "C" __global__ void oob_write(float* out, unsigned n, int before) {
  const unsigned i = threadIdx.x;
  if (i < n) out[i] = 1.0f;
  if (i == n) out[n] = 2.0f;
  if (i == n + 1 && before) out[-1] = 3.0f;
}
SLR_EMU_EXPORT(oob_write)

// Bug on purpose: a 16-byte vector load through __ldg from `offset` floats into the buffer (misaligned unless
// offset % 4 == 0).
extern "C" __global__ void misaligned_ldg(const float* __restrict__ in, unsigned offset, float* __restrict__ out) {
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(in + offset));
  out[threadIdx.x] = __uint_as_float(v.x ^ v.y ^ v.z ^ v.w);
}
SLR_EMU_EXPORT(misaligned_ldg)

// Correct version of the above (used to check that the next launch works).
extern "C" __global__ void copy_f32(const float* __restrict__ in, unsigned n, float* __restrict__ out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}
SLR_EMU_EXPORT(copy_f32)

// out[0] = in[0] + in[1] and out[1] = in[2] * in[3]: a rounding-sensitive sum and a product with a subnormal result,
// which must come out as on the device (round to nearest, no flush to zero) whatever the host thread's setting.
extern "C" __global__ void float_env(const float* in, float* out) {
  out[0] = in[0] + in[1];
  out[1] = in[2] * in[3];
}
SLR_EMU_EXPORT(float_env)

// Reads one float past the end of the dynamic shared memory.
extern "C" __global__ void dyn_overrun(float* out) {
  SLR_DYNAMIC_SMEM(float, buf);
  buf[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x + 1];
}
SLR_EMU_EXPORT(dyn_overrun)

__device__ __noinline__ int deep_recursion(int k, volatile int* sink) {
  volatile char big[4096];
  big[0] = static_cast<char>(k);
  big[4095] = static_cast<char>(k);
  if (k == 0) return big[0];
  const int r = deep_recursion(k - 1, sink) + big[4095];
  *sink = r;
  return r;
}
extern "C" __global__ void stack_overflow(int* out) { out[threadIdx.x] = deep_recursion(1 << 20, out); }
SLR_EMU_EXPORT(stack_overflow)

extern "C" __global__ void div_zero(const int* in, int* out) { out[threadIdx.x] = 100 / in[threadIdx.x]; }
SLR_EMU_EXPORT(div_zero)

extern "C" __global__ void assert_nonneg(const int* in, unsigned n) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) assert(in[i] >= 0);
}
SLR_EMU_EXPORT(assert_nonneg)

// ---- (f) warp collectives that can never complete -------------------------------------------
// Lane 5 of every warp returns early; the others shuffle with a full mask.
extern "C" __global__ void exited_lane(const int* in, int* out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if ((threadIdx.x & 31) == 5) return;
  out[i] = __shfl_down_sync(0xffffffffu, in[i], 1);
}
SLR_EMU_EXPORT(exited_lane)

// Lanes 0-15 shuffle with a full mask while lanes 16-31 wait at __syncthreads.
extern "C" __global__ void warp_barrier_deadlock(int* out) {
  if ((threadIdx.x & 31) < 16)
    out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
  else
    __syncthreads();
}
SLR_EMU_EXPORT(warp_barrier_deadlock)

// Lanes 0-15 vote, lanes 16-31 shuffle, both with the full mask.
extern "C" __global__ void warp_divergence(int* out) {
  if ((threadIdx.x & 31) < 16)
    out[threadIdx.x] = static_cast<int>(__ballot_sync(0xffffffffu, 1));
  else
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 7, 0);
}
SLR_EMU_EXPORT(warp_divergence)

// Threads with an odd index skip the barrier: a plain __syncthreads deadlock.
extern "C" __global__ void barrier_divergence(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncwarp(0xffffffffu);  // ... and meanwhile wait for the even lanes in a warp collective
  }
}
SLR_EMU_EXPORT(barrier_divergence)

// ---- (g) half / bfloat16 conversions on the "device" -----------------------------------------
extern "C" __global__ void fp16_convert(const float* __restrict__ in, unsigned n, unsigned short* h,
                                        unsigned short* b, float* back_h, float* back_b, unsigned short* fma_h) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const __half x = __float2half(in[i]);
  h[i] = __half_as_ushort(x);
  back_h[i] = __half2float(x);
  const __nv_bfloat16 y = __float2bfloat16(in[i]);
  b[i] = __bfloat16_as_ushort(y);
  back_b[i] = __bfloat162float(y);
  fma_h[i] = __half_as_ushort(__hfma(x, __float2half(2.0f), x + x));  // 4x
}
SLR_EMU_EXPORT(fp16_convert)

// ---- (h) dynamic shared memory ----------------------------------------------------------------
// out[i] = 2*in[mirror index within the block]; first_word[b] = bits thread 0 sees in the last slot
// before anybody wrote it (the 0xA5 poison), read before a barrier: without it the read would race with the
// last thread's write (the race checker's variant of this test reports that).
extern "C" __global__ void dyn_reverse(const float* __restrict__ in, float* __restrict__ out, unsigned* first_word) {
  SLR_DYNAMIC_SMEM(float, buf);
  const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  if (t == 0) first_word[blockIdx.x] = __float_as_uint(buf[blockDim.x - 1]);
  __syncthreads();
  buf[t] = 2.0f * in[i];
  __syncthreads();
  out[i] = buf[blockDim.x - 1 - t];
}
SLR_EMU_EXPORT(dyn_reverse)

// ---- (j) 16-byte vector loads -----------------------------------------------------------------
extern "C" __global__ void float4_sum(const float* __restrict__ in, unsigned n4, float* __restrict__ out,
                                      const uint4* __restrict__ src, uint4* __restrict__ dst) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = reinterpret_cast<const float4*>(in)[i];
  out[i] = v.x + v.y + v.z + v.w;
  const uint4 u = __ldg(src + i);
  dst[i] = make_uint4(u.w, u.z, u.y, u.x);
}
SLR_EMU_EXPORT(float4_sum)

// ---- (k) 3-D grids and blocks -----------------------------------------------------------------
// ids[2g] = packed threadIdx, ids[2g+1] = packed blockIdx, for global linear id g; plus the block-wide
// __syncthreads_count / _and / _or results per block.
extern "C" __global__ void dims3d(unsigned* ids, int* votes) {
  const unsigned bx = blockDim.x, by = blockDim.y, nb = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + threadIdx.y * bx + threadIdx.z * bx * by;
  const unsigned b = blockIdx.x + blockIdx.y * gridDim.x + blockIdx.z * gridDim.x * gridDim.y;
  const unsigned g = b * nb + t;
  ids[2 * g] = threadIdx.x | (threadIdx.y << 10) | (threadIdx.z << 20);
  ids[2 * g + 1] = blockIdx.x | (blockIdx.y << 10) | (blockIdx.z << 20);
  const int c = __syncthreads_count(t % 3 == 0);
  const int a = __syncthreads_and(t < nb);
  const int o = __syncthreads_or(t == nb - 1);
  const int a2 = __syncthreads_and(t != 7);
  if (t == 0) {
    votes[4 * b] = c;
    votes[4 * b + 1] = a;
    votes[4 * b + 2] = o;
    votes[4 * b + 3] = a2;
  }
}
SLR_EMU_EXPORT(dims3d)

// ---- atomics and intrinsics -------------------------------------------------------------------
extern "C" __global__ void atomics_kernel(const unsigned* __restrict__ in, unsigned n, unsigned* hist,
                                          unsigned* maxv, float* fsum, unsigned long long* cnt, int* cas_sum) {
  __shared__ unsigned sh[16];
  const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  if (t < 16) sh[t] = 0;
  __syncthreads();
  if (i < n) {
    atomicAdd(&sh[in[i] & 15u], 1u);
    atomicMax(maxv, in[i]);
    atomicAdd(fsum, 1.0f);
    atomicAdd(cnt, 1ull);
    int old = *cas_sum, assumed;  // add via a CAS loop
    do {
      assumed = old;
      old = atomicCAS(cas_sum, assumed, assumed + 2);
    } while (old != assumed);
  }
  __syncthreads();
  if (t < 16) atomicAdd(&hist[t], sh[t]);
}
SLR_EMU_EXPORT(atomics_kernel)

extern "C" __global__ void intrinsics_kernel(unsigned* o) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  o[0] = __popc(0xF0F0u);
  o[1] = __clz(1);
  o[2] = __clz(0);
  o[3] = __ffs(0x80);
  o[4] = __brev(1u);
  o[5] = __float_as_uint(1.0f);
  o[6] = __umulhi(0x80000000u, 4u);
  o[7] = __byte_perm(0x33221100u, 0x77665544u, 0x5140u);
  o[8] = min(3u, 5u) + max(-1, 2);
  o[9] = __popcll(0xFFFFFFFFFFull);
  o[10] = static_cast<unsigned>(__clzll(1ll));
  o[11] = __funnelshift_l(0x80000000u, 0x1u, 1);
  o[12] = static_cast<unsigned>(__float2int_rn(2.5f));
  o[13] = static_cast<unsigned>(__float2int_rz(-1e20f));
  o[14] = __float_as_uint(__saturatef(1.5f));
  o[15] = __float_as_uint(fminf(1.0f, 2.0f) + rsqrtf(4.0f));
  o[16] = static_cast<unsigned>(__mul24(-2, 3));
  o[17] = __float_as_uint(__expf(0.0f));
  o[18] = __float_as_uint(min(1.5f, -2.0f));
  o[19] = static_cast<unsigned>(warpSize);
  o[20] = __brev(0x12345678u);
  // Each selector nibble's bit 3 is ignored: nvcc masks a run-time selector with 0x7777 before its prmt (checked
  // in the PTX of CUDA 13.0), so PTX's sign-replicate mode is out of __byte_perm's reach. Same as o[7].
  o[21] = __byte_perm(0x33221100u, 0x77665544u, o[22] | 0xD9C8u);
}
SLR_EMU_EXPORT(intrinsics_kernel)

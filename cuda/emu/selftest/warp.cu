// (c)/(d) Warp primitives.  Built twice: normally, and with -DFAULT_WRONG_LANE (wrong shuffle lanes).
#include "slr_switch.cuh"

#ifdef FAULT_WRONG_LANE
#define WARP_REDUCE warp_reduce_wrong_lane
#else
#define WARP_REDUCE warp_reduce
#endif

// down_out[w] = sum of warp w's 32 inputs (via __shfl_down_sync, lane 0 holds it);
// xor_out[i] = the same sum in every lane (butterfly via __shfl_xor_sync).
extern "C" __global__ void WARP_REDUCE(const float* __restrict__ in, float* __restrict__ down_out,
                                       float* __restrict__ xor_out) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  float d = in[i], x = in[i];
  for (int o = 16; o > 0; o >>= 1) {
#ifdef FAULT_WRONG_LANE
    d += __shfl_down_sync(0xffffffffu, d, o + 1);
    x += __shfl_xor_sync(0xffffffffu, x, o >> 1);
#else
    d += __shfl_down_sync(0xffffffffu, d, o);
    x += __shfl_xor_sync(0xffffffffu, x, o);
#endif
  }
  if ((threadIdx.x & 31) == 0) down_out[i / 32] = d;
  xor_out[i] = x;
}
SLR_EMU_EXPORT(WARP_REDUCE)

#ifndef FAULT_WRONG_LANE
// Other shuffle forms, one output slot per thread in each array.
extern "C" __global__ void warp_misc(const int* __restrict__ in, int* scan, int* bcast, int* seg, double* dbl,
                                     unsigned short* hx, unsigned* poison, int* red, unsigned* match,
                                     long long* ll) {
  const unsigned lane = threadIdx.x & 31;
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = in[i];
  int s = v;  // inclusive scan
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(0xffffffffu, s, o);
    if (lane >= static_cast<unsigned>(o)) s += t;
  }
  scan[i] = s;
  bcast[i] = __shfl_sync(0xffffffffu, v, 3);  // broadcast lane 3
  int g = v;                                  // sums over segments of 8 lanes
  for (int o = 4; o > 0; o >>= 1) g += __shfl_xor_sync(0xffffffffu, g, o, 8);
  seg[i] = g;
  dbl[i] = __shfl_down_sync(0xffffffffu, v * 0.5, 1);  // lane 31 keeps its own value
  hx[i] = __half_as_ushort(__shfl_xor_sync(0xffffffffu, __int2half_rn(v), 1));
  ll[i] = __shfl_sync(0xffffffffu, static_cast<long long>(v) * (1ll << 33), 31 - lane);
  // Lanes 0-15 shuffle among themselves but read lane+16, outside the mask: undefined -> poison.
  // Meanwhile lanes 16-31 already wait in the full-mask reduction below (legal on sm_70+).
  poison[i] = 0;
  if (lane < 16) poison[i] = __shfl_sync(0x0000ffffu, static_cast<unsigned>(v), lane + 16);
  red[i] = __reduce_add_sync(0xffffffffu, v);
  match[i] = __match_any_sync(0xffffffffu, v & 3);
}
SLR_EMU_EXPORT(warp_misc)

// Votes: per thread, ballot / any / all of (in[i] & 1), plus a ballot over the lower half only.
extern "C" __global__ void warp_vote(const int* __restrict__ in, unsigned* ballot, int* any, int* all,
                                     unsigned* half_ballot, unsigned* active) {
  const unsigned lane = threadIdx.x & 31;
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const int p = in[i] & 1;
  ballot[i] = __ballot_sync(0xffffffffu, p);
  any[i] = __any_sync(0xffffffffu, p);
  all[i] = __all_sync(0xffffffffu, p);
  half_ballot[i] = lane < 16 ? __ballot_sync(0x0000ffffu, p) : 0u;
  __syncwarp();
  active[i] = __activemask();
}
SLR_EMU_EXPORT(warp_vote)
#endif

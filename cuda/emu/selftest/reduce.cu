// (a)/(b) Block-wide tree reduction in static shared memory.  Built twice: normally, and with
// -DFAULT_MISSING_SYNC, which drops the __syncthreads() inside the loop (a classic race).
#include "slr_switch.cuh"

#ifdef FAULT_MISSING_SYNC
#define BLOCK_SUM block_sum_missing_sync
#else
#define BLOCK_SUM block_sum
#endif

// out[b] = sum of in[b*blockDim.x .. +blockDim.x) (zero past n).  blockDim.x: power of two <= 1024.
extern "C" __global__ void __launch_bounds__(1024) BLOCK_SUM(const unsigned* __restrict__ in, unsigned n,
                                                             unsigned* __restrict__ out) {
  __shared__ unsigned s[1024];
  const unsigned t = threadIdx.x;
  const unsigned i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0u;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
#ifndef FAULT_MISSING_SYNC
    __syncthreads();
#endif
  }
  if (t == 0) out[blockIdx.x] = s[0];
}
SLR_EMU_EXPORT(BLOCK_SUM)

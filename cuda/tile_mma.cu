// tile_mma: a batch of independent 16x16 by 16x8 tensor-core products (src/tile_mma.rs). It exists to prove the
// m16n8k16 fragment layout and the mma helpers of cuda/mma.cuh on every device (GPU, SIMT emulator) against the
// CPU reference; later kernels (SpMM, SDDMM, 2:4) use the same helpers.
//
//   C[t] = A[t] * B[t] + C[t]        for t in [0, tiles), f32 accumulation inside the tensor core
//
// A[t]: 16x16 row-major at a + 256 t; B[t]: 16x8 (K x N) row-major at b + 128 t; C[t]: 16x8 row-major f32 at
// c + 128 t, read and overwritten. Element type f16 or bf16 (tile_mma_f16 / tile_mma_bf16).
//
// Launch: one warp per tile, 4 warps (128 threads) per block, 1-D grid of ceil(tiles / 4) blocks. A warp whose
// tile is past the end returns as a whole before any collective, so mma.sync.aligned always runs on full warps.
// Each lane loads its fragments with 16-bit (A, B) and 32-bit (C) loads straight from global memory (no shared
// memory: each element is read by exactly one lane), does one mma.sync, and stores its four D elements.
//
// Floor per tile: reads 256 + 128 elements of T (768 bytes) and 512 bytes of C, writes 512 bytes of C:
// 1792 bytes; 2 * 16 * 8 * 16 = 4096 flops, 2.3 flop/byte: bandwidth-bound (this op is a conformance check, not
// a fast path).
#include "mma.cuh"

namespace {

constexpr unsigned kWarpsPerBlock = 4;
constexpr unsigned kThreads = 32 * kWarpsPerBlock;
constexpr unsigned long long kTileA = 16 * 16;  // elements of A per tile
constexpr unsigned long long kTileB = 16 * 8;   // elements of B per tile
constexpr unsigned long long kTileC = 16 * 8;   // elements of C per tile

// The lane whose A fragment this lane loads: its own. SLR_FAULT_MMA_FRAGMENT plants a fault for the mutation
// tests (the neighbouring lane's fragment, i.e. wrong rows/columns of A); it lives here, not in mma.cuh, so that a
// variant build recompiling only this file with -DSLR_FAULT_MMA_FRAGMENT breaks only this kernel family.
__device__ __forceinline__ unsigned a_fragment_lane(unsigned lane) {
#ifdef SLR_FAULT_MMA_FRAGMENT
    return (lane + 1) & 31u;
#else
    return lane;
#endif
}

template <typename T>
__device__ __forceinline__ void tile_mma_impl(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                                              unsigned long long tiles) {
    // 64-bit so that tile * 256 cannot wrap.
    const unsigned long long tile = (unsigned long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    if (tile >= tiles) return;  // warp-uniform: the whole warp leaves together
    const unsigned lane = threadIdx.x % 32;
    const T* a_tile = a + tile * kTileA;
    const T* b_tile = b + tile * kTileB;
    float* c_tile = c + tile * kTileC;

    unsigned fa[4], fb[2];
    float fc[4], fd[4];
    slr::mma_load_a_row_major(fa, a_tile, 16, a_fragment_lane(lane));
    slr::mma_load_b_row_major(fb, b_tile, 8, lane);
    slr::mma_load_c_row_major(fc, c_tile, 8, lane);
    slr::mma_m16n8k16<T>(fd, fa, fb, fc);
    slr::mma_store_d_row_major(c_tile, 8, lane, fd);
}

}  // namespace

#define SLR_TILE_MMA(NAME, T)                                                                                    \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        NAME(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c, unsigned long long tiles) { \
        tile_mma_impl<T>(a, b, c, tiles);                                                                        \
    }

SLR_TILE_MMA(tile_mma_f16, __half)
SLR_EMU_EXPORT(tile_mma_f16)
SLR_TILE_MMA(tile_mma_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(tile_mma_bf16)

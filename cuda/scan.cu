// Exclusive prefix sum of 32-bit counts (src/scan.rs), the step that turns per-row (or per-column, per-word)
// counts into CSR offsets:
//
//   offsets[i] = counts[0] + ... + counts[i-1]   for i in [0, n], truncated to 32 bits, and total[0] = the exact
//   64-bit sum when it is below 2^32 - 1, else at least 2^32 - 1 (the multi-tile path saturates its tile sums, see
//   scan_tile_sums); the caller checks it is below 2^32 - 1 (or fits its index type) before trusting offsets.
//
// Two designs, chosen by n (src/scan.rs):
// - scan_u32, n <= 8192: one block of 1024 threads, 8 KiB of dynamic shared memory. Each thread sums a contiguous
//   chunk of ceil(n / 1024) <= 8 counts, the chunk sums are scanned in shared memory (Hillis-Steele, 10 steps),
//   then each thread writes its chunk's prefixes. Launch- and latency-bound (a few microseconds).
// - n > 8192, three launches over tiles of 8192 counts (1024 threads x 8 consecutive counts, loaded as two
//   16-byte loads): scan_tile_sums writes each tile's sum; the tile sums are scanned (recursively, by the same
//   code); scan_tiles re-reads its tile, scans the per-thread sums within the block (warp shuffles, then the 32
//   warp totals in shared memory) and writes the offsets starting from its tile's offset. Floor: reads 8n bytes,
//   writes 4(n + 1): 704k word counts (an 11008x4096 mask) move 8.5 MB, ~2 us at 4.3 TB/s.
// Integer sums do not depend on order, so every path is deterministic. Offsets wrap modulo 2^32 like the
// truncation above; the total comes from the 64-bit single-block scan at the top of the recursion, over the
// saturated tile sums.
#include "common.cuh"

namespace {

constexpr unsigned kScanThreads = 1024;

__device__ __forceinline__ void scan_counts(const unsigned* __restrict__ counts, unsigned n,
                                            unsigned* __restrict__ offsets, unsigned long long* __restrict__ total) {
    SLR_DYNAMIC_SMEM(unsigned long long, partial);  // kScanThreads chunk sums
    unsigned t = threadIdx.x;
    unsigned chunk = (n + kScanThreads - 1) / kScanThreads;
    unsigned lo = min(n, t * chunk), hi = min(n, lo + chunk);
    unsigned long long sum = 0;
    for (unsigned i = lo; i < hi; ++i) sum += counts[i];
    partial[t] = sum;
#ifndef SLR_FAULT_MISSING_SYNC  // planted fault for the emulator's mutation test: the scan reads unwritten sums
    __syncthreads();
#endif
    // Inclusive Hillis-Steele scan of the chunk sums: log2(1024) = 10 steps, two barriers each so no thread
    // overwrites a value another thread still has to read.
    for (unsigned step = 1; step < kScanThreads; step <<= 1) {
        unsigned long long add = t >= step ? partial[t - step] : 0;
        __syncthreads();
        partial[t] += add;
        __syncthreads();
    }
    unsigned long long running = t == 0 ? 0 : partial[t - 1];
    for (unsigned i = lo; i < hi; ++i) {
        offsets[i] = (unsigned)running;
        running += counts[i];
    }
    if (t == kScanThreads - 1) {
        offsets[n] = (unsigned)partial[t];
        total[0] = partial[t];
    }
}

constexpr unsigned kPerThread = 8;
constexpr unsigned kTile = kScanThreads * kPerThread;

// The 8 consecutive counts thread t of tile `tile` covers (zeros past n), and their sum.
__device__ __forceinline__ unsigned load_counts(const unsigned* __restrict__ counts, unsigned n, unsigned tile,
                                                unsigned (&c)[kPerThread]) {
    unsigned long long base = (unsigned long long)tile * kTile + threadIdx.x * kPerThread;
    if (base + kPerThread <= n) {
        // Tiles start at multiples of 8192 counts and threads at multiples of 8: 32-byte aligned.
        uint4 a = slr::load_vec(reinterpret_cast<const uint4*>(counts + base)), b = slr::load_vec(reinterpret_cast<const uint4*>(counts + base) + 1);
        c[0] = a.x; c[1] = a.y; c[2] = a.z; c[3] = a.w; c[4] = b.x; c[5] = b.y; c[6] = b.z; c[7] = b.w;
    } else {
#pragma unroll
        for (unsigned i = 0; i < kPerThread; ++i) c[i] = base + i < n ? counts[base + i] : 0u;
    }
    unsigned sum = 0;
#pragma unroll
    for (unsigned i = 0; i < kPerThread; ++i) sum += c[i];
    return sum;
}

// Exclusive prefix of v over the block's threads (in thread order), modulo 2^32; `total` gets the block's sum.
__device__ __forceinline__ unsigned block_exclusive_scan(unsigned v, unsigned& total) {
    __shared__ unsigned warp_totals[kScanThreads / 32];
    unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const unsigned inclusive = slr::warp_inclusive_scan(v);
    if (lane == 31) warp_totals[warp] = inclusive;
    __syncthreads();
    if (warp == 0) warp_totals[lane] = slr::warp_inclusive_scan(warp_totals[lane]);  // inclusive over warps
    __syncthreads();
    total = warp_totals[kScanThreads / 32 - 1];
    return (warp == 0 ? 0u : warp_totals[warp - 1]) + inclusive - v;
}

}  // namespace

// tile_sums[b] = sum of counts[b * 8192 .. (b + 1) * 8192), saturated at 2^32 - 1: summed in 64 bits (per thread,
// butterfly per warp, the 32 warp sums in order by thread 0), so a tile whose sum does not fit 32 bits gives 2^32 - 1
// instead of its low bits. Saturating each tile (and, through the recursion, each sum of tiles) makes the top's
// 64-bit total exact whenever it is below 2^32 - 1 and at least 2^32 - 1 otherwise: callers refuse totals from
// 2^32 - 1 up (until 2026-11-29 the tile sums wrapped, so a mask of more than 2^32 set bits could report a total
// that fit, with wrong offsets).
extern "C" __global__ void __launch_bounds__(kScanThreads)
    scan_tile_sums(const unsigned* __restrict__ counts, unsigned n, unsigned* __restrict__ tile_sums) {
    __shared__ unsigned long long warp_sums[kScanThreads / 32];
    unsigned c[kPerThread];
    load_counts(counts, n, blockIdx.x, c);
    unsigned long long mine = 0;
#pragma unroll
    for (unsigned i = 0; i < kPerThread; ++i) mine += c[i];
    mine = slr::warp_sum(mine);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = mine;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long total = 0;
        for (unsigned w = 0; w < kScanThreads / 32; ++w) total += warp_sums[w];
        tile_sums[blockIdx.x] = total > 0xffffffffull ? 0xffffffffu : (unsigned)total;
    }
}
SLR_EMU_EXPORT(scan_tile_sums)

// offsets[i] for i in tile b = tile_offsets[b] + prefix within the tile; offsets[n] = tile_offsets[tiles].
extern "C" __global__ void __launch_bounds__(kScanThreads)
    scan_tiles(const unsigned* __restrict__ counts, unsigned n, const unsigned* __restrict__ tile_offsets,
               unsigned* __restrict__ offsets) {
    unsigned c[kPerThread];
    unsigned total;
    unsigned running = tile_offsets[blockIdx.x] + block_exclusive_scan(load_counts(counts, n, blockIdx.x, c), total);
    unsigned long long base = (unsigned long long)blockIdx.x * kTile + threadIdx.x * kPerThread;
#pragma unroll
    for (unsigned i = 0; i < kPerThread; ++i) {
        if (base + i < n) offsets[base + i] = running;
        running += c[i];
    }
    if (blockIdx.x == gridDim.x - 1 && threadIdx.x == 0) offsets[n] = tile_offsets[gridDim.x];
}
SLR_EMU_EXPORT(scan_tiles)

extern "C" __global__ void __launch_bounds__(kScanThreads)
    scan_u32(const unsigned* __restrict__ counts, unsigned n, unsigned* __restrict__ offsets,
             unsigned long long* __restrict__ total) {
    scan_counts(counts, n, offsets, total);
}
SLR_EMU_EXPORT(scan_u32)

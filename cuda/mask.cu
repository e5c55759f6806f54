// Bit-packed mask -> CSR pattern on the device (src/mask.rs: mask_to_csr). Masks are recomputed on a cadence
// (LIFT every few hundred steps, RigL-style regrowth, 2:4 refresh), and the CSR that SpMM/SDDMM/gather consume
// is derived from them without a round trip through the host.
//
// Mask layout: bit b = r * cols + c of a rows x cols matrix, least significant bit first in 64-bit words.
// Three launches, in order:
//   mask_row_counts:    counts[r] = popcount of row r's bits.            one warp per row, 8 warps per block
//   (scan_u32, cuda/scan.cu: offsets = exclusive prefix sum of counts, and the 64-bit total)
//   mask_row_columns:   col_indices[offsets[r] ...] = set columns of r    one warp per row, 8 warps per block
//                       in increasing order
// Deterministic (no atomics). Floor: the mask is read twice (2 * rows * cols / 8 bytes), counts written and read
// (8 * rows), offsets written (4 * (rows + 1)), columns written (4 * nnz). At 5% density of 4096 x 4096:
// 4.2 MB of mask reads + 3.4 MB of columns: a few microseconds of HBM time; the scan is latency-bound.
#include "common.cuh"

namespace {

constexpr unsigned kWarpsPerBlock = 8;

// Bits [first, first + count) of the mask, as the 64-bit word holding bit `first` shifted so that bit 0 of the
// result is bit `first` (count <= 64 - first % 64 keeps it inside one word).
__device__ __forceinline__ unsigned long long bits_at(const unsigned long long* __restrict__ words,
                                                      unsigned long long first) {
    return words[first >> 6] >> (first & 63);
}

// The 64 bits of the mask starting at bit `first` (bit 0 of the result is bit `first`), from one or two words;
// bits at or past `end` are zero (end - first may be below 64 only at a row's end).
__device__ __forceinline__ unsigned long long bits64_at(const unsigned long long* __restrict__ words,
                                                        unsigned long long first, unsigned long long end) {
    if (first >= end) return 0ull;
    unsigned long long chunk = bits_at(words, first);
    const unsigned taken = 64 - (unsigned)(first & 63);
    const unsigned long long n = min(64ull, end - first);
    if (taken < n) chunk |= words[(first >> 6) + 1] << taken;
    if (n < 64) chunk &= (1ull << n) - 1;
    return chunk;
}

// slr::warp_sum's butterfly, kept here so the planted wrong-lane fault stays in this file (faults never live in
// shared headers: the faulty variant recompiles only this file).
__device__ __forceinline__ unsigned warp_sum(unsigned v) {
#ifdef SLR_FAULT_WRONG_SHUFFLE_LANE
    // Planted fault for the emulator's mutation test: the last butterfly step reads the wrong lane.
    for (int offset = 16; offset > 1; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
#else
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
#endif
    return v;
}

// counts[r] = number of set bits in row r. Lanes walk the row's bit range in 64-bit steps (bits64_at: a step may
// straddle two words).
__device__ __forceinline__ void row_counts(const unsigned long long* __restrict__ words, unsigned rows, unsigned cols,
                                           unsigned* __restrict__ counts) {
    unsigned warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (warp >= rows) return;  // whole warps leave together: the shuffles below see full warps
    unsigned long long row_start = (unsigned long long)warp * cols;
    unsigned count = 0;
    for (unsigned c = lane * 64; c < cols; c += 32 * 64) count += __popcll(bits64_at(words, row_start + c, row_start + cols));
    count = warp_sum(count);
    if (lane == 0) counts[warp] = count;
}

// col_indices[offsets[r] + k] = column of the k-th set bit of row r. The warp takes 2048 columns at a time: lane i
// loads the 64 bits of columns base + 64 i .. + 63 (all 32 loads in flight together: one round trip per 2048
// columns, where a load per 32 columns, each waiting for the previous step, took ~64 dependent round trips for a
// row of 4096 and made mask_to_csr latency-bound, 62 us at 4096 rows and 112 at 11008 on an H200); then, 32
// columns at a time in increasing order, those bits are broadcast by shuffle and a ballot tells each lane how many
// set bits precede it, so writes stay in order and coalesced.
// `cap` is col_indices' length: when the caller sized it from a count it did not read back from the scan (the
// selection's exact count, src/topk.rs topk_csr), nothing is written at or past it, and the offsets are clamped
// to it with offsets[rows] = cap, so the pattern stays in bounds for every later kernel even if the count and
// the mask ever disagreed (a bug: the tests compare every pattern with the reference). With cap = the scan's
// total, as mask_to_csr passes, nothing changes.
__device__ __forceinline__ void row_columns(const unsigned long long* __restrict__ words, unsigned rows, unsigned cols,
                                            unsigned* __restrict__ offsets, unsigned* __restrict__ col_indices,
                                            unsigned cap) {
    unsigned warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (warp >= rows) return;
    unsigned long long row_start = (unsigned long long)warp * cols;
    unsigned out = offsets[warp];  // only this warp reads or writes offsets[warp]
    __syncwarp();
    if (lane == 0) {
        offsets[warp] = min(out, cap);
        if (warp == rows - 1) offsets[rows] = cap;
    }
    const unsigned long long row_end = row_start + cols;
    for (unsigned base = 0; base < cols; base += 32 * 64) {  // warp-uniform trip counts below
        const unsigned long long mine = bits64_at(words, row_start + base + 64ull * lane, row_end);
        const unsigned steps = min(64u, (cols - base + 31) / 32);  // 32-column steps in this 2048-column chunk
        for (unsigned s = 0; s < steps; ++s) {
            const unsigned long long word = __shfl_sync(0xffffffffu, mine, s / 2);
            const unsigned half = (unsigned)(word >> (32 * (s % 2)));
            const unsigned c = base + 32 * s + lane;
            const bool set = c < cols && ((half >> lane) & 1u);
            const unsigned ballot = __ballot_sync(0xffffffffu, set);
            const unsigned at = out + __popc(ballot & ((1u << lane) - 1));
            if (set && at < cap) col_indices[at] = c;
            out += __popc(ballot);
        }
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32)
    mask_row_counts(const unsigned long long* __restrict__ words, unsigned rows, unsigned cols,
                    unsigned* __restrict__ counts) {
    row_counts(words, rows, cols, counts);
}
SLR_EMU_EXPORT(mask_row_counts)

extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32)
    mask_row_columns(const unsigned long long* __restrict__ words, unsigned rows, unsigned cols,
                     unsigned* __restrict__ offsets, unsigned* __restrict__ col_indices, unsigned cap) {
    row_columns(words, rows, cols, offsets, col_indices, cap);
}
SLR_EMU_EXPORT(mask_row_columns)

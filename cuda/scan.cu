// Exclusive prefix sum of 32-bit counts (src/scan.rs), the step that turns per-row (or per-column, per-word)
// counts into CSR offsets:
//
//   offsets[i] = counts[0] + ... + counts[i-1]   for i in [0, n], truncated to 32 bits, and total[0] = the exact
//   64-bit sum (the caller checks it fits its index type before trusting offsets).
//
// Launch: one block of 1024 threads, 8 KiB of dynamic shared memory. Each thread sums a contiguous chunk of
// ceil(n / 1024) counts, the chunk sums are scanned in shared memory (Hillis-Steele, 10 steps), then each thread
// writes its chunk's prefixes. Floor: reads 4n bytes twice, writes 4(n + 1): for n of a few thousand rows it is
// launch- and latency-bound (~10 us), which is fine for a step that runs once per mask refresh. A single block
// keeps it simple and deterministic; a decoupled look-back scan would be the next step if n grows to millions.
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

}  // namespace

extern "C" __global__ void __launch_bounds__(kScanThreads)
    scan_u32(const unsigned* __restrict__ counts, unsigned n, unsigned* __restrict__ offsets,
             unsigned long long* __restrict__ total) {
    scan_counts(counts, n, offsets, total);
}
SLR_EMU_EXPORT(scan_u32)

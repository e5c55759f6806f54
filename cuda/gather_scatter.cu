// gather and scatter_add between a dense matrix W and the entries of a CSR pattern (src/gather_scatter.rs).
//
//   gather:       out[e] = W[row(e), col(e)]                       for e in [0, nnz)
//   scatter_add:  W[row(e), col(e)] = round(W + alpha * v[e])        for e in [0, nnz), f32 arithmetic, one rounding
//
// W is addressed as W[r, c] = W[r * row_stride + c * col_stride] (row-major: (ld, 1); column-major: (1, ld)).
// Launch: four entries per thread (entry u of thread t in block b: b * 1024 + u * 256 + t), 1-D grid of
// ceil(nnz / 1024) blocks of 256 threads; a thread issues its four loads before its stores. Each block first finds
// the rows of its first and last entries (two warps, one 32-way search each over all rows: ~log32(rows) dependent
// loads, 3 for 11008 rows, where one thread's binary search took 14); then every thread finds its own row by
// binary search within that span, which is a handful of rows at LLM densities, over the span's offsets staged in
// shared memory (up to 256 rows; global memory beyond). The work per thread is the same whatever the row-length
// skew.
// No atomics: a validated CSR has strictly increasing columns within a row, so every entry names a distinct
// W element and the result is bitwise deterministic.
//
// Floor (bytes that must move): gather reads nnz*(4 + sizeof(T)) + 4*(rows+1) and writes nnz*sizeof(T);
// scatter_add reads nnz*(4 + sizeof(TV) + sizeof(TW)) + 4*(rows+1) and writes nnz*sizeof(TW). Reads and writes of
// W are scattered: when entries are sparser than one per 32-byte sector, each costs a whole sector, so the
// effective floor at low density is nnz*32 bytes per W pass. No flops to speak of: bandwidth-bound.
#include "common.cuh"

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kPerThread = 4;  // entries per thread, strided by kThreads (coalesced), loads in flight together
constexpr unsigned kSpanStaged = 256;  // rows of a block's span whose offsets go to shared memory

// The kPerThread entries this thread handles, entry u at first + u * kThreads + threadIdx.x (64-bit so the last
// block cannot wrap when nnz is close to 2^32), and their rows. The block first finds the rows of its first and last
// entries (two threads, one binary search each, shared through shared memory); each thread then searches only that
// span. Every thread of the block must call this (it has a barrier) before leaving.
struct Entries {
    unsigned long long entry[kPerThread];
    unsigned row[kPerThread];
};
__device__ __forceinline__ Entries entries_and_rows(const unsigned* __restrict__ row_offsets, unsigned rows,
                                                    unsigned nnz) {
    __shared__ unsigned span[2];                     // rows of the block's first and last entries
    __shared__ unsigned span_offsets[kSpanStaged];   // row_offsets[span[0] ..= span[1]] when that fits
    unsigned long long first = (unsigned long long)blockIdx.x * kThreads * kPerThread;
    const unsigned warp = threadIdx.x / 32;
    if (warp < 2) {  // warp 0 the first entry's row, warp 1 the last's: 32-way searches, in parallel
        unsigned long long last = min(first + kThreads * kPerThread, (unsigned long long)nnz) - 1;
        const unsigned row = slr::csr_row_of_entry_warp(row_offsets, 0u, rows - 1, (unsigned)(warp == 0 ? first : last));
        if (threadIdx.x % 32 == 0) span[warp] = row;
    }
    __syncthreads();
    const unsigned lo = span[0], hi = span[1];
    // The span's offsets into shared memory (one coalesced read), so each thread's search below runs there; a
    // span of more rows than that (entries sparser than 4 per row on average) searches global memory instead.
    const bool staged = hi - lo < kSpanStaged;  // block-uniform
    if (staged) {
        for (unsigned r = threadIdx.x; r <= hi - lo; r += kThreads) span_offsets[r] = row_offsets[lo + r];
    }
    __syncthreads();
    Entries en;
#pragma unroll
    for (unsigned u = 0; u < kPerThread; ++u) en.entry[u] = first + u * kThreads + threadIdx.x;
    if (staged) {
#pragma unroll
        for (unsigned u = 0; u < kPerThread; ++u) {
            const unsigned e = (unsigned)min(en.entry[u], (unsigned long long)nnz - 1);
            en.row[u] = lo + slr::csr_row_of_entry(span_offsets, 0u, hi - lo, e);
        }
    } else {
#pragma unroll
        for (unsigned u = 0; u < kPerThread; ++u) {
            const unsigned e = (unsigned)min(en.entry[u], (unsigned long long)nnz - 1);
            en.row[u] = slr::csr_row_of_entry(row_offsets, lo, hi, e);
        }
    }
    return en;
}

// Whether entry u is one to process.
__device__ __forceinline__ bool live(const Entries& en, unsigned u, unsigned nnz) {
#ifdef SLR_FAULT_OFF_BY_ONE_BOUND
    return en.entry[u] <= nnz;  // planted fault for the emulator's mutation test: entry nnz runs past the end
#else
    return en.entry[u] < nnz;
#endif
}

template <typename T>
__device__ __forceinline__ void gather_impl(const T* __restrict__ dense, unsigned long long row_stride,
                                            unsigned long long col_stride, const unsigned* __restrict__ row_offsets,
                                            const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz,
                                            T* __restrict__ out) {
    Entries en = entries_and_rows(row_offsets, rows, nnz);
    // All loads first (independent, in flight together), then the stores.
    T v[kPerThread];
#pragma unroll
    for (unsigned u = 0; u < kPerThread; ++u) {
        if (live(en, u, nnz)) v[u] = dense[en.row[u] * row_stride + col_indices[en.entry[u]] * col_stride];
    }
#pragma unroll
    for (unsigned u = 0; u < kPerThread; ++u) {
        if (live(en, u, nnz)) out[en.entry[u]] = v[u];
    }
}

template <typename TW, typename TV>
__device__ __forceinline__ void scatter_add_impl(TW* __restrict__ dense, unsigned long long row_stride,
                                                 unsigned long long col_stride,
                                                 const unsigned* __restrict__ row_offsets,
                                                 const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz,
                                                 const TV* __restrict__ values, float alpha) {
    Entries en = entries_and_rows(row_offsets, rows, nnz);
    TW* w[kPerThread];
    float old[kPerThread], delta[kPerThread];
#pragma unroll
    for (unsigned u = 0; u < kPerThread; ++u) {
        if (en.entry[u] < nnz) {
            w[u] = dense + (en.row[u] * row_stride + col_indices[en.entry[u]] * col_stride);
            old[u] = slr::to_f32(*w[u]);
            delta[u] = slr::to_f32(values[en.entry[u]]);
        }
    }
    // fmaf: one rounding in f32, then one to TW. The CPU reference computes the same f32::mul_add.
#pragma unroll
    for (unsigned u = 0; u < kPerThread; ++u) {
        if (en.entry[u] < nnz) *w[u] = slr::from_f32<TW>(fmaf(alpha, delta[u], old[u]));
    }
}

}  // namespace

#define SLR_GATHER(NAME, T)                                                                                      \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        NAME(const T* __restrict__ dense, unsigned long long row_stride, unsigned long long col_stride,          \
             const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices, unsigned rows,   \
             unsigned nnz, T* __restrict__ out) {                                                               \
        gather_impl<T>(dense, row_stride, col_stride, row_offsets, col_indices, rows, nnz, out);                \
    }

#define SLR_SCATTER_ADD(NAME, TW, TV)                                                                            \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        NAME(TW* __restrict__ dense, unsigned long long row_stride, unsigned long long col_stride,              \
             const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices, unsigned rows,   \
             unsigned nnz, const TV* __restrict__ values, float alpha) {                                        \
        scatter_add_impl<TW, TV>(dense, row_stride, col_stride, row_offsets, col_indices, rows, nnz, values,    \
                                 alpha);                                                                        \
    }

SLR_GATHER(gather_f32, float)
SLR_EMU_EXPORT(gather_f32)
SLR_GATHER(gather_f16, __half)
SLR_EMU_EXPORT(gather_f16)
SLR_GATHER(gather_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(gather_bf16)

SLR_SCATTER_ADD(scatter_add_f32_f32, float, float)
SLR_EMU_EXPORT(scatter_add_f32_f32)
SLR_SCATTER_ADD(scatter_add_f16_f16, __half, __half)
SLR_EMU_EXPORT(scatter_add_f16_f16)
SLR_SCATTER_ADD(scatter_add_f16_f32, __half, float)
SLR_EMU_EXPORT(scatter_add_f16_f32)
SLR_SCATTER_ADD(scatter_add_bf16_bf16, __nv_bfloat16, __nv_bfloat16)
SLR_EMU_EXPORT(scatter_add_bf16_bf16)
SLR_SCATTER_ADD(scatter_add_bf16_f32, __nv_bfloat16, float)
SLR_EMU_EXPORT(scatter_add_bf16_f32)

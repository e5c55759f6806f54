// gather and scatter_add between a dense matrix W and the entries of a CSR pattern (src/gather_scatter.rs).
//
//   gather:       out[e] = W[row(e), col(e)]                       for e in [0, nnz)
//   scatter_add:  W[row(e), col(e)] = round(W + alpha * v[e])        for e in [0, nnz), f32 arithmetic, one rounding
//
// W is addressed as W[r, c] = W[r * row_stride + c * col_stride] (row-major: (ld, 1); column-major: (1, ld)).
// Launch: one thread per entry, 1-D grid of ceil(nnz / 256) blocks of 256 threads. Each thread finds its row by
// binary search over row_offsets, so the work per thread is the same whatever the row-length skew.
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

template <typename T>
__device__ __forceinline__ void gather_impl(const T* __restrict__ dense, unsigned long long row_stride,
                                            unsigned long long col_stride, const unsigned* __restrict__ row_offsets,
                                            const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz,
                                            T* __restrict__ out) {
    // 64-bit so that the last block cannot wrap when nnz is close to 2^32.
    unsigned long long entry = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
#ifdef SLR_FAULT_OFF_BY_ONE_BOUND
    if (entry > nnz) return;  // planted fault for the emulator's mutation test: thread nnz runs past the end
#else
    if (entry >= nnz) return;
#endif
    unsigned e = (unsigned)entry;
    unsigned r = slr::csr_row_of_entry(row_offsets, rows, e);
    unsigned c = col_indices[e];
    out[e] = dense[r * row_stride + c * col_stride];
}

template <typename TW, typename TV>
__device__ __forceinline__ void scatter_add_impl(TW* __restrict__ dense, unsigned long long row_stride,
                                                 unsigned long long col_stride,
                                                 const unsigned* __restrict__ row_offsets,
                                                 const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz,
                                                 const TV* __restrict__ values, float alpha) {
    // 64-bit so that the last block cannot wrap when nnz is close to 2^32.
    unsigned long long entry = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (entry >= nnz) return;
    unsigned e = (unsigned)entry;
    unsigned r = slr::csr_row_of_entry(row_offsets, rows, e);
    unsigned c = col_indices[e];
    TW* w = dense + (r * row_stride + c * col_stride);
    // fmaf: one rounding in f32, then one to TW. The CPU reference computes the same f32::mul_add.
    *w = slr::from_f32<TW>(fmaf(alpha, slr::to_f32(values[e]), slr::to_f32(*w)));
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

// SpMM: a sparse matrix S (CSR, values of type T) times dense matrices (src/spmm.rs). Two forms:
//
//   spmm_xst:  Y[t, o] = alpha * sum_{e in row o of S} S[e] * X[t, col(e)] + beta * Y[t, o]
//              i.e. Y <- alpha * X * S^T + beta * Y: a sparse Linear layer's forward (X: T x in, S: out x in,
//              Y: T x out), and with S^T in place of S the backward to the input, dX <- alpha * dY * S + beta * dX.
//   spmm_sb:   C[r, j] = alpha * sum_{e in row r of S} S[e] * B[col(e), j] + beta * C[r, j]
//              i.e. C <- alpha * S * B + beta * C, the textbook form (B: k x n, C: m x n).
//
// Dense operands are addressed through (row_stride, col_stride), so row- and column-major layouts with any
// leading dimension share one kernel; the fast case is row-major. f32 accumulation with explicit fmaf, output
// rounded once to T. beta == 0 ignores the old output (a NaN there does not leak). Deterministic: every sum is
// formed in a fixed order (no atomics).
//
// spmm_xst, T <= 2 (decode): one warp per row of S (spmm_xst_rowwarp, below) unless the longest row exceeds 4x the
// mean + 64 (src/spmm.rs); then one block per 8 rows of S: its 256 threads split the 8 rows' entries together
// (coalesced loads of values and columns, 4 entries per thread in flight), gather X[t, col(e)] and file per-row
// partial sums in shared memory, which warp w sums for row w in a fixed order; lane t writes Y[t, o]. A long row
// (skewed masks) is then shared by 8 warps, not walked by one.
// spmm_xst, T > 2: X is first transposed (transpose_pad) into Xt (in x ldt, ldt = T rounded up to 8, padding
// zero), so the T values an entry needs are contiguous: one 16-byte load gives 8 of them (two for f32). Then
// spmm_xst_vec / vec2 / vec4 (G = 1, 2, 4 lanes per entry; ldt = 8, 16, >= 24): one warp per (row o of S, 8G
// rows of X); each lane accumulates 8 sums over its entries, the butterfly over lanes with equal lane % G reduces
// them and 8G lanes write Y[t, o]. The S row is read once per 8G rows of X, each entry's Xt row in one request.
// transpose_pad: 32x32 tiles through shared memory (one +1-padded tile per block).
// spmm_xst, T >= 64: the same transpose, then spmm_xst_wide (one warp per (row o, 128 rows of X), lanes across
// t, entries broadcast by shuffle; see its comment).
// spmm_xst_vec's launch bounds name 4 blocks per SM (64 registers, no spills on sm_80-90; the `_serial` variants
// kept for comparison name 2: with the single-argument form ptxas (13.0, sm_80) capped the f32 variant at 32
// registers and spilled), as do spmm_xst_wide's (both variants); the resource-report test guards this.
// Floor (skinny T, the memory-bound decode/small-batch regime): read S once, nnz * (4 + sizeof(T)) + 4 * (out + 1)
// bytes, plus X (T * in * sizeof(T), mostly cache-resident gathers) and Y (read if beta != 0, written:
// T * out * sizeof(T)); 2 * nnz * T flops. Large T is compute/gather-bound here: a tensor-core kernel over
// transposed tiles is the planned next step (docs/benchmarks.md).
//
// spmm_sb below n = 64 (or B's rows not 16-byte vectors; above, the wide kernel): one warp per (row r of S, 32 consecutive columns j of B), 8 warps per block, 1-D grid. The warp
// loads 32 entries of the row at a time and broadcasts each (value, column) by shuffle; every lane then reads
// B[col, j] (coalesced across the warp for row-major B) and accumulates in entry order, so each output is the
// sequential fmaf chain the CPU reference computes: bitwise equal to it. Floor: S read once per 32-column tile,
// B rows gathered (nnz * n * sizeof(T) from L2/HBM), C read (beta != 0) and written; 2 * nnz * n flops.
#include "common.cuh"
#include "mma.cuh"

namespace {

constexpr unsigned kWarpsPerBlock = 8;
constexpr unsigned kTileT = 2;   // spmm_xst's direct-gather kernel serves T <= 2 (src/spmm.rs: SCALAR_T_MAX)
constexpr unsigned kUnroll = 4;  // entries per lane whose loads are in flight together

// alpha * acc + beta * old, with beta == 0 meaning "overwrite" (old may be NaN).
template <typename T>
__device__ __forceinline__ T combine(float acc, float alpha, float beta, const T* out) {
    return slr::from_f32<T>(beta == 0.0f ? alpha * acc : fmaf(alpha, acc, beta * slr::to_f32(*out)));
}

// Sums each of the N per-lane partials across the warp (fixed butterfly order) and stores sum j into
// Y[t0 + j, o] from lane j, for t0 + j < t_count.
template <unsigned N, typename T>
__device__ __forceinline__ void reduce_and_store(const float (&acc)[N], unsigned lane, unsigned t0, unsigned t_count,
                                                 unsigned o, T* __restrict__ y, unsigned long long y_rs,
                                                 unsigned long long y_cs, float alpha, float beta) {
    float mine = 0.0f;
#pragma unroll
    for (unsigned j = 0; j < N; ++j) {
        float sum = slr::warp_sum(acc[j]);
        mine = lane == j ? sum : mine;
    }
    if (lane < N && t0 + lane < t_count) {
        T* out = y + ((t0 + lane) * y_rs + o * y_cs);
        *out = combine(mine, alpha, beta, out);
    }
}

// spmm_xst for T <= 2 (decode): one block per 8 consecutive rows of S, its 256 threads striding over the rows'
// entries together (entry lo + t + 256 j, kUnroll of them in flight per thread), so that one long row (a skewed
// mask's dense row) is shared by the block's 8 warps instead of walking one warp. A thread's entries only move
// forward, so it keeps one running sum per t and files it in partial[t][row][thread] when it leaves a row (each
// (row, thread) slot written at most once; untouched slots stay zero). Warp w then sums row w's 256 slots in a
// fixed order (8 per lane, then the butterfly): deterministic, and within the reassociation bound of the
// sequential reference.
template <typename T>
__device__ __forceinline__ void spmm_xst_impl(const unsigned* __restrict__ row_offsets,
                                              const unsigned* __restrict__ col_indices,
                                              const T* __restrict__ values, unsigned s_rows,
                                              const T* __restrict__ x, unsigned long long x_rs,
                                              unsigned long long x_cs, unsigned t_count, T* __restrict__ y,
                                              unsigned long long y_rs, unsigned long long y_cs, float alpha,
                                              float beta) {
    constexpr unsigned kRows = kWarpsPerBlock, kThreads = kWarpsPerBlock * 32;
    __shared__ float partial[kTileT][kRows][kThreads];
    __shared__ unsigned offs[kRows + 1];
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned r0 = blockIdx.x * kRows;
    if (r0 >= s_rows) return;  // the whole block leaves together
    const unsigned rows_here = min(kRows, s_rows - r0);
    if (t <= rows_here) offs[t] = row_offsets[r0 + t];
    for (unsigned i = t; i < kTileT * kRows * kThreads; i += kThreads) (&partial[0][0][0])[i] = 0.0f;
    __syncthreads();
    const unsigned lo = offs[0], hi = offs[rows_here];
    unsigned cur = 0;  // this thread's current row (local index); only moves forward
    float acc[kTileT] = {0.0f, 0.0f};
    for (unsigned e0 = lo + t; e0 < hi; e0 += kThreads * kUnroll) {
        float s[kUnroll], xv[kUnroll][kTileT];
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
            unsigned e = e0 + kThreads * u;
            unsigned long long c = e < hi ? col_indices[e] : 0u;
            s[u] = e < hi ? slr::to_f32(values[e]) : 0.0f;
#pragma unroll
            for (unsigned j = 0; j < kTileT; ++j) {
                xv[u][j] = (e < hi && j < t_count) ? slr::to_f32(x[j * x_rs + c * x_cs]) : 0.0f;
            }
        }
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
            unsigned e = e0 + kThreads * u;
            if (e < hi) {
                while (offs[cur + 1] <= e) {  // leaving row cur: file its sum
#pragma unroll
                    for (unsigned j = 0; j < kTileT; ++j) {
                        partial[j][cur][t] = acc[j];
                        acc[j] = 0.0f;
                    }
                    ++cur;
                }
#pragma unroll
                for (unsigned j = 0; j < kTileT; ++j) acc[j] = fmaf(s[u], xv[u][j], acc[j]);
            }
        }
    }
    if (lo + t < hi) {  // the thread saw entries: file the last row's sum
#pragma unroll
        for (unsigned j = 0; j < kTileT; ++j) partial[j][cur][t] = acc[j];
    }
    __syncthreads();
    if (warp < rows_here) {
        float mine = 0.0f;
#pragma unroll
        for (unsigned j = 0; j < kTileT; ++j) {
            float sum = 0.0f;
#pragma unroll
            for (unsigned i = 0; i < kThreads / 32; ++i) sum += partial[j][warp][lane + 32 * i];
            sum = slr::warp_sum(sum);
            mine = lane == j ? sum : mine;
        }
        if (lane < t_count) {
            T* out = y + (lane * y_rs + (r0 + warp) * y_cs);
            *out = combine(mine, alpha, beta, out);
        }
    }
}

// The decode kernel for rows of similar length (src/spmm.rs t_le2_uses_row_warps; on an H200 0.66-0.94x the block
// kernel's time on uniform masks, 1.42x on a power-law one, measured before the gathers were batched): one warp per
// row of S, lanes over the row's entries (8 in flight per lane: a 5%-dense row of 4096 columns, ~205 entries, in
// one dependent step instead of two), the butterfly, lane t writes Y[t, o]. A step issues its 16 value/column loads,
// then all its X gathers (up to 8 entries x 2 t) into registers, then the FMAs: two round trips per step, where the
// gathers inside each entry's branch had run one entry after another (up to 8). Launch bounds of 5 blocks per SM
// (48 registers, no spills on sm_80-90). Each lane still adds its entries in the order lane, lane + 32, ...: the
// same sums as with 4 in flight, and as before the gathers were batched.
template <typename T>
__device__ __forceinline__ void spmm_xst_rowwarp_impl(const unsigned* __restrict__ row_offsets,
                                              const unsigned* __restrict__ col_indices,
                                              const T* __restrict__ values, unsigned s_rows,
                                              const T* __restrict__ x, unsigned long long x_rs,
                                              unsigned long long x_cs, unsigned t_count, T* __restrict__ y,
                                              unsigned long long y_rs, unsigned long long y_cs, float alpha,
                                              float beta) {
    unsigned o = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (o >= s_rows) return;  // whole warps leave together
    unsigned lo = row_offsets[o], hi = row_offsets[o + 1];
    for (unsigned t0 = 0; t0 < t_count; t0 += kTileT) {
        float acc[kTileT] = {0.0f, 0.0f};
        // kRowWarpUnroll entries per lane per step, their loads issued together (memory-level parallelism); each
        // lane still adds its entries in order lane, lane + 32, lane + 64, ... so the sum order is fixed.
        constexpr unsigned kRowWarpUnroll = 2 * kUnroll;
        for (unsigned e0 = lo + lane; e0 < hi; e0 += 32 * kRowWarpUnroll) {
            float s[kRowWarpUnroll];
            unsigned long long c[kRowWarpUnroll];
#pragma unroll
            for (unsigned u = 0; u < kRowWarpUnroll; ++u) {
                unsigned e = e0 + 32 * u;
                s[u] = e < hi ? slr::to_f32(values[e]) : 0.0f;
                c[u] = e < hi ? col_indices[e] : 0u;
            }
            // Every X gather of the step before the first FMA (absent ones zero, never used), so they are in flight
            // together: with each gather inside its entry's branch, ptxas issued them one entry after another.
            T xv[kRowWarpUnroll][kTileT];
#pragma unroll
            for (unsigned u = 0; u < kRowWarpUnroll; ++u) {
#pragma unroll
                for (unsigned j = 0; j < kTileT; ++j) {
                    xv[u][j] = e0 + 32 * u < hi && t0 + j < t_count ? __ldg(x + ((t0 + j) * x_rs + c[u] * x_cs))
                                                                    : slr::from_f32<T>(0.0f);
                }
            }
#pragma unroll
            for (unsigned u = 0; u < kRowWarpUnroll; ++u) {
                if (e0 + 32 * u < hi) {
#pragma unroll
                    for (unsigned j = 0; j < kTileT; ++j) {
                        if (t0 + j < t_count) acc[j] = fmaf(s[u], slr::to_f32(xv[u][j]), acc[j]);
                    }
                }
            }
        }
        reduce_and_store(acc, lane, t0, t_count, o, y, y_rs, y_cs, alpha, beta);
    }
}

// Eight consecutive elements starting at p (16-byte aligned) as f32: one 16-byte load for 16-bit types, two for
// f32.
__device__ __forceinline__ void load8(const float* __restrict__ p, float (&v)[8]) {
    const float4 a = slr::load_vec(reinterpret_cast<const float4*>(p)), b = slr::load_vec(reinterpret_cast<const float4*>(p) + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
template <typename T>
__device__ __forceinline__ void load8(const T* __restrict__ p, float (&v)[8]) {
    uint4 raw = slr::load_vec(reinterpret_cast<const uint4*>(p));
    const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = slr::to_f32(h[i]);
}

// Eight consecutive elements of Xt as loaded, converted to f32 only where they are used: 16 bytes (4 registers)
// for 16-bit types, where load8's floats would hold 8.
template <typename T> struct Raw8 {
    uint4 v;
    __device__ __forceinline__ void load(const T* __restrict__ p) { v = slr::load_vec(reinterpret_cast<const uint4*>(p)); }
    __device__ __forceinline__ float at(int i) const { return slr::to_f32(reinterpret_cast<const T*>(&v)[i]); }
};
template <> struct Raw8<float> {
    float4 a, b;
    __device__ __forceinline__ void load(const float* __restrict__ p) {
        a = slr::load_vec(reinterpret_cast<const float4*>(p));
        b = slr::load_vec(reinterpret_cast<const float4*>(p) + 1);
    }
    __device__ __forceinline__ float at(int i) const {
        const float4& h = i < 4 ? a : b;
        const int j = i & 3;
        return j == 0 ? h.x : j == 1 ? h.y : j == 2 ? h.z : h.w;
    }
};

// spmm_xst for 3 <= T < 64 (and T >= 64 when the wide kernel is not taken): one warp per (row o of S, 8G
// consecutive t of Xt), G in {1, 2, 4} lanes per entry. Lane `lane` serves entry slot lane / G of each step and
// t = t0 + 8 (lane % G) .. + 7, one 16-byte load (two for f32) of Xt[col]: the G lanes of an entry read 16G
// contiguous bytes (one 32-byte sector for G = 2 and 16-bit types, one 64-byte half line for G = 4), so each
// entry costs one cache request instead of one per 8 t, and the row of S is read once per 8G t instead of once
// per 8 t. Each lane adds its entries in the order slot, slot + 32/G, ... (kUnroll steps in flight); the
// butterfly over the lanes with equal lane % G (xor offsets 16 .. G) sums them in a fixed order, and lane
// j G + (lane % G) writes Y[t0 + 8 (lane % G) + j, o].
// kPipelined (the default kernels): the next step's values and columns are loaded before this step's Xt rows are
// used, so their DRAM latency overlaps the Xt gathers (one round trip per step instead of two in a row), and the Xt
// rows stay as loaded (16 bytes, 4 registers, for 16-bit types) until their FMAs: 64 registers instead of 72 (4
// blocks of 8 warps per SM instead of 3). Same FMAs in the same order: bitwise the serial kernel's results (the
// `_serial` kernels, kept for the benchmark's comparison, `SLR_SPMM_PATH=vec_serial`).
template <typename T, unsigned G, bool kPipelined>
__device__ __forceinline__ void spmm_xst_vec_impl(const unsigned* __restrict__ row_offsets,
                                                  const unsigned* __restrict__ col_indices,
                                                  const T* __restrict__ values, unsigned s_rows,
                                                  const T* __restrict__ xt, unsigned long long ldt, unsigned t_count,
                                                  T* __restrict__ y, unsigned long long y_rs,
                                                  unsigned long long y_cs, float alpha, float beta) {
    static_assert(G == 1 || G == 2 || G == 4, "8 t per lane, at most 32 t per warp");
    constexpr unsigned kSlots = 32 / G;  // entries per warp step
    const unsigned t_chunks = (t_count + 8 * G - 1) / (8 * G);
    const unsigned long long warp = (unsigned long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32, slot = lane / G, sub = lane % G;
    if (warp >= (unsigned long long)s_rows * t_chunks) return;  // whole warps leave together
    const unsigned o = (unsigned)(warp / t_chunks);
    const unsigned t0 = (unsigned)(warp % t_chunks) * 8 * G + 8 * sub;
    const bool active = t0 < ldt;  // ldt is a multiple of 8: a lane's 8 t are all inside Xt's rows or all past them
    const unsigned lo = row_offsets[o], hi = row_offsets[o + 1];
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if constexpr (kPipelined) {
        constexpr unsigned kStep = kSlots * kUnroll;
        float s_next[kUnroll];
        unsigned c_next[kUnroll];
        auto fetch = [&](unsigned e0) {
#pragma unroll
            for (unsigned u = 0; u < kUnroll; ++u) {
                const unsigned e = e0 + kSlots * u;
                s_next[u] = e < hi ? slr::to_f32(values[e]) : 0.0f;
                c_next[u] = e < hi ? col_indices[e] : 0u;
            }
        };
        fetch(lo + slot);
        for (unsigned e0 = lo + slot; e0 < hi; e0 += kStep) {
            float s[kUnroll];
            unsigned c[kUnroll];
#pragma unroll
            for (unsigned u = 0; u < kUnroll; ++u) {
                s[u] = s_next[u];
                c[u] = c_next[u];
            }
            Raw8<T> xr[kUnroll];
#pragma unroll
            for (unsigned u = 0; u < kUnroll; ++u) {
                if (active && e0 + kSlots * u < hi) xr[u].load(xt + ((unsigned long long)c[u] * ldt + t0));
            }
            if (e0 + kStep < hi) fetch(e0 + kStep);  // in flight with this step's Xt loads
#pragma unroll
            for (unsigned u = 0; u < kUnroll; ++u) {
                if (active && e0 + kSlots * u < hi) {
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[j] = fmaf(s[u], xr[u].at(j), acc[j]);
                }
            }
        }
    } else
    for (unsigned e0 = lo + slot; e0 < hi; e0 += kSlots * kUnroll) {
        float s[kUnroll];
        unsigned long long c[kUnroll];
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
            unsigned e = e0 + kSlots * u;
            s[u] = e < hi ? slr::to_f32(values[e]) : 0.0f;
            c[u] = e < hi ? col_indices[e] : 0u;
        }
        float xv[kUnroll][8];
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
            if (active && e0 + kSlots * u < hi) load8(xt + (c[u] * ldt + t0), xv[u]);
        }
#pragma unroll
        for (unsigned u = 0; u < kUnroll; ++u) {
            if (active && e0 + kSlots * u < hi) {
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[j] = fmaf(s[u], xv[u][j], acc[j]);
            }
        }
    }
    float mine = 0.0f;
#pragma unroll
    for (unsigned j = 0; j < 8; ++j) {
        float sum = acc[j];
#pragma unroll
        for (unsigned off = 16; off >= G; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        mine = slot == j ? sum : mine;
    }
    if (slot < 8 && active && t0 + slot < t_count) {
        T* out = y + ((t0 + slot) * y_rs + o * y_cs);
        *out = combine(mine, alpha, beta, out);
    }
}

// Four consecutive elements starting at p (aligned to 4 elements) as f32: one 16-byte load for f32, one 8-byte
// load for 16-bit types.
__device__ __forceinline__ void load4(const float* __restrict__ p, float (&v)[4]) {
    float4 a = slr::load_vec(reinterpret_cast<const float4*>(p));
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
}
template <typename T>
__device__ __forceinline__ void load4(const T* __restrict__ p, float (&v)[4]) {
    uint2 raw = slr::load_vec(reinterpret_cast<const uint2*>(p));
    const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = slr::to_f32(h[i]);
}

// Four consecutive elements of Xt as loaded, converted to f32 only at their FMAs: 8 bytes (2 registers) for 16-bit
// types, where load4's floats would hold 4.
template <typename T> struct Raw4 {
    uint2 v;
    __device__ __forceinline__ void load(const T* __restrict__ p) { v = slr::load_vec(reinterpret_cast<const uint2*>(p)); }
    __device__ __forceinline__ float at(int i) const { return slr::to_f32(reinterpret_cast<const T*>(&v)[i]); }
};
template <> struct Raw4<float> {
    float4 v;
    __device__ __forceinline__ void load(const float* __restrict__ p) { v = slr::load_vec(reinterpret_cast<const float4*>(p)); }
    __device__ __forceinline__ float at(int i) const { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
};

// spmm_xst for wide T (src/spmm.rs WIDE_T_MIN): one warp per (row o of S, 128 consecutive rows of X); lane l owns
// t = t0 + 4l .. t0 + 4l + 3 of Xt (in x ldt). The warp loads 32 entries of the row at a time (coalesced) and
// broadcasts each (value, column) by shuffle; every lane then reads its 4 values of Xt[col] (the warp reads 256
// contiguous bytes for 16-bit types) and adds in entry order. No cross-lane reduction: each output is the
// sequential fmaf chain of the CPU reference. Against the vector kernel at T = 128: the S row is read once instead
// of T / 8 times, the gathered Xt bytes per entry drop from T / 8 * (16 + 4 + sizeof(T)) to 2 * T (16-bit types),
// and the 8 butterflies per (row, 8 t) disappear.
// kPipelined (the default kernels): the next 32 entries' (value, column) pairs are loaded when a chunk starts, so
// their latency overlaps the chunk's Xt gathers, and the gathered Xt values stay as loaded (Raw4: 2 registers per
// entry for 16-bit types) until their FMAs, so 16 entries' gathers are in flight together (8 for f32, 4 registers
// each) within 64 registers (launch bounds of 4 blocks per SM). Dependent L2 round trips per 32 entries: 2 for
// 16-bit types (4 for f32), where the `_serial` kernels (the previous kernel, 8 gathers in flight with f32
// conversion at the load, the chunk's pairs loaded only when it starts; `SLR_SPMM_PATH=wide_serial`) take 5: at
// 5% of 4096 columns (~205 entries a row) ~15 round trips a warp instead of ~35. Same FMAs in the same order:
// bitwise the serial kernel's results. What keeps it in 64 registers (ptxas 13.0 spilled 24-376 bytes without
// each): a round reads its pairs from lanes 0 .. N - 1 (shifted down by shuffle after each round: no register per
// source lane), and no gather is predicated (a lane past Xt's rows reads its row's first 4 elements and never
// stores; a partial round's spare slots re-read entry 0's addresses), so ptxas keeps neither predicated addresses
// nor the previous round's values live.
// Floor: S once (nnz * (4 + sizeof(T))), Xt gathered nnz * T * sizeof(T) bytes (from L2: Xt is small), Y written
// once; 2 * nnz * T flops.
constexpr unsigned kWideT = 128;
constexpr unsigned kWideInFlight = 8;  // the serial kernels
// Entries whose Xt gathers the pipelined kernel keeps in flight: 32 registers of raw Xt values for every type.
template <typename T> __host__ __device__ constexpr unsigned wide_raw_in_flight() { return sizeof(T) == 2 ? 16 : 8; }

// One round of the pipelined wide kernel: the entries whose (column, value) lanes 0 .. N - 1 of (my_c, my_s) hold
// (when kPartial, only lanes below `count`, 1 <= count < N, are entries: the other slots gather entry 0's Xt row
// again, the same addresses as its load, and skip their FMAs). The source lanes are constants (no register per lane
// index) and no gather is predicated, so that ptxas issues all N before the first FMA, which then run in entry
// order.
template <typename T, unsigned N, bool kPartial>
__device__ __forceinline__ void wide_round(unsigned count, unsigned my_c, float my_s, const T* __restrict__ xt_lane,
                                           unsigned long long ldt, float (&acc)[4]) {
    Raw4<T> xr[N];
    const unsigned c0 = __shfl_sync(0xffffffffu, my_c, 0);
#pragma unroll
    for (unsigned u = 0; u < N; ++u) {
        unsigned long long col = u == 0 ? c0 : __shfl_sync(0xffffffffu, my_c, u);
        if (kPartial && u >= count) col = c0;
        xr[u].load(xt_lane + col * ldt);
    }
#pragma unroll
    for (unsigned u = 0; u < N; ++u) {
        float s = __shfl_sync(0xffffffffu, my_s, u);
        if (!kPartial || u < count) {
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[i] = fmaf(s, xr[u].at(i), acc[i]);
        }
    }
}

template <typename T, bool kPipelined>
__device__ __forceinline__ void spmm_xst_wide_impl(const unsigned* __restrict__ row_offsets,
                                                   const unsigned* __restrict__ col_indices,
                                                   const T* __restrict__ values, unsigned s_rows,
                                                   const T* __restrict__ xt, unsigned long long ldt,
                                                   unsigned t_count, T* __restrict__ y, unsigned long long y_rs,
                                                   unsigned long long y_cs, float alpha, float beta) {
    unsigned chunks = (t_count + kWideT - 1) / kWideT;
    unsigned long long warp = (unsigned long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (warp >= (unsigned long long)s_rows * chunks) return;  // whole warps leave together
    unsigned o = (unsigned)(warp / chunks), t0 = (unsigned)(warp % chunks) * kWideT + 4 * lane;
    // A lane's 4 t are all below round_up(t_count, 4) or all past t_count (t0 is a multiple of 4): only those below
    // are read (up to the rounded end, inside the buffer however far past it the row stride reaches; spmm_sb's B
    // may be a column slice with ld well above n, where `t0 < ldt` read past its last row), and only t < t_count
    // are stored.
    bool active = t0 < t_count;
    unsigned lo = row_offsets[o], hi = row_offsets[o + 1];
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if constexpr (kPipelined) {
        enum : unsigned { kInFlight = wide_raw_in_flight<T>() };
        static_assert(32 % kInFlight == 0);
        // Entry e0 + lane's value (as stored) and column for the chunk about to start, loaded one chunk ahead.
        T v_next = lo + lane < hi ? values[lo + lane] : slr::from_f32<T>(0.0f);
        unsigned c_next = lo + lane < hi ? col_indices[lo + lane] : 0u;
        // An inactive lane (past Xt's rows) gathers row col's first 4 elements and never stores: no per-lane
        // predicates in the loop, only the warp's bound on the chunk's entries.
        const T* xt_lane = xt + (active ? t0 : 0u);
        for (unsigned e0 = lo; e0 < hi; e0 += 32) {
            const unsigned here = min(32u, hi - e0);
            float my_s = slr::to_f32(v_next);
            unsigned my_c = c_next;
            if (e0 + 32 + lane < hi) {  // the next chunk's pairs, in flight with this chunk's gathers
                v_next = values[e0 + 32 + lane];
                c_next = col_indices[e0 + 32 + lane];
            }
            // Rounds of kInFlight entries, each from lanes 0 .. kInFlight - 1 (the pairs move down after a round);
            // only the chunk's last round can be partial.
            unsigned left = here;
#pragma unroll 1
            for (; left >= kInFlight; left -= kInFlight) {
                wide_round<T, kInFlight, false>(kInFlight, my_c, my_s, xt_lane, ldt, acc);
                my_c = __shfl_down_sync(0xffffffffu, my_c, kInFlight);
                my_s = __shfl_down_sync(0xffffffffu, my_s, kInFlight);
            }
            if (left > 0) wide_round<T, kInFlight, true>(left, my_c, my_s, xt_lane, ldt, acc);
        }
    } else {
        for (unsigned e0 = lo; e0 < hi; e0 += 32) {
            unsigned here = min(32u, hi - e0);
            float my_s = lane < here ? slr::to_f32(values[e0 + lane]) : 0.0f;
            unsigned my_c = lane < here ? col_indices[e0 + lane] : 0u;
            for (unsigned k0 = 0; k0 < here; k0 += kWideInFlight) {
                float s[kWideInFlight], xv[kWideInFlight][4];
#pragma unroll
                for (unsigned u = 0; u < kWideInFlight; ++u) {
                    unsigned k = k0 + u;
                    s[u] = __shfl_sync(0xffffffffu, my_s, k & 31);
                    unsigned long long col = __shfl_sync(0xffffffffu, my_c, k & 31);
                    if (active && k < here) {
                        load4(xt + (col * ldt + t0), xv[u]);
                    } else {
                        xv[u][0] = xv[u][1] = xv[u][2] = xv[u][3] = 0.0f;
                    }
                }
#pragma unroll
                for (unsigned u = 0; u < kWideInFlight; ++u) {
                    if (k0 + u < here) {
#pragma unroll
                        for (int i = 0; i < 4; ++i) acc[i] = fmaf(s[u], xv[u][i], acc[i]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (unsigned i = 0; i < 4; ++i) {
        if (active && t0 + i < t_count) {
            T* out = y + ((t0 + i) * y_rs + o * y_cs);
            *out = combine(acc[i], alpha, beta, out);
        }
    }
}

// xt[c * ldt + r] = x[r, c] for r < rows, 0 for rows <= r < ldt; c < cols. 32 x 32 tiles, 32 x 8 threads, each
// thread moving 4 elements; the tile is padded to 33 columns so the transposed reads hit distinct banks.
template <typename T>
__device__ __forceinline__ void transpose_pad_impl(const T* __restrict__ x, unsigned long long x_rs,
                                                   unsigned long long x_cs, unsigned rows, unsigned cols,
                                                   T* __restrict__ xt, unsigned long long ldt) {
    __shared__ float tile[32][33];
    unsigned r0 = blockIdx.y * 32, c0 = blockIdx.x * 32;
    for (unsigned i = threadIdx.y; i < 32; i += 8) {
        unsigned r = r0 + i, c = c0 + threadIdx.x;
        tile[i][threadIdx.x] = (r < rows && c < cols) ? slr::to_f32(x[r * x_rs + c * x_cs]) : 0.0f;
    }
#ifndef SLR_FAULT_TRANSPOSE_SYNC  // planted fault for the emulator's mutation test: the tile is read half-written
    __syncthreads();
#endif
    for (unsigned i = threadIdx.y; i < 32; i += 8) {
        unsigned c = c0 + i, r = r0 + threadIdx.x;
        if (c < cols && r < ldt) xt[c * ldt + r] = slr::from_f32<T>(tile[threadIdx.x][i]);
    }
}

template <typename T>
__device__ __forceinline__ void spmm_sb_impl(const unsigned* __restrict__ row_offsets,
                                             const unsigned* __restrict__ col_indices,
                                             const T* __restrict__ values, unsigned s_rows,
                                             const T* __restrict__ b, unsigned long long b_rs,
                                             unsigned long long b_cs, unsigned n, T* __restrict__ c,
                                             unsigned long long c_rs, unsigned long long c_cs, float alpha,
                                             float beta) {
    unsigned tiles = (n + 31) / 32;
    unsigned long long warp = (unsigned long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (warp >= (unsigned long long)s_rows * tiles) return;  // whole warps leave together
    unsigned r = (unsigned)(warp / tiles);
    unsigned j = (unsigned)(warp % tiles) * 32 + lane;
    unsigned lo = row_offsets[r], hi = row_offsets[r + 1];
    float acc = 0.0f;
    for (unsigned e0 = lo; e0 < hi; e0 += 32) {
        unsigned here = min(32u, hi - e0);
        float my_s = lane < here ? slr::to_f32(values[e0 + lane]) : 0.0f;
        unsigned my_c = lane < here ? col_indices[e0 + lane] : 0u;
        for (unsigned k = 0; k < here; ++k) {
            float s = __shfl_sync(0xffffffffu, my_s, k);
            unsigned long long col = __shfl_sync(0xffffffffu, my_c, k);
            if (j < n) acc = fmaf(s, slr::to_f32(b[col * b_rs + j * b_cs]), acc);
        }
    }
    if (j < n) {
        T* out = c + (r * c_rs + j * c_cs);
        *out = combine(acc, alpha, beta, out);
    }
}

// ---- Tensor-core spmm_xst (f16/bf16, T >= 64; src/spmm.rs tensor_core_path) --------------------------------------
// spmm_xst_tc<M>_<T>: one block of 4 warps per M x 64 tile of Y (M = 64 or 32 tokens t0.., 64 outputs o0..),
// computed as the dense product X[t0:t0+M, :] · S[o0:o0+64, :]ᵀ on tensor cores (mma.sync m16n8k16, f32
// accumulation) with S densified 64 input features at a time in shared memory (the Flash-LLM idea: read S
// compressed, multiply it dense). M = 32 doubles the blocks for few tokens (T = 128 at 4096 outputs: 256 blocks
// instead of 128, for 132 SMs) at the price of reading S once per 32 tokens; src/spmm.rs picks M. Warps: with
// M = 64, warp w takes tokens 16w.. and all 64 outputs; with M = 32, tokens 16 (w / 2).. and outputs
// 32 (w % 2).. Per stage [k0, k0 + 64):
//   1. thread r < 64 densifies tile row r: zeroes it, then stores its entries with column in [k0, k0 + 64) from
//      two register windows of 8 entries each (densify_row), the rows in parallel. (Until 2026-11-27 each warp
//      walked its 16 rows one at a time with a shuffle, a ballot and a 32-entry window per row: measured on an
//      H200 its time did not depend on density, ~1.9 µs per block and stage, and it lost to the CUDA-core
//      kernels in every case; this version is unmeasured);
//   2. the next stage's X pieces are loaded into registers, to arrive while this stage multiplies;
//   3. a stage in which no row of the tile has an entry is skipped by the whole block; otherwise this stage's
//      X[t0:t0+M, k0:k0+64] (16-byte loads where X's rows are contiguous and 16-byte aligned, element loads
//      otherwise: the same values) is stored to shared memory;
//   4. each warp multiplies its 16 tokens by its 64 or 32 outputs: 4 k-steps x 8 or 4 mma.
// Y's tile is then written from the accumulators: alpha * acc (+ beta * old when beta != 0), rounded once.
// Deterministic run to run (fixed order per block, no atomics) and independent of X's layout; not bitwise the
// CUDA-core kernels or the CPU (the mma's accumulation order is unspecified), within the same f32 bound.
// Floor: dense-equivalent 2 * T * out * in flops on tensor cores (less the skipped stages); meant to beat the
// CUDA-core kernels' gathers from roughly 1% density, which the earlier densification did not (opt-in until
// measured, src/spmm.rs TC_T_MIN). Bytes: S
// read once per M tokens (nnz * (4 + sizeof(T)) each, plus the window over-read, mostly L1 hits), X once per 64
// outputs from L2 (T * in * sizeof(T) each; once from HBM), Y written once (read when beta != 0).
constexpr unsigned kTcTile = 64;     // outputs (rows of S) per block
constexpr unsigned kTcK = 64;        // input features per stage
constexpr unsigned kTcLd = 72;       // shared row stride of the S stage and of a [token][feature] X stage, in
                                     // elements (144 bytes: 16-byte aligned rows, fragment loads spread over banks)
constexpr unsigned kTcThreads = 128;

// The X stage of an M-token tile: lines of 8-element pieces along X's contiguous direction.
template <unsigned M, bool kXColMajor>
struct XStage {
    static constexpr unsigned kLineElems = kXColMajor ? M : kTcK;  // elements per line ([feature][token] or [token][feature])
    static constexpr unsigned kLines = kXColMajor ? kTcK : M;
    static constexpr unsigned kLd = kLineElems + 8;                 // 16-byte aligned lines, banks spread
    static constexpr unsigned kPieces = M * kTcK / 8 / kTcThreads;  // pieces per thread per stage
};

// Entries of one row of the S tile held in registers by the thread that owns the row (thread r < kTcTile of the
// block owns tile row r): two windows of kTcWin consecutive entries from the row's cursor, `cur` then `nxt`
// (column ~0u and value 0 past the row's end). CSR columns ascend within a row, so a stage's entries are the
// window entries with column in [k0, k0 + kTcK); earlier stages' entries are below k0 and are skipped by the
// test. When the stage reaches past cur's last entry, nxt becomes cur and the next kTcWin entries are loaded into
// nxt: those loads are issued a window ahead of their use, so at low density the owner rarely waits on them.
constexpr unsigned kTcWin = 8;
template <typename T>
struct RowWindows {
    unsigned cur_col[kTcWin], nxt_col[kTcWin];
    T cur_val[kTcWin], nxt_val[kTcWin];
    unsigned next_load;  // first entry of the window after nxt
    unsigned end;        // the row's end
};

template <typename T>
__device__ __forceinline__ void load_window(unsigned (&col)[kTcWin], T (&val)[kTcWin],
                                            const unsigned* __restrict__ col_indices, const T* __restrict__ values,
                                            unsigned first, unsigned end) {
#pragma unroll
    for (unsigned u = 0; u < kTcWin; ++u) {
        const unsigned e = first + u;
        col[u] = e < end ? col_indices[e] : 0xffffffffu;
        val[u] = e < end ? values[e] : slr::from_f32<T>(0.0f);
    }
}

// Step 1 of a stage for the owner of one tile row: the row (kTcK elements at `row`) zeroed, then its entries with
// column in [k0, k0 + kTcK) stored at column - k0, window after window. Returns whether any was stored. Each window
// is tested whole (unrolled, so the registers never need a runtime index); the loop advances while the stage
// reaches past the current window's last entry, which at 30% density is every ~8 entries and at 1-5% every few
// stages.
template <typename T>
__device__ __forceinline__ bool densify_row(T* row, RowWindows<T>& w, const unsigned* __restrict__ col_indices,
                                            const T* __restrict__ values, unsigned k0) {
    const unsigned k_end = k0 + kTcK;
#pragma unroll
    for (unsigned i = 0; i < kTcK / 8; ++i) slr::store_vec(reinterpret_cast<uint4*>(row) + i, make_uint4(0, 0, 0, 0));
    bool any = false;
    while (true) {
#pragma unroll
        for (unsigned u = 0; u < kTcWin; ++u) {
            const unsigned c = w.cur_col[u];
            if (c >= k0 && c < k_end) {
                row[c - k0] = w.cur_val[u];
                any = true;
            }
        }
        // The row's entries from here on lie at or beyond the next window; stop unless the stage reaches past this
        // one's last entry (a column ~0u past the row's end never does).
        if (w.cur_col[kTcWin - 1] >= k_end - 1) break;
#pragma unroll
        for (unsigned u = 0; u < kTcWin; ++u) {
            w.cur_col[u] = w.nxt_col[u];
            w.cur_val[u] = w.nxt_val[u];
        }
        load_window(w.nxt_col, w.nxt_val, col_indices, values, w.next_load, w.end);
        w.next_load += kTcWin;
    }
    return any;
}

// This thread's pieces of the stage's X tile (tokens t0.., input features k0..), into registers (slr::stage_load):
// for row-major X the lines are tokens and the pieces run along features ([token][feature]); for column-major X
// (kXColMajor) the lines are features and the pieces run along tokens ([feature][token]).
template <typename T, unsigned M, bool kXColMajor>
__device__ __forceinline__ void load_x_stage(uint4 (&xp)[XStage<M, kXColMajor>::kPieces], const T* __restrict__ x,
                                             unsigned long long x_rs, unsigned long long x_cs, unsigned t0,
                                             unsigned t_count, unsigned k0, unsigned in_count, bool vec) {
    using S = XStage<M, kXColMajor>;
    if (kXColMajor) {
        slr::stage_load<kTcThreads, S::kLineElems>(xp, x, x_cs, x_rs, k0, in_count, t0, t_count, vec);
    } else {
        slr::stage_load<kTcThreads, S::kLineElems>(xp, x, x_rs, x_cs, t0, t_count, k0, in_count, vec);
    }
}

template <typename T, unsigned M, bool kXColMajor>
__device__ __forceinline__ void spmm_xst_tc_impl(const unsigned* __restrict__ row_offsets,
                                                 const unsigned* __restrict__ col_indices, const T* __restrict__ values,
                                                 unsigned s_rows, unsigned in_count, const T* __restrict__ x,
                                                 unsigned long long x_rs, unsigned long long x_cs, unsigned t_count,
                                                 unsigned vec_x, T* __restrict__ y, unsigned long long y_rs,
                                                 unsigned long long y_cs, float alpha, float beta) {
    using XS = XStage<M, kXColMajor>;
    constexpr unsigned kOutGroups = 4 * 16 / M;          // warps sharing a token group: 1 (M = 64) or 2 (M = 32)
    constexpr unsigned kNt = kTcTile / kOutGroups / 8;   // 8-output fragments per warp: 8 or 4
    __shared__ __align__(16) T x_stage[XS::kLines * XS::kLd];
    __shared__ __align__(16) T s_stage[kTcTile * kTcLd];
    const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const unsigned o0 = blockIdx.x * kTcTile, t0 = blockIdx.y * M;
    const unsigned tg = warp / kOutGroups, og = warp % kOutGroups;  // this warp's tokens 16 tg.., outputs kNt 8 og..
    // Thread r < kTcTile owns tile row r (empty past the matrix): its two windows from the row's start.
    const bool owner = tid < kTcTile;
    RowWindows<T> w;
    {
        const unsigned o = o0 + tid;
        const unsigned lo = owner && o < s_rows ? row_offsets[o] : 0u, hi = owner && o < s_rows ? row_offsets[o + 1] : 0u;
        w.end = hi;
        load_window(w.cur_col, w.cur_val, col_indices, values, lo, hi);
        load_window(w.nxt_col, w.nxt_val, col_indices, values, lo + kTcWin, hi);
        w.next_load = lo + 2 * kTcWin;
    }
    float acc[kNt][4];
#pragma unroll
    for (unsigned nt = 0; nt < kNt; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    // Software pipeline for X: a stage's pieces are loaded into registers while the previous stage multiplies.
    uint4 xp[XS::kPieces];
    if (in_count > 0) load_x_stage<T, M, kXColMajor>(xp, x, x_rs, x_cs, t0, t_count, 0, in_count, vec_x != 0);
    for (unsigned k0 = 0; k0 < in_count; k0 += kTcK) {
        const bool next = k0 + kTcK < in_count;
        const bool mine = owner && densify_row(s_stage + tid * kTcLd, w, col_indices, values, k0);
        const bool any = __syncthreads_or(mine);  // every row is in s_stage; the last stage's reads are done
        if (any) slr::stage_store<kTcThreads, XS::kLineElems>(x_stage, XS::kLd, xp);
        if (next) load_x_stage<T, M, kXColMajor>(xp, x, x_rs, x_cs, t0, t_count, k0 + kTcK, in_count, vec_x != 0);
        if (!any) continue;  // no entry of the tile in this stage (block-uniform): nothing to multiply
#ifndef SLR_FAULT_SPMM_TC_STAGE_SYNC  // planted fault for the emulator's mutation test: fragments read a half-stored X
        __syncthreads();
#endif
#pragma unroll
        for (unsigned kk = 0; kk < kTcK; kk += 16) {
            unsigned af[4];
            if (kXColMajor) {
                slr::mma_load_a_col_major(af, x_stage + kk * XS::kLd + 16 * tg, XS::kLd, lane);
            } else {
                slr::mma_load_a_row_major(af, x_stage + (16 * tg) * XS::kLd + kk, XS::kLd, lane);
            }
            slr::mma_strip_step<T>(acc, af, s_stage + (og * kNt * 8) * kTcLd, kTcLd, kk, lane);
        }
        __syncthreads();  // the next stage rewrites both stages while slower warps may still be reading them
    }
#pragma unroll
    for (unsigned nt = 0; nt < kNt; ++nt) {
#pragma unroll
        for (unsigned i = 0; i < 4; ++i) {
            const slr::MmaCoord p = slr::mma_c_coord(lane, i);
            const unsigned t = t0 + 16 * tg + p.row, o = o0 + og * kNt * 8 + 8 * nt + p.col;
            if (t < t_count && o < s_rows) {
                T* out = y + t * y_rs + o * y_cs;
                *out = combine(acc[nt][i], alpha, beta, out);
            }
        }
    }
}

}  // namespace

// The vector kernel with G lanes per entry (spmm_xst_vec_impl), one extern "C" entry point per G and variant.
#define SLR_SPMM_XST_VEC(T, NAME, G, PIPELINED)                                                                  \
    extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32, PIPELINED ? 4 : 2) NAME(                  \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, const T* __restrict__ xt, unsigned long long ldt,        \
        unsigned t_count, T* __restrict__ y, unsigned long long y_rs, unsigned long long y_cs, float alpha,     \
        float beta) {                                                                                           \
        spmm_xst_vec_impl<T, G, PIPELINED>(row_offsets, col_indices, values, s_rows, xt, ldt, t_count, y, y_rs, \
                                           y_cs, alpha, beta);                                                 \
    }

// The wide kernel (spmm_xst_wide_impl), pipelined or serial. Pipelined: 4 blocks of 8 warps per SM (64 registers).
// Serial (the benchmark's baseline): no minimum, as the kernel it keeps was built; since its lanes test t < T
// instead of t < ldt (spmm_sb's column slices) it takes 70-73 registers on sm_90 (3 blocks per SM; at 64 it
// spilled), 61-64 elsewhere.
#define SLR_SPMM_XST_WIDE(T, NAME, PIPELINED)                                                                    \
    extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32, PIPELINED ? 4 : 1) NAME(                  \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, const T* __restrict__ xt, unsigned long long ldt,        \
        unsigned t_count, T* __restrict__ y, unsigned long long y_rs, unsigned long long y_cs, float alpha,     \
        float beta) {                                                                                           \
        spmm_xst_wide_impl<T, PIPELINED>(row_offsets, col_indices, values, s_rows, xt, ldt, t_count, y, y_rs,   \
                                         y_cs, alpha, beta);                                                   \
    }

#define SLR_SPMM(T, SUFFIX)                                                                                      \
    extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32) spmm_xst_##SUFFIX(                       \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, const T* __restrict__ x, unsigned long long x_rs,        \
        unsigned long long x_cs, unsigned t_count, T* __restrict__ y, unsigned long long y_rs,                  \
        unsigned long long y_cs, float alpha, float beta) {                                                     \
        spmm_xst_impl<T>(row_offsets, col_indices, values, s_rows, x, x_rs, x_cs, t_count, y, y_rs, y_cs,        \
                         alpha, beta);                                                                          \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32, 5) spmm_xst_rowwarp_##SUFFIX(            \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, const T* __restrict__ x, unsigned long long x_rs,        \
        unsigned long long x_cs, unsigned t_count, T* __restrict__ y, unsigned long long y_rs,                  \
        unsigned long long y_cs, float alpha, float beta) {                                                     \
        spmm_xst_rowwarp_impl<T>(row_offsets, col_indices, values, s_rows, x, x_rs, x_cs, t_count, y, y_rs, y_cs, \
                                 alpha, beta);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kWarpsPerBlock * 32) spmm_sb_##SUFFIX(                        \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, const T* __restrict__ b, unsigned long long b_rs,        \
        unsigned long long b_cs, unsigned n, T* __restrict__ c, unsigned long long c_rs,                        \
        unsigned long long c_cs, float alpha, float beta) {                                                     \
        spmm_sb_impl<T>(row_offsets, col_indices, values, s_rows, b, b_rs, b_cs, n, c, c_rs, c_cs, alpha, beta); \
    }                                                                                                           \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec_##SUFFIX, 1, true)                                                        \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec2_##SUFFIX, 2, true)                                                       \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec4_##SUFFIX, 4, true)                                                       \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec_serial_##SUFFIX, 1, false)                                                \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec2_serial_##SUFFIX, 2, false)                                               \
    SLR_SPMM_XST_VEC(T, spmm_xst_vec4_serial_##SUFFIX, 4, false)                                               \
    SLR_SPMM_XST_WIDE(T, spmm_xst_wide_##SUFFIX, true)                                                         \
    SLR_SPMM_XST_WIDE(T, spmm_xst_wide_serial_##SUFFIX, false)                                                 \
    extern "C" __global__ void __launch_bounds__(256) transpose_pad_##SUFFIX(                                  \
        const T* __restrict__ x, unsigned long long x_rs, unsigned long long x_cs, unsigned rows,              \
        unsigned cols, T* __restrict__ xt, unsigned long long ldt) {                                            \
        transpose_pad_impl<T>(x, x_rs, x_cs, rows, cols, xt, ldt);                                              \
    }

// spmm_xst_tc<M>_<T> takes X row-major (or any strides, element loads), spmm_xst_tc<M>_xcol_<T> column-major X
// (B of spmm_sb seen as Bᵀ); M = 64 is named without the number.
#define SLR_SPMM_XST_TC_ONE(T, NAME, M, XCOL)                                                                    \
    extern "C" __global__ void __launch_bounds__(kTcThreads, 2) NAME(                                            \
        const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,                     \
        const T* __restrict__ values, unsigned s_rows, unsigned in_count, const T* __restrict__ x,             \
        unsigned long long x_rs, unsigned long long x_cs, unsigned t_count, unsigned vec_x, T* __restrict__ y, \
        unsigned long long y_rs, unsigned long long y_cs, float alpha, float beta) {                           \
        spmm_xst_tc_impl<T, M, XCOL>(row_offsets, col_indices, values, s_rows, in_count, x, x_rs, x_cs, t_count, \
                                     vec_x, y, y_rs, y_cs, alpha, beta);                                        \
    }
#define SLR_SPMM_XST_TC(T, SUFFIX)                                                                               \
    SLR_SPMM_XST_TC_ONE(T, spmm_xst_tc_##SUFFIX, 64, false)                                                    \
    SLR_SPMM_XST_TC_ONE(T, spmm_xst_tc_xcol_##SUFFIX, 64, true)                                                \
    SLR_SPMM_XST_TC_ONE(T, spmm_xst_tc32_##SUFFIX, 32, false)                                                  \
    SLR_SPMM_XST_TC_ONE(T, spmm_xst_tc32_xcol_##SUFFIX, 32, true)

SLR_SPMM(float, f32)
SLR_EMU_EXPORT(spmm_xst_f32)
SLR_EMU_EXPORT(spmm_xst_rowwarp_f32)
SLR_EMU_EXPORT(spmm_sb_f32)
SLR_EMU_EXPORT(spmm_xst_vec_f32)
SLR_EMU_EXPORT(spmm_xst_vec2_f32)
SLR_EMU_EXPORT(spmm_xst_vec4_f32)
SLR_EMU_EXPORT(spmm_xst_vec_serial_f32)
SLR_EMU_EXPORT(spmm_xst_vec2_serial_f32)
SLR_EMU_EXPORT(spmm_xst_vec4_serial_f32)
SLR_EMU_EXPORT(spmm_xst_wide_f32)
SLR_EMU_EXPORT(spmm_xst_wide_serial_f32)
SLR_EMU_EXPORT(transpose_pad_f32)
SLR_SPMM(__half, f16)
SLR_EMU_EXPORT(spmm_xst_f16)
SLR_EMU_EXPORT(spmm_xst_rowwarp_f16)
SLR_EMU_EXPORT(spmm_sb_f16)
SLR_EMU_EXPORT(spmm_xst_vec_f16)
SLR_EMU_EXPORT(spmm_xst_vec2_f16)
SLR_EMU_EXPORT(spmm_xst_vec4_f16)
SLR_EMU_EXPORT(spmm_xst_vec_serial_f16)
SLR_EMU_EXPORT(spmm_xst_vec2_serial_f16)
SLR_EMU_EXPORT(spmm_xst_vec4_serial_f16)
SLR_EMU_EXPORT(spmm_xst_wide_f16)
SLR_EMU_EXPORT(spmm_xst_wide_serial_f16)
SLR_EMU_EXPORT(transpose_pad_f16)
SLR_SPMM(__nv_bfloat16, bf16)
SLR_EMU_EXPORT(spmm_xst_bf16)
SLR_EMU_EXPORT(spmm_xst_rowwarp_bf16)
SLR_EMU_EXPORT(spmm_sb_bf16)
SLR_EMU_EXPORT(spmm_xst_vec_bf16)
SLR_EMU_EXPORT(spmm_xst_vec2_bf16)
SLR_EMU_EXPORT(spmm_xst_vec4_bf16)
SLR_EMU_EXPORT(spmm_xst_vec_serial_bf16)
SLR_EMU_EXPORT(spmm_xst_vec2_serial_bf16)
SLR_EMU_EXPORT(spmm_xst_vec4_serial_bf16)
SLR_EMU_EXPORT(spmm_xst_wide_bf16)
SLR_EMU_EXPORT(spmm_xst_wide_serial_bf16)
SLR_EMU_EXPORT(transpose_pad_bf16)
SLR_SPMM_XST_TC(__half, f16)
SLR_EMU_EXPORT(spmm_xst_tc_f16)
SLR_EMU_EXPORT(spmm_xst_tc_xcol_f16)
SLR_EMU_EXPORT(spmm_xst_tc32_f16)
SLR_EMU_EXPORT(spmm_xst_tc32_xcol_f16)
SLR_SPMM_XST_TC(__nv_bfloat16, bf16)
SLR_EMU_EXPORT(spmm_xst_tc_bf16)
SLR_EMU_EXPORT(spmm_xst_tc_xcol_bf16)
SLR_EMU_EXPORT(spmm_xst_tc32_bf16)
SLR_EMU_EXPORT(spmm_xst_tc32_xcol_bf16)

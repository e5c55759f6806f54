// SDDMM, sampled dense-dense matrix product, at the entries of a CSR pattern S (src/sddmm.rs):
//
//   sddmm:            C[e] = alpha * <A[row(e), :], B[col(e), :]> + beta * C[e]        for e in [0, nnz)
//                     A: m x K, B: n x K, each addressed X[r, k] = X[r * row_stride + k * col_stride]; C: nnz values
//                     in S's CSR order. f32 accumulation, one rounding to T at the end; beta == 0 never reads C.
//   sddmm_transpose:  dst[r * ld + k] = src[r * row_stride + k * col_stride]           for r < rows, k < cols
//                     packs an operand whose K direction is strided into rows with K contiguous.
//
// The weight gradient of a sparse Linear layer, dS = (dY^T X) at S's entries with dY: T x out and X: T x in stored
// row-major, is sddmm with A = dY^T and B = X^T: both have K = T strided, so src/sddmm.rs (sddmm_weight_grad) first
// packs them into caller-provided scratch with sddmm_transpose, then runs sddmm on rows with K contiguous.
//
// sddmm launch: 1-D grid of 256-thread blocks (8 warps). Warp w owns entries [w * chunk, (w + 1) * chunk) in CSR
// order, whatever rows they fall in, so every warp has the same work however skewed the row lengths (a 10 000-entry
// row is spread over many warps; a run of empty rows costs a few cached loads of its offsets) with no precomputed
// schedule, and each entry is written by exactly one lane (no atomics). In a warp, lanes form groups of
// G = min(32, next_pow2(ceil(K / V))) lanes (V = 16 bytes / sizeof(T)); a group computes P = 4 entries per batch and
// a warp does 4 batches: chunk = (32 / G) * 16 entries (16 once K > 16V; more at small K, where an entry is only a
// few loads). The warp walks its range one row segment at a time: in a segment all entries share their A row, so a
// lane loads each 16-byte A vector once for its P entries (and with G < 32 the warp's groups read the same A
// addresses: one transaction), while each entry's B row is read exactly once. A lane issues a slot's A vector and
// its P B-row vectors together before the first FMA (one memory round trip per slot and batch; in the serial
// variant's 16-bit kernels each B row waited for the previous entry's FMAs), and loads the next batch's column
// indices while this batch computes.
// Launch bounds of 4 blocks per SM (64 registers). The first row is found by a 32-way search of the whole warp.
//
// Summation order: K slot s (elements [s V, s V + V)) belongs to lane s mod G of the group; a lane accumulates its
// slots in increasing order with fmaf, then the group combines its lanes' partial sums with an xor butterfly
// (log2 G shuffles; every lane ends with the same bits, since IEEE addition commutes). The order depends on K and
// the dtype only, so results are bitwise reproducible run to run, and the same for aligned and unaligned operands:
// rows that are not 16-byte aligned, or have a strided K direction, take the same slots with scalar loads.
//
// sddmm_tc_<T> (f16/bf16; src/sddmm.rs sddmm_uses_tensor_cores): one block of 4 warps per 64 x 64 tile of the
// pattern computes the dense tile on tensor cores and writes its entries; see its comment below.
//
// sddmm floor: 2 * nnz * K flops (CUDA-core FMAs: ~67 TFLOP/s f32 on H100/H200). Bytes that must come from HBM: the A
// rows that have entries and the B rows named by a column, once (at most (m + n) * K * sizeof(T)), 4 * (m + 1 + nnz)
// of indices, nnz * sizeof(T) written (and read when beta != 0). Each entry reads its B row through L2, so L2
// delivers nnz * K * sizeof(T) bytes: at large K and density that, not HBM, is the practical limit (11008 x 4096 at
// 5% with K = 2048 in bf16: 9.2 GB from L2 against 61 MB of unique HBM bytes).
//
// sddmm_transpose launch: 32 x 8 threads per block, one 32 x 32 tile per step through shared memory (f32, exact for
// every dtype, rows padded to 33 so neither the column writes nor the row reads conflict on banks); grid
// (ceil(rows / 32), min(ceil(cols / 32), 65535)), blocks striding over column tiles. Reads are coalesced along r
// (contiguous in the weight gradient's operands), writes along k. Floor: rows * cols * sizeof(T) bytes read and
// the same written.
// sddmm_transpose_vec (src/sddmm.rs picks it when r is contiguous in the source and both sides are aligned to 4
// elements: the weight gradient's dY and X as frameworks store them): the same copy with 4 elements per access (8
// bytes for 16-bit T, 16 for f32) on both sides, 64 x 64 tiles, 16 x 16 threads, 4 accesses in flight per thread
// each way. The element kernel above keeps 4 two-byte loads in flight per thread (16-bit T): on an H200 the
// weight gradient's two transposes took ~50 µs for 67 MB of traffic at T = 2048, 4096² (sixth run: sddmm_weight_grad
// 0.152 ms against sddmm's 0.102 on the packed operands), ~1.3 TB/s, latency-bound by bytes in flight; 4x the bytes
// in flight per thread should bring it near the ~4 TB/s copy rate (unmeasured). Tile edges (rows or k not a
// multiple of 4 at the end) take element accesses. Same values (a copy through exact f32). Floor as the element
// kernel's: rows * cols * sizeof(T) bytes read and the same written.
#include "common.cuh"
#include "mma.cuh"

namespace {

constexpr unsigned kWarpsPerBlock = 8;
constexpr unsigned kEntriesPerGroup = 4;  // P: entries a group carries through one sweep over K
constexpr unsigned kBatchesPerWarp = 4;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr unsigned kTile = 32;
constexpr unsigned kTileRows = 8;

// Elements of T per 16-byte slot.
template <typename T>
struct Slot {
    static constexpr unsigned kElems = 16 / sizeof(T);
};

// Largest r in [lo, rows) with row_offsets[r] <= e, i.e. the row holding entry e, given row_offsets[lo] <= e < nnz.
// Gallops forward from lo, then bisects: the next row with entries is usually lo + 1 (three cached loads), and a
// run of n empty rows costs about 2 log2(n).
__device__ __forceinline__ unsigned row_holding(const unsigned* __restrict__ row_offsets, unsigned lo, unsigned rows,
                                                unsigned e) {
    unsigned long long step = 1, probe;
    while ((probe = lo + step) < rows && row_offsets[probe] <= e) {
        lo = (unsigned)probe;
        step *= 2;
    }
    unsigned hi = (unsigned)(min(probe, (unsigned long long)rows) - 1);
    while (lo < hi) {
        unsigned mid = lo + (hi - lo + 1) / 2;
        if (row_offsets[mid] <= e) lo = mid; else hi = mid - 1;
    }
    return lo;
}

__device__ __forceinline__ unsigned word(const uint4& v, unsigned i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Element j of a 16-byte slot of T, as f32 (exact). Little-endian: element 0 is in the low bits of v.x.
template <typename T>
__device__ __forceinline__ float slot_element(const uint4& v, unsigned j);
template <>
__device__ __forceinline__ float slot_element<float>(const uint4& v, unsigned j) {
    return __uint_as_float(word(v, j));
}
template <>
__device__ __forceinline__ float slot_element<__half>(const uint4& v, unsigned j) {
    unsigned w = word(v, j / 2);
    return __half2float(__ushort_as_half((unsigned short)((j & 1) ? w >> 16 : w & 0xffffu)));
}
template <>
__device__ __forceinline__ float slot_element<__nv_bfloat16>(const uint4& v, unsigned j) {
    unsigned w = word(v, j / 2);
    return __uint_as_float((j & 1) ? (w & 0xffff0000u) : (w << 16));
}

// Sum of v over the `group_size` lanes of this lane's group (aligned groups of a power-of-two size), by an xor
// butterfly in a fixed order; every lane of the group gets the same bits.
__device__ __forceinline__ float group_sum(float v, unsigned group_size) {
#ifdef SLR_FAULT_SDDMM_SHORT_REDUCTION
    // Planted fault for the emulator's mutation test: the butterfly stops one step early, so each lane holds the
    // sum of only half its group.
    for (unsigned offset = group_size / 2; offset > 1; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
#else
    for (unsigned offset = group_size / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
#endif
    return v;
}

// out = round(alpha * dot + beta * out), the old value read only when beta != 0 (so beta = 0 ignores NaN there).
template <typename T>
__device__ __forceinline__ void store_entry(T* __restrict__ out, float dot, float alpha, float beta) {
    float v = alpha * dot;
    if (beta != 0.0f) v = fmaf(beta, slr::to_f32(*out), v);
    *out = slr::from_f32<T>(v);
}

// The operands of one batch: a row of A shared by the batch, and the B rows of this group's P entries.
template <typename T>
struct Batch {
    const T* a_row;
    const T* b_row[kEntriesPerGroup];
    bool valid[kEntriesPerGroup];
};

// Operand loads are explicit __ldg (the read-only path, LDG.*.CONSTANT): nvcc stopped inferring it for plain loads
// of the const __restrict__ operands once the kernel had the warp search's ballot (SASS, sm_90).
//
// One slot (elements [k0, k0 + V)) of the lane's dot products, read as one 16-byte load per row. kLoadsFirst: all
// P + 1 loads (A, then the P B rows; an absent entry's slot is zero, not read) are issued before the first FMA, so
// they are in flight together (one round trip per slot). Otherwise each B row is loaded inside its entry's branch:
// for 16-bit types ptxas then issued B rows 1..3 each after the previous entry's FMAs (four round trips). The FMAs
// are the same either way, entry by entry in the same order.
template <typename T, bool kLoadsFirst>
__device__ __forceinline__ void accumulate_slot_vector(const Batch<T>& batch, unsigned k0,
                                                       float (&acc)[kEntriesPerGroup]) {
    constexpr unsigned V = Slot<T>::kElems;
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(batch.a_row + k0));
    uint4 b[kEntriesPerGroup];
    if (kLoadsFirst) {
#pragma unroll
        for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
            b[p] = batch.valid[p] ? __ldg(reinterpret_cast<const uint4*>(batch.b_row[p] + k0)) : make_uint4(0, 0, 0, 0);
        }
    }
#pragma unroll
    for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
        if (!batch.valid[p]) continue;
        if (!kLoadsFirst) b[p] = __ldg(reinterpret_cast<const uint4*>(batch.b_row[p] + k0));
#pragma unroll
        for (unsigned j = 0; j < V; ++j) acc[p] = fmaf(slot_element<T>(a, j), slot_element<T>(b[p], j), acc[p]);
    }
}

// The same slot element by element, in the same order: the tail slot when V does not divide K, and every slot of
// operands that are not 16-byte aligned or have a strided K direction.
template <typename T>
__device__ __forceinline__ void accumulate_slot_scalar(const Batch<T>& batch, unsigned long long a_cs,
                                                       unsigned long long b_cs, unsigned k0, unsigned k1,
                                                       float (&acc)[kEntriesPerGroup]) {
    for (unsigned k = k0; k < k1; ++k) {
        const float a = slr::to_f32(__ldg(batch.a_row + k * a_cs));
#pragma unroll
        for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
            if (batch.valid[p]) acc[p] = fmaf(a, slr::to_f32(__ldg(batch.b_row[p] + k * b_cs)), acc[p]);
        }
    }
}

// kPipelined (the default kernels): inside a row segment, the next batch's column indices are loaded before this
// batch's B rows are used, so that load's latency overlaps this batch's B gathers, FMAs and butterflies instead of
// preceding the next batch's gathers (one dependent round trip per batch instead of two); in each K slot the A
// vector and all P B rows are loaded before the first FMA (16-bit types: kLoadsFirst; f32 gets this from ptxas
// anyway), one round trip per slot where the B rows had followed one another; and the warp's first row is found by
// a 32-way warp search (~3 dependent rounds of loads, not ~14). Same FMAs in the same order: bitwise the
// `sddmm_serial_<T>` kernels' results (the previous kernels, unchanged, kept for the benchmark's comparison,
// `SLR_SDDMM_PATH=serial`).
template <typename T, bool kPipelined>
__device__ __forceinline__ void sddmm_impl(const T* __restrict__ a, unsigned long long a_rs, unsigned long long a_cs,
                                           const T* __restrict__ b, unsigned long long b_rs, unsigned long long b_cs,
                                           const unsigned* __restrict__ row_offsets,
                                           const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz,
                                           unsigned k, unsigned log2_group, float alpha, float beta,
                                           T* __restrict__ c) {
    constexpr unsigned V = Slot<T>::kElems;
    const unsigned lane = threadIdx.x % 32;
    const unsigned group_size = 1u << log2_group, groups = 32u >> log2_group;
    const unsigned group = lane >> log2_group, member = lane & (group_size - 1);
    const unsigned per_batch = groups * kEntriesPerGroup;
    const unsigned long long chunk = (unsigned long long)per_batch * kBatchesPerWarp;
    const unsigned long long first = ((unsigned long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32) * chunk;
    if (first >= nnz) return;  // whole warps leave together: the shuffles below see full warps
    const unsigned end = (unsigned)min((unsigned long long)nnz, first + chunk);
    // Warp-uniform: 16-byte loads need unit K stride and 16-byte aligned rows in both operands.
    const bool vector = a_cs == 1 && b_cs == 1 &&
                        (((unsigned long long)a | (unsigned long long)b | (a_rs * sizeof(T)) | (b_rs * sizeof(T))) &
                         15) == 0;
    const unsigned slots = (k + V - 1) / V;
    // Loads first for 16-bit types only: f32's per-entry blocks (4 FMAs) are short enough that ptxas predicates them
    // and issues all 5 loads before the first FMA by itself (SASS, sm_80-90), while explicit loads-first left it
    // short of registers at 64 (one or two B rows issued after FMAs).
    constexpr bool kLoadsFirst = kPipelined && sizeof(T) == 2;

    // The warp's first row. Pipelined: a 32-way search by the whole warp (~3 dependent rounds of loads at 11008 rows
    // instead of ~14; all 32 lanes are here, since whole warps leave together above, and row_offsets[0] = 0 <=
    // first). The same row either way.
    unsigned row = kPipelined ? slr::csr_row_of_entry_warp(row_offsets, 0u, rows - 1, (unsigned)first)
                              : slr::csr_row_of_entry(row_offsets, rows, (unsigned)first);
    for (unsigned seg = (unsigned)first; seg < end;) {
        row = row_holding(row_offsets, row, rows, seg);
        const unsigned seg_end = min(end, row_offsets[row + 1]);
        // Column of entry base + p * groups + group (consecutive groups take consecutive entries), 0 past seg_end.
        unsigned next_col[kEntriesPerGroup];
        auto fetch_cols = [&](unsigned long long base) {
#pragma unroll
            for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
                const unsigned long long e = base + p * groups + group;
                next_col[p] = e < seg_end ? col_indices[e] : 0u;
            }
        };
        if (kPipelined) fetch_cols(seg);
        // 64-bit so that the last batch cannot wrap when nnz is close to 2^32.
        for (unsigned long long base = seg; base < seg_end; base += per_batch) {
            Batch<T> batch;
            batch.a_row = a + row * a_rs;
            unsigned entry[kEntriesPerGroup];
            float acc[kEntriesPerGroup];
            if (!kPipelined) fetch_cols(base);
#pragma unroll
            for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
                const unsigned long long e = base + p * groups + group;  // consecutive groups take consecutive entries
                batch.valid[p] = e < seg_end;
                entry[p] = (unsigned)e;
                batch.b_row[p] = batch.valid[p] ? b + (unsigned long long)next_col[p] * b_rs : b;
                acc[p] = 0.0f;
            }
            if (kPipelined && base + per_batch < seg_end) fetch_cols(base + per_batch);  // in flight with this batch
            for (unsigned s = member; s < slots; s += group_size) {
                const unsigned k0 = s * V, k1 = min(k, k0 + V);
                if (vector && k1 == k0 + V) {
                    accumulate_slot_vector<T, kLoadsFirst>(batch, k0, acc);
                } else {
                    accumulate_slot_scalar(batch, a_cs, b_cs, k0, k1, acc);
                }
            }
#pragma unroll
            for (unsigned p = 0; p < kEntriesPerGroup; ++p) {
                const float dot = group_sum(acc[p], group_size);
                if (member == 0 && batch.valid[p]) store_entry(c + entry[p], dot, alpha, beta);
            }
        }
        seg = seg_end;
    }
}

constexpr unsigned kVecTile = 64;     // sddmm_transpose_vec: r and k per tile
constexpr unsigned kVecThreadsX = 16; // threads along the contiguous direction (4 elements each)
constexpr unsigned kVecThreadsY = 16;
// Blocks per SM the kernel is compiled for: 8 x 256 threads fill an SM (2048), so the bytes in flight are the most
// the SM can have (32 registers; the shared tile, 16.6 KB, would allow 13 blocks). sm_86/87/89 hold 1536 threads per
// SM: 6 blocks there (ptxas ignored 8 with a warning).
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
constexpr unsigned kVecBlocksPerSm = 6;
#else
constexpr unsigned kVecBlocksPerSm = 8;
#endif

// 4 elements of T as one access: 8 bytes for 16-bit T (a 64-bit integer), 16 for f32.
template <typename T> struct Quad { using type = unsigned long long; };
template <> struct Quad<float> { using type = float4; };

// The 4 elements of a Quad as f32 and back (exact both ways for values that came from T); memcpy, which nvcc turns
// into register moves, reinterprets the bytes without breaking the host compiler's aliasing rules (emulator).
template <typename T>
__device__ __forceinline__ void quad_to_f32(const typename Quad<T>::type& q, float (&out)[4]) {
    T e[4];
    memcpy(e, &q, sizeof(e));
#pragma unroll
    for (unsigned i = 0; i < 4; ++i) out[i] = slr::to_f32(e[i]);
}
template <typename T>
__device__ __forceinline__ typename Quad<T>::type f32_to_quad(const float (&in)[4]) {
    T e[4];
#pragma unroll
    for (unsigned i = 0; i < 4; ++i) e[i] = slr::from_f32<T>(in[i]);
    typename Quad<T>::type q;
    memcpy(&q, e, sizeof(q));
    return q;
}

// dst[r * dst_ld + k] = src[r + k * src_cs] for r < rows, k < cols; src and dst 4-element aligned, src_cs and dst_ld
// multiples of 4 (the host checks). Thread (tx, ty): reads elements r0 + 4tx .. + 3 of source lines k0 + ty + 16p,
// writes elements k0 + 4tx .. + 3 of destination rows r0 + ty + 16p (p < 4).
template <typename T>
__device__ __forceinline__ void transpose_vec_impl(const T* __restrict__ src, unsigned long long src_cs, unsigned rows,
                                                   unsigned cols, T* __restrict__ dst, unsigned long long dst_ld) {
    using Q = typename Quad<T>::type;
    __shared__ float tile[kVecTile][kVecTile + 1];  // [k][r]; the pad turns the write phase's column reads 2-way
    const unsigned tx = threadIdx.x, ty = threadIdx.y;
    const unsigned long long r0 = (unsigned long long)blockIdx.x * kVecTile;
    for (unsigned long long k0 = (unsigned long long)blockIdx.y * kVecTile; k0 < cols;
         k0 += (unsigned long long)gridDim.y * kVecTile) {
        // Read: all four lines' loads issued before any is stored.
        Q q[kVecTile / kVecThreadsY];
        const unsigned long long r = r0 + 4 * tx;
#pragma unroll
        for (unsigned pass = 0; pass < kVecTile / kVecThreadsY; ++pass) {
            const unsigned long long k = k0 + ty + kVecThreadsY * pass;
            float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            if (k < cols && r + 3 < rows) {
                q[pass] = __ldg(reinterpret_cast<const Q*>(src + r + k * src_cs));
            } else {
                for (unsigned i = 0; k < cols && i < 4 && r + i < rows; ++i) v[i] = slr::to_f32(src[r + i + k * src_cs]);
                q[pass] = f32_to_quad<T>(v);
            }
        }
#pragma unroll
        for (unsigned pass = 0; pass < kVecTile / kVecThreadsY; ++pass) {
            float v[4];
            quad_to_f32<T>(q[pass], v);
#pragma unroll
            for (unsigned i = 0; i < 4; ++i) tile[ty + kVecThreadsY * pass][4 * tx + i] = v[i];
        }
        __syncthreads();
        // Write: destination row r0 + ty + 16p, elements k0 + 4tx .. + 3 (element by element where the group
        // crosses k = cols). k in 32 bits (the host keeps cols + 64 within u32): with a 64-bit k in the address NVVM
        // split each 16-byte store into four 4-byte stores (PTX, sm_90).
        const unsigned k = (unsigned)k0 + 4 * tx;
#pragma unroll
        for (unsigned pass = 0; pass < kVecTile / kVecThreadsY; ++pass) {
            const unsigned rl = ty + kVecThreadsY * pass;
            if (r0 + rl >= rows || k >= cols) break;
            float v[4];
#pragma unroll
            for (unsigned i = 0; i < 4; ++i) v[i] = tile[4 * tx + i][rl];
            if (k + 3 < cols) {
                slr::store_vec(reinterpret_cast<Q*>(dst + (r0 + rl) * dst_ld + k), f32_to_quad<T>(v));
            } else {  // at most 3 elements: not unrolled (ptxas made 31 predicated stores of it per row)
#pragma unroll 1
                for (unsigned i = 0; k + i < cols; ++i) dst[(r0 + rl) * dst_ld + k + i] = slr::from_f32<T>(v[i]);
            }
        }
        __syncthreads();  // the next tile overwrites what slower threads may still be reading
    }
}

template <typename T>
__device__ __forceinline__ void transpose_impl(const T* __restrict__ src, unsigned long long src_rs,
                                               unsigned long long src_cs, unsigned rows, unsigned cols,
                                               T* __restrict__ dst, unsigned long long dst_ld) {
    __shared__ float tile[kTile][kTile + 1];
    const unsigned tx = threadIdx.x, ty = threadIdx.y;
    const unsigned long long r0 = (unsigned long long)blockIdx.x * kTile;
    for (unsigned long long c0 = (unsigned long long)blockIdx.y * kTile; c0 < cols;
         c0 += (unsigned long long)gridDim.y * kTile) {
        // Read: consecutive threads take consecutive rows r (contiguous when src_rs == 1).
        for (unsigned i = ty; i < kTile; i += kTileRows) {
            const unsigned long long r = r0 + tx, col = c0 + i;
            if (r < rows && col < cols) tile[i][tx] = slr::to_f32(src[r * src_rs + col * src_cs]);
        }
        __syncthreads();
        // Write: consecutive threads take consecutive columns, contiguous in dst.
        for (unsigned i = ty; i < kTile; i += kTileRows) {
            const unsigned long long r = r0 + i, col = c0 + tx;
            if (r < rows && col < cols) dst[r * dst_ld + col] = slr::from_f32<T>(tile[tx][i]);
        }
        __syncthreads();  // the next tile overwrites what slower threads may still be reading
    }
}

// ---- Tensor-core SDDMM (f16/bf16, src/sddmm.rs tensor_core_path) -----------------------------------------------
// One block of 4 warps per strip of kTcStripTiles 64 x 64 tiles of the output, left to right along one 64-row band
// (rows r0.., columns c0.. of each tile): the dense tile A[r0:r0+64, :] · B[c0:c0+64, :]ᵀ on tensor cores
// (mma.sync m16n8k16, f32 accumulation; warp w owns tile rows 16w..16w+15, all 64 columns as 8 fragments of 8), K in
// chunks of 32 staged in shared memory, the next chunk loaded into registers while the current one multiplies
// (16-byte loads when the operand's rows are K-contiguous and 16-byte aligned, element loads otherwise: the same
// values either way, so the result does not depend on the layout), then every entry of the pattern inside the tile
// reads its value from the finished tile. Each row keeps a cursor into its entries: one binary search per row for
// the strip's first column (after the first chunk's loads are issued, so both latencies overlap), then per tile a
// warp reads 32 of the row's column indices from the cursor at once, writes those inside the tile (a prefix: the
// columns are sorted) and moves the cursor past them; a tile no row's cursor points into is skipped before any
// shared-memory or mma work, and the next tile's first chunk is in flight during a tile's writes. (2026-11-28: the
// one-tile-per-block version searched each row twice per tile, ~2 log2(row length) dependent L2 loads, ~20 at 5% of
// 4096 columns, before any work: a likely part of its 104 µs against the CUDA-core kernel's 83 at 4096², K = 128,
// 5% on an H200, a5e77c2; unmeasured since.) Work: 64 x 64 x K multiply-adds per non-empty tile whatever its entry
// count, so it is used where the pattern is dense enough (src/sddmm.rs); bytes: 128 rows x K x 2 per tile from L2
// instead of one B row per entry. Each tile's products are the one-tile version's, in the same order: the same
// bits. Deterministic run to run; not bitwise the CUDA-core kernel or the CPU (the mma's accumulation order is
// unspecified), within the same f32 bound.
constexpr unsigned kTcTile = 64;        // output rows and columns per tile
constexpr unsigned kTcStripTiles = 4;   // tiles per block, along the columns (src/sddmm.rs TC_STRIP_TILES)
constexpr unsigned kTcK = 32;           // K per shared-memory stage
constexpr unsigned kTcLd = 40;          // shared row stride in elements (80 bytes: fragment loads spread over banks)
constexpr unsigned kTcThreads = 128;

// First index in [lo, hi) with col_indices[index] >= key (hi if none).
__device__ __forceinline__ unsigned first_col_at_least(const unsigned* __restrict__ col_indices, unsigned lo,
                                                       unsigned hi, unsigned long long key) {
    while (lo < hi) {
        const unsigned mid = lo + (hi - lo) / 2;
        if (col_indices[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

constexpr unsigned kTcPieces = kTcTile * (kTcK / 8) / kTcThreads;  // 8-element pieces per thread per operand

template <typename T>
__device__ __forceinline__ void sddmm_tc_impl(const T* __restrict__ a, unsigned long long a_rs,
                                              unsigned long long a_cs, const T* __restrict__ b,
                                              unsigned long long b_rs, unsigned long long b_cs,
                                              const unsigned* __restrict__ row_offsets,
                                              const unsigned* __restrict__ col_indices, unsigned rows, unsigned cols,
                                              unsigned k, unsigned vec_flags, float alpha, float beta,
                                              T* __restrict__ c) {
    __shared__ __align__(16) T a_stage[kTcTile * kTcLd];
    __shared__ __align__(16) T b_stage[kTcTile * kTcLd];
    __shared__ float tile[kTcTile][kTcTile + 1];
    __shared__ unsigned cursor[kTcTile], row_end[kTcTile];
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned r0 = blockIdx.y * kTcTile;
    const unsigned tiles = (cols + kTcTile - 1) / kTcTile;
    const unsigned first = blockIdx.x * kTcStripTiles;
    const unsigned last = min(first + kTcStripTiles, tiles);  // one past
    const bool vec_a = (vec_flags & 1u) != 0, vec_b = (vec_flags & 2u) != 0;
    // Software pipeline: chunk k0 + kTcK is loaded into registers while chunk k0 multiplies; a tile's first chunk
    // while the tile before writes its entries (or, for the strip's first tile, while the rows are searched).
    // Lines are the operands' rows (r0.., c0..), pieces along K.
    uint4 ap[kTcPieces], bp[kTcPieces];
    slr::stage_load<kTcThreads, kTcK>(ap, a, a_rs, a_cs, r0, rows, 0, k, vec_a);
    slr::stage_load<kTcThreads, kTcK>(bp, b, b_rs, b_cs, first * kTcTile, cols, 0, k, vec_b);
    bool loaded = true;  // ap and bp hold the first chunk of the tile about to be computed
    unsigned cur = 0, end = 0;  // thread t < 64: row r0 + t's cursor and end, for the first tile's test
    if (t < kTcTile && r0 + t < rows) {
        end = row_offsets[r0 + t + 1];
        cur = first_col_at_least(col_indices, row_offsets[r0 + t], end, (unsigned long long)first * kTcTile);
    }
    if (t < kTcTile) {
        cursor[t] = cur;
        row_end[t] = end;
    }
    for (unsigned ti = first; ti < last; ++ti) {
        const unsigned c0 = ti * kTcTile;
        if (ti != first && t < kTcTile) {  // the cursors the previous tile's writes left (ordered by its barrier)
            cur = cursor[t];
            end = row_end[t];
        }
        const unsigned long long c_end = (unsigned long long)c0 + kTcTile;  // 64-bit: cols may reach 2^32 - 1
        const bool any = t < kTcTile && cur < end && col_indices[cur] < c_end;
        if (!__syncthreads_or(any)) {  // no entry in this tile: skip it (block-uniform)
            loaded = false;
            continue;
        }
        if (!loaded) {
            slr::stage_load<kTcThreads, kTcK>(ap, a, a_rs, a_cs, r0, rows, 0, k, vec_a);
            slr::stage_load<kTcThreads, kTcK>(bp, b, b_rs, b_cs, c0, cols, 0, k, vec_b);
        }
        float acc[kTcTile / 8][4];
#pragma unroll
        for (unsigned nt = 0; nt < kTcTile / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
        for (unsigned k0 = 0; k0 < k; k0 += kTcK) {
            slr::stage_store<kTcThreads, kTcK>(a_stage, kTcLd, ap);
            slr::stage_store<kTcThreads, kTcK>(b_stage, kTcLd, bp);
#ifndef SLR_FAULT_SDDMM_TC_STAGE_SYNC  // planted fault for the emulator's mutation test: fragments read half-staged rows
            __syncthreads();
#endif
            if (k0 + kTcK < k) {  // the next chunk's loads, in flight during this chunk's mma
                slr::stage_load<kTcThreads, kTcK>(ap, a, a_rs, a_cs, r0, rows, k0 + kTcK, k, vec_a);
                slr::stage_load<kTcThreads, kTcK>(bp, b, b_rs, b_cs, c0, cols, k0 + kTcK, k, vec_b);
            }
#pragma unroll
            for (unsigned kk = 0; kk < kTcK; kk += 16) {
                unsigned af[4];
                slr::mma_load_a_row_major(af, a_stage + (16 * warp) * kTcLd + kk, kTcLd, lane);
                slr::mma_strip_step<T>(acc, af, b_stage, kTcLd, kk, lane);
            }
            __syncthreads();  // the next stage overwrites what slower warps may still be reading
        }
#pragma unroll
        for (unsigned nt = 0; nt < kTcTile / 8; ++nt) slr::mma_store_d_row_major(&tile[16 * warp][8 * nt], kTcTile + 1, lane, acc[nt]);
        __syncthreads();  // the whole tile before any entry reads it
        loaded = ti + 1 < last;
        if (loaded) {  // the next tile's first chunk, in flight during this tile's writes
            slr::stage_load<kTcThreads, kTcK>(ap, a, a_rs, a_cs, r0, rows, 0, k, vec_a);
            slr::stage_load<kTcThreads, kTcK>(bp, b, b_rs, b_cs, c0 + kTcTile, cols, 0, k, vec_b);
        }
        // Row r's entries in this tile: a prefix of those from its cursor (columns sorted), 32 at a time.
        for (unsigned r = warp; r < kTcTile; r += kTcThreads / 32) {
            // Lane 0 alone reads and writes the row's cursor, and hands it to the warp by a shuffle: if every lane
            // read it, lane 0's store below would race with the others' loads (a ballot does not order memory;
            // the emulator's race checker reports it).
#ifdef SLR_FAULT_SDDMM_TC_CURSOR_RACE  // planted fault for the race checker: every lane loads what lane 0 then stores
            unsigned e0 = cursor[r];
#else
            unsigned e0 = __shfl_sync(0xffffffffu, lane == 0 ? cursor[r] : 0u, 0);
#endif
            const unsigned e_end = row_end[r];
            for (;;) {
                const unsigned long long e = (unsigned long long)e0 + lane;  // no wrap when nnz is near 2^32
                const unsigned col = e < e_end ? col_indices[e] : 0u;
                const bool inside = e < e_end && col < c_end;
                if (inside) store_entry(c + e, tile[r][col - c0], alpha, beta);
                const unsigned taken = __popc(__ballot_sync(0xffffffffu, inside));
                e0 += taken;
                if (taken < 32) break;
            }
            if (lane == 0) cursor[r] = e0;
        }
        __syncthreads();  // the cursors and the tile's reads before the next tile's test and stores
    }
}

}  // namespace

// Blocks per SM the tensor-core kernel asks for: on sm_80 the strips' cursors took it from 96 to 124 registers (4
// blocks per SM instead of the 5 its shared memory allows); asking for 5 keeps 96 with no spills there. Elsewhere no
// hint: on sm_90 it is 96 registers either way (and the hint changed its code); on sm_86/89, 131, still the 3 blocks
// their shared memory allows.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 800
#define SLR_SDDMM_TC_LAUNCH_BOUNDS __launch_bounds__(kTcThreads, 5)
#else
#define SLR_SDDMM_TC_LAUNCH_BOUNDS __launch_bounds__(kTcThreads)
#endif

#define SLR_SDDMM_TC(NAME, T)                                                                                    \
    extern "C" __global__ void SLR_SDDMM_TC_LAUNCH_BOUNDS                                                       \
        NAME(const T* __restrict__ a, unsigned long long a_rs, unsigned long long a_cs, const T* __restrict__ b, \
             unsigned long long b_rs, unsigned long long b_cs, const unsigned* __restrict__ row_offsets,          \
             const unsigned* __restrict__ col_indices, unsigned rows, unsigned cols, unsigned k,                 \
             unsigned vec_flags, float alpha, float beta, T* __restrict__ c) {                                   \
        sddmm_tc_impl<T>(a, a_rs, a_cs, b, b_rs, b_cs, row_offsets, col_indices, rows, cols, k, vec_flags,      \
                         alpha, beta, c);                                                                       \
    }

// BOUNDS: the pipelined kernels ask for 4 blocks per SM (64 registers, no spills on sm_80-90; without it their 5
// slot loads in flight took 76 registers, 3 blocks, on sm_90 and spilled on sm_80); the serial ones keep the bound
// they were measured with (their SASS is unchanged).
#define SLR_SDDMM(NAME, T, PIPELINED, BOUNDS)                                                                    \
    extern "C" __global__ void __launch_bounds__ BOUNDS                                                         \
        NAME(const T* __restrict__ a, unsigned long long a_rs, unsigned long long a_cs, const T* __restrict__ b, \
             unsigned long long b_rs, unsigned long long b_cs, const unsigned* __restrict__ row_offsets,          \
             const unsigned* __restrict__ col_indices, unsigned rows, unsigned nnz, unsigned k,                  \
             unsigned log2_group, float alpha, float beta, T* __restrict__ c) {                                  \
        sddmm_impl<T, PIPELINED>(a, a_rs, a_cs, b, b_rs, b_cs, row_offsets, col_indices, rows, nnz, k,          \
                                 log2_group, alpha, beta, c);                                                   \
    }

#define SLR_SDDMM_TRANSPOSE(NAME, T)                                                                             \
    extern "C" __global__ void __launch_bounds__(kTile * kTileRows)                                             \
        NAME(const T* __restrict__ src, unsigned long long src_rs, unsigned long long src_cs, unsigned rows,     \
             unsigned cols, T* __restrict__ dst, unsigned long long dst_ld) {                                    \
        transpose_impl<T>(src, src_rs, src_cs, rows, cols, dst, dst_ld);                                        \
    }

SLR_SDDMM(sddmm_f32, float, true, (kWarpsPerBlock * 32, 4))
SLR_EMU_EXPORT(sddmm_f32)
SLR_SDDMM(sddmm_f16, __half, true, (kWarpsPerBlock * 32, 4))
SLR_EMU_EXPORT(sddmm_f16)
SLR_SDDMM(sddmm_bf16, __nv_bfloat16, true, (kWarpsPerBlock * 32, 4))
SLR_EMU_EXPORT(sddmm_bf16)
SLR_SDDMM(sddmm_serial_f32, float, false, (kWarpsPerBlock * 32))
SLR_EMU_EXPORT(sddmm_serial_f32)
SLR_SDDMM(sddmm_serial_f16, __half, false, (kWarpsPerBlock * 32))
SLR_EMU_EXPORT(sddmm_serial_f16)
SLR_SDDMM(sddmm_serial_bf16, __nv_bfloat16, false, (kWarpsPerBlock * 32))
SLR_EMU_EXPORT(sddmm_serial_bf16)
SLR_SDDMM_TC(sddmm_tc_f16, __half)
SLR_EMU_EXPORT(sddmm_tc_f16)
SLR_SDDMM_TC(sddmm_tc_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(sddmm_tc_bf16)

#define SLR_SDDMM_TRANSPOSE_VEC(NAME, T)                                                                         \
    extern "C" __global__ void __launch_bounds__(kVecThreadsX * kVecThreadsY, kVecBlocksPerSm)                  \
        NAME(const T* __restrict__ src, unsigned long long src_cs, unsigned rows, unsigned cols,                 \
             T* __restrict__ dst, unsigned long long dst_ld) {                                                   \
        transpose_vec_impl<T>(src, src_cs, rows, cols, dst, dst_ld);                                              \
    }

SLR_SDDMM_TRANSPOSE(sddmm_transpose_f32, float)
SLR_EMU_EXPORT(sddmm_transpose_f32)
SLR_SDDMM_TRANSPOSE(sddmm_transpose_f16, __half)
SLR_EMU_EXPORT(sddmm_transpose_f16)
SLR_SDDMM_TRANSPOSE(sddmm_transpose_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(sddmm_transpose_bf16)
SLR_SDDMM_TRANSPOSE_VEC(sddmm_transpose_vec_f32, float)
SLR_EMU_EXPORT(sddmm_transpose_vec_f32)
SLR_SDDMM_TRANSPOSE_VEC(sddmm_transpose_vec_f16, __half)
SLR_EMU_EXPORT(sddmm_transpose_vec_f16)
SLR_SDDMM_TRANSPOSE_VEC(sddmm_transpose_vec_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(sddmm_transpose_vec_bf16)

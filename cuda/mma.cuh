// Warp-level tensor-core matrix multiply-accumulate (Ampere mma.sync) and its fragment loaders: the ONE place
// where the project writes tensor-core inline PTX and the fragment layout. Kernels call these helpers and never
// write `asm` themselves (docs/design.md).
//
// Shape m16n8k16, A row-major operand (".row"), B column operand (".col"), f32 accumulators:
//
//   D (16x8, f32) = A (16x16, f16 or bf16) * B (16x8, same type) + C (16x8, f32)
//
// computed collectively by the 32 lanes of a warp; every lane holds a fragment of each matrix in registers:
// A in four .b32 registers (eight 16-bit elements), B in two (four elements), C and D in four f32 registers.
//
// Fragment layout, from the PTX ISA, section "Matrix Fragments for mma.m16n8k16 with floating point type"
// (9.7.14.5.8 in PTX ISA 9.0; the figures "MMA .m16n8k16 fragment layout for matrix A / B / accumulator C/D").
// With g = groupID = laneid >> 2 and t = threadID_in_group = laneid % 4:
//
//   A (16x16): elements a0..a7, two per .b32 register, the lower-numbered element in the low 16 bits
//              (register r holds a(2r) | a(2r+1) << 16):
//                row(ai) = g       for i in {0,1,4,5},   g + 8 for i in {2,3,6,7}
//                col(ai) = 2t + (i & 1)  for i < 4,      2t + (i & 1) + 8 for i >= 4
//   B (16x8, K x N): elements b0..b3, two per .b32 register, low half first:
//                row(bi) = k = 2t + (i & 1) for i < 2,   2t + (i & 1) + 8 for i >= 2
//                col(bi) = n = g
//   C, D (16x8): elements c0..c3, one f32 register each:
//                row(ci) = g for i < 2,  g + 8 for i >= 2
//                col(ci) = 2t + (i & 1)
//
// So lane l holds A rows g and g+8 (columns 2t, 2t+1, 2t+8, 2t+9), B column g (rows 2t, 2t+1, 2t+8, 2t+9) and
// C/D rows g and g+8 (columns 2t, 2t+1). The functions mma_a_coord / mma_b_coord / mma_c_coord below are this
// table; the loaders, the store and the host version of the mma all read it from there.
//
// Numerics. PTX ISA (mma, "Precision and rounding"): products of .f16 / .bf16 elements are formed in at least
// single precision and accumulated in at least single precision when C/D are .f32; "the accumulation order,
// rounding and handling of subnormal inputs are unspecified". Hence the GPU and the host version below are NOT
// bitwise equal. What holds: every product of two f16 (11-bit significands, exponents >= 2^-24) or two bf16
// (8-bit significands) values is exact in f32 as long as it neither overflows nor falls below f32's normal
// range (always true for f16; true for bf16 unless |a*b| > 3.4e38 or < 1.2e-38), so the only difference is how
// the 16 products and c are summed: each of the at most 17 additions is off by at most about one ulp of the
// partial sum, and every partial sum is at most S = |c| + sum_k |a_k b_k|. GPU and host therefore agree to within
// a few tens of f32 ulps of S (tests/tile_mma.rs uses |d_gpu - d_ref| <= 2^-18 * S and derives it).
//
// Host version (SLR_EMULATE, the SIMT emulator in cuda/emu/): the same warp-collective operation built from the
// emulator's warp primitives only. Each lane gathers all 32 lanes' A and B registers with __shfl_sync, places
// every 16-bit element at its (row, col) by the table above, and computes its own four D elements as
//   d = c; for k = 0..15: d = fmaf(A[row][k], B[k][col], d)
// (one rounding per step, k ascending), which is exactly what the CPU reference tile_mma_cpu computes. Like the
// hardware instruction (".aligned"), it must be reached by all 32 lanes of the warp: the emulator reports a lane
// that exited or diverged.
#pragma once

#include "common.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "mma.cuh: mma.sync m16n8k16 with bf16 inputs needs sm_80 or newer (check SLR_CUDA_ARCHS)"
#endif

namespace slr {

// ---------------------------------------------------------------------------------------------------------------
// The fragment layout (see the table at the top). Lane in [0, 32); element index i as in the PTX ISA.
// ---------------------------------------------------------------------------------------------------------------
struct MmaCoord {
    unsigned row;
    unsigned col;
};

// A (16x16): i in [0, 8); register i / 2, low half for even i.
__host__ __device__ constexpr MmaCoord mma_a_coord(unsigned lane, unsigned i) {
    return MmaCoord{(lane >> 2) + ((i & 2u) ? 8u : 0u), (lane & 3u) * 2u + (i & 1u) + ((i & 4u) ? 8u : 0u)};
}

// B (16x8, row = k, col = n): i in [0, 4); register i / 2, low half for even i.
__host__ __device__ constexpr MmaCoord mma_b_coord(unsigned lane, unsigned i) {
    return MmaCoord{(lane & 3u) * 2u + (i & 1u) + ((i & 2u) ? 8u : 0u), lane >> 2};
}

// C and D (16x8): i in [0, 4); register i.
__host__ __device__ constexpr MmaCoord mma_c_coord(unsigned lane, unsigned i) {
    return MmaCoord{(lane >> 2) + ((i & 2u) ? 8u : 0u), (lane & 3u) * 2u + (i & 1u)};
}

// Compile-time sanity check of the table: each layout hands every element of its matrix to exactly one
// (lane, element) pair. (It cannot catch a consistent permutation; the GPU test against the CPU does.)
__host__ __device__ constexpr bool mma_layouts_cover_each_element_once() {
    unsigned a_seen[16 * 16] = {}, b_seen[16 * 8] = {}, c_seen[16 * 8] = {};
    for (unsigned lane = 0; lane < 32; ++lane) {
        for (unsigned i = 0; i < 8; ++i) {
            MmaCoord p = mma_a_coord(lane, i);
            if (p.row >= 16 || p.col >= 16) return false;
            ++a_seen[p.row * 16 + p.col];
        }
        for (unsigned i = 0; i < 4; ++i) {
            MmaCoord p = mma_b_coord(lane, i);
            if (p.row >= 16 || p.col >= 8) return false;
            ++b_seen[p.row * 8 + p.col];
            MmaCoord q = mma_c_coord(lane, i);
            if (q.row >= 16 || q.col >= 8) return false;
            ++c_seen[q.row * 8 + q.col];
        }
    }
    for (unsigned e = 0; e < 16 * 16; ++e)
        if (a_seen[e] != 1) return false;
    for (unsigned e = 0; e < 16 * 8; ++e)
        if (b_seen[e] != 1 || c_seen[e] != 1) return false;
    return true;
}
static_assert(mma_layouts_cover_each_element_once(), "m16n8k16 fragment layout is not a bijection");

// Spot values worked out by hand from the ISA formulas, a second statement of the table: an edit of the functions
// above that keeps them bijections but moves elements (which the emulator cannot see, since its host mma reads
// the same table) fails to compile here. Lane 0: g = 0, t = 0; lane 6: g = 1, t = 2; lane 31: g = 7, t = 3.
__host__ __device__ constexpr bool mma_coord_is(MmaCoord p, unsigned row, unsigned col) {
    return p.row == row && p.col == col;
}
static_assert(mma_coord_is(mma_a_coord(0, 0), 0, 0) && mma_coord_is(mma_a_coord(0, 1), 0, 1) &&
                  mma_coord_is(mma_a_coord(0, 2), 8, 0) && mma_coord_is(mma_a_coord(0, 4), 0, 8) &&
                  mma_coord_is(mma_a_coord(6, 3), 9, 5) && mma_coord_is(mma_a_coord(6, 5), 1, 13) &&
                  mma_coord_is(mma_a_coord(31, 7), 15, 15),
              "A fragment layout differs from PTX ISA 'Matrix Fragments for mma.m16n8k16 with floating point type'");
static_assert(mma_coord_is(mma_b_coord(0, 0), 0, 0) && mma_coord_is(mma_b_coord(0, 2), 8, 0) &&
                  mma_coord_is(mma_b_coord(6, 1), 5, 1) && mma_coord_is(mma_b_coord(6, 3), 13, 1) &&
                  mma_coord_is(mma_b_coord(31, 3), 15, 7),
              "B fragment layout differs from PTX ISA 'Matrix Fragments for mma.m16n8k16 with floating point type'");
static_assert(mma_coord_is(mma_c_coord(0, 0), 0, 0) && mma_coord_is(mma_c_coord(0, 2), 8, 0) &&
                  mma_coord_is(mma_c_coord(6, 1), 1, 5) && mma_coord_is(mma_c_coord(6, 2), 9, 4) &&
                  mma_coord_is(mma_c_coord(31, 3), 15, 7),
              "C/D fragment layout differs from PTX ISA 'Matrix Fragments for mma.m16n8k16 with floating point type'");

// Lane of the calling thread within its warp (warps are 32 consecutive linear thread ids).
__device__ __forceinline__ unsigned warp_lane() {
    return (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) & 31u;
}

// ---------------------------------------------------------------------------------------------------------------
// Element bits and packing: two 16-bit elements per .b32 register, the lower-numbered one in the low half.
// ---------------------------------------------------------------------------------------------------------------
__device__ __forceinline__ unsigned short mma_bits(__half x) { return __half_as_ushort(x); }
__device__ __forceinline__ unsigned short mma_bits(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }

__device__ __forceinline__ unsigned mma_pack(unsigned short lo, unsigned short hi) {
    return (unsigned)lo | ((unsigned)hi << 16);
}

// ---------------------------------------------------------------------------------------------------------------
// Fragment loads and stores for `lane`, from tiles in shared or global memory (generic pointers). Element loads
// are 16-bit (32-bit for f32), so a tile needs only its element type's alignment.
// ---------------------------------------------------------------------------------------------------------------

// A fragment from a 16x16 row-major tile: element (r, c) at tile[r * ld + c], ld >= 16.
template <typename T>
__device__ __forceinline__ void mma_load_a_row_major(unsigned (&a)[4], const T* tile, unsigned ld, unsigned lane) {
#pragma unroll
    for (unsigned r = 0; r < 4; ++r) {
        const MmaCoord lo = mma_a_coord(lane, 2 * r), hi = mma_a_coord(lane, 2 * r + 1);
        a[r] = mma_pack(mma_bits(tile[lo.row * ld + lo.col]), mma_bits(tile[hi.row * ld + hi.col]));
    }
}

// A fragment from a 16x16 tile stored column by column: element (r, c) at tile[c * ld + r], ld >= 16 (a column-major
// operand, or the transpose of a row-major one).
template <typename T>
__device__ __forceinline__ void mma_load_a_col_major(unsigned (&a)[4], const T* tile, unsigned ld, unsigned lane) {
#pragma unroll
    for (unsigned r = 0; r < 4; ++r) {
        const MmaCoord lo = mma_a_coord(lane, 2 * r), hi = mma_a_coord(lane, 2 * r + 1);
        a[r] = mma_pack(mma_bits(tile[lo.col * ld + lo.row]), mma_bits(tile[hi.col * ld + hi.row]));
    }
}

// B fragment from a 16x8 (K x N) row-major tile: element (k, n) at tile[k * ld + n], ld >= 8.
template <typename T>
__device__ __forceinline__ void mma_load_b_row_major(unsigned (&b)[2], const T* tile, unsigned ld, unsigned lane) {
#pragma unroll
    for (unsigned r = 0; r < 2; ++r) {
        const MmaCoord lo = mma_b_coord(lane, 2 * r), hi = mma_b_coord(lane, 2 * r + 1);
        b[r] = mma_pack(mma_bits(tile[lo.row * ld + lo.col]), mma_bits(tile[hi.row * ld + hi.col]));
    }
}

// B fragment from a 16x8 (K x N) tile stored column by column (N rows of K contiguous elements, as the rows of a
// row-major n x K operand): element (k, n) at tile[n * ld + k], ld >= 16.
template <typename T>
__device__ __forceinline__ void mma_load_b_col_major(unsigned (&b)[2], const T* tile, unsigned ld, unsigned lane) {
#pragma unroll
    for (unsigned r = 0; r < 2; ++r) {
        const MmaCoord lo = mma_b_coord(lane, 2 * r), hi = mma_b_coord(lane, 2 * r + 1);
        b[r] = mma_pack(mma_bits(tile[lo.col * ld + lo.row]), mma_bits(tile[hi.col * ld + hi.row]));
    }
}

// C fragment from a 16x8 row-major f32 tile: element (r, c) at tile[r * ld + c], ld >= 8.
__device__ __forceinline__ void mma_load_c_row_major(float (&c)[4], const float* tile, unsigned ld, unsigned lane) {
#pragma unroll
    for (unsigned i = 0; i < 4; ++i) {
        const MmaCoord p = mma_c_coord(lane, i);
        c[i] = tile[p.row * ld + p.col];
    }
}

// D fragment to a 16x8 row-major f32 tile (same addressing as the C load).
__device__ __forceinline__ void mma_store_d_row_major(float* tile, unsigned ld, unsigned lane, const float (&d)[4]) {
#pragma unroll
    for (unsigned i = 0; i < 4; ++i) {
        const MmaCoord p = mma_c_coord(lane, i);
        tile[p.row * ld + p.col] = d[i];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The mma itself. d may be the same array as c. All 32 lanes of the warp must call it together (warp-uniform
// control flow), each with its own fragments.
// ---------------------------------------------------------------------------------------------------------------
#ifdef SLR_EMULATE

namespace mma_host {

inline float element_to_f32(__half, unsigned short bits) { return __half2float(__ushort_as_half(bits)); }
inline float element_to_f32(__nv_bfloat16, unsigned short bits) {
    return __bfloat162float(__ushort_as_bfloat16(bits));
}

// The warp-collective m16n8k16 on the emulator: gather every lane's registers, rebuild A and B by the layout
// table, compute this lane's four D elements (k ascending, one fmaf rounding per step).
template <typename T>
inline void mma_m16n8k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
    const unsigned lane = warp_lane();
    float A[16][16], B[16][8];
    for (unsigned src = 0; src < 32; ++src) {
        for (unsigned r = 0; r < 4; ++r) {
            const unsigned v = __shfl_sync(0xffffffffu, a[r], (int)src);
            const MmaCoord lo = mma_a_coord(src, 2 * r), hi = mma_a_coord(src, 2 * r + 1);
            A[lo.row][lo.col] = element_to_f32(T(), (unsigned short)(v & 0xffffu));
            A[hi.row][hi.col] = element_to_f32(T(), (unsigned short)(v >> 16));
        }
        for (unsigned r = 0; r < 2; ++r) {
            const unsigned v = __shfl_sync(0xffffffffu, b[r], (int)src);
            const MmaCoord lo = mma_b_coord(src, 2 * r), hi = mma_b_coord(src, 2 * r + 1);
            B[lo.row][lo.col] = element_to_f32(T(), (unsigned short)(v & 0xffffu));
            B[hi.row][hi.col] = element_to_f32(T(), (unsigned short)(v >> 16));
        }
    }
    float out[4];
    for (unsigned i = 0; i < 4; ++i) {
        const MmaCoord p = mma_c_coord(lane, i);
        float acc = c[i];
        for (unsigned k = 0; k < 16; ++k) acc = fmaf(A[p.row][k], B[k][p.col], acc);
        out[i] = acc;
    }
    for (unsigned i = 0; i < 4; ++i) d[i] = out[i];
}

}  // namespace mma_host

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (host version)
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                                  const float (&c)[4]) {
    mma_host::mma_m16n8k16<__nv_bfloat16>(d, a, b, c);
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (host version)
__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                                 const float (&c)[4]) {
    mma_host::mma_m16n8k16<__half>(d, a, b, c);
}

#else  // !SLR_EMULATE

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80+)
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                                  const float (&c)[4]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (sm_80+)
__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                                 const float (&c)[4]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

#endif  // SLR_EMULATE

// By element type, for kernels templated over T: mma_m16n8k16<T>(d, a, b, c).
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                             const float (&c)[4]);
template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                                     const float (&c)[4]) {
    mma_m16n8k16_f16(d, a, b, c);
}
template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&d)[4], const unsigned (&a)[4],
                                                            const unsigned (&b)[2], const float (&c)[4]) {
    mma_m16n8k16_bf16(d, a, b, c);
}

// ---------------------------------------------------------------------------------------------------------------
// Staging an operand tile through registers (the tensor-core kernels' two-stage pipeline: the next stage's pieces
// are loaded while the current stage multiplies, then stored to shared memory after the barrier). The tile is
// `lines` lines along the operand's contiguous ("inner") direction, cut into 8-element (16-byte) pieces; piece
// i = threadIdx.x + kThreads * p of the calling thread is line i / (kLineElems / 8), elements
// (i % (kLineElems / 8)) * 8 .. + 8 of it.
// ---------------------------------------------------------------------------------------------------------------

// Elements (outer, inner + j), j < 8, at src[outer * outer_stride + (inner + j) * inner_stride], zero past either
// count, as one 16-byte word (element 2j in the low half of word j: the memory order of a 16-byte load). `vec`:
// inner_stride is 1 and every outer line starts 16-byte aligned, so a whole piece inside the inner count is one
// 16-byte load; otherwise element loads (the same values).
template <typename T>
__device__ __forceinline__ uint4 stage_piece_load(const T* __restrict__ src, unsigned long long outer_stride,
                                                  unsigned long long inner_stride, unsigned outer,
                                                  unsigned outer_count, unsigned inner, unsigned inner_count,
                                                  bool vec) {
    if (vec && outer < outer_count && inner + 8 <= inner_count) {
        return slr::load_vec(reinterpret_cast<const uint4*>(src + outer * outer_stride + inner));
    }
    unsigned w[4];
#pragma unroll
    for (unsigned j = 0; j < 4; ++j) {
        unsigned short half[2];
#pragma unroll
        for (unsigned h = 0; h < 2; ++h) {
            const unsigned c = inner + 2 * j + h;
            half[h] = (outer < outer_count && c < inner_count)
                          ? mma_bits(src[outer * outer_stride + (unsigned long long)c * inner_stride])
                          : 0;
        }
        w[j] = mma_pack(half[0], half[1]);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// This thread's kPieces pieces of the tile whose line 0 is outer line `outer0` and whose piece 0 starts at inner
// element `inner0` (see stage_piece_load for the strides, counts and `vec`), into registers.
template <unsigned kThreads, unsigned kLineElems, unsigned kPieces, typename T>
__device__ __forceinline__ void stage_load(uint4 (&pieces)[kPieces], const T* __restrict__ src,
                                           unsigned long long outer_stride, unsigned long long inner_stride,
                                           unsigned outer0, unsigned outer_count, unsigned inner0,
                                           unsigned inner_count, bool vec) {
#pragma unroll
    for (unsigned p = 0; p < kPieces; ++p) {
        const unsigned i = threadIdx.x + kThreads * p;
        pieces[p] = stage_piece_load(src, outer_stride, inner_stride, outer0 + i / (kLineElems / 8), outer_count,
                                     inner0 + (i % (kLineElems / 8)) * 8, inner_count, vec);
    }
}

// The pieces of stage_load into shared memory: line l at dst + l * ld (ld a multiple of 8 elements).
template <unsigned kThreads, unsigned kLineElems, unsigned kPieces, typename T>
__device__ __forceinline__ void stage_store(T* dst, unsigned ld, const uint4 (&pieces)[kPieces]) {
#pragma unroll
    for (unsigned p = 0; p < kPieces; ++p) {
        const unsigned i = threadIdx.x + kThreads * p;
        slr::store_vec(reinterpret_cast<uint4*>(dst + (i / (kLineElems / 8)) * ld + (i % (kLineElems / 8)) * 8), pieces[p]);
    }
}

// One k-step of a warp's 16 x (8 * NT) output strip: acc[nt] += A · B_nt for nt < NT, where A is the warp's
// 16 x 16 fragment (already loaded) and B_nt the 16 x 8 block of a stage stored column by column (N rows of K
// contiguous elements, as mma_load_b_col_major reads them): rows 8 nt .. 8 nt + 7 of `b_stage`, elements kk .. kk + 15.
// The tensor-core SpMM and SDDMM kernels' inner step.
template <typename T, unsigned NT>
__device__ __forceinline__ void mma_strip_step(float (&acc)[NT][4], const unsigned (&a)[4], const T* b_stage, unsigned ld,
                                               unsigned kk, unsigned lane) {
#pragma unroll
    for (unsigned nt = 0; nt < NT; ++nt) {
        unsigned b[2];
        mma_load_b_col_major(b, b_stage + (8 * nt) * ld + kk, ld, lane);
        mma_m16n8k16<T>(acc[nt], a, b, acc[nt]);
    }
}

}  // namespace slr

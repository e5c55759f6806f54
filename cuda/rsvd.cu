// Randomized SVD (src/rsvd.rs): the hand-written device pieces around cuBLAS's products. Its kernels:
//
//   rsvd_gaussian_f32:  Omega[i] = N(0, 1) for i in [0, count), from Philox4x32-10 keyed by the 64-bit seed with
//                       counter (i / 4, 0, 0, 0); output word i % 4 of that call, each pair of words turned into
//                       two normals by Box-Muller. The logarithm and the sine/cosine are our own polynomials written
//                       with explicit fmaf only (no libm, no contraction ambiguity), so src/rsvd.rs computes the
//                       same bits on the CPU: the sketch is bitwise equal on both sides.
//                       Launch: one thread per 4 elements, 1-D grid of 256-thread blocks.
//                       Floor: 4 * count bytes written; ~60 flops and one Philox call (~10 32x32 multiplies
//                       pairs) per 4 elements: bandwidth-bound (11008 x 266 = 11.7 MB, ~4 us on an H100).
//   rsvd_to_f32_<T>:    dst[o * inner + k] = f32(src[o * ld + k]) over a dense matrix seen in storage order (outer
//                       x inner with leading dimension ld, either layout), and *nonfinite += the number of NaN/inf
//                       entries. dst may be null (f32 input: count only, the products read A in place).
//                       Launch: blocks stride over outer (min(outer, 4096) blocks), 256 threads over inner
//                       (coalesced); per-warp count by butterfly, one atomicAdd per warp (an integer sum: the
//                       count is exact and deterministic). Floor: read outer * inner * sizeof(T), write 4x that when
//                       converting: bf16 4096 x 11008 moves 270 MB, ~90 us at 3 TB/s.
//   rsvd_gemm_f32:      C[i, j] = alpha * sum_k A[i, k] * B[k, j] (+ beta * C[i, j] when beta != 0), every operand
//                       addressed by (row_stride, col_stride), so any transpose or layout is a stride swap. A plain
//                       fmaf chain in k order per output, one thread each (16 x 16 blocks, 2-D grid over (j, i)).
//                       With tf32_inputs != 0 both factors are truncated to TF32 first (the emulator's model of
//                       the TF32 products cuBLAS runs for RsvdConfig::tf32).
//                       It is the product engine of the emulator (which has no cuBLAS) and the fallback when
//                       libcublas is missing; not tuned: about 2 * m * n * k flops at CUDA-core rates with every
//                       operand read from L1/L2, far from the 67 TFLOP/s f32 floor that cuBLAS reaches.
//   rsvd_cholqr_factor_f32: one CholeskyQR pass's l x l step without a host round trip: from the Gram matrix
//                       G = YᵀY (l x l, column-major; its lower triangle is read) to R⁻¹ with G = RᵀR, R = Lᵀ upper
//                       triangular (column-major, zeros below the diagonal), and a status word (kStatus* below).
//                       Right-looking Cholesky G = L Lᵀ and, in the same sweep, the inverse X = L⁻¹ by elimination
//                       on [L | I]: step k takes column k of L (L[i][k] = S[i][k] / sqrt(S[k][k])) and row k of X
//                       (X[k][c] = S[k][c] / L[k][k]), then every later row i updates its Schur complement
//                       (S[i][j] -= L[i][k] L[j][k], j > k) and its X part (S[i][j] -= L[i][k] X[k][j], j <= k).
//                       One packed lower triangle in shared memory holds both (X fills the columns Cholesky has
//                       finished with), so R⁻¹ = Xᵀ comes out in place. First pass (`first_pass` = 1): a pivot
//                       with S[k][k] <= 64 u G[k][k] (a column dependent at f32 precision) restarts the
//                       factorization on G + s I, s = 8 (sqrt(rows) + l) u tr(G) (shifted CholeskyQR, Fukaya et
//                       al. 2020; status kStatusShifted). A later pass checks instead that max |G - I| <= 1e-2
//                       (kStatusNotNearIdentity otherwise: the two passes did not make Y orthonormal). A pivot
//                       that is not positive and finite ends it (kStatusFailed, R⁻¹ = I so the queued products
//                       stay finite); the host then reruns the whole factorization on its guarded path.
//                       Launch: one block of 1024 threads, dynamic shared memory (l (l + 1) / 2 + 3 l) floats
//                       (l <= 320: 205 KB). Floor: l sequential steps of 2 barriers each and ~l³/3 FMAs in shared
//                       memory (l = 138: 0.9 M FMAs, ~10-20 us of latency; the l² words in and out are nothing).
//                       A step's latency is its busiest warp's rows (up to ~5 at l = 138), each one round of
//                       shared-memory loads per 128 elements (4 per lane loaded before any is stored: 8 LDS in
//                       flight, then 4 FFMA and 4 STS in SASS) rather than one round trip per element.
//   rsvd_gram_check_f32: status[slot] = kStatusNotNearIdentity if some column has
//                       sum_i |G[i][j] - delta_ij| > 1/2 (NaN included), else 0, for the l x l column-major G of a
//                       power-iteration basis after its one CholeskyQR pass. The column sums bound every eigenvalue
//                       of G inside [1/2, 3/2] (Gershgorin), so an accepted basis has cond <= sqrt(3): it spans what
//                       Y spanned and carries it to the next product as well as an orthonormal basis would. That is
//                       all such a basis needs; until 2026-11-28 every element also had to be within 1e-2 (the
//                       second pass's entry test), which refused bases the column sums accept (f32 simulation,
//                       sigma_i = i^-1.5 at l = 138: max 1.6e-2, column sums <= 0.32) and sent the call to the host
//                       path. Launch: one block of 1024 threads, a warp per column. Floor: l² words read once
//                       (l = 138: 76 KB), one barrier.
//   rsvd_near_identity_step_f32: a later CholeskyQR pass's l x l step when its G is already near I: with
//                       E = G - I and ||E||_F^2 <= 2^-24 (summed in a fixed order: every thread of the block takes
//                       the same decision, bit for bit run to run), x = I - E / 2 (one fmaf per element) and
//                       status[slot] = kStatusNearIdentityStep; else nothing written to x and status[slot] = 0.
//                       X G X = I - (3/4) E² + (1/4) E³ (E symmetric), within (3/4) 2^-24 ~ 4.5e-8 of I before
//                       X's own rounding: the orthonormality a Cholesky pass would leave, without one. The factor
//                       kernels, launched next on the same x and slot (a later pass), return at once when they
//                       find the bit (step_already_taken). Why it nearly always applies: after the power
//                       iteration a basis's columns are graded by the spectrum, and one f32 CholeskyQR pass
//                       leaves such a basis orthonormal to ~1e-6, not the u cond² of an ungraded one (src/rsvd.rs
//                       near_identity_step). Launch: one block of 1024 threads, a warp per column.
//                       Floor: l² words read twice (the second from L1/L2) and written once (l = 138: 76 KB
//                       each), one barrier: a few µs, against the factor kernel's 40 µs (H200, l = 138).
//   rsvd_cholqr_factor_tiles_f32: rsvd_cholqr_factor_f32 for l <= 160, blocked in 32 x 32 tiles (cholqr_factor_tiles
//                       below: right-looking block Cholesky with block Gauss-Jordan for the inverse, one warp per
//                       diagonal factor, solve or product): the same outputs up to rounding (another summation order),
//                       one block of 512 threads, up to 84.6 KB of shared memory, ~19 us at l = 138 by its count.
//   rsvd_sum_slices_f32: the partial Gram matrices of row chunks summed in order (below); also the three slices
//                       of a split product (rsvd_split_bf16x3).
//   rsvd_split_bf16x3:  X (f32) = X1 + X2 + X3 exactly, three bf16 slices, for the products with A on bf16 tensor
//                       cores (below); rsvd_split_a_<f32|f16>: A's exact bf16 slices for the same products.
//   rsvd_gemm_bf16:     rsvd_gemm_f32 with bf16 A and B (the emulator's engine for those products).
//   rsvd_widen_f32:     an f32 matrix to f64 (the benchmark's eigensolver calls; below).
//   rsvd_small_gram_f64, rsvd_small_vectors_f64, rsvd_small_check_f64: the small SVD's products and checks around
//                       the eigensolver, in f64 on the device (below).
#include "common.cuh"

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kGemmTile = 16;
constexpr unsigned kFactorThreads = 1024;
constexpr unsigned kFactorWarps = kFactorThreads / 32;
constexpr unsigned kFactorBatch = 4;  // elements of a row per lane per round of factor_sweep's update

// Status bits of rsvd_cholqr_factor_f32 (src/rsvd.rs reads the same values).
constexpr unsigned kStatusShifted = 1u;
constexpr unsigned kStatusFailed = 2u;
constexpr unsigned kStatusNotNearIdentity = 4u;
// rsvd_near_identity_step_f32 took a second pass's l x l step (the factor kernel after it returns at once).
constexpr unsigned kStatusNearIdentityStep = 8u;
// ||G - I||_F^2 up to which that step applies: ||G - I||_F <= 2^-12, so X = I - (G - I) / 2 leaves
// ||X G X - I||_2 <= (3/4) 2^-24 + ... ~ 4.5e-8 (file comment), below the f32 rounding of the Gram itself.
constexpr float kNearIdentityMaxFrobenius2 = 0x1p-24f;
constexpr float kU32Roundoff = 5.960464477539063e-8f;

// Philox4x32 round constants (Salmon et al., SC'11).
constexpr unsigned kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr unsigned kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

#ifdef SLR_FAULT_PHILOX_ROUNDS
constexpr int kPhiloxRounds = 9;  // planted fault for the emulator's mutation test: one round short
#else
constexpr int kPhiloxRounds = 10;
#endif

struct U4 {
    unsigned x[4];
};

__device__ __forceinline__ U4 philox4x32(U4 c, unsigned k0, unsigned k1) {
    for (int round = 0; round < kPhiloxRounds; ++round) {
        unsigned hi0 = __umulhi(kPhiloxM0, c.x[0]), lo0 = kPhiloxM0 * c.x[0];
        unsigned hi1 = __umulhi(kPhiloxM1, c.x[2]), lo1 = kPhiloxM1 * c.x[2];
        U4 n;
        n.x[0] = hi1 ^ c.x[1] ^ k0;
        n.x[1] = lo1;
        n.x[2] = hi0 ^ c.x[3] ^ k1;
        n.x[3] = lo0;
        c = n;
        k0 += kPhiloxW0;
        k1 += kPhiloxW1;
    }
    return c;
}

// A uniform in (0, 1): the top 24 bits, centred in their interval (exact in f32).
__device__ __forceinline__ float uniform_open(unsigned w) {
    return fmaf(static_cast<float>(w >> 8), 0x1p-24f, 0x1p-25f);
}

// ln(u) for u in (0, 1]: u = 2^e * m with m in [sqrt(1/2), sqrt(2)), ln(m) = 2 atanh(s), s = (m - 1) / (m + 1),
// by its series to s^11 (|s| <= 0.172: truncation below 1e-10). Only +, *, / and fmaf: the same bits on both sides.
__device__ __forceinline__ float log_unit(float u) {
    unsigned bits = __float_as_uint(u);
    int e = static_cast<int>(bits >> 23) - 127;
    float m = __uint_as_float((bits & 0x7fffffu) | 0x3f800000u);
    if (m > 1.41421356f) {
        m = m * 0.5f;
        e += 1;
    }
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float s2 = s * s;
    float p = fmaf(s2, 1.0f / 11.0f, 1.0f / 9.0f);
    p = fmaf(s2, p, 1.0f / 7.0f);
    p = fmaf(s2, p, 1.0f / 5.0f);
    p = fmaf(s2, p, 1.0f / 3.0f);
    float t = s2 * p;
    float two_s = 2.0f * s;
    float ln_m = fmaf(two_s, t, two_s);
    return fmaf(static_cast<float>(e), 0.693147182f, ln_m);
}

// (cos, sin) of an angle uniform on a full turn: quadrant q from the top 2 bits of w, x in [-pi/4, pi/4) from the
// next 24; Taylor polynomials to x^10 / x^9 (truncation below 3e-9), rotated by q quarter turns.
__device__ __forceinline__ void cos_sin_turn(unsigned w, float& c, float& s) {
    unsigned q = w >> 30;
    float v = fmaf(static_cast<float>((w >> 6) & 0xffffffu), 0x1p-24f, 0x1p-25f - 0.5f);
    float x = v * 1.57079637f;
    float z = x * x;
    float ps = fmaf(z, 1.0f / 362880.0f, -1.0f / 5040.0f);
    ps = fmaf(z, ps, 1.0f / 120.0f);
    ps = fmaf(z, ps, -1.0f / 6.0f);
    float xz = x * z;
    float sn = fmaf(xz, ps, x);
    float pc = fmaf(z, -1.0f / 3628800.0f, 1.0f / 40320.0f);
    pc = fmaf(z, pc, -1.0f / 720.0f);
    pc = fmaf(z, pc, 1.0f / 24.0f);
    pc = fmaf(z, pc, -0.5f);
    float cs = fmaf(z, pc, 1.0f);
    switch (q) {
        case 0: c = cs; s = sn; break;
        case 1: c = -sn; s = cs; break;
        case 2: c = -cs; s = -sn; break;
        default: c = sn; s = -cs; break;
    }
}

// Two standard normals from two words (Box-Muller).
__device__ __forceinline__ void box_muller(unsigned w0, unsigned w1, float& z0, float& z1) {
    float r = sqrtf(-2.0f * log_unit(uniform_open(w0)));
    float c, s;
    cos_sin_turn(w1, c, s);
    z0 = r * c;
    z1 = r * s;
}

__device__ __forceinline__ void gaussian_impl(float* __restrict__ out, unsigned long long count, unsigned seed_lo,
                                              unsigned seed_hi) {
    unsigned long long g = static_cast<unsigned long long>(blockIdx.x) * kThreads + threadIdx.x;
    unsigned long long first = g * 4;
    if (first >= count) return;
    U4 ctr;
    ctr.x[0] = static_cast<unsigned>(g);
    ctr.x[1] = static_cast<unsigned>(g >> 32);
    ctr.x[2] = 0;
    ctr.x[3] = 0;
    U4 w = philox4x32(ctr, seed_lo, seed_hi);
    float z[4];
    box_muller(w.x[0], w.x[1], z[0], z[1]);
    box_muller(w.x[2], w.x[3], z[2], z[3]);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (first + j < count) out[first + j] = z[j];
    }
}

__device__ __forceinline__ bool nonfinite(float v) {
    return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u;
}

// *count += add, saturating at 2^32 - 1 (A may hold 2^32 non-finite entries or more: a 65536 x 65536 f16 of NaNs,
// whose count wrapped to 0 until 2026-11-29). An add that wraps resets the word to 2^32 - 1 after it; every later
// add then wraps too and resets it again, so once any add has wrapped the word ends at 2^32 - 1 whatever the order,
// and otherwise it is the exact sum: min(sum, 2^32 - 1).
__device__ __forceinline__ void add_count_saturating(unsigned* count, unsigned add) {
    const unsigned old = atomicAdd(count, add);
    if (old > 0xffffffffu - add) atomicExch(count, 0xffffffffu);
}

template <typename T>
__device__ __forceinline__ void to_f32_impl(const T* __restrict__ src, unsigned long long outer,
                                            unsigned long long inner, unsigned long long ld,
                                            float* __restrict__ dst, unsigned* __restrict__ nonfinite_count) {
    unsigned mine = 0;
    for (unsigned long long o = blockIdx.x; o < outer; o += gridDim.x) {
        for (unsigned long long k = threadIdx.x; k < inner; k += kThreads) {
            float v = slr::to_f32(src[o * ld + k]);
            mine += nonfinite(v) ? 1u : 0u;
            if (dst != nullptr) dst[o * inner + k] = v;
        }
    }
    mine = slr::warp_sum(mine);
    if (threadIdx.x % 32 == 0 && mine != 0) add_count_saturating(nonfinite_count, mine);
}

// v as TF32: the 13 low mantissa bits cleared (rounded toward zero, the larger of the two errors TF32 conversions
// make; src/rsvd.rs `to_tf32` is the same on the host).
__device__ __forceinline__ float tf32_truncate(float v) { return __uint_as_float(__float_as_uint(v) & 0xffffe000u); }

__device__ __forceinline__ void gemm_impl(unsigned m, unsigned n, unsigned k, float alpha,
                                          const float* __restrict__ a, unsigned long long a_rs,
                                          unsigned long long a_cs, const float* __restrict__ b,
                                          unsigned long long b_rs, unsigned long long b_cs, float beta,
                                          float* __restrict__ c, unsigned long long c_rs, unsigned long long c_cs,
                                          bool tf32_inputs) {
    unsigned j = blockIdx.x * kGemmTile + threadIdx.x;
    unsigned i = blockIdx.y * kGemmTile + threadIdx.y;
    if (i >= m || j >= n) return;
    float acc = 0.0f;
    for (unsigned p = 0; p < k; ++p) {
        float x = a[i * a_rs + p * a_cs], y = b[p * b_rs + j * b_cs];
        if (tf32_inputs) {
            x = tf32_truncate(x);
            y = tf32_truncate(y);
        }
        acc = fmaf(x, y, acc);
    }
    float* out = c + (i * c_rs + j * c_cs);
#ifdef SLR_FAULT_GEMM_READS_C  // planted fault for the emulator's mutation test: C read at beta = 0 (it may be garbage)
    *out = fmaf(alpha, acc, beta * *out);
#else
    *out = beta == 0.0f ? alpha * acc : fmaf(alpha, acc, beta * *out);
#endif
}

// gemm_impl with bf16 factors: every product of two bf16 values is exact in f32 (8 x 8 significand bits), so this
// is the emulator's model of cuBLAS's bf16 x bf16 -> f32 products (a plain fmaf chain in k order; the tensor
// cores' accumulation order and rounding inside a k block are not modelled, only agreed with within a tolerance).
__device__ __forceinline__ void gemm_bf16_impl(unsigned m, unsigned n, unsigned k,
                                               const __nv_bfloat16* __restrict__ a, unsigned long long a_rs,
                                               unsigned long long a_cs,
                                               const __nv_bfloat16* __restrict__ b, unsigned long long b_rs,
                                               unsigned long long b_cs, float* __restrict__ c,
                                               unsigned long long c_rs, unsigned long long c_cs, float beta) {
    unsigned j = blockIdx.x * kGemmTile + threadIdx.x;
    unsigned i = blockIdx.y * kGemmTile + threadIdx.y;
    if (i >= m || j >= n) return;
    float acc = 0.0f;
    for (unsigned p = 0; p < k; ++p) {
        acc = fmaf(slr::to_f32(a[i * a_rs + p * a_cs]), slr::to_f32(b[p * b_rs + j * b_cs]), acc);
    }
    float* out = c + (i * c_rs + j * c_cs);
    *out = beta == 0.0f ? acc : fmaf(beta, *out, acc);
}

// x = hi + mid + lo exactly, with hi = rn_bf16(x), mid = rn_bf16(x - hi), lo = x - hi - mid. Why exact: for a
// normal f32 x with exponent e (ulp 2^(e-23)), x - hi is a multiple of 2^(e-23) of magnitude <= 2^(e-8) (half a
// bf16 ulp), so it is exact in f32 (<= 16 significant bits); after mid takes its leading 8 bits the remainder is a
// multiple of 2^(e-23) below 2^(e-16): at most 8 significant bits, so lo holds it exactly too. (bf16 has f32's
// exponent range; only |x| within a bf16 ulp of FLT_MAX overflows hi, and then the products are not finite either
// way.) An f16 x has 11 significand bits, so its lo is 0.
struct Bf16Split {
    __nv_bfloat16 hi, mid, lo;
};
__device__ __forceinline__ Bf16Split split_bf16x3(float x) {
    Bf16Split p;
    p.hi = __float2bfloat16_rn(x);
    const float rest = x - __bfloat162float(p.hi);
    p.mid = __float2bfloat16_rn(rest);
    p.lo = __float2bfloat16_rn(rest - __bfloat162float(p.mid));
    return p;
}

// X's slices for the split product, smallest first so that rsvd_sum_slices_f32 adds the products' small parts
// before the large one: out[i] = lo, out[count + i] = mid, out[2 count + i] = hi.
__device__ __forceinline__ void split_bf16x3_impl(const float* __restrict__ x, unsigned long long count,
                                                  __nv_bfloat16* __restrict__ out) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)kThreads + threadIdx.x; i < count;
         i += (unsigned long long)gridDim.x * kThreads) {
        const Bf16Split p = split_bf16x3(x[i]);
        out[2 * count + i] = p.hi;
        out[count + i] = p.mid;
        out[i] = p.lo;
    }
}

// A's slices (T = f32: 3, f16: 2, whose third piece is always 0), largest first, each packed in A's storage order
// and `stride` elements apart (>= outer * inner; src/rsvd.rs rounds it up to 16 bytes so every slice starts
// aligned for the tensor cores' vector loads): out[s * stride + o * inner + k] = piece s of src[o * ld + k]. Same
// traversal as to_f32_impl; with nonfinite_count (not null) it also adds A's non-finite entries there, as
// to_f32_impl does, so that a split A is read once (the count-only pass it replaces read it a second time).
template <typename T, unsigned Slices>
__device__ __forceinline__ void split_a_impl(const T* __restrict__ src, unsigned long long outer,
                                             unsigned long long inner, unsigned long long ld,
                                             unsigned long long stride, __nv_bfloat16* __restrict__ out,
                                             unsigned* __restrict__ nonfinite_count) {
    const unsigned long long count = stride;
    unsigned mine = 0;
    for (unsigned long long o = blockIdx.x; o < outer; o += gridDim.x) {
        for (unsigned long long k = threadIdx.x; k < inner; k += kThreads) {
            const float v = slr::to_f32(src[o * ld + k]);
            mine += nonfinite(v) ? 1u : 0u;
            const Bf16Split p = split_bf16x3(v);
            const unsigned long long at = o * inner + k;
            out[at] = p.hi;
            out[count + at] = p.mid;
            if (Slices == 3) out[2 * count + at] = p.lo;
        }
    }
    if (nonfinite_count == nullptr) return;
    mine = slr::warp_sum(mine);
    if (threadIdx.x % 32 == 0 && mine != 0) add_count_saturating(nonfinite_count, mine);
}

// Packed lower triangle, row by row: row i starts at tri(i), element (i, j) for j <= i at tri(i) + j.
__device__ __forceinline__ unsigned tri(unsigned i) { return i * (i + 1) / 2; }

// s <- G's lower triangle (packed; G column-major, G[i][j] at g[i + j * l]) plus `shift` on the diagonal, and
// diag[i] <- G[i][i] unshifted. One warp per column, lanes down it (coalesced reads). Ends with a barrier; returns,
// the same in every thread, whether some |G[i][j] - delta_ij| (lower triangle) exceeds 1e-2 or is NaN.
__device__ __forceinline__ bool factor_load(const float* __restrict__ g, unsigned l, float shift, float* s,
                                            float* diag) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bool far = false;
    for (unsigned j = warp; j < l; j += kFactorWarps) {
        for (unsigned i = j + lane; i < l; i += 32) {
            float v = g[i + (unsigned long long)j * l];
            far |= !(fabsf(v - (i == j ? 1.0f : 0.0f)) <= 1e-2f);
            if (i == j) {
                diag[i] = v;
                v += shift;
            }
            s[tri(i) + j] = v;
        }
    }
    return __syncthreads_or(far) != 0;
}

// Sum of diag[0..l) in a fixed order (per-thread strided sums, warp butterflies, warps in order): the same value
// in every thread.
template <unsigned Threads>
__device__ __forceinline__ float block_trace(const float* diag, unsigned l) {
    __shared__ float partial[Threads / 32];
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float t = 0.0f;
    for (unsigned i = threadIdx.x; i < l; i += Threads) t += diag[i];
    t = slr::warp_sum(t);
    if (lane == 0) partial[warp] = t;
    __syncthreads();
    float total = 0.0f;
    for (unsigned w = 0; w < Threads / 32; ++w) total += partial[w];
    return total;
}

// The sweep of rsvd_cholqr_factor_f32 over the packed s (file comment): afterwards s holds X = L⁻¹. `col` and
// `row` (l floats each) carry column k of L and row k of X from one phase to the next. Returns false, in every
// thread together (all read the same pivot after a barrier), at the first pivot that is not positive and finite
// or, with `guard`, not above 64 u G[k][k].
__device__ __forceinline__ bool factor_sweep(float* s, float* col, float* row, const float* diag, unsigned l,
                                             bool guard) {
    const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    for (unsigned k = 0; k < l; ++k) {
        const unsigned rk = tri(k);
        const float piv = s[rk + k];
        if (!(piv > 0.0f && piv <= 3.402823466e38f) || (guard && !(piv > 64.0f * kU32Roundoff * diag[k]))) {
            return false;
        }
        const float inv = 1.0f / sqrtf(piv);
        // Phase A: column k of L and row k of X into the buffers (s is only read).
        for (unsigned i = k + 1 + tid; i < l; i += kFactorThreads) col[i] = s[tri(i) + k] * inv;
        for (unsigned c = tid; c < k; c += kFactorThreads) row[c] = s[rk + c] * inv;
        if (tid == 0) row[k] = inv;
#ifndef SLR_FAULT_CHOLQR_PHASE_SYNC  // planted fault for the emulator's mutation test: phase B reads stale buffers
        __syncthreads();
#endif
        // Phase B: row k of X stored; every later row i updates its own elements only.
        for (unsigned c = tid; c <= k; c += kFactorThreads) s[rk + c] = row[c];
        for (unsigned i = k + 1 + warp; i < l; i += kFactorWarps) {
            const unsigned ri = tri(i);
            const float li = col[i];
            // Row i, j = 0..i: the X part (j < k, row k of X), X[i][k] starting from -0 (L[i][k] consumed: the
            // product alone, sign included), the Schur part (j > k, column k of L). kFactorBatch elements per lane
            // per round, all loaded before any is stored, so their shared-memory round trips overlap (a loop of
            // one element per iteration waits out each load in turn: the stores may alias the loads for all the
            // compiler knows).
            for (unsigned j0 = lane; j0 <= i; j0 += 32 * kFactorBatch) {
                float old[kFactorBatch], mult[kFactorBatch];
#pragma unroll
                for (unsigned q = 0; q < kFactorBatch; ++q) {
                    const unsigned j = j0 + 32 * q;
                    old[q] = j == k || j > i ? -0.0f : s[ri + j];
                    mult[q] = j > i ? 0.0f : j <= k ? row[j] : col[j];
                }
#pragma unroll
                for (unsigned q = 0; q < kFactorBatch; ++q) {
                    const unsigned j = j0 + 32 * q;
                    if (j <= i) s[ri + j] = fmaf(-li, mult[q], old[q]);
                }
            }
        }
        __syncthreads();
    }
    return true;
}

// rsvd_cholqr_factor_tiles_f32 (l <= 160): the factorization and inverse of rsvd_cholqr_factor_f32, blocked in
// 32 x 32 tiles so that a block column costs a few thousand instructions of a few warps instead of 32 column steps
// of every thread (the per-column sweeps issue ~1.6 µs of shared-memory or predicated register instructions per
// column on an H200: ~0.24 ms per call at l = 138).
//
// Math (upper form: G = RᵀR, R = Lᵀ, Y = R⁻¹). G is padded to N = 32 M (M = ⌈l / 32⌉ <= 5) with the identity, so
// the padded rows and columns of R and Y stay those of I (their off-diagonal entries exactly 0) and the valid part
// never reads them; only the upper block triangle is stored: position (i, j), i <= j. Block step k = 0 .. M-1:
//   D(k)  R_kk = chol(S_kk) (S: G's Schur complement) by one warp, 32 pivot steps in registers (factor_block), the
//         pivot test and guard of factor_sweep on each pivot; R_kk and 1 / diag(R_kk) into `rkk` / `rkk_inv`;
//         then the same warp solves Y_kk = R_kk⁻¹ (x R_kk = e_r per row r; solve_block);
//   P(k)  one warp per other block of block row / column k, a triangular solve against R_kk (solve_block):
//           R_kj = R_kk⁻ᵀ S_kj              (j > k: block row k of R, into `rrow`),
//           Y_ck = T_ck R_kk⁻¹              (c < k: block column k of Y, from its accumulated T_ck below);
//   U(k)  32 x 32 x 32 products (subtract_products), two per warp where they share B = R_ki:
//           S_ij -= R_kiᵀ R_kj              (k < i <= j: the trailing update),
//           T_ki  = -Y_kk R_ki              (i > k: starts block row k of the Y part),
//           T_ci -= Y_ck R_ki               (c < k < i),
//         so that T_ci = -Σ_{c<=k<i} Y_ck R_ki when P(i) finalizes Y_ci = T_ci R_ii⁻¹ (from Y R = I: block (c, i)).
// This is blocked Gauss-Jordan on [R | I], the block form of factor_sweep's elimination, with the same
// multiply-adds in the same order (a block's products sum over p ascending as the column steps do; on the
// emulator, whose rsqrtf is exact, the outputs are the packed kernel's bit for bit). Y fills the positions whose
// R blocks are consumed. Phases between barriers: A(k) = U(k - 1) with D(k) (warp 0 first does the last trailing
// update of block (k, k), then factors it: look-ahead, D(k) runs under the other products), then P(k).
//
// Layout (dynamic shared memory, floats): M (M + 1) / 2 positions of 32 x 33 (S and R blocks row-major with
// stride 32, rows 16-byte aligned for broadcast float4 loads; T and Y blocks with stride 33, so that a row per
// lane and a column per lane are both free of bank conflicts), `rrow` (M - 1 blocks of 32 x 32: block row k of
// R during step k, so that U(k) can write T_ki where S_ki was), `rkk` (32 x 32), `rkk_inv` (32) and `diag` (32 M:
// G's unshifted diagonal, 0 for padding): 84.6 KB at M = 5, under sm_86/89's 99 KB. Every lane access is a
// broadcast (all lanes one address), a row of a stride-33 block or a column of either: no bank conflicts.
//
// Launch: one block of kTileThreads = 512 threads. 16 warps: the largest step, A(1) at M = 5, has warp 0's product
// and factor plus 7 pairs; 512 threads leave 128 registers per thread for a pair's 64 accumulators (ptxas 13.0:
// 128 used, no spills, on sm_80/86/89/90).
// Floor and cost (l = 138, M = 5; instruction counts from the sm_90 SASS): 56 k warp FFMAs in all (40 products of
// 1024, 25 solves of 496, 5 factors of 527: 14 k cycles of the SM's four schedulers if perfectly spread). A product
// is 1346 instructions (1024 FFMA, 256 broadcast LDS.128), a pair 2443, a solve ~900 (496 FFMA, 128 LDS.128), a
// diagonal factor 1382 (527 FFMA, 32 SHFL, 32 MUFU.RSQ) but latency-bound (~65 cycles per pivot: shuffle, rsqrt's
// denormal test, MUFU.RSQ, FMUL, FFMA: ~2.1 k cycles). The shared-memory pipe returns ~one register per lane and
// cycle (a broadcast LDS.128 ~2 cycles, by measurements on sm_70-75). Per phase, the most loaded scheduler, the
// pipe or warp 0's product + factor + solve: A(0..4) ~3.0, 6.2, 5.4, 5.2, 4.4 k cycles; P(k) ~1.45 k (four solves'
// pipe cycles) x 5; the loads (~630 instructions per warp, one L2 round trip) ~3 k, the stores (~510) ~2 k, 11
// barriers ~1 k: ~37 k cycles, ~19 µs at 1.98 GHz (unmeasured).
//
// Wide sketches (rsvd_cholqr_factor_tiles9_f32, 160 < l <= 288, M <= 9; sm_90 only: 222.9 KB of shared memory at
// M = 9, under its 227 KB): the same code with two changes that the M <= 5 kernel compiles away. Phase A has up to
// 23 helper jobs (M = 9, k = 1) for 15 helper warps, so a helper takes jobs t, t + 15, ... (two rounds; one at
// M <= 5), and the load's groups of 15 positions (30 registers of loads in flight, one L2 round trip per group) are
// three at M = 9, one at M <= 5. Floor at M = 9: ~290 k warp FFMAs (244 products of 1024, 72 solves of 496, 9
// factors of 527), ~73 k cycles of the SM's four schedulers, ~37 µs; the bytes (G read, R⁻¹ written: 2 l² x 4 B,
// 0.57 MB at l = 266) are negligible. Cost at l = 266 (M = 9; estimate, the M = 5 one was 2.1x low): 122 pairs of products
// (~75 k cycles of issue over four schedulers), 9 diagonal factors (~19 k), 9 P phases of 8 solves (~26 k), loads
// and stores (~15 k): ~135 k cycles, ~70 µs at 1.98 GHz; the packed kernel's column sweep takes ~l³ shared-memory
// work (0.21 ms measured at l = 138, so ~0.8-1.5 ms at l = 266 by l² to l³ scaling), eight calls per rSVD.
constexpr unsigned kTileThreads = 512;
constexpr unsigned kTileWarps = kTileThreads / 32;
constexpr unsigned kTileMaxBlocks = 5;      // rsvd_cholqr_factor_tiles_f32: M <= 5, l <= 160 (src/rsvd.rs FACTOR_TILES_MAX_L)
constexpr unsigned kTileWideMaxBlocks = 9;  // rsvd_cholqr_factor_tiles9_f32: M <= 9, l <= 288 (FACTOR_TILES_WIDE_MAX_L)
constexpr unsigned kTileLoadGroup = 15;     // positions loaded before any is stored (M = 5: all of them)
constexpr unsigned kSStride = 32;          // S and R blocks: row-major, 16-byte aligned rows
constexpr unsigned kYStride = 33;          // T and Y blocks: conflict-free rows and columns per lane
constexpr unsigned kPositionFloats = 32 * kYStride;
constexpr unsigned kBlockFloats = 32 * kSStride;

// The carve of the dynamic shared memory (src/rsvd.rs `tiles_shared_bytes` computes the same size).
struct TileShared {
    float* positions;  // position (i, j), i <= j, at j (j + 1) / 2 + i
    float* rrow;       // R_kj (j > k) at slot j - 1
    float* rkk;
    float* rkk_inv;
    float* diag;
    unsigned m;

    __device__ __forceinline__ explicit TileShared(float* smem, unsigned l) : m((l + 31) / 32) {
        positions = smem;
        rrow = positions + m * (m + 1) / 2 * kPositionFloats;
        rkk = rrow + (m - 1) * kBlockFloats;
        rkk_inv = rkk + kBlockFloats;
        diag = rkk_inv + 32;
    }
    // Blocks as float offsets from `positions` (selected as integers, so that the pointers made from them stay
    // shared-memory pointers: a select among pointers turned them generic, LD/ST instead of LDS/STS).
    __device__ __forceinline__ unsigned pos_at(unsigned i, unsigned j) const { return (j * (j + 1) / 2 + i) * kPositionFloats; }
    __device__ __forceinline__ unsigned r_row_at(unsigned j) const { return (m * (m + 1) / 2) * kPositionFloats + (j - 1) * kBlockFloats; }
    __device__ __forceinline__ float* at(unsigned offset) const { return positions + offset; }
    __device__ __forceinline__ float* pos(unsigned i, unsigned j) const { return at(pos_at(i, j)); }
    __device__ __forceinline__ float* r_row(unsigned j) const { return at(r_row_at(j)); }
};

// v[e] <- this lane's row of a stride-33 block (rows33: t[lane * 33 + e]) or its column of a stride-32 one
// (t[e * 32 + lane]). Immediate offsets: 32 LDS, conflict-free either way.
__device__ __forceinline__ void lane_load(float (&v)[32], const float* t, bool rows33) {
    const unsigned lane = threadIdx.x % 32;
    if (rows33) {
#pragma unroll
        for (unsigned e = 0; e < 32; ++e) v[e] = t[lane * kYStride + e];
    } else {
#pragma unroll
        for (unsigned e = 0; e < 32; ++e) v[e] = t[e * kSStride + lane];
    }
}

__device__ __forceinline__ void lane_store(const float (&v)[32], float* t, bool rows33) {
    const unsigned lane = threadIdx.x % 32;
    if (rows33) {
#pragma unroll
        for (unsigned e = 0; e < 32; ++e) t[lane * kYStride + e] = v[e];
    } else {
#pragma unroll
        for (unsigned e = 0; e < 32; ++e) t[e * kSStride + lane] = v[e];
    }
}

// Elements 4 q .. 4 q + 3 of a 16-byte aligned row, one broadcast LDS.128 (every lane the same address).
__device__ __forceinline__ float4 row_quad(const float* row, unsigned q) { return slr::load_vec(reinterpret_cast<const float4*>(row) + q); }

__device__ __forceinline__ float quad_at(const float4& v, unsigned e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }

// The pivot test of factor_sweep: positive and finite and above guard_scale G[k][k], guard_scale = 64 u on a first
// pass's first try (the guard), else 0 (gkk unshifted; 0 for a padded index, whose pivot is 1). A scale rather than
// a flag, so that the unrolled diagonal factor is not compiled twice, once per flag value (ptxas did, and spilled).
// Without the guard, 0 G[k][k] is NaN only when G[k][k] is infinite or NaN, and then so is the pivot: the same
// verdict as factor_sweep's.
__device__ __forceinline__ bool pivot_ok(float piv, float gkk, float guard_scale) {
    return piv > 0.0f && piv <= 3.402823466e38f && piv > guard_scale * gkk;
}

// D: S = RᵀR for one 32 x 32 diagonal block by one warp; lane j holds column j of S (a[i] = S[i][j], only i <= j
// is read). Pivot step p: the pivot S[p][p] by shuffle, inv = rsqrt (MUFU.RSQ, within 2 ulp; a denormal pivot is
// scaled first, so inv is finite for every positive finite pivot), row p of R (R[p][j] = S[p][j] inv, 0 left of
// the diagonal) published to rkk[p][*] (one STS per lane, a warp barrier), and every lane's a[q] -= R[p][j] R[p][q]
// for q > p (broadcast float4 reads of row p). The next pivot is lane p + 1's a[p + 1] after that update, taken by
// shuffle from the lane's own R[p][p + 1] (the same fmaf on the same values), so the pivot chain does not wait for
// the row's round trip through shared memory. Writes rkk_inv[p] = inv. Returns false (every lane: the pivot is a
// shuffle) at the first pivot that fails pivot_ok, tested at the end of its step (the row of a failed pivot is
// garbage that the caller discards), so that neither the rsqrt nor the next pivot's shuffle waits for the branch.
// (Not branching at all, with the verdicts and-ed, made ptxas compile the factor twice and spill.) Cost: 1382
// instructions in the sm_90 SASS (527 FFMA, 120 LDS.128, 32 SHFL, 32 MUFU.RSQ), latency-bound at ~65 cycles per
// pivot (shuffle, rsqrt's denormal test, MUFU.RSQ, FMUL, FFMA): ~2.1 k cycles.
__device__ __forceinline__ bool factor_block(float (&a)[32], float* rkk, float* rkk_inv, const float* diag_k, float guard_scale) {
    const unsigned lane = threadIdx.x % 32;
    float my_inv = 0.0f;
    float piv = __shfl_sync(0xffffffffu, a[0], 0);
#pragma unroll
    for (unsigned p = 0; p < 32; ++p) {
        const float inv = rsqrtf(piv);
        const float r = lane >= p ? a[p] * inv : 0.0f;
        if (lane == p) my_inv = inv;
        float* row = rkk + p * kSStride;
        row[lane] = r;
        __syncwarp();
        const bool good = pivot_ok(piv, diag_k[p], guard_scale);
        if (p + 1 < 32) {
            piv = __shfl_sync(0xffffffffu, fmaf(-r, r, a[p + 1]), p + 1);
#pragma unroll
            for (unsigned q4 = (p + 1) / 4; q4 < 8; ++q4) {
                const float4 v = row_quad(row, q4);
#pragma unroll
                for (unsigned e = 0; e < 4; ++e) {
                    const unsigned q = 4 * q4 + e;
                    if (q > p) a[q] = fmaf(-r, quad_at(v, e), a[q]);
                }
            }
        }
        if (!good) return false;
    }
    rkk_inv[lane] = my_inv;
    __syncwarp();  // the warp's own solve (Y_kk) reads every lane's rkk_inv next
    return true;
}

// x R = s for one row x (on entry s, on return x), R = R_kk upper triangular: x[p] = (s[p] - Σ_{q<p} x[q] R[q][p])
// / R[p][p], right-looking (x[p] final, then removed from x[q], q > p). The same loop solves Rᵀ x = s for a
// column. 496 FFMA, 32 FMUL, 128 broadcast LDS.128 of R's rows and 1 / diag(R); a dependent FMUL + FFMA per p.
__device__ __forceinline__ void solve_block(float (&x)[32], const float* rkk, const float* rkk_inv) {
#pragma unroll
    for (unsigned p = 0; p < 32; ++p) {
        x[p] *= quad_at(row_quad(rkk_inv, p / 4), p % 4);
        const float* row = rkk + p * kSStride;
#pragma unroll
        for (unsigned q4 = (p + 1) / 4; q4 < 8; ++q4) {
            const float4 v = row_quad(row, q4);
#pragma unroll
            for (unsigned e = 0; e < 4; ++e) {
                const unsigned q = 4 * q4 + e;
                if (q > p) x[q] = fmaf(-x[p], quad_at(v, e), x[q]);
            }
        }
    }
}

// U: acc[n][q] -= Σ_p own_n[p] B[p][q] for N = 1 or 2 products sharing B, p ascending; own_n[p] =
// own_n[p * step_n] (this lane's row or column of a block), B 32 x 32 row-major (stride 32) read by broadcast. Per
// p: 8 LDS.128 of B's row and N LDS feed 32 N FFMA. The shared-memory pipe returns about one register per lane
// and cycle (a broadcast LDS.128 takes ~2 of its cycles), so a lone product (1024 FFMA, 256 LDS.128) needs ~600 of
// the SM's pipe cycles per ~1.35 k instructions of its scheduler: four schedulers' products would queue on it.
// Two products per warp share B's loads (~700 pipe cycles per 2.6 k instructions). own is read as it is used.
// Fully unrolled: with the p loop rolled (acc's indices depend on q alone) ptxas 13.0 spilled at 128 registers.
template <unsigned N>
__device__ __forceinline__ void subtract_products(float (&acc)[2][32], const float* own0, unsigned step0,
                                                  const float* own1, unsigned step1, const float* b) {
#pragma unroll
    for (unsigned p = 0; p < 32; ++p) {
        const float o[2] = {own0[p * step0], N > 1 ? own1[p * step1] : 0.0f};
#pragma unroll
        for (unsigned q4 = 0; q4 < 8; ++q4) {
            const float4 v = row_quad(b + p * kSStride, q4);
#pragma unroll
            for (unsigned e = 0; e < 4; ++e) {
#pragma unroll
                for (unsigned n = 0; n < N; ++n) acc[n][4 * q4 + e] = fmaf(-o[n], quad_at(v, e), acc[n][4 * q4 + e]);
            }
        }
    }
}

// Position u = j (j + 1) / 2 + i holds block (i, j), i <= j: its row and column for a compile-time u (the loops
// over u below unroll, so every shared-memory address is a thread's base plus an immediate).
__device__ __forceinline__ unsigned position_col(unsigned u) {
    unsigned j = 0;
    while ((j + 1) * (j + 2) / 2 <= u) ++j;
    return j;
}
__device__ __forceinline__ unsigned position_row(unsigned u) { return u - position_col(u) * (position_col(u) + 1) / 2; }
constexpr unsigned kRowsPerThread = 32 / kTileWarps;  // of each block: rows warp and warp + 16

// One element (r, c) = (warp + 16 h, lane) of block (i, j), i <= j, of the padded G: G[32 j + c][32 i + r] from
// G's lower triangle (0 below a diagonal block's diagonal: never read), the identity's where padded.
__device__ __forceinline__ float tiles_element(const float* __restrict__ g, unsigned l, unsigned i, unsigned j, unsigned h) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned r = warp + kTileWarps * h, x = 32 * i + r, y = 32 * j + lane;
    float v = x == y ? 1.0f : 0.0f;  // padding: the identity
    // The thread's base index lane + warp l plus a multiple of 16 l (32-bit: l <= 288, l² < 2^17).
    if ((i < j || lane >= r) && x < l && y < l) v = g[lane + warp * l + 32 * j + (2 * i + h) * (kTileWarps * l)];
    return v;
}

// The position (i, j) value as stored: a diagonal block's entries below its diagonal zeroed, the shift on G's
// valid diagonal; `far` |= the entry is farther than 1e-2 from I's (or NaN).
__device__ __forceinline__ float tiles_entry(float val, unsigned l, unsigned i, unsigned j, unsigned h, float shift, bool& far) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned r = warp + kTileWarps * h, x = 32 * i + r, y = 32 * j + lane;
    if (i == j) {
        val = lane < r ? 0.0f : val;
        far |= !(fabsf(val - (x == y ? 1.0f : 0.0f)) <= 1e-2f);
        if (x == y && x < l) val += shift;
    } else {
        far |= !(fabsf(val) <= 1e-2f);
    }
    return val;
}

// positions <- G (+ shift on the valid diagonal), padded to N = 32 M with the identity: block (i, j), i <= j,
// row-major with stride 32 (entries below a diagonal block's diagonal: 0, unused); diag[x] <- G[x][x] unshifted
// (0 for x >= l). Reads G's lower triangle only: block (i, j) element (r, c) is G[32 j + c][32 i + r], lanes along
// c (coalesced). The positions in groups of kTileLoadGroup = 15, unrolled: a thread's 30 loads of a group (two rows
// of each block) are issued before any of its stores (branch-free predicated code), one round trip to L2 per
// group: one in all at M <= 5 (15 positions), three for the wide kernel at M = 9. Ends with a barrier; returns, in
// every thread, whether some |G[y][x] - delta_xy| (lower triangle) exceeds 1e-2 or is NaN (padding and the zeroed
// entries pass the test).
template <unsigned MaxBlocks>
__device__ __forceinline__ bool tiles_load(const TileShared& s, const float* __restrict__ g, unsigned l, float shift) {
    constexpr unsigned kPositions = MaxBlocks * (MaxBlocks + 1) / 2;
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned d = threadIdx.x;  // l <= 288 < kTileThreads: one diagonal element per thread
    bool far = false;
    float gd = 0.0f;
#pragma unroll
    for (unsigned u0 = 0; u0 < kPositions; u0 += kTileLoadGroup) {
        float v[kTileLoadGroup][kRowsPerThread];
#pragma unroll
        for (unsigned du = 0; du < kTileLoadGroup && u0 + du < kPositions; ++du) {
#pragma unroll
            for (unsigned h = 0; h < kRowsPerThread; ++h) v[du][h] = tiles_element(g, l, position_row(u0 + du), position_col(u0 + du), h);
        }
        if (u0 == 0) gd = d < l ? g[d + d * l] : 0.0f;
#pragma unroll
        for (unsigned du = 0; du < kTileLoadGroup && u0 + du < kPositions; ++du) {
            const unsigned u = u0 + du, i = position_row(u), j = position_col(u);
            if (j >= s.m) break;
#pragma unroll
            for (unsigned h = 0; h < kRowsPerThread; ++h) {
                s.positions[u * kPositionFloats + (warp + kTileWarps * h) * kSStride + lane] = tiles_entry(v[du][h], l, i, j, h, shift, far);
            }
        }
    }
    if (d < 32 * s.m) s.diag[d] = gd;
    return __syncthreads_or(far) != 0;
}

// One product of phase A: block `acc` -= own · B, the lane's vector of it (from 0 without has_acc), stored back
// (warp 0's is not: it factors it). rows33: T/Y products (a row per lane of stride-33 blocks); else S/R products
// (a column per lane of stride-32 blocks). Blocks by offset (TileShared::at).
struct Product {
    unsigned acc, own;
    bool has_acc, has_out, rows33;
};

// A warp's work in phase A: `products` (0, 1 or 2) products sharing B = block `b`.
struct UpdateJob {
    bool valid;
    unsigned products, b;
    Product half[2];
};

// Product w of the group sharing B = R_{k-1,i} in phase A of step k (U(k - 1)), i >= k: first the trailing
// updates S_ij -= R_{k-1,i}ᵀ R_{k-1,j}, j >= i (at i = k from j = k + 1: block (k, k) is warp 0's), then for
// c = 0 .. k-1 T_ci -= Y_{c,k-1} R_{k-1,i}, which starts T_ci (from 0) at c = k - 1.
__device__ __forceinline__ unsigned group_first_j(unsigned k, unsigned i) { return i == k ? k + 1 : i; }
__device__ __forceinline__ unsigned group_size(const TileShared& s, unsigned k, unsigned i) { return s.m - group_first_j(k, i) + k; }
__device__ __forceinline__ Product group_product(const TileShared& s, unsigned k, unsigned i, unsigned w) {
    const unsigned j0 = group_first_j(k, i), trailing = s.m - j0;
    if (w < trailing) {
        return Product{s.pos_at(i, j0 + w), s.r_row_at(j0 + w), true, true, false};
    }
    const unsigned c = w - trailing;
    return Product{s.pos_at(c, i), s.pos_at(c, k - 1), c + 1 != k, true, true};
}

// Job t of phase A of step k: t = 0 is warp 0's, block (k, k) after its last trailing update (none at k = 0), then
// factored (D(k)); t >= 1 pairs the products of each group, groups i = k .. M-1 in order (an odd group's last
// product alone). At M = 5: 7, 6, 4 and 2 helper jobs at k = 1 .. 4.
__device__ __forceinline__ UpdateJob update_job(const TileShared& s, unsigned k, unsigned t) {
    UpdateJob job{};
    if (t == 0) {
        const unsigned own = k > 0 ? s.r_row_at(k) : 0;
        job = UpdateJob{true, k > 0 ? 1u : 0u, own, {}};
        job.half[0] = Product{s.pos_at(k, k), own, true, false, false};
        job.half[1] = job.half[0];
        return job;
    }
    if (k == 0) return job;
    t -= 1;
    for (unsigned i = k; i < s.m; ++i) {
        const unsigned n = group_size(s, k, i), pairs = (n + 1) / 2;
        if (t < pairs) {
            job.valid = true;
            job.products = n - 2 * t >= 2 ? 2 : 1;
            job.b = s.r_row_at(i);
            job.half[0] = group_product(s, k, i, 2 * t);
            job.half[1] = job.products == 2 ? group_product(s, k, i, 2 * t + 1) : job.half[0];
            return job;
        }
        t -= pairs;
    }
    return job;
}

// Helper job index of warps 1 .. 15: six jobs on schedulers 1-3 first (warp w issues on scheduler w % 4), the
// seventh on scheduler 0 beside warp 0, then the rest round the schedulers (warps 1, 2, 3, 5, 6, 7, 4, 9, 10, 11,
// 13, 14, 15, 8, 12). At M = 5 no scheduler gets more than two pairs.
__device__ __forceinline__ unsigned helper_index(unsigned warp) {
    const unsigned a = warp / 4, b = warp % 4;  // (a table indexed by warp would live in local memory)
    return b != 0 ? 3 * a + b - 1 + (a >= 2 ? 1 : 0) : a == 1 ? 6 : 11 + a;
}

// One phase-A job (UpdateJob) of this warp: its products' accumulators loaded (or zeroed), own · B subtracted, the
// results stored back where has_out (warp 0's block (k, k) stays in acc[0] for its factor).
__device__ __forceinline__ void run_update_job(const TileShared& s, const UpdateJob& job, float (&acc)[2][32]) {
    const unsigned lane = threadIdx.x % 32;
#pragma unroll
    for (unsigned h = 0; h < 2; ++h) {
        const Product& pr = job.half[h];
        if (h == 1 && job.products < 2) break;
        if (pr.has_acc) {
            lane_load(acc[h], s.at(pr.acc), pr.rows33);
        } else {
#pragma unroll
            for (unsigned e = 0; e < 32; ++e) acc[h][e] = 0.0f;
        }
    }
    const Product &p0 = job.half[0], &p1 = job.half[1];
    const float* own0 = s.at(p0.own + (p0.rows33 ? lane * kYStride : lane));
    const float* own1 = s.at(p1.own + (p1.rows33 ? lane * kYStride : lane));
    const unsigned step0 = p0.rows33 ? 1 : kSStride, step1 = p1.rows33 ? 1 : kSStride;
    if (job.products == 2) {
        subtract_products<2>(acc, own0, step0, own1, step1, s.at(job.b));
    } else if (job.products == 1) {
        subtract_products<1>(acc, own0, step0, own1, step1, s.at(job.b));
    }
#pragma unroll
    for (unsigned h = 0; h < 2; ++h) {
        if (h < job.products && job.half[h].has_out) lane_store(acc[h], s.at(job.half[h].acc), job.half[h].rows33);
    }
}

// The blocked factorization and inverse (opening comment) over the loaded positions; afterwards position (i, j)
// holds Y_ij with stride 33. Returns false, in every thread together (the failure flag is read after a barrier),
// when some pivot failed pivot_ok.
// Rounds: the helper jobs a warp may take per phase, ⌈(most helper jobs) / 15⌉: 1 for M <= 5 (at most 7 jobs),
// 2 for M <= 9 (at most 23, at k = 1).
template <unsigned Rounds>
__device__ __forceinline__ bool tiles_sweep(const TileShared& s, bool guard) {
    __shared__ unsigned failed;
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, m = s.m;
    const float guard_scale = guard ? 64.0f * kU32Roundoff : 0.0f;
    if (threadIdx.x == 0) failed = 0;
    for (unsigned k = 0; k < m; ++k) {
        // D(k) by warp 0, after the last trailing update of block (k, k) (look-ahead); the rest of U(k - 1) by the
        // other warps, in pairs of products sharing B: helper jobs t, t + 15, ... (jobs are numbered without gaps,
        // so the first invalid one ends a warp's list). Warp 0 keeps its acc[0] for the factor.
        float acc[2][32];
        const UpdateJob job = update_job(s, k, warp == 0 ? 0 : 1 + helper_index(warp));
        if (job.valid) run_update_job(s, job, acc);
        if (Rounds > 1 && warp != 0 && job.valid) {
#pragma unroll 1
            for (unsigned round = 1; round < Rounds; ++round) {
                const UpdateJob more = update_job(s, k, 1 + helper_index(warp) + (kTileWarps - 1) * round);
                if (!more.valid) break;
                run_update_job(s, more, acc);
            }
        }
        if (warp == 0) {
            if (factor_block(acc[0], s.rkk, s.rkk_inv, s.diag + 32 * k, guard_scale)) {
                // Y_kk = R_kk⁻¹ (x R_kk = e_r for row r), into block (k, k), which only this warp reads in this phase.
                float x[32];
#pragma unroll
                for (unsigned e = 0; e < 32; ++e) x[e] = e == lane ? 1.0f : 0.0f;
                solve_block(x, s.rkk, s.rkk_inv);
                lane_store(x, s.pos(k, k), true);
            } else if (lane == 0) {
                failed = 1;
            }
        }
        __syncthreads();
        if (failed) return false;
        // P(k): warps 1 .. M-1 (one per scheduler at M = 5) solve against R_kk, block t != k each:
        // t < k: Y_tk = T_tk R_kk⁻¹ (rows); t > k: R_kt = R_kk⁻ᵀ S_kt (columns).
        if (warp >= 1 && warp < m) {
            const unsigned t = warp - 1 < k ? warp - 1 : warp;
            const bool rows33 = t < k;
            float x[32];
            lane_load(x, rows33 ? s.pos(t, k) : s.pos(k, t), rows33);
            solve_block(x, s.rkk, s.rkk_inv);
            lane_store(x, rows33 ? s.pos(t, k) : s.r_row(t), rows33);
        }
#ifndef SLR_FAULT_CHOLQR_TILES_SYNC  // planted fault for the emulator's mutation test: U reads R and Y blocks early
        __syncthreads();
#endif
    }
    return true;
}

// R⁻¹ = Y (l x l column-major, zeros below the diagonal; I after a failure): element (r, c) of block (I, J) is
// R⁻¹[32 I + r][32 J + c], r by lanes (coalesced stores; a stride-33 block's column: conflict-free reads), c = warp
// and warp + 16; all MaxBlocks² block pairs unrolled, so that a thread's loads are issued together.
template <unsigned MaxBlocks>
__device__ __forceinline__ void tiles_store(const TileShared& s, unsigned l, bool ok, float* __restrict__ r_inv) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll(MaxBlocks > kTileMaxBlocks ? 1 : MaxBlocks)  // the wide kernel: a loop over bi (spills unrolled)
    for (unsigned bi = 0; bi < MaxBlocks; ++bi) {
#pragma unroll
        for (unsigned bj = 0; bj < MaxBlocks; ++bj) {
#pragma unroll
            for (unsigned h = 0; h < kRowsPerThread; ++h) {
                const unsigned c = warp + kTileWarps * h, a = 32 * bi + lane, b = 32 * bj + c;
                if (a < l && b < l) {
                    float v = a == b ? 1.0f : 0.0f;
                    if (bi <= bj && ok && a <= b) v = s.positions[(bj * (bj + 1) / 2 + bi) * kPositionFloats + lane * kYStride + c];
                    r_inv[a + (unsigned long long)b * l] = v;
                }
            }
        }
    }
}

// MaxBlocks: the largest M the instantiation takes (kTileMaxBlocks or kTileWideMaxBlocks); helper rounds from the
// most helper jobs of a phase at that M (7 at M = 5, 23 at M = 9).
template <unsigned MaxBlocks>
__device__ __forceinline__ void cholqr_factor_tiles(const float* __restrict__ g, unsigned l, unsigned rows,
                                                    unsigned first_pass, float* __restrict__ r_inv,
                                                    unsigned* __restrict__ status, unsigned slot) {
    constexpr unsigned kRounds = MaxBlocks <= kTileMaxBlocks ? 1 : 2;  // tiles_sweep's helper rounds
    SLR_DYNAMIC_SMEM(float, smem);
    const TileShared s(smem, l);
    // One loop for the first try and the shifted retry (one copy of the load and the sweep in the code); st is
    // the only value it carries across a sweep.
    unsigned st = 0;
    float shift = 0.0f;
    for (;;) {
        // The wide kernel's load addresses computed here, every try (from an opaque l): hoisted above the loop,
        // they lived through the sweep and spilled. (Not the pointer: through the barrier it became generic.)
        unsigned l_here = l;
        if constexpr (MaxBlocks > kTileMaxBlocks) slr::opaque(l_here);
        const bool far = tiles_load<MaxBlocks>(s, g, l_here, shift);
        if (!first_pass && far) st |= kStatusNotNearIdentity;
        const bool first_try = first_pass && !(st & kStatusShifted);
        if (tiles_sweep<kRounds>(s, first_try)) break;
        if (!first_try) {
            st |= kStatusFailed;
            break;
        }
        shift = 8.0f * (sqrtf((float)rows) + (float)l) * kU32Roundoff * block_trace<kTileThreads>(s.diag, l);
        st |= kStatusShifted;
        if (!(shift > 0.0f && shift <= 3.402823466e38f)) {
            st |= kStatusFailed;
            break;
        }
        __syncthreads();  // every thread has read the failure flag and diag before they are rewritten
    }
    const bool ok = !(st & kStatusFailed);
    unsigned l_out = l;  // the same for the store's addresses
    if constexpr (MaxBlocks > kTileMaxBlocks) slr::opaque(l_out);
    tiles_store<MaxBlocks>(s, l_out, ok, r_inv);
    if (threadIdx.x == 0) status[slot] = st;
}

// ---- The small SVD's symmetric eigenproblem (rsvd_eigh_*_f64: five kernels) ---------------------------------------
// G = Ũ Λ Ũᵀ for the l x l f64 Gram matrix G = R₂ᵀR₂ of the small SVD (l <= kEighMaxL; src/rsvd.rs
// small_svd_device under `SLR_RSVD_SMALL=own`), in place of cuSOLVER's syevd (1.08 ms at l = 138 on the H200, eleventh
// run). Five kernels queued back to back; only the first runs on one block, the other phases are independent per
// eigenvalue or per column and spread over the device:
//  1. rsvd_eigh_tridiag_f64, one block of kEighThreads with G in shared memory: Householder tridiagonalization
//     (lower, as LAPACK's dsytd2): for k = 0 .. l-3 the reflector H_k = I - τ v vᵀ that zeroes A[k+2:, k], then
//     A₂ = A[k+1:, k+1:] ← H_k A₂ H_k as A₂ - v wᵀ - w vᵀ with p = τ A₂ v and w = p - (τ/2)(pᵀv) v, on A₂'s lower
//     triangle only (the product reads the upper half from it). 4/3 l³ flops; shared-memory traffic ~5.3 l³ bytes
//     (A₂ read whole once and its lower half read and written once per step). T (diagonal, off-diagonal), the τs,
//     the reflectors and T's Gershgorin interval go to global scratch. Measured inside the one-block kernel this
//     replaces (H200, 8b963b3): ~7 k clocks per step at l = 138 (~0.5 ms), ~4 k at l = 26: a fixed cost per step
//     (five barriers, the reflector's square root and divisions, serial sums), not its traffic.
//  2. rsvd_eigh_values_f64, a warp per eigenvalue: multisection on Sturm counts (the number of eigenvalues of T
//     below x, as LAPACK's dstebz counts): the 32 lanes count at 32 interior points of the eigenvalue's interval,
//     which shrinks 33-fold per round; kEighValueRounds rounds (33^13 > 2^65) take the Gershgorin interval (width
//     <= 2‖T‖·l + its widening, l <= 160) below ε‖T‖ (absolute accuracy ~ε‖T‖, as dstebz). Each lane runs l steps of
//     one fma on its dependent chain per round: ~13 · l steps of a ~10-20 clock chain, ~20-40 k clocks at l = 138
//     (estimate; the one-block kernel spent ~540 k clocks on 28 rounds of 3 points, ~140 clocks per step, with 13
//     warps sharing one SM's FP64 units).
//  3. rsvd_eigh_vectors_f64, 32 threads per block, one thread per eigenvalue: inverse iteration, Gaussian
//     elimination with partial pivoting of T - λI (as LAPACK's dlagtf; pivots below ε‖T‖ raised to it, as dlagts),
//     kEighIters solves from a pseudo-random start, the factors in the block's shared memory (4 l doubles per
//     thread; the one-block kernel kept them in L2: an L2 round trip per elimination step on the chain, ~2.3 k
//     clocks per step measured). Estimate ~2 · 2 · l steps of a division chain (forward) or two fmas (backward):
//     ~50-100 k clocks at l = 138. Writes Z (T's eigenvectors) into G's place.
//  4. rsvd_eigh_clusters_f64, one block, which returns at once when no two eigenvalues are within
//     kEighCluster·‖T‖ of each other: inverse iteration leaves vectors of eigenvalues closer than ~ε‖T‖/δ off
//     orthogonal by δ, so each such cluster is orthonormalized (Gram-Schmidt in eigenvalue order by the whole
//     block, Z in shared memory), its members solved again in parallel and orthonormalized again (LAPACK's dstein
//     re-solves them one after another instead). Only clustered spectra pay for it.
//  5. rsvd_eigh_back_f64, a warp per column: Ũ = H_0 ⋯ H_{l-3} Z, each block with every reflector in shared
//     memory (packed, ~l²/2 doubles), each warp applying them, last first, to its own column in registers: ~l
//     steps of a warp dot product (5 fmas, 5 shuffles) and an axpy, ~25-35 k clocks at l = 138 (estimate; the
//     one-block kernel took ~900 k clocks, 16 warps with 10 columns each and a reflector loaded from L2 per step).
// Floors at l = 138 (all far below the latency chains above, which are what these kernels' times are made of):
// global traffic ~l² doubles each way for phases 1, 3 and 5 (0.15 MB), less for 2 and 4; flops 4/3 l³ (phase 1),
// ~13 · 32 · l² fmas (2), ~8 l² (3), ~4 c² l per cluster of c (4), 2 l³ (5).
// Output as cusolverDnDsyevd's: Ũ column-major over G (ld = l), λ ascending, info 0. Reads only G's lower triangle.
// Deterministic: fixed reduction orders, no atomics. Scratch (src/rsvd.rs eigh_scratch_doubles): [0, l²) the
// reflectors (reflector k in column k, rows k+1 ..), [l², 5 l²) the cluster kernel's inverse iteration, then T's
// diagonal, off-diagonal and τ (l each) and 4 scalars (Gershgorin interval, pivot guard, ‖T‖): eigh_tri below.
constexpr unsigned kEighThreads = 512;
constexpr unsigned kEighWarps = kEighThreads / 32;
constexpr unsigned kEighMaxL = 160;  // src/rsvd.rs EIGH_MAX_L; shared memory: eigh_*_shared_doubles below
constexpr unsigned kEighValueWarps = 4;      // rsvd_eigh_values_f64: eigenvalues (warps) per block
constexpr unsigned kEighValueRounds = 13;    // 33^13 = 2^65.6 > the Gershgorin width over ε‖T‖ (<= 2^62 for l <= 160)
constexpr unsigned kEighVectorThreads = 32;  // rsvd_eigh_vectors_f64: eigenvalues (threads) per block
constexpr unsigned kEighBackWarps = 4;       // rsvd_eigh_back_f64: columns (warps) per block
constexpr unsigned kEighIters = 2;   // inverse-iteration solves per eigenvector
constexpr double kEighCluster = 1e-6;  // neighbours closer than this times ‖T‖ are iterated as a cluster
constexpr unsigned kEighRowsPerLane = (kEighMaxL + 31) / 32;
static_assert(kEighMaxL <= kEighThreads, "the cluster kernel's thread per eigenvalue");
constexpr double kF64Eps = 1.1102230246251565e-16;  // 2^-53
constexpr double kF64Min = 2.2250738585072014e-308;

// Dynamic shared memory of the kernels that take it, in doubles (src/rsvd.rs eigh_shared_bytes mirrors these).
// rsvd_eigh_tridiag_f64: A (l x ld, ld = l | 1, odd: a column walk by a warp touches distinct bank pairs), the
// product p (kEighMaxL), the warps' parts of pᵀv (kEighWarps) and 8 scalars.
__host__ __device__ constexpr unsigned eigh_tridiag_shared_doubles(unsigned l) {
    return l * (l | 1u) + kEighMaxL + kEighWarps + 8;
}
// rsvd_eigh_vectors_f64: 4 l doubles per thread (the elimination's three rows of U and the right-hand side,
// element i of array a of thread j at (a l + i) 32 + j: consecutive threads, consecutive doubles), then T's diagonal
// and off-diagonal.
__host__ __device__ constexpr unsigned eigh_vectors_shared_doubles(unsigned l) {
    return 4 * l * kEighVectorThreads + 2 * l;
}
// rsvd_eigh_back_f64: the reflectors packed by column (column k's rows k+1 .. l-1 from eigh_packed(k, l)), then the τs.
__host__ __device__ constexpr unsigned eigh_back_shared_doubles(unsigned l) {
    return l * (l - 1) / 2 + l;
}
static_assert(eigh_vectors_shared_doubles(kEighMaxL) * 8 <= 232448 && eigh_back_shared_doubles(kEighMaxL) * 8 <= 232448,
              "sm_90's opt-in limit");
__device__ __forceinline__ unsigned eigh_packed(unsigned k, unsigned l) { return k * (l - 1) - k * (k - 1) / 2; }

// T and its bounds in the scratch, after the reflectors and the cluster kernel's columns.
struct EighTri {
    double* dg;    // T's diagonal (l)
    double* off;   // T's off-diagonal, off[i] = T[i+1][i] (l - 1 used)
    double* tau;   // the reflectors' τ (l; 0 for the last two)
    double* scal;  // Gershgorin interval widened (lo, hi), the pivot guard, ‖T‖
};
__device__ __forceinline__ EighTri eigh_tri(double* scratch, unsigned l) {
    double* base = scratch + 5ull * l * l;
    return {base, base + l, base + 2 * l, base + 3 * l};
}

__device__ __forceinline__ double eigh_warp_sum(double x) {
#pragma unroll
    for (unsigned d = 16; d >= 1; d >>= 1) x += __shfl_xor_sync(0xffffffffu, x, d);
    return x;
}

// The number of eigenvalues of T below x, from T/‖T‖ (diagonal dgn, squared off-diagonal e2n, each at least 2^-120)
// and xn = x/‖T‖: the sign changes along the leading principal minors p_0 = 1, p_i = (dgn_i - xn) p_{i-1} -
// e2n_{i-1} p_{i-2} of T/‖T‖ - xn·I (Sturm; the same count as the negative pivots of its LDLᵀ, as LAPACK's dstebz
// counts, without a division). Signs are the minors' sign bits, compared as integers off the dependent chain, which
// is one fma per step: an exact zero minor p_i (+0 or -0) then counts its sign change one step early or late, and
// p_{i+1} = -e2n_i p_{i-1} is nonzero and of the sign that makes the pair's total right (e2n > 0). The floor on e2n
// (eigh_values: an off-diagonal of at least 2^-60‖T‖, moving eigenvalues by at most that, below ε‖T‖/100) keeps two
// minors in a row from being zero. Every 16 steps both carried minors are rescaled by a power of two (exact), so
// that neither overflows nor underflows (|dgn - xn| <= 3 and e2n <= 1 grow them by at most 2^26 in 16 steps; they
// shrink fast only where xn sits within ~2^-60 of many diagonal entries in a row, as with the zero replacement this
// had before). (Until 2026-11-28 a zero minor was replaced by -2^-60 times the one before: a compare and two selects
// on the chain; phase 2 measured ~140 clocks per step on the H200, 8b963b3.)
__device__ __forceinline__ unsigned eigh_sturm_count(const double* dgn, const double* e2n, unsigned l, double xn) {
    double prev = 1.0, p = dgn[0] - xn;
    unsigned c = (unsigned)__double2hiint(p) >> 31;  // p_0 = 1 is positive
    for (unsigned i = 1; i < l; ++i) {
        const double next = fma(dgn[i] - xn, p, -e2n[i - 1] * prev);
        c += (unsigned)(__double2hiint(next) ^ __double2hiint(p)) >> 31;
        prev = p;
        p = next;
        if ((i & 15u) == 0) {
            int e;
            frexp(p, &e);
            p = ldexp(p, -e);
            prev = ldexp(prev, -e);
        }
    }
    return c;
}

// One inverse-iteration solve (T - λI) x = in_scale · y for column `j` of `f` (element i of array a at
// f[(a * l + i) * stride + j]: a = 0, 1, 2 the rows of U (diagonal, first and second superdiagonal), a = 3 the
// right-hand side y, overwritten with x; shared memory in rsvd_eigh_vectors_f64, global scratch in the cluster kernel). Gaussian elimination with row interchanges (dlagtf), pivots below `tiny` raised to it
// in the back substitution (dlagts with a perturbation). Returns 1 / ‖x‖: x is not rescaled in memory (the next
// solve or the copy into Z applies it as it reads). Each step's loads are issued a step ahead of the division
// chain that uses them.
__device__ __forceinline__ double eigh_inverse_solve(const double* dg, const double* off, unsigned l, double lam,
                                                     double tiny, double* __restrict__ f, unsigned stride,
                                                     unsigned j, double in_scale) {
    auto at = [&](unsigned a, unsigned i) -> double& { return f[((unsigned long long)a * l + i) * stride + j]; };
    double p = dg[0] - lam, q = l > 1 ? off[0] : 0.0, r = 0.0;  // row i's entries at columns i, i + 1, i + 2
    double y = at(3, 0) * in_scale;
    double yn = l > 1 ? at(3, 1) * in_scale : 0.0;  // the next row's right-hand side, loaded a step ahead
    for (unsigned i = 0; i + 1 < l; ++i) {
        const double b = off[i], a1 = dg[i + 1] - lam, c1 = i + 2 < l ? off[i + 1] : 0.0;  // row i + 1
        const double y1 = yn;
        if (i + 2 < l) yn = at(3, i + 2) * in_scale;
        if (fabs(b) > fabs(p)) {  // row i + 1 is the pivot row; the old row i is eliminated below it
            const double mult = p / b;
            at(0, i) = b;
            at(1, i) = a1;
            at(2, i) = c1;
            at(3, i) = y1;
            const double np = q - mult * a1, nq = r - mult * c1, ny = y - mult * y1;
            p = np;
            q = nq;
            y = ny;
        } else {
            const double mult = p != 0.0 ? b / p : 0.0;  // p = 0 here only with b = 0: nothing to eliminate
            at(0, i) = p;
            at(1, i) = q;
            at(2, i) = r;
            at(3, i) = y;
            p = a1 - mult * q;
            q = c1 - mult * r;
            y = y1 - mult * y;
        }
        r = 0.0;
    }
    // Back substitution from row l - 1 (its pivot p and right-hand side y still in registers), the norm on the way;
    // row i - 1's factors loaded while row i divides.
    // The pivots' reciprocals are formed a step ahead too: the division leaves the x chain (two fmas and a product
    // per step instead of a division).
    auto reciprocal = [&](double d) { return 1.0 / (fabs(d) < tiny ? (d < 0.0 ? -tiny : tiny) : d); };
    double rcp_next = reciprocal(p), rhs_next = y, u1_next = 0.0, u2_next = 0.0;
    double x1 = 0.0, x2 = 0.0, norm2 = 0.0;  // x_{i+1}, x_{i+2}
    for (unsigned i = l; i-- > 0;) {
        const double rcp = rcp_next, rhs = rhs_next, u1 = u1_next, u2 = u2_next;
        if (i > 0) {
            rcp_next = reciprocal(at(0, i - 1));
            rhs_next = at(3, i - 1);
            u1_next = at(1, i - 1);
            u2_next = i + 1 < l ? at(2, i - 1) : 0.0;
        }
        const double x = (rhs - u1 * x1 - u2 * x2) * rcp;
        at(3, i) = x;
        norm2 = fma(x, x, norm2);
        x2 = x1;
        x1 = x;
    }
    return norm2 > 0.0 ? 1.0 / sqrt(norm2) : 0.0;
}

// A start vector entry for inverse iteration in [-1, 1): a hash of (i, j), the same on every run.
__device__ __forceinline__ double eigh_start(unsigned i, unsigned j) {
    unsigned h = (i * 0x9E3779B1u) ^ (j * 0x85EBCA77u) ^ 0x6A09E667u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return (double)h * (2.0 / 4294967296.0) - 1.0;
}

// Phase 1 (rsvd_eigh_tridiag_f64): G's lower triangle into shared memory, mirrored; the tridiagonalization; T, the
// τs, the reflectors and the Gershgorin interval into the scratch.
//
// A step has two barriers (the one-block kernel before it had five, measured ~4 k clocks per step at l = 26 with
// almost no arithmetic, ~7 k at l = 138, H200 8b963b3):
//  - step start: every thread reads the step's reflector scalars (τ, the scale of v, β), which warp 0 formed at the
//    end of the step before; v_j = A[k+1+j][k] · scale (v_0 = 1) is recomputed from column k wherever it is needed
//    (column k is final: no step writes it again), so v is never published;
//  - the product p = τ A₂ v: a warp per row (rows warp, warp + kEighWarps, ...; kEighRowBatch rows at a time so that
//    their butterflies interleave), lanes along the row, the upper half read from the lower triangle; each warp
//    stores its rows of p and its part of pᵀv (rows in increasing order); barrier 1;
//  - pᵀv summed by every thread from the warps' parts (fixed order), w = p - (τ/2)(pᵀv) v formed where used, and
//    the symmetric rank-2 update of A₂'s lower triangle, warps over columns, lanes over rows. Warp 0 owns column 0 of
//    A₂ (column k + 1 of A) alone, updates it and then forms the next step's scalars from it (a warp sum, the square
//    root and two divisions) while the other warps update the other columns: that latency is off the block's
//    critical path. Barrier 2.
// The floor is shared-memory traffic (A₂ read whole once and its lower half read and written once per step,
// Σ 16 m² bytes ≈ 5.3 l³: ~110 k clocks at l = 138 at 128 bytes per clock); the chain per step is a load, the
// product's butterflies, a barrier, a 16-term sum, the update's load-fma-store, a barrier.
constexpr unsigned kEighRowBatch = 5;  // rows of the product per warp whose butterflies interleave
__device__ __forceinline__ void eigh_tridiag(const double* __restrict__ g, unsigned l, double* __restrict__ scratch) {
    SLR_DYNAMIC_SMEM(float, smem);  // float, as the other kernels of this file declare it (one extern array)
    static_assert(eigh_tridiag_shared_doubles(kEighMaxL) * 8 <= 232448, "sm_90's opt-in limit");
    const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32, ld = l | 1u;
    double* A = reinterpret_cast<double*>(smem);      // l x ld, column-major
    double* p = A + l * ld;                           // τ A₂ v (rows of A₂)
    double* red = p + kEighMaxL;                      // kEighWarps parts of pᵀv
    double* scal = red + kEighWarps;                  // the step's τ, scale, β
    const EighTri tri = eigh_tri(scratch, l);
    double* h = scratch;                              // l x l: reflector k in column k (rows k+1 ..)

    for (unsigned j = warp; j < l; j += kEighWarps) {
        for (unsigned i = lane; i < l; i += 32) A[i + j * ld] = i >= j ? g[i + (unsigned long long)j * l] : g[j + (unsigned long long)i * l];
    }
    __syncthreads();

    // The reflector of column k (H_k zeroes A[k+2:, k]), by warp 0 once that column is final: α = A[k+1][k],
    // s = ‖A[k+2:, k]‖², β = -sign(α)·√(α² + s), τ = (β - α)/β, v = [1, A[k+2:, k] / (α - β)] (dlarfg without its
    // rescaling loop); τ = 0 when s = 0 (nothing to zero). Every lane computes the same bits; lane 0 publishes them.
    auto reflector = [&](unsigned k) {
        __syncwarp();  // the column's rows were written by other lanes of this warp
        double s2 = 0.0;
#pragma unroll
        for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
            const unsigned i = lane + 32 * q;  // row k + 2 + i
            if (k + 2 + i < l) s2 = fma(A[(k + 2 + i) + k * ld], A[(k + 2 + i) + k * ld], s2);
        }
        s2 = eigh_warp_sum(s2);
        const double alpha = A[(k + 1) + k * ld];
        double tk = 0.0, beta = alpha, scale = 0.0;
        if (s2 > 0.0) {
            const double norm = sqrt(fma(alpha, alpha, s2));
            beta = alpha >= 0.0 ? -norm : norm;
            tk = (beta - alpha) / beta;
            scale = 1.0 / (alpha - beta);
        }
        if (lane == 0) {
            scal[0] = tk;
            scal[1] = scale;
            scal[2] = beta;
        }
    };
    if (warp == 0 && l >= 3) reflector(0);
    __syncthreads();
    for (unsigned k = 0; k + 2 < l; ++k) {
        const unsigned m = l - k - 1;  // rows and columns k+1 .. l-1
        const double* col = A + k * ld + k + 1;  // column k below the diagonal: v_i = col[i] · scale for i >= 1
        const double tk = scal[0], scale = scal[1], beta = scal[2];  // rewritten by warp 0 only after barrier 1
        double vr[kEighRowsPerLane];  // v at rows (and columns) lane + 32q of A₂
#pragma unroll
        for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
            const unsigned i = lane + 32 * q;
            vr[q] = i == 0 ? 1.0 : i < m ? col[i] * scale : 0.0;
        }
        if (tk != 0.0) {  // block-uniform
            double pv = 0.0;  // this warp's part of pᵀv, its rows in increasing order (the same bits in every lane)
            for (unsigned i0 = warp; i0 < m; i0 += kEighWarps * kEighRowBatch) {
                // All kEighRowBatch x kEighRowsPerLane loads first, unpredicated (indices clamped into A₂; a clamped
                // column meets v_j = 0, a clamped row is discarded), so that they are in flight together.
                double x[kEighRowBatch][kEighRowsPerLane];
#pragma unroll
                for (unsigned r = 0; r < kEighRowBatch; ++r) {
                    const unsigned i = min(i0 + r * kEighWarps, m - 1);
#pragma unroll
                    for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                        const unsigned j = min(lane + 32 * q, m - 1);
                        // Only A₂'s lower triangle is kept: A₂[i][j] is stored at (i, j) for j <= i, at (j, i) above.
                        x[r][q] = A[(k + 1 + max(i, j)) + (k + 1 + min(i, j)) * ld];
                    }
                }
                double acc[kEighRowBatch];
#pragma unroll
                for (unsigned r = 0; r < kEighRowBatch; ++r) {
                    acc[r] = 0.0;
#pragma unroll
                    for (unsigned q = 0; q < kEighRowsPerLane; ++q) acc[r] = fma(x[r][q], vr[q], acc[r]);
                }
#pragma unroll
                for (unsigned r = 0; r < kEighRowBatch; ++r) acc[r] = eigh_warp_sum(acc[r]);
#pragma unroll
                for (unsigned r = 0; r < kEighRowBatch; ++r) {
                    const unsigned i = i0 + r * kEighWarps;
                    if (i < m) {
                        const double pi = tk * acc[r];
                        if (lane == 0) p[i] = pi;
                        pv = fma(pi, i == 0 ? 1.0 : col[i] * scale, pv);
                    }
                }
            }
            if (lane == 0) red[warp] = pv;
        }
        __syncthreads();  // barrier 1: p and the parts of pᵀv published; every thread has read the scalars
        if (tk != 0.0) {
            // pᵀv from the warps' parts: a fixed pairwise tree (kEighWarps = 16 terms), the same bits everywhere.
            static_assert(kEighWarps == 16, "the tree below");
            double part[8];
#pragma unroll
            for (unsigned w = 0; w < 8; ++w) part[w] = red[w] + red[w + 8];
#pragma unroll
            for (unsigned w = 0; w < 4; ++w) part[w] += part[w + 4];
#pragma unroll
            for (unsigned w = 0; w < 2; ++w) part[w] += part[w + 2];
            const double kk = -0.5 * tk * (part[0] + part[1]);
            // A₂ -= v wᵀ + w vᵀ with w = p + kk·v: warps over columns, lanes over rows (each lane's v and w entries
            // in registers), the lower triangle only.
            double wr[kEighRowsPerLane];
#pragma unroll
            for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                const unsigned i = lane + 32 * q;
                wr[q] = i < m ? fma(kk, vr[q], p[i]) : 0.0;
            }
            // Column j: a[i] -= v_i w_j + w_i v_j for rows i >= j, the lane's rows lane + 32q. A column's old values
            // and its v_j, w_j are loaded first (ColumnUpdate), then stored updated.
            struct ColumnUpdate {
                double x[kEighRowsPerLane];
                double vj, wj;
            };
            auto column = [&](unsigned j) { return A + (k + 1) + (k + 1 + j) * ld; };
            auto load_column = [&](unsigned j, ColumnUpdate& c) {
#pragma unroll
                for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                    const unsigned i = lane + 32 * q;
                    c.x[q] = i < m && i >= j ? column(j)[i] : 0.0;
                }
                c.vj = j == 0 ? 1.0 : col[j] * scale;
                c.wj = fma(kk, c.vj, p[j]);
            };
            auto store_column = [&](unsigned j, const ColumnUpdate& c) {
#pragma unroll
                for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                    const unsigned i = lane + 32 * q;
                    if (i < m && i >= j) column(j)[i] = fma(-vr[q], c.wj, fma(-wr[q], c.vj, c.x[q]));
                }
            };
            if (warp == 0) {
                // Column 0 of A₂ (column k + 1 of A) alone, then the next step's reflector from it.
                ColumnUpdate c;
                load_column(0, c);
                store_column(0, c);
                if (k + 3 < l) reflector(k + 1);
            } else {
                // Warps 1 .. kEighWarps - 1 the other columns, two at a time: both columns' loads are issued
                // before either's stores (the compiler cannot move a load past a store to the same array).
                constexpr unsigned step = kEighWarps - 1;
                unsigned j = warp;
                for (; j + step < m; j += 2 * step) {
                    ColumnUpdate c0, c1;
                    load_column(j, c0);
                    load_column(j + step, c1);
                    store_column(j, c0);
                    store_column(j + step, c1);
                }
                if (j < m) {
                    ColumnUpdate c;
                    load_column(j, c);
                    store_column(j, c);
                }
            }
        } else if (warp == 0 && k + 3 < l) {
            reflector(k + 1);  // nothing to update: column k + 1 is as the step before left it
        }
        if (t == 0) {
            tri.dg[k] = A[k + k * ld];
            tri.off[k] = beta;
            tri.tau[k] = tk;
        }
        if (warp == kEighWarps - 1) {  // the reflector into the scratch (warp 0 has the next one to form)
#pragma unroll
            for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                const unsigned i = lane + 32 * q;
                if (i < m) h[(unsigned long long)k * l + k + 1 + i] = vr[q];
            }
        }
        __syncthreads();  // barrier 2: A₂ updated and the next step's scalars published
    }
    if (t == 0) {
        if (l >= 2) {
            tri.dg[l - 2] = A[(l - 2) + (l - 2) * ld];
            tri.off[l - 2] = A[(l - 1) + (l - 2) * ld];
            tri.tau[l - 2] = 0.0;
        }
        tri.dg[l - 1] = A[(l - 1) + (l - 1) * ld];
        tri.off[l - 1] = 0.0;  // not part of T; written so that no kernel reads an unwritten slot
        tri.tau[l - 1] = 0.0;
        // Gershgorin interval, ‖T‖ and the pivot guard (thread 0 wrote every dg and off above).
        double gl = tri.dg[0], gu = tri.dg[0], emax2 = 0.0;
        for (unsigned i = 0; i < l; ++i) {
            const double rad = (i > 0 ? fabs(tri.off[i - 1]) : 0.0) + (i + 1 < l ? fabs(tri.off[i]) : 0.0);
            gl = fmin(gl, tri.dg[i] - rad);
            gu = fmax(gu, tri.dg[i] + rad);
            if (i + 1 < l) emax2 = fmax(emax2, tri.off[i] * tri.off[i]);
        }
        const double tnorm = fmax(fabs(gl), fabs(gu));
        const double pivmin = kF64Min * fmax(1.0, emax2);
        const double widen = 2.0 * kF64Eps * tnorm * l + 2.0 * pivmin;
        tri.scal[0] = gl - widen;
        tri.scal[1] = gu + widen;
        tri.scal[2] = pivmin;
        tri.scal[3] = tnorm;
    }
}

// Phase 2 (rsvd_eigh_values_f64): eigenvalue j = blockIdx.x · kEighValueWarps + warp into w[j]. Every block scales T
// by 1/‖T‖ into shared memory (the Sturm counts' form), then each warp multisects its eigenvalue's interval:
// lane s counts at lo + (hi - lo)(s + 1)/33, and the interval becomes the pair of neighbouring points (or ends)
// between which the count passes j (the first lane whose count exceeds j, by ballot). Every lane computes the same
// lo and hi, so the result does not depend on timing.
__device__ __forceinline__ void eigh_values(unsigned l, double* __restrict__ scratch, double* __restrict__ w) {
    __shared__ double dgn[kEighMaxL], e2n[kEighMaxL];
    const EighTri tri = eigh_tri(scratch, l);
    const double tnorm = tri.scal[3], inv_norm = tnorm > 0.0 ? 1.0 / tnorm : 1.0;
    for (unsigned i = threadIdx.x; i < l; i += blockDim.x) {
        dgn[i] = tri.dg[i] * inv_norm;
        // eigh_sturm_count: no zero off-diagonal.
        if (i + 1 < l) e2n[i] = fmax(tri.off[i] * tri.off[i] * inv_norm * inv_norm, 0x1p-120);
    }
    __syncthreads();
    const unsigned lane = threadIdx.x % 32, j = blockIdx.x * kEighValueWarps + threadIdx.x / 32;
    if (j >= l) return;  // whole warps: the ballot and shuffles below see full warps
    double lo = tri.scal[0], hi = tri.scal[1];
    const double frac = (double)(lane + 1) / 33.0;
    for (unsigned round = 0; round < kEighValueRounds; ++round) {
        const double x = lo + (hi - lo) * frac;
        const unsigned count = eigh_sturm_count(dgn, e2n, l, x * inv_norm);
        const unsigned above = __ballot_sync(0xffffffffu, count > j);  // points with more than j eigenvalues below
        const unsigned s = above != 0u ? (unsigned)__ffs((int)above) - 1u : 32u;
        const double x_below = __shfl_sync(0xffffffffu, x, (s + 31u) % 32u);  // lane s - 1's point (s > 0)
        const double x_above = __shfl_sync(0xffffffffu, x, s % 32u);          // lane s's point (s < 32)
        if (s > 0) lo = x_below;
        if (s < 32) hi = x_above;
    }
    if (lane == 0) w[j] = 0.5 * (lo + hi);
}

// Phase 3 (rsvd_eigh_vectors_f64): eigenvector t = blockIdx.x · kEighVectorThreads + thread of T by inverse
// iteration, its factors in this block's shared memory, into column t of g (Z).
__device__ __forceinline__ void eigh_vectors(double* __restrict__ g, unsigned l, const double* __restrict__ w,
                                             double* __restrict__ scratch) {
    SLR_DYNAMIC_SMEM(float, smem);
    double* f = reinterpret_cast<double*>(smem);  // eigh_vectors_shared_doubles
    double* dg = f + 4ull * l * kEighVectorThreads;
    double* off = dg + l;
    const EighTri tri = eigh_tri(scratch, l);
    for (unsigned i = threadIdx.x; i < l; i += kEighVectorThreads) {
        dg[i] = tri.dg[i];
        off[i] = tri.off[i];
    }
    __syncthreads();
    const unsigned j = threadIdx.x, t = blockIdx.x * kEighVectorThreads + j;
    if (t >= l) return;
    const double tiny = fmax(kF64Eps * tri.scal[3], tri.scal[2]);
    for (unsigned i = 0; i < l; ++i) f[(3ull * l + i) * kEighVectorThreads + j] = eigh_start(i, t);
    double scale = 1.0;
    const double lam = w[t];
    for (unsigned it = 0; it < kEighIters; ++it) scale = eigh_inverse_solve(dg, off, l, lam, tiny, f, kEighVectorThreads, j, scale);
    for (unsigned i = 0; i < l; ++i) g[i + (unsigned long long)t * l] = f[(3ull * l + i) * kEighVectorThreads + j] * scale;
}

// Phase 4 (rsvd_eigh_clusters_f64, one block of kEighThreads): clusters are runs of eigenvalues within
// kEighCluster·‖T‖ of the previous one; thread 0 lists them (first and last + 1 member) and the kernel returns at
// once when there are none. Otherwise Z comes into shared memory (eigh_clusters_shared_doubles), and twice: the
// block orthonormalizes each cluster's vectors in order, and after the first time each member is solved again
// from its orthonormalized vector (one thread each, in parallel, factors in global scratch). Each member was
// solved with its own shift, so it is its own eigenvector to ~ε‖T‖/gap, which the orthonormalization removes;
// within a degenerate cluster (gap ~ε‖T‖) the members are independent combinations of the eigenspace (different
// starts), which it makes orthonormal; the second solve and pass clean up what the first pass amplified.
// Orthonormalizing member j: classical Gram-Schmidt twice against the members before it ("twice is enough":
// orthogonal to working precision like modified Gram-Schmidt), each time the dot products by all warps at once
// (warp w takes members first + w, first + w + kEighWarps, ...), the update y -= Σ_b (z_bᵀy) z_b by three threads
// per row over thirds of the members, then y / ‖y‖. About 8 barriers per member. (Until 2026-11-28 a warp ran
// modified Gram-Schmidt on each cluster with Z in L2: ~c²/2 dependent warp dot products per pass, milliseconds for
// the ~120-member cluster of a rank-16 matrix at l = 138.)
constexpr unsigned kEighClusterParts = 3;  // threads per row in the Gram-Schmidt update
static_assert(kEighClusterParts * kEighMaxL <= kEighThreads, "three threads per row");
// rsvd_eigh_clusters_f64: Z (l x l), y, kEighClusterParts partial sums and the dot products (kEighMaxL each), 8
// scalars.
__host__ __device__ constexpr unsigned eigh_clusters_shared_doubles(unsigned l) {
    return l * l + (2 + kEighClusterParts) * kEighMaxL + 8;
}
static_assert(eigh_clusters_shared_doubles(kEighMaxL) * 8 <= 232448, "sm_90's opt-in limit");
__device__ __forceinline__ void eigh_clusters(double* __restrict__ g, unsigned l, const double* __restrict__ w,
                                              double* __restrict__ scratch) {
    __shared__ unsigned cl[kEighMaxL + 1];  // cl[2c], cl[2c + 1]: cluster c's members [first, last + 1); cl[l]: count
    __shared__ double dg[kEighMaxL], off[kEighMaxL];
    SLR_DYNAMIC_SMEM(float, smem);
    double* Z = reinterpret_cast<double*>(smem);  // l x l, column-major (column t: eigenvector t)
    double* y = Z + l * l;                        // the member being orthonormalized
    double* part = y + kEighMaxL;                 // kEighClusterParts x kEighMaxL
    double* dots = part + kEighClusterParts * kEighMaxL;
    double* scal = dots + kEighMaxL;
    const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
    const EighTri tri = eigh_tri(scratch, l);
    const double tnorm = tri.scal[3];
    if (t == 0) {
        const double gap = kEighCluster * tnorm;
        unsigned count = 0, start = 0;
        for (unsigned j = 1; j <= l; ++j) {
            if (j < l && w[j] - w[j - 1] <= gap) continue;  // j still in the run that began at start
            if (j - start >= 2) {
                cl[2 * count] = start;
                cl[2 * count + 1] = j;
                ++count;
            }
            start = j;
        }
        cl[kEighMaxL] = count;  // at most l / 2 clusters: 2·count <= l <= kEighMaxL
    }
    for (unsigned i = t; i < l; i += kEighThreads) {
        dg[i] = tri.dg[i];
        off[i] = tri.off[i];
    }
    __syncthreads();
    const unsigned clusters = cl[kEighMaxL];
    if (clusters == 0) return;  // block-uniform
    for (unsigned e = t; e < l * l; e += kEighThreads) Z[e] = g[e];
    const double tiny = fmax(kF64Eps * tnorm, tri.scal[2]);
    double* f = scratch + (unsigned long long)l * l;  // 4 x l x l, column t for eigenvalue t
    __syncthreads();
    for (unsigned pass = 0; pass < 2; ++pass) {
        if (pass == 1 && t < l) {
            bool member = false;
            for (unsigned c = 0; c < clusters; ++c) member |= t >= cl[2 * c] && t < cl[2 * c + 1];
            if (member) {
                for (unsigned i = 0; i < l; ++i) f[(3ull * l + i) * l + t] = Z[i + t * l];
                const double scale = eigh_inverse_solve(dg, off, l, w[t], tiny, f, l, t, 1.0);
                for (unsigned i = 0; i < l; ++i) Z[i + t * l] = f[(3ull * l + i) * l + t] * scale;
            }
        }
        __syncthreads();  // the members solved again before they are orthonormalized
        for (unsigned c = 0; c < clusters; ++c) {
            const unsigned first = cl[2 * c], end = cl[2 * c + 1];
            for (unsigned j = first; j < end; ++j) {
                if (t < l) y[t] = Z[t + j * l];
                __syncthreads();
                for (unsigned rep = 0; rep < 2 && j > first; ++rep) {  // block-uniform
                    for (unsigned b = first + warp; b < j; b += kEighWarps) {
                        double d = 0.0;
#pragma unroll
                        for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                            const unsigned i = lane + 32 * q;
                            if (i < l) d = fma(Z[i + b * l], y[i], d);
                        }
                        d = eigh_warp_sum(d);
                        if (lane == 0) dots[b - first] = d;
                    }
                    __syncthreads();
                    if (t < kEighClusterParts * l) {  // part p of row i: members [first + p·n/3, first + (p+1)·n/3)
                        const unsigned i = t % l, p = t / l, n = j - first;
                        const unsigned b0 = first + p * n / kEighClusterParts, b1 = first + (p + 1) * n / kEighClusterParts;
                        double s = 0.0;
                        for (unsigned b = b0; b < b1; ++b) s = fma(dots[b - first], Z[i + b * l], s);
                        part[p * kEighMaxL + i] = s;
                    }
                    __syncthreads();
                    if (t < l) {
                        double s = 0.0;
#pragma unroll
                        for (unsigned p = 0; p < kEighClusterParts; ++p) s += part[p * kEighMaxL + t];
                        y[t] -= s;
                    }
                    __syncthreads();
                }
                if (warp == 0) {
                    double n2 = 0.0;
#pragma unroll
                    for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                        const unsigned i = lane + 32 * q;
                        if (i < l) n2 = fma(y[i], y[i], n2);
                    }
                    n2 = eigh_warp_sum(n2);
                    if (lane == 0) scal[0] = n2 > 0.0 ? 1.0 / sqrt(n2) : 0.0;
                }
                __syncthreads();
                if (t < l) Z[t + j * l] = y[t] * scal[0];
                __syncthreads();  // member j final before the next one reads it (and before y is rewritten)
            }
        }
    }
    for (unsigned e = t; e < l * l; e += kEighThreads) g[e] = Z[e];
}

// Phase 5 (rsvd_eigh_back_f64): column c = blockIdx.x · kEighBackWarps + warp of Ũ = H_0 ⋯ H_{l-3} Z, in place in g;
// block 0 also writes info = 0.
__device__ __forceinline__ void eigh_back(double* __restrict__ g, unsigned l, double* __restrict__ scratch,
                                          int* __restrict__ info) {
    SLR_DYNAMIC_SMEM(float, smem);
    double* hv = reinterpret_cast<double*>(smem);  // eigh_back_shared_doubles: reflector k at eigh_packed(k, l)
    double* tau = hv + l * (l - 1) / 2;
    const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
    const EighTri tri = eigh_tri(scratch, l);
    for (unsigned k = warp; k + 2 < l; k += kEighBackWarps) {
        const unsigned base = eigh_packed(k, l);
        for (unsigned i = lane; i + k + 1 < l; i += 32) hv[base + i] = scratch[(unsigned long long)k * l + k + 1 + i];
    }
    for (unsigned i = t; i < l; i += kEighBackWarps * 32) tau[i] = tri.tau[i];
    __syncthreads();
    if (blockIdx.x == 0 && t == 0) *info = 0;
    const unsigned c = blockIdx.x * kEighBackWarps + warp;
    if (c >= l || l < 3) return;
    double* z_col = g + (unsigned long long)c * l;
    double z[kEighRowsPerLane];
#pragma unroll
    for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
        const unsigned i = lane + 32 * q;
        z[q] = i < l ? z_col[i] : 0.0;
    }
    for (unsigned k = l - 3;; --k) {
        const double tk = tau[k];
        if (tk != 0.0) {  // warp-uniform
            const double* vk = hv + eigh_packed(k, l) - (k + 1);  // vk[i]: row i of reflector k, i in [k + 1, l)
            double dot = 0.0;
#pragma unroll
            for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                const unsigned i = lane + 32 * q;
                if (i > k && i < l) dot = fma(vk[i], z[q], dot);
            }
            dot = tk * eigh_warp_sum(dot);
#pragma unroll
            for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
                const unsigned i = lane + 32 * q;
                if (i > k && i < l) z[q] = fma(-dot, vk[i], z[q]);
            }
        }
        if (k == 0) break;
    }
#pragma unroll
    for (unsigned q = 0; q < kEighRowsPerLane; ++q) {
        const unsigned i = lane + 32 * q;
        if (i < l) z_col[i] = z[q];
    }
}

// The small SVD's finish on the device (src/rsvd.rs small_svd_device), around the eigensolver (syevd or ours):
//   rsvd_small_gram_f64:    G = R₂ᵀR₂ in f64 from the l x l f32 R₂ (column-major), both triangles: G[i + j l] =
//                           sum_{k<l} R₂[k + i l] R₂[k + j l], k ascending by fma (the same products in the same order
//                           for (i, j) and (j, i): G is exactly symmetric; f32 x f32 is exact in f64), and
//                           counts[0] += the number of non-finite entries of R₂ (thread e checks entry e; an integer
//                           atomic, exact). A thread per entry of G, 256 per block. Floor: l³ FMAs (l = 138: 2.6 M,
//                           ~0.1 µs of the H200's FP64 rate, so latency: one l-long dependent chain per thread, ~1-2
//                           µs) and l² floats read (76 KB, from L2 after the first touch), l² doubles written.
//   rsvd_small_vectors_f64: block j < r, for the j-th largest eigenvalue: its column c (ties: the higher column first,
//                           as the host's stable sort gives them; a thread per candidate counts the eigenvalues ahead
//                           of it), σ_j = sqrt(max(λ_c, 0)), Ũ_r[:, j] = Ũ[:, c] in f32, Ṽ_r[:, j] = R₂ Ũ[:, c] / σ_j
//                           (zero when σ_j <= ε₆₄ σ₁, as the host does) in f64 (v64, for the check) and f32, σ_j in
//                           f64. A non-finite eigenvalue sets kSmallNotFinite in counts[1] (the host then discards
//                           the block's outputs); a column found by no thread also ends the block before it writes
//                           anything. Non-finite eigenvalues take no rank. 128 threads, a row each (coalesced down R₂'s
//                           columns). Floor: l² r FMAs (l = 138, r = 128: 2.4 M) and r l² comparisons; ~2 l² r/2
//                           bytes of L2 reads (R₂ once per block, 9.8 MB at r = 128, ~3 µs at L2 rate).
//   rsvd_small_check_f64:   counts[1] |= kSmallNotOrthonormal if some |Ṽ_rᵀṼ_r - I| entry exceeds
//                           kSmallOrthonormal (NaN included): a thread per pair a <= b < r, an l-long f64 dot. Floor: l r² / 2 FMAs (1.1 M).
// The host reads counts, σ and the eigensolver's info back in one transfer: non-finite R₂ is an error,
// kSmallNotOrthonormal sends Ṽ_r to the host's Householder QR, kSmallNotFinite to the host's eigensolver.
constexpr unsigned kSmallThreads = 128;
constexpr unsigned kSmallNotFinite = 1u;
constexpr unsigned kSmallNotOrthonormal = 2u;
constexpr double kSmallOrthonormal = 1e-9;  // src/rsvd.rs SMALL_SVD_ORTHONORMAL

__device__ __forceinline__ void small_gram(const float* __restrict__ r2, unsigned l, double* __restrict__ g,
                                           unsigned* __restrict__ counts) {
    const unsigned e = blockIdx.x * kThreads + threadIdx.x;
    if (e >= l * l) return;
    if (nonfinite(r2[e])) atomicAdd(&counts[0], 1u);
    const unsigned i = e % l, j = e / l;
    const float* ri = r2 + (unsigned long long)i * l;
    const float* rj = r2 + (unsigned long long)j * l;
    double acc = 0.0;
    for (unsigned k = 0; k < l; ++k) acc = fma((double)ri[k], (double)rj[k], acc);
    g[e] = acc;
}

__device__ __forceinline__ void small_vectors(const float* __restrict__ r2, const double* __restrict__ u,
                                              const double* __restrict__ w, unsigned l, double* __restrict__ v64,
                                              float* __restrict__ ur, float* __restrict__ vr,
                                              double* __restrict__ sigma, unsigned* __restrict__ counts) {
    __shared__ unsigned picked[2];  // the column of the j-th largest eigenvalue, of the largest
    const unsigned j = blockIdx.x, t = threadIdx.x;
    if (t == 0) picked[0] = picked[1] = l;
    __syncthreads();
    bool finite = true;
    for (unsigned c = t; c < l; c += kSmallThreads) {
        const double wc = w[c];
        // A non-finite eigenvalue takes no rank: NaN compares false with everything, so several NaN columns would
        // all count 0 ahead and race to store picked[] (the emulator's race checker found that with a NaN in R₂).
        // Ranked among the finite columns alone (+inf counted ahead of them, NaN and -inf nowhere), at most one
        // column takes each rank; the block reports non-finite below either way.
        if (!(fabs(wc) <= 1.7976931348623157e308)) {
            finite = false;
            continue;
        }
        unsigned ahead = 0;  // eigenvalues before column c in descending order, ties by descending column
        for (unsigned d = 0; d < l; ++d) {
            const double wd = w[d];
            ahead += (wd > wc || (wd == wc && d > c)) ? 1u : 0u;
        }
        if (ahead == j) picked[0] = c;
        if (ahead == 0) picked[1] = c;
    }
    if (!finite) atomicOr(&counts[1], kSmallNotFinite);
    __syncthreads();
    const unsigned c = picked[0], c0 = picked[1];
    if (c >= l || c0 >= l) {  // block-uniform: only with non-finite eigenvalues
        if (t == 0) atomicOr(&counts[1], kSmallNotFinite);
        return;
    }
    // As the host computes them (IEEE square roots and division: the same σ_j and scale for the same λ).
    const double s = sqrt(fmax(w[c], 0.0)), s0 = sqrt(fmax(w[c0], 0.0));
    const double sc = s > s0 * 2.220446049250313e-16 ? 1.0 / s : 0.0;
    if (t == 0) sigma[j] = s;
    const double* uc = u + (unsigned long long)c * l;
    for (unsigned i = t; i < l; i += kSmallThreads) {
        double acc = 0.0;
        for (unsigned k = 0; k < l; ++k) acc = fma((double)r2[i + (unsigned long long)k * l], uc[k], acc);
        const double v = acc * sc;
        const unsigned long long at = i + (unsigned long long)j * l;
        v64[at] = v;
        vr[at] = (float)v;
        ur[at] = (float)uc[i];
    }
}

__device__ __forceinline__ void small_check(const double* __restrict__ v64, unsigned l, unsigned r,
                                            unsigned* __restrict__ counts) {
    const unsigned e = blockIdx.x * kThreads + threadIdx.x;
    if (e >= r * r) return;
    const unsigned a = e % r, b = e / r;
    if (a > b) return;
    const double* va = v64 + (unsigned long long)a * l;
    const double* vb = v64 + (unsigned long long)b * l;
    double dot = 0.0;
    for (unsigned i = 0; i < l; ++i) dot = fma(va[i], vb[i], dot);
    const double dev = fabs(dot - (a == b ? 1.0 : 0.0));
    if (!(dev <= kSmallOrthonormal)) atomicOr(&counts[1], kSmallNotOrthonormal);
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_gaussian_f32(float* __restrict__ out, unsigned long long count, unsigned seed_lo, unsigned seed_hi) {
    gaussian_impl(out, count, seed_lo, seed_hi);
}
SLR_EMU_EXPORT(rsvd_gaussian_f32)

#define SLR_RSVD_TO_F32(NAME, T)                                                                                  \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                       \
        NAME(const T* __restrict__ src, unsigned long long outer, unsigned long long inner, unsigned long long ld, \
             float* __restrict__ dst, unsigned* __restrict__ nonfinite_count) {                                   \
        to_f32_impl<T>(src, outer, inner, ld, dst, nonfinite_count);                                             \
    }

SLR_RSVD_TO_F32(rsvd_to_f32_f32, float)
SLR_EMU_EXPORT(rsvd_to_f32_f32)
SLR_RSVD_TO_F32(rsvd_to_f32_f16, __half)
SLR_EMU_EXPORT(rsvd_to_f32_f16)
SLR_RSVD_TO_F32(rsvd_to_f32_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(rsvd_to_f32_bf16)

// rsvd_widen_f32: dst[i] = (double)src[i] for i < count (exact): an f32 Gram matrix in f64 for the benchmark's and
// tests' eigensolver calls (src/rsvd.rs widen_then_eigh). Grid-stride, 256 threads. Floor: 12 bytes per element.
extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_widen_f32(const float* __restrict__ src, double* __restrict__ dst, unsigned long long count) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * kThreads + threadIdx.x; i < count;
         i += (unsigned long long)gridDim.x * kThreads) {
        dst[i] = (double)src[i];
    }
}
SLR_EMU_EXPORT(rsvd_widen_f32)

extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_small_gram_f64(const float* __restrict__ r2, unsigned l, double* __restrict__ g,
                        unsigned* __restrict__ counts) {
    small_gram(r2, l, g, counts);
}
SLR_EMU_EXPORT(rsvd_small_gram_f64)

// The minimum of 4 blocks per SM is a hint ptxas needs: without it, on sm_80 it held the kernel at 32 registers and
// spilled the values live across the square roots' and division's slow-path calls (72 registers with it, no spills).
extern "C" __global__ void __launch_bounds__(kSmallThreads, 4)
    rsvd_small_vectors_f64(const float* __restrict__ r2, const double* __restrict__ u, const double* __restrict__ w,
                           unsigned l, double* __restrict__ v64, float* __restrict__ ur, float* __restrict__ vr,
                           double* __restrict__ sigma, unsigned* __restrict__ counts) {
    small_vectors(r2, u, w, l, v64, ur, vr, sigma, counts);
}
SLR_EMU_EXPORT(rsvd_small_vectors_f64)

extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_small_check_f64(const double* __restrict__ v64, unsigned l, unsigned r, unsigned* __restrict__ counts) {
    small_check(v64, l, r, counts);
}
SLR_EMU_EXPORT(rsvd_small_check_f64)

extern "C" __global__ void __launch_bounds__(kGemmTile * kGemmTile)
    rsvd_gemm_f32(unsigned m, unsigned n, unsigned k, float alpha, const float* __restrict__ a,
                  unsigned long long a_rs, unsigned long long a_cs, const float* __restrict__ b,
                  unsigned long long b_rs, unsigned long long b_cs, float beta, float* __restrict__ c,
                  unsigned long long c_rs, unsigned long long c_cs, unsigned tf32_inputs) {
    gemm_impl(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, c_rs, c_cs, tf32_inputs != 0);
}
SLR_EMU_EXPORT(rsvd_gemm_f32)

// rsvd_sum_slices_f32: out[e] = sum over s < slices of parts[s * count + e], added in s order (deterministic), for
// e < count: the partial Gram matrices of src/rsvd.rs's row-chunked Gram summed. Grid-stride over count, 256
// threads; a warp reads 32 consecutive elements of each slice (coalesced). Floor: (slices + 1) * count * 4 bytes
// (l = 138, 32 chunks: 2.5 MB, ~1 µs at 3 TB/s).
extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_sum_slices_f32(const float* __restrict__ parts, unsigned long long count, unsigned slices,
                        float* __restrict__ out) {
    for (unsigned long long e = blockIdx.x * (unsigned long long)kThreads + threadIdx.x; e < count;
         e += (unsigned long long)gridDim.x * kThreads) {
        float acc = 0.0f;
        for (unsigned s = 0; s < slices; ++s) acc += parts[s * count + e];
        out[e] = acc;
    }
}
SLR_EMU_EXPORT(rsvd_sum_slices_f32)

// rsvd_gemm_bf16: rsvd_gemm_f32's C = A B + beta C (alpha 1; C not read when beta = 0) with bf16 A and B; same
// launch shape.
extern "C" __global__ void __launch_bounds__(kGemmTile * kGemmTile)
    rsvd_gemm_bf16(unsigned m, unsigned n, unsigned k, const __nv_bfloat16* __restrict__ a, unsigned long long a_rs,
                   unsigned long long a_cs, const __nv_bfloat16* __restrict__ b, unsigned long long b_rs,
                   unsigned long long b_cs, float* __restrict__ c, unsigned long long c_rs, unsigned long long c_cs,
                   float beta) {
    gemm_bf16_impl(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, c_cs, beta);
}
SLR_EMU_EXPORT(rsvd_gemm_bf16)

// rsvd_split_bf16x3: X (count f32 values) into three bf16 slices X3 | X2 | X1 with X1 + X2 + X3 = X exactly
// (split_bf16x3 above), for the products with A on bf16 tensor cores (src/rsvd.rs split_bf16_product): every term
// A_s X_t is exact in f32, so the only rounding left is the f32 accumulation's, as in an f32 GEMM. Grid-stride,
// 256 threads. Floor: 4 bytes read and 6 written per element (11008 x 138: 15 MB, ~4 us at 4 TB/s).
extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_split_bf16x3(const float* __restrict__ x, unsigned long long count, __nv_bfloat16* __restrict__ out) {
    split_bf16x3_impl(x, count, out);
}
SLR_EMU_EXPORT(rsvd_split_bf16x3)

// rsvd_split_a_f32 / rsvd_split_a_f16: an f32 A into its 3 exact bf16 slices, an f16 A into 2 (split_a_impl), packed
// in A's storage order `stride` elements apart, for the same products with an f32 or f16 A (a bf16 A is its own single slice),
// and, with nonfinite_count, A's non-finite count added there. Launch as rsvd_to_f32_<T> (min(outer, 4096) blocks of
// 256 threads). Floor: 4 + 6 bytes per f32 element (4096 x 11008: 450 MB, ~0.11 ms at 4 TB/s), 2 + 4 per f16 element.
extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_split_a_f32(const float* __restrict__ src, unsigned long long outer, unsigned long long inner,
                     unsigned long long ld, unsigned long long stride, __nv_bfloat16* __restrict__ out,
                     unsigned* __restrict__ nonfinite_count) {
    split_a_impl<float, 3>(src, outer, inner, ld, stride, out, nonfinite_count);
}
SLR_EMU_EXPORT(rsvd_split_a_f32)
extern "C" __global__ void __launch_bounds__(kThreads)
    rsvd_split_a_f16(const __half* __restrict__ src, unsigned long long outer, unsigned long long inner,
                     unsigned long long ld, unsigned long long stride, __nv_bfloat16* __restrict__ out,
                     unsigned* __restrict__ nonfinite_count) {
    split_a_impl<__half, 2>(src, outer, inner, ld, stride, out, nonfinite_count);
}
SLR_EMU_EXPORT(rsvd_split_a_f16)

extern "C" __global__ void __launch_bounds__(kFactorThreads)
    rsvd_gram_check_f32(const float* __restrict__ g, unsigned l, unsigned* __restrict__ status, unsigned slot) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bool far = false;
    for (unsigned j = warp; j < l; j += kFactorWarps) {  // a warp per column, lanes down it (coalesced)
        float column = 0.0f;
        for (unsigned i = lane; i < l; i += 32) {
            column += fabsf(g[i + (unsigned long long)j * l] - (i == j ? 1.0f : 0.0f));
        }
        column = slr::warp_sum(column);
        far |= !(column <= 0.5f);  // NaN anywhere in the column fails here too
    }
    far = __syncthreads_or(far) != 0;
    if (threadIdx.x == 0) status[slot] = far ? kStatusNotNearIdentity : 0u;
}
SLR_EMU_EXPORT(rsvd_gram_check_f32)

extern "C" __global__ void __launch_bounds__(kFactorThreads)
    rsvd_near_identity_step_f32(const float* __restrict__ g, unsigned l, float* __restrict__ x,
                                unsigned* __restrict__ status, unsigned slot) {
    __shared__ float partial[kFactorWarps];
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float sum = 0.0f;
    for (unsigned j = warp; j < l; j += kFactorWarps) {  // a warp per column, lanes down it (coalesced)
        for (unsigned i = lane; i < l; i += 32) {
            const float e = g[i + (unsigned long long)j * l] - (i == j ? 1.0f : 0.0f);
            sum = fmaf(e, e, sum);
        }
    }
    sum = slr::warp_sum(sum);
    if (lane == 0) partial[warp] = sum;
    __syncthreads();
    float total = 0.0f;  // every thread sums the warps' parts in the same order: one decision for the block
    for (unsigned w = 0; w < kFactorWarps; ++w) total += partial[w];
    const bool near = total <= kNearIdentityMaxFrobenius2;  // false for NaN
    if (near) {
        for (unsigned j = warp; j < l; j += kFactorWarps) {
            for (unsigned i = lane; i < l; i += 32) {
                const unsigned long long at = i + (unsigned long long)j * l;
                const float d = i == j ? 1.0f : 0.0f;
                x[at] = fmaf(-0.5f, g[at] - d, d);
            }
        }
    }
    if (threadIdx.x == 0) status[slot] = near ? kStatusNearIdentityStep : 0u;
}
SLR_EMU_EXPORT(rsvd_near_identity_step_f32)

// A later pass whose l x l step rsvd_near_identity_step_f32 took (its bit in status[slot], written by the kernel
// before this one on the stream) leaves the factor kernels nothing to do: R⁻¹'s buffer already holds X.
__device__ __forceinline__ bool step_already_taken(unsigned first_pass, const unsigned* status, unsigned slot) {
    return !first_pass && (status[slot] & kStatusNearIdentityStep) != 0u;
}

extern "C" __global__ void __launch_bounds__(kFactorThreads)
    rsvd_cholqr_factor_f32(const float* __restrict__ g, unsigned l, unsigned rows, unsigned first_pass,
                           float* __restrict__ r_inv, unsigned* __restrict__ status, unsigned slot) {
    if (step_already_taken(first_pass, status, slot)) return;
    SLR_DYNAMIC_SMEM(float, smem);
    float* s = smem;
    float* col = s + tri(l);
    float* row = col + l;
    float* diag = row + l;
    unsigned st = 0;
    const bool far = factor_load(g, l, 0.0f, s, diag);
    if (!first_pass && far) st |= kStatusNotNearIdentity;
    bool ok = factor_sweep(s, col, row, diag, l, first_pass != 0);
    if (!ok && first_pass) {
        const float shift = 8.0f * (sqrtf((float)rows) + (float)l) * kU32Roundoff * block_trace<kFactorThreads>(diag, l);
        st |= kStatusShifted;
        __syncthreads();  // every thread has read its last pivot before s is reloaded
        factor_load(g, l, shift, s, diag);
        ok = shift > 0.0f && shift <= 3.402823466e38f && factor_sweep(s, col, row, diag, l, false);
    }
    if (!ok) st |= kStatusFailed;
    // R⁻¹ = Xᵀ, column b = row b of X; I after a failure (the queued products stay finite; the host discards them).
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (unsigned b = warp; b < l; b += kFactorWarps) {
        for (unsigned a = lane; a < l; a += 32) {
            r_inv[a + (unsigned long long)b * l] = a > b ? 0.0f : ok ? s[tri(b) + a] : (a == b ? 1.0f : 0.0f);
        }
    }
    if (threadIdx.x == 0) status[slot] = st;
}
SLR_EMU_EXPORT(rsvd_cholqr_factor_f32)

// rsvd_cholqr_factor_tiles_f32: rsvd_cholqr_factor_f32 for l <= 160 (cholqr_factor_tiles above: blocked in 32 x 32
// tiles); same arguments and outputs up to rounding; one block of kTileThreads threads, dynamic shared memory from
// src/rsvd.rs `tiles_shared_bytes`. One block per SM: 128 registers per thread for a product's 64 live values.
extern "C" __global__ void __launch_bounds__(kTileThreads, 1)
    rsvd_cholqr_factor_tiles_f32(const float* __restrict__ g, unsigned l, unsigned rows, unsigned first_pass,
                                 float* __restrict__ r_inv, unsigned* __restrict__ status, unsigned slot) {
    if (step_already_taken(first_pass, status, slot)) return;
    cholqr_factor_tiles<kTileMaxBlocks>(g, l, rows, first_pass, r_inv, status, slot);
}
SLR_EMU_EXPORT(rsvd_cholqr_factor_tiles_f32)

// rsvd_cholqr_factor_tiles9_f32: the same for 160 < l <= 288 (M <= 9, two helper rounds, the load in groups; see
// kTileWideMaxBlocks). sm_90 machine code only: 222.9 KB of shared memory at M = 9 fits no other target, and
// ptxas 13.0 spilled it on sm_80/86/89 (96 bytes of stack), so there the body is a trap and src/rsvd.rs
// factor_kernel_choice launches it only where the sm_90 code runs (compute capability 9.0; the emulator).
extern "C" __global__ void __launch_bounds__(kTileThreads, 1)
    rsvd_cholqr_factor_tiles9_f32(const float* __restrict__ g, unsigned l, unsigned rows, unsigned first_pass,
                                  float* __restrict__ r_inv, unsigned* __restrict__ status, unsigned slot) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ == 900
    if (step_already_taken(first_pass, status, slot)) return;
    cholqr_factor_tiles<kTileWideMaxBlocks>(g, l, rows, first_pass, r_inv, status, slot);
#else
    __trap();
#endif
}
SLR_EMU_EXPORT(rsvd_cholqr_factor_tiles9_f32)

// The small SVD's eigenproblem (the five phases above), queued in this order by src/rsvd.rs queue_own_eigensolver on
// G (l x l f64, column-major, lower triangle read, overwritten with Ũ), w (λ ascending), info (0) and the scratch
// (eigh_tri: 5 l² + 3 l + 4 doubles); l <= kEighMaxL. Grids and dynamic shared memory as their comments say.
extern "C" __global__ void __launch_bounds__(kEighThreads, 1)
    rsvd_eigh_tridiag_f64(const double* __restrict__ g, unsigned l, double* __restrict__ scratch) {
    eigh_tridiag(g, l, scratch);
}
SLR_EMU_EXPORT(rsvd_eigh_tridiag_f64)
// Grid ceil(l / kEighValueWarps) blocks of kEighValueWarps warps; no dynamic shared memory.
extern "C" __global__ void __launch_bounds__(kEighValueWarps * 32)
    rsvd_eigh_values_f64(unsigned l, double* __restrict__ scratch, double* __restrict__ w) {
    eigh_values(l, scratch, w);
}
SLR_EMU_EXPORT(rsvd_eigh_values_f64)
// Grid ceil(l / kEighVectorThreads) blocks of kEighVectorThreads; eigh_vectors_shared_doubles(l) · 8 bytes.
extern "C" __global__ void __launch_bounds__(kEighVectorThreads)
    rsvd_eigh_vectors_f64(double* __restrict__ g, unsigned l, const double* __restrict__ w, double* __restrict__ scratch) {
    eigh_vectors(g, l, w, scratch);
}
SLR_EMU_EXPORT(rsvd_eigh_vectors_f64)
// One block of kEighThreads; eigh_clusters_shared_doubles(l) · 8 bytes.
extern "C" __global__ void __launch_bounds__(kEighThreads, 1)
    rsvd_eigh_clusters_f64(double* __restrict__ g, unsigned l, const double* __restrict__ w, double* __restrict__ scratch) {
    eigh_clusters(g, l, w, scratch);
}
SLR_EMU_EXPORT(rsvd_eigh_clusters_f64)
// Grid ceil(l / kEighBackWarps) blocks of kEighBackWarps warps; eigh_back_shared_doubles(l) · 8 bytes.
extern "C" __global__ void __launch_bounds__(kEighBackWarps * 32)
    rsvd_eigh_back_f64(double* __restrict__ g, unsigned l, double* __restrict__ scratch, int* __restrict__ info) {
    eigh_back(g, l, scratch, info);
}
SLR_EMU_EXPORT(rsvd_eigh_back_f64)

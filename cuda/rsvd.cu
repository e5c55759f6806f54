// Randomized SVD (src/rsvd.rs): the hand-written device pieces around cuBLAS's products. Seven kernels:
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
//   rsvd_gram_check_f32: status[slot] = kStatusNotNearIdentity if some |G[i][j] - delta_ij| > 1e-2 (the test
//                       the factor kernel applies to a second pass's Gram) or some column has
//                       sum_i |G[i][j] - delta_ij| > 1/2 (NaN included), else 0, for the l x l column-major G of a
//                       power-iteration basis after its one CholeskyQR pass. The column sums bound every eigenvalue
//                       of G inside [1/2, 3/2] (Gershgorin), so an accepted basis has cond <= sqrt(3): it spans what
//                       Y spanned and carries it to the next product as well as an orthonormal basis would. (The
//                       element test alone allows ||G - I||_2 up to l / 100.) Launch: one block of 1024 threads, a
//                       warp per column. Floor: l² words read once (l = 138: 76 KB), one barrier.
//   rsvd_cholqr_factor_regs<M>_f32: rsvd_cholqr_factor_f32 for l <= 32 M (M = 1..5) with the triangle in registers
//                       (cholqr_factor_regs below): bitwise the same outputs, shared memory 4 l floats.
//   rsvd_sum_slices_f32: the partial Gram matrices of row chunks summed in order (below).
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
    if (threadIdx.x % 32 == 0 && mine != 0) atomicAdd(nonfinite_count, mine);
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
    *out = beta == 0.0f ? alpha * acc : fmaf(alpha, acc, beta * *out);
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
__device__ __forceinline__ float block_trace(const float* diag, unsigned l) {
    __shared__ float partial[kFactorWarps];
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float t = 0.0f;
    for (unsigned i = threadIdx.x; i < l; i += kFactorThreads) t += diag[i];
    t = slr::warp_sum(t);
    if (lane == 0) partial[warp] = t;
    __syncthreads();
    float total = 0.0f;
    for (unsigned w = 0; w < kFactorWarps; ++w) total += partial[w];
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

// The same factorization and inverse as factor_load + factor_sweep + the R⁻¹ store, with the packed triangle held in
// registers instead of shared memory, for l <= 32 M (M = 1..5: l <= 160, the sketches of r <= 150). Why: the
// shared-memory sweep reads and writes every element of every later row at each step (about 3 shared accesses per
// element: ~1.5 k warp-wide LDS/STS per step at l = 138), and one SM issues about one such instruction per clock,
// so a step costs ~1.6 µs (measured on an H200: 0.22 ms per call at l = 138, 8 calls per rSVD). Here row i lives
// in warp i % 32, slot m = i / 32, lane c holding columns c + 32 q (q <= m): an update is an FFMA on registers
// with its multiplier (row k of X or column k of L, the same for every row of the warp) loaded once per q and
// step, M shared loads per thread per step instead of ~3 per element.
// Per step k: (1) the warp owning row k publishes it (S[k][0..k]) to `pivot_row`; barrier; every thread reads the
// pivot (the guard as in factor_sweep), the lanes holding column k of a later row write L[i][k] = S[i][k] / L[k][k]
// to `col`, and the threads stride over X[k][c] = S[k][c] / L[k][k] into `row` (row[k] = 1 / L[k][k]); barrier;
// (2) each warp loads its M multipliers (row[j] for j <= k, col[j] beyond) and updates its rows: row k becomes
// X's row k, rows i > k take S[i][j] = fmaf(-L[i][k], mult[j], S[i][j]) for j <= i (X[i][k] from -0: the product
// alone). The same operations on the same values in the same order as factor_sweep: bitwise its results
// (tests/rsvd.rs checks). Registers: M (M + 1) / 2 + M data words per thread (20 at M = 5).
// Floor: ~l³/3 FMAs in all (l = 138: 0.9 M, nothing for 1024 threads), l² words read and written once; the cost is
// l dependent steps of two barriers, a square root and three rounds of shared loads (~0.2 µs each on an H200 by
// that count, unmeasured): ~30 µs at l = 138, where the packed kernel's shared-memory issue took ~220 µs.
// All indices into v are compile-time after unrolling (a runtime index would put v in local memory; the SASS test
// rejects LDL/STL).
template <unsigned M>
struct FactorRegs {
    float v[M][M];  // v[m][q]: S[warp + 32 m][lane + 32 q], used for q <= m only
};

// Loads G's lower triangle (+ shift on the diagonal) into the registers, diag[i] = G[i][i] unshifted; ends with a
// barrier; returns, in every thread, whether some |G[i][j] - delta_ij| exceeds 1e-2 or is NaN.
template <unsigned M>
__device__ __forceinline__ bool factor_regs_load(FactorRegs<M>& r, const float* __restrict__ g, unsigned l,
                                                 float shift, float* diag) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bool far = false;
#pragma unroll
    for (unsigned m = 0; m < M; ++m) {
        const unsigned i = warp + 32 * m;
#pragma unroll
        for (unsigned q = 0; q <= m; ++q) {
            const unsigned j = lane + 32 * q;
            float v = 0.0f;
            if (i < l && j <= i) {
                v = g[i + (unsigned long long)j * l];
                far |= !(fabsf(v - (i == j ? 1.0f : 0.0f)) <= 1e-2f);
                if (i == j) {
                    diag[i] = v;
                    v += shift;
                }
            }
            r.v[m][q] = v;
        }
    }
    return __syncthreads_or(far) != 0;
}

template <unsigned M>
__device__ __forceinline__ bool factor_regs_sweep(FactorRegs<M>& r, float* pivot_row, float* col, float* row,
                                                  const float* diag, unsigned l, bool guard) {
    const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    for (unsigned k = 0; k < l; ++k) {
        const unsigned km = k / 32, kq = k / 32, kl = k % 32;  // row k: slot km of warp k % 32; column k: lane kl, q = kq
        if (warp == k % 32) {
#pragma unroll
            for (unsigned m = 0; m < M; ++m) {
                if (m == km) {
#pragma unroll
                    for (unsigned q = 0; q <= m; ++q) {
                        const unsigned j = lane + 32 * q;
                        if (j <= k) pivot_row[j] = r.v[m][q];
                    }
                }
            }
        }
        __syncthreads();
        const float piv = pivot_row[k];
        if (!(piv > 0.0f && piv <= 3.402823466e38f) || (guard && !(piv > 64.0f * kU32Roundoff * diag[k]))) {
            return false;
        }
        const float inv = 1.0f / sqrtf(piv);
        if (lane == kl) {
#pragma unroll
            for (unsigned m = 0; m < M; ++m) {
                const unsigned i = warp + 32 * m;
#pragma unroll
                for (unsigned q = 0; q <= m; ++q) {
                    if (q == kq && i > k && i < l) col[i] = r.v[m][q] * inv;
                }
            }
        }
        for (unsigned c = tid; c < k; c += kFactorThreads) row[c] = pivot_row[c] * inv;
        if (tid == 0) row[k] = inv;
#ifndef SLR_FAULT_CHOLQR_REGS_PHASE_SYNC  // planted fault for the emulator's mutation test: stale multipliers
        __syncthreads();
#endif
        float mult[M];
#pragma unroll
        for (unsigned q = 0; q < M; ++q) {
            const unsigned j = lane + 32 * q;
            mult[q] = j <= k ? row[j] : j < l ? col[j] : 0.0f;
        }
#pragma unroll
        for (unsigned m = 0; m < M; ++m) {
            const unsigned i = warp + 32 * m;
            if (i == k) {
#pragma unroll
                for (unsigned q = 0; q <= m; ++q) {
                    if (lane + 32 * q <= k) r.v[m][q] = mult[q];
                }
            } else if (i > k && i < l) {
                const float li = col[i];
#pragma unroll
                for (unsigned q = 0; q <= m; ++q) {
                    const unsigned j = lane + 32 * q;
                    if (j <= i) r.v[m][q] = fmaf(-li, mult[q], j == k ? -0.0f : r.v[m][q]);
                }
            }
        }
    }
    return true;
}

template <unsigned M>
__device__ __forceinline__ void cholqr_factor_regs(const float* __restrict__ g, unsigned l, unsigned rows,
                                                   unsigned first_pass, float* __restrict__ r_inv,
                                                   unsigned* __restrict__ status, unsigned slot) {
    SLR_DYNAMIC_SMEM(float, smem);
    float* pivot_row = smem;
    float* col = pivot_row + l;
    float* row = col + l;
    float* diag = row + l;
    FactorRegs<M> r;
    unsigned st = 0;
    const bool far = factor_regs_load<M>(r, g, l, 0.0f, diag);
    if (!first_pass && far) st |= kStatusNotNearIdentity;
    bool ok = factor_regs_sweep<M>(r, pivot_row, col, row, diag, l, first_pass != 0);
    if (!ok && first_pass) {
        const float shift = 8.0f * (sqrtf((float)rows) + (float)l) * kU32Roundoff * block_trace(diag, l);
        st |= kStatusShifted;
        __syncthreads();  // every thread has read its last pivot and diag before they are rewritten
        factor_regs_load<M>(r, g, l, shift, diag);
        ok = shift > 0.0f && shift <= 3.402823466e38f && factor_regs_sweep<M>(r, pivot_row, col, row, diag, l, false);
    }
    if (!ok) st |= kStatusFailed;
    // R⁻¹ = Xᵀ: column b = row b of X (this warp's rows b = warp + 32 m, lanes along a); zeros below the diagonal;
    // I after a failure.
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (unsigned m = 0; m < M; ++m) {
        const unsigned b = warp + 32 * m;
        if (b < l) {
#pragma unroll
            for (unsigned q = 0; q < M; ++q) {
                const unsigned a = lane + 32 * q;
                if (a < l) {
                    float x = a == b ? 1.0f : 0.0f;
                    if (q <= m && ok && a <= b) x = r.v[m][q];
                    r_inv[a + (unsigned long long)b * l] = a > b ? 0.0f : x;
                }
            }
        }
    }
    if (threadIdx.x == 0) status[slot] = st;
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

extern "C" __global__ void __launch_bounds__(kFactorThreads)
    rsvd_gram_check_f32(const float* __restrict__ g, unsigned l, unsigned* __restrict__ status, unsigned slot) {
    const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bool far = false;
    for (unsigned j = warp; j < l; j += kFactorWarps) {  // a warp per column, lanes down it (coalesced)
        float column = 0.0f;
        for (unsigned i = lane; i < l; i += 32) {
            const float dev = fabsf(g[i + (unsigned long long)j * l] - (i == j ? 1.0f : 0.0f));
            far |= !(dev <= 1e-2f);
            column += dev;
        }
        column = slr::warp_sum(column);
        far |= !(column <= 0.5f);  // NaN anywhere in the column fails here too
    }
    far = __syncthreads_or(far) != 0;
    if (threadIdx.x == 0) status[slot] = far ? kStatusNotNearIdentity : 0u;
}
SLR_EMU_EXPORT(rsvd_gram_check_f32)

extern "C" __global__ void __launch_bounds__(kFactorThreads)
    rsvd_cholqr_factor_f32(const float* __restrict__ g, unsigned l, unsigned rows, unsigned first_pass,
                           float* __restrict__ r_inv, unsigned* __restrict__ status, unsigned slot) {
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
        const float shift = 8.0f * (sqrtf((float)rows) + (float)l) * kU32Roundoff * block_trace(diag, l);
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

// rsvd_cholqr_factor_regs<M>_f32: rsvd_cholqr_factor_f32 for l <= 32 M with the triangle in registers
// (cholqr_factor_regs above); same arguments, bitwise the same outputs; dynamic shared memory 4 l floats. The
// explicit one block per SM: without it ptxas 13.0 held M = 3 to 32 registers on sm_80 and spilled 8 bytes.
#define SLR_RSVD_FACTOR_REGS(M)                                                                                    \
    extern "C" __global__ void __launch_bounds__(kFactorThreads, 1)                                               \
        rsvd_cholqr_factor_regs##M##_f32(const float* __restrict__ g, unsigned l, unsigned rows,                 \
                                         unsigned first_pass, float* __restrict__ r_inv,                          \
                                         unsigned* __restrict__ status, unsigned slot) {                          \
        cholqr_factor_regs<M>(g, l, rows, first_pass, r_inv, status, slot);                                       \
    }
SLR_RSVD_FACTOR_REGS(1)
SLR_EMU_EXPORT(rsvd_cholqr_factor_regs1_f32)
SLR_RSVD_FACTOR_REGS(2)
SLR_EMU_EXPORT(rsvd_cholqr_factor_regs2_f32)
SLR_RSVD_FACTOR_REGS(3)
SLR_EMU_EXPORT(rsvd_cholqr_factor_regs3_f32)
SLR_RSVD_FACTOR_REGS(4)
SLR_EMU_EXPORT(rsvd_cholqr_factor_regs4_f32)
SLR_RSVD_FACTOR_REGS(5)
SLR_EMU_EXPORT(rsvd_cholqr_factor_regs5_f32)

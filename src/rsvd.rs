//! Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.4 + 5.1): `A ≈ U · diag(s) · Vᵀ` with
//! A: m x n (f32, f16 or bf16, either layout, arithmetic in f32), U: m x r and V: n x r with orthonormal columns,
//! s: r values, non-increasing and non-negative.
//!
//! With `l = min(r + p, min(m, n))` sketch columns (p = oversampling) and q power iterations:
//!
//! 1. Ω (n x l) Gaussian from Philox4x32-10 keyed by the seed (the same bits on the CPU and the device);
//! 2. `Q = orth(A Ω)`; q times: `Q' = orth(Aᵀ Q)`, `Q = orth(A Q')` (re-orthonormalized at every step);
//! 3. `Bᵀ = Aᵀ Q = Q₂ R₂` (orth with its triangular factor), so `B = Qᵀ A = R₂ᵀ Q₂ᵀ`;
//! 4. the small SVD `R₂ᵀ = Ũ Σ Ṽᵀ` (l x l, in f64: the eigenproblem `R₂ᵀR₂ = Ũ Σ² Ũᵀ`, then `Ṽ = R₂ Ũ Σ⁻¹`
//!    re-orthonormalized: `small_svd` on the host with faer for l < 96, `small_svd_device` on the device from
//!    l = 96 on the queued path; see "Where each step runs" below);
//! 5. `U = Q Ũ[:, :r]`, `s = Σ[:r]`, `V = Q₂ Ṽ[:, :r]` (Vᵀ is what the caller receives).
//!
//! `orth` is CholeskyQR2 with a guard: the Gram matrix `YᵀY` (f32 product) goes to the host, is factored in f64,
//! and `Y ← Y R⁻¹` is applied; passes repeat until the Gram matrix of the current Y is within 1e-2 of I (then one
//! last pass makes it orthonormal to rounding), at most 4 passes. Inside the power iteration (every basis but the
//! last Q and Q₂) a well-conditioned basis is all the next product needs, so one pass is taken when
//! `‖R‖_F·‖R⁻¹‖_F ≤ 1e3` (an upper bound on cond₂(Y); the basis is then orthonormal to ~u·cond₂² ≤ 0.06):
//! 8 passes instead of 12 at q = 2, with the accuracy unchanged (docs/rsvd.md). If the first Cholesky fails or a pivot shows a
//! column dependent at f32 precision (`L_ii² ≤ 64·u·G_ii`), the first pass is shifted (`G + s·I`, shifted
//! CholeskyQR3); if a Cholesky still fails, or 4 passes do not converge, Householder QR of the original Y runs on
//! the host (faer), so rank-deficient sketches (e.g. an exactly rank-5 matrix asked for r = 20) still give an
//! orthonormal Q. R always has a non-negative diagonal, so Q is the unique QR factor whichever path ran: the CPU
//! reference and the device agree up to rounding. [`RsvdInfo`] counts which path each orthonormalization took.
//!
//! **Queued device path.** That guarded orth reads every Gram matrix back to the host (a round trip and a host
//! factorization per pass, with the device idle meanwhile). [`rsvd`] first tries the same algorithm with no host
//! step before the small SVD: each pass a Gram product, one block's kernel (f32 Cholesky of G and the inverse of
//! its factor, with the first pass's pivot guard and shift done in the kernel: `rsvd_cholqr_factor_tiles_f32`,
//! blocked in 32 x 32 tiles, for l ≤ 160, `rsvd_cholqr_factor_tiles9_f32` for l ≤ 288 on sm_90,
//! `rsvd_cholqr_factor_f32` on the packed triangle above) and `Y ← Y R⁻¹`, all queued on the stream; the last Q and Q₂ take two passes (CholeskyQR2;
//! the second pass's l x l step is `X = I − (G − I)/2` when `‖G − I‖_F ≤ 2⁻¹²`, which leaves `XᵀGX` within ~5e-8 of
//! I before X's rounding to f32, when G is that near I, as it nearly always is after the power iteration's first pass, and the Cholesky kernel otherwise:
//! `near_identity_step`; `SLR_RSVD_PATH=cholesky2` always takes the Cholesky), the
//! power-iteration bases one, whose result's Gram matrix `rsvd_gram_check_f32` checks: every column's deviations
//! from I summing to at most 1/2, which by Gershgorin keeps G's eigenvalues in [1/2, 3/2] and the basis's condition
//! number ≤ √3, so it carries the subspace as well as an orthonormal one (until 2026-11-28 every element also had to
//! be within 1e-2). Then `R₂ = Q₂ᵀ Bᵀ` (B = R₂ᵀ Q₂ᵀ because Q₂ spans Bᵀ's
//! columns to rounding) and the status words come back in one synchronization. If any Cholesky failed, a checked
//! Gram matrix failed its column sums (the basis was too ill-conditioned for one pass: cond(Y) beyond several
//! hundred, e.g. rank-deficient or fast-decaying spectra at large l; only the first, ungraded sketch basis gets
//! there in practice), or a second pass found its Gram matrix farther than 1e-2 from I, the work
//! is discarded. When only the first sketch basis was refused (its check failed, its possibly shifted Cholesky
//! did not), the queued path runs once more with that basis in two passes, both under the first pass's rules
//! (`RsvdInfo::first_basis_two_passes`): every later basis is graded by the factor before it, so steep spectra
//! (σ_i = i^-2 at l = 70 in the tests) then run queued to the end. Otherwise, or if that fails too, the
//! host-driven algorithm above runs from the start (correct, but the queued attempts' time is lost). One pass on those bases instead of two took 0.87-0.99x the time on an H200 (a5e77c2, 4096² and 4096 x 11008,
//! r = 16 and 128). `RsvdInfo::device_queued` says which ran. l is limited by shared memory
//! (≤ 320 on sm_90). `SLR_RSVD_PATH=host` forces the host-driven path. The CPU reference is always host-driven.
//!
//! Where each step runs (device path, [`rsvd`]): bf16/f16 → f32 conversion and the non-finite count, the sketch,
//! and every product with A or with an m x l / n x l matrix on the device (cuBLAS sgemm, TF32 tensor cores on
//! request; the emulator, which has no cuBLAS, runs them through the crate's own small `rsvd_gemm_f32` kernel);
//! the Cholesky/inverse steps on the device on the queued path, on the host (faer, f64) otherwise; the rare
//! Householder fallback on the host with faer in f64. The small SVD (through the l x l eigenproblem, 2.5-3x faster
//! than faer's SVD) runs on the host in f64 with faer (one l x l transfer, ≤ 300 KB at l = 266) for l < 96 and on
//! the host-driven path; from l = 96 (`SMALL_EIGEN_DEVICE_MIN_L`) the queued path runs it on the device
//! (`small_svd_device`: cuSOLVER syevd, or our eigensolver with `SLR_RSVD_SMALL=own`, and our f64 kernels for its
//! products and check), and only σ (with the eigensolver's and the kernels' status) is read back; the host finishes
//! Ṽ_r only when the device's check fails (2026-11-29: this said the small SVD always ran on the host; faer's
//! timings on the development machine are in docs/rsvd.md). The CPU reference [`rsvd_cpu`] is the same algorithm
//! with faer f32 products.
//!
//! Defaults ([`RsvdConfig::new`]): oversampling p = 10, q = 2 power iterations, TF32 off. With them the rank-r
//! error was measured within 1.004x of optimal on power-law spectra (σ_i = 1/i and i^-0.5; q = 0 gives 1.19-1.45x,
//! q = 1 up to 1.018x), the leading singular values within 1e-4 relative (docs/rsvd.md, `tests/rsvd.rs`).
//!
//! Setting the environment variable `SLR_RSVD_PROFILE` prints the time of each step to stderr (a diagnostic, off by
//! default): on the device each step ends with a CUDA event, and the events are read once at the end of the call
//! (since 2026-11-27; until then the device was synchronized after every step); a host engine reads the wall
//! clock (`Profile`).
//!
//! `r + p > min(m, n)` is not an error: l is clamped to `min(m, n)` (the sketch then spans A's whole range, and
//! the result is the optimal rank-r truncation up to rounding).
use faer::{Mat, Par, Side};
use half::bf16;

use crate::dense::{DenseShape, MatMut, MatRef};
use crate::device::{check_no_alias, DeviceMatMut, DeviceMatRef, DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, check_shape, Error, Result};

const MODULE: &str = "rsvd";
const THREADS: u32 = 256;
const GEMM_TILE: u32 = 16;
/// Unit roundoff of f32.
const U32_ROUNDOFF: f64 = 5.960464477539063e-8;
/// Most CholeskyQR passes before the Householder fallback.
const MAX_PASSES: usize = 4;
/// A Gram matrix this close to I (max-abs) means one more pass gives an orthonormal Q.
const NEAR_IDENTITY: f64 = 1e-2;

/// Default oversampling p (sketch columns beyond the rank).
pub const DEFAULT_OVERSAMPLE: usize = 10;
/// Default number of power iterations q.
pub const DEFAULT_POWER_ITERS: usize = 2;

/// Parameters of a randomized SVD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsvdConfig {
    /// Rank r of the result, `1..=min(m, n)`.
    pub rank: usize,
    /// Oversampling p: the sketch has `min(r + p, min(m, n))` columns.
    pub oversample: usize,
    /// Power iterations q (each one is a product with Aᵀ and one with A, each re-orthonormalized), at most
    /// [`MAX_POWER_ITERS`].
    pub power_iters: usize,
    /// Seed of the Gaussian sketch (Philox4x32-10 key).
    pub seed: u64,
    /// Let cuBLAS use TF32 tensor cores (10-bit mantissas in the product inputs) for the 2q + 1 range-finder and
    /// power-iteration products with A, off by default. The projection `Bᵀ = Aᵀ Q`, the Gram matrices, `Y·R⁻¹`
    /// and the final products stay f32, so U and Vᵀ are orthonormal to f32 rounding and s, Vᵀ are the exact
    /// (f32) singular triplets of A on the subspace found; TF32 only moves that subspace, by far less than the
    /// sketch itself leaves out, as long as σ_r is well above TF32's rounding of the products (~1e-3·σ₁).
    /// Measured (docs/rsvd.md): the same error ratio and leading singular values as f32 to 4-5 digits on
    /// power-law, heavy-tailed and flat spectra (LLM weights: σ_r/σ₁ ≈ 1e-2 at r = 128); on a spectrum that
    /// has decayed below that by the r-th value (exponential, σ_64 = 3e-5·σ₁) the error stops near 1e-4·‖A‖_F
    /// instead of reaching the optimum (ratio 2.3 there, 1.0001 with f32). The CPU reference and the emulator
    /// model it by truncating both factors of those products to TF32 (the larger of the two conversion errors).
    /// Under the opt-in `SLR_RSVD_GEMM=bf16x3` (or `bf16x3_all`) the device's [`rsvd`] runs those products on bf16
    /// tensor cores at f32 accuracy instead (A and X as exact bf16 slices, docs/rsvd.md), whatever this flag says;
    /// the CPU reference ignores that variable.
    pub tf32: bool,
}

/// The most power iterations [`RsvdConfig::power_iters`] may ask for (`TooLarge` beyond): each is two products
/// with A, and past a handful the basis stops changing (the defaults' table in docs/rsvd.md: q = 3 already within
/// 1e-4 of the optimum on every spectrum measured). A bound keeps the per-iteration status words and the loop
/// finite (a huge q overflowed their count).
pub const MAX_POWER_ITERS: usize = 64;

impl RsvdConfig {
    /// Rank `rank` with the defaults: p = [`DEFAULT_OVERSAMPLE`], q = [`DEFAULT_POWER_ITERS`], seed 0, TF32 off.
    pub fn new(rank: usize) -> Self {
        RsvdConfig { rank, oversample: DEFAULT_OVERSAMPLE, power_iters: DEFAULT_POWER_ITERS, seed: 0, tf32: false }
    }
}

/// How a run went: the sketch width and the path each orthonormalization took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsvdInfo {
    /// l = min(r + p, min(m, n)).
    pub sketch_cols: usize,
    /// Bases inside the power iteration that took one CholeskyQR pass (a well-conditioned basis is all the next
    /// product needs). Host-driven path: taken when `‖R‖_F·‖R⁻¹‖_F ≤ 1e3` bounds cond(Y); queued path: always, the
    /// result's Gram matrix checked on the device to bound its condition number by √3 (else the host-driven path
    /// reruns; module docs).
    pub single_pass: usize,
    /// Orthonormalizations done by plain CholeskyQR (2 passes, occasionally 3 or 4).
    pub cholesky_qr: usize,
    /// Orthonormalizations whose first pass needed the shift (shifted CholeskyQR3).
    pub shifted_cholesky_qr: usize,
    /// Orthonormalizations that fell back to Householder QR on the host.
    pub householder: usize,
    /// The device ran the whole power iteration queued, with no host round trip before the small SVD: the l x l
    /// steps of every CholeskyQR pass in one block's kernel (`rsvd_cholqr_factor_tiles_f32` for l ≤ 160,
    /// `rsvd_cholqr_factor_tiles9_f32` for l ≤ 288 on sm_90, else `rsvd_cholqr_factor_f32`), one pass per power-iteration basis (counted in
    /// `single_pass`, each checked on the device to have cond ≤ √3), two for the last Q and Q₂ (module docs). False on the CPU reference,
    /// for l above [`QUEUED_MAX_SKETCH_COLS`], under `SLR_RSVD_PATH=host`, and when a basis needed the guarded
    /// path (then the host-driven algorithm ran from the start; the counts above are its own).
    pub device_queued: bool,
    /// The small SVD ran on the device (from l = 96 on a queued run: R₂ᵀR₂, the eigensolver, Ũ_r and Ṽ_r there,
    /// only σ and a status read back; docs/rsvd.md), not on the host.
    pub small_svd_on_device: bool,
    /// On that device path, Ṽ_r was more than 1e-9 from orthonormal (a spectrum spanning many decades within the
    /// first r, or σ_j = 0) and the host re-orthonormalized it (Householder QR) from the device's eigenvectors.
    pub small_svd_host_finish: bool,
    /// Products with A that ran on bf16 tensor cores with A and their f32 factor as exact bf16 slices
    /// (docs/rsvd.md, "Products on bf16 tensor cores"): the 2q + 1 power-iteration products under `SLR_RSVD_GEMM=bf16x3`, all 2q + 2 (the
    /// projection `Bᵀ = Aᵀ Q` too) under `SLR_RSVD_GEMM=bf16x3_all`, else 0.
    pub bf16x3_products: usize,
    /// Second CholeskyQR passes of the queued path (the last Q's and Q₂'s) whose l x l step was `X = I − (G − I)/2`
    /// because their Gram matrix G was within 2⁻¹² of I in the Frobenius norm (module docs), not the Cholesky
    /// kernel. 0 on the CPU reference, the host-driven path and under `SLR_RSVD_PATH=cholesky2`.
    pub near_identity_steps: usize,
    /// The queued path's first attempt refused its first sketch basis after one pass (a spectrum steep enough that
    /// the ungraded sketch AΩ was too ill-conditioned for it) and its second attempt, which ran, gave that basis
    /// two passes, the second also allowed the shift (module docs). False otherwise.
    pub first_basis_two_passes: bool,
}

/// Widest sketch whose l x l factorization fits one block's shared memory ((l (l + 1) / 2 + 3 l) f32 words ≤
/// 227 KiB); wider sketches take the host-driven path.
pub const QUEUED_MAX_SKETCH_COLS: usize = 320;

// Status bits written by rsvd_cholqr_factor_f32 (cuda/rsvd.cu has the same values).
const STATUS_SHIFTED: u32 = 1;
const STATUS_FAILED: u32 = 2;
const STATUS_NOT_NEAR_IDENTITY: u32 = 4;
/// `rsvd_near_identity_step_f32` took a second pass's l x l step ([`near_identity_step`]).
const STATUS_NEAR_IDENTITY_STEP: u32 = 8;
const FACTOR_THREADS: u32 = 1024;

// ---------------------------------------------------------------------------------------------------------------
// The Gaussian sketch: Philox4x32-10 + Box-Muller with our own log/sin/cos polynomials (cuda/rsvd.cu has the
// same formulas, operation for operation).

const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

fn philox4x32(mut c: [u32; 4], mut k0: u32, mut k1: u32) -> [u32; 4] {
    for _ in 0..10 {
        let p0 = PHILOX_M0 as u64 * c[0] as u64;
        let p1 = PHILOX_M1 as u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0];
        k0 = k0.wrapping_add(PHILOX_W0);
        k1 = k1.wrapping_add(PHILOX_W1);
    }
    c
}

/// 2^-24 and 2^-25, exactly (bits 0x3380_0000 and 0x3300_0000).
const TWO_M24: f32 = 1.0 / 16_777_216.0;
const TWO_M25: f32 = 1.0 / 33_554_432.0;

fn uniform_open(w: u32) -> f32 {
    ((w >> 8) as f32).mul_add(TWO_M24, TWO_M25)
}

fn log_unit(u: f32) -> f32 {
    let bits = u.to_bits();
    let mut e = (bits >> 23) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x7f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {  // the f32 nearest sqrt(2), as the kernel's 1.41421356f
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let mut p = s2.mul_add(1.0f32 / 11.0, 1.0f32 / 9.0);
    p = s2.mul_add(p, 1.0f32 / 7.0);
    p = s2.mul_add(p, 1.0f32 / 5.0);
    p = s2.mul_add(p, 1.0f32 / 3.0);
    let t = s2 * p;
    let two_s = 2.0 * s;
    let ln_m = two_s.mul_add(t, two_s);
    // The literal as written in cuda/rsvd.cu; it rounds to the same f32 (ln 2) on both sides.
    #[allow(clippy::excessive_precision)]
    let ln2 = 0.693_147_182f32;
    (e as f32).mul_add(ln2, ln_m)
}

fn cos_sin_turn(w: u32) -> (f32, f32) {
    let q = w >> 30;
    let v = (((w >> 6) & 0xff_ffff) as f32).mul_add(TWO_M24, TWO_M25 - 0.5);
    #[allow(clippy::excessive_precision)] // as written in cuda/rsvd.cu; the same f32 (π/2) on both sides
    let half_pi = 1.570_796_37f32;
    let x = v * half_pi;
    let z = x * x;
    let mut ps = z.mul_add(1.0f32 / 362_880.0, -1.0f32 / 5040.0);
    ps = z.mul_add(ps, 1.0f32 / 120.0);
    ps = z.mul_add(ps, -1.0f32 / 6.0);
    let xz = x * z;
    let sn = xz.mul_add(ps, x);
    let mut pc = z.mul_add(-1.0f32 / 3_628_800.0, 1.0f32 / 40_320.0);
    pc = z.mul_add(pc, -1.0f32 / 720.0);
    pc = z.mul_add(pc, 1.0f32 / 24.0);
    pc = z.mul_add(pc, -0.5);
    let cs = z.mul_add(pc, 1.0);
    match q {
        0 => (cs, sn),
        1 => (-sn, cs),
        2 => (-cs, -sn),
        _ => (sn, -cs),
    }
}

fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    let r = (-2.0 * log_unit(uniform_open(w0))).sqrt();
    let (c, s) = cos_sin_turn(w1);
    (r * c, r * s)
}

/// CPU reference of the sketch: `out[i]` = standard normal number `i` of the stream keyed by `seed` (Philox4x32-10
/// with counter `i / 4`, word `i % 4`; Box-Muller on word pairs). Bitwise what [`gaussian_sketch`] writes.
pub fn gaussian_sketch_cpu(seed: u64, out: &mut [f32]) {
    for (g, chunk) in out.chunks_mut(4).enumerate() {
        let g = g as u64;
        let w = philox4x32([g as u32, (g >> 32) as u32, 0, 0], seed as u32, (seed >> 32) as u32);
        let (a, b) = box_muller(w[0], w[1]);
        let (c, d) = box_muller(w[2], w[3]);
        for (o, z) in chunk.iter_mut().zip([a, b, c, d]) {
            *o = z;
        }
    }
}

/// `out[i]` = standard normal number `i` of the stream keyed by `seed`, on the device (kernel
/// `rsvd_gaussian_f32`); bitwise equal to [`gaussian_sketch_cpu`]. Asynchronous. Errors: buffers of another
/// backend, more than `2^31 - 1` blocks of 1024 values.
pub fn gaussian_sketch<'a>(gpu: &Gpu, seed: u64, out: impl Into<DeviceSliceMut<'a, f32>>) -> Result<()> {
    const OP: &str = "gaussian_sketch";
    let mut out = out.into();
    let count = out.len();
    if count == 0 {
        return Ok(());
    }
    let launch = LaunchShape::linear(OP, count.div_ceil(4), THREADS)?;
    let (p_out, _g) = out.kernel_ptr_mut(gpu, OP, "out")?;
    // SAFETY: thread g writes out[4g .. min(4g + 4, count)], inside the count elements of `out`; no inputs; the
    // grid covers ceil(count / 4) threads and surplus threads return; arguments match rsvd_gaussian_f32.
    unsafe {
        gpu.launch(
            MODULE,
            "rsvd_gaussian_f32",
            launch,
            &[p_out, KernelArg::U64(count as u64), KernelArg::U32(seed as u32), KernelArg::U32((seed >> 32) as u32)],
        )
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The algorithm, once, over an engine that owns A and does the big products (CPU: faer; device: cuBLAS or our
// kernel). Small l x l algebra happens here, on the host in f64.

trait Engine {
    /// An f32 matrix owned by the engine (column-major, packed).
    type M;
    fn sketch(&mut self, rows: usize, cols: usize, seed: u64) -> Result<Self::M>;
    /// `A · X` (m x l) or, with `transpose`, `Aᵀ · X` (n x l). `Product::PowerIteration` marks the 2q + 1
    /// products that only carry a subspace forward (TF32 when [`RsvdConfig::tf32`] asks for it);
    /// `Product::Projection` is `Bᵀ = Aᵀ Q`, always f32.
    fn a_mul(&mut self, x: &Self::M, transpose: bool, product: Product) -> Result<Self::M>;
    /// `XᵀX` (f32 product), on the host in f64.
    fn gram(&mut self, x: &Self::M) -> Result<Mat<f64>>;
    /// `X · S` with S a small host matrix (rounded to f32).
    fn mul_small(&mut self, x: &Self::M, s: &Mat<f64>) -> Result<Self::M>;
    fn to_host(&mut self, x: &Self::M) -> Result<Mat<f64>>;
    #[allow(clippy::wrong_self_convention)] // the engine (device or CPU) receives a host matrix
    fn from_host(&mut self, x: &Mat<f64>) -> Result<Self::M>;
    /// Waits for queued work (only the profiler calls it).
    fn sync(&mut self) -> Result<()>;
    /// An event recorded on the device's stream after the work queued so far (`None`: a host engine, or the
    /// driver refused; the profile then synchronizes instead).
    fn mark(&mut self) -> Option<cudarc::driver::CudaEvent> {
        None
    }
}

/// The steps [`Profile`] times.
#[derive(Clone, Copy)]
enum Step {
    Convert,
    Sketch,
    AProducts,
    Gram,
    HostFactor,
    ApplyR,
    SmallSvd,
    Final,
    DeviceFactor,
    R2ReadBack,
}
const STEP_NAMES: [&str; 10] = [
    "convert+count",
    "sketch",
    "products with A",
    "Gram (product; + download on the host path)",
    "host Cholesky/inverse",
    "Y·R⁻¹ (product; + upload on the host path)",
    "small SVD (host products and eigensolver, or the device's; + R₂ and status downloads on the device path)",
    "final products",
    "device Cholesky/inverse",
    "R₂ product (device path)",
];

/// Time per step, a diagnostic turned on by the environment variable `SLR_RSVD_PROFILE`; one line goes to stderr
/// per call. On the device each step ends with a CUDA event (nothing waits: a host step between two events, the
/// small SVD, is timed by the device's idle gap, which the host's work fills), and the events are read once at the
/// end; a host engine synchronizes (a no-op) and reads the clock. (Until 2026-11-27 the device path synchronized
/// after every step too, which added ~17 µs per step on the H200 and overstated the small ones.) Off (the
/// default), it costs one branch per step.
struct Profile {
    on: bool,
    last: std::time::Instant,
    ms: [f64; 10],
    /// Host time inside the small SVD's eigensolver call (faer, or cuSOLVER with its transfers), a part of the
    /// small SVD step.
    eigen_ms: f64,
    /// Device laps: the event before the first, then (step, event ending it).
    start: Option<cudarc::driver::CudaEvent>,
    laps: Vec<(Step, cudarc::driver::CudaEvent)>,
}

impl Profile {
    /// The profile of one call; `gpu` records the device clock's start (on the device path).
    fn from_env(gpu: Option<&Gpu>) -> Self {
        let on = std::env::var_os("SLR_RSVD_PROFILE").is_some();
        let start = if on { gpu.and_then(Gpu::event_now) } else { None };
        Profile { on, last: std::time::Instant::now(), ms: [0.0; 10], eigen_ms: 0.0, start, laps: Vec::new() }
    }
    /// Charges the time since the previous lap to `step`.
    fn lap<E: Engine>(&mut self, e: &mut E, step: Step) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        if self.start.is_some() {
            if let Some(ev) = e.mark() {
                self.laps.push((step, ev));
                return Ok(());
            }
        }
        e.sync()?;
        let now = std::time::Instant::now();
        self.ms[step as usize] += (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        Ok(())
    }
    fn report(&mut self, what: &str, info: &RsvdInfo) {
        if !self.on {
            return;
        }
        if let (Some(start), Some((_, last))) = (&self.start, self.laps.last()) {
            let _ = last.synchronize();
            let mut prev = start;
            for (step, ev) in &self.laps {
                self.ms[*step as usize] += prev.elapsed_ms(ev).map(f64::from).unwrap_or(f64::NAN);
                prev = ev;
            }
        }
        let total: f64 = self.ms.iter().sum();
        let steps: Vec<String> = STEP_NAMES.iter().zip(self.ms).map(|(n, t)| format!("{n} {t:.3}")).collect();
        eprintln!("rsvd profile ({what}, l = {}): total {total:.3} ms = {} ms (small SVD's eigensolver {:.3} ms); {info:?}", info.sketch_cols, steps.join(", "), self.eigen_ms);
    }
}

/// The factors before the last products: `U = q · ur`, `V = q2 · vr` (ur and vr l x r, in the engine's f32).
struct Factors<M> {
    q: M,
    ur: M,
    s: Vec<f32>,
    q2: M,
    vr: M,
}

/// Upper-triangular R with `G = RᵀR`, if G is numerically positive definite: `None` when faer's Cholesky fails
/// or, with `pivot_guard`, when a pivot says a column is dependent at f32 precision.
fn cholesky_upper(g: &Mat<f64>, pivot_guard: bool) -> Option<Mat<f64>> {
    let llt = g.llt(Side::Lower).ok()?;
    let l = llt.L();
    let n = g.nrows();
    for i in 0..n {
        let d = l[(i, i)];
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must fail the test too
        let not_positive = !(d > 0.0);
        if not_positive || !d.is_finite() || (pivot_guard && d * d <= 64.0 * U32_ROUNDOFF * g[(i, i)]) {
            return None;
        }
    }
    Some(l.transpose().to_owned())
}

fn invert_upper(r: &Mat<f64>) -> Mat<f64> {
    let mut inv = Mat::<f64>::zeros(r.nrows(), r.ncols());
    faer::linalg::triangular_inverse::invert_upper_triangular(inv.as_mut(), r.as_ref(), Par::Seq);
    // The routine leaves the strictly lower part unspecified.
    for j in 0..inv.ncols() {
        for i in j + 1..inv.nrows() {
            inv[(i, j)] = 0.0;
        }
    }
    inv
}

fn max_dev_from_identity(g: &Mat<f64>) -> f64 {
    let mut dev = 0f64;
    for j in 0..g.ncols() {
        for i in 0..g.nrows() {
            let want = if i == j { 1.0 } else { 0.0 };
            dev = dev.max((g[(i, j)] - want).abs());
        }
    }
    if dev.is_nan() {
        f64::INFINITY
    } else {
        dev
    }
}

/// Which product with A an engine is asked for (the precision it may use).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Product {
    /// `A Ω`, `Aᵀ Q`, `A Q'` of the range finder and power iteration: only their column space is used, and only
    /// to find the next basis, so TF32 rounding (when [`RsvdConfig::tf32`] asks for it) moves the subspace by
    /// ~1e-3 of what the sketch already leaves out, not the factors' precision (docs/rsvd.md).
    PowerIteration,
    /// `Bᵀ = Aᵀ Q`: s and V are its exact singular values and vectors in Q's coordinates, so it is always f32.
    Projection,
}

/// What an orthonormalization has to deliver.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// A well-conditioned basis of Y's range: the bases inside the power iteration, which only carry a subspace
    /// to the next product with A. One CholeskyQR pass is enough when `‖R‖_F·‖R⁻¹‖_F ≤ SINGLE_PASS_COND`.
    Basis,
    /// Q orthonormal to f32 rounding (the Q that U and B are formed from).
    Orthonormal,
    /// Orthonormal Q and the triangular factor R of `Y = Q R` (Bᵀ's, for the small SVD).
    WithR,
}

/// Upper bound on cond₂(Y) (= cond₂(R)) below which one CholeskyQR pass leaves a good basis: the computed
/// `Q₁ = Y R⁻¹` has `‖Q₁ᵀQ₁ − I‖ ≈ u·cond₂(Y)² ≤ 0.06` (u = 2⁻²⁴), so cond₂(Q₁) ≤ 1.07, while its range is Y's
/// to the same rounding any QR leaves. `‖R‖_F·‖R⁻¹‖_F ≥ cond₂(R)` is what we test (O(l²) on the host); a
/// well-conditioned sketch gives about l·cond₂(Y), so l up to ~500 takes the single pass.
const SINGLE_PASS_COND: f64 = 1e3;

fn frobenius(x: &Mat<f64>) -> f64 {
    let mut sum = 0f64;
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            sum += x[(i, j)] * x[(i, j)];
        }
    }
    sum.sqrt()
}

/// `Y = Q R` with Q orthonormal (rows x l) and R upper triangular with a non-negative diagonal (module docs);
/// with [`Goal::Basis`], possibly Q from a single CholeskyQR pass (a well-conditioned basis of the same range).
/// R is returned for [`Goal::WithR`] and from the Householder fallback.
fn orth<E: Engine>(e: &mut E, y0: &E::M, rows: usize, goal: Goal, info: &mut RsvdInfo, prof: &mut Profile) -> Result<(E::M, Option<Mat<f64>>)> {
    let mut r_acc: Option<Mat<f64>> = None;
    let mut cur: Option<E::M> = None;
    let mut shifted = false;
    for pass in 0..MAX_PASSES {
        let y = cur.as_ref().unwrap_or(y0);
        let g = e.gram(y)?;
        prof.lap(e, Step::Gram)?;
        let l = g.nrows();
        let finishing = pass > 0 && max_dev_from_identity(&g) <= NEAR_IDENTITY;
        let r = match cholesky_upper(&g, pass == 0) {
            Some(r) => r,
            None if pass == 0 => {
                // Shifted CholeskyQR (Fukaya et al. 2020): G + s·I is safely positive definite; the passes that
                // follow remove the shift's effect.
                let trace: f64 = (0..l).map(|i| g[(i, i)]).sum();
                let shift = 8.0 * ((rows as f64).sqrt() + l as f64) * U32_ROUNDOFF * trace;
                let mut gs = g.clone();
                for i in 0..l {
                    gs[(i, i)] += shift;
                }
                shifted = true;
                match cholesky_upper(&gs, false) {
                    Some(r) if shift > 0.0 => r,
                    _ => break,
                }
            }
            None => break,
        };
        let r_inv = invert_upper(&r);
        let single = goal == Goal::Basis && pass == 0 && !shifted && frobenius(&r) * frobenius(&r_inv) <= SINGLE_PASS_COND;
        let acc = match (goal, r_acc.take()) {
            (Goal::WithR, None) => Some(r),
            (Goal::WithR, Some(acc)) => Some(&r * &acc),
            _ => None,
        };
        prof.lap(e, Step::HostFactor)?;
        let next = e.mul_small(y, &r_inv)?;
        prof.lap(e, Step::ApplyR)?;
        if single {
            info.single_pass += 1;
            return Ok((next, None));
        }
        if finishing {
            if shifted {
                info.shifted_cholesky_qr += 1;
            } else {
                info.cholesky_qr += 1;
            }
            return Ok((next, acc));
        }
        r_acc = acc;
        cur = Some(next);
    }
    // Householder QR of the original Y on the host: orthonormal whatever Y's rank.
    info.householder += 1;
    let y = e.to_host(y0)?;
    let qr = y.qr();
    let mut q = qr.compute_thin_Q();
    let mut r = qr.thin_R().to_owned();
    for i in 0..r.nrows() {
        if r[(i, i)] < 0.0 {
            for j in 0..r.ncols() {
                r[(i, j)] = -r[(i, j)];
            }
            for k in 0..q.nrows() {
                q[(k, i)] = -q[(k, i)];
            }
        }
    }
    let q = e.from_host(&q)?;
    prof.lap(e, Step::HostFactor)?;
    Ok((q, Some(r)))
}

/// l = min(r + p, min(m, n)): the sketch's columns (module docs).
fn sketch_cols(cfg: &RsvdConfig, m: usize, n: usize) -> usize {
    cfg.rank.saturating_add(cfg.oversample).min(m.min(n))
}

fn run<E: Engine>(e: &mut E, m: usize, n: usize, cfg: &RsvdConfig, info: &mut RsvdInfo, prof: &mut Profile) -> Result<Factors<E::M>> {
    let r = cfg.rank;
    let l = sketch_cols(cfg, m, n);
    info.sketch_cols = l;
    let omega = e.sketch(n, l, cfg.seed)?;
    prof.lap(e, Step::Sketch)?;
    let y = e.a_mul(&omega, false, Product::PowerIteration)?;
    prof.lap(e, Step::AProducts)?;
    // Inside the power iteration a basis only carries the subspace to the next product; the last Q is the one
    // U and B are formed from, so it is orthonormalized in full.
    let goal_of_q = |last: bool| if last { Goal::Orthonormal } else { Goal::Basis };
    let (mut q, _) = orth(e, &y, m, goal_of_q(cfg.power_iters == 0), info, prof)?;
    for i in 0..cfg.power_iters {
        let z = e.a_mul(&q, true, Product::PowerIteration)?;
        prof.lap(e, Step::AProducts)?;
        let (z, _) = orth(e, &z, n, Goal::Basis, info, prof)?;
        let y = e.a_mul(&z, false, Product::PowerIteration)?;
        prof.lap(e, Step::AProducts)?;
        q = orth(e, &y, m, goal_of_q(i + 1 == cfg.power_iters), info, prof)?.0;
    }
    let bt = e.a_mul(&q, true, Product::Projection)?;
    prof.lap(e, Step::AProducts)?;
    let (q2, r2) = orth(e, &bt, n, Goal::WithR, info, prof)?;
    let r2 = r2.expect("Goal::WithR returns R on every path");
    // B = Qᵀ A = R₂ᵀ Q₂ᵀ; the SVD of the small R₂ᵀ gives B's.
    let (s, ur, vr) = small_svd(&r2, r)?;
    let (ur, vr) = (e.from_host(&ur)?, e.from_host(&vr)?);
    prof.lap(e, Step::SmallSvd)?;
    Ok(Factors { q, ur, s, q2, vr })
}

/// The leading r singular triplets of `B = R₂ᵀ Q₂ᵀ` in B's own coordinates: `R₂ᵀ ≈ Ũ_r Σ_r Ṽ_rᵀ`.
///
/// Through the symmetric eigenproblem `B Bᵀ = R₂ᵀ R₂ = Ũ Σ² Ũᵀ` (faer, f64), then `Ṽ_r = R₂ Ũ_r Σ_r⁻¹`
/// re-orthonormalized by a Householder QR with a non-negative diagonal (columns with σ_j ≤ ε₆₄·σ₁ carry no
/// information: they are zeroed first and the QR completes them to an orthonormal set). In f64 the squared
/// condition number costs nothing that f32 factors could show: σ_j is exact to ~ε₆₄·σ₁²/σ_j² relative, 1e-8 at
/// σ_j = 1e-4·σ₁, while A's own f32 rounding already perturbs σ_j by ~6e-8·‖A‖. Measured 2-3x faster than faer's
/// SVD of R₂ᵀ at l = 138-266 (docs/rsvd.md), which was the largest host step.
fn small_svd(r2: &Mat<f64>, r: usize) -> Result<(Vec<f32>, Mat<f64>, Mat<f64>)> {
    small_svd_with(r2, r, host_eigen)
}

/// The symmetric eigendecomposition of the small SVD's Gram matrix on the host (faer, f64): eigenvalues in
/// non-decreasing order and the eigenvectors as columns.
fn host_eigen(g: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let evd = g.self_adjoint_eigen(Side::Lower).map_err(|_| Error::NoConvergence { op: "rsvd", what: "small eigenproblem (faer)" })?;
    let lam = evd.S().column_vector();
    Ok(((0..g.nrows()).map(|i| lam[i]).collect(), evd.U().to_owned()))
}

/// Smallest sketch width l whose small eigenproblem runs on the device (cuSOLVER syevd) by default. Measured on an
/// H200 (sixth run, 5f7e50a, docs/benchmarks.md): at l = 138 syevd took the rSVD from 6.69 to 5.33 ms (4096², f32)
/// and 8.14 to 7.05 ms (4096 x 11008, bf16), the host's faer eigensolver being ~1.3 ms of that host's time; at
/// l = 26 it cost 0.13-0.18 ms more than faer (a fixed ~0.3 ms of cuSOLVER's launches and three read-backs). faer
/// grows as l³, so the crossover is near (0.3 / 1.3)^(1/3) · 138 ≈ 85 (estimate, not measured between): from 96 on
/// the device.
const SMALL_EIGEN_DEVICE_MIN_L: usize = 96;

/// Which solver takes the small eigenproblem of a queued (device) rSVD with sketch width `l`: `SLR_RSVD_SMALL`
/// = `cusolver` (syevd) or `cusolver_jacobi` (syevj) forces the device, `faer` the host; otherwise syevd from
/// [`SMALL_EIGEN_DEVICE_MIN_L`] on, faer below. `None`: faer on the host.
fn small_eigen_on_device(l: usize) -> Option<SmallEigensolver> {
    if crate::path_switch("SLR_RSVD_SMALL", "cusolver") {
        Some(SmallEigensolver::Syevd)
    } else if crate::path_switch("SLR_RSVD_SMALL", "cusolver_jacobi") {
        Some(SmallEigensolver::Syevj)
    } else if crate::path_switch("SLR_RSVD_SMALL", "faer") || l < SMALL_EIGEN_DEVICE_MIN_L {
        None
    } else {
        Some(SmallEigensolver::Syevd)
    }
}

/// Whether the small SVD of a queued rSVD with sketch width `l` runs entirely on the device ([`small_svd_device`]:
/// syevd, with its products and checks in our f64 kernels instead of on the host; measured below with cuBLAS f64
/// products and the finish on the host, the version before 2026-11-28's): by default from
/// [`SMALL_EIGEN_DEVICE_MIN_L`] on, where syevd already takes the eigenproblem. Measured on an H200 (eighth run,
/// 006fb66, docs/benchmarks.md, same run): at l = 138 it took the rSVD from 3.86 to 3.46 ms (4096², bf16), 3.79 to
/// 3.47 (4096², f32), 5.13 to 4.98 (4096 x 11008, bf16) and 5.46 to 5.00 ms (f32), 0.90-0.97x; at l = 26, where
/// faer is the default eigensolver, it cost 5-16% (syevd's fixed launches). `SLR_RSVD_SMALL=device` (or
/// [`use_device_small_svd_on_this_thread`]`(Some(true))`) forces it at every l, and so does asking for another
/// device eigensolver (`own`, `batched`, or [`use_small_eigensolver_on_this_thread`]); any other `SLR_RSVD_SMALL`
/// (`cusolver`: syevd with the products on the host, `cusolver_jacobi`, `faer`) or `Some(false)` turns it off.
fn small_svd_products_on_device(l: usize) -> bool {
    if let Some(on) = DEVICE_SMALL_SVD.with(|f| f.get()) {
        return on;
    }
    if SMALL_EIGH.with(|f| f.get()).is_some() {
        return true;
    }
    match std::env::var_os("SLR_RSVD_SMALL") {
        Some(v) => v == "device" || v == "own" || v == "batched",
        None => l >= SMALL_EIGEN_DEVICE_MIN_L,
    }
}

thread_local! {
    static DEVICE_SMALL_SVD: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    static DEVICE_SMALL_SVD_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Sends this thread's queued rSVD calls through [`small_svd_device`] (`Some(true)`, as `SLR_RSVD_SMALL=device`
/// does for the process), through the host's products (`Some(false)`), or back to the default by sketch width
/// (`None`): for tests running in parallel threads.
#[doc(hidden)]
pub fn use_device_small_svd_on_this_thread(on: Option<bool>) {
    DEVICE_SMALL_SVD.with(|f| f.set(on));
}

/// How many small SVDs this thread ran on the device ([`small_svd_device`]; the host may have finished Ṽ_r, as
/// [`RsvdInfo::small_svd_host_finish`] reports): a diagnostic for tests.
#[doc(hidden)]
pub fn device_small_svd_runs() -> usize {
    DEVICE_SMALL_SVD_RUNS.with(|c| c.get())
}

/// The device eigensolvers the small SVD's f64 eigenproblem can take (tests and benchmarks choose one; the
/// default is syevd, [`device_small_eigensolver`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallEigensolver {
    /// cuSOLVER `cusolverDnDsyevd` (divide and conquer): the default from l = 96.
    Syevd,
    /// cuSOLVER `cusolverDnDsyevj` (Jacobi; tolerance f64 machine epsilon, at most 100 sweeps): never faster than
    /// syevd on the H200; a comparison only.
    Syevj,
    /// cuSOLVER `cusolverDnXsyevBatched` on a batch of one (cuSOLVER 11.7.1 / CUDA 12.6.2 and newer; opt-in
    /// `SLR_RSVD_SMALL=batched`, unmeasured): the batched eigensolver, which may run a small matrix in far fewer
    /// launches than syevd's.
    SyevBatched,
    /// Ours (cuda/rsvd.cu; opt-in `SLR_RSVD_SMALL=own`, l <= [`EIGH_MAX_L`] where its shared memory fits).
    Own,
}

/// A cuSOLVER `syevjInfo_t`, destroyed on drop.
struct SyevjParams(cudarc::cusolver::sys::syevjInfo_t);
impl Drop for SyevjParams {
    fn drop(&mut self) {
        // SAFETY: the pointer came from cusolverDnCreateSyevjInfo and is destroyed once.
        unsafe { cudarc::cusolver::sys::cusolverDnDestroySyevjInfo(self.0) };
    }
}

impl SyevjParams {
    /// Parameters for syevj: tolerance f64 machine epsilon, at most 100 sweeps.
    fn new() -> Result<Self> {
        use cudarc::cusolver::sys;
        let mut p: sys::syevjInfo_t = std::ptr::null_mut();
        // SAFETY: creates a parameter object (host memory) into p.
        solver_status(unsafe { sys::cusolverDnCreateSyevjInfo(&mut p) }, "syevjInfo")?;
        let p = SyevjParams(p);
        // SAFETY: p is a live syevjInfo_t.
        solver_status(unsafe { sys::cusolverDnXsyevjSetTolerance(p.0, f64::EPSILON) }, "syevj tolerance")?;
        // SAFETY: as above.
        solver_status(unsafe { sys::cusolverDnXsyevjSetMaxSweeps(p.0, 100) }, "syevj sweeps")?;
        Ok(p)
    }
}

/// A cuSOLVER `cusolverDnParams_t` (the 64-bit API's options; left at their defaults), destroyed on drop.
struct DnParams(cudarc::cusolver::sys::cusolverDnParams_t);
impl Drop for DnParams {
    fn drop(&mut self) {
        // SAFETY: the pointer came from cusolverDnCreateParams and is destroyed once.
        unsafe { cudarc::cusolver::sys::cusolverDnDestroyParams(self.0) };
    }
}

/// What a queued cuSOLVER eigensolver call uses besides device memory: syevj's or the 64-bit API's parameter
/// object, and the host workspace syevBatched asks for. Kept until the device has run the call: the queued small
/// SVD holds it until its read-back. Dropped earlier (the benchmark's back-to-back calls), it first waits for the
/// stream where the library may still use host memory while the call runs: a host workspace, or syevj's
/// parameter object (which also receives its results: sweeps and residual). The 64-bit API's `cusolverDnParams_t`
/// only holds options, read when the call is made, so it is destroyed without a wait.
struct EigensolverCall {
    stream: Option<std::sync::Arc<cudarc::driver::CudaStream>>,
    _syevj: Option<SyevjParams>,
    _params: Option<DnParams>,
    host_work: Vec<u64>,
}

impl Drop for EigensolverCall {
    fn drop(&mut self) {
        if let (true, Some(stream)) = (!self.host_work.is_empty() || self._syevj.is_some(), &self.stream) {
            // Nothing to report from a drop: a failed wait leaves the device in an error state that the next call
            // on this Gpu returns.
            let _ = stream.synchronize();
        }
    }
}

/// A cuSOLVER call's status as a Result.
fn solver_status(st: cudarc::cusolver::sys::cusolverStatus_t, what: &str) -> Result<()> {
    if st == cudarc::cusolver::sys::cusolverStatus_t::CUSOLVER_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Cuda { op: "rsvd small eigenproblem (cuSOLVER)", detail: format!("{what}: {st:?}") })
    }
}

/// `cusolverDnXsyevBatched_bufferSize`'s C signature (cuSOLVER 11.7.1 / CUDA 12.6.2 and newer).
type SyevBatchedBufferSizeFn = unsafe extern "C" fn(
    cudarc::cusolver::sys::cusolverDnHandle_t,
    cudarc::cusolver::sys::cusolverDnParams_t,
    cudarc::cusolver::sys::cusolverEigMode_t,
    cudarc::cusolver::sys::cublasFillMode_t,
    i64,
    cudarc::cusolver::sys::cudaDataType,
    *const std::ffi::c_void,
    i64,
    cudarc::cusolver::sys::cudaDataType,
    *const std::ffi::c_void,
    cudarc::cusolver::sys::cudaDataType,
    *mut usize,
    *mut usize,
    i64,
) -> cudarc::cusolver::sys::cusolverStatus_t;

/// `cusolverDnXsyevBatched`'s C signature.
type SyevBatchedFn = unsafe extern "C" fn(
    cudarc::cusolver::sys::cusolverDnHandle_t,
    cudarc::cusolver::sys::cusolverDnParams_t,
    cudarc::cusolver::sys::cusolverEigMode_t,
    cudarc::cusolver::sys::cublasFillMode_t,
    i64,
    cudarc::cusolver::sys::cudaDataType,
    *mut std::ffi::c_void,
    i64,
    cudarc::cusolver::sys::cudaDataType,
    *mut std::ffi::c_void,
    cudarc::cusolver::sys::cudaDataType,
    *mut std::ffi::c_void,
    usize,
    *mut std::ffi::c_void,
    usize,
    *mut std::ffi::c_int,
    i64,
) -> cudarc::cusolver::sys::cusolverStatus_t;

/// The batched eigensolver's two entry points, taken from libcusolver by our own lookup and called through these
/// pointers, not through cudarc's bindings: cudarc, loading libcusolver at run time, resolves a symbol at its first
/// call and panics when it is missing (a libcusolver before 11.7.1), and with cudarc *linked* (a program that also
/// uses candle) a reference to its binding would make the whole program need that symbol to link and start, even if
/// nobody asks for this solver. The library stays loaded with the pointers (a static).
struct SyevBatchedFns {
    _lib: libloading::Library,
    buffer_size: SyevBatchedBufferSizeFn,
    run: SyevBatchedFn,
}

/// [`SyevBatchedFns`] of this process's libcusolver, looked up once; `None` when it has no batched eigensolver
/// (or there is no libcusolver). Both symbols come from the first file [`crate::device::cuda_library`] opens, the
/// file cudarc's own loader also picks first on Linux (its names there are ours plus some NVIDIA does not install
/// there), so the handle cudarc created and these functions belong to one library; linked (with candle), the
/// program loaded libcusolver by its versioned name, which `libcusolver.so` points at in a normal install. Not on Windows, where cudarc tries older DLLs (`cusolver64_11.dll`, CUDA
/// 12's) before the CUDA 13 one and the two could differ: the opt-in is then the host's small SVD.
fn syev_batched_fns() -> Option<&'static SyevBatchedFns> {
    static FNS: std::sync::OnceLock<Option<SyevBatchedFns>> = std::sync::OnceLock::new();
    FNS.get_or_init(|| {
        if cfg!(windows) {
            return None;
        }
        let lib = crate::device::cuda_library("cusolver")?;
        // SAFETY: the symbols, where present, are these functions with these C signatures (cuSOLVER's
        // cusolverDn.h); the pointers are kept with `lib`, which is never unloaded (a static).
        let (buffer_size, run) = unsafe {
            (*lib.get::<SyevBatchedBufferSizeFn>(b"cusolverDnXsyevBatched_bufferSize\0").ok()?, *lib.get::<SyevBatchedFn>(b"cusolverDnXsyevBatched\0").ok()?)
        };
        Some(SyevBatchedFns { _lib: lib, buffer_size, run })
    })
    .as_ref()
}

/// Whether cuSOLVER's batched eigensolver can run on this handle's device: libcusolver is there and has it (cuSOLVER
/// 11.7.1 / CUDA 12.6.2 and newer); false on the emulator. For the benchmark's labels.
#[doc(hidden)]
pub fn syev_batched_available(gpu: &Gpu) -> bool {
    gpu.is_cuda() && syev_batched_fns().is_some()
}

/// What a cuSOLVER eigensolver needs, fetched before anything is queued: this Gpu's handle, and for syevBatched its
/// entry points. `None` for ours, which needs no library. LibraryMissing without libcusolver (or on the emulator),
/// or for syevBatched without a libcusolver that has it.
#[allow(clippy::type_complexity)]
fn cusolver_for(gpu: &Gpu, solver: SmallEigensolver) -> Result<Option<(std::sync::Arc<cudarc::cusolver::DnHandle>, Option<&'static SyevBatchedFns>)>> {
    Ok(match solver {
        SmallEigensolver::Own => None,
        SmallEigensolver::SyevBatched => {
            let handle = gpu.cusolver_dn()?;
            let fns = syev_batched_fns().ok_or(Error::LibraryMissing { library: "cuSOLVER's cusolverDnXsyevBatched (cuSOLVER 11.7.1 / CUDA 12.6.2 or newer)" })?;
            Some((handle, Some(fns)))
        }
        SmallEigensolver::Syevd | SmallEigensolver::Syevj => Some((gpu.cusolver_dn()?, None)),
    })
}

/// Queues the f64 symmetric eigensolver `solver` on the l x l matrix at `a` (lda = l, lower triangle read,
/// overwritten with the eigenvectors as columns), the eigenvalues (ascending) into `w` (l doubles) and its status
/// into `info` (one i32): ours ([`queue_own_eigensolver`], its first `phases` kernels), or cuSOLVER's syevd, syevj
/// or syevBatched on a batch of one (vectors). A cuSOLVER call's device workspace is allocated here and freed
/// stream-ordered after it; the returned [`EigensolverCall`] must live until the call has run (ours needs nothing
/// kept). Nothing is read back (see [`eigensolver_info`]). Errors as [`cusolver_for`] and
/// [`queue_own_eigensolver`].
///
/// # Safety
/// `a` (l² doubles), `w` (l doubles) and `info` (one i32, 4-byte aligned) are disjoint live device memory of this
/// Gpu.
unsafe fn queue_eigensolver(gpu: &Gpu, l: usize, a: KernelArg, w: KernelArg, info: KernelArg, solver: SmallEigensolver, phases: usize) -> Result<EigensolverCall> {
    use cudarc::cusolver::sys;
    const OP: &str = "rsvd small eigenproblem";
    let stream = gpu.cuda_stream().cloned();
    let Some((handle, batched)) = cusolver_for(gpu, solver)? else {
        // SAFETY: the caller's contract; queue_own_eigensolver checks that l fits.
        unsafe { queue_own_eigensolver(gpu, l, a, w, info, phases)? };
        return Ok(EigensolverCall { stream, _syevj: None, _params: None, host_work: Vec::new() });
    };
    let n = i32::try_from(l).map_err(|_| Error::LengthMismatch { op: OP, what: "sketch columns", expected: i32::MAX as usize, got: l })?;
    // One thread at a time on this Gpu's cuSOLVER handle, from the workspace query to the queued solve.
    let _one_thread = gpu.cusolver_calls();
    let (jobz, uplo) = (sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR, sys::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER);
    let (pa, pw, pi) = (ptr_bits(a) as *mut f64, ptr_bits(w) as *mut f64, ptr_bits(info) as *mut i32);
    let f64_type = sys::cudaDataType::CUDA_R_64F;
    let syevj = if solver == SmallEigensolver::Syevj { Some(SyevjParams::new()?) } else { None };
    let batched = match batched {
        Some(fns) => {
            let mut p: sys::cusolverDnParams_t = std::ptr::null_mut();
            // SAFETY: creates a parameter object (host memory) into p.
            solver_status(unsafe { sys::cusolverDnCreateParams(&mut p) }, "cusolverDnParams")?;
            Some((DnParams(p), fns))
        }
        None => None,
    };
    // Workspace bytes on the device (and, for syevBatched, on the host) the solver asks for.
    let (mut lwork, mut device_bytes, mut host_bytes) = (0i32, 0usize, 0usize);
    // SAFETY: the caller's contract on a and w; the calls only read their sizes and write the workspace sizes, host
    // integers; syevj's and the 64-bit API's parameter objects are live.
    solver_status(
        unsafe {
            match (&syevj, &batched) {
                (Some(p), _) => sys::cusolverDnDsyevj_bufferSize(handle.cu(), jobz, uplo, n, pa, n, pw, &mut lwork, p.0),
                (None, Some((p, fns))) => (fns.buffer_size)(
                    handle.cu(),
                    p.0,
                    jobz,
                    uplo,
                    l as i64,
                    f64_type,
                    pa as *const _,
                    l as i64,
                    f64_type,
                    pw as *const _,
                    f64_type,
                    &mut device_bytes,
                    &mut host_bytes,
                    1,
                ),
                (None, None) => sys::cusolverDnDsyevd_bufferSize(handle.cu(), jobz, uplo, n, pa, n, pw, &mut lwork),
            }
        },
        "bufferSize",
    )?;
    if batched.is_none() {
        device_bytes = 8 * lwork.max(0) as usize;
    }
    // In 8-byte words: aligned for whatever cuSOLVER keeps there. Moved into the returned call below (its heap
    // memory stays where it is).
    let mut host_work = vec![0u64; host_bytes.div_ceil(8)];
    // SAFETY: the solver writes every workspace byte it uses before reading it.
    let mut work = unsafe { gpu.alloc_uninit::<f64>(device_bytes.div_ceil(8).max(1))? };
    let mut kv = DeviceSliceMut::from(&mut work);
    let (pk, _gk) = kv.kernel_ptr_mut(gpu, OP, "work")?;
    // SAFETY: the caller's contract on a, w and info; work holds at least the workspace cuSOLVER asked for, another
    // live buffer; the host workspace (host_bytes, possibly none) lives in the returned call until the call has run;
    // queued on the handle's stream (this Gpu's), after whatever wrote `a`.
    let st = unsafe {
        let pk = ptr_bits(pk) as *mut f64;
        match (&syevj, &batched) {
            (Some(p), _) => sys::cusolverDnDsyevj(handle.cu(), jobz, uplo, n, pa, n, pw, pk, lwork, pi, p.0),
            (None, Some((p, fns))) => (fns.run)(
                handle.cu(),
                p.0,
                jobz,
                uplo,
                l as i64,
                f64_type,
                pa as *mut _,
                l as i64,
                f64_type,
                pw as *mut _,
                f64_type,
                pk as *mut _,
                device_bytes,
                if host_bytes == 0 { std::ptr::null_mut() } else { host_work.as_mut_ptr() as *mut std::ffi::c_void },
                host_bytes,
                pi,
                1,
            ),
            (None, None) => sys::cusolverDnDsyevd(handle.cu(), jobz, uplo, n, pa, n, pw, pk, lwork, pi),
        }
    };
    let call = EigensolverCall { stream, _syevj: syevj, _params: batched.map(|(p, _)| p), host_work };
    solver_status(st, "eigensolver")?;
    Ok(call)
}

/// Largest sketch width our eigensolver takes (cuda/rsvd.cu kEighMaxL): its tridiagonalization holds the l x (l | 1)
/// matrix in one block's f64 shared memory, 203 KiB at 160 (sm_90 grants 227; sm_80 163 KiB: l <= 139, where the
/// cluster kernel's l x l is the limit; sm_86/89 99 KiB: l <= 97, where the eigenvector kernel's 4l doubles per
/// thread are; [`own_eigh_fits`]).
pub(crate) const EIGH_MAX_L: usize = 160;
const EIGH_THREADS: u32 = 512;
const EIGH_VALUE_WARPS: usize = 4;
const EIGH_VECTOR_THREADS: usize = 32;
const EIGH_BACK_WARPS: usize = 4;
/// The eigensolver's kernels, in the order they are queued (cuda/rsvd.cu, "The small SVD's symmetric eigenproblem").
const EIGH_PHASES: [&str; 5] = ["rsvd_eigh_tridiag_f64", "rsvd_eigh_values_f64", "rsvd_eigh_vectors_f64", "rsvd_eigh_clusters_f64", "rsvd_eigh_back_f64"];

/// Dynamic shared memory in bytes of the eigensolver's kernels at sketch width `l` (cuda/rsvd.cu
/// eigh_tridiag_shared_doubles, eigh_vectors_shared_doubles, eigh_clusters_shared_doubles,
/// eigh_back_shared_doubles), l >= 1: tridiagonalization, eigenvectors, clusters, back-transform (the eigenvalues'
/// kernel takes none).
fn eigh_shared_bytes(l: usize) -> [usize; 4] {
    const WARPS: usize = EIGH_THREADS as usize / 32;
    const CLUSTER_PARTS: usize = 3;
    [
        8 * (l * (l | 1) + EIGH_MAX_L + WARPS + 8),
        8 * (4 * l * EIGH_VECTOR_THREADS + 2 * l),
        8 * (l * l + (2 + CLUSTER_PARTS) * EIGH_MAX_L + 8),
        8 * (l * (l - 1) / 2 + l),
    ]
}

/// Static shared memory of the same kernels, rounded up (ptxas: the cluster kernel's arrays are 3.2 KiB, the
/// others have none); the device's per-block limit is on static plus dynamic.
const EIGH_STATIC_SHARED_BYTES: [usize; 4] = [0, 0, 4096, 0];

/// Scratch doubles of the eigensolver (cuda/rsvd.cu eigh_tri): the reflectors (l²), the cluster kernel's inverse
/// iteration (4 l²), T and the τs (3 l) and 4 scalars.
fn eigh_scratch_doubles(l: usize) -> usize {
    5 * l * l + 3 * l + 4
}

/// Whether our eigensolver can take a sketch width `l` on this device (its kernels' shared memory).
fn own_eigh_fits(gpu: &Gpu, l: usize) -> bool {
    (1..=EIGH_MAX_L).contains(&l)
        && eigh_shared_bytes(l).iter().zip(EIGH_STATIC_SHARED_BYTES).all(|(&b, fixed)| b + fixed <= gpu.max_dynamic_shared_bytes() as usize)
}

/// The eigensolver of the device small SVD ([`small_svd_device`]) at sketch width `l`: this thread's choice
/// ([`use_small_eigensolver_on_this_thread`]), else `SLR_RSVD_SMALL=own` or `batched`, else syevd.
/// - `own`: our kernels (Householder tridiagonalization on one block, then multisection, inverse iteration and the
///   back-transform spread over the device; cuda/rsvd.cu), where the width fits ([`own_eigh_fits`]; syevd
///   otherwise). Opt-in until a GPU has timed it against syevd (1.08 ms at l = 138 on the H200, eleventh run, where
///   the earlier one-block version of ours took 1.51 ms).
/// - `batched`: cuSOLVER's `cusolverDnXsyevBatched` on a batch of one (2026-11-29, unmeasured). syevd's 1.08 ms
///   at l = 138 is far above its arithmetic (~4l³ = 10 M f64 flops): a divide and conquer made of many small
///   launches. The batched solver is built for many small matrices at once, so it may take one in far fewer
///   launches; whether it does at l = 138 only a GPU can say (bench lines "our small SVD on the device with
///   cuSOLVER syevBatched" and `rsvd_eigh`'s "cuSOLVER syevBatched (batch of 1) on the same matrix").
fn device_small_eigensolver(gpu: &Gpu, l: usize) -> SmallEigensolver {
    let chosen = SMALL_EIGH.with(|f| f.get()).unwrap_or(if crate::path_switch("SLR_RSVD_SMALL", "own") {
        SmallEigensolver::Own
    } else if crate::path_switch("SLR_RSVD_SMALL", "batched") {
        SmallEigensolver::SyevBatched
    } else {
        SmallEigensolver::Syevd
    });
    match chosen {
        SmallEigensolver::Own if !own_eigh_fits(gpu, l) => SmallEigensolver::Syevd,
        other => other,
    }
}

thread_local! {
    static SMALL_EIGH: std::cell::Cell<Option<SmallEigensolver>> = const { std::cell::Cell::new(None) };
}

thread_local! {
    static SMALL_AFTER_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Queues this thread's device small SVDs after the queued path's status wait, as before 2026-11-28 (as
/// `SLR_RSVD_PATH=small_after_wait` does for the process): for tests running in parallel threads.
#[doc(hidden)]
pub fn queue_small_svd_after_wait_on_this_thread(on: bool) {
    SMALL_AFTER_WAIT.with(|f| f.set(on));
}

/// Sends this thread's queued rSVD calls through the device small SVD with `solver` as its eigensolver
/// (`Some(SmallEigensolver::Own)` as `SLR_RSVD_SMALL=own` does for the process, `SyevBatched` as `batched`), or
/// back to the process's choice (`None`): for tests running in parallel threads.
#[doc(hidden)]
pub fn use_small_eigensolver_on_this_thread(solver: Option<SmallEigensolver>) {
    SMALL_EIGH.with(|f| f.set(solver));
}

/// [`use_small_eigensolver_on_this_thread`] with our eigensolver (`true`) or back to the process's choice.
#[doc(hidden)]
pub fn use_own_eigensolver_on_this_thread(on: bool) {
    use_small_eigensolver_on_this_thread(on.then_some(SmallEigensolver::Own));
}

/// Queues our eigensolver's kernels on the l x l matrix at `a` (column-major, lda = l, lower triangle read,
/// overwritten with the eigenvectors as columns), the eigenvalues (ascending) into `w` (l doubles) and 0 into `info`
/// (one i32), as [`queue_eigensolver`] does with syevd: the first `phases` of [`EIGH_PHASES`] (all five for the
/// result; fewer for the benchmark's per-phase times, [`own_eigensolver_phase_ms`]). Its scratch
/// ([`eigh_scratch_doubles`]) is allocated here and freed stream-ordered after the launches.
///
/// # Safety
/// `a` (l² doubles), `w` (l doubles) and `info` (one i32, 4-byte aligned) are disjoint live device memory of this
/// Gpu.
unsafe fn queue_own_eigensolver(gpu: &Gpu, l: usize, a: KernelArg, w: KernelArg, info: KernelArg, phases: usize) -> Result<()> {
    const OP: &str = "rsvd small eigenproblem";
    if !own_eigh_fits(gpu, l) {
        // The widest sketch whose kernels fit this device's shared memory (160 on sm_90, 139 on sm_80, 97 on sm_86/89).
        let max = (1..=EIGH_MAX_L).rev().find(|&w| own_eigh_fits(gpu, w)).unwrap_or(0);
        return Err(Error::TooLarge { op: OP, what: "sketch width for our eigensolver on this device", value: l, max });
    }
    // SAFETY: the kernels write every scratch element they read first: rsvd_eigh_tridiag_f64 writes T, the τs, the
    // scalars (all l slots of each) and the reflectors (rows k+1.. of column k, k <= l-3), the only reflector
    // entries rsvd_eigh_back_f64 reads; the cluster kernel writes each inverse-iteration column before reading it.
    let mut scratch = unsafe { gpu.alloc_uninit::<f64>(eigh_scratch_doubles(l))? };
    let mut sv = DeviceSliceMut::from(&mut scratch);
    let (p_s, _gs) = sv.kernel_ptr_mut(gpu, OP, "scratch")?;
    let [tridiag_bytes, vectors_bytes, clusters_bytes, back_bytes] = eigh_shared_bytes(l);
    let l32 = KernelArg::U32(l as u32);
    let blocks = |per: usize| l.div_ceil(per) as u32;
    let launches: [(LaunchShape, Vec<KernelArg>); 5] = [
        (LaunchShape { grid: (1, 1, 1), block: (EIGH_THREADS, 1, 1), shared_bytes: tridiag_bytes as u32 }, vec![a, l32, p_s]),
        (LaunchShape { grid: (blocks(EIGH_VALUE_WARPS), 1, 1), block: (32 * EIGH_VALUE_WARPS as u32, 1, 1), shared_bytes: 0 }, vec![l32, p_s, w]),
        (LaunchShape { grid: (blocks(EIGH_VECTOR_THREADS), 1, 1), block: (EIGH_VECTOR_THREADS as u32, 1, 1), shared_bytes: vectors_bytes as u32 }, vec![a, l32, w, p_s]),
        (LaunchShape { grid: (1, 1, 1), block: (EIGH_THREADS, 1, 1), shared_bytes: clusters_bytes as u32 }, vec![a, l32, w, p_s]),
        (LaunchShape { grid: (blocks(EIGH_BACK_WARPS), 1, 1), block: (32 * EIGH_BACK_WARPS as u32, 1, 1), shared_bytes: back_bytes as u32 }, vec![a, l32, p_s, info]),
    ];
    for ((shape, args), name) in launches.into_iter().zip(EIGH_PHASES).take(phases) {
        // SAFETY: each kernel's arguments match its signature (cuda/rsvd.cu): the l² doubles at `a`, the l at `w`
        // and the i32 at `info` (the caller's contract: disjoint live memory) and the scratch just allocated
        // (eigh_scratch_doubles(l), distinct from them); grids cover l eigenvalues or columns per the kernels'
        // constants (EIGH_VALUE_WARPS = kEighValueWarps, EIGH_VECTOR_THREADS = kEighVectorThreads, EIGH_BACK_WARPS
        // = kEighBackWarps; threads past l return after the blocks' one barrier), dynamic shared memory as
        // eigh_shared_bytes(l), within the device's opt-in limit (own_eigh_fits, checked above; l <= EIGH_MAX_L =
        // kEighMaxL, the bound the kernels' per-lane arrays and static shared arrays assume). Queued in order on
        // this Gpu's stream, each kernel reads what the ones before it wrote.
        unsafe { gpu.launch(MODULE, name, shape, &args)? };
    }
    Ok(())
}

/// The eigendecomposition of the symmetric l x l matrix `g` (column-major; its lower triangle is read) by our
/// device eigensolver: eigenvalues ascending and the eigenvectors as columns (column-major). For tests, on the
/// emulator and on a GPU ([`small_eigen_on_device_for_tests`] with [`SmallEigensolver::Own`]).
#[doc(hidden)]
pub fn own_eigensolver_on_device(gpu: &Gpu, g: &[f64], l: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    small_eigen_on_device_for_tests(gpu, g, l, SmallEigensolver::Own)
}

/// cuSOLVER's `info` after the read-back (an i32 in the low 4 bytes of an f64 slot that was zero before the
/// call): 0, or the error it means.
fn eigensolver_info(slot: f64) -> Result<()> {
    let code = slot.to_bits() as u32 as i32;
    if code < 0 {
        // -i: the i-th argument was wrong (a bug in this binding, not the input's fault).
        return Err(Error::Cuda { op: "rsvd", detail: format!("cuSOLVER small eigenproblem: argument {} rejected (info {code})", -code) });
    }
    if code > 0 {
        return Err(Error::NoConvergence { op: "rsvd", what: "small eigenproblem (cuSOLVER)" });
    }
    Ok(())
}

/// The small SVD's symmetric eigenproblem on the device in f64 by `solver` (cuSOLVER's syevd, syevj or
/// syevBatched, or ours): the l x l Gram matrix uploaded (l² doubles), the eigenvalues (non-decreasing, as faer gives
/// them), eigenvectors and status read back together, one synchronization. Errors if libcusolver cannot be loaded
/// for a cuSOLVER solver (or on the emulator), if ours cannot take l ([`own_eigh_fits`]), or if the solver reports
/// a failure (its `info`).
fn device_eigen(gpu: &Gpu, g: &Mat<f64>, solver: SmallEigensolver) -> Result<(Vec<f64>, Mat<f64>)> {
    const OP: &str = "rsvd small eigenproblem (device)";
    let l = g.nrows();
    // One buffer for the solver's three outputs, so that one upload starts them and one read-back returns them
    // (three read-backs, each a synchronization and a copy, were part of the ~1.3 ms the seventh run measured for
    // this call at l = 138): [0, l²) the matrix, overwritten with the eigenvectors; [l², l² + l) the eigenvalues;
    // slot l² + l holds `info` (an i32 in the low 4 bytes of an f64 slot, little-endian; zero before the call).
    let (w_at, info_at) = (l * l, l * l + l);
    let mut host: Vec<f64> = Vec::with_capacity(info_at + 1);
    host.extend((0..l * l).map(|i| g[(i % l, i / l)]));
    host.resize(info_at + 1, 0.0);
    let mut out = gpu.upload(&host)?;
    // Kept until the read-back below has waited for the queued call.
    let call = {
        let mut ov = DeviceSliceMut::from(&mut out);
        let (pa, _go) = ov.kernel_ptr_mut(gpu, OP, "eigensolver outputs")?;
        // SAFETY: a (l x l doubles from pa, lda = l), w (l doubles at w_at) and info (the i32 at info_at, 8-byte
        // aligned) are disjoint parts of `out` (l² + l + 1 doubles), a live buffer of this Gpu.
        unsafe { queue_eigensolver(gpu, l, pa, pa.offset_bytes(8 * w_at), pa.offset_bytes(8 * info_at), solver, EIGH_PHASES.len())? }
    };
    let got = gpu.download(&out)?;
    drop(call);
    eigensolver_info(got[info_at])?;
    let (vecs, lam) = (&got[..w_at], &got[w_at..info_at]);
    // Non-decreasing eigenvalues, as faer gives them (syevd and syevBatched sort; syevj's order is not relied on).
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&x, &y| lam[x].total_cmp(&lam[y]));
    Ok((order.iter().map(|&k| lam[k]).collect(), Mat::from_fn(l, l, |i, j| vecs[i + order[j] * l])))
}

/// Test access to [`device_eigen`]: `g` is l x l column-major (symmetric; the lower triangle is read); returns the
/// eigenvalues (non-decreasing) and the eigenvectors column-major.
#[doc(hidden)]
pub fn small_eigen_on_device_for_tests(gpu: &Gpu, g: &[f64], l: usize, solver: SmallEigensolver) -> Result<(Vec<f64>, Vec<f64>)> {
    check_len("small_eigen_on_device_for_tests", "g", l * l, g.len())?;
    let (lam, v) = device_eigen(gpu, &Mat::from_fn(l, l, |i, j| g[i + j * l]), solver)?;
    Ok((lam, (0..l * l).map(|i| v[(i % l, i / l)]).collect()))
}

fn small_svd_with(r2: &Mat<f64>, r: usize, eigen: impl FnOnce(&Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)>) -> Result<(Vec<f32>, Mat<f64>, Mat<f64>)> {
    const OP: &str = "rsvd";
    let l = r2.nrows();
    // Finite input can still overflow f32 in the products (entries near 1e19 and beyond): say so, not NaN.
    let bad = (0..l).flat_map(|j| (0..l).map(move |i| (i, j))).filter(|&(i, j)| !r2[(i, j)].is_finite()).count();
    if bad > 0 {
        return Err(Error::NonFinite { op: OP, what: "sketch factor R (f32 overflow in the products: scale A down)", count: bad });
    }
    let bbt = r2.transpose() * r2;
    let (lam, vecs) = eigen(&bbt)?;
    // Eigenvalues come in non-decreasing order: the leading ones are at the end.
    let sigma: Vec<f64> = (0..r).map(|j| lam[l - 1 - j].max(0.0).sqrt()).collect();
    let ur = Mat::from_fn(l, r, |i, j| vecs[(i, l - 1 - j)]);
    let mut vr = r2 * &ur;
    let tiny = sigma[0] * f64::EPSILON;
    for j in 0..r {
        let scale = if sigma[j] > tiny { 1.0 / sigma[j] } else { 0.0 };
        for i in 0..l {
            vr[(i, j)] *= scale;
        }
    }
    let dev = max_dev_from_identity(&(vr.transpose() * &vr));
    Ok(finish_small_svd(&sigma, ur, vr, dev))
}

/// The small SVD's last step, shared by the host products and [`small_svd_device`]: σ in f32 and Ṽ_r (scaled by
/// 1/σ, zero columns for σ_j ≤ ε₆₄·σ₁) kept as it is when `dev` (max |Ṽ_rᵀṼ_r − I|) is within
/// SMALL_SVD_ORTHONORMAL, else re-orthonormalized by a Householder QR with a non-negative diagonal.
fn finish_small_svd(sigma: &[f64], ur: Mat<f64>, vr: Mat<f64>, dev: f64) -> (Vec<f32>, Mat<f64>, Mat<f64>) {
    let (l, r) = (vr.nrows(), vr.ncols());
    let sigma32 = sigma.iter().map(|&x| x as f32).collect();
    // Ṽ_r is orthonormal in exact arithmetic; in f64 it deviates by ~l·ε₆₄·(σ₁/σ_j)², nothing an f32 factor could
    // show unless the spectrum spans many decades (or a column was zeroed). So the Householder QR runs only when
    // Ṽ_rᵀṼ_r is farther than SMALL_SVD_ORTHONORMAL from I (otherwise its R would be I to that accuracy, with a
    // positive diagonal: the same factor). In the CPU reference's profile (1024², σ_j = 1/j) that took the small
    // SVD from ~1.44 to ~1.28 ms at l = 138 and from ~5.9 to ~5.4 ms at l = 266 on the 2-core development machine.
    if dev <= SMALL_SVD_ORTHONORMAL && !force_small_svd_qr() {
        return (sigma32, ur, vr);
    }
    let qr = vr.qr();
    let mut vq = qr.compute_thin_Q();
    let rr = qr.thin_R();
    for j in 0..r {
        if rr[(j, j)] < 0.0 {
            for i in 0..l {
                vq[(i, j)] = -vq[(i, j)];
            }
        }
    }
    (sigma32, ur, vq)
}

/// `rsvd_widen_f32` over `x` (the widening of the benchmark's eigensolver calls, [`small_eigh_launch_for_bench`]),
/// read back: for tests.
#[doc(hidden)]
pub fn widen_on_device_for_tests(gpu: &Gpu, x: &[f32]) -> Result<Vec<f64>> {
    const OP: &str = "widen_on_device_for_tests";
    let dx = gpu.upload(x)?;
    let mut out = gpu.alloc_zeros::<f64>(x.len())?;
    if x.is_empty() {
        return Ok(Vec::new());
    }
    {
        let dxs = DeviceSlice::from(&dx);
        let (p_x, _gx) = dxs.kernel_ptr(gpu, OP, "x")?;
        let mut ov = DeviceSliceMut::from(&mut out);
        let (p_o, _go) = ov.kernel_ptr_mut(gpu, OP, "out")?;
        // SAFETY: reads x.len() floats of dx and writes as many doubles of out (both that long, distinct);
        // arguments match rsvd_widen_f32.
        unsafe { gpu.launch(MODULE, "rsvd_widen_f32", LaunchShape::linear(OP, x.len(), 256)?, &[p_x, p_o, KernelArg::U64(x.len() as u64)])? };
    }
    gpu.download(&out)
}

/// The small SVD's factors left on the device for the final products: σ (f32, on the host), Ũ_r and Ṽ_r (l x r
/// f32, packed column-major), and whether Ṽ_r was finished on the host ([`small_svd_device`]).
struct DeviceSmallSvd {
    s: Vec<f32>,
    ur: DevMat,
    vr: DevMat,
    host_finish: bool,
}

/// Status bits of `rsvd_small_vectors_f64` / `rsvd_small_check_f64` (cuda/rsvd.cu kSmallNotFinite,
/// kSmallNotOrthonormal).
const SMALL_NOT_FINITE: u32 = 1;
const SMALL_NOT_ORTHONORMAL: u32 = 2;

/// The small SVD of R₂ (l x l f32, packed column-major on the device) entirely on the device, in f64, with one
/// read-back of r + 2 doubles: `rsvd_small_gram_f64` (G = R₂ᵀR₂ and the count of non-finite R₂ entries), the
/// eigensolver in place on G (cuSOLVER syevd, or ours with `SLR_RSVD_SMALL=own` where it fits),
/// `rsvd_small_vectors_f64` (the r largest eigenvalues' columns, σ_j, Ũ_r and Ṽ_r = R₂Ũ_rΣ_r⁻¹ in f32 for the
/// final products) and `rsvd_small_check_f64` (whether Ṽ_rᵀṼ_r is within SMALL_SVD_ORTHONORMAL of I); then σ, the
/// eigensolver's `info` and the kernels' status come back together. The default from l = 96
/// ([`small_svd_products_on_device`]). The same factors as [`small_svd_with`] on the downloaded R₂ up to f64
/// rounding (another summation order), except the Householder QR of [`finish_small_svd`], which stays on the
/// host: when the check fails, Ũ, λ and R₂ come back and the host finishes from the device's eigenvectors
/// ([`small_svd_with`]); a non-finite eigenvalue (no input gives one; a solver failure) sends the whole small SVD to
/// the host's eigensolver. Replaces the previous version's read-back of R₂, Ũ, λ, P = R₂Ũ and PᵀP (4l² doubles,
/// 610 KB at l = 138), its host O(l²) steps, its three f64 cuBLAS products and the upload of Ũ_r and Ṽ_r.
/// Errors: LibraryMissing when a cuSOLVER eigensolver is asked for without libcusolver (or on the emulator), or
/// syevBatched without a libcusolver that has it (nothing is queued then), NonFinite when R₂ holds non-finite
/// values (f32 overflow in the products), NoConvergence from the eigensolver.
fn small_svd_device(gpu: &Gpu, r2: &DevMat, r: usize) -> Result<DeviceSmallSvd> {
    queue_small_svd_device(gpu, r2, r)?.finish(gpu, r2)
}

/// [`small_svd_device`]'s kernels and eigensolver queued on the stream, nothing read back yet: [`rsvd`]'s queued
/// path queues them before its one wait for the status words, so their launches (syevd's many among them) are
/// made while the device still works through the power iteration instead of after it, with the device idle.
struct QueuedSmallSvd {
    l: usize,
    r: usize,
    /// G / Ũ, λ, info, the counts slot, σ and Ṽ_r in f64 (regions as in [`queue_small_svd_device`]).
    buf: DeviceVec<f64>,
    at_w: usize,
    at_info: usize,
    at_sigma: usize,
    ur: DevMat,
    vr: DevMat,
    /// The cuSOLVER call's parameters and host workspace, kept until the read-back has waited for it.
    _call: EigensolverCall,
}

/// Queues [`small_svd_device`]'s work on R₂ (see there). Errors before anything is queued: R₂ not l x l or r
/// outside 1..=l, LibraryMissing (syevd asked for without libcusolver, or on the emulator).
fn queue_small_svd_device(gpu: &Gpu, r2: &DevMat, r: usize) -> Result<QueuedSmallSvd> {
    const OP: &str = "rsvd small SVD (device)";
    let l = r2.rows;
    if r2.cols != l || r2.buf.len() != l * l || r == 0 || r > l {
        return Err(Error::LengthMismatch { op: OP, what: "R₂ (l x l, r <= l)", expected: l * l, got: r2.buf.len() });
    }
    let solver = device_small_eigensolver(gpu, l);
    // Before anything is queued: without cuSOLVER (or its syevBatched, when asked for) the caller takes the host's
    // small SVD.
    cusolver_for(gpu, solver)?;
    let ll = l * l;
    // One zeroed f64 buffer (`info` and the counts must start at 0): G, then Ũ in place (at 0), λ, info (an i32 in
    // an f64 slot), the counts slot (u32 non-finite count of R₂, u32 status bits), σ (r), Ṽ_r in f64 (l x r).
    // Regions start on even doubles (16 bytes).
    let even = |x: usize| x.div_ceil(2) * 2;
    let at_w = even(ll);
    let at_info = at_w + l;
    let at_counts = at_info + 1;
    let at_sigma = at_counts + 1;
    let at_v = even(at_sigma + r);
    let total = at_v + l * r;
    let mut buf = gpu.alloc_zeros::<f64>(total)?;
    // SAFETY: rsvd_small_vectors_f64 writes all l x r entries of both (each of its r blocks its column's l rows)
    // unless it finds a non-finite eigenvalue, which the status word reports; both are then replaced below before
    // anything reads them.
    let (mut ur, mut vr) = unsafe { (new_dev_mat(gpu, l, r)?, new_dev_mat(gpu, l, r)?) };
    let call;
    {
        let r2s = DeviceSlice::from(&r2.buf);
        let (p_r2, _gr) = r2s.kernel_ptr(gpu, OP, "R₂")?;
        let mut bv = DeviceSliceMut::from(&mut buf);
        let (p_g, _gb) = bv.kernel_ptr_mut(gpu, OP, "small SVD buffer")?;
        let mut urv = DeviceSliceMut::from(&mut ur.buf);
        let (p_ur, _gu) = urv.kernel_ptr_mut(gpu, OP, "Ũ_r")?;
        let mut vrv = DeviceSliceMut::from(&mut vr.buf);
        let (p_vr, _gv) = vrv.kernel_ptr_mut(gpu, OP, "Ṽ_r")?;
        let (p_w, p_info, p_counts, p_sigma, p_v) =
            (p_g.offset_bytes(8 * at_w), p_g.offset_bytes(8 * at_info), p_g.offset_bytes(8 * at_counts), p_g.offset_bytes(8 * at_sigma), p_g.offset_bytes(8 * at_v));
        let (l32, r32) = (KernelArg::U32(l as u32), KernelArg::U32(r as u32));
        // SAFETY: reads the l² floats of R₂ (its buffer holds exactly l², checked above), writes G (the first l²
        // doubles of `buf`) and adds to the count (the u32 at at_counts), disjoint regions of `buf` (total > l² +
        // 2); one thread per entry of G (LaunchShape::linear over l², 256 = kThreads); arguments match
        // rsvd_small_gram_f64.
        unsafe { gpu.launch(MODULE, "rsvd_small_gram_f64", LaunchShape::linear(OP, ll, 256)?, &[p_r2, l32, p_g, p_counts])? };
        // SAFETY: G (l² doubles at 0, overwritten with Ũ), λ (l doubles at at_w) and info (the i32 at at_info,
        // 8-byte aligned) are disjoint regions of `buf`, a live buffer of this Gpu; queued after the kernel that
        // wrote G; device_small_eigensolver chose Own only where own_eigh_fits(gpu, l).
        call = unsafe { queue_eigensolver(gpu, l, p_g, p_w, p_info, solver, EIGH_PHASES.len())? };
        let vectors = LaunchShape { grid: (r as u32, 1, 1), block: (SMALL_THREADS, 1, 1), shared_bytes: 0 };
        // SAFETY: block j < r reads R₂ (l² floats), Ũ (l² doubles at 0) and λ (l at at_w), written by the
        // eigensolver queued before it, and writes row i < l of column j of Ṽ_r in f64 (at_v + i + j l < total),
        // of Ũ_r and Ṽ_r in f32 (l x r floats each, fresh buffers), σ_j (at_sigma + j < at_v) and status bits (the
        // second u32 of the counts slot); none of the written regions overlaps a read one. Arguments match
        // rsvd_small_vectors_f64; SMALL_THREADS = kSmallThreads, the kernel's launch bound.
        unsafe { gpu.launch(MODULE, "rsvd_small_vectors_f64", vectors, &[p_r2, p_g, p_w, l32, p_v, p_ur, p_vr, p_sigma, p_counts])? };
        // SAFETY: reads the l x r doubles of Ṽ_r at at_v (written by the kernel before) and ORs into the counts
        // slot's second u32; one thread per pair (linear over r²); arguments match rsvd_small_check_f64.
        unsafe { gpu.launch(MODULE, "rsvd_small_check_f64", LaunchShape::linear(OP, r * r, 256)?, &[p_v, l32, r32, p_counts])? };
    }
    Ok(QueuedSmallSvd { l, r, buf, at_w, at_info, at_sigma, ur, vr, _call: call })
}

impl QueuedSmallSvd {
    /// Reads σ, `info` and the status back (r + 2 doubles; one wait for the queued work) and finishes: the
    /// device's factors, or the host's finish from them when the check or an eigenvalue says so (see
    /// [`small_svd_device`]). `r2` is the R₂ the work was queued on.
    fn finish(self, gpu: &Gpu, r2: &DevMat) -> Result<DeviceSmallSvd> {
        let QueuedSmallSvd { l, r, buf, at_w, at_info, at_sigma, ur, vr, _call: call } = self;
        let h = gpu.download(buf.slice(at_info..at_sigma + r))?;
        drop(call);
        let counts = h[1].to_bits();
        let (bad, status) = (counts as u32 as usize, (counts >> 32) as u32);
        if bad > 0 {
            return Err(Error::NonFinite { op: "rsvd", what: "sketch factor R (f32 overflow in the products: scale A down)", count: bad });
        }
        eigensolver_info(h[0])?;
        debug_assert_eq!(status & !(SMALL_NOT_FINITE | SMALL_NOT_ORTHONORMAL), 0, "unknown status bits");
        DEVICE_SMALL_SVD_RUNS.with(|c| c.set(c.get() + 1));
        if status == 0 {
            let s = h[2..2 + r].iter().map(|&x| x as f32).collect();
            return Ok(DeviceSmallSvd { s, ur, vr, host_finish: false });
        }
        // Ṽ_r off orthonormal (a spectrum over many decades, or zeroed columns): the host's Householder QR on the
        // device's eigenvectors; a non-finite eigenvalue: the host's eigensolver.
        let r2h = {
            let x = gpu.download(&r2.buf)?;
            Mat::from_fn(l, l, |i, j| x[i + j * l] as f64)
        };
        let (s, urh, vrh) = if status & SMALL_NOT_FINITE != 0 {
            small_svd_with(&r2h, r, host_eigen)?
        } else {
            let x = gpu.download(buf.slice(0..at_w + l))?;
            small_svd_with(&r2h, r, |_| Ok((x[at_w..at_w + l].to_vec(), Mat::from_fn(l, l, |i, j| x[i + j * l]))))?
        };
        Ok(DeviceSmallSvd { s, ur: dev_mat_from_host(gpu, &urh)?, vr: dev_mat_from_host(gpu, &vrh)?, host_finish: true })
    }
}

/// Threads per block of `rsvd_small_vectors_f64` (cuda/rsvd.cu kSmallThreads).
const SMALL_THREADS: u32 = 128;

/// σ, Ũ_r and Ṽ_r (l x r column-major) read back, and whether the host finished Ṽ_r ([`small_svd_on_device_for_tests`]).
#[doc(hidden)]
pub type SmallSvdForTests = (Vec<f32>, Vec<f32>, Vec<f32>, bool);

/// [`small_svd_device`] on an l x l f32 R₂ (column-major) uploaded from `r2`, read back: σ, Ũ_r and Ṽ_r (l x r
/// column-major) and whether the host finished Ṽ_r. The eigensolver is `solver` (ours falls back to syevd where l does not fit). For tests.
#[doc(hidden)]
pub fn small_svd_on_device_for_tests(gpu: &Gpu, r2: &[f32], l: usize, r: usize, solver: SmallEigensolver) -> Result<SmallSvdForTests> {
    if r2.len() != l * l {
        return Err(Error::LengthMismatch { op: "small_svd_on_device_for_tests", what: "R₂ (l x l)", expected: l * l, got: r2.len() });
    }
    let dev = DevMat { buf: gpu.upload(r2)?, rows: l, cols: l };
    let was = SMALL_EIGH.with(|f| f.replace(Some(solver)));
    let out = small_svd_device(gpu, &dev, r);
    SMALL_EIGH.with(|f| f.set(was));
    let out = out?;
    Ok((out.s, gpu.download(&out.ur.buf)?, gpu.download(&out.vr.buf)?, out.host_finish))
}

/// The host's small SVD of the same R₂ ([`small_svd`]: faer's eigensolver, the host's products): σ, Ũ_r and Ṽ_r
/// (l x r column-major, f32 as the final products take them). For tests.
#[doc(hidden)]
pub fn small_svd_on_host_for_tests(r2: &[f32], l: usize, r: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    if r2.len() != l * l || r == 0 || r > l {
        return Err(Error::LengthMismatch { op: "small_svd_on_host_for_tests", what: "R₂ (l x l, r <= l)", expected: l * l, got: r2.len() });
    }
    let (s, ur, vr) = small_svd(&Mat::from_fn(l, l, |i, j| r2[i + j * l] as f64), r)?;
    Ok((s, col_major_f32(&ur), col_major_f32(&vr)))
}

/// A host matrix's entries in f32, packed column-major.
fn col_major_f32(x: &Mat<f64>) -> Vec<f32> {
    (0..x.ncols()).flat_map(|j| (0..x.nrows()).map(move |i| (i, j))).map(|(i, j)| x[(i, j)] as f32).collect()
}

/// A host matrix as a packed column-major f32 device matrix.
fn dev_mat_from_host(gpu: &Gpu, x: &Mat<f64>) -> Result<DevMat> {
    Ok(DevMat { buf: gpu.upload(&col_major_f32(x))?, rows: x.nrows(), cols: x.ncols() })
}

/// How far from orthonormal (max |ṼᵀṼ − I|) the small SVD's Ṽ_r may be and skip its Householder QR: far below
/// f32 rounding (‖ṼᵀṼ − I‖_F ≤ 2.6e-7 even at r = 256, against ~1e-6 from the f32 products that form V), so
/// V = Q₂ Ṽ_r is as orthonormal as f32 allows either way. Power-law spectra (σ_j = 1/j) pass up to r ≈ 256.
const SMALL_SVD_ORTHONORMAL: f64 = 1e-9;

#[cfg(test)]
thread_local! {
    /// Tests: run the small SVD's Householder QR whatever Ṽ_r's Gram matrix says.
    static FORCE_SMALL_SVD_QR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
#[cfg(test)]
fn force_small_svd_qr() -> bool {
    FORCE_SMALL_SVD_QR.with(|f| f.get())
}
#[cfg(not(test))]
fn force_small_svd_qr() -> bool {
    false
}

fn validate(op: &'static str, a: DenseShape, cfg: &RsvdConfig, u: DenseShape, s_len: usize, vt: DenseShape) -> Result<()> {
    let (m, n) = (a.rows, a.cols);
    if m == 0 || n == 0 {
        return Err(Error::EmptyMatrix { op, what: "a", rows: m, cols: n });
    }
    if cfg.rank == 0 || cfg.rank > m.min(n) {
        return Err(Error::InvalidRank { op, rank: cfg.rank, max: m.min(n) });
    }
    if cfg.power_iters > MAX_POWER_ITERS {
        return Err(Error::TooLarge { op, what: "power_iters", value: cfg.power_iters, max: MAX_POWER_ITERS });
    }
    check_shape(op, "u", (m, cfg.rank), (u.rows, u.cols))?;
    check_len(op, "s", cfg.rank, s_len)?;
    check_shape(op, "vt", (cfg.rank, n), (vt.rows, vt.cols))
}

// ---------------------------------------------------------------------------------------------------------------
// CPU reference.

struct CpuEngine {
    a: Mat<f32>,
    /// A rounded to TF32 ([`to_tf32`]) when [`RsvdConfig::tf32`] is set: the power-iteration products' A.
    a_tf32: Option<Mat<f32>>,
}

/// `x` with the 13 low mantissa bits cleared: a TF32 value (8-bit exponent, 10-bit mantissa), rounded toward
/// zero. Hardware and cuBLAS convert to TF32 by truncation or by rounding to nearest; truncation is the larger of
/// the two errors (2⁻¹⁰ relative instead of 2⁻¹¹), so the CPU reference and the emulator model the worse one.
/// NaN and inf stay NaN and inf (their exponent is kept; a NaN whose payload lay only in the cleared bits would
/// become inf, but A is checked finite before any product).
pub(crate) fn to_tf32(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & TF32_MASK)
}
const TF32_MASK: u32 = 0xffff_e000;

fn to_f64(x: &Mat<f32>) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] as f64)
}
fn to_f32(x: &Mat<f64>) -> Mat<f32> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] as f32)
}

impl Engine for CpuEngine {
    type M = Mat<f32>;
    fn sketch(&mut self, rows: usize, cols: usize, seed: u64) -> Result<Mat<f32>> {
        let mut v = vec![0f32; rows * cols];
        gaussian_sketch_cpu(seed, &mut v);
        Ok(Mat::from_fn(rows, cols, |i, j| v[i + j * rows]))
    }
    fn a_mul(&mut self, x: &Mat<f32>, transpose: bool, product: Product) -> Result<Mat<f32>> {
        let (a, x) = match (&self.a_tf32, product) {
            (Some(a), Product::PowerIteration) => (a, std::borrow::Cow::Owned(Mat::from_fn(x.nrows(), x.ncols(), |i, j| to_tf32(x[(i, j)])))),
            _ => (&self.a, std::borrow::Cow::Borrowed(x)),
        };
        let x = x.as_ref();
        Ok(if transpose { a.transpose() * x } else { a * x })
    }
    fn gram(&mut self, x: &Mat<f32>) -> Result<Mat<f64>> {
        Ok(to_f64(&(x.transpose() * x)))
    }
    fn mul_small(&mut self, x: &Mat<f32>, s: &Mat<f64>) -> Result<Mat<f32>> {
        Ok(x * to_f32(s))
    }
    fn to_host(&mut self, x: &Mat<f32>) -> Result<Mat<f64>> {
        Ok(to_f64(x))
    }
    fn from_host(&mut self, x: &Mat<f64>) -> Result<Mat<f32>> {
        Ok(to_f32(x))
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

/// CPU reference: the randomized SVD of the module docs with faer (f32 products, f64 small algebra), the same
/// sketch bits as the device. Writes `U` (m x r), `s` (r, non-increasing) and `Vᵀ` (r x n), any layouts. With
/// [`RsvdConfig::tf32`] the power-iteration products take both factors truncated to TF32 (a rounded copy of A,
/// m·n more f32 values, is held for the call), as a model of the device's TF32 mode.
///
/// Errors (outputs untouched): A empty (`EmptyMatrix`); `rank` 0 or above `min(m, n)` (`InvalidRank`); U, s or
/// Vᵀ of the wrong shape; A holding NaN/inf (`NonFinite` with the count); products overflowing f32 (`NonFinite`
/// naming the singular values); faer's small SVD not converging.
///
/// ```
/// use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// // A = x yᵀ + 0.1 · (z wᵀ) is exactly rank 2: r = 2 recovers it.
/// let (m, n) = (40, 30);
/// let a: Vec<f32> = (0..m * n)
///     .map(|i| {
///         let (r, c) = ((i / n) as f32, (i % n) as f32);
///         (r + 1.0).sqrt() * (c * 0.2).cos() + 0.1 * (r * 0.3).sin() * (c + 1.0).ln()
///     })
///     .collect();
/// let cfg = RsvdConfig { seed: 7, ..RsvdConfig::new(2) };
/// let (mut u, mut s, mut vt) = (vec![0f32; m * 2], vec![0f32; 2], vec![0f32; 2 * n]);
/// rsvd_cpu(MatRef::row_major(&a, m, n)?, &cfg, MatMut::row_major(&mut u, m, 2)?, &mut s,
///          MatMut::row_major(&mut vt, 2, n)?)?;
/// assert!(s[0] >= s[1] && s[1] > 0.0);
/// // U diag(s) Vᵀ reproduces A to f32 rounding.
/// for i in 0..m {
///     for j in 0..n {
///         let approx: f32 = (0..2).map(|k| u[i * 2 + k] * s[k] * vt[k * n + j]).sum();
///         assert!((approx - a[i * n + j]).abs() <= 1e-4 * s[0]);
///     }
/// }
/// # Ok(()) }
/// ```
pub fn rsvd_cpu<T: Element>(a: MatRef<'_, T>, cfg: &RsvdConfig, mut u: MatMut<'_, f32>, s: &mut [f32], mut vt: MatMut<'_, f32>) -> Result<RsvdInfo> {
    const OP: &str = "rsvd_cpu";
    validate(OP, a.shape(), cfg, u.shape(), s.len(), vt.shape())?;
    let (m, n) = (a.rows(), a.cols());
    let mut bad = 0usize;
    let af = Mat::from_fn(m, n, |i, j| {
        let v = a.get(i, j).to_f32();
        bad += !v.is_finite() as usize;
        v
    });
    if bad > 0 {
        return Err(Error::NonFinite { op: OP, what: "a", count: bad });
    }
    let a_tf32 = cfg.tf32.then(|| Mat::from_fn(m, n, |i, j| to_tf32(af[(i, j)])));
    let mut e = CpuEngine { a: af, a_tf32 };
    let mut info = RsvdInfo::default();
    let mut prof = Profile::from_env(None);
    prof.lap(&mut e, Step::Convert)?;
    let f = run(&mut e, m, n, cfg, &mut info, &mut prof)?;
    let uu = &f.q * &f.ur;
    let vv = &f.q2 * &f.vr;
    for j in 0..cfg.rank {
        for i in 0..m {
            *u.get_mut(i, j) = uu[(i, j)];
        }
        for i in 0..n {
            *vt.get_mut(j, i) = vv[(i, j)];
        }
    }
    s.copy_from_slice(&f.s);
    prof.lap(&mut e, Step::Final)?;
    prof.report(&format!("cpu {m} x {n}"), &info);
    Ok(info)
}

// ---------------------------------------------------------------------------------------------------------------
// Device path.

/// A device f32 operand: a slice and the strides of its elements.
struct Operand<'s, 'a> {
    data: &'s DeviceSlice<'a, f32>,
    rs: usize,
    cs: usize,
}

/// `C (m x n) = op(A) · op(B)` with every matrix given by strides (one of each pair is 1); through cuBLAS (sgemm
/// via `cublasGemmEx`, TF32 when asked) on a GPU, through `rsvd_gemm_f32` on the emulator or without libcublas.
///
/// # Safety
/// Every element `(i, k)` of A for `i < m, k < kk`, `(k, j)` of B and `(i, j)` of C, at `i * rs + j * cs` of its
/// slice, lies inside that slice; C overlaps neither A nor B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(gpu: &Gpu, tf32: bool, m: usize, n: usize, kk: usize, a: Operand<'_, '_>, b: Operand<'_, '_>, c: &mut DeviceSliceMut<'_, f32>, c_rs: usize, c_cs: usize) -> Result<()> {
    // SAFETY: the caller's contract is gemm_batched's for one product.
    unsafe { gemm_batched(gpu, tf32, m, n, kk, a, b, c, c_rs, c_cs, Batch { count: 1, a: 0, b: 0, c: 0 }) }
}

/// `count` products of [`gemm`]'s kind, product p with A, B and C starting `p * a`, `p * b`, `p * c` elements
/// into their slices (cuBLAS's strided batched GEMM; one `rsvd_gemm_f32` launch per product without cuBLAS).
#[derive(Debug, Clone, Copy)]
struct Batch {
    count: usize,
    a: usize,
    b: usize,
    c: usize,
}

/// [`gemm`] for a [`Batch`] of products.
///
/// # Safety
/// For every p < count, every element `(i, k)` of A for `i < m, k < kk`, at `p * batch.a + i * rs + k * cs` of its
/// slice, lies inside that slice, likewise B's `(k, j)` and C's `(i, j)`; C's elements of different products are
/// distinct; C overlaps neither A nor B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_batched(gpu: &Gpu, tf32: bool, m: usize, n: usize, kk: usize, a: Operand<'_, '_>, b: Operand<'_, '_>, c: &mut DeviceSliceMut<'_, f32>, c_rs: usize, c_cs: usize, batch: Batch) -> Result<()> {
    const OP: &str = "rsvd gemm";
    let (p_a, _ga) = a.data.kernel_ptr(gpu, OP, "a")?;
    let (p_b, _gb) = b.data.kernel_ptr(gpu, OP, "b")?;
    let (p_c, _gc) = c.kernel_ptr_mut(gpu, OP, "c")?;
    let inputs = if tf32 { GemmInputs::Tf32 } else { GemmInputs::F32 };
    // SAFETY: gemm_batched's contract is gemm_ptrs' for these f32 buffers; the guards above keep the buffers' stream
    // ordering until after the call.
    unsafe { gemm_ptrs(gpu, inputs, m, n, kk, (p_a, a.rs, a.cs), (p_b, b.rs, b.cs), (p_c, c_rs, c_cs), batch, 0.0) }
}

/// What the factors of a product are and how cuBLAS may multiply them (C is always f32, accumulated in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GemmInputs {
    /// f32 factors, f32 arithmetic (sgemm).
    F32,
    /// f32 factors that cuBLAS may round to TF32 for the tensor cores ([`RsvdConfig::tf32`]).
    Tf32,
    /// bf16 factors on bf16 tensor cores: every product of two bf16 values is exact in f32 ([`split_bf16_product`]).
    Bf16,
}

impl GemmInputs {
    fn element_bytes(self) -> usize {
        match self {
            GemmInputs::F32 | GemmInputs::Tf32 => 4,
            GemmInputs::Bf16 => 2,
        }
    }
}

/// `C (m x n, f32) = op(A) · op(B) + β·C` with bf16 A and B, each given by an element offset into its slice and
/// strides ([`gemm`]'s rules; C not read when β = 0): cuBLAS's bf16 x bf16 → f32 product on a GPU, `rsvd_gemm_bf16`
/// on the emulator or without libcublas.
///
/// # Safety
/// Every element `(i, k)` of A for `i < m, k < kk`, `(k, j)` of B and `(i, j)` of C, at `offset + i * rs + j * cs`
/// of its slice, lies inside that slice; C overlaps neither A nor B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_bf16(gpu: &Gpu, m: usize, n: usize, kk: usize, a: (&DeviceSlice<'_, bf16>, usize, usize, usize), b: (&DeviceSlice<'_, bf16>, usize, usize, usize), c: (&mut DeviceSliceMut<'_, f32>, usize, usize, usize), beta: f32) -> Result<()> {
    const OP: &str = "rsvd gemm bf16";
    let (p_a, _ga) = a.0.kernel_ptr(gpu, OP, "a")?;
    let (p_b, _gb) = b.0.kernel_ptr(gpu, OP, "b")?;
    let (p_c, _gc) = c.0.kernel_ptr_mut(gpu, OP, "c")?;
    let (p_a, p_b, p_c) = (p_a.offset_bytes(2 * a.1), p_b.offset_bytes(2 * b.1), p_c.offset_bytes(4 * c.1));
    // SAFETY: this function's contract is gemm_ptrs' for these bf16 factors and f32 C (one product, pointers moved
    // to the offsets); the guards keep the buffers' stream ordering until after the call.
    unsafe { gemm_ptrs(gpu, GemmInputs::Bf16, m, n, kk, (p_a, a.2, a.3), (p_b, b.2, b.3), (p_c, c.2, c.3), Batch { count: 1, a: 0, b: 0, c: 0 }, beta) }
}

/// The launch behind [`gemm_batched`] and [`gemm_bf16`]: `C = op(A)·op(B) + β·C` (C not read when β = 0) by cuBLAS
/// when the device has it, else one of our plain kernels per product (`rsvd_gemm_f32`, or `rsvd_gemm_bf16` for
/// [`GemmInputs::Bf16`]).
///
/// # Safety
/// The pointers are live buffers of `gpu` (their guards held by the caller) whose elements are `inputs`' type
/// for A and B and f32 for C; for every p < count, every element `(i, k)` of A for `i < m, k < kk`, at
/// `p * batch.a + i * rs + k * cs` elements from its pointer, lies inside its buffer, likewise B's `(k, j)` and C's
/// `(i, j)`; C's elements of different products are distinct; C overlaps neither A nor B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_ptrs(gpu: &Gpu, inputs: GemmInputs, m: usize, n: usize, kk: usize, a: (KernelArg, usize, usize), b: (KernelArg, usize, usize), c: (KernelArg, usize, usize), batch: Batch, beta: f32) -> Result<()> {
    const OP: &str = "rsvd gemm";
    if m == 0 || n == 0 || batch.count == 0 {
        return Ok(());
    }
    for v in [m, n, kk, a.1, a.2, b.1, b.2, c.1, c.2, batch.count] {
        if v > i32::MAX as usize {
            return Err(Error::LengthMismatch { op: OP, what: "dimension or leading dimension (cuBLAS takes i32)", expected: i32::MAX as usize, got: v });
        }
    }
    if let Some(stream) = gpu.cuda_stream() {
        stream.context().bind_to_thread().map_err(|e| Error::Cuda { op: OP, detail: e.to_string() })?;
        // Our own kernel below only when libcublas is missing: any other failure (creating the handle, say) is the
        // call's error, never a silent switch to a kernel that sums in another order (until 2026-11-29 any error
        // switched, so the same inputs could give other bits, or one call mix both engines).
        match gpu.ops_cublas() {
            Ok(blas) => {
                gpu.count_library_call();
                // SAFETY: gemm_ptrs' contract, which is cublas_gemm's.
                return unsafe { cublas_gemm(&blas, inputs, m, n, kk, a, b, c, batch, beta) };
            }
            Err(Error::LibraryMissing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if n.div_ceil(GEMM_TILE as usize) > i32::MAX as usize || m.div_ceil(GEMM_TILE as usize) > 65535 {
        return Err(Error::LengthMismatch { op: OP, what: "rows (gemm grid)", expected: 65535 * GEMM_TILE as usize, got: m });
    }
    let shape = LaunchShape {
        grid: (n.div_ceil(GEMM_TILE as usize) as u32, m.div_ceil(GEMM_TILE as usize) as u32, 1),
        block: (GEMM_TILE, GEMM_TILE, 1),
        shared_bytes: 0,
    };
    let u64a = |x: usize| KernelArg::U64(x as u64);
    let eb = inputs.element_bytes();
    for p in 0..batch.count {
        let (pa, pb, pc) = (a.0.offset_bytes(eb * p * batch.a), b.0.offset_bytes(eb * p * batch.b), c.0.offset_bytes(4 * p * batch.c));
        let (dims, (a_rs, a_cs), (b_rs, b_cs), (c_rs, c_cs)) = ([m, n, kk].map(|x| KernelArg::U32(x as u32)), (u64a(a.1), u64a(a.2)), (u64a(b.1), u64a(b.2)), (u64a(c.1), u64a(c.2)));
        // SAFETY: the caller's contract above (every element the kernel reads or writes for product p, i < m,
        // j < n, k < kk lies in its buffer at the product's offset, counted in elements of each operand's type;
        // C overlaps neither input); thread (i, j) exits unless i < m and j < n; sizes fit u32 (checked against
        // i32::MAX above); the arguments match rsvd_gemm_f32's or rsvd_gemm_bf16's parameter lists.
        unsafe {
            match inputs {
                GemmInputs::F32 | GemmInputs::Tf32 => gpu.launch(
                    MODULE,
                    "rsvd_gemm_f32",
                    shape,
                    &[dims[0], dims[1], dims[2], KernelArg::F32(1.0), pa, a_rs, a_cs, pb, b_rs, b_cs, KernelArg::F32(beta), pc, c_rs, c_cs, KernelArg::U32((inputs == GemmInputs::Tf32) as u32)],
                )?,
                GemmInputs::Bf16 => gpu.launch(MODULE, "rsvd_gemm_bf16", shape, &[dims[0], dims[1], dims[2], pa, a_rs, a_cs, pb, b_rs, b_cs, pc, c_rs, c_cs, KernelArg::F32(beta)])?,
            }
        }
    }
    Ok(())
}

fn ptr_bits(p: KernelArg) -> u64 {
    match p {
        KernelArg::Ptr(p) => p,
        _ => 0,
    }
}

/// How a strided product maps onto column-major BLAS: `C = op(A)·op(B)` directly when C is column-major
/// (`c_rs == 1`), else `Cᵀ = op(B)ᵀ·op(A)ᵀ` with the operands swapped (`swap`); an operand with unit row stride is
/// `N` with `ld = col stride`, otherwise `T` with `ld = row stride`. A single stored column makes its leading
/// dimension irrelevant (e.g. a row-major m x 1 view with ld = 1), so every ld is raised to what BLAS requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlasPlan {
    swap: bool,
    m: usize,
    n: usize,
    k: usize,
    a_trans: bool,
    lda: usize,
    b_trans: bool,
    ldb: usize,
    ldc: usize,
}

fn blas_plan(m: usize, n: usize, k: usize, a: (usize, usize), b: (usize, usize), c: (usize, usize)) -> BlasPlan {
    let swap = c.0 != 1;
    let (m, n, a, b, c) = if swap { (n, m, (b.1, b.0), (a.1, a.0), (c.1, c.0)) } else { (m, n, a, b, c) };
    // (transposed, ld) of an operand with `rows x cols` and strides (rs, cs).
    let op = |(rs, cs): (usize, usize), rows: usize, cols: usize| if rs == 1 { (false, cs.max(rows)) } else { (true, rs.max(cols)) };
    let (a_trans, lda) = op(a, m, k);
    let (b_trans, ldb) = op(b, k, n);
    BlasPlan { swap, m, n, k, a_trans, lda, b_trans, ldb, ldc: c.1.max(m) }
}

/// The cuBLAS call for [`gemm_batched`], laid out by [`blas_plan`]: `cublasGemmEx` for one product,
/// `cublasGemmStridedBatchedEx` for more.
///
/// # Safety
/// The pointers are live device buffers of the handle's device, ordered on its stream, with every element that
/// (m, n, k), the strides and the batch address inside them, as [`gemm_ptrs`] requires.
#[allow(clippy::too_many_arguments)]
unsafe fn cublas_gemm(blas: &cudarc::cublas::CudaBlas, inputs: GemmInputs, m: usize, n: usize, kk: usize, a: (KernelArg, usize, usize), b: (KernelArg, usize, usize), c: (KernelArg, usize, usize), batch: Batch, beta: f32) -> Result<()> {
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
    let plan = blas_plan(m, n, kk, (a.1, a.2), (b.1, b.2), (c.1, c.2));
    let ((pa, sa), (pb, sb)) = if plan.swap { ((b.0, batch.b), (a.0, batch.a)) } else { ((a.0, batch.a), (b.0, batch.b)) };
    let trans = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
    let compute = if inputs == GemmInputs::Tf32 { cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32 } else { cublasComputeType_t::CUBLAS_COMPUTE_32F };
    // bf16 A and B with f32 C and CUBLAS_COMPUTE_32F is one of cublasGemmEx's listed combinations (tensor cores,
    // f32 accumulation).
    let in_t = if inputs == GemmInputs::Bf16 { cudaDataType::CUDA_R_16BF } else { cudaDataType::CUDA_R_32F };
    let alpha = 1f32;
    let (alpha, beta) = (&alpha as *const f32 as *const std::ffi::c_void, &beta as *const f32 as *const std::ffi::c_void);
    let (pa, pb, pc) = (ptr_bits(pa) as *const std::ffi::c_void, ptr_bits(pb) as *const std::ffi::c_void, ptr_bits(c.0) as *mut std::ffi::c_void);
    let f32t = cudaDataType::CUDA_R_32F;
    let (ta, tb) = (trans(plan.a_trans), trans(plan.b_trans));
    let (pm, pn, pk, lda, ldb, ldc) = (plan.m as i32, plan.n as i32, plan.k as i32, plan.lda as i32, plan.ldb as i32, plan.ldc as i32);
    // SAFETY: the pointers are live device buffers on the handle's stream (their guards are held by the caller
    // for the duration of this call), and `gemm_ptrs`' contract puts every element addressed by (m, n, k, ld*,
    // the batch strides) inside them; leading dimensions are at least the stored rows (DenseShape's ld >= inner
    // extent, packed scratch); alpha/beta point at host f32 values that outlive the call.
    unsafe {
        if batch.count == 1 {
            cudarc::cublas::result::gemm_ex(*blas.handle(), ta, tb, pm, pn, pk, alpha, pa, in_t, lda, pb, in_t, ldb, beta, pc, f32t, ldc, compute, cublasGemmAlgo_t::CUBLAS_GEMM_DFALT)
        } else {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *blas.handle(),
                ta,
                tb,
                pm,
                pn,
                pk,
                alpha,
                pa,
                in_t,
                lda,
                sa as i64,
                pb,
                in_t,
                ldb,
                sb as i64,
                beta,
                pc,
                f32t,
                ldc,
                batch.c as i64,
                batch.count as i32,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
    }
    .map_err(|e| Error::Cuda { op: "rsvd cublasGemmEx", detail: format!("{e:?}") })
}

/// `XᵀX` (l x l, f32) of a packed column-major X, left on the device. From [`GRAM_SPLIT_MIN_ROWS`] rows and up to
/// l = [`GRAM_SPLIT_MAX_L`] it is summed from row chunks:
/// one strided batched product `X_pᵀX_p` per chunk of c rows (plus one for the remainder), then
/// `rsvd_sum_slices_f32` adds the partial Gram matrices in chunk order (deterministic).
fn device_gram(gpu: &Gpu, x: &DevMat) -> Result<DevMat> {
    let (rows, l) = (x.rows, x.cols);
    let xs = DeviceSlice::from(&x.buf);
    // SLR_RSVD_PATH=onegram: one product at every size (the benchmark's same-run comparison).
    if rows < GRAM_SPLIT_MIN_ROWS || l == 0 || l > GRAM_SPLIT_MAX_L || crate::path_switch("SLR_RSVD_PATH", "onegram") {
        // SAFETY: Xᵀ (l x rows) and X (rows x l) address exactly the packed rows x l elements of X's buffer.
        return unsafe { device_product(gpu, l, l, rows, Operand { data: &xs, rs: rows, cs: 1 }, Operand { data: &xs, rs: 1, cs: rows }, false) };
    }
    let chunks = (rows / GRAM_CHUNK_ROWS).min(GRAM_MAX_CHUNKS);
    let c = rows / chunks;
    let rem = rows - chunks * c;
    let slots = chunks + usize::from(rem > 0);
    let ll = l * l;
    // SAFETY: the products below write every element of all `slots` l x l slices (β = 0).
    let mut parts = unsafe { gpu.alloc_uninit::<f32>(slots * ll)? };
    {
        let mut pv = DeviceSliceMut::from(&mut parts);
        // SAFETY: product p reads Xᵀ and X at p c + k + i rows for k < c, i < l: at most (chunks - 1) c + c - 1 +
        // (l - 1) rows < rows l, inside X's packed buffer; it writes slice p of `parts` (p l² + i + j l, i, j < l),
        // distinct per product and inside the slots l² elements; parts is fresh, so no overlap.
        unsafe {
            gemm_batched(
                gpu,
                false,
                l,
                l,
                c,
                Operand { data: &xs, rs: rows, cs: 1 },
                Operand { data: &xs, rs: 1, cs: rows },
                &mut pv,
                1,
                l,
                Batch { count: chunks, a: c, b: c, c: ll },
            )?;
        }
    }
    if rem > 0 {
        let tail = x.buf.slice(chunks * c..rows * l);
        let mut last = parts.slice_mut(chunks * ll..slots * ll);
        // SAFETY: the tail view starts at row chunks c of column 0; Xᵀ and X read its elements k + i rows for
        // k < rem, i < l, at most rem - 1 + (l - 1) rows < its rows l - chunks c elements; the last slot is l²
        // fresh elements, written at i + j l.
        unsafe { gemm(gpu, false, l, l, rem, Operand { data: &tail, rs: rows, cs: 1 }, Operand { data: &tail, rs: 1, cs: rows }, &mut last, 1, l)? };
    }
    // SAFETY: rsvd_sum_slices_f32 writes all l² elements.
    let mut g = unsafe { new_dev_mat(gpu, l, l)? };
    sum_slices(gpu, &parts, ll, slots, &mut g.buf)?;
    Ok(g)
}

/// [`device_gram`] for tests: `XᵀX` of the packed column-major rows x l matrix `x`, downloaded (l x l
/// column-major).
#[doc(hidden)]
pub fn gram_on_device_for_tests(gpu: &Gpu, x: &[f32], rows: usize, l: usize) -> Result<Vec<f32>> {
    check_len("rsvd gram", "x", rows * l, x.len())?;
    let dx = DevMat { buf: gpu.upload(x)?, rows, cols: l };
    let g = device_gram(gpu, &dx)?;
    gpu.download(&g.buf)
}

/// From this many rows a device Gram matrix is summed from row chunks ([`device_gram`]): one
/// `XᵀX` of a tall X gives cuBLAS an l x l output (one or a few tiles) and a k loop of `rows`, so a few thread blocks
/// stream all of X: the H200 run of a5e77c2 measured ~28 µs per Gram at l = 26 and ~39 µs at l = 138 for 4096 rows
/// (12 Grams per rSVD at q = 2: 0.34 and 0.47 ms). Chunks of [`GRAM_CHUNK_ROWS`] rows (at most [`GRAM_MAX_CHUNKS`])
/// give that many times the blocks; the chunk count is a guess from tile counts, not measured.
const GRAM_SPLIT_MIN_ROWS: usize = 1024;
/// Only while l is at most this. Measured on an H200 (`SLR_RSVD_PATH=onegram`, the whole rSVD's time with one
/// product over ours): at l = 138 (r = 128) one product was as fast or faster in all eight cases of two runs
/// (sixth run 0.98-1.01x, seventh 0.94-0.99x: the chunks cost up to 6% of the call), at l = 26 (r = 16) the chunks
/// were even or ahead (0.90-1.04x, mostly 1.00-1.04). So from 2026-11-27 only narrow sketches are chunked: 64, between the two
/// measured widths (the crossover itself is not measured). A wide Gram has enough output tiles of its own, and
/// its partial matrices would take up to 64 l² floats of scratch.
const GRAM_SPLIT_MAX_L: usize = 64;
const GRAM_CHUNK_ROWS: usize = 128;
const GRAM_MAX_CHUNKS: usize = 64;

/// `out[e] = Σ_s parts[s · count + e]` for e < count, the slices added in order (kernel `rsvd_sum_slices_f32`).
fn sum_slices(gpu: &Gpu, parts: &DeviceVec<f32>, count: usize, slices: usize, out: &mut DeviceVec<f32>) -> Result<()> {
    const OP: &str = "rsvd sum slices";
    check_len(OP, "parts", count * slices, parts.len())?;
    check_len(OP, "out", count, out.len())?;
    if slices > u32::MAX as usize {
        return Err(Error::LengthMismatch { op: OP, what: "slices", expected: u32::MAX as usize, got: slices });
    }
    if count == 0 {
        return Ok(());
    }
    let pv = DeviceSlice::from(parts);
    let (p_parts, _g0) = pv.kernel_ptr(gpu, OP, "parts")?;
    let mut ov = DeviceSliceMut::from(out);
    let (p_out, _g1) = ov.kernel_ptr_mut(gpu, OP, "out")?;
    let blocks = count.div_ceil(256).min(1024) as u32;
    let shape = LaunchShape { grid: (blocks, 1, 1), block: (256, 1, 1), shared_bytes: 0 };
    // SAFETY: the kernel reads parts[s count + e] for s < slices, e < count (parts holds exactly count slices,
    // checked) and writes out[e] for e < count (checked); out and parts are distinct buffers (one borrowed shared,
    // one exclusively); the grid strides over count; arguments match rsvd_sum_slices_f32.
    unsafe { gpu.launch(MODULE, "rsvd_sum_slices_f32", shape, &[p_parts, KernelArg::U64(count as u64), KernelArg::U32(slices as u32), p_out]) }
}

/// Which products with A run as [`split_bf16_product`] on bf16 tensor cores (A and X as exact bf16 slices) instead
/// of f32 products with A in f32 (`SLR_RSVD_GEMM`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitProducts {
    /// None (the default): every product with A is an sgemm on A's f32 copy.
    Off,
    /// The 2q + 1 power-iteration products (`SLR_RSVD_GEMM=bf16x3`); the projection `Bᵀ = Aᵀ Q` stays sgemm.
    PowerIteration,
    /// All 2q + 2, the projection included (`SLR_RSVD_GEMM=bf16x3_all`): no f32 copy of an f16 or bf16 A is made
    /// (m·n·4 bytes of scratch and its write saved), and s and V then carry the tensor cores' accumulation error too.
    /// Either mode splits an f32 A into 3 slices (m·n·6 bytes of scratch) and an f16 A into 2 (m·n·4).
    All,
}

/// The [`SplitProducts`] this thread asked for ([`use_bf16x3_products_on_this_thread`]), else `SLR_RSVD_GEMM`'s.
/// Opt-in until a GPU has timed them against sgemm (6 sgemm products with A took 0.92 ms at 4096², l = 138 on the
/// H200, eleventh run: ~30 TFLOP/s on CUDA cores; the split product does 3x those flops on tensor cores with a 15x
/// higher peak).
fn split_products_requested() -> SplitProducts {
    SPLIT_PRODUCTS.with(|f| f.get()).unwrap_or_else(|| {
        if crate::path_switch("SLR_RSVD_GEMM", "bf16x3") {
            SplitProducts::PowerIteration
        } else if crate::path_switch("SLR_RSVD_GEMM", "bf16x3_all") {
            SplitProducts::All
        } else {
            SplitProducts::Off
        }
    })
}

thread_local! {
    static SPLIT_PRODUCTS: std::cell::Cell<Option<SplitProducts>> = const { std::cell::Cell::new(None) };
}

/// Sets which products of this thread's rSVD calls run as [`split_bf16_product`] (`Some`, as
/// `SLR_RSVD_GEMM` does for the process), or returns to the environment's choice (`None`): for tests running in
/// parallel threads.
#[doc(hidden)]
pub fn use_bf16x3_products_on_this_thread(mode: Option<SplitProducts>) {
    SPLIT_PRODUCTS.with(|f| f.set(mode));
}

/// A as exact bf16 slices for [`split_bf16_product`], A = A₁ + … + A_slices: slice s (s = 0 the largest) at
/// element `s * stride` of `data`, laid out by `shape`. A bf16 A is its own single slice (read as stored); an f16 A
/// has two and an f32 A three, packed in A's storage order by `rsvd_split_a_<dtype>` ([`split_a`]).
struct SplitA<'a> {
    data: DeviceSlice<'a, bf16>,
    slices: usize,
    stride: usize,
    shape: DenseShape,
}

/// How many exact bf16 slices an element type needs: 1 for bf16, 2 for f16 (11 significand bits), 3 for f32 (24).
fn a_slices(dtype: crate::element::DType) -> usize {
    match dtype {
        crate::element::DType::BF16 => 1,
        crate::element::DType::F16 => 2,
        crate::element::DType::F32 => 3,
    }
}

/// Elements between A's bf16 slices: m·n rounded up to 8 (16 bytes), so that every slice starts where the tensor
/// cores' 16-byte loads need it (cuBLAS runs slower kernels on a misaligned operand).
fn a_slice_stride(m: usize, n: usize) -> usize {
    (m * n).next_multiple_of(8)
}

/// An f16 or f32 A's exact bf16 slices, packed in A's storage order (`rsvd_split_a_<dtype>`; slice s at
/// s·[`a_slice_stride`]); `None` for a bf16 A, which is its own slice. With `count` = (counter, slot), the same
/// pass adds A's non-finite entries to `counter[slot]` (which the caller zeroed), as [`convert_and_count`] would
/// (not for a bf16 A, which this does not read). Queued: nothing waits.
fn split_a<T: Element>(gpu: &Gpu, a: &DeviceMatRef<'_, T>, count: Option<(&mut DeviceVec<u32>, usize)>) -> Result<Option<DeviceVec<bf16>>> {
    const OP: &str = "rsvd split a";
    let slices = a_slices(T::DTYPE);
    if slices == 1 {
        return Ok(None);
    }
    let s = a.shape();
    let (outer, inner) = (s.outer(), s.inner());
    let stride = a_slice_stride(outer, inner);
    if let Some((counter, slot)) = &count {
        check_slot(OP, "non-finite counter slot", counter.len(), *slot)?;
    }
    // SAFETY: rsvd_split_a_<T> writes every element of every slice (row o, column k of slice s at
    // s·stride + o·inner + k); the up to 7 elements of padding after each slice are never read (every product
    // addresses only (i, p) with i·rs + p·cs < m·n); an empty A has nothing to read.
    let mut out = unsafe { gpu.alloc_uninit::<bf16>(slices * stride)? };
    if outer * inner == 0 {
        return Ok(Some(out));
    }
    {
        let (p_src, _g0) = a.data().kernel_ptr(gpu, OP, "a")?;
        let mut ov = DeviceSliceMut::from(&mut out);
        let (p_out, _g1) = ov.kernel_ptr_mut(gpu, OP, "a slices")?;
        let mut cview = count.map(|(counter, slot)| (DeviceSliceMut::from(counter), slot));
        let (p_cnt, _g2) = match cview.as_mut() {
            Some((c, slot)) => {
                let (p, g) = c.kernel_ptr_mut(gpu, OP, "non-finite counter")?;
                (p.offset_bytes(*slot * std::mem::size_of::<u32>()), Some(g))
            }
            None => (KernelArg::Ptr(0), None),
        };
        let shape = LaunchShape { grid: (outer.clamp(1, 4096) as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
        let u64a = |x: usize| KernelArg::U64(x as u64);
        // SAFETY: A's shape was validated against its buffer (DeviceMatRef), so src[o * ld + k] for o < outer,
        // k < inner is inside it; out is the fresh buffer of slices·stride elements allocated above, written at
        // s·stride + o·inner + k < slices·stride (the kernel writes T's slice count: 3 for f32, 2 for f16, as
        // a_slices says; stride ≥ outer·inner), overlapping nothing; the count, when asked for, goes to
        // counter[slot] (slot < len, checked above), a word of a buffer that is neither A nor the slices, and a
        // null counter is never dereferenced; arguments match rsvd_split_a_<dtype>.
        unsafe { gpu.launch(MODULE, &format!("rsvd_split_a_{}", T::DTYPE.name()), shape, &[p_src, u64a(outer), u64a(inner), u64a(s.ld), u64a(stride), p_out, p_cnt])? };
    }
    Ok(Some(out))
}

/// The [`SplitA`] view of A: A itself when it is bf16 (`owned` is then `None`), else the slices [`split_a`] wrote.
fn split_view<'s, T: Element>(a: &'s DeviceMatRef<'_, T>, owned: Option<&'s DeviceVec<bf16>>) -> Option<SplitA<'s>> {
    let s = a.shape();
    match owned {
        Some(buf) => Some(SplitA { data: DeviceSlice::from(buf), slices: a_slices(T::DTYPE), stride: a_slice_stride(s.rows, s.cols), shape: DenseShape::packed(s.rows, s.cols, s.layout) }),
        None => a.data().as_element::<bf16>().map(|d| SplitA { data: d, slices: 1, stride: 0, shape: s }),
    }
}

/// `op(A) · X` (rows x l, f32) on bf16 tensor cores, as accurate as an f32 product: X (k x l, packed f32) is split
/// exactly into three bf16 slices, X = X₁ + X₂ + X₃ (`rsvd_split_bf16x3`: X₁ = rn(X), X₂ = rn(X - X₁), X₃ the exact
/// rest), A is given as its exact bf16 slices A₁ (+ A₂ (+ A₃)) ([`SplitA`]), and every term A_s·X_t with s + t ≤ 4
/// is formed exactly (8 x 8 significand bits fit f32's 24) by bf16 x bf16 → f32 products:
/// `P = op(A₁)·[X₃ | X₂ | X₁]`, then `P[:, l..] += op(A₂)·[X₂ | X₁]` and `P[:, 2l..] += op(A₃)·X₁` for an f16 or f32 A,
/// and `rsvd_sum_slices_f32` adds P's three column blocks, the small ones first. The terms left out (A₂X₃, A₃X₂,
/// A₃X₃: f32 A only) are below 2·2⁻²⁴·|A||X| per term, so the result differs from the exact A·X by about what an f32
/// product's own rounding leaves: the f32 accumulation (on tensor cores in their own order, possibly truncating
/// inside a k block), the additions of the parts and those terms.
///
/// Floor: (3, 5, 6 for bf16, f16, f32 A) x 2·rows·k·l flops on bf16 tensor cores (989 TFLOP/s dense peak on an
/// H100/H200 SXM, against 67 for f32 FMA): at 4096², l = 138 and a bf16 A, 13.9 GFLOP, ~14 µs at peak, where one
/// sgemm with A measured ~150 µs (H200, eleventh run, 0.92 ms for six). A's slices are read as stored (2 bytes an
/// element each: 34 MB at 4096²); the split of X moves 10·k·l bytes (5.6 MB at k = 4096) and the sum 16·rows·l
/// (9 MB).
///
/// # Safety
/// Every slice's elements `(i, p)` for `i < rows, p < k`, at `s * a.stride + i * rs + p * cs` of `a.data`, lie
/// inside it. (X, packed k x l, is checked.)
#[allow(clippy::too_many_arguments)]
unsafe fn split_bf16_product(gpu: &Gpu, rows: usize, a: &SplitA<'_>, rs: usize, cs: usize, x: &DeviceVec<f32>, k: usize, l: usize) -> Result<DevMat> {
    check_len("rsvd split product", "x (k x l)", k * l, x.len())?;
    // SAFETY: split_bf16x3 writes all 3·k·l elements.
    let mut xs = unsafe { gpu.alloc_uninit::<bf16>(3 * k * l)? };
    split_bf16x3(gpu, x, &mut xs)?;
    // SAFETY: the first product below writes all rows x 3l elements (β = 0) before the others add to them.
    let mut parts = unsafe { gpu.alloc_uninit::<f32>(rows * 3 * l)? };
    {
        let xv = DeviceSlice::from(&xs);
        let mut pv = DeviceSliceMut::from(&mut parts);
        for s in 0..a.slices.min(3) {
            // SAFETY: slice s of A is in bounds by the caller's contract; X's slices are the packed column-major
            // k x 3l matrix [X₃ | X₂ | X₁] (element (p, j) at p + j·k < 3·k·l), of which this product reads the last
            // 3 - s blocks (from column s·l); the parts are the fresh packed column-major rows x 3l matrix (element
            // (i, j) at i + j·rows), of which it writes (s = 0) or adds to (β = 1) the same last 3 - s blocks; the
            // parts overlap neither input.
            unsafe { gemm_bf16(gpu, rows, (3 - s) * l, k, (&a.data, s * a.stride, rs, cs), (&xv, s * l * k, 1, k), (&mut pv, s * l * rows, 1, rows), if s == 0 { 0.0 } else { 1.0 })? };
        }
    }
    // SAFETY: sum_slices writes all rows·l elements.
    let mut out = unsafe { new_dev_mat(gpu, rows, l)? };
    sum_slices(gpu, &parts, rows * l, 3, &mut out.buf)?;
    Ok(out)
}

/// `out = [X₃ | X₂ | X₁]` with X = X₁ + X₂ + X₃ exactly (kernel `rsvd_split_bf16x3`); out holds 3·x.len() values.
fn split_bf16x3(gpu: &Gpu, x: &DeviceVec<f32>, out: &mut DeviceVec<bf16>) -> Result<()> {
    const OP: &str = "rsvd split bf16x3";
    let count = x.len();
    check_len(OP, "out", 3 * count, out.len())?;
    if count == 0 {
        return Ok(());
    }
    let xv = DeviceSlice::from(x);
    let (p_x, _g0) = xv.kernel_ptr(gpu, OP, "x")?;
    let mut ov = DeviceSliceMut::from(out);
    let (p_out, _g1) = ov.kernel_ptr_mut(gpu, OP, "out")?;
    let shape = LaunchShape { grid: (count.div_ceil(256).min(4096) as u32, 1, 1), block: (256, 1, 1), shared_bytes: 0 };
    // SAFETY: the kernel reads x[i] and writes out[i], out[count + i], out[2 count + i] for i < count (out holds
    // 3·count, checked); x and out are distinct buffers (one borrowed shared, one exclusively); the grid strides
    // over count; arguments match rsvd_split_bf16x3.
    unsafe { gpu.launch(MODULE, "rsvd_split_bf16x3", shape, &[p_x, KernelArg::U64(count as u64), p_out]) }
}

/// `op(A)` of a stored A with shape `s`: (rows, cols, row stride, column stride) of A, or of `Aᵀ` (the strides
/// swapped) with `transpose`.
fn op_a(s: DenseShape, transpose: bool) -> (usize, usize, usize, usize) {
    if transpose {
        (s.cols, s.rows, s.col_stride(), s.row_stride())
    } else {
        (s.rows, s.cols, s.row_stride(), s.col_stride())
    }
}

/// [`split_bf16_product`] of the matrix `a` (its shape's layout and ld; `Aᵀ` with `transpose`; an f16 or f32 A split
/// first, as `rsvd` does) and the packed column-major f32 `x`, read back: the tests' handle on the product and its
/// cuBLAS calls.
#[doc(hidden)]
pub fn split_product_for_tests<T: Element>(gpu: &Gpu, a: DeviceMatRef<'_, T>, transpose: bool, x: &[f32], l: usize) -> Result<Vec<f32>> {
    const OP: &str = "split_product_for_tests";
    let (rows, k, _, _) = op_a(a.shape(), transpose);
    check_len(OP, "x (k x l)", k * l, x.len())?;
    let xd = gpu.upload(x)?;
    let owned = split_a(gpu, &a, None)?;
    let view = split_view(&a, owned.as_ref()).ok_or(Error::WrongDevice { op: OP, what: "a" })?;
    let (_, _, rs, cs) = op_a(view.shape, transpose);
    // SAFETY: the view's shape is A's, validated against its buffer (DeviceMatRef), or the packed shape of the
    // slices split_a wrote (each m·n elements at s·stride, stride ≥ m·n), so (i, p) for i < rows, p < k at
    // s·stride + i·rs + p·cs is inside the data.
    let out = unsafe { split_bf16_product(gpu, rows, &view, rs, cs, &xd, k, l)? };
    gpu.download(&out.buf)
}

/// Queues one [`split_bf16_product`] `A·X` of a bf16 A (its own single slice; `x`: the packed n x l f32 factor) and
/// drops the result: the benchmark's time per split product, next to one cuBLAS sgemm's (the GEMM floor line).
#[doc(hidden)]
pub fn split_product_launch_for_bench(gpu: &Gpu, a: DeviceMatRef<'_, bf16>, x: &DeviceVec<f32>, l: usize) -> Result<()> {
    let view = split_view(&a, None).ok_or(Error::WrongDevice { op: "split_product_launch_for_bench", what: "a" })?;
    let (rows, k, rs, cs) = op_a(view.shape, false);
    // SAFETY: the view is A itself, whose shape was validated against its buffer (DeviceMatRef), so (i, p) for
    // i < rows, p < k at i·rs + p·cs is inside it (one slice, stride 0); X's length is checked inside.
    unsafe { split_bf16_product(gpu, rows, &view, rs, cs, x, k, l)? };
    Ok(())
}

/// The exact bf16 slices [`split_a`] writes for an f16 or f32 `a` (largest first, each packed in A's storage order,
/// m·n rounded up to 8 elements apart), read back; empty for a bf16 A.
#[doc(hidden)]
pub fn split_a_for_tests<T: Element>(gpu: &Gpu, a: DeviceMatRef<'_, T>) -> Result<Vec<bf16>> {
    match split_a(gpu, &a, None)? {
        Some(buf) => gpu.download(&buf),
        None => Ok(Vec::new()),
    }
}

/// A's non-finite entries counted on the device into a counter that starts at `start`, read back: by the conversion
/// pass (`split` false: `rsvd_to_f32_<T>`, counting only) or by the split (`split` true, f32 and f16 A: the
/// pass that also writes A's bf16 slices). The count saturates at `u32::MAX`; a start near it tests that.
#[doc(hidden)]
pub fn count_nonfinite_for_tests<T: Element>(gpu: &Gpu, a: DeviceMatRef<'_, T>, start: u32, split: bool) -> Result<u32> {
    let mut counter = gpu.upload(&[start])?;
    if split {
        split_a(gpu, &a, Some((&mut counter, 0)))?;
    } else {
        convert_and_count(gpu, &a, None, &mut counter, 0)?;
    }
    Ok(gpu.download(&counter)?[0])
}

/// The three slices [`split_bf16x3`] writes for `x`, read back (X₃, then X₂, then X₁).
#[doc(hidden)]
pub fn split_bf16x3_for_tests(gpu: &Gpu, x: &[f32]) -> Result<Vec<bf16>> {
    let xv = gpu.upload(x)?;
    let mut out = gpu.alloc_zeros::<bf16>(3 * x.len())?;
    split_bf16x3(gpu, &xv, &mut out)?;
    gpu.download(&out)
}

/// A packed column-major f32 matrix on the device.
struct DevMat {
    buf: DeviceVec<f32>,
    rows: usize,
    cols: usize,
}

struct DeviceEngine<'g, 'a> {
    gpu: &'g Gpu,
    tf32: bool,
    /// A as f32 (in place, or the converted copy) for the sgemm products; `None` when every product with A runs
    /// through `a_bf16` ([`SplitProducts::All`]).
    a: Option<(DeviceSlice<'a, f32>, DenseShape)>,
    /// A's exact bf16 slices, when some of its products are to run as [`split_bf16_product`].
    a_bf16: Option<SplitA<'a>>,
    /// The projection runs through `a_bf16` too ([`SplitProducts::All`]), not only the power iteration.
    split_projection: bool,
    /// Products run through `a_bf16` so far ([`RsvdInfo::bf16x3_products`]).
    bf16x3_products: usize,
}

impl DeviceEngine<'_, '_> {
    /// A packed rows x cols matrix with unspecified contents.
    ///
    /// # Safety
    /// The caller fills every element before anything reads it (every user writes it whole: a product with
    /// β = 0, which neither cuBLAS nor `rsvd_gemm_f32` reads, or the sketch kernel).
    unsafe fn new_mat(&self, rows: usize, cols: usize) -> Result<DevMat> {
        // SAFETY: the caller's contract.
        unsafe { new_dev_mat(self.gpu, rows, cols) }
    }
    /// A new m x n matrix `op(A) · op(B)`; `tf32` only for the products with the input A (see [`RsvdConfig::tf32`]).
    ///
    /// # Safety
    /// A's elements `(i, p)` for `i < m, p < k` and B's `(p, j)` for `p < k, j < n` lie inside their slices.
    unsafe fn product(&mut self, m: usize, n: usize, k: usize, a: Operand<'_, '_>, b: Operand<'_, '_>, tf32: bool) -> Result<DevMat> {
        // SAFETY: the caller's contract.
        unsafe { device_product(self.gpu, m, n, k, a, b, tf32) }
    }
}

/// A packed rows x cols matrix with unspecified contents.
///
/// # Safety
/// The caller fills every element before anything reads it.
unsafe fn new_dev_mat(gpu: &Gpu, rows: usize, cols: usize) -> Result<DevMat> {
    // SAFETY: the caller's contract.
    Ok(DevMat { buf: unsafe { gpu.alloc_uninit(rows * cols)? }, rows, cols })
}

/// A new packed m x n matrix `op(A) · op(B)` ([`gemm`]).
///
/// # Safety
/// A's elements `(i, p)` for `i < m, p < k` and B's `(p, j)` for `p < k, j < n` lie inside their slices.
unsafe fn device_product(gpu: &Gpu, m: usize, n: usize, k: usize, a: Operand<'_, '_>, b: Operand<'_, '_>, tf32: bool) -> Result<DevMat> {
    // SAFETY: the product below writes all m x n elements (β = 0).
    let mut out = unsafe { new_dev_mat(gpu, m, n)? };
    let mut view = DeviceSliceMut::from(&mut out.buf);
    // SAFETY: the caller's contract covers A and B; C is the fresh packed m x n column-major buffer just
    // allocated (element (i, j) at i + j * m), so it is in bounds and overlaps neither input.
    unsafe { gemm(gpu, tf32, m, n, k, a, b, &mut view, 1, m)? };
    Ok(out)
}

impl Engine for DeviceEngine<'_, '_> {
    type M = DevMat;
    fn sketch(&mut self, rows: usize, cols: usize, seed: u64) -> Result<DevMat> {
        // SAFETY: gaussian_sketch writes every element of the buffer it is given.
        let mut out = unsafe { self.new_mat(rows, cols)? };
        gaussian_sketch(self.gpu, seed, &mut out.buf)?;
        Ok(out)
    }
    fn a_mul(&mut self, x: &DevMat, transpose: bool, product: Product) -> Result<DevMat> {
        if let Some(split) = &self.a_bf16 {
            if product == Product::PowerIteration || self.split_projection {
                let (rows, k, rs, cs) = op_a(split.shape, transpose);
                debug_assert_eq!(x.rows, k);
                self.bf16x3_products += 1;
                // SAFETY: every slice of A (or Aᵀ, strides swapped) is rows x k inside its shape: A's own,
                // validated against its buffer (DeviceMatRef), or the packed m x n slices split_a wrote at
                // s·stride (stride ≥ m·n); X is k x l (the algorithm only multiplies A by n-row and Aᵀ by m-row matrices).
                return unsafe { split_bf16_product(self.gpu, rows, split, rs, cs, &x.buf, x.rows, x.cols) };
            }
        }
        let tf32 = self.tf32 && product == Product::PowerIteration;
        // rsvd() makes the f32 view whenever some product needs it (SplitProducts::All is the only case without).
        let Some((a, s)) = &self.a else { return Err(Error::WrongDevice { op: "rsvd", what: "a (no f32 copy for an f32 product)" }) };
        let (rows, k, rs, cs) = op_a(*s, transpose);
        let xs = DeviceSlice::from(&x.buf);
        let a = a.reborrow();
        debug_assert_eq!(x.rows, k);
        // SAFETY: A (or Aᵀ, strides swapped) is rows x k inside the shape validated against its buffer; X is the
        // packed k x l matrix of its buffer (the algorithm only multiplies A by n-row and Aᵀ by m-row matrices).
        unsafe { self.product(rows, x.cols, k, Operand { data: &a, rs, cs }, Operand { data: &xs, rs: 1, cs: x.rows }, tf32) }
    }
    fn gram(&mut self, x: &DevMat) -> Result<Mat<f64>> {
        let g = self.gram_on_device(x)?;
        self.to_host(&g)
    }
    fn mul_small(&mut self, x: &DevMat, s: &Mat<f64>) -> Result<DevMat> {
        let ds = self.from_host(s)?;
        self.mul_on_device(x, &ds)
    }
    fn to_host(&mut self, x: &DevMat) -> Result<Mat<f64>> {
        let h = self.gpu.download(&x.buf)?;
        Ok(Mat::from_fn(x.rows, x.cols, |i, j| h[i + j * x.rows] as f64))
    }
    fn from_host(&mut self, x: &Mat<f64>) -> Result<DevMat> {
        dev_mat_from_host(self.gpu, x)
    }
    fn sync(&mut self) -> Result<()> {
        self.gpu.synchronize()
    }
    fn mark(&mut self) -> Option<cudarc::driver::CudaEvent> {
        self.gpu.event_now()
    }
}

impl DeviceEngine<'_, '_> {
    /// `XᵀX` (l x l, f32), left on the device ([`device_gram`]).
    fn gram_on_device(&mut self, x: &DevMat) -> Result<DevMat> {
        device_gram(self.gpu, x)
    }

    /// `X · S` with both on the device (X rows x l, S l x k).
    fn mul_on_device(&mut self, x: &DevMat, s: &DevMat) -> Result<DevMat> {
        debug_assert_eq!(s.rows, x.cols);
        let (xs, ss) = (DeviceSlice::from(&x.buf), DeviceSlice::from(&s.buf));
        // SAFETY: X and S are packed in their buffers (rows x l and l x k); the algorithm passes an S with as many
        // rows as X has columns.
        unsafe { self.product(x.rows, s.cols, x.cols, Operand { data: &xs, rs: 1, cs: x.rows }, Operand { data: &ss, rs: 1, cs: s.rows }, false) }
    }

    /// CholeskyQR of Y with the l x l steps on the device and nothing read back: passes of `G = YᵀY`, R⁻¹ from
    /// the factor kernel ([`factor_kernel_of`]), `Y ← Y R⁻¹`; one status word per pass and per check goes to
    /// `status[*slot]` onwards (2 per basis, 3 for a robust one), which the caller reads once, at the end. A power-iteration
    /// basis ([`QueuedOrth::Basis`], which only carries the subspace to the next product): one pass, then
    /// `rsvd_gram_check_f32` on the result's Gram matrix (every column's deviations from I summing to at most 1/2,
    /// so that the basis's condition number is at most √3); [`QueuedOrth::RobustBasis`]: two passes, each allowed
    /// the pivot guard and shift, then the same check. The last Q and Q₂ ([`QueuedOrth::Orthonormal`]): two passes,
    /// CholeskyQR2.
    fn orth_queued(&mut self, y0: &DevMat, mode: QueuedOrth, status: &mut DeviceVec<u32>, slot: &mut usize, prof: &mut Profile) -> Result<DevMat> {
        let passes = if mode == QueuedOrth::Basis { 1 } else { 2 };
        let mut cur: Option<DevMat> = None;
        for pass in 0..passes {
            let y = cur.as_ref().unwrap_or(y0);
            let g = self.gram_on_device(y)?;
            prof.lap(self, Step::Gram)?;
            let l = g.rows;
            // SAFETY: the factor kernel writes all l x l elements of R⁻¹ unless the near-identity step before it
            // wrote them all (it then returns at once; `near_identity_step`).
            let mut r_inv = DevMat { buf: unsafe { self.gpu.alloc_uninit::<f32>(l * l)? }, rows: l, cols: l };
            if pass > 0 && mode == QueuedOrth::Orthonormal && !crate::path_switch("SLR_RSVD_PATH", "cholesky2") {
                near_identity_step(self.gpu, &g.buf, l, &mut r_inv.buf, status, *slot)?;
            }
            // A robust basis's second pass may shift too, and skips the entry test (its check follows).
            let first_pass_rules = pass == 0 || mode == QueuedOrth::RobustBasis;
            factor_kernel_into(self.gpu, &g.buf, l, y.rows, first_pass_rules, status, *slot, false, &mut r_inv.buf)?;
            *slot += 1;
            prof.lap(self, Step::DeviceFactor)?;
            let next = self.mul_on_device(y, &r_inv)?;
            prof.lap(self, Step::ApplyR)?;
            cur = Some(next);
        }
        let q = cur.expect("at least one pass ran");
        if mode != QueuedOrth::Orthonormal {
            let g = self.gram_on_device(&q)?;
            prof.lap(self, Step::Gram)?;
            check_kernel(self.gpu, &g.buf, g.rows, status, *slot)?;
            *slot += 1;
            prof.lap(self, Step::DeviceFactor)?;
        }
        Ok(q)
    }
}

/// How [`DeviceEngine::orth_queued`] treats a basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueuedOrth {
    /// A power-iteration basis: one pass, then the check (2 status words).
    Basis,
    /// The first power-iteration basis on the retry after the first attempt refused it: two passes under the
    /// first pass's rules, then the check (3 words).
    RobustBasis,
    /// The last Q and Q₂: CholeskyQR2, the second pass near-identity or checked on entry (2 words).
    Orthonormal,
}

/// What both l x l kernels trust: 1 ≤ l ≤ [`QUEUED_MAX_SKETCH_COLS`], `g` holding at least l² elements, `slot`
/// inside `status`.
fn check_gram_and_slot(op: &'static str, g: &DeviceVec<f32>, l: usize, status: &DeviceVec<u32>, slot: usize) -> Result<()> {
    if l == 0 || l > QUEUED_MAX_SKETCH_COLS {
        return Err(Error::LengthMismatch { op, what: "sketch columns l (1..=QUEUED_MAX_SKETCH_COLS)", expected: QUEUED_MAX_SKETCH_COLS, got: l });
    }
    check_len(op, "g (l x l)", l * l, g.len())?;
    check_slot(op, "status slot", status.len(), slot)
}

/// `slot` indexes a status or counter buffer of `len` words (a kernel writes that word).
fn check_slot(op: &'static str, what: &'static str, len: usize, slot: usize) -> Result<()> {
    if slot >= len {
        return Err(Error::LengthMismatch { op, what, expected: len, got: slot });
    }
    Ok(())
}

/// Launches `rsvd_gram_check_f32` on the l x l column-major Gram matrix in `g`: `status[slot]` becomes
/// `STATUS_NOT_NEAR_IDENTITY` when a column's deviations from I's sum past 1/2 (or hold NaN), else 0. Errors: l = 0 or above
/// [`QUEUED_MAX_SKETCH_COLS`], `g` or `status` too short, buffers of another backend.
fn check_kernel(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, status: &mut DeviceVec<u32>, slot: usize) -> Result<()> {
    const OP: &str = "rsvd gram check";
    check_gram_and_slot(OP, g, l, status, slot)?;
    let gv = DeviceSlice::from(g);
    let (p_g, _g0) = gv.kernel_ptr(gpu, OP, "g")?;
    let mut sv = DeviceSliceMut::from(status);
    let (p_s, _g1) = sv.kernel_ptr_mut(gpu, OP, "status")?;
    let shape = LaunchShape { grid: (1, 1, 1), block: (FACTOR_THREADS, 1, 1), shared_bytes: 0 };
    // SAFETY: g holds at least l x l elements (checked) and the kernel reads g[idx] for idx < l² only (l ≤ 320,
    // so l² fits u32); status has more than `slot` elements (checked) and only status[slot] is written; the
    // status buffer is not an input; one block of FACTOR_THREADS threads, as the kernel's stride assumes;
    // arguments match rsvd_gram_check_f32.
    unsafe { gpu.launch(MODULE, "rsvd_gram_check_f32", shape, &[p_g, KernelArg::U32(l as u32), p_s, KernelArg::U32(slot as u32)]) }
}

/// `rsvd_gram_check_f32` on an l x l column-major matrix, for tests: its status word (4 when a column's deviations
/// from I's sum past 1/2, or NaN; else 0).
#[doc(hidden)]
pub fn gram_check_on_device(gpu: &Gpu, g: &[f32], l: usize) -> Result<u32> {
    let dg = gpu.upload(g)?;
    let mut status = gpu.alloc_zeros::<u32>(1)?;
    check_kernel(gpu, &dg, l, &mut status, 0)?;
    Ok(gpu.download(&status)?[0])
}

/// A later CholeskyQR pass's l x l step when its Gram matrix is already near the identity (`rsvd_near_identity_step_f32`):
/// with `E = G − I` and `‖E‖_F ≤ 2⁻¹²` (cuda/rsvd.cu kNearIdentityMaxFrobenius2 = 2⁻²⁴ on the f32 sum of squares), `X = I − E/2` (one rounding per element) takes the place of R⁻¹, because
/// `XᵀGX = I − ¾E² + ¼E³` is within ~4.5e-8 of I (plus X's own rounding, ~2u = 1.2e-7): the result is
/// orthonormal to f32 rounding, as the Cholesky pass would leave it, for a few µs instead of the factor kernel's tens (40 µs at l = 138
/// on an H200). Y·X spans what Y spans (X is within 2⁻¹³ of I). It writes all l x l elements of `x` and
/// `status[slot] = STATUS_NEAR_IDENTITY_STEP` then, else nothing and `status[slot] = 0` (NaN included); the factor
/// kernel launched next with the same `x`, `status` and `slot` (not a first pass) returns at once when it finds that
/// bit, else factors G as before. Why G is near I there: the power iteration's bases have graded columns (each
/// basis's triangular factor orders them by the spectrum), and one f32 CholeskyQR pass leaves such a basis
/// orthonormal to ~1e-6 (‖E‖_F ~3-5e-6 in an f32 simulation at l = 138 and 266, σ_j = 1/j and j^-0.5), far
/// closer than the u·cond² bound; a sketch without power iterations (q = 0) can be farther, and then the
/// Cholesky runs. Errors: as [`check_kernel`], and `x` shorter than l².
fn near_identity_step(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, x: &mut DeviceVec<f32>, status: &mut DeviceVec<u32>, slot: usize) -> Result<()> {
    const OP: &str = "rsvd near-identity step";
    check_gram_and_slot(OP, g, l, status, slot)?;
    check_len(OP, "x (l x l)", l * l, x.len())?;
    let gv = DeviceSlice::from(g);
    let (p_g, _g0) = gv.kernel_ptr(gpu, OP, "g")?;
    let mut xv = DeviceSliceMut::from(x);
    let (p_x, _g1) = xv.kernel_ptr_mut(gpu, OP, "x")?;
    let mut sv = DeviceSliceMut::from(status);
    let (p_s, _g2) = sv.kernel_ptr_mut(gpu, OP, "status")?;
    let shape = LaunchShape { grid: (1, 1, 1), block: (FACTOR_THREADS, 1, 1), shared_bytes: 0 };
    // SAFETY: g and x hold at least l x l elements (checked) and the kernel reads g[idx] and writes x[idx] for
    // idx < l² only (l ≤ 320); x is a separate buffer from g (one is borrowed mutably, the other shared); status
    // has more than `slot` elements (checked) and only status[slot] is written; one block of FACTOR_THREADS
    // threads, as the kernel's warp stride assumes; arguments match rsvd_near_identity_step_f32.
    unsafe { gpu.launch(MODULE, "rsvd_near_identity_step_f32", shape, &[p_g, KernelArg::U32(l as u32), p_x, p_s, KernelArg::U32(slot as u32)]) }
}

/// A later pass's l x l step on the device as the queued path runs it, for tests: [`near_identity_step`], then the
/// factor kernel (not a first pass) on the same buffers. Returns the l x l matrix the pass applies (X or R⁻¹) and
/// the status word (8: the near-identity step; 4: not near I, so the Cholesky's entry check failed; else 0).
#[doc(hidden)]
pub fn second_pass_step_on_device(gpu: &Gpu, g: &[f32], l: usize, rows: usize) -> Result<(Vec<f32>, u32)> {
    check_len("second_pass_step_on_device", "g (l x l)", l * l, g.len())?;
    let dg = gpu.upload(g)?;
    let mut status = gpu.alloc_zeros::<u32>(1)?;
    let mut x = gpu.alloc_zeros::<f32>(l * l)?;
    second_pass_step_launch_for_bench(gpu, &dg, l, rows, &mut x, &mut status)?;
    Ok((gpu.download(&x)?, gpu.download(&status)?[0]))
}

/// A later pass's l x l step as the queued path launches it, on a Gram matrix `g` already on the device:
/// [`near_identity_step`], then the factor kernel (not a first pass, returning at once when the step applied),
/// writing `x` (l² elements) and `status[0]`. The benchmark's isolated time next to `rsvd_factor`'s; the
/// tests' [`second_pass_step_on_device`]. Errors as [`near_identity_step`].
#[doc(hidden)]
pub fn second_pass_step_launch_for_bench(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, rows: usize, x: &mut DeviceVec<f32>, status: &mut DeviceVec<u32>) -> Result<()> {
    near_identity_step(gpu, g, l, x, status, 0)?;
    factor_kernel_into(gpu, g, l, rows, false, status, 0, false, x)
}

/// Widest l the tiled factor kernel takes (`rsvd_cholqr_factor_tiles_f32`: G padded to M = ⌈l / 32⌉ ≤ 5 blocks of
/// 32; the sketches of r ≤ 150). The packed kernel's column sweep is bound by shared-memory instructions (~1.6 µs
/// per column step on an H200, ~0.23 ms per call at l = 138); the tiled one does a block column's work in a few
/// warps' solves and 32 x 32 x 32 products (~19 µs at l = 138 by its instruction count, 40 µs measured on the
/// H200, cuda/rsvd.cu). Results agree up to rounding (tests/rsvd.rs).
const FACTOR_TILES_MAX_L: usize = 160;

/// Widest l the wide tiled kernel takes (`rsvd_cholqr_factor_tiles9_f32`, M ≤ 9: the sketches of r ≤ 278, among
/// them r = 256's l = 266), where its sm_90 machine code runs and its 222.9 KB of shared memory fit (an H100 or
/// H200; see [`factor_kernel_choice`]). Above it, and elsewhere, the packed kernel runs (l ≤ 320).
const FACTOR_TILES_WIDE_MAX_L: usize = 288;

/// Threads of `rsvd_cholqr_factor_tiles_f32`'s one block (its kTileThreads).
const TILE_THREADS: u32 = 512;

/// Dynamic shared memory of the tiled kernels (their TileShared carve), M = ⌈l / 32⌉: M (M + 1) / 2 block positions
/// of 32 x 33 floats, M - 1 blocks of R's block row and one for R_kk (32 x 32 each), 32 pivot reciprocals and the
/// 32 M diagonal: 84.6 KB at M = 5 (inside the 99 KB a block may opt into on sm_86/89), 222.9 KB at M = 9 (inside
/// sm_90's 227 KB).
fn tiles_shared_bytes(l: usize) -> usize {
    let m = l.div_ceil(32);
    (m * (m + 1) / 2 * 32 * 33 + (m - 1) * 32 * 32 + 32 * 32 + 32 + 32 * m) * 4
}

/// The factor kernel for an l x l Gram matrix on `gpu`, its block size and dynamic shared memory: unless `packed`
/// or `SLR_RSVD_PATH=packed` (the benchmark's same-run comparison), the tiled kernel for l ≤
/// [`FACTOR_TILES_MAX_L`], the wide tiled kernel for l ≤ [`FACTOR_TILES_WIDE_MAX_L`] where its sm_90 code runs
/// ([`Gpu::runs_sm90_code`]; on other targets its body is a trap) and its shared memory (plus 1 KiB for the static
/// part) fits the device's opt-in limit; else the packed kernel.
fn factor_kernel_choice(gpu: &Gpu, l: usize, packed: bool) -> (&'static str, u32, usize) {
    let tiled = !packed && !crate::path_switch("SLR_RSVD_PATH", "packed");
    if tiled && l <= FACTOR_TILES_MAX_L {
        ("rsvd_cholqr_factor_tiles_f32", TILE_THREADS, tiles_shared_bytes(l))
    } else if tiled && l <= FACTOR_TILES_WIDE_MAX_L && gpu.runs_sm90_code() && tiles_shared_bytes(l) + 1024 <= gpu.max_dynamic_shared_bytes() as usize {
        ("rsvd_cholqr_factor_tiles9_f32", TILE_THREADS, tiles_shared_bytes(l))
    } else {
        ("rsvd_cholqr_factor_f32", FACTOR_THREADS, factor_shared_bytes(l))
    }
}

/// Launches the factor kernel ([`factor_kernel_choice`]: tiled for l ≤ 160, wide tiled for l ≤ 288 on sm_90, else
/// packed; `packed` forces the packed shared-memory kernel at any l, which tests compare) on the l x l column-major
/// Gram matrix in `g` (the first l² elements), writing a fresh l x l R⁻¹ and `status[slot]`. Errors: l = 0 or
/// above [`QUEUED_MAX_SKETCH_COLS`], `g` or `status` too short, `rows` above u32, buffers of another backend.
#[allow(clippy::too_many_arguments)]
fn factor_kernel_of(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, rows: usize, first_pass: bool, status: &mut DeviceVec<u32>, slot: usize, packed: bool) -> Result<DevMat> {
    // SAFETY: the kernel writes all l x l elements of R⁻¹ (zeros below the diagonal, I after a failure): a first
    // pass always, a later one unless status[slot] holds STATUS_NEAR_IDENTITY_STEP, which only
    // `near_identity_step` writes (status words start at zero) after writing all of its x.
    let mut r_inv = DevMat { buf: unsafe { gpu.alloc_uninit::<f32>(l * l)? }, rows: l, cols: l };
    factor_kernel_into(gpu, g, l, rows, first_pass, status, slot, packed, &mut r_inv.buf)?;
    Ok(r_inv)
}

/// [`factor_kernel_of`] writing R⁻¹ into `r_inv` (at least l² elements). A later pass (`first_pass` false) whose
/// `status[slot]` already holds STATUS_NEAR_IDENTITY_STEP writes nothing ([`near_identity_step`] did).
#[allow(clippy::too_many_arguments)]
fn factor_kernel_into(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, rows: usize, first_pass: bool, status: &mut DeviceVec<u32>, slot: usize, packed: bool, r_inv: &mut DeviceVec<f32>) -> Result<()> {
    const OP: &str = "rsvd cholqr factor";
    check_gram_and_slot(OP, g, l, status, slot)?;
    check_len(OP, "r_inv (l x l)", l * l, r_inv.len())?;
    if rows > u32::MAX as usize {
        return Err(Error::LengthMismatch { op: OP, what: "rows of the basis", expected: u32::MAX as usize, got: rows });
    }
    {
        let gv = DeviceSlice::from(g);
        let (p_g, _g0) = gv.kernel_ptr(gpu, OP, "g")?;
        let mut rv = DeviceSliceMut::from(r_inv);
        let (p_r, _g1) = rv.kernel_ptr_mut(gpu, OP, "r_inv")?;
        let mut sv = DeviceSliceMut::from(status);
        let (p_s, _g2) = sv.kernel_ptr_mut(gpu, OP, "status")?;
        let (kernel, threads, shared) = factor_kernel_choice(gpu, l, packed);
        let shape = LaunchShape { grid: (1, 1, 1), block: (threads, 1, 1), shared_bytes: shared as u32 };
        // SAFETY: g holds at least l x l elements (checked) and the kernel reads G[i + j l] for i, j < l; r_inv
        // holds at least l x l elements (checked), written at a + b l for a, b < l, and is not g (one is borrowed
        // mutably, the other shared); status has more than `slot` elements (checked) and only status[slot] is
        // read (a later pass) and written; the block size is the one each kernel's strides
        // assume (1024 packed, 512 tiled) and the dynamic shared memory is what it carves: the packed one
        // l (l + 1) / 2 + 3 l floats (≤ 209 KB for l ≤ 320), the tiled ones `tiles_shared_bytes`, launched only
        // for the M their code unrolls for (`factor_kernel_choice`: l ≤ 160, M ≤ 5, ≤ 84.6 KB; the wide one
        // l ≤ 288, M ≤ 9, ≤ 222.9 KB, only where its sm_90 code runs and that fits the device's limit), all
        // opted into by launch above 40 KiB and within the device's limit where the queued path runs
        // (`queued_path_enabled`); no output overlaps an input (r_inv and status are not g); arguments match all
        // three kernels.
        unsafe {
            gpu.launch(
                MODULE,
                kernel,
                shape,
                &[p_g, KernelArg::U32(l as u32), KernelArg::U32(rows as u32), KernelArg::U32(first_pass as u32), p_r, p_s, KernelArg::U32(slot as u32)],
            )?;
        }
    }
    Ok(())
}

/// The factor kernel an l x l step launches on `gpu` (`factor_kernel_choice`, without the packed override), for
/// tests.
#[doc(hidden)]
pub fn factor_kernel_for_tests(gpu: &Gpu, l: usize) -> &'static str {
    factor_kernel_choice(gpu, l, false).0
}

/// One CholeskyQR pass's l x l step on the device, for tests: `g` is an l x l column-major Gram matrix; returns
/// R⁻¹ (l x l column-major, upper triangular) and the kernel's status word (1: the first pass needed the shift;
/// 2: the factorization failed, R⁻¹ = I; 4: a later pass found `max |G − I| > 1e-2`). `rows` is the basis's row
/// count (it scales the shift).
#[doc(hidden)]
pub fn cholqr_factor_on_device(gpu: &Gpu, g: &[f32], l: usize, rows: usize, first_pass: bool) -> Result<(Vec<f32>, u32)> {
    cholqr_factor_on_device_of(gpu, g, l, rows, first_pass, false)
}

/// [`cholqr_factor_on_device`] through the packed shared-memory kernel at any l ≤ 320 (the tiled kernel takes
/// l ≤ 160 otherwise), for tests that compare the two.
#[doc(hidden)]
pub fn cholqr_factor_on_device_packed(gpu: &Gpu, g: &[f32], l: usize, rows: usize, first_pass: bool) -> Result<(Vec<f32>, u32)> {
    cholqr_factor_on_device_of(gpu, g, l, rows, first_pass, true)
}

/// One launch of the queued path's factor kernel (first pass) on an l x l Gram matrix already on the device, the
/// output R⁻¹ discarded and the status written to `status[0]`: the benchmark's isolated kernel time (the rSVD
/// profile's laps include host time when the device idles). `SLR_RSVD_PATH=packed` selects the packed kernel as in
/// the queued path. Errors as [`cholqr_factor_on_device`].
#[doc(hidden)]
pub fn cholqr_factor_launch_for_bench(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, rows: usize, status: &mut DeviceVec<u32>) -> Result<()> {
    factor_kernel_of(gpu, g, l, rows, true, status, 0, false).map(|_| ())
}

/// One small eigenproblem on the device without transfers, for the benchmark's isolated timing: the l x l f32 Gram
/// matrix `g` widened into `work` (`rsvd_widen_f32`, so that every call starts from the same matrix), then `solver`
/// on it; eigenvectors, eigenvalues and info stay in `work` (at least l² + l + 2 doubles). Errors as
/// [`queue_own_eigensolver`] and [`queue_eigensolver`].
#[doc(hidden)]
pub fn small_eigh_launch_for_bench(gpu: &Gpu, g: &DeviceVec<f32>, work: &mut DeviceVec<f64>, l: usize, solver: SmallEigensolver) -> Result<()> {
    widen_then_eigh("small_eigh_launch_for_bench", gpu, g, work, l, solver, EIGH_PHASES.len())
}

/// `g` (l x l f32) widened into work[0, l²), then the eigenvalues into work[l², l² + l) and info into slot l² + l by
/// `solver` (ours: its first `phases` kernels; 0 stops after the widening).
fn widen_then_eigh(op: &'static str, gpu: &Gpu, g: &DeviceVec<f32>, work: &mut DeviceVec<f64>, l: usize, solver: SmallEigensolver, phases: usize) -> Result<()> {
    let (at_w, at_info) = (l * l, l * l + l);
    if g.len() != l * l || work.len() < at_info + 2 {
        return Err(Error::LengthMismatch { op, what: "Gram matrix and work", expected: l * l, got: g.len() });
    }
    // Before anything is queued: a missing library is an error, not a widening left behind.
    cusolver_for(gpu, solver)?;
    let gs = DeviceSlice::from(g);
    let (p_g, _gg) = gs.kernel_ptr(gpu, op, "Gram matrix")?;
    let mut wv = DeviceSliceMut::from(work);
    let (p_w, _gw) = wv.kernel_ptr_mut(gpu, op, "work")?;
    // SAFETY: reads the l² floats of g (checked) and writes the first l² doubles of work (longer, checked), a
    // distinct buffer; arguments match rsvd_widen_f32.
    unsafe { gpu.launch(MODULE, "rsvd_widen_f32", LaunchShape::linear(op, l * l, 256)?, &[p_g, p_w, KernelArg::U64((l * l) as u64)])? };
    // SAFETY: the matrix (l² doubles), the eigenvalues (l) and info (one slot) are disjoint parts of work, a live
    // buffer of this Gpu long enough for them (checked), queued after the widening. The call's keep-alive is dropped
    // at once: it waits for the stream first where the call has host memory the device may still use
    // (EigensolverCall's drop).
    unsafe { queue_eigensolver(gpu, l, p_w, p_w.offset_bytes(8 * at_w), p_w.offset_bytes(8 * at_info), solver, phases) }.map(drop)
}

/// Where our eigensolver's time goes on this device: milliseconds of each of its five kernels (tridiagonalization,
/// eigenvalues, eigenvectors, clusters, back-transform; [`EIGH_PHASES`]) for the l x l f32 Gram matrix `g`, each the
/// difference between the times of the calls that stop after it and before it (`iters` calls each, all starting
/// with the widening; a difference below zero, timing noise, reads 0). For the benchmark's breakdown; on the
/// emulator these are host times. The full call's result is checked (info 0).
#[doc(hidden)]
pub fn own_eigensolver_phase_ms(gpu: &Gpu, g: &DeviceVec<f32>, l: usize, iters: usize) -> Result<[f64; 5]> {
    const OP: &str = "own_eigensolver_phase_ms";
    let mut work = gpu.alloc_zeros::<f64>(l * l + l + 2)?;
    let mut upto = [0.0f64; 6];
    for (phases, t) in upto.iter_mut().enumerate() {
        *t = gpu.time_ms(iters, || widen_then_eigh(OP, gpu, g, &mut work, l, SmallEigensolver::Own, phases))?;
    }
    let h = gpu.download(&work)?;
    eigensolver_info(h[l * l + l])?;
    Ok(std::array::from_fn(|i| (upto[i + 1] - upto[i]).max(0.0)))
}

fn cholqr_factor_on_device_of(gpu: &Gpu, g: &[f32], l: usize, rows: usize, first_pass: bool, packed: bool) -> Result<(Vec<f32>, u32)> {
    let dg = gpu.upload(g)?;
    let mut status = gpu.alloc_zeros::<u32>(1)?;
    let r_inv = factor_kernel_of(gpu, &dg, l, rows, first_pass, &mut status, 0, packed)?;
    Ok((gpu.download(&r_inv.buf)?, gpu.download(&status)?[0]))
}

/// The algorithm of [`run`] queued on the device with no host round trip until the small SVD: each basis by
/// CholeskyQR through the factor kernel ([`factor_kernel_of`]: f32 Cholesky and inverse, in-kernel shift on the first pass), one
/// pass and a device check for the power-iteration bases, two for the last Q and Q₂ ([`DeviceEngine::orth_queued`]),
/// then `R₂ = Q₂ᵀ Bᵀ` (one l x l product; `B = R₂ᵀ Q₂ᵀ` because Q₂ spans Bᵀ's columns to rounding), read back with
/// the status words in one synchronization. [`QueuedOutcome::Retry`] when only the first sketch basis was refused
/// after its one pass (its check failed; its Cholesky, shifted if need be, did not): the caller runs this again
/// with `robust_first`, which gives that basis two passes ([`QueuedOrth::RobustBasis`]). [`QueuedOutcome::Host`]
/// when a status asks for the guarded host path otherwise (a Cholesky that failed, a later basis refused, a second
/// pass not near I); the caller then runs [`run`].
///
/// `status` holds [`queued_status_words`] zeroed words; the last already receives A's non-finite count (queued by
/// the caller), so the one read-back of the status words also says whether A was finite: `NonFinite` then, before
/// anything is written.
#[allow(clippy::too_many_arguments)]
fn run_queued(e: &mut DeviceEngine<'_, '_>, m: usize, n: usize, cfg: &RsvdConfig, robust_first: bool, mut status: DeviceVec<u32>, info: &mut RsvdInfo, prof: &mut Profile) -> Result<QueuedOutcome> {
    let r = cfg.rank;
    let l = sketch_cols(cfg, m, n);
    info.sketch_cols = l;
    let bases = 2 * cfg.power_iters + 2;
    debug_assert_eq!(status.len(), queued_status_words(cfg, robust_first));
    let mut slot = 0;
    let omega = e.sketch(n, l, cfg.seed)?;
    prof.lap(e, Step::Sketch)?;
    let y = e.a_mul(&omega, false, Product::PowerIteration)?;
    prof.lap(e, Step::AProducts)?;
    // The goal of each basis, in order (as in `run`): power-iteration bases carry the subspace only; the last Q
    // and Q₂ are orthonormalized in full. Each basis's mode and first status slot, for reading the words back.
    let mut modes: Vec<(QueuedOrth, usize)> = Vec::with_capacity(bases);
    let goal_of_q = |last: bool| if last { Goal::Orthonormal } else { Goal::Basis };
    let mut orth = |e: &mut DeviceEngine<'_, '_>, y: &DevMat, goal: Goal, status: &mut DeviceVec<u32>, slot: &mut usize, prof: &mut Profile| {
        let mode = match goal {
            Goal::Basis if robust_first && modes.is_empty() => QueuedOrth::RobustBasis,
            Goal::Basis => QueuedOrth::Basis,
            _ => QueuedOrth::Orthonormal,
        };
        modes.push((mode, *slot));
        e.orth_queued(y, mode, status, slot, prof)
    };
    let mut q = orth(e, &y, goal_of_q(cfg.power_iters == 0), &mut status, &mut slot, prof)?;
    for i in 0..cfg.power_iters {
        let z = e.a_mul(&q, true, Product::PowerIteration)?;
        prof.lap(e, Step::AProducts)?;
        let z = orth(e, &z, Goal::Basis, &mut status, &mut slot, prof)?;
        let y = e.a_mul(&z, false, Product::PowerIteration)?;
        prof.lap(e, Step::AProducts)?;
        q = orth(e, &y, goal_of_q(i + 1 == cfg.power_iters), &mut status, &mut slot, prof)?;
    }
    let bt = e.a_mul(&q, true, Product::Projection)?;
    prof.lap(e, Step::AProducts)?;
    let q2 = orth(e, &bt, Goal::WithR, &mut status, &mut slot, prof)?;
    let (q2s, bts) = (DeviceSlice::from(&q2.buf), DeviceSlice::from(&bt.buf));
    // SAFETY: Q₂ᵀ (l x n) reads the packed n x l Q₂ through swapped strides, Bᵀ is packed n x l.
    let r2_dev = unsafe { e.product(l, l, n, Operand { data: &q2s, rs: n, cs: 1 }, Operand { data: &bts, rs: 1, cs: n }, false)? };
    prof.lap(e, Step::R2ReadBack)?;
    // The small SVD entirely on the device (from l = 96, or `SLR_RSVD_SMALL=device`) is queued now, before the wait
    // for the status words: its launches (syevd's many, or our eigensolver's) are made while the device still
    // works through the power iteration, where after the wait they were made with the device idle. If a status
    // then sends the call to the host path, that work is discarded with the rest. R₂ stays on the device for it;
    // otherwise (or without cuSOLVER) R₂ is read back for the host's small SVD.
    // `SLR_RSVD_PATH=small_after_wait` queues it after the wait instead, as before 2026-11-28 (the benchmark's
    // same-run comparison).
    let device_small = small_svd_products_on_device(l);
    let after_wait = device_small && (SMALL_AFTER_WAIT.with(|f| f.get()) || crate::path_switch("SLR_RSVD_PATH", "small_after_wait"));
    let t = std::time::Instant::now();
    let queued_small = if device_small && !after_wait {
        match queue_small_svd_device(e.gpu, &r2_dev, r) {
            Ok(queued) => Some(queued),
            // Without cuSOLVER (not installed, or the emulator, unless our eigensolver was asked for): the host's
            // small SVD below (nothing was queued).
            Err(Error::LibraryMissing { .. }) => None,
            Err(other) => return Err(other),
        }
    } else {
        None
    };
    prof.eigen_ms += t.elapsed().as_secs_f64() * 1e3;
    // R₂ for the host's small SVD, read back with the wait for the status words below.
    let host_r2 = if queued_small.is_none() && !after_wait { Some(e.to_host(&r2_dev)?) } else { None };
    let words = e.gpu.download(&status)?;
    let (words, bad) = (&words[..slot], words[slot] as usize);
    debug_assert_eq!(slot + 1, queued_status_words(cfg, robust_first));
    if bad > 0 {
        return Err(Error::NonFinite { op: "rsvd", what: "a", count: bad });
    }
    let refused = |w: &u32| w & (STATUS_FAILED | STATUS_NOT_NEAR_IDENTITY) != 0;
    if words.iter().any(refused) {
        // The first sketch basis is the one whose columns no earlier factor has graded, so the one a steep spectrum
        // makes too ill-conditioned for one pass; every later basis is then computed from a poor one, so only its
        // own words decide. Its pass must have succeeded (a failure even after the shift is left to the host).
        let (first_mode, at) = modes[0];
        let first_refused = first_mode == QueuedOrth::Basis && words[at] & STATUS_FAILED == 0 && words[at + 1] & STATUS_NOT_NEAR_IDENTITY != 0;
        return Ok(if first_refused { QueuedOutcome::Retry } else { QueuedOutcome::Host });
    }
    debug_assert_eq!(modes.len(), bases);
    for &(mode, at) in &modes {
        let first = words[at];
        if mode == QueuedOrth::Orthonormal && words[at + 1] & STATUS_NEAR_IDENTITY_STEP != 0 {
            info.near_identity_steps += 1;
        }
        if first & STATUS_SHIFTED != 0 {
            info.shifted_cholesky_qr += 1;
        } else if mode == QueuedOrth::Basis {
            info.single_pass += 1;
        } else {
            info.cholesky_qr += 1;
        }
    }
    info.first_basis_two_passes = robust_first;
    info.device_queued = true;
    let gpu = e.gpu;
    let queued_small = match queued_small {
        // `small_after_wait`: queued only now (nothing was when cuSOLVER is missing).
        None if after_wait => match queue_small_svd_device(gpu, &r2_dev, r) {
            Ok(queued) => Some(queued),
            Err(Error::LibraryMissing { .. }) => None,
            Err(other) => return Err(other),
        },
        other => other,
    };
    if let Some(queued) = queued_small {
        let d = finish_small_svd_device(e, queued, &r2_dev, info, prof)?;
        return Ok(QueuedOutcome::Done(Factors { q, ur: d.ur, s: d.s, q2, vr: d.vr }));
    }
    let r2 = match host_r2 {
        Some(r2) => r2,
        None => e.to_host(&r2_dev)?,
    };
    // Without cuSOLVER a width from l = 96 comes here too: device_eigen then says LibraryMissing and the
    // host solves it, as it would have.
    let solver = small_eigen_on_device(r2.nrows());
    let mut eigen_ms = 0.0;
    let (s, ur, vr) = small_svd_with(&r2, r, |g| {
        let t = std::time::Instant::now();
        let out = match solver.map(|solver| device_eigen(gpu, g, solver)) {
            // Without cuSOLVER (not installed, or the emulator) the host solves it: the same factors to rounding.
            None | Some(Err(Error::LibraryMissing { .. })) => host_eigen(g),
            Some(other) => other,
        };
        eigen_ms = t.elapsed().as_secs_f64() * 1e3;
        out
    })?;
    prof.eigen_ms += eigen_ms;
    let (ur, vr) = (e.from_host(&ur)?, e.from_host(&vr)?);
    prof.lap(e, Step::SmallSvd)?;
    Ok(QueuedOutcome::Done(Factors { q, ur, s, q2, vr }))
}

/// What [`run_queued`] ended with (returned once per attempt, so the factors' size in it costs nothing).
#[allow(clippy::large_enum_variant)]
enum QueuedOutcome {
    Done(Factors<DevMat>),
    /// Run it again with the first basis in two passes.
    Retry,
    /// Run the host-driven path.
    Host,
}

/// Status words [`run_queued`] uses: two per basis (three for a robust first basis) and A's non-finite count last.
fn queued_status_words(cfg: &RsvdConfig, robust_first: bool) -> usize {
    2 * (2 * cfg.power_iters + 2) + 1 + usize::from(robust_first && cfg.power_iters > 0)
}

/// σ and the status of the queued path's device small SVD back (its work is done by the time the status words have
/// come back: this wait is short), then its finish; `RsvdInfo` and the profile updated.
fn finish_small_svd_device(e: &mut DeviceEngine<'_, '_>, queued: QueuedSmallSvd, r2: &DevMat, info: &mut RsvdInfo, prof: &mut Profile) -> Result<DeviceSmallSvd> {
    let t = std::time::Instant::now();
    let d = queued.finish(e.gpu, r2)?;
    info.small_svd_on_device = true;
    info.small_svd_host_finish = d.host_finish;
    prof.eigen_ms += t.elapsed().as_secs_f64() * 1e3;
    prof.lap(e, Step::SmallSvd)?;
    Ok(d)
}

/// Dynamic shared memory of `rsvd_cholqr_factor_f32` for an l x l Gram matrix: the packed triangle and three
/// l-vectors.
fn factor_shared_bytes(l: usize) -> usize {
    (l * (l + 1) / 2 + 3 * l) * 4
}

/// Whether [`rsvd`] tries [`run_queued`] first: the factor kernel's shared memory within one block's on this
/// device (l ≤ 320 on sm_90, ≤ 284 on sm_80, ≤ 220 on sm_86/89 for the packed kernel; the tiled one's 84.6 KB at
/// l ≤ 160 fits every target the crate builds, sm_80 and later), unless `SLR_RSVD_PATH=host` (the host-driven path, kept as the benchmark's same-run
/// baseline).
fn queued_path_enabled(gpu: &Gpu, l: usize) -> bool {
    l <= QUEUED_MAX_SKETCH_COLS
        // + 1 KiB: the kernel's own static shared memory (≤ 128 bytes) counts against the same per-block limit.
        && factor_kernel_choice(gpu, l, false).2 + 1024 <= gpu.max_dynamic_shared_bytes() as usize
        && !crate::path_switch("SLR_RSVD_PATH", "host")
}

/// Counts A's non-finite entries on the device into `counter[slot]` (which the caller zeroed) and, with `dst`,
/// writes A as f32 in the same layout, packed (kernel `rsvd_to_f32_<dtype>`). Queued: nothing waits.
fn convert_and_count<T: Element>(gpu: &Gpu, a: &DeviceMatRef<'_, T>, dst: Option<&mut DeviceVec<f32>>, counter: &mut DeviceVec<u32>, slot: usize) -> Result<()> {
    const OP: &str = "rsvd";
    let s = a.shape();
    let (outer, inner) = (s.outer(), s.inner());
    check_slot(OP, "non-finite counter slot", counter.len(), slot)?;
    {
        let (p_src, _g0) = a.data().kernel_ptr(gpu, OP, "a")?;
        let mut cview = DeviceSliceMut::from(counter);
        let (p_cnt, _g1) = cview.kernel_ptr_mut(gpu, OP, "non-finite counter")?;
        let p_cnt = p_cnt.offset_bytes(slot * std::mem::size_of::<u32>());
        let mut dview = dst.map(DeviceSliceMut::from);
        let (p_dst, _g2) = match dview.as_mut() {
            Some(d) => {
                let (p, g) = d.kernel_ptr_mut(gpu, OP, "a as f32")?;
                (p, Some(g))
            }
            None => (KernelArg::Ptr(0), None),
        };
        let shape = LaunchShape { grid: (outer.clamp(1, 4096) as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
        // SAFETY: A's shape was validated against its buffer (DeviceMatRef), so src[o * ld + k] for o < outer,
        // k < inner is inside it; dst, when given, is a fresh buffer of outer * inner elements (the caller
        // allocates it so), written at o * inner + k; the count goes to counter[slot] (slot < len, checked), a
        // word of a buffer the caller allocated for it; no output overlaps an input (all fresh); a null dst is
        // never dereferenced; arguments match rsvd_to_f32_<dtype>.
        unsafe {
            gpu.launch(
                MODULE,
                &format!("rsvd_to_f32_{}", T::DTYPE.name()),
                shape,
                &[p_src, KernelArg::U64(outer as u64), KernelArg::U64(inner as u64), KernelArg::U64(s.ld as u64), p_dst, p_cnt],
            )?;
        }
    }
    Ok(())
}

/// The randomized SVD of the module docs on `gpu`: `A ≈ U · diag(s) · Vᵀ` with A: m x n (f32, f16 or bf16,
/// either layout), U: m x r and Vᵀ: r x n f32 device matrices (either layout), s: r values on the host. Returns
/// when s is written (the host steps synchronize the stream; U and Vᵀ are queued on it).
///
/// Same sketch bits as [`rsvd_cpu`] for the same seed, so both compute the same factorization up to rounding
/// (TF32 aside). f16/bf16 A is converted once to an f32 scratch of m·n elements; f32 A is read in place. Under the
/// opt-in `SLR_RSVD_GEMM=bf16x3` (`bf16x3_all`) the power iteration's (every) product with A runs on bf16 tensor
/// cores at f32 accuracy, A and X as exact bf16 slices (docs/rsvd.md); A's slices take m·n·6 bytes of
/// scratch for f32 A, m·n·4 for f16, none for bf16 (read as stored), and `bf16x3_all` drops the f32 scratch.
///
/// Errors (nothing written): A empty; rank 0 or above `min(m, n)`; U, s, Vᵀ of the wrong shape; U or Vᵀ
/// overlapping A or each other; A holding NaN/inf (`NonFinite` with the count, found on the device and saturated at
/// `u32::MAX`: that value means at least as many); products
/// overflowing f32 (`NonFinite` naming the singular values); a dimension
/// above `i32::MAX` (cuBLAS); buffers of another backend; CUDA/cuBLAS failures.
///
/// ```no_run
/// use sparse_lowrank::*;
/// use half::bf16;
/// # fn main() -> Result<()> {
/// // Rank 128 of a 4096 x 11008 bf16 weight (LIFT's principal-weight step), U and Vᵀ left on the device.
/// let gpu = Gpu::new(0)?;
/// let (m, n, r) = (4096, 11008, 128);
/// let w = gpu.alloc_zeros::<bf16>(m * n)?; // the layer's weight, row-major as frameworks store it
/// let (mut u, mut vt) = (gpu.alloc_zeros::<f32>(m * r)?, gpu.alloc_zeros::<f32>(r * n)?);
/// let mut s = vec![0f32; r];
/// let cfg = RsvdConfig { seed: 42, ..RsvdConfig::new(r) }; // p = 10, q = 2, TF32 off
/// let info = rsvd(&gpu, DeviceMatRef::row_major(&w, m, n)?, &cfg, DeviceMatMut::row_major(&mut u, m, r)?, &mut s,
///                 DeviceMatMut::row_major(&mut vt, r, n)?)?;
/// println!("largest singular value {}, sketch of {} columns", s[0], info.sketch_cols);
/// # Ok(()) }
/// ```
pub fn rsvd<T: Element>(gpu: &Gpu, a: DeviceMatRef<'_, T>, cfg: &RsvdConfig, mut u: DeviceMatMut<'_, f32>, s: &mut [f32], mut vt: DeviceMatMut<'_, f32>) -> Result<RsvdInfo> {
    const OP: &str = "rsvd";
    let ash = a.shape();
    validate(OP, ash, cfg, u.shape(), s.len(), vt.shape())?;
    let (m, n) = (ash.rows, ash.cols);
    for v in [m, n, ash.ld] {
        if v > i32::MAX as usize {
            return Err(Error::LengthMismatch { op: OP, what: "dimension of a (cuBLAS takes i32)", expected: i32::MAX as usize, got: v });
        }
    }
    let a_range = a.data().addr_range(gpu);
    check_no_alias(OP, ("u", u.data_mut().addr_range(gpu)), &[("a", a_range), ("vt", vt.data_mut().addr_range(gpu))])?;
    check_no_alias(OP, ("vt", vt.data_mut().addr_range(gpu)), &[("a", a_range)])?;

    let mut prof = Profile::from_env(Some(gpu));
    let split = split_products_requested();
    // No f32 copy for f32 A (read in place) or when every product with A is split (the pass only counts).
    let converted = if T::DTYPE == crate::element::DType::F32 || split == SplitProducts::All {
        None
    } else {
        // SAFETY: rsvd_to_f32_<T> writes every one of the m * n elements (row o, column k at o * inner + k).
        Some(unsafe { gpu.alloc_uninit::<f32>(m * n)? })
    };
    let mut converted = converted;
    // The queued path reads A's non-finite count back with its status words (one synchronization for both); the
    // host-driven path reads it at once.
    let l = sketch_cols(cfg, m, n);
    let queued_path = queued_path_enabled(gpu, l);
    let mut status = gpu.alloc_zeros::<u32>(if queued_path { queued_status_words(cfg, false) } else { 1 })?;
    let count_slot = status.len() - 1;
    // Where A is split and needs no f32 copy (an f32 A, or an f16 A with every product split), the split counts the
    // non-finite entries in the same read of A; otherwise the conversion pass does (and only counts when no copy
    // is needed).
    let count_in_split = split != SplitProducts::Off && converted.is_none() && a_slices(T::DTYPE) > 1;
    if !count_in_split {
        convert_and_count(gpu, &a, converted.as_mut(), &mut status, count_slot)?;
    }
    let owned_slices = if split == SplitProducts::Off { None } else { split_a(gpu, &a, count_in_split.then_some((&mut status, count_slot)))? };
    if !queued_path {
        let bad = gpu.download(&status)?[count_slot] as usize;
        if bad > 0 {
            return Err(Error::NonFinite { op: OP, what: "a", count: bad });
        }
    }
    let a_f32 = match &converted {
        Some(buf) => Some((DeviceSlice::from(buf), DenseShape::packed(m, n, ash.layout))),
        None => a.data().as_element::<f32>().map(|d| (d, ash)),
    };
    let a_bf16 = if split == SplitProducts::Off { None } else { split_view(&a, owned_slices.as_ref()) };
    let mut e = DeviceEngine { gpu, tf32: cfg.tf32, a: a_f32, a_bf16, split_projection: split == SplitProducts::All, bf16x3_products: 0 };
    let mut info = RsvdInfo::default();
    prof.lap(&mut e, Step::Convert)?;
    let mut queued = if queued_path { run_queued(&mut e, m, n, cfg, false, status, &mut info, &mut prof)? } else { QueuedOutcome::Host };
    if let QueuedOutcome::Retry = queued {
        // The first attempt refused only its first sketch basis: once more with that basis in two passes (A is
        // known finite now, so the count slot stays zero). Its time is that of one more queued call, against the
        // host-driven path's ~2x.
        info = RsvdInfo::default();
        e.bf16x3_products = 0;
        let status = gpu.alloc_zeros::<u32>(queued_status_words(cfg, true))?;
        queued = run_queued(&mut e, m, n, cfg, true, status, &mut info, &mut prof)?;
    }
    let f = match queued {
        QueuedOutcome::Done(f) => f,
        QueuedOutcome::Retry | QueuedOutcome::Host => {
            info = RsvdInfo::default();
            e.bf16x3_products = 0;
            run(&mut e, m, n, cfg, &mut info, &mut prof)?
        }
    };
    info.bf16x3_products = e.bf16x3_products;
    let r = cfg.rank;
    let (us, vs) = (u.shape(), vt.shape());
    let (ur, vr) = (&f.ur, &f.vr);
    let (qs, urs, q2s, vrs) = (DeviceSlice::from(&f.q.buf), DeviceSlice::from(&ur.buf), DeviceSlice::from(&f.q2.buf), DeviceSlice::from(&vr.buf));
    // U (m x r) = Q (m x l) · Ũ_r (l x r), written in U's own layout.
    // SAFETY: Q is packed m x l, Ũ_r packed l x r (uploaded, or written whole by rsvd_small_vectors_f64); U's shape (m x r) was validated against its
    // buffer, and U overlaps neither (fresh internal buffers; A and Vᵀ were checked above).
    unsafe { gemm(gpu, false, m, r, f.q.cols, Operand { data: &qs, rs: 1, cs: m }, Operand { data: &urs, rs: 1, cs: ur.rows }, u.data_mut(), us.row_stride(), us.col_stride())? };
    // Vᵀ (r x n) = Ṽ_rᵀ (r x l) · Q₂ᵀ (l x n).
    // SAFETY: Ṽ_r is packed l x r and Q₂ packed n x l, read transposed through swapped strides; Vᵀ's shape
    // (r x n) was validated against its buffer and it overlaps no input.
    unsafe { gemm(gpu, false, r, n, f.q2.cols, Operand { data: &vrs, rs: vr.rows, cs: 1 }, Operand { data: &q2s, rs: n, cs: 1 }, vt.data_mut(), vs.row_stride(), vs.col_stride())? };
    s.copy_from_slice(&f.s);
    prof.lap(&mut e, Step::Final)?;
    prof.report(&format!("{} {m} x {n} {:?}", gpu.describe(), T::DTYPE), &info);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major BLAS semantics: `C[i + j·ldc] = Σ_p op(A)[i, p] · op(B)[p, j]`.
    fn blas_reference(p: &BlasPlan, a: &[f64], b: &[f64], c: &mut [f64]) {
        for j in 0..p.n {
            for i in 0..p.m {
                let mut acc = 0.0;
                for q in 0..p.k {
                    let x = if p.a_trans { a[q + i * p.lda] } else { a[i + q * p.lda] };
                    let y = if p.b_trans { b[j + q * p.ldb] } else { b[q + j * p.ldb] };
                    acc += x * y;
                }
                c[i + j * p.ldc] = acc;
            }
        }
    }

    #[test]
    fn small_svd_matches_faer_svd_down_to_tiny_and_zero_singular_values() {
        // R (upper triangular, l x l) = QR factor of W · diag(σ) · Zᵀ with σ from 1 down to 1e-6 and one exact zero.
        let l = 24;
        let sigma: Vec<f64> = (0..l).map(|i| if i == l - 1 { 0.0 } else { 10f64.powf(-6.0 * i as f64 / (l - 2) as f64) }).collect();
        let w = Mat::from_fn(l, l, |i, j| ((i * 31 + j * 17) as f64 * 0.7).sin()).qr().compute_thin_Q();
        let z = Mat::from_fn(l, l, |i, j| ((i * 13 + j * 29) as f64 * 0.3).cos()).qr().compute_thin_Q();
        let a = Mat::from_fn(l, l, |i, j| w[(i, j)] * sigma[j]) * z.transpose();
        let r2 = a.qr().thin_R().to_owned();
        let r = 20;
        let (s, ur, vr) = small_svd(&r2, r).unwrap();
        for j in 0..r {
            let rel = (s[j] as f64 - sigma[j]).abs() / sigma[j];
            // f32 rounding of s, and ε₆₄·σ₁²/σ_j² from the squared problem (1e-4 relative at σ_j = 1e-6).
            assert!(rel <= 1e-6 + 2e-16 / (sigma[j] * sigma[j]), "σ_{j}: {} vs {} (rel {rel})", s[j], sigma[j]);
        }
        for (name, x) in [("U", &ur), ("V", &vr)] {
            let g = x.transpose() * x;
            for i in 0..r {
                for j in 0..r {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((g[(i, j)] - want).abs() < 1e-10, "{name}ᵀ{name} - I at ({i}, {j}): {}", g[(i, j)] - want);
                }
            }
        }
        // R₂ᵀ Ṽ_r = Ũ_r Σ_r for the well-conditioned leading part.
        let lhs = r2.transpose() * &vr;
        for j in 0..10 {
            for i in 0..l {
                assert!((lhs[(i, j)] - ur[(i, j)] * sigma[j]).abs() < 1e-9, "column {j}");
            }
        }
        // The leading 10 (σ down to ~2e-3, 1/σ² ≈ 3e5): Ṽ_r is orthonormal to f64 rounding, the QR is skipped,
        // and the factors equal the QR path's to 1e-12.
        let (s10, ur10, vr10) = small_svd(&r2, 10).unwrap();
        FORCE_SMALL_SVD_QR.with(|f| f.set(true));
        let (s10q, ur10q, vr10q) = small_svd(&r2, 10).unwrap();
        FORCE_SMALL_SVD_QR.with(|f| f.set(false));
        assert_eq!(s10, s10q);
        assert_eq!(ur10, ur10q);
        assert!(max_dev_from_identity(&(vr10.transpose() * &vr10)) <= SMALL_SVD_ORTHONORMAL);
        for j in 0..10 {
            for i in 0..l {
                assert!((vr10[(i, j)] - vr10q[(i, j)]).abs() <= 1e-12, "Ṽ ({i}, {j}): {} vs QR {}", vr10[(i, j)], vr10q[(i, j)]);
            }
        }
        // Asking for every column, the zero singular value included, still gives orthonormal factors.
        let (s, _, vr) = small_svd(&r2, l).unwrap();
        assert!(s[l - 1] < 1e-7, "{s:?}");
        let g = vr.transpose() * &vr;
        for i in 0..l {
            assert!((g[(i, i)] - 1.0).abs() < 1e-10);
        }
    }

    #[test]
    fn blas_plan_computes_the_strided_product_for_every_layout_and_padding() {
        // A deterministic sweep: shapes including single rows/columns, each operand row- or column-major with
        // 0 or 3 elements of padding.
        let mut checked = 0;
        for &(m, n, k) in &[(5usize, 4usize, 3usize), (1, 4, 3), (5, 1, 3), (5, 4, 1), (1, 1, 1), (7, 2, 6)] {
            for layouts in 0..64u32 {
                let shape = |rows: usize, cols: usize, bit: u32, pad_bit: u32| {
                    let col_major = layouts & bit != 0;
                    let pad = if layouts & pad_bit != 0 { 3 } else { 0 };
                    let layout = if col_major { crate::dense::Layout::ColMajor } else { crate::dense::Layout::RowMajor };
                    let mut s = DenseShape::packed(rows, cols, layout);
                    s.ld += pad;
                    s
                };
                let (sa, sb, sc) = (shape(m, k, 1, 2), shape(k, n, 4, 8), shape(m, n, 16, 32));
                let a: Vec<f64> = (0..sa.required_len()).map(|i| (i as f64 * 0.37).sin()).collect();
                let b: Vec<f64> = (0..sb.required_len()).map(|i| (i as f64 * 0.91).cos()).collect();
                let mut expect = vec![f64::NAN; sc.required_len()];
                for i in 0..m {
                    for j in 0..n {
                        expect[sc.offset(i, j)] = (0..k).map(|q| a[sa.offset(i, q)] * b[sb.offset(q, j)]).sum();
                    }
                }
                let plan = blas_plan(m, n, k, (sa.row_stride(), sa.col_stride()), (sb.row_stride(), sb.col_stride()), (sc.row_stride(), sc.col_stride()));
                assert!(plan.lda >= if plan.a_trans { plan.k } else { plan.m }, "{plan:?}");
                assert!(plan.ldb >= if plan.b_trans { plan.n } else { plan.k }, "{plan:?}");
                assert!(plan.ldc >= plan.m, "{plan:?}");
                let (pa, pb) = if plan.swap { (&b, &a) } else { (&a, &b) };
                // BLAS may touch C up to (n - 1)·ldc + m - 1: give it room, then compare the addressed elements.
                let mut got = vec![f64::NAN; (plan.n - 1) * plan.ldc + plan.m];
                blas_reference(&plan, pa, pb, &mut got);
                for i in 0..m {
                    for j in 0..n {
                        let off = sc.offset(i, j);
                        assert!((got[off] - expect[off]).abs() < 1e-12, "m={m} n={n} k={k} layouts={layouts:06b} {plan:?}");
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 6 * 64);
    }
}

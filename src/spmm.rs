//! SpMM: a sparse matrix S in CSR times dense matrices, the forward and input-gradient products of a sparse
//! Linear layer (weights stored out x in, activations T x in row-major, as frameworks store them):
//!
//! - forward: `Y <- alpha * X * S^T + beta * Y` ([`spmm_xst`]; X: T x in, S: out x in, Y: T x out);
//! - backward to the input: `dX <- alpha * dY * S + beta * dX`, which is [`spmm_xst`] with S^T in place of S
//!   (dY: T x out, S^T: in x out, dX: T x in), S^T from the CSR transpose;
//! - the textbook form `C <- alpha * S * B + beta * C` ([`spmm_sb`]; B: k x n, C: m x n).
//!
//! Values f32, f16 or bf16 (S and the dense operands in one type), f32 accumulation, outputs rounded once.
//! `beta == 0` overwrites the output without reading it, so NaN or garbage there does not leak. Deterministic:
//! every sum is formed in a fixed order, no atomics. Dense operands may be row- or column-major with any leading
//! dimension (row-major is the fast case). Kernels: `cuda/spmm.cu`.
use crate::csr::{CsrPattern, DeviceCsrPattern, Index};
use crate::dense::{Layout, MatMut, MatRef};
use crate::device::{check_no_alias, DeviceMatMut, DeviceMatRef, DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_kernel_count, check_len, check_shape, Error, Result};

const MODULE: &str = "spmm";
const WARPS_PER_BLOCK: usize = 8;
/// Up to this many rows of X, spmm_xst gathers X directly; above, it transposes X first (see cuda/spmm.cu).
const SCALAR_T_MAX: usize = 2;
/// From this many rows of X, spmm_xst takes the wide kernel (lanes across t, 128 t per warp: at least half of
/// its lanes busy) instead of the vector kernel (one warp per 8G t). Unmeasured on a GPU so far: a guess from the
/// bytes each gathers (cuda/spmm.cu); `SLR_SPMM_PATH=vec` forces the vector kernel with G = 1, for comparison.
const WIDE_T_MIN: usize = 64;
/// Rows of X per warp of the wide kernel (cuda/spmm.cu kWideT).
const WIDE_T: usize = 128;
/// The wide kernel walks a row's entries with one warp: a row of L entries costs that warp about L / 16 L2 round
/// trips for 16-bit types (16 gathers in flight, the next 32 entries' indices prefetched; L / 8 for f32), while the
/// whole kernel is L2-bound at about nnz * 2T bytes / (~3200 bytes per cycle). It is used while the longest row's
/// warp fits inside that, `L * WIDE_BALANCE <= nnz * T` (L <= ~1100 at 5% of 4096x4096, T = 128; ~2900 at 5% of
/// 11008 x 4096), or L <= 4T (small problems); otherwise the vector kernel, which spreads a row over 32 lanes and
/// T / 8G warps, runs. Estimates from bytes, not yet measured; the rule was set when 8 gathers were in flight
/// (L / 8 + L / 32 round trips) and is kept as the conservative side until timed.
const WIDE_BALANCE: usize = 100_000;
const WIDE_ROW_PER_T: usize = 4;

/// A warp of the vector kernel takes `32 / G * 4` entries of its row per step (G lanes per entry, 4 in flight),
/// so G lanes per entry multiply the longest row's steps by G while dividing the number of cache requests and S
/// reads by G. Lane groups are used while the longest row L stays short (`L * G <= VEC_SHORT_ROW`: at most 4
/// steps of a warp at any G) or small against the whole work (`L * G * VEC_BALANCE <= nnz * T`: uniform 5% of
/// 4096 x 11008 at T = 16 and 32 qualifies, a skewed mask's dense rows fall back to G = 1). Estimates from
/// request counts, not yet measured; `SLR_SPMM_PATH=vec` forces G = 1.
const VEC_SHORT_ROW: usize = 512;
const VEC_BALANCE: usize = 20_000;

/// For T <= 2 (decode), one warp per row of S (`spmm_xst_rowwarp`) while the longest row has at most
/// `ROWWARP_PER_MEAN` times the mean row's entries plus `ROWWARP_SLACK`; otherwise the 256 threads of a block share
/// each group of 8 rows (`spmm_xst`), so that a skewed mask's dense rows are not each walked by one warp. Measured
/// on an H200 (a5e77c2, T = 1, bf16): on uniform masks (longest / mean 1.1-1.6) the warp per row took 0.66-0.94x
/// the block kernel's time in all 6 cases (1-5% of 4096², 4096 x 11008, 11008 x 4096); on a power-law mask at 5%
/// of 11008 x 4096 (rows up to dense, longest / mean ~20) 1.42x. The cut between them is a round number in that
/// gap, not a measured crossover.
const ROWWARP_PER_MEAN: usize = 4;
const ROWWARP_SLACK: usize = 64;

/// Whether spmm_xst for T <= 2 takes one warp per row (see [`ROWWARP_PER_MEAN`]); `SLR_SPMM_PATH=block` forces the
/// block kernel, `warp` the warp per row. For a pattern a kernel made, the first call reads its row offsets back
/// once ([`DeviceCsrPattern::max_row_len`]).
fn t_le2_uses_row_warps<I: Index>(gpu: &Gpu, s: &DeviceCsrPattern<I>) -> Result<bool> {
    if path_forced("block") {
        return Ok(false);
    }
    if path_forced("warp") || s.rows() == 0 {
        return Ok(true);
    }
    let mean = s.nnz() / s.rows();
    Ok(s.max_row_len(gpu)? <= mean.saturating_mul(ROWWARP_PER_MEAN).saturating_add(ROWWARP_SLACK))
}

/// Lanes per entry G of the vector kernel for T rows of X padded to ldt (see [`VEC_BALANCE`]): 1 for ldt = 8, 2
/// for 16, 4 from 24 (32 t per warp), unless the longest row says otherwise.
fn vec_lane_group<I: Index>(gpu: &Gpu, s: &DeviceCsrPattern<I>, t: usize, ldt: usize) -> Result<usize> {
    let wanted = match ldt {
        8 => 1,
        16 => 2,
        _ => 4,
    };
    if wanted == 1 || path_forced("vec") {
        return Ok(1);
    }
    let longest = s.max_row_len(gpu)?;
    let fits = |g: usize| longest * g <= VEC_SHORT_ROW || (longest * g).saturating_mul(VEC_BALANCE) <= s.nnz().saturating_mul(t);
    // The widest group that fits: `wanted`, else 2 (when 4 was wanted), else one lane per entry.
    Ok(if fits(wanted) {
        wanted
    } else if wanted > 2 && fits(2) {
        2
    } else {
        1
    })
}

/// Opted in ([`crate::opt_in_tensor_cores_on_this_thread`], `SLR_SPMM_PATH=tc`), f16/bf16 spmm_xst from this many
/// rows of X runs on tensor cores (`spmm_xst_tc`: S densified 64 x 64 at a time in shared memory, X · Sᵀ by
/// mma.sync) when S averages at least one entry per `TC_AREA_PER_ENTRY` elements (1%): the dense-equivalent
/// 2·T·out·in flops at tensor-core rates. Measured on an H200 (a5e77c2) it lost to the wide CUDA-core kernel in
/// every case: 240 µs against 41 µs at T = 128, 1% of 11008 x 4096; 115 against 51 at 5% of 4096²; 818 against
/// 623 at T = 2048. Its time hardly depended on density: per block and 64-feature stage each warp densified its
/// 16 rows one at a time (a shuffle, a ballot and a window load each) behind two barriers, with 8 warps per SM, so
/// it was bound by that latency (~1.9 µs per block-stage) long before the mma work. Hence off by default. Since
/// then the 64 rows of a tile are densified in parallel, one owner thread per row from register windows
/// (unmeasured; the benchmark's "our tensor-core kernel" line will say whether it should become the default).
const TC_T_MIN: usize = 64;
const TC_AREA_PER_ENTRY: usize = 100;
/// Outputs (and, for T >= TC_SMALL_TILE_T_MAX, tokens) per block of spmm_xst_tc (cuda/spmm.cu kTcTile); also the
/// stage width over `in`.
const TC_TILE: usize = 64;
/// Below this many rows of X the tensor-core kernel takes 32-token tiles (`spmm_xst_tc32_*`): at T = 128 and 4096
/// outputs 64-token tiles make 128 blocks, fewer than the 132 SMs of an H100/H200, and 32-token tiles twice as
/// many (each reads S once more). A guess from block counts, not yet measured; `SLR_SPMM_PATH=tc64` forces
/// 64-token tiles for the benchmark's comparison.
const TC_SMALL_TILE_T_MAX: usize = 256;

/// Whether [`spmm_xst`] takes the wide kernel (`spmm_xst_wide_<dtype>`, lanes across T) for this pattern and T:
/// from `WIDE_T_MIN` rows of X unless one row would outlast the rest of the work (`WIDE_BALANCE`), and not under
/// `SLR_SPMM_PATH=vec`. May read the pattern's row offsets back once (its longest row). For benchmarks' labels.
#[doc(hidden)]
pub fn spmm_xst_uses_wide_kernel<I: Index>(gpu: &Gpu, s: &DeviceCsrPattern<I>, t: usize) -> Result<bool> {
    Ok(t >= WIDE_T_MIN && !path_forced("vec") && s.max_row_len(gpu)? <= (WIDE_ROW_PER_T * t).max(s.nnz().saturating_mul(t) / WIDE_BALANCE))
}

/// Whether [`spmm_xst`] runs on tensor cores for T rows of X and S of `out x in` with `nnz` entries: only when
/// opted in on this thread or by `SLR_SPMM_PATH=tc`/`tc64` (see `TC_T_MIN` in the source). Then the result is deterministic run to run and independent of X's layout, but not
/// bitwise that of the CUDA-core kernels, the CPU reference or another device (the mma's accumulation order is
/// unspecified); it stays within the f32 bound of [`spmm_xst`]'s docs with three times the constant. For tests
/// and benchmarks.
#[doc(hidden)]
pub fn spmm_xst_uses_tensor_cores<T: Element>(t: usize, out: usize, inn: usize, nnz: usize) -> bool {
    T::DTYPE.size() == 2
        && t >= TC_T_MIN
        && out > 0
        && nnz.saturating_mul(TC_AREA_PER_ENTRY) >= out.saturating_mul(inn)
        && t.div_ceil(TC_TILE / 2) <= 65535
        && out.div_ceil(TC_TILE) <= i32::MAX as usize
        // the kernel's stage loop and entry windows stay inside u32
        && inn.saturating_add(TC_TILE) <= u32::MAX as usize
        && nnz.saturating_add(32) <= u32::MAX as usize
        && !path_forced("simt")
        && !path_forced("vec")
        && (crate::tensor_cores_opted_in("SLR_SPMM_PATH") || path_forced("tc64"))
}

fn combine(acc: f32, alpha: f32, beta: f32, old: f32) -> f32 {
    if beta == 0.0 {
        alpha * acc
    } else {
        alpha.mul_add(acc, beta * old)
    }
}

/// Whether `SLR_SPMM_PATH` names `path`: `block` (T <= 2: the block-per-8-rows kernel whatever the row lengths),
/// `warp` (T <= 2: the warp-per-row kernel whatever the row lengths), `vec` (no wide kernel), `vec_serial` (the
/// vector kernels without their load pipelining), `wide_serial` (the wide kernel without its index prefetch, 8
/// gathers in flight: the previous kernel), `simt` (no tensor-core kernel even when opted in), `tc` (the
/// tensor-core kernel where eligible) or `tc64` (that with 64-token tiles at every T), the benchmarks' switches for
/// timing the other kernels in the same run.
fn path_forced(path: &str) -> bool {
    crate::path_switch("SLR_SPMM_PATH", path)
}

/// The wide kernel for `T`: `spmm_xst_wide_<T>`, or its serial form under `SLR_SPMM_PATH=wide_serial` (same FMAs in
/// the same order: bitwise the same results).
fn wide_kernel<T: Element>() -> String {
    let variant = if path_forced("wide_serial") { "_serial" } else { "" };
    format!("spmm_xst_wide{variant}_{}", T::DTYPE.name())
}

/// CPU reference: `Y[t, o] = alpha * sum_{e in row o of S} S[e] * X[t, col(e)] + beta * Y[t, o]`, each sum a
/// sequential chain of f32 fused multiply-adds in storage order. Shapes: S `out x in` (`s_values.len() == nnz`),
/// X `T x in`, Y `T x out`. Errors on any mismatch and leaves Y untouched.
pub fn spmm_xst_cpu<T: Element, I: Index>(
    s: &CsrPattern<I>,
    s_values: &[T],
    x: MatRef<'_, T>,
    alpha: f32,
    beta: f32,
    mut y: MatMut<'_, T>,
) -> Result<()> {
    const OP: &str = "spmm_xst_cpu";
    check_len(OP, "s_values", s.nnz(), s_values.len())?;
    check_shape(OP, "x", (x.rows(), s.cols()), (x.rows(), x.cols()))?;
    check_shape(OP, "y", (x.rows(), s.rows()), (y.rows(), y.cols()))?;
    let cols = s.col_indices();
    for t in 0..x.rows() {
        for o in 0..s.rows() {
            let mut acc = 0f32;
            for e in s.row_range(o) {
                acc = s_values[e].to_f32().mul_add(x.get(t, cols[e].to_usize()).to_f32(), acc);
            }
            let out = y.get_mut(t, o);
            *out = T::from_f32(combine(acc, alpha, beta, out.to_f32()));
        }
    }
    Ok(())
}

/// CPU reference: `C[r, j] = alpha * sum_{e in row r of S} S[e] * B[col(e), j] + beta * C[r, j]`, each sum a
/// sequential chain of f32 fused multiply-adds in storage order (bitwise what [`spmm_sb`] computes). Shapes: S
/// `m x k`, B `k x n`, C `m x n`. Errors on any mismatch and leaves C untouched.
pub fn spmm_sb_cpu<T: Element, I: Index>(
    s: &CsrPattern<I>,
    s_values: &[T],
    b: MatRef<'_, T>,
    alpha: f32,
    beta: f32,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    const OP: &str = "spmm_sb_cpu";
    check_len(OP, "s_values", s.nnz(), s_values.len())?;
    check_shape(OP, "b", (s.cols(), b.cols()), (b.rows(), b.cols()))?;
    check_shape(OP, "c", (s.rows(), b.cols()), (c.rows(), c.cols()))?;
    let cols = s.col_indices();
    for r in 0..s.rows() {
        for j in 0..b.cols() {
            let mut acc = 0f32;
            for e in s.row_range(r) {
                acc = s_values[e].to_f32().mul_add(b.get(cols[e].to_usize(), j).to_f32(), acc);
            }
            let out = c.get_mut(r, j);
            *out = T::from_f32(combine(acc, alpha, beta, out.to_f32()));
        }
    }
    Ok(())
}

/// Errors with `Aliasing` if the output overlaps X/B, S's values or S's index arrays.
fn check_spmm_alias<T, I: Index>(op: &'static str, gpu: &Gpu, s: &DeviceCsrPattern<I>, s_values: &DeviceSlice<'_, T>, dense: &DeviceMatRef<'_, T>, out: &mut DeviceMatMut<'_, T>) -> Result<()> {
    check_no_alias(
        op,
        ("output", out.data_mut().addr_range(gpu)),
        &[
            ("dense input", dense.data().addr_range(gpu)),
            ("s_values", s_values.addr_range(gpu)),
            ("row_offsets", s.row_offsets().addr_range(gpu)),
            ("col_indices", s.col_indices().addr_range(gpu)),
        ],
    )
}

/// Launches one of the SpMM kernels, whose parameters are all (row_offsets, col_indices, values, s_rows,
/// dense, <dense_layout...>, count, out, out_row_stride, out_col_stride, alpha, beta): `dense_layout` is
/// (row_stride, col_stride) for spmm_xst/spmm_sb and (ldt) for spmm_xst_vec.
///
/// # Safety
/// The caller has checked everything the kernel trusts: S is a validated DeviceCsrPattern with nnz values; every
/// dense element the kernel reads for `count` and S's columns lies inside `dense` (as `dense_layout` describes
/// it); every output element it writes lies inside `out`'s validated shape; `out` overlaps no input; all sizes
/// fit u32; `warps` covers the work and surplus warps return.
#[allow(clippy::too_many_arguments)]
unsafe fn launch_spmm<T: Element, I: Index>(
    op: &'static str,
    kernel: &str,
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: &DeviceSlice<'_, T>,
    dense: &DeviceSlice<'_, T>,
    dense_layout: &[KernelArg],
    count: usize,
    warps: usize,
    alpha: f32,
    beta: f32,
    out: &mut DeviceMatMut<'_, T>,
) -> Result<()> {
    if warps == 0 || count == 0 {
        return Ok(()); // an empty output: nothing to compute
    }
    let launch = LaunchShape::linear(op, warps * 32, (WARPS_PER_BLOCK * 32) as u32)?;
    let os = out.shape();
    let (offsets, cols) = (s.row_offsets(), s.col_indices());
    let (p_off, _g0) = offsets.kernel_ptr(gpu, op, "row_offsets")?;
    let (p_col, _g1) = cols.kernel_ptr(gpu, op, "col_indices")?;
    let (p_val, _g2) = s_values.kernel_ptr(gpu, op, "s_values")?;
    let (p_dense, _g3) = dense.kernel_ptr(gpu, op, "dense input")?;
    let (p_out, _g4) = out.data_mut().kernel_ptr_mut(gpu, op, "output")?;
    let mut args = vec![p_off, p_col, p_val, KernelArg::U32(s.rows() as u32), p_dense];
    args.extend_from_slice(dense_layout);
    args.extend_from_slice(&[
        KernelArg::U32(count as u32),
        p_out,
        KernelArg::U64(os.row_stride() as u64),
        KernelArg::U64(os.col_stride() as u64),
        KernelArg::F32(alpha),
        KernelArg::F32(beta),
    ]);
    // SAFETY: the caller's contract above; the argument list matches SLR_SPMM's kernels.
    unsafe { gpu.launch(MODULE, kernel, launch, &args) }
}

/// `Y <- alpha * X * S^T + beta * Y` on the device: `Y[t, o] = alpha * sum_{e in row o} S[e] * X[t, col(e)] +
/// beta * Y[t, o]`. The forward of a sparse Linear layer (S: out x in, X: T x in, Y: T x out); with S^T (in x
/// out) in place of S and dY (T x out) for X, it is the backward to the input, `dX <- alpha * dY * S + beta * dX`.
/// Asynchronous on `gpu`'s stream; deterministic.
///
/// Errors (nothing launched): `s_values.len() != nnz`; X not `T x s.cols()`; Y not `T x s.rows()`; T, S's rows or
/// S's entries above [`crate::KERNEL_COUNT_MAX`] (`TooLarge`); Y overlapping an input; buffers of another backend. Matches [`spmm_xst_cpu`] within the f32
/// reassociation bound: for T < 64 threads sum interleaved entries and their partial sums are combined in a
/// fixed tree (for T <= 2 one warp per row while the longest row is within `ROWWARP_PER_MEAN` times the mean
/// (plus `ROWWARP_SLACK`), else the 256 threads of a block share each group of 8 rows, so a skewed mask's long
/// rows are not walked by one warp), so `|gpu - cpu| <= 2 * nnz_row * 2^-24 * |alpha| * sum |S||X|` before the output
/// rounding.
///
/// A tensor-core kernel (S densified 64 x 64 at a time in shared memory, mma.sync) exists but is off by default:
/// it was slower than the CUDA-core kernels in every case measured on an H200 (`TC_T_MIN` in the source). Opted
/// in (`SLR_SPMM_PATH=tc`, f16/bf16 from T = 64 with S at least 1% dense) its result is deterministic and
/// independent of X's layout, but not bitwise the CUDA-core kernels or the CPU: within three times the bound
/// above.
///
/// For T > 2, X is first transposed into a scratch buffer of `in x round_up(T, 8)` elements (allocated on the
/// stream per call; [`spmm_xst_with_scratch`] takes the caller's instead) so that each entry's T values are one or a few 16-byte loads, G = 1, 2 or 4 lanes per entry
/// (8 t each; G > 1 only while the longest row is short against the work, `VEC_BALANCE` in the source); from
/// T = 64, unless one row is long enough to outlast the rest of the work (`WIDE_BALANCE`), the product runs with
/// lanes across T (each output then the sequential fmaf chain of [`spmm_xst_cpu`]). `SLR_SPMM_PATH=vec` in the
/// environment keeps the 8-t vector kernel with one lane per entry for every T > 2, for comparison. Every T
/// chooses its kernel by the longest row: for a pattern a kernel made (`mask_to_csr`, `csr_transpose`,
/// `topk_csr`), the first call reads its row offsets back once ([`DeviceCsrPattern::max_row_len`]; one
/// synchronization, then cached), for an uploaded pattern never.
///
/// Floor (memory-bound for T up to a few dozen): S once, `nnz * (4 + size_of::<T>())` bytes, plus Y written
/// (`T * out * size_of::<T>()`), X read (and for T > 2 transposed: `2 * T * in * size_of::<T>()` more);
/// `2 * nnz * T` flops.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // S (2 x 3, out x in) = [[1, 0, 2], [0, 3, 0]]; X (1 token x 3) = [1, 1, 1]: Y = X Sᵀ = [3, 3].
/// let s = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (0, 2), (1, 1)])?)?;
/// let s_values = gpu.upload(&[1.0f32, 2.0, 3.0])?;
/// let x = gpu.upload(&[1.0f32, 1.0, 1.0])?;
/// let mut y = gpu.alloc_zeros::<f32>(2)?;
/// spmm_xst(&gpu, &s, &s_values, DeviceMatRef::row_major(&x, 1, 3)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, 1, 2)?)?;
/// assert_eq!(gpu.download(&y)?, vec![3.0, 3.0]);
/// // The input gradient dX = dY S is spmm_xst with Sᵀ: the CSR transpose and its value permutation.
/// let t = csr_transpose(&gpu, &s)?;
/// let mut st_values = gpu.alloc_zeros::<f32>(3)?;
/// transpose_values(&gpu, &t, &s_values, &mut st_values)?;
/// let dy = gpu.upload(&[1.0f32, -1.0])?;
/// let mut dx = gpu.alloc_zeros::<f32>(3)?;
/// spmm_xst(&gpu, t.pattern(), &st_values, DeviceMatRef::row_major(&dy, 1, 2)?, 1.0, 0.0, DeviceMatMut::row_major(&mut dx, 1, 3)?)?;
/// assert_eq!(gpu.download(&dx)?, vec![1.0, -3.0, 2.0]);
/// # Ok(()) }
/// ```
pub fn spmm_xst<'a, T: Element, I: Index>(
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: impl Into<DeviceSlice<'a, T>>,
    x: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    y: DeviceMatMut<'_, T>,
) -> Result<()> {
    spmm_xst_impl("spmm_xst", gpu, s, s_values.into(), x, alpha, beta, y, None)
}

/// Elements of scratch [`spmm_xst_with_scratch`] needs for `t` rows of X and `in_features` columns: the transposed
/// X, `in_features * round_up(t, 8)` for t > 2, none for t <= 2. Saturates at `usize::MAX`. The opt-in
/// tensor-core path reads X directly and leaves the scratch alone, but the requirement does not depend on
/// which kernel runs.
pub fn spmm_xst_scratch_len(t: usize, in_features: usize) -> usize {
    if t <= SCALAR_T_MAX {
        0
    } else {
        in_features.saturating_mul(t.div_ceil(8).saturating_mul(8))
    }
}

/// [`spmm_xst`] with the caller's scratch for the transposed X (at least [`spmm_xst_scratch_len`] elements,
/// starting 16-byte aligned, overlapping no operand), so that a training loop allocates nothing per call. Same
/// result, bit for bit. Errors: those of [`spmm_xst`], and `BufferTooSmall`, `Misaligned` or `Aliasing` for the
/// scratch (nothing launched).
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # use half::bf16;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// let (out_f, in_f, tokens) = (4096, 4096, 16);
/// let mask = CsrPattern::<u32>::from_coo(out_f, in_f, &[(0, 1), (7, 4095)])?;
/// let s = DeviceCsrPattern::upload(&gpu, &mask)?;
/// let s_values = gpu.upload(&[bf16::from_f32(0.5), bf16::from_f32(-2.0)])?;
/// let x = gpu.alloc_zeros::<bf16>(tokens * in_f)?;
/// let mut y = gpu.alloc_zeros::<bf16>(tokens * out_f)?;
/// // One scratch for the whole loop: nothing is allocated per step.
/// let mut scratch = gpu.alloc_zeros::<bf16>(spmm_xst_scratch_len(tokens, in_f))?;
/// for _step in 0..100 {
///     // Y = X Sᵀ (the sparse Linear layer's forward).
///     spmm_xst_with_scratch(&gpu, &s, &s_values, DeviceMatRef::row_major(&x, tokens, in_f)?, 1.0, 0.0,
///                           DeviceMatMut::row_major(&mut y, tokens, out_f)?, &mut scratch)?;
/// }
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn spmm_xst_with_scratch<'a, 's, T: Element, I: Index>(
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: impl Into<DeviceSlice<'a, T>>,
    x: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    y: DeviceMatMut<'_, T>,
    scratch: impl Into<DeviceSliceMut<'s, T>>,
) -> Result<()> {
    spmm_xst_impl("spmm_xst_with_scratch", gpu, s, s_values.into(), x, alpha, beta, y, Some(scratch.into()))
}

#[allow(clippy::too_many_arguments)]
fn spmm_xst_impl<T: Element, I: Index>(
    op: &'static str,
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: DeviceSlice<'_, T>,
    x: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    mut y: DeviceMatMut<'_, T>,
    scratch: Option<DeviceSliceMut<'_, T>>,
) -> Result<()> {
    let (xs, ys) = (x.shape(), y.shape());
    check_len(op, "s_values", s.nnz(), s_values.len())?;
    check_shape(op, "x", (xs.rows, s.cols()), (xs.rows, xs.cols))?;
    check_shape(op, "y", (xs.rows, s.rows()), (ys.rows, ys.cols))?;
    check_kernel_count(op, "rows of x", xs.rows)?;
    check_kernel_count(op, "entries of s", s.nnz())?;
    check_kernel_count(op, "rows of s", s.rows())?;
    check_spmm_alias(op, gpu, s, &s_values, &x, &mut y)?;
    let (t, inn, out) = (xs.rows, s.cols(), s.rows());
    let ldt = t.div_ceil(8) * 8;
    let xt_len = inn.checked_mul(ldt).ok_or(Error::LengthMismatch { op, what: "transposed x", expected: usize::MAX, got: inn })?;
    // The caller's scratch is checked whichever kernel runs, so that its contract does not depend on the path.
    if let Some(sv) = &scratch {
        if t > SCALAR_T_MAX {
            if sv.len() < xt_len {
                return Err(Error::BufferTooSmall { op, what: "scratch", needed: xt_len, got: sv.len() });
            }
            let range = sv.addr_range(gpu);
            if !range.aligned_to(16) {
                return Err(Error::Misaligned { op, what: "scratch", align: 16 });
            }
            check_no_alias(
                op,
                ("scratch", range),
                &[
                    ("x", x.data().addr_range(gpu)),
                    ("s_values", s_values.addr_range(gpu)),
                    ("row_offsets", s.row_offsets().addr_range(gpu)),
                    ("col_indices", s.col_indices().addr_range(gpu)),
                    ("y", y.data_mut().addr_range(gpu)),
                ],
            )?;
        }
    }
    if spmm_xst_uses_tensor_cores::<T>(t, out, inn, s.nnz()) {
        return spmm_xst_tensor_cores(op, gpu, s, &s_values, &x, alpha, beta, &mut y);
    }
    if t <= SCALAR_T_MAX {
        if t == 0 || out == 0 {
            return Ok(()); // an empty output: nothing to compute, and no reason to read the row lengths back
        }
        let layout = [KernelArg::U64(xs.row_stride() as u64), KernelArg::U64(xs.col_stride() as u64)];
        // SAFETY: shapes checked above: X is t x in and every column of S is < in, so X[t', col(e)] is inside X
        // for t' < t; Y is t x out, written at (t', o) for t' < t, o < out; no aliasing (checked above); sizes
        // fit u32 (T checked, S's by its index type); one warp per row of S.
        // One warp per row, or (skewed rows) a block per 8 rows: same launch shape and arguments.
        let name = if t_le2_uses_row_warps(gpu, s)? { "spmm_xst_rowwarp" } else { "spmm_xst" };
        return unsafe { launch_spmm(op, &format!("{name}_{}", T::DTYPE.name()), gpu, s, &s_values, x.data(), &layout, t, out, alpha, beta, &mut y) };
    }
    if out == 0 {
        return Ok(());
    }
    // The kernel is chosen before anything is queued (max_row_len may read the row offsets back once).
    let wide = spmm_xst_uses_wide_kernel(gpu, s, t)?;
    // T > 2: transpose X into Xt (in x ldt, ldt = T rounded up to 8, zero padding) so each entry's T values are
    // contiguous and 16-byte aligned, then the vector kernel.
    let lanes_per_entry = if wide { 1 } else { vec_lane_group(gpu, s, t, ldt)? };
    let mut owned: Option<DeviceVec<T>> = None;
    let mut xt_view = match scratch {
        // Checked above: long enough, 16-byte aligned, overlapping no operand.
        Some(sv) => sv,
        // SAFETY: transpose_pad writes every element of xt (rows r < ldt, padding included, for every c < in)
        // before spmm_xst_vec reads any; with in == 0 xt is empty.
        None => DeviceSliceMut::from(owned.insert(unsafe { gpu.alloc_uninit::<T>(xt_len)? })),
    };
    if inn > 0 {
        let grid_y = ldt.div_ceil(32);
        if grid_y > 65535 || inn.div_ceil(32) > i32::MAX as usize {
            return Err(Error::LengthMismatch { op, what: "rows of x (transpose grid)", expected: 65535 * 32, got: t });
        }
        let shape = LaunchShape { grid: (inn.div_ceil(32) as u32, grid_y as u32, 1), block: (32, 8, 1), shared_bytes: 0 };
        let (p_x, _g0) = x.data().kernel_ptr(gpu, op, "x")?;
        let (p_xt, _g1) = xt_view.kernel_ptr_mut(gpu, op, "transposed x")?;
        // SAFETY: the kernel reads x[r, c] only for r < t, c < in, inside X's validated shape, and writes
        // xt[c * ldt + r] for c < in, r < ldt, inside xt's first in * ldt elements (a fresh allocation of exactly
        // that, or the caller's scratch, checked to be at least that long); xt overlaps no operand (fresh, or
        // checked above); the block is 32 x 8 threads over 32 x 32 tiles as the kernel expects; arguments match
        // transpose_pad_<dtype>.
        unsafe {
            gpu.launch(
                MODULE,
                &format!("transpose_pad_{}", T::DTYPE.name()),
                shape,
                &[
                    p_x,
                    KernelArg::U64(xs.row_stride() as u64),
                    KernelArg::U64(xs.col_stride() as u64),
                    KernelArg::U32(t as u32),
                    KernelArg::U32(inn as u32),
                    p_xt,
                    KernelArg::U64(ldt as u64),
                ],
            )?;
        }
    }
    let xt_view = xt_view.as_slice();
    if wide {
        let warps = out.checked_mul(t.div_ceil(WIDE_T)).ok_or(Error::LengthMismatch { op, what: "work items", expected: usize::MAX, got: out })?;
        // SAFETY: every column of S is < in, and the kernel gathers only at columns of S's entries; lane l of the
        // warp for t-chunk j loads xt[col * ldt + t' .. + 4] with t' = 128 j + 4 l when that is < t (then + 4 <=
        // round_up(t, 8) <= ldt), else t' = 0 (the pipelined kernel; the serial one loads nothing), inside the
        // in * ldt elements of xt and aligned to 4 elements
        // (8 or 16 bytes; xt starts 16-byte aligned: a fresh allocation, or the caller's scratch, checked); Y is
        // written at (t', o) with t' < t, o < out, inside its validated shape; Y overlaps neither the caller's inputs
        // (checked above) nor xt (fresh, or checked); sizes fit u32; one warp per (row of S, 128 rows of X), surplus
        // warps return.
        return unsafe { launch_spmm(op, &wide_kernel::<T>(), gpu, s, &s_values, &xt_view, &[KernelArg::U64(ldt as u64)], t, warps, alpha, beta, &mut y) };
    }
    let kernel = match lanes_per_entry {
        1 => "spmm_xst_vec",
        2 => "spmm_xst_vec2",
        _ => "spmm_xst_vec4",
    };
    let variant = if path_forced("vec_serial") { "_serial" } else { "" };
    let warps = out.checked_mul(ldt.div_ceil(8 * lanes_per_entry)).ok_or(Error::LengthMismatch { op, what: "work items", expected: usize::MAX, got: out })?;
    // SAFETY: every column of S is < in, and a lane loads xt[col * ldt + t0 .. + 8] only when t0 < ldt, so (ldt
    // and t0 being multiples of 8) t0 + 8 <= ldt: inside the first in * ldt elements of xt and 16-byte aligned (a
    // fresh allocation, or the caller's scratch, checked); Y is written at (t', o) with t' < t, o < out, inside its
    // validated shape; Y overlaps neither the caller's inputs (checked above) nor xt (fresh, or checked); sizes
    // fit u32; one warp per (row of S, 8G rows of X) with G = lanes_per_entry matching the kernel's template,
    // surplus warps return.
    unsafe { launch_spmm(op, &format!("{kernel}{variant}_{}", T::DTYPE.name()), gpu, s, &s_values, &xt_view, &[KernelArg::U64(ldt as u64)], t, warps, alpha, beta, &mut y) }
}

/// The tensor-core kernel of [`spmm_xst`] (f16/bf16; the caller checked [`spmm_xst_uses_tensor_cores`], shapes
/// and aliasing): one block of 128 threads per 64 x 64 tile of Y, or per 32 x 64 for T < TC_SMALL_TILE_T_MAX.
#[allow(clippy::too_many_arguments)]
fn spmm_xst_tensor_cores<T: Element, I: Index>(
    op: &'static str,
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: &DeviceSlice<'_, T>,
    x: &DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    y: &mut DeviceMatMut<'_, T>,
) -> Result<()> {
    let (xs, ys) = (x.shape(), y.shape());
    let (t, inn, out) = (xs.rows, s.cols(), s.rows());
    // Column-major X (spmm_sb's B seen as Bᵀ, or a caller's) is read along its columns by the `_xcol` kernel.
    // 16-byte loads need X's contiguous direction to have stride 1 and every line of it to start 16-byte
    // aligned.
    let x_col_major = xs.layout == Layout::ColMajor;
    let (inner_stride, outer_stride, outer_count) = if x_col_major { (xs.row_stride(), xs.col_stride(), inn) } else { (xs.col_stride(), xs.row_stride(), t) };
    let vec_x = inner_stride == 1 && (outer_stride % 8 == 0 || outer_count == 1) && x.data().addr_range(gpu).aligned_to(16);
    let tokens = if t < TC_SMALL_TILE_T_MAX && !path_forced("tc64") { TC_TILE / 2 } else { TC_TILE };
    let kernel = match (tokens == TC_TILE, x_col_major) {
        (true, false) => "spmm_xst_tc",
        (true, true) => "spmm_xst_tc_xcol",
        (false, false) => "spmm_xst_tc32",
        (false, true) => "spmm_xst_tc32_xcol",
    };
    let shape = LaunchShape { grid: (out.div_ceil(TC_TILE) as u32, t.div_ceil(tokens) as u32, 1), block: (128, 1, 1), shared_bytes: 0 };
    let (offsets, cols) = (s.row_offsets(), s.col_indices());
    let (p_off, _g0) = offsets.kernel_ptr(gpu, op, "row_offsets")?;
    let (p_col, _g1) = cols.kernel_ptr(gpu, op, "col_indices")?;
    let (p_val, _g2) = s_values.kernel_ptr(gpu, op, "s_values")?;
    let (p_x, _g3) = x.data().kernel_ptr(gpu, op, "x")?;
    let (p_y, _g4) = y.data_mut().kernel_ptr_mut(gpu, op, "y")?;
    // SAFETY: S is a validated pattern (offsets non-decreasing up to nnz = s_values.len(), checked by the caller;
    // columns < in and strictly increasing in a row), so the kernel's entry windows read e < row_offsets[o + 1]
    // only and each column lands at column - k0 < 64 of its stage; X is read at (row < T, column < in), inside
    // its validated T x in shape, with 16-byte loads only when vec_x (the contiguous direction has stride 1,
    // every line of it starts 16-byte aligned) and the 8 elements lie inside the line; Y is written at (t < T,
    // o < out), inside its validated shape, and overlaps no input (checked by the caller); in + 64 and nnz + 32
    // fit u32 and the grid fits its limits (spmm_xst_uses_tensor_cores, with T / 32 blocks along y); the
    // kernel's token tile is `tokens`; T is f16 or bf16, the kernels that exist; arguments match SLR_SPMM_XST_TC.
    unsafe {
        gpu.launch(
            MODULE,
            &format!("{kernel}_{}", T::DTYPE.name()),
            shape,
            &[
                p_off,
                p_col,
                p_val,
                KernelArg::U32(out as u32),
                KernelArg::U32(inn as u32),
                p_x,
                KernelArg::U64(xs.row_stride() as u64),
                KernelArg::U64(xs.col_stride() as u64),
                KernelArg::U32(t as u32),
                KernelArg::U32(vec_x as u32),
                p_y,
                KernelArg::U64(ys.row_stride() as u64),
                KernelArg::U64(ys.col_stride() as u64),
                KernelArg::F32(alpha),
                KernelArg::F32(beta),
            ],
        )
    }
}

/// `C <- alpha * S * B + beta * C` on the device: `C[r, j] = alpha * sum_{e in row r} S[e] * B[col(e), j] +
/// beta * C[r, j]` (S: m x k, B: k x n, C: m x n). Asynchronous; deterministic; bitwise equal to
/// [`spmm_sb_cpu`] (each output is the same sequential fmaf chain in entry order), except on the opt-in
/// tensor-core path ([`spmm_xst`]'s kernel as `Cᵀ = Bᵀ Sᵀ`, within three times its f32 bound).
///
/// From n = 64 with row-major B whose rows start 16-byte aligned
/// (ld a multiple of 8 elements), each warp covers 128 columns with 4 per lane (the wide kernel of
/// [`spmm_xst`]); up to n = 8, each row of S gets a group of max(4, next_pow2(n)) lanes, 32 / that many rows
/// per warp; otherwise one warp per 32 columns.
///
/// Errors (nothing launched): `s_values.len() != nnz`; B not `s.cols() x n`; C not `s.rows() x n`; n, S's rows or
/// S's entries above [`crate::KERNEL_COUNT_MAX`] (`TooLarge`); C overlapping an input; buffers of another backend. Floor: S read once per 32 columns of B,
/// `nnz * n * size_of::<T>()` bytes of B rows gathered (cache-resident when B is small), C written; `2 * nnz * n`
/// flops.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // S (2 x 3) = [[1, 0, 2], [0, 3, 0]], B (3 x 2) row-major: C = S B.
/// let s = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (0, 2), (1, 1)])?)?;
/// let s_values = gpu.upload(&[1.0f32, 2.0, 3.0])?;
/// let b = gpu.upload(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let mut c = gpu.alloc_zeros::<f32>(4)?;
/// spmm_sb(&gpu, &s, &s_values, DeviceMatRef::row_major(&b, 3, 2)?, 1.0, 0.0, DeviceMatMut::row_major(&mut c, 2, 2)?)?;
/// assert_eq!(gpu.download(&c)?, vec![11.0, 14.0, 9.0, 12.0]);
/// # Ok(()) }
/// ```
pub fn spmm_sb<'a, T: Element, I: Index>(
    gpu: &Gpu,
    s: &DeviceCsrPattern<I>,
    s_values: impl Into<DeviceSlice<'a, T>>,
    b: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    mut c: DeviceMatMut<'_, T>,
) -> Result<()> {
    const OP: &str = "spmm_sb";
    let s_values = s_values.into();
    let (bs, cs) = (b.shape(), c.shape());
    check_len(OP, "s_values", s.nnz(), s_values.len())?;
    check_shape(OP, "b", (s.cols(), bs.cols), (bs.rows, bs.cols))?;
    check_shape(OP, "c", (s.rows(), bs.cols), (cs.rows, cs.cols))?;
    check_kernel_count(OP, "columns of b", bs.cols)?;
    check_kernel_count(OP, "entries of s", s.nnz())?;
    check_kernel_count(OP, "rows of s", s.rows())?;
    let warps = s.rows().checked_mul(bs.cols.div_ceil(32)).ok_or(Error::LengthMismatch {
        op: OP,
        what: "work items",
        expected: usize::MAX,
        got: s.rows(),
    })?;
    check_spmm_alias(OP, gpu, s, &s_values, &b, &mut c)?;
    if spmm_xst_uses_tensor_cores::<T>(bs.cols, s.rows(), s.cols(), s.nnz()) {
        // Cᵀ (n x m) = Bᵀ (n x k) · Sᵀ: spmm_xst's tensor-core kernel with X = Bᵀ and Y = Cᵀ (views of the same
        // elements; row-major B is column-major Bᵀ, read along its contiguous rows by the `_xcol` kernel).
        return spmm_xst_tensor_cores(OP, gpu, s, &s_values, &b.into_transposed(), alpha, beta, &mut c.into_transposed());
    }
    // Row-major B with 16-byte-aligned rows is already what spmm_xst's wide kernel reads (Xt: rows of the
    // contiguous dimension): from n = 64, lanes across j, 4 per lane, one vector load each (bitwise the same
    // fmaf chains). The rows' padding up to a multiple of 4 elements must be inside B's buffer.
    let (n, k, ld) = (bs.cols, s.cols(), bs.row_stride());
    let b_rows_vectorizable = bs.col_stride() == 1
        && ld % 8 == 0
        && b.data().addr_range(gpu).aligned_to(16)
        && (k == 0 || (k - 1).checked_mul(ld).and_then(|x| x.checked_add(n.div_ceil(4) * 4)).is_some_and(|need| b.data().len() >= need));
    if n >= WIDE_T_MIN && b_rows_vectorizable && !path_forced("vec") {
        let warps = s.rows().checked_mul(n.div_ceil(WIDE_T)).ok_or(Error::LengthMismatch { op: OP, what: "work items", expected: usize::MAX, got: s.rows() })?;
        // The wide kernel writes out[(j, r)] for (row r of S, column j): C seen as its transpose.
        let mut ct = c.into_transposed();
        // SAFETY: every column of S is < k (the kernel gathers only at columns of S's entries); lane l of the warp
        // for j-chunk q loads b[col * ld + 128 q + 4 l .. + 4] when 128 q + 4 l < n (so + 4 <= round_up(n, 4)), else
        // b[col * ld .. + 4] (the pipelined kernel, n >= 64; the serial one loads nothing), and the buffer holds
        // (k - 1) * ld + round_up(n, 4) elements or more (checked above), so even the last row's padded 4-vector is
        // inside it, whatever ld (a column slice of a wider matrix has ld well above n); ld is a multiple of 8 and
        // the start 16-byte aligned, so the loads are
        // aligned; C (m x n, validated) is written at (r, j) for j < n through its transposed view (the same
        // elements); no aliasing (checked above); sizes fit u32; one warp per (row of S, 128 columns of B), surplus
        // warps return.
        return unsafe { launch_spmm(OP, &wide_kernel::<T>(), gpu, s, &s_values, b.data(), &[KernelArg::U64(ld as u64)], n, warps, alpha, beta, &mut ct) };
    }
    let layout = [KernelArg::U64(bs.row_stride() as u64), KernelArg::U64(bs.col_stride() as u64)];
    // One warp per 32 columns at every n below the wide kernel's range, however narrow B: lane groups of 16, 8 and
    // 4 lanes per row (several rows per warp, fewer idle lanes) each lost to it on an H200 at n = 16 (a5e77c2:
    // this kernel took 0.76-0.83x their time), 8 (5f7e50a: 0.64-0.74x), 4 (006fb66: 0.58-0.62x), 2 and 1 (c2ade3a:
    // 0.57-0.69x), at 1% and 5% of 4096², and were removed.
    // SAFETY: shapes checked above: B is k x n with every column of S < k, read at (col(e), j) for j < n; C is
    // m x n, written at (r, j) for r < m, j < n; no aliasing (checked above); n fits u32 (checked), m and k by
    // S's index type; one warp per (row, 32 columns), surplus warps return.
    unsafe { launch_spmm(OP, &format!("spmm_sb_{}", T::DTYPE.name()), gpu, s, &s_values, b.data(), &layout, bs.cols, warps, alpha, beta, &mut c) }
}

#[cfg(all(test, feature = "emulator"))]
mod tests {
    use super::*;

    /// A scratch overlapping an operand is refused before anything runs (the safe API cannot build such views; the
    /// emulator's test-only view can).
    #[test]
    fn a_scratch_overlapping_an_operand_is_refused() {
        use crate::device::overlapping_view_for_tests;
        let gpu = Gpu::emulated(crate::device::Schedule::RoundRobin);
        let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
        let ds = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let vals = gpu.upload(&[1f32, 2.0]).unwrap();
        let buf = gpu.upload(&[1f32; 64]).unwrap();
        let mut y = gpu.upload(&[7f32; 8]).unwrap();
        let x = DeviceMatRef::row_major(buf.slice(0..12), 4, 3).unwrap();
        // SAFETY: the op refuses the view before launching, so nothing is written through it.
        let scratch = unsafe { overlapping_view_for_tests(&buf, 8..40) };
        let e = spmm_xst_with_scratch(&gpu, &ds, &vals, x, 1.0, 0.0, DeviceMatMut::row_major(&mut y, 4, 2).unwrap(), scratch).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "spmm_xst_with_scratch", output: "scratch", input: "x" });
        assert_eq!(gpu.download(&y).unwrap(), vec![7f32; 8]);
    }

    /// The lane-group rule: G follows ldt while the longest row is short or small against the work, and drops
    /// (to 2, then 1) when one row would outlast the rest.
    #[test]
    fn vec_lane_group_follows_ldt_and_backs_off_for_long_rows() {
        let gpu = Gpu::emulated(crate::device::Schedule::RoundRobin);
        // 64 rows of 100 entries: L = 100, L * 4 = 400 <= 512.
        let uniform: Vec<(usize, usize)> = (0..64).flat_map(|r| (0..100).map(move |c| (r, c * 3))).collect();
        let p = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(64, 300, &uniform).unwrap()).unwrap();
        for (t, g) in [(3, 1), (8, 1), (9, 2), (16, 2), (17, 4), (32, 4), (63, 4)] {
            assert_eq!(vec_lane_group(&gpu, &p, t, t.div_ceil(8) * 8).unwrap(), g, "T = {t}");
        }
        // Add one row of 200 entries: L * 4 = 800 > 512 and 800 * 20000 > nnz * T, but L * 2 = 400 fits.
        let mut skewed = uniform.clone();
        skewed.retain(|&(r, _)| r != 5);
        skewed.extend((0..200).map(|c| (5, c)));
        let p = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(64, 300, &skewed).unwrap()).unwrap();
        assert_eq!(vec_lane_group(&gpu, &p, 32, 32).unwrap(), 2);
        // A row of 300 entries: L * 2 = 600 > 512 as well: one lane per entry.
        skewed.retain(|&(r, _)| r != 5);
        skewed.extend((0..300).map(|c| (5, c)));
        let p = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(64, 300, &skewed).unwrap()).unwrap();
        assert_eq!(vec_lane_group(&gpu, &p, 32, 32).unwrap(), 1);
        assert_eq!(vec_lane_group(&gpu, &p, 16, 16).unwrap(), 1);
    }

    /// The decode rule: a warp per row while the longest row is within 4x the mean + 64, the block kernel beyond;
    /// an empty pattern takes the warp kernel (nothing to balance).
    #[test]
    fn decode_takes_a_warp_per_row_unless_one_row_is_far_longer_than_the_mean() {
        let gpu = Gpu::emulated(crate::device::Schedule::RoundRobin);
        // 100 rows of 50 entries, then row 7 grown: mean ~50, the cut at 4 * mean + 64 ~ 264.
        let with_row7 = |len: usize| {
            let coo: Vec<(usize, usize)> = (0..100).flat_map(|r| (0..if r == 7 { len } else { 50 }).map(move |c| (r, c))).collect();
            DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(100, 1000, &coo).unwrap()).unwrap()
        };
        assert!(t_le2_uses_row_warps(&gpu, &with_row7(50)).unwrap());
        assert!(t_le2_uses_row_warps(&gpu, &with_row7(260)).unwrap()); // mean 52: cut 272
        assert!(!t_le2_uses_row_warps(&gpu, &with_row7(300)).unwrap()); // mean 52: cut 272
        assert!(!t_le2_uses_row_warps(&gpu, &with_row7(1000)).unwrap());
        let empty = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(0, 5, &[]).unwrap()).unwrap();
        assert!(t_le2_uses_row_warps(&gpu, &empty).unwrap());
    }
}

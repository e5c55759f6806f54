//! SDDMM, the sampled dense-dense matrix product, at the entries of a CSR pattern: the weight gradient of a sparse
//! Linear layer computed only where the weight has trainable entries, returned as values aligned with the
//! pattern's CSR order (never a dense `out x in` matrix). Kernels: `cuda/sddmm.cu`.
//!
//! Two forms:
//! - [`sddmm`] (textbook): `C[e] ← α·⟨A[row(e), :], B[col(e), :]⟩ + β·C[e]` with `A: m x K`, `B: n x K`.
//! - [`sddmm_weight_grad`] (what a sparse Linear needs): `dS[e] ← α·⟨dY[:, row(e)], X[:, col(e)]⟩ + β·dS[e]` with
//!   activations `X: T x in` and output gradients `dY: T x out` stored row-major as frameworks keep them, i.e.
//!   `dS = (dYᵀ·X)` at S's entries: the textbook form with `A = dYᵀ`, `B = Xᵀ` and `K = T`.
//!
//! Values are f32, f16 or bf16 (A, B and the output of one type); products are accumulated in f32 with fused
//! multiply-adds (or tensor-core mma, below) and the output is rounded once. β = 0 never reads the old output (NaN
//! there is ignored). No atomics: every entry is written by one lane, and the summation order depends only on K,
//! the dtype and the sizes (which kernel runs), so the same inputs give bitwise the same outputs run to run (and
//! on every emulator schedule), whatever the operands' layout or alignment. Across devices the CUDA-core kernel is
//! bitwise the same; the tensor-core kernel is not (the hardware's mma accumulation order is unspecified), only
//! within the accuracy bound below.
//!
//! # Design (details in `cuda/sddmm.cu`)
//! - **Form 2** runs one kernel. Each warp owns a fixed-size chunk of consecutive entries (not a row), so power-law
//!   row lengths cannot leave one warp with most of the work: a long row is split across many warps, each writing
//!   whole entries. Lanes form groups of `G = min(32, next_pow2(⌈K/V⌉))` lanes per entry (`V` = elements per 16
//!   bytes), so small K still fills the warp (K = 16 in bf16: 16 entries per warp instruction) and large K strides
//!   lanes over K with 16-byte loads. Within a row, a lane's A vector is loaded once for the 4 entries its group
//!   carries. Rows not 16-byte aligned, or with a strided K direction (column-major operands), use the same
//!   partition with scalar loads: correct, bitwise the same result, but uncoalesced when K is strided.
//! - **Form 1** has K = T strided in both operands (consecutive tokens are a whole row apart), which would make
//!   every load a separate 32-byte sector. It first packs `dYᵀ` and `Xᵀ` into caller-provided scratch with a
//!   tiled shared-memory transpose (rows padded to 16 bytes), then runs form 2 on them. Extra memory:
//!   [`sddmm_weight_grad_scratch_len`] elements, `⌈T/V⌉·V·(out + in)` (62 MB for T = 2048 tokens of an
//!   11008 x 4096 layer in bf16); extra traffic: one read and one write of dY and X. An operand already passed
//!   column-major (`T` contiguous) is used in place and needs no scratch.
//!
//! - **Tensor cores**, opt-in and off by default (f16/bf16, K ≥ 64, at least one entry per 64 elements of the
//!   `m x n` pattern, ~1.6%; `sddmm_uses_tensor_cores`): one block per strip of four 64 x 64 tiles along a band
//!   of 64 rows computes each tile's whole dense product `A[r0.., :]·B[c0.., :]ᵀ` with mma.sync m16n8k16 (K staged
//!   through shared memory in chunks of 32, 16-byte loads where the rows allow, element loads otherwise), then
//!   writes the tile's entries: each row keeps a cursor into its sorted entries (one binary search per row and
//!   strip, while the first K chunk loads), a warp reads 32 column indices from it at once and writes those inside
//!   the tile; empty tiles are skipped, and the next tile's first chunk loads during a tile's writes. Reads 128 rows of K per tile from L2 instead of one B row per entry, and
//!   runs the `64·64·K` multiply-adds at tensor-core rates: the regime where the CUDA-core kernel is L2-bound
//!   (K = T = 128 and above at a few percent density; 0.31x dense at 5%, K = 128 on an H200). Measured on an
//!   H200 it was nonetheless 1.08-1.25x slower than the CUDA-core kernel at 5% and K = 128 and 2048, so it runs
//!   only when opted in (`SLR_SDDMM_PATH=tc`, for the benchmarks' comparison).
//! - The CUDA-core kernel loads the next batch's column indices while the current batch's B rows arrive (one
//!   dependent round trip per batch instead of two), issues a K slot's A and B loads together before its FMAs (one
//!   round trip per slot instead of four for f16/bf16) and finds its warp's first row by a 32-way warp search;
//!   unmeasured. `SLR_SDDMM_PATH=serial` runs the kernel without these, for the benchmarks' comparison (bitwise the
//!   same results).
//!
//! # Floor
//! `2·nnz·K` flops on CUDA cores, and from memory at least the A rows with entries and the B rows named by a
//! column (`(m + n)·K` elements at most), `4·(m + 1 + nnz)` bytes of indices and `nnz` outputs (read too when
//! β ≠ 0). Every entry streams its B row through L2 (`nnz·K` elements), which bounds the kernel at large K and
//! density: for 11008 x 4096 at 5% and K = 2048 in bf16 that is 9.2 GB of L2 reads and 9.2 GFLOP, where a dense
//! tensor-core GEMM of the whole `dYᵀ·X` (185 GFLOP at ~700 TFLOP/s) followed by a gather may be faster. SDDMM
//! wins at low density and small-to-moderate T, and always on memory (no dense `out x in` buffer).
//!
//! # Accuracy
//! With `u = 2⁻²⁴`, `γₙ = n·u/(1 − n·u)` and `M = |α|·Σₖ|A[r,k]·B[c,k]| + |β·C[e]|` (the β term only when β ≠ 0),
//! both the kernel and the CPU reference compute the f32 value `v = α·dot + β·C[e]` with at most K + 2 roundings
//! along any path (the kernel's lane sums plus its butterfly are never deeper than K), so each is within
//! `γ_{K+2}·M` of the exact value and they differ by at most `2·γ_{K+2}·M`. Rounding to the output type adds
//! `u_T·|v|` on each side (`u_T` = 2⁻¹¹ for f16, 2⁻⁸ for bf16, 0 for f32) plus half a subnormal step. On the
//! tensor-core path the products of 16-bit values are exact in f32 but the mma's additions are only specified to
//! "at least single precision", so its error is taken as up to `2·γ_{K+2}·M` (one ulp per addition) and the
//! difference to the CPU as `3·γ_{K+2}·M`. The tests hold each path to its bound (tests/sddmm.rs).
use crate::csr::{CsrPattern, DeviceCsrPattern, Index};
use crate::dense::{Layout, MatRef};
use crate::device::{check_no_alias, DeviceMatRef, DeviceSliceMut, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, Error, Result};

const MODULE: &str = "sddmm";
/// Warps per block of the sddmm kernel (`kWarpsPerBlock` in cuda/sddmm.cu).
const WARPS_PER_BLOCK: u32 = 8;
/// Entries a lane group carries per sweep over K, times sweeps per warp (`kEntriesPerGroup * kBatchesPerWarp`).
const ENTRIES_PER_GROUP_PER_WARP: usize = 16;
/// Transpose tile edge and the thread rows that walk it (`kTile`, `kTileRows`).
const TILE: u32 = 32;
const TILE_ROWS: u32 = 8;
/// sddmm_transpose_vec's tile (cuda/sddmm.cu kVecTile; 16 x 16 threads, 4 elements each).
const VEC_TILE: u32 = 64;
/// Tensor-core kernel (`sddmm_tc_<T>`): output tile side, tiles per block (a strip along the columns, cuda/sddmm.cu
/// kTcStripTiles), threads per block.
const TC_TILE: usize = 64;
const TC_STRIP_TILES: usize = 4;
const TC_THREADS: u32 = 128;
/// The tensor-core kernel computes every output of a non-empty 64 x 64 tile (64·64·K multiply-adds on tensor
/// cores, the tile's A and B rows read once) where the CUDA-core kernel reads one B row per entry from L2. Opted in
/// ([`crate::opt_in_tensor_cores_on_this_thread`], `SLR_SDDMM_PATH=tc`) it is taken for f16/bf16 from K = 64 when
/// the pattern averages at least one entry per 64 tile elements (nnz·64 >= rows·cols, ~1.6%). Off by default: on
/// an H200 (a5e77c2) it took 1.08-1.25x the CUDA-core kernel's time in all 8 cases measured (sddmm and
/// sddmm_weight_grad at 5% of 4096² and 11008 x 4096, K = 128 and 2048; e.g. 104 against 83 µs at 4096², K = 128).
const TC_K_MIN: usize = 64;
const TC_AREA_PER_ENTRY: usize = 64;

/// Whether [`sddmm`] and [`sddmm_weight_grad`] run on tensor cores for these sizes: only when opted in on this
/// thread or by `SLR_SDDMM_PATH=tc` (see `TC_K_MIN` in the source). Then the results are deterministic run to run and independent of the operands' layout, but not
/// bitwise those of the CUDA-core kernel, the CPU reference or another device (the mma's accumulation order is
/// unspecified); they stay within the same f32 bound. For tests and benchmarks.
#[doc(hidden)]
pub fn sddmm_uses_tensor_cores<T: Element>(rows: usize, cols: usize, k: usize, nnz: usize) -> bool {
    T::DTYPE.size() == 2
        && k >= TC_K_MIN
        && nnz.saturating_mul(TC_AREA_PER_ENTRY) >= rows.saturating_mul(cols)
        && rows.div_ceil(TC_TILE) <= 65535
        && cols.div_ceil(TC_TILE) <= i32::MAX as usize
        && !crate::path_switch("SLR_SDDMM_PATH", "simt")
        && crate::tensor_cores_opted_in("SLR_SDDMM_PATH")
}
/// CUDA's limit on gridDim.y; the transpose strides over column tiles beyond it.
const MAX_GRID_Y: usize = 65_535;

/// Elements of `T` per 16-byte slot: the unit of the kernel's K partition and its vector loads.
fn slot_elems<T: Element>() -> usize {
    16 / T::DTYPE.size()
}

/// log2 of the lane-group size for a given K: `G = min(32, next_pow2(⌈K/V⌉))`, 1 for K = 0.
fn log2_group<T: Element>(k: usize) -> u32 {
    k.div_ceil(slot_elems::<T>()).max(1).next_power_of_two().min(32).trailing_zeros()
}

/// Scratch elements [`sddmm_weight_grad`] needs at most: `dYᵀ` (`out_features` rows) and `Xᵀ` (`in_features`
/// rows) packed with `tokens` rounded up to a whole 16-byte slot per row. Saturates at `usize::MAX`.
pub fn sddmm_weight_grad_scratch_len<T: Element>(tokens: usize, out_features: usize, in_features: usize) -> usize {
    let v = slot_elems::<T>();
    let ld = tokens.div_ceil(v).saturating_mul(v);
    ld.saturating_mul(out_features.saturating_add(in_features))
}

/// A is `rows x K` and B is `cols x K` for a `rows x cols` pattern, with the same K (A's column count).
fn check_textbook_shapes(op: &'static str, pattern: (usize, usize), a: (usize, usize), b: (usize, usize)) -> Result<()> {
    let k = a.1;
    if a.0 != pattern.0 {
        return Err(Error::ShapeMismatch { op, what: "a", expected: (pattern.0, k), got: a });
    }
    if b != (pattern.1, k) {
        return Err(Error::ShapeMismatch { op, what: "b", expected: (pattern.1, k), got: b });
    }
    Ok(())
}

/// dY is `T x rows` and X is `T x cols` for a `rows x cols` pattern, with the same T (dY's row count).
fn check_weight_grad_shapes(op: &'static str, pattern: (usize, usize), dy: (usize, usize), x: (usize, usize)) -> Result<()> {
    let t = dy.0;
    if dy.1 != pattern.0 {
        return Err(Error::ShapeMismatch { op, what: "dy", expected: (t, pattern.0), got: dy });
    }
    if x != (t, pattern.1) {
        return Err(Error::ShapeMismatch { op, what: "x", expected: (t, pattern.1), got: x });
    }
    Ok(())
}

/// K is a 32-bit kernel argument.
fn check_k(op: &'static str, k: usize) -> Result<u32> {
    crate::error::check_kernel_count(op, "K", k)?;
    Ok(k as u32)
}

/// The pattern's rows and columns within [`crate::KERNEL_COUNT_MAX`]: the tensor-core kernel counts 64-column tiles
/// in 32 bits (a u32 pattern within 64 columns of 2^32 gave 0 tiles and left the output unwritten).
fn check_pattern_dims<I: Index>(op: &'static str, pattern: &DeviceCsrPattern<I>) -> Result<()> {
    crate::error::check_kernel_count(op, "rows of the pattern", pattern.rows())?;
    crate::error::check_kernel_count(op, "columns of the pattern", pattern.cols())
}

/// The same matrix seen transposed: a `rows x cols` view becomes `cols x rows` over the same memory.
fn transposed<T: Copy>(m: MatRef<'_, T>) -> Result<MatRef<'_, T>> {
    let s = m.shape();
    let layout = match s.layout {
        Layout::RowMajor => Layout::ColMajor,
        Layout::ColMajor => Layout::RowMajor,
    };
    MatRef::new(m.data(), s.cols, s.rows, s.ld, layout)
}

/// CPU reference: `out[e] ← α·⟨A[row(e), :], B[col(e), :]⟩ + β·out[e]` for every entry `e` of `pattern`.
///
/// `a` is `pattern.rows() x K`, `b` is `pattern.cols() x K` (either layout, any valid leading dimension);
/// `out.len() == pattern.nnz()`. The dot product is summed in f32 in increasing k, one fused multiply-add per
/// term; then `v = α·dot`, `v = fma(β, out[e], v)` only when β ≠ 0 (so β = 0 ignores NaN in `out`), rounded once
/// to `T`. K = 0 gives `β·out[e]` (0 when β = 0). Errors on a shape or length mismatch and leaves `out`
/// untouched.
pub fn sddmm_cpu<T: Element, I: Index>(
    pattern: &CsrPattern<I>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    alpha: f32,
    beta: f32,
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "sddmm_cpu";
    check_textbook_shapes(OP, (pattern.rows(), pattern.cols()), (a.rows(), a.cols()), (b.rows(), b.cols()))?;
    check_len(OP, "out", pattern.nnz(), out.len())?;
    let k = a.cols();
    for (e, r, c) in pattern.iter() {
        let mut dot = 0f32;
        for kk in 0..k {
            dot = a.get(r, kk).to_f32().mul_add(b.get(c, kk).to_f32(), dot);
        }
        let mut v = alpha * dot;
        if beta != 0.0 {
            v = beta.mul_add(out[e].to_f32(), v);
        }
        out[e] = T::from_f32(v);
    }
    Ok(())
}

/// CPU reference of the weight gradient: `ds[e] ← α·Σₜ dY[t, row(e)]·X[t, col(e)] + β·ds[e]` for every entry `e`.
///
/// `dy` is `T x pattern.rows()` (output gradients), `x` is `T x pattern.cols()` (activations), either layout;
/// `ds.len() == pattern.nnz()`. Exactly [`sddmm_cpu`] with `A = dYᵀ`, `B = Xᵀ` (same arithmetic, bitwise).
/// Errors on a shape or length mismatch and leaves `ds` untouched.
pub fn sddmm_weight_grad_cpu<T: Element, I: Index>(
    pattern: &CsrPattern<I>,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    alpha: f32,
    beta: f32,
    ds: &mut [T],
) -> Result<()> {
    const OP: &str = "sddmm_weight_grad_cpu";
    check_weight_grad_shapes(OP, (pattern.rows(), pattern.cols()), (dy.rows(), dy.cols()), (x.rows(), x.cols()))?;
    check_len(OP, "ds", pattern.nnz(), ds.len())?;
    sddmm_cpu(pattern, transposed(dy)?, transposed(x)?, alpha, beta, ds)
}

/// One sddmm operand as the kernel reads it: `X[r, k]` at `ptr + r * row_stride + k * col_stride` elements.
#[derive(Clone, Copy)]
struct Operand {
    ptr: KernelArg,
    row_stride: usize,
    col_stride: usize,
}

/// Queues the sddmm kernel.
///
/// # Safety
/// `a` addresses `rows x k` elements and `b` `cols x k` elements of `T` at their strides (every `r < rows`,
/// `c < cols`, `kk < k` in bounds of live buffers of `gpu`'s backend); `row_offsets`/`col_indices` are a validated
/// CSR pattern of `rows x cols` with `nnz` entries on that backend; `out` has `nnz` elements and overlaps none of
/// the inputs; `nnz > 0`, `rows`, `cols`, `nnz` and `k` fit in u32.
#[allow(clippy::too_many_arguments)]
unsafe fn launch_sddmm<T: Element>(
    gpu: &Gpu,
    op: &'static str,
    a: Operand,
    b: Operand,
    row_offsets: KernelArg,
    col_indices: KernelArg,
    rows: usize,
    cols: usize,
    nnz: usize,
    k: u32,
    alpha: f32,
    beta: f32,
    out: KernelArg,
) -> Result<()> {
    // Both kernels take (a, a_rs, a_cs, b, b_rs, b_cs, row_offsets, col_indices, rows, <size>, k, <mode>, alpha,
    // beta, out): <size> is cols for the tensor-core kernel and nnz for the CUDA-core one, <mode> the staging
    // flags or log2 of the lane-group size.
    let args = |size: usize, mode: u32| {
        [
            a.ptr,
            KernelArg::U64(a.row_stride as u64),
            KernelArg::U64(a.col_stride as u64),
            b.ptr,
            KernelArg::U64(b.row_stride as u64),
            KernelArg::U64(b.col_stride as u64),
            row_offsets,
            col_indices,
            KernelArg::U32(rows as u32),
            KernelArg::U32(size as u32),
            KernelArg::U32(k),
            KernelArg::U32(mode),
            KernelArg::F32(alpha),
            KernelArg::F32(beta),
            out,
        ]
    };
    if sddmm_uses_tensor_cores::<T>(rows, cols, k as usize, nnz) {
        // 16-byte staging loads where an operand's rows are K-contiguous, start 16-byte aligned and are a multiple
        // of 8 elements apart; element loads otherwise (the same values).
        let vec = |o: &Operand| match o.ptr {
            KernelArg::Ptr(p) => o.col_stride == 1 && o.row_stride.is_multiple_of(8) && p.is_multiple_of(16),
            _ => false,
        };
        let flags = vec(&a) as u32 | (vec(&b) as u32) << 1;
        let launch = LaunchShape { grid: (cols.div_ceil(TC_TILE).div_ceil(TC_STRIP_TILES) as u32, rows.div_ceil(TC_TILE) as u32, 1), block: (TC_THREADS, 1, 1), shared_bytes: 0 };
        // SAFETY: the caller's contract; block (x, y) reads A rows y·64.. and B rows of its tiles' columns
        // (x·4·64.., 4 = TC_STRIP_TILES = kTcStripTiles) only below rows / cols and K elements only below k (zero
        // past them), row_offsets[r..=r + 1] for its rows r < rows and col_indices only inside those rows' ranges
        // (cursors move within [row start, row end)), and writes out[e] for the pattern's entries e in its tiles
        // (e < nnz); 16-byte loads only where `flags` says the rows allow them; grid sizes checked by
        // sddmm_uses_tensor_cores (fewer blocks along x than tiles); the argument list matches SLR_SDDMM_TC.
        return unsafe { gpu.launch(MODULE, &format!("sddmm_tc_{}", T::DTYPE.name()), launch, &args(cols, flags)) };
    }
    let log2_group = log2_group::<T>(k as usize);
    let entries_per_warp = ENTRIES_PER_GROUP_PER_WARP << (5 - log2_group);
    let launch = LaunchShape::linear(op, nnz.div_ceil(entries_per_warp) * 32, WARPS_PER_BLOCK * 32)?;
    // SAFETY: the caller's contract (see # Safety) is what the kernel trusts; the argument list matches SLR_SDDMM.
    // `SLR_SDDMM_PATH=serial`: the kernel without its column-index prefetch (bitwise the same results), for the
    // benchmarks' comparison.
    let variant = if crate::path_switch("SLR_SDDMM_PATH", "serial") { "serial_" } else { "" };
    unsafe { gpu.launch(MODULE, &format!("sddmm_{variant}{}", T::DTYPE.name()), launch, &args(nnz, log2_group)) }
}

/// Queues the transpose `dst[r * dst_ld + kk] = src[r * src.row_stride + kk * src.col_stride]`, `r < rows`, `kk < k`.
///
/// # Safety
/// `src` addresses `rows x k` elements at its strides inside a live buffer of `gpu`'s backend; `dst` has at least
/// `(rows - 1) * dst_ld + k` elements there, `dst_ld >= k`, and does not overlap `src`; `rows`, `k` > 0 and fit in u32.
unsafe fn launch_transpose<T: Element>(gpu: &Gpu, src: Operand, rows: usize, k: usize, dst: KernelArg, dst_ld: usize) -> Result<()> {
    // 4 elements per access (sddmm_transpose_vec) where r is contiguous in the source and every 4-element group
    // on both sides starts on a 4 · sizeof(T) boundary: the weight gradient's dY and X as frameworks store them.
    let quad = 4 * std::mem::size_of::<T>();
    let aligned = |p: KernelArg, stride: usize| matches!(p, KernelArg::Ptr(a) if a.is_multiple_of(quad as u64)) && (stride * std::mem::size_of::<T>()).is_multiple_of(quad);
    // (k + 64 within u32: the kernel forms its destination column in 32 bits.)
    if src.row_stride == 1 && aligned(src.ptr, src.col_stride) && aligned(dst, dst_ld) && k <= (u32::MAX - 64) as usize {
        let grid_x = u32::try_from(rows.div_ceil(VEC_TILE as usize))
            .map_err(|_| Error::LengthMismatch { op: "sddmm_transpose", what: "rows (grid too large)", expected: u32::MAX as usize, got: rows })?;
        let grid_y = k.div_ceil(VEC_TILE as usize).min(MAX_GRID_Y) as u32;
        let launch = LaunchShape { grid: (grid_x, grid_y, 1), block: (VEC_TILE / 4, VEC_TILE / 4, 1), shared_bytes: 0 };
        let kernel = format!("sddmm_transpose_vec_{}", T::DTYPE.name());
        // SAFETY: the caller's contract (see # Safety), with unit row stride in the source and the 4-element
        // alignment of both pointers and strides just checked (the kernel's 8- or 16-byte accesses start only at
        // r and k multiples of 4 and cover whole groups below rows and k; the rest are element accesses); the
        // argument list matches SLR_SDDMM_TRANSPOSE_VEC.
        return unsafe {
            gpu.launch(
                MODULE,
                &kernel,
                launch,
                &[src.ptr, KernelArg::U64(src.col_stride as u64), KernelArg::U32(rows as u32), KernelArg::U32(k as u32), dst, KernelArg::U64(dst_ld as u64)],
            )
        };
    }
    let grid_x = u32::try_from(rows.div_ceil(TILE as usize))
        .map_err(|_| Error::LengthMismatch { op: "sddmm_transpose", what: "rows (grid too large)", expected: u32::MAX as usize, got: rows })?;
    let grid_y = k.div_ceil(TILE as usize).min(MAX_GRID_Y) as u32;
    let launch = LaunchShape { grid: (grid_x, grid_y, 1), block: (TILE, TILE_ROWS, 1), shared_bytes: 0 };
    let kernel = format!("sddmm_transpose_{}", T::DTYPE.name());
    // SAFETY: the caller's contract (see # Safety); the argument list matches SLR_SDDMM_TRANSPOSE.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel,
            launch,
            &[
                src.ptr,
                KernelArg::U64(src.row_stride as u64),
                KernelArg::U64(src.col_stride as u64),
                KernelArg::U32(rows as u32),
                KernelArg::U32(k as u32),
                dst,
                KernelArg::U64(dst_ld as u64),
            ],
        )
    }
}

/// `out[e] ← α·⟨A[row(e), :], B[col(e), :]⟩ + β·out[e]` on the device for every entry `e` of `pattern`;
/// asynchronous on `gpu`'s stream.
///
/// Shapes: `a` is `pattern.rows() x K`, `b` is `pattern.cols() x K`; `out.len() == pattern.nnz()`, values in CSR
/// order. Row-major operands with 16-byte aligned rows are read with 16-byte loads; other layouts and alignments
/// give bitwise the same result through scalar loads (uncoalesced when K is strided: see [`sddmm_weight_grad`]).
/// f32 accumulation, one rounding; β = 0 never reads `out`; deterministic; agrees with [`sddmm_cpu`] within the
/// bound in the module docs. Errors (nothing is launched): shape mismatch (`a` rows vs pattern rows, `b` rows vs pattern
/// columns, K of `b` vs `a`), `out` length, K or the pattern's rows or columns above [`crate::KERNEL_COUNT_MAX`] (`TooLarge`), `out` overlapping an input, buffers from another
/// backend. Floor: `2·nnz·K` flops; `(m + n)·K` elements, the indices and `nnz` outputs from memory, and `nnz·K`
/// elements of B through L2.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // C[e] = <A[row(e)], B[col(e)]> at the pattern's two entries only (A: 2 x 2, B: 3 x 2, row-major).
/// let pattern = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(2, 3, &[(0, 2), (1, 0)])?)?;
/// let a = gpu.upload(&[1.0f32, 2.0, 3.0, 4.0])?;
/// let b = gpu.upload(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0])?;
/// let mut c = gpu.alloc_zeros::<f32>(2)?;
/// sddmm(&gpu, &pattern, DeviceMatRef::row_major(&a, 2, 2)?, DeviceMatRef::row_major(&b, 3, 2)?, 1.0, 0.0, &mut c)?;
/// assert_eq!(gpu.download(&c)?, vec![3.0, 3.0]);
/// # Ok(()) }
/// ```
pub fn sddmm<'a, T: Element, I: Index>(
    gpu: &Gpu,
    pattern: &DeviceCsrPattern<I>,
    a: DeviceMatRef<'_, T>,
    b: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    out: impl Into<DeviceSliceMut<'a, T>>,
) -> Result<()> {
    const OP: &str = "sddmm";
    let mut out = out.into();
    let (sa, sb) = (a.shape(), b.shape());
    check_textbook_shapes(OP, (pattern.rows(), pattern.cols()), (sa.rows, sa.cols), (sb.rows, sb.cols))?;
    check_len(OP, "out", pattern.nnz(), out.len())?;
    let k = check_k(OP, sa.cols)?;
    check_pattern_dims(OP, pattern)?;
    let (offsets, cols) = (pattern.row_offsets(), pattern.col_indices());
    check_no_alias(
        OP,
        ("out", out.addr_range(gpu)),
        &[
            ("a", a.data().addr_range(gpu)),
            ("b", b.data().addr_range(gpu)),
            ("row_offsets", offsets.addr_range(gpu)),
            ("col_indices", cols.addr_range(gpu)),
        ],
    )?;
    let (p_a, _g0) = a.data().kernel_ptr(gpu, OP, "a")?;
    let (p_b, _g1) = b.data().kernel_ptr(gpu, OP, "b")?;
    let (p_off, _g2) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
    let (p_col, _g3) = cols.kernel_ptr(gpu, OP, "col_indices")?;
    let (p_out, _g4) = out.kernel_ptr_mut(gpu, OP, "out")?;
    if pattern.nnz() == 0 {
        return Ok(());
    }
    let a_op = Operand { ptr: p_a, row_stride: sa.row_stride(), col_stride: sa.col_stride() };
    let b_op = Operand { ptr: p_b, row_stride: sb.row_stride(), col_stride: sb.col_stride() };
    // SAFETY: a is pattern.rows() x K and b is pattern.cols() x K (checked above), and DenseShape::validate showed
    // every element of each shape lies inside its buffer; the pattern is a validated DeviceCsrPattern with nnz
    // entries whose rows/columns index those shapes; out has exactly nnz elements and overlaps no input (checked
    // above); every pointer is on gpu's backend (kernel_ptr checked); nnz > 0; rows and nnz fit the u32 index type
    // the pattern was validated for, K by check_k.
    unsafe { launch_sddmm::<T>(gpu, OP, a_op, b_op, p_off, p_col, pattern.rows(), pattern.cols(), pattern.nnz(), k, alpha, beta, p_out) }
}

/// The weight gradient of a sparse Linear layer at its trainable entries, on the device:
/// `ds[e] ← α·Σₜ dY[t, row(e)]·X[t, col(e)] + β·ds[e]` for every entry `e` of `pattern` (S: `out x in`), i.e.
/// `dS = dYᵀ·X` sampled at S; asynchronous on `gpu`'s stream.
///
/// Shapes: `dy` is `T x out` (output gradients), `x` is `T x in` (activations), as frameworks store them
/// (row-major; any layout and leading dimension is accepted); `ds.len() == pattern.nnz()`, values in CSR order.
/// `scratch` holds the operands re-packed with T contiguous: at most [`sddmm_weight_grad_scratch_len`]`(T, out,
/// in)` elements, less when an operand is already column-major (T contiguous: used in place). Its contents on
/// return are unspecified. Same arithmetic, determinism and accuracy as [`sddmm`] with K = T.
///
/// Errors (nothing is launched): shape mismatch (`dy` columns vs pattern rows, `x` vs `T x pattern.cols()`), `ds`
/// length, `scratch` too small (`BufferTooSmall`), T or the pattern's rows or columns above [`crate::KERNEL_COUNT_MAX`] (`TooLarge`), `ds` or `scratch` overlapping an input or
/// each other, buffers from another backend. Floor: `2·nnz·T` flops; dY and X read once, the indices, `nnz`
/// outputs; this implementation adds one write and one read of the packed copies.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// let (t, out_f, in_f) = (4, 3, 2);
/// let s = CsrPattern::<u32>::from_coo(out_f, in_f, &[(0, 1), (2, 0)])?;
/// let dy = gpu.upload(&vec![1.0f32; t * out_f])?;
/// let x = gpu.upload(&vec![0.5f32; t * in_f])?;
/// let mut ds = gpu.alloc_zeros::<f32>(s.nnz())?;
/// let mut scratch = gpu.alloc_zeros::<f32>(sddmm_weight_grad_scratch_len::<f32>(t, out_f, in_f))?;
/// let dpat = DeviceCsrPattern::upload(&gpu, &s)?;
/// sddmm_weight_grad(&gpu, &dpat, DeviceMatRef::row_major(&dy, t, out_f)?, DeviceMatRef::row_major(&x, t, in_f)?,
///                   1.0, 0.0, &mut ds, &mut scratch)?;
/// assert_eq!(gpu.download(&ds)?, vec![2.0, 2.0]);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sddmm_weight_grad<'a, 's, T: Element, I: Index>(
    gpu: &Gpu,
    pattern: &DeviceCsrPattern<I>,
    dy: DeviceMatRef<'_, T>,
    x: DeviceMatRef<'_, T>,
    alpha: f32,
    beta: f32,
    ds: impl Into<DeviceSliceMut<'a, T>>,
    scratch: impl Into<DeviceSliceMut<'s, T>>,
) -> Result<()> {
    const OP: &str = "sddmm_weight_grad";
    let (mut ds, mut scratch) = (ds.into(), scratch.into());
    let (sdy, sx) = (dy.shape(), x.shape());
    let (rows, cols, tokens) = (pattern.rows(), pattern.cols(), sdy.rows);
    check_weight_grad_shapes(OP, (rows, cols), (sdy.rows, sdy.cols), (sx.rows, sx.cols))?;
    check_len(OP, "ds", pattern.nnz(), ds.len())?;
    let k = check_k(OP, tokens)?;
    check_pattern_dims(OP, pattern)?;
    // A = dYᵀ (rows x T) and B = Xᵀ (cols x T): A[r, t] = dY[t, r], so A's strides are dY's swapped.
    let a_view = (sdy.col_stride(), sdy.row_stride());
    let b_view = (sx.col_stride(), sx.row_stride());
    // An operand whose T direction is strided is packed into scratch, rows `ld` apart (16-byte multiples).
    let v = slot_elems::<T>();
    let ld = tokens.div_ceil(v) * v;
    let a_packed = a_view.1 != 1 && tokens > 1;
    let b_packed = b_view.1 != 1 && tokens > 1;
    let a_len = if a_packed { ld * rows } else { 0 };
    let b_len = if b_packed { ld * cols } else { 0 };
    if scratch.len() < a_len + b_len {
        return Err(Error::BufferTooSmall { op: OP, what: "scratch", needed: a_len + b_len, got: scratch.len() });
    }
    let (offsets, col_idx) = (pattern.row_offsets(), pattern.col_indices());
    let inputs = [
        ("dy", dy.data().addr_range(gpu)),
        ("x", x.data().addr_range(gpu)),
        ("row_offsets", offsets.addr_range(gpu)),
        ("col_indices", col_idx.addr_range(gpu)),
    ];
    check_no_alias(OP, ("ds", ds.addr_range(gpu)), &inputs)?;
    check_no_alias(OP, ("ds", ds.addr_range(gpu)), &[("scratch", scratch.addr_range(gpu))])?;
    check_no_alias(OP, ("scratch", scratch.addr_range(gpu)), &inputs)?;
    let (p_dy, _g0) = dy.data().kernel_ptr(gpu, OP, "dy")?;
    let (p_x, _g1) = x.data().kernel_ptr(gpu, OP, "x")?;
    let (p_off, _g2) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
    let (p_col, _g3) = col_idx.kernel_ptr(gpu, OP, "col_indices")?;
    let (p_ds, _g4) = ds.kernel_ptr_mut(gpu, OP, "ds")?;
    let (p_scratch, _g5) = scratch.kernel_ptr_mut(gpu, OP, "scratch")?;
    if pattern.nnz() == 0 {
        return Ok(());
    }
    let mut a_op = Operand { ptr: p_dy, row_stride: a_view.0, col_stride: a_view.1 };
    let mut b_op = Operand { ptr: p_x, row_stride: b_view.0, col_stride: b_view.1 };
    if a_packed {
        let dst = p_scratch;
        // SAFETY: the source is dY seen as rows x T (dy is T x rows, checked above, so DenseShape::validate showed
        // every (t, r) inside dy's buffer); dst is scratch[0 .. ld * rows), inside scratch (length checked above),
        // which overlaps neither dy nor any other input (checked above); rows and T > 1 are nonzero (nnz > 0) and
        // fit u32 (pattern index type, check_k); both pointers are on gpu's backend (kernel_ptr checked).
        unsafe { launch_transpose::<T>(gpu, a_op, rows, tokens, dst, ld)? };
        a_op = Operand { ptr: dst, row_stride: ld, col_stride: 1 };
    }
    if b_packed {
        let dst = p_scratch.offset_bytes(a_len * std::mem::size_of::<T>());
        // SAFETY: as above for X seen as cols x T; dst is scratch[a_len .. a_len + ld * cols), disjoint from the
        // packed dYᵀ and inside scratch (length checked above).
        unsafe { launch_transpose::<T>(gpu, b_op, cols, tokens, dst, ld)? };
        b_op = Operand { ptr: dst, row_stride: ld, col_stride: 1 };
    }
    // SAFETY: a_op addresses rows x T elements (dY's own memory at swapped strides, or the packed copy just
    // written to scratch) and b_op cols x T (likewise); the pattern is a validated DeviceCsrPattern of rows x cols
    // with nnz > 0 entries; ds has exactly nnz elements and overlaps none of dy, x, the pattern or scratch (checked
    // above); all pointers are on gpu's backend and the launches are ordered on its stream; rows, nnz and T fit u32.
    unsafe { launch_sddmm::<T>(gpu, OP, a_op, b_op, p_off, p_col, rows, cols, pattern.nnz(), k, alpha, beta, p_ds) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Outputs overlapping an input (or each other) are refused before anything is launched. The safe API cannot
    /// build such views (a `&mut` borrow excludes the others), so this uses the emulator's test-only view.
    #[cfg(feature = "emulator")]
    #[test]
    fn outputs_overlapping_inputs_are_rejected_as_aliasing_and_nothing_is_written() {
        use crate::device::{overlapping_view_for_tests, Schedule};
        use crate::{CsrPattern, DeviceMatRef};
        let gpu = Gpu::emulated(Schedule::RoundRobin);
        let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let buf = gpu.upload(&[1f32; 64]).unwrap();
        let other = gpu.upload(&[1f32; 64]).unwrap();
        let mut scratch = gpu.upload(&[5f32; 64]).unwrap();
        let mut out = gpu.upload(&[7f32; 2]).unwrap();
        // SAFETY (all views below): the ops refuse them before launching, so nothing is written through them.
        let alias = |range| unsafe { overlapping_view_for_tests(&buf, range) };
        let a = DeviceMatRef::row_major(buf.slice(0..8), 2, 4).unwrap();
        let b = DeviceMatRef::row_major(other.slice(0..12), 3, 4).unwrap();
        let e = sddmm(&gpu, &dpat, a, b, 1.0, 0.0, alias(6..8)).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "sddmm", output: "out", input: "a" });
        let a = DeviceMatRef::row_major(other.slice(0..8), 2, 4).unwrap();
        let b = DeviceMatRef::row_major(buf.slice(8..20), 3, 4).unwrap();
        let e = sddmm(&gpu, &dpat, a, b, 1.0, 0.0, alias(19..21)).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "sddmm", output: "out", input: "b" });
        // Weight gradient: ds over dY, scratch over X, ds over scratch.
        let dy = || DeviceMatRef::row_major(buf.slice(0..8), 4, 2).unwrap();
        let x = || DeviceMatRef::row_major(buf.slice(8..20), 4, 3).unwrap();
        let e = sddmm_weight_grad(&gpu, &dpat, dy(), x(), 1.0, 0.0, alias(0..2), &mut scratch).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "sddmm_weight_grad", output: "ds", input: "dy" });
        let e = sddmm_weight_grad(&gpu, &dpat, dy(), x(), 1.0, 0.0, &mut out, alias(10..40)).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "sddmm_weight_grad", output: "scratch", input: "x" });
        let dy = DeviceMatRef::row_major(other.slice(0..8), 4, 2).unwrap();
        let x = DeviceMatRef::row_major(other.slice(8..20), 4, 3).unwrap();
        let e = sddmm_weight_grad(&gpu, &dpat, dy, x, 1.0, 0.0, alias(30..32), alias(20..60)).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "sddmm_weight_grad", output: "ds", input: "scratch" });
        assert_eq!(gpu.download(&buf).unwrap(), vec![1.0; 64]);
        assert_eq!(gpu.download(&scratch).unwrap(), vec![5.0; 64]);
        assert_eq!(gpu.download(&out).unwrap(), vec![7.0; 2]);
    }

    #[test]
    fn lane_groups_cover_k_with_16_byte_slots_and_at_most_a_warp() {
        assert_eq!(log2_group::<f32>(0), 0);
        assert_eq!(log2_group::<bf16>(1), 0);
        assert_eq!(log2_group::<bf16>(16), 1); // 2 slots of 8
        assert_eq!(log2_group::<f16>(17), 2); // 3 slots -> 4 lanes
        assert_eq!(log2_group::<bf16>(128), 4);
        assert_eq!(log2_group::<f32>(128), 5);
        assert_eq!(log2_group::<bf16>(2048), 5);
        assert_eq!(sddmm_weight_grad_scratch_len::<bf16>(9, 3, 2), 16 * 5);
        assert_eq!(sddmm_weight_grad_scratch_len::<f32>(0, 3, 2), 0);
        assert_eq!(sddmm_weight_grad_scratch_len::<f32>(usize::MAX, 3, 2), usize::MAX);
    }
}

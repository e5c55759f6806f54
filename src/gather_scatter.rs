//! `gather` and `scatter_add`: move values between a dense matrix and the entries of a CSR pattern. Sparse
//! fine-tuning does both every step: LIFT's `grad[mask]` is a gather, applying a sparse delta to the weights is a
//! scatter-add. Kernels: `cuda/gather_scatter.cu` (one thread per entry, no atomics, deterministic).
use crate::csr::{CsrPattern, DeviceCsrPattern, Index};
use crate::dense::{MatMut, MatRef};
use crate::device::{check_no_alias, DeviceMatMut, DeviceMatRef, DeviceSlice, DeviceSliceMut, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, check_shape, Result};
use half::{bf16, f16};

const MODULE: &str = "gather_scatter";
const THREADS: u32 = 256;
/// Entries per thread (kPerThread in cuda/gather_scatter.cu).
const PER_THREAD: usize = 4;

/// Delta types a weight of type `Self` can be updated with: the same type, or f32 (a master-precision delta into
/// f16/bf16 weights, rounded once).
pub trait ScatterDelta<TW: Element>: Element {
    #[doc(hidden)]
    const KERNEL: &'static str;
}
impl ScatterDelta<f32> for f32 {
    const KERNEL: &'static str = "scatter_add_f32_f32";
}
impl ScatterDelta<f16> for f16 {
    const KERNEL: &'static str = "scatter_add_f16_f16";
}
impl ScatterDelta<f16> for f32 {
    const KERNEL: &'static str = "scatter_add_f16_f32";
}
impl ScatterDelta<bf16> for bf16 {
    const KERNEL: &'static str = "scatter_add_bf16_bf16";
}
impl ScatterDelta<bf16> for f32 {
    const KERNEL: &'static str = "scatter_add_bf16_f32";
}

/// CPU reference: `out[e] = W[row(e), col(e)]` for every entry `e` of `pattern`.
///
/// `dense` is `rows x cols` like the pattern (either layout); `out.len() == nnz`. Errors on a shape or length
/// mismatch and leaves `out` untouched.
pub fn gather_cpu<T: Element, I: Index>(pattern: &CsrPattern<I>, dense: MatRef<'_, T>, out: &mut [T]) -> Result<()> {
    const OP: &str = "gather_cpu";
    check_shape(OP, "dense", (pattern.rows(), pattern.cols()), (dense.rows(), dense.cols()))?;
    check_len(OP, "out", pattern.nnz(), out.len())?;
    for (e, r, c) in pattern.iter() {
        out[e] = dense.get(r, c);
    }
    Ok(())
}

/// CPU reference: `W[row(e), col(e)] = round(W + alpha * values[e])` for every entry `e`, with the sum formed as
/// one f32 fused multiply-add and rounded once to `TW` (bitwise what the kernel computes).
///
/// Errors on a shape or length mismatch and leaves `dense` untouched.
pub fn scatter_add_cpu<TW: Element, TV: ScatterDelta<TW>, I: Index>(
    pattern: &CsrPattern<I>,
    values: &[TV],
    alpha: f32,
    mut dense: MatMut<'_, TW>,
) -> Result<()> {
    const OP: &str = "scatter_add_cpu";
    check_shape(OP, "dense", (pattern.rows(), pattern.cols()), (dense.rows(), dense.cols()))?;
    check_len(OP, "values", pattern.nnz(), values.len())?;
    for (e, r, c) in pattern.iter() {
        let w = dense.get_mut(r, c);
        *w = TW::from_f32(alpha.mul_add(values[e].to_f32(), w.to_f32()));
    }
    Ok(())
}

/// `out[e] = W[row(e), col(e)]` on the device, for every entry `e` of `pattern`; asynchronous on `gpu`'s stream.
///
/// Shapes: `dense` is `pattern.rows() x pattern.cols()` in either layout with any valid leading dimension;
/// `out.len() == pattern.nnz()`. Errors (nothing is launched): shape or length mismatch, `out` overlapping an
/// input, buffers from another backend. Floor: reads `nnz * (4 + size_of::<T>())` bytes plus the row offsets, and
/// one 32-byte sector of W per entry at low density; writes `nnz * size_of::<T>()`.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 1), (1, 2)])?;
/// let w = gpu.upload(&[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0])?;
/// let mut out = gpu.alloc_zeros::<f32>(pattern.nnz())?;
/// let dpat = DeviceCsrPattern::upload(&gpu, &pattern)?;
/// gather(&gpu, &dpat, DeviceMatRef::row_major(&w, 2, 3)?, &mut out)?;
/// assert_eq!(gpu.download(&out)?, vec![1.0, 5.0]);
/// # Ok(()) }
/// ```
pub fn gather<'a, T: Element, I: Index>(
    gpu: &Gpu,
    pattern: &DeviceCsrPattern<I>,
    dense: DeviceMatRef<'_, T>,
    out: impl Into<DeviceSliceMut<'a, T>>,
) -> Result<()> {
    const OP: &str = "gather";
    let mut out = out.into();
    let shape = dense.shape();
    check_shape(OP, "dense", (pattern.rows(), pattern.cols()), (shape.rows, shape.cols))?;
    check_len(OP, "out", pattern.nnz(), out.len())?;
    let (offsets, cols) = (pattern.row_offsets(), pattern.col_indices());
    check_no_alias(
        OP,
        ("out", out.addr_range(gpu)),
        &[("dense", dense.data().addr_range(gpu)), ("row_offsets", offsets.addr_range(gpu)), ("col_indices", cols.addr_range(gpu))],
    )?;
    if pattern.nnz() == 0 {
        return Ok(());
    }
    let launch = LaunchShape::linear(OP, pattern.nnz().div_ceil(PER_THREAD), THREADS)?;
    let (p_dense, _g0) = dense.data().kernel_ptr(gpu, OP, "dense")?;
    let (p_off, _g1) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
    let (p_col, _g2) = cols.kernel_ptr(gpu, OP, "col_indices")?;
    let (p_out, _g3) = out.kernel_ptr_mut(gpu, OP, "out")?;
    let kernel = format!("gather_{}", T::DTYPE.name());
    // SAFETY: the pattern is a validated DeviceCsrPattern (offsets monotone from 0 to nnz, columns < cols), so
    // every entry reads dense at r*row_stride + c*col_stride with r < rows, c < cols, which DenseShape::validate
    // showed is inside `dense`; out has exactly nnz elements; out overlaps no input (checked above); the grid
    // covers nnz entries (PER_THREAD per thread) and the kernel skips entries >= nnz; the argument list matches
    // SLR_GATHER.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel,
            launch,
            &[
                p_dense,
                KernelArg::U64(shape.row_stride() as u64),
                KernelArg::U64(shape.col_stride() as u64),
                p_off,
                p_col,
                KernelArg::U32(pattern.rows() as u32),
                KernelArg::U32(pattern.nnz() as u32),
                p_out,
            ],
        )
    }
}

/// `W[row(e), col(e)] = round(W + alpha * values[e])` on the device for every entry `e` of `pattern`, the sum
/// formed as one f32 fused multiply-add and rounded once to `TW` (an f32 delta into bf16 weights rounds once,
/// not twice). Asynchronous on `gpu`'s stream. Deterministic: entries are distinct positions, so no atomics.
///
/// Shapes: `dense` is `pattern.rows() x pattern.cols()`; `values.len() == pattern.nnz()`. Errors (nothing is
/// launched): shape or length mismatch, `dense` overlapping an input, buffers from another backend. Floor: reads
/// `nnz * (4 + size_of::<TV>() + size_of::<TW>())` bytes plus the row offsets, writes `nnz * size_of::<TW>()`
/// (a 32-byte sector of W per entry each way at low density).
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # use half::bf16;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // A sparse update of a 2x3 bf16 weight: W[mask] += -lr * delta, the delta in f32 (one rounding per entry).
/// let pattern = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::from_coo(2, 3, &[(0, 1), (1, 2)])?)?;
/// let mut w = gpu.upload(&[bf16::from_f32(1.0); 6])?;
/// let delta = gpu.upload(&[0.5f32, -2.0])?;
/// let lr = 0.25;
/// scatter_add(&gpu, &pattern, &delta, -lr, DeviceMatMut::row_major(&mut w, 2, 3)?)?;
/// let w = gpu.download(&w)?;
/// assert_eq!((w[1].to_f32(), w[5].to_f32(), w[0].to_f32()), (0.875, 1.5, 1.0));
/// # Ok(()) }
/// ```
pub fn scatter_add<'a, TW: Element, TV: ScatterDelta<TW>, I: Index>(
    gpu: &Gpu,
    pattern: &DeviceCsrPattern<I>,
    values: impl Into<DeviceSlice<'a, TV>>,
    alpha: f32,
    mut dense: DeviceMatMut<'_, TW>,
) -> Result<()> {
    const OP: &str = "scatter_add";
    let values = values.into();
    let shape = dense.shape();
    check_shape(OP, "dense", (pattern.rows(), pattern.cols()), (shape.rows, shape.cols))?;
    check_len(OP, "values", pattern.nnz(), values.len())?;
    let (offsets, cols) = (pattern.row_offsets(), pattern.col_indices());
    check_no_alias(
        OP,
        ("dense", dense.data_mut().addr_range(gpu)),
        &[("values", values.addr_range(gpu)), ("row_offsets", offsets.addr_range(gpu)), ("col_indices", cols.addr_range(gpu))],
    )?;
    if pattern.nnz() == 0 {
        return Ok(());
    }
    let launch = LaunchShape::linear(OP, pattern.nnz().div_ceil(PER_THREAD), THREADS)?;
    let (p_off, _g1) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
    let (p_col, _g2) = cols.kernel_ptr(gpu, OP, "col_indices")?;
    let (p_val, _g3) = values.kernel_ptr(gpu, OP, "values")?;
    let (p_dense, _g0) = dense.data_mut().kernel_ptr_mut(gpu, OP, "dense")?;
    // SAFETY: as in `gather`: validated pattern, so every write lands at a distinct in-bounds element of dense
    // (strictly increasing columns per row); values has nnz elements; dense overlaps no input (checked above);
    // the argument list matches SLR_SCATTER_ADD.
    unsafe {
        gpu.launch(
            MODULE,
            TV::KERNEL,
            launch,
            &[
                p_dense,
                KernelArg::U64(shape.row_stride() as u64),
                KernelArg::U64(shape.col_stride() as u64),
                p_off,
                p_col,
                KernelArg::U32(pattern.rows() as u32),
                KernelArg::U32(pattern.nnz() as u32),
                p_val,
                KernelArg::F32(alpha),
            ],
        )
    }
}

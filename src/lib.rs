//! # sparse-lowrank
//!
//! Hand-written CUDA kernels for sparse and low-rank fine-tuning (LIFT, SLTrain, DSEE, SpIEL, 2:4 training),
//! wrapped in safe, typed Rust: f32, f16 and bf16 with f32 accumulation, shape-checked, errors instead of
//! panics, and a CPU reference for every op.
//!
//! Layers (docs/design.md): formats ([`CsrPattern`], [`Csr`], [`BitMask`], dense views) → per-op modules with a
//! CPU reference and a launcher → kernels in `cuda/*.cu`. A [`Gpu`] is a CUDA device (or, with the `emulator`
//! feature, the SIMT emulator that runs the same kernel sources on the CPU).
//!
//! ```no_run
//! use sparse_lowrank::*;
//! # fn main() -> Result<()> {
//! // A 5% mask over a weight, its gradient gathered, an f32 delta scattered back into bf16 weights.
//! let (m, n) = (64, 64);
//! let w: Vec<half::bf16> = (0..m * n).map(|i| half::bf16::from_f32(i as f32 * 1e-3)).collect();
//! let grad: Vec<half::bf16> = w.clone();
//! let pattern = CsrPattern::<u32>::from_dense_predicate(MatRef::row_major(&w, m, n)?, |r, c, _| (r * 7 + c * 13) % 20 == 0)?;
//! let gpu = Gpu::new(0)?;
//! let dpat = DeviceCsrPattern::upload(&gpu, &pattern)?;
//! let (dw, dg) = (gpu.upload(&w)?, gpu.upload(&grad)?);
//! let mut g_sparse = gpu.alloc_zeros::<half::bf16>(pattern.nnz())?;
//! gather(&gpu, &dpat, DeviceMatRef::row_major(&dg, m, n)?, &mut g_sparse)?;
//! let delta = gpu.upload(&vec![0.01f32; pattern.nnz()])?;
//! let mut dw = dw;
//! scatter_add(&gpu, &dpat, &delta, -1.0, DeviceMatMut::row_major(&mut dw, m, n)?)?;
//! # Ok(()) }
//! ```
#![warn(missing_debug_implementations)]
#![allow(missing_debug_implementations)]

pub mod csr;
pub mod csr_transpose;
pub mod dense;
pub mod device;
pub mod element;
pub mod error;
pub mod gather_scatter;
pub mod kernels;
pub mod mask;
mod scan;
pub mod spmm;
pub mod tile_mma;
pub mod sddmm;
pub mod topk;
pub mod rsvd;

pub use csr::{Csr, CsrPattern, DeviceCsrPattern, Index};
pub use csr_transpose::{csr_transpose, csr_transpose_cpu, csr_transpose_pattern_cpu, transpose_values, CsrTranspose};
pub use dense::{DenseShape, Layout, MatMut, MatRef};
pub use device::{DeviceMatMut, DeviceMatRef, DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, HostCalls};
#[cfg(feature = "emulator")]
pub use device::{EmulatedTarget, Schedule};
pub use element::{DType, Element};
pub use error::{CsrError, Error, Result, KERNEL_COUNT_MAX};
pub use gather_scatter::{gather, gather_cpu, scatter_add, scatter_add_cpu, ScatterDelta};
pub use mask::{mask_to_csr, BitMask, DeviceBitMask};
pub use spmm::{spmm_sb, spmm_sb_cpu, spmm_xst, spmm_xst_cpu, spmm_xst_scratch_len, spmm_xst_with_scratch};
pub use tile_mma::{tile_mma, tile_mma_cpu, TileMmaElement};
pub use sddmm::{sddmm, sddmm_cpu, sddmm_weight_grad, sddmm_weight_grad_cpu, sddmm_weight_grad_scratch_len};
pub use topk::{
    topk_cpu, topk_csr, topk_csr_only, topk_mask, topk_mask_only, topk_threshold, Direction, NanPolicy, RankBy, Scope, Selection, TopkCpu, TopkCsr, TopkCut, TopkKey,
    TopkSpec,
};
pub use rsvd::{gaussian_sketch, gaussian_sketch_cpu, rsvd, rsvd_cpu, RsvdConfig, RsvdInfo};
pub use half;

/// Whether the environment variable `var` (one of the library's A/B switches, docs/gpu-workflow.md: the
/// `SLR_*_PATH` ones, `SLR_RSVD_SMALL`, `SLR_RSVD_GEMM`, `SLR_PINNED`, `SLR_PDL`) is set to `value`: the
/// benchmarks' way to time another kernel or path in the same run. Read at every call on purpose (the
/// benchmarks set and clear the switches while they run).
pub(crate) fn path_switch(var: &str, value: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == value)
}

thread_local! {
    static TENSOR_CORES_OPTED_IN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Opts this thread's calls into the tensor-core kernels of `spmm_xst`/`spmm_sb` and `sddmm`/`sddmm_weight_grad`
/// (where their size rules allow them), or back out. They are off by default: on an H200 (commit a5e77c2,
/// docs/benchmarks.md) each ran slower than the CUDA-core kernel it was meant to replace in every case measured
/// (SpMM 1.3-5.8x slower at T = 128 and 2048, SDDMM 1.1-1.25x at K = 128 and 2048, 1-5% dense). They stay for
/// tests (this switch) and for the benchmarks' same-run comparison (`SLR_SPMM_PATH=tc`, `SLR_SDDMM_PATH=tc`).
#[doc(hidden)]
pub fn opt_in_tensor_cores_on_this_thread(on: bool) {
    TENSOR_CORES_OPTED_IN.with(|f| f.set(on));
}

/// Whether this thread opted into the tensor-core kernels ([`opt_in_tensor_cores_on_this_thread`]) or the
/// environment's `var` says `tc`.
pub(crate) fn tensor_cores_opted_in(var: &str) -> bool {
    TENSOR_CORES_OPTED_IN.with(|f| f.get()) || path_switch(var, "tc")
}

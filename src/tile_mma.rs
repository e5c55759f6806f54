//! `tile_mma`: a batch of independent tensor-core products `C[t] = A[t] * B[t] + C[t]` with 16x16 A, 16x8 B and
//! 16x8 f32 C tiles. The op exists to prove the tensor-core fragment layout on every device: the kernel
//! (`cuda/tile_mma.cu`) loads its operands through the fragment helpers of `cuda/mma.cuh` and runs one
//! `mma.sync.aligned.m16n8k16` per warp, so comparing it with [`tile_mma_cpu`] on a GPU checks the helpers against
//! the hardware, and on the SIMT emulator checks them against the host version of the instruction. Later kernels
//! (SpMM, SDDMM, 2:4 sparse matmul) use the same helpers.
//!
//! Inputs are f16 or bf16 ([`TileMmaElement`]); f32 is not a tensor-core input type here and is rejected at
//! compile time. Accumulation is f32.
use crate::device::{check_no_alias, DeviceSlice, DeviceSliceMut, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, Result};
use half::{bf16, f16};

const MODULE: &str = "tile_mma";
/// One warp per tile, 4 warps per block (matches `kWarpsPerBlock` in cuda/tile_mma.cu).
const THREADS_PER_TILE: usize = 32;
const THREADS: u32 = 128;

/// Rows of A and C in one tile (M).
pub const TILE_M: usize = 16;
/// Columns of B and C in one tile (N).
pub const TILE_N: usize = 8;
/// Columns of A and rows of B in one tile (K).
pub const TILE_K: usize = 16;
/// Elements of A per tile (16x16).
pub const TILE_A_LEN: usize = TILE_M * TILE_K;
/// Elements of B per tile (16x8).
pub const TILE_B_LEN: usize = TILE_K * TILE_N;
/// Elements of C per tile (16x8).
pub const TILE_C_LEN: usize = TILE_M * TILE_N;

/// Element types the tensor-core op takes as A and B: f16 and bf16. Implemented for those two only (f32 inputs
/// do not compile):
///
/// ```compile_fail
/// # use sparse_lowrank::*;
/// let (a, b, mut c) = (vec![0f32; 256], vec![0f32; 128], vec![0f32; 128]);
/// tile_mma_cpu(&a, &b, &mut c, 1).unwrap(); // f32 is not a TileMmaElement
/// ```
pub trait TileMmaElement: Element {
    #[doc(hidden)]
    const KERNEL: &'static str;
}
impl TileMmaElement for f16 {
    const KERNEL: &'static str = "tile_mma_f16";
}
impl TileMmaElement for bf16 {
    const KERNEL: &'static str = "tile_mma_bf16";
}

/// Lengths of A, B and C for `tiles` tiles (saturating: no buffer is that long, so an absurd `tiles` is reported
/// as a length mismatch).
fn expected_lens(tiles: usize) -> (usize, usize, usize) {
    (tiles.saturating_mul(TILE_A_LEN), tiles.saturating_mul(TILE_B_LEN), tiles.saturating_mul(TILE_C_LEN))
}

fn check_lens(op: &'static str, tiles: usize, a: usize, b: usize, c: usize) -> Result<()> {
    let (la, lb, lc) = expected_lens(tiles);
    check_len(op, "a", la, a)?;
    check_len(op, "b", lb, b)?;
    check_len(op, "c", lc, c)
}

/// CPU reference: `C[t] = A[t] * B[t] + C[t]` for `t` in `0..tiles`.
///
/// Shapes: tile `t` of A is 16x16 row-major at `a[256 t..]` (element `(i, k)` at `256 t + 16 i + k`), of B 16x8
/// row-major at `b[128 t..]` (`(k, j)` at `128 t + 8 k + j`), of C 16x8 row-major at `c[128 t..]` (`(i, j)` at
/// `128 t + 8 i + j`); so `a.len() == 256 * tiles`, `b.len() == c.len() == 128 * tiles`.
///
/// Arithmetic: in f32, `d = c; for k in 0..16 { d = a[i][k].mul_add(b[k][j], d) }` (k ascending, one rounding per
/// step). The SIMT emulator's host version of the tensor-core instruction computes exactly this, so it agrees
/// bitwise; a GPU sums in an unspecified order and rounding and agrees within a few f32 ulps of
/// `|c| + sum_k |a b|` (see tests/tile_mma.rs).
///
/// Errors (`LengthMismatch`, naming `a`, `b` or `c`) leave `c` untouched.
pub fn tile_mma_cpu<T: TileMmaElement>(a: &[T], b: &[T], c: &mut [f32], tiles: usize) -> Result<()> {
    check_lens("tile_mma_cpu", tiles, a.len(), b.len(), c.len())?;
    for t in 0..tiles {
        let at = &a[t * TILE_A_LEN..(t + 1) * TILE_A_LEN];
        let bt = &b[t * TILE_B_LEN..(t + 1) * TILE_B_LEN];
        let ct = &mut c[t * TILE_C_LEN..(t + 1) * TILE_C_LEN];
        for i in 0..TILE_M {
            for j in 0..TILE_N {
                let mut acc = ct[i * TILE_N + j];
                for k in 0..TILE_K {
                    acc = at[i * TILE_K + k].to_f32().mul_add(bt[k * TILE_N + j].to_f32(), acc);
                }
                ct[i * TILE_N + j] = acc;
            }
        }
    }
    Ok(())
}

/// `C[t] = A[t] * B[t] + C[t]` on the device for `t` in `0..tiles`, one tensor-core `mma.sync.m16n8k16` per tile
/// (f32 accumulation); asynchronous on `gpu`'s stream.
///
/// Shapes as in [`tile_mma_cpu`]: `a.len() == 256 * tiles` (16x16 row-major tiles), `b.len() == 128 * tiles`
/// (16x8 row-major), `c.len() == 128 * tiles` (16x8 row-major f32, read and overwritten). Views may start at any
/// element offset. Errors (nothing is launched, `c` untouched): a length mismatch (`LengthMismatch` naming `a`,
/// `b` or `c`), `c` overlapping `a` or `b` (`Aliasing`), buffers from another backend (`WrongDevice`), a grid
/// too large for CUDA. Rounding: within a few f32 ulps of the CPU reference (the tensor core's summation order
/// and rounding are unspecified by the PTX ISA); bitwise equal to it on the emulator. Floor per tile: 1792 bytes
/// moved (768 read from A and B, 512 read and 512 written of C) for 4096 flops.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # use half::bf16;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // One tile: A = identity, so C = B + C.
/// let a: Vec<bf16> = (0..256).map(|e| bf16::from_f32(if e / 16 == e % 16 { 1.0 } else { 0.0 })).collect();
/// let b: Vec<bf16> = (0..128).map(|e| bf16::from_f32(e as f32)).collect();
/// let (da, db) = (gpu.upload(&a)?, gpu.upload(&b)?);
/// let mut dc = gpu.upload(&vec![0.5f32; 128])?;
/// tile_mma(&gpu, &da, &db, &mut dc, 1)?;
/// assert_eq!(gpu.download(&dc)?[9], 9.5);
/// # Ok(()) }
/// ```
pub fn tile_mma<'a, 'b, 'c, T: TileMmaElement>(
    gpu: &Gpu,
    a: impl Into<DeviceSlice<'a, T>>,
    b: impl Into<DeviceSlice<'b, T>>,
    c: impl Into<DeviceSliceMut<'c, f32>>,
    tiles: usize,
) -> Result<()> {
    const OP: &str = "tile_mma";
    let (a, b, mut c) = (a.into(), b.into(), c.into());
    check_lens(OP, tiles, a.len(), b.len(), c.len())?;
    check_no_alias(OP, ("c", c.addr_range(gpu)), &[("a", a.addr_range(gpu)), ("b", b.addr_range(gpu))])?;
    if tiles == 0 {
        return Ok(());
    }
    let launch = LaunchShape::linear(OP, tiles.saturating_mul(THREADS_PER_TILE), THREADS)?;
    let (p_a, _g0) = a.kernel_ptr(gpu, OP, "a")?;
    let (p_b, _g1) = b.kernel_ptr(gpu, OP, "b")?;
    let (p_c, _g2) = c.kernel_ptr_mut(gpu, OP, "c")?;
    // SAFETY: a, b and c hold exactly 256, 128 and 128 elements per tile for `tiles` tiles (checked above); the
    // kernel's warp w of block x handles tile 4x + w and returns (as a whole warp) when it is >= tiles, so it
    // touches a[256 t .. 256 t + 256), b[128 t ..), c[128 t ..) for t < tiles only; blocks are 128 threads, a
    // multiple of the warp, so every mma.sync runs on a full warp; c overlaps neither input (checked above); the
    // argument list matches SLR_TILE_MMA (const T* a, const T* b, float* c, unsigned long long tiles).
    unsafe { gpu.launch(MODULE, T::KERNEL, launch, &[p_a, p_b, p_c, KernelArg::U64(tiles as u64)]) }
}

//! Exclusive prefix sum of 32-bit counts on the device (kernel `cuda/scan.cu`): the step that turns per-row,
//! per-column or per-word counts into CSR offsets. Used by `mask_to_csr` and the CSR transpose.
use crate::device::{DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::error::{Error, Result};

const MODULE: &str = "scan";
const THREADS: u32 = 1024;

/// `offsets[i] = counts[0] + ... + counts[i-1]` for `i` in `0..=n` (`n = counts.len()`), and the exact 64-bit
/// total, which is read back to the host (one synchronization). Offsets are truncated to 32 bits: callers check
/// the total against their index type before trusting them. Errors: `n` above `u32::MAX`, device errors.
pub(crate) fn exclusive_scan_u32(gpu: &Gpu, counts: &DeviceVec<u32>) -> Result<(DeviceVec<u32>, u64)> {
    const OP: &str = "exclusive_scan_u32";
    let n = counts.len();
    if n > u32::MAX as usize - 1 {
        return Err(Error::LengthMismatch { op: OP, what: "counts (too many)", expected: u32::MAX as usize - 1, got: n });
    }
    let mut offsets = gpu.alloc_zeros::<u32>(n + 1)?;
    let mut total = gpu.alloc_zeros::<u64>(1)?;
    {
        let shape = LaunchShape { grid: (1, 1, 1), block: (THREADS, 1, 1), shared_bytes: THREADS * 8 };
        let counts_view = DeviceSlice::from(counts);
        let (p_counts, _g0) = counts_view.kernel_ptr(gpu, OP, "counts")?;
        let mut offsets_view = DeviceSliceMut::from(&mut offsets);
        let (p_offsets, _g1) = offsets_view.kernel_ptr_mut(gpu, OP, "offsets")?;
        let mut total_view = DeviceSliceMut::from(&mut total);
        let (p_total, _g2) = total_view.kernel_ptr_mut(gpu, OP, "total")?;
        // SAFETY: counts has n elements (read at i < n), offsets n + 1 (written at i <= n), total one; the
        // dynamic shared memory is the 1024 u64 chunk sums the kernel indexes by thread; offsets and total are
        // fresh allocations, so nothing overlaps; arguments match scan_u32.
        unsafe {
            gpu.launch(MODULE, "scan_u32", shape, &[p_counts, KernelArg::U32(n as u32), p_offsets, p_total])?;
        }
    }
    let total = gpu.download(&total)?[0];
    Ok((offsets, total))
}

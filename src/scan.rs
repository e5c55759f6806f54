//! Exclusive prefix sum of 32-bit counts on the device (kernel `cuda/scan.cu`): the step that turns per-row,
//! per-column or per-word counts into CSR offsets. Used by `mask_to_csr` and the CSR transpose.
use crate::device::{DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::error::{Error, Result};

const MODULE: &str = "scan";
const THREADS: u32 = 1024;
/// Counts per tile of the multi-block path (1024 threads x 8); up to this many, one block scans everything.
const TILE: usize = 8192;

/// `offsets[i] = counts[0] + ... + counts[i-1]` for `i` in `0..=n` (`n = counts.len()`), and the total, read back
/// to the host (one synchronization): exact when below `u32::MAX`, otherwise at least `u32::MAX` (the multi-tile
/// path saturates its tile sums: cuda/scan.cu scan_tile_sums). Offsets are truncated to 32 bits: callers refuse
/// totals of `u32::MAX` and above before trusting them. Errors: `n` above `u32::MAX`, device errors.
pub(crate) fn exclusive_scan_u32(gpu: &Gpu, counts: &DeviceVec<u32>) -> Result<(DeviceVec<u32>, u64)> {
    let (offsets, total) = exclusive_scan_u32_queued(gpu, counts)?;
    let total = gpu.download(&total)?[0];
    Ok((offsets, total))
}

/// [`exclusive_scan_u32`] without waiting: the exact 64-bit total stays on the device (a one-element buffer),
/// so nothing synchronizes. For callers whose offsets cannot exceed 32 bits by construction.
pub(crate) fn exclusive_scan_u32_queued(gpu: &Gpu, counts: &DeviceVec<u32>) -> Result<(DeviceVec<u32>, DeviceVec<u64>)> {
    const OP: &str = "exclusive_scan_u32";
    let n = counts.len();
    if n > u32::MAX as usize - 1 {
        return Err(Error::LengthMismatch { op: OP, what: "counts (too many)", expected: u32::MAX as usize - 1, got: n });
    }
    if n > TILE {
        return scan_tiled(gpu, counts);
    }
    // SAFETY (both): scan_u32 writes every one of the n + 1 offsets (thread t its chunk's, the last thread
    // offsets[n]) and the total, whatever n (n = 0 included), before anything reads them. No memsets.
    let mut offsets = unsafe { gpu.alloc_uninit::<u32>(n + 1)? };
    let mut total = unsafe { gpu.alloc_uninit::<u64>(1)? };
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
    Ok((offsets, total))
}

/// The multi-block path for n > TILE: tile sums (saturated at `u32::MAX`), their scan (this function again, so the
/// total comes from the single-block scan at the top), then each tile's offsets.
fn scan_tiled(gpu: &Gpu, counts: &DeviceVec<u32>) -> Result<(DeviceVec<u32>, DeviceVec<u64>)> {
    const OP: &str = "exclusive_scan_u32";
    let n = counts.len();
    let tiles = n.div_ceil(TILE);
    let shape = LaunchShape { grid: (tiles as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
    // SAFETY: block b of scan_tile_sums writes tile_sums[b], for every b < tiles (the grid).
    let mut tile_sums = unsafe { gpu.alloc_uninit::<u32>(tiles)? };
    {
        let counts_view = DeviceSlice::from(counts);
        let (p_counts, _g0) = counts_view.kernel_ptr(gpu, OP, "counts")?;
        let mut sums_view = DeviceSliceMut::from(&mut tile_sums);
        let (p_sums, _g1) = sums_view.kernel_ptr_mut(gpu, OP, "tile sums")?;
        // SAFETY: block b reads counts[b * 8192 .. min(n, (b + 1) * 8192)) (bounds-checked against n; the
        // 16-byte loads only where the whole 8 are below n, aligned since tiles and threads start at multiples of 8
        // counts of an aligned allocation) and writes tile_sums[b] for b < tiles (thread 0, after the block's
        // barrier; its static shared memory is 32 u64 warp sums); tile_sums is fresh; arguments match
        // scan_tile_sums.
        unsafe { gpu.launch(MODULE, "scan_tile_sums", shape, &[p_counts, KernelArg::U32(n as u32), p_sums])? };
    }
    let (tile_offsets, total) = exclusive_scan_u32_queued(gpu, &tile_sums)?;
    // SAFETY: scan_tiles writes offsets[i] for every i < n (block b its tile's) and offsets[n] (the last block).
    let mut offsets = unsafe { gpu.alloc_uninit::<u32>(n + 1)? };
    {
        let counts_view = DeviceSlice::from(counts);
        let (p_counts, _g0) = counts_view.kernel_ptr(gpu, OP, "counts")?;
        let tile_view = DeviceSlice::from(&tile_offsets);
        let (p_tiles, _g1) = tile_view.kernel_ptr(gpu, OP, "tile offsets")?;
        let mut offsets_view = DeviceSliceMut::from(&mut offsets);
        let (p_offsets, _g2) = offsets_view.kernel_ptr_mut(gpu, OP, "offsets")?;
        // SAFETY: as above for counts; tile_offsets has tiles + 1 elements (read at b and at tiles); offsets has
        // n + 1 elements, written at i < n and at n; offsets is fresh; arguments match scan_tiles.
        unsafe {
            gpu.launch(MODULE, "scan_tiles", shape, &[p_counts, KernelArg::U32(n as u32), p_tiles, p_offsets])?;
        }
    }
    Ok((offsets, total))
}

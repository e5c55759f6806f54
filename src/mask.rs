//! A bit-packed boolean mask over a `rows x cols` matrix: bit `r * cols + c`, least significant bit first in each
//! 64-bit word. One bit per element: a 4096x11008 mask is 5.6 MB, against 45 MB for a `bool` tensor.
//!
//! On the device: [`DeviceBitMask`] and [`mask_to_csr`] (kernels in `cuda/mask.cu`), so a mask recomputed on the
//! GPU becomes the CSR pattern the sparse ops consume without a trip through the host. The CPU reference is
//! [`BitMask::to_pattern`].
use crate::csr::{CsrPattern, DeviceCsrPattern, Index};
use crate::dense::MatRef;
use crate::device::{DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::error::{CsrError, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMask {
    rows: usize,
    cols: usize,
    words: Vec<u64>,
}

impl BitMask {
    /// All bits clear.
    ///
    /// # Panics
    /// If `rows * cols` overflows usize or the `rows * cols / 8` bytes cannot be allocated; [`BitMask::try_zeros`]
    /// returns those as errors.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        match Self::try_zeros(rows, cols) {
            Ok(m) => m,
            Err(e) => panic!("BitMask::zeros({rows}, {cols}): {e}"),
        }
    }

    /// All bits clear, or `WorkspaceTooLarge` (nothing allocated) when `rows * cols` overflows usize or its
    /// `⌈rows·cols/64⌉` words cannot be allocated.
    pub fn try_zeros(rows: usize, cols: usize) -> Result<Self> {
        const OP: &str = "BitMask::zeros";
        let too_large = |bytes: u64| Error::WorkspaceTooLarge { op: OP, what: "mask words", bytes, max: isize::MAX as u64 };
        let n = rows.checked_mul(cols).ok_or(too_large(u64::MAX))?;
        let len = n.div_ceil(64);
        let mut words = Vec::new();
        words.try_reserve_exact(len).map_err(|_| too_large((len as u64).saturating_mul(8)))?;
        words.resize(len, 0);
        Ok(BitMask { rows, cols, words })
    }

    /// Bits set at a pattern's entries. Panics like [`BitMask::zeros`] for a pattern whose `rows x cols` cannot
    /// be held as bits (an empty pattern can declare such a shape); check with [`BitMask::try_zeros`] first.
    pub fn from_pattern<I: Index>(pattern: &CsrPattern<I>) -> Self {
        let mut m = BitMask::zeros(pattern.rows(), pattern.cols());
        for (_, r, c) in pattern.iter() {
            m.set(r, c, true);
        }
        m
    }

    /// Bits set where `keep(r, c, A[r, c])` holds.
    pub fn from_dense_predicate<T: Copy>(dense: MatRef<'_, T>, mut keep: impl FnMut(usize, usize, T) -> bool) -> Self {
        let mut m = BitMask::zeros(dense.rows(), dense.cols());
        for r in 0..dense.rows() {
            for c in 0..dense.cols() {
                if keep(r, c, dense.get(r, c)) {
                    m.set(r, c, true);
                }
            }
        }
        m
    }

    /// The set bits as a CSR pattern (sorted columns). Errors if the shape or count does not fit `I`.
    pub fn to_pattern<I: Index>(&self) -> Result<CsrPattern<I>> {
        for (what, value) in [("rows", self.rows), ("cols", self.cols), ("nnz", self.count_ones())] {
            if value > I::MAX {
                return Err(CsrError::TooLargeForIndex { what, value, max: I::MAX }.into());
            }
        }
        let mut offsets = Vec::with_capacity(self.rows + 1);
        let mut cols = Vec::with_capacity(self.count_ones());
        offsets.push(I::default());
        for r in 0..self.rows {
            for c in 0..self.cols {
                if self.get(r, c) {
                    cols.push(I::from_usize(c));
                }
            }
            offsets.push(I::from_usize(cols.len()));
        }
        CsrPattern::new(self.rows, self.cols, offsets, cols)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The packed words; bits past `rows * cols` in the last word are zero.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    #[inline]
    fn bit(&self, r: usize, c: usize) -> usize {
        assert!(r < self.rows && c < self.cols, "bit ({r}, {c}) outside a {}x{} mask", self.rows, self.cols);
        r * self.cols + c
    }
    /// Bit `(r, c)`.
    ///
    /// # Panics
    /// If `(r, c)` is outside the mask, like slice indexing.
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> bool {
        let b = self.bit(r, c);
        (self.words[b / 64] >> (b % 64)) & 1 == 1
    }
    /// Sets bit `(r, c)` to `on`.
    ///
    /// # Panics
    /// If `(r, c)` is outside the mask, like slice indexing.
    #[inline]
    pub fn set(&mut self, r: usize, c: usize, on: bool) {
        let b = self.bit(r, c);
        if on {
            self.words[b / 64] |= 1 << (b % 64);
        } else {
            self.words[b / 64] &= !(1 << (b % 64));
        }
    }
    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// A bit mask on the device, in [`BitMask`]'s layout (bits past `rows * cols` in the last word are zero).
pub struct DeviceBitMask {
    rows: usize,
    cols: usize,
    words: DeviceVec<u64>,
}

impl DeviceBitMask {
    /// Copies a mask to the device.
    pub fn upload(gpu: &Gpu, mask: &BitMask) -> Result<Self> {
        Ok(DeviceBitMask { rows: mask.rows, cols: mask.cols, words: gpu.upload(&mask.words)? })
    }
    /// A mask whose words a kernel of this crate wrote, `ceil(rows * cols / 64)` of them with the bits past
    /// `rows * cols` zero (the kernel guarantees it); never exposed publicly.
    pub(crate) fn from_trusted_words(rows: usize, cols: usize, words: DeviceVec<u64>) -> Self {
        debug_assert_eq!(words.len(), (rows * cols).div_ceil(64));
        DeviceBitMask { rows, cols, words }
    }
    /// Copies the mask back to the host.
    pub fn download(&self, gpu: &Gpu) -> Result<BitMask> {
        Ok(BitMask { rows: self.rows, cols: self.cols, words: gpu.download(&self.words)? })
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
}

const MASK_MODULE: &str = "mask";
const WARPS_PER_BLOCK: u32 = 8;

/// The device's exclusive scan of `counts` (the step of [`mask_to_csr`] and the CSR transpose), offsets and total
/// read back: for tests of its multi-tile path, whose total saturates at `u32::MAX`.
#[doc(hidden)]
pub fn exclusive_scan_for_tests(gpu: &Gpu, counts: &[u32]) -> Result<(Vec<u32>, u64)> {
    let d = gpu.upload(counts)?;
    let (offsets, total) = crate::scan::exclusive_scan_u32(gpu, &d)?;
    Ok((gpu.download(&offsets)?, total))
}

/// The set bits of a device mask as a device CSR pattern (columns increasing within each row), computed on the
/// device: per-row popcounts (one warp per row), an exclusive scan of the counts (one block), then each row's
/// columns in order (one warp per row, ballots). Deterministic. Agrees exactly with [`BitMask::to_pattern`].
///
/// Synchronizes once: the entry count is read back to size the column array. Errors: `rows` or `cols` above
/// [`crate::KERNEL_COUNT_MAX`] (`TooLarge`), `u32::MAX` set bits or more (`CsrError::TooLargeForIndex`), device
/// errors. Floor: the mask is read
/// twice (`rows * cols / 4` bytes) and `4 * (nnz + 3 * rows)` bytes of counts, offsets and columns move.
///
/// ```no_run
/// use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// // A mask built on the host (here: the diagonal and the first column), turned into a CSR pattern on the device.
/// let mut mask = BitMask::zeros(1024, 1024);
/// for i in 0..1024 {
///     mask.set(i, i, true);
///     mask.set(i, 0, true);
/// }
/// let gpu = Gpu::new(0)?;
/// let pattern = mask_to_csr(&gpu, &DeviceBitMask::upload(&gpu, &mask)?)?;
/// assert_eq!(pattern.nnz(), 2 * 1024 - 1);
/// assert_eq!(pattern.download(&gpu)?, mask.to_pattern::<u32>()?);
/// # Ok(()) }
/// ```
pub fn mask_to_csr(gpu: &Gpu, mask: &DeviceBitMask) -> Result<DeviceCsrPattern<u32>> {
    mask_to_csr_sized(gpu, mask, None)
}

/// [`mask_to_csr`] for a mask whose number of set bits the caller already knows exactly (top-k's selections):
/// nothing is read back (no synchronization); the column array is sized from `nnz`, and the kernel keeps every
/// write and offset within it whatever the mask holds (cuda/mask.cu row_columns), so a count that disagreed with
/// the mask (a bug) would give a wrong pattern, never an out-of-bounds one.
pub(crate) fn mask_to_csr_counted(gpu: &Gpu, mask: &DeviceBitMask, nnz: usize) -> Result<DeviceCsrPattern<u32>> {
    mask_to_csr_sized(gpu, mask, Some(nnz))
}

fn mask_to_csr_sized(gpu: &Gpu, mask: &DeviceBitMask, known_nnz: Option<usize>) -> Result<DeviceCsrPattern<u32>> {
    const OP: &str = "mask_to_csr";
    let (rows, cols) = (mask.rows, mask.cols);
    // The kernels walk a row 2048 columns at a time in 32-bit arithmetic (cuda/mask.cu): sizes up to
    // KERNEL_COUNT_MAX.
    crate::error::check_kernel_count(OP, "rows", rows)?;
    crate::error::check_kernel_count(OP, "cols", cols)?;
    // SAFETY: mask_row_counts writes counts[r] for every r < rows (one warp per row) before the scan reads them.
    let mut counts = unsafe { gpu.alloc_uninit::<u32>(rows)? };
    let words = crate::device::DeviceSlice::from(&mask.words);
    if rows > 0 {
        let per_row = LaunchShape::linear(OP, rows * 32, WARPS_PER_BLOCK * 32)?;
        let (p_words, _g0) = words.kernel_ptr(gpu, OP, "mask")?;
        let mut counts_view = crate::device::DeviceSliceMut::from(&mut counts);
        let (p_counts, _g1) = counts_view.kernel_ptr_mut(gpu, OP, "counts")?;
        // SAFETY: `words` holds ceil(rows * cols / 64) words (a DeviceBitMask is only made from a BitMask of that
        // shape), and each warp reads bits [r * cols, (r + 1) * cols) of it for r < rows; `counts` has `rows`
        // elements, written at index r < rows; the grid has one warp per row and surplus warps return; the
        // buffers are distinct allocations made here or owned by `mask`; arguments match mask_row_counts.
        unsafe {
            gpu.launch(MASK_MODULE, "mask_row_counts", per_row, &[p_words, KernelArg::U32(rows as u32), KernelArg::U32(cols as u32), p_counts])?;
        }
    }
    let (mut offsets, nnz) = match known_nnz {
        // The queued scan's offsets are exact below 2^32: the callers' masks hold fewer than 2^31 bits.
        Some(nnz) => (crate::scan::exclusive_scan_u32_queued(gpu, &counts)?.0, nnz),
        None => {
            let (offsets, total) = crate::scan::exclusive_scan_u32(gpu, &counts)?;
            (offsets, total as usize)
        }
    };
    // The scan's total is exact below u32::MAX and at least u32::MAX otherwise (saturated tile sums): u32::MAX itself
    // may stand for more, so it is refused too.
    if nnz >= u32::MAX as usize {
        return Err(CsrError::TooLargeForIndex { what: "nnz", value: nnz, max: u32::MAX as usize - 1 }.into());
    }
    if nnz > rows.saturating_mul(cols) {
        return Err(Error::Cuda { op: OP, detail: format!("scan produced {nnz} entries for a {rows}x{cols} mask") });
    }
    // Zeroed, not left uninitialized: with a caller's count that disagreed with the mask (a bug) some positions
    // would go unwritten, and zeros keep even that pattern's columns in range for later kernels.
    let mut col_indices = gpu.alloc_zeros::<u32>(nnz)?;
    // With a caller's count the kernel runs even for nnz = 0: it is what clamps the offsets to the count.
    if rows > 0 && (nnz > 0 || known_nnz.is_some()) {
        let per_row = LaunchShape::linear(OP, rows * 32, WARPS_PER_BLOCK * 32)?;
        let (p_words, _g0) = words.kernel_ptr(gpu, OP, "mask")?;
        let mut offsets_view = crate::device::DeviceSliceMut::from(&mut offsets);
        let (p_offsets, _g1) = offsets_view.kernel_ptr_mut(gpu, OP, "offsets")?;
        let mut cols_view = crate::device::DeviceSliceMut::from(&mut col_indices);
        let (p_cols, _g2) = cols_view.kernel_ptr_mut(gpu, OP, "col_indices")?;
        // SAFETY: as for mask_row_counts for the mask; offsets (rows + 1 elements, the scan's) is read at r and
        // written at r < rows and at rows by the last row's warp only; columns are written only at positions below
        // nnz, the length of col_indices, passed as the kernel's cap (offsets are the exclusive scan of the per-row
        // popcounts of the same mask, so with a right count each row writes exactly its counts[r] columns at
        // [offsets[r], offsets[r + 1])); arguments match mask_row_columns.
        unsafe {
            gpu.launch(
                MASK_MODULE,
                "mask_row_columns",
                per_row,
                &[p_words, KernelArg::U32(rows as u32), KernelArg::U32(cols as u32), p_offsets, p_cols, KernelArg::U32(nnz as u32)],
            )?;
        }
    }
    // Valid by construction: offsets are a scan from 0 to nnz of per-row counts (clamped to nnz by the kernel,
    // a no-op when nnz is the scan's total or the caller's right count) and each row's columns are written in
    // increasing order, all below `cols`; the tests check this against BitMask::to_pattern.
    let pattern = DeviceCsrPattern::from_trusted_parts(rows, cols, nnz, offsets, col_indices);
    if cfg!(debug_assertions) && known_nnz.is_none() {
        // Debug builds re-validate on the host, so a kernel bug surfaces here rather than in a later kernel (with
        // a caller's count, which exists to avoid that read-back, the caller's tests compare the pattern).
        pattern.download(gpu)?;
    }
    Ok(pattern)
}

#[cfg(all(test, feature = "emulator"))]
mod tests {
    use super::*;

    /// With the caller's count the pattern is sized from it and never read back; if that count disagreed with
    /// the mask (a bug upstream), the offsets are clamped to it and nothing is written past the column array, so
    /// every later kernel stays in bounds. A right count gives exactly mask_to_csr's pattern.
    #[test]
    fn a_counted_pattern_stays_in_bounds_whatever_the_count() {
        let gpu = Gpu::emulated(crate::device::Schedule::RoundRobin);
        let (rows, cols) = (37, 70);
        let mut mask = BitMask::zeros(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                if (r * 7 + c * 3) % 5 == 0 {
                    mask.set(r, c, true);
                }
            }
        }
        let d = DeviceBitMask::upload(&gpu, &mask).unwrap();
        let right = mask.count_ones();
        let want = mask.to_pattern::<u32>().unwrap();
        assert_eq!(mask_to_csr_counted(&gpu, &d, right).unwrap().download(&gpu).unwrap(), want);
        let syncs = gpu.host_calls().synchronizations;
        let _ = mask_to_csr_counted(&gpu, &d, right).unwrap();
        assert_eq!(gpu.host_calls().synchronizations, syncs, "nothing is read back");
        for wrong in [0, 1, right / 2, right - 1, right + 5] {
            let p = mask_to_csr_counted(&gpu, &d, wrong).unwrap();
            let offsets = gpu.download(p.row_offsets()).unwrap();
            let columns = gpu.download(p.col_indices()).unwrap();
            assert_eq!(columns.len(), wrong);
            assert_eq!(offsets.len(), rows + 1);
            assert_eq!(offsets[rows] as usize, wrong);
            assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
            assert!(columns.iter().all(|&c| (c as usize) < cols));
        }
    }
}

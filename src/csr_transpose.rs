//! CSR transpose on the device, so that both S and Sᵀ are cheap to have: the backward of a sparse layer needs
//! Sᵀ by rows (dX = dY·S reads S by columns). In fine-tuning the pattern of S stays fixed between mask refreshes
//! while its values change every step, so the transpose comes in two parts:
//!
//! - [`csr_transpose`], once per pattern: the pattern of Sᵀ and a permutation `perm` with `perm[e]` = the
//!   position in Sᵀ of entry `e` of S;
//! - [`transpose_values`], every step: `out[perm[e]] = values[e]`, one pass over the entries, no search.
//!
//! **Method** (kernels in `cuda/csr_transpose.cu`). Sᵀ's storage order is the row-major order of a `cols x rows`
//! bit mask (bit `c * rows + r` for entry `(r, c)` of S, [`crate::BitMask`]'s layout). One thread per entry sets
//! its bit with a 64-bit `atomicOr` (OR commutes, so the mask does not depend on the order of the atomics); the
//! words are popcounted and the counts scanned (the crate's one exclusive scan, `cuda/scan.cu`); then each entry's
//! position is the number of set bits below its own (the scanned offset of its word plus a masked popcount), which
//! gives `perm[e]` and where to write its row `r` as a column of Sᵀ, and row `c` of Sᵀ starts at the number of set
//! bits below bit `c * rows` (often mid-word). Rows of Sᵀ come out with strictly increasing columns without any
//! sort and with no order-dependent atomics, so the result is bitwise deterministic. The usual alternative,
//! per-column atomic counters as in csr2csc, hands out slots in arrival order and needs a segmented sort after.
//!
//! **Memory.** The mask costs `rows * cols / 8` bytes (2 MiB for 4096 x 4096, 5.6 MB for 4096 x 11008), plus 4
//! bytes of count and 4 of offset per 64-bit mask word while the transpose is built: about twice the mask in
//! all, freed before [`csr_transpose`] returns. The work is `O(nnz + rows * cols / 64)`, which suits fine-tuning
//! densities (0.1 % and up); at far lower densities the mask dominates. Above [`MAX_MASK_BITS`] (`rows * cols >
//! 2^33`, a 1 GiB mask) [`csr_transpose`] returns [`Error::WorkspaceTooLarge`] instead of trying.
//!
//! **CPU reference**: [`csr_transpose_pattern_cpu`] (pattern and `perm`) and [`csr_transpose_cpu`] (with values),
//! a plain counting sort.
use crate::csr::{Csr, CsrPattern, DeviceCsrPattern};
use crate::device::{check_no_alias, DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, Error, Result};

const MODULE: &str = "csr_transpose";
const THREADS: u32 = 256;

/// The largest mask [`csr_transpose`] builds: `rows * cols` bits, 2^33 (1 GiB of mask, about 2 GiB of scratch in
/// all). Larger shapes get [`Error::WorkspaceTooLarge`].
pub const MAX_MASK_BITS: u64 = 1 << 33;

/// Sᵀ for a CSR pattern S on the device: the pattern of Sᵀ and the permutation from S's entries to Sᵀ's.
///
/// Made only by [`csr_transpose`], and it hands out no writable access, so `perm` is known to be a permutation
/// of `0..nnz` and [`transpose_values`] trusts it without checking.
pub struct CsrTranspose {
    pattern: DeviceCsrPattern<u32>,
    perm: DeviceVec<u32>,
}

impl CsrTranspose {
    /// The pattern of Sᵀ: `S.cols() x S.rows()`, with S's number of entries.
    pub fn pattern(&self) -> &DeviceCsrPattern<u32> {
        &self.pattern
    }
    /// `perm[e]` = position in Sᵀ of entry `e` of S (`nnz` entries, a permutation of `0..nnz`), read-only.
    pub fn perm(&self) -> DeviceSlice<'_, u32> {
        (&self.perm).into()
    }
    /// Number of entries of S (and of Sᵀ).
    pub fn nnz(&self) -> usize {
        self.pattern.nnz()
    }
    /// Copies the pattern of Sᵀ (validated again on the host) and `perm` back.
    pub fn download(&self, gpu: &Gpu) -> Result<(CsrPattern<u32>, Vec<u32>)> {
        Ok((self.pattern.download(gpu)?, gpu.download(&self.perm)?))
    }
}

/// CPU reference: the pattern of Sᵀ (`s.cols() x s.rows()`) and `perm`, with `perm[e]` = the position in Sᵀ of
/// entry `e` of S, by counting sort: count the entries per column of S, scan the counts into Sᵀ's row offsets,
/// then walk S in storage order (rows increasing) and deal each entry into the next slot of its column.
pub fn csr_transpose_pattern_cpu(s: &CsrPattern<u32>) -> (CsrPattern<u32>, Vec<u32>) {
    let (cols, nnz) = (s.cols(), s.nnz());
    let mut offsets_t = vec![0u32; cols + 1];
    for &c in s.col_indices() {
        offsets_t[c as usize + 1] += 1;
    }
    for c in 0..cols {
        offsets_t[c + 1] += offsets_t[c];
    }
    let mut next: Vec<u32> = offsets_t[..cols].to_vec();
    let mut cols_t = vec![0u32; nnz];
    let mut perm = vec![0u32; nnz];
    for (e, r, c) in s.iter() {
        let p = next[c];
        next[c] += 1;
        perm[e] = p;
        cols_t[p as usize] = r as u32;
    }
    // S is valid, so this is: rows of S visited in increasing order give increasing columns in every row of Sᵀ,
    // and the dimensions and nnz fit u32 because S's do. Building through `new` re-checks it all anyway.
    let t = CsrPattern::new(s.cols(), s.rows(), offsets_t, cols_t).expect("the transpose of a valid CSR is a valid CSR");
    (t, perm)
}

/// CPU reference: Sᵀ with its values, `Sᵀ[c, r] = S[r, c]`, a `s.cols() x s.rows()` matrix with the same entries.
pub fn csr_transpose_cpu<T: Element>(s: &Csr<T, u32>) -> Csr<T, u32> {
    let (pattern_t, perm) = csr_transpose_pattern_cpu(s.pattern());
    let mut values_t = vec![T::default(); s.values().len()];
    for (e, &p) in perm.iter().enumerate() {
        values_t[p as usize] = s.values()[e];
    }
    Csr::new(pattern_t, values_t).expect("one value per entry of the transpose")
}

/// The transpose of a CSR pattern S (`rows x cols`) on the device: the pattern of Sᵀ (`cols x rows`, columns
/// strictly increasing within each row) and `perm`, with `perm[e]` = the position in Sᵀ of entry `e` of S.
/// Agrees exactly with [`csr_transpose_pattern_cpu`]; deterministic (see the module docs for the method).
///
/// Synchronizes once (the scan's total is read back and checked against `nnz`). Scratch: a `rows * cols`-bit mask
/// and 8 bytes per 64 mask bits, freed before returning. Errors: `rows * cols` above [`MAX_MASK_BITS`]
/// ([`Error::WorkspaceTooLarge`], nothing allocated), device errors. Floor: reads S (`4 * (rows + 1 + nnz)` bytes)
/// and writes Sᵀ and `perm` (`4 * (cols + 1 + 2 * nnz)`); the mask adds `rows * cols / 8` bytes zeroed, OR-ed and
/// read, and each entry reads a mask word and a word offset and writes a column at scattered addresses.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // S = [[a, 0, b], [0, c, 0]] -> Sᵀ = [[a, 0], [0, c], [b, 0]]
/// let s = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (0, 2), (1, 1)])?;
/// let t = csr_transpose(&gpu, &DeviceCsrPattern::upload(&gpu, &s)?)?;
/// let (pattern_t, perm) = t.download(&gpu)?;
/// assert_eq!(pattern_t.col_indices(), &[0, 1, 0]);
/// assert_eq!(perm, vec![0, 2, 1]);
/// let values = gpu.upload(&[1.0f32, 2.0, 3.0])?;
/// let mut values_t = gpu.alloc_zeros::<f32>(3)?;
/// transpose_values(&gpu, &t, &values, &mut values_t)?;
/// assert_eq!(gpu.download(&values_t)?, vec![1.0, 3.0, 2.0]);
/// # Ok(()) }
/// ```
pub fn csr_transpose(gpu: &Gpu, s: &DeviceCsrPattern<u32>) -> Result<CsrTranspose> {
    const OP: &str = "csr_transpose";
    let (rows, cols, nnz) = (s.rows(), s.cols(), s.nnz());
    let bits = rows as u64 * cols as u64;
    if bits > MAX_MASK_BITS {
        return Err(Error::WorkspaceTooLarge { op: OP, what: "the bit mask of Sᵀ (rows * cols bits)", bytes: bits.div_ceil(8), max: MAX_MASK_BITS / 8 });
    }
    if nnz == 0 {
        // No entries: Sᵀ has cols + 1 zero offsets and nothing else.
        let pattern = DeviceCsrPattern::from_trusted_parts(cols, rows, 0, gpu.alloc_zeros(cols + 1)?, gpu.alloc_zeros(0)?);
        return Ok(CsrTranspose { pattern, perm: gpu.alloc_zeros(0)? });
    }
    // nnz > 0, so rows >= 1 and cols >= 1; bits <= 2^33, so the word count fits u32 with room to spare.
    let n_words = bits.div_ceil(64) as usize;
    let per_entry = LaunchShape::linear(OP, nnz, THREADS)?;
    let (offsets, col_indices) = (s.row_offsets(), s.col_indices());

    let mut words = gpu.alloc_zeros::<u64>(n_words)?;
    {
        let (p_off, _g0) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
        let (p_col, _g1) = col_indices.kernel_ptr(gpu, OP, "col_indices")?;
        let mut words_view = DeviceSliceMut::from(&mut words);
        let (p_words, _g2) = words_view.kernel_ptr_mut(gpu, OP, "mask")?;
        // SAFETY: `s` is a validated DeviceCsrPattern (offsets monotone from 0 to nnz over rows + 1 entries,
        // columns < cols), so entry e < nnz has row r < rows and column c < cols and its bit c * rows + r is below
        // rows * cols, inside the n_words = ceil(rows * cols / 64) words of the mask; the grid covers nnz entries
        // and the kernel returns for e >= nnz; the mask is a fresh allocation, overlapping no input; arguments
        // match csr_transpose_mark.
        unsafe {
            gpu.launch(
                MODULE,
                "csr_transpose_mark",
                per_entry,
                &[p_off, p_col, KernelArg::U32(rows as u32), KernelArg::U32(nnz as u32), p_words],
            )?;
        }
    }

    // SAFETY: csr_transpose_word_counts writes counts[w] for every w < n_words before the scan reads them.
    let mut counts = unsafe { gpu.alloc_uninit::<u32>(n_words)? };
    {
        let words_view = DeviceSlice::from(&words);
        let (p_words, _g0) = words_view.kernel_ptr(gpu, OP, "mask")?;
        let mut counts_view = DeviceSliceMut::from(&mut counts);
        let (p_counts, _g1) = counts_view.kernel_ptr_mut(gpu, OP, "counts")?;
        // SAFETY: mask and counts both hold n_words elements and the kernel touches index w < n_words only (the
        // grid covers n_words, surplus threads return); distinct fresh allocations; arguments match
        // csr_transpose_word_counts.
        unsafe {
            gpu.launch(
                MODULE,
                "csr_transpose_word_counts",
                LaunchShape::linear(OP, n_words, THREADS)?,
                &[p_words, KernelArg::U32(n_words as u32), p_counts],
            )?;
        }
    }
    let (word_offsets, total) = crate::scan::exclusive_scan_u32(gpu, &counts)?;
    drop(counts);
    if total != nnz as u64 {
        // Cannot happen for a valid pattern (distinct entries set distinct bits); refuse rather than write out of
        // bounds below if it ever did.
        return Err(Error::Cuda { op: OP, detail: format!("the mask of Sᵀ has {total} bits set for {nnz} entries") });
    }

    // SAFETY: csr_transpose_place writes perm[e] for every entry e < nnz. (cols_t stays zeroed: it is written at
    // the positions perm names, all of [0, nnz) only because the mask's ranks are a permutation.)
    let mut perm = unsafe { gpu.alloc_uninit::<u32>(nnz)? };
    let mut cols_t = gpu.alloc_zeros::<u32>(nnz)?;
    {
        let (p_off, _g0) = offsets.kernel_ptr(gpu, OP, "row_offsets")?;
        let (p_col, _g1) = col_indices.kernel_ptr(gpu, OP, "col_indices")?;
        let words_view = DeviceSlice::from(&words);
        let (p_words, _g2) = words_view.kernel_ptr(gpu, OP, "mask")?;
        let word_offsets_view = DeviceSlice::from(&word_offsets);
        let (p_word_off, _g3) = word_offsets_view.kernel_ptr(gpu, OP, "word_offsets")?;
        let mut perm_view = DeviceSliceMut::from(&mut perm);
        let (p_perm, _g4) = perm_view.kernel_ptr_mut(gpu, OP, "perm")?;
        let mut cols_t_view = DeviceSliceMut::from(&mut cols_t);
        let (p_cols_t, _g5) = cols_t_view.kernel_ptr_mut(gpu, OP, "cols_t")?;
        // SAFETY: as for csr_transpose_mark, each entry's bit is below rows * cols, so its word index is below
        // n_words (mask) and n_words + 1 (word_offsets, the scan's output); the mask holds exactly the nnz entries'
        // bits (total == nnz checked above), so an entry's rank, the set bits strictly below its own set bit, is
        // below nnz: cols_t (nnz elements) is written in bounds, and perm (nnz) at e < nnz; perm and cols_t are
        // fresh allocations; arguments match csr_transpose_place.
        unsafe {
            gpu.launch(
                MODULE,
                "csr_transpose_place",
                per_entry,
                &[p_off, p_col, KernelArg::U32(rows as u32), KernelArg::U32(nnz as u32), p_words, p_word_off, p_perm, p_cols_t],
            )?;
        }
    }

    // SAFETY: csr_transpose_row_offsets writes offsets_t[c] for every c <= cols (the grid covers cols + 1).
    let mut offsets_t = unsafe { gpu.alloc_uninit::<u32>(cols + 1)? };
    {
        let words_view = DeviceSlice::from(&words);
        let (p_words, _g0) = words_view.kernel_ptr(gpu, OP, "mask")?;
        let word_offsets_view = DeviceSlice::from(&word_offsets);
        let (p_word_off, _g1) = word_offsets_view.kernel_ptr(gpu, OP, "word_offsets")?;
        let mut offsets_t_view = DeviceSliceMut::from(&mut offsets_t);
        let (p_offsets_t, _g2) = offsets_t_view.kernel_ptr_mut(gpu, OP, "offsets_t")?;
        // SAFETY: thread c <= cols (the grid covers cols + 1, surplus threads return) reads word_offsets at
        // c * rows / 64 <= n_words (it has n_words + 1 elements) and the mask word there only when c * rows is not
        // a multiple of 64, hence below rows * cols, so at a word index below n_words; offsets_t has cols + 1
        // elements and is a fresh allocation; arguments match csr_transpose_row_offsets.
        unsafe {
            gpu.launch(
                MODULE,
                "csr_transpose_row_offsets",
                LaunchShape::linear(OP, cols + 1, THREADS)?,
                &[p_words, p_word_off, KernelArg::U32(rows as u32), KernelArg::U32(cols as u32), p_offsets_t],
            )?;
        }
    }
    // Valid by construction: offsets_t[c] counts the entries in columns below c (0 at c = 0, nnz at c = cols),
    // and row c of Sᵀ lists the rows of S holding column c in bit order, that is increasing. The tests check all
    // of it against csr_transpose_pattern_cpu.
    let pattern = DeviceCsrPattern::from_trusted_parts(cols, rows, nnz, offsets_t, cols_t);
    if cfg!(debug_assertions) {
        // Debug builds re-validate on the host, so a kernel bug surfaces here rather than in a later kernel.
        pattern.download(gpu)?;
    }
    Ok(CsrTranspose { pattern, perm })
}

/// The values of Sᵀ from those of S: `out[perm[e]] = values[e]` for every entry `e` of S, with `perm` from `t`
/// ([`csr_transpose`] of S's pattern). Asynchronous on `gpu`'s stream; a pure copy, so bitwise exact and
/// deterministic (`perm` is a permutation, no two entries write the same element).
///
/// Shapes: `values.len() == out.len() == t.nnz()`. Errors (nothing is launched, `out` is untouched): a length
/// mismatch, `out` overlapping `values` or `perm`, buffers from another backend. Floor: reads
/// `nnz * (4 + size_of::<T>())` bytes and writes `nnz * size_of::<T>()`; the writes scatter (a 32-byte sector per
/// entry at low density).
pub fn transpose_values<'a, 'b, T: Element>(
    gpu: &Gpu,
    t: &CsrTranspose,
    values: impl Into<DeviceSlice<'a, T>>,
    out: impl Into<DeviceSliceMut<'b, T>>,
) -> Result<()> {
    const OP: &str = "transpose_values";
    let values = values.into();
    let mut out = out.into();
    let nnz = t.nnz();
    check_len(OP, "values", nnz, values.len())?;
    check_len(OP, "out", nnz, out.len())?;
    let perm = t.perm();
    check_no_alias(OP, ("out", out.addr_range(gpu)), &[("values", values.addr_range(gpu)), ("perm", perm.addr_range(gpu))])?;
    if nnz == 0 {
        return Ok(());
    }
    let launch = LaunchShape::linear(OP, nnz, THREADS)?;
    let (p_val, _g0) = values.kernel_ptr(gpu, OP, "values")?;
    let (p_perm, _g1) = perm.kernel_ptr(gpu, OP, "perm")?;
    let (p_out, _g2) = out.kernel_ptr_mut(gpu, OP, "out")?;
    let kernel = format!("transpose_values_{}", T::DTYPE.name());
    // SAFETY: `t` was made by csr_transpose, so perm holds nnz values forming a permutation of 0..nnz (every
    // write lands inside out's nnz elements, each once); values has nnz elements (checked above), read at e < nnz;
    // the grid covers nnz and the kernel returns for e >= nnz; out overlaps neither input (checked above); the
    // argument list matches SLR_TRANSPOSE_VALUES.
    unsafe { gpu.launch(MODULE, &kernel, launch, &[p_val, p_perm, KernelArg::U32(nnz as u32), p_out]) }
}

//! Compressed sparse row storage, validated at construction so kernels can trust it.
//!
//! A [`CsrPattern`] is the positions (row offsets + column indices); a [`Csr`] adds values aligned with them.
//! Invariants every constructor checks: `row_offsets.len() == rows + 1`, `row_offsets[0] == 0`, offsets
//! non-decreasing and ending at `nnz`, columns in `0..cols` and strictly increasing within a row (so no
//! duplicates), and `rows`, `cols`, `nnz` fitting the index type. The type cannot be built without these checks
//! and exposes no mutable access to its indices, so holding one is proof of validity.
use crate::dense::{DenseShape, Layout, MatRef};
use crate::element::Element;
use crate::error::{CsrError, Error, Result};

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
}

/// Index type of row offsets and column indices: `u32` or `i32` (what PyTorch/cuSPARSE call int32). Both are 4
/// bytes; once validated, values are non-negative, so kernels read either as `unsigned`.
pub trait Index:
    sealed::Sealed + Copy + Send + Sync + std::fmt::Debug + Eq + Ord + Default + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + 'static
{
    /// Largest value (and so the largest `rows`, `cols`, `nnz`) the type holds.
    const MAX: usize;
    /// The value as a signed 64-bit number (negative only for an invalid `i32`).
    fn to_i64(self) -> i64;
    /// `x` as the index type; callers check `x <= MAX` first.
    fn from_usize(x: usize) -> Self;
    #[inline]
    fn to_usize(self) -> usize {
        self.to_i64() as usize
    }
}

impl Index for u32 {
    const MAX: usize = u32::MAX as usize;
    #[inline]
    fn to_i64(self) -> i64 {
        self as i64
    }
    #[inline]
    fn from_usize(x: usize) -> Self {
        x as u32
    }
}

impl Index for i32 {
    const MAX: usize = i32::MAX as usize;
    #[inline]
    fn to_i64(self) -> i64 {
        self as i64
    }
    #[inline]
    fn from_usize(x: usize) -> Self {
        x as i32
    }
}

/// Positions of the entries of a sparse `rows x cols` matrix, in CSR form. See the module docs for the invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPattern<I: Index = u32> {
    rows: usize,
    cols: usize,
    row_offsets: Vec<I>,
    col_indices: Vec<I>,
}

fn check_fits<I: Index>(what: &'static str, value: usize) -> Result<(), CsrError> {
    if value > I::MAX {
        return Err(CsrError::TooLargeForIndex { what, value, max: I::MAX });
    }
    Ok(())
}

impl<I: Index> CsrPattern<I> {
    /// Validates and takes ownership of the arrays (no copy). Errors name the first violated invariant.
    ///
    /// ```
    /// use sparse_lowrank::*;
    /// // 3 x 4: row 0 holds columns 1 and 3, row 1 is empty, row 2 holds column 0.
    /// let p = CsrPattern::<u32>::new(3, 4, vec![0, 2, 2, 3], vec![1, 3, 0]).unwrap();
    /// assert_eq!((p.nnz(), p.row_range(2)), (3, 2..3));
    /// assert_eq!(p, CsrPattern::from_coo(3, 4, &[(2, 0), (0, 3), (0, 1)]).unwrap());
    /// // Columns must increase within a row: the error names what is wrong.
    /// assert!(CsrPattern::<u32>::new(3, 4, vec![0, 2, 2, 3], vec![3, 1, 0]).is_err());
    /// ```
    pub fn new(rows: usize, cols: usize, row_offsets: Vec<I>, col_indices: Vec<I>) -> Result<Self> {
        check_fits::<I>("rows", rows)?;
        check_fits::<I>("cols", cols)?;
        check_fits::<I>("nnz", col_indices.len())?;
        if row_offsets.len() != rows + 1 {
            return Err(CsrError::OffsetsLength { expected: rows + 1, got: row_offsets.len() }.into());
        }
        if row_offsets[0].to_i64() != 0 {
            return Err(CsrError::OffsetsStart { got: row_offsets[0].to_i64() }.into());
        }
        for r in 0..rows {
            if row_offsets[r + 1] < row_offsets[r] {
                return Err(CsrError::OffsetsDecreasing { row: r }.into());
            }
        }
        let nnz = col_indices.len();
        if row_offsets[rows].to_i64() != nnz as i64 {
            return Err(CsrError::OffsetsEnd { last: row_offsets[rows].to_i64(), nnz }.into());
        }
        for r in 0..rows {
            let (lo, hi) = (row_offsets[r].to_usize(), row_offsets[r + 1].to_usize());
            for e in lo..hi {
                let c = col_indices[e].to_i64();
                if c < 0 || c >= cols as i64 {
                    return Err(CsrError::ColumnOutOfRange { row: r, entry: e, col: c, cols }.into());
                }
                if e > lo && col_indices[e] <= col_indices[e - 1] {
                    return Err(CsrError::ColumnsNotIncreasing { row: r, entry: e }.into());
                }
            }
        }
        Ok(CsrPattern { rows, cols, row_offsets, col_indices })
    }

    /// A pattern with no entries. Errors (nothing allocated) when `rows` or `cols` does not fit `I`.
    pub fn empty(rows: usize, cols: usize) -> Result<Self> {
        check_fits::<I>("rows", rows)?;
        check_fits::<I>("cols", cols)?;
        Self::new(rows, cols, vec![I::default(); rows + 1], Vec::new())
    }

    /// From `(row, col)` positions in any order; duplicates are merged. Errors on a position outside the matrix.
    pub fn from_coo(rows: usize, cols: usize, positions: &[(usize, usize)]) -> Result<Self> {
        let (pattern, _) = coo_to_csr_order(rows, cols, positions)?;
        Ok(pattern)
    }

    /// The positions where `keep(r, c, A[r, c])` holds, scanned row by row.
    pub fn from_dense_predicate<T: Copy>(dense: MatRef<'_, T>, mut keep: impl FnMut(usize, usize, T) -> bool) -> Result<Self> {
        let (rows, cols) = (dense.rows(), dense.cols());
        check_fits::<I>("rows", rows)?;
        check_fits::<I>("cols", cols)?;
        let mut row_offsets = Vec::with_capacity(rows + 1);
        let mut col_indices = Vec::new();
        row_offsets.push(I::default());
        for r in 0..rows {
            for c in 0..cols {
                if keep(r, c, dense.get(r, c)) {
                    col_indices.push(I::from_usize(c));
                }
            }
            check_fits::<I>("nnz", col_indices.len())?;
            row_offsets.push(I::from_usize(col_indices.len()));
        }
        Ok(CsrPattern { rows, cols, row_offsets, col_indices })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.col_indices.len()
    }
    pub fn row_offsets(&self) -> &[I] {
        &self.row_offsets
    }
    pub fn col_indices(&self) -> &[I] {
        &self.col_indices
    }
    /// Entry range of row `r`.
    ///
    /// # Panics
    /// If `r >= rows`, like slice indexing.
    #[inline]
    pub fn row_range(&self, r: usize) -> std::ops::Range<usize> {
        self.row_offsets[r].to_usize()..self.row_offsets[r + 1].to_usize()
    }
    /// `(entry, row, col)` for every entry in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.rows).flat_map(move |r| self.row_range(r).map(move |e| (e, r, self.col_indices[e].to_usize())))
    }
    /// The arrays, giving up the validity guarantee.
    pub fn into_parts(self) -> (Vec<I>, Vec<I>) {
        (self.row_offsets, self.col_indices)
    }
}

/// Sorts COO positions into CSR order, merging duplicates. Returns the pattern and, for each input position, the
/// CSR entry it landed in.
fn coo_to_csr_order<I: Index>(rows: usize, cols: usize, positions: &[(usize, usize)]) -> Result<(CsrPattern<I>, Vec<usize>)> {
    check_fits::<I>("rows", rows)?;
    check_fits::<I>("cols", cols)?;
    for (k, &(r, c)) in positions.iter().enumerate() {
        if r >= rows || c >= cols {
            return Err(CsrError::CooOutOfRange { entry: k, row: r, col: c, rows, cols }.into());
        }
    }
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_unstable_by_key(|&k| positions[k]);
    let mut slot = vec![0usize; positions.len()];
    let mut row_offsets = vec![I::default(); rows + 1];
    let mut col_indices: Vec<I> = Vec::with_capacity(positions.len());
    let mut counts = vec![0usize; rows];
    let mut prev: Option<(usize, usize)> = None;
    for &k in &order {
        let p = positions[k];
        if prev != Some(p) {
            col_indices.push(I::from_usize(p.1));
            counts[p.0] += 1;
            prev = Some(p);
        }
        slot[k] = col_indices.len() - 1;
    }
    check_fits::<I>("nnz", col_indices.len())?;
    let mut acc = 0usize;
    for r in 0..rows {
        acc += counts[r];
        row_offsets[r + 1] = I::from_usize(acc);
    }
    Ok((CsrPattern { rows, cols, row_offsets, col_indices }, slot))
}

/// A sparse matrix: a validated pattern and one value per entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr<T, I: Index = u32> {
    pattern: CsrPattern<I>,
    values: Vec<T>,
}

impl<T: Element, I: Index> Csr<T, I> {
    /// Pairs a pattern with its values; errors unless `values.len() == pattern.nnz()`.
    pub fn new(pattern: CsrPattern<I>, values: Vec<T>) -> Result<Self> {
        if values.len() != pattern.nnz() {
            return Err(Error::LengthMismatch { op: "Csr::new", what: "values", expected: pattern.nnz(), got: values.len() });
        }
        Ok(Csr { pattern, values })
    }

    /// From `(row, col, value)` triplets in any order. Duplicates are summed in f32 and rounded once to `T`
    /// (the convention of scipy and `torch.sparse_coo_tensor(...).coalesce()`).
    ///
    /// ```
    /// use sparse_lowrank::*;
    /// let s = Csr::<f32>::from_coo(2, 3, &[(1, 2, 4.0), (0, 0, 1.0), (1, 2, 0.5)]).unwrap();
    /// assert_eq!(s.values(), &[1.0, 4.5]); // (1, 2) given twice: summed
    /// assert_eq!(s.to_dense(Layout::RowMajor), vec![1.0, 0.0, 0.0, 0.0, 0.0, 4.5]);
    /// ```
    pub fn from_coo(rows: usize, cols: usize, triplets: &[(usize, usize, T)]) -> Result<Self> {
        let positions: Vec<(usize, usize)> = triplets.iter().map(|&(r, c, _)| (r, c)).collect();
        let (pattern, slot) = coo_to_csr_order::<I>(rows, cols, &positions)?;
        let mut sums = vec![0f32; pattern.nnz()];
        for (k, &(_, _, v)) in triplets.iter().enumerate() {
            sums[slot[k]] += v.to_f32();
        }
        let values = sums.into_iter().map(T::from_f32).collect();
        Ok(Csr { pattern, values })
    }

    /// The entries of `dense` where `keep(r, c, value)` holds, with their values.
    pub fn from_dense(dense: MatRef<'_, T>, mut keep: impl FnMut(usize, usize, T) -> bool) -> Result<Self> {
        let pattern = CsrPattern::from_dense_predicate(dense, &mut keep)?;
        let values = pattern.iter().map(|(_, r, c)| dense.get(r, c)).collect();
        Ok(Csr { pattern, values })
    }

    /// A dense `rows x cols` buffer in `layout` (packed leading dimension), zero where there is no entry.
    ///
    /// # Panics
    /// If `rows * cols` elements cannot be allocated (a valid pattern may declare a shape far larger than its
    /// entries); [`Csr::try_to_dense`] returns that as an error.
    pub fn to_dense(&self, layout: Layout) -> Vec<T> {
        match self.try_to_dense(layout) {
            Ok(v) => v,
            Err(e) => panic!("Csr::to_dense: {e}"),
        }
    }

    /// [`Csr::to_dense`], or `WorkspaceTooLarge` (nothing allocated) when `rows * cols` elements overflow or cannot
    /// be allocated.
    pub fn try_to_dense(&self, layout: Layout) -> Result<Vec<T>> {
        const OP: &str = "Csr::to_dense";
        let shape = DenseShape::packed(self.pattern.rows, self.pattern.cols, layout);
        // rows * cols, saturated at usize::MAX when it overflows (which no reservation can hold either).
        let len = shape.required_len();
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| Error::WorkspaceTooLarge {
            op: OP,
            what: "dense matrix",
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
            max: isize::MAX as u64,
        })?;
        out.resize(len, T::default());
        for (e, r, c) in self.pattern.iter() {
            out[shape.offset(r, c)] = self.values[e];
        }
        Ok(out)
    }

    pub fn pattern(&self) -> &CsrPattern<I> {
        &self.pattern
    }
    pub fn values(&self) -> &[T] {
        &self.values
    }
    /// Values may change freely: they carry no invariant.
    pub fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }
    pub fn into_parts(self) -> (CsrPattern<I>, Vec<T>) {
        (self.pattern, self.values)
    }
}

/// A CSR pattern on the device. Only [`DeviceCsrPattern::upload`] makes one, from a validated [`CsrPattern`],
/// and it hands out no writable access, so kernels trust its offsets and columns without checking them again.
pub struct DeviceCsrPattern<I: Index = u32> {
    rows: usize,
    cols: usize,
    nnz: usize,
    row_offsets: crate::device::DeviceVec<I>,
    col_indices: crate::device::DeviceVec<I>,
    /// The longest row's entry count, once known (kernel choice for skewed patterns).
    max_row_len: std::sync::OnceLock<usize>,
}

impl<I: Index> DeviceCsrPattern<I> {
    /// Copies a validated pattern to the device.
    pub fn upload(gpu: &crate::Gpu, pattern: &CsrPattern<I>) -> Result<Self> {
        let longest = (0..pattern.rows).map(|r| pattern.row_range(r).len()).max().unwrap_or(0);
        Ok(DeviceCsrPattern {
            rows: pattern.rows,
            cols: pattern.cols,
            nnz: pattern.nnz(),
            row_offsets: gpu.upload(&pattern.row_offsets)?,
            col_indices: gpu.upload(&pattern.col_indices)?,
            max_row_len: std::sync::OnceLock::from(longest),
        })
    }

    /// The number of entries in the longest row. Known at [`upload`](Self::upload); for a pattern a kernel made
    /// (`mask_to_csr`, `csr_transpose`, `topk_csr`) the row offsets are read back once (`rows + 1` values, one
    /// synchronization) and the answer kept.
    pub fn max_row_len(&self, gpu: &crate::Gpu) -> Result<usize> {
        if let Some(&n) = self.max_row_len.get() {
            return Ok(n);
        }
        let offsets = gpu.download(&self.row_offsets)?;
        let longest = offsets.windows(2).map(|w| w[1].to_usize().saturating_sub(w[0].to_usize())).max().unwrap_or(0);
        Ok(*self.max_row_len.get_or_init(|| longest))
    }
    /// A pattern whose arrays a kernel of this crate computed and whose validity the kernel guarantees (for
    /// example `mask_to_csr`); never exposed publicly.
    pub(crate) fn from_trusted_parts(
        rows: usize,
        cols: usize,
        nnz: usize,
        row_offsets: crate::device::DeviceVec<I>,
        col_indices: crate::device::DeviceVec<I>,
    ) -> Self {
        DeviceCsrPattern { rows, cols, nnz, row_offsets, col_indices, max_row_len: std::sync::OnceLock::new() }
    }

    /// Copies the pattern back to the host.
    pub fn download(&self, gpu: &crate::Gpu) -> Result<CsrPattern<I>> {
        let offsets = gpu.download(&self.row_offsets)?;
        let cols = gpu.download(&self.col_indices)?;
        CsrPattern::new(self.rows, self.cols, offsets, cols)
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn nnz(&self) -> usize {
        self.nnz
    }
    /// Row offsets (`rows + 1` entries), read-only.
    pub fn row_offsets(&self) -> crate::device::DeviceSlice<'_, I> {
        (&self.row_offsets).into()
    }
    /// Column indices (`nnz` entries), read-only.
    pub fn col_indices(&self) -> crate::device::DeviceSlice<'_, I> {
        (&self.col_indices).into()
    }
}

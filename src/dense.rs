//! Dense matrix views over plain host slices: shape, leading dimension and layout, checked once at construction.
//! The same [`DenseShape`] describes device views ([`crate::DeviceMatRef`]), so the indexing rule lives here only.
use crate::error::{Error, Result};

/// Storage order of a dense matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `A[r, c]` at `r * ld + c` (what PyTorch/candle store).
    RowMajor,
    /// `A[r, c]` at `c * ld + r` (what BLAS stores).
    ColMajor,
}

/// Shape, leading dimension and layout of a dense matrix: `A[r, c]` lives at `r * row_stride() + c * col_stride()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DenseShape {
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub layout: Layout,
}

impl DenseShape {
    /// The same elements seen as the transpose: `cols x rows`, the other layout, the same leading dimension.
    pub fn transposed(self) -> Self {
        let layout = match self.layout {
            Layout::RowMajor => Layout::ColMajor,
            Layout::ColMajor => Layout::RowMajor,
        };
        DenseShape { rows: self.cols, cols: self.rows, ld: self.ld, layout }
    }
    /// A shape with the tightest leading dimension (`cols` for row-major, `rows` for column-major).
    pub fn packed(rows: usize, cols: usize, layout: Layout) -> Self {
        let ld = match layout {
            Layout::RowMajor => cols,
            Layout::ColMajor => rows,
        };
        DenseShape { rows, cols, ld, layout }
    }

    /// Elements along the contiguous direction (the minimum leading dimension).
    pub fn inner(&self) -> usize {
        match self.layout {
            Layout::RowMajor => self.cols,
            Layout::ColMajor => self.rows,
        }
    }

    /// Rows of a row-major matrix, columns of a column-major one: the count of contiguous runs.
    pub(crate) fn outer(&self) -> usize {
        match self.layout {
            Layout::RowMajor => self.rows,
            Layout::ColMajor => self.cols,
        }
    }

    /// Elements a buffer must hold: `(outer - 1) * ld + inner`, or 0 for an empty matrix; `usize::MAX` when that
    /// product or sum overflows (no buffer can hold it, so [`DenseShape::validate`] refuses it).
    pub fn required_len(&self) -> usize {
        self.checked_extent().unwrap_or(usize::MAX)
    }

    /// `(outer - 1) * ld + inner` (0 for an empty matrix), or `None` when it overflows usize.
    fn checked_extent(&self) -> Option<usize> {
        if self.rows == 0 || self.cols == 0 {
            Some(0)
        } else {
            (self.outer() - 1).checked_mul(self.ld).and_then(|x| x.checked_add(self.inner()))
        }
    }

    pub fn row_stride(&self) -> usize {
        match self.layout {
            Layout::RowMajor => self.ld,
            Layout::ColMajor => 1,
        }
    }

    pub fn col_stride(&self) -> usize {
        match self.layout {
            Layout::RowMajor => 1,
            Layout::ColMajor => self.ld,
        }
    }

    /// Offset of `A[r, c]`; callers keep `r < rows`, `c < cols` on a shape that [`DenseShape::validate`] accepted
    /// (the fields are public: on an unvalidated shape the arithmetic may overflow, which panics in debug builds).
    #[inline]
    pub fn offset(&self, r: usize, c: usize) -> usize {
        r * self.row_stride() + c * self.col_stride()
    }

    /// Checks `ld` against the contiguous extent and `len` against the shape's needs.
    pub fn validate(&self, op: &'static str, what: &'static str, len: usize) -> Result<()> {
        if self.ld < self.inner() {
            return Err(Error::InvalidLeadingDimension { op, ld: self.ld, min: self.inner() });
        }
        // An extent that overflows usize needs more than any buffer holds (it was taken as 0 until 2026-11-29, which
        // let a huge ld through to kernels that then addressed outside the buffer); refused even against a slice of
        // usize::MAX zero-sized elements.
        match self.checked_extent() {
            Some(needed) if len >= needed => {}
            needed => return Err(Error::BufferTooSmall { op, what, needed: needed.unwrap_or(usize::MAX), got: len }),
        }
        Ok(())
    }
}

/// A borrowed dense matrix on the host.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    shape: DenseShape,
}

/// A mutably borrowed dense matrix on the host.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    shape: DenseShape,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A view of `data` as `rows x cols` with leading dimension `ld`. Errors if `ld` is below the contiguous
    /// extent or `data` is too short.
    pub fn new(data: &'a [T], rows: usize, cols: usize, ld: usize, layout: Layout) -> Result<Self> {
        let shape = DenseShape { rows, cols, ld, layout };
        shape.validate("MatRef::new", "data", data.len())?;
        Ok(MatRef { data, shape })
    }
    /// Row-major with `ld = cols`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, Layout::RowMajor)
    }
    /// Column-major with `ld = rows`.
    pub fn col_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, rows, Layout::ColMajor)
    }
    pub fn shape(&self) -> DenseShape {
        self.shape
    }
    pub fn rows(&self) -> usize {
        self.shape.rows
    }
    pub fn cols(&self) -> usize {
        self.shape.cols
    }
    pub fn data(&self) -> &'a [T] {
        self.data
    }
    /// `A[r, c]`; panics only on an index outside the shape (a caller bug, like slice indexing).
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> T {
        assert!(r < self.shape.rows && c < self.shape.cols, "index ({r}, {c}) outside the matrix");
        self.data[self.shape.offset(r, c)]
    }
}

impl<'a, T: Copy> MatMut<'a, T> {
    /// A mutable view; same checks as [`MatRef::new`].
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, ld: usize, layout: Layout) -> Result<Self> {
        let shape = DenseShape { rows, cols, ld, layout };
        shape.validate("MatMut::new", "data", data.len())?;
        Ok(MatMut { data, shape })
    }
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, Layout::RowMajor)
    }
    pub fn col_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, rows, Layout::ColMajor)
    }
    pub fn shape(&self) -> DenseShape {
        self.shape
    }
    pub fn rows(&self) -> usize {
        self.shape.rows
    }
    pub fn cols(&self) -> usize {
        self.shape.cols
    }
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef { data: self.data, shape: self.shape }
    }
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> T {
        self.as_ref().get(r, c)
    }
    /// `&mut A[r, c]`; panics only on an index outside the shape.
    #[inline]
    pub fn get_mut(&mut self, r: usize, c: usize) -> &mut T {
        assert!(r < self.shape.rows && c < self.shape.cols, "index ({r}, {c}) outside the matrix");
        &mut self.data[self.shape.offset(r, c)]
    }
}

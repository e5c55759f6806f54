//! The crate's one error type. Each variant says what was wrong and where; none carries a bare string where a
//! typed field can say it.
use std::fmt;

/// Why a CSR pattern was rejected (see [`crate::CsrPattern::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrError {
    /// `row_offsets` must have `rows + 1` entries.
    OffsetsLength { expected: usize, got: usize },
    /// `row_offsets[0]` must be 0.
    OffsetsStart { got: i64 },
    /// `row_offsets[row + 1] < row_offsets[row]`.
    OffsetsDecreasing { row: usize },
    /// `row_offsets[rows]` must equal the number of column indices.
    OffsetsEnd { last: i64, nnz: usize },
    /// A column index outside `0..cols`.
    ColumnOutOfRange { row: usize, entry: usize, col: i64, cols: usize },
    /// Columns within a row must be strictly increasing (sorted, no duplicates).
    ColumnsNotIncreasing { row: usize, entry: usize },
    /// A dimension or the entry count does not fit the index type.
    TooLargeForIndex { what: &'static str, value: usize, max: usize },
    /// A COO entry outside the matrix.
    CooOutOfRange { entry: usize, row: usize, col: usize, rows: usize, cols: usize },
}

/// Every failure the crate reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two operands' shapes disagree.
    ShapeMismatch { op: &'static str, what: &'static str, expected: (usize, usize), got: (usize, usize) },
    /// A buffer or value array has the wrong number of elements.
    LengthMismatch { op: &'static str, what: &'static str, expected: usize, got: usize },
    /// A dense view's buffer is shorter than its shape and leading dimension need.
    BufferTooSmall { op: &'static str, what: &'static str, needed: usize, got: usize },
    /// The leading dimension is smaller than the contiguous extent.
    InvalidLeadingDimension { op: &'static str, ld: usize, min: usize },
    /// An invalid CSR pattern.
    InvalidCsr(CsrError),
    /// An output buffer overlaps an input buffer.
    Aliasing { op: &'static str, output: &'static str, input: &'static str },
    /// No CUDA driver library (`libcuda.so`) could be loaded on this machine.
    NoCudaDriver,
    /// The driver loaded but reports no usable device (or the ordinal is out of range).
    NoCudaDevice { ordinal: usize, detail: String },
    /// The crate was built without nvcc, so there are no kernels to launch.
    KernelsNotBuilt,
    /// A kernel module or function is missing from the embedded fatbins.
    KernelNotFound { module: &'static str, kernel: String },
    /// A CUDA library (cuBLAS, ...) could not be loaded.
    LibraryMissing { library: &'static str },
    /// The CUDA driver returned an error.
    Cuda { op: &'static str, detail: String },
    /// A buffer belongs to another device backend, another GPU or another CUDA context than the handle it is used
    /// with.
    WrongDevice { op: &'static str, what: &'static str },
    /// A buffer was allocated on another CUDA stream than the handle's (cudarc's per-buffer events cannot order a
    /// use on a second stream soundly in every case), or its cudarc context object tracks events and the handle's
    /// does not (our use would go unrecorded): use it on a handle of its own stream ([`crate::Gpu::from_stream`]),
    /// or copy it.
    WrongStream { op: &'static str, what: &'static str },
    /// The SIMT emulator reported a fault (out-of-bounds access, deadlock, bad launch) in a kernel.
    Emulator { kernel: String, message: String },
    /// An op's scratch memory would exceed the limit its documentation states (nothing was allocated).
    WorkspaceTooLarge { op: &'static str, what: &'static str, bytes: u64, max: u64 },
    /// A selection asked for more entries than it selects from (`k > n`; any `k > 0` of an empty matrix or row).
    CountOutOfRange { op: &'static str, k: usize, n: usize },
    /// A fraction of entries to select outside `[0, 1]` (or NaN).
    FractionOutOfRange { op: &'static str, fraction: f64 },
    /// NaNs where the policy refuses them: `count` of them in `what` (the keys, or a threshold).
    NanKeys { op: &'static str, what: &'static str, count: usize },
    /// A matrix with no rows or no columns where the op needs at least one of each.
    EmptyMatrix { op: &'static str, what: &'static str, rows: usize, cols: usize },
    /// A requested rank outside `1..=max` (max = min(rows, cols)).
    InvalidRank { op: &'static str, rank: usize, max: usize },
    /// An input holds `count` NaN or infinite entries.
    NonFinite { op: &'static str, what: &'static str, count: usize },
    /// A dense factorization on the host did not converge (faer's SVD iteration limit).
    NoConvergence { op: &'static str, what: &'static str },
    /// A caller's buffer does not start at the alignment (in bytes) the op's vector loads need.
    Misaligned { op: &'static str, what: &'static str, align: usize },
    /// A size above what the op's kernels count in 32-bit arithmetic ([`KERNEL_COUNT_MAX`] for most).
    TooLarge { op: &'static str, what: &'static str, value: usize, max: usize },
}

/// The largest row count, column count, K, T or entry count a kernel takes as a 32-bit counter: 2^32 - 2^16. The
/// kernels step such counters by up to 2048 (a warp's walk along a mask row) and round counts up by up to 127
/// (whole tiles) in 32-bit arithmetic, so a size within that of 2^32 made a loop wrap around and run forever (or
/// re-add entries), or a tile count come out 0 and skip the work; below this limit every such sum stays under 2^32.
pub const KERNEL_COUNT_MAX: usize = u32::MAX as usize - 0xffff;

impl From<CsrError> for Error {
    fn from(e: CsrError) -> Self {
        Error::InvalidCsr(e)
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for CsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsrError::OffsetsLength { expected, got } => {
                write!(f, "row_offsets has {got} entries, expected rows + 1 = {expected}")
            }
            CsrError::OffsetsStart { got } => write!(f, "row_offsets[0] is {got}, must be 0"),
            CsrError::OffsetsDecreasing { row } => write!(f, "row_offsets decreases at row {row}"),
            CsrError::OffsetsEnd { last, nnz } => {
                write!(f, "row_offsets ends at {last} but there are {nnz} column indices")
            }
            CsrError::ColumnOutOfRange { row, entry, col, cols } => {
                write!(f, "column index {col} at entry {entry} (row {row}) is outside 0..{cols}")
            }
            CsrError::ColumnsNotIncreasing { row, entry } => {
                write!(f, "columns of row {row} are not strictly increasing at entry {entry}")
            }
            CsrError::TooLargeForIndex { what, value, max } => {
                write!(f, "{what} = {value} does not fit the index type (max {max})")
            }
            CsrError::CooOutOfRange { entry, row, col, rows, cols } => {
                write!(f, "COO entry {entry} at ({row}, {col}) is outside a {rows}x{cols} matrix")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, what, expected, got } => write!(
                f,
                "{op}: {what} has shape {}x{}, expected {}x{}",
                got.0, got.1, expected.0, expected.1
            ),
            Error::LengthMismatch { op, what, expected, got } => {
                write!(f, "{op}: {what} has {got} elements, expected {expected}")
            }
            Error::BufferTooSmall { op, what, needed, got } => {
                write!(f, "{op}: {what} holds {got} elements, its shape needs {needed}")
            }
            Error::InvalidLeadingDimension { op, ld, min } => {
                write!(f, "{op}: leading dimension {ld} is smaller than {min}")
            }
            Error::InvalidCsr(e) => write!(f, "invalid CSR: {e}"),
            Error::Aliasing { op, output, input } => write!(f, "{op}: output {output} overlaps input {input}"),
            Error::NoCudaDriver => write!(
                f,
                "no CUDA driver: libcuda.so could not be loaded (install an NVIDIA driver >= 580, or use the CPU reference)"
            ),
            Error::NoCudaDevice { ordinal, detail } => write!(f, "no CUDA device {ordinal}: {detail}"),
            Error::KernelsNotBuilt => write!(
                f,
                "the CUDA kernels were not built (no nvcc when this crate was compiled): run scripts/install-toolchain.sh or set NVCC, then rebuild"
            ),
            Error::KernelNotFound { module, kernel } => {
                write!(f, "kernel {kernel} not found in module {module} (was it built for this GPU's architecture?)")
            }
            Error::LibraryMissing { library } => write!(f, "CUDA library {library} could not be loaded"),
            Error::Cuda { op, detail } => write!(f, "{op}: CUDA error: {detail}"),
            Error::WrongDevice { op, what } => write!(f, "{op}: {what} lives on another device backend, GPU or CUDA context"),
            Error::WrongStream { op, what } => write!(
                f,
                "{op}: {what} belongs to another CUDA stream or cudarc context object than this handle's (use a handle made with Gpu::from_stream on its stream)"
            ),
            Error::Emulator { kernel, message } => write!(f, "emulated kernel {kernel}: {message}"),
            Error::WorkspaceTooLarge { op, what, bytes, max } => {
                write!(f, "{op}: {what} would take {bytes} bytes of scratch memory, above the limit of {max}")
            }
            Error::CountOutOfRange { op, k, n } => write!(f, "{op}: cannot select {k} of {n} entries"),
            Error::FractionOutOfRange { op, fraction } => {
                write!(f, "{op}: fraction {fraction} is outside [0, 1]")
            }
            Error::NanKeys { op, what, count } => write!(
                f,
                "{op}: {count} NaN(s) in {what} (NanPolicy::Error; NanPolicy::AboveInfinity ranks NaN above +inf)"
            ),
            Error::EmptyMatrix { op, what, rows, cols } => write!(f, "{op}: {what} is empty ({rows}x{cols})"),
            Error::InvalidRank { op, rank, max } => write!(f, "{op}: rank {rank} is outside 1..={max}"),
            Error::NonFinite { op, what, count } => write!(f, "{op}: {what} holds {count} NaN or infinite entries"),
            Error::NoConvergence { op, what } => write!(f, "{op}: {what} did not converge"),
            Error::Misaligned { op, what, align } => write!(f, "{op}: {what} must start at a multiple of {align} bytes"),
            Error::TooLarge { op, what, value, max } => write!(f, "{op}: {what} = {value} is above the kernels' limit of {max}"),
        }
    }
}

impl std::error::Error for Error {}

/// `ShapeMismatch` unless `got == expected`.
pub(crate) fn check_shape(op: &'static str, what: &'static str, expected: (usize, usize), got: (usize, usize)) -> Result<()> {
    if expected != got {
        return Err(Error::ShapeMismatch { op, what, expected, got });
    }
    Ok(())
}

/// `TooLarge` when `value` exceeds [`KERNEL_COUNT_MAX`].
pub(crate) fn check_kernel_count(op: &'static str, what: &'static str, value: usize) -> Result<()> {
    if value > KERNEL_COUNT_MAX {
        return Err(Error::TooLarge { op, what, value, max: KERNEL_COUNT_MAX });
    }
    Ok(())
}

/// `LengthMismatch` unless `got == expected`.
pub(crate) fn check_len(op: &'static str, what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::LengthMismatch { op, what, expected, got });
    }
    Ok(())
}

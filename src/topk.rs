//! Exact top-k selection over a matrix or over each of its rows: the step that picks which entries of a weight
//! are trainable (LIFT's top magnitudes, SpIEL's regrowth by largest gradient and pruning by smallest delta,
//! DSEE's top 128, SNELL's and Sparse MeZO's quantile thresholds). Kernels: `cuda/topk.cu` (radix select).
//!
//! # The order
//! Each element `x` has a key: `|x|` ([`RankBy::Magnitude`], so `-0.0` and `+0.0` are equal) or `x`
//! ([`RankBy::Value`], with `-0.0 == +0.0` as in IEEE comparison). Selecting the largest k ([`Direction::Largest`])
//! takes the k greatest keys, [`Direction::Smallest`] the k least. Among equal keys the lower flat index
//! (`r * cols + c`) wins, so every selection is a function of the input alone: the same on every run, on the CPU
//! reference and on any device, whatever the ties (bf16 weights have many). With K* the k-th key in this order
//! and `c_gt` the count of keys strictly beyond it, the selection is every key beyond K* plus the first
//! `k - c_gt` keys equal to K* in flat-index order.
//!
//! # NaN and infinities
//! ±inf are ordinary keys (`|±inf|` is the largest finite-or-infinite magnitude). NaN is refused by default:
//! [`NanPolicy::Error`] returns [`Error::NanKeys`] naming the count. [`NanPolicy::AboveInfinity`] follows torch:
//! every NaN (any sign or payload) ranks above `+inf` in both directions (so `Largest` takes NaNs first and
//! `Smallest` takes them last), and NaNs tie with each other (lower index first).
//!
//! # What to select
//! [`Selection::Count`] (exactly k per matrix or per row, `0 <= k <= n`), [`Selection::Fraction`] (k =
//! `round(q * n)`, half away from zero, `q` in `[0, 1]`: the quantile mode, with no 2^24 limit), and
//! [`Selection::Beyond`] (every entry whose key is strictly beyond the key of `t`: `|x| > |t|` by magnitude,
//! `x > t` or `x < t` by value; `t` may not be NaN). Sizes up to `2^31 - 1` elements.
//!
//! # Outputs, each on its own
//! [`topk_threshold`] (per segment: the k-th key and the exact counts, [`TopkCut`]), [`topk_mask`] (a
//! [`DeviceBitMask`]), [`topk_csr`] (a sorted [`DeviceCsrPattern<u32>`] and the selected values gathered in its
//! order), [`topk_mask_only`] and [`topk_csr_only`] (the same without the cuts: per row with NaN ranked above
//! infinity they wait for nothing, every launch queued on the stream; the CSR for counts and fractions, whose
//! rows take exactly k each). The CPU reference [`topk_cpu`] gives the mask and the cuts.
//!
//! # Device paths (all exact, all giving the reference's selection)
//! - **Per row, rows whose keys fit one block's shared memory** (the device's opt-in limit less 9.5 KiB: on sm_90
//!   55 k f32 keys or 111 k f16/bf16; sm_80 39 k / 78 k; sm_86/89 23 k / 46 k): one block per row reads its row
//!   once into shared memory (at the keys' width) and does the radix passes, the tie ranks and the mask bits there
//!   (`topk_select_rows_<dtype>`, one launch). A whole matrix that small is one such row.
//! - **Per matrix, counts over at least 2^18 keys**: a sample bracket. A deterministic stratified sample of 4096
//!   keys gives two keys `lo <= hi` around the k-th (the expected sample rank, widened by 4 binomial standard
//!   deviations plus 8); one pass over all keys counts those above `hi` (and sets their mask bits), writes those in
//!   `[lo, hi]` with their flat indices (a few percent of n) to per-block regions in flat-index order, and counts
//!   them in at most 1024 power-of-two-wide bins of `[lo, hi]`. The pass's last block checks the bracket with the
//!   exact counts (fewer than k above `hi`, at least k at or above `lo`, no region past its capacity of a quarter
//!   of its keys) and names the bin holding K*; later levels over the candidates cut that bin into at most 4096
//!   each until it is one key (two levels for f32, one for 16-bit keys): K* and the counts are then final. The keys equal to K* are ranked in
//!   flat-index order (per-region counts and their scan) only when the quota leaves some of them out, and the
//!   candidates' bits are set. All queued, one synchronization. When the check fails (heavy ties at the cut, a
//!   layout that crowds the candidates, an unlucky sample) the radix passes below run instead: same result, one
//!   wasted pass. For the cut alone ([`topk_threshold`]) the pass appends the candidates' values to one list instead
//!   (no indices, no mask, any order: the cut does not depend on it), and the same levels run over the list.
//! - **k = n over a whole matrix**: every entry; one pass finds the smallest key and its count (the cut) and the
//!   mask is all ones.
//! - **Otherwise** (smaller matrices, longer rows, thresholds): 8-bit radix passes over all keys in global
//!   memory (a histogram per digit with the candidate filter fused in, a per-tile count, a ranked select).
use crate::csr::DeviceCsrPattern;
use crate::device::{DeviceMatRef, DeviceSlice, DeviceSliceMut, DeviceVec, Gpu, KernelArg, LaunchShape};
use crate::element::Element;
use crate::error::{check_len, CsrError, Error, Result};
use crate::mask::{BitMask, DeviceBitMask};
use half::{bf16, f16};

const MODULE: &str = "topk";
const THREADS: u32 = 256;
/// Elements per tile of the count and select kernels (256 threads x 16); a multiple of 64.
const TILE: usize = 4096;
const BINS: usize = 256;
const STATE_WORDS: usize = 8;
/// Histogram blocks in flight over all segments, at most (each adds at most 256 counts to global memory).
const HISTOGRAM_BLOCKS: usize = 2048;
/// Static shared memory `topk_select_rows_<dtype>` may use besides its dynamic shared memory (112 bytes on sm_80-90
/// with nvcc 13.0; tests/kernel_checks.rs holds every target's report to this): the opt-in limit counts both.
#[doc(hidden)]
pub const ROW_STATIC_SHARED_ALLOWANCE: usize = 1024;
/// Dynamic shared memory of `topk_select_rows_<dtype>` after the row's keys (cuda/topk.cu kRowExtraBytes): the
/// fast path's 2048-bin histogram and 64 candidates' keys and positions. With the longest rows the launch is
/// above 48 KiB and opts in (sm_80 and later grant at least 99 KiB per block).
const ROW_EXTRA_BYTES: usize = 2048 * 4 + 64 * 8;

/// Dynamic shared memory of `topk_select_rows_<dtype>` for rows of `seg_len` keys (cuda/topk.cu row_keys_bytes
/// plus kRowExtraBytes).
fn row_shared_bytes<T: TopkKey>(seg_len: usize) -> u32 {
    ((seg_len * T::DTYPE.size()).div_ceil(16) * 16 + ROW_EXTRA_BYTES) as u32
}

/// Rows of at most this many keys are selected by one block each (`topk_select_rows_<dtype>`: the row read once
/// into shared memory at its width), as long as the device lets one block opt into that much shared memory: on
/// sm_90 (227 KiB) 55 k f32 keys or 111 k f16/bf16, on sm_80 (163 KiB) 39 k / 78 k, on sm_86/89 (99 KiB) 23 k / 46 k
/// (rows of a 4096 x 14336 weight fit everywhere). Longer rows take the multi-kernel radix passes.
///
/// A row past 44 KiB leaves room for fewer blocks per SM (one at ~200 KiB), but each block still reads its row
/// once, where the radix passes read every key once per 8-bit digit plus once to count (5 reads for f32, 3 for
/// 16-bit keys) and launch two kernels per digit: with at least one row per SM the block per row moves a fifth
/// (f32) to a third of the bytes; its in-shared passes (~5 over the row at 256 threads) are not the limit
/// (unmeasured on a GPU: the bench's `topk_mask_per_row` case at rows of 14336 compares the two).
fn row_max_len<T: TopkKey>(gpu: &Gpu) -> usize {
    let budget = (gpu.max_dynamic_shared_bytes() as usize).saturating_sub(ROW_STATIC_SHARED_ALLOWANCE + ROW_EXTRA_BYTES);
    // The keys' bytes are rounded up to 16 (row_shared_bytes): a whole number of 16-byte groups fits the budget.
    (budget / 16 * 16) / T::DTYPE.size()
}

/// [`row_max_len`] for tests: the longest row the one-block-per-row path takes on this device.
#[doc(hidden)]
pub fn topk_row_max_len<T: TopkKey>(gpu: &Gpu) -> usize {
    row_max_len::<T>(gpu)
}
/// Per-matrix counts over at least this many keys try the sample bracket first (`bracket_cut`, `bracket_mask`).
const BRACKET_MIN_N: usize = 1 << 18;
/// Keys in the bracket's sample (cuda/topk.cu kSamples).
#[doc(hidden)]
pub const BRACKET_SAMPLES: usize = 4096;
const SAMPLES: usize = BRACKET_SAMPLES;
/// Threads of the digit-level sample kernel's one block (cuda/topk.cu kSampleThreads): 16 sample keys per thread.
const SAMPLE_THREADS: u32 = 256;
/// Blocks of the ranking sample kernel (cuda/topk.cu kRankBlocks, `sample_ranks`): 32 sample keys ranked per block.
const RANK_BLOCKS: u32 = (SAMPLES / 32) as u32;
/// Keys per block of the bracket pass and candidate entries per block region (cuda/topk.cu kChunk, kChunkCap).
const CHUNK: usize = 16384;
const CHUNK_CAP: usize = CHUNK / 4;
/// Entries of the cut path's one candidate list per warp of a later level (cuda/topk.cu bracket_refine), and the most
/// blocks per multiprocessor those launches get (their warps stride over the shares). The list holds ~1-2% of n from
/// its start; in CHUNK_CAP shares (as until 2026-11-27) it sat in a few dozen blocks, each warp walking 4096 entries
/// in 16 dependent rounds: ~10 µs per f32 level on the H200 (eighth run, levels lap 20-26 µs for two). 512 entries
/// are two rounds of 8 loads per lane: 0.76-0.85x the f32 cut's time of CHUNK_CAP shares (tenth run; that switch,
/// `SLR_TOPK_PATH=wide_shares`, is gone).
/// Two blocks per multiprocessor: 2112 warps on an H200 take a 1.4 M-entry list (5% of 4096 x 11008) in one or two
/// shares each; on the emulator (4 multiprocessors: 64 warps, 32 K entries per stride) the crowded-slice test's
/// ~60 K-entry list makes the warps stride.
const LIST_SHARE: usize = 512;
const LIST_BLOCKS_PER_SM: usize = 2;
const _: () = assert!(CHUNK_CAP.is_multiple_of(LIST_SHARE));
/// Bins (at most) of the bracket counted by the bracket passes (cuda/topk.cu kCutBins).
const CUT_BINS: usize = 1024;
/// Blocks per multiprocessor of the cut's streaming pass (cuda/topk.cu kStreamBlocksPerSm, its launch bounds), and
/// the 16-byte vectors per thread in one of its rounds (kStreamVecs).
const STREAM_BLOCKS_PER_SM: usize = 4;
const STREAM_VECS: usize = 4;
/// Bins (at most) of each later level (cuda/topk.cu kRefineBins).
const REFINE_BINS: usize = 4096;
/// Later levels after the bracket pass that always narrow the choice to one key (cuda/topk.cu range_shift: bins of
/// at most 2^22 keys after the pass's 1024, 2^10 after a refine of 4096, one key after two; 16-bit keys: 2^6, then
/// one).
fn refine_levels<T: TopkKey>() -> usize {
    if T::DTYPE.size() == 4 { 2 } else { 1 }
}
/// The bracket paths' words, one zeroed allocation (cuda/topk.cu): the bracket words (word 6 the pass's ticket),
/// the choice, one ticket per later launch, the level-1 histogram, one histogram per later level.
const MASK_SEL: usize = STATE_WORDS;
const MASK_TICKETS: usize = MASK_SEL + 8;
const MASK_HIST1: usize = MASK_TICKETS + 8;
const MASK_HIST2: usize = MASK_HIST1 + CUT_BINS;
const MASK_PATH_WORDS: usize = MASK_HIST2 + 2 * REFINE_BINS;
// The choice's words (cuda/topk.cu kSel*) and its status values.
const SEL_RANK: usize = 1;
const SEL_BEFORE: usize = 2;
const SEL_KEY_LO: usize = 3;
const SEL_COUNT: usize = 5;
const SEL_STATUS: usize = 6;
const SEL_DONE: u32 = 1;
const SEL_INVALID: u32 = 2;
const FLAG_BY_VALUE: u32 = 1;
const FLAG_SMALLEST: u32 = 2;

/// What an entry is ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    /// `|x|`: `-0.0` and `+0.0` tie, `-3` ties with `3`.
    Magnitude,
    /// The signed value `x` (`-0.0 == +0.0`).
    Value,
}

/// Which end of the order is selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Largest,
    Smallest,
}

/// What a NaN among the keys does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NanPolicy {
    /// [`Error::NanKeys`] with the number of NaNs (the selection is not returned).
    Error,
    /// torch's order: NaN ranks above `+inf` (and above `|inf|`), all NaNs tie.
    AboveInfinity,
}

/// Over what the selection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One selection over all `rows * cols` entries.
    Matrix,
    /// One selection per row, each of the same size (batched).
    PerRow,
}

/// How many entries to select, per matrix or per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection<T> {
    /// Exactly k entries (`0 <= k <= n`).
    Count(usize),
    /// `k = round(q * n)` entries (half away from zero), `q` in `[0, 1]`.
    Fraction(f64),
    /// Every entry whose key is strictly beyond the key of `t` (NaN `t` is an error).
    Beyond(T),
}

/// A complete selection request. `TopkSpec::count(k)` is the largest k magnitudes over the whole matrix, NaN an
/// error; the builder methods change one field each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopkSpec<T> {
    pub selection: Selection<T>,
    pub by: RankBy,
    pub direction: Direction,
    pub scope: Scope,
    pub nan: NanPolicy,
}

impl<T> TopkSpec<T> {
    fn with(selection: Selection<T>) -> Self {
        TopkSpec { selection, by: RankBy::Magnitude, direction: Direction::Largest, scope: Scope::Matrix, nan: NanPolicy::Error }
    }
    /// Exactly `k` entries.
    pub fn count(k: usize) -> Self {
        Self::with(Selection::Count(k))
    }
    /// `round(q * n)` entries.
    pub fn fraction(q: f64) -> Self {
        Self::with(Selection::Fraction(q))
    }
    /// Every entry strictly beyond `t`.
    pub fn beyond(t: T) -> Self {
        Self::with(Selection::Beyond(t))
    }
    pub fn by(mut self, by: RankBy) -> Self {
        self.by = by;
        self
    }
    pub fn smallest(mut self) -> Self {
        self.direction = Direction::Smallest;
        self
    }
    pub fn largest(mut self) -> Self {
        self.direction = Direction::Largest;
        self
    }
    pub fn per_row(mut self) -> Self {
        self.scope = Scope::PerRow;
        self
    }
    pub fn nan(mut self, nan: NanPolicy) -> Self {
        self.nan = nan;
        self
    }
    fn flags(&self) -> u32 {
        (if self.by == RankBy::Value { FLAG_BY_VALUE } else { 0 }) | (if self.direction == Direction::Smallest { FLAG_SMALLEST } else { 0 })
    }
}

/// Where one selection (the matrix, or one row) was cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopkCut<T> {
    /// The key at the cut as an element: the k-th key for a count (`|x|` with the sign cleared by magnitude, `x`
    /// by value; a NaN when the k-th key is NaN), `t`'s key for [`Selection::Beyond`]; `None` when k = 0.
    pub threshold: Option<T>,
    /// Entries selected because their key is strictly beyond the threshold.
    pub count_beyond: usize,
    /// Entries selected with a key equal to the threshold (the lowest flat indices among the equal ones).
    pub count_equal_taken: usize,
}

impl<T> TopkCut<T> {
    /// Entries selected: `count_beyond + count_equal_taken`.
    pub fn selected(&self) -> usize {
        self.count_beyond + self.count_equal_taken
    }
}

/// Element types top-k ranks: their raw bits and what a NaN looks like in them.
pub trait TopkKey: Element {
    #[doc(hidden)]
    const SIGN: u32;
    #[doc(hidden)]
    const ALL: u32;
    #[doc(hidden)]
    const INF_ABS: u32;
    #[doc(hidden)]
    fn to_raw(self) -> u32;
    #[doc(hidden)]
    fn from_raw(bits: u32) -> Self;
}
impl TopkKey for f32 {
    const SIGN: u32 = 0x8000_0000;
    const ALL: u32 = 0xffff_ffff;
    const INF_ABS: u32 = 0x7f80_0000;
    fn to_raw(self) -> u32 {
        self.to_bits()
    }
    fn from_raw(bits: u32) -> Self {
        f32::from_bits(bits)
    }
}
impl TopkKey for f16 {
    const SIGN: u32 = 0x8000;
    const ALL: u32 = 0xffff;
    const INF_ABS: u32 = 0x7c00;
    fn to_raw(self) -> u32 {
        self.to_bits() as u32
    }
    fn from_raw(bits: u32) -> Self {
        f16::from_bits(bits as u16)
    }
}
impl TopkKey for bf16 {
    const SIGN: u32 = 0x8000;
    const ALL: u32 = 0xffff;
    const INF_ABS: u32 = 0x7f80;
    fn to_raw(self) -> u32 {
        self.to_bits() as u32
    }
    fn from_raw(bits: u32) -> Self {
        bf16::from_bits(bits as u16)
    }
}

/// [`Error::NanKeys`] when the keys held `count` NaNs and the policy refuses them.
fn refuse_nans<T>(op: &'static str, count: usize, spec: &TopkSpec<T>) -> Result<()> {
    if count > 0 && spec.nan == NanPolicy::Error {
        return Err(Error::NanKeys { op, what: "keys", count });
    }
    Ok(())
}

fn is_nan<T: TopkKey>(x: T) -> bool {
    (x.to_raw() & !T::SIGN & T::ALL) > T::INF_ABS
}

/// The order-preserving key of `x` (larger key = selected first), the same map as `order_key` in cuda/topk.cu.
fn order_key<T: TopkKey>(x: T, flags: u32) -> u32 {
    let bits = x.to_raw();
    let abs = bits & !T::SIGN & T::ALL;
    let key = if flags & FLAG_BY_VALUE == 0 {
        if abs > T::INF_ABS { T::ALL >> 1 } else { abs }
    } else if abs > T::INF_ABS {
        T::ALL
    } else if abs == 0 {
        T::SIGN
    } else if bits & T::SIGN != 0 {
        !bits & T::ALL
    } else {
        bits | T::SIGN
    };
    if flags & FLAG_SMALLEST != 0 { !key & T::ALL } else { key }
}

/// An element whose key is `key` (the inverse of `order_key` up to the sign of zero and NaN payloads).
fn element_of_key<T: TopkKey>(key: u32, flags: u32) -> T {
    let key = if flags & FLAG_SMALLEST != 0 { !key & T::ALL } else { key };
    let bits = if flags & FLAG_BY_VALUE == 0 {
        key
    } else if key == T::ALL {
        T::ALL >> 1 // a NaN
    } else if key & T::SIGN != 0 {
        key & !T::SIGN
    } else {
        !key & T::ALL
    };
    T::from_raw(bits)
}

/// Segments (selections) and their length, after the size checks.
fn segments(op: &'static str, rows: usize, cols: usize, len: usize, scope: Scope) -> Result<(usize, usize)> {
    let n = rows.saturating_mul(cols);
    if n > i32::MAX as usize {
        return Err(CsrError::TooLargeForIndex { what: "elements (rows * cols)", value: n, max: i32::MAX as usize }.into());
    }
    // Each dimension too, so an empty matrix cannot ask for more selections (rows, per row) than the index holds:
    // each row's cut and state is allocated.
    for (what, value) in [("rows", rows), ("cols", cols)] {
        if value > i32::MAX as usize {
            return Err(CsrError::TooLargeForIndex { what, value, max: i32::MAX as usize }.into());
        }
    }
    check_len(op, "keys", n, len)?;
    Ok(match scope {
        Scope::Matrix => (1, n),
        Scope::PerRow => (rows, cols),
    })
}

/// What the state of each segment starts as, and whether the digit passes run.
#[derive(Clone, Copy)]
enum Plan {
    /// Radix select for the k-th key (k >= 1).
    Count(usize),
    /// The cut is fixed: select keys beyond `key` (k = 0 uses the largest key: nothing is beyond it).
    Fixed { key: u32, none: bool },
}

fn plan<T: TopkKey>(op: &'static str, spec: &TopkSpec<T>, seg_len: usize) -> Result<Plan> {
    let k = match spec.selection {
        Selection::Count(k) => k,
        Selection::Fraction(q) => {
            if !(0.0..=1.0).contains(&q) {
                return Err(Error::FractionOutOfRange { op, fraction: q });
            }
            ((q * seg_len as f64).round() as usize).min(seg_len)
        }
        Selection::Beyond(t) => {
            if is_nan(t) {
                return Err(Error::NanKeys { op, what: "threshold", count: 1 });
            }
            return Ok(Plan::Fixed { key: order_key(t, spec.flags()), none: false });
        }
    };
    if k > seg_len {
        return Err(Error::CountOutOfRange { op, k, n: seg_len });
    }
    Ok(if k == 0 { Plan::Fixed { key: T::ALL, none: true } } else { Plan::Count(k) })
}

/// The selection's result, as the CPU reference computes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopkCpu<T> {
    /// The selected entries.
    pub mask: BitMask,
    /// One cut per segment: one for [`Scope::Matrix`], one per row for [`Scope::PerRow`].
    pub cuts: Vec<TopkCut<T>>,
}

/// CPU reference: in each segment K* is the k-th greatest order key (a selection, `select_nth_unstable`, O(n)),
/// and the segment takes every key beyond K* plus the first `k - c_gt` keys equal to K* in index order (or every
/// key beyond `t`). Simple and exact: the definition the kernels are tested against (and
/// tests/topk.rs holds it to the pairwise-rank definition). One u32 per key of scratch: 0.21 s for a 4096 x 11008
/// f32 or bf16 matrix at k = 5% on the 2-core development machine (release), where the sort of (key, index) pairs
/// it replaced (2026-11-27) took 1.55 s and 16 bytes per key.
///
/// `keys` is `rows x cols` row-major. Errors: `keys.len() != rows * cols`, more than `2^31 - 1` elements,
/// `k > n` ([`Error::CountOutOfRange`]), a fraction outside `[0, 1]`, a NaN threshold, NaNs in the keys under
/// [`NanPolicy::Error`] ([`Error::NanKeys`] with their count).
pub fn topk_cpu<T: TopkKey>(keys: &[T], rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<TopkCpu<T>> {
    const OP: &str = "topk_cpu";
    let (segs, seg_len) = segments(OP, rows, cols, keys.len(), spec.scope)?;
    let plan = plan(OP, spec, seg_len)?;
    refuse_nans(OP, keys.iter().filter(|&&x| is_nan(x)).count(), spec)?;
    let flags = spec.flags();
    let mut mask = BitMask::zeros(rows, cols);
    let mut cuts = Vec::with_capacity(segs);
    let mut order: Vec<u32> = Vec::new();
    for s in 0..segs {
        let seg = &keys[s * seg_len..(s + 1) * seg_len];
        // K* and the number of keys equal to it to take (none for a fixed key: only keys beyond it).
        let (kstar, quota, cut) = match plan {
            Plan::Count(k) => {
                order.clear();
                order.extend(seg.iter().map(|&x| order_key(x, flags)));
                let kstar = *order.select_nth_unstable_by(k - 1, |a, b| b.cmp(a)).1;
                let beyond = order.iter().filter(|&&key| key > kstar).count();
                let cut = TopkCut { threshold: Some(element_of_key(kstar, flags)), count_beyond: beyond, count_equal_taken: k - beyond };
                (kstar, k - beyond, cut)
            }
            Plan::Fixed { key, none } => {
                let beyond = seg.iter().filter(|&&x| order_key(x, flags) > key).count();
                let threshold = if none { None } else { Some(element_of_key(key, flags)) };
                (key, 0, TopkCut { threshold, count_beyond: beyond, count_equal_taken: 0 })
            }
        };
        let mut equal_left = quota;
        for (i, &x) in seg.iter().enumerate() {
            let key = order_key(x, flags);
            let take = key > kstar || (key == kstar && equal_left > 0);
            if key == kstar && take {
                equal_left -= 1;
            }
            if take {
                let flat = s * seg_len + i;
                mask.set(flat / cols, flat % cols, true);
            }
        }
        cuts.push(cut);
    }
    Ok(TopkCpu { mask, cuts })
}

/// The device state after the selection: per segment the cut key, the quota of equal keys, the counts.
struct DeviceSelection {
    state: DeviceVec<u32>,
    counts: DeviceVec<u32>,
    tiles_per_seg: usize,
}

fn kernel<T: TopkKey>(stage: &str) -> String {
    format!("topk_{stage}_{}", T::DTYPE.name())
}

/// Every segment's state, as the plan starts it (word 1 = k for a count, word 0 = the key of a fixed cut, the
/// rest zero), written on the device by `topk_init_state` (queued: no upload that would wait for the stream).
fn initial_state(gpu: &Gpu, segs: usize, plan: &Plan) -> Result<DeviceVec<u32>> {
    const OP: &str = "topk state";
    let (word, value) = match *plan {
        Plan::Count(k) => (1u32, k as u32),
        Plan::Fixed { key, .. } => (0u32, key),
    };
    let len = segs * STATE_WORDS;
    // SAFETY: topk_init_state below writes every one of the len words.
    let mut state = unsafe { gpu.alloc_uninit::<u32>(len)? };
    if len > 0 {
        let shape = LaunchShape::linear(OP, len, THREADS)?;
        let mut view = DeviceSliceMut::from(&mut state);
        let (p_state, _g) = view.kernel_ptr_mut(gpu, OP, "state")?;
        // SAFETY: thread i < len writes state[i] (len elements, a fresh allocation); arguments match
        // topk_init_state.
        unsafe {
            gpu.launch(MODULE, "topk_init_state", shape, &[p_state, KernelArg::U64(len as u64), KernelArg::U32(word), KernelArg::U32(value)])?
        };
    }
    Ok(state)
}

/// `SLR_TOPK_PROFILE` in the environment: the bracket paths print the device time of each step of every call to
/// stderr (CUDA events between the launches, nothing waits until the read-back; the benchmark sets it for one
/// extra call per case). An event between two kernels also stands between a dependent launch and the kernel it
/// would overlap, so profiled calls show the steps without that overlap.
fn profiling() -> bool {
    std::env::var_os("SLR_TOPK_PROFILE").is_some()
}

/// `SLR_TOPK_PATH=radix` in the environment (or [`force_radix_passes_on_this_thread`]) sends every selection down
/// the radix passes over all keys (no one-block rows, no sample bracket): for benchmarks that compare the paths,
/// for tests that hold both paths to the reference, and for bisecting. The result is the same.
fn radix_forced() -> bool {
    RADIX_FORCED.with(|f| f.get()) || crate::path_switch("SLR_TOPK_PATH", "radix")
}

thread_local! {
    static RADIX_FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ROUND_COUNT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static STREAM_MASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LIST_GRID_CAP: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    static SAMPLE_LEVELS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `SLR_TOPK_PATH=sample_levels` in the environment (or [`use_sample_levels_on_this_thread`]): the sample bracket's
/// two order statistics come from the one-block digit-level kernel (`topk_sample_bracket_<dtype>`, up to five
/// histogram levels one after another on one multiprocessor: the sample lap was 15-21 µs on an H200, tenth run)
/// instead of the ranking kernel (`topk_sample_ranks_<dtype>`, 128 blocks, each composite counted against all
/// 4096: no level, no scan), the default since 2026-11-28. Both give the same two keys (tests/topk.rs); the
/// switch is for the benchmarks' same-run comparison and for tests.
fn sample_levels_forced() -> bool {
    SAMPLE_LEVELS.with(|f| f.get()) || crate::path_switch("SLR_TOPK_PATH", "sample_levels")
}

/// Sends this thread's sample brackets through the digit-level kernel (as `SLR_TOPK_PATH=sample_levels` does for
/// the process): for tests running in parallel threads.
#[doc(hidden)]
pub fn use_sample_levels_on_this_thread(on: bool) {
    SAMPLE_LEVELS.with(|f| f.set(on));
}

/// Caps the grid of this thread's cut-path later levels at `blocks` blocks (`None`: LIST_BLOCKS_PER_SM per
/// multiprocessor), so that tests make their warps stride over the list's shares with lists of test size.
#[doc(hidden)]
pub fn cap_list_levels_grid_on_this_thread(blocks: Option<usize>) {
    LIST_GRID_CAP.with(|c| c.set(blocks));
}

/// `SLR_TOPK_PATH=stream_mask` in the environment (or [`use_streaming_mask_pass_on_this_thread`]): the mask path's
/// pass over the keys is the streaming kernel (`topk_bracket_pass_<dtype>`, one warp per chunk) instead of the
/// round-based one (`topk_bracket_pass_rounds_<dtype>`, one block per chunk), the default. Measured on an H200
/// (eighth run, 006fb66, same run): the streaming mask pass made topk_mask and topk_csr 2-22% slower in every case
/// (its pass lap 118-131 µs for f32 at 4096 x 11008; the seventh run's round-based pass took 110-119 µs): one warp
/// per 16 k keys is 8-21 warps per multiprocessor, too few to hide its loads and shuffles. It stays for the
/// benchmarks' same-run
/// comparison and for tests; the cut's streaming pass (bracket_count), 1.1-1.8x faster than its round-based one, is
/// the default there. `SLR_TOPK_PATH=rounds` wins over this switch.
fn streaming_mask_forced() -> bool {
    STREAM_MASK.with(|f| f.get()) || crate::path_switch("SLR_TOPK_PATH", "stream_mask")
}

/// Sends this thread's mask passes through the streaming kernel (as `SLR_TOPK_PATH=stream_mask` does for the
/// process): for tests running in parallel threads.
#[doc(hidden)]
pub fn use_streaming_mask_pass_on_this_thread(on: bool) {
    STREAM_MASK.with(|f| f.set(on));
}

/// `SLR_TOPK_PATH=rounds` in the environment (or [`use_round_count_on_this_thread`]): the bracket paths' pass over
/// the keys is the round-based kernel (`topk_bracket_count_rounds_<dtype>` for the cut; for the mask
/// `topk_bracket_pass_rounds_` is the default, and this also overrides [`streaming_mask_forced`]) instead of the
/// streaming one, for the benchmarks' same-run comparison and for tests that hold both to the reference. The result
/// is the same.
fn round_count_forced() -> bool {
    ROUND_COUNT.with(|f| f.get()) || crate::path_switch("SLR_TOPK_PATH", "rounds")
}

/// Sends this thread's bracket passes through the round-based kernels (as `SLR_TOPK_PATH=rounds` does for the
/// process): for tests running in parallel threads.
#[doc(hidden)]
pub fn use_round_count_on_this_thread(on: bool) {
    ROUND_COUNT.with(|f| f.set(on));
}

/// Sends this thread's top-k calls down the radix passes (as `SLR_TOPK_PATH=radix` does for the process): for tests
/// running in parallel threads, where an environment variable would switch the other tests too.
#[doc(hidden)]
pub fn force_radix_passes_on_this_thread(on: bool) {
    RADIX_FORCED.with(|f| f.set(on));
}

/// Whether the one-block-per-row kernel handles this selection: per row, rows of at most [`row_max_len`] keys;
/// per matrix, a matrix that small (one segment, one block: one launch and one read, where the radix passes take
/// ~10 dependent launches of a few blocks each; up to 55 k f32 keys on sm_90, e.g. a 128 x 384 adapter).
fn by_rows<T: TopkKey>(gpu: &Gpu, seg_len: usize) -> bool {
    seg_len <= row_max_len::<T>(gpu) && !radix_forced()
}

/// The k of a per-matrix count that tries the sample bracket first.
fn bracket_k(scope: Scope, plan: Plan, n: usize) -> Option<usize> {
    match (scope, plan) {
        (Scope::Matrix, Plan::Count(k)) if n >= BRACKET_MIN_N && !radix_forced() => Some(k),
        _ => None,
    }
}

/// Whether the one-block-per-row kernel writes each row's mask words whole itself: rows of whole 64-bit words (no
/// word shared by two rows, so no memset of the mask first, and plain stores instead of atomic ORs).
fn rows_own_their_words(seg_len: usize) -> bool {
    seg_len.is_multiple_of(64)
}

/// The whole selection of every row in one launch (`topk_select_rows_<dtype>`, one block per row), leaving the
/// state as [`select_on_device`] does; with `words`, the taken bits are ORed into that mask, which must be zeroed
/// unless [`rows_own_their_words`] (then the kernel writes every word of each row itself).
#[allow(clippy::too_many_arguments)]
fn select_rows_on_device<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, segs: usize, seg_len: usize, plan: &Plan, flags: u32, words: Option<&mut DeviceVec<u64>>) -> Result<DeviceVec<u32>> {
    debug_assert!(seg_len <= row_max_len::<T>(gpu));
    if segs * seg_len == 0 {
        return initial_state(gpu, segs, plan);
    }
    // The kernel writes every state word of its segment (no topk_init_state launch first).
    // SAFETY: block b writes all STATE_WORDS words of segment b, for every b < segs (the grid), before any read.
    let mut state = unsafe { gpu.alloc_uninit::<u32>(segs * STATE_WORDS)? };
    let (passes, value) = match *plan {
        Plan::Count(k) => (T::DTYPE.size() as u32, k as u32),
        Plan::Fixed { key, .. } => (0, key),
    };
    {
    let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
    let mut state_view = DeviceSliceMut::from(&mut state);
    let (p_state, _gs) = state_view.kernel_ptr_mut(gpu, op, "state")?;
    let mut words_view = words.map(DeviceSliceMut::from);
    let (p_words, _gw) = match words_view.as_mut() {
        Some(w) => {
            let (p, g) = w.kernel_ptr_mut(gpu, op, "mask")?;
            (p, Some(g))
        }
        None => (KernelArg::Ptr(0), None),
    };
    let shape = LaunchShape { grid: (segs as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: row_shared_bytes::<T>(seg_len) };
    // SAFETY: block b reads keys b * seg_len + i for i < seg_len (keys holds segs * seg_len elements, checked by
    // `segments`; segs <= 2^31 - 1 fits the grid), keeps them in the first seg_len * size_of::<T>() bytes of its
    // dynamic shared memory (the launch's row_shared_bytes: that, rounded up to 16, plus the ROW_EXTRA_BYTES the
    // kernel's histogram and at most 64 candidates use; with the kernel's static shared memory within the device's
    // opt-in limit since seg_len <= row_max_len::<T>(gpu), and `launch` opts in above 40 KiB), writes its own
    // STATE_WORDS words of state (segs * STATE_WORDS, a fresh allocation) and, when the mask is given, ORs bits
    // only at flat indices of its own row, all below segs * seg_len, into words (the caller allocates
    // ceil(segs * seg_len / 64) words, distinct from keys and state, zeroed unless rows_own_their_words, when the
    // block stores every 32-bit half of its row's seg_len / 64 whole words, then ORs only its own candidates' bits
    // into them); a null mask is never dereferenced; arguments match
    // topk_select_rows_<dtype>.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel::<T>("select_rows"),
            shape,
            &[p_keys, KernelArg::U32(seg_len as u32), KernelArg::U32(flags), KernelArg::U32(passes), KernelArg::U32(value), p_state, p_words, KernelArg::U32(rows_own_their_words(seg_len) as u32)],
        )?;
    }
    }
    Ok(state)
}

// Per-matrix selections that took the sample bracket, and those that fell back to the radix passes (for tests
// and diagnostics: the result is the same either way).
thread_local! {
    static BRACKET_PATHS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// `(taken, fell back)`: how many per-matrix selections called from this thread were done by the sample bracket
/// and how many fell back to the radix passes after trying it. A diagnostic for tests; the selection never
/// depends on the path.
#[doc(hidden)]
pub fn bracket_counts() -> (usize, usize) {
    BRACKET_PATHS.with(|c| c.get())
}

fn count_bracket_path(taken: bool) {
    BRACKET_PATHS.with(|c| {
        let (t, f) = c.get();
        c.set(if taken { (t + 1, f) } else { (t, f + 1) });
    });
}

/// Flat index of the bracket's sample `j` among `n` keys (cuda/topk.cu `sample_position`, the same arithmetic):
/// stratum j of n / SAMPLES keys, at a hashed offset inside it.
#[doc(hidden)]
pub fn bracket_sample_position(j: usize, n: usize) -> usize {
    let mut h = (j as u32).wrapping_mul(0x9E37_79B1);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    let (lo, hi) = (j as u64 * n as u64 / SAMPLES as u64, (j as u64 + 1) * n as u64 / SAMPLES as u64);
    (lo + h as u64 % (hi - lo)) as usize
}

/// Sample ranks (1 = the largest sample key) bracketing the k-th of n keys: the expected rank k·S/n widened by 4
/// binomial standard deviations + 8 each way. `rank_hi = 0`: no upper cut; `rank_lo > S`: no lower cut.
fn bracket_ranks(k: usize, n: usize) -> (u32, u32) {
    let p = k as f64 / n as f64;
    let s = SAMPLES as f64;
    let expected = p * s;
    let delta = (4.0 * (s * p * (1.0 - p)).sqrt()).ceil() + 8.0;
    let hi = (expected - delta).floor().max(0.0);
    let lo = (expected + delta).ceil().min(s + 1.0);
    (hi as u32, lo as u32)
}

/// Where a bracket path's scratch regions lie inside its one allocation, in u32 words: the path words first (the
/// read-back takes their head), then (mask path) the per-region candidate counts and tie counts and the candidate
/// indices, then the candidate keys (T, stored in u32 words); every region starts on a 256-byte boundary. One pool
/// allocation instead of five (mask) or two (cut): the sixth run (H200, 5f7e50a) timed the profile's "scratch" lap,
/// which is the allocations alone with the device idle, at 12-31 µs for the mask path's six and 7-10 µs for the cut
/// path's two.
struct BracketScratch {
    counts: usize,
    ties: usize,
    idx: usize,
    vals: usize,
    total: usize,
}

impl BracketScratch {
    fn new<T: TopkKey>(blocks: usize, mask: bool) -> Self {
        const ALIGN: usize = 64; // u32 words: 256 bytes
        let up = |x: usize| x.div_ceil(ALIGN) * ALIGN;
        let cap = blocks * CHUNK_CAP;
        let counts = up(MASK_PATH_WORDS);
        let (ties, idx, vals) = if mask {
            let ties = counts + up(blocks);
            let idx = ties + up(blocks);
            (ties, idx, idx + up(cap))
        } else {
            (counts, counts, counts)
        };
        let total = vals + up((cap * std::mem::size_of::<T>()).div_ceil(4));
        BracketScratch { counts, ties, idx, vals, total }
    }
}

/// The sample bracket's two order statistics (`topk_sample_bracket_<dtype>`) into bracket words 0 and 1; the kernel
/// also zeroes the rest of the path's words (`bracket` holds MASK_PATH_WORDS, uninitialized before it).
fn launch_sample_bracket<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, n: usize, k: usize, flags: u32, bracket: &mut DeviceVec<u32>) -> Result<()> {
    if bracket.len() < MASK_PATH_WORDS {
        return Err(Error::LengthMismatch { op, what: "bracket path words", expected: MASK_PATH_WORDS, got: bracket.len() });
    }
    if n < SAMPLES || keys.len() < n {
        return Err(Error::LengthMismatch { op, what: "sampled keys", expected: n.max(SAMPLES), got: keys.len() });
    }
    let (rank_hi, rank_lo) = bracket_ranks(k, n);
    let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
    let mut bview = DeviceSliceMut::from(bracket);
    let (p_bracket, _gb) = bview.kernel_ptr_mut(gpu, op, "bracket")?;
    let (name, shape) = if sample_levels_forced() {
        ("sample_bracket", LaunchShape { grid: (1, 1, 1), block: (SAMPLE_THREADS, 1, 1), shared_bytes: ((SAMPLES + 2048) * 4) as u32 })
    } else {
        // Composites of the sample in dynamic shared memory: 44-bit (u64) for f32 keys, 28-bit (u32) for 16-bit.
        let composite_bytes = if std::mem::size_of::<T>() == 4 { 8 } else { 4 };
        ("sample_ranks", LaunchShape { grid: (RANK_BLOCKS, 1, 1), block: (THREADS, 1, 1), shared_bytes: (SAMPLES * composite_bytes) as u32 })
    };
    // SAFETY: either kernel reads keys at SAMPLES positions below n (sample_position(j, n) < n for n >= SAMPLES;
    // keys holds at least n, both checked above) and writes bracket words 0 and 1 and zeroes words 2 ..
    // MASK_PATH_WORDS (at most the length, checked above; distinct from keys). topk_sample_bracket_<dtype>: one
    // block, its order keys and a 2048-bin histogram in (SAMPLES + 2048) * 4 bytes of dynamic shared memory (the
    // launch's); topk_sample_ranks_<dtype>: RANK_BLOCKS = SAMPLES / 32 blocks of THREADS (the grid its zeroing
    // stride and its ranked keys assume), SAMPLES composites of 8 (f32) or 4 bytes in the launch's dynamic shared
    // memory (cuda/topk.cu RankComposite). Arguments match both.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel::<T>(name),
            shape,
            &[p_keys, KernelArg::U32(n as u32), KernelArg::U32(flags), KernelArg::U32(rank_hi), KernelArg::U32(rank_lo), p_bracket, KernelArg::U32(MASK_PATH_WORDS as u32)],
        )
    }
}

/// The sample bracket's keys `(lo, hi)` for a count of `k` over `keys` (the order keys of src/topk.rs, words 0
/// and 1 of the bracket path), as the device's sample kernel writes them (`levels`: the digit-level kernel, else
/// the ranking one), and whether it zeroed path words 2 .. MASK_PATH_WORDS (they start poisoned here). For tests.
#[doc(hidden)]
pub fn sample_bracket_keys<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, k: usize, spec: &TopkSpec<T>, levels: bool) -> Result<(u32, u32, bool)> {
    let op = "sample_bracket_keys";
    let keys = keys.into();
    let n = keys.len();
    if n < SAMPLES || n > u32::MAX as usize || k > n {
        return Err(Error::LengthMismatch { op, what: "keys (at least the sample, at most 2^32 - 1)", expected: SAMPLES, got: n });
    }
    let mut words = gpu.upload(&vec![0xDEAD_BEEFu32; MASK_PATH_WORDS])?;
    let before = SAMPLE_LEVELS.with(|f| f.replace(levels));
    let launched = launch_sample_bracket(op, gpu, &keys, n, k, spec.flags(), &mut words);
    SAMPLE_LEVELS.with(|f| f.set(before));
    launched?;
    let w = gpu.download(&words)?;
    Ok((w[0], w[1], w[2..].iter().all(|&x| x == 0)))
}

/// What [`sample_bracket_keys`] must give: the order keys of the sample (positions [`bracket_sample_position`]),
/// sorted from the largest, at the 1-based ranks [`bracket_ranks`] names (no upper rank: hi = all ones; no lower:
/// lo = 0). The reference for tests.
#[doc(hidden)]
pub fn sample_bracket_keys_cpu<T: TopkKey>(keys: &[T], k: usize, spec: &TopkSpec<T>) -> (u32, u32) {
    let n = keys.len();
    let flags = spec.flags();
    let mut sample: Vec<u32> = (0..SAMPLES).map(|j| order_key(keys[bracket_sample_position(j, n)], flags)).collect();
    sample.sort_unstable_by(|a, b| b.cmp(a));
    let (rank_hi, rank_lo) = bracket_ranks(k, n);
    let hi = if rank_hi == 0 { T::ALL } else { sample[rank_hi as usize - 1] };
    let lo = if rank_lo as usize > SAMPLES { 0 } else { sample[rank_lo as usize - 1] };
    (lo, hi)
}

/// The cut's pass over `n` keys: the streaming kernel (`topk_bracket_count_<dtype>`) on a fixed grid of at most
/// STREAM_BLOCKS_PER_SM blocks per multiprocessor and one per round of THREADS * STREAM_VECS 16-byte vectors, or with
/// `rounds` the round-based one (`topk_bracket_count_rounds_<dtype>`, one block per CHUNK keys).
fn cut_pass_launch<T: TopkKey>(gpu: &Gpu, n: usize, rounds: bool) -> (String, LaunchShape) {
    let (name, grid) = if rounds {
        (kernel::<T>("bracket_count_rounds"), n.div_ceil(CHUNK))
    } else {
        let per_round = THREADS as usize * STREAM_VECS * (16 / T::DTYPE.size());
        (kernel::<T>("bracket_count"), n.div_ceil(per_round).clamp(1, gpu.multiprocessor_count() as usize * STREAM_BLOCKS_PER_SM))
    };
    (name, LaunchShape { grid: (grid as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 })
}

/// What the cut's bracket pass finds over `keys` for a bracket `[lo, hi]` of order keys given here (in the op, the
/// sample kernel's): the count of keys above hi (bracket word 2), of NaNs (word 3), the level-1 histogram of the
/// candidates (CUT_BINS words), and the candidates' raw bits (keys with lo <= key <= hi), sorted. `rounds`: the
/// round-based pass (`topk_bracket_count_rounds_<dtype>`), else the streaming one (`topk_bracket_count_<dtype>`,
/// whose word tests replace the order-key map: cuda/topk.cu WordTests). The list has room for every key, so no
/// bracket overflows it. For tests.
#[doc(hidden)]
#[allow(clippy::type_complexity)]
pub fn bracket_pass_for_test<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, lo: u32, hi: u32, spec: &TopkSpec<T>, rounds: bool) -> Result<(u32, u32, Vec<u32>, Vec<u32>)> {
    let op = "bracket_pass_for_test";
    let keys = keys.into();
    let n = keys.len();
    // The passes' limit is top-k's, 2^31 - 1 keys (the round-based one's chunk ends wrap within 16384 of 2^32).
    if n == 0 || n > i32::MAX as usize {
        return Err(Error::LengthMismatch { op, what: "keys (1 to 2^31 - 1)", expected: 1, got: n });
    }
    if lo > hi || hi > T::ALL {
        return Err(Error::LengthMismatch { op, what: "bracket (lo <= hi <= the largest key)", expected: T::ALL as usize, got: hi as usize });
    }
    let mut words = vec![0u32; MASK_PATH_WORDS];
    words[0] = lo;
    words[1] = hi;
    let mut words = gpu.upload(&words)?;
    let mut list = gpu.alloc_zeros::<u32>((n * T::DTYPE.size()).div_ceil(4))?;
    {
        let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
        let mut wview = DeviceSliceMut::from(&mut words);
        let (p_words, _gw) = wview.kernel_ptr_mut(gpu, op, "bracket words")?;
        let mut lview = DeviceSliceMut::from(&mut list);
        let (p_list, _gl) = lview.kernel_ptr_mut(gpu, op, "list")?;
        let (name, shape) = cut_pass_launch::<T>(gpu, n, rounds);
        // SAFETY: as in bracket_cut: the pass reads keys [0, n) (n keys here), adds to words 2, 3, 5, 6 and the
        // CUT_BINS histogram words at MASK_HIST1 and writes the 8 choice words at MASK_SEL (all inside the
        // MASK_PATH_WORDS words uploaded, zero but for lo and hi), and list entries below cap = n (the list holds
        // n keys of T, rounded up to whole words); k = 1 <= n; buffers fresh and distinct.
        unsafe {
            gpu.launch(
                MODULE,
                &name,
                shape,
                &[p_keys, KernelArg::U32(n as u32), KernelArg::U32(spec.flags()), KernelArg::U32(1), p_words, p_list, KernelArg::U32(n as u32), p_words.offset_bytes(4 * MASK_HIST1), p_words.offset_bytes(4 * MASK_SEL)],
            )?;
        }
    }
    let w = gpu.download(&words)?;
    let count = w[5] as usize;
    let raw = gpu.download(&list)?;
    let mut cands: Vec<u32> = match T::DTYPE.size() {
        4 => raw[..count].to_vec(),
        _ => raw.iter().flat_map(|&x| [x & 0xffff, x >> 16]).take(count).collect(),
    };
    cands.sort_unstable();
    Ok((w[2], w[3], w[MASK_HIST1..MASK_HIST1 + CUT_BINS].to_vec(), cands))
}

/// The order key of `x` under `spec` (src/topk.rs order_key; cuda/topk.cu has the same map). For tests.
#[doc(hidden)]
pub fn order_key_for_test<T: TopkKey>(x: T, spec: &TopkSpec<T>) -> u32 {
    order_key(x, spec.flags())
}

/// What [`bracket_pass_for_test`] must give, from the order keys (src/topk.rs order_key): keys above hi, NaNs, the
/// histogram (bin (key - lo) >> s, s the smallest shift leaving at most CUT_BINS bins of [lo, hi]) and the sorted
/// raw bits of the keys in [lo, hi]. The reference for tests.
#[doc(hidden)]
pub fn bracket_pass_cpu<T: TopkKey>(keys: &[T], lo: u32, hi: u32, spec: &TopkSpec<T>) -> (u32, u32, Vec<u32>, Vec<u32>) {
    let flags = spec.flags();
    let len = 32 - (hi - lo).leading_zeros();
    let log = CUT_BINS.trailing_zeros();
    let shift = len.saturating_sub(log);
    let (mut above, mut nan, mut hist, mut cands) = (0u32, 0u32, vec![0u32; CUT_BINS], Vec::new());
    for &x in keys {
        let key = order_key(x, flags);
        above += (key > hi) as u32;
        nan += is_nan(x) as u32;
        if lo <= key && key <= hi {
            hist[((key - lo) >> shift) as usize] += 1;
            cands.push(x.to_raw());
        }
    }
    cands.sort_unstable();
    (above, nan, hist, cands)
}

/// Whether the selection takes every entry of a non-empty matrix (a per-matrix count k = n): then the cut is the
/// smallest key with its count, and the mask all ones ([`select_everything`]), one read of the keys instead of the
/// radix passes. (Per row, k = cols costs what any k does: one launch.)
fn selects_everything(scope: Scope, plan: Plan, n: usize) -> bool {
    matches!((scope, plan), (Scope::Matrix, Plan::Count(k)) if k == n && n > 0) && !radix_forced()
}

/// The k = n selection of a whole matrix (`topk_all_min_count_<dtype>`, and `topk_all_bits` for the mask): the cut
/// is K* = the smallest key, every key above it beyond it and every key equal to it taken. One read of the keys,
/// one synchronization. NaNs under [`NanPolicy::Error`] are reported as everywhere.
fn select_everything<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, n: usize, flags: u32, spec: &TopkSpec<T>, with_mask: bool) -> Result<(Option<DeviceVec<u64>>, TopkCut<T>)> {
    debug_assert!(n > 0 && n <= i32::MAX as usize && keys.len() == n);
    let blocks = n.div_ceil(THREADS as usize * 8).clamp(1, 2048);
    // One allocation (zeroed: the four result words take atomic adds; the per-block entries are written before
    // they are read either way): words [0, 4), block minima [4, 4 + blocks), block counts after them.
    let mut words = gpu.alloc_zeros::<u32>(4 + 2 * blocks)?;
    {
        let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
        let mut wv = DeviceSliceMut::from(&mut words);
        let (p_words, _gw) = wv.kernel_ptr_mut(gpu, op, "words")?;
        let (p_min, p_count) = (p_words.offset_bytes(4 * 4), p_words.offset_bytes(4 * (4 + blocks)));
        let shape = LaunchShape { grid: (blocks as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 };
        // SAFETY: the grid strides over keys [0, n) (keys holds n), block b writes block_min[b] and block_count[b]
        // (blocks entries each, words [4, 4 + blocks) and [4 + blocks, 4 + 2 * blocks)), every block adds to
        // words[2] and words[3] and the last one writes words[0..2] (zeroed); one fresh allocation of 4 + 2 *
        // blocks words, distinct from keys; arguments match topk_all_min_count_<dtype>.
        unsafe {
            gpu.launch(MODULE, &kernel::<T>("all_min_count"), shape, &[p_keys, KernelArg::U32(n as u32), KernelArg::U32(flags), p_words, p_min, p_count])?;
        }
    }
    let mask = if with_mask {
        let count = n.div_ceil(64);
        // SAFETY: topk_all_bits writes every one of the count words below.
        let mut mask = unsafe { gpu.alloc_uninit::<u64>(count)? };
        {
            let mut mv = DeviceSliceMut::from(&mut mask);
            let (p_mask, _gm) = mv.kernel_ptr_mut(gpu, op, "mask")?;
            // SAFETY: thread i < ceil(n / 64) writes word i of the mask (that many words, a fresh allocation);
            // arguments match topk_all_bits.
            unsafe { gpu.launch(MODULE, "topk_all_bits", LaunchShape::linear(op, count, THREADS)?, &[p_mask, KernelArg::U64(n as u64)])? };
        }
        Some(mask)
    } else {
        None
    };
    let w = gpu.download(words.slice(0..4))?;
    refuse_nans(op, w[2] as usize, spec)?;
    let equal = w[1] as usize;
    if equal == 0 || equal > n {
        return Err(Error::Cuda { op, detail: format!("inconsistent minimum count {w:?} for n = {n}") });
    }
    Ok((mask, TopkCut { threshold: Some(element_of_key(w[0], flags)), count_beyond: n - equal, count_equal_taken: equal }))
}

/// The launch of the candidate-stage kernels (refine levels, tie count, take): one warp per candidate region,
/// THREADS / 32 regions per block; the kernels loop over regions below their `regions` argument.
fn warp_per_region_shape(regions: usize) -> LaunchShape {
    LaunchShape { grid: (regions.div_ceil(THREADS as usize / 32).max(1) as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 }
}

/// Launches the later levels of a bracket path (`topk_bracket_refine_<dtype>`, [`refine_levels`] of them) over
/// `regions` candidate regions, one warp each (THREADS / 32 per block): with `counts`, the mask path's regions
/// (region b holds counts[b] entries from b * CHUNK_CAP); without, the cut path's one list, whose length is bracket
/// word 5. Each narrows the choice in `words` to one of at most REFINE_BINS bins, or returns at once when it is
/// final.
fn launch_refine_levels<T: TopkKey>(gpu: &Gpu, regions: usize, flags: u32, p_vals: KernelArg, p_counts: Option<KernelArg>, p_words: KernelArg) -> Result<()> {
    // The cut path's list (capacity regions * CHUNK_CAP) in LIST_SHARE-entry shares on a grid of at most
    // LIST_BLOCKS_PER_SM blocks per multiprocessor (the kernel's warps stride over the shares).
    let (regions, share, shape) = match p_counts {
        Some(_) => (regions, CHUNK_CAP, warp_per_region_shape(regions)),
        None => {
            let shares = regions * (CHUNK_CAP / LIST_SHARE);
            let mut shape = warp_per_region_shape(shares);
            let cap = LIST_GRID_CAP.with(|c| c.get()).unwrap_or(gpu.multiprocessor_count() as usize * LIST_BLOCKS_PER_SM);
            shape.grid.0 = shape.grid.0.min(cap.max(1) as u32);
            (shares, LIST_SHARE, shape)
        }
    };
    // The cut path's levels are ordinary launches: with programmatic dependent launch the f32 cut (two levels) took
    // 1.05-1.07x its time (H200, tenth run, ddf76e3: the levels launched without it, by a per-kernel switch since
    // removed, took 0.934-0.951x at 4096² and 4096 x 11008, 1% and 5%; bf16's one level 0.96-1.01x, neutral). Not
    // explained. The mask path's levels keep it (not measured apart).
    let dependent = p_counts.is_some();
    let (p_counts, p_total) = match p_counts {
        Some(c) => (c, KernelArg::Ptr(0)),
        None => (KernelArg::Ptr(0), p_words.offset_bytes(4 * 5)),
    };
    for level in 0..refine_levels::<T>() {
        let hist = p_words.offset_bytes(4 * (MASK_HIST2 + level * REFINE_BINS));
        let ticket = p_words.offset_bytes(4 * (MASK_TICKETS + level));
        // SAFETY (the caller's buffers, see its comment): each warp reads, for its regions r < `regions` only (the
        // kernel's loop bound, striding by the grid's warps), region r's entry count (counts[r], share = CHUNK_CAP;
        // or its `share`-entry share of the list's length, bracket word 5, which the choice only leaves open when it
        // is within the list's capacity of the caller's regions * CHUNK_CAP = `regions` * `share` here, CHUNK_CAP
        // a multiple of LIST_SHARE) and at most that many (<= share) entries of cand_vals from r * share, all
        // written by the pass; warps past the last region read nothing; a block adds to
        // this level's REFINE_BINS histogram words and
        // its ticket word, and the last block rewrites the 8 choice words, all inside `words` (zeroed,
        // MASK_PATH_WORDS; MASK_HIST2 + refine_levels * REFINE_BINS <= MASK_PATH_WORDS); a null count or list
        // length is never read; arguments match topk_bracket_refine_<dtype>. Dependent launch (the mask path):
        // every thread waits for the previous grid first (cuda/topk.cu bracket_refine), as launch_after_previous
        // requires; for the cut path an ordinary launch, after which that wait returns at once.
        let args = [p_vals, p_counts, p_total, KernelArg::U32(regions as u32), KernelArg::U32(share as u32), KernelArg::U32(flags), p_words.offset_bytes(4 * MASK_SEL), hist, ticket];
        unsafe {
            if dependent {
                gpu.launch_after_previous(MODULE, &kernel::<T>("bracket_refine"), shape, &args)?;
            } else {
                gpu.launch(MODULE, &kernel::<T>("bracket_refine"), shape, &args)?;
            }
        }
    }
    Ok(())
}

/// The cut from a bracket path's words after the read-back: `Ok(None)` when the bracket failed its check (the
/// caller falls back to the radix passes), the NaN error under [`NanPolicy::Error`], an error if the choice is
/// not final or its counts disagree with k (a bug, never a fallback).
fn cut_of_choice<T: TopkKey>(op: &'static str, w: &[u32], k: usize, flags: u32, spec: &TopkSpec<T>) -> Result<Option<TopkCut<T>>> {
    let above = w[2] as usize;
    refuse_nans(op, w[3] as usize, spec)?;
    let sel = &w[MASK_SEL..MASK_SEL + 8];
    if sel[SEL_STATUS] == SEL_INVALID {
        count_bracket_path(false);
        return Ok(None);
    }
    let (quota, before) = (sel[SEL_RANK] as usize, sel[SEL_BEFORE] as usize);
    if sel[SEL_STATUS] != SEL_DONE || before + quota != k || quota == 0 || before < above || quota > sel[SEL_COUNT] as usize {
        return Err(Error::Cuda { op, detail: format!("inconsistent bracket choice {sel:?} for k = {k} ({above} above the bracket)") });
    }
    count_bracket_path(true);
    Ok(Some(TopkCut { threshold: Some(element_of_key(sel[SEL_KEY_LO], flags)), count_beyond: before, count_equal_taken: quota }))
}

/// The cut alone (no mask) of a per-matrix count over `n >= BRACKET_MIN_N` keys through the sample bracket, queued
/// with one synchronization: the sample; one pass over the keys that counts those above the bracket, appends those
/// inside it to one list (values only, any order: the cut does not depend on it) and counts them in at most 1024
/// bins of the bracket, its last block checking the bracket with the exact counts and naming the bin holding K*
/// (`topk_bracket_count_<dtype>`); the later levels over the list, which narrow that bin to K* itself (two for
/// f32, one for 16-bit keys); then one read-back. `Ok(None)`: the bracket missed K* or the list overflowed (the
/// caller runs the radix passes).
fn bracket_cut<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, n: usize, k: usize, flags: u32, spec: &TopkSpec<T>) -> Result<Option<TopkCut<T>>> {
    debug_assert!(n >= BRACKET_MIN_N && k >= 1 && k <= n && keys.len() == n);
    let blocks = n.div_ceil(CHUNK);
    let cap = blocks * CHUNK_CAP;
    let mut laps = gpu.step_times(profiling());
    laps.mark("start");
    let layout = BracketScratch::new::<T>(blocks, false);
    // SAFETY: one allocation, two regions (BracketScratch): the path words, of which the sample kernel, the first
    // to run, writes words 0 and 1 and zeroes the rest (MASK_PATH_WORDS); the candidate list (cap keys from word
    // layout.vals), of which topk_bracket_count writes every entry below the count it reports (capped at cap), and
    // the later levels read only those (the choice is invalid, and they return at once, when the count exceeds
    // cap). Nothing else is read. If the device cannot spare the list, the radix passes, which need far less, run.
    let Ok(mut scratch) = (unsafe { gpu.alloc_uninit::<u32>(layout.total) }) else {
        count_bracket_path(false);
        return Ok(None);
    };
    laps.mark("scratch");
    launch_sample_bracket(op, gpu, keys, n, k, flags, &mut scratch)?;
    laps.mark("sample");
    {
        let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
        let mut sview = DeviceSliceMut::from(&mut scratch);
        let (p_words, _gw) = sview.kernel_ptr_mut(gpu, op, "bracket scratch")?;
        let p_list = p_words.offset_bytes(4 * layout.vals);
        // The streaming pass, or under `SLR_TOPK_PATH=rounds` (or [`use_round_count_on_this_thread`]) the
        // round-based pass it replaced, the A/B baseline of the benchmarks ([`cut_pass_launch`]). Both fill the
        // same list and words.
        let (kernel_name, shape) = cut_pass_launch::<T>(gpu, n, round_count_forced());
        // SAFETY: the round-based pass: block b reads keys [b * CHUNK, min(n, (b + 1) * CHUNK)) (grid = blocks =
        // ceil(n / CHUNK) <= 2^17); the streaming pass: the grid strides over keys [0, n) (16-byte loads only of
        // whole vectors inside it, from its first 16-byte boundary; the keys before and after one by one), any grid
        // size >= 1. keys holds n. Either adds to bracket words 2, 3, 5 and 6 and to the CUT_BINS level-1
        // histogram words, its last block writes the 8 choice words (all inside the path words, MASK_PATH_WORDS
        // zeroed by the sample kernel, the MASK_* layout), and writes list entries only below cap (the list region
        // holds cap keys of T from word layout.vals, 256-byte aligned, after the path words: BracketScratch); the
        // scratch is fresh and distinct from keys; arguments match topk_bracket_count_<dtype> and
        // topk_bracket_count_rounds_<dtype>. Dependent launch: before waiting for the sample kernel each thread
        // only zeroes shared memory and loads keys (the op's input, complete before the sample started).
        unsafe {
            gpu.launch_after_previous(
                MODULE,
                &kernel_name,
                shape,
                &[p_keys, KernelArg::U32(n as u32), KernelArg::U32(flags), KernelArg::U32(k as u32), p_words, p_list, KernelArg::U32(cap as u32), p_words.offset_bytes(4 * MASK_HIST1), p_words.offset_bytes(4 * MASK_SEL)],
            )?;
        }
        laps.mark("pass");
        launch_refine_levels::<T>(gpu, blocks, flags, p_list, None, p_words)?;
        laps.mark("levels");
    }
    // The bracket and choice words only (64 bytes; the histograms after them are 36 KiB the host never reads).
    let w = gpu.download(scratch.slice(0..MASK_SEL + 8))?;
    laps.mark("read-back");
    laps.report(&format!("topk profile (cut, bracket, n = {n}, k = {k}, {})", T::DTYPE.name()));
    cut_of_choice(op, &w, k, flags, spec)
}

/// Exact per-matrix top-k mask of `n >= BRACKET_MIN_N` keys through a sample bracket (cuda/topk.cu, "Sample
/// bracket" and "The later levels"), queued with one synchronization: the sample's two order
/// statistics; one pass over the keys that sets the bits of the keys above the bracket, writes those inside it
/// with their flat indices to per-block regions in flat-index order and counts them in at most 1024 bins of the
/// bracket, its last block checking the bracket with the exact counts and naming the bin holding K*;
/// `levels` narrowings of that bin over the regions (at most 4096 bins each: two for f32, one for 16-bit keys,
/// after which the bin is K* itself); the ranks of the keys equal to K* when the quota leaves some out (per-region
/// counts and their scan); the candidates' bits; then one read-back of the words. `Ok(None)` when the exact counts
/// show the bracket missed K* or a block's candidates overflowed its region: the caller then runs the radix passes
/// over all keys (same result, slower). NaNs under [`NanPolicy::Error`] are reported here. Reads the keys once
/// (plus the sample), against 5-6 times for the radix passes.
fn bracket_mask<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, n: usize, k: usize, flags: u32, spec: &TopkSpec<T>) -> Result<Option<(DeviceVec<u64>, TopkCut<T>)>> {
    debug_assert!(n >= BRACKET_MIN_N && k >= 1 && k <= n && keys.len() == n);
    const _: () = assert!(BRACKET_MIN_N >= SAMPLES, "every sample stratum must hold a key");
    let blocks = n.div_ceil(CHUNK);
    let mut laps = gpu.step_times(profiling());
    laps.mark("start");
    let layout = BracketScratch::new::<T>(blocks, true);
    // SAFETY: one allocation, five regions (BracketScratch), nothing read before it is written: the path words, of
    // which the sample kernel, the first to run, writes words 0 and 1 and zeroes the rest (MASK_PATH_WORDS);
    // the candidate counts and regions, of which topk_bracket_pass writes every block's count and every region
    // entry it counts (up to CHUNK_CAP per block, key and index), and the later kernels read only the counted
    // entries; the tie counts, which topk_bracket_tie_count writes for every region before topk_bracket_take reads
    // them, and neither reads them otherwise. The regions hold a quarter of n in entries (key + index): if the
    // device cannot spare that, the radix passes, which need far less, run instead.
    let Ok(mut scratch) = (unsafe { gpu.alloc_uninit::<u32>(layout.total) }) else {
        count_bracket_path(false);
        return Ok(None);
    };
    // SAFETY: each block of the pass stores every 32-bit half of its chunk's mask words that holds keys, and the
    // last block zeroes the high half of the last word when n ends in its low half (the chunks cover all
    // ceil(n / 64) words); later kernels only OR bits in.
    let mut mask = unsafe { gpu.alloc_uninit::<u64>(n.div_ceil(64))? };
    laps.mark("scratch");
    launch_sample_bracket(op, gpu, keys, n, k, flags, &mut scratch)?;
    laps.mark("sample");
    {
        let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
        let mut sview = DeviceSliceMut::from(&mut scratch);
        let (p_words, _gw) = sview.kernel_ptr_mut(gpu, op, "bracket scratch")?;
        // Disjoint regions of the scratch, each 256-byte aligned (BracketScratch): blocks counts, blocks tie
        // counts, blocks * CHUNK_CAP indices and as many keys of T.
        let (p_counts, p_eq) = (p_words.offset_bytes(4 * layout.counts), p_words.offset_bytes(4 * layout.ties));
        let (p_idx, p_vals) = (p_words.offset_bytes(4 * layout.idx), p_words.offset_bytes(4 * layout.vals));
        let mut mview = DeviceSliceMut::from(&mut mask);
        let (p_mask, _gm) = mview.kernel_ptr_mut(gpu, op, "mask")?;
        let p_sel = p_words.offset_bytes(4 * MASK_SEL);
        // The round-based pass (topk_bracket_pass_rounds_<dtype>, one block per chunk) by default; the streaming
        // pass (topk_bracket_pass_<dtype>: one warp per chunk, 16-byte loads from the keys' first element) under
        // `SLR_TOPK_PATH=stream_mask` ([`streaming_mask_forced`], slower on the H200) when the keys start on a
        // 16-byte boundary. Both fill the same regions, counts, mask halves and words.
        let rounds_pass = !streaming_mask_forced() || round_count_forced() || !keys.addr_range(gpu).aligned_to(16);
        let (pass_kernel, pass_shape) = if rounds_pass {
            (kernel::<T>("bracket_pass_rounds"), LaunchShape { grid: (blocks as u32, 1, 1), block: (THREADS, 1, 1), shared_bytes: 0 })
        } else {
            (kernel::<T>("bracket_pass"), warp_per_region_shape(blocks))
        };
        let warps_shape = warp_per_region_shape(blocks);
        // SAFETY: chunk b (block b of the round-based pass; warp b % 8 of block b / 8 of the streaming pass, whose
        // grid's extra warps have no chunk and read nothing; its 16-byte loads start on the keys' 16-byte boundary,
        // checked above, at multiples of CHUNK keys, and the last partial vector is read key by key below n)
        // reads keys [b * CHUNK, min(n, (b + 1) * CHUNK)) (keys holds n; blocks = ceil(n / CHUNK) <= 2^17 fits the
        // grid), adds to bracket words 2-6 and to the CUT_BINS level-1 histogram words, writes at
        // most CHUNK_CAP entries of its own region [b * CHUNK_CAP, (b + 1) * CHUNK_CAP) of cand_vals and cand_idx
        // (blocks * CHUNK_CAP each) and cand_counts[b] (blocks), stores the 32-bit halves of its own chunk's mask
        // words that hold its keys (flat indices below n; the last block also zeroes the high half of the mask's
        // last word when n ends in its low half: all inside the ceil(n / 64) words); the last block writes the 8
        // choice words; all words lie inside the path words (MASK_PATH_WORDS, zeroed by the sample kernel, the
        // layout of the MASK_* offsets); the regions named are disjoint parts of one fresh scratch allocation
        // (BracketScratch: each sized as stated, none overlapping the path words), and the mask is another, both
        // distinct from keys; arguments match topk_bracket_pass_<dtype> and topk_bracket_pass_rounds_<dtype>.
        // Dependent launch: before waiting for the sample kernel each thread only zeroes shared bins and loads
        // keys (the op's input, complete before the sample started).
        unsafe {
            gpu.launch_after_previous(
                MODULE,
                &pass_kernel,
                pass_shape,
                &[p_keys, KernelArg::U32(n as u32), KernelArg::U32(flags), KernelArg::U32(k as u32), p_words, p_mask, p_vals, p_idx, p_counts, p_words.offset_bytes(4 * MASK_HIST1), p_sel],
            )?;
        }
        laps.mark("pass");
        launch_refine_levels::<T>(gpu, blocks, flags, p_vals, Some(p_counts), p_words)?;
        laps.mark("levels");
        // SAFETY: the warp of region r < blocks (the kernel's loop bound; a grid of ceil(blocks / 8) blocks of 8
        // warps, the extra ones read nothing) reads cand_counts[r] and at most that many entries of region r of
        // cand_vals, writes region_eq[r] (blocks entries), and the last block rewrites region_eq[0..blocks) in
        // place; it reads the choice words and adds to one ticket word inside `words`; arguments match
        // topk_bracket_tie_count_<dtype>. Dependent launch: every thread waits for the previous grid first.
        unsafe {
            gpu.launch_after_previous(
                MODULE,
                &kernel::<T>("bracket_tie_count"),
                warps_shape,
                &[p_vals, p_counts, KernelArg::U32(blocks as u32), KernelArg::U32(flags), p_sel, p_eq, p_words.offset_bytes(4 * (MASK_TICKETS + 2))],
            )?;
        }
        // SAFETY: the warp of region r < blocks (as above) reads cand_counts[r] and at most that many entries of
        // region r of cand_vals and cand_idx (flat indices of the pass's chunk r, below n, written by the pass),
        // region_eq[r] (written by the tie count whenever the choice makes this kernel read it) and the choice
        // words, and reads and rewrites the mask halves of chunk r [r * CHUNK / 32, (r + 1) * CHUNK / 32) that
        // receive a bit (only halves holding a taken index: inside the ceil(n / 64) words); chunks are whole mask
        // words (CHUNK a multiple of 64), so no two warps touch the same word; arguments match
        // topk_bracket_take_<dtype>. Dependent launch: every thread waits for the previous grid first.
        unsafe {
            gpu.launch_after_previous(MODULE, &kernel::<T>("bracket_take"), warps_shape, &[p_vals, p_idx, p_counts, KernelArg::U32(blocks as u32), KernelArg::U32(flags), p_sel, p_eq, p_mask])?;
        }
        laps.mark("ties and bits");
    }
    // The bracket and choice words only (64 bytes; the histograms after them are 36 KiB the host never reads).
    let w = gpu.download(scratch.slice(0..MASK_SEL + 8))?;
    laps.mark("read-back");
    laps.report(&format!("topk profile (mask, bracket, n = {n}, k = {k}, {})", T::DTYPE.name()));
    Ok(cut_of_choice(op, &w, k, flags, spec)?.map(|cut| (mask, cut)))
}

/// Runs the digit passes (Count) and the tile counts: afterwards every segment's state holds K*, the quota of
/// keys equal to K* to take, c_gt, the NaN count and the keys beyond K* counted directly.
fn select_on_device<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, segs: usize, seg_len: usize, plan: &Plan, flags: u32) -> Result<DeviceSelection> {
    let mut state = initial_state(gpu, segs, plan)?;
    let tiles_per_seg = seg_len.div_ceil(TILE);
    let mut counts = gpu.alloc_zeros::<u32>(segs * tiles_per_seg)?;
    let sel = |state, counts| DeviceSelection { state, counts, tiles_per_seg };
    if segs * seg_len == 0 {
        return Ok(sel(state, counts));
    }
    let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
    if let Plan::Count(_) = plan {
        let parts = seg_len.div_ceil(TILE).clamp(1, (HISTOGRAM_BLOCKS / segs).max(1));
        let hist_shape = LaunchShape::linear(op, segs * parts * THREADS as usize, THREADS)?;
        let choose_shape = LaunchShape::linear(op, segs * THREADS as usize, THREADS)?;
        let key_bits = 8 * T::DTYPE.size() as u32;
        // One zeroed buffer for every pass's histograms (one allocation and one memset, not one per pass).
        let mut hists = gpu.alloc_zeros::<u32>((key_bits / 8) as usize * segs * BINS)?;
        for pass in 1..=key_bits / 8 {
            let shift = key_bits - 8 * pass;
            let at = (pass - 1) as usize * segs * BINS;
            let mut hist_view = hists.slice_mut(at..at + segs * BINS);
            let (p_hist, _gh) = hist_view.kernel_ptr_mut(gpu, op, "histogram")?;
            let mut state_view = DeviceSliceMut::from(&mut state);
            let (p_state, _gs) = state_view.kernel_ptr_mut(gpu, op, "state")?;
            // SAFETY: keys holds segs * seg_len elements (checked against rows * cols by `segments`), read at
            // seg * seg_len + i for i < seg_len and seg < segs (grid = segs * parts blocks); state holds
            // segs * STATE_WORDS words and hist (this pass's zeroed slice of a fresh allocation) segs * 256,
            // distinct from keys and from each other; the
            // shift is a multiple of 8 below the key width; arguments match topk_histogram_<dtype>.
            unsafe {
                gpu.launch(
                    MODULE,
                    &kernel::<T>("histogram"),
                    hist_shape,
                    &[p_keys, KernelArg::U32(seg_len as u32), KernelArg::U32(parts as u32), KernelArg::U32(flags), KernelArg::U32(shift), p_state, p_hist],
                )?;
            }
            // SAFETY: one block per segment reads its 256 bins of hist and updates its STATE_WORDS words of
            // state (sizes as above); hist and state are distinct; arguments match topk_choose.
            unsafe { gpu.launch(MODULE, "topk_choose", choose_shape, &[p_hist, KernelArg::U32(shift), p_state])? };
        }
    }
    let tile_shape = LaunchShape::linear(op, segs * tiles_per_seg * THREADS as usize, THREADS)?;
    {
    let mut state_view = DeviceSliceMut::from(&mut state);
    let (p_state, _gs) = state_view.kernel_ptr_mut(gpu, op, "state")?;
    let mut counts_view = DeviceSliceMut::from(&mut counts);
    let (p_counts, _gc) = counts_view.kernel_ptr_mut(gpu, op, "tile counts")?;
    // SAFETY: block b handles tile b % tiles_per_seg of segment b / tiles_per_seg, reading keys only at offsets
    // below seg_len within its segment (keys holds segs * seg_len); it writes counts[b] (segs * tiles_per_seg
    // elements) and adds to its segment's state words; counts and state are fresh, distinct allocations;
    // arguments match topk_tile_counts_<dtype>.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel::<T>("tile_counts"),
            tile_shape,
            &[p_keys, KernelArg::U32(seg_len as u32), KernelArg::U32(tiles_per_seg as u32), KernelArg::U32(flags), p_state, p_counts],
        )?;
    }
    }
    Ok(sel(state, counts))
}

/// Reads the states back (one synchronization) and turns them into cuts; applies the NaN policy.
fn cuts_of<T: TopkKey>(op: &'static str, gpu: &Gpu, state: &DeviceVec<u32>, segs: usize, plan: &Plan, spec: &TopkSpec<T>) -> Result<Vec<TopkCut<T>>> {
    cuts_of_words(op, &gpu.download(state)?, segs, plan, spec)
}

/// [`cuts_of`] on the state words read back.
fn cuts_of_words<T: TopkKey>(op: &'static str, state: &[u32], segs: usize, plan: &Plan, spec: &TopkSpec<T>) -> Result<Vec<TopkCut<T>>> {
    let words = &state[..segs * STATE_WORDS];
    refuse_nans(op, words.chunks_exact(STATE_WORDS).map(|w| w[3] as usize).sum(), spec)?;
    let flags = spec.flags();
    // One allocation of the right size and a plain loop: collecting a Result iterator grew the Vec by doubling
    // (45 µs for 4096 rows on the development machine, ~70 µs on the H200's host, more than the per-row kernel's
    // read-back; now a few µs).
    let mut cuts = Vec::with_capacity(segs);
    for (s, w) in words.chunks_exact(STATE_WORDS).enumerate() {
        let beyond = w[4] as usize;
        cuts.push(match *plan {
            Plan::Count(k) => {
                // The passes' c_gt and the direct count must agree, and the quota must complete k.
                if w[2] as usize != beyond || beyond + w[1] as usize != k {
                    return Err(Error::Cuda { op, detail: format!("segment {s}: inconsistent selection state {w:?} for k = {k}") });
                }
                TopkCut { threshold: Some(element_of_key(w[0], flags)), count_beyond: beyond, count_equal_taken: w[1] as usize }
            }
            Plan::Fixed { key, none } => {
                TopkCut { threshold: if none { None } else { Some(element_of_key(key, flags)) }, count_beyond: beyond, count_equal_taken: 0 }
            }
        });
    }
    Ok(cuts)
}

/// The cut of each selection (one for [`Scope::Matrix`], one per row for [`Scope::PerRow`]): the k-th key and
/// exact counts of entries beyond it and equal to it taken, computed on the device by radix select. See the
/// module docs for the order, the tie rule and NaN.
///
/// `keys` is `rows x cols` row-major (`rows * cols <= 2^31 - 1`). Synchronizes once (the cuts are read back;
/// twice when a sample bracket fails its check and the radix passes run, see the module docs).
/// Errors (nothing launched): `keys.len() != rows * cols`, too many elements, `k > n` ([`Error::CountOutOfRange`];
/// any `k > 0` of an empty matrix), fraction outside `[0, 1]`, NaN threshold; after the launches: NaNs in the keys
/// under [`NanPolicy::Error`]. Floor: one read of the keys (`n * size_of::<T>()` bytes) on the per-row and
/// sample-bracket paths (module docs; the bracket adds its 4096-key sample and the candidates, a few percent of
/// n, written and read a few times); the radix passes read the keys once per 8-bit digit (4 for f32, 2 for
/// f16/bf16, none for `Beyond` or k = 0) plus once to count. Scratch on the device: 1 KiB of histogram per
/// digit pass and 32 B of state per segment, 4 B per 4096-element tile; the bracket's candidate list, a quarter
/// of the keys' count in keys, and 36 KiB of counts (for the mask: regions of one key and one u32 index each).
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// let w = gpu.upload(&[0.5f32, -3.0, 2.0, -0.0, 3.0, 1.0])?;
/// // The 3 largest magnitudes of a 2x3 matrix: |-3| and |3| tie, |2| is the cut.
/// let cuts = topk_threshold(&gpu, &w, 2, 3, &TopkSpec::count(3))?;
/// assert_eq!(cuts[0], TopkCut { threshold: Some(2.0), count_beyond: 2, count_equal_taken: 1 });
/// // Per row, the smallest signed value of each row, as a CSR pattern with the values.
/// let csr = topk_csr(&gpu, &w, 2, 3, &TopkSpec::count(1).by(RankBy::Value).smallest().per_row())?;
/// assert_eq!(gpu.download(&csr.values)?, vec![-3.0, -0.0]);
/// # Ok(()) }
/// ```
pub fn topk_threshold<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<Vec<TopkCut<T>>> {
    const OP: &str = "topk_threshold";
    let keys = keys.into();
    let (segs, seg_len) = segments(OP, rows, cols, keys.len(), spec.scope)?;
    let plan = plan(OP, spec, seg_len)?;
    if selects_everything(spec.scope, plan, seg_len) {
        return Ok(vec![select_everything(OP, gpu, &keys, seg_len, spec.flags(), spec, false)?.1]);
    }
    if let Some(k) = bracket_k(spec.scope, plan, seg_len) {
        if let Some(cut) = bracket_cut(OP, gpu, &keys, seg_len, k, spec.flags(), spec)? {
            return Ok(vec![cut]);
        }
    }
    if by_rows::<T>(gpu, seg_len) {
        let state = select_rows_on_device(OP, gpu, &keys, segs, seg_len, &plan, spec.flags(), None)?;
        return cuts_of(OP, gpu, &state, segs, &plan, spec);
    }
    let sel = select_on_device(OP, gpu, &keys, segs, seg_len, &plan, spec.flags())?;
    cuts_of(OP, gpu, &sel.state, segs, &plan, spec)
}

/// Writes the selection's bits into a fresh mask; returns it with the cuts, or without them (`want_cuts` false,
/// for [`topk_mask_only`]: then the per-row path under [`NanPolicy::AboveInfinity`] reads nothing back).
fn mask_on_device<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, rows: usize, cols: usize, spec: &TopkSpec<T>, want_cuts: bool) -> Result<(DeviceBitMask, Vec<TopkCut<T>>)> {
    let (segs, seg_len) = segments(op, rows, cols, keys.len(), spec.scope)?;
    let plan = plan(op, spec, seg_len)?;
    let flags = spec.flags();
    if selects_everything(spec.scope, plan, seg_len) {
        if let (Some(words), cut) = select_everything(op, gpu, keys, seg_len, flags, spec, true)? {
            return Ok((DeviceBitMask::from_trusted_words(rows, cols, words), vec![cut]));
        }
    }
    if let Some(k) = bracket_k(spec.scope, plan, seg_len) {
        if let Some((words, cut)) = bracket_mask(op, gpu, keys, seg_len, k, flags, spec)? {
            return Ok((DeviceBitMask::from_trusted_words(rows, cols, words), vec![cut]));
        }
    }
    let rows_path = by_rows::<T>(gpu, seg_len);
    let mut laps = gpu.step_times(profiling() && rows_path);
    laps.mark("start");
    let n_words = (rows * cols).div_ceil(64);
    let mut words = if rows_path && rows_own_their_words(seg_len) && segs * seg_len > 0 {
        // SAFETY: every row owns whole words (seg_len a multiple of 64), every 32-bit half of which its block
        // stores (cuda/topk.cu select_row); the rows cover all n_words words.
        unsafe { gpu.alloc_uninit::<u64>(n_words)? }
    } else {
        gpu.alloc_zeros::<u64>(n_words)?
    };
    if rows_path {
        laps.mark("scratch");
        let state = select_rows_on_device(op, gpu, keys, segs, seg_len, &plan, flags, Some(&mut words))?;
        laps.mark("rows");
        if !want_cuts && spec.nan == NanPolicy::AboveInfinity {
            // Nothing to refuse and no cut to report: the state words stay on the device (freed in stream order
            // after the kernel) and the call returns with the launch queued.
            laps.report(&format!("topk profile (mask only, per row, {segs} rows of {seg_len}, {})", T::DTYPE.name()));
            return Ok((DeviceBitMask::from_trusted_words(rows, cols, words), Vec::new()));
        }
        // Two laps (the sixth run measured 0.11-0.13 ms for this read-back of 32 bytes per row, 4096 rows, against
        // a 0.09 ms kernel: the laps tell the copy from the host's parsing).
        let state_words = gpu.download(&state)?;
        laps.mark("read-back");
        let cuts = cuts_of_words(op, &state_words, segs, &plan, spec)?;
        laps.mark("cuts");
        laps.report(&format!("topk profile (mask, per row, {segs} rows of {seg_len}, {})", T::DTYPE.name()));
        return Ok((DeviceBitMask::from_trusted_words(rows, cols, words), cuts));
    }
    let sel = select_on_device(op, gpu, keys, segs, seg_len, &plan, flags)?;
    write_mask(op, gpu, keys, segs, seg_len, flags, &sel, &mut words)?;
    let cuts = cuts_of(op, gpu, &sel.state, segs, &plan, spec)?;
    Ok((DeviceBitMask::from_trusted_words(rows, cols, words), cuts))
}

/// ORs the bits of the selection `sel` (from [`select_on_device`] over the same keys) into `words` (zeroed,
/// `ceil(segs * seg_len / 64)` words): the tile counts' scan, then `topk_select_mask_<dtype>`.
#[allow(clippy::too_many_arguments)]
fn write_mask<T: TopkKey>(op: &'static str, gpu: &Gpu, keys: &DeviceSlice<'_, T>, segs: usize, seg_len: usize, flags: u32, sel: &DeviceSelection, words: &mut DeviceVec<u64>) -> Result<()> {
    if segs * seg_len == 0 {
        return Ok(());
    }
    debug_assert!(words.len() >= (segs * seg_len).div_ceil(64));
    // The counts are of keys in each tile, so the offsets stay below segs * seg_len < 2^31: no need to wait for
    // the total (cuts_of checks the selection's counts afterwards).
    let (offsets, _total) = crate::scan::exclusive_scan_u32_queued(gpu, &sel.counts)?;
    let shape = LaunchShape::linear(op, segs * sel.tiles_per_seg * THREADS as usize, THREADS)?;
    let (p_keys, _gk) = keys.kernel_ptr(gpu, op, "keys")?;
    let state_view = DeviceSlice::from(&sel.state);
    let (p_state, _gs) = state_view.kernel_ptr(gpu, op, "state")?;
    let offsets_view = DeviceSlice::from(&offsets);
    let (p_offsets, _go) = offsets_view.kernel_ptr(gpu, op, "tile offsets")?;
    let mut words_view = DeviceSliceMut::from(words);
    let (p_words, _gw) = words_view.kernel_ptr_mut(gpu, op, "mask")?;
    // SAFETY: block b handles tile b % tiles_per_seg of segment b / tiles_per_seg: it reads keys below seg_len
    // within its segment (keys holds segs * seg_len, the callers' invariant), state (segs * STATE_WORDS) and
    // offsets (segs * tiles_per_seg + 1, the scan of counts); it ORs bits only at flat indices of its own
    // elements, all below segs * seg_len, into words (at least ceil(segs * seg_len / 64) words, zeroed by the
    // caller, distinct from every input); arguments match topk_select_mask_<dtype>.
    unsafe {
        gpu.launch(
            MODULE,
            &kernel::<T>("select_mask"),
            shape,
            &[p_keys, KernelArg::U32(seg_len as u32), KernelArg::U32(sel.tiles_per_seg as u32), KernelArg::U32(flags), p_state, p_offsets, p_words],
        )
    }
}

/// The selected entries as a bit-packed mask on the device (bit `r * cols + c`), with the cuts as in
/// [`topk_threshold`]. Exactly the entries of [`topk_cpu`]'s mask.
///
/// Same shapes and errors as [`topk_threshold`]; synchronizes once per matrix through the sample bracket and per
/// row for rows that fit one block's shared memory (module docs), twice on the radix passes (the scan total, the cuts).
/// Floor: on the bracket path the keys read once, the candidates (a few percent of n) written once and read a
/// few times, the mask written once (`n / 8` bytes); per row with such rows, one block per row reads its keys
/// once into shared memory and does everything there (one read in all); the radix passes read the keys once
/// more than for the threshold (6 reads for f32, 4 for f16/bf16).
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # use half::bf16;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// // LIFT-style: the 2 largest magnitudes of a 2x3 bf16 weight; the tie at |1.5| goes to the lower flat index.
/// let w: Vec<bf16> = [1.5f32, -0.25, -1.5, 0.5, 1.5, -2.0].iter().map(|&x| bf16::from_f32(x)).collect();
/// let dw = gpu.upload(&w)?;
/// let (mask, cuts) = topk_mask(&gpu, &dw, 2, 3, &TopkSpec::count(2))?;
/// let mask = mask.download(&gpu)?;
/// assert!(mask.get(1, 2) && mask.get(0, 0) && mask.count_ones() == 2);
/// assert_eq!(cuts[0].threshold, Some(bf16::from_f32(1.5)));
/// // The mask as a CSR pattern, for gather / scatter_add / spmm.
/// let pattern: CsrPattern<u32> = mask.to_pattern()?;
/// assert_eq!(pattern.nnz(), 2);
/// # Ok(()) }
/// ```
pub fn topk_mask<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<(DeviceBitMask, Vec<TopkCut<T>>)> {
    let keys = keys.into();
    mask_on_device("topk_mask", gpu, &keys, rows, cols, spec, true)
}

/// [`topk_mask`]'s mask without the cuts, and without waiting for the device where nothing needs checking on the
/// host: on the per-row path (rows of at most [`topk_row_max_len`] keys, or a whole matrix that small, module docs)
/// under [`NanPolicy::AboveInfinity`] its one launch is queued on the handle's stream and the call returns at once,
/// with no synchronization, so a training step's per-row selection does not drain the stream before the next op.
/// (On an H200, eleventh run, [`topk_mask`]'s read-back and cuts took ~40 µs of its 0.12 ms at 4096 rows of 4096.)
/// Elsewhere (per matrix over the sample bracket or the radix passes, longer rows, or [`NanPolicy::Error`], whose
/// NaN count must be read back to refuse them) it waits as [`topk_mask`] does.
///
/// Same shapes and errors as [`topk_threshold`]; exactly the entries of [`topk_cpu`]'s mask. Floor: as
/// [`topk_mask`]'s.
///
/// ```no_run
/// # use sparse_lowrank::*;
/// # fn main() -> Result<()> {
/// let gpu = Gpu::new(0)?;
/// let (rows, cols) = (4096, 4096);
/// let grads = gpu.alloc_zeros::<f32>(rows * cols)?; // e.g. a gradient, filled by the training step
/// // SpIEL-style regrowth: the 64 largest gradient magnitudes of every row, queued behind the step's kernels.
/// let spec = TopkSpec::count(64).per_row().nan(NanPolicy::AboveInfinity);
/// let mask = topk_mask_only(&gpu, &grads, rows, cols, &spec)?; // queued: nothing waited for
/// // ... the step's other kernels queue behind it ...
/// assert_eq!(mask.download(&gpu)?.count_ones(), rows * 64); // the first wait
/// # Ok(()) }
/// ```
pub fn topk_mask_only<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<DeviceBitMask> {
    let keys = keys.into();
    mask_on_device("topk_mask_only", gpu, &keys, rows, cols, spec, false).map(|(mask, _)| mask)
}

/// The selection as a CSR pattern over the `rows x cols` matrix (columns increasing within each row) and the
/// selected keys gathered in its entry order.
pub struct TopkCsr<T> {
    pub pattern: DeviceCsrPattern<u32>,
    pub values: DeviceVec<T>,
    pub cuts: Vec<TopkCut<T>>,
}

/// The selected positions as a sorted [`DeviceCsrPattern<u32>`] with their values gathered from `keys`: the mask
/// of [`topk_mask`], then `mask_to_csr` and `gather` on the device.
///
/// Same shapes and errors as [`topk_threshold`]; synchronizes as often as [`topk_mask`] (the entry count is the
/// cuts' total, known without reading the scan back). Floor: [`topk_mask`]'s, plus the mask read twice, `4 * (nnz + 3 * rows)` bytes of counts, offsets and columns,
/// and `nnz` scattered reads of the keys.
pub fn topk_csr<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<TopkCsr<T>> {
    const OP: &str = "topk_csr";
    let keys = keys.into();
    let (mask, cuts) = mask_on_device(OP, gpu, &keys, rows, cols, spec, true)?;
    // The mask holds exactly the cuts' selected entries: no need to wait for the scan's total.
    let nnz = cuts.iter().map(TopkCut::selected).sum();
    let (pattern, values) = csr_of_mask(gpu, keys, rows, cols, &mask, nnz)?;
    Ok(TopkCsr { pattern, values, cuts })
}

/// The CSR pattern of a selection's mask holding exactly `nnz` entries (sized from that count, nothing read
/// back), and the keys gathered in its entry order.
fn csr_of_mask<T: TopkKey>(gpu: &Gpu, keys: DeviceSlice<'_, T>, rows: usize, cols: usize, mask: &DeviceBitMask, nnz: usize) -> Result<(DeviceCsrPattern<u32>, DeviceVec<T>)> {
    let pattern = crate::mask::mask_to_csr_counted(gpu, mask, nnz)?;
    // SAFETY: gather writes every one of the pattern's nnz values (one per entry) before anyone reads them; an
    // error from it returns before `values` is handed out.
    let mut values = unsafe { gpu.alloc_uninit::<T>(pattern.nnz())? };
    crate::gather_scatter::gather(gpu, &pattern, DeviceMatRef::row_major(keys, rows, cols)?, &mut values)?;
    Ok((pattern, values))
}

/// [`topk_csr`]'s pattern and values without the cuts, and without waiting for the device where the entry count
/// is known on the host and [`topk_mask_only`] does not wait: per row (rows the one-block kernel takes) under
/// [`NanPolicy::AboveInfinity`] with a [`Selection::Count`] or [`Selection::Fraction`], every row takes exactly k
/// entries, so the CSR is sized as `rows * k` and the selection, the mask-to-CSR kernels and the gather are all
/// queued, nothing read back. Elsewhere (a [`Selection::Beyond`] threshold, whose row counts vary; per matrix;
/// longer rows; [`NanPolicy::Error`]) it waits as [`topk_csr`] does.
///
/// Same shapes and errors as [`topk_threshold`]; exactly [`topk_csr`]'s pattern and values. Floor: as
/// [`topk_csr`]'s.
pub fn topk_csr_only<'a, T: TopkKey>(gpu: &Gpu, keys: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, spec: &TopkSpec<T>) -> Result<(DeviceCsrPattern<u32>, DeviceVec<T>)> {
    const OP: &str = "topk_csr_only";
    let keys = keys.into();
    let (segs, seg_len) = segments(OP, rows, cols, keys.len(), spec.scope)?;
    // Entries per segment, when the plan fixes them (a count, or k = 0).
    let per_seg = match plan(OP, spec, seg_len)? {
        Plan::Count(k) => Some(k),
        Plan::Fixed { none: true, .. } => Some(0),
        Plan::Fixed { .. } => None,
    };
    let (mask, cuts) = mask_on_device(OP, gpu, &keys, rows, cols, spec, per_seg.is_none())?;
    // No cuts: the per-row path returned without its read-back, so every segment took its per_seg entries.
    let nnz = match per_seg {
        Some(k) if cuts.is_empty() => segs * k,
        _ => cuts.iter().map(TopkCut::selected).sum(),
    };
    csr_of_mask(gpu, keys, rows, cols, &mask, nnz)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bracket paths' scratch regions (BracketScratch) are disjoint, each inside the allocation, in the order
    /// the path words, counts, tie counts, indices, keys, and every region starts on a 256-byte boundary (the kernels'
    /// 16-byte key loads need that much): for both key widths, both paths and block counts from 1 to past 2^17.
    #[test]
    fn bracket_scratch_regions_are_disjoint_aligned_and_inside_the_allocation() {
        fn check<T: TopkKey>() {
            for blocks in [1usize, 2, 63, 64, 65, 1000, 2752, (1 << 17) + 3] {
                let cap = blocks * CHUNK_CAP;
                for mask in [false, true] {
                    let l = BracketScratch::new::<T>(blocks, mask);
                    let vals_words = (cap * std::mem::size_of::<T>()).div_ceil(4);
                    let mut regions = vec![(0usize, MASK_PATH_WORDS), (l.vals, vals_words)];
                    if mask {
                        regions.extend([(l.counts, blocks), (l.ties, blocks), (l.idx, cap)]);
                    }
                    regions.sort();
                    for w in regions.windows(2) {
                        assert!(w[0].0 + w[0].1 <= w[1].0, "{blocks} blocks, mask {mask}: {w:?} overlap");
                    }
                    let last = regions.last().unwrap();
                    assert!(last.0 + last.1 <= l.total, "{blocks} blocks, mask {mask}: past the allocation");
                    for (start, _) in regions {
                        assert_eq!(start % 64, 0, "{blocks} blocks, mask {mask}: region at word {start}");
                    }
                }
            }
        }
        check::<f32>();
        check::<half::bf16>();
        check::<half::f16>();
    }

    #[test]
    fn keys_order_like_the_values_and_invert() {
        let xs = [f32::NEG_INFINITY, -2.0, -1.0, -1e-40, -0.0, 0.0, 1e-40, 1.0, 2.0, f32::INFINITY];
        for w in xs.windows(2) {
            let (a, b) = (order_key(w[0], FLAG_BY_VALUE), order_key(w[1], FLAG_BY_VALUE));
            assert!(a < b || (w[0] == w[1] && a == b), "{w:?}");
            let (a, b) = (order_key(w[0], FLAG_BY_VALUE | FLAG_SMALLEST), order_key(w[1], FLAG_BY_VALUE | FLAG_SMALLEST));
            assert!(a > b || (w[0] == w[1] && a == b), "{w:?}");
        }
        for flags in 0..4 {
            assert_eq!(order_key(-0.0f32, flags), order_key(0.0f32, flags));
            assert_eq!(order_key(f32::NAN, flags), order_key(-f32::NAN, flags));
            for &x in &xs {
                let back: f32 = element_of_key(order_key(x, flags), flags);
                let want = if flags & FLAG_BY_VALUE == 0 { x.abs() } else { x };
                assert_eq!(back, want, "{x} flags {flags}");
            }
        }
        assert!(order_key(f32::NAN, 0) > order_key(f32::INFINITY, 0));
        assert!(order_key(-f32::NAN, FLAG_BY_VALUE) > order_key(f32::INFINITY, FLAG_BY_VALUE));
        assert!(order_key(bf16::NAN, FLAG_SMALLEST) < order_key(bf16::INFINITY, FLAG_SMALLEST));
        assert!(order_key(f16::from_f32(-3.0), 0) == order_key(f16::from_f32(3.0), 0));
    }
}

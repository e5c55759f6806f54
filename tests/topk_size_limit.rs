//! Top-k at the size limit, 2^31 - 1 elements: flat indices at the top of u32's signed half, a mask of
//! 2^31 bits, ~2^29 candidate slots, row offsets of a 46340 x 46341 matrix. The CPU reference would sort 2^31 keys,
//! so each result is held to the selection's defining properties instead, in linear passes ([`check_selection`]):
//! exactly k selected per segment, every selected key at or beyond every unselected one, the equal keys at the
//! boundary taken in flat-index order, and the cut naming that key and both counts. The test that checks the
//! checker runs everywhere (against `topk_cpu` on small inputs); the large one is ignored by default and run by
//! scripts/gpu-check.sh on a GPU (`--ignored size_limit`), or on the emulator with `SLR_HUGE_ON_EMULATOR=1` (bf16
//! only: 51 minutes on one core of the 2-core development machine, 12.3 GB resident, on 2026-11-29 at 1739a34,
//! passed). `SLR_HUGE_N` sets a smaller n for trying the test itself.
mod common;
use common::*;
use rand::prelude::*;
use sparse_lowrank::half::bf16;
use sparse_lowrank::topk::{bracket_counts, order_key_for_test};
use sparse_lowrank::*;
use std::ops::Range;

/// Runs `f` over `ranges` on every core, results in the ranges' order.
fn par_map<R: Send>(ranges: &[Range<usize>], f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(4, |p| p.get()).min(ranges.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..ranges.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut out);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ranges.len() {
                    break;
                }
                let r = f(ranges[i].clone());
                slots.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_iter().map(|r| r.expect("every range ran")).collect()
}

/// Pieces of at most 2^24 keys of each segment of `seg` consecutive keys: (segment, range).
fn pieces(n: usize, seg: usize) -> Vec<(usize, Range<usize>)> {
    const PIECE: usize = 1 << 24;
    let mut v = Vec::new();
    if seg == 0 {
        return v;
    }
    for s in 0..n / seg {
        let mut a = s * seg;
        while a < (s + 1) * seg {
            let b = (a + PIECE).min((s + 1) * seg);
            v.push((s, a..b));
            a = b;
        }
    }
    v
}

fn bit(mask: &BitMask, i: usize) -> bool {
    (mask.words()[i / 64] >> (i % 64)) & 1 == 1
}

/// Per piece, first pass: selected count, the smallest selected key, the largest unselected key.
#[derive(Clone, Copy, Default)]
struct Bounds {
    selected: usize,
    min_selected: Option<u32>,
    max_unselected: Option<u32>,
}

/// Per piece, second pass at the segment's boundary key b: selected keys beyond b and equal to it, the last
/// selected and the first unselected position holding b.
#[derive(Clone, Copy, Default)]
struct AtBoundary {
    beyond: usize,
    equal: usize,
    last_equal_selected: Option<usize>,
    first_equal_unselected: Option<usize>,
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> std::result::Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Checks that `mask` (and `cuts`, when given) is the selection of the `k` first keys in the reference's order
/// (larger order key first, then lower flat index) in each segment of `seg` keys, with linear passes over the keys:
/// that order is the only one with exactly k selected, no unselected key beyond a selected one, and the
/// selected keys equal to the boundary before the unselected ones. Err says which property failed where.
fn check_selection<T: TopkKey>(keys: &[T], seg: usize, spec: &TopkSpec<T>, k: usize, mask: &BitMask, cuts: Option<&[TopkCut<T>]>) -> std::result::Result<(), String> {
    let segs = keys.len().checked_div(seg).unwrap_or(0);
    ensure(mask.rows() * mask.cols() == keys.len(), || "mask shape".to_string())?;
    let parts = pieces(keys.len(), seg);
    let ranges: Vec<Range<usize>> = parts.iter().map(|p| p.1.clone()).collect();
    let first = par_map(&ranges, |r| {
        let mut b = Bounds::default();
        for i in r {
            let key = order_key_for_test(keys[i], spec);
            if bit(mask, i) {
                b.selected += 1;
                b.min_selected = Some(b.min_selected.map_or(key, |m| m.min(key)));
            } else {
                b.max_unselected = Some(b.max_unselected.map_or(key, |m| m.max(key)));
            }
        }
        b
    });
    let mut per_seg = vec![Bounds::default(); segs];
    for ((s, _), b) in parts.iter().zip(&first) {
        let t = &mut per_seg[*s];
        t.selected += b.selected;
        t.min_selected = match (t.min_selected, b.min_selected) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        t.max_unselected = match (t.max_unselected, b.max_unselected) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
    }
    for (s, b) in per_seg.iter().enumerate() {
        ensure(b.selected == k, || format!("segment {s} selects {} keys, not k = {k}", b.selected))?;
        if let (Some(lo), Some(hi)) = (b.min_selected, b.max_unselected) {
            ensure(lo >= hi, || format!("segment {s}: an unselected key ({hi:#x}) is beyond a selected one ({lo:#x})"))?;
        }
    }
    // The boundary key of each segment (its smallest selected key) and, at it, the counts and the tie order.
    let second = par_map(&ranges, |r| {
        let mut a = AtBoundary::default();
        let Some(b) = per_seg[r.start / seg].min_selected else { return a };
        for i in r {
            let key = order_key_for_test(keys[i], spec);
            let on = bit(mask, i);
            if key == b {
                if on {
                    a.equal += 1;
                    a.last_equal_selected = Some(i);
                } else if a.first_equal_unselected.is_none() {
                    a.first_equal_unselected = Some(i);
                }
            } else if on {
                a.beyond += 1;
            }
        }
        a
    });
    let mut at = vec![AtBoundary::default(); segs];
    for ((s, _), a) in parts.iter().zip(&second) {
        let t = &mut at[*s];
        t.beyond += a.beyond;
        t.equal += a.equal;
        t.last_equal_selected = a.last_equal_selected.or(t.last_equal_selected);
        t.first_equal_unselected = t.first_equal_unselected.or(a.first_equal_unselected);
    }
    for (s, a) in at.iter().enumerate() {
        if let (Some(x), Some(y)) = (a.last_equal_selected, a.first_equal_unselected) {
            ensure(x < y, || format!("segment {s}: a key equal to the boundary at {y} is passed over for one at {x}"))?;
        }
    }
    let Some(cuts) = cuts else { return Ok(()) };
    ensure(cuts.len() == segs, || "one cut per segment".to_string())?;
    for (s, (c, (b, a))) in cuts.iter().zip(per_seg.iter().zip(&at)).enumerate() {
        match b.min_selected {
            None => ensure(c.threshold.is_none() && c.selected() == 0, || format!("segment {s}: k = 0 has no threshold: {c:?}"))?,
            Some(key) => {
                let t = c.threshold.ok_or_else(|| format!("segment {s}: no threshold"))?;
                ensure(order_key_for_test(t, spec) == key, || format!("segment {s}: threshold {c:?}, key {key:#x}"))?;
                ensure((c.count_beyond, c.count_equal_taken) == (a.beyond, a.equal), || format!("segment {s}: counts {c:?}, not {} beyond and {} equal", a.beyond, a.equal))?;
            }
        }
    }
    Ok(())
}

/// Checks a CSR against the mask it was built from: row r's columns are the set bits of row r, in order, and each
/// value is the key at its position, bit for bit.
fn check_csr<T: TopkKey>(keys: &[T], rows: usize, cols: usize, mask: &BitMask, pattern: &CsrPattern<u32>, values: &[T], ctx: &str) {
    assert_eq!((pattern.rows(), pattern.cols()), (rows, cols), "{ctx}: CSR shape");
    assert_eq!(pattern.nnz(), mask.count_ones(), "{ctx}: CSR entries");
    assert_eq!(values.len(), pattern.nnz(), "{ctx}: CSR values");
    let step = 64.max(rows / 256);
    let row_ranges: Vec<Range<usize>> = (0..rows).step_by(step).map(|r| r..(r + step).min(rows)).collect();
    let bad = par_map(&row_ranges, |rr| {
        let mut bad = 0usize;
        for r in rr {
            let mut e = pattern.row_offsets()[r] as usize;
            let end = pattern.row_offsets()[r + 1] as usize;
            // The row's set bits in order, a word at a time (bits outside the row masked off).
            let (lo, hi) = (r * cols, (r + 1) * cols);
            for w in lo / 64..hi.div_ceil(64) {
                let mut word = mask.words()[w];
                if w * 64 < lo {
                    word &= !0u64 << (lo - w * 64);
                }
                if (w + 1) * 64 > hi {
                    word &= !0u64 >> ((w + 1) * 64 - hi);
                }
                while word != 0 {
                    let i = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if e >= end || pattern.col_indices()[e] as usize != i - lo || !same_bits(values[e], keys[i]) {
                        bad += 1;
                    }
                    e += 1;
                }
            }
            bad += (e != end) as usize;
        }
        bad
    });
    assert_eq!(bad.iter().sum::<usize>(), 0, "{ctx}: CSR entries that are not the mask's, in order, with their keys");
}

/// Keys from a hash of their index (so threads fill disjoint parts of one deterministic array): uniform in
/// [-2, 2) rounded to T. bf16 holds ~1.3 k values there, so every key ties with about a million others.
fn hashed_keys<T: TopkKey>(n: usize, seed: u64) -> Vec<T> {
    let mut v = vec![T::default(); n];
    let threads = std::thread::available_parallelism().map_or(4, |p| p.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, part) in v.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (j, x) in part.iter_mut().enumerate() {
                    let mut z = seed.wrapping_add(((c * chunk + j) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    *x = T::from_f32((z >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0);
                }
            });
        }
    });
    v
}

/// The device the large test runs on: the real GPU, or the emulator's round-robin schedule when
/// SLR_HUGE_ON_EMULATOR=1.
fn huge_device(test: &str) -> Option<(String, Gpu)> {
    if std::env::var("SLR_HUGE_ON_EMULATOR").is_ok_and(|v| v == "1") {
        #[cfg(feature = "emulator")]
        return Some(("emulator (round-robin)".to_string(), Gpu::emulated(Schedule::RoundRobin)));
        #[cfg(not(feature = "emulator"))]
        panic!("{test}: SLR_HUGE_ON_EMULATOR=1 needs --features emulator");
    }
    cuda_or_skip(test).map(|g| (g.describe(), g))
}

/// The checker holds `topk_cpu`'s selections to be right and catches wrong ones: a bit moved to an unselected
/// key, a boundary tie taken out of order, a wrong count in the cut; per matrix and per row, all dtypes' orders.
#[test]
fn the_linear_checker_accepts_the_reference_and_refuses_perturbed_selections() {
    let mut rng = rng("topk_size_limit_checker");
    for case in 0..24 {
        let (rows, cols) = (rng.gen_range(1..6), rng.gen_range(1..400));
        let n = rows * cols;
        let per_row = case % 2 == 1;
        let seg = if per_row { cols } else { n };
        // Few distinct values: ties at the boundary in most cases.
        let keys: Vec<bf16> = (0..n).map(|_| bf16::from_f32([-1.0f32, -0.5, 0.5, 1.0, 2.0][rng.gen_range(0..5)])).collect();
        let k = rng.gen_range(0..=seg);
        let mut spec = TopkSpec::count(k).by(if rng.gen() { RankBy::Value } else { RankBy::Magnitude });
        if rng.gen() {
            spec = spec.smallest();
        }
        if per_row {
            spec = spec.per_row();
        }
        let expect = topk_cpu(&keys, rows, cols, &spec).unwrap();
        let ctx = format!("case {case}: {rows}x{cols} {spec:?}");
        check_selection(&keys, seg, &spec, k, &expect.mask, Some(&expect.cuts)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let pattern = expect.mask.to_pattern::<u32>().unwrap();
        let values: Vec<bf16> = pattern.iter().map(|(_, r, c)| keys[r * cols + c]).collect();
        check_csr(&keys, rows, cols, &expect.mask, &pattern, &values, &ctx);
        if k == 0 || k == seg {
            continue;
        }
        // Each perturbation must be refused.
        let refused = |mask: &BitMask, cuts: &[TopkCut<bf16>]| check_selection(&keys, seg, &spec, k, mask, Some(cuts)).is_err();
        // A selected bit moved to an unselected position of the same segment holding a different key, or the
        // same key at a later position than a selected one (the tie order), or an extra bit.
        let s = rng.gen_range(0..n / seg);
        let on: Vec<usize> = (s * seg..(s + 1) * seg).filter(|&i| expect.mask.get(i / cols, i % cols)).collect();
        let off: Vec<usize> = (s * seg..(s + 1) * seg).filter(|&i| !expect.mask.get(i / cols, i % cols)).collect();
        let (a, b) = (on[rng.gen_range(0..on.len())], off[rng.gen_range(0..off.len())]);
        let ka = order_key_for_test(keys[a], &spec);
        let kb = order_key_for_test(keys[b], &spec);
        if ka != kb || b > a {
            let mut moved = expect.mask.clone();
            moved.set(a / cols, a % cols, false);
            moved.set(b / cols, b % cols, true);
            // The same key moved to a later position keeps the counts: only the tie order can refuse it, and it
            // must, unless a's key is not the boundary key (then a and b cannot share a key: b's is at most it).
            assert!(refused(&moved, &expect.cuts), "{ctx}: bit moved {a} -> {b} accepted");
        }
        let mut extra = expect.mask.clone();
        extra.set(b / cols, b % cols, true);
        assert!(refused(&extra, &expect.cuts), "{ctx}: extra bit accepted");
        let mut cuts = expect.cuts.clone();
        cuts[s].count_beyond += 1;
        assert!(refused(&expect.mask, &cuts), "{ctx}: wrong count accepted");
    }
}

/// One selection on the device, its mask (and cuts) checked, then the same spec's cut alone and CSR when asked.
#[allow(clippy::too_many_arguments)]
fn run_case<T: TopkKey>(gpu: &Gpu, d: &DeviceVec<T>, keys: &[T], rows: usize, cols: usize, spec: &TopkSpec<T>, k: usize, with_csr: bool, ctx: &str) {
    let seg = if spec.scope == Scope::PerRow { cols } else { rows * cols };
    let t = std::time::Instant::now();
    let (mask, cuts) = topk_mask(gpu, d, rows, cols, spec).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let mask = mask.download(gpu).unwrap();
    eprintln!("{ctx}: topk_mask {:.1} s (with the download)", t.elapsed().as_secs_f64());
    check_selection(keys, seg, spec, k, &mask, Some(&cuts)).unwrap_or_else(|e| panic!("{ctx}: topk_mask: {e}"));
    let t = std::time::Instant::now();
    let alone = topk_threshold(gpu, d, rows, cols, spec).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    eprintln!("{ctx}: topk_threshold {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(alone, cuts, "{ctx}: topk_threshold's cuts against topk_mask's (checked above)");
    if with_csr {
        let t = std::time::Instant::now();
        let csr = topk_csr(gpu, d, rows, cols, spec).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let (pattern, values) = (csr.pattern.download(gpu).unwrap(), gpu.download(&csr.values).unwrap());
        eprintln!("{ctx}: topk_csr {:.1} s (with the download)", t.elapsed().as_secs_f64());
        assert_eq!(csr.cuts, cuts, "{ctx}: topk_csr's cuts");
        check_csr(keys, rows, cols, &mask, &pattern, &values, &format!("{ctx}: topk_csr"));
    }
}

/// 2^31 - 1 keys (the limit) per matrix, and a 46340 x 46341 matrix per row, on the device, each output
/// held to [`check_selection`]. bf16 (every key ties with ~a million others): the top 5% by magnitude with NaNs
/// and infinities planted at the last indices (NaN above infinity: taken first) with the mask, the cut alone
/// and the CSR; the smallest by value with k chosen so that the quota stops 3 keys short of the boundary key's
/// last copies (the tie order decided at the top of the index range); `Beyond` a value; k = n. Per row, 64 per
/// row with the mask alone (no read-back) and the CSR. On a GPU also f32 (8 GB), the top 1%.
#[test]
#[ignore = "2^31 - 1 keys: run on a GPU by scripts/gpu-check.sh, or with SLR_HUGE_ON_EMULATOR=1 (see the file's doc)"]
fn size_limit_of_two_to_the_31_minus_one_keys_selects_exactly() {
    const TEST: &str = "topk_size_limit";
    let Some((dev, gpu)) = huge_device(TEST) else { return };
    let n: usize = std::env::var("SLR_HUGE_N").ok().and_then(|s| s.parse().ok()).unwrap_or(i32::MAX as usize);
    let seed: u64 = std::env::var("SLR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("{TEST}: {dev}, n = {n}, seed {seed} (replay with SLR_TEST_SEED={seed})");
    let emulated = dev.contains("emulator");
    let t = std::time::Instant::now();
    let mut keys: Vec<bf16> = hashed_keys(n, seed);
    for (j, x) in [f32::NAN, f32::INFINITY, -f32::NAN, f32::NEG_INFINITY, f32::NAN].into_iter().enumerate() {
        keys[n - 1 - 7 * j] = bf16::from_f32(x);
    }
    let d = gpu.upload(&keys).unwrap();
    eprintln!("{TEST}: keys drawn and uploaded in {:.1} s", t.elapsed().as_secs_f64());
    let (tried, fell_back) = bracket_counts();
    // The top 5% by magnitude, NaN above infinity (the planted NaNs first, then the infinities).
    let spec = TopkSpec::count(n / 20).nan(NanPolicy::AboveInfinity);
    run_case(&gpu, &d, &keys, 1, n, &spec, n / 20, true, &format!("{dev}: bf16 top 5%"));
    // The smallest by value, the quota ending 3 copies before the last of the boundary key's: c keys below v and
    // e equal to it, k = c + e - 3.
    let v = bf16::from_f32(-0.75);
    let spec = TopkSpec::count(0).by(RankBy::Value).smallest().nan(NanPolicy::AboveInfinity);
    let kv = order_key_for_test(v, &spec);
    let ranges: Vec<Range<usize>> = pieces(n, n).into_iter().map(|p| p.1).collect();
    let counts = par_map(&ranges, |r| {
        r.fold((0usize, 0usize), |(c, e), i| {
            let key = order_key_for_test(keys[i], &spec);
            (c + (key > kv) as usize, e + (key == kv) as usize)
        })
    });
    let (c, e) = counts.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(e > 3, "{TEST}: the boundary value occurs {e} times");
    let k = c + e - 3;
    run_case(&gpu, &d, &keys, 1, n, &TopkSpec::count(k).by(RankBy::Value).smallest().nan(NanPolicy::AboveInfinity), k, false, &format!("{dev}: bf16 smallest, ties cut 3 short"));
    if !emulated {
        // Beyond a value (the count comes from the keys), and k = n.
        let t = bf16::from_f32(1.5);
        let spec = TopkSpec::beyond(t).nan(NanPolicy::AboveInfinity);
        let kt = order_key_for_test(t, &spec);
        let kb = par_map(&ranges, |r| r.filter(|&i| order_key_for_test(keys[i], &spec) > kt).count()).iter().sum();
        let (mask, cuts) = topk_mask(&gpu, &d, 1, n, &spec).unwrap();
        let mask = mask.download(&gpu).unwrap();
        check_selection(&keys, n, &spec, kb, &mask, None).unwrap_or_else(|e| panic!("{dev}: bf16 beyond 1.5: {e}"));
        assert_eq!((cuts[0].count_beyond, cuts[0].count_equal_taken), (kb, 0), "{dev}: beyond 1.5: {cuts:?}");
        run_case(&gpu, &d, &keys, 1, n, &TopkSpec::count(n).nan(NanPolicy::AboveInfinity), n, false, &format!("{dev}: bf16 k = n"));
    }
    let (tried2, fell_back2) = bracket_counts();
    eprintln!("{TEST}: sample bracket tried {} times, fell back {} times", tried2 - tried, fell_back2 - fell_back);
    drop(d);
    // Per row: 46340 rows of 46341 keys (2^31 - 1 - 41707 keys), 64 per row.
    let (rows, cols) = if n == i32::MAX as usize { (46340, 46341) } else { {
        let s = (n as f64).sqrt() as usize;
        (s - 1, s)
    } };
    keys.truncate(rows * cols);
    let d = gpu.upload(&keys).unwrap();
    let spec = TopkSpec::count(64.min(cols)).per_row().nan(NanPolicy::AboveInfinity);
    let mask = topk_mask_only(&gpu, &d, rows, cols, &spec).unwrap().download(&gpu).unwrap();
    check_selection(&keys, cols, &spec, 64.min(cols), &mask, None).unwrap_or_else(|e| panic!("{dev}: bf16 per row, mask alone: {e}"));
    run_case(&gpu, &d, &keys, rows, cols, &spec, 64.min(cols), true, &format!("{dev}: bf16 per row"));
    drop((d, keys));
    if !emulated {
        let keys: Vec<f32> = hashed_keys(n, seed ^ 1);
        let d = gpu.upload(&keys).unwrap();
        run_case(&gpu, &d, &keys, 1, n, &TopkSpec::count(n / 100), n / 100, false, &format!("{dev}: f32 top 1%"));
    }
}

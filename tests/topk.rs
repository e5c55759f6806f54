//! Top-k selection on the device against `topk_cpu` (sort by key then index): exact agreement on the selected
//! positions, the cuts (k-th key and counts), the CSR pattern and its gathered values, for f32, f16 and bf16, by
//! magnitude and by value, largest and smallest, per matrix and per row; random sizes (several tiles, so the
//! tie quota crosses tile and warp boundaries), heavy ties, all-equal and all-but-a-few-equal inputs, ±0, ±inf,
//! NaN under both policies; k = 0 and k = n; typed errors on bad input.
mod common;
use common::*;
use rand::prelude::*;
use sparse_lowrank::half::{bf16, f16};
use sparse_lowrank::topk::{bracket_counts, bracket_sample_position, BRACKET_SAMPLES};
use sparse_lowrank::*;

#[derive(Debug, Clone, Copy)]
enum Dist {
    Uniform,
    /// Values drawn from a few distinct numbers (both signs): many ties, including across magnitudes.
    FewDistinct,
    AllEqual,
    /// All but a few entries identical.
    AllButFew,
    /// Zeros of both signs, infinities and ordinary values.
    ZerosAndInf,
}
const DISTS: [Dist; 5] = [Dist::Uniform, Dist::FewDistinct, Dist::AllEqual, Dist::AllButFew, Dist::ZerosAndInf];

fn draw<T: Element>(rng: &mut StdRng, n: usize, dist: Dist) -> Vec<T> {
    let few = [-2.0f32, -0.5, 0.5, 1.0, 2.0];
    let same = rng.gen_range(-1.0f32..1.0);
    (0..n)
        .map(|_| {
            T::from_f32(match dist {
                Dist::Uniform => rng.gen_range(-2.0f32..2.0),
                Dist::FewDistinct => few[rng.gen_range(0..few.len())],
                Dist::AllEqual => same,
                Dist::AllButFew => {
                    if rng.gen_bool(0.002) { rng.gen_range(-3.0f32..3.0) } else { same }
                }
                Dist::ZerosAndInf => [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1.0, -1.0][rng.gen_range(0..6)],
            })
        })
        .collect()
}

/// The error of a result whose Ok value need not be printable.
fn err<T>(r: Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn same_cut<T: TopkKey>(a: &TopkCut<T>, b: &TopkCut<T>) -> bool {
    let t = match (a.threshold, b.threshold) {
        (None, None) => true,
        (Some(x), Some(y)) => same_bits(x, y),
        _ => false,
    };
    t && a.count_beyond == b.count_beyond && a.count_equal_taken == b.count_equal_taken
}

/// Runs every device output (the cut, the mask and the CSR, each with and without the cuts) and compares each with
/// the CPU reference (or the same error).
fn check<T: TopkKey>(gpu: &Gpu, dev: &str, keys: &[T], rows: usize, cols: usize, spec: &TopkSpec<T>) {
    let ctx = format!("{dev}: {rows}x{cols} {:?} {spec:?}", T::DTYPE);
    let d = gpu.upload(keys).unwrap();
    let expect = topk_cpu(keys, rows, cols, spec);
    let cuts = topk_threshold(gpu, &d, rows, cols, spec);
    let mask = topk_mask(gpu, &d, rows, cols, spec);
    let mask_only = topk_mask_only(gpu, &d, rows, cols, spec);
    let csr = topk_csr(gpu, &d, rows, cols, spec);
    let csr_only = topk_csr_only(gpu, &d, rows, cols, spec);
    let expect = match expect {
        Ok(e) => e,
        Err(e) => {
            // Each op reports under its own name; the variant and its fields agree.
            let norm = |e: Option<Error>| {
                let s = format!("{:?}", e.expect("the device op must fail like the reference"));
                ["topk_cpu", "topk_threshold", "topk_mask_only", "topk_mask", "topk_csr_only", "topk_csr"].iter().fold(s, |s, op| s.replace(op, "OP"))
            };
            let want = norm(Some(e));
            assert_eq!(norm(cuts.err()), want, "{ctx}");
            assert_eq!(norm(mask.err()), want, "{ctx}");
            assert_eq!(norm(mask_only.err()), want, "{ctx}");
            assert_eq!(norm(csr.err()), want, "{ctx}");
            assert_eq!(norm(csr_only.err()), want, "{ctx}");
            return;
        }
    };
    let cuts = cuts.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(cuts.len(), expect.cuts.len(), "{ctx}");
    for (s, (g, e)) in cuts.iter().zip(&expect.cuts).enumerate() {
        assert!(same_cut(g, e), "{ctx}: cut {s}: device {g:?} cpu {e:?}");
    }
    let (mask, mcuts) = mask.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert!(mcuts.iter().zip(&expect.cuts).all(|(g, e)| same_cut(g, e)), "{ctx}: mask cuts");
    assert_eq!(mask.download(gpu).unwrap(), expect.mask, "{ctx}: mask");
    // The mask alone (no read-back on the per-row path under NanPolicy::AboveInfinity): the same bits.
    assert_eq!(mask_only.unwrap_or_else(|e| panic!("{ctx}: mask only: {e}")).download(gpu).unwrap(), expect.mask, "{ctx}: mask only");
    if let Selection::Count(k) = spec.selection {
        let per = if spec.scope == Scope::PerRow { rows } else { 1 };
        assert_eq!(expect.mask.count_ones(), k * per, "{ctx}: the reference selects exactly k");
    }
    let csr = csr.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let pattern = expect.mask.to_pattern::<u32>().unwrap();
    assert_eq!(csr.pattern.download(gpu).unwrap(), pattern, "{ctx}: pattern");
    let mut values = vec![T::default(); pattern.nnz()];
    gather_cpu(&pattern, MatRef::row_major(keys, rows, cols).unwrap(), &mut values).unwrap();
    let got = gpu.download(&csr.values).unwrap();
    assert!(got.iter().zip(&values).all(|(a, b)| same_bits(*a, *b)), "{ctx}: gathered values");
    // The CSR alone (sized without a read-back on the per-row path under NanPolicy::AboveInfinity with a count).
    let (only_pattern, only_values) = csr_only.unwrap_or_else(|e| panic!("{ctx}: CSR only: {e}"));
    assert_eq!(only_pattern.download(gpu).unwrap(), pattern, "{ctx}: CSR only pattern");
    let got = gpu.download(&only_values).unwrap();
    assert!(got.len() == values.len() && got.iter().zip(&values).all(|(a, b)| same_bits(*a, *b)), "{ctx}: CSR only values");
}

fn random_spec<T: TopkKey>(rng: &mut StdRng, n_per_seg: usize, per_row: bool) -> TopkSpec<T> {
    let k = match rng.gen_range(0..6) {
        0 => 0,
        1 => n_per_seg,
        2 => 1.min(n_per_seg),
        _ => rng.gen_range(0..=n_per_seg),
    };
    let mut spec = TopkSpec::count(k).by(if rng.gen() { RankBy::Magnitude } else { RankBy::Value });
    if rng.gen() {
        spec = spec.smallest();
    }
    if per_row {
        spec = spec.per_row();
    }
    // Half the cases rank NaN above infinity (the inputs here have none, so the selection is the same): there the
    // mask alone takes the per-row path's no-wait return.
    if rng.gen() {
        spec = spec.nan(NanPolicy::AboveInfinity);
    }
    spec
}

fn random_cases<T: TopkKey>(test: &str, cases: usize) {
    let mut rng = rng(test);
    for (dev, gpu) in devices(test) {
        for case in 0..cases {
            let per_row = case % 3 == 2;
            // Every fourth case spans several 4096-element tiles (per matrix) or rows longer than a tile.
            let (rows, cols) = if case % 4 == 0 { (rng.gen_range(1..4), rng.gen_range(4000..9000)) } else { (rng.gen_range(1..40), rng.gen_range(1..300)) };
            let dist = DISTS[case % DISTS.len()];
            let keys: Vec<T> = draw(&mut rng, rows * cols, dist);
            let spec = random_spec::<T>(&mut rng, if per_row { cols } else { rows * cols }, per_row);
            check(&gpu, &format!("{dev} {dist:?}"), &keys, rows, cols, &spec);
            // These sizes take the one-block path (a small matrix is one row); the radix passes, which larger
            // matrices, longer rows and the bracket's fallback take, are held to the same reference here.
            sparse_lowrank::topk::force_radix_passes_on_this_thread(true);
            check(&gpu, &format!("{dev} {dist:?} radix passes"), &keys, rows, cols, &spec);
            sparse_lowrank::topk::force_radix_passes_on_this_thread(false);
        }
    }
}

#[test]
fn topk_f32_matches_cpu_exactly_on_random_sizes_modes_and_tie_heavy_inputs() {
    random_cases::<f32>("topk_f32", 15);
}

#[test]
fn topk_f16_matches_cpu_exactly_on_random_sizes_modes_and_tie_heavy_inputs() {
    random_cases::<f16>("topk_f16", 15);
}

#[test]
fn topk_bf16_matches_cpu_exactly_on_random_sizes_modes_and_tie_heavy_inputs() {
    random_cases::<bf16>("topk_bf16", 15);
}

#[test]
fn all_equal_keys_select_the_lowest_flat_indices() {
    let mut rng = rng("topk_all_equal");
    for (dev, gpu) in devices("topk_all_equal") {
        let (rows, cols) = (3, 5000);
        // bf16 has few values: all equal is the extreme of what a bf16 weight does.
        let keys = vec![bf16::from_f32(0.25); rows * cols];
        let k = rng.gen_range(1..rows * cols);
        let d = gpu.upload(&keys).unwrap();
        let (mask, cuts) = topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
        let mask = mask.download(&gpu).unwrap();
        for i in 0..rows * cols {
            assert_eq!(mask.get(i / cols, i % cols), i < k, "{dev}: k {k}, bit {i}");
        }
        assert_eq!(cuts, vec![TopkCut { threshold: Some(bf16::from_f32(0.25)), count_beyond: 0, count_equal_taken: k }], "{dev}");
        // The same by value, smallest, per row: the first k of each row.
        let kr = rng.gen_range(0..=cols);
        let (mask, _) = topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(kr).by(RankBy::Value).smallest().per_row()).unwrap();
        let mask = mask.download(&gpu).unwrap();
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(mask.get(r, c), c < kr, "{dev}: per row k {kr}, ({r}, {c})");
            }
        }
    }
}

#[test]
fn fraction_and_beyond_modes_match_cpu() {
    let mut rng = rng("topk_fraction_beyond");
    for (dev, gpu) in devices("topk_fraction_beyond") {
        for case in 0..6 {
            let (rows, cols) = (rng.gen_range(1..20), rng.gen_range(1..700));
            let keys: Vec<f32> = draw(&mut rng, rows * cols, DISTS[case % DISTS.len()]);
            let q = [0.0, 1.0, 0.05, rng.gen_range(0.0..1.0), 0.5, 0.999][case];
            let mut spec = TopkSpec::fraction(q);
            if case % 2 == 1 {
                spec = spec.per_row().by(RankBy::Value);
            }
            check(&gpu, &dev, &keys, rows, cols, &spec);
            let t = [0.5f32, -0.0, 1.0, 2.5, -1.0, f32::INFINITY][case];
            let mut spec = TopkSpec::beyond(t);
            if case % 3 == 0 {
                spec = spec.smallest().by(RankBy::Value);
            }
            check(&gpu, &dev, &keys, rows, cols, &spec);
        }
        // round(q * n): 0.05 of 4096 is 204.8 -> 205.
        let keys: Vec<f32> = draw(&mut rng, 4096, Dist::Uniform);
        let d = gpu.upload(&keys).unwrap();
        let cuts = topk_threshold(&gpu, &d, 64, 64, &TopkSpec::fraction(0.05)).unwrap();
        assert_eq!(cuts[0].selected(), 205, "{dev}");
    }
}

#[test]
fn k_zero_k_n_and_empty_matrices_are_valid() {
    let mut rng = rng("topk_edges");
    for (dev, gpu) in devices("topk_edges") {
        let keys: Vec<f16> = draw(&mut rng, 6 * 70, Dist::FewDistinct);
        for spec in [TopkSpec::count(0), TopkSpec::count(6 * 70), TopkSpec::count(0).per_row(), TopkSpec::count(70).per_row().smallest()] {
            check(&gpu, &dev, &keys, 6, 70, &spec);
        }
        let d = gpu.upload(&keys).unwrap();
        let cuts = topk_threshold(&gpu, &d, 6, 70, &TopkSpec::count(0)).unwrap();
        assert_eq!(cuts, vec![TopkCut { threshold: None, count_beyond: 0, count_equal_taken: 0 }], "{dev}");
        for (rows, cols) in [(0, 0), (0, 9), (4, 0)] {
            check::<f32>(&gpu, &dev, &[], rows, cols, &TopkSpec::count(0));
            check::<f32>(&gpu, &dev, &[], rows, cols, &TopkSpec::count(0).per_row());
            check::<f32>(&gpu, &dev, &[], rows, cols, &TopkSpec::fraction(0.3));
        }
    }
}

/// k = n over a whole matrix takes every entry: the mask is all ones and the cut is the smallest key, every key
/// above it beyond it and every key equal to it taken (one read of the keys). Exact against the reference for
/// every dtype and order, with ties at the minimum, over a grid of many blocks (more than 2048 x 2048 keys: the
/// blocks stride), and NaN reported under the error policy.
#[test]
fn k_equal_to_n_takes_everything_and_cuts_at_the_smallest_key() {
    let mut rng = rng("topk_k_eq_n");
    for (dev, gpu) in devices("topk_k_eq_n") {
        let (rows, cols) = (rng.gen_range(1..40), rng.gen_range(1..300));
        let n = rows * cols;
        let keys: Vec<f32> = draw(&mut rng, n, Dist::FewDistinct);
        check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(n));
        check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(n).by(RankBy::Value).smallest());
        let kb: Vec<bf16> = draw(&mut rng, n, Dist::Uniform);
        check(&gpu, &dev, &kb, rows, cols, &TopkSpec::fraction(1.0).by(RankBy::Value));
        let kh: Vec<f16> = draw(&mut rng, n, Dist::AllButFew);
        check(&gpu, &dev, &kh, rows, cols, &TopkSpec::count(n).smallest());
        let mut with_nan = keys.clone();
        with_nan[rng.gen_range(0..n)] = f32::NAN;
        check(&gpu, &dev, &with_nan, rows, cols, &TopkSpec::count(n).nan(NanPolicy::AboveInfinity));
        check(&gpu, &dev, &with_nan, rows, cols, &TopkSpec::count(n));
    }
    // More keys than 2048 blocks of 2048 cover in one sweep: the blocks stride (one device, the emulator's
    // round-robin schedule, to keep the test short).
    let (rows, cols) = (2100, 2048);
    let keys: Vec<bf16> = draw(&mut rng, rows * cols, Dist::FewDistinct);
    let gpu = &devices("topk_k_eq_n_large")[0].1;
    check(gpu, "large", &keys, rows, cols, &TopkSpec::count(rows * cols));
}

#[test]
fn bad_input_gets_typed_errors() {
    let gpu = &devices("topk_errors")[0].1;
    let keys = gpu.upload(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let e = topk_threshold(gpu, &keys, 2, 3, &TopkSpec::count(7)).unwrap_err();
    assert_eq!(e, Error::CountOutOfRange { op: "topk_threshold", k: 7, n: 6 });
    let e = err(topk_mask(gpu, &keys, 2, 3, &TopkSpec::count(4).per_row()));
    assert_eq!(e, Error::CountOutOfRange { op: "topk_mask", k: 4, n: 3 });
    let e = err(topk_csr(gpu, &keys, 2, 4, &TopkSpec::count(1)));
    assert_eq!(e, Error::LengthMismatch { op: "topk_csr", what: "keys", expected: 8, got: 6 });
    let empty = gpu.upload::<f32>(&[]).unwrap();
    let e = topk_threshold(gpu, &empty, 0, 5, &TopkSpec::count(1)).unwrap_err();
    assert_eq!(e, Error::CountOutOfRange { op: "topk_threshold", k: 1, n: 0 });
    for q in [-0.1, 1.5, f64::NAN] {
        let e = topk_threshold(gpu, &keys, 2, 3, &TopkSpec::fraction(q)).unwrap_err();
        assert!(matches!(e, Error::FractionOutOfRange { op: "topk_threshold", .. }), "{e:?}");
    }
    let e = topk_threshold(gpu, &keys, 2, 3, &TopkSpec::beyond(f32::NAN)).unwrap_err();
    assert_eq!(e, Error::NanKeys { op: "topk_threshold", what: "threshold", count: 1 });
    let e = topk_cpu(&[1.0f32; 6], 2, 3, &TopkSpec::count(7)).unwrap_err();
    assert_eq!(e, Error::CountOutOfRange { op: "topk_cpu", k: 7, n: 6 });
    let e = topk_cpu(&[1.0f32; 6], usize::MAX, 3, &TopkSpec::count(1)).unwrap_err();
    assert!(matches!(e, Error::InvalidCsr(CsrError::TooLargeForIndex { .. })), "{e:?}");
    // An empty matrix with more rows than the index holds: refused, not a cut allocated per row.
    let e = topk_cpu::<f32>(&[], 1 << 61, 0, &TopkSpec::count(0).per_row()).unwrap_err();
    assert!(matches!(e, Error::InvalidCsr(CsrError::TooLargeForIndex { what: "rows", .. })), "{e:?}");
    let e = topk_threshold(gpu, &empty, (1 << 61) + 1, 0, &TopkSpec::count(0).per_row()).unwrap_err();
    assert!(matches!(e, Error::InvalidCsr(CsrError::TooLargeForIndex { what: "rows", .. })), "{e:?}");
    let e = err(topk_mask(gpu, &empty, 0, 1 << 40, &TopkSpec::fraction(0.5).per_row()));
    assert!(matches!(e, Error::InvalidCsr(CsrError::TooLargeForIndex { what: "cols", .. })), "{e:?}");
}

#[test]
fn nan_keys_are_an_error_naming_their_count_or_rank_above_infinity() {
    let mut rng = rng("topk_nan");
    for (dev, gpu) in devices("topk_nan") {
        let (rows, cols) = (5, 900);
        let mut keys: Vec<bf16> = draw(&mut rng, rows * cols, Dist::ZerosAndInf);
        let nans = rng.gen_range(1..20);
        for _ in 0..nans {
            let i = rng.gen_range(0..keys.len());
            keys[i] = if rng.gen() { bf16::NAN } else { -bf16::NAN };
        }
        let nans = keys.iter().filter(|x| x.is_nan()).count();
        let d = gpu.upload(&keys).unwrap();
        let e = err(topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(10)));
        assert_eq!(e, Error::NanKeys { op: "topk_mask", what: "keys", count: nans }, "{dev}");
        for spec in [
            TopkSpec::count(nans + 3).nan(NanPolicy::AboveInfinity),
            TopkSpec::count(nans).nan(NanPolicy::AboveInfinity).by(RankBy::Value),
            TopkSpec::count(rows * cols - 2).nan(NanPolicy::AboveInfinity).smallest(),
            TopkSpec::count(7).nan(NanPolicy::AboveInfinity).smallest().by(RankBy::Value).per_row(),
            // Per row with NaN refused: every output, the mask and CSR alone included, reads the count back and
            // fails with it (the no-wait return is only for NaN ranked above infinity).
            TopkSpec::count(7).per_row(),
        ] {
            check(&gpu, &dev, &keys, rows, cols, &spec);
        }
        // NaN first: the largest `nans` by magnitude are exactly the NaNs.
        let (mask, cuts) = topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(nans).nan(NanPolicy::AboveInfinity)).unwrap();
        let mask = mask.download(&gpu).unwrap();
        assert!((0..rows * cols).all(|i| mask.get(i / cols, i % cols) == keys[i].is_nan()), "{dev}");
        assert!(cuts[0].threshold.unwrap().is_nan(), "{dev}");
    }
}

/// The reference against a second, independent definition: entry i is selected iff fewer than k entries of its
/// segment rank before it, where j ranks before i when its value is further in the selection's direction
/// (compared as f64 magnitudes or values, NaN above everything) or equal with a lower index. O(n^2), small n.
#[test]
fn cpu_reference_agrees_with_the_pairwise_rank_definition() {
    let mut rng = rng("topk_pairwise");
    for case in 0..300 {
        let (rows, cols) = (rng.gen_range(1..6), rng.gen_range(1..30));
        let mut keys: Vec<f16> = draw(&mut rng, rows * cols, DISTS[case % DISTS.len()]);
        if case % 7 == 0 {
            keys[rng.gen_range(0..rows * cols)] = f16::NAN;
        }
        let per_row = case % 2 == 1;
        let n_seg = if per_row { cols } else { rows * cols };
        let spec = random_spec::<f16>(&mut rng, n_seg, per_row).nan(NanPolicy::AboveInfinity);
        let Selection::Count(k) = spec.selection else { unreachable!() };
        let got = topk_cpu(&keys, rows, cols, &spec).unwrap().mask;
        // NaN above +inf (f64::MAX above the infinity stand-ins ±MAX/2); -0.0 == 0.0 as f64 comparison has it.
        let rank_value = |x: f16| -> f64 {
            if x.is_nan() {
                return f64::MAX;
            }
            let v = if spec.by == RankBy::Magnitude { x.to_f64().abs() } else { x.to_f64() };
            if v.is_infinite() { v.signum() * f64::MAX / 2.0 } else { v }
        };
        for s in 0..rows * cols / n_seg {
            for i in 0..n_seg {
                let vi = rank_value(keys[s * n_seg + i]);
                let before = (0..n_seg)
                    .filter(|&j| {
                        let vj = rank_value(keys[s * n_seg + j]);
                        let further = match spec.direction {
                            Direction::Largest => vj > vi,
                            Direction::Smallest => vj < vi,
                        };
                        further || (vj == vi && j < i)
                    })
                    .count();
                let flat = s * n_seg + i;
                assert_eq!(got.get(flat / cols, flat % cols), before < k, "case {case}: {spec:?} entry {flat} of {keys:?}");
            }
        }
    }
}

/// Twenty-odd tiles of heavy ties: the quota of equal keys is spread over many tiles, so each tile's rank base
/// comes from the scan of the tile counts, per matrix and per row (rows longer than a tile).
#[test]
fn many_tiles_of_ties_match_cpu_per_matrix_and_per_row() {
    let mut rng = rng("topk_many_tiles");
    for (dev, gpu) in devices("topk_many_tiles") {
        let (rows, cols) = (12, rng.gen_range(8000..9000));
        let keys: Vec<bf16> = draw(&mut rng, rows * cols, Dist::FewDistinct);
        let n = rows * cols;
        check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(rng.gen_range(n / 5..n / 2)));
        check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(rng.gen_range(1..cols)).by(RankBy::Value).smallest().per_row());
    }
}

/// Per-row selection has two device paths: rows whose keys fit one block's shared memory (the device's opt-in limit
/// less 13 KiB: 54784 f32 / 109568 f16/bf16 keys on sm_90 and on the emulator) are selected by one block each (the
/// row in shared memory at its width), longer rows by the radix passes over global memory. Also on the emulator
/// standing for sm_80 and sm_86/89, whose limits are lower. Both edges for both
/// widths, and a row just past the old 44 KiB limit (now a block with more than 48 KiB of shared memory, opted in),
/// with ties and random magnitudes, every output, count and beyond modes, both directions.
#[test]
fn per_row_selection_matches_cpu_at_the_one_block_limit_and_past_it() {
    fn edges<T: TopkKey>(gpu: &Gpu, dev: &str, rng: &mut StdRng) {
        let limit = sparse_lowrank::topk::topk_row_max_len::<T>(gpu);
        assert!(limit * std::mem::size_of::<T>() >= 44 * 1024, "{dev}: one-block rows of {limit} keys");
        let old_limit = 44 * 1024 / std::mem::size_of::<T>();
        for cols in [old_limit + 1 + rng.gen_range(0..500), limit, limit + 1 + rng.gen_range(0..500)] {
            let rows = 2;
            for dist in [Dist::FewDistinct, Dist::Uniform] {
                let keys: Vec<T> = draw(rng, rows * cols, dist);
                // The path: the block per row is one launch for the cuts; the radix passes take several.
                let d = gpu.upload(&keys).unwrap();
                let before = gpu.host_calls();
                topk_threshold(gpu, &d, rows, cols, &TopkSpec::count(cols / 2).per_row()).unwrap();
                let launches = (gpu.host_calls() - before).launches;
                assert_eq!(launches == 1, cols <= limit && !forced_radix(), "{dev}: rows of {cols} ({limit} fit): {launches} launches");
                check(gpu, dev, &keys, rows, cols, &TopkSpec::count(rng.gen_range(1..cols)).per_row());
                check(gpu, dev, &keys, rows, cols, &TopkSpec::count(rng.gen_range(1..cols)).by(RankBy::Value).smallest().per_row());
                check(gpu, dev, &keys, rows, cols, &TopkSpec::beyond(keys[rng.gen_range(0..keys.len())]).per_row());
            }
        }
    }
    let mut rng = rng("topk_row_paths");
    // The smaller targets' limits: 39 k f32 keys on sm_80, 22 k on sm_86/89 (the host's choice, and each launch held
    // to the target's shared memory by the emulator).
    for (dev, gpu) in devices("topk_row_paths").into_iter().chain(smaller_targets("topk_row_paths")) {
        edges::<f32>(&gpu, &dev, &mut rng);
        edges::<bf16>(&gpu, &dev, &mut rng);
        edges::<f16>(&gpu, &dev, &mut rng);
    }
}

/// The block per row reads a row with 16-byte loads when it starts 16-byte aligned and key by key otherwise: rows
/// whose byte length is not a multiple of 16 alternate, a view that starts one element into its buffer misaligns
/// every row, and the keys past a row's last whole vector take the scalar tail. Each against the CPU reference.
#[test]
fn per_row_selection_reads_aligned_misaligned_and_ragged_rows() {
    fn rows_of<T: TopkKey>(gpu: &Gpu, dev: &str, rng: &mut StdRng) {
        for cols in [8usize, 9, 13, 64, 100, 257, 1000 + rng.gen_range(0..300)] {
            let rows = 3;
            let keys: Vec<T> = draw(rng, rows * cols + 1, Dist::Uniform);
            let d = gpu.upload(&keys).unwrap();
            let k = rng.gen_range(1..=cols);
            for spec in [TopkSpec::count(k).per_row(), TopkSpec::count(k).by(RankBy::Value).smallest().per_row()] {
                for offset in [0usize, 1] {
                    let view = d.slice(offset..offset + rows * cols);
                    let host = &keys[offset..offset + rows * cols];
                    let expect = topk_cpu(host, rows, cols, &spec).unwrap();
                    let ctx = format!("{dev}: {rows}x{cols} {:?} offset {offset} {spec:?}", T::DTYPE);
                    let (mask, cuts) = topk_mask(gpu, view, rows, cols, &spec).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(mask.download(gpu).unwrap(), expect.mask, "{ctx}: mask");
                    assert!(cuts.iter().zip(&expect.cuts).all(|(g, e)| same_cut(g, e)), "{ctx}: cuts");
                }
            }
        }
    }
    let mut rng = rng("topk_row_alignment");
    for (dev, gpu) in devices("topk_row_alignment") {
        rows_of::<f32>(&gpu, &dev, &mut rng);
        rows_of::<bf16>(&gpu, &dev, &mut rng);
        rows_of::<f16>(&gpu, &dev, &mut rng);
    }
}

/// `SLR_TOPK_PATH=radix` sends every selection down the radix passes (src/topk.rs); the path counts are then 0.
fn forced_radix() -> bool {
    std::env::var_os("SLR_TOPK_PATH").is_some_and(|v| v == "radix")
}

/// Per-matrix counts over at least 2^18 keys try a sample bracket (one pass over the keys, then the exact radix
/// select over the few percent of keys inside the bracket); the result must be the reference's exactly, at
/// small and large k, both orders and directions, every dtype, and with NaNs ranked above infinity.
#[test]
fn large_matrices_take_the_sample_bracket_and_match_cpu_exactly() {
    let mut rng = rng("topk_bracket");
    for (dev, gpu) in devices("topk_bracket") {
        let (rows, cols) = (rng.gen_range(520..640), rng.gen_range(510..560));
        let n = rows * cols;
        let before = bracket_counts();
        // Selections the host expects the bracket to take (bracket_expected; nearly always all 9 that select).
        let mut expected = 0;
        let keys: Vec<f32> = draw(&mut rng, n, Dist::Uniform);
        for k in [1, n / 1000, n / 20, n / 4, rng.gen_range(1..n)] {
            let spec = TopkSpec::count(k);
            check(&gpu, &dev, &keys, rows, cols, &spec);
            expected += bracket_expected(&keys, rows, cols, &spec);
        }
        let spec = TopkSpec::fraction(0.05).by(RankBy::Value).smallest();
        check(&gpu, &dev, &keys, rows, cols, &spec);
        expected += bracket_expected(&keys, rows, cols, &spec);
        let keys16: Vec<bf16> = draw(&mut rng, n, Dist::Uniform);
        let spec16 = TopkSpec::count(n / 20).by(RankBy::Value);
        check(&gpu, &dev, &keys16, rows, cols, &spec16);
        expected += bracket_expected(&keys16, rows, cols, &spec16);
        let keysh: Vec<f16> = draw(&mut rng, n, Dist::Uniform);
        let spech = TopkSpec::count(n / 100).smallest();
        check(&gpu, &dev, &keysh, rows, cols, &spech);
        expected += bracket_expected(&keysh, rows, cols, &spech);
        let mut with_nan = keys.clone();
        for _ in 0..50 {
            with_nan[rng.gen_range(0..n)] = f32::NAN;
        }
        let spec = TopkSpec::count(n / 20).nan(NanPolicy::AboveInfinity);
        check(&gpu, &dev, &with_nan, rows, cols, &spec);
        expected += bracket_expected(&with_nan, rows, cols, &spec);
        check(&gpu, &dev, &with_nan, rows, cols, &TopkSpec::count(n / 20));  // the NaN error, counted by the bracket
        let (taken, fell_back) = bracket_counts();
        if forced_radix() {
            continue;
        }
        // check() runs threshold, mask and CSR, the last two also without the cuts: 5 bracket attempts per
        // selection (the NaN error's may add some).
        assert!(expected >= 8, "{dev}: the host expects the bracket for only {expected} of 9 selections (~1e-5 each)");
        assert!(taken - before.0 >= 5 * expected, "{dev}: bracket taken {} times for {expected} selections, fell back {}", taken - before.0, fell_back - before.1);
    }
}

/// The sample bracket's two keys, from the ranking kernel (the default: every sample composite counted against all
/// 4096) and from the digit-level one (`SLR_TOPK_PATH=sample_levels`), each exactly the reference's (the sample's
/// order keys sorted, at the ranks the host asks for), with the rest of the path words zeroed: every dtype, by
/// magnitude and by value, both directions, heavy ties (a tie rule that let equal keys share a rank would leave a
/// rank unheld), NaNs, k at both ends (no upper rank at k = 1, no lower rank at k = n) and between, n from the
/// sample's size up. The bracket only sets the speed (a wrong one falls back to the radix passes), so this is the
/// test that sees a wrong sample.
#[test]
fn the_sample_kernels_find_the_sample_keys_of_the_bracket_ranks() {
    fn case<T: TopkKey>(gpu: &Gpu, dev: &str, rng: &mut StdRng) {
        let n = match rng.gen_range(0..3) {
            0 => BRACKET_SAMPLES,
            1 => rng.gen_range(BRACKET_SAMPLES + 1..3 * BRACKET_SAMPLES),
            _ => rng.gen_range(200_000..300_000),
        };
        let dist = DISTS[rng.gen_range(0..DISTS.len())];
        let mut keys: Vec<T> = draw(rng, n, dist);
        if rng.gen_bool(0.3) {
            for _ in 0..rng.gen_range(1..40) {
                keys[bracket_sample_position(rng.gen_range(0..BRACKET_SAMPLES), n)] = T::from_f32(f32::NAN);
            }
        }
        let d = gpu.upload(&keys).unwrap();
        let mut spec = TopkSpec::count(1).by(if rng.gen() { RankBy::Magnitude } else { RankBy::Value });
        if rng.gen() {
            spec = spec.smallest();
        }
        for k in [1, n, rng.gen_range(1..n / 50 + 2), rng.gen_range(1..=n)] {
            let expect = sparse_lowrank::topk::sample_bracket_keys_cpu(&keys, k, &spec);
            for levels in [false, true] {
                let (lo, hi, zeroed) = sparse_lowrank::topk::sample_bracket_keys(gpu, d.slice(0..n), k, &spec, levels).unwrap();
                let ctx = format!("{dev}: {:?} n {n} {dist:?} k {k} {spec:?} levels {levels}", T::DTYPE);
                assert_eq!((lo, hi), expect, "{ctx}: (lo, hi)");
                assert!(zeroed, "{ctx}: path words not zeroed");
            }
        }
    }
    let mut rng = rng("topk_sample_keys");
    for (dev, gpu) in devices("topk_sample_keys") {
        for _ in 0..3 {
            case::<f32>(&gpu, &dev, &mut rng);
            case::<bf16>(&gpu, &dev, &mut rng);
            case::<f16>(&gpu, &dev, &mut rng);
        }
    }
}

/// The streaming passes read 16-byte vectors: the cut's from a view's first 16-byte boundary (the keys before it and
/// after the last whole vector one by one), the mask's from a 16-byte aligned start (a misaligned view takes the
/// round-based pass; the matrix's last, partial vector key by key). Views starting 0 to 8 elements into their
/// buffer, ragged lengths (the last round or chunk partial), every dtype and order, NaNs at the first and last
/// positions and inside (from the view at offset 3 on; ranked above infinity, or the error naming their count).
/// Each cut and mask exact against the reference and taken by the bracket, with the default passes (the cut's
/// streaming, the mask's round-based), with both round-based (`SLR_TOPK_PATH=rounds`) and with the mask's streaming
/// pass (`SLR_TOPK_PATH=stream_mask`, the benchmarks' comparison).
#[test]
fn the_bracket_passes_read_misaligned_and_ragged_matrices_and_agree_with_the_round_passes() {
    fn cuts_of<T: TopkKey>(gpu: &Gpu, dev: &str, rng: &mut StdRng) {
        let (rows, cols) = (rng.gen_range(513..530), 512 + rng.gen_range(1..16));
        let n = rows * cols;
        let mut keys: Vec<T> = draw(rng, n + 8, Dist::Uniform);
        for offset in [0usize, 1, 3, 7, 8] {
            let with_nan = offset == 3;
            if with_nan {
                for i in [offset, offset + n - 1, offset + rng.gen_range(0..n)] {
                    keys[i] = T::from_f32(f32::NAN);
                }
            }
            let d = gpu.upload(&keys).unwrap();
            let host = &keys[offset..offset + n];
            let mut spec = TopkSpec::count(rng.gen_range(1..n / 4)).by(if rng.gen() { RankBy::Magnitude } else { RankBy::Value });
            if rng.gen() {
                spec = spec.smallest();
            }
            if with_nan && rng.gen() {
                spec = spec.nan(NanPolicy::AboveInfinity);
            }
            let ctx = format!("{dev}: {rows}x{cols} {:?} offset {offset} {spec:?}", T::DTYPE);
            let expect = topk_cpu(host, rows, cols, &spec);
            for (rounds, stream_mask) in [(false, false), (true, false), (false, true)] {
                let before = bracket_counts();
                sparse_lowrank::topk::use_round_count_on_this_thread(rounds);
                sparse_lowrank::topk::use_streaming_mask_pass_on_this_thread(stream_mask);
                let got = topk_threshold(gpu, d.slice(offset..offset + n), rows, cols, &spec);
                let got_mask = topk_mask(gpu, d.slice(offset..offset + n), rows, cols, &spec);
                sparse_lowrank::topk::use_round_count_on_this_thread(false);
                sparse_lowrank::topk::use_streaming_mask_pass_on_this_thread(false);
                let ctx = format!("{ctx} (round passes: {rounds}, streaming mask pass: {stream_mask})");
                match &expect {
                    Ok(e) => {
                        let got = got.unwrap_or_else(|err| panic!("{ctx}: {err}"));
                        assert!(same_cut(&got[0], &e.cuts[0]), "{ctx}: device {:?} cpu {:?}", got[0], e.cuts[0]);
                        let (mask, cuts) = got_mask.unwrap_or_else(|err| panic!("{ctx}: {err}"));
                        assert!(same_cut(&cuts[0], &e.cuts[0]), "{ctx}: mask cut {:?} cpu {:?}", cuts[0], e.cuts[0]);
                        assert!(mask.download(gpu).unwrap() == e.mask, "{ctx}: mask");
                    }
                    Err(e) => {
                        let norm = |s: String| ["topk_cpu", "topk_threshold", "topk_mask"].iter().fold(s, |s, op| s.replace(op, "OP"));
                        assert_eq!(norm(format!("{:?}", err(got))), norm(format!("{e:?}")), "{ctx}");
                        assert_eq!(norm(format!("{:?}", err(got_mask))), norm(format!("{e:?}")), "{ctx}: mask");
                    }
                }
                if !forced_radix() {
                    // 0 for a NaN error (it returns before the path is counted), and where the host's sample says
                    // the bracket misses the k-th key (bracket_expected).
                    assert_eq!(bracket_counts().0 - before.0, 2 * bracket_expected(host, rows, cols, &spec), "{ctx}: bracket taken");
                }
            }
        }
    }
    let mut rng = rng("topk_cut_alignment");
    for (dev, gpu) in devices("topk_cut_alignment") {
        cuts_of::<f32>(&gpu, &dev, &mut rng);
        cuts_of::<bf16>(&gpu, &dev, &mut rng);
        cuts_of::<f16>(&gpu, &dev, &mut rng);
    }
}

/// The cut's streaming pass tests each key against the bracket without the order-key map (cuda/topk.cu WordTests:
/// two 16-bit keys per subtraction, guard bits in place of the signs, thresholds clamped at the NaNs' keys): its
/// counts of keys above hi and of NaNs, its level-1 histogram and its candidate list must be the reference's
/// exactly, for every bit pattern of f16 and bf16 (all 65536 of each, shuffled, in an aligned view and in one
/// starting a key past 16 bytes, so that the first and last keys take the one-key path) and for f32 edge patterns
/// (zeros of both signs, the smallest and largest subnormals and normals, infinities, NaNs of every kind, random
/// bits), in all four orders, with brackets at and around the keys where the tests change form: zero, 0x7fff and
/// 0x8000 (value order: the key of -0 would be 0x7fff), infinity and the NaN keys, the two ends, random ones.
#[test]
fn the_cut_pass_tests_every_bit_pattern_against_brackets_exactly() {
    fn brackets<T: TopkKey>(rng: &mut StdRng, keys: &[T], spec: &TopkSpec<T>) -> Vec<(u32, u32)> {
        let (all, top) = (T::ALL, T::SIGN);  // the largest key, and the sign bit
        let specials = [0.0f32, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-40, -1e-40];
        let mut at: Vec<u32> = specials.iter().map(|&x| sparse_lowrank::topk::order_key_for_test(T::from_f32(x), spec)).collect();
        at.extend([0, 1, top - 2, top - 1, top, top + 1, all - 1, all]);
        at.extend((0..4).map(|_| sparse_lowrank::topk::order_key_for_test(keys[rng.gen_range(0..keys.len())], spec)));
        let mut out = vec![(0, all), (0, 0), (all, all), (top - 1, top), (top, top)];
        for _ in 0..10 {
            let (a, b) = (at[rng.gen_range(0..at.len())], at[rng.gen_range(0..at.len())]);
            let (a, b) = (a.min(b), a.max(b));
            out.push((a, b));
            out.push((a.saturating_sub(rng.gen_range(0..3)), b.saturating_add(rng.gen_range(0..3)).min(all)));
        }
        let (a, b) = (rng.gen_range(0..=all), rng.gen_range(0..=all));
        out.push((a.min(b), a.max(b)));
        out
    }
    fn passes<T: TopkKey>(gpu: &Gpu, dev: &str, rng: &mut StdRng, keys: &[T]) {
        let d = gpu.upload(keys).unwrap();
        for flags in 0..4 {
            let mut spec = TopkSpec::count(1).by(if flags & 1 != 0 { RankBy::Value } else { RankBy::Magnitude });
            if flags & 2 != 0 {
                spec = spec.smallest();
            }
            for (case, (lo, hi)) in brackets(rng, keys, &spec).into_iter().enumerate() {
                // Alternately the whole buffer (16-byte aligned) and a view from its 9th key (a key after the boundary).
                let first = if case % 2 == 0 { 0 } else { 9 };
                let ctx = format!("{dev}: {:?} n {} from {first} {spec:?} bracket [{lo:#x}, {hi:#x}]", T::DTYPE, keys.len() - first);
                let got = sparse_lowrank::topk::bracket_pass_for_test(gpu, d.slice(first..keys.len()), lo, hi, &spec, false).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let want = sparse_lowrank::topk::bracket_pass_cpu(&keys[first..], lo, hi, &spec);
                assert_eq!((got.0, got.1), (want.0, want.1), "{ctx}: (keys above hi, NaNs)");
                assert_eq!(got.3.len(), want.3.len(), "{ctx}: candidates");
                assert!(got.3 == want.3, "{ctx}: the candidates' bits differ");
                assert!(got.2 == want.2, "{ctx}: the level-1 histogram differs");
            }
        }
    }
    let mut rng = rng("topk_cut_pass_patterns");
    for (dev, gpu) in devices("topk_cut_pass_patterns") {
        let mut every: Vec<u16> = (0..=u16::MAX).collect();
        every.shuffle(&mut rng);
        every.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u16>()));  // a ragged end
        passes::<f16>(&gpu, &dev, &mut rng, &every.iter().map(|&b| f16::from_bits(b)).collect::<Vec<_>>());
        passes::<bf16>(&gpu, &dev, &mut rng, &every.iter().map(|&b| bf16::from_bits(b)).collect::<Vec<_>>());
        let edges = [
            0u32, 0x8000_0000, 1, 0x8000_0001, 0x007f_ffff, 0x807f_ffff, 0x0080_0000, 0x8080_0000, 0x3f80_0000, 0xbf80_0000,
            0x7f7f_ffff, 0xff7f_ffff, 0x7f80_0000, 0xff80_0000, 0x7f80_0001, 0xff80_0001, 0x7fc0_0000, 0xffc0_0000, 0x7fff_ffff,
            0xffff_ffff, 0x7fff_fffe, 0x8000_0002,
        ];
        let mut bits: Vec<u32> = (0..20_000).map(|i| if i % 3 == 0 { edges[rng.gen_range(0..edges.len())] } else { rng.gen() }).collect();
        bits.extend((0..rng.gen_range(1..20)).map(|_| rng.gen::<u32>()));
        passes::<f32>(&gpu, &dev, &mut rng, &bits.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>());
    }
}

/// The cut's later levels read its candidate list in 512-entry shares, their warps striding over the shares when
/// the list outgrows the grid (2 blocks per multiprocessor; at 45 M keys the list is ~1.4 M entries). Here the grid
/// is capped at one block (8 warps, 4096 entries per stride) so lists of test size take 3-20 strides: uniform f32
/// keys (two levels that count real candidates, K* in the middle of its slice), k from 0.1% to 25%, both orders;
/// each cut exact against the reference and taken by the bracket.
#[test]
fn the_cut_levels_stride_over_the_list_in_shares() {
    let mut rng = rng("topk_list_shares");
    for (dev, gpu) in devices("topk_list_shares") {
        let (rows, cols) = (rng.gen_range(520..600), 512);
        let n = rows * cols;
        let keys: Vec<f32> = draw(&mut rng, n, Dist::Uniform);
        let d = gpu.upload(&keys).unwrap();
        for k in [n / 1000, n / 20, n / 4, rng.gen_range(1..n)] {
            let mut spec = TopkSpec::count(k).by(if rng.gen() { RankBy::Magnitude } else { RankBy::Value });
            if rng.gen() {
                spec = spec.smallest();
            }
            let ctx = format!("{dev}: {rows}x{cols} {spec:?}");
            let expect = topk_cpu(&keys, rows, cols, &spec).unwrap();
            let before = bracket_counts();
            sparse_lowrank::topk::cap_list_levels_grid_on_this_thread(Some(1));
            let got = topk_threshold(&gpu, &d, rows, cols, &spec);
            sparse_lowrank::topk::cap_list_levels_grid_on_this_thread(None);
            let got = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert!(same_cut(&got[0], &expect.cuts[0]), "{ctx}: device {:?} cpu {:?}", got[0], expect.cuts[0]);
            if !forced_radix() {
                assert_eq!(bracket_counts().0 - before.0, bracket_expected(&keys, rows, cols, &spec), "{ctx}: bracket taken");
            }
        }
    }
}

/// When the sample's bracket is one key (lo = hi: a block of ties around the k-th rank), every candidate shares
/// all digits, so the selection over them runs no histogram pass at all (the state starts at K*); with 15% of the
/// keys tied the candidates outnumber one block's capacity, so this is the multi-block selection. Exact against
/// the reference for the cut, the mask and the CSR.
#[test]
fn a_bracket_of_one_tied_key_selects_without_radix_passes() {
    let mut rng = rng("topk_bracket_one_key");
    for (dev, gpu) in devices("topk_bracket_one_key") {
        let (rows, cols) = (rng.gen_range(520..600), 512);
        let n = rows * cols;
        let mut keys: Vec<f32> = (0..n).map(|_| loop {
            let v: f32 = rng.gen_range(0.0..1.0);
            if v != 0.5 {
                break v;
            }
        }).collect();
        for key in keys.iter_mut() {
            if rng.gen_bool(0.15) {
                *key = 0.5;
            }
        }
        let above = keys.iter().filter(|&&x| x > 0.5).count();
        let ties = keys.iter().filter(|&&x| x == 0.5).count();
        let before = bracket_counts();
        check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(above + ties / 2));
        if !forced_radix() {
            let (taken, fell_back) = bracket_counts();
            assert_eq!((taken - before.0, fell_back - before.1), (5, 0), "{dev}");
        }
    }
}

/// The bracket paths count their candidates in 1024 slices of the bracket and narrow the slice holding K* by
/// 4096 slices per later level until it is one key: a slice that holds a fifth of the keys (three adjacent f32
/// values sharing 21% of them, K* near the cluster's top so the bracket reaches past it and the slice is wide)
/// takes every level, for the cut, the mask and the CSR. Exact against the reference.
#[test]
fn a_crowded_slice_is_narrowed_to_one_key_by_the_later_levels() {
    let mut rng = rng("topk_crowded_bin");
    for (dev, gpu) in devices("topk_crowded_bin") {
        let (rows, cols) = (rng.gen_range(520..600), 512);
        let n = rows * cols;
        let c0 = 0.5f32;
        let cluster = [c0, f32::from_bits(c0.to_bits() + 1), f32::from_bits(c0.to_bits() + 2)];
        let keys: Vec<f32> = (0..n)
            .map(|_| {
                if rng.gen_bool(0.21) {
                    cluster[rng.gen_range(0..3)]
                } else {
                    loop {
                        let v: f32 = rng.gen_range(0.0..1.0);
                        if !cluster.contains(&v) {
                            break v;
                        }
                    }
                }
            })
            .collect();
        let above = keys.iter().filter(|&&x| x > cluster[2]).count();
        let before = bracket_counts();
        let mut expected = 0;
        for k in [above + 5, above + 300] {
            check(&gpu, &dev, &keys, rows, cols, &TopkSpec::count(k));
            expected += bracket_expected(&keys, rows, cols, &TopkSpec::count(k));
        }
        if !forced_radix() {
            // Both selections take the bracket unless the sample strays past its margin (bracket_expected; the
            // lower side's is ~4.3σ here, ~1e-5 a selection).
            let (taken, _) = bracket_counts();
            assert!(expected >= 1, "{dev}: the host expects the bracket for neither selection");
            assert_eq!(taken - before.0, 5 * expected, "{dev}");
        }
    }
}

/// The bracket's guesses are checked with exact counts; when they fail, the radix passes give the same result:
/// heavy ties (the k-th key's run overflows the candidate space), a sorted matrix (the candidates crowd one or two
/// of the mask path's per-block regions; the cut-only path's single list holds them), and a sample poisoned so
/// that its bracket misses K* (every sampled key set to 100). check() runs the cut, the mask and the CSR.
#[test]
fn sample_bracket_falls_back_to_the_radix_passes_when_its_guess_fails() {
    let mut rng = rng("topk_bracket_fallback");
    for (dev, gpu) in devices("topk_bracket_fallback") {
        let (rows, cols) = (600, 500);
        let n = rows * cols;
        let few: Vec<bf16> = draw(&mut rng, n, Dist::FewDistinct);
        let same: Vec<bf16> = draw(&mut rng, n, Dist::AllButFew);
        let mut sorted: Vec<f32> = draw(&mut rng, n, Dist::Uniform);
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut poisoned: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0f32..1.0)).collect();
        for j in 0..BRACKET_SAMPLES {
            poisoned[bracket_sample_position(j, n)] = 100.0;
        }
        let fell_back = |f: &dyn Fn()| {
            let before = bracket_counts().1;
            f();
            // Under SLR_TOPK_PATH=radix nothing tries the bracket: only the results are checked.
            if forced_radix() { 5 } else { bracket_counts().1 - before }
        };
        // 99.8% of the keys equal: the k-th key's run fills every candidate region past its capacity.
        assert_eq!(fell_back(&|| check(&gpu, &dev, &same, rows, cols, &TopkSpec::count(n / 2))), 5, "{dev}: ties");
        // Five values: the k-th key's run (20% or 40% of n) may or may not fit the regions; right either way.
        check(&gpu, &dev, &few, rows, cols, &TopkSpec::count(rng.gen_range(n / 5..n / 2)));
        // k = n/4: the bracket spans ~4% of n (12k keys), contiguous when sorted: more than one region holds, so
        // the masks and the CSRs (with and without the cuts) fall back; the cut's list (a quarter of n) holds them
        // all.
        let expect_sorted = if forced_radix() { 5 } else { 4 };
        assert_eq!(fell_back(&|| check(&gpu, &dev, &sorted, rows, cols, &TopkSpec::count(n / 4))), expect_sorted, "{dev}: sorted");
        assert_eq!(fell_back(&|| check(&gpu, &dev, &poisoned, rows, cols, &TopkSpec::count(n / 20))), 5, "{dev}: poisoned");
    }
}

/// More than 1024 tiles (the scan gives each of its threads a chunk of several tile counts) and more than
/// 2048 tiles' worth of keys per histogram block set (blocks stride over the matrix): 2304 x 4000 bf16.
#[test]
fn a_matrix_of_more_than_two_thousand_tiles_matches_cpu() {
    let mut rng = rng("topk_large");
    let (rows, cols) = (2304, 4000);
    let keys: Vec<bf16> = draw(&mut rng, rows * cols, Dist::FewDistinct);
    let spec = TopkSpec::count(rng.gen_range(rows * cols / 10..rows * cols / 2));
    let expect = topk_cpu(&keys, rows, cols, &spec).unwrap();
    for (dev, gpu) in devices("topk_large") {
        let d = gpu.upload(&keys).unwrap();
        let (mask, cuts) = topk_mask(&gpu, &d, rows, cols, &spec).unwrap();
        assert!(same_cut(&cuts[0], &expect.cuts[0]), "{dev}: {cuts:?} vs {:?}", expect.cuts);
        assert!(mask.download(&gpu).unwrap() == expect.mask, "{dev}: mask differs");
    }
}

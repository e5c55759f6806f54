//! Mutation checks for the SIMT emulator: each kernel source carries compile-time switches that plant one
//! class of bug (`SLR_FAULT_<NAME>` in cuda/*.cu; build.rs builds each variant for the host). For each, a test
//! shows the emulator catches it — a wrong answer against the CPU reference, or a fault report naming the
//! kernel — while the unmodified kernel passes on the same inputs. If a kernel changes so that a planted fault
//! stops being caught, these tests fail.
#![cfg(feature = "emulator")]
mod common;
use common::*;
use rand::prelude::*;
use sparse_lowrank::device::emu;
use sparse_lowrank::*;

fn schedules(rng: &mut StdRng) -> Vec<Schedule> {
    vec![Schedule::RoundRobin, Schedule::Random { seed: rng.gen() }, Schedule::Random { seed: rng.gen() }]
}

#[test]
fn every_planted_fault_has_a_mutation_test() {
    let tested = ["off_by_one_bound", "wrong_shuffle_lane", "missing_sync", "mma_fragment", "transpose_sync", "sddmm_short_reduction", "inclusive_rank", "topk_tie_rank", "philox_rounds", "bracket_order", "bracket_take_rank", "row_pair_rank", "sample_rank_ties", "cholqr_phase_sync", "cholqr_tiles_sync", "sddmm_tc_stage_sync", "sddmm_tc_cursor_race", "spmm_tc_stage_sync", "stream_final_flush", "word_test_zero_key", "gemm_reads_c"];
    for f in sparse_lowrank::device::emu::planted_faults() {
        assert!(tested.contains(&f), "planted fault {f} has no mutation test in this file");
    }
    assert!(Gpu::emulated_with_fault(Schedule::RoundRobin, "no_such_fault").is_err());
}

#[test]
fn off_by_one_bound_in_gather_is_reported_as_an_out_of_bounds_access() {
    let mut rng = rng("off_by_one_bound");
    for schedule in schedules(&mut rng) {
        // nnz a multiple of 4: the column-index buffer ends exactly at a guard page. Below 256, so the last block
        // has a thread at index nnz (with nnz a multiple of the 256-thread block, none would run past the end).
        let (rows, cols) = (16, 40);
        let mut positions: Vec<(usize, usize)> = (0..rows * cols).map(|i| (i / cols, i % cols)).collect();
        positions.shuffle(&mut rng);
        positions.truncate(4 * rng.gen_range(1..64));
        let pattern = CsrPattern::<u32>::from_coo(rows, cols, &positions).unwrap();
        assert_eq!(pattern.nnz() % 4, 0);
        let dense: Vec<f32> = random_values(&mut rng, rows * cols);

        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "off_by_one_bound").unwrap() } else { Gpu::emulated(schedule) };
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let d = gpu.upload(&dense).unwrap();
            let mut out = gpu.alloc_zeros::<f32>(pattern.nnz()).unwrap();
            let r = gather(&gpu, &dpat, DeviceMatRef::row_major(&d, rows, cols).unwrap(), &mut out);
            if faulty {
                match r {
                    Err(Error::Emulator { kernel, message }) => {
                        assert!(kernel.starts_with("gather_f32"), "{kernel}");
                        assert!(message.contains("gather_f32") && message.contains("out of bounds"), "{message}");
                    }
                    other => panic!("{schedule:?}: planted off-by-one not caught: {other:?}"),
                }
            } else {
                r.unwrap();
                let mut expect = vec![0f32; pattern.nnz()];
                gather_cpu(&pattern, MatRef::row_major(&dense, rows, cols).unwrap(), &mut expect).unwrap();
                assert_eq!(gpu.download(&out).unwrap(), expect);
            }
        }
    }
}

/// Runs mask_to_csr on the emulator with or without a planted fault; Ok(true) when the result equals the CPU
/// reference, Ok(false) when it differs, Err when the emulator (or the debug re-validation) reported a fault.
fn mask_to_csr_agrees(schedule: Schedule, fault: Option<&str>, mask: &BitMask) -> Result<bool> {
    let gpu = match fault {
        Some(f) => Gpu::emulated_with_fault(schedule, f)?,
        None => Gpu::emulated(schedule),
    };
    let d = DeviceBitMask::upload(&gpu, mask)?;
    let got = mask_to_csr(&gpu, &d)?.download(&gpu)?;
    Ok(got == mask.to_pattern::<u32>()?)
}

fn random_dense_mask(rng: &mut StdRng, rows: usize, cols: usize) -> BitMask {
    let mut m = BitMask::zeros(rows, cols);
    for r in 0..rows {
        for c in 0..cols {
            m.set(r, c, rng.gen_bool(0.5));
        }
    }
    m
}

#[test]
fn wrong_shuffle_lane_in_the_row_count_reduction_gives_a_wrong_pattern() {
    let mut rng = rng("wrong_shuffle_lane");
    let mask = random_dense_mask(&mut rng, 40, 300);
    for schedule in schedules(&mut rng) {
        assert!(mask_to_csr_agrees(schedule, None, &mask).unwrap(), "{schedule:?}: unmodified kernel");
        let caught = !matches!(mask_to_csr_agrees(schedule, Some("wrong_shuffle_lane"), &mask), Ok(true));
        assert!(caught, "{schedule:?}: planted wrong shuffle lane not caught");
    }
}

#[test]
fn missing_syncthreads_in_the_scan_is_caught_by_random_schedules() {
    let mut rng = rng("missing_sync");
    // Enough rows that every scan thread has a chunk.
    let mask = random_dense_mask(&mut rng, 1500, 20);
    assert!(mask_to_csr_agrees(Schedule::RoundRobin, None, &mask).unwrap());
    let mut caught = 0;
    let seeds: Vec<u64> = (0..4).map(|_| rng.gen()).collect();
    for &seed in &seeds {
        let schedule = Schedule::Random { seed };
        assert!(mask_to_csr_agrees(schedule, None, &mask).unwrap(), "{schedule:?}: unmodified kernel");
        caught += !matches!(mask_to_csr_agrees(schedule, Some("missing_sync"), &mask), Ok(true)) as usize;
    }
    // Round-robin runs threads in order, so each reads its predecessor's sum after it was written: only random
    // interleavings expose the race through a wrong result. Every seed should; require at least one.
    assert!(caught >= 1, "missing __syncthreads() not caught under seeds {seeds:?}");
    // The race checker reports it under every schedule, round-robin included, before any wrong value is used.
    if emu::checks_races() {
        for schedule in [Schedule::RoundRobin, Schedule::Random { seed: seeds[0] }] {
            let e = mask_to_csr_agrees(schedule, Some("missing_sync"), &mask).err();
            assert!(expect_race_report(e.as_ref(), "scan_u32", ""), "{schedule:?}: {e:?}");
        }
    }
}

/// With the race checker built (emu::checks_races), whether `e` is its report naming `kernel` and, when not empty,
/// `what` (a shared variable); panics on any other error. Without the checker, false: the caller checks values.
fn expect_race_report(e: Option<&Error>, kernel: &str, what: &str) -> bool {
    if !emu::checks_races() {
        return false;
    }
    match e {
        Some(Error::Emulator { kernel: k, message }) => {
            assert!(k.starts_with(kernel) && message.contains("data race on shared memory") && message.contains(what), "{k}: {message}");
            true
        }
        other => panic!("the race checker did not report the planted race in {kernel}: {other:?}"),
    }
}

#[test]
fn wrong_mma_fragment_index_gives_wrong_tile_products() {
    use half::bf16;
    let mut rng = rng("mma_fragment");
    let tiles = 6;
    let a: Vec<bf16> = random_values(&mut rng, tiles * 256);
    let b: Vec<bf16> = random_values(&mut rng, tiles * 128);
    let c0: Vec<f32> = random_values(&mut rng, tiles * 128);
    let mut expect = c0.clone();
    tile_mma_cpu(&a, &b, &mut expect, tiles).unwrap();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "mma_fragment").unwrap() } else { Gpu::emulated(schedule) };
            let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            let mut dc = gpu.upload(&c0).unwrap();
            let r = tile_mma(&gpu, &da, &db, &mut dc, tiles);
            let agrees = r.is_ok() && gpu.download(&dc).unwrap() == expect;
            // The host mma is the same fmaf chain as the CPU reference, so the unmodified kernel agrees bitwise.
            assert_eq!(agrees, !faulty, "{schedule:?}: faulty={faulty}");
        }
    }
}

#[test]
fn the_four_fault_classes_the_issue_names_are_all_planted() {
    let planted = sparse_lowrank::device::emu::planted_faults();
    for f in ["off_by_one_bound", "wrong_shuffle_lane", "missing_sync", "mma_fragment"] {
        assert!(planted.contains(&f), "planted fault {f} is missing from cuda/*.cu");
    }
}

#[test]
fn missing_syncthreads_in_the_activation_transpose_gives_a_wrong_forward() {
    let mut rng = rng("transpose_sync");
    let (out_dim, in_dim, t) = (24, 70, 40);
    let s = random_pattern(&mut rng, out_dim, in_dim, 0.3, false);
    let vals: Vec<f32> = random_values(&mut rng, s.nnz());
    let x: Vec<f32> = random_values(&mut rng, t * in_dim);
    let mut expect = vec![0f32; t * out_dim];
    spmm_xst_cpu(&s, &vals, MatRef::row_major(&x, t, in_dim).unwrap(), 1.0, 0.0, MatMut::row_major(&mut expect, t, out_dim).unwrap()).unwrap();
    let mut caught = 0;
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "transpose_sync").unwrap() } else { Gpu::emulated(schedule) };
            let ds = DeviceCsrPattern::upload(&gpu, &s).unwrap();
            let (dv, dx) = (gpu.upload(&vals).unwrap(), gpu.upload(&x).unwrap());
            let mut dy = gpu.alloc_zeros::<f32>(t * out_dim).unwrap();
            let r = spmm_xst(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut dy, t, out_dim).unwrap());
            let close = r.is_ok() && gpu.download(&dy).unwrap().iter().zip(&expect).all(|(g, e)| (g - e).abs() <= 1e-4 * (1.0 + e.abs()));
            if faulty {
                caught += !close as usize;
            } else {
                assert!(close, "{schedule:?}: unmodified kernels disagree with the CPU");
            }
        }
    }
    assert_eq!(caught, 3, "the missing barrier in transpose_pad was not caught under every schedule");
}

#[test]
fn short_butterfly_in_the_sddmm_group_sum_gives_values_outside_the_bound() {
    let mut rng = rng("sddmm_short_reduction");
    // K = 64 f32: 16 slots of 4, so groups of 16 lanes; a butterfly one step short leaves each group's writer with
    // the sum of 8 lanes only. Positive operands, so the missing half cannot cancel out.
    let (m, n, k) = (12, 20, 64);
    let pattern = random_pattern(&mut rng, m, n, 0.5, false);
    assert!(pattern.nnz() > 0);
    let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(0.5f32..1.5)).collect();
    let b: Vec<f32> = (0..n * k).map(|_| rng.gen_range(0.5f32..1.5)).collect();
    let mut expect = vec![0f32; pattern.nnz()];
    sddmm_cpu(&pattern, MatRef::row_major(&a, m, k).unwrap(), MatRef::row_major(&b, n, k).unwrap(), 1.0, 0.0, &mut expect).unwrap();
    // The documented bound (src/sddmm.rs): 2·γ(K+2)·Σ|a·b|, with Σ|a·b| = the value itself (all terms positive).
    let gamma = (k + 2) as f64 * 2f64.powi(-24) / (1.0 - (k + 2) as f64 * 2f64.powi(-24));
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "sddmm_short_reduction").unwrap() } else { Gpu::emulated(schedule) };
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            let mut dc = gpu.alloc_zeros::<f32>(pattern.nnz()).unwrap();
            sddmm(&gpu, &dpat, DeviceMatRef::row_major(&da, m, k).unwrap(), DeviceMatRef::row_major(&db, n, k).unwrap(), 1.0, 0.0, &mut dc).unwrap();
            let got = gpu.download(&dc).unwrap();
            let within = got.iter().zip(&expect).all(|(g, x)| ((g - x).abs() as f64) <= 2.0 * gamma * (*x as f64));
            if faulty {
                assert!(!within, "{schedule:?}: planted short butterfly not caught");
            } else {
                assert!(within, "{schedule:?}: unmodified kernel outside the bound: {got:?} vs {expect:?}");
            }
        }
    }
}

#[test]
fn inclusive_rank_in_the_transpose_is_reported_as_an_out_of_bounds_write() {
    let mut rng = rng("inclusive_rank");
    // 37 x 43: rows of Sᵀ start mid-word, and the last bit of the mask (entry (36, 42), always present) is not the
    // first of its word, so an inclusive rank sends that entry one past the end of Sᵀ's columns. nnz a multiple of
    // 4: the column buffer ends exactly at a guard page.
    let (rows, cols) = (37, 43);
    let mut positions: Vec<(usize, usize)> = (0..rows * cols - 1).map(|i| (i / cols, i % cols)).collect();
    positions.shuffle(&mut rng);
    positions.truncate(4 * rng.gen_range(20..300) - 1);
    positions.push((rows - 1, cols - 1));
    let s = CsrPattern::<u32>::from_coo(rows, cols, &positions).unwrap();
    assert_eq!(s.nnz() % 4, 0);
    let expect = csr_transpose_pattern_cpu(&s);
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "inclusive_rank").unwrap() } else { Gpu::emulated(schedule) };
            let r = DeviceCsrPattern::upload(&gpu, &s).and_then(|d| csr_transpose(&gpu, &d)).and_then(|t| t.download(&gpu));
            if faulty {
                match r {
                    Err(Error::Emulator { kernel, message }) => {
                        assert_eq!(kernel, "csr_transpose_place");
                        assert!(message.contains("csr_transpose_place") && message.contains("out of bounds"), "{message}");
                    }
                    other => panic!("{schedule:?}: planted inclusive rank not caught: {other:?}"),
                }
            } else {
                assert_eq!(r.unwrap(), expect, "{schedule:?}: unmodified kernel");
            }
        }
    }
}

#[test]
fn tie_rank_off_by_one_in_topk_takes_one_equal_key_too_many() {
    use half::bf16;
    let mut rng = rng("topk_tie_rank");
    // Many ties across tiles: values from three numbers, so the k-th key is shared by thousands of entries and the
    // quota of equal keys ends inside a tile.
    let (rows, cols) = (3, 3000);
    let keys: Vec<bf16> = (0..rows * cols).map(|_| bf16::from_f32([0.5f32, -1.0, 2.0][rng.gen_range(0..3)])).collect();
    // k not at the end of a run of equal magnitudes, so the quota leaves equal keys untaken.
    let count = |m: f32| keys.iter().filter(|x| x.to_f32().abs() == m).count();
    let boundaries = [count(2.0), count(2.0) + count(1.0)];
    let k = loop {
        let k = rng.gen_range(rows * cols / 3 + 1..rows * cols - 1);
        if !boundaries.contains(&k) {
            break k;
        }
    };
    // Per row (one block per row, its own copy of the rank rule): k not at a run boundary of row 0.
    let row0 = &keys[..cols];
    let count0 = |m: f32| row0.iter().filter(|x| x.to_f32().abs() == m).count();
    let row_boundaries = [count0(2.0), count0(2.0) + count0(1.0)];
    let k_row = loop {
        let k = rng.gen_range(cols / 3 + 1..cols - 1);
        if !row_boundaries.contains(&k) {
            break k;
        }
    };
    for spec in [TopkSpec::count(k), TopkSpec::count(k_row).per_row()] {
        let expect = topk_cpu(&keys, rows, cols, &spec).unwrap().mask;
        for schedule in schedules(&mut rng) {
            for faulty in [false, true] {
                let gpu = if faulty { Gpu::emulated_with_fault(schedule, "topk_tie_rank").unwrap() } else { Gpu::emulated(schedule) };
                let d = gpu.upload(&keys).unwrap();
                let (mask, _) = topk_mask(&gpu, &d, rows, cols, &spec).unwrap();
                let agrees = mask.download(&gpu).unwrap() == expect;
                assert_eq!(agrees, !faulty, "{schedule:?}: faulty={faulty}, {spec:?}");
            }
        }
    }
}

/// The sample bracket writes its candidates in flat-index order so that ties at K* resolve by the lowest flat
/// index; ranked warp-major instead (planted fault `bracket_order`), a quota that ends inside a run of equal keys
/// takes the wrong ones. Keys from 64 levels: the run at K* holds ~1/64 of n, spread over every candidate region.
#[test]
fn bracket_candidates_out_of_flat_order_take_the_wrong_ties() {
    use half::bf16;
    let mut rng = rng("bracket_order");
    let (rows, cols) = (600, 500);
    let n = rows * cols;
    let keys: Vec<bf16> = (0..n).map(|_| bf16::from_f32(rng.gen_range(0..64) as f32 / 8.0 + 0.25)).collect();
    // k inside a run (not a boundary between levels). The misordered ties differ from the right ones unless the
    // quota happens to end where both orders agree: sixteen k, at least one must differ. (The streaming pass's
    // fault reorders only within a warp's batch of vectors and agreed on ~45% of k, measured over 30 k; with four
    // k it gave the right ties for all of them in one CI run, seed 4558400308534477780, 2026-11-28. Sixteen:
    // ~3e-6 per run.)
    let mut sorted: Vec<f32> = keys.iter().map(|x| x.to_f32()).collect();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let mut ks = Vec::new();
    while ks.len() < 16 {
        let k = rng.gen_range(n / 10..n / 2);
        if sorted[k - 1] == sorted[k] && sorted[k - 1] == sorted[k - 2] {
            ks.push(k);
        }
    }
    let expect: Vec<_> = ks.iter().map(|&k| topk_cpu(&keys, rows, cols, &TopkSpec::count(k)).unwrap().mask).collect();
    // Both mask passes carry the fault: the round-based default and the streaming one (`SLR_TOPK_PATH=stream_mask`).
    for (schedule, stream_mask) in schedules(&mut rng).into_iter().flat_map(|s| [(s, false), (s, true)]) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "bracket_order").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            let mut agree = 0;
            sparse_lowrank::topk::use_streaming_mask_pass_on_this_thread(stream_mask);
            for (&k, want) in ks.iter().zip(&expect) {
                let before = sparse_lowrank::topk::bracket_counts().0;
                let (mask, _) = topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
                assert_eq!(sparse_lowrank::topk::bracket_counts().0, before + 1, "{schedule:?}: the bracket path must run");
                agree += (mask.download(&gpu).unwrap() == *want) as usize;
            }
            sparse_lowrank::topk::use_streaming_mask_pass_on_this_thread(false);
            let ctx = format!("{schedule:?} (streaming mask pass: {stream_mask})");
            if faulty {
                assert!(agree < ks.len(), "{ctx}: the misordered candidates gave the right ties for every k {ks:?}");
            } else {
                assert_eq!(agree, ks.len(), "{ctx}: k {ks:?}");
            }
        }
    }
}

/// The mask path's last kernel takes the keys equal to K* whose flat-order rank is below the quota; with `<=`
/// (planted fault `bracket_take_rank`) it takes one tie too many whenever the quota ends inside the run of equal
/// keys. bf16 keys from 64 levels: the slice holding K* is one key, shared by ~1/64 of n.
#[test]
fn bracket_take_rank_off_by_one_takes_one_equal_key_too_many() {
    use half::bf16;
    let mut rng = rng("bracket_take_rank");
    let (rows, cols) = (520, 512);
    let n = rows * cols;
    let keys: Vec<bf16> = (0..n).map(|_| bf16::from_f32(rng.gen_range(0..64) as f32 / 8.0 + 0.25)).collect();
    let mut sorted: Vec<f32> = keys.iter().map(|x| x.to_f32()).collect();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let k = loop {
        let k = rng.gen_range(n / 10..n / 2);
        if sorted[k - 1] == sorted[k] {
            break k; // the quota ends inside a run of equal keys
        }
    };
    let spec = TopkSpec::count(k);
    let expect = topk_cpu(&keys, rows, cols, &spec).unwrap().mask;
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "bracket_take_rank").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            let before = sparse_lowrank::topk::bracket_counts().0;
            let (mask, _) = topk_mask(&gpu, &d, rows, cols, &spec).unwrap();
            assert_eq!(sparse_lowrank::topk::bracket_counts().0, before + 1, "{schedule:?}: the bracket path must run");
            let mask = mask.download(&gpu).unwrap();
            if faulty {
                assert_eq!(mask.count_ones(), k + 1, "{schedule:?}: k {k}");
            } else {
                assert!(mask == expect, "{schedule:?}: k {k}");
            }
        }
    }
}

/// The cut's streaming bracket pass keeps each thread's candidates in shared-memory slots and moves them to the
/// list when a lane runs short of room, and once more at the end; without that last move (planted fault
/// `stream_final_flush`) the candidates still in the slots are lost from the list and its count, so the choice
/// either misses K* (the cut differs from the reference) or sees fewer than k keys at or above lo (the bracket
/// fails its exact check and the radix passes run): either way not the exact cut by the bracket.
#[test]
fn a_streaming_cut_pass_without_its_final_flush_loses_candidates() {
    let mut rng = rng("stream_final_flush");
    let (rows, cols) = (530, 512);
    let keys: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
    // Each k one whose sample bracket holds the k-th key (bracket_expected: a miss, ~1e-5 a draw, sends even the
    // unmodified kernel to the radix passes, which this test would count as a loss).
    let ks: Vec<usize> = (0..3)
        .map(|_| loop {
            let k = rng.gen_range(rows * cols / 50..rows * cols / 5);
            if bracket_expected(&keys, rows, cols, &TopkSpec::count(k)) == 1 {
                break k;
            }
        })
        .collect();
    let expect: Vec<_> = ks.iter().map(|&k| topk_cpu(&keys, rows, cols, &TopkSpec::count(k)).unwrap().cuts[0]).collect();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "stream_final_flush").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            let mut exact_by_bracket = 0;
            for (&k, want) in ks.iter().zip(&expect) {
                let before = sparse_lowrank::topk::bracket_counts().0;
                let cut = topk_threshold(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
                let taken = sparse_lowrank::topk::bracket_counts().0 > before;
                let same = cut[0].threshold.map(f32::to_bits) == want.threshold.map(f32::to_bits) && cut[0].count_beyond == want.count_beyond && cut[0].count_equal_taken == want.count_equal_taken;
                exact_by_bracket += (taken && same) as usize;
            }
            if faulty {
                assert_eq!(exact_by_bracket, 0, "{schedule:?}: the lost candidates went unnoticed for k {ks:?}");
            } else {
                assert_eq!(exact_by_bracket, ks.len(), "{schedule:?}: k {ks:?}");
            }
        }
    }
}

/// The cut's streaming pass tests "key >= K" by value as a sign and one |bits| test, in one of two forms by K
/// against the key of zero (0x8000 for 16-bit keys); K = 0x8000 itself must take the form for K = 0x7fff (no key is
/// 0x7fff), since in its own form the test reads as "sign clear", which -0 (the key of zero, like +0) fails. With
/// that remap left out (planted fault `word_test_zero_key`) a bracket that starts at zero loses the -0 keys from
/// its candidates. bf16 by value, zeros of both signs among random keys, brackets [0x8000, hi].
#[test]
fn a_cut_pass_whose_zero_key_test_takes_the_sign_loses_negative_zeros() {
    use half::bf16;
    let mut rng = rng("word_test_zero_key");
    let keys: Vec<bf16> = (0..5000)
        .map(|i| match i % 5 {
            0 => bf16::from_f32(-0.0),
            1 => bf16::from_f32(0.0),
            _ => bf16::from_f32(rng.gen_range(-2.0f32..2.0)),
        })
        .collect();
    let spec = TopkSpec::count(1).by(RankBy::Value);
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "word_test_zero_key").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            for hi in [0x8000, 0x8000 + rng.gen_range(1..0x4000u32)] {
                let got = sparse_lowrank::topk::bracket_pass_for_test(&gpu, &d, 0x8000, hi, &spec, false).unwrap();
                let want = sparse_lowrank::topk::bracket_pass_cpu(&keys, 0x8000, hi, &spec);
                let zeros_taken = got.3.iter().filter(|&&b| b == 0x8000).count();
                if faulty {
                    assert_eq!(zeros_taken, 0, "{schedule:?}: [0x8000, {hi:#x}] kept -0");
                    assert!(got.3.len() < want.3.len(), "{schedule:?}: [0x8000, {hi:#x}]");
                } else {
                    assert_eq!(zeros_taken, 1000, "{schedule:?}: [0x8000, {hi:#x}]");
                    assert!(got == want, "{schedule:?}: [0x8000, {hi:#x}]");
                }
            }
        }
    }
}

/// Per-row selection ranks the keys of the bin holding the k-th key pair by pair, ties by the lower position;
/// ranking ties by the higher position (planted fault `row_pair_rank`) takes the wrong ones of a run of equal
/// keys that the quota cuts. bf16 rows of 300 keys from 16 levels (every row's bin fits the pairwise path).
#[test]
fn per_row_pair_ranks_that_prefer_the_higher_position_take_the_wrong_ties() {
    use half::bf16;
    let mut rng = rng("row_pair_rank");
    let (rows, cols) = (12, 300);
    let keys: Vec<bf16> = (0..rows * cols).map(|_| bf16::from_f32(rng.gen_range(0..16) as f32 / 4.0 + 0.25)).collect();
    let spec = TopkSpec::count(rng.gen_range(20..280)).per_row();
    let expect = topk_cpu(&keys, rows, cols, &spec).unwrap().mask;
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "row_pair_rank").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            let (mask, _) = topk_mask(&gpu, &d, rows, cols, &spec).unwrap();
            let mask = mask.download(&gpu).unwrap();
            // Same counts either way; only which equal keys are taken differs (12 rows: some quota ends inside a run).
            assert_eq!(mask.count_ones(), expect.count_ones(), "{schedule:?}");
            assert_eq!(mask == expect, !faulty, "{schedule:?}: faulty = {faulty}");
        }
    }
}

/// The ranking sample kernel orders equal keys by their sample index, so every rank below 4096 is held by exactly
/// one sample key; ranking by the key alone (planted fault `sample_rank_ties`) lets a run of equal keys share the
/// rank of its first, and a bracket rank inside the run is then held by none (the bracket word is never written).
/// Keys from 8 levels: every bracket rank but the few at a run's start falls inside a run. The result of a top-k
/// call would not show it (a wrong bracket falls back to the radix passes): the sample's keys are compared.
#[test]
fn sample_ranks_that_let_equal_keys_share_a_rank_leave_the_bracket_unwritten() {
    use half::bf16;
    let mut rng = rng("sample_rank_ties");
    let n = 3 * sparse_lowrank::topk::BRACKET_SAMPLES + rng.gen_range(0..1000);
    let keys: Vec<bf16> = (0..n).map(|_| bf16::from_f32(rng.gen_range(0..8) as f32 / 4.0 + 0.25)).collect();
    let spec = TopkSpec::count(1);
    let ks: Vec<usize> = (0..4).map(|_| rng.gen_range(n / 10..n / 2)).collect();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "sample_rank_ties").unwrap() } else { Gpu::emulated(schedule) };
            let d = gpu.upload(&keys).unwrap();
            let mut all_right = true;
            for &k in &ks {
                let expect = sparse_lowrank::topk::sample_bracket_keys_cpu(&keys, k, &spec);
                let (lo, hi, _) = sparse_lowrank::topk::sample_bracket_keys(&gpu, &d, k, &spec, false).unwrap();
                all_right &= (lo, hi) == expect;
            }
            assert_eq!(all_right, !faulty, "{schedule:?}: faulty = {faulty}");
        }
    }
}

#[test]
fn philox_one_round_short_gives_a_sketch_that_differs_from_the_cpu() {
    let mut rng = rng("philox_rounds");
    let count = 4 * rng.gen_range(50..200) + 3;
    let seed: u64 = rng.gen();
    let mut expect = vec![0f32; count];
    gaussian_sketch_cpu(seed, &mut expect);
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "philox_rounds").unwrap() } else { Gpu::emulated(schedule) };
            let mut d = gpu.alloc_zeros::<f32>(count).unwrap();
            gaussian_sketch(&gpu, seed, &mut d).unwrap();
            let got = gpu.download(&d).unwrap();
            let same = got.iter().zip(&expect).all(|(g, e)| g.to_bits() == e.to_bits());
            // The sketch is compared bitwise, so one missing Philox round changes (almost) every value.
            assert_eq!(same, !faulty, "{schedule:?}: faulty={faulty}");
        }
    }
}

/// rSVD's own product kernel (`rsvd_gemm_f32`, the emulator's engine for what cuBLAS multiplies on a GPU) reading C
/// at β = 0 (planted fault `gemm_reads_c`): its outputs are fresh `alloc_uninit` buffers, so β·C is zero times
/// garbage. Where the garbage is NaN (the 0xFF fill of odd-seeded random schedules) the products turn NaN and the
/// call fails or returns non-finite factors; where it reads as about -0 (0xA5, round-robin) or a huge finite value
/// (0x7F, even seeds), 0·garbage = 0 and the bug is invisible. Until 2026-11-29 every schedule filled with 0xA5 and
/// none caught it (checked by hand); the unmodified kernel passes under every fill.
#[test]
fn a_product_that_reads_its_uninitialized_output_at_beta_zero_is_caught_by_the_nan_fill() {
    let mut rng = rng("gemm_reads_c");
    let (m, n, r) = (60, 40, 4);
    let a: Vec<f32> = random_values(&mut rng, m * n);
    let seed: u64 = rng.gen();
    for schedule in [Schedule::RoundRobin, Schedule::Random { seed: seed | 1 }, Schedule::Random { seed: seed & !1 }] {
        let nan_fill = matches!(schedule, Schedule::Random { seed } if seed & 1 == 1);
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "gemm_reads_c").unwrap() } else { Gpu::emulated(schedule) };
            let da = gpu.upload(&a).unwrap();
            let (mut u, mut vt) = (gpu.alloc_zeros::<f32>(m * r).unwrap(), gpu.alloc_zeros::<f32>(r * n).unwrap());
            let mut s = vec![0f32; r];
            let got = rsvd(&gpu, DeviceMatRef::row_major(&da, m, n).unwrap(), &RsvdConfig::new(r), DeviceMatMut::row_major(&mut u, m, r).unwrap(), &mut s, DeviceMatMut::row_major(&mut vt, r, n).unwrap());
            let finite = |x: &[f32]| x.iter().all(|v| v.is_finite());
            let ok = got.is_ok() && finite(&s) && finite(&gpu.download(&u).unwrap()) && finite(&gpu.download(&vt).unwrap());
            assert_eq!(ok, !(faulty && nan_fill), "{schedule:?} faulty={faulty}: {got:?}");
        }
    }
}

#[test]
fn cholqr_factor_without_its_phase_barrier_no_longer_whitens_the_gram_matrix() {
    // rsvd_cholqr_factor_f32 with the barrier between writing column k of L / row k of L⁻¹ into the shared
    // buffers and the rows' updates removed (planted fault `cholqr_phase_sync`): updates read the previous step's
    // buffers, so R⁻ᵀ G R⁻¹ is far from I (or the block deadlocks), while the unmodified kernel whitens G to ~1e-6.
    cholqr_phase_fault("cholqr_phase_sync", "rsvd_cholqr_factor_f32", sparse_lowrank::rsvd::cholqr_factor_on_device_packed);
}

#[test]
fn cholqr_tiled_factor_without_its_solve_barrier_no_longer_whitens_the_gram_matrix() {
    // The tiled kernel (l <= 160) with the barrier between a block step's solves (block row k of R, block column k
    // of R⁻¹) and its products removed (planted fault `cholqr_tiles_sync`): the trailing update and the inverse's
    // products read R and R⁻¹ blocks before they are written (l in 70..96: three blocks of 32, every product kind).
    cholqr_phase_fault("cholqr_tiles_sync", "rsvd_cholqr_factor_tiles_f32", sparse_lowrank::rsvd::cholqr_factor_on_device);
}

type FactorOnDevice = fn(&Gpu, &[f32], usize, usize, bool) -> Result<(Vec<f32>, u32)>;

fn cholqr_phase_fault(fault: &str, kernel_name: &str, factor: FactorOnDevice) {
    let mut rng = rng(fault);
    let (l, rows) = (rng.gen_range(70..96), 200);
    let y: Vec<f64> = (0..rows * l).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let g: Vec<f64> = (0..l * l).map(|e| (0..rows).map(|p| y[p * l + e % l] * y[p * l + e / l]).sum()).collect();
    let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, fault).unwrap() } else { Gpu::emulated(schedule) };
            let (r_inv, status) = match factor(&gpu, &g32, l, rows, true) {
                Ok(x) => x,
                // Threads that read a stale pivot can also disagree about a failure and leave the sweep at
                // different steps: the emulator reports the deadlock, naming the kernel.
                Err(Error::Emulator { kernel, .. }) if faulty => {
                    assert_eq!(kernel, kernel_name);
                    continue;
                }
                Err(e) => panic!("{schedule:?}: faulty={faulty}: {e}"),
            };
            // max |(R⁻ᵀ G R⁻¹)[i][j] − δij| in f64.
            let mut dev = 0f64;
            for i in 0..l {
                for j in 0..l {
                    let mut w = 0f64;
                    for a in 0..=i {
                        for b in 0..=j {
                            w += r_inv[a + i * l] as f64 * g[a + b * l] * r_inv[b + j * l] as f64;
                        }
                    }
                    let d = (w - if i == j { 1.0 } else { 0.0 }).abs();
                    dev = if d.is_nan() { f64::INFINITY } else { dev.max(d) };
                }
            }
            let whitened = status == 0 && dev <= 1e-4;
            assert_eq!(whitened, !faulty, "{schedule:?}: faulty={faulty}, status {status}, max deviation {dev:e}");
        }
    }
}

/// A bf16 SDDMM that the tensor-core kernel takes (m in 64..90, n in 40..70, K = 96, 30% of entries), for the faults
/// planted in it.
struct SddmmTcCase {
    m: usize,
    n: usize,
    k: usize,
    pattern: CsrPattern<u32>,
    a: Vec<half::bf16>,
    b: Vec<half::bf16>,
}

impl SddmmTcCase {
    fn new(rng: &mut StdRng) -> Self {
        let (m, n, k) = (rng.gen_range(64..90), rng.gen_range(40..70), 96);
        let pattern = random_pattern(rng, m, n, 0.3, false);
        assert!(sparse_lowrank::sddmm::sddmm_uses_tensor_cores::<half::bf16>(m, n, k, pattern.nnz()));
        let a = random_values(rng, m * k);
        let b = random_values(rng, n * k);
        SddmmTcCase { m, n, k, pattern, a, b }
    }

    /// The entries `gpu` computes (α = 1, β = 0), or the launch's error.
    fn run(&self, gpu: &Gpu) -> Result<Vec<half::bf16>> {
        let (m, n, k) = (self.m, self.n, self.k);
        let dpat = DeviceCsrPattern::upload(gpu, &self.pattern)?;
        let (da, db) = (gpu.upload(&self.a)?, gpu.upload(&self.b)?);
        let mut dc = gpu.alloc_zeros::<half::bf16>(self.pattern.nnz())?;
        sddmm(gpu, &dpat, DeviceMatRef::row_major(&da, m, k)?, DeviceMatRef::row_major(&db, n, k)?, 1.0, 0.0, &mut dc)?;
        gpu.download(&dc)
    }
}

#[test]
fn sddmm_tensor_cores_without_the_staging_barrier_are_caught() {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    // sddmm_tc with the barrier between staging a K chunk of A and B rows in shared memory and the warps' fragment
    // loads removed (planted fault `sddmm_tc_stage_sync`): a warp multiplies rows other warps have not staged yet
    // (or staged for the previous chunk), so entries leave the reference's bound, while the unmodified kernel stays
    // inside it. With the race checker (the default) the launch fails first, naming the stage arrays.
    let mut rng = rng("sddmm_tc_stage_sync");
    let case = SddmmTcCase::new(&mut rng);
    let (m, n, k) = (case.m, case.n, case.k);
    let mut want = vec![half::bf16::ZERO; case.pattern.nnz()];
    sddmm_cpu(&case.pattern, MatRef::row_major(&case.a, m, k).unwrap(), MatRef::row_major(&case.b, n, k).unwrap(), 1.0, 0.0, &mut want).unwrap();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "sddmm_tc_stage_sync").unwrap() } else { Gpu::emulated(schedule) };
            let r = case.run(&gpu);
            if faulty && expect_race_report(r.as_ref().err(), "sddmm_tc_bf16", "_stage") {
                continue;
            }
            let got = r.unwrap();
            // Random values in [-1, 1): |dot| <= K; bf16 rounding of the result plus the f32 sums stay far inside
            // 2^-7 relative + 1e-3 absolute; wrong or stale rows miss by O(1).
            let close = got.iter().zip(&want).all(|(g, w)| (g.to_f32() - w.to_f32()).abs() <= 1e-3 + w.to_f32().abs() / 128.0);
            assert_eq!(close, !faulty, "{schedule:?}: faulty={faulty}");
        }
    }
}

#[test]
fn every_lane_loading_the_cursor_lane_0_stores_is_a_race_only_the_race_checker_sees() {
    // sddmm_tc with every lane of a warp loading its row's cursor from shared memory and lane 0 storing the advanced
    // one after the warp's ballots (planted fault `sddmm_tc_cursor_race`, the kernel as it was until the race
    // checker reported it): a ballot orders no memory, so lane 0's store races with the other lanes' loads on a GPU.
    // Every lane loads before the first ballot here, so the values are always right: only the race checker sees it.
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    if !emu::checks_races() {
        eprintln!("SKIPPED: this build has no race checker (SLR_EMU_RACECHECK=0)");
        return;
    }
    let mut rng = rng("sddmm_tc_cursor_race");
    let case = SddmmTcCase::new(&mut rng);
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "sddmm_tc_cursor_race").unwrap() } else { Gpu::emulated(schedule) };
            let r = case.run(&gpu);
            if faulty {
                assert!(expect_race_report(r.as_ref().err(), "sddmm_tc_bf16", "cursor"), "{schedule:?}");
            } else {
                r.unwrap_or_else(|e| panic!("{schedule:?}: unmodified kernel: {e}"));
            }
        }
    }
}

#[test]
fn spmm_tensor_cores_without_the_staging_barrier_are_caught() {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    // spmm_xst_tc with the barrier between storing a stage of X to shared memory and the warps' fragment loads
    // removed (planted fault `spmm_tc_stage_sync`): every warp's 16 rows are stored by threads of all four warps,
    // so a warp that runs ahead multiplies the previous stage's X (or zeros), and outputs leave the reference's
    // bound, while the unmodified kernel stays inside it. With the race checker (the default) the launch fails
    // first, naming the stage array.
    let mut rng = rng("spmm_tc_stage_sync");
    let (t, out_dim, in_dim) = (rng.gen_range(64..100), rng.gen_range(40..70), 192);
    let pattern = random_pattern(&mut rng, out_dim, in_dim, 0.3, false);
    assert!(sparse_lowrank::spmm::spmm_xst_uses_tensor_cores::<half::bf16>(t, out_dim, in_dim, pattern.nnz()));
    let s_vals: Vec<half::bf16> = random_values(&mut rng, pattern.nnz());
    let x: Vec<half::bf16> = random_values(&mut rng, t * in_dim);
    let mut want = vec![half::bf16::ZERO; t * out_dim];
    spmm_xst_cpu(&pattern, &s_vals, MatRef::row_major(&x, t, in_dim).unwrap(), 1.0, 0.0, MatMut::row_major(&mut want, t, out_dim).unwrap()).unwrap();
    for schedule in schedules(&mut rng) {
        for faulty in [false, true] {
            let gpu = if faulty { Gpu::emulated_with_fault(schedule, "spmm_tc_stage_sync").unwrap() } else { Gpu::emulated(schedule) };
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let (dv, dx) = (gpu.upload(&s_vals).unwrap(), gpu.upload(&x).unwrap());
            let mut dy = gpu.alloc_zeros::<half::bf16>(t * out_dim).unwrap();
            let r = spmm_xst(&gpu, &dpat, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut dy, t, out_dim).unwrap());
            if faulty && expect_race_report(r.as_ref().err(), "spmm_xst_tc32_bf16", "_stage") {
                continue;
            }
            r.unwrap();
            let got = gpu.download(&dy).unwrap();
            // Random values in [-1, 1), ~58 terms per output: bf16 rounding of the result plus the f32 sums stay
            // far inside 2^-7 relative + 1e-3 absolute; stale or missing X rows miss by O(1).
            let close = got.iter().zip(&want).all(|(g, w)| (g.to_f32() - w.to_f32()).abs() <= 1e-3 + w.to_f32().abs() / 128.0);
            assert_eq!(close, !faulty, "{schedule:?}: faulty={faulty}");
        }
    }
}

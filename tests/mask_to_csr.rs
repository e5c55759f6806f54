//! mask_to_csr on the device against BitMask::to_pattern (the CPU reference): exact agreement on random masks of
//! random shapes (widths that are not multiples of 64, so rows start mid-word), densities from 0 to 1, skewed rows,
//! empty masks, a single row, and more rows than the scan block has threads.
mod common;
use common::*;
use rand::prelude::*;
use sparse_lowrank::*;

fn random_mask(rng: &mut StdRng, rows: usize, cols: usize, density: f64, skewed: bool) -> BitMask {
    let mut m = BitMask::zeros(rows, cols);
    for r in 0..rows {
        let d = if skewed { (density * 20.0 / (r as f64 + 1.0)).min(1.0) } else { density };
        for c in 0..cols {
            if rng.gen_bool(d) {
                m.set(r, c, true);
            }
        }
    }
    m
}

fn check(gpu: &Gpu, dev: &str, mask: &BitMask) {
    let expect = mask.to_pattern::<u32>().unwrap();
    let dmask = DeviceBitMask::upload(gpu, mask).unwrap();
    assert_eq!(&dmask.download(gpu).unwrap(), mask, "{dev}: mask round trip");
    let got = mask_to_csr(gpu, &dmask).unwrap_or_else(|e| panic!("{dev}: {}x{}: {e}", mask.rows(), mask.cols()));
    assert_eq!((got.rows(), got.cols(), got.nnz()), (mask.rows(), mask.cols(), expect.nnz()), "{dev}");
    assert_eq!(got.download(gpu).unwrap(), expect, "{dev}: {}x{} nnz {}", mask.rows(), mask.cols(), expect.nnz());
    // The longest row: read back for a pattern the device made, known at upload for one from the host.
    let longest = (0..expect.rows()).map(|r| expect.row_range(r).len()).max().unwrap_or(0);
    assert_eq!(got.max_row_len(gpu).unwrap(), longest, "{dev}: max_row_len of the device-made pattern");
    assert_eq!(got.max_row_len(gpu).unwrap(), longest, "{dev}: max_row_len, kept");
    assert_eq!(DeviceCsrPattern::upload(gpu, &expect).unwrap().max_row_len(gpu).unwrap(), longest, "{dev}: uploaded");
}

#[test]
fn mask_to_csr_matches_cpu_on_random_masks() {
    let mut rng = rng("mask_to_csr");
    for (dev, gpu) in devices("mask_to_csr") {
        for case in 0..12 {
            let rows = rng.gen_range(1..90);
            let cols = rng.gen_range(1..200);
            let density = [0.0, 1.0, rng.gen_range(0.0..1.0), rng.gen_range(0.0..0.1)][case % 4];
            let mask = random_mask(&mut rng, rows, cols, density, case % 3 == 0);
            check(&gpu, &dev, &mask);
        }
    }
}

/// Rows longer than the 2048 columns a warp loads at once (cuda/mask.cu row_columns): chunk edges at and around
/// 2048, a partial last chunk, LLaMA widths, widths that start every row mid-word, densities 0 to 1, skewed rows.
#[test]
fn mask_to_csr_matches_cpu_on_rows_longer_than_a_warp_chunk() {
    let mut rng = rng("mask_to_csr_long_rows");
    for (dev, gpu) in devices("mask_to_csr_long_rows") {
        for (case, cols) in [2047usize, 2048, 2049, 4096, 5461, 64 * 33 + 5, 11008, rng.gen_range(2050..9000)].into_iter().enumerate() {
            let rows = rng.gen_range(1..7);
            let density = [0.0, 1.0, rng.gen_range(0.0..1.0), rng.gen_range(0.0..0.05)][case % 4];
            check(&gpu, &dev, &random_mask(&mut rng, rows, cols, density, case % 3 == 1));
        }
    }
}

#[test]
fn mask_to_csr_handles_empty_single_row_and_more_rows_than_scan_threads() {
    let mut rng = rng("mask_to_csr_edges");
    for (dev, gpu) in devices("mask_to_csr_edges") {
        check(&gpu, &dev, &BitMask::zeros(0, 0));
        check(&gpu, &dev, &BitMask::zeros(0, 17));
        check(&gpu, &dev, &BitMask::zeros(5, 0));
        check(&gpu, &dev, &BitMask::zeros(7, 33));
        check(&gpu, &dev, &random_mask(&mut rng, 1, 5000, 0.3, false));
        // 2500 rows: the scan's 1024 threads each take a chunk of 3 rows (the last ones none).
        check(&gpu, &dev, &random_mask(&mut rng, 2500, 3, 0.4, false));
        // 20000 rows: more than one scan tile (8192), so the multi-block scan runs, with a partial last tile.
        check(&gpu, &dev, &random_mask(&mut rng, 20000, 2, 0.5, false));
    }
}

#[test]
fn a_mask_too_large_to_address_or_allocate_is_an_error_not_a_panic() {
    assert!(matches!(BitMask::try_zeros(usize::MAX, 2), Err(Error::WorkspaceTooLarge { .. })));
    // 2^62 bits = 2^59 bytes: no machine allocates that.
    assert!(matches!(BitMask::try_zeros(1 << 31, 1 << 31), Err(Error::WorkspaceTooLarge { .. })));
    let m = BitMask::try_zeros(3, 70).unwrap();
    assert_eq!(m, BitMask::zeros(3, 70));
    assert_eq!(m.count_ones(), 0);
}

/// The multi-tile scan (more than 8192 counts) sums each tile in 64 bits and saturates it at u32::MAX, so the total
/// is exact below u32::MAX and at least u32::MAX above (its tile sums wrapped until 2026-11-29: a mask of more than
/// 2^32 set bits could report a count that fit, with wrong offsets). Random counts below the top agree with the
/// host's prefix sums; tiles holding 2^32 or more, alone or with others, give a total of at least u32::MAX.
#[test]
fn the_scan_is_exact_below_u32_max_and_saturates_above() {
    use sparse_lowrank::mask::exclusive_scan_for_tests as scan;
    let mut rng = rng("scan_saturates");
    for (dev, gpu) in devices("scan_saturates") {
        for &n in &[100usize, 8192, 8193, 20000, 8192 * 9 + 5] {
            let counts: Vec<u32> = (0..n).map(|_| rng.gen_range(0..1 << 16)).collect();
            let (offsets, total) = scan(&gpu, &counts).unwrap();
            let mut run = 0u64;
            for (i, &c) in counts.iter().enumerate() {
                assert_eq!(offsets[i], run as u32, "{dev}: n {n}, offset {i}");
                run += c as u64;
            }
            assert_eq!((offsets[n], total), (run as u32, run), "{dev}: n {n}");
            // Two counts of 2^31 in one tile (its sum 2^32: wrapped to 0 before), in the first, a middle or the last
            // tile, with or without a third count elsewhere.
            for at in [0, n / 2, n - 2] {
                let mut big = counts.iter().map(|_| 0u32).collect::<Vec<_>>();
                big[at] = 1 << 31;
                big[at + 1] = 1 << 31;
                let (_, total) = scan(&gpu, &big).unwrap();
                assert!(total >= u32::MAX as u64, "{dev}: n {n}, 2^32 at {at}: total {total}");
                big[rng.gen_range(0..n)] += 5;
                let (_, total) = scan(&gpu, &big).unwrap();
                assert!(total >= u32::MAX as u64, "{dev}: n {n}, 2^32 + 5 at {at}: total {total}");
            }
            // Just below the top: exact.
            let mut near = vec![0u32; n];
            near[0] = u32::MAX - 7;
            near[n - 1] = 6;
            assert_eq!(scan(&gpu, &near).unwrap().1, u32::MAX as u64 - 1, "{dev}: n {n}");
        }
    }
}

/// Rows or columns beyond what the kernels count in 32 bits (they walk a row 2048 columns at a time) are refused
/// before anything runs, even for a mask with no bits.
#[test]
fn mask_sizes_beyond_the_kernels_counters_are_refused() {
    for (dev, gpu) in devices("mask_too_large") {
        for (rows, cols, what) in [(0, KERNEL_COUNT_MAX + 1, "cols"), (KERNEL_COUNT_MAX + 1, 0, "rows"), (0, u32::MAX as usize, "cols")] {
            let mask = DeviceBitMask::upload(&gpu, &BitMask::try_zeros(rows, cols).unwrap()).unwrap();
            let Err(e) = mask_to_csr(&gpu, &mask) else { panic!("{dev}: {rows}x{cols} accepted") };
            assert_eq!(e, Error::TooLarge { op: "mask_to_csr", what, value: rows.max(cols), max: KERNEL_COUNT_MAX }, "{dev}");
        }
        let mask = DeviceBitMask::upload(&gpu, &BitMask::try_zeros(0, KERNEL_COUNT_MAX).unwrap()).unwrap();
        assert_eq!(mask_to_csr(&gpu, &mask).unwrap().nnz(), 0, "{dev}");
    }
}

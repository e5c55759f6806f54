//! CSR transpose: the CPU reference against an independent one (the swapped triplets sorted by `Csr::from_coo`),
//! then the device (`csr_transpose` + `transpose_values`) against the CPU reference with zero tolerance — pattern,
//! `perm` and values — on every device present (a real GPU when there is one; the SIMT emulator under several
//! schedules with the `emulator` feature). Shapes are random (mostly widths that are not multiples of 64, so rows
//! of Sᵀ start mid-word) with densities from 0 to 1 and power-law rows, plus the edges: empty matrix, 0 rows,
//! 0 columns, one row, one column, full density, a mask ending exactly at a word boundary, and more mask words
//! than the scan block has threads.
mod common;
use common::*;
use half::{bf16, f16};
use rand::prelude::*;
use sparse_lowrank::*;

/// Every position of a `rows x cols` matrix.
fn full_pattern(rows: usize, cols: usize) -> CsrPattern<u32> {
    let positions: Vec<(usize, usize)> = (0..rows * cols).map(|i| (i / cols, i % cols)).collect();
    CsrPattern::from_coo(rows, cols, &positions).unwrap()
}

fn random_shape_pattern(rng: &mut StdRng, max_dim: usize) -> CsrPattern<u32> {
    let rows = rng.gen_range(0..=max_dim);
    let cols = rng.gen_range(0..=max_dim);
    let density = match rng.gen_range(0..6) {
        0 => 0.0,
        1 => 1.0,
        2 => rng.gen_range(0.0..0.05),
        _ => rng.gen_range(0.0..1.0),
    };
    let skewed = rng.gen_bool(0.4);
    random_pattern(rng, rows, cols, density, skewed)
}

#[test]
fn csr_transpose_cpu_matches_the_sorted_swapped_triplets() {
    let mut rng = rng("csr_transpose_cpu");
    for case in 0..60 {
        let s = random_shape_pattern(&mut rng, 90);
        let values: Vec<f32> = random_values(&mut rng, s.nnz());
        let csr = Csr::new(s.clone(), values.clone()).unwrap();
        let swapped: Vec<(usize, usize, f32)> = s.iter().map(|(e, r, c)| (c, r, values[e])).collect();
        let expect = Csr::<f32, u32>::from_coo(s.cols(), s.rows(), &swapped).unwrap();
        let got = csr_transpose_cpu(&csr);
        assert_eq!(got, expect, "case {case}: {}x{} nnz {}", s.rows(), s.cols(), s.nnz());
        // perm[e] is where entry e = (r, c) of S sits in Sᵀ: row c, column r.
        let (t, perm) = csr_transpose_pattern_cpu(&s);
        assert_eq!(&t, got.pattern());
        for (e, r, c) in s.iter() {
            let p = perm[e] as usize;
            assert!(t.row_range(c).contains(&p), "case {case}: perm[{e}] = {p} is not in row {c} of Sᵀ");
            assert_eq!(t.col_indices()[p] as usize, r, "case {case}: entry {e}");
        }
    }
}

#[test]
fn transposing_twice_on_the_cpu_gives_back_s() {
    let mut rng = rng("csr_transpose_cpu_twice");
    for _ in 0..30 {
        let s = random_shape_pattern(&mut rng, 70);
        let values: Vec<bf16> = random_values(&mut rng, s.nnz());
        let csr = Csr::new(s, values).unwrap();
        assert_eq!(csr_transpose_cpu(&csr_transpose_cpu(&csr)), csr);
    }
}

/// One pattern on one device: csr_transpose and transpose_values against the CPU reference, exactly.
fn check_transpose<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, s: &CsrPattern<u32>) {
    let what = format!("{dev}: {}x{} nnz {} {}", s.rows(), s.cols(), s.nnz(), T::DTYPE.name());
    let values: Vec<T> = random_values(rng, s.nnz());
    let expect = csr_transpose_cpu(&Csr::new(s.clone(), values.clone()).unwrap());
    let (expect_pattern, expect_perm) = csr_transpose_pattern_cpu(s);

    let ds = DeviceCsrPattern::upload(gpu, s).unwrap();
    let t = csr_transpose(gpu, &ds).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!((t.pattern().rows(), t.pattern().cols(), t.nnz()), (s.cols(), s.rows(), s.nnz()), "{what}");
    // download re-validates the pattern on the host (offsets, strictly increasing columns).
    let (got_pattern, got_perm) = t.download(gpu).unwrap_or_else(|e| panic!("{what}: invalid Sᵀ: {e}"));
    assert_eq!(got_pattern, expect_pattern, "{what}: pattern of Sᵀ");
    assert_eq!(got_perm, expect_perm, "{what}: perm");

    // The output starts NaN-poisoned, so an entry the kernel skipped shows.
    let d_values = gpu.upload(&values).unwrap();
    let mut d_out = gpu.upload(&vec![T::from_f32(f32::NAN); s.nnz()]).unwrap();
    transpose_values(gpu, &t, &d_values, &mut d_out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = gpu.download(&d_out).unwrap();
    assert!(got.iter().zip(expect.values()).all(|(a, b)| same_bits(*a, *b)), "{what}: transposed values differ");
}

fn run_property<T: Element>(test: &str, cases: usize, max_dim: usize) {
    let mut rng = rng(test);
    for (dev, gpu) in devices(test) {
        for _ in 0..cases {
            let s = random_shape_pattern(&mut rng, max_dim);
            check_transpose::<T>(&gpu, &dev, &mut rng, &s);
        }
    }
}

#[test]
fn csr_transpose_matches_cpu_exactly_on_random_patterns_f32() {
    run_property::<f32>("csr_transpose_f32", 10, 150);
}

#[test]
fn csr_transpose_matches_cpu_exactly_on_random_patterns_f16() {
    run_property::<f16>("csr_transpose_f16", 6, 150);
}

#[test]
fn csr_transpose_matches_cpu_exactly_on_random_patterns_bf16() {
    run_property::<bf16>("csr_transpose_bf16", 6, 150);
}

#[test]
fn csr_transpose_matches_cpu_on_edge_shapes() {
    let mut rng = rng("csr_transpose_edges");
    for (dev, gpu) in devices("csr_transpose_edges") {
        let mut cases = vec![
            CsrPattern::empty(0, 0).unwrap(),
            CsrPattern::empty(0, 5).unwrap(),
            CsrPattern::empty(5, 0).unwrap(),
            CsrPattern::empty(7, 33).unwrap(),
            // One row / one column, more entries than a block has threads.
            full_pattern(1, 300),
            full_pattern(300, 1),
            random_pattern(&mut rng, 1, 257, 0.5, false),
            random_pattern(&mut rng, 257, 1, 0.5, false),
            // Full density; 64 x 64 ends exactly at a word boundary (the end offset reads no word), 65 x 67 does not.
            full_pattern(64, 64),
            full_pattern(65, 67),
            full_pattern(3, 5),
            // Rows of S shorter than, equal to and longer than a word: rows of Sᵀ start mid-word.
            random_pattern(&mut rng, 63, 130, 0.3, false),
            random_pattern(&mut rng, 100, 3, 0.6, false),
            // Power-law row lengths: a few rows hold most entries.
            random_pattern(&mut rng, 200, 90, 0.05, true),
            // 1205 mask words: every thread of the scan block has a chunk.
            random_pattern(&mut rng, 257, 300, 0.02, false),
            // 8594 mask words: more than one scan tile (8192), so the multi-block scan ranks the bits.
            random_pattern(&mut rng, 1100, 500, 0.01, false),
        ];
        // Empty rows and columns in the middle: one entry at each corner of a 40 x 50 matrix.
        cases.push(CsrPattern::from_coo(40, 50, &[(0, 0), (0, 49), (39, 0), (39, 49)]).unwrap());
        for s in &cases {
            check_transpose::<f32>(&gpu, &dev, &mut rng, s);
        }
    }
}

#[test]
fn transposing_twice_on_the_device_gives_back_s_and_the_perms_compose_to_the_identity() {
    let mut rng = rng("csr_transpose_twice");
    for (dev, gpu) in devices("csr_transpose_twice") {
        for _ in 0..5 {
            let s = random_shape_pattern(&mut rng, 120);
            let ds = DeviceCsrPattern::upload(&gpu, &s).unwrap();
            let t = csr_transpose(&gpu, &ds).unwrap();
            let tt = csr_transpose(&gpu, t.pattern()).unwrap();
            let (back, perm_tt) = tt.download(&gpu).unwrap();
            assert_eq!(back, s, "{dev}: (Sᵀ)ᵀ != S");
            let (_, perm_t) = t.download(&gpu).unwrap();
            assert!((0..s.nnz()).all(|e| perm_tt[perm_t[e] as usize] as usize == e), "{dev}: perms do not compose to the identity");

            // And the values come back bitwise.
            let values: Vec<f16> = random_values(&mut rng, s.nnz());
            let dv = gpu.upload(&values).unwrap();
            let mut dv_t = gpu.alloc_zeros::<f16>(s.nnz()).unwrap();
            let mut dv_tt = gpu.alloc_zeros::<f16>(s.nnz()).unwrap();
            transpose_values(&gpu, &t, &dv, &mut dv_t).unwrap();
            transpose_values(&gpu, &tt, &dv_t, &mut dv_tt).unwrap();
            assert_eq!(gpu.download(&dv_tt).unwrap(), values, "{dev}: values of (Sᵀ)ᵀ");
        }
    }
}

#[test]
fn transpose_values_rejects_length_mismatches_and_leaves_out_untouched() {
    for (dev, gpu) in devices("transpose_values_bad_input") {
        let s = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (0, 2), (1, 1)]).unwrap();
        let t = csr_transpose(&gpu, &DeviceCsrPattern::upload(&gpu, &s).unwrap()).unwrap();
        let mut out = gpu.upload(&[7f32; 3]).unwrap();

        let short = gpu.upload(&[1f32; 2]).unwrap();
        let e = transpose_values(&gpu, &t, &short, &mut out).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "transpose_values", what: "values", expected: 3, got: 2 }, "{dev}");

        let values = gpu.upload(&[1f32, 2.0, 3.0]).unwrap();
        let mut long = gpu.upload(&[7f32; 4]).unwrap();
        let e = transpose_values(&gpu, &t, &values, &mut long).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "transpose_values", what: "out", expected: 3, got: 4 }, "{dev}");
        let e = transpose_values(&gpu, &t, &values, out.slice_mut(0..2)).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "transpose_values", what: "out", expected: 3, got: 2 }, "{dev}");

        assert_eq!(gpu.download(&out).unwrap(), vec![7.0; 3], "{dev}: out untouched");
        assert_eq!(gpu.download(&long).unwrap(), vec![7.0; 4], "{dev}: out untouched");
        // The good call still works afterwards.
        transpose_values(&gpu, &t, &values, &mut out).unwrap();
        assert_eq!(gpu.download(&out).unwrap(), vec![1.0, 3.0, 2.0], "{dev}");
    }
}

#[test]
fn csr_transpose_refuses_a_mask_over_the_size_limit_with_a_typed_error() {
    for (dev, gpu) in devices("csr_transpose_too_large") {
        // 2^17 x (2^16 + 1): just over 2^33 bits.
        let s = CsrPattern::<u32>::from_coo(1 << 17, (1 << 16) + 1, &[(5, 7)]).unwrap();
        let e = csr_transpose(&gpu, &DeviceCsrPattern::upload(&gpu, &s).unwrap()).err().expect("over the limit");
        assert!(
            matches!(e, Error::WorkspaceTooLarge { op: "csr_transpose", bytes, max, .. } if bytes > max && max == csr_transpose::MAX_MASK_BITS / 8),
            "{dev}: {e:?}"
        );
        // Exactly 2^33 bits is within the limit (no entries: nothing to mark, so this stays cheap).
        let s = CsrPattern::<u32>::empty(1 << 17, 1 << 16).unwrap();
        let t = csr_transpose(&gpu, &DeviceCsrPattern::upload(&gpu, &s).unwrap()).unwrap();
        assert_eq!((t.pattern().rows(), t.pattern().cols(), t.nnz()), (1 << 16, 1 << 17, 0), "{dev}");
    }
}

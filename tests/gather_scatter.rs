//! gather / scatter_add: CPU references against naive loops, and GPU-vs-CPU properties on every device present
//! (a real GPU when there is one; the SIMT emulator under several schedules with the `emulator` feature).
//! Both ops move values without arithmetic (gather) or with one f32 FMA and one rounding (scatter_add), so the
//! device must agree with the CPU reference bitwise: the tolerance is zero.
mod common;
use common::*;
use half::{bf16, f16};
use rand::prelude::*;
use sparse_lowrank::*;

/// Naive gather: scan every dense position, pick those in the pattern.
fn naive_gather<T: Element>(pattern: &CsrPattern<u32>, dense: &[T], shape: DenseShape) -> Vec<T> {
    let mask = BitMask::from_pattern(pattern);
    let mut out = Vec::new();
    for r in 0..shape.rows {
        for c in 0..shape.cols {
            if mask.get(r, c) {
                out.push(dense[shape.offset(r, c)]);
            }
        }
    }
    out
}

#[test]
fn gather_cpu_matches_naive_loop_for_random_patterns_and_layouts() {
    let mut rng = rng("gather_cpu");
    for case in 0..40 {
        let (rows, cols) = (rng.gen_range(0..40), rng.gen_range(0..40));
        let layout = if case % 2 == 0 { Layout::RowMajor } else { Layout::ColMajor };
        let shape = DenseShape { rows, cols, ld: DenseShape::packed(rows, cols, layout).ld + rng.gen_range(0..3), layout };
        let density = rng.gen_range(0.0..1.0);
        let pattern = random_pattern(&mut rng, rows, cols, density, case % 3 == 0);
        let dense: Vec<f32> = random_values(&mut rng, shape.required_len());
        let mut out = vec![f32::NAN; pattern.nnz()];
        gather_cpu(&pattern, MatRef::new(&dense, rows, cols, shape.ld, layout).unwrap(), &mut out).unwrap();
        assert_eq!(out, naive_gather(&pattern, &dense, shape), "case {case}");
    }
}

#[test]
fn scatter_add_cpu_rounds_f32_delta_into_bf16_once() {
    // w = 1.0, delta = 3 * 2^-10 applied once with alpha = 2: exact f32 sum 1 + 1.5 * 2^-8 rounds to 1 + 2^-7.
    let pattern = CsrPattern::<u32>::from_coo(1, 2, &[(0, 1)]).unwrap();
    let mut w = vec![bf16::from_f32(0.25), bf16::from_f32(1.0)];
    scatter_add_cpu(&pattern, &[3.0f32 / 1024.0], 2.0, MatMut::row_major(&mut w, 1, 2).unwrap()).unwrap();
    assert_eq!(w, vec![bf16::from_f32(0.25), bf16::from_f32(1.0 + 1.0 / 128.0)]);
}

#[test]
fn scatter_add_cpu_matches_naive_loop_and_leaves_other_entries_alone() {
    let mut rng = rng("scatter_add_cpu");
    for case in 0..40 {
        let (rows, cols) = (rng.gen_range(0..30), rng.gen_range(0..30));
        let layout = if case % 2 == 0 { Layout::RowMajor } else { Layout::ColMajor };
        let density = rng.gen_range(0.0..1.0);
        let pattern = random_pattern(&mut rng, rows, cols, density, case % 3 == 0);
        let w0: Vec<f32> = random_values(&mut rng, rows * cols);
        let delta: Vec<f32> = random_values(&mut rng, pattern.nnz());
        let alpha = rng.gen_range(-3.0f32..3.0);
        let mut w = w0.clone();
        let shape = DenseShape::packed(rows, cols, layout);
        scatter_add_cpu(&pattern, &delta, alpha, MatMut::new(&mut w, rows, cols, shape.ld, layout).unwrap()).unwrap();
        let mask = BitMask::from_pattern(&pattern);
        let mut e = 0;
        for r in 0..rows {
            for c in 0..cols {
                let o = shape.offset(r, c);
                if mask.get(r, c) {
                    assert_eq!(w[o], alpha.mul_add(delta[e], w0[o]), "case {case} ({r},{c})");
                    e += 1;
                } else {
                    assert_eq!(w[o].to_bits(), w0[o].to_bits(), "case {case}: untouched ({r},{c})");
                }
            }
        }
    }
}

#[test]
fn cpu_ops_reject_mismatched_shapes_and_lengths_without_touching_outputs() {
    let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
    let dense = vec![1f32; 12];
    let mut out = vec![7f32; 2];
    let err = gather_cpu(&pattern, MatRef::row_major(&dense, 3, 4).unwrap(), &mut out).unwrap_err();
    assert_eq!(err, Error::ShapeMismatch { op: "gather_cpu", what: "dense", expected: (2, 3), got: (3, 4) });
    let mut short = vec![7f32; 1];
    assert!(matches!(gather_cpu(&pattern, MatRef::row_major(&dense[..6], 2, 3).unwrap(), &mut short), Err(Error::LengthMismatch { expected: 2, got: 1, .. })));
    assert_eq!(out, vec![7.0, 7.0]);
    let mut w = vec![1f32; 6];
    assert!(matches!(
        scatter_add_cpu(&pattern, &[1.0f32], 1.0, MatMut::row_major(&mut w, 2, 3).unwrap()),
        Err(Error::LengthMismatch { what: "values", .. })
    ));
    assert_eq!(w, vec![1.0; 6]);
}

/// One random case on one device: gather and scatter_add against the CPU reference, bitwise.
fn check_case<TW, TV>(gpu: &Gpu, dev: &str, rng: &mut StdRng, max_dim: usize) -> Result<()>
where
    TW: Element,
    TV: ScatterDelta<TW>,
{
    let rows = rng.gen_range(0..=max_dim);
    let cols = rng.gen_range(0..=max_dim);
    let layout = if rng.gen_bool(0.5) { Layout::RowMajor } else { Layout::ColMajor };
    let ld = DenseShape::packed(rows, cols, layout).ld + if rng.gen_bool(0.3) { rng.gen_range(1..5) } else { 0 };
    let shape = DenseShape { rows, cols, ld, layout };
    let density = match rng.gen_range(0..5) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(0.0..1.0),
    };
    let skewed = rng.gen_bool(0.4);
    let pattern = random_pattern(rng, rows, cols, density, skewed);
    if std::env::var("SLR_TEST_VERBOSE").is_ok() {
        eprintln!("case on {dev}: {rows}x{cols} nnz={}", pattern.nnz());
    }
    let what = format!("{dev}: {rows}x{cols} {layout:?} ld={ld} nnz={} {}<-{}", pattern.nnz(), TW::DTYPE.name(), TV::DTYPE.name());

    let dense: Vec<TW> = random_values(rng, shape.required_len());
    let dpat = DeviceCsrPattern::upload(gpu, &pattern)?;
    assert_eq!(dpat.download(gpu)?, pattern, "{what}: pattern round trip");

    // gather; the output starts NaN-poisoned so an entry the kernel skipped shows.
    let mut expect = vec![TW::from_f32(f32::NAN); pattern.nnz()];
    gather_cpu(&pattern, MatRef::new(&dense, rows, cols, ld, layout)?, &mut expect)?;
    let d_dense = gpu.upload(&dense)?;
    let mut d_out = gpu.upload(&vec![TW::from_f32(f32::NAN); pattern.nnz()])?;
    gather(gpu, &dpat, DeviceMatRef::new(&d_dense, rows, cols, ld, layout)?, &mut d_out)?;
    let got = gpu.download(&d_out)?;
    assert!(got.iter().zip(&expect).all(|(a, b)| same_bits(*a, *b)), "{what}: gather differs");

    // scatter_add, with padding between rows/columns (ld > inner) that must stay untouched.
    let delta: Vec<TV> = random_values(rng, pattern.nnz());
    let alpha = rng.gen_range(-2.0f32..2.0);
    let mut expect_w = dense.clone();
    scatter_add_cpu(&pattern, &delta, alpha, MatMut::new(&mut expect_w, rows, cols, ld, layout)?)?;
    let d_delta = gpu.upload(&delta)?;
    let mut d_w = gpu.upload(&dense)?;
    scatter_add(gpu, &dpat, &d_delta, alpha, DeviceMatMut::new(&mut d_w, rows, cols, ld, layout)?)?;
    let got_w = gpu.download(&d_w)?;
    assert!(got_w.iter().zip(&expect_w).all(|(a, b)| same_bits(*a, *b)), "{what}: scatter_add differs");
    Ok(())
}

fn run_property<TW: Element, TV: ScatterDelta<TW>>(test: &str, cases: usize, max_dim: usize) {
    let mut rng = rng(test);
    for (dev, gpu) in devices(test) {
        for _ in 0..cases {
            check_case::<TW, TV>(&gpu, &dev, &mut rng, max_dim).unwrap();
        }
    }
}

#[test]
fn gather_and_scatter_add_match_cpu_bitwise_f32() {
    run_property::<f32, f32>("f32", 12, 70);
}

#[test]
fn gather_and_scatter_add_match_cpu_bitwise_f16() {
    run_property::<f16, f16>("f16", 8, 70);
}

#[test]
fn gather_and_scatter_add_match_cpu_bitwise_f16_with_f32_delta() {
    run_property::<f16, f32>("f16<-f32", 8, 70);
}

#[test]
fn gather_and_scatter_add_match_cpu_bitwise_bf16() {
    run_property::<bf16, bf16>("bf16", 8, 70);
}

#[test]
fn gather_and_scatter_add_match_cpu_bitwise_bf16_with_f32_delta() {
    run_property::<bf16, f32>("bf16<-f32", 8, 70);
}

#[test]
fn single_row_and_full_row_of_300_columns_match_cpu() {
    let mut rng = rng("single_row");
    for (dev, gpu) in devices("single_row") {
        // One row spanning more than one block of 256 threads.
        let pattern = random_pattern(&mut rng, 1, 300, 1.0, false);
        let pattern = if pattern.nnz() == 0 { CsrPattern::from_coo(1, 300, &(0..300).map(|c| (0, c)).collect::<Vec<_>>()).unwrap() } else { pattern };
        let dense: Vec<f32> = random_values(&mut rng, 300);
        let mut expect = vec![0f32; pattern.nnz()];
        gather_cpu(&pattern, MatRef::row_major(&dense, 1, 300).unwrap(), &mut expect).unwrap();
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let dd = gpu.upload(&dense).unwrap();
        let mut out = gpu.alloc_zeros::<f32>(pattern.nnz()).unwrap();
        gather(&gpu, &dpat, DeviceMatRef::row_major(&dd, 1, 300).unwrap(), &mut out).unwrap();
        assert_eq!(gpu.download(&out).unwrap(), expect, "{dev}");
    }
}

#[test]
fn blocks_spanning_hundreds_of_rows_and_runs_of_empty_rows_match_cpu() {
    // A block covers 1024 entries; with ~0.2-2 entries per row its entries span hundreds to thousands of rows:
    // the rows' offsets no longer fit the 256 staged in shared memory and each thread searches global memory, and
    // the two warps' 32-way searches over thousands of rows run several rounds. Runs of empty rows (the pattern's
    // rows drawn in bands) and a few dense rows in between exercise the search's handling of equal offsets.
    let mut rng = rng("wide_spans");
    for (dev, gpu) in devices("wide_spans") {
        for _ in 0..4 {
            let (rows, cols) = (rng.gen_range(1500..6000), rng.gen_range(8..48));
            let mut coo = Vec::new();
            let mut r = 0;
            while r < rows {
                let band = rng.gen_range(1..200).min(rows - r);
                let per_row = match rng.gen_range(0..4) {
                    0 => 0.0,                       // a run of empty rows
                    1 => cols as f64,               // dense rows
                    _ => rng.gen_range(0.05..1.5), // sparse rows
                };
                for rr in r..r + band {
                    for c in 0..cols {
                        if rng.gen_bool((per_row / cols as f64).min(1.0)) {
                            coo.push((rr, c));
                        }
                    }
                }
                r += band;
            }
            let pattern = CsrPattern::<u32>::from_coo(rows, cols, &coo).unwrap();
            let dense: Vec<bf16> = random_values(&mut rng, rows * cols);
            let what = format!("{dev}: {rows}x{cols} nnz={}", pattern.nnz());
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let mut expect = vec![bf16::from_f32(f32::NAN); pattern.nnz()];
            gather_cpu(&pattern, MatRef::row_major(&dense, rows, cols).unwrap(), &mut expect).unwrap();
            let dd = gpu.upload(&dense).unwrap();
            let mut out = gpu.upload(&vec![bf16::from_f32(f32::NAN); pattern.nnz()]).unwrap();
            gather(&gpu, &dpat, DeviceMatRef::row_major(&dd, rows, cols).unwrap(), &mut out).unwrap();
            let got = gpu.download(&out).unwrap();
            assert!(got.iter().zip(&expect).all(|(a, b)| same_bits(*a, *b)), "{what}: gather differs");
            let delta: Vec<f32> = random_values(&mut rng, pattern.nnz());
            let mut expect_w = dense.clone();
            scatter_add_cpu(&pattern, &delta, 0.75, MatMut::row_major(&mut expect_w, rows, cols).unwrap()).unwrap();
            let (d_delta, mut d_w) = (gpu.upload(&delta).unwrap(), gpu.upload(&dense).unwrap());
            scatter_add(&gpu, &dpat, &d_delta, 0.75, DeviceMatMut::row_major(&mut d_w, rows, cols).unwrap()).unwrap();
            let got_w = gpu.download(&d_w).unwrap();
            assert!(got_w.iter().zip(&expect_w).all(|(a, b)| same_bits(*a, *b)), "{what}: scatter_add differs");
        }
    }
}

#[test]
fn device_ops_reject_bad_input_and_launch_nothing() {
    for (dev, gpu) in devices("bad_input") {
        let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let dense = gpu.upload(&[1f32; 12]).unwrap();
        let mut out = gpu.upload(&[7f32; 2]).unwrap();
        let e = gather(&gpu, &dpat, DeviceMatRef::row_major(&dense, 3, 4).unwrap(), &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "gather", what: "dense", expected: (2, 3), got: (3, 4) }, "{dev}");
        let mut short = gpu.upload(&[7f32; 1]).unwrap();
        let e = gather(&gpu, &dpat, DeviceMatRef::row_major(dense.slice(0..6), 2, 3).unwrap(), &mut short).unwrap_err();
        assert!(matches!(e, Error::LengthMismatch { op: "gather", what: "out", expected: 2, got: 1 }), "{dev}: {e:?}");
        assert_eq!(gpu.download(&out).unwrap(), vec![7.0, 7.0], "{dev}: output untouched");
        // A dense view too short for its shape is refused when the view is made.
        assert!(matches!(DeviceMatRef::row_major(dense.slice(0..5), 2, 3), Err(Error::BufferTooSmall { needed: 6, got: 5, .. })));
        // A buffer whose bytes overflow (or exceed isize::MAX) is refused before any allocator sees it (cudarc
        // multiplies unchecked: 2^62 + 1 f32 gave a 4-byte buffer that reported 2^62 + 1 elements).
        for len in [usize::MAX, (1 << 62) + 1, 1 << 61] {
            assert!(matches!(gpu.alloc_zeros::<f32>(len), Err(Error::WorkspaceTooLarge { op: "alloc_zeros", .. })), "{dev}: {len}");
        }
        // So is one whose extent overflows usize (a huge ld: until 2026-11-29 taken as needing nothing, so a
        // scatter_add through it wrote before the buffer's start).
        assert!(matches!(DeviceMatRef::new(&dense, 2, 1, usize::MAX, Layout::RowMajor), Err(Error::BufferTooSmall { needed: usize::MAX, .. })), "{dev}");
        let mut w1 = gpu.upload(&[1f32; 1]).unwrap();
        assert!(matches!(DeviceMatMut::new(&mut w1, 2, 1, usize::MAX, Layout::RowMajor), Err(Error::BufferTooSmall { needed: usize::MAX, .. })), "{dev}");
        assert!(matches!(DeviceMatMut::new(&mut w1, 1, 3, usize::MAX / 2 + 1, Layout::ColMajor), Err(Error::BufferTooSmall { needed: usize::MAX, .. })), "{dev}");
        // scatter_add with the wrong number of values.
        let vals = gpu.upload(&[1f32; 3]).unwrap();
        let mut w = gpu.upload(&[1f32; 6]).unwrap();
        let e = scatter_add(&gpu, &dpat, &vals, 1.0, DeviceMatMut::row_major(&mut w, 2, 3).unwrap()).unwrap_err();
        assert!(matches!(e, Error::LengthMismatch { op: "scatter_add", what: "values", expected: 2, got: 3 }), "{dev}");
        assert_eq!(gpu.download(&w).unwrap(), vec![1.0; 6]);
        // Overlap between an output and an input cannot be built through the safe API (a &mut view excludes
        // every other borrow); the address-range guard behind it is unit-tested in src/device/mod.rs.
    }
}

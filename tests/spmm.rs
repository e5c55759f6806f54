//! SpMM against its CPU reference on every device: random shapes (ragged), densities 0 to 1, skewed row lengths,
//! empty rows, a single row, T = 1 (decode) and T = 0, both layouts, f32/f16/bf16, alpha/beta including beta = 0
//! over a NaN-poisoned output. spmm_sb must agree bitwise (same fmaf chain); spmm_xst within the reassociation
//! bound documented on it plus one rounding of the output type.
mod common;
use common::*;
use half::{bf16, f16};
use rand::prelude::*;
use sparse_lowrank::*;

/// Relative size of one rounding of T (an ulp at the value; two roundings of nearby f32 values can land one ulp
/// apart).
fn eps<T: Element>() -> f32 {
    match T::DTYPE {
        DType::F32 => 2f32.powi(-23),
        DType::F16 => 2f32.powi(-10),
        DType::BF16 => 2f32.powi(-7),
    }
}

fn random_layout(rng: &mut StdRng, rows: usize, cols: usize) -> DenseShape {
    let layout = if rng.gen_bool(0.7) { Layout::RowMajor } else { Layout::ColMajor };
    let ld = DenseShape::packed(rows, cols, layout).ld + if rng.gen_bool(0.25) { rng.gen_range(1..4) } else { 0 };
    DenseShape { rows, cols, ld, layout }
}

fn alpha_beta(rng: &mut StdRng) -> (f32, f32) {
    let alpha = rng.gen_range(-2.0f32..2.0);
    let beta = match rng.gen_range(0..3) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(-1.5f32..1.5),
    };
    (alpha, beta)
}

/// Output buffer for the device: with beta = 0 it is NaN-poisoned (must not leak), else random.
fn initial_output<T: Element>(rng: &mut StdRng, len: usize, beta: f32) -> Vec<T> {
    if beta == 0.0 {
        vec![T::from_f32(f32::NAN); len]
    } else {
        random_values(rng, len)
    }
}

fn check_xst<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, max_dim: usize) {
    let (out_dim, in_dim) = (rng.gen_range(0..=max_dim), rng.gen_range(0..=max_dim));
    // T = 0, 1, 2 take a decode kernel (a warp per row, or for skewed rows the block-shared one); 2 < T < 64 the transpose + 16-byte-load kernel (ldt = 8:
    // one lane per entry; 16: two; 24 .. 64: four, 32 t per warp, idle lanes past ldt); T >= 64 the transpose +
    // wide kernel (lanes across t, 128 per warp: one or two t-chunks here).
    let t = match rng.gen_range(0..6) {
        0 => 1,
        1 => rng.gen_range(0..3),
        2 => rng.gen_range(13..=63),
        3 => rng.gen_range(64..=140),
        _ => rng.gen_range(3..=12),
    };
    let density = [0.0, 1.0, rng.gen_range(0.0..1.0), rng.gen_range(0.0..0.1)][rng.gen_range(0..4)];
    let skewed = rng.gen_bool(0.4);
    check_xst_at::<T>(gpu, dev, rng, out_dim, in_dim, t, density, skewed);
}

#[allow(clippy::too_many_arguments)]
fn check_xst_at<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, out_dim: usize, in_dim: usize, t: usize, density: f64, skewed: bool) {
    let s = random_pattern(rng, out_dim, in_dim, density, skewed);
    let s_vals: Vec<T> = random_values(rng, s.nnz());
    let xs = random_layout(rng, t, in_dim);
    let ys = random_layout(rng, t, out_dim);
    let x: Vec<T> = random_values(rng, xs.required_len());
    let (alpha, beta) = alpha_beta(rng);
    let y0: Vec<T> = initial_output(rng, ys.required_len(), beta);
    let what = format!("{dev}: S {out_dim}x{in_dim} nnz {} T {t} {:?}/{:?} alpha {alpha} beta {beta} {}", s.nnz(), xs.layout, ys.layout, T::DTYPE.name());

    // The CPU reference gets the same (possibly NaN-poisoned) output: beta = 0 must not read it either.
    let mut expect = y0.clone();
    spmm_xst_cpu(&s, &s_vals, MatRef::new(&x, t, in_dim, xs.ld, xs.layout).unwrap(), alpha, beta, MatMut::new(&mut expect, t, out_dim, ys.ld, ys.layout).unwrap()).unwrap();

    let ds = DeviceCsrPattern::upload(gpu, &s).unwrap();
    let dv = gpu.upload(&s_vals).unwrap();
    let dx = gpu.upload(&x).unwrap();
    let run = || {
        let mut dy = gpu.upload(&y0).unwrap();
        spmm_xst(gpu, &ds, &dv, DeviceMatRef::new(&dx, t, in_dim, xs.ld, xs.layout).unwrap(), alpha, beta, DeviceMatMut::new(&mut dy, t, out_dim, ys.ld, ys.layout).unwrap()).unwrap();
        gpu.download(&dy).unwrap()
    };
    let got = run();
    assert!(got.iter().zip(run()).all(|(a, b)| same_bits(*a, b)), "{what}: two runs differ (not deterministic)");

    // The CUDA-core kernels' bound is 2 n u; the tensor-core kernel's additions are only "at least single
    // precision" (PTX ISA), so it gets three times the constant, as sddmm's tensor-core path does.
    let path = if spmm::spmm_xst_uses_tensor_cores::<T>(t, out_dim, in_dim, s.nnz()) { 3.0 } else { 2.0 };
    let cols = s.col_indices();
    for ti in 0..t {
        for o in 0..out_dim {
            let idx = ys.offset(ti, o);
            let mass: f32 = s.row_range(o).map(|e| (s_vals[e].to_f32() * x[xs.offset(ti, cols[e] as usize)].to_f32()).abs()).sum();
            let old = if beta == 0.0 { 0.0 } else { (beta * y0[idx].to_f32()).abs() };
            let n = s.row_range(o).len() as f32 + 1.0;
            let (g, e) = (got[idx].to_f32(), expect[idx].to_f32());
            let tol = path * n * 2f32.powi(-24) * (alpha.abs() * mass + old) + eps::<T>() * e.abs() + 1e-7;
            assert!(g.is_finite() && (g - e).abs() <= tol, "{what}: Y[{ti},{o}] = {g}, expected {e} (tol {tol})");
        }
    }
    // Padding between rows/columns of Y (ld > inner) is untouched.
    let mut touched = vec![false; ys.required_len()];
    for ti in 0..t {
        for o in 0..out_dim {
            touched[ys.offset(ti, o)] = true;
        }
    }
    for (i, (g, y)) in got.iter().zip(&y0).enumerate() {
        if !touched[i] {
            assert!(same_bits(*g, *y), "{what}: padding element {i} changed");
        }
    }
}

fn check_sb<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, max_dim: usize) {
    let (m, k) = (rng.gen_range(0..=max_dim), rng.gen_range(0..=max_dim));
    let n = [1, rng.gen_range(0..70), rng.gen_range(1..40)][rng.gen_range(0..3)];
    let density = [0.0, 1.0, rng.gen_range(0.0..1.0), rng.gen_range(0.0..0.1)][rng.gen_range(0..4)];
    let skewed = rng.gen_bool(0.4);
    check_sb_at::<T>(gpu, dev, rng, m, k, n, density, skewed);
}

#[allow(clippy::too_many_arguments)]
fn check_sb_at<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, m: usize, k: usize, n: usize, density: f64, skewed: bool) {
    let s = random_pattern(rng, m, k, density, skewed);
    let s_vals: Vec<T> = random_values(rng, s.nnz());
    let bs = random_layout(rng, k, n);
    let cs = random_layout(rng, m, n);
    let b: Vec<T> = random_values(rng, bs.required_len());
    let (alpha, beta) = alpha_beta(rng);
    let c0: Vec<T> = initial_output(rng, cs.required_len(), beta);
    let what = format!("{dev}: S {m}x{k} nnz {} n {n} {:?}/{:?} alpha {alpha} beta {beta} {}", s.nnz(), bs.layout, cs.layout, T::DTYPE.name());

    let mut expect = c0.clone();
    spmm_sb_cpu(&s, &s_vals, MatRef::new(&b, k, n, bs.ld, bs.layout).unwrap(), alpha, beta, MatMut::new(&mut expect, m, n, cs.ld, cs.layout).unwrap()).unwrap();
    let ds = DeviceCsrPattern::upload(gpu, &s).unwrap();
    let dv = gpu.upload(&s_vals).unwrap();
    let db = gpu.upload(&b).unwrap();
    let mut dc = gpu.upload(&c0).unwrap();
    spmm_sb(gpu, &ds, &dv, DeviceMatRef::new(&db, k, n, bs.ld, bs.layout).unwrap(), alpha, beta, DeviceMatMut::new(&mut dc, m, n, cs.ld, cs.layout).unwrap()).unwrap();
    let got = gpu.download(&dc).unwrap();
    if spmm::spmm_xst_uses_tensor_cores::<T>(n, m, k, s.nnz()) {
        // The tensor-core path (f16/bf16, n >= 64, >= 1% density): within three times the CUDA-core bound.
        let cols = s.col_indices();
        for r in 0..m {
            for j in 0..n {
                let idx = cs.offset(r, j);
                let mass: f32 = s.row_range(r).map(|e| (s_vals[e].to_f32() * b[bs.offset(cols[e] as usize, j)].to_f32()).abs()).sum();
                let old = if beta == 0.0 { 0.0 } else { (beta * c0[idx].to_f32()).abs() };
                let terms = s.row_range(r).len() as f32 + 1.0;
                let (g, e) = (got[idx].to_f32(), expect[idx].to_f32());
                let tol = 3.0 * terms * 2f32.powi(-24) * (alpha.abs() * mass + old) + eps::<T>() * e.abs() + 1e-7;
                assert!(g.is_finite() && (g - e).abs() <= tol, "{what}: C[{r},{j}] = {g}, expected {e} (tol {tol})");
            }
        }
    } else {
        for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
            assert!(same_bits(*g, *e), "{what}: element {i}: {g:?} vs CPU {e:?}");
        }
    }
    if beta == 0.0 {
        for r in 0..m {
            for j in 0..n {
                assert!(!got[cs.offset(r, j)].to_f32().is_nan(), "{what}: NaN leaked from the poisoned output");
            }
        }
    }
}

fn run<T: Element>(test: &str, cases: usize) {
    let mut rng = rng(test);
    for (dev, gpu) in devices(test) {
        for _ in 0..cases {
            check_xst::<T>(&gpu, &dev, &mut rng, 60);
            check_sb::<T>(&gpu, &dev, &mut rng, 60);
        }
    }
}

#[test]
fn spmm_matches_cpu_reference_f32() {
    run::<f32>("spmm_f32", 10);
}

#[test]
fn spmm_matches_cpu_reference_f16() {
    run::<f16>("spmm_f16", 6);
}

#[test]
fn spmm_matches_cpu_reference_bf16() {
    run::<bf16>("spmm_bf16", 6);
}

/// Decode (T <= 2) splits each 8-row group's entries over the block's 256 threads: a dense row of 5000 entries
/// (several rounds of every thread), a row of ~1500, empty rows and short ones, row counts not a multiple of 8,
/// against the CPU reference within the reassociation bound.
#[test]
fn decode_spmm_shares_long_rows_across_the_block() {
    let mut rng = rng("spmm_long_rows");
    for (dev, gpu) in devices("spmm_long_rows") {
        let (out_dim, in_dim) = (21, 5000);
        let mut positions = Vec::new();
        for r in 0..out_dim {
            let p = match r {
                3 => 1.0,
                9 => 0.3,
                r if r % 4 == 1 => 0.0,
                _ => 0.01,
            };
            for c in 0..in_dim {
                if rng.gen_bool(p) {
                    positions.push((r, c));
                }
            }
        }
        let s = CsrPattern::<u32>::from_coo(out_dim, in_dim, &positions).unwrap();
        let s_vals: Vec<f32> = random_values(&mut rng, s.nnz());
        for t in [1usize, 2] {
            let x: Vec<f32> = random_values(&mut rng, t * in_dim);
            let (alpha, beta) = alpha_beta(&mut rng);
            let y0: Vec<f32> = initial_output(&mut rng, t * out_dim, beta);
            let mut expect = y0.clone();
            spmm_xst_cpu(&s, &s_vals, MatRef::row_major(&x, t, in_dim).unwrap(), alpha, beta, MatMut::row_major(&mut expect, t, out_dim).unwrap()).unwrap();
            let (ds, dv, dx) = (DeviceCsrPattern::upload(&gpu, &s).unwrap(), gpu.upload(&s_vals).unwrap(), gpu.upload(&x).unwrap());
            let mut dy = gpu.upload(&y0).unwrap();
            spmm_xst(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), alpha, beta, DeviceMatMut::row_major(&mut dy, t, out_dim).unwrap()).unwrap();
            let got = gpu.download(&dy).unwrap();
            let cols = s.col_indices();
            for ti in 0..t {
                for o in 0..out_dim {
                    let mass: f32 = s.row_range(o).map(|e| (s_vals[e] * x[ti * in_dim + cols[e] as usize]).abs()).sum();
                    let old = if beta == 0.0 { 0.0 } else { (beta * y0[ti * out_dim + o]).abs() };
                    let n = s.row_range(o).len() as f32 + 1.0;
                    let tol = 2.0 * n * 2f32.powi(-24) * (alpha.abs() * mass + old) + 1e-7;
                    let (g, e) = (got[ti * out_dim + o], expect[ti * out_dim + o]);
                    assert!(g.is_finite() && (g - e).abs() <= tol, "{dev}: T {t} row {o} ({} entries): {g} vs {e} (tol {tol})", n - 1.0);
                }
            }
        }
    }
}

/// Every lane-group width of the vector kernel at its edges: T = 3..8 (one lane per entry), 9..16 (two), 17..63
/// (four lanes, 32 t per warp: ldt = 24 leaves a quarter of the lanes idle, 40 and 63 a second, partial t-chunk),
/// each dtype, uniform and skewed rows.
#[test]
fn spmm_xst_matches_cpu_for_every_lane_group_width() {
    let mut rng = rng("spmm_lane_groups");
    for (dev, gpu) in devices("spmm_lane_groups") {
        for t in [3usize, 8, 9, 16, 17, 24, 25, 32, 33, 40, 63] {
            let (out_dim, in_dim) = (rng.gen_range(1..60), rng.gen_range(1..400));
            let (density, skewed) = (rng.gen_range(0.02..0.3), rng.gen_bool(0.5));
            match t % 3 {
                0 => check_xst_at::<f32>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed),
                1 => check_xst_at::<f16>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed),
                _ => check_xst_at::<bf16>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed),
            }
        }
    }
}

/// Real layer widths (SLTrain's 1376, 2736, 5461 and LLaMA's 11008) are ragged for every vector width and tile:
/// forward and input backward shapes at 1-3% density, each kernel's T range, bf16.
#[test]
fn spmm_xst_matches_cpu_at_real_ragged_layer_widths() {
    let mut rng = rng("spmm_ragged_widths");
    for (dev, gpu) in devices("spmm_ragged_widths") {
        // (1376, 5461, 70) at 0.5%: the wide kernel; (1376, 200, 70) at 1-3%: the tensor-core kernel (kept short in
        // `in`: the emulator runs its dense-equivalent work).
        for (out_dim, in_dim, t) in [(1376, 2736, 1), (2736, 1376, 2), (5461, 1376, 5), (1376, 5461, 70), (1376, 200, 70), (11008, 64, 2), (64, 11008, 17)] {
            let density = if in_dim == 5461 { 0.005 } else { rng.gen_range(0.01..0.03) };
            let skewed = rng.gen_bool(0.5);
            check_xst_at::<bf16>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed);
        }
    }
}

/// From T = 64, where the wide kernel runs (f32; f16/bf16 below the tensor-core path's 1% density), each output of
/// spmm_xst is the CPU reference's own fmaf chain (entries in order, no butterfly): bitwise equal, across one and
/// two 128-row chunks of X, padding rows (T not a multiple of 8), skewed rows, both layouts, and beta = 0 over a
/// NaN-poisoned output.
#[test]
fn wide_t_spmm_xst_is_bitwise_the_cpu_reference() {
    fn case<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, t: usize) {
        let (s, out_dim, in_dim) = if T::DTYPE == DType::F32 {
            let (out_dim, in_dim) = (rng.gen_range(1..50), rng.gen_range(1..70));
            let (density, skewed) = (rng.gen_range(0.05..0.9), rng.gen_bool(0.5));
            (random_pattern(rng, out_dim, in_dim, density, skewed), out_dim, in_dim)
        } else {
            // Sparse enough for the wide kernel: fewer than one entry per 100 elements (redrawn until so).
            let (out_dim, in_dim) = (rng.gen_range(60..90), rng.gen_range(100..200));
            loop {
                let (density, skewed) = (rng.gen_range(0.001..0.008), rng.gen_bool(0.5));
                let s = random_pattern(rng, out_dim, in_dim, density, skewed);
                if !spmm::spmm_xst_uses_tensor_cores::<T>(t, out_dim, in_dim, s.nnz()) {
                    break (s, out_dim, in_dim);
                }
            }
        };
        assert!(!spmm::spmm_xst_uses_tensor_cores::<T>(t, out_dim, in_dim, s.nnz()));
        let s_vals: Vec<T> = random_values(rng, s.nnz());
        let (xs, ys) = (random_layout(rng, t, in_dim), random_layout(rng, t, out_dim));
        let x: Vec<T> = random_values(rng, xs.required_len());
        let (alpha, beta) = alpha_beta(rng);
        let y0: Vec<T> = initial_output(rng, ys.required_len(), beta);
        let mut expect = y0.clone();
        spmm_xst_cpu(&s, &s_vals, MatRef::new(&x, t, in_dim, xs.ld, xs.layout).unwrap(), alpha, beta, MatMut::new(&mut expect, t, out_dim, ys.ld, ys.layout).unwrap()).unwrap();
        let (ds, dv, dx) = (DeviceCsrPattern::upload(gpu, &s).unwrap(), gpu.upload(&s_vals).unwrap(), gpu.upload(&x).unwrap());
        let mut dy = gpu.upload(&y0).unwrap();
        spmm_xst(gpu, &ds, &dv, DeviceMatRef::new(&dx, t, in_dim, xs.ld, xs.layout).unwrap(), alpha, beta, DeviceMatMut::new(&mut dy, t, out_dim, ys.ld, ys.layout).unwrap()).unwrap();
        let got = gpu.download(&dy).unwrap();
        let bad = got.iter().zip(&expect).position(|(g, e)| !same_bits(*g, *e));
        assert!(bad.is_none(), "{dev}: T {t} S {out_dim}x{in_dim} nnz {} {}: element {bad:?} differs", s.nnz(), T::DTYPE.name());
    }
    if std::env::var_os("SLR_SPMM_PATH").is_some() {
        eprintln!("SLR_SPMM_PATH is set: the wide kernel is not in use, nothing to check bitwise");
        return;
    }
    let mut rng = rng("spmm_wide");
    for (dev, gpu) in devices("spmm_wide") {
        for t in [64, 128, 129, 200] {
            case::<f32>(&gpu, &dev, &mut rng, t);
            case::<bf16>(&gpu, &dev, &mut rng, t);
        }
    }
}

/// spmm_sb with narrow B runs the 32-column kernel with most lanes idle (the narrow lane-group kernel it had until
/// 2026-11-27 lost to it on an H200 at every n measured): at n = 1, 2, 4, 5, 8, 9, 16, 17, with uniform and skewed
/// rows, both layouts, every dtype, bitwise the CPU's fmaf chains.
#[test]
fn spmm_sb_with_narrow_b_is_bitwise_the_cpu_reference() {
    let mut rng = rng("spmm_sb_narrow");
    for (dev, gpu) in devices("spmm_sb_narrow") {
        for n in [1usize, 2, 4, 5, 8, 9, 16, 17] {
            let (m, k) = (rng.gen_range(1..70), rng.gen_range(1..200));
            let (density, skewed) = (rng.gen_range(0.01..0.4), rng.gen_bool(0.5));
            match n % 3 {
                0 => check_sb_at::<f32>(&gpu, &dev, &mut rng, m, k, n, density, skewed),
                1 => check_sb_at::<bf16>(&gpu, &dev, &mut rng, m, k, n, density, skewed),
                _ => check_sb_at::<f16>(&gpu, &dev, &mut rng, m, k, n, density, skewed),
            }
        }
    }
}

/// spmm_sb from n = 64 with row-major B whose rows are 16-byte aligned takes the wide kernel (4 columns per lane;
/// for f16/bf16 below the tensor-core path's 1% density): still bitwise the CPU reference's fmaf chains. One and two 128-column chunks, ld = n and ld padded to a
/// multiple of 8, a buffer that ends exactly at the last row's n-th element (no room for the padded vector: the
/// 32-column kernel then runs), B one element off a 16-byte boundary (the 32-column kernel too), C in both layouts,
/// beta = 0 over a NaN-poisoned C.
#[test]
fn spmm_sb_with_wide_b_is_bitwise_the_cpu_reference() {
    let mut rng = rng("spmm_sb_wide");
    for (dev, gpu) in devices("spmm_sb_wide") {
        // (n, ld, B's buffer ends right after its last row's n elements?): ld from n to well past round_up(n, 4),
        // as a column slice of a wider matrix has it (the kernel once read a lane's 4 elements wherever they were
        // below ld: past the buffer's end in B's last row).
        for (n, ld, full_last_row) in [(64, 64, true), (70, 72, true), (70, 72, false), (128, 136, true), (200, 200, true), (100, 128, false), (64, 96, false), (130, 200, false)] {
            // bf16 below the tensor-core path's 1% density (redrawn until so), where the wide kernel runs.
            let (m, k) = (rng.gen_range(60..90), rng.gen_range(100..200));
            let s = loop {
                let (density, skewed) = (rng.gen_range(0.001..0.008), rng.gen_bool(0.5));
                let s = random_pattern(&mut rng, m, k, density, skewed);
                // An entry in B's last row, whose reads end at the buffer's end.
                let mut positions: Vec<(usize, usize)> = s.iter().map(|(_, r, c)| (r, c)).collect();
                positions.push((rng.gen_range(0..m), k - 1));
                let s = CsrPattern::<u32>::from_coo(m, k, &positions).unwrap();
                if !spmm::spmm_xst_uses_tensor_cores::<bf16>(n, m, k, s.nnz()) {
                    break s;
                }
            };
            let s_vals: Vec<bf16> = random_values(&mut rng, s.nnz());
            let len = if full_last_row { k * ld } else { (k - 1) * ld + n };
            let b: Vec<bf16> = random_values(&mut rng, len);
            let (ds, dv) = (DeviceCsrPattern::upload(&gpu, &s).unwrap(), gpu.upload(&s_vals).unwrap());
            // B at the start of its buffer (16-byte aligned: the wide kernel), and one element in (2 bytes off a
            // 16-byte boundary: the 32-column kernel; the wide kernel's vector loads would fault on a GPU and, through
            // slr::load_vec, on the emulator).
            for offset in [0usize, 1] {
                let cs = random_layout(&mut rng, m, n);
                let (alpha, beta) = alpha_beta(&mut rng);
                let c0: Vec<bf16> = initial_output(&mut rng, cs.required_len(), beta);
                let mut expect = c0.clone();
                spmm_sb_cpu(&s, &s_vals, MatRef::new(&b, k, n, ld, Layout::RowMajor).unwrap(), alpha, beta, MatMut::new(&mut expect, m, n, cs.ld, cs.layout).unwrap()).unwrap();
                let mut placed: Vec<bf16> = random_values(&mut rng, offset);
                placed.extend_from_slice(&b);
                let db = gpu.upload(&placed).unwrap();
                let mut dc = gpu.upload(&c0).unwrap();
                spmm_sb(&gpu, &ds, &dv, DeviceMatRef::new(db.slice(offset..offset + b.len()), k, n, ld, Layout::RowMajor).unwrap(), alpha, beta, DeviceMatMut::new(&mut dc, m, n, cs.ld, cs.layout).unwrap()).unwrap();
                let got = gpu.download(&dc).unwrap();
                let bad = got.iter().zip(&expect).position(|(g, e)| !same_bits(*g, *e));
                assert!(bad.is_none(), "{dev}: n {n} ld {ld} full {full_last_row} offset {offset} S {m}x{k} C {:?}: element {bad:?} differs", cs.layout);
            }
        }
    }
}

/// The backward to the input, dX = dY * S, computed as spmm_xst with S^T, against a dense product on the CPU.
#[test]
fn backward_to_input_is_spmm_xst_with_the_transpose() {
    let mut rng = rng("spmm_backward");
    for (dev, gpu) in devices("spmm_backward") {
        let (out_dim, in_dim, t) = (37, 53, 5);
        let s = random_pattern(&mut rng, out_dim, in_dim, 0.2, true);
        let vals: Vec<f32> = random_values(&mut rng, s.nnz());
        // S^T on the host: (row, col) swapped, values carried along.
        let triplets: Vec<(usize, usize, f32)> = s.iter().map(|(e, r, c)| (c, r, vals[e])).collect();
        let st = Csr::<f32, u32>::from_coo(in_dim, out_dim, &triplets).unwrap();
        let dy: Vec<f32> = random_values(&mut rng, t * out_dim);
        // Dense reference: dX[t, i] = sum_o dY[t, o] S[o, i].
        let s_dense = Csr::new(s.clone(), vals.clone()).unwrap().to_dense(Layout::RowMajor);
        let mut expect = vec![0f32; t * in_dim];
        for ti in 0..t {
            for i in 0..in_dim {
                expect[ti * in_dim + i] = (0..out_dim).map(|o| dy[ti * out_dim + o] as f64 * s_dense[o * in_dim + i] as f64).sum::<f64>() as f32;
            }
        }
        let ddy = gpu.upload(&dy).unwrap();
        // S^T made on the host, and S^T made on the device by the CSR transpose: both give dX.
        let dst_host = DeviceCsrPattern::upload(&gpu, st.pattern()).unwrap();
        let dvals_host = gpu.upload(st.values()).unwrap();
        let ds = DeviceCsrPattern::upload(&gpu, &s).unwrap();
        let transpose = csr_transpose(&gpu, &ds).unwrap();
        let mut dvals_dev = gpu.alloc_zeros::<f32>(s.nnz()).unwrap();
        transpose_values(&gpu, &transpose, &gpu.upload(&vals).unwrap(), &mut dvals_dev).unwrap();
        for (how, pattern, values) in [("host S^T", &dst_host, &dvals_host), ("device S^T", transpose.pattern(), &dvals_dev)] {
            let mut ddx = gpu.upload(&vec![f32::NAN; t * in_dim]).unwrap();
            spmm_xst(&gpu, pattern, values, DeviceMatRef::row_major(&ddy, t, out_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut ddx, t, in_dim).unwrap()).unwrap();
            let got = gpu.download(&ddx).unwrap();
            for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
                assert!((g - e).abs() <= 1e-5 * (1.0 + e.abs()), "{dev} ({how}): dX[{i}] = {g}, expected {e}");
            }
        }
    }
}

#[test]
fn spmm_rejects_bad_shapes_and_lengths_and_touches_nothing() {
    for (dev, gpu) in devices("spmm_bad_input") {
        let s = CsrPattern::<u32>::from_coo(3, 4, &[(0, 1), (2, 3)]).unwrap();
        let ds = DeviceCsrPattern::upload(&gpu, &s).unwrap();
        let vals = gpu.upload(&[1f32, 2.0]).unwrap();
        let x = gpu.upload(&[1f32; 2 * 4]).unwrap();
        let mut y = gpu.upload(&[7f32; 2 * 3]).unwrap();
        // X with the wrong inner dimension.
        let e = spmm_xst(&gpu, &ds, &vals, DeviceMatRef::row_major(&x, 4, 2).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 2, 3).unwrap()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "spmm_xst", what: "x", .. }), "{dev}: {e:?}");
        // Y with the wrong shape.
        let e = spmm_xst(&gpu, &ds, &vals, DeviceMatRef::row_major(&x, 2, 4).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 3, 2).unwrap()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "spmm_xst", what: "y", .. }), "{dev}: {e:?}");
        // Values of the wrong length.
        let short = gpu.upload(&[1f32]).unwrap();
        let e = spmm_xst(&gpu, &ds, &short, DeviceMatRef::row_major(&x, 2, 4).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 2, 3).unwrap()).unwrap_err();
        assert!(matches!(e, Error::LengthMismatch { what: "s_values", expected: 2, got: 1, .. }), "{dev}: {e:?}");
        assert_eq!(gpu.download(&y).unwrap(), vec![7.0; 6], "{dev}: output touched");
        // spmm_sb: B must be k x n, C m x n.
        let b = gpu.upload(&[1f32; 4 * 5]).unwrap();
        let mut c = gpu.upload(&[7f32; 3 * 5]).unwrap();
        let e = spmm_sb(&gpu, &ds, &vals, DeviceMatRef::row_major(&b, 5, 4).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut c, 3, 5).unwrap()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "spmm_sb", what: "b", .. }), "{dev}: {e:?}");
        let e = spmm_sb(&gpu, &ds, &vals, DeviceMatRef::row_major(&b, 4, 5).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut c, 5, 3).unwrap()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "spmm_sb", what: "c", .. }), "{dev}: {e:?}");
        assert_eq!(gpu.download(&c).unwrap(), vec![7.0; 15], "{dev}: output touched");
    }
}

/// T, n or S's entries beyond what the kernels count in 32 bits ([`KERNEL_COUNT_MAX`]) are refused before anything
/// runs (a T or n within 128 of 2^32 made a tile count round to 0, an entry count within 1024 of it a loop wrap).
/// Shown with empty operands (S 0 x 0), which every other check accepts.
#[test]
fn spmm_sizes_beyond_the_kernels_counters_are_refused() {
    for (dev, gpu) in devices("spmm_too_large") {
        let ds = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::empty(0, 0).unwrap()).unwrap();
        let vals = gpu.upload::<f32>(&[]).unwrap();
        let mut y = gpu.upload::<f32>(&[]).unwrap();
        for t in [KERNEL_COUNT_MAX + 1, u32::MAX as usize - 5, u32::MAX as usize + 1] {
            let e = spmm_xst(&gpu, &ds, &vals, DeviceMatRef::row_major(&vals, t, 0).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, 0).unwrap()).unwrap_err();
            assert_eq!(e, Error::TooLarge { op: "spmm_xst", what: "rows of x", value: t, max: KERNEL_COUNT_MAX }, "{dev}");
            let e = spmm_sb(&gpu, &ds, &vals, DeviceMatRef::row_major(&vals, 0, t).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 0, t).unwrap()).unwrap_err();
            assert_eq!(e, Error::TooLarge { op: "spmm_sb", what: "columns of b", value: t, max: KERNEL_COUNT_MAX }, "{dev}");
        }
        // B with no columns and a huge leading dimension is a valid view (it needs no elements); its vector-load
        // check must not overflow computing the last row's end.
        let s13 = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::empty(1, 3).unwrap()).unwrap();
        let b16 = gpu.alloc_zeros::<f32>(8).unwrap();
        spmm_sb(&gpu, &s13, &vals, DeviceMatRef::new(&b16, 3, 0, 1 << 63, Layout::RowMajor).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 1, 0).unwrap()).unwrap();
        // At the limit itself, nothing to do and no error.
        let t = KERNEL_COUNT_MAX;
        spmm_xst(&gpu, &ds, &vals, DeviceMatRef::row_major(&vals, t, 0).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, 0).unwrap()).unwrap();
        spmm_sb(&gpu, &ds, &vals, DeviceMatRef::row_major(&vals, 0, t).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, 0, t).unwrap()).unwrap();
    }
}

/// spmm_xst_with_scratch gives bitwise the outputs of spmm_xst (same kernels, the transposed X in the caller's
/// buffer) for every kernel family (T = 1, 5, 16, 40, 70), reuses one scratch across calls, and refuses a scratch
/// that is too short or not 16-byte aligned before launching anything.
#[test]
fn spmm_xst_with_scratch_matches_spmm_xst_bitwise_and_checks_its_scratch() {
    let mut rng = rng("spmm_xst_scratch");
    for (dev, gpu) in devices("spmm_xst_scratch") {
        let (out_dim, in_dim) = (rng.gen_range(20..60), rng.gen_range(20..300));
        let s = random_pattern(&mut rng, out_dim, in_dim, 0.1, false);
        let vals: Vec<bf16> = random_values(&mut rng, s.nnz());
        let ds = DeviceCsrPattern::upload(&gpu, &s).unwrap();
        let dv = gpu.upload(&vals).unwrap();
        let mut scratch = gpu.alloc_zeros::<bf16>(spmm_xst_scratch_len(70, in_dim) + 8).unwrap();
        for t in [1usize, 5, 16, 40, 70] {
            let x: Vec<bf16> = random_values(&mut rng, t * in_dim);
            let dx = gpu.upload(&x).unwrap();
            let mut want = gpu.alloc_zeros::<bf16>(t * out_dim).unwrap();
            let mut got = gpu.alloc_zeros::<bf16>(t * out_dim).unwrap();
            spmm_xst(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.5, 0.0, DeviceMatMut::row_major(&mut want, t, out_dim).unwrap()).unwrap();
            spmm_xst_with_scratch(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.5, 0.0, DeviceMatMut::row_major(&mut got, t, out_dim).unwrap(), &mut scratch).unwrap();
            let (w, g) = (gpu.download(&want).unwrap(), gpu.download(&got).unwrap());
            assert!(w.iter().zip(&g).all(|(a, b)| same_bits(*a, *b)), "{dev}: T = {t}");
            assert_eq!(spmm_xst_scratch_len(t, in_dim), if t <= 2 { 0 } else { in_dim * t.div_ceil(8) * 8 });
        }
        let t = 16;
        let dx = gpu.upload(&random_values::<bf16>(&mut rng, t * in_dim)).unwrap();
        let mut y = gpu.upload(&vec![bf16::from_f32(3.0); t * out_dim]).unwrap();
        let need = spmm_xst_scratch_len(t, in_dim);
        let e = spmm_xst_with_scratch(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out_dim).unwrap(), scratch.slice_mut(0..need - 1)).unwrap_err();
        assert!(matches!(e, Error::BufferTooSmall { what: "scratch", .. }), "{dev}: {e:?}");
        let e = spmm_xst_with_scratch(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out_dim).unwrap(), scratch.slice_mut(1..need + 1)).unwrap_err();
        assert!(matches!(e, Error::Misaligned { what: "scratch", align: 16, .. }), "{dev}: {e:?}");
        assert!(gpu.download(&y).unwrap().iter().all(|v| v.to_f32() == 3.0), "{dev}: a refused call wrote y");
    }
}

/// The tensor-core kernel (f16/bf16, T >= 64, >= 1% density) against the CPU within its bound, at every tile
/// edge of both token tilings (32 below T = 256, 64 from there): T, out and in around 64 and 128 (partial token,
/// output and stage tiles), in < 64 (one partial stage),
/// rows denser than 32 entries per 64-column stage (the window's reload loop), skewed and empty rows, a pattern
/// whose first stages are empty (skipped by the block), both layouts of X and Y (element loads for column-major
/// X), alpha/beta with beta = 0 over a NaN-poisoned output.
#[test]
fn tensor_core_spmm_xst_matches_cpu_at_every_tile_edge() {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    let mut rng = rng("spmm_tc_edges");
    for (dev, gpu) in devices("spmm_tc_edges") {
        // T < 256: 32-token tiles; T >= 256: 64-token tiles (each with its partial last tile).
        for (i, &(t, out_dim, in_dim)) in [(64, 64, 64), (65, 63, 65), (127, 65, 127), (128, 130, 40), (130, 1, 200), (64, 129, 1), (100, 70, 300), (256, 64, 64), (300, 65, 130), (257, 20, 70)].iter().enumerate() {
            let density = [0.02, 0.3, 0.9][i % 3];
            let skewed = i % 2 == 1;
            if i % 2 == 0 {
                check_xst_at::<bf16>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed);
            } else {
                check_xst_at::<f16>(&gpu, &dev, &mut rng, out_dim, in_dim, t, density, skewed);
            }
            let nnz_at_least = (out_dim * in_dim).div_ceil(100);
            let s = random_pattern(&mut rng, out_dim, in_dim, density, skewed);
            // SLR_SPMM_PATH (a benchmark switch) picks the kernel itself: the dispatch is then not checked.
            if s.nnz() >= nnz_at_least && std::env::var_os("SLR_SPMM_PATH").is_none() {
                assert!(spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out_dim, in_dim, s.nnz()), "T {t} {out_dim}x{in_dim}");
            }
        }
        // Entries only in columns >= 130: stages 0 and 1 hold none and are skipped; rows of 70 entries in stage 2
        // (more than two windows).
        let (t, out_dim, in_dim) = (70, 66, 200);
        let positions: Vec<(usize, usize)> = (0..out_dim).flat_map(|r| (130..200).filter(move |c| (r + c) % 7 != 0 || r % 5 == 0).map(move |c| (r, c))).collect();
        let s = CsrPattern::<u32>::from_coo(out_dim, in_dim, &positions).unwrap();
        assert!(std::env::var_os("SLR_SPMM_PATH").is_some() || spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out_dim, in_dim, s.nnz()));
        let vals: Vec<bf16> = random_values(&mut rng, s.nnz());
        let x: Vec<bf16> = random_values(&mut rng, t * in_dim);
        let mut want = vec![bf16::ZERO; t * out_dim];
        spmm_xst_cpu(&s, &vals, MatRef::row_major(&x, t, in_dim).unwrap(), 1.0, 0.0, MatMut::row_major(&mut want, t, out_dim).unwrap()).unwrap();
        let (ds, dv, dx) = (DeviceCsrPattern::upload(&gpu, &s).unwrap(), gpu.upload(&vals).unwrap(), gpu.upload(&x).unwrap());
        let mut dy = gpu.upload(&vec![bf16::from_f32(f32::NAN); t * out_dim]).unwrap();
        spmm_xst(&gpu, &ds, &dv, DeviceMatRef::row_major(&dx, t, in_dim).unwrap(), 1.0, 0.0, DeviceMatMut::row_major(&mut dy, t, out_dim).unwrap()).unwrap();
        let got = gpu.download(&dy).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // |x|, |s| < 1 and at most 70 terms: 3 n u |mass| <= 3 * 71 * 2^-24 * 70, plus bf16's rounding of w.
            let tol = 3.0 * 71.0 * 2f32.powi(-24) * 70.0 + w.to_f32().abs() / 128.0;
            assert!((g.to_f32() - w.to_f32()).abs() <= tol, "{dev}: skipped-stage case, Y[{i}] = {g}, expected {w}");
        }
    }
}

/// The tensor-core kernel's result does not depend on X's layout or alignment (16-byte loads for aligned
/// row-major X, element loads for column-major or unaligned X: the same values in the same order), and two runs
/// agree bitwise.
#[test]
fn tensor_core_spmm_xst_is_bitwise_the_same_for_every_layout_of_x() {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    let mut rng = rng("spmm_tc_layouts");
    for ((dev, gpu), t_range) in devices("spmm_tc_layouts").into_iter().zip([64..140, 256..300].into_iter().cycle()) {
        // 32-token tiles below T = 256, 64-token tiles from there (devices alternate between the two ranges).
        let (t, out_dim, in_dim) = (rng.gen_range(t_range), rng.gen_range(1..140), rng.gen_range(1..200));
        let (density, skewed) = (rng.gen_range(0.05..0.5), rng.gen_bool(0.5));
        let s = random_pattern(&mut rng, out_dim, in_dim, density, skewed);
        if !spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out_dim, in_dim, s.nnz()) {
            continue; // an empty draw
        }
        let vals: Vec<bf16> = random_values(&mut rng, s.nnz());
        let x: Vec<bf16> = random_values(&mut rng, t * in_dim);
        let (ds, dv) = (DeviceCsrPattern::upload(&gpu, &s).unwrap(), gpu.upload(&vals).unwrap());
        let run = |xv: DeviceMatRef<'_, bf16>| {
            let mut dy = gpu.alloc_zeros::<bf16>(t * out_dim).unwrap();
            spmm_xst(&gpu, &ds, &dv, xv, 0.75, 0.0, DeviceMatMut::row_major(&mut dy, t, out_dim).unwrap()).unwrap();
            gpu.download(&dy).unwrap()
        };
        let dx = gpu.upload(&x).unwrap();
        let aligned = run(DeviceMatRef::row_major(&dx, t, in_dim).unwrap());
        assert!(aligned.iter().zip(run(DeviceMatRef::row_major(&dx, t, in_dim).unwrap())).all(|(a, b)| same_bits(*a, b)), "{dev}: two runs differ");
        // The same X one element into a buffer: no row start is 16-byte aligned.
        let mut shifted = vec![bf16::ZERO; t * in_dim + 1];
        shifted[1..].copy_from_slice(&x);
        let dxs = gpu.upload(&shifted).unwrap();
        let unaligned = run(DeviceMatRef::row_major(dxs.slice(1..t * in_dim + 1), t, in_dim).unwrap());
        // Column-major X holding the same matrix.
        let xc: Vec<bf16> = (0..in_dim).flat_map(|c| (0..t).map(move |r| (r, c))).map(|(r, c)| x[r * in_dim + c]).collect();
        let dxc = gpu.upload(&xc).unwrap();
        let col_major = run(DeviceMatRef::col_major(&dxc, t, in_dim).unwrap());
        for (name, other) in [("unaligned row-major", &unaligned), ("column-major", &col_major)] {
            let bad = aligned.iter().zip(other).position(|(a, b)| !same_bits(*a, *b));
            assert!(bad.is_none(), "{dev}: {name} X differs at {bad:?} (T {t} S {out_dim}x{in_dim})");
        }
    }
}

/// spmm_sb on the tensor-core path (f16/bf16, n >= 64, >= 1% density: Cᵀ = Bᵀ Sᵀ by spmm_xst's kernel): row-major
/// B (the `_xcol` kernel, 16-byte loads along B's rows, element loads when ld is not a multiple of 8), column-major
/// B, C in both layouts, ragged n, m and k around the 64-tiles, beta = 0 over a NaN-poisoned C; within three times
/// the CUDA-core bound (check_sb_at).
#[test]
fn tensor_core_spmm_sb_matches_cpu_for_both_layouts_of_b() {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    let mut rng = rng("spmm_sb_tc");
    for (dev, gpu) in devices("spmm_sb_tc") {
        for (i, &(m, k, n)) in [(64, 64, 64), (65, 130, 70), (130, 63, 128), (1, 200, 65)].iter().enumerate() {
            let density = [0.05, 0.5][i % 2];
            if i % 2 == 0 {
                check_sb_at::<bf16>(&gpu, &dev, &mut rng, m, k, n, density, i == 2);
            } else {
                check_sb_at::<f16>(&gpu, &dev, &mut rng, m, k, n, density, false);
            }
        }
    }
}

//! SDDMM (textbook form and the sparse-Linear weight gradient): the CPU reference against an exact dense product,
//! and the device kernels against the CPU reference on every device present (a real GPU when there is one; the
//! SIMT emulator under several schedules with the `emulator` feature).
//!
//! Tolerance (module docs of src/sddmm.rs): kernel and reference both sum in f32 with at most K + 2 roundings on
//! any path, so with u = 2^-24, γ(n) = n·u / (1 − n·u) and M = |α|·Σ|a·b| + |β·c_old| they differ by at most
//! 2·γ(K+2)·M before the output rounding; rounding to f16/bf16 adds u_T·|v| on each side (u_T = 2^-11 / 2^-8)
//! plus half a subnormal step. Beyond that bound nothing is tolerated. Determinism is tested bitwise.
mod common;
use common::*;
use half::{bf16, f16};
use rand::prelude::*;
use sparse_lowrank::*;
use sparse_lowrank::sddmm::sddmm_uses_tensor_cores;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Unit roundoff of the final rounding to `T` and half its smallest subnormal (0 for f32: no extra rounding).
fn output_rounding<T: Element>() -> (f64, f64) {
    match T::DTYPE {
        DType::F32 => (0.0, 0.0),
        DType::F16 => (2f64.powi(-11), 2f64.powi(-25)),
        DType::BF16 => (2f64.powi(-8), 2f64.powi(-134)),
    }
}

/// Elements per 16-byte slot (the kernel's K unit).
fn slot<T: Element>() -> usize {
    16 / T::DTYPE.size()
}

fn to_f32s<T: Element>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// A random `rows x cols` matrix in a random layout (row-major more often, as frameworks store them) whose leading
/// dimension is packed, padded by 1..3 elements, or rounded up to whole 16-byte slots (rows aligned for the
/// kernel's vector loads when the layout is row-major).
fn random_matrix<T: Element>(rng: &mut StdRng, rows: usize, cols: usize, layout: Option<Layout>) -> (Vec<T>, DenseShape) {
    let layout = layout.unwrap_or(if rng.gen_bool(0.7) { Layout::RowMajor } else { Layout::ColMajor });
    let inner = DenseShape::packed(rows, cols, layout).ld;
    let ld = match rng.gen_range(0..3) {
        0 => inner,
        1 => inner + rng.gen_range(1..4),
        _ => inner.div_ceil(slot::<T>()).max(1) * slot::<T>(),
    };
    let shape = DenseShape { rows, cols, ld, layout };
    (random_values(rng, shape.required_len()), shape)
}

fn view<T: Element>(data: &[T], s: DenseShape) -> MatRef<'_, T> {
    MatRef::new(data, s.rows, s.cols, s.ld, s.layout).unwrap()
}

/// The same matrix, transposed and stored row-major packed.
fn materialize_transpose<T: Element>(m: MatRef<'_, T>) -> (Vec<T>, DenseShape) {
    let (r, c) = (m.rows(), m.cols());
    let data = (0..c * r).map(|i| m.get(i % r, i / r)).collect();
    (data, DenseShape::packed(c, r, Layout::RowMajor))
}

/// What the device must produce: the CPU reference's values and, per entry, the bound from the module docs.
struct Expected<T> {
    values: Vec<T>,
    tolerance: Vec<f64>,
}

/// The textbook form's reference and bound for A (`a`, rows x K) and B (`b`, cols x K), old output `c0`.
fn expected<T: Element>(pattern: &CsrPattern<u32>, a: MatRef<'_, T>, b: MatRef<'_, T>, alpha: f32, beta: f32, c0: &[T]) -> Expected<T> {
    let mut values = c0.to_vec();
    sddmm_cpu(pattern, a, b, alpha, beta, &mut values).unwrap();
    // The f32 value before the last rounding: the same arithmetic on exact f32 copies.
    let (a32, b32) = (to_f32s(a.data()), to_f32s(b.data()));
    let (a32, b32) = (view(&a32, a.shape()), view(&b32, b.shape()));
    let mut r32 = to_f32s(c0);
    sddmm_cpu(pattern, a32, b32, alpha, beta, &mut r32).unwrap();
    let k = a.cols();
    let (u_t, s_t) = output_rounding::<T>();
    // The tensor-core path's additions are within one ulp (the mma's internal rounding is unspecified), not half:
    // its own error is up to 2·γ, so kernel and CPU differ by up to 3·γ (module docs).
    let paths = if sddmm_uses_tensor_cores::<T>(pattern.rows(), pattern.cols(), k, pattern.nnz()) { 3.0 } else { 2.0 };
    let tolerance = pattern
        .iter()
        .map(|(e, r, c)| {
            let dot_mag: f64 = (0..k).map(|kk| (a32.get(r, kk) as f64 * b32.get(c, kk) as f64).abs()).sum();
            let old = if beta != 0.0 { (beta as f64 * c0[e].to_f32() as f64).abs() } else { 0.0 };
            let m = alpha.abs() as f64 * dot_mag + old;
            paths * gamma(k + 2) * m * (1.0 + u_t) + 2.0 * u_t * (r32[e] as f64).abs() + 2.0 * s_t
        })
        .collect();
    Expected { values, tolerance }
}

fn assert_within<T: Element>(what: &str, got: &[T], exp: &Expected<T>) {
    assert_eq!(got.len(), exp.values.len(), "{what}: length");
    for (e, ((g, x), tol)) in got.iter().zip(&exp.values).zip(&exp.tolerance).enumerate() {
        let (g, x) = (g.to_f32() as f64, x.to_f32() as f64);
        assert!(g.is_finite(), "{what}: entry {e} is {g} (expected {x})");
        assert!((g - x).abs() <= *tol, "{what}: entry {e}: got {g}, cpu {x}, |diff| {} > bound {tol}", (g - x).abs());
    }
}

fn assert_bitwise<T: Element>(what: &str, a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (e, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(same_bits(*x, *y), "{what}: entry {e}: {x:?} vs {y:?}");
    }
}

/// K values that exercise the partition: empty, one element, a slot minus/plus one, whole slots, a full warp of
/// slots with a tail, and random.
fn interesting_k<T: Element>(rng: &mut StdRng) -> usize {
    let v = slot::<T>();
    match rng.gen_range(0..8) {
        0 => 0,
        1 => 1,
        2 => v - 1,
        3 => v + 1,
        4 => 4 * v,
        5 => 32 * v + 3,
        _ => rng.gen_range(0..300),
    }
}

fn random_density(rng: &mut StdRng) -> f64 {
    match rng.gen_range(0..5) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(0.0..1.0),
    }
}

/// α in [-2, 2); β = 0 a third of the time (then the old output is NaN-poisoned), else random.
fn random_alpha_beta(rng: &mut StdRng) -> (f32, f32) {
    let alpha = rng.gen_range(-2.0f32..2.0);
    let beta = if rng.gen_bool(1.0 / 3.0) { 0.0 } else { rng.gen_range(-2.0f32..2.0) };
    (alpha, beta)
}

fn old_output<T: Element>(rng: &mut StdRng, n: usize, beta: f32) -> Vec<T> {
    if beta == 0.0 {
        vec![T::from_f32(f32::NAN); n]
    } else {
        random_values(rng, n)
    }
}

#[test]
fn sddmm_cpu_is_within_its_stated_bound_of_the_exact_product() {
    let mut rng = rng("sddmm_cpu_exact");
    for case in 0..30usize {
        let (m, n, k) = (rng.gen_range(0..30), rng.gen_range(0..30), rng.gen_range(0..400));
        let density = random_density(&mut rng);
        let pattern = random_pattern(&mut rng, m, n, density, case.is_multiple_of(3));
        let (a, sa) = random_matrix::<f32>(&mut rng, m, k, None);
        let (b, sb) = random_matrix::<f32>(&mut rng, n, k, None);
        let (alpha, beta) = random_alpha_beta(&mut rng);
        let c0: Vec<f32> = random_values(&mut rng, pattern.nnz());
        let mut got = c0.clone();
        sddmm_cpu(&pattern, view(&a, sa), view(&b, sb), alpha, beta, &mut got).unwrap();
        // Exact enough: the dense product A·Bᵀ in f64 by faer (error ~K·2^-53·M, far below the f32 bound).
        let a64 = faer::Mat::<f64>::from_fn(m, k, |i, j| view(&a, sa).get(i, j) as f64);
        let b64 = faer::Mat::<f64>::from_fn(n, k, |i, j| view(&b, sb).get(i, j) as f64);
        let mut prod = faer::Mat::<f64>::zeros(m, n);
        faer::linalg::matmul::matmul(prod.as_mut(), faer::Accum::Replace, a64.as_ref(), b64.as_ref().transpose(), 1.0, faer::Par::Seq);
        for (e, r, c) in pattern.iter() {
            let exact = alpha as f64 * prod[(r, c)] + if beta != 0.0 { beta as f64 * c0[e] as f64 } else { 0.0 };
            let mag: f64 = (0..k).map(|kk| (a64[(r, kk)] * b64[(c, kk)]).abs()).sum::<f64>() * alpha.abs() as f64
                + if beta != 0.0 { (beta as f64 * c0[e] as f64).abs() } else { 0.0 };
            let bound = gamma(k + 2) * mag + (k as f64 + 4.0) * f64::EPSILON * mag;
            assert!((got[e] as f64 - exact).abs() <= bound, "case {case} entry {e}: {} vs exact {exact}, bound {bound}", got[e]);
        }
    }
}

#[test]
fn sddmm_weight_grad_cpu_is_sddmm_cpu_on_transposed_operands_bitwise() {
    let mut rng = rng("weight_grad_cpu");
    for case in 0..20 {
        let (t, out_f, in_f) = (rng.gen_range(0..50), rng.gen_range(0..20), rng.gen_range(0..20));
        let density = random_density(&mut rng);
        let pattern = random_pattern(&mut rng, out_f, in_f, density, case % 2 == 0);
        let (dy, sdy) = random_matrix::<bf16>(&mut rng, t, out_f, None);
        let (x, sx) = random_matrix::<bf16>(&mut rng, t, in_f, None);
        let (alpha, beta) = random_alpha_beta(&mut rng);
        let c0 = old_output::<bf16>(&mut rng, pattern.nnz(), beta);
        let mut got = c0.clone();
        sddmm_weight_grad_cpu(&pattern, view(&dy, sdy), view(&x, sx), alpha, beta, &mut got).unwrap();
        let (a, sa) = materialize_transpose(view(&dy, sdy));
        let (b, sb) = materialize_transpose(view(&x, sx));
        let mut want = c0.clone();
        sddmm_cpu(&pattern, view(&a, sa), view(&b, sb), alpha, beta, &mut want).unwrap();
        assert_bitwise(&format!("case {case}"), &got, &want);
    }
}

#[test]
fn cpu_references_reject_mismatched_shapes_and_lengths_without_touching_outputs() {
    let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
    let a = vec![1f32; 8];
    let b = vec![1f32; 12];
    let mut out = vec![7f32; 2];
    let e = sddmm_cpu(&pattern, MatRef::row_major(&a, 2, 4).unwrap(), MatRef::row_major(&b[..9], 3, 3).unwrap(), 1.0, 0.0, &mut out).unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { op: "sddmm_cpu", what: "b", expected: (3, 4), got: (3, 3) });
    let e = sddmm_cpu(&pattern, MatRef::row_major(&a[..4], 1, 4).unwrap(), MatRef::row_major(&b, 3, 4).unwrap(), 1.0, 0.0, &mut out).unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { op: "sddmm_cpu", what: "a", expected: (2, 4), got: (1, 4) });
    let mut long = vec![7f32; 3];
    let e = sddmm_cpu(&pattern, MatRef::row_major(&a, 2, 4).unwrap(), MatRef::row_major(&b, 3, 4).unwrap(), 1.0, 0.0, &mut long).unwrap_err();
    assert_eq!(e, Error::LengthMismatch { op: "sddmm_cpu", what: "out", expected: 2, got: 3 });
    // Weight gradient: dY must be T x rows, X T x cols with the same T.
    let dy = vec![1f32; 10];
    let x = vec![1f32; 15];
    let e = sddmm_weight_grad_cpu(&pattern, MatRef::row_major(&dy, 5, 2).unwrap(), MatRef::row_major(&x[..12], 4, 3).unwrap(), 1.0, 0.0, &mut out)
        .unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { op: "sddmm_weight_grad_cpu", what: "x", expected: (5, 3), got: (4, 3) });
    let e = sddmm_weight_grad_cpu(&pattern, MatRef::row_major(&dy, 2, 5).unwrap(), MatRef::row_major(&x, 5, 3).unwrap(), 1.0, 0.0, &mut out)
        .unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { op: "sddmm_weight_grad_cpu", what: "dy", expected: (2, 2), got: (2, 5) });
    assert_eq!(out, vec![7.0, 7.0]);
    assert_eq!(long, vec![7.0; 3]);
}

/// One textbook-form case on every device: within the bound of the CPU reference, and bitwise the same on every
/// device and schedule and on a second run.
fn textbook_case<T: Element>(devs: &[(String, Gpu)], rng: &mut StdRng, case: usize) {
    let (m, n) = (rng.gen_range(0..=40), rng.gen_range(0..=40));
    let k = interesting_k::<T>(rng);
    let density = random_density(rng);
    let pattern = random_pattern(rng, m, n, density, case.is_multiple_of(3));
    let (a, sa) = random_matrix::<T>(rng, m, k, None);
    let (b, sb) = random_matrix::<T>(rng, n, k, None);
    let (alpha, beta) = random_alpha_beta(rng);
    let c0 = old_output::<T>(rng, pattern.nnz(), beta);
    let exp = expected(&pattern, view(&a, sa), view(&b, sb), alpha, beta, &c0);
    let what = format!(
        "case {case} {}: {m}x{n} K={k} nnz={} A {:?} ld={} B {:?} ld={} alpha={alpha} beta={beta}",
        T::DTYPE.name(),
        pattern.nnz(),
        sa.layout,
        sa.ld,
        sb.layout,
        sb.ld
    );
    let mut first: Option<Vec<T>> = None;
    for (dev, gpu) in devs {
        let dpat = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let mut runs = Vec::new();
        for _ in 0..2 {
            let mut dc = gpu.upload(&c0).unwrap();
            sddmm(gpu, &dpat, DeviceMatRef::new(&da, m, k, sa.ld, sa.layout).unwrap(), DeviceMatRef::new(&db, n, k, sb.ld, sb.layout).unwrap(), alpha, beta, &mut dc)
                .unwrap_or_else(|e| panic!("{dev}: {what}: {e}"));
            runs.push(gpu.download(&dc).unwrap());
        }
        assert_within(&format!("{dev}: {what}"), &runs[0], &exp);
        assert_bitwise(&format!("{dev}: {what}: second run"), &runs[0], &runs[1]);
        match &first {
            None => first = Some(runs.swap_remove(0)),
            // The tensor-core kernel's accumulation order is the hardware's: across devices, the bound only.
            Some(_) if sddmm_uses_tensor_cores::<T>(m, n, k, pattern.nnz()) => {}
            Some(f) => assert_bitwise(&format!("{dev} vs {}: {what}", devs[0].0), &runs[0], f),
        }
    }
}

#[test]
fn sddmm_matches_cpu_within_bound_and_is_bitwise_reproducible_f32() {
    let mut rng = rng("sddmm_f32");
    let devs = devices("sddmm_f32");
    for case in 0..24 {
        textbook_case::<f32>(&devs, &mut rng, case);
    }
}

#[test]
fn sddmm_matches_cpu_within_bound_and_is_bitwise_reproducible_f16() {
    let mut rng = rng("sddmm_f16");
    let devs = devices("sddmm_f16");
    for case in 0..24 {
        textbook_case::<f16>(&devs, &mut rng, case);
    }
}

#[test]
fn sddmm_matches_cpu_within_bound_and_is_bitwise_reproducible_bf16() {
    let mut rng = rng("sddmm_bf16");
    let devs = devices("sddmm_bf16");
    for case in 0..24 {
        textbook_case::<bf16>(&devs, &mut rng, case);
    }
}

/// One weight-gradient case on every device: within the bound of the CPU reference, bitwise equal to the textbook
/// kernel on explicitly transposed operands (the same partition of K), and bitwise the same on every device.
fn weight_grad_case<T: Element>(devs: &[(String, Gpu)], rng: &mut StdRng, case: usize, tokens: usize, pattern: &CsrPattern<u32>) {
    let (out_f, in_f) = (pattern.rows(), pattern.cols());
    // Frameworks store dY and X row-major; column-major (T contiguous) is accepted too and used in place.
    let layout = |rng: &mut StdRng| Some(if rng.gen_bool(0.8) { Layout::RowMajor } else { Layout::ColMajor });
    let (l_dy, l_x) = (layout(rng), layout(rng));
    let (dy, sdy) = random_matrix::<T>(rng, tokens, out_f, l_dy);
    let (x, sx) = random_matrix::<T>(rng, tokens, in_f, l_x);
    let (alpha, beta) = random_alpha_beta(rng);
    let c0 = old_output::<T>(rng, pattern.nnz(), beta);
    let (a, sa) = materialize_transpose(view(&dy, sdy));
    let (b, sb) = materialize_transpose(view(&x, sx));
    let exp = expected(pattern, view(&a, sa), view(&b, sb), alpha, beta, &c0);
    let mut check = c0.clone();
    sddmm_weight_grad_cpu(pattern, view(&dy, sdy), view(&x, sx), alpha, beta, &mut check).unwrap();
    assert_bitwise("cpu weight grad vs cpu textbook", &check, &exp.values);
    let what = format!(
        "case {case} {}: T={tokens} S {out_f}x{in_f} nnz={} dY {:?} ld={} X {:?} ld={} alpha={alpha} beta={beta}",
        T::DTYPE.name(),
        pattern.nnz(),
        sdy.layout,
        sdy.ld,
        sx.layout,
        sx.ld
    );
    let mut first: Option<Vec<T>> = None;
    for (dev, gpu) in devs {
        let dpat = DeviceCsrPattern::upload(gpu, pattern).unwrap();
        let (ddy, dx) = (gpu.upload(&dy).unwrap(), gpu.upload(&x).unwrap());
        // Scratch of exactly the documented size, NaN-poisoned so a packed element the kernel skipped shows.
        let scratch_len = sddmm_weight_grad_scratch_len::<T>(tokens, out_f, in_f);
        let mut scratch = gpu.upload(&vec![T::from_f32(f32::NAN); scratch_len]).unwrap();
        let mut ds = gpu.upload(&c0).unwrap();
        sddmm_weight_grad(
            gpu,
            &dpat,
            DeviceMatRef::new(&ddy, tokens, out_f, sdy.ld, sdy.layout).unwrap(),
            DeviceMatRef::new(&dx, tokens, in_f, sx.ld, sx.layout).unwrap(),
            alpha,
            beta,
            &mut ds,
            &mut scratch,
        )
        .unwrap_or_else(|e| panic!("{dev}: {what}: {e}"));
        let got = gpu.download(&ds).unwrap();
        assert_within(&format!("{dev}: {what}"), &got, &exp);
        // The textbook kernel on the transposes made on the host: the same K partition, so the same bits.
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let mut dc = gpu.upload(&c0).unwrap();
        sddmm(gpu, &dpat, DeviceMatRef::new(&da, out_f, tokens, sa.ld, sa.layout).unwrap(), DeviceMatRef::new(&db, in_f, tokens, sb.ld, sb.layout).unwrap(), alpha, beta, &mut dc)
            .unwrap();
        assert_bitwise(&format!("{dev}: {what}: weight grad vs textbook on host transposes"), &got, &gpu.download(&dc).unwrap());
        match &first {
            None => first = Some(got),
            Some(_) if sddmm_uses_tensor_cores::<T>(out_f, in_f, tokens, pattern.nnz()) => {}
            Some(f) => assert_bitwise(&format!("{dev} vs {}: {what}", devs[0].0), &got, f),
        }
    }
}

fn weight_grad_property<T: Element>(test: &str, cases: usize) {
    let mut rng = rng(test);
    let devs = devices(test);
    for case in 0..cases {
        let tokens = match case % 4 {
            0 => 1,
            1 => slot::<T>() * rng.gen_range(1..6),
            _ => rng.gen_range(0..120),
        };
        let (out_f, in_f) = (rng.gen_range(1..=40), rng.gen_range(1..=40));
        let density = random_density(&mut rng);
        let pattern = random_pattern(&mut rng, out_f, in_f, density, case.is_multiple_of(3));
        weight_grad_case::<T>(&devs, &mut rng, case, tokens, &pattern);
    }
}

#[test]
fn sddmm_weight_grad_matches_cpu_and_the_textbook_kernel_f32() {
    weight_grad_property::<f32>("weight_grad_f32", 10);
}

#[test]
fn sddmm_weight_grad_matches_cpu_and_the_textbook_kernel_f16() {
    weight_grad_property::<f16>("weight_grad_f16", 8);
}

#[test]
fn sddmm_weight_grad_matches_cpu_and_the_textbook_kernel_bf16() {
    weight_grad_property::<bf16>("weight_grad_bf16", 10);
}

/// Real layer widths (SLTrain's 1376, 2736, 5461 and LLaMA's 11008) for the weight gradient: ragged for every
/// vector width, tokens 1, 7 and 40, bf16 and f32.
#[test]
fn weight_grad_matches_cpu_at_real_ragged_layer_widths() {
    let mut rng = rng("sddmm_ragged_widths");
    let devs: Vec<(String, Gpu)> = devices("sddmm_ragged_widths");
    for (case, (out_f, in_f, tokens)) in [(1376, 2736, 7), (2736, 1376, 1), (5461, 1376, 40), (64, 11008, 7)].into_iter().enumerate() {
        let density = rng.gen_range(0.005..0.02);
        let pattern = random_pattern(&mut rng, out_f, in_f, density, case % 2 == 0);
        weight_grad_case::<bf16>(&devs, &mut rng, case, tokens, &pattern);
        weight_grad_case::<f32>(&devs, &mut rng, case, tokens, &pattern);
    }
}

#[test]
fn skewed_rows_one_long_row_and_a_single_token_match_cpu() {
    let mut rng = rng("skew");
    let devs = devices("skew");
    // Power-law row lengths over 120 rows: the first rows hold most entries and are split across warps.
    let skewed = random_pattern(&mut rng, 120, 300, 0.3, true);
    weight_grad_case::<bf16>(&devs, &mut rng, 0, 40, &skewed);
    // One row of 1500 entries (about 90 warps' worth at this K) and nothing else.
    let long_row = CsrPattern::<u32>::from_coo(1, 1500, &(0..1500).map(|c| (0, c)).collect::<Vec<_>>()).unwrap();
    weight_grad_case::<f32>(&devs, &mut rng, 1, 7, &long_row);
    // Long runs of empty rows between single entries: the row search skips them by bisection.
    let sparse_rows = CsrPattern::<u32>::from_coo(3000, 5, &[(0, 1), (1777, 0), (1778, 4), (2999, 2)]).unwrap();
    weight_grad_case::<f32>(&devs, &mut rng, 2, 5, &sparse_rows);
    // A single token: K = 1.
    let pattern = random_pattern(&mut rng, 50, 60, 0.4, false);
    weight_grad_case::<f16>(&devs, &mut rng, 3, 1, &pattern);
    // Large K, few entries: lanes stride over K with many slots each, including a tail slot.
    let pattern = random_pattern(&mut rng, 6, 9, 0.5, false);
    weight_grad_case::<bf16>(&devs, &mut rng, 4, 1027, &pattern);
}

#[test]
fn misaligned_and_strided_operands_give_bitwise_the_result_of_aligned_ones() {
    let mut rng = rng("alignment");
    for (dev, gpu) in devices("alignment") {
        for k in [1usize, 7, 8, 9, 64, 203] {
            let (m, n) = (13, 21);
            let pattern = random_pattern(&mut rng, m, n, 0.5, true);
            let a: Vec<bf16> = random_values(&mut rng, m * k);
            let b: Vec<bf16> = random_values(&mut rng, n * k);
            let run = |da: DeviceMatRef<'_, bf16>, db: DeviceMatRef<'_, bf16>| {
                let mut dc = gpu.alloc_zeros::<bf16>(pattern.nnz()).unwrap();
                let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
                sddmm(&gpu, &dpat, da, db, 1.5, 0.0, &mut dc).unwrap();
                gpu.download(&dc).unwrap()
            };
            // Aligned, packed row-major: 16-byte loads where K allows.
            let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            let aligned = run(DeviceMatRef::row_major(&da, m, k).unwrap(), DeviceMatRef::row_major(&db, n, k).unwrap());
            // Shifted by one element: no row is 16-byte aligned, so every slot is read element by element.
            let shifted = |v: &[bf16]| std::iter::once(bf16::ZERO).chain(v.iter().copied()).collect::<Vec<_>>();
            let (sa, sb) = (gpu.upload(&shifted(&a)).unwrap(), gpu.upload(&shifted(&b)).unwrap());
            let misaligned = run(
                DeviceMatRef::row_major(sa.slice(1..1 + m * k), m, k).unwrap(),
                DeviceMatRef::row_major(sb.slice(1..1 + n * k), n, k).unwrap(),
            );
            // Column-major copies: K strided.
            let colmajor = |v: &[bf16], rows: usize| (0..rows * k).map(|i| v[(i % rows) * k + i / rows]).collect::<Vec<_>>();
            let (ca, cb) = (gpu.upload(&colmajor(&a, m)).unwrap(), gpu.upload(&colmajor(&b, n)).unwrap());
            let strided = run(DeviceMatRef::col_major(&ca, m, k).unwrap(), DeviceMatRef::col_major(&cb, n, k).unwrap());
            assert_bitwise(&format!("{dev}: K={k} misaligned"), &misaligned, &aligned);
            assert_bitwise(&format!("{dev}: K={k} column-major"), &strided, &aligned);
        }
    }
}

#[test]
fn beta_zero_ignores_a_nan_poisoned_output() {
    let mut rng = rng("beta_zero");
    for (dev, gpu) in devices("beta_zero") {
        let (t, out_f, in_f) = (33, 17, 29);
        let pattern = random_pattern(&mut rng, out_f, in_f, 0.6, false);
        let dy: Vec<bf16> = random_values(&mut rng, t * out_f);
        let x: Vec<bf16> = random_values(&mut rng, t * in_f);
        let mut expect = vec![bf16::NAN; pattern.nnz()];
        sddmm_weight_grad_cpu(&pattern, MatRef::row_major(&dy, t, out_f).unwrap(), MatRef::row_major(&x, t, in_f).unwrap(), -0.5, 0.0, &mut expect)
            .unwrap();
        assert!(expect.iter().all(|v| !v.is_nan()), "the CPU reference must ignore the old output too");
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let (ddy, dx) = (gpu.upload(&dy).unwrap(), gpu.upload(&x).unwrap());
        let mut ds = gpu.upload(&vec![bf16::NAN; pattern.nnz()]).unwrap();
        let mut scratch = gpu.alloc_zeros::<bf16>(sddmm_weight_grad_scratch_len::<bf16>(t, out_f, in_f)).unwrap();
        sddmm_weight_grad(&gpu, &dpat, DeviceMatRef::row_major(&ddy, t, out_f).unwrap(), DeviceMatRef::row_major(&dx, t, in_f).unwrap(), -0.5, 0.0, &mut ds, &mut scratch)
            .unwrap();
        let got = gpu.download(&ds).unwrap();
        assert!(got.iter().all(|v| !v.is_nan()), "{dev}: NaN leaked from the old output");
        // Also the textbook form with f32 and the old output poisoned with infinities of both signs.
        let (a, b): (Vec<f32>, Vec<f32>) = (random_values(&mut rng, out_f * 5), random_values(&mut rng, in_f * 5));
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let poison: Vec<f32> = (0..pattern.nnz()).map(|i| [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3]).collect();
        let mut dc = gpu.upload(&poison).unwrap();
        sddmm(&gpu, &dpat, DeviceMatRef::row_major(&da, out_f, 5).unwrap(), DeviceMatRef::row_major(&db, in_f, 5).unwrap(), 2.0, 0.0, &mut dc).unwrap();
        let mut want = poison.clone();
        sddmm_cpu(&pattern, MatRef::row_major(&a, out_f, 5).unwrap(), MatRef::row_major(&b, in_f, 5).unwrap(), 2.0, 0.0, &mut want).unwrap();
        let got = gpu.download(&dc).unwrap();
        assert!(got.iter().all(|v| v.is_finite()), "{dev}: the old output leaked through beta = 0");
        let exp = expected(&pattern, MatRef::row_major(&a, out_f, 5).unwrap(), MatRef::row_major(&b, in_f, 5).unwrap(), 2.0, 0.0, &poison);
        assert_within(&format!("{dev}: textbook beta = 0"), &got, &exp);
    }
}

#[test]
fn k_zero_gives_beta_times_the_old_output_or_zero() {
    let mut rng = rng("k_zero");
    for (dev, gpu) in devices("k_zero") {
        let pattern = random_pattern(&mut rng, 9, 11, 0.7, false);
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let c0: Vec<f16> = random_values(&mut rng, pattern.nnz());
        let empty = gpu.alloc_zeros::<f16>(0).unwrap();
        for beta in [0.0f32, 0.75, -2.0] {
            let want: Vec<f16> = c0.iter().map(|c| f16::from_f32(if beta == 0.0 { 0.0 } else { beta * c.to_f32() })).collect();
            // Textbook: A 9 x 0, B 11 x 0.
            let mut dc = gpu.upload(&c0).unwrap();
            sddmm(&gpu, &dpat, DeviceMatRef::row_major(&empty, 9, 0).unwrap(), DeviceMatRef::row_major(&empty, 11, 0).unwrap(), 1.25, beta, &mut dc).unwrap();
            let got = gpu.download(&dc).unwrap();
            assert!(got.iter().zip(&want).all(|(g, w)| g.to_f32() == w.to_f32()), "{dev}: beta={beta}: {got:?} vs {want:?}");
            // Weight gradient with no tokens: dY 0 x 9, X 0 x 11, no scratch needed.
            let mut ds = gpu.upload(&c0).unwrap();
            let mut scratch = gpu.alloc_zeros::<f16>(0).unwrap();
            sddmm_weight_grad(&gpu, &dpat, DeviceMatRef::row_major(&empty, 0, 9).unwrap(), DeviceMatRef::row_major(&empty, 0, 11).unwrap(), 1.25, beta, &mut ds, &mut scratch)
                .unwrap();
            let got = gpu.download(&ds).unwrap();
            assert!(got.iter().zip(&want).all(|(g, w)| g.to_f32() == w.to_f32()), "{dev}: weight grad beta={beta}");
        }
    }
}

/// K (or T) beyond what the kernels count in 32 bits ([`KERNEL_COUNT_MAX`]; a K within 8 of 2^32 made the dot
/// product's slot count 0) is refused before anything runs. Shown with empty operands, which every other check
/// accepts.
#[test]
fn sddmm_k_beyond_the_kernels_counters_is_refused() {
    for (dev, gpu) in devices("sddmm_too_large") {
        let dpat = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::empty(0, 0).unwrap()).unwrap();
        let empty = gpu.upload::<bf16>(&[]).unwrap();
        let (mut out, mut scratch) = (gpu.upload::<bf16>(&[]).unwrap(), gpu.upload::<bf16>(&[]).unwrap());
        for k in [KERNEL_COUNT_MAX + 1, u32::MAX as usize - 3, u32::MAX as usize] {
            let m = || DeviceMatRef::row_major(&empty, 0, k).unwrap();
            let e = sddmm(&gpu, &dpat, m(), m(), 1.0, 0.0, &mut out).unwrap_err();
            assert_eq!(e, Error::TooLarge { op: "sddmm", what: "K", value: k, max: KERNEL_COUNT_MAX }, "{dev}");
            let t = || DeviceMatRef::row_major(&empty, k, 0).unwrap();
            let e = sddmm_weight_grad(&gpu, &dpat, t(), t(), 1.0, 0.0, &mut out, &mut scratch).unwrap_err();
            assert_eq!(e, Error::TooLarge { op: "sddmm_weight_grad", what: "K", value: k, max: KERNEL_COUNT_MAX }, "{dev}");
        }
        // A pattern with more columns than the kernels count (an empty one: no entries, one row of offsets).
        let wide = DeviceCsrPattern::upload(&gpu, &CsrPattern::<u32>::empty(1, u32::MAX as usize).unwrap()).unwrap();
        let a = DeviceMatRef::row_major(&empty, 1, 0).unwrap();
        let b = DeviceMatRef::row_major(&empty, u32::MAX as usize, 0).unwrap();
        let e = sddmm(&gpu, &wide, a, b, 1.0, 0.0, &mut out).unwrap_err();
        assert_eq!(e, Error::TooLarge { op: "sddmm", what: "columns of the pattern", value: u32::MAX as usize, max: KERNEL_COUNT_MAX }, "{dev}");
    }
}

#[test]
fn device_ops_reject_bad_input_with_typed_errors_and_write_nothing() {
    for (dev, gpu) in devices("bad_input") {
        let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
        let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let buf = gpu.upload(&[1f32; 64]).unwrap();
        let mut out = gpu.upload(&[7f32; 2]).unwrap();
        let mut scratch = gpu.upload(&[5f32; 64]).unwrap();
        let m = |rows, cols| DeviceMatRef::row_major(buf.slice(0..rows * cols), rows, cols).unwrap();
        // Textbook: A rows vs pattern rows, B rows vs pattern columns, K of B vs A, output length.
        let e = sddmm(&gpu, &dpat, m(3, 4), m(3, 4), 1.0, 0.0, &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "sddmm", what: "a", expected: (2, 4), got: (3, 4) }, "{dev}");
        let e = sddmm(&gpu, &dpat, m(2, 4), m(2, 4), 1.0, 0.0, &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "sddmm", what: "b", expected: (3, 4), got: (2, 4) }, "{dev}");
        let e = sddmm(&gpu, &dpat, m(2, 4), m(3, 5), 1.0, 0.0, &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "sddmm", what: "b", expected: (3, 4), got: (3, 5) }, "{dev}");
        let mut long = gpu.upload(&[7f32; 3]).unwrap();
        let e = sddmm(&gpu, &dpat, m(2, 4), m(3, 4), 1.0, 0.0, &mut long).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "sddmm", what: "out", expected: 2, got: 3 }, "{dev}");
        // Weight gradient: dY columns vs pattern rows, X shape (and its T), ds length, scratch size.
        let e = sddmm_weight_grad(&gpu, &dpat, m(4, 3), m(4, 3), 1.0, 0.0, &mut out, &mut scratch).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "sddmm_weight_grad", what: "dy", expected: (4, 2), got: (4, 3) }, "{dev}");
        let e = sddmm_weight_grad(&gpu, &dpat, m(4, 2), m(5, 3), 1.0, 0.0, &mut out, &mut scratch).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op: "sddmm_weight_grad", what: "x", expected: (4, 3), got: (5, 3) }, "{dev}");
        let e = sddmm_weight_grad(&gpu, &dpat, m(4, 2), m(4, 3), 1.0, 0.0, &mut long, &mut scratch).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "sddmm_weight_grad", what: "ds", expected: 2, got: 3 }, "{dev}");
        let needed = sddmm_weight_grad_scratch_len::<f32>(4, 2, 3);
        let mut small = gpu.upload(&vec![5f32; needed - 1]).unwrap();
        let e = sddmm_weight_grad(&gpu, &dpat, m(4, 2), m(4, 3), 1.0, 0.0, &mut out, &mut small).unwrap_err();
        assert_eq!(e, Error::BufferTooSmall { op: "sddmm_weight_grad", what: "scratch", needed, got: needed - 1 }, "{dev}");
        // K beyond the kernels' 32-bit counters: an empty 0 x 2^32 operand of an empty pattern needs no memory.
        if usize::BITS > 32 {
            let empty = CsrPattern::<u32>::empty(0, 0).unwrap();
            let dempty = DeviceCsrPattern::upload(&gpu, &empty).unwrap();
            let huge = 1usize << 32;
            let mut none = gpu.alloc_zeros::<f32>(0).unwrap();
            let e = sddmm(&gpu, &dempty, DeviceMatRef::row_major(buf.slice(0..0), 0, huge).unwrap(), DeviceMatRef::row_major(buf.slice(0..0), 0, huge).unwrap(), 1.0, 0.0, &mut none)
                .unwrap_err();
            assert_eq!(e, Error::TooLarge { op: "sddmm", what: "K", value: huge, max: KERNEL_COUNT_MAX }, "{dev}");
        }
        assert_eq!(gpu.download(&out).unwrap(), vec![7.0; 2], "{dev}: output untouched");
        assert_eq!(gpu.download(&long).unwrap(), vec![7.0; 3], "{dev}: output untouched");
        assert_eq!(gpu.download(&scratch).unwrap(), vec![5.0; 64], "{dev}: scratch untouched");
        assert_eq!(gpu.download(&small).unwrap(), vec![5.0; needed - 1], "{dev}: scratch untouched");
        // Overlap between an output and an input cannot be built through the safe API (a &mut view excludes every
        // other borrow); src/sddmm.rs unit-tests the rejection with views the safe API cannot make.
    }
}

#[test]
fn buffers_from_another_backend_are_rejected_before_any_launch() {
    let Some(cuda) = cuda_or_skip("wrong_backend") else { return };
    #[cfg(feature = "emulator")]
    {
        let emu = Gpu::emulated(Schedule::RoundRobin);
        let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
        let dpat = DeviceCsrPattern::upload(&cuda, &pattern).unwrap();
        let good = cuda.upload(&[1f32; 12]).unwrap();
        let foreign = emu.upload(&[1f32; 12]).unwrap();
        let mut out = cuda.upload(&[7f32; 2]).unwrap();
        let mut scratch = cuda.upload(&[5f32; 64]).unwrap();
        let e = sddmm(&cuda, &dpat, DeviceMatRef::row_major(good.slice(0..8), 2, 4).unwrap(), DeviceMatRef::row_major(&foreign, 3, 4).unwrap(), 1.0, 0.0, &mut out)
            .unwrap_err();
        assert_eq!(e, Error::WrongDevice { op: "sddmm", what: "b" });
        // The second operand is foreign: the first one's transpose must not have been launched either.
        let e = sddmm_weight_grad(&cuda, &dpat, DeviceMatRef::row_major(good.slice(0..8), 4, 2).unwrap(), DeviceMatRef::row_major(&foreign, 4, 3).unwrap(), 1.0, 0.0, &mut out, &mut scratch)
            .unwrap_err();
        assert_eq!(e, Error::WrongDevice { op: "sddmm_weight_grad", what: "x" });
        assert_eq!(cuda.download(&out).unwrap(), vec![7.0; 2]);
        assert_eq!(cuda.download(&scratch).unwrap(), vec![5.0; 64], "nothing launched");
    }
    #[cfg(not(feature = "emulator"))]
    eprintln!("wrong_backend: needs the emulator as the other backend ({}); skipped", cuda.describe());
}

/// The tensor-core kernel (f16/bf16, K >= 64, at least one entry per 64 tile elements): ragged tiles (m, n not
/// multiples of 64), K tails (not multiples of 32), empty tiles (entries only in a band of rows; empty column tiles
/// inside a block's strip of four, between full ones), strips after the first (n up to 450: two strips), rows with
/// more than 32 entries in one tile (density 0.6-0.9: a warp takes several rounds of 32 column indices), skewed
/// rows, alpha/beta with a NaN-poisoned output at beta = 0, within the f32 bound of the CPU reference, and bitwise
/// the same for row-major aligned, shifted (no 16-byte alignment) and column-major (K strided) operands.
#[test]
fn tensor_core_sddmm_matches_cpu_within_bound_for_every_layout() {
    if std::env::var_os("SLR_SDDMM_PATH").is_some() {
        eprintln!("SLR_SDDMM_PATH is set: it picks the kernel, so the tensor-core dispatch is not checked");
        return;
    }
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true); // the tensor-core kernels are opt-in
    let mut rng = rng("sddmm_tensor_cores");
    for (dev, gpu) in devices("sddmm_tensor_cores") {
        for (case, k) in [64usize, 72, 100, 136, 64, 96].into_iter().enumerate() {
            let (m, n) = (rng.gen_range(75..110), if case < 4 { rng.gen_range(20..100) } else { rng.gen_range(300..450) });
            let pattern = if case == 4 {
                // Dense rows (more than 32 entries of a row in most tiles) over two strips of column tiles.
                let density = rng.gen_range(0.6..0.9);
                random_pattern(&mut rng, m, n, density, false)
            } else if case == 5 {
                // Column tiles 1, 4, 7, ... empty: the strip skips a tile and reloads its next one's first chunk.
                let kept: Vec<(usize, usize)> = (0..m).flat_map(|r| (0..n).filter(move |c| (c / 64) % 3 != 1 && (r * 7 + c) % 3 == 0).map(move |c| (r, c))).collect();
                CsrPattern::<u32>::from_coo(m, n, &kept).unwrap()
            } else if case == 2 {
                // Entries only in rows 70.. (every other column): the first row of tiles is empty, and the density
                // stays above the tensor-core threshold (m >= 75: (m - 70)·n/2 >= m·n/64).
                let band: Vec<(usize, usize)> = (70..m).flat_map(|r| (0..n).filter(move |c| (r + c) % 2 == 0).map(move |c| (r, c))).collect();
                CsrPattern::<u32>::from_coo(m, n, &band).unwrap()
            } else {
                let density = rng.gen_range(0.05..0.4);
                random_pattern(&mut rng, m, n, density, case == 1)
            };
            assert!(sddmm_uses_tensor_cores::<bf16>(m, n, k, pattern.nnz()), "K={k} nnz={} {m}x{n}", pattern.nnz());
            for beta in [0.0f32, 0.75] {
                if case % 2 == 0 {
                    tc_case::<bf16>(&gpu, &dev, &mut rng, &pattern, k, beta);
                } else {
                    tc_case::<f16>(&gpu, &dev, &mut rng, &pattern, k, beta);
                }
            }
        }
    }
}

fn tc_case<T: Element>(gpu: &Gpu, dev: &str, rng: &mut StdRng, pattern: &CsrPattern<u32>, k: usize, beta: f32) {
    let (m, n) = (pattern.rows(), pattern.cols());
    let (a, sa) = random_matrix::<T>(rng, m, k, Some(Layout::RowMajor));
    let (b, sb) = random_matrix::<T>(rng, n, k, Some(Layout::RowMajor));
    let alpha = rng.gen_range(-2.0f32..2.0);
    let c0 = old_output::<T>(rng, pattern.nnz(), beta);
    let exp = expected(pattern, view(&a, sa), view(&b, sb), alpha, beta, &c0);
    let what = format!("{dev}: {} {m}x{n} K={k} nnz={} beta={beta}", T::DTYPE.name(), pattern.nnz());
    let dpat = DeviceCsrPattern::upload(gpu, pattern).unwrap();
    let run = |da: DeviceMatRef<'_, T>, db: DeviceMatRef<'_, T>| {
        let mut dc = gpu.upload(&c0).unwrap();
        sddmm(gpu, &dpat, da, db, alpha, beta, &mut dc).unwrap();
        gpu.download(&dc).unwrap()
    };
    let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
    let aligned = run(DeviceMatRef::new(&da, m, k, sa.ld, sa.layout).unwrap(), DeviceMatRef::new(&db, n, k, sb.ld, sb.layout).unwrap());
    assert_within(&what, &aligned, &exp);
    // One element of offset: no row is 16-byte aligned, every element is staged on its own.
    let shift = |v: &[T]| std::iter::once(T::from_f32(0.0)).chain(v.iter().copied()).collect::<Vec<_>>();
    let (sa2, sb2) = (gpu.upload(&shift(&a)).unwrap(), gpu.upload(&shift(&b)).unwrap());
    let shifted = run(
        DeviceMatRef::new(sa2.slice(1..1 + a.len()), m, k, sa.ld, sa.layout).unwrap(),
        DeviceMatRef::new(sb2.slice(1..1 + b.len()), n, k, sb.ld, sb.layout).unwrap(),
    );
    assert_bitwise(&format!("{what}: shifted"), &shifted, &aligned);
    // Column-major copies (K strided).
    let colmajor = |v: &[T], s: DenseShape, rows: usize| (0..rows * k).map(|i| v[(i % rows) * s.ld + i / rows]).collect::<Vec<_>>();
    let (ca, cb) = (gpu.upload(&colmajor(&a, sa, m)).unwrap(), gpu.upload(&colmajor(&b, sb, n)).unwrap());
    let strided = run(DeviceMatRef::col_major(&ca, m, k).unwrap(), DeviceMatRef::col_major(&cb, n, k).unwrap());
    assert_bitwise(&format!("{what}: column-major"), &strided, &aligned);
}

//! tile_mma: the tensor-core fragment layout (cuda/mma.cuh) proved against the CPU reference on every device
//! present (a real GPU when there is one; the SIMT emulator under several schedules with the `emulator` feature).
//!
//! Tolerance. Each output is d = c + sum_{k<16} a_k b_k. Every product of two f16 or two bf16 values is exact in
//! f32 (11- or 8-bit significands give at most 22 significant bits; the magnitudes used here keep every product
//! inside f32's normal range), so devices differ only in how they add 17 exact terms. Let S = |c| + sum |a_k b_k|
//! (every partial sum is at most S in magnitude) and u = 2^-24 (f32 unit roundoff):
//!   * the CPU reference adds them in order with 16 round-to-nearest fused multiply-adds: error <= 16 u S;
//!   * the tensor core's order and rounding are unspecified (PTX ISA, mma "Precision and rounding"); at least
//!     f32 precision means each of at most 17 additions is off by at most one ulp of a partial sum, <= 2u S
//!     (an ulp is up to 2u relative), even if it truncates: error <= 34 u S.
//!
//! Together |d_device - d_cpu| <= 50 u S < 2^-18 S = 64 u S, the tolerance used, relative to S per output (not
//! to |d|, which cancellation can make arbitrarily small). The ISA also leaves the handling of subnormal inputs
//! unspecified (a device may flush them), so products with a subnormal f16/bf16 factor (uniform f16 draws hit
//! the f16 subnormal range now and then) are added to the allowance in full. On the emulator the host version of
//! the instruction computes exactly the CPU reference's fmaf chain, so there the comparison is bitwise. Tiles
//! built from permutation matrices (normal values only) have one nonzero product per output and must be exact
//! on every device.
mod common;
use common::*;
use half::{bf16, f16};
use rand::prelude::*;
use sparse_lowrank::tile_mma::{TILE_A_LEN, TILE_B_LEN, TILE_C_LEN, TILE_K, TILE_M, TILE_N};
use sparse_lowrank::*;

/// 2^-18: see the module docs.
const REL_TOL: f64 = 1.0 / 262_144.0;

/// How the random inputs are drawn.
#[derive(Debug, Clone, Copy)]
enum Values {
    /// Uniform in [-2, 2) (common::random_values).
    Uniform,
    /// Sign * [1, 2) * 2^e over a wide exponent range: large and tiny magnitudes in one tile, so sums are
    /// dominated by a few terms and small ones are absorbed (exponents keep products normal in f32 and, for f16,
    /// inputs normal in f16).
    WideMagnitudes,
}

fn wide_value(rng: &mut StdRng, e_lo: i32, e_hi: i32) -> f32 {
    let m = rng.gen_range(1.0f32..2.0);
    let s = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
    s * m * 2f32.powi(rng.gen_range(e_lo..=e_hi))
}

fn draw<T: Element>(rng: &mut StdRng, n: usize, values: Values) -> Vec<T> {
    match values {
        Values::Uniform => random_values(rng, n),
        Values::WideMagnitudes => {
            // f16: normal range 2^-14 .. 65504; bf16: products of 2^±40 stay far inside f32's range.
            let (lo, hi) = if T::DTYPE == DType::F16 { (-14, 14) } else { (-40, 40) };
            (0..n).map(|_| T::from_f32(wide_value(rng, lo, hi))).collect()
        }
    }
}

fn draw_c(rng: &mut StdRng, n: usize, values: Values) -> Vec<f32> {
    match values {
        Values::Uniform => random_values(rng, n),
        Values::WideMagnitudes => (0..n).map(|_| wide_value(rng, -40, 40)).collect(),
    }
}

/// True for a nonzero value below the smallest normal number of `T` (2^-14 for f16, 2^-126 for bf16).
fn is_subnormal<T: Element>(x: T) -> bool {
    let min_normal = if T::DTYPE == DType::F16 { 6.103_515_6e-5 } else { f32::MIN_POSITIVE };
    let v = x.to_f32().abs();
    v != 0.0 && v < min_normal
}

/// Per output: S = |c| + sum_k |a_ik b_kj|, and the part of that sum whose products have a subnormal factor (a
/// device may flush those), both in f64.
fn magnitudes<T: Element>(a: &[T], b: &[T], c: &[f32], tiles: usize) -> (Vec<f64>, Vec<f64>) {
    let mut s = vec![0f64; tiles * TILE_C_LEN];
    let mut sub = vec![0f64; tiles * TILE_C_LEN];
    for t in 0..tiles {
        for i in 0..TILE_M {
            for j in 0..TILE_N {
                let e = t * TILE_C_LEN + i * TILE_N + j;
                let mut acc = (c[e] as f64).abs();
                for k in 0..TILE_K {
                    let (x, y) = (a[t * TILE_A_LEN + i * TILE_K + k], b[t * TILE_B_LEN + k * TILE_N + j]);
                    let p = (x.to_f32() as f64 * y.to_f32() as f64).abs();
                    acc += p;
                    if is_subnormal(x) || is_subnormal(y) {
                        sub[e] += p;
                    }
                }
                s[e] = acc;
            }
        }
    }
    (s, sub)
}

/// Uploads `data` into a buffer with `pad` poison elements before and after it, so the op sees a view at an odd
/// element offset and anything written outside the view shows.
fn upload_padded<T: cudarc::driver::DeviceRepr + Copy>(gpu: &Gpu, data: &[T], pad: usize, poison: T) -> DeviceVec<T> {
    let mut v = vec![poison; pad];
    v.extend_from_slice(data);
    v.extend(std::iter::repeat_n(poison, pad));
    gpu.upload(&v).unwrap()
}

/// One random case on one device: tile_mma against tile_mma_cpu.
fn check_case<T: TileMmaElement>(gpu: &Gpu, dev: &str, rng: &mut StdRng, values: Values) {
    let tiles = rng.gen_range(1..40);
    let pad = rng.gen_range(0..3);
    let a: Vec<T> = draw(rng, tiles * TILE_A_LEN, values);
    let b: Vec<T> = draw(rng, tiles * TILE_B_LEN, values);
    let c0 = draw_c(rng, tiles * TILE_C_LEN, values);
    let what = format!("{dev}: {} tiles={tiles} pad={pad} {values:?}", T::DTYPE.name());

    let mut expect = c0.clone();
    tile_mma_cpu(&a, &b, &mut expect, tiles).unwrap();
    let (s, subnormal) = magnitudes(&a, &b, &c0, tiles);

    let da = upload_padded(gpu, &a, pad, T::from_f32(f32::NAN));
    let db = upload_padded(gpu, &b, pad, T::from_f32(f32::NAN));
    let mut dc = upload_padded(gpu, &c0, pad, -7.25f32);
    let n_c = c0.len();
    tile_mma(
        gpu,
        da.slice(pad..pad + a.len()),
        db.slice(pad..pad + b.len()),
        dc.slice_mut(pad..pad + n_c),
        tiles,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let all = gpu.download(&dc).unwrap();
    assert!(all[..pad].iter().chain(&all[pad + n_c..]).all(|&x| x == -7.25), "{what}: wrote outside c");
    let got = &all[pad..pad + n_c];

    let bitwise = !gpu.is_cuda();
    let mut worst = 0f64; // largest |diff| / (2^-18 S), for SLR_TEST_VERBOSE
    for (e, (&g, &w)) in got.iter().zip(&expect).enumerate() {
        let (t, i, j) = (e / TILE_C_LEN, (e % TILE_C_LEN) / TILE_N, e % TILE_N);
        if bitwise {
            assert!(
                g.to_bits() == w.to_bits(),
                "{what}: tile {t} ({i},{j}): got {g:e}, CPU {w:e} (the emulator should match the CPU bitwise)"
            );
        } else {
            let err = (g as f64 - w as f64).abs();
            let allowed = REL_TOL * s[e] + subnormal[e];
            if allowed > 0.0 {
                worst = worst.max(err / allowed);
            }
            assert!(
                err <= allowed,
                "{what}: tile {t} ({i},{j}): got {g:e}, CPU {w:e}, |diff| {err:e} > 2^-18 * S + subnormal products = {allowed:e}"
            );
        }
    }
    if std::env::var("SLR_TEST_VERBOSE").is_ok() {
        eprintln!("{what}: largest |diff| is {worst:.4} of the tolerance{}", if bitwise { " (bitwise check)" } else { "" });
    }
}

fn run_property<T: TileMmaElement>(test: &str) {
    let mut rng = rng(test);
    for (dev, gpu) in devices(test) {
        for case in 0..8 {
            let values = if case % 3 == 2 { Values::WideMagnitudes } else { Values::Uniform };
            check_case::<T>(&gpu, &dev, &mut rng, values);
        }
    }
}

#[test]
fn tile_mma_matches_cpu_within_tolerance_bf16() {
    run_property::<bf16>("tile_mma_bf16");
}

#[test]
fn tile_mma_matches_cpu_within_tolerance_f16() {
    run_property::<f16>("tile_mma_f16");
}

/// Sign * [1, 2) * 2^e, e in [-10, 0]: normal in f16 and bf16 (so no device may flush them), never 0 or all 1.
fn normal_values<T: Element>(rng: &mut StdRng, n: usize) -> Vec<T> {
    (0..n).map(|_| T::from_f32(wide_value(rng, -10, 0))).collect()
}

/// Tiles whose products have one nonzero term per output, so every device must be exact whatever its summation
/// order: A a permutation matrix (D = rows of B permuted, plus 0), and B a column selection (D = columns of A).
/// A wrong fragment row or column shows as a wrong value at a named (row, col).
fn check_permutations<T: TileMmaElement>(gpu: &Gpu, dev: &str, rng: &mut StdRng) {
    let tiles = rng.gen_range(1..12);
    let one = T::from_f32(1.0);
    let zero = T::from_f32(0.0);
    // Case 1: A[t] = P (row i has its 1 at column pi(i)), B random: D[i][j] = B[pi(i)][j].
    let mut a = vec![zero; tiles * TILE_A_LEN];
    let mut perms = Vec::new();
    for t in 0..tiles {
        let mut pi: Vec<usize> = (0..TILE_K).collect();
        pi.shuffle(rng);
        for i in 0..TILE_M {
            a[t * TILE_A_LEN + i * TILE_K + pi[i]] = one;
        }
        perms.push(pi);
    }
    let b: Vec<T> = normal_values(rng, tiles * TILE_B_LEN);
    let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
    let mut dc = gpu.alloc_zeros::<f32>(tiles * TILE_C_LEN).unwrap();
    tile_mma(gpu, &da, &db, &mut dc, tiles).unwrap();
    let got = gpu.download(&dc).unwrap();
    for t in 0..tiles {
        for i in 0..TILE_M {
            for j in 0..TILE_N {
                let want = b[t * TILE_B_LEN + perms[t][i] * TILE_N + j].to_f32();
                let g = got[t * TILE_C_LEN + i * TILE_N + j];
                assert!(g == want, "{dev} {}: P*B tile {t} ({i},{j}): got {g}, want B[{}][{j}] = {want}", T::DTYPE.name(), perms[t][i]);
            }
        }
    }
    // Case 2: B[t][k][j] = 1 iff k = sigma(j) (8 distinct rows of 16), A random: D[i][j] = A[i][sigma(j)].
    let a: Vec<T> = normal_values(rng, tiles * TILE_A_LEN);
    let mut b = vec![zero; tiles * TILE_B_LEN];
    let mut sigmas = Vec::new();
    for t in 0..tiles {
        let mut ks: Vec<usize> = (0..TILE_K).collect();
        ks.shuffle(rng);
        for j in 0..TILE_N {
            b[t * TILE_B_LEN + ks[j] * TILE_N + j] = one;
        }
        sigmas.push(ks);
    }
    let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
    let mut dc = gpu.alloc_zeros::<f32>(tiles * TILE_C_LEN).unwrap();
    tile_mma(gpu, &da, &db, &mut dc, tiles).unwrap();
    let got = gpu.download(&dc).unwrap();
    for t in 0..tiles {
        for i in 0..TILE_M {
            for j in 0..TILE_N {
                let want = a[t * TILE_A_LEN + i * TILE_K + sigmas[t][j]].to_f32();
                let g = got[t * TILE_C_LEN + i * TILE_N + j];
                assert!(g == want, "{dev} {}: A*S tile {t} ({i},{j}): got {g}, want A[{i}][{}] = {want}", T::DTYPE.name(), sigmas[t][j]);
            }
        }
    }
}

#[test]
fn permutation_tiles_are_exact_on_every_device() {
    let mut rng = rng("tile_mma_permutations");
    for (dev, gpu) in devices("tile_mma_permutations") {
        check_permutations::<bf16>(&gpu, &dev, &mut rng);
        check_permutations::<f16>(&gpu, &dev, &mut rng);
    }
}

#[test]
fn cpu_reference_matches_a_naive_f64_product_closely_and_rejects_bad_lengths() {
    let mut rng = rng("tile_mma_cpu");
    let tiles = 3;
    let a: Vec<bf16> = random_values(&mut rng, tiles * TILE_A_LEN);
    let b: Vec<bf16> = random_values(&mut rng, tiles * TILE_B_LEN);
    let c0: Vec<f32> = random_values(&mut rng, tiles * TILE_C_LEN);
    let mut c = c0.clone();
    tile_mma_cpu(&a, &b, &mut c, tiles).unwrap();
    let (s, _) = magnitudes(&a, &b, &c0, tiles);
    for t in 0..tiles {
        for i in 0..TILE_M {
            for j in 0..TILE_N {
                let mut exact = c0[t * TILE_C_LEN + i * TILE_N + j] as f64;
                for k in 0..TILE_K {
                    exact += a[t * TILE_A_LEN + i * TILE_K + k].to_f32() as f64 * b[t * TILE_B_LEN + k * TILE_N + j].to_f32() as f64;
                }
                let e = t * TILE_C_LEN + i * TILE_N + j;
                // 16 roundings of at most u = 2^-24 of a partial sum <= S (17 u allows for second-order terms).
                assert!((c[e] as f64 - exact).abs() <= 17.0 / 16_777_216.0 * s[e], "tile {t} ({i},{j})");
            }
        }
    }
    let before = c.clone();
    let e = tile_mma_cpu(&a[1..], &b, &mut c, tiles).unwrap_err();
    assert_eq!(e, Error::LengthMismatch { op: "tile_mma_cpu", what: "a", expected: 768, got: 767 });
    let e = tile_mma_cpu(&a, &b, &mut c, tiles - 1).unwrap_err();
    assert_eq!(e, Error::LengthMismatch { op: "tile_mma_cpu", what: "a", expected: 512, got: 768 });
    let e = tile_mma_cpu(&a, &b, &mut c[..100], tiles).unwrap_err();
    assert_eq!(e, Error::LengthMismatch { op: "tile_mma_cpu", what: "c", expected: 384, got: 100 });
    assert_eq!(c, before, "c untouched");
    let mut empty: Vec<f32> = vec![];
    tile_mma_cpu::<f16>(&[], &[], &mut empty, 0).unwrap();
}

#[test]
fn device_op_rejects_bad_lengths_and_launches_nothing() {
    for (dev, gpu) in devices("tile_mma_bad_input") {
        let a = gpu.upload(&vec![bf16::from_f32(1.5); 2 * TILE_A_LEN]).unwrap();
        let b = gpu.upload(&vec![bf16::from_f32(-0.5); 2 * TILE_B_LEN]).unwrap();
        let c0 = vec![3.0f32; 2 * TILE_C_LEN];
        let mut c = gpu.upload(&c0).unwrap();

        let e = tile_mma(&gpu, a.slice(0..TILE_A_LEN), &b, &mut c, 2).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "tile_mma", what: "a", expected: 512, got: 256 }, "{dev}");
        let e = tile_mma(&gpu, &a, b.slice(0..TILE_B_LEN + 1), &mut c, 2).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "tile_mma", what: "b", expected: 256, got: 129 }, "{dev}");
        let e = tile_mma(&gpu, &a, &b, c.slice_mut(0..TILE_C_LEN), 2).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "tile_mma", what: "c", expected: 256, got: 128 }, "{dev}");
        // The tile count must describe all three buffers, not just fit in them.
        let e = tile_mma(&gpu, &a, &b, &mut c, 1).unwrap_err();
        assert_eq!(e, Error::LengthMismatch { op: "tile_mma", what: "a", expected: 256, got: 512 }, "{dev}");
        // An absurd tile count is a length mismatch, not an overflow.
        let e = tile_mma(&gpu, &a, &b, &mut c, usize::MAX).unwrap_err();
        assert!(matches!(e, Error::LengthMismatch { op: "tile_mma", what: "a", .. }), "{dev}: {e:?}");
        assert_eq!(gpu.download(&c).unwrap(), c0, "{dev}: c untouched");
        // Zero tiles with empty views is a no-op.
        tile_mma(&gpu, a.slice(0..0), b.slice(0..0), c.slice_mut(0..0), 0).unwrap();
        assert_eq!(gpu.download(&c).unwrap(), c0, "{dev}: c untouched");
        // c (f32) cannot overlap a or b (f16/bf16) through the safe API: the views have different element types
        // and the &mut borrow excludes others; the address-range guard is unit-tested in src/device/mod.rs.

        // And the good call works: every output is 3 + 16 * (1.5 * -0.5) = -9.
        tile_mma(&gpu, &a, &b, &mut c, 2).unwrap();
        assert_eq!(gpu.download(&c).unwrap(), vec![-9.0f32; 2 * TILE_C_LEN], "{dev}");
    }
}

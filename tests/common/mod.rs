//! Shared test helpers: the devices a GPU-vs-CPU property runs on, and random inputs.
#![allow(dead_code)]
use rand::prelude::*;
use sparse_lowrank::*;

/// Set to 1 to make a skipped GPU test fail (the GPU check script sets it).
pub const REQUIRE_GPU_ENV: &str = "SLR_REQUIRE_GPU";

/// A real CUDA device if there is one. Without one, prints "skipped: no CUDA device (...)" and returns None,
/// unless SLR_REQUIRE_GPU=1, which turns the skip into a failure.
pub fn cuda_or_skip(test: &str) -> Option<Gpu> {
    match Gpu::new(0) {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: SLR_REQUIRE_GPU=1 but no CUDA device: {e}");
            }
            eprintln!("{test}: skipped on CUDA: no CUDA device ({e})");
            None
        }
    }
}

/// Every device a GPU-vs-CPU property runs on here: the real GPU when present, and the SIMT emulator under the
/// round-robin schedule and two seeded random schedules (with the `emulator` feature).
///
/// `SLR_DEVICES=cuda` or `SLR_DEVICES=emulator` restricts the list (the GPU check's sanitizer runs use `cuda`).
pub fn devices(test: &str) -> Vec<(String, Gpu)> {
    let only = std::env::var("SLR_DEVICES").unwrap_or_default();
    let mut v = Vec::new();
    if only == "emulator" {
        eprintln!("{test}: CUDA device not tried (SLR_DEVICES=emulator)");
    } else if let Some(g) = cuda_or_skip(test) {
        v.push((g.describe(), g));
    }
    #[cfg(feature = "emulator")]
    if only != "cuda" {
        // Schedule seeds follow SLR_TEST_SEED when it is set, so a replay repeats the interleavings too.
        let seed: u64 = std::env::var("SLR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::thread_rng().gen());
        eprintln!("{test}: emulator schedule seeds {seed} and {} (replay with SLR_TEST_SEED)", seed ^ 0x9e37_79b9_7f4a_7c15);
        for s in [Schedule::RoundRobin, Schedule::Random { seed }, Schedule::Random { seed: seed ^ 0x9e37_79b9_7f4a_7c15 }] {
            let g = Gpu::emulated(s);
            v.push((g.describe(), g));
        }
    }
    #[cfg(not(feature = "emulator"))]
    eprintln!("{test}: emulator not built (run with --features emulator)");
    v
}

/// The emulator standing for the smaller GPUs we build for (round-robin): sm_80 (A100, 163 KiB of shared memory per
/// block) and sm_86/89 (99 KiB). For the tests of host choices that depend on the device (which kernel, which path,
/// how long a row one block takes), which no GPU run has covered on those cards. Empty without the emulator, and
/// under `SLR_DEVICES=cuda`.
pub fn smaller_targets(test: &str) -> Vec<(String, Gpu)> {
    #[cfg(feature = "emulator")]
    if std::env::var("SLR_DEVICES").unwrap_or_default() != "cuda" {
        return [EmulatedTarget::Sm80, EmulatedTarget::Sm86]
            .into_iter()
            .map(|t| {
                let g = Gpu::emulated_as(Schedule::RoundRobin, t);
                (g.describe(), g)
            })
            .collect();
    }
    eprintln!("{test}: no emulated smaller targets (emulator not built, or SLR_DEVICES=cuda)");
    Vec::new()
}

/// A fresh RNG per case, with its seed printed so a failure can be replayed with SLR_TEST_SEED.
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("SLR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("{test}: seed {seed} (replay with SLR_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// Row lengths for a random pattern: uniform density, or power-law skew (a few rows hold most entries), with some
/// rows forced empty.
pub fn random_pattern(rng: &mut StdRng, rows: usize, cols: usize, density: f64, skewed: bool) -> CsrPattern<u32> {
    let mut positions = Vec::new();
    for r in 0..rows {
        let row_density = if skewed {
            // Pareto-like: row weight ~ 1/(rank+1)^1.2, normalized so the mean stays near `density`.
            let w = 1.0 / ((r as f64 + 1.0).powf(1.2));
            (density * w * (rows as f64).min(50.0)).min(1.0)
        } else {
            density
        };
        if rng.gen_bool(0.1) {
            continue; // an empty row
        }
        for c in 0..cols {
            if rng.gen_bool(row_density.clamp(0.0, 1.0)) {
                positions.push((r, c));
            }
        }
    }
    positions.shuffle(rng);
    CsrPattern::from_coo(rows, cols, &positions).expect("valid random pattern")
}

/// Random values in [-2, 2), never all zeros or ones.
pub fn random_values<T: Element>(rng: &mut StdRng, n: usize) -> Vec<T> {
    (0..n).map(|_| T::from_f32(rng.gen_range(-2.0f32..2.0))).collect()
}

/// Bitwise equality that treats any two NaNs as equal.
pub fn same_bits<T: Element>(a: T, b: T) -> bool {
    let (x, y) = (a.to_f32(), b.to_f32());
    (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
}

/// Whether the device takes the sample bracket for this per-matrix selection of `keys` (as `rows` x `cols`): 1 or
/// 0, from the host's own sample and count (the device's sample keys are the reference's exactly: tests/topk.rs):
/// the bracket holds the k-th key when fewer than k keys lie above its upper key and at least k at or above its
/// lower one. Otherwise the device falls back to the radix passes, exact all the same. For i.i.d. keys that is
/// rare (the sample's share of the top k strays past the bracket's ~4.3σ margin: ~1e-5 per selection, more at
/// k/n near 1/2) but not impossible, so the tests that assert the bracket was taken expect it only where this says
/// so (before 2026-11-29 they expected it always, a CI failure about once in 3000 runs). 0 when the reference
/// refuses the selection (the NaN error). The regions' capacity (a quarter of their keys) is not modelled: for
/// these tests' uniform keys the candidates are a few percent of each region.
pub fn bracket_expected<T: sparse_lowrank::topk::TopkKey>(keys: &[T], rows: usize, cols: usize, spec: &TopkSpec<T>) -> usize {
    let Ok(cpu) = topk_cpu(keys, rows, cols, spec) else { return 0 };
    let k = cpu.cuts[0].count_beyond + cpu.cuts[0].count_equal_taken;
    let (lo, hi) = sparse_lowrank::topk::sample_bracket_keys_cpu(keys, k, spec);
    let (above, _nans, _hist, candidates) = sparse_lowrank::topk::bracket_pass_cpu(keys, lo, hi, spec);
    usize::from((above as usize) < k && above as usize + candidates.len() >= k)
}

//! Mutation checks for the SIMT emulator: each kernel source carries compile-time switches that plant one
//! class of bug (`SLR_FAULT_<NAME>` in cuda/*.cu; build.rs builds each variant for the host). For each, a test
//! shows the emulator catches it — a wrong answer against the CPU reference, or a fault report naming the
//! kernel — while the unmodified kernel passes on the same inputs. If a kernel changes so that a planted fault
//! stops being caught, these tests fail.
#![cfg(feature = "emulator")]
mod common;
use common::*;
use rand::prelude::*;
use sparse_lowrank::*;

fn schedules(rng: &mut StdRng) -> Vec<Schedule> {
    vec![Schedule::RoundRobin, Schedule::Random { seed: rng.gen() }, Schedule::Random { seed: rng.gen() }]
}

#[test]
fn every_planted_fault_has_a_mutation_test() {
    let tested = ["off_by_one_bound", "wrong_shuffle_lane", "missing_sync", "mma_fragment", "inclusive_rank"];
    for f in sparse_lowrank::device::emu::planted_faults() {
        assert!(tested.contains(&f), "planted fault {f} has no mutation test in this file");
    }
    assert!(Gpu::emulated_with_fault(Schedule::RoundRobin, "no_such_fault").is_err());
}

#[test]
fn off_by_one_bound_in_gather_is_reported_as_an_out_of_bounds_access() {
    let mut rng = rng("off_by_one_bound");
    for schedule in schedules(&mut rng) {
        // nnz a multiple of 4: the column-index buffer ends exactly at a guard page.
        let (rows, cols) = (16, 40);
        let mut positions: Vec<(usize, usize)> = (0..rows * cols).map(|i| (i / cols, i % cols)).collect();
        positions.shuffle(&mut rng);
        positions.truncate(4 * rng.gen_range(1..100));
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
        assert_eq!(mask_to_csr_agrees(schedule, None, &mask).unwrap(), true, "{schedule:?}: unmodified kernel");
        let caught = !matches!(mask_to_csr_agrees(schedule, Some("wrong_shuffle_lane"), &mask), Ok(true));
        assert!(caught, "{schedule:?}: planted wrong shuffle lane not caught");
    }
}

#[test]
fn missing_syncthreads_in_the_scan_is_caught_by_random_schedules() {
    let mut rng = rng("missing_sync");
    // Enough rows that every scan thread has a chunk.
    let mask = random_dense_mask(&mut rng, 1500, 20);
    assert_eq!(mask_to_csr_agrees(Schedule::RoundRobin, None, &mask).unwrap(), true);
    let mut caught = 0;
    let seeds: Vec<u64> = (0..4).map(|_| rng.gen()).collect();
    for &seed in &seeds {
        let schedule = Schedule::Random { seed };
        assert_eq!(mask_to_csr_agrees(schedule, None, &mask).unwrap(), true, "{schedule:?}: unmodified kernel");
        caught += !matches!(mask_to_csr_agrees(schedule, Some("missing_sync"), &mask), Ok(true)) as usize;
    }
    // Round-robin runs threads in order, so each reads its predecessor's sum after it was written: only random
    // interleavings expose the race. Every seed should; require at least one.
    assert!(caught >= 1, "missing __syncthreads() not caught under seeds {seeds:?}");
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

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
    let tested = ["off_by_one_bound", "wrong_shuffle_lane", "missing_sync", "mma_fragment"];
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

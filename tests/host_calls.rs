//! The host-side cost of each op, read from `Gpu::host_calls` on every device (a GPU when there is one, and the
//! emulator, which makes the same calls except that it has no cuBLAS): how often an op waits for the device,
//! launches and allocates. These are the costs a kernel's own time does not show (a synchronization drains the
//! stream; an allocation is a driver call), so the designs that promise "one synchronization" or "nothing
//! allocated per call" are held to it here.
mod common;
use common::*;
use half::bf16;
use rand::prelude::*;
use sparse_lowrank::*;

/// Whether a benchmark switch that changes an op's path is set (then the counts below do not apply).
fn path_switched(var: &str) -> bool {
    let set = std::env::var_os(var).is_some();
    if set {
        eprintln!("{var} is set: the default path's host calls are not checked");
    }
    set
}

/// The calls `f` makes on `gpu`.
fn calls(gpu: &Gpu, f: impl FnOnce()) -> HostCalls {
    let before = gpu.host_calls();
    f();
    gpu.host_calls() - before
}

#[test]
#[cfg(feature = "emulator")]
fn host_calls_count_what_the_handle_does_and_subtract() {
    let gpu = Gpu::emulated(Schedule::RoundRobin);
    let c = calls(&gpu, || {
        let v = gpu.upload(&[1.0f32, 2.0, 3.0]).unwrap();
        let z = gpu.alloc_zeros::<u32>(10).unwrap();
        gpu.download(&v).unwrap();
        gpu.download(&z).unwrap();
        gpu.synchronize().unwrap();
    });
    assert_eq!(
        c,
        HostCalls {
            launches: 0,
            library_calls: 0,
            allocations: 2,
            allocated_bytes: 12 + 40,
            uploads: 1,
            synchronizations: 3
        }
    );
}

/// Per-matrix top-k of a large matrix: the cut alone waits for the device once (the sample bracket, the
/// candidate pass with its choice and two narrowing levels for f32 are queued back to back); the mask too (the
/// same, then the tie count and the bits), and the CSR (the mask's count sizes it); per-row top-k once, in one
/// launch, and the per-row mask and CSR alone (`topk_mask_only`, `topk_csr_only`, NaN above infinity) not at all.
#[test]
fn topk_waits_for_the_device_once_for_the_cut_and_for_the_mask() {
    if path_switched("SLR_TOPK_PATH") {
        return;
    }
    let mut rng = rng("host_calls_topk");
    for (dev, gpu) in devices("host_calls_topk") {
        let (rows, cols) = (512, 1024); // 2^19 keys: the sample bracket's regime (at least 2^18)
        let k = rows * cols / 20;
        // Keys whose sample bracket holds the k-th (a fallback to the radix passes, ~5e-6 a draw, waits more).
        let keys: Vec<f32> = loop {
            let keys: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            if bracket_expected(&keys, rows, cols, &TopkSpec::count(k)) == 1 {
                break keys;
            }
        };
        let d = gpu.upload(&keys).unwrap();
        let cut = calls(&gpu, || {
            topk_threshold(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
        });
        assert_eq!(cut.synchronizations, 1, "{dev}: {cut:?}");
        // One pool allocation for the path's scratch (the sixth run timed ~3-5 µs of host time per allocation).
        assert!(cut.launches <= 5 && cut.allocations <= 1, "{dev}: {cut:?}");
        let mask = calls(&gpu, || {
            topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
        });
        assert_eq!(mask.synchronizations, 1, "{dev}: {mask:?}");
        // The scratch and the mask.
        assert!(mask.launches <= 6 && mask.allocations <= 2, "{dev}: {mask:?}");
        // The CSR: the mask's one read-back; its entry count is the cut's, so the scan's total is not read.
        let csr = calls(&gpu, || {
            topk_csr(&gpu, &d, rows, cols, &TopkSpec::count(k)).unwrap();
        });
        assert_eq!(csr.synchronizations, 1, "{dev}: {csr:?}");
        let per_row = calls(&gpu, || {
            topk_mask(&gpu, &d, rows, cols, &TopkSpec::count(64).per_row()).unwrap();
        });
        // One launch: the block per row writes its segment's state words itself (no topk_init_state first).
        assert_eq!((per_row.synchronizations, per_row.launches), (1, 1), "{dev}: {per_row:?}");
        // The mask alone per row, NaN ranked above infinity: the launch queued, nothing read back, no wait. Under
        // NanPolicy::Error the NaN count must come back first: one wait.
        let no_wait = calls(&gpu, || {
            topk_mask_only(&gpu, &d, rows, cols, &TopkSpec::count(64).per_row().nan(NanPolicy::AboveInfinity)).unwrap();
        });
        assert_eq!((no_wait.synchronizations, no_wait.launches), (0, 1), "{dev}: {no_wait:?}");
        let refusing = calls(&gpu, || {
            topk_mask_only(&gpu, &d, rows, cols, &TopkSpec::count(64).per_row()).unwrap();
        });
        assert_eq!((refusing.synchronizations, refusing.launches), (1, 1), "{dev}: {refusing:?}");
        // The CSR alone per row, likewise: k per row sizes it, so the selection, the mask's row counts, their scan,
        // the columns and the gather are all queued.
        let csr_no_wait = calls(&gpu, || {
            topk_csr_only(&gpu, &d, rows, cols, &TopkSpec::count(64).per_row().nan(NanPolicy::AboveInfinity)).unwrap();
        });
        assert_eq!(csr_no_wait.synchronizations, 0, "{dev}: {csr_no_wait:?}");
        // A small matrix is one such row: one launch where the radix passes took ~10.
        let small = gpu.upload(&keys[..96 * 128]).unwrap();
        let matrix = calls(&gpu, || {
            topk_mask(&gpu, &small, 96, 128, &TopkSpec::count(500)).unwrap();
        });
        assert_eq!((matrix.synchronizations, matrix.launches), (1, 1), "{dev}: {matrix:?}");
    }
}

/// SpMM and SDDMM are asynchronous (no synchronization, once the pattern's longest row is known) and, given
/// scratch, allocate nothing: a training step's products cost launches only.
#[test]
fn spmm_and_sddmm_never_wait_and_allocate_nothing_with_scratch() {
    let mut rng = rng("host_calls_spmm");
    for (dev, gpu) in devices("host_calls_spmm") {
        let (out_f, in_f) = (96, 160);
        let pattern = random_pattern(&mut rng, out_f, in_f, 0.05, false);
        let s = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
        let vals = gpu.upload(&random_values::<bf16>(&mut rng, pattern.nnz())).unwrap();
        for t in [1usize, 16, 70] {
            let x = gpu.upload(&random_values::<bf16>(&mut rng, t * in_f)).unwrap();
            let mut y = gpu.alloc_zeros::<bf16>(t * out_f).unwrap();
            let mut scratch = gpu.alloc_zeros::<bf16>(spmm_xst_scratch_len(t, in_f).max(1)).unwrap();
            let mut forward = || {
                spmm_xst_with_scratch(
                    &gpu,
                    &s,
                    &vals,
                    DeviceMatRef::row_major(&x, t, in_f).unwrap(),
                    1.0,
                    0.0,
                    DeviceMatMut::row_major(&mut y, t, out_f).unwrap(),
                    &mut scratch,
                )
                .unwrap()
            };
            forward(); // the first call may read the pattern's row offsets once (longest row, cached)
            let c = calls(&gpu, forward);
            assert_eq!((c.synchronizations, c.allocations), (0, 0), "{dev}: spmm_xst_with_scratch T = {t}: {c:?}");
            assert!(c.launches <= 2, "{dev}: spmm_xst_with_scratch T = {t}: {c:?}");
        }
        let t = 70;
        let dy = gpu.upload(&random_values::<bf16>(&mut rng, t * out_f)).unwrap();
        let x = gpu.upload(&random_values::<bf16>(&mut rng, t * in_f)).unwrap();
        let mut ds = gpu.alloc_zeros::<bf16>(pattern.nnz()).unwrap();
        let mut scratch = gpu.alloc_zeros::<bf16>(sddmm_weight_grad_scratch_len::<bf16>(t, out_f, in_f).max(1)).unwrap();
        let c = calls(&gpu, || {
            sddmm_weight_grad(
                &gpu,
                &s,
                DeviceMatRef::row_major(&dy, t, out_f).unwrap(),
                DeviceMatRef::row_major(&x, t, in_f).unwrap(),
                1.0,
                0.0,
                &mut ds,
                &mut scratch,
            )
            .unwrap();
        });
        assert_eq!((c.synchronizations, c.allocations), (0, 0), "{dev}: sddmm_weight_grad: {c:?}");
    }
}

/// The randomized SVD on its queued path waits for the device twice: R₂, then the status words with A's
/// non-finite count (the stream already drained), nothing else until it returns (the host-driven fallback would
/// add one per CholeskyQR pass).
#[test]
fn rsvd_queued_path_waits_for_the_device_twice() {
    if path_switched("SLR_RSVD_PATH") {
        return;
    }
    let mut rng = rng("host_calls_rsvd");
    for (dev, gpu) in devices("host_calls_rsvd") {
        let (m, n, r) = (120, 90, 8);
        let a = gpu.upload(&random_values::<f32>(&mut rng, m * n)).unwrap();
        let mut u = gpu.alloc_zeros::<f32>(m * r).unwrap();
        let mut vt = gpu.alloc_zeros::<f32>(r * n).unwrap();
        let mut s = vec![0f32; r];
        let mut info = RsvdInfo::default();
        let c = calls(&gpu, || {
            info = rsvd(
                &gpu,
                DeviceMatRef::row_major(&a, m, n).unwrap(),
                &RsvdConfig::new(r),
                DeviceMatMut::row_major(&mut u, m, r).unwrap(),
                &mut s,
                DeviceMatMut::row_major(&mut vt, r, n).unwrap(),
            )
            .unwrap();
        });
        assert!(info.device_queued, "{dev}: uniform random A: the queued path runs");
        assert_eq!(c.synchronizations, 2, "{dev}: {c:?}");
        // q = 2: the non-finite count and the sketch (2), 6 products with A, 4 one-pass bases (Gram, factor,
        // Y·R⁻¹, Gram, check: 20), 2 two-pass bases (12, and each second pass's near-identity step: 2), R₂ and the
        // 2 final products (3): 45 launches or library calls; 39 buffers (emulator count). A regression here is
        // host time on every call.
        assert!(c.launches + c.library_calls <= 45 && c.allocations <= 39, "{dev}: {c:?}");
    }
}

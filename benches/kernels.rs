//! GPU benchmarks, timed with CUDA events on the op's stream (criterion `iter_custom`), after a warm-up.
//! Without a CUDA device they print "skipped: no CUDA device" and exit 0.
//!
//! Every case reports its floor: the bytes it must move divided by the card's bandwidth measured in the same
//! run (a device-to-device copy, read + write counted). `SLR_BENCH_QUICK=1` shortens warm-up and measurement
//! (the GPU check script sets it); `SLR_BENCH_JSON=path` appends one JSON object per case; `SLR_BENCH_ONLY=topk`
//! runs only the named groups (gather_scatter, spmm, sddmm, csr_transpose, mask_to_csr, tile_mma, topk, rsvd).
//!
//!     cargo bench --bench kernels
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use half::bf16;
use rand::prelude::*;
use sparse_lowrank::*;
use sparse_lowrank::rsvd::SmallEigensolver;

struct Case {
    op: &'static str,
    rows: usize,
    cols: usize,
    density: f64,
    dtype: &'static str,
    /// Rows of the dense activations (T), 0 where the op has none.
    t: usize,
    bytes: usize,
    /// Arithmetic the case must do (0 for pure data movement).
    flops: usize,
}

/// Nominal f32 rate of the CUDA cores (FMA = 2 flops) on H100/H200 SXM (../shared/guide/anchors.md); not measured
/// here. Kernels on CUDA cores (SpMM, SDDMM) have this as their compute ceiling.
const FP32_PEAK_FLOPS: f64 = 67e12;

fn quick() -> bool {
    std::env::var("SLR_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// `SLR_BENCH_ONLY=topk,spmm` runs only those groups (their setup and `report` lines too, which criterion's own
/// name filter would not skip); unset runs all.
fn selected(group: &str) -> bool {
    std::env::var("SLR_BENCH_ONLY").map_or(true, |v| v.split(',').any(|g| g.trim() == group))
}

/// Device-to-device copy bandwidth (bytes read + bytes written per second), the ceiling for bandwidth-bound ops.
fn measure_copy_bandwidth(gpu: &Gpu) -> Result<f64> {
    let n = 256 << 20; // 256 Mi f32 = 1 GiB each way
    let src = gpu.alloc_zeros::<f32>(n)?.into_cuda().ok().expect("CUDA buffer");
    let mut dst = gpu.alloc_zeros::<f32>(n)?.into_cuda().ok().expect("CUDA buffer");
    let stream = gpu.cuda_stream().expect("CUDA device").clone();
    let ms = gpu.time_ms(10, || stream.memcpy_dtod(&src, &mut dst).map_err(|e| Error::Cuda { op: "memcpy_dtod", detail: e.to_string() }))?;
    Ok(2.0 * (n * 4) as f64 / (ms * 1e-3))
}

fn random_pattern(rng: &mut StdRng, rows: usize, cols: usize, density: f64) -> CsrPattern<u32> {
    // Sorted columns per row by sampling each position once: exact density in expectation, uniform.
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut idx = Vec::new();
    offsets.push(0u32);
    for _ in 0..rows {
        for c in 0..cols {
            if rng.gen_bool(density) {
                idx.push(c as u32);
            }
        }
        offsets.push(idx.len() as u32);
    }
    CsrPattern::new(rows, cols, offsets, idx).expect("valid pattern")
}

/// A skewed pattern like a principal-weight mask's: row i (in a random order) keeps a fraction
/// `min(1, c / (i + 1)^0.8)` of its columns, c chosen so that the whole pattern has `density`; a few rows are
/// (nearly) dense, most are far sparser than the mean.
fn skewed_pattern(rng: &mut StdRng, rows: usize, cols: usize, density: f64) -> CsrPattern<u32> {
    let weight = |i: usize| 1.0 / ((i + 1) as f64).powf(0.8);
    let total = |c: f64| (0..rows).map(|i| (c * weight(i)).min(1.0)).sum::<f64>() / rows as f64;
    let (mut lo, mut hi) = (0.0f64, rows as f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if total(mid) < density { lo = mid } else { hi = mid }
    }
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(rng);
    let mut fraction = vec![0f64; rows];
    for (i, &r) in order.iter().enumerate() {
        fraction[r] = (hi * weight(i)).min(1.0);
    }
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut idx = Vec::new();
    offsets.push(0u32);
    for &f in &fraction {
        for c in 0..cols {
            if rng.gen_bool(f) {
                idx.push(c as u32);
            }
        }
        offsets.push(idx.len() as u32);
    }
    CsrPattern::new(rows, cols, offsets, idx).expect("valid pattern")
}

fn report(case: &Case, ms: f64, bandwidth: f64, device: &str) {
    let gbps = case.bytes as f64 / (ms * 1e-3) / 1e9;
    let bytes_floor_ms = case.bytes as f64 / bandwidth * 1e3;
    let flops_floor_ms = case.flops as f64 / FP32_PEAK_FLOPS * 1e3;
    let floor_ms = bytes_floor_ms.max(flops_floor_ms);
    let tflops = case.flops as f64 / (ms * 1e-3) / 1e12;
    println!(
        "RESULT op={} shape={}x{} density={:.2} dtype={} T={} time_ms={:.4} GB/s={:.1} TFLOP/s={:.2} bytes_floor_ms={:.4} flops_floor_ms={:.4} of_floor={:.2} device=\"{}\"",
        case.op, case.rows, case.cols, case.density, case.dtype, case.t, ms, gbps, tflops, bytes_floor_ms, flops_floor_ms, floor_ms / ms, device
    );
    if let Ok(path) = std::env::var("SLR_BENCH_JSON") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(
                f,
                "{{\"op\":\"{}\",\"rows\":{},\"cols\":{},\"density\":{},\"dtype\":\"{}\",\"t\":{},\"time_ms\":{},\"gbps\":{},\"tflops\":{},\"floor_ms\":{},\"bytes\":{},\"flops\":{},\"bytes_floor_ms\":{},\"flops_floor_ms\":{},\"device\":\"{}\"}}",
                case.op, case.rows, case.cols, case.density, case.dtype, case.t, ms, gbps, tflops, floor_ms, case.bytes, case.flops, bytes_floor_ms, flops_floor_ms, device
            );
        }
    }
}

/// A baseline measured in the same run, in the results schema plus "baseline".
fn report_baseline(case: &Case, baseline: &str, ms: f64, device: &str) {
    println!("BASELINE op={} shape={}x{} density={:.2} dtype={} baseline=\"{baseline}\" time_ms={ms:.4}", case.op, case.rows, case.cols, case.density, case.dtype);
    if let Ok(path) = std::env::var("SLR_BENCH_JSON") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(
                f,
                "{{\"op\":\"{}\",\"rows\":{},\"cols\":{},\"density\":{},\"dtype\":\"{}\",\"t\":{},\"baseline\":\"{baseline}\",\"time_ms\":{ms},\"device\":\"{device}\"}}",
                case.op, case.rows, case.cols, case.density, case.dtype, case.t
            );
        }
    }
}

/// What every group needs: the GPU, its name, and the copy bandwidth (measured once per run).
struct Bench {
    gpu: Gpu,
    /// A second handle on the same device and stream whose buffers carry no cudarc events
    /// (`Gpu::new_untracked`): the same-run comparison of what `Gpu::new`'s per-allocation events cost.
    untracked: Option<Gpu>,
    device: String,
    bandwidth: f64,
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

impl Bench {
    /// The GPU for group `name`, or None (printing why) when the group is not selected or there is no CUDA device.
    fn open(name: &str) -> Option<Bench> {
        static BANDWIDTH: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        if !selected(name) {
            return None;
        }
        let gpu = match Gpu::new(0) {
            Ok(g) => g,
            Err(e) => {
                println!("{name} benchmarks skipped: no CUDA device ({e})");
                return None;
            }
        };
        let device = gpu.describe();
        let bandwidth = *BANDWIDTH.get_or_init(|| {
            let b = measure_copy_bandwidth(&gpu).expect("copy bandwidth");
            println!("device: {device}; measured copy bandwidth {:.0} GB/s (read + write)", b / 1e9);
            b
        });
        // SAFETY: the benchmarks use this handle's buffers (the ops' own scratch) only through our ops on this
        // handle, whose stream is the device's legacy default stream, the one `gpu` uses too; nothing hands them to
        // another stream.
        let untracked = unsafe { Gpu::new_untracked(0) }.ok();
        Some(Bench { gpu, untracked, device, bandwidth })
    }

    /// A criterion group, with short warm-up and measurement under SLR_BENCH_QUICK=1.
    fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
        let mut group = c.benchmark_group(name);
        if quick() {
            group.warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_millis(300)).sample_size(10);
        }
        group
    }

    /// Times `run` with criterion (CUDA events through `iter_custom`), then over `iters` more calls for the
    /// RESULT line and the JSON record; returns that time in ms.
    fn case(&self, group: &mut Group<'_>, label: String, case: &Case, iters: usize, mut run: impl FnMut() -> Result<()>) -> f64 {
        group.bench_function(label, |b| {
            b.iter_custom(|n| {
                let ms = self.gpu.time_ms(n as usize, &mut run).unwrap();
                Duration::from_secs_f64(ms * 1e-3 * n as f64)
            })
        });
        let ms = self.gpu.time_ms(iters, &mut run).unwrap();
        report(case, ms, self.bandwidth, &self.device);
        ms
    }
}

/// Y = X * W^T with W dense (out x in, row-major) through cuBLAS, the dense baseline for spmm_xst. In cuBLAS's
/// column-major terms Y^T (out x T) = W (stored in x out, transposed) * X^T (stored in x T).
fn cublas_dense_xwt(gpu: &Gpu, w: &DeviceVec<bf16>, x: &DeviceVec<bf16>, y: &mut DeviceVec<bf16>, t: usize, out: usize, inn: usize) -> Result<()> {
    use cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
    let blas = gpu.cublas()?;
    let cfg = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: out as i32,
        n: t as i32,
        k: inn as i32,
        alpha: bf16::ONE,
        lda: inn as i32,
        ldb: inn as i32,
        beta: bf16::ZERO,
        ldc: out as i32,
    };
    let (w, x, y) = (w.as_cuda().expect("CUDA buffer"), x.as_cuda().expect("CUDA buffer"), y.as_cuda_mut().expect("CUDA buffer"));
    // SAFETY: W holds out*in, X t*in and Y t*out elements, matching m, n, k and the leading dimensions above.
    unsafe { blas.gemm(cfg, w, x, y) }.map_err(|e| Error::Cuda { op: "cublas gemm", detail: format!("{e:?}") })
}

fn bench_spmm(c: &mut Criterion) {
    let Some(bench) = Bench::open("spmm") else { return };
    let gpu = &bench.gpu;
    let mut rng = StdRng::seed_from_u64(11);
    let shapes: &[(usize, usize)] = &[(4096, 4096), (11008, 4096), (4096, 11008)];
    let densities: &[f64] = if quick() { &[0.01, 0.05] } else { &[0.01, 0.05, 0.10, 0.30] };
    // T = 2048 (a training batch) in the quick run too, at 4096 x 4096 (the tensor-core kernel's regime).
    let ts_for = |(out, inn): (usize, usize)| -> &'static [usize] {
        if !quick() || (out, inn) == (4096, 4096) {
            &[1, 16, 128, 2048]
        } else {
            &[1, 16, 128]
        }
    };
    let mut group = Bench::group(c, "spmm");
    for &(out, inn) in shapes {
        let w: Vec<bf16> = (0..out * inn).map(|i| bf16::from_f32(((i * 7919) % 2001) as f32 * 1e-3 - 1.0)).collect();
        let d_w = gpu.upload(&w).unwrap();
        for &density in densities {
            let pattern = random_pattern(&mut rng, out, inn, density);
            let nnz = pattern.nnz();
            let ds = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
            let vals = gpu.upload(&vec![bf16::from_f32(0.01); nnz]).unwrap();
            for &t in ts_for((out, inn)) {
                let x = gpu.upload(&vec![bf16::from_f32(0.5); t * inn]).unwrap();
                let mut y = gpu.alloc_zeros::<bf16>(t * out).unwrap();
                let bytes = nnz * (4 + 2) + 4 * (out + 1) + 2 * t * (inn + out);
                let case = Case { op: "spmm_xst", rows: out, cols: inn, density, dtype: "bf16", t, bytes, flops: 2 * nnz * t };
                let label = format!("spmm_xst_bf16/{out}x{inn}/d{density}/T{t}");
                bench.case(&mut group, label, &case, 20, || spmm_xst(gpu, &ds, &vals, DeviceMatRef::row_major(&x, t, inn)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out)?));
                match gpu.time_ms(20, || cublas_dense_xwt(gpu, &d_w, &x, &mut y, t, out, inn)) {
                    Ok(dense_ms) => report_baseline(&case, "cuBLAS dense bf16", dense_ms, &bench.device),
                    Err(e) => println!("    cuBLAS baseline unavailable: {e}"),
                }
                if t > 2 {
                    // The same call with the caller's scratch for the transposed activations (what a training loop
                    // passes: no pool allocation and free per call), the default kernel.
                    let mut scratch = gpu.alloc_zeros::<bf16>(spmm_xst_scratch_len(t, inn).max(1)).unwrap();
                    match gpu.time_ms(20, || spmm_xst_with_scratch(gpu, &ds, &vals, DeviceMatRef::row_major(&x, t, inn)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out)?, &mut scratch)) {
                        Ok(ms) => report_baseline(&case, "our call with caller scratch (spmm_xst_with_scratch)", ms, &bench.device),
                        Err(e) => println!("    spmm_xst_with_scratch failed: {e}"),
                    }
                }
                // The other kernels on the same case: for T <= 2 both decode kernels (one of them is the call's,
                // by the row-length rule); for T > 2 the 8-t vector kernel with one lane per entry (instead of the
                // lane-group vector kernel below 64, the wide one from 64), the previous (serial) form of the
                // call's kernel, and where eligible the opt-in tensor-core kernel (32-token tiles below T = 256, and
                // 64-token ones).
                let mut run_again = || spmm_xst(gpu, &ds, &vals, DeviceMatRef::row_major(&x, t, inn)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out)?);
                if t <= 2 {
                    report_switched(gpu, &case, "SLR_SPMM_PATH", "warp", "our warp-per-row kernel", 20, &bench.device, &mut run_again);
                    report_switched(gpu, &case, "SLR_SPMM_PATH", "block", "our block-per-8-rows kernel", 20, &bench.device, &mut run_again);
                } else {
                    report_switched(gpu, &case, "SLR_SPMM_PATH", "vec", "our 8-t vector kernel", 20, &bench.device, &mut run_again);
                    if t < 64 {
                        report_switched(gpu, &case, "SLR_SPMM_PATH", "vec_serial", "our vector kernel without load pipelining", 20, &bench.device, &mut run_again);
                    } else if spmm::spmm_xst_uses_wide_kernel(gpu, &ds, t).unwrap_or(false) {
                        report_switched(gpu, &case, "SLR_SPMM_PATH", "wide_serial", "our wide kernel without index prefetch, 8 gathers in flight", 20, &bench.device, &mut run_again);
                    }
                    if tensor_cores_eligible(|| spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out, inn, nnz)) {
                        report_switched(gpu, &case, "SLR_SPMM_PATH", "tc", "our tensor-core kernel", 5, &bench.device, &mut run_again);
                        if t < 256 {
                            report_switched(gpu, &case, "SLR_SPMM_PATH", "tc64", "our 64-token tensor-core tiles", 5, &bench.device, &mut run_again);
                        }
                    }
                }
                if (out, inn) == (4096, 4096) && (t == 16 || t == 128) {
                    // The textbook form C = S B, B (in x n) row-major with n = t; same S, same bytes of S. Baselines:
                    // torch dense w@b and torch.sparse.mm (scripts/baselines.py).
                    let b = gpu.upload(&vec![bf16::from_f32(0.5); inn * t]).unwrap();
                    let mut cm = gpu.alloc_zeros::<bf16>(out * t).unwrap();
                    let case = Case { op: "spmm_sb", rows: out, cols: inn, density, dtype: "bf16", t, bytes, flops: 2 * nnz * t };
                    let label = format!("spmm_sb_bf16/{out}x{inn}/d{density}/n{t}");
                    bench.case(&mut group, label, &case, 20, || spmm_sb(gpu, &ds, &vals, DeviceMatRef::row_major(&b, inn, t)?, 1.0, 0.0, DeviceMatMut::row_major(&mut cm, out, t)?));
                    if t == 128 {
                        // The 32-column kernel against the wide one (n = 16 runs the 32-column kernel itself).
                        report_switched(gpu, &case, "SLR_SPMM_PATH", "vec", "our 32-column kernel", 20, &bench.device, || {
                            spmm_sb(gpu, &ds, &vals, DeviceMatRef::row_major(&b, inn, t)?, 1.0, 0.0, DeviceMatMut::row_major(&mut cm, out, t)?)
                        });
                    }
                    if tensor_cores_eligible(|| spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out, inn, nnz)) {
                        // The opt-in tensor-core path against the wide CUDA-core kernel at n = 128.
                        report_switched(gpu, &case, "SLR_SPMM_PATH", "tc", "our tensor-core kernel", 5, &bench.device, || {
                            spmm_sb(gpu, &ds, &vals, DeviceMatRef::row_major(&b, inn, t)?, 1.0, 0.0, DeviceMatMut::row_major(&mut cm, out, t)?)
                        });
                    }
                    // Narrow B (n = 1, 2, 8): the 32-column kernel with most lanes idle (lane-group kernels lost to
                    // it at every n measured on the H200 and are gone).
                    for n8 in if t == 16 { vec![1usize, 2, 8] } else { Vec::new() } {
                        let b8 = gpu.upload(&vec![bf16::from_f32(0.5); inn * n8]).unwrap();
                        let mut c8 = gpu.alloc_zeros::<bf16>(out * n8).unwrap();
                        let bytes = nnz * (4 + 2) + 4 * (out + 1) + 2 * n8 * (inn + out);
                        let case = Case { op: "spmm_sb", rows: out, cols: inn, density, dtype: "bf16", t: n8, bytes, flops: 2 * nnz * n8 };
                        let mut run8 = || spmm_sb(gpu, &ds, &vals, DeviceMatRef::row_major(&b8, inn, n8)?, 1.0, 0.0, DeviceMatMut::row_major(&mut c8, out, n8)?);
                        bench.case(&mut group, format!("spmm_sb_bf16/{out}x{inn}/d{density}/n{n8}"), &case, 20, &mut run8);
                    }
                }
            }
        }
    }
    // Skewed masks (a few dense rows; power-law row lengths), 11008 x 4096 at 5%: one warp per row meets rows of
    // thousands of entries. Reported as op spmm_xst_skewed next to dense cuBLAS on the same shape.
    let (out, inn) = (11008, 4096);
    let pattern = skewed_pattern(&mut rng, out, inn, 0.05);
    let nnz = pattern.nnz();
    let longest = (0..out).map(|r| pattern.row_range(r).len()).max().unwrap_or(0);
    println!("    skewed pattern {out}x{inn}: nnz {nnz}, longest row {longest}");
    let ds = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
    let vals = gpu.upload(&vec![bf16::from_f32(0.01); nnz]).unwrap();
    let d_w = gpu.upload(&vec![bf16::from_f32(0.01); out * inn]).unwrap();
    for &t in &[1usize, 16, 128] {
        let x = gpu.upload(&vec![bf16::from_f32(0.5); t * inn]).unwrap();
        let mut y = gpu.alloc_zeros::<bf16>(t * out).unwrap();
        let bytes = nnz * (4 + 2) + 4 * (out + 1) + 2 * t * (inn + out);
        let case = Case { op: "spmm_xst_skewed", rows: out, cols: inn, density: 0.05, dtype: "bf16", t, bytes, flops: 2 * nnz * t };
        bench.case(&mut group, format!("spmm_xst_skewed_bf16/{out}x{inn}/d0.05/T{t}"), &case, 20, || spmm_xst(gpu, &ds, &vals, DeviceMatRef::row_major(&x, t, inn)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out)?));
        match gpu.time_ms(20, || cublas_dense_xwt(gpu, &d_w, &x, &mut y, t, out, inn)) {
            Ok(dense_ms) => report_baseline(&case, "cuBLAS dense bf16", dense_ms, &bench.device),
            Err(e) => println!("    cuBLAS baseline unavailable: {e}"),
        }
        let others: &[(&str, &str)] = if t <= 2 {
            &[("warp", "our warp-per-row kernel"), ("block", "our block-per-8-rows kernel")]
        } else {
            &[("vec", "our 8-t vector kernel"), ("tc", "our tensor-core kernel")]
        };
        for &(path, label) in others {
            if path == "tc" && !tensor_cores_eligible(|| spmm::spmm_xst_uses_tensor_cores::<bf16>(t, out, inn, nnz)) {
                continue;
            }
            report_switched(gpu, &case, "SLR_SPMM_PATH", path, label, 20, &bench.device, || {
                spmm_xst(gpu, &ds, &vals, DeviceMatRef::row_major(&x, t, inn)?, 1.0, 0.0, DeviceMatMut::row_major(&mut y, t, out)?)
            });
        }
    }
    group.finish();
}

fn bench_gather_scatter(c: &mut Criterion) {
    let Some(bench) = Bench::open("gather_scatter") else { return };
    let gpu = &bench.gpu;
    let mut rng = StdRng::seed_from_u64(7);
    let shapes: &[(usize, usize)] = &[(4096, 4096), (11008, 4096)];
    let densities: &[f64] = if quick() { &[0.01, 0.05] } else { &[0.01, 0.05, 0.10, 0.30] };
    let mut group = Bench::group(c, "gather_scatter");
    for &(rows, cols) in shapes {
        let w: Vec<bf16> = (0..rows * cols).map(|i| bf16::from_f32((i % 1000) as f32 * 1e-3)).collect();
        let d_w_src = gpu.upload(&w).unwrap();
        for &density in densities {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let nnz = pattern.nnz();
            let dpat = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
            let offsets = 4 * (rows + 1);
            let mut out = gpu.alloc_zeros::<bf16>(nnz).unwrap();
            let case = Case { op: "gather", rows, cols, density, dtype: "bf16", t: 0, bytes: nnz * (4 + 2 + 2) + offsets, flops: 0 };
            let name = format!("gather_bf16/{rows}x{cols}/d{density}");
            bench.case(&mut group, name, &case, 50, || gather(gpu, &dpat, DeviceMatRef::row_major(&d_w_src, rows, cols)?, &mut out));

            let delta = gpu.upload(&vec![1e-3f32; nnz]).unwrap();
            let mut d_w = gpu.upload(&w).unwrap();
            let case = Case { op: "scatter_add", rows, cols, density, dtype: "bf16<-f32", t: 0, bytes: nnz * (4 + 4 + 2 + 2) + offsets, flops: 0 };
            let name = format!("scatter_add_bf16_f32/{rows}x{cols}/d{density}");
            bench.case(&mut group, name, &case, 50, || scatter_add(gpu, &dpat, &delta, 1.0, DeviceMatMut::row_major(&mut d_w, rows, cols)?));
        }
    }
    group.finish();
}

/// SDDMM as the weight gradient of a sparse Linear layer: S (out x in) at 1% and 5%, T tokens (= K).
///
/// `sddmm_weight_grad`: `sddmm_weight_grad` from dY (T x out) and X (T x in) row-major, as a framework hands them over
/// (two transposes into scratch, then the kernel). Its floor is the op's, not this design's: dY and X read once,
/// indices, outputs written; the transposes' extra write + read of both shows up as a lower of_floor.
/// `sddmm`: the kernel alone on operands already K-contiguous (A: out x T, B: in x T row-major); floor: the A
/// rows with entries and B rows named by a column once, indices, outputs. Both: 2·nnz·T flops.
fn bench_sddmm(c: &mut Criterion) {
    let Some(bench) = Bench::open("sddmm") else { return };
    let gpu = &bench.gpu;
    let mut rng = StdRng::seed_from_u64(11);
    let shapes: &[(usize, usize)] = &[(4096, 4096), (11008, 4096)];
    let densities: &[f64] = &[0.01, 0.05];
    // T = 2048 (training-size token counts) in quick mode too: the tensor-core kernel's case (no torch baseline in
    // the quick baselines script there; the same-run CUDA-core kernel is the comparison).
    let token_counts: &[usize] = &[16, 128, 2048];
    let mut group = Bench::group(c, "sddmm");
    for &(rows, cols) in shapes {
        for &density in densities {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let nnz = pattern.nnz();
            let dpat = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
            let rows_used = (0..rows).filter(|&r| pattern.row_offsets()[r] < pattern.row_offsets()[r + 1]).count();
            let mut col_used = vec![false; cols];
            pattern.col_indices().iter().for_each(|&c| col_used[c as usize] = true);
            let cols_used = col_used.iter().filter(|&&u| u).count();
            let indices = 4 * (rows + 1 + nnz);
            let mut ds = gpu.alloc_zeros::<bf16>(nnz).unwrap();
            for &t in token_counts {
                let flops = 2 * nnz * t;
                let dy: Vec<bf16> = (0..t * rows).map(|i| bf16::from_f32(((i % 97) as f32 - 48.0) * 1e-3)).collect();
                let x: Vec<bf16> = (0..t * cols).map(|i| bf16::from_f32(((i % 89) as f32 - 44.0) * 1e-2)).collect();
                let (d_dy, d_x) = (gpu.upload(&dy).unwrap(), gpu.upload(&x).unwrap());
                let mut scratch = gpu.alloc_zeros::<bf16>(sddmm_weight_grad_scratch_len::<bf16>(t, rows, cols)).unwrap();
                let case = Case {
                    op: "sddmm_weight_grad",
                    rows,
                    cols,
                    density,
                    dtype: "bf16",
                    t,
                    bytes: t * (rows + cols) * 2 + indices + nnz * 2,
                    flops,
                };
                let mut run = || {
                    sddmm_weight_grad(
                        gpu,
                        &dpat,
                        DeviceMatRef::row_major(&d_dy, t, rows)?,
                        DeviceMatRef::row_major(&d_x, t, cols)?,
                        1.0,
                        0.0,
                        &mut ds,
                        &mut scratch,
                    )
                };
                bench.case(&mut group, format!("sddmm_weight_grad_bf16/{rows}x{cols}/d{density}/T{t}"), &case, 20, &mut run);
                report_switched(gpu, &case, "SLR_SDDMM_PATH", "serial", "our kernel without index prefetch", 20, &bench.device, &mut run);
                if tensor_cores_eligible(|| sparse_lowrank::sddmm::sddmm_uses_tensor_cores::<bf16>(rows, cols, t, nnz)) {
                    report_switched(gpu, &case, "SLR_SDDMM_PATH", "tc", "our tensor-core kernel", 20, &bench.device, &mut run);
                }

                // The kernel alone: A = dYᵀ (rows x T) and B = Xᵀ (cols x T), row-major, K contiguous.
                let a: Vec<bf16> = (0..rows * t).map(|i| dy[(i % t) * rows + i / t]).collect();
                let b: Vec<bf16> = (0..cols * t).map(|i| x[(i % t) * cols + i / t]).collect();
                let (d_a, d_b) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
                let case = Case {
                    op: "sddmm",
                    rows,
                    cols,
                    density,
                    dtype: "bf16",
                    t,
                    bytes: (rows_used + cols_used) * t * 2 + indices + nnz * 2,
                    flops,
                };
                let mut run = || sddmm(gpu, &dpat, DeviceMatRef::row_major(&d_a, rows, t)?, DeviceMatRef::row_major(&d_b, cols, t)?, 1.0, 0.0, &mut ds);
                bench.case(&mut group, format!("sddmm_bf16/{rows}x{cols}/d{density}/T{t}"), &case, 20, &mut run);
                report_switched(gpu, &case, "SLR_SDDMM_PATH", "serial", "our kernel without index prefetch", 20, &bench.device, &mut run);
                if tensor_cores_eligible(|| sparse_lowrank::sddmm::sddmm_uses_tensor_cores::<bf16>(rows, cols, t, nnz)) {
                    report_switched(gpu, &case, "SLR_SDDMM_PATH", "tc", "our tensor-core kernel", 20, &bench.device, &mut run);
                }
            }
        }
    }
    group.finish();
}

/// csr_transpose (once per pattern: mask, popcounts, scan with its one read-back, placement, row offsets; the
/// interval includes the host-side synchronization and allocations a caller pays) and transpose_values (every
/// step). Floors: csr_transpose must read S and write Sᵀ and perm, 12 * nnz + 4 * (rows + cols + 2) bytes, whatever
/// the method (the mask it adds is not counted); transpose_values reads perm and values and writes values.
fn bench_csr_transpose(c: &mut Criterion) {
    let Some(bench) = Bench::open("csr_transpose") else { return };
    let gpu = &bench.gpu;
    let mut rng = StdRng::seed_from_u64(11);
    let mut group = Bench::group(c, "csr_transpose");
    for &(rows, cols) in &[(4096usize, 4096usize), (11008, 4096)] {
        for &density in &[0.01, 0.05] {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let nnz = pattern.nnz();
            let dpat = DeviceCsrPattern::upload(gpu, &pattern).unwrap();
            let case = Case { op: "csr_transpose", rows, cols, density, dtype: "u32", t: 0, bytes: 12 * nnz + 4 * (rows + cols + 2), flops: 0 };
            bench.case(&mut group, format!("csr_transpose/{rows}x{cols}/d{density}"), &case, 20, || csr_transpose(gpu, &dpat).map(drop));

            let t = csr_transpose(gpu, &dpat).unwrap();
            let values = gpu.upload(&vec![bf16::from_f32(1e-3); nnz]).unwrap();
            let mut out = gpu.alloc_zeros::<bf16>(nnz).unwrap();
            let case = Case { op: "transpose_values", rows, cols, density, dtype: "bf16", t: 0, bytes: nnz * (4 + 2 + 2), flops: 0 };
            bench.case(&mut group, format!("transpose_values_bf16/{rows}x{cols}/d{density}"), &case, 50, || transpose_values(gpu, &t, &values, &mut out));
        }
    }
    group.finish();
}

/// mask_to_csr: a device bit mask (LIFT/SpIEL masks recomputed on a cadence) to the CSR the sparse ops take.
/// Floor (the op's, not the design's): the mask read once (rows * cols / 8 bytes), the offsets (4 * (rows + 1)) and
/// columns (4 * nnz) written. The kernels read the mask twice and round-trip the row counts (2026-11-29: the floor
/// counted that, 1.4-1.8x the op's bytes).
/// Baseline (scripts/baselines.py): torch's dense bool mask to_sparse_csr().
fn bench_mask_to_csr(c: &mut Criterion) {
    let Some(bench) = Bench::open("mask_to_csr") else { return };
    let gpu = &bench.gpu;
    let mut rng = StdRng::seed_from_u64(13);
    let mut group = Bench::group(c, "mask_to_csr");
    for &(rows, cols) in &[(4096usize, 4096usize), (11008, 4096)] {
        for &density in &[0.01, 0.05] {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let mask = DeviceBitMask::upload(gpu, &BitMask::from_pattern(&pattern)).unwrap();
            let case = Case { op: "mask_to_csr", rows, cols, density, dtype: "bits", t: 0, bytes: rows * cols / 8 + 4 * (rows + 1) + 4 * pattern.nnz(), flops: 0 };
            bench.case(&mut group, format!("mask_to_csr/{rows}x{cols}/d{density}"), &case, 20, || mask_to_csr(gpu, &mask).map(drop));
        }
    }
    group.finish();
}

/// tile_mma: a batch of independent 16x16 x 16x8 tensor-core tile products (the fragment-layout proof op). Floor
/// per tile: 512 + 256 bytes of bf16 A and B, 512 + 512 bytes of f32 C read and written; 4096 flops.
/// Baseline (scripts/baselines.py): torch.bmm on the same batch.
fn bench_tile_mma(c: &mut Criterion) {
    let Some(bench) = Bench::open("tile_mma") else { return };
    let gpu = &bench.gpu;
    let mut group = Bench::group(c, "tile_mma");
    let tiles = 1usize << 16;
    let a = gpu.upload(&vec![bf16::from_f32(0.5); tiles * 256]).unwrap();
    let b = gpu.upload(&vec![bf16::from_f32(0.25); tiles * 128]).unwrap();
    let mut cc = gpu.alloc_zeros::<f32>(tiles * 128).unwrap();
    let case = Case { op: "tile_mma", rows: tiles, cols: 16, density: 1.0, dtype: "bf16", t: 0, bytes: tiles * 1792, flops: tiles * 4096 };
    bench.case(&mut group, format!("tile_mma_bf16/{tiles}"), &case, 50, || tile_mma(gpu, &a, &b, &mut cc, tiles));
    group.finish();
}

/// Top-k by magnitude (radix select, cuda/topk.cu): the mask over a whole weight at k = 0.1%, 1%, 5%, 25%, the
/// CSR output at 5%, and the per-row top 64 of rows of 4096 (the shapes with 4096 columns) and of 14336. `density`
/// is k / n.
/// `bytes` is the one-read floor: the keys read once (n * size_of::<T>()), and for topk_csr its outputs too (k
/// columns and values, the row offsets). The bracket and per-row paths read the keys about once; the radix passes
/// (the fallback, and the "radix passes over all keys" line) 6 times for f32 and 4 for 16-bit keys.
fn bench_topk(c: &mut Criterion) {
    let Some(bench) = Bench::open("topk") else { return };
    let shapes: &[(usize, usize)] = if quick() { &[(4096, 4096), (4096, 11008)] } else { &[(4096, 4096), (4096, 11008), (14336, 4096)] };
    let fractions: &[f64] = if quick() { &[0.01, 0.05] } else { &[0.001, 0.01, 0.05, 0.25] };
    let mut group = Bench::group(c, "topk");
    for &(rows, cols) in shapes {
        topk_cases::<f32>(&bench, &mut group, rows, cols, fractions, false);
        topk_cases::<bf16>(&bench, &mut group, rows, cols, fractions, false);
    }
    // Rows longer than 44 KiB (LLaMA-3-8B's down_proj, 4096 x 14336): one block per row since 2026-11-27 (57 KiB of
    // f32 keys, 28 KiB of bf16), the radix passes before (their same-run line); per row only.
    topk_cases::<f32>(&bench, &mut group, 4096, 14336, &[], true);
    topk_cases::<bf16>(&bench, &mut group, 4096, 14336, &[], true);
    group.finish();
}

fn topk_cases<T: TopkKey>(bench: &Bench, group: &mut Group<'_>, rows: usize, cols: usize, fractions: &[f64], per_row_only: bool) {
    let gpu = &bench.gpu;
    let n = rows * cols;
    // Roughly normal weights (sum of uniforms from a fixed LCG), rounded to T: bf16 gives many ties.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let w: Vec<T> = (0..n).map(|_| T::from_f32((uniform() + uniform() + uniform()) * 0.05)).collect();
    let d = gpu.upload(&w).unwrap();
    let dtype = T::DTYPE.name();
    let bytes = n * T::DTYPE.size();
    let mut run_case = |op: &'static str, density: f64, spec: TopkSpec<T>| {
        // The CSR's floor adds its outputs: k columns and values and the row offsets.
        let k = (density * n as f64).round() as usize;
        let bytes = if op == "topk_csr" { bytes + k * (4 + T::DTYPE.size()) + 4 * (rows + 1) } else { bytes };
        let case = Case { op, rows, cols, density, dtype, t: 0, bytes, flops: 0 };
        let call = |g: &Gpu| -> Result<()> {
            match op {
                "topk_csr" => topk_csr(g, &d, rows, cols, &spec).map(|_| ()),
                "topk_threshold" => topk_threshold(g, &d, rows, cols, &spec).map(|_| ()),
                _ => topk_mask(g, &d, rows, cols, &spec).map(|_| ()),
            }
        };
        let mut run = || call(gpu);
        bench.case(group, format!("{op}_{dtype}/{rows}x{cols}/d{density}"), &case, 10, &mut run);
        // The same call down the radix passes over all keys (the path before the sample bracket and the
        // one-block rows), as a baseline from the same run.
        report_switched(gpu, &case, "SLR_TOPK_PATH", "radix", "radix passes over all keys", 10, &bench.device, &mut run);
        if op == "topk_threshold" && density < 1.0 {
            // The cut's round-based pass (one block per 16 k keys, three barriers and a global atomic per round of
            // 2048), replaced by the streaming pass on 2026-11-27 (1.1-1.8x faster on the H200, eighth run).
            report_switched(gpu, &case, "SLR_TOPK_PATH", "rounds", "round-based bracket pass", 10, &bench.device, &mut run);
        } else if op != "topk_mask_per_row" && density < 1.0 {
            // The mask's streaming pass (one warp per 16 k keys), 2-22% slower than the round-based default on the
            // H200 (eighth run); timed in the same run while it stays.
            report_switched(gpu, &case, "SLR_TOPK_PATH", "stream_mask", "streaming mask pass (one warp per chunk)", 10, &bench.device, &mut run);
        }
        report_pool_trimmed(gpu, &case, 10, &bench.device, &mut run);
        if let (Some(u), true) = (&bench.untracked, matches!(op, "topk_threshold" | "topk_mask_per_row")) {
            // Since 2026-11-29: `Gpu::new` keeps cudarc's per-buffer events (two created per allocation); this is
            // the same call on a handle without them (`Gpu::new_untracked`), the default until then.
            match u.time_ms(10, || call(u)) {
                Ok(ms) => report_baseline(&case, "our call on an untracked handle (Gpu::new_untracked: no per-buffer events)", ms, &bench.device),
                Err(e) => println!("    untracked handle failed: {e}"),
            }
        }
        if op == "topk_mask_per_row" {
            // Since 2026-11-28 (twentieth session): the mask alone, NaN ranked above infinity, queued with nothing
            // read back (topk_mask_only); the difference to our time is topk_mask's read-back and cuts.
            let only = spec.nan(NanPolicy::AboveInfinity);
            match gpu.time_ms(10, || topk_mask_only(gpu, &d, rows, cols, &only).map(|_| ())) {
                Ok(ms) => report_baseline(&case, "our mask alone, nothing read back (topk_mask_only)", ms, &bench.device),
                Err(e) => println!("    topk_mask_only failed: {e}"),
            }
            // And the CSR of the same selection with its values, nothing read back either (k per row sizes it).
            match gpu.time_ms(10, || topk_csr_only(gpu, &d, rows, cols, &only).map(|_| ())) {
                Ok(ms) => report_baseline(&case, "our CSR and values alone, nothing read back (topk_csr_only)", ms, &bench.device),
                Err(e) => println!("    topk_csr_only failed: {e}"),
            }
        }
        if op != "topk_mask_per_row" {
            // The bracket paths' kernels after the sample launched one after another, as before 2026-11-27.
            report_switched(gpu, &case, "SLR_PDL", "off", "without programmatic dependent launch", 10, &bench.device, &mut run);
        }
        if op != "topk_mask_per_row" && density < 1.0 {
            // The sample's two keys by the one-block digit-level kernel (until 2026-11-28; now the 128-block
            // ranking kernel, src/topk.rs sample_levels_forced).
            report_switched(gpu, &case, "SLR_TOPK_PATH", "sample_levels", "sample by one-block digit levels", 10, &bench.device, &mut run);
        }
        // The read-back at the end of every top-k call into pageable memory, as before 2026-11-27 (now through a
        // page-locked staging buffer).
        report_switched(gpu, &case, "SLR_PINNED", "off", "read back into pageable memory", 10, &bench.device, &mut run);
        if std::env::var_os("SLR_TOPK_PROFILE").is_none() {
            // One more call with the per-step device times printed (CUDA events between the launches).
            std::env::set_var("SLR_TOPK_PROFILE", "1");
            if let Err(e) = run() {
                println!("    {op} profile failed: {e}");
            }
            std::env::remove_var("SLR_TOPK_PROFILE");
        }
    };
    if per_row_only {
        run_case("topk_mask_per_row", 64.0 / cols as f64, TopkSpec::count(64).per_row());
        return;
    }
    for &f in fractions {
        run_case("topk_mask", f, TopkSpec::count((f * n as f64).round() as usize));
    }
    // The cut alone at every fraction: the goal (threshold + count within 1.3x the one-read floor).
    for &f in fractions {
        run_case("topk_threshold", f, TopkSpec::count((f * n as f64).round() as usize));
    }
    // k = n: every entry (one pass for the smallest key and its count, the mask all ones).
    run_case("topk_mask", 1.0, TopkSpec::count(n));
    run_case("topk_csr", 0.05, TopkSpec::count((0.05 * n as f64).round() as usize));
    if cols == 4096 {
        run_case("topk_mask_per_row", 64.0 / cols as f64, TopkSpec::count(64).per_row());
    }
}

/// Whether an opt-in tensor-core kernel would run for a case (`uses` asked with this thread opted in).
fn tensor_cores_eligible(uses: impl FnOnce() -> bool) -> bool {
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(true);
    let eligible = uses();
    sparse_lowrank::opt_in_tensor_cores_on_this_thread(false);
    eligible
}

/// Times `f` once more with the library switch `var=value` set (another kernel or path of the same op) and reports
/// it as the baseline `label` from the same run; does nothing when the caller already set `var`.
#[allow(clippy::too_many_arguments)]
fn report_switched(gpu: &Gpu, case: &Case, var: &str, value: &str, label: &str, iters: usize, device: &str, f: impl FnMut() -> Result<()>) {
    if std::env::var_os(var).is_some() {
        return;
    }
    std::env::set_var(var, value);
    match gpu.time_ms(iters, f) {
        Ok(ms) => report_baseline(case, &format!("{label} ({var}={value})"), ms, device),
        Err(e) => println!("    {label} failed: {e}"),
    }
    std::env::remove_var(var);
}

/// Times `f` once more with the device pool's release threshold at CUDA's default (0): every synchronization inside
/// a call (top-k's and rSVD's read-backs) then unmaps the scratch freed so far and the next call maps it again.
/// `Gpu::new` keeps freed memory instead; this baseline measures what that is worth. Restores the threshold.
fn report_pool_trimmed(gpu: &Gpu, case: &Case, iters: usize, device: &str, f: impl FnMut() -> Result<()>) {
    let Ok(Some(kept)) = gpu.memory_pool_release_threshold() else { return };
    let label = "our call, pool trimmed at every sync (release threshold 0)";
    match gpu.set_memory_pool_release_threshold(0).and_then(|_| gpu.time_ms(iters, f)) {
        Ok(ms) => report_baseline(case, label, ms, device),
        Err(e) => println!("    {label} failed: {e}"),
    }
    if let Err(e) = gpu.set_memory_pool_release_threshold(kept) {
        println!("    restoring the pool's release threshold failed: {e}");
    }
}

/// One more call, for the paths its orthonormalizations took (printed next to the timing) and, with
/// `SLR_RSVD_PROFILE` set for it, the time of each step (synchronized after every step, so it goes to the log,
/// not into the timing above).
fn run_info(gpu: &Gpu, d32: &DeviceVec<f32>, d16: &DeviceVec<bf16>, dtype: &str, m: usize, n: usize, cfg: &RsvdConfig) -> String {
    let r = cfg.rank;
    let (mut du, mut dvt) = (gpu.alloc_zeros::<f32>(m * r).unwrap(), gpu.alloc_zeros::<f32>(r * n).unwrap());
    let mut s = vec![0f32; r];
    let (u, vt) = (DeviceMatMut::row_major(&mut du, m, r).unwrap(), DeviceMatMut::row_major(&mut dvt, r, n).unwrap());
    let was_set = std::env::var_os("SLR_RSVD_PROFILE").is_some();
    std::env::set_var("SLR_RSVD_PROFILE", "1");
    let info = if dtype == "f32" {
        rsvd(gpu, DeviceMatRef::row_major(d32, m, n).unwrap(), cfg, u, &mut s, vt)
    } else {
        rsvd(gpu, DeviceMatRef::row_major(d16, m, n).unwrap(), cfg, u, &mut s, vt)
    };
    if !was_set {
        std::env::remove_var("SLR_RSVD_PROFILE");
    }
    format!("{info:?}")
}

/// `C (m x l) = A (m x n, row-major, f32) · Ω (n x l, column-major)` through cuBLAS: the product the randomized SVD
/// repeats 2q + 2 times (with A or Aᵀ), timed alone as the measured GEMM floor of `rsvd`.
fn cublas_sgemm_a_omega(gpu: &Gpu, a: &DeviceVec<f32>, omega: &DeviceVec<f32>, c: &mut DeviceVec<f32>, m: usize, n: usize, l: usize) -> Result<()> {
    use cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
    let blas = gpu.cublas()?;
    // Column-major terms: A row-major m x n is Aᵀ column-major (n x m, ld n): C = op_T(Aᵀ stored) · Ω.
    let cfg = GemmConfig { transa: cublasOperation_t::CUBLAS_OP_T, transb: cublasOperation_t::CUBLAS_OP_N, m: m as i32, n: l as i32, k: n as i32, alpha: 1f32, lda: n as i32, ldb: n as i32, beta: 0f32, ldc: m as i32 };
    let (a, o, c) = (a.as_cuda().expect("CUDA buffer"), omega.as_cuda().expect("CUDA buffer"), c.as_cuda_mut().expect("CUDA buffer"));
    // SAFETY: A holds m*n, Ω n*l and C m*l elements, matching m, n, k and the leading dimensions above.
    unsafe { blas.gemm(cfg, a, o, c) }.map_err(|e| Error::Cuda { op: "cublas sgemm", detail: format!("{e:?}") })
}

/// `A = C_m · diag(σ) · C_nᵀ` (m x n, row-major f32 on the device) with C_m, C_n the orthonormal DCT-II bases
/// (column k: `sqrt((k == 0 ? 1 : 2) / len) · cos(π k (i + 1/2) / len)`) and `σ_k = 1 / (k + 1)` for k < min(m, n):
/// a matrix with exactly known singular values and a power-law spectrum like an LLM weight's, built the same way
/// by scripts/baselines.py, so the optimal rank-r error `sqrt(Σ_{k>=r} σ_k²)` is known for every method. Host: the
/// two bases (one cos each entry); device: one cuBLAS sgemm.
fn dct_power_law(gpu: &Gpu, m: usize, n: usize) -> Result<(DeviceVec<f32>, Vec<f64>)> {
    use cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
    let kk = m.min(n);
    let sigma: Vec<f64> = (0..kk).map(|k| 1.0 / (k + 1) as f64).collect();
    // Column-major bases: P = C_m diag(σ) (m x K), Q = C_n (n x K).
    let basis = |len: usize, scale: &dyn Fn(usize) -> f64| -> Vec<f32> {
        let mut v = vec![0f32; len * kk];
        for k in 0..kk {
            let norm = (if k == 0 { 1.0 } else { 2.0 } / len as f64).sqrt() * scale(k);
            for i in 0..len {
                v[i + k * len] = (norm * (std::f64::consts::PI * k as f64 * (i as f64 + 0.5) / len as f64).cos()) as f32;
            }
        }
        v
    };
    let p = gpu.upload(&basis(m, &|k| sigma[k]))?;
    let q = gpu.upload(&basis(n, &|_| 1.0))?;
    let mut a = gpu.alloc_zeros::<f32>(m * n)?;
    let blas = gpu.cublas()?;
    // Row-major A (m x n) is column-major Aᵀ (n x m) = Q Pᵀ.
    let cfg = GemmConfig { transa: cublasOperation_t::CUBLAS_OP_N, transb: cublasOperation_t::CUBLAS_OP_T, m: n as i32, n: m as i32, k: kk as i32, alpha: 1f32, lda: n as i32, ldb: m as i32, beta: 0f32, ldc: n as i32 };
    // SAFETY: Q holds n*K, P m*K and A m*n elements, matching m, n, k and the leading dimensions above.
    unsafe { blas.gemm(cfg, q.as_cuda().expect("CUDA buffer"), p.as_cuda().expect("CUDA buffer"), a.as_cuda_mut().expect("CUDA buffer")) }.map_err(|e| Error::Cuda { op: "cublas sgemm", detail: format!("{e:?}") })?;
    Ok((a, sigma))
}

/// `‖A − U diag(s) Vᵀ‖_F / sqrt(Σ_{k>=r} σ_k²)` for the matrix of [`dct_power_law`]: ⟨A, U S Vᵀ⟩ from W = A·V
/// (one cuBLAS product), ‖U S Vᵀ‖² from UᵀU and VᵀV on the host, ‖A‖² = Σ σ_k², all summed in f64.
#[allow(clippy::too_many_arguments)]
fn rsvd_error_ratio(gpu: &Gpu, a: &DeviceVec<f32>, sigma: &[f64], m: usize, n: usize, u: &DeviceVec<f32>, s: &[f32], vt: &DeviceVec<f32>) -> Result<f64> {
    let r = s.len();
    let mut w = gpu.alloc_zeros::<f32>(m * r)?;
    // W (m x r, column-major) = A · V, with Vt row-major r x n read as V column-major n x r.
    cublas_sgemm_a_omega(gpu, a, vt, &mut w, m, n, r)?;
    let (uh, wh, vh) = (gpu.download(u)?, gpu.download(&w)?, gpu.download(vt)?);
    let mut cross = 0f64;
    for k in 0..r {
        let dot: f64 = (0..m).map(|i| uh[i * r + k] as f64 * wh[i + k * m] as f64).sum();
        cross += s[k] as f64 * dot;
    }
    let gram = |x: &[f32], len: usize, at: &dyn Fn(usize, usize) -> usize| -> Vec<f64> {
        let mut g = vec![0f64; r * r];
        for k in 0..r {
            for l in k..r {
                let d: f64 = (0..len).map(|i| x[at(i, k)] as f64 * x[at(i, l)] as f64).sum();
                g[k * r + l] = d;
                g[l * r + k] = d;
            }
        }
        g
    };
    let (uu, vv) = (gram(&uh, m, &|i, k| i * r + k), gram(&vh, n, &|j, k| k * n + j));
    let mut b2 = 0f64;
    for k in 0..r {
        for l in 0..r {
            b2 += s[k] as f64 * s[l] as f64 * uu[k * r + l] * vv[k * r + l];
        }
    }
    let a2: f64 = sigma.iter().map(|x| x * x).sum();
    let opt2: f64 = sigma[r.min(sigma.len())..].iter().map(|x| x * x).sum();
    Ok(((a2 - 2.0 * cross + b2).max(0.0) / opt2).sqrt())
}

/// An accuracy record next to the timings: `error_ratio` = rank-r error / optimal rank-r error (1 = optimal).
fn report_accuracy(case: &Case, who: &str, ratio: f64, device: &str) {
    println!("ACCURACY op={} shape={}x{} dtype={} T={} of=\"{who}\" error_ratio={ratio:.5}", case.op, case.rows, case.cols, case.dtype, case.t);
    if let Ok(path) = std::env::var("SLR_BENCH_JSON") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(
                f,
                "{{\"op\":\"{}\",\"rows\":{},\"cols\":{},\"density\":{},\"dtype\":\"{}\",\"t\":{},\"accuracy_of\":\"{who}\",\"error_ratio\":{ratio},\"device\":\"{device}\"}}",
                case.op, case.rows, case.cols, case.density, case.dtype, case.t
            );
        }
    }
}

/// Randomized SVD of LLaMA-2-7B-sized weights, r in {16, 64, 128, 256}, f32 and bf16 A, default p and q (TF32 off).
/// Floor: the 2q + 2 products with A, `2·m·n·l` flops each at the f32 CUDA-core peak, or A read 2q + 2 times from
/// HBM (plus the bf16 conversion pass), whichever is larger; the CholeskyQR Grams, l x l host steps and final
/// products are extra. The measured GEMM floor (one cuBLAS sgemm A·Ω times 2q + 2) is reported as a baseline.
fn bench_rsvd(c: &mut Criterion) {
    let Some(bench) = Bench::open("rsvd") else { return };
    let gpu = &bench.gpu;
    let shapes: &[(usize, usize)] = &[(4096, 4096), (4096, 11008)];
    // Every rank of the grid in quick mode too; r = 64 and 256 there with the short list of lines
    // (`all_lines` below), so that one GPU check reports the whole grid within its time.
    let ranks: &[usize] = &[16, 64, 128, 256];
    let mut group = Bench::group(c, "rsvd");
    group.sample_size(10);
    for &(m, n) in shapes {
        // A power-law spectrum (σ_k = 1/(k+1)) with known singular values (dct_power_law): full rank, so the
        // orthonormalizations take the CholeskyQR paths, and the error of every method can be put against the
        // optimum. scripts/baselines.py builds the same matrix for torch.svd_lowrank.
        let (d32, sigma) = match dct_power_law(gpu, m, n) {
            Ok(x) => x,
            Err(e) => {
                println!("    rsvd {m}x{n}: test matrix unavailable: {e}");
                continue;
            }
        };
        let a32 = gpu.download(&d32).unwrap();
        let d16 = gpu.upload(&a32.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>()).unwrap();
        drop(a32);
        for &r in ranks {
            let cfg = RsvdConfig::new(r);
            let l = (r + cfg.oversample).min(m.min(n));
            let products = 2 * cfg.power_iters + 2;
            let mut du = gpu.alloc_zeros::<f32>(m * r).unwrap();
            let mut dvt = gpu.alloc_zeros::<f32>(r * n).unwrap();
            let mut s = vec![0f32; r];
            for dtype in ["f32", "bf16"] {
                // The bytes floor: A read as stored by each of the 2q + 2 products (2026-11-29: it added a conversion
                // pass and read a bf16 A as f32, which are the design's, not the op's).
                let a_bytes = if dtype == "f32" { 4 } else { 2 };
                let case = Case { op: "rsvd", rows: m, cols: n, density: 0.0, dtype, t: r, bytes: products * m * n * a_bytes, flops: products * 2 * m * n * l };
                // One call with configuration `c` into du, s, dvt.
                let call_on = |g: &Gpu, c: &RsvdConfig, du: &mut DeviceVec<f32>, s: &mut [f32], dvt: &mut DeviceVec<f32>| {
                    let (u, vt) = (DeviceMatMut::row_major(du, m, r)?, DeviceMatMut::row_major(dvt, r, n)?);
                    if dtype == "f32" {
                        rsvd(g, DeviceMatRef::row_major(&d32, m, n)?, c, u, s, vt).map(|_| ())
                    } else {
                        rsvd(g, DeviceMatRef::row_major(&d16, m, n)?, c, u, s, vt).map(|_| ())
                    }
                };
                let call = |c: &RsvdConfig, du: &mut DeviceVec<f32>, s: &mut [f32], dvt: &mut DeviceVec<f32>| call_on(gpu, c, du, s, dvt);
                let mut run = || call(&cfg, &mut du, &mut s, &mut dvt);
                bench.case(&mut group, format!("rsvd_{dtype}/{m}x{n}/r{r}"), &case, 5, &mut run);
                if let (Some(ug), true) = (&bench.untracked, r == 16) {
                    // Since 2026-11-29: `Gpu::new` keeps cudarc's per-buffer events (two per allocation; an rSVD
                    // allocates ~39 times); the same call on a handle without them, the default until then.
                    // Its own outputs (`run` holds du, s and dvt), allocated on that handle.
                    let (mut du2, mut dvt2, mut s2) = (ug.alloc_zeros::<f32>(m * r).unwrap(), ug.alloc_zeros::<f32>(r * n).unwrap(), vec![0f32; r]);
                    match ug.time_ms(5, || call_on(ug, &cfg, &mut du2, &mut s2, &mut dvt2)) {
                        Ok(ms) => report_baseline(&case, "our call on an untracked handle (Gpu::new_untracked: no per-buffer events)", ms, &bench.device),
                        Err(e) => println!("    untracked handle failed: {e}"),
                    }
                }
                // The grid's other ranks in quick mode (r = 64 and 256) get the short list: our time, the packed
                // Cholesky kernel (at r = 256, l = 266, the same-run comparison of the wide tiled kernel), the split
                // power iteration, our error, our profile and the GEMM floor.
                let all_lines = !quick() || matches!(r, 16 | 128);
                if all_lines {
                    report_switched(gpu, &case, "SLR_RSVD_PATH", "host", "our host-driven CholeskyQR", 5, &bench.device, &mut run);
                }
                report_switched(gpu, &case, "SLR_RSVD_PATH", "packed", "our shared-memory Cholesky kernel", 5, &bench.device, &mut run);
                if matches!(r, 128 | 256) {
                    // Since 2026-11-28 (twentieth session) the last Q's and Q₂'s second passes take X = I − (G − I)/2
                    // where G is within 2⁻¹² of I (near_identity_step; the profile's info counts them); this forces
                    // the Cholesky kernel there, as before: the same-run A/B of that change (~35 µs per pass
                    // expected at l = 138, more at l = 266).
                    report_switched(gpu, &case, "SLR_RSVD_PATH", "cholesky2", "our second passes by the Cholesky kernel", 5, &bench.device, &mut run);
                    // Since 2026-11-28 (twentieth session) the device small SVD (l >= 96) is queued before the wait
                    // for the status words, its launches overlapping the power iteration; this queues it after the
                    // wait, as before.
                    report_switched(gpu, &case, "SLR_RSVD_PATH", "small_after_wait", "our device small SVD queued after the status wait", 5, &bench.device, &mut run);
                }
                if all_lines {
                    // Each only where it switches something: the Gram is split into row chunks only up to l = 64
                    // (GRAM_SPLIT_MAX_L), and faer is already the default below l = 96.
                    if l <= 64 {
                        report_switched(gpu, &case, "SLR_RSVD_PATH", "onegram", "our Gram as one product", 5, &bench.device, &mut run);
                    }
                    if l >= 96 {
                        report_switched(gpu, &case, "SLR_RSVD_SMALL", "faer", "our small eigenproblem on the host (faer)", 5, &bench.device, &mut run);
                    }
                    // syevd with R₂ read back and the products and finish on the host: since 2026-11-28 (seventeenth
                    // session) also the same-run baseline of the default's device finish (our f64 kernels around syevd,
                    // σ and a status read back), which replaced cuBLAS f64 products and a 610 KB read-back at l = 138.
                    report_switched(gpu, &case, "SLR_RSVD_SMALL", "cusolver", "our small eigenproblem on cuSOLVER syevd", 5, &bench.device, &mut run);
                    // Opt-in since 2026-11-28: the device small SVD with our eigensolver instead of syevd (l <= 160; one
                    // block in the eleventh run, five kernels since). (syevj, never faster than syevd on the H200, and the device small SVD
                    // at every l, the default from l = 96 since the eighth run, are no longer timed.)
                    report_switched(gpu, &case, "SLR_RSVD_SMALL", "own", "our small SVD on the device with our own eigensolver", 5, &bench.device, &mut run);
                    // Opt-in since 2026-11-29 (twenty-second session): the device small SVD with cuSOLVER's batched
                    // eigensolver on a batch of one instead of syevd (unmeasured).
                    // Without it (libcusolver before 11.7.1) the switch falls back to the host's small SVD: no line.
                    if sparse_lowrank::rsvd::syev_batched_available(gpu) {
                        report_switched(gpu, &case, "SLR_RSVD_SMALL", "batched", "our small SVD on the device with cuSOLVER syevBatched", 5, &bench.device, &mut run);
                    } else {
                        println!("    cuSOLVER syevBatched unavailable (libcusolver before 11.7.1): no line");
                    }
                    report_pool_trimmed(gpu, &case, 5, &bench.device, &mut run);
                }
                if std::env::var_os("SLR_RSVD_GEMM").is_none() {
                    // Opt-in since 2026-11-28 (eighteenth session): the 2q + 1 power-iteration products on bf16 tensor
                    // cores, X split exactly into three bf16 slices and A used as its exact slices (a bf16 A as stored,
                    // an f32 A split in three: 3 or 6 products of slices, the parts summed; the projection stays
                    // sgemm). Its time, alone and with our eigensolver (the two opt-ins together: the whole call
                    // without syevd and with 5 of 6 products off sgemm); its error and profile below, same run.
                    report_switched(gpu, &case, "SLR_RSVD_GEMM", "bf16x3", "our power iteration on bf16 tensor cores, A and X in exact bf16 slices", 5, &bench.device, &mut run);
                }
                if all_lines && std::env::var_os("SLR_RSVD_GEMM").is_none() {
                    // The projection split too, and no f32 copy of A (`SLR_RSVD_GEMM=bf16x3_all`).
                    report_switched(gpu, &case, "SLR_RSVD_GEMM", "bf16x3_all", "every product with A on bf16 tensor cores, no f32 copy of A", 5, &bench.device, &mut run);
                    if std::env::var_os("SLR_RSVD_SMALL").is_none() {
                        std::env::set_var("SLR_RSVD_SMALL", "own");
                        report_switched(gpu, &case, "SLR_RSVD_GEMM", "bf16x3", "the power iteration on bf16 slices with our own eigensolver (SLR_RSVD_SMALL=own)", 5, &bench.device, &mut run);
                        report_switched(gpu, &case, "SLR_RSVD_GEMM", "bf16x3_all", "every product on bf16 slices with our own eigensolver (SLR_RSVD_SMALL=own)", 5, &bench.device, &mut run);
                        std::env::remove_var("SLR_RSVD_SMALL");
                    }
                }
                match run().and_then(|_| rsvd_error_ratio(gpu, &d32, &sigma, m, n, &du, &s, &dvt)) {
                    // For bf16 A the error is against the f32 matrix (the input's rounding included).
                    Ok(ratio) => report_accuracy(&case, "ours", ratio, &bench.device),
                    Err(e) => println!("    rsvd error unavailable: {e}"),
                }
                if all_lines && std::env::var_os("SLR_RSVD_SMALL").is_none() {
                    // The small eigenproblem on syevd (forced at every l) and on our eigensolver: each one's
                    // accuracy and where its time goes, same run.
                    for (small, on) in [("cusolver", "cuSOLVER"), ("own", "our own eigensolver"), ("batched", "cuSOLVER syevBatched")] {
                        if small == "batched" && !sparse_lowrank::rsvd::syev_batched_available(gpu) {
                            continue;
                        }
                        std::env::set_var("SLR_RSVD_SMALL", small);
                        match call(&cfg, &mut du, &mut s, &mut dvt).and_then(|_| rsvd_error_ratio(gpu, &d32, &sigma, m, n, &du, &s, &dvt)) {
                            Ok(ratio) => report_accuracy(&case, &format!("ours, small eigenproblem on {on}"), ratio, &bench.device),
                            Err(e) => println!("    rsvd small eigenproblem on {on} unavailable: {e}"),
                        }
                        let info = run_info(gpu, &d32, &d16, dtype, m, n, &cfg);
                        std::env::remove_var("SLR_RSVD_SMALL");
                        println!("    rsvd {dtype} {m}x{n} r={r} (SLR_RSVD_SMALL={small}): {info}");
                    }
                }
                if all_lines && std::env::var_os("SLR_RSVD_GEMM").is_none() {
                    // The split products' error ratios and profiles (their times are reported above).
                    for (mode, who) in [("bf16x3", "ours, power iteration on bf16 slices"), ("bf16x3_all", "ours, every product on bf16 slices")] {
                        std::env::set_var("SLR_RSVD_GEMM", mode);
                        match call(&cfg, &mut du, &mut s, &mut dvt).and_then(|_| rsvd_error_ratio(gpu, &d32, &sigma, m, n, &du, &s, &dvt)) {
                            Ok(ratio) => report_accuracy(&case, who, ratio, &bench.device),
                            Err(e) => println!("    rsvd {mode} error unavailable: {e}"),
                        }
                        let info = run_info(gpu, &d32, &d16, dtype, m, n, &cfg);
                        std::env::remove_var("SLR_RSVD_GEMM");
                        println!("    rsvd {dtype} {m}x{n} r={r} (SLR_RSVD_GEMM={mode}): {info}");
                    }
                }
                if all_lines {
                    // The opt-in TF32 power iteration (the projection stays f32): its time and its error, same run.
                    let tf = RsvdConfig { tf32: true, ..cfg };
                    let mut run_tf32 = || call(&tf, &mut du, &mut s, &mut dvt);
                    match gpu.time_ms(5, &mut run_tf32) {
                        Ok(ms) => report_baseline(&case, "our call with tf32 = true (TF32 power iteration, f32 projection)", ms, &bench.device),
                        Err(e) => println!("    rsvd tf32 failed: {e}"),
                    }
                    match run_tf32().and_then(|_| rsvd_error_ratio(gpu, &d32, &sigma, m, n, &du, &s, &dvt)) {
                        Ok(ratio) => report_accuracy(&case, "ours, tf32 = true", ratio, &bench.device),
                        Err(e) => println!("    rsvd tf32 error unavailable: {e}"),
                    }
                }
                let info = run_info(gpu, &d32, &d16, dtype, m, n, &cfg);
                println!("    rsvd {dtype} {m}x{n} r={r}: {info}");
                if all_lines && std::env::var_os("SLR_RSVD_PATH").is_none() {
                    // The host-driven path's profile too, for the same-run comparison of where the time goes.
                    std::env::set_var("SLR_RSVD_PATH", "host");
                    let info = run_info(gpu, &d32, &d16, dtype, m, n, &cfg);
                    std::env::remove_var("SLR_RSVD_PATH");
                    println!("    rsvd {dtype} {m}x{n} r={r} (SLR_RSVD_PATH=host): {info}");
                }
                let omega = gpu.alloc_zeros::<f32>(n * l).unwrap();
                let mut y = gpu.alloc_zeros::<f32>(m * l).unwrap();
                match gpu.time_ms(10, || cublas_sgemm_a_omega(gpu, &d32, &omega, &mut y, m, n, l)) {
                    Ok(g) => report_baseline(&case, &format!("cuBLAS sgemm A*Omega x{products} (GEMM floor)"), g * products as f64, &bench.device),
                    Err(e) => println!("    cuBLAS GEMM floor unavailable: {e}"),
                }
                if all_lines && dtype == "bf16" {
                    // The split product alone (`SLR_RSVD_GEMM=bf16x3`'s per-product cost with its split of X and sum
                    // of parts; Omega's zeros time as any values do), against the sgemm line above.
                    match gpu.time_ms(10, || sparse_lowrank::rsvd::split_product_launch_for_bench(gpu, DeviceMatRef::row_major(&d16, m, n)?, &omega, l)) {
                        Ok(g) => report_baseline(&case, &format!("our split bf16 product A*Omega x{products} (SLR_RSVD_GEMM floor)"), g * products as f64, &bench.device),
                        Err(e) => println!("    split bf16 product unavailable: {e}"),
                    }
                }
            }
        }
    }
    // The l x l Cholesky/inverse kernel alone (the queued path's factor launch, first pass, on the Gram matrix of a
    // Gaussian 2l x l basis), for the sketches of r = 16, 128 and 256: the rSVD profile's "device Cholesky/inverse"
    // lap (~60 µs per call at l = 138 in the seventh run, against ~19 µs estimated for the tiled kernel) includes
    // host time whenever the device waits for the next launch; this times back-to-back launches only. Case t = l.
    // At l = 266 ours is the wide tiled kernel (sm_90; estimated ~70 µs) against the packed one.
    let mut rng = StdRng::seed_from_u64(5);
    for l in [26usize, 138, 266] {
        let rows = 2 * l + 10;
        let y: Vec<f64> = (0..rows * l).map(|_| rng.gen_range(-1.0f64..1.0)).collect();
        let g: Vec<f32> = (0..l * l).map(|e| (0..rows).map(|k| y[k * l + e % l] * y[k * l + e / l]).sum::<f64>() as f32).collect();
        let (Ok(dg), Ok(mut status)) = (gpu.upload(&g), gpu.alloc_zeros::<u32>(1)) else { continue };
        let case = Case { op: "rsvd_factor", rows: l, cols: l, density: 0.0, dtype: "f32", t: l, bytes: 2 * l * l * 4, flops: l * l * l * 2 / 3 };
        let mut run = || sparse_lowrank::rsvd::cholqr_factor_launch_for_bench(gpu, &dg, l, rows, &mut status);
        bench.case(&mut group, format!("rsvd_factor/l{l}"), &case, 20, &mut run);
        report_switched(gpu, &case, "SLR_RSVD_PATH", "packed", "our shared-memory Cholesky kernel", 20, &bench.device, &mut run);
        // Since 2026-11-28 (twentieth session): a second pass's l x l step when its G is near I (here I + E,
        // ‖E‖_F = 1e-5, as after the power iteration): the near-identity step and the factor kernel's empty launch,
        // back to back, against the factor kernel above. Floor: l² words read twice and written once.
        let near: Vec<f32> = (0..l * l).map(|e| (if e % (l + 1) == 0 { 1.0 } else { 0.0 }) + 1e-5 / l as f32 * rng.gen_range(-1.0f32..1.0)).collect();
        if let (Ok(dn), Ok(mut x)) = (gpu.upload(&near), gpu.alloc_zeros::<f32>(l * l)) {
            match gpu.time_ms(20, || sparse_lowrank::rsvd::second_pass_step_launch_for_bench(gpu, &dn, l, rows, &mut x, &mut status)) {
                Ok(ms) => report_baseline(&case, "our second pass's near-identity step (G within 2^-12 of I)", ms, &bench.device),
                Err(e) => println!("    near-identity step unavailable: {e}"),
            }
        }
    }
    // The small SVD's eigenproblem alone, on the Gram matrix of a triangular R with a power-law diagonal (σ_j = 1/j,
    // like the rSVD's R₂): our eigensolver (rsvd_eigh_*_f64, `SLR_RSVD_SMALL=own`) and cuSOLVER's
    // syevd (the default), each back to back from the same matrix (widened from f32 first, ~2 µs, in both).
    // Case t = the matrix's rank (l when full); flops ~ (4/3 + 2) l³ (tridiagonalization and back-transform). The third case, "l138r16", is the
    // Gram matrix of a rank-16 R plus 1e-7 noise (the rSVD of a rank-16 update asked for r = 128): 122 eigenvalues
    // within 1e-6‖T‖ of each other, one cluster, our eigensolver's worst case (its cluster pass orthonormalizes
    // them one after another in one warp, twice).
    for (l, rank) in [(26usize, 26usize), (138, 138), (138, 16)] {
        let g: Vec<f32> = {
            let r: Vec<f64> = (0..l * l)
                .map(|e| {
                    let (i, j) = (e % l, e / l);
                    let x = if i == j { 1.0 / (j + 1) as f64 } else if i < j { rng.gen_range(-0.05f64..0.05) / (j + 1) as f64 } else { 0.0 };
                    if i < rank { x } else { 1e-7 * rng.gen_range(-1.0f64..1.0) * (i <= j) as u8 as f64 }
                })
                .collect();
            (0..l * l).map(|e| (0..l).map(|k| r[k + (e % l) * l] * r[k + (e / l) * l]).sum::<f64>() as f32).collect()
        };
        let label = if rank == l { format!("l{l}") } else { format!("l{l}r{rank}") };
        let (Ok(dg), Ok(mut work)) = (gpu.upload(&g), gpu.alloc_zeros::<f64>(l * l + l + 2)) else { continue };
        let case = Case { op: "rsvd_eigh", rows: l, cols: l, density: 0.0, dtype: "f64", t: rank, bytes: 2 * l * l * 8, flops: 10 * l * l * l / 3 };
        let mut run = || sparse_lowrank::rsvd::small_eigh_launch_for_bench(gpu, &dg, &mut work, l, SmallEigensolver::Own);
        bench.case(&mut group, format!("rsvd_eigh/{label}"), &case, 20, &mut run);
        // syevd (the default), and since 2026-11-29 cuSOLVER's batched solver on a batch of one (opt-in
        // `SLR_RSVD_SMALL=batched`, unmeasured): whether it takes one small matrix in fewer launches than syevd.
        for (solver, what) in [(SmallEigensolver::Syevd, "cuSOLVER syevd on the same matrix"), (SmallEigensolver::SyevBatched, "cuSOLVER syevBatched (batch of 1) on the same matrix")] {
            match gpu.time_ms(20, || sparse_lowrank::rsvd::small_eigh_launch_for_bench(gpu, &dg, &mut work, l, solver)) {
                Ok(ms) => report_baseline(&case, what, ms, &bench.device),
                Err(e) => println!("    {what} unavailable: {e}"),
            }
        }
        match sparse_lowrank::rsvd::own_eigensolver_phase_ms(gpu, &dg, l, 20) {
            Ok(ms) => println!(
                "    rsvd_eigh {label} phases (ms, each kernel's share of the call): tridiagonalization {:.4}, eigenvalues {:.4}, eigenvectors {:.4}, clusters {:.4}, back-transform {:.4}",
                ms[0], ms[1], ms[2], ms[3], ms[4]
            ),
            Err(e) => println!("    rsvd_eigh phases unavailable: {e}"),
        }
    }
    group.finish();
}

// The groups whose same-run comparisons decide the most run first, so that a GPU check cut short by its time limit
// still has them.
criterion_group!(benches, bench_spmm, bench_topk, bench_rsvd, bench_sddmm, bench_gather_scatter, bench_csr_transpose, bench_mask_to_csr, bench_tile_mma);
criterion_main!(benches);

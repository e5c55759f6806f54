//! GPU benchmarks, timed with CUDA events on the op's stream (criterion `iter_custom`), after a warm-up.
//! Without a CUDA device they print "skipped: no CUDA device" and exit 0.
//!
//! Every case reports its floor: the bytes it must move divided by the card's bandwidth measured in the same
//! run (a device-to-device copy, read + write counted). `SLR_BENCH_QUICK=1` shortens warm-up and measurement
//! (the GPU check script sets it); `SLR_BENCH_JSON=path` appends one JSON object per case.
//!
//!     cargo bench --bench kernels
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use half::bf16;
use rand::prelude::*;
use sparse_lowrank::*;

struct Case {
    op: &'static str,
    rows: usize,
    cols: usize,
    density: f64,
    dtype: &'static str,
    bytes: usize,
}

fn quick() -> bool {
    std::env::var("SLR_BENCH_QUICK").is_ok_and(|v| v == "1")
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

fn report(case: &Case, ms: f64, bandwidth: f64, device: &str) {
    let gbps = case.bytes as f64 / (ms * 1e-3) / 1e9;
    let floor_ms = case.bytes as f64 / bandwidth * 1e3;
    println!(
        "RESULT op={} shape={}x{} density={:.2} dtype={} time_ms={:.4} GB/s={:.1} floor_ms={:.4} of_floor={:.2} device=\"{}\"",
        case.op, case.rows, case.cols, case.density, case.dtype, ms, gbps, floor_ms, floor_ms / ms, device
    );
    if let Ok(path) = std::env::var("SLR_BENCH_JSON") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(
                f,
                "{{\"op\":\"{}\",\"rows\":{},\"cols\":{},\"density\":{},\"dtype\":\"{}\",\"time_ms\":{},\"gbps\":{},\"floor_ms\":{},\"bytes\":{},\"device\":\"{}\"}}",
                case.op, case.rows, case.cols, case.density, case.dtype, ms, gbps, floor_ms, case.bytes, device
            );
        }
    }
}

fn bench_gather_scatter(c: &mut Criterion) {
    let gpu = match Gpu::new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("gather_scatter benchmarks skipped: no CUDA device ({e})");
            return;
        }
    };
    let device = gpu.describe();
    let bandwidth = measure_copy_bandwidth(&gpu).expect("copy bandwidth");
    println!("device: {device}; measured copy bandwidth {:.0} GB/s (read + write)", bandwidth / 1e9);
    let mut rng = StdRng::seed_from_u64(7);
    let shapes: &[(usize, usize)] = &[(4096, 4096), (11008, 4096)];
    let densities: &[f64] = if quick() { &[0.01, 0.05] } else { &[0.01, 0.05, 0.10, 0.30] };
    let mut group = c.benchmark_group("gather_scatter");
    if quick() {
        group.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600)).sample_size(10);
    }
    for &(rows, cols) in shapes {
        let w: Vec<bf16> = (0..rows * cols).map(|i| bf16::from_f32((i % 1000) as f32 * 1e-3)).collect();
        let d_w_src = gpu.upload(&w).unwrap();
        for &density in densities {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let nnz = pattern.nnz();
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let offsets = 4 * (rows + 1);
            let mut out = gpu.alloc_zeros::<bf16>(nnz).unwrap();
            let case = Case { op: "gather", rows, cols, density, dtype: "bf16", bytes: nnz * (4 + 2 + 2) + offsets };
            let name = format!("gather_bf16/{rows}x{cols}/d{density}");
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let ms = gpu
                        .time_ms(iters as usize, || gather(&gpu, &dpat, DeviceMatRef::row_major(&d_w_src, rows, cols)?, &mut out))
                        .unwrap();
                    Duration::from_secs_f64(ms * 1e-3 * iters as f64)
                })
            });
            let ms = gpu.time_ms(50, || gather(&gpu, &dpat, DeviceMatRef::row_major(&d_w_src, rows, cols)?, &mut out)).unwrap();
            report(&case, ms, bandwidth, &device);

            let delta = gpu.upload(&vec![1e-3f32; nnz]).unwrap();
            let mut d_w = gpu.upload(&w).unwrap();
            let case = Case { op: "scatter_add", rows, cols, density, dtype: "bf16<-f32", bytes: nnz * (4 + 4 + 2 + 2) + offsets };
            let name = format!("scatter_add_bf16_f32/{rows}x{cols}/d{density}");
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let ms = gpu
                        .time_ms(iters as usize, || scatter_add(&gpu, &dpat, &delta, 1.0, DeviceMatMut::row_major(&mut d_w, rows, cols)?))
                        .unwrap();
                    Duration::from_secs_f64(ms * 1e-3 * iters as f64)
                })
            });
            let ms = gpu.time_ms(50, || scatter_add(&gpu, &dpat, &delta, 1.0, DeviceMatMut::row_major(&mut d_w, rows, cols)?)).unwrap();
            report(&case, ms, bandwidth, &device);
        }
    }
    group.finish();
}

/// csr_transpose (once per pattern: mask, popcounts, scan with its one read-back, placement, row offsets; the
/// interval includes the host-side synchronization and allocations a caller pays) and transpose_values (every
/// step). Floors: csr_transpose must read S and write Sᵀ and perm, 12 * nnz + 4 * (rows + cols + 2) bytes, whatever
/// the method (the mask it adds is not counted); transpose_values reads perm and values and writes values.
fn bench_csr_transpose(c: &mut Criterion) {
    let gpu = match Gpu::new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("csr_transpose benchmarks skipped: no CUDA device ({e})");
            return;
        }
    };
    let device = gpu.describe();
    let bandwidth = measure_copy_bandwidth(&gpu).expect("copy bandwidth");
    let mut rng = StdRng::seed_from_u64(11);
    let mut group = c.benchmark_group("csr_transpose");
    if quick() {
        group.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600)).sample_size(10);
    }
    for &(rows, cols) in &[(4096usize, 4096usize), (11008, 4096)] {
        for &density in &[0.01, 0.05] {
            let pattern = random_pattern(&mut rng, rows, cols, density);
            let nnz = pattern.nnz();
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern).unwrap();
            let case = Case { op: "csr_transpose", rows, cols, density, dtype: "u32", bytes: 12 * nnz + 4 * (rows + cols + 2) };
            group.bench_function(format!("csr_transpose/{rows}x{cols}/d{density}"), |b| {
                b.iter_custom(|iters| {
                    let ms = gpu.time_ms(iters as usize, || csr_transpose(&gpu, &dpat).map(drop)).unwrap();
                    Duration::from_secs_f64(ms * 1e-3 * iters as f64)
                })
            });
            let ms = gpu.time_ms(20, || csr_transpose(&gpu, &dpat).map(drop)).unwrap();
            report(&case, ms, bandwidth, &device);

            let t = csr_transpose(&gpu, &dpat).unwrap();
            let values = gpu.upload(&vec![bf16::from_f32(1e-3); nnz]).unwrap();
            let mut out = gpu.alloc_zeros::<bf16>(nnz).unwrap();
            let case = Case { op: "transpose_values", rows, cols, density, dtype: "bf16", bytes: nnz * (4 + 2 + 2) };
            group.bench_function(format!("transpose_values_bf16/{rows}x{cols}/d{density}"), |b| {
                b.iter_custom(|iters| {
                    let ms = gpu.time_ms(iters as usize, || transpose_values(&gpu, &t, &values, &mut out)).unwrap();
                    Duration::from_secs_f64(ms * 1e-3 * iters as f64)
                })
            });
            let ms = gpu.time_ms(50, || transpose_values(&gpu, &t, &values, &mut out)).unwrap();
            report(&case, ms, bandwidth, &device);
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gather_scatter, bench_csr_transpose);
criterion_main!(benches);

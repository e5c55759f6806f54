//! One sparse fine-tuning step on a LLaMA-sized weight, the way LIFT / SpIEL-style methods do it:
//! a 4096x4096 bf16 weight W, a 5% mask of trainable entries, the gradient gathered at the mask (`grad[mask]`),
//! an f32 update computed on the compact values, and the update scatter-added back into the bf16 weight
//! (rounded once). Runs on the GPU when one is present, else on the CPU reference, and says which.
//!
//!     cargo run --release --example demo            # sizes: SLR_DEMO_ROWS, SLR_DEMO_COLS, SLR_DEMO_DENSITY
use half::bf16;
use rand::prelude::*;
use sparse_lowrank::*;
use std::time::Instant;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<()> {
    let rows: usize = env_or("SLR_DEMO_ROWS", 4096);
    let cols: usize = env_or("SLR_DEMO_COLS", 4096);
    let density: f64 = env_or("SLR_DEMO_DENSITY", 0.05);
    let lr = 1e-3f32;
    let mut rng = StdRng::seed_from_u64(2026);

    println!("sparse fine-tuning step: W {rows}x{cols} bf16 (row-major), mask density {:.1}%", density * 100.0);
    let w: Vec<bf16> = (0..rows * cols).map(|_| bf16::from_f32(rng.gen_range(-0.05f32..0.05))).collect();
    let grad: Vec<bf16> = (0..rows * cols).map(|_| bf16::from_f32(rng.gen_range(-1.0f32..1.0))).collect();
    let t = Instant::now();
    let mut positions = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            if rng.gen_bool(density) {
                positions.push((r, c));
            }
        }
    }
    let pattern = CsrPattern::<u32>::from_coo(rows, cols, &positions)?;
    let nnz = pattern.nnz();
    println!("mask: {nnz} entries ({:.2}%), built on the CPU in {:.0} ms", 100.0 * nnz as f64 / (rows * cols) as f64, t.elapsed().as_secs_f64() * 1e3);

    // Bytes each op must move (compressed operands; the scattered W accesses counted at their element size).
    let offsets_bytes = 4 * (rows + 1);
    let gather_bytes = nnz * (4 + 2 + 2) + offsets_bytes;
    let scatter_bytes = nnz * (4 + 4 + 2 + 2) + offsets_bytes;

    // CPU reference: always computed, it is what the GPU result is checked against.
    let mut g_ref = vec![bf16::ZERO; nnz];
    let t = Instant::now();
    gather_cpu(&pattern, MatRef::row_major(&grad, rows, cols)?, &mut g_ref)?;
    let cpu_gather_ms = t.elapsed().as_secs_f64() * 1e3;
    // The update on compact values, in f32 (e.g. SGD; an optimizer would keep its state at this size too).
    let delta: Vec<f32> = g_ref.iter().map(|g| g.to_f32()).collect();
    let mut w_ref = w.clone();
    let t = Instant::now();
    scatter_add_cpu(&pattern, &delta, -lr, MatMut::row_major(&mut w_ref, rows, cols)?)?;
    let cpu_scatter_ms = t.elapsed().as_secs_f64() * 1e3;

    let gbps = |bytes: usize, ms: f64| bytes as f64 / (ms * 1e-3) / 1e9;
    match Gpu::new(0) {
        Ok(gpu) => {
            println!("running on the GPU: {}", gpu.describe());
            let dpat = DeviceCsrPattern::upload(&gpu, &pattern)?;
            let d_grad = gpu.upload(&grad)?;
            let mut d_w = gpu.upload(&w)?;
            let mut d_g = gpu.alloc_zeros::<bf16>(nnz)?;
            let gather_ms = gpu.time_ms(20, || gather(&gpu, &dpat, DeviceMatRef::row_major(&d_grad, rows, cols)?, &mut d_g))?;
            let d_delta = gpu.upload(&delta)?;
            // Time scatter_add on a scratch copy so the checked weight gets exactly one update.
            let mut d_scratch = gpu.upload(&w)?;
            let scatter_ms = gpu.time_ms(20, || scatter_add(&gpu, &dpat, &d_delta, -lr, DeviceMatMut::row_major(&mut d_scratch, rows, cols)?))?;
            scatter_add(&gpu, &dpat, &d_delta, -lr, DeviceMatMut::row_major(&mut d_w, rows, cols)?)?;
            let g = gpu.download(&d_g)?;
            let w_new = gpu.download(&d_w)?;
            let g_ok = g.iter().zip(&g_ref).all(|(a, b)| a.to_bits() == b.to_bits());
            let w_mismatch = w_new.iter().zip(&w_ref).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            println!("gather      (grad[mask]):        {gather_ms:8.3} ms  {:7.1} GB/s   CPU {cpu_gather_ms:8.2} ms", gbps(gather_bytes, gather_ms));
            println!("scatter_add (W += -lr * delta):  {scatter_ms:8.3} ms  {:7.1} GB/s   CPU {cpu_scatter_ms:8.2} ms", gbps(scatter_bytes, scatter_ms));
            println!("agreement with the CPU reference: gather {}, scatter_add {} of {} weights differ (bitwise)", if g_ok { "bitwise equal" } else { "DIFFERS" }, w_mismatch, rows * cols);
            if !g_ok || w_mismatch != 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            println!("no GPU ({e}); running the CPU reference");
            println!("gather      (grad[mask]):        {cpu_gather_ms:8.2} ms  {:7.2} GB/s (CPU)", gbps(gather_bytes, cpu_gather_ms));
            println!("scatter_add (W += -lr * delta):  {cpu_scatter_ms:8.2} ms  {:7.2} GB/s (CPU)", gbps(scatter_bytes, cpu_scatter_ms));
            // Agreement: the CPU result against a naive dense recomputation of the same step.
            let mask = BitMask::from_pattern(&pattern);
            let mut e = 0;
            let mut mismatches = 0usize;
            for r in 0..rows {
                for c in 0..cols {
                    let i = r * cols + c;
                    let expect = if mask.get(r, c) {
                        let v = bf16::from_f32((-lr).mul_add(grad[i].to_f32(), w[i].to_f32()));
                        e += 1;
                        v
                    } else {
                        w[i]
                    };
                    mismatches += (expect.to_bits() != w_ref[i].to_bits()) as usize;
                }
            }
            println!("agreement with a naive dense loop: {mismatches} of {} weights differ ({e} updated)", rows * cols);
            if mismatches != 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

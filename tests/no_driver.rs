//! On a machine without a CUDA driver, creating the GPU handle returns a typed error: no panic, no abort.
//! (On a GPU machine this test checks that the handle opens instead.)
use sparse_lowrank::*;

#[test]
fn creating_a_gpu_handle_without_a_driver_returns_a_typed_error() {
    let driver_present = std::path::Path::new("/proc/driver/nvidia").exists()
        || ["libcuda.so.1", "libcuda.so"].iter().any(|n| {
            // SAFETY: loading libcuda only runs its initializers, which have no preconditions.
            unsafe { libloading::Library::new(n) }.is_ok()
        });
    let result = std::panic::catch_unwind(|| Gpu::new(0).map(|g| g.describe()));
    let result = result.expect("Gpu::new must not panic");
    if driver_present {
        eprintln!("driver present: Gpu::new(0) -> {result:?}");
        return;
    }
    match result {
        Err(Error::NoCudaDriver) => {}
        other => panic!("expected Error::NoCudaDriver, got {other:?}"),
    }
    // The message says what to do.
    assert!(Error::NoCudaDriver.to_string().contains("libcuda"));
}

#[test]
fn kernels_not_built_error_says_how_to_build_them() {
    let msg = Error::KernelsNotBuilt.to_string();
    assert!(msg.contains("install-toolchain.sh") && msg.contains("NVCC"), "{msg}");
}

//! The emulated device: kernels compiled for the host from the same `cuda/*.cu` sources (build.rs, feature
//! `emulator`) and run by the SIMT runtime in `cuda/emu/` with CUDA's execution model: every thread a fiber,
//! real barriers and warp exchanges, guard pages around every buffer. See docs/emulator.md.
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;

use super::{KernelArg, LaunchShape};
use crate::error::{Error, Result};

/// Mirrors `slr_emu_launch` in cuda/emu/emu_abi.h.
#[repr(C)]
pub struct EmuLaunch {
    grid: [u32; 3],
    block: [u32; 3],
    dynamic_smem_bytes: u32,
    schedule: u32,
    seed: u64,
    nargs: u32,
    arg_kinds: *const u8,
}

/// `SLR_EMU_ARG_*` in cuda/emu/emu_abi.h: what each argument is, which the runtime checks against the kernel's
/// parameter list before it runs anything.
fn arg_kind(arg: &KernelArg) -> u8 {
    match arg {
        KernelArg::Ptr(_) => 1,
        KernelArg::U32(_) => 2,
        KernelArg::U64(_) => 3,
        KernelArg::F32(_) => 4,
    }
}

/// Mirrors `slr_emu_entry`.
pub type EmuEntry = unsafe extern "C" fn(*const EmuLaunch, *mut *mut c_void, *mut c_char, usize) -> c_int;

extern "C" {
    fn slr_emu_alloc(bytes: usize) -> *mut c_void;
    fn slr_emu_free(p: *mut c_void);
    fn slr_emu_uninit_fill(schedule: u32, seed: u64) -> u8;
    fn slr_emu_racecheck() -> c_int;
}

/// Whether this build's emulator checks shared-memory races (docs/emulator.md): on by default on Linux x86-64 and
/// aarch64, off with `SLR_EMU_RACECHECK=0` at build time. With it, a launch in which two threads of a block touch
/// the same byte of shared memory, at least one writing and not both atomically, with no `__syncthreads()` (or,
/// within a warp, `__syncwarp()`) between, fails with `Error::Emulator` whose message says "data race on shared
/// memory".
pub fn checks_races() -> bool {
    // SAFETY: a constant of the runtime.
    unsafe { slr_emu_racecheck() != 0 }
}

include!(concat!(env!("OUT_DIR"), "/emu_kernels.rs"));

/// Order in which the emulator runs blocks, and threads between synchronization points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Blocks in order; threads in order, each running until its next barrier, warp collective or exit.
    RoundRobin,
    /// Blocks in a seeded random order; at every synchronization point a seeded random runnable thread goes next.
    /// A missing `__syncthreads()` or a dependency between blocks of one launch shows up as a wrong answer.
    Random { seed: u64 },
}

/// The byte `Gpu::alloc_uninit`'s buffers hold on the emulator under `schedule`: the runtime's rule, which also
/// fills dynamic shared memory at each block's start (cuda/emu/runtime.cpp `slr_emu_uninit_fill`: 0xA5 under
/// round-robin, 0xFF or 0x7F under a random schedule by the seed's parity). The tests run each property under
/// round-robin and two random seeds of opposite parity.
pub(crate) fn uninit_fill(schedule: Schedule) -> u8 {
    let (schedule, seed) = schedule_abi(schedule);
    // SAFETY: a pure function of its two integers.
    unsafe { slr_emu_uninit_fill(schedule, seed) }
}

/// `schedule` as the C ABI's `schedule` and `seed` fields (slr_emu_launch).
fn schedule_abi(schedule: Schedule) -> (u32, u64) {
    match schedule {
        Schedule::RoundRobin => (0, 0),
        Schedule::Random { seed } => (1, seed),
    }
}

/// The GPU the emulator stands for in the host's choices that depend on the device: how much shared memory one block
/// may have (which kernel variant, which path, how long a row one block takes) and whether sm_90 machine code runs.
/// The kernels are the same host build under every target; what changes is what the host asks them to do, and the
/// limit each launch is held to (static plus dynamic shared memory, as a GPU checks it). The property tests run
/// under [`EmulatedTarget::Sm90`]; a few run the device-dependent choices under the other two, which no GPU run of
/// ours has covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatedTarget {
    /// H100 / H200: 227 KiB of shared memory per block, sm_90 code (the default).
    Sm90,
    /// A100: 163 KiB per block.
    Sm80,
    /// sm_86 / sm_89 (RTX 30 and 40 series, A10, L4, L40): 99 KiB per block.
    Sm86,
}

impl EmulatedTarget {
    /// The most shared memory (static plus dynamic) one block may opt into, in bytes.
    pub fn max_shared_bytes_per_block(self) -> u32 {
        match self {
            EmulatedTarget::Sm90 => 227 * 1024,
            EmulatedTarget::Sm80 => 163 * 1024,
            EmulatedTarget::Sm86 => 99 * 1024,
        }
    }
    /// Whether kernels run from sm_90 machine code (`Gpu::runs_sm90_code`).
    pub fn runs_sm90_code(self) -> bool {
        self == EmulatedTarget::Sm90
    }
    /// The build target whose resource report row gives a kernel's static shared memory.
    fn arch(self) -> &'static str {
        match self {
            EmulatedTarget::Sm90 => "sm_90",
            EmulatedTarget::Sm80 => "sm_80",
            EmulatedTarget::Sm86 => "sm_86",
        }
    }
}

/// A kernel's static shared memory on `arch` from ptxas's resource report (kernels::RESOURCE_REPORT); 0 where the
/// report has no row (the target not built, or nvcc absent).
fn static_shared_bytes(kernel: &str, arch: &str) -> u64 {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<(String, String), u64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| crate::kernels::resource_report().into_iter().map(|r| ((r.kernel, r.target), r.shared_bytes)).collect());
    table.get(&(kernel.to_string(), arch.to_string())).copied().unwrap_or(0)
}

pub(crate) struct EmuBackend {
    schedule: Schedule,
    fault: Option<&'static str>,
    target: EmulatedTarget,
}

/// The planted faults the emulated build has (`SLR_FAULT_<NAME>` switches in cuda/*.cu, lower-cased).
pub fn planted_faults() -> Vec<&'static str> {
    let mut v: Vec<&str> = EMU_FAULT_KERNELS.iter().map(|(f, _, _)| *f).collect();
    v.sort();
    v.dedup();
    v
}

impl EmuBackend {
    pub fn new(schedule: Schedule, target: EmulatedTarget) -> Self {
        EmuBackend { schedule, fault: None, target }
    }
    /// Kernels built with planted fault `fault` take the place of the normal ones (mutation tests).
    pub fn with_fault(schedule: Schedule, fault: &str) -> Result<Self> {
        let fault = EMU_FAULT_KERNELS
            .iter()
            .map(|(f, _, _)| *f)
            .find(|f| *f == fault)
            .ok_or_else(|| Error::KernelNotFound { module: "emulator (planted faults)", kernel: fault.to_string() })?;
        Ok(EmuBackend { schedule, fault: Some(fault), target: EmulatedTarget::Sm90 })
    }
    pub fn target(&self) -> EmulatedTarget {
        self.target
    }
    pub fn fault(&self) -> Option<&'static str> {
        self.fault
    }
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Runs `kernel` over the grid, synchronously.
    ///
    /// # Safety
    /// `params` holds one pointer per element of `args`, to that argument's value; pointer values address
    /// emulator buffers the kernel may touch (the launcher's validation guarantees the extents). The runtime
    /// refuses the launch unless `args` match the kernel's parameters in count and kind.
    pub unsafe fn launch(&self, kernel: &str, shape: LaunchShape, args: &[KernelArg], params: &mut [*mut c_void]) -> Result<()> {
        let faulty = self
            .fault
            .and_then(|fault| EMU_FAULT_KERNELS.iter().find(|(f, k, _)| *f == fault && *k == kernel).map(|(_, _, e)| *e));
        let entry = faulty
            .or_else(|| EMU_KERNELS.iter().find(|(name, _)| *name == kernel).map(|(_, f)| *f))
            .ok_or_else(|| Error::KernelNotFound { module: "emulator", kernel: kernel.to_string() })?;
        // The GPU's rule: static plus dynamic shared memory within what a block may opt into on the target.
        let (static_bytes, limit) = (static_shared_bytes(kernel, self.target.arch()), self.target.max_shared_bytes_per_block());
        if static_bytes + u64::from(shape.shared_bytes) > u64::from(limit) {
            return Err(Error::Emulator {
                kernel: kernel.to_string(),
                message: format!(
                    "{} bytes of shared memory per block ({static_bytes} static + {} dynamic) exceed the {limit} a block may opt into on {} (a GPU refuses this launch)",
                    static_bytes + u64::from(shape.shared_bytes),
                    shape.shared_bytes,
                    self.target.arch()
                ),
            });
        }
        let (schedule, seed) = schedule_abi(self.schedule);
        debug_assert_eq!(args.len(), params.len());
        let kinds: Vec<u8> = args.iter().map(arg_kind).collect();
        let cfg = EmuLaunch {
            grid: [shape.grid.0, shape.grid.1, shape.grid.2],
            block: [shape.block.0, shape.block.1, shape.block.2],
            dynamic_smem_bytes: shape.shared_bytes,
            schedule,
            seed,
            nargs: kinds.len() as u32,
            arg_kinds: kinds.as_ptr(),
        };
        // Room for the longest reports: a data race names two code locations and a demangled __shared__ variable
        // (a template kernel's full signature), together about 1 KB.
        let mut err = vec![0 as c_char; 4096];
        // SAFETY: `cfg`, `kinds` (cfg.nargs entries) and `err` outlive the call and `err.len()` is its capacity;
        // the caller vouches for `params`, and the runtime reads none of them unless `kinds` match the kernel's.
        let rc = unsafe { entry(&cfg, params.as_mut_ptr(), err.as_mut_ptr(), err.len()) };
        if rc != 0 {
            // SAFETY: the runtime writes a NUL-terminated message within err_len bytes; the buffer was zeroed,
            // so even a runtime that wrote nothing leaves a valid empty string.
            let message = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
            return Err(Error::Emulator { kernel: kernel.to_string(), message });
        }
        Ok(())
    }
}

/// An emulator buffer: host memory from `slr_emu_alloc`, whose end abuts a guard page so overruns fault and are
/// reported as errors naming the kernel.
pub(crate) struct EmuVec<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: EmuVec owns its allocation exclusively (like Vec<T>); sharing follows T.
unsafe impl<T: Send> Send for EmuVec<T> {}
// SAFETY: as above; &EmuVec only gives read access.
unsafe impl<T: Sync> Sync for EmuVec<T> {}

impl<T: Copy> EmuVec<T> {
    fn alloc(len: usize) -> Result<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or(Error::Emulator {
            kernel: "-".into(),
            message: format!("allocation of {len} elements overflows"),
        })?;
        // SAFETY: plain allocation call; a null result is handled below.
        let p = unsafe { slr_emu_alloc(bytes) } as *mut T;
        let ptr = NonNull::new(p).ok_or(Error::Emulator { kernel: "-".into(), message: format!("could not allocate {bytes} bytes") })?;
        Ok(EmuVec { ptr, len })
    }
    pub fn from_slice(data: &[T]) -> Result<Self> {
        let v = Self::alloc(data.len())?;
        // SAFETY: the new buffer holds data.len() elements (16-byte aligned start) and cannot overlap `data`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), v.ptr.as_ptr(), data.len()) };
        Ok(v)
    }
    /// Contents are `schedule`'s fill byte ([`uninit_fill`]) in every byte, as uninitialized device memory would
    /// hold garbage.
    pub fn uninit(len: usize, schedule: Schedule) -> Result<Self> {
        let v = Self::alloc(len)?;
        // SAFETY: the buffer holds len elements of T (len * size_of::<T>() bytes, checked in alloc); any byte
        // pattern is written as bytes, and the Gpu's callers read it only as the garbage it stands for.
        unsafe { std::ptr::write_bytes(v.ptr.as_ptr() as *mut u8, uninit_fill(schedule), len * std::mem::size_of::<T>()) };
        Ok(v)
    }
    pub fn zeros(len: usize) -> Result<Self> {
        let v = Self::alloc(len)?;
        // SAFETY: the buffer holds len elements; T: ValidAsZeroBits at every call site (Gpu::alloc_zeros).
        unsafe { std::ptr::write_bytes(v.ptr.as_ptr(), 0, len) };
        Ok(v)
    }
}

impl<T> EmuVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for EmuVec<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from slr_emu_alloc and is freed once.
        unsafe { slr_emu_free(self.ptr.as_ptr() as *mut c_void) };
    }
}

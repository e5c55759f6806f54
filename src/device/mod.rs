//! The device layer: a [`Gpu`] handle (a CUDA context and stream, or the SIMT emulator), device buffers and
//! views, and the one launch path every op uses.
//!
//! Nothing here panics on a machine without CUDA: the constructor probes for `libcuda.so` before touching
//! cudarc, and every failure is an [`Error`]. Ops are asynchronous on the handle's stream; [`Gpu::download`] and
//! [`Gpu::synchronize`] wait.
use std::collections::HashMap;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
    DeviceRepr, SyncOnDrop, ValidAsZeroBits,
};

use crate::dense::{DenseShape, Layout};
use crate::error::{Error, Result};
use crate::kernels;

#[cfg(feature = "emulator")]
pub mod emu;
#[cfg(feature = "emulator")]
pub use emu::{EmulatedTarget, Schedule};

#[cfg(not(target_endian = "little"))]
compile_error!("kernel arguments are packed little-endian");

/// A handle on one device: a CUDA GPU, or (with the `emulator` feature) the SIMT emulator that runs the same
/// kernel sources on the CPU.
///
/// `Send + Sync`: one handle may be shared by threads. Their calls are queued on its one stream in the order they
/// reach it; [`Gpu::host_calls`] and [`Gpu::time_ms`] then count and time every thread's work on it, and the
/// `*_on_this_thread` test switches follow the calling thread, not the handle.
pub struct Gpu {
    backend: Backend,
    calls: CallCounters,
}

/// What a handle has asked of the host side of the device since it was created ([`Gpu::host_calls`]): the costs a
/// kernel's own time does not show. Each launch and library call is a few microseconds of CPU time, an allocation
/// a driver call (more when the pool must map memory: [`Gpu::set_memory_pool_release_threshold`]), and each
/// synchronization drains the stream, so the GPU idles while the host decides what comes next. The same op
/// makes the same calls on a GPU and on the emulator, except that the emulator has no cuBLAS (its products are
/// launches of our own kernel instead of library calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCalls {
    /// Kernels of this crate launched.
    pub launches: u64,
    /// cuBLAS calls (rSVD's products on a GPU).
    pub library_calls: u64,
    /// Device buffers allocated (`upload` included).
    pub allocations: u64,
    /// Their total size in bytes.
    pub allocated_bytes: u64,
    /// Host-to-device copies (`upload`); they do not wait for the device.
    pub uploads: u64,
    /// Waits for the device: every `download` and `synchronize`.
    pub synchronizations: u64,
}

impl std::ops::Sub for HostCalls {
    type Output = HostCalls;
    /// The calls made between two snapshots (`after - before`).
    fn sub(self, before: HostCalls) -> HostCalls {
        // Saturating: snapshots given in the wrong order (or from two handles) give zeros, not a panic.
        HostCalls {
            launches: self.launches.saturating_sub(before.launches),
            library_calls: self.library_calls.saturating_sub(before.library_calls),
            allocations: self.allocations.saturating_sub(before.allocations),
            allocated_bytes: self.allocated_bytes.saturating_sub(before.allocated_bytes),
            uploads: self.uploads.saturating_sub(before.uploads),
            synchronizations: self.synchronizations.saturating_sub(before.synchronizations),
        }
    }
}

#[derive(Default)]
struct CallCounters {
    launches: AtomicU64,
    library_calls: AtomicU64,
    allocations: AtomicU64,
    allocated_bytes: AtomicU64,
    uploads: AtomicU64,
    synchronizations: AtomicU64,
}

impl CallCounters {
    fn allocation(&self, bytes: usize) {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.allocated_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The bytes of `len` elements of T, or `WorkspaceTooLarge` when that overflows or exceeds `isize::MAX` (no
/// allocation holds it): checked before any allocator sees `len` (cudarc multiplies unchecked, so a wrapped size
/// once gave a 4-byte buffer that reported 2^62 + 1 elements, and views over it passed validation).
fn buffer_bytes<T>(op: &'static str, len: usize) -> Result<usize> {
    let size = std::mem::size_of::<T>();
    len.checked_mul(size).filter(|&b| b <= isize::MAX as usize).ok_or(Error::WorkspaceTooLarge {
        op,
        what: "device buffer",
        bytes: (len as u64).saturating_mul(size as u64),
        max: isize::MAX as u64,
    })
}

enum Backend {
    Cuda(CudaBackend),
    #[cfg(feature = "emulator")]
    Emulated(emu::EmuBackend),
}

struct CudaBackend {
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Loaded functions, each with the dynamic shared memory it has been opted into so far (bytes above 48 KiB;
    /// 0 before any opt-in), so the attribute is set once per size increase, not at every launch.
    functions: Mutex<HashMap<FunctionKey, (CudaFunction, u32)>>,
    /// Our ops' cuBLAS handle (never handed out: a caller's pointer-mode or workspace change on it would change
    /// how rSVD's products read their scalars), and the one [`Gpu::cublas`] hands out.
    blas: OnceLock<Arc<CudaBlas>>,
    user_blas: OnceLock<Arc<CudaBlas>>,
    solver: OnceLock<Arc<cudarc::cusolver::DnHandle>>,
    /// Held around each use of `solver` ([`Gpu::cusolver_calls`]): cuBLAS documents calls on one handle from
    /// several host threads as safe, cuSOLVER's documentation does not say so for its dense handle, so two threads
    /// sharing this `Gpu` queue their cuSOLVER calls one at a time (they run in order on the one stream anyway).
    solver_calls: Mutex<()>,
    /// Held while a library handle is created, so two threads' first uses create one, not two (the loser's would
    /// be destroyed at once, and cublasDestroy synchronizes the whole device).
    handle_init: Mutex<()>,
    /// Whether [`Gpu::launch_after_previous`] may use programmatic dependent launch here: the device is sm_90,
    /// whose machine code the fatbins hold (kernels compiled for it contain the `griddepcontrol.wait` their
    /// contract needs; PTX JIT-compiled from compute_80 would not). Cleared if the driver ever refuses such a
    /// launch (a tool or virtualization layer without it): from then on they are ordinary launches.
    dependent_launch: std::sync::atomic::AtomicBool,
    /// Page-locked host memory that small downloads ([`Gpu::download`]) land in before they are copied into the
    /// caller's `Vec`; allocated at the first such download, grown to the largest one so far.
    staging: Mutex<Option<Staging>>,
}

/// Downloads of at most this many bytes go through [`CudaBackend::staging`]. Top-k's read-backs (64 bytes per
/// matrix, 32 per row), the scan's total and rSVD's l x l factor (76 KB at l = 138, 410 KB at l = 320) fit; larger
/// ones are bandwidth-bound, where the staging adds nothing.
const STAGING_MAX_BYTES: usize = 1 << 20;

/// Page-locked host memory (`cuMemHostAlloc`, not write-combined: the host reads it) of one context.
struct Staging {
    ptr: *mut c_void,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: `ptr` is owned by this struct alone (nothing else holds it) and is only dereferenced under the backend's
// `staging` mutex; page-locked memory may be used and freed from any thread.
unsafe impl Send for Staging {}

impl Drop for Staging {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemHostAlloc in `ctx` (Staging::new) and is freed once, here; no copy into it
        // is in flight (every download synchronizes the stream before it releases the mutex, and a download whose
        // synchronization fails leaks the buffer instead of letting it be dropped).
        let _ = self.ctx.bind_to_thread().map(|_| unsafe { cudarc::driver::result::free_host(self.ptr) });
    }
}

impl Staging {
    /// `bytes` of page-locked host memory in `ctx`, or None if the driver refuses (the caller then downloads the
    /// ordinary way).
    fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Option<Staging> {
        ctx.bind_to_thread().ok()?;
        // SAFETY: plain allocation of `bytes` (> 0) of host memory; flags 0 (cached, this context only).
        let ptr = unsafe { cudarc::driver::result::malloc_host(bytes, 0) }.ok()?;
        (!ptr.is_null()).then(|| Staging { ptr, bytes, ctx: ctx.clone() })
    }
}

impl CudaBackend {
    /// The library handle in `slot`, made by `create` on first use, under `handle_init` (so two threads' first uses
    /// make one). Shared by the cuBLAS and cuSOLVER handles.
    fn handle_in<H>(&self, slot: &OnceLock<Arc<H>>, create: impl FnOnce() -> Result<H>) -> Result<Arc<H>> {
        if let Some(h) = slot.get() {
            return Ok(h.clone());
        }
        let _creating = self.handle_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = slot.get() {
            return Ok(h.clone());
        }
        let h = create()?;
        Ok(slot.get_or_init(|| Arc::new(h)).clone())
    }

    /// The cuBLAS handle in `slot`, created on this stream on first use.
    fn blas_from(&self, slot: &OnceLock<Arc<CudaBlas>>) -> Result<Arc<CudaBlas>> {
        self.handle_in(slot, || {
            if cuda_library("cublas").is_none() {
                return Err(Error::LibraryMissing { library: "cuBLAS" });
            }
            CudaBlas::new(self.stream.clone()).map_err(|e| Error::Cuda { op: "cublas", detail: format!("{e:?}") })
        })
    }

    /// Refuses a buffer this handle's stream cannot use soundly, given the stream cudarc says it was allocated on
    /// (every `CudaSlice`, `CudaView` and `CudaViewMut` carries it):
    /// - one of another CUDA context (another GPU, or a context other than the device's primary one): its address
    ///   means nothing here (`WrongDevice`);
    /// - one of another stream (`WrongStream`). cudarc 0.19 cannot order such a use soundly in general: a buffer
    ///   has one read event, so a later read on its own stream replaces the record of ours and its free then waits
    ///   for that read only, not for our kernel; the events are kept only while the context object that made the
    ///   buffer has a stream of its own alive, and a buffer on a default stream does not keep one alive; and the
    ///   event after our kernel is recorded only if this handle's context object manages events. Until 2026-11-29
    ///   a buffer of another stream was accepted whenever its own context object managed events, and a bare view
    ///   was checked for its device only (a review of the safe API found the cases above);
    /// - one whose context object manages events while this handle's does not (`WrongStream`): our use would not be
    ///   recorded in the buffer's events, which its owner's other streams wait on;
    /// - one whose length in bytes exceeds `isize::MAX` (`TooLarge`): cudarc 0.19's `alloc_zeros` multiplies
    ///   without a check, so `alloc_zeros::<f32>(2^62 + 1)` returns a 4-byte allocation that says it holds 2^62 + 1
    ///   elements. Only the lying buffer itself is caught here, not a shorter view cut from it.
    ///
    /// Two handles on one device's legacy default stream share that stream, and a [`Gpu::from_stream`] handle on
    /// candle's stream shares candle's context object, so both pass.
    fn check_buffer<T>(&self, buffer: &Arc<CudaStream>, len: usize, op: &'static str, what: &'static str) -> Result<()> {
        let max = isize::MAX as usize / std::mem::size_of::<T>().max(1);
        if len > max {
            return Err(Error::TooLarge { op, what, value: len, max });
        }
        let (theirs, ours) = (buffer.context(), self.stream.context());
        if theirs.cu_ctx() != ours.cu_ctx() {
            return Err(Error::WrongDevice { op, what });
        }
        if buffer.cu_stream() != self.stream.cu_stream()
            || (theirs.is_managing_stream_synchronization() && !ours.is_managing_stream_synchronization())
        {
            return Err(Error::WrongStream { op, what });
        }
        Ok(())
    }

    /// Copies `v` to the host through the page-locked staging buffer and waits for it; None (nothing queued) when
    /// `v` is empty or larger than [`STAGING_MAX_BYTES`], the buffer cannot be allocated, or `SLR_PINNED=off`. A
    /// copy from device to pageable memory goes through the driver's own bounce buffer and blocks the host
    /// while it does; into page-locked memory it is one DMA.
    fn download_staged<T: DeviceRepr + Copy>(&self, v: &CudaView<'_, T>) -> Result<Option<Vec<T>>> {
        let len = v.len();
        let bytes = len * std::mem::size_of::<T>();
        if bytes == 0 || bytes > STAGING_MAX_BYTES || crate::path_switch("SLR_PINNED", "off") {
            return Ok(None);
        }
        let mut staging = self.staging.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if staging.as_ref().is_none_or(|s| s.bytes < bytes) {
            *staging = None;
            *staging = Staging::new(self.stream.context(), bytes.next_power_of_two().max(4096));
        }
        let Some(buf) = staging.as_ref() else { return Ok(None) };
        self.stream.context().bind_to_thread().map_err(cuda_err("download"))?;
        {
            let (src, _record) = v.device_ptr(&self.stream);
            // SAFETY: `buf.ptr` points at `buf.bytes >= bytes` bytes of page-locked host memory that only this
            // backend uses, and we hold its mutex until the copy below has completed (the stream synchronize);
            // `src` is `len` elements of T = `bytes` bytes of a live device view borrowed for this call.
            let dst = unsafe { std::slice::from_raw_parts_mut(buf.ptr as *mut u8, bytes) };
            // SAFETY: as above; the copy is ordered after the kernels queued on this stream.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }.map_err(cuda_err("download"))?;
        }
        if let Err(e) = self.stream.synchronize() {
            // The copy may still be queued (a failed synchronization leaves the context in an error state that
            // normally discards it, but nothing promises so): the buffer is leaked, never freed under it.
            std::mem::forget(staging.take());
            return Err(cuda_err("download")(e));
        }
        let mut out = Vec::<T>::with_capacity(len);
        // SAFETY: the copy has completed (synchronized above), so `buf.ptr` holds `len` elements of T as the device
        // had them (T: DeviceRepr is plain data, any bit pattern the device wrote is a value, as with the ordinary
        // download); page-locked memory is page-aligned, so aligned for T; `out` has room for `len` and does not
        // overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.ptr as *const T, out.as_mut_ptr(), len);
            out.set_len(len);
        }
        Ok(Some(out))
    }
}

/// (module, kernel name) of a loaded function.
type FunctionKey = (&'static str, String);

fn cuda_err(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda { op, detail: e.to_string() }
}

impl Gpu {
    /// Opens CUDA device `ordinal` with its own default stream. Errors, in this order: no CUDA driver library,
    /// no such device, kernels not built into this crate.
    ///
    /// It also sets the release threshold of the device's current memory pool to `u64::MAX`
    /// ([`Gpu::set_memory_pool_release_threshold`]): freed scratch stays in the pool for the next call instead of
    /// going back to the driver at every synchronization, as a framework's caching allocator keeps it (best
    /// effort: if the driver refuses, the default stays). That setting is the device's, not this handle's: memory
    /// the pool keeps is not available to allocations outside it (another library's `cudaMalloc`) until the
    /// threshold is lowered again. [`Gpu::from_stream`] does not touch it.
    ///
    /// The handle uses the device's legacy default stream, from a context object of its own. Buffers it allocates
    /// carry cudarc's per-buffer events (cudarc's default), but cudarc uses them only while that context object has
    /// a stream made with `new_stream` alive, and this handle makes none: a caller who hands one of its buffers to
    /// another stream through cudarc synchronizes first ([`Gpu::synchronize`]). Our ops refuse a buffer of another
    /// stream (`WrongStream`: use a handle on its stream, [`Gpu::from_stream`]) and one of another GPU or CUDA
    /// context (`WrongDevice`). [`Gpu::new_untracked`] drops the events (two created per allocation, destroyed per
    /// free: host time) for a caller who keeps its buffers on this handle's stream.
    pub fn new(ordinal: usize) -> Result<Self> {
        Self::open(ordinal, false)
    }

    /// [`Gpu::new`] whose buffers carry no cudarc stream-tracking events (`disable_event_tracking` on the handle's
    /// own context object): each allocation then creates no CUDA events and each free destroys none (a few µs of
    /// host time per allocation by the sixth H200 run's profile, where six top-k allocations took 12-31 µs; an
    /// rSVD makes ~39; never measured against `Gpu::new` in one run: the benchmark's "untracked handle" lines do).
    ///
    /// # Safety
    /// cudarc's contract for buffers without events, for this handle's buffers: the caller uses them (through
    /// cudarc, after [`DeviceVec::as_cuda`] or [`DeviceVec::into_cuda`]) only on this handle's stream, the device's
    /// legacy default stream, or orders every such use on another stream itself (no free before another stream's
    /// use finishes, no use before the allocation's stream is done with it, no concurrent writes). Our own ops
    /// need nothing: they refuse such a buffer on another stream (`WrongStream`).
    pub unsafe fn new_untracked(ordinal: usize) -> Result<Self> {
        Self::open(ordinal, true)
    }

    fn open(ordinal: usize, untracked: bool) -> Result<Self> {
        if cuda_library("cuda").is_none() {
            return Err(Error::NoCudaDriver);
        }
        let count = CudaContext::device_count()
            .map_err(|e| Error::NoCudaDevice { ordinal, detail: e.to_string() })?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoCudaDevice { ordinal, detail: format!("the driver reports {count} device(s)") });
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::NoCudaDevice { ordinal, detail: e.to_string() })?;
        if untracked {
            // SAFETY: cudarc's contract for untracked buffers is that their uses across streams are ordered by the
            // user. This context object is fresh (no buffer was allocated from it yet); this handle allocates,
            // launches, copies and frees on its one stream; our ops refuse its buffers on any other stream
            // (check_buffer); and the caller of new_untracked took on the contract for its own uses through cudarc.
            unsafe { ctx.disable_event_tracking() };
        }
        let gpu = Self::from_stream(ctx.default_stream())?;
        // Best effort: a driver that refuses the attribute leaves CUDA's default (slower, not wrong).
        let _ = gpu.set_memory_pool_release_threshold(u64::MAX);
        Ok(gpu)
    }

    /// Wraps a caller's stream (for example candle's), so our kernels are ordered with the caller's work and
    /// accept the caller's `CudaSlice`s without copies. Unlike [`Gpu::new`] it leaves the device's memory pool as
    /// the caller configured it; see [`Gpu::set_memory_pool_release_threshold`] for why a training loop may want
    /// to raise its release threshold.
    pub fn from_stream(stream: Arc<CudaStream>) -> Result<Self> {
        if !kernels::built() {
            return Err(Error::KernelsNotBuilt);
        }
        let cc = stream.context().compute_capability().ok();
        let dependent_launch = cc == Some((9, 0)) && kernels::ARCHS.contains(&"sm_90");
        Ok(Gpu {
            calls: CallCounters::default(),
            backend: Backend::Cuda(CudaBackend {
                dependent_launch: std::sync::atomic::AtomicBool::new(dependent_launch),
                stream,
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                blas: OnceLock::new(),
                user_blas: OnceLock::new(),
                solver: OnceLock::new(),
                solver_calls: Mutex::new(()),
                handle_init: Mutex::new(()),
                staging: Mutex::new(None),
            }),
        })
    }

    /// The SIMT emulator: kernels compiled for the host from the same sources, run with CUDA's execution model
    /// (docs/emulator.md). For tests and debugging, not speed.
    #[cfg(feature = "emulator")]
    pub fn emulated(schedule: Schedule) -> Self {
        Self::emulated_as(schedule, EmulatedTarget::Sm90)
    }

    /// [`Gpu::emulated`] standing for another GPU in the host's device-dependent choices ([`EmulatedTarget`]: how
    /// much shared memory a block may have, whether sm_90 code runs), each launch held to that GPU's shared memory
    /// limit.
    #[cfg(feature = "emulator")]
    pub fn emulated_as(schedule: Schedule, target: EmulatedTarget) -> Self {
        Gpu { backend: Backend::Emulated(emu::EmuBackend::new(schedule, target)), calls: CallCounters::default() }
    }

    /// The emulator running the kernels built with one planted fault (a `SLR_FAULT_<NAME>` switch in
    /// `cuda/*.cu`, named in lower case) in place of the normal ones: the mutation tests use it to prove the
    /// emulator catches that class of bug. Errors if no kernel has that fault.
    #[cfg(feature = "emulator")]
    #[doc(hidden)]
    pub fn emulated_with_fault(schedule: Schedule, fault: &str) -> Result<Self> {
        Ok(Gpu { backend: Backend::Emulated(emu::EmuBackend::with_fault(schedule, fault)?), calls: CallCounters::default() })
    }

    /// True for a real CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self.backend, Backend::Cuda(_))
    }

    /// A one-line description: the GPU's name and compute capability, or the emulator and its schedule.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cuda(b) => {
                let ctx = b.stream.context();
                let name = ctx.name().unwrap_or_else(|_| "unknown".into());
                let cc = ctx.compute_capability().map(|(a, b)| format!("sm_{a}{b}")).unwrap_or_default();
                format!("{name} ({cc}, CUDA device {})", ctx.ordinal())
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => match (e.fault(), e.target()) {
                (None, EmulatedTarget::Sm90) => format!("SIMT emulator ({:?})", e.schedule()),
                (None, t) => format!("SIMT emulator ({:?}, as {t:?})", e.schedule()),
                (Some(f), _) => format!("SIMT emulator ({:?}, planted fault {f})", e.schedule()),
            },
        }
    }

    /// Whether kernels run from their sm_90 machine code here: a compute capability 9.0 device with sm_90 in the
    /// built targets, or the emulator standing for sm_90 (its default `EmulatedTarget`). Kernels whose other
    /// targets' bodies are stubs (the wide tiled Cholesky, `rsvd_cholqr_factor_tiles9_f32`) launch only where this
    /// holds; elsewhere, newer cards included, the driver would JIT the compute_80 PTX, whose body is the stub.
    pub(crate) fn runs_sm90_code(&self) -> bool {
        match &self.backend {
            Backend::Cuda(b) => b.stream.context().compute_capability().ok() == Some((9, 0)) && kernels::ARCHS.contains(&"sm_90"),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.target().runs_sm90_code(),
        }
    }

    /// The most dynamic shared memory one block may opt into, in bytes (227 KiB on sm_90, 163 KiB on sm_80,
    /// 99 KiB on sm_86/89; on the emulator its `EmulatedTarget`'s). 48 KiB if the driver cannot say.
    pub(crate) fn max_dynamic_shared_bytes(&self) -> u32 {
        match &self.backend {
            Backend::Cuda(b) => b
                .stream
                .context()
                .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
                .map_or(48 * 1024, |v| v.max(0) as u32),
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => e.target().max_shared_bytes_per_block(),
        }
    }

    /// The device's multiprocessor count, for kernels that size a fixed grid to the machine (132 on an H100 SXM and
    /// an H200). 1 if the driver cannot say. The emulator reports 4, so that such grids stride several rounds per
    /// block on test-sized inputs (its blocks run one after another: the count has no cost there).
    pub(crate) fn multiprocessor_count(&self) -> u32 {
        match &self.backend {
            Backend::Cuda(b) => b
                .stream
                .context()
                .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .map_or(1, |v| v.max(1) as u32),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => 4,
        }
    }

    /// Sets how many bytes of freed memory the device's current memory pool may hold before it returns memory to
    /// the driver (`CU_MEMPOOL_ATTR_RELEASE_THRESHOLD`).
    ///
    /// Our ops allocate their scratch from the stream's pool (cudarc's `cuMemAllocAsync`) and free it when they
    /// return. CUDA's default threshold is 0: at every synchronization (every op that reads a count back: top-k,
    /// rSVD) the pool unmaps what was freed, and the next call maps it again, which costs driver time in every
    /// call of a training loop. `u64::MAX` keeps everything freed (the pool then holds the peak of what was in use
    /// at once; a lower value trims down to it at the next synchronization, 0 restores CUDA's default).
    /// This is a device-wide setting, shared with every other user of the pool (another crate allocating through
    /// cudarc, for example); [`Gpu::new`] sets `u64::MAX`, [`Gpu::from_stream`] leaves it to the caller.
    /// No effect on a device without memory pools (allocations are then synchronous) or on the emulator.
    pub fn set_memory_pool_release_threshold(&self, bytes: u64) -> Result<()> {
        self.pool_release_threshold(Some(bytes)).map(|_| ())
    }

    /// The release threshold of the device's current memory pool in bytes ([`Gpu::set_memory_pool_release_threshold`]);
    /// `None` on a device without memory pools or on the emulator.
    pub fn memory_pool_release_threshold(&self) -> Result<Option<u64>> {
        self.pool_release_threshold(None)
    }

    /// Sets (`Some`) or reads (`None`) the release threshold of the device's current memory pool; returns the
    /// value afterwards, `None` where there is no pool.
    fn pool_release_threshold(&self, set: Option<u64>) -> Result<Option<u64>> {
        match &self.backend {
            Backend::Cuda(b) => {
                let ctx = b.stream.context();
                if !ctx.has_async_alloc() {
                    return Ok(None);
                }
                let attr = cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
                let mut value = set.unwrap_or(0);
                let ptr = &mut value as *mut u64 as *mut c_void;
                // SAFETY: `cu_device` is the device of a live context, as cuDeviceGetMemPool requires; the
                // release-threshold attribute is a cuuint64_t, and `ptr` points at a live u64 for both calls.
                unsafe {
                    let pool = cudarc::driver::result::device::get_mem_pool(ctx.cu_device()).map_err(cuda_err("memory pool"))?;
                    match set {
                        Some(_) => cudarc::driver::result::mem_pool::set_attribute(pool, attr, ptr),
                        None => cudarc::driver::result::mem_pool::get_attribute(pool, attr, ptr),
                    }
                }
                .map_err(cuda_err("memory pool release threshold"))?;
                Ok(Some(value))
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(None),
        }
    }

    /// The CUDA stream ops are queued on (`None` for the emulator).
    pub fn cuda_stream(&self) -> Option<&Arc<CudaStream>> {
        match &self.backend {
            Backend::Cuda(b) => Some(&b.stream),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => None,
        }
    }

    /// A cuBLAS handle on this stream for the caller (the benchmarks' dense baselines, say), created on first use;
    /// not the one our ops use, so its settings (pointer mode, workspace, math mode) are the caller's to change.
    /// Errors if libcublas cannot be loaded or on the emulator.
    pub fn cublas(&self) -> Result<Arc<CudaBlas>> {
        match &self.backend {
            Backend::Cuda(b) => b.blas_from(&b.user_blas),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Err(Error::LibraryMissing { library: "cuBLAS (not available on the emulator)" }),
        }
    }

    /// Our ops' cuBLAS handle on this stream, created on first use (in its default settings, which nothing
    /// changes). Errors like [`Gpu::cublas`].
    pub(crate) fn ops_cublas(&self) -> Result<Arc<CudaBlas>> {
        match &self.backend {
            Backend::Cuda(b) => b.blas_from(&b.blas),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Err(Error::LibraryMissing { library: "cuBLAS (not available on the emulator)" }),
        }
    }

    /// Serializes this handle's cuSOLVER calls across host threads: hold the guard from the first call on the
    /// [`Gpu::cusolver_dn`] handle (a workspace query included) to the last one of a solve. `None` off CUDA.
    pub(crate) fn cusolver_calls(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match &self.backend {
            Backend::Cuda(b) => Some(b.solver_calls.lock().unwrap_or_else(|p| p.into_inner())),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => None,
        }
    }

    /// A cuSOLVER dense handle on this stream, created on first use: `rsvd`'s small eigenproblem, which syevd
    /// takes by default from sketch width l = 96 on the queued path (at every l under `SLR_RSVD_SMALL=cusolver`;
    /// syevj under `cusolver_jacobi`; 2026-11-29: not only a comparison). Errors if libcusolver cannot be loaded
    /// or on the emulator.
    pub(crate) fn cusolver_dn(&self) -> Result<Arc<cudarc::cusolver::DnHandle>> {
        match &self.backend {
            Backend::Cuda(b) => b.handle_in(&b.solver, || {
                if cuda_library("cusolver").is_none() {
                    return Err(Error::LibraryMissing { library: "cuSOLVER" });
                }
                b.stream.context().bind_to_thread().map_err(|e| Error::Cuda { op: "cusolver", detail: format!("{e:?}") })?;
                cudarc::cusolver::DnHandle::new(b.stream.clone()).map_err(|e| Error::Cuda { op: "cusolver", detail: format!("{e:?}") })
            }),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Err(Error::LibraryMissing { library: "cuSOLVER (not available on the emulator)" }),
        }
    }

    /// The host-side calls this handle has made so far (launches, allocations, synchronizations); the difference
    /// of two snapshots is what the work between them cost the host: `gpu.host_calls() - before`.
    pub fn host_calls(&self) -> HostCalls {
        let c = &self.calls;
        HostCalls {
            launches: c.launches.load(Ordering::Relaxed),
            library_calls: c.library_calls.load(Ordering::Relaxed),
            allocations: c.allocations.load(Ordering::Relaxed),
            allocated_bytes: c.allocated_bytes.load(Ordering::Relaxed),
            uploads: c.uploads.load(Ordering::Relaxed),
            synchronizations: c.synchronizations.load(Ordering::Relaxed),
        }
    }

    /// Counts one call into a device library (cuBLAS) for [`Gpu::host_calls`].
    pub(crate) fn count_library_call(&self) {
        self.calls.library_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies `data` to a new device buffer.
    pub fn upload<T: DeviceRepr + Copy>(&self, data: &[T]) -> Result<DeviceVec<T>> {
        self.calls.allocation(std::mem::size_of_val(data));
        self.calls.uploads.fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Cuda(b) => {
                let s = b.stream.clone_htod(data).map_err(cuda_err("upload"))?;
                Ok(DeviceVec { inner: VecInner::Cuda(s) })
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(DeviceVec { inner: VecInner::Emulated(emu::EmuVec::from_slice(data)?) }),
        }
    }

    /// A new device buffer of `len` zeros. `WorkspaceTooLarge` when `len` elements exceed `isize::MAX` bytes.
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits + Copy>(&self, len: usize) -> Result<DeviceVec<T>> {
        self.calls.allocation(buffer_bytes::<T>("alloc_zeros", len)?);
        match &self.backend {
            Backend::Cuda(b) => {
                let s = b.stream.alloc_zeros(len).map_err(cuda_err("alloc_zeros"))?;
                Ok(DeviceVec { inner: VecInner::Cuda(s) })
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(DeviceVec { inner: VecInner::Emulated(emu::EmuVec::zeros(len)?) }),
        }
    }

    /// A new device buffer of `len` elements with unspecified contents (0xA5 bytes on the emulator).
    ///
    /// # Safety
    /// The caller writes every element before anything reads it (typically a kernel that fills it).
    pub(crate) unsafe fn alloc_uninit<T: DeviceRepr + Copy>(&self, len: usize) -> Result<DeviceVec<T>> {
        self.calls.allocation(buffer_bytes::<T>("alloc", len)?);
        match &self.backend {
            Backend::Cuda(b) => {
                // SAFETY: the caller's contract: nothing reads the buffer before it is written.
                let s = unsafe { b.stream.alloc(len) }.map_err(cuda_err("alloc"))?;
                Ok(DeviceVec { inner: VecInner::Cuda(s) })
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(e) => Ok(DeviceVec { inner: VecInner::Emulated(emu::EmuVec::uninit(len, e.schedule())?) }),
        }
    }

    /// Waits for queued work, then copies a device buffer (or view) to the host.
    pub fn download<'a, T: DeviceRepr + Copy + 'a>(&self, src: impl Into<DeviceSlice<'a, T>>) -> Result<Vec<T>> {
        let src = src.into();
        self.calls.synchronizations.fetch_add(1, Ordering::Relaxed);
        match (&self.backend, &src.inner) {
            (Backend::Cuda(b), SliceInner::Cuda(v)) => {
                b.check_buffer::<T>(cudarc::driver::DeviceSlice::stream(v), v.len(), "download", "source buffer")?;
                if let Some(out) = b.download_staged(v)? {
                    return Ok(out);
                }
                let out = b.stream.clone_dtoh(v).map_err(cuda_err("download"))?;
                b.stream.synchronize().map_err(cuda_err("download"))?;
                Ok(out)
            }
            #[cfg(feature = "emulator")]
            (Backend::Emulated(_), SliceInner::Host { ptr, len, .. }) => {
                // SAFETY: a Host slice points at `len` initialized elements of a live emulator buffer borrowed
                // for the view's lifetime; the emulator runs launches synchronously, so no kernel is writing.
                Ok(unsafe { std::slice::from_raw_parts(*ptr, *len) }.to_vec())
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongDevice { op: "download", what: "source buffer" }),
        }
    }

    /// Waits until all queued work on this handle's stream is done.
    pub fn synchronize(&self) -> Result<()> {
        self.calls.synchronizations.fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Cuda(b) => b.stream.synchronize().map_err(cuda_err("synchronize")),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => Ok(()),
        }
    }

    /// Milliseconds per call of `f`, averaged over `iters` calls after one warm-up call. On a GPU the interval
    /// is measured with CUDA events on this handle's stream (so it covers the queued kernels, not the host's
    /// launch overhead alone); on the emulator with the host clock.
    pub fn time_ms(&self, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        let iters = iters.max(1);
        f()?;
        match &self.backend {
            Backend::Cuda(b) => {
                let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
                let start = b.stream.record_event(flags).map_err(cuda_err("time_ms"))?;
                for _ in 0..iters {
                    f()?;
                }
                let end = b.stream.record_event(flags).map_err(cuda_err("time_ms"))?;
                end.synchronize().map_err(cuda_err("time_ms"))?;
                let ms = start.elapsed_ms(&end).map_err(cuda_err("time_ms"))?;
                Ok(ms as f64 / iters as f64)
            }
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    f()?;
                }
                Ok(t.elapsed().as_secs_f64() * 1e3 / iters as f64)
            }
        }
    }

    /// A CUDA event recorded on this handle's stream now (nothing waits for it); `None` on the emulator or if the
    /// driver refuses. For profiles that time steps on the device.
    pub(crate) fn event_now(&self) -> Option<cudarc::driver::CudaEvent> {
        match &self.backend {
            Backend::Cuda(b) => b.stream.record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT)).ok(),
            #[cfg(feature = "emulator")]
            Backend::Emulated(_) => None,
        }
    }

    /// Per-step device times of one call, for an op's profile switch (`SLR_TOPK_PROFILE`): with `on`, each
    /// [`StepTimes::mark`] records a CUDA event on the stream (nothing waits), and [`StepTimes::report`] waits once
    /// at the end and prints the milliseconds between consecutive marks (so each step includes the gap before its
    /// first kernel: launch latency shows where it is paid). Host time on the emulator; nothing when off.
    pub(crate) fn step_times(&self, on: bool) -> StepTimes<'_> {
        StepTimes { gpu: self, on, marks: Vec::new() }
    }

    /// The function and the dynamic shared memory it is opted into (see `CudaBackend::functions`).
    fn cuda_function(b: &CudaBackend, module: &'static str, kernel: &str) -> Result<(CudaFunction, u32)> {
        let key = (module, kernel.to_string());
        if let Some(f) = b.functions.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(f.clone());
        }
        let m = {
            let mut modules = b.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(module) {
                Some(m) => m.clone(),
                None => {
                    let km = kernels::module(module)
                        .ok_or(Error::KernelNotFound { module, kernel: kernel.to_string() })?;
                    let m = b
                        .stream
                        .context()
                        .load_module(cudarc::nvrtc::Ptx::from_binary(km.fatbin.to_vec()))
                        .map_err(|e| Error::Cuda { op: "load kernel module", detail: format!("{module}: {e}") })?;
                    modules.insert(module, m.clone());
                    m
                }
            }
        };
        let f = m
            .load_function(kernel)
            .map_err(|_| Error::KernelNotFound { module, kernel: kernel.to_string() })?;
        // Another thread may have loaded it meanwhile: its entry (and any opt-in it recorded) wins.
        Ok(b.functions.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert((f, 0)).clone())
    }

    /// Launches `module::kernel` on this handle's stream (or runs it on the emulator).
    ///
    /// # Safety
    /// The caller has validated everything the kernel trusts: every pointer argument addresses a live buffer of
    /// this device with at least as many elements as the kernel will touch given the scalar arguments and the
    /// launch shape, pointer arguments the kernel writes do not overlap ones it reads, and `args` match the
    /// kernel's parameter list in count, order and type.
    pub(crate) unsafe fn launch(&self, module: &'static str, kernel: &str, shape: LaunchShape, args: &[KernelArg]) -> Result<()> {
        // SAFETY: the caller's contract, unchanged.
        unsafe { self.launch_with(module, kernel, shape, args, false) }
    }

    /// [`Gpu::launch`] for a kernel that may start while the previous kernel of the stream still runs
    /// (programmatic dependent launch, sm_90): its blocks can be scheduled as soon as every block of the previous
    /// kernel has called `slr::allow_next_grid()` (or exited), which hides the launch gap between dependent kernels
    /// and lets a prologue (loads of the op's inputs) overlap the previous kernel's tail. Elsewhere (other
    /// devices, the emulator, `SLR_PDL=off`) an ordinary launch.
    ///
    /// # Safety
    /// As for [`Gpu::launch`], and the kernel keeps the contract of `slr::wait_for_previous_grid()`
    /// (cuda/common.cuh): every thread waits before it reads what an earlier stream operation wrote, before any
    /// global write and before it exits; before the wait it only reads the op's inputs and its shared memory.
    /// The kernel is listed in [`AFTER_PREVIOUS_KERNELS`] (tests/kernel_checks.rs checks its sm_90 machine code
    /// waits).
    pub(crate) unsafe fn launch_after_previous(&self, module: &'static str, kernel: &str, shape: LaunchShape, args: &[KernelArg]) -> Result<()> {
        debug_assert!(AFTER_PREVIOUS_KERNELS.iter().any(|p| kernel.starts_with(p)), "{kernel} is not listed in AFTER_PREVIOUS_KERNELS");
        // SAFETY: the caller's contract (the kernel waits for the previous grid before it depends on it).
        unsafe { self.launch_with(module, kernel, shape, args, !crate::path_switch("SLR_PDL", "off")) }
    }

    /// See [`Gpu::launch`] and [`Gpu::launch_after_previous`] (`after_previous`).
    unsafe fn launch_with(&self, module: &'static str, kernel: &str, shape: LaunchShape, args: &[KernelArg], after_previous: bool) -> Result<()> {
        // Every argument in its own 8-byte slot; the kernel reads as many bytes as its parameter type needs
        // (little-endian, so a u32 or f32 sits in the low bytes).
        self.calls.launches.fetch_add(1, Ordering::Relaxed);
        let mut slots: Vec<u64> = args.iter().map(KernelArg::bits).collect();
        let mut params: Vec<*mut c_void> = slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        match &self.backend {
            Backend::Cuda(b) => {
                let (f, opted) = Self::cuda_function(b, module, kernel)?;
                b.stream.context().bind_to_thread().map_err(cuda_err("launch"))?;
                if shape.shared_bytes > OPT_IN_ABOVE && shape.shared_bytes > opted {
                    // Static plus dynamic shared memory beyond 48 KiB must be opted into per function (sm_70+; up
                    // to 227 KiB on sm_90); the launch below fails with a typed error if the card has less. The
                    // attribute is set under the cache's lock and only ever raised (to what this launch needs, when more than
                    // recorded), so a concurrent launch of the same function that needs more can never find it
                    // lowered after its own check.
                    let mut functions = b.functions.lock().unwrap_or_else(|p| p.into_inner());
                    let entry = functions.entry((module, kernel.to_string())).or_insert((f.clone(), 0));
                    if shape.shared_bytes > entry.1 {
                        f.set_attribute(
                            cudarc::driver::sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            shape.shared_bytes as i32,
                        )
                        .map_err(|e| Error::Cuda { op: "launch", detail: format!("{kernel}: shared memory opt-in: {e}") })?;
                        entry.1 = shape.shared_bytes;
                    }
                }
                if after_previous && b.dependent_launch.load(Ordering::Relaxed) {
                    use cudarc::driver::sys::cudaError_enum::{CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_NOT_SUPPORTED};
                    match dependent_launch(&f, shape, b.stream.cu_stream(), &mut params) {
                        Ok(()) => return Ok(()),
                        // The attribute refused: launch it the ordinary way below (same kernel, same arguments;
                        // its wait then returns at once), and do so from now on. Other errors (an earlier
                        // kernel's fault reported here, for one) are the launch's.
                        Err(e) if matches!(e.0, CUDA_ERROR_NOT_SUPPORTED | CUDA_ERROR_INVALID_VALUE) => b.dependent_launch.store(false, Ordering::Relaxed),
                        Err(e) => return Err(Error::Cuda { op: "launch", detail: format!("{kernel} (dependent launch): {e}") }),
                    }
                }
                // SAFETY: `params` holds one pointer per kernel parameter into `slots`, which outlives the
                // call; the caller's contract covers what the kernel does with them.
                unsafe {
                    cudarc::driver::result::launch_kernel(
                        f.cu_function(),
                        shape.grid,
                        shape.block,
                        shape.shared_bytes,
                        b.stream.cu_stream(),
                        &mut params,
                    )
                }
                .map_err(|e| Error::Cuda { op: "launch", detail: format!("{kernel}: {e}") })
            }
            #[cfg(feature = "emulator")]
            // SAFETY: as above; the emulator runs the host build of the same kernel with the same arguments.
            Backend::Emulated(e) => unsafe { e.launch(kernel, shape, args, &mut params) },
        }
    }
}

/// Kernels (name prefixes) that [`Gpu::launch_after_previous`] launches: each waits for the previous grid before it
/// depends on it (cuda/common.cuh `wait_for_previous_grid`); tests/kernel_checks.rs checks their sm_90 code does.
#[doc(hidden)]
pub const AFTER_PREVIOUS_KERNELS: &[&str] = &["topk_bracket_pass_", "topk_bracket_count_", "topk_bracket_refine_", "topk_bracket_tie_count_", "topk_bracket_take_"];

/// `cuLaunchKernelEx` with the programmatic stream serialization attribute (see [`Gpu::launch_after_previous`]).
fn dependent_launch(f: &CudaFunction, shape: LaunchShape, stream: cudarc::driver::sys::CUstream, params: &mut [*mut c_void]) -> std::result::Result<(), cudarc::driver::DriverError> {
    use cudarc::driver::sys;
    // SAFETY: an all-zero CUlaunchAttribute is a valid value (id 0, zeroed union); the fields are set below.
    let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    let config = sys::CUlaunchConfig {
        gridDimX: shape.grid.0,
        gridDimY: shape.grid.1,
        gridDimZ: shape.grid.2,
        blockDimX: shape.block.0,
        blockDimY: shape.block.1,
        blockDimZ: shape.block.2,
        sharedMemBytes: shape.shared_bytes,
        hStream: stream,
        attrs: &mut attr,
        numAttrs: 1,
    };
    // SAFETY: `config` and `attr` outlive the call; `params` holds one pointer per kernel parameter (the caller's
    // contract, as for cuLaunchKernel); no `extra` array.
    unsafe { sys::cuLaunchKernelEx(&config, f.cu_function(), params.as_mut_ptr(), std::ptr::null_mut()) }.result()
}

/// See [`Gpu::step_times`].
pub(crate) struct StepTimes<'g> {
    gpu: &'g Gpu,
    on: bool,
    /// (step ending here, its device event when recorded, host time).
    marks: Vec<(&'static str, Option<cudarc::driver::CudaEvent>, std::time::Instant)>,
}

impl StepTimes<'_> {
    /// Ends the step named `what` here (its work is queued by now); the first mark only starts the clock. A
    /// failure to record an event falls back to host time for that lap.
    pub(crate) fn mark(&mut self, what: &'static str) {
        if !self.on {
            return;
        }
        self.marks.push((what, self.gpu.event_now(), std::time::Instant::now()));
    }

    /// Prints `label: step ms, ...` to stderr after waiting for the last mark.
    pub(crate) fn report(&self, label: &str) {
        if !self.on || self.marks.len() < 2 {
            return;
        }
        if let Some((_, Some(last), _)) = self.marks.last() {
            let _ = last.synchronize();
        }
        let steps: Vec<String> = self
            .marks
            .windows(2)
            .map(|w| {
                let ms = match (&w[0].1, &w[1].1) {
                    (Some(a), Some(b)) => a.elapsed_ms(b).map(f64::from).unwrap_or(f64::NAN),
                    _ => (w[1].2 - w[0].2).as_secs_f64() * 1e3,
                };
                format!("{} {ms:.4}", w[1].0)
            })
            .collect();
        let total: f64 = match (&self.marks[0].1, &self.marks[self.marks.len() - 1].1) {
            (Some(a), Some(b)) => a.elapsed_ms(b).map(f64::from).unwrap_or(f64::NAN),
            _ => (self.marks[self.marks.len() - 1].2 - self.marks[0].2).as_secs_f64() * 1e3,
        };
        eprintln!("{label}: total {total:.4} ms = {} ms", steps.join(", "));
    }
}

/// Dynamic shared memory above which a launch opts in per function: without it, static plus dynamic shared
/// memory must stay within 48 KiB; this leaves 8 KiB for a kernel's static arrays (setting the attribute when
/// it was not needed is harmless).
const OPT_IN_ABOVE: u32 = 40 * 1024;

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaunchShape {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

impl LaunchShape {
    /// One thread per item, `threads` per block, 1-D. Errors if the grid would exceed CUDA's 2^31 - 1 blocks.
    pub fn linear(op: &'static str, items: usize, threads: u32) -> Result<Self> {
        let blocks = items.div_ceil(threads as usize);
        if blocks > i32::MAX as usize {
            return Err(Error::LengthMismatch { op, what: "work items (grid too large)", expected: i32::MAX as usize * threads as usize, got: items });
        }
        Ok(LaunchShape { grid: (blocks as u32, 1, 1), block: (threads, 1, 1), shared_bytes: 0 })
    }
}

/// One kernel argument, by value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KernelArg {
    /// A device address (`T*` parameter).
    Ptr(u64),
    U32(u32),
    U64(u64),
    F32(f32),
}

impl KernelArg {
    /// A pointer argument advanced by `bytes` (a sub-buffer of one allocation); other arguments unchanged.
    pub(crate) fn offset_bytes(self, bytes: usize) -> KernelArg {
        match self {
            KernelArg::Ptr(p) => KernelArg::Ptr(p + bytes as u64),
            other => other,
        }
    }
    fn bits(&self) -> u64 {
        match *self {
            KernelArg::Ptr(p) => p,
            KernelArg::U32(x) => x as u64,
            KernelArg::U64(x) => x,
            KernelArg::F32(x) => x.to_bits() as u64,
        }
    }
}

/// An owned device buffer of `T`: a cudarc `CudaSlice<T>` on a GPU (the type candle's CUDA storage holds), or
/// host memory with guard pages on the emulator.
pub struct DeviceVec<T> {
    inner: VecInner<T>,
}

enum VecInner<T> {
    Cuda(CudaSlice<T>),
    #[cfg(feature = "emulator")]
    Emulated(emu::EmuVec<T>),
}

impl<T> DeviceVec<T> {
    /// Wraps a caller's CUDA buffer without copying.
    pub fn from_cuda(slice: CudaSlice<T>) -> Self {
        DeviceVec { inner: VecInner::Cuda(slice) }
    }
    /// The CUDA buffer, if this lives on a GPU.
    pub fn as_cuda(&self) -> Option<&CudaSlice<T>> {
        match &self.inner {
            VecInner::Cuda(s) => Some(s),
            #[cfg(feature = "emulator")]
            VecInner::Emulated(_) => None,
        }
    }
    /// The CUDA buffer, writable, if this lives on a GPU.
    pub fn as_cuda_mut(&mut self) -> Option<&mut CudaSlice<T>> {
        match &mut self.inner {
            VecInner::Cuda(s) => Some(s),
            #[cfg(feature = "emulator")]
            VecInner::Emulated(_) => None,
        }
    }
    /// Gives the CUDA buffer back (or `self` unchanged if this is an emulator buffer).
    pub fn into_cuda(self) -> std::result::Result<CudaSlice<T>, Self> {
        match self.inner {
            VecInner::Cuda(s) => Ok(s),
            #[cfg(feature = "emulator")]
            other => Err(DeviceVec { inner: other }),
        }
    }
    pub fn len(&self) -> usize {
        match &self.inner {
            VecInner::Cuda(s) => s.len(),
            #[cfg(feature = "emulator")]
            VecInner::Emulated(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A read-only view of `range` (panics if out of bounds, like slice indexing).
    pub fn slice(&self, range: Range<usize>) -> DeviceSlice<'_, T> {
        assert!(range.start <= range.end && range.end <= self.len(), "range {range:?} outside 0..{}", self.len());
        match &self.inner {
            VecInner::Cuda(s) => DeviceSlice { inner: SliceInner::Cuda(s.slice(range)) },
            #[cfg(feature = "emulator")]
            VecInner::Emulated(v) => DeviceSlice {
                // SAFETY: start <= len checked above, so the offset pointer stays within (or one past) the buffer.
                inner: SliceInner::Host { ptr: unsafe { v.as_ptr().add(range.start) }, len: range.len(), _borrow: PhantomData },
            },
        }
    }
    /// A writable view of `range` (panics if out of bounds).
    pub fn slice_mut(&mut self, range: Range<usize>) -> DeviceSliceMut<'_, T> {
        assert!(range.start <= range.end && range.end <= self.len(), "range {range:?} outside 0..{}", self.len());
        match &mut self.inner {
            VecInner::Cuda(s) => DeviceSliceMut { inner: SliceMutInner::Cuda(s.slice_mut(range)) },
            #[cfg(feature = "emulator")]
            VecInner::Emulated(v) => DeviceSliceMut {
                // SAFETY: as in `slice`; the &mut borrow of self makes this the only view.
                inner: SliceMutInner::Host { ptr: unsafe { v.as_mut_ptr().add(range.start) }, len: range.len(), _borrow: PhantomData },
            },
        }
    }
}

/// A borrowed, read-only device buffer: made from a [`DeviceVec`], a cudarc `CudaSlice`, or a `CudaView`.
pub struct DeviceSlice<'a, T> {
    inner: SliceInner<'a, T>,
}

enum SliceInner<'a, T> {
    Cuda(CudaView<'a, T>),
    #[allow(dead_code)]
    Host { ptr: *const T, len: usize, _borrow: PhantomData<&'a T> },
}

/// A borrowed, writable device buffer: made from a [`DeviceVec`], a cudarc `CudaSlice`, or a `CudaViewMut`.
pub struct DeviceSliceMut<'a, T> {
    inner: SliceMutInner<'a, T>,
}

enum SliceMutInner<'a, T> {
    Cuda(CudaViewMut<'a, T>),
    #[allow(dead_code)]
    Host { ptr: *mut T, len: usize, _borrow: PhantomData<&'a mut T> },
}

impl<'a, T> From<&'a DeviceVec<T>> for DeviceSlice<'a, T> {
    fn from(v: &'a DeviceVec<T>) -> Self {
        v.slice(0..v.len())
    }
}
impl<'a, T> From<&'a CudaSlice<T>> for DeviceSlice<'a, T> {
    fn from(s: &'a CudaSlice<T>) -> Self {
        DeviceSlice { inner: SliceInner::Cuda(s.as_view()) }
    }
}
impl<'a, T> From<CudaView<'a, T>> for DeviceSlice<'a, T> {
    fn from(v: CudaView<'a, T>) -> Self {
        DeviceSlice { inner: SliceInner::Cuda(v) }
    }
}
impl<'a, T> From<&'a mut DeviceVec<T>> for DeviceSliceMut<'a, T> {
    fn from(v: &'a mut DeviceVec<T>) -> Self {
        let n = v.len();
        v.slice_mut(0..n)
    }
}
impl<'a, T> From<&'a mut CudaSlice<T>> for DeviceSliceMut<'a, T> {
    fn from(s: &'a mut CudaSlice<T>) -> Self {
        DeviceSliceMut { inner: SliceMutInner::Cuda(s.as_view_mut()) }
    }
}
impl<'a, T> From<CudaViewMut<'a, T>> for DeviceSliceMut<'a, T> {
    fn from(v: CudaViewMut<'a, T>) -> Self {
        DeviceSliceMut { inner: SliceMutInner::Cuda(v) }
    }
}

/// Keeps cudarc's stream-ordering events alive until a launch has been queued.
pub(crate) enum PtrGuard<'a> {
    #[allow(dead_code)]
    Cuda(SyncOnDrop<'a>),
    #[allow(dead_code)]
    Host,
}

/// Address range of a buffer, for overlap checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddrRange {
    start: u64,
    bytes: u64,
}

impl AddrRange {
    /// Whether the range starts at a multiple of `bytes` (a power of two), for vector loads.
    pub fn aligned_to(&self, bytes: u64) -> bool {
        self.start.is_multiple_of(bytes)
    }
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.bytes > 0 && other.bytes > 0 && self.start < other.start.saturating_add(other.bytes) && other.start < self.start.saturating_add(self.bytes)
    }
}

/// Errors with `Aliasing` if `output` overlaps any of `inputs`.
pub(crate) fn check_no_alias(op: &'static str, output: (&'static str, AddrRange), inputs: &[(&'static str, AddrRange)]) -> Result<()> {
    for (name, r) in inputs {
        if output.1.overlaps(r) {
            return Err(Error::Aliasing { op, output: output.0, input: name });
        }
    }
    Ok(())
}

impl<'a, T> DeviceSlice<'a, T> {
    pub fn len(&self) -> usize {
        match &self.inner {
            SliceInner::Cuda(v) => v.len(),
            SliceInner::Host { len, .. } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn addr_range(&self, gpu: &Gpu) -> AddrRange {
        // Saturating: a lying cudarc length (check_buffer) must not wrap into a small range here.
        let bytes = self.len().saturating_mul(std::mem::size_of::<T>()) as u64;
        match (&self.inner, &gpu.backend) {
            // A buffer of another context gets no address (device_ptr would record its event on our stream, an
            // error the context keeps for the next call); check_buffer refuses it before any launch.
            (SliceInner::Cuda(v), Backend::Cuda(b)) if cudarc::driver::DeviceSlice::stream(v).context().cu_ctx() != b.stream.context().cu_ctx() => AddrRange { start: 0, bytes: 0 },
            (SliceInner::Cuda(v), Backend::Cuda(b)) => AddrRange { start: v.device_ptr(&b.stream).0, bytes },
            (SliceInner::Host { ptr, .. }, _) => AddrRange { start: *ptr as u64, bytes },
            #[allow(unreachable_patterns)]
            _ => AddrRange { start: 0, bytes: 0 },
        }
    }
    /// A second view of the same elements, for an input that several launches read.
    pub(crate) fn reborrow(&self) -> DeviceSlice<'a, T> {
        match &self.inner {
            SliceInner::Cuda(v) => DeviceSlice { inner: SliceInner::Cuda(v.slice(..)) },
            SliceInner::Host { ptr, len, .. } => DeviceSlice { inner: SliceInner::Host { ptr: *ptr, len: *len, _borrow: PhantomData } },
        }
    }
    /// The same elements typed as `U`, when `T` is `U`'s element type (`None` otherwise): a generic caller's view
    /// of its buffer as the concrete type a launch needs (an f32 A read in place, a bf16 A handed to cuBLAS).
    pub(crate) fn as_element<U: crate::element::Element>(&self) -> Option<DeviceSlice<'a, U>>
    where
        T: crate::element::Element,
    {
        if T::DTYPE != U::DTYPE {
            return None;
        }
        match &self.inner {
            // SAFETY: T and U are the same element type (their DTYPE tags are equal, and each tag belongs to one
            // sealed type), so the view's bytes are len values of U.
            SliceInner::Cuda(v) => unsafe { v.transmute::<U>(v.len()) }.map(|v| DeviceSlice { inner: SliceInner::Cuda(v) }),
            SliceInner::Host { ptr, len, .. } => Some(DeviceSlice { inner: SliceInner::Host { ptr: *ptr as *const U, len: *len, _borrow: PhantomData } }),
        }
    }
    /// The device address to pass to a kernel, with the guard that orders this read after earlier writes.
    pub(crate) fn kernel_ptr<'s>(&'s self, gpu: &'s Gpu, op: &'static str, what: &'static str) -> Result<(KernelArg, PtrGuard<'s>)> {
        match (&self.inner, &gpu.backend) {
            (SliceInner::Cuda(v), Backend::Cuda(b)) => {
                b.check_buffer::<T>(cudarc::driver::DeviceSlice::stream(v), v.len(), op, what)?;
                let (p, g) = v.device_ptr(&b.stream);
                Ok((KernelArg::Ptr(p), PtrGuard::Cuda(g)))
            }
            #[cfg(feature = "emulator")]
            (SliceInner::Host { ptr, .. }, Backend::Emulated(_)) => Ok((KernelArg::Ptr(*ptr as u64), PtrGuard::Host)),
            _ => Err(Error::WrongDevice { op, what }),
        }
    }
}

impl<'a, T> DeviceSliceMut<'a, T> {
    /// The same elements, read-only, for as long as this view is borrowed.
    pub fn as_slice(&self) -> DeviceSlice<'_, T> {
        match &self.inner {
            SliceMutInner::Cuda(v) => DeviceSlice { inner: SliceInner::Cuda(v.as_view()) },
            SliceMutInner::Host { ptr, len, .. } => DeviceSlice { inner: SliceInner::Host { ptr: *ptr as *const T, len: *len, _borrow: PhantomData } },
        }
    }
    pub fn len(&self) -> usize {
        match &self.inner {
            SliceMutInner::Cuda(v) => v.len(),
            SliceMutInner::Host { len, .. } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn addr_range(&self, gpu: &Gpu) -> AddrRange {
        // Saturating: a lying cudarc length (check_buffer) must not wrap into a small range here.
        let bytes = self.len().saturating_mul(std::mem::size_of::<T>()) as u64;
        match (&self.inner, &gpu.backend) {
            // A buffer of another context gets no address (device_ptr would record its event on our stream, an
            // error the context keeps for the next call); check_buffer refuses it before any launch.
            (SliceMutInner::Cuda(v), Backend::Cuda(b)) if cudarc::driver::DeviceSlice::stream(v).context().cu_ctx() != b.stream.context().cu_ctx() => AddrRange { start: 0, bytes: 0 },
            (SliceMutInner::Cuda(v), Backend::Cuda(b)) => AddrRange { start: v.device_ptr(&b.stream).0, bytes },
            (SliceMutInner::Host { ptr, .. }, _) => AddrRange { start: *ptr as u64, bytes },
            #[allow(unreachable_patterns)]
            _ => AddrRange { start: 0, bytes: 0 },
        }
    }
    /// The device address a kernel writes through, with the guard that orders the write after earlier work.
    pub(crate) fn kernel_ptr_mut<'s>(&'s mut self, gpu: &'s Gpu, op: &'static str, what: &'static str) -> Result<(KernelArg, PtrGuard<'s>)> {
        match (&mut self.inner, &gpu.backend) {
            (SliceMutInner::Cuda(v), Backend::Cuda(b)) => {
                b.check_buffer::<T>(cudarc::driver::DeviceSlice::stream(v), v.len(), op, what)?;
                let (p, g) = v.device_ptr_mut(&b.stream);
                Ok((KernelArg::Ptr(p), PtrGuard::Cuda(g)))
            }
            #[cfg(feature = "emulator")]
            (SliceMutInner::Host { ptr, .. }, Backend::Emulated(_)) => Ok((KernelArg::Ptr(*ptr as u64), PtrGuard::Host)),
            _ => Err(Error::WrongDevice { op, what }),
        }
    }
}

/// Test-only: a writable view of `range` of an emulator buffer that borrows it shared, so a unit test can build
/// the output/input overlap the safe API rules out and check that an op rejects it.
///
/// # Safety
/// Nothing may be written through the view while another view of the buffer is alive; tests only pass it to ops
/// that must refuse it before launching anything.
#[cfg(all(test, feature = "emulator"))]
pub(crate) unsafe fn overlapping_view_for_tests<T>(v: &DeviceVec<T>, range: Range<usize>) -> DeviceSliceMut<'_, T> {
    assert!(range.start <= range.end && range.end <= v.len());
    match &v.inner {
        VecInner::Emulated(e) => DeviceSliceMut {
            // SAFETY: start <= len checked above; the caller promises not to write through it.
            inner: SliceMutInner::Host { ptr: unsafe { e.as_ptr().add(range.start) } as *mut T, len: range.len(), _borrow: PhantomData },
        },
        VecInner::Cuda(_) => panic!("overlapping_view_for_tests: emulator buffers only"),
    }
}

/// A read-only dense matrix on the device; the shape is checked against the buffer at construction.
pub struct DeviceMatRef<'a, T> {
    data: DeviceSlice<'a, T>,
    shape: DenseShape,
}

/// A writable dense matrix on the device.
pub struct DeviceMatMut<'a, T> {
    data: DeviceSliceMut<'a, T>,
    shape: DenseShape,
}

impl<'a, T> DeviceMatRef<'a, T> {
    /// `rows x cols` with leading dimension `ld`; errors if `ld` is below the contiguous extent or the buffer is
    /// too short.
    pub fn new(data: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize, ld: usize, layout: Layout) -> Result<Self> {
        let data = data.into();
        let shape = DenseShape { rows, cols, ld, layout };
        shape.validate("DeviceMatRef::new", "data", data.len())?;
        Ok(DeviceMatRef { data, shape })
    }
    pub fn row_major(data: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, Layout::RowMajor)
    }
    pub fn col_major(data: impl Into<DeviceSlice<'a, T>>, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, rows, Layout::ColMajor)
    }
    pub fn shape(&self) -> DenseShape {
        self.shape
    }
    pub(crate) fn data(&self) -> &DeviceSlice<'a, T> {
        &self.data
    }
    /// The same elements seen as the transpose (`cols x rows`, the other layout, the same leading dimension).
    pub(crate) fn into_transposed(self) -> Self {
        DeviceMatRef { data: self.data, shape: self.shape.transposed() }
    }
}

impl<'a, T> DeviceMatMut<'a, T> {
    /// Same checks as [`DeviceMatRef::new`].
    pub fn new(data: impl Into<DeviceSliceMut<'a, T>>, rows: usize, cols: usize, ld: usize, layout: Layout) -> Result<Self> {
        let data = data.into();
        let shape = DenseShape { rows, cols, ld, layout };
        shape.validate("DeviceMatMut::new", "data", data.len())?;
        Ok(DeviceMatMut { data, shape })
    }
    pub fn row_major(data: impl Into<DeviceSliceMut<'a, T>>, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, Layout::RowMajor)
    }
    pub fn col_major(data: impl Into<DeviceSliceMut<'a, T>>, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, rows, Layout::ColMajor)
    }
    pub fn shape(&self) -> DenseShape {
        self.shape
    }
    pub(crate) fn data_mut(&mut self) -> &mut DeviceSliceMut<'a, T> {
        &mut self.data
    }
    /// The same elements seen as the transpose (cols x rows, the other layout, the same ld): element (j, i) of
    /// the result is element (i, j) of `self`.
    pub(crate) fn into_transposed(self) -> Self {
        DeviceMatMut { data: self.data, shape: self.shape.transposed() }
    }
}

/// File names a CUDA library `name` ("cuda", "cublas", "cusolver") is installed under: the unversioned name and
/// the major versions of CUDA 11-13's libraries on Linux (`libcublas.so.13`, `libcusolver.so.12`: cuSOLVER's soname
/// lags the toolkit's version; `libcuda.so.1`), the 64-bit DLLs on Windows (`cublas64_13.dll`, CUDA 12's
/// `cusolver64_11.dll`; the driver is `nvcuda.dll`). Each is a name cudarc's own loader also tries (its list for
/// CUDA 13 holds these and more), so a library this finds is one cudarc finds. On Linux the order is cudarc's too,
/// less names NVIDIA does not install there (`lib<name>64_<v>.so`), so the first file that opens is the one cudarc
/// opens ([`crate::rsvd`]'s batched eigensolver relies on that; on Windows it is not used).
fn cuda_library_file_names(name: &str) -> Vec<String> {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    let mut names = vec![format!("{DLL_PREFIX}{name}{DLL_SUFFIX}")];
    if cfg!(windows) {
        if name == "cuda" {
            names.push(format!("nvcuda{DLL_SUFFIX}"));
        }
        names.extend(["13", "12", "11", "10"].map(|v| format!("{name}64_{v}{DLL_SUFFIX}")));
    } else {
        names.extend(["13", "12", "11", "1"].map(|v| format!("{DLL_PREFIX}{name}{DLL_SUFFIX}.{v}")));
    }
    names
}

/// The CUDA library `name` ("cuda", "cublas", "cusolver") opened, or `None` when no file of that name
/// ([`cuda_library_file_names`]) can be loaded here: whether the driver, cuBLAS or cuSOLVER exists, asked before
/// any of their functions is called. Our own probe, not cudarc's `is_culib_present`, which exists only while
/// cudarc loads the libraries at run time: a program that also depends on candle with CUDA gets cudarc *linked* to
/// them (candle asks cudarc for `dynamic-linking`, and Cargo unifies the features), and then cudarc has no such
/// function, so calling it failed to compile (2026-11-29, `scripts/check-dependent-build.sh` checks that build).
/// Linked, the libraries are loaded with the program, and opening one by its name finds that copy. (cudarc's
/// `static-linking` is untested: this probe would then look for shared libraries the program does not need, and
/// report cuBLAS or cuSOLVER missing where none is installed; rSVD then takes its own kernels and the host.)
pub(crate) fn cuda_library(name: &str) -> Option<libloading::Library> {
    cuda_library_file_names(name).into_iter().find_map(|file| {
        // SAFETY: loading a CUDA library only runs its initializers, which have no preconditions; nothing of it is
        // called here.
        unsafe { libloading::Library::new(file) }.ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_library_names_include_the_sonames_cuda_13_installs() {
        let unix = !cfg!(windows);
        let cublas = cuda_library_file_names("cublas");
        let cusolver = cuda_library_file_names("cusolver");
        let cuda = cuda_library_file_names("cuda");
        if unix {
            assert!(cublas.contains(&"libcublas.so.13".to_string()) && cublas.contains(&"libcublas.so".to_string()), "{cublas:?}");
            assert!(cusolver.contains(&"libcusolver.so.12".to_string()), "{cusolver:?}");
            assert!(cuda.contains(&"libcuda.so.1".to_string()), "{cuda:?}");
        } else {
            assert!(cuda.contains(&"nvcuda.dll".to_string()) && cublas.contains(&"cublas64_13.dll".to_string()), "{cuda:?} {cublas:?}");
            assert!(cusolver.contains(&"cusolver64_11.dll".to_string()), "{cusolver:?}");
        }
        // No library of that name exists anywhere.
        assert!(cuda_library("slr-no-such-library").is_none());
    }

    #[test]
    fn overlapping_ranges_are_reported_as_aliasing_and_disjoint_ones_pass() {
        let r = |start, bytes| AddrRange { start, bytes };
        assert!(r(100, 16).overlaps(&r(112, 8)));
        assert!(r(112, 8).overlaps(&r(100, 16)));
        assert!(!r(100, 16).overlaps(&r(116, 8)));
        assert!(!r(100, 0).overlaps(&r(100, 8)), "an empty range overlaps nothing");
        let e = check_no_alias("op", ("out", r(0, 64)), &[("a", r(64, 8)), ("b", r(60, 8))]).unwrap_err();
        assert_eq!(e, Error::Aliasing { op: "op", output: "out", input: "b" });
        assert!(check_no_alias("op", ("out", r(0, 64)), &[("a", r(64, 8))]).is_ok());
    }
}

//! Compiles every `cuda/*.cu` once with nvcc into a fatbin that the crate embeds, and writes a resource report
//! (registers, shared memory, stack, spills per kernel and target, from `ptxas -v`).
//!
//! nvcc is looked for in this order: `NVCC`; `CUDA_HOME`/`CUDA_PATH` (`bin/nvcc`); `PATH`; the project-local
//! toolchain folder that `scripts/install-toolchain.sh` fills (`.toolchain/site/nvidia/cu13/bin/nvcc`).
//! Without nvcc the crate still builds (CPU only): a `cargo:warning` says so and every GPU entry point returns
//! `Error::KernelsNotBuilt`. `SLR_REQUIRE_NVCC=1` turns a missing nvcc into a build error (CI sets it).
//!
//! Targets: `SLR_CUDA_ARCHS`, a comma-separated list of `sm_XY` (machine code) and `compute_XY` (PTX, JIT-compiled
//! by the driver on newer cards). Default: `sm_80,sm_86,sm_89,sm_90,compute_80`.
//!
//! With the `emulator` feature the same sources are also compiled for the host (`-DSLR_EMULATE`) together with
//! the SIMT emulator runtime in `cuda/emu/`, and a table of their entry points is generated (docs/emulator.md).
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_ARCHS: &str = "sm_80,sm_86,sm_89,sm_90,compute_80";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let cuda_dir = manifest.join("cuda");
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "PATH", "SLR_CUDA_ARCHS", "SLR_REQUIRE_NVCC", "SLR_NVCC_FLAGS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=cuda");
    let sources = cu_sources(&cuda_dir);
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    for f in list_files(&cuda_dir, &["cuh", "h"]) {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let nvcc = find_nvcc(&manifest);
    if let Some(nvcc) = &nvcc {
        println!("cargo:rerun-if-changed={}", nvcc.display());
    }
    let require = env::var("SLR_REQUIRE_NVCC").map(|v| v == "1" || v == "true").unwrap_or(false);

    let mut modules_rs = String::new();
    let mut report = String::from("kernel\ttarget\tregisters\tshared_bytes\tstack_bytes\tspill_store_bytes\tspill_load_bytes\n");
    let archs = env::var("SLR_CUDA_ARCHS").unwrap_or_else(|_| DEFAULT_ARCHS.to_string());
    let archs: Vec<String> = archs.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    match &nvcc {
        Some(nvcc) => {
            writeln!(modules_rs, "/// nvcc that built the kernels.\npub const NVCC: Option<&str> = Some({:?});", nvcc.display().to_string()).unwrap();
            writeln!(modules_rs, "/// Targets the fatbins hold.\npub const ARCHS: &[&str] = &{:?};", archs).unwrap();
            writeln!(modules_rs, "/// One fatbin per `cuda/*.cu`.\npub const MODULES: &[KernelModule] = &[").unwrap();
            for src in &sources {
                let stem = src.file_stem().unwrap().to_str().unwrap().to_string();
                let fatbin = out.join(format!("{stem}.fatbin"));
                let ptxas_log = compile_fatbin(nvcc, &cuda_dir, src, &fatbin, &archs);
                parse_ptxas(&ptxas_log, &mut report);
                writeln!(
                    modules_rs,
                    "    KernelModule {{ name: {stem:?}, fatbin: include_bytes!({:?}) }},",
                    fatbin.display().to_string()
                )
                .unwrap();
            }
            writeln!(modules_rs, "];").unwrap();
        }
        None => {
            let msg = "sparse-lowrank: nvcc not found (NVCC, CUDA_HOME/CUDA_PATH, PATH, .toolchain/): building CPU-only; \
                       GPU entry points will return Error::KernelsNotBuilt. Run scripts/install-toolchain.sh \
                       (pinned CUDA 13.0 compiler from PyPI) or set NVCC to build the kernels.";
            if require {
                panic!("{msg} (SLR_REQUIRE_NVCC is set, so this is an error)");
            }
            println!("cargo:warning={msg}");
            modules_rs.push_str("pub const NVCC: Option<&str> = None;\npub const ARCHS: &[&str] = &[];\npub const MODULES: &[KernelModule] = &[];\n");
        }
    }
    fs::write(out.join("kernel_modules.rs"), modules_rs).unwrap();
    fs::write(out.join("resource-report.tsv"), &report).unwrap();
    // A copy next to the build outputs for people to read (target/<profile>/kernel-resource-report.tsv).
    if let Some(profile_dir) = out.ancestors().nth(3) {
        let _ = fs::write(profile_dir.join("kernel-resource-report.tsv"), &report);
    }

    build_emulator(&manifest, &cuda_dir, &sources, nvcc.as_deref(), &out);
}

fn list_files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)));
    v.sort();
    v
}

fn cu_sources(cuda_dir: &Path) -> Vec<PathBuf> {
    list_files(cuda_dir, &["cu"])
}

fn find_nvcc(manifest: &Path) -> Option<PathBuf> {
    let runs = |p: &Path| Command::new(p).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if let Ok(p) = env::var("NVCC") {
        let p = PathBuf::from(p);
        if runs(&p) {
            return Some(p);
        }
        println!("cargo:warning=NVCC={} does not run; looking elsewhere", p.display());
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(home) = env::var(var) {
            let p = PathBuf::from(home).join("bin").join("nvcc");
            if runs(&p) {
                return Some(p);
            }
        }
    }
    if let Ok(path) = env::var("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join("nvcc");
            if p.is_file() && runs(&p) {
                // nvcc must be called by its real path to find its headers (nvcc.profile is read relative to it).
                return Some(fs::canonicalize(&p).unwrap_or(p));
            }
        }
    }
    let local = manifest.join(".toolchain/site/nvidia/cu13/bin/nvcc");
    if runs(&local) {
        return Some(local);
    }
    None
}

fn gencode_flags(archs: &[String]) -> Vec<String> {
    let mut flags = Vec::new();
    for a in archs {
        if let Some(n) = a.strip_prefix("sm_") {
            flags.push(format!("-gencode=arch=compute_{n},code=sm_{n}"));
        } else if let Some(n) = a.strip_prefix("compute_") {
            flags.push(format!("-gencode=arch=compute_{n},code=compute_{n}"));
        } else {
            panic!("SLR_CUDA_ARCHS entry {a:?} is neither sm_XY nor compute_XY");
        }
    }
    flags
}

fn compile_fatbin(nvcc: &Path, cuda_dir: &Path, src: &Path, fatbin: &Path, archs: &[String]) -> String {
    let mut cmd = Command::new(nvcc);
    cmd.arg("-fatbin")
        .arg("-O3")
        .arg("-std=c++17")
        .arg("-Xptxas=-v")
        .arg("-Xptxas=-warn-spills,-warn-lmem-usage")
        .arg(format!("-I{}", cuda_dir.display()))
        .args(gencode_flags(archs))
        .arg("-o")
        .arg(fatbin)
        .arg(src);
    if let Ok(extra) = env::var("SLR_NVCC_FLAGS") {
        cmd.args(extra.split_whitespace());
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("failed to run {}: {e}", nvcc.display()));
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        panic!("nvcc failed on {}:\n{log}", src.display());
    }
    log
}

/// Turns `ptxas -v` output into report rows. ptxas prints, per kernel and target:
/// `Compiling entry function 'NAME' for 'sm_XY'`, then `Function properties for NAME` /
/// `N bytes stack frame, N bytes spill stores, N bytes spill loads`, then
/// `Used N registers, ..., N bytes smem, ...`.
fn parse_ptxas(log: &str, report: &mut String) {
    let mut kernel = String::new();
    let mut target = String::new();
    let (mut stack, mut spill_st, mut spill_ld) = (0u64, 0u64, 0u64);
    let number_before = |line: &str, unit: &str| -> Option<u64> {
        let idx = line.find(unit)?;
        line[..idx].trim_end().rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let mut parts = rest.split('\'');
            kernel = parts.next().unwrap_or("").to_string();
            target = parts.nth(1).unwrap_or("").to_string();
            stack = 0;
            spill_st = 0;
            spill_ld = 0;
        } else if line.contains("bytes stack frame") {
            stack = number_before(line, "bytes stack frame").unwrap_or(0);
            spill_st = number_before(line, "bytes spill stores").unwrap_or(0);
            spill_ld = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") && !kernel.is_empty() {
            let regs = number_before(line, "registers").unwrap_or(0);
            let smem = number_before(line, "bytes smem").unwrap_or(0);
            writeln!(report, "{kernel}\t{target}\t{regs}\t{smem}\t{stack}\t{spill_st}\t{spill_ld}").unwrap();
            kernel.clear();
        }
    }
}

/// The emulated device: the same `.cu` sources compiled for the host against `cuda/emu/cuda_emu.h`.
fn build_emulator(manifest: &Path, cuda_dir: &Path, sources: &[PathBuf], nvcc: Option<&Path>, out: &Path) {
    let mut table = String::new();
    if env::var("CARGO_FEATURE_EMULATOR").is_err() {
        fs::write(out.join("emu_kernels.rs"), "pub const EMU_KERNELS: &[(&str, EmuEntry)] = &[];\npub const EMU_FAULT_KERNELS: &[(&str, &str, EmuEntry)] = &[];\n").unwrap();
        return;
    }
    // The host build needs CUDA's headers (cuda_fp16.h, cuda_bf16.h, vector_types.h): next to nvcc.
    let include = nvcc
        .and_then(|n| n.parent().and_then(|b| b.parent()).map(|r| r.join("include")))
        .filter(|p| p.join("cuda_fp16.h").is_file())
        .or_else(|| Some(manifest.join(".toolchain/site/nvidia/cu13/include")).filter(|p| p.join("cuda_fp16.h").is_file()))
        .unwrap_or_else(|| {
            panic!("the `emulator` feature compiles the kernels for the host and needs CUDA's headers (cuda_fp16.h): run scripts/install-toolchain.sh or set NVCC/CUDA_HOME")
        });
    let emu_dir = cuda_dir.join("emu");
    // The shared-memory race checker (docs/emulator.md): the kernels compiled with -fsanitize=thread, whose
    // per-access hooks the runtime (built with SLR_EMU_RACECHECK, itself not instrumented) provides instead of
    // libtsan. On by default on Linux on x86-64 and aarch64 (it finds the program's TLS block through
    // dl_iterate_phdr); SLR_EMU_RACECHECK=0 turns it off, for instance to link next to a real ThreadSanitizer runtime.
    println!("cargo:rerun-if-env-changed=SLR_EMU_RACECHECK");
    let linux = env::var("CARGO_CFG_TARGET_OS").map(|os| os == "linux").unwrap_or(false);
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let tsan_arch = arch == "x86_64" || arch == "aarch64"; // where g++ has -fsanitize=thread
    let racecheck = env::var("SLR_EMU_RACECHECK").map(|v| v != "0").unwrap_or(linux && tsan_arch);
    let instrument = |b: &mut cc::Build| {
        if racecheck {
            // Without the calls at every function's entry and exit, which the runtime's hooks ignore anyway.
            b.define("SLR_EMU_RACECHECK", None)
                .flag("-fsanitize=thread")
                .flag_if_supported("--param=tsan-instrument-func-entry-exit=0");
        }
    };
    // What every host build of ours shares: C++17 at -O1 (as the self-test), the emulator's switch, our headers and
    // CUDA's.
    let host_build = || {
        let mut b = cc::Build::new();
        b.cpp(true).std("c++17").define("SLR_EMULATE", None).include(cuda_dir).include(&include);
        b.opt_level(1).warnings(false);
        b
    };
    let mut runtime = host_build();
    if racecheck {
        runtime.define("SLR_EMU_RACECHECK", None);
    }
    for rt in list_files(&emu_dir, &["cpp"]) {
        println!("cargo:rerun-if-changed={}", rt.display());
        runtime.file(rt);
    }
    let mut build = host_build();
    instrument(&mut build);
    build
        .flag_if_supported("-fno-strict-aliasing")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unknown-pragmas")
        .flag_if_supported("-Wno-attributes");
    // g++ does not know the .cu extension: say the language explicitly.
    build.flag("-xc++");
    for src in sources {
        build.file(src);
    }
    for h in list_files(&emu_dir, &["h", "hpp"]) {
        println!("cargo:rerun-if-changed={}", h.display());
    }
    build.compile("slr_emu_kernels");

    // Entry points: every SLR_EMU_EXPORT(name) in the sources becomes `slr_emu__name`.
    let exports: Vec<(PathBuf, Vec<String>)> = sources.iter().map(|s| (s.clone(), exported_kernels(s))).collect();
    let names: Vec<String> = exports.iter().flat_map(|(_, k)| k.clone()).collect();

    // Planted faults for the emulator's mutation tests: every `SLR_FAULT_<NAME>` a source mentions gives one more
    // host build of that source with the fault switched on and its kernels renamed `<kernel>__fault_<name>`
    // (so both builds link into one library). Faults must sit in the .cu file's own internal-linkage code.
    let mut faults: Vec<(String, String)> = Vec::new(); // (fault, kernel)
    for (src, kernels) in &exports {
        let stem = src.file_stem().unwrap().to_str().unwrap().to_string();
        for fault in planted_faults(src) {
            let mut variant = host_build();
            instrument(&mut variant);
            variant.define(&format!("SLR_FAULT_{fault}"), None).flag("-xc++").file(src);
            for k in kernels {
                variant.define(k, Some(format!("{k}__fault_{}", fault.to_lowercase()).as_str()));
                faults.push((fault.to_lowercase(), k.clone()));
            }
            variant.compile(&format!("slr_emu_{stem}_fault_{}", fault.to_lowercase()));
        }
    }

    // After every kernel library: the linker resolves their calls into the runtime from the libraries after them.
    runtime.compile("slr_emu_runtime");

    table.push_str("extern \"C\" {\n");
    let all_symbols = names.iter().cloned().chain(faults.iter().map(|(f, k)| format!("{k}__fault_{f}")));
    for n in all_symbols {
        writeln!(table, "    fn slr_emu__{n}(cfg: *const EmuLaunch, args: *mut *mut core::ffi::c_void, err: *mut core::ffi::c_char, err_len: usize) -> core::ffi::c_int;").unwrap();
    }
    table.push_str("}\n/// Kernel name -> host entry point.\npub const EMU_KERNELS: &[(&str, EmuEntry)] = &[\n");
    for n in &names {
        writeln!(table, "    ({n:?}, slr_emu__{n}),").unwrap();
    }
    table.push_str("];\n/// (planted fault, kernel name) -> host entry point of the faulty build.\npub const EMU_FAULT_KERNELS: &[(&str, &str, EmuEntry)] = &[\n");
    for (f, k) in &faults {
        writeln!(table, "    ({f:?}, {k:?}, slr_emu__{k}__fault_{f}),").unwrap();
    }
    table.push_str("];\n");
    fs::write(out.join("emu_kernels.rs"), table).unwrap();
}

/// Kernel names exported for the emulator: every `SLR_EMU_EXPORT(name)` line.
fn exported_kernels(src: &Path) -> Vec<String> {
    let text = fs::read_to_string(src).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("SLR_EMU_EXPORT("))
        .filter_map(|rest| rest.split(')').next())
        .map(|n| n.trim().to_string())
        .collect()
}

/// Names of the planted faults a source mentions (`SLR_FAULT_<NAME>`), sorted and unique.
fn planted_faults(src: &Path) -> Vec<String> {
    let text = fs::read_to_string(src).unwrap();
    let mut v: Vec<String> = text
        .match_indices("SLR_FAULT_")
        .map(|(i, m)| {
            text[i + m.len()..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

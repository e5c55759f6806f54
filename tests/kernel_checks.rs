//! Checks on the compiled kernels that need no GPU: every kernel has a resource-report row for every target
//! with zero spills and no stack; its SASS (cuobjdump) has no local-memory traffic (LDL/STL) and the loads and
//! stores it was written for.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sparse_lowrank::kernels;

/// The source tree: `SLR_SOURCE_DIR` (the GPU check script sets it, since the bundle runs from another path),
/// else where this test was compiled.
fn source_dir() -> PathBuf {
    std::env::var("SLR_SOURCE_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Kernels declared in cuda/*.cu: every `extern "C"` kernel is followed by `SLR_EMU_EXPORT(name)`.
fn declared_kernels() -> BTreeSet<String> {
    let dir = source_dir().join("cuda");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "cu") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(rest) = line.trim().strip_prefix("SLR_EMU_EXPORT(") {
                    names.insert(rest.trim_end_matches(')').trim().to_string());
                }
            }
        }
    }
    names
}

fn built_or_skip(test: &str) -> bool {
    if kernels::built() {
        return true;
    }
    if std::env::var("SLR_REQUIRE_NVCC").is_ok_and(|v| v == "1") {
        panic!("{test}: SLR_REQUIRE_NVCC=1 but the kernels were not built");
    }
    eprintln!("{test}: skipped: kernels not built (no nvcc at build time)");
    false
}

#[test]
fn every_kernel_has_a_resource_row_per_target_with_zero_spills() {
    if !built_or_skip("resource_report") {
        return;
    }
    let rows = kernels::resource_report();
    let declared = declared_kernels();
    assert!(!declared.is_empty());
    let targets: Vec<&str> = kernels::ARCHS.iter().copied().filter(|a| a.starts_with("sm_")).collect();
    assert!(!targets.is_empty(), "no machine-code targets in {:?}", kernels::ARCHS);
    for k in &declared {
        for t in &targets {
            let row = rows
                .iter()
                .find(|r| &r.kernel == k && r.target == *t)
                .unwrap_or_else(|| panic!("no resource-report row for {k} on {t}:\n{}", kernels::RESOURCE_REPORT));
            assert_eq!((row.spill_store_bytes, row.spill_load_bytes), (0, 0), "{k} on {t} spills: {row:?}");
            assert_eq!(row.stack_bytes, 0, "{k} on {t} uses a stack frame: {row:?}");
            assert!(row.registers > 0 && row.registers <= 255, "{k} on {t}: {row:?}");
        }
    }
    // No row for a kernel the sources do not declare (a stale or unexported kernel).
    for r in &rows {
        assert!(declared.contains(&r.kernel), "kernel {} is compiled but not exported with SLR_EMU_EXPORT", r.kernel);
    }
}

/// `topk_select_rows_<dtype>` sizes its dynamic shared memory to the device's opt-in limit less an allowance for its
/// static arrays (src/topk.rs `row_max_len`): the static part must stay inside that allowance on every target, or
/// the longest rows' launch would ask for more than the device grants.
#[test]
fn per_row_topk_static_shared_memory_fits_its_allowance() {
    if !built_or_skip("topk_static_shared") {
        return;
    }
    let rows: Vec<_> = kernels::resource_report().into_iter().filter(|r| r.kernel.starts_with("topk_select_rows_")).collect();
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r.shared_bytes as usize <= sparse_lowrank::topk::ROW_STATIC_SHARED_ALLOWANCE, "{r:?}");
    }
}

/// cuobjdump: `CUOBJDUMP`, next to the nvcc that built the kernels, the project toolchain, or PATH.
fn cuobjdump() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("CUOBJDUMP") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(nvcc) = kernels::NVCC {
        candidates.push(Path::new(nvcc).with_file_name("cuobjdump"));
    }
    candidates.push(source_dir().join(".toolchain/sass/nvidia/cu13/bin/cuobjdump"));
    candidates.push(PathBuf::from("cuobjdump"));
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// SASS per (target, function) of one embedded fatbin.
fn sass_functions(tool: &Path, module: &kernels::KernelModule) -> Vec<(String, String, String)> {
    // One folder per call: tests run in parallel threads, and two writing the same file would race.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("slr-sass-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.fatbin", module.name));
    std::fs::write(&file, module.fatbin).unwrap();
    let mut cmd = Command::new(tool);
    cmd.arg("--dump-sass").arg(&file);
    // cuobjdump needs nvdisasm: put its own folder on PATH.
    if let Some(d) = tool.parent().filter(|d| !d.as_os_str().is_empty()) {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", d.display()));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "cuobjdump failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut result = Vec::new();
    let mut arch = String::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("code for ") {
            if let Some((n, body)) = current.take() {
                result.push((arch.clone(), n, body));
            }
            arch = a.trim().to_string();
        } else if let Some(f) = t.strip_prefix("Function : ") {
            if let Some((n, body)) = current.take() {
                result.push((arch.clone(), n, body));
            }
            current = Some((f.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(t);
            body.push('\n');
        }
    }
    if let Some((n, body)) = current.take() {
        result.push((arch, n, body));
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Instructions each kernel was written to use (substrings of SASS mnemonics, checked on every target).
/// What a kernel's SASS must not contain, beyond local memory (checked for all): instructions its design removed
/// from a hot loop.
fn forbidden_instructions(kernel: &str) -> Vec<&'static str> {
    match kernel {
        // The top-k bracket levels bin a candidate by a subtraction and a shift (range_shift): the 64-bit division
        // it replaced (a reciprocal, MUFU.RCP, and a call to the division routine) was most of the pass's
        // instruction budget. The pass stores each warp's ballot of the keys above as one 32-bit half of a mask
        // word: no atomic ORs on the mask.
        k if k.starts_with("topk_bracket_pass_") => vec!["MUFU.RCP", ".E.OR.64"],
        k if k.starts_with("topk_bracket_count_") || k.starts_with("topk_bracket_refine_") => vec!["MUFU.RCP"],
        // The take collects a region's bits in shared memory: one read-modify-write per mask half, no global
        // atomic per taken candidate.
        k if k.starts_with("topk_bracket_take_") => vec!["ATOMG", "RED."],
        // The ranking sample counts composites, each block on its own: no atomic anywhere.
        k if k.starts_with("topk_sample_ranks_") => vec!["ATOMS", "ATOMG", "RED."],
        // The tiled Cholesky takes each pivot's reciprocal square root directly (MUFU.RSQ): no division, whose
        // reciprocal and refinement would lengthen the diagonal factor's pivot-to-pivot chain.
        "rsvd_cholqr_factor_tiles_f32" | "rsvd_cholqr_factor_tiles9_f32" => vec!["MUFU.RCP"],
        // The eigensolver reduces in fixed orders (warp butterflies, warps in order, ballots): no atomics.
        k if k.starts_with("rsvd_eigh_") => vec!["ATOMS", "ATOMG", "RED."],
        _ => vec![],
    }
}

fn expected_instructions(kernel: &str) -> Vec<&'static str> {
    let narrow = kernel.ends_with("f16") || kernel.ends_with("bf16") || kernel.contains("f16_") || kernel.contains("bf16_");
    match kernel {
        // Index arrays and the gathered matrix are read through the read-only path (const __restrict__); the
        // block's span found by two warps' 32-way searches (ballot, find-leading-one), its offsets staged in shared
        // memory.
        k if k.starts_with("gather_") => {
            if narrow {
                vec!["LDG.E.CONSTANT", "LDG.E.U16.CONSTANT", "STG.E.U16", "VOTE.ANY", "FLO.U32", "STS", "LDS"]
            } else {
                vec!["LDG.E.CONSTANT", "STG.E ", "VOTE.ANY", "FLO.U32", "STS", "LDS"]
            }
        }
        // The weight is read and written in place (an ordinary load, then a store of the same width); the span as
        // for gather.
        k if k.starts_with("scatter_add_") => {
            if narrow {
                vec!["LDG.E.CONSTANT", "LDG.E.U16 ", "STG.E.U16", "VOTE.ANY", "FLO.U32", "STS", "LDS"]
            } else {
                vec!["LDG.E.CONSTANT", "LDG.E ", "STG.E ", "VOTE.ANY", "FLO.U32", "STS", "LDS"]
            }
        }
        // The 4-element transpose: 8-byte (16-bit) or 16-byte (f32) read-only loads and plain stores of whole
        // groups (a 64-bit destination column in the address had split the 16-byte store into four), the tile in
        // shared memory between barriers.
        k if k.starts_with("sddmm_transpose_vec_") => {
            if narrow {
                vec!["LDG.E.64.CONSTANT", "STS", "BAR.SYNC", "LDS", "STG.E.64"]
            } else {
                vec!["LDG.E.128.CONSTANT", "STS", "BAR.SYNC", "LDS", "STG.E.128"]
            }
        }
        // Tiled transpose through shared memory between barriers; read-only loads of the source.
        k if k.starts_with("sddmm_transpose_") => {
            if narrow {
                vec!["LDG.E.U16.CONSTANT", "STS", "BAR.SYNC", "LDS", "STG.E.U16"]
            } else {
                vec!["LDG.E.CONSTANT", "STS", "BAR.SYNC", "LDS", "STG.E "]
            }
        }
        // Tensor-core SDDMM: mma.sync m16n8k16 (HMMA.16816.F32), 16-byte staging of A and B rows into shared
        // memory between barriers, the empty-tile OR-barrier, a tile's entries taken 32 column indices at a time
        // (ballot and population count move the row's cursor), outputs stored at their 16-bit width.
        k if k.starts_with("sddmm_tc_") => vec!["HMMA.16816.F32", "LDG.E.128.CONSTANT", "STS.128", "LDS", "BAR.SYNC", "BAR.RED.OR", "VOTE.ANY", "POPC", "STG.E.U16"],
        // 16-byte read-only loads of A and B rows, f32 FMAs, the lane-group butterfly; the output is read (beta != 0)
        // and written at its width.
        k if k.starts_with("sddmm_") => {
            if narrow {
                vec!["LDG.E.128.CONSTANT", "FFMA", "SHFL.BFLY", "LDG.E.U16 ", "STG.E.U16"]
            } else {
                vec!["LDG.E.128.CONSTANT", "FFMA", "SHFL.BFLY", "LDG.E ", "STG.E "]
            }
        }
        // Warp butterfly reduction of popcounts.
        "mask_row_counts" => vec!["POPC", "SHFL.BFLY"],
        // Chunk sums scanned in shared memory between barriers.
        "scan_u32" => vec!["BAR.SYNC", "STS.64", "LDS.64"],
        // Tiles of 8 counts per thread (two 16-byte loads), warp scans by shuffle, warp totals in shared memory.
        "scan_tiles" => vec!["LDG.E.128.CONSTANT", "SHFL.UP", "BAR.SYNC"],
        // The tile's sum in 64 bits (butterfly per warp, warp sums in shared memory), saturated to 32.
        "scan_tile_sums" => vec!["LDG.E.128.CONSTANT", "SHFL.BFLY", "BAR.SYNC", "STS.64"],
        // 64-bit mask words loaded a lane each (one round trip per 2048 columns), broadcast by index shuffles;
        // ballot of 32 columns, then a prefix popcount per lane.
        "mask_row_columns" => vec!["LDG.E.64.CONSTANT", "SHFL.IDX", "VOTE.ANY", "POPC"],
        // One tensor-core mma.sync.m16n8k16 per warp (HMMA, f32 accumulators; every target is sm_80+); A and B
        // read through the read-only path as 16-bit loads, C read and written in place as f32.
        "tile_mma_bf16" => vec!["HMMA.16816.F32.BF16", "LDG.E.U16.CONSTANT", "LDG.E ", "STG.E "],
        "tile_mma_f16" => vec!["HMMA.16816.F32 ", "LDG.E.U16.CONSTANT", "LDG.E ", "STG.E "],
        // Tensor-core spmm_xst: mma.sync m16n8k16, X staged by 16-byte loads and stores, the S tile zeroed by
        // 16-byte stores and filled by each row's owner thread from 16-bit register windows, the empty-stage
        // OR-barrier, 16-bit output stores.
        k if k.starts_with("spmm_xst_tc") => vec!["HMMA.16816.F32", "LDG.E.128.CONSTANT", "LDG.E.U16.CONSTANT", "STS.128", "STS.U16", "LDS", "BAR.SYNC", "BAR.RED.OR", "STG.E.U16"],
        // Fused multiply-adds; spmm_xst reduces across lanes with a butterfly, spmm_sb broadcasts entries.
        k if k.starts_with("spmm_xst_") && !k.starts_with("spmm_xst_vec") && !k.starts_with("spmm_xst_wide_") => vec!["FFMA", "SHFL.BFLY", "LDG.E.CONSTANT"],
        // Wide T: entries broadcast by index shuffle, 4 transposed X values per lane in one 8-byte load (16 bytes
        // for f32), no butterfly.
        k if k.starts_with("spmm_xst_wide_") => {
            if narrow {
                vec!["FFMA", "SHFL.IDX", "LDG.E.64.CONSTANT"]
            } else {
                vec!["FFMA", "SHFL.IDX", "LDG.E.128.CONSTANT"]
            }
        }
        k if k.starts_with("spmm_sb_") => vec!["FFMA", "SHFL.IDX", "LDG.E.CONSTANT"],
        // 16-byte loads of 8 transposed X values per entry (two for f32).
        k if k.starts_with("spmm_xst_vec") => vec!["FFMA", "SHFL.BFLY", "LDG.E.128.CONSTANT"],
        // A 32x32 tile through shared memory between one barrier.
        k if k.starts_with("transpose_pad_") => vec!["STS", "LDS", "BAR.SYNC"],
        // Bits of the transposed mask set with a 64-bit atomic OR whose result is unused (RED on sm_80, REDG on
        // sm_90), after reading the pattern through the read-only path.
        "csr_transpose_mark" => vec!["LDG.E.CONSTANT", "RED", ".OR.64"],
        // One 64-bit mask word per thread, popcounted.
        "csr_transpose_word_counts" => vec!["LDG.E.64.CONSTANT", "POPC"],
        // Rank of a bit: a word offset plus a masked popcount of the word, stored as a 32-bit position.
        "csr_transpose_place" | "csr_transpose_row_offsets" => vec!["LDG.E.64.CONSTANT", "POPC", "STG.E "],
        // out[perm[e]] = values[e]: perm and values through the read-only path, a store of the element's width.
        k if k.starts_with("transpose_values_") => {
            if narrow {
                vec!["LDG.E.CONSTANT", "LDG.E.U16.CONSTANT", "STG.E.U16"]
            } else {
                vec!["LDG.E.CONSTANT", "STG.E "]
            }
        }
        // Radix-select digit histogram: keys through the read-only path at their width, warp-aggregated
        // shared-memory atomics (MATCH.ANY groups the lanes of one bin), then one global reduction-add per bin.
        k if k.starts_with("topk_histogram_") => {
            if narrow {
                vec!["LDG.E.U16.CONSTANT", "MATCH.ANY", "ATOMS", "BAR.SYNC", ".E.ADD.STRONG.GPU"]
            } else {
                vec!["LDG.E.CONSTANT", "MATCH.ANY", "ATOMS", "BAR.SYNC", ".E.ADD.STRONG.GPU"]
            }
        }
        // One block per row: the row read once into shared memory (16-byte loads and 16-byte shared stores of the
        // order keys when aligned, single keys through the read-only path otherwise), 11-bit digit levels there
        // with plain shared atomics and a block scan (shuffles), ballots for the tie ranks, taken bits ORed into
        // the mask's 64-bit words.
        k if k.starts_with("topk_select_rows_") => {
            let load = if narrow { "LDG.E.U16.CONSTANT" } else { "LDG.E.CONSTANT" };
            vec!["LDG.E.128.CONSTANT", "STS.128", load, "STS", "LDS", "ATOMS", "SHFL.UP", "BAR.SYNC", "VOTE.ANY", ".E.OR.64.STRONG.GPU"]
        }
        // The bracket's sample: strided keys through the read-only path into shared memory, two in-shared radix
        // selects by 11-bit digit levels (plain shared atomics, block scans by shuffles, barriers).
        k if k.starts_with("topk_sample_bracket_") => {
            let load = if narrow { "LDG.E.U16.CONSTANT" } else { "LDG.E.CONSTANT" };
            vec![load, "STS", "ATOMS", "SHFL.UP", "BAR.SYNC", "STG.E "]
        }
        // The ranking sample: strided keys through the read-only path, composites into shared memory, counted by
        // 16-byte shared loads (four or two composites each, a broadcast to the warp), two barriers, plain stores of
        // the two keys; no atomics (forbidden_instructions).
        k if k.starts_with("topk_sample_ranks_") => {
            let load = if narrow { "LDG.E.U16.CONSTANT" } else { "LDG.E.CONSTANT" };
            vec![load, "STS", "LDS.128", "BAR.SYNC", "STG.E "]
        }
        // The mask's streaming pass: one warp per chunk, 16-byte key loads (L2-coherent before the wait, read-only
        // path after it), the mask halves ORed across lanes by shuffles (SHFL.BFLY) and stored whole, the candidates
        // placed by warp scans (SHFL.UP) and stored at their width with their indices, bins by shared atomics, one
        // barrier at the end, the last block's ticket and choice.
        k if k.starts_with("topk_bracket_pass_") && !k.starts_with("topk_bracket_pass_rounds_") => {
            let store = if narrow { "STG.E.U16" } else { "STG.E " };
            vec!["LDG.E.128.STRONG.GPU", "LDG.E.128.CONSTANT", "SHFL.BFLY", "SHFL.UP", store, "STG.E ", "ATOMS.", "ATOMG.E.ADD", "MEMBAR", "BAR.SYNC"]
        }
        // The round-based bracket pass (the A/B baseline): keys once through the read-only path, ballots for the keys above (each stored whole as
        // a 32-bit half of a mask word) and the candidates (ranked by a warp scan of per-warp counts), candidate
        // values and indices stored, their slices counted by shared atomics, the last block's ticket and choice
        // (block scan, stores). (The first round's keys by L2-coherent loads, .STRONG.GPU: the dependent launch's
        // prologue, which ptxas keeps ahead of the wait; the later rounds by plain loads.) forbidden_instructions:
        // no atomics on the mask, no division routine.
        k if k.starts_with("topk_bracket_pass_rounds_") => {
            if narrow {
                vec!["LDG.E.U16.STRONG.GPU", "LDG.E.U16 ", "VOTE.ANY", "SHFL.UP", "BAR.SYNC", "STG.E.U16", "STG.E ", "ATOMS.", "ATOMG.E.ADD", "MEMBAR"]
            } else {
                vec!["LDG.E.STRONG.GPU", "LDG.E ", "VOTE.ANY", "SHFL.UP", "BAR.SYNC", "STG.E ", "ATOMS.", "ATOMG.E.ADD", "MEMBAR"]
            }
        }
        // A refinement level: the region's candidates counted in shared slices, added to global memory, the last
        // block's ticket and choice.
        k if k.starts_with("topk_bracket_refine_") => vec!["ATOMS.", "BAR.SYNC", "ATOMG.E.ADD", "MEMBAR", "SHFL.UP", "STG.E "],
        // The ties' per-region counts (warp sums by butterfly) and the last block's in-place scan.
        k if k.starts_with("topk_bracket_tie_count_") => vec!["SHFL.BFLY", "ATOMG.E.ADD", "MEMBAR", "SHFL.UP", "STG.E "],
        // k = n: keys once through the read-only path, per-thread minima and counts combined by butterflies, the
        // last block's ticket; then every mask word stored (64-bit).
        k if k.starts_with("topk_all_min_count_") => {
            let load = if narrow { "LDG.E.U16.CONSTANT" } else { "LDG.E.CONSTANT" };
            vec![load, "SHFL.BFLY", "BAR.SYNC", "ATOMG.E.ADD", "MEMBAR", "STG.E "]
        }
        "topk_all_bits" => vec!["STG.E.64"],
        // The candidates' bits: ballots rank the equal keys, taken bits ORed into the warp's chunk in shared
        // memory, then its nonzero halves ORed into the mask by plain loads and stores (forbidden_instructions: no
        // global atomics).
        k if k.starts_with("topk_bracket_take_") => vec!["VOTE.ANY", "POPC", "ATOMS.OR", "LDG.E.STRONG.GPU", "STG.E "],
        // The cut-only streaming pass: 16-byte key loads (L2-coherent before the wait, read-only path after it),
        // candidates kept in the thread's shared slots at their width, a warp's flush (vote, scan by SHFL.UP, one
        // global atomic, values stored at their width, bins counted by shared atomics), the last block's ticket and
        // choice; no barrier in the loop (not checked here: the loop has none in the source).
        k if k.starts_with("topk_bracket_count_") && !k.starts_with("topk_bracket_count_rounds_") => {
            let (slot, store) = if narrow { ("STS.U16", "STG.E.U16") } else { ("STS ", "STG.E ") };
            vec!["LDG.E.128.STRONG.GPU", "LDG.E.128.CONSTANT", slot, "VOTE.ANY", "SHFL.UP", "ATOMG.E.ADD", store, "ATOMS.", "MEMBAR", "BAR.SYNC"]
        }
        // The round-based cut-only pass (the A/B baseline): keys once through the read-only path, ballots,
        // per-(u, warp) counts scanned by one warp (SHFL.UP) between barriers, one global atomic per block round,
        // candidate values stored at their width, the candidates' bins counted by shared atomics, the last block's
        // ticket and choice.
        k if k.starts_with("topk_bracket_count_rounds_") => {
            if narrow {
                vec!["LDG.E.U16.STRONG.GPU", "LDG.E.U16 ", "VOTE.ANY", "SHFL.UP", "BAR.SYNC", "ATOMG.E.ADD", "STG.E.U16", "ATOMS.", "MEMBAR"]
            } else {
                vec!["LDG.E.STRONG.GPU", "LDG.E ", "VOTE.ANY", "SHFL.UP", "BAR.SYNC", "ATOMG.E.ADD", "STG.E ", "ATOMS.", "MEMBAR"]
            }
        }
        // Suffix sums of 256 bins in shared memory between barriers.
        "topk_choose" => vec!["BAR.SYNC", "STS", "LDS"],
        // The plan's starting state, one plain store per word.
        "topk_init_state" => vec!["STG.E "],
        // Per-tile counts summed in shared memory, added to the segment's state in global memory.
        k if k.starts_with("topk_tile_counts_") => vec!["ATOMS.ADD", "BAR.SYNC", ".E.ADD.STRONG.GPU"],
        // Ballots rank the equal keys; taken bits ORed into the mask as 64-bit words.
        k if k.starts_with("topk_select_mask_") => vec!["VOTE.ANY", "POPC", ".E.OR.64.STRONG.GPU"],
        // Philox's 32x32 -> 64-bit multiplies, the IEEE square root (MUFU.RSQ + refinement) and division (MUFU.RCP
        // + refinement) of Box-Muller, fmaf polynomials, plain stores of the normals.
        "rsvd_gaussian_f32" => vec!["IMAD.WIDE.U32", "MUFU.RSQ", "MUFU.RCP", "FFMA", "STG.E "],
        // R₂ widened for the small SVD's f64 products: a read-only load, the exact conversion, a 64-bit store.
        "rsvd_widen_f32" => vec!["LDG.E.CONSTANT", "F2F.F64.F32", "STG.E.64"],
        // Read-only loads at the input's width, f32 stores, the per-warp butterfly of the non-finite count.
        k if k.starts_with("rsvd_to_f32_") => {
            if narrow {
                vec!["LDG.E.U16.CONSTANT", "STG.E ", "SHFL.BFLY"]
            } else {
                vec!["LDG.E.CONSTANT", "STG.E ", "SHFL.BFLY"]
            }
        }
        // The emulator's product engine: read-only operand loads and an fmaf chain.
        "rsvd_gemm_f32" => vec!["FFMA", "LDG.E.CONSTANT", "STG.E "],
        // The partial Gram matrices summed in order: read-only loads, FADDs, plain stores.
        "rsvd_sum_slices_f32" => vec!["LDG.E.CONSTANT", "FADD", "STG.E "],
        // The emulator's bf16 product engine: 16-bit read-only loads widened by shifts, an fmaf chain, f32 stores
        // (and C's load when β ≠ 0).
        "rsvd_gemm_bf16" => vec!["LDG.E.U16.CONSTANT", "FFMA", "STG.E "],
        // The exact split into three bf16 slices: read-only f32 loads, round-to-nearest conversions (F2FP.BF16...),
        // the two exact subtractions, 16-bit stores.
        "rsvd_split_bf16x3" => vec!["LDG.E.CONSTANT", "F2FP.BF16", "FADD", "STG.E.U16"],
        // A's exact slices: read-only loads at A's width (f16 widened by HADD2.F32), the same conversions and
        // subtractions, 16-bit stores.
        "rsvd_split_a_f32" => vec!["LDG.E.CONSTANT", "F2FP.BF16", "FADD", "STG.E.U16"],
        "rsvd_split_a_f16" => vec!["LDG.E.U16.CONSTANT", "HADD2.F32", "F2FP.BF16", "FADD", "STG.E.U16"],
        // A power-iteration basis's Gram matrix checked against I: global loads, per-column butterfly sums, the
        // OR-barrier, one status store.
        "rsvd_gram_check_f32" => vec!["LDG.E", "SHFL.BFLY", "BAR.RED.OR", "STG.E "],
        // A later pass's step near I: read-only loads of G, the squares' FMAs and butterfly sums, one barrier before
        // the block's decision, X and the status word stored.
        "rsvd_near_identity_step_f32" => vec!["LDG.E.CONSTANT", "FFMA", "SHFL.BFLY", "BAR.SYNC", "STG.E "],
        // The l x l Cholesky/inverse sweep: shared-memory loads, FMAs and stores between barriers, the square root
        // and reciprocal of each pivot, the OR-barrier of the near-identity check.
        "rsvd_cholqr_factor_f32" => vec!["BAR.SYNC", "BAR.RED.OR", "LDS", "STS", "FFMA", "MUFU.RSQ", "MUFU.RCP", "STG.E "],
        // The blocked factorization: read-only loads of G's lower triangle, the OR-barrier of the near-identity
        // check and the block steps' barriers, the diagonal factor's pivot shuffles and reciprocal square roots,
        // broadcast 16-byte loads of R's rows feeding the solves' and products' FMAs, R⁻¹ stored.
        // The f64 eigensolver's kernels. Tridiagonalization: the matrix in shared memory (8-byte accesses), f64
        // arithmetic with a square root and divisions (MUFU.RSQ64H, MUFU.RCP64H seed them), warp butterflies,
        // barriers, T and the reflectors stored to the scratch. Eigenvalues: T in shared memory, the Sturm counts'
        // fmas, the multisection's ballot and shuffles. Eigenvectors: the elimination's factors in shared memory,
        // its divisions. Back-transform: the reflectors from shared memory, the warp dot products' butterflies.
        "rsvd_eigh_tridiag_f64" => vec!["LDS.64", "STS.64", "DFMA", "DADD", "MUFU.RSQ64H", "MUFU.RCP64H", "SHFL.BFLY", "BAR.SYNC", "LDG.E.64", "STG.E.64"],
        "rsvd_eigh_values_f64" => vec!["LDS.64", "DFMA", "VOTE.ANY", "SHFL.IDX", "BAR.SYNC", "STG.E.64"],
        "rsvd_eigh_vectors_f64" => vec!["LDS.64", "STS.64", "DFMA", "MUFU.RCP64H", "BAR.SYNC", "STG.E.64"],
        "rsvd_eigh_clusters_f64" => vec!["SHFL.BFLY", "BAR.SYNC", "LDG.E.64", "STG.E.64"],
        "rsvd_eigh_back_f64" => vec!["LDS.64", "STS.64", "DFMA", "SHFL.BFLY", "BAR.SYNC", "LDG.E.64", "STG.E.64"],
        "rsvd_cholqr_factor_tiles_f32" | "rsvd_cholqr_factor_tiles9_f32" => vec!["LDG.E.CONSTANT", "BAR.SYNC", "BAR.RED.OR", "SHFL.IDX", "MUFU.RSQ", "LDS.128", "STS", "FFMA", "STG.E "],
        // The small SVD's finish: f32 R₂ widened in registers into f64 FMA chains. The Gram: read-only loads, the
        // exact conversion, 64-bit stores and the non-finite count's atomic add. The vectors: the chosen column
        // through shared memory after a barrier, the square root and reciprocal of σ, f64 and f32 stores. The
        // check: f64 dot products and the flag's atomic OR.
        "rsvd_small_gram_f64" => vec!["LDG.E.CONSTANT", "F2F.F64.F32", "DFMA", "STG.E.64", ".E.ADD"],
        "rsvd_small_vectors_f64" => vec!["BAR.SYNC", "LDS", "F2F.F64.F32", "DFMA", "MUFU.RSQ64H", "MUFU.RCP64H", "STG.E.64", "STG.E "],
        "rsvd_small_check_f64" => vec!["LDG.E.64", "DFMA", ".E.OR"],
        _ => vec![],
    }
}

/// One SASS instruction of a `sass_functions` body: its address and its text without the predicate
/// (`@P0`, `@!PT`), e.g. `(0x460, "LDG.E.U16.CONSTANT R25, desc[UR10][R20.64] ;")`.
fn instructions(body: &str) -> Vec<(u64, String)> {
    body.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("/*")?;
            let (addr, text) = rest.split_once("*/")?;
            let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
            let mut text = text.trim();
            if text.starts_with('@') {
                text = text.split_once(' ').map_or("", |(_, t)| t.trim());
            }
            Some((addr, text.to_string()))
        })
        .collect()
}

/// Kernels launched with programmatic dependent launch (`sparse_lowrank::device::AFTER_PREVIOUS_KERNELS`) may start
/// while the previous kernel runs; their sm_90 code must wait for it (`griddepcontrol.wait`, SASS `ACQBULK`) before
/// anything can leave the kernel or touch global memory it does not own. In address order up to the first
/// `ACQBULK` (the code every thread runs first): no exit or return, no global or generic store, atomic or
/// reduction, no branch or call that lands beyond the wait (an exit path that skips it would end this grid before
/// the previous one, and the next kernel's wait would no longer cover the chain), and no read-only-path load
/// (`LDG.*.CONSTANT`: ptxas may move those across the wait, and the previous grid may still be writing). The
/// pass kernels must issue global loads there (their first round of keys, which is what overlaps the sample). The
/// sample kernels before the first of them let it start early (`launch_dependents`, SASS `PREEXIT`); the ranking
/// one issues all 16 of a thread's key loads before its first shared store.
#[test]
fn dependent_launch_kernels_wait_for_the_previous_grid_before_they_write_or_exit() {
    if !built_or_skip("dependent_launch") {
        return;
    }
    let tool = cuobjdump().expect("cuobjdump not found (scripts/install-toolchain.sh installs it; or set CUOBJDUMP)");
    let mut checked = 0;
    for module in kernels::MODULES {
        for (arch, name, body) in sass_functions(&tool, module) {
            if arch != "sm_90" {
                continue;
            }
            let code = instructions(&body);
            let opcode = |text: &str| text.split([' ', '.']).next().unwrap_or("").to_string();
            if name.starts_with("topk_sample_bracket_") || name.starts_with("topk_sample_ranks_") {
                assert!(code.iter().any(|(_, t)| opcode(t) == "PREEXIT"), "{name}: no launch_dependents (PREEXIT):\n{body}");
            }
            // The ranking sample's 16 scattered key loads per thread all issue before its first shared store: one
            // DRAM (or L2) latency per block, not sixteen.
            if name.starts_with("topk_sample_ranks_") {
                let loads = code.iter().map(|(_, t)| opcode(t)).take_while(|op| !op.starts_with("STS")).filter(|op| op.starts_with("LDG")).count();
                assert!(loads >= 16, "{name} on {arch}: {loads} key loads before the first shared store, expected 16:\n{body}");
            }
            if !sparse_lowrank::device::AFTER_PREVIOUS_KERNELS.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let wait = code.iter().position(|(_, t)| opcode(t) == "ACQBULK").unwrap_or_else(|| panic!("{name} on {arch}: no griddepcontrol.wait (ACQBULK):\n{body}"));
            let wait_addr = code[wait].0;
            for (addr, text) in &code[..wait] {
                let op = opcode(text);
                let bad = matches!(op.as_str(), "EXIT" | "RET" | "STG" | "ST" | "ATOM" | "ATOMG" | "RED" | "REDG" | "BRX" | "JMX" | "CALL")
                    || (op == "LDG" && text.split(' ').next().is_some_and(|m| m.contains(".CONSTANT")));
                assert!(!bad, "{name} on {arch}: {text:?} at {addr:#x}, before the first ACQBULK at {wait_addr:#x}:\n{body}");
                if op == "BRA" || op == "JMP" {
                    let target = text.split_whitespace().find_map(|w| w.trim_end_matches([';', ',']).strip_prefix("0x")).and_then(|h| u64::from_str_radix(h, 16).ok());
                    let target = target.unwrap_or_else(|| panic!("{name}: unparsed branch {text:?}"));
                    assert!(target <= wait_addr, "{name} on {arch}: {text:?} at {addr:#x} jumps past the first ACQBULK at {wait_addr:#x}:\n{body}");
                }
            }
            if name.starts_with("topk_bracket_pass_") || name.starts_with("topk_bracket_count_") {
                assert!(code[..wait].iter().any(|(_, t)| opcode(t) == "LDG"), "{name} on {arch}: no key loads before the wait (the prologue moved):\n{body}");
            }
            checked += 1;
        }
    }
    assert!(checked >= sparse_lowrank::device::AFTER_PREVIOUS_KERNELS.len(), "only {checked} dependent-launch kernels found");
}

#[test]
fn sass_has_no_local_memory_and_the_intended_loads() {
    if !built_or_skip("sass") {
        return;
    }
    let tool = cuobjdump().expect("cuobjdump not found (scripts/install-toolchain.sh installs it; or set CUOBJDUMP)");
    let declared = declared_kernels();
    let mut seen = BTreeSet::new();
    for module in kernels::MODULES {
        for (arch, name, body) in sass_functions(&tool, module) {
            seen.insert(name.clone());
            for bad in ["LDL", "STL"] {
                assert!(!body.contains(bad), "{name} on {arch} uses local memory ({bad}):\n{body}");
            }
            // The wide tiled Cholesky is sm_90 code only (cuda/rsvd.cu): elsewhere its body is a trap, never launched
            // (src/rsvd.rs factor_kernel_choice).
            let wanted = if name == "rsvd_cholqr_factor_tiles9_f32" && arch != "sm_90" { vec!["BPT.TRAP"] } else { expected_instructions(&name) };
            for want in wanted {
                assert!(body.contains(want), "{name} on {arch}: expected {want:?} in SASS:\n{body}");
            }
            for bad in forbidden_instructions(&name) {
                assert!(!body.contains(bad), "{name} on {arch}: {bad:?} in SASS:\n{body}");
            }
        }
    }
    for k in &declared {
        assert!(seen.contains(k), "no SASS for declared kernel {k}");
        assert!(!expected_instructions(k).is_empty(), "kernel {k} has no SASS expectations in this test: add them");
    }
}

/// Loads a kernel was written to issue together, checked in its SASS on every target: the CUDA-core sddmm's K slot
/// (A and the batch's 4 B rows, `LDG.E.128.CONSTANT`) all before the slot's first FMA, and the decode warp-per-row
/// spmm_xst's step (2 row offsets, 8 values and 8 columns, 8 x 2 X gathers) all before its first FMA. With a load
/// inside each entry's branch, ptxas had issued each entry's loads after the previous entry's FMAs (sddmm f16/bf16:
/// 2 slot loads before the first FMA; spmm_xst_rowwarp: 20). The pipelined wide spmm_xst (`spmm_xst_wide_<T>`, not
/// `_serial`): a round's 16 Xt gathers (`LDG.E.64`, 16-bit types; 8 `LDG.E.128` for f32) all before its first FMA,
/// and the next chunk's value and column loads (with the row offsets and the first chunk's pair: 6 index loads)
/// issued before it too (the serial kernel: 7 gathers, 4 index loads).
#[test]
fn batched_loads_are_issued_before_the_first_fma() {
    if !built_or_skip("batched_loads") {
        return;
    }
    let tool = cuobjdump().expect("cuobjdump not found (scripts/install-toolchain.sh installs it; or set CUOBJDUMP)");
    let (mut checked, mut wide_checked) = (0, 0);
    for module in kernels::MODULES {
        for (arch, name, body) in sass_functions(&tool, module) {
            let code = instructions(&body);
            let opcode = |t: &str| t.split(' ').next().unwrap_or("").to_string();
            if name.starts_with("spmm_xst_wide_") && !name.starts_with("spmm_xst_wide_serial_") {
                let (gather, in_flight) = if name.ends_with("_f32") { ("LDG.E.128", 8) } else { ("LDG.E.64", 16) };
                let before: Vec<String> = code.iter().map(|(_, t)| opcode(t)).take_while(|op| op != "FFMA").collect();
                let gathers = before.iter().filter(|op| op.starts_with(gather)).count();
                let index_loads = before.iter().filter(|op| op.starts_with("LDG") && !op.starts_with(gather)).count();
                assert!(gathers >= in_flight, "{name} on {arch}: {gathers} {gather} before the first FFMA, expected {in_flight}:\n{body}");
                assert!(index_loads >= 6, "{name} on {arch}: {index_loads} index loads before the first FFMA, expected 6 (the next chunk's prefetched):\n{body}");
                wide_checked += 1;
                continue;
            }
            let (from, load, want) = if ["sddmm_f32", "sddmm_f16", "sddmm_bf16"].contains(&name.as_str()) {
                // From the slot's first 16-byte load (the scalar slot code, with its own FMAs, comes earlier).
                let first = code.iter().position(|(_, t)| opcode(t) == "LDG.E.128.CONSTANT").unwrap_or_else(|| panic!("{name} on {arch}: no 16-byte loads"));
                (first, "LDG.E.128", 5)
            } else if name.starts_with("spmm_xst_rowwarp_") {
                (0, "LDG", 34)
            } else {
                continue;
            };
            let loads = code[from..].iter().take_while(|(_, t)| opcode(t) != "FFMA").filter(|(_, t)| opcode(t).starts_with(load)).count();
            assert!(loads >= want, "{name} on {arch}: {loads} {load} before the first FFMA, expected {want}:\n{body}");
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} kernels checked");
    assert!(wide_checked >= 3, "only {wide_checked} pipelined wide kernels checked");
}

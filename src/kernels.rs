//! The kernels built into this crate: one fatbin per `cuda/*.cu` (machine code for each target in
//! [`ARCHS`], plus PTX), and the resource report ptxas printed while building them.

/// A compiled `cuda/<name>.cu`.
#[derive(Debug, Clone, Copy)]
pub struct KernelModule {
    pub name: &'static str,
    pub fatbin: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/kernel_modules.rs"));

/// Tab-separated: kernel, target, registers, shared_bytes, stack_bytes, spill_store_bytes, spill_load_bytes.
pub const RESOURCE_REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/resource-report.tsv"));

/// True when nvcc was found at build time and the kernels are embedded.
pub fn built() -> bool {
    !MODULES.is_empty()
}

/// The module built from `cuda/<name>.cu`.
pub fn module(name: &str) -> Option<&'static KernelModule> {
    MODULES.iter().find(|m| m.name == name)
}

/// One row of the resource report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub kernel: String,
    pub target: String,
    pub registers: u32,
    pub shared_bytes: u64,
    pub stack_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
}

/// The resource report, parsed.
pub fn resource_report() -> Vec<ResourceRow> {
    RESOURCE_REPORT
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != 7 {
                return None;
            }
            Some(ResourceRow {
                kernel: f[0].to_string(),
                target: f[1].to_string(),
                registers: f[2].parse().ok()?,
                shared_bytes: f[3].parse().ok()?,
                stack_bytes: f[4].parse().ok()?,
                spill_store_bytes: f[5].parse().ok()?,
                spill_load_bytes: f[6].parse().ok()?,
            })
        })
        .collect()
}

/*
 * emu_abi.h - C ABI of the SIMT emulator (see README.md in this folder).
 *
 * The emulated build compiles every kernel source cuda/<op>.cu with g++ and -DSLR_EMULATE.  Each
 * `SLR_EMU_EXPORT(kernel)` in those sources defines one entry point
 *
 *     int slr_emu__<kernel>(const slr_emu_launch* cfg, void** args, char* err, size_t err_len);
 *
 * of type slr_emu_entry below.  `args` is laid out exactly like cuLaunchKernel's kernelParams:
 * args[i] points at the value of the kernel's i-th parameter (a pointer parameter is passed as a
 * pointer to a 64-bit pointer value, a scalar as a pointer to the scalar).
 *
 * This header must stay C-compatible: the Rust side declares the same items by hand.
 */
#ifndef SLR_EMU_ABI_H
#define SLR_EMU_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct slr_emu_launch {
  unsigned grid[3];
  unsigned block[3];
  unsigned dynamic_smem_bytes;
  unsigned schedule;          /* 0 = deterministic round-robin, 1 = seeded random */
  unsigned long long seed;    /* used when schedule == 1 */
  unsigned nargs;             /* entries of args (and of arg_kinds) */
  const unsigned char* arg_kinds; /* one SLR_EMU_ARG_* per argument, as the caller typed it */
} slr_emu_launch;

/* What an argument is, as the caller typed it. The launch is refused (nonzero return, a message naming the first
   mismatch) unless nargs is the kernel's parameter count and every kind is its parameter's: on a GPU a missing
   argument is read from beyond kernelParams, a float given to an integer is read as its bits, and a 32-bit value
   given to a 64-bit parameter is read with whatever follows it, so none may pass here. Signedness is not checked (int and unsigned are both
   B32); a parameter of any other type (bool, __half, a struct) is OTHER and must be passed as OTHER. */
enum {
  SLR_EMU_ARG_OTHER = 0,
  SLR_EMU_ARG_PTR = 1, /* any pointer */
  SLR_EMU_ARG_B32 = 2, /* 32-bit integer */
  SLR_EMU_ARG_B64 = 3, /* 64-bit integer */
  SLR_EMU_ARG_F32 = 4  /* float */
};

/* Runs the whole grid to completion. Returns 0 on success; otherwise nonzero and a NUL-terminated message in
   err[0..err_len) that names the kernel and says what went wrong (out-of-bounds access with the faulting
   address and which slr_emu_alloc buffer it is next to and the offset, barrier/warp deadlock with block and
   thread ids, bad launch configuration such as block > 1024 threads or zero dims, assertion failure). */
typedef int (*slr_emu_entry)(const slr_emu_launch* cfg, void** args, char* err, size_t err_len);

/* Memory for "device" buffers: bytes rounded up to 16, placed so that the buffer END abuts a PROT_NONE guard
   page (overruns fault), with another guard page before the start region; 16-byte aligned start.
   bytes == 0 returns a valid non-null pointer to a zero-length region right before a guard page.
   Returns NULL on failure. Freed memory is unmapped so use-after-free faults. Thread-safe. */
void* slr_emu_alloc(size_t bytes);
void slr_emu_free(void* p);

/* The byte uninitialized memory holds under a schedule (0 round-robin, 1 seeded random, as in slr_emu_launch):
   dynamic shared memory at each block's start, and the Rust side's Gpu::alloc_uninit buffers. 0xA5 under
   round-robin; 0xFF (NaN in every float width) for odd seeds, 0x7F (huge finite; f16 NaN) for even ones. */
unsigned char slr_emu_uninit_fill(unsigned schedule, unsigned long long seed);

/* 1 if this runtime was built with the shared-memory race checker (SLR_EMU_RACECHECK, kernels compiled with
   -fsanitize=thread): a launch then fails with "data race on shared memory" at the first conflicting pair of
   accesses no barrier orders. 0 otherwise. */
int slr_emu_racecheck(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SLR_EMU_ABI_H */

// Local copy of the SLR_EMULATE switch at the top of cuda/common.cuh (which the self-test must not
// depend on): the same .cu compiles with nvcc for the GPU or with g++ -DSLR_EMULATE for the emulator.
#pragma once
#ifdef SLR_EMULATE
#include "emu/cuda_emu.h"
#else
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define SLR_EMU_EXPORT(kernel)
#define SLR_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) type name[]
#endif

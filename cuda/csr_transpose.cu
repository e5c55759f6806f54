// CSR transpose on the device (src/csr_transpose.rs): the pattern of Sᵀ and the permutation perm that carries S's
// values into Sᵀ's order, then, every step, the values themselves.
//
// S is rows x cols with nnz entries; Sᵀ is cols x rows. Entry e = (r, c) of S is entry perm[e] of Sᵀ.
// Positions come from a bit mask of Sᵀ (bit b = c * rows + r, least significant bit first in 64-bit words:
// BitMask's layout for a cols x rows matrix). Sᵀ's storage order is bit order, so
//   perm[e]      = rank(c * rows + r)     (rank(b) = number of set bits below bit b)
//   offsets_t[c] = rank(c * rows)         for c in [0, cols]  (row c of Sᵀ may start mid-word)
// and the columns of each row of Sᵀ (the rows r of S) come out strictly increasing, with no sort.
//
// Launches, in order (all 1-D grids of 256-thread blocks):
//   csr_transpose_mark:        words[b / 64] |= 1 << (b % 64) for every entry     one thread per entry of S
//   csr_transpose_word_counts: counts[w] = popcount(words[w])                      one thread per mask word
//   (scan_u32, cuda/scan.cu: word_offsets = exclusive prefix sum of counts)
//   csr_transpose_place:       perm[e] = rank(b(e)); cols_t[perm[e]] = r           one thread per entry of S
//   csr_transpose_row_offsets: offsets_t[c] = rank(c * rows)                       one thread per c in [0, cols]
//   transpose_values_<T>:      out[perm[e]] = values[e]                            one thread per entry (each step)
// Deterministic: the only atomics are 64-bit ORs, which commute, so the mask (and all that follows from it) is
// the same bits in any order; no atomic counters, no sort. The alternative, per-column atomic counters
// (csr2csc-style), hands out slots within a column in arrival order and needs a segmented sort to be valid.
//
// Floor (bytes that must move, any method): read S (4 * (rows + 1 + nnz)), write Sᵀ (4 * (cols + 1 + nnz)) and
// perm (4 * nnz). This method adds rows * cols / 8 bytes of mask (zeroed, OR-ed, read) and 4 bytes per mask word
// of counts and offsets (scanned by one block): at 5% density of 11008 x 4096 that is 5.6 MB of mask and 5.6 MB
// of counts/offsets next to 27 MB of S, Sᵀ and perm. Entries scatter: each reads one mask word and one word
// offset and writes one column of Sᵀ at unrelated addresses, about three 32-byte sectors per entry.
// transpose_values reads nnz * (4 + sizeof(T)) and writes nnz * sizeof(T) (a sector per entry when sparse).
#include "common.cuh"

namespace {

constexpr unsigned kThreads = 256;

// Bit of entry (r, c) of S in the mask of Sᵀ. 64-bit: rows * cols may exceed 2^32.
__device__ __forceinline__ unsigned long long transposed_bit(unsigned r, unsigned c, unsigned rows) {
    return (unsigned long long)c * rows + r;
}

// Number of set bits of the mask below bit `bit`: the scanned offset of its word plus the set bits under it in
// that word. A bit at a word boundary reads no word, so bit = rows * cols (the end of the mask) is valid even
// when no word holds it.
__device__ __forceinline__ unsigned rank(const unsigned long long* __restrict__ words,
                                         const unsigned* __restrict__ word_offsets, unsigned long long bit) {
    unsigned long long w = bit >> 6;
    unsigned shift = (unsigned)(bit & 63);
    unsigned below = 0;
#ifdef SLR_FAULT_INCLUSIVE_RANK
    // Planted fault for the emulator's mutation test: counts the bit itself (an inclusive rank), so positions
    // past the first in each word are one too far and the last entry of Sᵀ is written one past the end.
    if (shift != 0) below = __popcll(words[w] & ((2ull << shift) - 1));
#else
    if (shift != 0) below = __popcll(words[w] & ((1ull << shift) - 1));
#endif
    return word_offsets[w] + below;
}

// Sets the bit of every entry of S in the (zeroed) mask of Sᵀ.
__device__ __forceinline__ void mark(const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,
                                     unsigned rows, unsigned nnz, unsigned long long* __restrict__ words) {
    // 64-bit so that the last block cannot wrap when nnz is close to 2^32.
    unsigned long long entry = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (entry >= nnz) return;
    unsigned e = (unsigned)entry;
    unsigned r = slr::csr_row_of_entry(row_offsets, rows, e);
    unsigned long long bit = transposed_bit(r, col_indices[e], rows);
    // Entries of one column of S share words: OR atomically. OR commutes, so the order does not matter.
    atomicOr(&words[bit >> 6], 1ull << (bit & 63));
}

__device__ __forceinline__ void word_counts(const unsigned long long* __restrict__ words, unsigned n_words,
                                            unsigned* __restrict__ counts) {
    unsigned long long w = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (w >= n_words) return;
    counts[w] = __popcll(words[w]);
}

// Each entry of S finds its position in Sᵀ, records it in perm and writes its row as the column of Sᵀ there.
__device__ __forceinline__ void place(const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,
                                      unsigned rows, unsigned nnz, const unsigned long long* __restrict__ words,
                                      const unsigned* __restrict__ word_offsets, unsigned* __restrict__ perm,
                                      unsigned* __restrict__ cols_t) {
    unsigned long long entry = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (entry >= nnz) return;
    unsigned e = (unsigned)entry;
    unsigned r = slr::csr_row_of_entry(row_offsets, rows, e);
    unsigned pos = rank(words, word_offsets, transposed_bit(r, col_indices[e], rows));
    perm[e] = pos;
    cols_t[pos] = r;
}

// offsets_t[c] = number of entries of S in columns below c, for c in [0, cols].
__device__ __forceinline__ void row_offsets_t(const unsigned long long* __restrict__ words,
                                              const unsigned* __restrict__ word_offsets, unsigned rows, unsigned cols,
                                              unsigned* __restrict__ offsets_t) {
    unsigned long long c = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (c > cols) return;
    offsets_t[c] = rank(words, word_offsets, c * rows);
}

template <typename T>
__device__ __forceinline__ void values_impl(const T* __restrict__ values, const unsigned* __restrict__ perm,
                                            unsigned nnz, T* __restrict__ out) {
    unsigned long long entry = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (entry >= nnz) return;
    unsigned e = (unsigned)entry;
    out[perm[e]] = values[e];
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    csr_transpose_mark(const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,
                       unsigned rows, unsigned nnz, unsigned long long* __restrict__ words) {
    mark(row_offsets, col_indices, rows, nnz, words);
}
SLR_EMU_EXPORT(csr_transpose_mark)

extern "C" __global__ void __launch_bounds__(kThreads)
    csr_transpose_word_counts(const unsigned long long* __restrict__ words, unsigned n_words,
                              unsigned* __restrict__ counts) {
    word_counts(words, n_words, counts);
}
SLR_EMU_EXPORT(csr_transpose_word_counts)

extern "C" __global__ void __launch_bounds__(kThreads)
    csr_transpose_place(const unsigned* __restrict__ row_offsets, const unsigned* __restrict__ col_indices,
                        unsigned rows, unsigned nnz, const unsigned long long* __restrict__ words,
                        const unsigned* __restrict__ word_offsets, unsigned* __restrict__ perm,
                        unsigned* __restrict__ cols_t) {
    place(row_offsets, col_indices, rows, nnz, words, word_offsets, perm, cols_t);
}
SLR_EMU_EXPORT(csr_transpose_place)

extern "C" __global__ void __launch_bounds__(kThreads)
    csr_transpose_row_offsets(const unsigned long long* __restrict__ words, const unsigned* __restrict__ word_offsets,
                              unsigned rows, unsigned cols, unsigned* __restrict__ offsets_t) {
    row_offsets_t(words, word_offsets, rows, cols, offsets_t);
}
SLR_EMU_EXPORT(csr_transpose_row_offsets)

#define SLR_TRANSPOSE_VALUES(NAME, T)                                                                            \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        NAME(const T* __restrict__ values, const unsigned* __restrict__ perm, unsigned nnz, T* __restrict__ out) { \
        values_impl<T>(values, perm, nnz, out);                                                                 \
    }

SLR_TRANSPOSE_VALUES(transpose_values_f32, float)
SLR_EMU_EXPORT(transpose_values_f32)
SLR_TRANSPOSE_VALUES(transpose_values_f16, __half)
SLR_EMU_EXPORT(transpose_values_f16)
SLR_TRANSPOSE_VALUES(transpose_values_bf16, __nv_bfloat16)
SLR_EMU_EXPORT(transpose_values_bf16)

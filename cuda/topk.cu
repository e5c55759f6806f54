// Exact top-k selection by radix select (src/topk.rs): over a whole matrix, or over each row ("segments" of
// `seg_len` consecutive elements; a matrix is one segment of rows * cols).
//
// Every element x maps to an order-preserving unsigned key (32 bits for f32, 16 for f16/bf16) so that the
// selection is always "the k largest keys":
//   by magnitude: the bits with the sign cleared (-0.0 and +0.0 are the same key);
//   by value:     negative x: all bits flipped; non-negative x: the sign bit set (-0.0 is +0.0);
//   any NaN:      the largest key (torch's order, NaN above +inf); whether NaN is an error is the host's call;
//   smallest k:   the key complemented.
// Among equal keys the lower flat index wins: with K* the k-th largest key and c_gt the count of keys > K*, the
// selection is every key > K* and the first (k - c_gt) keys == K* in flat-index order. Nothing depends on the
// order in which atomics land: histograms and counts are integer sums, and the rank of an equal key comes from
// per-tile counts and an exclusive scan, never from atomics.
//
// Per segment, a state of kStateWords u32: [0] prefix (the high key bits chosen so far; after the last pass,
// K*), [1] rank still to find among the candidates (after the last pass, how many keys == K* to take),
// [2] c_gt from the passes, [3] NaN count, [4] keys > K* counted by topk_tile_counts.
// Launches, in order:
//   topk_histogram_<dtype> (one per 8-bit digit, MSB first: 4 for f32, 2 for f16/bf16): 256-bin histogram of the
//       digit at `shift` over the keys whose higher bits equal the prefix (the candidate filter is fused into the
//       histogram pass). Grid: segments * parts blocks of 256 threads, a part strides over its segment with 8
//       independent loads in flight per thread; warp-aggregated shared atomics (one per distinct bin in a warp:
//       the first digit of a magnitude is shared by most of a warp) into the block's histogram, then one global
//       add per non-empty bin.
//   topk_choose: one block of 256 threads per segment. Suffix sums of the histogram from the top digit locate the
//       digit holding the wanted rank; the prefix, remaining rank and c_gt are updated.
//   topk_tile_counts_<dtype>: per tile of kTile elements (256 threads x 16), the number of keys == K* (into
//       counts[tile]); keys > K* and NaNs are added to the segment's state.
//   (scan_u32, cuda/scan.cu: exclusive scan of the tile counts)
//   topk_select_mask_<dtype>: per tile, warp ballots give each key == K* its rank within the segment (tile offset
//       from the scan + warps before it + lanes before it); a key is taken when > K* or == K* with rank < the
//       quota. Set bits go into the bit-packed mask by atomicOr (bits are distinct, so the result is exact).
// Per row with rows of at most 11264 keys (src/topk.rs ROW_MAX_LEN), all of the above is one launch instead:
//   topk_select_rows_<dtype>: one block per row reads the row once into shared memory and runs the same passes,
//       choice, counts and ranked selection there (select_row below); one read of the keys in all.
// Floor: the keys are read once per digit pass plus twice more (counts, select): f32 6 reads (24 bytes per
// element), f16/bf16 4 reads (8 bytes per element); the mask is written once (n / 8 bytes). The one-read floor
// is n * sizeof(T) bytes; reading a filtered candidate list instead of all keys in later passes (AIR top-k) is
// the next step if measurements call for it.
#include "common.cuh"

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kPerThread = 16;
constexpr unsigned kTile = kThreads * kPerThread;  // 4096 elements, a multiple of 64 (whole mask words)
constexpr unsigned kBins = 256;
constexpr unsigned kStateWords = 8;
constexpr unsigned kByValue = 1;   // flags bit 0: order by signed value (else by magnitude)
constexpr unsigned kSmallest = 2;  // flags bit 1: select the smallest (else the largest)
constexpr unsigned kLoadsInFlight = 8;  // independent key loads per thread per histogram round

// Raw bits of each key type and what a NaN looks like in them.
template <typename T> struct KeyBits;
template <> struct KeyBits<float> {
    using Raw = unsigned;
    static constexpr unsigned kSign = 0x80000000u, kAll = 0xffffffffu, kInfAbs = 0x7f800000u;
};
template <> struct KeyBits<__half> {
    using Raw = unsigned short;
    static constexpr unsigned kSign = 0x8000u, kAll = 0xffffu, kInfAbs = 0x7c00u;
};
template <> struct KeyBits<__nv_bfloat16> {
    using Raw = unsigned short;
    static constexpr unsigned kSign = 0x8000u, kAll = 0xffffu, kInfAbs = 0x7f80u;
};

template <typename T> __device__ __forceinline__ bool is_nan_bits(unsigned bits) {
    return (bits & ~KeyBits<T>::kSign & KeyBits<T>::kAll) > KeyBits<T>::kInfAbs;
}

// The order-preserving key of one element (see the top of the file). src/topk.rs has the same map on the host.
template <typename T> __device__ __forceinline__ unsigned order_key(unsigned bits, unsigned flags) {
    using K = KeyBits<T>;
    unsigned abs = bits & ~K::kSign & K::kAll;
    bool nan = abs > K::kInfAbs;
    unsigned key;
    if (!(flags & kByValue)) {
        key = nan ? (K::kAll >> 1) : abs;
    } else if (nan) {
        key = K::kAll;
    } else if (abs == 0) {
        key = K::kSign;
    } else {
        key = (bits & K::kSign) ? (~bits & K::kAll) : (bits | K::kSign);
    }
    return (flags & kSmallest) ? (~key & K::kAll) : key;
}

template <typename T> __device__ __forceinline__ unsigned load_bits(const T* __restrict__ keys, unsigned long long i) {
    return (unsigned)reinterpret_cast<const typename KeyBits<T>::Raw*>(keys)[i];
}

// Mask of the key bits above digit `shift` (those the earlier passes fixed).
__device__ __forceinline__ unsigned higher_bits(unsigned shift) { return shift + 8 >= 32 ? 0u : (~0u << (shift + 8)); }

// Adds one to `bins[bin]` for every lane with `cand`, one shared atomic per distinct bin in the warp: the lanes
// with equal bins (__match_any_sync) add their count through their lowest lane. The first digit of a magnitude is
// its sign and high exponent bits, which a whole warp often shares: plain atomics would serialize up to 32-way on
// one address. Called by all 32 lanes of the warp.
__device__ __forceinline__ void add_to_bin(unsigned* bins, bool cand, unsigned bin) {
    unsigned want = __ballot_sync(0xffffffffu, cand);
    if (cand) {
        unsigned peers = __match_any_sync(want, bin);
        if (threadIdx.x % 32 == (unsigned)__ffs(peers) - 1) atomicAdd(&bins[bin], (unsigned)__popc(peers));
    }
}

template <typename T>
__device__ __forceinline__ void histogram(const T* __restrict__ keys, unsigned seg_len, unsigned parts, unsigned flags,
                                          unsigned shift, const unsigned* __restrict__ state,
                                          unsigned* __restrict__ hist) {
    __shared__ unsigned bins[kBins];
    unsigned seg = blockIdx.x / parts, part = blockIdx.x % parts;
    bins[threadIdx.x] = 0;
    __syncthreads();
    unsigned hi = higher_bits(shift);
    unsigned prefix = state[(unsigned long long)seg * kStateWords] & hi;
    const unsigned long long base = (unsigned long long)seg * seg_len;
    // A part strides over its segment kThreads elements at a time; each round a warp loads kLoadsInFlight
    // strides' worth (independent coalesced loads, so enough bytes are in flight), then bins them. Every lane of
    // a warp runs the same rounds (the bound is the warp's first index), as add_to_bin's collectives need.
    const unsigned stride = parts * kThreads, lane = threadIdx.x % 32;
    for (unsigned first = part * kThreads + (threadIdx.x & ~31u); first < seg_len; first += stride * kLoadsInFlight) {
        unsigned bits[kLoadsInFlight];
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            unsigned i = first + u * stride + lane;
            bits[u] = i < seg_len ? load_bits(keys, base + i) : 0u;
        }
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            unsigned i = first + u * stride + lane, key = order_key<T>(bits[u], flags);
            add_to_bin(bins, i < seg_len && (key & hi) == prefix, (key >> shift) & 0xffu);
        }
    }
    __syncthreads();
    unsigned c = bins[threadIdx.x];
    if (c) atomicAdd(&hist[(unsigned long long)seg * kBins + threadIdx.x], c);
}

// Thread t looks at digit 255 - t; an inclusive scan in that order gives, per digit, the candidates at or above
// it. The one digit where the wanted rank falls updates the state.
__device__ __forceinline__ void choose(const unsigned* __restrict__ hist, unsigned shift, unsigned* __restrict__ state) {
    __shared__ unsigned at_or_above[kBins];
    unsigned seg = blockIdx.x, t = threadIdx.x, digit = kBins - 1 - t;
    unsigned* s = state + (unsigned long long)seg * kStateWords;
    unsigned rank = s[1];  // read by every thread before the writer below changes it (barriers in between)
    unsigned c = hist[(unsigned long long)seg * kBins + digit];
    at_or_above[t] = c;
    __syncthreads();
    for (unsigned step = 1; step < kBins; step <<= 1) {
        unsigned add = t >= step ? at_or_above[t - step] : 0;
        __syncthreads();
        at_or_above[t] += add;
        __syncthreads();
    }
    unsigned above = at_or_above[t] - c;
    if (above < rank && rank <= at_or_above[t]) {
        s[0] |= digit << shift;
        s[1] = rank - above;
        s[2] += above;
    }
}

// The tile handled by this block: segment, tile within it, and the flat index of its first element.
struct Tile {
    unsigned seg, tile_in_seg;
    unsigned long long seg_base;
    unsigned start;  // offset of the tile in its segment
};
__device__ __forceinline__ Tile this_tile(unsigned seg_len, unsigned tiles_per_seg) {
    Tile t;
    t.seg = blockIdx.x / tiles_per_seg;
    t.tile_in_seg = blockIdx.x % tiles_per_seg;
    t.seg_base = (unsigned long long)t.seg * seg_len;
    t.start = t.tile_in_seg * kTile;
    return t;
}

// Element of round r for this thread: each warp owns 512 consecutive elements, 32 per round.
__device__ __forceinline__ unsigned element_of(const Tile& t, unsigned r) {
    return t.start + (threadIdx.x / 32) * (kPerThread * 32) + r * 32 + threadIdx.x % 32;
}

template <typename T>
__device__ __forceinline__ void tile_counts(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,
                                            unsigned flags, unsigned* __restrict__ state,
                                            unsigned* __restrict__ counts) {
    __shared__ unsigned sums[3];
    Tile t = this_tile(seg_len, tiles_per_seg);
    if (threadIdx.x < 3) sums[threadIdx.x] = 0;
    __syncthreads();
    unsigned* s = state + (unsigned long long)t.seg * kStateWords;
    unsigned kstar = s[0];
    unsigned eq = 0, gt = 0, nan = 0;
    for (unsigned r = 0; r < kPerThread; ++r) {
        unsigned i = element_of(t, r);
        if (i < seg_len) {
            unsigned bits = load_bits(keys, t.seg_base + i);
            unsigned key = order_key<T>(bits, flags);
            eq += key == kstar;
            gt += key > kstar;
            nan += is_nan_bits<T>(bits);
        }
    }
    if (eq) atomicAdd(&sums[0], eq);
    if (gt) atomicAdd(&sums[1], gt);
    if (nan) atomicAdd(&sums[2], nan);
    __syncthreads();
    if (threadIdx.x == 0) {
        counts[blockIdx.x] = sums[0];
        if (sums[1]) atomicAdd(&s[4], sums[1]);
        if (sums[2]) atomicAdd(&s[3], sums[2]);
    }
}

__device__ __forceinline__ unsigned lanes_below() { return (1u << (threadIdx.x % 32)) - 1; }

// ORs the 32 bits of one round (lane l = flat bit first + l) into the mask, splitting across two words. Only
// words that receive a set bit are touched: a round that straddles the end of the mask has no set bits past it.
__device__ __forceinline__ void or_bits(unsigned long long* __restrict__ words, unsigned long long first,
                                        unsigned ballot) {
    unsigned long long w = first >> 6;
    unsigned off = (unsigned)(first & 63);
    unsigned long long low = (unsigned long long)ballot << off;
    if (low) atomicOr(&words[w], low);
    unsigned long long high = off > 32 ? (unsigned long long)ballot >> (64 - off) : 0ull;
    if (high) atomicOr(&words[w + 1], high);
}

template <typename T>
__device__ __forceinline__ void select_mask(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,
                                            unsigned flags, const unsigned* __restrict__ state,
                                            const unsigned* __restrict__ offsets,
                                            unsigned long long* __restrict__ words) {
    __shared__ unsigned warp_eq[kThreads / 32];
    Tile t = this_tile(seg_len, tiles_per_seg);
    unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const unsigned* s = state + (unsigned long long)t.seg * kStateWords;
    unsigned kstar = s[0], quota = s[1];
    unsigned key[kPerThread];
    unsigned eq_in_warp = 0;
#pragma unroll
    for (unsigned r = 0; r < kPerThread; ++r) {
        unsigned i = element_of(t, r);
        // Past the segment's end: key 0 is never > K*, and the bounds test below keeps it from counting as == K*.
        key[r] = i < seg_len ? order_key<T>(load_bits(keys, t.seg_base + i), flags) : 0u;
        eq_in_warp += __popc(__ballot_sync(0xffffffffu, i < seg_len && key[r] == kstar));
    }
    if (lane == 0) warp_eq[warp] = eq_in_warp;
    __syncthreads();
    // Rank of this warp's first equal key within the segment: earlier tiles (scan), then earlier warps.
    unsigned rank = offsets[blockIdx.x] - offsets[t.seg * tiles_per_seg];
    for (unsigned w = 0; w < warp; ++w) rank += warp_eq[w];
#pragma unroll
    for (unsigned r = 0; r < kPerThread; ++r) {
        unsigned i = element_of(t, r);
        bool in = i < seg_len;
        bool eq = in && key[r] == kstar;
        unsigned eq_ballot = __ballot_sync(0xffffffffu, eq);
        unsigned my_rank = rank + __popc(eq_ballot & lanes_below());
#ifdef SLR_FAULT_TOPK_TIE_RANK
        bool take = in && (key[r] > kstar || (eq && my_rank <= quota));  // planted fault: one tie too many
#else
        bool take = in && (key[r] > kstar || (eq && my_rank < quota));
#endif
        unsigned taken = __ballot_sync(0xffffffffu, take);
        if (lane == 0 && taken) or_bits(words, t.seg_base + (i - lane), taken);
        rank += __popc(eq_ballot);
    }
}

// The whole selection of one short segment (a row of at most kRowMaxLen keys) in one block: the keys are read
// from global memory once into shared memory (as order keys), the digit passes run there (same histogram and
// choice as the passes above), then the ranks of the keys == K* come from ballots in flat-index order and the
// taken bits are ORed into the mask (words may be null: the cut only). The state words end as the multi-kernel
// path leaves them: [0] K*, [1] quota, [2] c_gt from the passes, [3] NaNs, [4] keys > K* counted directly.
// `passes` is key_bits / 8 for a count (state [1] = k on entry) and 0 for a fixed key (state [0] = the key).
// Launch: one block of kThreads per segment, seg_len * 4 bytes of dynamic shared memory.
// Floor: the keys read once (seg_len * sizeof(T) per row) and the mask written once; the passes over shared
// memory cost seg_len / kThreads shared loads per thread each.
template <typename T>
__device__ __forceinline__ void select_row(const T* __restrict__ keys, unsigned seg_len, unsigned flags,
                                           unsigned passes, unsigned* __restrict__ state,
                                           unsigned long long* __restrict__ words) {
    SLR_DYNAMIC_SMEM(unsigned, row_keys);
    __shared__ unsigned bins[kBins];
    __shared__ unsigned warp_eq[kThreads / 32];
    __shared__ unsigned chosen[2];  // digit, keys above it
    __shared__ unsigned totals[2];  // NaNs, keys > K*
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned long long base = (unsigned long long)blockIdx.x * seg_len;
    unsigned* s = state + (unsigned long long)blockIdx.x * kStateWords;
    unsigned prefix = s[0], rank = s[1], c_gt = 0;
    if (t < 2) totals[t] = 0;
    unsigned nan = 0;
    for (unsigned i = t; i < seg_len; i += kThreads) {
        unsigned bits = load_bits(keys, base + i);
        nan += is_nan_bits<T>(bits);
        row_keys[i] = order_key<T>(bits, flags);
    }
    const unsigned key_bits = 8 * sizeof(T);
    for (unsigned pass = 1; pass <= passes; ++pass) {
        const unsigned shift = key_bits - 8 * pass, hi = higher_bits(shift);
        bins[t] = 0;
        if (t == 0) chosen[0] = chosen[1] = 0;
        __syncthreads();  // also orders the row_keys stores before the loads below
        for (unsigned first = 0; first < seg_len; first += kThreads) {
            unsigned i = first + t;
            unsigned key = i < seg_len ? row_keys[i] : 0u;
            add_to_bin(bins, i < seg_len && (key & hi) == prefix, (key >> shift) & 0xffu);
        }
        __syncthreads();
        // Suffix sums from the top digit (thread t: digit 255 - t), as in choose().
        unsigned digit = kBins - 1 - t, c = bins[digit];
        __syncthreads();
        bins[t] = c;
        __syncthreads();
        for (unsigned step = 1; step < kBins; step <<= 1) {
            unsigned add = t >= step ? bins[t - step] : 0;
            __syncthreads();
            bins[t] += add;
            __syncthreads();
        }
        unsigned above = bins[t] - c;
        if (above < rank && rank <= bins[t]) {
            chosen[0] = digit;
            chosen[1] = above;
        }
        __syncthreads();
        prefix |= chosen[0] << shift;
        rank -= chosen[1];
        c_gt += chosen[1];
        __syncthreads();  // chosen and bins are rewritten by the next pass
    }
    __syncthreads();  // with no passes, the row_keys stores
    const unsigned kstar = prefix, quota = rank;
    unsigned gt = 0, eq_before = 0;  // eq_before: keys == K* in the rounds already done (the same in every thread)
    for (unsigned first = 0; first < seg_len; first += kThreads) {
        unsigned i = first + t;
        bool in = i < seg_len;
        unsigned key = in ? row_keys[i] : 0u;
        bool eq = in && key == kstar;
        gt += in && key > kstar;
        unsigned eq_ballot = __ballot_sync(0xffffffffu, eq);
        if (lane == 0) warp_eq[warp] = __popc(eq_ballot);
        __syncthreads();
        unsigned my_rank = eq_before + __popc(eq_ballot & lanes_below()), round_eq = 0;
        for (unsigned w = 0; w < kThreads / 32; ++w) {
            my_rank += w < warp ? warp_eq[w] : 0;
            round_eq += warp_eq[w];
        }
#ifdef SLR_FAULT_TOPK_TIE_RANK
        bool take = in && (key > kstar || (eq && my_rank <= quota));  // planted fault: one tie too many
#else
        bool take = in && (key > kstar || (eq && my_rank < quota));
#endif
        unsigned taken = __ballot_sync(0xffffffffu, take);
        if (words && lane == 0 && taken) or_bits(words, base + first + warp * 32, taken);
        eq_before += round_eq;
        __syncthreads();  // warp_eq is rewritten next round
    }
    if (nan) atomicAdd(&totals[0], nan);
    if (gt) atomicAdd(&totals[1], gt);
    __syncthreads();
    if (t == 0) {
        s[0] = kstar;
        s[1] = quota;
        s[2] = c_gt;
        s[3] = totals[0];
        s[4] = totals[1];
    }
}

}  // namespace

#define SLR_TOPK(T, SUFFIX)                                                                                      \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_histogram_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned parts, unsigned flags,   \
                                unsigned shift, const unsigned* __restrict__ state, unsigned* __restrict__ hist) { \
        histogram<T>(keys, seg_len, parts, flags, shift, state, hist);                                         \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_tile_counts_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,         \
                                  unsigned flags, unsigned* __restrict__ state, unsigned* __restrict__ counts) { \
        tile_counts<T>(keys, seg_len, tiles_per_seg, flags, state, counts);                                    \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_select_mask_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,         \
                                  unsigned flags, const unsigned* __restrict__ state,                          \
                                  const unsigned* __restrict__ offsets, unsigned long long* __restrict__ words) { \
        select_mask<T>(keys, seg_len, tiles_per_seg, flags, state, offsets, words);                            \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_select_rows_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned flags, unsigned passes, \
                                  unsigned* __restrict__ state, unsigned long long* __restrict__ words) {      \
        select_row<T>(keys, seg_len, flags, passes, state, words);                                             \
    }

SLR_TOPK(float, f32)
SLR_EMU_EXPORT(topk_histogram_f32)
SLR_EMU_EXPORT(topk_tile_counts_f32)
SLR_EMU_EXPORT(topk_select_mask_f32)
SLR_EMU_EXPORT(topk_select_rows_f32)
SLR_TOPK(__half, f16)
SLR_EMU_EXPORT(topk_histogram_f16)
SLR_EMU_EXPORT(topk_tile_counts_f16)
SLR_EMU_EXPORT(topk_select_mask_f16)
SLR_EMU_EXPORT(topk_select_rows_f16)
SLR_TOPK(__nv_bfloat16, bf16)
SLR_EMU_EXPORT(topk_histogram_bf16)
SLR_EMU_EXPORT(topk_tile_counts_bf16)
SLR_EMU_EXPORT(topk_select_mask_bf16)
SLR_EMU_EXPORT(topk_select_rows_bf16)

extern "C" __global__ void __launch_bounds__(kThreads)
    topk_choose(const unsigned* __restrict__ hist, unsigned shift, unsigned* __restrict__ state) {
    choose(hist, shift, state);
}
SLR_EMU_EXPORT(topk_choose)

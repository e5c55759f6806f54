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
// Per matrix with a count over at least 2^18 keys, the sample bracket runs first (see "Sample bracket" and "The
//   later levels" below: topk_sample_ranks, or topk_sample_bracket under SLR_TOPK_PATH=sample_levels; for the mask topk_bracket_pass_rounds (the streaming topk_bracket_pass under SLR_TOPK_PATH=stream_mask), for the cut alone
//   topk_bracket_count (the streaming pass; topk_bracket_count_rounds under SLR_TOPK_PATH=rounds); topk_bracket_refine twice for f32, once for 16-bit keys; for the mask
//   topk_bracket_tie_count and topk_bracket_take; one read-back); the passes above run over all keys only when
//   its exact check fails.
// Per row with rows that fit one block's shared memory (src/topk.rs row_max_len: the device's opt-in limit less
// 13 KiB, 55 k f32 keys on sm_90), all of the above is one launch instead:
//   topk_select_rows_<dtype>: one block per row reads the row once into shared memory and selects there with
//       11-bit digit levels and pairwise ranks of the few keys in K*'s bin (select_row below); one read in all.
// Per matrix with k = n: topk_all_min_count_<dtype> (the smallest key and its count) and topk_all_bits.
// Floor of the radix passes above: the keys are read once per digit pass plus twice more (counts, select): f32 6
// reads (24 bytes per element), f16/bf16 4 reads (8 bytes per element); the mask is written once (n / 8 bytes).
// The one-read floor is n * sizeof(T) bytes, which the bracket, per-row and k = n paths approach.
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
constexpr unsigned kSamples = 4096;     // sample of the bracket (src/topk.rs BRACKET_SAMPLES)
constexpr unsigned kSampleThreads = 256;   // threads of the sample kernel's one block (src/topk.rs SAMPLE_THREADS)
constexpr unsigned kRankBlocks = kSamples / 32;  // blocks of sample_ranks, 32 sample keys each (src/topk.rs RANK_BLOCKS)
constexpr unsigned kChunk = 16384;      // keys per block of the bracket pass (src/topk.rs CHUNK)
static_assert(kChunk % 64 == 0, "a bracket pass block's chunk is whole mask words");
constexpr unsigned kChunkCap = kChunk / 4;  // candidate entries per block region (src/topk.rs CHUNK_CAP)
constexpr unsigned kCutBins = 1024;         // bins of [lo, hi] counted by the bracket passes (src/topk.rs CUT_BINS)
constexpr unsigned kRefineBins = 4096;      // bins of each later level (src/topk.rs REFINE_BINS)
constexpr unsigned kRowDigitBits = 11;      // the per-row fast path's first digit: the key's top 11 bits
constexpr unsigned kRowBins = 1u << kRowDigitBits;
// The per-row digit levels stop once the wanted bin holds at most this many keys. Ranking c candidates pair by pair
// costs ~c^2 / 32 x 11 warp instructions on c threads (c = 135, the first level's bin at k = 64 of 4096 Gaussian
// keys: ~8 k per row, two thirds of the row's whole budget: the kernel was bound by instruction issue, not by its
// one read), where one more digit level is one pass over the row in shared memory (~1.3 k at 4096 keys) and leaves
// a handful. (Until 2026-11-28 the candidates had room for 512, from when the first level's bin was ranked
// whatever its size: 3.5 KiB of every row block's shared memory that nothing used.)
constexpr unsigned kRowPairwise = 64;
constexpr unsigned kRowCands = kRowPairwise;  // room for the candidates the per-row fast path ranks pair by pair
// Bytes of select_row's dynamic shared memory after the row's keys (src/topk.rs ROW_EXTRA_BYTES): the first-digit
// histogram and the candidates' keys and positions.
constexpr unsigned kRowExtraBytes = kRowBins * 4 + kRowCands * 8;
// The bracket paths' choice ("sel", 8 words of one allocation with the bracket words and histograms, src/topk.rs
// MASK_*): the slice, the rank of K* within it, the keys above it, its key range and count, the status.
constexpr unsigned kSelBin = 0, kSelRank = 1, kSelBefore = 2, kSelKeyLo = 3, kSelKeyHi = 4, kSelCount = 5,
                   kSelStatus = 6;
constexpr unsigned kSelNeedsSelect = 0, kSelDone = 1, kSelInvalid = 2, kSelBroken = 3;
constexpr unsigned kPassTicket = 6;  // bracket word counting a bracket pass's finished blocks

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

// Calls f(order) with the order bits of `flags` (kByValue | kSmallest) as a compile-time constant
// (std::integral_constant-like: decltype(order)::value), so that a kernel body's key map has no branches.
template <unsigned kFlags> struct Order {
    static constexpr unsigned value = kFlags;
};
template <typename F> __device__ __forceinline__ void with_order(unsigned flags, F&& f) {
    switch (flags & (kByValue | kSmallest)) {
        case 0: f(Order<0>{}); break;
        case kByValue: f(Order<kByValue>{}); break;
        case kSmallest: f(Order<kSmallest>{}); break;
        default: f(Order<kByValue | kSmallest>{}); break;
    }
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

// kLoadsInFlight independent loads of raw key bits, keys[first + u * step] for first + u * step < end (0 past
// it), issued together so that enough bytes are in flight. kBeforeWait: the prologue of a kernel launched with
// launch_after_previous (the loads it issues before slr::wait_for_previous_grid) uses L2-coherent loads
// (ld.global.cg), which ptxas keeps ahead of the wait; it moves read-only (.nc) loads below it, and the loads
// would not overlap the previous kernel.
// kChecked = false: the caller knows every first + u * step < end (a full round), so no bounds test.
template <bool kBeforeWait = false, bool kChecked = true, typename T>
__device__ __forceinline__ void load_keys(const T* __restrict__ keys, unsigned first, unsigned step, unsigned end,
                                          unsigned (&bits)[kLoadsInFlight]) {
    using Raw = typename KeyBits<T>::Raw;
#pragma unroll
    for (unsigned u = 0; u < kLoadsInFlight; ++u) {
        unsigned i = first + u * step;
        const bool in = !kChecked || i < end;
        if constexpr (kBeforeWait) {
            bits[u] = in ? (unsigned)__ldcg(reinterpret_cast<const Raw*>(keys) + i) : 0u;
        } else {
            bits[u] = in ? load_bits(keys, i) : 0u;
        }
    }
}

// A compile-time bool for the generic lambdas that instantiate a loop body twice (full rounds without bounds tests,
// the last partial round with them).
template <bool B> struct Flag {
    static constexpr bool value = B;
};

// A read, after slr::wait_for_previous_grid, of what an earlier grid of the stream wrote: L2-coherent
// (ld.global.cg), never the read-only path, which assumes its data constant for the kernel's whole life (ptxas
// may move such a load above the wait, while the previous grid is still writing).
template <typename T> __device__ __forceinline__ T after_wait(const T* p) { return __ldcg(p); }
template <typename T> __device__ __forceinline__ unsigned bits_after_wait(const T* vals, unsigned long long i) {
    return (unsigned)__ldcg(reinterpret_cast<const typename KeyBits<T>::Raw*>(vals) + i);
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
        load_keys(keys + base, first + lane, stride, seg_len, bits);
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

// Thread t < kBins holds c, the count of digit 255 - t; an inclusive scan in that order, in `scan` (kBins
// shared words, free for the call), gives the keys at or above each digit. Returns (above, at_or_above) for the
// thread's digit: the wanted rank falls in it when above < rank <= at_or_above; threads t >= kBins (blocks of more
// than kBins threads) get (0, 0) and take no digit. Barriers inside: every thread of the block calls it.
__device__ __forceinline__ uint2 counts_from_top(unsigned* scan, unsigned c) {
    const unsigned t = threadIdx.x;
    const bool mine = t < kBins;
    if (mine) scan[t] = c;
    __syncthreads();
    for (unsigned step = 1; step < kBins; step <<= 1) {
        unsigned add = mine && t >= step ? scan[t - step] : 0;
        __syncthreads();
        if (mine) scan[t] += add;
        __syncthreads();
    }
    return mine ? make_uint2(scan[t] - c, scan[t]) : make_uint2(0u, 0u);
}

// The one digit where the wanted rank falls updates the state (counts_from_top over the global histogram).
__device__ __forceinline__ void choose(const unsigned* __restrict__ hist, unsigned shift, unsigned* __restrict__ state) {
    __shared__ unsigned at_or_above[kBins];
    unsigned seg = blockIdx.x, t = threadIdx.x, digit = kBins - 1 - t;
    unsigned* s = state + (unsigned long long)seg * kStateWords;
    unsigned rank = s[1];  // read by every thread before the writer below changes it (barriers in between)
    uint2 cnt = counts_from_top(at_or_above, hist[(unsigned long long)seg * kBins + digit]);
    unsigned above = cnt.x;
    if (above < rank && rank <= cnt.y) {
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

// Whether this block is the last of its grid to get here (every thread calls it; `ticket` is a zeroed global
// counter of this launch, `flag` one shared word). Each thread's earlier global writes and atomics are fenced
// before its block takes a ticket, and the last block fences again before it reads: it then sees every other
// block's results (read them with __ldcg, through L2). The result is the same whichever block is last.
__device__ __forceinline__ bool last_block_of_grid(unsigned* ticket, unsigned* flag) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) *flag = atomicAdd(ticket, 1u) == gridDim.x - 1;
    __syncthreads();
    const bool last = *flag != 0;
    if (last) __threadfence();
    return last;
}

// Exclusive scan of one value per thread over the block (kThreads); `warp_sums` is kThreads / 32 shared words,
// free again on return. Every thread calls it.
__device__ __forceinline__ unsigned block_exclusive_scan(unsigned v, unsigned* warp_sums) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const unsigned incl = slr::warp_inclusive_scan(v);
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();
    unsigned before = 0;
    for (unsigned w = 0; w < warp; ++w) before += warp_sums[w];
    __syncthreads();
    return before + incl - v;
}

// The bin holding the item of rank `rank` (1 = the largest) among B bins of counts (`bins`, in shared memory, or
// in global memory filled by other blocks of this launch, then read through L2), found by one block of kThreads:
// thread t sums its B / kThreads bins from the top (B-1-t*per down to B-per-t*per), a block scan of the sums, then
// each thread walks its own bins. Returns `pick` (words kThreads / 32 .. + 2 of `scratch`, kThreads / 32 + 4 shared
// words; the last one is left for last_block_of_grid's flag), readable by every thread after the call's last
// barrier: [0] the bin (~0u when no bin holds the rank: counts that disagree),
// [1] the items in higher bins, [2] the bin's count. Every thread of the block calls it.
template <unsigned B, bool kGlobal>
__device__ __forceinline__ const unsigned* pick_bin(const unsigned* bins, unsigned rank, unsigned* scratch) {
    static_assert(B % kThreads == 0, "whole bins per thread");
    constexpr unsigned per = B / kThreads;
    unsigned* pick = scratch + kThreads / 32;
    const unsigned t = threadIdx.x;
    unsigned c[per], sum = 0;
#pragma unroll
    for (unsigned j = 0; j < per; ++j) {
        const unsigned* at = &bins[B - 1 - (t * per + j)];
        c[j] = kGlobal ? __ldcg(at) : *at;
        sum += c[j];
    }
    if (t == 0) pick[0] = ~0u;  // ordered before the walk by the scan's barriers
    unsigned acc = block_exclusive_scan(sum, scratch);
#pragma unroll
    for (unsigned j = 0; j < per; ++j) {
        if (acc < rank && rank <= acc + c[j]) {  // exactly one thread and bin
            pick[0] = B - 1 - (t * per + j);
            pick[1] = acc;
            pick[2] = c[j];
        }
        acc += c[j];
    }
    __syncthreads();
    return pick;
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

// Radix select levels over `len` order keys in shared memory with kRowDigitBits-bit digits, MSB first (f32: 11, 11,
// 10 bits; 16-bit keys: 11, 5): each level counts the keys that share the digits fixed so far in kRowBins bins
// (`bins`, shared; plain atomics: 11 bits spread a magnitude's exponent over 4 bins per binade, so a warp's keys
// rarely share a bin) and one block scan (pick_bin) names the bin holding the wanted rank. Stops when every digit is
// fixed (then `prefix` is the key of that rank) or the bin holds at most `stop_at` keys. Every thread of the block
// (kThreads) calls it and ends with the same state; the caller has a barrier between its stores to `keys` and
// the call (the loop's first barrier would also order them, but only when a level runs), and may reuse `bins`
// and `scratch` on return.
struct DigitLevels {
    unsigned prefix, fixed, above, rank, bits_left, in_bin;
    // The next level's digit: its width and shift.
    __device__ __forceinline__ unsigned next_shift() const { return bits_left - min(kRowDigitBits, bits_left); }
    __device__ __forceinline__ unsigned next_mask() const { return (1u << min(kRowDigitBits, bits_left)) - 1u; }
    // Fixes the next digit to `bin`, which a pick found holding the rank with `before` keys above it and `count` in
    // it.
    __device__ __forceinline__ void apply(unsigned bin, unsigned before, unsigned count) {
        const unsigned shift = next_shift();
        prefix |= bin << shift;
        fixed |= next_mask() << shift;
        above += before;
        rank -= before;
        in_bin = count;
        bits_left = shift;
    }
};

// bins <- the histogram of the next digit of lv over the keys that match its fixed digits. Every thread of the
// block calls it; it begins and ends with a barrier.
template <typename Slot>
__device__ __forceinline__ void count_next_digit(const Slot* keys, unsigned len, unsigned* bins, const DigitLevels& lv) {
    const unsigned t = threadIdx.x, shift = lv.next_shift(), digit_mask = lv.next_mask();
    for (unsigned b = t; b < kRowBins; b += kThreads) bins[b] = 0;
    __syncthreads();  // the zeroing before any count (the last pick's reads of bins precede its own barriers)
    for (unsigned i = t; i < len; i += kThreads) {
        const unsigned key = keys[i];
        if ((key & lv.fixed) == lv.prefix) atomicAdd(&bins[(key >> shift) & digit_mask], 1u);
    }
    __syncthreads();
}

template <typename Slot>
__device__ __forceinline__ void digit_levels(const Slot* keys, unsigned len, unsigned stop_at, unsigned* bins,
                                             unsigned* scratch, DigitLevels& lv) {
    while (lv.bits_left != 0 && lv.in_bin > stop_at) {  // block-uniform: every thread reads the same pick
        count_next_digit(keys, len, bins, lv);
        const unsigned* pick = pick_bin<kRowBins, false>(bins, lv.rank, scratch);
        lv.apply(pick[0], pick[1], pick[2]);
    }
    __syncthreads();  // the last pick's reads before scratch is reused
}

constexpr unsigned kRowVecLoads = 4;  // 16-byte loads in flight per thread while a row is read

// One row of keys into shared memory as order keys at their width (row_keys: 16-byte aligned); returns this
// thread's count of NaNs. The keys before the row's first 16-byte boundary (none when the row starts on one: every
// row whose byte length is a multiple of 16, in a buffer of its own) one by one, then 16-byte loads, kRowVecLoads
// in flight per thread (64 bytes: with one or two blocks of a long row per SM, one key per load would keep 1-2 KB
// in flight per SM, far below what hides DRAM latency), then the tail past the last whole vector one by one. A
// vector's order keys go to shared memory as one 16-byte store when the row starts aligned, key by key otherwise.
template <typename T, typename Slot>
__device__ __forceinline__ unsigned load_row(const T* __restrict__ row, unsigned seg_len, unsigned flags,
                                             Slot* __restrict__ row_keys) {
    static_assert(sizeof(Slot) == sizeof(T), "order keys at the keys' width");
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kPerVec = 16 / sizeof(T);
    unsigned nan = 0;
    auto one = [&](unsigned i) {
        const unsigned bits = (unsigned)__ldg(reinterpret_cast<const Raw*>(row) + i);
        nan += is_nan_bits<T>(bits);
        row_keys[i] = (Slot)order_key<T>(bits, flags);
    };
    // Keys before the first 16-byte boundary (the row starts on a key boundary, so this is a whole count).
    const unsigned misaligned = (unsigned)(reinterpret_cast<unsigned long long>(row) & 15ull) / sizeof(T);
    const unsigned head = min(seg_len, misaligned == 0 ? 0u : kPerVec - misaligned);
    for (unsigned i = threadIdx.x; i < head; i += kThreads) one(i);
    const unsigned vecs = (seg_len - head) / kPerVec;
    const uint4* __restrict__ src = reinterpret_cast<const uint4*>(row + head);
    for (unsigned f = threadIdx.x; f < vecs; f += kThreads * kRowVecLoads) {
        uint4 raw[kRowVecLoads];
#pragma unroll
        for (unsigned u = 0; u < kRowVecLoads; ++u) {
            if (f + u * kThreads < vecs) raw[u] = __ldg(src + f + u * kThreads);
        }
#pragma unroll
        for (unsigned u = 0; u < kRowVecLoads; ++u) {
            const unsigned v = f + u * kThreads;
            if (v >= vecs) continue;
            const unsigned in[4] = {raw[u].x, raw[u].y, raw[u].z, raw[u].w};
            unsigned out[4] = {0u, 0u, 0u, 0u};
#pragma unroll
            for (unsigned e = 0; e < kPerVec; ++e) {
                // Little-endian: key e of the vector is word e (32-bit) or half e % 2 of word e / 2 (16-bit).
                const unsigned bits = sizeof(T) == 4 ? in[e] : (in[e / 2] >> (16 * (e % 2))) & 0xffffu;
                nan += is_nan_bits<T>(bits);
                const unsigned key = order_key<T>(bits, flags);
                if (head != 0) row_keys[head + v * kPerVec + e] = (Slot)key;
                else if (sizeof(T) == 4) out[e] = key;
                else out[e / 2] |= key << (16 * (e % 2));
            }
            if (head == 0) slr::store_vec(reinterpret_cast<uint4*>(row_keys) + v, make_uint4(out[0], out[1], out[2], out[3]));
        }
    }
    for (unsigned i = head + vecs * kPerVec + threadIdx.x; i < seg_len; i += kThreads) one(i);
    return nan;
}

// Where select_row's histogram starts in its dynamic shared memory: after the row's keys, 16-byte aligned.
__host__ __device__ __forceinline__ unsigned row_keys_bytes(unsigned seg_len, unsigned slot_bytes) {
    return (seg_len * slot_bytes + 15u) & ~15u;
}

// The whole selection of one segment whose keys fit the block's shared memory (src/topk.rs row_max_len: up to the
// device's opt-in limit less kRowExtraBytes and 1 KiB for the static arrays below; a whole matrix that small is one
// such segment) in one block: the keys are read from global memory once into shared memory (load_row, as order keys
// at their width), then, for a count, radix select there with 11-bit digits (f32: 11, 11, 10 bits; 16-bit keys: 11,
// 5), MSB first: each level counts the keys that share the digits fixed so far in kRowBins bins (plain shared
// atomics: 11 bits spread a magnitude's exponent over 4 bins per binade, so a warp's keys rarely share a bin) and
// one block scan names the bin holding the wanted rank. As soon as that bin holds at most kRowPairwise keys (after
// two levels for Gaussian-like rows: the first leaves ~3% of a row near k = 1.6%), one pass over the row sets the bits of the keys
// beyond it and copies its keys with their positions to shared memory, and each candidate's rank among them (keys
// greater, or equal at a lower position: the reference's order) is counted pair by pair: those below the quota
// are taken, the one of rank quota - 1 is K*. When every digit is fixed first (heavy ties: one key holds more than
// kRowPairwise), K* is that key, and the keys equal to it are ranked by ballots in flat-index order, as for a fixed
// key (`Beyond`, k = 0: no digits). The taken bits are ORed into the mask (words may be null: the cut only), and
// the block writes its segment's kStateWords state words as the multi-kernel path leaves them: [0] K*, [1] quota,
// [2] c_gt, [3] NaNs, [4] keys > K* counted directly, the rest 0 (no topk_init_state launch before it). `passes`
// is nonzero for a count (`value` = k) and 0 for a fixed key (`value` = the key's order key). `own_words`
// (only when seg_len is a multiple of 64, so every mask word belongs to one row): each warp stores its ballot of
// 32 keys as one whole 32-bit half of a mask word (the row's classifying pass visits every half once), so the mask
// may be uninitialized and takes no atomics there (they were ~20 of the loop's ~60 instructions per 32 keys);
// otherwise the bits are ORed into a zeroed mask (rows share words).
// Launch: one block of kThreads per segment, row_keys_bytes(seg_len, sizeof(Raw)) + kRowExtraBytes bytes of
// dynamic shared memory.
// Floor: the keys read once (seg_len * sizeof(T) per row) and the mask written once; in shared memory one pass per
// level and one to classify (seg_len / kThreads keys per thread each), and c^2 / kThreads comparisons for the
// bin's c <= kRowPairwise keys.
template <typename T>
__device__ __forceinline__ void select_row(const T* __restrict__ keys, unsigned seg_len, unsigned flags,
                                           unsigned passes, unsigned value, unsigned* __restrict__ state,
                                           unsigned long long* __restrict__ words, unsigned own_words) {
    // Order keys at their width: 2 bytes for f16/bf16 (rows up to twice as long in the same shared memory).
    // (Declared as bytes: the instantiations for 2- and 4-byte slots share the one extern shared array.)
    using Slot = typename KeyBits<T>::Raw;
    SLR_DYNAMIC_SMEM(unsigned char, row_bytes);
    Slot* row_keys = reinterpret_cast<Slot*>(row_bytes);
    unsigned* row_bins = reinterpret_cast<unsigned*>(row_bytes + row_keys_bytes(seg_len, sizeof(Slot)));
    unsigned* cand_key = row_bins + kRowBins;
    unsigned* cand_pos = cand_key + kRowCands;
    static_assert(kRowBins * 4 + kRowCands * 4 * 2 == kRowExtraBytes, "the layout after the keys, as src/topk.rs sizes it");
    __shared__ unsigned warp_eq[kThreads / 32];
    __shared__ unsigned totals[4];  // NaNs, keys > K*, candidates, candidates > K*
    __shared__ unsigned scratch[kThreads / 32 + 4];
    __shared__ unsigned kstar_shared;
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned long long base = (unsigned long long)blockIdx.x * seg_len;
    unsigned* s = state + (unsigned long long)blockIdx.x * kStateWords;
    constexpr unsigned key_bits = 8 * sizeof(T);
    if (t < 4) totals[t] = 0;
    // The order as a compile-time constant while the keys are mapped (the map's branches on a runtime flag were
    // ~10 of the ~15 instructions per key of the load).
    unsigned nan = 0;
    with_order(flags, [&](auto order) { nan = load_row(keys + base, seg_len, decltype(order)::value, row_keys); });
    // The bits of one round's 32 keys of this warp (flat indices base + first + warp * 32 + lane), from lane 0: a
    // whole half stored when the row owns its words (every half of the row is written once, by the classifying
    // loop of either branch below; the candidates' bits ORed in after its barrier), else ORed in.
    auto set_bits = [&](unsigned off, unsigned taken) {  // off: the row offset of lane 0's key
        if (words == nullptr || lane != 0 || off >= seg_len) return;
        const unsigned long long at = base + off;
        if (own_words) {
            reinterpret_cast<unsigned*>(words)[at >> 5] = taken;
        } else if (taken) {
            or_bits(words, at, taken);
        }
    };
    __syncthreads();  // the row's keys before any level reads them
    // The digits fixed so far (`fixed` bits of `prefix`), the keys beyond them and the rank still to find.
    DigitLevels lv{passes != 0 ? 0u : value, passes != 0 ? 0u : ~0u, 0u, passes != 0 ? value : 0u,
                   passes != 0 ? key_bits : 0u, ~0u};
    digit_levels(row_keys, seg_len, kRowPairwise, row_bins, scratch, lv);
    const unsigned prefix = lv.prefix, fixed = lv.fixed, above = lv.above, in_bin = lv.in_bin, bits_left = lv.bits_left;
    unsigned rank = lv.rank;
    unsigned gt = 0;
    unsigned kstar;
    if (bits_left != 0) {
        // The bin holds at most kRowPairwise keys: bits of the keys beyond it, its keys copied out, pairwise ranks.
        for (unsigned first = 0; first < seg_len; first += kThreads) {  // block-uniform trip count
            const unsigned i = first + t;
            const bool in = i < seg_len;
            const unsigned key = in ? (unsigned)row_keys[i] : 0u;
            const bool take = in && (key & fixed) > prefix;
            gt += take;
            set_bits(first + warp * 32, __ballot_sync(0xffffffffu, take));
            if (in && (key & fixed) == prefix) {
                const unsigned at = atomicAdd(&totals[2], 1u);  // < in_bin <= kRowPairwise <= kRowCands
                cand_key[at] = key;
                cand_pos[at] = i;
            }
        }
        __syncthreads();
        // Candidate c's rank by kPairLanes lanes (adjacent, one warp), each comparing it with every kPairLanes-th
        // candidate, their counts summed by shuffles: in_bin / kPairLanes dependent steps instead of in_bin.
        constexpr unsigned kPairLanes = kThreads / kRowPairwise;
        static_assert(kPairLanes >= 1 && 32 % kPairLanes == 0 && kRowCands >= kRowPairwise, "lane groups inside a warp");
        {
            const unsigned c = t / kPairLanes, sub = t % kPairLanes;  // c < kRowPairwise (the whole block)
            const bool mine = c < in_bin;
            const unsigned key = mine ? cand_key[c] : 0u, pos = mine ? cand_pos[c] : 0u;
            unsigned r = 0;
            for (unsigned j = sub; j < in_bin; j += kPairLanes) {
                const unsigned kj = cand_key[j];
#ifdef SLR_FAULT_ROW_PAIR_RANK
                r += kj > key || (kj == key && cand_pos[j] > pos);  // planted fault: ties ranked by the higher position
#else
                r += kj > key || (kj == key && cand_pos[j] < pos);
#endif
            }
#pragma unroll
            for (unsigned d = 1; d < kPairLanes; d <<= 1) r += __shfl_xor_sync(0xffffffffu, r, d);
            if (mine && sub == 0) {
                if (r < rank && words) atomicOr(&words[(base + pos) >> 6], 1ull << ((base + pos) & 63));
                if (r == rank - 1) kstar_shared = key;  // exactly one candidate: the ranks are distinct
            }
        }
        __syncthreads();
        kstar = kstar_shared;
        unsigned gt_bin = 0;
        for (unsigned c = t; c < in_bin; c += kThreads) gt_bin += cand_key[c] > kstar;
        gt += gt_bin;
        gt_bin = slr::warp_sum(gt_bin);
        if (lane == 0 && gt_bin) atomicAdd(&totals[3], gt_bin);
    } else {
        // Every digit is fixed (or the key was): K* = prefix, the quota is what is left of the rank, and the keys
        // equal to it are ranked in flat-index order by ballots. Each warp owns a contiguous stretch of the row
        // (whole 32-key groups), so flat-index order is warp order: one pass counts each warp's equal keys, one
        // barrier shares the counts, a second pass ranks and takes (until 2026-11-28 the warps interleaved by
        // 256-key rounds, two barriers per round: 32 per bf16 row of 4096, which always ends here).
        kstar = prefix;
        const unsigned stretch = (seg_len + kThreads - 1) / kThreads * 32;  // keys per warp, a multiple of 32
        const unsigned w_first = min(seg_len, warp * stretch), w_end = min(seg_len, w_first + stretch);
        unsigned eq_before = 0;  // keys == K* before this warp's stretch, then before its current group
        for (unsigned first = w_first; first < w_end; first += 32) {  // warp-uniform trip count
            const unsigned i = first + lane;
            const unsigned key = i < w_end ? row_keys[i] : 0u;
            gt += i < w_end && key > kstar;
            eq_before += __popc(__ballot_sync(0xffffffffu, i < w_end && key == kstar));
        }
        if (lane == 0) warp_eq[warp] = eq_before;
        __syncthreads();
        eq_before = 0;
        for (unsigned w = 0; w < warp; ++w) eq_before += warp_eq[w];
        for (unsigned first = w_first; first < w_end; first += 32) {
            const unsigned i = first + lane;
            const bool in = i < w_end;
            const unsigned key = in ? row_keys[i] : 0u;
            const bool eq = in && key == kstar;
            const unsigned eq_ballot = __ballot_sync(0xffffffffu, eq);
            const unsigned my_rank = eq_before + __popc(eq_ballot & lanes_below());
#ifdef SLR_FAULT_TOPK_TIE_RANK
            const bool take = in && (key > kstar || (eq && my_rank <= rank));  // planted fault: one tie too many
#else
            const bool take = in && (key > kstar || (eq && my_rank < rank));
#endif
            set_bits(first, __ballot_sync(0xffffffffu, take));
            eq_before += __popc(eq_ballot);
        }
    }
    if (nan) atomicAdd(&totals[0], nan);
    if (gt) atomicAdd(&totals[1], gt);
    __syncthreads();
    if (t == 0) {
        s[0] = kstar;
        s[1] = rank - totals[3];
        s[2] = above + totals[3];
        s[3] = totals[0];
        s[4] = totals[1];
        for (unsigned w = 5; w < kStateWords; ++w) s[w] = 0u;
    }
}

// ---- Sample bracket (per-matrix selection of large matrices, src/topk.rs `bracket_select`) ----------------------
// A deterministic stratified sample of kSamples keys brackets K*: lo and hi are the sample's keys of ranks
// rank_lo and rank_hi around k * kSamples / n (the host widens them by 4 binomial standard deviations + 8), so
// that, with overwhelming probability on any input whose layout the sample does not defeat, keys > hi number
// fewer than k and keys >= lo at least k. One pass over all keys then counts the keys > hi (and sets their mask
// bits: they are selected), and writes the keys in [lo, hi] with their flat indices to a per-block candidate
// region, in flat-index order; the exact selection then runs on the candidates alone (a few percent of n). The
// bracket is checked on the device with the exact counts (fewer than k above, at least k at or above lo, no region
// over capacity); the host reads the verdict and otherwise falls back to the radix passes: the result never
// depends on the sample, only the speed.
// Bracket words: [0] lo, [1] hi, [2] keys > hi, [3] NaNs, [4] regions over capacity, [5] candidates kept (the
// regions' total in bracket_pass, the list's in bracket_count), [6] bracket_pass's ticket.
// The cut alone (topk_threshold) takes bracket_count (or bracket_count_rounds) instead of bracket_pass: one list of
// candidate values, no indices, no mask. Both passes count their candidates in at most kCutBins bins of [lo, hi], and their last block checks
// the bracket and names the slice holding K*; the later levels narrow it to K* on the device: no host decision
// between the launches.

// Sample position j of n (j < kSamples <= n): stratum j of n / kSamples elements, at a hashed offset inside it
// (a fixed stride would hit one column of a matrix whose width divides it). src/topk.rs has the same function.
__host__ __device__ __forceinline__ unsigned long long sample_position(unsigned j, unsigned long long n) {
    unsigned h = j * 0x9E3779B1u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    unsigned long long lo = (unsigned long long)j * n / kSamples, hi = (unsigned long long)(j + 1) * n / kSamples;
    return lo + h % (unsigned)(hi - lo);  // a stratum of n < 2^32 keys is below 2^20: a 32-bit remainder
}

// digit_levels for two ranks of the same keys (the sample's hi and lo), to the last digit: while both still share
// every digit fixed so far (always at the first level, where nothing is fixed), one histogram per level serves
// both picks (one count of the keys instead of two); after that, each goes on alone with digit_levels. Every thread
// of the block calls it.
template <typename Slot>
__device__ __forceinline__ void digit_levels_of_two(const Slot* keys, unsigned len, unsigned* bins, unsigned* scratch,
                                                    DigitLevels& a, DigitLevels& b) {
    while (a.bits_left != 0 && a.bits_left == b.bits_left && a.prefix == b.prefix) {  // block-uniform
        count_next_digit(keys, len, bins, a);  // a's and b's fixed digits are the same
        const unsigned* pick = pick_bin<kRowBins, false>(bins, a.rank, scratch);
        const unsigned a_bin = pick[0], a_before = pick[1], a_count = pick[2];
        __syncthreads();  // every thread has read a's pick before b's rewrites it
        pick = pick_bin<kRowBins, false>(bins, b.rank, scratch);
        a.apply(a_bin, a_before, a_count);
        b.apply(pick[0], pick[1], pick[2]);
    }
    __syncthreads();  // the last pick's reads before scratch is reused
}

// The digit-level sample kernel (`SLR_TOPK_PATH=sample_levels`; sample_ranks below is the default). One block of
// kSampleThreads (= kThreads): the sample's order keys into shared memory (kSamples * 4 bytes, dynamic,
// then kRowBins * 4 bytes of histogram), then the keys of ranks rank_hi and rank_lo by digit_levels run to the
// last digit (3 levels for f32, 2 for 16-bit keys, each; the first, and any later one while both ranks sit in one
// bin, counted once for both: digit_levels_of_two). rank_hi = 0: no hi (nothing is "above"); rank_lo >
// kSamples: lo = 0. Floor: kSamples scattered key reads (one 32-byte sector each, 128 KiB in all), all 16 of a
// thread's loads issued before any is used (one DRAM latency, SASS-checked); then one block's latency: per level 16
// shared atomics per thread and a 2048-bin block scan.
template <typename T>
__device__ __forceinline__ void sample_bracket(const T* __restrict__ keys, unsigned n, unsigned flags,
                                               unsigned rank_hi, unsigned rank_lo, unsigned* __restrict__ bracket,
                                               unsigned path_words) {
    static_assert(kSampleThreads == kThreads, "digit_levels runs on kThreads threads");
    SLR_DYNAMIC_SMEM(unsigned, sample);
    unsigned* bins = sample + kSamples;
    __shared__ unsigned scratch[kThreads / 32 + 4];
    constexpr unsigned kPer = kSamples / kSampleThreads;
    slr::allow_next_grid();  // the pass (launched after this kernel) may start loading its keys now
    unsigned bits[kPer];
#pragma unroll
    for (unsigned u = 0; u < kPer; ++u) bits[u] = load_bits(keys, sample_position(threadIdx.x + u * kSampleThreads, n));
#pragma unroll
    for (unsigned u = 0; u < kPer; ++u) sample[threadIdx.x + u * kSampleThreads] = order_key<T>(bits[u], flags);
    const unsigned key_bits = 8 * sizeof(T), all = KeyBits<T>::kAll;
    DigitLevels hi{0u, 0u, 0u, rank_hi, key_bits, ~0u}, lo{0u, 0u, 0u, rank_lo, key_bits, ~0u};
    __syncthreads();  // the sample's keys before any level reads them
    // Block-uniform conditions. Both ranks start with nothing fixed: their first level (and any later one while
    // they share a bin) is counted once.
    if (rank_hi != 0 && rank_lo <= kSamples) digit_levels_of_two(sample, kSamples, bins, scratch, hi, lo);
    if (rank_hi != 0) digit_levels(sample, kSamples, 0u, bins, scratch, hi);
    if (rank_lo <= kSamples) digit_levels(sample, kSamples, 0u, bins, scratch, lo);
    if (threadIdx.x == 0) {
        bracket[0] = rank_lo > kSamples ? 0u : lo.prefix;
        bracket[1] = rank_hi == 0 ? all : hi.prefix;
    }
    // The rest of the path's words (counters, choice, tickets, histograms) start at zero: zeroed here instead of
    // by a memset before this kernel (the next kernels wait for this one to finish).
    for (unsigned w = 2 + threadIdx.x; w < path_words; w += kSampleThreads) bracket[w] = 0u;
}

// The same two order statistics of the same sample by counting instead of digit levels (the default sample kernel;
// sample_bracket above is `SLR_TOPK_PATH=sample_levels`, the benchmarks' comparison). Sample key j gets the composite
// c_j = order_key << 12 | (kSamples - 1 - j): all distinct, larger key first, then lower j. Its 0-based rank is the
// number of composites above it, and the key of 1-based rank r is that of the one composite with r - 1 above it:
// the key digit_levels picks (ties decide which j holds rank r, never its key). Grid kRankBlocks blocks of kThreads:
// every block orders all kSamples keys into dynamic shared memory, block b ranks samples [32b, 32b + 32), one per lane,
// warp w counting the composites of slice [512w, 512w + 512) above its lane's (all lanes read the same composite:
// a broadcast), and warp 0 sums the eight counts. No level, scan or atomic: one load latency, one counting loop and
// two barriers, where sample_bracket runs up to 5 digit levels one after another on one block (the H200's profiles:
// 15-21 µs for the sample lap). Floor: 4096^2 = 16.8 M composite comparisons (~3 instructions each, 32-bit
// composites for 16-bit keys ~2: see the loop): ~1.6 M warp instructions, ~1.6 µs over 128 multiprocessors at 4 per cycle; the
// loads are 128 x 4096 scattered sectors (16.8 MB from L2 after the first block's DRAM reads, ~1-2 µs). Each block
// also zeroes its share of path words 2 .. path_words.
template <typename T> struct RankComposite { using Type = unsigned; };            // 16-bit key << 12: 28 bits
template <> struct RankComposite<float> { using Type = unsigned long long; };     // 32-bit key << 12: 44 bits

template <typename T>
__device__ __forceinline__ void sample_ranks(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned rank_hi,
                                             unsigned rank_lo, unsigned* __restrict__ bracket, unsigned path_words) {
    using Comp = typename RankComposite<T>::Type;
    static_assert(kSamples == kRankBlocks * 32 && kSamples % kThreads == 0, "one sample key per lane of a block");
    SLR_DYNAMIC_SMEM(unsigned, comp_words);  // kSamples composites: kSamples * sizeof(Comp) bytes, the launch's
    Comp* comp = reinterpret_cast<Comp*>(comp_words);
    __shared__ unsigned above[kThreads / 32][32];
    constexpr unsigned kPer = kSamples / kThreads, kSlice = kSamples / (kThreads / 32);
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    slr::allow_next_grid();  // the pass (launched after this kernel) may start loading its keys now
    unsigned bits[kPer];
#pragma unroll
    for (unsigned u = 0; u < kPer; ++u) bits[u] = load_bits(keys, sample_position(t + u * kThreads, n));
#pragma unroll
    for (unsigned u = 0; u < kPer; ++u) {
        const unsigned j = t + u * kThreads;
        comp[j] = (Comp)order_key<T>(bits[u], flags) << 12 | (Comp)(kSamples - 1 - j);
    }
    // The rest of the path's words (counters, choice, tickets, histograms) start at zero, the grid striding over
    // them (the next kernels wait for this one to finish).
    for (unsigned w = 2 + blockIdx.x * kThreads + t; w < path_words; w += kRankBlocks * kThreads) bracket[w] = 0u;
    __syncthreads();  // every composite before any is counted
    const Comp mine = comp[blockIdx.x * 32 + lane];
    const Comp* slice = comp + warp * kSlice;
    // c > mine exactly when mine - c wraps, i.e. sets the top bit: composites are below 2^44 (2^28), far from it.
    // Two counts: two independent dependency chains (one subtract and one shift-add per pair, SASS-checked).
    constexpr unsigned kTop = 8 * sizeof(Comp) - 1;
    unsigned count0 = 0, count1 = 0;
#pragma unroll 8
    for (unsigned i = 0; i < kSlice; i += 2) {
#ifdef SLR_FAULT_SAMPLE_RANK_TIES
        count0 += (slice[i] >> 12) > (mine >> 12);  // planted fault: equal keys share a rank (the tie order dropped)
        count1 += (slice[i + 1] >> 12) > (mine >> 12);
#else
        count0 += (unsigned)((mine - slice[i]) >> kTop);
        count1 += (unsigned)((mine - slice[i + 1]) >> kTop);
#endif
    }
    above[warp][lane] = count0 + count1;
    __syncthreads();  // every warp's count before warp 0 sums them
    if (warp != 0) return;
    unsigned rank0 = 0;
#pragma unroll
    for (unsigned w = 0; w < kThreads / 32; ++w) rank0 += above[w][lane];
    const unsigned key = (unsigned)(mine >> 12);
    // Exactly one lane of the grid holds each 0-based rank below kSamples: one writer per word.
    if (rank_hi != 0 && rank0 == rank_hi - 1) bracket[1] = key;
    if (rank_lo != 0 && rank_lo <= kSamples && rank0 == rank_lo - 1) bracket[0] = key;
    if (blockIdx.x == 0 && lane == 0) {
        if (rank_hi == 0) bracket[1] = KeyBits<T>::kAll;
        if (rank_lo == 0 || rank_lo > kSamples) bracket[0] = 0u;
    }
}

// The end of a bracket pass's block: its counts of keys above the bracket and of NaNs added to bracket words 2 and 3
// (per-warp sums, one shared atomic per warp into `totals`, 2 shared words zeroed before a barrier every thread has
// passed, then one global atomic per word), and its non-empty bins of the bracket (`bins`, kCutBins shared words)
// added to `hist`. The barrier orders every thread's last bin update before the bins are read. Every thread of the
// block calls it.
__device__ __forceinline__ void add_block_counts(unsigned above, unsigned nan, unsigned* totals, const unsigned* bins,
                                                 unsigned* __restrict__ bracket, unsigned* __restrict__ hist) {
    above = slr::warp_sum(above);
    nan = slr::warp_sum(nan);
    if (threadIdx.x % 32 == 0 && above) atomicAdd(&totals[0], above);
    if (threadIdx.x % 32 == 0 && nan) atomicAdd(&totals[1], nan);
    __syncthreads();
    if (threadIdx.x == 0) {
        if (totals[0]) atomicAdd(&bracket[2], totals[0]);
        if (totals[1]) atomicAdd(&bracket[3], totals[1]);
    }
    for (unsigned b = threadIdx.x; b < kCutBins; b += kThreads) {
        if (bins[b]) atomicAdd(&hist[b], bins[b]);
    }
}

// Slot of the (u, warp) candidate count in bracket_pass's scan: u-major, which is flat-index order (element
// round + u * kThreads + warp * 32 + lane).
__device__ __forceinline__ unsigned candidate_slot(unsigned u, unsigned warp) {
#ifdef SLR_FAULT_BRACKET_ORDER
    return warp * kLoadsInFlight + u;  // planted fault: warp-major, so candidates leave flat-index order
#else
    return u * (kThreads / 32) + warp;
#endif
}

// Bins of a key range [lo, hi] for a level of B (a power of two) bins: bin b holds the keys lo + (b << s) ..
// min(hi, lo + ((b + 1) << s) - 1), with s = range_shift<B>(lo, hi) the smallest shift that leaves at most B bins
// ((hi - lo) >> s < B): at most B bins hold keys (more than B / 2 when s > 0; hi - lo + 1 single keys when s = 0),
// each 2^s keys wide (the last one clipped at hi), and a
// key's bin is one subtraction and one shift (the equal slices this replaced took a 64-bit division per candidate,
// ~30 instructions and a call to a division routine when (key - lo) * B overflowed 32 bits: most of the pass's
// instruction budget). Levels: 2^22-key bins at most after the pass's 1024 (2^32 / 2^10), 2^10 after one refine of
// 4096, one key after two; 16-bit keys are down to one key after one refine. Every kernel of a level computes s
// from the same (lo, hi), so they agree on the bins.
template <unsigned B> __device__ __forceinline__ unsigned range_shift(unsigned lo, unsigned hi) {
    static_assert(B >= 2 && (B & (B - 1)) == 0, "a power of two");
    constexpr unsigned kLog = 31 - __builtin_clz(B);
    const unsigned len = 32 - __clz(hi - lo);  // bit length of hi - lo (0 when lo == hi)
    return len > kLog ? len - kLog : 0u;
}
__device__ __forceinline__ unsigned range_bin(unsigned key, unsigned lo, unsigned shift) { return (key - lo) >> shift; }

// The bin of `hist` (B bins over [lo, hi], filled by other blocks of this launch: read through L2) holding the
// candidate of rank `rank` (1 = the largest) in that range, found by one block: thread t sums the B / kThreads
// bins B-1-t*per .. B-per-t*per (from the top), a block scan of the sums, then each thread walks its own bins.
// The choice goes to `sel`: the bin's key range, the rank within it, the keys above it (`before` + candidates in
// higher bins), its count, and status kSelDone when the bin is one key (then that key is K*, the rank the quota of
// keys equal to it to take, the count all keys equal to it) or kSelNeedsSelect (a later level narrows it);
// kSelBroken if no bin holds the rank (counts that disagree: a bug, reported by the host). `scratch`: kThreads / 32
// + 4 shared words. Every thread of the block calls it.
// Floor: B words read from L2, 8 written; one block's latency.
template <unsigned B>
__device__ __forceinline__ void narrow(const unsigned* hist, unsigned lo, unsigned hi, unsigned rank,
                                       unsigned before, unsigned* __restrict__ sel, unsigned* scratch) {
    const unsigned* pick = pick_bin<B, true>(hist, rank, scratch);
    if (threadIdx.x != 0) return;
    const unsigned b = pick[0];
    if (b == ~0u) {
        sel[kSelStatus] = kSelBroken;
        return;
    }
    const unsigned shift = range_shift<B>(lo, hi);
    const unsigned key_lo = lo + (b << shift);  // b < B and shift <= 32 - log2(B): no overflow
    const unsigned key_hi = (unsigned)min((unsigned long long)hi, (unsigned long long)lo + ((unsigned long long)(b + 1) << shift) - 1ull);
    sel[kSelBin] = b;
    sel[kSelRank] = rank - pick[1];
    sel[kSelBefore] = before + pick[1];
    sel[kSelKeyLo] = key_lo;
    sel[kSelKeyHi] = key_hi;
    sel[kSelCount] = pick[2];
    sel[kSelStatus] = key_lo == key_hi ? kSelDone : kSelNeedsSelect;
}

// The last block of a bracket pass (bracket_pass, bracket_count): the bracket checked with the exact totals (no
// region over capacity, the list within `cap`, fewer than k keys above hi, at least k at or above lo; otherwise
// kSelInvalid and the host falls back to the radix passes), then the level-1 slice holding K* (narrow). Every
// thread of the block calls it.
__device__ __forceinline__ void choose_level1(const unsigned* bracket, const unsigned* hist, unsigned k, unsigned cap,
                                              unsigned* __restrict__ sel, unsigned* scratch) {
    const unsigned lo = bracket[0], hi = bracket[1];
    const unsigned above = __ldcg(&bracket[2]), n_cand = __ldcg(&bracket[5]), over = __ldcg(&bracket[4]);
    const bool valid = over == 0 && n_cand <= cap && above < k && (unsigned long long)above + n_cand >= k;
    if (!valid) {
        if (threadIdx.x == 0) sel[kSelStatus] = kSelInvalid;
        return;
    }
    narrow<kCutBins>(hist, lo, hi, k - above, above, sel, scratch);
}

// The round-based mask pass (`topk_bracket_pass_rounds_<dtype>`, the A/B baseline of bracket_pass below under
// SLR_TOPK_PATH=rounds, and the pass for keys that do not start on a 16-byte boundary).
// One block per kChunk consecutive keys: counts keys > hi (storing their mask bits: each warp's ballot is one
// 32-bit half of a mask word) and NaNs
// into the bracket words, and writes the keys in [lo, hi] (raw bits) with their flat indices to the block's region
// of kChunkCap entries, in flat-index order (a round covers kLoadsInFlight * kThreads consecutive keys; within it
// element u * kThreads + t, ranked by (u, warp, lane) through one scan of the 64 per-warp counts), and counts
// them in at most kCutBins bins of [lo, hi] (range_shift; a shared histogram, one global add per non-empty bin into
// `hist`). Full rounds (all but a chunk's last) run without bounds tests. Entries
// past the capacity are counted, not written; the region's count (capped) goes to cand_counts[block]. The last
// block to finish (bracket word kPassTicket) checks the bracket with the exact totals (no region over capacity,
// fewer than k keys above hi, at least k at or above lo; otherwise kSelInvalid and the host falls back) and names
// the slice holding K* in `sel` (narrow).
// Floor: the keys read once, the candidates written once (a few percent of n), the mask's bits of the keys above.
template <typename T>
__device__ __forceinline__ void bracket_pass_rounds(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,
                                             unsigned* __restrict__ bracket, unsigned long long* __restrict__ words,
                                             T* __restrict__ cand_vals, unsigned* __restrict__ cand_idx,
                                             unsigned* __restrict__ cand_counts, unsigned* __restrict__ hist,
                                             unsigned* __restrict__ sel) {
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kWarps = kThreads / 32, kRound = kLoadsInFlight * kThreads;
    __shared__ unsigned offsets[kLoadsInFlight * kWarps];  // per (u, warp): candidates, then their exclusive offset
    __shared__ unsigned round_total;
    __shared__ unsigned totals[2];  // keys > hi, NaNs
    __shared__ unsigned bins[kCutBins];
    __shared__ unsigned scratch[kWarps + 4];  // the last block's choice
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned start = blockIdx.x * kChunk, end = min(n, start + kChunk);
    Raw* vals = reinterpret_cast<Raw*>(cand_vals) + (unsigned long long)blockIdx.x * kChunkCap;
    unsigned* idx = cand_idx + (unsigned long long)blockIdx.x * kChunkCap;
    if (t < 2) totals[t] = 0;
    for (unsigned b = t; b < kCutBins; b += kThreads) bins[b] = 0;
    // Launched after the sample kernel (launch_after_previous): the first round's keys (an input, complete before
    // the sample started) are loaded before the bracket is known, so they arrive while the sample finishes.
    unsigned bits[kLoadsInFlight];
    if (start + kRound <= end) {
        load_keys<true, false>(keys, start + t, kThreads, end, bits);
    } else {
        load_keys<true>(keys, start + t, kThreads, end, bits);
    }
    slr::wait_for_previous_grid();  // the sample's bracket words and the words it zeroed
    slr::allow_next_grid();
    const unsigned lo = bracket[0], hi = bracket[1];
    const unsigned shift = range_shift<kCutBins>(lo, hi);
    const unsigned nan_key = order_key<T>(KeyBits<T>::kAll, flags);  // every NaN's key, and no other key's
    // The mask as 32-bit halves of its words (little-endian: half 2w is word w's bits 0-31). A warp's 32 keys of a
    // round are 32 consecutive flat indices starting on a multiple of 32 (rounds start on multiples of kRound), so
    // their bits are one half, which the warp's lane 0 stores whole: every half of this block's chunk is written
    // exactly once in this grid (no memset of the mask first, no atomics), before the take kernel's ORs (a later
    // grid). The last block's chunk may end in the low half of a word: the high half, past every key, is zeroed.
    unsigned* halves = reinterpret_cast<unsigned*>(words);
    if (t == 0 && end == n && (((end - 1) >> 5) & 1u) == 0) halves[((end - 1) >> 5) + 1] = 0u;
    __syncthreads();
    unsigned above = 0, nan = 0, written = 0;  // written: candidates of the rounds done (the same in every thread)
    // One round of kRound keys; kFull: all of them are below `end` (every round but a chunk's last partial one), so
    // neither the loads nor the per-key tests check bounds.
    auto round_body = [&](unsigned round, auto full) {
        constexpr bool kFull = decltype(full)::value;
        unsigned cand[kLoadsInFlight], a_ballot[kLoadsInFlight];
        if (round != start) load_keys<false, !kFull>(keys, round + t, kThreads, end, bits);
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            const unsigned warp_first = round + u * kThreads + warp * 32;  // flat index of lane 0's key
            const bool in = kFull || warp_first + lane < end;
            const unsigned key = order_key<T>(bits[u], flags);
            const bool a = in && key > hi;
            above += a;
            nan += in && key == nan_key;
            a_ballot[u] = __ballot_sync(0xffffffffu, a);
            const bool c = in && key >= lo && key <= hi;
            cand[u] = __ballot_sync(0xffffffffu, c);
            if (lane == 0) offsets[candidate_slot(u, warp)] = __popc(cand[u]);
            if (c) atomicAdd(&bins[range_bin(key, lo, shift)], 1u);
        }
        if (lane == 0) {  // the warp's 8 halves: one base address, constant offsets
            unsigned* warp_halves = halves + ((round + warp * 32) >> 5);
#pragma unroll
            for (unsigned u = 0; u < kLoadsInFlight; ++u) {
                if (kFull || round + u * kThreads + warp * 32 < end) warp_halves[u * (kThreads / 32)] = a_ballot[u];
            }
        }
        __syncthreads();
        if (warp == 0) {  // exclusive scan of the 64 counts in (u, warp) order: lane l holds entries 2l, 2l + 1
            unsigned a = offsets[2 * lane], b = offsets[2 * lane + 1], incl = slr::warp_inclusive_scan(a + b);
            unsigned excl = incl - a - b;
            offsets[2 * lane] = excl;
            offsets[2 * lane + 1] = excl + a;
            if (lane == 31) round_total = incl;
        }
        __syncthreads();
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            if ((cand[u] >> lane) & 1u) {
                unsigned pos = written + offsets[candidate_slot(u, warp)] + __popc(cand[u] & lanes_below());
                if (pos < kChunkCap) {
                    vals[pos] = (Raw)bits[u];
                    idx[pos] = round + u * kThreads + t;
                }
            }
        }
        written += round_total;
        __syncthreads();  // offsets and round_total are rewritten next round
    };
    for (unsigned round = start; round < end; round += kRound) {
        if (round + kRound <= end) {
            round_body(round, Flag<true>{});
        } else {
            round_body(round, Flag<false>{});
        }
    }
    add_block_counts(above, nan, totals, bins, bracket, hist);
    if (t == 0) {
        unsigned kept = min(written, kChunkCap);
        cand_counts[blockIdx.x] = kept;
        if (kept) atomicAdd(&bracket[5], kept);  // the candidates' total, read back with the other words
        if (written > kChunkCap) atomicAdd(&bracket[4], 1u);
    }
    if (last_block_of_grid(&bracket[kPassTicket], &scratch[kWarps + 3])) choose_level1(bracket, hist, k, ~0u, sel, scratch);
}

// The round-based bracket pass for the cut alone (`topk_bracket_count_rounds_<dtype>`, the A/B baseline of
// bracket_count below under SLR_TOPK_PATH=rounds): the same counts of keys above hi and NaNs, but the keys in
// [lo, hi] are appended to one list (values only) in whatever order the blocks' rounds arrive: the k-th key and the
// counts do not depend on the order, only which keys are in the list, and that is fixed. A round's candidates are
// counted per (u, warp), scanned by one warp, and given their place by one global atomic on bracket word 5 per block
// and round (kLoadsInFlight * kThreads keys): at a 2.7%-of-n bracket one atomic per warp holding a candidate made
// ~300 k same-address atomics at 4096², serialized in L2 (~0.18 ms on an H200, more than the whole radix select);
// this makes n / 2048 (8 k). (Using each atomic's result one round later, to overlap its latency, was tried:
// ptxas copies the result into the loop-carried register right after the atomic, waiting on it before the
// barrier anyway, in its warp-aggregated form and in inline PTX alike; reverted.) Full rounds run without bounds
// tests (as in bracket_pass); launch bounds of 5 blocks per SM. Keys past `cap` are counted, not written (the choice then reports the bracket
// invalid). Each candidate is also counted in its slice of [lo, hi] (a shared histogram per block, its non-empty
// bins added to `hist`), and the last block names the slice holding K* (choose_level1) without a pass over the
// list.
// Floor: the keys read once (n * sizeof(T)), the candidates' values written once (a few percent of that).
template <typename T>
__device__ __forceinline__ void bracket_count_rounds(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,
                                              unsigned* __restrict__ bracket, T* __restrict__ list, unsigned cap,
                                              unsigned* __restrict__ hist, unsigned* __restrict__ sel) {
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kWarps = kThreads / 32, kRound = kLoadsInFlight * kThreads;
    static_assert(kLoadsInFlight * kWarps == 64, "one warp scans the round's (u, warp) counts two per lane");
    __shared__ unsigned totals[2];  // keys > hi, NaNs
    __shared__ unsigned bins[kCutBins];
    __shared__ unsigned offsets[kLoadsInFlight * kWarps];  // per (u, warp): candidates, then their exclusive offset
    __shared__ unsigned round_base;                        // the round's first list position
    __shared__ unsigned scratch[kWarps + 4];               // the last block's choice
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned start = blockIdx.x * kChunk, end = min(n, start + kChunk);
    Raw* out = reinterpret_cast<Raw*>(list);
    if (t < 2) totals[t] = 0;
    for (unsigned b = t; b < kCutBins; b += kThreads) bins[b] = 0;
    // As in bracket_pass: the first round's keys in flight while the sample kernel finishes.
    unsigned bits[kLoadsInFlight];
    if (start + kRound <= end) {
        load_keys<true, false>(keys, start + t, kThreads, end, bits);
    } else {
        load_keys<true>(keys, start + t, kThreads, end, bits);
    }
    slr::wait_for_previous_grid();
    slr::allow_next_grid();
    const unsigned lo = bracket[0], hi = bracket[1];
    const unsigned shift = range_shift<kCutBins>(lo, hi);
    const unsigned nan_key = order_key<T>(KeyBits<T>::kAll, flags);  // every NaN's key, and no other key's
    __syncthreads();
    unsigned above = 0, nan = 0;
    // One round of kRound keys; kFull: all below `end` (no bounds tests), as in bracket_pass.
    auto round_body = [&](unsigned round, auto full) {
        constexpr bool kFull = decltype(full)::value;
        unsigned cand[kLoadsInFlight];
        if (round != start) load_keys<false, !kFull>(keys, round + t, kThreads, end, bits);
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            const bool in = kFull || round + u * kThreads + t < end;
            const unsigned key = order_key<T>(bits[u], flags);
            above += in && key > hi;
            nan += in && key == nan_key;
            const bool c = in && key >= lo && key <= hi;
            cand[u] = __ballot_sync(0xffffffffu, c);
            if (lane == 0) offsets[u * kWarps + warp] = __popc(cand[u]);
            if (c) atomicAdd(&bins[range_bin(key, lo, shift)], 1u);
        }
        __syncthreads();
        if (warp == 0) {  // exclusive scan of the 64 counts: lane l holds entries 2l, 2l + 1
            unsigned a = offsets[2 * lane], b = offsets[2 * lane + 1], incl = slr::warp_inclusive_scan(a + b);
            unsigned excl = incl - a - b;
            offsets[2 * lane] = excl;
            offsets[2 * lane + 1] = excl + a;
            if (lane == 31) round_base = incl ? atomicAdd(&bracket[5], incl) : 0u;
        }
        __syncthreads();
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            if ((cand[u] >> lane) & 1u) {
                const unsigned pos = round_base + offsets[u * kWarps + warp] + __popc(cand[u] & lanes_below());
                if (pos < cap) out[pos] = (Raw)bits[u];
            }
        }
        __syncthreads();  // offsets and round_base are rewritten next round
    };
    for (unsigned round = start; round < end; round += kRound) {
        if (round + kRound <= end) {
            round_body(round, Flag<true>{});
        } else {
            round_body(round, Flag<false>{});
        }
    }
    add_block_counts(above, nan, totals, bins, bracket, hist);
    if (last_block_of_grid(&bracket[kPassTicket], &scratch[kWarps + 3])) choose_level1(bracket, hist, k, cap, sel, scratch);
}

// ---- The cut's streaming pass (bracket_count, the default of topk_threshold) -----------------------------------
// What bracket_count_rounds measured (H200, ba5ddb2, 4096 x 11008, k = 5%): 110-119 µs f32 and 93-109 µs bf16,
// 2.6x and 5x the one-read floor, the same time at half the bytes: bound by its rounds, not by memory. Each round
// of 2048 keys has three barriers, a one-warp scan and a global atomic whose result the whole block waits for, and
// 2752 blocks of 16 k keys run in 4.2 waves of 660 (the last one 17% full). This pass has no barrier in its loop:
// - a fixed grid (src/topk.rs: multiprocessors x kStreamBlocksPerSm blocks, at most one per round) strides over
//   rounds of kStreamVecs 16-byte vectors per thread (4 f32 or 8 16-bit keys per vector: a quarter or an eighth of
//   the load instructions), the next round's loads issued before this round's keys are classified;
// - each thread appends its candidates (keys in [lo, hi], raw bits) to its own StreamSlots slots in shared memory
//   (slot s of thread t at s * kThreads + t: no bank conflicts, no scan, no atomic); when a lane of the warp could
//   not hold another vector's keys, the warp moves its slots to the list together (warp scan, one global atomic per
//   flush, ~StreamSlots / 2 x 32 candidates each) and counts them in the block's bins (shared atomics);
// - the keys before the first 16-byte boundary and after the last whole vector (fewer than 2 vectors' worth) are
//   one key per thread of block 0.
// Per key in the loop: the tests of WordTests (below) on a 32-bit word at a time, two 16-bit keys per subtraction,
// no order-key map; the counts above hi and of NaNs; an unpredicated slot store whose slot advances by the
// in-range bit. SASS, sm_90, per 16-byte vector with its loop overhead (64 registers, no spills): 16-bit keys 85
// (magnitude) / 101 (value) instructions for 8 keys, f32 50-54 / 66-72 for 4; with the order-key map (until
// 2026-11-28) 130-137 / 213-221 and 68-71 / 87-92. The H200's bandwidth leaves ~28 issue slots per f32 key and
// ~14 per 16-bit key, and these are integer instructions, of which the CUDA programming guide lists 64 results per
// clock per multiprocessor on sm_90 (32-bit add, logic, shift, compare), half the rate at which warps issue: the
// 16-bit pass measured 2x its floor at ~16 per key (tenth run), f32 1.4x at ~17. kFlags: the order (flags) as a
// constant.
// Floor: the keys read once (n * sizeof(T)), the candidates' values written once (a few percent of that).
constexpr unsigned kStreamVecs = 4;         // 16-byte vectors per thread per round
constexpr unsigned kStreamBlocksPerSm = 4;  // blocks per multiprocessor of the grid (src/topk.rs STREAM_BLOCKS_PER_SM)
template <typename T> struct StreamSlots {
    // 16 KiB of slots per block: 16 f32 or 32 16-bit keys per thread, at least 3 vectors' worth (flushes every
    // ~1/2 fill: ~256 candidates per global atomic for f32, ~384 for 16-bit keys).
    static constexpr unsigned value = 16384 / kThreads / sizeof(typename KeyBits<T>::Raw);
};

// Loads of one round's vectors for this thread: vector round * kThreads * kStreamVecs + u * kThreads + t, for
// those below nvec (zeros past it, never classified). kBeforeWait: L2-coherent loads, which ptxas keeps above
// slr::wait_for_previous_grid (load_keys explains).
template <bool kBeforeWait>
__device__ __forceinline__ void load_stream_round(const uint4* __restrict__ vecs, unsigned round, unsigned nvec,
                                                  uint4 (&v)[kStreamVecs]) {
#pragma unroll
    for (unsigned u = 0; u < kStreamVecs; ++u) {
        const unsigned long long i = ((unsigned long long)round * kStreamVecs + u) * kThreads + threadIdx.x;
        if (i >= nvec) {
            v[u] = make_uint4(0u, 0u, 0u, 0u);
        } else if constexpr (kBeforeWait) {
            v[u] = __ldcg(vecs + i);
        } else {
            v[u] = __ldg(vecs + i);  // read-only path: the keys are an input of the op
        }
    }
}

// Key e of a 16-byte vector of raw key bits (little-endian: element order).
template <typename T> __device__ __forceinline__ unsigned vector_key_bits(const uint4& v, unsigned e) {
    constexpr unsigned kPerWord = 4 / sizeof(typename KeyBits<T>::Raw);
    const unsigned c = e / kPerWord, word = c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;  // e is a constant
    if constexpr (kPerWord == 1) {
        return word;
    } else {
        return (e & 1u) ? word >> 16 : word & 0xffffu;
    }
}

// The shared arrays of bracket_count_stream (declared once by its caller: one set for the four orders).
template <typename T> struct StreamShared {
    typename KeyBits<T>::Raw slots[StreamSlots<T>::value * kThreads];  // thread t's slot s at s * kThreads + t
    unsigned bins[kCutBins];
    unsigned totals[2];                // keys > hi, NaNs
    unsigned scratch[kThreads / 32 + 4];  // the last block's choice
};

// Where bracket_count_stream's keys lie: [head scalars][nvec 16-byte vectors][scalars from `tail` to n]: head <
// kVec keys up to the first 16-byte boundary (device allocations are aligned; a view may start anywhere on its
// element size), fewer than kVec after the last whole vector; `rounds` of kThreads * kStreamVecs vectors.
template <typename T> struct StreamLayout {
    unsigned head, nvec, tail, rounds;
    const uint4* vecs;
    __device__ __forceinline__ StreamLayout(const T* keys, unsigned n) {
        using Raw = typename KeyBits<T>::Raw;
        constexpr unsigned kVec = 16 / sizeof(Raw);
        const Raw* raw = reinterpret_cast<const Raw*>(keys);
        const unsigned misalign = (unsigned)(reinterpret_cast<unsigned long long>(raw) & 15u);
        head = min(n, (unsigned)(((16u - misalign) & 15u) / sizeof(Raw)));
        nvec = (n - head) / kVec;
        tail = head + nvec * kVec;
        rounds = (nvec + kThreads * kStreamVecs - 1) / (kThreads * kStreamVecs);
        vecs = reinterpret_cast<const uint4*>(raw + head);
    }
};

// The tests of bracket_count_stream on the keys of one 32-bit word (two 16-bit keys or one f32), without the order
// key map (the pass was bound by instruction issue: ~16 instructions per key by magnitude and ~27 by value for
// 16-bit keys, SASS sm_90, where the H200's bandwidth leaves ~14). Every test the pass makes on a key is
// "key >= K" for a K of the largest order's key space, K from 0 to 2^b (b = 16 or 32 key bits; the smallest
// order's keys are the complements: key <= hi is key_L >= ~hi, key >= lo is not key_L >= ~lo + 1). With the sign
// bit of each key replaced by a guard bit, x = w | guard, and t <= 2^(b-1), the halves of x - t * 0x10001 never
// borrow from each other, and the top bit of a key's part of x - t is set exactly when its |bits| >= t: both
// 16-bit keys of a word in one subtraction.
// - By magnitude (key_L = |bits|): key_L >= K is |bits| >= K.
// - By value (key_L = |bits| | top for a sign bit s = 0, top - 1 - |bits| for s = 1, top = 2^(b-1); -0 is +0):
//   for K > top, key_L >= K is !s and |bits| >= K - top; for K < top, it is !s or not |bits| >= top - K (zero
//   passes: 0 >= top - K never holds); K = top is K = top - 1 (no key is top - 1: it would be -0). One
//   three-input logic op of (s, the test bit, a block-uniform mask saying which form) per test.
// NaNs: every NaN's key is that of |bits| = top - 1 (magnitude) or the largest (value: a NaN's sign bit is ignored,
// s & !nan), and a NaN's |bits| is anything above the infinity's kInfAbs. A threshold t between kInfAbs + 1 and
// top - 1 is lowered to kInfAbs + 1 (no other key lies there, and every NaN then passes it as top - 1 would); one
// from top up is top (nothing passes it), so every test is exact for every bit pattern, NaNs included, and the NaN
// count is the test |bits| >= kInfAbs + 1. tests/topk.rs runs the pass on all 65536 bit patterns of both 16-bit
// types, and on f32 edge patterns, in every order against a spread of brackets.
template <typename T, unsigned kFlags> struct WordTests {
    using K = KeyBits<T>;
    static constexpr unsigned kKeys = 4 / sizeof(typename K::Raw);  // keys per 32-bit word
    static constexpr unsigned kTop = K::kSign, kRep = kKeys == 2 ? 0x10001u : 1u, kGuard = kTop * kRep;
    unsigned ta, tb, ma, mb;  // replicated subtrahends and value-order forms of the tests p and q below
    static __device__ __forceinline__ unsigned clamped(unsigned long long t) {  // t in [0, 2^b]
        return (t >= kTop ? kTop : (unsigned)min(t, (unsigned long long)K::kInfAbs + 1)) * kRep;
    }
    // The subtrahend and form of the test key_L >= k.
    static __device__ __forceinline__ void test_of(unsigned long long k, unsigned& t, unsigned& m) {
        if constexpr (kFlags & kByValue) {
#ifndef SLR_FAULT_WORD_TEST_ZERO_KEY  // planted fault: key_L >= top in the K < top form, so -0 fails it
            if (k == kTop) k = kTop - 1;
#endif
            m = k > kTop ? ~0u : 0u;
            t = clamped(k > kTop ? k - kTop : kTop - k);
        } else {
            m = 0;
            t = clamped(k);
        }
    }
    __device__ __forceinline__ WordTests(unsigned lo, unsigned hi) {  // lo <= hi, keys of the order kFlags
        if constexpr (kFlags & kSmallest) {
            test_of((unsigned long long)K::kAll - hi, ta, ma);      // p: key <= hi
            test_of((unsigned long long)K::kAll + 1 - lo, tb, mb);  // q: key < lo
        } else {
            test_of(lo, ta, ma);                            // p: key >= lo
            test_of((unsigned long long)hi + 1, tb, mb);  // q: key > hi
        }
    }
    // From the tests below, the top bit of each key's part of: key > hi (q for the largest, ~p for the smallest),
    // and lo <= key <= hi (p & ~q, one op; written out it compiled as ~x + t and two ANDs), both masked by `top`.
    static __device__ __forceinline__ unsigned above(unsigned p, unsigned q, unsigned top) {
        return ((kFlags & kSmallest) ? ~p : q) & top;
    }
    static __device__ __forceinline__ unsigned inside(unsigned p, unsigned q, unsigned top) {
        return slr::lop3<0x20>(p, q, top);
    }
    // The top bit of each key's part: p, q and NaN.
    __device__ __forceinline__ void tests(unsigned w, unsigned& p, unsigned& q, unsigned& nan) const {
        const unsigned x = w | kGuard;
        nan = x - clamped(K::kInfAbs + 1);
        if constexpr (kFlags & kByValue) {
            // (s, d, m) -> m ? !s & d : !(s & d), the truth table 0x1D (slr::lop3).
            const unsigned s = w & ~nan;
            p = slr::lop3<0x1D>(s, x - ta, ma);
            q = slr::lop3<0x1D>(s, x - tb, mb);
        } else {
            p = x - ta;
            q = x - tb;
        }
    }
};

// The pass after its prologue (bracket_count: the first round's keys in `v`, the bins and totals zeroed, the wait
// for the sample kernel done), with the order as a constant.
template <typename T, unsigned kFlags>
__device__ __forceinline__ void bracket_count_stream(const T* __restrict__ keys, unsigned n, unsigned k,
                                                     unsigned* __restrict__ bracket, T* __restrict__ list,
                                                     unsigned cap, unsigned* __restrict__ hist,
                                                     unsigned* __restrict__ sel, StreamShared<T>& sh,
                                                     const StreamLayout<T>& at, uint4 (&v)[kStreamVecs]) {
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kWarps = kThreads / 32, kVec = 16 / sizeof(Raw), kSlots = StreamSlots<T>::value;
    static_assert(kSlots >= 2 * kVec, "room for the scalar keys and a vector before the first flush test");
    Raw* const slots = sh.slots;
    unsigned* bins = sh.bins;
    const unsigned t = threadIdx.x, lane = t % 32;
    Raw* out = reinterpret_cast<Raw*>(list);
    const unsigned head = at.head, nvec = at.nvec, tail = at.tail, rounds = at.rounds;
    const uint4* vecs = at.vecs;
    const unsigned lo = bracket[0], hi = bracket[1], range = hi - lo;  // lo <= hi
    const unsigned shift = range_shift<kCutBins>(lo, hi);
    const unsigned nan_key = order_key<T>(KeyBits<T>::kAll, kFlags);  // every NaN's key, and no other key's
    unsigned above = 0, nan = 0;
    // The vectors' keys are tested a 32-bit word at a time (WordTests above); for 16-bit keys, per half, the counts
    // of keys above hi and of NaNs (8-bit fields, added into above and nan after every round).
    using Tests = WordTests<T, kFlags>;
    const Tests tests(lo, hi);
    unsigned counts2 = 0;
    // This thread's next free slot, as a byte offset into `slots` (an offset, not a pointer: ptxas keeps an
    // offset in the shared window, a pointer became a generic 64-bit one; bytes, not an index, so that a store
    // needs no address arithmetic); past `slot_limit` a vector's keys may not fit.
    constexpr unsigned kStep = kThreads * sizeof(Raw);  // bytes from one of a thread's slots to its next
    const unsigned first_slot = t * sizeof(Raw), slot_limit = first_slot + (kSlots - kVec) * kStep;
    unsigned slot = first_slot;
    auto slot_at = [&](unsigned bytes) -> Raw& { return *reinterpret_cast<Raw*>(reinterpret_cast<char*>(slots) + bytes); };
    auto classify = [&](unsigned bits) {
        const unsigned key = order_key<T>(bits, kFlags);
        above += key > hi;
        nan += key == nan_key;
        if (key - lo <= range) {  // lo <= key <= hi
            slot_at(slot) = (Raw)bits;
            slot += kStep;
        }
    };
    // The keys of one 32-bit word: the top bit of each key's part of the tests (WordTests). Top bits become counts
    // by one multiply-high each (umulhi(b << 15 | c << 31, 2^17) = b | c << 16; for f32, a shift-add). Each key is
    // written to the next free slot, which advances only past a key in range (the top bit of its part of p & ~q,
    // moved to the slot step by a multiply-high): no predicates (ptxas predicated the shared address computation
    // itself, 3 more instructions per store).
    auto classify_word = [&](unsigned w) {
        unsigned p, q, n;
        tests.tests(w, p, q, n);
        if constexpr (Tests::kKeys == 2) {
            counts2 = __umulhi(Tests::above(p, q, Tests::kGuard), 1u << 17) + counts2;
            counts2 = __umulhi(n & Tests::kGuard, 1u << 25) + counts2;
            slot_at(slot) = (Raw)w;
            slot = __umulhi(Tests::inside(p, q, 0x8000u), kStep << 17) + slot;
            slot_at(slot) = (Raw)(w >> 16);
            slot = __umulhi(Tests::inside(p, q, 0x80000000u), kStep << 1) + slot;
        } else {
            above += Tests::above(p, q, Tests::kGuard) >> 31;
            nan += n >> 31;
            slot_at(slot) = (Raw)w;
            slot = __umulhi(Tests::inside(p, q, 0x80000000u), kStep << 1) + slot;
        }
    };
    // The warp's slots to the list (all 32 lanes call it): one global atomic for the warp's total, each lane's
    // entries at its exclusive offset; entries past `cap` are counted, not written (the choice then reports the
    // bracket invalid). Each entry is also counted in its bin of [lo, hi].
    auto flush = [&]() {
        const unsigned filled = (slot - first_slot) / kStep;
        const unsigned incl = slr::warp_inclusive_scan(filled), total = __shfl_sync(0xffffffffu, incl, 31);
        unsigned base = 0;
        if (lane == 31 && total) base = atomicAdd(&bracket[5], total);
        base = __shfl_sync(0xffffffffu, base, 31) + incl - filled;
        for (unsigned s = 0; s < filled; ++s) {
            const unsigned bits = slots[s * kThreads + t];
            atomicAdd(&bins[range_bin(order_key<T>(bits, kFlags), lo, shift)], 1u);
            if (base + s < cap) out[base + s] = (Raw)bits;
        }
        slot = first_slot;
    };
    // The scalar keys (head and tail: fewer than 2 * kVec <= kThreads), one per thread of block 0; plain loads (an
    // input of the op). At most one slot is filled after this.
    if (blockIdx.x == 0 && t < head + (n - tail)) classify(load_bits(keys, t < head ? t : tail + (t - head)));
    for (unsigned round = blockIdx.x; round < rounds; round += gridDim.x) {  // block-uniform
        uint4 next[kStreamVecs];
        load_stream_round<false>(vecs, round + gridDim.x, round + gridDim.x < rounds ? nvec : 0u, next);
        const bool full = ((unsigned long long)round + 1) * kThreads * kStreamVecs <= nvec;  // block-uniform
#pragma unroll
        for (unsigned u = 0; u < kStreamVecs; ++u) {
            if (full || ((unsigned long long)round * kStreamVecs + u) * kThreads + t < nvec) {
                classify_word(v[u].x);
                classify_word(v[u].y);
                classify_word(v[u].z);
                classify_word(v[u].w);
            }
            // Before the next vector: room for kVec more keys in every lane.
            if (__any_sync(0xffffffffu, slot > slot_limit)) flush();
        }
        if constexpr (Tests::kKeys == 2) {  // at most 4 * kStreamVecs per 8-bit field since the last round
            above += (counts2 & 0xffu) + ((counts2 >> 16) & 0xffu);
            nan += ((counts2 >> 8) & 0xffu) + (counts2 >> 24);
            counts2 = 0;
        }
#pragma unroll
        for (unsigned u = 0; u < kStreamVecs; ++u) v[u] = next[u];
    }
#ifndef SLR_FAULT_STREAM_FINAL_FLUSH  // planted fault: the candidates still in the slots at the end are lost
    flush();
#endif
    add_block_counts(above, nan, sh.totals, bins, bracket, hist);
    if (last_block_of_grid(&bracket[kPassTicket], &sh.scratch[kWarps + 3])) choose_level1(bracket, hist, k, cap, sel, sh.scratch);
}

// The streaming pass: its prologue (the same for every order), then bracket_count_stream with the order as a
// constant (flags: kByValue | kSmallest). The dispatch comes after the wait, so that every path from the entry
// reaches the one griddepcontrol.wait before anything else (tests/kernel_checks.rs).
template <typename T>
__device__ __forceinline__ void bracket_count(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,
                                              unsigned* __restrict__ bracket, T* __restrict__ list, unsigned cap,
                                              unsigned* __restrict__ hist, unsigned* __restrict__ sel) {
    __shared__ StreamShared<T> sh;
    const StreamLayout<T> at(keys, n);
    // Launched after the sample kernel (launch_after_previous): the first round's keys (an input, complete before
    // the sample started) are loaded before the bracket is known, so they arrive while the sample finishes.
    uint4 v[kStreamVecs];
    load_stream_round<true>(at.vecs, blockIdx.x, at.nvec, v);
    if (threadIdx.x < 2) sh.totals[threadIdx.x] = 0;
    for (unsigned b = threadIdx.x; b < kCutBins; b += kThreads) sh.bins[b] = 0;
    slr::wait_for_previous_grid();  // the sample's bracket words and the words it zeroed
    slr::allow_next_grid();
    __syncthreads();  // the bins zeroed before any flush counts into them
    with_order(flags, [&](auto order) {
        bracket_count_stream<T, decltype(order)::value>(keys, n, k, bracket, list, cap, hist, sel, sh, at, v);
    });
}

// ---- The mask's streaming pass (bracket_pass; topk_mask and topk_csr under SLR_TOPK_PATH=stream_mask) -----------
// The same outputs as bracket_pass_rounds (per chunk of kChunk keys: the mask halves of the keys above hi, the
// candidates in [lo, hi] with their flat indices in flat-index order in the chunk's region, its count; the totals,
// the level-1 bins, the last block's choice), but one warp per chunk instead of one block, so that nothing in the
// loop waits for a barrier (bracket_count_rounds and this pass's predecessor spent most of their time on three
// barriers per round of 2048 keys: the same time for bf16 as for f32 on the H200). Each lane reads kVecs
// (PassVecs: 4 for f32, 2 for 16-bit keys) 16-byte vectors per iteration (the next iteration's issued before this
// one is classified); the warp's iteration covers kVecs * 32 * kVec consecutive keys, vector (u, lane) holding keys
// start + ((it * kVecs + u) * 32 + lane) * kVec + e, which is flat-index order (u, lane, e). Per vector u:
// the mask bits of the keys above hi, kVec per lane, ORed across the 32 / kVec lanes of one 32-bit half by
// shuffles, stored by the first of them; the candidates' places by warp scans of per-lane counts (two u per
// 32-bit word, 16 bits each), then each lane stores its candidates in (u, e) order, predicated. Requires the keys
// on a 16-byte boundary (src/topk.rs takes bracket_pass_rounds otherwise); a chunk starts on a multiple of kChunk
// keys, so on one too; the last vector of the matrix may be partial (loaded key by key).
// Cost per key in the loop (SASS, sm_90): the classification of bracket_count_stream plus the predicated
// candidate stores (value, index, bin): ~25 instructions for f32 (the H200's bandwidth leaves ~28 per key) and for
// 16-bit keys (~14): f32 near the one-read floor, 16-bit keys issue-bound at roughly half of it.
// Occupancy: one warp per 16 k keys, 1024 warps at 4096 x 4096 (7.8 per multiprocessor of an H200, 4 KiB in flight
// each: about the bytes in flight the bandwidth needs).
// Floor: the keys read once, the candidates written once with their indices, the mask written once.
// Blocks per multiprocessor the mask's streaming pass is compiled for (72-80 registers per thread, no spills; at a
// 64-register bound it spilled). Its grid is one warp per chunk: 344 blocks at 4096 x 11008 fit 132
// multiprocessors in one wave at 3 per SM.
constexpr unsigned kPassBlocksPerSm = 3;
// 16-byte vectors per lane per iteration of the mask's streaming pass: 16 keys per lane either way (32 for 16-bit
// keys spilled at 80 registers).
template <typename T> struct PassVecs {
    static constexpr unsigned value = sizeof(typename KeyBits<T>::Raw) == 4 ? 4 : 2;
};

template <typename T>
__device__ __forceinline__ void load_chunk_vectors(const T* __restrict__ keys, unsigned long long first_vec_key,
                                                   unsigned end, uint4 (&v)[PassVecs<T>::value], bool before_wait) {
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kVec = 16 / sizeof(Raw);
    const Raw* raw = reinterpret_cast<const Raw*>(keys);
#pragma unroll
    for (unsigned u = 0; u < PassVecs<T>::value; ++u) {
        const unsigned long long first = first_vec_key + (unsigned long long)u * 32 * kVec;
        if (first + kVec <= end) {
            const uint4* p = reinterpret_cast<const uint4*>(raw + first);
            v[u] = before_wait ? __ldcg(p) : __ldg(p);
        } else {
            // The matrix's last, partial vector (or none): key by key, zeros past `end`.
            Raw part[kVec];
#pragma unroll
            for (unsigned e = 0; e < kVec; ++e) part[e] = first + e < end ? (before_wait ? __ldcg(raw + first + e) : raw[first + e]) : Raw(0);
            unsigned w[4];
#pragma unroll
            for (unsigned c = 0; c < 4; ++c) {
                if constexpr (kVec == 4) {
                    w[c] = part[c];
                } else {
                    w[c] = (unsigned)part[2 * c] | ((unsigned)part[2 * c + 1] << 16);
                }
            }
            v[u] = make_uint4(w[0], w[1], w[2], w[3]);
        }
    }
}

template <typename T, unsigned kFlags>
__device__ __forceinline__ void bracket_pass_stream(const T* __restrict__ keys, unsigned n, unsigned k,
                                                    unsigned* __restrict__ bracket, unsigned long long* __restrict__ words,
                                                    T* __restrict__ cand_vals, unsigned* __restrict__ cand_idx,
                                                    unsigned* __restrict__ cand_counts, unsigned* __restrict__ hist,
                                                    unsigned* __restrict__ sel, unsigned* bins, unsigned* totals,
                                                    unsigned* scratch, uint4 (&v)[PassVecs<T>::value]) {
    using Raw = typename KeyBits<T>::Raw;
    constexpr unsigned kWarps = kThreads / 32, kVec = 16 / sizeof(Raw), kLanesPerHalf = 32 / kVec;
    constexpr unsigned kVecs = PassVecs<T>::value, kIterKeys = kVecs * 32 * kVec;
    static_assert(kVecs % 2 == 0 && kVecs * kVec <= 32, "pairs of 16-bit counts; one candidate bit per key");
    static_assert(kChunk % kIterKeys == 0, "whole iterations per chunk");
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned chunk = blockIdx.x * kWarps + warp;
    const unsigned long long start = (unsigned long long)chunk * kChunk;
    const unsigned end = (unsigned)min((unsigned long long)n, start + kChunk);  // start >= n: no chunk (empty)
    const unsigned lo = bracket[0], hi = bracket[1], range = hi - lo;
    const unsigned shift = range_shift<kCutBins>(lo, hi);
    const unsigned nan_key = order_key<T>(KeyBits<T>::kAll, kFlags);
    Raw* vals = reinterpret_cast<Raw*>(cand_vals) + (unsigned long long)chunk * kChunkCap;
    unsigned* idx = cand_idx + (unsigned long long)chunk * kChunkCap;
    unsigned* halves = reinterpret_cast<unsigned*>(words);
    unsigned above = 0, nan = 0, written = 0;  // written: the chunk's candidates so far (the same in every lane)
    if (start < n) {  // warp-uniform
        // The last chunk may end in the low half of a word: the high half, past every key, is zeroed.
        if (lane == 0 && end == n && (((end - 1) >> 5) & 1u) == 0) halves[((end - 1) >> 5) + 1] = 0u;
        const unsigned iters = (unsigned)((end - start + kIterKeys - 1) / kIterKeys);
        for (unsigned it = 0; it < iters; ++it) {
            const unsigned long long iter_first = start + (unsigned long long)it * kIterKeys;
            uint4 next[kVecs];
            if (it + 1 < iters) load_chunk_vectors<T>(keys, iter_first + kIterKeys + lane * kVec, end, next, false);
            const bool full = iter_first + kIterKeys <= end;  // warp-uniform: no key past `end`
            unsigned counts[kVecs], cand_bits = 0;  // bit u * kVec + e: key e of vector u is a candidate
#pragma unroll
            for (unsigned u = 0; u < kVecs; ++u) {
                const unsigned long long first = iter_first + ((unsigned long long)u * 32 + lane) * kVec;
                unsigned above_bits = 0;
                counts[u] = 0;
#pragma unroll
                for (unsigned e = 0; e < kVec; ++e) {
                    const bool in = full || first + e < end;
                    const unsigned key = order_key<T>(vector_key_bits<T>(v[u], e), kFlags);
                    const bool a = in && key > hi, c = in && key - lo <= range;
                    above += a;
                    nan += in && key == nan_key;
                    above_bits |= (unsigned)a << e;
                    cand_bits |= (unsigned)c << (u * kVec + e);
                    counts[u] += c;
                }
                // This vector's bits into its 32-bit half: lanes l .. l + kLanesPerHalf - 1 share one.
                unsigned half = above_bits << ((lane % kLanesPerHalf) * kVec);
#pragma unroll
                for (unsigned d = 1; d < kLanesPerHalf; d <<= 1) half |= __shfl_xor_sync(0xffffffffu, half, d);
                if (lane % kLanesPerHalf == 0 && first < end) halves[first >> 5] = half;
            }
            // Places in flat-index order (u, lane, e): the candidates of vectors before u, then of lanes before
            // this one in vector u; one warp scan per pair of vectors (u | u + 1 << 16: each field at most 32 * kVec).
            unsigned place[kVecs], total = written;
#ifdef SLR_FAULT_BRACKET_ORDER
            // Planted fault: lane-major (lane, u, e), so candidates leave flat-index order.
            unsigned mine = 0;
#pragma unroll
            for (unsigned u = 0; u < kVecs; ++u) mine += counts[u];
            const unsigned incl = slr::warp_inclusive_scan(mine);
            place[0] = written + incl - mine;
#pragma unroll
            for (unsigned u = 1; u < kVecs; ++u) place[u] = place[u - 1] + counts[u - 1];
            total += __shfl_sync(0xffffffffu, incl, 31);
#else
#pragma unroll
            for (unsigned u = 0; u < kVecs; u += 2) {
                const unsigned pair = counts[u] | (counts[u + 1] << 16), incl = slr::warp_inclusive_scan(pair);
                const unsigned sum = __shfl_sync(0xffffffffu, incl, 31), excl = incl - pair;
                place[u] = total + (excl & 0xffffu);
                place[u + 1] = total + (sum & 0xffffu) + (excl >> 16);
                total += (sum & 0xffffu) + (sum >> 16);
            }
#endif
            total -= written;  // this iteration's candidates
            const bool room = written + total <= kChunkCap;  // warp-uniform: every place below the capacity
#pragma unroll
            for (unsigned u = 0; u < kVecs; ++u) {
                const unsigned long long first = iter_first + ((unsigned long long)u * 32 + lane) * kVec;
                unsigned pos = place[u];
#pragma unroll
                for (unsigned e = 0; e < kVec; ++e) {
                    if ((cand_bits >> (u * kVec + e)) & 1u) {
                        const unsigned bits = vector_key_bits<T>(v[u], e);
                        atomicAdd(&bins[range_bin(order_key<T>(bits, kFlags), lo, shift)], 1u);
                        if (room || pos < kChunkCap) {
                            vals[pos] = (Raw)bits;
                            idx[pos] = (unsigned)(first + e);
                        }
                        ++pos;
                    }
                }
            }
            written += total;
#pragma unroll
            for (unsigned u = 0; u < kVecs; ++u) v[u] = next[u];
        }
        if (lane == 0) {
            const unsigned kept = min(written, kChunkCap);
            cand_counts[chunk] = kept;
            if (kept) atomicAdd(&bracket[5], kept);
            if (written > kChunkCap) atomicAdd(&bracket[4], 1u);
        }
    }
    add_block_counts(above, nan, totals, bins, bracket, hist);
    if (last_block_of_grid(&bracket[kPassTicket], &scratch[kWarps + 3])) choose_level1(bracket, hist, k, ~0u, sel, scratch);
}

// The streaming mask pass: its prologue (the first iteration's keys loaded before the wait; bins and totals
// zeroed), then bracket_pass_stream with the order as a constant (the dispatch after the wait, as in
// bracket_count).
template <typename T>
__device__ __forceinline__ void bracket_pass(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,
                                             unsigned* __restrict__ bracket, unsigned long long* __restrict__ words,
                                             T* __restrict__ cand_vals, unsigned* __restrict__ cand_idx,
                                             unsigned* __restrict__ cand_counts, unsigned* __restrict__ hist,
                                             unsigned* __restrict__ sel) {
    constexpr unsigned kVec = 16 / sizeof(typename KeyBits<T>::Raw);
    __shared__ unsigned bins[kCutBins];
    __shared__ unsigned totals[2];
    __shared__ unsigned scratch[kThreads / 32 + 4];
    const unsigned chunk = blockIdx.x * (kThreads / 32) + threadIdx.x / 32;
    const unsigned long long start = (unsigned long long)chunk * kChunk;
    uint4 v[PassVecs<T>::value];
    if (start < n) {
        load_chunk_vectors<T>(keys, start + (threadIdx.x % 32) * kVec, (unsigned)min((unsigned long long)n, start + kChunk), v, true);
    }
    if (threadIdx.x < 2) totals[threadIdx.x] = 0;
    for (unsigned b = threadIdx.x; b < kCutBins; b += kThreads) bins[b] = 0;
    slr::wait_for_previous_grid();
    slr::allow_next_grid();
    __syncthreads();  // the bins zeroed before any warp counts into them
    with_order(flags, [&](auto order) {
        bracket_pass_stream<T, decltype(order)::value>(keys, n, k, bracket, words, cand_vals, cand_idx, cand_counts, hist, sel, bins, totals, scratch, v);
    });
}

// ---- The later levels (after bracket_pass or bracket_count and the level-1 choice) -----------------------------
// Every candidate region holds its block's keys in [lo, hi] in flat-index order (bracket_pass); the cut path's one
// list (bracket_count) holds them in no order, read by bracket_refine in kChunkCap-entry shares. The level-1 choice
// named the bin of [lo, hi] (at most 1024, range_shift) holding K*; each bracket_refine launch cuts the bin still
// named in `sel` into at most kRefineBins and names the one holding K* (two levels always reach one key for f32:
// bins of at most 2^22 keys after the pass, 2^10 after one refine, 1 after two; one for 16-bit keys, 2^6 then 1; a
// launch finds the choice already final and returns): the cut
// is then final (K*, the keys above it, the quota). For the mask, the
// keys equal to K* are ranked in flat-index order only when the quota does not take them all (bracket_tie_count:
// per-region counts and their exclusive scan), and bracket_take sets the candidates' bits: every key > K*, and the
// keys == K* whose rank is below the quota. Nothing depends on which block finishes last or on the order of
// atomics: the histograms are integer sums, ranks come from region order.

// Candidates of region `region`: cand_counts[region] for the mask path's regions (`share` = kChunkCap, their
// stride); for the cut path's one list (list_total: its length, within the list's capacity whenever a level runs),
// its `share`-entry share (src/topk.rs LIST_SHARE).
__device__ __forceinline__ unsigned region_count(const unsigned* cand_counts, const unsigned* list_total,
                                                 unsigned region, unsigned share) {
    if (list_total == nullptr) return after_wait(&cand_counts[region]);
    const unsigned long long first = (unsigned long long)region * share, total = after_wait(list_total);
    return total <= first ? 0u : (unsigned)min((unsigned long long)share, total - first);
}

// kLoadsInFlight of a candidate region's keys for this lane: entries first + u * 32 of the region starting at
// `base` (0 past `count`), all issued before any is used; read after the wait (an earlier grid wrote them).
template <typename T>
__device__ __forceinline__ void load_region_keys(const T* cand_vals, unsigned long long base, unsigned count,
                                                 unsigned first, unsigned (&bits)[kLoadsInFlight]) {
#pragma unroll
    for (unsigned u = 0; u < kLoadsInFlight; ++u) {
        const unsigned j = first + u * 32;
        bits[u] = j < count ? bits_after_wait(cand_vals, base + j) : 0u;
    }
}

// One warp per candidate region (or `share`-entry share of the cut path's list; `regions` of them, warp w of
// block b takes region b * kThreads / 32 + w, then every gridDim.x * kThreads / 32 further): its candidates in the
// key range `sel` names, counted in at most kRefineBins bins of it (range_shift; one shared histogram per block,
// then one global add per non-empty bin); the last block narrows `sel` to the bin holding K*. Returns at once unless
// `sel` still needs a level. A block per region had one region's ~500 candidates (2 per thread) behind a block's
// fixed costs (4096 bins zeroed and flushed, a fence and a ticket) and 1024-2752 blocks in several waves; a warp
// per region makes it 8 times fewer blocks, one wave. The cut path's list is filled from its start, so with shares
// of kChunkCap entries its ~1-2% of n sat in the first few dozen blocks, each warp walking 4096 entries in 16
// dependent rounds of loads (~10 µs per f32 level on the H200, eighth run); src/topk.rs gives it shares of
// LIST_SHARE entries (two rounds) and caps the grid, the warps striding over the shares. Floor: the regions' keys
// read once (from L2: a few percent of n in all), kRefineBins words added per block that has candidates in range.
template <typename T>
__device__ __forceinline__ void bracket_refine(const T* cand_vals, const unsigned* cand_counts,
                                               const unsigned* list_total, unsigned regions, unsigned share,
                                               unsigned flags, unsigned* __restrict__ sel,
                                               unsigned* __restrict__ hist, unsigned* __restrict__ ticket) {
    // Every pointer's data comes from the earlier grids of the chain: read with after_wait (not `.nc`).
    __shared__ unsigned bins[kRefineBins];
    __shared__ unsigned scratch[kThreads / 32 + 4];
    slr::wait_for_previous_grid();  // launch_after_previous: the pass's (or the previous level's) words
    slr::allow_next_grid();
    if (after_wait(&sel[kSelStatus]) != kSelNeedsSelect) return;  // the same for every block: only the last block writes sel
    const unsigned t = threadIdx.x;
    const unsigned lo = after_wait(&sel[kSelKeyLo]), hi = after_wait(&sel[kSelKeyHi]);
    const unsigned rank = after_wait(&sel[kSelRank]), before = after_wait(&sel[kSelBefore]);
    const unsigned shift = range_shift<kRefineBins>(lo, hi);
    for (unsigned b = t; b < kRefineBins; b += kThreads) bins[b] = 0;
    __syncthreads();
    constexpr unsigned kWarps = kThreads / 32;
    const unsigned lane = t % 32;
    for (unsigned region = blockIdx.x * kWarps + t / 32; region < regions; region += gridDim.x * kWarps) {
        const unsigned long long base = (unsigned long long)region * share;
        const unsigned count = region_count(cand_counts, list_total, region, share);
        // kLoadsInFlight loads per lane issued before any is used (a typical region's ~500 candidates in two
        // dependent round trips); the histogram does not depend on the order.
        for (unsigned first = lane; first < count; first += 32 * kLoadsInFlight) {
            unsigned bits[kLoadsInFlight];
            load_region_keys(cand_vals, base, count, first, bits);
#pragma unroll
            for (unsigned u = 0; u < kLoadsInFlight; ++u) {
                const unsigned key = order_key<T>(bits[u], flags);
                if (first + u * 32 < count && key >= lo && key <= hi) atomicAdd(&bins[range_bin(key, lo, shift)], 1u);
            }
        }
    }
    __syncthreads();
    for (unsigned b = t; b < kRefineBins; b += kThreads) {
        if (bins[b]) atomicAdd(&hist[b], bins[b]);
    }
    if (last_block_of_grid(ticket, &scratch[kThreads / 32 + 3])) narrow<kRefineBins>(hist, lo, hi, rank, before, sel, scratch);
}

// Whether the keys equal to K* need ranks: the choice is final and its quota leaves some of them out.
// (After the wait: the choice comes from an earlier grid.)
__device__ __forceinline__ bool ties_need_ranks(const unsigned* sel) {
    return after_wait(&sel[kSelStatus]) == kSelDone && after_wait(&sel[kSelRank]) < after_wait(&sel[kSelCount]);
}

// One warp per candidate region (`regions` of them, as bracket_refine): the region's keys equal to K* counted into
// region_eq[region]; the last block turns region_eq into its exclusive scan (region order is flat-index order), so
// region r's equal keys rank from region_eq[r]. Returns at once unless ties_need_ranks. Floor: the candidates read
// once more (from L2), 8 bytes per region.
template <typename T>
__device__ __forceinline__ void bracket_tie_count(const T* cand_vals, const unsigned* cand_counts, unsigned regions,
                                                  unsigned flags, const unsigned* sel,
                                                  unsigned* __restrict__ region_eq, unsigned* __restrict__ ticket) {
    // cand_vals, cand_counts and sel come from earlier grids of the chain: read with after_wait (not `.nc`).
    __shared__ unsigned scratch[kThreads / 32 + 4];
    slr::wait_for_previous_grid();  // launch_after_previous: the last level's choice
    slr::allow_next_grid();
    if (!ties_need_ranks(sel)) return;
    constexpr unsigned kWarps = kThreads / 32;
    const unsigned t = threadIdx.x, lane = t % 32, kstar = after_wait(&sel[kSelKeyLo]);
    for (unsigned region = blockIdx.x * kWarps + t / 32; region < regions; region += gridDim.x * kWarps) {
        const unsigned long long base = (unsigned long long)region * kChunkCap;
        const unsigned count = after_wait(&cand_counts[region]);
        unsigned eq = 0;
        for (unsigned first = lane; first < count; first += 32 * kLoadsInFlight) {
            unsigned bits[kLoadsInFlight];
            load_region_keys(cand_vals, base, count, first, bits);
#pragma unroll
            for (unsigned u = 0; u < kLoadsInFlight; ++u) eq += first + u * 32 < count && order_key<T>(bits[u], flags) == kstar;
        }
        eq = slr::warp_sum(eq);  // the whole warp: its lanes share the region loop
        if (lane == 0) region_eq[region] = eq;
    }
    if (!last_block_of_grid(ticket, &scratch[kThreads / 32 + 3])) return;
    // Exclusive scan of the `regions` counts in place: thread t owns a chunk of consecutive regions.
    const unsigned chunk = (regions + kThreads - 1) / kThreads;
    const unsigned from = min(regions, t * chunk), to = min(regions, from + chunk);
    unsigned sum = 0;
    for (unsigned r = from; r < to; ++r) sum += __ldcg(&region_eq[r]);
    unsigned run = block_exclusive_scan(sum, scratch);
    for (unsigned r = from; r < to; ++r) {
        const unsigned c = __ldcg(&region_eq[r]);
        region_eq[r] = run;
        run += c;
    }
}

// One warp per candidate region (`regions`; region r is the bracket pass's block r, whose keys are the chunk
// [r * kChunk, (r + 1) * kChunk)), after the choice is final: sets the bit of every candidate > K*, and of every
// candidate == K* when the quota takes them all, or else of those whose rank in flat-index order (region_eq[r] from
// bracket_tie_count, then the region's earlier candidates) is below the quota. The warp collects its region's bits
// in shared memory (its chunk's kChunk / 32 halves, shared atomics), then ORs the nonzero halves into the mask with
// plain loads and stores: chunks are whole mask words, so no other warp touches them, and the pass (an earlier
// grid) wrote them; no global atomics (a taken candidate each: ~700 k at 4096 x 11008 and k = 5%). Keys above the
// bracket got theirs in bracket_pass. Floor: the candidates' keys and indices read once (from L2), the chunks'
// mask words with taken candidates read and written once.
template <typename T>
__device__ __forceinline__ void bracket_take(const T* cand_vals, const unsigned* cand_idx,
                                             const unsigned* cand_counts, unsigned regions, unsigned flags,
                                             const unsigned* sel, const unsigned* region_eq,
                                             unsigned long long* __restrict__ words) {
    // Everything read here comes from earlier grids of the chain: after_wait (not `.nc`).
    constexpr unsigned kWarps = kThreads / 32, kHalves = kChunk / 32;
    __shared__ unsigned region_bits[kWarps][kHalves];
    slr::wait_for_previous_grid();  // launch_after_previous: the tie counts and the choice
    slr::allow_next_grid();
    if (after_wait(&sel[kSelStatus]) != kSelDone) return;
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    const unsigned kstar = after_wait(&sel[kSelKeyLo]), quota = after_wait(&sel[kSelRank]);
    const bool ranked = ties_need_ranks(sel);
    unsigned* bits = region_bits[warp];
    for (unsigned region = blockIdx.x * kWarps + warp; region < regions; region += gridDim.x * kWarps) {
        for (unsigned h = lane; h < kHalves; h += 32) bits[h] = 0u;
        __syncwarp();
        const unsigned long long base = (unsigned long long)region * kChunkCap;
        const unsigned chunk_first = region * kChunk;  // < n < 2^32
        const unsigned count = after_wait(&cand_counts[region]);
        unsigned eq_before = ranked ? after_wait(&region_eq[region]) : 0u;  // equal keys before this group (every lane)
        for (unsigned first = 0; first < count; first += 32 * kLoadsInFlight) {  // warp-uniform trip count
            unsigned key[kLoadsInFlight], idx[kLoadsInFlight];
#pragma unroll
            for (unsigned u = 0; u < kLoadsInFlight; ++u) {
                const unsigned j = first + u * 32 + lane;
                const bool in = j < count;
                key[u] = in ? order_key<T>(bits_after_wait(cand_vals, base + j), flags) : 0u;
                idx[u] = in ? after_wait(&cand_idx[base + j]) : 0u;
            }
#pragma unroll
            for (unsigned u = 0; u < kLoadsInFlight; ++u) {  // groups of 32 in flat-index order
                const bool in = first + u * 32 + lane < count;
                const bool eq = in && key[u] == kstar;
                bool take = in && key[u] > kstar;
                if (ranked) {
                    const unsigned eq_ballot = __ballot_sync(0xffffffffu, eq);
                    const unsigned my_rank = eq_before + __popc(eq_ballot & lanes_below());
#ifdef SLR_FAULT_BRACKET_TAKE_RANK
                    take = take || (eq && my_rank <= quota);  // planted fault: one tie too many
#else
                    take = take || (eq && my_rank < quota);
#endif
                    eq_before += __popc(eq_ballot);
                } else {
                    take = take || eq;
                }
                const unsigned off = idx[u] - chunk_first;  // the pass put only its chunk's keys in the region
                if (take && off < kChunk) atomicOr(&bits[off >> 5], 1u << (off & 31));
            }
        }
        __syncwarp();
        unsigned* halves = reinterpret_cast<unsigned*>(words) + chunk_first / 32;
        for (unsigned h = lane; h < kHalves; h += 32) {
            const unsigned b = bits[h];
            if (b) halves[h] = after_wait(&halves[h]) | b;
        }
        __syncwarp();  // the bits are zeroed again for the warp's next region
    }
}

// ---- k = n over a whole matrix: every entry is selected ----------------------------------------------------------
// The cut is the smallest key K* (the n-th largest), with every key > K* beyond it and every key == K* taken.
// topk_all_min_count_<dtype>: blocks stride over the keys keeping, per thread, the smallest order key seen and how
// many keys equal it (and the NaN count); a block combines its threads' pairs (min of the mins, counts of the
// keys equal to it summed) and writes its pair; the last block (ticket in words[3]) combines the blocks' pairs into
// words[0] (K*) and words[1] (keys == K*); NaNs are added to words[2]. Then topk_all_bits sets every mask bit.
// Floor: the keys read once; a few hundred bytes of pairs.
__device__ __forceinline__ void combine_min(unsigned& m, unsigned& c, unsigned m2, unsigned c2) {
    if (m2 < m) {
        m = m2;
        c = c2;
    } else if (m2 == m) {
        c += c2;
    }
}

template <typename T>
__device__ __forceinline__ void all_min_count(const T* __restrict__ keys, unsigned n, unsigned flags,
                                              unsigned* __restrict__ words, unsigned* __restrict__ block_min,
                                              unsigned* __restrict__ block_count) {
    __shared__ unsigned warp_min[kThreads / 32], warp_cnt[kThreads / 32];
    __shared__ unsigned flag;
    const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
    unsigned m = ~0u, c = 0, nan = 0;
    // Rounds of kLoadsInFlight independent loads per thread, all issued before any is used (one at a time kept
    // ~8 KB in flight per SM for f32, ~4 KB for 16-bit keys: a fraction of the bandwidth). Min and count do not
    // depend on the order.
    const unsigned long long stride = (unsigned long long)gridDim.x * kThreads;
    for (unsigned long long first = (unsigned long long)blockIdx.x * kThreads + t; first < n; first += stride * kLoadsInFlight) {
        unsigned bits[kLoadsInFlight];
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            const unsigned long long i = first + u * stride;
            bits[u] = i < n ? load_bits(keys, i) : 0u;
        }
#pragma unroll
        for (unsigned u = 0; u < kLoadsInFlight; ++u) {
            if (first + u * stride < n) {
                nan += is_nan_bits<T>(bits[u]);
                combine_min(m, c, order_key<T>(bits[u], flags), 1u);
            }
        }
    }
    for (unsigned off = 16; off > 0; off >>= 1) {
        const unsigned m2 = __shfl_xor_sync(0xffffffffu, m, off), c2 = __shfl_xor_sync(0xffffffffu, c, off);
        combine_min(m, c, m2, c2);
    }
    nan = slr::warp_sum(nan);
    if (lane == 0) {
        warp_min[warp] = m;
        warp_cnt[warp] = c;
        if (nan) atomicAdd(&words[2], nan);
    }
    __syncthreads();
    if (t == 0) {
        for (unsigned w = 1; w < kThreads / 32; ++w) combine_min(m, c, warp_min[w], warp_cnt[w]);
        block_min[blockIdx.x] = m;
        block_count[blockIdx.x] = c;
    }
    if (!last_block_of_grid(&words[3], &flag)) return;
    // The last block combines the blocks' pairs the same way: a stride per thread, the butterfly, thread 0.
    m = ~0u;
    c = 0;
    for (unsigned b = t; b < gridDim.x; b += kThreads) combine_min(m, c, __ldcg(&block_min[b]), __ldcg(&block_count[b]));
    for (unsigned off = 16; off > 0; off >>= 1) {
        const unsigned m2 = __shfl_xor_sync(0xffffffffu, m, off), c2 = __shfl_xor_sync(0xffffffffu, c, off);
        combine_min(m, c, m2, c2);
    }
    __syncthreads();  // the block's own warp pairs above were read before they are rewritten
    if (lane == 0) {
        warp_min[warp] = m;
        warp_cnt[warp] = c;
    }
    __syncthreads();
    if (t == 0) {
        for (unsigned w = 1; w < kThreads / 32; ++w) combine_min(m, c, warp_min[w], warp_cnt[w]);
        words[0] = m;
        words[1] = c;
    }
}

}  // namespace

#define SLR_TOPK(T, SUFFIX)                                                                                      \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_histogram_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned parts, unsigned flags,   \
                                unsigned shift, const unsigned* __restrict__ state, unsigned* __restrict__ hist) { \
        with_order(flags, [&](auto order) {  /* the order constant in the key map */                           \
            histogram<T>(keys, seg_len, parts, decltype(order)::value, shift, state, hist);                    \
        });                                                                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_tile_counts_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,         \
                                  unsigned flags, unsigned* __restrict__ state, unsigned* __restrict__ counts) { \
        with_order(flags, [&](auto order) {                                                                     \
            tile_counts<T>(keys, seg_len, tiles_per_seg, decltype(order)::value, state, counts);               \
        });                                                                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_select_mask_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned tiles_per_seg,         \
                                  unsigned flags, const unsigned* __restrict__ state,                          \
                                  const unsigned* __restrict__ offsets, unsigned long long* __restrict__ words) { \
        with_order(flags, [&](auto order) {                                                                     \
            select_mask<T>(keys, seg_len, tiles_per_seg, decltype(order)::value, state, offsets, words);       \
        });                                                                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_select_rows_##SUFFIX(const T* __restrict__ keys, unsigned seg_len, unsigned flags, unsigned passes, \
                                  unsigned value, unsigned* __restrict__ state,                                \
                                  unsigned long long* __restrict__ words, unsigned own_words) {                \
        select_row<T>(keys, seg_len, flags, passes, value, state, words, own_words);                           \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kSampleThreads)                                                \
        topk_sample_bracket_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned rank_hi,  \
                                     unsigned rank_lo, unsigned* __restrict__ bracket, unsigned path_words) {  \
        sample_bracket<T>(keys, n, flags, rank_hi, rank_lo, bracket, path_words);                              \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_sample_ranks_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned rank_hi,    \
                                   unsigned rank_lo, unsigned* __restrict__ bracket, unsigned path_words) {    \
        sample_ranks<T>(keys, n, flags, rank_hi, rank_lo, bracket, path_words);                                \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_bracket_pass_rounds_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,   \
                                          unsigned* __restrict__ bracket, unsigned long long* __restrict__ words, \
                                          T* __restrict__ cand_vals, unsigned* __restrict__ cand_idx,          \
                                          unsigned* __restrict__ cand_counts, unsigned* __restrict__ hist,     \
                                          unsigned* __restrict__ sel) {                                        \
        bracket_pass_rounds<T>(keys, n, flags, k, bracket, words, cand_vals, cand_idx, cand_counts, hist, sel); \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads, kPassBlocksPerSm)                                    \
        topk_bracket_pass_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,          \
                                   unsigned* __restrict__ bracket, unsigned long long* __restrict__ words,     \
                                   T* __restrict__ cand_vals, unsigned* __restrict__ cand_idx,                 \
                                   unsigned* __restrict__ cand_counts, unsigned* __restrict__ hist,            \
                                   unsigned* __restrict__ sel) {                                               \
        bracket_pass<T>(keys, n, flags, k, bracket, words, cand_vals, cand_idx, cand_counts, hist, sel);       \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_bracket_refine_##SUFFIX(const T* cand_vals, const unsigned* cand_counts,                           \
                                     const unsigned* list_total, unsigned regions, unsigned share,              \
                                     unsigned flags, unsigned* __restrict__ sel, unsigned* __restrict__ hist,   \
                                     unsigned* __restrict__ ticket) {                                           \
        bracket_refine<T>(cand_vals, cand_counts, list_total, regions, share, flags, sel, hist, ticket);       \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_bracket_tie_count_##SUFFIX(const T* cand_vals, const unsigned* cand_counts, unsigned regions,      \
                                        unsigned flags, const unsigned* sel,                                    \
                                        unsigned* __restrict__ region_eq, unsigned* __restrict__ ticket) {      \
        bracket_tie_count<T>(cand_vals, cand_counts, regions, flags, sel, region_eq, ticket);                  \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_all_min_count_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags,                     \
                                    unsigned* __restrict__ words, unsigned* __restrict__ block_min,             \
                                    unsigned* __restrict__ block_count) {                                       \
        all_min_count<T>(keys, n, flags, words, block_min, block_count);                                       \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads)                                                      \
        topk_bracket_take_##SUFFIX(const T* cand_vals, const unsigned* cand_idx,                                \
                                   const unsigned* cand_counts, unsigned regions, unsigned flags,               \
                                   const unsigned* sel, const unsigned* region_eq,                              \
                                   unsigned long long* __restrict__ words) {                                    \
        bracket_take<T>(cand_vals, cand_idx, cand_counts, regions, flags, sel, region_eq, words);              \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads, 5)                                                   \
        topk_bracket_count_rounds_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,  \
                                           unsigned* __restrict__ bracket, T* __restrict__ list, unsigned cap, \
                                           unsigned* __restrict__ hist, unsigned* __restrict__ sel) {           \
        bracket_count_rounds<T>(keys, n, flags, k, bracket, list, cap, hist, sel);                             \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(kThreads, kStreamBlocksPerSm)                                  \
        topk_bracket_count_##SUFFIX(const T* __restrict__ keys, unsigned n, unsigned flags, unsigned k,         \
                                    unsigned* __restrict__ bracket, T* __restrict__ list, unsigned cap,        \
                                    unsigned* __restrict__ hist, unsigned* __restrict__ sel) {                  \
        bracket_count<T>(keys, n, flags, k, bracket, list, cap, hist, sel);                                    \
    }

SLR_TOPK(float, f32)
SLR_EMU_EXPORT(topk_histogram_f32)
SLR_EMU_EXPORT(topk_tile_counts_f32)
SLR_EMU_EXPORT(topk_select_mask_f32)
SLR_EMU_EXPORT(topk_select_rows_f32)
SLR_EMU_EXPORT(topk_sample_bracket_f32)
SLR_EMU_EXPORT(topk_sample_ranks_f32)
SLR_EMU_EXPORT(topk_bracket_pass_f32)
SLR_EMU_EXPORT(topk_bracket_pass_rounds_f32)
SLR_EMU_EXPORT(topk_bracket_refine_f32)
SLR_EMU_EXPORT(topk_bracket_tie_count_f32)
SLR_EMU_EXPORT(topk_bracket_take_f32)
SLR_EMU_EXPORT(topk_all_min_count_f32)
SLR_EMU_EXPORT(topk_bracket_count_f32)
SLR_EMU_EXPORT(topk_bracket_count_rounds_f32)
SLR_TOPK(__half, f16)
SLR_EMU_EXPORT(topk_histogram_f16)
SLR_EMU_EXPORT(topk_tile_counts_f16)
SLR_EMU_EXPORT(topk_select_mask_f16)
SLR_EMU_EXPORT(topk_select_rows_f16)
SLR_EMU_EXPORT(topk_sample_bracket_f16)
SLR_EMU_EXPORT(topk_sample_ranks_f16)
SLR_EMU_EXPORT(topk_bracket_pass_f16)
SLR_EMU_EXPORT(topk_bracket_pass_rounds_f16)
SLR_EMU_EXPORT(topk_bracket_refine_f16)
SLR_EMU_EXPORT(topk_bracket_tie_count_f16)
SLR_EMU_EXPORT(topk_bracket_take_f16)
SLR_EMU_EXPORT(topk_all_min_count_f16)
SLR_EMU_EXPORT(topk_bracket_count_f16)
SLR_EMU_EXPORT(topk_bracket_count_rounds_f16)
SLR_TOPK(__nv_bfloat16, bf16)
SLR_EMU_EXPORT(topk_histogram_bf16)
SLR_EMU_EXPORT(topk_tile_counts_bf16)
SLR_EMU_EXPORT(topk_select_mask_bf16)
SLR_EMU_EXPORT(topk_select_rows_bf16)
SLR_EMU_EXPORT(topk_sample_bracket_bf16)
SLR_EMU_EXPORT(topk_sample_ranks_bf16)
SLR_EMU_EXPORT(topk_bracket_pass_bf16)
SLR_EMU_EXPORT(topk_bracket_pass_rounds_bf16)
SLR_EMU_EXPORT(topk_bracket_refine_bf16)
SLR_EMU_EXPORT(topk_bracket_tie_count_bf16)
SLR_EMU_EXPORT(topk_bracket_take_bf16)
SLR_EMU_EXPORT(topk_all_min_count_bf16)
SLR_EMU_EXPORT(topk_bracket_count_bf16)
SLR_EMU_EXPORT(topk_bracket_count_rounds_bf16)

extern "C" __global__ void __launch_bounds__(kThreads)
    topk_choose(const unsigned* __restrict__ hist, unsigned shift, unsigned* __restrict__ state) {
    choose(hist, shift, state);
}
SLR_EMU_EXPORT(topk_choose)

// Every segment's state words: zero, except word `word`, which gets `value` (k for a count, the key of a fixed
// cut). One thread per word; replaces an upload from the host, which would wait for the stream. Floor: 32 bytes
// written per segment.
extern "C" __global__ void __launch_bounds__(kThreads)
    topk_init_state(unsigned* __restrict__ state, unsigned long long words, unsigned word, unsigned value) {
    unsigned long long i = (unsigned long long)blockIdx.x * kThreads + threadIdx.x;
    if (i < words) state[i] = i % kStateWords == word ? value : 0u;
}
SLR_EMU_EXPORT(topk_init_state)

// Every bit of an n-bit mask set (the k = n selection): word i all ones, the last one only below bit n % 64 (bits
// past n stay zero, as every mask keeps them). One thread per word. Floor: n / 8 bytes written.
extern "C" __global__ void __launch_bounds__(kThreads)
    topk_all_bits(unsigned long long* __restrict__ words, unsigned long long n) {
    const unsigned long long i = (unsigned long long)blockIdx.x * kThreads + threadIdx.x, count = (n + 63) / 64;
    if (i >= count) return;
    const unsigned tail = (unsigned)(n % 64);
    words[i] = (i + 1 == count && tail != 0) ? (1ull << tail) - 1ull : ~0ull;
}
SLR_EMU_EXPORT(topk_all_bits)

// runtime.cpp - the SIMT emulator's runtime (see README.md).  Compile once and link next to the
// kernel objects:   g++ -std=c++17 -O1 -fPIC -I<cuda>/ -I<cuda include> -c cuda/emu/runtime.cpp
//
// Parts, in order:
//   1. fibers: a tiny x86-64 context switch (ucontext on other targets or with -DSLR_EMU_USE_UCONTEXT)
//      and a process-wide pool of fiber stacks, each with a PROT_NONE guard page below it;
//   2. per-OS-thread launch state and the block scheduler (round-robin or seeded random);
//   3. __syncthreads* barriers and warp collectives, with divergence / exited-lane / deadlock checks;
//   4. fault handling: SIGSEGV/SIGBUS/SIGFPE inside a launch siglongjmp back to the launch entry;
//   5. slr_emu_alloc / slr_emu_free: guard-page buffers and the registry used in fault messages;
//   6. run_grid: launch validation and the grid loop;
//   7. definitions of the glibc-declared-but-unexported fast-math names (__expf, ...).
//
// Everything here is per OS thread except the stack pool, the buffer registry and the signal
// handler installation, which are mutex-protected / installed once.

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cfenv>
#include <chrono>
#include <cstdarg>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ucontext.h>  // also for the faulting stack pointer in the signal handler
#ifdef SLR_EMU_RACECHECK
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#endif
#if !defined(__x86_64__) || defined(SLR_EMU_USE_UCONTEXT)
#define SLR_EMU_UCONTEXT 1
#else
#define SLR_EMU_UCONTEXT 0
#endif

#include "cuda_emu.h"

// =============================================================================================
// 1. Fibers
// =============================================================================================
#if !SLR_EMU_UCONTEXT
// slr_emu_ctx_switch(save, load): pushes the SysV callee-saved registers (rbp rbx r12-r15) plus the
// x87 control word and MXCSR on the current stack, stores the stack pointer in *save, switches to
// the stack pointer `load` and pops the same frame from there.  A new fiber's stack is prepared so
// that this "returns" into slr_emu_fiber_start with r12 = argument and r13 = entry function.
extern "C" {
__attribute__((visibility("hidden"))) void slr_emu_ctx_switch(void** save_sp, void* load_sp);
__attribute__((visibility("hidden"))) void slr_emu_fiber_start();
}
asm(R"ASM(
    .pushsection .text
    .p2align 4
    .globl slr_emu_ctx_switch
    .hidden slr_emu_ctx_switch
    .type slr_emu_ctx_switch,@function
slr_emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    fnstcw (%rsp)
    stmxcsr 8(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    fldcw (%rsp)
    ldmxcsr 8(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size slr_emu_ctx_switch, .-slr_emu_ctx_switch

    .p2align 4
    .globl slr_emu_fiber_start
    .hidden slr_emu_fiber_start
    .type slr_emu_fiber_start,@function
slr_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size slr_emu_fiber_start, .-slr_emu_fiber_start
    .popsection
)ASM");
#endif

namespace slr_emu {
namespace detail {

__thread Regs tl_regs;
__thread unsigned char* tl_dyn_smem;

namespace {

typedef void (*FiberFn)(void*);

#if !SLR_EMU_UCONTEXT
struct Ctx {
  void* sp = nullptr;
};
struct CtxTemplate {
  unsigned short fcw = 0x037F;
  unsigned mxcsr = 0x1F80;
};
inline void ctx_switch(Ctx& from, Ctx& to) { slr_emu_ctx_switch(&from.sp, to.sp); }
// Every fiber starts in the device's floating-point environment, whatever the host thread's: round to nearest
// even, subnormals kept (nvcc's default -ftz=false; a host built with -ffast-math sets flush-to-zero and
// denormals-are-zero in MXCSR at startup), all exceptions masked. The template's values are the x86-64 defaults.
void ctx_template(CtxTemplate& t) { t = CtxTemplate(); }
void ctx_make(Ctx& c, const CtxTemplate& t, char* stack_lo, size_t size, FiberFn fn, void* arg) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo) + size) & ~static_cast<uintptr_t>(15);
  // 11 words; after the final `ret` rsp = top - 16 (16-byte aligned, as needed before the `call`).
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 88);
  sp[0] = t.fcw;
  sp[1] = t.mxcsr;
  sp[2] = 0;                                                // r15
  sp[3] = 0;                                                // r14
  sp[4] = reinterpret_cast<uint64_t>(fn);                   // r13: entry
  sp[5] = reinterpret_cast<uint64_t>(arg);                  // r12: argument
  sp[6] = 0;                                                // rbx
  sp[7] = 0;                                                // rbp
  sp[8] = reinterpret_cast<uint64_t>(&slr_emu_fiber_start); // return address
  sp[9] = 0;
  sp[10] = 0;
  c.sp = sp;
}
#else
// Portable fallback: ucontext (swapcontext does a sigprocmask syscall per switch: slower, correct).
struct Ctx {
  ucontext_t uc;
};
struct CtxTemplate {
  ucontext_t uc;
};
inline void ctx_switch(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
void ctx_template(CtxTemplate& t) { getcontext(&t.uc); }
void uc_entry();  // calls fiber_main(cur): makecontext cannot portably pass a pointer
void ctx_make(Ctx& c, const CtxTemplate& t, char* stack_lo, size_t size, FiberFn fn, void* arg) {
  (void)fn;
  (void)arg;  // uc_entry finds its fiber through the thread state's `cur`
  c.uc = t.uc;
  c.uc.uc_stack.ss_sp = stack_lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, uc_entry, 0);
}
#endif

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
inline size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return std::string();
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  std::string s(static_cast<size_t>(n), '\0');
  va_start(ap, fmt);
  vsnprintf(&s[0], static_cast<size_t>(n) + 1, fmt, ap);
  va_end(ap);
  return s;
}

// "0-15,17,20-21" for the set bits of a lane mask.
std::string lanes_str(unsigned mask) {
  std::string s;
  for (int i = 0; i < 32;) {
    if (!((mask >> i) & 1u)) {
      ++i;
      continue;
    }
    int j = i;
    while (j + 1 < 32 && ((mask >> (j + 1)) & 1u)) ++j;
    if (!s.empty()) s += ",";
    s += (i == j) ? strf("%d", i) : strf("%d-%d", i, j);
    i = j + 1;
  }
  return s.empty() ? std::string("none") : s;
}

std::string ids_str(const std::vector<unsigned>& ids) {
  std::string s;
  size_t ranges = 0;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (++ranges > 12) {
      s += ",...";
      break;
    }
    if (!s.empty()) s += ",";
    s += (i == j) ? strf("%u", ids[i]) : strf("%u-%u", ids[i], ids[j]);
    i = j + 1;
  }
  return s;
}

// Fiber stacks: `fiber_stack_size()` usable bytes with a PROT_NONE guard region right below (an
// overflow faults and is reported as such).  The guard is 64 KiB, not one page, because a frame with
// a large local array can move the stack pointer past a single page without touching it.  Stacks
// are reused by later launches and, through the pool, by later OS threads.
constexpr size_t kStackGuard = 64 * 1024;
size_t fiber_stack_size() {
  static const size_t s = [] {
    size_t kib = 128;
    if (const char* e = getenv("SLR_EMU_STACK_KIB")) {
      long v = atol(e);
      if (v >= 16 && v <= 1 << 20) kib = static_cast<size_t>(v);
    }
    return round_up(kib * 1024, page_size());
  }();
  return s;
}
struct StackPool {
  std::mutex mu;
  std::vector<char*> free_list;
};
StackPool& stack_pool() {
  static StackPool* p = new StackPool;  // never destroyed: usable during thread/process teardown
  return *p;
}
char* stack_alloc() {
  {
    StackPool& p = stack_pool();
    std::lock_guard<std::mutex> lk(p.mu);
    if (!p.free_list.empty()) {
      char* s = p.free_list.back();
      p.free_list.pop_back();
      return s;
    }
  }
  const size_t len = fiber_stack_size() + kStackGuard;
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  mprotect(m, kStackGuard, PROT_NONE);
  return static_cast<char*>(m) + kStackGuard;
}

// =============================================================================================
// 2. Per-OS-thread launch state
// =============================================================================================
enum FState : unsigned char { F_READY, F_RUNNING, F_BARRIER, F_WARP, F_EXITED };

struct Fiber {
  Ctx ctx;
  unsigned char state;
  int op;                     // warp collective it waits in (F_WARP)
  int op_arg, op_width;       // shuffle source lane / delta / xor mask, and width
  unsigned long long op_in;   // the lane's input value or predicate
  unsigned long long op_out;  // its result
  int op_valid, op_pred;
  int bar_pred, bar_result;   // __syncthreads_* predicate and result
  unsigned linear;            // x + y*bx + z*bx*by
  uint3 tid;
};

// Lanes of one warp that wait in the same collective with the same mask.
struct Group {
  int op, size;
  unsigned mask, arrived;
};
struct Warp {
  unsigned exist;   // lanes that exist (a block's last warp may be partial)
  unsigned exited;  // lanes that have returned from the kernel
  int ng;
  Group g[32];
};

constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxWarps = kMaxThreads / 32;

#ifdef SLR_EMU_RACECHECK
// Shared-memory race detection (section 5c), built when the kernels are compiled with -fsanitize=thread: g++ then
// calls __tsan_read<n> / __tsan_write<n> before every load and store of kernel code, and those hooks (end of this
// file) check each byte of shared memory touched against the last accesses recorded in its cell.
//
// Two accesses of one byte of shared memory by different threads of a block conflict when at least one writes and
// not both are atomics; they are ordered only by a __syncthreads* completed between them, or by a __syncwarp whose
// mask names both (lanes of one warp). Shuffles, votes, matches and warp reductions exchange registers but do not
// order memory (CUDA promises memory ordering for __syncwarp only), and neither does running in lockstep: a
// conflicting pair with no such barrier between is a race on a GPU whatever order the emulator ran it in.
//
// Time is a per-OS-thread counter `now` that moves at every event that orders memory: the start of a block, the
// completion of a barrier, of a __syncwarp. An access is stamped with `now`; a later access by another thread is
// ordered after it iff stamp < last_bar (a barrier completed since) or, within a warp, stamp < seen[running
// lane][lane of the earlier access]: the horizon up to which that lane's accesses reach the running lane through
// __syncwarps, chains of them included (lane 0 and 1 sync, then 1 and 2: lane 0's earlier writes reach lane 2).
// Stamps from before block_start belong to an earlier block (shared memory is the block's own).
// Each cell keeps the last write and the last two readers of distinct threads since it; a race with an older third
// reader, or between a plain access and an atomic older than the last one, can go unseen. A barrier completed
// after a thread exited also orders that thread's earlier accesses here, where on a GPU it does not (an exited
// thread takes no part): such a race goes unseen too. The checker misses races; it is not meant to report any
// that a GPU's memory model would order (docs/emulator.md says which patterns it does not know).
struct RaceCell {
  uint64_t w_stamp, r_stamp, r2_stamp;  // 0: none
  const void* w_pc;
  const void* r_pc;
  const void* r2_pc;
  uint16_t w_tid, r_tid, r2_tid;
  uint8_t w_atomic;
  uint8_t skip;  // not shared memory: a TLS guard variable (race_prepare)
};
struct RaceState {
  uint64_t now = 1, block_start = 1, last_bar = 1;
  std::unique_ptr<uint64_t[]> seen;  // [thread][lane of its warp]: see above
  // Shadow cells, one per byte: of the dynamic shared memory mapping (dsm_map .. + dsm_cap) and of the window of
  // the program's TLS block where the kernels' `__shared__` (function-local static thread_local) arrays lie.
  // Reserved, not committed: only pages of cells whose bytes a kernel touches take memory.
  RaceCell* dyn = nullptr;
  size_t dyn_cap = 0;
  uintptr_t tls_lo = 0;  // the window's first byte in this OS thread's TLS block
  size_t tls_len = 0;
  RaceCell* tls = nullptr;
  bool tls_done = false;
  std::string tls_error;  // why the window could not be set up: every later launch on this thread fails with it
  void release() {
    if (dyn) munmap(dyn, dyn_cap * sizeof(RaceCell));
    if (tls) munmap(tls, tls_len * sizeof(RaceCell));
    dyn = nullptr;
    tls = nullptr;
  }
};
#endif
constexpr unsigned kReadyWords = kMaxThreads / 64;
constexpr unsigned kMaxDynSmem = 227u * 1024u;            // sm_90 per-block limit
constexpr unsigned long long kMaxRandomBlocks = 1ull << 24;

struct TState {
  // --- the launch in progress ---
  volatile int in_launch = 0;  // read by the signal handler
  sigjmp_buf jb;
  int fault_sig = 0, fault_code = 0;
  void* fault_addr = nullptr;
  uintptr_t fault_sp = 0;  // stack pointer at the fault (0 if unknown)
  const char* kernel = "";
  slr_emu_launch cfg{};
  Thunk thunk = nullptr;
  void* thunk_ctx = nullptr;
  Ctx sched;               // the scheduler's own context (on the OS thread's stack)
  CtxTemplate tmpl;
  Fiber* cur = nullptr;    // running fiber, or nullptr while the scheduler runs
  std::unique_ptr<Fiber[]> fibers;
  Warp warps[kMaxWarps];
  unsigned nthreads = 0, live = 0, at_barrier = 0;
  int bar_kind = 0;
  uint64_t ready[kReadyWords];
  unsigned nready = 0, cursor = 0;
  unsigned schedule = 0;
  uint64_t rng = 0;
  bool failed = false;
  std::string msg;
  std::vector<unsigned> order;  // random block order
  // --- resources kept between launches ---
  std::vector<char*> stacks;
  char* dsm_map = nullptr;  // dynamic shared memory: dsm_cap bytes + guard page
  size_t dsm_cap = 0;
  unsigned char* dsm_ptr = nullptr;
  size_t dsm_bytes = 0;
  char* own_alt = nullptr;  // alternate signal stack we installed (if the thread had none)
  size_t own_alt_len = 0;
  bool alt_checked = false;
#ifdef SLR_EMU_RACECHECK
  RaceState race;
#endif

  ~TState() {
    if (!stacks.empty()) {
      StackPool& p = stack_pool();
      std::lock_guard<std::mutex> lk(p.mu);
      p.free_list.insert(p.free_list.end(), stacks.begin(), stacks.end());
    }
    if (dsm_map) munmap(dsm_map, dsm_cap + page_size());
#ifdef SLR_EMU_RACECHECK
    race.release();
#endif
    if (own_alt) {
      stack_t cur;
      if (sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_sp == own_alt + page_size()) {
        stack_t off;
        std::memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, nullptr);
      }
      munmap(own_alt, own_alt_len);
    }
  }
};

__thread TState* tl_state = nullptr;  // plain TLS pointer: safe to read in the signal handler
#ifdef SLR_EMU_RACECHECK
// What the race checker's hooks test before anything else, on every load and store of kernel code: whether the
// address is in this OS thread's shared memory (the dynamic buffer or the TLS block of the __shared__ arrays,
// set for the duration of a launch; empty otherwise), and not threadIdx & co. (tl_regs, in the same TLS block).
struct RaceWindow {
  uintptr_t dyn_lo = 0, dyn_len = 0, tls_lo = 0, tls_len = 0, regs_lo = 0;
};
__thread RaceWindow tl_race;
#endif
thread_local std::unique_ptr<TState> tl_state_owner;

TState* get_state() {
  if (!tl_state) {
    tl_state_owner.reset(new TState);
    tl_state = tl_state_owner.get();
  }
  return tl_state;
}

// splitmix64: the seeded schedule's random source.
inline uint64_t next_rand(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t rand_below(uint64_t& s, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(next_rand(s)) * n) >> 64);
}

const char* op_name(int op) {
  static const char* const names[] = {"?",
                                      "__shfl_sync",
                                      "__shfl_up_sync",
                                      "__shfl_down_sync",
                                      "__shfl_xor_sync",
                                      "__ballot_sync",
                                      "__any_sync",
                                      "__all_sync",
                                      "__uni_sync",
                                      "__syncwarp",
                                      "__match_any_sync",
                                      "__match_all_sync",
                                      "__reduce_add_sync",
                                      "__reduce_min_sync(unsigned)",
                                      "__reduce_max_sync(unsigned)",
                                      "__reduce_min_sync(int)",
                                      "__reduce_max_sync(int)",
                                      "__reduce_and_sync",
                                      "__reduce_or_sync",
                                      "__reduce_xor_sync"};
  return (op > 0 && op < OP_COUNT_) ? names[op] : names[0];
}
const char* bar_name(int kind) {
  switch (kind) {
    case BAR_COUNT: return "__syncthreads_count";
    case BAR_AND: return "__syncthreads_and";
    case BAR_OR: return "__syncthreads_or";
    default: return "__syncthreads";
  }
}

std::string thread_desc(const Fiber& f) {
  const Regs& r = tl_regs;
  return strf("block (%u,%u,%u) thread (%u,%u,%u) [warp %u lane %u]", r.bid.x, r.bid.y, r.bid.z, f.tid.x, f.tid.y,
              f.tid.z, f.linear >> 5, f.linear & 31u);
}

// ---- ready set: a bitset over the block's threads ----
inline void set_ready(TState* ts, unsigned i) {
  ts->fibers[i].state = F_READY;
  ts->ready[i >> 6] |= 1ull << (i & 63);
  ++ts->nready;
}
int find_ready_from(TState* ts, unsigned start) {
  if (start >= ts->nthreads) return -1;
  const unsigned nw = (ts->nthreads + 63) / 64;
  unsigned w = start >> 6;
  uint64_t m = ts->ready[w] & (~0ull << (start & 63));
  for (;;) {
    if (m) return static_cast<int>(w * 64 + static_cast<unsigned>(__builtin_ctzll(m)));
    if (++w >= nw) return -1;
    m = ts->ready[w];
  }
}
// Round-robin: the next ready thread after the one that ran last, in thread order.
// Random: a uniformly chosen ready thread.
int pick_next(TState* ts) {
  if (ts->nready == 0) return -1;
  unsigned i = 0;
  if (ts->schedule == 0) {
    int r = find_ready_from(ts, ts->cursor);
    if (r < 0) r = find_ready_from(ts, 0);
    i = static_cast<unsigned>(r);
    ts->cursor = i + 1;
  } else {
    uint64_t k = rand_below(ts->rng, ts->nready);
    for (unsigned w = 0;; ++w) {
      const unsigned c = static_cast<unsigned>(__builtin_popcountll(ts->ready[w]));
      if (k < c) {
        uint64_t m = ts->ready[w];
        while (k--) m &= m - 1;
        i = w * 64 + static_cast<unsigned>(__builtin_ctzll(m));
        break;
      }
      k -= c;
    }
  }
  ts->ready[i >> 6] &= ~(1ull << (i & 63));
  --ts->nready;
  return static_cast<int>(i);
}

// ---- switching between a fiber and the scheduler ----
inline void fiber_yield(TState* ts, Fiber* f) { ctx_switch(f->ctx, ts->sched); }

// Ends the launch with an error from inside a fiber.  The fiber is never resumed (its stack is
// simply reused by the next block / launch).
[[noreturn]] void fiber_fail(TState* ts, const std::string& m) {
  if (!ts->failed) {
    ts->failed = true;
    ts->msg = m;
  }
  ctx_switch(ts->cur->ctx, ts->sched);
  abort();  // unreachable: a failed launch never resumes its fibers
}

[[noreturn]] void outside_launch(const char* what) {
  fprintf(stderr, "slr_emu: %s called outside an emulated kernel launch\n", what);
  abort();
}

inline TState* fiber_state(const char* what) {
  TState* ts = tl_state;
  if (!ts || !ts->cur || !ts->in_launch) outside_launch(what);
  return ts;
}

// =============================================================================================
// 3. Barriers and warp collectives
// =============================================================================================
void release_barrier(TState* ts) {
  unsigned n = 0, cnt = 0;
  for (unsigned i = 0; i < ts->nthreads; ++i)
    if (ts->fibers[i].state == F_BARRIER) {
      ++n;
      cnt += static_cast<unsigned>(ts->fibers[i].bar_pred);
    }
  int res = 0;
  switch (ts->bar_kind) {
    case BAR_COUNT: res = static_cast<int>(cnt); break;
    case BAR_AND: res = cnt == n; break;
    case BAR_OR: res = cnt != 0; break;
    default: break;
  }
  for (unsigned i = 0; i < ts->nthreads; ++i)
    if (ts->fibers[i].state == F_BARRIER) {
      ts->fibers[i].bar_result = res;
      set_ready(ts, i);
    }
  ts->at_barrier = 0;
#ifdef SLR_EMU_RACECHECK
  ts->race.last_bar = ++ts->race.now;
#endif
}

// PTX shfl.sync semantics: width w gives segmask = 32 - w ("c[12:8]"); clamp = 31 except for .up.
unsigned shfl_source(int op, unsigned lane, int arg, int width) {
  const unsigned seg = static_cast<unsigned>(32 - width);
  const unsigned b = static_cast<unsigned>(arg) & 31u;
  const unsigned min_lane = lane & seg;
  const unsigned max_lane = (lane & seg) | (31u & ~seg);
  int j = static_cast<int>(lane);
  bool ok = true;
  switch (op) {
    case OP_SHFL_UP:
      j = static_cast<int>(lane) - static_cast<int>(b);
      ok = j >= static_cast<int>(min_lane);
      break;
    case OP_SHFL_DOWN:
      j = static_cast<int>(lane + b);
      ok = j <= static_cast<int>(max_lane);
      break;
    case OP_SHFL_XOR:
      j = static_cast<int>(lane ^ b);
      ok = j <= static_cast<int>(max_lane);
      break;
    default:  // OP_SHFL_IDX
      j = static_cast<int>(min_lane | (b & ~seg));
      ok = j <= static_cast<int>(max_lane);
      break;
  }
  return ok ? static_cast<unsigned>(j) : lane;
}

// All lanes of group g (of warp `warp`) have arrived: compute every lane's result, make them ready.
void complete_group(TState* ts, unsigned warp, const Group& g) {
  Fiber* base = &ts->fibers[warp * 32];
  const unsigned mask = g.mask;
  const unsigned long long vmask = g.size >= 8 ? ~0ull : ((1ull << (8 * g.size)) - 1);
  unsigned votes = 0;
  for (unsigned l = 0; l < 32; ++l)
    if (((mask >> l) & 1u) && base[l].op_in) votes |= 1u << l;
  unsigned long long red = 0;
  if (g.op >= OP_RED_ADD && g.op <= OP_RED_XOR) {
    bool first = true;
    for (unsigned l = 0; l < 32; ++l) {
      if (!((mask >> l) & 1u)) continue;
      const unsigned v = static_cast<unsigned>(base[l].op_in);
      unsigned r = static_cast<unsigned>(red);
      if (first) {
        r = v;
        first = false;
      } else {
        switch (g.op) {
          case OP_RED_ADD: r = r + v; break;
          case OP_RED_MIN_U: r = v < r ? v : r; break;
          case OP_RED_MAX_U: r = v > r ? v : r; break;
          case OP_RED_MIN_S: r = static_cast<int>(v) < static_cast<int>(r) ? v : r; break;
          case OP_RED_MAX_S: r = static_cast<int>(v) > static_cast<int>(r) ? v : r; break;
          case OP_RED_AND: r = r & v; break;
          case OP_RED_OR: r = r | v; break;
          default: r = r ^ v; break;
        }
      }
      red = r;
    }
  }
  bool all_equal = true;
  {
    int first = -1;
    for (unsigned l = 0; l < 32; ++l) {
      if (!((mask >> l) & 1u)) continue;
      if (first < 0)
        first = static_cast<int>(l);
      else if ((base[l].op_in & vmask) != (base[first].op_in & vmask))
        all_equal = false;
    }
  }
  for (unsigned l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    Fiber& f = base[l];
    f.op_valid = 1;
    f.op_pred = 0;
    f.op_out = 0;
    switch (g.op) {
      case OP_SHFL_IDX:
      case OP_SHFL_UP:
      case OP_SHFL_DOWN:
      case OP_SHFL_XOR: {
        const unsigned j = shfl_source(g.op, l, f.op_arg, f.op_width);
        if ((mask >> j) & 1u)
          f.op_out = base[j].op_in;
        else
          f.op_valid = 0;  // source lane not in the mask: undefined on the GPU -> poison
        break;
      }
      case OP_BALLOT: f.op_out = votes; break;
      case OP_ANY: f.op_out = votes != 0; break;
      case OP_ALL: f.op_out = votes == mask; break;
      case OP_UNI: f.op_out = votes == 0 || votes == mask; break;
      case OP_SYNCWARP: break;
      case OP_MATCH_ANY: {
        unsigned m = 0;
        for (unsigned k = 0; k < 32; ++k)
          if (((mask >> k) & 1u) && (base[k].op_in & vmask) == (f.op_in & vmask)) m |= 1u << k;
        f.op_out = m;
        break;
      }
      case OP_MATCH_ALL:
        f.op_out = all_equal ? mask : 0u;
        f.op_pred = all_equal;
        break;
      default: f.op_out = red; break;  // reductions
    }
  }
  for (unsigned l = 0; l < 32; ++l)
    if ((mask >> l) & 1u) set_ready(ts, warp * 32 + l);
#ifdef SLR_EMU_RACECHECK
  if (g.op == OP_SYNCWARP) {  // the one warp collective that orders memory between the lanes it names
    // Every lane named leaves with what any of them had seen of each lane, and with all of their accesses so far.
    const uint64_t t = ++ts->race.now;
    uint64_t* seen = &ts->race.seen[warp * 32 * 32];
    uint64_t joined[32];
    for (unsigned x = 0; x < 32; ++x) {
      uint64_t h = 0;
      for (unsigned c = 0; c < 32; ++c)
        if (((mask >> c) & 1u) && seen[c * 32 + x] > h) h = seen[c * 32 + x];
      joined[x] = (mask >> x) & 1u ? t : h;
    }
    for (unsigned b = 0; b < 32; ++b)
      if ((mask >> b) & 1u) std::memcpy(&seen[b * 32], joined, sizeof joined);
  }
#endif
}

// A fiber leaves the kernel.  Never returns.
[[noreturn]] void thread_exit(TState* ts, Fiber* f) {
  f->state = F_EXITED;
  --ts->live;
  Warp& w = ts->warps[f->linear >> 5];
  const unsigned bit = 1u << (f->linear & 31u);
  w.exited |= bit;
  for (int k = 0; k < w.ng; ++k)
    if (w.g[k].mask & bit)
      fiber_fail(ts, strf("%s exited while lane(s) %s of its warp wait for it in %s(mask=0x%08x): every lane named "
                          "in a warp collective's mask must reach it (exited lanes never do)",
                          thread_desc(*f).c_str(), lanes_str(w.g[k].arrived).c_str(), op_name(w.g[k].op),
                          w.g[k].mask));
  // Exited threads no longer hold up __syncthreads (sm_70+).
  if (ts->at_barrier && ts->at_barrier == ts->live) release_barrier(ts);
  ctx_switch(f->ctx, ts->sched);
  abort();  // an exited fiber is never resumed
}

// Entry of every fiber: run the kernel body, then exit.
void fiber_main(void* arg) {
#if SLR_EMU_UCONTEXT
  // The context came from the host thread's getcontext, floating-point environment included: start from the
  // default one instead (see ctx_template of the assembly switch), which swapcontext then keeps per fiber.
  fesetenv(FE_DFL_ENV);
#endif
  TState* ts = tl_state;
  Fiber* f = static_cast<Fiber*>(arg);
  bool threw = false;
  try {
    ts->thunk(ts->thunk_ctx);
  } catch (...) {
    threw = true;
  }
  if (threw) fiber_fail(ts, strf("a C++ exception escaped the kernel in %s", thread_desc(*f).c_str()));
  thread_exit(ts, f);
}

#if SLR_EMU_UCONTEXT
void uc_entry() { fiber_main(tl_state->cur); }
#endif

void report_deadlock(TState* ts) {
  const Regs& r = tl_regs;
  std::string s = strf("deadlock in block (%u,%u,%u): ", r.bid.x, r.bid.y, r.bid.z);
  std::vector<unsigned> at_bar;
  for (unsigned i = 0; i < ts->nthreads; ++i)
    if (ts->fibers[i].state == F_BARRIER) at_bar.push_back(i);
  bool any = false;
  if (!at_bar.empty()) {
    s += strf("%zu thread(s) wait at %s (linear thread ids %s; %u thread(s) have exited)", at_bar.size(),
              bar_name(ts->bar_kind), ids_str(at_bar).c_str(), ts->nthreads - ts->live);
    any = true;
  }
  const unsigned nwarps = (ts->nthreads + 31) / 32;
  for (unsigned w = 0; w < nwarps; ++w) {
    const Warp& W = ts->warps[w];
    for (int k = 0; k < W.ng; ++k) {
      const Group& g = W.g[k];
      const unsigned missing = g.mask & ~g.arrived;
      s += strf("%swarp %u lanes %s wait in %s(mask=0x%08x) for lanes %s", any ? "; " : "", w,
                lanes_str(g.arrived).c_str(), op_name(g.op), g.mask, lanes_str(missing).c_str());
      unsigned at_barrier = 0;
      for (unsigned l = 0; l < 32; ++l)
        if (((missing >> l) & 1u) && ts->fibers[w * 32 + l].state == F_BARRIER) at_barrier |= 1u << l;
      if (at_barrier) s += strf(" (lanes %s wait at %s)", lanes_str(at_barrier).c_str(), bar_name(ts->bar_kind));
      for (int k2 = 0; k2 < W.ng; ++k2)
        if (k2 != k && (W.g[k2].arrived & missing))
          s += strf(" (lanes %s wait in %s(mask=0x%08x))", lanes_str(W.g[k2].arrived & missing).c_str(),
                    op_name(W.g[k2].op), W.g[k2].mask);
      any = true;
    }
  }
  s += ". Every thread must reach the same __syncthreads, and every lane named in a warp collective's mask must "
       "reach that collective.";
  ts->failed = true;
  ts->msg = s;
}

}  // namespace

int block_barrier(int kind, int pred) {
  TState* ts = fiber_state(bar_name(kind));
  Fiber* f = ts->cur;
  if (ts->at_barrier && ts->bar_kind != kind)
    fiber_fail(ts, strf("%s reached %s while other threads of the block wait at %s", thread_desc(*f).c_str(),
                        bar_name(kind), bar_name(ts->bar_kind)));
  ts->bar_kind = kind;
  f->bar_pred = pred != 0;
  f->state = F_BARRIER;
  ++ts->at_barrier;
  if (ts->at_barrier == ts->live) release_barrier(ts);
  fiber_yield(ts, f);
  return f->bar_result;
}

WarpResult warp_op(int op, unsigned mask, unsigned long long in, int arg, int width, int size) {
  TState* ts = fiber_state(op_name(op));
  Fiber* f = ts->cur;
  const unsigned warp = f->linear >> 5, lane = f->linear & 31u, bit = 1u << lane;
  Warp& w = ts->warps[warp];
  if (!(mask & bit))
    fiber_fail(ts, strf("%s calls %s with mask 0x%08x, which does not include its own lane %u",
                        thread_desc(*f).c_str(), op_name(op), mask, lane));
  if (mask & ~w.exist)
    fiber_fail(ts, strf("%s calls %s with mask 0x%08x naming lanes %s, which do not exist (this warp has only "
                        "lanes %s: blockDim (%u,%u,%u))",
                        thread_desc(*f).c_str(), op_name(op), mask, lanes_str(mask & ~w.exist).c_str(),
                        lanes_str(w.exist).c_str(), tl_regs.bdim.x, tl_regs.bdim.y, tl_regs.bdim.z));
  if (mask & w.exited)
    fiber_fail(ts, strf("%s calls %s with mask 0x%08x, but lanes %s named in it have already exited (it would "
                        "wait for them forever)",
                        thread_desc(*f).c_str(), op_name(op), mask, lanes_str(mask & w.exited).c_str()));
  if (op >= OP_SHFL_IDX && op <= OP_SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1))))
    fiber_fail(ts, strf("%s calls %s with width %d (must be a power of two from 1 to 32)", thread_desc(*f).c_str(),
                        op_name(op), width));
  // Lanes that pass the same mask form one group.  Groups with different (even overlapping) masks
  // may wait side by side: lanes of a divergent warp can sync on sub-masks first and on a wider mask
  // later.  If that can never resolve, the scheduler runs out of ready threads and reports it.
  Group* g = nullptr;
  for (int k = 0; k < w.ng; ++k)
    if (w.g[k].mask == mask) {
      g = &w.g[k];
      break;
    }
  if (g) {
    // Same mask but another collective: each side waits for the other forever.
    if (g->op != op || g->size != size)
      fiber_fail(ts, strf("warp divergence: %s calls %s (%d-byte value) while lane(s) %s of its warp wait in %s "
                          "(%d-byte value) with the same mask 0x%08x; all lanes named in a mask must reach the "
                          "same collective",
                          thread_desc(*f).c_str(), op_name(op), size, lanes_str(g->arrived).c_str(),
                          op_name(g->op), g->size, mask));
  } else {
    g = &w.g[w.ng++];
    g->op = op;
    g->size = size;
    g->mask = mask;
    g->arrived = 0;
  }
  f->op = op;
  f->op_in = in;
  f->op_arg = arg;
  f->op_width = width;
  f->state = F_WARP;
  g->arrived |= bit;
  if (g->arrived == g->mask) {
    const Group done = *g;
    *g = w.g[--w.ng];
    complete_group(ts, warp, done);
  }
  fiber_yield(ts, f);
  return WarpResult{f->op_out, f->op_valid, f->op_pred};
}

unsigned active_mask() {
  TState* ts = fiber_state("__activemask");
  const Warp& w = ts->warps[ts->cur->linear >> 5];
  return w.exist & ~w.exited;
}

void yield_now() {
  TState* ts = tl_state;
  if (!ts || !ts->cur || !ts->in_launch) return;
  Fiber* f = ts->cur;
  set_ready(ts, f->linear);
  fiber_yield(ts, f);
}

void assert_fail(const char* expr, const char* file, unsigned line, const char* func) {
  TState* ts = tl_state;
  if (!ts || !ts->cur || !ts->in_launch) {
    fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, func, expr);
    abort();
  }
  fiber_fail(ts, strf("assertion `%s' failed at %s:%u in %s(), %s", expr, file, line, func,
                      thread_desc(*ts->cur).c_str()));
}

void trap(const char* what) {
  TState* ts = tl_state;
  if (!ts || !ts->cur || !ts->in_launch) {
    fprintf(stderr, "slr_emu: %s outside an emulated kernel launch\n", what);
    abort();
  }
  fiber_fail(ts, strf("%s in %s", what, thread_desc(*ts->cur).c_str()));
}

long long clock_ns() {
  return static_cast<long long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

namespace {

// =============================================================================================
// 5. Guard-page buffers (slr_emu_alloc) and their registry
// =============================================================================================
struct BufInfo {
  uintptr_t map;       // whole mapping: guard page, data pages, guard page
  size_t map_len;
  uintptr_t start;     // what slr_emu_alloc returned
  size_t bytes;        // requested size
  size_t rounded;      // bytes rounded up to 16: start + rounded is the trailing guard page
  unsigned long long id;
};
struct Registry {
  std::mutex mu;
  std::map<uintptr_t, BufInfo> live;  // by start
  std::deque<BufInfo> freed;          // quarantine: kept reserved PROT_NONE so use-after-free faults
  size_t freed_bytes = 0;
  unsigned long long next_id = 1;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed
  return *r;
}
constexpr size_t kQuarantineBytes = size_t(1) << 30;  // address space, not memory
constexpr size_t kQuarantineEntries = 8192;

std::string buf_desc(const BufInfo& b) {
  return strf("slr_emu_alloc buffer #%llu (start %p, %zu bytes)", b.id, reinterpret_cast<void*>(b.start), b.bytes);
}

// Stores that land on a live buffer's own pages but outside the buffer do not fault: the rounding of its size up
// to 16 bytes after its end, and the rest of its first page before its start. Both are filled with 0xA5 when the
// buffer is made and nothing may store there; after every launch the 15 bytes after each live buffer and the
// kCanaryBefore bytes before it are checked (the GPU would not fault either; compute-sanitizer memcheck reports
// such stores). A changed byte is named and restored. With launches running on other OS threads at the same time,
// the store may be theirs: the message says so.
constexpr size_t kCanaryBefore = 64;
std::string check_canaries() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lk(reg.mu);
  const uintptr_t pg = page_size();
  std::string bad;
  for (auto& kv : reg.live) {
    const BufInfo& b = kv.second;
    const uintptr_t first_data = b.map + pg;  // the buffer's first data page (none when bytes == 0)
    const uintptr_t before = b.start - first_data < kCanaryBefore ? first_data : b.start - kCanaryBefore;
    auto scan = [&](uintptr_t from, uintptr_t to, const char* where) {
      long long lo = 0, hi = 0;  // offsets from the buffer's start of the first and last changed byte
      size_t changed = 0;
      for (uintptr_t a = from; a < to; ++a) {
        volatile unsigned char* q = reinterpret_cast<volatile unsigned char*>(a);
        if (*q == 0xA5) continue;
        const long long off = static_cast<long long>(a) - static_cast<long long>(b.start);
        if (changed++ == 0) lo = off;
        hi = off;
        *q = 0xA5;
      }
      if (changed) {
        bad += strf("%s%zu byte(s) %s %s changed (offsets %lld to %lld from its start)", bad.empty() ? "" : "; ",
                    changed, where, buf_desc(b).c_str(), lo, hi);
      }
    };
    scan(b.start + b.bytes, b.start + b.rounded, "after the end of");
    scan(before, b.start, "before the start of");
  }
  if (!bad.empty()) {
    bad = "store outside a buffer, inside its pages (no fault), by this launch or one running on another OS thread: " + bad;
  }
  return bad;
}

std::string describe_address(TState* ts, uintptr_t a) {
  const size_t pg = page_size();
  // Fiber stacks of this thread: the guard region below each stack, or a stack pointer that has
  // left the running fiber's stack (a frame larger than the guard region jumped over it).
  for (size_t i = 0; i < ts->stacks.size(); ++i) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(ts->stacks[i]);
    const bool sp_out = ts->cur && ts->cur->linear == i && ts->fault_sp && ts->fault_sp < lo &&
                        ts->fault_sp + (64u << 20) > lo;
    if ((a >= lo - kStackGuard && a < lo) || sp_out)
      return strf("stack overflow of emulated thread with linear id %zu (fiber stacks are %zu KiB; set "
                  "SLR_EMU_STACK_KIB to raise it, or use less local memory / recursion)",
                  i, fiber_stack_size() / 1024);
  }
  // Dynamic shared memory and its trailing guard page.
  if (ts->dsm_map) {
    const uintptr_t guard = reinterpret_cast<uintptr_t>(ts->dsm_map) + ts->dsm_cap;
    if (a >= guard && a < guard + pg)
      return strf("%zu bytes past the end of the dynamic shared memory (start %p, dynamic_smem_bytes = %zu): "
                  "offset %zu from its start",
                  static_cast<size_t>(a - guard), static_cast<void*>(ts->dsm_ptr), ts->dsm_bytes,
                  static_cast<size_t>(a - reinterpret_cast<uintptr_t>(ts->dsm_ptr)));
  }
  Registry& reg = registry();
  std::lock_guard<std::mutex> lk(reg.mu);
  const BufInfo* nearest = nullptr;
  uintptr_t best = ~static_cast<uintptr_t>(0);
  for (const auto& kv : reg.live) {
    const BufInfo& b = kv.second;
    const long long off = static_cast<long long>(a - b.start);
    if (a >= b.map && a < b.map + b.map_len) {
      if (a >= b.start + b.rounded)
        return strf("out of bounds: offset %lld into %s, i.e. %llu byte(s) after its end", off, buf_desc(b).c_str(),
                    static_cast<unsigned long long>(a - (b.start + b.bytes)));
      if (a < b.start)
        return strf("out of bounds: offset %lld from the start of %s, i.e. %llu byte(s) before its start", off,
                    buf_desc(b).c_str(), static_cast<unsigned long long>(b.start - a));
      return strf("inside %s at offset %lld", buf_desc(b).c_str(), off);
    }
    const uintptr_t d = a < b.start ? b.start - a : (a >= b.start + b.rounded ? a - (b.start + b.rounded) : 0);
    if (d < best) {
      best = d;
      nearest = &b;
    }
  }
  for (auto it = reg.freed.rbegin(); it != reg.freed.rend(); ++it)
    if (a >= it->map && a < it->map + it->map_len)
      return strf("use after free: the address is in %s, which was released by slr_emu_free; offset %lld from its "
                  "start",
                  buf_desc(*it).c_str(), static_cast<long long>(a - it->start));
  std::string s;
  if (a < 65536)
    s = "null pointer dereference (address within 64 KiB of 0)";
  else
    s = "the address is not inside any live slr_emu_alloc buffer";
  if (nearest)
    s += strf("; the nearest buffer is %s, offset %lld from its start", buf_desc(*nearest).c_str(),
              static_cast<long long>(a - nearest->start));
  return s;
}

// =============================================================================================
// 4. Fault handling
// =============================================================================================
// Installed once, process-wide, on the alternate signal stack.  A synchronous fault on an OS thread
// that is inside an emulated launch records the address and siglongjmp's to run_grid (which then
// returns the error).  Anything else goes to the handler that was installed before (e.g. Rust's
// stack-overflow handler) or gets the default action.
const int kSignals[3] = {SIGSEGV, SIGBUS, SIGFPE};
struct sigaction g_prev[3];
std::once_flag g_install_once;

void chain_signal(int sig, siginfo_t* si, void* uc) {
  int k = 0;
  while (k < 2 && kSignals[k] != sig) ++k;
  const struct sigaction& p = g_prev[k];
  if (p.sa_handler == SIG_IGN) return;
  if (p.sa_handler != SIG_DFL) {
    if (p.sa_flags & SA_SIGINFO)
      p.sa_sigaction(sig, si, uc);
    else
      p.sa_handler(sig);
    return;
  }
  // Default action: restore it; the faulting instruction re-executes (or the re-raised signal is
  // delivered once this handler returns) and the process dies exactly as without the emulator.
  struct sigaction d;
  std::memset(&d, 0, sizeof d);
  d.sa_handler = SIG_DFL;
  sigemptyset(&d.sa_mask);
  sigaction(sig, &d, nullptr);
  if (!si || si->si_code <= 0) raise(sig);
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  TState* ts = tl_state;
  if (ts && ts->in_launch && si && si->si_code > 0) {
    ts->in_launch = 0;
    ts->fault_sig = sig;
    ts->fault_code = si->si_code;
    ts->fault_addr = si->si_addr;
    ts->fault_sp = 0;
#if defined(__x86_64__) && defined(REG_RSP)
    if (uc) ts->fault_sp = static_cast<uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RSP]);
#endif
    siglongjmp(ts->jb, 1);
  }
  chain_signal(sig, si, uc);
}

void install_handlers() {
  std::call_once(g_install_once, [] {
    for (int k = 0; k < 3; ++k) {
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = on_fault;
      sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
      sigemptyset(&sa.sa_mask);
      sigaction(kSignals[k], &sa, &g_prev[k]);
    }
  });
}

// A fiber stack overflow can only be handled on an alternate signal stack.  Threads started by Rust
// already have one; otherwise install our own (removed at thread exit).
void ensure_altstack(TState* ts) {
  if (ts->alt_checked) return;
  ts->alt_checked = true;
  stack_t cur;
  if (sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;
  const size_t size = 64 * 1024, len = size + page_size();
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return;
  mprotect(m, page_size(), PROT_NONE);
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_sp = static_cast<char*>(m) + page_size();
  ss.ss_size = size;
  if (sigaltstack(&ss, nullptr) == 0) {
    ts->own_alt = static_cast<char*>(m);
    ts->own_alt_len = len;
  } else {
    munmap(m, len);
  }
}

std::string describe_fault(TState* ts) {
  const std::string who = ts->cur ? thread_desc(*ts->cur) : std::string("the emulator's scheduler");
  const int sig = ts->fault_sig, code = ts->fault_code;
  const uintptr_t a = reinterpret_cast<uintptr_t>(ts->fault_addr);
  if (sig == SIGFPE) {
    const char* what = code == FPE_INTDIV   ? "integer division by zero"
                       : code == FPE_INTOVF ? "integer overflow (INT_MIN / -1)"
                                            : "arithmetic exception";
    return strf("%s (SIGFPE) at instruction %p in %s; the GPU does not trap here but returns an unspecified "
                "value, so this is a bug in the kernel",
                what, ts->fault_addr, who.c_str());
  }
  const char* what = sig == SIGBUS ? "bus error (SIGBUS)" : "invalid memory access (SIGSEGV)";
  if (sig == SIGSEGV && code == SI_KERNEL)
    return strf("general-protection fault (SIGSEGV, no address reported) in %s: typically a misaligned 16-byte "
                "vector access (float4/uint4/int4/double2 pointers must be 16-byte aligned, as on the GPU) or a "
                "wild pointer",
                who.c_str());
  return strf("%s at address %p in %s: %s", what, ts->fault_addr, who.c_str(), describe_address(ts, a).c_str());
}


#ifdef SLR_EMU_RACECHECK
// =============================================================================================
// 5c. Shared-memory race detection (RaceState, section 2, says what counts as a race)
// =============================================================================================
// The program's static TLS block of this OS thread, where the kernels' `__shared__` arrays live: the PT_TLS
// instance of the module that holds tl_regs (the kernels and this runtime are linked into one module).
int find_tls_block(struct dl_phdr_info* info, size_t, void* data) {
  auto* r = static_cast<RaceState*>(data);
  if (!info->dlpi_tls_data) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_TLS) continue;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(info->dlpi_tls_data);
    const uintptr_t me = reinterpret_cast<uintptr_t>(&tl_regs);
    if (me >= lo && me < lo + ph.p_memsz) {
      r->tls_lo = lo;  // the block's start; race_prepare narrows it to the window
      r->tls_len = ph.p_memsz;
      return 1;
    }
  }
  return 0;
}

void* reserve_cells(size_t n) {
  void* p = mmap(nullptr, n * sizeof(RaceCell), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Calls f(name, type, value, size) for every symbol of `file`'s ELF symbol table (.symtab, which dladdr does not
// read; nothing if the file is stripped) until f returns true.
template <class F>
void for_each_elf_symbol(const char* file, F f) {
  const int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(ElfW(Ehdr))))
    map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const auto* base = static_cast<const unsigned char*>(map);
  const size_t size = static_cast<size_t>(st.st_size);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  bool done = false;
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_shoff && eh->e_shentsize == sizeof(ElfW(Shdr)) &&
      eh->e_shoff <= size && eh->e_shnum <= (size - eh->e_shoff) / sizeof(ElfW(Shdr))) {
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum && !done; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
      const ElfW(Shdr)& strs = sh[sh[i].sh_link];
      if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset || strs.sh_offset > size ||
          strs.sh_size > size - strs.sh_offset)
        continue;
      const auto* sym = reinterpret_cast<const ElfW(Sym)*>(base + sh[i].sh_offset);
      const size_t nsym = sh[i].sh_size / sizeof(ElfW(Sym));
      for (size_t k = 0; k < nsym && !done; ++k) {
        if (sym[k].st_name >= strs.sh_size) continue;
        const char* name = reinterpret_cast<const char*>(base + strs.sh_offset + sym[k].st_name);
        if (std::memchr(name, 0, strs.sh_size - sym[k].st_name) == nullptr) continue;
        done = f(name, ELF64_ST_TYPE(sym[k].st_info), sym[k].st_value, sym[k].st_size);
      }
    }
  }
  munmap(map, size);
}

// The file of the module whose code holds `addr`: the running program itself (dladdr names it as it was started,
// perhaps by a relative path) is read through /proc/self/exe.
std::string module_file(const void* addr) {
  Dl_info info;
  if (!dladdr(addr, &info) || !info.dli_fname || !info.dli_fname[0]) return "/proc/self/exe";
  uintptr_t main_base = 1;  // dl_iterate_phdr lists the program first
  dl_iterate_phdr([](struct dl_phdr_info* i, size_t, void* d) { *static_cast<uintptr_t*>(d) = i->dlpi_addr; return 1; },
                  &main_base);
  return main_base == reinterpret_cast<uintptr_t>(info.dli_fbase) ? "/proc/self/exe" : info.dli_fname;
}

// The file holding this runtime, the kernels and their TLS block.
std::string own_module() { return module_file(reinterpret_cast<void*>(&module_file)); }

// The demangled name of the symbol covering `value`: a function for a code offset, a thread-local variable
// (STT_TLS) for an offset into the TLS block; empty if none. *start: the symbol's value.
std::string elf_symbol(const char* file, uint64_t value, bool tls, uint64_t* start) {
  std::string out;
  for_each_elf_symbol(file, [&](const char* name, unsigned type, uint64_t v, uint64_t size) {
    if ((tls ? type != STT_TLS : type != STT_FUNC) || value < v || value >= v + (size ? size : 1)) return false;
    int status = 0;
    char* dem = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    out = status == 0 && dem ? dem : name;
    free(dem);
    if (start) *start = v;
    return true;
  });
  return out;
}

// Where the kernels' `__shared__` arrays lie in the TLS block, the same for every OS thread: the span of the
// function-local thread-locals (`_ZZ...`, and their guard variables `_ZGVZ...`) of the program's symbol table.
struct SharedLayout {
  uint64_t lo = 0, hi = 0;  // offsets into the TLS block
  std::vector<std::pair<uint64_t, uint64_t>> guards;  // (offset, size) of each guard variable
  std::string error;
};
const SharedLayout& shared_layout() {
  static SharedLayout layout;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string file = own_module();
    size_t symbols = 0;
    uint64_t lo = ~0ull, hi = 0;
    for_each_elf_symbol(file.c_str(), [&](const char* name, unsigned type, uint64_t v, uint64_t size) {
      ++symbols;
      const bool local = std::strncmp(name, "_ZZ", 3) == 0, guard = std::strncmp(name, "_ZGVZ", 5) == 0;
      if (type != STT_TLS || !(local || guard)) return false;
      const uint64_t n = size ? size : 1;
      if (guard) layout.guards.emplace_back(v, n);
      if (v < lo) lo = v;
      if (v + n > hi) hi = v + n;
      return false;
    });
    if (symbols == 0)
      layout.error = "the race checker locates the kernels' __shared__ arrays through the symbol table of " + file +
                     ", which has none (a stripped executable? `strip --strip-debug` keeps it); or build with "
                     "SLR_EMU_RACECHECK=0";
    else if (lo < hi) {
      layout.lo = lo;
      layout.hi = hi;
    }
  });
  return layout;
}

// Before each launch: shadow cells for the dynamic shared memory mapping (it may have grown) and, once per OS
// thread, for the window of its TLS block that holds the __shared__ arrays. Fresh cells are zero: no access
// recorded.
bool race_prepare(TState* ts, std::string* m) {
  RaceState& r = ts->race;
  if (!r.seen) r.seen.reset(new uint64_t[kMaxThreads * 32]());
  if (r.dyn_cap != ts->dsm_cap) {
    if (r.dyn) munmap(r.dyn, r.dyn_cap * sizeof(RaceCell));
    r.dyn = static_cast<RaceCell*>(reserve_cells(ts->dsm_cap));
    r.dyn_cap = r.dyn ? ts->dsm_cap : 0;
    if (!r.dyn) {
      *m = "out of address space for the race checker's shadow of dynamic shared memory";
      return false;
    }
  }
  if (!r.tls_done) {
    r.tls_done = true;
    const SharedLayout& layout = shared_layout();
    r.tls_lo = 0;
    r.tls_len = 0;
    dl_iterate_phdr(find_tls_block, &r);
    if (!layout.error.empty()) {
      r.tls_error = layout.error;
    } else if (!r.tls_len || layout.hi > r.tls_len) {
      r.tls_error = "the race checker found no TLS block holding the kernels' __shared__ arrays";
    } else if (layout.hi > layout.lo) {
      r.tls_lo += layout.lo;
      r.tls_len = layout.hi - layout.lo;
      r.tls = static_cast<RaceCell*>(reserve_cells(r.tls_len));
      if (!r.tls) r.tls_error = "out of address space for the race checker's shadow of static shared memory";
    }
    if (!r.tls) r.tls_len = 0;
    // A `__shared__` array of a type with a constructor (__half, __nv_bfloat16, float4 ...) is, here, a static
    // thread_local with a guard variable that the first thread of the first block sets and every other thread
    // reads: the emulator's artefact (the GPU has no guard), not a race. Their cells are never checked.
    if (r.tls)
      for (const auto& g : layout.guards)
        for (uint64_t i = g.first; i < g.first + g.second; ++i) r.tls[i - layout.lo].skip = 1;
  }
  if (!r.tls_error.empty()) {
    *m = r.tls_error;
    return false;
  }
  return true;
}

// "<file>+0x<offset> (<function>)" for a return address inside kernel code: `addr2line -f -C -i -e <file>
// <offset>` gives the source line.
std::string pc_desc(const void* pc) {
  Dl_info info;
  if (!pc || !dladdr(pc, &info) || !info.dli_fname) return strf("%p", pc);
  const uint64_t off = reinterpret_cast<uintptr_t>(pc) - 1 - reinterpret_cast<uintptr_t>(info.dli_fbase);
  std::string s = strf("%s+0x%llx", info.dli_fname, static_cast<unsigned long long>(off));
  const std::string fn = elf_symbol(module_file(pc).c_str(), off, false, nullptr);
  if (!fn.empty()) s += " (in " + fn + ")";
  return s;
}

const char* race_verb(int kind) { return kind == 0 ? "reads" : kind == 1 ? "writes" : "atomically updates"; }
const char* race_past(int kind) { return kind == 0 ? "read" : kind == 1 ? "wrote" : "atomically updated"; }

[[noreturn]] void race_fail(TState* ts, bool dyn, uintptr_t a, int kind, const void* pc, unsigned other,
                            int other_kind, const void* other_pc) {
  RaceState& r = ts->race;
  std::string where;
  if (dyn) {
    where = strf("byte %zu of the dynamic shared memory", static_cast<size_t>(a - reinterpret_cast<uintptr_t>(ts->dsm_ptr)));
  } else {
    uint64_t start = 0;
    const uint64_t off = a - r.tls_lo + shared_layout().lo;  // into the TLS block, as the symbol table counts
    const std::string var = elf_symbol(own_module().c_str(), off, true, &start);
    where = var.empty() ? strf("static shared memory (byte %llu of the TLS block)", static_cast<unsigned long long>(off))
                        : strf("byte %llu of the __shared__ variable %s", static_cast<unsigned long long>(off - start),
                               var.c_str());
  }
  const Fiber& o = ts->fibers[other];
  const bool same_warp = (other >> 5) == (ts->cur->linear >> 5);
  fiber_fail(ts, strf("data race on shared memory: %s %s %s, which thread (%u,%u,%u) [warp %u lane %u] of the same block "
                      "%s before with no barrier between: a __syncthreads()%s must separate them (shuffles, votes "
                      "and warp reductions do not order memory). This access: %s; the other: %s",
                      thread_desc(*ts->cur).c_str(), race_verb(kind), where.c_str(), o.tid.x, o.tid.y, o.tid.z,
                      other >> 5, other & 31u, race_past(other_kind),
                      same_warp ? ", or a __syncwarp() naming both lanes," : "", pc_desc(pc).c_str(),
                      pc_desc(other_pc).c_str()));
}

// Did the access stamped s1 by thread t1 happen with no barrier between it and the running thread t2's access now?
inline bool race_unordered(const RaceState& r, uint64_t s1, unsigned t1, unsigned t2) {
  if (s1 < r.block_start || t1 == t2 || s1 < r.last_bar) return false;
  return !((t1 >> 5) == (t2 >> 5) && s1 < r.seen[t2 * 32 + (t1 & 31u)]);
}

}  // namespace
void race_access_slow(uintptr_t a, size_t n, int kind, const void* pc);
// Every hook's first step (inlined into each): most accesses are to global memory, locals or threadIdx.
inline void race_hook(const void* p, size_t n, int kind, const void* pc) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const RaceWindow& w = tl_race;
  if (a - w.dyn_lo < w.dyn_len || (a - w.tls_lo < w.tls_len && a - w.regs_lo >= sizeof(Regs)))
    race_access_slow(a, n, kind, pc);
}
namespace {

// kind: 0 read, 1 write, 2 atomic read-modify-write.
void race_check(TState* ts, uintptr_t a, size_t n, int kind, const void* pc) {
  RaceState& r = ts->race;
  RaceCell* cells;
  bool dyn;
  uintptr_t end;
  const uintptr_t dlo = reinterpret_cast<uintptr_t>(ts->dsm_ptr);
  if (a - dlo < ts->dsm_bytes) {
    cells = r.dyn + (a - reinterpret_cast<uintptr_t>(ts->dsm_map));
    dyn = true;
    end = dlo + ts->dsm_bytes;
  } else if (a - r.tls_lo < r.tls_len) {
    // The emulator's own thread-locals that kernel code reads (threadIdx & co., the dynamic shared memory pointer)
    // share the block: not shared memory.
    const uintptr_t regs = reinterpret_cast<uintptr_t>(&tl_regs), dsm = reinterpret_cast<uintptr_t>(&tl_dyn_smem);
    if (a - regs < sizeof(Regs) || a - dsm < sizeof(tl_dyn_smem)) return;
    cells = r.tls + (a - r.tls_lo);
    dyn = false;
    end = r.tls_lo + r.tls_len;
  } else {
    return;
  }
  if (n > end - a) n = end - a;
  const unsigned t = ts->cur->linear;
  const uint64_t now = r.now;
  for (size_t i = 0; i < n; ++i) {
    RaceCell& c = cells[i];
    if (c.skip) continue;
    if (kind == 0) {
      if (race_unordered(r, c.w_stamp, c.w_tid, t)) race_fail(ts, dyn, a + i, kind, pc, c.w_tid, c.w_atomic ? 2 : 1, c.w_pc);
      if (c.r_stamp >= r.block_start && c.r_tid != t) {
        c.r2_stamp = c.r_stamp;
        c.r2_tid = c.r_tid;
        c.r2_pc = c.r_pc;
      }
      c.r_stamp = now;
      c.r_tid = static_cast<uint16_t>(t);
      c.r_pc = pc;
    } else {
      const bool atomic = kind == 2;
      if (race_unordered(r, c.w_stamp, c.w_tid, t) && !(atomic && c.w_atomic))
        race_fail(ts, dyn, a + i, kind, pc, c.w_tid, c.w_atomic ? 2 : 1, c.w_pc);
      if (race_unordered(r, c.r_stamp, c.r_tid, t)) race_fail(ts, dyn, a + i, kind, pc, c.r_tid, 0, c.r_pc);
      if (race_unordered(r, c.r2_stamp, c.r2_tid, t)) race_fail(ts, dyn, a + i, kind, pc, c.r2_tid, 0, c.r2_pc);
      c.w_stamp = now;
      c.w_tid = static_cast<uint16_t>(t);
      c.w_pc = pc;
      c.w_atomic = atomic;
      c.r_stamp = c.r2_stamp = 0;
    }
  }
}
#endif

// =============================================================================================
// 6. Launch
// =============================================================================================
void run_block(TState* ts) {
  if (ts->dsm_bytes) std::memset(ts->dsm_ptr, slr_emu_uninit_fill(ts->cfg.schedule, ts->cfg.seed), round_up(ts->dsm_bytes, 16));
  const unsigned n = ts->nthreads;
  const unsigned bx = tl_regs.bdim.x, by = tl_regs.bdim.y;
  const unsigned nwarps = (n + 31) / 32;
  for (unsigned w = 0; w < nwarps; ++w) {
    const unsigned lanes = (w + 1) * 32 <= n ? 32 : n - w * 32;
    ts->warps[w].exist = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    ts->warps[w].exited = 0;
    ts->warps[w].ng = 0;
  }
  std::memset(ts->ready, 0, sizeof ts->ready);
  const size_t ssize = fiber_stack_size();
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = ts->fibers[i];
    f.linear = i;
    f.tid = make_uint3(i % bx, (i / bx) % by, i / (bx * by));
    f.op = 0;
    f.bar_pred = f.bar_result = 0;
    ctx_make(f.ctx, ts->tmpl, ts->stacks[i], ssize, fiber_main, &f);
    f.state = F_READY;
    ts->ready[i >> 6] |= 1ull << (i & 63);
  }
  ts->nready = n;
  ts->live = n;
  ts->at_barrier = 0;
#ifdef SLR_EMU_RACECHECK
  ts->race.block_start = ts->race.last_bar = ++ts->race.now;
#endif
  ts->bar_kind = 0;
  ts->cursor = 0;
  while (!ts->failed) {
    const int i = pick_next(ts);
    if (i < 0) {
      if (ts->live) report_deadlock(ts);
      break;
    }
    Fiber& f = ts->fibers[static_cast<unsigned>(i)];
    f.state = F_RUNNING;
    ts->cur = &f;
    tl_regs.tid = f.tid;
    ctx_switch(ts->sched, f.ctx);
    ts->cur = nullptr;
  }
}

__attribute__((noinline)) void run_blocks(TState* ts) {
  const unsigned long long gx = ts->cfg.grid[0], gy = ts->cfg.grid[1], gz = ts->cfg.grid[2];
  const unsigned long long nb = gx * gy * gz;
  for (unsigned long long k = 0; k < nb && !ts->failed; ++k) {
    const unsigned long long b = ts->schedule ? ts->order[k] : k;
    tl_regs.bid = make_uint3(static_cast<unsigned>(b % gx), static_cast<unsigned>((b / gx) % gy),
                             static_cast<unsigned>(b / (gx * gy)));
    run_block(ts);
  }
}

// Runs the grid with the fault handler armed.  Returns true when a fault ended it: the handler
// clears in_launch and siglongjmp's back into this frame.
__attribute__((noinline)) bool run_protected(TState* ts) {
  if (sigsetjmp(ts->jb, 1) == 0) {
    ts->in_launch = 1;
    run_blocks(ts);
    ts->in_launch = 0;
    return false;
  }
  return true;
}

int report(char* err, size_t err_len, const char* kernel, const std::string& m) {
  const std::string full = strf("kernel '%s': ", kernel) + m;
  if (err && err_len) {
    const size_t n = full.size() < err_len - 1 ? full.size() : err_len - 1;
    std::memcpy(err, full.data(), n);
    err[n] = '\0';
  }
  static const bool verbose = getenv("SLR_EMU_VERBOSE") != nullptr;
  if (verbose) fprintf(stderr, "slr_emu: %s\n", full.c_str());
  return 1;
}

const char* arg_kind_name(unsigned kind) {
  switch (kind) {
    case SLR_EMU_ARG_PTR: return "a pointer";
    case SLR_EMU_ARG_B32: return "a 32-bit integer";
    case SLR_EMU_ARG_B64: return "a 64-bit integer";
    case SLR_EMU_ARG_F32: return "a float";
    case SLR_EMU_ARG_OTHER: return "of another type";
    default: return "of an unknown kind";
  }
}

// The caller's argument list (count and kinds, slr_emu_launch) against the kernel's parameter list.
std::string validate_args(const slr_emu_launch* c, unsigned nparams, const unsigned char* param_kinds) {
  if (c->nargs != nparams)
    return strf("the launch passed %u argument(s) but the kernel has %u parameter(s)", c->nargs, nparams);
  if (nparams && !c->arg_kinds) return strf("arg_kinds is NULL but the kernel has %u parameter(s)", nparams);
  for (unsigned i = 0; i < nparams; ++i)
    if (c->arg_kinds[i] != param_kinds[i])
      return strf("argument %u of %u is %s but the kernel's parameter is %s", i + 1, nparams,
                  arg_kind_name(c->arg_kinds[i]), arg_kind_name(param_kinds[i]));
  return std::string();
}

std::string validate(const slr_emu_launch* c, unsigned nparams, const unsigned char* param_kinds, void** args) {
  const unsigned* g = c->grid;
  const unsigned* b = c->block;
  if (!g[0] || !g[1] || !g[2]) return strf("bad launch configuration: grid (%u,%u,%u) has a zero dimension", g[0], g[1], g[2]);
  if (!b[0] || !b[1] || !b[2])
    return strf("bad launch configuration: block (%u,%u,%u) has a zero dimension", b[0], b[1], b[2]);
  if (b[0] > 1024 || b[1] > 1024 || b[2] > 64)
    return strf("bad launch configuration: block (%u,%u,%u) exceeds the per-dimension limits (1024,1024,64)", b[0],
                b[1], b[2]);
  const unsigned long long nt = 1ull * b[0] * b[1] * b[2];
  if (nt > kMaxThreads)
    return strf("bad launch configuration: block (%u,%u,%u) has %llu threads (max 1024)", b[0], b[1], b[2], nt);
  if (g[0] > 2147483647u || g[1] > 65535 || g[2] > 65535)
    return strf("bad launch configuration: grid (%u,%u,%u) exceeds the limits (2^31-1,65535,65535)", g[0], g[1], g[2]);
  if (c->dynamic_smem_bytes > kMaxDynSmem)
    return strf("bad launch configuration: dynamic_smem_bytes %u exceeds the %u bytes a block can have",
                c->dynamic_smem_bytes, kMaxDynSmem);
  if (c->schedule > 1) return strf("bad launch configuration: schedule %u (0 = round-robin, 1 = seeded random)", c->schedule);
  if (c->schedule == 1 && 1ull * g[0] * g[1] * g[2] > kMaxRandomBlocks)
    return strf("grid (%u,%u,%u) has too many blocks for the random schedule (max %llu)", g[0], g[1], g[2],
                kMaxRandomBlocks);
  const std::string bad_args = validate_args(c, nparams, param_kinds);
  if (!bad_args.empty()) return bad_args;
  if (nparams && !args) return strf("args is NULL but the kernel has %u parameter(s)", nparams);
  for (unsigned i = 0; i < nparams; ++i)
    if (!args[i]) return strf("args[%u] is NULL (each entry must point at the parameter's value)", i);
  return std::string();
}

bool prepare(TState* ts, unsigned nthreads, unsigned smem, std::string* m) {
  if (!ts->fibers) ts->fibers.reset(new Fiber[kMaxThreads]);
  while (ts->stacks.size() < nthreads) {
    char* s = stack_alloc();
    if (!s) {
      *m = "out of memory allocating fiber stacks";
      return false;
    }
    ts->stacks.push_back(s);
  }
  const size_t pg = page_size();
  const size_t r16 = round_up(smem, 16);
  const size_t need = round_up(r16 ? r16 : 1, pg);
  if (need > ts->dsm_cap) {
    if (ts->dsm_map) munmap(ts->dsm_map, ts->dsm_cap + pg);
    ts->dsm_map = nullptr;
    ts->dsm_cap = 0;
    void* p = mmap(nullptr, need + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      *m = "out of memory allocating dynamic shared memory";
      return false;
    }
    mprotect(static_cast<char*>(p) + need, pg, PROT_NONE);
    ts->dsm_map = static_cast<char*>(p);
    ts->dsm_cap = need;
  }
  ts->dsm_bytes = smem;
  ts->dsm_ptr = reinterpret_cast<unsigned char*>(ts->dsm_map + ts->dsm_cap - r16);
  return true;
}

}  // namespace

int run_grid(const char* kernel, const slr_emu_launch* cfg, unsigned nparams, const unsigned char* param_kinds,
             void** args, Thunk thunk, void* ctx, char* err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if (!kernel) kernel = "?";
  if (!cfg) return report(err, err_len, kernel, "launch configuration pointer is NULL");
  const std::string bad = validate(cfg, nparams, param_kinds, args);
  if (!bad.empty()) return report(err, err_len, kernel, bad);
  TState* ts = get_state();
  if (ts->in_launch || ts->cur)
    return report(err, err_len, kernel, "launch from inside a running kernel (dynamic parallelism) is not supported");
  install_handlers();
  ensure_altstack(ts);
  const unsigned nthreads = cfg->block[0] * cfg->block[1] * cfg->block[2];
  std::string m;
  if (!prepare(ts, nthreads, cfg->dynamic_smem_bytes, &m)) return report(err, err_len, kernel, m);

  ts->kernel = kernel;
  ts->cfg = *cfg;
  ts->thunk = thunk;
  ts->thunk_ctx = ctx;
  ts->nthreads = nthreads;
  ts->schedule = cfg->schedule;
  ts->rng = cfg->seed;
  ts->failed = false;
  ts->msg.clear();
  ts->cur = nullptr;
  ctx_template(ts->tmpl);
  if (ts->schedule == 1) {  // seeded random block order (Fisher-Yates)
    const unsigned nb = cfg->grid[0] * cfg->grid[1] * cfg->grid[2];
    ts->order.resize(nb);
    for (unsigned i = 0; i < nb; ++i) ts->order[i] = i;
    for (unsigned i = nb; i > 1; --i) std::swap(ts->order[i - 1], ts->order[rand_below(ts->rng, i)]);
  }
  tl_regs.bdim = make_uint3(cfg->block[0], cfg->block[1], cfg->block[2]);
  tl_regs.gdim = make_uint3(cfg->grid[0], cfg->grid[1], cfg->grid[2]);
  tl_dyn_smem = ts->dsm_ptr;
#ifdef SLR_EMU_RACECHECK
  if (!race_prepare(ts, &m)) return report(err, err_len, kernel, m);
  tl_race.dyn_lo = reinterpret_cast<uintptr_t>(ts->dsm_ptr);
  tl_race.dyn_len = ts->dsm_bytes;
  tl_race.tls_lo = ts->race.tls_lo;
  tl_race.tls_len = ts->race.tls_len;
  tl_race.regs_lo = reinterpret_cast<uintptr_t>(&tl_regs);
#endif

  if (run_protected(ts)) {
    // Back from the fault handler (which cleared in_launch).  The fibers are abandoned; their stacks
    // are reinitialised by the next launch.
    ts->failed = true;
    ts->msg = describe_fault(ts);
  }
  ts->cur = nullptr;
  tl_dyn_smem = nullptr;
#ifdef SLR_EMU_RACECHECK
  tl_race = RaceWindow();
#endif
  if (ts->failed) return report(err, err_len, kernel, ts->msg);
  const std::string canary = check_canaries();
  if (!canary.empty()) return report(err, err_len, kernel, canary);
  return 0;
}

#ifdef SLR_EMU_RACECHECK
__attribute__((noinline)) void race_access_slow(uintptr_t a, size_t n, int kind, const void* pc) {
  TState* ts = tl_state;
  if (ts && ts->cur && ts->in_launch) race_check(ts, a, n, kind, pc);
}
void race_access(const void* p, size_t n, int kind, const void* pc) { race_hook(p, n, kind, pc); }
#endif

}  // namespace detail
}  // namespace slr_emu

#ifdef SLR_EMU_RACECHECK
// The calls g++ -fsanitize=thread plants in the kernels (we provide them instead of linking libtsan): every load
// and store of kernel code, with its size, goes to the shared-memory race checker (5c). Function entry and exit
// and the module constructor's __tsan_init have nothing to do here.
#define SLR_EMU_TSAN_HOOK_(NAME, N, KIND)                                                                     \
  extern "C" void NAME(void* p) { slr_emu::detail::race_hook(p, N, KIND, __builtin_return_address(0)); }
SLR_EMU_TSAN_HOOK_(__tsan_read1, 1, 0)
SLR_EMU_TSAN_HOOK_(__tsan_read2, 2, 0)
SLR_EMU_TSAN_HOOK_(__tsan_read4, 4, 0)
SLR_EMU_TSAN_HOOK_(__tsan_read8, 8, 0)
SLR_EMU_TSAN_HOOK_(__tsan_read16, 16, 0)
SLR_EMU_TSAN_HOOK_(__tsan_write1, 1, 1)
SLR_EMU_TSAN_HOOK_(__tsan_write2, 2, 1)
SLR_EMU_TSAN_HOOK_(__tsan_write4, 4, 1)
SLR_EMU_TSAN_HOOK_(__tsan_write8, 8, 1)
SLR_EMU_TSAN_HOOK_(__tsan_write16, 16, 1)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_read2, 2, 0)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_read4, 4, 0)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_read8, 8, 0)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_read16, 16, 0)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_write2, 2, 1)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_write4, 4, 1)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_write8, 8, 1)
SLR_EMU_TSAN_HOOK_(__tsan_unaligned_write16, 16, 1)
#undef SLR_EMU_TSAN_HOOK_
extern "C" void __tsan_read_range(void* p, unsigned long n) {
  slr_emu::detail::race_hook(p, n, 0, __builtin_return_address(0));
}
extern "C" void __tsan_write_range(void* p, unsigned long n) {
  slr_emu::detail::race_hook(p, n, 1, __builtin_return_address(0));
}
extern "C" void __tsan_func_entry(void*) {}
extern "C" void __tsan_func_exit() {}
extern "C" void __tsan_init() {}
#endif

// =============================================================================================
// 5b. slr_emu_alloc / slr_emu_free
// =============================================================================================
// Layout: [guard page][data pages ... buffer][guard page].  The buffer ends exactly at the trailing
// guard page, so reading or writing one element past the end faults.  Fresh memory is filled with
// 0xA5 bytes (like cuMemAlloc, whose memory is uninitialised: code must not rely on zeros).
// Freed buffers are turned back into PROT_NONE reservations and kept for a while (quarantine) so that
// a use after free faults and is reported as such, then unmapped.
// The byte that fills uninitialized memory (emu_abi.h): dynamic shared memory at each block's start here, and
// Gpu::alloc_uninit's buffers on the Rust side (src/device/emu.rs). 0xA5 under the round-robin schedule, and under
// a seeded random one 0xFF (NaN in every float width, all ones in integers) for odd seeds or 0x7F (f32/bf16
// 3.39e38, f64 ~1e306, f16 NaN) for even ones. 0xA5 alone read as about -0 (-2.9e-16) in f32 and bf16 and -1e-127
// in f64, so a float read before its write shifted a result by nothing a tolerance could see (2026-11-29).
extern "C" unsigned char slr_emu_uninit_fill(unsigned schedule, unsigned long long seed) {
  if (schedule == 0) return 0xA5;
  return (seed & 1) ? 0xFF : 0x7F;
}

extern "C" int slr_emu_racecheck(void) {
#ifdef SLR_EMU_RACECHECK
  return 1;
#else
  return 0;
#endif
}

extern "C" void* slr_emu_alloc(size_t bytes) {
  using namespace slr_emu::detail;
  const size_t pg = page_size();
  if (bytes > (~static_cast<size_t>(0) >> 2)) return nullptr;
  const size_t rounded = round_up(bytes, 16);
  const size_t data = round_up(rounded, pg);
  const size_t len = data + 2 * pg;
  void* m = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  char* base = static_cast<char*>(m);
  if (data) {
    if (mprotect(base + pg, data, PROT_READ | PROT_WRITE) != 0) {
      munmap(m, len);
      return nullptr;
    }
    std::memset(base + pg, 0xA5, data);
  }
  char* start = base + pg + data - rounded;
  Registry& reg = registry();
  std::lock_guard<std::mutex> lk(reg.mu);
  BufInfo b;
  b.map = reinterpret_cast<uintptr_t>(base);
  b.map_len = len;
  b.start = reinterpret_cast<uintptr_t>(start);
  b.bytes = bytes;
  b.rounded = rounded;
  b.id = reg.next_id++;
  reg.live[b.start] = b;
  return start;
}

extern "C" void slr_emu_free(void* p) {
  using namespace slr_emu::detail;
  if (!p) return;
  Registry& reg = registry();
  std::lock_guard<std::mutex> lk(reg.mu);
  auto it = reg.live.find(reinterpret_cast<uintptr_t>(p));
  if (it == reg.live.end()) {
    bool was_freed = false;
    for (const BufInfo& b : reg.freed) was_freed = was_freed || b.start == reinterpret_cast<uintptr_t>(p);
    fprintf(stderr, "slr_emu_free(%p): %s; ignored\n", p,
            was_freed ? "double free" : "not a pointer returned by slr_emu_alloc");
    return;
  }
  BufInfo b = it->second;
  reg.live.erase(it);
  // Replace the pages by a PROT_NONE reservation: the memory is released, the addresses stay taken.
  mmap(reinterpret_cast<void*>(b.map), b.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
       -1, 0);
  reg.freed.push_back(b);
  reg.freed_bytes += b.map_len;
  while (!reg.freed.empty() && (reg.freed_bytes > kQuarantineBytes || reg.freed.size() > kQuarantineEntries)) {
    const BufInfo& old = reg.freed.front();
    munmap(reinterpret_cast<void*>(old.map), old.map_len);
    reg.freed_bytes -= old.map_len;
    reg.freed.pop_front();
  }
}

// =============================================================================================
// 7. Fast-math names that glibc's <math.h> declares (extern "C") but libm does not export.
// =============================================================================================
extern "C" {
float __expf(float x) noexcept { return expf(x); }
float __exp10f(float x) noexcept { return exp10f(x); }
float __logf(float x) noexcept { return logf(x); }
float __log2f(float x) noexcept { return log2f(x); }
float __log10f(float x) noexcept { return log10f(x); }
float __sinf(float x) noexcept { return sinf(x); }
float __cosf(float x) noexcept { return cosf(x); }
float __tanf(float x) noexcept { return tanf(x); }
float __powf(float x, float y) noexcept { return powf(x, y); }
void __sincosf(float x, float* s, float* c) noexcept { sincosf(x, s, c); }
}

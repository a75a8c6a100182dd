/*
 * internal.h — every internal type of spanalloc, in one place.
 *
 * Vocabulary (from the Go runtime, see docs/design.md):
 *   page      8 KiB, the unit of the page heap.
 *   arena     64 MiB of reserved address space; its metadata (sa_heaparena)
 *             holds the page -> span map and the page allocator's bitmaps.
 *   span      a run of pages: either one large object (span class 0) or
 *             nelems objects of one size class tracked by bitmaps.
 *   mcache    per-thread: the spans it owns per class (one to allocate
 *             from, up to SA_OWNED_MAX more it frees into), no locks.
 *   mcentral  per span class: partial and full spans, a lock.
 *   mheap     the page heap: arenas, page allocator, span structs; one lock.
 *
 * Lock order (outermost first), also the order the fork handler takes them:
 *   mcache list lock  ->  mcentral locks by span class  ->  mheap lock
 *   -> profiler lock.
 * No code path holds an mcentral lock while taking another mcentral's lock.
 */
#ifndef SA_INTERNAL_H
#define SA_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sizeclasses.h"
#include "spanalloc.h"

#define SA_HIDDEN __attribute__((visibility("hidden")))
#define SA_LIKELY(x) __builtin_expect(!!(x), 1)
#define SA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SA_NOINLINE __attribute__((noinline))
#define SA_COLD __attribute__((cold, noinline))
#define SA_CACHELINE 64
#define SA_DBG_FREED 0xdf /* SPANALLOC_DEBUG: the byte freed small blocks hold */

/* Relaxed / sequentially consistent atomics on plain fields. Fields touched
 * by more than one thread are always accessed through these. */
#define sa_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define sa_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define sa_load_sc(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define sa_store_sc(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
/* Population count. Without -mpopcnt GCC calls libgcc's table-driven
 * routine, which showed up at 12% of a churn benchmark's profile; the SWAR
 * form is a dozen ALU instructions. */
static inline unsigned sa_popcount64(uint64_t x)
{
#ifdef __POPCNT__
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* A thread's own statistics counter. One plain increment on the fast path
 * (readers on other threads load it relaxed and tolerate a stale value);
 * ThreadSanitizer builds make the store a relaxed atomic so the benign race
 * is not reported. */
#if defined(__SANITIZE_THREAD__)
#define SA_COUNTER_INC(p) sa_store_relaxed((p), sa_load_relaxed(p) + 1)
#else
#define SA_COUNTER_INC(p) (++*(p))
#endif
#define sa_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define sa_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* ---- address space layout ------------------------------------------------ */

#define SA_ADDR_BITS 48
#define SA_ARENA_SHIFT 26
#define SA_ARENA_BYTES ((size_t)1 << SA_ARENA_SHIFT) /* 64 MiB */
#define SA_PAGES_PER_ARENA (SA_ARENA_BYTES >> SA_PAGE_SHIFT) /* 8192 */
#define SA_ARENA_INDEX_LEN ((size_t)1 << (SA_ADDR_BITS - SA_ARENA_SHIFT))
#define SA_CHUNK_PAGES 512 /* page-allocator summary leaf: 4 MiB */
#define SA_CHUNKS_PER_ARENA (SA_PAGES_PER_ARENA / SA_CHUNK_PAGES) /* 16 */
#define SA_ARENA_BITMAP_WORDS (SA_PAGES_PER_ARENA / 64) /* 128 */
#define SA_CHUNK_WORDS (SA_CHUNK_PAGES / 64) /* 8 */
#define SA_BITMAP_WORDS (SA_MAX_SPAN_OBJS / 64) /* 8: span bitmaps */

/* ---- span classes -------------------------------------------------------- */
/* spanclass = sizeclass | managed << 6 | noscan << 7. Class 0 = large.
 * malloc uses the unmanaged classes 1..SA_NUM_SIZE_CLASSES-1; the collector
 * (issue 6) uses the managed ones. */
#define SA_NUM_SPAN_CLASSES 256
#define SA_SPANCLASS_MANAGED 0x40
#define SA_SPANCLASS_NOSCAN 0x80
#define SA_SPANCLASS_SIZE_MASK 0x3f
_Static_assert(SA_NUM_SIZE_CLASSES <= 64, "size class must fit in 6 bits");

static inline unsigned sa_spanclass_sizeclass(unsigned spc)
{
    return spc & SA_SPANCLASS_SIZE_MASK;
}

/* Size class of a small size (<= SA_MAX_SMALL_SIZE): two table lookups, as
 * Go's size_to_class8/size_to_class128. */
static inline unsigned sa_size_to_class(size_t size)
{
    if (size <= SA_SMALL_SIZE_MAX)
        return sa_size_to_class16[(size + SA_SMALL_SIZE_DIV - 1) / SA_SMALL_SIZE_DIV];
    return sa_size_to_class128[(size - SA_SMALL_SIZE_MAX + SA_LARGE_SIZE_DIV - 1) /
                               SA_LARGE_SIZE_DIV];
}

/* ---- span ----------------------------------------------------------------- */

enum sa_span_state {
    SA_SPAN_FREE = 0,    /* struct unused (in the mheap's struct pool) */
    SA_SPAN_CACHED = 1,  /* small span owned by one mcache */
    SA_SPAN_CENTRAL = 2, /* small span owned by its mcentral */
    SA_SPAN_LARGE = 3,   /* one large object */
    SA_SPAN_TRANSIT = 4, /* small span between the mheap and an mcentral (new,
                          * or emptied and on its way back): in no list and no
                          * cache while neither lock is held */
};

/* Which mcentral list a span is on: partial spans are split by how many
 * slots are free (at least a quarter: "many"), so refills take well-stocked
 * spans first. */
enum sa_span_list {
    SA_LIST_NONE = 0,
    SA_LIST_PARTIAL = 1, /* many free slots */
    SA_LIST_FULL = 2,
    SA_LIST_FEW = 3,     /* partial, few free slots */
};

typedef struct sa_mcache sa_mcache;
typedef struct sa_span sa_span;

/*
 * A span's metadata lives outside the span's memory (no headers, no free
 * lists inside user memory).
 *
 * Who writes what:
 *  - allocCache, freeindex, allocBits: the span's owner only -- the mcache
 *    thread while state == CACHED, the mcentral (under its lock) while
 *    CENTRAL. allocBits words are stored with relaxed atomics because
 *    non-owners read them to detect double frees.
 *  - remoteFree: any thread freeing an object of a span it does not own sets
 *    the object's bit with an atomic OR; the owner folds the word into
 *    allocBits with an atomic exchange (see span.c).
 *  - state, owner: changed by the owner / under the mcentral lock; read by
 *    any thread (atomics).
 *  - allocCount: slots not free in allocBits, counting the slots of a loaded
 *    window as allocated (so it reaches 0 only when the span is empty and
 *    has no window). Kept by the owner: the mcache thread while CACHED (its
 *    frees decrement it on the fast path), the mcentral under its lock while
 *    CENTRAL. Remote frees count once folded into allocBits.
 *  - pending, pendingNext: the mcentral's notification stack (mcentral.c).
 *  - everything else: set under the mheap lock when the span is created.
 */
struct sa_span {
    /* First cache line: everything the malloc/free fast paths touch. */
    uint64_t allocCache;  /* ~allocBits from freeindex on; bit 0 = freeindex */
    uintptr_t base;       /* address of the first page */
    uint32_t freeindex;   /* slot index of allocCache bit 0 */
    uint32_t elemsize;    /* object size; 0 for large spans */
    uint32_t divmul;      /* idx = (offset * divmul) >> 32 */
    uint16_t nelems;      /* object count */
    uint8_t spanclass;
    uint8_t needzero;     /* 1 once slots may hold old data */
    sa_mcache *owner;     /* atomic: caching mcache, or NULL */
    /* atomic: set after a remoteFree word gained a bit, cleared (exchange)
     * before the words are read: lets merges skip the words when nothing
     * arrived, and the owner's free fast path skip remoteFree. Stale 1s are
     * harmless. Set once per merge, so it may share the owner's line. */
    uint8_t hasRemote;
    uint8_t state;        /* atomic: enum sa_span_state */
    uint8_t list;         /* enum sa_span_list, under the mcentral lock */
    uint8_t pending;      /* atomic: 1 while on an mcentral pending stack */
    uint8_t largezero;    /* large span: pages came back zeroed */
    uint32_t windowFree;  /* owner: free slots in allocCache when loaded */
    uint32_t allocCount;  /* objects allocated (see below), kept by the owner */
    uint32_t wakeAt;      /* owner: an owner free that leaves allocCount at or
                           * below this calls mcache.c (0, or a parked span's
                           * wake-up) */
    sa_span *next, *prev; /* mcentral list links / mheap struct free list */
    size_t npages;
    uint32_t checkmark;   /* sa_heap_check: epoch of the last visit */
    uint8_t ownedIdx;     /* owner: index in its mcache's avail or parked set */

    /* Second cache line: the bitmap the owner owns. */
    uint64_t allocBits[SA_BITMAP_WORDS] __attribute__((aligned(SA_CACHELINE)));
    /* Third cache line: written by other threads; kept apart from the owner's
     * lines so remote frees do not bounce them. */
    uint64_t remoteFree[SA_BITMAP_WORDS] __attribute__((aligned(SA_CACHELINE)));
    struct sa_prof_bucket *prof; /* large span holding a sampled object */
    sa_span *pendingNext; /* pending stack link (written by the CAS winner) */
    uint64_t *gcmarkBits; /* the collector's mark bits (issue 6), else NULL */
};

static inline unsigned sa_span_nwords(const sa_span *s)
{
    return (s->nelems + 63u) >> 6;
}

/* Object index of an offset inside a small span (exact for every offset in
 * the span: tools/mksizeclasses.py checks it). */
static inline uint32_t sa_span_index(const sa_span *s, uintptr_t off)
{
    return (uint32_t)(((uint64_t)off * s->divmul) >> 32);
}

/* Index of the object starting at off, or -1 when off is inside an object:
 * the low half of the same product is below divmul exactly for object starts
 * (checked for every class and offset by tools/mksizeclasses.py). */
static inline int64_t sa_span_start_index(const sa_span *s, uintptr_t off)
{
    uint64_t prod = (uint64_t)off * s->divmul;
    if ((uint32_t)prod >= s->divmul)
        return -1;
    return (int64_t)(prod >> 32);
}

/* ---- heap arenas and the page map ------------------------------------------ */

/* Summary of a run of pages: free pages at the start, the longest free run,
 * free pages at the end (Go's pallocSum, unpacked). */
typedef struct sa_pallocsum {
    uint32_t start, max, end;
} sa_pallocsum;

typedef struct sa_heaparena {
    /* page -> span for every page of an in-use span; NULL for free pages.
     * Written under the mheap lock, read lock-free (relaxed atomics). */
    sa_span *spans[SA_PAGES_PER_ARENA];
    /* Page allocator state, under the mheap lock. */
    uint64_t inuse[SA_ARENA_BITMAP_WORDS];    /* 1 = page allocated */
    uint64_t released[SA_ARENA_BITMAP_WORDS]; /* 1 = free page holds no memory */
    uint64_t zeroed[SA_ARENA_BITMAP_WORDS];   /* 1 = page content known zero */
    uint64_t scavenged[SA_ARENA_BITMAP_WORDS]; /* 1 = released by the scavenger */
    uint16_t scavcand[SA_CHUNKS_PER_ARENA];   /* free pages still backed, per chunk */
    uint64_t lastfree[SA_CHUNKS_PER_ARENA];   /* scavenger epoch of the last free */
    uint32_t nscavcand;
    sa_pallocsum chunksum[SA_CHUNKS_PER_ARENA];
    sa_pallocsum sum;
    uintptr_t base;
    uint32_t index; /* position in the mheap's address-ordered arena array */
} sa_heaparena;

/* arena index -> metadata; a 32 MiB BSS array of which only the entries of
 * arenas in use are ever touched. Owned by mheap.c. */
extern SA_HIDDEN sa_heaparena *sa_arena_index[SA_ARENA_INDEX_LEN];

/* O(1) pointer -> span lookup; NULL when the address is not in a span. */
static inline sa_span *sa_span_of(uintptr_t addr)
{
    uintptr_t ai = addr >> SA_ARENA_SHIFT;
    if (SA_UNLIKELY(ai >= SA_ARENA_INDEX_LEN))
        return NULL;
    sa_heaparena *a = sa_load_relaxed(&sa_arena_index[ai]);
    if (SA_UNLIKELY(a == NULL))
        return NULL;
    return sa_load_relaxed(&a->spans[(addr >> SA_PAGE_SHIFT) & (SA_PAGES_PER_ARENA - 1)]);
}

/* ---- mcache ------------------------------------------------------------------ */

/* Per-thread counters, written by the owning thread with relaxed atomics and
 * folded by readers (stats.c). */
typedef struct sa_threadstats {
    uint64_t nmalloc[SA_NUM_SPAN_CLASSES]; /* small objects handed out, by span class */
    uint64_t nfree[SA_NUM_SPAN_CLASSES];   /* small objects freed by this thread */
    uint64_t nlarge_alloc, nlarge_free;
    uint64_t large_bytes_alloc, large_bytes_free;
} sa_threadstats;

/* Spans a thread owns per small class besides the one it allocates from. */
_Static_assert(SA_NUM_SIZE_CLASSES <= 64, "remote_classes has a bit per small class");
#define SA_OWNED_MAX 64

struct sa_mcache {
    /* One span per span class; never NULL (an empty span stands in). */
    sa_span *alloc[SA_NUM_SPAN_CLASSES];
    sa_threadstats stats;
    sa_mcache *next, *prev; /* list of live mcaches (mcache list lock) */
    bool dead;              /* the sentinel used after thread exit */
    /* Heap profiling (prof.c), owner only: bytes left until the next sample
     * per malloc size class, the part of a window set aside past a sample
     * point, the countdown for large blocks. */
    bool in_prof;
    uint64_t prof_epoch, prof_rng;
    uint64_t sample_left[SA_NUM_SIZE_CLASSES];
    uint64_t hidden[SA_NUM_SIZE_CLASSES];
    uint64_t large_sample_left;
    /* The other spans of each small class this thread owns (CACHED, owner ==
     * this mcache, no window), in two sets (mcache.c): avail, with enough free
     * slots to allocate from, and parked, waiting for frees. */
    uint8_t navail[SA_NUM_SIZE_CLASSES], nparked[SA_NUM_SIZE_CLASSES];
    sa_span *avail[SA_NUM_SIZE_CLASSES][SA_OWNED_MAX + 1];
    sa_span *parked[SA_NUM_SIZE_CLASSES][SA_OWNED_MAX + 1];
    /* atomic, set by other threads: bit spc = some owned span of class spc
     * got remote frees since the owner last looked (its own line: remote
     * frees do not bounce the owner's). */
    uint64_t remote_classes __attribute__((aligned(SA_CACHELINE)));
};

/* The thread's mcache: one initial-exec TLS slot; starts at sa_mcache_empty. */
extern SA_HIDDEN __thread sa_mcache *sa_tls_mcache;
extern SA_HIDDEN sa_mcache sa_mcache_empty; /* before a thread's first malloc */
extern SA_HIDDEN sa_mcache sa_mcache_dead;  /* after its cache was flushed */
extern SA_HIDDEN sa_span sa_emptyspan;      /* allocCache 0: always misses */

SA_HIDDEN sa_mcache *sa_mcache_for_thread(void);
SA_HIDDEN void *sa_mcache_refill_alloc(sa_mcache *mc, unsigned spc, int *needzero, void *ra);
SA_HIDDEN void sa_mcache_span_wake(sa_mcache *mc, sa_span *s);

/* The owner freed one object of s (its allocBits bit is already clear): a
 * plain decrement; the slow call runs when a parked span has collected
 * enough free slots, or a span became empty. */
static inline __attribute__((always_inline)) void sa_owner_freed(sa_mcache *mc, sa_span *s)
{
    if (SA_UNLIKELY(--s->allocCount <= s->wakeAt))
        sa_mcache_span_wake(mc, s);
}
SA_HIDDEN void sa_mcache_release_all(sa_mcache *mc);
SA_HIDDEN void sa_mcache_fork_prepare(void);
SA_HIDDEN void sa_mcache_fork_parent(void);
SA_HIDDEN void sa_mcache_fork_child(void);
SA_HIDDEN void sa_mcache_fold_stats(sa_threadstats *out);
SA_HIDDEN void sa_mcache_pool_stats(size_t *inuse, size_t *sys);
SA_HIDDEN void sa_thread_exit(void *arg);

/* ---- span operations (span.c) ---------------------------------------------- */

SA_HIDDEN void sa_span_init_small(sa_span *s, unsigned spc);
SA_HIDDEN unsigned sa_span_merge_remote(sa_span *s, const char *call);
SA_HIDDEN unsigned sa_span_count_alloc(const sa_span *s);
SA_HIDDEN bool sa_span_load_window(sa_span *s, unsigned fromword);
SA_HIDDEN void sa_span_unload_window(sa_span *s);
SA_HIDDEN void *sa_span_alloc_slow_one(sa_span *s);
SA_HIDDEN void sa_free_remote(sa_span *s, uint32_t idx, const char *call, void *p);

static inline void sa_bit_set(uint64_t *words, uint32_t idx)
{
    uint64_t *w = &words[idx >> 6];
    sa_store_relaxed(w, sa_load_relaxed(w) | ((uint64_t)1 << (idx & 63)));
}

/* Hands out the next slot of s's window (Go's nextFreeFast); the caller
 * checked cache == s->allocCache != 0. The malloc fast path is this. */
static inline __attribute__((always_inline)) void *sa_span_take(sa_span *s, uint64_t cache)
{
    unsigned bit = (unsigned)__builtin_ctzll(cache);
    uint32_t idx = s->freeindex + bit;
    s->allocCache = (cache >> bit) >> 1;
    s->freeindex = idx + 1;
    sa_bit_set(s->allocBits, idx);
    return (void *)(s->base + (uintptr_t)idx * s->elemsize);
}

/* ---- mcentral ------------------------------------------------------------------ */

typedef struct sa_mcentral {
    pthread_mutex_t lock;
    sa_span *partial; /* spans with >= 1/4 of their slots free (doubly linked) */
    sa_span *few;     /* spans with some, but < 1/4, free */
    sa_span *full;    /* spans with no free slot */
    sa_span *pending; /* atomic Treiber stack: spans that got remote frees */
    uint64_t nspans;  /* spans owned by this class (any state but FREE) */
    uint8_t spanclass;
} __attribute__((aligned(SA_CACHELINE))) sa_mcentral;

extern SA_HIDDEN sa_mcentral sa_central[SA_NUM_SPAN_CLASSES];

#define SA_DRAIN_EVERY 64
SA_HIDDEN void sa_mcentral_init_all(void);
SA_HIDDEN sa_span *sa_mcentral_cache_span(sa_mcentral *c, sa_mcache *mc, sa_span **slot);
SA_HIDDEN void sa_mcentral_uncache_span(sa_mcentral *c, sa_span *s, sa_span **slot);
SA_HIDDEN void sa_mcentral_notify(sa_span *s, unsigned spc);
SA_HIDDEN void *sa_mcentral_alloc_one(sa_mcentral *c, int *needzero);
SA_HIDDEN void sa_mcentral_fork_prepare(void);
SA_HIDDEN void sa_mcentral_fork_parent(void);
SA_HIDDEN void sa_mcentral_fork_child(void);

/* ---- mheap and page allocator ----------------------------------------------- */

typedef struct sa_pageheap_stats {
    size_t arenas;            /* arenas reserved */
    size_t pages_total;       /* pages in those arenas */
    size_t pages_inuse;       /* pages in spans */
    size_t pages_released;    /* free pages holding no memory */
    size_t pages_free_backed; /* free pages still holding memory */
    uint64_t pages_faulted;   /* released pages handed out again */
    uint64_t nallocs;         /* page runs handed out, ever */
    size_t span_inuse, span_sys; /* span structs */
    size_t arena_meta_sys;       /* arena metadata and the arena array */
} sa_pageheap_stats;

/* Scavenger batch: 256 KiB per madvise. Measured on the development machine
 * (2-vCPU VM, Linux): MADV_DONTNEED costs ~1.0 us per 4 KiB page in 8 KiB
 * calls, ~0.34 us per page in 256 KiB calls (~22 us a call), and no less
 * per page above that; refaulting costs ~1.6-2 us a page. */
#define SA_SCAV_BATCH_PAGES 32

SA_HIDDEN void sa_mheap_init(void);
SA_HIDDEN sa_span *sa_mheap_alloc_small_span(unsigned spc);
SA_HIDDEN sa_span *sa_mheap_alloc_large(size_t npages, size_t align);
SA_HIDDEN void sa_mheap_free_span(sa_span *s);
SA_HIDDEN bool sa_mheap_grow_large_in_place(sa_span *s, size_t npages);
SA_HIDDEN void sa_mheap_shrink_large(sa_span *s, size_t npages);
SA_HIDDEN void sa_mheap_stats(sa_pageheap_stats *out);
SA_HIDDEN size_t sa_mheap_scavenge(size_t maxpages, uint64_t idle_epoch, uint64_t *ncalls);
SA_HIDDEN uint64_t sa_mheap_next_epoch(void);
SA_HIDDEN void sa_mheap_fork_prepare(void);
SA_HIDDEN void sa_mheap_fork_parent(void);
SA_HIDDEN void sa_mheap_fork_child(void);
SA_HIDDEN sa_heaparena *sa_mheap_arena_of(uintptr_t addr);

/* Page allocator over the arenas (pagealloc.c); caller holds the mheap lock. */
typedef struct sa_pagealloc {
    sa_heaparena **arenas; /* address-ordered */
    size_t narenas, cap;
    size_t searchArena;    /* no free page in arenas below this index */
    size_t pages_total;       /* pages in all arenas */
    size_t pages_inuse;       /* pages in spans */
    size_t pages_released;    /* free pages holding no memory */
    size_t pages_free_backed; /* free pages still holding memory */
    size_t pages_scavenging;  /* being released right now */
    uint64_t nallocs;         /* page runs handed out, ever */
    uint64_t epoch;           /* scavenger cycle, stamps frees */
} sa_pagealloc;

/* What an allocated run held: pages that were released (the kernel will
 * fault them in), of those the ones the scavenger released (a refault, as
 * opposed to first use of fresh address space), and pages known zero. */
typedef struct sa_pagecounts {
    size_t released, refault, zeroed;
} sa_pagecounts;

SA_HIDDEN bool sa_pages_add_arena(sa_pagealloc *pa, sa_heaparena *a);
SA_HIDDEN uintptr_t sa_pages_alloc(sa_pagealloc *pa, size_t npages, sa_pagecounts *pc);
SA_HIDDEN bool sa_pages_alloc_at(sa_pagealloc *pa, uintptr_t addr, size_t npages,
                                 sa_pagecounts *pc);
SA_HIDDEN size_t sa_pages_scav_take(sa_pagealloc *pa, size_t maxpages, uint64_t idle_epoch,
                                    uintptr_t *addr);
SA_HIDDEN void sa_pages_scav_done(sa_pagealloc *pa, uintptr_t addr, size_t npages, int result);
SA_HIDDEN void sa_pages_free(sa_pagealloc *pa, uintptr_t addr, size_t npages);
SA_HIDDEN bool sa_pages_range_free(sa_pagealloc *pa, uintptr_t addr, size_t npages);
SA_HIDDEN void sa_pallocsum_compute(const uint64_t *words, unsigned nbits, sa_pallocsum *out);
SA_HIDDEN long sa_bitmap_find_zero_run(const uint64_t *words, unsigned nbits, size_t n);

/* ---- OS layer (os.c): every system call lives there ---------------------------- */

SA_HIDDEN void *sa_os_reserve(size_t bytes, size_t align, void *hint);
SA_HIDDEN void *sa_os_alloc_meta(size_t bytes);
SA_HIDDEN void sa_os_unmap(void *p, size_t bytes);
/* Hands pages back to the kernel (madvise, per the build's policy). */
enum { SA_RELEASE_FAILED = 0, SA_RELEASED_DIRTY = 1, SA_RELEASED_ZEROED = 2 };
SA_HIDDEN int sa_os_release(void *p, size_t bytes);
SA_HIDDEN void sa_os_write_stderr(const char *buf, size_t len);
SA_HIDDEN void sa_os_abort(void) __attribute__((noreturn));
SA_HIDDEN size_t sa_os_page_size(void);
SA_HIDDEN void sa_os_fail_after(uint64_t n);

/* Fixed-size metadata allocator over sa_os_alloc_meta (caller's lock). */
typedef struct sa_fixalloc {
    size_t size;
    size_t zero; /* bytes of a recycled object cleared (0: all of it) */
    void *freelist;
    char *chunk;
    size_t left;
    size_t inuse, sys;
} sa_fixalloc;
SA_HIDDEN void *sa_fixalloc_alloc(sa_fixalloc *f);
SA_HIDDEN void sa_fixalloc_free(sa_fixalloc *f, void *p);

/* ---- reports ------------------------------------------------------------------------ */

/* "spanalloc: CALL(): invalid pointer 0xADDR (REASON)" on stderr, then abort. */
SA_HIDDEN void sa_report_invalid(const char *call, const void *p, const char *reason)
    __attribute__((noreturn, cold));
SA_HIDDEN void sa_report_fatal(const char *msg) __attribute__((noreturn, cold));
/* Formats into buf: a tiny printf that never allocates (%s %d %zu %zx %p,
 * '-' and widths). */
SA_HIDDEN size_t sa_format(char *buf, size_t cap, const char *fmt, ...);
SA_HIDDEN size_t sa_vformat(char *buf, size_t cap, const char *fmt, va_list ap);

/* ---- init, options, stats ------------------------------------------------------------- */

SA_HIDDEN void sa_ensure_init(void);
SA_HIDDEN bool sa_is_ready(void);
SA_HIDDEN bool sa_init_in_progress_here(void);

typedef struct sa_options {
    int stats;           /* print the report at exit */
    int stats_json;      /* ... as JSON */
    int scavtrace;       /* one line per scavenger cycle */
    int scavenge_retain; /* percent of in-use pages kept on top (default 10) */
    size_t memory_limit; /* soft limit in bytes, 0 = none */
    char prof_dump_path[256]; /* write the heap profile here at exit */
} sa_options;
extern SA_HIDDEN sa_options sa_opts;
SA_HIDDEN void sa_options_init(void);
SA_HIDDEN int sa_options_parse(const char *list);
SA_HIDDEN int sa_option_apply(const char *key, size_t klen, const char *val, size_t vlen);

/* ---- scavenger (scavenger.c) ------------------------------------------------ */

enum { SA_SCAV_OFF = 0, SA_SCAV_EAGER = 1, SA_SCAV_BACKGROUND = 2 };

typedef struct sa_scavstats {
    uint64_t released_bg;     /* bytes released by the background thread */
    uint64_t released_eager;  /* bytes released synchronously on free/limit */
    uint64_t released_forced; /* bytes released by sa_scavenge */
    uint64_t madvise_calls;
    uint64_t ns;              /* time spent releasing */
    uint64_t cycles;          /* background cycles */
} sa_scavstats;

SA_HIDDEN int sa_scavenger_policy(void);
SA_HIDDEN const char *sa_scavenger_policy_name(void);
SA_HIDDEN const char *sa_madvise_name(void);
SA_HIDDEN void sa_scavstats_read(sa_scavstats *out);
SA_HIDDEN void sa_scavenger_after_alloc(void);
SA_HIDDEN void sa_scavenger_after_free(size_t npages);
/* Starts the background thread a free asked for. Called by the tiers where
 * their state is whole (pthread_create allocates and may come back into
 * them): the end of their slow paths, and sa_scavenger_after_alloc. */
SA_HIDDEN void sa_scavenger_kick(void);
SA_HIDDEN bool sa_scavenger_running(void); /* the background thread drains pending stacks */
SA_HIDDEN void sa_scavenger_fork_child(void);
SA_HIDDEN void sa_scavenger_init_options(void);
SA_HIDDEN void sa_mcentral_reclaim_all(void);

/* ---- heap check (check.c and each tier's walker) ---------------------------- */

/* Reports a broken invariant (one line, naming the span) and aborts. */
SA_HIDDEN void sa_check_fail(const char *what, const sa_span *s) __attribute__((noreturn, cold));
/* Marks s visited in this check; a second visit is a span in two places. */
SA_HIDDEN void sa_check_visit(const sa_span *s, uint32_t epoch, const char *where);
SA_HIDDEN void sa_check_span_bits(const sa_span *s);
/* Walkers; every allocator lock is held by the caller. */
SA_HIDDEN void sa_mcache_check(uint32_t epoch, uint64_t *cached_per_class);
SA_HIDDEN void sa_mcentral_check(uint32_t epoch, const uint64_t *cached_per_class);
SA_HIDDEN void sa_mheap_check(uint32_t epoch);
SA_HIDDEN void sa_lock_all(void);
SA_HIDDEN void sa_unlock_all(void);

/* ---- heap profiling (prof.c) ------------------------------------------------- */

#define SA_PROF_MAX_DEPTH 32

typedef struct sa_prof_bucket {
    struct sa_prof_bucket *next; /* hash chain */
    uint64_t hash;
    size_t size;
    int depth;
    void *stack[SA_PROF_MAX_DEPTH];
    uint64_t allocs, alloc_bytes, frees, free_bytes;
} sa_prof_bucket;

extern SA_HIDDEN size_t sa_prof_rate;
SA_HIDDEN void sa_prof_set_rate(size_t rate);
SA_HIDDEN bool sa_prof_active(sa_mcache *mc);
SA_HIDDEN void sa_prof_consume(sa_mcache *mc, unsigned spc, uint64_t nobjs, uint32_t elemsize);
SA_HIDDEN void sa_prof_mask_window(sa_mcache *mc, sa_span *s, unsigned spc);
SA_HIDDEN void sa_prof_restore_window(sa_mcache *mc, sa_span *s, unsigned spc);
SA_HIDDEN void sa_prof_reset_class(sa_mcache *mc, unsigned spc);
SA_HIDDEN bool sa_prof_sample_large(sa_mcache *mc, size_t size);
SA_HIDDEN sa_prof_bucket *sa_prof_record_alloc(sa_mcache *mc, size_t size, void *ra);
SA_HIDDEN void sa_prof_record_free(sa_prof_bucket *b);
SA_HIDDEN void sa_prof_dump_at_exit(void);
SA_HIDDEN void sa_prof_fork_prepare(void);
SA_HIDDEN void sa_prof_fork_parent(void);
SA_HIDDEN void sa_prof_fork_child(void);
/* A sampled small object: served from a span of its own (api.c). */
SA_HIDDEN void *sa_alloc_sampled(sa_mcache *mc, size_t size, void *ra, int *needzero);

/* Counters of threads that exited and of allocations made without an mcache
 * (atomics). */
extern SA_HIDDEN sa_threadstats sa_global_stats;
SA_HIDDEN void sa_stats_add_global(uint64_t *field, uint64_t v);
SA_HIDDEN void sa_stats_print_exit(void);

/* ---- collector hooks (alloc/gc/, built with SPANALLOC_GC) -------------------- */
#if defined(SA_GC) && SA_GC
SA_HIDDEN int sa_gc_option(const char *key, size_t klen, const char *val, size_t vlen);
SA_HIDDEN void sa_gc_fill_memstats(sa_memstats *out);
SA_HIDDEN void sa_gc_heap_check(uint32_t epoch);
#endif

#endif /* SA_INTERNAL_H */

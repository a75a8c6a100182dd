/*
 * api.c — the public entry points: the sa_ names and the unprefixed malloc
 * family the shared library exports so it can be the process malloc.
 *
 * Fast paths (static inline, at the top): a small malloc is a TLS load, a
 * size-class table load, and a count-trailing-zeros on the cached span's
 * allocCache; a free of an object whose span this thread owns (any of them,
 * see mcache.c) is a page map lookup, an index by multiply-shift, a bitmap
 * clear and a counter decrement. Anything else -- a window that ran dry, a
 * large block, a span owned by another thread or with remote frees to fold,
 * bad input -- leaves through one call to a slow path below them.
 *
 * Every exported name is a thin wrapper around an always-inline
 * implementation that is told the name of the call, so the one-line report
 * for bad input names the function the program called, and the unprefixed
 * names pay nothing over the sa_ ones.
 *
 * Semantics follow glibc's documentation: malloc(0) returns a unique
 * pointer; realloc(p, 0) frees p and returns NULL; sizes above PTRDIFF_MAX,
 * overflowing products and overflowing alignment padding fail with ENOMEM;
 * posix_memalign reports EINVAL for a bad alignment and leaves *memptr
 * alone; every block is 16-byte aligned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "track.h"

#define SA_INLINE static inline __attribute__((always_inline))
#define SA_EXPORT __attribute__((visibility("default")))
#define SA_MIN_ALIGN 16

/* ---- fast paths ------------------------------------------------------------- */

/* Next free slot of the span the thread caches for spc, or NULL. */
SA_INLINE void *alloc_fast(sa_mcache *mc, unsigned spc, sa_span **sp)
{
    sa_span *s = mc->alloc[spc];
    uint64_t cache = s->allocCache;
    if (SA_UNLIKELY(cache == 0))
        return NULL;
    *sp = s;
    return sa_span_take(s, cache);
}

static void free_slow(void *p, const char *call);

SA_INLINE void free_impl(void *p, const char *call)
{
    uintptr_t a = (uintptr_t)p;
    sa_span *s = sa_span_of(a);
    sa_mcache *mc = sa_tls_mcache;
    if (SA_LIKELY(s != NULL && sa_load_relaxed(&s->owner) == mc)) {
        uint64_t prod = (uint64_t)(a - s->base) * s->divmul;
        uint32_t idx = (uint32_t)(prod >> 32);
        uint64_t *w = &s->allocBits[idx >> 6];
        uint64_t m = (uint64_t)1 << (idx & 63);
        uint64_t bits = sa_load_relaxed(w);
        /* An object start (see sa_span_start_index) whose block is
         * allocated, in a span no other thread has freed into since the
         * owner last folded (else remoteFree must be consulted: slow). */
        if (SA_LIKELY((uint32_t)prod < s->divmul && (bits & m) &&
                      !sa_load_relaxed(&s->hasRemote))) {
            SA_TRACK_FREE(p);
            sa_store_relaxed(w, bits & ~m);
            SA_COUNTER_INC(&mc->stats.nfree[s->spanclass]);
            sa_owner_freed(mc, s);
            return;
        }
    }
    /* Only p goes along: passing s would keep it in a callee-saved register
     * across the fast path (a push and a pop on every free). */
    free_slow(p, call);
}

/* ---- slow paths --------------------------------------------------------------- */

static void *fail_nomem(void)
{
    errno = ENOMEM;
    return NULL;
}

/* Counts a large allocation (alloc) or free in the thread's counters, or in
 * the global ones for a thread without a cache. */
static void count_large(bool alloc, size_t nbytes)
{
    sa_mcache *mc = sa_tls_mcache;
    bool own = mc != &sa_mcache_empty && mc != &sa_mcache_dead;
    sa_threadstats *t = own ? &mc->stats : &sa_global_stats;
    uint64_t *count = alloc ? &t->nlarge_alloc : &t->nlarge_free;
    uint64_t *bytes = alloc ? &t->large_bytes_alloc : &t->large_bytes_free;
    if (own) {
        sa_store_relaxed(count, sa_load_relaxed(count) + 1);
        sa_store_relaxed(bytes, sa_load_relaxed(bytes) + nbytes);
    } else {
        sa_stats_add_global(count, 1);
        sa_stats_add_global(bytes, nbytes);
    }
}

/* A large block resized in place: its bytes change, the block count not. */
static void count_large_resize(size_t oldbytes, size_t newbytes)
{
    sa_mcache *mc = sa_tls_mcache;
    bool own = mc != &sa_mcache_empty && mc != &sa_mcache_dead;
    sa_threadstats *t = own ? &mc->stats : &sa_global_stats;
    uint64_t *field = newbytes > oldbytes ? &t->large_bytes_alloc : &t->large_bytes_free;
    uint64_t delta = newbytes > oldbytes ? newbytes - oldbytes : oldbytes - newbytes;
    if (own)
        sa_store_relaxed(field, sa_load_relaxed(field) + delta);
    else
        sa_stats_add_global(field, delta);
}

/* A small object of span class spc; *needzero tells whether it may be dirty. */
static inline void *alloc_small_slow(unsigned spc, int *needzero, void *ra)
{
    sa_mcache *mc = sa_tls_mcache;
    if (mc == &sa_mcache_empty)
        mc = sa_mcache_for_thread();
    void *p;
    if (mc == NULL || mc == &sa_mcache_dead) {
        if (!mc)
            sa_ensure_init();
        p = sa_mcentral_alloc_one(&sa_central[spc], needzero);
        if (p) {
            sa_stats_add_global(&sa_global_stats.nmalloc[spc], 1);
        }
    } else {
        sa_span *s;
        p = alloc_fast(mc, spc, &s);
        if (p)
            *needzero = s->needzero;
        else
            p = sa_mcache_refill_alloc(mc, spc, needzero, ra);
    }
    if (!p)
        return fail_nomem();
    return p;
}

/* A large block of at least size bytes aligned to align (0: page). */
static SA_NOINLINE void *alloc_large(size_t size, size_t align, bool zero, void *ra)
{
    sa_ensure_init();
    size_t npages = (size + SA_PAGE_SIZE - 1) >> SA_PAGE_SHIFT;
    if (npages == 0)
        npages = 1;
    sa_span *s = sa_mheap_alloc_large(npages, align);
    if (!s)
        return fail_nomem();
    void *p = (void *)s->base;
    sa_scavenger_after_alloc();
    count_large(true, npages << SA_PAGE_SHIFT);
    sa_mcache *mc = sa_tls_mcache;
    if (mc != &sa_mcache_empty && mc != &sa_mcache_dead && sa_prof_sample_large(mc, size))
        s->prof = sa_prof_record_alloc(mc, size, ra);
    SA_TRACK_MALLOC(p, npages << SA_PAGE_SHIFT, zero || s->largezero);
    if (zero && !s->largezero)
        memset(p, 0, size);
    return p;
}

/* A sampled small object (prof.c): a span of its own, so that its free
 * reaches the slow path and is recorded. */
void *sa_alloc_sampled(sa_mcache *mc, size_t size, void *ra, int *needzero)
{
    size_t npages = (size + SA_PAGE_SIZE - 1) >> SA_PAGE_SHIFT;
    sa_span *s = sa_mheap_alloc_large(npages, 0);
    if (!s)
        return NULL;
    count_large(true, npages << SA_PAGE_SHIFT);
    s->prof = sa_prof_record_alloc(mc, size, ra);
    *needzero = !s->largezero;
    return (void *)s->base;
}

/* malloc for everything the fast path did not serve. */
static SA_NOINLINE void *malloc_slow(size_t size, bool zero, void *ra)
{
    if (SA_UNLIKELY(size > PTRDIFF_MAX))
        return fail_nomem();
    if (size > SA_MAX_SMALL_SIZE)
        return alloc_large(size, 0, zero, ra);
    unsigned spc = sa_size_to_class(size);
    int needzero = 1;
    void *p = alloc_small_slow(spc, &needzero, ra);
    if (p) {
        SA_TRACK_MALLOC(p, sa_class_to_size[spc], zero || !needzero);
        if (zero && needzero)
            memset(p, 0, size);
    }
    return p;
}

/* malloc of a small size whose cached window is empty: straight to the
 * refill. Takes the size, not the class: keeping the class for this call
 * would cost the fast path a register move. */
static SA_NOINLINE void *malloc_small_miss(size_t size, void *ra)
{
    unsigned spc = sa_size_to_class(size);
    int needzero = 1;
    void *p = alloc_small_slow(spc, &needzero, ra);
    if (p)
        SA_TRACK_MALLOC(p, sa_class_to_size[spc], !needzero);
    return p;
}

/* malloc; ra is the program's call site, for the heap profile. */
SA_INLINE void *malloc_ra(size_t size, void *ra)
{
    /* Every small class is served here; the classes above 1 KiB through the
     * second table (a compare and a branch more for them only). Before, they
     * always went through malloc_slow: +70 instructions per pair at 4 KiB. */
    unsigned spc;
    if (SA_LIKELY(size <= SA_SMALL_SIZE_MAX))
        spc = sa_size_to_class16[(size + 15) >> 4];
    else if (size <= SA_MAX_SMALL_SIZE)
        spc = sa_size_to_class128[(size - SA_SMALL_SIZE_MAX + SA_LARGE_SIZE_DIV - 1) /
                                  SA_LARGE_SIZE_DIV];
    else
        return malloc_slow(size, false, ra);
    sa_span *s = sa_tls_mcache->alloc[spc];
    uint64_t cache = s->allocCache;
    if (SA_LIKELY(cache != 0)) {
        void *p = sa_span_take(s, cache);
        SA_TRACK_MALLOC(p, s->elemsize, 0);
        return p;
    }
    return malloc_small_miss(size, ra);
}

/* Inlined into an exported function: the return address is the program's. */
#define SA_RA __builtin_return_address(0)
#define malloc_impl(size) malloc_ra((size), SA_RA)

SA_INLINE void *calloc_impl(size_t n, size_t size)
{
    size_t total;
    if (SA_UNLIKELY(__builtin_mul_overflow(n, size, &total)))
        return fail_nomem();
    if (SA_LIKELY(total <= SA_SMALL_SIZE_MAX)) {
        sa_span *s;
        void *p = alloc_fast(sa_tls_mcache, sa_size_to_class16[(total + 15) >> 4], &s);
        if (SA_LIKELY(p != NULL)) {
            SA_TRACK_MALLOC(p, s->elemsize, !s->needzero);
            if (s->needzero)
                memset(p, 0, total);
            return p;
        }
    }
    return malloc_slow(total, true, SA_RA);
}

/* Describes why p, which the page map does not know, is not ours. */
static void report_unknown(void *p, const char *call)
{
    uintptr_t a = (uintptr_t)p;
    if (sa_mheap_arena_of(a) != NULL)
        sa_report_invalid(call, p, "double free or never allocated: no block at this address");
    sa_report_invalid(call, p, "not allocated by spanalloc");
}

/* Validates p for a call that frees or resizes it; returns its span. */
static sa_span *checked_span(void *p, sa_span *s, const char *call, uint32_t *idxp)
{
    if (!s)
        report_unknown(p, call);
    uintptr_t a = (uintptr_t)p;
#if defined(SA_GC) && SA_GC
    /* Spans the collector owns carry its mark bits. */
    if (sa_load_relaxed(&s->gcmarkBits) != NULL)
        sa_report_invalid(call, p, "object of the garbage collector (sa_gc_alloc), not malloc");
#endif
    if (sa_load_relaxed(&s->spanclass) == 0) {
        if (a != s->base)
            sa_report_invalid(call, p, "interior pointer into a large block");
        *idxp = 0;
        return s;
    }
    int64_t i = sa_span_start_index(s, a - s->base);
    if (i < 0)
        sa_report_invalid(call, p, "interior pointer into a small block");
    uint32_t idx = (uint32_t)i;
    uint64_t m = (uint64_t)1 << (idx & 63);
    if (!(sa_load_relaxed(&s->allocBits[idx >> 6]) & m))
        sa_report_invalid(call, p, "not an allocated block: double free or a pointer never returned");
    if (sa_load_relaxed(&s->remoteFree[idx >> 6]) & m)
        sa_report_invalid(call, p, "double free: block already freed by another thread");
    *idxp = idx;
    return s;
}

static void free_large(sa_span *s)
{
    size_t bytes = s->npages << SA_PAGE_SHIFT;
    if (s->prof)
        sa_prof_record_free(s->prof);
    SA_TRACK_FREE((void *)s->base);
    count_large(false, bytes);
    sa_mheap_free_span(s);
    sa_scavenger_kick();
}

static SA_NOINLINE void free_slow(void *p, const char *call)
{
    if (p == NULL)
        return;
    uint32_t idx;
    sa_span *s = checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    if (s->spanclass == 0) {
        free_large(s);
        return;
    }
    sa_mcache *mc = sa_tls_mcache;
    /* A thread that only frees (a consumer) gets a cache too: its counters
     * are then plain stores, not atomics on the global ones (3% of a
     * producer/consumer profile). */
    if (mc == &sa_mcache_empty) {
        sa_mcache *own = sa_mcache_for_thread();
        if (own != NULL)
            mc = own;
    }
    /* Read before the free is published: once it is, the span may be
     * emptied and recycled by another thread. */
    unsigned spc = s->spanclass;
    SA_TRACK_FREE(p);
    if (sa_load_relaxed(&s->owner) == mc) {
        /* Our own span, with remote frees to fold first (or a build that
         * skips the fast path). */
        if (sa_load_relaxed(&s->hasRemote))
            s->allocCount -= sa_span_merge_remote(s, call);
        uint64_t *w = &s->allocBits[idx >> 6];
        sa_store_relaxed(w, sa_load_relaxed(w) & ~((uint64_t)1 << (idx & 63)));
        sa_owner_freed(mc, s);
    } else {
        sa_free_remote(s, idx, call, p);
    }
    if (mc != &sa_mcache_empty && mc != &sa_mcache_dead)
        SA_COUNTER_INC(&mc->stats.nfree[spc]);
    else
        sa_stats_add_global(&sa_global_stats.nfree[spc], 1);
    sa_scavenger_kick();
}

static size_t usable_of(const sa_span *s)
{
    return s->spanclass == 0 ? s->npages << SA_PAGE_SHIFT : s->elemsize;
}

static SA_NOINLINE void *realloc_slow(void *p, size_t size, const char *call, void *ra)
{
    if (p == NULL)
        return malloc_ra(size, ra);
    if (size == 0) {
        free_impl(p, call);
        return NULL;
    }
    uint32_t idx;
    sa_span *s = checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    if (SA_UNLIKELY(size > PTRDIFF_MAX))
        return fail_nomem();
    size_t usable = usable_of(s);
    if (s->spanclass != 0) {
        /* Small: stay when the new size fits and is not far smaller. */
        if (size <= usable && (size > usable / 2 || usable <= 64))
            return p;
    } else if (size > SA_MAX_SMALL_SIZE / 2) {
        size_t npages = (size + SA_PAGE_SIZE - 1) >> SA_PAGE_SHIFT;
        if (npages <= s->npages) {
            if (npages < s->npages) {
                SA_TRACK_RESIZE(p, usable, npages << SA_PAGE_SHIFT);
                count_large_resize(usable, npages << SA_PAGE_SHIFT);
                sa_mheap_shrink_large(s, npages);
                sa_scavenger_kick();
            }
            return p;
        }
        if (sa_mheap_grow_large_in_place(s, npages)) {
            SA_TRACK_RESIZE(p, usable, npages << SA_PAGE_SHIFT);
            count_large_resize(usable, npages << SA_PAGE_SHIFT);
            return p;
        }
    }
    void *q = malloc_ra(size, ra);
    if (!q)
        return NULL;
    memcpy(q, p, usable < size ? usable : size);
    free_impl(p, call);
    return q;
}

SA_INLINE void *realloc_impl(void *p, size_t size, const char *call)
{
    return realloc_slow(p, size, call, SA_RA);
}

static inline bool is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* align: a power of two. */
static SA_NOINLINE void *aligned_impl(size_t align, size_t size, void *ra)
{
    if (align <= SA_MIN_ALIGN)
        return malloc_ra(size, ra);
    if (SA_UNLIKELY(size > PTRDIFF_MAX || size + align < size || size + align > PTRDIFF_MAX))
        return fail_nomem();
    if (size <= SA_MAX_SMALL_SIZE && align <= SA_PAGE_SIZE) {
        /* Objects sit at multiples of their size from a page-aligned base:
         * a class whose size is a multiple of align gives aligned objects. */
        for (unsigned sc = sa_size_to_class(size); sc < SA_NUM_SIZE_CLASSES; sc++) {
            if (sa_class_to_size[sc] % align == 0) {
                int needzero;
                void *p = alloc_small_slow(sc, &needzero, ra);
                if (p)
                    SA_TRACK_MALLOC(p, sa_class_to_size[sc], !needzero);
                return p;
            }
        }
    }
    return alloc_large(size, align, false, ra);
}

SA_INLINE size_t usable_size_impl(void *p, const char *call)
{
    if (p == NULL)
        return 0;
    uint32_t idx;
    sa_span *s = checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    return usable_of(s);
}

SA_INLINE void free_sized_impl(void *p, size_t size, size_t align, const char *call)
{
    if (p == NULL)
        return;
    uint32_t idx;
    sa_span *s = checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    if (size > usable_of(s)) {
        char reason[96];
        sa_format(reason, sizeof reason, "size %zu larger than the block's %zu bytes", size,
                  usable_of(s));
        sa_report_invalid(call, p, reason);
    }
    if (align && ((uintptr_t)p & (align - 1)))
        sa_report_invalid(call, p, "block does not have the stated alignment");
    free_impl(p, call);
}

/* ---- debug checks (SPANALLOC_DEBUG) -------------------------------------------
 * Every block gets a 16-byte trailer inside its usable size: canary bytes
 * right after the requested size and, in the last 8 bytes, the requested
 * size keyed with the block's address. free checks both (heap overflow) and
 * fills a small block with SA_DBG_FREED; handing a small slot out again
 * checks it still holds only that pattern (or zeros, for memory never used:
 * dirty spans are filled with the pattern when created), so a write after
 * free is reported. Reports are the usual one line, then abort. */
#ifndef SA_DEBUG
#define SA_DEBUG 0
#endif
#if SA_DEBUG
#define SA_DBG_EXTRA 16
#define SA_DBG_CANARY 0xca
#define SA_DBG_KEY 0x5a17a11c0ffee5e1ull

static size_t dbg_block_usable(void *p)
{
    return usable_of(sa_span_of((uintptr_t)p));
}

/* Bytes of a slot handed out again: all zero or all the freed pattern. */
static void dbg_check_fresh(void *p, const char *call)
{
    sa_span *s = sa_span_of((uintptr_t)p);
    if (!s || s->spanclass == 0)
        return;
    const unsigned char *b = p;
    unsigned char first = b[0];
    if (first != 0 && first != SA_DBG_FREED)
        sa_report_invalid(call, p, "write after free: a freed block was modified");
    for (size_t i = 1; i < s->elemsize; i++)
        if (b[i] != first)
            sa_report_invalid(call, (void *)(b + i), "write after free: a freed block was modified");
}

static void *dbg_mark(void *p, size_t size)
{
    if (!p)
        return NULL;
    size_t u = dbg_block_usable(p);
    memset((char *)p + size, SA_DBG_CANARY, u - 8 - size);
    uint64_t t = (uint64_t)size ^ SA_DBG_KEY ^ (uint64_t)(uintptr_t)p;
    memcpy((char *)p + u - 8, &t, 8);
    return p;
}

/* The requested size of p, after checking its trailer. */
static size_t dbg_size(void *p, const char *call)
{
    size_t u = dbg_block_usable(p);
    uint64_t t;
    memcpy(&t, (char *)p + u - 8, 8);
    uint64_t size = t ^ SA_DBG_KEY ^ (uint64_t)(uintptr_t)p;
    if (size + SA_DBG_EXTRA > u)
        sa_report_invalid(call, p, "heap overflow: the block's trailer was overwritten");
    const unsigned char *c = (const unsigned char *)p + size;
    for (size_t i = 0; i < u - 8 - size; i++)
        if (c[i] != SA_DBG_CANARY)
            sa_report_invalid(call, p, "heap overflow: bytes written past the requested size");
    return (size_t)size;
}

static void *dbg_malloc(size_t size, void *ra)
{
    if (size > PTRDIFF_MAX - SA_DBG_EXTRA)
        return fail_nomem();
    void *p = malloc_ra(size + SA_DBG_EXTRA, ra);
    if (p)
        dbg_check_fresh(p, "malloc");
    return dbg_mark(p, size);
}

static void *dbg_calloc(size_t n, size_t size, void *ra)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return fail_nomem();
    void *p = dbg_malloc(total, ra);
    if (p)
        memset(p, 0, total);
    return p;
}

static void dbg_free(void *p, const char *call)
{
    if (!p)
        return;
    uint32_t idx;
    sa_span *s = checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    dbg_size(p, call);
    if (s->spanclass != 0)
        memset(p, SA_DBG_FREED, s->elemsize);
    free_impl(p, call);
}

static void *dbg_realloc(void *p, size_t size, const char *call, void *ra)
{
    if (!p)
        return dbg_malloc(size, ra);
    if (size == 0) {
        dbg_free(p, call);
        return NULL;
    }
    uint32_t idx;
    checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    size_t old = dbg_size(p, call);
    void *q = dbg_malloc(size, ra);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    dbg_free(p, call);
    return q;
}

static void *dbg_aligned(size_t align, size_t size, void *ra)
{
    if (size > PTRDIFF_MAX - SA_DBG_EXTRA)
        return fail_nomem();
    void *p = aligned_impl(align, size + SA_DBG_EXTRA, ra);
    if (p)
        dbg_check_fresh(p, "aligned_alloc");
    return dbg_mark(p, size);
}

static size_t dbg_usable_size(void *p, const char *call)
{
    if (!p)
        return 0;
    uint32_t idx;
    checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    return dbg_size(p, call);
}

static void dbg_free_sized(void *p, size_t size, size_t align, const char *call)
{
    if (!p)
        return;
    uint32_t idx;
    checked_span(p, sa_span_of((uintptr_t)p), call, &idx);
    size_t real = dbg_size(p, call);
    if (size != real) {
        char reason[96];
        sa_format(reason, sizeof reason, "size %zu is not the block's %zu bytes", size, real);
        sa_report_invalid(call, p, reason);
    }
    if (align && ((uintptr_t)p & (align - 1)))
        sa_report_invalid(call, p, "block does not have the stated alignment");
    dbg_free(p, call);
}

#undef malloc_impl
#define malloc_impl(size) dbg_malloc((size), SA_RA)
#define calloc_impl(n, size) dbg_calloc((n), (size), SA_RA)
#define free_impl(p, call) dbg_free((p), (call))
#define realloc_impl(p, size, call) dbg_realloc((p), (size), (call), SA_RA)
#define free_sized_impl(p, size, align, call) dbg_free_sized((p), (size), (align), (call))
#define aligned_impl(align, size, ra) dbg_aligned((align), (size), (ra))
#define usable_size_impl(p, call) dbg_usable_size((p), (call))
#endif /* SA_DEBUG */

/* ---- exported entry points ---------------------------------------------------- */

SA_EXPORT void *sa_malloc(size_t size) { return malloc_impl(size); }
SA_EXPORT void *sa_calloc(size_t n, size_t size) { return calloc_impl(n, size); }
SA_EXPORT void sa_free(void *p) { free_impl(p, "sa_free"); }
SA_EXPORT void *sa_realloc(void *p, size_t size) { return realloc_impl(p, size, "sa_realloc"); }

SA_EXPORT void *sa_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return fail_nomem();
    return realloc_impl(p, total, "sa_reallocarray");
}

SA_EXPORT void sa_free_sized(void *p, size_t size)
{
    free_sized_impl(p, size, 0, "sa_free_sized");
}

SA_EXPORT void sa_free_aligned_sized(void *p, size_t align, size_t size)
{
    free_sized_impl(p, size, is_pow2(align) ? align : 0, "sa_free_aligned_sized");
}

SA_EXPORT int sa_posix_memalign(void **memptr, size_t align, size_t size)
{
    if (!is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned_impl(align, size, SA_RA);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

SA_EXPORT void *sa_aligned_alloc(size_t align, size_t size)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_impl(align, size, SA_RA);
}

SA_EXPORT void *sa_memalign(size_t align, size_t size)
{
    /* glibc: a non power of two is rounded up; absurd alignments fail. */
    if (align > (SIZE_MAX >> 1) + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(align)) {
        size_t a = SA_MIN_ALIGN;
        while (a < align)
            a <<= 1;
        align = a;
    }
    return aligned_impl(align, size, SA_RA);
}

SA_EXPORT void *sa_valloc(size_t size)
{
    return aligned_impl(sa_os_page_size(), size, SA_RA);
}

SA_EXPORT void *sa_pvalloc(size_t size)
{
    size_t pg = sa_os_page_size();
    if (size > PTRDIFF_MAX)
        return fail_nomem();
    size_t rounded = (size + pg - 1) & ~(pg - 1);
    if (rounded == 0)
        rounded = pg;
    return aligned_impl(pg, rounded, SA_RA);
}

SA_EXPORT size_t sa_malloc_usable_size(void *p)
{
    return usable_size_impl(p, "sa_malloc_usable_size");
}

#ifndef SA_OVERRIDE
#define SA_OVERRIDE 1
#endif
#if SA_OVERRIDE
/* ---- the process malloc -------------------------------------------------------
 * Every name a program or glibc itself may call, so pointers from two
 * allocators never mix. C++ operator new/delete in libstdc++ call malloc and
 * free, so they land here too. */

SA_EXPORT void *malloc(size_t size) { return malloc_impl(size); }
SA_EXPORT void *calloc(size_t n, size_t size) { return calloc_impl(n, size); }
SA_EXPORT void free(void *p) { free_impl(p, "free"); }
SA_EXPORT void cfree(void *p) { free_impl(p, "cfree"); }
SA_EXPORT void *realloc(void *p, size_t size) { return realloc_impl(p, size, "realloc"); }

SA_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return fail_nomem();
    return realloc_impl(p, total, "reallocarray");
}

SA_EXPORT void free_sized(void *p, size_t size) { free_sized_impl(p, size, 0, "free_sized"); }

SA_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    free_sized_impl(p, size, is_pow2(align) ? align : 0, "free_aligned_sized");
}

SA_EXPORT int posix_memalign(void **memptr, size_t align, size_t size)
{
    return sa_posix_memalign(memptr, align, size);
}

SA_EXPORT void *aligned_alloc(size_t align, size_t size) { return sa_aligned_alloc(align, size); }
SA_EXPORT void *memalign(size_t align, size_t size) { return sa_memalign(align, size); }
SA_EXPORT void *valloc(size_t size) { return sa_valloc(size); }
SA_EXPORT void *pvalloc(size_t size) { return sa_pvalloc(size); }

SA_EXPORT size_t malloc_usable_size(void *p)
{
    return usable_size_impl(p, "malloc_usable_size");
}

/* glibc's internal names. */
SA_EXPORT void *__libc_malloc(size_t size) { return malloc_impl(size); }
SA_EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc_impl(n, size); }
SA_EXPORT void *__libc_realloc(void *p, size_t size) { return realloc_impl(p, size, "realloc"); }
SA_EXPORT void __libc_free(void *p) { free_impl(p, "free"); }
SA_EXPORT void *__libc_memalign(size_t align, size_t size) { return sa_memalign(align, size); }
SA_EXPORT void *__libc_valloc(size_t size) { return sa_valloc(size); }
SA_EXPORT void *__libc_pvalloc(size_t size) { return sa_pvalloc(size); }

SA_EXPORT int __posix_memalign(void **memptr, size_t align, size_t size)
{
    return sa_posix_memalign(memptr, align, size);
}
#endif /* SA_OVERRIDE */

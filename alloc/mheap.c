/*
 * mheap.c — the page heap.
 *
 * Owns: the arenas (64 MiB units of reserved address space), their metadata
 * (sa_heaparena: the page -> span map and the page allocator's bitmaps), the
 * arena index that makes pointer -> span lookup O(1), the page allocator
 * state, and the pool of span structs.
 *
 * Address space is reserved incrementally, one or a few arenas at a time,
 * right after the previous one when the kernel agrees (so large blocks can
 * span adjacent arenas); a failed reservation is an out-of-memory (NULL with
 * ENOMEM at the entry point), never a crash. Fresh arena pages are counted
 * as released (they read as zero), so spans carved from them need no zeroing.
 *
 * Invariants:
 *  - every page of an in-use span maps to that span in its arena's spans[];
 *    free pages map to NULL. So a pointer into a freed large block or into
 *    free pages is recognised as "not allocated".
 *  - an arena's metadata is never freed, and sa_arena_index entries, once
 *    set, never change: a lock-free reader can always dereference them.
 *  - span structs are type-stable: they are recycled through the pool but
 *    never unmapped, so a late reader of a recycled struct reads a span
 *    (mcentral.c relies on this for its notification protocol).
 *
 * Locking: one mutex (heap_lock) guards everything here. Callers never hold
 * it while calling into mcentral or mcache. Large allocations and frees take
 * it; small allocation reaches it only when an mcentral needs a new span.
 * scav_lock (taken before heap_lock) admits one releaser at a time -- the
 * background thread, an eager free, a memory-limit release, sa_scavenge --
 * so at most one run is in flight while heap_lock is dropped around madvise
 * (marked in use, mapped to no span); the fork handlers and the heap check
 * take it too, so neither ever sees a run in flight.
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"
#include "track.h"

SA_HIDDEN sa_heaparena *sa_arena_index[SA_ARENA_INDEX_LEN];

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t scav_lock = PTHREAD_MUTEX_INITIALIZER; /* before heap_lock */
static sa_pagealloc pages;          /* under heap_lock */
static sa_fixalloc spanalloc_pool = {.size = sizeof(sa_span)};
static sa_fixalloc arenameta_pool = {.size = sizeof(sa_heaparena)};
static uintptr_t next_arena_hint;   /* where the next reservation should go */
static uint64_t pages_faulted;      /* released pages handed out again */

/* Pages reused after the scavenger gave them back (fresh arena pages have no
 * memory either, but faulting them in is growth, not a refault). */
static void count_faults(const sa_pagecounts *pc)
{
    pages_faulted += pc->refault;
}
static size_t arena_bytes_reserved; /* heap address space reserved */

void sa_mheap_init(void)
{
    /* Everything is statically initialised; this is where a first hint for
     * the heap could be chosen. Leave it to the kernel: a fixed hint fights
     * ASLR and sanitizers. */
}

sa_heaparena *sa_mheap_arena_of(uintptr_t addr)
{
    if ((addr >> SA_ARENA_SHIFT) >= SA_ARENA_INDEX_LEN)
        return NULL;
    return sa_load_relaxed(&sa_arena_index[addr >> SA_ARENA_SHIFT]);
}

/* Reserves enough arenas for npages more pages. heap_lock held. */
static bool heap_grow(size_t npages)
{
    size_t narenas = (npages + SA_PAGES_PER_ARENA - 1) / SA_PAGES_PER_ARENA;
    if (narenas == 0)
        narenas = 1;
    if (narenas > (SIZE_MAX >> SA_ARENA_SHIFT))
        return false;
    size_t bytes = narenas << SA_ARENA_SHIFT;
    void *p = sa_os_reserve(bytes, SA_ARENA_BYTES, (void *)next_arena_hint);
    if (!p)
        return false;
    uintptr_t base = (uintptr_t)p;
    if (((base + bytes - 1) >> SA_ARENA_SHIFT) >= SA_ARENA_INDEX_LEN) {
        sa_os_unmap(p, bytes);
        return false;
    }
    SA_TRACK_NOACCESS(p, bytes);
    for (size_t i = 0; i < narenas; i++) {
        sa_heaparena *a = sa_fixalloc_alloc(&arenameta_pool);
        if (a)
            a->base = base + (i << SA_ARENA_SHIFT); /* add_arena sorts by base */
        if (!a || !sa_pages_add_arena(&pages, a)) {
            /* Keep the arenas already registered; give back the rest. */
            if (a)
                sa_fixalloc_free(&arenameta_pool, a);
            uintptr_t rest = base + (i << SA_ARENA_SHIFT);
            sa_os_unmap((void *)rest, bytes - (i << SA_ARENA_SHIFT));
            return i > 0 && i * SA_PAGES_PER_ARENA >= npages;
        }
        sa_store_release(&sa_arena_index[a->base >> SA_ARENA_SHIFT], a);
        arena_bytes_reserved += SA_ARENA_BYTES;
    }
    next_arena_hint = base + bytes;
    return true;
}

/* Allocates npages (heap_lock held), growing the heap if needed. */
static uintptr_t heap_alloc_pages(size_t npages, sa_pagecounts *pc)
{
    uintptr_t addr = sa_pages_alloc(&pages, npages, pc);
    if (addr == 0 && heap_grow(npages))
        addr = sa_pages_alloc(&pages, npages, pc);
    if (addr)
        count_faults(pc);
    return addr;
}

static void map_span_pages(sa_span *s, sa_span *value)
{
    uintptr_t addr = s->base;
    size_t n = s->npages;
    while (n > 0) {
        sa_heaparena *a = sa_arena_index[addr >> SA_ARENA_SHIFT];
        size_t first = (addr - a->base) >> SA_PAGE_SHIFT;
        size_t k = SA_PAGES_PER_ARENA - first;
        if (k > n)
            k = n;
        for (size_t i = 0; i < k; i++)
            sa_store_release(&a->spans[first + i], value);
        addr += k << SA_PAGE_SHIFT;
        n -= k;
    }
}

static sa_span *new_span_struct(void)
{
    sa_span *s = sa_fixalloc_alloc(&spanalloc_pool);
    return s;
}

/* Recycles a span struct. pending/pendingNext are left alone: the struct may
 * still sit on an mcentral's pending stack, whose processor clears them. */
static void free_span_struct(sa_span *s)
{
    sa_store_sc(&s->state, SA_SPAN_FREE);
    sa_store_relaxed(&s->owner, NULL);
    s->next = spanalloc_pool.freelist;
    spanalloc_pool.freelist = s;
    spanalloc_pool.inuse -= sizeof(sa_span);
}

static sa_span *take_span_struct(void)
{
    sa_span *s = spanalloc_pool.freelist;
    if (s) {
        spanalloc_pool.freelist = s->next;
        spanalloc_pool.inuse += sizeof(sa_span);
        /* Keep pending/pendingNext: the struct may still sit on an
         * mcentral's pending stack, whose drainer clears them. */
        uint8_t pending = sa_load_sc(&s->pending);
        sa_span *pnext = s->pendingNext;
        memset(s, 0, offsetof(sa_span, pendingNext));
        s->gcmarkBits = NULL;
        s->pendingNext = pnext;
        sa_store_sc(&s->pending, pending);
        return s;
    }
    return new_span_struct();
}

sa_span *sa_mheap_alloc_small_span(unsigned spc)
{
    unsigned sc = sa_spanclass_sizeclass(spc);
    size_t npages = sa_class_to_npages[sc];
    sa_pagecounts pc;
    pthread_mutex_lock(&heap_lock);
    sa_span *s = take_span_struct();
    uintptr_t addr = s ? heap_alloc_pages(npages, &pc) : 0;
    if (!addr) {
        if (s)
            free_span_struct(s);
        pthread_mutex_unlock(&heap_lock);
        return NULL;
    }
    s->base = addr;
    s->npages = npages;
    s->needzero = pc.zeroed != npages;
    sa_span_init_small(s, spc);
    /* On its way to an mcentral or mcache: no structure holds it until the
     * caller files it (a fork child inherits it this way, as a leak the
     * heap check accepts, never as a span in two places). */
    sa_store_sc(&s->state, SA_SPAN_TRANSIT);
    map_span_pages(s, s);
    pthread_mutex_unlock(&heap_lock);
#if defined(SA_DEBUG) && SA_DEBUG
    /* Debug builds check that a slot handed out holds zeros (never used) or
     * the freed pattern: give dirty pages the pattern. */
    if (s->needzero)
        memset((void *)addr, SA_DBG_FREED, npages << SA_PAGE_SHIFT);
#endif
    SA_TRACK_NOACCESS((void *)addr, npages << SA_PAGE_SHIFT);
    return s;
}

sa_span *sa_mheap_alloc_large(size_t npages, size_t align)
{
    size_t alignpages = align > SA_PAGE_SIZE ? align >> SA_PAGE_SHIFT : 1;
    size_t extra = alignpages - 1;
    if (npages + extra < npages)
        return NULL;
    sa_pagecounts pc;
    pthread_mutex_lock(&heap_lock);
    sa_span *s = take_span_struct();
    uintptr_t addr = s ? heap_alloc_pages(npages + extra, &pc) : 0;
    if (!addr) {
        if (s)
            free_span_struct(s);
        pthread_mutex_unlock(&heap_lock);
        return NULL;
    }
    if (extra) {
        /* Trim the over-allocation to an aligned run. */
        uintptr_t start = (addr + align - 1) & ~(uintptr_t)(align - 1);
        size_t head = (start - addr) >> SA_PAGE_SHIFT;
        size_t tail = extra - head;
        if (head)
            sa_pages_free(&pages, addr, head);
        if (tail)
            sa_pages_free(&pages, start + (npages << SA_PAGE_SHIFT), tail);
        addr = start;
        /* The counts covered the whole run; be conservative. */
        pc.zeroed = 0;
    }
    s->base = addr;
    s->npages = npages;
    s->spanclass = 0;
    s->largezero = pc.zeroed == npages;
    s->nelems = 1;
    s->state = SA_SPAN_LARGE;
    map_span_pages(s, s);
    pthread_mutex_unlock(&heap_lock);
    return s;
}

void sa_mheap_free_span(sa_span *s)
{
    size_t npages = s->npages;
    SA_TRACK_NOACCESS((void *)s->base, npages << SA_PAGE_SHIFT);
    pthread_mutex_lock(&heap_lock);
    map_span_pages(s, NULL);
    sa_pages_free(&pages, s->base, npages);
    free_span_struct(s);
    pthread_mutex_unlock(&heap_lock);
    sa_scavenger_after_free(npages);
}

bool sa_mheap_grow_large_in_place(sa_span *s, size_t npages)
{
    size_t add = npages - s->npages;
    sa_pagecounts pc;
    pthread_mutex_lock(&heap_lock);
    uintptr_t end = s->base + (s->npages << SA_PAGE_SHIFT);
    bool ok = sa_pages_alloc_at(&pages, end, add, &pc);
    if (ok) {
        count_faults(&pc);
        size_t old = s->npages;
        s->npages = npages;
        /* Map the new pages only. */
        sa_span tmp = {.base = end, .npages = add};
        map_span_pages(&tmp, s);
        (void)old;
    }
    pthread_mutex_unlock(&heap_lock);
    return ok;
}

void sa_mheap_shrink_large(sa_span *s, size_t npages)
{
    size_t cut = s->npages - npages;
    uintptr_t tailaddr = s->base + (npages << SA_PAGE_SHIFT);
    SA_TRACK_NOACCESS((void *)tailaddr, cut << SA_PAGE_SHIFT);
    pthread_mutex_lock(&heap_lock);
    sa_span tmp = {.base = tailaddr, .npages = cut};
    map_span_pages(&tmp, NULL);
    sa_pages_free(&pages, tailaddr, cut);
    s->npages = npages;
    pthread_mutex_unlock(&heap_lock);
    sa_scavenger_after_free(cut);
}

void sa_mheap_stats(sa_pageheap_stats *out)
{
    pthread_mutex_lock(&heap_lock);
    out->arenas = pages.narenas;
    out->pages_total = pages.pages_total;
    out->pages_inuse = pages.pages_inuse;
    out->pages_released = pages.pages_released;
    out->pages_free_backed = pages.pages_free_backed + pages.pages_scavenging;
    out->pages_faulted = pages_faulted;
    out->nallocs = pages.nallocs;
    out->span_inuse = spanalloc_pool.inuse;
    out->span_sys = spanalloc_pool.sys;
    out->arena_meta_sys = arenameta_pool.sys + pages.cap * sizeof(void *);
    pthread_mutex_unlock(&heap_lock);
}

/* Releases up to maxpages free pages to the kernel, oldest-idle chunks and
 * largest runs first, in batches of SA_SCAV_BATCH_PAGES; only chunks whose
 * last free is at or before idle_epoch. The lock is dropped around each
 * madvise; the run is marked in use meanwhile. Returns pages released. */
size_t sa_mheap_scavenge(size_t maxpages, uint64_t idle_epoch, uint64_t *ncalls)
{
    size_t done = 0;
    pthread_mutex_lock(&scav_lock);
    while (done < maxpages) {
        size_t want = maxpages - done;
        if (want > SA_SCAV_BATCH_PAGES)
            want = SA_SCAV_BATCH_PAGES;
        uintptr_t addr;
        pthread_mutex_lock(&heap_lock);
        size_t n = sa_pages_scav_take(&pages, want, idle_epoch, &addr);
        pthread_mutex_unlock(&heap_lock);
        if (n == 0)
            break;
        int result = sa_os_release((void *)addr, n << SA_PAGE_SHIFT);
        (*ncalls)++;
        pthread_mutex_lock(&heap_lock);
        sa_pages_scav_done(&pages, addr, n, result);
        pthread_mutex_unlock(&heap_lock);
        if (result == SA_RELEASE_FAILED)
            break;
        done += n;
    }
    pthread_mutex_unlock(&scav_lock);
    return done;
}

uint64_t sa_mheap_next_epoch(void)
{
    pthread_mutex_lock(&heap_lock);
    uint64_t e = ++pages.epoch;
    pthread_mutex_unlock(&heap_lock);
    return e;
}

void sa_mheap_fork_prepare(void)
{
    pthread_mutex_lock(&scav_lock); /* no run in flight across the fork */
    pthread_mutex_lock(&heap_lock);
}

void sa_mheap_fork_parent(void)
{
    pthread_mutex_unlock(&heap_lock);
    pthread_mutex_unlock(&scav_lock);
}

void sa_mheap_fork_child(void)
{
    pthread_mutex_init(&heap_lock, NULL);
    pthread_mutex_init(&scav_lock, NULL);
}

/* Heap check: the page map, the page allocator's bitmaps, summaries and
 * counters agree, and every in-use small span was reached through an
 * mcentral list or an mcache (visited in this epoch). */
void sa_mheap_check(uint32_t epoch)
{
    size_t inuse = 0, released = 0, free_backed = 0;
    for (size_t i = 0; i < pages.narenas; i++) {
        sa_heaparena *a = pages.arenas[i];
        if (i > 0 && pages.arenas[i - 1]->base >= a->base)
            sa_check_fail("arenas out of address order", NULL);
        if (sa_arena_index[a->base >> SA_ARENA_SHIFT] != a)
            sa_check_fail("arena index does not point at its arena", NULL);
        for (size_t pg = 0; pg < SA_PAGES_PER_ARENA; pg++) {
            uintptr_t addr = a->base + (pg << SA_PAGE_SHIFT);
            bool used = a->inuse[pg / 64] >> (pg % 64) & 1;
            bool rel = a->released[pg / 64] >> (pg % 64) & 1;
            sa_span *s = a->spans[pg];
            if (s) {
                if (!used)
                    sa_check_fail("page of a span is free in the page bitmap", s);
                if (addr < s->base || addr >= s->base + (s->npages << SA_PAGE_SHIFT))
                    sa_check_fail("page map entry outside its span", s);
                if (s->state == SA_SPAN_FREE)
                    sa_check_fail("page maps to a freed span struct", s);
                if (addr == s->base) {
                    inuse += s->npages;
                    /* TRANSIT: between the mheap and an mcentral (see
                     * SA_SPAN_TRANSIT), waiting for a lock this check holds */
                    if (s->spanclass != 0 && s->checkmark != epoch &&
                        sa_load_sc(&s->state) != SA_SPAN_TRANSIT)
                        sa_check_fail("small span in no mcentral list and no mcache", s);
                    if (s->spanclass == 0 && s->state != SA_SPAN_LARGE)
                        sa_check_fail("large span not in state LARGE", s);
                }
            } else if (used) {
                sa_check_fail("in-use page maps to no span", NULL);
            }
            if (rel && used)
                sa_check_fail("released page is in use", s);
            if (!used)
                rel ? released++ : free_backed++;
        }
        for (size_t c = 0; c < SA_CHUNKS_PER_ARENA; c++) {
            sa_pallocsum sum;
            sa_pallocsum_compute(&a->inuse[c * SA_CHUNK_WORDS], SA_CHUNK_PAGES, &sum);
            if (sum.start != a->chunksum[c].start || sum.max != a->chunksum[c].max ||
                sum.end != a->chunksum[c].end)
                sa_check_fail("page allocator chunk summary differs from its bitmap", NULL);
        }
    }
    if (inuse != pages.pages_inuse)
        sa_check_fail("pages in spans differ from the page allocator's count", NULL);
    if (released != pages.pages_released || free_backed != pages.pages_free_backed)
        sa_check_fail("released/retained page counts differ from the bitmaps", NULL);
}

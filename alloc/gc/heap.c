/*
 * heap.c — the managed heap: spans of the managed span classes, the
 * per-thread allocation caches, and sa_gc_alloc's allocation path.
 *
 * Owns: for each cache slot (small size class x scan/noscan) three lists of
 * spans no thread caches -- partial (swept, may have free slots), full
 * (swept, no free slot when filed) and unswept (waiting for the sweeper) --
 * plus the large managed spans (swept / unswept), and the pool of sa_gcspan
 * metadata. All of it under heap_lock.
 *
 * Managed spans come from the mheap like malloc's, with a managed span class,
 * but never enter an mcentral or an mcache: malloc and free never see them
 * (free rejects them, api.c). A thread allocates from the span in its
 * sa_gcthread cache slot with the same window trick as malloc
 * (sa_span_take); a window load adds the window's free bytes to heap_live,
 * the pacer's input (as Go counts heapLive at mcache refill).
 *
 * Sweep state is list membership instead of Go's per-span sweepgen: at mark
 * termination (world stopped) every cache is flushed to partial and
 * partial+full become unswept in O(1) per class (sa_gc_flip_sweep); the
 * sweeper and allocating threads then sweep span by span (lazy sweep on
 * refill, background sweep in the collector thread). All sweeping is over
 * before the next cycle stops the world, so marking never meets an unswept
 * span.
 *
 * Invariants:
 *  - a span is on exactly one list or in exactly one thread's cache;
 *  - objects are zeroed when handed out (conservative scanning never sees
 *    stale pointers of a previous life through a live object);
 *  - while sa_gc_phase == SA_GC_MARK, every object handed out has its mark
 *    bit set (allocate black).
 *
 * Locking: heap_lock, taken by registered threads only inside a critical
 * section (gc_internal.h rule 1). Pages are taken from and given back to the
 * mheap outside critical sections (rule 2): a refill that needs a new span
 * leaves its critical section around sa_mheap_alloc_small_span, and only the
 * collector thread frees spans.
 */
#define _GNU_SOURCE
#include <string.h>

#include "../track.h"
#include "gc_internal.h"

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_fixalloc gcspan_pool = {.size = sizeof(sa_gcspan)}; /* heap_lock */
static sa_gclist partial[SA_GC_NCACHE], full[SA_GC_NCACHE], unswept[SA_GC_NCACHE];
static sa_gclist large_swept, large_unswept;
static size_t unswept_total;   /* heap_lock */
static unsigned sweep_cursor;  /* heap_lock: next class the sweeper looks at */
SA_HIDDEN uint64_t sa_gc_heap_live;
SA_HIDDEN int sa_gc_phase;
SA_HIDDEN uint64_t sa_gc_swept_freed, sa_gc_swept_freed_bytes;
SA_HIDDEN uint64_t sa_gc_exited_nalloc, sa_gc_exited_nalloc_bytes;

void sa_gc_heap_lock(void)
{
    pthread_mutex_lock(&heap_lock);
}

void sa_gc_heap_unlock(void)
{
    pthread_mutex_unlock(&heap_lock);
}

/* ---- lists ------------------------------------------------------------------ */

static void list_push(sa_gclist *l, sa_gcspan *g)
{
    g->next = l->head;
    l->head = g;
    if (!l->tail)
        l->tail = g;
    l->n++;
}

static sa_gcspan *list_pop(sa_gclist *l)
{
    sa_gcspan *g = l->head;
    if (g) {
        l->head = g->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        g->next = NULL;
    }
    return g;
}

/* Appends all of src to dst. */
static void list_concat(sa_gclist *dst, sa_gclist *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    src->head = src->tail = NULL;
    src->n = 0;
}

/* ---- spans -------------------------------------------------------------------- */

static unsigned spanclass_of(unsigned cls)
{
    return (cls & SA_SPANCLASS_SIZE_MASK) | SA_SPANCLASS_MANAGED |
           ((cls & SA_SPANCLASS_MANAGED) ? SA_SPANCLASS_NOSCAN : 0);
}

/* Attaches collector metadata to a span fresh from the mheap. heap_lock. */
static sa_gcspan *attach_span(sa_span *s, unsigned cls)
{
    sa_gcspan *g = sa_fixalloc_alloc(&gcspan_pool);
    if (!g)
        return NULL;
    memset(g, 0, sizeof *g);
    g->span = s;
    g->cls = (uint8_t)cls;
    sa_store_sc(&s->state, SA_SPAN_CENTRAL);
    /* Published last: a marker that finds the span before this ignores it. */
    sa_store_release(&s->gcmarkBits, g->markbits);
    return g;
}

/* Detaches the metadata of a span about to go back to the mheap. heap_lock. */
static void detach_span(sa_gcspan *g)
{
    sa_store_release(&g->span->gcmarkBits, NULL);
    sa_fixalloc_free(&gcspan_pool, g);
}

/* Window bytes count as live from the moment a thread may hand them out.
 * While marking, the whole window is allocated black at once: one atomic OR
 * per window instead of one per object (a locked instruction per 16-byte
 * node was a fifth of binary trees' allocation time). Slots of the window
 * never handed out carry a mark without an allocation bit; the sweep masks
 * those off, and the flush at mark termination takes their bytes back. */
static void account_window(sa_gcthread *t, sa_gcspan *g)
{
    sa_span *s = g->span;
    uint64_t add = (uint64_t)s->windowFree * s->elemsize;
    bool marking = sa_load_relaxed(&sa_gc_phase) != SA_GC_OFF;
    if (marking) {
        __atomic_fetch_or(&g->markbits[s->freeindex >> 6], s->allocCache, __ATOMIC_RELAXED);
        t->black_bytes += add;
        g->window_black = 1;
    } else {
        g->window_black = 0;
    }
    uint64_t live = __atomic_add_fetch(&sa_gc_heap_live, add, __ATOMIC_RELAXED);
    if (live >= sa_load_relaxed(&sa_gc_trigger)) {
        if (marking && live >= sa_load_relaxed(&sa_gc_goal))
            sa_gc_assist(t); /* the marker is behind: help it */
        else
            sa_gc_request();
    }
}

static void unaccount_window(sa_gcthread *t, sa_gcspan *g)
{
    sa_span *s = g->span;
    uint64_t left = (uint64_t)sa_popcount64(s->allocCache) * s->elemsize;
    uint64_t live = sa_load_relaxed(&sa_gc_heap_live);
    __atomic_fetch_sub(&sa_gc_heap_live, left < live ? left : live, __ATOMIC_RELAXED);
    if (g->window_black)
        t->black_bytes -= left < t->black_bytes ? left : t->black_bytes;
    g->window_black = 0;
    sa_span_unload_window(s);
}

static inline void *take(sa_gcthread *t, sa_gcspan *g, uint64_t cache)
{
    sa_span *s = g->span;
    void *p = sa_span_take(s, cache);
    /* A window loaded before marking began: objects one at a time. */
    if (SA_UNLIKELY(sa_load_relaxed(&sa_gc_phase) != SA_GC_OFF) && !g->window_black) {
        uint32_t idx = s->freeindex - 1;
        __atomic_fetch_or(&g->markbits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
        t->black_bytes += s->elemsize;
    }
    return p;
}

/* The first bitmap word after the exhausted window. */
static inline unsigned next_word(const sa_span *s)
{
    return s->freeindex == 0 ? 0 : ((s->freeindex - 1) >> 6) + 1;
}

/* The cache slot's span ran out: file it and take a swept span with room,
 * sweeping unswept ones on the way, else a new span. Inside a critical
 * section (left and re-entered around the mheap call). */
static SA_NOINLINE void *refill(sa_gcthread *t, unsigned cls)
{
    sa_gcspan *old = t->cache[cls];
    t->cache[cls] = NULL;
    sa_gcspan *g;
    pthread_mutex_lock(&heap_lock);
    if (old)
        list_push(&full[cls], old);
    for (;;) {
        g = list_pop(&partial[cls]);
        if (g) {
            if (sa_span_load_window(g->span, 0))
                break;
            list_push(&full[cls], g);
            continue;
        }
        g = list_pop(&unswept[cls]);
        if (!g)
            break;
        unswept_total--;
        unsigned freed;
        unsigned live = sa_gc_sweep_span(g, &freed);
        if (live < g->span->nelems && sa_span_load_window(g->span, 0))
            break;
        list_push(&full[cls], g);
    }
    pthread_mutex_unlock(&heap_lock);
    if (!g) {
        sa_gc_leave(t);
        sa_span *s = sa_mheap_alloc_small_span(spanclass_of(cls));
        sa_gc_enter(t);
        if (!s)
            return NULL;
        pthread_mutex_lock(&heap_lock);
        g = attach_span(s, cls);
        pthread_mutex_unlock(&heap_lock);
        if (!g) {
            sa_gc_leave(t);
            sa_mheap_free_span(s);
            sa_gc_enter(t);
            return NULL;
        }
        sa_span_load_window(s, 0);
    }
    t->cache[cls] = g;
    account_window(t, g);
    return take(t, g, g->span->allocCache);
}

/* Small objects are zeroed inline: a libc call per 16-byte node showed up
 * in binary trees. n is a multiple of 16. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static inline void
zero_object(void *p, size_t n)
{
    if (n > 128) {
        memset(p, 0, n);
        return;
    }
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i += 2) {
        w[i] = 0;
        w[i + 1] = 0;
    }
}

static void *alloc_small(sa_gcthread *t, size_t size, bool noscan)
{
    unsigned sc = sa_size_to_class(size ? size : 1);
    unsigned cls = sc | (noscan ? SA_SPANCLASS_MANAGED : 0);
    sa_gc_enter(t);
    sa_gcspan *g = t->cache[cls];
    void *p = NULL;
    if (SA_LIKELY(g != NULL)) {
        sa_span *s = g->span;
        uint64_t c = s->allocCache;
        if (SA_LIKELY(c != 0)) {
            p = take(t, g, c);
        } else if (sa_span_load_window(s, next_word(s))) {
            account_window(t, g);
            p = take(t, g, s->allocCache);
        }
    }
    if (!p)
        p = refill(t, cls);
    if (p) {
        size_t n = sa_class_to_size[sc];
        /* Slots of a span fresh from zeroed pages were never used; swept
         * spans (needzero set by the sweep) hold dead objects. */
        SA_TRACK_MALLOC(p, n, !t->cache[cls]->span->needzero);
        if (t->cache[cls]->span->needzero)
            zero_object(p, n);
        t->nalloc++;
        t->nalloc_bytes += n;
    }
    sa_gc_leave(t);
    return p;
}

static void *alloc_large(sa_gcthread *t, size_t size, bool noscan)
{
    size_t npages = (size + SA_PAGE_SIZE - 1) >> SA_PAGE_SHIFT;
    size_t bytes = npages << SA_PAGE_SHIFT;
    sa_span *s = sa_mheap_alloc_large(npages, 0);
    if (!s)
        return NULL;
    sa_scavenger_after_alloc();
    SA_TRACK_MALLOC((void *)s->base, bytes, s->largezero);
    if (!s->largezero)
        memset((void *)s->base, 0, bytes);
    sa_store_relaxed(&s->spanclass,
                     (uint8_t)(SA_SPANCLASS_MANAGED | (noscan ? SA_SPANCLASS_NOSCAN : 0)));
    sa_gc_enter(t);
    pthread_mutex_lock(&heap_lock);
    sa_gcspan *g = attach_span(s, 0xff);
    if (g) {
        sa_store_sc(&s->state, SA_SPAN_LARGE);
        if (sa_load_relaxed(&sa_gc_phase) != SA_GC_OFF) {
            g->markbits[0] = 1;
            t->black_bytes += bytes;
        }
        list_push(&large_swept, g);
    }
    pthread_mutex_unlock(&heap_lock);
    if (!g) {
        sa_gc_leave(t);
        sa_store_relaxed(&s->spanclass, 0);
        sa_mheap_free_span(s);
        return NULL;
    }
    t->nalloc++;
    t->nalloc_bytes += bytes;
    uint64_t live = __atomic_add_fetch(&sa_gc_heap_live, bytes, __ATOMIC_RELAXED);
    if (live >= sa_load_relaxed(&sa_gc_trigger))
        sa_gc_request();
    /* The object's address must be live across sa_gc_leave, where a
     * deferred stop may scan this stack: the span struct pointer alone
     * would not keep the object. */
    void *p = (void *)s->base;
    sa_gc_leave(t);
    __asm__ volatile("" ::"r"(p));
    return p;
}

void *sa_gc_heap_alloc(sa_gcthread *t, size_t size, bool noscan)
{
    if (size > SA_MAX_SMALL_SIZE)
        return alloc_large(t, size, noscan);
    return alloc_small(t, size, noscan);
}

/* ---- the collector's side ---------------------------------------------------------- */

static void count_thread(sa_gcthread *t, void *arg)
{
    uint64_t *v = arg;
    v[0] += sa_load_relaxed(&t->nalloc);
    v[1] += sa_load_relaxed(&t->nalloc_bytes);
}

/* Managed objects and bytes handed out and not yet swept away. */
void sa_gc_count_objects(uint64_t *objects, uint64_t *bytes)
{
    uint64_t v[2] = {0, 0};
    sa_gc_threads_lock_stoppable();
    sa_gcthread *self = sa_gc_self;
    if (self)
        sa_gc_enter(self);
    pthread_mutex_lock(&heap_lock);
    sa_gc_each_thread(count_thread, v);
    v[0] += sa_gc_exited_nalloc;
    v[1] += sa_gc_exited_nalloc_bytes;
    *objects = v[0] > sa_gc_swept_freed ? v[0] - sa_gc_swept_freed : 0;
    *bytes = v[1] > sa_gc_swept_freed_bytes ? v[1] - sa_gc_swept_freed_bytes : 0;
    pthread_mutex_unlock(&heap_lock);
    if (self)
        sa_gc_leave(self);
    sa_gc_threads_unlock();
}

void sa_gc_flush_cache(sa_gcthread *t)
{
    pthread_mutex_lock(&heap_lock);
    for (unsigned cls = 0; cls < SA_GC_NCACHE; cls++) {
        sa_gcspan *g = t->cache[cls];
        if (g) {
            t->cache[cls] = NULL;
            unaccount_window(t, g);
            list_push(&partial[cls], g);
        }
    }
    pthread_mutex_unlock(&heap_lock);
}

void sa_gc_flip_sweep(void)
{
    pthread_mutex_lock(&heap_lock);
    size_t n = 0;
    for (unsigned cls = 0; cls < SA_GC_NCACHE; cls++) {
        list_concat(&unswept[cls], &partial[cls]);
        list_concat(&unswept[cls], &full[cls]);
        n += unswept[cls].n;
    }
    list_concat(&large_unswept, &large_swept);
    unswept_total = n + large_unswept.n;
    pthread_mutex_unlock(&heap_lock);
}

bool sa_gc_sweep_pending(void)
{
    return sa_load_relaxed(&unswept_total) != 0;
}

/* Sweeps one span; empty spans go back to the mheap (outside the lock).
 * Called by the collector thread only. */
bool sa_gc_sweep_one(void)
{
    sa_span *tofree = NULL;
    pthread_mutex_lock(&heap_lock);
    if (unswept_total == 0) {
        pthread_mutex_unlock(&heap_lock);
        return false;
    }
    sa_gcspan *g = list_pop(&large_unswept);
    if (g) {
        unswept_total--;
        if (g->markbits[0] & 1) {
            g->markbits[0] = 0;
            list_push(&large_swept, g);
        } else {
            tofree = g->span;
            SA_TRACK_FREE((void *)tofree->base);
            sa_gc_swept_freed++;
            sa_gc_swept_freed_bytes += tofree->npages << SA_PAGE_SHIFT;
            detach_span(g);
        }
    } else {
        for (unsigned i = 0; i < SA_GC_NCACHE && !g; i++) {
            unsigned cls = (sweep_cursor + i) % SA_GC_NCACHE;
            g = list_pop(&unswept[cls]);
            if (g)
                sweep_cursor = cls;
        }
        if (g) {
            unswept_total--;
            unsigned freed;
            unsigned live = sa_gc_sweep_span(g, &freed);
            if (live == 0) {
                tofree = g->span;
                detach_span(g);
            } else {
                list_push(live == g->span->nelems ? &full[g->cls] : &partial[g->cls], g);
            }
        }
    }
    pthread_mutex_unlock(&heap_lock);
    if (tofree) {
        sa_store_relaxed(&tofree->spanclass, 0);
        sa_mheap_free_span(tofree);
        sa_scavenger_kick();
    }
    return true;
}

static void flush_dead(sa_gcthread *t)
{
    sa_gc_exited_nalloc += t->nalloc;
    sa_gc_exited_nalloc_bytes += t->nalloc_bytes;
    for (unsigned cls = 0; cls < SA_GC_NCACHE; cls++) {
        sa_gcspan *g = t->cache[cls];
        if (g) {
            t->cache[cls] = NULL;
            sa_span_unload_window(g->span);
            list_push(&partial[cls], g);
        }
    }
}

void sa_gc_heap_fork_child(void)
{
    pthread_mutex_init(&heap_lock, NULL);
}

void sa_gc_heap_fork_dead_thread(sa_gcthread *t)
{
    flush_dead(t);
}

static void visit_list(sa_gclist *l, uint32_t epoch)
{
    size_t n = 0;
    for (sa_gcspan *g = l->head; g; g = g->next, n++) {
        sa_span *s = g->span;
        if (s->gcmarkBits != g->markbits)
            sa_check_fail("managed span does not point at its collector metadata", s);
        if (!(s->spanclass & SA_SPANCLASS_MANAGED))
            sa_check_fail("span on a collector list without a managed span class", s);
        sa_check_visit(s, epoch, "gc");
        if (g->cls != 0xff)
            sa_check_span_bits(s);
    }
    if (n != l->n)
        sa_check_fail("collector span list length differs from its count", NULL);
}

static void visit_cache(sa_gcthread *t, void *arg)
{
    uint32_t epoch = *(uint32_t *)arg;
    for (unsigned cls = 0; cls < SA_GC_NCACHE; cls++)
        if (t->cache[cls])
            sa_check_visit(t->cache[cls]->span, epoch, "gc cache");
}

/* sa_heap_check: visits every managed span (the mheap check then requires
 * every small span to have been visited). */
void sa_gc_heap_check(uint32_t epoch)
{
    /* Threads lock first (the collector's order), taken so that this thread
     * stays stoppable while it waits; holding it, no stop can begin. */
    sa_gc_threads_lock_stoppable();
    pthread_mutex_lock(&heap_lock);
    for (unsigned cls = 0; cls < SA_GC_NCACHE; cls++) {
        visit_list(&partial[cls], epoch);
        visit_list(&full[cls], epoch);
        visit_list(&unswept[cls], epoch);
    }
    visit_list(&large_swept, epoch);
    visit_list(&large_unswept, epoch);
    sa_gc_each_thread(visit_cache, &epoch);
    pthread_mutex_unlock(&heap_lock);
    sa_gc_threads_unlock();
}

void sa_gc_heap_stats(uint64_t *spans, uint64_t *bytes)
{
    *spans = gcspan_pool.inuse / sizeof(sa_gcspan);
    *bytes = gcspan_pool.sys;
}

/*
 * mark.c — the grey queue, shading, draining, and the write barrier.
 *
 * Colours: white = mark bit clear; grey = mark bit set and the object sits
 * in a work buffer; black = mark bit set and scanned (or noscan, which turns
 * black at once: its words are never read). Marking an object is an atomic
 * OR on its span's gcmarkBits word; whoever flips the bit owns pushing it,
 * so every object is scanned at most once per cycle.
 *
 * Work buffers (Go's workbuf): 4 KiB blocks of object addresses. The marker
 * keeps one local buffer and exchanges full ones through a global list;
 * each registered thread keeps one for the objects its write barrier
 * shades, handed over when it fills and taken by the collector at mark
 * termination while the world is stopped.
 *
 * Conservative rule: any word whose value lies inside an allocated object of
 * a managed span (interior pointers included) marks that object. A word
 * that points at a free slot marks nothing (the allocation bit is checked
 * first), so stale pointers never resurrect freed memory.
 *
 * The barrier (sa_gc_store, docs/gc.md): while marking it shades the old
 * value of the slot (Yuasa deletion) and the new one (Dijkstra insertion),
 * as Go's hybrid barrier does, then stores. Stacks and root ranges are
 * scanned once, at the start of the cycle with every thread stopped, and
 * objects allocated during marking are black, so the deletion half alone
 * keeps every object reachable at the snapshot: no stack rescan is needed.
 * The barrier runs inside a critical section, so no stop can split the
 * "is the barrier on?" test from the store.
 *
 * Locking: wbuf_lock guards the global full and free lists; registered
 * threads take it only inside a critical section.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <string.h>

#include "../track.h"
#include "../helper.h"
#include "gc_internal.h"

#ifdef SA_GC_HAVE_MEMCHECK
#include <valgrind/memcheck.h>
#endif

static pthread_mutex_t wbuf_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_wbuf *full_bufs;  /* wbuf_lock: grey work */
static sa_wbuf *free_bufs;  /* wbuf_lock */
SA_HIDDEN int sa_gc_wb_on;

_Static_assert(sizeof(sa_wbuf) == 4096, "a work buffer is 4 KiB");
#define WBUF_CHUNK 64 /* buffers mapped at a time */

void sa_gc_wbuf_lock(void)
{
    pthread_mutex_lock(&wbuf_lock);
}

void sa_gc_wbuf_unlock(void)
{
    pthread_mutex_unlock(&wbuf_lock);
}

void sa_gc_wbuf_fork_child(void)
{
    pthread_mutex_init(&wbuf_lock, NULL);
}

static sa_wbuf *get_buf(void)
{
    pthread_mutex_lock(&wbuf_lock);
    sa_wbuf *b = free_bufs;
    if (!b) {
        sa_wbuf *chunk = sa_os_alloc_meta(WBUF_CHUNK * sizeof(sa_wbuf));
        if (!chunk) {
            pthread_mutex_unlock(&wbuf_lock);
            sa_report_fatal("gc: out of memory for mark work buffers");
        }
        for (size_t i = 0; i < WBUF_CHUNK; i++) {
            chunk[i].next = free_bufs;
            free_bufs = &chunk[i];
        }
        b = free_bufs;
    }
    free_bufs = b->next;
    pthread_mutex_unlock(&wbuf_lock);
    b->next = NULL;
    b->n = 0;
    return b;
}

static void put_free(sa_wbuf *b)
{
    pthread_mutex_lock(&wbuf_lock);
    b->next = free_bufs;
    free_bufs = b;
    pthread_mutex_unlock(&wbuf_lock);
}

static void put_full(sa_wbuf *b)
{
    pthread_mutex_lock(&wbuf_lock);
    b->next = full_bufs;
    full_bufs = b;
    pthread_mutex_unlock(&wbuf_lock);
}

static sa_wbuf *take_full(void)
{
    if (!sa_load_relaxed(&full_bufs))
        return NULL;
    pthread_mutex_lock(&wbuf_lock);
    sa_wbuf *b = full_bufs;
    if (b)
        full_bufs = b->next;
    pthread_mutex_unlock(&wbuf_lock);
    return b;
}

bool sa_gc_work_empty(void)
{
    pthread_mutex_lock(&wbuf_lock);
    bool e = full_bufs == NULL;
    pthread_mutex_unlock(&wbuf_lock);
    return e;
}

static inline void push(sa_gcwork *w, uintptr_t obj)
{
    sa_wbuf *b = w->buf;
    if (SA_UNLIKELY(!b || b->n == SA_WBUF_ENTRIES)) {
        if (b)
            put_full(b);
        b = w->buf = get_buf();
    }
    b->obj[b->n++] = obj;
}

void sa_gc_work_flush(sa_gcwork *w)
{
    if (w->buf) {
        if (w->buf->n)
            put_full(w->buf);
        else
            put_free(w->buf);
        w->buf = NULL;
    }
}

/* The allocated managed object p points into: its start, size, span and
 * index. False for anything else. */
static inline bool find_object(uintptr_t p, sa_span **sp, uint64_t **mbp, uint32_t *idxp,
                               uintptr_t *objp, size_t *sizep)
{
    sa_span *s = sa_span_of(p);
    if (!s)
        return false;
    unsigned spc = sa_load_relaxed(&s->spanclass);
    if (!(spc & SA_SPANCLASS_MANAGED))
        return false;
    uint64_t *mb = sa_load_acquire(&s->gcmarkBits);
    if (!mb)
        return false;
    uintptr_t base = s->base;
    if (p < base)
        return false;
    if ((spc & SA_SPANCLASS_SIZE_MASK) == 0) {
        size_t size = s->npages << SA_PAGE_SHIFT;
        if (p - base >= size)
            return false;
        *idxp = 0;
        *objp = base;
        *sizep = size;
    } else {
        uint32_t idx = sa_span_index(s, p - base);
        if (idx >= s->nelems)
            return false;
        if (!(sa_load_relaxed(&s->allocBits[idx >> 6]) & ((uint64_t)1 << (idx & 63))))
            return false;
        *idxp = idx;
        *objp = base + (uintptr_t)idx * s->elemsize;
        *sizep = s->elemsize;
    }
    *sp = s;
    *mbp = mb;
    return true;
}

void sa_gc_shade(uintptr_t p, sa_gcwork *w)
{
    sa_span *s;
    uint64_t *mb;
    uint32_t idx;
    uintptr_t obj;
    size_t size;
    if (!find_object(p, &s, &mb, &idx, &obj, &size))
        return;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint64_t *word = &mb[idx >> 6];
    if (sa_load_relaxed(word) & bit)
        return;
    if (__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit)
        return;
    w->marked_bytes += size;
    if (!(sa_load_relaxed(&s->spanclass) & SA_SPANCLASS_NOSCAN))
        push(w, obj);
}

uintptr_t sa_gc_object_start(uintptr_t p, size_t *size)
{
    sa_span *s;
    uint64_t *mb;
    uint32_t idx;
    uintptr_t obj;
    if (!find_object(p, &s, &mb, &idx, &obj, size))
        return 0;
    return obj;
}

/* The mark word and bit of the object p points into. */
static bool mark_slot(uintptr_t p, uint64_t **word, uint64_t *bit, size_t *size)
{
    sa_span *s;
    uint64_t *mb;
    uint32_t idx;
    uintptr_t obj;
    if (!find_object(p, &s, &mb, &idx, &obj, size))
        return false;
    *word = &mb[idx >> 6];
    *bit = (uint64_t)1 << (idx & 63);
    return true;
}

bool sa_gc_is_marked(uintptr_t p)
{
    uint64_t *word, bit;
    size_t size;
    return mark_slot(p, &word, &bit, &size) && (sa_load_relaxed(word) & bit);
}

/* Marks the object without scanning it (its contents are known marked). */
void sa_gc_set_mark(uintptr_t p, uint64_t *bytes)
{
    uint64_t *word, bit;
    size_t size;
    if (mark_slot(p, &word, &bit, &size) && !(__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit))
        *bytes += size;
}

static inline void scan_words(const uintptr_t *p, const uintptr_t *end, sa_gcwork *w)
{
    for (; p < end; p++) {
        uintptr_t v = __atomic_load_n(p, __ATOMIC_RELAXED);
        if (v >= SA_PAGE_SIZE)
            sa_gc_shade(v, w);
    }
}

/* Scans [lo, hi) word by word. untrusted: memory that may hold undefined
 * bytes (stacks, roots); under memcheck it is copied and the copy declared
 * defined, so conservative scanning raises no false reports. */
void sa_gc_scan_range(uintptr_t lo, uintptr_t hi, sa_gcwork *w, bool untrusted)
{
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    hi &= ~(uintptr_t)(sizeof(uintptr_t) - 1);
    if (hi <= lo)
        return;
    w->scanned_bytes += hi - lo;
#ifdef SA_GC_HAVE_MEMCHECK
    if (untrusted && RUNNING_ON_VALGRIND) {
        static uintptr_t copy[512]; /* collector thread only */
        while (lo < hi) {
            size_t n = (hi - lo) / sizeof(uintptr_t);
            if (n > 512)
                n = 512;
            /* A signal frame memcheck built may hold unaddressable gaps. */
            VALGRIND_DISABLE_ADDR_ERROR_REPORTING_IN_RANGE(lo, n * sizeof(uintptr_t));
            memcpy(copy, (const void *)lo, n * sizeof(uintptr_t));
            VALGRIND_ENABLE_ADDR_ERROR_REPORTING_IN_RANGE(lo, n * sizeof(uintptr_t));
            VALGRIND_MAKE_MEM_DEFINED(copy, n * sizeof(uintptr_t));
            scan_words(copy, copy + n, w);
            lo += n * sizeof(uintptr_t);
        }
        return;
    }
#else
    (void)untrusted;
#endif
    scan_words((const uintptr_t *)lo, (const uintptr_t *)hi, w);
}

static void scan_object(uintptr_t obj, sa_gcwork *w)
{
    sa_span *s = sa_span_of(obj);
    size_t size = (s->spanclass & SA_SPANCLASS_SIZE_MASK) ? s->elemsize
                                                           : s->npages << SA_PAGE_SHIFT;
    w->scanned_bytes += size;
    scan_words((const uintptr_t *)obj, (const uintptr_t *)(obj + size), w);
}

static int parallel_on; /* atomic: a helper drains too; share work */
SA_HIDDEN int sa_gc_markers = 2; /* SPANALLOC=gc_markers=1 turns the helper off */

/* Hands half of a deep local buffer to the global list when it is empty,
 * so an idle helper has something to take (a tree walk rarely fills a
 * buffer on its own). */
static void share_work(sa_gcwork *w)
{
    sa_wbuf *b = w->buf;
    if (b->n < 4 || sa_load_relaxed(&full_bufs) != NULL)
        return;
    sa_wbuf *nb = get_buf();
    size_t half = b->n / 2;
    memcpy(nb->obj, b->obj, half * sizeof(uintptr_t));
    memmove(b->obj, b->obj + half, (b->n - half) * sizeof(uintptr_t));
    nb->n = half;
    b->n -= half;
    put_full(nb);
}

/* Blackens grey objects until no work is left anywhere. */
void sa_gc_drain(sa_gcwork *w)
{
    for (unsigned i = 0;; i++) {
        sa_wbuf *b = w->buf;
        if (!b || b->n == 0) {
            sa_wbuf *g = take_full();
            if (!g)
                break;
            if (b)
                put_free(b);
            w->buf = b = g;
        }
        uintptr_t obj = b->obj[--b->n];
        /* The next grey object is most likely a cache miss: start it now. */
        if (b->n)
            __builtin_prefetch((const void *)b->obj[b->n - 1]);
        scan_object(obj, w);
        if ((i & 15) == 15 && sa_load_relaxed(&parallel_on))
            share_work(w);
    }
}

/* ---- assists (concurrent mark) --------------------------------------------------------
 * A thread that loads an allocation window while marking and past the goal
 * scans some grey objects itself (Go's mark assist), inside its critical
 * section: it takes a buffer from the global list, blackens up to
 * ASSIST_OBJECTS objects, and hands what is left back before it leaves, so
 * no grey work hides in a stopped thread. The collector keeps the global
 * list stocked (share_work) while parallel_on is set. */
#define ASSIST_OBJECTS 256

void sa_gc_assist(sa_gcthread *t)
{
    /* Only while the collector drains: once it heads for termination, an
     * assist holding a buffer would send the world back to running. */
    if (!sa_load_relaxed(&parallel_on))
        return;
    sa_wbuf *b = take_full();
    if (!b)
        return;
    sa_gcwork w;
    memset(&w, 0, sizeof w);
    w.buf = b;
    for (unsigned i = 0; i < ASSIST_OBJECTS && w.buf->n; i++) {
        uintptr_t obj = w.buf->obj[--w.buf->n];
        if (w.buf->n)
            __builtin_prefetch((const void *)w.buf->obj[w.buf->n - 1]);
        scan_object(obj, &w);
    }
    sa_gc_work_flush(&w);
    t->shade_bytes += w.marked_bytes;
}

void sa_gc_set_sharing(bool on)
{
    sa_store_sc(&parallel_on, on ? 1 : 0);
}

/* ---- parallel drain (world stopped, gc_mode=stw) ----------------------------------
 * A second marker thread helps while the world is stopped, when the
 * program's CPUs are idle anyway. Termination: a worker that runs out of
 * work decrements nbusy and waits for either new global work (it
 * increments nbusy before taking any) or nbusy == 0 with the list empty --
 * nobody busy means nobody can push, so the mark is complete. */
static int nbusy;               /* atomic */
static uint64_t helper_gen;     /* atomic: sessions started */
static uint64_t helper_done;    /* atomic: sessions the helper finished */
static uint64_t helper_marked;  /* the helper's marked bytes, per session */
static sem_t helper_sem;
static int helper_ok;           /* the helper thread runs (collector thread only) */
static int helper_quit;         /* atomic: the helper ends at its next wake-up */
static pthread_t helper_tid;    /* joinable: the collector waits for it to end */

static inline void relax(unsigned i)
{
    if (i < 1000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void worker(sa_gcwork *w)
{
    for (;;) {
        sa_gc_drain(w);
        __atomic_fetch_sub(&nbusy, 1, __ATOMIC_SEQ_CST);
        for (unsigned i = 0;; i++) {
            if (sa_load_sc(&full_bufs) != NULL) {
                __atomic_fetch_add(&nbusy, 1, __ATOMIC_SEQ_CST);
                if (sa_load_sc(&full_bufs) != NULL)
                    break; /* back to draining */
                __atomic_fetch_sub(&nbusy, 1, __ATOMIC_SEQ_CST);
            }
            if (sa_load_sc(&nbusy) == 0 && sa_load_sc(&full_bufs) == NULL)
                return;
            relax(i);
        }
    }
}

static void *helper_main(void *arg)
{
    (void)arg;
    sa_helper_enter();
    sa_gcwork hw;
    memset(&hw, 0, sizeof hw);
    for (;;) {
        while (sem_wait(&helper_sem) != 0)
            ;
        if (sa_load_sc(&helper_quit))
            break;
        uint64_t gen = sa_load_sc(&helper_gen);
        hw.marked_bytes = 0;
        worker(&hw);
        sa_gc_work_flush(&hw);
        sa_store_relaxed(&helper_marked, hw.marked_bytes);
        sa_store_sc(&helper_done, gen);
    }
    sa_helper_leave(SA_HELPER_MARKER, false); /* the collector joins it */
    return NULL;
}

/* From the collector thread, world running (creating a thread allocates).
 * The helper lives as long as the collector thread that started it. */
void sa_gc_start_helper(void)
{
    if (helper_ok || sa_load_relaxed(&sa_gc_markers) < 2)
        return;
    sem_init(&helper_sem, 0, 0);
    sa_store_sc(&helper_quit, 0);
    /* never registered: it takes no signal at all */
    helper_ok = sa_helper_start(SA_HELPER_MARKER, helper_main, NULL, 0, NULL, &helper_tid) == 0;
}

/* From the collector thread before it ends: the helper ends first. */
void sa_gc_stop_helper(void)
{
    if (!helper_ok)
        return;
    sa_store_sc(&helper_quit, 1);
    sem_post(&helper_sem);
    pthread_join(helper_tid, NULL);
    sem_destroy(&helper_sem);
    helper_ok = 0;
}

void sa_gc_helper_fork_child(void)
{
    helper_ok = 0;
    sa_store_relaxed(&parallel_on, 0);
}

/* Drains with the helper when there is one. */
void sa_gc_drain_parallel(sa_gcwork *w)
{
    if (!helper_ok) {
        sa_gc_drain(w);
        return;
    }
    sa_gc_work_flush(w); /* the helper may start with our roots */
    sa_store_sc(&nbusy, 2);
    sa_store_sc(&parallel_on, 1);
    uint64_t gen = sa_load_sc(&helper_gen) + 1;
    sa_store_sc(&helper_gen, gen);
    sem_post(&helper_sem);
    worker(w);
    for (unsigned i = 0; sa_load_sc(&helper_done) != gen; i++)
        relax(i);
    sa_store_sc(&parallel_on, 0);
    w->marked_bytes += sa_load_relaxed(&helper_marked);
}

/* World stopped: hands every thread's barrier buffer to the global list.
 * Returns the number of grey objects they held. */
static void take_one(sa_gcthread *t, void *arg)
{
    size_t *n = arg;
    sa_wbuf *b = t->wbuf;
    if (b) {
        t->wbuf = NULL;
        *n += b->n;
        if (b->n)
            put_full(b);
        else
            put_free(b);
    }
}

size_t sa_gc_take_thread_bufs(void)
{
    size_t n = 0;
    sa_gc_each_thread(take_one, &n);
    return n;
}

void sa_gc_release_thread_buf(sa_gcthread *t)
{
    size_t n = 0;
    take_one(t, &n);
}

void sa_gc_mark_reset(void)
{
    /* A fork child drops whatever grey work the parent's threads held
     * (none: fork waits for the cycle to end; this is belt and braces). */
    pthread_mutex_lock(&wbuf_lock);
    while (full_bufs) {
        sa_wbuf *b = full_bufs;
        full_bufs = b->next;
        b->next = free_bufs;
        free_bufs = b;
    }
    pthread_mutex_unlock(&wbuf_lock);
}

/* ---- the write barrier ------------------------------------------------------ */

SA_API void sa_gc_store(void **slot, void *value)
{
    sa_gcthread *t = sa_gc_self;
    if (SA_UNLIKELY(!t || !t->registered)) {
        t = sa_gc_thread_attach();
        if (!t) {
            __atomic_store_n(slot, value, __ATOMIC_RELAXED);
            return;
        }
    }
    sa_gc_enter(t);
    if (sa_load_relaxed(&sa_gc_wb_on)) {
        sa_gcwork w = {.buf = t->wbuf};
        sa_gc_shade((uintptr_t)__atomic_load_n(slot, __ATOMIC_RELAXED), &w);
        sa_gc_shade((uintptr_t)value, &w);
        t->wbuf = w.buf;
        t->shade_bytes += w.marked_bytes;
    }
    __atomic_store_n(slot, value, __ATOMIC_RELAXED);
    sa_gc_leave(t);
}

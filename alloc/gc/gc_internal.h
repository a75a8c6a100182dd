/*
 * gc_internal.h — the collector's types, shared by the files of alloc/gc/.
 *
 * The collector (issue 6, docs/gc.md) is a non-moving, conservative,
 * tri-colour mark-sweep collector over spans of its own span classes
 * (spanclass = sizeclass | SA_SPANCLASS_MANAGED [| SA_SPANCLASS_NOSCAN]).
 * It is compiled only with -DSPANALLOC_GC=ON; nothing outside alloc/gc/
 * calls into it except through the few hooks declared at the end of this
 * file (options, stats, heap check, the free() rejection in api.c).
 *
 * Files:
 *   heap.c      managed spans, per-thread allocation caches, sa_gc_alloc
 *   sweep.c     sweeping one span, the unswept lists, background sweep
 *   stw.c       thread registry, stop/start the world (signal + handshake)
 *   roots.c     registered root ranges; conservative range scanning
 *   mark.c      grey queue (work buffers), shading, draining, write barrier
 *   pacer.c     heap goal and trigger, memstats fields, pause percentiles,
 *               gctrace lines
 *   finalizer.c finalizer table, queue and thread
 *   gc.c        the collector thread and its cycle, public API, fork
 *
 * The two rules every file obeys (they are what makes stopping the world
 * deadlock-free):
 *   1. A registered thread takes collector locks only inside a critical
 *      section (sa_gc_enter/sa_gc_leave). A stop signal that lands inside
 *      one is deferred to sa_gc_leave, so a stopped thread never holds a
 *      collector lock, and the collector may take any of them while the
 *      world is stopped.
 *   2. Nothing inside a critical section waits for an allocator lock (mheap,
 *      mcentral, mcache list): a thread stopped inside malloc may hold one.
 *      Pages are taken from and given back to the mheap outside critical
 *      sections; the collector thread never touches allocator locks while
 *      the world is stopped.
 *
 * Lock order (outermost first; also the fork handler's order):
 *   cycle_lock (gc.c) -> ctl_lock (gc.c) -> threads lock (stw.c)
 *   -> gc heap lock (heap.c) -> roots lock (roots.c) -> finalizer lock
 *   -> work-buffer lock (mark.c).
 * The collector holds the threads lock across a stop, so a registered
 * thread never waits for it inside a critical section: it spins on trylock
 * outside one (sa_gc_threads_lock_stoppable).
 */
#ifndef SA_GC_INTERNAL_H
#define SA_GC_INTERNAL_H

#include <signal.h>

#include "../internal.h"

/* Index of a thread-cache slot: small size class, +64 for noscan. */
#define SA_GC_NCACHE (2 * SA_SPANCLASS_MANAGED)

/* Per-span collector metadata. span->gcmarkBits points at markbits, so the
 * span finds this struct by subtracting the offset (gcspan_of). */
typedef struct sa_gcspan {
    uint64_t markbits[SA_BITMAP_WORDS]; /* atomics: set by markers and allocate-black */
    sa_span *span;
    struct sa_gcspan *next; /* list link, gc heap lock */
    uint8_t cls;            /* cache slot index; 0xff for large */
    uint8_t window_black;   /* owner: the loaded window was marked at load */
} sa_gcspan;

static inline sa_gcspan *sa_gcspan_of(uint64_t *markbits)
{
    return (sa_gcspan *)(void *)markbits; /* markbits is the first member */
}

/* A singly linked list with a tail, so whole lists concatenate in O(1). */
typedef struct sa_gclist {
    sa_gcspan *head, *tail;
    size_t n;
} sa_gclist;

/* A work buffer of grey objects (Go's workbuf): 4 KiB. */
#define SA_WBUF_ENTRIES 510
typedef struct sa_wbuf {
    struct sa_wbuf *next;
    size_t n;
    uintptr_t obj[SA_WBUF_ENTRIES];
} sa_wbuf;

/* One registered thread. Fields without a note are written by the thread
 * itself; the collector reads them only while the thread is stopped. */
typedef struct sa_gcthread {
    sa_gcspan *cache[SA_GC_NCACHE]; /* swept spans this thread allocates from */
    volatile sig_atomic_t incrit;   /* depth of critical sections */
    volatile sig_atomic_t stop_pending; /* a stop arrived inside one */
    uint64_t acked_gen;             /* the stop generation last acknowledged */
    int park;                       /* atomic: 0 running, 1 parked (blocked
                                       in the collector), 2 parked and claimed
                                       by a stop of the world */
    volatile uintptr_t stop_sp;     /* lowest stack address to scan (when stopped) */
    uintptr_t stack_hi;             /* top of the stack (grows down) */
    pthread_t tid;
    sa_wbuf *wbuf;                  /* barrier-shaded grey objects */
    uint64_t black_bytes;           /* allocated black during this cycle */
    uint64_t shade_bytes;           /* marked by this thread's barrier */
    uint64_t nalloc, nalloc_bytes;  /* objects handed out (read racily by stats) */
    struct sa_gcthread *next, *prev; /* threads lock */
    bool registered;                /* on the list */
    bool explicit_reg;              /* sa_gc_register_thread (vs automatic) */
} sa_gcthread;

extern SA_HIDDEN __thread sa_gcthread *sa_gc_self;

/* Collector phase, read by mutators with relaxed loads. */
enum { SA_GC_OFF = 0, SA_GC_MARK = 1 };
extern SA_HIDDEN int sa_gc_phase;       /* SA_GC_MARK while allocate-black */
extern SA_HIDDEN int sa_gc_wb_on;       /* the write barrier shades */
extern SA_HIDDEN uint64_t sa_gc_heap_live; /* atomic: bytes handed to caches since the last mark */

/* ---- critical sections (stw.c) --------------------------------------------- */
SA_HIDDEN sa_gcthread *sa_gc_thread_attach(void);
SA_HIDDEN void sa_gc_stop_deferred(sa_gcthread *t);
/* pthread_cond_wait for a thread outside critical sections that waits for
 * the collector: parked, it counts as stopped without a signal. */
SA_HIDDEN void sa_gc_park_wait(pthread_cond_t *c, pthread_mutex_t *m);
SA_HIDDEN sa_gcthread *sa_gc_enter_self(void);
SA_HIDDEN void sa_gc_leave_self(sa_gcthread *t);

static inline void sa_gc_enter(sa_gcthread *t)
{
    t->incrit++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Odd while the collector is stopping or has stopped the world: leaving a
 * critical section is also a safepoint, so a thread that allocates or
 * stores often stops within nanoseconds, before the signal even arrives. */
extern SA_HIDDEN uint64_t sa_gc_stop_gen;

static inline void sa_gc_leave(sa_gcthread *t)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->incrit--;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (SA_UNLIKELY(t->stop_pending | (sa_load_relaxed(&sa_gc_stop_gen) & 1)) && t->incrit == 0)
        sa_gc_stop_deferred(t);
}

/* ---- thread registry and stopping the world (stw.c) ------------------------- */
SA_HIDDEN void sa_gc_stw_init(void);
SA_HIDDEN int sa_gc_register_self(bool explicit_reg);
SA_HIDDEN void sa_gc_note_main_thread(void);
/* The stop and restart signals: helpers that may register keep them. */
SA_HIDDEN void sa_gc_stop_signals(sigset_t *set);
SA_HIDDEN void sa_gc_unregister_self(void);
/* Stops every registered thread but the caller; returns ns to stop them. */
SA_HIDDEN uint64_t sa_gc_stop_world(void);
SA_HIDDEN uint64_t sa_gc_start_world(void); /* returns when the world was released */
/* World stopped: calls fn for each registered thread. */
SA_HIDDEN void sa_gc_each_thread(void (*fn)(sa_gcthread *, void *), void *arg);
SA_HIDDEN size_t sa_gc_nthreads(void);
SA_HIDDEN void sa_gc_threads_lock(void);
SA_HIDDEN void sa_gc_threads_lock_stoppable(void);
SA_HIDDEN void sa_gc_threads_unlock(void);
SA_HIDDEN void sa_gc_threads_fork_child(void (*dead)(sa_gcthread *));

/* ---- managed heap (heap.c, sweep.c) ----------------------------------------- */
SA_HIDDEN void *sa_gc_heap_alloc(sa_gcthread *t, size_t size, bool noscan);
SA_HIDDEN void sa_gc_heap_lock(void);
SA_HIDDEN void sa_gc_heap_unlock(void);
/* World stopped: moves a thread's cached spans to the unswept lists. */
SA_HIDDEN void sa_gc_flush_cache(sa_gcthread *t);
/* World stopped: every swept span becomes unswept (sweepgen += 2). */
SA_HIDDEN void sa_gc_flip_sweep(void);
/* Sweeps one unswept span (any class); false when none is left. */
SA_HIDDEN bool sa_gc_sweep_one(void);
SA_HIDDEN bool sa_gc_sweep_pending(void);
SA_HIDDEN void sa_gc_heap_fork_child(void);
SA_HIDDEN void sa_gc_heap_fork_dead_thread(sa_gcthread *t);
SA_HIDDEN void sa_gc_heap_check(uint32_t epoch);
SA_HIDDEN void sa_gc_heap_stats(uint64_t *spans, uint64_t *bytes);
/* Sweep of one span, under the gc heap lock (sweep.c). Returns objects
 * still allocated; *freed gets the objects freed. */
SA_HIDDEN unsigned sa_gc_sweep_span(sa_gcspan *g, unsigned *freed);
/* Objects and bytes freed by sweeping, and handed out by exited threads;
 * cumulative, gc heap lock. */
extern SA_HIDDEN uint64_t sa_gc_swept_freed, sa_gc_swept_freed_bytes;
extern SA_HIDDEN uint64_t sa_gc_exited_nalloc, sa_gc_exited_nalloc_bytes;
SA_HIDDEN void sa_gc_count_objects(uint64_t *objects, uint64_t *bytes);

/* ---- marking (mark.c) -------------------------------------------------------- */
typedef struct sa_gcwork {
    sa_wbuf *buf;       /* local buffer */
    uint64_t marked_bytes;
    uint64_t scanned_bytes;
} sa_gcwork;

/* Shades the object p points into (any word; nothing if it is no object). */
SA_HIDDEN void sa_gc_shade(uintptr_t p, sa_gcwork *w);
SA_HIDDEN void sa_gc_scan_range(uintptr_t lo, uintptr_t hi, sa_gcwork *w, bool untrusted);
SA_HIDDEN void sa_gc_drain(sa_gcwork *w);
/* World stopped: drains with the second marker thread, if it runs. */
SA_HIDDEN void sa_gc_drain_parallel(sa_gcwork *w);
SA_HIDDEN void sa_gc_start_helper(void);
SA_HIDDEN void sa_gc_stop_helper(void);
/* Inside a critical section while marking: scan some grey objects. */
SA_HIDDEN void sa_gc_assist(sa_gcthread *t);
/* Keep the global grey list stocked for assists and the helper. */
SA_HIDDEN void sa_gc_set_sharing(bool on);
SA_HIDDEN void sa_gc_helper_fork_child(void);
SA_HIDDEN void sa_gc_work_flush(sa_gcwork *w);
SA_HIDDEN bool sa_gc_work_empty(void);
SA_HIDDEN size_t sa_gc_take_thread_bufs(void);
SA_HIDDEN void sa_gc_mark_reset(void);
SA_HIDDEN void sa_gc_wbuf_lock(void);
SA_HIDDEN void sa_gc_wbuf_unlock(void);
SA_HIDDEN void sa_gc_wbuf_fork_child(void);
SA_HIDDEN bool sa_gc_is_marked(uintptr_t obj);
SA_HIDDEN void sa_gc_set_mark(uintptr_t obj, uint64_t *bytes);
/* Start of the managed object p points into, or 0. */
SA_HIDDEN uintptr_t sa_gc_object_start(uintptr_t p, size_t *size);
SA_HIDDEN void sa_gc_release_thread_buf(sa_gcthread *t);

/* ---- roots (roots.c) ----------------------------------------------------------- */
SA_HIDDEN void sa_gc_scan_roots(sa_gcwork *w, uint64_t *bytes);
SA_HIDDEN void sa_gc_scan_stacks(sa_gcwork *w, uint64_t *bytes);
SA_HIDDEN void sa_gc_roots_lock(void);
SA_HIDDEN void sa_gc_roots_unlock(void);
SA_HIDDEN void sa_gc_roots_fork_child(void);

/* ---- finalizers (finalizer.c) ---------------------------------------------- */
SA_HIDDEN void sa_gc_fin_init(void);
SA_HIDDEN void sa_gc_fin_mark_queue(sa_gcwork *w);
SA_HIDDEN void sa_gc_fin_mark_roots(sa_gcwork *w);
SA_HIDDEN size_t sa_gc_fin_collect(uint64_t *bytes);
SA_HIDDEN void sa_gc_fin_wake(void);
SA_HIDDEN void sa_gc_fin_lock(void);
SA_HIDDEN void sa_gc_fin_unlock(void);
SA_HIDDEN void sa_gc_fin_fork_child(void);

/* ---- pacer, statistics, gctrace (pacer.c) -------------------------------------- */
typedef struct sa_gccycle {
    uint64_t t_start, t_mark, t_markterm, t_end; /* monotonic ns */
    uint64_t stop1_ns, stop2_ns;                  /* time to stop, each STW */
    uint64_t cpu_mark_ns;                         /* collector CPU while marking */
    uint64_t heap0, heap1, heap2, goal;           /* bytes */
    uint64_t stack_bytes, root_bytes;
    bool forced, concurrent;
} sa_gccycle;

extern SA_HIDDEN int sa_gc_percent;   /* -1: off */
extern SA_HIDDEN int sa_gc_trace;
extern SA_HIDDEN int sa_gc_concurrent;
extern SA_HIDDEN int sa_gc_markers; /* marker threads while the world is stopped: 1 or 2 */
extern SA_HIDDEN uint64_t sa_gc_trigger; /* atomic: heap_live that starts a cycle */
extern SA_HIDDEN uint64_t sa_gc_goal;    /* atomic */
extern SA_HIDDEN uint64_t sa_gc_hard_goal; /* atomic: allocating threads wait past it */
SA_HIDDEN uint64_t sa_gc_nanotime(void);
SA_HIDDEN uint64_t sa_gc_thread_cputime(void);
SA_HIDDEN void sa_gc_pacer_commit(uint64_t marked);
SA_HIDDEN void sa_gc_record_cycle(const sa_gccycle *c);
SA_HIDDEN void sa_gc_record_pause(uint64_t pause_ns, uint64_t stop_ns, uint64_t end_ns);
SA_HIDDEN void sa_gc_add_cpu(uint64_t ns);

/* ---- the collector (gc.c) ------------------------------------------------------ */
SA_HIDDEN void sa_gc_init(void);
/* Asks for a cycle (heap trigger); never blocks. */
SA_HIDDEN void sa_gc_request(void);
/* Outside any critical section: waits until the cycle running or requested
 * now has finished marking. */
SA_HIDDEN void sa_gc_wait_cycle(void);

/* ---- hooks for the rest of the allocator --------------------------------------- */
SA_HIDDEN int sa_gc_option(const char *key, size_t klen, const char *val, size_t vlen);
SA_HIDDEN void sa_gc_fill_memstats(sa_memstats *out);

#endif /* SA_GC_INTERNAL_H */

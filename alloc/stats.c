/*
 * stats.c — statistics, folded on read, and the report.
 *
 * Each thread counts into its own mcache (sa_threadstats): small objects
 * handed out per span class, counted when an allocation window is retired
 * (plus the live windows when read); frees, counted by the freeing thread
 * with one plain increment; large blocks. Nothing on the fast path touches a
 * shared cache line. Readers sum the live mcaches and sa_global_stats, which
 * holds what exited threads and cache-less allocations counted, then add the
 * page heap's and the scavenger's own counters.
 *
 * The meanings follow Go's runtime.MemStats (see include/spanalloc.h):
 * HeapAlloc counts object sizes (the class size for small objects, whole
 * pages for large ones); HeapSys = HeapInuse + HeapIdle by construction.
 *
 * The report (SPANALLOC=stats=1 at exit, sa_stats_print on demand) also
 * says what the library's own threads cost: helpers started and stopped, by
 * kind (helper.h). It is produced by one emitter that writes either to a stdio FILE or, at exit, to
 * file descriptor 2 with no allocation.
 */
#include <stdio.h>
#include <string.h>

#include "helper.h"
#include "internal.h"

SA_HIDDEN sa_threadstats sa_global_stats;

void sa_stats_add_global(uint64_t *field, uint64_t v)
{
    __atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

static void fold_all(sa_threadstats *t)
{
    const uint64_t *g = (const uint64_t *)&sa_global_stats;
    uint64_t *d = (uint64_t *)t;
    for (size_t i = 0; i < sizeof *t / sizeof(uint64_t); i++)
        d[i] = sa_load_relaxed(&g[i]);
    sa_mcache_fold_stats(t);
}

void sa_read_memstats(sa_memstats *out)
{
    sa_ensure_init();
    sa_threadstats t;
    fold_all(&t);
    memset(out, 0, sizeof *out);

    out->num_size_classes = SA_NUM_SIZE_CLASSES;
    for (unsigned spc = 1; spc < SA_NUM_SPAN_CLASSES; spc++) {
        unsigned sc = sa_spanclass_sizeclass(spc);
        if (sc == 0 || sc >= SA_NUM_SIZE_CLASSES)
            continue;
        sa_memstats_class *c = &out->by_size[sc];
        c->size = sa_class_to_size[sc];
        c->mallocs += t.nmalloc[spc];
        c->frees += t.nfree[spc];
    }
    sa_memstats_class *large = &out->by_size[0];
    large->mallocs = t.nlarge_alloc;
    large->frees = t.nlarge_free;
    large->objects = t.nlarge_alloc - t.nlarge_free;
    large->bytes = t.large_bytes_alloc - t.large_bytes_free;
    out->total_alloc = t.large_bytes_alloc;
    for (unsigned sc = 0; sc < SA_NUM_SIZE_CLASSES; sc++) {
        sa_memstats_class *c = &out->by_size[sc];
        if (sc > 0) {
            /* a free can be counted before the window that handed the object
             * out is folded (another thread's): never report negative */
            c->objects = c->mallocs > c->frees ? c->mallocs - c->frees : 0;
            c->bytes = c->objects * c->size;
            out->total_alloc += c->mallocs * c->size;
        }
        out->mallocs += c->mallocs;
        out->frees += c->frees;
        out->heap_alloc += c->bytes;
        out->heap_objects += c->objects;
    }
    out->alloc = out->heap_alloc;

    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    out->heap_sys = (uint64_t)h.pages_total * SA_PAGE_SIZE;
    out->heap_inuse = (uint64_t)h.pages_inuse * SA_PAGE_SIZE;
    out->heap_idle = out->heap_sys - out->heap_inuse;
    out->heap_released = (uint64_t)h.pages_released * SA_PAGE_SIZE;
    out->pages_faulted = h.pages_faulted;
    out->mspan_inuse = h.span_inuse;
    out->mspan_sys = h.span_sys;
    size_t mc_inuse, mc_sys;
    sa_mcache_pool_stats(&mc_inuse, &mc_sys);
    out->mcache_inuse = mc_inuse;
    out->mcache_sys = mc_sys;
    out->mcentral_sys = sizeof sa_central;
    {
        uint64_t started[SA_HELPER_KINDS], stopped[SA_HELPER_KINDS];
        sa_helpers_read(started, stopped);
        out->helpers_started = out->helpers_stopped = 0;
        for (int k = 0; k < SA_HELPER_KINDS; k++) {
            out->helpers_started += started[k];
            out->helpers_stopped += stopped[k];
        }
    }
    out->mheap_sys = h.arena_meta_sys;
    out->sys = out->heap_sys + out->mspan_sys + out->mcache_sys + out->mcentral_sys +
               out->mheap_sys;

    sa_scavstats sc;
    sa_scavstats_read(&sc);
    out->scav_released = sc.released_bg + sc.released_eager + sc.released_forced;
    out->scav_madvise_calls = sc.madvise_calls;
    out->scav_ns = sc.ns;
#if defined(SA_GC) && SA_GC
    sa_gc_fill_memstats(out);
#endif
}

void sa_get_counters(sa_counters *out)
{
    sa_memstats m;
    sa_read_memstats(&m);
    memset(out, 0, sizeof *out);
    out->mallocs = m.mallocs;
    out->frees = m.frees;
    out->large_allocs = m.by_size[0].mallocs;
    out->heap_sys = m.heap_sys;
    out->heap_inuse = m.heap_inuse;
    out->heap_released = m.heap_released;
    out->heap_free = m.heap_idle - m.heap_released;
    out->scav_released = m.scav_released;
    out->scav_madvise_calls = m.scav_madvise_calls;
    out->scav_ns = m.scav_ns;
    out->pages_faulted = m.pages_faulted;
}

const char *sa_build_option(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "scavenger") == 0)
        return sa_scavenger_policy_name();
    if (strcmp(name, "madvise") == 0)
        return sa_madvise_name();
    if (strcmp(name, "valgrind") == 0) {
#ifdef SPANALLOC_VALGRIND
        return "on";
#else
        return "off";
#endif
    }
    if (strcmp(name, "gc") == 0) {
#if defined(SA_GC) && SA_GC
        return "on";
#else
        return "off";
#endif
    }
    if (strcmp(name, "version") == 0)
        return sa_version();
    if (strcmp(name, "debug") == 0) {
#if defined(SA_DEBUG) && SA_DEBUG
        return "on";
#else
        return "off";
#endif
    }
    return NULL;
}

const char *sa_version(void)
{
    return "0.1.0";
}

/* ---- the report --------------------------------------------------------- */

typedef struct emitter {
    FILE *fp; /* NULL: write(2) to stderr */
} emitter;

static void emit(emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sa_format understands %s %zu %x %d %p: the report sticks to those. */
static void emit(emitter *e, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = sa_vformat(line, sizeof line, fmt, ap);
    va_end(ap);
    if (e->fp)
        fwrite(line, 1, n, e->fp);
    else
        sa_os_write_stderr(line, n);
}

/* Collector builds have four kinds of helper; others only the scavenger. */
#if defined(SA_GC) && SA_GC
#define HELPER_KINDS SA_HELPER_KINDS
#else
#define HELPER_KINDS (SA_HELPER_SCAVENGER + 1)
#endif

static void emit_helpers_text(emitter *e)
{
    uint64_t started[SA_HELPER_KINDS], stopped[SA_HELPER_KINDS];
    sa_helpers_read(started, stopped);
    emit(e, "  helper threads:");
    for (int k = 0; k < HELPER_KINDS; k++)
        emit(e, " %s started=%zu stopped=%zu%s", sa_helper_name((sa_helper_kind)k),
             (size_t)started[k], (size_t)stopped[k], k + 1 < HELPER_KINDS ? "," : "\n");
}

static void emit_helpers_json(emitter *e)
{
    uint64_t started[SA_HELPER_KINDS], stopped[SA_HELPER_KINDS];
    sa_helpers_read(started, stopped);
    emit(e, " \"helper_threads\": {");
    for (int k = 0; k < HELPER_KINDS; k++)
        emit(e, "\"%s\": {\"started\": %zu, \"stopped\": %zu}%s",
             sa_helper_name((sa_helper_kind)k), (size_t)started[k], (size_t)stopped[k],
             k + 1 < HELPER_KINDS ? ", " : "},\n");
}

static void report_text(emitter *e, const sa_memstats *m)
{
    emit(e, "spanalloc %s: scavenger=%s madvise=%s valgrind=%s\n", sa_version(),
         sa_build_option("scavenger"), sa_build_option("madvise"), sa_build_option("valgrind"));
    emit(e, "spanalloc: stats: mallocs=%zu frees=%zu heap_objects=%zu heap_alloc=%zu "
            "total_alloc=%zu\n",
         (size_t)m->mallocs, (size_t)m->frees, (size_t)m->heap_objects, (size_t)m->heap_alloc,
         (size_t)m->total_alloc);
    emit(e, "  heap: sys=%zu inuse=%zu idle=%zu released=%zu\n", (size_t)m->heap_sys,
         (size_t)m->heap_inuse, (size_t)m->heap_idle, (size_t)m->heap_released);
    emit(e, "  metadata: mspan=%zu/%zu mcache=%zu/%zu mcentral=%zu mheap=%zu sys=%zu\n",
         (size_t)m->mspan_inuse, (size_t)m->mspan_sys, (size_t)m->mcache_inuse,
         (size_t)m->mcache_sys, (size_t)m->mcentral_sys, (size_t)m->mheap_sys, (size_t)m->sys);
    emit(e, "  scavenger: released=%zu madvise=%zu time_us=%zu faulted_pages=%zu\n",
         (size_t)m->scav_released, (size_t)m->scav_madvise_calls, (size_t)(m->scav_ns / 1000),
         (size_t)m->pages_faulted);
    emit_helpers_text(e);
#if defined(SA_GC) && SA_GC
    emit(e, "  gc: num_gc=%zu forced=%zu pause_total_us=%zu pause_us(p50/p99/max)=%zu/%zu/%zu "
            "stop_us(p50/p99/max)=%zu/%zu/%zu next_gc=%zu objects=%zu bytes=%zu\n",
         (size_t)m->num_gc, (size_t)m->num_forced_gc, (size_t)(m->pause_total_ns / 1000),
         (size_t)(m->pause_p50_ns / 1000), (size_t)(m->pause_p99_ns / 1000),
         (size_t)(m->pause_max_ns / 1000), (size_t)(m->stop_p50_ns / 1000),
         (size_t)(m->stop_p99_ns / 1000), (size_t)(m->stop_max_ns / 1000), (size_t)m->next_gc,
         (size_t)m->gc_objects, (size_t)m->gc_bytes);
#endif
    emit(e, "  %5s %8s %12s %12s %12s %14s\n", "class", "size", "mallocs", "frees", "live",
         "live bytes");
    for (unsigned c = 0; c < m->num_size_classes; c++) {
        const sa_memstats_class *k = &m->by_size[c];
        if (k->mallocs == 0)
            continue;
        char size[24];
        if (c == 0)
            sa_format(size, sizeof size, "large");
        else
            sa_format(size, sizeof size, "%zu", k->size);
        emit(e, "  %5d %8s %12zu %12zu %12zu %14zu\n", (int)c, size, (size_t)k->mallocs,
             (size_t)k->frees, (size_t)k->objects, (size_t)k->bytes);
    }
}

static void report_json(emitter *e, const sa_memstats *m)
{
    emit(e, "{\"version\": \"%s\", \"build\": {\"scavenger\": \"%s\", \"madvise\": \"%s\", "
            "\"valgrind\": \"%s\"},\n",
         sa_version(), sa_build_option("scavenger"), sa_build_option("madvise"),
         sa_build_option("valgrind"));
#define F(name) emit(e, " \"" #name "\": %zu,\n", (size_t)m->name)
    F(alloc); F(total_alloc); F(sys); F(mallocs); F(frees);
    F(heap_alloc); F(heap_sys); F(heap_idle); F(heap_inuse); F(heap_released);
    F(heap_objects); F(mspan_inuse); F(mspan_sys); F(mcache_inuse); F(mcache_sys);
    F(mcentral_sys); F(mheap_sys); F(scav_released); F(scav_madvise_calls); F(scav_ns);
    F(pages_faulted); F(num_gc); F(pause_total_ns); F(next_gc);
#if defined(SA_GC) && SA_GC
    F(num_forced_gc); F(last_gc); F(pause_p50_ns); F(pause_p99_ns); F(pause_max_ns);
    F(stop_p50_ns); F(stop_p99_ns); F(stop_max_ns); F(gc_objects); F(gc_bytes);
#endif
#undef F
    emit_helpers_json(e);
    emit(e, " \"by_size\": [\n");
    bool first = true;
    for (unsigned c = 0; c < m->num_size_classes; c++) {
        const sa_memstats_class *k = &m->by_size[c];
        emit(e, "%s  {\"class\": %d, \"size\": %zu, \"mallocs\": %zu, \"frees\": %zu, "
                "\"objects\": %zu, \"bytes\": %zu}",
             first ? "" : ",\n", (int)c, k->size, (size_t)k->mallocs, (size_t)k->frees,
             (size_t)k->objects, (size_t)k->bytes);
        first = false;
    }
    emit(e, "\n ]\n}\n");
}

static void report(emitter *e, bool json)
{
    sa_memstats m;
    sa_read_memstats(&m);
    if (json)
        report_json(e, &m);
    else
        report_text(e, &m);
}

void sa_stats_print(FILE *fp, const char *opts)
{
    emitter e = {fp ? fp : stderr};
    report(&e, opts && strstr(opts, "json") != NULL);
    fflush(e.fp);
}

void sa_stats_print_exit(void)
{
    emitter e = {NULL};
    report(&e, sa_opts.stats_json);
}

__attribute__((destructor)) static void sa_stats_at_exit(void)
{
    if (sa_opts.stats)
        sa_stats_print_exit();
}

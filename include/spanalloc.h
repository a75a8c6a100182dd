/*
 * spanalloc.h — the whole public API of spanalloc.
 *
 * spanalloc is a malloc built like the Go runtime's allocator: per-thread
 * caches (mcache) over spans of same-sized objects tracked by bitmaps, one
 * central list per size class (mcentral), and a page heap (mheap).
 *
 * Every function here has the `sa_` prefix and works whether or not the
 * library is also the process malloc. The shared library additionally exports
 * the unprefixed C/POSIX/glibc names (malloc, free, ...), so linking it or
 * preloading it (LD_PRELOAD, tools/spanalloc-run) makes it the process malloc.
 *
 * Conventions shared by every allocating call:
 *  - a size above PTRDIFF_MAX, an overflowing count*size, or a size whose
 *    alignment padding overflows returns NULL with errno = ENOMEM;
 *  - every result is aligned to at least alignof(max_align_t) (16 bytes);
 *  - a zero size returns a unique pointer that must be freed.
 * Passing a pointer this library did not return (or one already freed, or an
 * interior pointer) to a freeing call prints one line on stderr naming the
 * call and the address, then aborts.
 */
#ifndef SPANALLOC_H
#define SPANALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPANALLOC_VERSION_MAJOR 0
#define SPANALLOC_VERSION_MINOR 1
#define SPANALLOC_VERSION_PATCH 0

#if defined(__GNUC__)
#define SA_API __attribute__((visibility("default")))
#define SA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define SA_API
#define SA_MALLOC_ATTR
#endif

/* ---- the malloc family ------------------------------------------------ */

/* Allocates size bytes (uninitialised). */
SA_API SA_MALLOC_ATTR void *sa_malloc(size_t size);
/* Allocates nmemb*size zeroed bytes; NULL+ENOMEM when the product overflows. */
SA_API SA_MALLOC_ATTR void *sa_calloc(size_t nmemb, size_t size);
/* Resizes ptr keeping its contents (in place when the block allows).
 * ptr NULL acts as sa_malloc; size 0 frees ptr and returns NULL (glibc's
 * choice). On failure returns NULL with errno = ENOMEM and ptr is untouched. */
SA_API void *sa_realloc(void *ptr, size_t size);
/* sa_realloc(ptr, nmemb*size) with overflow checking (NULL+ENOMEM). */
SA_API void *sa_reallocarray(void *ptr, size_t nmemb, size_t size);
/* Frees ptr; NULL is a no-op. */
SA_API void sa_free(void *ptr);
/* C23: frees ptr that was allocated with this size (the size is checked). */
SA_API void sa_free_sized(void *ptr, size_t size);
/* C23: frees ptr from sa_aligned_alloc(alignment, size). */
SA_API void sa_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Aligned allocation. Alignments up to 2^28 and beyond work.
 * sa_posix_memalign: alignment must be a power of two multiple of
 * sizeof(void *), else returns EINVAL; on any failure *memptr is untouched;
 * returns ENOMEM when out of memory. */
SA_API int sa_posix_memalign(void **memptr, size_t alignment, size_t size);
/* C11: alignment must be a power of two (any, also < sizeof(void *)),
 * else NULL with errno = EINVAL. */
SA_API SA_MALLOC_ATTR void *sa_aligned_alloc(size_t alignment, size_t size);
/* Like sa_aligned_alloc (glibc accepts a non power of two by rounding up). */
SA_API SA_MALLOC_ATTR void *sa_memalign(size_t alignment, size_t size);
/* Page-aligned allocation (4 KiB system pages). */
SA_API SA_MALLOC_ATTR void *sa_valloc(size_t size);
/* Page-aligned allocation of size rounded up to a whole page. */
SA_API SA_MALLOC_ATTR void *sa_pvalloc(size_t size);

/* The usable size of ptr: at least what was requested, stable for the
 * block's life; 0 for NULL. */
SA_API size_t sa_malloc_usable_size(void *ptr);

/* ---- introspection ------------------------------------------------------ */

/* Counters read on demand (folded from every thread's cache). */
typedef struct sa_counters {
    size_t mallocs;      /* cumulative allocations served (small + large) */
    size_t frees;        /* cumulative frees */
    size_t large_allocs; /* cumulative allocations over 32 KiB */
    size_t heap_sys;     /* bytes of address space mapped for the heap */
    size_t heap_inuse;   /* bytes in spans that are in use */
    size_t heap_free;    /* free heap bytes still backed by memory (retained) */
    size_t heap_released;      /* free heap bytes handed back to the kernel */
    size_t scav_released;      /* bytes the scavenger released, cumulative */
    size_t scav_madvise_calls; /* madvise calls made by the scavenger */
    size_t scav_ns;            /* time spent releasing, in nanoseconds */
    size_t pages_faulted;      /* released pages handed out again (8 KiB each) */
} sa_counters;

/* Fills *out with a snapshot of the counters above. */
SA_API void sa_get_counters(sa_counters *out);

#define SA_MEMSTATS_CLASSES 64 /* by_size entries (num_size_classes used) */
#define SA_MEMSTATS_PAUSES 256 /* pause_ns / pause_end ring */

/* One size class in sa_memstats; by_size[0] stands for large objects. */
typedef struct sa_memstats_class {
    size_t size;       /* object size (0 for the large row) */
    uint64_t mallocs;  /* cumulative objects allocated */
    uint64_t frees;    /* cumulative objects freed */
    uint64_t objects;  /* live objects: mallocs - frees */
    uint64_t bytes;    /* live bytes: objects * size (large: pages) */
} sa_memstats_class;

/* Statistics with the meanings of Go's runtime.MemStats. Counters are kept
 * per thread and folded when read: a snapshot taken while other threads
 * allocate may be off by their in-flight operations, never by more. */
typedef struct sa_memstats {
    /* general */
    uint64_t alloc;         /* = heap_alloc */
    uint64_t total_alloc;   /* cumulative bytes allocated (object sizes) */
    uint64_t sys;           /* bytes obtained from the OS: heap + metadata */
    uint64_t mallocs;       /* cumulative objects allocated */
    uint64_t frees;         /* cumulative objects freed */
    /* heap */
    uint64_t heap_alloc;    /* bytes of allocated objects */
    uint64_t heap_sys;      /* heap address space: heap_inuse + heap_idle */
    uint64_t heap_idle;     /* bytes in free pages, retained or released */
    uint64_t heap_inuse;    /* bytes in spans in use */
    uint64_t heap_released; /* free bytes handed back to the kernel */
    uint64_t heap_objects;  /* live objects: mallocs - frees */
    /* metadata */
    uint64_t mspan_inuse, mspan_sys;   /* span structs */
    uint64_t mcache_inuse, mcache_sys; /* per-thread caches */
    uint64_t mcentral_sys;             /* central lists */
    uint64_t mheap_sys;                /* arena metadata: page maps, bitmaps */
    /* scavenger */
    uint64_t scav_released;      /* cumulative bytes released */
    uint64_t scav_madvise_calls;
    uint64_t scav_ns;
    uint64_t pages_faulted;      /* released pages handed out again */
    /* helper threads (scavenger; collector, marker, finalizer): started and
     * stopped, cumulative. Each live one holds a few blocks of its own
     * (glibc's thread bookkeeping), counted in heap_objects. */
    uint64_t helpers_started, helpers_stopped;
    /* collector (zero unless built with SPANALLOC_GC) */
    uint64_t next_gc, last_gc, pause_total_ns;
    uint64_t pause_ns[SA_MEMSTATS_PAUSES], pause_end[SA_MEMSTATS_PAUSES];
    uint32_t num_gc, num_forced_gc;
    double gc_cpu_fraction;
    uint64_t pause_p50_ns, pause_p99_ns, pause_max_ns;
    uint64_t stop_p50_ns, stop_p99_ns, stop_max_ns;
    uint64_t gc_objects, gc_bytes; /* managed objects (and bytes) not yet swept away */
    /* by size class */
    uint32_t num_size_classes;
    sa_memstats_class by_size[SA_MEMSTATS_CLASSES];
} sa_memstats;

/* Fills *out with a snapshot (see sa_memstats). */
SA_API void sa_read_memstats(sa_memstats *out);

/* Writes the statistics report to fp: opts NULL or "" for text, "json" for
 * JSON. The same report SPANALLOC=stats=1 prints at exit. */
SA_API void sa_stats_print(FILE *fp, const char *opts);

/* ---- heap profiling ------------------------------------------------------- */

/* Writes the sampled heap profile (SPANALLOC=prof_rate=524288 turns
 * sampling on, like Go's MemProfileRate; sa_option_set("prof_rate", ...)
 * too) to path in the gperftools heap-profile format: view it with
 * `google-pprof --text PROGRAM path`. Returns 0, or -1 with errno set. */
SA_API int sa_heap_profile_write(const char *path);

/* Sets a runtime option as the SPANALLOC variable would ("stats", "1").
 * Returns 0, or -1 (errno EINVAL) for an unknown key or a bad value. */
SA_API int sa_option_set(const char *key, const char *value);

/* Walks every span, mcentral and mcache and checks the allocator's
 * invariants (bitmap counts against the counters, page map against spans,
 * no span in two places, page-allocator summaries against bitmaps). On a
 * violation prints one line naming the span and aborts; returns 0
 * otherwise. Takes every allocator lock: call it while the other threads
 * are not allocating or freeing. */
SA_API int sa_heap_check(void);

/* Returns the library version as "major.minor.patch". */
SA_API const char *sa_version(void);

/* The build option in force: "scavenger" (background|eager|off), "madvise"
 * (dontneed|free), "valgrind" (on|off), "gc" (on|off), "version"; NULL for
 * other names. */
SA_API const char *sa_build_option(const char *name);

/* ---- scavenger ------------------------------------------------------------ */

/* Releases up to bytes of free heap pages to the kernel now (0: every free
 * page) and returns how many bytes it released. Returns 0 when the build's
 * scavenger policy is off. */
SA_API size_t sa_scavenge(size_t bytes);
/* Soft memory limit: when the retained heap exceeds it, free pages are
 * released at once down to 95% of it. 0 removes the limit. Also settable as
 * SPANALLOC=memory_limit=512M. */
SA_API void sa_set_memory_limit(size_t bytes);
/* The soft memory limit in force (0: none). */
SA_API size_t sa_get_memory_limit(void);

/* ---- garbage collector (built with -DSPANALLOC_GC=ON; docs/gc.md) ------------
 * Declared always; defined only in collector builds (sa_build_option("gc")
 * says "on"). A tri-colour mark-sweep collector over objects from
 * sa_gc_alloc, which are never passed to free. Roots: ranges registered with
 * sa_gc_add_root, and the stacks and registers of registered threads (the
 * main thread is registered at load; a thread is registered by its first
 * sa_gc_* call and unregistered at exit), scanned conservatively: any word
 * that points into an object, interior pointers included, keeps it alive.
 * Unregistered memory (malloc blocks, other globals) is not scanned.
 * Options: SPANALLOC=gc_percent=N|off, gctrace=1, gc_mode=stw|concurrent
 * (default concurrent: pointer stores into managed objects must then use
 * SA_GC_STORE; a program that never does runs correctly in gc_mode=stw). */

#define SA_GC_NOSCAN 1u /* the object holds no pointers: never scanned */

/* Allocates size zeroed bytes managed by the collector (NULL+ENOMEM).
 * Dropping the result is fine: it is garbage. */
SA_API void *sa_gc_alloc(size_t size, unsigned flags);
/* Registers [addr, addr+len) as a root range; 0 or -1. */
SA_API int sa_gc_add_root(void *addr, size_t len);
/* Removes the root range that starts at addr; 0 or -1 if there is none. */
SA_API int sa_gc_remove_root(void *addr);
/* Registers / unregisters the calling thread: its stack and registers are
 * scanned at every stop of the world (threads that exit are unregistered). */
SA_API int sa_gc_register_thread(void);
SA_API void sa_gc_unregister_thread(void);
/* Runs a full cycle now (also when gc_percent is off), finishes sweeping,
 * and returns. */
SA_API void sa_gc_collect(void);
/* GOGC: the next cycle starts when the heap has grown by percent over the
 * live heap (minimum goal 4 MiB); negative = off. Returns the old value. */
SA_API int sa_gc_set_percent(int percent);
/* Calls fn(obj, arg) once obj is unreachable, outside every allocator lock,
 * on the finalizer thread or in sa_gc_run_finalizers; fn NULL removes it.
 * obj must be an object's start. Ordering: along a chain of finalizable
 * objects the one pointing runs first; finalizable cycles are never
 * finalized. Returns 0 or -1. */
SA_API int sa_gc_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg);
/* Runs the finalizers that are due in the calling thread; returns how many. */
SA_API size_t sa_gc_run_finalizers(void);
/* Start and size of the managed object p points into (NULL / 0 if none). */
SA_API void *sa_gc_base(void *p);
SA_API size_t sa_gc_size(void *p);
/* The write barrier: *slot = value, shading as the concurrent mark needs.
 * Use it for every store of a pointer into a managed object that may
 * overwrite a pointer (initialising stores into a fresh object may be
 * plain). Pause percentiles: sa_read_memstats (pause_p50_ns ...). */
SA_API void sa_gc_store(void **slot, void *value);
#define SA_GC_STORE(slot, value) sa_gc_store((void **)&(slot), (void *)(value))

#ifdef __cplusplus
}
#endif

#endif /* SPANALLOC_H */

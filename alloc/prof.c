/*
 * prof.c — sampled heap profiling.
 *
 * Owns: the sampling rate (prof_rate, Go's MemProfileRate: one sample per
 * prof_rate bytes allocated on average), the profile buckets (one per call
 * stack and object size: allocations and frees, objects and bytes), and the
 * writer of the profile in the gperftools heap-profile text format
 * ("heap_v2/<rate>"), which google-pprof reads and un-samples.
 *
 * Sampling costs the malloc fast path nothing. Each thread keeps, per size
 * class, the bytes left until its next sample (exponentially distributed,
 * mean prof_rate: per-class Poisson processes of the same rate add up to
 * one sample per prof_rate bytes overall). When an allocation window is
 * loaded (slow path, mcache.c) and the sample point falls inside it, the
 * window is cut short just before the sample point and the rest is set
 * aside; the fast path runs dry exactly at the sampled allocation and lands
 * in the slow path, which serves that allocation from a span of its own (a
 * "large" span marked sampled, one page for a small object, as tcmalloc
 * does) and records its stack. Freeing a sampled object then reaches the
 * large-span slow path, which records the free. Allocations over 32 KiB are
 * always slow path and are sampled there.
 *
 * The stack is captured with glibc's backtrace() and cut at the program's
 * call into the allocator: every slow path knows its entry point's return
 * address (__builtin_return_address in the exported function), and frames
 * above it are dropped.
 *
 * Locking: prof_lock guards the buckets; it is taken only to record a
 * sample, a free of a sampled object, or to write the profile -- never on
 * the fast path -- and after the allocator's own locks in the fork order.
 * A thread in the middle of recording (backtrace may allocate the first
 * time it runs) does not sample again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define NBUCKETS 4096

SA_HIDDEN size_t sa_prof_rate; /* atomic: bytes, 0 = off */
static uint64_t prof_epoch;    /* atomic: bumped when the rate changes */

static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_prof_bucket *table[NBUCKETS];
static sa_fixalloc bucket_pool = {.size = sizeof(sa_prof_bucket)};

void sa_prof_set_rate(size_t rate)
{
    sa_store_relaxed(&sa_prof_rate, rate);
    __atomic_fetch_add(&prof_epoch, 1, __ATOMIC_RELAXED);
}

/* xorshift64*, per thread (seeded from the mcache address and the clock). */
static uint64_t next_random(sa_mcache *mc)
{
    uint64_t x = mc->prof_rng;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint64_t)(uintptr_t)mc ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
        x |= 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    mc->prof_rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Bytes until the next sample: exponential with mean sa_prof_rate. */
static uint64_t next_interval(sa_mcache *mc)
{
    size_t rate = sa_load_relaxed(&sa_prof_rate);
    if (rate == 0)
        return UINT64_MAX;
    double u = (double)((next_random(mc) >> 11) + 1) / 9007199254740993.0; /* (0,1] */
    double v = -log(u) * (double)rate;
    return v < 1 ? 1 : (uint64_t)v;
}

/* Re-seeds the thread's countdowns after the rate changed. */
static void sync_thread(sa_mcache *mc)
{
    uint64_t e = sa_load_relaxed(&prof_epoch);
    if (mc->prof_epoch == e)
        return;
    mc->prof_epoch = e;
    for (unsigned c = 0; c < SA_NUM_SIZE_CLASSES; c++)
        mc->sample_left[c] = next_interval(mc);
    mc->large_sample_left = next_interval(mc);
}

bool sa_prof_active(sa_mcache *mc)
{
    if (sa_load_relaxed(&sa_prof_rate) == 0 && mc->prof_epoch == sa_load_relaxed(&prof_epoch))
        return false;
    sync_thread(mc);
    return sa_load_relaxed(&sa_prof_rate) != 0 && !mc->in_prof;
}

/* ---- windows ---------------------------------------------------------------- */

/* Objects handed out from a window count against the class's countdown. */
void sa_prof_consume(sa_mcache *mc, unsigned spc, uint64_t nobjs, uint32_t elemsize)
{
    uint64_t bytes = nobjs * elemsize;
    mc->sample_left[spc] = mc->sample_left[spc] > bytes ? mc->sample_left[spc] - bytes : 0;
}

/* Cuts s's window just before the sample point; the rest of the window is
 * set aside in mc->hidden[spc] (bit i = slot window_base + i). */
void sa_prof_mask_window(sa_mcache *mc, sa_span *s, unsigned spc)
{
    uint64_t cache = s->allocCache;
    if (cache == 0 || mc->hidden[spc])
        return;
    uint64_t k = mc->sample_left[spc] / s->elemsize; /* objects before the sample */
    unsigned avail = sa_popcount64(cache);
    if (k >= avail)
        return;
    uint64_t keep = 0, rest = cache;
    for (uint64_t i = 0; i < k; i++) {
        uint64_t low = rest & (~rest + 1);
        keep |= low;
        rest ^= low;
    }
    s->allocCache = keep;
    s->windowFree -= (uint32_t)sa_popcount64(rest);
    s->allocCount -= (uint32_t)sa_popcount64(rest); /* free, not in the window */
    mc->hidden[spc] = rest << (s->freeindex & 63);
}

/* Puts the set-aside part of the window back (after the sample). */
void sa_prof_restore_window(sa_mcache *mc, sa_span *s, unsigned spc)
{
    uint64_t h = mc->hidden[spc];
    mc->hidden[spc] = 0;
    if (!h)
        return;
    uint64_t back = h >> (s->freeindex & 63);
    s->allocCache |= back;
    s->windowFree += (uint32_t)sa_popcount64(back);
    s->allocCount += (uint32_t)sa_popcount64(back);
}

/* ---- buckets ------------------------------------------------------------------ */

static uint64_t hash_stack(void *const *stack, int depth, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull ^ size;
    for (int i = 0; i < depth; i++) {
        h ^= (uint64_t)(uintptr_t)stack[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The bucket for (stack, size); prof_lock held. NULL when out of memory. */
static sa_prof_bucket *bucket_for(void *const *stack, int depth, size_t size)
{
    uint64_t h = hash_stack(stack, depth, size);
    sa_prof_bucket **slot = &table[h % NBUCKETS];
    for (sa_prof_bucket *b = *slot; b; b = b->next)
        if (b->hash == h && b->size == size && b->depth == depth &&
            memcmp(b->stack, stack, (size_t)depth * sizeof(void *)) == 0)
            return b;
    sa_prof_bucket *b = sa_fixalloc_alloc(&bucket_pool);
    if (!b)
        return NULL;
    memset(b, 0, sizeof *b);
    b->hash = h;
    b->size = size;
    b->depth = depth;
    memcpy(b->stack, stack, (size_t)depth * sizeof(void *));
    b->next = *slot;
    *slot = b;
    return b;
}

/* Records a sampled allocation of size bytes made by the program at return
 * address ra; returns its bucket (to hang on the sampled span). */
sa_prof_bucket *sa_prof_record_alloc(sa_mcache *mc, size_t size, void *ra)
{
    void *frames[SA_PROF_MAX_DEPTH + 16];
    if (mc)
        mc->in_prof = true;
    int n = backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
    if (mc)
        mc->in_prof = false;
    /* Drop the allocator's own frames: everything up to the program's call
     * site ra. If it is not there (tail call), keep ra alone on top. */
    int first = -1;
    for (int i = 0; i < n; i++)
        if (frames[i] == ra) {
            first = i;
            break;
        }
    void *stack[SA_PROF_MAX_DEPTH];
    int depth = 0;
    if (first < 0)
        stack[depth++] = ra;
    else
        for (int i = first; i < n && depth < SA_PROF_MAX_DEPTH; i++)
            stack[depth++] = frames[i];
    pthread_mutex_lock(&prof_lock);
    sa_prof_bucket *b = bucket_for(stack, depth, size);
    if (b) {
        b->allocs++;
        b->alloc_bytes += size;
    }
    pthread_mutex_unlock(&prof_lock);
    return b;
}

void sa_prof_record_free(sa_prof_bucket *b)
{
    pthread_mutex_lock(&prof_lock);
    b->frees++;
    b->free_bytes += b->size;
    pthread_mutex_unlock(&prof_lock);
}

/* ---- large allocations ------------------------------------------------------------ */

/* True when this large allocation of size bytes is to be sampled. */
bool sa_prof_sample_large(sa_mcache *mc, size_t size)
{
    if (!sa_prof_active(mc))
        return false;
    if (mc->large_sample_left > size) {
        mc->large_sample_left -= size;
        return false;
    }
    mc->large_sample_left = next_interval(mc);
    return true;
}

/* A new countdown for class spc, after its sample was taken. */
void sa_prof_reset_class(sa_mcache *mc, unsigned spc)
{
    mc->sample_left[spc] = next_interval(mc);
}

/* ---- the profile ---------------------------------------------------------------- */

typedef struct writer {
    int fd;
    char buf[4096];
    size_t len;
    bool failed;
} writer;

static void wflush(writer *w)
{
    size_t off = 0;
    while (off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n <= 0) {
            w->failed = true;
            break;
        }
        off += (size_t)n;
    }
    w->len = 0;
}

static void wputs(writer *w, const char *s, size_t n)
{
    while (n > 0) {
        if (w->len == sizeof w->buf)
            wflush(w);
        size_t k = sizeof w->buf - w->len < n ? sizeof w->buf - w->len : n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static void wprintf(writer *w, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    size_t n = sa_vformat(line, sizeof line, fmt, ap);
    va_end(ap);
    wputs(w, line, n);
}

static void counts_line(writer *w, uint64_t inuse_n, uint64_t inuse_b, uint64_t n, uint64_t b)
{
    wprintf(w, "%6zu: %8zu [%6zu: %8zu] @", (size_t)inuse_n, (size_t)inuse_b, (size_t)n,
            (size_t)b);
}

__attribute__((visibility("default"))) int sa_heap_profile_write(const char *path)
{
    if (!path) {
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    writer w = {.fd = fd};
    pthread_mutex_lock(&prof_lock);
    uint64_t tn = 0, tb = 0, an = 0, ab = 0;
    for (unsigned i = 0; i < NBUCKETS; i++)
        for (sa_prof_bucket *b = table[i]; b; b = b->next) {
            tn += b->allocs - b->frees;
            tb += b->alloc_bytes - b->free_bytes;
            an += b->allocs;
            ab += b->alloc_bytes;
        }
    wputs(&w, "heap profile: ", 14);
    counts_line(&w, tn, tb, an, ab);
    wprintf(&w, " heap_v2/%zu\n", sa_load_relaxed(&sa_prof_rate));
    for (unsigned i = 0; i < NBUCKETS; i++)
        for (sa_prof_bucket *b = table[i]; b; b = b->next) {
            counts_line(&w, b->allocs - b->frees, b->alloc_bytes - b->free_bytes, b->allocs,
                        b->alloc_bytes);
            for (int k = 0; k < b->depth; k++)
                wprintf(&w, " %p", b->stack[k]);
            wputs(&w, "\n", 1);
        }
    pthread_mutex_unlock(&prof_lock);
    /* The mappings let the viewer symbolise addresses of every object. */
    wputs(&w, "\nMAPPED_LIBRARIES:\n", 19);
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps >= 0) {
        char buf[4096];
        ssize_t n;
        while ((n = read(maps, buf, sizeof buf)) > 0)
            wputs(&w, buf, (size_t)n);
        close(maps);
    }
    wflush(&w);
    int rc = close(fd);
    if (w.failed || rc != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

void sa_prof_dump_at_exit(void)
{
    if (sa_opts.prof_dump_path[0] == '\0')
        return;
    char path[sizeof sa_opts.prof_dump_path + 32];
    /* %p in the option becomes the process id (several processes can share
     * one setting) */
    const char *src = sa_opts.prof_dump_path;
    size_t o = 0;
    for (; *src && o + 24 < sizeof path; src++) {
        if (src[0] == '%' && src[1] == 'p') {
            o += sa_format(path + o, sizeof path - o, "%d", (int)getpid());
            src++;
        } else {
            path[o++] = *src;
        }
    }
    path[o] = '\0';
    if (sa_heap_profile_write(path) != 0) {
        char msg[sizeof path + 64];
        size_t n = sa_format(msg, sizeof msg, "spanalloc: cannot write heap profile %s\n", path);
        sa_os_write_stderr(msg, n);
    }
}

void sa_prof_fork_prepare(void)
{
    pthread_mutex_lock(&prof_lock);
}

void sa_prof_fork_parent(void)
{
    pthread_mutex_unlock(&prof_lock);
}

void sa_prof_fork_child(void)
{
    pthread_mutex_init(&prof_lock, NULL);
}

__attribute__((destructor)) static void sa_prof_at_exit(void)
{
    sa_prof_dump_at_exit();
}

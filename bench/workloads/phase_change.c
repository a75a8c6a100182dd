/*
 * phase_change — a program whose heap shrinks and grows again (the
 * scavenger's stage).
 *
 *  1. build: allocate 2M × SCALE small objects (16–256 B, skewed small) and
 *     stamp them;
 *  2. free 90% of them in random order; the survivors are a random tenth of
 *     the runs of 4096 consecutive allocations (data allocated together
 *     lives together), so most pages become entirely free and an allocator
 *     can give them back;
 *  3. idle about 1.5 s (× SCALE when SCALE < 1) in 20 ms sleeps, allocating nothing — an allocator that
 *     returns memory in the background does it now;
 *  4. build the 90% again (new sizes), then check and free everything.
 *
 * With -t N the objects are split over N threads that each build, free and
 * rebuild their own share (the idle is common). The result line reports
 * peak_rss_kb, rss_built_kb (after step 1), rss_after_free_kb (right after
 * step 2), rss_after_idle_kb (after step 3, the number that shows whether
 * memory went back to the OS), rss_rebuilt_kb (after step 4's build) and
 * seconds = the work of steps 1, 2 and 4 without the idle time (idle_seconds
 * is reported on its own). t_*: the moment each step ended, in seconds since
 * the program started, to line up with an RSS-over-time plot.
 */
#include "wl_common.h"

#include <pthread.h>

#define WORKLOAD "phase_change"
#define IDLE_MS 1500
#define IDLE_STEP_MS 20
#define BATCH 4096 /* survivors come in runs of this many consecutive allocations */

typedef struct obj {
    void *p;
    uint32_t size;
    uint32_t gen; /* which build made it: part of its stamp */
} obj;

typedef struct worker {
    pthread_t tid;
    int index;
    size_t n;
    obj *objs;
    uint32_t *order;
    wl_rng rng;
    pthread_barrier_t *bar;
} worker;

static uint32_t pick_size(wl_rng *r) {
    return wl_below(r, 10) < 6 ? 16 + (uint32_t)wl_below(r, 49) : 65 + (uint32_t)wl_below(r, 192);
}

static uint64_t obj_tag(const worker *w, const obj *o, size_t i) {
    return ((uint64_t)o->gen << 56) ^ ((uint64_t)w->index << 40) ^ i;
}

/* Allocates the objects order[from..to) of generation gen. */
static void build(worker *w, size_t from, size_t to, uint32_t gen) {
    for (size_t k = from; k < to; k++) {
        size_t i = w->order[k];
        obj *o = &w->objs[i];
        o->size = pick_size(&w->rng);
        o->gen = gen;
        o->p = wl_xmalloc(WORKLOAD, o->size);
        wl_stamp(o->p, o->size, obj_tag(w, o, i));
    }
}

/* Checks and frees the objects order[from..to). */
static void release(worker *w, size_t from, size_t to) {
    for (size_t k = from; k < to; k++) {
        size_t i = w->order[k];
        obj *o = &w->objs[i];
        wl_check(WORKLOAD, o->p, o->size, obj_tag(w, o, i));
        free(o->p);
        o->p = NULL;
    }
}

/* Each worker meets the main thread at six barriers: start, built, freed,
 * resume (main idles in between), rebuilt, done. */
static void *run(void *arg) {
    worker *w = arg;
    size_t nfree = w->n - w->n / 10;
    for (size_t i = 0; i < w->n; i++) w->order[i] = (uint32_t)i;
    pthread_barrier_wait(w->bar); /* start */
    build(w, 0, w->n, 1);
    pthread_barrier_wait(w->bar); /* built */
    /* Survivors: a random tenth of the runs of BATCH consecutive
     * allocations (long-lived data allocated together), so whole pages can
     * become free; the other 90% are freed in random order. order[] ends up
     * as: the freed objects shuffled, then the survivors. */
    {
        size_t nbatch = (w->n + BATCH - 1) / BATCH, keep_batches = w->n / 10 / BATCH, kept = 0;
        uint32_t *batch = wl_xmalloc(WORKLOAD, sizeof(uint32_t) * nbatch);
        for (size_t b = 0; b < nbatch; b++) batch[b] = (uint32_t)b;
        for (size_t b = nbatch - 1; b > 0; b--) {
            size_t j = wl_below(&w->rng, b + 1);
            uint32_t t = batch[b];
            batch[b] = batch[j];
            batch[j] = t;
        }
        /* mark survivors: the first keep_batches batches of the shuffle, then
         * single objects to reach exactly n/10 */
        unsigned char *survive = wl_xmalloc(WORKLOAD, w->n);
        memset(survive, 0, w->n);
        for (size_t b = 0; b < keep_batches; b++)
            for (size_t i = (size_t)batch[b] * BATCH; i < (size_t)(batch[b] + 1) * BATCH && i < w->n; i++) {
                survive[i] = 1;
                kept++;
            }
        for (size_t i = 0; kept < w->n / 10 && i < w->n; i++)
            if (!survive[i]) {
                survive[i] = 1;
                kept++;
            }
        size_t nf = 0, ns = nfree;
        for (size_t i = 0; i < w->n; i++) {
            if (survive[i]) w->order[ns++] = (uint32_t)i;
            else w->order[nf++] = (uint32_t)i;
        }
        free(survive);
        free(batch);
        for (size_t i = nfree - 1; i > 0; i--) { /* Fisher–Yates: random free order */
            size_t j = wl_below(&w->rng, i + 1);
            uint32_t t = w->order[i];
            w->order[i] = w->order[j];
            w->order[j] = t;
        }
    }
    release(w, 0, nfree);
    pthread_barrier_wait(w->bar); /* freed */
    pthread_barrier_wait(w->bar); /* resume */
    build(w, 0, nfree, 2);
    pthread_barrier_wait(w->bar); /* rebuilt */
    release(w, 0, w->n);
    pthread_barrier_wait(w->bar); /* done */
    return NULL;
}

int main(int argc, char **argv) {
    double t_start = wl_now();
    wl_args a = wl_parse_args(argc, argv, "build a big heap, free 90%, idle, build again");
    size_t total = (size_t)wl_scaled(2000000, a.scale, 1000);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)a.threads + 1);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .n = total / (size_t)a.threads, .bar = &bar};
        ws[i].objs = wl_xmalloc(WORKLOAD, sizeof(obj) * ws[i].n);
        ws[i].order = wl_xmalloc(WORKLOAD, sizeof(uint32_t) * ws[i].n);
        wl_rng_seed(&ws[i].rng, 0xfa5e0000u + (uint64_t)i);
    }
    for (int i = 0; i < a.threads; i++) {
        if (pthread_create(&ws[i].tid, NULL, run, &ws[i]) != 0) {
            fprintf(stderr, WORKLOAD ": pthread_create failed\n");
            return 1;
        }
    }
    pthread_barrier_wait(&bar); /* start */
    double t0 = wl_now();
    pthread_barrier_wait(&bar); /* built */
    double t1 = wl_now();
    long rss_built = wl_current_rss_kb();
    pthread_barrier_wait(&bar); /* freed */
    double t2 = wl_now();
    long rss_freed = wl_current_rss_kb();
    /* the idle shrinks with SCALE below 1 (smoke runs), never below 2 steps */
    long idle_ms = (long)(IDLE_MS * (a.scale < 1.0 ? a.scale : 1.0));
    if (idle_ms < 2 * IDLE_STEP_MS) idle_ms = 2 * IDLE_STEP_MS;
    for (long ms = 0; ms < idle_ms; ms += IDLE_STEP_MS) wl_sleep_ms(IDLE_STEP_MS);
    long rss_idle = wl_current_rss_kb();
    double t3 = wl_now();
    pthread_barrier_wait(&bar); /* resume */
    pthread_barrier_wait(&bar); /* rebuilt */
    double t4 = wl_now();
    long rss_rebuilt = wl_current_rss_kb();
    pthread_barrier_wait(&bar); /* done */
    double t5 = wl_now();
    size_t objects = 0;
    for (int i = 0; i < a.threads; i++) {
        pthread_join(ws[i].tid, NULL);
        objects += ws[i].n;
        free(ws[i].objs);
        free(ws[i].order);
    }
    free(ws);
    double work = (t2 - t0) + (t5 - t3);
    char extra[512];
    snprintf(extra, sizeof extra,
             " objects=%zu rss_built_kb=%ld rss_after_free_kb=%ld rss_after_idle_kb=%ld rss_rebuilt_kb=%ld"
             " idle_seconds=%.3f t_built=%.3f t_freed=%.3f t_idled=%.3f t_rebuilt=%.3f t_done=%.3f",
             objects, rss_built, rss_freed, rss_idle, rss_rebuilt, t3 - t2, t1 - t_start, t2 - t_start, t3 - t_start,
             t4 - t_start, t5 - t_start);
    /* ops: allocations + frees performed */
    uint64_t ops = (uint64_t)objects * 2 + (uint64_t)(objects - objects / 10) * 2;
    wl_result(WORKLOAD, &a, work, ops, extra);
    return 0;
}

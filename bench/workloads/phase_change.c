/*
 * phase_change — a program whose heap shrinks and grows again (the
 * scavenger's stage).
 *
 *  1. build: allocate 2M × SCALE small objects (16–256 B, skewed small) and
 *     stamp them;
 *  2. free 90% of them in random order. Which tenth survives is the mode:
 *     - batches (default): a random tenth of the runs of 4096 consecutive
 *       allocations (data allocated together lives together), so most pages
 *       become entirely free and an allocator can give them back;
 *     - scattered: a random tenth of the single objects, so nearly every
 *       page keeps a survivor or two: an allocator that does not move
 *       objects can give back almost nothing (the worst case for any
 *       scavenger; what is left to release is only wholly free pages);
 *  3. idle 1.5 s (less only for SCALE < 0.1, the smoke runs) in 20 ms
 *     sleeps, allocating nothing; VmRSS is sampled after every sleep — an
 *     allocator that returns memory in the background does it now;
 *  4. build the 90% again (new sizes), then check and free everything.
 *
 * With -t N the objects are split over N threads that each build, free and
 * rebuild their own share (the idle is common). The result line reports
 * peak_rss_kb, rss_start_kb (VmRSS when main starts: the program without its
 * heap), rss_built_kb (after step 1), rss_after_free_kb (right after step 2),
 * rss_1s_kb (1 s into the idle), rss_after_idle_kb (after step 3, the number
 * that shows whether memory went back to the OS), rss_rebuilt_kb (after step
 * 4's build), live_kb (every byte the program still holds from malloc during
 * the idle: the surviving objects, live_objects_kb, plus its own bookkeeping
 * arrays), settle_ms (when, after the free, VmRSS − rss_start_kb first came
 * within 10% of live_kb; -1: not during the idle), drop90_ms (when 90% of
 * the drop from rss_built_kb to rss_after_idle_kb had happened, 0 if during
 * the free; -1: RSS fell by less than 5%)
 * and seconds = the work of steps 1, 2 and 4 without the idle time
 * (idle_seconds is reported on its own). t_*: the moment each step ended, in
 * seconds since the program started, to line up with an RSS-over-time plot.
 */
#include "wl_common.h"

#define WORKLOAD "phase_change"
#define IDLE_MS 1500
#define IDLE_STEP_MS 20
#define IDLE_SAMPLES (IDLE_MS / IDLE_STEP_MS + 1)
#define BATCH 4096 /* batches mode: survivors come in runs of this many consecutive allocations */

static const char *const modes[] = {"batches", "scattered", NULL};

typedef struct obj {
    void *p;
    uint32_t size;
    uint32_t gen; /* which build made it: part of its stamp */
} obj;

typedef struct worker {
    int index;
    int scattered; /* the mode */
    size_t n;
    obj *objs;
    uint32_t *order;
    wl_rng rng;
    size_t live_bytes; /* requested bytes of the survivors */
    wl_team *team;
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
    wl_team_wait(w->team); /* start */
    build(w, 0, w->n, 1);
    wl_team_wait(w->team); /* built */
    /* Survivors (batches mode): a random tenth of the runs of BATCH
     * consecutive allocations (long-lived data allocated together), so whole
     * pages can become free; (scattered mode) single objects, batches of 1.
     * The other 90% are freed in random order. order[] ends up as: the freed
     * objects shuffled, then the survivors. */
    {
        size_t bsize = w->scattered ? 1 : BATCH;
        size_t nbatch = (w->n + bsize - 1) / bsize, keep_batches = w->n / 10 / bsize, kept = 0;
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
            for (size_t i = (size_t)batch[b] * bsize; i < (size_t)(batch[b] + 1) * bsize && i < w->n; i++) {
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
    w->live_bytes = 0;
    for (size_t k = nfree; k < w->n; k++) w->live_bytes += w->objs[w->order[k]].size;
    wl_team_wait(w->team); /* freed */
    wl_team_wait(w->team); /* resume */
    build(w, 0, nfree, 2);
    wl_team_wait(w->team); /* rebuilt */
    release(w, 0, w->n);
    wl_team_wait(w->team); /* done */
    return NULL;
}

int main(int argc, char **argv) {
    double t_start = wl_now();
    long rss_start = wl_current_rss_kb();
    wl_args a = wl_parse_args_modes(argc, argv, "build a big heap, free 90%, idle, build again", modes);
    int scattered = strcmp(a.mode, "scattered") == 0;
    size_t total = (size_t)wl_scaled(2000000, a.scale, 1000);
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    size_t bookkeeping = sizeof(worker) * (size_t)a.threads + sizeof(pthread_t) * (size_t)a.threads;
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .scattered = scattered, .n = total / (size_t)a.threads, .team = &team};
        ws[i].objs = wl_xmalloc(WORKLOAD, sizeof(obj) * ws[i].n);
        ws[i].order = wl_xmalloc(WORKLOAD, sizeof(uint32_t) * ws[i].n);
        bookkeeping += (sizeof(obj) + sizeof(uint32_t)) * ws[i].n;
        wl_rng_seed(&ws[i].rng, 0xfa5e0000u + (uint64_t)i);
    }
    for (int i = 0; i < a.threads; i++) wl_team_spawn(&team, run, &ws[i]);
    wl_team_wait(&team); /* start */
    double t0 = wl_now();
    wl_team_wait(&team); /* built */
    double t1 = wl_now();
    long rss_built = wl_current_rss_kb();
    wl_team_wait(&team); /* freed */
    double t2 = wl_now();
    long rss_freed = wl_current_rss_kb();
    size_t live_objects = 0;
    for (int i = 0; i < a.threads; i++) live_objects += ws[i].live_bytes;
    long live_kb = (long)((live_objects + bookkeeping) / 1024);
    /* the idle is 1.5 s; only smoke runs (SCALE < 0.1) shorten it, never
     * below 2 steps. VmRSS is sampled after every step (on the stack: no
     * allocation during the idle). */
    long idle_ms = IDLE_MS;
    if (a.scale < 0.1) idle_ms = (long)(IDLE_MS * a.scale * 10.0);
    if (idle_ms < 2 * IDLE_STEP_MS) idle_ms = 2 * IDLE_STEP_MS;
    double sample_t[IDLE_SAMPLES];
    long sample_kb[IDLE_SAMPLES];
    int nsamples = 0;
    long rss_1s = -1;
    for (long ms = 0; ms < idle_ms; ms += IDLE_STEP_MS) {
        wl_sleep_ms(IDLE_STEP_MS);
        if (nsamples < IDLE_SAMPLES) {
            sample_t[nsamples] = wl_now() - t2;
            sample_kb[nsamples] = wl_current_rss_kb();
            if (rss_1s < 0 && sample_t[nsamples] >= 1.0) rss_1s = sample_kb[nsamples];
            nsamples++;
        }
    }
    long rss_idle = wl_current_rss_kb();
    double t3 = wl_now();
    if (rss_1s < 0) rss_1s = rss_idle; /* idle shorter than 1 s (smoke runs) */
    /* settle: VmRSS minus the program's own start-up RSS within 10% of live */
    long settle_ms = -1;
    double target_kb = (double)rss_start + 1.10 * (double)live_kb;
    if ((double)rss_freed <= target_kb) settle_ms = 0;
    for (int i = 0; settle_ms < 0 && i < nsamples; i++)
        if ((double)sample_kb[i] <= target_kb) settle_ms = (long)(sample_t[i] * 1000.0 + 0.5);
    /* drop90: when, counted from the end of the free, 90% of the drop from
     * the built heap to the end of the idle had happened (0: during the free,
     * as an eager allocator does it) */
    long drop90_ms = -1;
    if (rss_built > 0 && (double)(rss_built - rss_idle) >= 0.05 * (double)rss_built) {
        double goal = (double)rss_built - 0.9 * (double)(rss_built - rss_idle);
        if ((double)rss_freed <= goal) drop90_ms = 0;
        for (int i = 0; drop90_ms < 0 && i < nsamples; i++)
            if ((double)sample_kb[i] <= goal) drop90_ms = (long)(sample_t[i] * 1000.0 + 0.5);
    }
    wl_team_wait(&team); /* resume */
    wl_team_wait(&team); /* rebuilt */
    double t4 = wl_now();
    long rss_rebuilt = wl_current_rss_kb();
    wl_team_wait(&team); /* done */
    double t5 = wl_now();
    wl_team_join(&team);
    size_t objects = 0;
    for (int i = 0; i < a.threads; i++) {
        objects += ws[i].n;
        free(ws[i].objs);
        free(ws[i].order);
    }
    free(ws);
    double work = (t2 - t0) + (t5 - t3);
    char extra[768];
    snprintf(extra, sizeof extra,
             " mode=%s objects=%zu rss_start_kb=%ld rss_built_kb=%ld rss_after_free_kb=%ld rss_1s_kb=%ld"
             " rss_after_idle_kb=%ld rss_rebuilt_kb=%ld live_kb=%ld live_objects_kb=%ld settle_ms=%ld drop90_ms=%ld"
             " idle_seconds=%.3f t_built=%.3f t_freed=%.3f t_idled=%.3f t_rebuilt=%.3f t_done=%.3f",
             a.mode, objects, rss_start, rss_built, rss_freed, rss_1s, rss_idle, rss_rebuilt, live_kb,
             (long)(live_objects / 1024), settle_ms, drop90_ms, t3 - t2, t1 - t_start, t2 - t_start, t3 - t_start,
             t4 - t_start, t5 - t_start);
    /* ops: allocations + frees performed */
    uint64_t ops = (uint64_t)objects * 2 + (uint64_t)(objects - objects / 10) * 2;
    wl_result(WORKLOAD, &a, work, ops, extra);
    return 0;
}

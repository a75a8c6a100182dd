/*
 * thread_churn — threads replacing random blocks of a small working set in a
 * tight loop (the shape of glibc's bench-malloc-thread).
 *
 * Each of THREADS threads builds its own working set of 4096 live blocks of
 * 8–512 B (uniform sizes) and then, until the run ends, picks a random block,
 * checks its stamp, frees it and allocates a block of a new random size in
 * its place. Nothing crosses threads and the working set (about 1 MiB per
 * thread) stays close to the cores, so the loop is almost all malloc and
 * free: the per-thread fast paths and the refill of a thread cache from a
 * heap where frees land all over the spans.
 *
 * A fixed-time run (2 s × SCALE, at least 20 ms): the result is iterations
 * (free + malloc of one block) per second over all threads, ops_per_sec on
 * the RESULT line; seconds is the measured length of the run, not a cost.
 * The working set is built before and torn down after the timed section.
 */
#include "wl_common.h"

#define WORKLOAD "thread_churn"
#define SLOTS 4096
#define MIN_SIZE 8
#define MAX_SIZE 512

typedef struct worker {
    _Alignas(64) int index;
    uint64_t iterations;
    uint64_t checksum;
    wl_team *team;
    wl_stop *stop;
} worker;

static size_t pick_size(wl_rng *r) { return MIN_SIZE + wl_below(r, MAX_SIZE - MIN_SIZE + 1); }

static void *run(void *arg) {
    worker *w = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x7c4a11e5u + (uint64_t)w->index * 104729u);
    wl_block *slots = wl_xmalloc(WORKLOAD, sizeof(wl_block) * SLOTS);
    uint64_t next_tag = ((uint64_t)w->index << 48) | 1;
    for (size_t i = 0; i < SLOTS; i++) wl_block_fill(WORKLOAD, &slots[i], pick_size(&r), next_tag++);

    wl_team_wait(w->team); /* start */
    uint64_t n = 0;
    while (!wl_stopped(w->stop)) {
        wl_block *s = &slots[wl_below(&r, SLOTS)];
        wl_check(WORKLOAD, s->p, s->size, s->tag);
        free(s->p);
        wl_block_fill(WORKLOAD, s, pick_size(&r), next_tag++);
        n++;
    }
    wl_team_wait(w->team); /* stop */

    w->checksum = wl_blocks_release(WORKLOAD, slots, SLOTS);
    free(slots);
    w->iterations = n;
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads replacing random blocks of a small working set for a fixed time");
    long run_ms = wl_run_ms(a.scale);
    wl_stop stop;
    wl_stop_init(&stop);
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = aligned_alloc(64, sizeof(worker) * (size_t)a.threads);
    if (!ws) return 4;
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .team = &team, .stop = &stop};
        wl_team_spawn(&team, run, &ws[i]);
    }
    wl_team_wait(&team); /* start */
    double t0 = wl_now();
    wl_sleep_ms(run_ms);
    wl_stop_raise(&stop);
    wl_team_wait(&team); /* stop: every worker has left its loop */
    double secs = wl_now() - t0;
    wl_team_join(&team);
    uint64_t iters = 0, sum = 0;
    for (int i = 0; i < a.threads; i++) {
        iters += ws[i].iterations;
        sum += ws[i].checksum;
    }
    free(ws);
    char extra[96];
    snprintf(extra, sizeof extra, " metric=ops_per_sec run_ms=%ld checksum=%llu", run_ms, (unsigned long long)sum);
    wl_result(WORKLOAD, &a, secs, iters, extra);
    return 0;
}

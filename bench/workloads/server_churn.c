/*
 * server_churn — a long-running service's steady state.
 *
 * Each of THREADS threads owns a working set of 32768 live objects of mixed
 * sizes (70% 8–128 B, 20% up to 1 KiB, 8% up to 8 KiB, 1.9% up to 32 KiB,
 * 0.1% up to 256 KiB) and, for its share of the operations, replaces a random
 * one: check its stamp, free it, allocate a new one and stamp it. One
 * operation in 20 is a realloc of the chosen object to a new size instead.
 * The total operation count is fixed (20M × SCALE) and split over the threads,
 * so ops_per_sec across thread counts shows scaling (on a 2-core machine, 4
 * threads oversubscribe the cores).
 *
 * The timed section is the churn only: the working set is built before the
 * threads pass a barrier, and torn down after the clock stops.
 */
#include "wl_common.h"

#define WORKLOAD "server_churn"
#define SLOTS 32768

typedef struct worker {
    int index;
    uint64_t ops;
    wl_team *team;
    uint64_t checksum;
} worker;

static size_t pick_size(wl_rng *r) {
    uint64_t c = wl_below(r, 1000);
    if (c < 700) return 8 + wl_below(r, 121);
    if (c < 900) return 129 + wl_below(r, 896);
    if (c < 980) return 1025 + wl_below(r, 7168);
    if (c < 999) return 8193 + wl_below(r, 24576);
    return 32769 + wl_below(r, 229376);
}

static void *run(void *arg) {
    worker *w = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x5e77e7c4u + (uint64_t)w->index * 7919u);
    wl_block *slots = wl_xmalloc(WORKLOAD, sizeof(wl_block) * SLOTS);
    uint64_t next_tag = ((uint64_t)w->index << 48) | 1;
    for (size_t i = 0; i < SLOTS; i++) wl_block_fill(WORKLOAD, &slots[i], pick_size(&r), next_tag++);

    wl_team_wait(w->team); /* start */
    for (uint64_t op = 0; op < w->ops; op++) {
        wl_block *s = &slots[wl_below(&r, SLOTS)];
        wl_check(WORKLOAD, s->p, s->size, s->tag);
        size_t nsize = pick_size(&r);
        if (wl_below(&r, 20) == 0) {
            void *np = realloc(s->p, nsize);
            if (!np) wl_fail(WORKLOAD, "realloc(%zu) returned NULL", nsize);
            /* The first bytes survive a realloc: check the leading word. */
            if (s->size >= 8 && nsize >= 8) {
                uint64_t v;
                memcpy(&v, np, 8);
                if (v != wl_tag_at(s->tag, 0))
                    wl_fail(WORKLOAD, "realloc %zu -> %zu lost the contents (block %p)", s->size, nsize, np);
            }
            s->p = np;
        } else {
            free(s->p);
            s->p = wl_xmalloc(WORKLOAD, nsize);
        }
        s->size = nsize;
        s->tag = next_tag++;
        wl_stamp(s->p, s->size, s->tag);
    }
    wl_team_wait(w->team); /* stop */

    w->checksum = wl_blocks_release(WORKLOAD, slots, SLOTS);
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads churning a mixed-size working set");
    uint64_t total = wl_scaled(20000000, a.scale, (uint64_t)a.threads);
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .ops = total / (uint64_t)a.threads, .team = &team};
        wl_team_spawn(&team, run, &ws[i]);
    }
    double secs = wl_team_timed(&team);
    wl_team_join(&team);
    uint64_t ops = 0, sum = 0;
    for (int i = 0; i < a.threads; i++) {
        ops += ws[i].ops;
        sum += ws[i].checksum;
    }
    free(ws);
    char extra[64];
    snprintf(extra, sizeof extra, " checksum=%llu", (unsigned long long)sum);
    wl_result(WORKLOAD, &a, secs, ops, extra);
    return 0;
}

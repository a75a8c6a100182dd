/*
 * false_sharing — do small objects used by different threads share cache
 * lines?
 *
 * Two timed phases with THREADS threads, each doing its share of a fixed
 * number of writes (2G × SCALE per phase) as rounds of: take a 16-byte
 * object, increment a counter in it 1000 times through a volatile pointer,
 * check the count, free it, allocate the next.
 *
 *  - passive: the main thread allocates one 16-byte object per thread back
 *    to back (they usually land in one cache line) and hands them out; each
 *    thread works on its handed object first, frees it and then allocates its
 *    own. An allocator that gives the freed block straight back to the thread
 *    that freed it keeps the threads writing into one shared line.
 *  - active: each thread allocates its own objects from the start; an
 *    allocator that carves small objects for different threads out of the
 *    same cache line makes them fight over it.
 *
 * Without false sharing the write rate scales with the cores (2 on the
 * reference machine); with it, it collapses. seconds is the sum of both
 * phases; passive_seconds and active_seconds are reported separately.
 */
#include "wl_common.h"

#define WORKLOAD "false_sharing"
#define OBJ 16
#define WRITES_PER_OBJ 1000

typedef struct worker {
    int index;
    uint64_t rounds;
    void *handed; /* passive phase: the object from the main thread, or NULL */
    wl_team *team;
} worker;

static void write_loop(void *obj, uint64_t tag) {
    volatile uint64_t *p = obj;
    p[1] = tag;
    p[0] = 0;
    for (int i = 0; i < WRITES_PER_OBJ; i++) p[0] = p[0] + 1;
    if (p[0] != WRITES_PER_OBJ || p[1] != tag)
        wl_fail(WORKLOAD, "object %p: count %llu tag %#llx (expected %d, %#llx)", obj, (unsigned long long)p[0],
                (unsigned long long)p[1], WRITES_PER_OBJ, (unsigned long long)tag);
}

static void *run(void *arg) {
    worker *w = arg;
    uint64_t tag = (uint64_t)w->index << 32;
    wl_team_wait(w->team); /* start */
    void *obj = w->handed;
    for (uint64_t r = 0; r < w->rounds; r++) {
        if (!obj) obj = wl_xmalloc(WORKLOAD, OBJ);
        write_loop(obj, ++tag);
        free(obj);
        obj = NULL;
    }
    wl_team_wait(w->team); /* stop */
    return NULL;
}

static double phase(const wl_args *a, uint64_t rounds_total, int passive) {
    wl_team team;
    wl_team_init(&team, WORKLOAD, a->threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a->threads);
    for (int i = 0; i < a->threads; i++) {
        ws[i] = (worker){.index = i, .rounds = rounds_total / (uint64_t)a->threads, .team = &team};
        if (passive) ws[i].handed = wl_xmalloc(WORKLOAD, OBJ);
    }
    for (int i = 0; i < a->threads; i++) wl_team_spawn(&team, run, &ws[i]);
    double secs = wl_team_timed(&team);
    wl_team_join(&team);
    free(ws);
    return secs;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads writing to small objects handed out by the allocator");
    uint64_t rounds = wl_scaled(2000000000 / WRITES_PER_OBJ, a.scale, (uint64_t)a.threads);
    rounds -= rounds % (uint64_t)a.threads;
    double passive = phase(&a, rounds, 1);
    double active = phase(&a, rounds, 0);
    char extra[128];
    snprintf(extra, sizeof extra, " passive_seconds=%.6f active_seconds=%.6f", passive, active);
    wl_result(WORKLOAD, &a, passive + active, 2 * rounds * WRITES_PER_OBJ, extra);
    return 0;
}

/*
 * server_threads — short-lived server threads that hand their live blocks to
 * the threads after them (the shape of the "larson" benchmark).
 *
 * THREADS lanes run side by side. Each lane owns a slot array of 5000 live
 * blocks of random sizes (8–1000 B, uniform), filled by the main thread
 * before the clock starts. The lane's thread repeatedly picks a random slot,
 * checks the block's stamp, frees it and allocates a block of a new random
 * size into the slot. After 100000 steps (20 times the slot count) the
 * thread starts its successor on the same lane and exits; the successor joins
 * it and carries on with the same slot array, so its first frees hit blocks
 * that a thread which no longer exists allocated, and its later ones land in
 * spans it did not fill itself. Thread start and exit inside the allocator
 * and frees into a dead thread's memory are the point: the lanes go through
 * dozens of threads per second. (Shorter generations would raise the share
 * of such frees, but then pthread_create/join and the kernel's stack
 * handling, about 1 ms per handover on the reference VM, would dominate
 * whatever the allocator does.)
 *
 * A fixed-time run (2 s × SCALE, at least 20 ms, and at least until every
 * lane has handed over once, so even a smoke run crosses a thread boundary):
 * the main thread sleeps, raises the stop flag and waits for each lane's last
 * thread. The result is ops (one free + one malloc) per second over all
 * lanes, ops_per_sec on the RESULT line (seconds is the measured length of
 * the run, thread start-up and wind-down included), with the number of
 * handovers and the share of frees that hit a block an earlier thread
 * allocated (foreign_pct; about 5% with these constants).
 */
#include "wl_common.h"

#include <semaphore.h>

#define WORKLOAD "server_threads"
#define SLOTS 5000
#define GENERATION (20 * SLOTS) /* steps before a thread hands its lane on */
#define MIN_SIZE 8
#define MAX_SIZE 1000

/* One lane. Only the lane's running thread touches it, except `handovers`
 * (read by the main thread while the lane runs) and `last` (published by
 * `finished`). A thread hands the lane on through pthread_create and the
 * successor's pthread_join, which order every plain field. */
typedef struct lane {
    _Alignas(64) int index;
    wl_block *slots;
    uint32_t *gens; /* per slot, the generation (thread) that allocated the block; 0 = main */
    wl_rng rng;
    uint64_t next_tag;
    uint32_t gen;
    uint64_t ops;
    uint64_t foreign;
    pthread_t prev; /* the thread the next one joins (valid when gen > 0) */
    pthread_t last; /* the lane's final thread, joined by main */
    _Atomic uint64_t handovers;
    wl_stop *stop;
    sem_t *finished; /* posted once by the lane's final thread */
} lane;

static size_t pick_size(wl_rng *r) { return MIN_SIZE + wl_below(r, MAX_SIZE - MIN_SIZE + 1); }

static void *run(void *arg) {
    lane *l = arg;
    if (l->gen > 0) pthread_join(l->prev, NULL);
    uint32_t gen = ++l->gen;
    uint64_t steps = 0, foreign = 0;
    while (steps < GENERATION && !wl_stopped(l->stop)) {
        size_t i = wl_below(&l->rng, SLOTS);
        wl_block *s = &l->slots[i];
        wl_check(WORKLOAD, s->p, s->size, s->tag);
        foreign += l->gens[i] != gen;
        free(s->p);
        l->gens[i] = gen;
        wl_block_fill(WORKLOAD, s, pick_size(&l->rng), l->next_tag++);
        steps++;
    }
    l->ops += steps;
    l->foreign += foreign;
    if (steps == GENERATION && !wl_stopped(l->stop)) {
        l->prev = pthread_self();
        atomic_fetch_add_explicit(&l->handovers, 1, memory_order_relaxed);
        pthread_t next;
        if (pthread_create(&next, NULL, run, l) != 0) {
            fprintf(stderr, "%s: pthread_create failed (lane %d, generation %u)\n", WORKLOAD, l->index, gen);
            _exit(1);
        }
        return NULL; /* the successor owns the lane now */
    }
    l->last = pthread_self();
    sem_post(l->finished);
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "lanes of short-lived threads, each taking over its predecessor's blocks");
    long run_ms = wl_run_ms(a.scale);
    wl_stop stop;
    wl_stop_init(&stop);
    sem_t finished;
    sem_init(&finished, 0, 0);
    lane *ls = aligned_alloc(64, sizeof(lane) * (size_t)a.threads);
    if (!ls) return 4;
    for (int i = 0; i < a.threads; i++) {
        lane *l = &ls[i];
        memset(l, 0, sizeof *l);
        l->index = i;
        l->stop = &stop;
        l->finished = &finished;
        atomic_init(&l->handovers, 0);
        wl_rng_seed(&l->rng, 0x1a7503u + (uint64_t)i * 15485863u);
        l->next_tag = ((uint64_t)i << 48) | 1;
        l->slots = wl_xmalloc(WORKLOAD, sizeof(wl_block) * SLOTS);
        l->gens = calloc(SLOTS, sizeof(uint32_t));
        if (!l->gens) return 4;
        for (size_t j = 0; j < SLOTS; j++) wl_block_fill(WORKLOAD, &l->slots[j], pick_size(&l->rng), l->next_tag++);
    }

    double t0 = wl_now();
    for (int i = 0; i < a.threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, run, &ls[i]) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", WORKLOAD);
            return 1;
        }
    }
    wl_sleep_ms(run_ms);
    for (int i = 0; i < a.threads; i++)
        while (atomic_load_explicit(&ls[i].handovers, memory_order_relaxed) == 0) wl_sleep_ms(1);
    wl_stop_raise(&stop);
    for (int i = 0; i < a.threads; i++)
        while (sem_wait(&finished) != 0) {
        }
    for (int i = 0; i < a.threads; i++) pthread_join(ls[i].last, NULL);
    double secs = wl_now() - t0;

    uint64_t ops = 0, foreign = 0, handovers = 0, sum = 0;
    for (int i = 0; i < a.threads; i++) {
        lane *l = &ls[i];
        ops += l->ops;
        foreign += l->foreign;
        handovers += atomic_load(&l->handovers);
        sum += wl_blocks_release(WORKLOAD, l->slots, SLOTS);
        free(l->slots);
        free(l->gens);
    }
    free(ls);
    sem_destroy(&finished);
    char extra[160];
    snprintf(extra, sizeof extra, " metric=ops_per_sec run_ms=%ld handovers=%llu foreign_pct=%.1f checksum=%llu",
             run_ms, (unsigned long long)handovers, ops ? 100.0 * (double)foreign / (double)ops : 0.0,
             (unsigned long long)sum);
    wl_result(WORKLOAD, &a, secs, ops, extra);
    return 0;
}

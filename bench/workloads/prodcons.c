/*
 * prodcons — one thread allocates, another frees.
 *
 * THREADS is the number of producer/consumer PAIRS (so -t 2 runs 4 threads).
 * In each pair the producer allocates messages (mostly 16 B – 1 KiB, one in
 * 16 of 1–8 KiB), stamps them and pushes the pointers through a bounded
 * single-producer/single-consumer ring (4096 slots); the consumer pops, checks
 * and frees them. Every free is therefore a cross-thread free, the pattern
 * that strands memory in per-thread caches if the allocator never sends it
 * back: at most 4096 messages per pair are live at any time, so peak RSS
 * should stay flat no matter how many messages pass. The result line reports
 * peak_rss_kb and rss_end_kb (VmRSS after the run, before teardown).
 *
 * The total message count (2M × SCALE) is split over the pairs. Waiting
 * threads spin briefly and then yield, so oversubscribed runs (more threads
 * than cores) still progress.
 */
#include "wl_common.h"

#include <sched.h>
#include <stdatomic.h>

#define WORKLOAD "prodcons"
#define RING 4096 /* power of two */

typedef struct pair {
    /* producer-written and consumer-written indices on separate lines */
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) void *slots[RING];
    uint64_t count;
    int index;
    uint64_t consumed_bytes;
    wl_team *team;
} pair;

static void wait_a_bit(unsigned *spins) {
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

/* Both ends draw the same size sequence from the same seed, so the consumer
 * knows each message's size without trusting the message itself. */
static size_t msg_size(wl_rng *r) {
    return wl_below(r, 16) == 0 ? 1024 + wl_below(r, 7169) : 16 + wl_below(r, 1009);
}

static uint64_t msg_tag(const pair *q, uint64_t i) { return ((uint64_t)q->index << 40) ^ (i + 1); }

static void *producer(void *arg) {
    pair *q = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x9d0d0c35u + (uint64_t)q->index);
    wl_team_wait(q->team); /* start */
    for (uint64_t i = 0; i < q->count; i++) {
        size_t size = msg_size(&r);
        void *m = wl_xmalloc(WORKLOAD, size);
        wl_stamp(m, size, msg_tag(q, i));
        uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
        unsigned spins = 0;
        while (h - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING) wait_a_bit(&spins);
        q->slots[h & (RING - 1)] = m;
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    pair *q = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x9d0d0c35u + (uint64_t)q->index);
    wl_team_wait(q->team); /* start */
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < q->count; i++) {
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&q->head, memory_order_acquire) == t) wait_a_bit(&spins);
        void *m = q->slots[t & (RING - 1)];
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
        size_t size = msg_size(&r);
        wl_check(WORKLOAD, m, size, msg_tag(q, i));
        bytes += size;
        free(m);
    }
    q->consumed_bytes = bytes;
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "THREADS producer/consumer pairs passing messages to be freed");
    uint64_t total = wl_scaled(2000000, a.scale, (uint64_t)a.threads);
    wl_team team;
    wl_team_init(&team, WORKLOAD, 2 * a.threads);
    pair *ps = aligned_alloc(64, sizeof(pair) * (size_t)a.threads);
    if (!ps) return 4;
    for (int i = 0; i < a.threads; i++) {
        memset(&ps[i], 0, sizeof ps[i]);
        atomic_init(&ps[i].head, 0);
        atomic_init(&ps[i].tail, 0);
        ps[i].count = total / (uint64_t)a.threads;
        ps[i].index = i;
        ps[i].team = &team;
        wl_team_spawn(&team, consumer, &ps[i]);
        wl_team_spawn(&team, producer, &ps[i]);
    }
    wl_team_wait(&team); /* start */
    double t0 = wl_now();
    wl_team_join(&team); /* the clock stops when every pair is done */
    uint64_t msgs = 0, bytes = 0;
    for (int i = 0; i < a.threads; i++) {
        msgs += ps[i].count;
        bytes += ps[i].consumed_bytes;
    }
    double secs = wl_now() - t0;
    long rss_end = wl_current_rss_kb();
    free(ps);
    char extra[128];
    snprintf(extra, sizeof extra, " pairs=%d rss_end_kb=%ld bytes=%llu", a.threads, rss_end, (unsigned long long)bytes);
    wl_result(WORKLOAD, &a, secs, msgs, extra);
    return 0;
}

/*
 * batch — allocate N blocks, then free all of them, in three orders.
 *
 * For N = 100, 1000 and 10000, with one size (32 B: one size class) and with
 * mixed sizes (8–1000 B, a fixed random sequence per thread), each thread
 * repeatedly allocates N blocks, stamping each, and then checks and frees
 * them in allocation order (fifo), in reverse (lifo) or in a fixed random
 * permutation (random). A batch is what a request handler, a parser or a
 * compiler pass does with its temporaries; the free orders decide how the
 * frees land in an allocator's spans or lists (fifo walks a span's slots in
 * the order they were handed out, random scatters them).
 *
 * The 18 cases (2 size modes × 3 N × 3 orders) run one after another, all
 * THREADS threads on the same case at once between two barriers (a case
 * lasts from the first thread's start to the last thread's end). Each case
 * gets the same number of malloc+free pairs (2M × SCALE, split over the
 * threads and rounded to whole batches, at least one batch per thread), so
 * every case weighs alike in `seconds`, the sum over the cases. The RESULT
 * line also carries ns_<size>_<N>_<order>: the case's wall time divided by the
 * pairs all threads did in it (with T threads on T cores, about 1/T of the
 * single-thread figure when nothing is shared). The orders and sizes are
 * drawn before the clock starts, so only malloc, free and the stamps are
 * timed.
 */
#include "wl_common.h"

#define WORKLOAD "batch"
#define MAX_N 10000
#define ONE_SIZE 32
#define MIN_SIZE 8
#define MAX_SIZE 1000

static const int batch_n[] = {100, 1000, 10000};
static const char *const size_mode[] = {"one", "mixed"};
static const char *const order_name[] = {"fifo", "lifo", "random"};
#define N_SIZES 2
#define N_NS 3
#define N_ORDERS 3
#define N_CASES (N_SIZES * N_NS * N_ORDERS)

typedef struct worker {
    int index;
    uint64_t pairs_per_case; /* this thread's share of one case */
    uint64_t done[N_CASES];  /* pairs done per case */
    double t0[N_CASES], t1[N_CASES]; /* when this thread started and ended each case */
    wl_team *team;
} worker;

/* The free order for n blocks: 0..n-1, n-1..0 or a permutation. */
static void make_order(uint32_t *idx, int n, int order, wl_rng *r) {
    for (int i = 0; i < n; i++) idx[i] = (uint32_t)(order == 1 ? n - 1 - i : i);
    if (order == 2)
        for (int i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)wl_below(r, (uint64_t)i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
}

static void *run(void *arg) {
    worker *w = arg;
    wl_rng r;
    wl_rng_seed(&r, 0xba7c4u + (uint64_t)w->index * 2654435761u);
    void **ptrs = wl_xmalloc(WORKLOAD, sizeof(void *) * MAX_N);
    uint32_t *sizes = wl_xmalloc(WORKLOAD, sizeof(uint32_t) * MAX_N);
    uint32_t *idx = wl_xmalloc(WORKLOAD, sizeof(uint32_t) * MAX_N);
    uint64_t tag = ((uint64_t)w->index << 48) | 1;

    for (int c = 0; c < N_CASES; c++) {
        int mixed = c / (N_NS * N_ORDERS), n = batch_n[(c / N_ORDERS) % N_NS], order = c % N_ORDERS;
        for (int i = 0; i < n; i++) sizes[i] = mixed ? (uint32_t)(MIN_SIZE + wl_below(&r, MAX_SIZE - MIN_SIZE + 1)) : ONE_SIZE;
        make_order(idx, n, order, &r);
        uint64_t rounds = w->pairs_per_case / (uint64_t)n;
        if (rounds == 0) rounds = 1;

        wl_team_wait(w->team); /* case starts */
        w->t0[c] = wl_now();
        for (uint64_t k = 0; k < rounds; k++) {
            uint64_t base = tag;
            for (int i = 0; i < n; i++) {
                ptrs[i] = wl_xmalloc(WORKLOAD, sizes[i]);
                wl_stamp(ptrs[i], sizes[i], base + (uint64_t)i);
            }
            for (int i = 0; i < n; i++) {
                uint32_t j = idx[i];
                wl_check(WORKLOAD, ptrs[j], sizes[j], base + j);
                free(ptrs[j]);
            }
            tag += (uint64_t)n;
        }
        w->t1[c] = wl_now();
        wl_team_wait(w->team); /* case ends */
        w->done[c] = rounds * (uint64_t)n;
    }
    free(idx);
    free(sizes);
    free(ptrs);
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads allocating batches of N blocks and freeing them in three orders");
    uint64_t per_case = wl_scaled(2000000, a.scale, (uint64_t)a.threads);
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .pairs_per_case = per_case / (uint64_t)a.threads, .team = &team};
        wl_team_spawn(&team, run, &ws[i]);
    }
    for (int c = 0; c < N_CASES; c++) {
        wl_team_wait(&team);
        wl_team_wait(&team);
    }
    wl_team_join(&team);
    /* A case lasts from the first thread's start to the last thread's end,
     * as the threads saw it: the main thread may be descheduled when the
     * barrier lets everyone go, so its own clock could miss most of a short
     * case. */
    double case_secs[N_CASES], total = 0;
    for (int c = 0; c < N_CASES; c++) {
        double t0 = ws[0].t0[c], t1 = ws[0].t1[c];
        for (int i = 1; i < a.threads; i++) {
            t0 = ws[i].t0[c] < t0 ? ws[i].t0[c] : t0;
            t1 = ws[i].t1[c] > t1 ? ws[i].t1[c] : t1;
        }
        case_secs[c] = t1 - t0;
        total += case_secs[c];
    }

    char extra[1024];
    size_t len = 0;
    uint64_t pairs = 0;
    for (int c = 0; c < N_CASES; c++) {
        uint64_t done = 0;
        for (int i = 0; i < a.threads; i++) done += ws[i].done[c];
        pairs += done;
        len += (size_t)snprintf(extra + len, sizeof extra - len, " ns_%s_%d_%s=%.2f", size_mode[c / (N_NS * N_ORDERS)],
                                batch_n[(c / N_ORDERS) % N_NS], order_name[c % N_ORDERS], case_secs[c] * 1e9 / (double)done);
    }
    free(ws);
    wl_result(WORKLOAD, &a, total, pairs, extra);
    return 0;
}

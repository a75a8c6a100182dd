/*
 * test_gc_torture.c — random object graphs mutated by several threads while
 * cycles run, and fork while the collector marks.
 *
 * Torture: each thread owns a row of root slots (a registered root range)
 * and grows a random graph under it: new nodes linked under random nodes,
 * edges dropped, edges added between random nodes (cycles, shared
 * subgraphs), nodes handed to other threads through an exchange array,
 * large nodes, noscan garbage. Every pointer store into a node goes
 * through SA_GC_STORE. Each node carries an immutable id (nonzero, unique,
 * below the id counter) and payload and a checksum seeded with the id, and
 * each edge remembers the id of the node it was set to point at (edge and
 * id are set together under the parent's lock). Walks from the roots
 * (bounded, cycles allowed) check every node they reach: a live node freed
 * early and reused -- zeroed by a short-lived allocation, or a new node with
 * a fresh consistent checksum -- shows up as a bad id or an edge whose
 * target changed identity. Garbage allocations include node-sized ones, so
 * a freed node's slot is soon reused. Cycles are paced at gc_percent=25 plus forced ones. At the end
 * the roots are cleared and the threads have exited: the managed heap must
 * drain to (almost) nothing -- unreachable objects are freed.
 *
 * The binary runs in gc_mode=stw and gc_mode=concurrent (ctest), and under
 * memcheck in stw mode with smaller counts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

#define NTHREADS 4
#define SLOTS 32
#define KIDS 4
#define NEXCH 16

typedef struct node {
    uint64_t id;
    uint64_t payload[3];
    uint64_t check;
    struct node *kid[KIDS];
    uint64_t kid_id[KIDS]; /* id of the node kid[k] was set to; under lock */
    int lock;              /* spin lock over kid[] and kid_id[] */
} node;

static node *g_roots[NTHREADS][SLOTS];
static uint64_t g_root_ids[NTHREADS][SLOTS]; /* row's thread only, then main */
static node *g_exch[NEXCH];
static atomic_ullong g_next_id = 1;
static atomic_long g_bad, g_checked, g_allocated;

static uint64_t node_sum(const node *n)
{
    uint64_t h = n->id * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 3; i++)
        h = (h ^ n->payload[i]) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

/* A node is sound when its id was handed out by new_node and its checksum
 * (seeded with the id) matches: a zeroed node has id 0. */
static bool node_ok(const node *n)
{
    return n->id != 0 && n->id < atomic_load(&g_next_id) && n->check == node_sum(n);
}

static void lock_node(node *n)
{
    while (__atomic_test_and_set(&n->lock, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void unlock_node(node *n)
{
    __atomic_clear(&n->lock, __ATOMIC_RELEASE);
}

/* Points n->kid[k] at v (NULL allowed) and records v's id with it. */
static void set_kid(node *n, int k, node *v)
{
    lock_node(n);
    SA_GC_STORE(n->kid[k], v);
    n->kid_id[k] = v ? v->id : 0;
    unlock_node(n);
}

/* n->kid[k], and in *id the id it was set to point at. */
static node *get_kid(node *n, int k, uint64_t *id)
{
    lock_node(n);
    node *v = __atomic_load_n(&n->kid[k], __ATOMIC_RELAXED);
    *id = n->kid_id[k];
    unlock_node(n);
    return v;
}

static node *load_kid(node *n, int k)
{
    return __atomic_load_n(&n->kid[k], __ATOMIC_RELAXED);
}

/* Sets the root slot of row (the row's own thread only). */
static void set_root(int row, size_t slot, node *n)
{
    __atomic_store_n(&g_roots[row][slot], n, __ATOMIC_RELAXED);
    g_root_ids[row][slot] = n ? n->id : 0;
}

static node *new_node(sa_rng *r)
{
    bool large = sa_rng_below(r, 200) == 0;
    node *n = sa_gc_alloc(large ? 40000 : sizeof(node), 0);
    if (!n)
        return NULL;
    n->id = atomic_fetch_add(&g_next_id, 1);
    for (int i = 0; i < 3; i++)
        n->payload[i] = sa_rng_next(r);
    n->check = node_sum(n);
    atomic_fetch_add(&g_allocated, 1);
    return n;
}

/* A node a few random steps below a random root of row; may be NULL. */
static node *random_node(sa_rng *r, int row)
{
    node *n = __atomic_load_n(&g_roots[row][sa_rng_below(r, SLOTS)], __ATOMIC_RELAXED);
    int steps = (int)sa_rng_below(r, 5);
    for (int i = 0; n && i < steps; i++) {
        node *k = load_kid(n, (int)sa_rng_below(r, KIDS));
        if (!k)
            break;
        n = k;
    }
    return n;
}

/* Checks up to budget nodes reachable from n, which was reached through an
 * edge set to the node with id `want` (0: unknown); depth-first, no marks:
 * the graph has cycles, the budget ends the walk. */
static void walk(node *n, uint64_t want, int depth, long *budget)
{
    if (!n || *budget <= 0 || depth > 12)
        return;
    (*budget)--;
    atomic_fetch_add(&g_checked, 1);
    if (!node_ok(n) || (want && n->id != want)) {
        atomic_fetch_add(&g_bad, 1);
        return;
    }
    for (int k = 0; k < KIDS; k++) {
        uint64_t id;
        node *v = get_kid(n, k, &id);
        walk(v, id, depth + 1, budget);
    }
}

static long g_iters;

static void *mutator(void *arg)
{
    int row = (int)(intptr_t)arg;
    sa_rng r = {0x1234567ull + (uint64_t)row * 7919};
    for (long it = 0; it < g_iters; it++) {
        uint64_t op = sa_rng_below(&r, 100);
        if (op < 40) {
            node *n = new_node(&r);
            node *parent = random_node(&r, row);
            size_t slot = sa_rng_below(&r, SLOTS);
            if (!parent || sa_rng_below(&r, 8) == 0)
                set_root(row, slot, n);
            else
                set_kid(parent, (int)sa_rng_below(&r, KIDS), n);
        } else if (op < 55) {
            node *n = random_node(&r, row);
            if (n)
                set_kid(n, (int)sa_rng_below(&r, KIDS), NULL);
            else
                set_root(row, sa_rng_below(&r, SLOTS), NULL);
        } else if (op < 68) {
            node *a = random_node(&r, row), *b = random_node(&r, row);
            if (a)
                set_kid(a, (int)sa_rng_below(&r, KIDS), b);
        } else if (op < 74) {
            /* Exchange: publish one of ours or adopt someone else's. */
            size_t e = sa_rng_below(&r, NEXCH);
            if (sa_rng_below(&r, 2)) {
                __atomic_store_n(&g_exch[e], random_node(&r, row), __ATOMIC_RELAXED);
            } else {
                node *b = __atomic_load_n(&g_exch[e], __ATOMIC_RELAXED);
                node *a = random_node(&r, row);
                if (a && b)
                    set_kid(a, (int)sa_rng_below(&r, KIDS), b);
            }
        } else if (op < 80) {
            /* Short-lived garbage, scanned and not; half of it node-sized
             * (zeroed, so it reads as id 0 if it reuses a live node). */
            size_t n = sa_rng_below(&r, 2) ? sizeof(node) : 16 + sa_rng_below(&r, 2000);
            sa_gc_alloc(n, sa_rng_below(&r, 2) ? SA_GC_NOSCAN : 0);
        } else if (op < 99) {
            long budget = 200;
            walk(random_node(&r, row), 0, 0, &budget);
        } else if (row == 0 && sa_rng_below(&r, 50) == 0) {
            sa_gc_collect();
        }
    }
    return NULL;
}

static void check_all_roots(void)
{
    for (int row = 0; row < NTHREADS; row++)
        for (int s = 0; s < SLOTS; s++) {
            long budget = 5000;
            walk(g_roots[row][s], g_root_ids[row][s], 0, &budget);
        }
}

Test(gc_torture, random_graphs_mutated_by_threads_while_cycles_run, .timeout = 280)
{
    int vg = sa_test_under_valgrind();
    g_iters = vg ? 6000 : 300000;
    cr_assert_eq(sa_gc_add_root(g_roots, sizeof g_roots), 0);
    cr_assert_eq(sa_gc_add_root(g_exch, sizeof g_exch), 0);
    sa_gc_set_percent(25);
    sa_memstats m0, m1;
    sa_read_memstats(&m0);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, mutator, (void *)(intptr_t)i), 0);
    /* Under memcheck the pacer's cycles depend on how valgrind schedules
     * the threads (one ran, once, on a loaded CI machine): there two cycles
     * are asked for while the mutators run. */
    if (vg)
        for (int k = 0; k < 2; k++)
            sa_gc_collect();
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    check_all_roots();
    sa_gc_collect();
    check_all_roots();
    sa_read_memstats(&m1);
    cr_assert_eq(atomic_load(&g_bad), 0, "%ld of %ld reachable nodes were corrupted",
                 atomic_load(&g_bad), atomic_load(&g_checked));
    cr_assert_gt(atomic_load(&g_checked), 1000);
    cr_assert_geq(m1.num_gc - m0.num_gc, vg ? 2u : 5u, "only %u cycles ran", m1.num_gc - m0.num_gc);
    cr_assert_eq(sa_heap_check(), 0);

    /* Everything unreachable now: the managed heap drains. */
    memset(g_roots, 0, sizeof g_roots);
    memset(g_root_ids, 0, sizeof g_root_ids);
    memset(g_exch, 0, sizeof g_exch);
    sa_gc_collect();
    sa_gc_collect();
    sa_read_memstats(&m1);
    long total = atomic_load(&g_allocated);
    cr_assert_lt(m1.gc_objects, 200, "%llu of %ld objects survived with no roots",
                 (unsigned long long)m1.gc_objects, total);
}

/* ---- fork while the collector marks --------------------------------------------- */

static node *g_tree;
static atomic_int g_stop;

static node *build(sa_rng *r, int depth)
{
    node *n = new_node(r);
    if (depth > 0)
        for (int k = 0; k < 2; k++) {
            node *v = build(r, depth - 1);
            n->kid[k] = v; /* fresh object: plain store */
            n->kid_id[k] = v->id;
        }
    return n;
}

/* Sound nodes of the tree under n (reached through an edge set to id want,
 * 0: any), or a large negative number if one is not. */
static long count_ok(node *n, uint64_t want)
{
    if (!n)
        return 0;
    if (!node_ok(n) || (want && n->id != want))
        return -1000000000;
    return 1 + count_ok(n->kid[0], n->kid_id[0]) + count_ok(n->kid[1], n->kid_id[1]);
}

static void *collect_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop))
        sa_gc_collect();
    return NULL;
}

Test(gc_fork, fork_while_marking, .timeout = 200)
{
    int vg = sa_test_under_valgrind();
    int depth = vg ? 12 : 17, forks = vg ? 3 : 20;
    sa_rng r = {42};
    cr_assert_eq(sa_gc_add_root(&g_tree, sizeof g_tree), 0);
    g_tree = build(&r, depth);
    long want = (2L << depth) - 1;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, collect_loop, NULL), 0);
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            alarm(60);
            sa_rng cr = {(uint64_t)i};
            node *mine = build(&cr, 10);
            sa_gc_collect();
            sa_gc_collect();
            int ok = count_ok(g_tree, 0) == want && count_ok(mine, 0) == 2047 && sa_heap_check() == 0;
            _exit(ok ? 0 : 3);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x", i, st);
    }
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    cr_assert_eq(count_ok(g_tree, 0), want);
}

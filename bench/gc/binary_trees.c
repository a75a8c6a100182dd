/*
 * binary_trees.c — the GC benchmark of the benchmarks game, shaped as issue
 * 6 asks: one long-lived tree (depth 22 by default: 8.4 M nodes, 128 MiB of
 * 16-byte nodes) stays live while 200 short-lived trees of depth 16 are built
 * and walked. Every node is a fresh object whose two fields are set once
 * (initialising stores need no barrier).
 *
 *   binary_trees [LONG_DEPTH [SHORT_DEPTH [SHORT_TREES]]]
 *
 * Prints one RESULT line (gcbench.h); exits 3 if a walk finds a wrong count.
 */
#include "gcbench.h"

typedef struct tnode {
    struct tnode *l, *r;
} tnode;

static tnode *g_long_lived;

static tnode *bottom_up(int depth)
{
    tnode *n = GCB_ALLOC(sizeof *n);
    if (!n) {
        fprintf(stderr, "binary_trees: out of memory\n");
        exit(2);
    }
    if (depth > 0) {
        n->l = bottom_up(depth - 1);
        n->r = bottom_up(depth - 1);
    }
    return n;
}

static long check(const tnode *n)
{
    return n->l ? 1 + check(n->l) + check(n->r) : 1;
}

int main(int argc, char **argv)
{
    int long_depth = argc > 1 ? atoi(argv[1]) : 22;
    int short_depth = argc > 2 ? atoi(argv[2]) : 16;
    int short_trees = argc > 3 ? atoi(argv[3]) : 200;
    GCB_INIT();
    GCB_ROOT(&g_long_lived, sizeof g_long_lived);
    double t0 = gcb_now();
    g_long_lived = bottom_up(long_depth);
    long want = (2L << short_depth) - 1, total = 0;
    for (int i = 0; i < short_trees; i++) {
        tnode *t = bottom_up(short_depth);
        long c = check(t);
        if (c != want) {
            fprintf(stderr, "binary_trees: short tree %d has %ld nodes, not %ld\n", i, c, want);
            return 3;
        }
        total += c;
    }
    long ll = check(g_long_lived);
    if (ll != (2L << long_depth) - 1) {
        fprintf(stderr, "binary_trees: long-lived tree has %ld nodes\n", ll);
        return 3;
    }
    double secs = gcb_now() - t0;
    char extra[96];
    snprintf(extra, sizeof extra, "long_depth=%d short_depth=%d short_trees=%d nodes=%ld", long_depth,
             short_depth, short_trees, total + ll);
    gcb_result("binary_trees", secs, extra);
    return 0;
}

/*
 * large_blocks — many allocations between 64 KiB and 16 MiB.
 *
 * Each of THREADS threads keeps 16 live blocks whose sizes are drawn
 * log-uniformly from 64 KiB to 16 MiB (so small-large blocks are as common as
 * huge ones) and, for its share of 6000 × SCALE operations, replaces a random
 * block: check it, free it and allocate a new one, or (one in 8) realloc it to
 * the new size and check that the common prefix survived. Every block is
 * stamped on every 4 KiB page, so the cost of fresh pages (faults, zeroing)
 * and of returning them shows, as in programs that really use big buffers
 * (image/IO buffers, arrays that grow).
 */
#include "wl_common.h"

#include <math.h>

#define WORKLOAD "large_blocks"
#define LIVE 16
#define MIN_SIZE (64u << 10)
#define MAX_SIZE (16u << 20)

typedef struct blk {
    void *p;
    size_t size;
    uint64_t tag;
} blk;

typedef struct worker {
    int index;
    uint64_t ops;
    uint64_t bytes;
    wl_team *team;
} worker;

static size_t pick_size(wl_rng *r) {
    double lo = log((double)MIN_SIZE), hi = log((double)MAX_SIZE);
    size_t s = (size_t)exp(lo + (hi - lo) * wl_unit(r));
    /* not page multiples on purpose: real requests rarely are */
    s += wl_below(r, 4096);
    return s > MAX_SIZE ? MAX_SIZE : s;
}

/* Checks the stamp words of the old tag that lie wholly inside [0, n). */
static void check_prefix(const void *p, size_t n, uint64_t tag) {
    const unsigned char *b = p;
    uint64_t v;
    for (size_t off = 0; off + 8 <= n; off += WL_STRIDE) {
        memcpy(&v, b + off, 8);
        if (v != wl_tag_at(tag, off)) wl_fail(WORKLOAD, "realloc lost data: block %p offset %zu", p, off);
    }
}

static void *run(void *arg) {
    worker *w = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x1a26eb10u + (uint64_t)w->index * 31u);
    blk set[LIVE];
    uint64_t next_tag = ((uint64_t)w->index << 48) | 1;
    for (int i = 0; i < LIVE; i++) {
        set[i].size = pick_size(&r);
        set[i].tag = next_tag++;
        set[i].p = wl_xmalloc(WORKLOAD, set[i].size);
        wl_stamp(set[i].p, set[i].size, set[i].tag);
    }
    wl_team_wait(w->team); /* start */
    uint64_t bytes = 0;
    for (uint64_t op = 0; op < w->ops; op++) {
        blk *b = &set[wl_below(&r, LIVE)];
        wl_check(WORKLOAD, b->p, b->size, b->tag);
        size_t nsize = pick_size(&r);
        if (wl_below(&r, 8) == 0) {
            void *np = realloc(b->p, nsize);
            if (!np) wl_fail(WORKLOAD, "realloc(%zu) returned NULL", nsize);
            /* stamp words ending before the old tail and the new end survive */
            size_t keep = nsize < b->size ? nsize : b->size;
            size_t last_full = ((b->size - 8) / WL_STRIDE) * WL_STRIDE + 8; /* end of the old stride words */
            check_prefix(np, keep < last_full ? keep : last_full, b->tag);
            b->p = np;
        } else {
            free(b->p);
            b->p = wl_xmalloc(WORKLOAD, nsize);
        }
        b->size = nsize;
        b->tag = next_tag++;
        wl_stamp(b->p, b->size, b->tag);
        bytes += nsize;
    }
    wl_team_wait(w->team); /* stop */
    for (int i = 0; i < LIVE; i++) {
        wl_check(WORKLOAD, set[i].p, set[i].size, set[i].tag);
        free(set[i].p);
    }
    w->bytes = bytes;
    return NULL;
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads replacing and reallocating 64 KiB - 16 MiB blocks");
    uint64_t total = wl_scaled(6000, a.scale, (uint64_t)a.threads);
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .ops = total / (uint64_t)a.threads, .team = &team};
        wl_team_spawn(&team, run, &ws[i]);
    }
    double secs = wl_team_timed(&team);
    wl_team_join(&team);
    uint64_t ops = 0, bytes = 0;
    for (int i = 0; i < a.threads; i++) {
        ops += ws[i].ops;
        bytes += ws[i].bytes;
    }
    free(ws);
    char extra[64];
    snprintf(extra, sizeof extra, " mib_allocated=%llu", (unsigned long long)(bytes >> 20));
    wl_result(WORKLOAD, &a, secs, ops, extra);
    return 0;
}

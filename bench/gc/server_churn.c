/*
 * server_churn.c — a server-like heap: a large live set of records (a table
 * of slots, LIVE_MB of records of 16..496 bytes, a quarter of them linking
 * to another record) under steady churn: each operation replaces a random
 * slot with a new record (through the write barrier, the table being one
 * large managed object) and allocates a short-lived pointer-free response
 * buffer one time in four. This is the heap the concurrent mode is for: the
 * pause target (max STW pause <= 50 us at 256 MB live) is measured here.
 *
 *   server_churn [LIVE_MB [OPS_MILLIONS]]   (defaults 256 and 20)
 *
 * Prints one RESULT line (gcbench.h); exits 3 if a record's stamp is wrong.
 */
#include "gcbench.h"

typedef struct rec {
    uint64_t stamp; /* slot index and size, checked when the record is replaced */
    struct rec *link;
    uint64_t size;
    uint64_t payload[];
} rec;

static rec **g_table;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static rec *new_rec(uint64_t *rng, size_t slot, size_t nslots)
{
    size_t size = 16 + (rng_next(rng) % 31) * 16;
    if (size < sizeof(rec))
        size = sizeof(rec);
    rec *r = GCB_ALLOC(size);
    if (!r) {
        fprintf(stderr, "server_churn: out of memory\n");
        exit(2);
    }
    r->stamp = slot * 1000003u + size;
    r->size = size;
    if (rng_next(rng) % 4 == 0)
        r->link = g_table[rng_next(rng) % nslots]; /* initialising store */
    return r;
}

int main(int argc, char **argv)
{
    size_t live_mb = argc > 1 ? (size_t)atol(argv[1]) : 256;
    double ops_m = argc > 2 ? atof(argv[2]) : 20;
    size_t nslots = live_mb * 1024 * 1024 / 256 * 3 / 4;
    size_t ops = (size_t)(ops_m * 1e6);
    uint64_t rng = 12345;
    GCB_INIT();
    GCB_ROOT(&g_table, sizeof g_table);
    double t0 = gcb_now();
    g_table = GCB_ALLOC(nslots * sizeof(rec *));
    for (size_t i = 0; i < nslots; i++) {
        rec *r = new_rec(&rng, i, nslots);
        GCB_STORE(g_table[i], r);
    }
    size_t responses = 0;
    for (size_t op = 0; op < ops; op++) {
        size_t i = rng_next(&rng) % nslots;
        rec *old = g_table[i];
        if (old->stamp != i * 1000003u + old->size) {
            fprintf(stderr, "server_churn: slot %zu holds a corrupted record\n", i);
            return 3;
        }
        rec *r = new_rec(&rng, i, nslots);
        GCB_STORE(g_table[i], r);
        if ((op & 3) == 0) {
            char *buf = GCB_ALLOC_NOSCAN(64 + rng_next(&rng) % 1024);
            buf[0] = (char)op;
            responses += (unsigned char)buf[0] != 0;
        }
    }
    double secs = gcb_now() - t0;
    char extra[96];
    snprintf(extra, sizeof extra, "live_mb=%zu slots=%zu ops=%zu", live_mb, nslots, ops);
    gcb_result("server_churn", secs, extra);
    (void)responses;
    return 0;
}

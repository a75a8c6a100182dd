/* Page allocator: bitmap search, summaries, first fit, coalescing, runs that
 * cross chunks and arenas. Uses a private sa_pagealloc over arenas mapped by
 * the test and registered in the arena index (as the mheap does). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define PG ((uintptr_t)SA_PAGE_SIZE)

static sa_pagealloc pa;
static uintptr_t region;
static size_t nregion_arenas;

/* Reserves n adjacent arenas (address space only) and adds them. */
static void setup_arenas(size_t n)
{
    memset(&pa, 0, sizeof pa);
    size_t bytes = n * SA_ARENA_BYTES;
    char *p = mmap(NULL, bytes + SA_ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    region = ((uintptr_t)p + SA_ARENA_BYTES - 1) & ~(uintptr_t)(SA_ARENA_BYTES - 1);
    nregion_arenas = n;
    for (size_t i = 0; i < n; i++) {
        sa_heaparena *a = calloc(1, sizeof *a);
        cr_assert_not_null(a);
        a->base = region + i * SA_ARENA_BYTES;
        cr_assert(sa_pages_add_arena(&pa, a));
        sa_arena_index[a->base >> SA_ARENA_SHIFT] = a;
    }
}

static void teardown_arenas(void)
{
    for (size_t i = 0; i < nregion_arenas; i++) {
        uintptr_t b = region + i * SA_ARENA_BYTES;
        free(sa_arena_index[b >> SA_ARENA_SHIFT]);
        sa_arena_index[b >> SA_ARENA_SHIFT] = NULL;
    }
}

static uintptr_t alloc_pages(size_t n)
{
    sa_pagecounts pc;
    return sa_pages_alloc(&pa, n, &pc);
}

TestSuite(pagealloc, .fini = teardown_arenas);

static long brute_find(const uint64_t *w, unsigned nbits, size_t n)
{
    size_t run = 0;
    for (unsigned i = 0; i < nbits; i++) {
        if (w[i / 64] >> (i % 64) & 1)
            run = 0;
        else if (++run >= n)
            return (long)(i + 1 - n);
    }
    return -1;
}

static void brute_sum(const uint64_t *w, unsigned nbits, sa_pallocsum *s)
{
    unsigned i = 0, run = 0, max = 0;
    while (i < nbits && !(w[i / 64] >> (i % 64) & 1))
        i++;
    s->start = i;
    for (i = 0; i < nbits; i++) {
        if (w[i / 64] >> (i % 64) & 1)
            run = 0;
        else if (++run > max)
            max = run;
    }
    s->max = max;
    s->end = run;
}

Test(pagealloc_bits, find_and_summary_match_brute_force)
{
    uint64_t w[8];
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        int density = rand_r(&seed) % 7;
        for (int i = 0; i < 8; i++) {
            uint64_t x = ((uint64_t)rand_r(&seed) << 33) ^ ((uint64_t)rand_r(&seed) << 11) ^ (uint64_t)rand_r(&seed);
            if (density == 0) x = 0;
            else if (density == 1) x &= (uint64_t)rand_r(&seed) << 20;
            else if (density == 3) x |= ((uint64_t)rand_r(&seed) << 31);
            else if (density == 4) x = ~(uint64_t)0 ^ ((uint64_t)1 << (rand_r(&seed) % 64));
            /* ones up to bit 63: the all-ones word and a run of free pages
             * below a full tail (once a ctz of 0, caught by UBSan) */
            else if (density == 5) x = (rand_r(&seed) & 1) ? ~(uint64_t)0 : x;
            else if (density == 6) x = ~(uint64_t)0 << (rand_r(&seed) % 64);
            w[i] = x;
        }
        size_t n = 1 + (size_t)(rand_r(&seed) % 200);
        cr_assert_eq(sa_bitmap_find_zero_run(w, 512, n), brute_find(w, 512, n), "iter %d n %zu", iter, n);
        sa_pallocsum a, b;
        sa_pallocsum_compute(w, 512, &a);
        brute_sum(w, 512, &b);
        cr_assert(a.start == b.start && a.max == b.max && a.end == b.end,
                  "iter %d: got %u/%u/%u want %u/%u/%u", iter, a.start, a.max, a.end, b.start, b.max, b.end);
    }
}

Test(pagealloc, first_fit_in_address_order)
{
    setup_arenas(1);
    uintptr_t a = alloc_pages(1), b = alloc_pages(3), c = alloc_pages(2);
    cr_assert_eq(a, region);
    cr_assert_eq(b, region + PG);
    cr_assert_eq(c, region + 4 * PG);
    cr_assert_eq(pa.pages_inuse, 6);
}

Test(pagealloc, freed_neighbours_coalesce)
{
    setup_arenas(1);
    uintptr_t a = alloc_pages(2), b = alloc_pages(2), c = alloc_pages(2);
    alloc_pages(1); /* fence */
    sa_pages_free(&pa, a, 2);
    sa_pages_free(&pa, c, 2);
    /* 4 pages do not fit in either hole... */
    uintptr_t d = alloc_pages(4);
    cr_assert_gt(d, c);
    sa_pages_free(&pa, b, 2);
    /* ...but once b is free, a+b+c is one run of 6. */
    uintptr_t e = alloc_pages(6);
    cr_assert_eq(e, a);
}

Test(pagealloc, runs_cross_chunks)
{
    setup_arenas(1);
    uintptr_t a = alloc_pages(SA_CHUNK_PAGES - 10);
    uintptr_t b = alloc_pages(100); /* straddles chunk 0 and 1 */
    cr_assert_eq(b, a + (SA_CHUNK_PAGES - 10) * PG);
    uintptr_t c = alloc_pages(3 * SA_CHUNK_PAGES); /* several whole chunks */
    cr_assert_eq(c, b + 100 * PG);
    cr_assert(!sa_pages_range_free(&pa, c, 1));
    sa_pages_free(&pa, b, 100);
    cr_assert(sa_pages_range_free(&pa, b, 100));
    cr_assert_eq(alloc_pages(100), b);
}

Test(pagealloc, runs_cross_adjacent_arenas)
{
    setup_arenas(3);
    uintptr_t a = alloc_pages(SA_PAGES_PER_ARENA - 5);
    uintptr_t b = alloc_pages(SA_PAGES_PER_ARENA + 20); /* arena 0 tail .. arena 2 */
    cr_assert_eq(b, a + (SA_PAGES_PER_ARENA - 5) * PG);
    cr_assert_eq(pa.pages_inuse, 2 * SA_PAGES_PER_ARENA + 15);
    sa_pages_free(&pa, b, SA_PAGES_PER_ARENA + 20);
    sa_pages_free(&pa, a, SA_PAGES_PER_ARENA - 5);
    /* everything coalesced: a run as large as all three arenas */
    cr_assert_eq(alloc_pages(3 * SA_PAGES_PER_ARENA), region);
    cr_assert_eq(alloc_pages(1), 0, "heap is full");
}

Test(pagealloc, fresh_pages_count_as_released_then_dirty)
{
    setup_arenas(1);
    sa_pagecounts pc;
    uintptr_t a = sa_pages_alloc(&pa, 8, &pc);
    cr_assert_eq(pc.released, 8, "fresh pages hold no memory");
    cr_assert_eq(pc.zeroed, 8, "fresh pages are known zero");
    cr_assert_eq(pc.refault, 0, "first use is not a refault");
    sa_pages_free(&pa, a, 8);
    uintptr_t b = sa_pages_alloc(&pa, 8, &pc);
    cr_assert_eq(b, a);
    cr_assert_eq(pc.released + pc.zeroed, 0, "reused pages are dirty");
    uintptr_t c = sa_pages_alloc(&pa, 4, &pc);
    cr_assert_eq(pc.zeroed, 4);
    (void)c;
}

Test(pagealloc, alloc_at_and_exhaustion)
{
    setup_arenas(1);
    sa_pagecounts pc;
    uintptr_t a = alloc_pages(10);
    cr_assert(sa_pages_alloc_at(&pa, a + 10 * PG, 5, &pc));
    cr_assert(!sa_pages_alloc_at(&pa, a + 12 * PG, 5, &pc), "overlaps");
    cr_assert_eq(alloc_pages(SA_PAGES_PER_ARENA), 0, "does not fit");
    cr_assert_eq(alloc_pages(SA_PAGES_PER_ARENA - 15), a + 15 * PG);
    cr_assert_eq(alloc_pages(1), 0);
}

Test(pagealloc, random_alloc_free_matches_a_page_model)
{
    setup_arenas(2);
    enum { N = 2 * SA_PAGES_PER_ARENA };
    static unsigned char model[N];
    memset(model, 0, sizeof model);
    uintptr_t addrs[256] = {0};
    size_t lens[256] = {0};
    unsigned seed = 99;
    for (int it = 0; it < 20000; it++) {
        int k = rand_r(&seed) % 256;
        if (addrs[k]) {
            size_t first = (addrs[k] - region) / PG;
            for (size_t i = 0; i < lens[k]; i++) model[first + i] = 0;
            sa_pages_free(&pa, addrs[k], lens[k]);
            addrs[k] = 0;
            continue;
        }
        size_t n = 1 + (size_t)(rand_r(&seed) % (rand_r(&seed) % 8 == 0 ? 3000 : 20));
        uintptr_t got = alloc_pages(n);
        /* the model's first fit */
        long want = -1;
        size_t run = 0;
        for (size_t i = 0; i < N; i++) {
            run = model[i] ? 0 : run + 1;
            if (run == n) { want = (long)(i + 1 - n); break; }
        }
        if (want < 0) {
            cr_assert_eq(got, 0, "it %d: n %zu should not fit", it, n);
            continue;
        }
        cr_assert_eq(got, region + (uintptr_t)want * PG, "it %d: n %zu", it, n);
        for (size_t i = 0; i < n; i++) model[want + i] = 1;
        addrs[k] = got;
        lens[k] = n;
    }
}

Test(pagealloc, arenas_added_out_of_address_order_are_searched_in_order)
{
    memset(&pa, 0, sizeof pa);
    char *p = mmap(NULL, 3 * SA_ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    region = ((uintptr_t)p + SA_ARENA_BYTES - 1) & ~(uintptr_t)(SA_ARENA_BYTES - 1);
    nregion_arenas = 2;
    for (int i = 1; i >= 0; i--) { /* the higher arena first */
        sa_heaparena *a = calloc(1, sizeof *a);
        a->base = region + (uintptr_t)i * SA_ARENA_BYTES;
        cr_assert(sa_pages_add_arena(&pa, a));
        sa_arena_index[a->base >> SA_ARENA_SHIFT] = a;
    }
    cr_assert_lt(pa.arenas[0]->base, pa.arenas[1]->base);
    cr_assert_eq(pa.arenas[0]->index, 0);
    cr_assert_eq(pa.arenas[1]->index, 1);
    /* a run across both needs them in address order */
    cr_assert_eq(alloc_pages(SA_PAGES_PER_ARENA + 1), region);
}

Test(pagealloc, scavenging_takes_the_oldest_idle_chunk_and_its_largest_run)
{
    setup_arenas(1);
    uintptr_t a = alloc_pages(SA_CHUNK_PAGES);     /* chunk 0 */
    uintptr_t b = alloc_pages(SA_CHUNK_PAGES);     /* chunk 1 */
    cr_assert_eq(pa.pages_free_backed, 0, "fresh pages are not candidates");
    pa.epoch = 1;
    sa_pages_free(&pa, b + 10 * PG, 5);            /* chunk 1, epoch 1 */
    sa_pages_free(&pa, b + 100 * PG, 40);
    pa.epoch = 2;
    sa_pages_free(&pa, a + 200 * PG, 60);          /* chunk 0, epoch 2 */
    cr_assert_eq(pa.pages_free_backed, 105);
    uintptr_t addr;
    /* Busy mode: only chunks idle since epoch 1 -> chunk 1, its largest run. */
    size_t n = sa_pages_scav_take(&pa, 1000, 1, &addr);
    cr_assert_eq(n, 40);
    cr_assert_eq(addr, b + 100 * PG);
    cr_assert(!sa_pages_range_free(&pa, addr, 1), "held while being released");
    sa_pages_scav_done(&pa, addr, n, SA_RELEASED_ZEROED);
    cr_assert(sa_pages_range_free(&pa, addr, n));
    cr_assert_eq(pa.pages_free_backed, 65);
    /* Any age: chunk 1 is still the oldest; its remaining run is 5 pages. */
    n = sa_pages_scav_take(&pa, 8, UINT64_MAX, &addr);
    cr_assert_eq(n, 5);
    cr_assert_eq(addr, b + 10 * PG);
    sa_pages_scav_done(&pa, addr, n, SA_RELEASE_FAILED);
    cr_assert_eq(pa.pages_free_backed, 65, "a failed release stays a candidate");
    n = sa_pages_scav_take(&pa, 8, UINT64_MAX, &addr);
    cr_assert_eq(n, 5);
    sa_pages_scav_done(&pa, addr, n, SA_RELEASED_ZEROED);
    /* Then chunk 0; a batch cap takes the top of the run (allocation comes
     * from below). */
    n = sa_pages_scav_take(&pa, 8, UINT64_MAX, &addr);
    cr_assert_eq(n, 8);
    cr_assert_eq(addr, a + 252 * PG);
    sa_pages_scav_done(&pa, addr, n, SA_RELEASED_ZEROED);
    /* Reusing them: released, known zero, and counted as a refault. */
    sa_pagecounts pc;
    cr_assert(sa_pages_alloc_at(&pa, a + 250 * PG, 10, &pc));
    cr_assert_eq(pc.released, 8);
    cr_assert_eq(pc.refault, 8);
    cr_assert_eq(pc.zeroed, 8);
}

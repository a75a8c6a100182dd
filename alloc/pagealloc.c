/*
 * pagealloc.c — the page allocator: which pages of the heap are in use.
 *
 * Owns: per arena, a bitmap with one bit per 8 KiB page (1 = in use) and a
 * second bitmap of pages known to hold no memory (1 = released: never touched
 * since the arena was mapped, or handed back to the kernel by the scavenger),
 * plus summaries in the shape of Go's pallocSum -- free pages at the start,
 * the longest free run, free pages at the end -- for every 512-page chunk
 * and for the whole arena.
 *
 * Finding a run of n free pages never walks every page: arenas are visited in
 * address order and skipped on their summary; inside an arena the 16 chunk
 * summaries are consulted; only a chunk whose longest run fits (or whose
 * start completes a run carried over from its neighbour) has its bitmap
 * words scanned. Runs may cross chunk and arena boundaries (adjacent arenas),
 * so blocks larger than an arena work. Allocation is address-ordered first
 * fit, which keeps the heap compact at low addresses (Go does the same and
 * scavenges from the top). Coalescing is implicit: freeing clears bits and
 * the summaries are recomputed, so neighbouring free runs merge by
 * construction.
 *
 * For the scavenger each arena also keeps a third bitmap (1 = page content
 * known zero: fresh, or released with MADV_DONTNEED; MADV_FREE'd pages may
 * come back with old data) and, per chunk, the number of free pages still
 * backed by memory (scavenging candidates) and the scavenger epoch of the
 * chunk's last free, so the scavenger can pick the chunk idle the longest
 * and its largest run without scanning bitmaps it has no use for. A run
 * being released is marked in use while the mheap lock is dropped around
 * madvise, so no allocation can land on it (as Go's scavenger does).
 *
 * Locking: every function here runs under the mheap lock.
 */
#include <string.h>

#include "internal.h"

/* ---- bitmap helpers --------------------------------------------------------- */

/* Index of the first run of n zero bits in words[0..nbits), or -1. */
long sa_bitmap_find_zero_run(const uint64_t *words, unsigned nbits, size_t n)
{
    size_t run = 0;
    long start = 0;
    unsigned nwords = nbits / 64;
    for (unsigned i = 0; i < nwords; i++) {
        uint64_t x = words[i];
        if (x == 0) {
            if (run == 0)
                start = (long)i * 64;
            run += 64;
            if (run >= n)
                return start;
            continue;
        }
        if (x == ~(uint64_t)0) {
            run = 0;
            continue;
        }
        unsigned bit = 0;
        while (bit < 64) {
            uint64_t y = x >> bit;
            unsigned zeros = y ? (unsigned)__builtin_ctzll(y) : 64 - bit;
            if (zeros) {
                if (run == 0)
                    start = (long)i * 64 + bit;
                run += zeros;
                if (run >= n)
                    return start;
                bit += zeros;
                if (bit >= 64)
                    break;
            }
            unsigned ones = (unsigned)__builtin_ctzll(~y);
            run = 0;
            bit += ones;
        }
    }
    return -1;
}

void sa_pallocsum_compute(const uint64_t *words, unsigned nbits, sa_pallocsum *out)
{
    unsigned nwords = nbits / 64;
    uint32_t start = 0, max = 0, end = 0, run = 0;
    bool in_start = true;
    for (unsigned i = 0; i < nwords; i++) {
        uint64_t x = words[i];
        if (x == 0) {
            run += 64;
            continue;
        }
        unsigned bit = 0;
        while (bit < 64) {
            uint64_t y = x >> bit;
            unsigned zeros = y ? (unsigned)__builtin_ctzll(y) : 64 - bit;
            run += zeros;
            bit += zeros;
            if (bit >= 64)
                break;
            /* a one-bit ends the run */
            if (in_start) {
                start = run;
                in_start = false;
            }
            if (run > max)
                max = run;
            run = 0;
            /* skip the one-bits; they may reach bit 63 (ctz of 0 is undefined) */
            uint64_t rest = ~y >> zeros;
            bit += rest ? (unsigned)__builtin_ctzll(rest) : 64 - bit;
        }
    }
    if (in_start)
        start = run;
    if (run > max)
        max = run;
    end = run;
    out->start = start;
    out->max = max;
    out->end = end;
}

static void bits_set_range(uint64_t *words, size_t from, size_t n)
{
    while (n > 0) {
        size_t w = from >> 6, b = from & 63;
        size_t k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        words[w] |= mask;
        from += k;
        n -= k;
    }
}

static void bits_clear_range(uint64_t *words, size_t from, size_t n)
{
    while (n > 0) {
        size_t w = from >> 6, b = from & 63;
        size_t k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        words[w] &= ~mask;
        from += k;
        n -= k;
    }
}

/* Counts set bits in [from, from+n) and clears them. */
static size_t bits_take_range(uint64_t *words, size_t from, size_t n)
{
    size_t count = 0;
    while (n > 0) {
        size_t w = from >> 6, b = from & 63;
        size_t k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        count += (size_t)sa_popcount64(words[w] & mask);
        words[w] &= ~mask;
        from += k;
        n -= k;
    }
    return count;
}

static bool bits_all_clear(const uint64_t *words, size_t from, size_t n)
{
    while (n > 0) {
        size_t w = from >> 6, b = from & 63;
        size_t k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        if (words[w] & mask)
            return false;
        from += k;
        n -= k;
    }
    return true;
}

/* ---- summaries -------------------------------------------------------------- */

static void arena_update_sum(sa_heaparena *a, size_t firstpage, size_t npages)
{
    size_t c0 = firstpage / SA_CHUNK_PAGES;
    size_t c1 = (firstpage + npages - 1) / SA_CHUNK_PAGES;
    for (size_t c = c0; c <= c1; c++)
        sa_pallocsum_compute(&a->inuse[c * SA_CHUNK_WORDS], SA_CHUNK_PAGES, &a->chunksum[c]);
    /* Merge the chunk summaries into the arena's. */
    uint32_t start = 0, max = 0, run = 0;
    bool in_start = true;
    for (size_t c = 0; c < SA_CHUNKS_PER_ARENA; c++) {
        sa_pallocsum *s = &a->chunksum[c];
        if (s->start == SA_CHUNK_PAGES) {
            run += SA_CHUNK_PAGES;
            continue;
        }
        run += s->start;
        if (in_start) {
            start = run;
            in_start = false;
        }
        if (run > max)
            max = run;
        if (s->max > max)
            max = s->max;
        run = s->end;
    }
    if (in_start)
        start = run;
    if (run > max)
        max = run;
    a->sum.start = start;
    a->sum.max = max;
    a->sum.end = run;
}

/* ---- arenas ------------------------------------------------------------------- */

bool sa_pages_add_arena(sa_pagealloc *pa, sa_heaparena *a)
{
    if (pa->narenas == pa->cap) {
        size_t ncap = pa->cap ? pa->cap * 2 : 512;
        sa_heaparena **na = sa_os_alloc_meta(ncap * sizeof *na);
        if (!na)
            return false;
        if (pa->arenas) {
            memcpy(na, pa->arenas, pa->narenas * sizeof *na);
            sa_os_unmap(pa->arenas, pa->cap * sizeof *na);
        }
        pa->arenas = na;
        pa->cap = ncap;
    }
    /* Insert in address order. */
    size_t i = pa->narenas;
    while (i > 0 && pa->arenas[i - 1]->base > a->base) {
        pa->arenas[i] = pa->arenas[i - 1];
        pa->arenas[i]->index = (uint32_t)i;
        i--;
    }
    pa->arenas[i] = a;
    a->index = (uint32_t)i;
    pa->narenas++;
    memset(a->inuse, 0, sizeof a->inuse);
    memset(a->released, 0xff, sizeof a->released); /* fresh mapping: */
    memset(a->zeroed, 0xff, sizeof a->zeroed);     /* no memory, reads zero */
    memset(a->scavenged, 0, sizeof a->scavenged);
    memset(a->scavcand, 0, sizeof a->scavcand);
    memset(a->lastfree, 0, sizeof a->lastfree);
    a->nscavcand = 0;
    for (size_t c = 0; c < SA_CHUNKS_PER_ARENA; c++)
        a->chunksum[c] = (sa_pallocsum){SA_CHUNK_PAGES, SA_CHUNK_PAGES, SA_CHUNK_PAGES};
    a->sum = (sa_pallocsum){SA_PAGES_PER_ARENA, SA_PAGES_PER_ARENA, SA_PAGES_PER_ARENA};
    if (i < pa->searchArena)
        pa->searchArena = i;
    pa->pages_total += SA_PAGES_PER_ARENA;
    pa->pages_released += SA_PAGES_PER_ARENA;
    return true;
}

static sa_heaparena *arena_at(uintptr_t addr)
{
    return sa_arena_index[addr >> SA_ARENA_SHIFT];
}

/* Applies op to [addr, addr + npages pages), chunk by chunk. Returns how many
 * pages were released / known zero (for RANGE_ALLOC). */
enum range_op { RANGE_ALLOC, RANGE_FREE };

static void range_apply(sa_pagealloc *pa, uintptr_t addr, size_t npages, enum range_op op,
                        sa_pagecounts *pc)
{
    while (npages > 0) {
        sa_heaparena *a = arena_at(addr);
        size_t first = (addr - a->base) >> SA_PAGE_SHIFT;
        size_t c = first / SA_CHUNK_PAGES;
        size_t k = (c + 1) * SA_CHUNK_PAGES - first;
        if (k > npages)
            k = npages;
        if (op == RANGE_ALLOC) {
            bits_set_range(a->inuse, first, k);
            size_t rel = bits_take_range(a->released, first, k);
            pc->released += rel;
            pc->zeroed += bits_take_range(a->zeroed, first, k);
            pc->refault += bits_take_range(a->scavenged, first, k);
            a->scavcand[c] -= (uint16_t)(k - rel);
            a->nscavcand -= (uint32_t)(k - rel);
            pa->pages_free_backed -= k - rel;
        } else {
            bits_clear_range(a->inuse, first, k);
            a->scavcand[c] += (uint16_t)k;
            a->nscavcand += (uint32_t)k;
            a->lastfree[c] = pa->epoch;
            pa->pages_free_backed += k;
        }
        arena_update_sum(a, first, k);
        addr += k << SA_PAGE_SHIFT;
        npages -= k;
    }
}

/* ---- find ----------------------------------------------------------------------- */

/* First fit inside one arena for a run that must start inside it.
 * carry = free pages ending the previous (adjacent) arena. Returns the page
 * address or 0. */
static uintptr_t find_in_arena(sa_heaparena *a, size_t npages)
{
    uint32_t run = 0;
    size_t runstart = 0; /* page index within the arena */
    for (size_t c = 0; c < SA_CHUNKS_PER_ARENA; c++) {
        sa_pallocsum *s = &a->chunksum[c];
        size_t cbase = c * SA_CHUNK_PAGES;
        if (s->start == SA_CHUNK_PAGES) {
            if (run == 0)
                runstart = cbase;
            run += SA_CHUNK_PAGES;
            if (run >= npages)
                return a->base + (runstart << SA_PAGE_SHIFT);
            continue;
        }
        if (run + s->start >= npages)
            return a->base + ((run ? runstart : cbase) << SA_PAGE_SHIFT);
        if (s->max >= npages) {
            long i = sa_bitmap_find_zero_run(&a->inuse[c * SA_CHUNK_WORDS], SA_CHUNK_PAGES, npages);
            if (i >= 0)
                return a->base + ((cbase + (size_t)i) << SA_PAGE_SHIFT);
        }
        run = s->end;
        runstart = cbase + SA_CHUNK_PAGES - s->end;
    }
    /* A run reaching the arena's end is continued by the caller. */
    return 0;
}

uintptr_t sa_pages_alloc(sa_pagealloc *pa, size_t npages, sa_pagecounts *pc)
{
    size_t run = 0;
    uintptr_t runstart = 0, prev_end = 0;
    bool all_full_so_far = true;
    for (size_t i = pa->searchArena; i < pa->narenas; i++) {
        sa_heaparena *a = pa->arenas[i];
        if (a->sum.max == 0) {
            if (all_full_so_far)
                pa->searchArena = i + 1;
            run = 0;
            continue;
        }
        all_full_so_far = false;
        if (run > 0 && a->base != prev_end)
            run = 0;
        prev_end = a->base + SA_ARENA_BYTES;
        uintptr_t found = 0;
        if (a->sum.start == SA_PAGES_PER_ARENA) {
            if (run == 0)
                runstart = a->base;
            run += SA_PAGES_PER_ARENA;
            if (run >= npages)
                found = runstart;
        } else if (run > 0 && run + a->sum.start >= npages) {
            found = runstart;
        } else if (a->sum.max >= npages) {
            found = find_in_arena(a, npages);
        }
        if (found) {
            *pc = (sa_pagecounts){0, 0, 0};
            range_apply(pa, found, npages, RANGE_ALLOC, pc);
            pa->pages_inuse += npages;
            pa->pages_released -= pc->released;
            pa->nallocs++;
            return found;
        }
        if (a->sum.start != SA_PAGES_PER_ARENA) {
            run = a->sum.end;
            runstart = a->base + SA_ARENA_BYTES - ((uintptr_t)run << SA_PAGE_SHIFT);
        }
    }
    return 0;
}

/* True when [addr, addr+npages) lies inside the heap and is entirely free. */
bool sa_pages_range_free(sa_pagealloc *pa, uintptr_t addr, size_t npages)
{
    (void)pa;
    while (npages > 0) {
        if ((addr >> SA_ARENA_SHIFT) >= SA_ARENA_INDEX_LEN)
            return false;
        sa_heaparena *a = arena_at(addr);
        if (!a)
            return false;
        size_t first = (addr - a->base) >> SA_PAGE_SHIFT;
        size_t k = SA_PAGES_PER_ARENA - first;
        if (k > npages)
            k = npages;
        if (!bits_all_clear(a->inuse, first, k))
            return false;
        addr += k << SA_PAGE_SHIFT;
        npages -= k;
    }
    return true;
}

bool sa_pages_alloc_at(sa_pagealloc *pa, uintptr_t addr, size_t npages, sa_pagecounts *pc)
{
    if (!sa_pages_range_free(pa, addr, npages))
        return false;
    *pc = (sa_pagecounts){0, 0, 0};
    range_apply(pa, addr, npages, RANGE_ALLOC, pc);
    pa->pages_inuse += npages;
    pa->pages_released -= pc->released;
    pa->nallocs++;
    return true;
}

void sa_pages_free(sa_pagealloc *pa, uintptr_t addr, size_t npages)
{
    range_apply(pa, addr, npages, RANGE_FREE, NULL);
    pa->pages_inuse -= npages;
    sa_heaparena *a = arena_at(addr);
    if (a->index < pa->searchArena)
        pa->searchArena = a->index;
}

/* ---- scavenging --------------------------------------------------------------- */

/* Longest run of zero bits in w[0..8) (one chunk); *start receives its index. */
static unsigned longest_zero_run(const uint64_t *w, unsigned *start)
{
    unsigned best = 0, beststart = 0, run = 0, runstart = 0;
    for (unsigned i = 0; i < SA_CHUNK_PAGES; i++) {
        if (w[i / 64] >> (i % 64) & 1) {
            run = 0;
            continue;
        }
        if (run++ == 0)
            runstart = i;
        if (run > best) {
            best = run;
            beststart = runstart;
        }
    }
    *start = beststart;
    return best;
}

/* Picks the chunk idle the longest (last free at or before idle_epoch; the
 * highest address among equals, as allocation is first fit from the bottom)
 * that has free pages still backed by memory, takes the largest such run in
 * it (at most maxpages) and marks it in use until sa_pages_scav_done.
 * Returns the number of pages, 0 when there is no candidate. */
size_t sa_pages_scav_take(sa_pagealloc *pa, size_t maxpages, uint64_t idle_epoch, uintptr_t *addr)
{
    sa_heaparena *besta = NULL;
    size_t bestc = 0;
    uint64_t bestage = UINT64_MAX;
    for (size_t i = pa->narenas; i-- > 0;) {
        sa_heaparena *a = pa->arenas[i];
        if (a->nscavcand == 0)
            continue;
        for (size_t c = SA_CHUNKS_PER_ARENA; c-- > 0;) {
            if (a->scavcand[c] == 0 || a->lastfree[c] > idle_epoch)
                continue;
            if (a->lastfree[c] < bestage) {
                bestage = a->lastfree[c];
                besta = a;
                bestc = c;
            }
        }
    }
    if (!besta)
        return 0;
    uint64_t busy[SA_CHUNK_WORDS];
    for (unsigned w = 0; w < SA_CHUNK_WORDS; w++)
        busy[w] = besta->inuse[bestc * SA_CHUNK_WORDS + w] |
                  besta->released[bestc * SA_CHUNK_WORDS + w];
    unsigned start;
    size_t n = longest_zero_run(busy, &start);
    if (n == 0)
        return 0; /* counters and bitmaps disagree: cannot happen */
    if (n > maxpages) {
        /* Take the top of the run: allocation comes from the bottom. */
        start += (unsigned)(n - maxpages);
        n = maxpages;
    }
    size_t first = bestc * SA_CHUNK_PAGES + start;
    bits_set_range(besta->inuse, first, n);
    besta->scavcand[bestc] -= (uint16_t)n;
    besta->nscavcand -= (uint32_t)n;
    pa->pages_free_backed -= n;
    pa->pages_scavenging += n;
    arena_update_sum(besta, first, n);
    *addr = besta->base + (first << SA_PAGE_SHIFT);
    return n;
}

/* The run taken by sa_pages_scav_take was handed back to the kernel. */
void sa_pages_scav_done(sa_pagealloc *pa, uintptr_t addr, size_t npages, int result)
{
    sa_heaparena *a = arena_at(addr);
    size_t first = (addr - a->base) >> SA_PAGE_SHIFT;
    bits_clear_range(a->inuse, first, npages);
    pa->pages_scavenging -= npages;
    if (result == SA_RELEASE_FAILED) {
        /* still backed: a candidate again (a run stays inside its chunk) */
        size_t c = first / SA_CHUNK_PAGES;
        a->scavcand[c] += (uint16_t)npages;
        a->nscavcand += (uint32_t)npages;
        pa->pages_free_backed += npages;
    } else {
        bits_set_range(a->released, first, npages);
        bits_set_range(a->scavenged, first, npages);
        if (result == SA_RELEASED_ZEROED)
            bits_set_range(a->zeroed, first, npages);
        pa->pages_released += npages;
    }
    arena_update_sum(a, first, npages);
    sa_heaparena *ai = a;
    if (ai->index < pa->searchArena)
        pa->searchArena = ai->index;
}

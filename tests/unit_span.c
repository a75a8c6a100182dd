/* Span bitmaps: allocCache windows, tail masks, remote-free merging. Spans
 * here are built by hand over a private buffer; nothing touches the heap. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static sa_span *make_span(unsigned sc)
{
    sa_span *s = aligned_alloc(64, sizeof *s);
    memset(s, 0, sizeof *s);
    s->npages = sa_class_to_npages[sc];
    s->base = (uintptr_t)aligned_alloc(SA_PAGE_SIZE, s->npages * SA_PAGE_SIZE);
    sa_span_init_small(s, sc);
    return s;
}

/* One slot through the malloc fast path itself (sa_span_take, internal.h),
 * as its callers use it: only with a nonzero window. Returns the slot index
 * the address stands for, after checking the address is a slot boundary
 * inside the span and the slot is now marked allocated. */
static uint32_t take(sa_span *s)
{
    if (s->allocCache == 0)
        return UINT32_MAX;
    uintptr_t p = (uintptr_t)sa_span_take(s, s->allocCache);
    cr_assert(p >= s->base && p + s->elemsize <= s->base + (uintptr_t)s->npages * SA_PAGE_SIZE,
              "class of %u bytes: %#lx outside the span", (unsigned)s->elemsize, (unsigned long)p);
    cr_assert_eq((p - s->base) % s->elemsize, 0, "class of %u bytes: %#lx not a slot boundary",
                 (unsigned)s->elemsize, (unsigned long)p);
    uint32_t idx = (uint32_t)((p - s->base) / s->elemsize);
    cr_assert(s->allocBits[idx >> 6] & (1ull << (idx & 63)), "slot %u handed out but not marked", idx);
    return idx;
}

/* Walks the span like the mcache does: window by window. */
static uint32_t next_slot(sa_span *s)
{
    uint32_t idx = take(s);
    if (idx != UINT32_MAX)
        return idx;
    if (!sa_span_load_window(s, (s->freeindex + 63) >> 6))
        return UINT32_MAX;
    return take(s);
}

Test(span, hands_out_every_slot_once_in_order)
{
    for (unsigned sc = 1; sc < SA_NUM_SIZE_CLASSES; sc++) {
        sa_span *s = make_span(sc);
        cr_assert(sa_span_load_window(s, 0));
        for (uint32_t i = 0; i < s->nelems; i++)
            cr_assert_eq(next_slot(s), i, "class %u slot %u", sc, i);
        cr_assert_eq(next_slot(s), UINT32_MAX, "class %u: nothing past nelems", sc);
        cr_assert_eq(sa_span_count_alloc(s), s->nelems);
    }
}

Test(span, tail_slots_are_never_handed_out)
{
    unsigned sc = sa_size_to_class(48); /* 170 objects: last word has 42 */
    sa_span *s = make_span(sc);
    cr_assert_eq(s->nelems % 64 != 0, 1);
    sa_span_load_window(s, (s->nelems - 1) / 64);
    cr_assert_eq(__builtin_popcountll(s->allocCache), s->nelems % 64);
}

Test(span, rescan_finds_slots_freed_behind_freeindex)
{
    sa_span *s = make_span(sa_size_to_class(256));
    sa_span_load_window(s, 0);
    while (next_slot(s) != UINT32_MAX)
        ;
    /* owner frees 3 and 17 directly */
    s->allocBits[0] &= ~((1ull << 3) | (1ull << 17));
    cr_assert(sa_span_load_window(s, 0));
    cr_assert_eq(next_slot(s), 3);
    cr_assert_eq(next_slot(s), 17);
    cr_assert_eq(take(s), UINT32_MAX);
}

Test(span, merge_folds_remote_frees)
{
    sa_span *s = make_span(sa_size_to_class(16)); /* 512 objects, 8 words */
    sa_span_load_window(s, 0);
    while (next_slot(s) != UINT32_MAX)
        ;
    s->remoteFree[0] = 1ull << 5;
    s->remoteFree[7] = 1ull << 63;
    cr_assert_eq(sa_span_merge_remote(s, "free"), 0, "without the hint the words are skipped");
    s->hasRemote = 1;
    cr_assert_eq(sa_span_merge_remote(s, "free"), 2);
    cr_assert_eq(s->hasRemote, 0);
    cr_assert_eq(sa_span_count_alloc(s), s->nelems - 2);
    cr_assert_eq(s->remoteFree[0] | s->remoteFree[7], 0);
    cr_assert(sa_span_load_window(s, 0));
    cr_assert_eq(next_slot(s), 5);
    cr_assert_eq(next_slot(s), 511);
}

Test(span, remote_free_of_a_slot_the_owner_freed_is_a_double_free, .signal = SIGABRT)
{
    sa_span *s = make_span(sa_size_to_class(64));
    sa_span_load_window(s, 0);
    next_slot(s);
    s->allocBits[0] &= ~1ull;  /* owner freed slot 0 */
    s->remoteFree[0] = 1ull;   /* and another thread freed it too */
    s->hasRemote = 1;
    sa_span_merge_remote(s, "free");
}

Test(span, slow_one_allocates_first_free_slot)
{
    sa_span *s = make_span(sa_size_to_class(1024));
    void *a = sa_span_alloc_slow_one(s);
    void *b = sa_span_alloc_slow_one(s);
    cr_assert_eq((uintptr_t)a, s->base);
    cr_assert_eq((uintptr_t)b, s->base + s->elemsize);
    s->remoteFree[0] = 1; /* slot 0 freed remotely */
    s->hasRemote = 1;
    cr_assert_eq(sa_span_merge_remote(s, "free"), 1);
    cr_assert_eq(sa_span_alloc_slow_one(s), a);
    for (unsigned i = 2; i < s->nelems; i++)
        cr_assert_not_null(sa_span_alloc_slow_one(s));
    cr_assert_null(sa_span_alloc_slow_one(s));
}

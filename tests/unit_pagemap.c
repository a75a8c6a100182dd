/* Pointer -> span lookup through the arena index and per-arena page map. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "internal.h"

static int a_global;

Test(pagemap, small_blocks_map_to_their_span)
{
    for (size_t size = 1; size <= SA_MAX_SMALL_SIZE; size = size * 3 / 2 + 1) {
        char *p = sa_malloc(size);
        sa_span *s = sa_span_of((uintptr_t)p);
        cr_assert_not_null(s, "size %zu", size);
        cr_assert_neq(s->spanclass, 0);
        cr_assert_geq(s->elemsize, size);
        cr_assert((uintptr_t)p >= s->base && (uintptr_t)p < s->base + s->npages * SA_PAGE_SIZE);
        /* every byte of the block maps to the same span */
        cr_assert_eq(sa_span_of((uintptr_t)p + size - 1), s);
        sa_free(p);
    }
}

Test(pagemap, every_page_of_a_large_block_maps_to_it)
{
    size_t size = 5 * 1024 * 1024 + 123;
    char *p = sa_malloc(size);
    sa_span *s = sa_span_of((uintptr_t)p);
    cr_assert_not_null(s);
    cr_assert_eq(s->spanclass, 0);
    cr_assert_eq(s->base, (uintptr_t)p);
    for (size_t off = 0; off < size; off += SA_PAGE_SIZE)
        cr_assert_eq(sa_span_of((uintptr_t)p + off), s, "offset %zu", off);
    sa_free(p);
    cr_assert_null(sa_span_of((uintptr_t)p), "freed pages map to nothing");
    cr_assert_null(sa_span_of((uintptr_t)p + size / 2));
}

Test(pagemap, foreign_addresses_map_to_nothing)
{
    int local;
    void *m = malloc(10); /* the static library is the process malloc too */
    cr_assert_null(sa_span_of((uintptr_t)&local));
    cr_assert_null(sa_span_of((uintptr_t)&a_global));
    cr_assert_null(sa_span_of(0));
    cr_assert_null(sa_span_of(0x10));
    cr_assert_null(sa_span_of(~(uintptr_t)0));
    cr_assert_null(sa_span_of((uintptr_t)1 << 50));
    cr_assert_not_null(sa_span_of((uintptr_t)m), "the test binary's malloc is ours");
    free(m);
}

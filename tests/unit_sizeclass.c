/* Size-class table invariants, checked from the generated table itself. */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stddef.h>

#include "internal.h"

Test(sizeclass, every_size_maps_to_the_smallest_class_that_fits)
{
    for (size_t size = 0; size <= SA_MAX_SMALL_SIZE; size++) {
        unsigned c = sa_size_to_class(size);
        cr_assert(c >= 1 && c < SA_NUM_SIZE_CLASSES, "size %zu -> class %u", size, c);
        cr_assert_geq(sa_class_to_size[c], size, "size %zu does not fit class %u", size, c);
        if (c > 1)
            cr_assert_lt(sa_class_to_size[c - 1], size, "size %zu fits the smaller class %u",
                         size, c - 1);
    }
}

Test(sizeclass, classes_increase_and_end_at_max_small)
{
    for (unsigned c = 2; c < SA_NUM_SIZE_CLASSES; c++)
        cr_assert_gt(sa_class_to_size[c], sa_class_to_size[c - 1]);
    cr_assert_eq(sa_class_to_size[SA_NUM_SIZE_CLASSES - 1], SA_MAX_SMALL_SIZE);
}

Test(sizeclass, spans_hold_objects_and_waste_is_bounded)
{
    for (unsigned c = 1; c < SA_NUM_SIZE_CLASSES; c++) {
        size_t size = sa_class_to_size[c];
        size_t span = (size_t)sa_class_to_npages[c] * SA_PAGE_SIZE;
        size_t objs = sa_class_to_nelems[c];
        cr_assert_eq(objs, span / size, "class %u object count", c);
        cr_assert(objs >= 1 && objs <= SA_MAX_SPAN_OBJS, "class %u: %zu objects", c, objs);
        size_t tail = span - size * objs;
        cr_assert_leq(tail * 8, span, "class %u: tail waste %zu of %zu", c, tail, span);
        /* Rounding + tail waste for the smallest request of the class. Below
         * 128 B the 16-byte granularity rules; there the gap is one step. */
        size_t prev = sa_class_to_size[c - 1];
        if (size > 128) {
            size_t worst = (size - prev - 1) * objs + tail;
            cr_assert_leq(worst * 8, span, "class %u: worst-case waste %zu of %zu", c, worst, span);
        } else {
            cr_assert_eq(size - prev, 16, "class %u: step", c);
        }
    }
}

Test(sizeclass, divmul_gives_the_exact_index_for_every_offset)
{
    for (unsigned c = 1; c < SA_NUM_SIZE_CLASSES; c++) {
        size_t size = sa_class_to_size[c];
        size_t span = (size_t)sa_class_to_npages[c] * SA_PAGE_SIZE;
        uint64_t m = sa_class_to_divmul[c];
        for (size_t off = 0; off < span; off++)
            if (((off * m) >> 32) != off / size)
                cr_assert_fail("class %u offset %zu", c, off);
    }
}

Test(sizeclass, multiples_of_16_give_16_byte_aligned_objects)
{
    for (unsigned c = 1; c < SA_NUM_SIZE_CLASSES; c++) {
        size_t size = sa_class_to_size[c];
        cr_assert_eq(size % 16, 0, "class %u size %zu", c, size);
        /* every object of a span of this class */
        void *ptrs[SA_MAX_SPAN_OBJS + 1];
        size_t n = sa_class_to_nelems[c] + 1; /* crosses into a second span */
        for (size_t i = 0; i < n; i++) {
            ptrs[i] = sa_malloc(size);
            cr_assert_not_null(ptrs[i]);
            cr_assert_eq((uintptr_t)ptrs[i] % 16, 0, "class %u object %zu: %p", c, i, ptrs[i]);
        }
        for (size_t i = 0; i < n; i++)
            sa_free(ptrs[i]);
    }
}

Test(sizeclass, malloc_results_meet_max_align_t)
{
    for (size_t size = 0; size <= 70000; size += (size < 512 ? 1 : 97)) {
        void *p = sa_malloc(size);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % alignof(max_align_t), 0, "malloc(%zu) = %p", size, p);
        sa_free(p);
    }
}

Test(sizeclass, start_index_tells_object_starts_from_interior_offsets)
{
    for (unsigned c = 1; c < SA_NUM_SIZE_CLASSES; c++) {
        sa_span s = {.divmul = sa_class_to_divmul[c], .elemsize = sa_class_to_size[c]};
        size_t span = (size_t)sa_class_to_npages[c] * SA_PAGE_SIZE;
        for (size_t off = 0; off < span; off++) {
            int64_t i = sa_span_start_index(&s, off);
            if (off % s.elemsize == 0 ? i != (int64_t)(off / s.elemsize) : i != -1)
                cr_assert_fail("class %u offset %zu: %lld", c, off, (long long)i);
        }
    }
}

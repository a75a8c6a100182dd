/*
 * test_api.c — semantics of every sa_ entry point (links libspanalloc.a).
 *
 * One Test per documented behaviour of include/spanalloc.h: errno cases,
 * too-large requests for every entry point, alignment of every aligned call
 * for every power of two up to 1 MiB and at 2^28, zeroing, realloc contents
 * across size classes and into/out of large sizes, usable size, the C23
 * sized frees and the counters.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define LARGE_MIN (32 * KiB + 1) /* first size served by a dedicated span */

/* Sizes a compiler cannot see through. */
static size_t opaque(size_t n)
{
    volatile size_t v = n;
    return v;
}

/* Sizes covering every small class boundary neighbourhood and large ones. */
static size_t *interesting_sizes(size_t *count)
{
    static size_t sizes[4096];
    size_t n = 0;
    for (size_t s = 0; s <= 1024; s++)
        sizes[n++] = s;
    for (size_t s = 1040; s <= 32 * KiB + 64; s += 112)
        sizes[n++] = s;
    for (size_t p = 64; p <= 8 * MiB; p *= 2) {
        sizes[n++] = p - 1;
        sizes[n++] = p;
        sizes[n++] = p + 1;
        sizes[n++] = p + p / 3;
    }
    sizes[n++] = 32 * KiB;
    sizes[n++] = 32 * KiB + 1;
    *count = n;
    return sizes;
}

static const size_t too_large[] = {
    (size_t)PTRDIFF_MAX,
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX + 2,
    (size_t)PTRDIFF_MAX + 4096,
    SIZE_MAX / 2 + 12345,
    SIZE_MAX - 4096 * 2,
    SIZE_MAX - 4096,
    SIZE_MAX - 64,
    SIZE_MAX - 16,
    SIZE_MAX - 1,
    SIZE_MAX,
};
#define N_TOO_LARGE (sizeof too_large / sizeof too_large[0])

/* ---- version, basics ----------------------------------------------------- */

Test(api, version_string)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SPANALLOC_VERSION_MAJOR,
             SPANALLOC_VERSION_MINOR, SPANALLOC_VERSION_PATCH);
    cr_assert_not_null(sa_version());
    cr_assert_str_eq(sa_version(), want);
}

Test(api, malloc_every_size_aligned_usable_writable)
{
    size_t n, *sizes = interesting_sizes(&n);
    for (size_t i = 0; i < n; i++) {
        size_t sz = sizes[i];
        unsigned char *p = sa_malloc(opaque(sz));
        cr_assert_not_null(p, "sa_malloc(%zu) returned NULL", sz);
        cr_assert(sa_is_aligned(p, alignof(max_align_t)), "sa_malloc(%zu) = %p not 16-aligned", sz, p);
        size_t us = sa_malloc_usable_size(p);
        cr_assert_geq(us, sz, "usable %zu < request %zu", us, sz);
        sa_fill(p, us);
        cr_assert_eq(sa_check(p, us), (size_t)-1, "sa_malloc(%zu): block not writable as a whole", sz);
        cr_assert_eq(sa_malloc_usable_size(p), us);
        sa_free(p);
    }
}

Test(api, malloc_zero_is_unique_and_freeable)
{
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        errno = 0;
        p[i] = sa_malloc(opaque(0));
        cr_assert_not_null(p[i], "sa_malloc(0) returned NULL");
        cr_assert(sa_is_aligned(p[i], 16));
        for (int j = 0; j < i; j++)
            cr_assert_neq(p[i], p[j], "sa_malloc(0) returned %p twice", p[i]);
    }
    for (int i = 0; i < N; i++)
        sa_free(p[i]);
}

/* Many live blocks of one size never overlap and keep their contents. */
Test(api, live_blocks_do_not_overlap)
{
    static const size_t sizes[] = { 8, 16, 24, 48, 100, 256, 1000, 4000, 9000, 32 * KiB, LARGE_MIN, 100 * KiB, MiB };
    enum { N = 64 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *p[N];
        size_t us[N];
        for (int i = 0; i < N; i++) {
            p[i] = sa_malloc(sizes[s]);
            cr_assert_not_null(p[i]);
            us[i] = sa_malloc_usable_size(p[i]);
            sa_fill(p[i], us[i]);
        }
        for (int i = 0; i < N; i++) {
            cr_assert_eq(sa_check(p[i], us[i]), (size_t)-1,
                         "size %zu: block %d (%p) was overwritten by another block", sizes[s], i, p[i]);
            for (int j = 0; j < N; j++) {
                if (i == j)
                    continue;
                uintptr_t a = (uintptr_t)p[i], b = (uintptr_t)p[j];
                cr_assert(a + us[i] <= b || b + us[j] <= a,
                          "size %zu: blocks %p+%zu and %p+%zu overlap", sizes[s], p[i], us[i], p[j], us[j]);
            }
        }
        for (int i = 0; i < N; i++)
            sa_free(p[i]);
    }
}

Test(api, free_null_is_noop)
{
    sa_counters before, after;
    sa_get_counters(&before);
    errno = 12345;
    sa_free(NULL);
    sa_free_sized(NULL, 0);
    sa_free_sized(NULL, 100);
    sa_free_aligned_sized(NULL, 64, 100);
    cr_assert_eq(sa_malloc_usable_size(NULL), 0);
    cr_assert_eq(errno, 12345, "a free of NULL changed errno");
    sa_get_counters(&after);
    cr_assert_eq(after.frees, before.frees, "a free of NULL was counted as a free");
}

/* ---- too large, overflow: NULL + ENOMEM for every entry point ------------- */

Test(api, too_large_malloc)
{
    for (size_t i = 0; i < N_TOO_LARGE; i++) {
        errno = 0;
        void *p = sa_malloc(opaque(too_large[i]));
        cr_assert_null(p, "sa_malloc(%#zx) succeeded", too_large[i]);
        cr_assert_eq(errno, ENOMEM, "sa_malloc(%#zx): errno %d, want ENOMEM", too_large[i], errno);
    }
}

Test(api, too_large_calloc_and_overflow)
{
    for (size_t i = 0; i < N_TOO_LARGE; i++) {
        errno = 0;
        cr_assert_null(sa_calloc(1, opaque(too_large[i])), "sa_calloc(1, %#zx)", too_large[i]);
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(sa_calloc(opaque(too_large[i]), 1), "sa_calloc(%#zx, 1)", too_large[i]);
        cr_assert_eq(errno, ENOMEM);
    }
    static const size_t ov[][2] = {
        { SIZE_MAX, 2 }, { 2, SIZE_MAX }, { (size_t)1 << 32, (size_t)1 << 32 },
        { SIZE_MAX / 3 + 1, 3 }, { 65537, SIZE_MAX / 65536 },
        /* no wrap, but above PTRDIFF_MAX */
        { (size_t)PTRDIFF_MAX / 2 + 1, 2 }, { 4, (size_t)PTRDIFF_MAX / 4 + 1 },
    };
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
        errno = 0;
        void *p = sa_calloc(opaque(ov[i][0]), opaque(ov[i][1]));
        cr_assert_null(p, "sa_calloc(%#zx, %#zx) succeeded", ov[i][0], ov[i][1]);
        cr_assert_eq(errno, ENOMEM, "sa_calloc(%#zx, %#zx): errno %d", ov[i][0], ov[i][1], errno);
    }
}

Test(api, too_large_realloc_keeps_block)
{
    for (size_t i = 0; i < N_TOO_LARGE; i++) {
        errno = 0;
        cr_assert_null(sa_realloc(NULL, opaque(too_large[i])), "sa_realloc(NULL, %#zx)", too_large[i]);
        cr_assert_eq(errno, ENOMEM);
    }
    static const size_t start[] = { 24, 5000, 100 * KiB };
    for (size_t s = 0; s < 3; s++) {
        unsigned char *p = sa_malloc(start[s]);
        cr_assert_not_null(p);
        sa_fill_seed(p, 0, start[s], 77);
        for (size_t i = 0; i < N_TOO_LARGE; i++) {
            errno = 0;
            void *q = sa_realloc(p, opaque(too_large[i]));
            cr_assert_null(q, "sa_realloc(p, %#zx) succeeded", too_large[i]);
            cr_assert_eq(errno, ENOMEM);
            cr_assert_eq(sa_check_seed(p, start[s], 77), (size_t)-1, "failed realloc changed the block");
            cr_assert_geq(sa_malloc_usable_size(p), start[s]);
        }
        sa_free(p);
    }
}

Test(api, too_large_reallocarray_and_overflow)
{
    unsigned char *p = sa_malloc(64);
    cr_assert_not_null(p);
    sa_fill_seed(p, 0, 64, 5);
    static const size_t ov[][2] = {
        { SIZE_MAX, 2 }, { 2, SIZE_MAX }, { (size_t)1 << 32, (size_t)1 << 32 },
        { (size_t)PTRDIFF_MAX / 2 + 1, 2 }, { 1, SIZE_MAX }, { 1, (size_t)PTRDIFF_MAX + 1 },
    };
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
        errno = 0;
        cr_assert_null(sa_reallocarray(NULL, opaque(ov[i][0]), opaque(ov[i][1])),
                       "sa_reallocarray(NULL, %#zx, %#zx)", ov[i][0], ov[i][1]);
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(sa_reallocarray(p, opaque(ov[i][0]), opaque(ov[i][1])),
                       "sa_reallocarray(p, %#zx, %#zx)", ov[i][0], ov[i][1]);
        cr_assert_eq(errno, ENOMEM);
        cr_assert_eq(sa_check_seed(p, 64, 5), (size_t)-1);
    }
    /* A fitting product works and keeps contents. */
    unsigned char *q = sa_reallocarray(p, 100, 10);
    cr_assert_not_null(q);
    cr_assert_geq(sa_malloc_usable_size(q), 1000);
    cr_assert_eq(sa_check_seed(q, 64, 5), (size_t)-1);
    sa_free(q);
    /* Zero elements: behaves as realloc(NULL, 0) - a unique pointer. */
    errno = 0;
    void *z = sa_reallocarray(NULL, 0, 16);
    cr_assert_not_null(z);
    cr_assert_eq(errno, 0, "reallocarray(NULL, 0, 16) set errno %d", errno);
    sa_free(z);
}

Test(api, too_large_aligned_calls)
{
    static const size_t aligns[] = { 16, 64, 4096, 65536, (size_t)1 << 28 };
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        for (size_t i = 0; i < N_TOO_LARGE; i++) {
            size_t al = aligns[a], sz = opaque(too_large[i]);
            void *sentinel = (void *)(uintptr_t)0x5a5a5a50;
            void *m = sentinel;
            int rc = sa_posix_memalign(&m, al, sz);
            cr_assert_eq(rc, ENOMEM, "sa_posix_memalign(%zu, %#zx) = %d, want ENOMEM", al, sz, rc);
            cr_assert_eq(m, sentinel, "sa_posix_memalign changed *memptr on failure");
            errno = 0;
            cr_assert_null(sa_aligned_alloc(al, sz), "sa_aligned_alloc(%zu, %#zx)", al, sz);
            cr_assert_eq(errno, ENOMEM, "sa_aligned_alloc(%zu, %#zx): errno %d", al, sz, errno);
            errno = 0;
            cr_assert_null(sa_memalign(al, sz), "sa_memalign(%zu, %#zx)", al, sz);
            cr_assert_eq(errno, ENOMEM, "sa_memalign(%zu, %#zx): errno %d", al, sz, errno);
        }
    }
    for (size_t i = 0; i < N_TOO_LARGE; i++) {
        errno = 0;
        cr_assert_null(sa_valloc(opaque(too_large[i])), "sa_valloc(%#zx)", too_large[i]);
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(sa_pvalloc(opaque(too_large[i])), "sa_pvalloc(%#zx)", too_large[i]);
        cr_assert_eq(errno, ENOMEM);
    }
}

/* size fits in PTRDIFF_MAX but size + alignment padding does not. */
Test(api, size_plus_alignment_overflow)
{
    size_t al = (size_t)1 << 28;
    size_t sz = opaque((size_t)PTRDIFF_MAX - 100);
    void *m = NULL;
    cr_assert_eq(sa_posix_memalign(&m, al, sz), ENOMEM);
    cr_assert_null(m);
    errno = 0;
    cr_assert_null(sa_aligned_alloc(al, sz));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(sa_memalign(al, sz));
    cr_assert_eq(errno, ENOMEM);
    /* pvalloc rounds the size up to a page: SIZE_MAX-100 wraps. */
    errno = 0;
    cr_assert_null(sa_pvalloc(opaque(SIZE_MAX - 100)));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(sa_valloc(opaque((size_t)PTRDIFF_MAX - 10)));
    cr_assert_eq(errno, ENOMEM);
}

/* After all those failures the allocator still works. */
Test(api, works_after_failures)
{
    for (size_t i = 0; i < N_TOO_LARGE; i++)
        cr_assert_null(sa_malloc(opaque(too_large[i])));
    void *p = sa_malloc(100), *q = sa_malloc(MiB);
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    sa_fill(p, 100);
    sa_fill(q, MiB);
    cr_assert_eq(sa_check(p, 100), (size_t)-1);
    cr_assert_eq(sa_check(q, MiB), (size_t)-1);
    sa_free(p);
    sa_free(q);
}

/* ---- alignment ---------------------------------------------------------------- */

static void check_aligned_block(const char *what, void *p, size_t al, size_t sz)
{
    cr_assert_not_null(p, "%s(align %zu, size %zu) returned NULL", what, al, sz);
    size_t want = al < 16 ? 16 : al;
    cr_assert(sa_is_aligned(p, want), "%s(align %zu, size %zu) = %p misaligned", what, al, sz, p);
    size_t us = sa_malloc_usable_size(p);
    cr_assert_geq(us, sz, "%s(align %zu, size %zu): usable %zu", what, al, sz, us);
    sa_fill(p, us);
}

/* Every power of two up to 1 MiB, several sizes each, for every aligned call;
 * blocks of one alignment stay live together and are checked for overlap. */
Test(api, alignment_every_power_of_two_up_to_1MiB)
{
    for (size_t al = 1; al <= MiB; al *= 2) {
        size_t sizes[] = { 1, al > 1 ? al - 1 : 1, al, al + 1, 3 * al + 5, 100, 40 * KiB };
        enum { NS = sizeof sizes / sizeof sizes[0] };
        void *blocks[4 * NS];
        size_t bsz[4 * NS];
        int nb = 0;
        for (int s = 0; s < NS; s++) {
            size_t sz = sizes[s];
            if (al >= sizeof(void *)) {
                void *m = NULL;
                int rc = sa_posix_memalign(&m, al, sz);
                cr_assert_eq(rc, 0, "sa_posix_memalign(%zu, %zu) = %d", al, sz, rc);
                check_aligned_block("sa_posix_memalign", m, al, sz);
                blocks[nb] = m;
                bsz[nb++] = sz;
            }
            void *a = sa_aligned_alloc(al, sz);
            check_aligned_block("sa_aligned_alloc", a, al, sz);
            blocks[nb] = a;
            bsz[nb++] = sz;
            void *b = sa_memalign(al, sz);
            check_aligned_block("sa_memalign", b, al, sz);
            blocks[nb] = b;
            bsz[nb++] = sz;
            /* freed at once through the C23 call */
            void *c = sa_aligned_alloc(al, sz);
            check_aligned_block("sa_aligned_alloc", c, al, sz);
            sa_free_aligned_sized(c, al, sz);
        }
        for (int i = 0; i < nb; i++) {
            size_t us = sa_malloc_usable_size(blocks[i]);
            cr_assert_eq(sa_check(blocks[i], us), (size_t)-1, "align %zu: block %p overwritten", al, blocks[i]);
        }
        for (int i = 0; i < nb; i++)
            if (i % 2)
                sa_free(blocks[i]);
            else
                sa_free_sized(blocks[i], bsz[i]);
    }
}

Test(api, alignment_2_pow_28_and_29)
{
    for (int lg = 28; lg <= 29; lg++) {
        size_t al = (size_t)1 << lg;
        void *m = NULL;
        cr_assert_eq(sa_posix_memalign(&m, al, 100), 0);
        check_aligned_block("sa_posix_memalign", m, al, 100);
        void *a = sa_aligned_alloc(al, MiB);
        check_aligned_block("sa_aligned_alloc", a, al, MiB);
        void *b = sa_memalign(al, 40 * KiB);
        check_aligned_block("sa_memalign", b, al, 40 * KiB);
        cr_assert_eq(sa_check(m, sa_malloc_usable_size(m)), (size_t)-1);
        sa_free(m);
        sa_free_aligned_sized(a, al, MiB);
        sa_free(b);
    }
}

Test(api, posix_memalign_einval_leaves_memptr)
{
    static const size_t bad[] = { 0, 1, 2, 4, 3, 12, 24, 48, 96, 1000, 4097,
                                  (1 << 20) + 8, SIZE_MAX, SIZE_MAX / 2 + 2 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sizeof(void *) == 4 && bad[i] == 4)
            continue;
        void *sentinel = (void *)(uintptr_t)0xdead0;
        void *m = sentinel;
        int rc = sa_posix_memalign(&m, opaque(bad[i]), 64);
        cr_assert_eq(rc, EINVAL, "sa_posix_memalign(align %#zx) = %d, want EINVAL", bad[i], rc);
        cr_assert_eq(m, sentinel, "*memptr changed on EINVAL");
        /* EINVAL wins over a too-large size as glibc does: alignment checked first */
        m = sentinel;
        rc = sa_posix_memalign(&m, opaque(bad[i]), SIZE_MAX);
        cr_assert_eq(rc, EINVAL, "bad align + huge size = %d, want EINVAL", rc);
        cr_assert_eq(m, sentinel);
    }
}

Test(api, aligned_alloc_einval)
{
    static const size_t bad[] = { 0, 3, 6, 12, 24, 48, 1000, (1 << 20) + 1, SIZE_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = sa_aligned_alloc(opaque(bad[i]), 64);
        cr_assert_null(p, "sa_aligned_alloc(%#zx, 64) succeeded", bad[i]);
        cr_assert_eq(errno, EINVAL, "sa_aligned_alloc(%#zx, 64): errno %d, want EINVAL", bad[i], errno);
    }
    /* small powers of two (below sizeof(void *)) are valid for C11 */
    for (size_t al = 1; al <= 8; al *= 2) {
        void *p = sa_aligned_alloc(al, 10);
        check_aligned_block("sa_aligned_alloc", p, al, 10);
        sa_free(p);
    }
}

/* glibc's memalign rounds a non power of two alignment up. */
Test(api, memalign_rounds_alignment_up)
{
    static const size_t al[][2] = { { 24, 32 }, { 48, 64 }, { 100, 128 }, { 3000, 4096 }, { 65537, 131072 } };
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++) {
        void *p = sa_memalign(opaque(al[i][0]), 200);
        cr_assert_not_null(p, "sa_memalign(%zu, 200)", al[i][0]);
        cr_assert(sa_is_aligned(p, al[i][1]), "sa_memalign(%zu) = %p not %zu-aligned", al[i][0], p, al[i][1]);
        sa_free(p);
    }
    void *p = sa_memalign(opaque(0), 10);
    cr_assert_not_null(p);
    cr_assert(sa_is_aligned(p, 16));
    sa_free(p);
}

Test(api, valloc_pvalloc)
{
    static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 40 * KiB, 100 * KiB, 3 * MiB + 7 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t sz = sizes[i];
        void *v = sa_valloc(sz);
        cr_assert_not_null(v, "sa_valloc(%zu)", sz);
        cr_assert(sa_is_aligned(v, 4096), "sa_valloc(%zu) = %p", sz, v);
        cr_assert_geq(sa_malloc_usable_size(v), sz);
        sa_fill(v, sa_malloc_usable_size(v));
        void *pv = sa_pvalloc(sz);
        cr_assert_not_null(pv, "sa_pvalloc(%zu)", sz);
        cr_assert(sa_is_aligned(pv, 4096), "sa_pvalloc(%zu) = %p", sz, pv);
        size_t rounded = (sz + 4095) & ~(size_t)4095;
        cr_assert_geq(sa_malloc_usable_size(pv), rounded, "sa_pvalloc(%zu): usable %zu < %zu",
                      sz, sa_malloc_usable_size(pv), rounded);
        sa_fill(pv, sa_malloc_usable_size(pv));
        cr_assert_eq(sa_check(v, sa_malloc_usable_size(v)), (size_t)-1);
        sa_free(v);
        sa_free(pv);
    }
}

/* ---- calloc zeroing --------------------------------------------------------- */

static void dirty_then_calloc(size_t sz, int n)
{
    void *p[64];
    for (int i = 0; i < n; i++) {
        p[i] = sa_malloc(sz);
        cr_assert_not_null(p[i]);
        memset(p[i], 0xA5, sa_malloc_usable_size(p[i]));
    }
    for (int i = 0; i < n; i++)
        sa_free(p[i]);
    for (int i = 0; i < n; i++) {
        unsigned char *c = sa_calloc(1, sz);
        cr_assert_not_null(c, "sa_calloc(1, %zu)", sz);
        size_t k = sa_first_nonzero(c, sz);
        cr_assert_eq(k, (size_t)-1, "sa_calloc(1, %zu) byte %zu = %#x after dirty free", sz, k, c[k]);
        p[i] = c;
    }
    for (int i = 0; i < n; i++)
        sa_free(p[i]);
}

Test(api, calloc_zeroes_reused_blocks)
{
    for (size_t sz = 1; sz <= 2048; sz += (sz < 256 ? 1 : 37))
        dirty_then_calloc(sz, 16);
    for (size_t sz = 2048; sz <= 32 * KiB; sz += 1531)
        dirty_then_calloc(sz, 8);
    static const size_t large[] = { LARGE_MIN, 64 * KiB, 200 * KiB + 3, MiB, 5 * MiB };
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        dirty_then_calloc(large[i], 4);
}

Test(api, calloc_shapes_and_zero)
{
    static const size_t shapes[][2] = { { 0, 0 }, { 0, 8 }, { 8, 0 }, { 1, 1 }, { 3, 5 }, { 1000, 33 },
                                        { 33, 1000 }, { 4096, 9 }, { 1, 40000 }, { 100, 100000 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = shapes[i][0], s = shapes[i][1];
        unsigned char *p = sa_calloc(n, s);
        cr_assert_not_null(p, "sa_calloc(%zu, %zu)", n, s);
        cr_assert(sa_is_aligned(p, 16));
        cr_assert_geq(sa_malloc_usable_size(p), n * s);
        size_t k = sa_first_nonzero(p, n * s);
        cr_assert_eq(k, (size_t)-1, "sa_calloc(%zu, %zu) byte %zu nonzero", n, s, k);
        sa_free(p);
    }
}

/* ---- realloc ------------------------------------------------------------------ */

/* Grows from 1 byte to 6 MiB and back, through every kind of class change;
 * the common prefix survives each step. */
Test(api, realloc_keeps_contents_growing_and_shrinking)
{
    const uint64_t seed = 0x1234;
    size_t cur = 1;
    unsigned char *p = sa_malloc(cur);
    cr_assert_not_null(p);
    sa_fill_seed(p, 0, cur, seed);
    size_t steps[256];
    int ns = 0;
    for (size_t s = 2; s <= 6 * MiB; s = s * 5 / 4 + 3)
        steps[ns++] = s;
    for (int i = ns - 2; i >= 0; i--)
        steps[ns++] = steps[i];
    steps[ns++] = 1;
    for (int i = 0; i < ns; i++) {
        size_t next = steps[i];
        unsigned char *q = sa_realloc(p, next);
        cr_assert_not_null(q, "sa_realloc(%zu -> %zu)", cur, next);
        cr_assert(sa_is_aligned(q, 16));
        cr_assert_geq(sa_malloc_usable_size(q), next);
        size_t keep = cur < next ? cur : next;
        size_t bad = sa_check_seed(q, keep, seed);
        cr_assert_eq(bad, (size_t)-1, "sa_realloc(%zu -> %zu) lost byte %zu", cur, next, bad);
        sa_fill_seed(q, keep, next, seed);
        p = q;
        cur = next;
    }
    sa_free(p);
}

Test(api, realloc_null_and_zero)
{
    unsigned char *p = sa_realloc(NULL, 100);
    cr_assert_not_null(p);
    cr_assert_geq(sa_malloc_usable_size(p), 100);
    sa_counters before, after;
    sa_get_counters(&before);
    errno = 0;
    cr_assert_null(sa_realloc(p, 0), "sa_realloc(p, 0) must free and return NULL");
    sa_get_counters(&after);
    cr_assert_eq(after.frees - before.frees, 1, "sa_realloc(p, 0) did not count one free");
    /* realloc(NULL, 0) behaves as malloc(0): a unique block of its own. */
    sa_get_counters(&before);
    void *z = sa_realloc(NULL, 0), *z2 = sa_malloc(0);
    sa_get_counters(&after);
    cr_assert_not_null(z);
    cr_assert_neq(z, z2, "realloc(NULL, 0) and malloc(0) returned the same block");
    cr_assert_eq(after.mallocs - before.mallocs, 2, "realloc(NULL, 0) was not counted as a malloc");
    sa_free(z);
    sa_free(z2);
    /* large too */
    p = sa_malloc(MiB);
    cr_assert_not_null(p);
    sa_get_counters(&before);
    cr_assert_null(sa_realloc(p, 0));
    sa_get_counters(&after);
    cr_assert_eq(after.frees - before.frees, 1, "sa_realloc(large, 0) did not count one free");
}

/* Resizing within the usable size stays in place. */
Test(api, realloc_within_usable_is_in_place)
{
    if (strcmp(sa_build_option("debug"), "on") == 0)
        cr_skip_test("debug builds always move a reallocated block");
    static const size_t sizes[] = { 1, 17, 100, 1000, 5000, 30000, 50000, MiB + 5 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = sa_malloc(sizes[i]);
        cr_assert_not_null(p);
        size_t us = sa_malloc_usable_size(p);
        sa_fill_seed(p, 0, us, 9);
        unsigned char *q = sa_realloc(p, us);
        cr_assert_eq(q, p, "sa_realloc(p[%zu], usable %zu) moved the block", sizes[i], us);
        cr_assert_eq(sa_check_seed(q, us, 9), (size_t)-1);
        cr_assert_eq(sa_malloc_usable_size(q), us);
        sa_free(q);
    }
}

/* ---- usable size ---------------------------------------------------------------- */

Test(api, usable_size_stable_for_block_life)
{
    enum { N = 300 };
    void *p[N];
    size_t us[N];
    sa_rng r = { 42 };
    for (int i = 0; i < N; i++) {
        size_t sz = (i % 10 == 0) ? 32 * KiB + sa_rng_below(&r, 300 * KiB) : sa_rng_below(&r, 3000);
        p[i] = sa_malloc(sz);
        cr_assert_not_null(p[i]);
        us[i] = sa_malloc_usable_size(p[i]);
        cr_assert_geq(us[i], sz);
    }
    /* churn other blocks, including realloc and frees of neighbours */
    for (int k = 0; k < 2000; k++) {
        void *t = sa_malloc(sa_rng_below(&r, 5000));
        t = sa_realloc(t, sa_rng_below(&r, 70000) + 1);
        sa_free(t);
        if (k % 7 == 0) {
            int j = (int)sa_rng_below(&r, N);
            if (j % 2) {
                sa_free(p[j]);
                p[j] = NULL;
            }
        }
    }
    for (int i = 0; i < N; i++) {
        if (!p[i])
            continue;
        cr_assert_eq(sa_malloc_usable_size(p[i]), us[i], "usable size of %p changed", p[i]);
        sa_free(p[i]);
    }
}

/* ---- C23 sized frees ------------------------------------------------------------ */

Test(api, free_sized_every_kind)
{
    size_t n, *sizes = interesting_sizes(&n);
    sa_counters before, after;
    sa_get_counters(&before);
    size_t frees = 0;
    for (size_t i = 0; i < n; i++) {
        void *p = sa_malloc(sizes[i]);
        cr_assert_not_null(p);
        sa_free_sized(p, sizes[i]);
        void *c = sa_calloc(1, sizes[i]);
        cr_assert_not_null(c);
        sa_free_sized(c, sizes[i]);
        frees += 2;
    }
    for (size_t al = 1; al <= 65536; al *= 4) {
        void *a = sa_aligned_alloc(al, 3 * al);
        cr_assert_not_null(a);
        sa_free_aligned_sized(a, al, 3 * al);
        frees++;
    }
    /* each sized free freed its block (wrong sizes: test_badinput.c) */
    sa_get_counters(&after);
    cr_assert_eq(after.frees - before.frees, frees, "%zu sized frees counted as %zu frees", frees,
                 (size_t)(after.frees - before.frees));
}

/* ---- counters --------------------------------------------------------------------- */

Test(api, counters_track_calls)
{
    enum { N = 50 };
    void *p[N];
    sa_counters a, b, c;
    sa_get_counters(&a);
    for (int i = 0; i < N; i++)
        p[i] = sa_malloc(i % 5 == 0 ? 64 * KiB : 32);
    sa_get_counters(&b);
    cr_assert_eq(b.mallocs - a.mallocs, N, "mallocs grew by %zu, want %d", b.mallocs - a.mallocs, N);
    cr_assert_eq(b.large_allocs - a.large_allocs, N / 5, "large_allocs grew by %zu", b.large_allocs - a.large_allocs);
    cr_assert_geq(b.heap_sys, b.heap_inuse);
    cr_assert_geq(b.heap_inuse, (N / 5) * 64 * KiB, "heap_inuse %zu below the live large blocks", b.heap_inuse);
    for (int i = 0; i < N; i++)
        sa_free(p[i]);
    sa_get_counters(&c);
    cr_assert_eq(c.frees - b.frees, N, "frees grew by %zu, want %d", c.frees - b.frees, N);
    cr_assert_leq(c.heap_inuse, b.heap_inuse);
}

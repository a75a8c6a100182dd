/*
 * vg_canary.c — a Criterion suite with a deliberate use-after-free (glibc
 * malloc, so memcheck sees it without spanalloc's help). tools/test.sh runs
 * it under the exact memcheck command used for the real suites and requires
 * that run to FAIL: proof that memcheck errors inside Criterion's test
 * workers make the run fail. Not registered with ctest (natively it passes).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

Test(canary, use_after_free_inside_a_test_body)
{
    char *volatile p = malloc(32);
    cr_assert_not_null(p);
    p[0] = 1;
    free(p);
    volatile char c = p[5]; /* memcheck: Invalid read of size 1 */
    (void)c;
    cr_assert(1);
}

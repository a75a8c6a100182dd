/*
 * uaf.c — programs using the sa_ API with a deliberate memory error, run by
 * ctest under valgrind (progs/expect-memcheck.sh). With SPANALLOC_VALGRIND
 * the library tells memcheck about its blocks, so memcheck must report:
 *   uaf   — a read after sa_free       ("Invalid read", block "free'd")
 *   waf   — a write after sa_free      ("Invalid write")
 *   leak  — a 96-byte block never freed ("definitely lost: 96 bytes in 1 blocks")
 *   clean — the same calls without the error: no error at all (control)
 */
#include <stdio.h>
#include <string.h>

#include "spanalloc.h"

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    /* some traffic first, so the block comes from a span in steady use */
    void *warm[16];
    for (int i = 0; i < 16; i++)
        warm[i] = sa_malloc(96);
    unsigned char *volatile p = sa_malloc(96);
    if (!p)
        return 2;
    memset(p, 0x11, 96);
    void *big = sa_malloc(100000);
    memset(big, 0x22, 100000);

    if (strcmp(mode, "uaf") == 0) {
        sa_free(p);
        volatile unsigned char c = p[48]; /* use after free (mid-block: no neighbour is near) */
        (void)c;
    } else if (strcmp(mode, "waf") == 0) {
        sa_free(p);
        p[3] = 7; /* write after free */
    } else if (strcmp(mode, "leak") == 0) {
        p = NULL; /* the only pointer to the 96-byte block is gone */
    } else if (strcmp(mode, "clean") == 0) {
        volatile unsigned char c = p[10];
        (void)c;
        sa_free(p);
    } else {
        fprintf(stderr, "usage: %s uaf|waf|leak|clean\n", argv[0]);
        return 2;
    }
    sa_free(big);
    for (int i = 0; i < 16; i++)
        sa_free(warm[i]);
    return 0;
}

/*
 * gctrace_prog.c — allocates garbage through a few automatic cycles and one
 * forced one; run by ctest with SPANALLOC=gctrace=1, which checks the lines
 * it prints on stderr against Go's gctrace format.
 */
#include <stdio.h>

#include "spanalloc.h"

int main(void)
{
    for (int i = 0; i < 200000; i++)
        sa_gc_alloc(100, 0);
    sa_gc_collect();
    sa_memstats m;
    sa_read_memstats(&m);
    printf("num_gc=%u\n", m.num_gc);
    return m.num_gc >= 2 ? 0 : 1;
}

/*
 * check.c — sa_heap_check: a walk over every span, mcentral and mcache that
 * checks the invariants the tiers' design comments state.
 *
 * It takes every allocator lock (sa_lock_all, the fork order), so the walk
 * sees a consistent heap as long as no other thread is inside a fast path
 * (those touch their own mcache without locks): call it when the program's
 * threads are quiescent, as the stress tests do between rounds. The
 * scavenger thread may run meanwhile: a span it emptied and is about to free
 * to the mheap is in state TRANSIT, which the page-map walk accepts. Each tier
 * walks what it owns; spans are stamped with the check's epoch, so a span
 * reachable from two places (two lists, a list and a cache) is caught, and
 * the page map walk then finds any small span reachable from nowhere.
 */
#include <string.h>

#include "internal.h"

static uint32_t check_epoch;

void sa_check_fail(const char *what, const sa_span *s)
{
    char buf[256];
    size_t n;
    if (s)
        n = sa_format(buf, sizeof buf - 1, "spanalloc: heap check: %s (span %p, base %p)\n",
                      what, (const void *)s, (void *)s->base);
    else
        n = sa_format(buf, sizeof buf - 1, "spanalloc: heap check: %s\n", what);
    sa_os_write_stderr(buf, n);
    sa_os_abort();
}

void sa_check_visit(const sa_span *s, uint32_t epoch, const char *where)
{
    (void)where;
    if (s->checkmark == epoch)
        sa_check_fail("span reachable from two places", s);
    ((sa_span *)s)->checkmark = epoch;
}

/* Bitmap invariants of a small span: no bit past nelems, no slot both
 * allocated-and-free in a way the protocol forbids (a remote free of a slot
 * whose allocBits bit is clear is a double free the owner has not folded
 * yet: reported as such). */
void sa_check_span_bits(const sa_span *s)
{
    unsigned nwords = sa_span_nwords(s);
    if (s->nelems == 0 || s->nelems > SA_MAX_SPAN_OBJS)
        sa_check_fail("span object count out of range", s);
    for (unsigned w = 0; w < SA_BITMAP_WORDS; w++) {
        uint64_t valid = w < nwords - 1 ? ~(uint64_t)0
                         : w == nwords - 1 ? (s->nelems % 64 ? ((uint64_t)1 << (s->nelems % 64)) - 1
                                                             : ~(uint64_t)0)
                                           : 0;
        uint64_t a = sa_load_relaxed(&s->allocBits[w]), r = sa_load_relaxed(&s->remoteFree[w]);
        if ((a | r) & ~valid)
            sa_check_fail("bitmap bit set past the span's last object", s);
        if (r & ~a)
            sa_check_fail("remote free of a slot that is not allocated (double free)", s);
    }
}

__attribute__((visibility("default"))) int sa_heap_check(void)
{
    sa_ensure_init();
    static uint64_t cached[SA_NUM_SPAN_CLASSES];
    sa_lock_all();
    uint32_t epoch = ++check_epoch;
    memset(cached, 0, sizeof cached);
    sa_mcache_check(epoch, cached);
    sa_mcentral_check(epoch, cached);
#if defined(SA_GC) && SA_GC
    sa_gc_heap_check(epoch);
#endif
    sa_mheap_check(epoch);
    sa_unlock_all();
    return 0;
}

/*
 * sweep.c — sweeping one small managed span.
 *
 * Go's trick (mgcsweep.go, design 12800): there are no free lists; the mark
 * bits of the cycle that just ended are the span's allocation bits from now
 * on. Here allocBits is an array inside the span struct (malloc's fast path
 * reads it without an indirection), so "swapping" is a copy of at most 8
 * words followed by clearing the mark words, which is the same in effect:
 * an object survives iff it was marked; every unmarked allocated object is
 * freed at once, whatever its count.
 *
 * Who calls: an allocating thread that pops an unswept span on refill (lazy
 * sweep, heap.c), and the collector thread's background sweep
 * (sa_gc_sweep_one). Both hold the gc heap lock, which is what makes a
 * span's sweep happen exactly once: the span has been popped from its
 * unswept list under that lock.
 *
 * Invariant on entry: no marking is in progress (sweeping finishes before a
 * cycle stops the world), so mark bits are stable. A mark bit without its
 * allocation bit ("zombie") cannot arise -- markers check the allocation bit
 * first -- and is masked off regardless.
 */
#include "../track.h"
#include "gc_internal.h"

unsigned sa_gc_sweep_span(sa_gcspan *g, unsigned *freedp)
{
    sa_span *s = g->span;
    unsigned nwords = sa_span_nwords(s), live = 0, freed = 0;
    for (unsigned w = 0; w < nwords; w++) {
        uint64_t a = sa_load_relaxed(&s->allocBits[w]);
        uint64_t m = sa_load_relaxed(&g->markbits[w]) & a;
        uint64_t dead = a & ~m;
#ifdef SPANALLOC_VALGRIND
        for (uint64_t d = dead; d; d &= d - 1) {
            uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(d);
            SA_TRACK_FREE((void *)(s->base + (uintptr_t)idx * s->elemsize));
        }
#endif
        freed += sa_popcount64(dead);
        live += sa_popcount64(m);
        sa_store_relaxed(&s->allocBits[w], m);
        sa_store_relaxed(&g->markbits[w], 0);
    }
    s->allocCache = 0;
    s->freeindex = 0;
    s->windowFree = 0;
    s->needzero = 1;
    s->allocCount = live;
    sa_gc_swept_freed += freed;
    sa_gc_swept_freed_bytes += (uint64_t)freed * s->elemsize;
    *freedp = freed;
    return live;
}

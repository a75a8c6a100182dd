/*
 * fuzz_api.c — libFuzzer target: the prefixed API against a reference model.
 *
 * The input is read as a sequence of calls on NSLOTS slots. Each call takes
 * five bytes: opcode, slot, two size bytes, one alignment byte (a short tail
 * is padded with zeros). The model remembers, per slot, the pointer, the
 * requested size, the alignment asked for, the usable size reported at
 * allocation and the seed of the pattern the block was filled with. After
 * every call the target checks:
 *   - every allocation: usable size >= requested size, the alignment asked
 *     for (at least 16; 4096 for valloc/pvalloc), calloc memory all zero
 *     (also right after sa_scavenge released pages and they were reused);
 *   - a NULL result only for an impossible size, and then errno == ENOMEM
 *     (posix_memalign: returns ENOMEM, *memptr untouched); EINVAL for bad
 *     alignments;
 *   - no two live blocks overlap (sorted interval set over [p, p+usable));
 *   - contents: every block is filled with its pattern when allocated; the
 *     pattern survives realloc (the common prefix), failed reallocs, and
 *     every other call (head and tail of every live block checked after each
 *     call, the whole block before it is freed or reallocated);
 *   - sa_malloc_usable_size is stable for a block's life.
 * Any violation aborts with a one-line description (libFuzzer saves the
 * input as crash-<sha1>). All live blocks are freed at the end of each input.
 *
 * Reproduce a crash file: build/fuzz/fuzz_api crash-...  (see docs/testing.md)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc.h"
#include "test_util.h"

#define NSLOTS 16
#define PAGE 4096u
#define MiB ((size_t)1 << 20)
/* Any size up to this must be served (the fuzzer's live set stays < 100 MiB). */
#define MUST_SERVE (64 * MiB)

enum kind { K_NONE, K_MALLOC, K_CALLOC, K_REALLOC, K_ALIGNED, K_MEMALIGN, K_POSIX, K_VALLOC, K_PVALLOC };

typedef struct {
    unsigned char *p;
    size_t req;    /* requested size */
    size_t align;  /* alignment asked for (16 when none) */
    size_t usable; /* sa_malloc_usable_size at allocation */
    uint64_t seed; /* pattern seed */
    enum kind kind;
} slot;

static slot slots[NSLOTS];
static uint64_t seed_counter;
static const char *cur_op = "?";
static size_t op_index;

#define FAIL(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "fuzz_api: op #%zu %s: ", op_index, cur_op);                       \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fputc('\n', stderr);                                                               \
        abort();                                                                           \
    } while (0)

/* ---- input reader ---------------------------------------------------------------- */

typedef struct {
    const uint8_t *d;
    size_t n, i;
} reader;
static uint8_t rd(reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }

/* Sizes: mostly small, some around the 32 KiB small/large boundary, some
 * large, rarely huge or impossible. */
static size_t decode_size(uint8_t a, uint8_t b)
{
    unsigned lo = ((unsigned)(a & 63) << 8) | b;
    switch (a >> 6) {
    case 0: return lo & 1023;                  /* 0 .. 1023 */
    case 1: return (size_t)lo * 4;             /* 0 .. 64 KiB */
    case 2: return (size_t)lo * 64;            /* 0 .. 1 MiB */
    default:
        switch (b & 7) {
        case 0: return 0;
        case 1: return 4 * MiB + (a & 63) * 4096 + 1;
        case 2: return SIZE_MAX;
        case 3: return (size_t)PTRDIFF_MAX + 1;
        case 4: return (size_t)PTRDIFF_MAX;
        case 5: return SIZE_MAX - 4095;
        case 6: return 32768;
        default: return 32768 + (a & 63);
        }
    }
}

/* ---- pattern helpers ---------------------------------------------------------------- */

static void check_range(const slot *s, size_t from, size_t to, const char *when)
{
    if (to > s->req)
        to = s->req;
    for (size_t i = from; i < to; i++)
        if (s->p[i] != sa_pattern_byte(s->seed, i))
            FAIL("block %p (%zu bytes): byte %zu is %#x, want %#x (%s)", (void *)s->p, s->req, i,
                 s->p[i], sa_pattern_byte(s->seed, i), when);
}
static void check_full(const slot *s, const char *when)
{
    size_t bad = sa_check_seed(s->p, s->req, s->seed);
    if (bad != (size_t)-1)
        FAIL("block %p (%zu bytes): byte %zu changed (%s)", (void *)s->p, s->req, bad, when);
}

/* ---- model updates ------------------------------------------------------------------- */

/* A fresh block p of req bytes has just been returned. */
static void adopt(slot *s, void *p, size_t req, size_t align, enum kind k)
{
    if (((uintptr_t)p & 15) != 0)
        FAIL("%p is not 16-byte aligned", p);
    if (align > 16 && ((uintptr_t)p & (align - 1)) != 0)
        FAIL("%p is not aligned to %zu", p, align);
    size_t u = sa_malloc_usable_size(p);
    if (u < req)
        FAIL("usable size %zu < requested %zu for %p", u, req, p);
    if (k == K_CALLOC) {
        size_t nz = sa_first_nonzero(p, req);
        if (nz != (size_t)-1)
            FAIL("calloc(%zu) block %p: byte %zu is %#x, not zero", req, p, nz,
                 ((unsigned char *)p)[nz]);
    }
    s->p = p;
    s->req = req;
    s->align = align < 16 ? 16 : align;
    s->usable = u;
    s->kind = k;
    s->seed = ++seed_counter * 0x9e3779b97f4a7c15ull;
    sa_fill_seed(p, 0, req, s->seed);
}

static void release(slot *s, int how)
{
    if (!s->p)
        return;
    check_full(s, "before free");
    switch (how) {
    case 1: sa_free_sized(s->p, s->req); break;
    case 2:
        if (s->kind == K_ALIGNED)
            sa_free_aligned_sized(s->p, s->align, s->req);
        else
            sa_free_sized(s->p, s->req);
        break;
    default: sa_free(s->p); break;
    }
    memset(s, 0, sizeof *s);
}

/* NULL from an allocating call for req bytes: fine only when impossible. */
static void expect_nomem(void *p, size_t req, int err, const char *call)
{
    if (p)
        return;
    if (req <= MUST_SERVE)
        FAIL("%s(%zu) returned NULL (errno %d)", call, req, err);
    if (err != ENOMEM)
        FAIL("%s(%zu) returned NULL with errno %d, want ENOMEM", call, req, err);
}

/* ---- invariants over every live block --------------------------------------------------- */

static void check_all(void)
{
    const slot *live[NSLOTS];
    int n = 0;
    for (int i = 0; i < NSLOTS; i++) {
        const slot *s = &slots[i];
        if (!s->p)
            continue;
        check_range(s, 0, 32, "head, after a later call");
        if (s->req > 32)
            check_range(s, s->req - 32 > 32 ? s->req - 32 : 32, s->req, "tail, after a later call");
        /* insertion sort by address */
        int j = n++;
        while (j > 0 && live[j - 1]->p > s->p) {
            live[j] = live[j - 1];
            j--;
        }
        live[j] = s;
    }
    for (int i = 1; i < n; i++) {
        const slot *a = live[i - 1], *b = live[i];
        size_t alen = a->usable ? a->usable : 1;
        if (a->p == b->p || a->p + alen > b->p)
            FAIL("live blocks overlap: %p+%zu (usable) and %p", (void *)a->p, alen, (void *)b->p);
    }
}

/* ---- one call ------------------------------------------------------------------------------ */

static void step(reader *r)
{
    uint8_t op = rd(r), si = rd(r), s0 = rd(r), s1 = rd(r), al = rd(r);
    slot *s = &slots[si % NSLOTS];
    size_t size = decode_size(s0, s1);
    size_t align = (size_t)1 << (al % 24);
    void *p;
    int err;

    switch (op % 16) {
    case 0:
    case 14:
        cur_op = "malloc";
        release(s, 0);
        errno = 0;
        p = sa_malloc(size);
        err = errno;
        expect_nomem(p, size, err, "sa_malloc");
        if (p)
            adopt(s, p, size, 16, K_MALLOC);
        break;
    case 1: {
        cur_op = "calloc";
        release(s, 0);
        size_t nmemb = 1 + (al & 15), esz = size / nmemb;
        if ((al & 0xf0) == 0xf0) { /* overflowing product */
            nmemb = SIZE_MAX / 2 + (al & 7);
            esz = 2 + (size & 1);
        }
        size_t total;
        int ovf = __builtin_mul_overflow(nmemb, esz, &total);
        errno = 0;
        p = sa_calloc(nmemb, esz);
        err = errno;
        if (ovf) {
            if (p || err != ENOMEM)
                FAIL("calloc(%zu, %zu) overflows: got %p errno %d, want NULL/ENOMEM", nmemb, esz, p, err);
            break;
        }
        expect_nomem(p, total, err, "sa_calloc");
        if (p)
            adopt(s, p, total, 16, K_CALLOC);
        break;
    }
    case 2:
    case 3: {
        int arr = op % 16 == 3;
        cur_op = arr ? "reallocarray" : "realloc";
        size_t nmemb = 1, esz = size;
        if (arr) {
            nmemb = 1 + (al & 7);
            esz = size / nmemb;
            if ((al & 0xf8) == 0xf8) {
                nmemb = SIZE_MAX / 4;
                esz = 5;
            }
        }
        size_t total;
        int ovf = __builtin_mul_overflow(nmemb, esz, &total);
        if (s->p)
            check_full(s, "before realloc");
        errno = 0;
        p = arr ? sa_reallocarray(s->p, nmemb, esz) : sa_realloc(s->p, esz);
        err = errno;
        if (ovf) {
            if (p || err != ENOMEM)
                FAIL("reallocarray(%zu, %zu) overflows: got %p errno %d", nmemb, esz, p, err);
            if (s->p)
                check_full(s, "after a failed reallocarray");
            break;
        }
        if (total == 0 && s->p) {
            /* glibc semantics: frees and returns NULL */
            if (p)
                FAIL("realloc(p, 0) returned %p, want NULL (block freed)", p);
            memset(s, 0, sizeof *s);
            break;
        }
        if (!p) {
            expect_nomem(p, total, err, cur_op);
            if (s->p)
                check_full(s, "after a failed realloc: the old block must be intact");
            break;
        }
        if (!s->p) {
            adopt(s, p, total, 16, K_REALLOC);
            break;
        }
        /* moved or not: the common prefix keeps the pattern */
        size_t keep = s->req < total ? s->req : total;
        slot ns = *s;
        ns.p = p;
        ns.req = keep;
        check_full(&ns, "prefix after realloc");
        if (((uintptr_t)p & 15) != 0)
            FAIL("realloc result %p not 16-byte aligned", p);
        size_t u = sa_malloc_usable_size(p);
        if (u < total)
            FAIL("usable size %zu < %zu after realloc", u, total);
        ns.req = total;
        ns.usable = u;
        ns.align = 16;
        ns.kind = K_REALLOC;
        sa_fill_seed(p, keep, total, ns.seed);
        *s = ns;
        break;
    }
    case 4: {
        cur_op = "posix_memalign";
        release(s, 0);
        /* some bad alignments: not a power of two, or below sizeof(void *) */
        size_t a = align;
        if ((s1 & 0x1f) == 0x1f)
            a = align | 24;
        void *out = (void *)(uintptr_t)0xdeadbeef;
        errno = 0;
        int rc = sa_posix_memalign(&out, a, size);
        int bad = (a & (a - 1)) != 0 || a % sizeof(void *) != 0;
        if (bad) {
            if (rc != EINVAL || out != (void *)(uintptr_t)0xdeadbeef)
                FAIL("posix_memalign(align %zu): rc %d out %p, want EINVAL and *memptr untouched", a, rc, out);
            break;
        }
        if (rc != 0) {
            if (rc != ENOMEM || size <= MUST_SERVE)
                FAIL("posix_memalign(%zu, %zu) = %d", a, size, rc);
            if (out != (void *)(uintptr_t)0xdeadbeef)
                FAIL("posix_memalign failed but changed *memptr");
            break;
        }
        adopt(s, out, size, a, K_POSIX);
        break;
    }
    case 5:
    case 6: {
        int mem = op % 16 == 6;
        cur_op = mem ? "memalign" : "aligned_alloc";
        release(s, 0);
        size_t a = align;
        if (!mem && (s1 & 0x1f) == 0x1f)
            a = align * 3; /* not a power of two: EINVAL */
        errno = 0;
        p = mem ? sa_memalign(a, size) : sa_aligned_alloc(a, size);
        err = errno;
        if ((a & (a - 1)) != 0) {
            if (p || err != EINVAL)
                FAIL("aligned_alloc(%zu) (not a power of two): %p errno %d, want NULL/EINVAL", a, p, err);
            break;
        }
        expect_nomem(p, size, err, cur_op);
        if (p)
            adopt(s, p, size, a, mem ? K_MEMALIGN : K_ALIGNED);
        break;
    }
    case 7:
        cur_op = "valloc";
        release(s, 0);
        errno = 0;
        p = sa_valloc(size);
        err = errno;
        expect_nomem(p, size, err, cur_op);
        if (p)
            adopt(s, p, size, PAGE, K_VALLOC);
        break;
    case 8: {
        cur_op = "pvalloc";
        release(s, 0);
        errno = 0;
        p = sa_pvalloc(size);
        err = errno;
        expect_nomem(p, size, err, cur_op);
        if (p) {
            size_t rounded = size > SIZE_MAX - PAGE ? size : ((size + PAGE - 1) & ~(size_t)(PAGE - 1));
            if (rounded == 0)
                rounded = PAGE;
            adopt(s, p, size, PAGE, K_PVALLOC);
            if (s->usable < rounded)
                FAIL("pvalloc(%zu): usable %zu < %zu (whole pages)", size, s->usable, rounded);
        }
        break;
    }
    case 9: cur_op = "free"; release(s, 0); break;
    case 10: cur_op = "free_sized"; release(s, 1); break;
    case 11: cur_op = "free_aligned_sized"; release(s, 2); break;
    case 12:
        cur_op = "usable_size";
        if (s->p && sa_malloc_usable_size(s->p) != s->usable)
            FAIL("usable size of %p changed: %zu, was %zu", (void *)s->p, sa_malloc_usable_size(s->p), s->usable);
        if (sa_malloc_usable_size(NULL) != 0)
            FAIL("usable_size(NULL) != 0");
        break;
    case 13:
        cur_op = "scavenge";
        /* release free pages: later callocs must still be zero on reuse */
        (void)sa_scavenge((s1 & 1) ? 0 : (size_t)s0 << 16);
        break;
    default:
        cur_op = "check";
        if (s->p)
            check_full(s, "full check");
        break;
    }
    check_all();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, size, 0 };
    op_index = 0;
    while (r.i < r.n) {
        step(&r);
        op_index++;
    }
    cur_op = "teardown";
    for (int i = 0; i < NSLOTS; i++)
        release(&slots[i], 0);
    return 0;
}

/* Scavenger, black box: resident memory as the kernel reports it (Rss and
 * LazyFree from /proc/self/smaps_rollup: MADV_FREE'd pages stay in Rss until
 * the kernel needs them), madvise as the kernel receives it. Built once per
 * policy (ctest runs test_scavenger_<policy>_<madvise>); each test reads the
 * policy in force from sa_build_option and asserts what that policy promises,
 * or skips with the reason when the policy promises nothing. */
#include <criterion/criterion.h>
#include <spanalloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

/* Every madvise the library makes lands here first (the static library's
 * call binds to the executable's definition), so "never calls madvise" is
 * checked against the real calls, not the library's own counter. */
static unsigned long madvise_calls;
int madvise(void *addr, size_t len, int advice)
{
    __atomic_fetch_add(&madvise_calls, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_madvise, addr, len, advice);
}

static bool policy_is(const char *name)
{
    return strcmp(sa_build_option("scavenger"), name) == 0;
}

/* A field of /proc/self/smaps_rollup ("Rss", "LazyFree"), in bytes. */
static size_t smaps(const char *field)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    cr_assert_not_null(f);
    char line[256];
    size_t len = strlen(field), kib = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            found = sscanf(line + len + 1, "%zu", &kib) == 1;
    fclose(f);
    cr_assert(found, "no %s in /proc/self/smaps_rollup", field);
    return kib << 10;
}

/* Resident bytes of the process, from the kernel. */
static size_t rss(void)
{
    return smaps("Rss");
}

/* What the kernel holds for us and may not take back: resident pages minus
 * those marked MADV_FREE (the kernel reclaims those under pressure; RSS
 * still counts them until it does). */
static size_t held(void)
{
    size_t r = rss(), lazy = smaps("LazyFree");
    return r > lazy ? r - lazy : 0;
}

/* How much of what was held at `before` the kernel no longer holds. */
static size_t given_back(size_t before)
{
    size_t now = held();
    return before > now ? before - now : 0;
}

#define OBJ 256
#define HEAP ((size_t)96 << 20)
#define NOBJ (HEAP / OBJ)

static void **objs;

/* Builds a 96 MiB heap of small objects, touches every byte, frees it all
 * (in an order that leaves no span partly used), and returns what the
 * kernel held (held()) with the heap live. */
static size_t build_and_free(void)
{
    objs = mmap(NULL, NOBJ * sizeof *objs, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(objs, MAP_FAILED);
    for (size_t i = 0; i < NOBJ; i++) {
        objs[i] = sa_malloc(OBJ);
        cr_assert_not_null(objs[i]);
        memset(objs[i], 0xa5, OBJ);
    }
    size_t peak = held();
    for (size_t i = 0; i < NOBJ; i++)
        sa_free(objs[i]);
    return peak;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(scavenger, scavenge_now_gives_back_freed_pages)
{
    unsigned long calls0 = madvise_calls;
    size_t peak = build_and_free();
    size_t released = sa_scavenge(0);
    if (policy_is("off")) {
        cr_assert_eq(released, 0, "the off policy never releases");
        cr_assert_eq(madvise_calls, calls0, "the off policy never calls madvise");
        cr_assert_lt(given_back(peak), HEAP / 10, "the off policy gave %zu KiB back",
                     given_back(peak) >> 10);
        return;
    }
    sa_counters c;
    sa_get_counters(&c);
    /* What the scavenger can give back depends on timing in the background
     * policy (it may have released some before our call), and eager gave
     * it back at free: the kernel's view is what counts. MADV_DONTNEED:
     * RSS fell; MADV_FREE: RSS may not move (the kernel reclaims only under
     * pressure), but the pages are counted LazyFree. Either way at least
     * 90% of the freed heap is no longer held. */
    cr_assert_geq(given_back(peak), HEAP * 9 / 10,
                  "%zu KiB held with the heap live, %zu KiB after sa_scavenge(0) "
                  "(Rss %zu KiB, LazyFree %zu KiB; released %zu KiB)", peak >> 10,
                  held() >> 10, rss() >> 10, smaps("LazyFree") >> 10, released >> 10);
    cr_assert_gt(madvise_calls, calls0);
    cr_assert_geq(c.heap_released, HEAP * 9 / 10);
}

Test(scavenger, pages_go_back_without_a_call)
{
    if (policy_is("off"))
        cr_skip_test("the off policy never gives pages back");
    size_t peak = build_and_free();
    if (policy_is("eager")) {
        /* The freeing thread released them itself. */
        cr_assert_geq(given_back(peak), HEAP * 9 / 10, "%zu KiB held live, %zu KiB after free",
                      peak >> 10, held() >> 10);
        return;
    }
    /* Quiet heap: the background scavenger must release within ~100 ms
     * quiet time plus a cycle; allow 3 s on a loaded machine (a minute under
     * memcheck, where each madvise and the thread's start crawl). */
    int tries = sa_test_under_valgrind() ? 1200 : 60;
    for (int i = 0; i < tries && given_back(peak) < HEAP * 9 / 10; i++)
        sleep_ms(50);
    cr_assert_geq(given_back(peak), HEAP * 9 / 10, "%zu KiB held live, still %zu KiB after 3 s",
                  peak >> 10, held() >> 10);
}

Test(scavenger, released_pages_come_back_usable_and_calloc_zeroed)
{
    build_and_free();
    sa_scavenge(0);
    sa_counters before;
    sa_get_counters(&before);
    for (size_t i = 0; i < NOBJ; i++) {
        unsigned char *p = sa_calloc(1, OBJ);
        cr_assert_not_null(p);
        for (size_t k = 0; k < OBJ; k++)
            if (p[k] != 0)
                cr_assert_fail("calloc block %zu byte %zu is %#x", i, k, p[k]);
        memset(p, (int)(i & 0xff), OBJ);
        objs[i] = p;
    }
    for (size_t i = 0; i < NOBJ; i++) {
        unsigned char *p = objs[i];
        cr_assert(p[0] == (unsigned char)(i & 0xff) && p[OBJ - 1] == (unsigned char)(i & 0xff));
        sa_free(p);
    }
    sa_counters after;
    sa_get_counters(&after);
    if (!policy_is("off"))
        cr_assert_gt(after.pages_faulted, before.pages_faulted,
                     "reusing released pages is counted as a fault-in");
    else
        cr_assert_eq(after.pages_faulted, 0);
}

Test(scavenger, large_blocks_are_released_and_reused)
{
    void *blocks[16];
    for (int i = 0; i < 16; i++) {
        blocks[i] = sa_malloc(4 << 20);
        memset(blocks[i], 0x5a, 4 << 20);
    }
    size_t live = held();
    for (int i = 0; i < 16; i++)
        sa_free(blocks[i]);
    size_t released = sa_scavenge(0);
    /* 64 MiB freed: the kernel holds at least 48 MiB less (eager released
     * them at free, the others in sa_scavenge or just before it). */
    if (policy_is("off"))
        cr_assert_eq(released, 0);
    else
        cr_assert_geq(given_back(live), (size_t)48 << 20, "%zu KiB held live, %zu KiB after "
                      "sa_scavenge(0) (released %zu KiB)", live >> 10, held() >> 10, released >> 10);
    for (int i = 0; i < 16; i++) {
        unsigned char *p = sa_calloc(1, 4 << 20);
        cr_assert_not_null(p);
        cr_assert(p[0] == 0 && p[(4 << 20) - 1] == 0 && p[1 << 20] == 0);
        sa_free(p);
    }
}

Test(scavenger, memory_limit_bounds_the_retained_heap)
{
    if (policy_is("off"))
        cr_skip_test("the off policy never releases: no limit to enforce");
    size_t base = held();
    void *blocks[32];
    for (int i = 0; i < 32; i++) {
        blocks[i] = sa_malloc(2 << 20);
        memset(blocks[i], 1, 2 << 20);
    }
    for (int i = 0; i < 32; i++)
        sa_free(blocks[i]);
    sa_set_memory_limit((size_t)16 << 20);
    cr_assert_eq(sa_get_memory_limit(), (size_t)16 << 20);
    sa_counters c;
    sa_get_counters(&c);
    cr_assert_leq(c.heap_inuse + c.heap_free, (size_t)16 << 20,
                  "retained %zu KiB over a 16 MiB limit", (c.heap_inuse + c.heap_free) >> 10);
    /* The kernel agrees: of the 64 MiB touched, no more than the limit
     * (plus 2 MiB of metadata and stack slack) is still held. */
    cr_assert_leq(held(), base + ((size_t)18 << 20), "held %zu KiB before, %zu KiB after the "
                  "limit (Rss %zu KiB, LazyFree %zu KiB)", base >> 10, held() >> 10,
                  rss() >> 10, smaps("LazyFree") >> 10);
    sa_set_memory_limit(0);
    cr_assert_eq(sa_get_memory_limit(), 0);
}

Test(scavenger, build_options_are_queryable)
{
    const char *p = sa_build_option("scavenger");
    cr_assert(strcmp(p, "background") == 0 || strcmp(p, "eager") == 0 || strcmp(p, "off") == 0);
    const char *m = sa_build_option("madvise");
    cr_assert(strcmp(m, "dontneed") == 0 || strcmp(m, "free") == 0);
    cr_assert_null(sa_build_option("no-such-option"));
}

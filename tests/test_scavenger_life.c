/* The scavenger thread's life (issue 11), black box: threads as the kernel
 * lists them in /proc/self/task, resident memory as it reports it, and the
 * helper counts of the stats report. Built once per policy like
 * test_scavenger.c; each test asserts what the policy in force promises:
 *   background: no thread until a free leaves something worth releasing;
 *               then one, which gives >= 90% of the freed memory back, ends
 *               when idle, and starts again (and gives it back again) when
 *               needed;
 *   eager, off: never a thread. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <spanalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static bool policy_is(const char *name)
{
    return strcmp(sa_build_option("scavenger"), name) == 0;
}

/* Threads of this process: field 20 of /proc/self/stat, read without
 * allocating (an opendir would take pages from the heap each time, which
 * the scavenger rightly reads as a busy program and paces itself for). */
static int tasks(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    cr_assert_not_null(p);
    for (int field = 2; field < 20 && p; field++)
        p = strchr(p + 1, ' ');
    cr_assert_not_null(p);
    return atoi(p + 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to ms for the task count to become want; returns the last seen. */
static int wait_tasks(int want, long ms)
{
    int n = tasks();
    for (long t = 0; n != want && t < ms; t += 10) {
        sleep_ms(10);
        n = tasks();
    }
    return n;
}

#define OBJ 512
#define HEAP ((size_t)64 << 20)
#define NOBJ (HEAP / OBJ)

/* Builds a 64 MiB heap of small objects, touches it, frees it all; returns
 * the RSS (KiB) with the heap live. */
static size_t build_and_free(void)
{
    static void *objs[NOBJ]; /* 1 MiB of BSS, not from the heap under test */
    for (size_t i = 0; i < NOBJ; i++) {
        objs[i] = sa_malloc(OBJ);
        cr_assert_not_null(objs[i]);
        memset(objs[i], 0x5a, OBJ);
    }
    size_t peak = sa_proc_status_kib("VmRSS");
    for (size_t i = 0; i < NOBJ; i++)
        sa_free(objs[i]);
    return peak;
}

/* Under memcheck everything runs ~50x slower: waits stretch. */
static long scaled_ms(long ms)
{
    return sa_test_under_valgrind() ? 20 * ms : ms;
}

/* Waits (up to 3 s) until RSS fell by 90% of the freed heap. */
static void expect_given_back(size_t peak_kib, const char *when)
{
    size_t now = peak_kib;
    for (long i = 0; i < scaled_ms(60); i++) {
        now = sa_proc_status_kib("VmRSS");
        if (peak_kib > now && (peak_kib - now) << 10 >= HEAP * 9 / 10)
            return;
        sleep_ms(50);
    }
    cr_assert_fail("%s: RSS %zu KiB with the heap live, still %zu KiB 3 s after the free", when,
                   peak_kib, now);
}

/* The report's "scavenger started=N stopped=M". */
static void helper_counts(unsigned long *started, unsigned long *stopped)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    sa_stats_print(f, "text");
    fclose(f);
    const char *p = strstr(buf, "scavenger started=");
    cr_assert_not_null(p, "no helper counts in the report:\n%s", buf);
    cr_assert_eq(sscanf(p, "scavenger started=%lu stopped=%lu", started, stopped), 2);
    free(buf);
}

/* Criterion's worker runs threads of its own: counts are relative to it. */
Test(scavenger_life, no_thread_for_small_allocations)
{
    int base = tasks();
    void *p[1000];
    for (int i = 0; i < 1000; i++)
        p[i] = sa_malloc(16 + (size_t)i);
    void *big = sa_malloc(1 << 20);
    sa_free(big); /* 1 MiB freed: less than worth a thread */
    for (int i = 0; i < 1000; i++)
        sa_free(p[i]);
    sleep_ms(100);
    cr_assert_eq(tasks(), base, "small allocations started a thread");
    unsigned long started, stopped;
    helper_counts(&started, &stopped);
    cr_assert_eq(started, 0);
}

Test(scavenger_life, gives_back_after_a_lazy_start_and_after_an_idle_stop_and_restart)
{
    int base = tasks();
    size_t peak = build_and_free();
    unsigned long started, stopped;
    if (!policy_is("background")) {
        sleep_ms(300);
        cr_assert_eq(tasks(), base, "the %s policy has no thread", sa_build_option("scavenger"));
        helper_counts(&started, &stopped);
        cr_assert_eq(started, 0);
        return;
    }
    cr_assert_eq(wait_tasks(base + 1, scaled_ms(2000)), base + 1, "64 MiB freed and no scavenger thread");
    if (strcmp(sa_build_option("madvise"), "dontneed") == 0)
        expect_given_back(peak, "after the lazy start");
    /* Nothing left to release: the thread ends (500 ms idle). */
    cr_assert_eq(wait_tasks(base, scaled_ms(3000)), base,
                 "the scavenger thread did not end when idle");
    helper_counts(&started, &stopped);
    cr_assert_eq(started, 1);
    cr_assert_eq(stopped, 1);
    /* Needed again: a new thread, the same guarantee. */
    peak = build_and_free();
    cr_assert_eq(wait_tasks(base + 1, scaled_ms(2000)), base + 1,
                 "the scavenger thread did not start again");
    if (strcmp(sa_build_option("madvise"), "dontneed") == 0)
        expect_given_back(peak, "after an idle stop and a restart");
    cr_assert_eq(wait_tasks(base, scaled_ms(3000)), base);
    helper_counts(&started, &stopped);
    cr_assert_eq(started, 2);
    cr_assert_eq(stopped, 2);
}

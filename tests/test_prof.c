/* Heap profiling: the profile google-pprof reads names the allocating
 * function of a deliberately skewed program; frees of sampled objects are
 * recorded; profiling off costs nothing and writes an empty profile. */
#include <criterion/criterion.h>
#include <spanalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 200000
static char *objs[N];

/* Not tail calls: the call site inside each function is what the profile
 * records. */
__attribute__((noinline)) static char *hot_alloc(size_t n)
{
    char *p = sa_malloc(n);
    p[0] = 1;
    return p;
}

__attribute__((noinline)) static char *cold_alloc(size_t n)
{
    char *p = sa_malloc(n);
    p[0] = 2;
    return p;
}

static void skewed_heap(void)
{
    for (int i = 0; i < N; i++)
        objs[i] = i % 20 == 0 ? cold_alloc(64) : hot_alloc(64);
}

static char *read_all(FILE *f)
{
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static char *profile_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/spanalloc-test-%d.heap", (int)getpid());
    return path;
}

Test(prof, pprof_shows_the_hot_allocator_on_top)
{
    cr_assert_eq(sa_option_set("prof_rate", "65536"), 0);
    skewed_heap();
    char *path = profile_path();
    cr_assert_eq(sa_heap_profile_write(path), 0);
    /* readlink, not /proc/PID/exe itself: under valgrind the process image
     * is valgrind's tool, while readlink of /proc/self/exe names the client */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "google-pprof --text '%s' %s 2>/dev/null", exe, path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char *out = read_all(f);
    int status = pclose(f);
    cr_assert_eq(status, 0, "google-pprof failed (is google-perftools installed?):\n%s", out);
    /* The first line after "Total:" is the function with the most bytes. */
    char *total = strstr(out, "Total:");
    cr_assert_not_null(total, "no Total line in:\n%s", out);
    char *first = strchr(total, '\n');
    cr_assert_not_null(first);
    char line[256];
    sscanf(first + 1, "%255[^\n]", line);
    cr_assert_not_null(strstr(line, "hot_alloc"), "top line: %s\nfull output:\n%s", line, out);
    cr_assert_not_null(strstr(out, "cold_alloc"), "the cold path is sampled too:\n%s", out);
    unlink(path);
    for (int i = 0; i < N; i++)
        sa_free(objs[i]);
}

/* Parses "heap profile: A: B [C: D] @ heap_v2/R". */
static void header_counts(const char *path, long *inuse_n, long *inuse_b, long *alloc_n)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long alloc_b, rate;
    int got = fscanf(f, "heap profile: %ld: %ld [%ld: %ld] @ heap_v2/%ld", inuse_n, inuse_b,
                     alloc_n, &alloc_b, &rate);
    fclose(f);
    cr_assert_eq(got, 5, "bad profile header");
}

Test(prof, frees_of_sampled_objects_are_recorded)
{
    cr_assert_eq(sa_option_set("prof_rate", "16384"), 0);
    skewed_heap();
    char *path = profile_path();
    long live_n, live_b, alloc_n;
    cr_assert_eq(sa_heap_profile_write(path), 0);
    header_counts(path, &live_n, &live_b, &alloc_n);
    /* N*64 bytes at one sample per 16 KiB: ~780 samples expected */
    cr_assert(live_n > 400 && live_n < 1400, "samples: %ld", live_n);
    cr_assert_eq(live_n, alloc_n);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(objs[i][0], i % 20 == 0 ? 2 : 1, "sampled blocks hold their data");
        sa_free(objs[i]);
    }
    cr_assert_eq(sa_heap_profile_write(path), 0);
    long live_n2, live_b2, alloc_n2;
    header_counts(path, &live_n2, &live_b2, &alloc_n2);
    cr_assert_eq(live_n2, 0, "every sampled object was freed");
    cr_assert_eq(live_b2, 0);
    cr_assert_geq(alloc_n2, alloc_n);
    unlink(path);
}

Test(prof, off_by_default_and_the_profile_is_empty)
{
    skewed_heap();
    char *path = profile_path();
    cr_assert_eq(sa_heap_profile_write(path), 0);
    long live_n, live_b, alloc_n;
    header_counts(path, &live_n, &live_b, &alloc_n);
    cr_assert_eq(alloc_n, 0);
    /* no object was diverted to a span of its own */
    for (int i = 1; i < N; i++)
        cr_assert_lt(sa_malloc_usable_size(objs[i]), 8192);
    unlink(path);
    cr_assert_eq(sa_heap_profile_write("/nonexistent-dir/x.heap"), -1);
}

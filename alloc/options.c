/*
 * options.c — runtime options from the SPANALLOC environment variable.
 *
 * SPANALLOC is a comma-separated list of key=value pairs in the style of
 * GODEBUG and MALLOC_CONF, e.g. SPANALLOC=stats=1. It is read once, at
 * initialisation, with getenv (which does not allocate). An unknown key or a
 * bad value gives one warning line on stderr and is ignored.
 *
 * Known keys:
 *   stats=0|1           print the statistics report at exit
 *   stats_format=text|json  the report's format
 *   scavtrace=0|1       one line per scavenger cycle on stderr
 *   scavenge_retain=N   free pages kept on top of the pages in use, in
 *                       percent of them (0..1000, default 10)
 *   memory_limit=SIZE   soft limit (bytes; K, M, G suffixes; 0 = none)
 *   prof_rate=SIZE      heap profiling: one sample per SIZE bytes allocated
 *                       on average (Go's MemProfileRate; 0 = off, default)
 *   prof_dump_at_exit=PATH  write the heap profile to PATH at exit (%p in
 *                       PATH becomes the process id)
 *   fail_os_after=N     debug builds: the N-th mmap/madvise from now fails
 *   gc_percent=N|off, gctrace=0|1, gc_mode=stw|concurrent, gc_markers=1|2
 *                       collector builds (SPANALLOC_GC): see docs/gc.md; other
 *                       builds say that these need the collector
 * They tune the build-time scavenger policy; they do not replace it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef SA_DEBUG
#define SA_DEBUG 0
#endif

SA_HIDDEN sa_options sa_opts = {.scavenge_retain = 10};

/* One line on stderr; fmt holds one %s, the offending item. */
static void warn(const char *fmt, const char *s, size_t len)
{
    char buf[192];
    char item[96];
    if (len >= sizeof item)
        len = sizeof item - 1;
    memcpy(item, s, len);
    item[len] = '\0';
    size_t n = sa_format(buf, sizeof buf - 1, fmt, item);
    sa_os_write_stderr(buf, n);
}

static int parse_bool(const char *v, size_t n, int *out)
{
    if (n == 1 && (v[0] == '0' || v[0] == '1')) {
        *out = v[0] - '0';
        return 0;
    }
    return -1;
}

/* A decimal size with an optional K/M/G/T suffix (powers of 1024). */
static int parse_size(const char *v, size_t n, size_t *out)
{
    size_t x = 0, i = 0;
    if (n == 0)
        return -1;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
        if (x > (SIZE_MAX - 9) / 10)
            return -1;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    if (i == 0)
        return -1;
    if (i < n) {
        unsigned shift;
        switch (v[i] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        default: return -1;
        }
        i++;
        if (i < n && (v[i] | 0x20) == 'b') /* "512MB", "512MiB" */
            i++;
        if (i + 1 < n && (v[i] | 0x20) == 'i' && (v[i + 1] | 0x20) == 'b')
            i += 2;
        if (i != n || x > (SIZE_MAX >> shift))
            return -1;
        x <<= shift;
    }
    *out = x;
    return 0;
}

static int parse_percent(const char *v, size_t n, int *out)
{
    size_t x;
    if (parse_size(v, n, &x) != 0 || x > 1000 || (v[n - 1] < '0' || v[n - 1] > '9'))
        return -1;
    *out = (int)x;
    return 0;
}

static bool key_is(const char *key, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* Returns 0 when applied, -1 for a bad value, -2 for an unknown key, -3 for
 * a collector option in a build without the collector. */
int sa_option_apply(const char *key, size_t klen, const char *val, size_t vlen)
{
    if (key_is(key, klen, "stats"))
        return parse_bool(val, vlen, &sa_opts.stats);
    if (key_is(key, klen, "stats_format")) {
        if (vlen == 4 && memcmp(val, "json", 4) == 0)
            sa_opts.stats_json = 1;
        else if (vlen == 4 && memcmp(val, "text", 4) == 0)
            sa_opts.stats_json = 0;
        else
            return -1;
        return 0;
    }
    if (key_is(key, klen, "scavtrace"))
        return parse_bool(val, vlen, &sa_opts.scavtrace);
    if (key_is(key, klen, "scavenge_retain"))
        return parse_percent(val, vlen, &sa_opts.scavenge_retain);
    if (key_is(key, klen, "memory_limit"))
        return parse_size(val, vlen, &sa_opts.memory_limit);
    if (key_is(key, klen, "prof_rate")) {
        size_t rate;
        if (parse_size(val, vlen, &rate) != 0)
            return -1;
        sa_prof_set_rate(rate);
        return 0;
    }
    if (key_is(key, klen, "fail_os_after")) {
#if SA_DEBUG
        size_t n;
        if (parse_size(val, vlen, &n) != 0)
            return -1;
        sa_os_fail_after(n);
        return 0;
#else
        return -1; /* needs a SPANALLOC_DEBUG build */
#endif
    }
#if defined(SA_GC) && SA_GC
    {
        int r = sa_gc_option(key, klen, val, vlen); /* gc_percent, gctrace, gc_mode */
        if (r != -2)
            return r;
    }
#else
    static const char *const gc_keys[] = {"gc_percent", "gctrace", "gc_mode", "gc_markers"};
    for (size_t i = 0; i < sizeof gc_keys / sizeof *gc_keys; i++)
        if (key_is(key, klen, gc_keys[i]))
            return -3; /* known, but this build has no collector */
#endif
    if (key_is(key, klen, "prof_dump_at_exit")) {
        if (vlen == 0 || vlen >= sizeof sa_opts.prof_dump_path)
            return -1;
        memcpy(sa_opts.prof_dump_path, val, vlen);
        sa_opts.prof_dump_path[vlen] = '\0';
        return 0;
    }
    return -2;
}

/* Applies a SPANALLOC-style list ("k=v,k=v"); warns about each bad item.
 * Returns the number of items rejected. */
int sa_options_parse(const char *list)
{
    int bad = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            const char *val = eq ? eq + 1 : "1";
            size_t vlen = eq ? len - klen - 1 : 1;
            int r = sa_option_apply(p, klen, val, vlen);
            if (r == -2)
                warn("spanalloc: unknown option '%s' in SPANALLOC ignored\n", p, klen);
            else if (r == -3)
                warn("spanalloc: option '%s' in SPANALLOC needs a collector build "
                     "(-DSPANALLOC_GC=ON); ignored\n", p, klen);
            else if (r == -1)
                warn("spanalloc: bad value for option '%s' in SPANALLOC ignored\n", p, len);
            bad += r != 0;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return bad;
}

void sa_options_init(void)
{
    const char *env = getenv("SPANALLOC");
    if (env)
        sa_options_parse(env);
}

int sa_option_set(const char *key, const char *value)
{
    sa_ensure_init();
    if (!key || !value) {
        errno = EINVAL;
        return -1;
    }
    int r = sa_option_apply(key, strlen(key), value, strlen(value));
    if (r != 0) {
        errno = r == -3 ? ENOTSUP : EINVAL;
        return -1;
    }
    if (strcmp(key, "memory_limit") == 0)
        sa_set_memory_limit(sa_opts.memory_limit);
    if (strcmp(key, "scavenge_retain") == 0) {
        sa_scavenger_after_free(0); /* a lower goal may leave work for the scavenger */
        sa_scavenger_kick();
    }
    return 0;
}

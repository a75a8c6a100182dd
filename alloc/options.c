/*
 * options.c — runtime options from the SPANALLOC environment variable.
 *
 * SPANALLOC is a comma-separated list of key=value pairs in the style of
 * GODEBUG and MALLOC_CONF, e.g. SPANALLOC=stats=1. It is read once, at
 * initialisation, with getenv (which does not allocate). An unknown key or a
 * bad value gives one warning line on stderr and is ignored.
 *
 * Known keys:
 *   stats=0|1   print a one-line summary of the counters at exit.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

SA_HIDDEN sa_options sa_opts;

static void warn(const char *what, const char *s, size_t len)
{
    char buf[192];
    char item[96];
    if (len >= sizeof item)
        len = sizeof item - 1;
    memcpy(item, s, len);
    item[len] = '\0';
    size_t n = sa_format(buf, sizeof buf - 1, "spanalloc: %s '%s' in SPANALLOC ignored\n", what, item);
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

/* Returns 0 when applied, -1 for a bad value, -2 for an unknown key. */
int sa_option_apply(const char *key, size_t klen, const char *val, size_t vlen)
{
    if (klen == 5 && memcmp(key, "stats", 5) == 0)
        return parse_bool(val, vlen, &sa_opts.stats);
    return -2;
}

void sa_options_init(void)
{
    const char *env = getenv("SPANALLOC");
    if (!env)
        return;
    const char *p = env;
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
                warn("unknown option", p, klen);
            else if (r == -1)
                warn("bad value for option", p, len);
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

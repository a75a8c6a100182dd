/*
 * fuzz_options.c — libFuzzer target: the SPANALLOC option-string parser.
 *
 * The input (up to its first NUL) is handed to sa_options_parse, the parser
 * that reads the SPANALLOC variable at start-up. Besides memory safety
 * (AddressSanitizer), the target checks the parser against a model built
 * from the public sa_option_set:
 *   - the number of rejected items it returns equals the number of non-empty
 *     comma-separated items "key[=value]" (no '=' means value "1") for which
 *     sa_option_set(key, value) fails;
 *   - it writes exactly that many lines on stderr, each of the form
 *     "spanalloc: unknown option '...' in SPANALLOC ignored",
 *     "spanalloc: bad value for option '...' in SPANALLOC ignored" or, for a
 *     collector key in a build without the collector,
 *     "spanalloc: option '...' in SPANALLOC needs a collector build
 *     (-DSPANALLOC_GC=ON); ignored".
 * stderr is redirected to a memfd around the parse (set FUZZ_OPTIONS_VERBOSE=1
 * to leave it alone when reproducing a crash). Options are reset to their
 * defaults after each input.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spanalloc.h"

/* hidden in the library, visible here because the sources are compiled in */
int sa_options_parse(const char *list);

static int verbose = -1;

static void reset_options(void)
{
    if (sa_option_set("stats", "0") || sa_option_set("scavtrace", "0") ||
        sa_option_set("memory_limit", "0") || sa_option_set("scavenge_retain", "10") ||
        sa_option_set("stats_format", "text")) {
        fprintf(stderr, "fuzz_options: cannot reset the options with sa_option_set\n");
        abort();
    }
}

/* The model: how many items sa_option_set rejects. */
static int model_rejects(const char *s)
{
    int bad = 0;
    char *copy = strdup(s);
    /* strtok_r would merge empty items, which the parser skips too */
    for (char *item = copy, *next; item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = 0;
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        const char *val = "1";
        if (eq) {
            *eq = 0;
            val = eq + 1;
        }
        if (sa_option_set(item, val) != 0)
            bad++;
    }
    free(copy);
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (verbose < 0)
        verbose = getenv("FUZZ_OPTIONS_VERBOSE") != NULL;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;

    int fd = -1, saved = -1;
    if (!verbose) {
        fd = memfd_create("fuzz_options_stderr", 0);
        saved = dup(2);
        if (fd < 0 || saved < 0 || dup2(fd, 2) < 0)
            abort();
    }
    int bad = sa_options_parse(s);
    char out[65536];
    ssize_t got = 0;
    if (!verbose) {
        dup2(saved, 2);
        close(saved);
        got = pread(fd, out, sizeof out - 1, 0);
        close(fd);
        if (got < 0)
            abort();
    }
    out[got] = 0;
    reset_options();

    int want = model_rejects(s);
    reset_options();
    if (bad != want) {
        fprintf(stderr, "fuzz_options: sa_options_parse(\"%s\") rejected %d items, "
                        "sa_option_set rejects %d\n", s, bad, want);
        abort();
    }
    /* Items are echoed verbatim: count lines only when none holds a newline. */
    if (!verbose && !strchr(s, '\n')) {
        static const char tail[] = "' in SPANALLOC ignored";
        /* a collector key in a build without the collector */
        static const char gc_tail[] =
            "' in SPANALLOC needs a collector build (-DSPANALLOC_GC=ON); ignored";
        int lines = 0;
        for (char *line = out, *nl; *line; line = nl + 1) {
            nl = strchr(line, '\n');
            if (!nl) {
                fprintf(stderr, "fuzz_options: unterminated warning line \"%s\"\n", line);
                abort();
            }
            *nl = 0;
            size_t len = (size_t)(nl - line), tl = sizeof tail - 1, gl = sizeof gc_tail - 1;
            bool plain = (strncmp(line, "spanalloc: unknown option '", 27) == 0 ||
                          strncmp(line, "spanalloc: bad value for option '", 33) == 0) &&
                         len >= tl && strcmp(line + len - tl, tail) == 0;
            bool gc = strncmp(line, "spanalloc: option '", 19) == 0 && len >= gl &&
                      strcmp(line + len - gl, gc_tail) == 0;
            if (!plain && !gc) {
                fprintf(stderr, "fuzz_options: unexpected warning \"%s\"\n", line);
                abort();
            }
            lines++;
        }
        if (lines != bad) {
            fprintf(stderr, "fuzz_options: %d items rejected but %d warning lines\n", bad, lines);
            abort();
        }
    }
    free(s);
    return 0;
}

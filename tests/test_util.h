/*
 * test_util.h — small helpers shared by the black-box suites: a deterministic
 * PRNG, address-derived fill patterns, valgrind detection, /proc readers.
 * Header-only (static functions) so every suite stays one .c file.
 */
#ifndef SA_TEST_UTIL_H
#define SA_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SA_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

/* Non-zero while the process runs under valgrind: the suites shrink their
 * loop counts then (memcheck runs threads one at a time, ~50x slower). */
static inline int sa_test_under_valgrind(void)
{
#ifdef RUNNING_ON_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
#endif
}

/* splitmix64: deterministic, seedable, good enough to pick sizes. */
typedef struct { uint64_t s; } sa_rng;
static inline uint64_t sa_rng_next(sa_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t sa_rng_below(sa_rng *r, uint64_t n) { return sa_rng_next(r) % n; }

/* The fill pattern of a block depends on its address and size, so a block
 * handed to the wrong owner, overlapping another, or moved without its
 * contents, shows up as a mismatch. Byte i is byte (i % 8) of a word derived
 * from (seed, i / 8), so fills and checks run a word at a time. */
static inline uint64_t sa_pattern_seed(const void *p, size_t n)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull ^ (uint64_t)n * 0xc2b2ae3d27d4eb4full;
    return x ^ (x >> 29);
}
static inline uint64_t sa_pattern_word(uint64_t seed, size_t w)
{
    uint64_t x = (seed + (uint64_t)w) * 0xff51afd7ed558ccdull;
    return x ^ (x >> 32);
}
static inline unsigned char sa_pattern_byte(uint64_t seed, size_t i)
{
    return (unsigned char)(sa_pattern_word(seed, i >> 3) >> ((i & 7) * 8));
}
/* Fills bytes [from, to) of p with the pattern of seed. */
static inline void sa_fill_seed(void *p, size_t from, size_t to, uint64_t seed)
{
    unsigned char *b = p;
    size_t i = from;
    for (; i < to && (i & 7); i++)
        b[i] = sa_pattern_byte(seed, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = sa_pattern_word(seed, i >> 3);
        memcpy(b + i, &w, 8); /* little-endian: byte k of w is byte i+k */
    }
    for (; i < to; i++)
        b[i] = sa_pattern_byte(seed, i);
}
/* Index of the first byte of [0, n) not matching seed's pattern, or (size_t)-1. */
static inline size_t sa_check_seed(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != sa_pattern_word(seed, i >> 3))
            break;
    }
    for (; i < n; i++)
        if (b[i] != sa_pattern_byte(seed, i))
            return i;
    return (size_t)-1;
}
static inline void sa_fill(void *p, size_t n) { sa_fill_seed(p, 0, n, sa_pattern_seed(p, n)); }
static inline size_t sa_check(const void *p, size_t n) { return sa_check_seed(p, n, sa_pattern_seed(p, n)); }

/* Index of the first nonzero byte of [0, n), or (size_t)-1. */
static inline size_t sa_first_nonzero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return i;
    return (size_t)-1;
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmSize"), or 0. Reads with
 * a stack buffer and raw stdio on a fixed buffer to avoid allocating. */
static inline size_t sa_proc_status_kib(const char *field)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/status", "r");
    size_t kib = 0, len = strlen(field);
    if (!f)
        return 0;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, field, len) == 0 && buf[len] == ':') {
            kib = (size_t)strtoull(buf + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static inline int sa_is_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

#endif /* SA_TEST_UTIL_H */

/*
 * wl_common.h — shared helpers for the workload programs in bench/workloads.
 *
 * Every workload is an ordinary C program that calls plain malloc/free/realloc
 * (never the sa_ API), so any allocator can be put under it with LD_PRELOAD.
 * The helpers here keep the programs uniform:
 *
 *  - the command line: `-s SCALE` (a float; 1.0 is the default run, about one
 *    to a few seconds under glibc on a 2-core machine; ctest runs 0.01),
 *    `-t THREADS` and, for workloads that have variants, `-m MODE`;
 *  - a deterministic PRNG (splitmix64 seeding xoshiro-style state), so a run
 *    makes the same allocation sequence under every allocator;
 *  - block stamping: a tag is written at the start, at the end and on every
 *    4 KiB stride of a block (so every page is touched, which makes RSS honest)
 *    and checked again before the block is freed. A mismatch prints the
 *    workload, the block and the offset on stderr and exits with status 3, so
 *    the workloads double as allocator corruption detectors;
 *  - a thread team (wl_team): start N threads, meet them at a barrier that
 *    the main thread shares, time the section between two meetings, join;
 *  - fixed-time runs (wl_stop): the throughput workloads run for 2 s × SCALE
 *    and report operations per second instead of the time of a fixed amount
 *    of work;
 *  - the result line: exactly one line starting with "RESULT " and made of
 *    key=value pairs, always including workload, threads, scale, seconds,
 *    ops, ops_per_sec, peak_rss_kb and ru_maxrss_kb. peak_rss_kb is VmHWM,
 *    the kernel's high-water mark behind ru_maxrss, for this program alone:
 *    ru_maxrss itself survives execve and so includes the RSS of whatever
 *    forked the program (see wl_ru_maxrss_kb).
 *
 * Everything is static inline so each workload stays a single translation
 * unit with no library of its own.
 */
#ifndef WL_COMMON_H
#define WL_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- command line ------------------------------------------------------ */

typedef struct wl_args {
    double scale;     /* work multiplier; 1.0 = default run */
    int threads;      /* worker threads (meaning documented per workload) */
    const char *mode; /* the variant (-m), one of the workload's modes; NULL without modes */
} wl_args;

static inline void wl_usage(const char *prog, const char *what, const char *const *modes) {
    fprintf(stderr,
            "usage: %s [-s SCALE] [-t THREADS]%s\n"
            "  %s\n"
            "  -s SCALE    work multiplier (default 1.0; 0.01 for a smoke run)\n"
            "  -t THREADS  worker threads (default 1)\n",
            prog, modes ? " [-m MODE]" : "", what);
    if (modes) {
        fprintf(stderr, "  -m MODE     one of:");
        for (const char *const *m = modes; *m; m++) fprintf(stderr, " %s%s", *m, m == modes ? " (default)" : "");
        fputc('\n', stderr);
    }
}

/* Parses -s/-t/-m (also --scale=/--threads=/--mode=); exits 2 on anything
 * else. `modes` is a NULL-terminated list of the variants the workload knows,
 * the first being the default, or NULL when it has none (then -m is an
 * error). */
static inline wl_args wl_parse_args_modes(int argc, char **argv, const char *what, const char *const *modes) {
    wl_args a = {1.0, 1, modes ? modes[0] : NULL};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char opt = 0;
        if ((arg[0] == '-' && (arg[1] == 's' || arg[1] == 't' || arg[1] == 'm') && arg[2] == '\0') && i + 1 < argc) {
            opt = arg[1];
            val = argv[++i];
        } else if (strncmp(arg, "--scale=", 8) == 0) {
            opt = 's';
            val = arg + 8;
        } else if (strncmp(arg, "--threads=", 10) == 0) {
            opt = 't';
            val = arg + 10;
        } else if (strncmp(arg, "--mode=", 7) == 0) {
            opt = 'm';
            val = arg + 7;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            wl_usage(argv[0], what, modes);
            exit(0);
        } else {
            wl_usage(argv[0], what, modes);
            exit(2);
        }
        char *end = NULL;
        errno = 0;
        if (opt == 'm') {
            const char *const *m = modes;
            while (m && *m && strcmp(*m, val) != 0) m++;
            if (!m || !*m) {
                fprintf(stderr, "%s: unknown mode '%s'\n", argv[0], val);
                wl_usage(argv[0], what, modes);
                exit(2);
            }
            a.mode = *m;
        } else if (opt == 's') {
            a.scale = strtod(val, &end);
            if (errno || end == val || *end || !(a.scale > 0.0) || a.scale > 1000.0) {
                fprintf(stderr, "%s: bad scale '%s'\n", argv[0], val);
                exit(2);
            }
        } else {
            long t = strtol(val, &end, 10);
            if (errno || end == val || *end || t < 1 || t > 256) {
                fprintf(stderr, "%s: bad thread count '%s'\n", argv[0], val);
                exit(2);
            }
            a.threads = (int)t;
        }
    }
    return a;
}

/* The same for workloads without variants. */
static inline wl_args wl_parse_args(int argc, char **argv, const char *what) {
    return wl_parse_args_modes(argc, argv, what, NULL);
}

/* Scales a base count, never below `min`. */
static inline uint64_t wl_scaled(uint64_t base, double scale, uint64_t min) {
    double v = (double)base * scale;
    uint64_t n = (uint64_t)v;
    return n < min ? min : n;
}

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---------------------------- */

typedef struct wl_rng {
    uint64_t s[4];
} wl_rng;

static inline uint64_t wl_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void wl_rng_seed(wl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = wl_splitmix64(&x);
}

static inline uint64_t wl_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t wl_next(wl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = wl_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = wl_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n) (n > 0); the tiny modulo bias does not matter here. */
static inline uint64_t wl_below(wl_rng *r, uint64_t n) { return (uint64_t)(((unsigned __int128)wl_next(r) * n) >> 64); }

/* Uniform double in [0, 1). */
static inline double wl_unit(wl_rng *r) { return (double)(wl_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- time and memory ----------------------------------------------------- */

static inline double wl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void wl_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads one "Key:   N kB" field of /proc/self/status; -1 if unavailable.
 * Uses only the stack and raw system calls (stdio would allocate through the
 * malloc being measured). */
static inline long wl_status_kb(const char *key) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    size_t kl = strlen(key);
    for (const char *p = buf; (p = strstr(p, key)) != NULL; p += kl)
        if ((p == buf || p[-1] == '\n') && p[kl] == ':') return strtol(p + kl + 1, NULL, 10);
    return -1;
}

/* getrusage's ru_maxrss (KiB). Careful: Linux carries it across execve, so a
 * program started by a big parent (the Python runner) reports at least the
 * parent's RSS at fork time. */
static inline long wl_ru_maxrss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss;
}

/* Peak RSS of this program in KiB: VmHWM (the same high-water mark the kernel
 * folds into ru_maxrss, but for this address space only, so it starts fresh
 * at exec); ru_maxrss when /proc is not there. */
static inline long wl_peak_rss_kb(void) {
    long kb = wl_status_kb("VmHWM");
    return kb >= 0 ? kb : wl_ru_maxrss_kb();
}

/* Current resident set size (VmRSS) in KiB; -1 if unavailable. */
static inline long wl_current_rss_kb(void) { return wl_status_kb("VmRSS"); }

/* ---- block stamping ------------------------------------------------------- */

/* Stamps positions: offset 0, every 4096 bytes, and the last 8 bytes (blocks
 * of at least 8 bytes). Blocks smaller than 8 bytes get their bytes filled. */
#define WL_STRIDE 4096

static inline uint64_t wl_tag_at(uint64_t tag, size_t off) { return tag ^ ((uint64_t)off * 0x9e3779b97f4a7c15ULL); }

/* The tail word is stamped only when it does not overlap the last stride
 * word (size >= 8). */
static inline int wl_has_tail(size_t size) {
    size_t last = ((size - 8) / WL_STRIDE) * WL_STRIDE;
    return size - 8 >= last + 8;
}

static inline void wl_stamp(void *p, size_t size, uint64_t tag) {
    unsigned char *b = (unsigned char *)p;
    if (size < 8) {
        for (size_t i = 0; i < size; i++) b[i] = (unsigned char)(tag >> (8 * i));
        return;
    }
    for (size_t off = 0; off + 8 <= size; off += WL_STRIDE) {
        uint64_t v = wl_tag_at(tag, off);
        memcpy(b + off, &v, 8);
    }
    if (wl_has_tail(size)) {
        uint64_t v = wl_tag_at(tag, size - 8);
        memcpy(b + size - 8, &v, 8);
    }
}

static inline void wl_fail(const char *workload, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: DATA CHECK FAILED: ", workload);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(3);
}

/* Returns 0 when the stamp is intact, else the failing offset + 1. */
static inline size_t wl_stamp_bad(const void *p, size_t size, uint64_t tag) {
    const unsigned char *b = (const unsigned char *)p;
    if (size < 8) {
        for (size_t i = 0; i < size; i++)
            if (b[i] != (unsigned char)(tag >> (8 * i))) return i + 1;
        return 0;
    }
    uint64_t v;
    for (size_t off = 0; off + 8 <= size; off += WL_STRIDE) {
        memcpy(&v, b + off, 8);
        if (v != wl_tag_at(tag, off)) return off + 1;
    }
    if (wl_has_tail(size)) {
        memcpy(&v, b + size - 8, 8);
        if (v != wl_tag_at(tag, size - 8)) return size - 8 + 1;
    }
    return 0;
}

/* Checks the stamp; on mismatch reports and exits 3. */
static inline void wl_check(const char *workload, const void *p, size_t size, uint64_t tag) {
    size_t bad = wl_stamp_bad(p, size, tag);
    if (bad) wl_fail(workload, "block %p size %zu tag %#llx corrupt at offset %zu", p, size, (unsigned long long)tag, bad - 1);
}

/* Allocation failure is a finding too: report it and exit 4. */
static inline void *wl_xmalloc(const char *workload, size_t size) {
    void *p = malloc(size);
    if (!p && size) {
        fprintf(stderr, "%s: malloc(%zu) returned NULL\n", workload, size);
        fflush(stderr);
        _exit(4);
    }
    return p;
}

/* A live block the workload keeps: where, how big, and the tag it was
 * stamped with. */
typedef struct wl_block {
    void *p;
    size_t size;
    uint64_t tag;
} wl_block;

/* Allocates b's new block of `size` bytes and stamps it with `tag`. */
static inline void wl_block_fill(const char *workload, wl_block *b, size_t size, uint64_t tag) {
    b->p = wl_xmalloc(workload, size);
    b->size = size;
    b->tag = tag;
    wl_stamp(b->p, size, tag);
}

/* Checks and frees the n blocks (the teardown of a working set); returns the
 * sum of their sizes, the workloads' checksum. */
static inline uint64_t wl_blocks_release(const char *workload, wl_block *bs, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        wl_check(workload, bs[i].p, bs[i].size, bs[i].tag);
        sum += bs[i].size;
        free(bs[i].p);
    }
    return sum;
}

/* ---- thread team ------------------------------------------------------------ */

/* N worker threads and the main thread meet at one reusable barrier of N + 1.
 * The usual shape:
 *
 *     wl_team team;
 *     wl_team_init(&team, WORKLOAD, n);
 *     for (i...) { ws[i].team = &team; wl_team_spawn(&team, run, &ws[i]); }
 *     double secs = wl_team_timed(&team);  // workers: wl_team_wait() twice
 *     wl_team_join(&team);
 *
 * The pthread_t array is malloc'd from the allocator under test (as the
 * workloads' other bookkeeping is). Failure to start a thread exits 1. */
typedef struct wl_team {
    const char *workload;
    int n;       /* threads the barrier expects (the main thread comes on top) */
    int started; /* threads spawned so far */
    pthread_t *tids;
    pthread_barrier_t bar;
} wl_team;

static inline void wl_team_init(wl_team *t, const char *workload, int nthreads) {
    t->workload = workload;
    t->n = nthreads;
    t->started = 0;
    t->tids = wl_xmalloc(workload, sizeof(pthread_t) * (size_t)nthreads);
    pthread_barrier_init(&t->bar, NULL, (unsigned)nthreads + 1);
}

/* Starts the next thread of the team running fn(arg). */
static inline void wl_team_spawn(wl_team *t, void *(*fn)(void *), void *arg) {
    if (t->started >= t->n || pthread_create(&t->tids[t->started], NULL, fn, arg) != 0) {
        fprintf(stderr, "%s: pthread_create failed\n", t->workload);
        exit(1);
    }
    t->started++;
}

/* Meets the rest of the team (workers and main thread alike). */
static inline void wl_team_wait(wl_team *t) { pthread_barrier_wait(&t->bar); }

/* Main thread: meets the team twice and returns the seconds in between (the
 * workers' timed section runs between their two wl_team_wait calls). */
static inline double wl_team_timed(wl_team *t) {
    wl_team_wait(t);
    double t0 = wl_now();
    wl_team_wait(t);
    return wl_now() - t0;
}

/* Joins every thread in start order and releases the team. */
static inline void wl_team_join(wl_team *t) {
    for (int i = 0; i < t->started; i++) pthread_join(t->tids[i], NULL);
    pthread_barrier_destroy(&t->bar);
    free(t->tids);
    t->tids = NULL;
    t->started = 0;
}

/* ---- fixed-time runs ------------------------------------------------------ */

/* The run length of a throughput workload: 2 s × SCALE, at least 20 ms. */
static inline long wl_run_ms(double scale) {
    double ms = 2000.0 * scale;
    return ms < 20.0 ? 20 : (long)ms;
}

/* A stop flag on a cache line of its own: the main thread raises it once,
 * the workers poll it every operation (a relaxed load of a line that stays
 * shared in every core's cache costs next to nothing). */
typedef struct wl_stop {
    _Alignas(64) _Atomic int raised;
    char pad[64 - sizeof(int)];
} wl_stop;

static inline void wl_stop_init(wl_stop *s) { atomic_init(&s->raised, 0); }
static inline void wl_stop_raise(wl_stop *s) { atomic_store_explicit(&s->raised, 1, memory_order_relaxed); }
static inline int wl_stopped(wl_stop *s) { return atomic_load_explicit(&s->raised, memory_order_relaxed); }

/* ---- result line -------------------------------------------------------- */

/* Prints "RESULT workload=W threads=T scale=S seconds=X ops=N ops_per_sec=R
 * peak_rss_kb=K ru_maxrss_kb=M" followed by `extra` (already formatted " k=v" pairs, or
 * NULL). One line, flushed. */
static inline void wl_result(const char *workload, const wl_args *a, double seconds, uint64_t ops, const char *extra) {
    double rate = seconds > 0 ? (double)ops / seconds : 0.0;
    printf("RESULT workload=%s threads=%d scale=%g seconds=%.6f ops=%llu ops_per_sec=%.0f peak_rss_kb=%ld "
           "ru_maxrss_kb=%ld%s\n",
           workload, a->threads, a->scale, seconds, (unsigned long long)ops, rate, wl_peak_rss_kb(), wl_ru_maxrss_kb(),
           extra ? extra : "");
    fflush(stdout);
}

#endif /* WL_COMMON_H */

/*
 * lifecycle.c — a process whose life spanalloc must not change (issue 11),
 * run by tests/test_lifecycle.c. Built once against each policy library
 * (SA_PROBE_LINKED: the sa_ API called directly) and once plain, for
 * LD_PRELOAD runs (the sa_ API, if any, found with dlsym).
 *
 *   lifecycle pexit N [gc]   main ends with pthread_exit while N threads
 *                            still run; they end one after the other
 *   lifecycle forkthread [gc] a thread forks; the child's only thread
 *                            returns from its start routine
 *   lifecycle single         small allocations and a few MiB, then: one
 *                            thread, and unshare(CLONE_NEWUSER) works
 *
 * Every thread churns enough memory (freed) that the background scavenger
 * has work; with "gc" every thread also allocates from the collector and
 * forces cycles with a finalizer, so the collector's threads run. The probe
 * checks itself that helper threads are running before the program's
 * threads end (else the exit path would go untested) and prints, on stdout:
 *   "policy=P gc=on|off"        the library it runs on
 *   "helpers=K"                 helper threads seen running (tasks - own)
 *   "last-end NS"               written (write(2), unbuffered) by the last
 *                               program thread just before it ends:
 *                               CLOCK_MONOTONIC, for the exit latency
 *   "main done", "atexit ran in ROLE", "child done": through stdio, which
 *                               only exit() flushes (stdout is a pipe)
 * Exit: 0, or 77 (single: the kernel forbids user namespaces), or 1 with a
 * line on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

static const char *(*p_build_option)(const char *);
static void *(*p_gc_alloc)(size_t, unsigned);
static void (*p_gc_collect)(void);
static int (*p_gc_set_finalizer)(void *, void (*)(void *, void *), void *);
static int use_gc;
static const char *role = "parent";

static void die(const char *what)
{
    fprintf(stderr, "lifecycle: %s (errno %d)\n", what, errno);
    _exit(1);
}

static void resolve(void)
{
#ifdef SA_PROBE_LINKED
    p_build_option = sa_build_option;
#if SA_PROBE_GC
    p_gc_alloc = sa_gc_alloc;
    p_gc_collect = sa_gc_collect;
    p_gc_set_finalizer = sa_gc_set_finalizer;
#endif
#else
    p_build_option = (const char *(*)(const char *))dlsym(RTLD_DEFAULT, "sa_build_option");
    p_gc_alloc = (void *(*)(size_t, unsigned))dlsym(RTLD_DEFAULT, "sa_gc_alloc");
    p_gc_collect = (void (*)(void))dlsym(RTLD_DEFAULT, "sa_gc_collect");
    p_gc_set_finalizer = (int (*)(void *, void (*)(void *, void *), void *))dlsym(
        RTLD_DEFAULT, "sa_gc_set_finalizer");
#endif
}

static const char *option(const char *name)
{
    const char *v = p_build_option ? p_build_option(name) : NULL;
    return v ? v : "none";
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        die("opendir /proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Unbuffered: reaches the pipe even if the process never exits. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, (size_t)n) != n)
        die("write");
}

static void finalized(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
}

/* Frees MiB of memory (in 256 KiB blocks): 2 MiB over what it keeps makes
 * the background scavenger start. With the collector: garbage, a finalizer
 * and a forced cycle, so the collector, its marker and the finalizer thread
 * run. */
static void churn(int mib)
{
    enum { BLOCK = 256 << 10 };
    int n = mib * 4;
    void **b = malloc((size_t)n * sizeof *b);
    if (!b)
        die("malloc");
    for (int i = 0; i < n; i++) {
        b[i] = malloc(BLOCK);
        if (!b[i])
            die("malloc");
        memset(b[i], i, BLOCK);
    }
    for (int i = 0; i < n; i++)
        free(b[i]);
    free(b);
    for (int i = 0; i < 1000; i++)
        free(malloc(16 + (size_t)i % 200));
    if (use_gc) {
        for (int i = 0; i < 2000; i++)
            if (!p_gc_alloc(64, 0))
                die("sa_gc_alloc");
        void *f = p_gc_alloc(128, 0);
        if (!f || p_gc_set_finalizer(f, finalized, NULL) != 0)
            die("sa_gc_set_finalizer");
        f = NULL;
        p_gc_collect();
        p_gc_collect();
    }
}

/* Waits (up to 3 s, 60 s under memcheck) until more than `own` tasks run:
 * the library's helpers. Returns how many it saw. */
static int helpers_running(int own)
{
    const char *policy = option("scavenger");
    bool expect = strcmp(policy, "background") == 0 || use_gc;
    int n = tasks() - own;
    int tries = sa_test_under_valgrind() ? 6000 : 300;
    for (int i = 0; expect && n <= 0 && i < tries; i++) {
        sleep_ms(10);
        n = tasks() - own;
    }
    if (expect && n <= 0)
        die("no helper thread runs: the exit path would go untested");
    return n;
}

static void at_exit(void)
{
    printf("atexit ran in %s\n", role);
}

/* ---- pexit --------------------------------------------------------------- */

static int nthreads;

static void *pexit_thread(void *arg)
{
    int i = (int)(intptr_t)arg;
    churn(4);
    sleep_ms(300 + 150 * i); /* main is gone by now */
    churn(4);                /* helpers (and collector cycles) without main */
    sleep_ms(100 + 150 * i); /* they end one by one */
    if (i == nthreads - 1)
        say("last-end %llu\n", (unsigned long long)now_ns());
    return NULL;
}

static int run_pexit(int n)
{
    nthreads = n;
    churn(8);
    pthread_t t;
    for (int i = 0; i < n; i++)
        if (pthread_create(&t, NULL, pexit_thread, (void *)(intptr_t)i) != 0)
            die("pthread_create");
    say("helpers=%d\n", helpers_running(1 + n));
    printf("main done\n"); /* buffered: only exit() flushes it */
    if (n == 0)
        say("last-end %llu\n", (unsigned long long)now_ns());
    pthread_exit(NULL);
}

/* ---- forkthread ---------------------------------------------------------- */

static void *fork_thread(void *arg)
{
    (void)arg;
    churn(4); /* the parent's helpers run, or are starting, as it forks */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* The child's only thread: this one, which returns below. */
        role = "child";
        churn(4);
        say("helpers=%d\n", helpers_running(1));
        printf("child done\n");
        say("last-end %llu\n", (unsigned long long)now_ns());
        return NULL; /* glibc ends the process here, unless a helper lives on */
    }
    int st;
    uint64_t deadline = now_ns() + 20000000000ull;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now_ns() < deadline)
        sleep_ms(5);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        say("child hung: killed\n");
        return (void *)1;
    }
    say("child-exit-ns %llu\n", (unsigned long long)now_ns());
    say("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return NULL;
}

static int run_forkthread(void)
{
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, fork_thread, NULL) != 0)
        die("pthread_create");
    pthread_join(t, &r);
    return r != NULL;
}

/* ---- single -------------------------------------------------------------- */

static int run_single(void)
{
    enum { N = 2000 };
    static void *small[N];
    for (int i = 0; i < N; i++)
        if (!(small[i] = malloc(16 + (size_t)i % 500)))
            die("malloc");
    for (int i = 0; i < N; i += 2)
        free(small[i]);
    /* a few MiB kept, one freed */
    void *big[16];
    for (int i = 0; i < 16; i++)
        if (!(big[i] = calloc(1, 256 << 10)))
            die("calloc");
    for (int i = 0; i < 4; i++)
        free(big[i]);
    int n = tasks();
    say("tasks=%d\n", n);
    if (n != 1) {
        fprintf(stderr, "lifecycle: %d threads after small allocations, want 1\n", n);
        return 1;
    }
    if (unshare(CLONE_NEWUSER) != 0) {
        if (errno == EPERM || errno == ENOSPC || errno == EACCES) {
            say("skip: the kernel forbids user namespaces here (errno %d)\n", errno);
            return 77;
        }
        fprintf(stderr, "lifecycle: unshare(CLONE_NEWUSER): errno %d\n", errno);
        return 1;
    }
    say("unshare ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    resolve();
    if (argc < 2)
        die("usage: lifecycle pexit N [gc] | forkthread [gc] | single");
    const char *mode = argv[1];
    use_gc = argc > 2 && strcmp(argv[argc - 1], "gc") == 0;
    if (use_gc && (!p_gc_alloc || !p_gc_collect || !p_gc_set_finalizer))
        die("gc requested from a library without the collector");
    say("policy=%s gc=%s\n", option("scavenger"), option("gc"));
    atexit(at_exit);
    if (strcmp(mode, "pexit") == 0 && argc > 2)
        return run_pexit(atoi(argv[2]));
    if (strcmp(mode, "forkthread") == 0)
        return run_forkthread();
    if (strcmp(mode, "single") == 0)
        return run_single();
    die("unknown mode");
}

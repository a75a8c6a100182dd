/*
 * helper.h — the library's own threads (implemented in os.c).
 *
 * A malloc must not change how a process lives. The threads spanalloc runs
 * for itself -- the scavenger, and in collector builds the collector, its
 * marker and the finalizer thread -- are "helpers", and every helper obeys
 * three rules:
 *   1. it is started only when there is work for it (never at load, never at
 *      the first malloc), and ends again after it has been idle for a while;
 *   2. it never keeps a process alive that glibc would end: POSIX ends the
 *      process (as by exit(0), atexit handlers and stdio flushing included)
 *      when its last thread ends, and glibc does it in whichever thread ends
 *      last. A helper that finds no program thread left (sa_helper_orphaned)
 *      returns, so the last helper to end is that thread;
 *   3. it takes no signal meant for the program (all blocked but the ones
 *      the caller keeps), so program handlers never run on it.
 *
 * "No program thread left" is read from the kernel: /proc/self/stat gives
 * the process's task count and whether the thread-group leader is a zombie
 * (main returned through pthread_exit); the helpers count themselves between
 * sa_helper_enter and sa_helper_leave. Every race errs on "a program thread
 * is alive" (a helper counted before it runs or after it left is taken for
 * a program thread), so a wrong answer only delays the exit to the idle
 * stop of rule 1. Without /proc the answer is "alive" and rule 1 alone ends
 * the helpers.
 *
 * A fork child has none of its parent's helpers: sa_helpers_fork_child
 * counts them stopped, and each owner resets its own "running" state.
 */
#ifndef SA_HELPER_H
#define SA_HELPER_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sa_helper_kind {
    SA_HELPER_SCAVENGER,
    SA_HELPER_COLLECTOR,
    SA_HELPER_MARKER,
    SA_HELPER_FINALIZER,
    SA_HELPER_KINDS
} sa_helper_kind;

/* How often a helper asks the kernel whether program threads remain. */
#define SA_HELPER_CHECK_NS (100 * 1000000ull)

/* Starts fn(arg) on a new thread with every signal blocked except those in
 * keep (NULL: none); stack 0 is the default size. joinable NULL: detached;
 * else the thread is joinable and its id stored there. Returns 0 or the
 * error of pthread_create. Creating a thread allocates: call it holding no
 * allocator lock and outside collector critical sections. */
__attribute__((visibility("hidden"))) int sa_helper_start(sa_helper_kind kind,
                                                          void *(*fn)(void *), void *arg,
                                                          size_t stack, const sigset_t *keep,
                                                          pthread_t *joinable);
/* First and last thing a helper does. orphaned: it ends because no program
 * thread is left; it then takes back the signal mask the program started
 * with, since glibc may run exit() (atexit handlers) on it. */
__attribute__((visibility("hidden"))) void sa_helper_enter(void);
__attribute__((visibility("hidden"))) void sa_helper_leave(sa_helper_kind kind, bool orphaned);
/* True when only helpers (and the zombie of a leader that called
 * pthread_exit) are left. Asks the kernel at most once per
 * SA_HELPER_CHECK_NS per *last (the caller's timestamp, 0 at first). */
__attribute__((visibility("hidden"))) bool sa_helper_orphaned(uint64_t *last);
/* Counts for the report: helpers started and stopped, by kind. */
__attribute__((visibility("hidden"))) void sa_helpers_read(uint64_t started[SA_HELPER_KINDS],
                                                           uint64_t stopped[SA_HELPER_KINDS]);
__attribute__((visibility("hidden"))) const char *sa_helper_name(sa_helper_kind kind);
/* From initialisation: remembers the signal mask of the process. */
__attribute__((visibility("hidden"))) void sa_helpers_init(void);
__attribute__((visibility("hidden"))) void sa_helpers_fork_child(void);

/* An idle helper's wait: returns true when sem was posted, false after ns
 * (or an interruption) without a post. */
__attribute__((visibility("hidden"))) bool sa_helper_wait(sem_t *sem, uint64_t ns);

/* Monotonic clock in nanoseconds. */
__attribute__((visibility("hidden"))) uint64_t sa_os_nanotime(void);

#endif /* SA_HELPER_H */

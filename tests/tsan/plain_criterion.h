/*
 * plain_criterion.h — the few Criterion macros the collector suites use,
 * for building them as plain programs (Criterion cannot start under TSan:
 * "Could not initialize inheritable arena"). Each Test() registers itself;
 * main() runs every test in a process of its own (this program exec'd with
 * the test's index), one at a time, and fails when one fails. Compiled in only with SA_TEST_PLAIN (tests/gc/CMakeLists.txt,
 * SPANALLOC_SANITIZE=thread trees); the suites include it in place of
 * <criterion/criterion.h>.
 */
#ifndef SA_PLAIN_CRITERION_H
#define SA_PLAIN_CRITERION_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The Test() options honoured: .signal (the test must die of it); .timeout
 * is accepted and ignored (ctest's timeout bounds the program). */
typedef struct {
    int signal;
    double timeout;
} sa_plain_opts;

typedef struct {
    const char *name;
    void (*fn)(void);
    int signal;
} sa_plain_test;

#define SA_PLAIN_MAX 64
static sa_plain_test sa_plain_tests[SA_PLAIN_MAX];
static int sa_plain_ntests;

static inline void sa_plain_register(const char *name, void (*fn)(void), int signal)
{
    if (sa_plain_ntests == SA_PLAIN_MAX) {
        fprintf(stderr, "plain_criterion.h: more than %d tests\n", SA_PLAIN_MAX);
        abort();
    }
    sa_plain_tests[sa_plain_ntests++] = (sa_plain_test){name, fn, signal};
}

/* Test(suite, name, options...) */
#define Test(suite, name, ...)                                                 \
    static void suite##_##name(void);                                          \
    __attribute__((constructor)) static void suite##_##name##_reg(void)        \
    {                                                                          \
        static const sa_plain_opts o = {__VA_ARGS__};                          \
        (void)o.timeout;                                                       \
        sa_plain_register(#suite "::" #name, suite##_##name, o.signal);        \
    }                                                                          \
    static void suite##_##name(void)

#define cr_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                          \
            fprintf(stderr, "  " __VA_ARGS__);                                 \
            fputc('\n', stderr);                                               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)

/* Runs test i in a fresh process: this program again, exec'd with the
 * test's index (not a bare fork: the allocator's fork handlers are tested
 * by the suites that fork on purpose, not by the harness). */
static int sa_plain_run(const char *self, int i)
{
    char arg[16];
    snprintf(arg, sizeof arg, "%d", i);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        execl(self, self, "--index", arg, (char *)NULL);
        perror("exec");
        _exit(127);
    }
    int st;
    return waitpid(pid, &st, 0) == pid ? st : -1;
}

/* plain-prog                 runs every test
 * plain-prog SUITE::NAME...  runs those tests only
 * plain-prog --index I       runs test I in this process (used by the above) */
int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--index") == 0) {
        int i = atoi(argv[2]);
        if (i < 0 || i >= sa_plain_ntests)
            return 2;
        sa_plain_tests[i].fn();
        return 0;
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < sa_plain_ntests; i++) {
        bool wanted = argc == 1;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], sa_plain_tests[i].name) == 0;
        if (!wanted)
            continue;
        int st = sa_plain_run("/proc/self/exe", i);
        int want = sa_plain_tests[i].signal;
        int ok = st != -1 && (want ? WIFSIGNALED(st) && WTERMSIG(st) == want
                                   : WIFEXITED(st) && WEXITSTATUS(st) == 0);
        printf("[%s] %s (status %#x)\n", ok ? "PASS" : "FAIL", sa_plain_tests[i].name, st);
        failed += !ok;
        ran++;
    }
    printf("%d of %d tests failed\n", failed, ran);
    return failed != 0 || ran != (argc == 1 ? sa_plain_ntests : argc - 1);
}

#endif /* SA_PLAIN_CRITERION_H */

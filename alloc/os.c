/*
 * os.c — the OS layer: every system call spanalloc makes goes through here
 * (mmap, munmap, madvise, write, abort), so allocator logic never talks to
 * the kernel directly and fault injection (issue 7) has one place to hook.
 *
 * Also home of the two things every tier needs and nothing should
 * re-implement: the fixed-size metadata allocator (fixalloc, like Go's
 * mfixalloc: carves structs out of 64 KiB OS chunks, never returns them), and
 * the one-line error report; and of the helper threads' life (helper.h):
 * starting them, counting them, asking the kernel whether the program still
 * has a thread of its own.
 *
 * Nothing here allocates through malloc, takes a lock, or uses stdio: these
 * functions run during bootstrap, inside fork handlers and while aborting.
 * The one exception is sa_helper_start (pthread_create allocates), called
 * only from slow paths that hold no allocator lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"
#include "internal.h"

/* ---- fault injection (SPANALLOC_DEBUG builds) ----------------------------
 * SPANALLOC=fail_os_after=N makes the N-th mmap or madvise from now fail
 * (ENOMEM), once: the fault-injection tests sweep N over a workload and
 * check that every entry point fails cleanly and recovers. */
#ifndef SA_DEBUG
#define SA_DEBUG 0
#endif
static uint64_t os_calls, os_fail_at; /* atomics; 0 = no fault armed */

void sa_os_fail_after(uint64_t n)
{
    sa_store_relaxed(&os_calls, 0);
    sa_store_relaxed(&os_fail_at, n);
}

static bool fault_now(void)
{
    if (!SA_DEBUG || sa_load_relaxed(&os_fail_at) == 0)
        return false;
    uint64_t n = __atomic_add_fetch(&os_calls, 1, __ATOMIC_RELAXED);
    if (n != sa_load_relaxed(&os_fail_at))
        return false;
    sa_store_relaxed(&os_fail_at, 0);
    errno = ENOMEM;
    return true;
}

static void *os_mmap(void *hint, size_t bytes, int prot, int flags)
{
    if (fault_now())
        return MAP_FAILED;
    return mmap(hint, bytes, prot, flags, -1, 0);
}

static int os_madvise(void *p, size_t bytes, int advice)
{
    if (fault_now())
        return -1;
    return madvise(p, bytes, advice);
}

/* Reserves bytes of address space aligned to align (a power of two >= the
 * system page), readable and writable, backed lazily by the kernel. Tries
 * hint first so the heap stays contiguous. Returns NULL on failure. */
void *sa_os_reserve(size_t bytes, size_t align, void *hint)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    void *p = os_mmap(hint, bytes, PROT_READ | PROT_WRITE, flags);
    if (p == MAP_FAILED)
        return NULL;
    if (((uintptr_t)p & (align - 1)) == 0)
        return p;
    munmap(p, bytes);
    if (bytes + align < bytes)
        return NULL;
    size_t over = bytes + align;
    char *q = os_mmap(NULL, over, PROT_READ | PROT_WRITE, flags);
    if (q == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)q + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)q;
    size_t tail = over - head - bytes;
    if (head)
        munmap(q, head);
    if (tail)
        munmap((char *)start + bytes, tail);
    return (void *)start;
}

/* Zeroed memory for metadata; NULL on failure. */
void *sa_os_alloc_meta(size_t bytes)
{
    void *p = os_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    return p == MAP_FAILED ? NULL : p;
}

void sa_os_unmap(void *p, size_t bytes)
{
    munmap(p, bytes);
}

#ifndef SA_MADVISE_FREE
#define SA_MADVISE_FREE 0
#endif

int sa_os_release(void *p, size_t bytes)
{
    int saved = errno;
    int result = SA_RELEASED_ZEROED;
#if SA_MADVISE_FREE
    static int free_unsupported; /* kernels before 4.5 */
    if (!sa_load_relaxed(&free_unsupported)) {
        if (os_madvise(p, bytes, MADV_FREE) == 0) {
            errno = saved;
            return SA_RELEASED_DIRTY;
        }
        sa_store_relaxed(&free_unsupported, 1);
    }
#endif
    if (os_madvise(p, bytes, MADV_DONTNEED) != 0)
        result = SA_RELEASE_FAILED; /* still backed, contents unchanged */
    errno = saved;
    return result;
}

size_t sa_os_page_size(void)
{
    static size_t cached;
    if (!cached)
        cached = (size_t)sysconf(_SC_PAGESIZE);
    return cached;
}

void sa_os_write_stderr(const char *buf, size_t len)
{
    int saved = errno;
    while (len > 0) {
        ssize_t n = write(2, buf, len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        buf += n;
        len -= (size_t)n;
    }
    errno = saved;
}

void sa_os_abort(void)
{
    abort();
}

uint64_t sa_os_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- helper threads (helper.h) ------------------------------------------- */

static uint64_t helpers_started[SA_HELPER_KINDS]; /* atomics */
static uint64_t helpers_stopped[SA_HELPER_KINDS]; /* atomics */
static int helpers_running; /* atomic: between sa_helper_enter and sa_helper_leave */
static sigset_t program_mask; /* the mask of the thread that initialised us */

void sa_helpers_init(void)
{
    pthread_sigmask(SIG_SETMASK, NULL, &program_mask);
}

int sa_helper_start(sa_helper_kind kind, void *(*fn)(void *), void *arg, size_t stack,
                    const sigset_t *keep, pthread_t *joinable)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, joinable ? PTHREAD_CREATE_JOINABLE
                                                : PTHREAD_CREATE_DETACHED);
    if (stack)
        pthread_attr_setstacksize(&attr, stack);
    sigset_t mask, old;
    sigfillset(&mask);
    for (int sig = 1; keep && sig < NSIG; sig++)
        if (sigismember(keep, sig) == 1)
            sigdelset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, &old); /* the new thread inherits it */
    /* counted before it exists, so stopped never overtakes started */
    __atomic_fetch_add(&helpers_started[kind], 1, __ATOMIC_SEQ_CST);
    pthread_t t;
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        __atomic_fetch_sub(&helpers_started[kind], 1, __ATOMIC_SEQ_CST);
    else if (joinable)
        *joinable = t;
    return rc;
}

void sa_helper_enter(void)
{
    __atomic_fetch_add(&helpers_running, 1, __ATOMIC_SEQ_CST);
}

void sa_helper_leave(sa_helper_kind kind, bool orphaned)
{
    __atomic_fetch_add(&helpers_stopped[kind], 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_sub(&helpers_running, 1, __ATOMIC_SEQ_CST);
    if (orphaned)
        pthread_sigmask(SIG_SETMASK, &program_mask, NULL);
}

bool sa_helper_wait(sem_t *sem, uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t end = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(end / 1000000000ull);
    ts.tv_nsec = (long)(end % 1000000000ull);
    return sem_clockwait(sem, CLOCK_MONOTONIC, &ts) == 0;
}

/* Reads /proc/self/stat: the leader's state (field 3) and the number of
 * tasks (field 20), which counts a zombie leader until the process ends.
 * Returns the number of live tasks, or -1 when /proc cannot tell. */
static long live_tasks(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    char state = p[2]; /* ") S 1 ..." */
    p += 2;
    for (int field = 3; field < 20; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    long tasks = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++)
        tasks = tasks * 10 + (*p - '0');
    return state == 'Z' || state == 'X' ? tasks - 1 : tasks;
}

bool sa_helper_orphaned(uint64_t *last)
{
    uint64_t now = sa_os_nanotime();
    if (*last && now - *last < SA_HELPER_CHECK_NS)
        return false;
    *last = now;
    int saved = errno;
    long tasks = live_tasks();
    errno = saved;
    return tasks >= 0 && tasks <= sa_load_sc(&helpers_running);
}

void sa_helpers_read(uint64_t started[SA_HELPER_KINDS], uint64_t stopped[SA_HELPER_KINDS])
{
    for (int k = 0; k < SA_HELPER_KINDS; k++) {
        /* stopped first: a reader never sees more stopped than started */
        stopped[k] = sa_load_sc(&helpers_stopped[k]);
        started[k] = sa_load_sc(&helpers_started[k]);
    }
}

const char *sa_helper_name(sa_helper_kind kind)
{
    static const char *const names[SA_HELPER_KINDS] = {"scavenger", "collector", "marker",
                                                       "finalizer"};
    return (unsigned)kind < SA_HELPER_KINDS ? names[kind] : "?";
}

/* Only the forking thread lives on in the child: none of the helpers. */
void sa_helpers_fork_child(void)
{
    for (int k = 0; k < SA_HELPER_KINDS; k++)
        sa_store_relaxed(&helpers_stopped[k], sa_load_relaxed(&helpers_started[k]));
    sa_store_relaxed(&helpers_running, 0);
}

/* ---- fixalloc ------------------------------------------------------------- */

#define SA_FIXALLOC_CHUNK (64 * 1024)

void *sa_fixalloc_alloc(sa_fixalloc *f)
{
    if (f->freelist) {
        void *p = f->freelist;
        f->freelist = *(void **)p;
        memset(p, 0, f->zero ? f->zero : f->size);
        f->inuse += f->size;
        return p;
    }
    if (f->left < f->size) {
        size_t bytes = f->size > SA_FIXALLOC_CHUNK ? f->size : SA_FIXALLOC_CHUNK;
        char *c = sa_os_alloc_meta(bytes);
        if (!c)
            return NULL;
        f->chunk = c;
        f->left = bytes;
        f->sys += bytes;
    }
    void *p = f->chunk;
    f->chunk += f->size;
    f->left -= f->size;
    f->inuse += f->size;
    return p;
}

void sa_fixalloc_free(sa_fixalloc *f, void *p)
{
    *(void **)p = f->freelist;
    f->freelist = p;
    f->inuse -= f->size;
}

/* ---- reports -------------------------------------------------------------- */

static size_t put_str(char *buf, size_t pos, size_t cap, const char *s)
{
    while (*s && pos + 1 < cap)
        buf[pos++] = *s++;
    return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t cap, unsigned long long v, unsigned base)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n > 0 && pos + 1 < cap)
        buf[pos++] = tmp[--n];
    return pos;
}

/* A printf subset that never allocates: %s %d %u %zu %x %zx %p %%, with an
 * optional '-' flag and field width. */
size_t sa_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t pos = 0;
    for (const char *f = fmt; *f && pos + 1 < cap; f++) {
        if (*f != '%') {
            buf[pos++] = *f;
            continue;
        }
        f++;
        bool left = false;
        if (*f == '-') {
            left = true;
            f++;
        }
        size_t width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (size_t)(*f++ - '0');
        while (*f == 'z' || *f == 'l')
            f++;
        char field[64];
        size_t n = 0;
        switch (*f) {
        case 's': n = put_str(field, 0, sizeof field, va_arg(ap, const char *)); break;
        case 'u': n = put_uint(field, 0, sizeof field, va_arg(ap, size_t), 10); break;
        case 'x': n = put_uint(field, 0, sizeof field, va_arg(ap, size_t), 16); break;
        case 'd': {
            long long v = va_arg(ap, int);
            if (v < 0) {
                field[n++] = '-';
                v = -v;
            }
            n = put_uint(field, n, sizeof field, (unsigned long long)v, 10);
            break;
        }
        case 'p':
            n = put_str(field, 0, sizeof field, "0x");
            n = put_uint(field, n, sizeof field, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%': field[n++] = '%'; break;
        default: continue;
        }
        field[n] = '\0';
        size_t pad = width > n ? width - n : 0;
        if (!left)
            while (pad > 0 && pos + 1 < cap) {
                buf[pos++] = ' ';
                pad--;
            }
        pos = put_str(buf, pos, cap, field);
        while (pad > 0 && pos + 1 < cap) {
            buf[pos++] = ' ';
            pad--;
        }
    }
    buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

size_t sa_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = sa_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void sa_report_invalid(const char *call, const void *p, const char *reason)
{
    char buf[256];
    size_t n = sa_format(buf, sizeof buf - 1, "spanalloc: %s(): invalid pointer %p (%s)\n",
                         call, p, reason);
    sa_os_write_stderr(buf, n);
    sa_os_abort();
}

void sa_report_fatal(const char *msg)
{
    char buf[256];
    size_t n = sa_format(buf, sizeof buf - 1, "spanalloc: fatal: %s\n", msg);
    sa_os_write_stderr(buf, n);
    sa_os_abort();
}

/*
 * os.c — the OS layer: every system call spanalloc makes goes through here
 * (mmap, munmap, madvise, write, abort), so allocator logic never talks to
 * the kernel directly and fault injection (issue 7) has one place to hook.
 *
 * Also home of the two things every tier needs and nothing should
 * re-implement: the fixed-size metadata allocator (fixalloc, like Go's
 * mfixalloc: carves structs out of 64 KiB OS chunks, never returns them), and
 * the one-line error report.
 *
 * Nothing here allocates through malloc, takes a lock, or uses stdio: these
 * functions run during bootstrap, inside fork handlers and while aborting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* ---- fixalloc ------------------------------------------------------------- */

#define SA_FIXALLOC_CHUNK (64 * 1024)

void *sa_fixalloc_alloc(sa_fixalloc *f)
{
    if (f->freelist) {
        void *p = f->freelist;
        f->freelist = *(void **)p;
        memset(p, 0, f->size);
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

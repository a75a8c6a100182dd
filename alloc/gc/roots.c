/*
 * roots.c — what marking starts from: registered root ranges and the
 * stacks (with spilled registers) of the registered threads.
 *
 * Owns: the table of root ranges added with sa_gc_add_root. Data and BSS
 * segments are not scanned automatically (Boehm's experience: scanning every
 * data segment retains garbage, and libraries' globals are rarely roots);
 * a program registers the globals that hold managed pointers.
 *
 * Both kinds are scanned once per cycle, with the world stopped, at the
 * start of the cycle (the snapshot the deletion barrier preserves, mark.c).
 * Stores into root ranges need no barrier: roots are never edges the
 * snapshot depends on after they are scanned.
 *
 * Locking: roots_lock guards the table; registered threads take it inside
 * a critical section; the collector takes it with the world stopped.
 */
#include <string.h>

#include "gc_internal.h"

typedef struct root_range {
    uintptr_t lo, hi;
} root_range;

static pthread_mutex_t roots_lock = PTHREAD_MUTEX_INITIALIZER;
static root_range *roots;     /* roots_lock */
static size_t nroots, roots_cap, roots_bytes_mapped;

void sa_gc_roots_lock(void)
{
    pthread_mutex_lock(&roots_lock);
}

void sa_gc_roots_unlock(void)
{
    pthread_mutex_unlock(&roots_lock);
}

void sa_gc_roots_fork_child(void)
{
    pthread_mutex_init(&roots_lock, NULL);
}

/* Doubles the table; roots_lock held. */
static bool grow(void)
{
    size_t cap = roots_cap ? roots_cap * 2 : 256;
    size_t bytes = cap * sizeof(root_range);
    root_range *r = sa_os_alloc_meta(bytes);
    if (!r)
        return false;
    if (nroots)
        memcpy(r, roots, nroots * sizeof(root_range));
    if (roots)
        sa_os_unmap(roots, roots_bytes_mapped);
    roots = r;
    roots_cap = cap;
    roots_bytes_mapped = bytes;
    return true;
}

SA_API int sa_gc_add_root(void *addr, size_t len)
{
    if (!addr || len == 0)
        return -1;
    sa_gcthread *t = sa_gc_enter_self();
    pthread_mutex_lock(&roots_lock);
    int r = 0;
    if (nroots == roots_cap && !grow()) {
        r = -1;
    } else {
        roots[nroots].lo = (uintptr_t)addr;
        roots[nroots].hi = (uintptr_t)addr + len;
        nroots++;
    }
    pthread_mutex_unlock(&roots_lock);
    sa_gc_leave_self(t);
    return r;
}

SA_API int sa_gc_remove_root(void *addr)
{
    sa_gcthread *t = sa_gc_enter_self();
    int r = -1;
    pthread_mutex_lock(&roots_lock);
    for (size_t i = 0; i < nroots; i++) {
        if (roots[i].lo == (uintptr_t)addr) {
            roots[i] = roots[--nroots];
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&roots_lock);
    sa_gc_leave_self(t);
    return r;
}

/* World stopped. */
void sa_gc_scan_roots(sa_gcwork *w, uint64_t *bytes)
{
    pthread_mutex_lock(&roots_lock);
    for (size_t i = 0; i < nroots; i++) {
        sa_gc_scan_range(roots[i].lo, roots[i].hi, w, true);
        *bytes += roots[i].hi - roots[i].lo;
    }
    pthread_mutex_unlock(&roots_lock);
}

typedef struct stack_scan {
    sa_gcwork *w;
    uint64_t bytes;
} stack_scan;

static void scan_stack(sa_gcthread *t, void *arg)
{
    stack_scan *ss = arg;
    uintptr_t lo = t->stop_sp, hi = t->stack_hi;
    if (lo && lo < hi) {
        sa_gc_scan_range(lo, hi, ss->w, true);
        ss->bytes += hi - lo;
    }
}

/* World stopped: every registered thread's stack from where it stopped. */
void sa_gc_scan_stacks(sa_gcwork *w, uint64_t *bytes)
{
    stack_scan ss = {.w = w};
    sa_gc_each_thread(scan_stack, &ss);
    *bytes += ss.bytes;
}

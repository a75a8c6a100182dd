/*
 * init.c — bringing the allocator up, and fork.
 *
 * The library must work from the very first allocation of the process,
 * before main and before (or while) libc initialises. So initialisation
 * never calls dlsym, stdio or anything that allocates before the heap is
 * usable: the heap's state is static (the arena index is BSS, locks are
 * statically initialised), and init only parses the options and registers
 * the thread-exit key and the fork handlers.
 *
 * pthread_atfork itself allocates (glibc keeps its handler list in malloc'd
 * memory). That recursion is served: by the time it is called the heap is
 * usable, and the initialising thread (init_owner) allocates through the
 * mcentral without a cache. Other threads wait on init_lock, so no pointer
 * reaches the program before the fork handlers are registered.
 *
 * Fork: prepare takes every allocator lock in the fixed order of
 * internal.h (mcache list, mcentrals by span class, mheap, profiler:
 * sa_lock_all, which sa_heap_check uses too); the parent releases them; the
 * child re-initialises them and returns the orphaned caches of the threads
 * that did not survive the fork (mcache.c). The child has none of the
 * parent's helper threads (helper.h): it counts them stopped and clears the
 * scavenger's claim, so a helper half-way through pthread_create in the
 * parent leaves nothing half-started behind; the child starts its own when
 * it has work for one.
 *
 * No thread is started here, at load or at the first allocation: helpers
 * start when they have work (scavenger.c, alloc/gc/gc.c).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "helper.h"
#include "internal.h"

SA_HIDDEN pthread_key_t sa_thread_key;

enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2 };
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_state; /* atomic */
static pthread_t init_owner;

void sa_lock_all(void)
{
    sa_mcache_fork_prepare();
    sa_mcentral_fork_prepare();
    sa_mheap_fork_prepare();
    sa_prof_fork_prepare();
}

void sa_unlock_all(void)
{
    sa_prof_fork_parent();
    sa_mheap_fork_parent();
    sa_mcentral_fork_parent();
    sa_mcache_fork_parent();
}

static void fork_child(void)
{
    sa_prof_fork_child();
    sa_mheap_fork_child();
    sa_mcentral_fork_child();
    sa_mcache_fork_child();
    sa_helpers_fork_child();
    sa_scavenger_fork_child();
}

bool sa_is_ready(void)
{
    return sa_load_acquire(&init_state) == INIT_DONE;
}

bool sa_init_in_progress_here(void)
{
    return sa_load_acquire(&init_state) == INIT_RUNNING &&
           pthread_equal(init_owner, pthread_self());
}

void sa_ensure_init(void)
{
    if (SA_LIKELY(sa_load_acquire(&init_state) == INIT_DONE))
        return;
    if (sa_init_in_progress_here())
        return; /* recursion from pthread_atfork & co: heap is usable */
    pthread_mutex_lock(&init_lock);
    if (sa_load_acquire(&init_state) == INIT_NONE) {
        init_owner = pthread_self();
        sa_mheap_init();
        sa_mcentral_init_all();
        sa_store_release(&init_state, INIT_RUNNING);
        sa_options_init();
        sa_helpers_init();
        sa_scavenger_init_options();
        if (pthread_key_create(&sa_thread_key, sa_thread_exit) != 0)
            sa_report_fatal("cannot create the thread-exit key");
        if (pthread_atfork(sa_lock_all, sa_unlock_all, fork_child) != 0)
            sa_report_fatal("cannot register the fork handlers");
        sa_store_release(&init_state, INIT_DONE);
    }
    pthread_mutex_unlock(&init_lock);
}

/* Initialise at load time too, so the fork handlers exist even in a program
 * that forks before it ever allocates. */
__attribute__((constructor)) static void sa_init_at_load(void)
{
    sa_ensure_init();
}

/*
 * track.h — hooks that tell memcheck about our blocks (SPANALLOC_VALGRIND).
 *
 * With the option off every hook is an empty statement, so the fast path is
 * unchanged. With it on, blocks are announced with MALLOCLIKE/FREELIKE and
 * span memory that holds no live block is NOACCESS, so memcheck reports
 * use-after-free, overflows past the usable size and leaks in programs that
 * use spanalloc. Blocks are announced with their usable size: a program may
 * use all of malloc_usable_size(), and realloc copies that much.
 */
#ifndef SA_TRACK_H
#define SA_TRACK_H

#ifdef SPANALLOC_VALGRIND
#include <valgrind/memcheck.h>
#define SA_TRACK_MALLOC(p, size, zeroed) VALGRIND_MALLOCLIKE_BLOCK((p), (size), 0, (zeroed))
#define SA_TRACK_FREE(p) VALGRIND_FREELIKE_BLOCK((p), 0)
#define SA_TRACK_RESIZE(p, oldsize, newsize) VALGRIND_RESIZEINPLACE_BLOCK((p), (oldsize), (newsize), 0)
#define SA_TRACK_NOACCESS(p, size) VALGRIND_MAKE_MEM_NOACCESS((p), (size))
#define SA_TRACK_DEFINED(p, size) VALGRIND_MAKE_MEM_DEFINED((p), (size))
#define SA_RUNNING_ON_VALGRIND RUNNING_ON_VALGRIND
#else
#define SA_TRACK_MALLOC(p, size, zeroed) ((void)0)
#define SA_TRACK_FREE(p) ((void)0)
#define SA_TRACK_RESIZE(p, oldsize, newsize) ((void)0)
#define SA_TRACK_NOACCESS(p, size) ((void)0)
#define SA_TRACK_DEFINED(p, size) ((void)0)
#define SA_RUNNING_ON_VALGRIND 0
#endif

#endif /* SA_TRACK_H */

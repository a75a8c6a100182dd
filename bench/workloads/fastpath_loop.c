/*
 * fastpath_loop — N malloc+free pairs of one size, nothing else.
 *
 *   fastpath_loop [-b BYTES] [-n PAIRS] [-B BATCH] [-s SCALE]
 *
 * The smallest program that exercises an allocator's fast path: used by
 * `tools/bench.sh --instructions`, which runs it under callgrind twice (N1 and
 * N2 pairs) and divides the difference in instructions by N2 - N1, so process
 * start-up and allocator initialisation cancel out. Run on its own it prints
 * ns per pair. Defaults: 64 bytes, 20M × SCALE pairs, BATCH 1.
 *
 * With -B BATCH > 1 each round makes BATCH mallocs and then frees the BATCH
 * blocks in allocation order (PAIRS is rounded up to whole rounds): the batch
 * shape of issue 10, where a free no longer finds its block in the span the
 * thread allocates from. The pointer array is allocated before the loop.
 *
 * Built with -fno-builtin-malloc/-free, and the pointer goes through an empty
 * asm statement, so the compiler cannot remove the pairs.
 */
#include "wl_common.h"

#define WORKLOAD "fastpath_loop"

int main(int argc, char **argv) {
    size_t bytes = 64;
    uint64_t pairs = 0, batch = 1;
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "-b") == 0) {
            bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
            pairs = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-B") == 0) {
            batch = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-s") == 0) {
            scale = strtod(argv[++i], NULL);
        } else {
            fprintf(stderr, "usage: %s [-b BYTES] [-n PAIRS] [-B BATCH] [-s SCALE]\n", argv[0]);
            return 2;
        }
    }
    if (batch == 0 || batch > 1000000) {
        fprintf(stderr, WORKLOAD ": batch must be 1..1000000\n");
        return 2;
    }
    if (pairs == 0) pairs = wl_scaled(20000000, scale > 0 ? scale : 1.0, 1);
    pairs = (pairs + batch - 1) / batch * batch;
    void **ptrs = batch > 1 ? wl_xmalloc(WORKLOAD, sizeof(void *) * batch) : NULL;

    /* one pair outside the loop: initialisation is not part of the loop */
    void *warm = malloc(bytes);
    if (!warm) return 4;
    memset(warm, 0x5a, bytes ? 1 : 0);
    free(warm);

    double t0 = wl_now();
    if (batch == 1) {
        for (uint64_t i = 0; i < pairs; i++) {
            void *p = malloc(bytes);
            __asm__ volatile("" : : "r"(p) : "memory");
            if (__builtin_expect(p == NULL, 0)) {
                fprintf(stderr, WORKLOAD ": malloc(%zu) returned NULL\n", bytes);
                return 4;
            }
            free(p);
        }
    } else {
        for (uint64_t done = 0; done < pairs; done += batch) {
            for (uint64_t i = 0; i < batch; i++) {
                void *p = malloc(bytes);
                if (__builtin_expect(p == NULL, 0)) {
                    fprintf(stderr, WORKLOAD ": malloc(%zu) returned NULL\n", bytes);
                    return 4;
                }
                ptrs[i] = p;
            }
            __asm__ volatile("" : : "r"(ptrs) : "memory");
            for (uint64_t i = 0; i < batch; i++) free(ptrs[i]);
        }
    }
    double secs = wl_now() - t0;
    free(ptrs);
    wl_args a = {scale, 1, NULL};
    char extra[128];
    snprintf(extra, sizeof extra, " bytes=%zu batch=%llu ns_per_pair=%.2f", bytes, (unsigned long long)batch,
             secs * 1e9 / (double)pairs);
    wl_result(WORKLOAD, &a, secs, pairs, extra);
    return 0;
}

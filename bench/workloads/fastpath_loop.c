/*
 * fastpath_loop — N malloc+free pairs of one size, nothing else.
 *
 *   fastpath_loop [-b BYTES] [-n PAIRS] [-s SCALE]
 *
 * The smallest program that exercises an allocator's fast path: used by
 * `tools/bench.sh --instructions`, which runs it under callgrind twice (N1 and
 * N2 pairs) and divides the difference in instructions by N2 - N1, so process
 * start-up and allocator initialisation cancel out. Run on its own it prints
 * ns per pair. Defaults: 64 bytes, 20M × SCALE pairs.
 *
 * Built with -fno-builtin-malloc/-free, and the pointer goes through an empty
 * asm statement, so the compiler cannot remove the pairs.
 */
#include "wl_common.h"

#define WORKLOAD "fastpath_loop"

int main(int argc, char **argv) {
    size_t bytes = 64;
    uint64_t pairs = 0;
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "-b") == 0) {
            bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
            pairs = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-s") == 0) {
            scale = strtod(argv[++i], NULL);
        } else {
            fprintf(stderr, "usage: %s [-b BYTES] [-n PAIRS] [-s SCALE]\n", argv[0]);
            return 2;
        }
    }
    if (pairs == 0) pairs = wl_scaled(20000000, scale > 0 ? scale : 1.0, 1);

    /* one pair outside the loop: initialisation is not part of the loop */
    void *warm = malloc(bytes);
    if (!warm) return 4;
    memset(warm, 0x5a, bytes ? 1 : 0);
    free(warm);

    double t0 = wl_now();
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = malloc(bytes);
        __asm__ volatile("" : : "r"(p) : "memory");
        if (__builtin_expect(p == NULL, 0)) {
            fprintf(stderr, WORKLOAD ": malloc(%zu) returned NULL\n", bytes);
            return 4;
        }
        free(p);
    }
    double secs = wl_now() - t0;
    wl_args a = {scale, 1, NULL};
    char extra[96];
    snprintf(extra, sizeof extra, " bytes=%zu ns_per_pair=%.2f", bytes, secs * 1e9 / (double)pairs);
    wl_result(WORKLOAD, &a, secs, pairs, extra);
    return 0;
}

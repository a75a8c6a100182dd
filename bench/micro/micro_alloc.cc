// micro_alloc.cc — google-benchmark microbenchmarks of the allocation calls.
//
// Built twice from this one source (bench/CMakeLists.txt):
//  - bench_micro_malloc: plain malloc/free/realloc/aligned_alloc, an ordinary
//    executable, so any allocator can be preloaded under it
//    (LD_PRELOAD=.../libjemalloc.so.2 bench_micro_malloc);
//  - bench_micro_sa (MICRO_SA defined): the prefixed sa_ API, linked against
//    spanalloc_static.
//
// Benchmarks (each at 1, 2 and 4 threads; the reference machine has 2 cores):
//  - pair/SIZE: one allocation and its free, per size class from 8 B to
//    32 KiB and for large sizes (64 KiB .. 4 MiB);
//  - batch_lifo|fifo|random/N: N 64-byte allocations, then their frees in
//    LIFO, FIFO or a fixed random order (items = allocations);
//  - realloc_growth/LIMIT: a buffer grown from 16 B by 1.5x steps to LIMIT;
//  - aligned/ALIGN/SIZE: aligned allocation and free;
//  - calloc/SIZE: zeroed allocation and free.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef MICRO_SA
#include "spanalloc.h"
#define A_MALLOC sa_malloc
#define A_FREE sa_free
#define A_REALLOC sa_realloc
#define A_CALLOC sa_calloc
#define A_ALIGNED sa_aligned_alloc
#else
#define A_MALLOC std::malloc
#define A_FREE std::free
#define A_REALLOC std::realloc
#define A_CALLOC std::calloc
#define A_ALIGNED std::aligned_alloc
#endif

namespace {

void fail(benchmark::State &state, const char *what) { state.SkipWithError(what); }

void BM_pair(benchmark::State &state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        void *p = A_MALLOC(size);
        benchmark::DoNotOptimize(p);
        if (!p) {
            fail(state, "malloc returned NULL");
            break;
        }
        A_FREE(p);
    }
    state.SetItemsProcessed(state.iterations());
}

enum Order { LIFO, FIFO, RANDOM };

template <Order order>
void BM_batch(benchmark::State &state) {
    const size_t n = static_cast<size_t>(state.range(0));
    std::vector<void *> ptrs(n);
    std::vector<uint32_t> perm(n);
    for (size_t i = 0; i < n; i++) perm[i] = static_cast<uint32_t>(i);
    uint64_t x = 0x2545F4914F6CDD1DULL + static_cast<uint64_t>(state.thread_index());
    for (size_t i = n - 1; i > 0; i--) {  // fixed random order (xorshift)
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = x % (i + 1);
        std::swap(perm[i], perm[j]);
    }
    for (auto _ : state) {
        for (size_t i = 0; i < n; i++) {
            ptrs[i] = A_MALLOC(64);
            benchmark::DoNotOptimize(ptrs[i]);
        }
        if (order == LIFO) {
            for (size_t i = n; i-- > 0;) A_FREE(ptrs[i]);
        } else if (order == FIFO) {
            for (size_t i = 0; i < n; i++) A_FREE(ptrs[i]);
        } else {
            for (size_t i = 0; i < n; i++) A_FREE(ptrs[perm[i]]);
        }
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}

void BM_realloc_growth(benchmark::State &state) {
    const size_t limit = static_cast<size_t>(state.range(0));
    int64_t steps = 0;
    for (auto _ : state) {
        size_t size = 16;
        char *p = static_cast<char *>(A_MALLOC(size));
        p[0] = 1;
        while (size < limit) {
            size += size / 2;
            char *np = static_cast<char *>(A_REALLOC(p, size));
            if (!np) {
                fail(state, "realloc returned NULL");
                A_FREE(p);
                return;
            }
            p = np;
            p[size - 1] = 1;  // use the new tail, as a growing buffer would
            steps++;
        }
        benchmark::DoNotOptimize(p);
        A_FREE(p);
    }
    state.SetItemsProcessed(steps);
}

void BM_aligned(benchmark::State &state) {
    const size_t align = static_cast<size_t>(state.range(0));
    const size_t size = static_cast<size_t>(state.range(1));
    for (auto _ : state) {
        void *p = A_ALIGNED(align, size);
        benchmark::DoNotOptimize(p);
        if (!p || (reinterpret_cast<uintptr_t>(p) & (align - 1))) {
            fail(state, "aligned allocation failed or misaligned");
            break;
        }
        A_FREE(p);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_calloc(benchmark::State &state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        void *p = A_CALLOC(1, size);
        benchmark::DoNotOptimize(p);
        if (!p) {
            fail(state, "calloc returned NULL");
            break;
        }
        A_FREE(p);
    }
    state.SetItemsProcessed(state.iterations());
}

void small_sizes(benchmark::internal::Benchmark *b) {
    for (int64_t s : {8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768}) b->Arg(s);
}

void large_sizes(benchmark::internal::Benchmark *b) {
    for (int64_t s : {65536, 262144, 1 << 20, 4 << 20}) b->Arg(s);
}

}  // namespace

BENCHMARK(BM_pair)->Name("pair")->Apply(small_sizes)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK(BM_pair)->Name("pair_large")->Apply(large_sizes)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_batch, LIFO)->Name("batch_lifo")->Arg(100)->Arg(10000)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_batch, FIFO)->Name("batch_fifo")->Arg(100)->Arg(10000)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_batch, RANDOM)->Name("batch_random")->Arg(100)->Arg(10000)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK(BM_realloc_growth)->Name("realloc_growth")->Arg(4096)->Arg(1 << 20)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK(BM_aligned)
    ->Name("aligned")
    ->Args({64, 64})
    ->Args({64, 1000})
    ->Args({4096, 4096})
    ->Args({65536, 65536})
    ->ThreadRange(1, 4)
    ->UseRealTime();
BENCHMARK(BM_calloc)->Name("calloc")->Arg(64)->Arg(4096)->Arg(1 << 20)->ThreadRange(1, 4)->UseRealTime();

BENCHMARK_MAIN();

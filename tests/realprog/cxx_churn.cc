// cxx_churn.cc — a C++ program of ours for the real-program tests: threads
// and heavy std::string / std::map / std::shared_ptr / std::vector churn, so
// operator new/delete (and the sized and aligned variants) go through the
// process malloc, with many blocks freed by a thread other than the one that
// allocated them.
//
// Producers (seeded, deterministic) keep a std::map<std::string,
// std::shared_ptr<Node>>, insert, overwrite and erase entries, grow vectors,
// and hand batches of shared_ptrs (still shared with the map, so the last
// reference may drop on either side), unique_ptr<std::string>s and
// over-aligned objects to consumer threads through a queue. Consumers check
// each item's self-check field, fold its content into an order-independent
// sum, and drop it (the cross-thread free). The output depends only on the
// seeds: it must be byte-identical whichever malloc runs underneath
// (tests/realprog/cxx.sh compares a plain run with a preloaded one).
//
// usage: cxx_churn [producers] [consumers] [rounds]
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

uint64_t fnv(const std::string &s, uint64_t h = 1469598103934665603ull)
{
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

struct Rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return next() % n; }
};

struct Node {
    std::string key, text;
    std::vector<uint32_t> nums;
    uint64_t check; // fnv(text) + sum(nums): detects a corrupted node
    Node(std::string k, std::string t, std::vector<uint32_t> n)
        : key(std::move(k)), text(std::move(t)), nums(std::move(n)), check(sum()) {}
    uint64_t sum() const
    {
        uint64_t h = fnv(text);
        for (uint32_t x : nums)
            h += x;
        return h;
    }
};

struct alignas(64) Aligned {
    uint64_t v[8];
};

struct Batch {
    std::vector<std::shared_ptr<Node>> nodes;
    std::vector<std::unique_ptr<std::string>> strings;
    std::unique_ptr<Aligned> aligned;
};

std::mutex mu;
std::condition_variable cv;
std::deque<std::unique_ptr<Batch>> queue;
int producers_left;

[[noreturn]] void die(const char *what)
{
    std::fprintf(stderr, "cxx_churn: %s\n", what);
    std::abort();
}

std::string make_text(Rng &r)
{
    // short (SSO), medium and long strings
    size_t n = r.below(10) < 6 ? r.below(15) : r.below(10) < 8 ? 16 + r.below(200) : 256 + r.below(6000);
    std::string s;
    for (size_t i = 0; i < n; i++)
        s.push_back(static_cast<char>('a' + r.below(26)));
    return s;
}

struct ProducerResult {
    size_t map_size = 0;
    uint64_t map_sum = 0;
};

void producer(int id, int rounds, ProducerResult *out)
{
    Rng r{static_cast<uint64_t>(id) * 7919 + 1};
    std::map<std::string, std::shared_ptr<Node>> m;
    for (int round = 0; round < rounds; round++) {
        auto b = std::make_unique<Batch>();
        for (int i = 0; i < 200; i++) {
            std::string key = "k" + std::to_string(r.below(3000));
            uint64_t op = r.below(10);
            if (op < 6) {
                std::vector<uint32_t> nums;
                size_t nn = r.below(64);
                for (size_t j = 0; j < nn; j++)
                    nums.push_back(static_cast<uint32_t>(r.next()));
                auto node = std::make_shared<Node>(key, make_text(r), std::move(nums));
                if (r.below(3) == 0)
                    b->nodes.push_back(node); // shared with the map
                m[key] = std::move(node);     // may drop an older node here
            } else if (op < 8) {
                auto it = m.find(key);
                if (it != m.end()) {
                    if (it->second->check != it->second->sum())
                        die("node corrupted in the producer");
                    b->nodes.push_back(std::move(it->second)); // the consumer frees it
                    m.erase(it);
                }
            } else {
                b->strings.push_back(std::make_unique<std::string>(make_text(r) + key));
            }
        }
        b->aligned = std::make_unique<Aligned>();
        for (int k = 0; k < 8; k++)
            b->aligned->v[k] = static_cast<uint64_t>(round) * 8 + k;
        {
            std::unique_lock<std::mutex> l(mu);
            cv.wait(l, [] { return queue.size() < 64; });
            queue.push_back(std::move(b));
        }
        cv.notify_all();
    }
    for (auto &kv : m) {
        if (kv.first != kv.second->key || kv.second->check != kv.second->sum())
            die("map entry corrupted at the end");
        out->map_sum += kv.second->check + fnv(kv.first);
    }
    out->map_size = m.size();
    {
        std::lock_guard<std::mutex> l(mu);
        producers_left--;
    }
    cv.notify_all();
}

struct ConsumerTotals {
    uint64_t items = 0, sum = 0;
};

void consumer(ConsumerTotals *t)
{
    for (;;) {
        std::unique_ptr<Batch> b;
        {
            std::unique_lock<std::mutex> l(mu);
            cv.wait(l, [] { return !queue.empty() || producers_left == 0; });
            if (queue.empty())
                return;
            b = std::move(queue.front());
            queue.pop_front();
        }
        cv.notify_all();
        for (auto &n : b->nodes) {
            if (n->check != n->sum())
                die("node corrupted in transit");
            t->sum += n->check;
            t->items++;
        }
        for (auto &s : b->strings) {
            t->sum += fnv(*s);
            t->items++;
        }
        if (reinterpret_cast<uintptr_t>(b->aligned.get()) % 64 != 0)
            die("over-aligned new returned a misaligned block");
        for (int k = 0; k < 8; k++)
            t->sum += b->aligned->v[k];
        t->items++;
        b.reset(); // the cross-thread frees
    }
}

} // namespace

int main(int argc, char **argv)
{
    int np = argc > 1 ? std::atoi(argv[1]) : 4;
    int nc = argc > 2 ? std::atoi(argv[2]) : 2;
    int rounds = argc > 3 ? std::atoi(argv[3]) : 400;
    producers_left = np;
    std::vector<ProducerResult> pr(np);
    std::vector<ConsumerTotals> ct(nc);
    std::vector<std::thread> ts;
    for (int i = 0; i < nc; i++)
        ts.emplace_back(consumer, &ct[i]);
    for (int i = 0; i < np; i++)
        ts.emplace_back(producer, i, rounds, &pr[i]);
    for (auto &t : ts)
        t.join();
    uint64_t items = 0, sum = 0;
    for (auto &c : ct) {
        items += c.items;
        sum += c.sum;
    }
    for (int i = 0; i < np; i++)
        std::printf("producer %d: %zu entries left, sum %016llx\n", i, pr[i].map_size,
                    static_cast<unsigned long long>(pr[i].map_sum));
    std::printf("consumed: %llu items, sum %016llx\n", static_cast<unsigned long long>(items),
                static_cast<unsigned long long>(sum));
    return 0;
}

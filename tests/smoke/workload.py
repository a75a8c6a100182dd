"""A deterministic python workload for the preload smoke test: every line
it prints must be the same with and without spanalloc."""
import hashlib
import json
import random
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

rng = random.Random(1234)

# json: nested documents, round trips
docs = []
for i in range(2000):
    docs.append({"id": i, "name": "item-%d" % i * (1 + i % 5),
                 "tags": [rng.choice("abcdefgh") * rng.randint(1, 40) for _ in range(rng.randint(0, 12))],
                 "nested": {"v": [rng.random() for _ in range(rng.randint(0, 30))]}})
blob = json.dumps(docs, sort_keys=True)
back = json.loads(blob)
assert back == docs
print("json", len(blob), hashlib.sha256(blob.encode()).hexdigest())

# re: tokenise a large generated text
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12))) for _ in range(50000)]
text = " ".join(words)
counts = {}
for m in re.finditer(r"\b([a-m]\w*?)(e|a)\w*\b", text):
    counts[m.group(1)[:3]] = counts.get(m.group(1)[:3], 0) + 1
print("re", len(counts), sum(counts.values()), sorted(counts.items())[:5])
print("re-sub", hashlib.md5(re.sub(r"[aeiou]+", lambda m: m.group(0).upper() * 2, text).encode()).hexdigest())

# sqlite3: in-memory database with an index, joins, aggregates, blobs
con = sqlite3.connect(":memory:")
con.execute("create table t(id integer primary key, grp integer, name text, payload blob)")
con.execute("create table g(grp integer primary key, label text)")
con.executemany("insert into t(grp, name, payload) values (?, ?, ?)",
                ((rng.randint(0, 99), words[i % len(words)], bytes(rng.randint(0, 2000))) for i in range(30000)))
con.executemany("insert into g values (?, ?)", ((i, "group-%03d" % i) for i in range(100)))
con.execute("create index t_name on t(name)")
rows = con.execute("select g.label, count(*), sum(length(t.payload)), max(t.name) from t join g using(grp) "
                   "group by g.label order by 2 desc, 1 limit 8").fetchall()
print("sqlite", rows)
print("sqlite-like", con.execute("select count(*) from t where name like 'ab%'").fetchone())
con.close()

# threads: work split over a pool, each building and hashing structures
def work(seed):
    r = random.Random(seed)
    data = [{"k": r.randint(0, 10**9), "s": "x" * r.randint(0, 300)} for _ in range(5000)]
    data.sort(key=lambda d: (d["k"], d["s"]))
    return hashlib.sha1(json.dumps(data).encode()).hexdigest()

with ThreadPoolExecutor(max_workers=4) as ex:
    print("threads", list(ex.map(work, range(16))))

# threads sharing a structure under a lock; objects made in one thread die in another
shared = []
lock = threading.Lock()
def producer(n):
    for i in range(n):
        with lock:
            shared.append(bytearray(i % 700))
def consumer(n):
    got = 0
    while got < n:
        with lock:
            if shared:
                shared.pop(0)
                got += 1
ts = [threading.Thread(target=producer, args=(20000,)), threading.Thread(target=consumer, args=(20000,))]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("handoff", len(shared))

# big integers and strings
f = 1
for i in range(1, 3000):
    f *= i
print("bigint", f.bit_length(), hashlib.sha256(hex(f).encode()).hexdigest()[:16])

#!/bin/sh
# sqlite3.sh — preload spanalloc into the sqlite3 shell: build a database
# from generated data and query it (joins, sorts, aggregates, an index, a
# vacuum); the output must match a plain run.
. "$(dirname "$0")/common.sh"
sq=${SA_SQLITE3:-sqlite3}
command -v "$sq" >/dev/null 2>&1 || fail "sqlite3 not found"

cat >"$work/build.sql" <<'SQL'
PRAGMA page_size = 4096;
PRAGMA cache_size = -20000;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO customer SELECT i, 'customer-' || i, 'city-' || (i * 7919 % 97) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO orders SELECT i, (i * 104729) % 5000 + 1, (i * 31337 % 100000) / 100.0,
  substr(hex(zeroblob(1 + i % 300)), 1, 1 + i % 500) FROM n;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX customer_city ON customer(city);
SQL

cat >"$work/query.sql" <<'SQL'
.mode list
SELECT count(*), round(sum(amount), 2) FROM orders;
SELECT c.city, count(*), round(sum(o.amount), 2), max(length(o.note))
  FROM orders o JOIN customer c ON c.id = o.customer
  GROUP BY c.city ORDER BY 3 DESC, 1 LIMIT 10;
SELECT name FROM customer WHERE id IN (SELECT customer FROM orders
  GROUP BY customer HAVING count(*) > 14) ORDER BY name LIMIT 20;
SELECT group_concat(id, ',') FROM (SELECT id FROM orders ORDER BY note DESC, id LIMIT 50);
SELECT length(group_concat(note, '')) FROM orders WHERE amount > 500;
WITH RECURSIVE f(a, b, k) AS (SELECT 0, 1, 0 UNION ALL SELECT b, a + b, k + 1 FROM f WHERE k < 80)
SELECT max(a) FROM f;
UPDATE orders SET note = upper(note) WHERE id % 3 = 0;
DELETE FROM orders WHERE id % 5 = 0;
VACUUM;
SELECT count(*), sum(length(note)) FROM orders;
PRAGMA integrity_check;
SQL

# build: plainly and preloaded; the two databases must hold the same data
"$sq" "$work/plain.db" <"$work/build.sql" || fail "plain build failed"
SPANALLOC=stats=1 "$SPANALLOC_RUN" "$sq" "$work/sa.db" <"$work/build.sql" 2>"$work/build.err" \
  || { cat "$work/build.err" >&2; fail "build with spanalloc failed"; }
grep -q '^spanalloc: stats:.*mallocs=' "$work/build.err" || fail "no stats line from the preloaded build"
"$sq" "$work/plain.db" .dump >"$work/plain.dump"
"$sq" "$work/sa.db" .dump >"$work/sa.dump"
cmp -s "$work/plain.dump" "$work/sa.dump" || fail "databases built with and without spanalloc differ"

# queries (they modify the database): each run starts from a fresh copy.
# sh is preloaded too but execs sqlite3, so only sqlite3 prints stats.
before_run() { cp "$work/plain.db" "$work/q.db"; }
MIN_MALLOCS=10000 run_both sqlite3-query sh -c 'exec "$0" "$1" < "$2"' "$sq" "$work/q.db" "$work/query.sql"

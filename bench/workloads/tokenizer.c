/*
 * tokenizer — a real-world style, string-heavy program: read lines, split
 * them into words, count the words in a hash table, keep a window of recent
 * records, prune rare words as it goes, merge the per-thread tables at the
 * end.
 *
 * Each of THREADS threads handles its share of 300k × SCALE generated lines
 * (5–40 words drawn with a skewed distribution from a 50k-word vocabulary,
 * like natural text). Per line it:
 *  - builds the line in a buffer grown by realloc (as getline does);
 *  - copies every token into its own malloc'd string (strndup-style) and
 *    lower-cases it; a word already in the table is counted and its copy
 *    freed, a new word becomes a table node that keeps the copy;
 *  - keeps a record (a malloc'd struct plus a normalized copy of the line) in
 *    a window of the last 2000 lines, freeing the record that falls out;
 *  - grows its hash table by rehashing into a new bucket array;
 *  - every 4096 lines removes the words seen once (short-lived keys).
 * At the end the main thread moves every node of the per-thread tables into
 * one global table and frees them all, so with several threads most of the
 * final frees are cross-thread.
 *
 * Self-check: every key is compared with the vocabulary word it came from,
 * and the counts (kept plus pruned) must add up to the tokens seen.
 */
#include "wl_common.h"

#define WORKLOAD "tokenizer"
#define VOCAB 50000
#define WINDOW 2000
#define PRUNE_EVERY 4096

typedef struct node {
    struct node *next;
    char *key;
    uint64_t hash;
    uint32_t word; /* vocabulary index, to verify the key */
    uint64_t count;
} node;

typedef struct table {
    node **buckets;
    size_t nbuckets; /* power of two */
    size_t n;
} table;

typedef struct record {
    uint64_t line;
    size_t ntokens;
    char *text; /* the line's words, lower-cased, single-spaced */
} record;

typedef struct worker {
    int index;
    uint64_t lines;
    uint64_t tokens;
    uint64_t pruned; /* counts removed by pruning */
    table t;
    wl_team *team;
} worker;

static char **vocab; /* read-only after setup: capitalised words */

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void table_init(table *t, size_t nbuckets) {
    t->nbuckets = nbuckets;
    t->n = 0;
    t->buckets = calloc(nbuckets, sizeof(node *));
    if (!t->buckets) wl_fail(WORKLOAD, "calloc of %zu buckets failed", nbuckets);
}

static void table_grow(table *t) {
    table bigger;
    table_init(&bigger, t->nbuckets * 2);
    for (size_t b = 0; b < t->nbuckets; b++) {
        node *n = t->buckets[b];
        while (n) {
            node *next = n->next;
            size_t nb = n->hash & (bigger.nbuckets - 1);
            n->next = bigger.buckets[nb];
            bigger.buckets[nb] = n;
            n = next;
        }
    }
    bigger.n = t->n;
    free(t->buckets);
    *t = bigger;
}

/* Inserts or merges node `in` (already holding key/hash/word/count): a new
 * key takes over the node; a known one adds the count and frees `in`. */
static void table_put_node(table *t, node *in) {
    size_t b = in->hash & (t->nbuckets - 1);
    for (node *n = t->buckets[b]; n; n = n->next) {
        if (n->hash == in->hash && strcmp(n->key, in->key) == 0) {
            n->count += in->count;
            free(in->key);
            free(in);
            return;
        }
    }
    in->next = t->buckets[b];
    t->buckets[b] = in;
    if (++t->n > t->nbuckets) table_grow(t);
}

/* Counts one token; takes ownership of `key`. */
static void table_count(table *t, char *key, uint32_t word) {
    uint64_t h = hash_str(key);
    size_t b = h & (t->nbuckets - 1);
    for (node *n = t->buckets[b]; n; n = n->next) {
        if (n->hash == h && strcmp(n->key, key) == 0) {
            n->count++;
            free(key);
            return;
        }
    }
    node *n = wl_xmalloc(WORKLOAD, sizeof(node));
    *n = (node){.next = t->buckets[b], .key = key, .hash = h, .word = word, .count = 1};
    t->buckets[b] = n;
    if (++t->n > t->nbuckets) table_grow(t);
}

static void check_node(const node *n) {
    const char *w = vocab[n->word];
    size_t i = 0;
    for (; w[i]; i++)
        if (n->key[i] != (char)(w[i] | 0x20)) break;
    if (w[i] || n->key[i])
        wl_fail(WORKLOAD, "key %p '%.40s' does not match vocabulary word %u '%s'", (void *)n->key, n->key, n->word, w);
}

/* Removes the words seen once; returns the count removed. */
static uint64_t table_prune(table *t) {
    uint64_t removed = 0;
    for (size_t b = 0; b < t->nbuckets; b++) {
        node **pp = &t->buckets[b];
        while (*pp) {
            node *n = *pp;
            if (n->count == 1) {
                check_node(n);
                *pp = n->next;
                free(n->key);
                free(n);
                t->n--;
                removed++;
            } else {
                pp = &n->next;
            }
        }
    }
    return removed;
}

/* Skewed word choice: low indices are much more frequent. */
static uint32_t pick_word(wl_rng *r) {
    double u = wl_unit(r);
    return (uint32_t)(u * u * u * VOCAB);
}

static void *run(void *arg) {
    worker *w = arg;
    wl_rng r;
    wl_rng_seed(&r, 0x70ce2u + (uint64_t)w->index * 104729u);
    table_init(&w->t, 1024);
    record **window = calloc(WINDOW, sizeof(record *));
    uint32_t *words = wl_xmalloc(WORKLOAD, 64 * sizeof(uint32_t));
    char **tokens = NULL;
    size_t tokens_cap = 0;
    if (!window) wl_fail(WORKLOAD, "calloc failed");
    wl_team_wait(w->team); /* start */

    for (uint64_t ln = 0; ln < w->lines; ln++) {
        /* 1. "read" the line into a realloc-grown buffer */
        size_t cap = 32, len = 0;
        char *line = wl_xmalloc(WORKLOAD, cap);
        size_t nw = 5 + wl_below(&r, 36);
        for (size_t i = 0; i < nw; i++) {
            words[i] = pick_word(&r);
            const char *wd = vocab[words[i]];
            size_t wl = strlen(wd);
            const char *sep = (i + 1 == nw) ? ".\n" : (wl_below(&r, 8) == 0 ? ", " : " ");
            size_t sl = strlen(sep);
            while (len + wl + sl + 1 > cap) {
                cap *= 2;
                char *nl = realloc(line, cap);
                if (!nl) wl_fail(WORKLOAD, "realloc(%zu) failed", cap);
                line = nl;
            }
            memcpy(line + len, wd, wl);
            memcpy(line + len + wl, sep, sl);
            len += wl + sl;
        }
        line[len] = '\0';

        /* 2. tokenize: one malloc'd lower-case copy per token */
        size_t nt = 0, textlen = 0;
        for (char *p = line; *p;) {
            while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) p++;
            if (!*p) break;
            char *s = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) p++;
            size_t tl = (size_t)(p - s);
            char *tok = wl_xmalloc(WORKLOAD, tl + 1);
            for (size_t i = 0; i < tl; i++) tok[i] = (char)(s[i] | 0x20);
            tok[tl] = '\0';
            if (nt == tokens_cap) {
                tokens_cap = tokens_cap ? tokens_cap * 2 : 8;
                char **nt2 = realloc(tokens, tokens_cap * sizeof(char *));
                if (!nt2) wl_fail(WORKLOAD, "realloc of the token array failed");
                tokens = nt2;
            }
            tokens[nt++] = tok;
            textlen += tl + 1;
        }
        if (nt != nw) wl_fail(WORKLOAD, "line %llu: %zu tokens, expected %zu", (unsigned long long)ln, nt, nw);
        free(line);

        /* 3. the record for the window: a normalized copy of the line */
        record *rec = wl_xmalloc(WORKLOAD, sizeof(record));
        rec->line = ln;
        rec->ntokens = nt;
        rec->text = wl_xmalloc(WORKLOAD, textlen);
        size_t off = 0;
        for (size_t i = 0; i < nt; i++) {
            size_t tl = strlen(tokens[i]);
            memcpy(rec->text + off, tokens[i], tl);
            rec->text[off + tl] = (i + 1 == nt) ? '\0' : ' ';
            off += tl + 1;
        }
        record **slot = &window[ln % WINDOW];
        if (*slot) {
            record *old = *slot;
            size_t spaces = 0;
            for (const char *c = old->text; *c; c++) spaces += (*c == ' ');
            if (old->line + WINDOW != ln || spaces + 1 != old->ntokens)
                wl_fail(WORKLOAD, "record %p of line %llu is corrupt", (void *)old, (unsigned long long)old->line);
            free(old->text);
            free(old);
        }
        *slot = rec;

        /* 4. count the tokens (the table takes or frees each copy) */
        for (size_t i = 0; i < nt; i++) table_count(&w->t, tokens[i], words[i]);
        w->tokens += nt;

        if ((ln + 1) % PRUNE_EVERY == 0) w->pruned += table_prune(&w->t);
    }
    wl_team_wait(w->team); /* stop */
    for (size_t i = 0; i < WINDOW; i++) {
        if (window[i]) {
            free(window[i]->text);
            free(window[i]);
        }
    }
    free(window);
    free(tokens);
    free(words);
    return NULL;
}

static void make_vocab(void) {
    wl_rng r;
    wl_rng_seed(&r, 0x7e57);
    vocab = wl_xmalloc(WORKLOAD, VOCAB * sizeof(char *));
    for (size_t i = 0; i < VOCAB; i++) {
        /* unique by construction: the index as 4 base-26 letters (26^4 >
         * VOCAB), then 0-9 random letters */
        char buf[32];
        size_t n = 0;
        size_t v = i;
        for (int d = 0; d < 4; d++, v /= 26) buf[n++] = (char)('a' + v % 26);
        size_t extra = wl_below(&r, 10);
        for (size_t k = 0; k < extra; k++) buf[n++] = (char)('a' + wl_below(&r, 26));
        buf[n] = '\0';
        if (wl_below(&r, 5) == 0) buf[0] = (char)(buf[0] - 'a' + 'A');
        vocab[i] = wl_xmalloc(WORKLOAD, n + 1);
        memcpy(vocab[i], buf, n + 1);
    }
}

int main(int argc, char **argv) {
    wl_args a = wl_parse_args(argc, argv, "threads tokenizing text into word-count hash tables");
    uint64_t total = wl_scaled(300000, a.scale, (uint64_t)a.threads);
    make_vocab();
    wl_team team;
    wl_team_init(&team, WORKLOAD, a.threads);
    worker *ws = wl_xmalloc(WORKLOAD, sizeof(worker) * (size_t)a.threads);
    for (int i = 0; i < a.threads; i++) {
        ws[i] = (worker){.index = i, .lines = total / (uint64_t)a.threads, .team = &team};
        wl_team_spawn(&team, run, &ws[i]);
    }
    wl_team_wait(&team); /* start */
    double t0 = wl_now();
    wl_team_wait(&team); /* stop: the merge below is timed too */
    wl_team_join(&team);
    uint64_t tokens = 0, pruned = 0, lines = 0;
    for (int i = 0; i < a.threads; i++) {
        tokens += ws[i].tokens;
        pruned += ws[i].pruned;
        lines += ws[i].lines;
    }
    /* merge: the nodes move into one table, duplicates are freed here */
    table global;
    table_init(&global, 1024);
    for (int i = 0; i < a.threads; i++) {
        table *t = &ws[i].t;
        for (size_t b = 0; b < t->nbuckets; b++) {
            node *n = t->buckets[b];
            while (n) {
                node *next = n->next;
                check_node(n);
                table_put_node(&global, n);
                n = next;
            }
        }
        free(t->buckets);
    }
    uint64_t counted = 0, distinct = global.n;
    for (size_t b = 0; b < global.nbuckets; b++) {
        node *n = global.buckets[b];
        while (n) {
            node *next = n->next;
            check_node(n);
            counted += n->count;
            free(n->key);
            free(n);
            n = next;
        }
    }
    free(global.buckets);
    double secs = wl_now() - t0;
    if (counted + pruned != tokens)
        wl_fail(WORKLOAD, "counts do not add up: %llu counted + %llu pruned != %llu tokens", (unsigned long long)counted,
                (unsigned long long)pruned, (unsigned long long)tokens);
    for (size_t i = 0; i < VOCAB; i++) free(vocab[i]);
    free(vocab);
    free(ws);
    char extra[128];
    snprintf(extra, sizeof extra, " lines=%llu distinct=%llu", (unsigned long long)lines, (unsigned long long)distinct);
    wl_result(WORKLOAD, &a, secs, tokens, extra);
    return 0;
}

#!/usr/bin/python3
"""bench_report.py — tables, plots and docs/benchmarks.md from bench results.

  bench_report.py RESULTS.json [--plots DIR] [--docs FILE]
                  [--instructions FILE] [--micro FILE] [--subject NAME]

Prints the median tables (time and peak RSS per workload and thread count,
one column per allocator, the ratios SUBJECT/glibc and SUBJECT/jemalloc, and
a geometric-mean row), writes PNG plots with gnuplot into DIR, and, with
--docs, regenerates the markdown page from the JSON (nothing in it is typed
by hand). Python 3 standard library only.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BASELINES = ("glibc", "jemalloc")  # the losses listed under the results
RATIO_COLS = ("glibc", "jemalloc", "mimalloc", "tcmalloc")  # ratio columns of the tables

WORKLOAD_TEXT = {
    "server_churn": (
        "A long-running service's steady state. Each thread keeps 32768 live objects of mixed sizes "
        "(70% 8-128 B, 20% up to 1 KiB, 8% up to 8 KiB, 1.9% up to 32 KiB, 0.1% up to 256 KiB) and "
        "replaces random ones (free + malloc, or realloc one time in 20). 20M operations per run split "
        "over the threads; only the churn is timed."),
    "prodcons": (
        "Producer/consumer: `-t N` runs N pairs (2N threads). The producer allocates 16 B-8 KiB messages "
        "and passes them through a bounded ring (4096 slots) to the consumer, which checks and frees them, "
        "so every free is a cross-thread free. At most 4096 messages per pair are live: peak RSS must stay "
        "flat however many messages pass (2M per run)."),
    "false_sharing": (
        "Threads increment counters in 16-byte objects (1000 writes per object, 2G writes per phase). "
        "Passive phase: the main thread allocates one object per thread back to back and hands them out; "
        "each thread frees its object and allocates its own (an allocator that returns the freed block to "
        "the freeing thread keeps threads writing into one cache line). Active phase: each thread allocates "
        "its own objects from the start. Without false sharing the write rate scales with the cores."),
    "phase_change": (
        "Build 2M small objects (16-256 B), free 90% in random order (the survivors are a random tenth of "
        "the runs of 4096 consecutive allocations, so most pages become entirely free), idle 1.5 s in 20 ms "
        "sleeps sampling VmRSS, build the 90% again, free everything. The time excludes the idle; the RSS right "
        "after the free, 1 s later and after the idle, against the live heap the program still holds, shows "
        "whether and how fast the allocator gives memory back (the scavenger's stage; see the scavenger section)."),
    "phase_scattered": (
        "`phase_change -m scattered`: the same, but the survivors are a random tenth of single objects, so "
        "nearly every page keeps a live object: what any allocator that does not move objects can give back is "
        "close to nothing. One repetition in the quick set."),
    "large_blocks": (
        "Each thread keeps 16 blocks of 64 KiB-16 MiB (log-uniform sizes) and replaces random ones, one in 8 "
        "by realloc; every 4 KiB page of every block is written. 6000 operations per run. Measures the "
        "large-object path: page reuse versus fresh pages (faults, zeroing) and returning memory."),
    "server_threads": (
        "The shape of the \"larson\" server benchmark: `-t N` lanes, each a slot array of 5000 live blocks of "
        "8-1000 B filled by the main thread. A lane's thread frees a random slot's block and allocates a new one "
        "into it; after 100000 steps it starts its successor and exits, and the successor carries on with the same "
        "blocks, so frees land in blocks and spans a thread that no longer exists allocated (about 5% of the frees "
        "hit a predecessor's block; `foreign_pct` on the RESULT line). A fixed-time run (2 s × scale): the result "
        "is operations (free + malloc) per second."),
    "thread_churn": (
        "The shape of glibc's bench-malloc-thread: each thread keeps 4096 live blocks of 8-512 B and replaces a "
        "random one (check, free, malloc, stamp) in a tight loop; nothing crosses threads. A fixed-time run "
        "(2 s × scale): the result is iterations per second over all threads."),
    "batch": (
        "Allocate N blocks, then free them all: N = 100, 1000, 10000, one size (32 B) or mixed sizes (8-1000 B), "
        "freed in allocation order (fifo), reverse order (lifo) or a fixed random order: 18 cases, each given 2M "
        "pairs per run, all threads on the same case at once. The time is the sum over the cases; the ns per pair "
        "of each case is in the batch table."),
    "tokenizer": (
        "A real-world style string program: generated text (skewed choice from a 50k-word vocabulary) is "
        "read line by line into a realloc-grown buffer, split into malloc'd lower-case tokens, counted in a "
        "chained hash table that rehashes as it grows, with a window of the last 2000 line records and "
        "periodic pruning of words seen once. Threads work on their own shards; the main thread merges the "
        "tables and frees everything (cross-thread frees). 300k lines per run."),
}


def load(path):
    with open(path) as f:
        return json.load(f)


def median(xs):
    return statistics.median(xs) if xs else None


def gmean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def metric_of(doc, workload):
    """"seconds" (fixed work) or "ops_per_sec" (fixed time; older results
    have no metric field and only fixed-work workloads)."""
    w = next((w for w in doc["workloads"] if w["name"] == workload), None)
    return (w or {}).get("metric", "seconds")


def run_cost(doc, r):
    """A run's cost, comparable across allocators: its time for fixed-work
    workloads; for fixed-time (throughput) workloads the time per million
    operations, 1e6 / ops_per_sec."""
    res = r["result"]
    if metric_of(doc, r["workload"]) == "ops_per_sec":
        return 1e6 / res["ops_per_sec"] if res.get("ops_per_sec") else None
    return res["seconds"]


def summarize(doc):
    """Returns (configs, allocs, cell) where cell[(w, t, alloc)] holds medians
    (and, under *_by_rep, each repetition's value, for the spreads)."""
    allocs = [a["name"] for a in doc["allocators"]]
    configs = []
    for w in doc["workloads"]:
        for t in w["threads"]:
            configs.append((w["name"], t))
    groups = {}
    for r in doc["runs"]:
        key = (r["workload"], r["threads"], r["alloc"])
        g = groups.setdefault(key, {"ok": [], "failed": 0})
        if r["ok"]:
            g["ok"].append(r)
        else:
            g["failed"] += 1
    cell = {}
    for key, g in groups.items():
        ok = g["ok"]
        c = {"n": len(ok), "failed": g["failed"]}
        if ok:
            c["seconds"] = median([r["result"]["seconds"] for r in ok])
            c["peak_rss_kb"] = median([r["result"]["peak_rss_kb"] for r in ok])
            c["seconds_all"] = sorted(r["result"]["seconds"] for r in ok)
            costs = [run_cost(doc, r) for r in ok]
            c["cost"] = median([x for x in costs if x is not None])
            c["cost_all"] = sorted(x for x in costs if x is not None)
            c["cost_by_rep"] = {r["rep"]: x for r, x in zip(ok, costs) if x is not None}
            c["rss_by_rep"] = {r["rep"]: r["result"]["peak_rss_kb"] for r in ok}
            rates = [r["result"]["ops_per_sec"] for r in ok if r["result"].get("ops_per_sec")]
            if rates:
                c["ops_per_sec"] = median(rates)
            # batch: ns per pair of each case (ns_<size>_<N>_<order>)
            cases = {}
            for r in ok:
                for k, v in r["result"].items():
                    if k.startswith("ns_") and isinstance(v, (int, float)):
                        cases.setdefault(k[3:], []).append(v)
            if cases:
                c["batch_ns"] = {k: median(v) for k, v in cases.items()}
            for extra in ("rss_start_kb", "rss_built_kb", "rss_after_free_kb", "rss_1s_kb", "rss_after_idle_kb",
                          "rss_rebuilt_kb", "rss_end_kb", "live_kb", "live_objects_kb", "passive_seconds",
                          "active_seconds", "idle_seconds"):
                vals = [r["result"][extra] for r in ok if extra in r["result"]]
                if vals:
                    c[extra] = median(vals)
            # times where -1 means "never": the median treats it as infinite
            for extra in ("settle_ms", "drop90_ms"):
                vals = [r["result"][extra] for r in ok if extra in r["result"]]
                if vals:
                    c[extra] = median([math.inf if v < 0 else v for v in vals])
            # the run whose time is the median (for the RSS-over-time plot)
            ok_sorted = sorted(ok, key=lambda r: r["result"]["seconds"])
            c["median_run"] = ok_sorted[(len(ok_sorted) - 1) // 2]
        cell[key] = c
    configs = [c for c in configs if any((c[0], c[1], a) in cell for a in allocs)]
    return configs, allocs, cell


def is_variant(name, subject):
    """A build variant of the subject (spanalloc-eager, spanalloc-off): shown
    in the policy and phase-change sections, not in the main tables."""
    return name.startswith(subject + "-")


def value(cell, w, t, a, field):
    c = cell.get((w, t, a))
    if not c:
        return None
    return c.get(field)


def ratio(x, y):
    return x / y if x is not None and y else None


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "s":
        return f"{v:.3f}" if v < 10 else f"{v:.2f}"
    if kind == "mib":
        return f"{v / 1024:.1f}"
    if kind == "x":
        return f"{v:.2f}"
    if kind == "x3":
        return f"{v:.3f}"
    if kind == "mops":
        return f"{v / 1e6:.2f}"
    return str(v)


def build_table(doc, field, kind, subject, metric=None):
    """Rows for one metric: header, body rows, geomean row (lists of str).
    With `metric`, only the workloads of that kind (see metric_of)."""
    configs, allocs, cell = summarize(doc)
    if metric:
        configs = [(w, t) for w, t in configs if metric_of(doc, w) == metric]
    allocs = [a for a in allocs if not is_variant(a, subject)]
    has_subject = subject in allocs
    ratio_cols = [b for b in RATIO_COLS if has_subject and b in allocs and b != subject]
    short = "sa" if subject.startswith("spanalloc") else subject[:2]
    header = ["workload", "thr"] + allocs + [f"{short}/{b}" for b in ratio_cols]
    rows = []
    per_alloc_norm = {a: [] for a in allocs}
    per_ratio = {b: [] for b in ratio_cols}
    for w, t in configs:
        row = [w, str(t)]
        base = value(cell, w, t, "glibc", field) if "glibc" in allocs else None
        for a in allocs:
            v = value(cell, w, t, a, field)
            c = cell.get((w, t, a), {})
            s = fmt(v, kind)
            if c.get("failed"):
                s += "!" if v is not None else "FAIL"
                if v is None:
                    s = "FAIL"
            row.append(s)
            if base and v:
                per_alloc_norm[a].append(v / base)
        sv = value(cell, w, t, subject, field) if has_subject else None
        for b in ratio_cols:
            r = ratio(sv, value(cell, w, t, b, field))
            row.append(fmt(r, "x"))
            if r:
                per_ratio[b].append(r)
        rows.append(row)
    geo = ["geomean", "×glibc" if "glibc" in allocs else ""]
    for a in allocs:
        geo.append(fmt(gmean(per_alloc_norm[a]), "x") if "glibc" in allocs else "-")
    for b in ratio_cols:
        geo.append(fmt(gmean(per_ratio[b]), "x"))
    return header, rows, geo


def suite_geomeans(doc, subject):
    """The suite's geometric means over every workload row of both kinds,
    each allocator against glibc: time per unit of work and peak RSS."""
    configs, allocs, cell = summarize(doc)
    allocs = [a for a in allocs if not is_variant(a, subject)]
    if "glibc" not in allocs:
        return None
    rows = []
    for field, label in (("cost", "time per unit of work"), ("peak_rss_kb", "peak RSS")):
        row = [label, str(len(configs))]
        for a in allocs:
            row.append(fmt(gmean([ratio(value(cell, w, t, a, field), value(cell, w, t, "glibc", field))
                                  for w, t in configs]), "x"))
        rows.append(row)
    return ["geomean ×glibc", "rows"] + allocs, rows


def _geo_rows(geo):
    """geo: one summary row (list of str) or several (list of lists)."""
    return geo if geo and isinstance(geo[0], list) else [geo]


def text_table(header, rows, geo):
    geos = _geo_rows(geo)
    widths = [max(len(r[i]) for r in [header] + rows + geos) for i in range(len(header))]
    def line(r):
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows] + [sep] + [line(g) for g in geos])


def md_table(header, rows, geo):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    for g in _geo_rows(geo):
        out.append("| " + " | ".join(f"**{c}**" if c else "" for c in g) + " |")
    return "\n".join(out)


PHASE_WORKLOADS = ("phase_change", "phase_scattered")
TARGET_SETTLE = 1.10  # issue 4: RSS within 10% of the live heap ...
TARGET_SETTLE_S = 1.0  # ... within 1 s of the free (background policy)
TARGET_POLICY = 1.02  # issue 4: background/off time under 2%


def fmt_ms(v):
    if v is None:
        return "-"
    if v == math.inf:
        return "never"
    return f"{v:.0f}"


def heap_ratio(c, field):
    """(VmRSS at `field` − VmRSS at start) / live heap: 1 = nothing but the
    live bytes is resident."""
    if not c or c.get(field) is None or not c.get("live_kb") or c.get("rss_start_kb") is None:
        return None
    return (c[field] - c["rss_start_kb"]) / c["live_kb"]


def phase_table(doc, workload="phase_change"):
    _, allocs, cell = summarize(doc)
    header = ["allocator", "built MiB", "after free MiB", "at 1 s MiB", "after idle MiB", "live heap MiB",
              "1 s/live", "idle/live", "settle ms", "drop90 ms", "peak MiB"]
    rows = []
    for a in allocs:
        c = cell.get((workload, 1, a))
        if not c or "rss_built_kb" not in c:
            continue
        rows.append([a, fmt(c["rss_built_kb"], "mib"), fmt(c["rss_after_free_kb"], "mib"),
                     fmt(c.get("rss_1s_kb"), "mib"), fmt(c["rss_after_idle_kb"], "mib"),
                     fmt(c.get("live_kb"), "mib"), fmt(heap_ratio(c, "rss_1s_kb"), "x"),
                     fmt(heap_ratio(c, "rss_after_idle_kb"), "x"), fmt_ms(c.get("settle_ms")),
                     fmt_ms(c.get("drop90_ms")), fmt(c["peak_rss_kb"], "mib")])
    return header, rows


def policy_allocs(doc, subject):
    """The subject's policy builds present in the run, off first:
    [(name, policy)], policy from the library's own report when known."""
    out = []
    for a in doc["allocators"]:
        n = a["name"]
        if n != subject and not is_variant(n, subject):
            continue
        pol = (a.get("build") or {}).get("scavenger")
        if not pol:
            pol = n[len(subject) + 1:] if is_variant(n, subject) else "background"
        out.append((n, pol))
    order = {"off": 0, "background": 1, "eager": 2}
    return sorted(out, key=lambda x: order.get(x[1], 9))


def spread(c):
    xs = c.get("cost_all") if c else None
    if not xs or len(xs) < 2 or not c.get("cost"):
        return None
    return (xs[-1] - xs[0]) / c["cost"]


def policy_table(doc, subject):
    """Time per workload under each scavenger policy relative to off.
    Returns (header, rows, geo rows, {policy: geomean}) or None."""
    configs, _, cell = summarize(doc)
    pols = policy_allocs(doc, subject)
    names = {pol: n for n, pol in pols}
    if "off" not in names or len(names) < 2:
        return None
    others = [pol for _, pol in pols if pol != "off"]
    header = ["workload", "thr"] + [f"{pol} s" for _, pol in pols] + [f"{pol}/off" for pol in others] + \
        ["off spread"]
    rows = []
    ratios = {pol: [] for pol in others}
    rss = {pol: [] for pol in others}
    for w, t in configs:
        off = value(cell, w, t, names["off"], "cost")
        if off is None:
            continue
        row = [w, str(t)] + [fmt(value(cell, w, t, n, "cost"), "s") for n, _ in pols]
        for pol in others:
            r = ratio(value(cell, w, t, names[pol], "cost"), off)
            row.append(fmt(r, "x3"))
            if r:
                ratios[pol].append(r)
            rr = ratio(value(cell, w, t, names[pol], "peak_rss_kb"), value(cell, w, t, names["off"], "peak_rss_kb"))
            if rr:
                rss[pol].append(rr)
        sp = spread(cell.get((w, t, names["off"])))
        row.append(f"{sp * 100:.0f}%" if sp is not None else "-")
        rows.append(row)
    geo_time = {pol: gmean(ratios[pol]) for pol in others}
    geo_rss = {pol: gmean(rss[pol]) for pol in others}
    pad = [""] * len(pols)
    geo = [["geomean time", ""] + pad + [fmt(geo_time[pol], "x3") for pol in others] + [""],
           ["geomean peak RSS", ""] + pad + [fmt(geo_rss[pol], "x3") for pol in others] + [""]]
    return header, rows, geo, geo_time


def plain_table(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    def line(r):
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def md_plain(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---- plots (gnuplot) -------------------------------------------------------

def gnuplot_terminal():
    try:
        r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True, check=False)
        return "pngcairo" if "pngcairo" in (r.stdout + r.stderr) else "png"
    except OSError:
        return None


def write_plots(doc, outdir, subject="spanalloc"):
    term = gnuplot_terminal()
    if not term:
        print("bench_report: gnuplot not found (Debian: gnuplot-nox); no plots", file=sys.stderr)
        return []
    configs, all_allocs, cell = summarize(doc)
    allocs = [a for a in all_allocs if not is_variant(a, subject)]
    made = []
    others = [a for a in allocs if a != "glibc"]
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        script = [f"set terminal {term} size 1200,560 font ',10'", "set termoption noenhanced", "set grid ytics", "set key top left",
                  "set style data histograms", "set style histogram clustered gap 1",
                  "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set xtics rotate by -40 left",
                  "set logscale y 2", "set format y '%g'"]
        if "glibc" in allocs and others:
            for field, name, ylabel in (("cost", "time_ratio.png",
                                         "median time per unit of work / glibc (log scale, lower is better)"),
                                        ("peak_rss_kb", "rss_ratio.png", "median peak RSS / glibc (log scale)")):
                dat = os.path.join(tmp, field + ".dat")
                with open(dat, "w") as f:
                    for w, t in configs:
                        base = value(cell, w, t, "glibc", field)
                        vals = []
                        for a in others:
                            r = ratio(value(cell, w, t, a, field), base)
                            vals.append(f"{r:.4f}" if r else "NaN")
                        f.write(f"\"{w}/{t}\" " + " ".join(vals) + "\n")
                plot = ", ".join((f"'{dat}' using {i + 2}:xtic(1)" if i == 0 else f"'' using {i + 2}") +
                                 f" title '{a}'" for i, a in enumerate(others))
                script += [f"set output '{os.path.join(outdir, name)}'",
                           f"set title '{name[:-4].replace('_', ' ')}: each allocator against glibc (= 1), workload/threads'",
                           f"set ylabel '{ylabel}'",
                           "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2",
                           f"plot {plot}"]
                made.append(name)
        first_series = True
        for workload in PHASE_WORKLOADS:
            series_files = []
            idle = None
            target = None
            for a in all_allocs:  # every allocator and every policy build
                c = cell.get((workload, 1, a))
                run = (c or {}).get("median_run", {})
                if not run.get("rss_series"):
                    continue
                res = run.get("result", {})
                # x = 0 when the free finished (t_freed is measured from the
                # program's main(); the runner's clock starts a few ms earlier,
                # at fork)
                shift = res.get("t_freed", 0.0)
                dat = os.path.join(tmp, f"{workload}_{len(series_files)}.dat")
                with open(dat, "w") as f:
                    for tt, kb in run["rss_series"]:
                        f.write(f"{tt - shift:.3f} {kb / 1024:.2f}\n")
                series_files.append((a, dat))
                if idle is None and res.get("idle_seconds"):
                    idle = res["idle_seconds"]
                if a == subject and c.get("live_kb") and c.get("rss_start_kb") is not None:
                    target = (c["rss_start_kb"] + TARGET_SETTLE * c["live_kb"]) / 1024
            if not series_files:
                continue
            name = f"{workload}_rss.png"
            plot = ", ".join(f"'{d}' using 1:2 with lines lw 2 title '{a}'" for a, d in series_files)
            if target:
                plot += f", {target:.2f} with lines dt 2 lw 1 lc rgb 'black' title 'start RSS + 1.1 x live heap'"
            if first_series:
                script += ["unset logscale y", "unset arrow 1", "set style data lines", "set xtics norotate",
                           "set format y '%g'", f"set terminal {term} size 1100,560 font ',10'",
                           "set termoption noenhanced", "set key outside right top", "set yrange [0:*]",
                           "set grid xtics ytics",
                           "set xlabel 'seconds since the free finished (the idle starts at 0)'",
                           "set ylabel 'RSS (MiB)'"]
                first_series = False
            script += ["unset arrow"]
            if idle:
                script += ["set arrow 2 from first 0, graph 0 to first 0, graph 1 nohead dt 3 lc rgb 'gray40'",
                           f"set arrow 3 from first {idle:.3f}, graph 0 to first {idle:.3f}, graph 1 nohead dt 3 "
                           "lc rgb 'gray40'"]
            what = ("90% freed, survivors in batches of 4096 consecutive objects" if workload == "phase_change"
                    else "90% freed, survivors scattered one by one")
            script += [f"set output '{os.path.join(outdir, name)}'",
                       f"set title '{workload} ({what}): VmRSS sampled every 20 ms, median run; dotted: the idle'",
                       f"plot {plot}"]
            made.append(name)
        if made:
            gp = os.path.join(tmp, "plots.gp")
            with open(gp, "w") as f:
                f.write("\n".join(script) + "\n")
            r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                print("bench_report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
                return []
    return made


# ---- instructions and micro --------------------------------------------------

def instructions_table(ins):
    """One row per (bytes, batch): the pair loop first, then the batches."""
    allocs = [a["name"] for a in ins["allocators"]]
    cases = sorted({(r.get("batch", 1), r["bytes"]) for r in ins["rows"]})
    header = ["bytes", "shape"] + allocs
    rows = []
    for batch, size in cases:
        row = [str(size), "pair loop" if batch == 1 else f"batch of {batch}"]
        for a in allocs:
            v = next((r["instructions_per_pair"] for r in ins["rows"] if r["alloc"] == a and r["bytes"] == size
                      and r.get("batch", 1) == batch), None)
            row.append(f"{v:.1f}" if v is not None else "FAIL")
        rows.append(row)
    return header, rows


def batch_table(doc, subject, threads=1):
    """ns per malloc+free pair of each batch case at `threads` threads."""
    _, allocs, cell = summarize(doc)
    allocs = [a for a in allocs if not is_variant(a, subject) and ("batch", threads, a) in cell]
    cases = []
    for a in allocs:
        for k in (cell[("batch", threads, a)].get("batch_ns") or {}):
            if k not in cases:
                cases.append(k)
    if not cases:
        return None
    ratio_cols = [b for b in RATIO_COLS if subject in allocs and b in allocs and b != subject]
    header = ["size", "N", "order"] + allocs + [f"sa/{b}" for b in ratio_cols]
    rows = []
    for k in cases:
        size, n, order = (k.split("_") + ["", "", ""])[:3]
        vals = {a: (cell[("batch", threads, a)].get("batch_ns") or {}).get(k) for a in allocs}
        rows.append([size, n, order] + [f"{vals[a]:.1f}" if vals[a] is not None else "-" for a in allocs] +
                    [fmt(ratio(vals.get(subject), vals[b]), "x") for b in ratio_cols])
    return header, rows


# ---- where the time goes (perf profiles) ----------------------------------------

PERF_WORKLOADS = ("server_churn", "server_threads")
PERF_TAGS = ("before", "after")


def baselines_section(results_dir):
    """The stored before-figures (bench/results/baseline-*.json): single
    workloads measured on an older commit, kept for comparison."""
    import glob
    files = sorted(glob.glob(os.path.join(results_dir or "", "baseline-*.json")))
    if not files:
        return []
    L = ["### Stored baselines", "",
         "Single-workload runs (`tools/bench.sh --only NAME --no-policies --reps 5`) kept as before-figures; "
         "`tools/bench_report.py FILE` prints their tables and targets. The name says which library source was "
         "measured (`baseline-04d60ef-*`: alloc/ as at 04d60ef, before issue 10's free-path redesign, whatever "
         "commit of the bench tools ran it). A load average well above the 2 cores means the absolute figures "
         "are low; the ratios between allocators of one run hold better.", ""]
    for f in files:
        d = load(f)
        m = d.get("machine", {})
        vers = []
        for a in d["allocators"]:
            v = a.get("version") or ""
            vers.append(a["name"] + (" " + v.removeprefix(a["name"] + " ") if v else ""))
        L.append(f"- `bench/results/{os.path.basename(f)}`: {d['set']}, {d['reps']} repetitions, scale "
                 f"{d['scale']:g}, {d['date']}, {', '.join(vers)}; load average {m.get('loadavg_start')} / "
                 f"{m.get('loadavg_end')}")
    L.append("")
    return L


def perf_section(perf_dir, threads=2):
    """The stored perf texts (tools/bench.sh --perf NAME --perf-tag TAG)."""
    if not perf_dir or not os.path.isdir(perf_dir):
        return []
    L = ["## Where the time goes (perf)", "",
         "`tools/bench.sh --perf NAME --perf-tag TAG` runs one workload (2 threads, scale 0.5) under spanalloc with "
         "`perf record -g` and stores the top entries of `perf report --no-children` (self time per function) in "
         "`bench/results/perf-NAME-t2-TAG.txt`; the header of each file says how it was recorded. *before* is the "
         "free path of commit 04d60ef (issue 10's baseline), *after* the redesigned one. Without a hardware PMU "
         "(this KVM guest has none) perf samples the `cpu-clock` software timer; time spent with interrupts off "
         "then shows up at the point they are re-enabled (`pvm_irq_enable` and the like in the kernel rows). The "
         "workload's own function (`run`: picking slots, stamping and checking blocks, including the cache misses "
         "of touching them) is part of every profile.", ""]
    for w in PERF_WORKLOADS:
        for tag in PERF_TAGS:
            path = os.path.join(perf_dir, f"perf-{w}-t{threads}-{tag}.txt")
            L.append(f"### {w}, {threads} threads: {tag}")
            L.append("")
            if os.path.exists(path):
                with open(path) as f:
                    L += ["```text"] + f.read().rstrip("\n").splitlines() + ["```"]
            else:
                L.append(f"Not recorded yet: `tools/bench.sh --perf {w} --perf-tag {tag}`.")
            L.append("")
    return L


def micro_table(micro, threads=1):
    import re
    allocs = []
    for r in micro["runs"]:
        if r["alloc"] not in allocs:
            allocs.append(r["alloc"])
    names = []
    for r in micro["runs"]:
        m = re.match(r"^(pair|pair_large)/(\d+)/real_time/threads:(\d+)$", r["name"])
        if m and int(m.group(3)) == threads and m.group(2) not in names:
            names.append(m.group(2))
    header = ["bytes"] + allocs
    rows = []
    for s in names:
        row = [s]
        for a in allocs:
            v = next((r["real_time_ns"] for r in micro["runs"] if r["alloc"] == a and
                      re.match(rf"^pair(_large)?/{s}/real_time/threads:{threads}$", r["name"])), None)
            row.append(f"{v:.1f}" if v is not None else "-")
        rows.append(row)
    return header, rows


# ---- docs ------------------------------------------------------------------------

# ---- targets, with the spread of every measurement (issue 15) -----------------

BOOT_ITER = 2000  # bootstrap resamples for the geometric-mean intervals
TARGET_GEO_TIME = 0.55  # issue 10: suite geomean time ≤ 0.55 × glibc
TARGET_GEO_RSS = 1.05  # issue 10: suite geomean peak RSS ≤ 1.05 × glibc
TARGET_INSTR = 40  # issue 10: instructions per 32 B malloc+free pair, loop and batch of 1000


def paired(cell, key_a, key_b, field="cost_by_rep"):
    """[(a, b)] of the repetitions where both configurations ran: the
    allocators of one repetition run back to back, so pairing them cancels
    the drift of a shared machine between repetitions."""
    ca, cb = cell.get(key_a) or {}, cell.get(key_b) or {}
    ra, rb = ca.get(field) or {}, cb.get(field) or {}
    return [(ra[k], rb[k]) for k in sorted(ra) if k in rb and rb[k]]


def judge(lo, hi, limit, higher_is_better=False, reps=2):
    """met / not met when the whole interval is on one side of the limit,
    within noise when it straddles it; with a single repetition there is no
    interval, and the status says so."""
    if lo is None or hi is None:
        return "-"
    if reps < 2:
        return judge(lo, hi, limit, higher_is_better) + " (1 rep: spread unknown)"
    all_good, any_good = (lo >= limit, hi >= limit) if higher_is_better else (hi <= limit, lo <= limit)
    if all_good:
        return "met"
    if not any_good:
        return "**not met**"
    return "within noise"


def bootstrap_geomean(rows, seed=12345):
    """rows: per workload row the paired per-repetition (subject, base)
    values. Resamples the repetitions of every row (with replacement), takes
    the ratio of the resampled medians per row and the geometric mean over the
    rows; returns the 2.5th and 97.5th percentiles of BOOT_ITER resamples."""
    import random
    rows = [r for r in rows if r]
    if not rows:
        return None, None
    rng = random.Random(seed)
    out = []
    for _ in range(BOOT_ITER):
        logs = 0.0
        for pairs in rows:
            pick = [pairs[rng.randrange(len(pairs))] for _ in pairs]
            logs += math.log(median([p[0] for p in pick]) / median([p[1] for p in pick]))
        out.append(math.exp(logs / len(rows)))
    out.sort()
    return out[int(0.025 * (len(out) - 1))], out[int(0.975 * (len(out) - 1))]


def ratio_range(pairs):
    """min–max over the repetitions of the per-repetition ratio."""
    rs = [a / b for a, b in pairs if a and b]
    return (min(rs), max(rs), len(rs)) if rs else (None, None, 0)


def fmt_range(lo, hi, how):
    if lo is None:
        return "-"
    return f"{lo:.2f}–{hi:.2f} ({how})"


def target_rows(doc, ins, subject):
    """[(target text, measured, spread, status)] for the targets in force:
    issue 10's (which replace issue 3's geomean-vs-glibc and instruction
    targets) and issue 3's comparison with jemalloc."""
    configs, allocs, cell = summarize(doc)
    S = subject
    out = []
    # throughput workloads: at least mimalloc's ops/s at 1 and 2 threads
    for w in ("server_threads", "thread_churn"):
        for t in (1, 2):
            if "mimalloc" not in allocs or (w, t, S) not in cell or (w, t, "mimalloc") not in cell:
                continue
            v = ratio(value(cell, w, t, S, "ops_per_sec"), value(cell, w, t, "mimalloc", "ops_per_sec"))
            # per repetition: ops/s ratio = mimalloc's cost / ours
            lo, hi, n = ratio_range([(b, a) for a, b in paired(cell, (w, t, S), (w, t, "mimalloc"))])
            out.append((f"{w} -t {t}: ops/s at least mimalloc's (ratio ≥ 1)", fmt(v, "x"),
                        fmt_range(lo, hi, f"min–max of {n} reps"), judge(lo, hi, 1.0, True, n)))
    # server_churn: no slower than the faster of jemalloc and tcmalloc
    for t in (1, 2):
        if not all(("server_churn", t, a) in cell for a in (S, "jemalloc", "tcmalloc")):
            continue
        best = min(value(cell, "server_churn", t, "jemalloc", "cost"), value(cell, "server_churn", t, "tcmalloc", "cost"))
        v = ratio(value(cell, "server_churn", t, S, "cost"), best)
        # per repetition: ours against the faster of the two in that repetition
        by_rep = [cell[("server_churn", t, a)].get("cost_by_rep") or {} for a in (S, "jemalloc", "tcmalloc")]
        pairs = [(by_rep[0][k], min(by_rep[1][k], by_rep[2][k])) for k in sorted(by_rep[0])
                 if k in by_rep[1] and k in by_rep[2]]
        lo, hi, n = ratio_range(pairs)
        out.append((f"server_churn -t {t}: time no more than min(jemalloc, tcmalloc) (ratio ≤ 1)", fmt(v, "x"),
                    fmt_range(lo, hi, f"min–max of {n} reps"), judge(lo, hi, 1.0, reps=n)))
    if "glibc" in allocs:
        # every workload row no slower than glibc
        met = noise = single = 0
        bad = []
        for w, t in configs:
            pairs = paired(cell, (w, t, S), (w, t, "glibc"))
            lo, hi, n = ratio_range(pairs)
            single += n == 1
            j = judge(lo, hi, 1.0, reps=n).split(" (")[0]
            if j == "met":
                met += 1
            elif j == "within noise":
                noise += 1
            elif j != "-":
                bad.append(f"{w}/{t} ×{ratio(value(cell, w, t, S, 'cost'), value(cell, w, t, 'glibc', 'cost')):.2f}")
        total = met + noise + len(bad)
        status = "**not met**" if bad else ("within noise" if noise else "met")
        out.append(("every workload row: time (per unit of work) no more than glibc's",
                    f"{met} of {total} rows met",
                    f"{noise} within noise (per-row min–max over reps straddles 1); not met: "
                    + (", ".join(bad) if bad else "none")
                    + (f"; {single} row(s) with one repetition judged on that value" if single else ""), status))
        # suite geomeans
        for field, limit, text in (("cost_by_rep", TARGET_GEO_TIME, "suite geomean time ×glibc (≤ %.2f)"),
                                   ("rss_by_rep", TARGET_GEO_RSS, "suite geomean peak RSS ×glibc (≤ %.2f)")):
            f = "cost" if field == "cost_by_rep" else "peak_rss_kb"
            g = gmean([ratio(value(cell, w, t, S, f), value(cell, w, t, "glibc", f)) for w, t in configs])
            rows = [paired(cell, (w, t, S), (w, t, "glibc"), field) for w, t in configs]
            lo, hi = bootstrap_geomean(rows)
            out.append((text % limit, fmt(g, "x"), fmt_range(lo, hi, "95% bootstrap"),
                        judge(lo, hi, limit, reps=max(map(len, rows), default=0))))
    if "jemalloc" in allocs:
        # issue 3, still in force: against jemalloc
        for field, limit, text in (("cost_by_rep", 1.0, "suite geomean time ×jemalloc (≤ 1, issue 3)"),
                                   ("rss_by_rep", 1.0, "suite geomean peak RSS ×jemalloc (≤ 1, issue 3)")):
            f = "cost" if field == "cost_by_rep" else "peak_rss_kb"
            g = gmean([ratio(value(cell, w, t, S, f), value(cell, w, t, "jemalloc", f)) for w, t in configs])
            rows = [paired(cell, (w, t, S), (w, t, "jemalloc"), field) for w, t in configs]
            lo, hi = bootstrap_geomean(rows)
            out.append((text, fmt(g, "x"), fmt_range(lo, hi, "95% bootstrap"),
                        judge(lo, hi, limit, reps=max(map(len, rows), default=0))))
    if ins:
        for batch, text in ((1, "pair loop"), (1000, "batch of 1000 mallocs, then their frees")):
            row = next((r for r in ins["rows"] if r["alloc"] == S and r["bytes"] == 32 and r.get("batch", 1) == batch
                        and r["instructions_per_pair"] is not None), None)
            if row is None:
                continue
            v = row["instructions_per_pair"]
            # issue 10's own table counted the loop program's instructions too
            # (its mimalloc 55 in the batch is our 42 + the loop's 15): shown,
            # the status follows this page's convention (loop excluded)
            out.append((f"instructions per 32 B malloc+free pair, {text} (≤ {TARGET_INSTR})", f"{v:.1f}",
                        f"one callgrind count (deterministic); {row.get('with_loop', 0):.1f} with the loop's own "
                        "instructions, as issue 10's table counted", "met" if v <= TARGET_INSTR else "**not met**"))
    return out


def targets_section(doc, ins, subject):
    configs, allocs, cell = summarize(doc)
    if subject not in allocs:
        return [f"`{subject}` was not part of this run; no target check."]
    lines = []
    for base in BASELINES:
        if base not in allocs:
            continue
        losses = []
        for w, t in configs:
            r = ratio(value(cell, w, t, subject, "cost"), value(cell, w, t, base, "cost"))
            if r and r > 1.05:
                losses.append(f"{w}/{t} ×{r:.2f}")
        lines.append(f"- slower than {base} (time ratio > 1.05): " + (", ".join(losses) if losses else "none"))
        losses = []
        for w, t in configs:
            r = ratio(value(cell, w, t, subject, "peak_rss_kb"), value(cell, w, t, base, "peak_rss_kb"))
            if r and r > 1.10:
                losses.append(f"{w}/{t} ×{r:.2f}")
        lines.append(f"- more peak RSS than {base} (ratio > 1.10): " + (", ".join(losses) if losses else "none"))
    rest = [(w, t) for w, t in configs if w != "large_blocks"]
    if rest and len(rest) < len(configs):
        parts = []
        for base in ("glibc", "jemalloc"):
            if base in allocs:
                g = gmean([ratio(value(cell, w, t, subject, "cost"), value(cell, w, t, base, "cost")) for w, t in rest])
                parts.append(f"{subject}/{base} {fmt(g, 'x')}")
        lines.append("- large_blocks moves the geometric mean most (ratios far from 1 for some allocators); "
                     "without it the time geomean is " + ", ".join(parts))
    lines.append("")
    lines.append("Each target shows the median-based value and its spread: for one workload row, the lowest and "
                 "highest per-repetition ratio (the allocators of one repetition run back to back, so each "
                 "repetition gives one paired ratio); for a geometric mean, a 95% bootstrap interval (the "
                 f"repetitions of every row resampled {BOOT_ITER} times). A target is *met* or *not met* only when "
                 "the whole interval is on one side of it, otherwise *within noise*. Issue 10's targets replace "
                 "issue 3's geomean ones against glibc (time ≤ 0.75, peak RSS ≤ 1.10) and its ~20 instructions "
                 "per 16 B pair; issue 3's comparison with jemalloc stays. Time means time per unit of work: a "
                 "throughput workload counts as 1 / (ops/s).")
    lines.append("")
    lines.append("| target | measured | spread | status |")
    lines.append("|---|---:|---|:---:|")
    for text, v, sp, st in target_rows(doc, ins, subject):
        lines.append(f"| {text} | {v} | {sp} | {st} |")
    return lines


# Known causes for a loss, shown under the results only while the loss shows
# in the numbers (each was diagnosed on the code at the time it was written;
# re-check when the allocator changes).
LOSS_NOTES = {
    "server_churn": (
        "server_churn: every thread churns a large random working set (32768 objects across ~60 size classes), "
        "so the frees land all over the heap and a span handed to a thread's cache on refill has few free slots: "
        "the refill cost (central lock, bitmap scan) is paid every few allocations instead of every few hundred. "
        "glibc's and jemalloc's per-size free lists reuse a freed block at once. This is the workload the refill "
        "path is being tuned on."),
}


def loss_notes(doc, subject):
    configs, allocs, cell = summarize(doc)
    if subject not in allocs:
        return []
    lost = []
    for w in dict.fromkeys(w for w, _ in configs):
        worst = None
        for base in BASELINES:
            for ww, t in configs:
                if ww != w or base not in allocs:
                    continue
                r = ratio(value(cell, w, t, subject, "cost"), value(cell, w, t, base, "cost"))
                if r and r > 1.05 and (worst is None or r > worst[0]):
                    worst = (r, base, t)
        if worst:
            note = LOSS_NOTES.get(w, f"{w}: cause not diagnosed yet.")
            lost.append(f"- {note} (worst here: ×{worst[0]:.2f} against {worst[1]} at {worst[2]} "
                        f"thread{'s' if worst[2] > 1 else ''}.)")
    if not lost:
        return []
    return ["Why spanalloc loses where it does (the causes as far as they are understood; the numbers above are the "
            "measurement, these notes are the reading):", ""] + lost + [""]


def scavenger_targets(doc, subject):
    """[(text, measured, spread, status)] for issue 4's targets, judged like
    the others (see judge)."""
    _, allocs, cell = summarize(doc)
    out = []
    c = cell.get(("phase_change", 1, subject))
    if c and c.get("live_kb"):
        r1 = heap_ratio(c, "rss_1s_kb")
        per_rep = [heap_ratio(r["result"], "rss_1s_kb") for r in doc["runs"]
                   if r["ok"] and r["workload"] == "phase_change" and r["alloc"] == subject]
        per_rep = [x for x in per_rep if x is not None]
        lo, hi = (min(per_rep), max(per_rep)) if per_rep else (None, None)
        out.append((f"phase_change, background policy: RSS − start RSS within 10% of the live heap 1 s after the "
                    f"free (ratio ≤ {TARGET_SETTLE:.2f})", fmt(r1, "x"),
                    fmt_range(lo, hi, f"min–max of {len(per_rep)} reps"),
                    judge(lo, hi, TARGET_SETTLE, reps=len(per_rep))))
    pt = policy_table(doc, subject)
    if pt and "background" in pt[3]:
        g = pt[3]["background"]
        names = {pol: n for n, pol in policy_allocs(doc, subject)}
        configs, _, _ = summarize(doc)
        rows = [paired(cell, (w, t, names["background"]), (w, t, names["off"])) for w, t in configs]
        lo, hi = bootstrap_geomean(rows)
        out.append((f"policy cost: workload-suite time background/off, geometric mean (< {TARGET_POLICY:.2f})",
                    fmt(g, "x3"), fmt_range(lo, hi, "95% bootstrap"),
                    judge(lo, hi, TARGET_POLICY, reps=max(map(len, rows), default=0))))
    return out


def scavenger_section(doc, subject, plots, plot_rel):
    L = []
    have_phase = any(phase_table(doc, w)[1] for w in PHASE_WORKLOADS)
    pt = policy_table(doc, subject)
    if not have_phase and not pt:
        return L
    L.append("## Scavenger: memory given back, and what each policy costs (issue 4)")
    L.append("")
    pols = policy_allocs(doc, subject)
    if len(pols) > 1:
        L.append("spanalloc is built once per scavenger policy (`-DSPANALLOC_SCAVENGER=...`, `MADV_DONTNEED`): "
                 + ", ".join(f"**{n}** = `{pol}`" for n, pol in pols)
                 + " (`build-bench/`, `build-bench-eager/`, `build-bench-off/`"
                 + ("; each library's own stats report confirms the policy it was built with"
                    if all(a.get("build") for a in doc["allocators"] if a["name"] in dict(pols)) else "")
                 + "). All of them run in the same interleaved matrix as the other allocators.")
        L.append("")
    L.append("**What the scavenger can give back.** It releases free *pages*; it never moves objects. Freeing 90% "
             "of a heap of small objects in random order, one by one, leaves almost every span with a survivor or "
             "two (an 8 KiB span of 16-byte objects holds 512 of them: the chance that all of them die at a 90% death "
             "rate is 0.9^512 ≈ 0), so nothing but wholly free spans can go back, in any allocator. "
             "`phase_change` therefore keeps its survivors together, as programs tend to (data allocated together "
             "lives together): the 10% that survive are whole runs of 4096 consecutive allocations, and the rest "
             "is freed in random order, so most spans become empty and their pages can be released. "
             "`phase_scattered` (`phase_change -m scattered`, one repetition in the quick set) keeps a random "
             "tenth of single objects instead: the worst case, where the resident set cannot shrink much.")
    L.append("")
    L.append("Columns: VmRSS after building the heap, right after the free, 1 s into the idle and at its end "
             "(1.5 s); the *live heap* is every byte the program still holds from malloc during the idle (the "
             "surviving objects as requested plus its own bookkeeping arrays, which are most of it); *1 s/live* and "
             "*idle/live* are (VmRSS − VmRSS at the start of `main`) / live heap, so 1.00 means only live bytes are "
             "resident and the issue's target is ≤ 1.10 at 1 s. *settle ms*: when, after the free, that ratio first "
             "came to 1.10 or less (sampled by the program every 20 ms; *never* = not within the idle). *drop90 ms*: "
             "when 90% of the RSS drop from the built heap to the end of the idle was done, counted from the end of the "
             "free (0: during the free itself, as the eager policy does it; *never*: RSS fell by less than 5%). "
             "Medians over the repetitions. Size-class rounding (a 17-byte request takes a 24- or 32-byte slot) and "
             "the `scavenge_retain` margin (10% of the in-use pages kept) both count against the ratio.")
    L.append("")
    for w in PHASE_WORKLOADS:
        ph = phase_table(doc, w)
        if not ph[1]:
            continue
        L.append(f"### {w}")
        L.append("")
        L.append(md_plain(*ph))
        L.append("")
        if f"{w}_rss.png" in plots:
            L.append(f"![RSS over time in {w}, every allocator and policy]({plot_rel}/{w}_rss.png)")
            L.append("")
    if pt:
        header, rows, geo, _ = pt
        L.append("### Policy cost on the workload suite")
        L.append("")
        L.append("Median time of every workload under each policy build (for the throughput workloads, seconds per million operations), and the ratio to `off` (no madvise at all); "
                 f"the issue's target is background/off < {TARGET_POLICY:.2f} on the geometric mean. *off spread* is "
                 "(slowest − fastest) / median over the `off` repetitions of that row: where it is larger than the "
                 "policy's difference, the difference is noise. On this shared 2-core VM a few percent either way is "
                 "within the noise of a quick run; `--full` (5 repetitions, scale 2) narrows it. Peak RSS ratios are "
                 "the geometric mean of peak VmHWM against `off`.")
        L.append("")
        L.append(md_table(header, rows, geo))
        L.append("")
    tg = scavenger_targets(doc, subject)
    if tg:
        L.append("Judged as in the targets table above: *met* or *not met* only when the whole interval is on one "
                 "side of the target.")
        L.append("")
        L.append("| target (issue 4) | measured | spread | status |")
        L.append("|---|---:|---|:---:|")
        for text, v, sp, st in tg:
            L.append(f"| {text} | {v} | {sp} | {st} |")
        L.append("")
    return L


def docs_page(doc, plots, ins, micro, subject, plot_rel, perf_dir=None):
    m = doc["machine"]
    configs, allocs, cell = summarize(doc)
    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("<!-- Generated by tools/bench.sh (tools/bench_report.py) from bench/results/latest.json. "
             "Do not edit by hand: rerun `tools/bench.sh`. -->")
    L.append("")
    L.append("spanalloc is measured against the allocators a user would otherwise pick: glibc's malloc, jemalloc "
             "and, when their Debian packages are installed, mimalloc and tcmalloc. Every number below was produced "
             "by one command and can be reproduced with it.")
    L.append("")
    L.append("## How to run")
    L.append("")
    L.append("```sh")
    L.append("tools/bench.sh                 # quick set: every workload at scale 0.5, 3 repetitions, every allocator")
    L.append("                               #   and scavenger policy (about 10 minutes on 2 cores, builds included)")
    L.append("tools/bench.sh --full          # longer runs (scale 2), 5 repetitions, + --micro and --instructions")
    L.append("tools/bench.sh --only tokenizer   # one workload (writes bench/results/only-tokenizer.json)")
    L.append("tools/bench.sh --instructions  # callgrind: instructions per malloc+free pair")
    L.append("tools/bench.sh --micro         # google-benchmark microbenchmarks under every allocator")
    L.append("tools/bench.sh --perf server_threads --perf-tag after   # perf profile (see 'Where the time goes')")
    L.append("tools/bench.sh --no-policies   # without the spanalloc-eager / spanalloc-off builds")
    L.append("tools/bench.sh --help          # all options (--reps N, --scale S, --allocators a,b,...)")
    L.append("```")
    L.append("")
    L.append("On Debian 12, run as root the first time: the script installs what is missing with "
             "`tools/install-deps.sh bench` (compilers, `valgrind`, `gnuplot-nox`, `libbenchmark-dev`, the allocators "
             "compared against: `libjemalloc2`, `libmimalloc2.0`, `libtcmalloc-minimal4`, and `linux-perf`); as "
             "another user it names the missing packages and stops. So glibc, jemalloc, mimalloc and tcmalloc are "
             "always in the comparison on Debian. It builds a Release tree "
             "in `build-bench/` (the default background scavenger) and the library alone with the other two "
             "scavenger policies in `build-bench-eager/` and `build-bench-off/`, runs every workload under every allocator interleaved (for each repetition, "
             "for each workload, for each allocator, the allocator order rotating between repetitions, so drift "
             "on the machine hits all allocators alike), prints median tables, writes "
             "`bench/results/latest.json` and the plots, and regenerates this page.")
    L.append("")
    L.append("Each workload is an ordinary C program in `bench/workloads/` that calls plain `malloc`/`free`/"
             "`realloc`; the allocator under test is chosen with `LD_PRELOAD` (glibc: none). Each checks its own "
             "data (blocks are stamped and verified before being freed; a mismatch exits with status 3), so a "
             "failed run here is a correctness finding, listed below. Runs are deterministic (fixed seeds). "
             "`ctest -L bench-smoke` (in a build tree; `ctest --test-dir build-bench/bench -L bench-smoke` when the "
             "tests are configured off) runs every workload once at a tiny size, also under spanalloc, without "
             "timing anything.")
    L.append("")
    L.append("Time is the workload's own timed section (seconds, printed on its RESULT line). Peak RSS is the "
             "program's `VmHWM`, the high-water mark the kernel also reports as `getrusage` `ru_maxrss`, read from "
             "`/proc/self/status` because `ru_maxrss` survives `execve` and would include the RSS of the process "
             "that started the workload (both are on the RESULT line). `server_threads` and `thread_churn` are "
             "throughput workloads: they run for a fixed time (what their models, larson and glibc's "
             "bench-malloc-thread, do) and report operations per second, so they have their own table; a fixed "
             "time would make their seconds equal under every allocator, and counting them so would pull every "
             "geometric mean towards 1. Wherever the suite is summed up (geometric means, targets, the policy "
             "table, the plots) a throughput row counts as time per unit of work, 1 / (ops/s), which is what its "
             "time would be for a fixed amount of work. Tables show medians over the repetitions; "
             "ratios are "
             f"{subject}/baseline (below 1 = {subject} is faster or smaller); the geometric-mean row normalises "
             "each allocator to glibc over all workload rows. The `spanalloc` column is the default build "
             "(background scavenger); the other policy builds are compared in the scavenger section.")
    L.append("")
    L.append("## What each workload models")
    L.append("")
    for w in doc["workloads"]:
        L.append(f"- **{w['name']}** (threads {', '.join(map(str, w['threads']))}): "
                 f"{WORKLOAD_TEXT.get(w['name'], '')}")
    L.append("")
    L.append("## Latest results")
    L.append("")
    L.append(f"- date: {doc['date']}; set: {doc['set']}, {doc['reps']} repetitions, scale {doc['scale']:g}; "
             f"{doc.get('elapsed_seconds', 0):.0f} s of runs")
    hv = f", {m['hypervisor']} guest" if m.get("hypervisor") else ""
    L.append(f"- machine: {m.get('cpu', '?')} ({m.get('nproc')} CPUs{hv}), {m.get('mem_total_mib', '?')} MiB, "
             f"Linux {m.get('kernel')}, {m.get('glibc', '')}, transparent huge pages: {m.get('thp', '?')}")
    vers = []
    for a in doc["allocators"]:
        v = a.get("version")
        extra = (" with " + ",".join(f"{k}={x}" for k, x in a["env"].items())) if a.get("env") else ""
        if v and v.split()[0] == a["name"]:
            v = " ".join(v.split()[1:])
        vers.append(f"{a['name']}{(' ' + v) if v else ''}{extra}")
    L.append(f"- allocators: {'; '.join(vers)}")
    if m.get("loadavg_start") is not None:
        L.append(f"- load average (1 min) when the runs started / ended: {m['loadavg_start']} / "
                 f"{m.get('loadavg_end', '?')} — anything well above 0 means other work shared the cores and the "
                 "timings are noisier than usual (prodcons is the most sensitive: its time depends on whether "
                 "producer and consumer really run in parallel)")
    L.append(f"- the machine has {m.get('nproc')} cores: the 4-thread rows oversubscribe it (and prodcons -t 2 "
             "already runs 4 threads), which shows how an allocator behaves when threads are descheduled while "
             "holding its locks; they do not show scaling beyond 2 cores.")
    L.append("")
    tt = build_table(doc, "seconds", "s", subject, metric="seconds")
    if tt[1]:
        L.append("### Time (median seconds, lower is better)")
        L.append("")
        L.append(md_table(*tt))
        L.append("")
    thr = build_table(doc, "ops_per_sec", "mops", subject, metric="ops_per_sec")
    if thr[1]:
        L.append("### Throughput (median million operations per second, higher is better)")
        L.append("")
        L.append(f"Fixed-time runs; here the ratios are of ops/s, so above 1 = {subject} is faster.")
        L.append("")
        L.append(md_table(*thr))
        L.append("")
    sg = suite_geomeans(doc, subject)
    if sg:
        L.append("### The whole suite (geometric means over every row of both tables, ×glibc)")
        L.append("")
        L.append(md_plain(*sg))
        L.append("")
    bt = batch_table(doc, subject)
    if bt:
        L.append("### batch: ns per malloc+free pair, 1 thread (median)")
        L.append("")
        L.append("Per case: N blocks of one size (32 B) or mixed sizes, freed in allocation order (fifo), in "
                 "reverse (lifo) or in a fixed random order. The other thread counts are in the JSON "
                 "(`ns_<size>_<N>_<order>` on each run's RESULT line).")
        L.append("")
        L.append(md_plain(*bt))
        L.append("")
    L.append("### Peak RSS (median MiB, lower is better)")
    L.append("")
    L.append(md_table(*build_table(doc, "peak_rss_kb", "mib", subject)))
    L.append("")
    if "time_ratio.png" in plots:
        L.append("### Plots")
        L.append("")
        for p, alt in (("time_ratio.png", "median time of each allocator relative to glibc, per workload"),
                       ("rss_ratio.png", "median peak RSS relative to glibc, per workload")):
            if p in plots:
                L.append(f"![{alt}]({plot_rel}/{p})")
                L.append("")
    if doc.get("failures"):
        L.append("### Failed runs")
        L.append("")
        L.append("A failed run is a bug to chase (the workloads check their data): ")
        L.append("")
        for f in doc["failures"]:
            err = (f.get("stderr_tail") or "").strip().splitlines()
            L.append(f"- `{f['workload']}` -t {f['threads']} under **{f['alloc']}** (rep {f['rep'] + 1}): "
                     f"{f['problem']}; command: `{f['command']}`" + (f"; stderr: `{err[-1][:200]}`" if err else ""))
        L.append("")
    L.append("### Where we stand against the targets")
    L.append("")
    L += targets_section(doc, ins, subject)
    L.append("")
    L.append("The allocators to beat in the end are mimalloc and tcmalloc (on suites of this kind about 13% and 20% "
             "faster than glibc, at 25–70% more peak RSS). A row where spanalloc loses is a finding, not noise to "
             "hide: look at the per-workload ratios above.")
    L.append("")
    L += loss_notes(doc, subject)
    L += scavenger_section(doc, subject, plots, plot_rel)
    L += baselines_section(perf_dir)
    L += perf_section(perf_dir)
    if ins:
        L.append("## Instructions per malloc+free pair (callgrind)")
        L.append("")
        L.append(f"`tools/bench.sh --instructions`, {ins['date']}: `bench/workloads/fastpath_loop.c` (the pair loop: "
                 "one malloc and its free per iteration; the batch: `-B 1000`, 1000 mallocs and then their 1000 frees "
                 "in allocation order) runs under `valgrind --tool=callgrind` with N1 = "
                 f"{ins['n1']} and N2 = {ins['n2']} pairs; the table shows (Ir(N2) − Ir(N1)) / (N2 − N1), so "
                 "start-up cancels, without the instructions of the loop program's own code (callgrind's self cost "
                 "of `fastpath_loop`, about 11 per pair in the pair loop and 15 in the batch, shown in the JSON as `with_loop`; issue 10 quoted the batch figures with it). This is the stable "
                 "fast-path figure on a noisy machine. The Debian builds are what a user gets from apt, with "
                 "their packaging's build options.")
        L.append("")
        L.append(md_plain(*instructions_table(ins)))
        L.append("")
    if micro and micro.get("runs"):
        L.append("## Microbenchmarks (google-benchmark)")
        L.append("")
        L.append(f"`tools/bench.sh --micro`, {micro['date']}: `bench_micro_malloc` preloaded with each allocator, "
                 "plus `bench_micro_sa` (the `sa_` API, statically linked) as `sa_api`. Nanoseconds per "
                 "malloc+free pair, 1 thread (full output, all threads and the batch/realloc/aligned benchmarks: "
                 "`bench/results/micro.json`).")
        L.append("")
        L.append(md_plain(*micro_table(micro)))
        L.append("")
    L.append("## Looking inside: size-class occupancy")
    L.append("")
    L.append("`tools/stats_report.py` turns the JSON report of `SPANALLOC=stats=1,stats_format=json` (printed on "
             "stderr at exit; `sa_stats_print(fp, \"json\")` writes the same) into a table and a PNG of live bytes "
             "and mallocs per size class (a process that runs children prints one report each; the last one, "
             "usually the parent's, is shown unless `--index N` picks another). `ctest -L bench-smoke` checks it on "
             "a small generated report.")
    L.append("")
    L.append("```sh")
    L.append("SPANALLOC=stats=1,stats_format=json LD_PRELOAD=build-bench/lib/libspanalloc.so \\")
    L.append("    python3 -c 'import json; d = [str(i) * 40 for i in range(100000)]' 2>stats.json")
    L.append("tools/stats_report.py stats.json --png occupancy.png")
    L.append("some-program 2>&1 >/dev/null | tools/stats_report.py - --png occupancy.png   # from a pipe")
    L.append("```")
    L.append("")
    L.append("## Not measured yet")
    L.append("")
    L.append("- `SPANALLOC_MADVISE=free`: RSS drops only under memory pressure, which this machine does not have, "
             "so the RSS plot would show nothing; its cost side can be measured with "
             "`bench_run.py --alloc NAME=LIB` on a `-DSPANALLOC_MADVISE=free` build;")
    L.append("- the optional garbage collector (issue 6): `tools/bench.sh --gc` is a placeholder.")
    L.append("")
    return "\n".join(L)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--plots", help="directory for the PNG plots")
    p.add_argument("--docs", help="markdown file to regenerate")
    p.add_argument("--instructions", help="instructions.json to include in the docs")
    p.add_argument("--micro", help="micro.json to include in the docs")
    p.add_argument("--perf-dir", help="directory of the stored perf-*.txt profiles")
    p.add_argument("--subject", default="spanalloc")
    args = p.parse_args()
    doc = load(args.results)
    ins = load(args.instructions) if args.instructions and os.path.exists(args.instructions) else None
    micro = load(args.micro) if args.micro and os.path.exists(args.micro) else None

    print(f"\nspanalloc benchmarks — {doc['date']} — {doc['machine'].get('cpu')} ({doc['machine'].get('nproc')} CPUs)"
          f" — set {doc['set']}, {doc['reps']} reps, scale {doc['scale']:g}\n")
    tt = build_table(doc, "seconds", "s", args.subject, metric="seconds")
    if tt[1]:
        print("Time: median seconds (lower is better)")
        print(text_table(*tt))
    thr = build_table(doc, "ops_per_sec", "mops", args.subject, metric="ops_per_sec")
    if thr[1]:
        print("\nThroughput: median M ops/s (higher is better; ratios of ops/s)")
        print(text_table(*thr))
    sg = suite_geomeans(doc, args.subject)
    if sg:
        print("\nWhole suite, geomean ×glibc (throughput rows as time per op)")
        print(plain_table(*sg))
    bt = batch_table(doc, args.subject)
    if bt:
        print("\nbatch: ns per malloc+free pair, 1 thread")
        print(plain_table(*bt))
    print("\nPeak RSS: median MiB (lower is better)")
    print(text_table(*build_table(doc, "peak_rss_kb", "mib", args.subject)))
    for w in PHASE_WORKLOADS:
        ph = phase_table(doc, w)
        if ph[1]:
            print(f"\n{w}: RSS through the phases (MiB; x/live = (RSS - RSS at start) / live heap; "
                  "settle = ms until x/live <= 1.10)")
            print(plain_table(*ph))
    pt = policy_table(doc, args.subject)
    if pt:
        print(f"\nScavenger policy cost: median seconds per policy build, ratio to off (target background/off < "
              f"{TARGET_POLICY:.2f}); off spread = (max - min) / median of the off repetitions")
        print(text_table(pt[0], pt[1], pt[2]))
    for text, v, sp, st in scavenger_targets(doc, args.subject) + target_rows(doc, ins, args.subject):
        print(f"target: {text}: {v} [{sp}] -> {st.strip('*')}")
    print("\n(FAIL = every run failed, ! = some runs failed; ratios are "
          f"{args.subject}/baseline; geomean row: each allocator normalised to glibc)")
    if doc.get("failures"):
        print(f"\n{len(doc['failures'])} FAILED RUN(S):")
        for f in doc["failures"]:
            print(f"  {f['workload']} -t {f['threads']} under {f['alloc']} (rep {f['rep'] + 1}): {f['problem']}")
            print(f"    command: {f['command']}")
            for line in (f.get("stderr_tail") or "").strip().splitlines()[-5:]:
                print(f"    | {line}")
    plots = []
    if args.plots:
        plots = write_plots(doc, args.plots, args.subject)
        if plots:
            print(f"\nplots: {', '.join(os.path.join(args.plots, p) for p in plots)}")
    if args.docs:
        rel = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.docs))) if args.plots else "."
        page = docs_page(doc, plots, ins, micro, args.subject, rel, args.perf_dir)
        tmp = args.docs + ".tmp"
        with open(tmp, "w") as f:
            f.write(page)
        os.replace(tmp, args.docs)
        print(f"docs: regenerated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

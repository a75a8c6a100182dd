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

BASELINES = ("glibc", "jemalloc")

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


def summarize(doc):
    """Returns (configs, allocs, cell) where cell[(w, t, alloc)] holds medians."""
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
    return str(v)


def build_table(doc, field, kind, subject):
    """Rows for one metric: header, body rows, geomean row (lists of str)."""
    configs, allocs, cell = summarize(doc)
    allocs = [a for a in allocs if not is_variant(a, subject)]
    has_subject = subject in allocs
    ratio_cols = [b for b in BASELINES if has_subject and b in allocs and b != subject]
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
    xs = c.get("seconds_all") if c else None
    if not xs or len(xs) < 2 or not c.get("seconds"):
        return None
    return (xs[-1] - xs[0]) / c["seconds"]


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
        off = value(cell, w, t, names["off"], "seconds")
        if off is None:
            continue
        row = [w, str(t)] + [fmt(value(cell, w, t, n, "seconds"), "s") for n, _ in pols]
        for pol in others:
            r = ratio(value(cell, w, t, names[pol], "seconds"), off)
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
            for field, name, ylabel in (("seconds", "time_ratio.png", "median time / glibc (log scale, lower is better)"),
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
    allocs = [a["name"] for a in ins["allocators"]]
    sizes = sorted({r["bytes"] for r in ins["rows"]})
    header = ["bytes"] + allocs
    rows = []
    for s in sizes:
        row = [str(s)]
        for a in allocs:
            v = next((r["instructions_per_pair"] for r in ins["rows"] if r["alloc"] == a and r["bytes"] == s), None)
            row.append(f"{v:.1f}" if v is not None else "FAIL")
        rows.append(row)
    return header, rows


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

def targets_section(doc, ins, subject):
    configs, allocs, cell = summarize(doc)
    if subject not in allocs:
        return [f"`{subject}` was not part of this run; no target check."]
    lines = []
    def geo(field, base):
        return gmean([ratio(value(cell, w, t, subject, field), value(cell, w, t, base, field)) for w, t in configs])
    checks = []
    if "glibc" in allocs:
        g = geo("seconds", "glibc")
        checks.append(("geomean time vs glibc: at least 25% faster (ratio ≤ 0.75)", g, g is not None and g <= 0.75))
        r = geo("peak_rss_kb", "glibc")
        checks.append(("geomean peak RSS vs glibc: within 10% (ratio ≤ 1.10)", r, r is not None and r <= 1.10))
    if "jemalloc" in allocs:
        g = geo("seconds", "jemalloc")
        checks.append(("geomean time vs jemalloc: faster (ratio < 1)", g, g is not None and g < 1.0))
        r = geo("peak_rss_kb", "jemalloc")
        checks.append(("geomean peak RSS vs jemalloc: no worse (ratio ≤ 1)", r, r is not None and r <= 1.0))
    if ins:
        small = sorted((r["bytes"], r["instructions_per_pair"]) for r in ins["rows"]
                       if r["alloc"] == subject and r["instructions_per_pair"] is not None)
        if small:
            b, v = small[0]
            checks.append((f"fast path: ≤ ~20 instructions per malloc+free pair of a small class ({b} B, callgrind)",
                           v, v <= 20))
    for base in ("glibc", "jemalloc"):
        if base not in allocs:
            continue
        losses = []
        for w, t in configs:
            r = ratio(value(cell, w, t, subject, "seconds"), value(cell, w, t, base, "seconds"))
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
                g = gmean([ratio(value(cell, w, t, subject, "seconds"), value(cell, w, t, base, "seconds"))
                           for w, t in rest])
                parts.append(f"{subject}/{base} {fmt(g, 'x')}")
        lines.append("- large_blocks moves the geometric mean most (ratios far from 1 for some allocators); "
                     "without it the time geomean is " + ", ".join(parts))
    lines.append("")
    lines.append("| target (issue 3) | measured | met? |")
    lines.append("|---|---:|:---:|")
    for text, v, ok in checks:
        lines.append(f"| {text} | {fmt(v, 'x') if v is not None else '-'} | {'yes' if ok else '**no**'} |")
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
                r = ratio(value(cell, w, t, subject, "seconds"), value(cell, w, t, base, "seconds"))
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
    """[(text, measured str, ok)] for issue 4's targets."""
    _, allocs, cell = summarize(doc)
    out = []
    c = cell.get(("phase_change", 1, subject))
    if c and c.get("live_kb"):
        r1 = heap_ratio(c, "rss_1s_kb")
        out.append((f"phase_change, background policy: RSS − start RSS within 10% of the live heap 1 s after the "
                    f"free (ratio ≤ {TARGET_SETTLE:.2f})", f"{r1:.2f}" if r1 is not None else "-",
                    r1 is not None and r1 <= TARGET_SETTLE))
    pt = policy_table(doc, subject)
    if pt and "background" in pt[3]:
        g = pt[3]["background"]
        out.append((f"policy cost: workload-suite time background/off, geometric mean (< {TARGET_POLICY:.2f})",
                    f"{g:.3f}" if g else "-", g is not None and g < TARGET_POLICY))
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
        L.append("Median time of every workload under each policy build, and the ratio to `off` (no madvise at all); "
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
        L.append("| target (issue 4) | measured | met? |")
        L.append("|---|---:|:---:|")
        for text, v, ok in tg:
            L.append(f"| {text} | {v} | {'yes' if ok else '**no**'} |")
        L.append("")
    return L


def docs_page(doc, plots, ins, micro, subject, plot_rel):
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
    L.append("                               #   and scavenger policy (about 7 minutes on 2 cores, builds included)")
    L.append("tools/bench.sh --full          # longer runs (scale 2), 5 repetitions, + --micro and --instructions")
    L.append("tools/bench.sh --only tokenizer   # one workload (writes bench/results/only-tokenizer.json)")
    L.append("tools/bench.sh --instructions  # callgrind: instructions per malloc+free pair")
    L.append("tools/bench.sh --micro         # google-benchmark microbenchmarks under every allocator")
    L.append("tools/bench.sh --no-policies   # without the spanalloc-eager / spanalloc-off builds")
    L.append("tools/bench.sh --help          # all options (--reps N, --scale S, --allocators a,b,...)")
    L.append("```")
    L.append("")
    L.append("On Debian 12, run as root the first time: the script installs what is missing (`cmake`, "
             "`build-essential`, `libbenchmark-dev`, `libjemalloc2`, `gnuplot-nox`, `python3`, `valgrind`); as "
             "another user it names the missing packages and stops. mimalloc (`libmimalloc2.0`) and tcmalloc "
             "(`libtcmalloc-minimal4`) get their own columns when they are installed. It builds a Release tree "
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
             "that started the workload (both are on the RESULT line). Tables show medians over the repetitions; "
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
    L.append("### Time (median seconds, lower is better)")
    L.append("")
    L.append(md_table(*build_table(doc, "seconds", "s", subject)))
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
    if ins:
        L.append("## Instructions per malloc+free pair (callgrind)")
        L.append("")
        L.append(f"`tools/bench.sh --instructions`, {ins['date']}: `bench/workloads/fastpath_loop.c` (one malloc and "
                 "its free per iteration) runs under `valgrind --tool=callgrind` with N1 = "
                 f"{ins['n1']} and N2 = {ins['n2']} pairs; the table shows (Ir(N2) − Ir(N1)) / (N2 − N1), so "
                 "start-up cancels, without the instructions of the loop program's own code (callgrind's self cost "
                 "of `fastpath_loop`, about 11 per pair, shown in the JSON as `with_loop`). This is the stable "
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
    p.add_argument("--subject", default="spanalloc")
    args = p.parse_args()
    doc = load(args.results)
    ins = load(args.instructions) if args.instructions and os.path.exists(args.instructions) else None
    micro = load(args.micro) if args.micro and os.path.exists(args.micro) else None

    print(f"\nspanalloc benchmarks — {doc['date']} — {doc['machine'].get('cpu')} ({doc['machine'].get('nproc')} CPUs)"
          f" — set {doc['set']}, {doc['reps']} reps, scale {doc['scale']:g}\n")
    print("Time: median seconds (lower is better)")
    print(text_table(*build_table(doc, "seconds", "s", args.subject)))
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
    for text, v, ok in scavenger_targets(doc, args.subject):
        print(f"issue 4 target: {text}: {v} -> {'met' if ok else 'NOT met'}")
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
        page = docs_page(doc, plots, ins, micro, args.subject, rel)
        tmp = args.docs + ".tmp"
        with open(tmp, "w") as f:
            f.write(page)
        os.replace(tmp, args.docs)
        print(f"docs: regenerated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

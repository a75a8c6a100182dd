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
        "sleeps, build the 90% again, free everything. The time excludes the idle; the RSS right after the "
        "free and after the idle shows whether the allocator gives memory back (the scavenger's stage)."),
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
            for extra in ("rss_built_kb", "rss_after_free_kb", "rss_after_idle_kb", "rss_rebuilt_kb", "rss_end_kb",
                          "passive_seconds", "active_seconds"):
                vals = [r["result"][extra] for r in ok if extra in r["result"]]
                if vals:
                    c[extra] = median(vals)
            # the run whose time is the median (for the RSS-over-time plot)
            ok_sorted = sorted(ok, key=lambda r: r["result"]["seconds"])
            c["median_run"] = ok_sorted[(len(ok_sorted) - 1) // 2]
        cell[key] = c
    configs = [c for c in configs if any((c[0], c[1], a) in cell for a in allocs)]
    return configs, allocs, cell


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
    return str(v)


def build_table(doc, field, kind, subject):
    """Rows for one metric: header, body rows, geomean row (lists of str)."""
    configs, allocs, cell = summarize(doc)
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


def text_table(header, rows, geo):
    widths = [max(len(r[i]) for r in [header] + rows + [geo]) for i in range(len(header))]
    def line(r):
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows] + [sep, line(geo)])


def md_table(header, rows, geo):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("| " + " | ".join(f"**{c}**" if c else "" for c in geo) + " |")
    return "\n".join(out)


def phase_table(doc):
    _, allocs, cell = summarize(doc)
    header = ["allocator", "built MiB", "after free MiB", "after idle MiB", "rebuilt MiB", "peak MiB", "idle/built"]
    rows = []
    for a in allocs:
        c = cell.get(("phase_change", 1, a))
        if not c or "rss_built_kb" not in c:
            continue
        rows.append([a, fmt(c["rss_built_kb"], "mib"), fmt(c["rss_after_free_kb"], "mib"),
                     fmt(c["rss_after_idle_kb"], "mib"), fmt(c["rss_rebuilt_kb"], "mib"),
                     fmt(c["peak_rss_kb"], "mib"), fmt(ratio(c["rss_after_idle_kb"], c["rss_built_kb"]), "x")])
    return header, rows


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


def write_plots(doc, outdir):
    term = gnuplot_terminal()
    if not term:
        print("bench_report: gnuplot not found (Debian: gnuplot-nox); no plots", file=sys.stderr)
        return []
    configs, allocs, cell = summarize(doc)
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
        series_files = []
        for a in allocs:
            c = cell.get(("phase_change", 1, a))
            if c and c.get("median_run", {}).get("rss_series"):
                dat = os.path.join(tmp, f"phase_{len(series_files)}.dat")
                with open(dat, "w") as f:
                    for tt, kb in c["median_run"]["rss_series"]:
                        f.write(f"{tt} {kb / 1024:.2f}\n")
                series_files.append((a, dat))
        if series_files:
            plot = ", ".join(f"'{d}' using 1:2 with lines lw 2 title '{a}'" for a, d in series_files)
            script += ["unset logscale y", "unset arrow 1", "set style data lines", "set xtics norotate",
                       "set format y '%g'", f"set terminal {term} size 1000,500 font ',10'", "set termoption noenhanced",
                       f"set output '{os.path.join(outdir, 'phase_change_rss.png')}'",
                       "set title 'phase_change: RSS over time (VmRSS sampled every 20 ms; median run)'",
                       "set xlabel 'seconds since start'", "set ylabel 'RSS (MiB)'", "set key top right",
                       "set yrange [0:*]", f"plot {plot}"]
            made.append("phase_change_rss.png")
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
    L.append("tools/bench.sh                 # quick set: every workload, 3 repetitions (about 5 minutes on 2 cores)")
    L.append("tools/bench.sh --full          # longer runs (scale 2), 5 repetitions, + --micro and --instructions")
    L.append("tools/bench.sh --only tokenizer   # one workload (writes bench/results/only-tokenizer.json)")
    L.append("tools/bench.sh --instructions  # callgrind: instructions per malloc+free pair")
    L.append("tools/bench.sh --micro         # google-benchmark microbenchmarks under every allocator")
    L.append("tools/bench.sh --help          # all options")
    L.append("```")
    L.append("")
    L.append("On Debian 12, run as root the first time: the script installs what is missing (`cmake`, "
             "`build-essential`, `libbenchmark-dev`, `libjemalloc2`, `gnuplot-nox`, `python3`, `valgrind`); as "
             "another user it names the missing packages and stops. mimalloc (`libmimalloc2.0`) and tcmalloc "
             "(`libtcmalloc-minimal4`) get their own columns when they are installed. It builds a Release tree "
             "in `build-bench/`, runs every workload under every allocator interleaved (for each repetition, "
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
             "each allocator to glibc over all workload rows.")
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
    ph = phase_table(doc)
    if ph[1]:
        L.append("### Memory given back: phase_change")
        L.append("")
        L.append("RSS (VmRSS) after building the heap, right after freeing 90% of it, after 1.5 s idle, and after "
                 "building it again; idle/built near 1 means nothing went back to the OS during the idle.")
        L.append("")
        L.append(md_plain(*ph))
        L.append("")
    if "time_ratio.png" in plots or "phase_change_rss.png" in plots:
        L.append("### Plots")
        L.append("")
        for p, alt in (("time_ratio.png", "median time of each allocator relative to glibc, per workload"),
                       ("rss_ratio.png", "median peak RSS relative to glibc, per workload"),
                       ("phase_change_rss.png", "RSS over time in phase_change")):
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
    L.append("## Not measured yet")
    L.append("")
    L.append("- the scavenger's policies (issue 4) will add columns as allocator variants "
             "(`bench_run.py --alloc NAME=LIB,VAR=VALUE`); `phase_change` is the workload that shows them;")
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
    ph = phase_table(doc)
    if ph[1]:
        print("\nphase_change: RSS through the phases (MiB)")
        print(plain_table(*ph))
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
        plots = write_plots(doc, args.plots)
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

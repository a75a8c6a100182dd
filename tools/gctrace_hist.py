#!/usr/bin/env python3
"""gctrace_hist.py — a pause histogram (PNG, gnuplot) from gctrace logs.

    tools/gctrace_hist.py [-o pauses.png] [--mode auto|concurrent|stw] LOG...

Each LOG holds the lines SPANALLOC=gctrace=1 (or Go's GODEBUG=gctrace=1)
prints on stderr, other lines are skipped:

    gc 7 @0.187s 18%: 0.021+16.027+0.033 ms clock, ... 16->16->16 MB, ...

The clock triple is stop-the-world sweep termination + concurrent mark +
stop-the-world mark termination. In concurrent mode the first and the last
are two pauses; in stop-the-world mode (spanalloc gc_mode=stw) the whole
triple is one pause. --mode auto (default) takes a log whose file name
contains "stw" as stop-the-world, any other as concurrent.

Bins are powers of two in microseconds; several logs become clustered bars
named after their files. A summary per log (pauses, p50, p99, max, in us)
goes to stdout. Needs gnuplot (Debian: gnuplot-nox), as tools/bench_report.py.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

LINE = re.compile(r"^gc (\d+) @([\d.]+)s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock")


def pauses_of(path, mode):
    """Pause lengths in microseconds, in order."""
    if mode == "auto":
        mode = "stw" if "stw" in os.path.basename(path) else "concurrent"
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            a, b, c = (float(m.group(i)) * 1000.0 for i in (4, 5, 6))
            if mode == "stw":
                out.append(a + b + c)
            else:
                out += [a, c]
    return out, mode


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    return sorted_vals[int((len(sorted_vals) - 1) * p / 100)]


def gnuplot_terminal():
    try:
        r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return "pngcairo" if "pngcairo" in (r.stdout + r.stderr) else "png"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", help="gctrace logs")
    ap.add_argument("-o", "--output", default="gc_pauses.png", help="PNG to write (default gc_pauses.png)")
    ap.add_argument("--mode", choices=("auto", "concurrent", "stw"), default="auto")
    ap.add_argument("--title", default="stop-the-world pauses (gctrace)")
    args = ap.parse_args()

    series = []
    for path in args.logs:
        vals, mode = pauses_of(path, args.mode)
        if not vals:
            print(f"gctrace_hist: no gctrace lines in {path}", file=sys.stderr)
            continue
        name = os.path.basename(path)
        if name.endswith(".gctrace"):
            name = name[: -len(".gctrace")]
        s = sorted(vals)
        print(f"{name}: mode={mode} pauses={len(s)} p50_us={percentile(s, 50):.1f} "
              f"p99_us={percentile(s, 99):.1f} max_us={s[-1]:.1f}")
        series.append((name, vals))
    if not series:
        return 1

    lo = min(min(v) for _, v in series)
    hi = max(max(v) for _, v in series)
    edge = 1.0
    while edge * 2 <= max(lo, 1.0):
        edge *= 2
    edges = [edge]
    while edges[-1] <= hi:
        edges.append(edges[-1] * 2)

    term = gnuplot_terminal()
    if not term:
        print("gctrace_hist: gnuplot not found (Debian: gnuplot-nox); no plot", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "hist.dat")
        with open(dat, "w") as f:
            for i in range(len(edges) - 1):
                counts = [sum(1 for x in v if edges[i] <= x < edges[i + 1]) for _, v in series]
                label = f"{edges[i]:g}-{edges[i + 1]:g}"
                f.write(f"\"{label}\" " + " ".join(str(c) for c in counts) + "\n")
        plot = ", ".join((f"'{dat}' using {i + 2}:xtic(1)" if i == 0 else f"'' using {i + 2}") + f" title '{n}'"
                         for i, (n, _) in enumerate(series))
        gp = os.path.join(tmp, "hist.gp")
        with open(gp, "w") as f:
            f.write("\n".join([
                f"set terminal {term} size 1000,520 font ',10'",
                "set termoption noenhanced",
                f"set output '{os.path.abspath(args.output)}'",
                f"set title '{args.title}'",
                "set style data histograms",
                "set style histogram clustered gap 1",
                "set style fill solid 0.85 border -1",
                "set boxwidth 0.9",
                "set xtics rotate by -40 left",
                "set xlabel 'pause (microseconds, power-of-two bins)'",
                "set ylabel 'pauses'",
                "set grid ytics",
                "set key top right",
                "set yrange [0:*]",
                f"plot {plot}",
            ]) + "\n")
        r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print("gctrace_hist: gnuplot failed:\n" + r.stderr, file=sys.stderr)
            return 1
    print(f"gctrace_hist: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""stats_report.py — a spanalloc JSON stats report as a table and a PNG.

  tools/stats_report.py [FILE|-] [--png PATH] [--no-png] [--index N] [--all]

Reads the JSON object that `SPANALLOC=stats=1,stats_format=json` prints on
stderr at exit (or that `sa_stats_print(fp, "json")` writes) from FILE or
stdin ("-" or no FILE). Lines around the object that are not JSON (the
program's own output, warnings) are skipped. A program that forks or runs
children under the same environment prints one report per process; the last
one is used (usually the parent, which exits last), or the one chosen with
--index (0 = first, -1 = last).

Prints the heap summary and, per size class that saw any allocation (every
class with --all), mallocs, frees, live objects and live bytes; writes a PNG
(default spanalloc-stats.png) with two bar charts: live bytes per size class,
and mallocs per size class (log scale). Class 0 stands for large objects
(beyond the biggest size class).

The PNG is drawn with gnuplot (Debian: gnuplot-nox). If gnuplot is missing
the script installs gnuplot-nox when run as root on Debian (apt-get), unless
--no-install is given; otherwise it names the package and exits 1 after the
table. Python 3 standard library only.

Example:
  SPANALLOC=stats=1,stats_format=json tools/spanalloc-run python3 -c 'print(1)' 2>stats.json
  tools/stats_report.py stats.json --png stats.png
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def find_reports(text):
    """Every top-level JSON object in text that looks like a stats report."""
    dec = json.JSONDecoder()
    out = []
    pos = 0
    for m in re.finditer(r"^[ \t]*\{", text, re.M):
        start = m.end() - 1
        if start < pos:
            continue  # inside an object already decoded
        try:
            obj, end = dec.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and ("by_size" in obj or "heap_alloc" in obj):
            out.append(obj)
            pos = end
    return out


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def class_label(c):
    return "large" if c.get("class") == 0 or not c.get("size") else str(c["size"])


def summary_lines(r):
    b = r.get("build") or {}
    lines = [f"spanalloc {r.get('version', '?')}: scavenger={b.get('scavenger', '?')} "
             f"madvise={b.get('madvise', '?')} valgrind={b.get('valgrind', '?')}"]
    fields = [("heap_alloc", "live bytes in objects"), ("total_alloc", "bytes allocated, cumulative"),
              ("heap_inuse", "bytes in spans"), ("heap_idle", "free bytes in the page heap"),
              ("heap_released", "of which released to the OS"), ("heap_sys", "heap bytes from the OS"),
              ("sys", "all bytes from the OS")]
    for k, what in fields:
        if k in r:
            lines.append(f"  {k:<15} {r[k]:>16,}  {human(r[k]):>11}  {what}")
    for k, what in (("mallocs", "allocations"), ("frees", "frees"), ("heap_objects", "live objects")):
        if k in r:
            lines.append(f"  {k:<15} {r[k]:>16,}  {'':>11}  {what}")
    if r.get("heap_inuse"):
        lines.append(f"  heap_alloc / heap_inuse = {r.get('heap_alloc', 0) / r['heap_inuse']:.1%} "
                     "(how full the spans in use are)")
    if "scav_released" in r:
        lines.append(f"  scavenger: {human(r['scav_released'])} released in {r.get('scav_madvise_calls', 0)} "
                     f"madvise calls, {r.get('scav_ns', 0) / 1e6:.1f} ms; {r.get('pages_faulted', 0)} pages "
                     "faulted back")
    return lines


def class_rows(r, show_all):
    rows = []
    total = sum(c.get("bytes", 0) for c in r.get("by_size", [])) or 1
    for c in r.get("by_size", []):
        if not show_all and not c.get("mallocs") and not c.get("objects"):
            continue
        rows.append([str(c.get("class", "?")), class_label(c), str(c.get("mallocs", 0)), str(c.get("frees", 0)),
                     str(c.get("objects", 0)), str(c.get("bytes", 0)), f"{100.0 * c.get('bytes', 0) / total:.1f}%"])
    return rows


def table(header, rows):
    widths = [max(len(x[i]) for x in [header] + rows) for i in range(len(header))]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def ensure_gnuplot(may_install):
    if shutil.which("gnuplot"):
        return True
    if may_install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("stats_report: installing gnuplot-nox (apt-get)", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "update"], env=env, check=False).returncode == 0 and \
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "gnuplot-nox"], env=env,
                           check=False).returncode == 0
        return ok and shutil.which("gnuplot") is not None
    print("stats_report: gnuplot not found; install the Debian package gnuplot-nox "
          "(sudo apt-get install gnuplot-nox)", file=sys.stderr)
    return False


def write_png(r, path, show_all, title):
    classes = [c for c in r.get("by_size", []) if show_all or c.get("mallocs") or c.get("objects")]
    if not classes:
        print("stats_report: no size class saw an allocation; nothing to plot", file=sys.stderr)
        return False
    r_term = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True, check=False)
    term = "pngcairo" if "pngcairo" in (r_term.stdout + r_term.stderr) else "png"
    width = max(900, 60 + 22 * len(classes))
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "classes.dat")
        with open(dat, "w") as f:
            for c in classes:
                # 0 mallocs cannot go on a log scale: NaN leaves the bar out
                m = c.get("mallocs", 0)
                f.write(f"\"{class_label(c)}\" {c.get('bytes', 0) / 1024:.3f} {m if m > 0 else 'NaN'}\n")
        title = title.replace("'", "")
        gp = "\n".join([
            f"set terminal {term} size {width},760 font ',9'",
            "set termoption noenhanced",
            f"set output '{os.path.abspath(path)}'",
            f"set multiplot layout 2,1 title '{title}'",
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.85 border -1", "set boxwidth 0.9",
            "set xtics rotate by -60 left", "set grid ytics", "unset key",
            "set xlabel 'size class (bytes; large = beyond the biggest class)'",
            "set title 'live bytes per size class (objects still allocated x class size)'",
            "set ylabel 'KiB'", "set yrange [0:*]",
            f"plot '{dat}' using 2:xtic(1) lc rgb '#3a7ebf'",
            "set title 'mallocs per size class (cumulative)'",
            "set ylabel 'mallocs (log scale)'", "set logscale y 10", "set yrange [1:*]",
            f"plot '{dat}' using 3:xtic(1) lc rgb '#d9822b'",
            "unset multiplot", ""])
        script = os.path.join(tmp, "plot.gp")
        with open(script, "w") as f:
            f.write(gp)
        res = subprocess.run(["gnuplot", script], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print("stats_report: gnuplot failed:\n" + res.stderr, file=sys.stderr)
            return False
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", default="-", help="file holding the report (default: stdin)")
    p.add_argument("--png", default="spanalloc-stats.png", help="where to write the plot (default: %(default)s)")
    p.add_argument("--no-png", action="store_true", help="print the table only")
    p.add_argument("--index", type=int, default=-1, help="which report when there are several (default: -1, the last)")
    p.add_argument("--all", action="store_true", help="list and plot every size class, also unused ones")
    p.add_argument("--no-install", action="store_true", help="never apt-get install gnuplot-nox")
    args = p.parse_args()

    if args.input == "-":
        text = sys.stdin.read()
        source = "stdin"
    else:
        try:
            with open(args.input, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            print(f"stats_report: {e}", file=sys.stderr)
            return 2
        source = args.input
    reports = find_reports(text)
    if not reports:
        print(f"stats_report: no spanalloc JSON stats report in {source} "
              "(run the program with SPANALLOC=stats=1,stats_format=json; the report goes to stderr)",
              file=sys.stderr)
        return 2
    try:
        r = reports[args.index]
    except IndexError:
        print(f"stats_report: --index {args.index}, but {source} holds {len(reports)} report(s)", file=sys.stderr)
        return 2
    idx = args.index % len(reports)
    if len(reports) > 1:
        print(f"stats_report: {len(reports)} reports in {source} (one per process); showing #{idx} "
              "(--index to choose)", file=sys.stderr)

    print("\n".join(summary_lines(r)))
    print()
    print(table(["class", "size", "mallocs", "frees", "objects", "live bytes", "share"], class_rows(r, args.all)))
    if args.no_png:
        return 0
    if not ensure_gnuplot(not args.no_install):
        return 1
    title = (f"spanalloc size classes: {human(r.get('heap_alloc', 0))} live in {r.get('heap_objects', 0)} objects, "
             f"{human(r.get('heap_inuse', 0))} in spans ({os.path.basename(source)}, report #{idx})")
    if not write_png(r, args.png, args.all, title):
        return 1
    print(f"\nplot: {args.png}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)

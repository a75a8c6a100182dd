#!/usr/bin/python3
"""bench_run.py — the runner behind tools/bench.sh (Python 3 standard library only).

Subcommands:
  workloads     run the workload matrix under every allocator, interleaved
                (for rep: for workload config: for allocator, the allocator
                order rotating each rep), sampling each child's VmRSS from
                /proc/PID/status every ~20 ms, and write one JSON file;
  micro         run the google-benchmark binaries under every allocator and
                write their JSON output into one file;
  instructions  count instructions per malloc+free pair with callgrind
                (the pair loop at several sizes, and batches of mallocs
                followed by their frees);
  perf          profile one workload under one allocator with `perf record
                -g` and store the top entries of `perf report --no-children`
                as text (tools/bench.sh --perf).

Allocators are given as --alloc NAME=PRELOAD[,ENVVAR=VALUE...]; an empty
PRELOAD means the system malloc (glibc). The ENV part is the hook for
variants of one library (e.g. a scavenger policy column, issue 4):
  --alloc 'spanalloc-noscav=build-bench/lib/libspanalloc.so,SPANALLOC_OPTIONS=...'

For spanalloc builds (names starting with "spanalloc"), the build options in
force (scavenger policy, madvise mode) are read from the library's own JSON
stats report and recorded with the allocator.

A run that exits non-zero, is killed by a signal, times out or prints no
RESULT line is recorded under "failures" with its command line and the tail
of its output; the other runs go on. The exit status is 1 when any run
failed, after the JSON is written.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# (name, program, extra arguments, thread counts, keep the RSS time series,
# at most this many repetitions in the quick set or None, metric). Scale 1.0
# is sized to about 1-3 s per run under glibc on the 2-core reference
# machine. The metric says what a run's cost is: "seconds" for a fixed amount
# of work (lower is better), "ops_per_sec" for a fixed-time run whose
# throughput is the result (higher is better; its seconds is only the run's
# length). The report compares both kinds as time per unit of work.
WORKLOADS = [
    ("server_churn", "server_churn", [], [1, 2, 4], False, None, "seconds"),
    ("prodcons", "prodcons", [], [1, 2, 4], False, None, "seconds"),
    ("false_sharing", "false_sharing", [], [1, 2, 4], False, None, "seconds"),
    ("phase_change", "phase_change", [], [1], True, None, "seconds"),
    ("phase_scattered", "phase_change", ["-m", "scattered"], [1], True, 1, "seconds"),
    ("large_blocks", "large_blocks", [], [1, 2, 4], False, None, "seconds"),
    ("tokenizer", "tokenizer", [], [1, 2, 4], False, None, "seconds"),
    ("server_threads", "server_threads", [], [1, 2, 4], False, None, "ops_per_sec"),
    ("thread_churn", "thread_churn", [], [1, 2, 4], False, None, "ops_per_sec"),
    ("batch", "batch", [], [1, 2, 4], False, None, "seconds"),
]
SETS = {
    # name: (repetitions, scale). The quick set runs every workload at half
    # size so that all allocators plus the scavenger-policy variants fit in
    # about six minutes on two cores.
    "quick": (3, 0.5),
    "full": (5, 2.0),
}
SAMPLE_INTERVAL = 0.02
RUN_TIMEOUT = 300.0


def parse_alloc(spec):
    name, _, rest = spec.partition("=")
    if not name:
        raise argparse.ArgumentTypeError("--alloc wants NAME=PRELOAD[,VAR=VALUE...]")
    parts = rest.split(",") if rest else [""]
    preload = parts[0]
    env = {}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"bad environment setting {p!r} in --alloc {spec!r}")
        env[k] = v
    if preload and not os.path.isfile(preload):
        raise argparse.ArgumentTypeError(f"--alloc {name}: {preload} does not exist")
    return {"name": name, "preload": os.path.abspath(preload) if preload else "", "env": env}


def child_env(alloc):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if alloc["preload"]:
        env["LD_PRELOAD"] = alloc["preload"]
    env.update(alloc["env"])
    return env


def command_line(alloc, argv):
    pre = []
    if alloc["preload"]:
        pre.append("LD_PRELOAD=" + shlex.quote(alloc["preload"]))
    pre += [f"{k}={shlex.quote(v)}" for k, v in alloc["env"].items()]
    return " ".join(pre + [shlex.quote(a) for a in argv])


def read_vmrss(pid):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            fields = {}
            for tok in line.split()[1:]:
                k, _, v = tok.partition("=")
                try:
                    fields[k] = int(v)
                except ValueError:
                    try:
                        fields[k] = float(v)
                    except ValueError:
                        fields[k] = v
            return fields
    return None


def run_one(argv, alloc, keep_series, timeout=RUN_TIMEOUT):
    """Runs one workload process; returns a dict (see the module doc)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=child_env(alloc))
        series = []
        sampled_peak = 0
        timed_out = False
        while True:
            rc = proc.poll()
            if rc is not None:
                break
            now = time.monotonic() - t0
            rss = read_vmrss(proc.pid)
            if rss is not None:
                sampled_peak = max(sampled_peak, rss)
                if keep_series:
                    series.append([round(now, 3), rss])
            if now > timeout:
                timed_out = True
                proc.kill()
                proc.wait()
                rc = proc.returncode
                break
            time.sleep(SAMPLE_INTERVAL)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    res = parse_result(stdout)
    rec = {"rc": rc, "wall": round(wall, 4), "sampled_peak_rss_kb": sampled_peak}
    if keep_series:
        rec["rss_series"] = series
    problem = None
    if timed_out:
        problem = f"timed out after {timeout:.0f} s"
    elif rc < 0:
        problem = f"killed by signal {-rc} ({signal.Signals(-rc).name})"
    elif rc != 0:
        problem = f"exit status {rc}"
    elif res is None:
        problem = "no RESULT line"
    if problem:
        rec["ok"] = False
        rec["problem"] = problem
        rec["stdout_tail"] = stdout[-2000:]
        rec["stderr_tail"] = stderr[-4000:]
    else:
        rec["ok"] = True
        rec["result"] = res
    return rec


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
            "loadavg_start": loadavg()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        info["cpu"] = m.group(1).strip() if m else "unknown"
        m = re.search(r"^Hypervisor vendor:\s*(.+)$", out, re.M)
        if m:
            info["hypervisor"] = m.group(1).strip()
    except OSError:
        info["cpu"] = "unknown"
    try:
        info["glibc"] = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        pass
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            m = re.search(r"\[(\w+)\]", f.read())
            info["thp"] = m.group(1) if m else "unknown"
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+)", f.read())
            info["mem_total_mib"] = int(m.group(1)) // 1024 if m else None
    except OSError:
        pass
    return info


def package_version(pkg):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=False)
        return r.stdout.strip() or None
    except OSError:
        return None


ALLOC_PACKAGES = {"jemalloc": "libjemalloc2", "mimalloc": "libmimalloc2.0", "tcmalloc": "libtcmalloc-minimal4"}


def describe_allocs(allocs):
    out = []
    for a in allocs:
        d = dict(a)
        base = a["name"].split("-")[0]
        if base in ALLOC_PACKAGES:
            d["version"] = package_version(ALLOC_PACKAGES[base])
        elif base == "spanalloc":
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            try:
                rev = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True,
                                     text=True, check=False).stdout.strip()
                if rev:
                    d["version"] = "git " + rev
            except OSError:
                pass
            build = spanalloc_build_options(a)
            if build:
                d["build"] = build
        elif base == "glibc":
            try:
                d["version"] = os.confstr("CS_GNU_LIBC_VERSION")
            except (ValueError, OSError):
                pass
        out.append(d)
    return out


def spanalloc_build_options(alloc):
    """The "build" object of the library's JSON stats report ({"scavenger":
    ..., "madvise": ...}), from a trivial program run with it preloaded."""
    if not alloc["preload"]:
        return None
    env = child_env(alloc)
    env["SPANALLOC"] = "stats=1,stats_format=json"
    try:
        r = subprocess.run(["/bin/true"], env=env, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'"build":\s*(\{[^{}]*\})', r.stderr)
    if not m:
        return None
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError:
        return None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cmd_workloads(args):
    reps, scale = SETS[args.set]
    if args.reps:
        reps = args.reps
    if args.scale:
        scale = args.scale
    configs = []
    for name, prog, extra, threads, series, quick_reps, metric in WORKLOADS:
        if args.only and name != args.only:
            continue
        max_reps = quick_reps if args.set == "quick" and not args.reps and not args.only else None
        for t in threads:
            configs.append((name, prog, extra, t, series, max_reps, metric))
    if not configs:
        log(f"bench_run: no workload named {args.only!r}; known: {', '.join(w[0] for w in WORKLOADS)}")
        return 2
    for c in configs:
        if not os.access(os.path.join(args.bin, c[1]), os.X_OK):
            log(f"bench_run: {os.path.join(args.bin, c[1])} is missing; build the bench_workloads target")
            return 2
    allocs = args.alloc
    machine = machine_info()
    runs, failures = [], []
    total = sum(min(reps, c[5] or reps) for c in configs) * len(allocs)
    n = 0
    started = time.monotonic()
    for rep in range(reps):
        order = allocs[rep % len(allocs):] + allocs[:rep % len(allocs)]
        for name, prog, extra, t, series, max_reps, metric in configs:
            if max_reps is not None and rep >= max_reps:
                continue
            argv = [os.path.join(args.bin, prog), "-s", f"{scale:g}", "-t", str(t)] + extra
            for a in order:
                n += 1
                rec = run_one(argv, a, series)
                rec.update({"workload": name, "threads": t, "alloc": a["name"], "rep": rep})
                if rec["ok"]:
                    r = rec["result"]
                    cost = (f"{r.get('ops_per_sec', 0) / 1e6:.2f} M ops/s" if metric == "ops_per_sec"
                            else f"{r.get('seconds', 0):.3f} s")
                    log(f"[{n}/{total}] rep {rep + 1} {name} t={t} {a['name']}: "
                        f"{cost}, peak {r.get('peak_rss_kb', 0) / 1024:.1f} MiB")
                else:
                    cmd = command_line(a, argv)
                    rec["command"] = cmd
                    failures.append({k: rec[k] for k in ("workload", "threads", "alloc", "rep", "problem", "command",
                                                         "stdout_tail", "stderr_tail")})
                    log(f"[{n}/{total}] rep {rep + 1} {name} t={t} {a['name']}: FAILED ({rec['problem']})\n"
                        f"    command: {cmd}\n" + "".join("    | " + l + "\n" for l in rec["stderr_tail"].splitlines()[-8:]))
                runs.append(rec)
    doc = {
        "schema": 1,
        "kind": "workloads",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "set": args.set if not args.only else f"only {args.only}",
        "reps": reps,
        "scale": scale,
        "machine": dict(machine, loadavg_end=loadavg()),
        "allocators": describe_allocs(allocs),
        "workloads": [{"name": w[0], "program": w[1], "args": w[2], "threads": w[3], "metric": w[6],
                       "reps": min(reps, w[5]) if w[5] and args.set == "quick" and not args.reps and not args.only
                       else reps}
                      for w in WORKLOADS if not args.only or w[0] == args.only],
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "runs": runs,
        "failures": failures,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    log(f"bench_run: wrote {args.out} ({len(runs)} runs, {len(failures)} failed, "
        f"{doc['elapsed_seconds']:.0f} s)")
    return 1 if failures else 0


def cmd_micro(args):
    results = {"schema": 1, "kind": "micro",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": machine_info(), "allocators": describe_allocs(args.alloc), "runs": [], "failures": []}
    jobs = [(a["name"], a, args.malloc_bin) for a in args.alloc]
    if args.sa_bin:
        jobs.append(("sa_api", {"name": "sa_api", "preload": "", "env": {}}, args.sa_bin))
    status = 0
    for label, a, binary in jobs:
        argv = [binary, f"--benchmark_min_time={args.min_time}", "--benchmark_format=json"]
        if args.filter:
            argv.append(f"--benchmark_filter={args.filter}")
        log(f"bench_run micro: {label}: {command_line(a, argv)}")
        r = subprocess.run(argv, env=child_env(a), capture_output=True, text=True, check=False)
        try:
            data = json.loads(r.stdout) if r.returncode == 0 else None
        except json.JSONDecodeError:
            data = None
        if data is None:
            status = 1
            results["failures"].append({"alloc": label, "command": command_line(a, argv), "rc": r.returncode,
                                        "stderr_tail": r.stderr[-4000:]})
            log(f"bench_run micro: {label} FAILED (status {r.returncode})\n{r.stderr[-2000:]}")
            continue
        for b in data.get("benchmarks", []):
            results["runs"].append({"alloc": label, "name": b["name"], "real_time_ns": b.get("real_time"),
                                    "cpu_time_ns": b.get("cpu_time"), "time_unit": b.get("time_unit"),
                                    "items_per_second": b.get("items_per_second"), "threads": b.get("threads"),
                                    "error": b.get("error_message")})
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    log(f"bench_run: wrote {args.out}")
    return status


def callgrind_instructions(argv, alloc):
    """Runs argv under callgrind; returns (total Ir, Ir spent in argv[0]'s own
    code), the latter from callgrind_annotate's per-function self costs."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        # valgrind hands LD_PRELOAD on to the client (adding its own preload).
        full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv
        r = subprocess.run(full, env=child_env(alloc), capture_output=True, text=True, check=False)
        m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"callgrind run failed (status {r.returncode}): "
                               f"{command_line(alloc, full)}\n{r.stderr[-2000:]}")
        total = int(m.group(1))
        a = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True, text=True,
                           check=False)
        own = 0
        prog = os.path.realpath(argv[0])
        for line in a.stdout.splitlines():
            mm = re.match(r"^\s*([\d,]+)\s.*\[(.+)\]\s*$", line)
            if mm and os.path.realpath(mm.group(2)) == prog:
                own += int(mm.group(1).replace(",", ""))
        return total, own


def cmd_instructions(args):
    # (bytes, batch): batch 1 is the pair loop (malloc, free, malloc, ...);
    # batch B > 1 makes B mallocs and then frees them in allocation order
    cases = [(int(s), 1) for s in args.sizes.split(",") if s]
    for spec in (args.batches.split(",") if args.batches else []):
        b, _, k = spec.partition(":")
        cases.append((int(b), int(k)))
    n1, n2 = args.n1, args.n2
    rows = []
    status = 0
    for a in args.alloc:
        for size, batch in cases:
            what = f"{size:>6} B" + (f" in batches of {batch}" if batch > 1 else "")
            if n1 % batch or n2 % batch:
                log(f"bench_run instructions: N1 and N2 must be multiples of the batch ({batch})")
                return 2
            try:
                t1, own1 = callgrind_instructions([args.loop_bin, "-b", str(size), "-n", str(n1), "-B", str(batch)], a)
                t2, own2 = callgrind_instructions([args.loop_bin, "-b", str(size), "-n", str(n2), "-B", str(batch)], a)
                with_loop = (t2 - t1) / (n2 - n1)
                per = ((t2 - own2) - (t1 - own1)) / (n2 - n1)
                rows.append({"alloc": a["name"], "bytes": size, "batch": batch, "instructions_per_pair": round(per, 2),
                             "with_loop": round(with_loop, 2)})
                log(f"bench_run instructions: {a['name']:>10} {what}: {per:8.2f} instructions per malloc+free "
                    f"({with_loop:.2f} with the loop)")
            except RuntimeError as e:
                status = 1
                rows.append({"alloc": a["name"], "bytes": size, "batch": batch, "instructions_per_pair": None,
                             "error": str(e)[-1500:]})
                log(f"bench_run instructions: {a['name']} {what} FAILED: {e}")
    doc = {"schema": 1, "kind": "instructions",
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": machine_info(), "allocators": describe_allocs(args.alloc), "n1": n1, "n2": n2, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    log(f"bench_run: wrote {args.out}")
    return status


def perf_event():
    """cycles when the machine has a hardware PMU, else cpu-clock (a software
    timer: KVM guests often expose no PMU)."""
    r = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True, text=True, check=False)
    if r.returncode == 0 and "<not supported>" not in r.stderr and "<not counted>" not in r.stderr:
        return "cycles", "hardware cycles"
    return "cpu-clock", "cpu-clock: software timer sampling, the machine exposes no hardware PMU to perf"


def perf_version():
    try:
        return subprocess.run(["perf", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return None


def cmd_perf(args):
    w = next((w for w in WORKLOADS if w[0] == args.workload), None)
    if w is None:
        log(f"bench_run perf: no workload named {args.workload!r}; known: {', '.join(x[0] for x in WORKLOADS)}")
        return 2
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.tag):
        log(f"bench_run perf: the tag {args.tag!r} must be a plain word (it names the file)")
        return 2
    if shutil.which("perf") is None:
        log("bench_run perf: perf is missing (Debian: linux-perf; tools/install-deps.sh bench installs it)")
        return 2
    a = args.alloc
    event, event_note = perf_event()
    prog = [os.path.join(args.bin, w[1]), "-s", f"{args.scale:g}", "-t", str(args.threads)] + w[2]
    # only the workload runs with the allocator preloaded, not perf itself
    inner = ["env"] + ([f"LD_PRELOAD={a['preload']}"] if a["preload"] else []) + \
        [f"{k}={v}" for k, v in a["env"].items()] + prog
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "perf.data")
        rec = ["perf", "record", "-g", "-e", event, "-o", data, "--"] + inner
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        r = subprocess.run(rec, env=env, capture_output=True, text=True, check=False)
        result = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
        if r.returncode != 0 or result is None:
            log(f"bench_run perf: the recorded run failed (status {r.returncode}): {' '.join(map(shlex.quote, rec))}\n"
                f"{r.stderr[-2000:]}")
            return 1
        rep_cmd = ["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none", "-F", "overhead,dso,sym",
                   "--percent-limit", str(args.percent_limit)]
        rr = subprocess.run(rep_cmd, env=env, capture_output=True, text=True, check=False)
        if rr.returncode != 0:
            log(f"bench_run perf: perf report failed:\n{rr.stderr[-2000:]}")
            return 1
    samples = re.search(r"^# Samples: (.+)$", rr.stdout, re.M)
    entries = [l.rstrip() for l in rr.stdout.splitlines() if l.strip() and not l.startswith("#")][:args.top]
    head = [l.rstrip() for l in rr.stdout.splitlines() if re.match(r"^# (Overhead|\.\.\.)", l)]
    version = describe_allocs([a])[0].get("version", "")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %s", "--", "alloc", "include"],
                         capture_output=True, text=True, check=False).stdout.strip()
    out = os.path.join(args.out_dir, f"perf-{args.workload}-t{args.threads}-{args.tag}.txt")
    lines = [
        f"# perf profile ({args.tag}): {args.workload} -t {args.threads} -s {args.scale:g} under {a['name']}"
        f"{(' ' + version) if version else ''}",
        f"# date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{machine_info().get('cpu', '?')}, {os.cpu_count()} CPUs; load average at the start {loadavg()}",
        f"# library source: last commit touching alloc/ and include/: {src or '?'}",
        f"# event: {event_note}; {perf_version() or 'perf'}; samples: {samples.group(1).strip() if samples else '?'}",
        "# recorded: perf record -g -e " + event + " -- " + " ".join(shlex.quote(x) for x in inner),
        f"# shown: perf report --no-children --stdio -g none -F overhead,dso,sym --percent-limit "
        f"{args.percent_limit} (self time per function, top {args.top})",
        f"# the run: {result}",
    ] + head + entries
    os.makedirs(args.out_dir, exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"bench_run: wrote {out}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workloads")
    w.add_argument("--bin", required=True, help="directory holding the workload programs")
    w.add_argument("--out", required=True)
    w.add_argument("--set", choices=sorted(SETS), default="quick")
    w.add_argument("--only")
    w.add_argument("--reps", type=int)
    w.add_argument("--scale", type=float)
    w.add_argument("--alloc", type=parse_alloc, action="append", required=True)
    m = sub.add_parser("micro")
    m.add_argument("--malloc-bin", required=True)
    m.add_argument("--sa-bin")
    m.add_argument("--out", required=True)
    m.add_argument("--filter")
    m.add_argument("--min-time", default="0.1")
    m.add_argument("--alloc", type=parse_alloc, action="append", required=True)
    i = sub.add_parser("instructions")
    i.add_argument("--loop-bin", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--sizes", default="16,32,64,256,1024,4096", help="pair-loop sizes (bytes)")
    i.add_argument("--batches", default="32:1000",
                   help="BYTES:BATCH,...: BATCH mallocs, then their frees in allocation order")
    i.add_argument("--n1", type=int, default=100000)
    i.add_argument("--n2", type=int, default=300000)
    i.add_argument("--alloc", type=parse_alloc, action="append", required=True)
    f = sub.add_parser("perf")
    f.add_argument("--bin", required=True, help="directory holding the workload programs")
    f.add_argument("--workload", required=True)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--scale", type=float, default=0.5)
    f.add_argument("--tag", required=True, help="names the file: perf-WORKLOAD-tTHREADS-TAG.txt")
    f.add_argument("--out-dir", required=True)
    f.add_argument("--top", type=int, default=25)
    f.add_argument("--percent-limit", type=float, default=0.3)
    f.add_argument("--alloc", type=parse_alloc, required=True)
    args = p.parse_args()
    return {"workloads": cmd_workloads, "micro": cmd_micro, "instructions": cmd_instructions,
            "perf": cmd_perf}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

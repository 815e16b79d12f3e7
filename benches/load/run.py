#!/usr/bin/env python3
"""Side-by-side load benchmark: farmgate vs nginx vs HAProxy on the same backends.

Starts cheap backends (one nginx worker on 127.0.0.1:19001-19003), the three proxies
in front of them (one worker/thread each, round robin, upstream keep-alive), and wrk
straight to one backend as the ceiling. Interleaves the targets over several rounds
and prints medians and ratios. CPU per request of the proxy process (utime+stime from
/proc over the run) is the figure that decides on a 2-core machine where proxy,
backends and wrk share the cores.

Everything runs on loopback, is bounded in time, and only what this script started is
stopped. Usage: benches/load/run.sh [--rounds N] [--duration S] [--quick]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TICK = os.sysconf("SC_CLK_TCK")

# name -> (port, is a proxy whose CPU we measure)
TARGETS = {
    "direct": 19001,
    "nginx": 18081,
    "haproxy": 18082,
    "farmgate": 18083,
}
PROXIES = ["nginx", "haproxy", "farmgate"]

# name, path, connections, new connection per request
SCENARIOS = [
    ("small keep-alive c64", "/", 64, False),
    ("small keep-alive c256", "/", 256, False),
    ("16k keep-alive c64", "/16k", 64, False),
    ("16k keep-alive c256", "/16k", 256, False),
    ("small new-conn c64", "/", 64, True),
]

started = []  # Popen handles of what we started, stopped at exit


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def ensure_tools():
    missing = [t for t in ("nginx", "haproxy", "wrk") if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        print(f"installing {' '.join(missing)} from Debian ...", flush=True)
        pkgs = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk"}
        sh("apt-get update -qq")
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + " ".join(pkgs[m] for m in missing))


def tool(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process for port {port} exited early ({proc.returncode})")
        if not port_free(port):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def render(template, out, **subs):
    text = open(os.path.join(HERE, template)).read()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", str(v))
    with open(out, "w") as f:
        f.write(text)
    return out


def start(cmd, port, log):
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    started.append(p)
    wait_port(port, p)
    return p


def stop_all():
    for p in reversed(started):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 5
    for p in started:
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def pids_of(proc):
    """The process and its children (nginx master + worker)."""
    pids = [proc.pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
    except FileNotFoundError:
        pass
    return pids


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


class SyscallCounter:
    """Counts every syscall the processes make (perf's raw_syscalls tracepoint)."""

    def __init__(self, pids):
        self.proc = None
        if shutil.which("perf"):
            self.proc = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", ",".join(map(str, pids))],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.2)  # let perf attach before the load starts

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        err = self.proc.communicate(timeout=10)[1]
        m = re.search(r"^(\d+),,raw_syscalls:sys_enter", err, re.M)
        return int(m.group(1)) if m else None


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(port, path, conns, newconn, duration):
    cmd = [tool("wrk"), "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if newconn:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return {"reqs": reqs, "rps": rps, "p50": to_ms(lat["50"]), "p99": to_ms(lat["99"]), "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s runs")
    ap.add_argument("--access-log", action="store_true", help="farmgate with its access log on (to a file)")
    ap.add_argument("--out", default=os.path.join(HERE, "results-latest.md"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2

    ensure_tools()
    for port in list(TARGETS.values()) + [19002, 19003]:
        if not port_free(port):
            raise SystemExit(f"port {port} is busy; stop what uses it first")
    print("building farmgate (release) ...", flush=True)
    sh("cargo build --release --quiet", cwd=ROOT)

    work = tempfile.mkdtemp(prefix="farmgate-load-")
    os.chmod(work, 0o755)  # nginx workers run as www-data and must read www/
    os.makedirs(f"{work}/www")
    with open(f"{work}/www/16k", "wb") as f:
        f.write(b"x" * 16384)
    procs = {}
    try:
        backend = start([tool("nginx"), "-c", render("nginx-backend.conf", f"{work}/backend.conf", DIR=work), "-p", work],
                        19001, f"{work}/backend.out")
        procs["nginx"] = start([tool("nginx"), "-c", render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work), "-p", work],
                               18081, f"{work}/nginx.out")
        procs["haproxy"] = start([tool("haproxy"), "-db", "-f", render("haproxy.cfg", f"{work}/haproxy.cfg", DIR=work)],
                                 18082, f"{work}/haproxy.out")
        fg_cfg = render("farmgate.yaml", f"{work}/farmgate.yaml", DIR=work, ACCESS="text" if args.access_log else "off")
        procs["farmgate"] = start([os.path.join(ROOT, "target/release/farmgate"), "run", "--config", fg_cfg],
                                  18083, f"{work}/farmgate.out")
        _ = backend

        total = args.rounds * len(SCENARIOS) * len(TARGETS) * (args.duration + 1) + len(SCENARIOS) * len(PROXIES) * 3
        print(f"running {args.rounds} round(s) x {len(SCENARIOS)} scenarios x {len(TARGETS)} targets, about {total} s", flush=True)
        for name, port in TARGETS.items():  # warm up pools and caches
            wrk(port, "/", 16, False, 1)

        results = {}  # (scenario, target) -> list of runs
        for rnd in range(args.rounds):
            for scen, path, conns, newconn in SCENARIOS:
                order = list(TARGETS) if rnd % 2 == 0 else list(reversed(TARGETS))
                for target in order:
                    port = TARGETS[target]
                    pids = pids_of(procs[target]) if target in procs else []
                    c0 = cpu_ticks(pids) if pids else 0
                    r = wrk(port, path, conns, newconn, args.duration)
                    if pids:
                        r["cpu_us"] = (cpu_ticks(pids) - c0) / TICK * 1e6 / max(r["reqs"], 1)
                    results.setdefault((scen, target), []).append(r)
                    print(f"  round {rnd + 1} {scen:24} {target:9} {r['rps']:>10.0f} req/s"
                          + (f"  {r['cpu_us']:.1f} us/req" if pids else "")
                          + (f"  ERRORS {r['errors']}" if r["errors"] else ""), flush=True)
        # Syscalls in a separate pass: tracing them inflates the CPU figures.
        for scen, path, conns, newconn in SCENARIOS:
            for target in PROXIES:
                counter = SyscallCounter(pids_of(procs[target]))
                r = wrk(TARGETS[target], path, conns, newconn, 2)
                n = counter.stop()
                for run in results[(scen, target)]:
                    run["sys"] = n / max(r["reqs"], 1) if n is not None else float("nan")
        rss = {t: peak_rss_kib(pids_of(p)) for t, p in procs.items()}
        report(results, rss, args)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def report(results, rss, args):
    lines = [
        f"Load benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{args.rounds} round(s) of {args.duration} s per target, medians. "
        f"farmgate access log {'on' if args.access_log else 'off'}.",
        "",
        "| scenario | target | req/s | vs direct | p50 ms | p99 ms | CPU us/req | vs nginx | vs HAProxy | syscalls/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scen, *_ in SCENARIOS:
        direct = med(results[(scen, "direct")], "rps")
        ref = {t: med(results[(scen, t)], "cpu_us") for t in ("nginx", "haproxy")}
        for target in TARGETS:
            runs = results[(scen, target)]
            row = [scen, target, f"{med(runs, 'rps'):.0f}", f"{med(runs, 'rps') / direct:.2f}",
                   f"{med(runs, 'p50'):.2f}", f"{med(runs, 'p99'):.2f}"]
            if target in PROXIES:
                cpu = med(runs, "cpu_us")
                row += [f"{cpu:.1f}", f"{cpu / ref['nginx']:.2f}", f"{cpu / ref['haproxy']:.2f}", f"{med(runs, 'sys'):.1f}"]
            else:
                row += ["-", "-", "-", "-"]
            row.append(str(sum(r["errors"] for r in runs)))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Peak RSS (VmHWM, all processes of the target): "
              + ", ".join(f"{t} {kib / 1024:.1f} MiB" for t, kib in rss.items())]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)

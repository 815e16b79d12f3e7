#!/usr/bin/env python3
"""A/B of farmgate binaries: CPU per request split into user and kernel time.

Runs two or more farmgate binaries (and nginx with --nginx) side by side in front of the
load benchmark's backends, one worker each (--workers N: N each), and interleaves wrk
runs over them round after round, so that the machine's drift hits every binary alike.
Prints, per scenario and binary, the median CPU microseconds per request (utime+stime
from /proc), its user and kernel parts, requests per second, and every round's total.
With --syscalls, each run also counts the syscalls per request by name (perf's
syscalls:sys_enter_* tracepoints; tracing inflates CPU, so read those rounds' CPU with
care).

This is the tool for "did this commit make a request cheaper": the full benchmark
(run.py) is for the figures against the peers.

Usage: benches/load/ab.py [--rounds 4] [--dur 4] [--scen s64,s256,k64,k256,new]
                          [--nginx] [--syscalls] [--workers N] BINARY BINARY [...]
Scenarios: s64/s256 small body at 64/256 keep-alive connections, k64/k256 16 KiB
body, new: small body with a new connection per request (64 at once).
Needs nginx and wrk (Debian packages nginx, wrk); perf for --syscalls.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the load benchmark's helpers)

SCENARIOS = {"s64": ("/", 64, False), "s256": ("/", 256, False), "k64": ("/16k", 64, False),
             "k256": ("/16k", 256, False), "new": ("/", 64, True)}
SYSCALLS = ("read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait "
            "epoll_ctl futex accept4 close setsockopt getsockopt").split()


def user_sys_ticks(pids):
    user = kernel = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        kernel += int(fields[12])
    return user, kernel


def count_syscalls(pids):
    events = ",".join("syscalls:sys_enter_" + s for s in SYSCALLS)
    p = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", ",".join(map(str, pids))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # attached before the load starts
    return p


def syscalls_per_request(perf, requests):
    perf.send_signal(signal.SIGINT)
    err = perf.communicate(timeout=10)[1]
    counts = []
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].isdigit() and int(f[0]) > 0:
            counts.append(f"{f[2].split('sys_enter_')[1]}={int(f[0]) / requests:.2f}")
    return " ".join(counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dur", type=int, default=4, help="seconds per wrk run")
    ap.add_argument("--scen", default="s64,s256,k64,k256")
    ap.add_argument("--nginx", action="store_true", help="nginx (as many workers as --workers) in the same rounds")
    ap.add_argument("--syscalls", action="store_true", help="count syscalls per request by name")
    ap.add_argument("--workers", type=int, default=1,
                    help="farmgate's runtime.worker_threads and nginx's worker_processes")
    ap.add_argument("--port-base", type=int, default=23000)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    scens = args.scen.split(",")
    for s in scens:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s}: one of {', '.join(SCENARIOS)}")
    if args.syscalls and not run.shutil.which("perf"):
        raise SystemExit("--syscalls needs perf (Debian package linux-perf)")
    run.ensure_tools()
    ports = run.port_map(args.port_base)
    hz = os.sysconf("SC_CLK_TCK")
    try:
        work, bk, tls = run.backends_in(ports, "farmgate-ab-")
        targets = {}
        for i, binary in enumerate(args.binaries):
            port = args.port_base + 500 + i
            cfg = run.render("farmgate.yaml", f"{work}/farmgate{i}.yaml", DIR=work, ACCESS="off", PORT=port,
                             TLS_PORT=args.port_base + 600 + i, WORKERS=args.workers, **bk, **tls)
            name = f"{i}:{os.path.basename(binary)}"
            targets[name] = (run.start([binary, "run", "--config", cfg], [port], f"{work}/farmgate{i}.out"), port)
        if args.nginx:
            port = args.port_base + 590
            cfg = run.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=port,
                             TLS_PORT=args.port_base + 591, WORKERS=args.workers, **bk, **tls)
            targets["nginx"] = (run.start([run.tool("nginx"), "-c", cfg, "-p", work], [port], f"{work}/nginx.out"),
                                port)
        results = {}
        for _ in range(args.rounds):
            for scen in scens:
                path, conns, new = SCENARIOS[scen]
                for name, (proc, port) in targets.items():
                    pids = run.pids_of(proc)
                    perf = count_syscalls(pids) if args.syscalls else None
                    u0, k0 = user_sys_ticks(pids)
                    w = run.wrk(f"http://127.0.0.1:{port}{path}", conns, new, args.dur)
                    u1, k1 = user_sys_ticks(pids)
                    if perf:
                        print(f"{scen:5} {name:20} syscalls per request: {syscalls_per_request(perf, w['reqs'])}",
                              flush=True)
                    per = 1e6 / hz / w["reqs"]
                    results.setdefault((scen, name), []).append(((u1 - u0) * per, (k1 - k0) * per, w["rps"]))
        for scen in scens:
            for name in targets:
                runs = results[(scen, name)]
                total = statistics.median(u + k for u, k, _ in runs)
                user = statistics.median(u for u, _, _ in runs)
                kernel = statistics.median(k for _, k, _ in runs)
                rps = statistics.median(r for _, _, r in runs)
                every = " ".join(f"{u + k:.1f}" for u, k, _ in runs)
                print(f"{scen:5} {name:20} CPU {total:6.2f} us/req (user {user:5.2f}, kernel {kernel:5.2f})  "
                      f"{rps:8.0f} req/s  rounds: {every}")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()

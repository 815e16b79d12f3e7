#!/usr/bin/env python3
"""Simulated cache misses per proxied request, under many connections at once.

This machine (a VM) has no hardware counters, so `perf` cannot count cache misses. This
script runs a proxy under valgrind's callgrind with its cache simulation (L1d 48 KiB,
and a 2 MiB last level like this machine's L2 unless --ll says otherwise) in front of
the load benchmark's backends. It drives the proxy with wrk at --conns keep-alive
connections: --warm seconds uncounted, then --secs seconds counted (counting is
switched on with `callgrind_control -i on`). It prints instructions and last-level
misses per request; the profile is left for `callgrind_annotate --sort=DLmw FILE`
(or DLmr, D1mr, I1mr) to show where the misses are.

With one connection (instructions.py) a working set that does not fit the caches at
256 connections never shows: this is how session 9 found read buffers zero-filled for
three requests in four at 256 connections (docs/performance.md, sixth round).

Usage: benches/load/cachesim.py [--proxy farmgate|nginx] [--binary PATH] [--conns 256]
                                [--new-connections]
                                [--secs 10] [--warm 5] [--ll BYTES] [--out FILE]
Needs valgrind (Debian package valgrind), nginx, wrk.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instructions  # noqa: E402  (need_valgrind, start_under_valgrind)
import run  # noqa: E402  (the load benchmark's helpers)


def summary(path):
    events = totals = None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:") or line.startswith("totals:"):
                totals = [int(x) for x in line.split()[1:]]
    if not events or not totals:
        raise SystemExit(f"{path}: no events or totals line")
    return dict(zip(events, totals))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", default="farmgate", choices=["farmgate", "nginx"])
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/farmgate"))
    ap.add_argument("--conns", type=int, default=256)
    ap.add_argument("--new-connections", action="store_true",
                    help="a new connection per request (Connection: close), --conns at once")
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--ll", type=int, default=2 << 20, help="last-level cache bytes (16-way)")
    ap.add_argument("--path", default="/")
    ap.add_argument("--port-base", type=int, default=24000)
    ap.add_argument("--out", help="the callgrind profile (default: in a temporary directory)")
    args = ap.parse_args()
    instructions.need_valgrind()
    ports = run.port_map(args.port_base)
    try:
        work, bk, tls = run.backends_in(ports, "farmgate-cachesim-")
        out = args.out or f"{work}/callgrind.{args.proxy}.{args.conns}"
        port = ports[(args.proxy, "plain")]
        if args.proxy == "nginx":
            cfg = run.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=port,
                             TLS_PORT=ports[("nginx", "tls")], WORKERS=1, **bk, **tls)
            # One process: valgrind follows no fork.
            cmd = [run.tool("nginx"), "-c", cfg, "-p", work, "-g", "master_process off;"]
        else:
            cfg = run.render("farmgate.yaml", f"{work}/farmgate.yaml", DIR=work, ACCESS="off", PORT=port,
                             TLS_PORT=ports[("farmgate", "tls")], WORKERS=1, **bk, **tls)
            cmd = [args.binary, "run", "--config", cfg]
        vg = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--D1=49152,12,64", f"--LL={args.ll},16,64",
              f"--callgrind-out-file={out}", "--instr-atstart=no"]
        p = instructions.start_under_valgrind(vg + cmd, port, f"{work}/{args.proxy}.out", args.proxy)
        url = f"http://127.0.0.1:{port}{args.path}"
        run.wrk(url, args.conns, args.new_connections, args.warm)
        subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], capture_output=True, timeout=60, check=True)
        w = run.wrk(url, args.conns, args.new_connections, args.secs)
        os.killpg(p.pid, 15)
        p.wait(timeout=120)
        s = summary(out)
        n = w["reqs"]
        print(f"{args.proxy} at {args.conns} connections, {n} requests counted: per request "
              f"{s['Ir'] / n:,.0f} instructions, {s['I1mr'] / n:.1f} instruction-cache misses, "
              f"{s['D1mr'] / n:.1f} / {s['D1mw'] / n:.1f} L1d read / write misses, "
              f"{s['DLmr'] / n:.1f} / {s['DLmw'] / n:.1f} last-level read / write misses")
        print(f"profile: {out} (callgrind_annotate --sort=DLmw {out})")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()

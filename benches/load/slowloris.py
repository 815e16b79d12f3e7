#!/usr/bin/env python3
"""Slowloris latency: a normal client's latency through each proxy, alone and while
1,000 slowloris connections are open (issue 17).

The slow connections (a separate process) each send "GET / HTTP/1.1\\r\\nHost: x\\r\\n"
and then one header byte every 5 s, staggered so that 200 bytes a second arrive
spread evenly; a connection the proxy closes (header timeout) is reopened at once, as
an attacker would. The normal client (this process) sends GET / on one keep-alive
connection every 5 ms and times each full response with perf_counter; the figures
are p50/p99/max over the run. Every proxy runs with one worker and its defaults for
slow heads (farmgate header_timeout 10 s, nginx client_header_timeout 60 s, HAProxy
timeout client 60 s as in haproxy.cfg). Runs are interleaved: for each round, each
proxy without and then with the slow connections.

Loopback only, bounded in time; stops only what it started. Uses the backends and
proxy configs of run.py (same ports: --port-base as there).
Usage: benches/load/slowloris.py [--rounds N] [--duration S] [--slow N] [--proxies a,b]
"""
import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the load benchmark's process handling and configs)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def slow_process(port, n, period, seconds):
    """Holds `n` slowloris connections to `port` for `seconds` (runs as a child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conns = [None] * n
    reopened = 0

    def open_one(i):
        s = socket.socket()
        s.setblocking(True)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        conns[i] = s

    for i in range(n):
        open_one(i)
    print("ready", flush=True)
    gap = period / n
    end = time.monotonic() + seconds
    i = 0
    next_at = time.monotonic()
    while time.monotonic() < end:
        next_at += gap
        try:
            conns[i].send(b"X")
        except OSError:
            conns[i].close()
            open_one(i)
            reopened += 1
        i = (i + 1) % n
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    print(f"reopened {reopened}", flush=True)


def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    status = int(head[9:12])
    return status, rest[length:]


def measure(port, seconds, every=0.005):
    """Latencies (ms) of GET / every `every` s on one keep-alive connection."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat, errors, buf = [], 0, b""
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        t = time.perf_counter()
        s.sendall(REQUEST)
        status, buf = read_response(s, buf)
        lat.append((time.perf_counter() - t) * 1000)
        if status != 200:
            errors += 1
        next_at += every
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    s.close()
    return lat, errors


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--slow-child":
        port, n, period, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        return slow_process(port, n, period, seconds)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    ap.add_argument("--slow", type=int, default=1000, help="slowloris connections")
    ap.add_argument("--proxies", default="farmgate,nginx,haproxy")
    ap.add_argument("--port-base", type=int, default=18000)
    args = ap.parse_args()
    proxies = [p for p in args.proxies.split(",") if p]
    run.ensure_tools()
    ports = run.port_map(args.port_base)
    for p in list(ports["backends"]) + [ports[(t, l)] for t in run.PROXIES for l in ("plain", "tls")]:
        if not run.port_free(p):
            raise SystemExit(f"port {p} is busy; pick another --port-base")
    if not os.path.exists(os.path.join(run.ROOT, "target/release/farmgate")):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="farmgate-slowloris-")
    os.chmod(work, 0o755)
    os.makedirs(f"{work}/www")
    b = run.Bench(args, ports, work)
    results = {}
    try:
        run.sh(f"{os.path.join(run.ROOT, 'target/release/farmgate')} gen-certs --out {work}/certs >/dev/null")
        cert, key = f"{work}/certs/localhost.crt", f"{work}/certs/localhost.key"
        with open(f"{work}/certs/localhost.pem", "w") as f:
            f.write(open(cert).read() + open(key).read())
        run.start_instances(b, {"http"}, cert, key, f"{work}/certs/localhost.pem", "off")
        for p in proxies:  # warm up
            measure(ports[(p, "plain")], 1.0)
        for r in range(args.rounds):
            for p in proxies:
                port = ports[(p, "plain")]
                lat, err = measure(port, args.duration)
                results.setdefault((p, "alone"), []).append((lat, err))
                child = subprocess.Popen([sys.executable, __file__, "--slow-child", str(port), str(args.slow),
                                          "5", str(args.duration + 3)], stdout=subprocess.PIPE, text=True)
                run.started.append(child)
                if child.stdout.readline().strip() != "ready":
                    raise SystemExit("slow connections did not open")
                time.sleep(1.0)  # let the proxy take them all in
                lat, err = measure(port, args.duration)
                reopened = child.stdout.read().strip()
                child.wait()
                results.setdefault((p, "slow"), []).append((lat, err))
                print(f"round {r + 1} {p}: done ({reopened})", flush=True)
    finally:
        run.stop_all()
    print(f"\n{args.slow} slowloris connections (1 header byte / 5 s each); normal client: GET / every 5 ms "
          f"on one keep-alive connection, {args.duration:.0f} s x {args.rounds} rounds per cell\n")
    print("| proxy | slow connections | requests | errors | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for p in proxies:
        for mode in ("alone", "slow"):
            runs = results[(p, mode)]
            lat = [x for l, _ in runs for x in l]
            err = sum(e for _, e in runs)
            print(f"| {p} | {0 if mode == 'alone' else args.slow} | {len(lat)} | {err} | "
                  f"{statistics.median(lat):.3f} | {pct(lat, 99):.3f} | {max(lat):.3f} |")


if __name__ == "__main__":
    main()

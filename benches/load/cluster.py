#!/usr/bin/env python3
"""What a tier (`cluster:`, docs/cluster.md) costs, on loopback, release build.

1. CPU per request with the cluster on and the shared cache off, against the same
   farmgate without `cluster:` and against nginx, all measured in this run: wrk, 64
   keep-alive connections, a small response through round robin to three cheap
   backends, the targets interleaved over --rounds rounds; CPU = utime+stime of the
   proxy process over the run / requests. A second tier instance runs beside, so the
   measured one heartbeats, reads the view and keeps its subscription as in a tier.
2. Latency of one cached response served three ways, one request at a time on a
   keep-alive connection (Python client, so the figures include its own ~0.1 ms):
   a backend fetch (a farmgate without cache), a shared-cache hit (instance B's
   first request for a URL instance A stored), a local hit (B's second request).

Reuses run.py's helpers (backends, wrk, CPU accounting). Ports from --port-base
(default 27000). Usage: benches/load/cluster.py [--rounds N] [--duration S]
"""
import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as load  # noqa: E402

ROOT = load.ROOT
CERTS = os.path.join(ROOT, "certs-dev")


def farmgate_yaml(port, backends, cache="", cluster=""):
    servers = "".join(f'      - address: "127.0.0.1:{b}"\n' for b in backends)
    return (f'listeners:\n  - name: bench\n    bind: "127.0.0.1:{port}"\n'
            f"admin:\n  enabled: false\nlog:\n  access: off\n  level: warn\n"
            f"runtime:\n  worker_threads: 1\n"
            f"farms:\n  - name: bench\n    algorithm: round_robin\n{cache}    servers:\n{servers}{cluster}")


def cluster_section(redis_port, instance):
    return (f'cluster:\n  redis: "redis://127.0.0.1:{redis_port}"\n  name: bench\n'
            f"  instance: {instance}\n")


SHARED = "    cache:\n      enabled: true\n      shared: true\n"


def start_farmgate(work, name, text, port):
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return load.start([load.FARMGATE[0], "run", "--config", path], [port], os.path.join(work, f"{name}.out"))


def latencies(port, paths, host="bench.test"):
    """Per-request latency in ms, one keep-alive connection, sequential."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for p in paths:
        t = time.perf_counter()
        conn.request("GET", p, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            raise SystemExit(f"{p} on {port}: {r.status}")
    conn.close()
    return out


def x_cache(port, path, host="bench.test"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    r = conn.getresponse()
    r.read()
    return r.getheader("X-Cache")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--port-base", type=int, default=27000)
    args = ap.parse_args()
    if not os.path.exists(load.FARMGATE[0]):
        raise SystemExit("build first: cargo build --release")
    load.ensure_tools()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    base = args.port_base
    backends = [base + 1001, base + 1002, base + 1003]
    redis_port = base + 500
    p_nginx, p_alone, p_tier, p_peer = base + 81, base + 82, base + 83, base + 84
    p_a, p_b, p_fetch = base + 71, base + 72, base + 73
    work = tempfile.mkdtemp(prefix="farmgate-cluster-bench-")
    try:
        bk = {f"B{i + 1}": p for i, p in enumerate(backends)}
        load.start([load.tool("nginx"), "-c", load.render("nginx-backend.conf", f"{work}/backend.conf", DIR=work, **bk),
                    "-p", work], backends, f"{work}/backend.out")
        load.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", work], [redis_port], f"{work}/redis.out")
        tls = dict(CERT=f"{CERTS}/localhost.crt", KEY=f"{CERTS}/localhost.key")
        procs = {
            "nginx": load.start([load.tool("nginx"), "-c",
                                 load.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=p_nginx,
                                             TLS_PORT=base + 91, **bk, **tls), "-p", work],
                                [p_nginx], f"{work}/nginx.out"),
            "farmgate": start_farmgate(work, "alone", farmgate_yaml(p_alone, backends), p_alone),
            "farmgate+cluster": start_farmgate(
                work, "tier", farmgate_yaml(p_tier, backends, cluster=cluster_section(redis_port, "tier-1")), p_tier),
        }
        start_farmgate(work, "peer", farmgate_yaml(p_peer, backends, cluster=cluster_section(redis_port, "tier-2")),
                       p_peer)
        time.sleep(2)  # heartbeats, ticket key, subscription in place

        # 1. CPU per request.
        runs = {t: [] for t in procs}
        for rnd in range(args.rounds):
            for t, proc in procs.items():
                port = {"nginx": p_nginx, "farmgate": p_alone, "farmgate+cluster": p_tier}[t]
                pids = load.pids_of(proc)
                before = load.cpu_ticks(pids)
                r = load.wrk(f"http://127.0.0.1:{port}/", 64, False, args.duration)
                r["cpu_us"] = (load.cpu_ticks(pids) - before) / load.TICK * 1e6 / max(1, r["reqs"])
                runs[t].append(r)
                print(f"round {rnd + 1} {t}: {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms, "
                      f"{r['cpu_us']:.1f} us CPU/request, errors {r['errors']}", flush=True)

        # 2. Latency: backend fetch, shared hit, local hit.
        cluster = cluster_section(redis_port, "a")
        start_farmgate(work, "cache-a", farmgate_yaml(p_a, backends, SHARED, cluster), p_a)
        start_farmgate(work, "cache-b", farmgate_yaml(p_b, backends, SHARED, cluster_section(redis_port, "b")), p_b)
        start_farmgate(work, "fetch", farmgate_yaml(p_fetch, backends), p_fetch)
        time.sleep(1.5)
        urls = [f"/cached?k={i}" for i in range(args.urls)]
        latencies(p_a, urls)  # A fetches and stores every URL (locally and in Redis)
        time.sleep(0.5)
        probe = "/cached?k=probe"
        latencies(p_a, [probe])
        time.sleep(0.2)
        assert x_cache(p_b, probe) == "HIT", "B did not get A's response from the tier"
        fetch = latencies(p_fetch, urls)      # no cache: every request goes to a backend
        shared = latencies(p_b, urls)         # B's first request: local miss, Redis hit
        local = latencies(p_b, urls)          # B's second request: local hit
        lat = {"backend fetch (no cache)": fetch, "shared-cache hit": shared, "local hit": local}

        def med(t, k):
            return statistics.median(r[k] for r in runs[t])

        lines = ["# Cluster cost (benches/load/cluster.py)", "",
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, release build, {os.cpu_count()} cores "
                 f"shared with the load generator and backends; {args.rounds} rounds x {args.duration} s, medians.", "",
                 "## CPU per request: cluster on, shared cache off", "",
                 "| target | req/s | p99 ms | CPU us/request | vs farmgate alone |", "|---|---|---|---|---|"]
        ref = med("farmgate", "cpu_us")
        for t in procs:
            lines.append(f"| {t} | {med(t, 'rps'):.0f} | {med(t, 'p99'):.2f} | {med(t, 'cpu_us'):.1f} | "
                         f"{med(t, 'cpu_us') / ref:.3f} |")
        spread = [r["cpu_us"] for r in runs["farmgate"]]
        lines += ["", f"farmgate alone, CPU us/request per round: {', '.join(f'{x:.1f}' for x in spread)} "
                      "(the round-to-round spread is the noise floor).", "",
                  "## Latency of one cached response (sequential, keep-alive, Python client)", "",
                  "| served as | p50 ms | p99 ms |", "|---|---|---|"]
        for k, v in lat.items():
            lines.append(f"| {k} | {pct(v, 0.5):.3f} | {pct(v, 0.99):.3f} |")
        report = "\n".join(lines) + "\n"
        print("\n" + report)
        with open(os.path.join(HERE, "results-cluster.md"), "w") as f:
            f.write(report)
    finally:
        load.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

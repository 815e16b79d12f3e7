#!/usr/bin/env python3
"""gRPC load benchmark: unary calls per second and CPU per call through farmgate
(`protocol: http2`) and nginx (`grpc_pass`), same backend, same run.

The backend is examples/grpc_echo_backend.rs (h2c, answers every call with its
message, `grpc-status: 0` in trailers), fast enough that the proxies are what is
measured. The load is h2load (Debian package nghttp2-client): unary calls as gRPC
clients send them (POST, content-type application/grpc, te: trailers, a framed
message), over CONNS client connections with STREAMS calls in flight on each.
Each proxy runs one worker (nginx worker_processes 1, farmgate worker_threads 1).
Targets are interleaved over several rounds; medians are reported. CPU per call is
the proxy process's utime+stime from /proc over the run, divided by the calls.

Usage: benches/load/grpc.py [--rounds N] [--duration S] [--conns C] [--streams M]
       [--binary target/release/farmgate] [--port-base N]
Needs: cargo build --release --bin farmgate --example grpc_echo_backend
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

NGINX = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    upstream grpcfarm {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{
            grpc_pass grpc://grpcfarm;
        }}
    }}
}}
"""

FARMGATE = """listeners:
  - name: grpc
    bind: "127.0.0.1:{port}"
admin:
  enabled: false
log:
  access: off
  level: warn
proxy:
  http2_max_streams: 1000
runtime:
  worker_threads: 1
farms:
  - name: grpc
    protocol: http2
    servers:
      - {{ name: echo, address: "http://127.0.0.1:{backend}" }}
"""


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on port %d" % port)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def h2load(port, duration, conns, streams, payload):
    out = subprocess.run(
        ["h2load", "-D", str(duration), "-c", str(conns), "-m", str(streams),
         "-t", "1", "-d", payload,
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "http://127.0.0.1:%d/bench.Echo/Unary" % port],
        capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not done:
        raise SystemExit("h2load said:\n" + out)
    return int(done.group(2)), int(done.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/farmgate"))
    ap.add_argument("--port-base", type=int, default=19000)
    args = ap.parse_args()
    for tool, package in [("h2load", "nghttp2-client"), ("nginx", "nginx")]:
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s is missing: install the Debian package %s" % (tool, package))
    backend_bin = os.path.join(ROOT, "target/release/examples/grpc_echo_backend")
    for b in [args.binary, backend_bin]:
        if not os.path.exists(b):
            raise SystemExit(b + " is missing: cargo build --release --bin farmgate --example grpc_echo_backend")

    base = args.port_base
    ports = {"direct": base + 1, "nginx": base + 2, "farmgate": base + 3}
    tmp = tempfile.mkdtemp(prefix="farmgate-grpc-bench-")
    payload = os.path.join(tmp, "call.bin")
    message = b"\x0a\x05hello" + b"\x12\x40" + b"x" * 64  # a small protobuf message
    with open(payload, "wb") as f:
        f.write(b"\x00" + len(message).to_bytes(4, "big") + message)
    procs = {}
    try:
        procs["direct"] = subprocess.Popen([backend_bin, str(ports["direct"])])
        wait_port(ports["direct"])
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX.format(dir=tmp, backend=ports["direct"], port=ports["nginx"]))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs["nginx"] = subprocess.Popen([nginx, "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp])
        with open(os.path.join(tmp, "farmgate.yaml"), "w") as f:
            f.write(FARMGATE.format(backend=ports["direct"], port=ports["farmgate"]))
        procs["farmgate"] = subprocess.Popen(
            [args.binary, "run", "--config", os.path.join(tmp, "farmgate.yaml")])
        for t in ports:
            wait_port(ports[t])
        # nginx's master forks the worker that does the work.
        time.sleep(0.5)
        worker = subprocess.run(["pgrep", "-P", str(procs["nginx"].pid)],
                                capture_output=True, text=True).stdout.split()
        pids = {"direct": procs["direct"].pid, "nginx": int(worker[0]),
                "farmgate": procs["farmgate"].pid}
        results = {t: [] for t in ports}
        for t in ports:  # warm-up
            h2load(ports[t], 2, args.conns, args.streams, payload)
        for r in range(args.rounds):
            for t in ports:
                before = cpu_seconds(pids[t])
                ok, done = h2load(ports[t], args.duration, args.conns, args.streams, payload)
                cpu = cpu_seconds(pids[t]) - before
                results[t].append((ok / args.duration, cpu / max(ok, 1) * 1e6, done - ok))
                print("round %d %-8s %9.0f calls/s %6.1f us CPU/call %d failed"
                      % (r + 1, t, *results[t][-1]), flush=True)
        print()
        print("| target | unary calls/s | CPU per call (µs) | failed |")
        print("|---|---|---|---|")
        med = {}
        for t in ports:
            rps = statistics.median(x[0] for x in results[t])
            cpu = statistics.median(x[1] for x in results[t])
            med[t] = (rps, cpu)
            print("| %s | %.0f | %.1f | %d |" % (t, rps, cpu, sum(x[2] for x in results[t])))
        print()
        print("farmgate/nginx: calls/s %.2f, CPU per call %.2f"
              % (med["farmgate"][0] / med["nginx"][0], med["farmgate"][1] / med["nginx"][1]))
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

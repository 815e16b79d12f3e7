#!/usr/bin/env python3
"""What trace context costs under load: farmgate without `trace:`, with it
(a trusted traceparent continued, the trace id returned), and with it plus
span export to a collector (nginx answering the POSTs), beside nginx proxying
the same backends, in the same run. Every target gets the same requests
(small keep-alive GETs carrying a traceparent: the HTTP/1 fast forward), so
only the configuration differs; wrk -c64, one worker thread each, rounds
interleaved, medians.

    python3 benches/load/trace.py [--rounds 5] [--duration 3] [--binary PATH]

Needs the release binary (target/release/farmgate; `cargo build --release`).
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the load benchmark's helpers)

TRACEPARENT = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

FARMGATE = """listeners: [ {{ name: bench, bind: "127.0.0.1:{port}" }} ]
admin: {{ enabled: false }}
log: {{ access: off, level: warn }}
runtime: {{ worker_threads: 1 }}
farms:
  - name: bench
    algorithm: round_robin
    servers: [ {{ address: "127.0.0.1:{b1}" }}, {{ address: "127.0.0.1:{b2}" }}, {{ address: "127.0.0.1:{b3}" }} ]
{trace}"""

TRACE = """trace:
  trusted_sources: ["127.0.0.1"]
  response_header: X-Trace-Id
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=28000)
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/farmgate"))
    args = ap.parse_args()
    run.ensure_tools()
    base = args.port_base
    b1, b2, b3 = base + 1, base + 2, base + 3
    collector = base + 4
    work = tempfile.mkdtemp(prefix="farmgate-trace-load-")
    os.chmod(work, 0o755)
    os.makedirs(f"{work}/www")
    try:
        backend = run.render("nginx-backend.conf", f"{work}/backend.conf", DIR=work, B1=b1, B2=b2, B3=b3)
        run.start([run.tool("nginx"), "-c", backend, "-p", work], [b1, b2, b3], f"{work}/backend.out")
        # The collector: nginx answering every POST 200 (its body read and dropped).
        with open(f"{work}/collector.conf", "w") as f:
            f.write(f"worker_processes 1; daemon off; pid {work}/collector.pid;\n"
                    f"error_log {work}/collector-error.log warn;\nevents {{ worker_connections 1024; }}\n"
                    f"http {{ access_log off; client_max_body_size 64m; server {{ listen 127.0.0.1:{collector};\n"
                    "location / { return 200 \"{}\"; } } }\n")
        run.start([run.tool("nginx"), "-c", f"{work}/collector.conf", "-p", work], [collector],
                  f"{work}/collector.out")
        nginx_port = base + 10
        proxy = run.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=nginx_port,
                           TLS_PORT=base + 11, B1=b1, B2=b2, B3=b3,
                           CERT=f"{work}/certs/localhost.crt", KEY=f"{work}/certs/localhost.key")
        run.sh(f"{args.binary} gen-certs --out {work}/certs >/dev/null")
        run.start([run.tool("nginx"), "-c", proxy, "-p", work], [nginx_port], f"{work}/nginx.out")
        export = TRACE + f'  export: {{ url: "http://127.0.0.1:{collector}", interval: 1s }}\n'
        headers = ["-H", TRACEPARENT]
        targets = {"nginx": (nginx_port, headers)}
        for i, (name, trace) in enumerate([
            ("farmgate", ""),
            ("farmgate trace, no response header", TRACE.replace("  response_header: X-Trace-Id\n", "")),
            ("farmgate trace", TRACE),
            ("farmgate trace+export", export),
        ]):
            port = base + 20 + i
            cfg = f"{work}/farmgate-{i}.yaml"
            with open(cfg, "w") as f:
                f.write(FARMGATE.format(port=port, b1=b1, b2=b2, b3=b3, trace=trace))
            run.start([args.binary, "run", "--config", cfg], [port], f"{work}/farmgate-{i}.out")
            targets[name] = (port, headers)
        for port, headers in targets.values():  # warm pools
            run.wrk(f"http://127.0.0.1:{port}/", 64, False, 1, headers)
        results = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (port, headers) in targets.items():
                results[name].append(run.wrk(f"http://127.0.0.1:{port}/", 64, False, args.duration, headers))
        print(f"\nsmall keep-alive GET, wrk c64, {args.rounds} round(s) of {args.duration} s, medians\n")
        print("| target | req/s | vs farmgate without trace | vs nginx | p50 ms | p99 ms | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for n, rs in results.items()}
        for name, m in med.items():
            errors = sum(r["errors"] for r in results[name])
            print(f"| {name} | {m['rps']:.0f} | {m['rps'] / med['farmgate']['rps']:.3f} | "
                  f"{m['rps'] / med['nginx']['rps']:.2f} | {m['p50']:.2f} | {m['p99']:.2f} | {errors} |")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Memory per idle keep-alive connection, farmgate against nginx and HAProxy.

Each proxy (one worker, the load benchmark's backends) gets N client connections
opened at once: every client connects, sends one small GET, reads the answer and
stays connected, all concurrently (a burst, the hard case: what the proxy allocated
for the burst has to come back). Once every answer is in, the proxy is left alone
for SETTLE seconds (farmgate parks an idle HTTP/1 connection after one second), then
its RSS is read. The figure is (RSS with N idle connections - RSS before) / N.
Every connection then sends a second request, which must be answered: an idle
connection that was dropped does not count as cheap.

Usage: benches/load/idle_memory.py [--only farmgate,nginx,haproxy] [--conns N]
                                   [--settle S] [--port-base N] [--binary PATH]
Needs nginx, haproxy; farmgate from target/release/farmgate (cargo build --release)
unless --binary names another.
"""
import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the load benchmark's helpers: render, start, ports, tools)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle-memory\r\nAccept: */*\r\n\r\n"

FARMGATE = """listeners:
  - name: bench
    bind: "127.0.0.1:{port}"
    max_connections: {cap}
admin:
  enabled: false
log:
  access: off
  level: warn
proxy:
  idle_timeout: 10m
runtime:
  worker_threads: 1
farms:
  - name: bench
    algorithm: round_robin
    servers:
      - address: "127.0.0.1:{B1}"
      - address: "127.0.0.1:{B2}"
      - address: "127.0.0.1:{B3}"
"""


async def exchange(reader, writer):
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer {head[:40]!r}")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def burst(port, n):
    """Opens n connections at once, one request each; returns them open."""
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await exchange(r, w)
        return r, w
    return await asyncio.gather(*(one() for _ in range(n)))


async def again(conns):
    """A second request on every connection, in waves (the backends' limits)."""
    for i in range(0, len(conns), 500):
        await asyncio.gather(*(exchange(r, w) for r, w in conns[i:i + 500]))


def measure(name, proc, port, n, settle):
    pids = run.pids_of(proc)
    loop = asyncio.new_event_loop()
    # Warm: the runtime, backend connections, allocator arenas.
    loop.run_until_complete(again(loop.run_until_complete(burst(port, 200))))
    time.sleep(settle)
    before = run.status_kib(pids, "VmRSS")
    conns = loop.run_until_complete(burst(port, n))
    time.sleep(settle)  # the proxy settles: farmgate parks idle connections after 1 s
    after = run.status_kib(pids, "VmRSS")
    loop.run_until_complete(again(conns))
    for _, w in conns:
        w.close()
    loop.close()
    per = (after - before) * 1024 / n
    print(f"{name:9} RSS {before / 1024:7.1f} MiB -> {after / 1024:7.1f} MiB with {n:,} idle connections: "
          f"{per / 1024:6.2f} KiB per connection", flush=True)
    return per


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="farmgate,nginx,haproxy")
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--port-base", type=int, default=23000)
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/farmgate"))
    args = ap.parse_args()
    # Each client is one descriptor here and one (plus a backend's) in the
    # proxy; HAProxy wants twice its maxconn. Root may raise the hard limit.
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4 * args.conns + 4096,) * 2)
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.conns + 1000
    if hard < need:
        raise SystemExit(f"open-file limit {hard} < {need}: raise ulimit -Hn")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run.ensure_tools()
    ports = run.port_map(args.port_base)
    work = tempfile.mkdtemp(prefix="farmgate-idle-")
    bk = {f"B{i + 1}": p for i, p in enumerate(ports["backends"])}
    results = {}
    try:
        backend = run.render("nginx-backend.conf", f"{work}/backend.conf", DIR=work, **bk)
        text = open(backend).read().replace("worker_connections 8192", "worker_connections 65536")
        open(backend, "w").write(text)
        os.makedirs(f"{work}/www", exist_ok=True)
        run.start([run.tool("nginx"), "-c", backend, "-p", work], ports["backends"], f"{work}/backend.out")
        tls = run.bench_cert(work)
        for name in args.only.split(","):
            port = ports[(name, "plain")]
            if name == "farmgate":
                cfg = f"{work}/farmgate.yaml"
                with open(cfg, "w") as f:
                    f.write(FARMGATE.format(port=port, cap=args.conns + 1000, **bk))
                cmd = [args.binary, "run", "--config", cfg]
            elif name == "nginx":
                cfg = run.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=port,
                                 TLS_PORT=ports[(name, "tls")], **bk, **tls)
                text = open(cfg).read().replace("worker_connections 16384", "worker_connections 65536")
                open(cfg, "w").write(text)
                cmd = [run.tool("nginx"), "-c", cfg, "-p", work]
            elif name == "haproxy":
                cfg = run.render("haproxy.cfg", f"{work}/haproxy.cfg", DIR=work, PORT=port,
                                 TLS_PORT=ports[(name, "tls")], **bk, **tls)
                maxconn = args.conns + 500
                if 2 * maxconn + 200 > hard:
                    print(f"haproxy   skipped: it wants 2 descriptors per connection, {2 * maxconn + 200} > "
                          f"the open-file limit {hard} (try --conns {hard // 2 - 800})", flush=True)
                    continue
                text = open(cfg).read().replace("maxconn 9000", f"maxconn {maxconn}")
                open(cfg, "w").write(text)
                cmd = [run.tool("haproxy"), "-db", "-f", cfg]
            else:
                raise SystemExit(f"unknown proxy {name}")
            proc = run.start(cmd, [port], f"{work}/{name}.out")
            try:
                results[name] = measure(name, proc, port, args.conns, args.settle)
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=30)
                run.started.remove(proc)
        if "farmgate" in results:
            for peer in ("nginx", "haproxy"):
                if peer in results and results[peer] > 0:
                    print(f"farmgate / {peer}: {results['farmgate'] / results[peer]:.2f}")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""User-space instructions per proxied request, farmgate against nginx and HAProxy.

Each proxy runs under valgrind's callgrind (one worker, the load benchmark's configs,
the same nginx backends) while one keep-alive client connection sends sequential
small GETs (allocations: calls into the C allocator, counted the same way; nginx and
HAProxy allocate from their own pools, which this does not see). A proxy is measured twice, with FEW and with MANY requests; the
difference of the two totals divided by (MANY - FEW) is its instructions per request,
so start-up, config loading and shutdown cancel out. Counts do not depend on the
machine's load, which makes this the figure to compare commits by on shared cores.
Counting starts after start-up and 20 warm-up requests (callgrind_control -i on):
start-up varied by up to ~600 instructions per request between runs of one binary.

Usage: benches/load/instructions.sh [--only farmgate,nginx,haproxy] [--few N] [--many N]
                                    [--path /] [--port-base N] [--binary PATH]
                                    [--new-connections] [--keep DIR]
With --new-connections every request comes on a connection of its own (Connection: close),
so the figure includes accepting and closing; --keep leaves the callgrind profiles in DIR.
Needs valgrind (Debian package valgrind), nginx, haproxy; farmgate from
target/release/farmgate (cargo build --release) unless --binary names another.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the load benchmark's helpers: render, start, ports, tools)

NEW_CONNECTIONS = False  # --new-connections
REQUEST = b"GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: instructions\r\nAccept: */*\r\n\r\n"


def read_response(sock, buf):
    """Reads one Content-Length response from sock; returns the bytes after it."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the proxy closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"unexpected answer: {head[:80]!r}")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if not m:
        raise SystemExit(f"no Content-Length in {head!r}")
    need = int(m.group(1))
    while len(rest) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the proxy closed the connection mid-body")
        rest += chunk
    return rest[need:]


CLOSE = b"GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: instructions\r\nConnection: close\r\n\r\n"


def drive_new(port, path, count):
    """COUNT requests, each on a connection of its own (`Connection: close`)."""
    req = CLOSE % path.encode()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(req)
            read_response(s, b"")
            while s.recv(65536):  # until the proxy closes
                pass


def drive(port, path, count):
    if NEW_CONNECTIONS:
        return drive_new(port, path, count)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        req = REQUEST % path.encode()
        buf = b""
        for _ in range(count):
            s.sendall(req)
            buf = read_response(s, buf)


def callgrind_total(out):
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit(f"{out}: no totals line")


ALLOCATORS = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"}


def callgrind_allocations(out):
    """Calls into the C allocator in a callgrind profile (from any caller)."""
    names, total, callee = {}, 0, None
    with open(out) as f:
        for line in f:
            if line.startswith(("fn=", "cfn=", "cfi=", "cfl=")):
                key, _, rest = line.partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?", rest.strip())
                if m and key in ("fn", "cfn"):
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    if key == "cfn":
                        callee = names.get(m.group(1), "")
                continue
            if line.startswith("calls=") and callee is not None:
                if callee.split("@")[0] in ALLOCATORS:
                    total += int(line[6:].split()[0])
                callee = None
    return total


def need_valgrind():
    """Exits naming the package when valgrind is missing; checks the load tools too."""
    if not os.path.exists("/usr/bin/valgrind"):
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    run.ensure_tools()


def start_under_valgrind(cmd, port, log, name):
    """Starts `cmd` (a valgrind command line) and waits, up to two minutes, until it
    listens on `port`."""
    p = run.start(cmd, [], log)
    deadline = time.time() + 120
    while run.port_free(port):
        if p.poll() is not None:
            raise SystemExit(f"{name} exited under valgrind; see {log}")
        if time.time() > deadline:
            raise SystemExit(f"{name} did not listen on {port} under valgrind")
        time.sleep(0.1)
    return p


def measure(name, cmd, port, path, count, work):
    out = f"{work}/callgrind.{name}.{count}"
    # Counting starts after start-up and the warm-up requests: start-up
    # varies by hundreds of instructions per request between runs of one
    # binary (aws-lc seeds its RNG from CPU jitter), which the two runs'
    # difference does not cancel.
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no",
          "--instr-atstart=no"]
    p = start_under_valgrind(vg + cmd, port, f"{work}/{name}.{count}.out", name)
    drive(port, path, 20)  # warm: backend connections open, lazy state built
    # The command is read when the proxy next runs: a connection opened and
    # closed (no request) wakes it, at a cost of a few instructions per
    # request if it takes more than one.
    on = subprocess.Popen(["callgrind_control", "-i", "on", str(p.pid)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    while on.poll() is None:
        socket.create_connection(("127.0.0.1", port), timeout=60).close()
        time.sleep(0.2)
    drive(port, path, count)
    os.killpg(p.pid, 15)
    p.wait(timeout=120)
    return callgrind_total(out), callgrind_allocations(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="farmgate,nginx,haproxy")
    ap.add_argument("--few", type=int, default=200)
    ap.add_argument("--many", type=int, default=1200)
    ap.add_argument("--path", default="/")
    ap.add_argument("--port-base", type=int, default=21000)
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/farmgate"))
    ap.add_argument("--new-connections", action="store_true",
                    help="each request on a new connection (Connection: close), as the load benchmark's 'new' row")
    ap.add_argument("--keep", help="copy the callgrind profiles here (for callgrind_annotate)")
    args = ap.parse_args()
    global NEW_CONNECTIONS
    NEW_CONNECTIONS = args.new_connections
    need_valgrind()
    ports = run.port_map(args.port_base)
    try:
        work, bk, tls = run.backends_in(ports, "farmgate-instr-")
        results = {}
        for name in args.only.split(","):
            port = ports[(name, "plain")]
            tport = ports[(name, "tls")]
            if name == "farmgate":
                cfg = run.render("farmgate.yaml", f"{work}/farmgate.yaml", DIR=work, ACCESS="off", PORT=port,
                                 TLS_PORT=tport, **bk, **tls)
                cmd = [args.binary, "run", "--config", cfg]
            elif name == "nginx":
                cfg = run.render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work, PORT=port, TLS_PORT=tport,
                                 **bk, **tls)
                # One process: valgrind follows no fork.
                cmd = [run.tool("nginx"), "-c", cfg, "-p", work, "-g", "master_process off;"]
            elif name == "haproxy":
                cfg = run.render("haproxy.cfg", f"{work}/haproxy.cfg", DIR=work, PORT=port, TLS_PORT=tport,
                                 **bk, **tls)
                cmd = [run.tool("haproxy"), "-db", "-f", cfg]
            else:
                raise SystemExit(f"unknown proxy {name}")
            few, few_allocs = measure(name, cmd, port, args.path, args.few, work)
            many, many_allocs = measure(name, cmd, port, args.path, args.many, work)
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                for n in (args.few, args.many):
                    shutil.copy(f"{work}/callgrind.{name}.{n}", args.keep)
            results[name] = (many - few) / (args.many - args.few)
            allocs = (many_allocs - few_allocs) / (args.many - args.few)
            print(f"{name:9} {results[name]:9,.0f} instructions per request, {allocs:5.1f} allocations "
                  f"(C allocator calls) per request "
                  f"({args.few} vs {args.many} requests "
                  f"{'each on a new connection' if NEW_CONNECTIONS else 'on one connection'}, path {args.path})",
                  flush=True)
        if "farmgate" in results:
            for peer in ("nginx", "haproxy"):
                if peer in results:
                    print(f"farmgate / {peer}: {results['farmgate'] / results[peer]:.2f}")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()

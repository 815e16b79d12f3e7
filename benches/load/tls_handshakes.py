#!/usr/bin/env python3
"""TLS handshake load: one HTTPS request per new connection, full or resumed handshakes.

Each of --conns worker processes loops until the deadline: TCP connect, TLS 1.3
handshake, `GET PATH HTTP/1.1` with `Connection: close`, read the answer to the end
(the server closes first, so TIME_WAIT stays on its side), close. With --mode resumed
each connection offers the session (ticket) the previous connection of its worker
received, as browsers do, so every handshake but a worker's first is a resumption
when the server resumes; with --mode full no session is ever offered.

The client is Python's ssl module, i.e. OpenSSL, with its default key-exchange groups
(X25519 first) and certificate verification off (as wrk does: the server does the
same work either way). Every connection's `session_reused` is counted, so a run
proves whether the server really resumed. Prints one JSON object:
{"reqs", "rps", "p50", "p99" (ms, per connection), "errors", "resumed", "first"}.
Loopback only; bounded by --duration.
"""
import argparse
import json
import multiprocessing
import socket
import ssl
import time


def worker(port, path, mode, duration, start_at, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    session = None
    n = resumed = errors = 0
    lat = []
    first = None  # protocol and cipher of the first handshake, for the record
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + duration
    while time.time() < deadline:
        t0 = time.perf_counter()
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
            s.sendall(request)
            head = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                head = head or chunk[:16]
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            if s.session_reused:
                resumed += 1
            if first is None:
                first = f"{s.version()} {s.cipher()[0]}"
            if mode == "resumed":
                session = s.session
            s.close()
        except OSError:
            errors += 1
        lat.append(time.perf_counter() - t0)
        n += 1
    out.put({"reqs": n, "resumed": resumed, "errors": errors, "lat": lat, "first": first})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--mode", choices=["full", "resumed"], required=True)
    ap.add_argument("--conns", type=int, default=4, help="worker processes (concurrent connections)")
    ap.add_argument("--duration", type=float, default=3)
    args = ap.parse_args()

    out = multiprocessing.Queue()
    start_at = time.time() + 0.2  # every worker starts together, after the forks
    procs = [multiprocessing.Process(target=worker, args=(args.port, args.path, args.mode, args.duration, start_at, out))
             for _ in range(args.conns)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=args.duration + 30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    lat = sorted(x for part in parts for x in part["lat"])
    reqs = sum(p["reqs"] for p in parts)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    print(json.dumps({
        "reqs": reqs,
        "rps": reqs / args.duration,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "errors": sum(p["errors"] for p in parts),
        "resumed": sum(p["resumed"] for p in parts),
        "first": next((p["first"] for p in parts if p["first"]), None),
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Side-by-side load benchmark: farmgate vs nginx vs HAProxy on the same backends.

Starts cheap backends (one nginx worker on three ports), the three proxies in front
of them (one worker/thread each, round robin, upstream keep-alive), and wrk straight
to one backend as the ceiling. Interleaves the targets over several rounds and prints
medians and ratios. CPU per request of the proxy process (utime+stime from /proc over
the run) is the figure that decides on a 2-core machine where proxy, backends and the
load generator share the cores.

Scenario groups (--only takes a comma-separated list of them):
  http   plain HTTP: small and 16 KiB bodies at 64 and 256 keep-alive connections,
         a new connection per request (wrk)
  tls    the proxies terminate TLS 1.3 with one ECDSA P-256 certificate: keep-alive
         small requests at 64 connections (wrk), and one request per new connection
         with full and with resumed handshakes (tls_handshakes.py; req/s there are
         handshakes/s)
  cache  cache hits (nginx proxy_cache, HAProxy cache, farmgate farms[].cache) of a
         small and a 16 KiB response, 64 keep-alive connections (wrk)
  compress  gzip of a 16 KiB text response at levels 1 and 6, and a cache hit of it at
         level 1: nginx `gzip on` against farmgate `compression`, 64 keep-alive
         connections sending Accept-Encoding: gzip (wrk); the compressed sizes too

Everything runs on loopback, is bounded in time, and only what this script started is
stopped. Ports: proxies on BASE+81..83 (plain), BASE+91..93 (TLS), BASE+71..73 (cache),
BASE+61..63 (compress),
backends on BASE+1001..1003; BASE is --port-base, default 18000.
Usage: benches/load/run.sh [--binary PATH] [--only GROUPS] [--rounds N] [--duration S] [--quick] [--port-base N]
"""
import argparse
import gzip
import http.client
import json
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

PROXIES = ["nginx", "haproxy", "farmgate"]
TARGETS = ["direct"] + PROXIES
GROUPS = ["http", "tls", "cache", "compress"]
# The compression scenarios compare farmgate with nginx's gzip filter.
COMPRESS_TARGETS = ["nginx", "farmgate"]
GZIP = ["-H", "Accept-Encoding: gzip"]
# Concurrent client processes of the handshake scenarios (see tls_handshakes.py).
HANDSHAKE_CONNS = 4

# name, group, listener (plain | tls | cache), load (wrk | full | resumed), path,
# connections, new connection per request
SCENARIOS = [
    ("small keep-alive c64", "http", "plain", "wrk", "/", 64, False),
    ("small keep-alive c256", "http", "plain", "wrk", "/", 256, False),
    ("16k keep-alive c64", "http", "plain", "wrk", "/16k", 64, False),
    ("16k keep-alive c256", "http", "plain", "wrk", "/16k", 256, False),
    ("small new-conn c64", "http", "plain", "wrk", "/", 64, True),
    ("TLS small keep-alive c64", "tls", "tls", "wrk", "/", 64, False),
    (f"TLS full handshake c{HANDSHAKE_CONNS}", "tls", "tls", "full", "/", HANDSHAKE_CONNS, True),
    (f"TLS resumed handshake c{HANDSHAKE_CONNS}", "tls", "tls", "resumed", "/", HANDSHAKE_CONNS, True),
    ("cache hit small c64", "cache", "cache", "wrk", "/cached", 64, False),
    ("cache hit 16k c64", "cache", "cache", "wrk", "/cached16k", 64, False),
    ("gzip level 1 16k text c64", "compress", "compress", "wrk", "/l1/text16k", 64, False),
    ("gzip level 6 16k text c64", "compress", "compress", "wrk", "/l6/text16k", 64, False),
    ("gzip level 1 cache hit 16k c64", "compress", "compress", "wrk", "/c1/cachedtext16k", 64, False),
]

# The backends log requests for the cacheable paths (to count misses); wrk straight
# to a backend asks for the same body under the path that is not logged.
DIRECT_PATH = {"/cached": "/", "/cached16k": "/16k"}

started = []  # Popen handles of what we started, stopped at exit
# The farmgate binary under test (--binary).
FARMGATE = [os.path.join(ROOT, "target/release/farmgate")]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def ensure_tools():
    missing = [t for t in ("nginx", "haproxy", "wrk", "openssl") if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        print(f"installing {' '.join(missing)} from Debian ...", flush=True)
        pkgs = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk", "openssl": "openssl"}
        sh("apt-get update -qq")
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + " ".join(pkgs[m] for m in missing))


def tool(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def port_map(base):
    """Every port the benchmark uses, from --port-base (default: the historical 18081-3, 19001-3)."""
    p = {"backends": [base + 1001, base + 1002, base + 1003]}
    for i, proxy in enumerate(PROXIES, start=1):
        p[(proxy, "plain")] = base + 80 + i
        p[(proxy, "tls")] = base + 90 + i
        p[(proxy, "cache")] = base + 70 + i
        p[(proxy, "compress")] = base + 60 + i
    return p


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
    subs.setdefault("WORKERS", 1)  # one worker/thread unless --workers says more
    text = open(os.path.join(HERE, template)).read()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.search(r"@[A-Z_0-9]+@", text)
    if left:
        raise SystemExit(f"{template}: no value for {left.group(0)}")
    with open(out, "w") as f:
        f.write(text)
    return out


def start(cmd, ports, log):
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    started.append(p)
    for port in ports:
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


def status_kib(pids, field):
    """A /proc/PID/status figure (VmHWM, VmRSS, ...) summed over the processes."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def peak_rss_kib(pids):
    return status_kib(pids, "VmHWM")


def bench_cert(work):
    """A throwaway P-256 certificate for the TLS listeners: CERT, KEY and PEM (both)."""
    cert, key, pem = f"{work}/cert.pem", f"{work}/key.pem", f"{work}/both.pem"
    sh(f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench "
       f"-keyout {key} -out {cert} 2>/dev/null")
    with open(pem, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return dict(CERT=cert, KEY=key, PEM=pem)


def backends_in(ports, prefix):
    """A work directory (a 16 KiB body file in it), the backends started there (one
    nginx worker on three ports) and a throwaway certificate: (work, bk, tls), bk the
    templates' B1..B3, tls their CERT, KEY and PEM. Call inside the try whose finally
    runs stop_all()."""
    work = tempfile.mkdtemp(prefix=prefix)
    bk = {f"B{i + 1}": p for i, p in enumerate(ports["backends"])}
    os.makedirs(f"{work}/www", exist_ok=True)
    with open(f"{work}/www/16k", "wb") as f:
        f.write(b"x" * 16384)
    start([tool("nginx"), "-c", render("nginx-backend.conf", f"{work}/backend.conf", DIR=work, **bk), "-p", work],
          ports["backends"], f"{work}/backend.out")
    return work, bk, bench_cert(work)


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(url, conns, newconn, duration, headers=()):
    cmd = [tool("wrk"), f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    cmd += list(headers)
    if newconn:
        cmd += ["-H", "Connection: close"]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return {"reqs": reqs, "rps": rps, "p50": to_ms(lat["50"]), "p99": to_ms(lat["99"]), "errors": errors}


def handshakes(port, path, mode, conns, duration):
    cmd = [sys.executable, os.path.join(HERE, "tls_handshakes.py"), "--port", str(port), "--path", path,
           "--mode", mode, "--conns", str(conns), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    return json.loads(out)


class Bench:
    def __init__(self, args, ports, work):
        self.args, self.ports, self.work = args, ports, work
        self.procs = {}  # instance name -> Popen

    def instance(self, target, listener):
        return f"{target}-{listener}" if listener in ("cache", "compress") else target

    def port(self, target, listener):
        return self.ports["backends"][0] if target == "direct" else self.ports[(target, listener)]

    def targets(self, scen):
        _, group, *_ = scen
        if group == "compress":
            return COMPRESS_TARGETS
        return TARGETS if group != "tls" else PROXIES  # the backends speak plain HTTP only

    def run(self, scen, target, duration):
        _, _, listener, load, path, conns, newconn = scen
        port = self.port(target, listener)
        if target == "direct":  # the backend's answer of the same size, not logged
            path = DIRECT_PATH.get(path, path)
        if load == "wrk":
            scheme = "https" if listener == "tls" else "http"
            headers = GZIP if listener == "compress" else ()
            return wrk(f"{scheme}://127.0.0.1:{port}{path}", conns, newconn, duration, headers)
        return handshakes(port, path, load, conns, duration)

    def backend_fetches(self):
        try:
            with open(f"{self.work}/backend-cached.log") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0


def start_instances(b, groups, cert, key, pem, access, workers=1):
    ports, work = b.ports, b.work
    w = dict(WORKERS=workers)
    bk = {f"B{i + 1}": p for i, p in enumerate(ports["backends"])}
    start([tool("nginx"), "-c", render("nginx-backend.conf", f"{work}/backend.conf", DIR=work, **bk), "-p", work],
          ports["backends"], f"{work}/backend.out")
    tls = dict(CERT=cert, KEY=key, PEM=pem)
    if groups & {"http", "tls"}:
        b.procs["nginx"] = start(
            [tool("nginx"), "-c", render("nginx-proxy.conf", f"{work}/proxy.conf", DIR=work,
                                         PORT=ports[("nginx", "plain")], TLS_PORT=ports[("nginx", "tls")], **bk, **tls,
                                         **w),
             "-p", work], [ports[("nginx", "plain")], ports[("nginx", "tls")]], f"{work}/nginx.out")
        b.procs["haproxy"] = start(
            [tool("haproxy"), "-db", "-f", render("haproxy.cfg", f"{work}/haproxy.cfg", DIR=work,
                                                  PORT=ports[("haproxy", "plain")], TLS_PORT=ports[("haproxy", "tls")],
                                                  **bk, **tls, **w)],
            [ports[("haproxy", "plain")], ports[("haproxy", "tls")]], f"{work}/haproxy.out")
        cfg = render("farmgate.yaml", f"{work}/farmgate.yaml", DIR=work, ACCESS=access,
                     PORT=ports[("farmgate", "plain")], TLS_PORT=ports[("farmgate", "tls")], **bk, **tls, **w)
        b.procs["farmgate"] = start([FARMGATE[0], "run", "--config", cfg],
                                    [ports[("farmgate", "plain")], ports[("farmgate", "tls")]], f"{work}/farmgate.out")
    if "cache" in groups:
        port = ports[("nginx", "cache")]
        b.procs["nginx-cache"] = start(
            [tool("nginx"), "-c", render("nginx-cache.conf", f"{work}/nginx-cache.conf", DIR=work, PORT=port, **bk),
             "-p", work], [port], f"{work}/nginx-cache.out")
        port = ports[("haproxy", "cache")]
        b.procs["haproxy-cache"] = start(
            [tool("haproxy"), "-db", "-f", render("haproxy-cache.cfg", f"{work}/haproxy-cache.cfg", DIR=work,
                                                  PORT=port, **bk)], [port], f"{work}/haproxy-cache.out")
        port = ports[("farmgate", "cache")]
        cfg = render("farmgate-cache.yaml", f"{work}/farmgate-cache.yaml", DIR=work, ACCESS=access, PORT=port, **bk)
        b.procs["farmgate-cache"] = start([FARMGATE[0], "run", "--config", cfg],
                                          [port], f"{work}/farmgate-cache.out")
    if "compress" in groups:
        port = ports[("nginx", "compress")]
        b.procs["nginx-compress"] = start(
            [tool("nginx"), "-c", render("nginx-compress.conf", f"{work}/nginx-compress.conf", DIR=work, PORT=port,
                                         **bk), "-p", work], [port], f"{work}/nginx-compress.out")
        port = ports[("farmgate", "compress")]
        cfg = render("farmgate-compress.yaml", f"{work}/farmgate-compress.yaml", DIR=work, ACCESS=access, PORT=port,
                     **bk)
        b.procs["farmgate-compress"] = start([FARMGATE[0], "run", "--config", cfg],
                                             [port], f"{work}/farmgate-compress.out")


def check_tls(b):
    """Proves, per proxy, what the TLS rows measure: the negotiated parameters (openssl
    s_client) and that a resumed handshake really resumes while a full one does not."""
    facts = {}
    for t in PROXIES:
        port = b.ports[(t, "tls")]
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                              "-tls1_3", "-brief"], input="", capture_output=True, text=True, timeout=20).stderr
        get = {k: (re.search(rf"^{k}: (.*)$", out, re.M) or [None, "?"])[1] for k in
               ("Protocol version", "Ciphersuite", "Signature type", "Server Temp Key")}
        facts[t] = (f"{get['Protocol version']} {get['Ciphersuite']}, {get['Signature type']} signature, "
                    f"{get['Server Temp Key'].split(',')[0]} key exchange")
        full = handshakes(port, "/", "full", 1, 0.5)
        res = handshakes(port, "/", "resumed", 1, 0.5)
        print(f"  {t:9} {facts[t]}; full: {full['resumed']}/{full['reqs']} resumed; "
              f"resumed: {res['resumed']}/{res['reqs']} resumed", flush=True)
        if full["errors"] or res["errors"] or full["resumed"] or res["reqs"] < 5 or res["resumed"] < res["reqs"] - 1:
            raise SystemExit(f"{t}: TLS check failed (full {full}, resumed {res})")
    if len(set(facts.values())) != 1:
        print("  WARNING: the proxies negotiate different TLS parameters", flush=True)
    return facts


def check_cache(b):
    """Fills each proxy's cache and proves that hits are answered by the proxy: after
    the first request, a run of requests must not reach the backends."""
    for t in PROXIES:
        port = b.ports[(t, "cache")]
        for path in ("/cached", "/cached16k"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            statuses = []
            first = b.backend_fetches()
            for i in range(201):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                statuses.append(resp.status)
                if i == 0:
                    # The first request is a miss; the backend logs it after it has
                    # answered, so wait for that line before counting.
                    deadline = time.time() + 3
                    while b.backend_fetches() == first and time.time() < deadline:
                        time.sleep(0.01)
                    before = b.backend_fetches()
            conn.close()
            time.sleep(0.1)  # a late miss would be logged by now
            fetched = b.backend_fetches() - before
            print(f"  {t:9} {path:11} 200 requests after the first, {fetched} reached a backend", flush=True)
            if set(statuses) != {200} or fetched:
                raise SystemExit(f"{t}: {path} is not answered from its cache (statuses {set(statuses)})")


def check_compress(b, original):
    """Proves what the compression rows measure: each proxy answers gzip that decodes to
    the backend's text, and after the first request the cached path reaches no backend.
    Returns the compressed body size per (path, proxy)."""
    sizes = {}
    for t in COMPRESS_TARGETS:
        port = b.ports[(t, "compress")]
        for path in ("/l1/text16k", "/l6/text16k", "/c1/cachedtext16k"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            first = b.backend_fetches()
            for i in range(50):
                conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or resp.getheader("Content-Encoding") != "gzip":
                    raise SystemExit(f"{t}: {path} answered {resp.status} {resp.getheader('Content-Encoding')}")
                if gzip.decompress(body) != original:
                    raise SystemExit(f"{t}: {path} does not decode to the backend's text")
                if i == 0:
                    deadline = time.time() + 3
                    while path.startswith("/c1/") and b.backend_fetches() == first and time.time() < deadline:
                        time.sleep(0.01)
                    before = b.backend_fetches()
            conn.close()
            sizes[(path, t)] = len(body)
            fetched = b.backend_fetches() - before if path.startswith("/c1/") else 0
            print(f"  {t:9} {path:18} gzip {len(body)} bytes of {len(original)}"
                  + (f", 49 requests after the first, {fetched} reached a backend" if path.startswith("/c1/") else ""),
                  flush=True)
            if fetched:
                raise SystemExit(f"{t}: {path} is not answered from its cache")
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=2, help="seconds per run")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s runs")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated scenario groups: {', '.join(GROUPS)}")
    ap.add_argument("--port-base", type=int, default=18000,
                    help="ports are BASE+71..93 (proxies) and BASE+1001..1003 (backends); default 18000")
    ap.add_argument("--binary", help="the farmgate binary to run (default target/release/farmgate)")
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes/threads of each proxy in the http and tls groups (farmgate "
                         "runtime.worker_threads, nginx worker_processes, HAProxy nbthread)")
    ap.add_argument("--access-log", action="store_true", help="farmgate with its access log on (to a file)")
    ap.add_argument("--out", help="where the table goes; default benches/load/results-latest.md for a run of "
                    "every group, none (printed only) for an --only run")
    args = ap.parse_args()
    if args.binary:
        FARMGATE[0] = os.path.abspath(args.binary)
    if args.quick:
        args.rounds, args.duration = 1, 2
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    if not groups or groups - set(GROUPS):
        ap.error(f"--only: unknown group(s) {', '.join(sorted(groups - set(GROUPS))) or '(none)'}; "
                 f"choose from {', '.join(GROUPS)}")
    scenarios = [s for s in SCENARIOS if s[1] in groups]
    if args.out is None and groups == set(GROUPS):
        args.out = os.path.join(HERE, "results-latest.md")
    ports = port_map(args.port_base)

    ensure_tools()
    needed = list(ports["backends"]) + [p for (t, l), p in ((k, v) for k, v in ports.items() if k != "backends")
                                         if (l in ("plain", "tls") and groups & {"http", "tls"})
                                         or (l == "cache" and "cache" in groups)]
    for port in needed:
        if not port_free(port):
            raise SystemExit(f"port {port} is busy; stop what uses it first or pick another --port-base")
    if not args.binary:
        print("building farmgate (release) ...", flush=True)
        sh("cargo build --release --quiet", cwd=ROOT)

    work = tempfile.mkdtemp(prefix="farmgate-load-")
    os.chmod(work, 0o755)  # nginx workers run as www-data and must read www/
    os.makedirs(f"{work}/www")
    for name in ("16k", "cached16k"):
        with open(f"{work}/www/{name}", "wb") as f:
            f.write(b"x" * 16384)
    # Real text for the compression rows: the project's own docs, 16 KiB of them.
    text = b"".join(open(os.path.join(ROOT, "docs", n), "rb").read()
                    for n in sorted(os.listdir(os.path.join(ROOT, "docs"))) if n.endswith(".md"))[:16384]
    for name in ("text16k", "cachedtext16k"):
        with open(f"{work}/www/{name}", "wb") as f:
            f.write(text)
    b = Bench(args, ports, work)
    try:
        # One certificate for every TLS listener: ECDSA P-256 (farmgate gen-certs).
        sh(f"{FARMGATE[0]} gen-certs --out {work}/certs >/dev/null")
        cert, key = f"{work}/certs/localhost.crt", f"{work}/certs/localhost.key"
        with open(f"{work}/certs/localhost.pem", "w") as f:  # HAProxy wants certificate and key in one file
            f.write(open(cert).read() + open(key).read())
        start_instances(b, groups, cert, key, f"{work}/certs/localhost.pem", "text" if args.access_log else "off",
                        args.workers)

        runs = sum(len(b.targets(s)) for s in scenarios)
        total = args.rounds * runs * (args.duration + 0.4) + len(scenarios) * len(PROXIES) * 1.8 + 10
        print(f"running {args.rounds} round(s) x {len(scenarios)} scenario(s), about {total:.0f} s", flush=True)
        for inst, proc in b.procs.items():  # warm up pools and caches
            target, _, listener = inst.partition("-")
            wrk(f"http://127.0.0.1:{b.port(target, listener or 'plain')}/", 16, False, 1)
        notes = {}
        if "tls" in groups:
            print("checking TLS parameters and resumption ...", flush=True)
            notes["tls"] = check_tls(b)
        if "cache" in groups:
            print("checking that cache hits are hits ...", flush=True)
            check_cache(b)
        if "compress" in groups:
            print("checking that compressed answers decode, and cache hits are hits ...", flush=True)
            notes["compress"] = check_compress(b, text)

        results = {}  # (scenario, target) -> list of runs
        for rnd in range(args.rounds):
            for scen in scenarios:
                name, _, listener, *_ = scen
                order = b.targets(scen) if rnd % 2 == 0 else list(reversed(b.targets(scen)))
                for target in order:
                    proc = b.procs.get(b.instance(target, listener))
                    pids = pids_of(proc) if proc else []
                    c0 = cpu_ticks(pids) if pids else 0
                    f0 = b.backend_fetches()
                    r = b.run(scen, target, args.duration)
                    r["fetches"] = b.backend_fetches() - f0
                    if pids:
                        r["cpu_us"] = (cpu_ticks(pids) - c0) / TICK * 1e6 / max(r["reqs"], 1)
                    results.setdefault((name, target), []).append(r)
                    print(f"  round {rnd + 1} {name:28} {target:9} {r['rps']:>10.0f} req/s"
                          + (f"  {r['cpu_us']:.1f} us/req" if pids else "")
                          + (f"  resumed {r['resumed']}/{r['reqs']}" if "resumed" in r else "")
                          + (f"  ERRORS {r['errors']}" if r["errors"] else ""), flush=True)
        # Syscalls in a separate pass: tracing them inflates the CPU figures.
        for scen in scenarios:
            name, _, listener, *_ = scen
            for target in [t for t in PROXIES if t in b.targets(scen)]:
                counter = SyscallCounter(pids_of(b.procs[b.instance(target, listener)]))
                r = b.run(scen, target, 1)
                n = counter.stop()
                for run in results[(name, target)]:
                    run["sys"] = n / max(r["reqs"], 1) if n is not None else float("nan")
        rss = {inst: peak_rss_kib(pids_of(p)) for inst, p in b.procs.items()}
        report(results, rss, scenarios, notes, args)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def report(results, rss, scenarios, notes, args):
    lines = [
        f"Load benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{args.rounds} round(s) of {args.duration} s per target, medians. "
        f"farmgate access log {'on' if args.access_log else 'off'}; "
        f"{args.workers} worker(s)/thread(s) per proxy in the http and tls rows."
        + (" TLS rows: one ECDSA P-256 certificate, TLS 1.3; handshake rows count handshakes/s as req/s."
           if "tls" in notes else ""),
        "",
        "| scenario | target | req/s | vs direct | p50 ms | p99 ms | CPU us/req | vs nginx | vs HAProxy | syscalls/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, *_ in scenarios:
        direct = med(results[(name, "direct")], "rps") if (name, "direct") in results else None
        ref = {t: med(results[(name, t)], "cpu_us") for t in ("nginx", "haproxy") if (name, t) in results}
        for target in TARGETS:
            runs = results.get((name, target))
            if not runs:
                continue
            row = [name, target, f"{med(runs, 'rps'):.0f}", f"{med(runs, 'rps') / direct:.2f}" if direct else "-",
                   f"{med(runs, 'p50'):.2f}", f"{med(runs, 'p99'):.2f}"]
            if target in PROXIES:
                cpu = med(runs, "cpu_us")
                ratio = {t: f"{cpu / ref[t]:.2f}" if t in ref else "-" for t in ("nginx", "haproxy")}
                row += [f"{cpu:.1f}", ratio["nginx"], ratio["haproxy"], f"{med(runs, 'sys'):.1f}"]
            else:
                row += ["-", "-", "-", "-"]
            row.append(str(sum(r["errors"] for r in runs)))
            lines.append("| " + " | ".join(row) + " |")
    lines += [""]
    if "tls" in notes:
        params = set(notes["tls"].values())
        lines.append("TLS rows: the proxies terminate TLS with one ECDSA P-256 certificate and forward plain HTTP; "
                     "negotiated (openssl s_client): "
                     + ("; ".join(params) if len(params) == 1 else "; ".join(f"{t} {v}" for t, v in notes["tls"].items()))
                     + ". Handshake rows: one request per new connection, so req/s = handshakes/s and CPU us/req is "
                     f"per handshake plus request; {HANDSHAKE_CONNS} client processes (tls_handshakes.py). Resumed: "
                     + ", ".join(f"{t} {sum(r['resumed'] for r in runs)}/{sum(r['reqs'] for r in runs)}"
                                 for (n, t), runs in results.items() if "resumed handshake" in n and t in PROXIES)
                     + " handshakes (the first of each client process is full).")
        lines.append("")
    cached = [(n, t, runs) for (n, t), runs in results.items() if n.startswith("cache hit") and t in PROXIES]
    if cached:
        lines.append("Cache rows: requests that reached a backend during the measured runs (misses): "
                     + ", ".join(f"{t} {n.removeprefix('cache hit ')} {sum(r['fetches'] for r in runs)}"
                                 f"/{sum(r['reqs'] for r in runs)}" for n, t, runs in cached) + ".")
        lines.append("")
    if "compress" in notes:
        sizes = notes["compress"]
        lines.append("Compression rows: gzip body bytes of the 16 KiB text (farmgate / nginx): "
                     + ", ".join(f"{path} {sizes[(path, 'farmgate')]} / {sizes[(path, 'nginx')]} = "
                                 f"{sizes[(path, 'farmgate')] / sizes[(path, 'nginx')]:.3f}"
                                 for path in sorted({p for p, _ in sizes}))
                     + ". nginx compresses every cache hit again; farmgate keeps the encoded variant.")
        lines.append("")
    lines += ["Peak RSS (VmHWM, all processes of the instance): "
              + ", ".join(f"{t} {kib / 1024:.1f} MiB" for t, kib in rss.items())]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)

"""A real gRPC server (Python grpcio) for farmgate's end-to-end tests.

    python3 grpc_backend.py NAME [--port N] [--tls CERT KEY] [--fail-unary CODE]

Serves raw-bytes methods (no generated code, so no protoc is needed):

  /test.Echo/Unary         answers b"NAME:" + the request (with --fail-unary
                           CODE: aborts with that status, "NAME is failing")
  /test.Echo/Big           answers the request as it came (large messages)
  /test.Echo/ServerStream  request b"N": N messages b"NAME:i"
  /test.Echo/ClientStream  answers b"NAME:<messages>:<bytes>"
  /test.Echo/Bidi          echoes every message as it arrives
  /test.Echo/Fail          request b"CODE:message": aborts with that status
                           (trailing metadata x-detail: farmgate-test)
  /test.Echo/Slow          request b"SECONDS": sleeps, then answers b"late"
  /grpc.health.v1.Health/Check  the standard health protocol; the state is
                           read from the file NAME.health next to --state-dir
                           when given (SERVING unless it says NOT_SERVING)

Prints "READY <port>" on stdout once serving. SIGTERM stops gracefully: GOAWAY
to clients, in-flight calls finish (grace 5 s), then exit.
"""

import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

MAX = 32 * 1024 * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--state-dir")
    ap.add_argument("--fail-unary", type=int)
    args = ap.parse_args()
    name = args.name.encode()

    def unary(req, ctx):
        if args.fail_unary is not None:
            status = next(s for s in grpc.StatusCode if s.value[0] == args.fail_unary)
            ctx.abort(status, args.name + " is failing")
        return name + b":" + req

    def big(req, ctx):
        return req

    def server_stream(req, ctx):
        for i in range(int(req)):
            yield name + b":" + str(i).encode()

    def client_stream(it, ctx):
        n = total = 0
        for m in it:
            n += 1
            total += len(m)
        return name + b":%d:%d" % (n, total)

    def bidi(it, ctx):
        for m in it:
            yield m

    def fail(req, ctx):
        code, _, message = req.decode().partition(":")
        status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
        ctx.set_trailing_metadata((("x-detail", "farmgate-test"),))
        ctx.abort(status, message)

    def slow(req, ctx):
        time.sleep(float(req))
        return b"late"

    def health(req, ctx):
        # HealthCheckResponse{status = 1}: SERVING 1, NOT_SERVING 2.
        state = "SERVING"
        if args.state_dir:
            try:
                with open(os.path.join(args.state_dir, args.name + ".health")) as f:
                    state = f.read().strip() or "SERVING"
            except FileNotFoundError:
                pass
        return bytes([0x08, 1 if state == "SERVING" else 2])

    h = grpc.unary_unary_rpc_method_handler
    echo = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": h(unary),
            "Big": h(big),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": h(fail),
            "Slow": h(slow),
        },
    )
    health_service = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": h(health)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        handlers=(echo, health_service),
        options=[
            ("grpc.max_receive_message_length", MAX),
            ("grpc.max_send_message_length", MAX),
            ("grpc.so_reuseport", 0),
        ],
    )
    address = "127.0.0.1:%d" % args.port
    if args.tls:
        with open(args.tls[0], "rb") as c, open(args.tls[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        print("cannot bind " + address, file=sys.stderr)
        sys.exit(1)
    server.start()
    print("READY %d" % port, flush=True)

    done = threading.Event()

    def stop(*_):
        server.stop(5).wait()
        done.set()

    signal.signal(signal.SIGTERM, stop)
    while not done.is_set():
        done.wait(0.5)


if __name__ == "__main__":
    main()

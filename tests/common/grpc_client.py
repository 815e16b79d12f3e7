"""A real gRPC client (Python grpcio) for farmgate's end-to-end tests: runs one
scenario against TARGET (host:port, h2c) and prints its result as one JSON
line. Methods are those of grpc_backend.py.

    python3 grpc_client.py shapes TARGET
    python3 grpc_client.py big TARGET BYTES
    python3 grpc_client.py fail TARGET CODE MESSAGE
    python3 grpc_client.py slow TARGET SECONDS DEADLINE
    python3 grpc_client.py spread TARGET CALLS THREADS
    python3 grpc_client.py loop TARGET STOPFILE THREADS
    python3 grpc_client.py killstream TARGET
"""

import json
import os
import sys
import threading
import time

import grpc

MAX = 32 * 1024 * 1024


def channel(target):
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", MAX),
            ("grpc.max_send_message_length", MAX),
            # Do not retry on the client side: farmgate's behaviour is tested.
            ("grpc.enable_retries", 0),
        ],
    )


def failure(e):
    return {
        "code": e.code().name,
        "details": e.details(),
        "trailing": dict(e.trailing_metadata() or ()),
    }


def shapes(ch):
    out = {}
    out["unary"] = ch.unary_unary("/test.Echo/Unary")(b"hello", timeout=10).decode()
    stream = ch.unary_stream("/test.Echo/ServerStream")(b"5", timeout=10)
    out["server_stream"] = [m.decode() for m in stream]
    upload = ch.stream_unary("/test.Echo/ClientStream")
    out["client_stream"] = upload(iter([b"a" * 10, b"b" * 20, b"c" * 30, b"d"]), timeout=10).decode()
    # Bidi: each answer arrives before the next message is sent.
    replies = []
    ready = threading.Semaphore(0)

    def messages():
        for m in [b"one", b"two", b"three"]:
            yield m
            ready.acquire()

    for r in ch.stream_stream("/test.Echo/Bidi")(messages(), timeout=10):
        replies.append(r.decode())
        ready.release()
    out["bidi"] = replies
    return out


def big(ch, size):
    payload = bytes((i * 7) & 0xFF for i in range(256)) * (size // 256)
    started = time.time()
    back = ch.unary_unary("/test.Echo/Big")(payload, timeout=60)
    return {"sent": len(payload), "back": len(back), "same": back == payload,
            "seconds": time.time() - started}


def fail(ch, code, message):
    try:
        ch.unary_unary("/test.Echo/Fail")(("%s:%s" % (code, message)).encode(), timeout=10)
        return {"code": "OK"}
    except grpc.RpcError as e:
        return failure(e)


def slow(ch, seconds, deadline):
    started = time.time()
    try:
        ch.unary_unary("/test.Echo/Slow")(seconds.encode(), timeout=float(deadline))
        out = {"code": "OK"}
    except grpc.RpcError as e:
        out = failure(e)
    out["elapsed"] = time.time() - started
    return out


def spread(ch, calls, threads):
    counts = {}
    errors = []
    lock = threading.Lock()
    left = [calls]
    call = ch.unary_unary("/test.Echo/Unary")

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                name = call(b"x", timeout=10).decode().split(":")[0]
                with lock:
                    counts[name] = counts.get(name, 0) + 1
            except grpc.RpcError as e:
                with lock:
                    errors.append(failure(e))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"counts": counts, "errors": errors[:5], "failed": len(errors)}


def loop(ch, stopfile, threads):
    """Unary calls until STOPFILE exists; every call must succeed."""
    stats = {"calls": 0, "failed": 0, "errors": [], "servers": {}}
    lock = threading.Lock()
    call = ch.unary_unary("/test.Echo/Unary")

    def worker():
        while not os.path.exists(stopfile):
            try:
                name = call(b"x", timeout=10).decode().split(":")[0]
                with lock:
                    stats["calls"] += 1
                    stats["servers"][name] = stats["servers"].get(name, 0) + 1
            except grpc.RpcError as e:
                with lock:
                    stats["calls"] += 1
                    stats["failed"] += 1
                    if len(stats["errors"]) < 5:
                        stats["errors"].append(failure(e))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    print("STARTED", flush=True)
    for t in ts:
        t.join()
    return stats


def killstream(ch):
    """A long server stream; prints STREAMING after 10 messages, then reads
    until the stream ends (the test kills the server meanwhile)."""
    got = 0
    try:
        for _ in ch.unary_stream("/test.Echo/ServerStream")(b"100000000", timeout=30):
            got += 1
            if got == 10:
                print("STREAMING", flush=True)
        out = {"code": "OK"}
    except grpc.RpcError as e:
        out = failure(e)
    out["received"] = got
    return out


def main():
    cmd, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    ch = channel(target)
    if cmd == "shapes":
        out = shapes(ch)
    elif cmd == "big":
        out = big(ch, int(rest[0]))
    elif cmd == "fail":
        out = fail(ch, rest[0], rest[1])
    elif cmd == "slow":
        out = slow(ch, rest[0], rest[1])
    elif cmd == "spread":
        out = spread(ch, int(rest[0]), int(rest[1]))
    elif cmd == "killstream":
        out = killstream(ch)
    elif cmd == "loop":
        out = loop(ch, rest[0], int(rest[1]))
    else:
        raise SystemExit("unknown command " + cmd)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

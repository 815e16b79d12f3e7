"""A backend PROCESS for the end-to-end tests that kill one (SIGKILL).

    python3 backend.py NAME [SERVICE_MS]

Serves HTTP/1.1 keep-alive on 127.0.0.1 (an ephemeral port, printed as
the first line of stdout). Every request (GET, POST, PUT, ...) has its
body read, waits SERVICE_MS (default 10), and is answered 200 with
"NAME <body length>". Runs until killed; never logs a request.
"""
import http.server
import sys
import time

NAME = sys.argv[1]
SERVICE = float(sys.argv[2] if len(sys.argv) > 2 else 10) / 1000.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        time.sleep(SERVICE)
        out = f"{NAME} {len(body)}".encode()
        # Head and body in one write: a kill leaves a response whole or
        # not sent at all, never cut between head and body.
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(out)}\r\n\r\n"
        self.wfile.write(head.encode() + out)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()

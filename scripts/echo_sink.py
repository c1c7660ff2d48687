#!/usr/bin/env python3
"""Local HTTP echo target for `just dev`: prints every delivery it receives
(message id, attempt, path, body) and answers 200. Standard library only.

Usage: echo_sink.py [PORT]   (default 3999)
"""
import http.server
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        print(
            f"[echo] {self.command} {self.path} id={self.headers.get('X-WAL-Message-Id')} "
            f"attempt={self.headers.get('X-WAL-Attempt')} body={body}",
            flush=True,
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _handle

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3999
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()

#!/usr/bin/env python3
"""A write endpoint that stores nothing: the catch-up harness's `null` target.

It answers InfluxDB 1.x's `/ping`, `/query` (any statement: an empty
result) and `/write` (204 after reading, gunzipping and counting the body's
`reading` lines), and `GET /count` with the number of lines counted so far.
It exists to measure how fast emgate itself drains a backlog when the
database is not the bound (scripts/catchup.py --target null).

    scripts/null_influx.py PORT
"""

import gzip
import http.server
import sys
import threading

LOCK = threading.Lock()
COUNT = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def body(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data

    def do_GET(self):
        if self.path.startswith("/count"):
            with LOCK:
                n = COUNT[0]
            self.reply(200, str(n).encode(), "text/plain")
        elif self.path.startswith("/ping"):
            self.reply(204)
        else:
            self.reply(200, b'{"results":[{"statement_id":0}]}')

    def do_POST(self):
        data = self.body()
        if self.path.startswith("/write"):
            n = data.count(b"\nreading,") + (1 if data.startswith(b"reading,") else 0)
            with LOCK:
                COUNT[0] += n
            self.reply(204)
        else:
            self.reply(200, b'{"results":[{"statement_id":0}]}')


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()

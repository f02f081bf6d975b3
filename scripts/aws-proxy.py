"""An HTTP proxy in front of the AWS emulator that records and delays calls.

    python scripts/aws-proxy.py --upstream http://127.0.0.1:PORT
        [--latency-ms 50] [--log calls.jsonl]

Prints `listening on http://127.0.0.1:PORT` and serves until its standard
input closes. Each request is forwarded to the upstream after the added
latency (which stands for the round trip to real AWS), and one JSON line is
appended to the log: {"service": "iam", "action": "ListUsers", "status": 200}.
The service comes from the SigV4 credential scope, the action from
X-Amz-Target (JSON protocols) or the `Action` form field (query protocols).
Uses only the standard library, so it runs under any python3.
"""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")


def describe(headers, body: bytes):
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.split(".")[-1]
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return service, form.get("Action", ["unknown"])[0]


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    latency = 0.0
    log = None
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        service, action = describe(self.headers, body)
        if self.latency:
            time.sleep(self.latency)
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if self.log:
            line = json.dumps({"service": service, "action": action, "status": response.status})
            with self.lock, open(self.log, "a") as log:
                log.write(line + "\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--log")
    args = parser.parse_args()
    Proxy.upstream = urllib.parse.urlparse(args.upstream)
    Proxy.latency = args.latency_ms / 1000
    Proxy.log = args.log
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    while sys.stdin.read(65536):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()

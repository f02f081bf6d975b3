"""An HTTP proxy in front of the AWS emulator that records, delays and
breaks calls.

    python scripts/aws-proxy.py --upstream http://127.0.0.1:PORT
        [--latency-ms 50] [--log calls.jsonl] [--seed 1]
        [--throttle 0.10] [--error 0.05] [--drop 0.01] [--lose 0.01]
        [--stall 0.0 --stall-ms 60000] [--mangle 0.0]
        [--only DeleteAccessKey,PutParameter]
        [--deny-role arn:aws:iam::111111111111:role/RekeyRotation ...]

Prints `listening on http://127.0.0.1:PORT` and serves until its standard
input closes. Each request waits the added latency (a round trip to real
AWS), then, with the given probabilities (decided by one seeded generator,
so a run can be replayed), gets a fault instead of a plain forward:

  --throttle  an AWS throttling error (Throttling / ThrottlingException, 400)
  --error     an HTTP 500 or 503
  --drop      the connection is closed before the request is forwarded
  --lose      the request IS forwarded, then the connection is closed: the
              change happened but the caller never hears of it
  --stall     the request hangs for --stall-ms before it is forwarded
  --mangle    the request IS forwarded, then the answer is a 200 whose body
              has none of the expected fields

--only limits faults to these API actions. --deny-role (repeatable) answers
every sts:AssumeRole of that role ARN with AccessDenied, as AWS does when the
role is missing or does not trust the caller (the emulator assumes any role);
the log line of an AssumeRole names its role. --report-now rewrites the
GeneratedTime of GetCredentialReport answers to the present: moto builds
the report live but dates it 2015, which no report-based plan would trust. One JSON line per request goes
to the log: {"service": "iam", "action": "ListUsers", "status": 200,
"fault": null, "t": 1700000000.123} (t: when the answer went back). The service comes from the SigV4 credential scope, the
action from X-Amz-Target (JSON protocols), the `Action` form field (query
protocols), or for S3 (a REST protocol) the method, path and query:
PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2, CreateBucket... Uses only the standard library, so it runs under any python3.
"""

import argparse
import http.client
import json
import random
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")


def s3_action(method, path):
    """S3's action from a path-style request: /bucket[/key][?query]."""
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    has_key = len(url.path.strip("/").split("/", 1)) == 2
    if has_key:
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
                "DELETE": "DeleteObject", "POST": "PostObject"}.get(method, method)
    if method == "GET" and query.get("list-type") == ["2"]:
        return "ListObjectsV2"
    return {"PUT": "CreateBucket", "GET": "ListObjects", "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket", "POST": "DeleteObjects"}.get(method, method)


def describe(method, path, headers, body: bytes):
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.split(".")[-1]
    if service == "s3":
        return service, s3_action(method, path)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return service, form.get("Action", ["unknown"])[0]


class Faults:
    """Which fault, if any, each request gets: one seeded generator."""

    def __init__(self, args):
        self.random = random.Random(args.seed)
        self.lock = threading.Lock()
        self.only = set(filter(None, (args.only or "").split(",")))
        self.table = [("throttle", args.throttle), ("error", args.error), ("drop", args.drop), ("lose", args.lose), ("stall", args.stall), ("mangle", args.mangle)]
        self.stall = args.stall_ms / 1000

    def pick(self, action):
        if self.only and action not in self.only:
            return None
        with self.lock:
            roll = self.random.random()
        for fault, share in self.table:
            if roll < share:
                return fault
            roll -= share
        return None


def throttling(headers, service):
    """An AWS throttling error in the protocol the request spoke."""
    if service == "s3":
        body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>")
        return 503, {"Content-Type": "application/xml"}, body
    if headers.get("X-Amz-Target"):
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"}, body
    body = (b'<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>'
            b"<Message>Rate exceeded</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
    return 400, {"Content-Type": "text/xml"}, body


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    latency = 0.0
    log = None
    faults = None
    report_now = False
    denied_roles = set()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def record(self, service, action, status, fault, role=None):
        if self.log:
            entry = {"service": service, "action": action, "status": status, "fault": fault,
                     "t": round(time.time(), 3)}
            if role:
                entry["role"] = role
            line = json.dumps(entry)
            with self.lock, open(self.log, "a") as log:
                log.write(line + "\n")

    def reply(self, status, headers, payload):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        service, action = describe(self.command, self.path, self.headers, body)
        if self.latency:
            time.sleep(self.latency)
        role = None
        if action == "AssumeRole":
            role = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("RoleArn", [None])[0]
            if role in self.denied_roles:
                payload = (b'<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
                           b"<Message>User: arn:aws:iam::123456789012:user/rekey is not authorized to perform: sts:AssumeRole on resource: "
                           + role.encode() + b"</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
                self.record(service, action, 403, "deny-role", role)
                return self.reply(403, {"Content-Type": "text/xml"}, payload)
        fault = self.faults.pick(action) if self.faults else None
        if fault == "throttle":
            status, headers, payload = throttling(self.headers, service)
            self.record(service, action, status, fault)
            return self.reply(status, headers, payload)
        if fault == "error":
            status = 500 if self.faults.random.random() < 0.5 else 503
            self.record(service, action, status, fault)
            return self.reply(status, {"Content-Type": "text/plain"}, b"injected server error")
        if fault == "drop":
            self.record(service, action, None, fault)
            return self.hang_up()
        if fault == "stall":
            time.sleep(self.faults.stall)
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        self.record(service, action, response.status, fault, role)
        if fault == "lose":
            return self.hang_up()
        if fault == "mangle":
            if self.headers.get("X-Amz-Target"):
                return self.reply(200, {"Content-Type": "application/x-amz-json-1.1"}, b"{}")
            name = action + "Response"
            return self.reply(200, {"Content-Type": "text/xml"}, f"<{name}><{action}Result/></{name}>".encode())
        if self.report_now and action == "GetCredentialReport":
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()
            payload = re.sub(rb"<GeneratedTime>[^<]*</GeneratedTime>", b"<GeneratedTime>" + now + b"</GeneratedTime>", payload)
        kept = {k: v for k, v in response.getheaders() if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")}
        self.reply(response.status, kept, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--log")
    parser.add_argument("--seed", type=int, default=1)
    for fault in ("throttle", "error", "drop", "lose", "stall", "mangle"):
        parser.add_argument(f"--{fault}", type=float, default=0.0)
    parser.add_argument("--stall-ms", type=float, default=60000)
    parser.add_argument("--only")
    parser.add_argument("--report-now", action="store_true")
    parser.add_argument("--deny-role", action="append", default=[])
    args = parser.parse_args()
    Proxy.denied_roles = set(args.deny_role)
    Proxy.upstream = urllib.parse.urlparse(args.upstream)
    Proxy.latency = args.latency_ms / 1000
    Proxy.log = args.log
    Proxy.faults = Faults(args)
    Proxy.report_now = args.report_now
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

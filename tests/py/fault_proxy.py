"""Test helper: an HTTP proxy in front of moto that injects S3 and SSM faults.

Usage: fault_proxy.py PORT UPSTREAM_URL. Faults are set with `POST /__faults` (JSON) and counted
at `GET /__stats`. S3 writes (PUT object, multipart upload calls) and SSM PutParameter can be made
to fail with a probability, with 500, 503 SlowDown, a dropped connection, or a permanent 403;
`s3_only` (a list of put, conditional_put, create_multipart, upload_part, complete) limits S3
faults to those operations; `conditional_put` is a PUT with If-Match or If-None-Match (checkpoint,
lease, manifest), and error "409" answers it as S3 does on a concurrent conditional write. Stats count every S3 operation that reached the proxy, by name, in `s3_ops`.
Faults are injected before the request reaches moto, so a failed request changed nothing.
`bucket_regions` ({"bucket": "eu-west-1"}) makes buckets live in another Region, as S3 does:
a request signed for any other Region gets 301 PermanentRedirect with `x-amz-bucket-region`,
and HeadBucket answers carry that header. `lost_probability` with `lost_only` (the same operation
names) forwards such a write to moto, then drops the connection before answering: the write
landed, its answer did not (counted in `lost_ops`); `lost_first` (operation names) does that to
the first attempt of each distinct such request only, so its retry gets through.
`findings_latency_ms` delays every Security Hub GetFindings (`POST /findings`) answer by a mean
of that many ms (uniform half to one and a half times), as a slow service would.
"""
import time
import http.client
import json
import re
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATE = {"faults": {}, "stats": {"requests": 0, "s3_faults": 0, "ssm_faults": 0, "s3_ops": {}},
         "rng": random.Random(1)}
LOCK = threading.Lock()

S3_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "403": (403, "AccessDenied", "Access Denied"),
    "409": (409, "ConditionalRequestConflict",
            "A conflicting operation occurred. If using PutObject you can retry the request."),
}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _control(self, body):
        if self.path == "/__faults" and self.command == "POST":
            with LOCK:
                STATE["faults"] = json.loads(body or b"{}")
                STATE["rng"] = random.Random(STATE["faults"].get("seed", 1))
            return self._reply(200, b"{}", "application/json")
        with LOCK:
            out = json.dumps(STATE["stats"]).encode()
        return self._reply(200, out, "application/json")

    def _s3_write(self):
        """The S3 object write this request is (put, conditional_put, create_multipart,
        upload_part, complete, abort, delete), or None."""
        url = urlsplit(self.path)
        if url.path.count("/") < 2 or self.headers.get("X-Amz-Target"):
            return None
        params = parse_qs(url.query, keep_blank_values=True)
        if self.command == "PUT":
            if "uploadId" in params:
                return "upload_part"
            conditional = self.headers.get("If-Match") or self.headers.get("If-None-Match")
            return "conditional_put" if conditional else "put"
        if self.command == "POST" and "uploads" in params:
            return "create_multipart"
        if self.command == "POST" and "uploadId" in params:
            return "complete"
        if self.command == "DELETE":
            return "abort" if "uploadId" in params else "delete"
        return None

    def _fault(self):
        """The fault to inject for this request, or None."""
        target = self.headers.get("X-Amz-Target", "")
        operation = self._s3_write()
        with LOCK:
            faults = STATE["faults"]
            if operation:
                ops = STATE["stats"]["s3_ops"]
                ops[operation] = ops.get(operation, 0) + 1
            allowed = faults.get("s3_only") or [operation]
            if (operation and operation in allowed and operation not in ("abort", "delete")
                    and STATE["rng"].random() < faults.get("s3_probability", 0)):
                STATE["stats"]["s3_faults"] += 1
                faulted = STATE["stats"].setdefault("s3_faulted_ops", {})
                faulted[operation] = faulted.get(operation, 0) + 1
                error = faults.get("s3_error", "503")
                if error == "mix":
                    error = STATE["rng"].choice(["500", "503", "reset"])
                return ("s3", error)
            seen = STATE.setdefault("seen", set())
            first = (self.command, self.path) not in seen
            seen.add((self.command, self.path))
            if operation and ((operation in faults.get("lost_first", []) and first) or (
                    operation in faults.get("lost_only", [])
                    and STATE["rng"].random() < faults.get("lost_probability", 0))):
                lost = STATE["stats"].setdefault("lost_ops", {})
                lost[operation] = lost.get(operation, 0) + 1
                return ("s3", "lost")
            if target.endswith("PutParameter") and STATE["rng"].random() < faults.get("ssm_probability", 0):
                STATE["stats"]["ssm_faults"] += 1
                return ("ssm", faults.get("ssm_error", "throttle"))
        return None

    def _bucket_region(self):
        """(bucket's Region, signed Region) for an S3 request to a relocated bucket, or None."""
        scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/s3/", self.headers.get("Authorization", ""))
        bucket = urlsplit(self.path).path.lstrip("/").split("/")[0]
        with LOCK:
            region = STATE["faults"].get("bucket_regions", {}).get(bucket)
        if not scope or not region:
            return None
        return region, scope.group(1)

    def _redirect(self, region):
        with LOCK:
            STATE["stats"]["redirects"] = STATE["stats"].get("redirects", 0) + 1
        xml = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PermanentRedirect</Code>"
               b"<Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message></Error>")
        self.send_response(301)
        self.send_header("x-amz-bucket-region", region)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)

    def _handle(self):
        body = self._body()
        if self.path.startswith("/__"):
            return self._control(body)
        with LOCK:
            STATE["stats"]["requests"] += 1
        relocated = self._bucket_region()
        if relocated and relocated[0] != relocated[1]:
            return self._redirect(relocated[0])
        fault = self._fault()
        if fault == ("s3", "lost"):
            self._forward(body)
            self.close_connection = True
            self.connection.close()
            return
        if fault == ("s3", "reset") or fault == ("ssm", "reset"):
            self.close_connection = True
            self.connection.close()
            return
        if fault and fault[0] == "s3":
            status, code, message = S3_ERRORS[fault[1]]
            xml = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            return self._reply(status, xml.encode(), "application/xml")
        if fault and fault[0] == "ssm":
            kind = "ThrottlingException" if fault[1] == "throttle" else "InternalServerError"
            status = 400 if fault[1] == "throttle" else 500
            return self._reply(status, json.dumps({"__type": kind, "message": "injected"}).encode(),
                               "application/x-amz-json-1.1")
        self._slow_findings()
        self._relay(relocated, *self._forward(body))

    def _slow_findings(self):
        if self.command != "POST" or urlsplit(self.path).path != "/findings":
            return
        with LOCK:
            mean = STATE["faults"].get("findings_latency_ms", 0)
            delay = STATE["rng"].uniform(mean / 2, mean * 3 / 2) if mean else 0
        time.sleep(delay / 1000)

    def _forward(self, body):
        """Sends the request to moto; returns its response and body."""
        upstream = urlsplit(UPSTREAM)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def _relay(self, relocated, response, data):
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() == "x-amz-bucket-region" and relocated:
                value = relocated[0]
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(key, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


if __name__ == "__main__":
    UPSTREAM = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy)
    server.serve_forever()

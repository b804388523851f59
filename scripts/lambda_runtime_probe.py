#!/usr/bin/env python3
"""A minimal AWS Lambda runtime API, to run a built `bootstrap` binary
outside AWS and measure it.

usage: lambda_runtime_probe.py BINARY EVENT_JSON [EVENT_JSON ...]

Starts the runtime API on a free loopback port, starts BINARY with
AWS_LAMBDA_RUNTIME_API pointing at it, hands it the events in order, and
prints one JSON line: how long from process start until the binary first
asked for an event (`ready_ms`), each event's outcome (`response` or
`error` with the error body), whether the process was still alive asking for
the next event after the last one (`alive_after`), and its peak RSS in KiB.
Exit code 0 unless the binary died or never asked for work.

Each invocation's deadline (`Lambda-Runtime-Deadline-Ms`) is the time it is
handed out plus PROBE_INVOCATION_MS (default 30000): the function's timeout.
"""
import http.server
import json
import os
import subprocess
import sys
import threading
import time

binary, events = sys.argv[1], [json.loads(e) for e in sys.argv[2:]]
invocation_ms = int(os.environ.get("PROBE_INVOCATION_MS", "30000"))
lock = threading.Condition()
state = {"next_calls": 0, "first_next": None, "outcomes": {}, "served": 0}


class Runtime(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self._send(404)
        with lock:
            state["next_calls"] += 1
            if state["first_next"] is None:
                state["first_next"] = time.monotonic()
            lock.notify_all()
            if state["served"] >= len(events):
                # Nothing more to hand out: hold the call until we stop.
                lock.wait(timeout=30)
                return self._send(204)
            i = state["served"]
            state["served"] += 1
        body = json.dumps(events[i]).encode()
        self._send(200, body, {
            "Lambda-Runtime-Aws-Request-Id": f"req-{i}",
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + invocation_ms),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:probe",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            "Content-Type": "application/json",
        })

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace")
        parts = self.path.strip("/").split("/")
        # /2018-06-01/runtime/invocation/{id}/response | /error
        if len(parts) >= 5 and parts[2] == "invocation":
            with lock:
                state["outcomes"][parts[3]] = {"kind": parts[4], "body": body}
                lock.notify_all()
        self._send(202, b"{}", {"Content-Type": "application/json"})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
           AWS_LAMBDA_FUNCTION_NAME="probe", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
           AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_REGION="us-east-1")
start = time.monotonic()
proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
deadline = start + max(20, invocation_ms / 1000 * len(events) + 10)
with lock:
    while (len(state["outcomes"]) < len(events) or state["next_calls"] <= len(events)) \
            and time.monotonic() < deadline and proc.poll() is None:
        lock.wait(timeout=0.1)
alive = proc.poll() is None and state["next_calls"] > len(events)
rss_kib = None
try:
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss_kib = int(line.split()[1])
except OSError:
    pass
proc.kill()
_, stderr = proc.communicate(timeout=5)
server.shutdown()
ready_ms = None if state["first_next"] is None else round((state["first_next"] - start) * 1000, 2)
print(json.dumps({
    "binary": os.path.basename(os.path.dirname(binary)) or binary,
    "ready_ms": ready_ms,
    "outcomes": [state["outcomes"].get(f"req-{i}") for i in range(len(events))],
    "alive_after": alive,
    "peak_rss_kib": rss_kib,
    "stderr_tail": stderr.decode(errors="replace")[-500:],
}))
sys.exit(0 if ready_ms is not None and alive else 1)

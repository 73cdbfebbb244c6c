"""A stand-in node answering the issue-6 contract's endpoints with fixed, contract-shaped JSON.

The console pages themselves (/, /ui/...) are proxied from a real fireball node, so what is
tested is the console embedded in the binary. This lets the Chromium test check every panel's
rendering (and HTML escaping of hostile strings) independently of which endpoints the real
cluster serves yet.
"""

import http.server
import json
import threading
import urllib.error
import urllib.request

HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'
RUNNING_ID = "20250101_120000_00001_aaaaa"
FAILED_ID = "20250101_115900_00007_bbbbb"
QUEUED_ID = "20250101_120001_00002_ccccc"

NODES = [
    {"nodeId": "rm-1", "role": "resource_manager", "state": "ACTIVE", "uri": "http://10.0.0.1:8180"},
    {"nodeId": "rm-2", "role": "resource_manager", "state": "ACTIVE", "uri": "http://10.0.0.2:8180"},
    {"nodeId": "coordinator-1", "role": "coordinator", "state": "ACTIVE", "uri": "http://10.0.0.3:8080"},
    {"nodeId": "coordinator-2", "role": "coordinator", "state": "SHUTTING_DOWN", "uri": "http://10.0.0.4:8080"},
    {"nodeId": "worker-1", "role": "worker", "state": "ACTIVE", "uri": "http://10.0.0.5:8280"},
    {"nodeId": "worker-2", "role": "worker", "state": "ACTIVE", "uri": "http://10.0.0.6:8280"},
]
for node in NODES:
    node.update({"age": "1.20m", "recentRequests": 60.0, "recentFailures": 0.0, "recentSuccesses": 60.0,
                 "recentFailureRatio": 0.0, "lastRequestTime": "2025-01-01T12:00:00.000Z",
                 "lastResponseTime": "2025-01-01T12:00:00.000Z", "recentFailuresByType": {}})
FAILED_NODES = [dict(NODES[4], nodeId="worker-3", uri="http://10.0.0.7:8280", state="INACTIVE",
                     recentFailures=12.0, recentFailureRatio=1.0)]


def query(query_id, state, user, owner, sql, group, memory="64MB", error=None):
    info = {
        "queryId": query_id, "state": state, "self": f"{owner['uri']}/v1/query/{query_id}", "query": sql,
        "resourceGroupId": group.split("."), "memoryPool": "general", "scheduled": state != "QUEUED",
        "session": {"user": user, "source": "console-fixture"},
        "queryStats": {"createTime": "2025-01-01T12:00:00.000Z", "elapsedTime": "42.00s", "userMemoryReservation": memory},
        "coordinatorId": owner["nodeId"],
    }
    if error:
        info.update({"errorType": "USER_ERROR", "errorCode": {"code": 3, "name": error, "type": "USER_ERROR"},
                     "failureInfo": {"message": f"Query failed: {HOSTILE}"}})
    return info


QUERIES = [
    query(RUNNING_ID, "RUNNING", "alice", NODES[3], "SELECT * FROM synthetic(run_time => '60s')", "global.alice"),
    query(QUEUED_ID, "QUEUED", HOSTILE, NODES[2], f"SELECT '{HOSTILE}'", "global.mallory", "0B"),
    query(FAILED_ID, "FAILED", "bob", NODES[2], "SELECT broken", "global.bob", "0B", error="SYNTAX_ERROR"),
]

FIXTURES = {
    "/v1/info": {"nodeVersion": {"version": "fixture"}, "environment": "fixture", "coordinator": True,
                 "starting": False, "uptime": "5.00m"},
    "/v1/cluster": {"runningQueries": 1, "blockedQueries": 0, "queuedQueries": 1, "activeWorkers": 2,
                    "runningDrivers": 0, "runningTasks": 2, "reservedMemory": 67108864.0, "totalInputRows": 0,
                    "totalInputBytes": 0, "totalCpuTimeSecs": 0, "adjustedQueueSize": 0},
    "/v1/node": NODES,
    "/v1/node/failed": FAILED_NODES,
    "/v1/cluster/resourceManagers": [
        {"nodeId": "rm-1", "uri": "http://10.0.0.1:8180", "reachable": True, "coordinators": 2, "workers": 2,
         "runningQueries": 1, "queuedQueries": 1, "reservedMemoryBytes": 67108864, "totalMemoryBytes": 2147483648,
         "blockedNodes": 1},
        {"nodeId": "rm-2", "uri": "http://10.0.0.2:8180", "reachable": False, "error": "connection refused"},
    ],
    "/v1/cluster/resourceGroups": {
        "coordinators": [
            {"coordinatorId": "coordinator-1", "uri": "http://10.0.0.3:8080",
             "groups": [{"id": "global.mallory", "running": 0, "queued": 1, "memoryBytes": 0}]},
            {"coordinatorId": "coordinator-2", "uri": "http://10.0.0.4:8080",
             "groups": [{"id": "global.alice", "running": 1, "queued": 0, "memoryBytes": 67108864}]},
        ],
        "total": [{"id": "global", "running": 1, "queued": 1}, {"id": "global.alice", "running": 1, "queued": 0},
                  {"id": "global.mallory", "running": 0, "queued": 1}],
    },
    "/v1/cluster/memory": {"general": {
        "totalDistributedBytes": 2147483648, "reservedDistributedBytes": 67108864, "blockedNodes": 1,
        "assignedQueries": 1, "largestMemoryQuery": RUNNING_ID, "runningQueries": [RUNNING_ID],
        "memoryPoolInfo": {"maxBytes": 2147483648, "reservedBytes": 67108864, "reservedRevocableBytes": 0,
                           "queryMemoryReservations": {RUNNING_ID: 67108864}, "queryMemoryAllocations": {},
                           "queryMemoryRevocableReservations": {}}}},
    "/v1/cluster/workerMemory": {
        "worker-1 [http://10.0.0.5:8280]": {"totalNodeMemory": "8GB", "blocked": False, "pools": {"general": {
            "maxBytes": 1073741824, "reservedBytes": 33554432, "reservedRevocableBytes": 0,
            "queryMemoryReservations": {RUNNING_ID: 33554432}, "queryMemoryAllocations": {},
            "queryMemoryRevocableReservations": {}}}},
        "worker-2 [http://10.0.0.6:8280]": {"totalNodeMemory": "8GB", "blocked": True, "pools": {"general": {
            "maxBytes": 1073741824, "reservedBytes": 1073741824, "reservedRevocableBytes": 0,
            "queryMemoryReservations": {RUNNING_ID: 1073741824}, "queryMemoryAllocations": {},
            "queryMemoryRevocableReservations": {}}}},
    },
    "/v1/query": QUERIES,
    "/v1/resourceGroupState/global": {
        "id": ["global"], "state": "CAN_RUN", "schedulingPolicy": "fair", "schedulingWeight": 1,
        "softMemoryLimit": "1GB", "softConcurrencyLimit": 4, "hardConcurrencyLimit": 4, "maxQueuedQueries": 100,
        "memoryUsage": "64MB", "numQueuedQueries": 1, "numRunningQueries": 1, "numEligibleSubGroups": 1,
        "subGroups": [{"id": ["global", "alice"], "state": "FULL", "hardConcurrencyLimit": 1, "maxQueuedQueries": 0,
                       "memoryUsage": "64MB", "softMemoryLimit": "1GB", "numQueuedQueries": 0, "numRunningQueries": 1,
                       "schedulingPolicy": "fair"}],
    },
}
for info in QUERIES:
    FIXTURES[f"/v1/query/{info['queryId']}"] = info


class Fixture:
    """`start()` serves on an ephemeral loopback port; `kills` records PUT .../killed requests."""

    def __init__(self, console_origin):
        self.console_origin = console_origin
        self.kills = []
        fixture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/" or path.startswith("/ui"):
                    return self.proxy()
                if path in FIXTURES:
                    return self.reply(200, json.dumps(FIXTURES[path]))
                if path.startswith("/v1/query/"):
                    return self.reply(404, "Query not found", "text/plain")
                return self.reply(404, f"no fixture for {path}", "text/plain")

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 4096)).decode("utf-8", "replace")
                if self.path.startswith("/v1/query/") and self.path.endswith("/killed"):
                    fixture.kills.append((self.path, body))
                    return self.reply(200, "", "text/plain")
                return self.reply(404, "not found", "text/plain")

            def proxy(self):
                try:
                    with urllib.request.urlopen(fixture.console_origin + self.path, timeout=5) as response:
                        self.reply(response.status, response.read(), response.headers.get("Content-Type", ""))
                except urllib.error.HTTPError as error:
                    self.reply(error.code, error.read(), "text/plain")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

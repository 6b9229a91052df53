#!/usr/bin/env python3
"""Pod start latency against a running skiff server (bench/pods.sh runs it).

For each round: create N pods (busybox `sleep`, image present, bound to the
node) through the API at once, and follow a watch on pods until every one
reports phase Running; a pod's latency is the time from its create request
being sent to the watch event that shows it Running. Pods are deleted
(grace 0) and gone before the next round.

Usage: podstart.py URL CA TOKEN NODE PODS ROUNDS
Prints one latency in ms per pod, and per round the time until the last
pod ran ("round N: M pods Running in X ms").
"""
import json
import ssl
import sys
import threading
import time
import http.client
from urllib.parse import urlparse

url, ca, token, node, npods, rounds = sys.argv[1:7]
npods, rounds = int(npods), int(rounds)
u = urlparse(url)
ctx = ssl.create_default_context(cafile=ca)
HEADERS = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def conn():
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=120)


def request(c, method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=HEADERS)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def pod(name):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "podstart"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "main", "image": "busybox:latest", "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    }


def run_round(r):
    c = conn()
    listed = request(c, "GET", "/api/v1/namespaces/default/pods?labelSelector=bench%3Dpodstart")
    rv = listed["metadata"]["resourceVersion"]
    names = [f"bench-{r}-{i}" for i in range(npods)]
    sent, running = {}, {}
    done = threading.Event()

    def watch():
        w = conn()
        w.request("GET", f"/api/v1/namespaces/default/pods?watch=1&labelSelector=bench%3Dpodstart&resourceVersion={rv}",
                  headers=HEADERS)
        resp = w.getresponse()
        buf = b""
        while not done.is_set():
            chunk = resp.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ev = json.loads(line)
                obj = ev["object"]
                n = obj["metadata"]["name"]
                if obj.get("status", {}).get("phase") == "Running" and n not in running:
                    running[n] = time.monotonic()
                    if len(running) == npods:
                        done.set()
                        return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.2)  # the watch is open before the first create
    creators = []
    # Up to 8 connections create at once, as a controller's workers would.
    per = [names[i::8] for i in range(8)]

    def create(batch):
        cc = conn()
        for n in batch:
            sent[n] = time.monotonic()
            request(cc, "POST", "/api/v1/namespaces/default/pods", pod(n))

    start = time.monotonic()
    for b in per:
        if b:
            th = threading.Thread(target=create, args=(b,))
            th.start()
            creators.append(th)
    for th in creators:
        th.join()
    if not done.wait(300):
        raise RuntimeError(f"round {r}: only {len(running)} of {npods} pods ran")
    for n in names:
        print(f"{(running[n] - sent[n]) * 1000:.1f}")
    print(f"round {r}: {npods} pods Running in {(max(running.values()) - start) * 1000:.0f} ms", file=sys.stderr)
    request(c, "DELETE", "/api/v1/namespaces/default/pods?labelSelector=bench%3Dpodstart",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    for _ in range(600):
        left = request(c, "GET", "/api/v1/namespaces/default/pods?labelSelector=bench%3Dpodstart")["items"]
        if not left:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("pods were not deleted")


for r in range(rounds):
    run_round(r)
